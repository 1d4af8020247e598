/* Replica networking with iproute2; see network.h. */
#include "agent/network.h"

#include "agent/tool.h"
#include "common/hash.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    char text[64];
    const char *slash = subnet != NULL ? strchr(subnet, '/') : NULL;
    if (slash == NULL || (size_t)(slash - subnet) >= sizeof(text))
        return gy_error_set(err, GY_EINVAL,
                            "subnet \"%s\": expected ADDRESS/PREFIX like "
                            "10.88.0.0/24",
                            subnet != NULL ? subnet : "");
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
    uint32_t mask = prefix == 0 ? 0 : ~((UINT32_C(1) << (32 - prefix)) - 1);
    if ((net & ~mask) != 0)
        return gy_error_set(err, GY_EINVAL, "subnet \"%s\": host bits must be zero", subnet);
    if (bridge == NULL || bridge[0] == '\0' || strlen(bridge) >= IFNAMSIZ)
        return gy_error_set(err, GY_EINVAL, "bridge name \"%s\": 1 to %d characters",
                            bridge != NULL ? bridge : "", IFNAMSIZ - 1);
    if (strlen(ns_prefix) >= sizeof(cfg->ns_prefix))
        return gy_error_set(err, GY_EINVAL, "namespace prefix \"%s\" is too long", ns_prefix);
    snprintf(cfg->bridge, sizeof(cfg->bridge), "%s", bridge);
    snprintf(cfg->ns_prefix, sizeof(cfg->ns_prefix), "%s", ns_prefix);
    cfg->network = net;
    cfg->prefix_len = (int)prefix;
    cfg->gateway = net + 1;
    return 0;
}

/* Runs `ip ARGS...`; its own words explain a failure. */
static int ip_run(struct gy_error *err, const char *const *args)
{
    const char *argv[24] = {"ip"};
    size_t n = 1;
    for (; args[n - 1] != NULL && n < 23; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    return agent_tool_run(argv, err);
}

#define IP(err, ...) ip_run(err, (const char *const[]){__VA_ARGS__, NULL})

int agent_net_bridge_up(const struct agent_net_config *cfg, struct gy_error *err)
{
    int rc;
    /* if_nametoindex asks the calling process's network namespace (sysfs may show
     * another's). */
    if (if_nametoindex(cfg->bridge) == 0 &&
        (rc = IP(err, "link", "add", cfg->bridge, "type", "bridge")) < 0)
        return gy_error_wrap(err, "create bridge %s", cfg->bridge);
    char gw[AGENT_NET_ADDR_MAX], cidr[64], mac[32];
    snprintf(cidr, sizeof(cidr), "%s/%d", agent_net_addr_str(cfg->gateway, gw), cfg->prefix_len);
    /* A bridge takes the lowest MAC address of its ports unless it has one of its own: as
     * replicas come and go the gateway's address would change under the replicas that
     * stay, whose neighbour caches then point nowhere until they expire. A fixed, locally
     * administered address derived from the gateway keeps it stable. */
    snprintf(mac, sizeof(mac), "02:67:79:%02x:%02x:%02x", (cfg->gateway >> 16) & 0xff,
             (cfg->gateway >> 8) & 0xff, cfg->gateway & 0xff);
    /* "replace" keeps this idempotent across agent restarts. */
    if ((rc = IP(err, "link", "set", cfg->bridge, "address", mac)) < 0 ||
        (rc = IP(err, "addr", "replace", cidr, "dev", cfg->bridge)) < 0 ||
        (rc = IP(err, "link", "set", cfg->bridge, "up")) < 0)
        return gy_error_wrap(err, "configure bridge %s", cfg->bridge);
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

int agent_net_replica_up(const struct agent_net_config *cfg, const char *id, uint32_t addr,
                         char *netns_path, size_t len, struct gy_error *err)
{
    char ns[128], veth[IFNAMSIZ], ip[AGENT_NET_ADDR_MAX], gw[AGENT_NET_ADDR_MAX], cidr[64];
    if (snprintf(ns, sizeof(ns), "%s%s", cfg->ns_prefix, id) >= (int)sizeof(ns))
        return gy_error_set(err, GY_EINVAL, "replica id \"%s\" is too long", id);
    agent_net_veth_name(id, veth);
    snprintf(cidr, sizeof(cidr), "%s/%d", agent_net_addr_str(addr, ip), cfg->prefix_len);
    agent_net_addr_str(cfg->gateway, gw);
    /* Start from nothing, so a half-made namespace from a crash is replaced. */
    agent_net_replica_down(cfg, id, NULL);
    /* Two `ip -batch` runs instead of one process per step: starting a replica is
     * dominated by process start-up otherwise. */
    char host[512], inside[512];
    /* An address is reused after its replica is gone; the node's neighbour entry for it
     * would still name the old replica's interface for up to a minute, so it goes. */
    snprintf(host, sizeof(host),
             "neigh flush to %s dev %s\nnetns add %s\n"
             "link add %s type veth peer name eth0 netns %s\nlink set %s master %s up\n",
             ip, cfg->bridge, ns, veth, ns, veth, cfg->bridge);
    snprintf(inside, sizeof(inside),
             "link set lo up\naddr add %s dev eth0\nlink set eth0 up\n"
             "route add default via %s\n",
             cidr, gw);
    const char *host_argv[] = {"ip", "-batch", "-", NULL};
    const char *inside_argv[] = {"ip", "-n", ns, "-batch", "-", NULL};
    int rc;
    if ((rc = agent_tool_run_input(host_argv, host, err)) < 0 ||
        (rc = agent_tool_run_input(inside_argv, inside, err)) < 0) {
        gy_error_wrap(err, "network for replica %s", id);
        agent_net_replica_down(cfg, id, NULL);
        return rc;
    }
    if (snprintf(netns_path, len, "/run/netns/%s", ns) >= (int)len)
        return gy_error_set(err, GY_EINVAL, "namespace path too long");
    return 0;
}

int agent_net_replica_down(const struct agent_net_config *cfg, const char *id, struct gy_error *err)
{
    char ns[128], path[160], veth[IFNAMSIZ];
    snprintf(ns, sizeof(ns), "%s%s", cfg->ns_prefix, id);
    snprintf(path, sizeof(path), "/run/netns/%s", ns);
    agent_net_veth_name(id, veth);
    int rc;
    /* The kernel frees a namespace's devices asynchronously; deleting our end of the pair
     * removes both at once, so the name is free again when this returns. if_nametoindex
     * asks this process's network namespace (sysfs may show another's). */
    if (if_nametoindex(veth) != 0 && (rc = IP(err, "link", "del", veth)) < 0)
        return gy_error_wrap(err, "remove network of replica %s", id);
    if (access(path, F_OK) == 0 && (rc = IP(err, "netns", "del", ns)) < 0)
        return gy_error_wrap(err, "remove network of replica %s", id);
    return 0;
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
