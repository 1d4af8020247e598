/* Turning an assigned replica into an OCI runtime-spec configuration for runtime/: the
 * workload's command, environment and resources over the runtime's secure defaults. */
#ifndef GANTRY_AGENT_BUNDLE_H
#define GANTRY_AGENT_BUNDLE_H

#include "common/error.h"
#include "common/spec.h"

/* CFS period used for cpu quotas: 100 ms, as Docker and Kubernetes use. */
#define AGENT_CPU_PERIOD_US 100000

struct agent_bundle_params {
    const char *replica_id;
    const char *hostname;   /* NULL: the replica id, cut to a DNS label */
    const char *netns_path; /* NULL: a new, empty network namespace */
};

/* Returns the config as JSON text (the caller frees it): base_json (the runtime's default
 * config) with process.args from spec->command, process.env (PATH, HOSTNAME,
 * GANTRY_WORKLOAD, GANTRY_REPLICA, then the spec's env, which may override them), the
 * hostname, the network namespace, and linux.resources from spec->resources (memory
 * limit, cpu quota/period/shares, pids limit). A workload without a command is an error
 * that says so. */
char *agent_bundle_config(const char *base_json, const struct gy_spec *spec,
                          const struct agent_bundle_params *params, struct gy_error *err);

#endif
