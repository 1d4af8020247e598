/* Unit tests of reconciliation against a real state machine: placement of new replicas,
 * idempotence, scale-down order, rolling updates that never drop the ready count, a
 * crash-looping generation that halts the rollout, unschedulable workloads, nodes under
 * StoragePressure, and the state rules it relies on (scaling keeps the generation, stopped
 * replicas go, lost ones are not revived). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "proto/spec_pb.h"
#include "scheduler/state/fsm.h"
#include "scheduler/fleet/reconcile.h"
#include "state_fixture.h"

static uint32_t counter_random(void *data)
{
    uint32_t *n = data;
    return ++*n;
}

static void register_node_in(struct sch_fsm *fsm, const char *name, const char *cloud, double cost,
                             int64_t cpu, int64_t mem);

static void register_node(struct sch_fsm *fsm, const char *name, int64_t cpu, int64_t mem)
{
    register_node_in(fsm, name, "private", 0, cpu, mem);
}

/* Applies workload "web" with the given replicas, env VERSION and memory. */
static void apply_web(struct sch_fsm *fsm, uint32_t replicas, const char *version, int64_t mem)
{
    struct gy_spec spec;
    gy_spec_init(&spec);
    spec.name = strdup("web");
    spec.image = strdup("busybox");
    spec.replicas = replicas;
    spec.resources.cpu_millis = 100;
    spec.resources.memory_bytes = mem;
    spec.env = calloc(1, sizeof(*spec.env));
    spec.env[0].name = strdup("VERSION");
    spec.env[0].value = strdup(version);
    spec.n_env = 1;
    spec.update.max_surge = 1;
    spec.update.max_unavailable = 0;
    gt_apply_spec(fsm, &spec);
}

/* Plans and applies one reconcile pass; returns placed + stopped. */
static size_t reconcile_once(struct sch_fsm *fsm, uint32_t *rnd, struct sch_reconcile_plan *out)
{
    struct sch_reconcile_plan plan;
    struct gy_error err;
    /* As the leader does: only the workloads the state machine marked since the last
     * pass (all of them after node changes). */
    char **names;
    size_t n;
    bool all;
    sch_fsm_dirty_take(fsm, &names, &n, &all);
    int rc = sch_reconcile_plan(fsm, all ? NULL : (const char *const *)names, n, 1000,
                                counter_random, rnd, &plan, &err);
    gt_names_free(names, n);
    if (rc != 0)
        fail_msg("plan: %s", err.msg);
    if (plan.command != NULL)
        gt_execute(fsm, plan.command);
    size_t changes = plan.placed + plan.stopped;
    if (out != NULL)
        *out = plan;
    sch_reconcile_plan_free(&plan);
    return changes;
}

static int64_t count(struct sch_fsm *fsm, const char *sql)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fsm->db, sql, -1, &q, NULL), SQLITE_OK);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    return n;
}

/* Agents report: every pending replica runs; ready per the flag. Stopping replicas are
 * reported stopped. */
static void agents_report(struct sch_fsm *fsm, bool ready, const char *reason_for_gen2)
{
    sqlite3_stmt *q;
    assert_int_equal(
        sqlite3_prepare_v2(fsm->db, "SELECT id, state, generation FROM replicas", -1, &q, NULL),
        SQLITE_OK);
    Gantry__ReplicaStatus *st[256];
    Gantry__ReplicaStatus *ptrs[256];
    size_t n = 0;
    while (sqlite3_step(q) == SQLITE_ROW && n < 256) {
        int state = sqlite3_column_int(q, 1);
        st[n] = calloc(1, sizeof(Gantry__ReplicaStatus));
        gantry__replica_status__init(st[n]);
        st[n]->replica_id = strdup((const char *)sqlite3_column_text(q, 0));
        bool gen2 = sqlite3_column_int(q, 2) == 2;
        if (state == GANTRY__REPLICA_STATE__REPLICA_STOPPING) {
            st[n]->state = GANTRY__REPLICA_STATE__REPLICA_STOPPED;
        } else {
            st[n]->state = GANTRY__REPLICA_STATE__REPLICA_RUNNING;
            st[n]->ready = ready && !(gen2 && reason_for_gen2 != NULL);
            st[n]->reason = strdup(gen2 && reason_for_gen2 ? reason_for_gen2 : "running");
        }
        ptrs[n] = st[n];
        n++;
    }
    sqlite3_finalize(q);
    gt_update_replicas(fsm, ptrs, n);
    for (size_t i = 0; i < n; i++) {
        free(st[i]->replica_id);
        if (st[i]->reason != protobuf_c_empty_string)
            free(st[i]->reason);
        free(st[i]);
    }
}

static int setup(void **state)
{
    gt_fsm_setup(state);
    register_node(*state, "n1", 4000, INT64_C(4) << 30);
    register_node(*state, "n2", 4000, INT64_C(4) << 30);
    register_node(*state, "n3", 4000, INT64_C(4) << 30);
    return 0;
}

static void test_places_and_is_idempotent(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 6, "v1", 64 << 20);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 6);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1'"), 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n2'"), 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n3'"), 2);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
    agents_report(fsm, true, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
}

static void test_scale_keeps_generation_and_stops_newest(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 4, "v1", 64 << 20);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_web(fsm, 2, "v1", 64 << 20);
    assert_int_equal(count(fsm, "SELECT generation FROM workloads WHERE name = 'web'"), 1);
    int64_t newest = count(fsm, "SELECT MAX(rowid) FROM replicas");
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 3"), 2);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT state FROM replicas WHERE rowid = %lld", (long long)newest);
    assert_int_equal(count(fsm, sql), GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    agents_report(fsm, true, NULL);
    /* Stopped replicas leave the state. */
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), 2);
}

static void test_rolling_update_keeps_ready_count(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 4, "v1", 64 << 20);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_web(fsm, 4, "v2", 64 << 20);
    assert_int_equal(count(fsm, "SELECT generation FROM workloads"), 2);
    for (int step = 0; step < 20; step++) {
        reconcile_once(fsm, &rnd, NULL);
        /* Before agents act, stopping replicas still serve; the ready count that matters is
         * of running, ready replicas not being stopped. */
        int64_t ready = count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready");
        assert_true(ready >= 4);
        agents_report(fsm, true, NULL);
        ready = count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready");
        assert_true(ready >= 4);
        assert_true(count(fsm, "SELECT COUNT(*) FROM replicas") <= 5); /* max_surge 1 */
    }
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE generation = 2"), 4);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), 4);
}

static void test_crash_loop_halts_rollout(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 3, "v1", 64 << 20);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_web(fsm, 3, "broken", 64 << 20);
    for (int step = 0; step < 10; step++) {
        reconcile_once(fsm, &rnd, NULL);
        agents_report(fsm, true, "crash loop: exited with code 1; restarting in 4s");
    }
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE generation = 1 AND ready"), 3);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE generation = 2"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions WHERE kind = 'RolloutHalted'"), 1);
}

static void test_unschedulable_condition(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 2, "v1", INT64_C(8) << 30);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fsm->db,
                                        "SELECT message FROM conditions WHERE kind = "
                                        "'Unschedulable'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0),
                        "2 of 2 replicas cannot be placed: 0/3 nodes available: 3 insufficient "
                        "memory (needs 8Gi, most free 4Gi)");
    sqlite3_finalize(q);
    /* Fixed by a smaller request: the condition clears. */
    apply_web(fsm, 2, "v1", 64 << 20);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions"), 0);
}

/* Copies the message of web's Unschedulable condition into buf ("" when there is none). */
static void unschedulable_message(struct sch_fsm *fsm, char *buf, size_t len)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fsm->db,
                                        "SELECT message FROM conditions WHERE workload = 'web'"
                                        " AND kind = 'Unschedulable'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    snprintf(buf, len, "%s",
             sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
}

/* A node whose agent's database refuses writes (StoragePressure) gets no new replica: a
 * scale-up goes to the other nodes and the replica already there stays; with no other node
 * the workload waits, Unschedulable for the condition; once the condition clears (a node
 * change: every workload is looked at again) the node is placed on again. */
static void test_storage_pressure_keeps_new_replicas_off(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 3, "v1", 64 << 20);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 3);
    agents_report(fsm, true, NULL);
    gt_set_node_condition(fsm, "n1", SCH_NODE_CONDITION_STORAGE,
                          "agent database: disk full at /d/agent.db");
    gt_scale(fsm, "web", 6, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 3);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1'"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1' AND state = 2"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node IN ('n2', 'n3')"), 5);
    agents_report(fsm, true, NULL);

    gt_set_node_state(fsm, "n2", GANTRY__NODE_STATE__NODE_CORDONED);
    gt_set_node_state(fsm, "n3", GANTRY__NODE_STATE__NODE_CORDONED);
    gt_scale(fsm, "web", 7, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
    char message[512];
    unschedulable_message(fsm, message, sizeof(message));
    assert_string_equal(message, "1 of 1 replicas cannot be placed: 0/3 nodes available: 1 under "
                                 "StoragePressure (the agent's database refuses writes), 2 not "
                                 "ready or cordoned");

    gt_set_node_condition(fsm, "n1", SCH_NODE_CONDITION_STORAGE, "");
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1'"), 2);
    unschedulable_message(fsm, message, sizeof(message));
    assert_string_equal(message, "");
}

static void test_lost_replicas_are_replaced_not_revived(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 3, "v1", 64 << 20);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    /* Node n1 goes down: its replica is lost and replaced elsewhere. */
    assert_int_equal(sqlite3_exec(fsm->db,
                                  "UPDATE nodes SET state = 1 WHERE name = 'n1';"
                                  "UPDATE replicas SET state = 7 WHERE node = 'n1'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state != 7 AND node = 'n1'"),
                     0);
    /* A late report from n1 that its replica runs does not revive it. */
    agents_report(fsm, true, NULL);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 7"), 1);
}

/* A node in a cloud, with a cost per hour. */
static void register_node_in(struct sch_fsm *fsm, const char *name, const char *cloud, double cost,
                             int64_t cpu, int64_t mem)
{
    Gantry__NodeInfo node;
    Gantry__Resources cap;
    gt_node_info(&node, &cap, name, cloud, cpu, mem);
    node.zone = (char *)"z";
    node.cost_per_hour = cost;
    gt_register(fsm, &node);
}

/* Applies "web" preferring the listed clouds in order. */
static void apply_web_in(struct sch_fsm *fsm, uint32_t replicas, int64_t mem, const char *first,
                         const char *second)
{
    struct gy_spec spec;
    gy_spec_init(&spec);
    spec.name = strdup("web");
    spec.image = strdup("busybox");
    spec.replicas = replicas;
    spec.resources.cpu_millis = 100;
    spec.resources.memory_bytes = mem;
    spec.placement.clouds.items = calloc(2, sizeof(char *));
    spec.placement.clouds.items[0] = strdup(first);
    spec.placement.clouds.n = 1;
    if (second != NULL) {
        spec.placement.clouds.items[1] = strdup(second);
        spec.placement.clouds.n = 2;
    }
    gt_apply_spec(fsm, &spec);
}

static void move_web(struct sch_fsm *fsm, const char *to)
{
    Gantry__MoveWorkload move = GANTRY__MOVE_WORKLOAD__INIT;
    move.name = (char *)"web";
    move.to = (char *)to;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_MOVE_WORKLOAD);
    cmd.move_workload = &move;
    gt_execute(fsm, &cmd);
}

#define LIVE "state NOT IN (3, 4, 7)"

/* Bursting into the next cloud when the first is full; scale-down removes the replicas
 * of the least preferred cloud first, the most expensive node first. */
static void test_burst_and_scale_down_by_cloud(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    register_node_in(fsm, "p1", "public", 2.0, 4000, INT64_C(4) << 30);
    register_node_in(fsm, "p2", "public", 1.0, 4000, INT64_C(4) << 30);
    /* n1..n3 (private) hold 2 replicas of 2Gi each: the 7th and 8th burst. */
    apply_web_in(fsm, 8, INT64_C(2) << 30, "private", "public");
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 8);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node LIKE 'p%'"), 2);
    agents_report(fsm, true, NULL);
    gt_scale(fsm, "web", 7, NULL);
    reconcile_once(fsm, &rnd, NULL);
    /* The most expensive public node goes first. */
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'p1' AND " LIVE), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'p2' AND " LIVE), 1);
    gt_scale(fsm, "web", 5, NULL);
    reconcile_once(fsm, &rnd, NULL);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node LIKE 'p%' AND " LIVE), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE " LIVE), 5);
}

/* A drain replaces a node's replicas make-before-break, then cordons the node. */
static void test_drain_is_make_before_break(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_web(fsm, 3, "v1", 64 << 20);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    gt_set_node_state(fsm, "n1", GANTRY__NODE_STATE__NODE_DRAINING);
    /* First a replacement elsewhere; the replica on n1 keeps serving. */
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1' AND state = 2"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE " LIVE), 4);
    /* Once it is ready, the one on n1 stops. */
    agents_report(fsm, true, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1' AND state = 3"),
                     1);
    agents_report(fsm, true, NULL);
    reconcile_once(fsm, &rnd, NULL);
    /* Empty: cordoned, and it takes nothing new. */
    assert_int_equal(count(fsm, "SELECT state FROM nodes WHERE name = 'n1'"),
                     GANTRY__NODE_STATE__NODE_CORDONED);
    gt_scale(fsm, "web", 6, NULL);
    reconcile_once(fsm, &rnd, NULL);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node = 'n1' AND " LIVE), 0);
}

/* A move replaces every replica in the target cloud, never dropping the ready count, and
 * ends with a summary; a move to a cloud without room stops and says why. */
static void test_move_between_clouds(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    register_node_in(fsm, "p1", "public", 1.0, 4000, INT64_C(4) << 30);
    register_node_in(fsm, "p2", "public", 1.0, 4000, INT64_C(4) << 30);
    apply_web_in(fsm, 3, 64 << 20, "private", NULL);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    move_web(fsm, "public");
    for (int step = 0; step < 20; step++) {
        reconcile_once(fsm, &rnd, NULL);
        assert_true(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready") >= 3);
        agents_report(fsm, true, NULL);
        if (count(fsm, "SELECT COUNT(*) FROM conditions WHERE kind = 'Moved'") == 1)
            break;
    }
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions WHERE kind = 'Moving'"), 0);
    assert_int_equal(count(fsm,
                           "SELECT COUNT(*) FROM conditions WHERE kind = 'Moved' AND message LIKE"
                           " 'to public: 3 replicas in %'"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE node LIKE 'p%' AND " LIVE), 3);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE " LIVE), 3);

    /* "tiny" has no room for a replica: the move stops at once and nothing is stopped. */
    register_node_in(fsm, "t1", "tiny", 0.5, 50, INT64_C(1) << 20);
    move_web(fsm, "tiny");
    reconcile_once(fsm, &rnd, NULL);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions WHERE kind = 'MoveStopped' AND"
                                " message LIKE 'move to tiny stopped: %insufficient%'"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready"), 3);
    agents_report(fsm, true, NULL);
    reconcile_once(fsm, &rnd, NULL);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready"), 3);
}

/* Room freed by replicas that stop marks no workload: a workload waiting for it is found by
 * sch_reconcile_waiting and placed once the room is there. */
static void test_waiting_workload_placed_when_room_frees(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    /* web fills the three nodes (2 x 2Gi of 4Gi each), then scales down to 0. */
    apply_web(fsm, 6, "v1", INT64_C(2) << 30);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 6);
    agents_report(fsm, true, NULL);
    gt_scale(fsm, "web", 0, NULL);
    reconcile_once(fsm, &rnd, NULL); /* all stopping, and still holding their memory */
    /* "big" needs 4Gi: no node has it while the stopping replicas hold theirs. */
    struct gy_spec spec;
    gy_spec_init(&spec);
    spec.name = strdup("big");
    spec.image = strdup("busybox");
    spec.replicas = 1;
    spec.resources.memory_bytes = INT64_C(4) << 30;
    gt_apply_spec(fsm, &spec);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions WHERE workload = 'big'"), 1);
    /* The stops are reported: nothing is marked for a pass. */
    agents_report(fsm, true, NULL);
    gt_dirty_drop(fsm);
    /* The leader's look at the waiting workloads places it. */
    char **waiting;
    size_t n_waiting = sch_reconcile_waiting(fsm, &waiting);
    assert_int_equal(n_waiting, 1);
    assert_string_equal(waiting[0], "big");
    struct sch_reconcile_plan plan;
    struct gy_error err;
    assert_int_equal(sch_reconcile_plan(fsm, (const char *const *)waiting, n_waiting, 2000,
                                        counter_random, &rnd, &plan, &err),
                     0);
    assert_int_equal(plan.placed, 1);
    gt_execute(fsm, plan.command);
    sch_reconcile_plan_free(&plan);
    gt_names_free(waiting, n_waiting);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions WHERE workload = 'big'"), 0);
}

/* ---------------------------------------------------------------------------------------
 * Host ports */

/* Applies name with one port, container port 8080 published on host_port (0: none) over
 * protocol, env VERSION and the update strategy given. */
static void apply_ported(struct sch_fsm *fsm, const char *name, uint32_t replicas,
                         const char *version, uint32_t host_port, enum gy_protocol protocol,
                         uint32_t surge, uint32_t unavailable)
{
    struct gy_spec spec;
    gy_spec_init(&spec);
    spec.name = strdup(name);
    spec.image = strdup("busybox");
    spec.replicas = replicas;
    spec.env = calloc(1, sizeof(*spec.env));
    spec.env[0].name = strdup("VERSION");
    spec.env[0].value = strdup(version);
    spec.n_env = 1;
    spec.ports = calloc(1, sizeof(*spec.ports));
    spec.ports[0].container_port = 8080;
    spec.ports[0].protocol = protocol;
    spec.ports[0].host_port = host_port;
    spec.n_ports = 1;
    spec.update.max_surge = surge;
    spec.update.max_unavailable = unavailable;
    gt_apply_spec(fsm, &spec);
}

static void message_of(struct sch_fsm *fsm, const char *workload, char *buf, size_t len)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fsm->db,
                                        "SELECT message FROM conditions WHERE workload = ?"
                                        " AND kind = 'Unschedulable'",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(q, 1, workload, -1, SQLITE_STATIC);
    snprintf(buf, len, "%s",
             sqlite3_step(q) == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
}

/* The most replicas (any workload, any state: stopping ones still hold the port) on one
 * node. */
#define MOST_ON_A_NODE "SELECT MAX(c) FROM (SELECT COUNT(*) AS c FROM replicas GROUP BY node)"

static int setup_one_node(void **state)
{
    gt_fsm_setup(state);
    register_node(*state, "n1", 4000, INT64_C(4) << 30);
    return 0;
}

/* Two replicas wanting host port 8080 on a one-node cluster: one runs, the other waits with
 * the port named; another workload wanting the port waits too, and the port over udp is
 * another port. */
static void test_host_port_conflicts(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    char message[1024];
    apply_ported(fsm, "web", 2, "v1", 8080, GY_PROTOCOL_TCP, 1, 0);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 1);
    message_of(fsm, "web", message, sizeof(message));
    assert_string_equal(message, "1 of 2 replicas cannot be placed: 0/1 nodes available: 1 "
                                 "already run a replica of the workload on host port 8080/tcp");
    agents_report(fsm, true, NULL);
    apply_ported(fsm, "api", 1, "v1", 8080, GY_PROTOCOL_TCP, 1, 0);
    apply_ported(fsm, "dns", 1, "v1", 8080, GY_PROTOCOL_UDP, 1, 0);
    apply_ported(fsm, "plain", 3, "v1", 0, GY_PROTOCOL_TCP, 1, 0);
    /* dns (8080/udp) and plain (no host port, three on the node) are placed. */
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 4);
    message_of(fsm, "api", message, sizeof(message));
    assert_string_equal(message, "1 of 1 replicas cannot be placed: 0/1 nodes available: 1 with "
                                 "host port 8080/tcp in use");
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE workload = 'dns'"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE workload = 'plain'"), 3);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE workload = 'web'"), 1);
    /* Nothing changes on the next pass. */
    agents_report(fsm, true, NULL);
    gt_scale(fsm, "plain", 3, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
    /* web gives its port up: api takes it. */
    gt_scale(fsm, "web", 0, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 1); /* the stop */
    agents_report(fsm, true, NULL);
    gt_scale(fsm, "api", 1, NULL);
    reconcile_once(fsm, &rnd, NULL);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE workload = 'api'"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions"), 0);
}

/* Two workloads wanting one host port in the same pass, on three nodes: never two holders
 * of the port on a node. Workloads are planned in name order. */
static void test_host_port_one_pass(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    char message[1024];
    apply_ported(fsm, "web", 2, "v1", 80, GY_PROTOCOL_TCP, 1, 0);
    apply_ported(fsm, "api", 2, "v1", 80, GY_PROTOCOL_TCP, 1, 0);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 3);
    assert_int_equal(count(fsm, MOST_ON_A_NODE), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE workload = 'api'"), 2);
    message_of(fsm, "web", message, sizeof(message));
    assert_string_equal(message, "1 of 2 replicas cannot be placed: 0/3 nodes available: 2 with "
                                 "host port 80/tcp in use, 1 already run a replica of the "
                                 "workload on host port 80/tcp");
    agents_report(fsm, true, NULL);
    assert_int_equal(reconcile_once(fsm, &rnd, NULL), 0);
    message_of(fsm, "api", message, sizeof(message));
    assert_string_equal(message, "");
}

/* Steps a rolling update to its end: at every point no node has two replicas (a stopping
 * one still holds the port), at least min_ready replicas are ready, no Unschedulable
 * condition is raised, and at the end the generation's replicas all run. */
static void roll_with_host_port(struct sch_fsm *fsm, uint32_t *rnd, int64_t replicas,
                                int64_t generation, int64_t min_ready)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM replicas WHERE generation = %lld AND state = 2 AND ready",
             (long long)generation);
    int step = 0;
    for (; step < 40 &&
           (count(fsm, sql) < replicas || count(fsm, "SELECT COUNT(*) FROM replicas") > replicas);
         step++) {
        reconcile_once(fsm, rnd, NULL);
        assert_true(count(fsm, MOST_ON_A_NODE) <= 1);
        assert_true(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready") >=
                    min_ready);
        assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions"), 0);
        agents_report(fsm, true, NULL);
        assert_true(count(fsm, MOST_ON_A_NODE) <= 1);
    }
    assert_true(step < 40);
    assert_int_equal(count(fsm, sql), replicas);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), replicas);
}

/* One node, one replica, the default strategy (max_surge 1, max_unavailable 0): the new
 * replica cannot surge onto the node, so the old one stops first and the new one takes its
 * node; the update ends. So does one that adds a host port, or changes it. */
static void test_host_port_update_on_one_node(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_ported(fsm, "web", 1, "v1", 8080, GY_PROTOCOL_TCP, 1, 0);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_ported(fsm, "web", 1, "v2", 8080, GY_PROTOCOL_TCP, 1, 0);
    /* The first step stops the old replica, saying why, and places nothing. */
    struct sch_reconcile_plan plan;
    reconcile_once(fsm, &rnd, &plan);
    assert_int_equal(plan.placed, 0);
    assert_int_equal(plan.stopped, 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 3 AND reason = "
                                "'replaced by generation 2, stopped first to free its host "
                                "ports'"),
                     1);
    /* While it stops, the new one waits for the node without being Unschedulable. */
    reconcile_once(fsm, &rnd, &plan);
    assert_int_equal(plan.placed + plan.stopped, 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions"), 0);
    roll_with_host_port(fsm, &rnd, 1, 2, 0);

    /* Generation 3 changes the host port, generation 4 removes it, 5 adds it back. */
    apply_ported(fsm, "web", 1, "v2", 9090, GY_PROTOCOL_TCP, 1, 0);
    roll_with_host_port(fsm, &rnd, 1, 3, 0);
    apply_ported(fsm, "web", 1, "v2", 0, GY_PROTOCOL_TCP, 1, 0);
    for (int step = 0; step < 4; step++) {
        reconcile_once(fsm, &rnd, NULL);
        agents_report(fsm, true, NULL);
    }
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE generation = 4"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), 1);
    apply_ported(fsm, "web", 1, "v2", 80, GY_PROTOCOL_UDP, 1, 0);
    roll_with_host_port(fsm, &rnd, 1, 5, 0);
}

/* Three nodes, three replicas with a host port: no node is free for a surge replica, so the
 * update replaces one replica at a time stop-first, never more than one below the desired
 * count. With max_unavailable 2, two at a time. */
static void test_host_port_update_on_full_nodes(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_ported(fsm, "web", 3, "v1", 8080, GY_PROTOCOL_TCP, 1, 0);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_ported(fsm, "web", 3, "v2", 8080, GY_PROTOCOL_TCP, 1, 0);
    struct sch_reconcile_plan plan;
    reconcile_once(fsm, &rnd, &plan);
    assert_int_equal(plan.stopped, 1);
    agents_report(fsm, true, NULL);
    roll_with_host_port(fsm, &rnd, 3, 2, 2);

    apply_ported(fsm, "web", 3, "v3", 8080, GY_PROTOCOL_TCP, 1, 2);
    reconcile_once(fsm, &rnd, &plan);
    assert_int_equal(plan.stopped, 1); /* one surge replica's worth is missing */
    agents_report(fsm, true, NULL);
    roll_with_host_port(fsm, &rnd, 3, 3, 1);
}

/* Three nodes, two replicas with a host port: the surge replica goes to the free node, and
 * the update stays make-before-break. */
static void test_host_port_update_with_a_spare_node(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_ported(fsm, "web", 2, "v1", 8080, GY_PROTOCOL_TCP, 1, 0);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_ported(fsm, "web", 2, "v2", 8080, GY_PROTOCOL_TCP, 1, 0);
    struct sch_reconcile_plan plan;
    reconcile_once(fsm, &rnd, &plan);
    assert_int_equal(plan.placed, 1);
    assert_int_equal(plan.stopped, 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE generation = 2 AND node IN"
                                " (SELECT node FROM replicas WHERE generation = 1)"),
                     0);
    agents_report(fsm, true, NULL);
    roll_with_host_port(fsm, &rnd, 2, 2, 2);
}

/* max_surge 0: old replicas stop ahead of their replacements, up to max_unavailable at a
 * time, and the update ends. */
static void test_update_without_surge(void **state)
{
    struct sch_fsm *fsm = *state;
    uint32_t rnd = 0;
    apply_ported(fsm, "web", 3, "v1", 0, GY_PROTOCOL_TCP, 0, 1);
    reconcile_once(fsm, &rnd, NULL);
    agents_report(fsm, true, NULL);
    apply_ported(fsm, "web", 3, "v2", 0, GY_PROTOCOL_TCP, 0, 1);
    int step = 0;
    for (; step < 40; step++) {
        reconcile_once(fsm, &rnd, NULL);
        assert_true(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 2 AND ready") >= 2);
        assert_true(count(fsm, "SELECT COUNT(*) FROM replicas WHERE " LIVE) <= 3);
        agents_report(fsm, true, NULL);
        if (count(fsm, "SELECT COUNT(*) FROM replicas WHERE generation = 2 AND ready") == 3)
            break;
    }
    assert_true(step < 40);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_host_port_conflicts, setup_one_node, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_host_port_one_pass, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_host_port_update_on_one_node, setup_one_node,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_host_port_update_on_full_nodes, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_host_port_update_with_a_spare_node, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_update_without_surge, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_places_and_is_idempotent, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_burst_and_scale_down_by_cloud, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_drain_is_make_before_break, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_move_between_clouds, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_scale_keeps_generation_and_stops_newest, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_rolling_update_keeps_ready_count, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_crash_loop_halts_rollout, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_unschedulable_condition, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_storage_pressure_keeps_new_replicas_off, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_waiting_workload_placed_when_room_frees, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_lost_replicas_are_replaced_not_revived, setup,
                                        gt_fsm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
