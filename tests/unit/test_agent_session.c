/* Unit tests of the agent session against small in-process servers on loopback:
 * redirect to the leader, welcome and assignment, frames from the agent, reconnect with a
 * fresh hello after the server drops it, backoff against a dead address; the limits in
 * force before a welcome, from a welcome, and from a welcome without them; and a server
 * that falls silent is left for the others. The fake servers say nothing after their
 * welcome and assignment: each is a silent server once its welcome's limit has passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/session.h"
#include "proto/frame.h"

struct fake_server;

struct fake_conn {
    uv_tcp_t tcp;
    struct fake_server *server;
    struct gy_frame_decoder decoder;
};

struct fake_server {
    uv_tcp_t listener;
    int port;
    const char *redirect_to; /* reply to hello with a redirect here, or welcome when NULL */
    uint32_t silence_ms;     /* the welcome's limits (0: not sent) */
    uint32_t connect_ms;
    int hellos;
    int heartbeats;
    struct fake_conn *last;
};

struct agent_side {
    int welcomes;
    int assignments;
    int disconnects;
    char first_start[64];
    struct agent_session *session;
};

static void fake_conn_closed(uv_handle_t *h)
{
    struct fake_conn *c = h->data;
    gy_frame_decoder_free(&c->decoder);
    free(c);
}

static void fake_send(struct fake_conn *c, const Gantry__AgentFrame *f)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(gy_frame_pack(&f->base, &buf, &len, NULL), 0);
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    assert_true(uv_try_write((uv_stream_t *)&c->tcp, &b, 1) == (int)len);
    free(buf);
}

static void fake_on_frame(struct fake_conn *c, const uint8_t *body, size_t len)
{
    struct fake_server *srv = c->server;
    Gantry__AgentFrame *f =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, body, len, NULL);
    assert_non_null(f);
    if (f->frame_case == GANTRY__AGENT_FRAME__FRAME_HELLO) {
        srv->hellos++;
        assert_string_equal(f->hello->node->name, "node-1");
        Gantry__AgentFrame out = GANTRY__AGENT_FRAME__INIT;
        if (srv->redirect_to != NULL) {
            Gantry__Redirect r = GANTRY__REDIRECT__INIT;
            r.leader_agent_address = (char *)srv->redirect_to;
            r.reason = (char *)"not the leader";
            out.frame_case = GANTRY__AGENT_FRAME__FRAME_REDIRECT;
            out.redirect = &r;
            fake_send(c, &out);
        } else {
            Gantry__Welcome w = GANTRY__WELCOME__INIT;
            w.server_id = 2;
            w.silence_timeout_ms = srv->silence_ms;
            w.connect_timeout_ms = srv->connect_ms;
            out.frame_case = GANTRY__AGENT_FRAME__FRAME_WELCOME;
            out.welcome = &w;
            fake_send(c, &out);
            Gantry__Assignment a = GANTRY__ASSIGNMENT__INIT;
            Gantry__AssignedReplica r = GANTRY__ASSIGNED_REPLICA__INIT;
            Gantry__AssignedReplica *rs[] = {&r};
            r.replica_id = (char *)"web-1";
            a.full = 1;
            a.n_start = 1;
            a.start = rs;
            out.frame_case = GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT;
            out.assignment = &a;
            fake_send(c, &out);
        }
    } else if (f->frame_case == GANTRY__AGENT_FRAME__FRAME_HEARTBEAT) {
        srv->heartbeats++;
    }
    protobuf_c_message_free_unpacked(&f->base, NULL);
}

static void fake_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(n);
    buf->len = n;
}

static void fake_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_conn *c = st->data;
    if (nread < 0) {
        if (c->server->last == c)
            c->server->last = NULL;
        uv_close((uv_handle_t *)&c->tcp, fake_conn_closed);
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = nread > 0 ? (size_t)nread : 0;
    while (n > 0) {
        const uint8_t *frame;
        size_t flen;
        long used = gy_frame_decoder_feed(&c->decoder, p, n, &frame, &flen, NULL);
        assert_true(used >= 0);
        p += used;
        n -= (size_t)used;
        if (frame != NULL)
            fake_on_frame(c, frame, flen);
    }
    free(buf->base);
}

static void fake_accept(uv_stream_t *listener, int status)
{
    assert_int_equal(status, 0);
    struct fake_server *srv = listener->data;
    struct fake_conn *c = calloc(1, sizeof(*c));
    c->server = srv;
    gy_frame_decoder_init(&c->decoder, 0);
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    srv->last = c;
    uv_read_start((uv_stream_t *)&c->tcp, fake_alloc, fake_read);
}

static void fake_start(uv_loop_t *loop, struct fake_server *srv)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 16, fake_accept), 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
    srv->port = ntohs(bound.sin_port);
}

/* Closes what is left once the session and the listeners are closing: the fake servers'
 * accepted connections. */
static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP ? fake_conn_closed : NULL);
}

static int make_hello(void *data, uint8_t **frame, size_t *len)
{
    (void)data;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    Gantry__Hello h = GANTRY__HELLO__INIT;
    Gantry__NodeInfo node = GANTRY__NODE_INFO__INIT;
    node.name = (char *)"node-1";
    h.protocol_version = 1;
    h.node = &node;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_HELLO;
    f.hello = &h;
    return gy_frame_pack(&f.base, frame, len, NULL);
}

static void on_welcome(void *data, const Gantry__Welcome *w)
{
    struct agent_side *a = data;
    assert_int_equal(w->server_id, 2);
    a->welcomes++;
}

static void on_assignment(void *data, const Gantry__Assignment *as)
{
    struct agent_side *a = data;
    a->assignments++;
    assert_true(as->full);
    snprintf(a->first_start, sizeof(a->first_start), "%s", as->start[0]->replica_id);
}

static void on_disconnect(void *data)
{
    ((struct agent_side *)data)->disconnects++;
}

static const struct agent_session_callbacks callbacks = {
    .make_hello = make_hello,
    .on_welcome = on_welcome,
    .on_assignment = on_assignment,
    .on_disconnect = on_disconnect,
};

/* Closes the session and the n fake servers' listeners, runs the loop until every handle
 * is closed, and closes it. */
static void finish(uv_loop_t *loop, struct agent_session *session, struct fake_server **servers,
                   size_t n)
{
    agent_session_close(session, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        uv_close((uv_handle_t *)&servers[i]->listener, NULL);
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Runs the loop until cond holds or about 5 s pass. */
#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); i_++) {                                              \
            uv_run(loop, UV_RUN_NOWAIT);                                                           \
            uv_sleep(10);                                                                          \
        }                                                                                          \
    } while (0)

static void test_redirect_welcome_reconnect(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fake_server leader = {0}, follower = {0};
    fake_start(&loop, &leader);
    char leader_addr[64], follower_addr[64];
    snprintf(leader_addr, sizeof(leader_addr), "127.0.0.1:%d", leader.port);
    follower.redirect_to = leader_addr;
    fake_start(&loop, &follower);
    snprintf(follower_addr, sizeof(follower_addr), "127.0.0.1:%d", follower.port);

    struct agent_side agent = {0};
    struct gy_error err;
    struct agent_session_options opts = {.backoff_min_ms = 20, .backoff_max_ms = 100};
    assert_int_equal(
        agent_session_start(&loop, follower_addr, &opts, &callbacks, &agent, &agent.session, &err),
        0);
    RUN_UNTIL(&loop, agent.assignments == 1);
    assert_int_equal(follower.hellos, 1);
    assert_int_equal(leader.hellos, 1);
    assert_int_equal(agent.welcomes, 1);
    assert_string_equal(agent.first_start, "web-1");
    assert_true(agent_session_ready(agent.session));
    assert_string_equal(agent_session_server(agent.session), leader_addr);

    Gantry__AgentFrame hb = GANTRY__AGENT_FRAME__INIT;
    Gantry__Heartbeat h = GANTRY__HEARTBEAT__INIT;
    hb.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
    hb.heartbeat = &h;
    assert_int_equal(agent_session_send(agent.session, &hb), 0);
    RUN_UNTIL(&loop, leader.heartbeats == 1);
    assert_int_equal(leader.heartbeats, 1);

    /* The leader drops the connection: the agent comes back through the follower's
     * redirect and says hello again. */
    assert_non_null(leader.last);
    uv_close((uv_handle_t *)&leader.last->tcp, fake_conn_closed);
    leader.last = NULL;
    RUN_UNTIL(&loop, agent.welcomes == 2);
    assert_int_equal(agent.disconnects, 1);
    assert_int_equal(agent.welcomes, 2);
    assert_int_equal(leader.hellos, 2);

    struct fake_server *servers[] = {&leader, &follower};
    finish(&loop, agent.session, servers, 2);
}

static void test_backoff_against_dead_server(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Find a port nobody listens on: bind, read it, close. */
    struct fake_server probe = {0};
    fake_start(&loop, &probe);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", probe.port);
    uv_close((uv_handle_t *)&probe.listener, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);

    struct agent_side agent = {0};
    struct agent_session_options opts = {.backoff_min_ms = 50, .backoff_max_ms = 200};
    assert_int_equal(
        agent_session_start(&loop, addr, &opts, &callbacks, &agent, &agent.session, NULL), 0);
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(10);
    }
    assert_false(agent_session_ready(agent.session));
    assert_int_equal(agent.welcomes, 0);
    agent_session_close(agent.session, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_stale_redirect_falls_back(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A port nobody listens on stands for a leader that has just died. */
    struct fake_server probe = {0};
    fake_start(&loop, &probe);
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", probe.port);
    uv_close((uv_handle_t *)&probe.listener, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);

    struct fake_server follower = {.redirect_to = dead}, leader = {0};
    fake_start(&loop, &follower);
    fake_start(&loop, &leader);
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d", follower.port, leader.port);
    struct agent_side agent = {0};
    struct agent_session_options opts = {.backoff_min_ms = 20, .backoff_max_ms = 100};
    assert_int_equal(
        agent_session_start(&loop, list, &opts, &callbacks, &agent, &agent.session, NULL), 0);
    RUN_UNTIL(&loop, agent.welcomes == 1);
    assert_int_equal(agent.welcomes, 1);
    /* The dead target was tried once per redirect, not in a tight loop. */
    assert_true(follower.hellos <= 2);
    struct fake_server *servers[] = {&leader, &follower};
    finish(&loop, agent.session, servers, 2);
}

static void test_timeouts(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct fake_server leader = {.silence_ms = 60000, .connect_ms = 700};
    fake_start(&loop, &leader);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", leader.port);
    struct agent_side agent = {0};
    assert_int_equal(
        agent_session_start(&loop, addr, NULL, &callbacks, &agent, &agent.session, NULL), 0);
    /* Before any welcome: the limits of a leader with the default node-down timeout. */
    uint64_t connect_ms, silence_ms;
    agent_session_timeouts(agent.session, &connect_ms, &silence_ms);
    assert_int_equal(connect_ms, AGENT_SESSION_CONNECT_MS);
    assert_int_equal(silence_ms, AGENT_SESSION_SILENCE_MS);
    /* A welcome brings the leader's. */
    RUN_UNTIL(&loop, agent.welcomes == 1);
    assert_int_equal(agent.welcomes, 1);
    agent_session_timeouts(agent.session, &connect_ms, &silence_ms);
    assert_int_equal(connect_ms, 700);
    assert_int_equal(silence_ms, 60000);
    struct fake_server *servers[] = {&leader};
    finish(&loop, agent.session, servers, 1);
}

static void test_silent_server_is_left_for_another(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A follower sends the agent to a leader that falls silent after its welcome (300 ms);
     * the third server, next in the list after the silent one, takes it, and its welcome,
     * without limits, brings the older ones back. */
    struct fake_server silent = {.silence_ms = 300, .connect_ms = 200}, good = {0};
    fake_start(&loop, &silent);
    fake_start(&loop, &good);
    char silent_addr[64], good_addr[64];
    snprintf(silent_addr, sizeof(silent_addr), "127.0.0.1:%d", silent.port);
    snprintf(good_addr, sizeof(good_addr), "127.0.0.1:%d", good.port);
    struct fake_server follower = {.redirect_to = silent_addr};
    fake_start(&loop, &follower);
    char list[200];
    snprintf(list, sizeof(list), "127.0.0.1:%d,%s,%s", follower.port, silent_addr, good_addr);
    struct agent_side agent = {0};
    struct agent_session_options opts = {.backoff_min_ms = 20, .backoff_max_ms = 100};
    assert_int_equal(
        agent_session_start(&loop, list, &opts, &callbacks, &agent, &agent.session, NULL), 0);
    RUN_UNTIL(&loop, agent.welcomes == 1);
    assert_int_equal(agent.welcomes, 1);
    assert_string_equal(agent_session_server(agent.session), silent_addr);
    RUN_UNTIL(&loop, agent.welcomes == 2);
    assert_int_equal(agent.welcomes, 2);
    assert_int_equal(agent.disconnects, 1);
    assert_string_equal(agent_session_server(agent.session), good_addr);
    /* The silent server was not tried again, although it came next in the list. */
    assert_int_equal(silent.hellos, 1);
    assert_int_equal(good.hellos, 1);
    uint64_t connect_ms, silence_ms;
    agent_session_timeouts(agent.session, &connect_ms, &silence_ms);
    assert_int_equal(connect_ms, AGENT_SESSION_LEGACY_CONNECT_MS);
    assert_int_equal(silence_ms, AGENT_SESSION_LEGACY_SILENCE_MS);
    struct fake_server *servers[] = {&silent, &good, &follower};
    finish(&loop, agent.session, servers, 3);
}

static void test_bad_server_list(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct agent_side agent = {0};
    struct gy_error err;
    assert_int_equal(agent_session_start(&loop, "", NULL, &callbacks, &agent, &agent.session, &err),
                     -GY_EINVAL);
    assert_int_equal(agent_session_start(&loop, "127.0.0.1:7702,nonsense", NULL, &callbacks, &agent,
                                         &agent.session, &err),
                     -GY_EINVAL);
    assert_non_null(strstr(err.msg, "\"nonsense\" is not HOST:PORT"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redirect_welcome_reconnect),
        cmocka_unit_test(test_backoff_against_dead_server),
        cmocka_unit_test(test_stale_redirect_falls_back),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_silent_server_is_left_for_another),
        cmocka_unit_test(test_bad_server_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
