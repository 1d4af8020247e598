/* Unit tests of the CLI's output forms: aligned tables, ages, and YAML that reads back as
 * the same JSON through the project's own YAML reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "ctl/ctl.h"

/* Runs a printer into a string; the caller frees it. */
#define CAPTURE(text, call)                                                                        \
    do {                                                                                           \
        size_t len_;                                                                               \
        FILE *out = open_memstream(&(text), &len_);                                                \
        call;                                                                                      \
        fclose(out);                                                                               \
    } while (0)

static void test_table_aligns_columns(void **state)
{
    (void)state;
    static const char *const head[] = {"NAME", "DESIRED", "AGE"};
    struct ctl_table t;
    ctl_table_init(&t, 3, head);
    ctl_table_add(&t, (const char *const[]){"web", "3", "5m"});
    ctl_table_add(&t, (const char *const[]){"frontend-long", "12", NULL});
    char *text = NULL;
    CAPTURE(text, ctl_table_print(&t, out));
    assert_string_equal(text, "NAME            DESIRED   AGE\n"
                              "web             3         5m\n"
                              "frontend-long   12        <none>\n");
    free(text);
    CAPTURE(text, ctl_table_print_indent(&t, "  ", out));
    assert_string_equal(text, "  NAME            DESIRED   AGE\n"
                              "  web             3         5m\n"
                              "  frontend-long   12        <none>\n");
    free(text);
    ctl_table_free(&t);
}

static void test_table_counts_utf8_characters(void **state)
{
    (void)state;
    static const char *const head[] = {"A", "B"};
    struct ctl_table t;
    ctl_table_init(&t, 2, head);
    ctl_table_add(&t, (const char *const[]){"\xc3\xa9t\xc3\xa9", "x"}); /* "été" */
    char *text = NULL;
    CAPTURE(text, ctl_table_print(&t, out));
    assert_string_equal(text, "A     B\n\xc3\xa9t\xc3\xa9   x\n");
    free(text);
    ctl_table_free(&t);
}

static void test_table_header_only(void **state)
{
    (void)state;
    static const char *const head[] = {"ID", "STATE"};
    struct ctl_table t;
    ctl_table_init(&t, 2, head);
    char *text = NULL;
    CAPTURE(text, ctl_table_print(&t, out));
    assert_string_equal(text, "ID   STATE\n");
    free(text);
    ctl_table_free(&t);
}

static void test_age(void **state)
{
    (void)state;
    char buf[32];
    uint64_t now = 1800000000000ULL;
    assert_string_equal(ctl_age_format(now, now - 5000, buf), "5s");
    assert_string_equal(ctl_age_format(now, now - 119000, buf), "119s");
    assert_string_equal(ctl_age_format(now, now - 120000, buf), "2m");
    assert_string_equal(ctl_age_format(now, now - 3ULL * 3600 * 1000, buf), "3h");
    assert_string_equal(ctl_age_format(now, now - 47ULL * 3600 * 1000, buf), "47h");
    assert_string_equal(ctl_age_format(now, now - 5ULL * 86400 * 1000, buf), "5d");
    assert_string_equal(ctl_age_format(now, now - 800ULL * 86400 * 1000, buf), "2y");
    assert_string_equal(ctl_age_format(now, now + 5000, buf), "0s");
    assert_string_equal(ctl_age_format(now, 0, buf), "<unknown>");
}

static char *yaml_of(const char *json)
{
    json_t *doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    char *text = NULL;
    CAPTURE(text, ctl_yaml_print(doc, out));
    json_decref(doc);
    return text;
}

static void test_yaml_layout(void **state)
{
    (void)state;
    char *text = yaml_of("{\"name\":\"web\",\"command\":[\"httpd\",\"-f\",\"-p\",\"8080\"],"
                         "\"env\":{},\"replicas\":3,\"health\":null,\"ok\":true,"
                         "\"resources\":{\"cpu\":\"250m\",\"memory\":\"64Mi\"},"
                         "\"items\":[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":2}],"
                         "\"empty\":[],\"ratio\":0.5}");
    assert_string_equal(text, "name: web\n"
                              "command: [httpd, \"-f\", \"-p\", \"8080\"]\n"
                              "env: {}\n"
                              "replicas: 3\n"
                              "health: null\n"
                              "ok: true\n"
                              "resources:\n"
                              "  cpu: 250m\n"
                              "  memory: 64Mi\n"
                              "items:\n"
                              "  - id: a\n"
                              "    n: 1\n"
                              "  - id: b\n"
                              "    n: 2\n"
                              "empty: []\n"
                              "ratio: 0.5\n");
    free(text);
}

static void test_yaml_quotes_what_would_change_type(void **state)
{
    (void)state;
    char *text = yaml_of("{\"a\":\"true\",\"b\":\"null\",\"c\":\"8080\",\"d\":\"0x1f\","
                         "\"e\":\"\",\"f\":\"a: b\",\"g\":\"#x\",\"h\":\"line\\nbreak\","
                         "\"i\":\"off\",\"j\":\"1.5\",\"k\":\"-.inf\",\"l\":\"disk == ssd\","
                         "\"m\":\"~\",\"n\":\"0o17\",\"o\":\"70%\"}");
    assert_string_equal(text, "a: \"true\"\nb: \"null\"\nc: \"8080\"\nd: \"0x1f\"\ne: \"\"\n"
                              "f: \"a: b\"\ng: \"#x\"\nh: \"line\\nbreak\"\ni: off\nj: \"1.5\"\n"
                              "k: \"-.inf\"\nl: disk == ssd\nm: \"~\"\nn: \"0o17\"\n"
                              "o: 70%\n");
    free(text);
}

/* Every YAML this printer writes must read back, through the reader that apply uses, as
 * the JSON it was made from. */
static void test_yaml_round_trip(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"name\":\"web\",\"image\":\"busybox\",\"command\":[\"sh\",\"-c\",\"echo a, b: "
        "[c] {d} #e\"],\"env\":{\"A\":\"1\",\"B\":\"true\",\"C\":\" x \",\"D\":\"\\u00e9\"},"
        "\"placement\":{\"clouds\":[\"private\",\"public\"],\"constraints\":[\"disk == "
        "ssd\",\"zone != b\"]},\"replicas\":0,\"autoscale\":\"off\",\"health\":null}",
        "{\"items\":[{\"x\":[[1,2],[\"a\",{\"b\":\"c\"}]]},{\"y\":{\"z\":[]}}],\"q\":\"'\","
        "\"t\":\"\\t\",\"u\":\"-\",\"v\":\"- a\",\"w\":\"?\",\"big\":9007199254740993}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *doc = json_loads(docs[i], 0, NULL);
        assert_non_null(doc);
        char *text = NULL;
        CAPTURE(text, ctl_yaml_print(doc, out));
        struct gy_yaml_document *parsed = NULL;
        size_t n = 0;
        struct gy_spec_problems problems = {0};
        int rc = gy_yaml_parse(text, strlen(text), &parsed, &n, &problems);
        if (rc != 0)
            fail_msg("YAML did not parse: %s\n%s", problems.items[0].message, text);
        assert_int_equal(n, 1);
        if (!json_equal(parsed[0].doc, doc)) {
            char *back = json_dumps(parsed[0].doc, JSON_COMPACT);
            fail_msg("round trip changed the value:\n%s\nread back as %s", text, back);
        }
        gy_yaml_documents_free(parsed, n);
        gy_spec_problems_free(&problems);
        json_decref(doc);
        free(text);
    }
}

static void test_json_pretty(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"b\":1,\"a\":[true]}", 0, NULL);
    char *text = NULL;
    CAPTURE(text, ctl_json_print(doc, out));
    assert_string_equal(text, "{\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}\n");
    free(text);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_aligns_columns),
        cmocka_unit_test(test_table_counts_utf8_characters),
        cmocka_unit_test(test_table_header_only),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_yaml_layout),
        cmocka_unit_test(test_yaml_quotes_what_would_change_type),
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_json_pretty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
