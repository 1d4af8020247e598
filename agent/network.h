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

/* The VXLAN overlay within a cloud, for nodes that cannot route to each other directly:
 * the kernel's VXLAN on UDP 4789, each node's end at its subnet's network address with a
 * hardware address made from its subnet (agent_net_vtep_mac). */
#define AGENT_NET_VXLAN_VNI  7373
#define AGENT_NET_VXLAN_PORT 4789

struct agent_net_vxlan_peer {
    uint32_t network; /* the peer's replica subnet, host byte order */
    int prefix_len;
    uint32_t address; /* the peer node's address: where its VXLAN packets go */
};

void agent_net_vtep_mac(uint32_t network, int prefix_len, uint8_t mac[6]);

/* Makes the VXLAN interface name (created if missing, up, with this node's end) and, for
 * every peer, the neighbour and forwarding entries that send its subnet's traffic to its
 * address. *index is the interface's, for the routes (SUBNET via NETWORK dev name onlink).
 * Entries of peers no longer listed stay until the interface goes, unused: no route
 * leads to them. */
int agent_net_vxlan_sync(const struct agent_net_config *cfg, const char *name,
                         const struct agent_net_vxlan_peer *peers, size_t n, int *index,
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
