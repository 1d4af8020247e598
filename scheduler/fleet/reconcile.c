/* Reconciliation planning; see reconcile.h. */
#include "scheduler/fleet/reconcile.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "common/xalloc.h"
#include "proto/spec_pb.h"
#include "scheduler/fleet/placement.h"

/* Every query goes through the state machine's statement cache (sch_fsm_stmt): a pass runs
 * after each burst of applied commands, and compiling its statements again each time cost
 * more than running them. The SQL texts are these constants, found by address. */
static const char NODES_SQL[] =
    "SELECT name, cloud, zone, labels, cpu_millis, memory_bytes, pids, state"
    " FROM nodes ORDER BY name";
static const char NAMES_SQL[] = "SELECT name FROM workloads";
static const char REPLICAS_SQL[] =
    "SELECT r.rowid, r.id, r.workload, r.generation, r.node, r.state, r.ready, r.reason,"
    " COALESCE(n.state, 0), COALESCE(n.cloud, ''), COALESCE(n.cost, 0)"
    " FROM replicas r LEFT JOIN nodes n ON n.name = r.node"
    " WHERE r.workload = ? ORDER BY r.rowid";
static const char CONDITIONS_SQL[] =
    "SELECT kind, message, time_ms FROM conditions WHERE workload = ?";
static const char ALLOCATED_SQL[] =
    "SELECT workload, node, COUNT(*) FROM replicas WHERE state NOT IN (?, ?)"
    " GROUP BY workload, node ORDER BY workload";
static const char SPEC_SQL[] = "SELECT spec FROM workloads WHERE name = ?";
static const char WAITING_SQL[] = "SELECT DISTINCT workload FROM conditions WHERE kind IN (?, ?)"
                                  " ORDER BY workload";

int sch_replica_state_is_live(int state)
{
    return state != GANTRY__REPLICA_STATE__REPLICA_STOPPING &&
           state != GANTRY__REPLICA_STATE__REPLICA_STOPPED &&
           state != GANTRY__REPLICA_STATE__REPLICA_LOST;
}

struct node_row {
    struct sch_place_node view;
    char *name;
    char *cloud;
    char *zone;
    struct sch_label *labels;
    size_t n_labels;
};

struct workload_row {
    char *name;
    uint64_t generation;
    uint32_t desired;
    bool decoded;
    struct gy_spec spec;
    char *unschedulable; /* stored condition messages, or NULL */
    char *rollout_halted;
    char *moving; /* a move in progress, stopped, or NULL */
    char *move_stopped;
    uint64_t moving_since_ms;
    size_t first_replica; /* its replicas: replicas[first_replica .. + n_replicas) */
    size_t n_replicas;
};

struct replica_row {
    int64_t rowid;
    char *id;
    char *workload;
    uint64_t generation;
    char *node;
    int state;
    bool ready;
    char *reason;
    int node_state;   /* of its node: draining nodes give their replicas up */
    char *node_cloud; /* "" when the node is not known */
    double node_cost;
    size_t rank; /* in stop order: its cloud's place in the workload's preference */
    bool stop;   /* chosen to stop in this plan */
};

struct state {
    bool alloc_done;   /* node allocations computed */
    bool nodes_loaded; /* nodes are read when a workload has replicas to place */
    int nodes_rc;      /* the outcome of reading them */
    struct gy_error nodes_err;
    struct node_row *nodes;
    size_t n_nodes;
    struct workload_row *workloads;
    size_t n_workloads;
    struct replica_row *replicas;
    size_t n_replicas;
};

static char *col_dup(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return gy_xstrdup(t != NULL ? (const char *)t : "");
}

static void state_free(struct state *st)
{
    for (size_t i = 0; i < st->n_nodes; i++) {
        struct node_row *n = &st->nodes[i];
        for (size_t l = 0; l < n->n_labels; l++) {
            free((char *)n->labels[l].key);
            free((char *)n->labels[l].value);
        }
        free(n->labels);
        free(n->name);
        free(n->cloud);
        free(n->zone);
    }
    free(st->nodes);
    for (size_t i = 0; i < st->n_workloads; i++) {
        if (st->workloads[i].decoded)
            gy_spec_free(&st->workloads[i].spec);
        free(st->workloads[i].name);
        free(st->workloads[i].unschedulable);
        free(st->workloads[i].rollout_halted);
        free(st->workloads[i].moving);
        free(st->workloads[i].move_stopped);
    }
    free(st->workloads);
    for (size_t i = 0; i < st->n_replicas; i++) {
        free(st->replicas[i].id);
        free(st->replicas[i].workload);
        free(st->replicas[i].node);
        free(st->replicas[i].reason);
        free(st->replicas[i].node_cloud);
    }
    free(st->replicas);
}

static void workload_append(struct state *st, sqlite3_stmt *q, size_t *cap);
static void replica_append(struct state *st, sqlite3_stmt *q, size_t *cap);
static int load_some(struct sch_fsm *fsm, struct state *st, const char *const *only, size_t n_only,
                     struct gy_error *err);

/* Reads every node (placement needs them all); only done when something is to be placed,
 * which most passes, driven by replica reports, do not need. */
static int load_nodes(struct sch_fsm *fsm, struct state *st)
{
    if (st->nodes_loaded)
        return st->nodes_rc;
    st->nodes_loaded = true;
    struct gy_error *err = &st->nodes_err;
    sqlite3_stmt *q = sch_fsm_stmt(fsm, NODES_SQL);
    size_t cap;
    if (q == NULL)
        return st->nodes_rc = gy_error_set(err, GY_EIO, "read nodes: %s", sqlite3_errmsg(fsm->db));
    cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (st->n_nodes == cap) {
            cap = cap ? cap * 2 : 16;
            st->nodes = gy_xrealloc(st->nodes, cap * sizeof(*st->nodes));
        }
        struct node_row *n = &st->nodes[st->n_nodes++];
        memset(n, 0, sizeof(*n));
        n->name = col_dup(q, 0);
        n->cloud = col_dup(q, 1);
        n->zone = col_dup(q, 2);
        json_t *labels = json_loads((const char *)sqlite3_column_text(q, 3), 0, NULL);
        const char *key;
        json_t *value;
        json_object_foreach(labels, key, value)
        {
            n->labels = gy_xrealloc(n->labels, (n->n_labels + 1) * sizeof(*n->labels));
            n->labels[n->n_labels].key = gy_xstrdup(key);
            n->labels[n->n_labels].value =
                gy_xstrdup(json_is_string(value) ? json_string_value(value) : "");
            n->n_labels++;
        }
        json_decref(labels);
        n->view.name = n->name;
        n->view.cloud = n->cloud;
        n->view.zone = n->zone;
        n->view.labels = n->labels;
        n->view.n_labels = n->n_labels;
        n->view.capacity.cpu_millis = sqlite3_column_int64(q, 4);
        n->view.capacity.memory_bytes = sqlite3_column_int64(q, 5);
        n->view.capacity.pids = sqlite3_column_int64(q, 6);
        n->view.schedulable = sqlite3_column_int(q, 7) == GANTRY__NODE_STATE__NODE_READY;
    }
    sqlite3_reset(q);
    return 0;
}

/* Keeps a stored condition the reconciler acts on; columns kind, message, time_ms from
 * col. */
static void condition_load(struct workload_row *w, sqlite3_stmt *q, int col)
{
    const char *kind = (const char *)sqlite3_column_text(q, col);
    if (strcmp(kind, SCH_CONDITION_UNSCHEDULABLE) == 0) {
        w->unschedulable = col_dup(q, col + 1);
    } else if (strcmp(kind, SCH_CONDITION_ROLLOUT_HALTED) == 0) {
        w->rollout_halted = col_dup(q, col + 1);
    } else if (strcmp(kind, SCH_CONDITION_MOVING) == 0) {
        w->moving = col_dup(q, col + 1);
        w->moving_since_ms = (uint64_t)sqlite3_column_int64(q, col + 2);
    } else if (strcmp(kind, SCH_CONDITION_MOVE_STOPPED) == 0) {
        w->move_stopped = col_dup(q, col + 1);
    }
}

static int load(struct sch_fsm *fsm, struct state *st, const char *const *only, size_t n_only,
                struct gy_error *err)
{
    size_t cap;
    if (only != NULL)
        return load_some(fsm, st, only, n_only, err);
    /* A pass over everything (after a leader change) also skips the settled workloads. */
    sqlite3_stmt *q = sch_fsm_stmt(fsm, NAMES_SQL);
    if (q == NULL)
        return gy_error_set(err, GY_EIO, "read workloads: %s", sqlite3_errmsg(fsm->db));
    char **names = NULL;
    size_t n = 0;
    cap = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = gy_xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = col_dup(q, 0);
    }
    sqlite3_reset(q);
    int rc = load_some(fsm, st, (const char *const *)names, n, err);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static struct workload_row *workload_find(struct state *st, const char *name)
{
    /* Workloads are loaded in byte order of their names. */
    size_t lo = 0, hi = st->n_workloads;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->workloads[mid].name, name);
        if (c == 0)
            return &st->workloads[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct node_row *node_find(struct state *st, const char *name)
{
    /* Nodes are sorted by name. */
    size_t lo = 0, hi = st->n_nodes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->nodes[mid].name, name);
        if (c == 0)
            return &st->nodes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Appends the workload of a row (name, spec, generation, replicas). */
static void workload_append(struct state *st, sqlite3_stmt *q, size_t *cap)
{
    if (st->n_workloads == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        st->workloads = gy_xrealloc(st->workloads, *cap * sizeof(*st->workloads));
    }
    struct workload_row *w = &st->workloads[st->n_workloads++];
    memset(w, 0, sizeof(*w));
    w->name = col_dup(q, 0);
    w->generation = (uint64_t)sqlite3_column_int64(q, 2);
    w->desired = (uint32_t)sqlite3_column_int64(q, 3);
    Gantry__WorkloadSpec *msg = gantry__workload_spec__unpack(
        NULL, (size_t)sqlite3_column_bytes(q, 1), sqlite3_column_blob(q, 1));
    if (msg != NULL) {
        struct gy_error perr;
        if (gy_spec_from_proto(msg, &w->spec, &perr) == 0)
            w->decoded = true;
        else
            gy_spec_free(&w->spec);
        gantry__workload_spec__free_unpacked(msg, NULL);
    }
    if (w->decoded)
        w->spec.replicas = w->desired;
}

/* Appends the replica of a row (rowid, id, workload, generation, node, state, ready,
 * reason). */
static void replica_append(struct state *st, sqlite3_stmt *q, size_t *cap)
{
    if (st->n_replicas == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        st->replicas = gy_xrealloc(st->replicas, *cap * sizeof(*st->replicas));
    }
    struct replica_row *r = &st->replicas[st->n_replicas++];
    memset(r, 0, sizeof(*r));
    r->rowid = sqlite3_column_int64(q, 0);
    r->id = col_dup(q, 1);
    r->workload = col_dup(q, 2);
    r->generation = (uint64_t)sqlite3_column_int64(q, 3);
    r->node = col_dup(q, 4);
    r->state = sqlite3_column_int(q, 5);
    r->ready = sqlite3_column_int(q, 6) != 0;
    r->reason = col_dup(q, 7);
    r->node_state = sqlite3_column_int(q, 8);
    r->node_cloud = col_dup(q, 9);
    r->node_cost = sqlite3_column_double(q, 10);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A workload (name, spec, generation, replicas, as workload_append reads them) and whether
 * it is settled: exactly its desired count of live replicas, all of its current generation,
 * none on a draining node, and no condition recorded. A pass then has nothing to decide for
 * it (no placement, no stop, no rollout step, no condition to change), whatever the states
 * its replicas report; most passes follow such reports, and this spares them loading every
 * replica of the workload. Whether it has any replica or condition at all also spares a
 * new workload those two queries. */
static const char SETTLED_SQL[] =
    "SELECT w.name, w.spec, w.generation, w.replicas,"
    " (SELECT COUNT(*) FROM replicas r WHERE r.workload = w.name AND r.state NOT IN (?2, ?3, ?4)"
    "   AND r.generation >= w.generation),"
    " (SELECT COUNT(*) FROM replicas r WHERE r.workload = w.name AND r.state NOT IN (?2, ?3, ?4)"
    "   AND r.generation < w.generation),"
    " EXISTS (SELECT 1 FROM conditions c WHERE c.workload = w.name"
    "   AND c.kind IN (?5, ?6, ?7, ?8)),"
    " EXISTS (SELECT 1 FROM replicas r WHERE r.workload = w.name)"
    " FROM workloads w WHERE w.name = ?1";
enum { SETTLED_LIVE = 4, SETTLED_OLD, SETTLED_CONDITIONS, SETTLED_ANY_REPLICA };
/* Whether any node drains (nodes have no index on their state: asked once per pass). */
static const char ANY_DRAINING_SQL[] = "SELECT EXISTS (SELECT 1 FROM nodes WHERE state = ?)";
/* Whether a workload has live replicas on a draining node: they are to move. */
static const char ON_DRAINING_SQL[] =
    "SELECT EXISTS (SELECT 1 FROM replicas r JOIN nodes n ON n.name = r.node"
    " WHERE r.workload = ?1 AND r.state NOT IN (?2, ?3, ?4) AND n.state = ?5)";

static bool any_draining(struct sch_fsm *fsm)
{
    sqlite3_stmt *q = sch_fsm_stmt(fsm, ANY_DRAINING_SQL);
    if (q == NULL)
        return true; /* then every workload is looked at */
    sqlite3_bind_int(q, 1, GANTRY__NODE_STATE__NODE_DRAINING);
    bool any = sqlite3_step(q) != SQLITE_ROW || sqlite3_column_int(q, 0) != 0;
    sqlite3_reset(q);
    return any;
}

static void bind_dead_states(sqlite3_stmt *q)
{
    sqlite3_bind_int(q, 2, GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    sqlite3_bind_int(q, 3, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
    sqlite3_bind_int(q, 4, GANTRY__REPLICA_STATE__REPLICA_LOST);
}

/* Steps q (SETTLED_SQL) for the workload name: false when it does not exist (any more).
 * Otherwise *settled tells whether it is, and the row stays current for workload_append. */
static bool lookup_workload(struct sch_fsm *fsm, sqlite3_stmt *q, bool draining, const char *name,
                            bool *settled)
{
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    bind_dead_states(q);
    sqlite3_bind_text(q, 5, SCH_CONDITION_UNSCHEDULABLE, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, SCH_CONDITION_ROLLOUT_HALTED, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 7, SCH_CONDITION_MOVING, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, SCH_CONDITION_MOVE_STOPPED, -1, SQLITE_STATIC);
    if (sqlite3_step(q) != SQLITE_ROW)
        return false;
    *settled = sqlite3_column_int64(q, SETTLED_LIVE) == sqlite3_column_int64(q, 3) &&
               sqlite3_column_int64(q, SETTLED_OLD) == 0 &&
               sqlite3_column_int(q, SETTLED_CONDITIONS) == 0;
    if (!*settled || !draining)
        return true;
    sqlite3_stmt *d = sch_fsm_stmt(fsm, ON_DRAINING_SQL);
    if (d == NULL) {
        *settled = false;
        return true;
    }
    sqlite3_bind_text(d, 1, name, -1, SQLITE_STATIC);
    bind_dead_states(d);
    sqlite3_bind_int(d, 5, GANTRY__NODE_STATE__NODE_DRAINING);
    *settled = sqlite3_step(d) == SQLITE_ROW && sqlite3_column_int(d, 0) == 0;
    sqlite3_reset(d);
    return true;
}

/* Loads only the named workloads, their replicas and conditions: a pass then costs what
 * changed, not the size of the whole state. Settled workloads are left out. */
static int load_some(struct sch_fsm *fsm, struct state *st, const char *const *only, size_t n_only,
                     struct gy_error *err)
{
    const char **names = gy_xcalloc(n_only + 1, sizeof(*names));
    if (n_only > 0)
        memcpy(names, only, n_only * sizeof(*names));
    qsort(names, n_only, sizeof(*names), name_cmp);
    bool draining = n_only > 0 && any_draining(fsm);
    sqlite3_stmt *wq = sch_fsm_stmt(fsm, SETTLED_SQL);
    sqlite3_stmt *rq = sch_fsm_stmt(fsm, REPLICAS_SQL);
    sqlite3_stmt *cq = sch_fsm_stmt(fsm, CONDITIONS_SQL);
    int rc = 0;
    if (wq == NULL || rq == NULL || cq == NULL) {
        rc = gy_error_set(err, GY_EIO, "read state: %s", sqlite3_errmsg(fsm->db));
        goto out;
    }
    size_t wcap = 0, rcap = 0;
    for (size_t i = 0; i < n_only; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        bool settled;
        if (!lookup_workload(fsm, wq, draining, names[i], &settled) || settled)
            continue; /* deleted (its replicas are stopping already), or nothing to do */
        workload_append(st, wq, &wcap);
        bool any_replica = sqlite3_column_int(wq, SETTLED_ANY_REPLICA) != 0;
        bool any_condition = sqlite3_column_int(wq, SETTLED_CONDITIONS) != 0;
        sqlite3_reset(wq);
        struct workload_row *w = &st->workloads[st->n_workloads - 1];
        w->first_replica = st->n_replicas;
        if (any_replica) {
            sqlite3_reset(rq);
            sqlite3_bind_text(rq, 1, names[i], -1, SQLITE_STATIC);
            while (sqlite3_step(rq) == SQLITE_ROW)
                replica_append(st, rq, &rcap);
        }
        w->n_replicas = st->n_replicas - w->first_replica;
        if (any_condition) {
            sqlite3_reset(cq);
            sqlite3_bind_text(cq, 1, names[i], -1, SQLITE_STATIC);
            while (sqlite3_step(cq) == SQLITE_ROW)
                condition_load(w, cq, 0);
        }
    }
out:
    sqlite3_reset(wq);
    sqlite3_reset(rq);
    sqlite3_reset(cq);
    free(names);
    return rc;
}

/* What every node has promised already: resources of all replicas that hold some, over
 * the whole state. Computed once per pass, and only when something is to be placed. */
static void ensure_allocations(struct sch_fsm *fsm, struct state *st)
{
    if (st->alloc_done)
        return;
    st->alloc_done = true;
    sqlite3_stmt *q = sch_fsm_stmt(fsm, ALLOCATED_SQL);
    sqlite3_stmt *spec_q = sch_fsm_stmt(fsm, SPEC_SQL);
    if (q == NULL || spec_q == NULL)
        return;
    sqlite3_bind_int(q, 1, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
    sqlite3_bind_int(q, 2, GANTRY__REPLICA_STATE__REPLICA_LOST);
    char *current = NULL;
    struct gy_resources res = {0};
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *workload = (const char *)sqlite3_column_text(q, 0);
        if (current == NULL || strcmp(current, workload) != 0) {
            free(current);
            current = gy_xstrdup(workload);
            memset(&res, 0, sizeof(res));
            struct workload_row *w = workload_find(st, workload);
            if (w != NULL && w->decoded) {
                res = w->spec.resources;
            } else {
                sqlite3_reset(spec_q);
                sqlite3_bind_text(spec_q, 1, workload, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(spec_q) == SQLITE_ROW) {
                    Gantry__WorkloadSpec *msg =
                        gantry__workload_spec__unpack(NULL, (size_t)sqlite3_column_bytes(spec_q, 0),
                                                      sqlite3_column_blob(spec_q, 0));
                    if (msg != NULL && msg->resources != NULL) {
                        res.cpu_millis = msg->resources->cpu_millis;
                        res.memory_bytes = msg->resources->memory_bytes;
                        res.pids = msg->resources->pids;
                    }
                    if (msg != NULL)
                        gantry__workload_spec__free_unpacked(msg, NULL);
                }
            }
        }
        struct node_row *n = node_find(st, (const char *)sqlite3_column_text(q, 1));
        if (n == NULL)
            continue;
        int64_t count = sqlite3_column_int64(q, 2);
        n->view.allocated.cpu_millis += count * res.cpu_millis;
        n->view.allocated.memory_bytes += count * res.memory_bytes;
        n->view.allocated.pids += count * res.pids;
    }
    free(current);
    sqlite3_reset(spec_q);
    sqlite3_reset(q);
}

/* ---------------------------------------------------------------------------------------
 * The command under construction */

struct builder {
    Gantry__ReplicaPlacement **place;
    size_t n_place;
    Gantry__ReplicaStatus **stop;
    size_t n_stop;
    Gantry__Command **extra; /* conditions */
    size_t n_extra;
};

static void add_place(struct builder *b, const char *id, const char *workload, uint64_t gen,
                      const char *node)
{
    Gantry__ReplicaPlacement *p = gy_xmalloc(sizeof(*p));
    gantry__replica_placement__init(p);
    p->replica_id = gy_xstrdup(id);
    p->workload = gy_xstrdup(workload);
    p->generation = gen;
    p->node = gy_xstrdup(node);
    if ((b->n_place & (b->n_place - 1)) == 0) /* 0, 1, 2, 4, ...: the capacity doubles */
        b->place = gy_xrealloc(b->place, (b->n_place ? b->n_place * 2 : 1) * sizeof(*b->place));
    b->place[b->n_place++] = p;
}

static void add_stop(struct builder *b, struct replica_row *r, const char *why)
{
    Gantry__ReplicaStatus *s = gy_xmalloc(sizeof(*s));
    gantry__replica_status__init(s);
    s->replica_id = gy_xstrdup(r->id);
    s->workload = gy_xstrdup(r->workload);
    s->generation = r->generation;
    s->state = GANTRY__REPLICA_STATE__REPLICA_STOPPING;
    s->reason = gy_xstrdup(why);
    if ((b->n_stop & (b->n_stop - 1)) == 0)
        b->stop = gy_xrealloc(b->stop, (b->n_stop ? b->n_stop * 2 : 1) * sizeof(*b->stop));
    b->stop[b->n_stop++] = s;
    r->stop = true;
}

static void add_condition(struct builder *b, const char *workload, const char *kind,
                          const char *message, uint64_t now_ms)
{
    Gantry__Command *c = gy_xmalloc(sizeof(*c));
    gantry__command__init(c);
    c->time_ms = now_ms;
    c->actor = gy_xstrdup("reconciler");
    Gantry__ReportCondition *rc = gy_xmalloc(sizeof(*rc));
    gantry__report_condition__init(rc);
    rc->workload = gy_xstrdup(workload);
    rc->kind = gy_xstrdup(kind);
    rc->message = gy_xstrdup(message);
    c->cmd_case = GANTRY__COMMAND__CMD_REPORT_CONDITION;
    c->report_condition = rc;
    b->extra = gy_xrealloc(b->extra, (b->n_extra + 1) * sizeof(*b->extra));
    b->extra[b->n_extra++] = c;
}

/* Records a condition change when the stored one differs. */
static void condition(struct builder *b, const char *workload, const char *kind, const char *stored,
                      const char *message, uint64_t now_ms)
{
    if (strcmp(stored != NULL ? stored : "", message) != 0)
        add_condition(b, workload, kind, message, now_ms);
}

static void builder_free(struct builder *b)
{
    for (size_t i = 0; i < b->n_place; i++)
        protobuf_c_message_free_unpacked(&b->place[i]->base, NULL);
    for (size_t i = 0; i < b->n_stop; i++)
        protobuf_c_message_free_unpacked(&b->stop[i]->base, NULL);
    for (size_t i = 0; i < b->n_extra; i++)
        protobuf_c_message_free_unpacked(&b->extra[i]->base, NULL);
    free(b->place);
    free(b->stop);
    free(b->extra);
}

/* ---------------------------------------------------------------------------------------
 * Per-workload decisions */

/* Orders stop candidates: not ready first, then those in the least preferred cloud, then
 * on the most expensive node, then the newest (highest rowid). When load falls, the
 * replicas that burst into a public cloud go first. */
static int stop_order(const void *a, const void *b)
{
    const struct replica_row *ra = *(struct replica_row *const *)a;
    const struct replica_row *rb = *(struct replica_row *const *)b;
    bool a_ready = ra->ready && ra->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    bool b_ready = rb->ready && rb->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    if (a_ready != b_ready)
        return a_ready ? 1 : -1;
    if (ra->rank != rb->rank)
        return ra->rank > rb->rank ? -1 : 1;
    if (ra->node_cost != rb->node_cost)
        return ra->node_cost > rb->node_cost ? -1 : 1;
    return ra->rowid > rb->rowid ? -1 : ra->rowid < rb->rowid ? 1 : 0;
}

/* A replica's cloud's place in the workload's preference; unlisted clouds come last. */
static size_t cloud_rank(const struct workload_row *w, const struct replica_row *r)
{
    const struct gy_strv *clouds = &w->spec.placement.clouds;
    for (size_t i = 0; i < clouds->n; i++)
        if (strcmp(clouds->items[i], r->node_cloud) == 0)
            return i;
    return clouds->n;
}

static bool is_ready(const struct replica_row *r)
{
    return r->ready && r->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
}

/* A new replica id: the workload's name and 32 random bits, unique among its replicas
 * (ids of other workloads have another prefix). */
static void make_id(char *buf, size_t len, const struct workload_row *w, sch_random_fn rnd,
                    void *data, const struct state *st)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        snprintf(buf, len, "%s-%08" PRIx32, w->name, rnd(data));
        bool taken = false;
        for (size_t k = 0; k < w->n_replicas && !taken; k++)
            taken = strcmp(st->replicas[w->first_replica + k].id, buf) == 0;
        if (!taken)
            return;
    }
}

/* A move ends when every replica is of the new generation and ready; it stops, saying
 * why, when new replicas cannot be placed or crash-loop (the old ones keep serving, as
 * the rollout stays make-before-break). */
static void move_progress(struct builder *b, const struct workload_row *w,
                          struct replica_row *const *cur, size_t n_cur, size_t n_old,
                          bool crash_loop, const char *unplaced, uint64_t now_ms)
{
    if (w->moving == NULL && w->move_stopped == NULL)
        return;
    const char *to = w->spec.placement.clouds.n > 0 ? w->spec.placement.clouds.items[0] : "any";
    size_t ready = 0;
    for (size_t i = 0; i < n_cur; i++)
        if (is_ready(cur[i]) && !cur[i]->stop)
            ready++;
    char msg[1400];
    if (n_old == 0 && ready >= w->desired) {
        uint64_t took =
            w->moving != NULL && now_ms > w->moving_since_ms ? now_ms - w->moving_since_ms : 0;
        snprintf(msg, sizeof(msg), "to %s: %" PRIu32 " replicas in %.1fs", to, w->desired,
                 (double)took / 1000.0);
        if (w->moving != NULL)
            add_condition(b, w->name, SCH_CONDITION_MOVING, "", now_ms);
        if (w->move_stopped != NULL)
            add_condition(b, w->name, SCH_CONDITION_MOVE_STOPPED, "", now_ms);
        add_condition(b, w->name, SCH_CONDITION_MOVED, msg, now_ms);
    } else if (w->moving != NULL && (*unplaced != '\0' || crash_loop)) {
        snprintf(msg, sizeof(msg), "move to %s stopped: %s; the previous replicas keep serving", to,
                 crash_loop ? "the new replicas are crash-looping" : unplaced);
        add_condition(b, w->name, SCH_CONDITION_MOVING, "", now_ms);
        add_condition(b, w->name, SCH_CONDITION_MOVE_STOPPED, msg, now_ms);
    }
}

static const char DRAINED_SQL[] =
    "SELECT name FROM nodes n WHERE n.state = ? AND NOT EXISTS"
    " (SELECT 1 FROM replicas r WHERE r.node = n.name AND r.state NOT IN (?, ?))";

static sqlite3_stmt *drained_query(struct sch_fsm *fsm)
{
    sqlite3_stmt *q = sch_fsm_stmt(fsm, DRAINED_SQL);
    if (q == NULL)
        return NULL;
    sqlite3_bind_int(q, 1, GANTRY__NODE_STATE__NODE_DRAINING);
    sqlite3_bind_int(q, 2, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
    sqlite3_bind_int(q, 3, GANTRY__REPLICA_STATE__REPLICA_LOST);
    return q;
}

size_t sch_reconcile_waiting(struct sch_fsm *fsm, char ***names)
{
    *names = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *q = sch_fsm_stmt(fsm, WAITING_SQL);
    if (q == NULL)
        return 0;
    sqlite3_bind_text(q, 1, SCH_CONDITION_UNSCHEDULABLE, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, SCH_CONDITION_MOVE_STOPPED, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            *names = gy_xrealloc(*names, cap * sizeof(**names));
        }
        (*names)[n++] = col_dup(q, 0);
    }
    sqlite3_reset(q);
    return n;
}

bool sch_reconcile_drain_due(struct sch_fsm *fsm)
{
    sqlite3_stmt *q = drained_query(fsm);
    bool due = q != NULL && sqlite3_step(q) == SQLITE_ROW;
    if (q != NULL)
        sqlite3_reset(q);
    return due;
}

/* Draining nodes that hold no live replica any more are drained: cordoned, so they take
 * no new replicas until uncordoned. */
static void drained_nodes(struct sch_fsm *fsm, struct builder *b, uint64_t now_ms)
{
    sqlite3_stmt *q = drained_query(fsm);
    if (q == NULL)
        return;
    while (sqlite3_step(q) == SQLITE_ROW) {
        Gantry__Command *c = gy_xmalloc(sizeof(*c));
        gantry__command__init(c);
        c->time_ms = now_ms;
        c->actor = gy_xstrdup("reconciler");
        Gantry__SetNodeState *set = gy_xmalloc(sizeof(*set));
        gantry__set_node_state__init(set);
        set->name = col_dup(q, 0);
        set->state = GANTRY__NODE_STATE__NODE_CORDONED;
        set->reason = gy_xstrdup("drained: no replicas left");
        c->cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
        c->set_node_state = set;
        b->extra = gy_xrealloc(b->extra, (b->n_extra + 1) * sizeof(*b->extra));
        b->extra[b->n_extra++] = c;
    }
    sqlite3_reset(q);
}

static void plan_workload(struct sch_fsm *fsm, struct state *st, struct workload_row *w,
                          struct builder *b, uint64_t now_ms, sch_random_fn rnd, void *rnd_data)
{
    size_t n_live = 0, n_cur = 0, n_old = 0, n_ready = 0, n_draining = 0;
    bool crash_loop = false;
    struct replica_row **cur = gy_xcalloc(w->n_replicas + 1, sizeof(*cur));
    struct replica_row **old = gy_xcalloc(w->n_replicas + 1, sizeof(*old));
    for (size_t k = 0; k < w->n_replicas; k++) {
        struct replica_row *r = &st->replicas[w->first_replica + k];
        if (!sch_replica_state_is_live(r->state))
            continue;
        n_live++;
        if (is_ready(r))
            n_ready++;
        r->rank = cloud_rank(w, r);
        if (r->node_state == GANTRY__NODE_STATE__NODE_DRAINING) {
            /* Replaced like an outdated replica, make-before-break. */
            old[n_old++] = r;
            n_draining++;
        } else if (r->generation >= w->generation) {
            cur[n_cur++] = r;
            if (strncmp(r->reason, "crash loop", 10) == 0)
                crash_loop = true;
        } else {
            old[n_old++] = r;
        }
    }
    uint32_t desired = w->desired;
    uint32_t surge = w->spec.update.max_surge;
    uint32_t unavailable = w->spec.update.max_unavailable;
    /* Moves and drains are make-before-break: a new replica is ready before an old one
     * stops, whatever the update strategy says. */
    bool make_before_break = w->moving != NULL || w->move_stopped != NULL || n_draining > 0;
    if (make_before_break) {
        unavailable = 0;
        if (surge == 0)
            surge = 1;
    }
    size_t to_place = 0;
    if (n_old == 0) {
        if (n_cur < desired)
            to_place = desired - n_cur;
    } else if (!crash_loop) {
        /* Rolling update: grow the new generation while the total stays within
         * desired + max_surge. */
        size_t limit = (size_t)desired + surge;
        size_t room = n_live < limit ? limit - n_live : 0;
        size_t want = n_cur < desired ? desired - n_cur : 0;
        to_place = room < want ? room : want;
    }

    /* Excess replicas of the current generation (scale-down). */
    if (n_cur > desired) {
        qsort(cur, n_cur, sizeof(*cur), stop_order);
        for (size_t i = 0; i < n_cur - desired; i++) {
            if (is_ready(cur[i]) && n_ready > 0)
                n_ready--;
            add_stop(b, cur[i], "scaled down");
        }
    }
    /* Outdated replicas: the ones not ready go at once; ready ones only while the ready
     * count stays at or above desired - max_unavailable. A crash-looping new generation
     * halts this, so the old replicas keep serving. */
    if (n_old > 0) {
        qsort(old, n_old, sizeof(*old), stop_order);
        size_t min_ready = desired > unavailable ? desired - unavailable : 0;
        size_t cur_kept = n_cur < desired ? n_cur : desired;
        for (size_t i = 0; i < n_old; i++) {
            struct replica_row *r = old[i];
            char why[192];
            if (r->node_state == GANTRY__NODE_STATE__NODE_DRAINING &&
                r->generation >= w->generation)
                snprintf(why, sizeof(why), "node %s is draining", r->node);
            else
                snprintf(why, sizeof(why), "replaced by generation %" PRIu64, w->generation);
            if (!is_ready(r)) {
                if (!crash_loop)
                    add_stop(b, r, why);
                continue;
            }
            /* Never more old replicas than the new generation leaves room for. */
            bool above_min = n_ready > min_ready;
            bool surplus = (size_t)(n_old - i) + cur_kept > desired;
            if (!crash_loop && above_min && surplus) {
                add_stop(b, r, why);
                n_ready--;
            }
        }
    }
    condition(b, w->name, SCH_CONDITION_ROLLOUT_HALTED, w->rollout_halted,
              n_old > 0 && crash_loop
                  ? "the new generation is crash-looping; the previous one keeps serving"
                  : "",
              now_ms);

    char reason[1024] = "";
    if (to_place > 0 && load_nodes(fsm, st) == 0) {
        for (size_t k = 0; k < w->n_replicas; k++) {
            struct replica_row *r = &st->replicas[w->first_replica + k];
            struct node_row *n =
                sch_replica_state_is_live(r->state) ? node_find(st, r->node) : NULL;
            if (n != NULL)
                n->view.workload_replicas++;
        }
        ensure_allocations(fsm, st);
        struct sch_place_node *views = gy_xcalloc(st->n_nodes + 1, sizeof(*views));
        for (size_t i = 0; i < st->n_nodes; i++)
            views[i] = st->nodes[i].view;
        size_t *idx = gy_xcalloc(to_place, sizeof(*idx));
        struct sch_place_result res = {.node_index = idx};
        struct gy_error err;
        if (sch_place(views, st->n_nodes, &w->spec, (uint32_t)to_place, &res, &err) < 0) {
            memcpy(reason, err.msg,
                   sizeof(reason) < sizeof(err.msg) ? sizeof(reason) : sizeof(err.msg));
            reason[sizeof(reason) - 1] = '\0';
        } else {
            for (uint32_t i = 0; i < res.placed; i++) {
                char id[128];
                make_id(id, sizeof(id), w, rnd, rnd_data, st);
                add_place(b, id, w->name, w->generation, st->nodes[idx[i]].name);
            }
            for (size_t i = 0; i < st->n_nodes; i++)
                st->nodes[i].view.allocated = views[i].allocated;
            if (res.placed < to_place) {
                int n = snprintf(reason, sizeof(reason),
                                 "%zu of %zu replicas cannot be placed: ", to_place - res.placed,
                                 to_place);
                if (n > 0 && (size_t)n < sizeof(reason))
                    strncat(reason, res.reason, sizeof(reason) - (size_t)n - 1);
            }
        }
        free(idx);
        free(views);
    }
    condition(b, w->name, SCH_CONDITION_UNSCHEDULABLE, w->unschedulable, reason, now_ms);
    move_progress(b, w, cur, n_cur, n_old, crash_loop, reason, now_ms);
    /* The per-node counts of this workload go back to zero for the next one. */
    for (size_t k = 0; k < w->n_replicas; k++) {
        struct node_row *n = node_find(st, st->replicas[w->first_replica + k].node);
        if (n != NULL)
            n->view.workload_replicas = 0;
    }
    free(cur);
    free(old);
}

int sch_reconcile_plan(struct sch_fsm *fsm, const char *const *only, size_t n_only, uint64_t now_ms,
                       sch_random_fn rnd, void *rnd_data, struct sch_reconcile_plan *plan,
                       struct gy_error *err)
{
    memset(plan, 0, sizeof(*plan));
    struct state st;
    memset(&st, 0, sizeof(st));
    int rc = load(fsm, &st, only, n_only, err);
    if (rc < 0) {
        state_free(&st);
        return rc;
    }
    struct builder b;
    memset(&b, 0, sizeof(b));
    for (size_t i = 0; i < st.n_workloads; i++)
        if (st.workloads[i].decoded)
            plan_workload(fsm, &st, &st.workloads[i], &b, now_ms, rnd, rnd_data);
    drained_nodes(fsm, &b, now_ms);
    if (st.nodes_rc < 0) {
        /* Nothing decided without the nodes is proposed. */
        *err = st.nodes_err;
        rc = st.nodes_rc;
        state_free(&st);
        builder_free(&b);
        return rc;
    }
    state_free(&st);

    size_t n_cmds = (b.n_place > 0) + (b.n_stop > 0) + b.n_extra;
    plan->placed = b.n_place;
    plan->stopped = b.n_stop;
    plan->conditions = b.n_extra;
    if (n_cmds == 0)
        return 0;
    Gantry__Command *batch = gy_xmalloc(sizeof(*batch));
    gantry__command__init(batch);
    batch->time_ms = now_ms;
    batch->actor = gy_xstrdup("reconciler");
    Gantry__CommandBatch *cb = gy_xmalloc(sizeof(*cb));
    gantry__command_batch__init(cb);
    cb->commands = gy_xcalloc(n_cmds, sizeof(*cb->commands));
    batch->cmd_case = GANTRY__COMMAND__CMD_BATCH;
    batch->batch = cb;
    if (b.n_place > 0) {
        Gantry__Command *c = gy_xmalloc(sizeof(*c));
        gantry__command__init(c);
        c->time_ms = now_ms;
        c->actor = gy_xstrdup("reconciler");
        Gantry__PlaceReplicas *p = gy_xmalloc(sizeof(*p));
        gantry__place_replicas__init(p);
        p->replicas = b.place;
        p->n_replicas = b.n_place;
        c->cmd_case = GANTRY__COMMAND__CMD_PLACE_REPLICAS;
        c->place_replicas = p;
        cb->commands[cb->n_commands++] = c;
    }
    if (b.n_stop > 0) {
        Gantry__Command *c = gy_xmalloc(sizeof(*c));
        gantry__command__init(c);
        c->time_ms = now_ms;
        c->actor = gy_xstrdup("reconciler");
        Gantry__UpdateReplicas *u = gy_xmalloc(sizeof(*u));
        gantry__update_replicas__init(u);
        u->updates = b.stop;
        u->n_updates = b.n_stop;
        c->cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
        c->update_replicas = u;
        cb->commands[cb->n_commands++] = c;
    }
    for (size_t i = 0; i < b.n_extra; i++)
        cb->commands[cb->n_commands++] = b.extra[i];
    free(b.extra);
    plan->command = batch;
    return 0;
}

void sch_reconcile_plan_free(struct sch_reconcile_plan *plan)
{
    /* Every part was allocated with malloc, as protobuf-c's unpacker would have. */
    if (plan->command != NULL)
        protobuf_c_message_free_unpacked(&plan->command->base, NULL);
    plan->command = NULL;
}
