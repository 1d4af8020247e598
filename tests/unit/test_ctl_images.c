/* Unit tests of the output of gantry get images and gantry image pull: the table (digest
 * cut to 12 hex digits, human sizes, the nodes or their count), -o wide with the OCI
 * labels, and the per-node pull report with its exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

#define DIGEST "sha256:bf6024e538402dc4a4a69c5b987a497751255e911ba9b7122ba96788acc6879a"

/* What print writes, as a string the caller frees. */
static char *captured(void (*print)(const json_t *, FILE *), const json_t *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    print(arg, out);
    fclose(out);
    return buf;
}

static bool wide;
static void print_images(const json_t *items, FILE *out)
{
    ctl_images_print(items, wide, out);
}

static int pull_exit;
static void print_pull(const json_t *answer, FILE *out)
{
    pull_exit = ctl_image_pull_print(answer, out);
}

static json_t *items(void)
{
    json_t *doc = json_loads(
        "[{\"name\":\"127.0.0.1:5000/test/app:1\",\"digest\":\"" DIGEST "\",\"size\":1084605,"
        "\"nodes\":[\"a1\",\"a2\"],\"labels\":{\"org.opencontainers.image.source\":"
        "\"https://example.com/app\",\"org.opencontainers.image.revision\":\"r1\"}},"
        "{\"name\":\"busybox\",\"digest\":\"\",\"size\":812,\"nodes\":[\"n1\",\"n2\",\"n3\",\"n4\"]"
        ","
        "\"labels\":{}}]",
        0, NULL);
    assert_non_null(doc);
    return doc;
}

static void test_table(void **state)
{
    (void)state;
    json_t *doc = items();
    wide = false;
    char *text = captured(print_images, doc);
    assert_string_equal(text, "NAME                        DIGEST         SIZE      NODES\n"
                              "127.0.0.1:5000/test/app:1   bf6024e53840   1.0 MiB   a1,a2\n"
                              "busybox                     <none>         812 B     4 nodes\n");
    free(text);
    wide = true;
    text = captured(print_images, doc);
    assert_string_equal(
        text, "NAME                        DIGEST         SIZE      NODES     SOURCE               "
              "     REVISION   CREATED   VENDOR   LICENSES   AUTHORS\n"
              "127.0.0.1:5000/test/app:1   bf6024e53840   1.0 MiB   a1,a2     "
              "https://example.com/app   r1         <none>    <none>   <none>     <none>\n"
              "busybox                     <none>         812 B     4 nodes   <none>               "
              "     <none>     <none>    <none>   <none>     <none>\n");
    free(text);
    json_decref(doc);
    char *d = ctl_digest_short(DIGEST);
    assert_string_equal(d, "bf6024e53840");
    free(d);
}

static void test_pull_report(void **state)
{
    (void)state;
    json_t *answer = json_loads(
        "{\"ref\":\"x\",\"failed\":0,\"results\":[{\"node\":\"a1\",\"digest\":\"" DIGEST "\","
        "\"size\":1084605,\"bytes_registry\":1084605,\"bytes_peers\":0}]}",
        0, NULL);
    char *text = captured(print_pull, answer);
    assert_int_equal(pull_exit, CTL_EXIT_OK);
    assert_string_equal(text,
                        "NODE   DIGEST                                                     "
                        "               SIZE      FROM REGISTRY   FROM PEERS   RESULT\n"
                        "a1     " DIGEST "   1.0 MiB   1.0 MiB         0 B          pulled\n");
    free(text);
    json_decref(answer);
    answer = json_loads("{\"ref\":\"x\",\"failed\":1,\"results\":[{\"node\":\"a2\",\"error\":"
                        "\"the node disconnected before it answered\"}]}",
                        0, NULL);
    text = captured(print_pull, answer);
    assert_int_equal(pull_exit, CTL_EXIT_FAILED);
    assert_non_null(strstr(text,
                           "a2     -        -      -               -            failed: the node "
                           "disconnected before it answered\n"));
    free(text);
    json_decref(answer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_pull_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
