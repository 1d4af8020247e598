/* The reads behind the leader's fleet work (query_fleet.h). */
#include "scheduler/state/query_fleet.h"

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

/* The SQL texts are these constants: the statement cache finds them by address. */
static const char NODE_REPLICAS_SQL[] =
    "SELECT id, workload, generation, state FROM replicas WHERE node = ?";
static const char NODE_LIVE_STATUS_SQL[] =
    "SELECT id, workload, generation, state, restarts, exit_code, exit_signal, oom_killed,"
    " address FROM replicas WHERE node = ?1 AND state NOT IN (?2, ?3, ?4)";
static const char REPORT_SQL[] = "SELECT node, state, ready, restarts, exit_code, address, reason"
                                 " FROM replicas WHERE id = ?";
static const char SPEC_SQL[] = "SELECT spec FROM workloads WHERE name = ?";
/* The log of changed nodes (see sch_query_nodes_changed_after): a TEMP table and two TEMP
 * triggers of the state machine's connection, so none of it is in the database file, its
 * snapshots or its digest. A node's row moves to the end of the log (a new seq) whenever
 * one of its replicas is placed or goes pending, stopping or lost (states 0, 3 and 7),
 * and goes back with the rest of a command that is rolled back. */
static const char CHANGE_LOG_SQL[] =
    "CREATE TEMP TABLE IF NOT EXISTS replica_changes"
    " (seq INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL UNIQUE);"
    "CREATE TEMP TRIGGER IF NOT EXISTS replica_changes_placed AFTER INSERT ON replicas"
    " WHEN new.state IN (0, 3, 7)"
    " BEGIN INSERT OR REPLACE INTO replica_changes (node) VALUES (new.node); END;"
    "CREATE TEMP TRIGGER IF NOT EXISTS replica_changes_state AFTER UPDATE OF state ON replicas"
    " WHEN new.state IN (0, 3, 7)"
    " BEGIN INSERT OR REPLACE INTO replica_changes (node) VALUES (new.node); END;";
static const char CHANGE_LOG_CHECK_SQL[] =
    "SELECT COUNT(*) FROM sqlite_temp_master WHERE name IN"
    " ('replica_changes', 'replica_changes_placed', 'replica_changes_state')";
static const char CHANGE_LOG_END_SQL[] = "SELECT COALESCE(MAX(seq), 0) FROM temp.replica_changes";
static const char CHANGES_SQL[] = "SELECT node FROM temp.replica_changes WHERE seq > ?";
static const char UNSETTLED_NODES_SQL[] =
    "SELECT DISTINCT node FROM replicas WHERE state IN (?, ?, ?)";
static const char STOPPING_SQL[] = "SELECT id, node FROM replicas WHERE state = ?";
static const char REGISTERED_SQL[] =
    "SELECT cloud, region, zone, cpu_millis, memory_bytes, pids, cost, address, state,"
    " (SELECT subnet FROM node_networks WHERE node = name),"
    " coalesce((SELECT public_key FROM node_tunnels WHERE node = name), ''),"
    " coalesce((SELECT port FROM node_tunnels WHERE node = name), 0)"
    " FROM nodes WHERE name = ?";
static const char NODE_EXISTS_SQL[] = "SELECT 1 FROM nodes WHERE name = ?";
static const char NODE_SUBNET_SQL[] = "SELECT subnet FROM node_networks WHERE node = ?";
static const char NETWORK_PEERS_SQL[] =
    "SELECT n.name, n.address, s.subnet, n.cloud, coalesce(t.public_key, ''),"
    " coalesce(t.port, 0)"
    " FROM nodes n JOIN node_networks s ON s.node = n.name"
    " LEFT JOIN node_tunnels t ON t.node = n.name"
    " WHERE n.name != ?2 AND n.address != '' AND (n.cloud = ?1 OR t.public_key IS NOT NULL)"
    " ORDER BY n.name";
static const char AGENT_ADDRESS_SQL[] = "SELECT agent_address FROM servers WHERE id = ?";
static const char REPLICA_NODE_SQL[] = "SELECT node FROM replicas WHERE id = ?";
static const char NOT_DOWN_SQL[] = "SELECT name FROM nodes WHERE state != ?";
static const char NODES_SQL[] =
    "SELECT n.name, n.cloud, n.zone, n.labels, n.cpu_millis, n.memory_bytes, n.pids, n.state,"
    " EXISTS (SELECT 1 FROM node_conditions c WHERE c.node = n.name AND c.kind = ?)"
    " FROM nodes n ORDER BY n.name";
static const char NODE_CONDITION_SQL[] =
    "SELECT message FROM node_conditions WHERE node = ? AND kind = ?";
static const char NAMES_SQL[] = "SELECT name FROM workloads";
/* A workload with the counts that tell whether a pass has anything to decide for it. */
static const char PROGRESS_SQL[] =
    "SELECT w.name, w.spec, w.generation, w.replicas,"
    " (SELECT COUNT(*) FROM replicas r WHERE r.workload = w.name AND r.state NOT IN (?2, ?3, ?4)"
    "   AND r.generation >= w.generation),"
    " (SELECT COUNT(*) FROM replicas r WHERE r.workload = w.name AND r.state NOT IN (?2, ?3, ?4)"
    "   AND r.generation < w.generation),"
    " EXISTS (SELECT 1 FROM conditions c WHERE c.workload = w.name"
    "   AND c.kind IN (?5, ?6, ?7, ?8)),"
    " EXISTS (SELECT 1 FROM replicas r WHERE r.workload = w.name)"
    " FROM workloads w WHERE w.name = ?1";
/* Nodes have no index on their state: asked once per pass. */
static const char ANY_NODE_IN_SQL[] = "SELECT EXISTS (SELECT 1 FROM nodes WHERE state = ?)";
static const char ON_NODES_IN_SQL[] =
    "SELECT EXISTS (SELECT 1 FROM replicas r JOIN nodes n ON n.name = r.node"
    " WHERE r.workload = ?1 AND r.state NOT IN (?2, ?3, ?4) AND n.state = ?5)";
static const char REPLICAS_SQL[] =
    "SELECT r.rowid, r.id, r.workload, r.generation, r.node, r.state, r.ready, r.reason,"
    " COALESCE(n.state, 0), COALESCE(n.cloud, ''), COALESCE(n.cost, 0), r.changed_ms"
    " FROM replicas r LEFT JOIN nodes n ON n.name = r.node"
    " WHERE r.workload = ? ORDER BY r.rowid";
/* Nodes have no index on their state; few are down at a time, and the replicas of each are
 * found by replicas_by_node. */
static const char WORKLOADS_ON_NODES_IN_SQL[] =
    "SELECT DISTINCT r.workload FROM nodes n JOIN replicas r ON r.node = n.name"
    " WHERE n.state = ?1 AND r.state NOT IN (?2, ?3, ?4) ORDER BY r.workload";
static const char CONDITIONS_SQL[] =
    "SELECT kind, message, time_ms FROM conditions WHERE workload = ?";
static const char ALLOCATED_SQL[] =
    "SELECT workload, node, COUNT(*) FROM replicas WHERE state NOT IN (?, ?)"
    " GROUP BY workload, node ORDER BY workload";
static const char WAITING_SQL[] = "SELECT DISTINCT workload FROM conditions WHERE kind IN (?, ?)"
                                  " ORDER BY workload";
static const char DRAINED_SQL[] =
    "SELECT name FROM nodes n WHERE n.state = ? AND NOT EXISTS"
    " (SELECT 1 FROM replicas r WHERE r.node = n.name AND r.state NOT IN (?, ?))";
static const char SPECS_ALL_SQL[] = "SELECT name, spec, generation, replicas FROM workloads";
static const char SPECS_ONE_SQL[] =
    "SELECT name, spec, generation, replicas FROM workloads WHERE name = ?";
static const char READY_SQL[] = "SELECT id, node FROM replicas WHERE workload = ? AND state = 2"
                                " AND ready ORDER BY id";
static const char ACTIVE_ONE_SQL[] =
    "SELECT id, workload, node, state, ready FROM replicas"
    " WHERE workload = ? AND state IN (1, 2, 3) ORDER BY workload, id";
static const char ACTIVE_ALL_SQL[] = "SELECT id, workload, node, state, ready FROM replicas"
                                     " WHERE state IN (1, 2, 3) ORDER BY workload, id";

/* One read in progress: its statement, from the cache or, once the cache is full, prepared
 * for this read alone (owned), the rows stepped so far and the last step's outcome. */
struct read {
    sqlite3_stmt *stmt;
    bool owned;
    const char *what; /* what is read, for errors */
    int rows;
    int step_rc;
};

static int read_begin(struct sch_fsm *fsm, struct read *r, const char *sql, const char *what,
                      struct gy_error *err)
{
    r->stmt = sch_fsm_stmt(fsm, sql);
    r->owned = r->stmt == NULL;
    r->what = what;
    r->rows = 0;
    r->step_rc = SQLITE_DONE;
    if (r->stmt == NULL && sqlite3_prepare_v2(fsm->db, sql, -1, &r->stmt, NULL) != SQLITE_OK)
        return gy_error_set(err, GY_EINTERNAL, "read %s: %s", what, sqlite3_errmsg(fsm->db));
    return 0;
}

/* Steps to the next row; false at the end or on an error (which read_end reports). */
static bool read_next(struct read *r)
{
    r->step_rc = sqlite3_step(r->stmt);
    if (r->step_rc != SQLITE_ROW)
        return false;
    r->rows++;
    return true;
}

/* Ends a read: a cached statement is reset, so that it holds no read transaction open (the
 * write-ahead log could not be copied past it). Returns the rows stepped, or the error of a
 * step that failed. A read may end on a row, when its caller wants no more. */
static int read_end(struct sch_fsm *fsm, struct read *r, struct gy_error *err)
{
    int rc = r->rows;
    if (r->step_rc != SQLITE_DONE && r->step_rc != SQLITE_ROW)
        rc = gy_error_set(err, GY_EINTERNAL, "read %s: %s", r->what, sqlite3_errmsg(fsm->db));
    if (r->owned)
        sqlite3_finalize(r->stmt);
    else
        sqlite3_reset(r->stmt);
    return rc;
}

static const char *text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *t = sqlite3_column_text(stmt, col);
    return t != NULL ? (const char *)t : "";
}

static void bind_dead_states(sqlite3_stmt *stmt)
{
    sqlite3_bind_int(stmt, 2, GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    sqlite3_bind_int(stmt, 3, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
    sqlite3_bind_int(stmt, 4, GANTRY__REPLICA_STATE__REPLICA_LOST);
}

/* Ends a read whose only column is a name (its parameters bound), handing each row to cb
 * or, when until is set, to until while it returns true. */
static int read_names(struct sch_fsm *fsm, struct read *r, sch_query_name_cb cb,
                      sch_query_name_until_cb until, void *data, struct gy_error *err)
{
    while (read_next(r)) {
        if (until != NULL && !until(data, text(r->stmt, 0)))
            break;
        if (cb != NULL)
            cb(data, text(r->stmt, 0));
    }
    return read_end(fsm, r, err);
}

/* Ends a read that answers one EXISTS (its parameters bound): 1, 0 or an error. */
static int read_exists(struct sch_fsm *fsm, struct read *r, struct gy_error *err)
{
    bool exists = read_next(r) && sqlite3_column_int(r->stmt, 0) != 0;
    int rc = read_end(fsm, r, err);
    return rc < 0 ? rc : exists;
}

/* Ends a read of one text column (its parameter bound), copied into buf ("" when there is
 * no row). */
static bool read_text(struct sch_fsm *fsm, struct read *r, char *buf, size_t len)
{
    bool found = read_next(r);
    snprintf(buf, len, "%s", found ? text(r->stmt, 0) : "");
    struct gy_error err;
    return read_end(fsm, r, &err) >= 0 && found;
}

/* ---------------------------------------------------------------------------------------
 * Agents */

int sch_query_node_replicas(struct sch_fsm *fsm, const char *node, sch_node_replica_cb cb,
                            void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, NODE_REPLICAS_SQL, "replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, node, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        struct sch_node_replica_row row = {
            .id = text(r.stmt, 0),
            .workload = text(r.stmt, 1),
            .generation = (uint64_t)sqlite3_column_int64(r.stmt, 2),
            .state = sqlite3_column_int(r.stmt, 3),
        };
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}

int sch_query_node_live_status(struct sch_fsm *fsm, const char *node, sch_node_status_cb cb,
                               void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, NODE_LIVE_STATUS_SQL, "replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_stmt *q = r.stmt;
    sqlite3_bind_text(q, 1, node, -1, SQLITE_STATIC);
    bind_dead_states(q);
    while (read_next(&r)) {
        struct sch_node_status_row row = {
            .id = text(q, 0),
            .workload = text(q, 1),
            .generation = (uint64_t)sqlite3_column_int64(q, 2),
            .state = sqlite3_column_int(q, 3),
            .restarts = (uint32_t)sqlite3_column_int64(q, 4),
            .exit_code = sqlite3_column_int(q, 5),
            .exit_signal = sqlite3_column_int(q, 6),
            .oom_killed = sqlite3_column_int(q, 7) != 0,
            .address = text(q, 8),
        };
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}

bool sch_query_report_is_news(struct sch_fsm *fsm, const char *node,
                              const Gantry__ReplicaStatus *report)
{
    struct read r;
    struct gy_error err;
    if (read_begin(fsm, &r, REPORT_SQL, "replica", &err) < 0)
        return false;
    sqlite3_stmt *q = r.stmt;
    sqlite3_bind_text(q, 1, report->replica_id, -1, SQLITE_STATIC);
    bool news = false;
    if (read_next(&r) && strcmp(text(q, 0), node) == 0)
        news = sqlite3_column_int(q, 1) != (int)report->state ||
               sqlite3_column_int(q, 2) != (int)report->ready ||
               sqlite3_column_int64(q, 3) != (int64_t)report->restarts ||
               sqlite3_column_int(q, 4) != report->exit_code ||
               strcmp(text(q, 5), report->address) != 0 || strcmp(text(q, 6), report->reason) != 0;
    read_end(fsm, &r, &err);
    return news;
}

Gantry__WorkloadSpec *sch_query_workload_spec(struct sch_fsm *fsm, const char *workload)
{
    struct read r;
    struct gy_error err;
    if (read_begin(fsm, &r, SPEC_SQL, "workload", &err) < 0)
        return NULL;
    sqlite3_bind_text(r.stmt, 1, workload, -1, SQLITE_STATIC);
    Gantry__WorkloadSpec *spec = NULL;
    if (read_next(&r))
        spec = gantry__workload_spec__unpack(NULL, (size_t)sqlite3_column_bytes(r.stmt, 0),
                                             sqlite3_column_blob(r.stmt, 0));
    read_end(fsm, &r, &err);
    return spec;
}

/* Creates the log of changed nodes when the connection does not have all of it (the first
 * call, or the database was replaced). Returns 1 when it was created, 0 when it was there,
 * or a negative gy_code. */
static int change_log_ensure(struct sch_fsm *fsm, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, CHANGE_LOG_CHECK_SQL, "change log", err) < 0)
        return -GY_EINTERNAL;
    bool whole = read_next(&r) && sqlite3_column_int(r.stmt, 0) == 3;
    int rc = read_end(fsm, &r, err);
    if (rc < 0)
        return rc;
    if (whole)
        return 0;
    if (sqlite3_exec(fsm->db, CHANGE_LOG_SQL, NULL, NULL, NULL) != SQLITE_OK)
        return gy_error_set(err, GY_EINTERNAL, "create change log: %s", sqlite3_errmsg(fsm->db));
    return 1;
}

/* The seq of the newest entry of the log (0 when it is empty). */
static int change_log_end(struct sch_fsm *fsm, uint64_t *end, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, CHANGE_LOG_END_SQL, "change log", err) < 0)
        return -GY_EINTERNAL;
    *end = read_next(&r) ? (uint64_t)sqlite3_column_int64(r.stmt, 0) : 0;
    int rc = read_end(fsm, &r, err);
    return rc < 0 ? rc : 0;
}

int sch_query_nodes_changed_after(struct sch_fsm *fsm, uint64_t *mark, sch_query_name_cb cb,
                                  void *data, struct gy_error *err)
{
    int created = change_log_ensure(fsm, err);
    if (created < 0)
        return created;
    uint64_t end;
    int rc = change_log_end(fsm, &end, err);
    if (rc < 0)
        return rc;
    struct read r;
    if (created || *mark > end) {
        /* No log of what came before: every node that may have something to send. */
        if (read_begin(fsm, &r, UNSETTLED_NODES_SQL, "changed replicas", err) < 0)
            return -GY_EINTERNAL;
        sqlite3_bind_int(r.stmt, 1, GANTRY__REPLICA_STATE__REPLICA_PENDING);
        sqlite3_bind_int(r.stmt, 2, GANTRY__REPLICA_STATE__REPLICA_STOPPING);
        sqlite3_bind_int(r.stmt, 3, GANTRY__REPLICA_STATE__REPLICA_LOST);
    } else {
        if (read_begin(fsm, &r, CHANGES_SQL, "changed replicas", err) < 0)
            return -GY_EINTERNAL;
        sqlite3_bind_int64(r.stmt, 1, (sqlite3_int64)*mark);
    }
    rc = read_names(fsm, &r, cb, NULL, data, err);
    if (rc >= 0)
        *mark = end;
    return rc;
}

int sch_query_stopping(struct sch_fsm *fsm, sch_replica_at_cb cb, void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, STOPPING_SQL, "stopping replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_int(r.stmt, 1, GANTRY__REPLICA_STATE__REPLICA_STOPPING);
    while (read_next(&r)) {
        struct sch_replica_at_row row = {.id = text(r.stmt, 0), .node = text(r.stmt, 1)};
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}

/* A hello without a subnet matches the subnet the node was given: it keeps it. */
static bool subnet_same(const char *recorded, const char *hello)
{
    if (hello == NULL || *hello == '\0')
        return *recorded != '\0';
    return strcmp(recorded, hello) == 0;
}

bool sch_query_node_registered_as(struct sch_fsm *fsm, const Gantry__NodeInfo *info)
{
    const Gantry__Resources *c = info->capacity;
    struct read r;
    struct gy_error err;
    if (read_begin(fsm, &r, REGISTERED_SQL, "node", &err) < 0)
        return false;
    sqlite3_stmt *q = r.stmt;
    sqlite3_bind_text(q, 1, info->name, -1, SQLITE_STATIC);
    bool same = false;
    if (read_next(&r))
        same = strcmp(text(q, 0), info->cloud) == 0 && strcmp(text(q, 1), info->region) == 0 &&
               strcmp(text(q, 2), info->zone) == 0 && c != NULL &&
               sqlite3_column_int64(q, 3) == c->cpu_millis &&
               sqlite3_column_int64(q, 4) == c->memory_bytes &&
               sqlite3_column_int64(q, 5) == c->pids &&
               sqlite3_column_double(q, 6) == info->cost_per_hour &&
               strcmp(text(q, 7), info->address) == 0 &&
               sqlite3_column_int(q, 8) != GANTRY__NODE_STATE__NODE_DOWN &&
               subnet_same(text(q, 9), info->subnet) &&
               strcmp(text(q, 10), info->tunnel_key != NULL ? info->tunnel_key : "") == 0 &&
               sqlite3_column_int64(q, 11) ==
                   (info->tunnel_key != NULL && *info->tunnel_key ? info->tunnel_port : 0);
    read_end(fsm, &r, &err);
    return same;
}

int sch_query_network_peers(struct sch_fsm *fsm, const char *cloud, const char *except,
                            sch_network_peer_cb cb, void *data, struct gy_error *err)
{
    struct read r;
    int rc = read_begin(fsm, &r, NETWORK_PEERS_SQL, "network peers", err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(r.stmt, 1, cloud, -1, SQLITE_STATIC);
    sqlite3_bind_text(r.stmt, 2, except, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        struct sch_network_peer p = {.name = text(r.stmt, 0),
                                     .address = text(r.stmt, 1),
                                     .subnet = text(r.stmt, 2),
                                     .cloud = text(r.stmt, 3),
                                     .tunnel_key = text(r.stmt, 4),
                                     .tunnel_port = (uint32_t)sqlite3_column_int64(r.stmt, 5)};
        cb(data, &p);
    }
    return read_end(fsm, &r, err);
}

bool sch_query_node_exists(struct sch_fsm *fsm, const char *name)
{
    struct read r;
    struct gy_error err;
    if (read_begin(fsm, &r, NODE_EXISTS_SQL, "node", &err) < 0)
        return false;
    sqlite3_bind_text(r.stmt, 1, name, -1, SQLITE_STATIC);
    bool found = read_next(&r);
    read_end(fsm, &r, &err);
    return found;
}

void sch_query_node_subnet(struct sch_fsm *fsm, const char *node, char *buf, size_t len)
{
    struct read r;
    struct gy_error err;
    snprintf(buf, len, "%s", "");
    if (read_begin(fsm, &r, NODE_SUBNET_SQL, "node subnet", &err) < 0)
        return;
    sqlite3_bind_text(r.stmt, 1, node, -1, SQLITE_STATIC);
    read_text(fsm, &r, buf, len);
}

void sch_query_server_agent_address(struct sch_fsm *fsm, uint64_t id, char *buf, size_t len)
{
    struct read r;
    struct gy_error err;
    snprintf(buf, len, "%s", "");
    if (read_begin(fsm, &r, AGENT_ADDRESS_SQL, "servers", &err) < 0)
        return;
    sqlite3_bind_int64(r.stmt, 1, (sqlite3_int64)id);
    read_text(fsm, &r, buf, len);
}

bool sch_query_replica_node(struct sch_fsm *fsm, const char *id, char *buf, size_t len)
{
    struct read r;
    struct gy_error err;
    snprintf(buf, len, "%s", "");
    if (read_begin(fsm, &r, REPLICA_NODE_SQL, "replica", &err) < 0)
        return false;
    sqlite3_bind_text(r.stmt, 1, id, -1, SQLITE_STATIC);
    return read_text(fsm, &r, buf, len);
}

bool sch_query_node_condition(struct sch_fsm *fsm, const char *node, const char *kind, char *buf,
                              size_t len)
{
    struct read r;
    struct gy_error err;
    snprintf(buf, len, "%s", "");
    if (read_begin(fsm, &r, NODE_CONDITION_SQL, "node conditions", &err) < 0)
        return false;
    sqlite3_bind_text(r.stmt, 1, node, -1, SQLITE_STATIC);
    sqlite3_bind_text(r.stmt, 2, kind, -1, SQLITE_STATIC);
    return read_text(fsm, &r, buf, len);
}

int sch_query_nodes_not_down(struct sch_fsm *fsm, sch_query_name_until_cb cb, void *data,
                             struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, NOT_DOWN_SQL, "nodes", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_int(r.stmt, 1, GANTRY__NODE_STATE__NODE_DOWN);
    return read_names(fsm, &r, NULL, cb, data, err);
}

/* ---------------------------------------------------------------------------------------
 * Reconcile */

int sch_query_nodes(struct sch_fsm *fsm, sch_node_row_cb cb, void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, NODES_SQL, "nodes", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, SCH_NODE_CONDITION_STORAGE, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        sqlite3_stmt *q = r.stmt;
        struct sch_node_row row = {
            .name = text(q, 0),
            .cloud = text(q, 1),
            .zone = text(q, 2),
            .labels = text(q, 3),
            .cpu_millis = sqlite3_column_int64(q, 4),
            .memory_bytes = sqlite3_column_int64(q, 5),
            .pids = sqlite3_column_int64(q, 6),
            .state = sqlite3_column_int(q, 7),
            .storage_pressure = sqlite3_column_int(q, 8) != 0,
        };
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}

int sch_query_workload_names(struct sch_fsm *fsm, sch_query_name_cb cb, void *data,
                             struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, NAMES_SQL, "workloads", err) < 0)
        return -GY_EINTERNAL;
    return read_names(fsm, &r, cb, NULL, data, err);
}

int sch_query_workload_progress(struct sch_fsm *fsm, const char *name, const char *const kinds[4],
                                sch_workload_progress_cb cb, void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, PROGRESS_SQL, "workload", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_stmt *q = r.stmt;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    bind_dead_states(q);
    for (int i = 0; i < 4; i++)
        sqlite3_bind_text(q, 5 + i, kinds[i], -1, SQLITE_STATIC);
    if (read_next(&r)) {
        struct sch_workload_progress_row w = {
            .name = text(q, 0),
            .spec = sqlite3_column_blob(q, 1),
            .spec_len = (size_t)sqlite3_column_bytes(q, 1),
            .generation = (uint64_t)sqlite3_column_int64(q, 2),
            .desired = sqlite3_column_int64(q, 3),
            .live_current = sqlite3_column_int64(q, 4),
            .live_old = sqlite3_column_int64(q, 5),
            .has_condition = sqlite3_column_int(q, 6) != 0,
            .any_replica = sqlite3_column_int(q, 7) != 0,
        };
        cb(data, &w);
    }
    return read_end(fsm, &r, err);
}

int sch_query_workload_on_nodes_in(struct sch_fsm *fsm, const char *workload, int node_state,
                                   struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, ON_NODES_IN_SQL, "replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, workload, -1, SQLITE_STATIC);
    bind_dead_states(r.stmt);
    sqlite3_bind_int(r.stmt, 5, node_state);
    return read_exists(fsm, &r, err);
}

int sch_query_workloads_on_nodes_in(struct sch_fsm *fsm, int node_state, sch_query_name_cb cb,
                                    void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, WORKLOADS_ON_NODES_IN_SQL, "replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_int(r.stmt, 1, node_state);
    bind_dead_states(r.stmt);
    return read_names(fsm, &r, cb, NULL, data, err);
}

int sch_query_any_node_in(struct sch_fsm *fsm, int node_state, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, ANY_NODE_IN_SQL, "nodes", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_int(r.stmt, 1, node_state);
    return read_exists(fsm, &r, err);
}

int sch_query_workload_replicas(struct sch_fsm *fsm, const char *workload, sch_replica_row_cb cb,
                                void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, REPLICAS_SQL, "replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, workload, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        sqlite3_stmt *q = r.stmt;
        struct sch_replica_row row = {
            .rowid = sqlite3_column_int64(q, 0),
            .id = text(q, 1),
            .workload = text(q, 2),
            .generation = (uint64_t)sqlite3_column_int64(q, 3),
            .node = text(q, 4),
            .state = sqlite3_column_int(q, 5),
            .ready = sqlite3_column_int(q, 6) != 0,
            .reason = text(q, 7),
            .node_state = sqlite3_column_int(q, 8),
            .node_cloud = text(q, 9),
            .node_cost = sqlite3_column_double(q, 10),
            .changed_ms = (uint64_t)sqlite3_column_int64(q, 11),
        };
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}

int sch_query_workload_conditions(struct sch_fsm *fsm, const char *workload,
                                  sch_condition_row_cb cb, void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, CONDITIONS_SQL, "conditions", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, workload, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        struct sch_condition_row c = {
            .kind = text(r.stmt, 0),
            .message = text(r.stmt, 1),
            .time_ms = (uint64_t)sqlite3_column_int64(r.stmt, 2),
        };
        cb(data, &c);
    }
    return read_end(fsm, &r, err);
}

int sch_query_allocations(struct sch_fsm *fsm, sch_allocation_row_cb cb, void *data,
                          struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, ALLOCATED_SQL, "allocations", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_int(r.stmt, 1, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
    sqlite3_bind_int(r.stmt, 2, GANTRY__REPLICA_STATE__REPLICA_LOST);
    while (read_next(&r)) {
        struct sch_allocation_row a = {
            .workload = text(r.stmt, 0),
            .node = text(r.stmt, 1),
            .replicas = sqlite3_column_int64(r.stmt, 2),
        };
        cb(data, &a);
    }
    return read_end(fsm, &r, err);
}

int sch_query_workloads_with_condition(struct sch_fsm *fsm, const char *kind_a, const char *kind_b,
                                       sch_query_name_cb cb, void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, WAITING_SQL, "conditions", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, kind_a, -1, SQLITE_STATIC);
    sqlite3_bind_text(r.stmt, 2, kind_b, -1, SQLITE_STATIC);
    return read_names(fsm, &r, cb, NULL, data, err);
}

int sch_query_drained_nodes(struct sch_fsm *fsm, sch_query_name_until_cb cb, void *data,
                            struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, DRAINED_SQL, "nodes", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_int(r.stmt, 1, GANTRY__NODE_STATE__NODE_DRAINING);
    sqlite3_bind_int(r.stmt, 2, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
    sqlite3_bind_int(r.stmt, 3, GANTRY__REPLICA_STATE__REPLICA_LOST);
    return read_names(fsm, &r, NULL, cb, data, err);
}

/* ---------------------------------------------------------------------------------------
 * Autoscaler */

int sch_query_workload_specs(struct sch_fsm *fsm, const char *name, sch_workload_spec_cb cb,
                             void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, name != NULL ? SPECS_ONE_SQL : SPECS_ALL_SQL, "workloads", err) < 0)
        return -GY_EINTERNAL;
    if (name != NULL)
        sqlite3_bind_text(r.stmt, 1, name, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        struct sch_workload_spec_row w = {
            .name = text(r.stmt, 0),
            .spec = sqlite3_column_blob(r.stmt, 1),
            .spec_len = (size_t)sqlite3_column_bytes(r.stmt, 1),
            .generation = (uint64_t)sqlite3_column_int64(r.stmt, 2),
            .desired = sqlite3_column_int64(r.stmt, 3),
        };
        cb(data, &w);
    }
    return read_end(fsm, &r, err);
}

int sch_query_ready_replicas(struct sch_fsm *fsm, const char *workload, sch_replica_at_cb cb,
                             void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, READY_SQL, "replicas", err) < 0)
        return -GY_EINTERNAL;
    sqlite3_bind_text(r.stmt, 1, workload, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        struct sch_replica_at_row row = {.id = text(r.stmt, 0), .node = text(r.stmt, 1)};
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}

int sch_query_active_replicas(struct sch_fsm *fsm, const char *workload, sch_active_replica_cb cb,
                              void *data, struct gy_error *err)
{
    struct read r;
    if (read_begin(fsm, &r, workload != NULL ? ACTIVE_ONE_SQL : ACTIVE_ALL_SQL, "replicas", err) <
        0)
        return -GY_EINTERNAL;
    if (workload != NULL)
        sqlite3_bind_text(r.stmt, 1, workload, -1, SQLITE_STATIC);
    while (read_next(&r)) {
        struct sch_active_replica_row row = {
            .id = text(r.stmt, 0),
            .workload = text(r.stmt, 1),
            .node = text(r.stmt, 2),
            .state = sqlite3_column_int(r.stmt, 3),
            .ready = sqlite3_column_int(r.stmt, 4) != 0,
        };
        cb(data, &row);
    }
    return read_end(fsm, &r, err);
}
