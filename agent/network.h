/* The node's side of replica networking: a bridge (default gantry0) holding the first
 * address of the node's replica subnet, and routes to the other nodes' subnets. Each
 * replica's own network is made through CNI (replica_net.h). */
#ifndef GANTRY_AGENT_NETWORK_H
#define GANTRY_AGENT_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AGENT_NET_ADDR_MAX 46

struct agent_net_config {
    char bridge[16];    /* interface name of the bridge */
    char ns_prefix[32]; /* network namespaces are /run/netns/<prefix><replica id> */
    uint32_t network;   /* host byte order */
    int prefix_len;     /* 16..30 */
    uint32_t gateway;   /* network + 1, on the bridge */
};

/* A route to another node's replica subnet through that node's address (host byte order),
 * or, with via 0, into interface dev (a tunnel to a node of another cloud). */
struct agent_net_route {
    uint32_t dst;
    int prefix_len;
    uint32_t via;
    int dev;
};

/* Makes the node's routes to other nodes' replica subnets exactly routes[0..n): adds or
 * replaces those given and removes the agent's routes (AGENT_NL_ROUTE_PROTOCOL) that are
 * not. The host forwards IPv4 between interfaces from then on. *changed counts the
 * routes added, replaced or removed. */
int agent_net_routes_sync(const struct agent_net_route *routes, size_t n, size_t *changed,
                          struct gy_error *err);

/* Parses a subnet "10.73.1.0/24" (host bits must be zero; /16 to /30) into cfg, with the
 * given bridge name and namespace prefix. A NULL subnet sets the names alone (the node's
 * subnet is not known yet). */
int agent_net_config_init(struct agent_net_config *cfg, const char *subnet, const char *bridge,
                          const char *ns_prefix, struct gy_error *err);

/* Creates the bridge with the gateway address if it is missing and brings it up.
 * Idempotent. */
int agent_net_bridge_up(const struct agent_net_config *cfg, struct gy_error *err);

/* Dotted quad of a host-order address. */
const char *agent_net_addr_str(uint32_t addr, char buf[AGENT_NET_ADDR_MAX]);
/* Parses a dotted quad into a host-order address; false when invalid. */
bool agent_net_addr_parse(const char *text, uint32_t *addr);

#endif
