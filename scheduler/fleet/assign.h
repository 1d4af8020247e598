/* Assignments on the leader: what each agent session has been told to run and to stop, the
 * difference between that and what the state holds for its node (the next Assignment frame
 * to send), and which nodes may have such a difference after a change. Time is the
 * caller's: wall_ms is the wall clock that stamps commands, and so the replicas' changed_ms. */
#ifndef GANTRY_SCHEDULER_FLEET_ASSIGN_H
#define GANTRY_SCHEDULER_FLEET_ASSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hash.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"

/* Assignment pushes look back this far for changed replicas, to cover proposals made
 * before the previous push and applied after it. */
#define SCH_ASSIGN_SLACK_MS 5000
/* Stops are sent again for replicas stopping for this long: the agent's last report may
 * have been lost (with a leader, or a proposal that failed). An agent that no longer holds
 * the replica answers that it is stopped; one still stopping it ignores the repeat. */
#define SCH_ASSIGN_RESTOP_MS 10000

/* A sorted set of replica ids. */
struct sch_idset {
    char **ids;
    size_t n;
    size_t cap;
};

bool sch_idset_has(const struct sch_idset *set, const char *id);
void sch_idset_free(struct sch_idset *set);

/* What one agent session was told. */
struct sch_assign_sent {
    struct sch_idset started; /* replicas it was told to run */
    struct sch_idset stopped; /* replicas it was told to stop */
};

/* Forgets everything sent (a new session starts from a full assignment). */
void sch_assign_sent_clear(struct sch_assign_sent *sent);
/* Forgets that a stop of replica id was sent, so that the next difference sends it again.
 * False when no stop of it was sent. */
bool sch_assign_sent_forget_stop(struct sch_assign_sent *sent, const char *id);

/* The specs of the workloads one round of pushes names, decoded once each: a push to
 * thousands of nodes names the same few workloads over and over. */
struct sch_spec_cache_entry;
struct sch_spec_cache {
    struct sch_spec_cache_entry *entries; /* by workload name */
};

void sch_spec_cache_clear(struct sch_spec_cache *cache);

/* An Assignment frame's body, owned (free with sch_assignment_free). Its replicas' specs
 * belong to the spec cache it was made with, which must outlive it. */
struct sch_assignment {
    Gantry__Assignment msg;
};

/* Compares what the state holds for node with what sent says its session was told, and
 * records in sent what out tells it: replicas to start (live in the state and not yet
 * sent) and to stop (stopping or lost in the state, or gone from it). With full, the
 * first assignment of a session: every live replica, and the agent stops whatever the list
 * does not name. Returns 1 when out is to be sent (full, or something changed), 0 when
 * there is nothing to send (out is then empty), or a negative gy_code when the state
 * cannot be read. */
int sch_assign_diff(struct sch_fsm *fsm, const char *node, bool full, struct sch_assign_sent *sent,
                    struct sch_spec_cache *cache, struct sch_assignment *out, struct gy_error *err);
void sch_assignment_free(struct sch_assignment *assignment);

/* Nodes whose assignment is due, pushed a slice at a time by the leader's duties. */
struct sch_push_queue {
    char **nodes;
    size_t n;
    size_t cap;
    size_t pos;       /* the next to push */
    uint64_t mark_ms; /* wall clock of the last sch_push_queue_changed */
};

void sch_push_queue_clear(struct sch_push_queue *queue);
void sch_push_queue_add(struct sch_push_queue *queue, const char *node);
/* The next node to push, or NULL when the queue is done (and then empty). */
const char *sch_push_queue_next(struct sch_push_queue *queue);

/* Queues the nodes holding replicas placed, asked to stop or lost since the previous call
 * (less SCH_ASSIGN_SLACK_MS) for which connected(data, node) is true: only those can have
 * a new assignment, so a large fleet is not walked after every change. A node queued twice
 * is pushed twice; the second push finds nothing new to send. When wall_ms is earlier than
 * the previous call (the wall clock stepped back), the look back starts from wall_ms. */
int sch_push_queue_changed(struct sch_push_queue *queue, struct sch_fsm *fsm, uint64_t wall_ms,
                           bool (*connected)(void *data, const char *node), void *data,
                           struct gy_error *err);

/* Calls stale(data, replica id, node) for every replica stopping for SCH_ASSIGN_RESTOP_MS
 * or longer at wall_ms. */
int sch_assign_stale_stops(struct sch_fsm *fsm, uint64_t wall_ms,
                           void (*stale)(void *data, const char *id, const char *node), void *data,
                           struct gy_error *err);

#endif
