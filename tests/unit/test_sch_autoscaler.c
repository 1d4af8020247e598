/* Unit tests of the leader's autoscaler on a real state machine: heartbeat samples of
 * ready replicas become a scale command with its reason, metric probes go to one ready
 * replica at a time, top reports usage as shares of the requests, and stale samples or
 * replicas that are not ready carry no load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proto/spec_pb.h"
#include "scheduler/fleet/autoscaler.h"
#include "scheduler/state/fsm.h"
#include "state_fixture.h"

#define MS_NS 1000000ull

/* One node, n1, for every test. */
static int setup(void **state)
{
    gt_fsm_setup(state);
    gt_register_node(*state, "n1", "private", 4000, INT64_C(4) << 30);
    return 0;
}

/* web: cpu 100m, memory 64Mi, autoscale 1..4 at 50% cpu (or off), with a metric when
 * asked. */
static void apply_web_as(struct sch_fsm *fsm, bool metric, bool enabled)
{
    struct gy_spec spec;
    gy_spec_init(&spec);
    spec.name = strdup("web");
    spec.image = strdup("busybox");
    spec.replicas = 1;
    spec.resources.cpu_millis = 100;
    spec.resources.memory_bytes = 64 << 20;
    spec.autoscale.enabled = enabled;
    spec.autoscale.min = 1;
    spec.autoscale.max = 4;
    spec.autoscale.cpu_percent = 50;
    spec.autoscale.scale_down_after_ms = 30000;
    if (metric) {
        spec.autoscale.has_metric = true;
        spec.autoscale.metric.exec.items = calloc(2, sizeof(char *));
        spec.autoscale.metric.exec.items[0] = strdup("queue");
        spec.autoscale.metric.exec.n = 1;
        spec.autoscale.metric.target = 5;
    }
    gt_apply_spec(fsm, &spec);
}

/* Places replica id on n1 and reports it running, ready or not. */
static void apply_web(struct sch_fsm *fsm, bool metric)
{
    apply_web_as(fsm, metric, true);
}

static void replica(struct sch_fsm *fsm, const char *id, bool ready)
{
    gt_place(fsm, id, "web", "n1");
    Gantry__ReplicaStatus st = GANTRY__REPLICA_STATUS__INIT;
    st.replica_id = (char *)id;
    st.workload = (char *)"web";
    st.generation = 1;
    st.state = GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    st.ready = ready;
    gt_update_replica(fsm, &st);
}

/* A heartbeat with one sample per replica: cumulative cpu and memory. */
static void heartbeat(struct sch_autoscaler *as, uint64_t t, const char *const *ids,
                      const uint64_t *cpu_ns, size_t n, uint64_t now)
{
    Gantry__ContainerSample s[4], *ps[4];
    for (size_t i = 0; i < n; i++) {
        gantry__container_sample__init(&s[i]);
        s[i].replica_id = (char *)ids[i];
        s[i].cpu_usage_ns = cpu_ns[i];
        s[i].memory_bytes = 32 << 20;
        ps[i] = &s[i];
    }
    Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
    hb.time_ms = t;
    hb.samples = ps;
    hb.n_samples = n;
    sch_autoscaler_samples(as, &hb, now);
}

/* One evaluation as the leader runs it: the state machine's changed workloads first. */
static int plan_now(struct sch_autoscaler *as, struct sch_fsm *fsm, uint64_t now_ms,
                    struct sch_autoscale_plan *plan, struct gy_error *err)
{
    char **names;
    size_t n;
    bool all;
    sch_fsm_dirty_take(fsm, &names, &n, &all);
    sch_autoscaler_changed(as, names, n, all);
    gt_names_free(names, n);
    return sch_autoscaler_plan(as, fsm, now_ms, 99, plan, err);
}

static void test_samples_become_a_scale_command(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_web(fsm, false);
    replica(fsm, "web-1", true);
    replica(fsm, "web-2", false); /* starting: no load of its own */
    struct sch_autoscaler *as = sch_autoscaler_new();
    const char *ids[] = {"web-1", "web-2"};
    /* web-1 at 90m (90% of its request, below its quota) for 2 s; web-2 idle. */
    uint64_t c0[] = {0, 0}, c1[] = {90 * MS_NS, 0}, c2[] = {180 * MS_NS, 0};
    heartbeat(as, 5000, ids, c0, 2, 10000);
    heartbeat(as, 6000, ids, c1, 2, 11000);
    heartbeat(as, 7000, ids, c2, 2, 12000);
    struct sch_autoscale_plan plan;
    struct gy_error err;
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    /* One ready replica at 90% of a 50% target calls for 2; web-2 is not ready and
     * counts for nothing. */
    assert_non_null(plan.command);
    assert_int_equal(plan.command->batch->commands[0]->scale_workload->replicas, 2);
    sch_autoscale_plan_free(&plan);
    /* That scale was not committed: the count is still 1. Another ready replica, busy too:
     * 2 at 100% call for 4. */
    replica(fsm, "web-3", true);
    const char *ids3[] = {"web-1", "web-3"};
    uint64_t d0[] = {300 * MS_NS, 0}, d1[] = {400 * MS_NS, 100 * MS_NS},
             d2[] = {500 * MS_NS, 200 * MS_NS};
    heartbeat(as, 8000, ids3, d0, 2, 13000);
    heartbeat(as, 9000, ids3, d1, 2, 14000);
    heartbeat(as, 10000, ids3, d2, 2, 15000);
    assert_int_equal(plan_now(as, fsm, 15000, &plan, &err), 0);
    assert_non_null(plan.command);
    assert_int_equal(plan.scaled, 1);
    const Gantry__ScaleWorkload *sc = plan.command->batch->commands[0]->scale_workload;
    assert_string_equal(sc->name, "web");
    assert_string_equal(plan.command->batch->commands[0]->actor, "autoscaler");
    /* desired was 1 (apply), replicas were placed by hand: the count goes 1 -> 4. */
    assert_int_equal(sc->replicas, 4);
    assert_non_null(strstr(sc->reason, "cpu 100% of target 50%"));
    sch_autoscale_plan_free(&plan);

    /* top: per replica and per workload, as shares of the requests. */
    json_t *top = sch_autoscaler_top(as, fsm, "web", 15000, &err);
    assert_non_null(top);
    json_t *w = json_array_get(json_object_get(top, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "workload")), "web");
    assert_int_equal(json_array_size(json_object_get(w, "replicas")), 3);
    assert_int_equal(json_integer_value(json_object_get(w, "measured")), 3);
    assert_true(json_real_value(json_object_get(w, "memory_percent")) == 50.0);
    json_decref(top);

    /* Samples that stop coming go stale: no figures, no decision. */
    assert_int_equal(plan_now(as, fsm, 15000 + SCH_AUTOSCALE_STALE_MS + 1, &plan, &err), 0);
    assert_null(plan.command);
    json_t *live = sch_autoscaler_workload_json(as, "web", 21000);
    assert_non_null(live);
    assert_int_equal(json_integer_value(json_object_get(live, "ready_with_figures")), 0);
    json_decref(live);
    sch_autoscale_plan_free(&plan);
    sch_autoscaler_free(as);
}

static void test_metric_probes_take_turns(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_web(fsm, true);
    replica(fsm, "web-a", true);
    replica(fsm, "web-b", true);
    replica(fsm, "web-c", false);
    struct sch_autoscaler *as = sch_autoscaler_new();
    struct sch_autoscale_plan plan;
    struct gy_error err;
    const char *asked[2];
    uint64_t ids[2];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(plan_now(as, fsm, 1000 + k * 1000, &plan, &err), 0);
        assert_int_equal(plan.n_probes, 1);
        assert_string_equal(plan.probes[0].node, "n1");
        assert_string_equal(plan.probes[0].probe->exec[0], "queue");
        asked[k] = strcmp(plan.probes[0].probe->replica_id, "web-a") == 0 ? "a" : "b";
        ids[k] = plan.probes[0].probe->request_id;
        Gantry__MetricValue v = GANTRY__METRIC_VALUE__INIT;
        v.request_id = ids[k];
        v.value = 15;
        sch_autoscaler_metric(as, &v, 1000 + k * 1000 + 10);
        sch_autoscale_plan_free(&plan);
    }
    /* Only ready replicas are asked, in turn. */
    assert_string_not_equal(asked[0], asked[1]);
    /* 15 against 5 per replica, over the two ready ones: 6, bounded by max 4. */
    assert_int_equal(plan_now(as, fsm, 2600, &plan, &err), 0);
    assert_non_null(plan.command);
    assert_int_equal(plan.command->batch->commands[0]->scale_workload->replicas, 4);
    assert_non_null(strstr(plan.command->batch->commands[0]->scale_workload->reason,
                           "metric 15 against target 5"));
    sch_autoscale_plan_free(&plan);
    /* An answer with an error is kept for describe. */
    assert_int_equal(plan_now(as, fsm, 3600, &plan, &err), 0);
    assert_int_equal(plan.n_probes, 1);
    Gantry__MetricValue bad = GANTRY__METRIC_VALUE__INIT;
    bad.request_id = plan.probes[0].probe->request_id;
    bad.error = (char *)"exec queue: exit status 1";
    sch_autoscaler_metric(as, &bad, 3610);
    sch_autoscale_plan_free(&plan);
    json_t *live = sch_autoscaler_workload_json(as, "web", 3700);
    assert_string_equal(json_string_value(json_object_get(live, "metric_error")),
                        "exec queue: exit status 1");
    json_decref(live);
    sch_autoscaler_free(as);
}

/* An autoscaler that has seen web-1 use `millicores` for 2 s (samples at 5, 6, 7 s, taken
 * at 10, 11, 12 s). */
static struct sch_autoscaler *busy_web_1(uint64_t millicores)
{
    struct sch_autoscaler *as = sch_autoscaler_new();
    const char *ids[] = {"web-1"};
    for (uint64_t k = 0; k < 3; k++) {
        uint64_t cpu[] = {k * millicores * MS_NS};
        heartbeat(as, 5000 + k * 1000, ids, cpu, 1, 10000 + k * 1000);
    }
    return as;
}

/* `autoscale: off` in a new apply stops the autoscaler: busy replicas change nothing. */
static void test_autoscale_off(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_web(fsm, false);
    apply_web_as(fsm, false, false);
    replica(fsm, "web-1", true);
    struct sch_autoscaler *as = busy_web_1(100);
    struct sch_autoscale_plan plan;
    struct gy_error err;
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    assert_null(plan.command);
    assert_null(sch_autoscaler_workload_json(as, "web", 12000));
    sch_autoscale_plan_free(&plan);
    sch_autoscaler_free(as);
}

/* The memory share `top` shows for web, as a percent of its request (NAN when none). */
static double top_memory_percent(struct sch_autoscaler *as, struct sch_fsm *fsm)
{
    struct gy_error err;
    json_t *top = sch_autoscaler_top(as, fsm, "web", 12000, &err);
    assert_non_null(top);
    json_t *w = json_array_get(json_object_get(top, "items"), 0);
    json_t *m = json_object_get(w, "memory_percent");
    double v = json_is_real(m) ? json_real_value(m) : NAN;
    json_decref(top);
    return v;
}

/* Applies a spec as a client could send it: no autoscale block at all, and requests only
 * when res is given. */
static void apply_plain(struct sch_fsm *fsm, const char *name, const char *image,
                        Gantry__Resources *res)
{
    Gantry__WorkloadSpec spec = GANTRY__WORKLOAD_SPEC__INIT;
    spec.name = (char *)name;
    spec.image = (char *)image;
    spec.replicas = 1;
    spec.resources = res;
    gt_apply(fsm, &spec);
}

/* web with autoscaling off, web-1 ready and busy at millicores, evaluated once: nothing to
 * decide yet. */
static struct sch_autoscaler *unscaled_busy_web(struct sch_fsm *fsm, uint64_t millicores)
{
    apply_web_as(fsm, false, false);
    replica(fsm, "web-1", true);
    struct sch_autoscaler *as = busy_web_1(millicores);
    struct sch_autoscale_plan plan;
    struct gy_error err;
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    assert_null(plan.command);
    sch_autoscale_plan_free(&plan);
    return as;
}

/* Workloads that are not autoscaled are read only for their requests (their specs are not
 * unpacked): with autoscaling off, with no autoscale block at all, and with no resources
 * either; turned on later, the policy is read in full. */
static void test_unscaled_workloads_keep_their_requests(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_autoscaler *as = unscaled_busy_web(fsm, 100);
    struct sch_autoscale_plan plan;
    struct gy_error err;
    assert_null(sch_autoscaler_workload_json(as, "web", 12000));
    assert_true(top_memory_percent(as, fsm) == 50.0); /* 32 MiB of 64 MiB */

    /* A spec without an autoscale block (and other requests). */
    Gantry__Resources res = GANTRY__RESOURCES__INIT;
    res.cpu_millis = 200;
    res.memory_bytes = 128 << 20;
    apply_plain(fsm, "web", "busybox:2", &res);
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    sch_autoscale_plan_free(&plan);
    assert_null(sch_autoscaler_workload_json(as, "web", 12000));
    assert_true(top_memory_percent(as, fsm) == 25.0); /* 32 MiB of 128 MiB */

    /* No resources either: no share. */
    apply_plain(fsm, "web", "busybox:3", NULL);
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    sch_autoscale_plan_free(&plan);
    assert_true(isnan(top_memory_percent(as, fsm)));

    /* Turned on: the whole policy is read, and the load (at its quota) calls for the most. */
    apply_web(fsm, false);
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    assert_non_null(plan.command);
    assert_int_equal(plan.command->batch->commands[0]->scale_workload->replicas, 4);
    sch_autoscale_plan_free(&plan);
    json_t *live = sch_autoscaler_workload_json(as, "web", 12000);
    assert_non_null(live);
    json_decref(live);
    sch_autoscaler_free(as);
}

static void delete_workload(struct sch_fsm *fsm, const char *name)
{
    Gantry__DeleteWorkload del = GANTRY__DELETE_WORKLOAD__INIT;
    del.name = (char *)name;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_DELETE_WORKLOAD);
    cmd.delete_workload = &del;
    gt_execute(fsm, &cmd);
}

/* Many workloads, read as they change and in full scans, added and deleted in any order:
 * the autoscaled one among them is still found and evaluated. */
static void test_many_workloads(void **state)
{
    struct sch_fsm *fsm = *state;
    char name[32];
    for (int i = 0; i < 700; i++) {
        snprintf(name, sizeof(name), "w%d", (i * 7919) % 700);
        apply_plain(fsm, name, "busybox", NULL);
    }
    apply_web(fsm, false);
    replica(fsm, "web-1", true);
    struct sch_autoscaler *as = busy_web_1(90);
    struct sch_autoscale_plan plan;
    struct gy_error err;
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    assert_non_null(plan.command);
    sch_autoscale_plan_free(&plan);
    for (int i = 0; i < 700; i += 2) {
        snprintf(name, sizeof(name), "w%d", i);
        delete_workload(fsm, name);
    }
    assert_int_equal(plan_now(as, fsm, 12000, &plan, &err), 0);
    assert_non_null(plan.command);
    sch_autoscale_plan_free(&plan);
    /* A full scan (as after a leadership change) forgets the rest of the deleted ones. */
    for (int i = 1; i < 700; i += 2) {
        snprintf(name, sizeof(name), "w%d", i);
        delete_workload(fsm, name);
    }
    gt_dirty_drop(fsm);
    sch_autoscaler_changed(as, NULL, 0, true);
    assert_int_equal(sch_autoscaler_plan(as, fsm, 12000, 99, &plan, &err), 0);
    assert_non_null(plan.command);
    sch_autoscale_plan_free(&plan);
    json_t *live = sch_autoscaler_workload_json(as, "web", 12000);
    assert_non_null(live);
    json_decref(live);
    sch_autoscaler_free(as);
}

/* After its first evaluation the autoscaler reads again only the workloads the state
 * machine reports changed: a workload turned autoscaled is found through its change (and
 * not before it is reported), and a deleted one is forgotten. */
static void test_changes_are_read_again(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_autoscaler *as = unscaled_busy_web(fsm, 90);
    struct sch_autoscale_plan plan;
    struct gy_error err;

    apply_web(fsm, false);
    /* Not reported yet: the evaluation does not read the workloads again. */
    assert_int_equal(sch_autoscaler_plan(as, fsm, 12100, 99, &plan, &err), 0);
    assert_null(plan.command);
    assert_null(sch_autoscaler_workload_json(as, "web", 12100));
    sch_autoscale_plan_free(&plan);
    /* Reported: found, and its load calls for a second replica. */
    assert_int_equal(plan_now(as, fsm, 12200, &plan, &err), 0);
    assert_non_null(plan.command);
    assert_int_equal(plan.command->batch->commands[0]->scale_workload->replicas, 2);
    sch_autoscale_plan_free(&plan);
    json_t *live = sch_autoscaler_workload_json(as, "web", 12200);
    assert_non_null(live);
    json_decref(live);

    delete_workload(fsm, "web");
    assert_int_equal(plan_now(as, fsm, 12300, &plan, &err), 0);
    assert_null(plan.command);
    assert_null(sch_autoscaler_workload_json(as, "web", 12300));
    sch_autoscale_plan_free(&plan);
    sch_autoscaler_free(as);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_samples_become_a_scale_command, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_metric_probes_take_turns, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_autoscale_off, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_changes_are_read_again, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_many_workloads, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_unscaled_workloads_keep_their_requests, setup,
                                        gt_fsm_teardown),
    };
    gt_clock.time_ms = 1000;
    gt_clock.actor = "test";
    return cmocka_run_group_tests(tests, NULL, NULL);
}
