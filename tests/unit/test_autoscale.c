/* Unit tests of the autoscaler's windows and decisions, driven by recorded samples and an
 * injected clock: scale-up at once and bounded, tolerance, the scale-down stabilisation
 * window, not-ready replicas, several targets, idle retirement and manual scaling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "scheduler/fleet/autoscale_policy.h"

#define MS_NS 1000000ull

static struct sch_as_policy cpu_policy(uint32_t min, uint32_t max, uint32_t target)
{
    struct sch_as_policy p;
    memset(&p, 0, sizeof(p));
    p.min = min;
    p.max = max;
    p.cpu_percent = target;
    p.scale_down_after_ms = 30000;
    return p;
}

static struct sch_as_figures cpu_figures(uint32_t current, uint32_t ready, double percent)
{
    struct sch_as_figures f;
    memset(&f, 0, sizeof(f));
    f.current = current;
    f.ready = ready;
    f.has_cpu = true;
    f.cpu_percent = percent;
    f.cpu_max_percent = percent;
    f.span_ms = 2000;
    return f;
}

static void test_window_rate(void **state)
{
    (void)state;
    struct sch_as_window w = {0};
    double mc;
    uint64_t span;
    struct sch_as_sample s = {1000, 0, 10};
    sch_as_window_add(&w, &s);
    assert_false(sch_as_window_cpu(&w, &mc, &span));
    /* 100 ms of CPU per second: 100 millicores. */
    for (uint64_t t = 2; t <= 6; t++) {
        s = (struct sch_as_sample){t * 1000, (t - 1) * 100 * MS_NS, 10};
        sch_as_window_add(&w, &s);
    }
    assert_true(sch_as_window_cpu(&w, &mc, &span));
    assert_int_equal(span, 2000);
    assert_true(mc > 99.9 && mc < 100.1);
    /* A stale or repeated sample is ignored. */
    s = (struct sch_as_sample){5500, 0, 10};
    sch_as_window_add(&w, &s);
    assert_int_equal(sch_as_window_newest(&w), 6000);
    /* Load starts: 1 core for the last second. */
    s = (struct sch_as_sample){7000, 5 * 100 * MS_NS + 1000 * MS_NS, 10};
    sch_as_window_add(&w, &s);
    assert_true(sch_as_window_cpu(&w, &mc, &span));
    assert_true(mc > 549.9 && mc < 550.1); /* (100 + 1000) / 2 s */
    /* The counter went backwards: the container restarted, the window starts again. */
    s = (struct sch_as_sample){8000, 5 * MS_NS, 10};
    sch_as_window_add(&w, &s);
    assert_false(sch_as_window_cpu(&w, &mc, &span));
    /* The window holds a bounded number of samples. */
    for (uint64_t t = 9; t < 40; t++) {
        s = (struct sch_as_sample){t * 1000, t * MS_NS, 10};
        sch_as_window_add(&w, &s);
    }
    assert_int_equal(w.n, SCH_AS_WINDOW_SAMPLES);
}

static void test_scale_up_at_once_and_bounded(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 20, 50);
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    struct sch_as_figures f = cpu_figures(1, 1, 90);
    sch_as_decide(&p, &f, &m, 1000, &d);
    assert_int_equal(d.replicas, 2);
    assert_string_equal(d.reason, "cpu 90% of target 50% over 2s: 1 -> 2");
    /* A step is at most doubling or +4, whichever is more. */
    f = cpu_figures(2, 2, 500);
    sch_as_decide(&p, &f, &m, 2000, &d);
    assert_int_equal(d.recommended, 20);
    assert_int_equal(d.replicas, 6);
    f = cpu_figures(6, 6, 500);
    sch_as_decide(&p, &f, &m, 3000, &d);
    assert_int_equal(d.replicas, 12);
    /* Never beyond max. */
    f = cpu_figures(12, 12, 500);
    sch_as_decide(&p, &f, &m, 4000, &d);
    assert_int_equal(d.replicas, 20);
}

static void test_tolerance(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 10, 50);
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    double near[] = {45.5, 47, 50, 53, 54.9};
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        struct sch_as_figures f = cpu_figures(3, 3, near[i]);
        sch_as_decide(&p, &f, &m, 1000 + i * 1000, &d);
        assert_int_equal(d.replicas, 3);
        assert_int_equal(d.recommended, 3);
        assert_int_equal(d.scale_down_in_ms, 0);
    }
    struct sch_as_figures f = cpu_figures(3, 3, 56);
    sch_as_decide(&p, &f, &m, 9000, &d);
    assert_int_equal(d.replicas, 4);
}

static void test_scale_down_waits(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 10, 50);
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    uint64_t t0 = 100000;
    /* Load falls to a quarter: 4 replicas at 10% call for 1. */
    struct sch_as_figures f = cpu_figures(4, 4, 10);
    sch_as_decide(&p, &f, &m, t0, &d);
    assert_int_equal(d.replicas, 4);
    assert_int_equal(d.recommended, 1);
    assert_int_equal(d.scale_down_in_ms, 30000);
    /* A brief rise inside the period raises what the scale-down goes to. */
    f = cpu_figures(4, 4, 30);
    sch_as_decide(&p, &f, &m, t0 + 10000, &d);
    assert_int_equal(d.replicas, 4);
    assert_int_equal(d.scale_down_in_ms, 20000);
    f = cpu_figures(4, 4, 10);
    sch_as_decide(&p, &f, &m, t0 + 29999, &d);
    assert_int_equal(d.replicas, 4);
    sch_as_decide(&p, &f, &m, t0 + 30000, &d);
    assert_int_equal(d.replicas, 3);
    assert_string_equal(d.reason, "cpu 10% of target 50%, low for 30s: 4 -> 3");
    /* The autoscaler's own step keeps the window: the rise at +10 s still holds the count
     * at 3 until it is older than scale_down_after, then the count drops at once. */
    f = cpu_figures(3, 3, 10);
    sch_as_decide(&p, &f, &m, t0 + 31000, &d);
    assert_int_equal(d.replicas, 3);
    assert_int_equal(d.scale_down_in_ms, 9000);
    sch_as_decide(&p, &f, &m, t0 + 40001, &d);
    assert_int_equal(d.replicas, 1);
    /* Load back at the target ends the period. */
    f = cpu_figures(1, 1, 50);
    sch_as_decide(&p, &f, &m, t0 + 41000, &d);
    assert_int_equal(d.replicas, 1);
    assert_int_equal(d.scale_down_in_ms, 0);
    /* A manual scale (a count the autoscaler did not set) starts a new period. */
    f = cpu_figures(5, 5, 10);
    sch_as_decide(&p, &f, &m, t0 + 50000, &d);
    assert_int_equal(d.replicas, 5);
    assert_int_equal(d.scale_down_in_ms, 30000);
}

static void test_not_ready_replicas(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 10, 50);
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    /* Two of four are starting: the busy two call for 3, which is not more than 4. */
    struct sch_as_figures f = cpu_figures(4, 2, 75);
    sch_as_decide(&p, &f, &m, 1000, &d);
    assert_int_equal(d.replicas, 4);
    assert_int_equal(d.scale_down_in_ms, 0);
    /* Low load on the ready two: the starting ones count as at the target. */
    f = cpu_figures(4, 2, 25);
    sch_as_decide(&p, &f, &m, 2000, &d);
    assert_int_equal(d.recommended, 3);
    /* No ready replica: no figures, no decision. */
    f = cpu_figures(4, 0, 0);
    f.has_cpu = false;
    sch_as_decide(&p, &f, &m, 3000, &d);
    assert_int_equal(d.replicas, 4);
    assert_int_equal(d.recommended, 0);
}

static void test_largest_target_wins(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 10, 50);
    p.memory_percent = 80;
    p.has_metric = true;
    p.metric_target = 10;
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    struct sch_as_figures f = cpu_figures(2, 2, 50);
    f.has_memory = true;
    f.memory_percent = 120; /* calls for 3 */
    f.has_metric = true;
    f.metric = 25; /* calls for 5 */
    sch_as_decide(&p, &f, &m, 1000, &d);
    assert_int_equal(d.replicas, 5);
    assert_string_equal(d.reason, "metric 25 against target 10 over 2s: 2 -> 5");
    /* Scale-down needs every target low. */
    f = cpu_figures(5, 5, 10);
    f.has_memory = true;
    f.memory_percent = 80;
    f.has_metric = true;
    f.metric = 1;
    sch_as_decide(&p, &f, &m, 2000, &d);
    assert_int_equal(d.recommended, 5);
    assert_int_equal(d.scale_down_in_ms, 0);
}

static void test_idle_to_zero(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(0, 4, 50);
    p.idle_after_ms = 300000;
    p.scale_down_after_ms = 3600000; /* only idleness changes the count here */
    p.has_metric = true;
    p.metric_target = 5;
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    struct sch_as_figures f = cpu_figures(2, 2, 0.5);
    f.has_metric = true;
    f.metric = 0;
    sch_as_decide(&p, &f, &m, 1000, &d);
    assert_int_equal(d.replicas, 2);
    assert_int_equal(d.idle_in_ms, 300000);
    /* A request in the metric interrupts the idle period. */
    f.metric = 1;
    sch_as_decide(&p, &f, &m, 100000, &d);
    assert_int_equal(d.idle_in_ms, 0);
    f.metric = 0;
    sch_as_decide(&p, &f, &m, 200000, &d);
    sch_as_decide(&p, &f, &m, 499999, &d);
    assert_int_equal(d.replicas, 2);
    sch_as_decide(&p, &f, &m, 500000, &d);
    assert_int_equal(d.replicas, 0);
    assert_string_equal(d.reason, "idle for 5m: 2 -> 0");
    /* At zero it stays until it is scaled or applied. */
    f = cpu_figures(0, 0, 0);
    f.has_cpu = false;
    sch_as_decide(&p, &f, &m, 600000, &d);
    assert_int_equal(d.replicas, 0);
    /* One busy replica is not idle even if the average is low. */
    f = cpu_figures(3, 3, 1);
    f.cpu_max_percent = 3;
    f.has_metric = true;
    sch_as_decide(&p, &f, &m, 700000, &d);
    assert_int_equal(d.idle_in_ms, 0);
}

/* Replicas held at their CPU quota (the request) show at most 100% however much load
 * waits: scale-up takes the largest step instead of doubling at a time. */
static void test_saturated_takes_the_largest_step(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 20, 50);
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    struct sch_as_figures f = cpu_figures(1, 1, 99);
    sch_as_decide(&p, &f, &m, 1000, &d);
    assert_int_equal(d.replicas, 5);
    assert_string_equal(d.reason, "cpu 99% of target 50% (at its quota) over 2s: 1 -> 5");
    f = cpu_figures(5, 5, 98);
    sch_as_decide(&p, &f, &m, 2000, &d);
    assert_int_equal(d.replicas, 10);
    /* Below the quota the figure is the load: proportional again. */
    f = cpu_figures(10, 10, 60);
    sch_as_decide(&p, &f, &m, 3000, &d);
    assert_int_equal(d.replicas, 12);
    /* A load that just began: the span still averages it down, the last interval shows
     * the quota. */
    struct sch_as_memory m3 = {0};
    f = cpu_figures(1, 1, 70);
    f.cpu_last_percent = 100;
    sch_as_decide(&p, &f, &m3, 1000, &d);
    assert_int_equal(d.replicas, 5);
    /* A target at the quota itself is only ever proportional. */
    struct sch_as_policy high = cpu_policy(1, 20, 95);
    struct sch_as_memory m2 = {0};
    f = cpu_figures(2, 2, 100);
    sch_as_decide(&high, &f, &m2, 1000, &d);
    assert_int_equal(d.replicas, 2);
}

static void test_bounds_and_manual_scale(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(2, 4, 50);
    struct sch_as_memory m = {0};
    struct sch_as_decision d;
    struct sch_as_figures f = cpu_figures(1, 1, 50);
    sch_as_decide(&p, &f, &m, 1000, &d);
    assert_int_equal(d.replicas, 2);
    assert_string_equal(d.reason, "below min 2: 1 -> 2");
    f = cpu_figures(7, 7, 50);
    sch_as_decide(&p, &f, &m, 2000, &d);
    assert_int_equal(d.replicas, 4);
    /* A manual scale inside the bounds starts the low period anew. */
    f = cpu_figures(4, 4, 10);
    sch_as_decide(&p, &f, &m, 3000, &d);
    assert_int_equal(d.scale_down_in_ms, 30000);
    f = cpu_figures(3, 3, 10);
    sch_as_decide(&p, &f, &m, 20000, &d);
    assert_int_equal(d.scale_down_in_ms, 30000);
    sch_as_decide(&p, &f, &m, 50000, &d);
    assert_int_equal(d.replicas, 2);
}

/* Recorded heartbeats of one replica (cpu request 100m, quota-bound busy loop from t=10s)
 * replayed through the window and the decision, as the leader does every half second. */
static void test_replay_burst(void **state)
{
    (void)state;
    struct sch_as_policy p = cpu_policy(1, 4, 50);
    struct sch_as_memory m = {0};
    struct sch_as_window w = {0};
    uint64_t cpu = 0;
    uint64_t scaled_at = 0;
    for (uint64_t t = 1000; t <= 20000; t += 1000) {
        /* Idle at 1 ms per second until 10 s, then 100 ms per second (100m quota). */
        cpu += t <= 10000 ? 1 * MS_NS : 100 * MS_NS;
        struct sch_as_sample s = {t + 7, cpu, 4 << 20};
        sch_as_window_add(&w, &s);
        double mc;
        uint64_t span;
        if (!sch_as_window_cpu(&w, &mc, &span))
            continue;
        struct sch_as_figures f = cpu_figures(1, 1, mc / 100.0 * 100.0);
        f.span_ms = span;
        struct sch_as_decision d;
        sch_as_decide(&p, &f, &m, t, &d);
        if (d.replicas != 1) {
            scaled_at = t;
            /* Held at its quota: the largest step, bounded by max. */
            assert_int_equal(d.replicas, 4);
            break;
        }
    }
    /* The second sample with load gives a full window. */
    assert_int_equal(scaled_at, 12000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_rate),
        cmocka_unit_test(test_scale_up_at_once_and_bounded),
        cmocka_unit_test(test_saturated_takes_the_largest_step),
        cmocka_unit_test(test_tolerance),
        cmocka_unit_test(test_scale_down_waits),
        cmocka_unit_test(test_not_ready_replicas),
        cmocka_unit_test(test_largest_target_wins),
        cmocka_unit_test(test_idle_to_zero),
        cmocka_unit_test(test_bounds_and_manual_scale),
        cmocka_unit_test(test_replay_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
