/* The reads behind the HTTP API's views of the state (query_api.h). Every statement comes
 * from the state machine's cache, so a read prepares nothing after the first request of
 * its kind. */
#include "scheduler/state/query_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/hash.h"
#include "common/xalloc.h"
#include "proto/gantry.pb-c.h"

static const char WORKLOADS_ALL_SQL[] =
    "SELECT name, spec, generation, replicas, created_ms, updated_ms FROM workloads"
    " ORDER BY name";
static const char WORKLOADS_ONE_SQL[] =
    "SELECT name, spec, generation, replicas, created_ms, updated_ms FROM workloads"
    " WHERE name = ?";
static const char WORKLOAD_COUNTS_SQL[] =
    "SELECT COUNT(*), COALESCE(SUM(state = 2), 0), COALESCE(SUM(state = 2 AND ready), 0)"
    " FROM replicas WHERE workload = ?";
static const char CONDITIONS_SQL[] =
    "SELECT kind, message, time_ms FROM conditions WHERE workload = ? ORDER BY kind";
static const char NODE_CONDITIONS_SQL[] =
    "SELECT kind, message, time_ms FROM node_conditions WHERE node = ? ORDER BY kind";
static const char REPLICAS_SQL[] =
    "SELECT r.id, r.workload, r.generation, r.node, COALESCE(n.cloud, ''), r.state, r.ready,"
    " r.restarts, r.exit_code, r.address, r.reason FROM replicas r LEFT JOIN nodes n"
    " ON n.name = r.node WHERE (?1 IS NULL OR r.workload = ?1) ORDER BY r.workload, r.id";
static const char WORKLOAD_SPECS_SQL[] = "SELECT name, spec FROM workloads";
/* Stopped (4) and lost (7) replicas hold nothing on their node. */
static const char HOLDING_SQL[] = "SELECT node, workload, COUNT(*) FROM replicas"
                                  " WHERE state NOT IN (4, 7) GROUP BY node, workload";
static const char NODES_SQL[] =
    "SELECT n.name, n.cloud, n.region, n.zone, n.labels, n.cpu_millis, n.memory_bytes,"
    " n.pids, n.cost, n.state,"
    " (SELECT COUNT(*) FROM replicas r WHERE r.node = n.name AND r.state IN (0, 1, 2, 3)),"
    " n.address, (SELECT subnet FROM node_networks s WHERE s.node = n.name),"
    " coalesce((SELECT public_key FROM node_tunnels t WHERE t.node = n.name), '')"
    " FROM nodes n ORDER BY n.name";
static const char EVENTS_SQL[] = "SELECT seq, time_ms, actor, kind, object, message FROM events"
                                 " WHERE seq > ? ORDER BY seq LIMIT ?";
static const char SERVER_SQL[] = "SELECT api_address, agent_address FROM servers WHERE id = ?";
static const char CLOUDS_SQL[] =
    "SELECT cloud, SUM(state = 0) FROM nodes GROUP BY cloud ORDER BY cloud";
static const char NODE_STATE_SQL[] = "SELECT state FROM nodes WHERE name = ?";

/* One read in progress: its statement, from the cache or, once the cache is full,
 * prepared for this read alone (owned, finalized by query_end), what the last step
 * returned, and what it reads, for errors. */
struct query {
    struct sch_fsm *fsm;
    sqlite3_stmt *stmt;
    bool owned;
    int step;
    const char *what;
};

static int query_begin(struct query *q, struct sch_fsm *fsm, const char *sql, const char *what,
                       struct gy_error *err)
{
    *q = (struct query){
        .fsm = fsm, .stmt = sch_fsm_stmt(fsm, sql), .step = SQLITE_DONE, .what = what};
    if (q->stmt != NULL)
        return 0;
    if (sqlite3_prepare_v2(fsm->db, sql, -1, &q->stmt, NULL) != SQLITE_OK)
        return gy_error_set(err, GY_EINTERNAL, "read %s: %s", what, sqlite3_errmsg(fsm->db));
    q->owned = true;
    return 0;
}

/* Steps to the next row; false at the end or on an error (which query_end reports). */
static bool query_next(struct query *q)
{
    q->step = sqlite3_step(q->stmt);
    return q->step == SQLITE_ROW;
}

/* Ends a read: a cached statement is reset so that it holds no read transaction open (the
 * write-ahead log could not be copied past it). Returns rows, or the error of a step that
 * failed. */
static int query_end(struct query *q, int rows, struct gy_error *err)
{
    int rc = rows;
    if (q->step != SQLITE_DONE && q->step != SQLITE_ROW)
        rc = gy_error_set(err, GY_EINTERNAL, "read %s: %s", q->what, sqlite3_errmsg(q->fsm->db));
    if (q->owned)
        sqlite3_finalize(q->stmt);
    else
        sqlite3_reset(q->stmt);
    return rc;
}

static const char *text(const struct query *q, int col)
{
    return (const char *)sqlite3_column_text(q->stmt, col);
}

static int64_t i64(const struct query *q, int col)
{
    return sqlite3_column_int64(q->stmt, col);
}

/* ---------------------------------------------------------------------------------------
 * Workloads and their conditions */

/* Fills the replica counts of one workload. */
static int workload_counts(struct sch_fsm *fsm, struct sch_workload_view *w, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, WORKLOAD_COUNTS_SQL, "replica counts", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q.stmt, 1, w->name, -1, SQLITE_STATIC);
    if (query_next(&q)) {
        w->replicas = i64(&q, 0);
        w->running = i64(&q, 1);
        w->ready = i64(&q, 2);
    }
    return query_end(&q, 0, err);
}

int sch_view_workloads(struct sch_fsm *fsm, const char *name, sch_workload_view_cb cb, void *data,
                       struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, name ? WORKLOADS_ONE_SQL : WORKLOADS_ALL_SQL, "workloads", err);
    if (rc < 0)
        return rc;
    if (name != NULL)
        sqlite3_bind_text(q.stmt, 1, name, -1, SQLITE_STATIC);
    int n = 0;
    while (query_next(&q)) {
        struct sch_workload_view w = {
            .name = text(&q, 0),
            .spec = sqlite3_column_blob(q.stmt, 1),
            .spec_len = (size_t)sqlite3_column_bytes(q.stmt, 1),
            .generation = (uint64_t)i64(&q, 2),
            .desired = i64(&q, 3),
            .created_ms = i64(&q, 4),
            .updated_ms = i64(&q, 5),
        };
        rc = workload_counts(fsm, &w, err);
        if (rc < 0) {
            query_end(&q, 0, NULL);
            return rc;
        }
        cb(data, &w);
        n++;
    }
    return query_end(&q, n, err);
}

int sch_view_conditions(struct sch_fsm *fsm, const char *workload, sch_condition_view_cb cb,
                        void *data, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, CONDITIONS_SQL, "conditions", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q.stmt, 1, workload, -1, SQLITE_STATIC);
    int n = 0;
    for (; query_next(&q); n++)
        cb(data, &(struct sch_condition_view){text(&q, 0), text(&q, 1), i64(&q, 2)});
    return query_end(&q, n, err);
}

int sch_view_node_conditions(struct sch_fsm *fsm, const char *node, sch_condition_view_cb cb,
                             void *data, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, NODE_CONDITIONS_SQL, "node conditions", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q.stmt, 1, node, -1, SQLITE_STATIC);
    int n = 0;
    for (; query_next(&q); n++)
        cb(data, &(struct sch_condition_view){text(&q, 0), text(&q, 1), i64(&q, 2)});
    return query_end(&q, n, err);
}

/* ---------------------------------------------------------------------------------------
 * Replicas */

int sch_view_replicas(struct sch_fsm *fsm, const char *workload, sch_replica_view_cb cb, void *data,
                      struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, REPLICAS_SQL, "replicas", err);
    if (rc < 0)
        return rc;
    if (workload != NULL)
        sqlite3_bind_text(q.stmt, 1, workload, -1, SQLITE_STATIC);
    int n = 0;
    for (; query_next(&q); n++) {
        struct sch_replica_view r = {
            .id = text(&q, 0),
            .workload = text(&q, 1),
            .generation = (uint64_t)i64(&q, 2),
            .node = text(&q, 3),
            .cloud = text(&q, 4),
            .state = (int)i64(&q, 5),
            .ready = i64(&q, 6) != 0,
            .restarts = i64(&q, 7),
            .exit_code = i64(&q, 8),
            .address = text(&q, 9),
            .reason = text(&q, 10),
        };
        cb(data, &r);
    }
    return query_end(&q, n, err);
}

/* ---------------------------------------------------------------------------------------
 * Nodes and what is allocated on them */

/* What one replica of a workload requests, or what a node's replicas request together. */
struct demand {
    char *name; /* the workload's or the node's */
    int64_t cpu_millis;
    int64_t memory_bytes;
    UT_hash_handle hh;
};

static struct demand *demand_get(struct demand **table, const char *name)
{
    struct demand *d;
    HASH_FIND_STR(*table, name, d);
    if (d == NULL) {
        d = gy_xcalloc(1, sizeof(*d));
        d->name = gy_xstrdup(name);
        HASH_ADD_KEYPTR(hh, *table, d->name, strlen(d->name), d);
    }
    return d;
}

static void demand_free(struct demand **table)
{
    struct demand *d, *tmp;
    HASH_ITER(hh, *table, d, tmp)
    {
        HASH_DEL(*table, d);
        free(d->name);
        free(d);
    }
}

/* What one replica of each workload requests, from the workloads' specs. A spec that does
 * not decode, or has no resources, requests nothing. */
static int workload_requests(struct sch_fsm *fsm, struct demand **table, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, WORKLOAD_SPECS_SQL, "workload specs", err);
    if (rc < 0)
        return rc;
    while (query_next(&q)) {
        Gantry__WorkloadSpec *spec = gantry__workload_spec__unpack(
            NULL, (size_t)sqlite3_column_bytes(q.stmt, 1), sqlite3_column_blob(q.stmt, 1));
        if (spec == NULL)
            continue;
        if (spec->resources != NULL) {
            struct demand *d = demand_get(table, text(&q, 0));
            d->cpu_millis = (int64_t)spec->resources->cpu_millis;
            d->memory_bytes = (int64_t)spec->resources->memory_bytes;
        }
        gantry__workload_spec__free_unpacked(spec, NULL);
    }
    return query_end(&q, 0, err);
}

/* Adds to *table what the replicas that hold resources request on each node. */
static int node_allocations(struct sch_fsm *fsm, struct demand **table, struct gy_error *err)
{
    struct demand *requests = NULL;
    struct query q;
    int rc = workload_requests(fsm, &requests, err);
    if (rc >= 0)
        rc = query_begin(&q, fsm, HOLDING_SQL, "allocations", err);
    if (rc < 0) {
        demand_free(&requests);
        return rc;
    }
    while (query_next(&q)) {
        struct demand *one;
        HASH_FIND_STR(requests, text(&q, 1), one);
        if (one == NULL)
            continue;
        struct demand *node = demand_get(table, text(&q, 0));
        node->cpu_millis += one->cpu_millis * i64(&q, 2);
        node->memory_bytes += one->memory_bytes * i64(&q, 2);
    }
    demand_free(&requests);
    return query_end(&q, 0, err);
}

int sch_view_nodes(struct sch_fsm *fsm, sch_node_view_cb cb, void *data, struct gy_error *err)
{
    struct demand *allocations = NULL;
    struct query q;
    int rc = node_allocations(fsm, &allocations, err);
    if (rc >= 0)
        rc = query_begin(&q, fsm, NODES_SQL, "nodes", err);
    if (rc < 0) {
        demand_free(&allocations);
        return rc;
    }
    int n = 0;
    for (; query_next(&q); n++) {
        struct sch_node_view node = {
            .name = text(&q, 0),
            .cloud = text(&q, 1),
            .region = text(&q, 2),
            .zone = text(&q, 3),
            .labels = text(&q, 4),
            .cpu_millis = i64(&q, 5),
            .memory_bytes = i64(&q, 6),
            .pids = i64(&q, 7),
            .cost = sqlite3_column_double(q.stmt, 8),
            .state = (int)i64(&q, 9),
            .active_replicas = i64(&q, 10),
            .address = text(&q, 11),
            .subnet = text(&q, 12),
            .tunnel_key = text(&q, 13),
        };
        struct demand *allocated;
        HASH_FIND_STR(allocations, node.name, allocated);
        if (allocated != NULL) {
            node.allocated_cpu_millis = allocated->cpu_millis;
            node.allocated_memory_bytes = allocated->memory_bytes;
        }
        cb(data, &node);
    }
    demand_free(&allocations);
    return query_end(&q, n, err);
}

/* ---------------------------------------------------------------------------------------
 * The audit trail, servers, clouds */

int sch_view_events(struct sch_fsm *fsm, uint64_t since, unsigned limit, sch_event_view_cb cb,
                    void *data, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, EVENTS_SQL, "events", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q.stmt, 1, (sqlite3_int64)since);
    sqlite3_bind_int64(q.stmt, 2, (sqlite3_int64)limit);
    int n = 0;
    for (; query_next(&q); n++) {
        struct sch_event_view e = {
            .seq = (uint64_t)i64(&q, 0),
            .time_ms = i64(&q, 1),
            .actor = text(&q, 2),
            .kind = text(&q, 3),
            .object = text(&q, 4),
            .message = text(&q, 5),
        };
        cb(data, &e);
    }
    return query_end(&q, n, err);
}

int sch_view_server_addresses(struct sch_fsm *fsm, uint64_t id, char *api, size_t api_len,
                              char *agent, size_t agent_len, struct gy_error *err)
{
    snprintf(api, api_len, "%s", "");
    snprintf(agent, agent_len, "%s", "");
    struct query q;
    int rc = query_begin(&q, fsm, SERVER_SQL, "servers", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(q.stmt, 1, (sqlite3_int64)id);
    bool found = query_next(&q);
    if (found) {
        snprintf(api, api_len, "%s", text(&q, 0));
        snprintf(agent, agent_len, "%s", text(&q, 1));
    }
    return query_end(&q, found, err);
}

int sch_view_clouds(struct sch_fsm *fsm, sch_cloud_view_cb cb, void *data, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, CLOUDS_SQL, "clouds", err);
    if (rc < 0)
        return rc;
    int n = 0;
    for (; query_next(&q); n++)
        cb(data, text(&q, 0), i64(&q, 1));
    return query_end(&q, n, err);
}

int sch_view_node_state(struct sch_fsm *fsm, const char *name, struct gy_error *err)
{
    struct query q;
    int rc = query_begin(&q, fsm, NODE_STATE_SQL, "node state", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(q.stmt, 1, name, -1, SQLITE_STATIC);
    int state = query_next(&q) ? (int)i64(&q, 0) : -1;
    rc = query_end(&q, 0, err);
    if (rc < 0)
        return rc;
    if (state < 0)
        return gy_error_set(err, GY_ENOTFOUND, "node \"%s\" not found", name);
    return state;
}
