/* The leader's autoscaler; see autoscaler.h. */
#include "scheduler/fleet/autoscaler.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/fleet/autoscale_policy.h"

/* A replica's samples; forgotten after this long without one. */
#define USAGE_FORGET_MS 30000
/* Metric answers kept per workload. */
#define METRIC_VALUES 8
/* A probe unanswered for this long is given up and another is sent. */
#define PROBE_TIMEOUT_MS 3000

struct replica_usage {
    struct replica_usage *next;
    char *id;
    uint64_t seen_ms; /* leader clock of the last sample */
    struct sch_as_window window;
};

struct metric_value {
    uint64_t at_ms;
    double value;
};

/* What the leader keeps of an autoscaled workload. */
struct workload_live {
    struct sch_as_policy policy;
    Gantry__MetricSource *metric; /* the probe to run, when the workload has a metric */
    struct sch_as_memory memory;
    struct metric_value values[METRIC_VALUES];
    size_t n_values;
    char metric_error[160];
    uint64_t probe_id; /* the probe in flight; 0 = none */
    uint64_t probe_sent_ms;
    uint64_t last_probe_ms;
    size_t probe_turn; /* which ready replica runs the next probe */
    bool evaluated;
    uint64_t evaluated_ms;
    struct sch_as_figures figures;
    struct sch_as_decision decision;
};

/* What the leader keeps of one workload: little unless it is autoscaled. */
struct workload_as {
    struct workload_as *next; /* in the list of every workload */
    struct workload_as *prev;
    struct workload_as *hnext; /* in its bucket of the index by name */
    char *name;
    uint64_t generation; /* of the decoded spec below */
    bool seen;           /* still in the state at the last evaluation */
    int64_t cpu_request_millis;
    int64_t memory_request_bytes;
    struct workload_live *live; /* NULL when the workload is not autoscaled */
};

struct sch_autoscaler {
    struct replica_usage **buckets;
    size_t n_buckets;
    size_t n_usage;
    struct workload_as *workloads; /* every workload */
    struct workload_as **index;    /* the same by name: n_index buckets */
    size_t n_index;
    size_t n_workloads;
    uint64_t next_probe_id;
    /* Which workloads to read again at the next evaluation: the names the state machine
     * reported changed (sch_autoscaler_changed), or all of them. */
    bool scan_all;
    char **changed;
    size_t n_changed;
    size_t cap_changed;
};

/* Past this many changed names the next evaluation reads every workload instead. */
#define CHANGED_MAX 4096

static uint64_t id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct sch_autoscaler *sch_autoscaler_new(void)
{
    struct sch_autoscaler *as = gy_xcalloc(1, sizeof(*as));
    as->n_buckets = 256;
    as->buckets = gy_xcalloc(as->n_buckets, sizeof(*as->buckets));
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

static void live_free(struct workload_live *live)
{
    if (live == NULL)
        return;
    if (live->metric != NULL)
        gantry__metric_source__free_unpacked(live->metric, NULL);
    free(live);
}

static void workload_free(struct workload_as *w)
{
    live_free(w->live);
    free(w->name);
    free(w);
}

void sch_autoscaler_reset(struct sch_autoscaler *as)
{
    for (size_t i = 0; i < as->n_buckets; i++) {
        while (as->buckets[i] != NULL) {
            struct replica_usage *u = as->buckets[i];
            as->buckets[i] = u->next;
            free(u->id);
            free(u);
        }
    }
    as->n_usage = 0;
    while (as->workloads != NULL) {
        struct workload_as *w = as->workloads;
        as->workloads = w->next;
        workload_free(w);
    }
    free(as->index);
    as->index = NULL;
    as->n_index = as->n_workloads = 0;
    changed_clear(as);
    as->scan_all = true;
}

void sch_autoscaler_free(struct sch_autoscaler *as)
{
    if (as == NULL)
        return;
    sch_autoscaler_reset(as);
    free(as->changed);
    free(as->buckets);
    free(as);
}

/* ---------------------------------------------------------------------------------------
 * Samples */

static struct replica_usage *usage_find(struct sch_autoscaler *as, const char *id)
{
    for (struct replica_usage *u = as->buckets[id_hash(id) % as->n_buckets]; u != NULL; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    return NULL;
}

static void usage_grow(struct sch_autoscaler *as)
{
    size_t n = as->n_buckets * 2;
    struct replica_usage **b = gy_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < as->n_buckets; i++) {
        while (as->buckets[i] != NULL) {
            struct replica_usage *u = as->buckets[i];
            as->buckets[i] = u->next;
            size_t k = id_hash(u->id) % n;
            u->next = b[k];
            b[k] = u;
        }
    }
    free(as->buckets);
    as->buckets = b;
    as->n_buckets = n;
}

void sch_autoscaler_samples(struct sch_autoscaler *as, const Gantry__Heartbeat *hb, uint64_t now_ms)
{
    for (size_t i = 0; i < hb->n_samples; i++) {
        const Gantry__ContainerSample *cs = hb->samples[i];
        if (cs->replica_id == NULL || *cs->replica_id == '\0')
            continue;
        struct replica_usage *u = usage_find(as, cs->replica_id);
        if (u == NULL) {
            if (as->n_usage >= as->n_buckets * 2)
                usage_grow(as);
            u = gy_xcalloc(1, sizeof(*u));
            u->id = gy_xstrdup(cs->replica_id);
            size_t k = id_hash(u->id) % as->n_buckets;
            u->next = as->buckets[k];
            as->buckets[k] = u;
            as->n_usage++;
        }
        struct sch_as_sample s = {hb->time_ms, cs->cpu_usage_ns, cs->memory_bytes};
        sch_as_window_add(&u->window, &s);
        u->seen_ms = now_ms;
    }
}

static void usage_sweep(struct sch_autoscaler *as, uint64_t now_ms)
{
    for (size_t i = 0; i < as->n_buckets; i++) {
        struct replica_usage **p = &as->buckets[i];
        while (*p != NULL) {
            struct replica_usage *u = *p;
            if (now_ms - u->seen_ms > USAGE_FORGET_MS) {
                *p = u->next;
                free(u->id);
                free(u);
                as->n_usage--;
            } else {
                p = &u->next;
            }
        }
    }
}

/* A replica's current CPU (millicores) and memory (bytes); false when it has no fresh
 * figures. */
static bool usage_of(struct sch_autoscaler *as, const char *id, uint64_t now_ms, double *cpu,
                     double *memory, uint64_t *span_ms)
{
    struct replica_usage *u = usage_find(as, id);
    if (u == NULL || now_ms - u->seen_ms > SCH_AUTOSCALE_STALE_MS)
        return false;
    if (!sch_as_window_cpu(&u->window, cpu, span_ms))
        return false;
    *memory = (double)u->window.s[u->window.n - 1].memory_bytes;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * Metric probes */

static struct workload_as *workload_find(struct sch_autoscaler *as, const char *name)
{
    if (as->n_index == 0)
        return NULL;
    for (struct workload_as *w = as->index[id_hash(name) % as->n_index]; w != NULL; w = w->hnext)
        if (strcmp(w->name, name) == 0)
            return w;
    return NULL;
}

/* A new workload, not decoded yet; the index grows to keep about one per bucket. */
static struct workload_as *workload_add(struct sch_autoscaler *as, const char *name)
{
    if (as->n_workloads + 1 > as->n_index) {
        size_t n = as->n_index ? as->n_index * 2 : 256;
        free(as->index);
        as->index = gy_xcalloc(n, sizeof(*as->index));
        as->n_index = n;
        for (struct workload_as *w = as->workloads; w != NULL; w = w->next) {
            size_t k = id_hash(w->name) % n;
            w->hnext = as->index[k];
            as->index[k] = w;
        }
    }
    struct workload_as *w = gy_xcalloc(1, sizeof(*w));
    w->name = gy_xstrdup(name);
    w->next = as->workloads;
    if (w->next != NULL)
        w->next->prev = w;
    as->workloads = w;
    size_t k = id_hash(name) % as->n_index;
    w->hnext = as->index[k];
    as->index[k] = w;
    as->n_workloads++;
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
    struct workload_as **p = &as->index[id_hash(w->name) % as->n_index];
    while (*p != w)
        p = &(*p)->hnext;
    *p = w->hnext;
    as->n_workloads--;
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

/* ---------------------------------------------------------------------------------------
 * Evaluation */

/* Reads one base-128 varint; false past the end or beyond 64 bits. */
static bool varint_read(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0)
            return true;
    }
    return false;
}

/* Finds field in a packed protobuf message without unpacking it (the last occurrence, as
 * for scalars): its value when a varint, its bytes when length-delimited. 1 when found, 0
 * when absent, -1 when the encoding is not understood. */
static int pb_field(const uint8_t *p, size_t len, unsigned field, uint64_t *value,
                    const uint8_t **bytes, size_t *n_bytes)
{
    const uint8_t *end = p + len;
    int found = 0;
    while (p < end) {
        uint64_t key, n;
        if (!varint_read(&p, end, &key))
            return -1;
        bool wanted = key >> 3 == field;
        switch (key & 7) {
        case 0: /* varint */
            if (!varint_read(&p, end, &n))
                return -1;
            if (wanted) {
                *value = n;
                found = 1;
            }
            break;
        case 1: /* 64 bits */
            if (end - p < 8)
                return -1;
            p += 8;
            break;
        case 2: /* length-delimited */
            if (!varint_read(&p, end, &n) || n > (uint64_t)(end - p))
                return -1;
            if (wanted) {
                *bytes = p;
                *n_bytes = (size_t)n;
                found = 1;
            }
            p += n;
            break;
        case 5: /* 32 bits */
            if (end - p < 4)
                return -1;
            p += 4;
            break;
        default:
            return -1;
        }
    }
    return found;
}

/* Whether a packed WorkloadSpec has autoscaling on (Autoscale.enabled), and where its
 * Resources are, read without unpacking the rest: most workloads are not autoscaled, and
 * every new or changed one is looked at. False when the encoding is not understood (then
 * it is unpacked whole). */
static bool spec_peek(const uint8_t *p, size_t len, bool *autoscaled, const uint8_t **res,
                      size_t *res_len)
{
    const uint8_t *as = NULL;
    size_t as_len = 0;
    uint64_t enabled = 0, unused;
    *res = NULL;
    *res_len = 0;
    int has_as = pb_field(p, len, 10, &unused, &as, &as_len);
    if (has_as < 0 || pb_field(p, len, 6, &unused, res, res_len) < 0 ||
        (has_as > 0 && pb_field(as, as_len, 1, &enabled, &as, &as_len) < 0))
        return false;
    *autoscaled = enabled != 0;
    return true;
}

/* Reads the autoscale block and requests from a stored spec. */
static void workload_decode(struct workload_as *w, const void *blob, size_t len,
                            uint64_t generation)
{
    w->generation = generation;
    bool autoscaled;
    const uint8_t *res;
    size_t res_len;
    if (w->live == NULL && spec_peek(blob, len, &autoscaled, &res, &res_len) && !autoscaled) {
        /* Not autoscaled, before or now: only its requests are kept. */
        Gantry__Resources *r = res != NULL ? gantry__resources__unpack(NULL, res_len, res) : NULL;
        w->cpu_request_millis = r != NULL ? r->cpu_millis : 0;
        w->memory_request_bytes = r != NULL ? r->memory_bytes : 0;
        if (r != NULL)
            gantry__resources__free_unpacked(r, NULL);
        return;
    }
    Gantry__WorkloadSpec *spec = gantry__workload_spec__unpack(NULL, len, blob);
    const Gantry__Autoscale *a = spec != NULL ? spec->autoscale : NULL;
    if (a == NULL || !a->enabled) {
        /* Not (or no longer) autoscaled: nothing but the requests is kept. */
        live_free(w->live);
        w->live = NULL;
    } else if (w->live == NULL) {
        w->live = gy_xcalloc(1, sizeof(*w->live));
    } else if (w->live->metric != NULL) {
        /* A new generation of an autoscaled workload keeps its periods and figures. */
        gantry__metric_source__free_unpacked(w->live->metric, NULL);
        w->live->metric = NULL;
    }
    if (spec == NULL)
        return;
    if (spec->resources != NULL) {
        w->cpu_request_millis = spec->resources->cpu_millis;
        w->memory_request_bytes = spec->resources->memory_bytes;
    }
    if (w->live != NULL) {
        struct sch_as_policy p;
        memset(&p, 0, sizeof(p));
        p.min = a->min;
        p.max = a->max;
        p.cpu_percent = a->cpu_percent;
        p.memory_percent = a->memory_percent;
        p.scale_down_after_ms = a->scale_down_after_ms;
        p.idle_after_ms = a->idle_after_ms;
        if (a->metric != NULL && a->metric->target > 0 &&
            (a->metric->n_exec > 0 || a->metric->http_port != 0)) {
            p.has_metric = true;
            p.metric_target = a->metric->target;
            size_t n = gantry__metric_source__get_packed_size(a->metric);
            uint8_t *buf = gy_xmalloc(n ? n : 1);
            gantry__metric_source__pack(a->metric, buf);
            w->live->metric = gantry__metric_source__unpack(NULL, n, buf);
            free(buf);
        }
        w->live->policy = p;
    }
    gantry__workload_spec__free_unpacked(spec, NULL);
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
    Gantry__Command *c = gy_xmalloc(sizeof(*c));
    gantry__command__init(c);
    c->time_ms = wall_ms;
    c->actor = gy_xstrdup("autoscaler");
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

static int evaluate(struct sch_autoscaler *as, sqlite3 *db, sqlite3_stmt *reps,
                    struct workload_as *w, uint32_t current, uint64_t now_ms, uint64_t wall_ms,
                    struct plan_builder *b)
{
    struct sch_as_figures f;
    memset(&f, 0, sizeof(f));
    f.current = current;
    struct ready_replica *ready = NULL;
    size_t n_ready = 0;
    double cpu_sum = 0, mem_sum = 0, cpu_max = 0, last_sum = 0;
    uint64_t span_max = 0;
    sqlite3_reset(reps);
    sqlite3_bind_text(reps, 1, w->name, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(reps)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(reps, 0);
        const char *node = (const char *)sqlite3_column_text(reps, 1);
        ready = gy_xrealloc(ready, (n_ready + 1) * sizeof(*ready));
        ready[n_ready].id = gy_xstrdup(id);
        ready[n_ready].node = gy_xstrdup(node ? node : "");
        n_ready++;
        double cpu, mem;
        uint64_t span;
        if (!usage_of(as, id, now_ms, &cpu, &mem, &span))
            continue;
        f.ready++;
        double cpu_pct = w->cpu_request_millis > 0 ? cpu / (double)w->cpu_request_millis * 100 : 0;
        cpu_sum += cpu_pct;
        double last;
        if (w->cpu_request_millis > 0 && sch_as_window_cpu_last(&usage_find(as, id)->window, &last))
            last_sum += last / (double)w->cpu_request_millis * 100;
        if (cpu_pct > cpu_max)
            cpu_max = cpu_pct;
        if (w->memory_request_bytes > 0)
            mem_sum += mem / (double)w->memory_request_bytes * 100;
        if (span > span_max)
            span_max = span;
    }
    sqlite3_reset(reps);
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < n_ready; i++) {
            free(ready[i].id);
            free(ready[i].node);
        }
        free(ready);
        (void)db;
        return -1;
    }
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
    for (size_t i = 0; i < n_ready; i++) {
        free(ready[i].id);
        free(ready[i].node);
    }
    free(ready);
    return 0;
}

/* Reads every workload: the list becomes the state's workloads, in name order. */
static int discover_all(struct sch_autoscaler *as, sqlite3 *db)
{
    sqlite3_stmt *wl;
    if (sqlite3_prepare_v2(db, "SELECT name, spec, generation FROM workloads", -1, &wl, NULL) !=
        SQLITE_OK)
        return -1;
    for (struct workload_as *w = as->workloads; w != NULL; w = w->next)
        w->seen = false;
    int rc;
    while ((rc = sqlite3_step(wl)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(wl, 0);
        uint64_t generation = (uint64_t)sqlite3_column_int64(wl, 2);
        struct workload_as *w = workload_find(as, name);
        if (w == NULL) {
            w = workload_add(as, name);
            w->generation = generation + 1; /* decoded below */
        }
        if (w->generation != generation)
            workload_decode(w, sqlite3_column_blob(wl, 1), (size_t)sqlite3_column_bytes(wl, 1),
                            generation);
        w->seen = true;
    }
    sqlite3_finalize(wl);
    if (rc != SQLITE_DONE)
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

static const char CHANGED_SQL[] = "SELECT spec, generation FROM workloads WHERE name = ?";

/* Reads again only the workloads reported changed, found by name: a fleet of many
 * workloads costs nothing while few change. The statement stays prepared in the state
 * machine's cache: this runs after every pass of the leader's duties. */
static int discover_changed(struct sch_autoscaler *as, struct sch_fsm *fsm)
{
    if (as->n_changed == 0)
        return 0;
    sqlite3_stmt *one = sch_fsm_stmt(fsm, CHANGED_SQL);
    if (one == NULL)
        return -1;
    qsort(as->changed, as->n_changed, sizeof(*as->changed), name_cmp);
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < as->n_changed; i++) {
        const char *name = as->changed[i];
        if (i > 0 && strcmp(name, as->changed[i - 1]) == 0)
            continue;
        struct workload_as *w = workload_find(as, name);
        sqlite3_reset(one);
        sqlite3_bind_text(one, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(one);
        if (rc == SQLITE_ROW) {
            uint64_t generation = (uint64_t)sqlite3_column_int64(one, 1);
            if (w == NULL) {
                w = workload_add(as, name);
                w->generation = generation + 1;
            }
            if (w->generation != generation)
                workload_decode(w, sqlite3_column_blob(one, 0),
                                (size_t)sqlite3_column_bytes(one, 0), generation);
            rc = SQLITE_DONE;
        } else if (rc == SQLITE_DONE && w != NULL) {
            workload_remove(as, w); /* deleted */
        } else if (rc != SQLITE_DONE) {
            break;
        }
    }
    sqlite3_reset(one);
    return rc == SQLITE_DONE ? 0 : -1;
}

int sch_autoscaler_discover(struct sch_autoscaler *as, struct sch_fsm *fsm)
{
    if (!as->scan_all && as->n_changed == 0)
        return 0;
    int found = as->scan_all ? discover_all(as, fsm->db) : discover_changed(as, fsm);
    if (found < 0)
        return -1;
    as->scan_all = false;
    changed_clear(as);
    return 0;
}

int sch_autoscaler_plan(struct sch_autoscaler *as, struct sch_fsm *fsm, uint64_t now_ms,
                        uint64_t wall_ms, struct sch_autoscale_plan *plan, struct gy_error *err)
{
    sqlite3 *db = fsm->db;
    memset(plan, 0, sizeof(*plan));
    usage_sweep(as, now_ms);
    if (sch_autoscaler_discover(as, fsm) < 0) {
        gy_error_set(err, GY_EINTERNAL, "autoscaler: read state: %s", sqlite3_errmsg(db));
        return -GY_EINTERNAL;
    }
    sqlite3_stmt *one = NULL, *reps = NULL;
    if (sqlite3_prepare_v2(db, "SELECT spec, generation, replicas FROM workloads WHERE name = ?",
                           -1, &one, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT id, node FROM replicas WHERE workload = ? AND state = 2"
                           " AND ready ORDER BY id",
                           -1, &reps, NULL) != SQLITE_OK) {
        gy_error_set(err, GY_EINTERNAL, "autoscaler: read state: %s", sqlite3_errmsg(db));
        sqlite3_finalize(one);
        return -GY_EINTERNAL;
    }
    struct plan_builder b;
    memset(&b, 0, sizeof(b));
    int rc = SQLITE_DONE;
    /* Only autoscaled workloads are evaluated, each with its row as it is now. */
    for (struct workload_as *w = as->workloads; w != NULL && rc == SQLITE_DONE; w = w->next) {
        if (w->live == NULL)
            continue;
        sqlite3_reset(one);
        sqlite3_bind_text(one, 1, w->name, -1, SQLITE_STATIC);
        rc = sqlite3_step(one);
        if (rc == SQLITE_DONE)
            continue; /* deleted: forgotten when its change is read */
        if (rc != SQLITE_ROW)
            break;
        rc = SQLITE_DONE;
        uint64_t generation = (uint64_t)sqlite3_column_int64(one, 1);
        if (w->generation != generation) {
            workload_decode(w, sqlite3_column_blob(one, 0), (size_t)sqlite3_column_bytes(one, 0),
                            generation);
            if (w->live == NULL)
                continue;
        }
        if (evaluate(as, db, reps, w, (uint32_t)sqlite3_column_int64(one, 2), now_ms, wall_ms, &b) <
            0)
            rc = SQLITE_ERROR;
    }
    sqlite3_finalize(one);
    sqlite3_finalize(reps);
    plan->probes = b.probes;
    plan->n_probes = b.n_probes;
    if (rc != SQLITE_DONE) {
        for (size_t i = 0; i < b.n_scales; i++)
            protobuf_c_message_free_unpacked(&b.scales[i]->base, NULL);
        free(b.scales);
        sch_autoscale_plan_free(plan);
        gy_error_set(err, GY_EINTERNAL, "autoscaler: read state: %s", sqlite3_errmsg(db));
        return -GY_EINTERNAL;
    }
    if (b.n_scales > 0) {
        Gantry__Command *batch = gy_xmalloc(sizeof(*batch));
        gantry__command__init(batch);
        batch->time_ms = wall_ms;
        batch->actor = gy_xstrdup("autoscaler");
        Gantry__CommandBatch *cb = gy_xmalloc(sizeof(*cb));
        gantry__command_batch__init(cb);
        cb->commands = b.scales;
        cb->n_commands = b.n_scales;
        batch->cmd_case = GANTRY__COMMAND__CMD_BATCH;
        batch->batch = cb;
        plan->command = batch;
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

/* ---------------------------------------------------------------------------------------
 * Reading */

static json_t *percent_or_null(bool has, double v)
{
    return has ? json_real((double)(int64_t)(v * 10 + 0.5) / 10) : json_null();
}

json_t *sch_autoscaler_workload_json(struct sch_autoscaler *as, const char *workload,
                                     uint64_t now_ms)
{
    struct workload_as *w = as != NULL ? workload_find(as, workload) : NULL;
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

json_t *sch_autoscaler_top(struct sch_autoscaler *as, sqlite3 *db, const char *workload,
                           uint64_t now_ms, struct gy_error *err)
{
    sqlite3_stmt *stmt;
    const char *sql = workload != NULL
                          ? "SELECT id, workload, node, state, ready FROM replicas"
                            " WHERE workload = ? AND state IN (1, 2, 3) ORDER BY workload, id"
                          : "SELECT id, workload, node, state, ready FROM replicas"
                            " WHERE state IN (1, 2, 3) ORDER BY workload, id";
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        gy_error_set(err, GY_EINTERNAL, "read replicas: %s", sqlite3_errmsg(db));
        return NULL;
    }
    if (workload != NULL)
        sqlite3_bind_text(stmt, 1, workload, -1, SQLITE_STATIC);
    json_t *items = json_array();
    json_t *cur = NULL;
    const char *cur_name = NULL;
    double w_cpu = 0, w_mem = 0;
    size_t w_measured = 0;
    struct workload_as *w = NULL;
    char *name_copy = NULL;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(stmt, 0);
        const char *wname = (const char *)sqlite3_column_text(stmt, 1);
        if (cur_name == NULL || strcmp(cur_name, wname) != 0) {
            close_workload(items, cur, w, w_cpu, w_mem, w_measured);
            free(name_copy);
            name_copy = gy_xstrdup(wname);
            cur_name = name_copy;
            w = workload_find(as, wname);
            cur = json_pack("{s:s,s:[]}", "workload", wname, "replicas");
            w_cpu = w_mem = 0;
            w_measured = 0;
        }
        json_t *r = json_pack(
            "{s:s,s:s,s:b}", "id", id, "node",
            sqlite3_column_text(stmt, 2) ? (const char *)sqlite3_column_text(stmt, 2) : "", "ready",
            sqlite3_column_int(stmt, 4) != 0);
        double cpu, mem;
        uint64_t span;
        if (usage_of(as, id, now_ms, &cpu, &mem, &span)) {
            w_cpu += cpu;
            w_mem += mem;
            w_measured++;
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
        json_array_append_new(json_object_get(cur, "replicas"), r);
    }
    close_workload(items, cur, w, w_cpu, w_mem, w_measured);
    free(name_copy);
    sqlite3_finalize(stmt);
    return json_pack("{s:o,s:i}", "items", items, "span_ms", SCH_AS_SPAN_MS);
}
