/* Unit tests of reading the number a load metric prints, and of an HTTP metric probe
 * against a local server (the exec path needs a container: tests/integration). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/metric.h"

static void test_parse(void **state)
{
    (void)state;
    double v = -1;
    char why[200];
    assert_int_equal(agent_metric_parse("12\n", &v, why, sizeof(why)), 0);
    assert_true(v == 12.0);
    assert_int_equal(agent_metric_parse("  3.5  \r\n", &v, why, sizeof(why)), 0);
    assert_true(v == 3.5);
    /* The last non-empty line counts: a script may say something first. */
    assert_int_equal(agent_metric_parse("queue depth:\n7\n\n", &v, why, sizeof(why)), 0);
    assert_true(v == 7.0);
    assert_int_equal(agent_metric_parse("", &v, why, sizeof(why)), -1);
    assert_string_equal(why, "the metric printed nothing");
    assert_int_equal(agent_metric_parse("12 items\n", &v, why, sizeof(why)), -1);
    assert_string_equal(why, "the metric printed \"12 items\", not a number");
    assert_int_equal(agent_metric_parse("nan\n", &v, why, sizeof(why)), -1);
    assert_int_equal(agent_metric_parse("1e999\n", &v, why, sizeof(why)), -1);
}

struct answer {
    int done;
    double value;
    char error[256];
};

static void on_done(void *data, const Gantry__MetricValue *value)
{
    struct answer *a = data;
    a->done++;
    a->value = value->value;
    snprintf(a->error, sizeof(a->error), "%s", value->error ? value->error : "");
}

/* A one-shot HTTP server on 127.0.0.1 answering body with status; returns its port. */
static int serve_once(int *listener)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *listener = fd;
    return ntohs(sa.sin_port);
}

static void answer_once(int listener, const char *response)
{
    int c = accept(listener, NULL, NULL);
    char buf[1024];
    ssize_t n = read(c, buf, sizeof(buf));
    (void)n;
    ssize_t w = write(c, response, strlen(response));
    (void)w;
    close(c);
}

static void probe_http(int port, const char *response, struct answer *a)
{
    int listener;
    int p = serve_once(&listener);
    (void)port;
    uv_loop_t loop;
    uv_loop_init(&loop);
    Gantry__MetricProbe probe = GANTRY__METRIC_PROBE__INIT;
    probe.request_id = 1;
    probe.replica_id = (char *)"r1";
    probe.http_port = (uint32_t)p;
    probe.http_path = (char *)"/load";
    probe.timeout_ms = 2000;
    memset(a, 0, sizeof(*a));
    agent_metric_probe(&loop, &probe, "/nonexistent", "127.0.0.1", on_done, a);
    answer_once(listener, response);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    close(listener);
}

static void test_http_probe(void **state)
{
    (void)state;
    struct answer a;
    probe_http(0, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n42\n", &a);
    assert_int_equal(a.done, 1);
    assert_string_equal(a.error, "");
    assert_true(a.value == 42.0);
    probe_http(0, "HTTP/1.0 503 Busy\r\n\r\n", &a);
    assert_int_equal(a.done, 1);
    assert_non_null(strstr(a.error, "status 503"));
    probe_http(0, "HTTP/1.0 200 OK\r\n\r\nbusy\n", &a);
    assert_non_null(strstr(a.error, "not a number"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_http_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
