/* The gantry-scheduler process: one libuv loop hosting the Raft node, the leader's fleet
 * work (the agent stream among it) and the HTTP API. Shared by server.c, join.c, main.c
 * and the API layer. */
#ifndef GANTRY_SCHEDULER_SERVER_H
#define GANTRY_SCHEDULER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "common/error.h"
#include "scheduler/http/http.h"
#include "scheduler/raft/node.h"

/* The API's routes, for dispatch and per-route metrics. */
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
    SCH_ROUTE_MEMBER_ADD,
    SCH_ROUTE_MEMBER_REMOVE,
    SCH_ROUTE_SNAPSHOT,
    SCH_ROUTE_TOP,
    SCH_ROUTE_WORKLOAD_MOVE,
    SCH_ROUTE_NODE_DRAIN,
    SCH_ROUTE_NODE_CORDON,
    SCH_ROUTE_NODE_UNCORDON,
    SCH_ROUTE_HEALTHZ,
    SCH_ROUTE_METRICS,
    SCH_ROUTE_OTHER,
    SCH_ROUTE_COUNT,
};

#define SCH_LATENCY_BUCKETS 14

struct sch_route_metrics {
    uint64_t by_class[6]; /* answers by status class: [2] = 2xx ... [5] = 5xx */
    uint64_t forwarded;   /* relayed to the leader */
    uint64_t buckets[SCH_LATENCY_BUCKETS + 1]; /* cumulative upper bounds, last = +Inf */
    double seconds_sum;
    uint64_t count;
};

struct sch_server_config {
    struct sch_node_config node;
    const char *join_url; /* --join, or NULL */
    size_t max_body;
    unsigned long long forward_timeout_ms;
    unsigned max_wait_s;             /* upper bound of ?wait= on long-polls */
    unsigned long long node_down_ms; /* a node silent this long is down */
};

struct sch_call;
struct sch_leader;

struct sch_server {
    uv_loop_t *loop;
    struct sch_server_config cfg;
    struct sch_node node;
    struct sch_http_server *http;
    struct sch_leader *leader; /* agents, liveness, reconcile (scheduler/fleet/fleet.h) */
    uv_signal_t sigterm, sigint;
    struct sch_call *parked; /* long-polls waiting for new events */
    struct sch_route_metrics metrics[SCH_ROUTE_COUNT];
    uint64_t start_ms;
    bool stopping;
    int exit_code;
    /* Joining: a worker thread asks the cluster to add this server. */
    uv_work_t join_work;
    uv_timer_t join_timer;
    bool join_active;
    long join_status;
    char join_answer[1024];
    unsigned join_attempts;
};

/* One API request on its way through the server. */
struct sch_call {
    struct sch_server *server;
    struct sch_http_request *req;
    enum sch_route route;
    char name[128];   /* NAME or ID from the path */
    uint64_t since;   /* events: ?since */
    unsigned wait_s;  /* events: ?wait */
    uv_timer_t timer; /* events: long-poll deadline */
    struct sch_call *next_parked;
    json_t *body; /* writes: the decoded request body */
    uint64_t member_id;
    int node_state; /* drain, cordon, uncordon: the state set */
};

/* Starts the node, the API and the signal handlers. */
int sch_server_start(struct sch_server *server, uv_loop_t *loop,
                     const struct sch_server_config *cfg, struct gy_error *err);
/* Stops everything (leadership transfer first); the loop then ends. */
void sch_server_stop(struct sch_server *server);

/* The HTTP handler: routes, forwards, validates, proposes and answers. */
void sch_api_handle(struct sch_http_request *req, void *data);
/* Answers long-polls that can now see new events; runs after every applied command. */
void sch_api_applied(struct sch_server *server);
/* Answers every parked long-poll (shutdown). */
void sch_api_release_parked(struct sch_server *server);

/* Answers and frees the call, recording metrics. */
void sch_call_json(struct sch_call *call, int status, json_t *body);
/* Answers, recording metrics, but leaves the call to its owner (a parked long-poll whose
 * timer handle must close first). */
void sch_call_answer(struct sch_call *call, int status, json_t *body);
void sch_call_error(struct sch_call *call, int status, const char *code, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answers a failed gy_code the way the API documents (404, 409, 503 + Retry-After...). */
void sch_call_fail(struct sch_call *call, int code, const char *message);

/* Write handlers (api_write.c), run on the leader. */
void sch_api_apply(struct sch_call *call);
void sch_api_delete(struct sch_call *call);
void sch_api_scale(struct sch_call *call);
void sch_api_move(struct sch_call *call);
/* POST /v1/nodes/NAME/drain, /cordon and /uncordon, by call->route. */
void sch_api_node_state(struct sch_call *call);
void sch_api_member_add(struct sch_call *call);
void sch_api_member_remove(struct sch_call *call);

/* Read handlers (api_read.c), run on the leader after a barrier or locally when stale. */
void sch_api_read(struct sch_call *call);

/* Prometheus text exposition of the server's metrics (metrics.c). */
char *sch_metrics_render(struct sch_server *server);
void sch_metrics_observe(struct sch_server *server, enum sch_route route, int status,
                         uint64_t received_ns);

/* Joining an existing cluster (join.c). */
void sch_join_start(struct sch_server *server);

#endif
