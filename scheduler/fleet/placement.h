/* Placement: choosing nodes for new replicas of a workload. Filter (schedulable, storage
 * that takes writes, cloud, label constraints, free host ports, free cpu / memory / pids), then
 * score (spread over nodes, zones or clouds; spread or binpack within; then, among equals, the
 * bytes of the image a node already holds), filling the workload's clouds in order of preference
 * and bursting into the next only when the earlier ones have no room. */
#ifndef GANTRY_SCHEDULER_FLEET_PLACEMENT_H
#define GANTRY_SCHEDULER_FLEET_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec.h"

struct sch_label {
    const char *key;
    const char *value;
};

/* The host ports (port and protocol) held on one node, with how many replicas hold each:
 * every replica that holds resources there (live or stopping) holds the host ports of its
 * workload's spec. Sorted by key; empty when zeroed. */
struct sch_host_port {
    uint32_t key; /* sch_host_port_key */
    uint32_t holders;
};

struct sch_host_ports {
    struct sch_host_port *items;
    size_t n;
    size_t cap;
};

static inline uint32_t sch_host_port_key(uint32_t port, enum gy_protocol protocol)
{
    return (uint32_t)protocol << 16 | port;
}

/* Records that holders more replicas hold port/protocol. Returns 0 or -GY_ENOMEM. */
int sch_host_ports_add(struct sch_host_ports *set, uint32_t port, enum gy_protocol protocol,
                       uint32_t holders);
/* How many replicas hold port/protocol; 0 for a NULL set. */
uint32_t sch_host_ports_holders(const struct sch_host_ports *set, uint32_t port,
                                enum gy_protocol protocol);
void sch_host_ports_free(struct sch_host_ports *set);

/* The placement view of one node. The caller fills it from the state machine; sch_place
 * updates allocated and workload_replicas as it places, so several workloads can be
 * placed in one batch against the same view. */
struct sch_place_node {
    const char *name;
    const char *cloud;
    const char *zone;
    const struct sch_label *labels;
    size_t n_labels;
    struct gy_resources capacity; /* pids 0 = unlimited */
    struct gy_resources allocated;
    bool schedulable; /* ready, not cordoned, not draining */
    /* Its agent's database refuses writes (the StoragePressure condition): the agent could
     * not record a new replica, so none is placed there. The replicas it has stay. */
    bool storage_pressure;
    uint32_t workload_replicas; /* live replicas of the workload being placed */
    /* Its replicas being stopped there: like live ones they hold resources and host ports
     * until they have stopped. */
    uint32_t workload_stopping;
    /* The host ports held there, or NULL when none are (and none are to be recorded). The
     * set belongs to the caller and may be shared by copies of the view; sch_place adds the
     * host ports of every replica it places on the node. A spec's own replicas count as
     * holding its host ports whatever the set says, so that no node takes two replicas of a
     * workload with host ports. */
    struct sch_host_ports *host_ports;
    /* Set by sch_place when it could not place every replica: the node would take one but
     * for the host ports that replicas of this very workload hold there (live or stopping),
     * with room for it once they are gone. A rolling update frees such a node by stopping
     * its old replica first (reconcile.c). */
    bool held_by_workload;
    /* Bytes of the workload's image the node already holds (ImageLocality,
     * sch_inventory_locality); 0 when unknown. It only breaks ties: among nodes that
     * spread and binpack score the same, the one holding more of the image wins. */
    int64_t image_bytes;
};

/* Outcome of one sch_place call. node_index has room for the requested count. */
struct sch_place_result {
    size_t *node_index; /* node of each placed replica, in placement order */
    uint32_t placed;
    /* Why fewer than requested were placed, e.g. "0/3 nodes available: 3 insufficient
     * memory (needs 64Mi, most free 32Mi)", "0/1 nodes available: 1 under StoragePressure
     * (the agent's database refuses writes)" or "0/2 nodes available: 2 with host port
     * 8080/tcp in use"; empty when all were placed. */
    char reason[512];
    /* How many nodes were left out only for the host ports the workload's own replicas hold
     * there (those marked held_by_workload). */
    uint32_t held_by_workload;
};

/* Places up to count replicas of spec on nodes. Returns 0 (also when fewer than count
 * could be placed: see result->placed and result->reason) or a negative error for a
 * malformed constraint or when memory runs out. result->node_index must have room for
 * count entries. Runs in O(n log n + count log n) for spread over nodes. A spec with host
 * ports goes only to nodes where none of its (host_port, protocol) pairs is held, and puts
 * at most one replica on each node; a spec without costs nothing more. */
int sch_place(struct sch_place_node *nodes, size_t n_nodes, const struct gy_spec *spec,
              uint32_t count, struct sch_place_result *result, struct gy_error *err);

/* True when the node's labels satisfy one constraint ("key == value", "key != value").
 * A malformed constraint is an error (the spec validator rejects those earlier). */
int sch_constraint_match(const struct sch_place_node *node, const char *constraint,
                         struct gy_error *err);

#endif
