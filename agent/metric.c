/* Load-metric probes; see metric.h. */
#include "agent/metric.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "runtime/runtime.h"

/* What a probe may print or answer. */
#define OUTPUT_MAX 4096

struct probe_work {
    uv_work_t work;
    char *runtime_root;
    char *address;
    char *replica_id;
    char **argv; /* exec; NULL-terminated */
    unsigned port;
    char *path;
    int timeout_ms;
    uint64_t request_id;
    agent_metric_done done;
    void *data;
    double value;
    char error[512];
};

int agent_metric_parse(const char *text, double *value, char *why, size_t len)
{
    /* The last non-empty line. */
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const char *start = end;
    while (start > text && start[-1] != '\n')
        start--;
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    if (start == end) {
        snprintf(why, len, "the metric printed nothing");
        return -1;
    }
    char line[128];
    size_t n = (size_t)(end - start);
    if (n >= sizeof(line)) {
        snprintf(why, len, "the metric printed a line of %zu characters, not a number", n);
        return -1;
    }
    memcpy(line, start, n);
    line[n] = '\0';
    char *stop;
    errno = 0;
    double v = strtod(line, &stop);
    if (stop == line || *stop != '\0' || errno != 0 || !isfinite(v)) {
        snprintf(why, len, "the metric printed \"%s\", not a number", line);
        return -1;
    }
    *value = v;
    return 0;
}

static void run_exec(struct probe_work *w)
{
    struct rt_exec_opts opts = {.argv = (const char *const *)w->argv,
                                .capture = true,
                                .output_max = OUTPUT_MAX,
                                .timeout_ms = w->timeout_ms};
    struct rt_exec_result res = {0};
    struct gy_error err;
    if (rt_container_exec(w->runtime_root, w->replica_id, &opts, &res, &err) < 0) {
        snprintf(w->error, sizeof(w->error), "exec %.100s: %.300s", w->argv[0], err.msg);
    } else if (res.timed_out) {
        snprintf(w->error, sizeof(w->error), "exec %.100s: timed out after %dms", w->argv[0],
                 w->timeout_ms);
    } else if (res.exit_code != 0) {
        snprintf(w->error, sizeof(w->error), "exec %.100s: exit status %d", w->argv[0],
                 res.exit_code);
    } else {
        char why[200];
        if (agent_metric_parse(res.output != NULL ? res.output : "", &w->value, why, sizeof(why)) <
            0)
            snprintf(w->error, sizeof(w->error), "exec %.100s: %.200s", w->argv[0], why);
    }
    free(res.output);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events until deadline; false on timeout or error. */
static bool wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc > 0)
            return true;
        if (rc == 0 || errno != EINTR)
            return false;
    }
}

static void run_http(struct probe_work *w)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
    if (w->address == NULL || inet_pton(AF_INET, w->address, &sa.sin_addr) != 1) {
        snprintf(w->error, sizeof(w->error), "the replica has no address for an HTTP metric");
        return;
    }
    uint64_t deadline = mono_ms() + (uint64_t)w->timeout_ms;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(w->error, sizeof(w->error), "socket: %s", strerror(errno));
        return;
    }
    char *body = gy_xmalloc(OUTPUT_MAX + 1);
    size_t got = 0;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (rc < 0 && errno != EINPROGRESS) {
        snprintf(w->error, sizeof(w->error), "GET http://%s:%u%s: %s", w->address, w->port, w->path,
                 strerror(errno));
        goto out;
    }
    if (!wait_fd(fd, POLLOUT, deadline) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
        soerr != 0) {
        snprintf(w->error, sizeof(w->error), "GET http://%s:%u%s: %s", w->address, w->port, w->path,
                 soerr != 0 ? strerror(soerr) : "connect timed out");
        goto out;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.0\r\nHost: %s:%u\r\nUser-Agent: gantry-agent\r\n\r\n", w->path,
                     w->address, w->port);
    if (n < 0 || (size_t)n >= sizeof(req) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(w->error, sizeof(w->error), "GET http://%s:%u%s: send failed", w->address, w->port,
                 w->path);
        goto out;
    }
    for (;;) {
        if (got == OUTPUT_MAX || !wait_fd(fd, POLLIN, deadline))
            break;
        ssize_t r = recv(fd, body + got, OUTPUT_MAX - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    body[got] = '\0';
    int status = 0;
    if (sscanf(body, "HTTP/%*d.%*d %d", &status) != 1) {
        snprintf(w->error, sizeof(w->error), "GET http://%s:%u%s: no HTTP answer", w->address,
                 w->port, w->path);
        goto out;
    }
    if (status != 200) {
        snprintf(w->error, sizeof(w->error), "GET http://%s:%u%s: status %d", w->address, w->port,
                 w->path, status);
        goto out;
    }
    char *payload = strstr(body, "\r\n\r\n");
    char why[200];
    if (payload == NULL || agent_metric_parse(payload + 4, &w->value, why, sizeof(why)) < 0)
        snprintf(w->error, sizeof(w->error), "GET http://%s:%u%s: %s", w->address, w->port, w->path,
                 payload == NULL ? "the answer has no body" : why);
out:
    free(body);
    close(fd);
}

static void probe_run(uv_work_t *req)
{
    struct probe_work *w = req->data;
    if (w->argv != NULL)
        run_exec(w);
    else
        run_http(w);
}

static void probe_after(uv_work_t *req, int status)
{
    struct probe_work *w = req->data;
    Gantry__MetricValue v = GANTRY__METRIC_VALUE__INIT;
    v.request_id = w->request_id;
    v.replica_id = w->replica_id;
    if (status < 0)
        snprintf(w->error, sizeof(w->error), "the probe was cancelled");
    if (w->error[0] != '\0')
        v.error = w->error;
    else
        v.value = w->value;
    w->done(w->data, &v);
    if (w->argv != NULL)
        for (char **p = w->argv; *p != NULL; p++)
            free(*p);
    free(w->argv);
    free(w->runtime_root);
    free(w->address);
    free(w->replica_id);
    free(w->path);
    free(w);
}

void agent_metric_probe(uv_loop_t *loop, const Gantry__MetricProbe *probe, const char *runtime_root,
                        const char *address, agent_metric_done done, void *data)
{
    struct probe_work *w = gy_xcalloc(1, sizeof(*w));
    w->work.data = w;
    w->runtime_root = gy_xstrdup(runtime_root);
    w->address = gy_xstrdup(address != NULL ? address : "");
    w->replica_id = gy_xstrdup(probe->replica_id != NULL ? probe->replica_id : "");
    w->request_id = probe->request_id;
    w->timeout_ms =
        probe->timeout_ms > 0 && probe->timeout_ms < 60000 ? (int)probe->timeout_ms : 2000;
    w->done = done;
    w->data = data;
    if (probe->n_exec > 0) {
        w->argv = gy_xcalloc(probe->n_exec + 1, sizeof(char *));
        for (size_t i = 0; i < probe->n_exec; i++)
            w->argv[i] = gy_xstrdup(probe->exec[i] != NULL ? probe->exec[i] : "");
    } else {
        w->port = probe->http_port;
        w->path =
            gy_xstrdup(probe->http_path != NULL && *probe->http_path ? probe->http_path : "/");
    }
    if (w->argv == NULL && w->port == 0)
        snprintf(w->error, sizeof(w->error), "the probe names neither a command nor a port");
    if (w->error[0] != '\0' || uv_queue_work(loop, &w->work, probe_run, probe_after) != 0) {
        if (w->error[0] == '\0')
            snprintf(w->error, sizeof(w->error), "cannot queue the probe");
        probe_after(&w->work, 0);
    }
}
