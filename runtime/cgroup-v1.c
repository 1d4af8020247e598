/* cgroup v1: one directory per controller hierarchy (memory, cpu, cpuacct, pids,
 * devices), as on hosts that run the legacy or hybrid layout. */
#include "runtime/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* The hierarchies a container joins. cpu and cpuacct are often co-mounted as
 * "cpu,cpuacct"; find_hierarchy tries both spellings. */
static const char *const controllers[] = {"memory", "cpu", "cpuacct", "pids", "devices", "freezer"};
#define N_CONTROLLERS (sizeof(controllers) / sizeof(controllers[0]))

/* The directory of a controller's hierarchy under mnt, or NULL if it is not mounted. */
static char *find_hierarchy(const char *mnt, const char *controller)
{
    struct stat st;
    char *dir = gy_xasprintf("%s/%s", mnt, controller);
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return dir;
    free(dir);
    if (strcmp(controller, "cpu") == 0 || strcmp(controller, "cpuacct") == 0) {
        dir = gy_xasprintf("%s/cpu,cpuacct", mnt);
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            return dir;
        free(dir);
    }
    return NULL;
}

static char *cgroup_file(const char *mnt, const char *controller, const char *path,
                         const char *file)
{
    cleanup_free char *h = find_hierarchy(mnt, controller);
    if (h == NULL)
        return NULL;
    return gy_xasprintf("%s/%s/%s", h, path, file);
}

/* Writes one limit; an error names the config field and the file. */
static int write_limit(const char *mnt, const char *controller, const char *path, const char *file,
                       const char *value, const char *field, struct gy_error *err)
{
    cleanup_free char *f = cgroup_file(mnt, controller, path, file);
    if (f == NULL)
        return gy_error_set(err, GY_EINVAL, "%s: the %s cgroup controller is not mounted at %s",
                            field, controller, mnt);
    if (rt_file_write(f, value, 0, err) < 0)
        return gy_error_wrap(err, "%s", field);
    return 0;
}

static int v1_create(const char *mnt, const char *path, const struct rt_resources *res,
                     struct gy_error *err)
{
    int rc;
    for (size_t i = 0; i < N_CONTROLLERS; i++) {
        cleanup_free char *h = find_hierarchy(mnt, controllers[i]);
        if (h == NULL)
            continue;
        cleanup_free char *dir = gy_xasprintf("%s/%s", h, path);
        if ((rc = rt_mkdir_p(dir, err)) < 0)
            return gy_error_wrap(err, "create cgroup");
    }
    char value[64];
    if (res->has_memory_limit) {
        snprintf(value, sizeof(value), "%" PRId64, res->memory_limit);
        if ((rc = write_limit(mnt, "memory", path, "memory.limit_in_bytes", value,
                              "linux.resources.memory.limit", err)) < 0)
            return rc;
    }
    if (res->has_memory_reservation) {
        snprintf(value, sizeof(value), "%" PRId64, res->memory_reservation);
        if ((rc = write_limit(mnt, "memory", path, "memory.soft_limit_in_bytes", value,
                              "linux.resources.memory.reservation", err)) < 0)
            return rc;
    }
    if (res->has_memory_swap) {
        snprintf(value, sizeof(value), "%" PRId64, res->memory_swap);
        if ((rc = write_limit(mnt, "memory", path, "memory.memsw.limit_in_bytes", value,
                              "linux.resources.memory.swap", err)) < 0)
            return rc;
    }
    if (res->has_cpu_shares) {
        snprintf(value, sizeof(value), "%" PRIu64, res->cpu_shares);
        if ((rc = write_limit(mnt, "cpu", path, "cpu.shares", value, "linux.resources.cpu.shares",
                              err)) < 0)
            return rc;
    }
    /* The period goes first: the kernel checks the quota against the current period. */
    if (res->has_cpu_period) {
        snprintf(value, sizeof(value), "%" PRIu64, res->cpu_period);
        if ((rc = write_limit(mnt, "cpu", path, "cpu.cfs_period_us", value,
                              "linux.resources.cpu.period", err)) < 0)
            return rc;
    }
    if (res->has_cpu_quota) {
        snprintf(value, sizeof(value), "%" PRId64, res->cpu_quota);
        if ((rc = write_limit(mnt, "cpu", path, "cpu.cfs_quota_us", value,
                              "linux.resources.cpu.quota", err)) < 0)
            return rc;
    }
    if (res->has_pids_limit) {
        if (res->pids_limit < 0)
            snprintf(value, sizeof(value), "max");
        else
            snprintf(value, sizeof(value), "%" PRId64, res->pids_limit);
        if ((rc = write_limit(mnt, "pids", path, "pids.max", value, "linux.resources.pids.limit",
                              err)) < 0)
            return rc;
    }
    cleanup_free char *deny = cgroup_file(mnt, "devices", path, "devices.deny");
    if (deny != NULL) {
        if ((rc = rt_file_write(deny, "a", 0, err)) < 0)
            return gy_error_wrap(err, "restrict devices");
        cleanup_free char *allow = cgroup_file(mnt, "devices", path, "devices.allow");
        for (size_t i = 0; rt_default_device_rules[i] != NULL; i++)
            if ((rc = rt_file_write(allow, rt_default_device_rules[i], 0, err)) < 0)
                return gy_error_wrap(err, "allow devices");
    }
    return 0;
}

static int v1_enter(const char *mnt, const char *path, pid_t pid, struct gy_error *err)
{
    char value[32];
    snprintf(value, sizeof(value), "%d", (int)pid);
    for (size_t i = 0; i < N_CONTROLLERS; i++) {
        cleanup_free char *f = cgroup_file(mnt, controllers[i], path, "cgroup.procs");
        if (f == NULL)
            continue;
        if (rt_file_write(f, value, 0, err) < 0)
            return gy_error_wrap(err, "join cgroup");
    }
    return 0;
}

static uint64_t read_u64(const char *mnt, const char *controller, const char *path,
                         const char *file)
{
    cleanup_free char *f = cgroup_file(mnt, controller, path, file);
    char buf[64];
    if (f == NULL || rt_file_read(f, buf, sizeof(buf), NULL) < 0)
        return 0;
    return strtoull(buf, NULL, 10);
}

static int v1_stats(const char *mnt, const char *path, struct rt_stats *out, struct gy_error *err)
{
    cleanup_free char *mem = cgroup_file(mnt, "memory", path, "memory.usage_in_bytes");
    struct stat st;
    if (mem == NULL || stat(mem, &st) < 0)
        return gy_error_set(err, GY_ENOTFOUND, "cgroup %s: not found", path);
    memset(out, 0, sizeof(*out));
    out->cpu_usage_ns = read_u64(mnt, "cpuacct", path, "cpuacct.usage");
    out->memory_bytes = read_u64(mnt, "memory", path, "memory.usage_in_bytes");
    out->memory_limit = read_u64(mnt, "memory", path, "memory.limit_in_bytes");
    /* The kernel reports "no limit" as the largest page-aligned value. */
    if (out->memory_limit >= (UINT64_C(1) << 62))
        out->memory_limit = 0;
    out->pids = read_u64(mnt, "pids", path, "pids.current");
    return 0;
}

static int v1_oom_kills(const char *mnt, const char *path, uint64_t *count, struct gy_error *err)
{
    cleanup_free char *f = cgroup_file(mnt, "memory", path, "memory.oom_control");
    char buf[256];
    if (f == NULL)
        return gy_error_set(err, GY_ENOTFOUND, "memory cgroup controller is not mounted");
    if (rt_file_read(f, buf, sizeof(buf), err) < 0)
        return -GY_ESYS;
    int64_t v = rt_keyed_value(buf, "oom_kill");
    *count = v > 0 ? (uint64_t)v : 0;
    return 0;
}

static int v1_procs(const char *mnt, const char *path, pid_t **pids, size_t *count,
                    struct gy_error *err)
{
    /* The pids hierarchy sees every task of the container; memory is the fallback. */
    cleanup_free char *f = cgroup_file(mnt, "pids", path, "cgroup.procs");
    if (f == NULL)
        f = cgroup_file(mnt, "memory", path, "cgroup.procs");
    if (f == NULL)
        return gy_error_set(err, GY_ENOTFOUND, "no pids or memory cgroup controller");
    cleanup_free char *buf = gy_xmalloc(1 << 16);
    if (rt_file_read(f, buf, 1 << 16, err) < 0)
        return -GY_ESYS;
    return rt_pids_parse(buf, pids, count);
}

static int v1_destroy(const char *mnt, const char *path, struct gy_error *err)
{
    int result = 0;
    for (size_t i = 0; i < N_CONTROLLERS; i++) {
        cleanup_free char *h = find_hierarchy(mnt, controllers[i]);
        if (h == NULL)
            continue;
        cleanup_free char *dir = gy_xasprintf("%s/%s", h, path);
        /* Tasks that have just exited can keep the cgroup busy for a moment. */
        for (int attempt = 0; attempt < 200; attempt++) {
            if (rmdir(dir) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY || attempt == 199) {
                result = gy_error_sys(err, errno, "remove cgroup %s", dir);
                break;
            }
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return result;
}

static int v1_frozen(const char *mnt, const char *path)
{
    cleanup_free char *f = cgroup_file(mnt, "freezer", path, "freezer.state");
    char buf[32];
    if (f == NULL || rt_file_read(f, buf, sizeof(buf), NULL) < 0)
        return -1;
    return strncmp(buf, "FROZEN", 6) == 0 ? 1 : 0;
}

static int v1_freeze(const char *mnt, const char *path, bool frozen, struct gy_error *err)
{
    cleanup_free char *f = cgroup_file(mnt, "freezer", path, "freezer.state");
    if (f == NULL)
        return gy_error_set(err, GY_EUNAVAILABLE, "the freezer cgroup controller is not mounted");
    /* FREEZING means some task has not stopped yet; writing FROZEN again retries it. */
    for (int attempt = 0; attempt < 500; attempt++) {
        if (rt_file_write(f, frozen ? "FROZEN" : "THAWED", 0, err) < 0)
            return -GY_ESYS;
        if (v1_frozen(mnt, path) == (frozen ? 1 : 0))
            return 0;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return gy_error_set(err, GY_ETIMEOUT, "%s: the cgroup did not become %s", f,
                        frozen ? "frozen" : "thawed");
}

static int v1_dirs(const char *mnt, const char *path, char ***hosts, char ***names,
                   struct gy_error *err)
{
    (void)err;
    char **h = gy_xcalloc(N_CONTROLLERS + 1, sizeof(char *));
    char **n = gy_xcalloc(N_CONTROLLERS + 1, sizeof(char *));
    int count = 0;
    for (size_t i = 0; i < N_CONTROLLERS; i++) {
        cleanup_free char *dir = find_hierarchy(mnt, controllers[i]);
        if (dir == NULL)
            continue;
        h[count] = gy_xasprintf("%s/%s", dir, path);
        n[count] = gy_xstrdup(controllers[i]);
        count++;
    }
    *hosts = h;
    *names = n;
    return count;
}

const struct rt_cgroup_ops rt_cgroup_v1_ops = {
    .name = "v1",
    .create = v1_create,
    .enter = v1_enter,
    .stats = v1_stats,
    .oom_kills = v1_oom_kills,
    .procs = v1_procs,
    .destroy = v1_destroy,
    .freeze = v1_freeze,
    .frozen = v1_frozen,
    .dirs = v1_dirs,
};
