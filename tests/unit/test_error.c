/* Unit tests of the error convention. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "common/error.h"

static void test_set_returns_negative_code(void **state)
{
    (void)state;
    struct gy_error err;
    int rc = gy_error_set(&err, GY_EINVAL, "field %s", "name");
    assert_int_equal(rc, -GY_EINVAL);
    assert_int_equal(err.code, GY_EINVAL);
    assert_string_equal(err.msg, "field name");
}

static void test_sys_appends_strerror(void **state)
{
    (void)state;
    struct gy_error err;
    int rc = gy_error_sys(&err, ENOENT, "open %s", "/nope");
    assert_int_equal(rc, -GY_ESYS);
    assert_int_equal(err.sys_errno, ENOENT);
    assert_string_equal(err.msg, "open /nope: No such file or directory");
}

static void test_wrap_adds_context(void **state)
{
    (void)state;
    struct gy_error err;
    gy_error_set(&err, GY_EPARSE, "bad unit");
    int rc = gy_error_wrap(&err, "resources.memory");
    assert_int_equal(rc, -GY_EPARSE);
    assert_string_equal(err.msg, "resources.memory: bad unit");
}

static void test_null_error_is_allowed(void **state)
{
    (void)state;
    assert_int_equal(gy_error_set(NULL, GY_ENOTFOUND, "x"), -GY_ENOTFOUND);
    gy_error_clear(NULL);
}

static void test_names_and_texts(void **state)
{
    (void)state;
    assert_string_equal(gy_code_name(GY_ETOOBIG), "TOOBIG");
    assert_string_equal(gy_code_text(GY_ENOMEM), "out of memory");
    assert_string_equal(gy_code_name((enum gy_code)999), "UNKNOWN");
}

static void test_long_message_is_truncated(void **state)
{
    (void)state;
    struct gy_error err;
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    gy_error_set(&err, GY_EINVAL, "%s", big);
    assert_int_equal(strlen(err.msg), GY_ERROR_MSG_MAX - 1);
    gy_error_wrap(&err, "ctx");
    assert_int_equal(strlen(err.msg), GY_ERROR_MSG_MAX - 1);
    assert_memory_equal(err.msg, "ctx: ", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_returns_negative_code),
        cmocka_unit_test(test_sys_appends_strerror),
        cmocka_unit_test(test_wrap_adds_context),
        cmocka_unit_test(test_null_error_is_allowed),
        cmocka_unit_test(test_names_and_texts),
        cmocka_unit_test(test_long_message_is_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
