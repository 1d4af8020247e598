/* Reconciliation: comparing each workload's desired replicas with the replicas the state
 * holds, and planning the changes that close the gap: new replicas placed on nodes,
 * excess or outdated replicas stopped (scale-down stops not-ready replicas first, then the
 * newest; rolling updates honour max_surge and max_unavailable and halt when the new
 * generation crash-loops), replicas of nodes cut off from the control plane (counted while
 * their workload's disconnect_grace lasts, then replaced, and stopped once their
 * replacements run), and workload conditions (a placement shortage, a halted rollout). The
 * plan is a pure function of the state and the time it is given, so every decision is
 * testable. */
#ifndef GANTRY_SCHEDULER_FLEET_RECONCILE_H
#define GANTRY_SCHEDULER_FLEET_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"

/* Condition kinds the reconciler reports. */
#define SCH_CONDITION_UNSCHEDULABLE  "Unschedulable"
#define SCH_CONDITION_ROLLOUT_HALTED "RolloutHalted"
/* A move between clouds (docs/clouds.md): in progress, stopped with its reason, and
 * the summary of the last one that completed. */
#define SCH_CONDITION_MOVING       "Moving"
#define SCH_CONDITION_MOVE_STOPPED "MoveStopped"
#define SCH_CONDITION_MOVED        "Moved"

struct sch_reconcile_plan {
    /* Every change as one batch command (NULL when there is nothing to do); free it with
     * sch_reconcile_plan_free. */
    Gantry__Command *command;
    size_t placed;
    size_t stopped;
    size_t conditions;
};

/* Makes 32 random bits for replica ids; tests pass a deterministic source. */
typedef uint32_t (*sch_random_fn)(void *data);

/* How long node has been known down (cut off), in ms of the caller's monotonic clock. */
typedef uint64_t (*sch_down_for_fn)(void *data, const char *node);

/* ImageLocality's input: fills bytes[i] with how many bytes of spec's image node nodes[i]
 * holds (see sch_inventory_locality), from what the agents report outside the state. */
typedef void (*sch_image_bytes_fn)(void *data, const struct gy_spec *spec, const char *const *nodes,
                                   size_t n, int64_t *bytes);

/* The time of a pass, and what the leader knows outside the state.
 * wall_ms only stamps the commands (a record, as events show it);
 * decisions that depend on how long something has lasted read a monotonic clock of the
 * caller: a cut-off replica's disconnect_grace ends once down_for(down_data, its node) has
 * reached it. The leader counts that from when it first saw the node down (liveness.h), not
 * from the wall-clock stamps in the state, which come from other servers and from clocks
 * that may step. down_for NULL: every cut-off replica's grace has just begun. */
struct sch_reconcile_time {
    uint64_t wall_ms;
    sch_down_for_fn down_for;
    void *down_data;
    /* NULL: no node is known to hold any image, and placement ignores images. */
    sch_image_bytes_fn image_bytes;
    void *image_data;
};

/* Plans against the state machine's database: every workload when only is NULL, else
 * just the n_only named ones (placement still sees every node's allocation), at time. */
int sch_reconcile_plan_at(struct sch_fsm *fsm, const char *const *only, size_t n_only,
                          const struct sch_reconcile_time *time, sch_random_fn rnd, void *rnd_data,
                          struct sch_reconcile_plan *plan, struct gy_error *err);
/* sch_reconcile_plan_at with time {now_ms, NULL}: now_ms stamps the commands, and a
 * cut-off replica is replaced only when its workload has no disconnect_grace. */
int sch_reconcile_plan(struct sch_fsm *fsm, const char *const *only, size_t n_only, uint64_t now_ms,
                       sch_random_fn rnd, void *rnd_data, struct sch_reconcile_plan *plan,
                       struct gy_error *err);
void sch_reconcile_plan_free(struct sch_reconcile_plan *plan);

/* The workloads waiting for room (Unschedulable, or a stopped move): capacity freed by
 * stopped replicas marks no workload, so the leader looks at these again now and then.
 * The caller frees the names and the array. */
size_t sch_reconcile_waiting(struct sch_fsm *fsm, char ***names);

/* The workloads with a live replica on a down node (cut off from the control plane): a
 * pass over them decides, by the leader's monotonic clock, whether their disconnect_grace
 * has ended, which no applied command marks. The caller frees the names and the array. */
size_t sch_reconcile_cut_off(struct sch_fsm *fsm, char ***names);

/* True when a draining node holds no live replica any more: a pass (even over no
 * workload) then cordons it. */
bool sch_reconcile_drain_due(struct sch_fsm *fsm);

/* Replica states that count towards a workload's desired replicas. */
int sch_replica_state_is_live(int state);

#endif
