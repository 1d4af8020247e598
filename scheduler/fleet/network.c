/* The leader's part of the network between nodes (docs/network.md): each agent is told
 * the other nodes of its cloud, with their addresses and replica subnets, and routes to
 * them directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cidr.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/fleet/fleet_internal.h"
#include "scheduler/state/query_fleet.h"

/* A node's peers in one frame; a cloud larger than this routes to its first nodes only. */
#define NETWORK_PEERS_MAX 4096

bool fleet_network_subnet_valid(const char *subnet)
{
    uint32_t addr;
    int len;
    return subnet == NULL || *subnet == '\0' || gy_cidr_parse(subnet, 8, 30, &addr, &len);
}

struct peers {
    Gantry__NetworkPeer *items;
    Gantry__NetworkPeer **ptrs;
    size_t n;
};

static void peer_add(void *data, const char *name, const char *address, const char *subnet)
{
    struct peers *p = data;
    if (p->n == NETWORK_PEERS_MAX)
        return;
    Gantry__NetworkPeer *np = &p->items[p->n];
    gantry__network_peer__init(np);
    np->node = gy_xstrdup(name);
    np->address = gy_xstrdup(address);
    np->subnet = gy_xstrdup(subnet);
    p->ptrs[p->n] = np;
    p->n++;
}

void fleet_network_push(struct fleet_session *s)
{
    struct sch_fleet *f = s->fleet;
    if (!f->leading || s->node == NULL || !s->welcomed || s->closing)
        return;
    struct peers p = {
        .items = gy_xcalloc(NETWORK_PEERS_MAX, sizeof(*p.items)),
        .ptrs = gy_xcalloc(NETWORK_PEERS_MAX, sizeof(*p.ptrs)),
    };
    struct gy_error err;
    if (sch_query_network_peers(&f->node->fsm, s->cloud, s->node->name, peer_add, &p, &err) < 0) {
        gy_log_warn("network peers not read", "node=%s error=\"%s\"", s->node->name, err.msg);
    } else {
        Gantry__NetworkPeers msg = GANTRY__NETWORK_PEERS__INIT;
        msg.peers = p.ptrs;
        msg.n_peers = p.n;
        char own[64];
        sch_query_node_subnet(&f->node->fsm, s->node->name, own, sizeof(own));
        msg.subnet = own;
        Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
        frame.frame_case = GANTRY__AGENT_FRAME__FRAME_NETWORK_PEERS;
        frame.network_peers = &msg;
        fleet_session_send(s, &frame);
        gy_log_debug("network peers pushed", "node=%s peers=%zu", s->node->name, p.n);
    }
    for (size_t i = 0; i < p.n; i++) {
        free(p.items[i].node);
        free(p.items[i].address);
        free(p.items[i].subnet);
    }
    free(p.items);
    free(p.ptrs);
}

void sch_fleet_network_changed(struct sch_fleet *f)
{
    if (f != NULL)
        fleet_network_push_all(f);
}

void fleet_network_push_all(struct sch_fleet *f)
{
    for (struct fleet_session *s = f->sessions; s != NULL; s = s->next)
        if (s->node != NULL && s->node->agent == s)
            fleet_network_push(s);
}
