/* gantry get (tables, wide tables, JSON, YAML and names of workloads, replicas and nodes)
 * and gantry describe workload. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"

enum kind { KIND_WORKLOADS, KIND_REPLICAS, KIND_NODES };
enum format { FORMAT_TABLE, FORMAT_WIDE, FORMAT_JSON, FORMAT_YAML, FORMAT_NAME };

static const char *const kind_words[] = {"workloads", "replicas", "nodes",
                                         "workload",  "replica",  "node"};
static const char *const format_words[] = {"table", "wide", "json", "yaml", "name"};

/* Joins a list of scalars with sep ("private,public"); "" for an empty or missing list. */
static char *join(const json_t *list, const char *sep)
{
    char *out = gy_xstrdup("");
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        char *text =
            json_is_string(v) ? gy_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
        char *next = gy_xasprintf("%s%s%s", out, i ? sep : "", text ? text : "");
        free(text);
        free(out);
        out = next;
    }
    return out;
}

static int usage_error(struct ctl_context *ctx, const char *word, const char *const *candidates,
                       size_t n, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int usage_error(struct ctl_context *ctx, const char *word, const char *const *candidates,
                       size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(ctx->err, "gantry: ");
    vfprintf(ctx->err, fmt, ap);
    va_end(ap);
    const char *best = candidates ? gy_spec_suggest(word, candidates, n) : NULL;
    if (best != NULL)
        fprintf(ctx->err, "; did you mean \"%s\"?", best);
    fprintf(ctx->err, "\nRun 'gantry get --help' for usage.\n");
    return CTL_EXIT_USAGE;
}

/* ---------------------------------------------------------------------------------------
 * Tables */

char *ctl_ports_text(const json_t *ports, bool names)
{
    char *out = gy_xstrdup("");
    size_t i;
    const json_t *p;
    json_array_foreach(ports, i, p)
    {
        char host[24] = "";
        long long host_port = ctl_json_int(p, "host_port");
        if (host_port > 0)
            snprintf(host, sizeof(host), "%lld:", host_port);
        const char *name = ctl_json_str(p, "name");
        bool named = names && *name != '\0';
        char *next = gy_xasprintf(
            "%s%s%s%lld/%s%s%s%s", out, i ? ", " : "", host, ctl_json_int(p, "container_port"),
            *ctl_json_str(p, "protocol") ? ctl_json_str(p, "protocol") : "tcp", named ? " (" : "",
            named ? name : "", named ? ")" : "");
        free(out);
        out = next;
    }
    return out;
}

char *ctl_exposed_ports_text(const char *label)
{
    char *out = gy_xstrdup("");
    const char *p = label != NULL ? label : "";
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        bool has_protocol = memchr(p, '/', len) != NULL;
        if (len > 0) {
            char *next = gy_xasprintf("%s%s%.*s%s", out, *out ? ", " : "", (int)len, p,
                                      has_protocol ? "" : "/tcp");
            free(out);
            out = next;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return out;
}

void ctl_workloads_print(const json_t *items, bool wide, uint64_t now_ms, FILE *out)
{
    static const char *const head[] = {"NAME",       "DESIRED", "RUNNING", "READY",
                                       "GENERATION", "AGE",     "IMAGE",   "CPU",
                                       "MEMORY",     "RESTART", "CLOUDS",  "PORTS"};
    enum { COLS_WIDE = 12 };
    struct ctl_table t;
    size_t cols = wide ? COLS_WIDE : 6;
    ctl_table_init(&t, cols, head);
    size_t i;
    const json_t *w;
    json_array_foreach(items, i, w)
    {
        const json_t *status = json_object_get(w, "status"), *spec = json_object_get(w, "spec");
        const json_t *res = json_object_get(spec, "resources");
        char age[32];
        char *cells[COLS_WIDE] = {
            gy_xstrdup(ctl_json_str(w, "name")),
            ctl_cell("%lld%s", ctl_json_int(status, "desired"),
                     strcmp(ctl_json_str(json_object_get(status, "autoscaler"), "state"), "idle") ==
                             0
                         ? " (idle)"
                         : ""),
            ctl_cell("%lld", ctl_json_int(status, "running")),
            ctl_cell("%lld", ctl_json_int(status, "ready")),
            ctl_cell("%lld", ctl_json_int(w, "generation")),
            gy_xstrdup(ctl_age_format(now_ms, (uint64_t)ctl_json_int(w, "created_ms"), age)),
            gy_xstrdup(ctl_json_str(spec, "image")),
            gy_xstrdup(ctl_json_str(res, "cpu")),
            gy_xstrdup(ctl_json_str(res, "memory")),
            gy_xstrdup(ctl_json_str(spec, "restart")),
            join(json_object_get(json_object_get(spec, "placement"), "clouds"), ","),
            ctl_ports_text(json_object_get(spec, "ports"), false),
        };
        if (*cells[10] == '\0') {
            free(cells[10]);
            cells[10] = gy_xstrdup("any");
        }
        if (*cells[11] == '\0') {
            free(cells[11]);
            cells[11] = gy_xstrdup("<none>");
        }
        ctl_table_add(&t, (const char *const *)cells);
        for (size_t c = 0; c < COLS_WIDE; c++)
            free(cells[c]);
    }
    ctl_table_print(&t, out);
    ctl_table_free(&t);
}

/* The STATE shown for a replica: "unknown" for one whose node is cut off from the control
 * plane, which the API gives with its last reported state and a reason starting with
 * "unknown: " (docs/api.md). */
static const char *replica_state_shown(const json_t *r)
{
    const char *state = ctl_json_str(r, "state");
    if (strncmp(ctl_json_str(r, "reason"), "unknown: ", 9) == 0 && strcmp(state, "stopping") != 0 &&
        strcmp(state, "lost") != 0)
        return "unknown";
    return state;
}

static void replicas_table(FILE *out, const json_t *items, bool wide, bool with_workload,
                           const char *indent)
{
    static const char *const head_all[] = {"NAME",  "WORKLOAD", "GENERATION", "NODE",
                                           "STATE", "READY",    "RESTARTS",   "CLOUD",
                                           "EXIT",  "ADDRESS",  "REASON"};
    const char *head[11];
    size_t cols = 0;
    for (size_t c = 0; c < (wide ? 11u : 7u); c++)
        if (c != 1 || with_workload)
            head[cols++] = head_all[c];
    struct ctl_table t;
    ctl_table_init(&t, cols, head);
    size_t i;
    const json_t *r;
    json_array_foreach(items, i, r)
    {
        char *all[11] = {
            gy_xstrdup(ctl_json_str(r, "id")),
            gy_xstrdup(ctl_json_str(r, "workload")),
            ctl_cell("%lld", ctl_json_int(r, "generation")),
            gy_xstrdup(*ctl_json_str(r, "node") ? ctl_json_str(r, "node") : "<none>"),
            gy_xstrdup(replica_state_shown(r)),
            gy_xstrdup(json_is_true(json_object_get(r, "ready")) ? "true" : "false"),
            ctl_cell("%lld", ctl_json_int(r, "restarts")),
            gy_xstrdup(*ctl_json_str(r, "cloud") ? ctl_json_str(r, "cloud") : "<none>"),
            ctl_cell("%lld", ctl_json_int(r, "exit_code")),
            gy_xstrdup(*ctl_json_str(r, "address") ? ctl_json_str(r, "address") : "<none>"),
            gy_xstrdup(*ctl_json_str(r, "reason") ? ctl_json_str(r, "reason") : "<none>"),
        };
        const char *cells[11];
        size_t k = 0;
        for (size_t c = 0; c < (wide ? 11u : 7u); c++)
            if (c != 1 || with_workload)
                cells[k++] = all[c];
        ctl_table_add(&t, cells);
        for (size_t c = 0; c < 11; c++)
            free(all[c]);
    }
    ctl_table_print_indent(&t, indent, out);
    ctl_table_free(&t);
}

/* The STATE shown for a node: its state, then the type of each of its conditions, e.g.
 * "ready,StoragePressure" while its agent's database refuses writes (docs/api.md). The
 * caller frees it. */
static char *node_state_shown(const json_t *n)
{
    char *shown = gy_xstrdup(ctl_json_str(n, "state"));
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(n, "conditions"), i, c)
    {
        const char *type = ctl_json_str(c, "type");
        if (*type == '\0')
            continue;
        char *next = gy_xasprintf("%s,%s", shown, type);
        free(shown);
        shown = next;
    }
    return shown;
}

static void nodes_table(struct ctl_context *ctx, const json_t *items, bool wide)
{
    static const char *const head[] = {"NAME",     "CLOUD",   "STATE",   "CPU",    "MEMORY",
                                       "REPLICAS", "CPU REQ", "MEM REQ", "REGION", "ZONE",
                                       "ADDRESS",  "SUBNET",  "PIDS",    "COST",   "LABELS"};
    struct ctl_table t;
    ctl_table_init(&t, wide ? 15 : 6, head);
    size_t i;
    const json_t *n;
    json_array_foreach(items, i, n)
    {
        const json_t *cap = json_object_get(n, "capacity");
        char cpu[GY_QUANTITY_BUF], mem[GY_QUANTITY_BUF];
        gy_cpu_format(ctl_json_int(cap, "cpu_millis"), cpu);
        gy_memory_format(ctl_json_int(cap, "memory_bytes"), mem);
        char *labels = gy_xstrdup("");
        const char *key;
        const json_t *value;
        json_object_foreach(json_object_get(n, "labels"), key, value)
        {
            char *next = gy_xasprintf("%s%s%s=%s", labels, *labels ? "," : "", key,
                                      json_is_string(value) ? json_string_value(value) : "");
            free(labels);
            labels = next;
        }
        const json_t *alloc = json_object_get(n, "allocated");
        char acpu[GY_QUANTITY_BUF] = "-", amem[GY_QUANTITY_BUF] = "-";
        if (json_is_integer(json_object_get(alloc, "cpu_millis")))
            gy_cpu_format(ctl_json_int(alloc, "cpu_millis"), acpu);
        if (json_is_integer(json_object_get(alloc, "memory_bytes")))
            gy_memory_format(ctl_json_int(alloc, "memory_bytes"), amem);
        char *cells[15] = {
            gy_xstrdup(ctl_json_str(n, "name")),
            gy_xstrdup(ctl_json_str(n, "cloud")),
            node_state_shown(n),
            gy_xstrdup(cpu),
            gy_xstrdup(mem),
            ctl_cell("%lld", ctl_json_int(alloc, "replicas")),
            gy_xstrdup(acpu),
            gy_xstrdup(amem),
            gy_xstrdup(*ctl_json_str(n, "region") ? ctl_json_str(n, "region") : "<none>"),
            gy_xstrdup(*ctl_json_str(n, "zone") ? ctl_json_str(n, "zone") : "<none>"),
            gy_xstrdup(*ctl_json_str(n, "address") ? ctl_json_str(n, "address") : "<none>"),
            gy_xstrdup(*ctl_json_str(n, "subnet") ? ctl_json_str(n, "subnet") : "<none>"),
            ctl_cell("%lld", ctl_json_int(cap, "pids")),
            ctl_cell("%.4g", json_number_value(json_object_get(n, "cost"))),
            *labels ? labels : gy_xstrdup("<none>"),
        };
        if (!*labels)
            free(labels);
        ctl_table_add(&t, (const char *const *)cells);
        for (size_t c = 0; c < 15; c++)
            free(cells[c]);
    }
    ctl_table_print(&t, ctx->out);
    ctl_table_free(&t);
}

/* ---------------------------------------------------------------------------------------
 * get */

/* Keeps the items whose key equals name; false when none does. */
static bool filter_items(json_t *items, const char *key, const char *name)
{
    for (size_t i = json_array_size(items); i-- > 0;)
        if (strcmp(ctl_json_str(json_array_get(items, i), key), name) != 0)
            json_array_remove(items, i);
    return json_array_size(items) > 0;
}

int ctl_cmd_get(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    static const char *const all_kinds[] = {"workloads", "replicas", "nodes", "images"};
    const char *word = inv->args[0];
    const char *node = ctl_opt(inv, "node");
    enum kind kind;
    size_t k;
    if (strcmp(word, "images") == 0 || strcmp(word, "image") == 0) {
        if (ctl_opt(inv, "workload") != NULL)
            return usage_error(ctx, word, NULL, 0, "get: --workload only filters replicas");
        return ctl_images_get(ctx, node, ctl_opt(inv, "output"),
                              inv->n_args > 1 ? inv->args[1] : NULL);
    }
    if (node != NULL)
        return usage_error(ctx, node, NULL, 0, "get: --node %s only filters images", node);
    for (k = 0; k < 6; k++)
        if (strcmp(word, kind_words[k]) == 0)
            break;
    if (k == 6)
        return usage_error(ctx, word, all_kinds, 4,
                           "get: unknown kind \"%s\" (workloads, replicas, nodes or images)", word);
    kind = (enum kind)(k % 3);
    enum format format = FORMAT_TABLE;
    const char *fmt = ctl_opt(inv, "output");
    if (fmt != NULL) {
        for (k = 0; k < 5; k++)
            if (strcmp(fmt, format_words[k]) == 0)
                break;
        if (k == 5)
            return usage_error(ctx, fmt, format_words, 5,
                               "get: unknown output format \"%s\" (wide, json, yaml or name)", fmt);
        format = (enum format)k;
    }
    const char *workload = ctl_opt(inv, "workload");
    if (workload != NULL && kind != KIND_REPLICAS)
        return usage_error(ctx, workload, NULL, 0, "get: --workload %s only filters replicas",
                           workload);
    if (workload != NULL && !gy_spec_name_valid(workload))
        return usage_error(ctx, workload, NULL, 0,
                           "get: --workload \"%s\" is not a workload name (a DNS label)", workload);
    const char *name = inv->n_args > 1 ? inv->args[1] : NULL;
    if (name != NULL && kind == KIND_WORKLOADS && !gy_spec_name_valid(name))
        return usage_error(ctx, name, NULL, 0,
                           "get: \"%s\" is not a workload name (a DNS label: lower-case letters, "
                           "digits and '-')",
                           name);

    char *path = kind == KIND_WORKLOADS  ? ctl_path("/v1/workloads", "/", name)
                 : kind == KIND_REPLICAS ? ctl_path("/v1/replicas", "?workload=", workload)
                                         : gy_xstrdup("/v1/nodes");
    json_t *doc;
    struct gy_error err;
    int rc = ctl_get_json(&ctx->client, path, &doc, &err);
    free(path);
    if (rc < 0)
        return ctl_fail(ctx, &err);

    /* One shape for the printers: a list of items. */
    json_t *items;
    if (kind == KIND_WORKLOADS && name != NULL)
        items = json_pack("[O]", doc);
    else
        items = json_incref(json_object_get(doc, "items"));
    if (!json_is_array(items)) {
        json_decref(items);
        json_decref(doc);
        fprintf(ctx->err, "gantry: the server's answer has no \"items\" list\n");
        return CTL_EXIT_FAILED;
    }
    static const char *const singular[] = {"workload", "replica", "node"};
    if (name != NULL && kind != KIND_WORKLOADS &&
        !filter_items(items, kind == KIND_REPLICAS ? "id" : "name", name)) {
        json_decref(items);
        json_decref(doc);
        fprintf(ctx->err, "gantry: %s \"%s\" not found\n", singular[kind], name);
        return CTL_EXIT_FAILED;
    }
    json_t *single = name != NULL ? json_array_get(items, 0) : NULL;

    switch (format) {
    case FORMAT_JSON:
        ctl_json_print(single ? single : doc, ctx->out);
        break;
    case FORMAT_YAML:
        if (kind == KIND_WORKLOADS) {
            /* Each workload as the spec it runs, defaults included: a file that applies. */
            size_t i;
            json_t *w;
            json_array_foreach(items, i, w)
            {
                if (i > 0)
                    fputs("---\n", ctx->out);
                ctl_yaml_print(json_object_get(w, "spec"), ctx->out);
            }
        } else {
            ctl_yaml_print(single ? single : json_object_get(doc, "items"), ctx->out);
        }
        break;
    case FORMAT_NAME: {
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            fprintf(ctx->out, "%s\n", ctl_json_str(item, kind == KIND_REPLICAS ? "id" : "name"));
        }
        break;
    }
    default:
        if (json_array_size(items) == 0) {
            static const char *const plural[] = {"workloads", "replicas", "nodes"};
            fprintf(ctx->err, "No %s found.\n", plural[kind]);
        } else if (kind == KIND_WORKLOADS) {
            ctl_workloads_print(items, format == FORMAT_WIDE, ctl_now_ms(), ctx->out);
        } else if (kind == KIND_REPLICAS) {
            replicas_table(ctx->out, items, format == FORMAT_WIDE, true, "");
        } else {
            nodes_table(ctx, items, format == FORMAT_WIDE);
        }
        break;
    }
    json_decref(items);
    json_decref(doc);
    return CTL_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * describe workload */

/* "key value, key value" for a settings object, lists joined with blanks. */
static char *settings_line(const json_t *obj)
{
    if (!json_is_object(obj))
        return json_is_string(obj) ? gy_xstrdup(json_string_value(obj)) : gy_xstrdup("none");
    char *out = gy_xstrdup("");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        char *text;
        if (json_is_array(v))
            text = json_array_size(v) ? join(v, " ") : gy_xstrdup("none");
        else if (json_is_object(v))
            text = settings_line(v);
        else if (json_is_string(v))
            text = gy_xstrdup(json_string_value(v));
        else
            text = json_dumps(v, JSON_ENCODE_ANY);
        char *next = gy_xasprintf("%s%s%s %s", out, *out ? ", " : "", key, text ? text : "");
        free(text);
        free(out);
        out = next;
    }
    return out;
}

/* The events about one object, oldest first, at most keep of the newest. */
static int object_events(struct ctl_client *client, const char *object, size_t keep, json_t **out,
                         struct gy_error *err)
{
    json_t *found = json_array();
    long long since = 0;
    /* The server pages 1,000 events an answer; a cluster's whole trail is read at most
     * this many pages deep. */
    for (int page = 0; page < 10000; page++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/events?since=%lld", since);
        json_t *doc;
        if (ctl_get_json(client, path, &doc, err) < 0) {
            json_decref(found);
            return -1;
        }
        json_t *items = json_object_get(doc, "items");
        size_t i;
        json_t *e;
        json_array_foreach(items, i, e)
        {
            if (strcmp(ctl_json_str(e, "object"), object) == 0) {
                json_array_append(found, e);
                if (json_array_size(found) > keep)
                    json_array_remove(found, 0);
            }
        }
        long long last = ctl_json_int(doc, "last");
        size_t n = json_array_size(items);
        json_decref(doc);
        if (n == 0 || last <= since)
            break;
        since = last;
    }
    *out = found;
    return 0;
}

/* Live replicas per cloud, in order of first appearance: "private 2 (2 ready), public 8". */
static char *clouds_line(const json_t *items)
{
    json_t *seen = json_object();
    json_t *order = json_array();
    size_t i;
    const json_t *r;
    json_array_foreach(items, i, r)
    {
        const char *state = ctl_json_str(r, "state");
        if (strcmp(state, "stopped") == 0 || strcmp(state, "lost") == 0 ||
            strcmp(state, "stopping") == 0)
            continue;
        const char *cloud = *ctl_json_str(r, "cloud") ? ctl_json_str(r, "cloud") : "<none>";
        json_t *row = json_object_get(seen, cloud);
        if (row == NULL) {
            row = json_pack("{s:i,s:i}", "n", 0, "ready", 0);
            json_object_set_new(seen, cloud, row);
            json_array_append_new(order, json_string(cloud));
        }
        json_object_set_new(row, "n", json_integer(ctl_json_int(row, "n") + 1));
        if (strcmp(state, "running") == 0 && json_is_true(json_object_get(r, "ready")))
            json_object_set_new(row, "ready", json_integer(ctl_json_int(row, "ready") + 1));
    }
    char *line = gy_xstrdup("");
    const json_t *c;
    json_array_foreach(order, i, c)
    {
        const json_t *row = json_object_get(seen, json_string_value(c));
        char *next =
            gy_xasprintf("%s%s%s %lld (%lld ready)", line, *line ? ", " : "", json_string_value(c),
                         ctl_json_int(row, "n"), ctl_json_int(row, "ready"));
        free(line);
        line = next;
    }
    json_decref(seen);
    json_decref(order);
    if (*line == '\0') {
        free(line);
        line = gy_xstrdup("none");
    }
    return line;
}

/* The autoscale line of describe: the settings, then what the autoscaler sees now. */
static const char *autoscaler_line(const json_t *a, const char *settings, const char *name)
{
    static char line[1024];
    if (!json_is_object(a)) {
        snprintf(line, sizeof(line), "%s", settings);
        return line;
    }
    if (strcmp(ctl_json_str(a, "state"), "idle") == 0) {
        snprintf(line, sizeof(line),
                 "%s\n              idle: scaled to zero; 'gantry scale %s N' or an apply wakes it",
                 settings, name);
        return line;
    }
    const json_t *live = json_object_get(a, "live");
    if (!json_is_object(live)) {
        snprintf(line, sizeof(line), "%s\n              active", settings);
        return line;
    }
    char figures[512] = "";
    size_t n = 0;
    const json_t *v;
    if (json_is_number(v = json_object_get(live, "cpu_percent")))
        n += (size_t)snprintf(figures + n, sizeof(figures) - n, "cpu %.0f%%, ",
                              json_number_value(v));
    if (json_is_number(v = json_object_get(live, "memory_percent")) && n < sizeof(figures))
        n += (size_t)snprintf(figures + n, sizeof(figures) - n, "memory %.0f%%, ",
                              json_number_value(v));
    if (json_is_number(v = json_object_get(live, "metric")) && n < sizeof(figures))
        n += (size_t)snprintf(figures + n, sizeof(figures) - n, "metric %.3g, ",
                              json_number_value(v));
    if (json_is_string(v = json_object_get(live, "metric_error")) && n < sizeof(figures))
        n += (size_t)snprintf(figures + n, sizeof(figures) - n, "metric failed: %s, ",
                              json_string_value(v));
    char extra[128] = "";
    if (json_is_integer(v = json_object_get(live, "scale_down_in_ms")))
        snprintf(extra, sizeof(extra), "; scale-down in %llds",
                 (long long)(json_integer_value(v) + 999) / 1000);
    else if (json_is_integer(v = json_object_get(live, "idle_in_ms")))
        snprintf(extra, sizeof(extra), "; idle, retires to zero in %llds",
                 (long long)(json_integer_value(v) + 999) / 1000);
    if (n == 0)
        snprintf(line, sizeof(line),
                 "%s\n              active; no figures yet (%lld ready with samples)", settings,
                 ctl_json_int(live, "ready_with_figures"));
    else
        snprintf(line, sizeof(line), "%s\n              active; now %srecommends %lld%s", settings,
                 figures, ctl_json_int(live, "recommended"), extra);
    return line;
}

int ctl_cmd_describe(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    if (strcmp(inv->args[0], "workload") != 0 && strcmp(inv->args[0], "workloads") != 0) {
        static const char *const kinds[] = {"workload"};
        fprintf(ctx->err, "gantry: describe: unknown kind \"%s\" (workload)", inv->args[0]);
        if (gy_spec_suggest(inv->args[0], kinds, 1))
            fprintf(ctx->err, "; did you mean \"workload\"?");
        fprintf(ctx->err, "\nRun 'gantry describe --help' for usage.\n");
        return CTL_EXIT_USAGE;
    }
    const char *name = inv->args[1];
    if (!gy_spec_name_valid(name)) {
        fprintf(ctx->err, "gantry: describe: \"%s\" is not a workload name (a DNS label)\n", name);
        return CTL_EXIT_USAGE;
    }
    char *esc = ctl_url_escape(name);
    char *wpath = gy_xasprintf("/v1/workloads/%s", esc);
    char *rpath = gy_xasprintf("/v1/replicas?workload=%s", esc);
    char *object = gy_xasprintf("workload/%s", name);
    free(esc);
    json_t *w = NULL, *reps = NULL, *events = NULL;
    struct gy_error err;
    int rc = ctl_get_json(&ctx->client, wpath, &w, &err);
    if (rc == 0)
        rc = ctl_get_json(&ctx->client, rpath, &reps, &err);
    if (rc == 0)
        rc = object_events(&ctx->client, object, 10, &events, &err);
    free(wpath);
    free(rpath);
    free(object);
    if (rc < 0) {
        json_decref(w);
        json_decref(reps);
        return ctl_fail(ctx, &err);
    }
    FILE *out = ctx->out;
    const json_t *spec = json_object_get(w, "spec"), *status = json_object_get(w, "status");
    uint64_t now = ctl_now_ms();
    char age[32];
    char *command = join(json_object_get(spec, "command"), " ");
    char *env = settings_line(json_object_get(spec, "env"));
    char *resources = settings_line(json_object_get(spec, "resources"));
    char *health = settings_line(json_object_get(spec, "health"));
    char *placement = settings_line(json_object_get(spec, "placement"));
    char *autoscale = settings_line(json_object_get(spec, "autoscale"));
    char *update = settings_line(json_object_get(spec, "update"));
    fprintf(out, "Name:         %s\n", ctl_json_str(w, "name"));
    fprintf(out, "Generation:   %lld\n", ctl_json_int(w, "generation"));
    fprintf(out, "Age:          %s\n",
            ctl_age_format(now, (uint64_t)ctl_json_int(w, "created_ms"), age));
    fprintf(out, "Image:        %s\n", ctl_json_str(spec, "image"));
    const json_t *image = json_object_get(status, "image");
    if (json_is_object(image)) {
        fprintf(out, "Image digest: %s (pinned at apply)\n", ctl_json_str(image, "digest"));
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)json_object_get(image, "labels"), key, value)
        {
            fprintf(out, "Image label:  %s=%s\n", key, json_string_value(value));
        }
    }
    fprintf(out, "Command:      %s\n", *command ? command : "(image default)");
    fprintf(out, "Env:          %s\n", *env ? env : "none");
    char *ports = ctl_ports_text(json_object_get(spec, "ports"), true);
    fprintf(out, "Ports:        %s\n", *ports ? ports : "none");
    free(ports);
    /* What the image declares it listens on, recorded when its digest was pinned: a hint,
     * since only the ports listed above are published. */
    const char *exposed_label =
        ctl_json_str(json_object_get(image, "labels"), "org.opencontainers.image.exposedPorts");
    if (*exposed_label != '\0') {
        char *exposed = ctl_exposed_ports_text(exposed_label);
        fprintf(out, "Image ports:  %s (the image's ExposedPorts)\n", exposed);
        free(exposed);
    }
    fprintf(out, "Replicas:     %lld desired, %lld placed, %lld running, %lld ready\n",
            ctl_json_int(status, "desired"), ctl_json_int(status, "replicas"),
            ctl_json_int(status, "running"), ctl_json_int(status, "ready"));
    char *clouds = clouds_line(json_object_get(reps, "items"));
    fprintf(out, "Clouds:       %s\n", clouds);
    free(clouds);
    fprintf(out, "Resources:    %s\n", resources);
    fprintf(out, "Restart:      %s\n", ctl_json_str(spec, "restart"));
    fprintf(out, "Health:       %s\n", health);
    fprintf(out, "Placement:    %s\n", placement);
    fprintf(
        out, "Autoscale:    %s\n",
        autoscaler_line(json_object_get(status, "autoscaler"), autoscale, ctl_json_str(w, "name")));
    fprintf(out, "Update:       %s\n", update);
    fprintf(out, "Stop grace:   %s\n", ctl_json_str(spec, "stop_grace"));
    free(command);
    free(env);
    free(resources);
    free(health);
    free(placement);
    free(autoscale);
    free(update);

    fprintf(out, "Conditions:\n");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(status, "conditions"), i, c)
    {
        fprintf(out, "  %-14s %s\n", ctl_json_str(c, "type"), ctl_json_str(c, "message"));
    }

    /* Replicas per node and cloud: where the workload runs. */
    const json_t *items = json_object_get(reps, "items");
    fprintf(out, "Placement by node:\n");
    if (json_array_size(items) == 0) {
        fprintf(out, "  (no replicas placed)\n");
    } else {
        static const char *const head[] = {"NODE", "CLOUD", "REPLICAS", "RUNNING", "READY"};
        struct ctl_table t;
        ctl_table_init(&t, 5, head);
        json_t *seen = json_object();
        const json_t *r;
        json_array_foreach(items, i, r)
        {
            const char *node = *ctl_json_str(r, "node") ? ctl_json_str(r, "node") : "<none>";
            json_t *row = json_object_get(seen, node);
            if (row == NULL) {
                row = json_pack("{s:s,s:i,s:i,s:i}", "cloud", ctl_json_str(r, "cloud"), "n", 0,
                                "running", 0, "ready", 0);
                json_object_set_new(seen, node, row);
            }
            json_object_set_new(row, "n", json_integer(ctl_json_int(row, "n") + 1));
            if (strcmp(ctl_json_str(r, "state"), "running") == 0)
                json_object_set_new(row, "running", json_integer(ctl_json_int(row, "running") + 1));
            if (json_is_true(json_object_get(r, "ready")))
                json_object_set_new(row, "ready", json_integer(ctl_json_int(row, "ready") + 1));
        }
        const char *node;
        json_t *row;
        json_object_foreach(seen, node, row)
        {
            char *cells[5] = {
                gy_xstrdup(node),
                gy_xstrdup(*ctl_json_str(row, "cloud") ? ctl_json_str(row, "cloud") : "<none>"),
                ctl_cell("%lld", ctl_json_int(row, "n")),
                ctl_cell("%lld", ctl_json_int(row, "running")),
                ctl_cell("%lld", ctl_json_int(row, "ready"))};
            ctl_table_add(&t, (const char *const *)cells);
            for (int k = 0; k < 5; k++)
                free(cells[k]);
        }
        json_decref(seen);
        ctl_table_print_indent(&t, "  ", out);
        ctl_table_free(&t);
        fprintf(out, "Replicas:\n");
        replicas_table(out, items, true, false, "  ");
    }

    fprintf(out, "Events:\n");
    if (json_array_size(events) == 0) {
        fprintf(out, "  (none)\n");
    } else {
        static const char *const head[] = {"SEQ", "AGE", "KIND", "ACTOR", "MESSAGE"};
        struct ctl_table t;
        ctl_table_init(&t, 5, head);
        const json_t *e;
        json_array_foreach(events, i, e)
        {
            char *cells[5] = {
                ctl_cell("%lld", ctl_json_int(e, "seq")),
                gy_xstrdup(ctl_age_format(now, (uint64_t)ctl_json_int(e, "time_ms"), age)),
                gy_xstrdup(ctl_json_str(e, "kind")), gy_xstrdup(ctl_json_str(e, "actor")),
                gy_xstrdup(ctl_json_str(e, "message"))};
            ctl_table_add(&t, (const char *const *)cells);
            for (int k = 0; k < 5; k++)
                free(cells[k]);
        }
        ctl_table_print_indent(&t, "  ", out);
        ctl_table_free(&t);
    }
    json_decref(events);
    json_decref(reps);
    json_decref(w);
    return CTL_EXIT_OK;
}
