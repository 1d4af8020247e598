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
 * "cpu,cpuacct"; find_hierarchy tries both spellings. cpuset and blkio come last: a
 * container joins them only when its resources use them (see needs_optional), which keeps
 * the common create to the hierarchies every container needs. */
static const char *const controllers[] = {"memory",  "cpu",     "cpuacct", "pids",
                                          "devices", "freezer", "cpuset",  "blkio"};
#define N_CONTROLLERS (sizeof(controllers) / sizeof(controllers[0]))
#define N_ALWAYS      6

static bool needs_optional(const char *controller, const struct rt_resources *res)
{
    if (strcmp(controller, "cpuset") == 0)
        return res->cpus != NULL || res->mems != NULL;
    size_t throttles = 0;
    for (int k = 0; k < RT_THROTTLE_COUNT; k++)
        throttles += res->n_throttle[k];
    return res->has_blkio_weight || throttles > 0;
}

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

/* A new cpuset cgroup starts with no cpus and no memory nodes and accepts no task until
 * it has both: each level copies its parent's. */
static int cpuset_init(const char *hierarchy, const char *path, struct gy_error *err)
{
    cleanup_free char *dir = gy_xasprintf("%s/%s", hierarchy, path);
    size_t base = strlen(hierarchy);
    for (char *p = dir + base + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
        for (int k = 0; k < 2; k++) {
            char value[512], parent_value[512];
            cleanup_free char *f = gy_xasprintf("%s/%s", dir, files[k]);
            char *slash = strrchr(dir, '/');
            *slash = '\0';
            cleanup_free char *pf = gy_xasprintf("%s/%s", dir, files[k]);
            *slash = '/';
            if (rt_file_read(f, value, sizeof(value), err) < 0)
                return -GY_ESYS;
            if (value[0] != '\n' && value[0] != '\0')
                continue;
            if (rt_file_read(pf, parent_value, sizeof(parent_value), err) < 0 ||
                rt_file_write(f, parent_value, 0, err) < 0)
                return gy_error_wrap(err, "initialise cpuset");
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    return 0;
}

static int v1_set(const char *mnt, const char *path, const struct rt_resources *res,
                  struct gy_error *err);

static int v1_create(const char *mnt, const char *path, const struct rt_resources *res,
                     struct gy_error *err)
{
    int rc;
    for (size_t i = 0; i < N_CONTROLLERS; i++) {
        if (i >= N_ALWAYS && !needs_optional(controllers[i], res))
            continue;
        cleanup_free char *h = find_hierarchy(mnt, controllers[i]);
        if (h == NULL)
            continue;
        cleanup_free char *dir = gy_xasprintf("%s/%s", h, path);
        if ((rc = rt_mkdir_p(dir, err)) < 0)
            return gy_error_wrap(err, "create cgroup");
        if (strcmp(controllers[i], "cpuset") == 0 && (rc = cpuset_init(h, path, err)) < 0)
            return rc;
    }
    if ((rc = v1_set(mnt, path, res, err)) < 0)
        return rc;
    cleanup_free char *deny = cgroup_file(mnt, "devices", path, "devices.deny");
    if (deny != NULL) {
        if ((rc = rt_file_write(deny, "a", 0, err)) < 0)
            return gy_error_wrap(err, "restrict devices");
        cleanup_free char *allow = cgroup_file(mnt, "devices", path, "devices.allow");
        /* The config's rules in order, then the defaults: later writes win. */
        for (size_t i = 0; i < res->n_devices; i++) {
            char rule[64];
            rt_device_rule_format(&res->devices[i], rule, sizeof(rule));
            if ((rc = rt_file_write(res->devices[i].allow ? allow : deny, rule, 0, err)) < 0)
                return gy_error_wrap(err, "linux.resources.devices[%zu]", i);
        }
        for (size_t i = 0; rt_default_device_rules[i] != NULL; i++)
            if ((rc = rt_file_write(allow, rt_default_device_rules[i], 0, err)) < 0)
                return gy_error_wrap(err, "allow devices");
    } else if (res->n_devices > 0) {
        return gy_error_set(err, GY_EINVAL,
                            "linux.resources.devices: the devices cgroup controller is not "
                            "mounted at %s",
                            mnt);
    }
    return 0;
}

/* Writes the limits of res (create, and update of a running container). */
static int v1_set(const char *mnt, const char *path, const struct rt_resources *res,
                  struct gy_error *err)
{
    int rc;
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
    if (res->cpus != NULL && (rc = write_limit(mnt, "cpuset", path, "cpuset.cpus", res->cpus,
                                               "linux.resources.cpu.cpus", err)) < 0)
        return rc;
    if (res->mems != NULL && (rc = write_limit(mnt, "cpuset", path, "cpuset.mems", res->mems,
                                               "linux.resources.cpu.mems", err)) < 0)
        return rc;
    if (res->has_blkio_weight) {
        /* The weight file depends on the I/O scheduler (CFQ or BFQ). */
        snprintf(value, sizeof(value), "%u", res->blkio_weight);
        cleanup_free char *cfq = cgroup_file(mnt, "blkio", path, "blkio.weight");
        struct stat st;
        const char *file = cfq != NULL && stat(cfq, &st) == 0 ? "blkio.weight" : "blkio.bfq.weight";
        if ((rc = write_limit(mnt, "blkio", path, file, value, "linux.resources.blockIO.weight",
                              err)) < 0)
            return rc;
    }
    static const char *const throttle_files[RT_THROTTLE_COUNT] = {
        [RT_THROTTLE_READ_BPS] = "blkio.throttle.read_bps_device",
        [RT_THROTTLE_WRITE_BPS] = "blkio.throttle.write_bps_device",
        [RT_THROTTLE_READ_IOPS] = "blkio.throttle.read_iops_device",
        [RT_THROTTLE_WRITE_IOPS] = "blkio.throttle.write_iops_device",
    };
    for (int k = 0; k < RT_THROTTLE_COUNT; k++) {
        for (size_t i = 0; i < res->n_throttle[k]; i++) {
            const struct rt_throttle *t = &res->throttle[k][i];
            char field[96];
            snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]",
                     rt_throttle_name((enum rt_throttle_kind)k), i);
            snprintf(value, sizeof(value), "%u:%u %" PRIu64, t->major, t->minor, t->rate);
            if ((rc = write_limit(mnt, "blkio", path, throttle_files[k], value, field, err)) < 0)
                return rc;
        }
    }
    return 0;
}

static int v1_enter(const char *mnt, const char *path, pid_t pid, struct gy_error *err)
{
    char value[32];
    snprintf(value, sizeof(value), "%d", (int)pid);
    for (size_t i = 0; i < N_CONTROLLERS; i++) {
        cleanup_free char *f = cgroup_file(mnt, controllers[i], path, "cgroup.procs");
        struct stat st;
        /* An optional hierarchy the container did not need has no directory for it. */
        if (f == NULL || (i >= N_ALWAYS && stat(f, &st) < 0))
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
        struct stat st;
        if (i >= N_ALWAYS && stat(h[count], &st) < 0) {
            free(h[count]);
            h[count] = NULL;
            continue;
        }
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
    .set = v1_set,
    .enter = v1_enter,
    .stats = v1_stats,
    .oom_kills = v1_oom_kills,
    .procs = v1_procs,
    .destroy = v1_destroy,
    .freeze = v1_freeze,
    .frozen = v1_frozen,
    .dirs = v1_dirs,
};
