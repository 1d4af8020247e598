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

uint32_t agent_net_address_pick(const struct agent_net_config *cfg, const uint32_t *used,
                                size_t n_used)
{
    uint32_t size = UINT32_C(1) << (32 - cfg->prefix_len);
    uint32_t last = cfg->network + size - 2; /* before the broadcast address */
    for (uint32_t a = cfg->gateway + 1; a <= last; a++) {
        bool taken = false;
        for (size_t i = 0; i < n_used && !taken; i++)
            taken = used[i] == a;
        if (!taken)
            return a;
    }
    return 0;
}

_Static_assert(AGENT_NET_VETH_MAX == IFNAMSIZ, "a veth name is an interface name");

void agent_net_veth_name(const char *id, char out[AGENT_NET_VETH_MAX])
{
    /* The 32-bit FNV-1a: the names of running replicas must stay what earlier agents made
     * them, and eight hex digits fit the 15 characters of a name. */
    snprintf(out, AGENT_NET_VETH_MAX, "gy%08x", gy_fnv1a32_str(id));
}

/* The replica's side: its namespace with the peer of the veth pair as eth0, its address
 * and the default route through the bridge. */
static int replica_inside(const struct agent_net_config *cfg, struct agent_nl *inside,
                          uint32_t addr, struct gy_error *err)
{
    int eth0, rc;
    if ((rc = agent_nl_link_index(inside, "eth0", &eth0, err)) < 0 ||
        (rc = agent_nl_addr_add(inside, eth0, addr, cfg->prefix_len, false, err)) < 0 ||
        (rc = agent_nl_link_set(inside, eth0, true, NULL, err)) < 0)
        return rc;
    return agent_nl_route_default(inside, cfg->gateway, err);
}

int agent_net_replica_up(const struct agent_net_config *cfg, const char *id, uint32_t addr,
                         char *netns_path, size_t len, struct gy_error *err)
{
    char path[160], veth[IFNAMSIZ];
    if (snprintf(path, sizeof(path), "/run/netns/%s%s", cfg->ns_prefix, id) >= (int)sizeof(path))
        return gy_error_set(err, GY_EINVAL, "replica id \"%s\" is too long", id);
    if (snprintf(netns_path, len, "%s", path) >= (int)len)
        return gy_error_set(err, GY_EINVAL, "namespace path too long");
    agent_net_veth_name(id, veth);
    /* Start from nothing, so a half-made namespace from a crash is replaced. */
    agent_net_replica_down(cfg, id, NULL);
    struct agent_nl host, inside = {0};
    int ns_fd = -1, bridge, rc;
    if ((rc = agent_nl_open(&host, err)) < 0)
        return gy_error_wrap(err, "network for replica %s", id);
    /* An address is reused after its replica is gone; the node's neighbour entry for it
     * would still name the old replica's interface for up to a minute, so it goes. */
    if ((rc = agent_nl_link_index(&host, cfg->bridge, &bridge, err)) < 0 ||
        (rc = agent_nl_neigh_del(&host, bridge, addr, err)) < 0 ||
        (rc = agent_netns_create(path, &ns_fd, &inside, err)) < 0 ||
        (rc = agent_nl_veth_add(&host, veth, bridge, "eth0", ns_fd, err)) < 0 ||
        (rc = replica_inside(cfg, &inside, addr, err)) < 0) {
        gy_error_wrap(err, "network for replica %s", id);
        agent_net_replica_down(cfg, id, NULL);
    }
    if (ns_fd >= 0)
        close(ns_fd);
    agent_nl_close(&inside);
    agent_nl_close(&host);
    return rc;
}

int agent_net_replica_down(const struct agent_net_config *cfg, const char *id, struct gy_error *err)
{
    char path[160], veth[IFNAMSIZ];
    snprintf(path, sizeof(path), "/run/netns/%s%s", cfg->ns_prefix, id);
    agent_net_veth_name(id, veth);
    struct agent_nl nl;
    int rc = agent_nl_open(&nl, err);
    /* Deleting our end of the pair removes both at once, so the name is free again when
     * this returns; the kernel frees the namespace itself once nothing holds it. */
    if (rc == 0) {
        struct gy_error e;
        rc = agent_nl_link_del(&nl, veth, &e);
        if (rc == -GY_ENOTFOUND)
            rc = 0;
        else if (rc < 0 && err != NULL)
            *err = e;
        agent_nl_close(&nl);
    }
    if (rc == 0)
        rc = agent_netns_remove(path, err);
    return rc < 0 ? gy_error_wrap(err, "remove network of replica %s", id) : 0;
}

/* Reads eth0's IPv4 address in a network namespace, on a thread of its own: setns changes
 * the namespace of the calling thread only, and the thread ends with it. */
struct addr_read {
    const char *ns_path;
    uint32_t addr;
    int error;
    const char *step;
};

static void *addr_read_thread(void *arg)
{
    struct addr_read *r = arg;
    int fd = open(r->ns_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r->error = errno;
        r->step = "open";
        return NULL;
    }
    int rc = setns(fd, CLONE_NEWNET);
    r->error = rc < 0 ? errno : 0;
    close(fd);
    if (rc < 0) {
        r->step = "enter";
        return NULL;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        r->error = errno;
        r->step = "socket in";
        return NULL;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
    if (ioctl(s, SIOCGIFADDR, &ifr) < 0) {
        r->error = errno;
        r->step = "read eth0 address in";
    } else {
        struct sockaddr_in sin;
        memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
        r->addr = ntohl(sin.sin_addr.s_addr);
    }
    close(s);
    return NULL;
}

int agent_net_replica_address(const struct agent_net_config *cfg, const char *id, uint32_t *addr,
                              struct gy_error *err)
{
    *addr = 0;
    char ns_path[200];
    if (snprintf(ns_path, sizeof(ns_path), "/run/netns/%s%s", cfg->ns_prefix, id) >=
        (int)sizeof(ns_path))
        return gy_error_set(err, GY_EINVAL, "replica id \"%s\" is too long", id);
    struct addr_read r = {.ns_path = ns_path};
    pthread_t t;
    int rc = pthread_create(&t, NULL, addr_read_thread, &r);
    if (rc != 0)
        return gy_error_sys(err, rc, "read the address of replica %s: start a thread", id);
    pthread_join(t, NULL);
    if (r.error != 0)
        return gy_error_sys(err, r.error, "read the address of replica %s: %s %s", id, r.step,
                            ns_path);
    /* Read from outside the agent's own records: only an address of the node's replica
     * subnet, neither its network, gateway nor broadcast address, is taken. */
    uint32_t mask = cfg->prefix_len == 0 ? 0 : UINT32_MAX << (32 - cfg->prefix_len);
    uint32_t broadcast = cfg->network | ~mask;
    if ((r.addr & mask) != cfg->network || r.addr == cfg->network || r.addr == cfg->gateway ||
        r.addr == broadcast) {
        char text[AGENT_NET_ADDR_MAX];
        return gy_error_set(err, GY_ERANGE,
                            "replica %s has address %s, outside the node's replica subnet", id,
                            agent_net_addr_str(r.addr, text));
    }
    *addr = r.addr;
    return 0;
}

struct routes_have {
    struct agent_net_route *items;
    size_t n, cap;
};

static void routes_have_add(void *data, uint32_t dst, int prefix_len, uint32_t gateway)
{
    struct routes_have *h = data;
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->items = gy_xrealloc(h->items, h->cap * sizeof(*h->items));
    }
    h->items[h->n++] =
        (struct agent_net_route){.dst = dst, .prefix_len = prefix_len, .via = gateway};
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
                   routes[j].via == have.items[i].via;
        if (!same && (rc = agent_nl_route_replace(&nl, routes[j].dst, routes[j].prefix_len,
                                                  routes[j].via, err)) == 0)
            (*changed)++;
    }
    free(have.items);
    agent_nl_close(&nl);
    return rc < 0 ? gy_error_wrap(err, "routes to other nodes") : 0;
}
