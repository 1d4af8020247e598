/* The node's images on the daemon's loop; see node_images.h. */
#include "agent/node_images.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/inventory.h"
#include "common/log.h"
#include "common/xalloc.h"

/* The agent.db key of the digests pulls resolved references to: a JSON object
 * {NAME: {"manifest": DIGEST, "resolved": DIGEST}}. The store records the manifest alone,
 * and the leader matches a workload's pinned digest (often an index) against either. */
#define RESOLVED_KEY "image_resolved"

struct agent_node_images {
    struct agent_node_images_config cfg;
    Gantry__ImageInventory *inventory; /* the last built; NULL when none could be */
    uint64_t generation;               /* bumped whenever the stores change */
    uint64_t built;                    /* the generation the inventory is of */
    uint64_t version;                  /* bumped when a build differs from the one before */
    uint64_t reported;                 /* the version last reported */
    bool reported_any;
    bool building;
    bool stopping;
    uint64_t fingerprint; /* agent_inventory_fingerprint at the last look */
    uint64_t session;     /* sessions welcomed so far */
    json_t *resolved;
};

/* ---------------------------------------------------------------------------------------
 * What pulls resolved references to */

static void resolved_load(struct agent_node_images *ni)
{
    char *text = NULL;
    if (ni->cfg.db != NULL)
        agent_state_meta_get(ni->cfg.db, RESOLVED_KEY, &text, NULL);
    ni->resolved = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(ni->resolved)) {
        json_decref(ni->resolved);
        ni->resolved = json_object();
    }
}

static void resolved_save(struct agent_node_images *ni)
{
    if (ni->cfg.db == NULL)
        return;
    char *text = json_dumps(ni->resolved, JSON_COMPACT);
    struct gy_error err;
    if (text != NULL && agent_state_meta_set(ni->cfg.db, RESOLVED_KEY, text, &err) < 0)
        gy_log_warn("cannot record what an image reference resolved to", "error=\"%s\"", err.msg);
    free(text);
}

static void resolved_note(struct agent_node_images *ni, const struct agent_pull_result *res)
{
    if (res->resolved[0] == '\0' || res->manifest_digest[0] == '\0')
        return;
    json_t *have = json_object_get(ni->resolved, res->name);
    const char *m = json_string_value(json_object_get(have, "manifest"));
    const char *r = json_string_value(json_object_get(have, "resolved"));
    if (m != NULL && r != NULL && strcmp(m, res->manifest_digest) == 0 &&
        strcmp(r, res->resolved) == 0)
        return;
    json_object_set_new(
        ni->resolved, res->name,
        json_pack("{s:s,s:s}", "manifest", res->manifest_digest, "resolved", res->resolved));
    resolved_save(ni);
}

/* Forgets the names the store no longer holds, so that the record stays as small as the
 * store. */
static void resolved_prune(struct agent_node_images *ni)
{
    const Gantry__ImageInventory *inv = ni->inventory;
    bool changed = false;
    const char *name;
    json_t *value, *tmp;
    json_object_foreach_safe(ni->resolved, tmp, name, value)
    {
        bool held = false;
        for (size_t i = 0; inv != NULL && i < inv->n_images && !held; i++)
            held = strcmp(inv->images[i]->name, name) == 0;
        if (!held) {
            json_object_del(ni->resolved, name);
            changed = true;
        }
    }
    if (changed)
        resolved_save(ni);
}

static struct agent_inventory_resolved *resolved_copy(struct agent_node_images *ni, size_t *n)
{
    *n = json_object_size(ni->resolved);
    struct agent_inventory_resolved *out = gy_xcalloc(*n ? *n : 1, sizeof(*out));
    size_t k = 0;
    const char *name;
    json_t *value;
    json_object_foreach(ni->resolved, name, value)
    {
        const char *m = json_string_value(json_object_get(value, "manifest"));
        const char *r = json_string_value(json_object_get(value, "resolved"));
        if (m == NULL || r == NULL || strlen(name) >= sizeof(out[k].name))
            continue;
        snprintf(out[k].name, sizeof(out[k].name), "%s", name);
        snprintf(out[k].manifest, sizeof(out[k].manifest), "%s", m);
        snprintf(out[k].resolved, sizeof(out[k].resolved), "%s", r);
        k++;
    }
    *n = k;
    return out;
}

/* ---------------------------------------------------------------------------------------
 * The inventory */

struct build_job {
    uv_work_t req;
    struct agent_node_images *ni;
    uint64_t generation;
    struct agent_inventory_resolved *resolved;
    size_t n_resolved;
    Gantry__ImageInventory *inventory;
    int rc;
    struct gy_error err;
};

static void build_work(uv_work_t *req)
{
    struct build_job *job = req->data;
    struct agent_node_images *ni = job->ni;
    job->rc = agent_inventory_build(ni->cfg.puller->store, ni->cfg.data_dir, job->resolved,
                                    job->n_resolved, &job->inventory, &job->err);
}

static void refresh(struct agent_node_images *ni);

/* True when both inventories say the same (NULL is none). */
static bool inventory_same(const Gantry__ImageInventory *a, const Gantry__ImageInventory *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    size_t la = gantry__image_inventory__get_packed_size(a);
    size_t lb = gantry__image_inventory__get_packed_size(b);
    if (la != lb)
        return false;
    uint8_t *pa = gy_xmalloc(la ? la : 1), *pb = gy_xmalloc(lb ? lb : 1);
    gantry__image_inventory__pack(a, pa);
    gantry__image_inventory__pack(b, pb);
    bool same = memcmp(pa, pb, la) == 0;
    free(pa);
    free(pb);
    return same;
}

static void build_done(uv_work_t *req, int status)
{
    struct build_job *job = req->data;
    struct agent_node_images *ni = job->ni;
    (void)status; /* builds are never cancelled */
    ni->building = false;
    /* A failed build keeps the previous inventory until the stores change again. */
    ni->built = job->generation;
    if (job->rc == 0 && inventory_same(ni->inventory, job->inventory)) {
        /* Starting a replica marks its image used, which the stores' fingerprint sees:
         * the leader hears of the inventory again only when what it says changed. */
        agent_inventory_free(job->inventory);
    } else if (job->rc == 0) {
        agent_inventory_free(ni->inventory);
        ni->inventory = job->inventory;
        ni->version++;
        resolved_prune(ni);
        gy_log_debug("image inventory", "images=%zu", ni->inventory->n_images);
    } else {
        gy_log_warn("cannot read the node's images; the leader keeps the previous list",
                    "error=\"%s\"", job->err.msg);
    }
    free(job->resolved);
    free(job);
    refresh(ni);
}

/* Builds the inventory again when the stores changed since the last build. */
static void refresh(struct agent_node_images *ni)
{
    if (ni->building || ni->stopping || ni->built == ni->generation)
        return;
    struct build_job *job = gy_xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->ni = ni;
    job->generation = ni->generation;
    job->resolved = resolved_copy(ni, &job->n_resolved);
    if (uv_queue_work(ni->cfg.loop, &job->req, build_work, build_done) < 0) {
        free(job->resolved);
        free(job);
        return;
    }
    ni->building = true;
}

struct agent_node_images *agent_node_images_new(const struct agent_node_images_config *cfg)
{
    struct agent_node_images *ni = gy_xcalloc(1, sizeof(*ni));
    ni->cfg = *cfg;
    resolved_load(ni);
    ni->fingerprint = agent_inventory_fingerprint(cfg->data_dir);
    ni->generation = ni->built = 1;
    size_t n;
    struct agent_inventory_resolved *resolved = resolved_copy(ni, &n);
    struct gy_error err;
    if (agent_inventory_build(cfg->puller->store, cfg->data_dir, resolved, n, &ni->inventory,
                              &err) < 0)
        gy_log_warn("cannot read the node's images; none are reported until they can be",
                    "error=\"%s\"", err.msg);
    else
        resolved_prune(ni);
    free(resolved);
    return ni;
}

void agent_node_images_free(struct agent_node_images *ni)
{
    if (ni == NULL)
        return;
    agent_inventory_free(ni->inventory);
    json_decref(ni->resolved);
    free(ni);
}

void agent_node_images_changed(struct agent_node_images *ni)
{
    ni->generation++;
    refresh(ni);
}

void agent_node_images_check(struct agent_node_images *ni)
{
    uint64_t fp = agent_inventory_fingerprint(ni->cfg.data_dir);
    if (fp == ni->fingerprint)
        return;
    ni->fingerprint = fp;
    agent_node_images_changed(ni);
}

Gantry__ImageInventory *agent_node_images_report(struct agent_node_images *ni, bool hello)
{
    if (ni->inventory == NULL || (!hello && ni->reported_any && ni->reported == ni->version))
        return NULL;
    ni->reported = ni->version;
    ni->reported_any = true;
    return ni->inventory;
}

void agent_node_images_welcomed(struct agent_node_images *ni)
{
    ni->session++;
}

void agent_node_images_stop(struct agent_node_images *ni)
{
    ni->stopping = true;
}

/* ---------------------------------------------------------------------------------------
 * The leader's requests */

struct request_job {
    uv_work_t req;
    struct agent_node_images *ni;
    uint64_t request_id;
    uint64_t session; /* the session that asked: the answer goes to it alone */
    bool pull;
    char ref[GY_IMAGE_REF_MAX + 32];
    struct agent_image_target target; /* rm */
    struct agent_image_peer *peers;   /* pull: the nodes of this cloud to ask first */
    size_t n_peers;
    struct agent_pull_result pulled;
    Gantry__NodeImage *image;
    int rc;
    struct gy_error err;
};

static void answer(struct agent_node_images *ni, uint64_t request_id, const char *error,
                   Gantry__NodeImage *image, const struct agent_pull_result *pulled)
{
    Gantry__ImageResult res = GANTRY__IMAGE_RESULT__INIT;
    res.request_id = request_id;
    res.error = (char *)(error != NULL ? error : "");
    res.image = image;
    if (pulled != NULL) {
        res.bytes_registry = pulled->bytes_fetched;
        res.bytes_peers = pulled->bytes_peers;
    }
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_IMAGE_RESULT;
    f.image_result = &res;
    ni->cfg.send(ni->cfg.arg, &f);
}

static void request_work(uv_work_t *req)
{
    struct request_job *job = req->data;
    struct agent_node_images *ni = job->ni;
    if (!job->pull) {
        job->rc =
            agent_image_target_remove(ni->cfg.puller, ni->cfg.data_dir, &job->target, &job->err);
        return;
    }
    struct agent_pull_options opts = {
        .peers = job->peers, .n_peers = job->n_peers, .self = ni->cfg.node};
    job->rc = agent_image_pull_unpack(ni->cfg.puller, job->ref, &opts, &job->pulled, &job->err);
    if (job->rc == 0) {
        job->image = agent_inventory_image(ni->cfg.puller->store, job->pulled.name,
                                           job->pulled.resolved, &job->err);
        if (job->image == NULL)
            job->rc = -(int)job->err.code;
    }
}

static void request_done(uv_work_t *req, int status)
{
    struct request_job *job = req->data;
    struct agent_node_images *ni = job->ni;
    (void)status; /* requests are never cancelled */
    if (job->rc == 0 && job->pull) {
        resolved_note(ni, &job->pulled);
        gy_log_info("image pulled for the leader",
                    "image=%s manifest=%s fetched=%" PRId64 " from_peers=%" PRId64,
                    job->pulled.name, job->pulled.manifest_digest, job->pulled.bytes_fetched,
                    job->pulled.bytes_peers);
    } else if (job->rc == 0) {
        gy_log_info("image removed for the leader", "image=%s", job->target.name);
    } else {
        gy_log_warn("image request failed", "op=%s image=%s error=\"%s\"",
                    job->pull ? "pull" : "rm", job->ref, job->err.msg);
    }
    if (job->rc == 0)
        agent_node_images_changed(ni);
    if (job->session == ni->session && !ni->stopping)
        answer(ni, job->request_id, job->rc < 0 ? job->err.msg : NULL, job->image,
               job->pull ? &job->pulled : NULL);
    agent_node_image_free(job->image);
    free(job->peers);
    free(job);
}

/* The peers a pull asks: the request's (each a node name and HOST:PORT, or dropped), else
 * the daemon's list, which the leader sends with every assignment. */
static void request_peers(struct agent_node_images *ni, const Gantry__ImageRequest *req,
                          struct request_job *job)
{
    if (req->n_peers == 0) {
        if (ni->cfg.peers != NULL)
            job->n_peers = ni->cfg.peers(ni->cfg.arg, &job->peers);
        return;
    }
    job->peers = gy_xcalloc(req->n_peers, sizeof(*job->peers));
    for (size_t i = 0; i < req->n_peers && job->n_peers < AGENT_IMAGE_PEERS_MAX; i++) {
        const Gantry__ImagePeer *ip = req->peers[i];
        if (ip == NULL || ip->node == NULL || ip->node[0] == '\0' ||
            strlen(ip->node) > AGENT_PEER_NODE_MAX || !agent_peer_address_valid(ip->address))
            continue;
        struct agent_image_peer *peer = &job->peers[job->n_peers++];
        snprintf(peer->node, sizeof(peer->node), "%s", ip->node);
        snprintf(peer->address, sizeof(peer->address), "%s", ip->address);
    }
}

void agent_node_images_request(struct agent_node_images *ni, const Gantry__ImageRequest *req)
{
    const char *op = req->op != NULL ? req->op : "";
    const char *ref = req->ref != NULL ? req->ref : "";
    char why[600];
    struct gy_error err;
    if (ni->stopping)
        return;
    if (strlen(ref) >= GY_IMAGE_REF_MAX + 32) {
        answer(ni, req->request_id, "image reference too long", NULL, NULL);
        return;
    }
    struct request_job *job = gy_xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->ni = ni;
    job->request_id = req->request_id;
    job->session = ni->session;
    snprintf(job->ref, sizeof(job->ref), "%s", ref);
    if (strcmp(op, "pull") == 0) {
        struct gy_image_ref parsed;
        job->pull = true;
        if (gy_image_ref_parse(ref, &parsed, &err) < 0) {
            answer(ni, req->request_id, err.msg, NULL, NULL);
            free(job);
            return;
        }
        request_peers(ni, req, job);
    } else if (strcmp(op, "rm") == 0) {
        if (agent_image_target_find(ni->cfg.puller, ni->cfg.data_dir, ref, ni->cfg.node,
                                    &job->target, &err) < 0) {
            answer(ni, req->request_id, err.msg, NULL, NULL);
            free(job);
            return;
        }
        /* A replica started from it keeps its layers mounted; one starting or restarting
         * would pull it again at once. */
        const char *user = ni->cfg.in_use(ni->cfg.arg, &job->target);
        if (user != NULL) {
            snprintf(why, sizeof(why), "image %s is in use by replica %s", ref, user);
            answer(ni, req->request_id, why, NULL, NULL);
            free(job);
            return;
        }
    } else {
        snprintf(why, sizeof(why), "unknown image operation \"%.32s\" (pull or rm)", op);
        answer(ni, req->request_id, why, NULL, NULL);
        free(job);
        return;
    }
    if (uv_queue_work(ni->cfg.loop, &job->req, request_work, request_done) < 0) {
        answer(ni, req->request_id, "cannot queue the image request", NULL, NULL);
        free(job->peers);
        free(job);
    }
}
