/* The HTTP server's libuv transport: listening, accepting, reading into the protocol engine
 * (http_conn.c), writing its answers, and the header, idle and linger timers. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/http/http_internal.h"

struct sch_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct sch_http_options opts;
    sch_http_handler handler;
    void *handler_data;
    int port;
    struct sch_http_conn *conns;
    size_t n_conns;       /* connections being served (counted against max_connections) */
    size_t open_conns;    /* connection objects not yet freed, including refused ones */
    size_t open_forwards; /* forwards whose handles are not closed yet */
    struct http_forward *forwards;
    bool listener_open;
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* One uv_write with the bytes it owns. */
struct http_write {
    uv_write_t req;
    char *buf;
};

static void conn_close(struct sch_http_conn *conn);

/* ---------------------------------------------------------------- server lifetime */

static void server_maybe_free(struct sch_http_server *server)
{
    if (!server->closing || server->listener_open || server->open_conns > 0 ||
        server->open_forwards > 0)
        return;
    void (*cb)(void *) = server->close_cb;
    void *arg = server->close_arg;
    free(server);
    if (cb != NULL)
        cb(arg);
}

uv_loop_t *http_server_loop(struct sch_http_server *server)
{
    return server->loop;
}

const struct sch_http_options *http_server_options(const struct sch_http_server *server)
{
    return &server->opts;
}

void http_server_forward_add(struct sch_http_server *server, struct http_forward *fwd)
{
    fwd->server_prev = NULL;
    fwd->server_next = server->forwards;
    if (server->forwards != NULL)
        server->forwards->server_prev = fwd;
    server->forwards = fwd;
    server->open_forwards++;
}

void http_server_forward_remove(struct sch_http_server *server, struct http_forward *fwd)
{
    if (fwd->server_prev != NULL)
        fwd->server_prev->server_next = fwd->server_next;
    else
        server->forwards = fwd->server_next;
    if (fwd->server_next != NULL)
        fwd->server_next->server_prev = fwd->server_prev;
    server->open_forwards--;
    server_maybe_free(server);
}

/* ---------------------------------------------------------------- connection transport */

static void conn_handle_closed(uv_handle_t *handle)
{
    struct sch_http_conn *conn = handle->data;
    if (--conn->open_handles > 0)
        return;
    struct sch_http_server *server = conn->server;
    http_conn_release(conn);
    free(conn);
    server->open_conns--;
    server_maybe_free(server);
}

/* Closes the connection now: queued answers are dropped and pending requests are told the
 * client is gone. */
static void conn_close(struct sch_http_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    http_conn_abort(conn);
    struct sch_http_server *server = conn->server;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        server->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    server->n_conns--;
    uv_close((uv_handle_t *)&conn->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&conn->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&conn->resume_timer, conn_handle_closed);
}

static void on_write(uv_write_t *req, int status)
{
    struct http_write *w = (struct http_write *)req;
    struct sch_http_conn *conn = req->data;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !conn->closing) {
        gy_log_debug("http write failed", "error=%s", uv_strerror(status));
        conn_close(conn);
    }
}

static void transport_send(struct sch_http_conn *conn, char *buf, size_t len)
{
    if (conn->closing) {
        free(buf);
        return;
    }
    struct http_write *w = gy_xcalloc(1, sizeof(*w));
    w->buf = buf;
    w->req.data = conn;
    uv_buf_t b = uv_buf_init(buf, (unsigned int)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, on_write);
    if (rc < 0) {
        free(buf);
        free(w);
        gy_log_debug("http write failed", "error=%s", uv_strerror(rc));
        conn_close(conn);
        return;
    }
    /* A client that stops reading a stream must not make the server buffer without end. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp) > HTTP_MAX_WRITE_QUEUE) {
        gy_log_warn("http client too slow, closing", "queued=%zu",
                    uv_stream_get_write_queue_size((uv_stream_t *)&conn->tcp));
        conn_close(conn);
    }
}

/* One read buffer serves every connection: the loop reads one connection at a time and
 * the parser copies what it keeps, so nothing points into it after on_read. A 64 KiB
 * malloc and free for every read made glibc consolidate its free lists each time. */
static char read_buf[64 * 1024];
static bool read_buf_taken;

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    if (!read_buf_taken) {
        read_buf_taken = true;
        buf->base = read_buf;
    } else {
        buf->base = gy_xmalloc(sizeof(read_buf));
    }
    buf->len = sizeof(read_buf);
}

static void read_buf_release(const uv_buf_t *buf)
{
    if (buf->base == read_buf)
        read_buf_taken = false;
    else
        free(buf->base);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sch_http_conn *conn = stream->data;
    if (nread < 0) {
        /* The client went away (or half-closed its side, which a request-response client
         * only does when it is done): pending requests learn it through conn_gone. */
        read_buf_release(buf);
        conn_close(conn);
        return;
    }
    if (nread > 0 && !conn->lingering)
        http_conn_feed(conn, buf->base, (size_t)nread);
    read_buf_release(buf);
}

static void transport_set_reading(struct sch_http_conn *conn, bool on)
{
    if (conn->closing || conn->reading == on)
        return;
    conn->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    else
        uv_read_stop((uv_stream_t *)&conn->tcp);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct sch_http_conn *conn = req->data;
    if (status < 0 && status != UV_ECANCELED && !conn->closing)
        conn_close(conn);
}

static void transport_finish(struct sch_http_conn *conn)
{
    if (conn->closing)
        return;
    /* Half-close after the last answer, then drain the client's bytes until it closes or
     * the linger time ends: closing with unread input would reset the connection and could
     * destroy the answer before the client reads it. */
    conn->lingering = true;
    conn->shutdown_req.data = conn;
    if (uv_shutdown(&conn->shutdown_req, (uv_stream_t *)&conn->tcp, on_shutdown) < 0) {
        conn_close(conn);
        return;
    }
    transport_set_reading(conn, true);
    uv_timer_stop(&conn->timer);
}

static void on_resume_timer(uv_timer_t *timer)
{
    http_conn_resume(timer->data);
}

static void transport_wake(struct sch_http_conn *conn)
{
    if (!conn->closing)
        uv_timer_start(&conn->resume_timer, on_resume_timer, 0, 0);
}

static void on_conn_timer(uv_timer_t *timer)
{
    struct sch_http_conn *conn = timer->data;
    if (conn->lingering) {
        conn_close(conn);
    } else if (conn->partial) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request not complete within %llu ms",
                 (unsigned long long)conn->opts->header_timeout_ms);
        http_conn_reject(conn, 408, "timeout", msg);
    } else if (conn->in_flight == 0) {
        gy_log_debug("http connection idle, closing");
        conn_close(conn);
    }
}

/* Arms the one timer a connection needs in its present state: the linger limit while
 * closing, the header timeout while a request is incomplete, the idle timeout while nothing
 * is owed, none while a handler works. */
static void transport_changed(struct sch_http_conn *conn)
{
    if (conn->closing)
        return;
    uint64_t delay;
    if (conn->lingering) {
        delay = HTTP_LINGER_MS;
        if (uv_is_active((uv_handle_t *)&conn->timer))
            return;
    } else if (conn->partial) {
        uint64_t elapsed_ms = (uv_hrtime() - conn->partial_since_ns) / 1000000;
        delay = elapsed_ms >= conn->opts->header_timeout_ms
                    ? 0
                    : conn->opts->header_timeout_ms - elapsed_ms;
    } else if (conn->in_flight == 0 && !conn->stopped) {
        delay = conn->opts->idle_timeout_ms;
    } else {
        uv_timer_stop(&conn->timer);
        return;
    }
    uv_timer_start(&conn->timer, on_conn_timer, delay, 0);
}

static const struct http_conn_ops transport_ops = {
    .send = transport_send,
    .finish = transport_finish,
    .set_reading = transport_set_reading,
    .wake = transport_wake,
    .changed = transport_changed,
};

/* ---------------------------------------------------------------- accepting */

static void refused_closed(uv_handle_t *handle)
{
    struct sch_http_server *server = handle->data;
    free(handle);
    server->open_conns--;
    server_maybe_free(server);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct sch_http_server *server = listener->data;
    if (status < 0) {
        gy_log_warn("http accept failed", "error=%s", uv_strerror(status));
        return;
    }
    if (server->n_conns >= server->opts.max_connections) {
        uv_tcp_t *tcp = gy_xcalloc(1, sizeof(*tcp));
        uv_tcp_init(server->loop, tcp);
        tcp->data = server;
        server->open_conns++;
        if (uv_accept(listener, (uv_stream_t *)tcp) == 0)
            gy_log_warn("http connection refused: too many connections", "max=%zu",
                        server->opts.max_connections);
        uv_close((uv_handle_t *)tcp, refused_closed);
        return;
    }
    struct sch_http_conn *conn = gy_xcalloc(1, sizeof(*conn));
    http_conn_init(conn, &transport_ops, &server->opts, server->handler, server->handler_data);
    conn->server = server;
    uv_tcp_init(server->loop, &conn->tcp);
    uv_timer_init(server->loop, &conn->timer);
    uv_timer_init(server->loop, &conn->resume_timer);
    conn->tcp.data = conn->timer.data = conn->resume_timer.data = conn;
    conn->open_handles = 3;
    server->open_conns++;
    server->n_conns++;
    conn->next = server->conns;
    if (server->conns != NULL)
        server->conns->prev = conn;
    server->conns = conn;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) < 0) {
        conn_close(conn);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    transport_set_reading(conn, true);
    transport_changed(conn);
}

/* ---------------------------------------------------------------- public API */

int http_parse_addr(const char *addr, struct sockaddr_storage *ss, struct gy_error *err)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0')
        return gy_error_set(err, GY_EINVAL, "address %s: expected HOST:PORT", addr);
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || port < 0 || port > 65535)
        return gy_error_set(err, GY_EINVAL, "address %s: port must be 0-65535", addr);
    char host[256];
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= sizeof(host))
        return gy_error_set(err, GY_EINVAL, "address %s: host too long", addr);
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && hlen >= 2 && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0)
            return 0;
    } else if (strcmp(host, "localhost") == 0) {
        if (uv_ip4_addr("127.0.0.1", (int)port, (struct sockaddr_in *)ss) == 0)
            return 0;
    } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
        return 0;
    }
    return gy_error_set(err, GY_EINVAL,
                        "address %s: host must be an IPv4 address, [IPv6] or localhost", addr);
}

static void listener_closed(uv_handle_t *handle)
{
    struct sch_http_server *server = handle->data;
    server->listener_open = false;
    server_maybe_free(server);
}

int sch_http_server_start(uv_loop_t *loop, const char *addr, const struct sch_http_options *opts,
                          sch_http_handler handler, void *data, struct sch_http_server **out,
                          struct gy_error *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int rc = http_parse_addr(addr, &ss, err);
    if (rc < 0)
        return gy_error_wrap(err, "http server");
    /* A write to a client that has reset its connection must fail with EPIPE rather than
     * kill the process; a handler the program installed itself is left alone. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    struct sch_http_server *server = gy_xcalloc(1, sizeof(*server));
    server->loop = loop;
    http_options_fill(&server->opts, opts);
    server->handler = handler;
    server->handler_data = data;
    uv_tcp_init(loop, &server->listener);
    server->listener.data = server;
    server->listener_open = true;
    rc = uv_tcp_bind(&server->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server->listener, 511, on_connection);
    if (rc < 0) {
        /* The server is freed once the loop has closed the listener. */
        server->closing = true;
        uv_close((uv_handle_t *)&server->listener, listener_closed);
        if (rc == UV_EADDRINUSE)
            return gy_error_set(err, GY_EEXISTS, "listen on %s: address already in use", addr);
        return gy_error_set(err, GY_ESYS, "listen on %s: %s", addr, uv_strerror(rc));
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&server->listener, (struct sockaddr *)&bound, &blen);
    server->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    *out = server;
    return 0;
}

int sch_http_server_port(const struct sch_http_server *server)
{
    return server->port;
}

void sch_http_server_close(struct sch_http_server *server, void (*cb)(void *arg), void *arg)
{
    if (server == NULL) {
        return;
    }
    server->closing = true;
    server->close_cb = cb;
    server->close_arg = arg;
    uv_close((uv_handle_t *)&server->listener, listener_closed);
    while (server->conns != NULL)
        conn_close(server->conns);
    for (struct http_forward *f = server->forwards; f != NULL; f = f->server_next)
        http_forward_cancel(f);
}
