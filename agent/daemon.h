/* The node daemon: registers the node with the control plane, runs the replicas assigned
 * to it as containers through runtime/, restarts them by their policy, checks their
 * health, reports their state and resource use, serves their logs, and adopts the
 * containers it finds after a restart of its own. */
#ifndef GANTRY_AGENT_DAEMON_H
#define GANTRY_AGENT_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct agent_config {
    const char *servers;  /* HOST:PORT[,HOST:PORT...] of agent streams */
    const char *name;     /* node name */
    const char *data_dir; /* images, agent.db, replica upper layers */
    const char *cloud;
    const char *region;
    const char *zone;
    const char *labels;  /* "k=v,k=v" */
    const char *address; /* the node's address as others see it ("" = unknown) */
    int64_t cpu_millis;  /* capacity offered to replicas */
    int64_t memory_bytes;
    int64_t pids; /* 0 = no limit */
    double cost_per_hour;
    const char *subnet;       /* replica addresses, e.g. "10.73.1.0/24"; NULL: the leader's */
    const char *bridge;       /* bridge interface, e.g. "gantry0" */
    const char *ns_prefix;    /* replica network namespace name prefix */
    const char *runtime_root; /* runtime state directory */
    uint64_t heartbeat_ms;    /* metric samples and liveness; default 1000 */
    const char *registries;   /* registry configuration file (docs/images.md), or NULL */
    /* The layer server for peers (docs/images.md, "Peers"): "HOST:PORT", "off", or NULL
     * for the default, --address on port 7703 (off without an --address). */
    const char *blob_listen;
    int max_downloads; /* blob downloads at once for the node's pulls; 0: 3 */
    /* Replica networks (docs/network.md): an operator's CNI conflist, or NULL for the
     * default one; the plugin directories; attachments kept ready. */
    const char *cni_conf;
    const char *cni_bin_dirs;
    size_t cni_pool;
    /* Tunnels to the nodes of other clouds (docs/network.md, "Between clouds"): off, or the
     * WireGuard interface (unique on the host) and UDP port. */
    bool tunnels_off;
    const char *tunnel_interface;
    uint16_t tunnel_port;
};

/* Runs the daemon until SIGTERM or SIGINT. Containers keep running when it stops. */
int agent_daemon_run(const struct agent_config *cfg, struct gy_error *err);

#endif
