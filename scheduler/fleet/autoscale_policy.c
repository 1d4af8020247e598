/* The autoscaler's arithmetic; see autoscale_policy.h. */
#include "scheduler/fleet/autoscale_policy.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/quantity.h"

/* ---------------------------------------------------------------------------------------
 * Windows */

void sch_as_window_add(struct sch_as_window *w, const struct sch_as_sample *s)
{
    if (w->n > 0) {
        const struct sch_as_sample *last = &w->s[w->n - 1];
        if (s->t_ms <= last->t_ms)
            return;
        if (s->cpu_ns < last->cpu_ns)
            w->n = 0;
    }
    if (w->n == SCH_AS_WINDOW_SAMPLES) {
        memmove(&w->s[0], &w->s[1], (SCH_AS_WINDOW_SAMPLES - 1) * sizeof(w->s[0]));
        w->n--;
    }
    w->s[w->n++] = *s;
}

bool sch_as_window_cpu(const struct sch_as_window *w, double *millicores, uint64_t *span_ms)
{
    if (w->n < 2)
        return false;
    const struct sch_as_sample *newest = &w->s[w->n - 1];
    /* The oldest sample within the span (with a little slack for heartbeat jitter), but
     * never the newest itself. */
    size_t from = w->n - 2;
    while (from > 0 && newest->t_ms - w->s[from - 1].t_ms <= SCH_AS_SPAN_MS + SCH_AS_SPAN_MS / 5)
        from--;
    const struct sch_as_sample *old = &w->s[from];
    uint64_t dt = newest->t_ms - old->t_ms;
    if (dt == 0)
        return false;
    *millicores = (double)(newest->cpu_ns - old->cpu_ns) / 1e6 / (double)dt * 1000.0;
    *span_ms = dt;
    return true;
}

bool sch_as_window_cpu_last(const struct sch_as_window *w, double *millicores)
{
    if (w->n < 2)
        return false;
    const struct sch_as_sample *a = &w->s[w->n - 2], *b = &w->s[w->n - 1];
    if (b->t_ms <= a->t_ms)
        return false;
    *millicores = (double)(b->cpu_ns - a->cpu_ns) / 1e6 / (double)(b->t_ms - a->t_ms) * 1000.0;
    return true;
}

uint64_t sch_as_window_newest(const struct sch_as_window *w)
{
    return w->n > 0 ? w->s[w->n - 1].t_ms : 0;
}

/* ---------------------------------------------------------------------------------------
 * Decisions */

/* The count one target calls for, given the ratio of its figure to the target. Replicas
 * that are not ready carry no load: when the load is high they are left out (they will
 * take load once ready), when it is low they are counted as if at the target, so a
 * replica that is still starting neither causes a scale-up nor hastens a scale-down. */
static uint32_t recommend(uint32_t current, uint32_t ready, double ratio)
{
    if (fabs(ratio - 1.0) <= SCH_AS_TOLERANCE)
        return current;
    double want;
    if (ratio > 1.0) {
        want = ceil((double)ready * ratio - 1e-9);
        if (want < current)
            want = current;
    } else {
        double others = current > ready ? (double)(current - ready) : 0.0;
        want = ceil((double)ready * ratio + others - 1e-9);
    }
    if (want < 1)
        want = 1;
    if (want > 1e6)
        want = 1e6;
    return (uint32_t)want;
}

/* The largest scale-up step from current: doubling or +4, whichever is more. */
static uint32_t step_limit(uint32_t current)
{
    return current > 4 ? current * 2 : current + 4;
}

/* Durations in reasons are rounded to tenths of a second. */
static uint64_t round_tenth(uint64_t ms)
{
    return (ms + 50) / 100 * 100;
}

struct target {
    uint32_t recommended;
    char figure[128]; /* "cpu 182% of target 70%" */
};

static void consider(struct target *best, uint32_t recommended, const char *figure)
{
    if (best->figure[0] == '\0' || recommended > best->recommended) {
        best->recommended = recommended;
        snprintf(best->figure, sizeof(best->figure), "%s", figure);
    }
}

/* Adds a recommendation to the window and drops what fell out of it. */
static void window_push(struct sch_as_memory *m, uint64_t now_ms, uint32_t replicas,
                        uint64_t span_ms)
{
    while (m->n_window > 0 && m->window[m->n_window - 1].replicas <= replicas)
        m->n_window--;
    if (m->n_window == SCH_AS_RECOMMENDATIONS) {
        /* Full: the newest entry absorbs this one, which only keeps a high value longer. */
        m->window[m->n_window - 1].at_ms = now_ms;
    } else {
        m->window[m->n_window++] = (struct sch_as_recommendation){now_ms, replicas};
    }
    size_t drop = 0;
    while (drop < m->n_window && now_ms - m->window[drop].at_ms > span_ms)
        drop++;
    if (drop > 0) {
        memmove(&m->window[0], &m->window[drop], (m->n_window - drop) * sizeof(m->window[0]));
        m->n_window -= drop;
    }
}

void sch_as_decide(const struct sch_as_policy *p, const struct sch_as_figures *f,
                   struct sch_as_memory *m, uint64_t now_ms, struct sch_as_decision *d)
{
    uint32_t current = f->current;
    memset(d, 0, sizeof(*d));
    d->replicas = current;
    if (!m->started || m->seen_current != current) {
        /* A new workload, or a count someone else set: the periods start anew. */
        memset(m, 0, sizeof(*m));
        m->started = true;
        m->seen_current = current;
    }
    uint32_t floor_count = p->min > 0 ? p->min : 1;
    if (current == 0 && p->min == 0)
        return; /* idle: it waits for a scale or an apply */
    if (current < floor_count) {
        d->replicas = floor_count;
        snprintf(d->reason, sizeof(d->reason), "below min %" PRIu32 ": %" PRIu32 " -> %" PRIu32,
                 floor_count, current, floor_count);
        return;
    }
    if (current > p->max) {
        d->replicas = p->max;
        snprintf(d->reason, sizeof(d->reason), "above max %" PRIu32 ": %" PRIu32 " -> %" PRIu32,
                 p->max, current, p->max);
        return;
    }
    char span[GY_QUANTITY_BUF];
    gy_duration_format((int64_t)round_tenth(f->span_ms), span);

    if (p->min == 0 && p->idle_after_ms > 0) {
        bool idle = f->ready >= current && f->has_cpu &&
                    f->cpu_max_percent < SCH_AS_IDLE_CPU_PERCENT &&
                    (!p->has_metric || (f->has_metric && f->metric == 0.0));
        if (!idle) {
            m->idle_since = 0;
        } else {
            if (m->idle_since == 0)
                m->idle_since = now_ms;
            uint64_t idle_for = now_ms - m->idle_since;
            if (idle_for >= p->idle_after_ms) {
                char dur[GY_QUANTITY_BUF];
                d->replicas = 0;
                snprintf(d->reason, sizeof(d->reason), "idle for %s: %" PRIu32 " -> 0",
                         gy_duration_format((int64_t)round_tenth(idle_for), dur), current);
                m->seen_current = 0;
                return;
            }
            d->idle_in_ms = p->idle_after_ms - idle_for;
        }
    }
    if (f->ready == 0)
        return;

    struct target best = {0};
    char figure[128];
    if (p->cpu_percent > 0 && f->has_cpu) {
        bool saturated = (f->cpu_percent >= SCH_AS_SATURATED_CPU_PERCENT ||
                          f->cpu_last_percent >= SCH_AS_SATURATED_CPU_PERCENT) &&
                         p->cpu_percent < SCH_AS_SATURATED_CPU_PERCENT;
        snprintf(figure, sizeof(figure), "cpu %.0f%% of target %" PRIu32 "%%%s", f->cpu_percent,
                 p->cpu_percent, saturated ? " (at its quota)" : "");
        uint32_t rec = recommend(current, f->ready, f->cpu_percent / p->cpu_percent);
        /* Held at the quota, the real load is unknown: the largest step (see below). */
        if (saturated && rec < step_limit(current))
            rec = step_limit(current);
        consider(&best, rec, figure);
    }
    if (p->memory_percent > 0 && f->has_memory) {
        snprintf(figure, sizeof(figure), "memory %.0f%% of target %" PRIu32 "%%", f->memory_percent,
                 p->memory_percent);
        consider(&best, recommend(current, f->ready, f->memory_percent / p->memory_percent),
                 figure);
    }
    if (p->has_metric && f->has_metric && p->metric_target > 0) {
        snprintf(figure, sizeof(figure), "metric %.3g against target %.3g", f->metric,
                 p->metric_target);
        consider(&best, recommend(current, f->ready, f->metric / p->metric_target), figure);
    }
    if (best.figure[0] == '\0')
        return;
    uint32_t rec = best.recommended;
    if (rec < floor_count)
        rec = floor_count;
    if (rec > p->max)
        rec = p->max;
    d->recommended = rec;
    window_push(m, now_ms, rec, p->scale_down_after_ms);
    if (rec > current) {
        m->low_since = 0;
        uint32_t limit = step_limit(current);
        d->replicas = rec < limit ? rec : limit;
        snprintf(d->reason, sizeof(d->reason), "%s over %s: %" PRIu32 " -> %" PRIu32, best.figure,
                 span, current, d->replicas);
    } else if (rec < current) {
        if (m->low_since == 0)
            m->low_since = now_ms;
        uint64_t low_for = now_ms - m->low_since;
        uint32_t highest = m->window[0].replicas;
        if (low_for >= p->scale_down_after_ms && highest < current) {
            char dur[GY_QUANTITY_BUF];
            d->replicas = highest;
            snprintf(d->reason, sizeof(d->reason), "%s, low for %s: %" PRIu32 " -> %" PRIu32,
                     best.figure, gy_duration_format((int64_t)round_tenth(low_for), dur), current,
                     d->replicas);
        } else {
            d->scale_down_in_ms = low_for >= p->scale_down_after_ms
                                      ? m->window[0].at_ms + p->scale_down_after_ms - now_ms
                                      : p->scale_down_after_ms - low_for;
        }
    } else {
        m->low_since = 0;
    }
    if (d->replicas != current)
        m->seen_current = d->replicas;
}
