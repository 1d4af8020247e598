/* The route table (routes.h) and the matching of requests against it. */
#include "scheduler/api/routes.h"

#include <stdio.h>
#include <string.h>

#include "scheduler/api/api_internal.h"

/* In id order. Two routes of one path are listed in the order the 405 answer names their
 * methods. */
static const struct sch_route_def routes[SCH_ROUTE_COUNT] = {
    [SCH_ROUTE_APPLY] = {"POST", "/v1/apply", "apply", SCH_ACCESS_WRITE, false, sch_api_apply},
    [SCH_ROUTE_WORKLOADS] = {"GET", "/v1/workloads", "workloads_list", SCH_ACCESS_READ, false,
                             sch_api_workloads_list},
    [SCH_ROUTE_WORKLOAD_GET] = {"GET", "/v1/workloads/{name}", "workload_get", SCH_ACCESS_READ,
                                false, sch_api_workload_get},
    [SCH_ROUTE_WORKLOAD_DELETE] = {"DELETE", "/v1/workloads/{name}", "workload_delete",
                                   SCH_ACCESS_WRITE, false, sch_api_workload_delete},
    [SCH_ROUTE_WORKLOAD_SCALE] = {"POST", "/v1/workloads/{name}/scale", "workload_scale",
                                  SCH_ACCESS_WRITE, false, sch_api_workload_scale},
    [SCH_ROUTE_REPLICAS] = {"GET", "/v1/replicas", "replicas", SCH_ACCESS_READ, false,
                            sch_api_replicas_list},
    [SCH_ROUTE_REPLICA_LOGS] = {"GET", "/v1/replicas/{name}/logs", "replica_logs",
                                SCH_ACCESS_LEADER, false, sch_api_replica_logs},
    [SCH_ROUTE_NODES] = {"GET", "/v1/nodes", "nodes", SCH_ACCESS_READ, false, sch_api_nodes_list},
    [SCH_ROUTE_EVENTS] = {"GET", "/v1/events", "events", SCH_ACCESS_READ, true,
                          sch_api_events_list},
    [SCH_ROUTE_CLUSTER] = {"GET", "/v1/cluster", "cluster", SCH_ACCESS_LOCAL, false,
                           sch_api_cluster_get},
    [SCH_ROUTE_DIGEST] = {"GET", "/v1/cluster/digest", "digest", SCH_ACCESS_LOCAL, false,
                          sch_api_digest_get},
    [SCH_ROUTE_VERIFY] = {"POST", "/v1/cluster/verify", "verify", SCH_ACCESS_LEADER, false,
                          sch_api_verify},
    [SCH_ROUTE_MEMBERS] = {"GET", "/v1/cluster/members", "members", SCH_ACCESS_LEADER, false,
                           sch_api_members_list},
    [SCH_ROUTE_MEMBER_ADD] = {"POST", "/v1/cluster/members", "member_add", SCH_ACCESS_WRITE, false,
                              sch_api_member_add},
    [SCH_ROUTE_MEMBER_REMOVE] = {"DELETE", "/v1/cluster/members/{name}", "member_remove",
                                 SCH_ACCESS_WRITE, false, sch_api_member_remove},
    [SCH_ROUTE_LEADER_TRANSFER] = {"POST", "/v1/cluster/leader", "leader_transfer",
                                   SCH_ACCESS_WRITE, false, sch_api_leader_transfer},
    [SCH_ROUTE_SNAPSHOT] = {"GET", "/v1/cluster/snapshot", "snapshot", SCH_ACCESS_READ, false,
                            sch_api_snapshot_get},
    [SCH_ROUTE_TOP] = {"GET", "/v1/top", "top", SCH_ACCESS_LEADER, false, sch_api_top},
    [SCH_ROUTE_WORKLOAD_MOVE] = {"POST", "/v1/workloads/{name}/move", "workload_move",
                                 SCH_ACCESS_WRITE, false, sch_api_workload_move},
    [SCH_ROUTE_NODE_DRAIN] = {"POST", "/v1/nodes/{name}/drain", "node_drain", SCH_ACCESS_WRITE,
                              false, sch_api_node_drain},
    [SCH_ROUTE_NODE_CORDON] = {"POST", "/v1/nodes/{name}/cordon", "node_cordon", SCH_ACCESS_WRITE,
                               false, sch_api_node_cordon},
    [SCH_ROUTE_NODE_UNCORDON] = {"POST", "/v1/nodes/{name}/uncordon", "node_uncordon",
                                 SCH_ACCESS_WRITE, false, sch_api_node_uncordon},
    [SCH_ROUTE_NODE_REMOVE] = {"DELETE", "/v1/nodes/{name}", "node_remove", SCH_ACCESS_WRITE, false,
                               sch_api_node_remove},
    [SCH_ROUTE_NODE_ROTATE_KEY] = {"POST", "/v1/nodes/{name}/rotate-key", "node_rotate_key",
                                   SCH_ACCESS_LEADER, false, sch_api_node_rotate_key},
    [SCH_ROUTE_HEALTHZ] = {"GET", "/healthz", "healthz", SCH_ACCESS_LOCAL, false, sch_api_healthz},
    [SCH_ROUTE_METRICS] = {"GET", "/metrics", "metrics", SCH_ACCESS_LOCAL, false, sch_api_metrics},
    [SCH_ROUTE_IMAGES] = {"GET", "/v1/images", "images", SCH_ACCESS_LEADER, false,
                          sch_api_images_list},
    [SCH_ROUTE_IMAGE_PULL] = {"POST", "/v1/images/pull", "image_pull", SCH_ACCESS_LEADER, false,
                              sch_api_image_pull},
    [SCH_ROUTE_IMAGE_RM] = {"POST", "/v1/images/rm", "image_rm", SCH_ACCESS_LEADER, false,
                            sch_api_image_rm},
    [SCH_ROUTE_OTHER] = {NULL, NULL, "other", SCH_ACCESS_LOCAL, false, NULL},
};

const struct sch_route_def *sch_route_def(enum sch_route route)
{
    return &routes[route];
}

/* Whether path fits pattern; the {name} segment goes into name when name is not NULL. A
 * segment that does not fit in name_len bytes fits no pattern, so that a name is never
 * cut short. */
static bool path_match(const char *pattern, const char *path, char *name, size_t name_len)
{
    const char *open = strchr(pattern, '{');
    if (open == NULL)
        return strcmp(pattern, path) == 0;
    const char *suffix = strchr(open, '}') + 1;
    size_t plen = (size_t)(open - pattern), slen = strlen(suffix), n = strlen(path);
    if (n <= plen + slen || strncmp(path, pattern, plen) != 0 ||
        strcmp(path + n - slen, suffix) != 0)
        return false;
    size_t segment = n - plen - slen;
    if (segment >= name_len || memchr(path + plen, '/', segment) != NULL)
        return false;
    if (name != NULL) {
        memcpy(name, path + plen, segment);
        name[segment] = '\0';
    }
    return true;
}

enum sch_route sch_route_find(const char *method, const char *path, char *name, size_t name_len,
                              char *allowed, size_t allowed_len)
{
    size_t used = 0;
    if (allowed_len > 0)
        allowed[0] = '\0';
    for (int r = 0; r < SCH_ROUTE_COUNT; r++) {
        const struct sch_route_def *def = &routes[r];
        if (def->path == NULL || !path_match(def->path, path, NULL, name_len))
            continue;
        if (strcmp(def->method, method) == 0) {
            path_match(def->path, path, name, name_len);
            if (allowed_len > 0)
                allowed[0] = '\0';
            return (enum sch_route)r;
        }
        if (used < allowed_len) {
            int n =
                snprintf(allowed + used, allowed_len - used, "%s%s", used ? ", " : "", def->method);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    return SCH_ROUTE_OTHER;
}
