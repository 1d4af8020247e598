/* Placement: choosing nodes for new replicas of a workload. Filter (schedulable, storage
 * that takes writes, cloud, label constraints, free cpu / memory / pids), then score (spread over
 * nodes, zones or clouds; spread or binpack within; then, among equals, the bytes of the image
 * a node already holds), filling the workload's clouds in order of preference and bursting into
 * the next only when the earlier ones have no room. */
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
     * memory (needs 64Mi, most free 32Mi)" or "0/1 nodes available: 1 under StoragePressure
     * (the agent's database refuses writes)"; empty when all were placed. */
    char reason[512];
};

/* Places up to count replicas of spec on nodes. Returns 0 (also when fewer than count
 * could be placed: see result->placed and result->reason) or a negative error for a
 * malformed constraint. result->node_index must have room for count entries. Runs in
 * O(n log n + count log n) for spread over nodes. */
int sch_place(struct sch_place_node *nodes, size_t n_nodes, const struct gy_spec *spec,
              uint32_t count, struct sch_place_result *result, struct gy_error *err);

/* True when the node's labels satisfy one constraint ("key == value", "key != value").
 * A malformed constraint is an error (the spec validator rejects those earlier). */
int sch_constraint_match(const struct sch_place_node *node, const char *constraint,
                         struct gy_error *err);

#endif
