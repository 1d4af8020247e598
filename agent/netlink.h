/* Route netlink requests the agent makes for the node's side of replica networking (the
 * bridge, routes between nodes, the VXLAN overlay's links, neighbours and forwarding
 * entries), built with libmnl, and network namespaces made and removed in-process. Every
 * request is acknowledged by the kernel before the call returns; its error names what was
 * asked. */
#ifndef GANTRY_AGENT_NETLINK_H
#define GANTRY_AGENT_NETLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

struct mnl_socket;

/* One route netlink socket, bound to the network namespace that was current for the thread
 * that opened it: requests on it act on that namespace wherever they are sent from. */
struct agent_nl {
    struct mnl_socket *sock;
    uint32_t portid;
    uint32_t seq;
};

int agent_nl_open(struct agent_nl *nl, struct gy_error *err);
void agent_nl_close(struct agent_nl *nl);

/* The index of the interface called name; GY_ENOTFOUND when there is none. */
int agent_nl_link_index(struct agent_nl *nl, const char *name, int *index, struct gy_error *err);

/* Sets the interface up (or down), and when mac is not NULL its hardware address. */
int agent_nl_link_set(struct agent_nl *nl, int index, bool up, const uint8_t mac[6],
                      struct gy_error *err);

/* Creates a bridge called name (down); GY_EEXISTS when the name is taken. */
int agent_nl_bridge_add(struct agent_nl *nl, const char *name, struct gy_error *err);

/* Creates a VXLAN interface (down) with network identifier vni on UDP port port, that
 * learns no addresses from traffic. */
int agent_nl_vxlan_add(struct agent_nl *nl, const char *name, uint32_t vni, uint16_t port,
                       struct gy_error *err);

/* A permanent neighbour entry: addr (host byte order) is at mac on the interface. */
int agent_nl_neigh_replace(struct agent_nl *nl, int index, uint32_t addr, const uint8_t mac[6],
                           struct gy_error *err);

/* A permanent forwarding entry of a VXLAN interface: frames for mac go to the VXLAN
 * endpoint dst (host byte order). */
int agent_nl_fdb_replace(struct agent_nl *nl, int index, const uint8_t mac[6], uint32_t dst,
                         struct gy_error *err);

/* Adds the IPv4 address addr/prefix_len (host byte order) to the interface; with replace,
 * an existing one is kept instead of refused. */
int agent_nl_addr_add(struct agent_nl *nl, int index, uint32_t addr, int prefix_len, bool replace,
                      struct gy_error *err);

/* Removes the IPv4 address addr/prefix_len from the interface; none is fine. */
int agent_nl_addr_del(struct agent_nl *nl, int index, uint32_t addr, int prefix_len,
                      struct gy_error *err);

/* Calls cb for every IPv4 address of the interface. */
typedef void (*agent_nl_addr_fn)(void *data, uint32_t addr, int prefix_len);
int agent_nl_addr_list(struct agent_nl *nl, int index, agent_nl_addr_fn cb, void *data,
                       struct gy_error *err);

/* Routes of the main table made by the agent carry this protocol number, so that it finds
 * its own after a restart (and `ip route show proto 152` lists them). */
#define AGENT_NL_ROUTE_PROTOCOL 152

/* Adds or replaces the route to dst/prefix_len through gateway (host byte order), or with
 * gateway 0 straight out of interface oif, marked AGENT_NL_ROUTE_PROTOCOL. With both, the
 * gateway is taken as on the link of oif (onlink): the far end of an overlay. */
int agent_nl_route_replace(struct agent_nl *nl, uint32_t dst, int prefix_len, uint32_t gateway,
                           int oif, struct gy_error *err);

/* Removes the route to dst/prefix_len marked AGENT_NL_ROUTE_PROTOCOL; none is fine. */
int agent_nl_route_del(struct agent_nl *nl, uint32_t dst, int prefix_len, struct gy_error *err);

/* Calls cb for every IPv4 route of the main table marked AGENT_NL_ROUTE_PROTOCOL. */
typedef void (*agent_nl_route_fn)(void *data, uint32_t dst, int prefix_len, uint32_t gateway,
                                  int oif);
int agent_nl_route_list(struct agent_nl *nl, agent_nl_route_fn cb, void *data,
                        struct gy_error *err);

/* Makes a new network namespace pinned at path (a bind mount, as `ip netns add` makes
 * them, so iproute2 sees it), with only its loopback interface, up. On success *ns_fd is
 * open on the namespace and *inside is a socket bound to it; the caller closes both. */
int agent_netns_create(const char *path, int *ns_fd, struct agent_nl *inside, struct gy_error *err);

/* Removes the namespace pinned at path (as `ip netns del`): the kernel frees it once
 * nothing else holds it. A path that does not exist is fine. */
int agent_netns_remove(const char *path, struct gy_error *err);

#endif
