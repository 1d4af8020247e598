/* gantry move, drain, cordon, uncordon, remove-node and rotate-key: moving replicas between
 * clouds and off nodes, make-before-break (docs/clouds.md), with progress while waiting;
 * a node's new tunnel key (docs/network.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/quantity.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"

/* How often --wait looks, and how long it waits by default. */
#define POLL_MS            200
#define DEFAULT_TIMEOUT_MS (5 * 60 * 1000)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int parse_timeout(struct ctl_context *ctx, const struct ctl_invocation *inv,
                         const char *command, int64_t *out)
{
    const char *t = ctl_opt(inv, "timeout");
    *out = DEFAULT_TIMEOUT_MS;
    if (t == NULL)
        return 0;
    struct gy_error err;
    if (gy_duration_parse(t, out, &err) < 0 || *out <= 0) {
        fprintf(ctx->err, "gantry: %s: --timeout \"%s\": must be a duration such as 90s or 5m\n",
                command, t);
        return -1;
    }
    return 0;
}

/* The condition of a workload by type, or NULL. */
static const json_t *condition_of(const json_t *w, const char *type)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(json_object_get(w, "status"), "conditions"), i, c)
    {
        if (strcmp(ctl_json_str(c, "type"), type) == 0)
            return c;
    }
    return NULL;
}

/* What the last poll printed of each pulling replica's progress ("ID\tREASON\n"...), so
 * that a line is printed only when it changed. */
struct pull_lines {
    char *seen;
};

/* Prints the image pulls under way on the target cloud's nodes (a replica whose reason is
 * "pulling image ..." or an ImagePullBackOff) when their text changed since the last poll:
 * the pull is part of the move (make-before-break waits for it). */
static void pulls_show(struct ctl_context *ctx, const json_t *items, const char *cloud,
                       struct pull_lines *lines)
{
    size_t i;
    const json_t *r;
    json_array_foreach(items, i, r)
    {
        const char *reason = ctl_json_str(r, "reason");
        if (strcmp(ctl_json_str(r, "cloud"), cloud) != 0 ||
            (strncmp(reason, "pulling image", 13) != 0 &&
             strncmp(reason, "ImagePullBackOff", 16) != 0))
            continue;
        char *line = gy_xasprintf("%s\t%s\n", ctl_json_str(r, "id"), reason);
        if (lines->seen == NULL || strstr(lines->seen, line) == NULL) {
            fprintf(ctx->out, "  %s on %s: %s\n", ctl_json_str(r, "id"), ctl_json_str(r, "node"),
                    reason);
            char *grown = gy_xasprintf("%s%s", lines->seen ? lines->seen : "", line);
            free(lines->seen);
            lines->seen = grown;
            /* Bounded: only the recent lines matter for "changed". */
            if (strlen(lines->seen) > 64 * 1024) {
                free(lines->seen);
                lines->seen = gy_xstrdup(line);
            }
        }
        free(line);
    }
}

/* Counts the workload's running and ready replicas, and those ready in cloud. */
static int replica_counts(struct ctl_context *ctx, const char *esc, const char *cloud,
                          long long *ready, long long *ready_in, long long *elsewhere,
                          struct pull_lines *lines, struct gy_error *err)
{
    char *path = gy_xasprintf("/v1/replicas?workload=%s", esc);
    json_t *doc;
    int rc = ctl_get_json(&ctx->client, path, &doc, err);
    free(path);
    if (rc < 0)
        return rc;
    *ready = *ready_in = *elsewhere = 0;
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(doc, "items"), i, r)
    {
        const char *state = ctl_json_str(r, "state");
        bool live = strcmp(state, "stopped") != 0 && strcmp(state, "lost") != 0 &&
                    strcmp(state, "stopping") != 0;
        bool in = strcmp(ctl_json_str(r, "cloud"), cloud) == 0;
        bool is_ready = strcmp(state, "running") == 0 && json_is_true(json_object_get(r, "ready"));
        if (is_ready)
            (*ready)++;
        if (is_ready && in)
            (*ready_in)++;
        if (live && !in)
            (*elsewhere)++;
    }
    pulls_show(ctx, json_object_get(doc, "items"), cloud, lines);
    json_decref(doc);
    return 0;
}

int ctl_cmd_move(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    const char *name = inv->args[0];
    if (!gy_spec_name_valid(name)) {
        fprintf(ctx->err, "gantry: move: \"%s\" is not a workload name (a DNS label)\n", name);
        return CTL_EXIT_USAGE;
    }
    const char *to = ctl_opt(inv, "to");
    if (to == NULL || *to == '\0') {
        fprintf(ctx->err, "gantry: move: --to CLOUD is required\n"
                          "Run 'gantry move --help' for usage.\n");
        return CTL_EXIT_USAGE;
    }
    int64_t timeout_ms;
    if (parse_timeout(ctx, inv, "move", &timeout_ms) < 0)
        return CTL_EXIT_USAGE;
    char *esc = ctl_url_escape(name);
    char *path = gy_xasprintf("/v1/workloads/%s/move", esc);
    json_t *body = json_pack("{s:s}", "to", to);
    json_t *answer;
    int exit_code;
    uint64_t started = ctl_now_ms();
    int rc = ctl_write_request(ctx, "POST", path, body, &answer, &exit_code);
    json_decref(body);
    free(path);
    if (rc < 0) {
        free(esc);
        return exit_code;
    }
    if (strcmp(ctl_json_str(answer, "outcome"), "unchanged") == 0) {
        fprintf(ctx->out, "workload/%s unchanged: already placed in %s only\n", name, to);
        json_decref(answer);
        free(esc);
        return CTL_EXIT_OK;
    }
    fprintf(ctx->out, "workload/%s moving to %s (generation %lld)\n", name, to,
            ctl_json_int(answer, "generation"));
    json_decref(answer);
    if (!ctl_opt_set(inv, "wait")) {
        fprintf(ctx->out, "follow it with: gantry describe workload %s\n", name);
        free(esc);
        return CTL_EXIT_OK;
    }
    char *wpath = gy_xasprintf("/v1/workloads/%s", esc);
    long long last_in = -1, last_ready = -1, min_ready = -1;
    struct pull_lines lines = {0};
    int result = CTL_EXIT_FAILED;
    struct gy_error err;
    for (;;) {
        json_t *w;
        if (ctl_get_json(&ctx->client, wpath, &w, &err) < 0) {
            result = ctl_fail(ctx, &err);
            break;
        }
        long long desired = ctl_json_int(json_object_get(w, "status"), "desired");
        long long ready, ready_in, elsewhere;
        if (replica_counts(ctx, esc, to, &ready, &ready_in, &elsewhere, &lines, &err) < 0) {
            json_decref(w);
            result = ctl_fail(ctx, &err);
            break;
        }
        if (min_ready < 0 || ready < min_ready)
            min_ready = ready;
        if (ready_in != last_in || ready != last_ready) {
            fprintf(ctx->out, "  %lld/%lld ready in %s, %lld ready in all, %lld left elsewhere\n",
                    ready_in, desired, to, ready, elsewhere);
            fflush(ctx->out);
            last_in = ready_in;
            last_ready = ready;
        }
        const json_t *stopped = condition_of(w, "MoveStopped");
        const json_t *moved = condition_of(w, "Moved");
        const json_t *moving = condition_of(w, "Moving");
        if (stopped != NULL) {
            fprintf(ctx->err, "gantry: move: %s\n", ctl_json_str(stopped, "message"));
            json_decref(w);
            break;
        }
        if (moving == NULL && moved != NULL) {
            char took[GY_QUANTITY_BUF];
            fprintf(ctx->out,
                    "workload/%s moved %s (waited %s; fewest ready replicas seen: %lld of %lld)\n",
                    name, ctl_json_str(moved, "message"),
                    gy_duration_format((int64_t)(ctl_now_ms() - started), took), min_ready,
                    desired);
            json_decref(w);
            result = CTL_EXIT_OK;
            break;
        }
        json_decref(w);
        if (ctl_now_ms() - started > (uint64_t)timeout_ms) {
            fprintf(ctx->err,
                    "gantry: move: still moving after %s; it goes on: gantry describe workload "
                    "%s\n",
                    ctl_opt(inv, "timeout") ? ctl_opt(inv, "timeout") : "5m", name);
            break;
        }
        sleep_ms(POLL_MS);
    }
    free(lines.seen);
    free(wpath);
    free(esc);
    return result;
}

/* ---------------------------------------------------------------------------------------
 * Nodes */

static bool node_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 253)
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p <= ' ')
            return false;
    return true;
}

/* The node's state and the number of live replicas on it. */
static int node_status(struct ctl_context *ctx, const char *node, char *state, size_t len,
                       long long *replicas, struct gy_error *err)
{
    json_t *doc;
    int rc = ctl_get_json(&ctx->client, "/v1/nodes", &doc, err);
    if (rc < 0)
        return rc;
    snprintf(state, len, "unknown");
    *replicas = 0;
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(doc, "items"), i, n)
    {
        if (strcmp(ctl_json_str(n, "name"), node) == 0) {
            snprintf(state, len, "%s", ctl_json_str(n, "state"));
            *replicas = ctl_json_int(json_object_get(n, "allocated"), "replicas");
        }
    }
    json_decref(doc);
    return 0;
}

static int node_request(struct ctl_context *ctx, const struct ctl_invocation *inv,
                        const char *command, const char *action, const char *done_word)
{
    const char *node = inv->args[0];
    if (!node_name_valid(node)) {
        fprintf(ctx->err, "gantry: %s: \"%s\" is not a node name\n", command, node);
        return CTL_EXIT_USAGE;
    }
    int64_t timeout_ms = 0;
    if (strcmp(command, "drain") == 0 && parse_timeout(ctx, inv, command, &timeout_ms) < 0)
        return CTL_EXIT_USAGE;
    /* No action: DELETE of the node itself (remove-node). */
    char *esc = ctl_url_escape(node);
    char *path = action != NULL ? gy_xasprintf("/v1/nodes/%s/%s", esc, action)
                                : gy_xasprintf("/v1/nodes/%s", esc);
    free(esc);
    json_t *answer;
    int exit_code;
    uint64_t started = ctl_now_ms();
    int rc =
        ctl_write_request(ctx, action != NULL ? "POST" : "DELETE", path, NULL, &answer, &exit_code);
    free(path);
    if (rc < 0)
        return exit_code;
    fprintf(ctx->out, "node/%s %s\n", node, done_word);
    json_decref(answer);
    if (strcmp(command, "drain") != 0 || !ctl_opt_set(inv, "wait"))
        return CTL_EXIT_OK;
    long long last = -1;
    struct gy_error err;
    for (;;) {
        char state[32];
        long long replicas;
        if (node_status(ctx, node, state, sizeof(state), &replicas, &err) < 0)
            return ctl_fail(ctx, &err);
        if (replicas != last) {
            fprintf(ctx->out, "  %lld replicas left on %s\n", replicas, node);
            fflush(ctx->out);
            last = replicas;
        }
        if (strcmp(state, "draining") != 0) {
            char took[GY_QUANTITY_BUF];
            fprintf(ctx->out, "node/%s drained in %s; it is %s and takes no new replicas\n", node,
                    gy_duration_format((int64_t)(ctl_now_ms() - started), took), state);
            return CTL_EXIT_OK;
        }
        if (ctl_now_ms() - started > (uint64_t)timeout_ms) {
            fprintf(ctx->err, "gantry: drain: %s still has %lld replicas; the drain goes on\n",
                    node, replicas);
            return CTL_EXIT_FAILED;
        }
        sleep_ms(POLL_MS);
    }
}

int ctl_cmd_drain(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    return node_request(ctx, inv, "drain", "drain", "draining");
}

int ctl_cmd_cordon(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    return node_request(ctx, inv, "cordon", "cordon", "cordoned");
}

int ctl_cmd_remove_node(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    return node_request(ctx, inv, "remove-node", NULL, "removed");
}

int ctl_cmd_rotate_key(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    return node_request(ctx, inv, "rotate-key", "rotate-key", "rotating its tunnel key");
}

int ctl_cmd_uncordon(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    return node_request(ctx, inv, "uncordon", "uncordon", "uncordoned");
}
