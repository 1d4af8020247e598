/* The leader's side of the fleet; see fleet.h and docs/agent-protocol.md. */
#include "scheduler/fleet/fleet.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>
#include <uv.h>
#ifdef GANTRY_WITH_MIMALLOC
#include <mimalloc.h>
#endif

#include "common/log.h"
#include "common/xalloc.h"
#include "proto/frame.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/fleet/autoscaler.h"
#include "scheduler/fleet/reconcile.h"
#include "scheduler/server.h"

#define LEADER_TICK_MS 100
/* Assignment pushes look back this far for changed replicas, to cover proposals made
 * before the previous push and applied after it. */
#define PUSH_SLACK_MS 5000
#define HEARTBEAT_MS  1000
#define STATUS_BATCH  2048 /* status reports proposed in one command at most */

/* A sorted set of replica ids. */
struct idset {
    char **ids;
    size_t n;
    size_t cap;
};

static size_t idset_pos(const struct idset *s, const char *id, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->ids[mid], id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool idset_has(const struct idset *s, const char *id)
{
    bool found;
    idset_pos(s, id, &found);
    return found;
}

static void idset_add(struct idset *s, const char *id)
{
    bool found;
    size_t pos = idset_pos(s, id, &found);
    if (found)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->ids = gy_xrealloc(s->ids, s->cap * sizeof(*s->ids));
    }
    memmove(&s->ids[pos + 1], &s->ids[pos], (s->n - pos) * sizeof(*s->ids));
    s->ids[pos] = gy_xstrdup(id);
    s->n++;
}

static void idset_remove(struct idset *s, const char *id)
{
    bool found;
    size_t pos = idset_pos(s, id, &found);
    if (!found)
        return;
    free(s->ids[pos]);
    memmove(&s->ids[pos], &s->ids[pos + 1], (s->n - pos - 1) * sizeof(*s->ids));
    s->n--;
}

static void idset_free(struct idset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    memset(s, 0, sizeof(*s));
}

struct session {
    struct sch_leader *leader;
    struct session *next;
    uv_tcp_t tcp;
    struct gy_frame_decoder decoder;
    char *node;
    bool welcomed;
    bool closing;
    uint64_t last_seen;
    struct idset started; /* replicas this agent was told to run */
    struct idset stopped; /* replicas this agent was told to stop */
};

/* What the leader knows of one node outside the state: its live session, if any, and
 * when it was last heard of. Kept in a hash table by node name, so that a fleet of
 * thousands of nodes costs no scan per lookup. */
struct seen {
    char *node; /* NULL: free slot */
    struct session *session;
    uint64_t at;
};

struct log_request {
    struct log_request *next;
    uint64_t id;
    struct sch_call *call;
    struct session *session;
    bool follow;
    bool started;
};

struct sch_leader {
    struct sch_server *server;
    uv_tcp_t listener;
    bool listening;
    uv_timer_t tick;
    uv_timer_t kick;
    struct session *sessions;
    struct seen *seen; /* hash table, open addressing */
    size_t n_seen;
    size_t cap_seen;
    bool leading;
    bool caught_up; /* a barrier of this term has applied: the state is complete */
    bool barrier_inflight;
    uint64_t leading_since;
    bool dirty_reconcile;  /* a pass over every workload is due */
    uint64_t pushed_epoch; /* fsm.fleet_epoch at the last assignment push */
    uint64_t push_mark_ms; /* wall clock of the last assignment push */
    /* Nodes whose assignment is due, pushed a slice per pass of the duties (see
     * push_some), so a placement over thousands of nodes does not hold the loop. */
    char **push_nodes;
    size_t n_push;
    size_t cap_push;
    size_t push_pos;
    bool reconcile_inflight;
    /* A large placement goes to Raft in slices of PLACE_SLICE replicas, one committed
     * before the next is proposed: each slice's apply is short on every server, so no
     * loop stops answering Raft for long. The plan's placements are kept until then. */
    struct sch_reconcile_plan plan;
    Gantry__PlaceReplicas *place;
    size_t place_next;
    size_t place_total;
    int place_inflight; /* proposals of the plan not settled yet */
    bool place_failed;  /* one of them failed: the rest is planned again */
    bool status_inflight;
    bool liveness_inflight;
    uint64_t liveness_at;            /* uv_now() of the last liveness walk */
    Gantry__ReplicaStatus **pending; /* status reports waiting for the next proposal */
    size_t n_pending;
    size_t *pending_index; /* hash of replica id -> position in pending + 1; 0 = free */
    size_t cap_index;
    struct log_request *logs;
    uint64_t next_log_id;
    struct sch_autoscaler *autoscaler; /* usage windows and scale decisions */
    uint64_t autoscaled_at;            /* uv_now of the last evaluation */
    bool autoscale_inflight;
    uint64_t drain_checked_at; /* uv_now of the last look for drained nodes */
    uint64_t reconcile_passes;
    uint64_t reconciled_at; /* uv_now of the last pass */
    uint64_t trimmed_at;    /* uv_now of the last malloc_trim */
    uint64_t restopped_at;  /* loop time of the last restop_stale */
    uint64_t room_seen;     /* fsm.room_epoch when waiting workloads were last retried */
    uint64_t rng;
    bool listener_init;
    bool closing;
    int open_handles;
    int inflight; /* proposals and barriers whose callbacks have not run yet */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t leader_random(void *data)
{
    struct sch_leader *l = data;
    /* xorshift64*: replica ids only need to be unlikely to collide. */
    l->rng ^= l->rng >> 12;
    l->rng ^= l->rng << 25;
    l->rng ^= l->rng >> 27;
    return (uint32_t)((l->rng * 2685821657736338717ULL) >> 32);
}

static sqlite3 *db_of(struct sch_leader *l)
{
    return l->server->node.fsm.db;
}

static void on_kick(uv_timer_t *t);

/* Runs the leader's duties soon: a few milliseconds coalesce a burst of applied commands
 * into one pass, which matters when each pass reads the whole state. */
#define KICK_DELAY_MS 5

static void kick(struct sch_leader *l)
{
    if (!l->closing && !l->server->stopping && !uv_is_active((uv_handle_t *)&l->kick))
        uv_timer_start(&l->kick, on_kick, KICK_DELAY_MS, 0);
}

/* ---------------------------------------------------------------------------------------
 * Sessions: framing and writes */

struct write_req {
    uv_write_t req;
    uint8_t *buf;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    (void)status; /* a failed write shows up as a read error */
    free(w->buf);
    free(w);
}

static void session_send(struct session *s, const Gantry__AgentFrame *f)
{
    if (s->closing)
        return;
    struct write_req *w = gy_xmalloc(sizeof(*w));
    size_t len;
    if (gy_frame_pack(&f->base, &w->buf, &len, NULL) < 0) {
        free(w);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
        free(w->buf);
        free(w);
    }
}

/* ---------------------------------------------------------------------------------------
 * Node liveness bookkeeping */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static struct seen *seen_slot(struct seen *table, size_t cap, const char *node)
{
    size_t i = (size_t)name_hash(node) & (cap - 1);
    while (table[i].node != NULL && strcmp(table[i].node, node) != 0)
        i = (i + 1) & (cap - 1);
    return &table[i];
}

static struct seen *seen_get(struct sch_leader *l, const char *node)
{
    if ((l->n_seen + 1) * 10 > l->cap_seen * 7) {
        size_t cap = l->cap_seen ? l->cap_seen * 2 : 64;
        struct seen *table = gy_xcalloc(cap, sizeof(*table));
        for (size_t i = 0; i < l->cap_seen; i++)
            if (l->seen[i].node != NULL)
                *seen_slot(table, cap, l->seen[i].node) = l->seen[i];
        free(l->seen);
        l->seen = table;
        l->cap_seen = cap;
    }
    struct seen *e = seen_slot(l->seen, l->cap_seen, node);
    if (e->node == NULL) {
        e->node = gy_xstrdup(node);
        e->session = NULL;
        e->at = uv_now(l->server->loop);
        l->n_seen++;
    }
    return e;
}

static struct session *session_of_node(struct sch_leader *l, const char *node)
{
    if (l->cap_seen == 0)
        return NULL;
    struct seen *e = seen_slot(l->seen, l->cap_seen, node);
    struct session *s = e->node != NULL ? e->session : NULL;
    return s != NULL && s->welcomed && !s->closing ? s : NULL;
}

/* ---------------------------------------------------------------------------------------
 * Session life cycle */

static void log_request_finish(struct sch_leader *l, struct log_request *r, const char *error);

/* Frees a closing leader once its last handle is closed and its last proposal settled:
 * Raft calls back after the leader's part of the server has closed. */
static void leader_maybe_free(struct sch_leader *l)
{
    if (l->open_handles > 0 || l->inflight > 0 || !l->closing)
        return;
    void (*cb)(void *) = l->close_cb;
    void *arg = l->close_arg;
    sch_autoscaler_free(l->autoscaler);
    free(l);
    if (cb != NULL)
        cb(arg);
}

static void leader_handle_gone(struct sch_leader *l)
{
    l->open_handles--;
    leader_maybe_free(l);
}

/* Proposes a command whose callback takes the leader as data; counted so the leader
 * outlives it. lazy for the reconciler's plans, which share the next entry of a client's
 * write (see sch_node_propose_lazy). */
static int leader_propose_as(struct sch_leader *l, const Gantry__Command *cmd, sch_propose_cb cb,
                             bool lazy, struct gy_error *err)
{
    struct sch_node *node = &l->server->node;
    int rc = lazy ? sch_node_propose_lazy(node, cmd, cb, l, err)
                  : sch_node_propose(node, cmd, cb, l, err);
    if (rc == 0)
        l->inflight++;
    return rc;
}

static int leader_propose(struct sch_leader *l, const Gantry__Command *cmd, sch_propose_cb cb,
                          struct gy_error *err)
{
    return leader_propose_as(l, cmd, cb, false, err);
}

/* Called first by every proposal callback: false when the leader is closing (and freed
 * if this was the last thing it waited for). */
static bool leader_settled(struct sch_leader *l)
{
    l->inflight--;
    if (l->closing) {
        leader_maybe_free(l);
        return false;
    }
    return true;
}

static void session_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    struct sch_leader *l = s->leader;
    gy_frame_decoder_free(&s->decoder);
    idset_free(&s->started);
    idset_free(&s->stopped);
    free(s->node);
    free(s);
    leader_handle_gone(l);
}

static void session_close(struct session *s, const char *why)
{
    if (s->closing)
        return;
    s->closing = true;
    struct sch_leader *l = s->leader;
    if (s->node != NULL) {
        struct seen *e = seen_get(l, s->node);
        e->at = uv_now(l->server->loop);
        if (e->session == s)
            e->session = NULL;
        if (s->welcomed)
            gy_log_info("agent session closed", "node=%s reason=\"%s\"", s->node, why);
    }
    for (struct log_request *r = l->logs, *next; r != NULL; r = next) {
        next = r->next;
        if (r->session == s)
            log_request_finish(l, r, "the replica's node disconnected");
    }
    for (struct session **p = &l->sessions; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&s->tcp, session_closed);
}

/* ---------------------------------------------------------------------------------------
 * Assignments */

/* The specs of the workloads one push names, decoded once each: a push to thousands of
 * nodes names the same few workloads over and over. Keyed by workload name. */
struct spec_cache {
    sqlite3_stmt *query;
    struct spec_entry {
        char *name;                 /* NULL: free slot */
        Gantry__WorkloadSpec *spec; /* NULL: the workload is gone */
    } * slots;
    size_t n;
    size_t cap;
};

static void spec_cache_free(struct spec_cache *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slots[i].name == NULL)
            continue;
        free(c->slots[i].name);
        if (c->slots[i].spec != NULL)
            gantry__workload_spec__free_unpacked(c->slots[i].spec, NULL);
    }
    free(c->slots);
    sqlite3_finalize(c->query);
    memset(c, 0, sizeof(*c));
}

static struct spec_entry *spec_slot(struct spec_entry *slots, size_t cap, const char *name)
{
    size_t i = (size_t)name_hash(name) & (cap - 1);
    while (slots[i].name != NULL && strcmp(slots[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* The current spec of a workload; NULL when it is gone. The cache keeps it. */
static Gantry__WorkloadSpec *spec_get(sqlite3 *db, struct spec_cache *c, const char *workload)
{
    if ((c->n + 1) * 2 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct spec_entry *slots = gy_xcalloc(cap, sizeof(*slots));
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].name != NULL)
                *spec_slot(slots, cap, c->slots[i].name) = c->slots[i];
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    struct spec_entry *e = spec_slot(c->slots, c->cap, workload);
    if (e->name != NULL)
        return e->spec;
    if (c->query == NULL && sqlite3_prepare_v2(db, "SELECT spec FROM workloads WHERE name = ?", -1,
                                               &c->query, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(c->query);
    sqlite3_bind_text(c->query, 1, workload, -1, SQLITE_STATIC);
    e->name = gy_xstrdup(workload);
    e->spec = NULL;
    if (sqlite3_step(c->query) == SQLITE_ROW)
        e->spec = gantry__workload_spec__unpack(NULL, (size_t)sqlite3_column_bytes(c->query, 0),
                                                sqlite3_column_blob(c->query, 0));
    sqlite3_reset(c->query);
    c->n++;
    return e->spec;
}

/* Builds an AssignedReplica for one replica row; NULL when its workload is gone. The spec
 * is the cache's. */
static Gantry__AssignedReplica *assigned(sqlite3 *db, struct spec_cache *cache, const char *id,
                                         const char *workload, uint64_t generation)
{
    Gantry__WorkloadSpec *spec = spec_get(db, cache, workload);
    if (spec == NULL)
        return NULL;
    Gantry__AssignedReplica *a = gy_xmalloc(sizeof(*a));
    gantry__assigned_replica__init(a);
    a->replica_id = gy_xstrdup(id);
    a->generation = generation;
    a->spec = spec;
    return a;
}

/* Sends each session what changed for its node since the last push: replicas to start
 * (live in the state, not yet sent) and to stop (stopping or lost in the state, or gone
 * from it). With full, the first assignment of a session: everything, and the agent stops
 * whatever the list does not name. */
static void push_assignment(struct sch_leader *l, struct session *s, bool full,
                            struct spec_cache *cache)
{
    sqlite3 *db = db_of(l);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, workload, generation, state FROM replicas WHERE node = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(q, 1, s->node, -1, SQLITE_STATIC);
    Gantry__AssignedReplica **start = NULL;
    char **stop = NULL;
    size_t n_start = 0, n_stop = 0;
    struct idset live = {0};
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        const char *workload = (const char *)sqlite3_column_text(q, 1);
        uint64_t generation = (uint64_t)sqlite3_column_int64(q, 2);
        int state = sqlite3_column_int(q, 3);
        if (sch_replica_state_is_live(state)) {
            idset_add(&live, id);
            if (!full && idset_has(&s->started, id))
                continue;
            Gantry__AssignedReplica *a = assigned(db, cache, id, workload, generation);
            if (a == NULL)
                continue;
            start = gy_xrealloc(start, (n_start + 1) * sizeof(*start));
            start[n_start++] = a;
            idset_add(&s->started, id);
        } else if (!idset_has(&s->stopped, id)) {
            stop = gy_xrealloc(stop, (n_stop + 1) * sizeof(*stop));
            stop[n_stop++] = gy_xstrdup(id);
            idset_add(&s->stopped, id);
            idset_remove(&s->started, id);
        }
    }
    sqlite3_finalize(q);
    /* Replicas sent earlier that the state no longer holds as live on this node. */
    for (size_t i = 0; i < s->started.n;) {
        const char *id = s->started.ids[i];
        if (idset_has(&live, id)) {
            i++;
            continue;
        }
        if (!idset_has(&s->stopped, id)) {
            stop = gy_xrealloc(stop, (n_stop + 1) * sizeof(*stop));
            stop[n_stop++] = gy_xstrdup(id);
            idset_add(&s->stopped, id);
        }
        idset_remove(&s->started, id);
    }
    idset_free(&live);
    if (full || n_start > 0 || n_stop > 0) {
        Gantry__Assignment as = GANTRY__ASSIGNMENT__INIT;
        as.full = full;
        as.start = start;
        as.n_start = n_start;
        as.stop = stop;
        as.n_stop = n_stop;
        Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
        f.frame_case = GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT;
        f.assignment = &as;
        session_send(s, &f);
        gy_log_debug("assignment pushed", "node=%s start=%zu stop=%zu", s->node, n_start, n_stop);
    }
    for (size_t i = 0; i < n_start; i++) {
        free(start[i]->replica_id);
        free(start[i]);
    }
    for (size_t i = 0; i < n_stop; i++)
        free(stop[i]);
    free(start);
    free(stop);
}

static void push_queue_clear(struct sch_leader *l)
{
    for (size_t i = 0; i < l->n_push; i++)
        free(l->push_nodes[i]);
    free(l->push_nodes);
    l->push_nodes = NULL;
    l->n_push = l->cap_push = l->push_pos = 0;
}

static void push_queue_add(struct sch_leader *l, const char *node)
{
    if (l->n_push == l->cap_push) {
        l->cap_push = l->cap_push ? l->cap_push * 2 : 64;
        l->push_nodes = gy_xrealloc(l->push_nodes, l->cap_push * sizeof(*l->push_nodes));
    }
    l->push_nodes[l->n_push++] = gy_xstrdup(node);
}

/* Queues the nodes whose replicas were recently placed, asked to stop or lost: only those
 * can have a new assignment, so a large fleet is not walked after every change. A node
 * queued twice is pushed twice; the second push finds nothing new to send. */
static void push_changed(struct sch_leader *l)
{
    uint64_t now = wall_ms();
    uint64_t since = l->push_mark_ms > PUSH_SLACK_MS ? l->push_mark_ms - PUSH_SLACK_MS : 0;
    l->push_mark_ms = now;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db_of(l),
                           "SELECT DISTINCT node FROM replicas WHERE changed_ms >= ?"
                           " AND state IN (?, ?, ?)",
                           -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)since);
    sqlite3_bind_int(q, 2, GANTRY__REPLICA_STATE__REPLICA_PENDING);
    sqlite3_bind_int(q, 3, GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    sqlite3_bind_int(q, 4, GANTRY__REPLICA_STATE__REPLICA_LOST);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *node = (const char *)sqlite3_column_text(q, 0);
        if (session_of_node(l, node) != NULL)
            push_queue_add(l, node);
    }
    sqlite3_finalize(q);
}

/* Stops are sent again for replicas that have been stopping for long: the agent's last
 * report may have been lost (with a leader, or a proposal that failed). An agent that no
 * longer holds the replica answers that it is stopped; one still stopping it ignores it. */
#define RESTOP_AFTER_MS 10000

static void restop_stale(struct sch_leader *l)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db_of(l),
                           "SELECT id, node FROM replicas WHERE state = ? AND changed_ms < ?", -1,
                           &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int(q, 1, GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)(wall_ms() - RESTOP_AFTER_MS));
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        struct session *s = session_of_node(l, (const char *)sqlite3_column_text(q, 1));
        if (s == NULL || !idset_has(&s->stopped, id))
            continue;
        idset_remove(&s->stopped, id);
        push_queue_add(l, s->node);
    }
    sqlite3_finalize(q);
}

/* Pushes queued assignments for at most PUSH_SLICE_NS of loop time, then leaves the rest
 * to the next pass (which it asks for): Raft's heartbeats and the agents' frames are
 * served in between. */
#define PUSH_SLICE_NS (20 * 1000000ULL)

static void push_some(struct sch_leader *l)
{
    if (l->push_pos == l->n_push)
        return;
    uint64_t start = uv_hrtime();
    struct spec_cache cache = {0};
    while (l->push_pos < l->n_push && uv_hrtime() - start < PUSH_SLICE_NS) {
        struct session *s = session_of_node(l, l->push_nodes[l->push_pos++]);
        if (s != NULL)
            push_assignment(l, s, false, &cache);
    }
    spec_cache_free(&cache);
    if (l->push_pos == l->n_push)
        push_queue_clear(l);
    else
        kick(l);
}

/* ---------------------------------------------------------------------------------------
 * Replica status: reports are coalesced per replica and proposed in one command */

/* True when the report says something the state does not already hold. */
static const char status_sql[] = "SELECT node, state, ready, restarts, exit_code, address, reason"
                                 " FROM replicas WHERE id = ?";

static bool status_is_news(struct sch_fsm *fsm, const char *node, const Gantry__ReplicaStatus *st)
{
    /* Prepared once: a fleet sends thousands of reports a second. */
    sqlite3_stmt *q = sch_fsm_stmt(fsm, status_sql);
    if (q == NULL)
        return false;
    sqlite3_bind_text(q, 1, st->replica_id, -1, SQLITE_STATIC);
    bool news = false;
    if (sqlite3_step(q) == SQLITE_ROW) {
        /* Only the node that holds a replica speaks for it. */
        if (strcmp((const char *)sqlite3_column_text(q, 0), node) == 0)
            news = sqlite3_column_int(q, 1) != (int)st->state ||
                   sqlite3_column_int(q, 2) != (int)st->ready ||
                   sqlite3_column_int64(q, 3) != (int64_t)st->restarts ||
                   sqlite3_column_int(q, 4) != st->exit_code ||
                   strcmp((const char *)sqlite3_column_text(q, 5), st->address) != 0 ||
                   strcmp((const char *)sqlite3_column_text(q, 6), st->reason) != 0;
    }
    sqlite3_reset(q);
    return news;
}

/* Rebuilds the hash index of pending reports (after a flush or when it fills up). */
static void pending_reindex(struct sch_leader *l)
{
    size_t cap = 64;
    while (cap < l->n_pending * 2 + 2)
        cap *= 2;
    if (cap != l->cap_index) {
        free(l->pending_index);
        l->pending_index = gy_xcalloc(cap, sizeof(*l->pending_index));
        l->cap_index = cap;
    } else {
        memset(l->pending_index, 0, cap * sizeof(*l->pending_index));
    }
    for (size_t i = 0; i < l->n_pending; i++) {
        size_t h = (size_t)name_hash(l->pending[i]->replica_id) & (cap - 1);
        while (l->pending_index[h] != 0)
            h = (h + 1) & (cap - 1);
        l->pending_index[h] = i + 1;
    }
}

/* The slot of a replica id in the index: its entry, or the free slot where it goes. */
static size_t *pending_slot(struct sch_leader *l, const char *id)
{
    size_t h = (size_t)name_hash(id) & (l->cap_index - 1);
    while (l->pending_index[h] != 0 &&
           strcmp(l->pending[l->pending_index[h] - 1]->replica_id, id) != 0)
        h = (h + 1) & (l->cap_index - 1);
    return &l->pending_index[h];
}

static void status_queue(struct sch_leader *l, const char *node, const Gantry__ReplicaStatus *st)
{
    if (!status_is_news(&l->server->node.fsm, node, st))
        return;
    /* A deep copy through the wire form keeps ownership simple. */
    size_t len = gantry__replica_status__get_packed_size(st);
    uint8_t *buf = gy_xmalloc(len ? len : 1);
    gantry__replica_status__pack(st, buf);
    Gantry__ReplicaStatus *copy = gantry__replica_status__unpack(NULL, len, buf);
    free(buf);
    if (copy == NULL)
        return;
    if ((l->n_pending + 1) * 2 > l->cap_index)
        pending_reindex(l);
    size_t *slot = pending_slot(l, copy->replica_id);
    if (*slot != 0) {
        /* A newer report of the same replica replaces the one not yet proposed. */
        gantry__replica_status__free_unpacked(l->pending[*slot - 1], NULL);
        l->pending[*slot - 1] = copy;
    } else {
        l->pending = gy_xrealloc(l->pending, (l->n_pending + 1) * sizeof(*l->pending));
        l->pending[l->n_pending++] = copy;
        *slot = l->n_pending;
    }
    kick(l);
}

static void status_done(void *data, int status, const struct sch_result *result,
                        const char *message)
{
    struct sch_leader *l = data;
    (void)result;
    if (!leader_settled(l))
        return;
    l->status_inflight = false;
    gy_log_debug("replica status recorded", "status=%d", status);
    if (status < 0)
        gy_log_warn("replica status not recorded", "error=\"%s\"", message ? message : "");
    kick(l);
}

static void status_flush(struct sch_leader *l)
{
    if (l->status_inflight || l->n_pending == 0)
        return;
    size_t n = l->n_pending < STATUS_BATCH ? l->n_pending : STATUS_BATCH;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    Gantry__UpdateReplicas up = GANTRY__UPDATE_REPLICAS__INIT;
    up.updates = l->pending;
    up.n_updates = n;
    cmd.time_ms = wall_ms();
    cmd.actor = (char *)"agents";
    cmd.cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
    cmd.update_replicas = &up;
    struct gy_error err;
    if (leader_propose(l, &cmd, status_done, &err) == 0)
        l->status_inflight = true;
    gy_log_debug("replica status proposed", "reports=%zu", n);
    for (size_t i = 0; i < n; i++)
        gantry__replica_status__free_unpacked(l->pending[i], NULL);
    memmove(l->pending, l->pending + n, (l->n_pending - n) * sizeof(*l->pending));
    l->n_pending -= n;
    pending_reindex(l);
}

/* ---------------------------------------------------------------------------------------
 * Frames from agents */

static void registered(void *data, int status, const struct sch_result *result, const char *message)
{
    struct sch_leader *l = data;
    (void)result;
    if (!leader_settled(l))
        return;
    if (status < 0)
        gy_log_warn("node registration not recorded", "error=\"%s\"", message ? message : "");
    kick(l);
}

/* Whether the node's registration in the state already says what hello says. */
static bool node_known_as(sqlite3 *db, const Gantry__NodeInfo *n)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db,
                           "SELECT cloud, region, zone, cpu_millis, memory_bytes, pids, cost,"
                           " address, state FROM nodes WHERE name = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(q, 1, n->name, -1, SQLITE_STATIC);
    bool same = false;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const Gantry__Resources *c = n->capacity;
        same = strcmp((const char *)sqlite3_column_text(q, 0), n->cloud) == 0 &&
               strcmp((const char *)sqlite3_column_text(q, 1), n->region) == 0 &&
               strcmp((const char *)sqlite3_column_text(q, 2), n->zone) == 0 && c != NULL &&
               sqlite3_column_int64(q, 3) == c->cpu_millis &&
               sqlite3_column_int64(q, 4) == c->memory_bytes &&
               sqlite3_column_int64(q, 5) == c->pids &&
               sqlite3_column_double(q, 6) == n->cost_per_hour &&
               strcmp((const char *)sqlite3_column_text(q, 7), n->address) == 0 &&
               sqlite3_column_int(q, 8) != GANTRY__NODE_STATE__NODE_DOWN;
    }
    sqlite3_finalize(q);
    /* Labels are compared by re-registering on every change of the other fields only; a
     * label change alone is picked up when the agent restarts with new flags. */
    return same;
}

static void redirect(struct session *s, const char *reason)
{
    struct sch_leader *l = s->leader;
    char api[256];
    uint64_t leader_id = sch_node_leader(&l->server->node, api, sizeof(api));
    char agent[256] = "";
    if (leader_id != 0) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db_of(l), "SELECT agent_address FROM servers WHERE id = ?", -1, &q,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_int64(q, 1, (sqlite3_int64)leader_id);
            if (sqlite3_step(q) == SQLITE_ROW)
                snprintf(agent, sizeof(agent), "%s", sqlite3_column_text(q, 0));
            sqlite3_finalize(q);
        }
    }
    Gantry__Redirect r = GANTRY__REDIRECT__INIT;
    r.leader_agent_address = reason == NULL ? agent : (char *)"";
    r.reason = (char *)(reason != NULL ? reason : "not the leader");
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_REDIRECT;
    f.redirect = &r;
    session_send(s, &f);
    session_close(s, r.reason);
}

static void on_hello(struct session *s, const Gantry__Hello *h)
{
    struct sch_leader *l = s->leader;
    if (h->node == NULL || h->node->name == NULL || h->node->name[0] == '\0') {
        session_close(s, "hello without a node name");
        return;
    }
    if (!l->leading) {
        redirect(s, NULL);
        return;
    }
    const char *cluster = l->server->node.cluster_id;
    if (h->cluster_id != NULL && h->cluster_id[0] != '\0' && strcmp(h->cluster_id, cluster) != 0) {
        char why[256];
        snprintf(why, sizeof(why), "agent belongs to cluster %s, this is cluster %s", h->cluster_id,
                 cluster);
        gy_log_warn("agent refused", "node=%s reason=\"%s\"", h->node->name, why);
        redirect(s, why);
        return;
    }
    /* One session per node: a reconnecting agent replaces its old session. */
    struct session *old = session_of_node(l, h->node->name);
    if (old != NULL)
        session_close(old, "replaced by a new session");
    s->node = gy_xstrdup(h->node->name);
    s->welcomed = true;
    s->last_seen = uv_now(l->server->loop);
    struct seen *e = seen_get(l, s->node);
    e->at = s->last_seen;
    e->session = s;

    if (!node_known_as(db_of(l), h->node)) {
        Gantry__Command cmd = GANTRY__COMMAND__INIT;
        Gantry__RegisterNode reg = GANTRY__REGISTER_NODE__INIT;
        reg.node = h->node;
        cmd.time_ms = wall_ms();
        char actor[160];
        snprintf(actor, sizeof(actor), "agent:%s", s->node);
        cmd.actor = actor;
        cmd.cmd_case = GANTRY__COMMAND__CMD_REGISTER_NODE;
        cmd.register_node = &reg;
        struct gy_error err;
        if (leader_propose(l, &cmd, registered, &err) < 0)
            gy_log_warn("cannot register node", "node=%s error=\"%s\"", s->node, err.msg);
    }
    Gantry__Welcome w = GANTRY__WELCOME__INIT;
    w.cluster_id = (char *)cluster;
    w.server_id = l->server->node.cfg.id;
    w.heartbeat_interval_ms = HEARTBEAT_MS;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_WELCOME;
    f.welcome = &w;
    session_send(s, &f);
    gy_log_info("agent session established", "node=%s replicas=%zu", s->node, h->n_replicas);
    for (size_t i = 0; i < h->n_replicas; i++)
        status_queue(l, s->node, h->replicas[i]);
    /* The full assignment resynchronises the agent with the state. */
    idset_free(&s->started);
    idset_free(&s->stopped);
    struct spec_cache cache = {0};
    push_assignment(l, s, true, &cache);
    spec_cache_free(&cache);
}

static void on_log_chunk(struct sch_leader *l, const Gantry__LogChunk *c);

static void on_frame(struct session *s, const uint8_t *body, size_t len)
{
    struct sch_leader *l = s->leader;
    struct gy_error err;
    Gantry__AgentFrame *f =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, body, len, &err);
    if (f == NULL) {
        session_close(s, err.msg);
        return;
    }
    s->last_seen = uv_now(l->server->loop);
    if (f->frame_case == GANTRY__AGENT_FRAME__FRAME_HELLO) {
        on_hello(s, f->hello);
    } else if (!s->welcomed) {
        session_close(s, "frame before hello");
    } else {
        switch (f->frame_case) {
        case GANTRY__AGENT_FRAME__FRAME_STATUS:
            status_queue(l, s->node, f->status);
            break;
        case GANTRY__AGENT_FRAME__FRAME_HEARTBEAT: {
            if (l->leading)
                sch_autoscaler_samples(l->autoscaler, f->heartbeat, uv_now(l->server->loop));
            Gantry__AgentFrame ack = GANTRY__AGENT_FRAME__INIT;
            Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
            hb.time_ms = wall_ms();
            ack.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
            ack.heartbeat = &hb;
            session_send(s, &ack);
            break;
        }
        case GANTRY__AGENT_FRAME__FRAME_LOG_CHUNK:
            on_log_chunk(l, f->log_chunk);
            break;
        case GANTRY__AGENT_FRAME__FRAME_METRIC_VALUE:
            sch_autoscaler_metric(l->autoscaler, f->metric_value, uv_now(l->server->loop));
            break;
        default:
            break;
        }
    }
    protobuf_c_message_free_unpacked(&f->base, NULL);
}

/* One read buffer for every agent session, as for the API (http.c): frames are decoded
 * (and partial ones copied) before on_read returns. */
static uint8_t read_buf[64 * 1024];
static bool read_buf_taken;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    if (!read_buf_taken) {
        read_buf_taken = true;
        buf->base = (char *)read_buf;
    } else {
        buf->base = gy_xmalloc(sizeof(read_buf));
    }
    buf->len = sizeof(read_buf);
}

static void read_buf_release(const uv_buf_t *buf)
{
    if (buf->base == (char *)read_buf)
        read_buf_taken = false;
    else
        free(buf->base);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct session *s = stream->data;
    if (nread < 0) {
        read_buf_release(buf);
        session_close(s, nread == UV_EOF ? "agent closed the connection" : uv_strerror((int)nread));
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    while (n > 0 && !s->closing) {
        const uint8_t *frame;
        size_t flen;
        struct gy_error err;
        long used = gy_frame_decoder_feed(&s->decoder, p, n, &frame, &flen, &err);
        if (used < 0) {
            session_close(s, err.msg);
            break;
        }
        p += used;
        n -= (size_t)used;
        if (frame != NULL)
            on_frame(s, frame, flen);
    }
    read_buf_release(buf);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct sch_leader *l = listener->data;
    if (status < 0)
        return;
    struct session *s = gy_xcalloc(1, sizeof(*s));
    s->leader = l;
    gy_frame_decoder_init(&s->decoder, GY_FRAME_MAX_DEFAULT);
    uv_tcp_init(l->server->loop, &s->tcp);
    s->tcp.data = s;
    l->open_handles++;
    if (uv_accept(listener, (uv_stream_t *)&s->tcp) < 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->tcp, session_closed);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->last_seen = uv_now(l->server->loop);
    s->next = l->sessions;
    l->sessions = s;
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

/* ---------------------------------------------------------------------------------------
 * Liveness: nodes silent past the down timeout are marked down and their replicas lost */

static void liveness_done(void *data, int status, const struct sch_result *result,
                          const char *message)
{
    struct sch_leader *l = data;
    if (!leader_settled(l))
        return;
    l->liveness_inflight = false;
    if (status < 0)
        gy_log_warn("node state not recorded", "error=\"%s\"", message ? message : "");
    else if (result != NULL && result->code < 0)
        gy_log_warn("node state refused", "error=\"%s\"", result->message ? result->message : "");
    kick(l);
}

/* Judging liveness walks every node: on a fleet of thousands that is done a few times a
 * second, not on every pass of the duties (which run after each applied command). */
#define LIVENESS_EVERY_MS 250

static void liveness(struct sch_leader *l)
{
    if (l->liveness_inflight)
        return;
    uint64_t now = uv_now(l->server->loop);
    if (l->liveness_at != 0 && now - l->liveness_at < LIVENESS_EVERY_MS)
        return;
    l->liveness_at = now;
    uint64_t timeout =
        l->server->cfg.node_down_ms ? l->server->cfg.node_down_ms : SCH_DEFAULT_NODE_DOWN_MS;
    sqlite3 *db = db_of(l);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT name FROM nodes WHERE state != ?", -1, &q, NULL) !=
        SQLITE_OK)
        return;
    sqlite3_bind_int(q, 1, GANTRY__NODE_STATE__NODE_DOWN);
    char *down = NULL;
    while (down == NULL && sqlite3_step(q) == SQLITE_ROW) {
        const char *node = (const char *)sqlite3_column_text(q, 0);
        struct session *s = session_of_node(l, node);
        uint64_t last = s != NULL ? s->last_seen : seen_get(l, node)->at;
        /* A new leader gives every node the full timeout before judging it. */
        if (last < l->leading_since)
            last = l->leading_since;
        if (now - last > timeout)
            down = gy_xstrdup(node);
    }
    sqlite3_finalize(q);
    if (down == NULL)
        return;
    gy_log_warn("node is down", "node=%s silent_ms=%" PRIu64, down, timeout);
    /* One command: the node goes down and its live replicas are lost, so the reconciler
     * replaces them. */
    char reason[256];
    snprintf(reason, sizeof(reason), "node %s is down (no heartbeat for %" PRIu64 "ms)", down,
             timeout);
    Gantry__SetNodeState set = GANTRY__SET_NODE_STATE__INIT;
    set.name = down;
    set.state = GANTRY__NODE_STATE__NODE_DOWN;
    set.reason = reason;
    Gantry__Command c1 = GANTRY__COMMAND__INIT;
    c1.time_ms = wall_ms();
    c1.actor = (char *)"liveness";
    c1.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
    c1.set_node_state = &set;

    Gantry__ReplicaStatus **lost = NULL;
    size_t n_lost = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, workload, generation, state FROM replicas WHERE node = ?",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_text(q, 1, down, -1, SQLITE_STATIC);
        while (sqlite3_step(q) == SQLITE_ROW) {
            if (!sch_replica_state_is_live(sqlite3_column_int(q, 3)))
                continue;
            Gantry__ReplicaStatus *st = gy_xmalloc(sizeof(*st));
            gantry__replica_status__init(st);
            st->replica_id = gy_xstrdup((const char *)sqlite3_column_text(q, 0));
            st->workload = gy_xstrdup((const char *)sqlite3_column_text(q, 1));
            st->generation = (uint64_t)sqlite3_column_int64(q, 2);
            st->state = GANTRY__REPLICA_STATE__REPLICA_LOST;
            st->reason = gy_xstrdup(reason);
            lost = gy_xrealloc(lost, (n_lost + 1) * sizeof(*lost));
            lost[n_lost++] = st;
        }
        sqlite3_finalize(q);
    }
    Gantry__UpdateReplicas up = GANTRY__UPDATE_REPLICAS__INIT;
    up.updates = lost;
    up.n_updates = n_lost;
    Gantry__Command c2 = GANTRY__COMMAND__INIT;
    c2.time_ms = c1.time_ms;
    c2.actor = (char *)"liveness";
    c2.cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
    c2.update_replicas = &up;
    Gantry__Command *cmds[2] = {&c1, &c2};
    Gantry__CommandBatch batch = GANTRY__COMMAND_BATCH__INIT;
    batch.commands = cmds;
    batch.n_commands = n_lost > 0 ? 2 : 1;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.time_ms = c1.time_ms;
    cmd.actor = (char *)"liveness";
    cmd.cmd_case = GANTRY__COMMAND__CMD_BATCH;
    cmd.batch = &batch;
    struct gy_error err;
    if (leader_propose(l, &cmd, liveness_done, &err) == 0)
        l->liveness_inflight = true;
    for (size_t i = 0; i < n_lost; i++)
        gantry__replica_status__free_unpacked(lost[i], NULL);
    free(lost);
    free(down);
}

/* ---------------------------------------------------------------------------------------
 * Reconcile */

#define PLACE_SLICE 4096

static void plan_release(struct sch_leader *l)
{
    if (l->place != NULL)
        l->place->n_replicas = l->place_total; /* all of them are freed */
    sch_reconcile_plan_free(&l->plan);
    l->place = NULL;
    l->place_next = l->place_total = 0;
    l->place_inflight = 0;
    l->place_failed = false;
}

static void reconcile_done(void *data, int status, const struct sch_result *result,
                           const char *message);

/* Slices in flight at once. One: proposals made while entries are in flight share the
 * next entry, so a second slice in flight would make the entries (and applies) longer. */
#define PLACE_INFLIGHT 1

/* Proposes the next slice of the kept plan's placements; false when none is left or the
 * proposal failed. */
static bool place_next_slice(struct sch_leader *l)
{
    if (l->place == NULL || l->place_next >= l->place_total)
        return false;
    size_t n = l->place_total - l->place_next;
    if (n > PLACE_SLICE)
        n = PLACE_SLICE;
    Gantry__PlaceReplicas p = GANTRY__PLACE_REPLICAS__INIT;
    p.replicas = l->place->replicas + l->place_next;
    p.n_replicas = n;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.time_ms = wall_ms();
    cmd.actor = (char *)"reconciler";
    cmd.cmd_case = GANTRY__COMMAND__CMD_PLACE_REPLICAS;
    cmd.place_replicas = &p;
    struct gy_error err;
    if (leader_propose(l, &cmd, reconcile_done, &err) < 0) {
        gy_log_warn("reconcile not proposed", "error=\"%s\"", err.msg);
        return false;
    }
    l->place_next += n;
    l->place_inflight++;
    return true;
}

static void reconcile_done(void *data, int status, const struct sch_result *result,
                           const char *message)
{
    struct sch_leader *l = data;
    if (!leader_settled(l))
        return;
    l->place_inflight--;
    if (status < 0) {
        gy_log_warn("reconcile not recorded", "error=\"%s\"", message ? message : "");
        /* The workloads it was about are no longer marked: look at all of them again. */
        l->dirty_reconcile = true;
        l->place_failed = true;
    } else if (result != NULL) {
        for (size_t i = 0; i < result->n_batch; i++)
            if (result->batch[i].code < 0)
                gy_log_warn("reconcile step refused", "error=\"%s\"",
                            result->batch[i].message ? result->batch[i].message : "");
        if (result->n_batch == 0 && result->code < 0)
            gy_log_warn("reconcile step refused", "error=\"%s\"",
                        result->message ? result->message : "");
    }
    if (!l->place_failed && l->leading)
        place_next_slice(l);
    if (l->place_inflight > 0)
        return; /* the pass ends when its last proposal settles */
    if (l->place != NULL && l->place_next < l->place_total)
        l->dirty_reconcile = true; /* the rest is planned again */
    plan_release(l);
    l->reconcile_inflight = false;
    /* What was just applied may call for more. */
    kick(l);
}

/* One pass over the named workloads (all of them when only is NULL). */
static void reconcile(struct sch_leader *l, const char *const *only, size_t n_only)
{
    if (l->reconcile_inflight)
        return;
    l->reconcile_passes++;
    l->reconciled_at = uv_now(l->server->loop);
    struct sch_reconcile_plan *plan = &l->plan;
    struct gy_error err;
    if (sch_reconcile_plan(&l->server->node.fsm, only, n_only, wall_ms(), leader_random, l, plan,
                           &err) < 0) {
        gy_log_warn("reconcile failed", "error=\"%s\"", err.msg);
        return;
    }
    if (plan->command == NULL)
        return;
    gy_log_debug("reconcile", "placed=%zu stopped=%zu conditions=%zu", plan->placed, plan->stopped,
                 plan->conditions);
    /* The first proposal carries the stops, the conditions and the first slice of the
     * placements; the rest follow one by one (reconcile_done). */
    Gantry__CommandBatch *batch = plan->command->batch;
    for (size_t i = 0; batch != NULL && i < batch->n_commands; i++) {
        if (batch->commands[i]->cmd_case == GANTRY__COMMAND__CMD_PLACE_REPLICAS) {
            l->place = batch->commands[i]->place_replicas;
            l->place_total = l->place->n_replicas;
            l->place_next = l->place_total < PLACE_SLICE ? l->place_total : PLACE_SLICE;
            l->place->n_replicas = l->place_next;
        }
    }
    if (leader_propose_as(l, plan->command, reconcile_done, true, &err) == 0) {
        l->reconcile_inflight = true;
        l->place_inflight = 1;
        while (l->place_inflight < PLACE_INFLIGHT && place_next_slice(l))
            ;
        return;
    }
    gy_log_warn("reconcile not proposed", "error=\"%s\"", err.msg);
    plan_release(l);
}

/* ---------------------------------------------------------------------------------------
 * Autoscaling */

static void autoscale_done(void *data, int status, const struct sch_result *result,
                           const char *message)
{
    struct sch_leader *l = data;
    if (!leader_settled(l))
        return;
    l->autoscale_inflight = false;
    if (status < 0)
        gy_log_warn("autoscale decision not recorded", "error=\"%s\"", message ? message : "");
    else if (result != NULL)
        for (size_t i = 0; i < result->n_batch; i++)
            if (result->batch[i].code < 0)
                gy_log_warn("autoscale decision refused", "error=\"%s\"",
                            result->batch[i].message ? result->batch[i].message : "");
}

/* Every SCH_AUTOSCALE_EVAL_MS: scale commands for the workloads whose load calls for it,
 * and the metric probes that are due. */
static void autoscale(struct sch_leader *l)
{
    uint64_t now = uv_now(l->server->loop);
    if (l->autoscale_inflight || now - l->autoscaled_at < SCH_AUTOSCALE_EVAL_MS)
        return;
    l->autoscaled_at = now;
    struct sch_autoscale_plan plan;
    struct gy_error err;
    if (sch_autoscaler_plan(l->autoscaler, &l->server->node.fsm, now, wall_ms(), &plan, &err) < 0) {
        gy_log_warn("autoscaler failed", "error=\"%s\"", err.msg);
        return;
    }
    if (plan.command != NULL) {
        for (size_t i = 0; i < plan.command->batch->n_commands; i++) {
            const Gantry__ScaleWorkload *sc = plan.command->batch->commands[i]->scale_workload;
            gy_log_info("autoscale", "workload=%s replicas=%u reason=\"%s\"", sc->name,
                        sc->replicas, sc->reason);
        }
        if (leader_propose(l, plan.command, autoscale_done, &err) == 0)
            l->autoscale_inflight = true;
        else
            gy_log_warn("autoscale decision not proposed", "error=\"%s\"", err.msg);
    }
    for (size_t i = 0; i < plan.n_probes; i++) {
        struct session *s = session_of_node(l, plan.probes[i].node);
        if (s == NULL)
            continue;
        Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
        f.frame_case = GANTRY__AGENT_FRAME__FRAME_METRIC_PROBE;
        f.metric_probe = plan.probes[i].probe;
        session_send(s, &f);
    }
    sch_autoscale_plan_free(&plan);
}

void sch_leader_stats(struct sch_server *server, struct sch_leader_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct sch_leader *l = server->leader;
    if (l == NULL)
        return;
    out->leading = l->leading;
    out->caught_up = l->caught_up;
    out->reconcile_inflight = l->reconcile_inflight;
    out->autoscale_inflight = l->autoscale_inflight;
    out->pending_status = l->n_pending;
    out->reconcile_passes = l->reconcile_passes;
    out->reconcile_age_ms = l->reconciled_at ? uv_now(server->loop) - l->reconciled_at : 0;
}

json_t *sch_leader_autoscaler_json(struct sch_server *server, const char *workload)
{
    struct sch_leader *l = server->leader;
    if (l == NULL || !l->leading)
        return NULL;
    return sch_autoscaler_workload_json(l->autoscaler, workload, uv_now(server->loop));
}

void sch_leader_top(struct sch_call *call)
{
    struct sch_leader *l = call->server->leader;
    if (l == NULL || !l->leading || !l->caught_up) {
        sch_call_error(call, 503, "no_leader", NULL, "the leader is starting; retry shortly");
        return;
    }
    char workload[128];
    bool one = sch_http_query(call->req, "workload", workload, sizeof(workload)) && *workload;
    struct gy_error err;
    json_t *top = sch_autoscaler_top(l->autoscaler, db_of(l), one ? workload : NULL,
                                     uv_now(call->server->loop), &err);
    if (top == NULL) {
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
        return;
    }
    sch_call_json(call, 200, top);
}

/* ---------------------------------------------------------------------------------------
 * The leader's duties */

static void caught_up(void *data, int status, const char *message)
{
    struct sch_leader *l = data;
    if (!leader_settled(l))
        return;
    l->barrier_inflight = false;
    if (status < 0) {
        gy_log_warn("leader barrier failed", "error=\"%s\"", message ? message : "");
        return;
    }
    if (l->leading) {
        l->caught_up = true;
        l->dirty_reconcile = true;
        kick(l);
    }
}

#define SLOW_DUTIES_NS (50 * 1000000ULL)

static void duties(struct sch_leader *l)
{
    sch_fsm_drain(&l->server->node.fsm);
    bool leading = sch_node_is_leader(&l->server->node) && !l->server->stopping;
    if (leading && !l->leading) {
        l->leading_since = uv_now(l->server->loop);
        l->caught_up = false;
        gy_log_info("leading the fleet", "sessions=%d", l->sessions != NULL);
    }
    /* A new leader may not have applied everything its predecessor committed yet: it
     * decides nothing before a barrier of its own term has applied, or it could place
     * replicas that an entry still in its log already placed. */
    if (leading && !l->caught_up && !l->barrier_inflight) {
        struct gy_error err;
        if (sch_node_barrier(&l->server->node, caught_up, l, &err) == 0) {
            l->barrier_inflight = true;
            l->inflight++;
        }
    }
    if (!leading && l->leading) {
        /* Agents must follow the new leader: drop every session, they reconnect. */
        while (l->sessions != NULL)
            session_close(l->sessions, "no longer the leader");
        for (size_t i = 0; i < l->n_pending; i++)
            gantry__replica_status__free_unpacked(l->pending[i], NULL);
        l->n_pending = 0;
        if (l->cap_index > 0)
            pending_reindex(l);
        sch_autoscaler_reset(l->autoscaler);
        push_queue_clear(l);
    }
    l->leading = leading;
    if (!leading || !l->caught_up)
        return;
    uint64_t t0 = uv_hrtime();
    liveness(l);
    uint64_t t1 = uv_hrtime();
    status_flush(l);
    uint64_t t2 = uv_hrtime();
    struct sch_fsm *fsm = &l->server->node.fsm;
    if (!l->reconcile_inflight) {
        /* Only the workloads that applied commands touched are looked at, so a pass costs
         * what changed; a full pass follows leadership changes and failures. */
        char **names;
        size_t n;
        bool all;
        sch_fsm_dirty_take(fsm, &names, &n, &all);
        if (l->dirty_reconcile)
            all = true;
        /* The autoscaler reads again only what changed, too. */
        sch_autoscaler_changed(l->autoscaler, names, n, all);
        if (!all && sch_autoscaler_discover(l->autoscaler, &l->server->node.fsm) < 0)
            gy_log_warn("autoscaler failed", "error=\"cannot read the changed workloads\"");
        if (all || n > 0) {
            l->dirty_reconcile = false;
            reconcile(l, all ? NULL : (const char *const *)names, n);
        }
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        /* A drain ends when its node's last replica has stopped, which no workload's pass
         * notices: look for that once a second. */
        /* Neither does room freed by stopped replicas: workloads waiting for it are looked
         * at again, at most once a second, when replicas were removed since. */
        uint64_t now = uv_now(l->server->loop);
        if (!l->reconcile_inflight && now - l->drain_checked_at >= 1000) {
            l->drain_checked_at = now;
            static const char *const none[1] = {""};
            char **waiting = NULL;
            size_t n_waiting = 0;
            if (fsm->room_epoch != l->room_seen) {
                l->room_seen = fsm->room_epoch;
                n_waiting = sch_reconcile_waiting(fsm, &waiting);
            }
            if (now - l->restopped_at >= RESTOP_AFTER_MS) {
                l->restopped_at = now;
                restop_stale(l);
            }
            if (n_waiting > 0 || sch_reconcile_drain_due(fsm))
                reconcile(l, n_waiting > 0 ? (const char *const *)waiting : none, n_waiting);
            for (size_t i = 0; i < n_waiting; i++)
                free(waiting[i]);
            free(waiting);
        }
    }
    uint64_t t3 = uv_hrtime();
    if (fsm->fleet_epoch != l->pushed_epoch) {
        l->pushed_epoch = fsm->fleet_epoch;
        push_changed(l);
    }
    push_some(l);
    autoscale(l);
    uint64_t t4 = uv_hrtime();
    /* Long steps delay Raft's heartbeats (and the agents' frames) on this loop. */
    if (t4 - t0 >= SLOW_DUTIES_NS)
        gy_log_debug("slow duties",
                     "liveness_ms=%" PRIu64 " status_ms=%" PRIu64 " reconcile_ms=%" PRIu64
                     " push_ms=%" PRIu64,
                     (t1 - t0) / 1000000, (t2 - t1) / 1000000, (t3 - t2) / 1000000,
                     (t4 - t3) / 1000000);
}

static void on_kick(uv_timer_t *t)
{
    duties(t->data);
}

/* How often freed heap is handed back to the system. A leader allocates and frees far more
 * than a follower (requests, plans, pushes); glibc keeps what was freed in the middle of
 * its heap, which measured 9 of a leader's 27 MB after a burst of 8,000 applies, and
 * mimalloc keeps freed pages for reuse until it is asked to collect. */
#define TRIM_EVERY_MS 10000

static void on_tick(uv_timer_t *t)
{
    struct sch_leader *l = t->data;
    duties(l);
    uint64_t now = uv_now(l->server->loop);
    if (now - l->trimmed_at >= TRIM_EVERY_MS) {
        l->trimmed_at = now;
#ifdef GANTRY_WITH_MIMALLOC
        mi_collect(true);
#else
        malloc_trim(0);
#endif
    }
}

void sch_leader_applied(struct sch_server *server)
{
    struct sch_leader *l = server->leader;
    if (l == NULL)
        return;
    kick(l);
}

/* ---------------------------------------------------------------------------------------
 * Logs: the API asks the replica's agent and relays the chunks */

static void log_request_free(struct sch_leader *l, struct log_request *r)
{
    for (struct log_request **p = &l->logs; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    free(r);
}

/* Ends a log request: the HTTP answer is completed (or an error given) and, for a
 * follow, the agent is told to stop sending. */
static void log_request_finish(struct sch_leader *l, struct log_request *r, const char *error)
{
    if (r->follow && r->session != NULL && !r->session->closing) {
        Gantry__LogRequest cancel = GANTRY__LOG_REQUEST__INIT;
        cancel.request_id = r->id;
        cancel.cancel = 1;
        Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
        f.frame_case = GANTRY__AGENT_FRAME__FRAME_LOG_REQUEST;
        f.log_request = &cancel;
        session_send(r->session, &f);
    }
    /* sch_call_error answers and frees the call; the raw answers free only the request. */
    if (r->started) {
        sch_http_stream_end(r->call->req);
        free(r->call);
    } else if (error != NULL) {
        sch_call_error(r->call, 404, "not_found", NULL, "%s", error);
    } else {
        sch_http_respond(r->call->req, 200, "text/plain; charset=utf-8", NULL, "", 0);
        free(r->call);
    }
    log_request_free(l, r);
}

static void on_log_chunk(struct sch_leader *l, const Gantry__LogChunk *c)
{
    struct log_request *r = l->logs;
    while (r != NULL && r->id != c->request_id)
        r = r->next;
    if (r == NULL)
        return;
    if (c->error != NULL && c->error[0] != '\0' && !r->started) {
        log_request_finish(l, r, c->error);
        return;
    }
    if (!r->started) {
        sch_http_stream_start(r->call->req, 200, "text/plain; charset=utf-8");
        r->started = true;
    }
    bool alive = true;
    if (c->data.len > 0)
        alive = sch_http_stream_write(r->call->req, (const char *)c->data.data, c->data.len);
    if (c->eof || !alive)
        log_request_finish(l, r, NULL);
}

void sch_leader_logs(struct sch_call *call)
{
    struct sch_leader *l = call->server->leader;
    sqlite3_stmt *q;
    char node[256] = "";
    if (sqlite3_prepare_v2(db_of(l), "SELECT node FROM replicas WHERE id = ?", -1, &q, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(q, 1, call->name, -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW)
            snprintf(node, sizeof(node), "%s", sqlite3_column_text(q, 0));
        sqlite3_finalize(q);
    }
    if (node[0] == '\0') {
        sch_call_error(call, 404, "not_found", NULL, "replica \"%s\" not found", call->name);
        return;
    }
    struct session *s = session_of_node(l, node);
    if (s == NULL) {
        sch_call_error(call, 503, "node_unavailable", NULL,
                       "node %s of replica %s is not connected", node, call->name);
        return;
    }
    char value[16];
    bool follow = sch_http_query(call->req, "follow", value, sizeof(value)) &&
                  strcmp(value, "0") != 0 && strcmp(value, "false") != 0;
    struct log_request *r = gy_xcalloc(1, sizeof(*r));
    r->id = ++l->next_log_id;
    r->call = call;
    r->session = s;
    r->follow = follow;
    r->next = l->logs;
    l->logs = r;
    Gantry__LogRequest req = GANTRY__LOG_REQUEST__INIT;
    req.request_id = r->id;
    req.replica_id = call->name;
    req.follow = follow;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_LOG_REQUEST;
    f.log_request = &req;
    session_send(s, &f);
}

/* ---------------------------------------------------------------------------------------
 * Start and close */

static int listen_on(struct sch_leader *l, const char *addr, struct gy_error *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return gy_error_set(err, GY_EINVAL, "agent address \"%s\" is not HOST:PORT", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage sa;
    int rc = host[0] == '[' ? (host[strlen(host) - 1] = '\0',
                               uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)&sa))
                            : uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port,
                                          (struct sockaddr_in *)&sa);
    if (rc < 0 || port <= 0 || port > 65535)
        return gy_error_set(err, GY_EINVAL, "agent address \"%s\" is not HOST:PORT", addr);
    uv_tcp_init(l->server->loop, &l->listener);
    l->listener.data = l;
    l->listener_init = true;
    l->open_handles++;
    if ((rc = uv_tcp_bind(&l->listener, (const struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&l->listener, 512, on_connection)) < 0)
        return gy_error_set(err, rc == UV_EADDRINUSE ? GY_EEXISTS : GY_EIO,
                            "listen for agents on %s: %s%s", addr, uv_strerror(rc),
                            rc == UV_EADDRINUSE ? " (another process uses this port)" : "");
    l->listening = true;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    leader_handle_gone(h->data);
}

int sch_leader_start(struct sch_server *server, struct gy_error *err)
{
    struct sch_leader *l = gy_xcalloc(1, sizeof(*l));
    l->server = server;
    l->rng = (uint64_t)wall_ms() ^ ((uint64_t)server->node.cfg.id << 32) ^ 0x9e3779b97f4a7c15ULL;
    l->autoscaler = sch_autoscaler_new();
    server->leader = l;
    uv_timer_init(server->loop, &l->tick);
    uv_timer_init(server->loop, &l->kick);
    l->tick.data = l;
    l->kick.data = l;
    l->open_handles = 2;
    int rc = listen_on(l, server->cfg.node.agent_addr, err);
    if (rc < 0)
        return rc;
    uv_timer_start(&l->tick, on_tick, LEADER_TICK_MS, LEADER_TICK_MS);
    return 0;
}

void sch_leader_close(struct sch_server *server, void (*cb)(void *arg), void *arg)
{
    struct sch_leader *l = server->leader;
    if (l == NULL) {
        if (cb != NULL)
            cb(arg);
        return;
    }
    server->leader = NULL;
    l->close_cb = cb;
    l->close_arg = arg;
    l->closing = true;
    while (l->logs != NULL)
        log_request_finish(l, l->logs, "the server is shutting down");
    while (l->sessions != NULL)
        session_close(l->sessions, "server shutting down");
    for (size_t i = 0; i < l->n_pending; i++)
        gantry__replica_status__free_unpacked(l->pending[i], NULL);
    free(l->pending);
    l->pending = NULL;
    l->n_pending = 0;
    free(l->pending_index);
    l->pending_index = NULL;
    l->cap_index = 0;
    push_queue_clear(l);
    plan_release(l);
    for (size_t i = 0; i < l->cap_seen; i++)
        free(l->seen[i].node);
    free(l->seen);
    l->seen = NULL;
    l->n_seen = 0;
    l->cap_seen = 0;
    if (l->listener_init)
        uv_close((uv_handle_t *)&l->listener, handle_closed);
    uv_close((uv_handle_t *)&l->tick, handle_closed);
    uv_close((uv_handle_t *)&l->kick, handle_closed);
}
