/* Replica networking over route netlink; see network.h. */
#include "agent/network.h"

#include "agent/netlink.h"
#include "common/hash.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

const char *agent_net_addr_str(uint32_t addr, char buf[AGENT_NET_ADDR_MAX])
{
    struct in_addr in = {.s_addr = htonl(addr)};
    inet_ntop(AF_INET, &in, buf, AGENT_NET_ADDR_MAX);
    return buf;
}

bool agent_net_addr_parse(const char *text, uint32_t *addr)
{
    struct in_addr in;
    if (inet_pton(AF_INET, text, &in) != 1)
        return false;
    *addr = ntohl(in.s_addr);
    return true;
}

int agent_net_config_init(struct agent_net_config *cfg, const char *subnet, const char *bridge,
                          const char *ns_prefix, struct gy_error *err)
{
    memset(cfg, 0, sizeof(*cfg));
    if (bridge == NULL || bridge[0] == '\0' || strlen(bridge) >= IFNAMSIZ)
        return gy_error_set(err, GY_EINVAL, "bridge name \"%s\": 1 to %d characters",
                            bridge != NULL ? bridge : "", IFNAMSIZ - 1);
    if (strlen(ns_prefix) >= sizeof(cfg->ns_prefix))
        return gy_error_set(err, GY_EINVAL, "namespace prefix \"%s\" is too long", ns_prefix);
    snprintf(cfg->bridge, sizeof(cfg->bridge), "%s", bridge);
    snprintf(cfg->ns_prefix, sizeof(cfg->ns_prefix), "%s", ns_prefix);
    if (subnet == NULL)
        return 0;
    char text[64];
    const char *slash = strchr(subnet, '/');
    if (slash == NULL || (size_t)(slash - subnet) >= sizeof(text))
        return gy_error_set(err, GY_EINVAL,
                            "subnet \"%s\": expected ADDRESS/PREFIX like 10.73.1.0/24", subnet);
    memcpy(text, subnet, (size_t)(slash - subnet));
    text[slash - subnet] = '\0';
    char *end;
    long prefix = strtol(slash + 1, &end, 10);
    if (*end != '\0' || prefix < 16 || prefix > 30)
        return gy_error_set(err, GY_EINVAL, "subnet \"%s\": prefix length must be 16 to 30",
                            subnet);
    uint32_t net;
    if (!agent_net_addr_parse(text, &net))
        return gy_error_set(err, GY_EINVAL, "subnet \"%s\": \"%s\" is not an IPv4 address", subnet,
                            text);
    uint32_t mask = ~((UINT32_C(1) << (32 - prefix)) - 1);
    if ((net & ~mask) != 0)
        return gy_error_set(err, GY_EINVAL, "subnet \"%s\": host bits must be zero", subnet);
    cfg->network = net;
    cfg->prefix_len = (int)prefix;
    cfg->gateway = net + 1;
    return 0;
}

/* The bridge's own hardware address: as replicas come and go a bridge would otherwise take
 * the lowest address of its ports, changing the gateway's address under the replicas that
 * stay, whose neighbour caches then point nowhere until they expire. A fixed, locally
 * administered address derived from the gateway keeps it stable. */
static void bridge_mac(uint32_t gateway, uint8_t mac[6])
{
    mac[0] = 0x02;
    mac[1] = 0x67;
    mac[2] = 0x79;
    mac[3] = (uint8_t)(gateway >> 16);
    mac[4] = (uint8_t)(gateway >> 8);
    mac[5] = (uint8_t)gateway;
}

struct bridge_addrs {
    uint32_t addr[16];
    int len[16];
    size_t n;
};

static void bridge_addr_add(void *data, uint32_t addr, int prefix_len)
{
    struct bridge_addrs *b = data;
    if (b->n < 16) {
        b->addr[b->n] = addr;
        b->len[b->n++] = prefix_len;
    }
}

int agent_net_bridge_up(const struct agent_net_config *cfg, struct gy_error *err)
{
    struct agent_nl nl;
    int rc = agent_nl_open(&nl, err);
    if (rc < 0)
        return gy_error_wrap(err, "bridge %s", cfg->bridge);
    int index;
    struct gy_error e;
    if ((rc = agent_nl_link_index(&nl, cfg->bridge, &index, &e)) == -GY_ENOTFOUND)
        rc = agent_nl_bridge_add(&nl, cfg->bridge, &e) < 0
                 ? -(int)e.code
                 : agent_nl_link_index(&nl, cfg->bridge, &index, &e);
    uint8_t mac[6];
    bridge_mac(cfg->gateway, mac);
    /* Replacing the address keeps this idempotent across agent restarts; the bridge holds
     * no other (a node whose subnet changed would still take the old one for its own). */
    struct bridge_addrs old = {0};
    if (rc == 0 && (rc = agent_nl_link_set(&nl, index, true, mac, &e)) == 0 &&
        (rc = agent_nl_addr_add(&nl, index, cfg->gateway, cfg->prefix_len, true, &e)) == 0)
        rc = agent_nl_addr_list(&nl, index, bridge_addr_add, &old, &e);
    for (size_t i = 0; rc == 0 && i < old.n; i++)
        if (old.addr[i] != cfg->gateway || old.len[i] != cfg->prefix_len)
            rc = agent_nl_addr_del(&nl, index, old.addr[i], old.len[i], &e);
    agent_nl_close(&nl);
    if (rc < 0) {
        if (err != NULL)
            *err = e;
        return gy_error_wrap(err, "bridge %s", cfg->bridge);
    }
    return 0;
}

struct routes_have {
    struct agent_net_route *items;
    size_t n, cap;
};

static void routes_have_add(void *data, uint32_t dst, int prefix_len, uint32_t gateway, int oif)
{
    struct routes_have *h = data;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->items = gy_xrealloc(h->items, h->cap * sizeof(*h->items));
    }
    h->items[h->n++] =
        (struct agent_net_route){.dst = dst, .prefix_len = prefix_len, .via = gateway, .dev = oif};
}

/* Routed replicas of other nodes arrive on the host's own interface and leave through the
 * bridge, and the replies the other way: the host must forward. */
static int forwarding_on(struct gy_error *err)
{
    int fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno,
                            "enable IPv4 forwarding: open /proc/sys/net/ipv4/ip_forward");
    ssize_t n = write(fd, "1", 1);
    int e = errno;
    close(fd);
    return n == 1 ? 0 : gy_error_sys(err, e, "enable IPv4 forwarding");
}

/* The VXLAN endpoint address of a node's subnet: 02, the network's four bytes and the
 * prefix length. Every node derives every other's from its subnet alone. */
void agent_net_vtep_mac(uint32_t network, int prefix_len, uint8_t mac[6])
{
    mac[0] = 0x02;
    mac[1] = (uint8_t)(network >> 24);
    mac[2] = (uint8_t)(network >> 16);
    mac[3] = (uint8_t)(network >> 8);
    mac[4] = (uint8_t)network;
    mac[5] = (uint8_t)prefix_len;
}

int agent_net_vxlan_sync(const struct agent_net_config *cfg, const char *name,
                         const struct agent_net_vxlan_peer *peers, size_t n, int *index,
                         struct gy_error *err)
{
    *index = 0;
    struct agent_nl nl;
    int rc = agent_nl_open(&nl, err);
    if (rc < 0)
        return gy_error_wrap(err, "overlay %s", name);
    struct gy_error e;
    if ((rc = agent_nl_link_index(&nl, name, index, &e)) == -GY_ENOTFOUND)
        rc = agent_nl_vxlan_add(&nl, name, AGENT_NET_VXLAN_VNI, AGENT_NET_VXLAN_PORT, &e) < 0
                 ? -(int)e.code
                 : agent_nl_link_index(&nl, name, index, &e);
    if (rc < 0)
        *err = e;
    uint8_t mac[6];
    agent_net_vtep_mac(cfg->network, cfg->prefix_len, mac);
    /* The node's own end: its address the subnet's network address, alone (as flannel's
     * VXLAN backend does); the bridge keeps the gateway's. */
    if (rc == 0)
        rc = agent_nl_link_set(&nl, *index, true, mac, err);
    if (rc == 0)
        rc = agent_nl_addr_add(&nl, *index, cfg->network, 32, true, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        agent_net_vtep_mac(peers[i].network, peers[i].prefix_len, mac);
        if ((rc = agent_nl_neigh_replace(&nl, *index, peers[i].network, mac, err)) == 0)
            rc = agent_nl_fdb_replace(&nl, *index, mac, peers[i].address, err);
    }
    agent_nl_close(&nl);
    return rc < 0 ? gy_error_wrap(err, "overlay %s", name) : 0;
}

int agent_net_routes_sync(const struct agent_net_route *routes, size_t n, size_t *changed,
                          struct gy_error *err)
{
    *changed = 0;
    int rc;
    if (n > 0 && (rc = forwarding_on(err)) < 0)
        return rc;
    struct agent_nl nl;
    if ((rc = agent_nl_open(&nl, err)) < 0)
        return gy_error_wrap(err, "routes to other nodes");
    struct routes_have have = {0};
    rc = agent_nl_route_list(&nl, routes_have_add, &have, err);
    for (size_t i = 0; rc == 0 && i < have.n; i++) {
        bool wanted = false;
        for (size_t j = 0; j < n && !wanted; j++)
            wanted = routes[j].dst == have.items[i].dst &&
                     routes[j].prefix_len == have.items[i].prefix_len;
        if (!wanted &&
            (rc = agent_nl_route_del(&nl, have.items[i].dst, have.items[i].prefix_len, err)) == 0)
            (*changed)++;
    }
    for (size_t j = 0; rc == 0 && j < n; j++) {
        bool same = false;
        for (size_t i = 0; i < have.n && !same; i++)
            same = routes[j].dst == have.items[i].dst &&
                   routes[j].prefix_len == have.items[i].prefix_len &&
                   routes[j].via == have.items[i].via &&
                   (routes[j].dev == 0 || routes[j].dev == have.items[i].dev);
        if (!same && (rc = agent_nl_route_replace(&nl, routes[j].dst, routes[j].prefix_len,
                                                  routes[j].via, routes[j].dev, err)) == 0)
            (*changed)++;
    }
    free(have.items);
    agent_nl_close(&nl);
    return rc < 0 ? gy_error_wrap(err, "routes to other nodes") : 0;
}
