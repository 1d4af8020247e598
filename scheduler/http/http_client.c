/* A one-shot HTTP GET on the loop, for a server asking another server a small question
 * (see sch_http_get in http.h): connect, send, read the answer until the peer closes, all
 * within one deadline. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/http/http_internal.h"

struct http_get {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    int open_handles;
    bool finished;
    char *request;
    http_parser parser;
    bool complete;
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t max_bytes;
    sch_http_get_cb cb;
    void *data;
};

static void get_handle_closed(uv_handle_t *handle)
{
    struct http_get *g = handle->data;
    if (--g->open_handles > 0)
        return;
    free(g->request);
    free(g->body);
    free(g);
}

/* Calls back once: with the answer's status and body when it is complete, else with the
 * failure (status 0). */
static void get_finish(struct http_get *g, const char *failure)
{
    if (g->finished)
        return;
    g->finished = true;
    uv_timer_stop(&g->timer);
    uv_read_stop((uv_stream_t *)&g->tcp);
    if (failure == NULL && g->complete)
        g->cb(g->data, (int)g->parser.status_code, g->body != NULL ? g->body : "", g->body_len,
              NULL);
    else
        g->cb(g->data, 0, NULL, 0, failure != NULL ? failure : "the answer ended early");
    uv_close((uv_handle_t *)&g->tcp, get_handle_closed);
    uv_close((uv_handle_t *)&g->timer, get_handle_closed);
}

/* http_parser has already taken this chunk off content_length (what remains after it), or
 * left it at ULLONG_MAX when the answer announced no length. */
static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_get *g = p->data;
    if (g->body_len + len > g->max_bytes)
        return -1;
    if (g->body_len + len + 1 > g->body_cap) {
        size_t want = g->body_len + len + 1;
        if (p->content_length != ULLONG_MAX &&
            p->content_length <= g->max_bytes - g->body_len - len)
            want += p->content_length; /* one allocation for a large image */
        else if (want < 2 * g->body_cap)
            want = 2 * g->body_cap;
        g->body = gy_xrealloc(g->body, want);
        g->body_cap = want;
    }
    memcpy(g->body + g->body_len, at, len);
    g->body_len += len;
    g->body[g->body_len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    struct http_get *g = p->data;
    g->complete = true;
    return 0;
}

static const http_parser_settings get_settings = {
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static void get_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    buf->base = gy_xmalloc(suggested);
    buf->len = suggested;
}

static void get_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_get *g = stream->data;
    if (nread > 0) {
        size_t n = http_parser_execute(&g->parser, &get_settings, buf->base, (size_t)nread);
        if (n != (size_t)nread || HTTP_PARSER_ERRNO(&g->parser) != HPE_OK)
            get_finish(g, "the answer is not valid HTTP");
        else if (g->complete)
            get_finish(g, NULL);
    } else if (nread < 0) {
        http_parser_execute(&g->parser, &get_settings, NULL, 0);
        get_finish(g, nread == UV_EOF ? NULL : uv_strerror((int)nread));
    }
    free(buf->base);
}

static void get_written(uv_write_t *req, int status)
{
    struct http_get *g = req->data;
    if (status < 0)
        get_finish(g, uv_strerror(status));
}

static void get_connected(uv_connect_t *req, int status)
{
    struct http_get *g = req->data;
    if (g->finished)
        return;
    if (status < 0) {
        get_finish(g, uv_strerror(status));
        return;
    }
    uv_buf_t b = uv_buf_init(g->request, (unsigned)strlen(g->request));
    int rc = uv_write(&g->write_req, (uv_stream_t *)&g->tcp, &b, 1, get_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&g->tcp, get_alloc, get_read);
    if (rc < 0)
        get_finish(g, uv_strerror(rc));
}

static void get_timeout(uv_timer_t *timer)
{
    get_finish(timer->data, "no answer in time");
}

int sch_http_get(uv_loop_t *loop, const char *host_port, const char *path, uint64_t timeout_ms,
                 size_t max_bytes, sch_http_get_cb cb, void *data, struct gy_error *err)
{
    struct sockaddr_storage ss;
    if (http_parse_addr(host_port, &ss, err) < 0)
        return -(int)err->code;
    if (path[0] != '/' || strpbrk(path, " \r\n") != NULL)
        return gy_error_set(err, GY_EINVAL, "not a request path: \"%s\"", path);
    struct http_get *g = gy_xcalloc(1, sizeof(*g));
    g->request =
        gy_xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host_port);
    g->max_bytes = max_bytes;
    g->cb = cb;
    g->data = data;
    http_parser_init(&g->parser, HTTP_RESPONSE);
    g->parser.data = g;
    uv_tcp_init(loop, &g->tcp);
    uv_timer_init(loop, &g->timer);
    g->tcp.data = g->timer.data = g->connect_req.data = g->write_req.data = g;
    g->open_handles = 2;
    uv_timer_start(&g->timer, get_timeout, timeout_ms, 0);
    int rc = uv_tcp_connect(&g->connect_req, &g->tcp, (const struct sockaddr *)&ss, get_connected);
    if (rc < 0)
        get_finish(g, uv_strerror(rc));
    return 0;
}
