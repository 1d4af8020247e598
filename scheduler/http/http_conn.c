/* The HTTP/1.1 protocol engine of one client connection, independent of sockets: bytes in,
 * requests to the handler, answers out in request order through the transport's ops. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/http/http_internal.h"

/* ---------------------------------------------------------------- buffers */

void http_buf_append(struct http_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = gy_xrealloc(b->data, cap);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void http_buf_printf(struct http_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        http_buf_append(b, small, (size_t)n);
        return;
    }
    char *big = gy_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    http_buf_append(b, big, (size_t)n);
    free(big);
}

char *http_buf_steal(struct http_buf *b, size_t *len)
{
    if (b->data == NULL)
        http_buf_append(b, "", 0);
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void http_buf_free(struct http_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- small helpers */

void http_options_fill(struct sch_http_options *out, const struct sch_http_options *in)
{
    struct sch_http_options zero = {0};
    *out = in != NULL ? *in : zero;
    if (out->max_body == 0)
        out->max_body = 4u * 1024 * 1024;
    if (out->max_header == 0)
        out->max_header = 64u * 1024;
    if (out->header_timeout_ms == 0)
        out->header_timeout_ms = 10000;
    if (out->idle_timeout_ms == 0)
        out->idle_timeout_ms = 60000;
    if (out->max_connections == 0)
        out->max_connections = 1024;
    if (out->forward_mark == NULL)
        out->forward_mark = "X-Forwarded-Once";
    if (out->forward_fail_code == NULL)
        out->forward_fail_code = "unavailable";
}

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *http_percent_decode(const char *src, size_t len, bool plus_is_space)
{
    char *out = gy_xmalloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 1 < len ? hex_value(src[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(src[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else if (c == '\0') {
            free(out);
            return NULL;
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

const char *sch_http_header(const struct sch_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

bool sch_http_query(const struct sch_http_request *req, const char *key, char *buf, size_t len)
{
    const char *q = req->query != NULL ? req->query : "";
    while (*q != '\0') {
        const char *end = strchr(q, '&');
        size_t plen = end != NULL ? (size_t)(end - q) : strlen(q);
        const char *eq = memchr(q, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - q) : plen;
        char *k = http_percent_decode(q, klen, true);
        bool match = k != NULL && strcmp(k, key) == 0;
        free(k);
        if (match) {
            const char *v = eq != NULL ? eq + 1 : q + plen;
            size_t vlen = eq != NULL ? plen - klen - 1 : 0;
            char *dv = http_percent_decode(v, vlen, true);
            /* A malformed value is reported as absent rather than half-decoded. */
            if (dv == NULL)
                return false;
            if (len > 0) {
                snprintf(buf, len, "%s", dv);
            }
            free(dv);
            return true;
        }
        q += plen;
        if (*q == '&')
            q++;
    }
    return false;
}

/* ---------------------------------------------------------------- entries */

static struct http_entry *entry_of(struct sch_http_request *req)
{
    return (struct http_entry *)req;
}

/* Frees what the request holds (not the answer bytes). */
static void entry_release_request(struct http_entry *e)
{
    struct sch_http_request *req = &e->req;
    free(req->path);
    free(req->query);
    for (size_t i = 0; i < req->n_headers; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->body);
    free(req->raw);
    req->path = req->query = req->body = req->raw = NULL;
    req->headers = NULL;
    req->n_headers = 0;
    req->body_len = req->raw_len = 0;
}

static void entry_free(struct http_entry *e)
{
    entry_release_request(e);
    http_buf_free(&e->out);
    free(e);
}

static void queue_push(struct sch_http_conn *conn, struct http_entry *e)
{
    e->next = NULL;
    if (conn->tail != NULL)
        conn->tail->next = e;
    else
        conn->head = e;
    conn->tail = e;
    conn->in_flight++;
}

/* ---------------------------------------------------------------- parser callbacks */

static struct sch_http_conn *conn_of(http_parser *p)
{
    return p->data;
}

static int reject_from_callback(struct sch_http_conn *conn, int status, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int reject_from_callback(struct sch_http_conn *conn, int status, const char *code,
                                const char *fmt, ...)
{
    conn->reject_status = status;
    conn->reject_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(conn->reject_msg, sizeof(conn->reject_msg), fmt, ap);
    va_end(ap);
    /* Not 1 or 2: from on_headers_complete those mean "no body" and "upgrade". */
    return -1;
}

/* Bytes of the current request up to the end of [at, at+len) in the executing buffer. */
static size_t bytes_through(struct sch_http_conn *conn, const char *at, size_t len)
{
    return conn->raw.len + (size_t)(at + len - conn->exec_buf);
}

static int check_header_size(struct sch_http_conn *conn, const char *at, size_t len)
{
    if (bytes_through(conn, at, len) > conn->opts->max_header)
        return reject_from_callback(conn, 431, "headers_too_large",
                                    "request line and headers exceed %zu bytes",
                                    conn->opts->max_header);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct sch_http_conn *conn = conn_of(p);
    conn->cur = gy_xcalloc(1, sizeof(*conn->cur));
    conn->cur->req.conn = conn;
    http_buf_free(&conn->url);
    http_buf_free(&conn->field);
    http_buf_free(&conn->value);
    http_buf_free(&conn->body);
    conn->n_headers_cap = 0;
    conn->in_value = false;
    conn->headers_done = false;
    conn->partial = true;
    conn->partial_since_ns = uv_hrtime();
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct sch_http_conn *conn = conn_of(p);
    http_buf_append(&conn->url, at, len);
    return check_header_size(conn, at, len);
}

/* Moves the header collected in field/value into the request. */
static void store_header(struct sch_http_conn *conn)
{
    struct sch_http_request *req = &conn->cur->req;
    if (req->n_headers == conn->n_headers_cap) {
        conn->n_headers_cap = conn->n_headers_cap ? conn->n_headers_cap * 2 : 16;
        req->headers = gy_xrealloc(req->headers, conn->n_headers_cap * sizeof(*req->headers));
    }
    char *name = http_buf_steal(&conn->field, NULL);
    for (char *c = name; *c != '\0'; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    req->headers[req->n_headers].name = name;
    req->headers[req->n_headers].value = http_buf_steal(&conn->value, NULL);
    req->n_headers++;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct sch_http_conn *conn = conn_of(p);
    /* Trailer fields after a chunked body are not kept; the request's total size limit in
     * feed_loop bounds them. */
    if (conn->headers_done)
        return 0;
    if (conn->in_value) {
        store_header(conn);
        conn->in_value = false;
    }
    http_buf_append(&conn->field, at, len);
    return check_header_size(conn, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct sch_http_conn *conn = conn_of(p);
    if (conn->headers_done)
        return 0;
    conn->in_value = true;
    http_buf_append(&conn->value, at, len);
    return check_header_size(conn, at, len);
}

static int on_headers_complete(http_parser *p)
{
    struct sch_http_conn *conn = conn_of(p);
    struct sch_http_request *req = &conn->cur->req;
    if (conn->in_value || conn->field.len > 0)
        store_header(conn);
    conn->in_value = false;
    conn->headers_done = true;
    req->method = http_method_str((enum http_method)p->method);
    conn->cur->head = p->method == HTTP_HEAD;

    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = conn->url.data != NULL ? conn->url.data : "";
    if (p->method == HTTP_CONNECT || http_parser_parse_url(url, conn->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return reject_from_callback(conn, 400, "bad_request", "malformed request target");
    req->path =
        http_percent_decode(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len, false);
    if (req->path == NULL)
        return reject_from_callback(conn, 400, "bad_request",
                                    "malformed percent-encoding in the request path");
    if (u.field_set & (1 << UF_QUERY))
        req->query = gy_xstrndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    else
        req->query = gy_xstrdup("");
    http_buf_free(&conn->url);

    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_length = p->content_length != ULLONG_MAX && p->content_length > 0;
    if (has_length && p->content_length > conn->opts->max_body)
        return reject_from_callback(conn, 413, "too_large",
                                    "request body of %llu bytes exceeds the limit of %zu bytes",
                                    (unsigned long long)p->content_length, conn->opts->max_body);

    /* An interim answer may only go out when no earlier answer is owed; otherwise the
     * client sends the body after its own wait, as RFC 9110 section 10.1.1 allows. */
    const char *expect = sch_http_header(req, "expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && (chunked || has_length) &&
        p->http_major == 1 && p->http_minor >= 1 && conn->head == NULL && !conn->finished) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        conn->ops->send(conn, gy_xstrdup(cont), sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct sch_http_conn *conn = conn_of(p);
    if (conn->body.len + len > conn->opts->max_body)
        return reject_from_callback(conn, 413, "too_large",
                                    "request body exceeds the limit of %zu bytes",
                                    conn->opts->max_body);
    http_buf_append(&conn->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct sch_http_conn *conn = conn_of(p);
    struct http_entry *e = conn->cur;
    e->close_after = !http_should_keep_alive(p) || p->upgrade;
    e->http10 = p->http_major == 1 && p->http_minor == 0;
    e->keep_alive_10 = !e->close_after && e->http10;
    /* Pausing returns control to the feed loop at the exact end of this request, which
     * lets it cut the raw bytes and decide whether the queue has room for the next. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---------------------------------------------------------------- the engine */

void http_conn_init(struct sch_http_conn *conn, const struct http_conn_ops *ops,
                    const struct sch_http_options *opts, sch_http_handler handler, void *data)
{
    conn->ops = ops;
    conn->opts = opts;
    conn->handler = handler;
    conn->handler_data = data;
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
}

/* Drops the request being received, if any. */
static void discard_current(struct sch_http_conn *conn)
{
    if (conn->cur != NULL)
        entry_free(conn->cur);
    conn->cur = NULL;
    http_buf_free(&conn->raw);
    http_buf_free(&conn->url);
    http_buf_free(&conn->field);
    http_buf_free(&conn->value);
    http_buf_free(&conn->body);
    conn->n_headers_cap = 0;
    conn->partial = false;
}

static void build_error_body(struct http_buf *out, const char *code, const char *path,
                             const char *message)
{
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (err == NULL)
        err = json_pack("{s:s, s:s}", "code", code, "message", "(message not valid UTF-8)");
    if (path != NULL)
        json_object_set_new(err, "path", json_string(path));
    json_t *doc = json_pack("{s:o}", "error", err);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    http_buf_append(out, text, strlen(text));
    free(text);
}

/* Writes status line and headers into e->out; body_len < 0 means a stream. */
static void write_head(struct http_entry *e, int status, const char *content_type,
                       const char *extra_headers, long long body_len)
{
    http_buf_printf(&e->out, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    if (content_type != NULL)
        http_buf_printf(&e->out, "Content-Type: %s\r\n", content_type);
    bool no_body = status < 200 || status == 204 || status == 304;
    if (body_len >= 0 && !no_body)
        http_buf_printf(&e->out, "Content-Length: %lld\r\n", body_len);
    else if (body_len < 0 && e->chunked)
        http_buf_printf(&e->out, "Transfer-Encoding: chunked\r\n");
    if (extra_headers != NULL)
        http_buf_append(&e->out, extra_headers, strlen(extra_headers));
    if (e->close_after)
        http_buf_printf(&e->out, "Connection: close\r\n");
    else if (e->keep_alive_10)
        http_buf_printf(&e->out, "Connection: keep-alive\r\n");
    http_buf_append(&e->out, "\r\n", 2);
}

/* Queues a server-made error answer after the requests already queued and stops parsing. */
void http_conn_reject(struct sch_http_conn *conn, int status, const char *code, const char *msg)
{
    if (conn->stopped || conn->gone)
        return;
    gy_log_debug("http request rejected", "status=%d code=%s", status, code);
    discard_current(conn);
    conn->stopped = true;
    struct http_entry *e = gy_xcalloc(1, sizeof(*e));
    e->req.answered = true;
    e->close_after = true;
    e->done = true;
    struct http_buf body = {0};
    build_error_body(&body, code, NULL, msg);
    write_head(e, status, "application/json", NULL, (long long)body.len);
    http_buf_append(&e->out, body.data, body.len);
    http_buf_free(&body);
    queue_push(conn, e);
    http_conn_flush(conn);
}

/* Turns the parsed request into its final form and gives it to the handler. */
static void dispatch(struct sch_http_conn *conn)
{
    struct http_entry *e = conn->cur;
    struct sch_http_request *req = &e->req;
    if (conn->gone) {
        /* The transport closed while this request was parsed (a failed interim answer). */
        discard_current(conn);
        return;
    }
    conn->cur = NULL;
    conn->partial = false;
    /* Blank lines before a request line are allowed (RFC 9112 section 2.2) and are not part
     * of the request a forwarder relays. */
    size_t skip = 0;
    while (skip < conn->raw.len && (conn->raw.data[skip] == '\r' || conn->raw.data[skip] == '\n'))
        skip++;
    req->raw_len = conn->raw.len - skip;
    req->raw = gy_xmalloc(req->raw_len + 1);
    memcpy(req->raw, conn->raw.data + skip, req->raw_len);
    req->raw[req->raw_len] = '\0';
    http_buf_free(&conn->raw);
    req->body = http_buf_steal(&conn->body, &req->body_len);
    conn->n_headers_cap = 0;
    req->received_ns = uv_hrtime();
    queue_push(conn, e);
    if (e->close_after)
        conn->stopped = true;
    conn->handler(req, conn->handler_data);
}

/* The parse loop proper: one request per http_parser_execute call. */
static void feed_loop(struct sch_http_conn *conn, const char *data, size_t len)
{
    while (len > 0 && !conn->stopped && !conn->gone) {
        if (conn->in_flight >= HTTP_MAX_IN_FLIGHT) {
            conn->stash = gy_xrealloc(conn->stash, conn->stash_len + len);
            memcpy(conn->stash + conn->stash_len, data, len);
            conn->stash_len += len;
            conn->paused = true;
            conn->ops->set_reading(conn, false);
            return;
        }
        conn->exec_buf = data;
        size_t n = http_parser_execute(&conn->parser, &parser_settings, data, len);
        enum http_errno errno_ = HTTP_PARSER_ERRNO(&conn->parser);
        if (errno_ == HPE_PAUSED) {
            http_parser_pause(&conn->parser, 0);
            http_buf_append(&conn->raw, data, n);
            data += n;
            len -= n;
            dispatch(conn);
            continue;
        }
        if (errno_ != HPE_OK) {
            if (conn->reject_status != 0) {
                http_conn_reject(conn, conn->reject_status, conn->reject_code, conn->reject_msg);
            } else if (errno_ == HPE_HEADER_OVERFLOW) {
                http_conn_reject(conn, 431, "headers_too_large",
                                 "request line and headers are too large");
            } else {
                char msg[160];
                snprintf(msg, sizeof(msg), "malformed HTTP request: %s",
                         http_errno_description(errno_));
                http_conn_reject(conn, 400, "bad_request", msg);
            }
            return;
        }
        if (conn->partial) {
            http_buf_append(&conn->raw, data, len);
            /* Whitespace and chunk extensions pass through the parser without callbacks,
             * so the byte counts are checked here as well. */
            if (!conn->headers_done && conn->raw.len > conn->opts->max_header) {
                http_conn_reject(conn, 431, "headers_too_large",
                                 "request line and headers are too large");
            } else if (conn->raw.len > conn->opts->max_header + 2 * conn->opts->max_body + 4096) {
                http_conn_reject(conn, 413, "too_large", "request is too large");
            }
        }
        return;
    }
}

void http_conn_feed(struct sch_http_conn *conn, const char *data, size_t len)
{
    if (conn->stopped || conn->gone || len == 0)
        return;
    if (conn->paused) {
        conn->stash = gy_xrealloc(conn->stash, conn->stash_len + len);
        memcpy(conn->stash + conn->stash_len, data, len);
        conn->stash_len += len;
        return;
    }
    conn->feeding = true;
    feed_loop(conn, data, len);
    conn->feeding = false;
    if (!conn->gone)
        conn->ops->changed(conn);
}

void http_conn_resume(struct sch_http_conn *conn)
{
    if (!conn->paused || conn->feeding || conn->gone || conn->in_flight >= HTTP_MAX_IN_FLIGHT)
        return;
    conn->paused = false;
    char *stash = conn->stash;
    size_t stash_len = conn->stash_len;
    conn->stash = NULL;
    conn->stash_len = 0;
    conn->feeding = true;
    feed_loop(conn, stash, stash_len);
    conn->feeding = false;
    free(stash);
    if (conn->gone)
        return;
    if (!conn->paused && !conn->stopped)
        conn->ops->set_reading(conn, true);
    conn->ops->changed(conn);
}

void http_conn_flush(struct sch_http_conn *conn)
{
    while (conn->head != NULL && !conn->finished && !conn->gone) {
        struct http_entry *e = conn->head;
        if (e->out.len > 0) {
            size_t n;
            char *bytes = http_buf_steal(&e->out, &n);
            conn->ops->send(conn, bytes, n);
            /* A failed send closes the connection, and the close frees finished entries. */
            if (conn->gone)
                return;
        }
        if (!e->done)
            break;
        conn->head = e->next;
        if (conn->head == NULL)
            conn->tail = NULL;
        conn->in_flight--;
        bool close = e->close_after;
        entry_free(e);
        if (close) {
            conn->stopped = true;
            conn->finished = true;
            conn->ops->finish(conn);
        }
    }
    if (conn->gone)
        return;
    if (conn->paused && conn->in_flight < HTTP_MAX_IN_FLIGHT)
        conn->ops->wake(conn);
    conn->ops->changed(conn);
}

void http_conn_abort(struct sch_http_conn *conn)
{
    if (conn->gone)
        return;
    conn->gone = true;
    conn->stopped = true;
    struct http_entry *e = conn->head;
    conn->head = conn->tail = NULL;
    conn->in_flight = 0;
    while (e != NULL) {
        struct http_entry *next = e->next;
        e->next = NULL;
        if (e->done) {
            entry_free(e);
        } else {
            /* The handler still owns it: it answers later and the answer is dropped. */
            e->req.conn = NULL;
            e->req.conn_gone = true;
            http_buf_free(&e->out);
        }
        e = next;
    }
}

void http_conn_release(struct sch_http_conn *conn)
{
    discard_current(conn);
    free(conn->stash);
    conn->stash = NULL;
    conn->stash_len = 0;
}

/* ---------------------------------------------------------------- answers */

/* Marks req answered; returns its entry, or NULL (after freeing it) when the client is
 * gone or the request was already answered. */
static struct http_entry *answer_begin(struct sch_http_request *req, const char *what)
{
    struct http_entry *e = entry_of(req);
    if (req->answered) {
        gy_log_error("http request answered twice", "call=%s", what);
        return NULL;
    }
    req->answered = true;
    if (req->conn == NULL) {
        entry_free(e);
        return NULL;
    }
    return e;
}

void sch_http_respond(struct sch_http_request *req, int status, const char *content_type,
                      const char *extra_headers, const char *body, size_t len)
{
    struct http_entry *e = answer_begin(req, "sch_http_respond");
    if (e == NULL)
        return;
    struct sch_http_conn *conn = req->conn;
    write_head(e, status, content_type, extra_headers, (long long)len);
    bool no_body = status < 200 || status == 204 || status == 304;
    if (!e->head && !no_body && len > 0)
        http_buf_append(&e->out, body, len);
    e->done = true;
    entry_release_request(e);
    http_conn_flush(conn);
}

void sch_http_respond_json(struct sch_http_request *req, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        http_respond_error_extra(req, 500, "internal", NULL, "answer could not be encoded");
        return;
    }
    sch_http_respond(req, status, "application/json", NULL, text, strlen(text));
    free(text);
}

static void respond_error_full(struct sch_http_request *req, int status, const char *code,
                               const char *path, const char *extra_headers, const char *message)
{
    struct http_buf body = {0};
    build_error_body(&body, code, path, message);
    sch_http_respond(req, status, "application/json", extra_headers, body.data, body.len);
    http_buf_free(&body);
}

void http_respond_error_extra(struct sch_http_request *req, int status, const char *code,
                              const char *extra_headers, const char *message)
{
    respond_error_full(req, status, code, NULL, extra_headers, message);
}

void sch_http_respond_error(struct sch_http_request *req, int status, const char *code,
                            const char *path, const char *fmt, ...)
{
    char message[GY_ERROR_MSG_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    respond_error_full(req, status, code, path, NULL, message);
}

void sch_http_stream_start(struct sch_http_request *req, int status, const char *content_type)
{
    struct http_entry *e = entry_of(req);
    if (req->answered) {
        gy_log_error("http request answered twice", "call=sch_http_stream_start");
        return;
    }
    req->answered = true;
    e->streaming = true;
    if (req->conn == NULL)
        return;
    /* HTTP/1.0 has no chunked framing: the end of the stream is the end of the connection. */
    e->chunked = !e->http10;
    if (!e->chunked) {
        e->close_after = true;
        e->keep_alive_10 = false;
    }
    write_head(e, status, content_type, NULL, -1);
    http_conn_flush(req->conn);
}

bool sch_http_stream_write(struct sch_http_request *req, const char *data, size_t len)
{
    struct http_entry *e = entry_of(req);
    if (!e->streaming || e->done) {
        gy_log_error("http stream written outside a stream", "call=sch_http_stream_write");
        return false;
    }
    if (req->conn == NULL)
        return false;
    if (len == 0)
        return true;
    if (!e->head) {
        if (e->chunked)
            http_buf_printf(&e->out, "%zx\r\n", len);
        http_buf_append(&e->out, data, len);
        if (e->chunked)
            http_buf_append(&e->out, "\r\n", 2);
    }
    http_conn_flush(req->conn);
    return true;
}

void sch_http_stream_end(struct sch_http_request *req)
{
    struct http_entry *e = entry_of(req);
    if (!e->streaming || e->done) {
        gy_log_error("http stream ended outside a stream", "call=sch_http_stream_end");
        return;
    }
    if (req->conn == NULL) {
        entry_free(e);
        return;
    }
    if (e->chunked && !e->head)
        http_buf_append(&e->out, "0\r\n\r\n", 5);
    e->done = true;
    struct sch_http_conn *conn = req->conn;
    entry_release_request(e);
    http_conn_flush(conn);
}
