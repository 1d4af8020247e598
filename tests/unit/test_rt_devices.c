/* Unit tests of device access control: rule parsing, the eBPF program's shape, and (as
 * root, on a host with a cgroup2 mount) the program attached to a real cgroup, allowing
 * /dev/null and refusing a memory device and a block device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "skip.h"
#include "runtime/cgroup.h"

static void test_rule_parse(void **state)
{
    (void)state;
    struct rt_device_rule r;
    assert_int_equal(rt_device_rule_parse("c 1:3 rwm", &r), 0);
    assert_int_equal(r.type, BPF_DEVCG_DEV_CHAR);
    assert_int_equal(r.major, 1);
    assert_int_equal(r.minor, 3);
    assert_int_equal(r.access, BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD);
    assert_int_equal(rt_device_rule_parse("b *:* m", &r), 0);
    assert_int_equal(r.type, BPF_DEVCG_DEV_BLOCK);
    assert_int_equal(r.major, -1);
    assert_int_equal(r.minor, -1);
    assert_int_equal(r.access, BPF_DEVCG_ACC_MKNOD);
    assert_int_equal(rt_device_rule_parse("a *:* r", &r), 0);
    assert_int_equal(r.type, 0);
    assert_int_equal(rt_device_rule_parse("x 1:3 rwm", &r), -1);
    assert_int_equal(rt_device_rule_parse("c 1:3 rwz", &r), -1);
    assert_int_equal(rt_device_rule_parse("c 1 rwm", &r), -1);
    for (size_t i = 0; rt_default_device_rules[i] != NULL; i++)
        assert_int_equal(rt_device_rule_parse(rt_default_device_rules[i], &r), 0);
}

static void test_program_shape(void **state)
{
    (void)state;
    struct rt_device_rule rules[2];
    rt_device_rule_parse("c 1:3 rwm", &rules[0]);
    rt_device_rule_parse("b *:* m", &rules[1]);
    struct bpf_insn prog[64];
    int n = rt_device_program(rules, 2, prog, 64);
    /* 6 loads, 8 + 6 for the two rules, 2 for the final deny. */
    assert_int_equal(n, 6 + 8 + 6 + 2);
    assert_int_equal(prog[n - 1].code, BPF_JMP | BPF_EXIT);
    assert_int_equal(prog[n - 2].imm, 0);
    /* The last rule is tested first; its type test jumps over the rest of its block. */
    assert_int_equal(prog[6].code, BPF_JMP | BPF_JNE | BPF_K);
    assert_int_equal(prog[6].imm, BPF_DEVCG_DEV_BLOCK);
    assert_int_equal(prog[6].off, 5);
    assert_int_equal(rt_device_program(rules, 2, prog, 10), -1);
}

static const char *cgroup2_mount(void)
{
    static const char *const candidates[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    for (size_t i = 0; i < 2; i++) {
        struct statfs fs;
        if (statfs(candidates[i], &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
            return candidates[i];
    }
    return NULL;
}

/* In the child: join the cgroup, then try the devices; the exit status has one bit per
 * outcome that differs from the expectation. */
static int probe_devices(const char *procs, const char *scratch)
{
    int wrong = 0;
    int fd = open(procs, O_WRONLY);
    if (fd < 0 || write(fd, "0", 1) != 1)
        return 64;
    close(fd);
    fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        wrong |= 1;
    else
        close(fd);
    char mem[256], blk[256];
    snprintf(mem, sizeof(mem), "%s/mem", scratch);
    snprintf(blk, sizeof(blk), "%s/loop", scratch);
    if (mknod(mem, S_IFCHR | 0600, makedev(1, 1)) < 0)
        wrong |= 2; /* mknod is allowed for every device */
    if (mknod(blk, S_IFBLK | 0600, makedev(7, 0)) < 0)
        wrong |= 2;
    fd = open(mem, O_RDONLY);
    if (fd >= 0 || errno != EPERM)
        wrong |= 4;
    fd = open(blk, O_RDONLY);
    if (fd >= 0 || errno != EPERM)
        wrong |= 8;
    return wrong;
}

static void test_filter_on_a_real_cgroup(void **state)
{
    (void)state;
    const char *mnt = cgroup2_mount();
    if (geteuid() != 0)
        GT_SKIP("a cgroup needs root");
    if (mnt == NULL)
        GT_SKIP("no cgroup v2 hierarchy is mounted");
    char dir[256], procs[300], scratch[64];
    snprintf(dir, sizeof(dir), "%s/gantry-devtest-%d", mnt, (int)getpid());
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
    snprintf(scratch, sizeof(scratch), "/tmp/gantry-devtest.XXXXXX");
    assert_non_null(mkdtemp(scratch));
    assert_int_equal(mkdir(dir, 0755), 0);
    struct gy_error err;
    gy_error_clear(&err);
    struct rt_resources none = {0};
    int rc = rt_cgroup_v2_devices(dir, &none, &err);
    int status = -1;
    if (rc == 0) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(probe_devices(procs, scratch));
        waitpid(pid, &status, 0);
    }
    char path[300];
    snprintf(path, sizeof(path), "%s/mem", scratch);
    unlink(path);
    snprintf(path, sizeof(path), "%s/loop", scratch);
    unlink(path);
    rmdir(scratch);
    rmdir(dir);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_parse),
        cmocka_unit_test(test_program_shape),
        cmocka_unit_test(test_filter_on_a_real_cgroup),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
