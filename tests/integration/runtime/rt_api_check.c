/* Drives the runtime library the way the node agent does: an in-memory config, image
 * layers with an upper directory, exec with captured output and a timeout, stats, wait
 * and delete. Prints one line per check ("ok: ..." or "FAIL: ...") and exits non-zero if
 * any failed.
 *
 *   rt_api_check STATE_ROOT LAYER_DIR SCRATCH_DIR ID [spawner]
 *
 * With "spawner" the checks run through a spawner (runtime/spawner.h) started first, as
 * the agent runs them, and then creates and execs run from several threads at once while
 * other threads allocate without pause: each must finish (a fork from a process whose other
 * threads hold the allocator's lock would leave its child waiting for ever). */
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime/runtime.h"
#include "runtime/spawner.h"

static int failures;

static void check(bool ok, const char *what, const char *detail)
{
    bool show = !ok && detail != NULL;
    printf("%s: %s%s%s\n", ok ? "ok" : "FAIL", what, show ? " -- " : "", show ? detail : "");
    if (!ok)
        failures++;
}

/* The default config with the process and the namespaces the agent would use. */
static char *agent_config(void)
{
    char *text = rt_config_default_json();
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_t *process = json_object_get(doc, "process");
    json_object_set_new(process, "args",
                        json_pack("[s, s, s]", "sh", "-c", "echo started; exec sleep 60"));
    json_object_set_new(
        json_object_get(doc, "linux"), "resources",
        json_pack("{s:{s:i}, s:{s:i}}", "memory", "limit", 64 << 20, "pids", "limit", 100));
    json_object_del(doc, "root");
    char *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return out;
}

/* ---- Many threads at once, through the spawner ---------------------------------------- */

#define CHURN_THREADS 4
#define CHURN_ROUNDS  3

static atomic_bool churn_stop;
static atomic_int churn_failures;
static const char *churn_root, *churn_layer, *churn_scratch, *churn_id;

static void *allocator_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        json_t *doc = json_pack("{s:s,s:[i,i,i]}", "busy", "allocating", "n", 1, 2, 3);
        char *text = json_dumps(doc, 0);
        free(text);
        json_decref(doc);
    }
    return NULL;
}

static void *creator_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        char id[128], upper[512], work[512];
        snprintf(id, sizeof(id), "%s-t%d-%d", churn_id, t, round);
        snprintf(upper, sizeof(upper), "%s/%s-upper", churn_scratch, id);
        snprintf(work, sizeof(work), "%s/%s-work", churn_scratch, id);
        mkdir(upper, 0755);
        mkdir(work, 0755);
        char *config = agent_config();
        const char *layers[] = {churn_layer};
        struct rt_create_opts o = {.root = churn_root,
                                   .id = id,
                                   .config_json = config,
                                   .layers = layers,
                                   .n_layers = 1,
                                   .upper_dir = upper,
                                   .work_dir = work,
                                   .start = true,
                                   .log_max = 4096};
        struct gy_error err;
        gy_error_clear(&err);
        int rc = rt_container_create(&o, NULL, &err);
        free(config);
        if (rc < 0) {
            fprintf(stderr, "create %s: %s\n", id, err.msg);
            atomic_fetch_add(&churn_failures, 1);
            continue;
        }
        const char *hello[] = {"echo", id, NULL};
        struct rt_exec_opts eo = {.argv = hello, .capture = true, .output_max = 256};
        struct rt_exec_result res = {0};
        rc = rt_container_exec(churn_root, id, &eo, &res, &err);
        if (rc < 0 || res.exit_code != 0 || res.output == NULL || strstr(res.output, id) == NULL) {
            fprintf(stderr, "exec in %s: %s\n", id, rc < 0 ? err.msg : "wrong output");
            atomic_fetch_add(&churn_failures, 1);
        }
        free(res.output);
        if (rt_container_delete(churn_root, id, true, &err) < 0) {
            fprintf(stderr, "delete %s: %s\n", id, err.msg);
            atomic_fetch_add(&churn_failures, 1);
        }
    }
    return NULL;
}

static void churn(void)
{
    pthread_t alloc[CHURN_THREADS], create[CHURN_THREADS];
    for (int i = 0; i < CHURN_THREADS; i++)
        pthread_create(&alloc[i], NULL, allocator_thread, NULL);
    for (int i = 0; i < CHURN_THREADS; i++)
        pthread_create(&create[i], NULL, creator_thread, (void *)(intptr_t)i);
    for (int i = 0; i < CHURN_THREADS; i++)
        pthread_join(create[i], NULL);
    atomic_store(&churn_stop, true);
    for (int i = 0; i < CHURN_THREADS; i++)
        pthread_join(alloc[i], NULL);
    char what[160];
    snprintf(what, sizeof(what),
             "%d creates, execs and deletes from %d threads at once, beside %d threads "
             "allocating, all finish",
             CHURN_THREADS * CHURN_ROUNDS, CHURN_THREADS, CHURN_THREADS);
    check(atomic_load(&churn_failures) == 0, what, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "spawner") == 0)) {
        fprintf(stderr, "usage: rt_api_check STATE_ROOT LAYER_DIR SCRATCH_DIR ID [spawner]\n");
        return 2;
    }
    const char *root = argv[1], *layer = argv[2], *scratch = argv[3], *id = argv[4];
    bool spawner = argc == 6;
    if (spawner) {
        struct gy_error serr;
        check(rt_spawner_start(&serr) == 0 && rt_spawner_active(), "the spawner starts", serr.msg);
    }
    char upper[512], work[512];
    snprintf(upper, sizeof(upper), "%s/upper", scratch);
    snprintf(work, sizeof(work), "%s/work", scratch);
    mkdir(upper, 0755);
    mkdir(work, 0755);
    char *config = agent_config();
    const char *layers[] = {layer};
    struct rt_create_opts o = {
        .root = root,
        .id = id,
        .config_json = config,
        .layers = layers,
        .n_layers = 1,
        .upper_dir = upper,
        .work_dir = work,
        .log_max = 4096,
    };
    struct gy_error err;
    gy_error_clear(&err);
    pid_t monitor = 0;
    int rc = rt_container_create(&o, &monitor, &err);
    free(config);
    check(rc == 0, "create from an in-memory config over a layer", rc == 0 ? NULL : err.msg);
    if (rc != 0)
        return 1;
    struct rt_state st;
    rt_container_state(root, id, &st, &err);
    check(st.status == RT_STATUS_CREATED && st.monitor_pid == monitor,
          "created, and state names the monitor create returned", NULL);
    check(rt_container_start(root, id, &err) == 0, "start", err.msg);

    const char *hello[] = {"sh", "-c", "echo out; echo err >&2; echo $HOSTNAME", NULL};
    struct rt_exec_opts eo = {.argv = hello, .capture = true, .output_max = 4096};
    struct rt_exec_result res;
    rc = rt_container_exec(root, id, &eo, &res, &err);
    check(rc == 0 && res.exit_code == 0, "exec exits 0", rc == 0 ? NULL : err.msg);
    check(rc == 0 && strstr(res.output, "out\n") != NULL && strstr(res.output, "err\n") != NULL,
          "exec captures stdout and stderr", rc == 0 ? res.output : NULL);
    free(res.output);

    const char *chatty[] = {"sh", "-c",
                            "i=0; while [ $i -lt 2000 ]; do echo 0123456789; "
                            "i=$((i+1)); done",
                            NULL};
    eo = (struct rt_exec_opts){.argv = chatty, .capture = true, .output_max = 100};
    rc = rt_container_exec(root, id, &eo, &res, &err);
    check(rc == 0 && res.exit_code == 0 && res.output_len == 100,
          "captured output stops at output_max while the process runs to the end", NULL);
    free(res.output);

    const char *slow[] = {"sleep", "30", NULL};
    eo = (struct rt_exec_opts){.argv = slow, .capture = true, .output_max = 64, .timeout_ms = 300};
    rc = rt_container_exec(root, id, &eo, &res, &err);
    check(rc == 0 && res.timed_out && res.signal == SIGKILL && res.exit_code == 137,
          "a health check past its timeout is killed", rc == 0 ? NULL : err.msg);
    free(res.output);

    const char *missing[] = {"no-such-check", NULL};
    eo = (struct rt_exec_opts){.argv = missing, .capture = true, .output_max = 256};
    rc = rt_container_exec(root, id, &eo, &res, &err);
    check(rc == 0 && res.exit_code == 127 && strstr(res.output, "no-such-check") != NULL,
          "a missing program exits 127 and says so", rc == 0 ? res.output : err.msg);
    free(res.output);

    const char *writer[] = {"sh", "-c", "echo data > /from-exec", NULL};
    eo = (struct rt_exec_opts){.argv = writer};
    rt_container_exec(root, id, &eo, &res, &err);
    char created[600];
    snprintf(created, sizeof(created), "%s/from-exec", upper);
    check(access(created, F_OK) == 0, "writes land in the upper directory", NULL);

    struct rt_stats stats;
    rc = rt_container_stats(root, id, &stats, &err);
    check(rc == 0 && stats.cpu_usage_ns > 0 && stats.memory_bytes > 0 &&
              stats.memory_limit == (64u << 20) && stats.pids >= 1,
          "stats: cpu time, memory and its limit, tasks", rc == 0 ? NULL : err.msg);

    char **ids = NULL;
    size_t n = 0;
    rt_container_list(root, &ids, &n, &err);
    bool listed = false;
    for (size_t i = 0; i < n; i++)
        listed |= strcmp(ids[i], id) == 0;
    rt_ids_free(ids, n);
    check(listed, "list includes it", NULL);

    rc = rt_container_wait(root, id, 200, &st, &err);
    check(rc < 0 && err.code == GY_ETIMEOUT, "wait with a timeout times out while it runs", NULL);
    check(rt_container_kill(root, id, SIGKILL, false, &err) == 0, "kill", err.msg);
    rc = rt_container_wait(root, id, 5000, &st, &err);
    check(rc == 0 && st.status == RT_STATUS_STOPPED && st.exit_signal == SIGKILL && !st.oom_killed,
          "wait reports the signal", rc == 0 ? NULL : err.msg);
    char *log = rt_container_log_path(root, id);
    FILE *f = fopen(log, "r");
    char line[64] = "";
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        fclose(f);
    }
    free(log);
    check(strcmp(line, "started\n") == 0, "the log holds the container's output", line);
    check(rt_container_delete(root, id, false, &err) == 0, "delete", err.msg);
    check(rt_container_state(root, id, &st, &err) < 0 && err.code == GY_ENOTFOUND,
          "state of a deleted container is not found", NULL);
    if (spawner) {
        churn_root = root;
        churn_layer = layer;
        churn_scratch = scratch;
        churn_id = id;
        churn();
    }
    return failures == 0 ? 0 : 1;
}
