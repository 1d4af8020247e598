/* Turning an assigned replica into an OCI runtime-spec configuration for runtime/: the
 * workload's command, environment and resources over the runtime's secure defaults. */
#ifndef GANTRY_AGENT_BUNDLE_H
#define GANTRY_AGENT_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/spec.h"

/* CFS period used for cpu quotas: 100 ms, as Docker and Kubernetes use. */
#define AGENT_CPU_PERIOD_US 100000

/* What an OCI image's config says a container runs with when the spec does not say
 * otherwise (a bare root filesystem has none of it). */
struct agent_image_defaults {
    char **entrypoint;
    size_t n_entrypoint;
    char **cmd;
    size_t n_cmd;
    char **env; /* NAME=VALUE */
    size_t n_env;
    const char *working_dir; /* NULL or "": "/" */
    bool has_user;           /* the image names a user, resolved to uid and gid */
    uint32_t uid, gid;
    int stop_signo; /* the image's StopSignal, or 0 for SIGTERM */
    /* The container's OCI annotations from the image config, as the image spec's conversion
     * rules name them: its Labels, "org.opencontainers.image.exposedPorts" ("80/tcp,53/udp")
     * and "org.opencontainers.image.stopSignal"; keys[i] goes with values[i]. */
    char **annotation_keys;
    char **annotation_values;
    size_t n_annotations;
};

struct agent_bundle_params {
    const char *replica_id;
    const char *hostname;                     /* NULL: the replica id, cut to a DNS label */
    const char *netns_path;                   /* NULL: a new, empty network namespace */
    const struct agent_image_defaults *image; /* NULL: a bare root filesystem */
};

/* Returns the config as JSON text (the caller frees it): base_json (the runtime's default
 * config) with process.args as Kubernetes composes them (spec->command, else the image's
 * Entrypoint; then spec->args, else the image's Cmd when the spec gave no command),
 * process.env (PATH, the image's Env, HOSTNAME, GANTRY_WORKLOAD, GANTRY_REPLICA, then the
 * spec's env, each overriding what came before), process.cwd (the image's WorkingDir),
 * process.user (the image's User), annotations (the image's labels, exposed ports and
 * stop signal), the hostname, the network namespace, and
 * linux.resources from spec->resources (memory limit, cpu quota/period/shares, pids
 * limit). A workload that ends up with nothing to run is an error that says so. */
char *agent_bundle_config(const char *base_json, const struct gy_spec *spec,
                          const struct agent_bundle_params *params, struct gy_error *err);

#endif
