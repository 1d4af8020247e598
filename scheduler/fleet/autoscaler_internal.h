/* What the files of the autoscaler share (autoscaler.c: samples, probes and evaluation;
 * autoscaler_spec.c: reading specs; autoscaler_read.c: the figures the API shows). */
#ifndef GANTRY_SCHEDULER_FLEET_AUTOSCALER_INTERNAL_H
#define GANTRY_SCHEDULER_FLEET_AUTOSCALER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hash.h"
#include "scheduler/fleet/autoscale_policy.h"
#include "scheduler/fleet/autoscaler.h"

/* Metric answers kept per workload. */
#define METRIC_VALUES 8

struct replica_usage {
    UT_hash_handle hh; /* in the table by replica id */
    char *id;
    uint64_t seen_ms; /* leader clock of the last sample */
    /* The leader's clock less the agent's wall clock at the samples: a sample is placed at
     * its agent's time plus this, so that the agent's spacing of samples is kept and a
     * step of its wall clock is not (see sch_autoscaler_samples). */
    int64_t clock_offset;
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
    UT_hash_handle hh; /* in the index by name */
    char *name;
    uint64_t generation; /* of the decoded spec below */
    bool seen;           /* still in the state at the last evaluation */
    int64_t cpu_request_millis;
    int64_t memory_request_bytes;
    struct workload_live *live; /* NULL when the workload is not autoscaled */
};

struct sch_autoscaler {
    struct replica_usage *usage;   /* by replica id */
    struct workload_as *workloads; /* every workload, the newest found first */
    struct workload_as *index;     /* the same by name */
    uint64_t next_probe_id;
    /* Which workloads to read again at the next evaluation: the names the state machine
     * reported changed (sch_autoscaler_changed), or all of them. */
    bool scan_all;
    char **changed;
    size_t n_changed;
    size_t cap_changed;
};

/* The usage window of a replica, or NULL (autoscaler.c). */
struct replica_usage *autoscaler_usage_find(struct sch_autoscaler *as, const char *id);
/* A replica's current CPU (millicores) and memory (bytes); false when it has no fresh
 * figures (autoscaler.c). */
bool autoscaler_usage_of(struct sch_autoscaler *as, const char *id, uint64_t now_ms, double *cpu,
                         double *memory, uint64_t *span_ms);
/* The workload called name, or NULL (autoscaler.c). */
struct workload_as *autoscaler_workload_find(struct sch_autoscaler *as, const char *name);
/* Reads the autoscale block and requests from a stored spec of the given generation
 * (autoscaler_spec.c). */
void autoscaler_workload_decode(struct workload_as *w, const void *blob, size_t len,
                                uint64_t generation);
void autoscaler_live_free(struct workload_live *live);

#endif
