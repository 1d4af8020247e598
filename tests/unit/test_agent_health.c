/* Unit tests of health checks against a small HTTP server on loopback and a fake exec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/health.h"

/* ---- a tiny HTTP server that answers every connection with a fixed status ---- */

struct web {
    uv_tcp_t listener;
    int port;
    int status; /* answered status */
    int hits;
};

static void conn_closed(uv_handle_t *h)
{
    free(h);
}

static void web_accept(uv_stream_t *listener, int status)
{
    assert_int_equal(status, 0);
    struct web *w = listener->data;
    uv_tcp_t *c = malloc(sizeof(*c));
    uv_tcp_init(listener->loop, c);
    assert_int_equal(uv_accept(listener, (uv_stream_t *)c), 0);
    w->hits++;
    char answer[128];
    int n =
        snprintf(answer, sizeof(answer), "HTTP/1.0 %d X\r\nContent-Length: 0\r\n\r\n", w->status);
    uv_buf_t b = uv_buf_init(answer, (unsigned)n);
    uv_try_write((uv_stream_t *)c, &b, 1);
    uv_close((uv_handle_t *)c, conn_closed);
}

static void web_start(uv_loop_t *loop, struct web *w)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &w->listener);
    w->listener.data = w;
    assert_int_equal(uv_tcp_bind(&w->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&w->listener, 16, web_accept), 0);
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&w->listener, (struct sockaddr *)&bound, &len);
    w->port = ntohs(bound.sin_port);
}

/* ---- what the supervisor would see ---- */

struct seen {
    int healthy;
    int unhealthy;
    char last[512];
};

static void on_change(void *data, bool healthy, const char *detail)
{
    struct seen *s = data;
    if (healthy)
        s->healthy++;
    else
        s->unhealthy++;
    snprintf(s->last, sizeof(s->last), "%s", detail);
}

static const struct agent_health_callbacks cbs = {.on_change = on_change};

static void run_until(uv_loop_t *loop, int *counter, int target)
{
    for (int i = 0; i < 300 && *counter < target; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(10);
    }
}

static void drain(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; i++)
        uv_sleep(5);
}

static void test_http_probe(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct web w = {.status = 200};
    web_start(&loop, &w);
    struct gy_health spec = {.http_port = (uint32_t)w.port,
                             .http_path = "/healthz",
                             .interval_ms = 20,
                             .timeout_ms = 500,
                             .failure_threshold = 2};
    struct seen seen = {0};
    struct agent_health *h = agent_health_start(&loop, &spec, "127.0.0.1", NULL, NULL, &cbs, &seen);
    assert_non_null(h);
    run_until(&loop, &seen.healthy, 1);
    assert_int_equal(seen.healthy, 1);
    assert_true(agent_health_healthy(h));

    w.status = 500;
    run_until(&loop, &seen.unhealthy, 1);
    assert_int_equal(seen.unhealthy, 1);
    assert_string_equal(seen.last, "health check failed 2 times: HTTP 500");
    assert_false(agent_health_healthy(h));

    w.status = 302; /* redirects count as healthy, as in Kubernetes */
    run_until(&loop, &seen.healthy, 2);
    assert_int_equal(seen.healthy, 2);

    agent_health_stop(h);
    uv_close((uv_handle_t *)&w.listener, NULL);
    drain(&loop);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_tcp_probe_to_closed_port(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct web w = {.status = 200};
    web_start(&loop, &w);
    int port = w.port;
    uv_close((uv_handle_t *)&w.listener, NULL);
    drain(&loop);

    struct gy_health spec = {
        .tcp_port = (uint32_t)port, .interval_ms = 10, .timeout_ms = 200, .failure_threshold = 3};
    struct seen seen = {0};
    struct agent_health *h = agent_health_start(&loop, &spec, "127.0.0.1", NULL, NULL, &cbs, &seen);
    run_until(&loop, &seen.unhealthy, 2);
    assert_int_equal(seen.healthy, 0);
    assert_true(seen.unhealthy >= 2); /* every run of 3 failures is reported */
    assert_non_null(strstr(seen.last, "connection refused"));
    agent_health_stop(h);
    drain(&loop);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int exec_calls;
static int exec_exit;

static int fake_exec(void *data, const struct gy_strv *argv, int timeout_ms, char *detail,
                     size_t len)
{
    (void)data;
    assert_string_equal(argv->items[0], "check");
    assert_int_equal(timeout_ms, 300);
    exec_calls++;
    if (exec_exit != 0)
        snprintf(detail, len, "not ready yet");
    uv_sleep(5);
    return exec_exit;
}

#define START_PERIOD_MS 1000

static void test_exec_probe_and_start_period(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *argv[] = {"check", NULL};
    struct gy_health spec = {.exec = {.items = argv, .n = 1},
                             .interval_ms = 10,
                             .timeout_ms = 300,
                             .failure_threshold = 1,
                             .start_period_ms = START_PERIOD_MS};
    struct seen seen = {0};
    exec_calls = 0;
    exec_exit = 1;
    uint64_t period_end = uv_now(&loop) + START_PERIOD_MS;
    struct agent_health *h = agent_health_start(&loop, &spec, NULL, fake_exec, NULL, &cbs, &seen);
    /* Within the start period failures do not count. The loop's clock after a turn is at
     * least the time every result of that turn was judged at, so each look below is one
     * taken wholly inside the period. A machine too busy to run two probes in it leaves
     * fewer looks, which the check on exec_calls reports. */
    int calls_inside = 0;
    for (int i = 0; i < 1000 && uv_now(&loop) < period_end; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (uv_now(&loop) < period_end) {
            assert_int_equal(seen.unhealthy, 0);
            calls_inside = exec_calls;
        }
        uv_sleep(10);
    }
    assert_true(calls_inside >= 2);
    run_until(&loop, &seen.unhealthy, 1);
    assert_int_equal(seen.unhealthy, 1);
    assert_string_equal(seen.last,
                        "health check failed 1 times: exec exited with 1: not ready yet");
    exec_exit = 0;
    run_until(&loop, &seen.healthy, 1);
    assert_int_equal(seen.healthy, 1);
    /* Stopping while a probe may be in flight: no callback afterwards, nothing leaked. */
    int before = seen.healthy + seen.unhealthy;
    agent_health_stop(h);
    drain(&loop);
    assert_int_equal(seen.healthy + seen.unhealthy, before);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_no_check(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct gy_health spec = {0};
    assert_null(agent_health_start(&loop, &spec, "127.0.0.1", NULL, NULL, &cbs, NULL));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_probe),
        cmocka_unit_test(test_tcp_probe_to_closed_port),
        cmocka_unit_test(test_exec_probe_and_start_period),
        cmocka_unit_test(test_no_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
