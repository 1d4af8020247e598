/* The node's images as the daemon handles them on its loop (docs/agent-protocol.md,
 * "Images"): the inventory it reports to the leader, built again on the thread pool
 * whenever the stores change (a pull, load, import, removal or collection, by the daemon
 * or by another process), and the leader's requests to pull or remove an image, run on
 * the thread pool and answered with ImageResult. */
#ifndef GANTRY_AGENT_NODE_IMAGES_H
#define GANTRY_AGENT_NODE_IMAGES_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "agent/image_ops.h"
#include "agent/pull.h"
#include "agent/state.h"
#include "common/error.h"
#include "proto/gantry.pb-c.h"

struct agent_node_images;

struct agent_node_images_config {
    uv_loop_t *loop;
    struct agent_puller *puller; /* the daemon's; outlives this */
    const char *data_dir;
    const char *node;       /* this node's name, for messages */
    struct agent_state *db; /* keeps what pulls resolved references to ("image_resolved") */
    /* The replica of this node that runs from target, or NULL (the name is borrowed). */
    const char *(*in_use)(void *arg, const struct agent_image_target *target);
    /* Sends a frame to the leader; does nothing without a session. */
    void (*send)(void *arg, const Gantry__AgentFrame *frame);
    /* The nodes of this cloud whose layer servers a pull may ask, for a request that names
     * none: a copy in *peers (the caller frees it), and their number; NULL: none. */
    size_t (*peers)(void *arg, struct agent_image_peer **peers);
    void *arg;
};

/* Starts with the inventory of the stores as they are (built at once, on the caller's
 * thread, for the first Hello). Free with agent_node_images_free once the loop has run
 * dry. */
struct agent_node_images *agent_node_images_new(const struct agent_node_images_config *cfg);
void agent_node_images_free(struct agent_node_images *ni);

/* The stores changed (or may have): the inventory is built again. */
void agent_node_images_changed(struct agent_node_images *ni);
/* Looks whether another process changed the stores (agent_inventory_fingerprint); called
 * with every heartbeat. */
void agent_node_images_check(struct agent_node_images *ni);

/* The inventory to report, borrowed until the next call: for a Hello the whole of it
 * (hello true), for a Heartbeat only when it changed since the last one reported, else
 * NULL. It counts as reported once returned. */
Gantry__ImageInventory *agent_node_images_report(struct agent_node_images *ni, bool hello);

/* A session with the leader began: answers to requests of earlier sessions are dropped
 * (their request ids mean nothing to this one). */
void agent_node_images_welcomed(struct agent_node_images *ni);

/* Handles the leader's ImageRequest: "pull" (with the layers unpacked, as a replica's
 * start would) or "rm" (refused with "image REF is in use by replica ID" while a replica
 * runs from it, "image REF not found on node NODE" when absent). */
void agent_node_images_request(struct agent_node_images *ni, const Gantry__ImageRequest *req);

/* The daemon is stopping: no new build or request starts. */
void agent_node_images_stop(struct agent_node_images *ni);

#endif
