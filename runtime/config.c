/* Parsing and validation of the OCI runtime-spec config.json (runtime-spec config.md):
 * process, root, mounts and hooks. The "linux" section is in config_linux.c, the field
 * getters both use in config_field.c, and the spec's names with their kernel flags in
 * config_table.c. Every error names the field it is about. */
#include "runtime/config.h"
#include "runtime/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* The resource types process.rlimits may name (setrlimit(2)). */
static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

/* ------------------------------------------------------------------------------------ */
/* Sections                                                                               */

static int parse_caps(json_t *caps, struct rt_config *c, struct gy_error *err)
{
    static const char *const set_names[RT_CAPS_COUNT] = {
        [RT_CAPS_BOUNDING] = "bounding",       [RT_CAPS_EFFECTIVE] = "effective",
        [RT_CAPS_INHERITABLE] = "inheritable", [RT_CAPS_PERMITTED] = "permitted",
        [RT_CAPS_AMBIENT] = "ambient",
    };
    if (rt_cfg_want_type(caps, JSON_OBJECT, "process.capabilities", "an object", err) < 0)
        return -GY_EINVAL;
    for (int s = 0; s < RT_CAPS_COUNT; s++) {
        c->caps[s] = 0;
        json_t *list = json_object_get(caps, set_names[s]);
        if (list == NULL || json_is_null(list))
            continue;
        if (!json_is_array(list))
            return gy_error_set(err, GY_EINVAL, "process.capabilities.%s: must be an array",
                                set_names[s]);
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *name = json_array_get(list, i);
            if (!json_is_string(name))
                return gy_error_set(err, GY_EINVAL,
                                    "process.capabilities.%s[%zu]: must be a string", set_names[s],
                                    i);
            char lower[64];
            const char *text = json_string_value(name);
            size_t k = 0;
            for (; text[k] != '\0' && k + 1 < sizeof(lower); k++)
                lower[k] = (char)tolower((unsigned char)text[k]);
            lower[k] = '\0';
            cap_value_t cap;
            if (strncmp(lower, "cap_", 4) != 0 || cap_from_name(lower, &cap) < 0 || cap < 0 ||
                cap >= 64)
                return gy_error_set(err, GY_EINVAL,
                                    "process.capabilities.%s[%zu]: unknown capability \"%s\"",
                                    set_names[s], i, text);
            c->caps[s] |= UINT64_C(1) << cap;
        }
    }
    return 0;
}

static int parse_rlimits(json_t *list, struct rt_config *c, struct gy_error *err)
{
    if (rt_cfg_want_type(list, JSON_ARRAY, "process.rlimits", "an array", err) < 0)
        return -GY_EINVAL;
    size_t n = json_array_size(list);
    c->rlimits = gy_xcalloc(n + 1, sizeof(*c->rlimits));
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(list, i);
        char path[64];
        snprintf(path, sizeof(path), "process.rlimits[%zu].", i);
        if (!json_is_object(r))
            return gy_error_set(err, GY_EINVAL, "process.rlimits[%zu]: must be an object", i);
        cleanup_free char *type = NULL;
        int rc = rt_cfg_get_string(r, "type", path, &type, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return gy_error_set(err, GY_EINVAL, "%stype: is required", path);
        int resource = -1;
        for (size_t k = 0; k < sizeof(rlimit_names) / sizeof(rlimit_names[0]); k++)
            if (strcmp(type, rlimit_names[k].name) == 0)
                resource = rlimit_names[k].resource;
        if (resource < 0)
            return gy_error_set(err, GY_EINVAL, "%stype: unknown rlimit \"%s\"", path, type);
        for (size_t k = 0; k < c->n_rlimits; k++)
            if (c->rlimits[k].resource == resource)
                return gy_error_set(err, GY_EINVAL, "%stype: %s is given twice", path, type);
        int64_t soft = 0, hard = 0;
        if ((rc = rt_cfg_get_int(r, "soft", path, 0, INT64_MAX, &soft, err)) < 0)
            return rc;
        if (rc == 0)
            return gy_error_set(err, GY_EINVAL, "%ssoft: is required", path);
        if ((rc = rt_cfg_get_int(r, "hard", path, 0, INT64_MAX, &hard, err)) < 0)
            return rc;
        if (rc == 0)
            return gy_error_set(err, GY_EINVAL, "%shard: is required", path);
        if (soft > hard)
            return gy_error_set(err, GY_EINVAL, "%ssoft: %lld is above the hard limit %lld", path,
                                (long long)soft, (long long)hard);
        c->rlimits[c->n_rlimits++] = (struct rt_rlimit){resource, (uint64_t)soft, (uint64_t)hard};
    }
    return 0;
}

static int parse_process(json_t *p, struct rt_config *c, struct gy_error *err)
{
    int rc;
    if (p == NULL)
        return gy_error_set(err, GY_EINVAL, "process: is required");
    if (rt_cfg_want_type(p, JSON_OBJECT, "process", "an object", err) < 0)
        return -GY_EINVAL;
    bool terminal = false;
    if ((rc = rt_cfg_get_bool(p, "terminal", "process.", &terminal, err)) < 0)
        return rc;
    if (terminal)
        return gy_error_set(err, GY_EINVAL,
                            "process.terminal: true is not supported; containers log their "
                            "output to a file");
    if ((rc = rt_cfg_get_strings(p, "args", "process.", &c->args, &c->n_args, err)) < 0)
        return rc;
    if (c->n_args == 0)
        return gy_error_set(err, GY_EINVAL, "process.args: needs at least the program");
    if (c->args[0][0] == '\0')
        return gy_error_set(err, GY_EINVAL, "process.args[0]: is empty");
    if ((rc = rt_cfg_get_strings(p, "env", "process.", &c->env, &c->n_env, err)) < 0)
        return rc;
    for (size_t i = 0; i < c->n_env; i++)
        if (strchr(c->env[i], '=') == NULL || c->env[i][0] == '=')
            return gy_error_set(err, GY_EINVAL, "process.env[%zu]: \"%s\" is not KEY=VALUE", i,
                                c->env[i]);
    if ((rc = rt_cfg_get_string(p, "cwd", "process.", &c->cwd, err)) < 0)
        return rc;
    if (rc == 0)
        return gy_error_set(err, GY_EINVAL, "process.cwd: is required");
    if (c->cwd[0] != '/')
        return gy_error_set(err, GY_EINVAL, "process.cwd: \"%s\" is not an absolute path", c->cwd);

    json_t *user = json_object_get(p, "user");
    if (user != NULL && !json_is_null(user)) {
        if (rt_cfg_want_type(user, JSON_OBJECT, "process.user", "an object", err) < 0)
            return -GY_EINVAL;
        int64_t v = 0;
        if ((rc = rt_cfg_get_int(user, "uid", "process.user.", 0, UINT32_MAX - 1, &v, err)) < 0)
            return rc;
        c->uid = (uid_t)v;
        v = 0;
        if ((rc = rt_cfg_get_int(user, "gid", "process.user.", 0, UINT32_MAX - 1, &v, err)) < 0)
            return rc;
        c->gid = (gid_t)v;
        if ((rc = rt_cfg_get_int(user, "umask", "process.user.", 0, 0777, &v, err)) < 0)
            return rc;
        if (rc > 0) {
            c->has_umask = true;
            c->umask = (mode_t)v;
        }
        json_t *gids = json_object_get(user, "additionalGids");
        if (gids != NULL && !json_is_null(gids)) {
            if (rt_cfg_want_type(gids, JSON_ARRAY, "process.user.additionalGids", "an array", err) <
                0)
                return -GY_EINVAL;
            size_t n = json_array_size(gids);
            c->additional_gids = gy_xcalloc(n + 1, sizeof(gid_t));
            for (size_t i = 0; i < n; i++) {
                json_t *g = json_array_get(gids, i);
                if (!json_is_integer(g) || json_integer_value(g) < 0 ||
                    json_integer_value(g) >= UINT32_MAX)
                    return gy_error_set(err, GY_EINVAL,
                                        "process.user.additionalGids[%zu]: must be a group id", i);
                c->additional_gids[i] = (gid_t)json_integer_value(g);
            }
            c->n_additional_gids = n;
        }
    }

    json_t *caps = json_object_get(p, "capabilities");
    if (caps != NULL && !json_is_null(caps) && (rc = parse_caps(caps, c, err)) < 0)
        return rc;
    json_t *rl = json_object_get(p, "rlimits");
    if (rl != NULL && !json_is_null(rl) && (rc = parse_rlimits(rl, c, err)) < 0)
        return rc;
    if ((rc = rt_cfg_get_bool(p, "noNewPrivileges", "process.", &c->no_new_privs, err)) < 0)
        return rc;
    int64_t adj = 0;
    if ((rc = rt_cfg_get_int(p, "oomScoreAdj", "process.", -1000, 1000, &adj, err)) < 0)
        return rc;
    if (rc > 0) {
        c->has_oom_score_adj = true;
        c->oom_score_adj = (int)adj;
    }
    return 0;
}

static int parse_mounts(json_t *list, struct rt_config *c, struct gy_error *err)
{
    if (rt_cfg_want_type(list, JSON_ARRAY, "mounts", "an array", err) < 0)
        return -GY_EINVAL;
    size_t n = json_array_size(list);
    c->mounts = gy_xcalloc(n + 1, sizeof(*c->mounts));
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(list, i);
        struct rt_mount *mnt = &c->mounts[c->n_mounts++];
        char path[48];
        snprintf(path, sizeof(path), "mounts[%zu].", i);
        if (!json_is_object(m))
            return gy_error_set(err, GY_EINVAL, "mounts[%zu]: must be an object", i);
        int rc;
        if ((rc = rt_cfg_get_string(m, "destination", path, &mnt->destination, err)) < 0)
            return rc;
        if (rc == 0)
            return gy_error_set(err, GY_EINVAL, "%sdestination: is required", path);
        if (mnt->destination[0] != '/')
            return gy_error_set(err, GY_EINVAL, "%sdestination: \"%s\" is not an absolute path",
                                path, mnt->destination);
        if ((rc = rt_cfg_get_string(m, "type", path, &mnt->type, err)) < 0)
            return rc;
        if ((rc = rt_cfg_get_string(m, "source", path, &mnt->source, err)) < 0)
            return rc;
        char **options = NULL;
        size_t n_options = 0;
        if ((rc = rt_cfg_get_strings(m, "options", path, &options, &n_options, err)) < 0)
            return rc;
        size_t data_len = 0;
        unsigned long clear = 0;
        mnt->data = gy_xstrdup("");
        for (size_t k = 0; k < n_options; k++) {
            if (rt_mount_option_flag(options[k], &mnt->flags, &clear, &mnt->propagation,
                                     &mnt->bind))
                continue;
            size_t len = strlen(options[k]);
            mnt->data = gy_xrealloc(mnt->data, data_len + len + 2);
            if (data_len > 0)
                mnt->data[data_len++] = ',';
            memcpy(mnt->data + data_len, options[k], len + 1);
            data_len += len;
        }
        rt_cfg_free_strings(options, n_options);
        if (mnt->type != NULL && strcmp(mnt->type, "bind") == 0) {
            mnt->bind = true;
            mnt->flags |= MS_BIND;
        }
        if (mnt->bind && mnt->source == NULL)
            return gy_error_set(err, GY_EINVAL, "%ssource: a bind mount needs a source", path);
        if (!mnt->bind && mnt->type == NULL)
            return gy_error_set(err, GY_EINVAL, "%stype: is required unless the mount is a bind",
                                path);
    }
    return 0;
}

static const char *const hook_names[RT_HOOK_COUNT] = {
    [RT_HOOK_PRESTART] = "prestart",
    [RT_HOOK_CREATE_RUNTIME] = "createRuntime",
    [RT_HOOK_CREATE_CONTAINER] = "createContainer",
    [RT_HOOK_START_CONTAINER] = "startContainer",
    [RT_HOOK_POSTSTART] = "poststart",
    [RT_HOOK_POSTSTOP] = "poststop",
};

const char *rt_hook_kind_name(enum rt_hook_kind kind)
{
    return hook_names[kind];
}

static int parse_hooks(json_t *hooks, struct rt_config *c, struct gy_error *err)
{
    int rc;
    if (rt_cfg_want_type(hooks, JSON_OBJECT, "hooks", "an object", err) < 0)
        return -GY_EINVAL;
    for (int k = 0; k < RT_HOOK_COUNT; k++) {
        json_t *list = json_object_get(hooks, hook_names[k]);
        if (list == NULL || json_is_null(list))
            continue;
        if (!json_is_array(list))
            return gy_error_set(err, GY_EINVAL, "hooks.%s: must be an array", hook_names[k]);
        size_t n = json_array_size(list);
        c->hooks[k] = gy_xcalloc(n + 1, sizeof(struct rt_hook));
        for (size_t i = 0; i < n; i++) {
            json_t *h = json_array_get(list, i);
            char path[64];
            snprintf(path, sizeof(path), "hooks.%s[%zu].", hook_names[k], i);
            if (!json_is_object(h))
                return gy_error_set(err, GY_EINVAL, "hooks.%s[%zu]: must be an object",
                                    hook_names[k], i);
            struct rt_hook *hook = &c->hooks[k][c->n_hooks[k]++];
            if ((rc = rt_cfg_get_string(h, "path", path, &hook->path, err)) < 0)
                return rc;
            if (rc == 0 || hook->path[0] != '/')
                return gy_error_set(err, GY_EINVAL, "%spath: an absolute path is required", path);
            if ((rc = rt_cfg_get_strings(h, "args", path, &hook->args, &hook->n_args, err)) < 0)
                return rc;
            if ((rc = rt_cfg_get_strings(h, "env", path, &hook->env, &hook->n_env, err)) < 0)
                return rc;
            int64_t timeout = 0;
            if ((rc = rt_cfg_get_int(h, "timeout", path, 1, 86400, &timeout, err)) < 0)
                return rc;
            hook->timeout = (int)timeout;
        }
    }
    return 0;
}

static int parse_config(json_t *doc, struct rt_config *c, struct gy_error *err)
{
    int rc;
    if (!json_is_object(doc))
        return gy_error_set(err, GY_EINVAL, "config: must be a JSON object");
    cleanup_free char *version = NULL;
    if ((rc = rt_cfg_get_string(doc, "ociVersion", "", &version, err)) < 0)
        return rc;
    if (rc == 0)
        return gy_error_set(err, GY_EINVAL, "ociVersion: is required");
    if (strncmp(version, "1.", 2) != 0)
        return gy_error_set(err, GY_EINVAL, "ociVersion: \"%s\" is not a 1.x version", version);
    if ((rc = parse_process(json_object_get(doc, "process"), c, err)) < 0)
        return rc;
    json_t *root = json_object_get(doc, "root");
    if (root != NULL && !json_is_null(root)) {
        if (rt_cfg_want_type(root, JSON_OBJECT, "root", "an object", err) < 0)
            return -GY_EINVAL;
        if ((rc = rt_cfg_get_string(root, "path", "root.", &c->root_path, err)) < 0)
            return rc;
        if (rc == 0 || c->root_path[0] == '\0')
            return gy_error_set(err, GY_EINVAL, "root.path: is required");
        if ((rc = rt_cfg_get_bool(root, "readonly", "root.", &c->root_readonly, err)) < 0)
            return rc;
    }
    if ((rc = rt_cfg_get_string(doc, "hostname", "", &c->hostname, err)) < 0)
        return rc;
    json_t *mounts = json_object_get(doc, "mounts");
    if (mounts != NULL && !json_is_null(mounts) && (rc = parse_mounts(mounts, c, err)) < 0)
        return rc;
    if ((rc = rt_cfg_parse_linux(json_object_get(doc, "linux"), c, err)) < 0)
        return rc;
    json_t *hooks = json_object_get(doc, "hooks");
    if (hooks != NULL && !json_is_null(hooks) && (rc = parse_hooks(hooks, c, err)) < 0)
        return rc;
    if (c->hostname != NULL && c->hostname[0] != '\0' && !c->ns[RT_NS_UTS])
        return gy_error_set(err, GY_EINVAL,
                            "hostname: setting it needs a \"uts\" entry in linux.namespaces");
    if (c->hostname != NULL && strlen(c->hostname) > 64)
        return gy_error_set(err, GY_EINVAL, "hostname: longer than 64 bytes");
    if (!c->ns[RT_NS_MOUNT])
        return gy_error_set(err, GY_EINVAL,
                            "linux.namespaces: a \"mount\" namespace is required (the root "
                            "filesystem is pivoted inside it)");
    return 0;
}

int rt_config_parse(const char *json, size_t len, struct rt_config **out, struct gy_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gy_error_set(err, GY_EPARSE, "config.json line %d column %d: %s", jerr.line,
                            jerr.column, jerr.text);
    struct rt_config *c = gy_xcalloc(1, sizeof(*c));
    c->caps[RT_CAPS_BOUNDING] = rt_caps_default();
    c->caps[RT_CAPS_EFFECTIVE] = rt_caps_default();
    c->caps[RT_CAPS_PERMITTED] = rt_caps_default();
    c->no_new_privs = true;
    c->rootfs_propagation = MS_PRIVATE | MS_REC;
    int rc = parse_config(doc, c, err);
    json_decref(doc);
    if (rc < 0) {
        rt_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int rt_config_load(const char *path, struct rt_config **out, struct gy_error *err)
{
    cleanup_fclose FILE *f = fopen(path, "re");
    if (f == NULL)
        return gy_error_sys(err, errno, "open %s", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap == 0 ? 16384 : cap * 2;
            if (cap > (64u << 20)) {
                free(text);
                return gy_error_set(err, GY_ETOOBIG, "%s: larger than 64 MiB", path);
            }
            text = gy_xrealloc(text, cap);
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(text);
        return gy_error_sys(err, EIO, "read %s", path);
    }
    int rc = rt_config_parse(text, len, out, err);
    free(text);
    if (rc < 0)
        return gy_error_wrap(err, "%s", path);
    return 0;
}

void rt_config_free(struct rt_config *c)
{
    if (c == NULL)
        return;
    rt_cfg_free_strings(c->args, c->n_args);
    rt_cfg_free_strings(c->env, c->n_env);
    free(c->cwd);
    free(c->additional_gids);
    free(c->rlimits);
    free(c->root_path);
    free(c->hostname);
    for (size_t i = 0; i < c->n_mounts; i++) {
        free(c->mounts[i].destination);
        free(c->mounts[i].type);
        free(c->mounts[i].source);
        free(c->mounts[i].data);
    }
    free(c->mounts);
    for (int i = 0; i < RT_NS_COUNT; i++)
        free(c->ns_path[i]);
    free(c->uid_maps);
    free(c->gid_maps);
    free(c->cgroups_path);
    for (size_t i = 0; i < c->n_device_nodes; i++)
        free(c->device_nodes[i].path);
    free(c->device_nodes);
    rt_resources_clear(&c->resources);
    if (c->seccomp != NULL) {
        for (size_t i = 0; i < c->seccomp->n_rules; i++) {
            rt_cfg_free_strings(c->seccomp->rules[i].names, c->seccomp->rules[i].n_names);
            free(c->seccomp->rules[i].args);
        }
        free(c->seccomp->rules);
        free(c->seccomp->arches);
        free(c->seccomp);
    }
    rt_cfg_free_strings(c->masked_paths, c->n_masked_paths);
    rt_cfg_free_strings(c->readonly_paths, c->n_readonly_paths);
    for (size_t i = 0; i < c->n_sysctls; i++) {
        free(c->sysctls[i].key);
        free(c->sysctls[i].value);
    }
    free(c->sysctls);
    for (int k = 0; k < RT_HOOK_COUNT; k++) {
        for (size_t i = 0; i < c->n_hooks[k]; i++) {
            free(c->hooks[k][i].path);
            rt_cfg_free_strings(c->hooks[k][i].args, c->hooks[k][i].n_args);
            rt_cfg_free_strings(c->hooks[k][i].env, c->hooks[k][i].n_env);
        }
        free(c->hooks[k]);
    }
    free(c);
}
