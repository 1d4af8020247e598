/* The API's routes: one table (routes.c) that gives each route its method, path, metric
 * label, how it is served and its handler. Dispatch, the 405 answer's list of allowed
 * methods, the leader/follower decision and the metrics all read it. */
#ifndef GANTRY_SCHEDULER_API_ROUTES_H
#define GANTRY_SCHEDULER_API_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

/* Route ids, the index of each route's row in the table. */
enum sch_route {
    SCH_ROUTE_APPLY = 0,
    SCH_ROUTE_WORKLOADS,
    SCH_ROUTE_WORKLOAD_GET,
    SCH_ROUTE_WORKLOAD_DELETE,
    SCH_ROUTE_WORKLOAD_SCALE,
    SCH_ROUTE_REPLICAS,
    SCH_ROUTE_REPLICA_LOGS,
    SCH_ROUTE_NODES,
    SCH_ROUTE_EVENTS,
    SCH_ROUTE_CLUSTER,
    SCH_ROUTE_DIGEST,
    SCH_ROUTE_VERIFY,
    SCH_ROUTE_MEMBERS,
    SCH_ROUTE_MEMBER_ADD,
    SCH_ROUTE_MEMBER_REMOVE,
    SCH_ROUTE_LEADER_TRANSFER,
    SCH_ROUTE_SNAPSHOT,
    SCH_ROUTE_TOP,
    SCH_ROUTE_WORKLOAD_MOVE,
    SCH_ROUTE_NODE_DRAIN,
    SCH_ROUTE_NODE_CORDON,
    SCH_ROUTE_NODE_UNCORDON,
    SCH_ROUTE_NODE_REMOVE,
    SCH_ROUTE_NODE_ROTATE_KEY,
    SCH_ROUTE_HEALTHZ,
    SCH_ROUTE_METRICS,
    SCH_ROUTE_IMAGES,
    SCH_ROUTE_IMAGE_PULL,
    SCH_ROUTE_IMAGE_RM,
    /* Requests no route serves (answered 404 or 405); it has a metric label only. */
    SCH_ROUTE_OTHER,
    SCH_ROUTE_COUNT,
};

/* Where a route may be served and what it waits for (docs/api.md, "served by"). */
enum sch_access {
    /* Any server answers at once from its own view: health, metrics, the cluster view. */
    SCH_ACCESS_LOCAL,
    /* A read of the replicated state: the leader answers after a Raft read barrier (a
     * linearizable read) and followers forward; with ?stale=1 any server answers at once
     * from its own copy. */
    SCH_ACCESS_READ,
    /* The leader answers at once, and followers forward: the route reads what only the
     * leader holds (agent sessions, usage samples) and writes nothing to Raft. */
    SCH_ACCESS_LEADER,
    /* The leader proposes a command or a configuration change and answers once it is
     * applied; followers forward. */
    SCH_ACCESS_WRITE,
};

struct sch_call;

/* Serves a routed call: it answers (sch_call_json and kin) and frees the call, now or
 * once the work it started ends. */
typedef void (*sch_route_serve_fn)(struct sch_call *call);

struct sch_route_def {
    const char *method; /* NULL for SCH_ROUTE_OTHER, which matches nothing */
    /* The path, where "{name}" (at most one) stands for one non-empty segment without '/'
     * that is copied into call->name. */
    const char *path;
    const char *metric; /* the route label of the gantry_http_* metrics */
    enum sch_access access;
    /* The request may be held open for up to ?wait= seconds (a relay to the leader waits
     * that much longer). */
    bool long_poll;
    sch_route_serve_fn serve;
};

/* The row of route, for every id below SCH_ROUTE_COUNT. */
const struct sch_route_def *sch_route_def(enum sch_route route);

/* Finds the route that serves method on path, and copies the path's {name} segment, if it
 * has one, into name (name_len bytes, terminated; a longer segment matches nothing).
 * Returns SCH_ROUTE_OTHER when no route serves the request; then allowed holds the
 * methods the path has, in table order ("GET, DELETE"), or "" when no route has the path.
 * allowed is always terminated. */
enum sch_route sch_route_find(const char *method, const char *path, char *name, size_t name_len,
                              char *allowed, size_t allowed_len);

#endif
