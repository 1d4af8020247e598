/* Unit tests of the cgroup backends against a scratch directory laid out like cgroupfs:
 * which files get which values for v1 and v2, stats and OOM counts read back, removal,
 * and the helpers (paths, shares to weight, keyed files, pid lists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cgroup.h"

struct scratch {
    char dir[64];
};

/* Runs "CMD DIR" (rm -rf of a scratch path). */
static void run(const char *cmd_prefix, const char *arg)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s", cmd_prefix, arg);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static int setup(void **state)
{
    struct scratch *s = calloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/gantry-cgtest.XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    struct scratch *s = *state;
    run("rm -rf", s->dir);
    free(s);
    return 0;
}

/* Makes dir/rel (and parents) and empty files in it, as the kernel would. */
static void make_files(const char *dir, const char *rel, const char *const *files)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    assert_int_equal(rt_mkdir_p(path, NULL), 0);
    for (size_t i = 0; files[i] != NULL; i++) {
        char f[600];
        snprintf(f, sizeof(f), "%s/%s", path, files[i]);
        FILE *fp = fopen(f, "w");
        assert_non_null(fp);
        fclose(fp);
    }
}

static void put(const char *dir, const char *rel, const char *text)
{
    char f[600];
    snprintf(f, sizeof(f), "%s/%s", dir, rel);
    assert_int_equal(rt_file_write(f, text, 1, NULL), 0);
}

static void expect(const char *dir, const char *rel, const char *want)
{
    char f[600], buf[256];
    snprintf(f, sizeof(f), "%s/%s", dir, rel);
    struct gy_error err;
    if (rt_file_read(f, buf, sizeof(buf), &err) < 0)
        fail_msg("%s", err.msg);
    if (strcmp(buf, want) != 0)
        fail_msg("%s: \"%s\", want \"%s\"", rel, buf, want);
}

static void test_helpers(void **state)
{
    (void)state;
    char *p = rt_cgroup_path(NULL, "web-1");
    assert_string_equal(p, "gantry/web-1");
    free(p);
    p = rt_cgroup_path("/custom/path/", "x");
    assert_string_equal(p, "custom/path");
    free(p);
    assert_int_equal(rt_cgroup_shares_to_weight(2), 1);
    assert_int_equal(rt_cgroup_shares_to_weight(1024), 39);
    assert_int_equal(rt_cgroup_shares_to_weight(262144), 10000);
    assert_int_equal(rt_keyed_value("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
                     3);
    assert_int_equal(rt_keyed_value("usage_usec 42\n", "user_usec"), -1);
    pid_t *pids = NULL;
    size_t n = 0;
    rt_pids_parse("12\n345\n6\n", &pids, &n);
    assert_int_equal(n, 3);
    assert_int_equal(pids[1], 345);
    free(pids);
}

static void test_detect_plain_dir_is_v1(void **state)
{
    struct scratch *s = *state;
    assert_ptr_equal(rt_cgroup_detect(s->dir), &rt_cgroup_v1_ops);
}

static void test_v2_create(void **state)
{
    struct scratch *s = *state;
    static const char *const root_files[] = {"cgroup.controllers", "cgroup.subtree_control", NULL};
    static const char *const leaf_files[] = {"memory.max",   "memory.low", "memory.swap.max",
                                             "cpu.max",      "cpu.weight", "pids.max",
                                             "cgroup.procs", NULL};
    make_files(s->dir, "", root_files);
    make_files(s->dir, "gantry", root_files);
    make_files(s->dir, "gantry/c1", leaf_files);
    put(s->dir, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(s->dir, "gantry/cgroup.controllers", "cpu memory pids\n");
    struct rt_resources res = {
        .has_memory_limit = true,
        .memory_limit = 64 << 20,
        .has_memory_swap = true,
        .memory_swap = 96 << 20,
        .has_cpu_shares = true,
        .cpu_shares = 1024,
        .has_cpu_quota = true,
        .cpu_quota = 50000,
        .has_pids_limit = true,
        .pids_limit = -1,
    };
    struct gy_error err;
    if (rt_cgroup_v2_ops.create(s->dir, "gantry/c1", &res, &err) < 0)
        fail_msg("%s", err.msg);
    expect(s->dir, "cgroup.subtree_control", "+cpu +memory +pids +io +cpuset");
    expect(s->dir, "gantry/cgroup.subtree_control", "+cpu +memory +pids");
    expect(s->dir, "gantry/c1/memory.max", "67108864");
    expect(s->dir, "gantry/c1/memory.swap.max", "33554432");
    expect(s->dir, "gantry/c1/cpu.max", "50000 100000");
    expect(s->dir, "gantry/c1/cpu.weight", "39");
    expect(s->dir, "gantry/c1/pids.max", "max");
    assert_int_equal(rt_cgroup_v2_ops.enter(s->dir, "gantry/c1", 4242, NULL), 0);
    expect(s->dir, "gantry/c1/cgroup.procs", "4242");
}

static void test_v2_unlimited_quota(void **state)
{
    struct scratch *s = *state;
    static const char *const leaf_files[] = {"cpu.max", "memory.max", NULL};
    make_files(s->dir, "g/c2", leaf_files);
    struct rt_resources res = {
        .has_cpu_period = true, .cpu_period = 20000, .has_memory_limit = true, .memory_limit = -1};
    assert_int_equal(rt_cgroup_v2_ops.create(s->dir, "g/c2", &res, NULL), 0);
    expect(s->dir, "g/c2/cpu.max", "max 20000");
    expect(s->dir, "g/c2/memory.max", "max");
}

static void test_v2_stats_and_oom(void **state)
{
    struct scratch *s = *state;
    static const char *const none[] = {NULL};
    make_files(s->dir, "gantry/c3", none);
    put(s->dir, "gantry/c3/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
    put(s->dir, "gantry/c3/memory.current", "123456\n");
    put(s->dir, "gantry/c3/memory.max", "max\n");
    put(s->dir, "gantry/c3/pids.current", "7\n");
    put(s->dir, "gantry/c3/memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n");
    struct rt_stats st;
    assert_int_equal(rt_cgroup_v2_ops.stats(s->dir, "gantry/c3", &st, NULL), 0);
    assert_int_equal(st.cpu_usage_ns, 1500000);
    assert_int_equal(st.memory_bytes, 123456);
    assert_int_equal(st.memory_limit, 0);
    assert_int_equal(st.pids, 7);
    uint64_t ooms = 0;
    assert_int_equal(rt_cgroup_v2_ops.oom_kills(s->dir, "gantry/c3", &ooms, NULL), 0);
    assert_int_equal(ooms, 1);
    assert_int_equal(rt_cgroup_v2_ops.destroy(s->dir, "gantry/c3", NULL) < 0, 1);
    char files[128];
    snprintf(files, sizeof(files), "%s/gantry/c3/*", s->dir);
    run("rm -f", files);
    assert_int_equal(rt_cgroup_v2_ops.destroy(s->dir, "gantry/c3", NULL), 0);
    assert_int_equal(rt_cgroup_v2_ops.destroy(s->dir, "gantry/c3", NULL), 0);
}

static void test_v1_create_and_stats(void **state)
{
    struct scratch *s = *state;
    static const char *const mem[] = {"memory.limit_in_bytes", "memory.soft_limit_in_bytes",
                                      "cgroup.procs", NULL};
    static const char *const cpu[] = {"cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us",
                                      "cgroup.procs", NULL};
    static const char *const pids[] = {"pids.max", "cgroup.procs", NULL};
    static const char *const devices[] = {"devices.deny", "devices.allow", "cgroup.procs", NULL};
    make_files(s->dir, "memory/gantry/c1", mem);
    make_files(s->dir, "cpu,cpuacct/gantry/c1", cpu);
    make_files(s->dir, "pids/gantry/c1", pids);
    make_files(s->dir, "devices/gantry/c1", devices);
    struct rt_resources res = {
        .has_memory_limit = true,
        .memory_limit = 1 << 20,
        .has_cpu_shares = true,
        .cpu_shares = 512,
        .has_cpu_quota = true,
        .cpu_quota = 25000,
        .has_cpu_period = true,
        .cpu_period = 50000,
        .has_pids_limit = true,
        .pids_limit = 10,
    };
    struct gy_error err;
    if (rt_cgroup_v1_ops.create(s->dir, "gantry/c1", &res, &err) < 0)
        fail_msg("%s", err.msg);
    expect(s->dir, "memory/gantry/c1/memory.limit_in_bytes", "1048576");
    expect(s->dir, "cpu,cpuacct/gantry/c1/cpu.shares", "512");
    expect(s->dir, "cpu,cpuacct/gantry/c1/cpu.cfs_quota_us", "25000");
    expect(s->dir, "cpu,cpuacct/gantry/c1/cpu.cfs_period_us", "50000");
    expect(s->dir, "pids/gantry/c1/pids.max", "10");
    expect(s->dir, "devices/gantry/c1/devices.deny", "a");
    /* The last rule of the default allow list. */
    expect(s->dir, "devices/gantry/c1/devices.allow", "c 10:200 rwm");
    assert_int_equal(rt_cgroup_v1_ops.enter(s->dir, "gantry/c1", 99, NULL), 0);
    expect(s->dir, "pids/gantry/c1/cgroup.procs", "99");
    expect(s->dir, "memory/gantry/c1/cgroup.procs", "99");

    put(s->dir, "cpu,cpuacct/gantry/c1/cpuacct.usage", "987654321\n");
    put(s->dir, "memory/gantry/c1/memory.usage_in_bytes", "4096\n");
    put(s->dir, "memory/gantry/c1/memory.limit_in_bytes", "9223372036854771712\n");
    put(s->dir, "pids/gantry/c1/pids.current", "2\n");
    put(s->dir, "memory/gantry/c1/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    struct rt_stats st;
    assert_int_equal(rt_cgroup_v1_ops.stats(s->dir, "gantry/c1", &st, NULL), 0);
    assert_int_equal(st.cpu_usage_ns, 987654321);
    assert_int_equal(st.memory_bytes, 4096);
    assert_int_equal(st.memory_limit, 0);
    assert_int_equal(st.pids, 2);
    uint64_t ooms = 0;
    assert_int_equal(rt_cgroup_v1_ops.oom_kills(s->dir, "gantry/c1", &ooms, NULL), 0);
    assert_int_equal(ooms, 2);
    put(s->dir, "pids/gantry/c1/cgroup.procs", "10\n11\n");
    pid_t *list = NULL;
    size_t n = 0;
    assert_int_equal(rt_cgroup_v1_ops.procs(s->dir, "gantry/c1", &list, &n, NULL), 0);
    assert_int_equal(n, 2);
    free(list);
    char **hosts = NULL, **names = NULL;
    int count = rt_cgroup_v1_ops.dirs(s->dir, "gantry/c1", &hosts, &names, NULL);
    assert_int_equal(count, 5); /* memory, cpu, cpuacct (both co-mounted), pids, devices */
    for (int i = 0; i < count; i++) {
        free(hosts[i]);
        free(names[i]);
    }
    free(hosts);
    free(names);
}

static void test_v1_optional_hierarchies(void **state)
{
    struct scratch *s = *state;
    static const char *const cpuset_root[] = {"cpuset.cpus", "cpuset.mems", NULL};
    static const char *const cpuset_leaf[] = {"cpuset.cpus", "cpuset.mems", "cgroup.procs", NULL};
    static const char *const blkio[] = {"blkio.throttle.read_bps_device", "blkio.bfq.weight",
                                        "cgroup.procs", NULL};
    static const char *const mem[] = {"cgroup.procs", NULL};
    make_files(s->dir, "cpuset", cpuset_root);
    put(s->dir, "cpuset/cpuset.cpus", "0-7\n");
    put(s->dir, "cpuset/cpuset.mems", "0\n");
    make_files(s->dir, "cpuset/gantry", cpuset_root);
    make_files(s->dir, "cpuset/gantry/c1", cpuset_leaf);
    make_files(s->dir, "blkio/gantry/c1", blkio);
    make_files(s->dir, "memory/gantry/c1", mem);
    make_files(s->dir, "memory/gantry/c2", mem);
    /* No cpus or blockIO: the optional hierarchies are left alone. */
    struct rt_resources none = {0};
    assert_int_equal(rt_cgroup_v1_ops.create(s->dir, "gantry/c2", &none, NULL), 0);
    struct stat st;
    char path[512];
    snprintf(path, sizeof(path), "%s/cpuset/gantry/c2", s->dir);
    assert_int_equal(stat(path, &st), -1);
    char **hosts = NULL, **names = NULL;
    int n = rt_cgroup_v1_ops.dirs(s->dir, "gantry/c2", &hosts, &names, NULL);
    assert_int_equal(n, 1); /* memory only */
    for (int i = 0; i < n; i++) {
        free(hosts[i]);
        free(names[i]);
    }
    free(hosts);
    free(names);

    struct rt_throttle t = {.major = 8, .minor = 0, .rate = 1000};
    struct rt_resources res = {.cpus = "2-3", .has_blkio_weight = true, .blkio_weight = 300};
    res.throttle[RT_THROTTLE_READ_BPS] = &t;
    res.n_throttle[RT_THROTTLE_READ_BPS] = 1;
    struct gy_error err;
    if (rt_cgroup_v1_ops.create(s->dir, "gantry/c1", &res, &err) < 0)
        fail_msg("%s", err.msg);
    /* The parent learnt its cpus and mems from the root before the leaf was set. */
    expect(s->dir, "cpuset/gantry/cpuset.cpus", "0-7\n");
    expect(s->dir, "cpuset/gantry/c1/cpuset.mems", "0\n");
    /* Written over the copied "0-7\n" (a scratch file keeps the old tail; the kernel
     * would replace the value). */
    expect(s->dir, "cpuset/gantry/c1/cpuset.cpus", "2-3\n");
    expect(s->dir, "blkio/gantry/c1/blkio.bfq.weight", "300");
    expect(s->dir, "blkio/gantry/c1/blkio.throttle.read_bps_device", "8:0 1000");
}

static void test_v2_update_io_and_cpuset(void **state)
{
    struct scratch *s = *state;
    static const char *const leaf[] = {"io.max", "io.weight", "cpuset.cpus", "memory.max", NULL};
    make_files(s->dir, "gantry/c5", leaf);
    struct rt_throttle t = {.major = 253, .minor = 1, .rate = 50};
    struct rt_resources res = {.cpus = "1", .has_blkio_weight = true, .blkio_weight = 200};
    res.throttle[RT_THROTTLE_WRITE_IOPS] = &t;
    res.n_throttle[RT_THROTTLE_WRITE_IOPS] = 1;
    assert_int_equal(rt_cgroup_v2_ops.set(s->dir, "gantry/c5", &res, NULL), 0);
    expect(s->dir, "gantry/c5/cpuset.cpus", "1");
    expect(s->dir, "gantry/c5/io.weight", "200");
    expect(s->dir, "gantry/c5/io.max", "253:1 wiops=50");
    struct rt_resources mem = {.has_memory_limit = true, .memory_limit = 8192};
    assert_int_equal(rt_cgroup_v2_ops.set(s->dir, "gantry/c5", &mem, NULL), 0);
    expect(s->dir, "gantry/c5/memory.max", "8192");
}

static void test_v1_missing_controller_names_field(void **state)
{
    struct scratch *s = *state;
    static const char *const mem[] = {"memory.limit_in_bytes", NULL};
    make_files(s->dir, "memory/gantry/c9", mem);
    struct rt_resources res = {.has_pids_limit = true, .pids_limit = 5};
    struct gy_error err;
    gy_error_clear(&err);
    assert_true(rt_cgroup_v1_ops.create(s->dir, "gantry/c9", &res, &err) < 0);
    assert_non_null(strstr(err.msg, "linux.resources.pids.limit"));
    assert_non_null(strstr(err.msg, "pids cgroup controller is not mounted"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_helpers),
        cmocka_unit_test_setup_teardown(test_detect_plain_dir_is_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_unlimited_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_stats_and_oom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_create_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_missing_controller_names_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_optional_hierarchies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_update_io_and_cpuset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
