/* gantry top: CPU and memory of each workload and replica, from the leader's sample
 * windows, also as shares of what the spec requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"

static char *cpu_cell(const json_t *obj)
{
    const json_t *v = json_object_get(obj, "cpu_millis");
    if (!json_is_number(v))
        return gy_xstrdup("-");
    return ctl_cell("%.0fm", json_number_value(v));
}

static char *memory_cell(const json_t *obj)
{
    const json_t *v = json_object_get(obj, "memory_bytes");
    if (!json_is_number(v))
        return gy_xstrdup("-");
    char buf[GY_QUANTITY_BUF];
    /* Whole KiB read better than bytes. */
    int64_t bytes = (int64_t)json_number_value(v);
    if (bytes >= 1024)
        bytes -= bytes % 1024;
    return gy_xstrdup(gy_memory_format(bytes, buf));
}

static char *percent_cell(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return gy_xstrdup("-");
    return ctl_cell("%.0f%%", json_number_value(v));
}

int ctl_cmd_top(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    const char *name = inv->n_args > 0 ? inv->args[0] : NULL;
    if (name != NULL && !gy_spec_name_valid(name)) {
        fprintf(ctx->err, "gantry: top: \"%s\" is not a workload name (a DNS label)\n", name);
        return CTL_EXIT_USAGE;
    }
    const char *format = ctl_opt(inv, "output");
    if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "table") != 0) {
        fprintf(ctx->err, "gantry: top: unknown output format \"%s\" (table or json)\n", format);
        return CTL_EXIT_USAGE;
    }
    char *path = ctl_path("/v1/top", "?workload=", name);
    json_t *doc;
    struct gy_error err;
    int rc = ctl_get_json(&ctx->client, path, &doc, &err);
    free(path);
    if (rc < 0)
        return ctl_fail(ctx, &err);
    if (format != NULL && strcmp(format, "json") == 0) {
        ctl_json_print(doc, ctx->out);
        json_decref(doc);
        return CTL_EXIT_OK;
    }
    const json_t *items = json_object_get(doc, "items");
    if (json_array_size(items) == 0) {
        if (name != NULL)
            fprintf(ctx->out, "workload %s has no running replicas\n", name);
        else
            fprintf(ctx->out, "no running replicas\n");
        json_decref(doc);
        return CTL_EXIT_OK;
    }
    size_t i, j;
    const json_t *w, *r;
    static const char *const whead[] = {"WORKLOAD", "REPLICAS", "CPU",
                                        "CPU/REQ",  "MEMORY",   "MEM/REQ"};
    struct ctl_table t;
    ctl_table_init(&t, 6, whead);
    json_array_foreach(items, i, w)
    {
        char *cells[6] = {gy_xstrdup(ctl_json_str(w, "workload")),
                          ctl_cell("%zu", json_array_size(json_object_get(w, "replicas"))),
                          cpu_cell(w),
                          percent_cell(w, "cpu_percent"),
                          memory_cell(w),
                          percent_cell(w, "memory_percent")};
        ctl_table_add(&t, (const char *const *)cells);
        for (int k = 0; k < 6; k++)
            free(cells[k]);
    }
    ctl_table_print(&t, ctx->out);
    ctl_table_free(&t);
    fputc('\n', ctx->out);
    static const char *const rhead[] = {"REPLICA", "WORKLOAD", "NODE",   "READY",
                                        "CPU",     "CPU/REQ",  "MEMORY", "MEM/REQ"};
    ctl_table_init(&t, 8, rhead);
    json_array_foreach(items, i, w)
    {
        json_array_foreach(json_object_get(w, "replicas"), j, r)
        {
            char *cells[8] = {gy_xstrdup(ctl_json_str(r, "id")),
                              gy_xstrdup(ctl_json_str(w, "workload")),
                              gy_xstrdup(ctl_json_str(r, "node")),
                              gy_xstrdup(json_is_true(json_object_get(r, "ready")) ? "yes" : "no"),
                              cpu_cell(r),
                              percent_cell(r, "cpu_percent"),
                              memory_cell(r),
                              percent_cell(r, "memory_percent")};
            ctl_table_add(&t, (const char *const *)cells);
            for (int k = 0; k < 8; k++)
                free(cells[k]);
        }
    }
    ctl_table_print(&t, ctx->out);
    ctl_table_free(&t);
    fprintf(ctx->out, "\nCPU is the average over the last %llds; REQ is the spec's request.\n",
            ctl_json_int(doc, "span_ms") / 1000);
    json_decref(doc);
    return CTL_EXIT_OK;
}
