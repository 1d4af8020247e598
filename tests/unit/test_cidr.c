/* Unit tests of IPv4 CIDR parsing and overlap (the nodes' replica subnets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "common/cidr.h"

static void test_parse(void **state)
{
    (void)state;
    uint32_t a = 0;
    int len = 0;
    assert_true(gy_cidr_parse("10.73.1.0/24", 8, 30, &a, &len));
    assert_int_equal(a, 0x0a490100u);
    assert_int_equal(len, 24);
    assert_true(gy_cidr_parse("198.19.0.0/16", 8, 30, &a, &len));
    assert_int_equal(len, 16);
    static const char *const bad[] = {
        "",
        "10.73.1.0",
        "10.73.1.0/",
        "10.73.1.1/24", /* host bits */
        "10.73.1.0/31",
        "10.0.0.0/7",
        "10.73.1.0/24x",
        "10.73.1/24",
        "fd00::/64",
        "/24",
        "10.73.1.0/-24",
        "10.73.1.0/ 24",
        "300.1.1.0/24",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gy_cidr_parse(bad[i], 8, 30, &a, &len))
            fail_msg("\"%s\" parsed", bad[i]);
    assert_false(gy_cidr_parse(NULL, 8, 30, &a, &len));
}

static void test_overlap(void **state)
{
    (void)state;
    uint32_t a, b;
    int al, bl;
    assert_true(gy_cidr_parse("10.73.1.0/24", 8, 30, &a, &al));
    assert_true(gy_cidr_parse("10.73.0.0/16", 8, 30, &b, &bl));
    assert_true(gy_cidr_overlap(a, al, b, bl));
    assert_true(gy_cidr_overlap(b, bl, a, al));
    assert_true(gy_cidr_parse("10.73.2.0/24", 8, 30, &b, &bl));
    assert_false(gy_cidr_overlap(a, al, b, bl));
    assert_true(gy_cidr_overlap(a, al, a, al));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
