/* Assignments on their way to the agents: the difference for a session (assign.h) sent as
 * an Assignment frame, with the nodes of the target's cloud whose layer servers its pulls
 * may ask (docs/images.md, "Peers"), and the queue of nodes due one, pushed in slices. */
#include "scheduler/fleet/fleet_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"

/* ---------------------------------------------------------------------------------------
 * Image peers */

/* True for HOST:PORT: HOST an IPv4 address or DNS name ([A-Za-z0-9.-], no empty label) or
 * a bracketed IPv6 address, PORT 1 to 65535. */
static bool blob_address_valid(const char *s, size_t len)
{
    const char *colon = memrchr(s, ':', len);
    if (colon == NULL || colon == s || colon + 1 == s + len || s + len - colon - 1 > 5 ||
        colon[1] == '0')
        return false;
    long port = 0;
    for (const char *c = colon + 1; c < s + len; c++) {
        if (*c < '0' || *c > '9')
            return false;
        port = port * 10 + (*c - '0');
    }
    if (port > 65535)
        return false;
    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 4)
            return false;
        for (const char *c = s + 1; c < colon - 1; c++)
            if (strchr("0123456789abcdefABCDEF:.", *c) == NULL)
                return false;
        return true;
    }
    for (const char *c = s; c < colon; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' ||
                  (*c == '.' && c != s && c[-1] != '.' && c + 1 != colon);
        if (!ok)
            return false;
    }
    return s[0] != '-';
}

void fleet_session_image_peer(struct fleet_session *s, const Gantry__NodeInfo *info)
{
    s->cloud[0] = s->blob_address[0] = '\0';
    const char *cloud = info->cloud != NULL ? info->cloud : "";
    const char *addr = info->blob_address != NULL ? info->blob_address : "";
    size_t len = strlen(addr);
    if (strlen(cloud) < sizeof(s->cloud))
        memcpy(s->cloud, cloud, strlen(cloud) + 1);
    if (len == 0)
        return;
    if (len >= sizeof(s->blob_address) || !blob_address_valid(addr, len)) {
        gy_log_warn("node's layer server address dropped: not HOST:PORT of at most 255 "
                    "characters; its peers do not ask it for layers",
                    "node=%s blob_address=\"%.80s\"", s->node->name, addr);
        return;
    }
    memcpy(s->blob_address, addr, len + 1);
}

static int peer_by_node(const void *a, const void *b)
{
    const Gantry__ImagePeer *pa = *(Gantry__ImagePeer *const *)a;
    const Gantry__ImagePeer *pb = *(Gantry__ImagePeer *const *)b;
    return strcmp(pa->node, pb->node);
}

/* The nodes of s's cloud with a layer server whose agents the leader hears now (their
 * current session is open, the target's own among them: its agent skips itself), by
 * name, at most FLEET_IMAGE_PEERS_MAX. *peers and its entries point into the sessions;
 * the caller frees the two arrays only. */
size_t fleet_image_peers(struct fleet_session *s, Gantry__ImagePeer ***peers)
{
    struct sch_fleet *f = s->fleet;
    size_t n = 0, cap = 0;
    Gantry__ImagePeer **all = NULL;
    *peers = NULL;
    if (s->cloud[0] == '\0')
        return 0;
    for (struct fleet_session *o = f->sessions; o != NULL; o = o->next) {
        if (!o->welcomed || o->closing || o->node == NULL || o->node->session != o->number ||
            o->blob_address[0] == '\0' || strcmp(o->cloud, s->cloud) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            all = gy_xrealloc(all, cap * sizeof(*all));
        }
        Gantry__ImagePeer *p = gy_xmalloc(sizeof(*p));
        gantry__image_peer__init(p);
        p->node = o->node->name;
        p->address = o->blob_address;
        all[n++] = p;
    }
    if (n == 0)
        return 0;
    qsort(all, n, sizeof(*all), peer_by_node);
    for (size_t i = FLEET_IMAGE_PEERS_MAX; i < n; i++)
        free(all[i]);
    *peers = all;
    return n < FLEET_IMAGE_PEERS_MAX ? n : FLEET_IMAGE_PEERS_MAX;
}

/* ---------------------------------------------------------------------------------------
 * Pushes */

void fleet_push(struct fleet_session *s, bool full, struct sch_spec_cache *cache)
{
    struct sch_fleet *f = s->fleet;
    struct sch_assignment as;
    struct gy_error err;
    int rc = sch_assign_diff(&f->node->fsm, s->node->name, full, &s->sent, cache, &as, &err);
    if (rc < 0) {
        gy_log_warn("assignment not pushed", "node=%s error=\"%s\"", s->node->name, err.msg);
        return;
    }
    Gantry__ImagePeer **peers = NULL;
    size_t n_peers = 0;
    if (rc > 0) {
        /* One list for the node, shared by its replicas' entries. */
        if (as.msg.n_start > 0)
            n_peers = fleet_image_peers(s, &peers);
        for (size_t i = 0; i < as.msg.n_start; i++) {
            as.msg.start[i]->image_peers = peers;
            as.msg.start[i]->n_image_peers = n_peers;
        }
        Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
        frame.frame_case = GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT;
        frame.assignment = &as.msg;
        fleet_session_send(s, &frame);
        gy_log_debug("assignment pushed", "node=%s start=%zu stop=%zu image_peers=%zu",
                     s->node->name, as.msg.n_start, as.msg.n_stop, n_peers);
        for (size_t i = 0; i < as.msg.n_start; i++) {
            as.msg.start[i]->image_peers = NULL;
            as.msg.start[i]->n_image_peers = 0;
        }
    }
    for (size_t i = 0; i < n_peers; i++)
        free(peers[i]);
    free(peers);
    sch_assignment_free(&as);
}

static bool connected(void *data, const char *node)
{
    return fleet_session_of(data, node) != NULL;
}

void fleet_push_changed(struct sch_fleet *f)
{
    struct gy_error err;
    if (sch_push_queue_changed(&f->push, &f->node->fsm, connected, f, &err) < 0)
        gy_log_warn("assignments not pushed", "error=\"%s\"", err.msg);
}

/* A stop sent long ago of a replica still stopping: forgotten, so that the node's next
 * push sends it again. */
static void stale_stop(void *data, const char *id, const char *node)
{
    struct sch_fleet *f = data;
    struct fleet_session *s = fleet_session_of(f, node);
    if (s != NULL && sch_assign_sent_forget_stop(&s->sent, id))
        sch_push_queue_add(&f->push, node);
}

void fleet_restop(struct sch_fleet *f)
{
    struct gy_error err;
    if (sch_assign_stale_stops(&f->node->fsm, &f->stopping, stale_stop, f, &err) < 0)
        gy_log_warn("stops not sent again", "error=\"%s\"", err.msg);
}

/* Loop time one call of fleet_push_some may take: Raft's heartbeats and the agents' frames
 * are served in between. */
#define PUSH_SLICE_NS (20 * 1000000ULL)

void fleet_push_some(struct sch_fleet *f)
{
    if (f->push.pos == f->push.n)
        return;
    uint64_t start = uv_hrtime();
    struct sch_spec_cache cache = {0};
    const char *node;
    while (uv_hrtime() - start < PUSH_SLICE_NS && (node = sch_push_queue_next(&f->push)) != NULL) {
        struct fleet_session *s = fleet_session_of(f, node);
        if (s != NULL)
            fleet_push(s, false, &cache);
    }
    sch_spec_cache_clear(&cache);
    if (f->push.pos == f->push.n)
        sch_push_queue_clear(&f->push);
    else
        fleet_kick(f);
}
