/* The autoscaler's figures as the API shows them: a workload's live state (describe) and
 * usage per replica and workload (top). */
#include "scheduler/fleet/autoscaler_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/state/query_fleet.h"

static json_t *percent_or_null(bool has, double v)
{
    return has ? json_real((double)(int64_t)(v * 10 + 0.5) / 10) : json_null();
}

json_t *sch_autoscaler_workload_json(struct sch_autoscaler *as, const char *workload,
                                     uint64_t now_ms)
{
    struct workload_as *w = as != NULL ? autoscaler_workload_find(as, workload) : NULL;
    if (w == NULL || w->live == NULL || !w->live->evaluated)
        return NULL;
    const struct sch_as_figures *f = &w->live->figures;
    json_t *o = json_object();
    json_object_set_new(o, "ready_with_figures", json_integer(f->ready));
    json_object_set_new(o, "cpu_percent", percent_or_null(f->has_cpu && f->ready, f->cpu_percent));
    json_object_set_new(o, "memory_percent",
                        percent_or_null(f->has_memory && f->ready, f->memory_percent));
    json_object_set_new(o, "metric", f->has_metric ? json_real(f->metric) : json_null());
    if (w->live->metric_error[0] != '\0')
        json_object_set_new(o, "metric_error", json_string(w->live->metric_error));
    json_object_set_new(o, "span_ms", json_integer((json_int_t)f->span_ms));
    /* The recommendation is of the last evaluation; recompute what time is left. */
    const struct sch_as_memory *m = &w->live->memory;
    json_object_set_new(o, "recommended", json_integer(w->live->decision.recommended));
    uint64_t down_in = 0, idle_in = 0;
    if (m->low_since != 0 && now_ms - m->low_since < w->live->policy.scale_down_after_ms)
        down_in = w->live->policy.scale_down_after_ms - (now_ms - m->low_since);
    if (m->idle_since != 0 && now_ms - m->idle_since < w->live->policy.idle_after_ms)
        idle_in = w->live->policy.idle_after_ms - (now_ms - m->idle_since);
    json_object_set_new(o, "scale_down_in_ms",
                        m->low_since != 0 ? json_integer((json_int_t)down_in) : json_null());
    json_object_set_new(o, "idle_in_ms",
                        m->idle_since != 0 ? json_integer((json_int_t)idle_in) : json_null());
    json_object_set_new(o, "evaluated_ms_ago",
                        json_integer((json_int_t)(now_ms - w->live->evaluated_ms)));
    return o;
}

/* Adds a workload's totals of top to its object and the object to items. */
static void close_workload(json_t *items, json_t *cur, const struct workload_as *w, double cpu,
                           double mem, size_t measured)
{
    if (cur == NULL)
        return;
    json_object_set_new(cur, "cpu_millis", json_real((double)(int64_t)(cpu * 10) / 10));
    json_object_set_new(cur, "memory_bytes", json_integer((json_int_t)mem));
    json_object_set_new(cur, "measured", json_integer((json_int_t)measured));
    bool creq = w != NULL && w->cpu_request_millis > 0 && measured > 0;
    bool mreq = w != NULL && w->memory_request_bytes > 0 && measured > 0;
    json_object_set_new(
        cur, "cpu_percent",
        percent_or_null(creq, creq ? cpu / ((double)w->cpu_request_millis * measured) * 100 : 0));
    json_object_set_new(
        cur, "memory_percent",
        percent_or_null(mreq, mreq ? mem / ((double)w->memory_request_bytes * measured) * 100 : 0));
    json_array_append_new(items, cur);
}

/* GET /v1/top under construction: one object per workload, in the replicas' order. */
struct top {
    struct sch_autoscaler *as;
    uint64_t now_ms;
    json_t *items;
    json_t *cur; /* the workload being filled, or NULL */
    char *cur_name;
    struct workload_as *w;
    double w_cpu, w_mem;
    size_t w_measured;
};

static void top_replica(void *data, const struct sch_active_replica_row *row)
{
    struct top *t = data;
    if (t->cur_name == NULL || strcmp(t->cur_name, row->workload) != 0) {
        close_workload(t->items, t->cur, t->w, t->w_cpu, t->w_mem, t->w_measured);
        free(t->cur_name);
        t->cur_name = gy_xstrdup(row->workload);
        t->w = autoscaler_workload_find(t->as, row->workload);
        t->cur = json_pack("{s:s,s:[]}", "workload", row->workload, "replicas");
        t->w_cpu = t->w_mem = 0;
        t->w_measured = 0;
    }
    const struct workload_as *w = t->w;
    json_t *r = json_pack("{s:s,s:s,s:b}", "id", row->id, "node", row->node, "ready", row->ready);
    double cpu, mem;
    uint64_t span;
    if (autoscaler_usage_of(t->as, row->id, t->now_ms, &cpu, &mem, &span)) {
        t->w_cpu += cpu;
        t->w_mem += mem;
        t->w_measured++;
        json_object_set_new(r, "cpu_millis", json_real((double)(int64_t)(cpu * 10) / 10));
        json_object_set_new(r, "memory_bytes", json_integer((json_int_t)mem));
        json_object_set_new(r, "cpu_percent",
                            percent_or_null(w != NULL && w->cpu_request_millis > 0,
                                            w != NULL && w->cpu_request_millis > 0
                                                ? cpu / (double)w->cpu_request_millis * 100
                                                : 0));
        json_object_set_new(r, "memory_percent",
                            percent_or_null(w != NULL && w->memory_request_bytes > 0,
                                            w != NULL && w->memory_request_bytes > 0
                                                ? mem / (double)w->memory_request_bytes * 100
                                                : 0));
    } else {
        json_object_set_new(r, "cpu_millis", json_null());
        json_object_set_new(r, "memory_bytes", json_null());
        json_object_set_new(r, "cpu_percent", json_null());
        json_object_set_new(r, "memory_percent", json_null());
    }
    if (w != NULL) {
        json_object_set_new(r, "cpu_request_millis", json_integer(w->cpu_request_millis));
        json_object_set_new(r, "memory_request_bytes", json_integer(w->memory_request_bytes));
    }
    json_array_append_new(json_object_get(t->cur, "replicas"), r);
}

json_t *sch_autoscaler_top(struct sch_autoscaler *as, struct sch_fsm *fsm, const char *workload,
                           uint64_t now_ms, struct gy_error *err)
{
    struct top t = {.as = as, .now_ms = now_ms, .items = json_array()};
    int rc = sch_query_active_replicas(fsm, workload, top_replica, &t, err);
    close_workload(t.items, t.cur, t.w, t.w_cpu, t.w_mem, t.w_measured);
    free(t.cur_name);
    if (rc < 0) {
        json_decref(t.items);
        return NULL;
    }
    return json_pack("{s:o,s:i}", "items", t.items, "span_ms", SCH_AS_SPAN_MS);
}
