/* Unit tests of the HTTP server and forwarder: real TCP on loopback, the server on a libuv
 * loop in the test's main thread, and a blocking client in a second thread that records
 * what it saw; the main thread checks the records once both sides are done. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "scheduler/http/http.h"

#define MAX_HELD 128
/* The whole exchange of one test must end within this time. */
#define TEST_DEADLINE_MS 20000

struct fixture {
    uv_loop_t loop;
    struct sch_http_server *server;
    struct sch_http_server *server2; /* the forward target, when a test has one */
    int port;
    int port2;
    struct sch_http_options opts;
    uv_timer_t poll;
    uint64_t started_ms;
    bool timed_out;
    int open_servers;

    /* Client side (written by the client thread only). */
    void (*client)(struct fixture *fx);
    atomic_int client_done;
    char log[8192];

    /* Server side (loop thread only). */
    void (*tick)(struct fixture *fx);
    struct sch_http_request *held[MAX_HELD];
    int n_held;
    int max_held;
    int n_requests;
    char srv_log[4096];
    const char *forward_to;
    uint64_t forward_timeout_ms;
    int stream_step;
    struct sch_http_request *stream_req;
    bool stream_write_failed;
    uv_timer_t answer_timer;
    bool answer_timer_open;
    bool release_when_client_done;
};

static void logf_(char *log, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logf_(char *log, size_t size, const char *fmt, ...)
{
    size_t used = strlen(log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log + used, size - used, fmt, ap);
    va_end(ap);
}
#define CLOG(fx, ...) logf_((fx)->log, sizeof((fx)->log), __VA_ARGS__)
#define SLOG(fx, ...) logf_((fx)->srv_log, sizeof((fx)->srv_log), __VA_ARGS__)

/* ---------------------------------------------------------------- blocking client */

struct client {
    int fd;
    char buf[256 * 1024];
    size_t len;
};

struct response {
    int status;
    char content_type[128];
    char retry_after[32];
    char connection[32];
    char transfer_encoding[32];
    bool has_length;
    char body[64 * 1024];
    size_t body_len;
    /* parser state */
    char field[64];
    bool complete;
    bool head; /* the request was HEAD: the answer has no body */
};

static struct client *cl_connect(int port)
{
    struct client *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(c->fd);
        c->fd = -1;
    }
    return c;
}

static void cl_free(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static bool cl_send_n(struct client *c, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool cl_send(struct client *c, const char *s)
{
    return cl_send_n(c, s, strlen(s));
}

static int rp_field(http_parser *p, const char *at, size_t len)
{
    struct response *r = p->data;
    snprintf(r->field, sizeof(r->field), "%.*s", (int)len, at);
    return 0;
}

static int rp_value(http_parser *p, const char *at, size_t len)
{
    struct response *r = p->data;
    char *dst = NULL;
    size_t cap = 0;
    if (strcasecmp(r->field, "content-type") == 0) {
        dst = r->content_type;
        cap = sizeof(r->content_type);
    } else if (strcasecmp(r->field, "retry-after") == 0) {
        dst = r->retry_after;
        cap = sizeof(r->retry_after);
    } else if (strcasecmp(r->field, "connection") == 0) {
        dst = r->connection;
        cap = sizeof(r->connection);
    } else if (strcasecmp(r->field, "transfer-encoding") == 0) {
        dst = r->transfer_encoding;
        cap = sizeof(r->transfer_encoding);
    } else if (strcasecmp(r->field, "content-length") == 0) {
        r->has_length = true;
    }
    if (dst != NULL)
        snprintf(dst, cap, "%.*s", (int)len, at);
    return 0;
}

static int rp_body(http_parser *p, const char *at, size_t len)
{
    struct response *r = p->data;
    if (r->body_len + len < sizeof(r->body)) {
        memcpy(r->body + r->body_len, at, len);
        r->body_len += len;
        r->body[r->body_len] = '\0';
    }
    return 0;
}

static int rp_headers_complete(http_parser *p)
{
    struct response *r = p->data;
    return r->head ? 1 : 0;
}

static int rp_complete(http_parser *p)
{
    struct response *r = p->data;
    r->status = (int)p->status_code;
    r->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings rp_settings = {
    .on_header_field = rp_field,
    .on_header_value = rp_value,
    .on_headers_complete = rp_headers_complete,
    .on_body = rp_body,
    .on_message_complete = rp_complete,
};

/* Reads one response (a 1xx interim answer counts as one); false on close, timeout or
 * garbage. */
static bool cl_response(struct client *c, struct response *r)
{
    bool head = r->head;
    memset(r, 0, sizeof(*r));
    r->head = head;
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = r;
    size_t parsed = 0;
    for (int rounds = 0; rounds < 10000; rounds++) {
        if (c->len > parsed) {
            size_t n = http_parser_execute(&p, &rp_settings, c->buf + parsed, c->len - parsed);
            parsed += n;
            if (r->complete) {
                memmove(c->buf, c->buf + parsed, c->len - parsed);
                c->len -= parsed;
                return true;
            }
            if (HTTP_PARSER_ERRNO(&p) != HPE_OK)
                return false;
        }
        if (c->len == sizeof(c->buf))
            return false;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n == 0) {
            http_parser_execute(&p, &rp_settings, NULL, 0);
            return r->complete;
        }
        if (n < 0)
            return false;
        c->len += (size_t)n;
    }
    return false;
}

/* Sends a request and records "STATUS BODY;" in the client log. */
static void cl_exchange(struct fixture *fx, struct client *c, const char *request)
{
    static __thread struct response r;
    if (!cl_send(c, request) || !cl_response(c, &r)) {
        CLOG(fx, "fail;");
        return;
    }
    CLOG(fx, "%d %s;", r.status, r.body);
}

/* True when the server closes the connection (within the receive timeout) without sending
 * anything more. */
static bool cl_closed(struct client *c)
{
    if (c->len > 0)
        return false;
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof(b), 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---------------------------------------------------------------- fixture */

static void *client_main(void *arg)
{
    struct fixture *fx = arg;
    fx->client(fx);
    atomic_store(&fx->client_done, 1);
    return NULL;
}

static void server_closed(void *arg)
{
    struct fixture *fx = arg;
    fx->open_servers--;
}

static void release_held(struct fixture *fx)
{
    for (int i = 0; i < fx->n_held; i++)
        sch_http_respond(fx->held[i], 500, "text/plain", NULL, "end", 3);
    fx->n_held = 0;
}

static void on_poll(uv_timer_t *t)
{
    struct fixture *fx = t->data;
    if (fx->tick != NULL)
        fx->tick(fx);
    if (fx->release_when_client_done && atomic_load(&fx->client_done))
        release_held(fx);
    bool late = uv_now(&fx->loop) - fx->started_ms > TEST_DEADLINE_MS;
    if (late)
        fx->timed_out = true;
    if (!late && !(atomic_load(&fx->client_done) && fx->n_held == 0 && fx->stream_req == NULL))
        return;
    uv_close((uv_handle_t *)&fx->poll, NULL);
    if (fx->answer_timer_open)
        uv_close((uv_handle_t *)&fx->answer_timer, NULL);
    sch_http_server_close(fx->server, server_closed, fx);
    if (fx->server2 != NULL)
        sch_http_server_close(fx->server2, server_closed, fx);
    /* Requests still held after the close are answered into the void, which must be safe. */
    release_held(fx);
    if (fx->stream_req != NULL) {
        sch_http_stream_end(fx->stream_req);
        fx->stream_req = NULL;
    }
}

static void fixture_init(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->forward_timeout_ms = 2000;
    /* As the API sets them (scheduler/api/api.h). */
    fx->opts.forward_mark = "X-Gantry-Forwarded";
    fx->opts.forward_fail_code = "no_leader";
}

static void start_server(struct fixture *fx, sch_http_handler handler)
{
    struct gy_error err;
    int rc =
        sch_http_server_start(&fx->loop, "127.0.0.1:0", &fx->opts, handler, fx, &fx->server, &err);
    if (rc < 0)
        fail_msg("start: %s", err.msg);
    fx->port = sch_http_server_port(fx->server);
    assert_true(fx->port > 0);
    fx->open_servers++;
}

static void start_server2(struct fixture *fx, sch_http_handler handler)
{
    struct gy_error err;
    int rc = sch_http_server_start(&fx->loop, "127.0.0.1:0", NULL, handler, fx, &fx->server2, &err);
    if (rc < 0)
        fail_msg("start: %s", err.msg);
    fx->port2 = sch_http_server_port(fx->server2);
    fx->open_servers++;
}

/* Runs the loop until the client is done and no request is held, then closes everything
 * and checks that no handle or allocation is left behind. */
static void run(struct fixture *fx, void (*client)(struct fixture *fx))
{
    fx->client = client;
    uv_timer_init(&fx->loop, &fx->poll);
    fx->poll.data = fx;
    fx->started_ms = uv_now(&fx->loop);
    uv_timer_start(&fx->poll, on_poll, 5, 5);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, client_main, fx), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    pthread_join(thread, NULL);
    assert_int_equal(fx->open_servers, 0);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    assert_false(fx->timed_out);
}

static void hold(struct fixture *fx, struct sch_http_request *req)
{
    assert_true(fx->n_held < MAX_HELD);
    fx->held[fx->n_held++] = req;
    if (fx->n_held > fx->max_held)
        fx->max_held = fx->n_held;
}

/* ---------------------------------------------------------------- handlers */

/* Answers "METHOD PATH BODY" at once. */
static void echo_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    fx->n_requests++;
    char out[4096];
    const char *echo = sch_http_header(req, "x-echo");
    int n = snprintf(out, sizeof(out), "%s %s %s%s", req->method, req->path, req->body,
                     echo != NULL ? echo : "");
    const char *empty = sch_http_header(req, "x-empty");
    if (echo != NULL && (req->n_headers != 2 || empty == NULL || empty[0] != '\0'))
        n = snprintf(out, sizeof(out), "unexpected %zu headers", req->n_headers);
    sch_http_respond(req, 200, "text/plain", NULL, out, (size_t)n);
}

/* ---------------------------------------------------------------- tests */

static void client_simple_get(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    static struct response r;
    if (cl_send(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %s %d;", r.status, r.content_type, r.body, r.has_length);
    cl_free(c);
}

static void test_simple_get(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, echo_handler);
    run(&fx, client_simple_get);
    assert_string_equal(fx.log, "200 text/plain GET /healthz  1;");
}

static void client_post(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    cl_exchange(fx, c,
                "POST /v1/apply HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}");
    cl_exchange(fx, c,
                "POST /v1/apply HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n");
    /* Empty header values and trailers do not disturb the next request's headers. */
    cl_exchange(fx, c, "GET /h HTTP/1.1\r\nX-Empty:\r\nX-Echo: e\r\n\r\n");
    /* A body that arrives in pieces, after the headers. */
    cl_send(c, "PUT /p HTTP/1.1\r\nContent-Length: 6\r\n\r\nxy");
    usleep(20000);
    cl_exchange(fx, c, "zzzw");
    cl_free(c);
}

static void test_post_body(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, echo_handler);
    run(&fx, client_post);
    assert_string_equal(
        fx.log, "200 POST /v1/apply {\"a\":\"b c\"};200 POST /v1/apply abcdefg;200 GET /h e;"
                "200 PUT /p xyzzzw;");
}

static void client_keep_alive(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof(req), "GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        cl_exchange(fx, c, req);
    }
    static struct response r;
    /* The answer to HEAD has the headers of the answer to GET and no body. */
    r.head = true;
    if (cl_send(c, "HEAD /h HTTP/1.1\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %d [%s];", r.status, r.has_length, r.body);
    r.head = false;
    if (cl_send(c, "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %s;", r.status, r.body, r.connection);
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);

    /* HTTP/1.0 closes unless the client asks to keep the connection. */
    c = cl_connect(fx->port);
    cl_exchange(fx, c, "GET /old HTTP/1.0\r\n\r\n");
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);
    c = cl_connect(fx->port);
    if (cl_send(c, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s;", r.status, r.connection);
    cl_exchange(fx, c, "GET /again HTTP/1.0\r\n\r\n");
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);
}

static void test_keep_alive(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, echo_handler);
    run(&fx, client_keep_alive);
    assert_string_equal(fx.log,
                        "200 GET /k0 ;200 GET /k1 ;200 GET /k2 ;200 1 [];200 GET /last  close;"
                        "closed=1;200 GET /old ;closed=1;200 keep-alive;"
                        "200 GET /again ;closed=1;");
}

/* Holds requests and answers them newest first once three are waiting. */
static void answer_reversed(uv_timer_t *t)
{
    struct fixture *fx = t->data;
    for (int i = fx->n_held - 1; i >= 0; i--) {
        char out[64];
        int n = snprintf(out, sizeof(out), "%s", fx->held[i]->path);
        sch_http_respond(fx->held[i], 200, "text/plain", NULL, out, (size_t)n);
    }
    fx->n_held = 0;
}

static void reverse_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    hold(fx, req);
    if (fx->n_held == 3) {
        uv_timer_start(&fx->answer_timer, answer_reversed, 10, 0);
    }
}

static void client_pipelined(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    cl_send(c, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    static struct response r;
    for (int i = 0; i < 3; i++)
        if (cl_response(c, &r))
            CLOG(fx, "%s;", r.body);
    cl_free(c);
}

static void init_answer_timer(struct fixture *fx)
{
    uv_timer_init(&fx->loop, &fx->answer_timer);
    fx->answer_timer.data = fx;
    fx->answer_timer_open = true;
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    init_answer_timer(&fx);
    start_server(&fx, reverse_handler);
    run(&fx, client_pipelined);
    assert_string_equal(fx.log, "/a;/b;/c;");
}

/* Answers everything held, oldest first, when the connection's limit is reached or the
 * last request has arrived. */
static void limit_tick(struct fixture *fx)
{
    if (fx->n_held == 0 || (fx->n_held < 64 && fx->n_requests < 100))
        return;
    int n = fx->n_held;
    fx->n_held = 0;
    for (int i = 0; i < n; i++)
        sch_http_respond(fx->held[i], 200, "text/plain", NULL, fx->held[i]->path,
                         strlen(fx->held[i]->path));
}

static void hold_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    fx->n_requests++;
    hold(fx, req);
}

static void client_limit(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    static char batch[100 * 32];
    batch[0] = '\0';
    for (int i = 0; i < 100; i++)
        logf_(batch, sizeof(batch), "GET /r%d HTTP/1.1\r\n\r\n", i);
    cl_send(c, batch);
    static struct response r;
    int in_order = 0;
    for (int i = 0; i < 100; i++) {
        char want[16];
        snprintf(want, sizeof(want), "/r%d", i);
        if (!cl_response(c, &r))
            break;
        if (strcmp(r.body, want) == 0)
            in_order++;
    }
    CLOG(fx, "in_order=%d;", in_order);
    cl_free(c);
}

static void test_in_flight_limit(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.tick = limit_tick;
    start_server(&fx, hold_handler);
    run(&fx, client_limit);
    assert_string_equal(fx.log, "in_order=100;");
    /* The connection stopped reading at the limit instead of queueing all 100. */
    assert_int_equal(fx.max_held, 64);
}

static void client_too_large(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    if (cl_send(c, "POST /v1/apply HTTP/1.1\r\nContent-Length: 5000\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %s;", r.status, r.body, r.connection);
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);

    /* A chunked body is counted as it arrives. */
    c = cl_connect(fx->port);
    cl_send(c, "POST /v1/apply HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[700];
    memset(chunk, 'a', sizeof(chunk));
    for (int i = 0; i < 2; i++) {
        cl_send(c, "2bc\r\n");
        cl_send_n(c, chunk, sizeof(chunk));
        cl_send(c, "\r\n");
    }
    if (cl_response(c, &r))
        CLOG(fx, "%d;", r.status);
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);
}

static void test_too_large(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.opts.max_body = 1000;
    start_server(&fx, echo_handler);
    run(&fx, client_too_large);
    assert_string_equal(fx.log,
                        "413 {\"error\":{\"code\":\"too_large\",\"message\":\"request body of "
                        "5000 bytes exceeds the limit of 1000 bytes\"}} close;closed=1;"
                        "413;closed=1;");
    assert_int_equal(fx.n_requests, 0);
}

static void client_headers_too_large(struct fixture *fx)
{
    static struct response r;
    static char big[3000];
    memset(big, 'v', sizeof(big) - 1);
    struct client *c = cl_connect(fx->port);
    cl_send(c, "GET / HTTP/1.1\r\nX-Big: ");
    cl_send(c, big);
    cl_send(c, "\r\n\r\n");
    if (cl_response(c, &r))
        CLOG(fx, "%d %s;", r.status, r.content_type);
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);
}

static void test_headers_too_large(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.opts.max_header = 1024;
    start_server(&fx, echo_handler);
    run(&fx, client_headers_too_large);
    assert_string_equal(fx.log, "431 application/json;closed=1;");
    assert_int_equal(fx.n_requests, 0);
}

static void client_garbage(struct fixture *fx)
{
    static struct response r;
    struct client *good = cl_connect(fx->port);
    cl_exchange(fx, good, "GET /before HTTP/1.1\r\n\r\n");
    struct client *bad = cl_connect(fx->port);
    if (cl_send(bad, "HELLO \x01\x02 WORLD\r\n\r\n") && cl_response(bad, &r))
        CLOG(fx, "%d %.40s;", r.status, r.body);
    CLOG(fx, "closed=%d;", cl_closed(bad));
    cl_free(bad);
    /* A malformed escape in the path is refused the same way. */
    bad = cl_connect(fx->port);
    if (cl_send(bad, "GET /a%zz HTTP/1.1\r\n\r\n") && cl_response(bad, &r))
        CLOG(fx, "%d;", r.status);
    cl_free(bad);
    cl_exchange(fx, good, "GET /after HTTP/1.1\r\n\r\n");
    cl_free(good);
}

static void test_garbage_closes_one_connection(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, echo_handler);
    run(&fx, client_garbage);
    assert_string_equal(fx.log,
                        "200 GET /before ;400 {\"error\":{\"code\":\"bad_request\",\"message\";"
                        "closed=1;400;200 GET /after ;");
}

static void client_header_timeout(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    cl_send(c, "GET /slow HTTP/1.1\r\nHost:");
    if (cl_response(c, &r))
        CLOG(fx, "%d %s;", r.status, r.body);
    CLOG(fx, "closed=%d;", cl_closed(c));
    cl_free(c);
    /* A body that stops arriving is just as incomplete. */
    c = cl_connect(fx->port);
    cl_send(c, "POST /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    if (cl_response(c, &r))
        CLOG(fx, "%d;", r.status);
    cl_free(c);
}

static void test_header_timeout(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.opts.header_timeout_ms = 150;
    start_server(&fx, echo_handler);
    run(&fx, client_header_timeout);
    assert_string_equal(fx.log,
                        "408 {\"error\":{\"code\":\"timeout\",\"message\":\"request not complete "
                        "within 150 ms\"}};closed=1;408;");
}

#define IDLE_MS 1000

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for the server to close c (at most 30 s); logs whether it did, and whether it
 * waited the idle timeout since from_ms, a moment before the server's last activity on c. */
static void cl_log_idle_close(struct fixture *fx, struct client *c, uint64_t from_ms)
{
    struct timeval tv = {.tv_sec = 30};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    bool closed = cl_closed(c);
    uint64_t waited = mono_ms() - from_ms;
    CLOG(fx, "closed=%d;", closed);
    if (waited < IDLE_MS)
        CLOG(fx, "closed after %llu ms;", (unsigned long long)waited);
}

/* Keep-alive: a second request is answered on the same connection, and the idle timeout
 * counts from the last request, never less. Should the second answer not come, the server
 * was entitled to close only if the timeout had passed since the first request was sent
 * (a machine that held the client or the server up that long): then the round is void
 * and starts again; otherwise the close came early and the test fails. */
static void client_idle_timeout(struct fixture *fx)
{
    static __thread struct response r;
    struct client *c = NULL;
    uint64_t sent_two = 0;
    for (int round = 0; round < 10 && c == NULL; round++) {
        c = cl_connect(fx->port);
        uint64_t sent_one = mono_ms();
        if (cl_send(c, "GET /one HTTP/1.1\r\n\r\n") && cl_response(c, &r) && r.status == 200) {
            sent_two = mono_ms();
            if (cl_send(c, "GET /two HTTP/1.1\r\n\r\n") && cl_response(c, &r)) {
                CLOG(fx, "%d %s;", r.status, r.body);
                break;
            }
        }
        if (mono_ms() - sent_one < IDLE_MS) {
            CLOG(fx, "closed before the idle timeout;");
            break;
        }
        cl_free(c);
        c = NULL;
    }
    if (c == NULL)
        return;
    cl_log_idle_close(fx, c, sent_two);
    cl_free(c);
    /* A connection that never sends anything is idle too. */
    uint64_t connecting = mono_ms();
    c = cl_connect(fx->port);
    cl_log_idle_close(fx, c, connecting);
    cl_free(c);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.opts.idle_timeout_ms = IDLE_MS;
    start_server(&fx, echo_handler);
    run(&fx, client_idle_timeout);
    assert_string_equal(fx.log, "200 GET /two ;closed=1;closed=1;");
}

/* Waits for the held request's client to go, then answers it (the answer is dropped). */
static void gone_tick(struct fixture *fx)
{
    if (fx->n_held == 1 && fx->held[0]->conn_gone) {
        SLOG(fx, "gone;");
        sch_http_respond_error(fx->held[0], 500, "internal", NULL, "late %d", 1);
        fx->n_held = 0;
    }
    if (fx->stream_req != NULL && fx->stream_req->conn_gone) {
        bool ok = sch_http_stream_write(fx->stream_req, "more", 4);
        SLOG(fx, "stream write after gone=%d;", ok);
        sch_http_stream_end(fx->stream_req);
        fx->stream_req = NULL;
    }
}

static void gone_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    if (strcmp(req->path, "/stream") == 0) {
        sch_http_stream_start(req, 200, "text/plain");
        sch_http_stream_write(req, "first", 5);
        fx->stream_req = req;
        return;
    }
    hold(fx, req);
}

static void client_disconnect(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    cl_send(c, "POST /v1/apply HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    usleep(50 * 1000);
    cl_free(c);
    c = cl_connect(fx->port);
    cl_send(c, "GET /stream HTTP/1.1\r\n\r\n");
    usleep(50 * 1000);
    cl_free(c);
    CLOG(fx, "done;");
}

static void test_answer_after_disconnect(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.tick = gone_tick;
    start_server(&fx, gone_handler);
    run(&fx, client_disconnect);
    assert_string_equal(fx.srv_log, "gone;stream write after gone=0;");
}

/* The server is closed while a handler still holds a request; answering it afterwards is
 * safe. */
static void client_close_pending(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    static struct response r;
    cl_send(c, "GET /held HTTP/1.1\r\n\r\n");
    CLOG(fx, "got=%d;", cl_response(c, &r));
    cl_free(c);
}

static void close_tick(struct fixture *fx)
{
    if (fx->n_held == 1 && fx->server != NULL && !fx->held[0]->conn_gone) {
        sch_http_server_close(fx->server, server_closed, fx);
        fx->server = NULL;
        SLOG(fx, "gone=%d;", fx->held[0]->conn_gone);
        sch_http_respond(fx->held[0], 200, "text/plain", NULL, "late", 4);
        fx->n_held = 0;
    }
}

static void test_close_with_pending(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.tick = close_tick;
    start_server(&fx, hold_handler);
    run(&fx, client_close_pending);
    assert_string_equal(fx.log, "got=0;");
    assert_string_equal(fx.srv_log, "gone=1;");
}

static void forward_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    sch_http_forward(req, fx->forward_to, fx->forward_timeout_ms);
}

/* The forward target: answers 201 with what it received. */
static void target_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    if (strcmp(req->path, "/hang") == 0) {
        hold(fx, req);
        return;
    }
    if (strcmp(req->path, "/chunks") == 0) {
        sch_http_stream_start(req, 200, "text/plain");
        sch_http_stream_write(req, "ab", 2);
        sch_http_stream_write(req, "cd", 2);
        sch_http_stream_end(req);
        return;
    }
    const char *mark = sch_http_header(req, "x-gantry-forwarded");
    char out[512];
    int n = snprintf(out, sizeof(out), "%s %s mark=%s body=%s", req->method, req->path,
                     mark ? mark : "-", req->body);
    sch_http_respond(req, 201, "application/x-test", "Retry-After: 7\r\n", out, (size_t)n);
}

static void client_forward(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    if (cl_send(c, "POST /v1/workloads/web/scale HTTP/1.1\r\nHost: a\r\nContent-Length: "
                   "14\r\n\r\n{\"replicas\":3}") &&
        cl_response(c, &r))
        CLOG(fx, "%d %s %s %s;", r.status, r.content_type, r.retry_after, r.body);
    cl_exchange(fx, c, "GET /second HTTP/1.1\r\n\r\n");
    /* A chunked answer is relayed whole, with a length. */
    if (cl_send(c, "GET /chunks HTTP/1.1\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s [%s] %d;", r.status, r.body, r.transfer_encoding, r.has_length);
    /* A request that was forwarded already is not relayed again. */
    if (cl_send(c, "GET /loop HTTP/1.1\r\nX-Gantry-Forwarded: 1\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %.30s;", r.status, r.retry_after, r.body);
    cl_free(c);
}

static void test_forward(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server2(&fx, target_handler);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", fx.port2);
    fx.forward_to = target;
    start_server(&fx, forward_handler);
    run(&fx, client_forward);
    assert_string_equal(fx.log, "201 application/x-test 7 POST /v1/workloads/web/scale mark=1 "
                                "body={\"replicas\":3};201 GET /second mark=1 body=;200 abcd [] 1;"
                                "503 1 {\"error\":{\"code\":\"no_leader\",\";");
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static void client_forward_fail(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    if (cl_send(c, "GET /v1/cluster HTTP/1.1\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %.34s;", r.status, r.retry_after, r.body);
    cl_free(c);
}

static void test_forward_closed_port(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", closed_port());
    fx.forward_to = target;
    start_server(&fx, forward_handler);
    run(&fx, client_forward_fail);
    assert_string_equal(fx.log, "503 1 {\"error\":{\"code\":\"no_leader\",\"mess;");
}

static void client_forward_timeout(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    if (cl_send(c, "GET /hang HTTP/1.1\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s;", r.status, r.body);
    cl_free(c);
}

static void client_forward_timeout_post(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    if (cl_send(c, "POST /hang HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}") && cl_response(c, &r))
        CLOG(fx, "%d %s;", r.status, r.body);
    cl_free(c);
}

/* A write relayed without a complete answer may have been applied: the answer says so. */
static void test_forward_timeout_of_a_write(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server2(&fx, target_handler);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", fx.port2);
    fx.forward_to = target;
    fx.forward_timeout_ms = 200;
    fx.release_when_client_done = true;
    start_server(&fx, forward_handler);
    run(&fx, client_forward_timeout_post);
    char want[320];
    snprintf(want, sizeof(want),
             "503 {\"error\":{\"code\":\"no_leader\",\"message\":\"forward to %s: no answer "
             "in time; the request was relayed, so it may or may not have been applied\"}};",
             target);
    assert_string_equal(fx.log, want);
}

static void test_forward_timeout(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server2(&fx, target_handler);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", fx.port2);
    fx.forward_to = target;
    fx.forward_timeout_ms = 200;
    fx.release_when_client_done = true;
    start_server(&fx, forward_handler);
    run(&fx, client_forward_timeout);
    char want[256];
    snprintf(want, sizeof(want),
             "503 {\"error\":{\"code\":\"no_leader\",\"message\":\"forward to %s: no answer "
             "in time\"}};",
             target);
    assert_string_equal(fx.log, want);
}

/* Closes the forwarding server while its forward waits for the target. */
static void close_forwarder_tick(struct fixture *fx)
{
    if (fx->n_held == 1 && fx->server != NULL) {
        sch_http_server_close(fx->server, server_closed, fx);
        fx->server = NULL;
    }
}

static void client_close_during_forward(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    cl_send(c, "GET /hang HTTP/1.1\r\n\r\n");
    CLOG(fx, "got=%d;", cl_response(c, &r));
    cl_free(c);
}

static void test_close_during_forward(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server2(&fx, target_handler);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", fx.port2);
    fx.forward_to = target;
    fx.forward_timeout_ms = 10000;
    fx.release_when_client_done = true;
    fx.tick = close_forwarder_tick;
    start_server(&fx, forward_handler);
    run(&fx, client_close_during_forward);
    assert_string_equal(fx.log, "got=0;");
}

static void stream_step(uv_timer_t *t)
{
    struct fixture *fx = t->data;
    static const char *parts[] = {"one ", "two ", "three"};
    if (fx->stream_step < 3) {
        sch_http_stream_write(fx->stream_req, parts[fx->stream_step],
                              strlen(parts[fx->stream_step]));
        fx->stream_step++;
        uv_timer_start(&fx->answer_timer, stream_step, 10, 0);
        return;
    }
    sch_http_stream_end(fx->stream_req);
    fx->stream_req = NULL;
}

static void stream_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    if (strcmp(req->path, "/follow") != 0) {
        echo_handler(req, data);
        return;
    }
    sch_http_stream_start(req, 200, "text/plain");
    fx->stream_req = req;
    fx->stream_step = 0;
    uv_timer_start(&fx->answer_timer, stream_step, 10, 0);
}

static void client_stream(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    if (cl_send(c, "GET /follow HTTP/1.1\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %s %d;", r.status, r.transfer_encoding, r.body, r.has_length);
    cl_exchange(fx, c, "GET /after HTTP/1.1\r\n\r\n");
    cl_free(c);
    /* HTTP/1.0 has no chunks: the stream ends with the connection. */
    c = cl_connect(fx->port);
    if (cl_send(c, "GET /follow HTTP/1.0\r\n\r\n") && cl_response(c, &r))
        CLOG(fx, "%d %s %s;", r.status, r.transfer_encoding, r.body);
    cl_free(c);
}

static void test_streaming(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    init_answer_timer(&fx);
    start_server(&fx, stream_handler);
    run(&fx, client_stream);
    assert_string_equal(fx.log, "200 chunked one two three 0;200 GET /after ;200  one two three;");
}

static void query_handler(struct sch_http_request *req, void *data)
{
    struct fixture *fx = data;
    char since[32] = "?", name[32] = "?", stale[8] = "?", plus[16] = "?", none[8] = "?";
    bool has_since = sch_http_query(req, "since", since, sizeof(since));
    bool has_name = sch_http_query(req, "name", name, sizeof(name));
    bool has_stale = sch_http_query(req, "stale", stale, sizeof(stale));
    bool has_plus = sch_http_query(req, "plus", plus, sizeof(plus));
    bool has_none = sch_http_query(req, "none", none, sizeof(none));
    SLOG(fx, "path=%s query=%s since=%d:%s name=%d:%s stale=%d:%s plus=%d:%s none=%d;", req->path,
         req->query, has_since, since, has_name, name, has_stale, stale, has_plus, plus, has_none);
    const char *ua = sch_http_header(req, "user-agent");
    SLOG(fx, "ua=%s;", ua ? ua : "-");
    sch_http_respond_json(req, 200, json_pack("{s:s}", "path", req->path));
}

static void client_query(struct fixture *fx)
{
    struct client *c = cl_connect(fx->port);
    cl_exchange(fx, c,
                "GET /v1/work%20loads/a%2Fb?since=42&name=x%2Fy&stale&plus=a+b%21 HTTP/1.1\r\n"
                "User-Agent: Test/1\r\n\r\n");
    cl_free(c);
}

static void test_query_decoding(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, query_handler);
    run(&fx, client_query);
    assert_string_equal(fx.log, "200 {\"path\":\"/v1/work loads/a/b\"};");
    assert_string_equal(fx.srv_log,
                        "path=/v1/work loads/a/b query=since=42&name=x%2Fy&stale&plus=a+b%21 "
                        "since=1:42 name=1:x/y stale=1: plus=1:a b! none=0;ua=Test/1;");
}

static void client_expect(struct fixture *fx)
{
    static struct response r;
    struct client *c = cl_connect(fx->port);
    cl_send(c, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    if (cl_response(c, &r))
        CLOG(fx, "%d;", r.status);
    cl_exchange(fx, c, "body");
    cl_free(c);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, echo_handler);
    run(&fx, client_expect);
    assert_string_equal(fx.log, "100;200 POST /e body;");
}

static void client_max_connections(struct fixture *fx)
{
    struct client *a = cl_connect(fx->port);
    cl_exchange(fx, a, "GET /a HTTP/1.1\r\n\r\n");
    struct client *b = cl_connect(fx->port);
    CLOG(fx, "refused=%d;", cl_closed(b));
    cl_free(b);
    cl_exchange(fx, a, "GET /a2 HTTP/1.1\r\n\r\n");
    cl_free(a);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    fx.opts.max_connections = 1;
    start_server(&fx, echo_handler);
    run(&fx, client_max_connections);
    assert_string_equal(fx.log, "200 GET /a ;refused=1;200 GET /a2 ;");
}

static void test_address_in_use(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_init(&fx);
    start_server(&fx, echo_handler);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fx.port);
    struct sch_http_server *second = NULL;
    struct gy_error err;
    int rc = sch_http_server_start(&fx.loop, addr, NULL, echo_handler, &fx, &second, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "address already in use"));
    rc = sch_http_server_start(&fx.loop, "nowhere", NULL, echo_handler, &fx, &second, &err);
    assert_true(rc < 0);
    assert_non_null(strstr(err.msg, "HOST:PORT"));
    sch_http_server_close(fx.server, server_closed, &fx);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    assert_int_equal(fx.open_servers, 0);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_body),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_in_flight_limit),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_garbage_closes_one_connection),
        cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_answer_after_disconnect),
        cmocka_unit_test(test_close_with_pending),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_forward_closed_port),
        cmocka_unit_test(test_forward_timeout),
        cmocka_unit_test(test_forward_timeout_of_a_write),
        cmocka_unit_test(test_close_during_forward),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_address_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
