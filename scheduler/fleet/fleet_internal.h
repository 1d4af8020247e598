/* What the files of the fleet share: the fleet itself, an agent session, and the calls
 * from one concern to another (session.c, push.c, logs.c, duties.c, fleet.c). Nothing
 * outside scheduler/fleet/ includes it. */
#ifndef GANTRY_SCHEDULER_FLEET_FLEET_INTERNAL_H
#define GANTRY_SCHEDULER_FLEET_FLEET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "proto/frame.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/fleet/assign.h"
#include "scheduler/fleet/autoscaler.h"
#include "scheduler/fleet/fleet.h"
#include "scheduler/fleet/inventory.h"
#include "scheduler/fleet/liveness.h"
#include "scheduler/fleet/reconcile.h"
#include "scheduler/fleet/status.h"
#include "scheduler/raft/node.h"

/* The heartbeat interval agents are told to keep. */
#define FLEET_HEARTBEAT_MS 1000

/* One agent's TCP session. */
struct fleet_session {
    struct sch_fleet *fleet;
    struct fleet_session *next;
    uv_tcp_t tcp;
    struct gy_frame_decoder decoder;
    struct sch_fleet_node *node; /* set by its hello */
    uint64_t number;             /* its number for the node (sch_liveness_connect) */
    bool welcomed;
    bool closing;
    struct sch_assign_sent sent; /* what it was told to run and stop */
    /* From its hello (push.c): its cloud, and its agent's layer server ("" for none). */
    char cloud[64];
    char blob_address[256];
    /* The images its agent reported last (Hello, then Heartbeats that carry a change). */
    struct sch_inventory images;
};

struct fleet_log;
struct fleet_image_request;

struct sch_fleet {
    uv_loop_t *loop;
    struct sch_node *node;
    struct sch_fleet_config cfg;
    uv_tcp_t listener;
    bool listener_init;
    uv_timer_t tick;
    uv_timer_t kick;
    struct fleet_session *sessions;
    struct sch_liveness liveness;
    bool stop_leading; /* the server is stopping */
    bool leading;
    bool caught_up; /* a barrier of this term has applied: the state is complete */
    bool barrier_inflight;
    bool dirty_reconcile;  /* a pass over every workload is due */
    uint64_t pushed_epoch; /* fsm.fleet_epoch at the last look for changed nodes */
    /* Nodes whose assignment is due, pushed a slice per pass of the duties, so that a
     * placement over thousands of nodes does not hold the loop. */
    struct sch_push_queue push;
    bool reconcile_inflight;
    /* A large placement goes to Raft in slices of FLEET_PLACE_SLICE replicas, one committed
     * before the next is proposed: each slice's apply is short on every server, so no loop
     * stops answering Raft for long. The plan's placements are kept until then. */
    struct sch_reconcile_plan plan;
    Gantry__PlaceReplicas *place;
    size_t place_next;
    size_t place_total;
    int place_inflight; /* proposals of the plan not settled yet */
    bool place_failed;  /* one of them failed: the rest is planned again */
    bool status_inflight;
    bool liveness_inflight;
    struct sch_status_batch status; /* reports waiting for the next proposal */
    struct fleet_log *logs;
    uint64_t next_log_id;
    struct fleet_image_request *image_requests; /* pulls and removals waiting for agents */
    uint64_t next_image_id;
    struct sch_autoscaler *autoscaler; /* usage windows and scale decisions */
    uint64_t autoscaled_at;            /* loop time of the last evaluation */
    bool autoscale_inflight;
    uint64_t drain_checked_at; /* loop time of the last look for drained nodes */
    uint64_t reconcile_passes;
    uint64_t reconciled_at;    /* loop time of the last pass */
    uint64_t trimmed_at;       /* loop time of the last heap trim */
    uint64_t restopped_at;     /* loop time of the last look for stale stops */
    struct sch_idset stopping; /* replicas stopping at that look */
    uint64_t room_seen;        /* fsm.room_epoch when waiting workloads were last retried */
    uint64_t rng;
    bool closing;
    int open_handles;
    int inflight; /* proposals and barriers whose callbacks have not run yet */
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* fleet.c: the wall clock, in ms. Commands are stamped with it, as a record for people
 * (events, the changed times the API shows); no decision of the fleet reads it. */
uint64_t fleet_wall_ms(void);
/* fleet.c: proposes a command whose callback takes the fleet as data; counted so that the
 * fleet outlives it. lazy for the reconciler's plans, which share the next entry of a
 * client's write (see sch_node_propose_lazy). */
int fleet_propose(struct sch_fleet *fleet, const Gantry__Command *cmd, sch_propose_cb cb, bool lazy,
                  struct gy_error *err);
/* fleet.c: called first by every proposal or barrier callback: false when the fleet is
 * closing (and freed if this was the last thing it waited for). */
bool fleet_settled(struct sch_fleet *fleet);
/* fleet.c: one of the fleet's handles has closed. */
void fleet_handle_gone(struct sch_fleet *fleet);

/* session.c: listens on cfg.agent_addr. */
int fleet_listen(struct sch_fleet *fleet, struct gy_error *err);
/* session.c: sends one frame (dropped when the session is closing). */
void fleet_session_send(struct fleet_session *s, const Gantry__AgentFrame *frame);
void fleet_session_close(struct fleet_session *s, const char *why);
/* session.c: the welcomed, open session of a node, or NULL. */
struct fleet_session *fleet_session_of(struct sch_fleet *fleet, const char *node);

/* The most image peers an AssignedReplica names. */
#define FLEET_IMAGE_PEERS_MAX 16
/* The nodes of s's cloud with a layer server whose agents the leader hears now (the
 * target's own among them: its agent skips itself), by name, at most
 * FLEET_IMAGE_PEERS_MAX (push.c). The entries point into the sessions; the caller frees
 * each entry and the array. */
size_t fleet_image_peers(struct fleet_session *s, Gantry__ImagePeer ***peers);

/* push.c: keeps the cloud and the layer server address of the node's hello; an address
 * that is not HOST:PORT of at most 255 characters is dropped with a warning. */
void fleet_session_image_peer(struct fleet_session *s, const Gantry__NodeInfo *info);

/* network.c: sends the session's agent the other nodes of its cloud to route to (after
 * its welcome), or every agent theirs (after a node's registration changed what they
 * are). */
void fleet_network_push(struct fleet_session *s);
void fleet_network_push_all(struct sch_fleet *f);
/* An agent's new tunnel key (TunnelKey frame): recorded for the session's node. */
void fleet_network_tunnel_key(struct fleet_session *s, const Gantry__TunnelKey *key);
/* True for "" (no subnet) or an IPv4 CIDR with host bits zero and a prefix of 8 to 30. */
bool fleet_network_subnet_valid(const char *subnet);
/* push.c: sends the session its assignment (full: the first one of a session), each
 * replica to start with the nodes of the session's cloud that serve layers. */
void fleet_push(struct fleet_session *s, bool full, struct sch_spec_cache *cache);
/* push.c: queues the nodes that may have a new assignment after the applied commands. */
void fleet_push_changed(struct sch_fleet *fleet);
/* push.c: queues the nodes of replicas stopping since the previous call (made
 * SCH_ASSIGN_RESTOP_MS of loop time earlier), to send their stops again. */
void fleet_restop(struct sch_fleet *fleet);
/* push.c: pushes queued assignments for a slice of loop time, then asks for another pass
 * when some are left. */
void fleet_push_some(struct sch_fleet *fleet);

/* logs.c: relays a chunk of an agent's answer. */
void fleet_log_chunk(struct sch_fleet *fleet, const Gantry__LogChunk *chunk);
/* logs.c: ends the relays served by session s (or every relay when s is NULL). */
void fleet_logs_end(struct sch_fleet *fleet, struct fleet_session *s, const char *why);

/* images.c: takes an agent's answer to an image request. */
void fleet_image_result(struct sch_fleet *fleet, struct fleet_session *s,
                        const Gantry__ImageResult *result);
/* images.c: ends the image requests waiting for session s (every request when s is NULL)
 * with the error why for the nodes that have not answered. */
void fleet_images_end(struct sch_fleet *fleet, struct fleet_session *s, const char *why);
/* images.c: ImageLocality's input for reconcile (sch_image_bytes_fn; data is the fleet). */
void fleet_image_bytes(void *data, const struct gy_spec *spec, const char *const *nodes, size_t n,
                       int64_t *bytes);

/* duties.c: runs the leader's duties soon. */
void fleet_kick(struct sch_fleet *fleet);
/* duties.c: the timer callback of the duties' regular pass. */
void fleet_on_tick(uv_timer_t *tick);
/* duties.c: forgets the plan being committed. */
void fleet_plan_release(struct sch_fleet *fleet);

#endif
