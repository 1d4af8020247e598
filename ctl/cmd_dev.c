/* gantry dev: a one-server control plane and a local agent on this machine, for trying
 * Gantry out. Their logs stream to the terminal with a prefix; Ctrl-C removes every
 * workload (so the agent stops the containers), then stops the agent and the server. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"

extern char **environ;

struct child {
    const char *label;
    pid_t pid;
    int out;                      /* read end of its stdout and stderr */
    char pid_file[PATH_MAX + 32]; /* DIR/LABEL.pid while it runs, for whoever cleans up */
    char line[4096];
    size_t used;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The path of a sibling binary: next to this one (installed), in the build tree
 * (build/ctl/gantry -> build/FOLDER/NAME), or NAME itself for a PATH lookup. */
static void sibling(const char *folder, const char *name, char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            int w = snprintf(out, len, "%s/%s", self, name);
            if (w > 0 && (size_t)w < len && access(out, X_OK) == 0)
                return;
            w = snprintf(out, len, "%s/../%s/%s", self, folder, name);
            if (w > 0 && (size_t)w < len && access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, len, "%s", name);
}

static int spawn(struct child *c, const char *const argv[], struct gy_error *err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return gy_error_sys(err, errno, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    /* Its own process group: Ctrl-C reaches gantry dev only, which stops things in order. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    int rc = posix_spawnp(&c->pid, argv[0], &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return gy_error_sys(err, rc, "start %s", argv[0]);
    }
    c->out = fds[0];
    fcntl(c->out, F_SETFL, O_NONBLOCK);
    /* Should gantry dev itself be killed, its children run on (their own process groups):
     * their pids are in the data directory. */
    FILE *f = *c->pid_file != '\0' ? fopen(c->pid_file, "we") : NULL;
    if (f != NULL) {
        fprintf(f, "%d\n", (int)c->pid);
        fclose(f);
    }
    return 0;
}

/* Copies whole lines of a child's output to out with its label. */
static void drain(struct ctl_context *ctx, struct child *c)
{
    for (;;) {
        ssize_t n = read(c->out, c->line + c->used, sizeof(c->line) - 1 - c->used);
        if (n <= 0)
            break;
        c->used += (size_t)n;
        char *start = c->line, *nl;
        while ((nl = memchr(start, '\n', c->used - (size_t)(start - c->line))) != NULL) {
            fprintf(ctx->out, "%-9s | %.*s\n", c->label, (int)(nl - start), start);
            start = nl + 1;
        }
        size_t rest = c->used - (size_t)(start - c->line);
        if (rest == sizeof(c->line) - 1) {
            fprintf(ctx->out, "%-9s | %.*s\n", c->label, (int)rest, start);
            rest = 0;
        }
        memmove(c->line, start, rest);
        c->used = rest;
    }
    fflush(ctx->out);
}

static void pump(struct ctl_context *ctx, struct child *kids, size_t n, int timeout_ms)
{
    struct pollfd pfd[2];
    for (size_t i = 0; i < n; i++) {
        pfd[i].fd = kids[i].pid > 0 ? kids[i].out : -1;
        pfd[i].events = POLLIN;
    }
    if (poll(pfd, (nfds_t)n, timeout_ms) > 0)
        for (size_t i = 0; i < n; i++)
            if (pfd[i].revents & (POLLIN | POLLHUP))
                drain(ctx, &kids[i]);
}

static bool server_up(struct ctl_context *ctx)
{
    struct ctl_response resp = {0};
    struct gy_error err;
    bool up = ctl_client_request(&ctx->client, "GET", "/healthz", NULL, 1000, &resp, &err) == 0 &&
              resp.status == 200;
    ctl_response_free(&resp);
    return up;
}

/* Stops a child with SIGTERM, then SIGKILL after grace_ms, streaming its last words. */
static void stop_child(struct ctl_context *ctx, struct child *kids, size_t n, struct child *c,
                       int grace_ms)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 100) {
        pump(ctx, kids, n, 100);
        if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
            c->pid = 0;
            break;
        }
    }
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    if (*c->pid_file != '\0')
        unlink(c->pid_file);
    drain(ctx, c);
}

/* Deletes every workload and waits (at most 30 s) until their replicas are gone. */
static void remove_workloads(struct ctl_context *ctx, struct child *kids, size_t n)
{
    struct ctl_response resp = {0};
    struct gy_error err;
    if (ctl_client_request(&ctx->client, "GET", "/v1/workloads", NULL, 5000, &resp, &err) == 0 &&
        resp.status == 200 && resp.json != NULL) {
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(resp.json, "items"), i, w)
        {
            const char *name = json_string_value(json_object_get(w, "name"));
            if (name == NULL)
                continue;
            char path[256];
            snprintf(path, sizeof(path), "/v1/workloads/%s", name);
            struct ctl_response del = {0};
            ctl_client_request(&ctx->client, "DELETE", path, NULL, 5000, &del, &err);
            ctl_response_free(&del);
            fprintf(ctx->out, "gantry dev: deleted workload %s\n", name);
        }
    }
    ctl_response_free(&resp);
    for (int waited = 0; waited < 30000; waited += 200) {
        struct ctl_response r = {0};
        bool empty =
            ctl_client_request(&ctx->client, "GET", "/v1/replicas", NULL, 2000, &r, &err) == 0 &&
            r.status == 200 && r.json != NULL &&
            json_array_size(json_object_get(r.json, "items")) == 0;
        ctl_response_free(&r);
        if (empty)
            return;
        pump(ctx, kids, n, 200);
    }
    fprintf(ctx->out, "gantry dev: some replicas did not stop within 30s\n");
}

int ctl_cmd_dev(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    struct gy_error err;
    if (geteuid() != 0) {
        gy_error_set(&err, GY_EPERM, "dev must run as root: the agent creates containers");
        return ctl_fail(ctx, &err);
    }
    char dir[PATH_MAX];
    const char *given = ctl_opt(inv, "data-dir");
    if (given != NULL) {
        snprintf(dir, sizeof(dir), "%s", given);
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            gy_error_sys(&err, errno, "create %s", dir);
            return ctl_fail(ctx, &err);
        }
    } else {
        snprintf(dir, sizeof(dir), "/tmp/gantry-dev.XXXXXX");
        if (mkdtemp(dir) == NULL) {
            gy_error_sys(&err, errno, "create a data directory under /tmp");
            return ctl_fail(ctx, &err);
        }
    }
    char sched[PATH_MAX], agent[PATH_MAX], server_dir[PATH_MAX + 16], agent_dir[PATH_MAX + 16],
        runtime_dir[PATH_MAX + 16], host[256] = "dev";
    sibling("scheduler", "gantry-scheduler", sched, sizeof(sched));
    sibling("agent", "gantry-agent", agent, sizeof(agent));
    snprintf(server_dir, sizeof(server_dir), "%s/server", dir);
    snprintf(agent_dir, sizeof(agent_dir), "%s/agent", dir);
    snprintf(runtime_dir, sizeof(runtime_dir), "%s/runtime", dir);
    gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p != '\0'; p++)
        if (*p == '.') /* a node name is one DNS label */
            *p = '\0';

    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct child kids[2] = {{.label = "scheduler", .out = -1}, {.label = "agent", .out = -1}};
    for (size_t i = 0; i < 2; i++)
        snprintf(kids[i].pid_file, sizeof(kids[i].pid_file), "%s/%s.pid", dir, kids[i].label);
    const char *sargv[] = {sched,
                           "--id",
                           "1",
                           "--data-dir",
                           server_dir,
                           "--bootstrap",
                           "1=127.0.0.1:7701",
                           "--raft-addr",
                           "127.0.0.1:7701",
                           "--api-addr",
                           "127.0.0.1:7700",
                           "--agent-addr",
                           "127.0.0.1:7702",
                           NULL};
    if (spawn(&kids[0], sargv, &err) < 0)
        return ctl_fail(ctx, &err);
    for (int waited = 0; waited < 15000 && !server_up(ctx) && !stop_requested; waited += 100)
        pump(ctx, kids, 1, 100);
    if (!server_up(ctx)) {
        stop_child(ctx, kids, 1, &kids[0], 2000);
        gy_error_set(&err, GY_EUNAVAILABLE,
                     "the control plane did not come up (see its log above)");
        return ctl_fail(ctx, &err);
    }
    const char *aargv[] = {agent,        "--servers", "127.0.0.1:7702", "--name",    host,
                           "--data-dir", agent_dir,   "--runtime-root", runtime_dir, NULL};
    if (spawn(&kids[1], aargv, &err) < 0) {
        stop_child(ctx, kids, 1, &kids[0], 5000);
        return ctl_fail(ctx, &err);
    }
    fprintf(ctx->out,
            "gantry dev: a one-server control plane and an agent for node \"%s\" are running.\n"
            "  data:    %s\n"
            "  API:     http://127.0.0.1:7700   (gantry's default --server)\n"
            "  images:  gantry-agent --data-dir %s image import NAME ROOTFS\n"
            "  try:     gantry apply -f examples/hello.yaml --wait && gantry get replicas\n"
            "  Ctrl-C removes the workloads and stops the agent and the server.\n",
            host, dir, agent_dir);
    fflush(ctx->out);

    while (!stop_requested) {
        pump(ctx, kids, 2, 200);
        for (size_t i = 0; i < 2; i++) {
            if (kids[i].pid > 0 && waitpid(kids[i].pid, NULL, WNOHANG) == kids[i].pid) {
                unlink(kids[i].pid_file);
                drain(ctx, &kids[i]);
                fprintf(ctx->out, "gantry dev: %s exited; stopping\n", kids[i].label);
                kids[i].pid = 0;
                stop_requested = 1;
            }
        }
    }
    fprintf(ctx->out, "gantry dev: stopping\n");
    if (kids[0].pid > 0 && kids[1].pid > 0)
        remove_workloads(ctx, kids, 2);
    stop_child(ctx, kids, 2, &kids[1], 10000);
    stop_child(ctx, kids, 2, &kids[0], 10000);
    for (size_t i = 0; i < 2; i++)
        if (kids[i].out >= 0)
            close(kids[i].out);
    fprintf(ctx->out, "gantry dev: stopped; data kept in %s\n", dir);
    return 0;
}
