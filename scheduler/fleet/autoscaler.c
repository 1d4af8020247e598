/* The leader's autoscaler: usage windows, metric probes and evaluation; see autoscaler.h. */
#include "scheduler/fleet/autoscaler_internal.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/fleet/fleet_command.h"
#include "scheduler/state/query_fleet.h"

/* A replica's samples; forgotten after this long without one. */
#define USAGE_FORGET_MS 30000
/* A probe unanswered for this long is given up and another is sent. */
#define PROBE_TIMEOUT_MS 3000

/* Past this many changed names the next evaluation reads every workload instead. */
#define CHANGED_MAX 4096

struct sch_autoscaler *sch_autoscaler_new(void)
{
    struct sch_autoscaler *as = gy_xcalloc(1, sizeof(*as));
    as->next_probe_id = 1;
    as->scan_all = true;
    return as;
}

static void changed_clear(struct sch_autoscaler *as)
{
    for (size_t i = 0; i < as->n_changed; i++)
        free(as->changed[i]);
    as->n_changed = 0;
}

void sch_autoscaler_changed(struct sch_autoscaler *as, char *const *names, size_t n, bool all)
{
    if (as->scan_all)
        return;
    if (all || as->n_changed + n > CHANGED_MAX) {
        as->scan_all = true;
        changed_clear(as);
        return;
    }
    if (as->n_changed + n > as->cap_changed) {
        while (as->n_changed + n > as->cap_changed)
            as->cap_changed = as->cap_changed ? as->cap_changed * 2 : 64;
        as->changed = gy_xrealloc(as->changed, as->cap_changed * sizeof(*as->changed));
    }
    for (size_t i = 0; i < n; i++)
        as->changed[as->n_changed++] = gy_xstrdup(names[i]);
}

static void workload_free(struct workload_as *w)
{
    autoscaler_live_free(w->live);
    free(w->name);
    free(w);
}

static void usage_free(struct sch_autoscaler *as, struct replica_usage *u)
{
    HASH_DEL(as->usage, u);
    free(u->id);
    free(u);
}

void sch_autoscaler_reset(struct sch_autoscaler *as)
{
    struct replica_usage *u, *u_next;
    HASH_ITER(hh, as->usage, u, u_next)
    {
        usage_free(as, u);
    }
    HASH_CLEAR(hh, as->index);
    while (as->workloads != NULL) {
        struct workload_as *w = as->workloads;
        as->workloads = w->next;
        workload_free(w);
    }
    changed_clear(as);
    as->scan_all = true;
}

void sch_autoscaler_free(struct sch_autoscaler *as)
{
    if (as == NULL)
        return;
    sch_autoscaler_reset(as);
    free(as->changed);
    free(as);
}

/* ---------------------------------------------------------------------------------------
 * Samples */

struct replica_usage *autoscaler_usage_find(struct sch_autoscaler *as, const char *id)
{
    struct replica_usage *u;
    HASH_FIND_STR(as->usage, id, u);
    return u;
}

/* A sample whose agent time, moved onto the leader's clock, is further than this from when
 * the leader received it tells that the agent's wall clock stepped (or that the agent or
 * the leader stalled): the agent's time is anchored to the leader's clock again. */
#define SAMPLE_CLOCK_SLACK_MS 2000

/* When a sample was taken, on the leader's monotonic clock. */
static uint64_t sample_time(struct replica_usage *u, bool fresh, uint64_t agent_ms, uint64_t now_ms)
{
    int64_t t = (int64_t)agent_ms + u->clock_offset;
    int64_t off = t - (int64_t)now_ms;
    if (fresh || off > SAMPLE_CLOCK_SLACK_MS || off < -SAMPLE_CLOCK_SLACK_MS) {
        u->clock_offset = (int64_t)now_ms - (int64_t)agent_ms;
        t = (int64_t)now_ms;
    }
    return t > 0 ? (uint64_t)t : 0;
}

void sch_autoscaler_samples(struct sch_autoscaler *as, const Gantry__Heartbeat *hb, uint64_t now_ms)
{
    for (size_t i = 0; i < hb->n_samples; i++) {
        const Gantry__ContainerSample *cs = hb->samples[i];
        if (cs->replica_id == NULL || *cs->replica_id == '\0')
            continue;
        struct replica_usage *u = autoscaler_usage_find(as, cs->replica_id);
        bool fresh = u == NULL;
        if (fresh) {
            u = gy_xcalloc(1, sizeof(*u));
            u->id = gy_xstrdup(cs->replica_id);
            HASH_ADD_KEYPTR(hh, as->usage, u->id, strlen(u->id), u);
        }
        struct sch_as_sample s = {sample_time(u, fresh, hb->time_ms, now_ms), cs->cpu_usage_ns,
                                  cs->memory_bytes};
        sch_as_window_add(&u->window, &s);
        u->seen_ms = now_ms;
    }
}

static void usage_sweep(struct sch_autoscaler *as, uint64_t now_ms)
{
    struct replica_usage *u, *next;
    HASH_ITER(hh, as->usage, u, next)
    {
        if (now_ms - u->seen_ms > USAGE_FORGET_MS)
            usage_free(as, u);
    }
}

bool autoscaler_usage_of(struct sch_autoscaler *as, const char *id, uint64_t now_ms, double *cpu,
                         double *memory, uint64_t *span_ms)
{
    struct replica_usage *u = autoscaler_usage_find(as, id);
    if (u == NULL || now_ms - u->seen_ms > SCH_AUTOSCALE_STALE_MS)
        return false;
    if (!sch_as_window_cpu(&u->window, cpu, span_ms))
        return false;
    *memory = (double)u->window.s[u->window.n - 1].memory_bytes;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * Metric probes */

struct workload_as *autoscaler_workload_find(struct sch_autoscaler *as, const char *name)
{
    struct workload_as *w;
    HASH_FIND_STR(as->index, name, w);
    return w;
}

/* A new workload, not decoded yet. */
static struct workload_as *workload_add(struct sch_autoscaler *as, const char *name)
{
    struct workload_as *w = gy_xcalloc(1, sizeof(*w));
    w->name = gy_xstrdup(name);
    w->next = as->workloads;
    if (w->next != NULL)
        w->next->prev = w;
    as->workloads = w;
    HASH_ADD_KEYPTR(hh, as->index, w->name, strlen(w->name), w);
    return w;
}

static void workload_remove(struct sch_autoscaler *as, struct workload_as *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        as->workloads = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    HASH_DEL(as->index, w);
    workload_free(w);
}

void sch_autoscaler_metric(struct sch_autoscaler *as, const Gantry__MetricValue *v, uint64_t now_ms)
{
    for (struct workload_as *w = as->workloads; w != NULL; w = w->next) {
        if (w->live == NULL || w->live->probe_id == 0 || w->live->probe_id != v->request_id)
            continue;
        w->live->probe_id = 0;
        if (v->error != NULL && *v->error != '\0') {
            snprintf(w->live->metric_error, sizeof(w->live->metric_error), "%s", v->error);
            return;
        }
        w->live->metric_error[0] = '\0';
        if (w->live->n_values == METRIC_VALUES) {
            memmove(&w->live->values[0], &w->live->values[1],
                    (METRIC_VALUES - 1) * sizeof(w->live->values[0]));
            w->live->n_values--;
        }
        w->live->values[w->live->n_values++] = (struct metric_value){now_ms, v->value};
        return;
    }
}

/* The average of the metric answers within the span, and how long ago the oldest came. */
static bool metric_average(const struct workload_as *w, uint64_t now_ms, double *avg,
                           uint64_t *span_ms)
{
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < w->live->n_values; i++) {
        uint64_t age = now_ms - w->live->values[i].at_ms;
        if (age <= SCH_AS_SPAN_MS + SCH_AS_SPAN_MS / 5) {
            if (n == 0)
                *span_ms = age > SCH_AUTOSCALE_PROBE_MS ? age : SCH_AUTOSCALE_PROBE_MS;
            sum += w->live->values[i].value;
            n++;
        }
    }
    if (n == 0)
        return false;
    *avg = sum / (double)n;
    return true;
}

struct ready_replica {
    char *id;
    char *node;
};

struct plan_builder {
    Gantry__Command **scales;
    size_t n_scales;
    struct sch_autoscale_probe *probes;
    size_t n_probes;
};

static void add_scale(struct plan_builder *b, const char *name, uint32_t replicas,
                      const char *reason, uint64_t wall_ms)
{
    Gantry__Command *c = fleet_command_new("autoscaler", wall_ms);
    Gantry__ScaleWorkload *s = gy_xmalloc(sizeof(*s));
    gantry__scale_workload__init(s);
    s->name = gy_xstrdup(name);
    s->replicas = replicas;
    s->reason = gy_xstrdup(reason);
    c->cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
    c->scale_workload = s;
    b->scales = gy_xrealloc(b->scales, (b->n_scales + 1) * sizeof(*b->scales));
    b->scales[b->n_scales++] = c;
}

static void add_probe(struct sch_autoscaler *as, struct plan_builder *b, struct workload_as *w,
                      const struct ready_replica *r, uint64_t now_ms)
{
    Gantry__MetricProbe *p = gy_xmalloc(sizeof(*p));
    gantry__metric_probe__init(p);
    p->request_id = as->next_probe_id++;
    p->replica_id = gy_xstrdup(r->id);
    if (w->live->metric->n_exec > 0) {
        p->exec = gy_xcalloc(w->live->metric->n_exec, sizeof(char *));
        for (size_t i = 0; i < w->live->metric->n_exec; i++)
            p->exec[i] = gy_xstrdup(w->live->metric->exec[i]);
        p->n_exec = w->live->metric->n_exec;
    }
    p->http_port = w->live->metric->http_port;
    p->http_path = gy_xstrdup(w->live->metric->http_path ? w->live->metric->http_path : "/");
    p->timeout_ms = PROBE_TIMEOUT_MS - 500;
    b->probes = gy_xrealloc(b->probes, (b->n_probes + 1) * sizeof(*b->probes));
    b->probes[b->n_probes].node = gy_xstrdup(r->node);
    b->probes[b->n_probes].probe = p;
    b->n_probes++;
    w->live->probe_id = p->request_id;
    w->live->probe_sent_ms = now_ms;
    w->live->last_probe_ms = now_ms;
}

/* The ready replicas of one workload being evaluated, and the sums of their figures. */
struct evaluation {
    struct sch_autoscaler *as;
    const struct workload_as *w;
    uint64_t now_ms;
    struct sch_as_figures *f;
    struct ready_replica *ready;
    size_t n_ready;
    double cpu_sum, mem_sum, cpu_max, last_sum;
    uint64_t span_max;
};

static void ready_add(void *data, const struct sch_replica_at_row *r)
{
    struct evaluation *ev = data;
    const struct workload_as *w = ev->w;
    ev->ready = gy_xrealloc(ev->ready, (ev->n_ready + 1) * sizeof(*ev->ready));
    ev->ready[ev->n_ready].id = gy_xstrdup(r->id);
    ev->ready[ev->n_ready].node = gy_xstrdup(r->node);
    ev->n_ready++;
    double cpu, mem;
    uint64_t span;
    if (!autoscaler_usage_of(ev->as, r->id, ev->now_ms, &cpu, &mem, &span))
        return;
    ev->f->ready++;
    double cpu_pct = w->cpu_request_millis > 0 ? cpu / (double)w->cpu_request_millis * 100 : 0;
    ev->cpu_sum += cpu_pct;
    double last;
    if (w->cpu_request_millis > 0 &&
        sch_as_window_cpu_last(&autoscaler_usage_find(ev->as, r->id)->window, &last))
        ev->last_sum += last / (double)w->cpu_request_millis * 100;
    if (cpu_pct > ev->cpu_max)
        ev->cpu_max = cpu_pct;
    if (w->memory_request_bytes > 0)
        ev->mem_sum += mem / (double)w->memory_request_bytes * 100;
    if (span > ev->span_max)
        ev->span_max = span;
}

static void ready_free(struct ready_replica *ready, size_t n_ready)
{
    for (size_t i = 0; i < n_ready; i++) {
        free(ready[i].id);
        free(ready[i].node);
    }
    free(ready);
}

static int evaluate(struct sch_autoscaler *as, struct sch_fsm *fsm, struct workload_as *w,
                    uint32_t current, uint64_t now_ms, uint64_t wall_ms, struct plan_builder *b,
                    struct gy_error *err)
{
    struct sch_as_figures f;
    memset(&f, 0, sizeof(f));
    f.current = current;
    struct evaluation ev = {.as = as, .w = w, .now_ms = now_ms, .f = &f};
    if (sch_query_ready_replicas(fsm, w->name, ready_add, &ev, err) < 0) {
        ready_free(ev.ready, ev.n_ready);
        return -1;
    }
    struct ready_replica *ready = ev.ready;
    size_t n_ready = ev.n_ready;
    double cpu_sum = ev.cpu_sum, mem_sum = ev.mem_sum, cpu_max = ev.cpu_max, last_sum = ev.last_sum;
    uint64_t span_max = ev.span_max;
    if (f.ready > 0) {
        f.has_cpu = w->cpu_request_millis > 0;
        f.cpu_percent = cpu_sum / f.ready;
        f.cpu_max_percent = cpu_max;
        f.cpu_last_percent = last_sum / f.ready;
        f.has_memory = w->memory_request_bytes > 0;
        f.memory_percent = mem_sum / f.ready;
        f.span_ms = span_max;
    }
    if (w->live->policy.has_metric) {
        uint64_t metric_span = 0;
        f.has_metric = metric_average(w, now_ms, &f.metric, &metric_span);
        if (f.has_metric && metric_span > f.span_ms)
            f.span_ms = metric_span;
        /* A metric needs no samples of its own: every ready replica counts. */
        if (f.ready == 0)
            f.ready = (uint32_t)n_ready;
    }

    struct sch_as_decision d;
    sch_as_decide(&w->live->policy, &f, &w->live->memory, now_ms, &d);
    w->live->evaluated = true;
    w->live->evaluated_ms = now_ms;
    w->live->figures = f;
    if (d.replicas != current)
        add_scale(b, w->name, d.replicas, d.reason, wall_ms);
    /* Keep the last decision that changed something for describe; otherwise the figures. */
    if (d.replicas != current || w->live->decision.reason[0] == '\0' ||
        w->live->decision.replicas == w->live->figures.current)
        w->live->decision = d;

    if (w->live->metric != NULL && n_ready > 0 &&
        (w->live->probe_id == 0 || now_ms - w->live->probe_sent_ms >= PROBE_TIMEOUT_MS) &&
        now_ms - w->live->last_probe_ms >= SCH_AUTOSCALE_PROBE_MS - SCH_AUTOSCALE_EVAL_MS / 2) {
        add_probe(as, b, w, &ready[w->live->probe_turn % n_ready], now_ms);
        w->live->probe_turn++;
    }
    ready_free(ready, n_ready);
    return 0;
}

/* Takes a workload row: a new workload is added, a new generation decoded. */
static void discovered(void *data, const struct sch_workload_spec_row *row)
{
    struct sch_autoscaler *as = data;
    struct workload_as *w = autoscaler_workload_find(as, row->name);
    if (w == NULL) {
        w = workload_add(as, row->name);
        w->generation = row->generation + 1; /* decoded below */
    }
    if (w->generation != row->generation)
        autoscaler_workload_decode(w, row->spec, row->spec_len, row->generation);
    w->seen = true;
}

/* Reads every workload: the list becomes the state's workloads. */
static int discover_all(struct sch_autoscaler *as, struct sch_fsm *fsm, struct gy_error *err)
{
    for (struct workload_as *w = as->workloads; w != NULL; w = w->next)
        w->seen = false;
    if (sch_query_workload_specs(fsm, NULL, discovered, as, err) < 0)
        return -1;
    /* Deleted workloads are forgotten. */
    for (struct workload_as *w = as->workloads, *next; w != NULL; w = next) {
        next = w->next;
        if (!w->seen)
            workload_remove(as, w);
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads again only the workloads reported changed, found by name: a fleet of many
 * workloads costs nothing while few change. */
static int discover_changed(struct sch_autoscaler *as, struct sch_fsm *fsm, struct gy_error *err)
{
    qsort(as->changed, as->n_changed, sizeof(*as->changed), name_cmp);
    for (size_t i = 0; i < as->n_changed; i++) {
        const char *name = as->changed[i];
        if (i > 0 && strcmp(name, as->changed[i - 1]) == 0)
            continue;
        struct workload_as *w = autoscaler_workload_find(as, name);
        int found = sch_query_workload_specs(fsm, name, discovered, as, err);
        if (found < 0)
            return -1;
        if (found == 0 && w != NULL)
            workload_remove(as, w); /* deleted */
    }
    return 0;
}

static int discover(struct sch_autoscaler *as, struct sch_fsm *fsm, struct gy_error *err)
{
    if (!as->scan_all && as->n_changed == 0)
        return 0;
    int found = as->scan_all ? discover_all(as, fsm, err) : discover_changed(as, fsm, err);
    if (found < 0)
        return -1;
    as->scan_all = false;
    changed_clear(as);
    return 0;
}

int sch_autoscaler_discover(struct sch_autoscaler *as, struct sch_fsm *fsm)
{
    struct gy_error err;
    return discover(as, fsm, &err);
}

/* An autoscaled workload's row as it is now: its desired count, and its spec decoded again
 * when its generation moved. */
struct current {
    struct workload_as *w;
    bool found;
    uint32_t desired;
};

static void current_read(void *data, const struct sch_workload_spec_row *row)
{
    struct current *c = data;
    c->found = true;
    c->desired = (uint32_t)row->desired;
    if (c->w->generation != row->generation)
        autoscaler_workload_decode(c->w, row->spec, row->spec_len, row->generation);
}

int sch_autoscaler_plan(struct sch_autoscaler *as, struct sch_fsm *fsm, uint64_t now_ms,
                        uint64_t wall_ms, struct sch_autoscale_plan *plan, struct gy_error *err)
{
    memset(plan, 0, sizeof(*plan));
    usage_sweep(as, now_ms);
    if (discover(as, fsm, err) < 0)
        return gy_error_wrap(err, "autoscaler");
    struct plan_builder b;
    memset(&b, 0, sizeof(b));
    int rc = 0;
    /* Only autoscaled workloads are evaluated, each with its row as it is now. */
    for (struct workload_as *w = as->workloads; w != NULL && rc == 0; w = w->next) {
        if (w->live == NULL)
            continue;
        struct current c = {.w = w};
        if (sch_query_workload_specs(fsm, w->name, current_read, &c, err) < 0) {
            rc = -1;
            break;
        }
        /* A deleted workload is forgotten when its change is read. */
        if (!c.found || w->live == NULL)
            continue;
        rc = evaluate(as, fsm, w, c.desired, now_ms, wall_ms, &b, err);
    }
    plan->probes = b.probes;
    plan->n_probes = b.n_probes;
    if (rc < 0) {
        for (size_t i = 0; i < b.n_scales; i++)
            protobuf_c_message_free_unpacked(&b.scales[i]->base, NULL);
        free(b.scales);
        sch_autoscale_plan_free(plan);
        return gy_error_wrap(err, "autoscaler");
    }
    if (b.n_scales > 0) {
        plan->command = fleet_command_batch("autoscaler", wall_ms, b.scales, b.n_scales);
        plan->scaled = b.n_scales;
    }
    return 0;
}

void sch_autoscale_plan_free(struct sch_autoscale_plan *plan)
{
    if (plan->command != NULL)
        protobuf_c_message_free_unpacked(&plan->command->base, NULL);
    for (size_t i = 0; i < plan->n_probes; i++) {
        free(plan->probes[i].node);
        protobuf_c_message_free_unpacked(&plan->probes[i].probe->base, NULL);
    }
    free(plan->probes);
    memset(plan, 0, sizeof(*plan));
}
