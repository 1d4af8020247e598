/* Agent session; see session.h and docs/agent-protocol.md. */
#include "agent/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "proto/frame.h"

#define REDIRECTS_BEFORE_BACKOFF 3

/* One TCP connection attempt. It outlives its session's interest in it until libuv has
 * closed the handle, so late callbacks find `session == NULL` and do nothing. */
struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct agent_session *session;
    struct gy_frame_decoder decoder;
};

struct agent_session {
    uv_loop_t *loop;
    char **servers;
    size_t n_servers;
    size_t next_server;
    char *redirect;   /* the leader address to try next, from a Redirect frame */
    char target[256]; /* the server of the current connection */
    struct conn *conn;
    uv_timer_t retry_timer;
    uv_timer_t io_timer; /* connect timeout, then read timeout */
    /* The connect and read limits are the leader's once a Welcome brought them; they hold
     * for every later connection, to any server. */
    struct agent_session_options opts;
    struct agent_session_callbacks cb;
    void *data;
    uint64_t backoff_ms;
    unsigned redirects; /* redirects followed since the last welcome */
    bool redirecting;   /* the connection ends because of a Redirect frame */
    bool connected;     /* the current connection's TCP connect succeeded */
    /* The read timer ran out once: it runs again for 1 ms, after the loop has read what
     * arrived meanwhile, so that a loop held up longer than the limit does not take frames
     * waiting in the socket for silence. */
    bool silence_suspect;
    bool welcomed;
    bool closing;
    int open_handles;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void session_connect(struct agent_session *s);

static void on_retry(uv_timer_t *t)
{
    session_connect(t->data);
}

static void conn_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    gy_frame_decoder_free(&c->decoder);
    free(c);
}

/* Drops the current connection; when `retry`, schedules the next attempt after the
 * backoff (or at once, to follow a redirect). */
static void session_drop(struct agent_session *s, const char *why, bool retry)
{
    struct conn *c = s->conn;
    if (c != NULL) {
        s->conn = NULL;
        c->session = NULL;
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
    uv_timer_stop(&s->io_timer);
    bool was_welcomed = s->welcomed;
    bool was_connected = s->connected;
    s->welcomed = false;
    s->connected = false;
    s->silence_suspect = false;
    /* The next attempt goes to another server than the one just left (when the list has
     * one): a server that fell silent is the least likely to answer now. */
    if (was_connected && s->n_servers > 1 && strcmp(s->servers[s->next_server], s->target) == 0)
        s->next_server = (s->next_server + 1) % s->n_servers;
    /* A lost session is news; another failed attempt to get one is not. */
    if (why != NULL && was_welcomed)
        gy_log_info("disconnected from server", "server=%s reason=\"%s\"", s->target, why);
    else if (why != NULL)
        gy_log_debug("no session with server", "server=%s reason=\"%s\"", s->target, why);
    if (was_welcomed && s->cb.on_disconnect != NULL)
        s->cb.on_disconnect(s->data);
    if (!retry || s->closing)
        return;
    /* A redirect target that fails is stale (the leader it named is gone): fall back to
     * the configured servers, with backoff, instead of hammering it. */
    if (!s->redirecting) {
        free(s->redirect);
        s->redirect = NULL;
    }
    s->redirecting = false;
    uint64_t delay;
    if (s->redirect != NULL && s->redirects <= REDIRECTS_BEFORE_BACKOFF) {
        delay = 0;
    } else {
        /* Full jitter over the upper half keeps a fleet of agents from reconnecting in
         * lockstep after a leader change. */
        uint64_t half = s->backoff_ms / 2;
        delay = half + (half > 0 ? (uint64_t)rand() % (half + 1) : 0);
        /* Capped at a quarter of the silence limit the leader set (an eighth of its
         * node-down timeout): after an election the agent reaches the new leader well
         * before that leader would call its node down, however long it went without one. */
        uint64_t cap = s->opts.backoff_max_ms;
        if (s->opts.read_timeout_ms / 4 > 0 && s->opts.read_timeout_ms / 4 < cap)
            cap = s->opts.read_timeout_ms / 4;
        if (cap < s->opts.backoff_min_ms)
            cap = s->opts.backoff_min_ms;
        s->backoff_ms = s->backoff_ms * 2 > cap ? cap : s->backoff_ms * 2;
    }
    uv_timer_start(&s->retry_timer, on_retry, delay, 0);
}

static void on_io_timeout(uv_timer_t *t)
{
    struct agent_session *s = t->data;
    if (s->connected && !s->silence_suspect) {
        s->silence_suspect = true;
        uv_timer_start(&s->io_timer, on_io_timeout, 1, 0);
        return;
    }
    char why[128];
    if (s->welcomed)
        snprintf(why, sizeof(why), "no frame from the server for %llums",
                 (unsigned long long)s->opts.read_timeout_ms);
    else if (s->connected)
        snprintf(why, sizeof(why), "no answer to hello within %llums",
                 (unsigned long long)s->opts.read_timeout_ms);
    else
        snprintf(why, sizeof(why), "connect timed out after %llums",
                 (unsigned long long)s->opts.connect_timeout_ms);
    session_drop(s, why, true);
}

/* Takes the limits of a Welcome: the leader derives them from its node-down timeout. */
static void welcome_timeouts(struct agent_session *s, const Gantry__Welcome *w)
{
    s->opts.read_timeout_ms =
        w->silence_timeout_ms > 0 ? w->silence_timeout_ms : AGENT_SESSION_LEGACY_SILENCE_MS;
    s->opts.connect_timeout_ms =
        w->connect_timeout_ms > 0 ? w->connect_timeout_ms : AGENT_SESSION_LEGACY_CONNECT_MS;
}

struct write_req {
    uv_write_t req;
    uint8_t *frame;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    free(w->frame);
    free(w);
    (void)status; /* a failed write shows up as a read error or timeout */
}

/* Queues a packed frame on the connection; takes ownership of frame. */
static int conn_write(struct conn *c, uint8_t *frame, size_t len)
{
    struct write_req *w = gy_xmalloc(sizeof(*w));
    w->frame = frame;
    uv_buf_t buf = uv_buf_init((char *)frame, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(frame);
        free(w);
        return -GY_EIO;
    }
    return 0;
}

static void handle_frame(struct agent_session *s, const uint8_t *body, size_t len)
{
    struct gy_error err;
    Gantry__AgentFrame *f =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, body, len, &err);
    if (f == NULL) {
        session_drop(s, err.msg, true);
        return;
    }
    switch (f->frame_case) {
    case GANTRY__AGENT_FRAME__FRAME_WELCOME:
        s->welcomed = true;
        s->redirects = 0;
        s->backoff_ms = s->opts.backoff_min_ms;
        free(s->redirect);
        s->redirect = NULL;
        welcome_timeouts(s, f->welcome);
        uv_timer_start(&s->io_timer, on_io_timeout, s->opts.read_timeout_ms, 0);
        gy_log_info("session established",
                    "server=%s server_id=%llu heartbeat_ms=%u silence_ms=%llu connect_ms=%llu",
                    s->target, (unsigned long long)f->welcome->server_id,
                    f->welcome->heartbeat_interval_ms, (unsigned long long)s->opts.read_timeout_ms,
                    (unsigned long long)s->opts.connect_timeout_ms);
        if (s->cb.on_welcome != NULL)
            s->cb.on_welcome(s->data, f->welcome);
        break;
    case GANTRY__AGENT_FRAME__FRAME_REDIRECT: {
        const char *to = f->redirect->leader_agent_address;
        free(s->redirect);
        s->redirect = (to != NULL && to[0] != '\0') ? gy_xstrdup(to) : NULL;
        s->redirects++;
        s->redirecting = true;
        char why[512];
        snprintf(why, sizeof(why), "redirected to %s: %s",
                 s->redirect != NULL ? s->redirect : "(no leader known)",
                 f->redirect->reason != NULL ? f->redirect->reason : "");
        session_drop(s, why, true);
        break;
    }
    case GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT:
        if (s->welcomed && s->cb.on_assignment != NULL)
            s->cb.on_assignment(s->data, f->assignment);
        break;
    case GANTRY__AGENT_FRAME__FRAME_LOG_REQUEST:
        if (s->welcomed && s->cb.on_log_request != NULL)
            s->cb.on_log_request(s->data, f->log_request);
        break;
    case GANTRY__AGENT_FRAME__FRAME_METRIC_PROBE:
        if (s->welcomed && s->cb.on_metric_probe != NULL)
            s->cb.on_metric_probe(s->data, f->metric_probe);
        break;
    case GANTRY__AGENT_FRAME__FRAME_IMAGE_REQUEST:
        if (s->welcomed && s->cb.on_image_request != NULL)
            s->cb.on_image_request(s->data, f->image_request);
        break;
    case GANTRY__AGENT_FRAME__FRAME_NETWORK_PEERS:
        if (s->welcomed && s->cb.on_network_peers != NULL)
            s->cb.on_network_peers(s->data, f->network_peers);
        break;
    case GANTRY__AGENT_FRAME__FRAME_ROTATE_TUNNEL_KEY:
        if (s->welcomed && s->cb.on_rotate_tunnel_key != NULL)
            s->cb.on_rotate_tunnel_key(s->data);
        break;
    default:
        /* Heartbeat acknowledgements only keep the read timer alive. */
        break;
    }
    protobuf_c_message_free_unpacked(&f->base, NULL);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    buf->base = gy_xmalloc(suggested);
    buf->len = suggested;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    struct agent_session *s = c->session;
    if (s == NULL || nread == 0) {
        free(buf->base);
        return;
    }
    if (nread < 0) {
        free(buf->base);
        session_drop(s, nread == UV_EOF ? "server closed the connection" : uv_strerror((int)nread),
                     true);
        return;
    }
    s->silence_suspect = false;
    uv_timer_start(&s->io_timer, on_io_timeout, s->opts.read_timeout_ms, 0);
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    /* A callback may drop the connection: stop feeding as soon as it is not ours. */
    while (n > 0 && s->conn == c) {
        const uint8_t *frame;
        size_t flen;
        struct gy_error err;
        long used = gy_frame_decoder_feed(&c->decoder, p, n, &frame, &flen, &err);
        if (used < 0) {
            session_drop(s, err.msg, true);
            break;
        }
        p += used;
        n -= (size_t)used;
        if (frame != NULL)
            handle_frame(s, frame, flen);
    }
    free(buf->base);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct agent_session *s = c->session;
    if (s == NULL)
        return;
    if (status < 0) {
        char why[256];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(status));
        session_drop(s, why, true);
        return;
    }
    s->connected = true;
    uint8_t *hello = NULL;
    size_t len = 0;
    if (s->cb.make_hello(s->data, &hello, &len) < 0 || conn_write(c, hello, len) < 0) {
        session_drop(s, "could not send hello", true);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    uv_timer_start(&s->io_timer, on_io_timeout, s->opts.read_timeout_ms, 0);
}

/* Splits HOST:PORT ([v6]:PORT too) into a socket address; numeric hosts and "localhost". */
static int parse_address(const char *text, struct sockaddr_storage *addr)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    int port = atoi(colon + 1);
    if (port <= 0 || port > 65535)
        return -1;
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = '\0';
        return uv_ip6_addr(h, port, (struct sockaddr_in6 *)addr);
    }
    if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    return uv_ip4_addr(h, port, (struct sockaddr_in *)addr);
}

static void session_connect(struct agent_session *s)
{
    if (s->closing)
        return;
    if (s->redirect != NULL && s->redirects <= REDIRECTS_BEFORE_BACKOFF) {
        snprintf(s->target, sizeof(s->target), "%s", s->redirect);
    } else {
        snprintf(s->target, sizeof(s->target), "%s", s->servers[s->next_server]);
        s->next_server = (s->next_server + 1) % s->n_servers;
    }
    struct sockaddr_storage addr;
    if (parse_address(s->target, &addr) < 0) {
        gy_log_error("invalid server address", "server=%s", s->target);
        free(s->redirect);
        s->redirect = NULL;
        session_drop(s, NULL, true);
        return;
    }
    struct conn *c = gy_xcalloc(1, sizeof(*c));
    c->session = s;
    gy_frame_decoder_init(&c->decoder, GY_FRAME_MAX_DEFAULT);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    s->conn = c;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc < 0) {
        char why[256];
        snprintf(why, sizeof(why), "connect: %s", uv_strerror(rc));
        session_drop(s, why, true);
        return;
    }
    uv_timer_start(&s->io_timer, on_io_timeout, s->opts.connect_timeout_ms, 0);
}

int agent_session_start(uv_loop_t *loop, const char *servers,
                        const struct agent_session_options *opts,
                        const struct agent_session_callbacks *cb, void *data,
                        struct agent_session **out, struct gy_error *err)
{
    if (servers == NULL || servers[0] == '\0')
        return gy_error_set(err, GY_EINVAL, "--servers: no server address given");
    struct agent_session *s = gy_xcalloc(1, sizeof(*s));
    char *list = gy_xstrdup(servers);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        struct sockaddr_storage addr;
        if (parse_address(tok, &addr) < 0) {
            gy_error_set(err, GY_EINVAL, "--servers: \"%s\" is not HOST:PORT", tok);
            for (size_t i = 0; i < s->n_servers; i++)
                free(s->servers[i]);
            free(s->servers);
            free(s);
            free(list);
            return -GY_EINVAL;
        }
        s->servers = gy_xrealloc(s->servers, (s->n_servers + 1) * sizeof(*s->servers));
        s->servers[s->n_servers++] = gy_xstrdup(tok);
    }
    free(list);
    if (s->n_servers == 0) {
        free(s);
        return gy_error_set(err, GY_EINVAL, "--servers: no server address given");
    }
    s->loop = loop;
    s->cb = *cb;
    s->data = data;
    if (opts != NULL)
        s->opts = *opts;
    if (s->opts.backoff_min_ms == 0)
        s->opts.backoff_min_ms = 100;
    if (s->opts.backoff_max_ms == 0)
        s->opts.backoff_max_ms = 5000;
    if (s->opts.connect_timeout_ms == 0)
        s->opts.connect_timeout_ms = AGENT_SESSION_CONNECT_MS;
    if (s->opts.read_timeout_ms == 0)
        s->opts.read_timeout_ms = AGENT_SESSION_SILENCE_MS;
    s->backoff_ms = s->opts.backoff_min_ms;
    uv_timer_init(loop, &s->retry_timer);
    uv_timer_init(loop, &s->io_timer);
    s->retry_timer.data = s;
    s->io_timer.data = s;
    s->open_handles = 2;
    session_connect(s);
    *out = s;
    return 0;
}

int agent_session_send(struct agent_session *s, const Gantry__AgentFrame *frame)
{
    if (s->conn == NULL || !s->welcomed)
        return -GY_EUNAVAILABLE;
    uint8_t *buf;
    size_t len;
    struct gy_error err;
    if (gy_frame_pack(&frame->base, &buf, &len, &err) < 0)
        return -err.code;
    return conn_write(s->conn, buf, len);
}

void agent_session_timeouts(const struct agent_session *s, uint64_t *connect_ms,
                            uint64_t *silence_ms)
{
    *connect_ms = s->opts.connect_timeout_ms;
    *silence_ms = s->opts.read_timeout_ms;
}

bool agent_session_ready(const struct agent_session *s)
{
    return s->conn != NULL && s->welcomed;
}

const char *agent_session_server(const struct agent_session *s)
{
    return s->conn != NULL ? s->target : NULL;
}

static void timer_closed(uv_handle_t *handle)
{
    struct agent_session *s = handle->data;
    if (--s->open_handles > 0)
        return;
    for (size_t i = 0; i < s->n_servers; i++)
        free(s->servers[i]);
    free(s->servers);
    free(s->redirect);
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    free(s);
    if (cb != NULL)
        cb(arg);
}

void agent_session_close(struct agent_session *s, void (*cb)(void *arg), void *arg)
{
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    s->cb.on_disconnect = NULL;
    session_drop(s, NULL, false);
    uv_close((uv_handle_t *)&s->retry_timer, timer_closed);
    uv_close((uv_handle_t *)&s->io_timer, timer_closed);
}
