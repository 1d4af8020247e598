/* The spawner; see spawner.h.
 *
 * Protocol: for each call the caller makes a socket pair and passes one end to the spawner
 * (a one-byte SOCK_SEQPACKET message with SCM_RIGHTS). The spawner forks a worker for it
 * and goes back to waiting; the worker reads the request from its end, does the work with
 * the runtime's ordinary functions, writes the answer and exits. Both directions are
 * frames of [u32 length][JSON], the answer of an exec followed by [u32 length][output]. */
#include "runtime/spawner.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common/xalloc.h"
#include "runtime/internal.h"
#include "runtime/runtime.h"

/* The largest request or answer (a config, captured output). */
#define SPAWNER_FRAME_MAX (64u << 20)

static int spawner_fd = -1; /* the caller's end of the control socket */
static bool in_worker;      /* this process is a worker: do the work here */

bool rt_spawner_active(void)
{
    return spawner_fd >= 0 && !in_worker;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int frame_write(int fd, const void *data, size_t len)
{
    uint32_t n = (uint32_t)len;
    return write_full(fd, &n, sizeof(n)) < 0 || write_full(fd, data, len) < 0 ? -1 : 0;
}

/* Reads one frame into a NUL-terminated buffer the caller frees. */
static char *frame_read(int fd, size_t *len)
{
    uint32_t n;
    if (read_full(fd, &n, sizeof(n)) < 0 || n > SPAWNER_FRAME_MAX)
        return NULL;
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL)
        return NULL;
    if (read_full(fd, buf, n) < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int frame_write_json(int fd, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        return -1;
    int rc = frame_write(fd, text, strlen(text));
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * The worker */

static json_t *strv_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; v != NULL && (n == SIZE_MAX ? v[i] != NULL : i < n); i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* A NULL-terminated copy of a JSON array of strings (NULL for a missing one). */
static const char **strv_from(const json_t *a, size_t *n)
{
    *n = 0;
    if (!json_is_array(a))
        return NULL;
    const char **v = gy_xcalloc(json_array_size(a) + 1, sizeof(*v));
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s != NULL)
            v[(*n)++] = s;
    }
    return v;
}

static const char *str_or_null(const json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

static json_t *error_json(int rc, const struct gy_error *err)
{
    return json_pack("{s:i,s:i,s:s}", "rc", rc, "code", rc < 0 ? (int)err->code : 0, "msg",
                     rc < 0 ? err->msg : "");
}

static void worker_create(int fd, const json_t *req)
{
    size_t n_layers;
    const char **layers = strv_from(json_object_get(req, "layers"), &n_layers);
    struct rt_create_opts o = {
        .root = str_or_null(req, "root"),
        .id = str_or_null(req, "id"),
        .bundle = str_or_null(req, "bundle"),
        .config_json = str_or_null(req, "config_json"),
        .layers = layers,
        .n_layers = n_layers,
        .upper_dir = str_or_null(req, "upper_dir"),
        .work_dir = str_or_null(req, "work_dir"),
        .stdio_inherit = json_is_true(json_object_get(req, "stdio_inherit")),
        .start = json_is_true(json_object_get(req, "start")),
        .log_max = (int64_t)json_integer_value(json_object_get(req, "log_max")),
        /* The worker exits once it has answered, so the monitor can be its child: the
         * kernel hands it to a subreaper or init then, as a grandchild would be, for one
         * fork less. */
        .monitor_child = true,
    };
    struct gy_error err;
    gy_error_clear(&err);
    pid_t monitor = 0;
    int rc = o.id == NULL ? gy_error_set(&err, GY_EINVAL, "create: no container id")
                          : rt_container_create(&o, &monitor, &err);
    json_t *ans = error_json(rc, &err);
    json_object_set_new(ans, "monitor_pid", json_integer(monitor));
    frame_write_json(fd, ans);
    free(layers);
}

static void worker_exec(int fd, const json_t *req)
{
    size_t n;
    const char **argv = strv_from(json_object_get(req, "argv"), &n);
    const char **env = strv_from(json_object_get(req, "env"), &n);
    struct rt_exec_opts o = {
        .argv = argv,
        .env = env,
        .cwd = str_or_null(req, "cwd"),
        .has_user = json_is_true(json_object_get(req, "has_user")),
        .uid = (uid_t)json_integer_value(json_object_get(req, "uid")),
        .gid = (gid_t)json_integer_value(json_object_get(req, "gid")),
        .capture = json_is_true(json_object_get(req, "capture")),
        .output_max = (size_t)json_integer_value(json_object_get(req, "output_max")),
        .timeout_ms = (int)json_integer_value(json_object_get(req, "timeout_ms")),
    };
    struct rt_exec_result res = {0};
    struct gy_error err;
    gy_error_clear(&err);
    const char *root = str_or_null(req, "root"), *id = str_or_null(req, "id");
    int rc = id == NULL || argv == NULL
                 ? gy_error_set(&err, GY_EINVAL, "exec: no container id or program")
                 : rt_container_exec(root, id, &o, &res, &err);
    json_t *ans = error_json(rc, &err);
    json_object_set_new(ans, "exit_code", json_integer(res.exit_code));
    json_object_set_new(ans, "signal", json_integer(res.signal));
    json_object_set_new(ans, "timed_out", json_boolean(res.timed_out));
    if (frame_write_json(fd, ans) == 0)
        frame_write(fd, res.output != NULL ? res.output : "", res.output_len);
    free(res.output);
    free(argv);
    free(env);
}

static void __attribute__((noreturn)) worker_main(int fd)
{
    in_worker = true;
    /* The spawner lets the kernel reap its workers; a worker waits for its own children. */
    signal(SIGCHLD, SIG_DFL);
    size_t len;
    char *text = frame_read(fd, &len);
    json_t *req = text != NULL ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    const char *op = str_or_null(req, "op");
    if (op != NULL && strcmp(op, "create") == 0)
        worker_create(fd, req);
    else if (op != NULL && strcmp(op, "exec") == 0)
        worker_exec(fd, req);
    json_decref(req);
    close(fd);
    _exit(0);
}

/* The spawner's loop: a worker per socket received, until the caller's end closes. */
static void __attribute__((noreturn)) spawner_main(int ctl)
{
    struct sigaction sa = {.sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    for (;;) {
        char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = u.buf,
                             .msg_controllen = sizeof(u.buf)};
        ssize_t n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len != CMSG_LEN(sizeof(int)))
            continue;
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
        pid_t pid = fork();
        if (pid == 0) {
            close(ctl);
            worker_main(fd);
        }
        /* A failed fork closes the worker's socket unanswered: the caller reports it. */
        close(fd);
    }
}

int rt_spawner_start(struct gy_error *err)
{
    if (spawner_fd >= 0)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return gy_error_sys(err, errno, "spawner: socketpair");
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return gy_error_sys(err, errno, "spawner: fork");
    }
    if (pid == 0) {
        close(sv[0]);
        spawner_main(sv[1]);
    }
    close(sv[1]);
    spawner_fd = sv[0];
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The caller's side */

/* Sends req to a new worker and reads its answer (and, when out is not NULL, the frame
 * after it). Returns the answer, or NULL with err set. */
static json_t *call(json_t *req, const char *what, char **out, size_t *out_len,
                    struct gy_error *err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        json_decref(req);
        gy_error_sys(err, errno, "%s: socketpair", what);
        return NULL;
    }
    char byte = 'r';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(spawner_fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    close(sv[1]);
    json_t *ans = NULL;
    if (n != 1) {
        gy_error_sys(err, errno, "%s: the container spawner is gone", what);
    } else if (frame_write_json(sv[0], req) < 0) {
        req = NULL;
        gy_error_set(err, GY_EINTERNAL,
                     "%s: the container spawner's worker did not take the "
                     "request",
                     what);
    } else {
        req = NULL;
        size_t len;
        char *text = frame_read(sv[0], &len);
        ans = text != NULL ? json_loadb(text, len, 0, NULL) : NULL;
        free(text);
        if (ans != NULL && out != NULL && (*out = frame_read(sv[0], out_len)) == NULL) {
            json_decref(ans);
            ans = NULL;
        }
        if (ans == NULL)
            gy_error_set(err, GY_EINTERNAL,
                         "%s: the container spawner's worker exited without "
                         "an answer",
                         what);
    }
    json_decref(req);
    close(sv[0]);
    return ans;
}

/* The return code of an answer, and its error. */
static int answer_rc(const json_t *ans, struct gy_error *err)
{
    int rc = (int)json_integer_value(json_object_get(ans, "rc"));
    if (rc >= 0)
        return rc;
    int code = (int)json_integer_value(json_object_get(ans, "code"));
    const char *m = json_string_value(json_object_get(ans, "msg"));
    err->code = code > 0 && code < GY_E_COUNT ? (enum gy_code)code : GY_EINTERNAL;
    err->sys_errno = 0;
    snprintf(err->msg, sizeof(err->msg), "%s", m != NULL ? m : "failed");
    return rc;
}

int rt_spawner_create(const struct rt_create_opts *o, pid_t *monitor_pid, struct gy_error *err)
{
    json_t *req = json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:o,s:s?,s:s?,s:b,s:b,s:I}", "op", "create",
                            "root", o->root, "id", o->id, "bundle", o->bundle, "config_json",
                            o->config_json, "layers", strv_json(o->layers, o->n_layers),
                            "upper_dir", o->upper_dir, "work_dir", o->work_dir, "stdio_inherit",
                            o->stdio_inherit, "start", o->start, "log_max", (json_int_t)o->log_max);
    if (req == NULL)
        return gy_error_set(err, GY_ENOMEM, "create %s: encode the request", o->id);
    json_t *ans = call(req, "create", NULL, NULL, err);
    if (ans == NULL)
        return -(int)GY_EINTERNAL;
    int rc = answer_rc(ans, err);
    if (rc >= 0 && monitor_pid != NULL)
        *monitor_pid = (pid_t)json_integer_value(json_object_get(ans, "monitor_pid"));
    json_decref(ans);
    return rc;
}

int rt_spawner_exec(const char *root, const char *id, const struct rt_exec_opts *o,
                    struct rt_exec_result *res, struct gy_error *err)
{
    json_t *req = json_pack(
        "{s:s,s:s?,s:s?,s:o,s:o,s:s?,s:b,s:I,s:I,s:b,s:I,s:i}", "op", "exec", "root", root, "id",
        id, "argv", strv_json(o->argv, SIZE_MAX), "env", strv_json(o->env, SIZE_MAX), "cwd", o->cwd,
        "has_user", o->has_user, "uid", (json_int_t)o->uid, "gid", (json_int_t)o->gid, "capture",
        o->capture, "output_max", (json_int_t)o->output_max, "timeout_ms", o->timeout_ms);
    if (req == NULL)
        return gy_error_set(err, GY_ENOMEM, "exec in %s: encode the request", id);
    char *out = NULL;
    size_t out_len = 0;
    json_t *ans = call(req, "exec", &out, &out_len, err);
    if (ans == NULL)
        return -(int)GY_EINTERNAL;
    int rc = answer_rc(ans, err);
    memset(res, 0, sizeof(*res));
    if (rc >= 0) {
        res->exit_code = (int)json_integer_value(json_object_get(ans, "exit_code"));
        res->signal = (int)json_integer_value(json_object_get(ans, "signal"));
        res->timed_out = json_is_true(json_object_get(ans, "timed_out"));
        if (o->capture) {
            res->output = out;
            res->output_len = out_len;
            out = NULL;
        }
    }
    free(out);
    json_decref(ans);
    return rc;
}
