/* Unit tests of the leader's bookkeeping of agents against a real state machine, with the
 * time of each step chosen by the test: liveness (a silent node goes down after the
 * timeout and its replicas are lost, a node that comes back stays up, a new leader gives
 * every node the full timeout, a clock that steps back or leaps ahead neither marks every
 * node down nor stops judging), replica status batching (reports of a stale session, of
 * another node's replica or saying nothing new are dropped; a newer report replaces an
 * older one) and assignment differences (full, then only what changed; stops sent again
 * after a while; nodes due a push after a change, also across a wall clock step). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/fleet/assign.h"
#include "scheduler/fleet/liveness.h"
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
        int rc = sch_liveness_judge(lv, fsm, now, WALL_MS + now, &v, &err);
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

static void test_silent_node_goes_down_and_its_replicas_are_lost(void **state)
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
    assert_int_equal(replica_state(fsm, "web-b"), GANTRY__REPLICA_STATE__REPLICA_LOST);
    assert_int_equal(node_state(fsm, "n1"), GANTRY__NODE_STATE__NODE_READY);
    assert_int_equal(replica_state(fsm, "web-a"), GANTRY__REPLICA_STATE__REPLICA_PENDING);
    /* A node that is down already is not judged again. */
    assert_null(run(&lv, fsm, 16250, 30000, talking, 2, false));
    sch_liveness_free(&lv);
}

static void test_verdict_marks_live_replicas_lost(void **state)
{
    struct sch_fsm *fsm = *state;
    place(fsm, "web-c", "n2", WALL_MS);
    update(fsm, report("web-c", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "stopping"), WALL_MS);
    struct sch_liveness lv;
    sch_liveness_init(&lv, TIMEOUT_MS);
    sch_liveness_lead(&lv, 0);
    static const char *const talking[] = {"n1", "n3"};
    assert_null(run(&lv, fsm, 0, 5000, talking, 2, true));
    struct sch_liveness_verdict v;
    struct gy_error err;
    assert_int_equal(sch_liveness_judge(&lv, fsm, 5250, WALL_MS, &v, &err), 1);
    assert_string_equal(v.node, "n2");
    /* web-b is lost; web-c, stopping already, is not part of the verdict. */
    assert_int_equal(v.lost, 1);
    const Gantry__CommandBatch *b = v.command->batch;
    assert_int_equal(b->n_commands, 2);
    assert_int_equal(b->commands[0]->cmd_case, GANTRY__COMMAND__CMD_SET_NODE_STATE);
    assert_string_equal(b->commands[0]->set_node_state->reason,
                        "node n2 is down (no heartbeat for 5000ms)");
    const Gantry__UpdateReplicas *lost = b->commands[1]->update_replicas;
    assert_string_equal(lost->updates[0]->replica_id, "web-b");
    assert_int_equal(lost->updates[0]->state, GANTRY__REPLICA_STATE__REPLICA_LOST);
    assert_string_equal(v.command->actor, "liveness");
    assert_int_equal(v.command->time_ms, WALL_MS);
    gt_execute(fsm, v.command);
    sch_liveness_verdict_free(&v);
    assert_int_equal(replica_state(fsm, "web-c"), GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    assert_int_equal(replica_state(fsm, "web-b"), GANTRY__REPLICA_STATE__REPLICA_LOST);
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
    update(fsm, report("web-a", GANTRY__REPLICA_STATE__REPLICA_STOPPING, "scaled down"),
           WALL_MS + 1000);
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "start: stop:web-a");
    char stale[256] = "";
    struct gy_error err;
    assert_true(sch_assign_stale_stops(fsm, WALL_MS + 1000 + SCH_ASSIGN_RESTOP_MS - 1, note_stale,
                                       stale, &err) >= 0);
    assert_string_equal(stale, "");
    assert_true(sch_assign_stale_stops(fsm, WALL_MS + 1001 + SCH_ASSIGN_RESTOP_MS, note_stale,
                                       stale, &err) >= 0);
    assert_string_equal(stale, "web-a@n1");
    assert_true(sch_assign_sent_forget_stop(&sent, "web-a"));
    assert_false(sch_assign_sent_forget_stop(&sent, "web-a"));
    diff(fsm, "n1", false, &sent, got, sizeof(got));
    assert_string_equal(got, "start: stop:web-a");
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

static void test_nodes_due_a_push(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_push_queue q = {0};
    struct gy_error err;
    char got[256];
    /* The first look covers every change. */
    assert_true(sch_push_queue_changed(&q, fsm, WALL_MS + 60000, all_connected, NULL, &err) >= 0);
    queued(&q, got, sizeof(got));
    assert_string_equal(got, "n1,n2");
    /* Later, only what changed since the previous look (less the slack). */
    place(fsm, "web-c", "n3", WALL_MS + 60000);
    place(fsm, "web-d", "n1", WALL_MS + 60000);
    assert_true(sch_push_queue_changed(&q, fsm, WALL_MS + 70000, all_connected, NULL, &err) >= 0);
    queued(&q, got, sizeof(got));
    assert_string_equal(got, "n1"); /* n3 is not connected */
    /* The wall clock steps back an hour: changes stamped after the step are still found. */
    uint64_t back = WALL_MS + 70000 - UINT64_C(3600000);
    place(fsm, "web-e", "n2", back + 100);
    assert_true(sch_push_queue_changed(&q, fsm, back + 200, all_connected, NULL, &err) >= 0);
    queued(&q, got, sizeof(got));
    assert_true(strstr(got, "n2") != NULL);
    sch_push_queue_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_silent_node_goes_down_and_its_replicas_are_lost, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_verdict_marks_live_replicas_lost, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_comes_back, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_new_leader_gives_full_timeout, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_clock_stepping_back, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_clock_leaping_forward, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_status_of_stale_session_is_dropped, setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_status_batching, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_assignment_differences, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_stale_stops_are_sent_again, setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_due_a_push, setup, gt_fsm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
