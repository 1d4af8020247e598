/* The leader's side of the fleet: the agent stream (sessions, node registration, replica
 * status, heartbeats, logs), node liveness, assignments pushed to agents, and the
 * reconcile loop that places and stops replicas. Runs on every server; acts only while
 * that server leads. Shared by this folder's files only. */
#ifndef GANTRY_SCHEDULER_FLEET_FLEET_H
#define GANTRY_SCHEDULER_FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/error.h"

struct sch_server;
struct sch_call;
struct sch_leader;

/* Defaults (gantry-scheduler flags --node-down-timeout, --node-grace). */
#define SCH_DEFAULT_NODE_DOWN_MS 5000

/* Listens on the server's agent address and starts the leader's timers. */
int sch_leader_start(struct sch_server *server, struct gy_error *err);
/* Closes the listener and every session; cb runs once all handles are closed. */
void sch_leader_close(struct sch_server *server, void (*cb)(void *arg), void *arg);
/* Called after every applied command: schedules reconcile and assignment pushes. */
void sch_leader_applied(struct sch_server *server);
/* GET /v1/replicas/ID/logs[?follow=1]: asks the replica's agent and streams the answer.
 * Runs on the leader. */
void sch_leader_logs(struct sch_call *call);
/* GET /v1/top[?workload=NAME]: CPU and memory per replica and workload from the leader's
 * sample windows. Runs on the leader. */
void sch_leader_top(struct sch_call *call);
/* What the leader's duties are doing, for /metrics. */
struct sch_leader_stats {
    bool leading;
    bool caught_up;          /* a barrier of this term has applied */
    bool reconcile_inflight; /* a reconcile plan is being committed */
    bool autoscale_inflight;
    size_t pending_status; /* replica reports waiting for the next proposal */
    uint64_t reconcile_passes;
    uint64_t reconcile_age_ms; /* since the last pass; 0 = none yet */
};
void sch_leader_stats(struct sch_server *server, struct sch_leader_stats *out);

/* The live state of a workload's autoscaler when this server leads, else NULL; the
 * caller owns the result. */
json_t *sch_leader_autoscaler_json(struct sch_server *server, const char *workload);

#endif
