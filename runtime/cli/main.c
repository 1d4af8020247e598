/* gantry-runtime: the OCI runtime command line (runc's and crun's verbs and flags) over
 * the runtime library. Exit status: 0 success, 1 failure, 2 usage or invalid input; create
 * and run exit 127 (126) when the program cannot be found (executed), and run exits with
 * the container's status. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/xalloc.h"
#include "runtime/runtime.h"

static const char *g_root = RT_DEFAULT_ROOT;

static const char usage_text[] =
    "usage: gantry-runtime [--root DIR] COMMAND [OPTIONS] ID ...\n"
    "\n"
    "commands:\n"
    "  create [-b BUNDLE] [--pid-file F] [--inherit-stdio] [--log-max BYTES]\n"
    "         [--layer DIR ... --upper-dir D --work-dir D] ID\n"
    "  start ID\n"
    "  run [-b BUNDLE] [-d] [--pid-file F] [--layer DIR ...] ID\n"
    "  state ID                   OCI state as JSON\n"
    "  kill [-a] ID [SIGNAL]      default SIGTERM\n"
    "  delete [-f] ID\n"
    "  list [-q] [--format table|json]\n"
    "  exec [-e K=V] [--cwd DIR] [-u UID[:GID]] [--timeout SEC] ID PROGRAM [ARG ...]\n"
    "  pause ID | resume ID       freeze or thaw every process\n"
    "  update [-r FILE] [--memory B] [--cpu-quota US] [--cpu-period US] [--cpu-shares N]\n"
    "         [--pids-limit N] [--cpuset-cpus L] ID   change the resource limits\n"
    "  ps [--format table|json] ID the container's host pids\n"
    "  wait ID                    waits and exits with the container's status\n"
    "  stats ID                   CPU and memory use as JSON\n"
    "  logs ID                    the container's output (created or run -d)\n"
    "  spec [-b BUNDLE]           writes a default config.json\n"
    "  features                   what this runtime supports (runtime-spec features.md)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gantry-runtime: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(see gantry-runtime --help)\n", stderr);
    va_end(ap);
    return 2;
}

static int fail(const struct gy_error *err)
{
    fprintf(stderr, "gantry-runtime: %s\n", err->msg);
    if (err->code == GY_EINVAL || err->code == GY_EPARSE)
        return 2;
    return 1;
}

static int parse_signal(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"STOP", SIGSTOP},
        {"CONT", SIGCONT}, {"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH},
        {"PIPE", SIGPIPE}, {"CHLD", SIGCHLD},
    };
    char *end;
    long n = strtol(s, &end, 10);
    if (*s != '\0' && *end == '\0')
        return n > 0 && n < NSIG ? (int)n : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].sig;
    return -1;
}

static void format_time(int64_t ns, char *buf, size_t size)
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%09" PRId64 "Z", ns % 1000000000);
}

static int write_pid_file(const char *path, pid_t pid)
{
    FILE *f = fopen(path, "we");
    if (f == NULL || fprintf(f, "%d", (int)pid) < 0 || fclose(f) != 0) {
        fprintf(stderr, "gantry-runtime: write pid file %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */

struct create_args {
    const char *bundle;
    const char *pid_file;
    const char *layers[128];
    size_t n_layers;
    const char *upper;
    const char *work;
    int64_t log_max;
    bool detach;
    bool inherit_stdio;
};

static int parse_create(int argc, char **argv, struct create_args *a, bool run, const char **id)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},   {"pid-file", required_argument, NULL, 'p'},
        {"layer", required_argument, NULL, 'l'},    {"upper-dir", required_argument, NULL, 'U'},
        {"work-dir", required_argument, NULL, 'W'}, {"log-max", required_argument, NULL, 'm'},
        {"detach", no_argument, NULL, 'd'},         {"no-pivot", no_argument, NULL, 'P'},
        {"inherit-stdio", no_argument, NULL, 'I'},  {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof(*a));
    a->bundle = ".";
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, run ? "+b:d" : "+b:", opts, NULL)) != -1) {
        switch (ch) {
        case 'b':
            a->bundle = optarg;
            break;
        case 'p':
            a->pid_file = optarg;
            break;
        case 'l':
            if (a->n_layers == sizeof(a->layers) / sizeof(a->layers[0]))
                return usage_error("--layer: at most %zu layers",
                                   sizeof(a->layers) / sizeof(a->layers[0]));
            a->layers[a->n_layers++] = optarg;
            break;
        case 'U':
            a->upper = optarg;
            break;
        case 'W':
            a->work = optarg;
            break;
        case 'm': {
            char *end;
            a->log_max = strtoll(optarg, &end, 10);
            if (*end != '\0' || a->log_max <= 0)
                return usage_error("--log-max: \"%s\" is not a positive byte count", optarg);
            break;
        }
        case 'd':
            if (!run)
                return usage_error("--detach: only for run");
            a->detach = true;
            break;
        case 'I':
            a->inherit_stdio = true;
            break;
        case 'P':
            return usage_error("--no-pivot: not supported; the root is always pivoted");
        default:
            return 2;
        }
    }
    if (optind != argc - 1)
        return usage_error("%s: expects exactly one container id", run ? "run" : "create");
    if (a->n_layers > 0 && (a->upper == NULL || a->work == NULL))
        return usage_error("--layer: needs --upper-dir and --work-dir");
    *id = argv[optind];
    return 0;
}

static int create_exit_code(const struct gy_error *err)
{
    if (strncmp(err->msg, "exec ", 5) == 0) {
        if (err->code == GY_ENOTFOUND)
            return 127;
        if (err->code == GY_EPERM)
            return 126;
    }
    return fail(err) == 2 ? 2 : 1;
}

static int cmd_create(int argc, char **argv, bool run)
{
    struct create_args a;
    const char *id = NULL;
    int rc = parse_create(argc, argv, &a, run, &id);
    if (rc != 0)
        return rc;
    struct rt_create_opts o = {
        .root = g_root,
        .id = id,
        .bundle = a.bundle,
        .layers = a.layers,
        .n_layers = a.n_layers,
        .upper_dir = a.upper,
        .work_dir = a.work,
        .stdio_inherit = (run && !a.detach) || a.inherit_stdio,
        .start = run,
        .log_max = a.log_max,
        /* The command either exits right away (the monitor is then adopted) or waits for
         * the monitor and reaps it. */
        .monitor_child = true,
    };
    struct gy_error err;
    gy_error_clear(&err);
    if (rt_container_create(&o, NULL, &err) < 0) {
        int code = create_exit_code(&err);
        if (code >= 126)
            fprintf(stderr, "gantry-runtime: %s\n", err.msg);
        return code;
    }
    struct rt_state st;
    if (a.pid_file != NULL && rt_container_state(g_root, id, &st, &err) == 0 &&
        write_pid_file(a.pid_file, st.pid) != 0)
        return 1;
    if (!run || a.detach)
        return 0;
    return -1; /* the caller waits */
}

static volatile sig_atomic_t g_forward_pid;

static void forward_signal(int sig)
{
    if (g_forward_pid > 0)
        kill((pid_t)g_forward_pid, sig);
}

/* Waits for a container started in the foreground, forwarding the usual signals, then
 * removes it and returns its exit status. */
static int run_foreground(const char *id)
{
    struct gy_error err;
    gy_error_clear(&err);
    struct rt_state st = {0};
    if (rt_container_state(g_root, id, &st, &err) == 0)
        g_forward_pid = st.pid;
    struct sigaction sa = {.sa_handler = forward_signal};
    sigemptyset(&sa.sa_mask);
    static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        sigaction(forwarded[i], &sa, NULL);
    int code = 1;
    pid_t monitor = st.monitor_pid;
    if (rt_container_wait(g_root, id, -1, &st, &err) < 0)
        fprintf(stderr, "gantry-runtime: %s\n", err.msg);
    else
        code = st.exit_code >= 0 ? st.exit_code : 1;
    /* The monitor is this process's child (monitor_child): reap it. */
    if (monitor > 0)
        while (waitpid(monitor, NULL, 0) < 0 && errno == EINTR)
            ;
    if (rt_container_delete(g_root, id, true, &err) < 0)
        fprintf(stderr, "gantry-runtime: %s\n", err.msg);
    return code;
}

static int one_id(int argc, char **argv, const char *cmd, const char **id)
{
    if (argc != 2)
        return usage_error("%s: expects exactly one container id", cmd);
    *id = argv[1];
    return 0;
}

static int cmd_start(int argc, char **argv)
{
    const char *id = NULL;
    int rc = one_id(argc, argv, "start", &id);
    if (rc != 0)
        return rc;
    struct gy_error err;
    if (rt_container_start(g_root, id, &err) < 0)
        return fail(&err);
    return 0;
}

static int cmd_state(int argc, char **argv)
{
    const char *id = NULL;
    int rc = one_id(argc, argv, "state", &id);
    if (rc != 0)
        return rc;
    struct gy_error err;
    struct rt_state st;
    if (rt_container_state(g_root, id, &st, &err) < 0)
        return fail(&err);
    char created[64] = "";
    format_time(st.created_ns, created, sizeof(created));
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i}", "ociVersion", "1.0.2", "id", st.id,
                  "status", rt_status_name(st.status), "pid", (int)st.pid, "bundle", st.bundle,
                  "created", created, "monitorPid", (int)st.monitor_pid);
    char *annotations = rt_container_annotations(g_root, id);
    json_t *ann = annotations != NULL ? json_loads(annotations, 0, NULL) : NULL;
    free(annotations);
    if (ann != NULL && json_object_size(ann) > 0)
        json_object_set_new(doc, "annotations", ann);
    else
        json_decref(ann);
    if (st.status == RT_STATUS_STOPPED) {
        json_object_set_new(doc, "exitCode", json_integer(st.exit_code));
        json_object_set_new(doc, "exitSignal", json_integer(st.exit_signal));
        json_object_set_new(doc, "oomKilled", json_boolean(st.oom_killed));
        char finished[64];
        format_time(st.finished_ns, finished, sizeof(finished));
        if (st.finished_ns > 0)
            json_object_set_new(doc, "finished", json_string(finished));
    }
    json_dumpf(doc, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(doc);
    return 0;
}

static int cmd_kill(int argc, char **argv)
{
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
    bool all = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
        if (ch != 'a')
            return 2;
        all = true;
    }
    if (argc - optind < 1 || argc - optind > 2)
        return usage_error("kill: expects a container id and an optional signal");
    int sig = SIGTERM;
    if (argc - optind == 2 && (sig = parse_signal(argv[optind + 1])) < 0)
        return usage_error("kill: unknown signal \"%s\"", argv[optind + 1]);
    struct gy_error err;
    if (rt_container_kill(g_root, argv[optind], sig, all, &err) < 0)
        return fail(&err);
    return 0;
}

static int cmd_delete(int argc, char **argv)
{
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    bool force = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+f", opts, NULL)) != -1) {
        if (ch != 'f')
            return 2;
        force = true;
    }
    if (argc - optind != 1)
        return usage_error("delete: expects exactly one container id");
    struct gy_error err;
    if (rt_container_delete(g_root, argv[optind], force, &err) < 0)
        return fail(&err);
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {NULL, 0, NULL, 0}};
    bool json = false, quiet = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+f:q", opts, NULL)) != -1) {
        if (ch == 'q')
            quiet = true;
        else if (ch == 'f' && strcmp(optarg, "json") == 0)
            json = true;
        else if (ch == 'f' && strcmp(optarg, "table") == 0)
            json = false;
        else
            return ch == 'f' ? usage_error("list --format: \"%s\" is not table or json", optarg)
                             : 2;
    }
    if (optind != argc)
        return usage_error("list: takes no arguments");
    struct gy_error err;
    char **ids = NULL;
    size_t n = 0;
    if (rt_container_list(g_root, &ids, &n, &err) < 0)
        return fail(&err);
    json_t *arr = json ? json_array() : NULL;
    if (!json && !quiet)
        printf("%-24s %-8s %-10s %-32s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
    for (size_t i = 0; i < n; i++) {
        struct rt_state st;
        if (rt_container_state(g_root, ids[i], &st, NULL) < 0)
            continue;
        char created[64];
        format_time(st.created_ns, created, sizeof(created));
        if (quiet)
            printf("%s\n", st.id);
        else if (json)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:s, s:s}", "id", st.id, "pid",
                                                 (int)st.pid, "status", rt_status_name(st.status),
                                                 "bundle", st.bundle, "created", created));
        else
            printf("%-24s %-8d %-10s %-32s %s\n", st.id, (int)st.pid, rt_status_name(st.status),
                   st.bundle, created);
    }
    if (json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(arr);
    }
    rt_ids_free(ids, n);
    return 0;
}

static int cmd_exec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"env", required_argument, NULL, 'e'},  {"cwd", required_argument, NULL, 'c'},
        {"user", required_argument, NULL, 'u'}, {"timeout", required_argument, NULL, 't'},
        {"detach", no_argument, NULL, 'd'},     {NULL, 0, NULL, 0},
    };
    const char *env[256];
    size_t n_env = 0;
    struct rt_exec_opts o = {.capture = false};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+e:u:", opts, NULL)) != -1) {
        switch (ch) {
        case 'e':
            if (strchr(optarg, '=') == NULL)
                return usage_error("exec --env: \"%s\" is not KEY=VALUE", optarg);
            if (n_env + 1 == sizeof(env) / sizeof(env[0]))
                return usage_error("exec --env: too many variables");
            env[n_env++] = optarg;
            break;
        case 'c':
            if (optarg[0] != '/')
                return usage_error("exec --cwd: \"%s\" is not an absolute path", optarg);
            o.cwd = optarg;
            break;
        case 'u': {
            char *end;
            unsigned long uid = strtoul(optarg, &end, 10);
            unsigned long gid = 0;
            if (*end == ':')
                gid = strtoul(end + 1, &end, 10);
            if (*end != '\0' || end == optarg)
                return usage_error("exec --user: \"%s\" is not UID[:GID]", optarg);
            o.has_user = true;
            o.uid = (uid_t)uid;
            o.gid = (gid_t)gid;
            break;
        }
        case 't': {
            char *end;
            long secs = strtol(optarg, &end, 10);
            if (*end != '\0' || secs <= 0 || secs > 86400)
                return usage_error("exec --timeout: \"%s\" is not 1..86400 seconds", optarg);
            o.timeout_ms = (int)secs * 1000;
            break;
        }
        case 'd':
            return usage_error("exec --detach: not supported; exec waits for the process");
        default:
            return 2;
        }
    }
    if (argc - optind < 2)
        return usage_error("exec: expects a container id and a program");
    const char *id = argv[optind];
    o.argv = (const char *const *)&argv[optind + 1];
    struct gy_error err;
    struct rt_exec_result res;
    if (n_env > 0) {
        env[n_env] = NULL;
        o.env = env;
    }
    if (rt_container_exec(g_root, id, &o, &res, &err) < 0)
        return fail(&err);
    free(res.output);
    return res.exit_code;
}

static int cmd_pause(int argc, char **argv, bool pause)
{
    const char *id = NULL;
    int rc = one_id(argc, argv, pause ? "pause" : "resume", &id);
    if (rc != 0)
        return rc;
    struct gy_error err;
    if ((pause ? rt_container_pause(g_root, id, &err) : rt_container_resume(g_root, id, &err)) < 0)
        return fail(&err);
    return 0;
}

/* Parses a signed integer option for update; false when it is not one. */
static bool int_option(const char *text, json_int_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = v;
    return true;
}

static int cmd_update(int argc, char **argv)
{
    static const struct option opts[] = {
        {"resources", required_argument, NULL, 'r'},   {"memory", required_argument, NULL, 'm'},
        {"cpu-quota", required_argument, NULL, 'q'},   {"cpu-period", required_argument, NULL, 'p'},
        {"cpu-shares", required_argument, NULL, 's'},  {"pids-limit", required_argument, NULL, 'P'},
        {"cpuset-cpus", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0},
    };
    json_t *res = json_object();
    const char *file = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+r:", opts, NULL)) != -1) {
        json_int_t v = 0;
        const char *group = NULL, *key = NULL;
        switch (ch) {
        case 'r':
            file = optarg;
            continue;
        case 'm':
            group = "memory", key = "limit";
            break;
        case 'q':
            group = "cpu", key = "quota";
            break;
        case 'p':
            group = "cpu", key = "period";
            break;
        case 's':
            group = "cpu", key = "shares";
            break;
        case 'P':
            group = "pids", key = "limit";
            break;
        case 'c': {
            json_t *cpu = json_object_get(res, "cpu");
            if (cpu == NULL)
                json_object_set_new(res, "cpu", cpu = json_object());
            json_object_set_new(cpu, "cpus", json_string(optarg));
            continue;
        }
        default:
            json_decref(res);
            return 2;
        }
        if (!int_option(optarg, &v)) {
            json_decref(res);
            return usage_error("update: \"%s\" is not a number", optarg);
        }
        json_t *obj = json_object_get(res, group);
        if (obj == NULL)
            json_object_set_new(res, group, obj = json_object());
        json_object_set_new(obj, key, json_integer(v));
    }
    if (argc - optind != 1) {
        json_decref(res);
        return usage_error("update: expects exactly one container id");
    }
    if (file != NULL) {
        if (json_object_size(res) > 0) {
            json_decref(res);
            return usage_error("update: -r and the limit options exclude each other");
        }
        json_decref(res);
        json_error_t jerr;
        res = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(file, 0, &jerr);
        if (res == NULL && jerr.line < 1)
            return usage_error("update -r %s: %s", file, jerr.text);
        if (res == NULL)
            return usage_error("update -r %s: line %d: %s", file, jerr.line, jerr.text);
    }
    char *text = json_dumps(res, JSON_COMPACT);
    json_decref(res);
    struct gy_error err;
    int rc = rt_container_update(g_root, argv[optind], text != NULL ? text : "{}", &err);
    free(text);
    if (rc < 0)
        return fail(&err);
    return 0;
}

static int cmd_ps(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
        if (ch != 'f')
            return 2;
        if (strcmp(optarg, "json") != 0 && strcmp(optarg, "table") != 0)
            return usage_error("ps --format: \"%s\" is not table or json", optarg);
        json = strcmp(optarg, "json") == 0;
    }
    if (argc - optind != 1)
        return usage_error("ps: expects exactly one container id");
    struct gy_error err;
    pid_t *pids = NULL;
    size_t n = 0;
    if (rt_container_pids(g_root, argv[optind], &pids, &n, &err) < 0)
        return fail(&err);
    if (json)
        putchar('[');
    else
        printf("PID\n");
    for (size_t i = 0; i < n; i++) {
        if (json)
            printf("%s%d", i > 0 ? "," : "", (int)pids[i]);
        else
            printf("%d\n", (int)pids[i]);
    }
    if (json)
        printf("]\n");
    free(pids);
    return 0;
}

static int cmd_wait(int argc, char **argv)
{
    const char *id = NULL;
    int rc = one_id(argc, argv, "wait", &id);
    if (rc != 0)
        return rc;
    struct gy_error err;
    struct rt_state st;
    if (rt_container_wait(g_root, id, -1, &st, &err) < 0)
        return fail(&err);
    printf("%d\n", st.exit_code);
    return st.exit_code >= 0 ? st.exit_code : 1;
}

static int cmd_stats(int argc, char **argv)
{
    const char *id = NULL;
    int rc = one_id(argc, argv, "stats", &id);
    if (rc != 0)
        return rc;
    struct gy_error err;
    struct rt_stats s;
    if (rt_container_stats(g_root, id, &s, &err) < 0)
        return fail(&err);
    printf("{\"id\":\"%s\",\"cpuUsageNs\":%" PRIu64 ",\"memoryBytes\":%" PRIu64
           ",\"memoryLimit\":%" PRIu64 ",\"pids\":%" PRIu64 "}\n",
           id, s.cpu_usage_ns, s.memory_bytes, s.memory_limit, s.pids);
    return 0;
}

static int cmd_logs(int argc, char **argv)
{
    const char *id = NULL;
    int rc = one_id(argc, argv, "logs", &id);
    if (rc != 0)
        return rc;
    struct gy_error err;
    struct rt_state st;
    if (rt_container_state(g_root, id, &st, &err) < 0)
        return fail(&err);
    cleanup_free char *path = rt_container_log_path(g_root, id);
    cleanup_fclose FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "gantry-runtime: open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stdout);
    return 0;
}

static int cmd_spec(int argc, char **argv)
{
    static const struct option opts[] = {{"bundle", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    const char *bundle = ".";
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+b:", opts, NULL)) != -1) {
        if (ch != 'b')
            return 2;
        bundle = optarg;
    }
    if (optind != argc)
        return usage_error("spec: takes no arguments");
    cleanup_free char *path = gy_xasprintf("%s/config.json", bundle);
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "gantry-runtime: %s already exists\n", path);
        return 1;
    }
    cleanup_free char *text = rt_config_default_json();
    FILE *f = fopen(path, "we");
    if (f == NULL || fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
        fprintf(stderr, "gantry-runtime: write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {"log", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"systemd-cgroup", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            g_root = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'v':
            printf("gantry-runtime version %s\nspec: 1.0.2\n", GANTRY_VERSION);
            return 0;
        case 'l':
        case 'f':
            /* Accepted for compatibility with tools that drive runc: errors always go to
             * stderr. */
            break;
        case 's':
            return usage_error("--systemd-cgroup: not supported; cgroups are managed directly");
        default:
            return 2;
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (strcmp(cmd, "create") == 0)
        return cmd_create(sub_argc, sub_argv, false);
    if (strcmp(cmd, "run") == 0) {
        int rc = cmd_create(sub_argc, sub_argv, true);
        if (rc >= 0)
            return rc;
        return run_foreground(sub_argv[sub_argc - 1]);
    }
    if (strcmp(cmd, "start") == 0)
        return cmd_start(sub_argc, sub_argv);
    if (strcmp(cmd, "state") == 0)
        return cmd_state(sub_argc, sub_argv);
    if (strcmp(cmd, "kill") == 0)
        return cmd_kill(sub_argc, sub_argv);
    if (strcmp(cmd, "delete") == 0)
        return cmd_delete(sub_argc, sub_argv);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(sub_argc, sub_argv);
    if (strcmp(cmd, "exec") == 0)
        return cmd_exec(sub_argc, sub_argv);
    if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "resume") == 0)
        return cmd_pause(sub_argc, sub_argv, cmd[0] == 'p');
    if (strcmp(cmd, "update") == 0)
        return cmd_update(sub_argc, sub_argv);
    if (strcmp(cmd, "ps") == 0)
        return cmd_ps(sub_argc, sub_argv);
    if (strcmp(cmd, "wait") == 0)
        return cmd_wait(sub_argc, sub_argv);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(sub_argc, sub_argv);
    if (strcmp(cmd, "logs") == 0)
        return cmd_logs(sub_argc, sub_argv);
    if (strcmp(cmd, "spec") == 0)
        return cmd_spec(sub_argc, sub_argv);
    if (strcmp(cmd, "features") == 0) {
        if (sub_argc != 1)
            return usage_error("features: takes no arguments");
        char *text = rt_features_json();
        puts(text);
        free(text);
        return 0;
    }
    return usage_error("unknown command \"%s\"", cmd);
}
