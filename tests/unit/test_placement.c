/* Unit tests of placement: spread, binpack, cloud preference and bursting, zones,
 * constraints, capacity, nodes under StoragePressure, and the reason given when nothing
 * fits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/fleet/placement.h"

#define MI (INT64_C(1) << 20)

static struct sch_place_node node(const char *name, const char *cloud, const char *zone,
                                  int64_t cpu, int64_t mem)
{
    struct sch_place_node n;
    memset(&n, 0, sizeof(n));
    n.name = name;
    n.cloud = cloud;
    n.zone = zone;
    n.capacity.cpu_millis = cpu;
    n.capacity.memory_bytes = mem;
    n.schedulable = true;
    return n;
}

static void spec_basic(struct gy_spec *spec, int64_t cpu, int64_t mem)
{
    memset(spec, 0, sizeof(*spec));
    spec->name = (char *)"web";
    spec->resources.cpu_millis = cpu;
    spec->resources.memory_bytes = mem;
}

static uint32_t place(struct sch_place_node *nodes, size_t n, const struct gy_spec *spec,
                      uint32_t count, struct sch_place_result *res)
{
    static size_t idx[200000];
    res->node_index = idx;
    struct gy_error err;
    int rc = sch_place(nodes, n, spec, count, res, &err);
    if (rc != 0)
        fail_msg("sch_place: %s", err.msg);
    return res->placed;
}

static void test_spread_over_nodes(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a", "private", "z1", 4000, 1024 * MI),
                                      node("b", "private", "z1", 4000, 1024 * MI),
                                      node("c", "private", "z1", 4000, 1024 * MI)};
    struct gy_spec spec;
    spec_basic(&spec, 250, 64 * MI);
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 6, &res), 6);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nodes[i].workload_replicas, 2);
        assert_int_equal(nodes[i].allocated.cpu_millis, 500);
        assert_int_equal(nodes[i].allocated.memory_bytes, 128 * MI);
    }
    assert_string_equal(res.reason, "");
}

static void test_existing_replicas_count(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a", "", "", 4000, 1024 * MI),
                                      node("b", "", "", 4000, 1024 * MI),
                                      node("c", "", "", 4000, 1024 * MI)};
    nodes[0].workload_replicas = 3;
    struct gy_spec spec;
    spec_basic(&spec, 100, 16 * MI);
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 3, &res), 3);
    assert_int_equal(nodes[0].workload_replicas, 3);
    assert_int_equal(nodes[1].workload_replicas + nodes[2].workload_replicas, 3);
    assert_true(nodes[1].workload_replicas >= 1 && nodes[2].workload_replicas >= 1);
}

static void test_binpack_fills_one_node_first(void **state)
{
    (void)state;
    struct sch_place_node nodes[2] = {node("a", "", "", 1000, 1024 * MI),
                                      node("b", "", "", 1000, 1024 * MI)};
    nodes[1].allocated.cpu_millis = 250; /* b is fuller */
    struct gy_spec spec;
    spec_basic(&spec, 250, 16 * MI);
    spec.placement.strategy = GY_STRATEGY_BINPACK;
    struct sch_place_result res;
    /* Binpack still spreads replicas of one workload first: counts win over fullness. */
    assert_int_equal(place(nodes, 2, &spec, 2, &res), 2);
    assert_int_equal(res.node_index[0], 1);
    assert_int_equal(res.node_index[1], 0);
}

static void test_cloud_preference_and_burst(void **state)
{
    (void)state;
    struct sch_place_node nodes[4] = {node("pub1", "public", "p", 8000, 8192 * MI),
                                      node("priv1", "private", "a", 1000, 1024 * MI),
                                      node("pub2", "public", "p", 8000, 8192 * MI),
                                      node("priv2", "private", "b", 1000, 1024 * MI)};
    struct gy_spec spec;
    spec_basic(&spec, 500, 64 * MI);
    char *clouds[] = {"private", "public"};
    spec.placement.clouds.items = clouds;
    spec.placement.clouds.n = 2;
    struct sch_place_result res;
    assert_int_equal(place(nodes, 4, &spec, 4, &res), 4);
    /* Private holds 2 x 500m per node: all four fit there. */
    assert_int_equal(nodes[1].workload_replicas, 2);
    assert_int_equal(nodes[3].workload_replicas, 2);
    assert_int_equal(nodes[0].workload_replicas + nodes[2].workload_replicas, 0);
    /* Four more burst into public, spread over its nodes. */
    assert_int_equal(place(nodes, 4, &spec, 4, &res), 4);
    assert_int_equal(nodes[0].workload_replicas, 2);
    assert_int_equal(nodes[2].workload_replicas, 2);
}

static void test_unlisted_cloud_is_never_used(void **state)
{
    (void)state;
    struct sch_place_node nodes[2] = {node("a", "private", "", 1000, 1024 * MI),
                                      node("b", "edge", "", 1000, 1024 * MI)};
    struct gy_spec spec;
    spec_basic(&spec, 1000, 64 * MI);
    char *clouds[] = {"private"};
    spec.placement.clouds.items = clouds;
    spec.placement.clouds.n = 1;
    struct sch_place_result res;
    assert_int_equal(place(nodes, 2, &spec, 2, &res), 1);
    assert_int_equal(res.node_index[0], 0);
    assert_string_equal(res.reason, "0/2 nodes available: 1 insufficient cpu (needs 1, most free "
                                    "0), 1 not in clouds [private]");
}

static void test_spread_over_zones(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a1", "", "a", 4000, 1024 * MI),
                                      node("a2", "", "a", 4000, 1024 * MI),
                                      node("b1", "", "b", 4000, 1024 * MI)};
    struct gy_spec spec;
    spec_basic(&spec, 100, 16 * MI);
    spec.placement.spread = GY_SPREAD_ZONE;
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 4, &res), 4);
    assert_int_equal(nodes[0].workload_replicas + nodes[1].workload_replicas, 2);
    assert_int_equal(nodes[2].workload_replicas, 2);
}

static void test_spread_over_clouds(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a", "private", "", 4000, 1024 * MI),
                                      node("b", "private", "", 4000, 1024 * MI),
                                      node("c", "public", "", 4000, 1024 * MI)};
    struct gy_spec spec;
    spec_basic(&spec, 100, 16 * MI);
    spec.placement.spread = GY_SPREAD_CLOUD;
    char *clouds[] = {"private", "public"};
    spec.placement.clouds.items = clouds;
    spec.placement.clouds.n = 2;
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 3, &res), 3);
    /* Ties go to the preferred cloud: private gets the odd replica. */
    assert_int_equal(nodes[0].workload_replicas + nodes[1].workload_replicas, 2);
    assert_int_equal(nodes[2].workload_replicas, 1);
}

static void test_constraints(void **state)
{
    (void)state;
    struct sch_label ssd[] = {{"disk", "ssd"}};
    struct sch_label hdd[] = {{"disk", "hdd"}};
    struct sch_place_node nodes[3] = {node("a", "", "", 4000, 1024 * MI),
                                      node("b", "", "", 4000, 1024 * MI),
                                      node("c", "", "", 4000, 1024 * MI)};
    nodes[0].labels = hdd;
    nodes[0].n_labels = 1;
    nodes[1].labels = ssd;
    nodes[1].n_labels = 1;
    struct gy_spec spec;
    spec_basic(&spec, 100, 16 * MI);
    char *eq[] = {"disk == ssd"};
    spec.placement.constraints.items = eq;
    spec.placement.constraints.n = 1;
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 3, &res), 3);
    assert_int_equal(nodes[1].workload_replicas, 3);

    char *ne[] = {"disk!=ssd"};
    spec.placement.constraints.items = ne;
    assert_int_equal(place(nodes, 3, &spec, 2, &res), 2);
    assert_int_equal(nodes[0].workload_replicas, 1);
    assert_int_equal(nodes[2].workload_replicas, 1); /* no label: != holds */

    struct gy_error err;
    assert_int_equal(sch_constraint_match(&nodes[1], "disk == ssd", &err), 1);
    assert_int_equal(sch_constraint_match(&nodes[0], "disk == ssd", &err), 0);
    assert_true(sch_constraint_match(&nodes[0], "disk ~ ssd", &err) < 0);
    char *bad[] = {"disk"};
    spec.placement.constraints.items = bad;
    res.node_index = (size_t[4]){0};
    assert_true(sch_place(nodes, 3, &spec, 1, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "placement.constraints[0]"));
}

static void test_reason_names_the_shortage(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a", "", "", 4000, 32 * MI),
                                      node("b", "", "", 4000, 16 * MI),
                                      node("c", "", "", 4000, 1024 * MI)};
    nodes[2].schedulable = false;
    struct gy_spec spec;
    spec_basic(&spec, 100, 64 * MI);
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 1, &res), 0);
    assert_string_equal(res.reason, "0/3 nodes available: 2 insufficient memory (needs 64Mi, most "
                                    "free 32Mi), 1 not ready or cordoned");
}

/* A node whose agent's database refuses writes gets no new replica, although spread would
 * pick it first (it has none of the workload and the most room); its replicas stay where they
 * are and count for nothing here. Without another node nothing is placed, and the reason
 * names the condition. Once it clears the node is used again. */
static void test_storage_pressure(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a", "", "", 8000, 4096 * MI),
                                      node("b", "", "", 4000, 1024 * MI),
                                      node("c", "", "", 4000, 1024 * MI)};
    nodes[0].storage_pressure = true;
    nodes[1].workload_replicas = 2;
    nodes[2].workload_replicas = 2;
    struct gy_spec spec;
    spec_basic(&spec, 100, 16 * MI);
    struct sch_place_result res;
    assert_int_equal(place(nodes, 3, &spec, 4, &res), 4);
    assert_int_equal(nodes[0].workload_replicas, 0);
    assert_int_equal(nodes[0].allocated.cpu_millis, 0);
    assert_int_equal(nodes[1].workload_replicas, 4);
    assert_int_equal(nodes[2].workload_replicas, 4);
    for (uint32_t i = 0; i < res.placed; i++)
        assert_int_not_equal(res.node_index[i], 0);
    assert_string_equal(res.reason, "");

    /* Alone, or beside a cordoned node: nothing is placed, and the reason says why. */
    nodes[1].schedulable = false;
    nodes[2].storage_pressure = true;
    assert_int_equal(place(nodes, 3, &spec, 1, &res), 0);
    assert_string_equal(res.reason, "0/3 nodes available: 2 under StoragePressure (the agent's "
                                    "database refuses writes), 1 not ready or cordoned");
    assert_int_equal(place(nodes, 1, &spec, 2, &res), 0);
    assert_string_equal(res.reason, "0/1 nodes available: 1 under StoragePressure (the agent's "
                                    "database refuses writes)");

    /* Cleared: the node is placed on again, first as the one with the fewest replicas. */
    nodes[0].storage_pressure = false;
    assert_int_equal(place(nodes, 3, &spec, 2, &res), 2);
    assert_int_equal(res.node_index[0], 0);
    assert_int_equal(res.node_index[1], 0);
    assert_int_equal(nodes[0].workload_replicas, 2);
}

static void test_pids_capacity(void **state)
{
    (void)state;
    struct sch_place_node nodes[1] = {node("a", "", "", 8000, 8192 * MI)};
    nodes[0].capacity.pids = 300;
    struct gy_spec spec;
    spec_basic(&spec, 100, 16 * MI);
    spec.resources.pids = 128;
    struct sch_place_result res;
    assert_int_equal(place(nodes, 1, &spec, 5, &res), 2);
    assert_non_null(strstr(res.reason, "insufficient pids (needs 128, most free 44)"));
}

static void test_many_nodes_balanced(void **state)
{
    (void)state;
    size_t n = 10000;
    struct sch_place_node *nodes = calloc(n, sizeof(*nodes));
    char(*names)[16] = calloc(n, 16);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 16, "n%zu", i);
        nodes[i] = node(names[i], "private", "", 64000, 256 * 1024 * MI);
    }
    struct gy_spec spec;
    spec_basic(&spec, 100, 64 * MI);
    struct sch_place_result res;
    assert_int_equal(place(nodes, n, &spec, 100000, &res), 100000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(nodes[i].workload_replicas, 10);
    free(names);
    free(nodes);
}

/* ---------------------------------------------------------------------------------------
 * Host ports */

static struct gy_port host_ports_of_web[2];

/* spec_basic with ports: container port 8080 published on host_port over protocol, and
 * when second is not 0, container port 8443 published on second over tcp. */
static void spec_ported(struct gy_spec *spec, uint32_t host_port, enum gy_protocol protocol,
                        uint32_t second)
{
    spec_basic(spec, 100, 16 * MI);
    host_ports_of_web[0] =
        (struct gy_port){.container_port = 8080, .protocol = protocol, .host_port = host_port};
    host_ports_of_web[1] =
        (struct gy_port){.container_port = 8443, .protocol = GY_PROTOCOL_TCP, .host_port = second};
    spec->ports = host_ports_of_web;
    spec->n_ports = second != 0 ? 2 : 1;
}

/* Two replicas wanting host port 80 never share a node: on one node one is placed and the
 * other waits, with the port named; on two nodes each gets one. */
static void test_host_port_one_replica_a_node(void **state)
{
    (void)state;
    struct sch_host_ports held = {0};
    struct sch_place_node nodes[2] = {node("a", "", "", 8000, 8192 * MI),
                                      node("b", "", "", 8000, 8192 * MI)};
    nodes[0].host_ports = &held;
    struct gy_spec spec;
    spec_ported(&spec, 80, GY_PROTOCOL_TCP, 0);
    struct sch_place_result res;
    assert_int_equal(place(nodes, 1, &spec, 2, &res), 1);
    assert_int_equal(res.node_index[0], 0);
    assert_string_equal(res.reason, "0/1 nodes available: 1 already run a replica of the "
                                    "workload on host port 80/tcp");
    assert_int_equal(sch_host_ports_holders(&held, 80, GY_PROTOCOL_TCP), 1);
    assert_int_equal(sch_host_ports_holders(&held, 80, GY_PROTOCOL_UDP), 0);
    assert_int_equal(nodes[0].workload_replicas, 1);
    assert_int_equal(nodes[0].allocated.memory_bytes, 16 * MI);
    /* The node is marked too, since the port is held by the workload itself; the caller
     * tells the replica it just placed from an old one (reconcile.c). */
    assert_true(nodes[0].held_by_workload);
    assert_int_equal(res.held_by_workload, 1);

    /* Another workload wanting the same port finds it in use. */
    struct gy_spec other;
    spec_ported(&other, 80, GY_PROTOCOL_TCP, 0);
    other.name = (char *)"api";
    nodes[0].workload_replicas = 0;
    assert_int_equal(place(nodes, 1, &other, 1, &res), 0);
    assert_string_equal(res.reason, "0/1 nodes available: 1 with host port 80/tcp in use");
    assert_int_equal(res.held_by_workload, 0);
    assert_false(nodes[0].held_by_workload);

    /* Two nodes: both replicas placed, one on each. */
    struct sch_host_ports held_a = {0}, held_b = {0};
    struct sch_place_node two[2] = {node("a", "", "", 8000, 8192 * MI),
                                    node("b", "", "", 8000, 8192 * MI)};
    two[0].host_ports = &held_a;
    two[1].host_ports = &held_b;
    spec_ported(&spec, 80, GY_PROTOCOL_TCP, 0);
    assert_int_equal(place(two, 2, &spec, 2, &res), 2);
    assert_int_not_equal(res.node_index[0], res.node_index[1]);
    assert_int_equal(two[0].workload_replicas, 1);
    assert_int_equal(two[1].workload_replicas, 1);
    assert_int_equal(sch_host_ports_holders(&held_a, 80, GY_PROTOCOL_TCP), 1);
    assert_int_equal(sch_host_ports_holders(&held_b, 80, GY_PROTOCOL_TCP), 1);
    assert_string_equal(res.reason, "");
    /* Binpack does not put them together either. */
    struct sch_place_node packed[2] = {node("a", "", "", 8000, 8192 * MI),
                                       node("b", "", "", 8000, 8192 * MI)};
    spec.placement.strategy = GY_STRATEGY_BINPACK;
    assert_int_equal(place(packed, 2, &spec, 3, &res), 2);
    assert_int_not_equal(res.node_index[0], res.node_index[1]);
    assert_string_equal(res.reason, "0/2 nodes available: 2 already run a replica of the "
                                    "workload on host port 80/tcp");
    sch_host_ports_free(&held);
    sch_host_ports_free(&held_a);
    sch_host_ports_free(&held_b);
}

/* The same port over another protocol is another port; ports held by other workloads keep
 * a replica off whichever of its host ports they hold. */
static void test_host_port_protocols_and_others(void **state)
{
    (void)state;
    struct sch_host_ports held[3] = {{0}, {0}, {0}};
    struct sch_place_node nodes[3] = {node("a", "", "", 8000, 8192 * MI),
                                      node("b", "", "", 8000, 8192 * MI),
                                      node("c", "", "", 8000, 8192 * MI)};
    for (int i = 0; i < 3; i++)
        nodes[i].host_ports = &held[i];
    assert_int_equal(sch_host_ports_add(&held[0], 53, GY_PROTOCOL_UDP, 1), 0);
    assert_int_equal(sch_host_ports_add(&held[1], 53, GY_PROTOCOL_TCP, 2), 0);
    assert_int_equal(sch_host_ports_add(&held[2], 8443, GY_PROTOCOL_TCP, 1), 0);
    assert_int_equal(sch_host_ports_holders(&held[1], 53, GY_PROTOCOL_TCP), 2);

    struct gy_spec spec;
    spec_ported(&spec, 53, GY_PROTOCOL_TCP, 0);
    struct sch_place_result res;
    /* 53/tcp is held on b only: a (53/udp) and c take one each. */
    assert_int_equal(place(nodes, 3, &spec, 3, &res), 2);
    assert_true((res.node_index[0] == 0 && res.node_index[1] == 2) ||
                (res.node_index[0] == 2 && res.node_index[1] == 0));
    assert_string_equal(res.reason, "0/3 nodes available: 1 with host port 53/tcp in use, 2 "
                                    "already run a replica of the workload on host port 53/tcp");
    assert_int_equal(sch_host_ports_holders(&held[0], 53, GY_PROTOCOL_TCP), 1);
    assert_int_equal(sch_host_ports_holders(&held[0], 53, GY_PROTOCOL_UDP), 1);

    /* Two host ports: a node holding either is left out, and the reason names the ones in
     * use. */
    struct sch_host_ports fresh[3] = {{0}, {0}, {0}};
    struct sch_place_node again[3] = {node("a", "", "", 8000, 8192 * MI),
                                      node("b", "", "", 8000, 8192 * MI),
                                      node("c", "", "", 8000, 8192 * MI)};
    for (int i = 0; i < 3; i++)
        again[i].host_ports = &fresh[i];
    sch_host_ports_add(&fresh[0], 80, GY_PROTOCOL_TCP, 1);
    sch_host_ports_add(&fresh[1], 443, GY_PROTOCOL_TCP, 1);
    spec_ported(&spec, 80, GY_PROTOCOL_TCP, 443);
    assert_int_equal(place(again, 3, &spec, 2, &res), 1);
    assert_int_equal(res.node_index[0], 2);
    assert_string_equal(res.reason, "0/3 nodes available: 2 with host ports 80/tcp, 443/tcp in "
                                    "use, 1 already run a replica of the workload on host ports "
                                    "80/tcp, 443/tcp");
    for (int i = 0; i < 3; i++) {
        sch_host_ports_free(&held[i]);
        sch_host_ports_free(&fresh[i]);
    }
}

/* A spec without host ports ignores them: ports held on a node and ports only declared
 * (container_port without host_port) change nothing. */
static void test_host_port_other_specs_unaffected(void **state)
{
    (void)state;
    struct sch_host_ports held = {0};
    sch_host_ports_add(&held, 8080, GY_PROTOCOL_TCP, 3);
    struct sch_place_node nodes[1] = {node("a", "", "", 8000, 8192 * MI)};
    nodes[0].host_ports = &held;
    struct gy_spec spec;
    spec_ported(&spec, 0, GY_PROTOCOL_TCP, 0); /* container port 8080, not published */
    struct sch_place_result res;
    assert_int_equal(place(nodes, 1, &spec, 4, &res), 4);
    assert_string_equal(res.reason, "");
    assert_int_equal(nodes[0].workload_replicas, 4);
    assert_int_equal(sch_host_ports_holders(&held, 8080, GY_PROTOCOL_TCP), 3);
    spec_basic(&spec, 100, 16 * MI);
    assert_int_equal(place(nodes, 1, &spec, 2, &res), 2);
    assert_int_equal(nodes[0].workload_replicas, 6);
    /* A node without a set holds no host port. */
    struct sch_place_node bare[1] = {node("a", "", "", 8000, 8192 * MI)};
    spec_ported(&spec, 8080, GY_PROTOCOL_TCP, 0);
    assert_int_equal(place(bare, 1, &spec, 2, &res), 1);
    sch_host_ports_free(&held);
}

/* Nodes left out only for the host ports of the workload's own replicas (live or stopping)
 * are marked when they would have room once those are gone: what a rolling update frees by
 * stopping its old replica first. */
static void test_host_port_held_by_workload(void **state)
{
    (void)state;
    struct sch_host_ports held[4] = {{0}, {0}, {0}, {0}};
    struct sch_place_node nodes[4] = {
        node("a", "", "", 8000, 8192 * MI), node("b", "", "", 8000, 8192 * MI),
        node("c", "", "", 8000, 24 * MI), node("d", "", "", 8000, 8192 * MI)};
    for (int i = 0; i < 4; i++) {
        nodes[i].host_ports = &held[i];
        sch_host_ports_add(&held[i], 80, GY_PROTOCOL_TCP, 1);
    }
    struct gy_spec spec;
    spec_ported(&spec, 80, GY_PROTOCOL_TCP, 0);
    /* a: an old replica of the workload; b: one stopping; c: one, but with too little memory
     * left even without it (24Mi capacity, 16Mi for it, 16Mi for another workload); d: one
     * of the workload and one of another workload, both on port 80. */
    nodes[0].workload_replicas = 1;
    nodes[0].allocated.memory_bytes = 16 * MI;
    nodes[1].workload_stopping = 1;
    nodes[1].allocated.memory_bytes = 16 * MI;
    nodes[2].workload_replicas = 1;
    nodes[2].allocated.memory_bytes = 32 * MI;
    nodes[3].workload_replicas = 1;
    sch_host_ports_add(&held[3], 80, GY_PROTOCOL_TCP, 1);
    struct sch_place_result res;
    assert_int_equal(place(nodes, 4, &spec, 1, &res), 0);
    assert_true(nodes[0].held_by_workload);
    assert_true(nodes[1].held_by_workload);
    assert_false(nodes[2].held_by_workload);
    assert_false(nodes[3].held_by_workload);
    assert_int_equal(res.held_by_workload, 2);
    assert_string_equal(res.reason, "0/4 nodes available: 1 with host port 80/tcp in use, 3 "
                                    "already run a replica of the workload on host port 80/tcp");
    /* Once b's replica has stopped, its node takes the new one; the marks are cleared. */
    nodes[1].workload_stopping = 0;
    nodes[1].allocated.memory_bytes = 0;
    sch_host_ports_free(&held[1]);
    assert_int_equal(place(nodes, 4, &spec, 1, &res), 1);
    assert_int_equal(res.node_index[0], 1);
    assert_false(nodes[0].held_by_workload);
    assert_int_equal(res.held_by_workload, 0);
    for (int i = 0; i < 4; i++)
        sch_host_ports_free(&held[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_over_nodes),
        cmocka_unit_test(test_existing_replicas_count),
        cmocka_unit_test(test_binpack_fills_one_node_first),
        cmocka_unit_test(test_cloud_preference_and_burst),
        cmocka_unit_test(test_unlisted_cloud_is_never_used),
        cmocka_unit_test(test_spread_over_zones),
        cmocka_unit_test(test_spread_over_clouds),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_reason_names_the_shortage),
        cmocka_unit_test(test_storage_pressure),
        cmocka_unit_test(test_pids_capacity),
        cmocka_unit_test(test_many_nodes_balanced),
        cmocka_unit_test(test_host_port_one_replica_a_node),
        cmocka_unit_test(test_host_port_protocols_and_others),
        cmocka_unit_test(test_host_port_other_specs_unaffected),
        cmocka_unit_test(test_host_port_held_by_workload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
