/* A node's own health as its agent reports it in every Hello and Heartbeat (NodeHealth),
 * turned into the node's conditions in the state: while the agent's database refuses
 * writes, the node's StoragePressure condition, which keeps placement off the node. The
 * leader proposes a SetNodeCondition only when the report differs from what the state
 * holds, not with every heartbeat, and proposes the same change again only when
 * SCH_NODE_HEALTH_RETRY_MS later the state still differs (the proposal was lost with a
 * leadership, or refused). Text from the agent is checked here, before it is proposed.
 * Time is the caller's (the liveness clock), so the decisions are tested without one. */
#ifndef GANTRY_SCHEDULER_FLEET_NODE_HEALTH_H
#define GANTRY_SCHEDULER_FLEET_NODE_HEALTH_H

#include <stdint.h>

#include "proto/gantry.pb-c.h"
#include "scheduler/fleet/liveness.h"
#include "scheduler/state/fsm.h"

/* How long a proposed change of a node's condition is given to reach the state before the
 * same change is proposed again. */
#define SCH_NODE_HEALTH_RETRY_MS 5000

/* The message recorded for an agent's reason that is not printable ASCII of at most
 * SCH_NODE_CONDITION_MESSAGE_MAX bytes: the condition stands, the text does not travel. */
#define SCH_NODE_HEALTH_UNREADABLE                                                                 \
    "the agent's database refuses writes (its reason was not printable ASCII of at most 512 "      \
    "bytes)"

/* The message the node's StoragePressure condition should have after the report health
 * (NULL, or a health without the field, from an agent that predates it, means healthy):
 * "" when the agent's database takes writes, the agent's reason when it is valid (see
 * sch_node_condition_message_valid), else SCH_NODE_HEALTH_UNREADABLE. */
const char *sch_node_health_storage(const Gantry__NodeHealth *health);

/* The agent of node reported health over the node's current session. Returns the command to
 * propose (a SetNodeCondition of actor "agent:NODE", stamped wall_ms; the caller frees it
 * with protobuf_c_message_free_unpacked), or NULL when the state already holds what the
 * report says, or when the same change was proposed less than SCH_NODE_HEALTH_RETRY_MS of
 * the liveness clock (read with now_ms) ago. Remembers in node what it proposed. */
Gantry__Command *sch_node_health_check(struct sch_liveness *lv, struct sch_fsm *fsm,
                                       struct sch_fleet_node *node,
                                       const Gantry__NodeHealth *health, uint64_t now_ms,
                                       uint64_t wall_ms);

#endif
