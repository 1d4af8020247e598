/* Read-only views of the replicated state that the HTTP API serves: workloads with their
 * replica counts and conditions, replicas, nodes with what is allocated on them, the audit
 * trail, the servers' addresses and the clouds' ready nodes. */
#ifndef GANTRY_SCHEDULER_STATE_QUERY_API_H
#define GANTRY_SCHEDULER_STATE_QUERY_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "scheduler/state/fsm.h"

/* Every function below runs on the loop thread that owns fsm, reads through its statement
 * cache (sch_fsm_stmt) and leaves no statement running when it returns. A function that
 * calls back hands each row to the callback as it steps: the strings and blobs of a view
 * are valid only during that call, and the callback may run the other functions of this
 * header (not the one that is calling it). A failure fills err with what was being read
 * ("read workloads: ...") and returns a negative gy_code; rows handed out before it are
 * not taken back. */

/* One workload: its stored spec and the counts of its replicas. */
struct sch_workload_view {
    const char *name;
    const void *spec; /* the encoded Gantry__WorkloadSpec (its replicas field is not used) */
    size_t spec_len;
    uint64_t generation;
    int64_t desired; /* the desired replica count */
    int64_t created_ms;
    int64_t updated_ms;
    int64_t replicas; /* every replica row of the workload, whatever its state */
    int64_t running;
    int64_t ready; /* running and reporting ready */
};

typedef void (*sch_workload_view_cb)(void *data, const struct sch_workload_view *workload);

/* Calls cb for the workload called name, or for every workload in name order when name is
 * NULL. Returns the number of workloads handed out. */
int sch_view_workloads(struct sch_fsm *fsm, const char *name, sch_workload_view_cb cb, void *data,
                       struct gy_error *err);

/* A condition the leader recorded on a workload (e.g. a placement failure) or a node. */
struct sch_condition_view {
    const char *kind;
    const char *message;
    int64_t time_ms;
};

typedef void (*sch_condition_view_cb)(void *data, const struct sch_condition_view *condition);

/* Calls cb for each condition of the workload, in kind order. Returns how many. */
int sch_view_conditions(struct sch_fsm *fsm, const char *workload, sch_condition_view_cb cb,
                        void *data, struct gy_error *err);

/* Calls cb for each condition of the node (StoragePressure: its agent's database refuses
 * writes), in kind order. Returns how many. */
int sch_view_node_conditions(struct sch_fsm *fsm, const char *node, sch_condition_view_cb cb,
                             void *data, struct gy_error *err);

/* One replica and the cloud of its node ("" when the node is gone). */
struct sch_replica_view {
    const char *id;
    const char *workload;
    uint64_t generation;
    const char *node;
    const char *cloud;
    int state; /* a Gantry__ReplicaState value */
    bool ready;
    int64_t restarts;
    int64_t exit_code;
    const char *address;
    const char *reason;
};

typedef void (*sch_replica_view_cb)(void *data, const struct sch_replica_view *replica);

/* Calls cb for each replica of workload, or of every workload when workload is NULL, in
 * (workload, id) order. Returns how many. */
int sch_view_replicas(struct sch_fsm *fsm, const char *workload, sch_replica_view_cb cb, void *data,
                      struct gy_error *err);

/* One node: what it offers and what the replicas placed on it take. */
struct sch_node_view {
    const char *name;
    const char *cloud;
    const char *region;
    const char *zone;
    const char *labels; /* a JSON object, as the agent registered it */
    int64_t cpu_millis;
    int64_t memory_bytes;
    int64_t pids;
    double cost;
    int state;               /* a Gantry__NodeState value */
    int64_t active_replicas; /* pending, starting, running or stopping */
    /* What the replicas that hold resources (all but stopped and lost ones) request, from
     * their workloads' specs. */
    int64_t allocated_cpu_millis;
    int64_t allocated_memory_bytes;
    const char *address;    /* where other nodes reach it; "" when unknown */
    const char *subnet;     /* its replica subnet (docs/network.md); "" when none */
    const char *tunnel_key; /* its WireGuard public key; "" when it takes part in no tunnel */
};

typedef void (*sch_node_view_cb)(void *data, const struct sch_node_view *node);

/* Calls cb for each node in name order. Each workload's spec is decoded once per call.
 * Returns how many. */
int sch_view_nodes(struct sch_fsm *fsm, sch_node_view_cb cb, void *data, struct gy_error *err);

/* One audit event. */
struct sch_event_view {
    uint64_t seq;
    int64_t time_ms;
    const char *actor;
    const char *kind;
    const char *object;
    const char *message;
};

typedef void (*sch_event_view_cb)(void *data, const struct sch_event_view *event);

/* Calls cb for the events after sequence number since, oldest first, at most limit of
 * them. Returns how many. */
int sch_view_events(struct sch_fsm *fsm, uint64_t since, unsigned limit, sch_event_view_cb cb,
                    void *data, struct gy_error *err);

/* Copies the API and agent addresses recorded for server id into api and agent (each
 * always terminated). Returns 1 when the server has a row, 0 (and "" in both) when not. */
int sch_view_server_addresses(struct sch_fsm *fsm, uint64_t id, char *api, size_t api_len,
                              char *agent, size_t agent_len, struct gy_error *err);

typedef void (*sch_cloud_view_cb)(void *data, const char *cloud, int64_t ready_nodes);

/* Calls cb for each cloud that has nodes, in name order, with how many of them are ready.
 * Returns how many clouds. */
int sch_view_clouds(struct sch_fsm *fsm, sch_cloud_view_cb cb, void *data, struct gy_error *err);

/* The state of node name (a Gantry__NodeState value, 0 or more), or -GY_ENOTFOUND with err
 * set when there is no such node. */
int sch_view_node_state(struct sch_fsm *fsm, const char *name, struct gy_error *err);

#endif
