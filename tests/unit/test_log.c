/* Unit tests of logging: format, levels, escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static char *capture(void (*fn)(void))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gy_log_set_stream(f);
    fn();
    gy_log_set_stream(NULL);
    fclose(f);
    return buf;
}

static void write_info(void)
{
    gy_log_info("leader elected", "term=%d id=%d", 3, 2);
}

static void write_debug(void)
{
    gy_log_debug("hidden", "x=%d", 1);
}

static void write_quoted(void)
{
    gy_log_warn("say \"hi\"\nnext");
}

static void test_line_format(void **state)
{
    (void)state;
    unsetenv("GANTRY_LOG");
    gy_log_init("scheduler", GY_LOG_INFO);
    char *out = capture(write_info);
    assert_non_null(strstr(out, "level=info comp=scheduler msg=\"leader elected\" term=3 id=2\n"));
    assert_memory_equal(out, "time=", 5);
    free(out);
}

static void test_level_filters(void **state)
{
    (void)state;
    gy_log_init("t", GY_LOG_INFO);
    char *out = capture(write_debug);
    assert_string_equal(out, "");
    free(out);
    gy_log_set_level(GY_LOG_DEBUG);
    out = capture(write_debug);
    assert_non_null(strstr(out, "level=debug"));
    free(out);
}

static void test_env_overrides_level(void **state)
{
    (void)state;
    setenv("GANTRY_LOG", "error", 1);
    gy_log_init("t", GY_LOG_DEBUG);
    assert_int_equal(gy_log_get_level(), GY_LOG_ERROR);
    setenv("GANTRY_LOG", "bogus", 1);
    gy_log_init("t", GY_LOG_WARN);
    assert_int_equal(gy_log_get_level(), GY_LOG_WARN);
    unsetenv("GANTRY_LOG");
}

static void test_message_is_escaped_on_one_line(void **state)
{
    (void)state;
    gy_log_init("t", GY_LOG_INFO);
    char *out = capture(write_quoted);
    assert_non_null(strstr(out, "msg=\"say \\\"hi\\\"\\nnext\"\n"));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    free(out);
}

static void test_level_parse(void **state)
{
    (void)state;
    enum gy_log_level l;
    assert_true(gy_log_level_parse("DEBUG", &l));
    assert_int_equal(l, GY_LOG_DEBUG);
    assert_true(gy_log_level_parse("warning", &l));
    assert_int_equal(l, GY_LOG_WARN);
    assert_false(gy_log_level_parse("", &l));
    assert_false(gy_log_level_parse(NULL, &l));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_level_filters),
        cmocka_unit_test(test_env_overrides_level),
        cmocka_unit_test(test_message_is_escaped_on_one_line),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
