/* cgroup v2: one unified hierarchy; controllers are enabled for children through each
 * ancestor's cgroup.subtree_control. */
#include "runtime/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

static const char *const wanted_controllers[] = {"cpu", "memory", "pids", "io", "cpuset"};

uint64_t rt_cgroup_shares_to_weight(uint64_t shares)
{
    if (shares < 2)
        shares = 2;
    if (shares > 262144)
        shares = 262144;
    return 1 + ((shares - 2) * 9999) / 262142;
}

/* Enables the wanted controllers that dir offers for its children. */
static int enable_controllers(const char *dir, struct gy_error *err)
{
    cleanup_free char *avail_path = gy_xasprintf("%s/cgroup.controllers", dir);
    char avail[512];
    if (rt_file_read(avail_path, avail, sizeof(avail), NULL) < 0)
        return 0;
    cleanup_free char *control = gy_xasprintf("%s/cgroup.subtree_control", dir);
    /* One write enables them all: the kernel takes a space-separated list. */
    char value[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof(wanted_controllers) / sizeof(wanted_controllers[0]); i++) {
        const char *name = wanted_controllers[i];
        size_t len = strlen(name);
        bool offered = false;
        for (const char *p = avail; (p = strstr(p, name)) != NULL; p += len)
            if ((p == avail || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\n' || !p[len]))
                offered = true;
        if (offered)
            used += (size_t)snprintf(value + used, sizeof(value) - used, "%s+%s",
                                     used > 0 ? " " : "", name);
    }
    if (used > 0 && rt_file_write(control, value, 0, err) < 0)
        return gy_error_wrap(err, "enable cgroup controllers");
    return 0;
}

static int write_limit(const char *dir, const char *file, const char *value, const char *field,
                       struct gy_error *err)
{
    cleanup_free char *f = gy_xasprintf("%s/%s", dir, file);
    if (rt_file_write(f, value, 0, err) < 0)
        return gy_error_wrap(err, "%s", field);
    return 0;
}

static int v2_set(const char *mnt, const char *path, const struct rt_resources *res,
                  struct gy_error *err);

static int v2_create(const char *mnt, const char *path, const struct rt_resources *res,
                     struct gy_error *err)
{
    int rc;
    /* Walk from the root down to the parent, enabling controllers at each level. */
    cleanup_free char *dir = gy_xasprintf("%s/%s", mnt, path);
    size_t base = strlen(mnt);
    for (char *p = dir + base; p != NULL; p = strchr(p + 1, '/')) {
        char saved = *p;
        *p = '\0';
        if (p != dir + base && mkdir(dir, 0755) < 0 && errno != EEXIST)
            return gy_error_sys(err, errno, "create cgroup %s", dir);
        if ((rc = enable_controllers(dir, err)) < 0)
            return rc;
        *p = saved;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "create cgroup %s", dir);
    if ((rc = v2_set(mnt, path, res, err)) < 0)
        return rc;
    /* A scratch directory (unit tests) is no cgroup: only real ones get the filter. */
    struct statfs fs;
    if (statfs(dir, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC &&
        (rc = rt_cgroup_v2_devices(dir, res, err)) < 0)
        return gy_error_wrap(err, "restrict devices");
    return 0;
}

/* Writes the limits of res (create, and update of a running container). */
static int v2_set(const char *mnt, const char *path, const struct rt_resources *res,
                  struct gy_error *err)
{
    int rc;
    cleanup_free char *dir = gy_xasprintf("%s/%s", mnt, path);
    char value[64];
    if (res->has_memory_limit) {
        if (res->memory_limit < 0)
            snprintf(value, sizeof(value), "max");
        else
            snprintf(value, sizeof(value), "%" PRId64, res->memory_limit);
        if ((rc = write_limit(dir, "memory.max", value, "linux.resources.memory.limit", err)) < 0)
            return rc;
    }
    if (res->has_memory_reservation) {
        snprintf(value, sizeof(value), "%" PRId64, res->memory_reservation);
        if ((rc = write_limit(dir, "memory.low", value, "linux.resources.memory.reservation",
                              err)) < 0)
            return rc;
    }
    if (res->has_memory_swap) {
        /* v1 counts memory plus swap; v2 counts swap alone. */
        if (res->memory_swap < 0)
            snprintf(value, sizeof(value), "max");
        else
            snprintf(value, sizeof(value), "%" PRId64,
                     res->memory_swap -
                         (res->has_memory_limit && res->memory_limit > 0 ? res->memory_limit : 0));
        if ((rc = write_limit(dir, "memory.swap.max", value, "linux.resources.memory.swap", err)) <
            0)
            return rc;
    }
    if (res->has_cpu_shares) {
        snprintf(value, sizeof(value), "%" PRIu64, rt_cgroup_shares_to_weight(res->cpu_shares));
        if ((rc = write_limit(dir, "cpu.weight", value, "linux.resources.cpu.shares", err)) < 0)
            return rc;
    }
    if (res->has_cpu_quota || res->has_cpu_period) {
        uint64_t period = res->has_cpu_period ? res->cpu_period : 100000;
        if (res->has_cpu_quota && res->cpu_quota >= 0)
            snprintf(value, sizeof(value), "%" PRId64 " %" PRIu64, res->cpu_quota, period);
        else
            snprintf(value, sizeof(value), "max %" PRIu64, period);
        if ((rc = write_limit(dir, "cpu.max", value,
                              res->has_cpu_quota ? "linux.resources.cpu.quota"
                                                 : "linux.resources.cpu.period",
                              err)) < 0)
            return rc;
    }
    if (res->has_pids_limit) {
        if (res->pids_limit < 0)
            snprintf(value, sizeof(value), "max");
        else
            snprintf(value, sizeof(value), "%" PRId64, res->pids_limit);
        if ((rc = write_limit(dir, "pids.max", value, "linux.resources.pids.limit", err)) < 0)
            return rc;
    }
    if (res->cpus != NULL &&
        (rc = write_limit(dir, "cpuset.cpus", res->cpus, "linux.resources.cpu.cpus", err)) < 0)
        return rc;
    if (res->mems != NULL &&
        (rc = write_limit(dir, "cpuset.mems", res->mems, "linux.resources.cpu.mems", err)) < 0)
        return rc;
    if (res->has_blkio_weight) {
        /* io.weight with the default scheduler, io.bfq.weight with BFQ. */
        snprintf(value, sizeof(value), "%u", res->blkio_weight);
        cleanup_free char *plain = gy_xasprintf("%s/io.weight", dir);
        struct stat st;
        if ((rc = write_limit(dir, stat(plain, &st) == 0 ? "io.weight" : "io.bfq.weight", value,
                              "linux.resources.blockIO.weight", err)) < 0)
            return rc;
    }
    static const char *const keys[RT_THROTTLE_COUNT] = {
        [RT_THROTTLE_READ_BPS] = "rbps",
        [RT_THROTTLE_WRITE_BPS] = "wbps",
        [RT_THROTTLE_READ_IOPS] = "riops",
        [RT_THROTTLE_WRITE_IOPS] = "wiops",
    };
    for (int k = 0; k < RT_THROTTLE_COUNT; k++) {
        for (size_t i = 0; i < res->n_throttle[k]; i++) {
            const struct rt_throttle *t = &res->throttle[k][i];
            char field[96];
            snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]",
                     rt_throttle_name((enum rt_throttle_kind)k), i);
            snprintf(value, sizeof(value), "%u:%u %s=%" PRIu64, t->major, t->minor, keys[k],
                     t->rate);
            if ((rc = write_limit(dir, "io.max", value, field, err)) < 0)
                return rc;
        }
    }
    return 0;
}

static int v2_enter(const char *mnt, const char *path, pid_t pid, struct gy_error *err)
{
    cleanup_free char *f = gy_xasprintf("%s/%s/cgroup.procs", mnt, path);
    char value[32];
    snprintf(value, sizeof(value), "%d", (int)pid);
    if (rt_file_write(f, value, 0, err) < 0)
        return gy_error_wrap(err, "join cgroup");
    return 0;
}

static uint64_t read_u64(const char *dir, const char *file)
{
    cleanup_free char *f = gy_xasprintf("%s/%s", dir, file);
    char buf[64];
    if (rt_file_read(f, buf, sizeof(buf), NULL) < 0 || strncmp(buf, "max", 3) == 0)
        return 0;
    return strtoull(buf, NULL, 10);
}

static int v2_stats(const char *mnt, const char *path, struct rt_stats *out, struct gy_error *err)
{
    cleanup_free char *dir = gy_xasprintf("%s/%s", mnt, path);
    struct stat st;
    if (stat(dir, &st) < 0)
        return gy_error_set(err, GY_ENOTFOUND, "cgroup %s: not found", dir);
    memset(out, 0, sizeof(*out));
    cleanup_free char *cpu_stat = gy_xasprintf("%s/cpu.stat", dir);
    char buf[1024];
    if (rt_file_read(cpu_stat, buf, sizeof(buf), NULL) >= 0) {
        int64_t usec = rt_keyed_value(buf, "usage_usec");
        if (usec > 0)
            out->cpu_usage_ns = (uint64_t)usec * 1000;
    }
    out->memory_bytes = read_u64(dir, "memory.current");
    out->memory_limit = read_u64(dir, "memory.max");
    out->pids = read_u64(dir, "pids.current");
    return 0;
}

static int v2_oom_kills(const char *mnt, const char *path, uint64_t *count, struct gy_error *err)
{
    cleanup_free char *f = gy_xasprintf("%s/%s/memory.events", mnt, path);
    char buf[512];
    if (rt_file_read(f, buf, sizeof(buf), err) < 0)
        return -GY_ESYS;
    int64_t v = rt_keyed_value(buf, "oom_kill");
    *count = v > 0 ? (uint64_t)v : 0;
    return 0;
}

static int v2_procs(const char *mnt, const char *path, pid_t **pids, size_t *count,
                    struct gy_error *err)
{
    cleanup_free char *f = gy_xasprintf("%s/%s/cgroup.procs", mnt, path);
    cleanup_free char *buf = gy_xmalloc(1 << 16);
    if (rt_file_read(f, buf, 1 << 16, err) < 0)
        return -GY_ESYS;
    return rt_pids_parse(buf, pids, count);
}

static int v2_destroy(const char *mnt, const char *path, struct gy_error *err)
{
    cleanup_free char *dir = gy_xasprintf("%s/%s", mnt, path);
    for (int attempt = 0; attempt < 200; attempt++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return gy_error_sys(err, errno, "remove cgroup %s", dir);
}

static int v2_frozen(const char *mnt, const char *path)
{
    cleanup_free char *f = gy_xasprintf("%s/%s/cgroup.events", mnt, path);
    char buf[256];
    if (rt_file_read(f, buf, sizeof(buf), NULL) < 0)
        return -1;
    return rt_keyed_value(buf, "frozen") == 1 ? 1 : 0;
}

static int v2_freeze(const char *mnt, const char *path, bool frozen, struct gy_error *err)
{
    cleanup_free char *f = gy_xasprintf("%s/%s/cgroup.freeze", mnt, path);
    if (rt_file_write(f, frozen ? "1" : "0", 0, err) < 0)
        return -GY_ESYS;
    /* cgroup.events reports "frozen 1" once every task has stopped. */
    for (int attempt = 0; attempt < 500; attempt++) {
        if (v2_frozen(mnt, path) == (frozen ? 1 : 0))
            return 0;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return gy_error_set(err, GY_ETIMEOUT, "%s: the cgroup did not become %s", f,
                        frozen ? "frozen" : "thawed");
}

static int v2_dirs(const char *mnt, const char *path, char ***hosts, char ***names,
                   struct gy_error *err)
{
    (void)err;
    char **h = gy_xcalloc(2, sizeof(char *));
    char **n = gy_xcalloc(2, sizeof(char *));
    h[0] = gy_xasprintf("%s/%s", mnt, path);
    n[0] = gy_xstrdup("");
    *hosts = h;
    *names = n;
    return 1;
}

const struct rt_cgroup_ops rt_cgroup_v2_ops = {
    .name = "v2",
    .create = v2_create,
    .set = v2_set,
    .enter = v2_enter,
    .stats = v2_stats,
    .oom_kills = v2_oom_kills,
    .procs = v2_procs,
    .destroy = v2_destroy,
    .freeze = v2_freeze,
    .frozen = v2_frozen,
    .dirs = v2_dirs,
};
