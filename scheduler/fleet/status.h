/* Replica status on the leader: the reports agents send are kept per replica, a newer one
 * replacing an older one not yet proposed, and proposed in batches, so that a fleet's
 * thousands of reports a second cost a few commands. A report is kept only when it comes
 * over its node's current session and tells the state something new. */
#ifndef GANTRY_SCHEDULER_FLEET_STATUS_H
#define GANTRY_SCHEDULER_FLEET_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hash.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/fleet/liveness.h"
#include "scheduler/state/fsm.h"

/* Reports proposed in one command at most. */
#define SCH_STATUS_BATCH 2048

struct sch_status_pending {
    Gantry__ReplicaStatus *report; /* a copy, owned */
    UT_hash_handle hh;             /* in the index by replica id */
};

/* Reports waiting for the next proposal, oldest first. */
struct sch_status_batch {
    struct sch_status_pending *pending;
    size_t n;
    size_t cap;
    struct sch_status_pending *index; /* the same by replica id */
    Gantry__ReplicaStatus **taken;    /* the reports sch_status_take points a command at */
    size_t cap_taken;
};

/* Frees every waiting report; the batch can be used again. */
void sch_status_clear(struct sch_status_batch *batch);

/* Keeps a copy of a report that node sent over its session number session. Returns false
 * and keeps nothing when that session is not the node's current one (an older session of
 * a node that has reconnected), when the replica is not held by the node, or when the
 * state already says what the report says. */
bool sch_status_queue(struct sch_status_batch *batch, struct sch_fsm *fsm,
                      const struct sch_fleet_node *node, uint64_t session,
                      const Gantry__ReplicaStatus *report);

/* Points cmd (with up for its body) at the oldest waiting reports, at most
 * SCH_STATUS_BATCH, as one UpdateReplicas command of the "agents" actor stamped wall_ms.
 * Returns how many; the reports stay the batch's until sch_status_drop. 0 leaves cmd
 * untouched. */
size_t sch_status_take(struct sch_status_batch *batch, uint64_t wall_ms, Gantry__Command *cmd,
                       Gantry__UpdateReplicas *up);
/* Frees the n oldest reports (those sch_status_take handed out, once proposed). */
void sch_status_drop(struct sch_status_batch *batch, size_t n);

#endif
