/* Node liveness on the leader; see liveness.h. */
#include "scheduler/fleet/liveness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/fleet/fleet_command.h"
#include "scheduler/state/query_fleet.h"

static uint32_t clamp_ms(uint64_t v, uint64_t lo, uint64_t hi)
{
    return (uint32_t)(v < lo ? lo : v > hi ? hi : v);
}

void sch_liveness_session_timeouts(uint64_t node_down_ms, struct sch_session_timeouts *out)
{
    out->heartbeat_ms = clamp_ms(node_down_ms / 5, 100, 1000);
    out->silence_ms = clamp_ms(node_down_ms / 2, 1, 10000);
    out->connect_ms = clamp_ms(node_down_ms / 10, 100, 2000);
}

void sch_liveness_init(struct sch_liveness *lv, uint64_t timeout_ms)
{
    memset(lv, 0, sizeof(*lv));
    lv->timeout_ms = timeout_ms;
}

void sch_liveness_free(struct sch_liveness *lv)
{
    struct sch_fleet_node *n, *next;
    HASH_ITER(hh, lv->nodes, n, next)
    {
        HASH_DEL(lv->nodes, n);
        free(n->name);
        free(n->storage_proposed);
        free(n);
    }
}

uint64_t sch_liveness_clock(struct sch_liveness *lv, uint64_t now_ms)
{
    if (!lv->clock_started) {
        /* The clock starts at 1 so that 0 can mean "never". */
        lv->clock_started = true;
        lv->clock = 1;
    } else if (now_ms > lv->last_now) {
        uint64_t max = SCH_LIVENESS_STEP_MAX_MS;
        if (lv->timeout_ms / 2 < max)
            max = lv->timeout_ms / 2;
        uint64_t step = now_ms - lv->last_now;
        lv->clock += step < max ? step : max;
    }
    lv->last_now = now_ms;
    return lv->clock;
}

void sch_liveness_lead(struct sch_liveness *lv, uint64_t now_ms)
{
    lv->leading_since = sch_liveness_clock(lv, now_ms);
    struct sch_fleet_node *n, *next;
    HASH_ITER(hh, lv->nodes, n, next)
    {
        n->down_since = 0;
        n->up_seen = false;
    }
}

uint64_t sch_liveness_down_for(struct sch_liveness *lv, const char *node, uint64_t now_ms)
{
    struct sch_fleet_node *n = sch_liveness_node(lv, node, now_ms);
    uint64_t clock = sch_liveness_clock(lv, now_ms);
    if (n->down_since == 0)
        n->down_since = n->up_seen || lv->leading_since == 0 ? clock : lv->leading_since;
    return clock - n->down_since;
}

struct sch_fleet_node *sch_liveness_find(struct sch_liveness *lv, const char *name)
{
    struct sch_fleet_node *n;
    HASH_FIND_STR(lv->nodes, name, n);
    return n;
}

struct sch_fleet_node *sch_liveness_node(struct sch_liveness *lv, const char *name, uint64_t now_ms)
{
    struct sch_fleet_node *n = sch_liveness_find(lv, name);
    if (n != NULL)
        return n;
    n = gy_xcalloc(1, sizeof(*n));
    n->name = gy_xstrdup(name);
    n->heard = sch_liveness_clock(lv, now_ms);
    HASH_ADD_KEYPTR(hh, lv->nodes, n->name, strlen(n->name), n);
    return n;
}

uint64_t sch_liveness_connect(struct sch_liveness *lv, struct sch_fleet_node *node, uint64_t now_ms)
{
    node->session = ++lv->sessions;
    node->heard = sch_liveness_clock(lv, now_ms);
    node->suspect = node->silent = false;
    return node->session;
}

void sch_liveness_disconnect(struct sch_liveness *lv, struct sch_fleet_node *node, uint64_t session,
                             uint64_t now_ms)
{
    uint64_t clock = sch_liveness_clock(lv, now_ms);
    /* An agent that left (or was replaced) has the full timeout from here to come back; one
     * that fell silent has only what is left of it. */
    if (!(node->silent && node->session == session))
        node->heard = clock;
    if (node->session == session) {
        node->session = 0;
        node->agent = NULL;
        node->suspect = node->silent = false;
    }
}

void sch_liveness_heard(struct sch_liveness *lv, struct sch_fleet_node *node, uint64_t now_ms)
{
    node->heard = sch_liveness_clock(lv, now_ms);
    node->suspect = false;
}

bool sch_liveness_session_silent(struct sch_liveness *lv, struct sch_fleet_node *node,
                                 uint64_t now_ms, uint64_t silence_ms)
{
    uint64_t clock = sch_liveness_clock(lv, now_ms);
    if (node->session == 0 || clock <= node->heard || clock - node->heard <= silence_ms) {
        node->suspect = false;
        return false;
    }
    if (!node->suspect) {
        node->suspect = true;
        return false;
    }
    node->silent = true;
    return true;
}

/* The walk over the nodes that are not down, stopped at the first silent one. */
struct walk {
    struct sch_liveness *lv;
    uint64_t clock;
    uint64_t now_ms;
    char *down;
};

static bool node_judge(void *data, const char *name)
{
    struct walk *wk = data;
    struct sch_liveness *lv = wk->lv;
    struct sch_fleet_node *n = sch_liveness_node(lv, name, wk->now_ms);
    n->down_since = 0; /* the state holds it up */
    n->up_seen = true;
    uint64_t last = n->heard;
    /* A new leader gives every node the full timeout before judging it. */
    if (last < lv->leading_since)
        last = lv->leading_since;
    if (wk->clock > last && wk->clock - last > lv->timeout_ms) {
        wk->down = gy_xstrdup(name);
        return false;
    }
    return true;
}

/* The verdict under construction: the node's live replicas, marked unknown. Each keeps
 * what its agent last reported but readiness: nobody can tell whether it still serves. */
struct marking {
    Gantry__ReplicaStatus **unknown;
    size_t n_unknown;
    const char *reason;
    uint64_t wall_ms;
};

static void replica_mark_unknown(void *data, const struct sch_node_status_row *r)
{
    struct marking *mk = data;
    Gantry__ReplicaStatus *st = gy_xmalloc(sizeof(*st));
    gantry__replica_status__init(st);
    st->replica_id = gy_xstrdup(r->id);
    st->workload = gy_xstrdup(r->workload);
    st->generation = r->generation;
    st->state = (Gantry__ReplicaState)r->state;
    st->ready = false;
    st->restarts = r->restarts;
    st->exit_code = r->exit_code;
    st->exit_signal = r->exit_signal;
    st->oom_killed = r->oom_killed;
    st->address = gy_xstrdup(r->address);
    st->reason = gy_xstrdup(mk->reason);
    st->changed_ms = mk->wall_ms;
    mk->unknown = gy_xrealloc(mk->unknown, (mk->n_unknown + 1) * sizeof(*mk->unknown));
    mk->unknown[mk->n_unknown++] = st;
}

int sch_liveness_judge(struct sch_liveness *lv, struct sch_fsm *fsm, uint64_t now_ms,
                       uint64_t wall_ms, struct sch_liveness_verdict *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    uint64_t clock = sch_liveness_clock(lv, now_ms);
    if (lv->judged_at != 0 && clock - lv->judged_at < SCH_LIVENESS_EVERY_MS)
        return 0;
    lv->judged_at = clock;
    struct walk wk = {.lv = lv, .clock = clock, .now_ms = now_ms};
    int rc = sch_query_nodes_not_down(fsm, node_judge, &wk, err);
    if (rc < 0 || wk.down == NULL) {
        free(wk.down);
        return rc < 0 ? rc : 0;
    }
    char reason[256], unknown[300];
    snprintf(reason, sizeof(reason), "node %s is down (no heartbeat for %" PRIu64 "ms)", wk.down,
             lv->timeout_ms);
    snprintf(unknown, sizeof(unknown), "%s%s", SCH_REPLICA_UNKNOWN_PREFIX, reason);
    struct marking mk = {.reason = unknown, .wall_ms = wall_ms};
    rc = sch_query_node_live_status(fsm, wk.down, replica_mark_unknown, &mk, err);
    if (rc < 0) {
        for (size_t i = 0; i < mk.n_unknown; i++)
            gantry__replica_status__free_unpacked(mk.unknown[i], NULL);
        free(mk.unknown);
        free(wk.down);
        return rc;
    }
    /* One command: the node goes down and its live replicas are unknown, so that the
     * reconciler replaces them once their workload's disconnect_grace has passed. */
    Gantry__Command *set = fleet_command_new("liveness", wall_ms);
    set->cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
    set->set_node_state = gy_xmalloc(sizeof(*set->set_node_state));
    gantry__set_node_state__init(set->set_node_state);
    set->set_node_state->name = gy_xstrdup(wk.down);
    set->set_node_state->state = GANTRY__NODE_STATE__NODE_DOWN;
    set->set_node_state->reason = gy_xstrdup(reason);
    Gantry__Command **parts = gy_xcalloc(2, sizeof(*parts));
    size_t n_parts = 0;
    parts[n_parts++] = set;
    if (mk.n_unknown > 0) {
        Gantry__Command *mark = fleet_command_new("liveness", wall_ms);
        mark->cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
        mark->update_replicas = gy_xmalloc(sizeof(*mark->update_replicas));
        gantry__update_replicas__init(mark->update_replicas);
        mark->update_replicas->updates = mk.unknown;
        mark->update_replicas->n_updates = mk.n_unknown;
        parts[n_parts++] = mark;
    } else {
        free(mk.unknown);
    }
    /* The disconnect_grace of its replicas counts from this verdict. */
    sch_liveness_find(lv, wk.down)->down_since = clock;
    out->node = wk.down;
    out->unknown = mk.n_unknown;
    out->command = fleet_command_batch("liveness", wall_ms, parts, n_parts);
    return 1;
}

void sch_liveness_verdict_free(struct sch_liveness_verdict *verdict)
{
    /* Every part was allocated with malloc, as protobuf-c's unpacker would have. */
    if (verdict->command != NULL)
        protobuf_c_message_free_unpacked(&verdict->command->base, NULL);
    free(verdict->node);
    memset(verdict, 0, sizeof(*verdict));
}
