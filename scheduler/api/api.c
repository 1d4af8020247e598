/* The API's front door: routing, the leader/follower decision (answer, barrier, forward or
 * 503), and answers with metrics. */
#include "scheduler/server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/fleet/fleet.h"

/* How the request is served. */
enum access {
    ACCESS_LOCAL, /* any server answers from its own view */
    ACCESS_READ,  /* leader after a barrier; any server with ?stale=1 */
    ACCESS_WRITE, /* leader only */
};

static enum access route_access(enum sch_route route)
{
    switch (route) {
    case SCH_ROUTE_APPLY:
    case SCH_ROUTE_WORKLOAD_DELETE:
    case SCH_ROUTE_WORKLOAD_SCALE:
    case SCH_ROUTE_WORKLOAD_MOVE:
    case SCH_ROUTE_NODE_DRAIN:
    case SCH_ROUTE_NODE_CORDON:
    case SCH_ROUTE_NODE_UNCORDON:
    case SCH_ROUTE_MEMBER_ADD:
    case SCH_ROUTE_MEMBER_REMOVE:
    case SCH_ROUTE_REPLICA_LOGS: /* the leader holds the agent sessions */
    case SCH_ROUTE_TOP:          /* and the usage samples */
        return ACCESS_WRITE;
    case SCH_ROUTE_WORKLOADS:
    case SCH_ROUTE_WORKLOAD_GET:
    case SCH_ROUTE_REPLICAS:
    case SCH_ROUTE_NODES:
    case SCH_ROUTE_EVENTS:
    case SCH_ROUTE_SNAPSHOT:
        return ACCESS_READ;
    default:
        return ACCESS_LOCAL;
    }
}

static void call_free(struct sch_call *call)
{
    json_decref(call->body);
    free(call);
}

void sch_call_answer(struct sch_call *call, int status, json_t *body)
{
    sch_metrics_observe(call->server, call->route, status, call->req->received_ns);
    sch_http_respond_json(call->req, status, body);
    call->req = NULL;
}

void sch_call_json(struct sch_call *call, int status, json_t *body)
{
    sch_call_answer(call, status, body);
    call_free(call);
}

void sch_call_error(struct sch_call *call, int status, const char *code, const char *path,
                    const char *fmt, ...)
{
    char message[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    sch_metrics_observe(call->server, call->route, status, call->req->received_ns);
    if (status == 503) {
        /* Clients retry after a second: an election takes well under that on a LAN. */
        json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        sch_http_respond(call->req, status, "application/json", "Retry-After: 1\r\n", text,
                         strlen(text));
        free(text);
    } else {
        sch_http_respond_error(call->req, status, code, path, "%s", message);
    }
    call_free(call);
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

/* Copies the path segment after prefix into out; false when it is empty or has a '/'. */
static bool path_name(const char *path, const char *prefix, const char *suffix, char *out,
                      size_t len)
{
    size_t plen = strlen(prefix), slen = strlen(suffix), n = strlen(path);
    if (n <= plen + slen || strncmp(path, prefix, plen) != 0 ||
        strcmp(path + n - slen, suffix) != 0)
        return false;
    size_t name_len = n - plen - slen;
    if (name_len >= len || memchr(path + plen, '/', name_len) != NULL)
        return false;
    memcpy(out, path + plen, name_len);
    out[name_len] = '\0';
    return true;
}

/* Finds the route; returns false with *allowed set when the path exists for other
 * methods. */
static bool route_find(struct sch_call *call, const char **allowed)
{
    const char *m = call->req->method, *p = call->req->path;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0, del = strcmp(m, "DELETE") == 0;
    *allowed = NULL;
#define ROUTE(cond, r, allow)                                                                      \
    do {                                                                                           \
        if (cond) {                                                                                \
            call->route = (r);                                                                     \
            return true;                                                                           \
        }                                                                                          \
        *allowed = (allow);                                                                        \
        return false;                                                                              \
    } while (0)
    if (strcmp(p, "/healthz") == 0)
        ROUTE(get, SCH_ROUTE_HEALTHZ, "GET");
    if (strcmp(p, "/metrics") == 0)
        ROUTE(get, SCH_ROUTE_METRICS, "GET");
    if (strcmp(p, "/v1/apply") == 0)
        ROUTE(post, SCH_ROUTE_APPLY, "POST");
    if (strcmp(p, "/v1/workloads") == 0)
        ROUTE(get, SCH_ROUTE_WORKLOADS, "GET");
    if (path_name(p, "/v1/workloads/", "/scale", call->name, sizeof(call->name)))
        ROUTE(post, SCH_ROUTE_WORKLOAD_SCALE, "POST");
    if (path_name(p, "/v1/workloads/", "/move", call->name, sizeof(call->name)))
        ROUTE(post, SCH_ROUTE_WORKLOAD_MOVE, "POST");
    if (path_name(p, "/v1/nodes/", "/drain", call->name, sizeof(call->name)))
        ROUTE(post, SCH_ROUTE_NODE_DRAIN, "POST");
    if (path_name(p, "/v1/nodes/", "/cordon", call->name, sizeof(call->name)))
        ROUTE(post, SCH_ROUTE_NODE_CORDON, "POST");
    if (path_name(p, "/v1/nodes/", "/uncordon", call->name, sizeof(call->name)))
        ROUTE(post, SCH_ROUTE_NODE_UNCORDON, "POST");
    if (path_name(p, "/v1/workloads/", "", call->name, sizeof(call->name))) {
        if (get)
            ROUTE(true, SCH_ROUTE_WORKLOAD_GET, NULL);
        ROUTE(del, SCH_ROUTE_WORKLOAD_DELETE, "GET, DELETE");
    }
    if (strcmp(p, "/v1/replicas") == 0)
        ROUTE(get, SCH_ROUTE_REPLICAS, "GET");
    if (path_name(p, "/v1/replicas/", "/logs", call->name, sizeof(call->name)))
        ROUTE(get, SCH_ROUTE_REPLICA_LOGS, "GET");
    if (strcmp(p, "/v1/nodes") == 0)
        ROUTE(get, SCH_ROUTE_NODES, "GET");
    if (strcmp(p, "/v1/top") == 0)
        ROUTE(get, SCH_ROUTE_TOP, "GET");
    if (strcmp(p, "/v1/events") == 0)
        ROUTE(get, SCH_ROUTE_EVENTS, "GET");
    if (strcmp(p, "/v1/cluster") == 0)
        ROUTE(get, SCH_ROUTE_CLUSTER, "GET");
    if (strcmp(p, "/v1/cluster/snapshot") == 0)
        ROUTE(get, SCH_ROUTE_SNAPSHOT, "GET");
    if (strcmp(p, "/v1/cluster/members") == 0)
        ROUTE(post, SCH_ROUTE_MEMBER_ADD, "POST");
    if (path_name(p, "/v1/cluster/members/", "", call->name, sizeof(call->name)))
        ROUTE(del, SCH_ROUTE_MEMBER_REMOVE, "DELETE");
#undef ROUTE
    call->route = SCH_ROUTE_OTHER;
    return false;
}

static void run_write(struct sch_call *call)
{
    switch (call->route) {
    case SCH_ROUTE_APPLY:
        sch_api_apply(call);
        break;
    case SCH_ROUTE_WORKLOAD_DELETE:
        sch_api_delete(call);
        break;
    case SCH_ROUTE_WORKLOAD_SCALE:
        sch_api_scale(call);
        break;
    case SCH_ROUTE_WORKLOAD_MOVE:
        sch_api_move(call);
        break;
    case SCH_ROUTE_NODE_DRAIN:
    case SCH_ROUTE_NODE_CORDON:
    case SCH_ROUTE_NODE_UNCORDON:
        sch_api_node_state(call);
        break;
    case SCH_ROUTE_MEMBER_ADD:
        sch_api_member_add(call);
        break;
    default:
        sch_api_member_remove(call);
        break;
    }
}

static void barrier_done(void *data, int status, const char *message)
{
    struct sch_call *call = data;
    if (status < 0) {
        sch_call_fail(call, status, message);
        return;
    }
    sch_api_read(call);
}

/* Relays the request to the leader, or answers 503 when none is known. */
static void forward_or_fail(struct sch_call *call)
{
    struct sch_server *server = call->server;
    char api[256];
    uint64_t leader = sch_node_leader(&server->node, api, sizeof(api));
    if (sch_http_header(call->req, "x-gantry-forwarded") != NULL) {
        /* Relayed once already by a server that took this one for the leader: answering 503
         * lets the client retry instead of bouncing between servers during an election. */
        sch_call_error(call, 503, "no_leader", NULL,
                       "this server is not the leader any more; retry shortly");
        return;
    }
    if (leader == 0 || leader == server->cfg.node.id || *api == '\0') {
        sch_call_error(call, 503, "no_leader", NULL,
                       leader == 0 ? "no leader is elected at the moment; retry shortly"
                                   : "the leader's API address is not known yet; retry shortly");
        return;
    }
    server->metrics[call->route].forwarded++;
    uint64_t timeout = server->cfg.forward_timeout_ms;
    char wait[32];
    /* A relayed long-poll may be held by the leader for its whole wait. */
    if (call->route == SCH_ROUTE_EVENTS && sch_http_query(call->req, "wait", wait, sizeof(wait))) {
        unsigned long long seconds = strtoull(wait, NULL, 10);
        if (seconds > server->cfg.max_wait_s)
            seconds = server->cfg.max_wait_s;
        timeout += 1000ull * seconds;
    }
    sch_http_forward(call->req, api, timeout);
    call_free(call);
}

void sch_api_handle(struct sch_http_request *req, void *data)
{
    struct sch_server *server = data;
    /* What a follower was given and has not applied yet is applied before it is read. */
    sch_fsm_drain(&server->node.fsm);
    struct sch_call *call = gy_xcalloc(1, sizeof(*call));
    call->server = server;
    call->req = req;
    const char *allowed;
    if (!route_find(call, &allowed)) {
        if (allowed != NULL)
            sch_call_error(call, 405, "method_not_allowed", NULL, "%s %s: allowed methods are %s",
                           req->method, req->path, allowed);
        else
            sch_call_error(call, 404, "not_found", NULL, "no such endpoint: %s %s", req->method,
                           req->path);
        return;
    }
    if (server->stopping) {
        sch_call_error(call, 503, "no_leader", NULL, "the server is shutting down");
        return;
    }
    enum access access = route_access(call->route);
    char value[32];
    bool stale = sch_http_query(req, "stale", value, sizeof(value)) && strcmp(value, "0") != 0 &&
                 strcmp(value, "false") != 0;
    if (access == ACCESS_LOCAL || (access == ACCESS_READ && stale)) {
        sch_api_read(call);
        return;
    }
    if (!sch_node_is_leader(&server->node)) {
        forward_or_fail(call);
        return;
    }
    if (call->route == SCH_ROUTE_REPLICA_LOGS) {
        sch_leader_logs(call);
        return;
    }
    if (call->route == SCH_ROUTE_TOP) {
        sch_leader_top(call);
        return;
    }
    if (access == ACCESS_WRITE) {
        run_write(call);
        return;
    }
    struct gy_error err;
    if (sch_node_barrier(&server->node, barrier_done, call, &err) < 0)
        sch_call_fail(call, -(int)err.code, err.msg);
}
