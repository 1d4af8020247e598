/* Unit tests of quantity and duration parsing and printing, good and bad inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "common/quantity.h"

static int64_t cpu_ok(const char *s)
{
    int64_t v = -1;
    struct gy_error err;
    int rc = gy_cpu_parse(s, &v, &err);
    if (rc != 0)
        fail_msg("cpu \"%s\": %s", s, err.msg);
    return v;
}

static int64_t mem_ok(const char *s)
{
    int64_t v = -1;
    struct gy_error err;
    if (gy_memory_parse(s, &v, &err) != 0)
        fail_msg("memory \"%s\": %s", s, err.msg);
    return v;
}

static int64_t dur_ok(const char *s)
{
    int64_t v = -1;
    struct gy_error err;
    if (gy_duration_parse(s, &v, &err) != 0)
        fail_msg("duration \"%s\": %s", s, err.msg);
    return v;
}

static void test_cpu_good(void **state)
{
    (void)state;
    assert_int_equal(cpu_ok("250m"), 250);
    assert_int_equal(cpu_ok("0.5"), 500);
    assert_int_equal(cpu_ok("2"), 2000);
    assert_int_equal(cpu_ok("1.25"), 1250);
    assert_int_equal(cpu_ok(".5"), 500);
    assert_int_equal(cpu_ok("0"), 0);
    assert_int_equal(cpu_ok("1000000"), INT64_C(1000000000));
}

static void test_cpu_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "-1", "",   "1e99", "12Zi", "m", "1.0005", "0.5m", "1000001", "99999999999999999999999",
        "1 ", " 1", "+1",   "1..2", "."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 77;
        struct gy_error err;
        int rc = gy_cpu_parse(bad[i], &v, &err);
        if (rc >= 0)
            fail_msg("cpu \"%s\" was accepted as %lld", bad[i], (long long)v);
        assert_int_equal(v, 77);
        assert_true(strlen(err.msg) > 0);
    }
    struct gy_error err;
    int64_t v;
    gy_cpu_parse("12Zi", &v, &err);
    assert_non_null(strstr(err.msg, "unknown unit \"Zi\""));
    assert_int_equal(gy_cpu_parse(NULL, &v, &err), -GY_EPARSE);
}

static void test_memory_good(void **state)
{
    (void)state;
    assert_int_equal(mem_ok("64Mi"), 64 * 1024 * 1024);
    assert_int_equal(mem_ok("1G"), 1000000000);
    assert_int_equal(mem_ok("1k"), 1000);
    assert_int_equal(mem_ok("1Ki"), 1024);
    assert_int_equal(mem_ok("1.5Ki"), 1536);
    assert_int_equal(mem_ok("0.1"), 1); /* fractions of a byte round up */
    assert_int_equal(mem_ok("123"), 123);
    assert_int_equal(mem_ok("1Ei"), INT64_C(1) << 60);
    assert_int_equal(mem_ok("0"), 0);
}

static void test_memory_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "-1",      "",    "12Zi", "1e99", "64MB", "2Ei", "64 Mi", "Mi", "18446744073709551616",
        "1.5.5Mi", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 77;
        struct gy_error err;
        if (gy_memory_parse(bad[i], &v, &err) >= 0)
            fail_msg("memory \"%s\" was accepted as %lld", bad[i], (long long)v);
        assert_int_equal(v, 77);
    }
    struct gy_error err;
    int64_t v;
    assert_int_equal(gy_memory_parse("2Ei", &v, &err), -GY_ERANGE);
    assert_int_equal(gy_memory_parse("12Zi", &v, &err), -GY_EPARSE);
    assert_non_null(strstr(err.msg, "\"Zi\""));
}

static void test_duration_good(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("500ms"), 500);
    assert_int_equal(dur_ok("30s"), 30000);
    assert_int_equal(dur_ok("2m"), 120000);
    assert_int_equal(dur_ok("1h"), 3600000);
    assert_int_equal(dur_ok("1m30s"), 90000);
    assert_int_equal(dur_ok("1.5s"), 1500);
    assert_int_equal(dur_ok("1h2m3s4ms"), 3723004);
    assert_int_equal(dur_ok("0"), 0);
    assert_int_equal(dur_ok("0s"), 0);
}

static void test_duration_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "-1s",     "",      "1e99s", "30", "5d", "0.5ms", "s", "1s 2s", "99999999999999999999h",
        "100000h", "1.2.3s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 77;
        struct gy_error err;
        if (gy_duration_parse(bad[i], &v, &err) >= 0)
            fail_msg("duration \"%s\" was accepted as %lld", bad[i], (long long)v);
        assert_int_equal(v, 77);
    }
    struct gy_error err;
    int64_t v;
    gy_duration_parse("30", &v, &err);
    assert_non_null(strstr(err.msg, "missing unit"));
}

static void test_format_round_trip(void **state)
{
    (void)state;
    char buf[GY_QUANTITY_BUF];
    assert_string_equal(gy_cpu_format(250, buf), "250m");
    assert_string_equal(gy_cpu_format(2000, buf), "2");
    assert_string_equal(gy_memory_format(64 * 1024 * 1024, buf), "64Mi");
    assert_string_equal(gy_memory_format(1536, buf), "1536");
    assert_string_equal(gy_memory_format(INT64_C(3) << 30, buf), "3Gi");
    assert_string_equal(gy_memory_format(1000, buf), "1000");
    assert_string_equal(gy_duration_format(500, buf), "500ms");
    assert_string_equal(gy_duration_format(30000, buf), "30s");
    assert_string_equal(gy_duration_format(1500, buf), "1.5s");
    assert_string_equal(gy_duration_format(90000, buf), "1m30s");
    assert_string_equal(gy_duration_format(5400000, buf), "1h30m");
    assert_string_equal(gy_duration_format(0, buf), "0s");
    const char *durations[] = {"1h2m3.004s", "250ms", "10m", "2h"};
    for (size_t i = 0; i < 4; i++) {
        int64_t ms = dur_ok(durations[i]);
        assert_string_equal(gy_duration_format(ms, buf), durations[i]);
    }
    const char *mems[] = {"64Mi", "1Gi", "12345", "7Ti"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(gy_memory_format(mem_ok(mems[i]), buf), mems[i]);
}

static void test_percent_and_count(void **state)
{
    (void)state;
    int64_t v;
    struct gy_error err;
    assert_int_equal(gy_percent_parse("70%", &v, &err), 0);
    assert_int_equal(v, 70);
    assert_int_equal(gy_percent_parse("150", &v, &err), 0);
    assert_int_equal(v, 150);
    assert_true(gy_percent_parse("-5%", &v, &err) < 0);
    assert_true(gy_percent_parse("%", &v, &err) < 0);
    assert_true(gy_percent_parse("7.5%", &v, &err) < 0);
    assert_int_equal(gy_count_parse("128", 1000, &v, &err), 0);
    assert_int_equal(v, 128);
    assert_int_equal(gy_count_parse("1001", 1000, &v, &err), -GY_ERANGE);
    assert_int_equal(gy_count_parse("99999999999999999999999", INT64_MAX, &v, &err), -GY_ERANGE);
    assert_int_equal(gy_count_parse("12a", 1000, &v, &err), -GY_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_good),          cmocka_unit_test(test_cpu_bad),
        cmocka_unit_test(test_memory_good),       cmocka_unit_test(test_memory_bad),
        cmocka_unit_test(test_duration_good),     cmocka_unit_test(test_duration_bad),
        cmocka_unit_test(test_format_round_trip), cmocka_unit_test(test_percent_and_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
