/* Node liveness on the leader: the nodes it hears from, over which agent session, and when
 * each last spoke; the limits of the agent stream derived from the down timeout; a session
 * silent past its limit; and the verdict that a node silent past the down timeout is down,
 * one command that also marks its live replicas unknown (the reconciler replaces them once
 * their workload's disconnect_grace has passed). Time is the caller's: every function takes
 * now_ms from a monotonic clock (the loop's), read through a liveness clock that absorbs
 * steps (see sch_liveness_clock). */
#ifndef GANTRY_SCHEDULER_FLEET_LIVENESS_H
#define GANTRY_SCHEDULER_FLEET_LIVENESS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/hash.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"

/* The most one reading of the caller's clock advances the liveness clock (half the down
 * timeout when that is shorter). */
#define SCH_LIVENESS_STEP_MAX_MS 1000
/* A verdict walks every node: on a fleet of thousands that is done a few times a second,
 * not on every pass of the leader's duties. */
#define SCH_LIVENESS_EVERY_MS 250

/* The reason of a replica whose node is cut off starts with this: it keeps its last
 * reported state, not ready, until its node is heard from again or it is replaced. */
#define SCH_REPLICA_UNKNOWN_PREFIX "unknown: "

struct fleet_session;

/* The agent stream's limits, all derived from the node-down timeout D so that an agent
 * leaves a silent server and reaches a new leader well before that leader, which counts D
 * from its takeover, could find the agent's node silent (docs/agent-protocol.md):
 *   heartbeat_ms = D/5 within [100 ms, 1 s]: the agent's heartbeat, each acknowledged;
 *   silence_ms   = D/2, at most 10 s: no frame for this long ends a session, on either
 *                  side (the agent then tries the other servers);
 *   connect_ms   = D/10 within [100 ms, 2 s]: a TCP connect to a server.
 * With D = 5 s: 1 s, 2.5 s and 0.5 s. An agent that loses its leader at t = 0 leaves it by
 * 2.5 s, may spend 0.5 s on a connect to the dead server and 0.3 s in backoff, and is with
 * the new leader by about 3.3 s, while that leader judges it at the election (0.4 s at the
 * earliest) + 5 s. */
struct sch_session_timeouts {
    uint32_t heartbeat_ms;
    uint32_t silence_ms;
    uint32_t connect_ms;
};

void sch_liveness_session_timeouts(uint64_t node_down_ms, struct sch_session_timeouts *out);

/* What the leader knows of one node outside the state. Entries live as long as the
 * liveness table, so sessions keep pointers to them. */
struct sch_fleet_node {
    char *name;
    uint64_t heard;              /* liveness clock of its last frame, or of its session's end */
    uint64_t session;            /* number of its current session; 0 = none */
    struct fleet_session *agent; /* that session (fleet_internal.h); NULL in tests */
    bool suspect;                /* its session was found silent once (see below) */
    bool silent; /* its session is being closed for silence: heard is kept as it is */
    /* Liveness clock from which this leadership counts the node down (see
     * sch_liveness_down_for); 0 = not known down. up_seen: a walk of this leadership found
     * the state holding it up. */
    uint64_t down_since;
    bool up_seen;
    /* The StoragePressure message last proposed for it ("" to clear), and the liveness
     * clock of that proposal; NULL once the state holds what its agent reports
     * (node_health.h). */
    char *storage_proposed;
    uint64_t storage_proposed_at;
    UT_hash_handle hh; /* in the table by name */
};

struct sch_liveness {
    struct sch_fleet_node *nodes; /* by name */
    uint64_t timeout_ms;          /* a node silent this long is down */
    uint64_t clock;               /* the liveness clock, in ms */
    uint64_t last_now;            /* the caller's clock at its last reading */
    bool clock_started;
    uint64_t leading_since; /* liveness clock when this server's leadership began */
    uint64_t judged_at;     /* liveness clock of the last walk; 0 = none */
    uint64_t sessions;      /* sessions numbered so far */
};

/* One node found down: the command to propose (owned; free with
 * sch_liveness_verdict_free). */
struct sch_liveness_verdict {
    char *node;
    size_t unknown; /* replicas the command marks unknown */
    Gantry__Command *command;
};

void sch_liveness_init(struct sch_liveness *lv, uint64_t timeout_ms);
/* Frees every node entry. */
void sch_liveness_free(struct sch_liveness *lv);

/* Reads the caller's clock now_ms and returns the liveness clock. The liveness clock moves
 * as now_ms does, except that a reading earlier than the previous one moves it by nothing
 * and a jump forward by at most SCH_LIVENESS_STEP_MAX_MS: a clock that steps back cannot
 * keep silent nodes up for the length of the step, and one that leaps ahead (or a loop
 * that stalled and could not read the agents' frames) cannot make every node look silent. */
uint64_t sch_liveness_clock(struct sch_liveness *lv, uint64_t now_ms);

/* This server starts leading: every node is given the full timeout from now before it is
 * judged, whatever was heard of it under another leader, and a node the state holds as
 * down counts as down from now on (sch_liveness_down_for). */
void sch_liveness_lead(struct sch_liveness *lv, uint64_t now_ms);

/* The entry of a node, created as heard now when it has none. */
struct sch_fleet_node *sch_liveness_node(struct sch_liveness *lv, const char *name,
                                         uint64_t now_ms);
/* The entry of a node, or NULL. */
struct sch_fleet_node *sch_liveness_find(struct sch_liveness *lv, const char *name);

/* A session of the node was welcomed: it becomes the node's current session (an older one
 * is no longer current) and the node is heard now. Returns the session's number, never 0. */
uint64_t sch_liveness_connect(struct sch_liveness *lv, struct sch_fleet_node *node,
                              uint64_t now_ms);
/* Session number session of the node ended: the node is heard now (its silence counts from
 * here) and, when that session was current, has none. */
void sch_liveness_disconnect(struct sch_liveness *lv, struct sch_fleet_node *node, uint64_t session,
                             uint64_t now_ms);
/* A frame came from the node's current session. */
void sch_liveness_heard(struct sch_liveness *lv, struct sch_fleet_node *node, uint64_t now_ms);

/* True when the node's current session has been silent for longer than silence_ms at two
 * calls in a row (the caller makes them a loop turn apart, so frames that waited in the
 * socket while the loop was held up are read in between): the caller closes the session,
 * and the disconnect that follows keeps the node's silence counting from its last frame,
 * not from the close. */
bool sch_liveness_session_silent(struct sch_liveness *lv, struct sch_fleet_node *node,
                                 uint64_t now_ms, uint64_t silence_ms);

/* Looks, at most every SCH_LIVENESS_EVERY_MS of the liveness clock, for a node the state
 * holds as not down that has been silent past the timeout (counted from the start of the
 * leadership at the earliest). Returns 1 and fills out with the first one found: the
 * command (stamped wall_ms) sets it down and marks each of its live replicas unknown: its
 * state kept, not ready, a reason starting with SCH_REPLICA_UNKNOWN_PREFIX and changed_ms
 * wall_ms, from which its workload's disconnect_grace counts (reconcile.c). Returns 0 when
 * no node is down or the walk is not due, or a negative gy_code when the state cannot be
 * read. */
int sch_liveness_judge(struct sch_liveness *lv, struct sch_fsm *fsm, uint64_t now_ms,
                       uint64_t wall_ms, struct sch_liveness_verdict *out, struct gy_error *err);
void sch_liveness_verdict_free(struct sch_liveness_verdict *verdict);

/* How long node, which the state holds as down, has been down as this leadership knows it,
 * in ms of the liveness clock: from this server's verdict on it; for a node already down
 * when the leadership began, from its start; else (down by a verdict this server did not
 * make) from the first call about it. The wall-clock stamps the state keeps (a replica's
 * changed_ms) are not read: they come from other servers' clocks, and from clocks that
 * step. A node a later walk finds up again is counted afresh the next time it is down. */
uint64_t sch_liveness_down_for(struct sch_liveness *lv, const char *node, uint64_t now_ms);

#endif
