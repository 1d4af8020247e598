/* Load-metric probes for the autoscaler: the leader names a ready replica and the agent
 * runs the workload's metric command inside it (or GETs its HTTP path on the replica's
 * address) on a thread-pool thread, then answers with the number printed. */
#ifndef GANTRY_AGENT_METRIC_H
#define GANTRY_AGENT_METRIC_H

#include <stddef.h>

#include <uv.h>

#include "proto/gantry.pb-c.h"

/* Called on the loop thread with the answer to send (value or error set). */
typedef void (*agent_metric_done)(void *data, const Gantry__MetricValue *value);

/* Starts one probe. runtime_root is the runtime's state dir; address the replica's IPv4
 * address as text ("" when it has none; HTTP probes then fail). done runs exactly once. */
void agent_metric_probe(uv_loop_t *loop, const Gantry__MetricProbe *probe, const char *runtime_root,
                        const char *address, agent_metric_done done, void *data);

/* Reads the number a metric printed: the last non-empty line, a finite decimal number with
 * nothing else on it. Returns 0, or -1 with why filled in. */
int agent_metric_parse(const char *text, double *value, char *why, size_t len);

#endif
