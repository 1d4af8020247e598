/* OCI config for a replica; see bundle.h. */
#include "agent/bundle.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Sets obj[key] to a new object unless it is one already; returns it (borrowed). */
static json_t *object_at(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

/* Appends NAME=VALUE unless the env array already sets NAME, in which case it replaces
 * that entry. */
static void env_set(json_t *env, const char *name, const char *value)
{
    size_t len = strlen(name);
    char *entry = NULL;
    if (asprintf(&entry, "%s=%s", name, value) < 0)
        return;
    size_t i;
    json_t *item;
    json_array_foreach(env, i, item)
    {
        const char *s = json_string_value(item);
        if (s != NULL && strncmp(s, name, len) == 0 && s[len] == '=') {
            json_array_set_new(env, i, json_string(entry));
            free(entry);
            return;
        }
    }
    json_array_append_new(env, json_string(entry));
    free(entry);
}

static void hostname_from_id(const char *id, char out[64])
{
    size_t n = 0;
    for (const char *p = id; *p != '\0' && n < 63; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[n++] = ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') ? c : '-';
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
}

static void argv_append(json_t *args, char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_array_append_new(args, json_string(words[i]));
}

char *agent_bundle_config(const char *base_json, const struct gy_spec *spec,
                          const struct agent_bundle_params *params, struct gy_error *err)
{
    const struct agent_image_defaults *img = params->image;
    json_t *args = json_array();
    if (spec->command.n > 0)
        argv_append(args, spec->command.items, spec->command.n);
    else if (img != NULL)
        argv_append(args, img->entrypoint, img->n_entrypoint);
    if (spec->args.n > 0)
        argv_append(args, spec->args.items, spec->args.n);
    else if (spec->command.n == 0 && img != NULL)
        argv_append(args, img->cmd, img->n_cmd);
    if (json_array_size(args) == 0) {
        json_decref(args);
        gy_error_set(err, GY_EINVAL,
                     "workload \"%s\" has no command, and image \"%s\" provides none", spec->name,
                     spec->image);
        return NULL;
    }
    json_error_t jerr;
    json_t *cfg = json_loads(base_json, 0, &jerr);
    if (!json_is_object(cfg)) {
        gy_error_set(err, GY_EINTERNAL, "base runtime config: %s", jerr.text);
        json_decref(cfg);
        json_decref(args);
        return NULL;
    }

    json_t *process = object_at(cfg, "process");
    json_object_set_new(process, "args", args);
    json_object_set_new(process, "terminal", json_false());
    if (img != NULL && img->working_dir != NULL && img->working_dir[0] == '/')
        json_object_set_new(process, "cwd", json_string(img->working_dir));
    else if (!json_is_string(json_object_get(process, "cwd")))
        json_object_set_new(process, "cwd", json_string("/"));
    if (img != NULL && img->has_user)
        json_object_set_new(
            process, "user",
            json_pack("{s:I, s:I}", "uid", (json_int_t)img->uid, "gid", (json_int_t)img->gid));

    char hostname[64];
    if (params->hostname != NULL)
        snprintf(hostname, sizeof(hostname), "%s", params->hostname);
    else
        hostname_from_id(params->replica_id, hostname);
    json_object_set_new(cfg, "hostname", json_string(hostname));

    json_t *env = json_array();
    env_set(env, "PATH", DEFAULT_PATH);
    for (size_t i = 0; img != NULL && i < img->n_env; i++) {
        const char *eq = strchr(img->env[i], '=');
        if (eq == NULL || eq == img->env[i])
            continue;
        char name[256];
        size_t len = (size_t)(eq - img->env[i]);
        if (len >= sizeof(name))
            continue;
        memcpy(name, img->env[i], len);
        name[len] = '\0';
        env_set(env, name, eq + 1);
    }
    env_set(env, "HOSTNAME", hostname);
    env_set(env, "GANTRY_WORKLOAD", spec->name);
    env_set(env, "GANTRY_REPLICA", params->replica_id);
    for (size_t i = 0; i < spec->n_env; i++)
        env_set(env, spec->env[i].name, spec->env[i].value);
    json_object_set_new(process, "env", env);

    json_t *linux_ = object_at(cfg, "linux");
    json_t *namespaces = json_object_get(linux_, "namespaces");
    if (!json_is_array(namespaces)) {
        namespaces = json_array();
        const char *types[] = {"pid", "ipc", "uts", "mount", "cgroup"};
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            json_array_append_new(namespaces, json_pack("{s:s}", "type", types[i]));
        json_object_set_new(linux_, "namespaces", namespaces);
    }
    /* Replace whatever the base says about the network namespace. */
    for (size_t i = json_array_size(namespaces); i-- > 0;) {
        const char *type =
            json_string_value(json_object_get(json_array_get(namespaces, i), "type"));
        if (type != NULL && strcmp(type, "network") == 0)
            json_array_remove(namespaces, i);
    }
    json_t *net = json_pack("{s:s}", "type", "network");
    if (params->netns_path != NULL)
        json_object_set_new(net, "path", json_string(params->netns_path));
    json_array_append_new(namespaces, net);

    json_t *res = json_object();
    const struct gy_resources *r = &spec->resources;
    if (r->memory_bytes > 0)
        json_object_set_new(res, "memory",
                            json_pack("{s:I}", "limit", (json_int_t)r->memory_bytes));
    if (r->cpu_millis > 0) {
        json_int_t quota = (json_int_t)r->cpu_millis * AGENT_CPU_PERIOD_US / 1000;
        json_int_t shares = (json_int_t)r->cpu_millis * 1024 / 1000;
        json_object_set_new(res, "cpu",
                            json_pack("{s:I, s:I, s:I}", "quota", quota, "period",
                                      (json_int_t)AGENT_CPU_PERIOD_US, "shares",
                                      shares < 2 ? (json_int_t)2 : shares));
    }
    if (r->pids > 0)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)r->pids));
    json_object_set_new(linux_, "resources", res);

    if (img != NULL && img->n_annotations > 0) {
        json_t *annotations = object_at(cfg, "annotations");
        for (size_t i = 0; i < img->n_annotations; i++)
            json_object_set_new(annotations, img->annotation_keys[i],
                                json_string(img->annotation_values[i]));
    }

    char *text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    if (text == NULL)
        gy_error_set(err, GY_ENOMEM, "encode runtime config");
    return text;
}
