/* Unit tests of the conversion between the spec model and gantry.WorkloadSpec: round trips
 * through packed bytes, defaults for absent sub-messages, and refusal of bad messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/spec_pb.h"

static void decode_json(const char *text, struct gy_spec *spec)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    assert_non_null(doc);
    struct gy_spec_problems problems = {0};
    int rc = gy_spec_from_json(doc, NULL, spec, &problems);
    for (size_t i = 0; i < problems.n; i++)
        fprintf(stderr, "%s: %s\n", problems.items[i].path, problems.items[i].message);
    assert_int_equal(rc, 0);
    gy_spec_problems_free(&problems);
    json_decref(doc);
}

/* spec -> message -> bytes -> message -> spec gives the spec back. */
static void round_trip(const char *text)
{
    struct gy_spec a, b;
    decode_json(text, &a);
    Gantry__WorkloadSpec *msg = gy_spec_to_proto(&a);
    assert_non_null(msg);
    size_t len = gantry__workload_spec__get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    assert_int_equal(gantry__workload_spec__pack(msg, buf), len);
    Gantry__WorkloadSpec *back = gantry__workload_spec__unpack(NULL, len, buf);
    assert_non_null(back);
    struct gy_error err;
    int rc = gy_spec_from_proto(back, &b, &err);
    if (rc != 0)
        fail_msg("from_proto: %s", err.msg);
    assert_true(gy_spec_equal(&a, &b));

    /* The message built in memory converts back the same way as the unpacked one. */
    struct gy_spec c;
    assert_int_equal(gy_spec_from_proto(msg, &c, &err), 0);
    assert_true(gy_spec_equal(&a, &c));

    gy_spec_free(&c);
    gantry__workload_spec__free_unpacked(back, NULL);
    free(buf);
    gy_spec_proto_free(msg);
    gy_spec_free(&a);
    gy_spec_free(&b);
}

static void test_round_trips(void **state)
{
    (void)state;
    round_trip("{\"name\":\"web\",\"image\":\"busybox\"}");
    round_trip(
        "{\"name\":\"web\",\"image\":\"busybox\",\"command\":[\"httpd\",\"-f\"],"
        "\"env\":{\"B\":\"2\",\"A\":\"\"},\"replicas\":7,\"resources\":{\"cpu\":\"1.5\","
        "\"memory\":\"1Gi\",\"pids\":64},\"restart\":\"never\",\"health\":{\"http\":{\"port\":"
        "8080,\"path\":\"/ready\"},\"interval\":\"3s\",\"timeout\":\"250ms\","
        "\"failure_threshold\":2,\"start_period\":\"20s\"},\"placement\":{\"clouds\":"
        "[\"private\",\"public\"],\"spread\":\"cloud\",\"constraints\":[\"disk == ssd\"],"
        "\"strategy\":\"binpack\"},\"autoscale\":{\"min\":0,\"max\":9,\"cpu\":\"60%\","
        "\"metric\":{\"exec\":[\"cat\",\"/q\"],\"target\":2.5},\"scale_down_after\":\"1m\","
        "\"idle_after\":\"1h\"},\"update\":{\"max_surge\":2,\"max_unavailable\":1},"
        "\"stop_grace\":\"45s\",\"disconnect_grace\":\"2m30s\"}");
    /* disconnect_grace travels as disconnect_grace_ms (field 13). */
    struct gy_spec g;
    decode_json("{\"name\":\"web\",\"image\":\"busybox\",\"disconnect_grace\":\"90s\"}", &g);
    Gantry__WorkloadSpec *gm = gy_spec_to_proto(&g);
    assert_int_equal(gm->disconnect_grace_ms, 90000);
    gy_spec_proto_free(gm);
    gy_spec_free(&g);
    round_trip("{\"name\":\"db\",\"image\":\"postgres\",\"health\":{\"tcp\":{\"port\":5432}},"
               "\"autoscale\":{\"max\":3,\"memory\":\"90%\",\"metric\":{\"http\":{\"port\":9,"
               "\"path\":\"/m\"},\"target\":1}}}");
}

/* A message with only a name and an image stands for a spec with every default. */
static void test_absent_submessages(void **state)
{
    (void)state;
    Gantry__WorkloadSpec msg = GANTRY__WORKLOAD_SPEC__INIT;
    msg.name = "web";
    msg.image = "busybox";
    msg.replicas = 2;
    msg.stop_grace_ms = 5000;
    struct gy_spec s;
    struct gy_error err;
    assert_int_equal(gy_spec_from_proto(&msg, &s, &err), 0);
    assert_int_equal(s.replicas, 2);
    assert_int_equal(s.resources.cpu_millis, 100);
    assert_int_equal(s.update.max_surge, 1);
    assert_int_equal(s.health.interval_ms, 10000);
    assert_false(s.autoscale.enabled);
    assert_int_equal(s.placement.spread, GY_SPREAD_NODE);
    gy_spec_free(&s);
}

static void expect_refused(Gantry__WorkloadSpec *msg, const char *needle)
{
    struct gy_spec s;
    struct gy_error err;
    assert_int_equal(gy_spec_from_proto(msg, &s, &err), -GY_EINVAL);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", needle, err.msg);
    gy_spec_free(&s);
}

static void test_bad_messages(void **state)
{
    (void)state;
    Gantry__WorkloadSpec msg = GANTRY__WORKLOAD_SPEC__INIT;
    msg.name = "web";
    msg.image = "busybox";
    msg.replicas = 20000;
    expect_refused(&msg, "replicas: must be between 0 and 10000");
    msg.replicas = 1;
    msg.restart = (Gantry__RestartPolicy)9;
    expect_refused(&msg, "restart: unknown policy 9");
    msg.restart = GANTRY__RESTART_POLICY__RESTART_NEVER;
    Gantry__Placement placement = GANTRY__PLACEMENT__INIT;
    placement.spread = "diagonal";
    msg.placement = &placement;
    expect_refused(&msg, "placement.spread: \"diagonal\" is not one of");
    placement.spread = "zone";
    msg.name = "Not A Label";
    expect_refused(&msg, "name: \"Not A Label\" is not a DNS label");
    msg.name = "";
    expect_refused(&msg, "name: required field is missing");
    msg.name = "web";
    Gantry__UpdateStrategy update = GANTRY__UPDATE_STRATEGY__INIT;
    msg.update = &update;
    expect_refused(&msg, "update: max_surge and max_unavailable must not both be 0");
}

/* ports travel as repeated Port (field 17) in the order written, name "" for none, and come
 * back equal; what the wire carries is checked like any other field. */
static void test_ports(void **state)
{
    (void)state;
    round_trip("{\"name\":\"web\",\"image\":\"busybox\",\"ports\":[{\"container_port\":80,"
               "\"host_port\":8080,\"name\":\"http\"},{\"container_port\":53,\"protocol\":"
               "\"udp\",\"host_port\":53},{\"container_port\":9090}]}");
    struct gy_spec a;
    decode_json("{\"name\":\"web\",\"image\":\"busybox\",\"ports\":[{\"container_port\":80,"
                "\"host_port\":8080,\"name\":\"http\"},{\"container_port\":53,\"protocol\":"
                "\"udp\"}]}",
                &a);
    Gantry__WorkloadSpec *msg = gy_spec_to_proto(&a);
    assert_non_null(msg);
    assert_int_equal(msg->n_ports, 2);
    assert_string_equal(msg->ports[0]->name, "http");
    assert_int_equal(msg->ports[0]->container_port, 80);
    assert_int_equal(msg->ports[0]->protocol, GANTRY__PROTOCOL__PROTOCOL_TCP);
    assert_int_equal(msg->ports[0]->host_port, 8080);
    assert_string_equal(msg->ports[1]->name, "");
    assert_int_equal(msg->ports[1]->container_port, 53);
    assert_int_equal(msg->ports[1]->protocol, GANTRY__PROTOCOL__PROTOCOL_UDP);
    assert_int_equal(msg->ports[1]->host_port, 0);
    /* Field 17 on the wire: tag (17 << 3 | 2) is the varint 0x8a 0x01. */
    size_t len = gantry__workload_spec__get_packed_size(msg);
    uint8_t *buf = malloc(len);
    gantry__workload_spec__pack(msg, buf);
    bool tagged = false;
    for (size_t i = 0; i + 1 < len && !tagged; i++)
        tagged = buf[i] == 0x8a && buf[i + 1] == 0x01;
    assert_true(tagged);
    free(buf);
    gy_spec_proto_free(msg);

    /* A change of ports changes the bytes, so the leader makes a new generation of it. */
    Gantry__WorkloadSpec *m1 = gy_spec_to_proto(&a);
    a.ports[0].host_port = 8081;
    Gantry__WorkloadSpec *m2 = gy_spec_to_proto(&a);
    size_t l1 = gantry__workload_spec__get_packed_size(m1);
    size_t l2 = gantry__workload_spec__get_packed_size(m2);
    uint8_t *b1 = malloc(l1), *b2 = malloc(l2);
    gantry__workload_spec__pack(m1, b1);
    gantry__workload_spec__pack(m2, b2);
    assert_true(l1 != l2 || memcmp(b1, b2, l1) != 0);
    free(b1);
    free(b2);
    gy_spec_proto_free(m1);
    gy_spec_proto_free(m2);
    gy_spec_free(&a);

    /* Refused from the wire. */
    Gantry__WorkloadSpec bad = GANTRY__WORKLOAD_SPEC__INIT;
    bad.name = "web";
    bad.image = "busybox";
    Gantry__Port p0 = GANTRY__PORT__INIT, p1 = GANTRY__PORT__INIT;
    Gantry__Port *ports[2] = {&p0, &p1};
    bad.ports = ports;
    bad.n_ports = 2;
    p0.container_port = 80;
    p0.host_port = 8080;
    p1.container_port = 81;
    p1.host_port = 8080;
    expect_refused(&bad, "workload spec \"web\": ports[1].host_port: host port 8080/tcp is "
                         "already published by ports[0]");
    p1.protocol = GANTRY__PROTOCOL__PROTOCOL_UDP;
    struct gy_spec ok;
    struct gy_error err;
    assert_int_equal(gy_spec_from_proto(&bad, &ok, &err), 0);
    assert_int_equal(ok.n_ports, 2);
    assert_null(ok.ports[0].name); /* "" on the wire is no name */
    assert_int_equal(ok.ports[1].protocol, GY_PROTOCOL_UDP);
    gy_spec_free(&ok);
    p1.protocol = (Gantry__Protocol)5;
    expect_refused(&bad, "workload spec \"web\": ports[1].protocol: unknown protocol 5");
    p1.protocol = GANTRY__PROTOCOL__PROTOCOL_TCP;
    p1.host_port = 0;
    p1.container_port = 70000;
    expect_refused(&bad, "ports[1].container_port: must be a port number between 1 and 65535 "
                         "(got 70000)");
    p1.container_port = 81;
    p1.host_port = 65536;
    expect_refused(&bad, "ports[1].host_port: must be a port number between 1 and 65535 "
                         "(got 65536)");
    p1.host_port = 0;
    p1.name = "Bad Name";
    expect_refused(&bad, "ports[1].name: \"Bad Name\" is not a port name");
    p0.name = "http";
    p1.name = "http";
    expect_refused(&bad, "ports[1].name: port name \"http\" is already used by ports[0]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_absent_submessages),
        cmocka_unit_test(test_bad_messages),
        cmocka_unit_test(test_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
