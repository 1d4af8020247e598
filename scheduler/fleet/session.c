/* Agent sessions on every server: the listener, framing and writes, and what each frame
 * does. A follower redirects agents to the leader; the leader welcomes them (with the
 * stream's limits, derived from its node-down timeout), registers their node when it
 * changed, and takes their reports (docs/agent-protocol.md). Sessions that fall silent are
 * closed by the duties' tick (duties.c). */
#include "scheduler/fleet/fleet_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/fleet/node_health.h"
#include "scheduler/state/query_fleet.h"

/* ---------------------------------------------------------------------------------------
 * Writes */

struct write_req {
    uv_write_t req;
    uint8_t *buf;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    (void)status; /* a failed write shows up as a read error */
    free(w->buf);
    free(w);
}

void fleet_session_send(struct fleet_session *s, const Gantry__AgentFrame *f)
{
    if (s->closing)
        return;
    struct write_req *w = gy_xmalloc(sizeof(*w));
    size_t len;
    if (gy_frame_pack(&f->base, &w->buf, &len, NULL) < 0) {
        free(w);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)w->buf, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
        free(w->buf);
        free(w);
    }
}

struct fleet_session *fleet_session_of(struct sch_fleet *f, const char *node)
{
    struct sch_fleet_node *n = sch_liveness_find(&f->liveness, node);
    struct fleet_session *s = n != NULL ? n->agent : NULL;
    return s != NULL && s->welcomed && !s->closing ? s : NULL;
}

/* ---------------------------------------------------------------------------------------
 * Life cycle */

static void session_closed(uv_handle_t *h)
{
    struct fleet_session *s = h->data;
    struct sch_fleet *f = s->fleet;
    gy_frame_decoder_free(&s->decoder);
    sch_assign_sent_clear(&s->sent);
    sch_inventory_clear(&s->images);
    free(s);
    fleet_handle_gone(f);
}

void fleet_session_close(struct fleet_session *s, const char *why)
{
    if (s->closing)
        return;
    s->closing = true;
    struct sch_fleet *f = s->fleet;
    if (s->node != NULL) {
        sch_liveness_disconnect(&f->liveness, s->node, s->number, uv_now(f->loop));
        if (s->welcomed)
            gy_log_info("agent session closed", "node=%s reason=\"%s\"", s->node->name, why);
    }
    fleet_logs_end(f, s, "the replica's node disconnected");
    fleet_images_end(f, s, "the node disconnected before it answered");
    for (struct fleet_session **p = &f->sessions; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&s->tcp, session_closed);
}

/* ---------------------------------------------------------------------------------------
 * Hello */

static void registered(void *data, int status, const struct sch_result *result, const char *message)
{
    struct sch_fleet *f = data;
    (void)result;
    if (!fleet_settled(f))
        return;
    if (status < 0)
        gy_log_warn("node registration not recorded", "error=\"%s\"", message ? message : "");
    else
        fleet_network_push_all(f);
    fleet_kick(f);
}

/* Tells the agent to go to the leader (reason NULL) or, with a reason, to back off. */
static void redirect(struct fleet_session *s, const char *reason)
{
    struct sch_fleet *f = s->fleet;
    char api[256];
    uint64_t leader_id = sch_node_leader(f->node, api, sizeof(api));
    char agent[256] = "";
    if (leader_id != 0)
        sch_query_server_agent_address(&f->node->fsm, leader_id, agent, sizeof(agent));
    Gantry__Redirect r = GANTRY__REDIRECT__INIT;
    r.leader_agent_address = reason == NULL ? agent : (char *)"";
    r.reason = (char *)(reason != NULL ? reason : "not the leader");
    Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
    frame.frame_case = GANTRY__AGENT_FRAME__FRAME_REDIRECT;
    frame.redirect = &r;
    fleet_session_send(s, &frame);
    fleet_session_close(s, r.reason);
}

/* Proposes the node's registration unless the state already says what hello says. */
static void register_node(struct fleet_session *s, Gantry__NodeInfo *info)
{
    struct sch_fleet *f = s->fleet;
    if (sch_query_node_registered_as(&f->node->fsm, info))
        return;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    Gantry__RegisterNode reg = GANTRY__REGISTER_NODE__INIT;
    reg.node = info;
    cmd.time_ms = fleet_wall_ms();
    char actor[160];
    snprintf(actor, sizeof(actor), "agent:%s", s->node->name);
    cmd.actor = actor;
    cmd.cmd_case = GANTRY__COMMAND__CMD_REGISTER_NODE;
    cmd.register_node = &reg;
    struct gy_error err;
    if (fleet_propose(f, &cmd, registered, false, &err) < 0)
        gy_log_warn("cannot register node", "node=%s error=\"%s\"", s->node->name, err.msg);
}

static void health_recorded(void *data, int status, const struct sch_result *result,
                            const char *message)
{
    struct sch_fleet *f = data;
    if (!fleet_settled(f))
        return;
    /* Not recorded: the node's next heartbeat proposes it again (node_health.h). */
    if (status < 0 || (result != NULL && result->code < 0))
        gy_log_warn("node condition not recorded", "error=\"%s\"",
                    status < 0 ? (message ? message : "")
                               : (result->message ? result->message : ""));
}

/* The node's health as its agent reports it in hello and heartbeat: the node's
 * StoragePressure condition is set or cleared when the state says otherwise. */
static void node_health(struct fleet_session *s, const Gantry__NodeHealth *health)
{
    struct sch_fleet *f = s->fleet;
    if (!f->leading || s->node->session != s->number)
        return;
    Gantry__Command *cmd = sch_node_health_check(&f->liveness, &f->node->fsm, s->node, health,
                                                 uv_now(f->loop), fleet_wall_ms());
    if (cmd == NULL)
        return;
    const char *reason = cmd->set_node_condition->message;
    if (*reason == '\0')
        gy_log_info("node storage takes writes again", "node=%s", s->node->name);
    else if (strcmp(reason, SCH_NODE_HEALTH_UNREADABLE) == 0)
        gy_log_warn("node storage refuses writes; its agent's reason is not printable ASCII of at "
                    "most 512 bytes",
                    "node=%s", s->node->name);
    else
        gy_log_warn("node storage refuses writes; no new replica is placed there",
                    "node=%s reason=\"%s\"", s->node->name, reason);
    struct gy_error err;
    if (fleet_propose(f, cmd, health_recorded, false, &err) < 0)
        gy_log_warn("node condition not proposed", "node=%s error=\"%s\"", s->node->name, err.msg);
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
}

/* The images the node's agent reports: the whole inventory, in Hello and in each Heartbeat
 * that carries a change; checked here, at the boundary (inventory.h). */
static void images_report(struct fleet_session *s, const Gantry__ImageInventory *inventory)
{
    char problem[256];
    size_t dropped = sch_inventory_take(&s->images, inventory, problem, sizeof(problem));
    if (dropped > 0)
        gy_log_warn("node image inventory: entries dropped",
                    "node=%s kept=%zu dropped=%zu first=\"%s\"", s->node->name, s->images.n,
                    dropped, problem);
    gy_log_debug("node image inventory", "node=%s images=%zu", s->node->name, s->images.n);
}

static void status_report(struct fleet_session *s, const Gantry__ReplicaStatus *report)
{
    struct sch_fleet *f = s->fleet;
    if (sch_status_queue(&f->status, &f->node->fsm, s->node, s->number, report))
        fleet_kick(f);
}

static void on_hello(struct fleet_session *s, const Gantry__Hello *h)
{
    struct sch_fleet *f = s->fleet;
    if (h->node == NULL || h->node->name == NULL || h->node->name[0] == '\0') {
        fleet_session_close(s, "hello without a node name");
        return;
    }
    if (!f->leading) {
        redirect(s, NULL);
        return;
    }
    const char *cluster = f->node->cluster_id;
    if (h->cluster_id != NULL && h->cluster_id[0] != '\0' && strcmp(h->cluster_id, cluster) != 0) {
        char why[256];
        snprintf(why, sizeof(why), "agent belongs to cluster %s, this is cluster %s", h->cluster_id,
                 cluster);
        gy_log_warn("agent refused", "node=%s reason=\"%s\"", h->node->name, why);
        redirect(s, why);
        return;
    }
    if (!fleet_network_subnet_valid(h->node->subnet)) {
        char why[256];
        snprintf(why, sizeof(why),
                 "node %.64s: subnet \"%.40s\" is not an IPv4 network like 10.73.1.0/24",
                 h->node->name, h->node->subnet);
        gy_log_warn("agent refused", "node=%s reason=\"%s\"", h->node->name, why);
        redirect(s, why);
        return;
    }
    /* One session per node: a reconnecting agent replaces its old session. */
    struct fleet_session *old = fleet_session_of(f, h->node->name);
    if (old != NULL)
        fleet_session_close(old, "replaced by a new session");
    if (s->closing)
        return; /* a second hello on one session replaced the session itself */
    uint64_t now = uv_now(f->loop);
    s->node = sch_liveness_node(&f->liveness, h->node->name, now);
    s->number = sch_liveness_connect(&f->liveness, s->node, now);
    s->node->agent = s;
    s->welcomed = true;
    /* A node that names no address is reached at the one it connects from. */
    char seen[INET_ADDRSTRLEN] = "";
    char *given = h->node->address; /* put back before the frame is freed */
    if (h->node->address == NULL || h->node->address[0] == '\0') {
        struct sockaddr_storage peer;
        int len = sizeof(peer);
        if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&peer, &len) == 0 &&
            peer.ss_family == AF_INET &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, seen, sizeof(seen)) !=
                NULL)
            h->node->address = seen;
    }
    register_node(s, h->node);
    h->node->address = given;
    fleet_session_image_peer(s, h->node);

    struct sch_session_timeouts limits;
    sch_liveness_session_timeouts(f->liveness.timeout_ms, &limits);
    Gantry__Welcome w = GANTRY__WELCOME__INIT;
    w.cluster_id = (char *)cluster;
    w.server_id = f->node->cfg.id;
    w.heartbeat_interval_ms = limits.heartbeat_ms;
    w.silence_timeout_ms = limits.silence_ms;
    w.connect_timeout_ms = limits.connect_ms;
    Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
    frame.frame_case = GANTRY__AGENT_FRAME__FRAME_WELCOME;
    frame.welcome = &w;
    fleet_session_send(s, &frame);
    gy_log_info("agent session established", "node=%s replicas=%zu", s->node->name, h->n_replicas);
    for (size_t i = 0; i < h->n_replicas; i++)
        status_report(s, h->replicas[i]);
    node_health(s, h->health);
    images_report(s, h->images);
    fleet_network_push(s);
    /* The full assignment resynchronises the agent with the state. */
    sch_assign_sent_clear(&s->sent);
    struct sch_spec_cache cache = {0};
    fleet_push(s, true, &cache);
    sch_spec_cache_clear(&cache);
}

/* ---------------------------------------------------------------------------------------
 * Frames */

static void on_heartbeat(struct fleet_session *s, const Gantry__Heartbeat *heartbeat)
{
    struct sch_fleet *f = s->fleet;
    if (f->leading)
        sch_autoscaler_samples(f->autoscaler, heartbeat, uv_now(f->loop));
    node_health(s, heartbeat->health);
    /* An agent sends its inventory again only when it changed: absent means the same. */
    if (heartbeat->images != NULL)
        images_report(s, heartbeat->images);
    Gantry__AgentFrame ack = GANTRY__AGENT_FRAME__INIT;
    Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
    hb.time_ms = fleet_wall_ms();
    ack.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
    ack.heartbeat = &hb;
    fleet_session_send(s, &ack);
}

static void on_frame(struct fleet_session *s, const uint8_t *body, size_t len)
{
    struct sch_fleet *f = s->fleet;
    struct gy_error err;
    Gantry__AgentFrame *frame =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, body, len, &err);
    if (frame == NULL) {
        fleet_session_close(s, err.msg);
        return;
    }
    if (frame->frame_case == GANTRY__AGENT_FRAME__FRAME_HELLO) {
        on_hello(s, frame->hello);
    } else if (!s->welcomed) {
        fleet_session_close(s, "frame before hello");
    } else {
        if (s->node->session == s->number)
            sch_liveness_heard(&f->liveness, s->node, uv_now(f->loop));
        switch (frame->frame_case) {
        case GANTRY__AGENT_FRAME__FRAME_STATUS:
            status_report(s, frame->status);
            break;
        case GANTRY__AGENT_FRAME__FRAME_HEARTBEAT:
            on_heartbeat(s, frame->heartbeat);
            break;
        case GANTRY__AGENT_FRAME__FRAME_LOG_CHUNK:
            fleet_log_chunk(f, frame->log_chunk);
            break;
        case GANTRY__AGENT_FRAME__FRAME_METRIC_VALUE:
            sch_autoscaler_metric(f->autoscaler, frame->metric_value, uv_now(f->loop));
            break;
        case GANTRY__AGENT_FRAME__FRAME_IMAGE_RESULT:
            fleet_image_result(f, s, frame->image_result);
            break;
        case GANTRY__AGENT_FRAME__FRAME_TUNNEL_KEY:
            fleet_network_tunnel_key(s, frame->tunnel_key);
            break;
        default:
            break;
        }
    }
    protobuf_c_message_free_unpacked(&frame->base, NULL);
}

/* One read buffer for every agent session, as for the API (http_conn.c): frames are
 * decoded (and partial ones copied) before on_read returns. */
static uint8_t read_buf[64 * 1024];
static bool read_buf_taken;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    if (!read_buf_taken) {
        read_buf_taken = true;
        buf->base = (char *)read_buf;
    } else {
        buf->base = gy_xmalloc(sizeof(read_buf));
    }
    buf->len = sizeof(read_buf);
}

static void read_buf_release(const uv_buf_t *buf)
{
    if (buf->base == (char *)read_buf)
        read_buf_taken = false;
    else
        free(buf->base);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct fleet_session *s = stream->data;
    if (nread < 0) {
        read_buf_release(buf);
        fleet_session_close(s, nread == UV_EOF ? "agent closed the connection"
                                               : uv_strerror((int)nread));
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    /* A closed session reads no further: the rest of what it sent is not taken. */
    while (n > 0 && !s->closing) {
        const uint8_t *frame;
        size_t flen;
        struct gy_error err;
        long used = gy_frame_decoder_feed(&s->decoder, p, n, &frame, &flen, &err);
        if (used < 0) {
            fleet_session_close(s, err.msg);
            break;
        }
        p += used;
        n -= (size_t)used;
        if (frame != NULL)
            on_frame(s, frame, flen);
    }
    read_buf_release(buf);
}

/* ---------------------------------------------------------------------------------------
 * The listener */

static void on_connection(uv_stream_t *listener, int status)
{
    struct sch_fleet *f = listener->data;
    if (status < 0)
        return;
    struct fleet_session *s = gy_xcalloc(1, sizeof(*s));
    s->fleet = f;
    gy_frame_decoder_init(&s->decoder, GY_FRAME_MAX_DEFAULT);
    uv_tcp_init(f->loop, &s->tcp);
    s->tcp.data = s;
    f->open_handles++;
    if (uv_accept(listener, (uv_stream_t *)&s->tcp) < 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->tcp, session_closed);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->next = f->sessions;
    f->sessions = s;
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

int fleet_listen(struct sch_fleet *f, struct gy_error *err)
{
    const char *addr = f->cfg.agent_addr;
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return gy_error_set(err, GY_EINVAL, "agent address \"%s\" is not HOST:PORT", addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage sa;
    int rc = host[0] == '[' ? (host[strlen(host) - 1] = '\0',
                               uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)&sa))
                            : uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port,
                                          (struct sockaddr_in *)&sa);
    if (rc < 0 || port <= 0 || port > 65535)
        return gy_error_set(err, GY_EINVAL, "agent address \"%s\" is not HOST:PORT", addr);
    uv_tcp_init(f->loop, &f->listener);
    f->listener.data = f;
    f->listener_init = true;
    f->open_handles++;
    if ((rc = uv_tcp_bind(&f->listener, (const struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&f->listener, 512, on_connection)) < 0)
        return gy_error_set(err, rc == UV_EADDRINUSE ? GY_EEXISTS : GY_EIO,
                            "listen for agents on %s: %s%s", addr, uv_strerror(rc),
                            rc == UV_EADDRINUSE ? " (another process uses this port)" : "");
    return 0;
}
