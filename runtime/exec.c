/* Running another process in a running container (health checks, `gantry exec`): a helper
 * child joins the container's cgroup and namespaces, forks the process inside the pid
 * namespace, and reports its pid and wait status back. */
#include "runtime/internal.h"
#include "runtime/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* What the helper sends back: first the process's pid, then its wait status (or an
 * error that kept it from being started). */
struct exec_report {
    int32_t kind; /* 'P' pid, 'W' wait status, 'E' error */
    int32_t value;
    char msg[GY_ERROR_MSG_MAX];
};

static void send_report(int fd, int kind, int value, const char *msg)
{
    struct exec_report r = {.kind = kind, .value = value};
    snprintf(r.msg, sizeof(r.msg), "%s", msg != NULL ? msg : "");
    if (write(fd, &r, sizeof(r)) < 0)
        return;
}

static void __attribute__((noreturn))
exec_process(const struct rt_config *c, const struct rt_exec_opts *o, int out_fd)
{
    struct gy_error err;
    gy_error_clear(&err);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    if (out_fd >= 0) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
            dup2(null, 0);
        dup2(out_fd, 1);
        dup2(out_fd, 2);
    }
    /* The container's environment with the caller's variables on top. */
    size_t n_extra = 0;
    while (o->env != NULL && o->env[n_extra] != NULL)
        n_extra++;
    char **env = gy_xcalloc(c->n_env + n_extra + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < c->n_env; i++) {
        size_t key = strcspn(c->env[i], "=");
        bool overridden = false;
        for (size_t k = 0; k < n_extra; k++)
            if (strncmp(o->env[k], c->env[i], key + 1) == 0)
                overridden = true;
        if (!overridden)
            env[n++] = c->env[i];
    }
    for (size_t k = 0; k < n_extra; k++)
        env[n++] = (char *)o->env[k];
    char prog[PATH_MAX];
    if (rt_program_lookup(o->argv[0], env, o->cwd != NULL ? o->cwd : c->cwd, prog, sizeof(prog),
                          &err) < 0) {
        dprintf(2, "%s\n", err.msg);
        _exit(err.code == GY_EPERM ? 126 : 127);
    }
    uid_t uid = o->has_user ? o->uid : c->uid;
    gid_t gid = o->has_user ? o->gid : c->gid;
    if (rt_process_confine(c, uid, gid, o->cwd != NULL ? o->cwd : c->cwd, &err) < 0) {
        dprintf(2, "gantry-runtime exec: %s\n", err.msg);
        _exit(126);
    }
    execve(prog, (char *const *)o->argv, env);
    dprintf(2, "exec %s: %s\n", o->argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

/* The helper: joins, forks the process, reports. Never returns. */
static void __attribute__((noreturn))
exec_helper(const struct rt_record *rec, const struct rt_config *c, const struct rt_exec_opts *o,
            int report_fd, int out_fd)
{
    struct gy_error err;
    gy_error_clear(&err);
    /* Nothing the caller holds (the agent's sockets, say) may reach the container. */
    int keep[] = {report_fd, out_fd};
    rt_close_fds_except(keep, out_fd >= 0 ? 2 : 1);
    const struct rt_cgroup_ops *cg = rt_record_cgroup(rec);
    if (cg->enter(RT_CGROUP_MOUNT, rec->cgroup_path, getpid(), &err) < 0) {
        send_report(report_fd, 'E', err.code, err.msg);
        _exit(1);
    }
    /* Open every namespace first: after joining the mount namespace /proc is the
     * container's. The user namespace comes first, it owns the others. */
    static const enum rt_ns_kind order[] = {RT_NS_USER, RT_NS_IPC,    RT_NS_UTS,  RT_NS_NET,
                                            RT_NS_PID,  RT_NS_CGROUP, RT_NS_MOUNT};
    int fds[RT_NS_COUNT];
    for (size_t i = 0; i < RT_NS_COUNT; i++) {
        enum rt_ns_kind k = order[i];
        fds[i] = -1;
        if (!c->ns[k])
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)rec->pid, rt_ns_proc_name(k));
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) {
            gy_error_sys(&err, errno, "open %s", path);
            send_report(report_fd, 'E', err.code, err.msg);
            _exit(1);
        }
    }
    if (rt_proc_start_time(rec->pid) != rec->pid_start) {
        send_report(report_fd, 'E', GY_ECONFLICT, "the container stopped");
        _exit(1);
    }
    for (size_t i = 0; i < RT_NS_COUNT; i++) {
        if (fds[i] < 0)
            continue;
        if (setns(fds[i], 0) < 0) {
            gy_error_sys(&err, errno, "join the %s namespace", rt_ns_name(order[i]));
            send_report(report_fd, 'E', err.code, err.msg);
            _exit(1);
        }
        close(fds[i]);
    }
    if (chdir("/") < 0)
        _exit(1);
    pid_t pid = fork();
    if (pid < 0) {
        gy_error_sys(&err, errno, "fork");
        send_report(report_fd, 'E', err.code, err.msg);
        _exit(1);
    }
    if (pid == 0) {
        close(report_fd);
        exec_process(c, o, out_fd);
    }
    if (out_fd >= 0)
        close(out_fd);
    send_report(report_fd, 'P', pid, NULL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    send_report(report_fd, 'W', status, NULL);
    _exit(0);
}

/* Appends what out_fd has to the result, up to max bytes (the rest is read and dropped). */
static bool collect(int fd, struct rt_exec_result *res, size_t max)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return false;
    size_t room = max > res->output_len ? max - res->output_len : 0;
    size_t take = (size_t)n < room ? (size_t)n : room;
    if (take > 0) {
        res->output = gy_xrealloc(res->output, res->output_len + take + 1);
        memcpy(res->output + res->output_len, buf, take);
        res->output_len += take;
        res->output[res->output_len] = '\0';
    }
    return true;
}

int rt_container_exec(const char *root, const char *id, const struct rt_exec_opts *o,
                      struct rt_exec_result *res, struct gy_error *err)
{
    /* A caller with threads forks through its spawner (spawner.h). */
    if (rt_spawner_active())
        return rt_spawner_exec(root, id, o, res, err);
    memset(res, 0, sizeof(*res));
    if (o->argv == NULL || o->argv[0] == NULL || o->argv[0][0] == '\0')
        return gy_error_set(err, GY_EINVAL, "exec: a program is required");
    struct rt_state st;
    int rc = rt_container_state(root, id, &st, err);
    if (rc < 0)
        return rc;
    if (st.status != RT_STATUS_RUNNING)
        return gy_error_set(err, GY_ECONFLICT, "container %s is %s, not running", id,
                            rt_status_name(st.status));
    cleanup_free char *dir = rt_state_dir(root, id);
    struct rt_record rec;
    if ((rc = rt_record_read(dir, &rec, err)) < 0)
        return rc;
    cleanup_free char *config_path = rt_state_file(dir, RT_FILE_CONFIG);
    struct rt_config *c = NULL;
    if ((rc = rt_config_load(config_path, &c, err)) < 0)
        return rc;
    int report_p[2], out_p[2] = {-1, -1};
    if (pipe2(report_p, O_CLOEXEC) < 0) {
        rt_config_free(c);
        return gy_error_sys(err, errno, "pipe");
    }
    if (o->capture && pipe2(out_p, O_CLOEXEC) < 0) {
        close(report_p[0]);
        close(report_p[1]);
        rt_config_free(c);
        return gy_error_sys(err, errno, "pipe");
    }
    pid_t helper = fork();
    if (helper < 0) {
        rc = gy_error_sys(err, errno, "fork");
        close(report_p[0]);
        close(report_p[1]);
        if (out_p[0] >= 0) {
            close(out_p[0]);
            close(out_p[1]);
        }
        rt_config_free(c);
        return rc;
    }
    if (helper == 0) {
        close(report_p[0]);
        if (out_p[0] >= 0)
            close(out_p[0]);
        exec_helper(&rec, c, o, report_p[1], out_p[1]);
    }
    rt_config_free(c);
    close(report_p[1]);
    if (out_p[1] >= 0)
        close(out_p[1]);

    int64_t deadline = o->timeout_ms > 0 ? rt_now_ns() + (int64_t)o->timeout_ms * 1000000 : 0;
    pid_t inner = 0;
    bool have_status = false;
    int status = 0;
    int out_fd = out_p[0];
    int report_fd = report_p[0];
    rc = 0;
    while (report_fd >= 0 || out_fd >= 0) {
        struct pollfd fds[2] = {{.fd = report_fd, .events = POLLIN},
                                {.fd = out_fd, .events = POLLIN}};
        int wait_ms = -1;
        if (deadline > 0) {
            int64_t left = deadline - rt_now_ns();
            if (left <= 0) {
                if (inner > 0)
                    kill(inner, SIGKILL);
                /* Past the grace period as well: the helper goes too, which ends the
                 * loop (its pipes close). */
                if (res->timed_out)
                    kill(helper, SIGKILL);
                res->timed_out = true;
                wait_ms = 100;
                deadline = rt_now_ns() + 2000000000LL; /* grace to collect the status */
            } else {
                wait_ms = (int)(left / 1000000) + 1;
            }
        }
        int n = poll(fds, 2, wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (!collect(out_fd, res, o->output_max)) {
                close(out_fd);
                out_fd = -1;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP)) {
            struct exec_report r;
            ssize_t got = read(report_fd, &r, sizeof(r));
            if (got != (ssize_t)sizeof(r)) {
                close(report_fd);
                report_fd = -1;
                continue;
            }
            if (r.kind == 'P') {
                inner = r.value;
                /* The deadline passed before the process existed: it goes at once. */
                if (res->timed_out)
                    kill(inner, SIGKILL);
            } else if (r.kind == 'W') {
                status = r.value;
                have_status = true;
            } else if (r.kind == 'E') {
                rc = gy_error_set(err, r.value > 0 && r.value < GY_E_COUNT ? r.value : GY_EINTERNAL,
                                  "exec in %s: %s", id, r.msg);
            }
        }
    }
    if (report_fd >= 0)
        close(report_fd);
    if (out_fd >= 0)
        close(out_fd);
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        free(res->output);
        res->output = NULL;
        res->output_len = 0;
        return rc;
    }
    if (!have_status && res->timed_out) {
        /* Killed with its helper after the grace period. */
        status = SIGKILL;
        have_status = true;
    }
    if (!have_status)
        return gy_error_set(err, GY_EINTERNAL, "exec in %s: the helper exited without a status",
                            id);
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->signal = WTERMSIG(status);
        res->exit_code = 128 + res->signal;
    }
    if (o->capture && res->output == NULL)
        res->output = gy_xstrdup("");
    return 0;
}
