/* The cgroup v2 backend on a real cgroup2 mount (as root; on a hybrid host the empty v2
 * tree at /sys/fs/cgroup/unified serves): create with the device filter, enter, list,
 * freeze and thaw, stats, destroy. Skipped without root or a cgroup2 mount. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "skip.h"
#include "runtime/cgroup.h"

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

/* A child that counts in a tight loop, so freezing it is observable. */
static pid_t spawn_counter(int *counter_fd)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        unsigned long n = 0;
        for (;;) {
            if (++n % 1000000 == 0 && write(p[1], "x", 1) < 0)
                _exit(1);
        }
    }
    close(p[1]);
    *counter_fd = p[0];
    return pid;
}

static void test_v2_backend_on_a_real_mount(void **state)
{
    (void)state;
    const char *mnt = cgroup2_mount();
    if (geteuid() != 0)
        GT_SKIP("a cgroup needs root");
    if (mnt == NULL)
        GT_SKIP("no cgroup v2 hierarchy is mounted");
    char path[64];
    snprintf(path, sizeof(path), "gantry-test-%d/c1", (int)getpid());
    struct rt_resources res = {0};
    struct gy_error err;
    gy_error_clear(&err);
    if (rt_cgroup_v2_ops.create(mnt, path, &res, &err) < 0)
        fail_msg("%s", err.msg);
    int counter = -1;
    pid_t child = spawn_counter(&counter);
    assert_true(child > 0);
    int rc = rt_cgroup_v2_ops.enter(mnt, path, child, &err);
    pid_t *pids = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = rt_cgroup_v2_ops.procs(mnt, path, &pids, &n, &err);
    bool listed = rc == 0 && n == 1 && pids[0] == child;
    free(pids);
    int frozen_rc = rc == 0 ? rt_cgroup_v2_ops.freeze(mnt, path, true, &err) : -1;
    int frozen = rt_cgroup_v2_ops.frozen(mnt, path);
    /* Frozen, the counter writes nothing more: drain, wait, and find the pipe empty. */
    fcntl(counter, F_SETFL, O_NONBLOCK);
    char buf[4096];
    while (read(counter, buf, sizeof(buf)) > 0)
        ;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    bool silent = read(counter, buf, sizeof(buf)) < 0;
    int thaw_rc = rt_cgroup_v2_ops.freeze(mnt, path, false, &err);
    int thawed = rt_cgroup_v2_ops.frozen(mnt, path);
    struct rt_stats st;
    int stats_rc = rt_cgroup_v2_ops.stats(mnt, path, &st, NULL);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(counter);
    int destroy_rc = rt_cgroup_v2_ops.destroy(mnt, path, &err);
    char parent[128];
    snprintf(parent, sizeof(parent), "%s/gantry-test-%d", mnt, (int)getpid());
    rmdir(parent);
    assert_int_equal(rc, 0);
    assert_true(listed);
    assert_int_equal(frozen_rc, 0);
    assert_int_equal(frozen, 1);
    assert_true(silent);
    assert_int_equal(thaw_rc, 0);
    assert_int_equal(thawed, 0);
    assert_int_equal(stats_rc, 0);
    assert_true(st.pids <= 1);
    assert_int_equal(destroy_rc, 0);
    char leaf[160];
    snprintf(leaf, sizeof(leaf), "%s/%s", mnt, path);
    struct stat sb;
    assert_int_equal(stat(leaf, &sb), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_backend_on_a_real_mount),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
