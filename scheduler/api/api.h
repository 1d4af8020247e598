/* The control plane's HTTP API (docs/api.md): each request becomes a call that this server
 * answers, or that it relays to the leader, with metrics per route. What the server and
 * the handlers that live elsewhere (the leader's logs and top) may use. */
#ifndef GANTRY_SCHEDULER_API_API_H
#define GANTRY_SCHEDULER_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "scheduler/api/routes.h"
#include "scheduler/http/http.h"

struct sch_node;
struct sch_fleet;
struct agent_registry_config;
struct agent_registry_auth;

/* The header a follower adds to a request it relays to the leader: a server that gets it
 * and does not lead answers 503 instead of relaying it again. The HTTP server's
 * forward_mark; forward_fail_code is SCH_API_NO_LEADER. */
#define SCH_API_FORWARD_MARK "X-Gantry-Forwarded"
#define SCH_API_NO_LEADER    "no_leader"

#define SCH_LATENCY_BUCKETS 14

/* What one route has answered since the server started (/metrics). */
struct sch_route_metrics {
    uint64_t by_class[6]; /* answers by status class: [2] = 2xx ... [5] = 5xx */
    uint64_t forwarded;   /* relayed to the leader */
    /* Answers per latency bucket, each counted once (metrics.c holds the upper bounds and
     * makes them cumulative); the last is for answers slower than every bound. */
    uint64_t buckets[SCH_LATENCY_BUCKETS + 1];
    double seconds_sum;
    uint64_t count;
};

struct sch_api_config {
    unsigned long long forward_timeout_ms; /* a relay to the leader answered 503 after this */
    unsigned max_wait_s;                   /* upper bound of ?wait= on long-polls */
};

/* The API of one server. The owner zeroes it, sets loop, node, fleet and cfg, passes it as
 * sch_http_server_start's data for sch_api_handle, and sets stopping when it stops. */
struct sch_api {
    uv_loop_t *loop;
    struct sch_node *node;   /* the Raft node: proposals, barriers, the state */
    struct sch_fleet *fleet; /* the leader's fleet work: logs, top, autoscaler figures */
    struct sch_api_config cfg;
    /* What the leader resolves image tags with at apply (--registries; NULL: HTTPS
     * everywhere, anonymous). */
    const struct agent_registry_config *registries;
    const struct agent_registry_auth *registry_auth;
    bool stopping;           /* new requests get 503 while the server stops */
    struct sch_call *parked; /* event long-polls waiting for new events */
    struct sch_route_metrics metrics[SCH_ROUTE_COUNT];
};

/* One API request on its way through the server, from routing to its answer. Allocated by
 * sch_api_handle; whoever answers it frees it (sch_call_json and sch_call_error do). Only
 * body needs freeing besides the call itself. */
struct sch_call {
    struct sch_api *api;
    struct sch_http_request *req; /* NULL once answered */
    enum sch_route route;
    char name[128]; /* the path's {name} segment: a workload, node or replica name, a server id */
    /* GET /v1/events: ?since and ?wait, and while parked its deadline and the next parked
     * call. */
    uint64_t since;
    unsigned wait_s;
    uv_timer_t timer;
    struct sch_call *next_parked;
    json_t *body;       /* writes: the decoded request body, owned by the call */
    json_t *pins;       /* apply: the images pinned, per workload, owned by the call */
    uint64_t member_id; /* membership changes: the server id */
    int node_state;     /* drain, cordon, uncordon: the Gantry__NodeState being set */
};

/* The HTTP handler (sch_http_server_start's callback; data is the struct sch_api):
 * routes the request, then answers it here, after a read barrier, or by relaying it to the
 * leader, as its route's access says (routes.h). */
void sch_api_handle(struct sch_http_request *req, void *data);
/* Answers the parked long-polls that can now see new events; run after every applied
 * command. */
void sch_api_applied(struct sch_api *api);
/* Answers every parked long-poll at once (shutdown). */
void sch_api_release_parked(struct sch_api *api);

/* Answers with a JSON body (taking the reference), records the metrics and frees the call. */
void sch_call_json(struct sch_call *call, int status, json_t *body);
/* Answers with raw bytes (headers: more header lines, each ending in CRLF, or NULL),
 * records the metrics and frees the call. */
void sch_call_respond(struct sch_call *call, int status, const char *content_type,
                      const char *headers, const char *body, size_t len);
/* Answers with the API's error body {"error":{"code","message","path"}} (path may be
 * NULL), records the metrics and frees the call. A 503 carries Retry-After: 1. */
void sch_call_error(struct sch_call *call, int status, const char *code, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answers a failure of code (a negative gy_code) the way docs/api.md maps them: 400 for
 * bad input, 404, 409, 413, 503 for no leader and 500 for the rest. Frees the call. */
void sch_call_fail(struct sch_call *call, int code, const char *message);

#endif
