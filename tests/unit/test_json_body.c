/* Unit tests of sch_json_loadb: it must give what json_loadb with JSON_REJECT_DUPLICATES
 * gives, value for value and refusal for refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/api/json_body.h"
#include "scheduler/http/http.h"

/* Parses text both ways and checks that both agree. */
static void same(const char *text, size_t len)
{
    json_error_t e1, e2;
    json_t *ours = sch_json_loadb(text, len, &e1);
    json_t *theirs = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e2);
    if ((ours == NULL) != (theirs == NULL) || (ours != NULL && !json_equal(ours, theirs)))
        fail_msg("disagreement on \"%.*s\"", (int)len, text);
    if (ours == NULL) {
        /* A refusal carries jansson's own message and position. */
        assert_string_equal(e1.text, e2.text);
        assert_int_equal(e1.line, e2.line);
        assert_int_equal(e1.column, e2.column);
    }
    json_decref(ours);
    json_decref(theirs);
}

static void same_str(const char *text)
{
    same(text, strlen(text));
}

static void test_accepted(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{}",
        "[]",
        " \t\r\n{ \"a\" : 1 , \"b\":[true,false,null, -0, 0, 12, -34, 1.5, -2.5e3, 1E-2, 7e+1]}\n",
        "{\"name\":\"web\",\"image\":\"busybox\",\"replicas\":3,\"env\":{\"K\":\"v\"}}",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u00e9\\u20ac\\ud83d\\ude00\", \"caf\xc3\xa9 "
        "\xe2\x82\xac \xf0\x9f\x98\x80\"]",
        "{\"\\u0041key\":\"v\",\"k\\n\":2}",
        "[9223372036854775807, -9223372036854775808, 1e-400, 123456789012345678901234567890.5]",
        "[[[[[[[[[[{\"deep\":[[[]]]}]]]]]]]]]]",
        "{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        same_str(cases[i]);
    /* A long string with and without escapes, as in the write path. */
    char big[5000];
    int n = snprintf(big, sizeof(big), "{\"env\":{\"PAYLOAD\":\"");
    for (int i = 0; i < 3000; i++)
        big[n++] = "ABCDEFGHabcdefgh0123456789+/="[i % 29];
    n += snprintf(big + n, sizeof(big) - (size_t)n, "\\n\"}}");
    same(big, (size_t)n);
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "   ",
        "1",
        "\"top-level string\"",
        "null",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "{\"a\":1}x",
        "{\"a\":1} {}",
        "{\"a\":1,\"a\":2}",
        "{a:1}",
        "['x']",
        "[01]",
        "[-]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[+1]",
        "[9223372036854775808]",
        "[1e999]",
        "[tru]",
        "[nul]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\u0000\"]",
        "{\"\\u0000\":1}",
        "[\"\\ud83d\"]",
        "[\"\\ude00\"]",
        "[\"\\ud83d\\u0041\"]",
        "[\"tab\there\"]",
        "[\"unterminated]",
        "[\"\xc3\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xff\"]",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        same_str(cases[i]);
    /* A NUL byte inside the input. */
    same("[\"a\0b\"]", 7);
    same("{\"a\":1}\0", 8);
    /* Nesting deeper than jansson allows. */
    size_t depth = 3000;
    char *deep = malloc(2 * depth);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    same(deep, 2 * depth);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
