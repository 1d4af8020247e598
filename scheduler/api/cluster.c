/* This server's own views, answered by any server at once (health, the cluster view), as
 * a read of the state (the snapshot download), or by the leader (its view of the members). */
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
    uint64_t ids[16];
    int n_diverged = sch_fsm_diverged_servers(&api->node->fsm, ids, 16, &err);
    if (n_diverged < 0) {
        json_decref(servers);
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
        return;
    }
    json_t *diverged = json_array();
    for (int i = 0; i < n_diverged && i < 16; i++)
        json_array_append_new(diverged, json_integer((json_int_t)ids[i]));
    const struct sch_verify *v = &api->node->verify;
    json_t *verify =
        json_pack("{s:I,s:I,s:I,s:I,s:b,s:I}", "checks", (json_int_t)v->checks, "last_index",
                  (json_int_t)v->last_index, "last_ms", (json_int_t)v->last_ms, "divergences_found",
                  (json_int_t)v->divergences, "rebuilding", v->rebuilding, "rebuilds",
                  (json_int_t)v->rebuilds);
    /* Alarms of this server (docs/operations.md, "Storage faults"). */
    json_t *alarms = json_array();
    if (sch_node_nospace(api->node, NULL, 0))
        json_array_append_new(alarms, json_string("nospace"));
    if (sch_node_storage_down(api->node, NULL, 0))
        json_array_append_new(alarms, json_string("storage_failed"));
    json_t *storage = json_pack("{s:I,s:I}", "free_bytes", (json_int_t)api->node->space.free_bytes,
                                "reserve_bytes", (json_int_t)api->node->cfg.min_free_bytes);
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o}", "cluster_id",
                  cluster, "state_digest", digest, "leader_api_address", leader_api, "id",
                  (json_int_t)api->node->cfg.id, "leader", (json_int_t)leader, "state",
                  state >= 0 && state < 4 ? states[state] : "unknown", "term",
                  (json_int_t)raft->current_term, "commit_index", (json_int_t)raft->commit_index,
                  "applied_index", (json_int_t)raft_last_applied(raft), "last_index",
                  (json_int_t)raft_last_index(raft), "servers", servers, "diverged", diverged,
                  "verify", verify, "alarms", alarms, "storage", storage));
}

void sch_api_digest_get(struct sch_call *call)
{
    char value[32];
    char *end = NULL;
    uint64_t index = 0;
    if (sch_http_query(call->req, "index", value, sizeof(value)))
        index = strtoull(value, &end, 10);
    if (end == NULL || *end != '\0' || index == 0) {
        sch_call_error(call, 400, "invalid_request", "index",
                       "?index= must name a log entry (a positive integer)");
        return;
    }
    uint64_t digest;
    if (!sch_fsm_digest_at(&call->api->node->fsm, index, &digest)) {
        sch_call_error(call, 404, "not_found", NULL,
                       "this server has no digest noted at index %" PRIu64
                       " (not applied yet, or too old)",
                       index);
        return;
    }
    char hex[32];
    snprintf(hex, sizeof(hex), "%016" PRIx64, digest);
    sch_call_json(call, 200, json_pack("{s:I,s:s}", "index", (json_int_t)index, "digest", hex));
}

static void verified(void *data, int status, const struct sch_verify_result *result,
                     const char *message)
{
    struct sch_call *call = data;
    if (status < 0) {
        sch_call_fail(call, status, message);
        return;
    }
    json_t *servers = json_array();
    for (unsigned i = 0; i < result->n; i++) {
        char hex[32] = "";
        if (result->servers[i].have)
            snprintf(hex, sizeof(hex), "%016" PRIx64, result->servers[i].digest);
        const char *state = !result->servers[i].have      ? "no_answer"
                            : result->servers[i].diverged ? "diverged"
                            : result->majority            ? "same"
                                                          : "no_majority";
        json_array_append_new(servers,
                              json_pack("{s:I,s:s,s:s}", "id", (json_int_t)result->servers[i].id,
                                        "digest", hex, "state", state));
    }
    sch_call_json(call, 200,
                  json_pack("{s:I,s:I,s:b,s:o}", "index", (json_int_t)result->index, "took_ms",
                            (json_int_t)result->took_ms, "majority", result->majority, "servers",
                            servers));
}

void sch_api_verify(struct sch_call *call)
{
    int rc = sch_verify_now(&call->api->node->verify, verified, call);
    if (rc == -GY_ECONFLICT)
        sch_call_error(call, 409, "conflict", NULL, "too many divergence checks wait already");
    else if (rc < 0)
        sch_call_fail(call, rc, "this server does not lead");
}

/* The leader's view of each member: its progress (what the leader knows it stored, and
 * whether it answered within the election timeout) besides the configuration and the
 * addresses recorded in the state. */
void sch_api_members_list(struct sch_call *call)
{
    struct sch_api *api = call->api;
    struct raft *raft = &api->node->raft;
    struct sch_member *members;
    size_t n;
    struct gy_error err;
    if (sch_node_members(api->node, &members, &n, &err) < 0) {
        sch_call_fail(call, -(int)err.code, err.msg);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct sch_member *m = &members[i];
        char api_address[256], agent[256];
        if (sch_view_server_addresses(&api->node->fsm, m->id, api_address, sizeof(api_address),
                                      agent, sizeof(agent), &err) < 0) {
            json_decref(items);
            free(members);
            sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
            return;
        }
        const char *state = m->leader ? "leader" : m->reachable ? "follower" : "unreachable";
        if (m->role != RAFT_VOTER && m->reachable)
            state = "catching_up";
        json_array_append_new(items, json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:I}", "id",
                                               (json_int_t)m->id, "address", m->address,
                                               "api_address", api_address, "agent_address", agent,
                                               "role", sch_node_role_name(m->role), "state", state,
                                               "leader", m->leader, "reachable", m->reachable,
                                               "match_index", (json_int_t)m->match_index));
    }
    free(members);
    char cluster[80];
    sch_fsm_cluster_id(&api->node->fsm, cluster, sizeof(cluster));
    sch_call_json(call, 200,
                  json_pack("{s:s,s:I,s:I,s:I,s:I,s:o}", "cluster_id", cluster, "leader",
                            (json_int_t)api->node->cfg.id, "term", (json_int_t)raft->current_term,
                            "commit_index", (json_int_t)raft->commit_index, "applied_index",
                            (json_int_t)raft_last_applied(raft), "servers", items));
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
