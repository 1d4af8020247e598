/* Route netlink with libmnl, and network namespaces; see netlink.h. */
#include "agent/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* The loopback interface is the first one of every network namespace. */
#define LOOPBACK_INDEX 1
#define NETNS_DIR      "/run/netns"

int agent_nl_open(struct agent_nl *nl, struct gy_error *err)
{
    memset(nl, 0, sizeof(*nl));
    nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (nl->sock == NULL)
        return gy_error_sys(err, errno, "open a route netlink socket");
    if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        mnl_socket_close(nl->sock);
        nl->sock = NULL;
        return gy_error_sys(err, e, "bind a route netlink socket");
    }
    nl->portid = mnl_socket_get_portid(nl->sock);
    return 0;
}

void agent_nl_close(struct agent_nl *nl)
{
    if (nl->sock != NULL)
        mnl_socket_close(nl->sock);
    nl->sock = NULL;
}

/* Sends the request in h and reads until the kernel acknowledges it, handing every answer
 * to cb. A refusal is the kernel's errno: ENODEV and ENOENT become GY_ENOTFOUND, EEXIST
 * GY_EEXISTS, EPERM GY_EPERM; what names the request in the message. */
static int talk(struct agent_nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *data, const char *what,
                struct gy_error *err)
{
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = ++nl->seq;
    if (mnl_socket_sendto(nl->sock, h, h->nlmsg_len) < 0)
        return gy_error_sys(err, errno, "%s: send to netlink", what);
    char buf[8192];
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return gy_error_sys(err, errno, "%s: read from netlink", what);
        }
        int rc = mnl_cb_run(buf, (size_t)n, h->nlmsg_seq, nl->portid, cb, data);
        if (rc == MNL_CB_ERROR) {
            int e = errno;
            if (e == ENODEV || e == ENOENT || e == ESRCH)
                return gy_error_set(err, GY_ENOTFOUND, "%s: %s", what, strerror(e));
            if (e == EEXIST)
                return gy_error_set(err, GY_EEXISTS, "%s: %s", what, strerror(e));
            if (e == EPERM || e == EACCES)
                return gy_error_set(err, GY_EPERM, "%s: %s", what, strerror(e));
            return gy_error_sys(err, e, "%s", what);
        }
        if (rc <= MNL_CB_STOP)
            return 0;
    }
}

/* talk for a removal: what is already gone is no error. */
static int talk_gone_ok(struct agent_nl *nl, struct nlmsghdr *h, const char *what,
                        struct gy_error *err)
{
    struct gy_error e;
    int rc = talk(nl, h, NULL, NULL, what, &e);
    if (rc < 0 && e.code != GY_ENOTFOUND) {
        if (err != NULL)
            *err = e;
        return rc;
    }
    return 0;
}

/* The attributes of one answer, by type up to max; those of type u32_type must be 32-bit
 * values (the addresses read here) or are ignored. */
struct attrs {
    const struct nlattr *tb[64]; /* RTA_MAX and IFA_MAX are below it */
    int max;
    int u32_types[3]; /* attributes that must be 32 bits wide */
};

_Static_assert(RTA_MAX < 64 && IFA_MAX < 64, "struct attrs holds every type");

static int attrs_cb(const struct nlattr *attr, void *data)
{
    struct attrs *a = data;
    int type = mnl_attr_get_type(attr);
    if (mnl_attr_type_valid(attr, (uint16_t)a->max) < 0 || type > a->max)
        return MNL_CB_OK;
    if ((type == a->u32_types[0] || type == a->u32_types[1] || type == a->u32_types[2]) &&
        mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
        return MNL_CB_OK;
    a->tb[type] = attr;
    return MNL_CB_OK;
}

static struct nlmsghdr *link_msg(char *buf, uint16_t type, uint16_t flags, int index,
                                 struct ifinfomsg **ifi)
{
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    *ifi = mnl_nlmsg_put_extra_header(h, sizeof(**ifi));
    (*ifi)->ifi_family = AF_UNSPEC;
    (*ifi)->ifi_index = index;
    return h;
}

static int link_index_cb(const struct nlmsghdr *h, void *data)
{
    if (h->nlmsg_type == RTM_NEWLINK) {
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
        *(int *)data = ifi->ifi_index;
    }
    return MNL_CB_OK;
}

int agent_nl_link_index(struct agent_nl *nl, const char *name, int *index, struct gy_error *err)
{
    char buf[256], what[64];
    struct ifinfomsg *ifi;
    struct nlmsghdr *h = link_msg(buf, RTM_GETLINK, 0, 0, &ifi);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    snprintf(what, sizeof(what), "find interface %s", name);
    *index = 0;
    int rc = talk(nl, h, link_index_cb, index, what, err);
    if (rc == 0 && *index <= 0)
        return gy_error_set(err, GY_ENOTFOUND, "%s: no answer", what);
    return rc;
}

int agent_nl_link_set(struct agent_nl *nl, int index, bool up, const uint8_t mac[6],
                      struct gy_error *err)
{
    char buf[256], what[64];
    struct ifinfomsg *ifi;
    struct nlmsghdr *h = link_msg(buf, RTM_NEWLINK, 0, index, &ifi);
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = up ? IFF_UP : 0;
    if (mac != NULL)
        mnl_attr_put(h, IFLA_ADDRESS, 6, mac);
    snprintf(what, sizeof(what), "set interface %d %s", index, up ? "up" : "down");
    return talk(nl, h, NULL, NULL, what, err);
}

int agent_nl_bridge_add(struct agent_nl *nl, const char *name, struct gy_error *err)
{
    char buf[256], what[64];
    struct ifinfomsg *ifi;
    struct nlmsghdr *h = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, &ifi);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(h, info);
    snprintf(what, sizeof(what), "create bridge %s", name);
    return talk(nl, h, NULL, NULL, what, err);
}

int agent_nl_vxlan_add(struct agent_nl *nl, const char *name, uint32_t vni, uint16_t port,
                       struct gy_error *err)
{
    char buf[512], what[96];
    struct ifinfomsg *ifi;
    struct nlmsghdr *h = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, &ifi);
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "vxlan");
    struct nlattr *data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
    mnl_attr_put_u32(h, IFLA_VXLAN_ID, vni);
    mnl_attr_put_u16(h, IFLA_VXLAN_PORT, htons(port));
    /* The peers are given (agent_nl_fdb_replace), never learnt from traffic. */
    mnl_attr_put_u8(h, IFLA_VXLAN_LEARNING, 0);
    mnl_attr_nest_end(h, data);
    mnl_attr_nest_end(h, info);
    snprintf(what, sizeof(what), "create vxlan %s (vni %u, port %u)", name, vni, port);
    return talk(nl, h, NULL, NULL, what, err);
}

/* A permanent entry of family AF_INET (a neighbour) or AF_BRIDGE (a VXLAN forwarding
 * entry) on the interface: mac and the IPv4 address addr. */
static int neigh_put(struct agent_nl *nl, uint8_t family, int index, uint32_t addr,
                     const uint8_t mac[6], const char *kind, struct gy_error *err)
{
    char buf[256], what[96], text[INET_ADDRSTRLEN];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_NEWNEIGH;
    h->nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    struct ndmsg *nd = mnl_nlmsg_put_extra_header(h, sizeof(*nd));
    nd->ndm_family = family;
    nd->ndm_ifindex = index;
    nd->ndm_state = NUD_PERMANENT;
    nd->ndm_flags = family == AF_BRIDGE ? NTF_SELF : 0;
    uint32_t be = htonl(addr);
    mnl_attr_put_u32(h, NDA_DST, be);
    mnl_attr_put(h, NDA_LLADDR, 6, mac);
    snprintf(what, sizeof(what), "%s %s on interface %d", kind,
             inet_ntop(AF_INET, &be, text, sizeof(text)), index);
    return talk(nl, h, NULL, NULL, what, err);
}

int agent_nl_neigh_replace(struct agent_nl *nl, int index, uint32_t addr, const uint8_t mac[6],
                           struct gy_error *err)
{
    return neigh_put(nl, AF_INET, index, addr, mac, "neighbour", err);
}

int agent_nl_fdb_replace(struct agent_nl *nl, int index, const uint8_t mac[6], uint32_t dst,
                         struct gy_error *err)
{
    return neigh_put(nl, AF_BRIDGE, index, dst, mac, "forwarding entry to", err);
}

int agent_nl_addr_add(struct agent_nl *nl, int index, uint32_t addr, int prefix_len, bool replace,
                      struct gy_error *err)
{
    char buf[256], what[96], text[INET_ADDRSTRLEN];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_NEWADDR;
    h->nlmsg_flags = NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix_len;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)index;
    uint32_t be = htonl(addr);
    mnl_attr_put_u32(h, IFA_LOCAL, be);
    mnl_attr_put_u32(h, IFA_ADDRESS, be);
    snprintf(what, sizeof(what), "add address %s/%d to interface %d",
             inet_ntop(AF_INET, &be, text, sizeof(text)), prefix_len, index);
    return talk(nl, h, NULL, NULL, what, err);
}

int agent_nl_addr_del(struct agent_nl *nl, int index, uint32_t addr, int prefix_len,
                      struct gy_error *err)
{
    char buf[256], what[96], text[INET_ADDRSTRLEN];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_DELADDR;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix_len;
    ifa->ifa_index = (unsigned)index;
    uint32_t be = htonl(addr);
    mnl_attr_put_u32(h, IFA_LOCAL, be);
    snprintf(what, sizeof(what), "remove address %s/%d from interface %d",
             inet_ntop(AF_INET, &be, text, sizeof(text)), prefix_len, index);
    return talk_gone_ok(nl, h, what, err);
}

struct addr_walk {
    int index;
    agent_nl_addr_fn cb;
    void *data;
};

static int addr_list_cb(const struct nlmsghdr *h, void *data)
{
    struct addr_walk *w = data;
    if (h->nlmsg_type != RTM_NEWADDR)
        return MNL_CB_OK;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(h);
    if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != w->index)
        return MNL_CB_OK;
    struct attrs at = {.max = IFA_MAX, .u32_types = {IFA_LOCAL, IFA_LOCAL}};
    mnl_attr_parse(h, sizeof(*ifa), attrs_cb, &at);
    if (at.tb[IFA_LOCAL] != NULL)
        w->cb(w->data, ntohl(mnl_attr_get_u32(at.tb[IFA_LOCAL])), ifa->ifa_prefixlen);
    return MNL_CB_OK;
}

int agent_nl_addr_list(struct agent_nl *nl, int index, agent_nl_addr_fn cb, void *data,
                       struct gy_error *err)
{
    char buf[256];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_GETADDR;
    h->nlmsg_flags = NLM_F_DUMP;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    struct addr_walk w = {.index = index, .cb = cb, .data = data};
    return talk(nl, h, addr_list_cb, &w, "list addresses", err);
}

static struct nlmsghdr *route_msg(char *buf, uint16_t type, uint16_t flags, uint32_t dst,
                                  int prefix_len)
{
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(h, sizeof(*rtm));
    rtm->rtm_family = AF_INET;
    rtm->rtm_dst_len = (unsigned char)prefix_len;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = AGENT_NL_ROUTE_PROTOCOL;
    rtm->rtm_scope = RT_SCOPE_UNIVERSE;
    rtm->rtm_type = RTN_UNICAST;
    mnl_attr_put_u32(h, RTA_DST, htonl(dst));
    return h;
}

int agent_nl_route_replace(struct agent_nl *nl, uint32_t dst, int prefix_len, uint32_t gateway,
                           int oif, struct gy_error *err)
{
    char buf[256], what[128], d[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN];
    struct nlmsghdr *h =
        route_msg(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, dst, prefix_len);
    uint32_t be_dst = htonl(dst), be_gw = htonl(gateway);
    if (gateway != 0) {
        mnl_attr_put_u32(h, RTA_GATEWAY, be_gw);
        snprintf(what, sizeof(what), "route %s/%d via %s",
                 inet_ntop(AF_INET, &be_dst, d, sizeof(d)), prefix_len,
                 inet_ntop(AF_INET, &be_gw, g, sizeof(g)));
    } else {
        /* Straight onto a point-to-point interface (a tunnel): a route of the link. */
        struct rtmsg *rtm = mnl_nlmsg_get_payload(h);
        rtm->rtm_scope = RT_SCOPE_LINK;
        snprintf(what, sizeof(what), "route %s/%d dev %d",
                 inet_ntop(AF_INET, &be_dst, d, sizeof(d)), prefix_len, oif);
    }
    if (oif > 0)
        mnl_attr_put_u32(h, RTA_OIF, (uint32_t)oif);
    if (oif > 0 && gateway != 0) {
        /* A gateway that is on no network of the interface: the far end of an overlay. */
        struct rtmsg *rtm = mnl_nlmsg_get_payload(h);
        rtm->rtm_flags |= RTNH_F_ONLINK;
    }
    return talk(nl, h, NULL, NULL, what, err);
}

int agent_nl_route_del(struct agent_nl *nl, uint32_t dst, int prefix_len, struct gy_error *err)
{
    char buf[256], what[96], d[INET_ADDRSTRLEN];
    struct nlmsghdr *h = route_msg(buf, RTM_DELROUTE, 0, dst, prefix_len);
    uint32_t be_dst = htonl(dst);
    snprintf(what, sizeof(what), "remove route %s/%d", inet_ntop(AF_INET, &be_dst, d, sizeof(d)),
             prefix_len);
    return talk_gone_ok(nl, h, what, err);
}

struct route_walk {
    agent_nl_route_fn cb;
    void *data;
};

static int route_list_cb(const struct nlmsghdr *h, void *data)
{
    struct route_walk *w = data;
    if (h->nlmsg_type != RTM_NEWROUTE)
        return MNL_CB_OK;
    const struct rtmsg *rtm = mnl_nlmsg_get_payload(h);
    if (rtm->rtm_family != AF_INET || rtm->rtm_table != RT_TABLE_MAIN ||
        rtm->rtm_protocol != AGENT_NL_ROUTE_PROTOCOL)
        return MNL_CB_OK;
    struct attrs at = {.max = RTA_MAX, .u32_types = {RTA_DST, RTA_GATEWAY, RTA_OIF}};
    mnl_attr_parse(h, sizeof(*rtm), attrs_cb, &at);
    uint32_t dst = at.tb[RTA_DST] != NULL ? ntohl(mnl_attr_get_u32(at.tb[RTA_DST])) : 0;
    uint32_t gw = at.tb[RTA_GATEWAY] != NULL ? ntohl(mnl_attr_get_u32(at.tb[RTA_GATEWAY])) : 0;
    int oif = at.tb[RTA_OIF] != NULL ? (int)mnl_attr_get_u32(at.tb[RTA_OIF]) : 0;
    w->cb(w->data, dst, rtm->rtm_dst_len, gw, oif);
    return MNL_CB_OK;
}

int agent_nl_route_list(struct agent_nl *nl, agent_nl_route_fn cb, void *data, struct gy_error *err)
{
    char buf[256];
    struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = RTM_GETROUTE;
    h->nlmsg_flags = NLM_F_DUMP;
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(h, sizeof(*rtm));
    rtm->rtm_family = AF_INET;
    struct route_walk w = {.cb = cb, .data = data};
    return talk(nl, h, route_list_cb, &w, "list routes", err);
}

/* NETNS_DIR as `ip netns add` leaves it: a mount point of its own with shared propagation,
 * so a namespace pinned or unpinned here is seen in mount namespaces made from this one. */
static int netns_dir_ready(struct gy_error *err)
{
    if (mkdir(NETNS_DIR, 0755) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "mkdir %s", NETNS_DIR);
    if (mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
        return 0;
    if (errno != EINVAL)
        return gy_error_sys(err, errno, "make %s shared", NETNS_DIR);
    if (mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC, NULL) < 0 ||
        mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) < 0)
        return gy_error_sys(err, errno, "make %s a shared mount point", NETNS_DIR);
    return 0;
}

struct netns_job {
    const char *path;
    int ns_fd;
    struct agent_nl inside;
    struct gy_error err;
    int rc;
};

/* On a thread of its own: unshare changes the network namespace of the calling thread
 * only, and this one ends with it, leaving the caller's as it was. */
static void *netns_thread(void *arg)
{
    struct netns_job *job = arg;
    if (unshare(CLONE_NEWNET) < 0) {
        job->rc = gy_error_sys(&job->err, errno, "new network namespace");
        return NULL;
    }
    job->ns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (job->ns_fd < 0) {
        job->rc = gy_error_sys(&job->err, errno, "open the new network namespace");
        return NULL;
    }
    if ((job->rc = agent_nl_open(&job->inside, &job->err)) < 0)
        return NULL;
    if (mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, NULL) < 0) {
        job->rc = gy_error_sys(&job->err, errno, "pin the network namespace at %s", job->path);
        return NULL;
    }
    job->rc = agent_nl_link_set(&job->inside, LOOPBACK_INDEX, true, NULL, &job->err);
    return NULL;
}

int agent_netns_create(const char *path, int *ns_fd, struct agent_nl *inside, struct gy_error *err)
{
    *ns_fd = -1;
    memset(inside, 0, sizeof(*inside));
    int rc;
    if ((rc = netns_dir_ready(err)) < 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == EEXIST ? gy_error_set(err, GY_EEXISTS, "network namespace %s exists", path)
                               : gy_error_sys(err, errno, "create %s", path);
    close(fd);
    struct netns_job job = {.path = path, .ns_fd = -1};
    pthread_t t;
    rc = pthread_create(&t, NULL, netns_thread, &job);
    if (rc != 0) {
        unlink(path);
        return gy_error_sys(err, rc, "network namespace %s: start a thread", path);
    }
    pthread_join(t, NULL);
    if (job.rc < 0) {
        if (job.ns_fd >= 0)
            close(job.ns_fd);
        agent_nl_close(&job.inside);
        agent_netns_remove(path, NULL);
        if (err != NULL)
            *err = job.err;
        return job.rc;
    }
    *ns_fd = job.ns_fd;
    *inside = job.inside;
    return 0;
}

int agent_netns_remove(const char *path, struct gy_error *err)
{
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return gy_error_sys(err, errno, "unpin the network namespace at %s", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return gy_error_sys(err, errno, "remove %s", path);
    return 0;
}
