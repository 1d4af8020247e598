/* Parsing and validation of the "linux" section of config.json (runtime-spec
 * config-linux.md): namespaces, id mappings, resources, seccomp, sysctls. */
#include "runtime/config.h"
#include "runtime/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <sys/mount.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

static int parse_idmaps(json_t *list, const char *name, struct rt_idmap **out, size_t *count,
                        struct gy_error *err)
{
    if (!json_is_array(list))
        return gy_error_set(err, GY_EINVAL, "linux.%s: must be an array", name);
    size_t n = json_array_size(list);
    *out = gy_xcalloc(n + 1, sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(list, i);
        char path[64];
        snprintf(path, sizeof(path), "linux.%s[%zu].", name, i);
        if (!json_is_object(m))
            return gy_error_set(err, GY_EINVAL, "linux.%s[%zu]: must be an object", name, i);
        int64_t cid = -1, hid = -1, size = -1;
        int rc;
        if ((rc = rt_cfg_get_int(m, "containerID", path, 0, UINT32_MAX - 1, &cid, err)) < 0)
            return rc;
        if ((rc = rt_cfg_get_int(m, "hostID", path, 0, UINT32_MAX - 1, &hid, err)) < 0)
            return rc;
        if ((rc = rt_cfg_get_int(m, "size", path, 1, UINT32_MAX, &size, err)) < 0)
            return rc;
        if (cid < 0 || hid < 0 || size < 0)
            return gy_error_set(err, GY_EINVAL, "%s: containerID, hostID and size are required",
                                path);
        (*out)[i] = (struct rt_idmap){(uint32_t)cid, (uint32_t)hid, (uint32_t)size};
    }
    *count = n;
    return 0;
}

const char *rt_throttle_name(enum rt_throttle_kind kind)
{
    static const char *const names[RT_THROTTLE_COUNT] = {
        [RT_THROTTLE_READ_BPS] = "throttleReadBpsDevice",
        [RT_THROTTLE_WRITE_BPS] = "throttleWriteBpsDevice",
        [RT_THROTTLE_READ_IOPS] = "throttleReadIOPSDevice",
        [RT_THROTTLE_WRITE_IOPS] = "throttleWriteIOPSDevice",
    };
    return names[kind];
}

void rt_resources_clear(struct rt_resources *res)
{
    free(res->cpus);
    free(res->mems);
    free(res->devices);
    for (int k = 0; k < RT_THROTTLE_COUNT; k++)
        free(res->throttle[k]);
    memset(res, 0, sizeof(*res));
}

static int parse_resources(json_t *r, struct rt_resources *res, struct gy_error *err)
{
    int rc;
    if (rt_cfg_want_type(r, JSON_OBJECT, "linux.resources", "an object", err) < 0)
        return -GY_EINVAL;
    json_t *mem = json_object_get(r, "memory");
    if (mem != NULL && !json_is_null(mem)) {
        if (rt_cfg_want_type(mem, JSON_OBJECT, "linux.resources.memory", "an object", err) < 0)
            return -GY_EINVAL;
        const char *p = "linux.resources.memory.";
        if ((rc = rt_cfg_get_int(mem, "limit", p, -1, INT64_MAX, &res->memory_limit, err)) < 0)
            return rc;
        res->has_memory_limit = rc > 0;
        if (res->has_memory_limit && res->memory_limit >= 0 && res->memory_limit < 4096)
            return gy_error_set(err, GY_EINVAL,
                                "linux.resources.memory.limit: %lld bytes is below one page",
                                (long long)res->memory_limit);
        if ((rc = rt_cfg_get_int(mem, "reservation", p, -1, INT64_MAX, &res->memory_reservation,
                                 err)) < 0)
            return rc;
        res->has_memory_reservation = rc > 0;
        if ((rc = rt_cfg_get_int(mem, "swap", p, -1, INT64_MAX, &res->memory_swap, err)) < 0)
            return rc;
        res->has_memory_swap = rc > 0;
        if (res->has_memory_swap && res->memory_swap >= 0 && res->has_memory_limit &&
            res->memory_limit >= 0 && res->memory_swap < res->memory_limit)
            return gy_error_set(err, GY_EINVAL,
                                "linux.resources.memory.swap: must be at least the limit (it "
                                "counts memory plus swap)");
    }
    json_t *cpu = json_object_get(r, "cpu");
    if (cpu != NULL && !json_is_null(cpu)) {
        if (rt_cfg_want_type(cpu, JSON_OBJECT, "linux.resources.cpu", "an object", err) < 0)
            return -GY_EINVAL;
        const char *p = "linux.resources.cpu.";
        int64_t v = 0;
        if ((rc = rt_cfg_get_int(cpu, "shares", p, 2, 262144, &v, err)) < 0)
            return rc;
        res->has_cpu_shares = rc > 0;
        res->cpu_shares = (uint64_t)v;
        if ((rc = rt_cfg_get_int(cpu, "quota", p, -1, INT64_MAX / 1000, &res->cpu_quota, err)) < 0)
            return rc;
        res->has_cpu_quota = rc > 0;
        if (res->has_cpu_quota && res->cpu_quota >= 0 && res->cpu_quota < 1000)
            return gy_error_set(err, GY_EINVAL,
                                "linux.resources.cpu.quota: %lld us is below the kernel's "
                                "minimum of 1000 us",
                                (long long)res->cpu_quota);
        if ((rc = rt_cfg_get_int(cpu, "period", p, 1000, 1000000, &v, err)) < 0)
            return rc;
        res->has_cpu_period = rc > 0;
        res->cpu_period = (uint64_t)v;
    }
    if (cpu != NULL && !json_is_null(cpu)) {
        static const char *const sets[] = {"cpus", "mems"};
        for (int k = 0; k < 2; k++) {
            char **out = k == 0 ? &res->cpus : &res->mems;
            if ((rc = rt_cfg_get_string(cpu, sets[k], "linux.resources.cpu.", out, err)) < 0)
                return rc;
            if (*out != NULL && ((*out)[0] == '\0' || strspn(*out, "0123456789,-") != strlen(*out)))
                return gy_error_set(err, GY_EINVAL,
                                    "linux.resources.cpu.%s: \"%s\" is not a list like 0-3,6",
                                    sets[k], *out);
        }
    }
    json_t *bio = json_object_get(r, "blockIO");
    if (bio != NULL && !json_is_null(bio)) {
        if (rt_cfg_want_type(bio, JSON_OBJECT, "linux.resources.blockIO", "an object", err) < 0)
            return -GY_EINVAL;
        int64_t v = 0;
        if ((rc = rt_cfg_get_int(bio, "weight", "linux.resources.blockIO.", 10, 1000, &v, err)) < 0)
            return rc;
        res->has_blkio_weight = rc > 0;
        res->blkio_weight = (uint16_t)v;
        for (int k = 0; k < RT_THROTTLE_COUNT; k++) {
            const char *name = rt_throttle_name((enum rt_throttle_kind)k);
            json_t *list = json_object_get(bio, name);
            if (list == NULL || json_is_null(list))
                continue;
            if (!json_is_array(list))
                return gy_error_set(err, GY_EINVAL, "linux.resources.blockIO.%s: must be an array",
                                    name);
            size_t n = json_array_size(list);
            res->throttle[k] = gy_xcalloc(n + 1, sizeof(struct rt_throttle));
            for (size_t i = 0; i < n; i++) {
                json_t *d = json_array_get(list, i);
                char path[96];
                snprintf(path, sizeof(path), "linux.resources.blockIO.%s[%zu].", name, i);
                if (!json_is_object(d))
                    return gy_error_set(err, GY_EINVAL, "%s: must be an object", path);
                int64_t major = -1, minor = -1, rate = -1;
                if ((rc = rt_cfg_get_int(d, "major", path, 0, UINT32_MAX, &major, err)) < 0 ||
                    (rc = rt_cfg_get_int(d, "minor", path, 0, UINT32_MAX, &minor, err)) < 0 ||
                    (rc = rt_cfg_get_int(d, "rate", path, 0, INT64_MAX, &rate, err)) < 0)
                    return rc;
                if (major < 0 || minor < 0 || rate < 0)
                    return gy_error_set(err, GY_EINVAL, "%s: major, minor and rate are required",
                                        path);
                res->throttle[k][res->n_throttle[k]++] =
                    (struct rt_throttle){(uint32_t)major, (uint32_t)minor, (uint64_t)rate};
            }
        }
    }
    json_t *devs = json_object_get(r, "devices");
    if (devs != NULL && !json_is_null(devs)) {
        if (rt_cfg_want_type(devs, JSON_ARRAY, "linux.resources.devices", "an array", err) < 0)
            return -GY_EINVAL;
        size_t n = json_array_size(devs);
        res->devices = gy_xrealloc(res->devices, (res->n_devices + n + 1) * sizeof(*res->devices));
        for (size_t i = 0; i < n; i++) {
            json_t *d = json_array_get(devs, i);
            char path[64];
            snprintf(path, sizeof(path), "linux.resources.devices[%zu].", i);
            if (!json_is_object(d))
                return gy_error_set(err, GY_EINVAL,
                                    "linux.resources.devices[%zu]: must be an object", i);
            struct rt_device_rule rule = {.type = 0, .major = -1, .minor = -1};
            if ((rc = rt_cfg_get_bool(d, "allow", path, &rule.allow, err)) < 0)
                return rc;
            if (rc == 0)
                return gy_error_set(err, GY_EINVAL, "%sallow: is required", path);
            cleanup_free char *type = NULL, *access = NULL;
            if ((rc = rt_cfg_get_string(d, "type", path, &type, err)) < 0 ||
                (rc = rt_cfg_get_string(d, "access", path, &access, err)) < 0)
                return rc;
            if (type != NULL && strcmp(type, "c") == 0)
                rule.type = BPF_DEVCG_DEV_CHAR;
            else if (type != NULL && strcmp(type, "b") == 0)
                rule.type = BPF_DEVCG_DEV_BLOCK;
            else if (type != NULL && strcmp(type, "a") != 0)
                return gy_error_set(err, GY_EINVAL, "%stype: \"%s\" is not a, b or c", path, type);
            int64_t v = -1;
            if ((rc = rt_cfg_get_int(d, "major", path, -1, INT32_MAX, &v, err)) < 0)
                return rc;
            rule.major = (int)v;
            v = -1;
            if ((rc = rt_cfg_get_int(d, "minor", path, -1, INT32_MAX, &v, err)) < 0)
                return rc;
            rule.minor = (int)v;
            for (const char *p = access != NULL ? access : "rwm"; *p != '\0'; p++) {
                if (*p == 'r')
                    rule.access |= BPF_DEVCG_ACC_READ;
                else if (*p == 'w')
                    rule.access |= BPF_DEVCG_ACC_WRITE;
                else if (*p == 'm')
                    rule.access |= BPF_DEVCG_ACC_MKNOD;
                else
                    return gy_error_set(err, GY_EINVAL, "%saccess: \"%s\" is not a subset of rwm",
                                        path, access);
            }
            res->devices[res->n_devices++] = rule;
        }
    }
    json_t *pids = json_object_get(r, "pids");
    if (pids != NULL && !json_is_null(pids)) {
        if (rt_cfg_want_type(pids, JSON_OBJECT, "linux.resources.pids", "an object", err) < 0)
            return -GY_EINVAL;
        if ((rc = rt_cfg_get_int(pids, "limit", "linux.resources.pids.", -1, INT32_MAX,
                                 &res->pids_limit, err)) < 0)
            return rc;
        res->has_pids_limit = rc > 0;
        if (res->has_pids_limit && res->pids_limit == 0)
            return gy_error_set(err, GY_EINVAL,
                                "linux.resources.pids.limit: 0 would stop the container from "
                                "starting (use -1 for no limit)");
    }
    return 0;
}

static int parse_seccomp_action(json_t *obj, const char *key, const char *path, int64_t errno_ret,
                                uint32_t *out, struct gy_error *err)
{
    cleanup_free char *name = NULL;
    int rc = rt_cfg_get_string(obj, key, path, &name, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return gy_error_set(err, GY_EINVAL, "%s%s: is required", path, key);
    if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
        *out = SCMP_ACT_ALLOW;
    else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
        *out = SCMP_ACT_ERRNO((uint16_t)errno_ret);
    else if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
        *out = SCMP_ACT_KILL_THREAD;
    else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
        *out = SCMP_ACT_KILL_PROCESS;
    else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
        *out = SCMP_ACT_TRAP;
    else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
        *out = SCMP_ACT_TRACE((uint16_t)errno_ret);
    else if (strcmp(name, "SCMP_ACT_LOG") == 0)
        *out = SCMP_ACT_LOG;
    else
        return gy_error_set(err, GY_EINVAL, "%s%s: unsupported action \"%s\"", path, key, name);
    return 0;
}

static int parse_seccomp(json_t *s, struct rt_config *c, struct gy_error *err)
{
    int rc;
    if (json_is_null(s)) {
        c->seccomp_disabled = true;
        return 0;
    }
    if (rt_cfg_want_type(s, JSON_OBJECT, "linux.seccomp", "an object", err) < 0)
        return -GY_EINVAL;
    struct rt_seccomp *sc = gy_xcalloc(1, sizeof(*sc));
    c->seccomp = sc;
    int64_t default_errno = EPERM;
    if ((rc = rt_cfg_get_int(s, "defaultErrnoRet", "linux.seccomp.", 0, 4095, &default_errno,
                             err)) < 0)
        return rc;
    if ((rc = parse_seccomp_action(s, "defaultAction", "linux.seccomp.", default_errno,
                                   &sc->default_action, err)) < 0)
        return rc;
    json_t *arches = json_object_get(s, "architectures");
    if (arches != NULL && !json_is_null(arches)) {
        if (rt_cfg_want_type(arches, JSON_ARRAY, "linux.seccomp.architectures", "an array", err) <
            0)
            return -GY_EINVAL;
        sc->arches = gy_xcalloc(json_array_size(arches) + 1, sizeof(uint32_t));
        for (size_t i = 0; i < json_array_size(arches); i++) {
            const char *name = json_string_value(json_array_get(arches, i));
            char lower[32] = "";
            if (name != NULL && strncmp(name, "SCMP_ARCH_", 10) == 0) {
                size_t k = 0;
                for (const char *q = name + 10; *q != '\0' && k + 1 < sizeof(lower); q++)
                    lower[k++] = (char)tolower((unsigned char)*q);
                lower[k] = '\0';
            }
            uint32_t arch = lower[0] != '\0' ? seccomp_arch_resolve_name(lower) : 0;
            if (arch == 0)
                return gy_error_set(err, GY_EINVAL,
                                    "linux.seccomp.architectures[%zu]: unknown architecture \"%s\"",
                                    i, name != NULL ? name : "(not a string)");
            sc->arches[sc->n_arches++] = arch;
        }
    }
    json_t *rules = json_object_get(s, "syscalls");
    if (rules == NULL || json_is_null(rules))
        return 0;
    if (rt_cfg_want_type(rules, JSON_ARRAY, "linux.seccomp.syscalls", "an array", err) < 0)
        return -GY_EINVAL;
    sc->rules = gy_xcalloc(json_array_size(rules) + 1, sizeof(*sc->rules));
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *r = json_array_get(rules, i);
        char path[64];
        snprintf(path, sizeof(path), "linux.seccomp.syscalls[%zu].", i);
        if (!json_is_object(r))
            return gy_error_set(err, GY_EINVAL, "linux.seccomp.syscalls[%zu]: must be an object",
                                i);
        struct rt_seccomp_rule *rule = &sc->rules[sc->n_rules++];
        if ((rc = rt_cfg_get_strings(r, "names", path, &rule->names, &rule->n_names, err)) < 0)
            return rc;
        if (rule->n_names == 0)
            return gy_error_set(err, GY_EINVAL, "%snames: needs at least one system call", path);
        int64_t errno_ret = default_errno;
        if ((rc = rt_cfg_get_int(r, "errnoRet", path, 0, 4095, &errno_ret, err)) < 0)
            return rc;
        if ((rc = parse_seccomp_action(r, "action", path, errno_ret, &rule->action, err)) < 0)
            return rc;
        json_t *args = json_object_get(r, "args");
        if (args == NULL || json_is_null(args))
            continue;
        if (rt_cfg_want_type(args, JSON_ARRAY, path, "an array", err) < 0)
            return -GY_EINVAL;
        rule->args = gy_xcalloc(json_array_size(args) + 1, sizeof(*rule->args));
        for (size_t k = 0; k < json_array_size(args); k++) {
            static const struct {
                const char *name;
                int op;
            } ops[] = {
                {"SCMP_CMP_NE", SCMP_CMP_NE},
                {"SCMP_CMP_LT", SCMP_CMP_LT},
                {"SCMP_CMP_LE", SCMP_CMP_LE},
                {"SCMP_CMP_EQ", SCMP_CMP_EQ},
                {"SCMP_CMP_GE", SCMP_CMP_GE},
                {"SCMP_CMP_GT", SCMP_CMP_GT},
                {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
            };
            json_t *a = json_array_get(args, k);
            char apath[96];
            snprintf(apath, sizeof(apath), "%sargs[%zu].", path, k);
            if (!json_is_object(a))
                return gy_error_set(err, GY_EINVAL, "%sargs[%zu]: must be an object", path, k);
            struct rt_seccomp_arg *arg = &rule->args[rule->n_args++];
            int64_t v = -1;
            if ((rc = rt_cfg_get_int(a, "index", apath, 0, 5, &v, err)) < 0)
                return rc;
            if (rc == 0)
                return gy_error_set(err, GY_EINVAL, "%sindex: is required", apath);
            arg->index = (unsigned int)v;
            v = 0;
            if ((rc = rt_cfg_get_int(a, "value", apath, INT64_MIN, INT64_MAX, &v, err)) < 0)
                return rc;
            arg->value = (uint64_t)v;
            v = 0;
            if ((rc = rt_cfg_get_int(a, "valueTwo", apath, INT64_MIN, INT64_MAX, &v, err)) < 0)
                return rc;
            arg->value_two = (uint64_t)v;
            cleanup_free char *op = NULL;
            if ((rc = rt_cfg_get_string(a, "op", apath, &op, err)) < 0)
                return rc;
            arg->op = -1;
            for (size_t o = 0; op != NULL && o < sizeof(ops) / sizeof(ops[0]); o++)
                if (strcmp(op, ops[o].name) == 0)
                    arg->op = ops[o].op;
            if (arg->op < 0)
                return gy_error_set(err, GY_EINVAL, "%sop: unknown operator \"%s\"", apath,
                                    op != NULL ? op : "");
        }
    }
    return 0;
}

/* linux.devices: nodes to create, each also allowed in the device cgroup. */
static int parse_device_nodes(json_t *list, struct rt_config *c, struct gy_error *err)
{
    int rc;
    if (rt_cfg_want_type(list, JSON_ARRAY, "linux.devices", "an array", err) < 0)
        return -GY_EINVAL;
    size_t n = json_array_size(list);
    c->device_nodes = gy_xcalloc(n + 1, sizeof(*c->device_nodes));
    struct rt_resources *res = &c->resources;
    res->devices = gy_xrealloc(res->devices, (res->n_devices + n + 1) * sizeof(*res->devices));
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(list, i);
        char path[48];
        snprintf(path, sizeof(path), "linux.devices[%zu].", i);
        if (!json_is_object(d))
            return gy_error_set(err, GY_EINVAL, "linux.devices[%zu]: must be an object", i);
        struct rt_device_node *node = &c->device_nodes[c->n_device_nodes++];
        node->mode = 0666;
        if ((rc = rt_cfg_get_string(d, "path", path, &node->path, err)) < 0)
            return rc;
        if (rc == 0 || node->path[0] != '/' || strstr(node->path, "..") != NULL)
            return gy_error_set(err, GY_EINVAL,
                                "%spath: an absolute path without \"..\" is required", path);
        cleanup_free char *type = NULL;
        if ((rc = rt_cfg_get_string(d, "type", path, &type, err)) < 0)
            return rc;
        if (type == NULL || strlen(type) != 1 || strchr("cbup", type[0]) == NULL)
            return gy_error_set(err, GY_EINVAL, "%stype: must be c, b, u or p", path);
        node->type = type[0];
        int64_t major = -1, minor = -1, v = 0;
        if ((rc = rt_cfg_get_int(d, "major", path, 0, UINT32_MAX, &major, err)) < 0 ||
            (rc = rt_cfg_get_int(d, "minor", path, 0, UINT32_MAX, &minor, err)) < 0)
            return rc;
        if (node->type != 'p' && (major < 0 || minor < 0))
            return gy_error_set(err, GY_EINVAL, "%smajor: major and minor are required", path);
        node->major = major < 0 ? 0 : (uint32_t)major;
        node->minor = minor < 0 ? 0 : (uint32_t)minor;
        if ((rc = rt_cfg_get_int(d, "fileMode", path, 0, 07777, &v, err)) < 0)
            return rc;
        if (rc > 0)
            node->mode = (mode_t)v;
        v = 0;
        if ((rc = rt_cfg_get_int(d, "uid", path, 0, UINT32_MAX - 1, &v, err)) < 0)
            return rc;
        node->uid = (uid_t)v;
        v = 0;
        if ((rc = rt_cfg_get_int(d, "gid", path, 0, UINT32_MAX - 1, &v, err)) < 0)
            return rc;
        node->gid = (gid_t)v;
        if (node->type != 'p')
            res->devices[res->n_devices++] = (struct rt_device_rule){
                .allow = true,
                .type = node->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR,
                .major = (int)node->major,
                .minor = (int)node->minor,
                .access = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD,
            };
    }
    return 0;
}

int rt_cfg_parse_linux(json_t *l, struct rt_config *c, struct gy_error *err)
{
    int rc;
    if (l == NULL || json_is_null(l))
        return 0;
    if (rt_cfg_want_type(l, JSON_OBJECT, "linux", "an object", err) < 0)
        return -GY_EINVAL;
    json_t *nss = json_object_get(l, "namespaces");
    if (nss != NULL && !json_is_null(nss)) {
        if (rt_cfg_want_type(nss, JSON_ARRAY, "linux.namespaces", "an array", err) < 0)
            return -GY_EINVAL;
        for (size_t i = 0; i < json_array_size(nss); i++) {
            json_t *ns = json_array_get(nss, i);
            char path[48];
            snprintf(path, sizeof(path), "linux.namespaces[%zu].", i);
            if (!json_is_object(ns))
                return gy_error_set(err, GY_EINVAL, "linux.namespaces[%zu]: must be an object", i);
            cleanup_free char *type = NULL;
            if ((rc = rt_cfg_get_string(ns, "type", path, &type, err)) < 0)
                return rc;
            if (rc == 0)
                return gy_error_set(err, GY_EINVAL, "%stype: is required", path);
            int kind = -1;
            for (int k = 0; k < RT_NS_COUNT; k++)
                if (strcmp(type, rt_ns_name((enum rt_ns_kind)k)) == 0)
                    kind = k;
            if (kind < 0)
                return gy_error_set(err, GY_EINVAL, "%stype: unknown namespace \"%s\"", path, type);
            if (c->ns[kind])
                return gy_error_set(err, GY_EINVAL, "%stype: namespace \"%s\" is given twice", path,
                                    type);
            c->ns[kind] = true;
            if ((rc = rt_cfg_get_string(ns, "path", path, &c->ns_path[kind], err)) < 0)
                return rc;
            if (c->ns_path[kind] != NULL && c->ns_path[kind][0] != '/')
                return gy_error_set(err, GY_EINVAL, "%spath: \"%s\" is not an absolute path", path,
                                    c->ns_path[kind]);
            if (c->ns_path[kind] != NULL && (kind == RT_NS_USER || kind == RT_NS_MOUNT))
                return gy_error_set(err, GY_EINVAL,
                                    "%spath: joining an existing %s namespace is not supported",
                                    path, type);
        }
    }
    json_t *maps = json_object_get(l, "uidMappings");
    if (maps != NULL && !json_is_null(maps) &&
        (rc = parse_idmaps(maps, "uidMappings", &c->uid_maps, &c->n_uid_maps, err)) < 0)
        return rc;
    maps = json_object_get(l, "gidMappings");
    if (maps != NULL && !json_is_null(maps) &&
        (rc = parse_idmaps(maps, "gidMappings", &c->gid_maps, &c->n_gid_maps, err)) < 0)
        return rc;
    if (c->ns[RT_NS_USER] && (c->n_uid_maps == 0 || c->n_gid_maps == 0))
        return gy_error_set(err, GY_EINVAL,
                            "linux.uidMappings: a user namespace needs uidMappings and "
                            "gidMappings");
    if (!c->ns[RT_NS_USER] && (c->n_uid_maps > 0 || c->n_gid_maps > 0))
        return gy_error_set(err, GY_EINVAL,
                            "linux.uidMappings: mappings need a \"user\" entry in "
                            "linux.namespaces");
    json_t *res = json_object_get(l, "resources");
    if (res != NULL && !json_is_null(res) && (rc = parse_resources(res, &c->resources, err)) < 0)
        return rc;
    json_t *nodes = json_object_get(l, "devices");
    if (nodes != NULL && !json_is_null(nodes) && (rc = parse_device_nodes(nodes, c, err)) < 0)
        return rc;
    if ((rc = rt_cfg_get_string(l, "cgroupsPath", "linux.", &c->cgroups_path, err)) < 0)
        return rc;
    if (c->cgroups_path != NULL &&
        (c->cgroups_path[0] == '\0' || strstr(c->cgroups_path, "..") != NULL ||
         strchr(c->cgroups_path, ':') != NULL))
        return gy_error_set(err, GY_EINVAL,
                            "linux.cgroupsPath: \"%s\" must be a path without \"..\" or \":\"",
                            c->cgroups_path);
    json_t *sc = json_object_get(l, "seccomp");
    if (sc != NULL && (rc = parse_seccomp(sc, c, err)) < 0)
        return rc;
    if ((rc = rt_cfg_get_strings(l, "maskedPaths", "linux.", &c->masked_paths, &c->n_masked_paths,
                                 err)) < 0)
        return rc;
    if ((rc = rt_cfg_get_strings(l, "readonlyPaths", "linux.", &c->readonly_paths,
                                 &c->n_readonly_paths, err)) < 0)
        return rc;
    cleanup_free char *prop = NULL;
    if ((rc = rt_cfg_get_string(l, "rootfsPropagation", "linux.", &prop, err)) < 0)
        return rc;
    if (prop != NULL) {
        unsigned long set = 0, clear = 0, propagation = 0;
        bool bind = false;
        if (!rt_mount_option_flag(prop, &set, &clear, &propagation, &bind) || propagation == 0)
            return gy_error_set(err, GY_EINVAL,
                                "linux.rootfsPropagation: unknown propagation \"%s\"", prop);
        c->rootfs_propagation = propagation | MS_REC;
    }
    json_t *sysctl = json_object_get(l, "sysctl");
    if (sysctl != NULL && !json_is_null(sysctl)) {
        if (rt_cfg_want_type(sysctl, JSON_OBJECT, "linux.sysctl", "an object", err) < 0)
            return -GY_EINVAL;
        c->sysctls = gy_xcalloc(json_object_size(sysctl) + 1, sizeof(*c->sysctls));
        const char *key;
        json_t *value;
        json_object_foreach(sysctl, key, value)
        {
            if (!json_is_string(value))
                return gy_error_set(err, GY_EINVAL, "linux.sysctl.%s: must be a string", key);
            if (key[0] == '\0' || strstr(key, "..") != NULL || key[0] == '.' ||
                strchr(key, '/') != NULL)
                return gy_error_set(err, GY_EINVAL, "linux.sysctl: \"%s\" is not a sysctl name",
                                    key);
            c->sysctls[c->n_sysctls].key = gy_xstrdup(key);
            c->sysctls[c->n_sysctls++].value = gy_xstrdup(json_string_value(value));
        }
    }
    return 0;
}

int rt_resources_parse(const char *json, size_t len, struct rt_resources *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gy_error_set(err, GY_EPARSE, "resources line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    int rc = parse_resources(doc, out, err);
    json_decref(doc);
    if (rc < 0)
        rt_resources_clear(out);
    return rc;
}
