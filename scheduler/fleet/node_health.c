/* Node health reports on the leader; see node_health.h. */
#include "scheduler/fleet/node_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/fleet/fleet_command.h"
#include "scheduler/state/query_fleet.h"

const char *sch_node_health_storage(const Gantry__NodeHealth *health)
{
    const char *reason = health != NULL ? health->storage_refused : NULL;
    if (reason == NULL || *reason == '\0')
        return "";
    return sch_node_condition_message_valid(reason) ? reason : SCH_NODE_HEALTH_UNREADABLE;
}

Gantry__Command *sch_node_health_check(struct sch_liveness *lv, struct sch_fsm *fsm,
                                       struct sch_fleet_node *node,
                                       const Gantry__NodeHealth *health, uint64_t now_ms,
                                       uint64_t wall_ms)
{
    const char *want = sch_node_health_storage(health);
    char stored[SCH_NODE_CONDITION_MESSAGE_MAX + 1];
    sch_query_node_condition(fsm, node->name, SCH_NODE_CONDITION_STORAGE, stored, sizeof(stored));
    if (strcmp(stored, want) == 0) {
        free(node->storage_proposed);
        node->storage_proposed = NULL;
        return NULL;
    }
    uint64_t clock = sch_liveness_clock(lv, now_ms);
    if (node->storage_proposed != NULL && strcmp(node->storage_proposed, want) == 0 &&
        clock - node->storage_proposed_at < SCH_NODE_HEALTH_RETRY_MS)
        return NULL;
    free(node->storage_proposed);
    node->storage_proposed = gy_xstrdup(want);
    node->storage_proposed_at = clock;

    char actor[160];
    snprintf(actor, sizeof(actor), "agent:%s", node->name);
    Gantry__Command *cmd = fleet_command_new(actor, wall_ms);
    Gantry__SetNodeCondition *set = gy_xmalloc(sizeof(*set));
    gantry__set_node_condition__init(set);
    set->node = gy_xstrdup(node->name);
    set->kind = gy_xstrdup(SCH_NODE_CONDITION_STORAGE);
    set->message = gy_xstrdup(want);
    cmd->cmd_case = GANTRY__COMMAND__CMD_SET_NODE_CONDITION;
    cmd->set_node_condition = set;
    return cmd;
}
