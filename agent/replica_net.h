/* The network of each replica, through CNI (cni.h): a named network namespace
 * /run/netns/<prefix><replica id> attached to the node's CNI network. The namespace
 * outlives restarts of the replica's container and of the agent, so the replica keeps its
 * address; it goes with the replica, with CNI DEL.
 *
 * Attaching costs a few plugin processes (tens of milliseconds of CPU each on a small
 * machine), so the agent keeps a few attachments ready, a warm pool, made while nothing
 * starts: a replica that publishes no port takes one, its namespace renamed to the
 * replica's, and gives it back when it is removed; the pool is refilled later. Each replica's
 * attachment id (the CNI container id: the replica id, or the pool id it took) is kept in a file of
 * its own, so DEL after a restart of the agent names what ADD named.
 *
 * The attach, detach and fill calls run plugins and wait for them: call them on a worker
 * thread. They are safe to call from several threads at once. */
#ifndef GANTRY_AGENT_REPLICA_NET_H
#define GANTRY_AGENT_REPLICA_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/cni.h"
#include "common/error.h"

struct agent_rnet;

struct agent_rnet_config {
    const char *data_dir;  /* <data_dir>/cni keeps the list, cache, leases and ownership */
    const char *ns_prefix; /* namespaces are /run/netns/<prefix><replica id> */
    const char *bridge;    /* the default list's bridge */
    const char *conf;      /* an operator's conflist, or NULL for the default one */
    const char *bin_dirs;  /* plugin directories, ':'-separated */
    size_t pool;           /* attachments kept ready; 0 = none */
};

/* With an operator's list, the network is ready at once; with the default one, once the
 * node's subnet is known (agent_rnet_subnet). */
int agent_rnet_open(struct agent_rnet **out, const struct agent_rnet_config *cfg,
                    struct gy_error *err);
void agent_rnet_close(struct agent_rnet *rn);

/* The default list for the node's subnet (ignored with an operator's list): written and
 * opened. A pool made for another subnet is emptied. */
int agent_rnet_subnet(struct agent_rnet *rn, const char *subnet, struct gy_error *err);
bool agent_rnet_ready(struct agent_rnet *rn);
/* Whether the list is the operator's (the agent then leaves bridges and routes to it). */
bool agent_rnet_custom(const struct agent_rnet *rn);

/* Attaches replica id (if its namespace and attachment exist already, as after a restart
 * of its container, they are kept): writes the namespace path to netns and the address to
 * *addr. Replicas with ports get an attachment of their own; others take one from the
 * pool when there is one. */
int agent_rnet_attach(struct agent_rnet *rn, const char *id, const struct agent_cni_args *args,
                      char *netns, size_t len, uint32_t *addr, struct gy_error *err);

/* Detaches replica id and removes its namespace. Absent is not an error. With reuse (the
 * replica's processes are all gone), an attachment it took from the pool goes back to the
 * pool instead while the pool holds fewer than twice its size: a replica holds no capability that
 * could change its namespace (CAP_NET_ADMIN), so what it leaves is the namespace the pool made. */
int agent_rnet_detach(struct agent_rnet *rn, const char *id, bool reuse, struct gy_error *err);

/* CNI CHECK of replica id's attachment (lists of version 0.4.0 and later): whether its
 * network is still what ADD made. */
int agent_rnet_check(struct agent_rnet *rn, const char *id, struct gy_error *err);

/* The address of replica id's attachment, from the cache. */
int agent_rnet_address(struct agent_rnet *rn, const char *id, uint32_t *addr, struct gy_error *err);

/* Attachments the pool lacks. */
size_t agent_rnet_pool_missing(struct agent_rnet *rn);
/* Adds one attachment to the pool. */
int agent_rnet_pool_fill_one(struct agent_rnet *rn, struct gy_error *err);

/* At start: detaches every attachment that belongs neither to one of the replicas
 * live[0..n) nor to the pool, removes namespaces of the prefix that nothing owns, and runs
 * CNI GC where the list's version has it. *removed counts what went. */
int agent_rnet_collect(struct agent_rnet *rn, const char *const *live, size_t n, size_t *removed,
                       struct gy_error *err);

#endif
