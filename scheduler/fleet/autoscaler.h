/* The leader's autoscaler: keeps a short window of the CPU and memory samples agents send
 * with their heartbeats, and of the load metric probes, in memory (never in Raft); every
 * evaluation turns them into scale commands for autoscaled workloads (autoscale_policy.h decides)
 * and into the metric probes to send. Owned by the leader's duties (duties.c); the API reads
 * its figures for `gantry top` and `describe` through fleet.h. Time is passed in by the
 * caller. */
#ifndef GANTRY_SCHEDULER_FLEET_AUTOSCALER_H
#define GANTRY_SCHEDULER_FLEET_AUTOSCALER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/error.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"

/* How often the leader evaluates every autoscaled workload, and probes its metric. */
#define SCH_AUTOSCALE_EVAL_MS  500
#define SCH_AUTOSCALE_PROBE_MS 1000
/* A replica without a sample for this long has no figures. */
#define SCH_AUTOSCALE_STALE_MS 5000

struct sch_autoscaler;

struct sch_autoscaler *sch_autoscaler_new(void);
void sch_autoscaler_free(struct sch_autoscaler *as);
/* Forgets every window and decision period (leadership lost). */
void sch_autoscaler_reset(struct sch_autoscaler *as);

/* Takes the container samples of one heartbeat; now_ms is the leader's monotonic clock.
 * Samples are spaced as the agent's wall clock spaced them (hb->time_ms), placed on the
 * leader's clock: a step of the agent's clock re-anchors them to now_ms rather than
 * stalling the replica's window (a step back) or stretching one interval (a step ahead). */
void sch_autoscaler_samples(struct sch_autoscaler *as, const Gantry__Heartbeat *hb,
                            uint64_t now_ms);
/* Takes the answer to a metric probe. */
void sch_autoscaler_metric(struct sch_autoscaler *as, const Gantry__MetricValue *v,
                           uint64_t now_ms);

struct sch_autoscale_probe {
    char *node;
    Gantry__MetricProbe *probe; /* malloc'd like an unpacked message */
};

struct sch_autoscale_plan {
    Gantry__Command *command; /* a batch of scale commands, or NULL */
    size_t scaled;
    struct sch_autoscale_probe *probes;
    size_t n_probes;
};

/* Names of workloads whose rows changed (the state machine's dirty set), or all: the next
 * evaluation reads only those again. */
void sch_autoscaler_changed(struct sch_autoscaler *as, char *const *names, size_t n, bool all);

/* Reads the changed workloads now (the leader calls it after each pass of its duties, so
 * a burst of applies is read in small steps, not all at the next evaluation); the
 * evaluation reads whatever is left. -1 when the state cannot be read. */
int sch_autoscaler_discover(struct sch_autoscaler *as, struct sch_fsm *fsm);

/* One evaluation over every autoscaled workload of the state. wall_ms stamps the commands. */
int sch_autoscaler_plan(struct sch_autoscaler *as, struct sch_fsm *fsm, uint64_t now_ms,
                        uint64_t wall_ms, struct sch_autoscale_plan *plan, struct gy_error *err);
void sch_autoscale_plan_free(struct sch_autoscale_plan *plan);

/* The live state of one workload's autoscaler (figures, recommendation, time left before a
 * scale-down or retirement), or NULL when the workload is not autoscaled or not yet
 * evaluated. The caller owns the result. */
json_t *sch_autoscaler_workload_json(struct sch_autoscaler *as, const char *workload,
                                     uint64_t now_ms);

/* Usage per replica and per workload (GET /v1/top): CPU in millicores and memory in bytes,
 * also as shares of the requests. workload NULL = every workload. The caller owns the
 * result; NULL (err filled) when the state cannot be read. */
json_t *sch_autoscaler_top(struct sch_autoscaler *as, struct sch_fsm *fsm, const char *workload,
                           uint64_t now_ms, struct gy_error *err);

#endif
