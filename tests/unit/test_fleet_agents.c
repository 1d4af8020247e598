/* Unit tests of the leader's bookkeeping of agents against a real state machine, with the
 * time of each step chosen by the test: the agent stream's limits derived from the
 * node-down timeout; liveness (a silent node goes down after the timeout and its replicas
 * become unknown, a session silent past its limit is closed without extending its node's
 * timeout, a node that comes back stays up, a new leader gives every node the full
 * timeout, a clock that steps back or leaps ahead neither marks every node down nor stops
 * judging, and steps of the wall clock change no verdict); the replicas of a node cut off
 * (kept for their workload's disconnect_grace, counted on the leader's monotonic clock
 * whatever the wall clock does, then replaced, stopped once the replacement runs, the
 * older generation first, and taken back running when the node returns before the
 * replacement started); replica status batching (reports of a stale session, of another
 * node's replica or saying nothing new are dropped; a newer report replaces an older one)
 * and assignment differences (full, then only what changed; stops sent again after a
 * while; nodes due a push after a change, in the order changes were applied, so that
 * commands and reports stamped an hour back or ahead are pushed all the same). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/session.h"
#include "scheduler/fleet/assign.h"
#include "scheduler/fleet/fleet.h"
#include "scheduler/fleet/liveness.h"
#include "scheduler/fleet/node_health.h"
#include "scheduler/fleet/reconcile.h"
#include "scheduler/fleet/status.h"
#include "scheduler/state/fsm.h"
#include "scheduler/state/query_fleet.h"
#include "state_fixture.h"

#define TIMEOUT_MS 5000
/* The wall clock of the fixture's commands. */
#define WALL_MS UINT64_C(1700000000000)

static void node_info(Gantry__NodeInfo *info, Gantry__Resources *cap, const char *name)
{
    gt_node_info(info, cap, name, "private", 4000, INT64_C(4) << 30);
    info->region = (char *)"local";
    info->zone = (char *)"a";
    info->address = (char *)"10.0.0.1";
    cap->pids = 1000;
}

static void register_node(struct sch_fsm *fsm, const char *name)
{
    Gantry__NodeInfo info;
    Gantry__Resources cap;
    node_info(&info, &cap, name);
    gt_register(fsm, &info);
}

static void apply_workload(struct sch_fsm *fsm, const char *name)
{
    Gantry__WorkloadSpec spec = GANTRY__WORKLOAD_SPEC__INIT;
    Gantry__Resources res = GANTRY__RESOURCES__INIT;
    res.cpu_millis = 100;
    res.memory_bytes = 64 << 20;
    spec.name = (char *)name;
    spec.image = (char *)"busybox";
    spec.replicas = 2;
    spec.resources = &res;
    gt_apply(fsm, &spec);
}

/* Places replica id of web on node, proposed at wall_ms. */
static void place(struct sch_fsm *fsm, const char *id, const char *node, uint64_t wall_ms)
{
    gt_clock.time_ms = wall_ms;
    gt_place(fsm, id, "web", node);
    gt_clock.time_ms = WALL_MS;
}

/* A report of replica id in state, with ready and reason. */
static Gantry__ReplicaStatus report(const char *id, int state, const char *reason)
{
    Gantry__ReplicaStatus st = GANTRY__REPLICA_STATUS__INIT;
    st.replica_id = (char *)id;
    st.workload = (char *)"web";
    st.generation = 1;
    st.state = state;
    st.ready = state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    st.reason = (char *)reason;
    return st;
}

/* Records report st, proposed at wall_ms. */
static void update(struct sch_fsm *fsm, Gantry__ReplicaStatus st, uint64_t wall_ms)
{
    gt_clock.time_ms = wall_ms;
    gt_update_replica(fsm, &st);
    gt_clock.time_ms = WALL_MS;
}

static int64_t column(struct sch_fsm *fsm, const char *sql, const char *key)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fsm->db, sql, -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int64_t v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    return v;
}

static int node_state(struct sch_fsm *fsm, const char *node)
{
    return (int)column(fsm, "SELECT state FROM nodes WHERE name = ?", node);
}

static int replica_state(struct sch_fsm *fsm, const char *id)
{
    return (int)column(fsm, "SELECT state FROM replicas WHERE id = ?", id);
}

static int replica_ready(struct sch_fsm *fsm, const char *id)
{
    return (int)column(fsm, "SELECT ready FROM replicas WHERE id = ?", id);
}

/* Copies the text sql reads (with key bound, when not NULL) into buf; "" without a row. */
static void text_column(struct sch_fsm *fsm, const char *sql, const char *key, char *buf,
                        size_t len)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(fsm->db, sql, -1, &q, NULL), SQLITE_OK);
    if (key != NULL)
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    bool row = sqlite3_step(q) == SQLITE_ROW;
    snprintf(buf, len, "%s", row ? (const char *)sqlite3_column_text(q, 0) : "");
    sqlite3_finalize(q);
}

/* True when replica id's reason starts with prefix. */
static bool reason_starts(struct sch_fsm *fsm, const char *id, const char *prefix)
{
    char reason[256];
    text_column(fsm, "SELECT reason FROM replicas WHERE id = ?", id, reason, sizeof(reason));
    return strncmp(reason, prefix, strlen(prefix)) == 0;
}

/* Three nodes; web-a placed on n1, web-b on n2; n3 holds nothing. */
static int setup(void **state)
{
    gt_clock.time_ms = WALL_MS;
    gt_fsm_setup(state);
    struct sch_fsm *fsm = *state;
    register_node(fsm, "n1");
    register_node(fsm, "n2");
    register_node(fsm, "n3");
    apply_workload(fsm, "web");
    place(fsm, "web-a", "n1", WALL_MS);
    place(fsm, "web-b", "n2", WALL_MS);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Liveness */

/* Added to the wall clock the leader's verdicts are stamped with (WALL_MS + its monotonic
 * clock): a test moves it to step the wall clock. */
static int64_t wall_step;

/* Runs the leader from `from` to `to` in steps of 250 ms: the nodes of talking hear a frame
 * every second, and each step judges; a verdict is applied to the state. Returns the node
 * found down first (the caller frees it), or NULL. stop_at_first ends the run there. */
static char *run(struct sch_liveness *lv, struct sch_fsm *fsm, uint64_t from, uint64_t to,
                 const char *const *talking, size_t n_talking, bool stop_at_first)
{
    char *first = NULL;
    for (uint64_t now = from; now <= to; now += 250) {
        if (now % 1000 == 0)
            for (size_t i = 0; i < n_talking; i++)
                sch_liveness_heard(lv, sch_liveness_node(lv, talking[i], now), now);
        struct sch_liveness_verdict v;
        struct gy_error err;
        uint64_t wall = (uint64_t)((int64_t)(WALL_MS + now) + wall_step);
        int rc = sch_liveness_judge(lv, fsm, now, wall, &v, &err);
        assert_true(rc >= 0);
        if (rc == 0)
            continue;
        gt_execute(fsm, v.command);
        if (first == NULL)
            first = strdup(v.node);
        sch_liveness_verdict_free(&v);
        if (stop_at_first)
            break;
    }
    return first;
}

/* Every node connected at `at`. */
static void connect_all(struct sch_liveness *lv, uint64_t at)
{
    static const char *const nodes[] = {"n1", "n2", "n3"};
    for (size_t i = 0; i < 3; i++)
        sch_liveness_connect(lv, sch_liveness_node(lv, nodes[i], at), at);
}

static void test_silent_node_goes_down_and_its_replicas_are_unknown(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 10000);
    connect_all(&lv, 10000);
    static const char *const talking[] = {"n1", "n3"};
    /* Within the timeout nothing is judged down. */
    assert_null(run(&lv, fsm, 10000, 15000, talking, 2, true));
    assert_int_equal(node_state(fsm, "n2"), GANTRY__NODE_STATE__NODE_READY);
    /* Just past it, n2 is, and only n2. */
    char *down = run(&lv, fsm, 15250, 16000, talking, 2, false);
    assert_string_equal(down, "n2");
    free(down);
    assert_int_equal(node_state(fsm, "n2"), GANTRY__NODE_STATE__NODE_DOWN);
    /* Its replica keeps its last state, unknown (not ready, and said so in its reason). */
    assert_int_equal(replica_state(fsm, "web-b"), GANTRY__REPLICA_STATE__REPLICA_PENDING);
    assert_int_equal(replica_ready(fsm, "web-b"), 0);
    assert_true(reason_starts(fsm, "web-b", "unknown: node n2 is down"));
    assert_int_equal(node_state(fsm, "n1"), GANTRY__NODE_STATE__NODE_READY);
    assert_int_equal(replica_state(fsm, "web-a"), GANTRY__REPLICA_STATE__REPLICA_PENDING);
    /* A node that is down already is not judged again. */
    assert_null(run(&lv, fsm, 16250, 30000, talking, 2, false));
    sch_liveness_free(&lv);
}

static void test_verdict_marks_live_replicas_unknown(void **state)
{
    struct sch_fsm *fsm = *state;
    place(fsm, "web-c", "n2", WALL_MS);
    update(fsm, report("web-c", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "stopping"), WALL_MS);
    Gantry__ReplicaStatus rb = report("web-b", GANTRY__REPLICA_STATE__REPLICA_RUNNING, "");
    rb.restarts = 2;
    rb.address = (char *)"10.1.0.7";
    update(fsm, rb, WALL_MS);
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 0);
    static const char *const talking[] = {"n1", "n3"};
    assert_null(run(&lv, fsm, 0, 5000, talking, 2, true));
    struct sch_liveness_verdict v;
    struct gy_error err;
    assert_int_equal(sch_liveness_judge(&lv, fsm, 5250, WALL_MS + 5250, &v, &err), 1);
    assert_string_equal(v.node, "n2");
    /* web-b is unknown; web-c, stopping already, is not part of the verdict. */
    assert_int_equal(v.unknown, 1);
    const Gantry__CommandBatch *b = v.command->batch;
    assert_int_equal(b->n_commands, 2);
    assert_int_equal(b->commands[0]->cmd_case, GANTRY__COMMAND__CMD_SET_NODE_STATE);
    assert_string_equal(b->commands[0]->set_node_state->reason,
                        "node n2 is down (no heartbeat for 5000ms)");
    /* It keeps what its agent last said, but readiness, from the verdict's time on. */
    const Gantry__ReplicaStatus *u = b->commands[1]->update_replicas->updates[0];
    assert_string_equal(u->replica_id, "web-b");
    assert_int_equal(u->state, GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_false(u->ready);
    assert_int_equal(u->restarts, 2);
    assert_string_equal(u->address, "10.1.0.7");
    assert_string_equal(u->reason, "unknown: node n2 is down (no heartbeat for 5000ms)");
    assert_int_equal(u->changed_ms, WALL_MS + 5250);
    assert_string_equal(v.command->actor, "liveness");
    assert_int_equal(v.command->time_ms, WALL_MS + 5250);
    gt_execute(fsm, v.command);
    sch_liveness_verdict_free(&v);
    assert_int_equal(replica_state(fsm, "web-c"), GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    assert_int_equal(replica_state(fsm, "web-b"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_int_equal(replica_ready(fsm, "web-b"), 0);
    assert_int_equal(column(fsm, "SELECT changed_ms FROM replicas WHERE id = ?", "web-b"),
                     (int64_t)(WALL_MS + 5250));
    sch_liveness_free(&lv);
}

static void test_node_comes_back(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 0);
    connect_all(&lv, 0);
    static const char *const first[] = {"n1", "n3"};
    char *down = run(&lv, fsm, 0, 6000, first, 2, true);
    assert_string_equal(down, "n2");
    free(down);
    /* Its agent says hello again: the state holds it down, so it registers anew. */
    Gantry__NodeInfo info;
    Gantry__Resources cap;
    node_info(&info, &cap, "n2");
    assert_false(sch_query_node_registered_as(fsm, &info));
    register_node(fsm, "n2");
    assert_true(sch_query_node_registered_as(fsm, &info));
    assert_int_equal(node_state(fsm, "n2"), GANTRY__NODE_STATE__NODE_READY);
    struct sch_fleet_node *n2 = sch_liveness_find(&lv, "n2");
    assert_non_null(n2);
    sch_liveness_connect(&lv, n2, 6250);
    /* Heard from regularly, it stays up. */
    static const char *const all[] = {"n1", "n2", "n3"};
    assert_null(run(&lv, fsm, 6250, 30000, all, 3, false));
    assert_int_equal(node_state(fsm, "n2"), GANTRY__NODE_STATE__NODE_READY);
    sch_liveness_free(&lv);
}

static void test_new_leader_gives_full_timeout(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    /* Heard long ago, under the previous leadership of this server. */
    connect_all(&lv, 0);
    static const char *const none[1] = {NULL};
    assert_null(run(&lv, fsm, 0, 1000, none, 0, true));
    for (uint64_t now = 1000; now < 60000; now += 500)
        sch_liveness_clock(&lv, now);
    sch_liveness_lead(&lv, 60000);
    /* Nobody is down before a full timeout from the start of the leadership... */
    assert_null(run(&lv, fsm, 60000, 65000, none, 0, true));
    /* ...and every silent node is after it, one verdict per walk. */
    char *down = run(&lv, fsm, 65250, 67000, none, 0, false);
    assert_non_null(down);
    free(down);
    assert_int_equal(node_state(fsm, "n1"), GANTRY__NODE_STATE__NODE_DOWN);
    assert_int_equal(node_state(fsm, "n2"), GANTRY__NODE_STATE__NODE_DOWN);
    assert_int_equal(node_state(fsm, "n3"), GANTRY__NODE_STATE__NODE_DOWN);
    sch_liveness_free(&lv);
}

static void test_clock_stepping_back(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    uint64_t t = UINT64_C(3600000) * 2;
    sch_liveness_lead(&lv, t);
    connect_all(&lv, t);
    static const char *const all[] = {"n1", "n2", "n3"};
    assert_null(run(&lv, fsm, t, t + 3000, all, 3, true));
    /* The clock goes back an hour: nobody is down for it. */
    uint64_t back = t + 3000 - UINT64_C(3600000);
    static const char *const talking[] = {"n1", "n3"};
    assert_null(run(&lv, fsm, back, back + 4500, talking, 2, true));
    /* And judging goes on: n2, silent since before the step, goes down when its timeout
     * has passed counting the time on both sides of the step. */
    char *down = run(&lv, fsm, back + 4750, back + 6000, talking, 2, true);
    assert_string_equal(down, "n2");
    free(down);
    assert_int_equal(node_state(fsm, "n1"), GANTRY__NODE_STATE__NODE_READY);
    assert_int_equal(node_state(fsm, "n3"), GANTRY__NODE_STATE__NODE_READY);
    sch_liveness_free(&lv);
}

static void test_clock_leaping_forward(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 1000);
    connect_all(&lv, 1000);
    static const char *const all[] = {"n1", "n2", "n3"};
    assert_null(run(&lv, fsm, 1000, 8000, all, 3, true));
    /* The clock leaps an hour ahead: the nodes did not fall silent for an hour. */
    uint64_t ahead = 8000 + UINT64_C(3600000);
    static const char *const talking[] = {"n1", "n3"};
    assert_null(run(&lv, fsm, ahead, ahead + 2000, talking, 2, true));
    /* The silent one still goes down once its timeout has passed. */
    char *down = run(&lv, fsm, ahead + 2250, ahead + 6000, talking, 2, true);
    assert_string_equal(down, "n2");
    free(down);
    assert_int_equal(node_state(fsm, "n1"), GANTRY__NODE_STATE__NODE_READY);
    sch_liveness_free(&lv);
}

static void test_wall_steps_change_no_verdict(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 10000);
    connect_all(&lv, 10000);
    static const char *const talking[] = {"n1", "n3"};
    /* The wall clock steps back an hour, then forward two: the verdict on n2 comes as it
     * does with a steady wall clock (test_silent_node_goes_down...), and only on n2. */
    wall_step = -INT64_C(3600000);
    assert_null(run(&lv, fsm, 10000, 12500, talking, 2, true));
    wall_step = INT64_C(3600000);
    assert_null(run(&lv, fsm, 12750, 15000, talking, 2, true));
    char *down = run(&lv, fsm, 15250, 16000, talking, 2, false);
    assert_string_equal(down, "n2");
    free(down);
    assert_int_equal(node_state(fsm, "n1"), GANTRY__NODE_STATE__NODE_READY);
    assert_int_equal(node_state(fsm, "n3"), GANTRY__NODE_STATE__NODE_READY);
    /* The wall clock stamps the record, nothing else. */
    assert_int_equal(column(fsm, "SELECT updated_ms FROM nodes WHERE name = ?", "n2"),
                     (int64_t)(WALL_MS + 15250 + UINT64_C(3600000)));
    wall_step = 0;
    assert_null(run(&lv, fsm, 16250, 30000, talking, 2, false));
    sch_liveness_free(&lv);
}

/* ---------------------------------------------------------------------------------------
 * The agent stream's limits and silent sessions */

static void test_session_timeouts_derived(void **state)
{
    (void)state;
    struct sch_session_timeouts t;
    sch_liveness_session_timeouts(5000, &t);
    assert_int_equal(t.heartbeat_ms, 1000);
    assert_int_equal(t.silence_ms, 2500);
    assert_int_equal(t.connect_ms, 500);
    /* An agent that has not been welcomed yet holds the limits of the default timeout. */
    sch_liveness_session_timeouts(SCH_DEFAULT_NODE_DOWN_MS, &t);
    assert_int_equal(t.silence_ms, AGENT_SESSION_SILENCE_MS);
    assert_int_equal(t.connect_ms, AGENT_SESSION_CONNECT_MS);
    /* For every timeout the server accepts, an agent whose leader falls silent leaves it,
     * may spend a connect on the dead server and backs off twice (at most 100 + 200 ms) in
     * three quarters of the time a new leader, elected 0.4 s after the loss at the
     * earliest, gives it; and it hears two acknowledged heartbeats within its silence
     * limit. */
    for (uint64_t d = 500; d <= 3600000; d += d < 10000 ? 250 : 5000) {
        sch_liveness_session_timeouts(d, &t);
        assert_true(4 * ((uint64_t)t.silence_ms + t.connect_ms + 300) <= 3 * (d + 400));
        assert_true(t.silence_ms >= 2 * t.heartbeat_ms);
        assert_true(t.heartbeat_ms >= 100 && t.connect_ms >= 100);
    }
}

/* One look of the duties' tick at n2's session at now, n1 and n3 being heard. */
static bool look(struct sch_liveness *lv, struct sch_fleet_node *n2, uint64_t now)
{
    sch_liveness_heard(lv, sch_liveness_find(lv, "n1"), now);
    sch_liveness_heard(lv, sch_liveness_find(lv, "n3"), now);
    return sch_liveness_session_silent(lv, n2, now, 2500);
}

static void test_silent_session_is_closed(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 0);
    connect_all(&lv, 0);
    struct sch_fleet_node *n2 = sch_liveness_find(&lv, "n2");
    sch_liveness_heard(&lv, n2, 1000);
    for (uint64_t now = 1000; now <= 3500; now += 250)
        assert_false(look(&lv, n2, now));
    /* Past the limit the first look only suspects it: a frame read before the next one
     * (one that waited in the socket while the loop was held up) clears it. */
    assert_false(look(&lv, n2, 3600));
    sch_liveness_heard(&lv, n2, 3650);
    for (uint64_t now = 3700; now <= 6150; now += 50)
        assert_false(look(&lv, n2, now));
    /* Silent at two looks in a row: the session is to be closed. */
    assert_false(look(&lv, n2, 6200));
    assert_true(look(&lv, n2, 6300));
    sch_liveness_disconnect(&lv, n2, n2->session, 6300);
    assert_int_equal(n2->session, 0);
    assert_false(look(&lv, n2, 6400));
    /* Its node is judged from its last frame (3650), not from the close. */
    static const char *const talking[] = {"n1", "n3"};
    assert_null(run(&lv, fsm, 6500, 8500, talking, 2, true));
    char *down = run(&lv, fsm, 8750, 9500, talking, 2, true);
    assert_string_equal(down, "n2");
    free(down);
    sch_liveness_free(&lv);
}

/* ---------------------------------------------------------------------------------------
 * Replicas of a node cut off */

/* Applies workload api with replicas and disconnect_grace_ms; a new stop_grace_ms makes a
 * new generation. */
static void apply_api(struct sch_fsm *fsm, uint32_t replicas, uint32_t grace_ms,
                      uint32_t stop_grace_ms)
{
    Gantry__WorkloadSpec spec = GANTRY__WORKLOAD_SPEC__INIT;
    Gantry__Resources res = GANTRY__RESOURCES__INIT;
    res.cpu_millis = 100;
    res.memory_bytes = 64 << 20;
    spec.name = (char *)"api";
    spec.image = (char *)"busybox";
    spec.replicas = replicas;
    spec.resources = &res;
    spec.disconnect_grace_ms = grace_ms;
    spec.stop_grace_ms = stop_grace_ms;
    gt_apply(fsm, &spec);
}

/* Records what api's replica id reports: state, ready when running, reason "". */
static void api_report(struct sch_fsm *fsm, const char *id, uint64_t generation, int state)
{
    Gantry__ReplicaStatus st = GANTRY__REPLICA_STATUS__INIT;
    st.replica_id = (char *)id;
    st.workload = (char *)"api";
    st.generation = generation;
    st.state = state;
    st.ready = state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    gt_update_replica(fsm, &st);
}

/* Places api's replica id of generation on node, running and ready. */
static void api_running(struct sch_fsm *fsm, const char *id, uint64_t generation, const char *node)
{
    gt_place(fsm, id, "api", node);
    /* Placements of an older generation are what a rollout leaves: set it directly. */
    char *sql = sqlite3_mprintf("UPDATE replicas SET generation = %llu WHERE id = %Q",
                                (unsigned long long)generation, id);
    assert_int_equal(sqlite3_exec(fsm->db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
    api_report(fsm, id, generation, GANTRY__REPLICA_STATE__REPLICA_RUNNING);
}

static uint32_t next_id(void *data)
{
    return ++*(uint32_t *)data;
}

/* The leader of the cut-off tests: its liveness and its monotonic clock, which a test
 * moves forward; its verdicts and commands are stamped WALL_MS + that clock unless a test
 * says otherwise. */
static struct {
    struct sch_liveness lv;
    uint64_t now;
} leader;

static uint64_t leader_down_for(void *data, const char *node)
{
    (void)data;
    return sch_liveness_down_for(&leader.lv, node, leader.now);
}

/* Moves the leader's clock to `to`, read every 100 ms as the duties' tick does. */
static void leader_advance(uint64_t to)
{
    while (leader.now + 100 < to) {
        leader.now += 100;
        sch_liveness_clock(&leader.lv, leader.now);
    }
    leader.now = to;
    sch_liveness_clock(&leader.lv, to);
}

static int cut_off_teardown(void **state)
{
    sch_liveness_free(&leader.lv);
    memset(&leader, 0, sizeof(leader));
    return gt_fsm_teardown(state);
}

/* A reconcile pass over api at `now` of the leader's monotonic clock, its commands stamped
 * wall_ms; applied; *placed and *stopped say what it did. */
static void reconcile_api_at(struct sch_fsm *fsm, uint64_t now, uint64_t wall_ms, size_t *placed,
                             size_t *stopped)
{
    static uint32_t ids;
    static const char *const only[] = {"api"};
    leader_advance(now);
    struct sch_reconcile_time time = {
        .wall_ms = wall_ms, .down_for = leader_down_for, .down_data = NULL};
    struct sch_reconcile_plan plan;
    struct gy_error err;
    assert_int_equal(sch_reconcile_plan_at(fsm, only, 1, &time, next_id, &ids, &plan, &err), 0);
    if (plan.command != NULL)
        gt_execute(fsm, plan.command);
    *placed = plan.placed;
    *stopped = plan.stopped;
    sch_reconcile_plan_free(&plan);
}

/* A reconcile pass over api at wall_ms, the wall clock moving with the monotonic one. */
static void reconcile_api(struct sch_fsm *fsm, uint64_t wall_ms, size_t *placed, size_t *stopped)
{
    reconcile_api_at(fsm, wall_ms - WALL_MS, wall_ms, placed, stopped);
}

/* Node n2 falls silent; the leader, hearing n1 and n3, finds it down. Returns the wall time
 * of the verdict (WALL_MS + the leader's clock then). */
static uint64_t cut_off_n2(struct sch_fsm *fsm)
{
    sch_liveness_init(&leader.lv, TIMEOUT_MS);
    sch_liveness_lead(&leader.lv, 0);
    connect_all(&leader.lv, 0);
    static const char *const talking[] = {"n1", "n3"};
    char *down = run(&leader.lv, fsm, 0, 6000, talking, 2, true);
    assert_string_equal(down, "n2");
    free(down);
    uint64_t v = (uint64_t)column(fsm, "SELECT updated_ms FROM nodes WHERE name = ?", "n2");
    leader.now = v - WALL_MS;
    return v;
}

/* The id of api's newest replica placed by a reconcile pass (ids "api-" and 8 digits). */
static void newest(struct sch_fsm *fsm, char *buf, size_t len)
{
    text_column(fsm,
                "SELECT id FROM replicas WHERE workload = 'api' AND length(id) = 12"
                " ORDER BY rowid DESC LIMIT 1",
                NULL, buf, len);
    assert_true(buf[0] != '\0');
}

static void test_cut_off_replaced_then_stopped(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_api(fsm, 2, 0, 10000);
    api_running(fsm, "api-a", 1, "n1");
    api_running(fsm, "api-b", 1, "n2");
    uint64_t v = cut_off_n2(fsm);
    assert_int_equal(replica_ready(fsm, "api-b"), 0);
    assert_true(reason_starts(fsm, "api-b", "unknown: "));
    /* Without a grace, a replacement is placed at once, on a node that is up... */
    size_t placed, stopped;
    reconcile_api(fsm, v, &placed, &stopped);
    assert_int_equal(placed, 1);
    assert_int_equal(stopped, 0);
    char r[32];
    newest(fsm, r, sizeof(r));
    assert_int_equal(column(fsm, "SELECT node != 'n2' FROM replicas WHERE id = ?", r), 1);
    /* ...and the cut-off replica stays until the replacement runs. */
    reconcile_api(fsm, v + 1000, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    assert_int_equal(replica_state(fsm, "api-b"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    api_report(fsm, r, 1, GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    reconcile_api(fsm, v + 2000, &placed, &stopped);
    assert_int_equal(placed, 0);
    assert_int_equal(stopped, 1);
    assert_int_equal(replica_state(fsm, "api-b"), GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    assert_true(reason_starts(fsm, "api-b", "replaced while node n2 was cut off"));
    reconcile_api(fsm, v + 3000, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
}

static void test_cut_off_kept_within_grace(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_api(fsm, 2, 120000, 10000);
    api_running(fsm, "api-a", 1, "n1");
    api_running(fsm, "api-b", 1, "n2");
    uint64_t v = cut_off_n2(fsm);
    /* The workload is among those a regular pass looks at while n2 is down. */
    char **names;
    size_t n = sch_reconcile_cut_off(fsm, &names);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "api");
    assert_string_equal(names[1], "web");
    gt_names_free(names, n);
    /* Within the grace the replica counts: nothing is placed or stopped. */
    size_t placed, stopped;
    for (uint64_t t = v; t < v + 120000; t += 20000) {
        reconcile_api(fsm, t, &placed, &stopped);
        assert_int_equal(placed + stopped, 0);
    }
    reconcile_api(fsm, v + 119999, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    assert_int_equal(replica_state(fsm, "api-b"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_true(reason_starts(fsm, "api-b", "unknown: node n2 is down"));
    /* When it ends, the replacement is placed. */
    reconcile_api(fsm, v + 120000, &placed, &stopped);
    assert_int_equal(placed, 1);
    assert_int_equal(stopped, 0);
}

static void test_cut_off_grace_ignores_wall_steps(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_api(fsm, 2, 120000, 10000);
    api_running(fsm, "api-a", 1, "n1");
    api_running(fsm, "api-b", 1, "n2");
    uint64_t v = cut_off_n2(fsm);
    uint64_t t = v - WALL_MS;
    uint64_t hour = UINT64_C(3600000);
    size_t placed, stopped;
    /* The wall clock leaps an hour ahead: the grace, counted on the leader's clock, goes
     * on (the stamps in the state would have it long over). */
    reconcile_api_at(fsm, t + 1000, v + hour, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    reconcile_api_at(fsm, t + 60000, v + hour + 59000, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    /* It steps back two hours: the grace still ends on time (the stamps would have it
     * last an hour longer). */
    reconcile_api_at(fsm, t + 119999, v - hour + 119999, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    reconcile_api_at(fsm, t + 120000, v - hour + 120000, &placed, &stopped);
    assert_int_equal(placed, 1);
    assert_int_equal(stopped, 0);
}

static void test_cut_off_counted_from_takeover(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_api(fsm, 2, 120000, 10000);
    api_running(fsm, "api-a", 1, "n1");
    api_running(fsm, "api-b", 1, "n2");
    uint64_t v = cut_off_n2(fsm);
    uint64_t t = v - WALL_MS;
    size_t placed, stopped;
    reconcile_api(fsm, v + 100000, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    /* This server leads anew (it lost the leadership meanwhile): it cannot tell from the
     * state's stamps how long n2 has been down, so the grace counts from its takeover. */
    leader_advance(t + 110000);
    sch_liveness_lead(&leader.lv, t + 110000);
    reconcile_api(fsm, v + 110000 + 119999, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
    reconcile_api(fsm, v + 110000 + 120000, &placed, &stopped);
    assert_int_equal(placed, 1);
}

static void test_cut_off_taken_back_before_replacement_started(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_api(fsm, 2, 0, 10000);
    api_running(fsm, "api-a", 1, "n1");
    api_running(fsm, "api-b", 1, "n2");
    uint64_t v = cut_off_n2(fsm);
    size_t placed, stopped;
    reconcile_api(fsm, v, &placed, &stopped);
    assert_int_equal(placed, 1);
    char r[32];
    newest(fsm, r, sizeof(r));
    /* n2 comes back before the replacement started: its agent registers and reports
     * api-b running, which is taken back as it is. */
    register_node(fsm, "n2");
    api_report(fsm, "api-b", 1, GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_int_equal(replica_state(fsm, "api-b"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_int_equal(replica_ready(fsm, "api-b"), 1);
    /* The replacement not started yet is the surplus. */
    reconcile_api(fsm, v + 1000, &placed, &stopped);
    assert_int_equal(placed, 0);
    assert_int_equal(stopped, 1);
    assert_int_equal(replica_state(fsm, r), GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    assert_int_equal(replica_state(fsm, "api-b"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    reconcile_api(fsm, v + 2000, &placed, &stopped);
    assert_int_equal(placed + stopped, 0);
}

static void test_cut_off_older_generation_stopped_first(void **state)
{
    struct sch_fsm *fsm = *state;
    apply_api(fsm, 2, 0, 10000);
    apply_api(fsm, 2, 0, 20000); /* generation 2 */
    api_running(fsm, "api-y", 2, "n2");
    api_running(fsm, "api-x", 1, "n2");
    uint64_t v = cut_off_n2(fsm);
    size_t placed, stopped;
    reconcile_api(fsm, v, &placed, &stopped);
    assert_int_equal(placed, 2);
    assert_int_equal(stopped, 0);
    char r[32];
    newest(fsm, r, sizeof(r));
    /* One replacement runs: one cut-off replica is surplus, the one of generation 1. */
    api_report(fsm, r, 2, GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    reconcile_api(fsm, v + 1000, &placed, &stopped);
    assert_int_equal(stopped, 1);
    assert_int_equal(replica_state(fsm, "api-x"), GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    assert_int_equal(replica_state(fsm, "api-y"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
}

/* ---------------------------------------------------------------------------------------
 * Replica status */

static void test_status_of_stale_session_is_dropped(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    struct sch_fleet_node *n1 = sch_liveness_node(&lv, "n1", 0);
    uint64_t old = sch_liveness_connect(&lv, n1, 0);
    /* The agent reconnects: its first session is no longer current. */
    uint64_t current = sch_liveness_connect(&lv, n1, 100);
    assert_int_not_equal(old, current);
    struct sch_status_batch batch = {0};
    Gantry__ReplicaStatus st = report("web-a", GANTRY__REPLICA_STATE__REPLICA_RUNNING, "ok");
    assert_false(sch_status_queue(&batch, fsm, n1, old, &st));
    assert_int_equal(batch.n, 0);
    assert_true(sch_status_queue(&batch, fsm, n1, current, &st));
    assert_int_equal(batch.n, 1);
    /* Once that session ended too, the node speaks for nothing. */
    sch_liveness_disconnect(&lv, n1, current, 200);
    Gantry__ReplicaStatus late = report("web-a", GANTRY__REPLICA_STATE__REPLICA_STOPPED, "gone");
    assert_false(sch_status_queue(&batch, fsm, n1, current, &late));
    assert_int_equal(batch.n, 1);
    sch_status_clear(&batch);
    sch_liveness_free(&lv);
}

static void test_status_batching(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    struct sch_fleet_node *n1 = sch_liveness_node(&lv, "n1", 0);
    struct sch_fleet_node *n2 = sch_liveness_node(&lv, "n2", 0);
    uint64_t s1 = sch_liveness_connect(&lv, n1, 0);
    uint64_t s2 = sch_liveness_connect(&lv, n2, 0);
    struct sch_status_batch batch = {0};
    /* Only the node that holds a replica speaks for it. */
    Gantry__ReplicaStatus other = report("web-a", GANTRY__REPLICA_STATE__REPLICA_RUNNING, "ok");
    assert_false(sch_status_queue(&batch, fsm, n2, s2, &other));
    /* A newer report replaces an older one not yet proposed. */
    Gantry__ReplicaStatus starting =
        report("web-a", GANTRY__REPLICA_STATE__REPLICA_STARTING, "pulling");
    Gantry__ReplicaStatus running = report("web-a", GANTRY__REPLICA_STATE__REPLICA_RUNNING, "ok");
    Gantry__ReplicaStatus b_running = report("web-b", GANTRY__REPLICA_STATE__REPLICA_RUNNING, "ok");
    assert_true(sch_status_queue(&batch, fsm, n1, s1, &starting));
    assert_true(sch_status_queue(&batch, fsm, n2, s2, &b_running));
    assert_true(sch_status_queue(&batch, fsm, n1, s1, &running));
    assert_int_equal(batch.n, 2);
    Gantry__Command cmd;
    Gantry__UpdateReplicas up;
    assert_int_equal(sch_status_take(&batch, WALL_MS + 5, &cmd, &up), 2);
    assert_string_equal(cmd.actor, "agents");
    assert_int_equal(cmd.time_ms, WALL_MS + 5);
    assert_string_equal(up.updates[0]->replica_id, "web-a");
    assert_int_equal(up.updates[0]->state, GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_string_equal(up.updates[1]->replica_id, "web-b");
    gt_execute(fsm, &cmd);
    sch_status_drop(&batch, 2);
    assert_int_equal(batch.n, 0);
    assert_int_equal(replica_state(fsm, "web-a"), GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    /* Recorded, the same report is no news any more. */
    assert_false(sch_status_queue(&batch, fsm, n1, s1, &running));
    assert_int_equal(sch_status_take(&batch, WALL_MS, &cmd, &up), 0);
    sch_status_clear(&batch);
    sch_liveness_free(&lv);
}

/* ---------------------------------------------------------------------------------------
 * Assignments */

/* The ids an assignment starts and stops, as "start:a,b stop:c". */
static void describe(const struct sch_assignment *as, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "start:");
    for (size_t i = 0; i < as->msg.n_start; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
                                as->msg.start[i]->replica_id);
    off += (size_t)snprintf(buf + off, len - off, " stop:");
    for (size_t i = 0; i < as->msg.n_stop; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", as->msg.stop[i]);
}

/* The difference for node now; "-" when there is nothing to send. */
static void diff(struct sch_fsm *fsm, const char *node, bool full, struct sch_assign_sent *sent,
                 char *buf, size_t len)
{
    struct sch_spec_cache cache = {0};
    struct sch_assignment as;
    struct gy_error err;
    int rc = sch_assign_diff(fsm, node, full, sent, &cache, &as, &err);
    assert_true(rc >= 0);
    if (rc == 0)
        snprintf(buf, len, "-");
    else
        describe(&as, buf, len);
    if (rc > 0 && as.msg.n_start > 0)
        assert_string_equal(as.msg.start[0]->spec->image, "busybox");
    assert_int_equal(as.msg.full, full);
    sch_assignment_free(&as);
    sch_spec_cache_clear(&cache);
}

static void test_assignment_differences(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_assign_sent sent = {0};
    char got[256];
    diff(fsm, "n1", true, &sent, got, sizeof(got));
    assert_string_equal(got, "start:web-a stop:");
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "-");
    place(fsm, "web-c", "n1", WALL_MS + 1000);
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "start:web-c stop:");
    update(fsm, report("web-a", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "scaled down"),
           WALL_MS + 2000);
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "start: stop:web-a");
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "-");
    /* A full assignment names every live replica again and none of the stopped ones. */
    struct sch_assign_sent fresh = {0};
    diff(fsm, "n1", true, &fresh, got, sizeof(got));
    assert_string_equal(got, "start:web-c stop:web-a");
    sch_assign_sent_clear(&fresh);
    sch_assign_sent_clear(&sent);
}

static void note_stale(void *data, const char *id, const char *node)
{
    char *out = data;
    size_t off = strlen(out);
    snprintf(out + off, 256 - off, "%s%s@%s", off ? "," : "", id, node);
}

static void test_stale_stops_are_sent_again(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_assign_sent sent = {0};
    char got[256];
    diff(fsm, "n1", true, &sent, got, sizeof(got));
    /* The agent's report is stamped by its own clock, an hour ahead: it does not count. */
    Gantry__ReplicaStatus st = report("web-a", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "scaled");
    st.changed_ms = WALL_MS + UINT64_C(3600000);
    update(fsm, st, WALL_MS + 1000);
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "start: stop:web-a");
    /* The first look (the leader looks every SCH_ASSIGN_RESTOP_MS) finds it stopping... */
    struct sch_idset stopping = {0};
    char stale[256] = "";
    struct gy_error err;
    assert_int_equal(sch_assign_stale_stops(fsm, &stopping, note_stale, stale, &err), 1);
    assert_string_equal(stale, "");
    assert_true(sch_idset_has(&stopping, "web-a"));
    /* ...and the next one still stopping: its stop is sent again. */
    assert_int_equal(sch_assign_stale_stops(fsm, &stopping, note_stale, stale, &err), 1);
    assert_string_equal(stale, "web-a@n1");
    assert_true(sch_assign_sent_forget_stop(&sent, "web-a"));
    assert_false(sch_assign_sent_forget_stop(&sent, "web-a"));
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "start: stop:web-a");
    /* Once its agent reports it stopped, it is gone from the looks. */
    update(fsm, report("web-a", GANTRY__REPLICA_STATE__REPLICA_STOPPED, "stopped"),
           WALL_MS - UINT64_C(3600000));
    stale[0] = '\0';
    assert_int_equal(sch_assign_stale_stops(fsm, &stopping, note_stale, stale, &err), 0);
    assert_string_equal(stale, "");
    assert_int_equal(stopping.n, 0);
    sch_idset_free(&stopping);
    sch_assign_sent_clear(&sent);
}

static bool all_connected(void *data, const char *node)
{
    (void)data;
    return strcmp(node, "n3") != 0;
}

/* The nodes queued, as "a,b", emptying the queue. */
static void queued(struct sch_push_queue *q, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *node;
    size_t off = 0;
    while ((node = sch_push_queue_next(q)) != NULL)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "", node);
}

/* Looks for nodes due a push; the nodes queued, as "a,b". */
static void look_changed(struct sch_push_queue *q, struct sch_fsm *fsm, char *buf, size_t len)
{
    struct gy_error err;
    assert_true(sch_push_queue_changed(q, fsm, all_connected, NULL, &err) >= 0);
    queued(q, buf, len);
}

static void test_nodes_due_a_push(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_push_queue q = {0};
    char got[256];
    /* The first look covers every node with a replica to start or stop. */
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1,n2");
    /* Later, only what changed since the previous look. */
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "");
    place(fsm, "web-c", "n3", WALL_MS + 60000);
    place(fsm, "web-d", "n1", WALL_MS + 60000);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1"); /* n3 is not connected */
    /* A report that gives the agent nothing to do queues nothing; a stop does. */
    update(fsm, report("web-b", GANTRY__REPLICA_STATE__REPLICA_RUNNING, ""), WALL_MS + 61000);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "");
    update(fsm, report("web-b", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "scaled down"),
           WALL_MS + 62000);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n2");
    /* A server whose database was replaced has no record of what came before: its next
     * look covers every node again. */
    assert_int_equal(sqlite3_exec(fsm->db, "DROP TABLE temp.replica_changes", NULL, NULL, NULL),
                     SQLITE_OK);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1,n2");
    place(fsm, "web-e", "n2", WALL_MS + 63000);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n2");
    sch_push_queue_clear(&q);
}

static void test_pushes_follow_wall_steps(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_push_queue q = {0};
    char got[256];
    uint64_t hour = UINT64_C(3600000);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1,n2");
    /* The leader's wall clock steps back an hour: what it places is pushed. */
    place(fsm, "web-c", "n2", WALL_MS - hour);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n2");
    place(fsm, "web-d", "n1", WALL_MS - hour + 10);
    place(fsm, "web-e", "n2", WALL_MS - hour + 20);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1,n2");
    /* It steps forward two hours: so is what it places and stops then. */
    place(fsm, "web-f", "n1", WALL_MS + hour);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1");
    update(fsm, report("web-e", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "scaled down"),
           WALL_MS + hour + 10);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n2");
    /* And back again: a change stamped before the previous look's time is still new. */
    place(fsm, "web-g", "n2", WALL_MS);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n2");
    /* An agent's report stamped by its own clock, an hour behind: its node is pushed. */
    Gantry__ReplicaStatus st = report("web-f", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "");
    st.changed_ms = WALL_MS - hour;
    update(fsm, st, WALL_MS + 100);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "n1");
    /* Every replica placed was sent to its node. */
    struct sch_assign_sent sent = {0};
    diff(fsm, "n2", true, &sent, got, sizeof(got));
    assert_string_equal(got, "start:web-b,web-c,web-g stop:web-e");
    sch_assign_sent_clear(&sent);
    look_changed(&q, fsm, got, sizeof(got));
    assert_string_equal(got, "");
    sch_push_queue_clear(&q);
}

/* ---------------------------------------------------------------------------------------
 * Node health */

/* What the leader proposes after n1's agent reports that its database refuses writes for
 * reason ("" or NULL: it takes them), at now_ms of the loop's clock; NULL for nothing. */
static Gantry__Command *storage_report(struct sch_liveness *lv, struct sch_fsm *fsm,
                                       const char *reason, uint64_t now_ms)
{
    Gantry__NodeHealth health = GANTRY__NODE_HEALTH__INIT;
    if (reason != NULL)
        health.storage_refused = (char *)reason;
    return sch_node_health_check(lv, fsm, sch_liveness_node(lv, "n1", now_ms), &health, now_ms,
                                 WALL_MS);
}

/* Asserts that cmd sets n1's StoragePressure to message, applies it and frees it. */
static void storage_applied(struct sch_fsm *fsm, Gantry__Command *cmd, const char *message)
{
    assert_non_null(cmd);
    assert_int_equal(cmd->cmd_case, GANTRY__COMMAND__CMD_SET_NODE_CONDITION);
    assert_string_equal(cmd->actor, "agent:n1");
    assert_int_equal(cmd->time_ms, WALL_MS);
    assert_string_equal(cmd->set_node_condition->node, "n1");
    assert_string_equal(cmd->set_node_condition->kind, SCH_NODE_CONDITION_STORAGE);
    assert_string_equal(cmd->set_node_condition->message, message);
    gt_execute(fsm, cmd);
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
}

/* The leader proposes a node's StoragePressure when its agent's report differs from the
 * state, not with every heartbeat: once, then again only when the proposal has not reached
 * the state SCH_NODE_HEALTH_RETRY_MS later. A reason that is not printable ASCII of at most
 * 512 bytes is not proposed as it is. A report without the field (an older agent) is a
 * healthy node, and clears the condition. */
static void test_node_health_proposed_on_change(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    char stored[SCH_NODE_CONDITION_MESSAGE_MAX + 1];
    assert_null(sch_node_health_check(&lv, fsm, sch_liveness_node(&lv, "n1", 0), NULL, 0, WALL_MS));
    assert_null(storage_report(&lv, fsm, "", 1000));

    const char *full = "agent database: disk full at /d/agent.db (record replica: database or "
                       "disk is full)";
    Gantry__Command *first = storage_report(&lv, fsm, full, 2000);
    assert_non_null(first);
    for (uint64_t t = 3000; t < 2000 + SCH_NODE_HEALTH_RETRY_MS; t += 1000)
        assert_null(storage_report(&lv, fsm, full, t));
    /* The proposal was lost (a leadership change): the same change once more. */
    Gantry__Command *again = storage_report(&lv, fsm, full, 2000 + SCH_NODE_HEALTH_RETRY_MS);
    storage_applied(fsm, again, full);
    assert_true(
        sch_query_node_condition(fsm, "n1", SCH_NODE_CONDITION_STORAGE, stored, sizeof(stored)));
    assert_string_equal(stored, full);
    /* Both arrive: the second changes nothing. Heartbeats that follow propose nothing. */
    uint64_t events = fsm->last_event;
    storage_applied(fsm, first, full);
    assert_int_equal(fsm->last_event, events);
    for (uint64_t t = 8000; t < 30000; t += 1000)
        assert_null(storage_report(&lv, fsm, full, t));

    /* Text that is not printable ASCII of at most 512 bytes does not travel. */
    storage_applied(fsm, storage_report(&lv, fsm, "disk\nfull \x1b[31m", 30000),
                    SCH_NODE_HEALTH_UNREADABLE);
    char longest[SCH_NODE_CONDITION_MESSAGE_MAX + 2];
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_null(storage_report(&lv, fsm, longest, 31000));
    longest[SCH_NODE_CONDITION_MESSAGE_MAX] = '\0';
    storage_applied(fsm, storage_report(&lv, fsm, longest, 32000), longest);

    /* Writes succeed again: cleared once. An agent without the field says the same. */
    storage_applied(fsm, storage_report(&lv, fsm, NULL, 40000), "");
    assert_false(
        sch_query_node_condition(fsm, "n1", SCH_NODE_CONDITION_STORAGE, stored, sizeof(stored)));
    assert_null(storage_report(&lv, fsm, "", 41000));
    assert_null(
        sch_node_health_check(&lv, fsm, sch_liveness_node(&lv, "n1", 42000), NULL, 42000, WALL_MS));
    sch_liveness_free(&lv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_timeouts_derived),
        cmocka_unit_test_setup_teardown(test_silent_node_goes_down_and_its_replicas_are_unknown,
                                        setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_verdict_marks_live_replicas_unknown, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_silent_session_is_closed, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_wall_steps_change_no_verdict, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_replaced_then_stopped, setup,
                                        cut_off_teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_kept_within_grace, setup, cut_off_teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_grace_ignores_wall_steps, setup,
                                        cut_off_teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_counted_from_takeover, setup,
                                        cut_off_teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_taken_back_before_replacement_started, setup,
                                        cut_off_teardown),
        cmocka_unit_test_setup_teardown(test_cut_off_older_generation_stopped_first, setup,
                                        cut_off_teardown),
        cmocka_unit_test_setup_teardown(test_node_comes_back, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_health_proposed_on_change, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_new_leader_gives_full_timeout, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_clock_stepping_back, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_clock_leaping_forward, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_status_of_stale_session_is_dropped, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_status_batching, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_assignment_differences, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_stale_stops_are_sent_again, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_due_a_push, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_pushes_follow_wall_steps, setup, gt_fsm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
