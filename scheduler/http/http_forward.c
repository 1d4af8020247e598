/* The request forwarder: relays a request as received to another server (a follower sends
 * writes to the leader) and answers the client with that server's answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/http/http_internal.h"

static void fwd_handle_closed(uv_handle_t *handle)
{
    struct http_forward *fwd = handle->data;
    if (--fwd->open_handles > 0)
        return;
    struct sch_http_server *server = fwd->server;
    free(fwd->out);
    http_buf_free(&fwd->field);
    http_buf_free(&fwd->value);
    http_buf_free(&fwd->content_type);
    http_buf_free(&fwd->retry_after);
    http_buf_free(&fwd->body);
    http_server_forward_remove(server, fwd);
    free(fwd);
}

/* Answers the client, once: with the relayed answer when it is complete, else with a 503
 * that gives the reason. */
static void fwd_finish(struct http_forward *fwd, const char *failure)
{
    if (fwd->finished)
        return;
    fwd->finished = true;
    uv_timer_stop(&fwd->timer);
    uv_read_stop((uv_stream_t *)&fwd->tcp);
    if (failure == NULL) {
        char extra[160] = "";
        if (fwd->have_retry_after && fwd->retry_after.len < 100 &&
            strpbrk(fwd->retry_after.data, "\r\n") == NULL)
            snprintf(extra, sizeof(extra), "Retry-After: %s\r\n", fwd->retry_after.data);
        sch_http_respond(fwd->req, (int)fwd->parser.status_code,
                         fwd->have_content_type ? fwd->content_type.data : NULL,
                         extra[0] != '\0' ? extra : NULL,
                         fwd->body.data != NULL ? fwd->body.data : "", fwd->body.len);
    } else {
        gy_log_warn("http forward failed", "target=%s reason=\"%s\"", fwd->target, failure);
        char message[512];
        /* The client must not take a write the leader may have applied for one it did not
         * (docs/api.md, "Errors"): it re-reads before it writes again. */
        snprintf(message, sizeof(message), "forward to %s: %s%s", fwd->target, failure,
                 fwd->sent && fwd->unsafe
                     ? "; the request was relayed, so it may or may not have been applied"
                     : "");
        http_respond_error_extra(fwd->req, 503, http_server_options(fwd->server)->forward_fail_code,
                                 "Retry-After: 1\r\n", message);
    }
    fwd->req = NULL;
    uv_close((uv_handle_t *)&fwd->tcp, fwd_handle_closed);
    uv_close((uv_handle_t *)&fwd->timer, fwd_handle_closed);
}

void http_forward_cancel(struct http_forward *fwd)
{
    fwd_finish(fwd, "server is shutting down");
}

/* ---------------------------------------------------------------- answer parsing */

static void take_header(struct http_forward *fwd)
{
    const char *name = fwd->field.data != NULL ? fwd->field.data : "";
    const char *value = fwd->value.data != NULL ? fwd->value.data : "";
    if (strcasecmp(name, "content-type") == 0) {
        http_buf_free(&fwd->content_type);
        http_buf_append(&fwd->content_type, value, strlen(value));
        fwd->have_content_type = true;
    } else if (strcasecmp(name, "retry-after") == 0) {
        http_buf_free(&fwd->retry_after);
        http_buf_append(&fwd->retry_after, value, strlen(value));
        fwd->have_retry_after = true;
    }
    http_buf_free(&fwd->field);
    http_buf_free(&fwd->value);
}

static int on_answer_begin(http_parser *p)
{
    struct http_forward *fwd = p->data;
    fwd->in_value = false;
    fwd->interim = false;
    fwd->have_content_type = fwd->have_retry_after = false;
    http_buf_free(&fwd->field);
    http_buf_free(&fwd->value);
    return 0;
}

static int on_answer_field(http_parser *p, const char *at, size_t len)
{
    struct http_forward *fwd = p->data;
    if (fwd->in_value) {
        take_header(fwd);
        fwd->in_value = false;
    }
    http_buf_append(&fwd->field, at, len);
    return fwd->field.len > 64 * 1024;
}

static int on_answer_value(http_parser *p, const char *at, size_t len)
{
    struct http_forward *fwd = p->data;
    fwd->in_value = true;
    http_buf_append(&fwd->value, at, len);
    return fwd->value.len > 64 * 1024;
}

static int on_answer_headers_complete(http_parser *p)
{
    struct http_forward *fwd = p->data;
    if (fwd->in_value)
        take_header(fwd);
    fwd->in_value = false;
    fwd->interim = p->status_code / 100 == 1;
    /* The answer to a HEAD request announces a length but carries no body (return 1 tells
     * http_parser so). */
    return fwd->head && !fwd->interim ? 1 : 0;
}

static int on_answer_body(http_parser *p, const char *at, size_t len)
{
    struct http_forward *fwd = p->data;
    if (fwd->body.len + len > HTTP_FORWARD_MAX_BODY)
        return 1;
    http_buf_append(&fwd->body, at, len);
    return 0;
}

static int on_answer_complete(http_parser *p)
{
    struct http_forward *fwd = p->data;
    if (fwd->interim) {
        /* "100 Continue" and friends precede the real answer. */
        fwd->interim = false;
        return 0;
    }
    fwd->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings answer_settings = {
    .on_message_begin = on_answer_begin,
    .on_header_field = on_answer_field,
    .on_header_value = on_answer_value,
    .on_headers_complete = on_answer_headers_complete,
    .on_body = on_answer_body,
    .on_message_complete = on_answer_complete,
};

/* ---------------------------------------------------------------- I/O */

static void fwd_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    if (suggested > 64 * 1024)
        suggested = 64 * 1024;
    buf->base = gy_xmalloc(suggested);
    buf->len = suggested;
}

static void fwd_parse(struct http_forward *fwd, const char *data, size_t len)
{
    http_parser_execute(&fwd->parser, &answer_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&fwd->parser);
    if (fwd->complete) {
        fwd_finish(fwd, NULL);
    } else if (e != HPE_OK) {
        char reason[160];
        snprintf(reason, sizeof(reason), "malformed answer: %s", http_errno_description(e));
        fwd_finish(fwd, reason);
    }
}

static void fwd_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct http_forward *fwd = stream->data;
    if (!fwd->finished) {
        if (nread > 0) {
            fwd_parse(fwd, buf->base, (size_t)nread);
        } else if (nread == UV_EOF) {
            /* An answer without a length ends with the connection. */
            fwd_parse(fwd, NULL, 0);
            if (!fwd->finished)
                fwd_finish(fwd, "connection closed before a complete answer");
        } else if (nread < 0) {
            fwd_finish(fwd, uv_strerror((int)nread));
        }
    }
    free(buf->base);
}

static void fwd_written(uv_write_t *req, int status)
{
    struct http_forward *fwd = req->data;
    if (status < 0 && !fwd->finished)
        fwd_finish(fwd, uv_strerror(status));
}

static void fwd_connected(uv_connect_t *req, int status)
{
    struct http_forward *fwd = req->data;
    if (fwd->finished)
        return;
    if (status < 0) {
        fwd_finish(fwd, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&fwd->tcp, 1);
    uv_buf_t b = uv_buf_init(fwd->out, (unsigned int)fwd->out_len);
    fwd->write_req.data = fwd;
    int rc = uv_write(&fwd->write_req, (uv_stream_t *)&fwd->tcp, &b, 1, fwd_written);
    fwd->sent = rc == 0;
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&fwd->tcp, fwd_alloc, fwd_read);
    if (rc < 0)
        fwd_finish(fwd, uv_strerror(rc));
}

static void fwd_timeout(uv_timer_t *timer)
{
    fwd_finish(timer->data, "no answer in time");
}

void sch_http_forward(struct sch_http_request *req, const char *host_port, uint64_t timeout_ms)
{
    if (req->answered) {
        gy_log_error("http request answered twice", "call=sch_http_forward");
        return;
    }
    struct sch_http_conn *conn = req->conn;
    if (conn == NULL || conn->server == NULL) {
        /* Nobody would read the answer: finish the request without relaying it. */
        http_respond_error_extra(req, 503, "unavailable", "Retry-After: 1\r\n",
                                 "the request cannot be forwarded");
        return;
    }
    const struct sch_http_options *opts = http_server_options(conn->server);
    if (sch_http_header(req, opts->forward_mark) != NULL) {
        http_respond_error_extra(req, 503, opts->forward_fail_code, "Retry-After: 1\r\n",
                                 "the request was already forwarded once and this server is "
                                 "not its destination either");
        return;
    }
    struct sockaddr_storage ss;
    struct gy_error err;
    if (http_parse_addr(host_port, &ss, &err) < 0) {
        http_respond_error_extra(req, 503, opts->forward_fail_code, "Retry-After: 1\r\n", err.msg);
        return;
    }
    const char *eol = strstr(req->raw, "\r\n");
    char mark[128];
    int mark_len = snprintf(mark, sizeof(mark), "%s: 1\r\n", opts->forward_mark);
    if (eol == NULL || mark_len < 0 || (size_t)mark_len >= sizeof(mark)) {
        http_respond_error_extra(req, 503, opts->forward_fail_code, "Retry-After: 1\r\n",
                                 "the request cannot be forwarded");
        return;
    }

    struct http_forward *fwd = gy_xcalloc(1, sizeof(*fwd));
    fwd->req = req;
    fwd->server = conn->server;
    snprintf(fwd->target, sizeof(fwd->target), "%s", host_port);
    fwd->head = strcmp(req->method, "HEAD") == 0;
    fwd->unsafe = strcmp(req->method, "GET") != 0 && !fwd->head;
    /* The marker goes right after the request line so that the receiving server can refuse
     * to relay the request a second time. */
    size_t line = (size_t)(eol - req->raw) + 2;
    fwd->out_len = req->raw_len + (size_t)mark_len;
    fwd->out = gy_xmalloc(fwd->out_len);
    memcpy(fwd->out, req->raw, line);
    memcpy(fwd->out + line, mark, (size_t)mark_len);
    memcpy(fwd->out + line + (size_t)mark_len, req->raw + line, req->raw_len - line);
    http_parser_init(&fwd->parser, HTTP_RESPONSE);
    fwd->parser.data = fwd;

    uv_loop_t *loop = http_server_loop(fwd->server);
    uv_tcp_init(loop, &fwd->tcp);
    uv_timer_init(loop, &fwd->timer);
    fwd->tcp.data = fwd->timer.data = fwd;
    fwd->connect_req.data = fwd;
    fwd->open_handles = 2;
    http_server_forward_add(fwd->server, fwd);
    uv_timer_start(&fwd->timer, fwd_timeout, timeout_ms, 0);
    int rc =
        uv_tcp_connect(&fwd->connect_req, &fwd->tcp, (const struct sockaddr *)&ss, fwd_connected);
    if (rc < 0)
        fwd_finish(fwd, uv_strerror(rc));
}
