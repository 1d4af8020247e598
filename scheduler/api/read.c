/* Read endpoints: answered from this server's copy of the state (on the leader after a
 * barrier, on any server with ?stale=1), the cluster view, health, metrics and the events
 * long-poll. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "proto/spec_pb.h"
#include "scheduler/fleet/fleet.h"
#include "scheduler/server.h"

#define EVENTS_PAGE 1000

static const char *const replica_states[] = {"pending", "starting", "running", "stopping",
                                             "stopped", "exited",   "failed",  "lost"};
static const char *const node_states[] = {"ready", "down", "cordoned", "draining"};

static const char *replica_state_name(int state)
{
    return state >= 0 && state < 8 ? replica_states[state] : "unknown";
}

/* The JSON form of a stored WorkloadSpec, or null when it cannot be decoded. */
static json_t *spec_json(const void *blob, size_t len)
{
    Gantry__WorkloadSpec *msg = gantry__workload_spec__unpack(NULL, len, blob);
    if (msg == NULL)
        return json_null();
    struct gy_spec spec;
    struct gy_error err;
    json_t *out;
    if (gy_spec_from_proto(msg, &spec, &err) == 0)
        out = gy_spec_to_json(&spec);
    else
        out = json_null();
    gy_spec_free(&spec);
    gantry__workload_spec__free_unpacked(msg, NULL);
    return out ? out : json_null();
}

static json_t *workload_row(sqlite3 *db, sqlite3_stmt *stmt)
{
    const char *name = (const char *)sqlite3_column_text(stmt, 0);
    json_t *spec = spec_json(sqlite3_column_blob(stmt, 1), (size_t)sqlite3_column_bytes(stmt, 1));
    int64_t running = 0, ready = 0, total = 0;
    sqlite3_stmt *counts;
    if (sqlite3_prepare_v2(
            db,
            "SELECT COUNT(*), COALESCE(SUM(state = 2), 0),"
            " COALESCE(SUM(state = 2 AND ready), 0) FROM replicas WHERE workload = ?",
            -1, &counts, NULL) == SQLITE_OK) {
        sqlite3_bind_text(counts, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(counts) == SQLITE_ROW) {
            total = sqlite3_column_int64(counts, 0);
            running = sqlite3_column_int64(counts, 1);
            ready = sqlite3_column_int64(counts, 2);
        }
        sqlite3_finalize(counts);
    }
    int64_t desired = sqlite3_column_int64(stmt, 3);
    /* The stored spec is the template; the count lives in its own column. */
    if (json_is_object(spec))
        json_object_set_new(spec, "replicas", json_integer(desired));
    json_t *conditions = json_array();
    sqlite3_stmt *cq;
    if (sqlite3_prepare_v2(db,
                           "SELECT kind, message, time_ms FROM conditions WHERE workload = ?"
                           " ORDER BY kind",
                           -1, &cq, NULL) == SQLITE_OK) {
        sqlite3_bind_text(cq, 1, name, -1, SQLITE_STATIC);
        while (sqlite3_step(cq) == SQLITE_ROW)
            json_array_append_new(conditions,
                                  json_pack("{s:s,s:s,s:I}", "type", sqlite3_column_text(cq, 0),
                                            "message", sqlite3_column_text(cq, 1), "time_ms",
                                            (json_int_t)sqlite3_column_int64(cq, 2)));
        sqlite3_finalize(cq);
    }
    if (ready < desired)
        json_array_append_new(conditions, json_pack("{s:s,s:s}", "type", "Progressing", "message",
                                                    "fewer ready replicas than desired"));
    else
        json_array_append_new(conditions, json_pack("{s:s,s:s}", "type", "Available", "message",
                                                    "all desired replicas are ready"));
    return json_pack("{s:s,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:o},s:I,s:I}", "name", name, "generation",
                     (json_int_t)sqlite3_column_int64(stmt, 2), "spec", spec, "status", "desired",
                     (json_int_t)desired, "replicas", (json_int_t)total, "running",
                     (json_int_t)running, "ready", (json_int_t)ready, "conditions", conditions,
                     "created_ms", (json_int_t)sqlite3_column_int64(stmt, 4), "updated_ms",
                     (json_int_t)sqlite3_column_int64(stmt, 5));
}

/* Adds status.autoscaler to an autoscaled workload: idle (retired to zero) or active, and,
 * when this server leads, the live figures of its autoscaler. */
static void autoscaler_status(struct sch_server *server, json_t *w)
{
    const json_t *a = json_object_get(json_object_get(w, "spec"), "autoscale");
    json_t *status = json_object_get(w, "status");
    if (!json_is_object(a) || !json_is_object(status))
        return;
    json_int_t desired = json_integer_value(json_object_get(status, "desired"));
    json_t *o = json_pack("{s:s}", "state", desired == 0 ? "idle" : "active");
    json_t *live =
        sch_leader_autoscaler_json(server, json_string_value(json_object_get(w, "name")));
    if (live != NULL)
        json_object_set_new(o, "live", live);
    json_object_set_new(status, "autoscaler", o);
}

static void read_workloads(struct sch_call *call, bool one)
{
    sqlite3 *db = call->server->node.fsm.db;
    sqlite3_stmt *stmt;
    const char *sql = one ? "SELECT name, spec, generation, replicas, created_ms, updated_ms"
                            " FROM workloads WHERE name = ?"
                          : "SELECT name, spec, generation, replicas, created_ms, updated_ms"
                            " FROM workloads ORDER BY name";
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        sch_call_error(call, 500, "internal", NULL, "read workloads: %s", sqlite3_errmsg(db));
        return;
    }
    if (one)
        sqlite3_bind_text(stmt, 1, call->name, -1, SQLITE_STATIC);
    json_t *items = json_array();
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *w = workload_row(db, stmt);
        autoscaler_status(call->server, w);
        json_array_append_new(items, w);
    }
    sqlite3_finalize(stmt);
    if (!one) {
        sch_call_json(call, 200, json_pack("{s:o}", "items", items));
    } else if (json_array_size(items) == 0) {
        json_decref(items);
        sch_call_error(call, 404, "not_found", "name", "workload \"%s\" not found", call->name);
    } else {
        json_t *w = json_incref(json_array_get(items, 0));
        json_decref(items);
        sch_call_json(call, 200, w);
    }
}

static void read_replicas(struct sch_call *call)
{
    sqlite3 *db = call->server->node.fsm.db;
    char workload[128];
    bool filter = sch_http_query(call->req, "workload", workload, sizeof(workload));
    sqlite3_stmt *stmt;
    const char *sql =
        "SELECT r.id, r.workload, r.generation, r.node, COALESCE(n.cloud, ''), r.state, r.ready,"
        " r.restarts, r.exit_code, r.address, r.reason FROM replicas r LEFT JOIN nodes n"
        " ON n.name = r.node WHERE (?1 IS NULL OR r.workload = ?1) ORDER BY r.workload, r.id";
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        sch_call_error(call, 500, "internal", NULL, "read replicas: %s", sqlite3_errmsg(db));
        return;
    }
    if (filter)
        sqlite3_bind_text(stmt, 1, workload, -1, SQLITE_STATIC);
    json_t *items = json_array();
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_array_append_new(
            items,
            json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:b,s:I,s:I,s:s,s:s}", "id",
                      sqlite3_column_text(stmt, 0), "workload", sqlite3_column_text(stmt, 1),
                      "generation", (json_int_t)sqlite3_column_int64(stmt, 2), "node",
                      sqlite3_column_text(stmt, 3), "cloud", sqlite3_column_text(stmt, 4), "state",
                      replica_state_name(sqlite3_column_int(stmt, 5)), "ready",
                      sqlite3_column_int(stmt, 6), "restarts",
                      (json_int_t)sqlite3_column_int64(stmt, 7), "exit_code",
                      (json_int_t)sqlite3_column_int64(stmt, 8), "address",
                      sqlite3_column_text(stmt, 9), "reason", sqlite3_column_text(stmt, 10)));
    }
    sqlite3_finalize(stmt);
    sch_call_json(call, 200, json_pack("{s:o}", "items", items));
}

/* What the replicas on each node request: {"node": [cpu_millis, memory_bytes]}, from every
 * replica that holds resources (all but stopped and lost). Each workload's spec is decoded
 * once. */
static json_t *node_allocations(sqlite3 *db)
{
    json_t *out = json_object();
    json_t *requests = json_object();
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT name, spec FROM workloads", -1, &q, NULL) == SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            Gantry__WorkloadSpec *spec = gantry__workload_spec__unpack(
                NULL, (size_t)sqlite3_column_bytes(q, 1), sqlite3_column_blob(q, 1));
            if (spec == NULL)
                continue;
            json_object_set_new(
                requests, (const char *)sqlite3_column_text(q, 0),
                json_pack("[I,I]", (json_int_t)(spec->resources ? spec->resources->cpu_millis : 0),
                          (json_int_t)(spec->resources ? spec->resources->memory_bytes : 0)));
            gantry__workload_spec__free_unpacked(spec, NULL);
        }
        sqlite3_finalize(q);
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT node, workload, COUNT(*) FROM replicas WHERE state NOT IN (4, 7)"
                           " GROUP BY node, workload",
                           -1, &q, NULL) != SQLITE_OK) {
        json_decref(requests);
        return out;
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        const json_t *req = json_object_get(requests, (const char *)sqlite3_column_text(q, 1));
        if (req == NULL)
            continue;
        int64_t n = sqlite3_column_int64(q, 2);
        int64_t cpu = json_integer_value(json_array_get(req, 0)) * n;
        int64_t mem = json_integer_value(json_array_get(req, 1)) * n;
        const char *node = (const char *)sqlite3_column_text(q, 0);
        json_t *cur = json_object_get(out, node);
        if (cur != NULL) {
            cpu += json_integer_value(json_array_get(cur, 0));
            mem += json_integer_value(json_array_get(cur, 1));
        }
        json_object_set_new(out, node, json_pack("[I,I]", (json_int_t)cpu, (json_int_t)mem));
    }
    sqlite3_finalize(q);
    json_decref(requests);
    return out;
}

static void read_nodes(struct sch_call *call)
{
    sqlite3 *db = call->server->node.fsm.db;
    sqlite3_stmt *stmt;
    const char *sql =
        "SELECT n.name, n.cloud, n.region, n.zone, n.labels, n.cpu_millis, n.memory_bytes,"
        " n.pids, n.cost, n.state,"
        " (SELECT COUNT(*) FROM replicas r WHERE r.node = n.name AND r.state IN (0, 1, 2, 3))"
        " FROM nodes n ORDER BY n.name";
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        sch_call_error(call, 500, "internal", NULL, "read nodes: %s", sqlite3_errmsg(db));
        return;
    }
    json_t *alloc = node_allocations(db);
    json_t *items = json_array();
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        json_t *labels = json_loads((const char *)sqlite3_column_text(stmt, 4), 0, NULL);
        int state = sqlite3_column_int(stmt, 9);
        json_array_append_new(
            items,
            json_pack("{s:s,s:s,s:s,s:s,s:o,s:{s:I,s:I,s:I},s:{s:I},s:f,s:s}", "name",
                      sqlite3_column_text(stmt, 0), "cloud", sqlite3_column_text(stmt, 1), "region",
                      sqlite3_column_text(stmt, 2), "zone", sqlite3_column_text(stmt, 3), "labels",
                      labels ? labels : json_object(), "capacity", "cpu_millis",
                      (json_int_t)sqlite3_column_int64(stmt, 5), "memory_bytes",
                      (json_int_t)sqlite3_column_int64(stmt, 6), "pids",
                      (json_int_t)sqlite3_column_int64(stmt, 7), "allocated", "replicas",
                      (json_int_t)sqlite3_column_int64(stmt, 10), "cost",
                      sqlite3_column_double(stmt, 8), "state",
                      state >= 0 && state < 4 ? node_states[state] : "unknown"));
        json_t *mine = json_object_get(alloc, (const char *)sqlite3_column_text(stmt, 0));
        json_t *a = json_object_get(json_array_get(items, json_array_size(items) - 1), "allocated");
        json_object_set_new(a, "cpu_millis",
                            json_integer(json_integer_value(json_array_get(mine, 0))));
        json_object_set_new(a, "memory_bytes",
                            json_integer(json_integer_value(json_array_get(mine, 1))));
    }
    json_decref(alloc);
    sqlite3_finalize(stmt);
    sch_call_json(call, 200, json_pack("{s:o}", "items", items));
}

/* ---------------------------------------------------------------------------------------
 * Events and the long-poll */

static json_t *events_since(struct sch_server *server, uint64_t since)
{
    sqlite3 *db = server->node.fsm.db;
    sqlite3_stmt *stmt;
    json_t *items = json_array();
    if (sqlite3_prepare_v2(db,
                           "SELECT seq, time_ms, actor, kind, object, message FROM events"
                           " WHERE seq > ? ORDER BY seq LIMIT ?",
                           -1, &stmt, NULL) != SQLITE_OK)
        return items;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)since);
    sqlite3_bind_int(stmt, 2, EVENTS_PAGE);
    while (sqlite3_step(stmt) == SQLITE_ROW)
        json_array_append_new(
            items,
            json_pack("{s:I,s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)sqlite3_column_int64(stmt, 0),
                      "time_ms", (json_int_t)sqlite3_column_int64(stmt, 1), "actor",
                      sqlite3_column_text(stmt, 2), "kind", sqlite3_column_text(stmt, 3), "object",
                      sqlite3_column_text(stmt, 4), "message", sqlite3_column_text(stmt, 5)));
    sqlite3_finalize(stmt);
    return items;
}

static json_t *events_answer(struct sch_call *call)
{
    json_t *items = events_since(call->server, call->since);
    size_t n = json_array_size(items);
    json_int_t last = n ? json_integer_value(json_object_get(json_array_get(items, n - 1), "seq"))
                        : (json_int_t)call->since;
    return json_pack("{s:o,s:I}", "items", items, "last", last);
}

static void unpark(struct sch_call *call)
{
    struct sch_call **p = &call->server->parked;
    while (*p != NULL && *p != call)
        p = &(*p)->next_parked;
    if (*p == call)
        *p = call->next_parked;
}

static void parked_closed(uv_handle_t *handle)
{
    free(handle->data);
}

/* Answers a parked long-poll at once (the HTTP server may be closing right after), then
 * releases the call when its timer handle is closed. */
static void wake(struct sch_call *call)
{
    uv_timer_stop(&call->timer);
    sch_call_answer(call, 200, events_answer(call));
    uv_close((uv_handle_t *)&call->timer, parked_closed);
}

static void park_timeout(uv_timer_t *timer)
{
    struct sch_call *call = timer->data;
    unpark(call);
    wake(call);
}

void sch_api_applied(struct sch_server *server)
{
    uint64_t last = server->node.fsm.last_event;
    struct sch_call **p = &server->parked;
    while (*p != NULL) {
        struct sch_call *call = *p;
        if (last > call->since) {
            *p = call->next_parked;
            wake(call);
        } else {
            p = &call->next_parked;
        }
    }
}

void sch_api_release_parked(struct sch_server *server)
{
    while (server->parked != NULL) {
        struct sch_call *call = server->parked;
        server->parked = call->next_parked;
        wake(call);
    }
}

static bool query_number(struct sch_call *call, const char *key, uint64_t max, uint64_t *out)
{
    char value[32];
    *out = 0;
    if (!sch_http_query(call->req, key, value, sizeof(value)))
        return true;
    char *end;
    unsigned long long v = strtoull(value, &end, 10);
    if (*value == '\0' || *end != '\0' || *value == '-' || v > max) {
        sch_call_error(call, 400, "invalid_request", key,
                       "?%s must be a whole number from 0 to %llu", key, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

static void read_events(struct sch_call *call)
{
    struct sch_server *server = call->server;
    uint64_t wait;
    if (!query_number(call, "since", UINT64_MAX / 2, &call->since) ||
        !query_number(call, "wait", server->cfg.max_wait_s, &wait))
        return;
    call->wait_s = (unsigned)wait;
    if (server->node.fsm.last_event > call->since || call->wait_s == 0 || server->stopping) {
        sch_call_json(call, 200, events_answer(call));
        return;
    }
    uv_timer_init(server->loop, &call->timer);
    call->timer.data = call;
    uv_timer_start(&call->timer, park_timeout, (uint64_t)call->wait_s * 1000, 0);
    call->next_parked = server->parked;
    server->parked = call;
}

/* ---------------------------------------------------------------------------------------
 * Cluster view, health, metrics, backup */

static json_t *servers_json(struct sch_server *server, uint64_t leader)
{
    struct raft *raft = &server->node.raft;
    sqlite3 *db = server->node.fsm.db;
    json_t *items = json_array();
    for (unsigned i = 0; i < raft->configuration.n; i++) {
        const struct raft_server *s = &raft->configuration.servers[i];
        char api[256] = "", agent[256] = "";
        sqlite3_stmt *stmt;
        if (sqlite3_prepare_v2(db, "SELECT api_address, agent_address FROM servers WHERE id = ?",
                               -1, &stmt, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(stmt, 1, (sqlite3_int64)s->id);
            if (sqlite3_step(stmt) == SQLITE_ROW) {
                snprintf(api, sizeof(api), "%s", (const char *)sqlite3_column_text(stmt, 0));
                snprintf(agent, sizeof(agent), "%s", (const char *)sqlite3_column_text(stmt, 1));
            }
            sqlite3_finalize(stmt);
        }
        const char *state = s->id == leader ? "leader" : "follower";
        if (s->role != RAFT_VOTER)
            state = "catching_up";
        json_array_append_new(items, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)s->id,
                                               "address", s->address, "api_address", api,
                                               "agent_address", agent, "role",
                                               sch_node_role_name(s->role), "state", state));
    }
    return items;
}

static void read_cluster(struct sch_call *call)
{
    struct sch_server *server = call->server;
    struct raft *raft = &server->node.raft;
    char leader_api[256];
    uint64_t leader = sch_node_leader(&server->node, leader_api, sizeof(leader_api));
    char cluster[80];
    sch_fsm_cluster_id(&server->node.fsm, cluster, sizeof(cluster));
    static const char *const states[] = {"unavailable", "follower", "candidate", "leader"};
    int state = raft_state(raft);
    /* The digest lets operators and tests compare the servers' copies of the state. */
    char digest[32];
    snprintf(digest, sizeof(digest), "%016" PRIx64, sch_fsm_digest(&server->node.fsm));
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:o}", "cluster_id", cluster,
                  "state_digest", digest, "leader_api_address", leader_api, "id",
                  (json_int_t)server->cfg.node.id, "leader", (json_int_t)leader, "state",
                  state >= 0 && state < 4 ? states[state] : "unknown", "term",
                  (json_int_t)raft->current_term, "commit_index", (json_int_t)raft->commit_index,
                  "applied_index", (json_int_t)raft_last_applied(raft), "last_index",
                  (json_int_t)raft_last_index(raft), "servers", servers_json(server, leader)));
}

static void read_snapshot(struct sch_call *call)
{
    void *image;
    size_t len;
    struct gy_error err;
    if (sch_fsm_snapshot_image(&call->server->node.fsm, &image, &len, &err) < 0) {
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
        return;
    }
    sch_metrics_observe(call->server, call->route, 200, call->req->received_ns);
    sch_http_respond(call->req, 200, "application/octet-stream",
                     "Content-Disposition: attachment; filename=\"gantry-state.snapshot\"\r\n",
                     image, len);
    free(image);
    free(call);
}

void sch_api_read(struct sch_call *call)
{
    switch (call->route) {
    case SCH_ROUTE_HEALTHZ:
        sch_call_json(call, 200,
                      json_pack("{s:s,s:b}", "status", "ok", "leader",
                                sch_node_is_leader(&call->server->node)));
        break;
    case SCH_ROUTE_METRICS: {
        char *text = sch_metrics_render(call->server);
        sch_metrics_observe(call->server, call->route, 200, call->req->received_ns);
        sch_http_respond(call->req, 200, "text/plain; version=0.0.4", NULL, text, strlen(text));
        free(text);
        free(call);
        break;
    }
    case SCH_ROUTE_WORKLOADS:
        read_workloads(call, false);
        break;
    case SCH_ROUTE_WORKLOAD_GET:
        read_workloads(call, true);
        break;
    case SCH_ROUTE_REPLICAS:
        read_replicas(call);
        break;
    case SCH_ROUTE_NODES:
        read_nodes(call);
        break;
    case SCH_ROUTE_EVENTS:
        read_events(call);
        break;
    case SCH_ROUTE_SNAPSHOT:
        read_snapshot(call);
        break;
    default:
        read_cluster(call);
        break;
    }
}
