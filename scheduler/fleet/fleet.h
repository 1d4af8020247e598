/* The leader's work with the fleet, as the rest of the server sees it: the agent stream
 * (sessions, node registration, replica status, heartbeats, logs), node liveness,
 * assignments pushed to agents, the reconcile loop that places and stops replicas, and the
 * autoscaler. Every server runs one on its loop; it acts only while that server's Raft
 * node leads, and tells agents that connect to a follower where the leader is. */
#ifndef GANTRY_SCHEDULER_FLEET_FLEET_H
#define GANTRY_SCHEDULER_FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "common/error.h"
#include "scheduler/raft/node.h"

/* Default of gantry-scheduler's --node-down-timeout. */
#define SCH_DEFAULT_NODE_DOWN_MS 5000

struct sch_fleet_config {
    const char *agent_addr; /* HOST:PORT the agents connect to; must outlive the fleet */
    uint64_t node_down_ms;  /* a node silent this long is down; 0 = the default */
};

struct sch_fleet;

/* Starts the fleet on loop for node: listens for agents on cfg->agent_addr and starts the
 * timer of the leader's duties. *out is set even when listening fails (the error says
 * why): close it with sch_fleet_close either way. */
int sch_fleet_start(uv_loop_t *loop, struct sch_node *node, const struct sch_fleet_config *cfg,
                    struct sch_fleet **out, struct gy_error *err);
/* The server is stopping: from now on the fleet acts as if it did not lead (its next pass
 * drops every agent session) and schedules no extra pass. */
void sch_fleet_stop_leading(struct sch_fleet *fleet);
/* Closes the listener and every session, ends every log relay, and frees the fleet once
 * its handles are closed and its proposals settled; cb(arg) runs then. A NULL fleet calls
 * cb at once. */
void sch_fleet_close(struct sch_fleet *fleet, void (*cb)(void *arg), void *arg);
/* A node was removed: every agent is sent its network peers again (docs/network.md). */
void sch_fleet_network_changed(struct sch_fleet *fleet);

/* To be called after every applied command: schedules a pass of the leader's duties
 * (reconcile, assignment pushes). A NULL fleet is ignored. */
void sch_fleet_applied(struct sch_fleet *fleet);

/* Where a relayed log goes. The fleet calls start before the first chunk, write for each
 * chunk, and end exactly once, after which it no longer uses the sink. */
struct sch_fleet_log_sink {
    /* The first chunk is about to be written. */
    void (*start)(void *data);
    /* Writes one chunk; false when the reader is gone (the relay then ends). */
    bool (*write)(void *data, const char *chunk, size_t len);
    /* The relay ended: started tells whether start was called; error is NULL at the end
     * of the log (or when the reader went away), else why the log cannot be had (the
     * agent's answer, "the replica's node disconnected", "the server is shutting down"). */
    void (*end)(void *data, bool started, const char *error);
    void *data;
};

/* Asks the agent of replica_id's node for its log (follow: and what it writes next) and
 * relays the answer to a copy of sink. Runs on the leader. Returns 0 once asked; or
 * -GY_ENOTFOUND when the replica does not exist, -GY_EUNAVAILABLE when its node is not
 * connected (err says which), and the sink is then not used. */
int sch_fleet_logs(struct sch_fleet *fleet, const char *replica_id, bool follow,
                   const struct sch_fleet_log_sink *sink, struct gy_error *err);

/* Asks the agent of node for a new WireGuard key pair (gantry rotate-key); the agent
 * answers with its new public key, which the leader records and gives the other nodes.
 * Runs on the leader. -GY_EUNAVAILABLE when this server does not lead or the node is not
 * connected, -GY_ENOTFOUND when no node has that name (err says which). */
int sch_fleet_rotate_tunnel_key(struct sch_fleet *fleet, const char *node, struct gy_error *err);

/* ---- Images on the nodes (docs/images.md, "Images across the cluster") ----------- */

/* The images the nodes connected to the leader report, as GET /v1/images answers them
 * ({"items": [...]}, see sch_inventory_json), only node's when node is not NULL; the
 * caller owns the result. NULL with err->code GY_EUNAVAILABLE when this server does not
 * lead (or has not caught up) or node is not connected, GY_ENOTFOUND when no node has
 * that name, GY_EINTERNAL when the state cannot be read. */
json_t *sch_fleet_images(struct sch_fleet *fleet, const char *node, struct gy_error *err);

/* An image request's answer: results (the callback takes the reference) holds one object
 * per node, in name order: {"node", "error"} on failure, else {"node"} with, for a pull,
 * the image ({"name", "digest", "resolved", "size", "layers", "labels", "pulled_ms"}) and
 * "bytes_registry" and "bytes_peers". failed counts the nodes that failed. */
typedef void (*sch_fleet_image_done_fn)(void *data, json_t *results, size_t failed);

/* Which nodes an image request goes to: the node named, else the ready nodes of the
 * cloud named, else every ready node connected to the leader. */
struct sch_fleet_image_target {
    const char *node;
    const char *cloud;
};

/* Asks the agents of target's nodes to "pull" or "rm" ref (ImageRequest frames) and
 * calls done(data, ...) once each has answered, failed with its session, or let
 * timeout_ms pass (its result then says so); runs on the leader. done is called exactly
 * once unless this returns an error: -GY_EUNAVAILABLE when this server does not lead or a
 * named node is not connected, -GY_ENOTFOUND when the named node does not exist or the
 * cloud has no ready node connected (err says which). */
int sch_fleet_image_request(struct sch_fleet *fleet, const char *op, const char *ref,
                            const struct sch_fleet_image_target *target, uint64_t timeout_ms,
                            sch_fleet_image_done_fn done, void *data, struct gy_error *err);

/* CPU and memory per replica and per workload (only workload's when not NULL) from the
 * leader's sample windows, as GET /v1/top answers them; the caller owns the result. NULL
 * with err->code GY_EUNAVAILABLE when this server does not lead or has not caught up
 * with its term yet, or with GY_EINTERNAL when the state cannot be read. */
json_t *sch_fleet_top(struct sch_fleet *fleet, const char *workload, struct gy_error *err);

/* The live state of a workload's autoscaler when this server leads, else NULL (also when
 * the workload is not autoscaled or not evaluated yet); the caller owns the result. */
json_t *sch_fleet_autoscaler_json(struct sch_fleet *fleet, const char *workload);

/* What the leader's duties are doing, for /metrics. */
struct sch_fleet_stats {
    bool leading;
    bool caught_up;          /* a barrier of this term has applied */
    bool reconcile_inflight; /* a reconcile plan is being committed */
    bool autoscale_inflight;
    size_t pending_status; /* replica reports waiting for the next proposal */
    uint64_t reconcile_passes;
    uint64_t reconcile_age_ms; /* since the last pass; 0 = none yet */
};

/* Fills out; all zero for a NULL fleet. */
void sch_fleet_stats(struct sch_fleet *fleet, struct sch_fleet_stats *out);

#endif
