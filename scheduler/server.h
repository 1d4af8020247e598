/* The gantry-scheduler process: one libuv loop hosting the Raft node, the leader's fleet
 * work (the agent stream among it) and the HTTP API, put together by server.c; join.c
 * asks an existing cluster to add this server. Used by main.c only: the layers below know
 * nothing of it. */
#ifndef GANTRY_SCHEDULER_SERVER_H
#define GANTRY_SCHEDULER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "common/error.h"
#include "scheduler/api/api.h"
#include "scheduler/http/http.h"
#include "scheduler/raft/node.h"

struct sch_server_config {
    struct sch_node_config node;
    const char *join_url; /* --join, or NULL */
    size_t max_body;
    unsigned long long forward_timeout_ms;
    unsigned max_wait_s;             /* upper bound of ?wait= on long-polls */
    unsigned long long node_down_ms; /* a node silent this long is down */
    /* What image tags are resolved with at apply (--registries), owned by the caller and
     * kept until the loop has ended; NULL: HTTPS everywhere, anonymous. */
    const struct agent_registry_config *registries;
    const struct agent_registry_auth *registry_auth;
};

struct sch_fleet;

struct sch_server {
    uv_loop_t *loop;
    struct sch_server_config cfg;
    struct sch_node node;
    struct sch_http_server *http;
    struct sch_fleet *fleet; /* agents, liveness, reconcile (scheduler/fleet/fleet.h) */
    uv_signal_t sigterm, sigint;
    struct sch_api api; /* the HTTP API's long-polls and metrics (scheduler/api/api.h) */
    bool stopping;
    int exit_code;
    /* The disk that failed a write takes writes again: the process starts afresh (main.c)
     * once everything is closed. */
    bool restart;
    /* Joining: a worker thread asks the cluster to add this server (to join_target: the
     * --join URL, or the leader's API when registering). */
    uv_work_t join_work;
    uv_timer_t join_timer;
    bool join_active;
    long join_status;
    char join_answer[1024];
    char join_target[300];
    unsigned join_attempts;
    bool joined; /* the --join request succeeded (or there was none) */
    /* A server started with --bootstrap is in the configuration but its API and agent
     * addresses are not in the state until it leads once: as a follower it asks the leader
     * to record them (the same request as a join, which the leader takes as a no-op
     * configuration change), so that the members' views list them. */
    uv_timer_t register_timer;
    bool registering;
};

/* Starts the Raft node, the HTTP API, the leader's fleet work and the signal handlers, then
 * the join when cfg->join_url is set. On failure what was started is closed as the loop
 * runs on. */
int sch_server_start(struct sch_server *server, uv_loop_t *loop,
                     const struct sch_server_config *cfg, struct gy_error *err);
/* Answers the parked long-polls, closes the HTTP API and the fleet work, then stops the
 * Raft node (which hands leadership to another voter first); the loop ends once every
 * handle is closed. A second call does nothing. */
void sch_server_stop(struct sch_server *server);

/* Joining an existing cluster (join.c). */
void sch_join_start(struct sch_server *server);
/* Asks the leader to record this follower's addresses when the state lacks them (join.c);
 * run now and then. */
void sch_join_register_check(struct sch_server *server);

#endif
