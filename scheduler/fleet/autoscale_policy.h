/* The autoscaler's arithmetic, without I/O: sample windows that turn cumulative CPU
 * counters into usage, and the decision that turns usage into a replica count
 * (docs/autoscaling.md). Time is always passed in, so unit tests replay recorded samples. */
#ifndef GANTRY_SCHEDULER_FLEET_AUTOSCALE_POLICY_H
#define GANTRY_SCHEDULER_FLEET_AUTOSCALE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Samples kept per replica. */
#define SCH_AS_WINDOW_SAMPLES 8
/* Usage figures cover about this much time: two heartbeats at the default interval. */
#define SCH_AS_SPAN_MS 2000
/* A ratio of usage to target within this share of 1 changes nothing. */
#define SCH_AS_TOLERANCE 0.10
/* A replica is idle under this share of its CPU request. */
#define SCH_AS_IDLE_CPU_PERCENT 2.0
/* The CPU request is also the replica's quota: ready replicas that average this share of it
 * (over the span, or over the last interval alone, which sees a load that just began) are
 * held back by the quota, and their figure says only that the load is at least that much.
 * With a CPU target below it, scale-up then takes the largest step at once. */
#define SCH_AS_SATURATED_CPU_PERCENT 95.0

/* ---------------------------------------------------------------------------------------
 * Windows */

struct sch_as_sample {
    uint64_t t_ms;   /* the agent's clock when it read the counters */
    uint64_t cpu_ns; /* cumulative CPU time of the container */
    uint64_t memory_bytes;
};

/* The newest samples of one replica, oldest first after sch_as_window_add. */
struct sch_as_window {
    struct sch_as_sample s[SCH_AS_WINDOW_SAMPLES];
    size_t n;
};

/* Appends a sample. A sample older than the newest is ignored; a CPU counter that went
 * backwards (the container restarted) starts the window afresh. */
void sch_as_window_add(struct sch_as_window *w, const struct sch_as_sample *s);

/* CPU use in millicores between the newest sample and the oldest one at most about
 * SCH_AS_SPAN_MS before it (at least the last interval). False with fewer than two
 * samples. */
bool sch_as_window_cpu(const struct sch_as_window *w, double *millicores, uint64_t *span_ms);

/* CPU use in millicores over the last interval alone (the two newest samples). */
bool sch_as_window_cpu_last(const struct sch_as_window *w, double *millicores);

/* The newest sample's time, 0 for an empty window. */
uint64_t sch_as_window_newest(const struct sch_as_window *w);

/* ---------------------------------------------------------------------------------------
 * Decisions */

/* The workload's autoscale block with what its figures are relative to. */
struct sch_as_policy {
    uint32_t min;
    uint32_t max;
    uint32_t cpu_percent;    /* target, share of the CPU request; 0 = none */
    uint32_t memory_percent; /* target, share of the memory request; 0 = none */
    bool has_metric;
    double metric_target;
    uint64_t scale_down_after_ms;
    uint64_t idle_after_ms; /* 0 = never retire to zero */
};

/* What the replicas report right now. Only ready replicas count as load. */
struct sch_as_figures {
    uint32_t current; /* the workload's desired count in the replicated state */
    uint32_t ready;   /* ready replicas with figures */
    bool has_cpu;
    double cpu_percent;      /* average over the ready replicas, share of the request */
    double cpu_max_percent;  /* the busiest ready replica */
    double cpu_last_percent; /* average over the ready replicas' last sample interval */
    bool has_memory;
    double memory_percent;
    bool has_metric;
    double metric; /* average of the metric probes in the span */
    uint64_t span_ms;
};

/* Recommendations kept for the scale-down window: a deque whose values fall from front to
 * back, so its front is the highest recommendation of the window. */
#define SCH_AS_RECOMMENDATIONS 32

struct sch_as_recommendation {
    uint64_t at_ms;
    uint32_t replicas;
};

/* What a decision remembers until the next one; zero it for a new workload. */
struct sch_as_memory {
    bool started;
    /* The count the autoscaler last saw or set. Any other count (a manual scale, an apply)
     * starts the periods and the window anew. */
    uint32_t seen_current;
    uint64_t low_since;  /* when recommendations fell below the count; 0 = not low */
    uint64_t idle_since; /* when every replica became idle; 0 = not idle */
    struct sch_as_recommendation window[SCH_AS_RECOMMENDATIONS];
    size_t n_window;
};

struct sch_as_decision {
    uint32_t replicas;         /* the count to set; equal to current = no change */
    uint32_t recommended;      /* what the figures call for before stabilisation; 0 = none */
    uint64_t scale_down_in_ms; /* time left before a pending scale-down acts; 0 = none */
    uint64_t idle_in_ms;       /* time left before retiring to zero; 0 = none */
    char reason[256];          /* the sentence of the audit event when replicas changes */
};

/* Decides the replica count. Scale-up acts at once, bounded to max(2 x current,
 * current + 4); scale-down only after the recommendations stayed below current for
 * scale_down_after, to the highest recommendation of the last scale_down_after (as the
 * Kubernetes HPA's stabilisation window); with min 0 and
 * idle_after, a workload whose replicas all stayed idle for idle_after goes to zero, and a
 * workload at zero stays there until it is scaled or applied. The largest recommendation
 * of the targets wins. */
void sch_as_decide(const struct sch_as_policy *p, const struct sch_as_figures *f,
                   struct sch_as_memory *m, uint64_t now_ms, struct sch_as_decision *d);

#endif
