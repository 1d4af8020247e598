/* Reads of the replicated state that the leader's fleet work runs: the replicas of a node
 * (assignments, liveness), whether a replica report or a node's hello says something new,
 * the workloads and nodes a reconcile pass looks at, and the rows the autoscaler reads. */
#ifndef GANTRY_SCHEDULER_STATE_QUERY_FLEET_H
#define GANTRY_SCHEDULER_STATE_QUERY_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"

/* Every function below runs on the loop thread that owns fsm and reads through its
 * statement cache (sch_fsm_stmt), so the leader's frequent reads compile nothing after
 * their first use; none leaves a statement running when it returns. A function that calls
 * back hands each row over as it steps: the strings and blobs of a row are valid only
 * during that call, and the callback may run the other functions of this header, not the
 * one calling it. A failure fills err with what was being read ("read replicas: ...") and
 * returns a negative gy_code; rows handed out before it are not taken back. Functions
 * without err treat a failed read as "no row". */

typedef void (*sch_query_name_cb)(void *data, const char *name);
/* Like sch_query_name_cb; returning false stops the walk. */
typedef bool (*sch_query_name_until_cb)(void *data, const char *name);

/* ---------------------------------------------------------------------------------------
 * Agents: assignments, reports, registrations */

/* A replica placed on a node. */
struct sch_node_replica_row {
    const char *id;
    const char *workload;
    uint64_t generation;
    int state; /* a Gantry__ReplicaState value */
};

typedef void (*sch_node_replica_cb)(void *data, const struct sch_node_replica_row *replica);

/* Calls cb for every replica placed on node, whatever its state. Returns how many. */
int sch_query_node_replicas(struct sch_fsm *fsm, const char *node, sch_node_replica_cb cb,
                            void *data, struct gy_error *err);

/* What the state holds of a live replica of a node: what its agent last reported. */
struct sch_node_status_row {
    const char *id;
    const char *workload;
    uint64_t generation;
    int state; /* a live Gantry__ReplicaState value */
    uint32_t restarts;
    int32_t exit_code;
    int32_t exit_signal;
    bool oom_killed;
    const char *address;
};

typedef void (*sch_node_status_cb)(void *data, const struct sch_node_status_row *replica);

/* Calls cb for every live replica (not stopping, stopped or lost) placed on node. Returns
 * how many. */
int sch_query_node_live_status(struct sch_fsm *fsm, const char *node, sch_node_status_cb cb,
                               void *data, struct gy_error *err);

/* True when the replica of the report is held by node (only that node speaks for it) and
 * the report differs from the stored row in state, readiness, restarts, exit code,
 * address or reason. */
bool sch_query_report_is_news(struct sch_fsm *fsm, const char *node,
                              const Gantry__ReplicaStatus *report);

/* The stored spec of a workload, unpacked (the caller frees it with
 * gantry__workload_spec__free_unpacked), or NULL when the workload does not exist. */
Gantry__WorkloadSpec *sch_query_workload_spec(struct sch_fsm *fsm, const char *workload);

/* Calls cb for each node one of whose replicas was placed, or went pending, stopping or
 * lost, in a command applied after the previous call (the one that set *mark; start with
 * *mark = 0), and sets *mark for the next call. A node may be named more than once. Raft
 * order, not time, tells what is new: the changes are logged per node, in the order they
 * are applied, by TEMP triggers of fsm's connection that the first call creates (local to
 * this server: not in the database file, its snapshots or its digest). When the log had to
 * be created (the first call, or the connection's database was replaced since), cb is
 * called instead for every node holding a replica that is pending, stopping or lost. */
int sch_query_nodes_changed_after(struct sch_fsm *fsm, uint64_t *mark, sch_query_name_cb cb,
                                  void *data, struct gy_error *err);

/* A replica and its node. */
struct sch_replica_at_row {
    const char *id;
    const char *node;
};

typedef void (*sch_replica_at_cb)(void *data, const struct sch_replica_at_row *replica);

/* Calls cb for every replica that is stopping. */
int sch_query_stopping(struct sch_fsm *fsm, sch_replica_at_cb cb, void *data, struct gy_error *err);

/* True when the node is registered with exactly the cloud, region, zone, capacity, cost and
 * address of info, and is not down: its hello then needs no new registration. Labels are
 * not compared. */
bool sch_query_node_registered_as(struct sch_fsm *fsm, const Gantry__NodeInfo *info);

/* Whether a node of that name is registered. */
bool sch_query_node_exists(struct sch_fsm *fsm, const char *name);

/* The replica subnet recorded for node, or "" (buf). */
void sch_query_node_subnet(struct sch_fsm *fsm, const char *node, char *buf, size_t len);

/* A node another node routes to (docs/network.md): one with an address and a subnet.
 * tunnel_key is "" (and tunnel_port 0) for a node that takes part in no tunnel. */
struct sch_network_peer {
    const char *name;
    const char *address;
    const char *subnet;
    const char *cloud;
    const char *tunnel_key;
    uint32_t tunnel_port;
};
typedef void (*sch_network_peer_cb)(void *data, const struct sch_network_peer *peer);
/* Every node but except with an address and a subnet: those of cloud, and those of other
 * clouds that have a tunnel key. */
int sch_query_network_peers(struct sch_fsm *fsm, const char *cloud, const char *except,
                            sch_network_peer_cb cb, void *data, struct gy_error *err);

/* Copies the agent address recorded for server id into buf ("" when it has no row). */
void sch_query_server_agent_address(struct sch_fsm *fsm, uint64_t id, char *buf, size_t len);

/* Copies the node of replica id into buf; false (and buf "") when the replica does not
 * exist. */
bool sch_query_replica_node(struct sch_fsm *fsm, const char *id, char *buf, size_t len);

/* Copies the message of node's condition of kind into buf (SCH_NODE_CONDITION_MESSAGE_MAX + 1
 * bytes hold any); false (and buf "") when the node has no such condition. */
bool sch_query_node_condition(struct sch_fsm *fsm, const char *node, const char *kind, char *buf,
                              size_t len);

/* Calls cb for every node that is not down, until cb returns false. */
int sch_query_nodes_not_down(struct sch_fsm *fsm, sch_query_name_until_cb cb, void *data,
                             struct gy_error *err);

/* ---------------------------------------------------------------------------------------
 * Reconcile */

/* A node as placement sees it. */
struct sch_node_row {
    const char *name;
    const char *cloud;
    const char *zone;
    const char *labels; /* a JSON object of strings */
    int64_t cpu_millis;
    int64_t memory_bytes;
    int64_t pids;
    int state;             /* a Gantry__NodeState value */
    bool storage_pressure; /* its agent's database refuses writes (StoragePressure) */
};

typedef void (*sch_node_row_cb)(void *data, const struct sch_node_row *node);

/* Calls cb for every node in name order. */
int sch_query_nodes(struct sch_fsm *fsm, sch_node_row_cb cb, void *data, struct gy_error *err);

/* Calls cb with the name of every workload. */
int sch_query_workload_names(struct sch_fsm *fsm, sch_query_name_cb cb, void *data,
                             struct gy_error *err);

/* A workload and how far its replicas are from what it asks for. Replicas stopping,
 * stopped or lost are not live. */
struct sch_workload_progress_row {
    const char *name;
    const void *spec; /* the encoded Gantry__WorkloadSpec */
    size_t spec_len;
    uint64_t generation;
    int64_t desired;
    int64_t live_current; /* live replicas of the current generation (or newer) */
    int64_t live_old;     /* live replicas of an older generation */
    bool has_condition;   /* a condition of one of the kinds asked about is recorded */
    bool any_replica;     /* the workload has a replica row, whatever its state */
};

typedef void (*sch_workload_progress_cb)(void *data, const struct sch_workload_progress_row *w);

/* Calls cb for the workload called name; kinds are the four condition kinds that count for
 * has_condition. Returns 1 when the workload exists, 0 when it does not. */
int sch_query_workload_progress(struct sch_fsm *fsm, const char *name, const char *const kinds[4],
                                sch_workload_progress_cb cb, void *data, struct gy_error *err);

/* 1 when a live replica of the workload is on a node in node_state, else 0. */
int sch_query_workload_on_nodes_in(struct sch_fsm *fsm, const char *workload, int node_state,
                                   struct gy_error *err);

/* Calls cb, in name order, once for every workload with a live replica on a node in
 * node_state. */
int sch_query_workloads_on_nodes_in(struct sch_fsm *fsm, int node_state, sch_query_name_cb cb,
                                    void *data, struct gy_error *err);

/* 1 when some node is in node_state, else 0. */
int sch_query_any_node_in(struct sch_fsm *fsm, int node_state, struct gy_error *err);

/* A replica of a workload with what reconcile needs of its node. */
struct sch_replica_row {
    int64_t rowid; /* placement order */
    const char *id;
    const char *workload;
    uint64_t generation;
    const char *node;
    int state;
    bool ready;
    const char *reason;
    int node_state;         /* 0 when the node is not known */
    const char *node_cloud; /* "" when the node is not known */
    double node_cost;
    uint64_t changed_ms; /* wall clock of the command that last changed it */
};

typedef void (*sch_replica_row_cb)(void *data, const struct sch_replica_row *replica);

/* Calls cb for every replica of the workload, in placement order. */
int sch_query_workload_replicas(struct sch_fsm *fsm, const char *workload, sch_replica_row_cb cb,
                                void *data, struct gy_error *err);

/* A condition recorded on a workload. */
struct sch_condition_row {
    const char *kind;
    const char *message;
    uint64_t time_ms;
};

typedef void (*sch_condition_row_cb)(void *data, const struct sch_condition_row *condition);

/* Calls cb for every condition of the workload. */
int sch_query_workload_conditions(struct sch_fsm *fsm, const char *workload,
                                  sch_condition_row_cb cb, void *data, struct gy_error *err);

/* How many replicas of a workload hold resources on a node (any state but stopped and
 * lost). */
struct sch_allocation_row {
    const char *workload;
    const char *node;
    int64_t replicas;
};

typedef void (*sch_allocation_row_cb)(void *data, const struct sch_allocation_row *allocation);

/* Calls cb for every (workload, node) pair that holds resources, grouped by workload. */
int sch_query_allocations(struct sch_fsm *fsm, sch_allocation_row_cb cb, void *data,
                          struct gy_error *err);

/* Calls cb once, in name order, for every workload with a condition of kind_a or kind_b. */
int sch_query_workloads_with_condition(struct sch_fsm *fsm, const char *kind_a, const char *kind_b,
                                       sch_query_name_cb cb, void *data, struct gy_error *err);

/* Calls cb for every draining node whose replicas have all stopped or are lost, until cb
 * returns false. */
int sch_query_drained_nodes(struct sch_fsm *fsm, sch_query_name_until_cb cb, void *data,
                            struct gy_error *err);

/* ---------------------------------------------------------------------------------------
 * Autoscaler */

/* A workload's stored spec. */
struct sch_workload_spec_row {
    const char *name;
    const void *spec; /* the encoded Gantry__WorkloadSpec */
    size_t spec_len;
    uint64_t generation;
    int64_t desired;
};

typedef void (*sch_workload_spec_cb)(void *data, const struct sch_workload_spec_row *workload);

/* Calls cb for the workload called name, or for every workload when name is NULL. Returns
 * how many rows it handed out. */
int sch_query_workload_specs(struct sch_fsm *fsm, const char *name, sch_workload_spec_cb cb,
                             void *data, struct gy_error *err);

/* Calls cb for every running and ready replica of the workload, in id order. */
int sch_query_ready_replicas(struct sch_fsm *fsm, const char *workload, sch_replica_at_cb cb,
                             void *data, struct gy_error *err);

/* A replica that a container may be serving: starting, running or stopping. */
struct sch_active_replica_row {
    const char *id;
    const char *workload;
    const char *node;
    int state;
    bool ready;
};

typedef void (*sch_active_replica_cb)(void *data, const struct sch_active_replica_row *replica);

/* Calls cb for every active replica of the workload, or of every workload when workload
 * is NULL, in (workload, id) order. */
int sch_query_active_replicas(struct sch_fsm *fsm, const char *workload, sch_active_replica_cb cb,
                              void *data, struct gy_error *err);

#endif
