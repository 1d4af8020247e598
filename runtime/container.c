/* Creating a container: the caller's side (validation, state directory, clean-up on
 * failure), the monitor that owns the container, and the container's init process up to
 * the moment it execs the user's program. */
#include "runtime/internal.h"
#include "runtime/spawner.h"
#include "runtime/security.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* Messages on the monitor-init socket (SOCK_SEQPACKET keeps them whole). */
enum {
    SYNC_GO = 'G',     /* monitor -> init: cgroup and id maps are in place; code is init's host
                        * pid, msg[0] is 1 when init goes on to exec without waiting for
                        * SYNC_START (create with start) */
    SYNC_CGROUP = 'C', /* monitor -> init: init is in its cgroup and the prestart and
                        * createRuntime hooks have run */
    SYNC_READY = 'R',  /* init -> monitor: set up, waiting for start */
    SYNC_START = 'S',  /* monitor -> init: exec now */
    SYNC_ERROR = 'E',  /* init -> monitor: setup or exec failed (code, message follow) */
};

struct sync_msg {
    char type;
    int32_t code;
    char msg[GY_ERROR_MSG_MAX];
};

/* What the monitor tells the creator once (one write, below PIPE_BUF, so atomic). */
struct create_report {
    int32_t code; /* 0 or a positive enum gy_code */
    int32_t monitor_pid;
    char msg[GY_ERROR_MSG_MAX];
};

struct create_ctx {
    const struct rt_create_opts *opts;
    struct rt_config *config;
    const char *id;
    char *dir;
    char *bundle;
    char *rootfs;
    char *cgroup_path;
    const struct rt_cgroup_ops *cg;
    int report_fd;
    int64_t log_max;
    pid_t init_pid; /* the init's host pid, as init learns it from SYNC_GO */
    int sync_fd;    /* init's end of the monitor socket */
    bool in_cgroup; /* init has received SYNC_CGROUP */
};

/* ------------------------------------------------------------------------------------ */
/* Init: runs in the new namespaces until exec.                                          */

static void sync_send_error(int fd, const struct gy_error *err)
{
    struct sync_msg m = {.type = SYNC_ERROR, .code = (int32_t)err->code};
    snprintf(m.msg, sizeof(m.msg), "%s", err->msg);
    if (send(fd, &m, sizeof(m), MSG_NOSIGNAL) < 0)
        return;
}

static void reset_signals(void)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
}

/* Init mounts its root while the monitor moves it into its cgroup (on cgroup v1 that
 * write waits for an RCU grace period); what depends on the cgroup waits here: the cgroup
 * namespace, which is rooted at init's cgroup when it is made, the cgroup mount, the
 * createContainer hooks, the rlimits and the exec. */
static int wait_for_cgroup(void *opaque, struct gy_error *err)
{
    struct create_ctx *ctx = opaque;
    if (ctx->in_cgroup)
        return 0;
    char type = 0;
    if (recv(ctx->sync_fd, &type, 1, 0) != 1 || type != SYNC_CGROUP)
        _exit(1); /* the monitor gave up; it reports why */
    ctx->in_cgroup = true;
    const struct rt_config *c = ctx->config;
    if (c->ns[RT_NS_CGROUP] && c->ns_path[RT_NS_CGROUP] == NULL && unshare(CLONE_NEWCGROUP) < 0)
        return gy_error_sys(err, errno, "unshare the cgroup namespace");
    return 0;
}

/* createContainer hooks: in the container's namespaces, before pivot_root. */
static int run_create_container_hooks(void *opaque, struct gy_error *err)
{
    struct create_ctx *ctx = opaque;
    int rc = wait_for_cgroup(ctx, err);
    if (rc < 0)
        return rc;
    if (ctx->config->n_hooks[RT_HOOK_CREATE_CONTAINER] == 0)
        return 0;
    cleanup_free char *state = rt_hook_state_json(ctx->id, "creating", ctx->init_pid, ctx->bundle);
    return rt_hooks_run(ctx->config, RT_HOOK_CREATE_CONTAINER, state, err);
}

static int init_setup(struct create_ctx *ctx, const int *ns_fds, char *prog, size_t prog_size,
                      struct gy_error *err)
{
    const struct rt_config *c = ctx->config;
    int rc;
    for (int k = 0; k < RT_NS_COUNT; k++) {
        if (ns_fds[k] < 0)
            continue;
        if (setns(ns_fds[k], rt_ns_clone_flag((enum rt_ns_kind)k)) < 0)
            return gy_error_sys(err, errno, "linux.namespaces: join %s namespace %s",
                                rt_ns_name((enum rt_ns_kind)k), c->ns_path[k]);
        close(ns_fds[k]);
    }
    if (c->ns[RT_NS_USER]) {
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
            return gy_error_sys(err, errno,
                                "become root in the user namespace (linux.uidMappings and "
                                "gidMappings must map container id 0)");
    }
    if (setsid() < 0)
        return gy_error_sys(err, errno, "setsid");
    if (c->hostname != NULL && c->hostname[0] != '\0' &&
        sethostname(c->hostname, strlen(c->hostname)) < 0)
        return gy_error_sys(err, errno, "hostname: sethostname %s", c->hostname);
    struct rt_rootfs_args args = {
        .rootfs = ctx->rootfs,
        .layers = ctx->opts->layers,
        .n_layers = ctx->opts->n_layers,
        .upper_dir = ctx->opts->upper_dir,
        .work_dir = ctx->opts->work_dir,
        .cgroup_ops = ctx->cg,
        .cgroup_path = ctx->cgroup_path,
        .before_cgroup_mount = wait_for_cgroup,
        .before_pivot = run_create_container_hooks,
        .ctx = ctx,
    };
    if ((rc = rt_rootfs_setup(c, &args, err)) < 0)
        return rc;
    /* Applied here as well as just before exec so that a limit the kernel refuses fails
     * create, not the later start. */
    if ((rc = rt_rlimits_apply(c, err)) < 0)
        return rc;
    return rt_program_lookup(c->args[0], c->env, c->cwd, prog, prog_size, err);
}

static void __attribute__((noreturn))
init_main(struct create_ctx *ctx, int sync_fd, const int *ns_fds, int log_fd)
{
    struct gy_error err;
    gy_error_clear(&err);
    close(ctx->report_fd);
    reset_signals();
    if (log_fd >= 0) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
            _exit(1);
    }
    struct sync_msg go;
    if (recv(sync_fd, &go, sizeof(go), 0) <= 0 || go.type != SYNC_GO)
        _exit(1);
    ctx->sync_fd = sync_fd;
    ctx->init_pid = go.code;
    bool start_at_once = go.msg[0] == 1;
    char prog[PATH_MAX];
    if (init_setup(ctx, ns_fds, prog, sizeof(prog), &err) < 0) {
        sync_send_error(sync_fd, &err);
        _exit(1);
    }
    char ready = SYNC_READY;
    if (send(sync_fd, &ready, 1, MSG_NOSIGNAL) != 1)
        _exit(1);
    char start = 0;
    if (!start_at_once && (recv(sync_fd, &start, 1, 0) != 1 || start != SYNC_START))
        _exit(1);
    const struct rt_config *c = ctx->config;
    if (c->n_hooks[RT_HOOK_START_CONTAINER] > 0) {
        char *state = rt_hook_state_json(ctx->id, "created", ctx->init_pid, ctx->bundle);
        int rc = rt_hooks_run(c, RT_HOOK_START_CONTAINER, state, &err);
        free(state);
        if (rc < 0) {
            dprintf(2, "gantry-runtime: %s\n", err.msg);
            sync_send_error(sync_fd, &err);
            _exit(1);
        }
    }
    if (rt_process_confine(c, c->uid, c->gid, c->cwd, &err) < 0) {
        dprintf(2, "gantry-runtime: %s\n", err.msg);
        sync_send_error(sync_fd, &err);
        _exit(1);
    }
    char *empty_env[] = {NULL};
    execve(prog, c->args, c->env != NULL ? c->env : empty_env);
    int saved = errno;
    if (saved == ENOENT)
        gy_error_set(&err, GY_ENOTFOUND, "exec %s: no such file or directory", c->args[0]);
    else if (saved == EACCES)
        gy_error_set(&err, GY_EPERM, "exec %s: permission denied", c->args[0]);
    else
        gy_error_sys(&err, saved, "exec %s", c->args[0]);
    dprintf(2, "gantry-runtime: %s\n", err.msg);
    sync_send_error(sync_fd, &err);
    _exit(saved == ENOENT ? 127 : 126);
}

/* ------------------------------------------------------------------------------------ */
/* Monitor                                                                                */

static void report(struct create_ctx *ctx, int code, const char *msg)
{
    struct create_report r = {.code = code, .monitor_pid = (int32_t)getpid()};
    snprintf(r.msg, sizeof(r.msg), "%s", msg);
    if (write(ctx->report_fd, &r, sizeof(r)) < 0)
        return;
}

/* When init has already reported a failure, puts its message in err (it says more than
 * whatever the monitor tripped over because init is gone). */
static void init_error(int sync_fd, struct gy_error *err)
{
    struct sync_msg m;
    ssize_t n = recv(sync_fd, &m, sizeof(m), MSG_DONTWAIT);
    if (n > 0 && m.type == SYNC_ERROR) {
        err->code = m.code > 0 && m.code < GY_E_COUNT ? (enum gy_code)m.code : GY_EINTERNAL;
        snprintf(err->msg, sizeof(err->msg), "%s", m.msg);
    }
}

static int write_idmap(pid_t pid, const char *file, const struct rt_idmap *maps, size_t n,
                       struct gy_error *err)
{
    char path[64], text[4096];
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof(text); i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%u %u %u\n",
                                 maps[i].container_id, maps[i].host_id, maps[i].size);
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    if (rt_file_write(path, text, 0, err) < 0)
        return gy_error_wrap(err, "linux.%s",
                             strcmp(file, "uid_map") == 0 ? "uidMappings" : "gidMappings");
    return 0;
}

/* The log file with its size cap: when it is full it becomes NAME.1 (the previous NAME.1
 * is dropped) and a new file starts, so at most twice the cap is kept. */
struct log_file {
    const char *path;
    int fd;
    int64_t size;
    int64_t max;
};

static void log_rotate(struct log_file *log)
{
    char old[PATH_MAX];
    snprintf(old, sizeof(old), "%s.1", log->path);
    rename(log->path, old);
    close(log->fd);
    log->fd = open(log->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
    log->size = 0;
}

static void log_append(struct log_file *log, const char *buf, size_t len)
{
    while (len > 0 && log->fd >= 0) {
        if (log->size >= log->max) {
            log_rotate(log);
            continue;
        }
        size_t room = (size_t)(log->max - log->size);
        ssize_t n = write(log->fd, buf, len < room ? len : room);
        if (n <= 0)
            return;
        log->size += n;
        buf += n;
        len -= (size_t)n;
    }
}

/* Copies what is readable on fd to the log; false at end of file. */
static bool log_pump(struct log_file *log, int fd)
{
    char buf[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            log_append(log, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        return false;
    }
    return true;
}

static void __attribute__((noreturn))
monitor_loop(const char *dir, const struct rt_record *rec, int sync_fd, int fifo_r, int fifo_w,
             int log_r, struct log_file *log)
{
    pid_t init = rec->pid;
    int pidfd = (int)syscall(SYS_pidfd_open, init, 0);
    for (;;) {
        struct pollfd fds[4] = {
            {.fd = pidfd, .events = POLLIN},
            {.fd = fifo_r, .events = POLLIN},
            {.fd = log_r, .events = POLLIN},
            {.fd = sync_fd, .events = POLLIN},
        };
        int rc = poll(fds, 4, pidfd >= 0 ? -1 : 100);
        if (rc < 0 && errno != EINTR)
            break;
        if (fds[2].revents & (POLLIN | POLLHUP)) {
            if (!log_pump(log, log_r)) {
                close(log_r);
                log_r = -1;
            }
        }
        if (fds[3].revents & (POLLIN | POLLHUP)) {
            struct sync_msg m;
            ssize_t n = recv(sync_fd, &m, sizeof(m), MSG_DONTWAIT);
            if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
                close(sync_fd); /* init exec'd: the socket closed with it */
                sync_fd = -1;
            }
        }
        if (fds[1].revents & POLLIN) {
            char b;
            if (read(fifo_r, &b, 1) == 1) {
                char start = SYNC_START;
                if (sync_fd >= 0 && send(sync_fd, &start, 1, MSG_NOSIGNAL) != 1)
                    kill(init, SIGKILL);
                close(fifo_r);
                close(fifo_w);
                fifo_r = fifo_w = -1;
                cleanup_free char *fifo = rt_state_file(dir, RT_FILE_FIFO);
                unlink(fifo);
            }
        }
        if ((fds[0].revents & POLLIN) || (pidfd < 0 && rt_proc_start_time(init) == 0))
            break;
    }
    int status = 0;
    while (waitpid(init, &status, 0) < 0 && errno == EINTR)
        ;
    if (log_r >= 0) {
        /* Drain what the container wrote last; other holders of the pipe (without a pid
         * namespace) must not keep the monitor here. */
        fcntl(log_r, F_SETFL, O_NONBLOCK);
        while (log_pump(log, log_r) && poll(&(struct pollfd){log_r, POLLIN, 0}, 1, 0) > 0)
            ;
    }
    struct rt_exit ex = {.finished_ns = rt_now_ns()};
    if (WIFEXITED(status)) {
        ex.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        ex.signal = WTERMSIG(status);
        ex.exit_code = 128 + ex.signal;
    }
    const struct rt_cgroup_ops *cg = rt_record_cgroup(rec);
    uint64_t ooms = 0;
    if (cg->oom_kills(RT_CGROUP_MOUNT, rec->cgroup_path, &ooms, NULL) == 0 && ooms > 0)
        ex.oom_killed = true;
    /* Without a pid namespace the init's children outlive it; the container ends with its
     * init all the same. */
    if (!rec->pid_ns)
        rt_cgroup_kill_all(rec, SIGKILL);
    rt_exit_write(dir, &ex, NULL);
    _exit(0);
}

static int open_ns_paths(const struct rt_config *c, int *ns_fds, struct gy_error *err)
{
    for (int k = 0; k < RT_NS_COUNT; k++) {
        ns_fds[k] = -1;
        if (c->ns_path[k] == NULL)
            continue;
        ns_fds[k] = open(c->ns_path[k], O_RDONLY | O_CLOEXEC);
        if (ns_fds[k] < 0)
            return gy_error_sys(err, errno, "linux.namespaces: open %s namespace %s",
                                rt_ns_name((enum rt_ns_kind)k), c->ns_path[k]);
    }
    return 0;
}

static void __attribute__((noreturn)) monitor_main(struct create_ctx *ctx)
{
    struct gy_error err;
    gy_error_clear(&err);
    const struct rt_config *c = ctx->config;
    const struct rt_create_opts *o = ctx->opts;
    reset_signals();
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int keep[] = {ctx->report_fd};
    rt_close_fds_except(keep, 1);

    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int log_p[2] = {-1, -1};
    struct log_file log = {.path = NULL, .fd = -1, .max = ctx->log_max};
    cleanup_free char *log_path = rt_state_file(ctx->dir, RT_FILE_LOG);
    if (!o->stdio_inherit) {
        if (pipe2(log_p, O_CLOEXEC) < 0) {
            gy_error_sys(&err, errno, "log pipe");
            goto fail;
        }
        log.path = log_path;
        log.fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log.fd < 0) {
            gy_error_sys(&err, errno, "open %s", log_path);
            goto fail;
        }
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    int fifo_r = -1, fifo_w = -1;
    if (!o->start) {
        cleanup_free char *fifo = rt_state_file(ctx->dir, RT_FILE_FIFO);
        fifo_r = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        /* Holding a writer of our own keeps the fifo from reporting end-of-file. */
        fifo_w = fifo_r >= 0 ? open(fifo, O_WRONLY | O_CLOEXEC) : -1;
        if (fifo_w < 0) {
            gy_error_sys(&err, errno, "open %s", fifo);
            goto fail;
        }
    }
    /* The CPU bandwidth limit waits until init has set the container up, as runc applies
     * its limits once init reports ready: a small quota (10m is 1 ms of CPU per 100 ms
     * period) would otherwise stretch the mounts, pivot_root and seccomp set-up of init
     * over several periods, tens to hundreds of milliseconds. Memory, pids and device
     * limits hold from the start. */
    struct rt_resources setup_res = c->resources;
    setup_res.has_cpu_quota = false;
    setup_res.has_cpu_period = false;
    if (ctx->cg->create(RT_CGROUP_MOUNT, ctx->cgroup_path, &setup_res, &err) < 0)
        goto fail;
    int ns_fds[RT_NS_COUNT];
    if (open_ns_paths(c, ns_fds, &err) < 0)
        goto fail;
    int sync_p[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync_p) < 0) {
        gy_error_sys(&err, errno, "socketpair");
        goto fail;
    }
    if (ctx->bundle != NULL && chdir(ctx->bundle) < 0) {
        gy_error_sys(&err, errno, "chdir %s", ctx->bundle);
        goto fail;
    }
    unsigned long flags = 0;
    for (int k = 0; k < RT_NS_COUNT; k++)
        if (c->ns[k] && c->ns_path[k] == NULL && k != RT_NS_CGROUP)
            flags |= (unsigned long)rt_ns_clone_flag((enum rt_ns_kind)k);
    /* clone without a stack behaves like fork, with the namespaces made on the way. */
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
    if (pid < 0) {
        gy_error_sys(&err, errno, "clone the container init");
        goto fail;
    }
    if (pid == 0) {
        close(sync_p[0]);
        init_main(ctx, sync_p[1], ns_fds, log_p[1]);
    }
    close(sync_p[1]);
    if (log_p[1] >= 0)
        close(log_p[1]);
    for (int k = 0; k < RT_NS_COUNT; k++)
        if (ns_fds[k] >= 0)
            close(ns_fds[k]);
    int sync_fd = sync_p[0];
    if (c->ns[RT_NS_USER] && (write_idmap(pid, "uid_map", c->uid_maps, c->n_uid_maps, &err) < 0 ||
                              write_idmap(pid, "gid_map", c->gid_maps, c->n_gid_maps, &err) < 0))
        goto fail_init;
    /* Taken while init waits for SYNC_GO, so it is alive to be measured. */
    uint64_t init_start = rt_proc_start_time(pid);
    if (o->start) {
        cleanup_free char *started = rt_state_file(ctx->dir, RT_FILE_STARTED);
        if (rt_file_write(started, "", 1, &err) < 0)
            goto fail_init;
    }
    struct sync_msg go = {.type = SYNC_GO, .code = pid};
    go.msg[0] = o->start ? 1 : 0;
    if (send(sync_fd, &go, sizeof(go), MSG_NOSIGNAL) != (ssize_t)sizeof(go)) {
        gy_error_sys(&err, errno, "start the container init");
        goto fail_init;
    }
    /* Init prepares its root meanwhile (see wait_for_cgroup); a failure it reports
     * explains more than the failed write to an exited process would. */
    if (ctx->cg->enter(RT_CGROUP_MOUNT, ctx->cgroup_path, pid, &err) < 0) {
        init_error(sync_fd, &err);
        goto fail_init;
    }
    /* prestart and createRuntime hooks: the namespaces exist (a network hook can enter
     * /proc/PID/ns/net), init is in its cgroup and pivot_root is still to come. */
    if (c->n_hooks[RT_HOOK_PRESTART] + c->n_hooks[RT_HOOK_CREATE_RUNTIME] > 0) {
        char *state = rt_hook_state_json(ctx->id, "creating", pid, ctx->bundle);
        int hrc = rt_hooks_run(c, RT_HOOK_PRESTART, state, &err);
        if (hrc == 0)
            hrc = rt_hooks_run(c, RT_HOOK_CREATE_RUNTIME, state, &err);
        free(state);
        if (hrc < 0)
            goto fail_init;
    }
    /* If init has already failed the send fails; its report comes next on the socket. */
    char in_cgroup = SYNC_CGROUP;
    send(sync_fd, &in_cgroup, 1, MSG_NOSIGNAL);
    struct sync_msg m;
    ssize_t n = recv(sync_fd, &m, sizeof(m), 0);
    if (n <= 0) {
        gy_error_set(&err, GY_EINTERNAL, "the container init exited during setup");
        goto fail_init;
    }
    if (m.type != SYNC_READY) {
        err.code = m.code > 0 && m.code < GY_E_COUNT ? (enum gy_code)m.code : GY_EINTERNAL;
        snprintf(err.msg, sizeof(err.msg), "%s", m.msg);
        goto fail_init;
    }
    if (c->resources.has_cpu_quota || c->resources.has_cpu_period) {
        struct rt_resources cpu = {
            .has_cpu_quota = c->resources.has_cpu_quota,
            .cpu_quota = c->resources.cpu_quota,
            .has_cpu_period = c->resources.has_cpu_period,
            .cpu_period = c->resources.cpu_period,
        };
        if (ctx->cg->set(RT_CGROUP_MOUNT, ctx->cgroup_path, &cpu, &err) < 0)
            goto fail_init;
    }

    struct rt_record rec = {
        .pid = pid,
        .pid_start = init_start,
        .monitor_pid = getpid(),
        .monitor_start = rt_proc_start_time(getpid()),
        .created_ns = rt_now_ns(),
        .pid_ns = c->ns[RT_NS_PID] && c->ns_path[RT_NS_PID] == NULL,
        .user_ns = c->ns[RT_NS_USER],
        .poststart_hooks = c->n_hooks[RT_HOOK_POSTSTART] > 0,
        .poststop_hooks = c->n_hooks[RT_HOOK_POSTSTOP] > 0,
    };
    snprintf(rec.id, sizeof(rec.id), "%s", ctx->id);
    snprintf(rec.bundle, sizeof(rec.bundle), "%s", ctx->bundle != NULL ? ctx->bundle : "");
    snprintf(rec.cgroup_path, sizeof(rec.cgroup_path), "%s", ctx->cgroup_path);
    snprintf(rec.cgroup_version, sizeof(rec.cgroup_version), "%s", ctx->cg->name);
    if (rt_record_write(ctx->dir, &rec, &err) < 0)
        goto fail_init;
    report(ctx, 0, "");
    close(ctx->report_fd);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close(null);
    /* Everything the creator allocated is dead weight from here on: the monitor lives as
     * long as the container and should cost next to nothing. */
    rt_config_free(ctx->config);
    ctx->config = NULL;
    malloc_trim(0);
    monitor_loop(ctx->dir, &rec, sync_fd, fifo_r, fifo_w, log_p[0], &log);

fail_init:
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
fail:
    report(ctx, err.code != GY_EOK ? (int)err.code : GY_EINTERNAL, err.msg);
    _exit(1);
}

/* ------------------------------------------------------------------------------------ */
/* Creator                                                                                */

static int check_dir(const char *path, const char *what, struct gy_error *err)
{
    struct stat st;
    if (path == NULL || path[0] != '/')
        return gy_error_set(err, GY_EINVAL, "%s: must be an absolute path", what);
    if (stat(path, &st) < 0)
        return gy_error_sys(err, errno, "%s: %s", what, path);
    if (!S_ISDIR(st.st_mode))
        return gy_error_set(err, GY_EINVAL, "%s: %s is not a directory", what, path);
    return 0;
}

static int load_config(const struct rt_create_opts *o, char **text, struct rt_config **config,
                       struct gy_error *err)
{
    if (o->config_json != NULL) {
        *text = gy_xstrdup(o->config_json);
        return rt_config_parse(*text, strlen(*text), config, err);
    }
    if (o->bundle == NULL)
        return gy_error_set(err, GY_EINVAL, "create: a bundle or a config is required");
    cleanup_free char *path = gy_xasprintf("%s/config.json", o->bundle);
    int rc = rt_config_load(path, config, err);
    if (rc < 0)
        return rc;
    cleanup_fclose FILE *f = fopen(path, "re");
    if (f == NULL)
        return gy_error_sys(err, errno, "open %s", path);
    size_t cap = 0;
    ssize_t n = getdelim(text, &cap, '\0', f);
    if (n < 0) {
        free(*text);
        *text = gy_xstrdup("{}");
    }
    return 0;
}

static int prepare(struct create_ctx *ctx, char **config_text, struct gy_error *err)
{
    const struct rt_create_opts *o = ctx->opts;
    int rc;
    if ((rc = rt_id_validate(o->id, err)) < 0)
        return rc;
    if ((rc = load_config(o, config_text, &ctx->config, err)) < 0)
        return rc;
    const struct rt_config *c = ctx->config;
    if (o->bundle != NULL) {
        ctx->bundle = realpath(o->bundle, NULL);
        if (ctx->bundle == NULL)
            return gy_error_sys(err, errno, "bundle %s", o->bundle);
    }
    if (c->ns[RT_NS_USER]) {
        for (int k = 0; k < RT_NS_COUNT; k++)
            if (c->ns_path[k] != NULL)
                return gy_error_set(err, GY_EINVAL,
                                    "linux.namespaces: joining the %s namespace at %s is not "
                                    "supported together with a new user namespace",
                                    rt_ns_name((enum rt_ns_kind)k), c->ns_path[k]);
    }
    if (c->ns_path[RT_NS_PID] != NULL || c->ns_path[RT_NS_CGROUP] != NULL)
        return gy_error_set(err, GY_EINVAL,
                            "linux.namespaces: joining an existing %s namespace is not supported",
                            c->ns_path[RT_NS_PID] != NULL ? "pid" : "cgroup");
    if (o->n_layers > 0) {
        for (size_t i = 0; i < o->n_layers; i++) {
            char what[32];
            snprintf(what, sizeof(what), "layer %zu", i);
            if ((rc = check_dir(o->layers[i], what, err)) < 0)
                return rc;
        }
        if ((rc = check_dir(o->upper_dir, "upper directory", err)) < 0 ||
            (rc = check_dir(o->work_dir, "work directory", err)) < 0)
            return rc;
    } else {
        if (c->root_path == NULL)
            return gy_error_set(err, GY_EINVAL, "root.path: is required");
        cleanup_free char *joined = c->root_path[0] == '/' || ctx->bundle == NULL
                                        ? gy_xstrdup(c->root_path)
                                        : gy_xasprintf("%s/%s", ctx->bundle, c->root_path);
        ctx->rootfs = realpath(joined, NULL);
        if (ctx->rootfs == NULL)
            return gy_error_sys(err, errno, "root.path: %s", joined);
        struct stat st;
        if (stat(ctx->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
            return gy_error_set(err, GY_EINVAL, "root.path: %s is not a directory", joined);
    }
    for (size_t i = 0; i < c->n_mounts; i++) {
        const struct rt_mount *m = &c->mounts[i];
        if (m->bind && m->source[0] != '/' && ctx->bundle == NULL)
            return gy_error_set(err, GY_EINVAL,
                                "mounts[%zu].source: a relative source needs a bundle", i);
    }
    ctx->cg = rt_cgroup_detect(RT_CGROUP_MOUNT);
    ctx->cgroup_path = rt_cgroup_path(c->cgroups_path, o->id);
    return 0;
}

static void create_ctx_free(struct create_ctx *ctx)
{
    rt_config_free(ctx->config);
    free(ctx->dir);
    free(ctx->bundle);
    free(ctx->rootfs);
    free(ctx->cgroup_path);
}

/* Undoes a failed create: whatever processes reached the cgroup, the cgroup, the state. */
static void undo_create(struct create_ctx *ctx, bool cgroup)
{
    if (cgroup) {
        struct rt_record rec = {0};
        snprintf(rec.cgroup_path, sizeof(rec.cgroup_path), "%s", ctx->cgroup_path);
        snprintf(rec.cgroup_version, sizeof(rec.cgroup_version), "%s", ctx->cg->name);
        rt_cgroup_kill_all(&rec, SIGKILL);
        ctx->cg->destroy(RT_CGROUP_MOUNT, ctx->cgroup_path, NULL);
    }
    rt_remove_tree(ctx->dir, NULL);
}

int rt_container_create(const struct rt_create_opts *o, pid_t *monitor_pid, struct gy_error *err)
{
    /* A caller with threads forks through its spawner (spawner.h). */
    if (rt_spawner_active() && !o->monitor_child)
        return rt_spawner_create(o, monitor_pid, err);
    struct create_ctx ctx = {.opts = o, .id = o->id, .report_fd = -1};
    cleanup_free char *config_text = NULL;
    cleanup_free char *config_copy = NULL;
    cleanup_free char *abs_root = NULL;
    int rc = prepare(&ctx, &config_text, err);
    if (rc < 0)
        goto out;
    const char *root = o->root != NULL ? o->root : RT_DEFAULT_ROOT;
    if ((rc = rt_mkdir_p(root, err)) < 0)
        goto out;
    /* The monitor changes directory to the bundle: every path it keeps is absolute. */
    abs_root = realpath(root, NULL);
    if (abs_root == NULL) {
        rc = gy_error_sys(err, errno, "state root %s", root);
        goto out;
    }
    ctx.dir = rt_state_dir(abs_root, o->id);
    /* 0711: an init in a user namespace must reach the overlay mount point inside. */
    if (mkdir(ctx.dir, 0711) < 0) {
        rc = errno == EEXIST ? gy_error_set(err, GY_EEXISTS, "container %s already exists", o->id)
                             : gy_error_sys(err, errno, "mkdir %s", ctx.dir);
        free(ctx.dir);
        ctx.dir = NULL;
        goto out;
    }
    config_copy = rt_state_file(ctx.dir, RT_FILE_CONFIG);
    /* The config may carry secrets in process.env: only root reads the copy. */
    if ((rc = rt_file_write(config_copy, config_text, 1, err)) < 0 ||
        (rc = chmod(config_copy, 0600) < 0 ? gy_error_sys(err, errno, "chmod %s", config_copy)
                                           : 0) < 0)
        goto undo;
    if (o->n_layers > 0) {
        ctx.rootfs = rt_state_file(ctx.dir, RT_DIR_ROOTFS);
        if (mkdir(ctx.rootfs, 0755) < 0) {
            rc = gy_error_sys(err, errno, "mkdir %s", ctx.rootfs);
            goto undo;
        }
    }
    if (!o->start) {
        cleanup_free char *fifo = rt_state_file(ctx.dir, RT_FILE_FIFO);
        if (mkfifo(fifo, 0600) < 0) {
            rc = gy_error_sys(err, errno, "mkfifo %s", fifo);
            goto undo;
        }
    }
    ctx.log_max = o->log_max > 0 ? o->log_max : RT_DEFAULT_LOG_MAX;
    int report_p[2];
    if (pipe2(report_p, O_CLOEXEC) < 0) {
        rc = gy_error_sys(err, errno, "pipe");
        goto undo;
    }
    pid_t child = fork();
    if (child < 0) {
        rc = gy_error_sys(err, errno, "fork");
        close(report_p[0]);
        close(report_p[1]);
        goto undo;
    }
    if (child == 0) {
        /* The monitor lives in a session of its own, so the caller cannot take it down with
         * its process group or terminal; by default it is a grandchild, so the caller
         * never has to reap it either. */
        close(report_p[0]);
        ctx.report_fd = report_p[1];
        setsid();
        if (!o->monitor_child) {
            pid_t monitor = fork();
            if (monitor != 0)
                _exit(monitor < 0 ? 1 : 0);
        }
        monitor_main(&ctx);
    }
    close(report_p[1]);
    if (!o->monitor_child)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    struct create_report r;
    ssize_t n;
    do {
        n = read(report_p[0], &r, sizeof(r));
    } while (n < 0 && errno == EINTR);
    close(report_p[0]);
    if (n != (ssize_t)sizeof(r)) {
        rc = gy_error_set(err, GY_EINTERNAL, "create %s: the monitor exited during setup", o->id);
        undo_create(&ctx, true);
        goto out;
    }
    if (r.code != 0) {
        rc = gy_error_set(err, r.code < GY_E_COUNT ? (enum gy_code)r.code : GY_EINTERNAL, "%s",
                          r.msg);
        undo_create(&ctx, true);
        goto out;
    }
    if (monitor_pid != NULL)
        *monitor_pid = r.monitor_pid;
    if (o->start && ctx.config->n_hooks[RT_HOOK_POSTSTART] > 0)
        rt_hooks_poststart(ctx.config, ctx.dir, o->id, ctx.bundle);
    rc = 0;
    goto out;
undo:
    undo_create(&ctx, false);
out:
    create_ctx_free(&ctx);
    return rc;
}
