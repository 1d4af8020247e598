/* The API's front door: it routes each request by the route table, decides by the route's
 * access where it is served (here at once, here after a read barrier, or relayed to the
 * leader, or refused with 503 when no leader is known), and answers calls with their
 * metrics. The two leader-only routes, a replica's logs and top, are served here too, by
 * the fleet. */
#include "scheduler/api/api.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/api/api_internal.h"
#include "scheduler/api/routes.h"
#include "scheduler/fleet/fleet.h"

void sch_call_free(struct sch_call *call)
{
    json_decref(call->body);
    json_decref(call->pins);
    free(call);
}

void sch_call_json_keep(struct sch_call *call, int status, json_t *body)
{
    sch_metrics_observe(call->api, call->route, status, call->req->received_ns);
    sch_http_respond_json(call->req, status, body);
    call->req = NULL;
}

void sch_call_json(struct sch_call *call, int status, json_t *body)
{
    sch_call_json_keep(call, status, body);
    sch_call_free(call);
}

void sch_call_respond(struct sch_call *call, int status, const char *content_type,
                      const char *headers, const char *body, size_t len)
{
    sch_metrics_observe(call->api, call->route, status, call->req->received_ns);
    sch_http_respond(call->req, status, content_type, headers, body, len);
    sch_call_free(call);
}

void sch_call_error(struct sch_call *call, int status, const char *code, const char *path,
                    const char *fmt, ...)
{
    char message[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (status == 503) {
        /* Clients retry after a second: an election takes well under that on a LAN. */
        json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        sch_call_respond(call, status, "application/json", "Retry-After: 1\r\n", text,
                         strlen(text));
        free(text);
        return;
    }
    sch_metrics_observe(call->api, call->route, status, call->req->received_ns);
    sch_http_respond_error(call->req, status, code, path, "%s", message);
    sch_call_free(call);
}

void sch_call_fail(struct sch_call *call, int code, const char *message)
{
    switch (-code) {
    case GY_EINVAL:
    case GY_ERANGE:
    case GY_EPARSE:
        sch_call_error(call, 400, "invalid_request", NULL, "%s", message);
        break;
    case GY_ENOTFOUND:
        sch_call_error(call, 404, "not_found", NULL, "%s", message);
        break;
    case GY_EEXISTS:
    case GY_ECONFLICT:
        sch_call_error(call, 409, "conflict", NULL, "%s", message);
        break;
    case GY_ETOOBIG:
        sch_call_error(call, 413, "too_large", NULL, "%s", message);
        break;
    case GY_EUNAVAILABLE:
        sch_call_error(call, 503, "no_leader", NULL, "%s", message);
        break;
    default:
        sch_call_error(call, 500, "internal", NULL, "%s", message);
        break;
    }
}

/* GET /v1/replicas/NAME/logs[?follow=1], on the leader: the fleet asks the replica's agent
 * and the chunks of its answer are streamed to the client as they come. */
static void logs_start(void *data)
{
    struct sch_call *call = data;
    sch_http_stream_start(call->req, 200, "text/plain; charset=utf-8");
}

static bool logs_write(void *data, const char *chunk, size_t len)
{
    struct sch_call *call = data;
    return sch_http_stream_write(call->req, chunk, len);
}

static void logs_end(void *data, bool started, const char *error)
{
    struct sch_call *call = data;
    if (started) {
        sch_http_stream_end(call->req);
        sch_call_free(call);
    } else if (error != NULL) {
        sch_call_error(call, 404, "not_found", NULL, "%s", error);
    } else {
        sch_call_respond(call, 200, "text/plain; charset=utf-8", NULL, "", 0);
    }
}

void sch_api_replica_logs(struct sch_call *call)
{
    char value[16];
    bool follow = sch_http_query(call->req, "follow", value, sizeof(value)) &&
                  strcmp(value, "0") != 0 && strcmp(value, "false") != 0;
    struct sch_fleet_log_sink sink = {logs_start, logs_write, logs_end, call};
    struct gy_error err;
    int rc = sch_fleet_logs(call->api->fleet, call->name, follow, &sink, &err);
    if (rc == -GY_ENOTFOUND)
        sch_call_error(call, 404, "not_found", NULL, "%s", err.msg);
    else if (rc < 0)
        sch_call_error(call, 503, "node_unavailable", NULL, "%s", err.msg);
}

/* POST /v1/nodes/NAME/rotate-key, on the leader: the node's agent makes a new WireGuard
 * key pair and reports its public key, which the other nodes then use (docs/network.md). */
void sch_api_node_rotate_key(struct sch_call *call)
{
    struct gy_error err;
    int rc = sch_fleet_rotate_tunnel_key(call->api->fleet, call->name, &err);
    if (rc == -GY_ENOTFOUND)
        sch_call_error(call, 404, "not_found", NULL, "%s", err.msg);
    else if (rc < 0)
        sch_call_error(call, 503, "node_unavailable", NULL, "%s", err.msg);
    else
        sch_call_json(call, 202, json_pack("{s:s,s:b}", "name", call->name, "rotating", 1));
}

/* GET /v1/top[?workload=NAME], on the leader. */
void sch_api_top(struct sch_call *call)
{
    char workload[128];
    bool one = sch_http_query(call->req, "workload", workload, sizeof(workload)) && *workload;
    struct gy_error err;
    json_t *top = sch_fleet_top(call->api->fleet, one ? workload : NULL, &err);
    if (top != NULL)
        sch_call_json(call, 200, top);
    else if (err.code == GY_EUNAVAILABLE)
        sch_call_error(call, 503, "no_leader", NULL, "%s", err.msg);
    else
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
}

static void serve(struct sch_call *call)
{
    sch_route_def(call->route)->serve(call);
}

static void barrier_done(void *data, int status, const char *message)
{
    struct sch_call *call = data;
    if (status < 0) {
        sch_call_fail(call, status, message);
        return;
    }
    serve(call);
}

/* Relays the request to the leader, or answers 503 when none is known. */
static void forward_or_fail(struct sch_call *call)
{
    struct sch_api *api = call->api;
    char leader_api[256];
    uint64_t leader = sch_node_leader(api->node, leader_api, sizeof(leader_api));
    if (sch_http_header(call->req, SCH_API_FORWARD_MARK) != NULL) {
        /* Relayed once already by a server that took this one for the leader: answering 503
         * lets the client retry instead of bouncing between servers during an election. */
        sch_call_error(call, 503, "no_leader", NULL,
                       "this server is not the leader any more; retry shortly");
        return;
    }
    char why[768];
    if ((leader == 0 || *leader_api == '\0') &&
        sch_node_storage_down(api->node, why, sizeof(why))) {
        sch_call_error(call, 503, "storage_failed", NULL, "%s", why);
        return;
    }
    if (leader == 0 || leader == api->node->cfg.id || *leader_api == '\0') {
        sch_call_error(call, 503, "no_leader", NULL,
                       leader == 0 ? "no leader is elected at the moment; retry shortly"
                                   : "the leader's API address is not known yet; retry shortly");
        return;
    }
    api->metrics[call->route].forwarded++;
    uint64_t timeout = api->cfg.forward_timeout_ms;
    char wait[32];
    /* The leader may hold a relayed long-poll for its whole wait. */
    if (sch_route_def(call->route)->long_poll &&
        sch_http_query(call->req, "wait", wait, sizeof(wait))) {
        unsigned long long seconds = strtoull(wait, NULL, 10);
        if (seconds > api->cfg.max_wait_s)
            seconds = api->cfg.max_wait_s;
        timeout += 1000ull * seconds;
    }
    /* A divergence check asks every voter for up to SCH_VERIFY_MAX_MS. */
    if (call->route == SCH_ROUTE_VERIFY)
        timeout += SCH_VERIFY_MAX_MS;
    /* An image pull or removal waits for the nodes' answers. */
    if (call->route == SCH_ROUTE_IMAGE_PULL)
        timeout += SCH_API_IMAGE_PULL_MS;
    if (call->route == SCH_ROUTE_IMAGE_RM)
        timeout += SCH_API_IMAGE_RM_MS;
    sch_http_forward(call->req, leader_api, timeout);
    sch_call_free(call);
}

static bool stale_allowed(struct sch_http_request *req)
{
    char value[32];
    return sch_http_query(req, "stale", value, sizeof(value)) && strcmp(value, "0") != 0 &&
           strcmp(value, "false") != 0;
}

void sch_api_handle(struct sch_http_request *req, void *data)
{
    struct sch_api *api = data;
    /* What a follower was given and has not applied yet is applied before it is read. */
    sch_fsm_drain(&api->node->fsm);
    struct sch_call *call = gy_xcalloc(1, sizeof(*call));
    call->api = api;
    call->req = req;
    char allowed[64];
    call->route = sch_route_find(req->method, req->path, call->name, sizeof(call->name), allowed,
                                 sizeof(allowed));
    if (call->route == SCH_ROUTE_OTHER) {
        if (*allowed != '\0')
            sch_call_error(call, 405, "method_not_allowed", NULL, "%s %s: allowed methods are %s",
                           req->method, req->path, allowed);
        else
            sch_call_error(call, 404, "not_found", NULL, "no such endpoint: %s %s", req->method,
                           req->path);
        return;
    }
    if (api->stopping) {
        sch_call_error(call, 503, "no_leader", NULL, "the server is shutting down");
        return;
    }
    enum sch_access access = sch_route_def(call->route)->access;
    bool local_read = access == SCH_ACCESS_READ && stale_allowed(req);
    if (local_read && !sch_verify_reads_ok(&api->node->verify)) {
        /* This server's state is being rebuilt from the leader's (docs/operations.md,
         * "Divergence"): what it holds may be wrong. */
        sch_call_error(call, 503, "state_rebuilding", NULL,
                       "this server is rebuilding its state from the leader's; read from another "
                       "server or without ?stale");
        return;
    }
    if (access == SCH_ACCESS_LOCAL || local_read) {
        serve(call);
        return;
    }
    if (!sch_node_is_leader(api->node)) {
        forward_or_fail(call);
        return;
    }
    char why[512];
    bool membership = call->route == SCH_ROUTE_MEMBER_ADD ||
                      call->route == SCH_ROUTE_MEMBER_REMOVE ||
                      call->route == SCH_ROUTE_LEADER_TRANSFER;
    if (access == SCH_ACCESS_WRITE && !membership &&
        sch_node_nospace(api->node, why, sizeof(why))) {
        /* etcd's NOSPACE: writes of workloads and nodes wait; membership does not (a server
         * records its addresses through it, and adding a server or handing leadership over
         * is how an operator moves the writes to a server with space). */
        sch_call_error(call, 507, "nospace", NULL, "%s", why);
        return;
    }
    if (access != SCH_ACCESS_READ) {
        serve(call);
        return;
    }
    struct gy_error err;
    if (sch_node_barrier(api->node, barrier_done, call, &err) < 0)
        sch_call_fail(call, -(int)err.code, err.msg);
}
