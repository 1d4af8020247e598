/* Unit tests of what failures say: the sentence made from the API's error answers, the
 * exit status each failure means, URL escaping, and the --wait verdicts on workload
 * status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

static void test_sentence_from_api_error(void **state)
{
    (void)state;
    char *s = ctl_error_sentence(
        404, "{\"error\":{\"code\":\"not_found\",\"message\":\"workload \\\"web\\\" not found\"}}");
    assert_string_equal(s, "workload \"web\" not found");
    free(s);
    s = ctl_error_sentence(400, "{\"error\":{\"code\":\"invalid_spec\",\"message\":\"workloads[0]."
                                "foo: unknown key (and more problems)\",\"problems\":[{\"path\":"
                                "\"workloads[0].foo\",\"message\":\"unknown key\"},{\"path\":"
                                "\"workloads[0].replicas\",\"message\":\"must be a whole number\"}"
                                "]}}");
    assert_string_equal(s, "the server rejected the request:\n"
                           "  workloads[0].foo: unknown key\n"
                           "  workloads[0].replicas: must be a whole number");
    free(s);
}

static void test_sentence_without_api_error(void **state)
{
    (void)state;
    char *s = ctl_error_sentence(502, "<html>bad gateway</html>");
    assert_string_equal(s, "a server in between failed (HTTP 502)");
    free(s);
    s = ctl_error_sentence(503, NULL);
    assert_string_equal(s, "the control plane has no leader at the moment; retry shortly (HTTP "
                           "503)");
    free(s);
    s = ctl_error_sentence(418, "{\"error\":{}}");
    assert_string_equal(s, "the request failed (HTTP 418)");
    free(s);
}

static void test_response_error_codes_and_exit(void **state)
{
    (void)state;
    struct ctl_context ctx = {.out = stdout};
    char *text = NULL;
    size_t len = 0;
    ctx.err = open_memstream(&text, &len);
    struct gy_error err;
    struct ctl_response resp = {
        .status = 404, .body = "{\"error\":{\"message\":\"workload \\\"x\\\" not found\"}}"};
    assert_int_equal(ctl_response_error(&resp, &err), -GY_ENOTFOUND);
    assert_int_equal(ctl_fail(&ctx, &err), CTL_EXIT_FAILED);
    resp.status = 400;
    assert_int_equal(ctl_response_error(&resp, &err), -GY_EINVAL);
    assert_int_equal(ctl_fail(&ctx, &err), CTL_EXIT_USAGE);
    resp.status = 500;
    assert_int_equal(ctl_response_error(&resp, &err), -GY_EINTERNAL);
    assert_int_equal(ctl_fail(&ctx, &err), CTL_EXIT_FAILED);
    fclose(ctx.err);
    assert_string_equal(text, "gantry: workload \"x\" not found\n"
                              "gantry: workload \"x\" not found\n"
                              "gantry: workload \"x\" not found\n");
    free(text);
}

static void test_unreachable_server(void **state)
{
    (void)state;
    struct ctl_client client;
    struct gy_error err;
    /* Port 1 on loopback: nothing listens there, so the connection is refused at once. */
    assert_int_equal(ctl_client_init(&client, "http://127.0.0.1:1", &err), 0);
    struct ctl_response resp;
    assert_int_equal(ctl_client_request(&client, "GET", "/v1/workloads", NULL, 0, &resp, &err),
                     -GY_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "cannot reach the control plane at http://127.0.0.1:1: "));
    ctl_client_free(&client);
}

static void test_server_address(void **state)
{
    (void)state;
    struct ctl_client client;
    struct gy_error err;
    assert_int_equal(ctl_client_init(&client, "127.0.0.1:7700/", &err), 0);
    assert_string_equal(client.base, "http://127.0.0.1:7700");
    ctl_client_free(&client);
    assert_int_equal(ctl_client_init(&client, "ftp://x", &err), -GY_EINVAL);
    assert_string_equal(err.msg, "server address \"ftp://x\" must start with http:// or https://");
    assert_int_equal(ctl_client_init(&client, "http://", &err), -GY_EINVAL);
    setenv("GANTRY_ADDR", "http://127.0.0.9:7700", 1);
    assert_int_equal(ctl_client_init(&client, NULL, &err), 0);
    assert_string_equal(client.base, "http://127.0.0.9:7700");
    ctl_client_free(&client);
    unsetenv("GANTRY_ADDR");
    assert_int_equal(ctl_client_init(&client, NULL, &err), 0);
    assert_string_equal(client.base, CTL_DEFAULT_SERVER);
    ctl_client_free(&client);
}

static void test_url_escape(void **state)
{
    (void)state;
    char *s = ctl_url_escape("web-1_a.b~");
    assert_string_equal(s, "web-1_a.b~");
    free(s);
    s = ctl_url_escape("a/b c?d&e");
    assert_string_equal(s, "a%2Fb%20c%3Fd%26e");
    free(s);
}

static enum ctl_wait_state assess(const char *workload, const char *replicas, char *summary,
                                  char *reason)
{
    json_t *w = json_loads(workload, 0, NULL);
    json_t *r = replicas ? json_loads(replicas, 0, NULL) : NULL;
    assert_non_null(w);
    enum ctl_wait_state st = ctl_wait_assess(w, r, summary, 256, reason, 256);
    json_decref(w);
    json_decref(r);
    return st;
}

static void test_wait_verdicts(void **state)
{
    (void)state;
    char summary[256], reason[256];
    assert_int_equal(assess("{\"status\":{\"desired\":3,\"replicas\":0,\"running\":0,\"ready\":0,"
                            "\"conditions\":[{\"type\":\"Progressing\",\"message\":\"m\"}]}}",
                            "{\"items\":[]}", summary, reason),
                     CTL_WAIT_PROGRESSING);
    assert_string_equal(summary, "0/3 ready, 0 running (no replicas placed yet)");

    assert_int_equal(
        assess("{\"status\":{\"desired\":3,\"replicas\":3,\"running\":2,\"ready\":1}}",
               "{\"items\":[{\"id\":\"a\",\"state\":\"running\"},{\"id\":\"b\",\"state\":"
               "\"running\"},{\"id\":\"c\",\"state\":\"pending\"}]}",
               summary, reason),
        CTL_WAIT_PROGRESSING);
    assert_string_equal(summary, "1/3 ready, 2 running (1 pending)");

    assert_int_equal(assess("{\"status\":{\"desired\":2,\"replicas\":2,\"running\":2,\"ready\":2,"
                            "\"conditions\":[{\"type\":\"Available\",\"message\":\"all ready\"}]}}",
                            NULL, summary, reason),
                     CTL_WAIT_DONE);
    assert_string_equal(summary, "2/2 ready, 2 running");

    /* Scaled to zero: done once nothing runs. */
    assert_int_equal(assess("{\"status\":{\"desired\":0,\"replicas\":0,\"running\":0,"
                            "\"ready\":0}}",
                            NULL, summary, reason),
                     CTL_WAIT_DONE);
}

static void test_wait_failures(void **state)
{
    (void)state;
    char summary[256], reason[256];
    assert_int_equal(assess("{\"status\":{\"desired\":3,\"replicas\":0,\"running\":0,\"ready\":0,"
                            "\"conditions\":[{\"type\":\"PlacementFailed\",\"message\":\"no "
                            "node has 64Gi of free memory\"}]}}",
                            NULL, summary, reason),
                     CTL_WAIT_FAILED);
    assert_string_equal(reason, "PlacementFailed: no node has 64Gi of free memory");

    /* The reconciler's own conditions. */
    assert_int_equal(assess("{\"status\":{\"desired\":2,\"replicas\":4,\"running\":2,\"ready\":2,"
                            "\"conditions\":[{\"type\":\"RolloutHalted\",\"message\":\"the new "
                            "generation is crash-looping; the previous one keeps serving\"}]}}",
                            NULL, summary, reason),
                     CTL_WAIT_FAILED);
    assert_string_equal(reason, "RolloutHalted: the new generation is crash-looping; the previous "
                                "one keeps serving");
    assert_int_equal(assess("{\"status\":{\"desired\":2,\"replicas\":0,\"running\":0,\"ready\":0,"
                            "\"conditions\":[{\"type\":\"Unschedulable\",\"message\":\"2 of 2 "
                            "replicas cannot be placed\"}]}}",
                            NULL, summary, reason),
                     CTL_WAIT_FAILED);

    assert_int_equal(assess("{\"status\":{\"desired\":1,\"replicas\":1,\"running\":0,\"ready\":0}}",
                            "{\"items\":[{\"id\":\"web-x\",\"state\":\"exited\",\"restarts\":4,"
                            "\"exit_code\":127}]}",
                            summary, reason),
                     CTL_WAIT_FAILED);
    assert_string_equal(reason,
                        "replica web-x is in a crash loop: restarted 4 times, last exit code 127");
    assert_string_equal(summary, "0/1 ready, 0 running (1 exited)");

    /* Restarts of a replica that now runs are history, not a crash loop. */
    assert_int_equal(assess("{\"status\":{\"desired\":1,\"replicas\":1,\"running\":1,\"ready\":1}}",
                            "{\"items\":[{\"id\":\"web-x\",\"state\":\"running\",\"restarts\":9}]}",
                            summary, reason),
                     CTL_WAIT_DONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentence_from_api_error),
        cmocka_unit_test(test_sentence_without_api_error),
        cmocka_unit_test(test_response_error_codes_and_exit),
        cmocka_unit_test(test_unreachable_server),
        cmocka_unit_test(test_server_address),
        cmocka_unit_test(test_url_escape),
        cmocka_unit_test(test_wait_verdicts),
        cmocka_unit_test(test_wait_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
