/* OCI hooks (runtime-spec config.md "POSIX-platform Hooks"): each runs as a child with the
 * container's state JSON on its stdin, and must exit 0 within its timeout. */
#include "runtime/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"

char *rt_hook_state_json(const char *id, const char *status, pid_t pid, const char *bundle)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:s}", "ociVersion", "1.0.2", "id", id, "status",
                            status, "pid", (int)pid, "bundle", bundle != NULL ? bundle : "");
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    char *copy = gy_xstrdup(text != NULL ? text : "{}");
    free(text);
    return copy;
}

static int run_one(const struct rt_hook *h, const char *what, const char *state,
                   struct gy_error *err)
{
    /* A socket rather than a pipe: send() with MSG_NOSIGNAL cannot raise SIGPIPE in the
     * caller when a hook ignores its stdin and exits. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return gy_error_sys(err, errno, "%s: socketpair", what);
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return gy_error_sys(err, errno, "%s: fork", what);
    }
    if (pid == 0) {
        dup2(sv[1], 0);
        int keep[] = {0};
        rt_close_fds_except(keep, 0);
        char *default_args[] = {h->path, NULL};
        char *empty_env[] = {NULL};
        execve(h->path, h->args != NULL ? h->args : default_args,
               h->env != NULL ? h->env : empty_env);
        dprintf(2, "%s: exec %s: %s\n", what, h->path, strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    size_t len = strlen(state), off = 0;
    while (off < len) {
        ssize_t n = send(sv[0], state + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(sv[0]);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool timed_out = false;
    if (pidfd >= 0) {
        timed_out = !rt_pidfd_wait(pidfd, h->timeout > 0 ? h->timeout * 1000 : -1);
        close(pidfd);
    }
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        return gy_error_set(err, GY_ETIMEOUT, "%s (%s): timed out after %d s", what, h->path,
                            h->timeout);
    if (WIFSIGNALED(status))
        return gy_error_set(err, GY_EIO, "%s (%s): killed by signal %d", what, h->path,
                            WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        return gy_error_set(err, GY_EIO, "%s (%s): exited with status %d", what, h->path,
                            WEXITSTATUS(status));
    return 0;
}

int rt_hooks_run(const struct rt_config *c, enum rt_hook_kind kind, const char *state,
                 struct gy_error *err)
{
    for (size_t i = 0; i < c->n_hooks[kind]; i++) {
        char what[64];
        snprintf(what, sizeof(what), "hooks.%s[%zu]", rt_hook_kind_name(kind), i);
        int rc = run_one(&c->hooks[kind][i], what, state, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void rt_hooks_poststart(const struct rt_config *c, const char *dir, const char *id,
                        const char *bundle)
{
    struct rt_record rec;
    if (rt_record_read(dir, &rec, NULL) < 0)
        return;
    cleanup_free char *state = rt_hook_state_json(id, "running", rec.pid, bundle);
    struct gy_error err;
    /* The runtime-spec makes a failed poststart hook a warning, not a failed start. */
    if (rt_hooks_run(c, RT_HOOK_POSTSTART, state, &err) < 0)
        gy_log_warn("poststart hook failed", "container=%s error=\"%s\"", id, err.msg);
}
