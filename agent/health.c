/* Health checks; see health.h. */
#include "agent/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

enum probe_kind { PROBE_EXEC, PROBE_HTTP, PROBE_TCP };

struct agent_health {
    uv_loop_t *loop;
    enum probe_kind kind;
    char **argv; /* exec */
    size_t argc;
    char *http_path;
    unsigned port;
    char address[64];
    uint64_t interval_ms;
    uint64_t timeout_ms;
    unsigned threshold;
    uint64_t start_period_end; /* uv_now value before which failures do not count */
    agent_exec_probe exec;
    void *exec_data;
    struct agent_health_callbacks cb;
    void *data;

    uv_timer_t interval_timer;
    bool healthy;
    bool stopped;
    bool in_flight;
    unsigned failures;
    int open_handles;

    /* The network probe in flight. */
    uv_tcp_t *tcp;
    uv_connect_t connect;
    uv_timer_t timeout_timer;
    char response[64];
    size_t response_len;

    /* The exec probe in flight. */
    uv_work_t work;
    int exec_status;
    char detail[256];
};

static void schedule(struct agent_health *h, uint64_t delay);

static void maybe_free(struct agent_health *h)
{
    if (!h->stopped || h->in_flight || h->open_handles > 0)
        return;
    for (size_t i = 0; i < h->argc; i++)
        free(h->argv[i]);
    free(h->argv);
    free(h->http_path);
    free(h);
}

static void handle_closed(uv_handle_t *handle)
{
    struct agent_health *h = handle->data;
    h->open_handles--;
    maybe_free(h);
}

static void tcp_closed(uv_handle_t *handle)
{
    struct agent_health *h = handle->data;
    free(handle);
    h->open_handles--;
    maybe_free(h);
}

/* Records the outcome of one probe and schedules the next. */
static void probe_done(struct agent_health *h, bool ok, const char *detail)
{
    h->in_flight = false;
    if (h->tcp != NULL) {
        h->open_handles++;
        uv_close((uv_handle_t *)h->tcp, tcp_closed);
        h->tcp = NULL;
    }
    uv_timer_stop(&h->timeout_timer);
    if (h->stopped) {
        maybe_free(h);
        return;
    }
    if (ok) {
        h->failures = 0;
        if (!h->healthy) {
            h->healthy = true;
            if (h->cb.on_change != NULL)
                h->cb.on_change(h->data, true, "health check passed");
        }
    } else if (uv_now(h->loop) >= h->start_period_end) {
        h->failures++;
        /* Every full run of threshold failures is reported, also for a replica that was
         * never healthy, so the supervisor can restart it each time. */
        if (h->failures % h->threshold == 0) {
            h->healthy = false;
            char why[384];
            snprintf(why, sizeof(why), "health check failed %u times: %s", h->failures, detail);
            if (h->cb.on_change != NULL)
                h->cb.on_change(h->data, false, why);
        }
    }
    schedule(h, h->interval_ms);
}

/* ---- exec probes run on the thread pool ---- */

static void exec_work(uv_work_t *req)
{
    struct agent_health *h = req->data;
    struct gy_strv argv = {.items = h->argv, .n = h->argc};
    h->detail[0] = '\0';
    h->exec_status = h->exec(h->exec_data, &argv, (int)h->timeout_ms, h->detail, sizeof(h->detail));
}

static void exec_after(uv_work_t *req, int status)
{
    struct agent_health *h = req->data;
    if (status == UV_ECANCELED) {
        probe_done(h, false, "cancelled");
        return;
    }
    char detail[300];
    if (h->exec_status == 0)
        snprintf(detail, sizeof(detail), "ok");
    else
        snprintf(detail, sizeof(detail), "exec exited with %d%s%s", h->exec_status,
                 h->detail[0] != '\0' ? ": " : "", h->detail);
    probe_done(h, h->exec_status == 0, detail);
}

/* ---- network probes on the loop ---- */

static void on_timeout(uv_timer_t *t)
{
    struct agent_health *h = t->data;
    char why[64];
    snprintf(why, sizeof(why), "no answer within %llums", (unsigned long long)h->timeout_ms);
    probe_done(h, false, why);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct agent_health *h = handle->data;
    (void)suggested;
    buf->base = h->response + h->response_len;
    buf->len = sizeof(h->response) - 1 - h->response_len;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct agent_health *h = stream->data;
    (void)buf;
    if (nread > 0)
        h->response_len += (size_t)nread;
    bool full = h->response_len >= sizeof(h->response) - 1;
    char *eol = memchr(h->response, '\n', h->response_len);
    if (nread >= 0 && !full && eol == NULL)
        return;
    h->response[h->response_len] = '\0';
    int code = 0;
    if (sscanf(h->response, "HTTP/%*d.%*d %d", &code) != 1) {
        probe_done(h, false,
                   nread < 0 && h->response_len == 0 ? "connection closed without answer"
                                                     : "not an HTTP answer");
        return;
    }
    char why[64];
    snprintf(why, sizeof(why), "HTTP %d", code);
    probe_done(h, code >= 200 && code < 400, why);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct agent_health *h = req->data;
    if (!h->in_flight || req->handle != (uv_stream_t *)h->tcp)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof(why), "connect %s:%u: %s", h->address, h->port, uv_strerror(status));
        probe_done(h, false, why);
        return;
    }
    if (h->kind == PROBE_TCP) {
        probe_done(h, true, "connected");
        return;
    }
    char request[512];
    int n = snprintf(request, sizeof(request),
                     "GET %s HTTP/1.0\r\nHost: %s:%u\r\n"
                     "User-Agent: gantry-agent\r\n\r\n",
                     h->http_path != NULL && h->http_path[0] != '\0' ? h->http_path : "/",
                     h->address, h->port);
    uv_buf_t b = uv_buf_init(request, (unsigned)(n < (int)sizeof(request) ? n : 0));
    /* A request this small always fits an empty socket buffer, so it is sent at once. */
    if (uv_try_write((uv_stream_t *)h->tcp, &b, 1) != (int)b.len) {
        probe_done(h, false, "could not send the request");
        return;
    }
    h->response_len = 0;
    uv_read_start((uv_stream_t *)h->tcp, on_alloc, on_read);
}

static void run_probe(uv_timer_t *t)
{
    struct agent_health *h = t->data;
    if (h->stopped || h->in_flight)
        return;
    h->in_flight = true;
    if (h->kind == PROBE_EXEC) {
        h->work.data = h;
        if (uv_queue_work(h->loop, &h->work, exec_work, exec_after) < 0)
            probe_done(h, false, "could not queue exec probe");
        return;
    }
    struct sockaddr_in addr;
    if (uv_ip4_addr(h->address, (int)h->port, &addr) < 0) {
        probe_done(h, false, "replica has no address");
        return;
    }
    h->tcp = gy_xmalloc(sizeof(*h->tcp));
    uv_tcp_init(h->loop, h->tcp);
    h->tcp->data = h;
    h->connect.data = h;
    uv_timer_start(&h->timeout_timer, on_timeout, h->timeout_ms, 0);
    int rc = uv_tcp_connect(&h->connect, h->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof(why), "connect %s:%u: %s", h->address, h->port, uv_strerror(rc));
        probe_done(h, false, why);
    }
}

static void schedule(struct agent_health *h, uint64_t delay)
{
    uv_timer_start(&h->interval_timer, run_probe, delay, 0);
}

struct agent_health *agent_health_start(uv_loop_t *loop, const struct gy_health *spec,
                                        const char *address, agent_exec_probe exec, void *exec_data,
                                        const struct agent_health_callbacks *cb, void *data)
{
    enum probe_kind kind;
    if (spec->exec.n > 0)
        kind = PROBE_EXEC;
    else if (spec->http_port != 0)
        kind = PROBE_HTTP;
    else if (spec->tcp_port != 0)
        kind = PROBE_TCP;
    else
        return NULL;
    struct agent_health *h = gy_xcalloc(1, sizeof(*h));
    h->loop = loop;
    h->kind = kind;
    if (kind == PROBE_EXEC) {
        h->argc = spec->exec.n;
        h->argv = gy_xcalloc(h->argc + 1, sizeof(char *));
        for (size_t i = 0; i < h->argc; i++)
            h->argv[i] = gy_xstrdup(spec->exec.items[i]);
    }
    h->http_path = spec->http_path != NULL ? gy_xstrdup(spec->http_path) : NULL;
    h->port = kind == PROBE_HTTP ? spec->http_port : spec->tcp_port;
    snprintf(h->address, sizeof(h->address), "%s", address != NULL ? address : "");
    h->interval_ms = spec->interval_ms > 0 ? (uint64_t)spec->interval_ms : 10000;
    h->timeout_ms = spec->timeout_ms > 0 ? (uint64_t)spec->timeout_ms : 1000;
    h->threshold = spec->failure_threshold > 0 ? spec->failure_threshold : 3;
    h->start_period_end =
        uv_now(loop) + (uint64_t)(spec->start_period_ms > 0 ? spec->start_period_ms : 0);
    h->exec = exec;
    h->exec_data = exec_data;
    if (cb != NULL)
        h->cb = *cb;
    h->data = data;
    uv_timer_init(loop, &h->interval_timer);
    uv_timer_init(loop, &h->timeout_timer);
    h->interval_timer.data = h;
    h->timeout_timer.data = h;
    h->open_handles = 2;
    /* Probe soon after start: a replica should become ready as fast as it really is. */
    schedule(h, 0);
    return h;
}

void agent_health_stop(struct agent_health *h)
{
    if (h == NULL)
        return;
    h->stopped = true;
    uv_timer_stop(&h->interval_timer);
    uv_timer_stop(&h->timeout_timer);
    if (h->tcp != NULL) {
        h->open_handles++;
        uv_close((uv_handle_t *)h->tcp, tcp_closed);
        h->tcp = NULL;
        h->in_flight = false;
    }
    uv_close((uv_handle_t *)&h->interval_timer, handle_closed);
    uv_close((uv_handle_t *)&h->timeout_timer, handle_closed);
}

bool agent_health_healthy(const struct agent_health *h)
{
    return h != NULL && h->healthy;
}

unsigned agent_health_failures(const struct agent_health *h)
{
    return h != NULL ? h->failures : 0;
}
