/* gantry apply: read and check every spec document locally, send them in one atomic
 * POST /v1/apply, report each workload's outcome, and with --wait follow them until every
 * replica is running and ready. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/quantity.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"

#define DEFAULT_WAIT_MS (2 * 60 * 1000)
#define POLL_MS         500
/* A replica restarted this often without staying up is in a crash loop. */
#define CRASH_LOOP_RESTARTS 3

struct spec_set {
    struct gy_spec_file *files;
    size_t n_files;
    size_t n_problems;
};

static void spec_set_free(struct spec_set *set)
{
    for (size_t i = 0; i < set->n_files; i++)
        gy_spec_file_free(&set->files[i]);
    free(set->files);
}

static bool spec_file_name(const char *name)
{
    size_t n = strlen(name);
    static const char *const exts[] = {".yaml", ".yml", ".json"};
    for (size_t i = 0; i < 3; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && strcmp(name + n - e, exts[i]) == 0)
            return true;
    }
    return false;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The spec files of a directory in name order (not recursive; hidden files skipped). */
static int list_dir(const char *dir, char ***paths, size_t *n, struct gy_error *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return gy_error_sys(err, errno, "open directory %s", dir);
    *paths = NULL;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !spec_file_name(e->d_name))
            continue;
        char *path = gy_xasprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        *paths = gy_xrealloc(*paths, (*n + 1) * sizeof(**paths));
        (*paths)[(*n)++] = path;
    }
    closedir(d);
    if (*n == 0)
        return gy_error_set(err, GY_EINVAL, "%s has no *.yaml, *.yml or *.json files", dir);
    qsort(*paths, *n, sizeof(**paths), name_cmp);
    return 0;
}

/* Where the name of the index-th document of a file sits, for a problem found across
 * files. The file parsed cleanly before, so its documents map one to one to its specs. */
static void name_position(const char *path, size_t index, int *line, int *column)
{
    *line = *column = 0;
    FILE *f = strcmp(path, "-") == 0 ? NULL : fopen(path, "rb");
    if (f == NULL)
        return;
    char *text = gy_xmalloc(GY_SPEC_FILE_MAX + 1);
    size_t len = fread(text, 1, GY_SPEC_FILE_MAX, f);
    fclose(f);
    struct gy_yaml_document *docs = NULL;
    size_t n_docs = 0;
    struct gy_spec_problems problems = {0};
    if (gy_yaml_parse(text, len, &docs, &n_docs, &problems) == 0 && index < n_docs)
        gy_spec_positions_lookup(docs[index].pos, "name", line, column);
    gy_yaml_documents_free(docs, n_docs);
    gy_spec_problems_free(&problems);
    free(text);
}

/* A workload defined in two files of one apply is as wrong as twice in one file. */
static void check_across_files(struct spec_set *set, const char *const *paths)
{
    for (size_t f = 1; f < set->n_files; f++) {
        struct gy_spec_file *file = &set->files[f];
        for (size_t s = 0; s < file->n_specs; s++) {
            for (size_t g = 0; g < f; g++) {
                const struct gy_spec_file *other = &set->files[g];
                for (size_t t = 0; t < other->n_specs; t++) {
                    if (strcmp(file->specs[s].name, other->specs[t].name) != 0)
                        continue;
                    int line, column;
                    name_position(paths[f], s, &line, &column);
                    gy_spec_problem_add_at(&file->problems, "name", line, column,
                                           "workload \"%s\" is also defined in %s",
                                           file->specs[s].name, other->name);
                    set->n_problems++;
                }
            }
        }
    }
}

/* Loads every file; problems are counted, not fatal, so that all of them get printed. */
static int load_specs(const char *source, struct spec_set *set, struct gy_error *err)
{
    memset(set, 0, sizeof(*set));
    char **paths = NULL;
    size_t n = 0;
    struct stat st;
    if (strcmp(source, "-") != 0 && stat(source, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (list_dir(source, &paths, &n, err) < 0)
            return -GY_EINVAL;
    } else {
        paths = gy_xmalloc(sizeof(*paths));
        paths[0] = gy_xstrdup(source);
        n = 1;
    }
    set->files = gy_xcalloc(n, sizeof(*set->files));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct gy_error load_err;
        int r = gy_spec_file_load_path(paths[i], &set->files[i], &load_err);
        set->n_files++;
        if (r < 0 && set->files[i].problems.n == 0) {
            gy_error_set(err, GY_EINVAL, "%s", load_err.msg);
            rc = -GY_EINVAL;
        }
        set->n_problems += set->files[i].problems.n;
    }
    if (rc == 0 && set->n_problems == 0)
        check_across_files(set, (const char *const *)paths);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * --wait */

/* Conditions after which waiting is pointless: the reconciler's Unschedulable (no node
 * fits) and RolloutHalted (the new generation crash-loops while the old one serves), and
 * the names other orchestrators give the same situations. */
static bool failure_condition(const char *type)
{
    static const char *const failing[] = {
        "Unschedulable", "RolloutHalted",  "CrashLoop",      "CrashLoopBackOff", "PlacementFailed",
        "Failed",        "ReplicaFailure", "ProgressFailed", "ImageFailed",
    };
    for (size_t i = 0; i < sizeof(failing) / sizeof(failing[0]); i++)
        if (strcmp(type, failing[i]) == 0)
            return true;
    return false;
}

enum ctl_wait_state ctl_wait_assess(const json_t *workload, const json_t *replicas, char *summary,
                                    size_t summary_len, char *reason, size_t reason_len)
{
    const json_t *status = json_object_get(workload, "status");
    long long desired = ctl_json_int(status, "desired"), running = ctl_json_int(status, "running");
    long long ready = ctl_json_int(status, "ready"), total = ctl_json_int(status, "replicas");
    *reason = '\0';

    /* The state of each replica, in the order of the API's state list. */
    static const char *const states[] = {"pending", "starting", "stopping", "stopped",
                                         "exited",  "failed",   "lost"};
    size_t counts[7] = {0};
    const json_t *items = json_object_get(replicas, "items");
    size_t i;
    const json_t *r;
    enum ctl_wait_state verdict = CTL_WAIT_PROGRESSING;
    json_array_foreach(items, i, r)
    {
        const char *state = json_string_value(json_object_get(r, "state"));
        for (size_t k = 0; state != NULL && k < 7; k++)
            if (strcmp(state, states[k]) == 0)
                counts[k]++;
        long long restarts = ctl_json_int(r, "restarts");
        if (verdict == CTL_WAIT_PROGRESSING && state != NULL && strcmp(state, "running") != 0 &&
            restarts >= CRASH_LOOP_RESTARTS) {
            snprintf(reason, reason_len,
                     "replica %s is in a crash loop: restarted %lld times, last exit code %lld",
                     json_string_value(json_object_get(r, "id")), restarts,
                     ctl_json_int(r, "exit_code"));
            verdict = CTL_WAIT_FAILED;
        }
    }
    const json_t *conditions = json_object_get(status, "conditions");
    const json_t *c;
    json_array_foreach(conditions, i, c)
    {
        const char *type = json_string_value(json_object_get(c, "type"));
        if (type != NULL && failure_condition(type)) {
            const char *message = json_string_value(json_object_get(c, "message"));
            snprintf(reason, reason_len, "%s: %s", type, message ? message : "(no message)");
            verdict = CTL_WAIT_FAILED;
            break;
        }
    }

    int off =
        snprintf(summary, summary_len, "%lld/%lld ready, %lld running", ready, desired, running);
    if (total == 0 && desired > 0 && (size_t)off < summary_len) {
        off += snprintf(summary + off, summary_len - (size_t)off, " (no replicas placed yet)");
    } else {
        bool open = false;
        for (size_t k = 0; k < 7 && (size_t)off < summary_len; k++) {
            if (counts[k] == 0)
                continue;
            off += snprintf(summary + off, summary_len - (size_t)off, "%s%zu %s",
                            open ? ", " : " (", counts[k], states[k]);
            open = true;
        }
        if (open && (size_t)off < summary_len)
            snprintf(summary + off, summary_len - (size_t)off, ")");
    }
    if (verdict == CTL_WAIT_FAILED)
        return verdict;
    if (running == desired && ready == desired)
        return CTL_WAIT_DONE;
    return CTL_WAIT_PROGRESSING;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Columns of the terminal, so that progress lines never wrap (a wrapped line could not
 * be redrawn in place). */
static size_t terminal_width(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
        return ws.ws_col;
    return 80;
}

/* Polls one workload and its replicas; returns false (with err) when the server cannot
 * tell. */
static bool poll_workload(struct ctl_context *ctx, const char *name, enum ctl_wait_state *state,
                          char *summary, size_t summary_len, char *reason, size_t reason_len,
                          struct gy_error *err)
{
    char *esc = ctl_url_escape(name);
    char *wpath = gy_xasprintf("/v1/workloads/%s", esc);
    char *rpath = gy_xasprintf("/v1/replicas?workload=%s", esc);
    free(esc);
    json_t *w = NULL, *reps = NULL;
    int r = ctl_get_json(&ctx->client, wpath, &w, err);
    if (r == 0)
        r = ctl_get_json(&ctx->client, rpath, &reps, err);
    free(wpath);
    free(rpath);
    if (r == 0)
        *state = ctl_wait_assess(w, reps, summary, summary_len, reason, reason_len);
    json_decref(w);
    json_decref(reps);
    return r == 0;
}

/* Shows one line per workload: on a terminal redrawn in place (the cursor goes back up over
 * the lines of the previous round), elsewhere printed again only when a figure changed, so
 * that logs of CI runs stay short. */
static void show_progress(struct ctl_context *ctx, bool tty, char **lines, char **shown, size_t n,
                          bool *drawn)
{
    if (tty) {
        size_t width = terminal_width(ctx->out);
        if (*drawn)
            fprintf(ctx->out, "\033[%zuA", n);
        for (size_t i = 0; i < n; i++)
            fprintf(ctx->out, "\r\033[K%.*s\n", (int)(width - 1), lines[i]);
        *drawn = true;
    } else {
        for (size_t i = 0; i < n; i++)
            if (shown[i] == NULL || strcmp(shown[i], lines[i]) != 0)
                fprintf(ctx->out, "%s\n", lines[i]);
    }
    for (size_t i = 0; i < n; i++) {
        free(shown[i]);
        shown[i] = gy_xstrdup(lines[i]);
    }
    fflush(ctx->out);
}

static int wait_ready(struct ctl_context *ctx, char **names, size_t n, int64_t timeout_ms)
{
    bool tty = isatty(fileno(ctx->out)), drawn = false;
    uint64_t start = ctl_now_ms();
    char **lines = gy_xcalloc(n, sizeof(*lines));
    char **shown = gy_xcalloc(n, sizeof(*shown));
    bool *done = gy_xcalloc(n, sizeof(*done));
    int rc = CTL_EXIT_FAILED;
    for (;;) {
        size_t n_done = 0;
        bool failed = false;
        for (size_t i = 0; i < n && !failed; i++) {
            char summary[512], reason[512];
            enum ctl_wait_state st = CTL_WAIT_PROGRESSING;
            struct gy_error err;
            if (!poll_workload(ctx, names[i], &st, summary, sizeof(summary), reason, sizeof(reason),
                               &err)) {
                fprintf(ctx->err, "gantry: waiting for workload/%s: %s\n", names[i], err.msg);
                failed = true;
                break;
            }
            if (st == CTL_WAIT_FAILED) {
                fprintf(ctx->err, "gantry: workload/%s failed: %s (%s)\n", names[i], reason,
                        summary);
                failed = true;
                break;
            }
            done[i] = st == CTL_WAIT_DONE;
            n_done += done[i];
            free(lines[i]);
            lines[i] = gy_xasprintf("workload/%s %s", names[i], summary);
        }
        if (failed)
            break;
        show_progress(ctx, tty, lines, shown, n, &drawn);
        if (n_done == n) {
            fprintf(ctx->out, "%zu workload%s ready\n", n, n == 1 ? "" : "s");
            rc = CTL_EXIT_OK;
            break;
        }
        uint64_t elapsed = ctl_now_ms() - start;
        if (elapsed >= (uint64_t)timeout_ms) {
            char d[GY_QUANTITY_BUF];
            gy_duration_format(timeout_ms, d);
            for (size_t i = 0; i < n; i++)
                if (!done[i])
                    fprintf(ctx->err, "gantry: timed out after %s waiting for workload/%s: %s\n", d,
                            names[i], lines[i] + strlen("workload/ ") + strlen(names[i]));
            break;
        }
        uint64_t left = (uint64_t)timeout_ms - elapsed;
        sleep_ms(left < POLL_MS ? (long)left : POLL_MS);
    }
    for (size_t i = 0; i < n; i++) {
        free(lines[i]);
        free(shown[i]);
    }
    free(lines);
    free(shown);
    free(done);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The command */

int ctl_cmd_apply(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    const char *source = ctl_opt(inv, "filename");
    if (source == NULL) {
        fprintf(ctx->err, "gantry: apply: missing -f FILE (a spec file, a directory, or - for "
                          "standard input)\nRun 'gantry apply --help' for usage.\n");
        return CTL_EXIT_USAGE;
    }
    int64_t timeout_ms = DEFAULT_WAIT_MS;
    const char *timeout = ctl_opt(inv, "timeout");
    if (timeout != NULL) {
        struct gy_error err;
        if (gy_duration_parse(timeout, &timeout_ms, &err) < 0 || timeout_ms <= 0) {
            fprintf(ctx->err, "gantry: apply: --timeout \"%s\": %s\n", timeout,
                    timeout_ms <= 0 && err.code == GY_EOK ? "must be longer than 0" : err.msg);
            return CTL_EXIT_USAGE;
        }
        if (!ctl_opt_set(inv, "wait")) {
            fprintf(ctx->err, "gantry: apply: --timeout only applies with --wait\n");
            return CTL_EXIT_USAGE;
        }
    }

    struct spec_set set;
    struct gy_error err;
    gy_error_clear(&err);
    if (load_specs(source, &set, &err) < 0) {
        spec_set_free(&set);
        fprintf(ctx->err, "gantry: apply: %s\n", err.msg);
        return CTL_EXIT_USAGE;
    }
    if (set.n_problems > 0) {
        size_t bad_files = 0;
        for (size_t i = 0; i < set.n_files; i++) {
            gy_spec_file_print_problems(&set.files[i], ctx->err);
            bad_files += set.files[i].problems.n > 0;
        }
        fprintf(ctx->err, "gantry: %zu problem%s in %zu file%s; nothing was applied\n",
                set.n_problems, set.n_problems == 1 ? "" : "s", bad_files,
                bad_files == 1 ? "" : "s");
        spec_set_free(&set);
        return CTL_EXIT_USAGE;
    }

    json_t *list = json_array();
    for (size_t i = 0; i < set.n_files; i++)
        for (size_t s = 0; s < set.files[i].n_specs; s++)
            json_array_append_new(list, gy_spec_to_json(&set.files[i].specs[s]));
    spec_set_free(&set);
    json_t *body = json_pack("{s:o}", "workloads", list);
    struct ctl_response resp;
    int rc = ctl_client_request(&ctx->client, "POST", "/v1/apply", body, 0, &resp, &err);
    json_decref(body);
    if (rc < 0)
        return ctl_fail(ctx, &err);
    if (resp.status < 200 || resp.status >= 300) {
        ctl_response_error(&resp, &err);
        ctl_response_free(&resp);
        return ctl_fail(ctx, &err);
    }
    json_t *outcomes = json_object_get(resp.json, "workloads");
    if (!json_is_array(outcomes)) {
        ctl_response_free(&resp);
        fprintf(ctx->err, "gantry: the server's answer to the apply has no \"workloads\" list\n");
        return CTL_EXIT_FAILED;
    }
    size_t n = json_array_size(outcomes), i;
    char **names = gy_xcalloc(n ? n : 1, sizeof(*names));
    json_t *o;
    json_array_foreach(outcomes, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *outcome = json_string_value(json_object_get(o, "outcome"));
        names[i] = gy_xstrdup(name ? name : "");
        fprintf(ctx->out, "workload/%s %s (generation %lld)\n", names[i],
                outcome ? outcome : "applied", ctl_json_int(o, "generation"));
        /* The digest the leader pinned the image to, or why it could not. */
        const json_t *image = json_object_get(o, "image");
        const char *ref = json_string_value(json_object_get(image, "ref"));
        const char *digest = json_string_value(json_object_get(image, "digest"));
        const char *warning = json_string_value(json_object_get(image, "warning"));
        if (ref != NULL && digest != NULL && warning != NULL)
            fprintf(ctx->err, "gantry: warning: image %s: %s\n", ref, warning);
        if (ref != NULL && digest != NULL)
            fprintf(ctx->out, "  image %s pinned to %s\n", ref, digest);
        else if (ref != NULL && warning != NULL)
            fprintf(ctx->err,
                    "gantry: warning: image %s not pinned (nodes resolve the tag "
                    "when they pull): %s\n",
                    ref, warning);
    }
    fflush(ctx->out);
    ctl_response_free(&resp);
    int exit_code = CTL_EXIT_OK;
    if (ctl_opt_set(inv, "wait"))
        exit_code = wait_ready(ctx, names, n, timeout_ms);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return exit_code;
}
