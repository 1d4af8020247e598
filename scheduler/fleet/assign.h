/* Assignments on the leader: what each agent session has been told to run and to stop, the
 * difference between that and what the state holds for its node (the next Assignment frame
 * to send), and which nodes may have such a difference after a change. None of it reads a
 * clock: what changed is told by the order in which the state machine applied it, and how
 * long a replica has been stopping by how often the caller looks. */
#ifndef GANTRY_SCHEDULER_FLEET_ASSIGN_H
#define GANTRY_SCHEDULER_FLEET_ASSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hash.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"

/* Stops are sent again for replicas stopping for this long (of the leader's monotonic
 * clock): the agent's last report may have been lost (with a leader, or a proposal that
 * failed). An agent that no longer holds the replica answers that it is stopped; one still
 * stopping it ignores the repeat. */
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
    size_t pos;    /* the next to push */
    uint64_t mark; /* where the last sch_push_queue_changed left the state's change log */
};

void sch_push_queue_clear(struct sch_push_queue *queue);
void sch_push_queue_add(struct sch_push_queue *queue, const char *node);
/* The next node to push, or NULL when the queue is done (and then empty). */
const char *sch_push_queue_next(struct sch_push_queue *queue);

/* Queues the nodes holding replicas placed, asked to stop or lost by the commands applied
 * since the previous call (every node with such a replica at the first call) for which
 * connected(data, node) is true: only those can have a new assignment, so a large fleet is
 * not walked after every change. What is new is told by the order in which the commands
 * were applied (sch_query_nodes_changed_after), never by the time they were stamped with,
 * so a step of the wall clock on any server neither hides a change nor repeats old ones.
 * A node queued twice is pushed twice; the second push finds nothing new to send. */
int sch_push_queue_changed(struct sch_push_queue *queue, struct sch_fsm *fsm,
                           bool (*connected)(void *data, const char *node), void *data,
                           struct gy_error *err);

/* Calls stale(data, replica id, node) for every replica that is stopping now and was at the
 * previous look too (it is in *stopping), then sets *stopping to the replicas stopping now
 * (the caller frees it with sch_idset_free). A caller that looks every SCH_ASSIGN_RESTOP_MS
 * of its monotonic clock finds each stop stale after one to two such periods, counted from
 * when it first saw the replica stopping (a new leader starts with an empty set). */
int sch_assign_stale_stops(struct sch_fsm *fsm, struct sch_idset *stopping,
                           void (*stale)(void *data, const char *id, const char *node), void *data,
                           struct gy_error *err);

#endif
