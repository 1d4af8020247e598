/* What the files of reconcile share: the rows a pass reads of the state (reconcile_load.c)
 * and plans from (reconcile.c). */
#ifndef GANTRY_SCHEDULER_FLEET_RECONCILE_INTERNAL_H
#define GANTRY_SCHEDULER_FLEET_RECONCILE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec.h"
#include "scheduler/fleet/placement.h"
#include "scheduler/fleet/reconcile.h"

struct node_row {
    struct sch_place_node view; /* view.host_ports points at host_ports */
    struct sch_host_ports host_ports;
    char *name;
    char *cloud;
    char *zone;
    struct sch_label *labels;
    size_t n_labels;
};

struct workload_row {
    char *name;
    uint64_t generation;
    uint32_t desired;
    bool decoded;
    struct gy_spec spec;
    char *unschedulable; /* stored condition messages, or NULL */
    char *rollout_halted;
    char *moving; /* a move in progress, stopped, or NULL */
    char *move_stopped;
    uint64_t moving_since_ms;
    size_t first_replica; /* its replicas: replicas[first_replica .. + n_replicas) */
    size_t n_replicas;
};

struct replica_row {
    int64_t rowid;
    char *id;
    char *workload;
    uint64_t generation;
    char *node;
    int state;
    bool ready;
    char *reason;
    int node_state;   /* of its node: draining nodes give their replicas up */
    char *node_cloud; /* "" when the node is not known */
    double node_cost;
    uint64_t changed_ms; /* wall clock (a record): when a down node's replica was marked */
    size_t rank;         /* in stop order: its cloud's place in the workload's preference */
    bool stop;           /* chosen to stop in this plan */
};

/* What a pass reads of the state. */
struct reconcile_state {
    struct sch_fsm *fsm;
    const struct sch_reconcile_time *time;
    bool alloc_done;   /* node allocations computed */
    bool nodes_loaded; /* nodes are read when a workload has replicas to place */
    int nodes_rc;      /* the outcome of reading them */
    struct gy_error nodes_err;
    struct node_row *nodes;
    size_t n_nodes;
    size_t cap_nodes;
    struct workload_row *workloads;
    size_t n_workloads;
    size_t cap_workloads;
    struct replica_row *replicas;
    size_t n_replicas;
    size_t cap_replicas;
};

/* Reads the workloads a pass is about (every workload when only is NULL, else the n_only
 * named ones) that are not settled, with their replicas and conditions, into st (whose fsm
 * is set). Workloads come in name order. */
int reconcile_load(struct reconcile_state *st, const char *const *only, size_t n_only,
                   struct gy_error *err);
/* Reads every node, in name order, once per pass (placement needs them all); the outcome of
 * the first call, 0 or negative with st->nodes_err, is kept. */
int reconcile_load_nodes(struct reconcile_state *st);
/* Adds to every loaded node what the replicas holding resources there take (resources and
 * host ports, as the current spec of their workload asks), once per pass. */
void reconcile_allocations(struct reconcile_state *st);
/* The loaded node called name, or NULL. */
struct node_row *reconcile_node_find(struct reconcile_state *st, const char *name);
void reconcile_state_free(struct reconcile_state *st);

#endif
