/* Unit tests of the OCI config the agent builds for a replica. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent/bundle.h"

static const char *base = "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sh\"],"
                          "\"cwd\":\"/\",\"noNewPrivileges\":true},"
                          "\"root\":{\"path\":\"rootfs\"},"
                          "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},"
                          "{\"type\":\"mount\"}],\"maskedPaths\":[\"/proc/kcore\"]}}";

static json_t *build(struct gy_spec *spec, const struct agent_bundle_params *p)
{
    struct gy_error err;
    char *text = agent_bundle_config(base, spec, p, &err);
    if (text == NULL)
        fail_msg("bundle: %s", err.msg);
    json_t *cfg = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(cfg);
    return cfg;
}

static void make_spec(struct gy_spec *spec)
{
    gy_spec_init(spec);
    spec->name = strdup("web");
    spec->image = strdup("busybox");
    spec->command.items = calloc(3, sizeof(char *));
    spec->command.items[0] = strdup("httpd");
    spec->command.items[1] = strdup("-f");
    spec->command.n = 2;
    spec->env = calloc(2, sizeof(*spec->env));
    spec->env[0].name = strdup("GREETING");
    spec->env[0].value = strdup("hello");
    spec->env[1].name = strdup("PATH");
    spec->env[1].value = strdup("/bin");
    spec->n_env = 2;
    spec->resources.cpu_millis = 250;
    spec->resources.memory_bytes = 64 << 20;
    spec->resources.pids = 128;
}

static void test_config_from_spec(void **state)
{
    (void)state;
    struct gy_spec spec;
    make_spec(&spec);
    struct agent_bundle_params p = {.replica_id = "web-7F_a1",
                                    .netns_path = "/run/netns/gantry-web-7f"};
    json_t *cfg = build(&spec, &p);
    json_t *proc = json_object_get(cfg, "process");
    assert_string_equal(json_string_value(json_array_get(json_object_get(proc, "args"), 0)),
                        "httpd");
    assert_int_equal(json_array_size(json_object_get(proc, "args")), 2);
    assert_true(json_is_true(json_object_get(proc, "noNewPrivileges"))); /* base kept */
    char *env = json_dumps(json_object_get(proc, "env"), JSON_COMPACT);
    assert_string_equal(env, "[\"PATH=/bin\",\"HOSTNAME=web-7f-a1\",\"GANTRY_WORKLOAD=web\","
                             "\"GANTRY_REPLICA=web-7F_a1\",\"GREETING=hello\"]");
    free(env);
    assert_string_equal(json_string_value(json_object_get(cfg, "hostname")), "web-7f-a1");

    json_t *lin = json_object_get(cfg, "linux");
    json_t *ns = json_object_get(lin, "namespaces");
    assert_int_equal(json_array_size(ns), 3);
    json_t *last = json_array_get(ns, 2);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "network");
    assert_string_equal(json_string_value(json_object_get(last, "path")),
                        "/run/netns/gantry-web-7f");
    json_t *res = json_object_get(lin, "resources");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")),
                     64 << 20);
    json_t *cpu = json_object_get(res, "cpu");
    assert_int_equal(json_integer_value(json_object_get(cpu, "quota")), 25000);
    assert_int_equal(json_integer_value(json_object_get(cpu, "period")), 100000);
    assert_int_equal(json_integer_value(json_object_get(cpu, "shares")), 256);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")),
                     128);
    assert_non_null(json_object_get(lin, "maskedPaths"));
    json_decref(cfg);
    gy_spec_free(&spec);
}

static void test_no_command_is_an_error(void **state)
{
    (void)state;
    struct gy_spec spec;
    make_spec(&spec);
    for (size_t i = 0; i < spec.command.n; i++)
        free(spec.command.items[i]);
    spec.command.n = 0;
    struct agent_bundle_params p = {.replica_id = "web-1"};
    struct gy_error err;
    assert_null(agent_bundle_config(base, &spec, &p, &err));
    assert_string_equal(err.msg, "workload \"web\" has no command, and image \"busybox\" "
                                 "provides none");
    gy_spec_free(&spec);
}

static void test_tiny_cpu_keeps_minimum_shares(void **state)
{
    (void)state;
    struct gy_spec spec;
    make_spec(&spec);
    spec.resources.cpu_millis = 1;
    spec.resources.pids = 0;
    struct agent_bundle_params p = {.replica_id = "w", .hostname = "custom"};
    json_t *cfg = build(&spec, &p);
    json_t *res = json_object_get(json_object_get(cfg, "linux"), "resources");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "shares")), 2);
    assert_null(json_object_get(res, "pids"));
    assert_string_equal(json_string_value(json_object_get(cfg, "hostname")), "custom");
    json_decref(cfg);
    gy_spec_free(&spec);
}

static const char *arg_at(json_t *cfg, size_t i)
{
    return json_string_value(
        json_array_get(json_object_get(json_object_get(cfg, "process"), "args"), i));
}

static size_t n_args(json_t *cfg)
{
    return json_array_size(json_object_get(json_object_get(cfg, "process"), "args"));
}

static void set_strv(struct gy_strv *v, const char *a, const char *b)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->items[i]);
    free(v->items);
    v->items = calloc(3, sizeof(char *));
    v->n = 0;
    if (a != NULL)
        v->items[v->n++] = strdup(a);
    if (b != NULL)
        v->items[v->n++] = strdup(b);
}

/* Kubernetes' rules: command replaces the Entrypoint, args the Cmd; with neither the image's
 * default runs; with command alone the Cmd is dropped. */
static void test_image_entrypoint_and_cmd(void **state)
{
    (void)state;
    char *entrypoint[] = {"/docker-entrypoint.sh"};
    char *cmd[] = {"nginx", "-g"};
    char *env[] = {"PATH=/opt/bin:/bin", "LANG=C.UTF-8", "GREETING=from-image", "=bad", "NOEQ"};
    struct agent_image_defaults img = {.entrypoint = entrypoint,
                                       .n_entrypoint = 1,
                                       .cmd = cmd,
                                       .n_cmd = 2,
                                       .env = env,
                                       .n_env = 5,
                                       .working_dir = "/srv",
                                       .has_user = true,
                                       .uid = 101,
                                       .gid = 102};
    struct agent_bundle_params p = {.replica_id = "web-1", .image = &img};
    struct gy_spec spec;
    make_spec(&spec);
    set_strv(&spec.command, NULL, NULL);

    json_t *cfg = build(&spec, &p); /* neither: Entrypoint + Cmd */
    assert_int_equal(n_args(cfg), 3);
    assert_string_equal(arg_at(cfg, 0), "/docker-entrypoint.sh");
    assert_string_equal(arg_at(cfg, 1), "nginx");
    json_t *proc = json_object_get(cfg, "process");
    assert_string_equal(json_string_value(json_object_get(proc, "cwd")), "/srv");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(proc, "user"), "uid")),
                     101);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(proc, "user"), "gid")),
                     102);
    /* The image's env over the default PATH; the spec's over the image's. */
    char *text = json_dumps(json_object_get(proc, "env"), JSON_COMPACT);
    assert_string_equal(text, "[\"PATH=/bin\",\"LANG=C.UTF-8\",\"GREETING=hello\","
                              "\"HOSTNAME=web-1\",\"GANTRY_WORKLOAD=web\","
                              "\"GANTRY_REPLICA=web-1\"]");
    free(text);
    json_decref(cfg);

    set_strv(&spec.args, "-c", ""); /* args alone: Entrypoint + args, empty words kept */
    cfg = build(&spec, &p);
    assert_int_equal(n_args(cfg), 3);
    assert_string_equal(arg_at(cfg, 0), "/docker-entrypoint.sh");
    assert_string_equal(arg_at(cfg, 2), "");
    json_decref(cfg);

    set_strv(&spec.command, "sh", NULL); /* command and args: both, no image default */
    cfg = build(&spec, &p);
    assert_int_equal(n_args(cfg), 3);
    assert_string_equal(arg_at(cfg, 0), "sh");
    assert_string_equal(arg_at(cfg, 1), "-c");
    json_decref(cfg);

    set_strv(&spec.args, NULL, NULL); /* command alone: the Cmd is not appended */
    cfg = build(&spec, &p);
    assert_int_equal(n_args(cfg), 1);
    assert_string_equal(arg_at(cfg, 0), "sh");
    json_decref(cfg);

    /* An image with neither, and a spec with neither: nothing to run. */
    set_strv(&spec.command, NULL, NULL);
    struct agent_image_defaults bare = {0};
    p.image = &bare;
    struct gy_error err;
    assert_null(agent_bundle_config(base, &spec, &p, &err));
    assert_string_equal(err.msg, "workload \"web\" has no command, and image \"busybox\" "
                                 "provides none");
    gy_spec_free(&spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_from_spec),
        cmocka_unit_test(test_no_command_is_an_error),
        cmocka_unit_test(test_tiny_cpu_keeps_minimum_shares),
        cmocka_unit_test(test_image_entrypoint_and_cmd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
