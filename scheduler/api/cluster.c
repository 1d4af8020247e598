/* This server's own views, answered by any server at once (health, the cluster view) or as
 * a read of the state (the snapshot download). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/api/api_internal.h"
#include "scheduler/state/query_api.h"

void sch_api_healthz(struct sch_call *call)
{
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:b}", "status", "ok", "leader", sch_node_is_leader(call->api->node)));
}

/* The servers of the Raft configuration this server knows, with the addresses the
 * replicated servers table records for them; NULL when that table could not be read. */
static json_t *servers_json(struct sch_api *api, uint64_t leader, struct gy_error *err)
{
    struct raft *raft = &api->node->raft;
    json_t *items = json_array();
    for (unsigned i = 0; i < raft->configuration.n; i++) {
        const struct raft_server *s = &raft->configuration.servers[i];
        char api_address[256], agent[256];
        if (sch_view_server_addresses(&api->node->fsm, s->id, api_address, sizeof(api_address),
                                      agent, sizeof(agent), err) < 0) {
            json_decref(items);
            return NULL;
        }
        const char *state = s->id == leader ? "leader" : "follower";
        if (s->role != RAFT_VOTER)
            state = "catching_up";
        json_array_append_new(items, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "id", (json_int_t)s->id,
                                               "address", s->address, "api_address", api_address,
                                               "agent_address", agent, "role",
                                               sch_node_role_name(s->role), "state", state));
    }
    return items;
}

void sch_api_cluster_get(struct sch_call *call)
{
    struct sch_api *api = call->api;
    struct raft *raft = &api->node->raft;
    char leader_api[256];
    uint64_t leader = sch_node_leader(api->node, leader_api, sizeof(leader_api));
    struct gy_error err;
    json_t *servers = servers_json(api, leader, &err);
    if (servers == NULL) {
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
        return;
    }
    char cluster[80];
    sch_fsm_cluster_id(&api->node->fsm, cluster, sizeof(cluster));
    static const char *const states[] = {"unavailable", "follower", "candidate", "leader"};
    int state = raft_state(raft);
    /* The digest lets operators and tests compare the servers' copies of the state. */
    char digest[32];
    snprintf(digest, sizeof(digest), "%016" PRIx64, sch_fsm_digest(&api->node->fsm));
    sch_call_json(call, 200,
                  json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:o}", "cluster_id", cluster,
                            "state_digest", digest, "leader_api_address", leader_api, "id",
                            (json_int_t)api->node->cfg.id, "leader", (json_int_t)leader, "state",
                            state >= 0 && state < 4 ? states[state] : "unknown", "term",
                            (json_int_t)raft->current_term, "commit_index",
                            (json_int_t)raft->commit_index, "applied_index",
                            (json_int_t)raft_last_applied(raft), "last_index",
                            (json_int_t)raft_last_index(raft), "servers", servers));
}

void sch_api_snapshot_get(struct sch_call *call)
{
    void *image;
    size_t len;
    struct gy_error err;
    if (sch_fsm_snapshot_image(&call->api->node->fsm, &image, &len, &err) < 0) {
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
        return;
    }
    sch_call_respond(call, 200, "application/octet-stream",
                     "Content-Disposition: attachment; filename=\"gantry-state.snapshot\"\r\n",
                     image, len);
    free(image);
}
