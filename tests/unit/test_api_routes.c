/* Unit tests of the API's route table: every route of docs/api.md is found by its method
 * and path, with its metric label and access kind, and the misses give the 404 or the 405
 * with its list of allowed methods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "scheduler/api/routes.h"

struct expected {
    const char *method;
    const char *path;
    enum sch_route route;
    const char *name; /* the {name} segment, or "" */
    const char *metric;
    enum sch_access access;
};

/* The API's contract: clients, the CLI, dashboards (the metric labels) and docs/api.md
 * depend on each of these. */
static const struct expected routes[] = {
    {"POST", "/v1/apply", SCH_ROUTE_APPLY, "", "apply", SCH_ACCESS_WRITE},
    {"GET", "/v1/workloads", SCH_ROUTE_WORKLOADS, "", "workloads_list", SCH_ACCESS_READ},
    {"GET", "/v1/workloads/web", SCH_ROUTE_WORKLOAD_GET, "web", "workload_get", SCH_ACCESS_READ},
    {"DELETE", "/v1/workloads/web", SCH_ROUTE_WORKLOAD_DELETE, "web", "workload_delete",
     SCH_ACCESS_WRITE},
    {"POST", "/v1/workloads/web/scale", SCH_ROUTE_WORKLOAD_SCALE, "web", "workload_scale",
     SCH_ACCESS_WRITE},
    {"POST", "/v1/workloads/web/move", SCH_ROUTE_WORKLOAD_MOVE, "web", "workload_move",
     SCH_ACCESS_WRITE},
    {"GET", "/v1/replicas", SCH_ROUTE_REPLICAS, "", "replicas", SCH_ACCESS_READ},
    {"GET", "/v1/replicas/web-1/logs", SCH_ROUTE_REPLICA_LOGS, "web-1", "replica_logs",
     SCH_ACCESS_LEADER},
    {"GET", "/v1/nodes", SCH_ROUTE_NODES, "", "nodes", SCH_ACCESS_READ},
    {"POST", "/v1/nodes/n1/drain", SCH_ROUTE_NODE_DRAIN, "n1", "node_drain", SCH_ACCESS_WRITE},
    {"POST", "/v1/nodes/n1/cordon", SCH_ROUTE_NODE_CORDON, "n1", "node_cordon", SCH_ACCESS_WRITE},
    {"POST", "/v1/nodes/n1/uncordon", SCH_ROUTE_NODE_UNCORDON, "n1", "node_uncordon",
     SCH_ACCESS_WRITE},
    {"DELETE", "/v1/nodes/n1", SCH_ROUTE_NODE_REMOVE, "n1", "node_remove", SCH_ACCESS_WRITE},
    {"POST", "/v1/nodes/n1/rotate-key", SCH_ROUTE_NODE_ROTATE_KEY, "n1", "node_rotate_key",
     SCH_ACCESS_LEADER},
    {"GET", "/v1/top", SCH_ROUTE_TOP, "", "top", SCH_ACCESS_LEADER},
    {"GET", "/v1/events", SCH_ROUTE_EVENTS, "", "events", SCH_ACCESS_READ},
    {"GET", "/v1/cluster", SCH_ROUTE_CLUSTER, "", "cluster", SCH_ACCESS_LOCAL},
    {"GET", "/v1/cluster/digest", SCH_ROUTE_DIGEST, "", "digest", SCH_ACCESS_LOCAL},
    {"POST", "/v1/cluster/verify", SCH_ROUTE_VERIFY, "", "verify", SCH_ACCESS_LEADER},
    {"GET", "/v1/cluster/snapshot", SCH_ROUTE_SNAPSHOT, "", "snapshot", SCH_ACCESS_READ},
    {"GET", "/v1/cluster/members", SCH_ROUTE_MEMBERS, "", "members", SCH_ACCESS_LEADER},
    {"POST", "/v1/cluster/members", SCH_ROUTE_MEMBER_ADD, "", "member_add", SCH_ACCESS_WRITE},
    {"DELETE", "/v1/cluster/members/3", SCH_ROUTE_MEMBER_REMOVE, "3", "member_remove",
     SCH_ACCESS_WRITE},
    {"POST", "/v1/cluster/leader", SCH_ROUTE_LEADER_TRANSFER, "", "leader_transfer",
     SCH_ACCESS_WRITE},
    {"GET", "/healthz", SCH_ROUTE_HEALTHZ, "", "healthz", SCH_ACCESS_LOCAL},
    {"GET", "/metrics", SCH_ROUTE_METRICS, "", "metrics", SCH_ACCESS_LOCAL},
    {"GET", "/v1/images", SCH_ROUTE_IMAGES, "", "images", SCH_ACCESS_LEADER},
    {"POST", "/v1/images/pull", SCH_ROUTE_IMAGE_PULL, "", "image_pull", SCH_ACCESS_LEADER},
    {"POST", "/v1/images/rm", SCH_ROUTE_IMAGE_RM, "", "image_rm", SCH_ACCESS_LEADER},
};

/* Finds method and path with a name buffer the size of call->name. */
static enum sch_route find(const char *method, const char *path, char *name, char *allowed,
                           size_t allowed_len)
{
    return sch_route_find(method, path, name, 128, allowed, allowed_len);
}

static void test_every_route_is_found(void **state)
{
    (void)state;
    size_t n = sizeof(routes) / sizeof(routes[0]);
    /* Every route but "other" is in the list above, once. */
    assert_int_equal(n, SCH_ROUTE_COUNT - 1);
    for (size_t i = 0; i < n; i++) {
        char name[128] = "", allowed[64] = "x";
        enum sch_route r = find(routes[i].method, routes[i].path, name, allowed, sizeof(allowed));
        if (r != routes[i].route)
            fail_msg("%s %s: route %d, want %d", routes[i].method, routes[i].path, (int)r,
                     (int)routes[i].route);
        assert_string_equal(name, routes[i].name);
        assert_string_equal(allowed, "");
        const struct sch_route_def *def = sch_route_def(r);
        assert_string_equal(def->metric, routes[i].metric);
        assert_string_equal(def->method, routes[i].method);
        assert_int_equal(def->access, routes[i].access);
        assert_non_null(def->serve);
        /* Only the events long-poll may hold a request open. */
        assert_int_equal(def->long_poll, r == SCH_ROUTE_EVENTS);
    }
    assert_string_equal(sch_route_def(SCH_ROUTE_OTHER)->metric, "other");
    assert_null(sch_route_def(SCH_ROUTE_OTHER)->method);
}

static void test_wrong_method_names_the_allowed_ones(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path, *allowed;
    } cases[] = {
        {"PUT", "/v1/apply", "POST"},
        {"GET", "/v1/apply", "POST"},
        {"POST", "/v1/workloads/web", "GET, DELETE"},
        {"PUT", "/v1/workloads/web", "GET, DELETE"},
        {"GET", "/v1/workloads/web/scale", "POST"},
        {"DELETE", "/healthz", "GET"},
        {"POST", "/metrics", "GET"},
        {"PUT", "/v1/cluster/members", "GET, POST"},
        {"GET", "/v1/cluster/leader", "POST"},
        {"GET", "/v1/cluster/members/2", "DELETE"},
        {"HEAD", "/v1/workloads", "GET"},
        {"get", "/v1/workloads", "GET"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[128], allowed[64];
        assert_int_equal(find(cases[i].method, cases[i].path, name, allowed, sizeof(allowed)),
                         SCH_ROUTE_OTHER);
        assert_string_equal(allowed, cases[i].allowed);
    }
}

static void test_unknown_paths_are_not_found(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "/",
        "/v1",
        "/v1/",
        "/v1/workloads/",
        "/v1/workloads//scale",
        "/v1/workloads/a/b",
        "/v1/workloads/a/scale/more",
        "/v1/workloadsx",
        "/v1/replicas/web-1",
        "/v1/cluster/members/",
        "/healthz/",
        "",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        char name[128], allowed[64] = "x";
        assert_int_equal(find("GET", paths[i], name, allowed, sizeof(allowed)), SCH_ROUTE_OTHER);
        if (*allowed != '\0')
            fail_msg("\"%s\": allowed \"%s\", want none", paths[i], allowed);
    }
}

static void test_names_must_fit(void **state)
{
    (void)state;
    char path[300], name[128], allowed[64];
    /* 127 bytes and the terminator fit in call->name; one more does not, and the path is then
     * no route's rather than a cut name. */
    snprintf(path, sizeof(path), "/v1/workloads/%0127d", 7);
    assert_int_equal(find("GET", path, name, allowed, sizeof(allowed)), SCH_ROUTE_WORKLOAD_GET);
    assert_int_equal(strlen(name), 127);
    snprintf(path, sizeof(path), "/v1/workloads/%0128d/scale", 7);
    assert_int_equal(find("POST", path, name, allowed, sizeof(allowed)), SCH_ROUTE_OTHER);
    assert_string_equal(allowed, "");
}

static void test_allowed_is_cut_safely(void **state)
{
    (void)state;
    char name[128], allowed[5];
    assert_int_equal(find("POST", "/v1/workloads/web", name, allowed, sizeof(allowed)),
                     SCH_ROUTE_OTHER);
    assert_string_equal(allowed, "GET,");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_is_found),
        cmocka_unit_test(test_wrong_method_names_the_allowed_ones),
        cmocka_unit_test(test_unknown_paths_are_not_found),
        cmocka_unit_test(test_names_must_fit),
        cmocka_unit_test(test_allowed_is_cut_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
