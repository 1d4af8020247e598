/* Unit tests of config.json parsing: the default spec round-trips, fields land where the
 * runtime reads them, and every kind of bad value is refused with the field's path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <jansson.h>

#include "runtime/config.h"
#include "runtime/runtime.h"

static struct rt_config *parse_ok(const char *json)
{
    struct rt_config *c = NULL;
    struct gy_error err;
    gy_error_clear(&err);
    if (rt_config_parse(json, strlen(json), &c, &err) != 0)
        fail_msg("parse failed: %s\n%s", err.msg, json);
    return c;
}

/* A minimal valid config with one extra member spliced into process and into linux. */
static char *config_with(const char *process_extra, const char *linux_extra, const char *top)
{
    char *text = NULL;
    /* linux_extra may bring its own namespaces (duplicate keys are an error). */
    bool own_ns = strstr(linux_extra, "\"namespaces\"") != NULL;
    if (asprintf(&text,
                 "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\"%s%s},"
                 "\"root\":{\"path\":\"rootfs\"},\"linux\":{%s%s%s}%s%s}",
                 process_extra[0] ? "," : "", process_extra,
                 own_ns ? "" : "\"namespaces\":[{\"type\":\"mount\"}]",
                 !own_ns && linux_extra[0] ? "," : "", linux_extra, top[0] ? "," : "", top) < 0)
        abort();
    return text;
}

static void expect_error(const char *process_extra, const char *linux_extra, const char *top,
                         const char *want)
{
    char *text = config_with(process_extra, linux_extra, top);
    struct rt_config *c = NULL;
    struct gy_error err;
    gy_error_clear(&err);
    int rc = rt_config_parse(text, strlen(text), &c, &err);
    if (rc == 0) {
        rt_config_free(c);
        fail_msg("accepted: %s", text);
    }
    if (strstr(err.msg, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
    free(text);
}

static void test_default_spec(void **state)
{
    (void)state;
    char *json = rt_config_default_json();
    struct rt_config *c = parse_ok(json);
    assert_int_equal(c->n_args, 1);
    assert_string_equal(c->args[0], "sh");
    assert_string_equal(c->root_path, "rootfs");
    assert_true(c->ns[RT_NS_PID] && c->ns[RT_NS_NET] && c->ns[RT_NS_MOUNT]);
    assert_true(c->ns[RT_NS_IPC] && c->ns[RT_NS_UTS] && c->ns[RT_NS_CGROUP]);
    assert_false(c->ns[RT_NS_USER]);
    assert_int_equal(c->n_mounts, 7);
    assert_string_equal(c->mounts[5].destination, "/sys");
    assert_true(c->mounts[5].flags & MS_RDONLY);
    assert_true(c->no_new_privs);
    assert_int_equal(c->caps[RT_CAPS_BOUNDING], rt_caps_default());
    assert_null(c->seccomp);
    assert_false(c->seccomp_disabled);
    assert_true(c->n_readonly_paths >= 5);
    assert_int_equal(c->n_rlimits, 1);
    assert_int_equal(c->rlimits[0].resource, RLIMIT_NOFILE);
    rt_config_free(c);
    free(json);
}

static void test_docker_default_caps(void **state)
{
    (void)state;
    uint64_t caps = rt_caps_default();
    assert_true(caps & (UINT64_C(1) << CAP_CHOWN));
    assert_true(caps & (UINT64_C(1) << CAP_NET_BIND_SERVICE));
    assert_false(caps & (UINT64_C(1) << CAP_SYS_ADMIN));
    assert_false(caps & (UINT64_C(1) << CAP_NET_ADMIN));
    assert_false(caps & (UINT64_C(1) << CAP_SYS_PTRACE));
    /* The mask Docker containers show in /proc/self/status. */
    assert_int_equal(caps, UINT64_C(0xa80425fb));
}

static void test_fields(void **state)
{
    (void)state;
    char *text = config_with(
        "\"user\":{\"uid\":1000,\"gid\":100,\"additionalGids\":[5,6],\"umask\":18},"
        "\"env\":[\"A=1\"],\"noNewPrivileges\":false,\"oomScoreAdj\":-500,"
        "\"capabilities\":{\"bounding\":[\"CAP_NET_ADMIN\"],\"effective\":[\"cap_kill\"]},"
        "\"rlimits\":[{\"type\":\"RLIMIT_NPROC\",\"soft\":10,\"hard\":20}]",
        "\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"user\"},{\"type\":\"uts\"},{\"type\":"
        "\"network\","
        "\"path\":\"/run/netns/x\"}],"
        "\"uidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}],"
        "\"gidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}],"
        "\"resources\":{\"memory\":{\"limit\":67108864},\"cpu\":{\"shares\":512,"
        "\"quota\":50000,\"period\":100000},\"pids\":{\"limit\":64}},"
        "\"cgroupsPath\":\"/custom/web\",\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"},"
        "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":"
        "[\"SCMP_ARCH_X86_64\"],\"syscalls\":[{\"names\":[\"read\",\"write\"],\"action\":"
        "\"SCMP_ACT_ALLOW\"},{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\","
        "\"args\":[{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]}]}",
        "\"hostname\":\"web\",\"mounts\":[{\"destination\":\"/data\",\"source\":\"/srv\","
        "\"options\":[\"rbind\",\"ro\",\"nosuid\",\"rprivate\"]},{\"destination\":\"/tmp\","
        "\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nodev\",\"mode=1777\","
        "\"size=1m\"]}]");
    struct rt_config *c = parse_ok(text);
    free(text);
    assert_int_equal(c->uid, 1000);
    assert_int_equal(c->gid, 100);
    assert_int_equal(c->n_additional_gids, 2);
    assert_true(c->has_umask);
    assert_int_equal(c->umask, 022);
    assert_false(c->no_new_privs);
    assert_int_equal(c->oom_score_adj, -500);
    assert_int_equal(c->caps[RT_CAPS_BOUNDING], UINT64_C(1) << CAP_NET_ADMIN);
    assert_int_equal(c->caps[RT_CAPS_EFFECTIVE], UINT64_C(1) << CAP_KILL);
    assert_int_equal(c->caps[RT_CAPS_PERMITTED], 0);
    assert_int_equal(c->rlimits[0].resource, RLIMIT_NPROC);
    assert_int_equal(c->rlimits[0].hard, 20);
    assert_true(c->ns[RT_NS_USER]);
    assert_string_equal(c->ns_path[RT_NS_NET], "/run/netns/x");
    assert_int_equal(c->uid_maps[0].host_id, 100000);
    assert_true(c->resources.has_memory_limit);
    assert_int_equal(c->resources.memory_limit, 67108864);
    assert_int_equal(c->resources.cpu_quota, 50000);
    assert_int_equal(c->resources.cpu_shares, 512);
    assert_int_equal(c->resources.pids_limit, 64);
    assert_false(c->resources.has_memory_swap);
    assert_string_equal(c->cgroups_path, "/custom/web");
    assert_string_equal(c->sysctls[0].key, "net.ipv4.ip_forward");
    assert_non_null(c->seccomp);
    assert_int_equal(c->seccomp->default_action, SCMP_ACT_ERRNO(1));
    assert_int_equal(c->seccomp->n_rules, 2);
    assert_int_equal(c->seccomp->rules[1].args[0].op, SCMP_CMP_EQ);
    assert_string_equal(c->hostname, "web");
    assert_true(c->mounts[0].bind);
    assert_true(c->mounts[0].flags & MS_REC);
    assert_true(c->mounts[0].flags & MS_RDONLY);
    assert_int_equal(c->mounts[0].propagation, MS_PRIVATE | MS_REC);
    assert_string_equal(c->mounts[1].data, "mode=1777,size=1m");
    assert_true(c->mounts[1].flags & MS_NODEV);
    rt_config_free(c);
}

static void test_errors_name_the_field(void **state)
{
    (void)state;
    expect_error("\"rlimits\":[{\"type\":\"RLIMIT_FOO\",\"soft\":1,\"hard\":1}]", "", "",
                 "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"");
    expect_error("\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":1}]", "", "",
                 "process.rlimits[0].soft");
    expect_error("\"capabilities\":{\"bounding\":[\"CAP_WIZARD\"]}", "", "",
                 "process.capabilities.bounding[0]: unknown capability");
    expect_error("\"user\":{\"uid\":-1}", "", "", "process.user.uid");
    expect_error("\"env\":[\"NOEQUALS\"]", "", "", "process.env[0]");
    expect_error("\"terminal\":true", "", "", "process.terminal");
    expect_error("\"oomScoreAdj\":5000", "", "", "process.oomScoreAdj");
    expect_error("", "\"resources\":{\"memory\":{\"limit\":\"lots\"}}", "",
                 "linux.resources.memory.limit: must be an integer");
    expect_error("", "\"resources\":{\"memory\":{\"limit\":100}}", "",
                 "linux.resources.memory.limit");
    expect_error("", "\"resources\":{\"cpu\":{\"period\":10}}", "", "linux.resources.cpu.period");
    expect_error("", "\"resources\":{\"cpu\":{\"quota\":10}}", "", "linux.resources.cpu.quota");
    expect_error("", "\"resources\":{\"cpu\":{\"shares\":1}}", "", "linux.resources.cpu.shares");
    expect_error("", "\"resources\":{\"pids\":{\"limit\":0}}", "", "linux.resources.pids.limit");
    expect_error("", "\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"time-travel\"}]", "",
                 "linux.namespaces[1].type: unknown namespace");
    expect_error("", "\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"mount\"}]", "",
                 "given twice");
    expect_error("", "\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"user\"}]", "",
                 "linux.uidMappings");
    expect_error("", "\"uidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":1}]", "",
                 "linux.uidMappings");
    expect_error("", "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_MAYBE\"}", "",
                 "linux.seccomp.defaultAction: unsupported action");
    expect_error("",
                 "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":"
                 "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":9,"
                 "\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                 "", "linux.seccomp.syscalls[0].args[0].index");
    expect_error("", "\"cgroupsPath\":\"../escape\"", "", "linux.cgroupsPath");
    expect_error("", "\"sysctl\":{\"../../x\":\"1\"}", "", "linux.sysctl");
    expect_error("", "", "\"mounts\":[{\"destination\":\"relative\",\"type\":\"tmpfs\"}]",
                 "mounts[0].destination");
    expect_error("", "", "\"mounts\":[{\"destination\":\"/x\",\"options\":[\"bind\"]}]",
                 "mounts[0].source");
    expect_error("", "", "\"hostname\":\"x\"", "hostname: setting it needs a \"uts\"");
    expect_error("", "", "\"hostname\":7", "hostname: must be a string");
}

static void test_structure_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"[]", "config: must be a JSON object"},
        {"{\"process\":{}}", "ociVersion: is required"},
        {"{\"ociVersion\":\"2.0\"}", "ociVersion: \"2.0\" is not a 1.x version"},
        {"{\"ociVersion\":\"1.0.2\"}", "process: is required"},
        {"{\"ociVersion\":\"1.0.2\",\"process\":{\"cwd\":\"/\"}}", "process.args"},
        {"{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"a\"]}}", "process.cwd: is required"},
        {"{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"a\"],\"cwd\":\"x\"}}",
         "process.cwd: \"x\" is not an absolute path"},
        {"{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"}}",
         "a \"mount\" namespace is required"},
        {"{\"ociVersion\":", "config.json line 1 column"},
        {"{\"ociVersion\":\"1.0.2\",\"ociVersion\":\"1.0.2\"}", "duplicate"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rt_config *c = NULL;
        struct gy_error err;
        gy_error_clear(&err);
        if (rt_config_parse(cases[i].json, strlen(cases[i].json), &c, &err) == 0) {
            rt_config_free(c);
            fail_msg("accepted: %s", cases[i].json);
        }
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("%s: error \"%s\" lacks \"%s\"", cases[i].json, err.msg, cases[i].want);
    }
}

static void test_resources(void **state)
{
    (void)state;
    struct rt_resources res;
    struct gy_error err;
    const char *json = "{\"cpu\":{\"cpus\":\"0-3,6\",\"mems\":\"0\"},\"blockIO\":{\"weight\":500,"
                       "\"throttleWriteIOPSDevice\":[{\"major\":8,\"minor\":0,\"rate\":100}]}}";
    if (rt_resources_parse(json, strlen(json), &res, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(res.cpus, "0-3,6");
    assert_string_equal(res.mems, "0");
    assert_true(res.has_blkio_weight);
    assert_int_equal(res.blkio_weight, 500);
    assert_int_equal(res.n_throttle[RT_THROTTLE_WRITE_IOPS], 1);
    assert_int_equal(res.throttle[RT_THROTTLE_WRITE_IOPS][0].rate, 100);
    rt_resources_clear(&res);
    static const struct {
        const char *json;
        const char *want;
    } bad[] = {
        {"{\"cpu\":{\"cpus\":\"all\"}}", "linux.resources.cpu.cpus: \"all\""},
        {"{\"blockIO\":{\"weight\":5}}", "linux.resources.blockIO.weight"},
        {"{\"blockIO\":{\"throttleReadBpsDevice\":[{\"major\":8}]}}",
         "linux.resources.blockIO.throttleReadBpsDevice[0]."},
        {"{\"memory\":{\"limit\":true}}", "linux.resources.memory.limit"},
        {"[1]", "linux.resources: must be an object"},
        {"{", "resources line 1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gy_error_clear(&err);
        if (rt_resources_parse(bad[i].json, strlen(bad[i].json), &res, &err) == 0)
            fail_msg("accepted %s", bad[i].json);
        if (strstr(err.msg, bad[i].want) == NULL)
            fail_msg("%s: \"%s\" lacks \"%s\"", bad[i].json, err.msg, bad[i].want);
    }
}

static void test_devices(void **state)
{
    (void)state;
    char *text = config_with(
        "",
        "\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"},{\"allow\":true,"
        "\"type\":\"c\",\"major\":10,\"minor\":229,\"access\":\"rw\"}]},\"devices\":[{\"path\":"
        "\"/dev/net/tun\",\"type\":\"c\",\"major\":10,\"minor\":200,\"fileMode\":432,\"uid\":1}]",
        "");
    struct rt_config *c = parse_ok(text);
    free(text);
    assert_int_equal(c->resources.n_devices, 3);
    assert_false(c->resources.devices[0].allow);
    assert_int_equal(c->resources.devices[0].type, 0);
    assert_int_equal(c->resources.devices[0].major, -1);
    assert_int_equal(c->resources.devices[1].minor, 229);
    /* The node's own allow rule comes last. */
    assert_true(c->resources.devices[2].allow);
    assert_int_equal(c->resources.devices[2].minor, 200);
    assert_int_equal(c->n_device_nodes, 1);
    assert_string_equal(c->device_nodes[0].path, "/dev/net/tun");
    assert_int_equal(c->device_nodes[0].mode, 0660);
    assert_int_equal(c->device_nodes[0].uid, 1);
    rt_config_free(c);
    expect_error("", "\"resources\":{\"devices\":[{\"type\":\"c\"}]}", "",
                 "linux.resources.devices[0].allow: is required");
    expect_error("", "\"resources\":{\"devices\":[{\"allow\":true,\"access\":\"rwx\"}]}", "",
                 "linux.resources.devices[0].access");
    expect_error("", "\"devices\":[{\"path\":\"/dev/x\",\"type\":\"z\"}]", "",
                 "linux.devices[0].type");
    expect_error("", "\"devices\":[{\"path\":\"/dev/x\",\"type\":\"c\"}]", "",
                 "linux.devices[0].major");
    expect_error("", "\"devices\":[{\"path\":\"dev/x\",\"type\":\"p\"}]", "",
                 "linux.devices[0].path");
}

/* The features document claims only what the parser takes. */
static void test_features_match_the_parser(void **state)
{
    (void)state;
    char *text = rt_features_json();
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(doc);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "mountOptions"), i, v)
    {
        unsigned long set = 0, clear = 0, prop = 0;
        bool bind = false;
        if (!rt_mount_option_flag(json_string_value(v), &set, &clear, &prop, &bind))
            fail_msg("mount option %s is not a flag option", json_string_value(v));
    }
    json_t *seccomp = json_object_get(json_object_get(doc, "linux"), "seccomp");
    json_array_foreach(json_object_get(seccomp, "actions"), i, v)
    {
        char extra[256];
        snprintf(extra, sizeof(extra),
                 "\"seccomp\":{\"defaultAction\":\"%s\",\"architectures\":[%s]}",
                 json_string_value(v), "\"SCMP_ARCH_X86_64\"");
        char *cfg = config_with("", extra, "");
        rt_config_free(parse_ok(cfg));
        free(cfg);
    }
    json_array_foreach(json_object_get(seccomp, "archs"), i, v)
    {
        char extra[256];
        snprintf(extra, sizeof(extra),
                 "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"%s\"]}",
                 json_string_value(v));
        char *cfg = config_with("", extra, "");
        rt_config_free(parse_ok(cfg));
        free(cfg);
    }
    json_array_foreach(json_object_get(seccomp, "operators"), i, v)
    {
        char extra[320];
        snprintf(extra, sizeof(extra),
                 "\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":"
                 "[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":1,"
                 "\"op\":\"%s\"}]}]}",
                 json_string_value(v));
        char *cfg = config_with("", extra, "");
        rt_config_free(parse_ok(cfg));
        free(cfg);
    }
    json_decref(doc);
}

static void test_hooks(void **state)
{
    (void)state;
    char *text = config_with("", "",
                             "\"hooks\":{\"prestart\":[{\"path\":\"/bin/a\",\"args\":[\"a\",\"1\"],"
                             "\"env\":[\"X=1\"],\"timeout\":5}],\"poststop\":[{\"path\":\"/b\"},"
                             "{\"path\":\"/c\"}]}");
    struct rt_config *c = parse_ok(text);
    free(text);
    assert_int_equal(c->n_hooks[RT_HOOK_PRESTART], 1);
    assert_string_equal(c->hooks[RT_HOOK_PRESTART][0].path, "/bin/a");
    assert_int_equal(c->hooks[RT_HOOK_PRESTART][0].n_args, 2);
    assert_int_equal(c->hooks[RT_HOOK_PRESTART][0].timeout, 5);
    assert_int_equal(c->n_hooks[RT_HOOK_POSTSTOP], 2);
    assert_int_equal(c->n_hooks[RT_HOOK_POSTSTART], 0);
    assert_string_equal(rt_hook_kind_name(RT_HOOK_CREATE_CONTAINER), "createContainer");
    rt_config_free(c);
    expect_error("", "", "\"hooks\":{\"prestart\":[{\"path\":\"rel\"}]}",
                 "hooks.prestart[0].path: an absolute path is required");
    expect_error("", "", "\"hooks\":{\"poststart\":[{\"path\":\"/a\",\"timeout\":0}]}",
                 "hooks.poststart[0].timeout");
    expect_error("", "", "\"hooks\":{\"startContainer\":{}}",
                 "hooks.startContainer: must be an array");
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    char *text = config_with("\"futureField\":{\"x\":1}", "\"intelRdt\":{}",
                             "\"annotations\":{\"a\":\"b\"},\"vm\":{}");
    struct rt_config *c = parse_ok(text);
    rt_config_free(c);
    free(text);
}

static void test_mount_options(void **state)
{
    (void)state;
    unsigned long set = 0, clear = 0, prop = 0;
    bool bind = false;
    assert_true(rt_mount_option_flag("ro", &set, &clear, &prop, &bind));
    assert_true(set & MS_RDONLY);
    assert_true(rt_mount_option_flag("rw", &set, &clear, &prop, &bind));
    assert_false(set & MS_RDONLY);
    assert_true(rt_mount_option_flag("rslave", &set, &clear, &prop, &bind));
    assert_int_equal(prop, MS_SLAVE | MS_REC);
    assert_true(rt_mount_option_flag("rbind", &set, &clear, &prop, &bind));
    assert_true(bind);
    assert_true(set & MS_REC);
    assert_false(rt_mount_option_flag("mode=755", &set, &clear, &prop, &bind));
}

static void test_ids(void **state)
{
    (void)state;
    assert_int_equal(rt_id_validate("web-1.a_b", NULL), 0);
    assert_true(rt_id_validate("", NULL) < 0);
    assert_true(rt_id_validate(".hidden", NULL) < 0);
    assert_true(rt_id_validate("a/b", NULL) < 0);
    assert_true(rt_id_validate("../x", NULL) < 0);
    char long_id[RT_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_true(rt_id_validate(long_id, NULL) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_spec),
        cmocka_unit_test(test_docker_default_caps),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_mount_options),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_features_match_the_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
