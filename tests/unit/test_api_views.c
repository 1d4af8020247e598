/* Unit tests of the views of the state that the API serves (scheduler/state/query_api.h):
 * each reads what the commands wrote, in the documented order, with the counts and
 * allocations derived from it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/state/fsm.h"
#include "scheduler/state/query_api.h"
#include "state_fixture.h"

/* Applies workload name asking for replicas of cpu_millis and 1 GiB each. */
static void apply(struct sch_fsm *fsm, const char *name, uint32_t replicas, int64_t cpu_millis)
{
    Gantry__Resources resources = GANTRY__RESOURCES__INIT;
    resources.cpu_millis = cpu_millis;
    resources.memory_bytes = 1ll << 30;
    Gantry__WorkloadSpec spec = GANTRY__WORKLOAD_SPEC__INIT;
    spec.name = (char *)name;
    spec.image = (char *)"busybox";
    spec.replicas = replicas;
    spec.resources = &resources;
    gt_apply(fsm, &spec);
}

static void report(struct sch_fsm *fsm, const char *id, Gantry__ReplicaState state, bool ready)
{
    Gantry__ReplicaStatus s = GANTRY__REPLICA_STATUS__INIT;
    s.replica_id = (char *)id;
    s.state = state;
    s.ready = ready;
    gt_update_replica(fsm, &s);
}

/* The fleet every test below reads: web (3 replicas of 500m on n1: one running and ready,
 * one running, one lost) and db (1 replica of 250m on n2, pending), on n1 (private) and
 * n2 (aws). */
static void fleet(struct sch_fsm *fsm)
{
    gt_register_node(fsm, "n1", "private", 4000, 8ll << 30);
    gt_register_node(fsm, "n2", "aws", 4000, 8ll << 30);
    apply(fsm, "web", 3, 500);
    apply(fsm, "db", 1, 250);
    gt_place(fsm, "web-1", "web", "n1");
    gt_place(fsm, "web-2", "web", "n1");
    gt_place(fsm, "web-3", "web", "n1");
    gt_place(fsm, "db-1", "db", "n2");
    report(fsm, "web-1", GANTRY__REPLICA_STATE__REPLICA_RUNNING, true);
    report(fsm, "web-2", GANTRY__REPLICA_STATE__REPLICA_RUNNING, false);
    report(fsm, "web-3", GANTRY__REPLICA_STATE__REPLICA_LOST, false);
}

/* What the callbacks saw: the keys in order, and the last view's figures. */
struct seen {
    char keys[512];
    struct sch_workload_view workload;
    struct sch_node_view nodes[4];
    size_t n_nodes;
    uint64_t last_seq;
};

static void seen_key(struct seen *s, const char *key)
{
    size_t used = strlen(s->keys);
    snprintf(s->keys + used, sizeof(s->keys) - used, "%s%s", used ? " " : "", key);
}

static void on_workload(void *data, const struct sch_workload_view *w)
{
    struct seen *s = data;
    seen_key(s, w->name);
    assert_non_null(w->spec);
    assert_true(w->spec_len > 0);
    s->workload = *w;
    s->workload.name = NULL;
    s->workload.spec = NULL;
}

static void test_workloads(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    struct seen s = {0};
    assert_int_equal(sch_view_workloads(fsm, NULL, on_workload, &s, &err), 0);
    fleet(fsm);
    assert_int_equal(sch_view_workloads(fsm, NULL, on_workload, &s, &err), 2);
    assert_string_equal(s.keys, "db web");
    assert_int_equal(s.workload.desired, 3);
    assert_int_equal(s.workload.replicas, 3);
    assert_int_equal(s.workload.running, 2);
    assert_int_equal(s.workload.ready, 1);
    assert_int_equal(s.workload.generation, 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sch_view_workloads(fsm, "db", on_workload, &s, &err), 1);
    assert_string_equal(s.keys, "db");
    assert_int_equal(s.workload.replicas, 1);
    assert_int_equal(s.workload.running, 0);
    assert_int_equal(sch_view_workloads(fsm, "nope", on_workload, &s, &err), 0);
}

static void on_condition(void *data, const struct sch_condition_view *c)
{
    seen_key(data, c->kind);
    seen_key(data, c->message);
}

static void report_condition(struct sch_fsm *fsm, const char *workload, const char *kind,
                             const char *message)
{
    Gantry__ReportCondition rc = GANTRY__REPORT_CONDITION__INIT;
    rc.workload = (char *)workload;
    rc.kind = (char *)kind;
    rc.message = (char *)message;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_REPORT_CONDITION);
    cmd.report_condition = &rc;
    gt_execute(fsm, &cmd);
}

static void test_conditions(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    fleet(fsm);
    report_condition(fsm, "web", "Unschedulable", "full");
    report_condition(fsm, "web", "Moving", "to aws");
    struct seen s = {0};
    assert_int_equal(sch_view_conditions(fsm, "web", on_condition, &s, &err), 2);
    assert_string_equal(s.keys, "Moving to aws Unschedulable full");
    memset(&s, 0, sizeof(s));
    assert_int_equal(sch_view_conditions(fsm, "db", on_condition, &s, &err), 0);
    /* A node's conditions are its own: none, then StoragePressure, then none again. */
    assert_int_equal(sch_view_node_conditions(fsm, "n1", on_condition, &s, &err), 0);
    gt_set_node_condition(fsm, "n1", SCH_NODE_CONDITION_STORAGE, "disk full");
    assert_int_equal(sch_view_node_conditions(fsm, "n1", on_condition, &s, &err), 1);
    assert_string_equal(s.keys, "StoragePressure disk full");
    assert_int_equal(sch_view_node_conditions(fsm, "n2", on_condition, &s, &err), 0);
    gt_set_node_condition(fsm, "n1", SCH_NODE_CONDITION_STORAGE, "");
    assert_int_equal(sch_view_node_conditions(fsm, "n1", on_condition, &s, &err), 0);
}

static void on_replica(void *data, const struct sch_replica_view *r)
{
    seen_key(data, r->id);
    seen_key(data, r->cloud);
}

static void test_replicas(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    fleet(fsm);
    struct seen s = {0};
    assert_int_equal(sch_view_replicas(fsm, NULL, on_replica, &s, &err), 4);
    assert_string_equal(s.keys, "db-1 aws web-1 private web-2 private web-3 private");
    memset(&s, 0, sizeof(s));
    assert_int_equal(sch_view_replicas(fsm, "db", on_replica, &s, &err), 1);
    assert_string_equal(s.keys, "db-1 aws");
    assert_int_equal(sch_view_replicas(fsm, "nope", on_replica, &s, &err), 0);
}

static void on_node(void *data, const struct sch_node_view *n)
{
    struct seen *s = data;
    seen_key(s, n->name);
    assert_true(s->n_nodes < 4);
    s->nodes[s->n_nodes] = *n;
    s->n_nodes++;
}

static void test_nodes_and_allocations(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    fleet(fsm);
    struct seen s = {0};
    assert_int_equal(sch_view_nodes(fsm, on_node, &s, &err), 2);
    assert_string_equal(s.keys, "n1 n2");
    /* n1: web-1 and web-2 hold resources, the lost web-3 does not. */
    assert_int_equal(s.nodes[0].active_replicas, 2);
    assert_int_equal(s.nodes[0].allocated_cpu_millis, 1000);
    assert_int_equal(s.nodes[0].allocated_memory_bytes, 2ll << 30);
    assert_int_equal(s.nodes[0].cpu_millis, 4000);
    assert_int_equal(s.nodes[1].active_replicas, 1);
    assert_int_equal(s.nodes[1].allocated_cpu_millis, 250);
    assert_int_equal(s.nodes[1].allocated_memory_bytes, 1ll << 30);
}

static void on_cloud(void *data, const char *cloud, int64_t ready_nodes)
{
    char count[24];
    snprintf(count, sizeof(count), "%s=%lld", cloud, (long long)ready_nodes);
    seen_key(data, count);
}

static void test_clouds_and_node_state(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    fleet(fsm);
    struct seen s = {0};
    assert_int_equal(sch_view_clouds(fsm, on_cloud, &s, &err), 2);
    assert_string_equal(s.keys, "aws=1 private=1");
    gt_set_node_state(fsm, "n2", GANTRY__NODE_STATE__NODE_CORDONED);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sch_view_clouds(fsm, on_cloud, &s, &err), 2);
    assert_string_equal(s.keys, "aws=0 private=1");
    assert_int_equal(sch_view_node_state(fsm, "n2", &err), GANTRY__NODE_STATE__NODE_CORDONED);
    assert_int_equal(sch_view_node_state(fsm, "n1", &err), GANTRY__NODE_STATE__NODE_READY);
    assert_int_equal(sch_view_node_state(fsm, "ghost", &err), -GY_ENOTFOUND);
    assert_string_equal(err.msg, "node \"ghost\" not found");
}

static void on_event(void *data, const struct sch_event_view *e)
{
    struct seen *s = data;
    assert_true(e->seq > s->last_seq);
    assert_non_null(e->kind);
    s->last_seq = e->seq;
}

static void test_events_page(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    fleet(fsm);
    struct seen s = {0};
    int all = sch_view_events(fsm, 0, 1000, on_event, &s, &err);
    assert_true(all > 2);
    assert_int_equal(s.last_seq, fsm->last_event);
    memset(&s, 0, sizeof(s));
    assert_int_equal(sch_view_events(fsm, 1, 2, on_event, &s, &err), 2);
    assert_int_equal(s.last_seq, 3);
    assert_int_equal(sch_view_events(fsm, fsm->last_event, 1000, on_event, &s, &err), 0);
}

static void test_server_addresses(void **state)
{
    struct sch_fsm *fsm = *state;
    struct gy_error err;
    char api[64], agent[8];
    assert_int_equal(
        sch_view_server_addresses(fsm, 2, api, sizeof(api), agent, sizeof(agent), &err), 0);
    assert_string_equal(api, "");
    assert_string_equal(agent, "");
    Gantry__SetServer set = GANTRY__SET_SERVER__INIT;
    set.id = 2;
    set.raft_address = (char *)"127.0.0.1:7711";
    set.api_address = (char *)"127.0.0.1:7710";
    set.agent_address = (char *)"127.0.0.1:7712";
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_SET_SERVER);
    cmd.set_server = &set;
    gt_execute(fsm, &cmd);
    assert_int_equal(
        sch_view_server_addresses(fsm, 2, api, sizeof(api), agent, sizeof(agent), &err), 1);
    assert_string_equal(api, "127.0.0.1:7710");
    /* A buffer too small keeps a terminated prefix. */
    assert_string_equal(agent, "127.0.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_workloads, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_conditions, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_replicas, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_and_allocations, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_clouds_and_node_state, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_events_page, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_server_addresses, gt_fsm_setup, gt_fsm_teardown),
    };
    gt_clock.time_ms = 1000;
    gt_clock.actor = "user:test";
    return cmocka_run_group_tests(tests, NULL, NULL);
}
