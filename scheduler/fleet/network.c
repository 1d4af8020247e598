/* The leader's part of the network between nodes (docs/network.md): each agent is told
 * the other nodes of its cloud, with their addresses and replica subnets, and routes to
 * them directly; and the nodes of other clouds that have a tunnel key, which it reaches
 * through WireGuard. */
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

static void peer_add(void *data, const struct sch_network_peer *peer)
{
    struct peers *p = data;
    if (p->n == NETWORK_PEERS_MAX)
        return;
    Gantry__NetworkPeer *np = &p->items[p->n];
    gantry__network_peer__init(np);
    np->node = gy_xstrdup(peer->name);
    np->address = gy_xstrdup(peer->address);
    np->subnet = gy_xstrdup(peer->subnet);
    np->cloud = gy_xstrdup(peer->cloud);
    np->tunnel_key = gy_xstrdup(peer->tunnel_key);
    np->tunnel_port = peer->tunnel_port;
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
        free(p.items[i].cloud);
        free(p.items[i].tunnel_key);
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

int sch_fleet_rotate_tunnel_key(struct sch_fleet *f, const char *node, struct gy_error *err)
{
    if (f == NULL || !f->leading || !f->caught_up)
        return gy_error_set(err, GY_EUNAVAILABLE, "the leader is starting; retry shortly");
    if (!sch_query_node_exists(&f->node->fsm, node))
        return gy_error_set(err, GY_ENOTFOUND, "node \"%s\" not found", node);
    struct fleet_session *s = fleet_session_of(f, node);
    if (s == NULL || !s->welcomed || s->closing)
        return gy_error_set(err, GY_EUNAVAILABLE,
                            "node %s is not connected: its agent makes the new key", node);
    Gantry__RotateTunnelKey msg = GANTRY__ROTATE_TUNNEL_KEY__INIT;
    Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
    frame.frame_case = GANTRY__AGENT_FRAME__FRAME_ROTATE_TUNNEL_KEY;
    frame.rotate_tunnel_key = &msg;
    fleet_session_send(s, &frame);
    gy_log_info("tunnel key rotation asked", "node=%s", node);
    return 0;
}

static void tunnel_recorded(void *data, int status, const struct sch_result *result,
                            const char *message)
{
    struct sch_fleet *f = data;
    if (!fleet_settled(f))
        return;
    if (status < 0 || (result != NULL && result->code < 0))
        gy_log_warn("tunnel key not recorded", "error=\"%s\"",
                    status < 0 ? (message ? message : "")
                               : (result->message ? result->message : ""));
    else
        fleet_network_push_all(f);
}

void fleet_network_tunnel_key(struct fleet_session *s, const Gantry__TunnelKey *key)
{
    struct sch_fleet *f = s->fleet;
    /* Checked at the boundary; the state machine checks again. A node only ever sets its
     * own key: the session's node, never a name from the frame. */
    if (!gy_tunnel_key_valid(key->public_key) || key->port == 0 || key->port > 65535) {
        gy_log_warn("tunnel key refused: not a WireGuard key and a UDP port", "node=%s",
                    s->node->name);
        return;
    }
    Gantry__SetNodeTunnel set = GANTRY__SET_NODE_TUNNEL__INIT;
    set.name = s->node->name;
    set.public_key = key->public_key;
    set.port = key->port;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.time_ms = fleet_wall_ms();
    char actor[160];
    snprintf(actor, sizeof(actor), "agent:%s", s->node->name);
    cmd.actor = actor;
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_TUNNEL;
    cmd.set_node_tunnel = &set;
    struct gy_error err;
    if (fleet_propose(f, &cmd, tunnel_recorded, false, &err) < 0)
        gy_log_warn("cannot record the tunnel key", "node=%s error=\"%s\"", s->node->name, err.msg);
}
