/* Unit tests of the workload spec model: defaults, the JSON decoder with every rule and its
 * key paths, the canonical encoder and round trips, copies, suggestions and positions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"

/* Decodes JSON text; fails the test when the text itself is not JSON. */
static int decode(const char *text, struct gy_spec *spec, struct gy_spec_problems *problems)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (doc == NULL)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    memset(problems, 0, sizeof(*problems));
    int rc = gy_spec_from_json(doc, NULL, spec, problems);
    json_decref(doc);
    return rc;
}

static void print_problems(const struct gy_spec_problems *problems)
{
    for (size_t i = 0; i < problems->n; i++)
        fprintf(stderr, "  problem: %s: %s\n", problems->items[i].path, problems->items[i].message);
}

/* Asserts that the document decodes without any problem; the caller frees spec. */
static void decode_ok(const char *text, struct gy_spec *spec)
{
    struct gy_spec_problems problems;
    int rc = decode(text, spec, &problems);
    if (rc != 0 || problems.n != 0) {
        print_problems(&problems);
        fail_msg("expected %s to be valid", text);
    }
    gy_spec_problems_free(&problems);
}

static bool has_problem(const struct gy_spec_problems *problems, const char *path,
                        const char *needle)
{
    for (size_t i = 0; i < problems->n; i++)
        if (strcmp(problems->items[i].path, path) == 0 &&
            strstr(problems->items[i].message, needle) != NULL)
            return true;
    return false;
}

/* Asserts that the document is rejected with a problem at path whose message contains
 * needle. */
static void expect_problem(const char *text, const char *path, const char *needle)
{
    struct gy_spec spec;
    struct gy_spec_problems problems;
    int rc = decode(text, &spec, &problems);
    if (rc != -GY_EINVAL || !has_problem(&problems, path, needle)) {
        print_problems(&problems);
        fail_msg("expected a problem at \"%s\" containing \"%s\" for %s (rc %d)", path, needle,
                 text, rc);
    }
    gy_spec_problems_free(&problems);
    gy_spec_free(&spec);
}

#define BASE "\"name\":\"web\",\"image\":\"busybox\""

static void test_defaults(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE "}", &s);
    assert_string_equal(s.name, "web");
    assert_string_equal(s.image, "busybox");
    assert_int_equal(s.command.n, 0);
    assert_int_equal(s.n_env, 0);
    assert_int_equal(s.replicas, 1);
    assert_int_equal(s.resources.cpu_millis, 100);
    assert_int_equal(s.resources.memory_bytes, 64 << 20);
    assert_int_equal(s.resources.pids, 0);
    assert_int_equal(s.restart, GY_RESTART_ALWAYS);
    assert_int_equal(s.health.exec.n, 0);
    assert_int_equal(s.health.http_port, 0);
    assert_int_equal(s.health.tcp_port, 0);
    assert_int_equal(s.health.interval_ms, 10000);
    assert_int_equal(s.health.timeout_ms, 1000);
    assert_int_equal(s.health.failure_threshold, 3);
    assert_int_equal(s.placement.spread, GY_SPREAD_NODE);
    assert_int_equal(s.placement.strategy, GY_STRATEGY_SPREAD);
    assert_false(s.autoscale.enabled);
    assert_int_equal(s.update.max_surge, 1);
    assert_int_equal(s.update.max_unavailable, 0);
    assert_int_equal(s.stop_grace_ms, 10000);
    gy_spec_free(&s);
}

static const char *const full_spec =
    "{" BASE ",\"command\":[\"httpd\",\"-f\",\"-p\",\"8080\"],"
    "\"env\":{\"GREETING\":\"hello\",\"A_PORT\":8080,\"DEBUG\":true},"
    "\"replicas\":3,\"resources\":{\"cpu\":\"250m\",\"memory\":\"64Mi\",\"pids\":128},"
    "\"restart\":\"on-failure\","
    "\"health\":{\"exec\":[\"wget\",\"-q\",\"-O-\",\"http://127.0.0.1:8080/\"],"
    "\"interval\":\"2s\",\"timeout\":\"1s\",\"failure_threshold\":5,\"start_period\":\"1m30s\"},"
    "\"placement\":{\"clouds\":[\"private\",\"public\"],\"spread\":\"zone\","
    "\"constraints\":[\"disk==ssd\",\"  arch !=  arm64 \"],\"strategy\":\"binpack\"},"
    "\"autoscale\":{\"min\":0,\"max\":10,\"cpu\":\"70%\",\"memory\":80,"
    "\"metric\":{\"http\":{\"port\":9100,\"path\":\"/queue\"},\"target\":12.5},"
    "\"scale_down_after\":\"30s\",\"idle_after\":\"10m\"},"
    "\"update\":{\"max_surge\":0,\"max_unavailable\":2},\"stop_grace\":\"1.5s\"}";

static void test_full_spec(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok(full_spec, &s);
    assert_int_equal(s.command.n, 4);
    assert_string_equal(s.command.items[3], "8080");
    assert_int_equal(s.n_env, 3);
    /* Sorted by name; numbers and booleans become their text. */
    assert_string_equal(s.env[0].name, "A_PORT");
    assert_string_equal(s.env[0].value, "8080");
    assert_string_equal(s.env[1].name, "DEBUG");
    assert_string_equal(s.env[1].value, "true");
    assert_string_equal(s.env[2].name, "GREETING");
    assert_int_equal(s.replicas, 3);
    assert_int_equal(s.resources.cpu_millis, 250);
    assert_int_equal(s.resources.memory_bytes, 64 << 20);
    assert_int_equal(s.resources.pids, 128);
    assert_int_equal(s.restart, GY_RESTART_ON_FAILURE);
    assert_int_equal(s.health.exec.n, 4);
    assert_int_equal(s.health.interval_ms, 2000);
    assert_int_equal(s.health.failure_threshold, 5);
    assert_int_equal(s.health.start_period_ms, 90000);
    assert_int_equal(s.placement.clouds.n, 2);
    assert_string_equal(s.placement.clouds.items[1], "public");
    assert_int_equal(s.placement.spread, GY_SPREAD_ZONE);
    assert_string_equal(s.placement.constraints.items[0], "disk == ssd");
    assert_string_equal(s.placement.constraints.items[1], "arch != arm64");
    assert_int_equal(s.placement.strategy, GY_STRATEGY_BINPACK);
    assert_true(s.autoscale.enabled);
    assert_int_equal(s.autoscale.min, 0);
    assert_int_equal(s.autoscale.max, 10);
    assert_int_equal(s.autoscale.cpu_percent, 70);
    assert_int_equal(s.autoscale.memory_percent, 80);
    assert_true(s.autoscale.has_metric);
    assert_int_equal(s.autoscale.metric.http_port, 9100);
    assert_string_equal(s.autoscale.metric.http_path, "/queue");
    assert_true(s.autoscale.metric.target == 12.5);
    assert_int_equal(s.autoscale.scale_down_after_ms, 30000);
    assert_int_equal(s.autoscale.idle_after_ms, 600000);
    assert_int_equal(s.update.max_surge, 0);
    assert_int_equal(s.update.max_unavailable, 2);
    assert_int_equal(s.stop_grace_ms, 1500);
    gy_spec_free(&s);
}

static void test_other_health_kinds(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE ",\"health\":{\"http\":{\"port\":8080}}}", &s);
    assert_int_equal(s.health.http_port, 8080);
    assert_string_equal(s.health.http_path, "/");
    gy_spec_free(&s);
    decode_ok("{" BASE ",\"health\":{\"tcp\":{\"port\":5432},\"timeout\":\"500ms\"}}", &s);
    assert_int_equal(s.health.tcp_port, 5432);
    assert_int_equal(s.health.timeout_ms, 500);
    gy_spec_free(&s);
    decode_ok("{" BASE ",\"health\":null,\"env\":null,\"autoscale\":\"off\"}", &s);
    assert_int_equal(s.health.tcp_port, 0);
    assert_false(s.autoscale.enabled);
    gy_spec_free(&s);
    decode_ok("{" BASE ",\"autoscale\":{\"max\":4,\"metric\":{\"exec\":[\"qlen\"],\"target\":3}}}",
              &s);
    assert_true(s.autoscale.enabled);
    assert_int_equal(s.autoscale.min, 1);
    assert_int_equal(s.autoscale.scale_down_after_ms, 30000);
    assert_string_equal(s.autoscale.metric.exec.items[0], "qlen");
    assert_true(s.autoscale.metric.target == 3.0);
    gy_spec_free(&s);
}

static void test_number_quantities(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE ",\"resources\":{\"cpu\":0.5,\"memory\":8388608},\"stop_grace\":0}", &s);
    assert_int_equal(s.resources.cpu_millis, 500);
    assert_int_equal(s.resources.memory_bytes, 8 << 20);
    assert_int_equal(s.stop_grace_ms, 0);
    gy_spec_free(&s);
    decode_ok("{" BASE ",\"resources\":{\"cpu\":2,\"memory\":\"1.5Gi\"}}", &s);
    assert_int_equal(s.resources.cpu_millis, 2000);
    assert_int_equal(s.resources.memory_bytes, INT64_C(3) << 29);
    gy_spec_free(&s);
    expect_problem("{" BASE ",\"resources\":{\"cpu\":0.0005}}", "resources.cpu",
                   "finer than the smallest unit");
    expect_problem("{" BASE ",\"resources\":{\"cpu\":-1}}", "resources.cpu", "out of range");
    expect_problem("{" BASE ",\"resources\":{\"memory\":1.5}}", "resources.memory",
                   "whole number of bytes");
    expect_problem("{" BASE ",\"stop_grace\":5}", "stop_grace", "needs a unit: write \"5s\"");
    expect_problem("{" BASE ",\"stop_grace\":1.5}", "stop_grace", "a duration like");
}

static void test_round_trip(void **state)
{
    (void)state;
    const char *docs[] = {
        full_spec,
        "{" BASE "}",
        "{" BASE ",\"health\":{\"http\":{\"port\":80,\"path\":\"/healthz\"}},"
        "\"autoscale\":{\"max\":3,\"cpu\":50}}",
        "{" BASE ",\"health\":{\"tcp\":{\"port\":1}},\"resources\":{\"cpu\":\"1.5\","
        "\"memory\":\"10000001\"},\"stop_grace\":\"1h2m3.004s\"}",
        "{" BASE ",\"autoscale\":{\"max\":3,\"metric\":{\"exec\":[\"a\",\"b\"],\"target\":0.25}}}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct gy_spec a, b;
        decode_ok(docs[i], &a);
        json_t *ja = gy_spec_to_json(&a);
        assert_non_null(ja);
        char *ta = json_dumps(ja, JSON_SORT_KEYS | JSON_COMPACT);
        struct gy_spec_problems problems = {0};
        int rc = gy_spec_from_json(ja, NULL, &b, &problems);
        if (rc != 0) {
            print_problems(&problems);
            fail_msg("canonical form does not decode: %s", ta);
        }
        assert_true(gy_spec_equal(&a, &b));
        json_t *jb = gy_spec_to_json(&b);
        char *tb = json_dumps(jb, JSON_SORT_KEYS | JSON_COMPACT);
        assert_string_equal(ta, tb);
        free(ta);
        free(tb);
        json_decref(ja);
        json_decref(jb);
        gy_spec_free(&a);
        gy_spec_free(&b);
    }
}

/* image: an imported root filesystem's name or a reference a node can pull, one rule with
 * the agent's. */
static void test_image_names(void **state)
{
    (void)state;
    static const char *const good[] = {
        "busybox", "my_rootfs:v1", "library/nginx:1.25", "127.0.0.1:5000/test/app:1",
        "registry.example/team/web@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct gy_spec s;
        char *text = NULL;
        assert_true(asprintf(&text, "{\"name\":\"web\",\"image\":\"%s\"}", good[i]) > 0);
        decode_ok(text, &s);
        free(text);
        gy_spec_free(&s);
    }
    expect_problem("{\"name\":\"web\",\"image\":\"Team/App\"}", "image", "lower-case");
    expect_problem("{\"name\":\"web\",\"image\":\"a/../b\"}", "image",
                   "nor is it the name of an imported root filesystem");
    expect_problem("{\"name\":\"web\",\"image\":\"x@sha256:12\"}", "image", "column");
}

/* args: Kubernetes' args (the image's Cmd replaced), empty words allowed, shown only when
 * given, compared by gy_spec_equal. */
static void test_args(void **state)
{
    (void)state;
    struct gy_spec s, t;
    decode_ok("{" BASE ",\"args\":[\"-c\",\"\"]}", &s);
    assert_int_equal(s.args.n, 2);
    assert_string_equal(s.args.items[0], "-c");
    assert_string_equal(s.args.items[1], "");
    json_t *j = gy_spec_to_json(&s);
    char *text = json_dumps(json_object_get(j, "args"), JSON_COMPACT);
    assert_string_equal(text, "[\"-c\",\"\"]");
    free(text);
    json_decref(j);
    decode_ok("{" BASE "}", &t);
    assert_false(gy_spec_equal(&s, &t));
    gy_spec_free(&t);
    assert_int_equal(gy_spec_copy(&t, &s), 0);
    assert_true(gy_spec_equal(&s, &t));
    gy_spec_free(&t);
    gy_spec_free(&s);
}

/* The canonical form of a spec with every default, byte for byte. */
static void test_canonical_defaults(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE "}", &s);
    json_t *j = gy_spec_to_json(&s);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(
        text, "{\"autoscale\":\"off\",\"command\":[],\"env\":{},\"health\":null,\"image\":"
              "\"busybox\",\"name\":\"web\",\"placement\":{\"clouds\":[],\"constraints\":[],"
              "\"spread\":\"node\",\"strategy\":\"spread\"},\"replicas\":1,\"resources\":{"
              "\"cpu\":\"100m\",\"memory\":\"64Mi\",\"pids\":0},\"restart\":\"always\","
              "\"stop_grace\":\"10s\",\"update\":{\"max_surge\":1,\"max_unavailable\":0}}");
    free(text);
    json_decref(j);
    gy_spec_free(&s);
}

/* Two spellings of the same spec serialize byte for byte the same. */
static void test_canonical(void **state)
{
    (void)state;
    struct gy_spec a, b;
    decode_ok("{\"image\":\"busybox\",\"name\":\"web\",\"resources\":{\"memory\":67108864,"
              "\"cpu\":0.25},\"env\":{\"B\":\"2\",\"A\":\"1\"},\"stop_grace\":\"10000ms\","
              "\"placement\":{\"constraints\":[\"disk==ssd\"]}}",
              &a);
    decode_ok("{" BASE ",\"env\":{\"A\":\"1\",\"B\":\"2\"},\"resources\":{\"cpu\":\"250m\","
              "\"memory\":\"64Mi\"},\"restart\":\"always\",\"placement\":{\"constraints\":"
              "[\"disk == ssd\"]}}",
              &b);
    json_t *ja = gy_spec_to_json(&a), *jb = gy_spec_to_json(&b);
    char *ta = json_dumps(ja, JSON_SORT_KEYS | JSON_COMPACT);
    char *tb = json_dumps(jb, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(ta, tb);
    assert_non_null(strstr(ta, "\"cpu\":\"250m\""));
    assert_non_null(strstr(ta, "\"memory\":\"64Mi\""));
    assert_non_null(strstr(ta, "\"stop_grace\":\"10s\""));
    assert_non_null(strstr(ta, "\"autoscale\":\"off\""));
    assert_true(gy_spec_equal(&a, &b));
    b.replicas = 2;
    assert_false(gy_spec_equal(&a, &b));
    free(ta);
    free(tb);
    json_decref(ja);
    json_decref(jb);
    gy_spec_free(&a);
    gy_spec_free(&b);
}

static void test_required(void **state)
{
    (void)state;
    expect_problem("{\"image\":\"busybox\"}", "name", "required field is missing");
    expect_problem("{\"name\":\"web\"}", "image", "required field is missing");
    expect_problem("{\"name\":null,\"image\":\"x\"}", "name", "required field is missing");
    expect_problem("{" BASE ",\"autoscale\":{\"cpu\":\"50%\"}}", "autoscale.max",
                   "required field is missing");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{}}}", "health.tcp.port",
                   "required field is missing");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"metric\":{\"exec\":[\"x\"]}}}",
                   "autoscale.metric.target", "required field is missing");
    expect_problem("[1]", "", "must be an object, not a list");
}

static void test_name(void **state)
{
    (void)state;
    const char *good[] = {
        "a", "web",   "web-1",
        "0", "a-b-c", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(gy_spec_name_valid(good[i]));
    const char *bad[] = {
        "",    "Web", "-a",  "a-",
        "a_b", "a.b", "a b", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(gy_spec_name_valid(bad[i]));
    assert_false(gy_spec_name_valid(NULL));
    expect_problem("{\"name\":\"Web_1\",\"image\":\"x\"}", "name", "is not a DNS label");
    expect_problem("{\"name\":\"\",\"image\":\"x\"}", "name", "is not a DNS label");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_problem("{" BASE ",\"replica\":3}", "replica", "did you mean 'replicas'?");
    expect_problem("{" BASE ",\"resources\":{\"memroy\":\"64Mi\"}}", "resources.memroy",
                   "did you mean 'memory'?");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{\"port\":1},\"intervall\":\"1s\"}}",
                   "health.intervall", "did you mean 'interval'?");
    expect_problem("{" BASE ",\"placement\":{\"cloud\":[\"a\"]}}", "placement.cloud",
                   "did you mean 'clouds'?");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"cpu\":5,\"scale_down\":\"1s\"}}",
                   "autoscale.scale_down", "unknown key");
    expect_problem("{" BASE ",\"update\":{\"maxSurge\":1}}", "update.maxSurge",
                   "did you mean 'max_surge'?");
    expect_problem("{" BASE ",\"volumes\":[]}", "volumes", "unknown key (allowed here: name, ");
}

static void test_suggest(void **state)
{
    (void)state;
    const char *keys[] = {"name", "image", "replicas", "resources", "restart"};
    assert_string_equal(gy_spec_suggest("replica", keys, 5), "replicas");
    assert_string_equal(gy_spec_suggest("Replicas", keys, 5), "replicas");
    assert_string_equal(gy_spec_suggest("imgae", keys, 5), "image");
    assert_string_equal(gy_spec_suggest("restrat", keys, 5), "restart");
    assert_string_equal(gy_spec_suggest("nme", keys, 5), "name");
    assert_null(gy_spec_suggest("volumes", keys, 5));
    assert_null(gy_spec_suggest("x", keys, 5));
    assert_null(gy_spec_suggest("", keys, 5));
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_problem("{" BASE ",\"replicas\":\"3\"}", "replicas",
                   "must be a whole number, not a string");
    expect_problem("{" BASE ",\"replicas\":1.5}", "replicas", "must be a whole number");
    expect_problem("{\"name\":\"web\",\"image\":5}", "image", "must be a string, not an integer");
    expect_problem("{" BASE ",\"command\":\"ls -l\"}", "command", "must be a list of strings");
    expect_problem("{" BASE ",\"command\":[\"ls\",7]}", "command[1]", "must be a string");
    expect_problem("{" BASE ",\"env\":[\"A=1\"]}", "env", "must be an object, not a list");
    expect_problem("{" BASE ",\"env\":{\"A\":[1]}}", "env.A", "must be a string");
    expect_problem("{" BASE ",\"env\":{\"A\":1.5}}", "env.A", "quote the value");
    expect_problem("{" BASE ",\"resources\":\"big\"}", "resources", "must be an object");
    expect_problem("{" BASE ",\"resources\":{\"cpu\":true}}", "resources.cpu",
                   "must be a cpu quantity");
    expect_problem("{" BASE ",\"restart\":1}", "restart",
                   "must be one of always, on-failure or never");
    expect_problem("{" BASE ",\"placement\":{\"clouds\":\"public\"}}", "placement.clouds",
                   "must be a list of strings");
    expect_problem("{" BASE ",\"autoscale\":true}", "autoscale", "an object or \"off\"");
    expect_problem("{" BASE ",\"autoscale\":\"on\"}", "autoscale", "an object or \"off\"");
    expect_problem("{" BASE ",\"health\":{\"exec\":\"true\"}}", "health.exec",
                   "must be a list of strings");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"metric\":{\"exec\":[\"a\"],"
                   "\"target\":\"5\"}}}",
                   "autoscale.metric.target", "must be a number");
}

static void test_bad_quantities(void **state)
{
    (void)state;
    expect_problem("{" BASE ",\"resources\":{\"cpu\":\"abc\"}}", "resources.cpu",
                   "invalid cpu quantity");
    expect_problem("{" BASE ",\"resources\":{\"memory\":\"64Q\"}}", "resources.memory",
                   "unknown unit");
    expect_problem("{" BASE ",\"stop_grace\":\"5x\"}", "stop_grace", "unknown unit");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{\"port\":1},\"interval\":\"soon\"}}",
                   "health.interval", "invalid duration");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"cpu\":\"lots\"}}", "autoscale.cpu",
                   "invalid percentage");
}

static void test_ranges(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE ",\"replicas\":0}", &s);
    gy_spec_free(&s);
    decode_ok("{" BASE ",\"replicas\":10000}", &s);
    gy_spec_free(&s);
    expect_problem("{" BASE ",\"replicas\":10001}", "replicas", "between 0 and 10000");
    expect_problem("{" BASE ",\"replicas\":-1}", "replicas", "between 0 and 10000");
    expect_problem("{" BASE ",\"resources\":{\"cpu\":\"0\"}}", "resources.cpu", "greater than 0");
    expect_problem("{" BASE ",\"resources\":{\"memory\":\"1Mi\"}}", "resources.memory",
                   "at least 4Mi");
    expect_problem("{" BASE ",\"resources\":{\"memory\":1024}}", "resources.memory",
                   "at least 4Mi");
    expect_problem("{" BASE ",\"resources\":{\"pids\":-5}}", "resources.pids", "between 0");
    expect_problem("{" BASE ",\"resources\":{\"pids\":5000000}}", "resources.pids", "between 0");
    expect_problem("{" BASE ",\"stop_grace\":\"721h\"}", "stop_grace", "at most 720h");
    expect_problem("{" BASE ",\"update\":{\"max_surge\":0}}", "update", "must not both be 0");
    expect_problem("{" BASE ",\"update\":{\"max_unavailable\":10001}}", "update.max_unavailable",
                   "between 0 and 10000");
}

static void test_enums(void **state)
{
    (void)state;
    expect_problem("{" BASE ",\"restart\":\"alway\"}", "restart",
                   "\"alway\" is not one of always, on-failure or never; did you mean 'always'?");
    expect_problem("{" BASE ",\"restart\":\"sometimes\"}", "restart",
                   "is not one of always, on-failure or never");
    expect_problem("{" BASE ",\"placement\":{\"spread\":\"region\"}}", "placement.spread",
                   "is not one of node, zone or cloud");
    expect_problem("{" BASE ",\"placement\":{\"strategy\":\"binpak\"}}", "placement.strategy",
                   "did you mean 'binpack'?");
    enum gy_restart r;
    assert_true(gy_restart_parse("never", &r));
    assert_int_equal(r, GY_RESTART_NEVER);
    assert_false(gy_restart_parse("Never", &r));
    assert_string_equal(gy_restart_name(GY_RESTART_ON_FAILURE), "on-failure");
    enum gy_spread sp;
    assert_true(gy_spread_parse("cloud", &sp));
    assert_string_equal(gy_spread_name(sp), "cloud");
    enum gy_strategy st;
    assert_true(gy_strategy_parse("binpack", &st));
    assert_false(gy_strategy_parse("pack", &st));
    assert_string_equal(gy_strategy_name(GY_STRATEGY_SPREAD), "spread");
}

static void test_command_and_env(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE ",\"command\":[]}", &s); /* empty: the image's default command */
    assert_int_equal(s.command.n, 0);
    gy_spec_free(&s);
    expect_problem("{" BASE ",\"command\":[\"ls\",\"\"]}", "command[1]", "non-empty string");
    expect_problem("{" BASE ",\"env\":{\"1A\":\"x\"}}", "env.1A",
                   "not a valid environment variable name");
    expect_problem("{" BASE ",\"env\":{\"A-B\":\"x\"}}", "env.A-B",
                   "not a valid environment variable name");
    expect_problem("{" BASE ",\"env\":{\"\":\"x\"}}", "env.", "not a valid environment");
    assert_true(gy_env_name_valid("_A1"));
    assert_false(gy_env_name_valid("A=B"));
    expect_problem("{\"name\":\"web\",\"image\":\"bad image\"}", "image", "blanks");
    expect_problem("{\"name\":\"web\",\"image\":\"\"}", "image", "must not be empty");
}

static void test_health_rules(void **state)
{
    (void)state;
    expect_problem("{" BASE ",\"health\":{\"exec\":[\"true\"],\"tcp\":{\"port\":1}}}", "health",
                   "exactly one of exec, http or tcp");
    expect_problem("{" BASE ",\"health\":{\"interval\":\"1s\"}}", "health",
                   "needs one of exec, http or tcp");
    expect_problem("{" BASE ",\"health\":{\"exec\":[]}}", "health.exec", "must list a command");
    expect_problem("{" BASE ",\"health\":{\"http\":{\"port\":0}}}", "health.http.port",
                   "between 1 and 65535");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{\"port\":70000}}}", "health.tcp.port",
                   "between 1 and 65535");
    expect_problem("{" BASE ",\"health\":{\"http\":{\"port\":80,\"path\":\"x\"}}}",
                   "health.http.path", "must start with '/'");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{\"port\":1},\"interval\":\"0s\"}}",
                   "health.interval", "greater than 0");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{\"port\":1},\"failure_threshold\":0}}",
                   "health.failure_threshold", "between 1 and 1000");
}

static void test_placement_rules(void **state)
{
    (void)state;
    expect_problem("{" BASE ",\"placement\":{\"clouds\":[\"a\",\"\"]}}", "placement.clouds[1]",
                   "1 to 63 characters");
    expect_problem("{" BASE ",\"placement\":{\"clouds\":[\"a\",\"b\",\"a\"]}}",
                   "placement.clouds[2]", "listed twice");
    expect_problem("{" BASE ",\"placement\":{\"constraints\":[\"disk == ssd\",\"disk = ssd\"]}}",
                   "placement.constraints[1]", "has no operator");
    expect_problem("{" BASE ",\"placement\":{\"constraints\":[\"disk == \"]}}",
                   "placement.constraints[0]", "label value must be 1 to 63");
    expect_problem("{" BASE ",\"placement\":{\"constraints\":[\"di sk == ssd\"]}}",
                   "placement.constraints[0]", "label key may hold only");
    struct gy_constraint c;
    struct gy_error err;
    assert_int_equal(gy_constraint_parse("topology/zone!=eu-1a", &c, &err), 0);
    assert_string_equal(c.key, "topology/zone");
    assert_string_equal(c.value, "eu-1a");
    assert_true(c.negated);
    gy_constraint_free(&c);
    assert_int_equal(gy_constraint_parse("k==v==w", &c, &err), -GY_EINVAL);
}

static void test_autoscale_rules(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok("{" BASE ",\"autoscale\":{\"min\":0,\"max\":1,\"cpu\":1,\"idle_after\":\"5m\"}}", &s);
    gy_spec_free(&s);
    decode_ok("{" BASE ",\"autoscale\":{\"min\":10000,\"max\":10000,\"memory\":\"100%\"}}", &s);
    gy_spec_free(&s);
    expect_problem("{" BASE ",\"autoscale\":{\"min\":5,\"max\":3,\"cpu\":\"70%\"}}",
                   "autoscale.min", "must not be greater than max (5 > 3)");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":0,\"cpu\":\"70%\"}}", "autoscale.max",
                   "between 1 and 10000");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":10001,\"cpu\":\"70%\"}}", "autoscale.max",
                   "between 1 and 10000");
    expect_problem("{" BASE ",\"autoscale\":{\"min\":0,\"max\":3,\"cpu\":\"70%\"}}",
                   "autoscale.min", "only together with idle_after");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":3,\"cpu\":\"150%\"}}", "autoscale.cpu",
                   "between 1% and 100%");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":3,\"memory\":0}}", "autoscale.memory",
                   "between 1% and 100%");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":3}}", "autoscale",
                   "needs a target: cpu, memory or metric");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":3,\"metric\":{\"exec\":[\"a\"],\"http\":"
                   "{\"port\":1},\"target\":1}}}",
                   "autoscale.metric", "exactly one of exec or http");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":3,\"metric\":{\"exec\":[\"a\"],"
                   "\"target\":0}}}",
                   "autoscale.metric.target", "greater than 0");
}

/* Every problem of a document is reported, each once. */
static void test_all_problems(void **state)
{
    (void)state;
    struct gy_spec s;
    struct gy_spec_problems problems;
    int rc = decode("{\"name\":\"Bad_Name\",\"replicas\":-1,\"restart\":\"sometimes\","
                    "\"resources\":{\"memory\":\"1Mi\",\"cpu\":\"x\"},\"colour\":\"red\"}",
                    &s, &problems);
    assert_int_equal(rc, -GY_EINVAL);
    if (problems.n != 7)
        print_problems(&problems);
    assert_int_equal(problems.n, 7);
    assert_true(has_problem(&problems, "name", "DNS label"));
    assert_true(has_problem(&problems, "image", "required"));
    assert_true(has_problem(&problems, "replicas", "between"));
    assert_true(has_problem(&problems, "restart", "not one of"));
    assert_true(has_problem(&problems, "resources.memory", "at least 4Mi"));
    assert_true(has_problem(&problems, "resources.cpu", "invalid cpu"));
    assert_true(has_problem(&problems, "colour", "unknown key"));
    for (size_t i = 0; i < problems.n; i++)
        assert_int_equal(problems.items[i].line, 0);
    gy_spec_problems_free(&problems);
    gy_spec_free(&s);
}

/* The rules hold for specs built in code too (the API and Raft paths), not only JSON. */
static void test_validate_struct(void **state)
{
    (void)state;
    struct gy_spec s;
    gy_spec_init(&s);
    struct gy_spec_problems problems = {0};
    assert_int_equal(gy_spec_validate(&s, NULL, &problems), -GY_EINVAL);
    assert_true(has_problem(&problems, "name", "required"));
    assert_true(has_problem(&problems, "image", "required"));
    gy_spec_problems_free(&problems);

    s.name = strdup("web");
    s.image = strdup("busybox");
    assert_int_equal(gy_spec_validate(&s, NULL, &problems), 0);
    assert_int_equal(problems.n, 0);

    s.restart = (enum gy_restart)7;
    s.placement.spread = (enum gy_spread)9;
    s.health.tcp_port = 80;
    s.health.http_port = 81;
    s.autoscale.enabled = true;
    s.autoscale.max = 2;
    s.autoscale.min = 1;
    s.env = calloc(2, sizeof(s.env[0]));
    s.n_env = 2;
    s.env[0].name = strdup("B");
    s.env[0].value = strdup("1");
    s.env[1].name = strdup("A");
    s.env[1].value = strdup("2");
    assert_int_equal(gy_spec_validate(&s, NULL, &problems), -GY_EINVAL);
    assert_true(has_problem(&problems, "restart", "one of always"));
    assert_true(has_problem(&problems, "placement.spread", "one of node"));
    assert_true(has_problem(&problems, "health", "exactly one"));
    assert_true(has_problem(&problems, "autoscale", "needs a target"));
    assert_true(has_problem(&problems, "env.A", "out of order"));
    gy_spec_problems_free(&problems);
    gy_spec_free(&s);
}

static void test_copy(void **state)
{
    (void)state;
    struct gy_spec a, b;
    decode_ok(full_spec, &a);
    assert_int_equal(gy_spec_copy(&b, &a), 0);
    assert_true(gy_spec_equal(&a, &b));
    assert_ptr_not_equal(a.name, b.name);
    assert_ptr_not_equal(a.env, b.env);
    assert_ptr_not_equal(a.autoscale.metric.http_path, b.autoscale.metric.http_path);
    b.env[1].value[0] = 'X';
    assert_false(gy_spec_equal(&a, &b));
    gy_spec_free(&a);
    gy_spec_free(&b);
}

static void test_positions_and_format(void **state)
{
    (void)state;
    struct gy_spec_positions *pos = gy_spec_positions_new();
    assert_non_null(pos);
    assert_int_equal(gy_spec_positions_add(pos, "", 1, 1), 0);
    assert_int_equal(gy_spec_positions_add(pos, "resources", 4, 1), 0);
    assert_int_equal(gy_spec_positions_add(pos, "resources.memory", 5, 11), 0);
    assert_int_equal(gy_spec_positions_add(pos, "resources.memory", 9, 9), 0);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "env.V%d", i);
        assert_int_equal(gy_spec_positions_add(pos, key, 100 + i, 3), 0);
    }
    assert_int_equal(gy_spec_positions_count(pos), 203);
    int line = 0, col = 0;
    assert_true(gy_spec_positions_lookup(pos, "resources.memory", &line, &col));
    assert_int_equal(line, 5);
    assert_int_equal(col, 11);
    assert_true(gy_spec_positions_lookup(pos, "env.V150", &line, &col));
    assert_int_equal(line, 250);
    assert_false(gy_spec_positions_lookup(pos, "resources.cpu", &line, &col));

    struct gy_spec_problems problems = {0};
    gy_spec_problem_add(&problems, pos, "resources.memory", "must be at least %s", "4Mi");
    gy_spec_problem_add(&problems, pos, "resources.cpu", "missing");
    gy_spec_problem_add(&problems, pos, "placement.clouds[1]", "bad");
    gy_spec_problem_add(&problems, NULL, "name", "bad");
    assert_int_equal(problems.items[0].line, 5);
    /* A key without a position of its own is placed at its parent, then the document. */
    assert_int_equal(problems.items[1].line, 4);
    assert_int_equal(problems.items[2].line, 1);
    assert_int_equal(problems.items[3].line, 0);
    char *text = gy_spec_problem_format("web.yaml", &problems.items[0]);
    assert_string_equal(text, "web.yaml:5:11: resources.memory: must be at least 4Mi");
    free(text);
    text = gy_spec_problem_format("web.yaml", &problems.items[3]);
    assert_string_equal(text, "web.yaml: name: bad");
    free(text);
    text = gy_spec_problem_format(NULL, &problems.items[3]);
    assert_string_equal(text, "name: bad");
    free(text);
    gy_spec_problems_free(&problems);
    gy_spec_positions_free(pos);
}

/* Values quoted in messages are cut short, and never inside a UTF-8 character, because
 * the API sends messages as JSON strings, which must be valid UTF-8. */
static void test_excerpts(void **state)
{
    (void)state;
    char buf[GY_SPEC_EXCERPT_BUF];
    assert_string_equal(gy_spec_excerpt("short", buf), "short");
    char longer[200];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    const char *ex = gy_spec_excerpt(longer, buf);
    assert_int_equal(strlen(ex), GY_SPEC_EXCERPT_BUF - 1);
    assert_string_equal(ex + GY_SPEC_EXCERPT_BUF - 4, "...");
    /* Two-byte characters from the start: the cut falls between two of them. */
    char accents[200] = "";
    for (int i = 0; i < 60; i++)
        strcat(accents, "\xc3\xa9");
    ex = gy_spec_excerpt(accents, buf);
    size_t kept = strlen(ex) - 3;
    assert_int_equal(kept % 2, 0);
    json_t *j = json_string(ex);
    assert_non_null(j); /* valid UTF-8 */
    json_decref(j);

    char doc[600];
    snprintf(doc, sizeof(doc), "{\"name\":\"%s\",\"image\":\"x\",\"restart\":\"%s\"}", accents,
             longer);
    struct gy_spec spec;
    struct gy_spec_problems problems;
    assert_int_equal(decode(doc, &spec, &problems), -GY_EINVAL);
    assert_int_equal(problems.n, 2);
    for (size_t i = 0; i < problems.n; i++) {
        assert_true(strlen(problems.items[i].message) < 200);
        assert_non_null(strstr(problems.items[i].message, "...\""));
        j = json_string(problems.items[i].message);
        assert_non_null(j);
        json_decref(j);
    }
    gy_spec_problems_free(&problems);
    gy_spec_free(&spec);

    snprintf(doc, sizeof(doc), "{" BASE ",\"resources\":{\"cpu\":\"%s\"}}", accents);
    expect_problem(doc, "resources.cpu", "is too long to be a cpu quantity");
}

static void test_more_rules(void **state)
{
    (void)state;
    char doc[600];
    char image[300];
    memset(image, 'i', 256);
    image[256] = '\0';
    snprintf(doc, sizeof(doc), "{\"name\":\"web\",\"image\":\"%s\"}", image);
    expect_problem(doc, "image", "is 256 characters long (max 255)");
    expect_problem("{" BASE ",\"placement\":{\"clouds\":[\"my cloud\"]}}", "placement.clouds[0]",
                   "must not contain blanks");
    expect_problem("{" BASE ",\"health\":{\"http\":{\"port\":80,\"path\":\"/a b\"}}}",
                   "health.http.path", "must not contain blanks");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"metric\":{\"http\":{\"port\":0},"
                   "\"target\":1}}}",
                   "autoscale.metric.http.port", "between 1 and 65535");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"metric\":{\"http\":{},\"target\":1}}}",
                   "autoscale.metric.http.port", "required field is missing");
    expect_problem("{" BASE ",\"env\":{\"A\":null}}", "env.A", "must be a string, not null");
    expect_problem("{" BASE ",\"autoscale\":{\"max\":2,\"cpu\":5,\"scale_down_after\":\"800h\"}}",
                   "autoscale.scale_down_after", "at most 720h");
    expect_problem("{" BASE ",\"health\":{\"tcp\":{\"port\":1,\"host\":\"x\"}}}", "health.tcp.host",
                   "unknown key (allowed here: port)");
    struct gy_spec s;
    decode_ok("{" BASE ",\"autoscale\":{\"max\":2,\"metric\":{\"http\":{\"port\":9090},"
              "\"target\":4}}}",
              &s);
    assert_string_equal(s.autoscale.metric.http_path, "/");
    gy_spec_free(&s);
}

/* disconnect_grace: a duration, 0 (replace at once) by default, in the canonical form only
 * when set, compared by gy_spec_equal and kept by gy_spec_copy. */
static void test_disconnect_grace(void **state)
{
    (void)state;
    struct gy_spec s, t;
    decode_ok("{" BASE "}", &s);
    assert_int_equal(s.disconnect_grace_ms, 0);
    json_t *j = gy_spec_to_json(&s);
    assert_null(json_object_get(j, "disconnect_grace"));
    json_decref(j);
    gy_spec_free(&s);

    decode_ok("{" BASE ",\"disconnect_grace\":\"2m\"}", &s);
    assert_int_equal(s.disconnect_grace_ms, 120000);
    j = gy_spec_to_json(&s);
    assert_string_equal(json_string_value(json_object_get(j, "disconnect_grace")), "2m");
    struct gy_spec_problems problems = {0};
    assert_int_equal(gy_spec_from_json(j, NULL, &t, &problems), 0);
    json_decref(j);
    assert_true(gy_spec_equal(&s, &t));
    gy_spec_free(&t);
    assert_int_equal(gy_spec_copy(&t, &s), 0);
    assert_int_equal(t.disconnect_grace_ms, 120000);
    t.disconnect_grace_ms = 0;
    assert_false(gy_spec_equal(&s, &t));
    gy_spec_free(&t);
    gy_spec_free(&s);

    decode_ok("{" BASE ",\"disconnect_grace\":0}", &s);
    assert_int_equal(s.disconnect_grace_ms, 0);
    gy_spec_free(&s);
    expect_problem("{" BASE ",\"disconnect_grace\":90}", "disconnect_grace",
                   "needs a unit: write \"90s\"");
    expect_problem("{" BASE ",\"disconnect_grace\":\"soon\"}", "disconnect_grace",
                   "invalid duration");
    expect_problem("{" BASE ",\"disconnect_grace\":\"721h\"}", "disconnect_grace", "at most 720h");
    expect_problem("{" BASE ",\"disconnect_grace\":true}", "disconnect_grace", "a duration like");
    expect_problem("{" BASE ",\"disconect_grace\":\"1m\"}", "disconect_grace",
                   "did you mean 'disconnect_grace'?");
    gy_spec_init(&s);
    s.name = strdup("web");
    s.image = strdup("busybox");
    s.disconnect_grace_ms = -1;
    problems = (struct gy_spec_problems){0};
    assert_int_equal(gy_spec_validate(&s, NULL, &problems), -GY_EINVAL);
    assert_true(has_problem(&problems, "disconnect_grace", "0 or more"));
    gy_spec_problems_free(&problems);
    gy_spec_free(&s);
}

/* ---------------------------------------------------------------------------------------
 * ports */

/* Asserts that the document is rejected with exactly one problem, at path, saying message. */
static void expect_only(const char *text, const char *path, const char *message)
{
    struct gy_spec spec;
    struct gy_spec_problems problems;
    int rc = decode(text, &spec, &problems);
    if (rc != -GY_EINVAL || problems.n != 1 || strcmp(problems.items[0].path, path) != 0 ||
        strcmp(problems.items[0].message, message) != 0) {
        print_problems(&problems);
        fail_msg("expected only \"%s: %s\" for %s (rc %d)", path, message, text, rc);
    }
    gy_spec_problems_free(&problems);
    gy_spec_free(&spec);
}

#define PORTS(list) "{" BASE ",\"ports\":" list "}"

static void test_ports_decode(void **state)
{
    (void)state;
    struct gy_spec s;
    decode_ok(PORTS("[{\"container_port\":80},"
                    "{\"container_port\":53,\"protocol\":\"udp\",\"host_port\":5353,\"name\":"
                    "\"dns\"},"
                    "{\"container_port\":8080,\"protocol\":\"tcp\",\"host_port\":80,\"name\":"
                    "\"http\"},"
                    "{\"container_port\":80,\"protocol\":\"udp\",\"host_port\":80}]"),
              &s);
    assert_int_equal(s.n_ports, 4);
    assert_null(s.ports[0].name);
    assert_int_equal(s.ports[0].container_port, 80);
    assert_int_equal(s.ports[0].protocol, GY_PROTOCOL_TCP);
    assert_int_equal(s.ports[0].host_port, 0);
    assert_string_equal(s.ports[1].name, "dns");
    assert_int_equal(s.ports[1].container_port, 53);
    assert_int_equal(s.ports[1].protocol, GY_PROTOCOL_UDP);
    assert_int_equal(s.ports[1].host_port, 5353);
    assert_string_equal(s.ports[2].name, "http");
    assert_int_equal(s.ports[2].container_port, 8080);
    assert_int_equal(s.ports[2].host_port, 80);
    /* 80/udp beside 80/tcp, and host port 80 over udp beside 80 over tcp: no clash. */
    assert_int_equal(s.ports[3].protocol, GY_PROTOCOL_UDP);
    assert_int_equal(s.ports[3].host_port, 80);
    assert_true(gy_spec_has_host_ports(&s));

    /* Canonical form: in the order written, protocol always, host_port and name when set. */
    json_t *j = gy_spec_to_json(&s);
    char *text = json_dumps(json_object_get(j, "ports"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "[{\"container_port\":80,\"protocol\":\"tcp\"},"
                              "{\"container_port\":53,\"host_port\":5353,\"name\":\"dns\","
                              "\"protocol\":\"udp\"},"
                              "{\"container_port\":8080,\"host_port\":80,\"name\":\"http\","
                              "\"protocol\":\"tcp\"},"
                              "{\"container_port\":80,\"host_port\":80,\"protocol\":\"udp\"}]");
    free(text);
    struct gy_spec back;
    struct gy_spec_problems problems = {0};
    assert_int_equal(gy_spec_from_json(j, NULL, &back, &problems), 0);
    assert_true(gy_spec_equal(&s, &back));
    json_decref(j);
    gy_spec_free(&back);

    /* Copies are deep; every field of a port takes part in equality. */
    struct gy_spec c;
    assert_int_equal(gy_spec_copy(&c, &s), 0);
    assert_true(gy_spec_equal(&s, &c));
    assert_ptr_not_equal(c.ports, s.ports);
    assert_ptr_not_equal(c.ports[1].name, s.ports[1].name);
    c.ports[1].name[0] = 'x';
    assert_false(gy_spec_equal(&s, &c));
    c.ports[1].name[0] = 'd';
    c.ports[2].host_port = 81;
    assert_false(gy_spec_equal(&s, &c));
    c.ports[2].host_port = 80;
    c.ports[3].protocol = GY_PROTOCOL_TCP;
    assert_false(gy_spec_equal(&s, &c));
    c.ports[3].protocol = GY_PROTOCOL_UDP;
    c.ports[0].container_port = 81;
    assert_false(gy_spec_equal(&s, &c));
    c.ports[0].container_port = 80;
    assert_true(gy_spec_equal(&s, &c));
    c.n_ports = 3; /* the last one is still freed: gy_spec_free goes by n_ports */
    assert_false(gy_spec_equal(&s, &c));
    c.n_ports = 4;
    gy_spec_free(&c);
    gy_spec_free(&s);

    /* Without ports (or with an empty list) the canonical form has no "ports" key, and no
     * port is published. */
    decode_ok(PORTS("[]"), &s);
    assert_int_equal(s.n_ports, 0);
    assert_false(gy_spec_has_host_ports(&s));
    j = gy_spec_to_json(&s);
    assert_null(json_object_get(j, "ports"));
    json_decref(j);
    gy_spec_free(&s);
    decode_ok(PORTS("[{\"container_port\":9090,\"name\":\"metrics\"}]"), &s);
    assert_false(gy_spec_has_host_ports(&s));
    gy_spec_free(&s);
}

static void test_ports_problems(void **state)
{
    (void)state;
    expect_only(PORTS("{\"container_port\":80}"), "ports",
                "must be a list of ports, not an object");
    expect_only(PORTS("[80]"), "ports[0]", "must be an object, not an integer");
    expect_only(PORTS("[{\"container_port\":80},{}]"), "ports[1].container_port",
                "required field is missing");
    expect_only(PORTS("[{\"container_port\":0}]"), "ports[0].container_port",
                "must be between 1 and 65535 (got 0)");
    expect_only(PORTS("[{\"container_port\":65536}]"), "ports[0].container_port",
                "must be between 1 and 65535 (got 65536)");
    expect_only(PORTS("[{\"container_port\":\"80\"}]"), "ports[0].container_port",
                "must be a whole number, not a string");
    expect_only(PORTS("[{\"container_port\":80,\"host_port\":0}]"), "ports[0].host_port",
                "must be between 1 and 65535 (got 0)");
    expect_only(PORTS("[{\"container_port\":80,\"host_port\":70000}]"), "ports[0].host_port",
                "must be between 1 and 65535 (got 70000)");
    expect_only(PORTS("[{\"container_port\":80,\"host_port\":8.5}]"), "ports[0].host_port",
                "must be a whole number, not a number with a fraction");
    expect_only(PORTS("[{\"container_port\":80,\"protocol\":\"sctp\"}]"), "ports[0].protocol",
                "\"sctp\" is not one of tcp or udp");
    expect_only(PORTS("[{\"container_port\":80,\"protocol\":\"TCP\"}]"), "ports[0].protocol",
                "\"TCP\" is not one of tcp or udp; did you mean 'tcp'?");
    expect_only(PORTS("[{\"container_port\":80,\"protocol\":6}]"), "ports[0].protocol",
                "must be one of tcp or udp, not an integer");
    expect_only(PORTS("[{\"container_port\":80,\"hostPort\":8080}]"), "ports[0].hostPort",
                "unknown key; did you mean 'host_port'?");
    expect_only(PORTS("[{\"container_port\":80,\"target\":1}]"), "ports[0].target",
                "unknown key (allowed here: container_port, protocol, host_port, name)");
    expect_only(PORTS("[{\"container_port\":80,\"name\":7}]"), "ports[0].name",
                "must be a string, not an integer");

    /* Names: IANA service names. */
    static const char *const bad_names[] = {"HTTP", "-web",      "web-", "we--b",           "8080",
                                            "",     "web_admin", "a.b",  "abcdefghijklmnop"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        char text[256], message[512];
        snprintf(text, sizeof(text), PORTS("[{\"container_port\":80,\"name\":\"%s\"}]"),
                 bad_names[i]);
        snprintf(message, sizeof(message),
                 "\"%s\" is not a port name: use 1 to 15 lower-case letters, digits and '-', "
                 "with at least one letter, not starting or ending with '-' and without \"--\" "
                 "(an IANA service name)",
                 bad_names[i]);
        expect_only(text, "ports[0].name", message);
    }
    static const char *const good_names[] = {"http", "h2", "web-api", "x", "9p", "abcdefghijklmno"};
    for (size_t i = 0; i < sizeof(good_names) / sizeof(good_names[0]); i++)
        assert_true(gy_port_name_valid(good_names[i]));
    assert_false(gy_port_name_valid(NULL));

    /* Uniqueness within the spec. */
    expect_only(PORTS("[{\"container_port\":80,\"name\":\"http\"},"
                      "{\"container_port\":81,\"name\":\"http\"}]"),
                "ports[1].name", "port name \"http\" is already used by ports[0]");
    expect_only(PORTS("[{\"container_port\":80},{\"container_port\":443},"
                      "{\"container_port\":80,\"protocol\":\"tcp\"}]"),
                "ports[2].container_port", "80/tcp is already listed by ports[0]");
    expect_only(PORTS("[{\"container_port\":53,\"protocol\":\"udp\"},"
                      "{\"container_port\":53,\"protocol\":\"udp\"}]"),
                "ports[1].container_port", "53/udp is already listed by ports[0]");
    expect_only(PORTS("[{\"container_port\":80,\"host_port\":8080},"
                      "{\"container_port\":81,\"host_port\":8080}]"),
                "ports[1].host_port", "host port 8080/tcp is already published by ports[0]");

    /* At most 64. */
    char *many = strdup("");
    for (int i = 1; i <= 65; i++) {
        char *next = NULL;
        assert_true(asprintf(&next, "%s%s{\"container_port\":%d}", many, i > 1 ? "," : "", i) > 0);
        free(many);
        many = next;
    }
    char *text = NULL;
    assert_true(asprintf(&text, "{" BASE ",\"ports\":[%s]}", many) > 0);
    expect_only(text, "ports", "lists 65 ports (max 64)");
    free(text);
    free(many);

    /* Every problem of a list is reported, each with its own path. */
    struct gy_spec spec;
    struct gy_spec_problems problems;
    assert_int_equal(decode(PORTS("[{\"container_port\":0,\"protocol\":\"icmp\"},"
                                  "{\"host_port\":1,\"name\":\"Web\"}]"),
                            &spec, &problems),
                     -GY_EINVAL);
    assert_int_equal(problems.n, 4);
    assert_true(has_problem(&problems, "ports[0].container_port", "(got 0)"));
    assert_true(has_problem(&problems, "ports[0].protocol", "\"icmp\" is not one of tcp or udp"));
    assert_true(has_problem(&problems, "ports[1].container_port", "required field is missing"));
    assert_true(has_problem(&problems, "ports[1].name", "\"Web\" is not a port name"));
    gy_spec_problems_free(&problems);
    gy_spec_free(&spec);

    /* A spec built in code meets the same rules, the protocol included. */
    gy_spec_init(&spec);
    spec.name = strdup("web");
    spec.image = strdup("busybox");
    spec.ports = calloc(1, sizeof(*spec.ports));
    spec.n_ports = 1;
    spec.ports[0].container_port = 80;
    spec.ports[0].protocol = (enum gy_protocol)7;
    problems = (struct gy_spec_problems){0};
    assert_int_equal(gy_spec_validate(&spec, NULL, &problems), -GY_EINVAL);
    assert_int_equal(problems.n, 1);
    assert_string_equal(problems.items[0].path, "ports[0].protocol");
    assert_string_equal(problems.items[0].message, "must be tcp or udp");
    gy_spec_problems_free(&problems);
    gy_spec_free(&spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_disconnect_grace),
        cmocka_unit_test(test_full_spec),
        cmocka_unit_test(test_other_health_kinds),
        cmocka_unit_test(test_number_quantities),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_canonical_defaults),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_image_names),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_quantities),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_command_and_env),
        cmocka_unit_test(test_health_rules),
        cmocka_unit_test(test_placement_rules),
        cmocka_unit_test(test_autoscale_rules),
        cmocka_unit_test(test_all_problems),
        cmocka_unit_test(test_validate_struct),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_positions_and_format),
        cmocka_unit_test(test_excerpts),
        cmocka_unit_test(test_more_rules),
        cmocka_unit_test(test_ports_decode),
        cmocka_unit_test(test_ports_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
