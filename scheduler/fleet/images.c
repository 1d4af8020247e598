/* Images on the nodes, as the leader sees and handles them: the cluster's view of what the
 * agents report (GET /v1/images), requests to pull or remove an image on chosen nodes
 * (ImageRequest frames, answered by ImageResult, kept by request id as the log relay keeps
 * its own), and ImageLocality's input to reconcile. */
#include "scheduler/fleet/fleet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/state/query_fleet.h"

/* One node's part of a request. */
struct image_answer {
    char *node;
    struct fleet_session *session; /* NULL once it answered or its session ended */
    uint64_t id;                   /* the ImageRequest.request_id sent to it */
    json_t *result;                /* its result object, once known */
    bool failed;
};

struct fleet_image_request {
    struct fleet_image_request *next;
    struct sch_fleet *fleet;
    char *op;
    struct image_answer *answers;
    size_t n;
    size_t pending;
    uv_timer_t timer;
    sch_fleet_image_done_fn done;
    void *data;
};

/* ---------------------------------------------------------------------------------------
 * Which nodes */

struct node_pick {
    char **names;
    size_t n;
    const struct sch_fleet_image_target *target;
    struct sch_fleet *fleet;
    bool named_found;    /* the node named exists */
    int named_state;     /* its state */
    size_t in_cloud;     /* nodes of the cloud named, whatever their state */
    bool connected_only; /* GET /v1/images: every node with a session, whatever its state */
    const char *only;    /* GET /v1/images?node=: that node alone */
};

static void pick_node(void *data, const struct sch_node_row *row)
{
    struct node_pick *p = data;
    const struct sch_fleet_image_target *t = p->target;
    const char *name = p->only != NULL ? p->only : t != NULL ? t->node : NULL;
    if (name != NULL) {
        if (strcmp(row->name, name) != 0)
            return;
        p->named_found = true;
        p->named_state = row->state;
    } else if (t != NULL && t->cloud != NULL) {
        if (strcmp(row->cloud != NULL ? row->cloud : "", t->cloud) != 0)
            return;
        p->in_cloud++;
    }
    if (row->state == GANTRY__NODE_STATE__NODE_DOWN)
        return;
    /* Every other target is a ready node: cordoned and draining nodes take no new work. */
    if (name == NULL && !p->connected_only && row->state != GANTRY__NODE_STATE__NODE_READY)
        return;
    if (fleet_session_of(p->fleet, row->name) == NULL)
        return;
    p->names = gy_xrealloc(p->names, (p->n + 1) * sizeof(*p->names));
    p->names[p->n++] = gy_xstrdup(row->name);
}

static void pick_free(struct node_pick *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->names[i]);
    free(p->names);
}

static bool leading(struct sch_fleet *f, struct gy_error *err)
{
    if (f != NULL && f->leading && f->caught_up)
        return true;
    gy_error_set(err, GY_EUNAVAILABLE, "the leader is starting; retry shortly");
    return false;
}

/* The nodes' names into p, or an error; the caller frees p with pick_free either way. */
static int pick(struct sch_fleet *f, struct node_pick *p, struct gy_error *err)
{
    p->fleet = f;
    if (sch_query_nodes(&f->node->fsm, pick_node, p, err) < 0)
        return -GY_EINTERNAL;
    const char *name = p->only != NULL ? p->only : p->target != NULL ? p->target->node : NULL;
    if (name != NULL && !p->named_found)
        return gy_error_set(err, GY_ENOTFOUND, "node \"%s\" not found", name);
    if (name != NULL && p->n == 0)
        return gy_error_set(err, GY_EUNAVAILABLE, "node %s is %s", name,
                            p->named_state == GANTRY__NODE_STATE__NODE_DOWN
                                ? "down"
                                : "not connected to the leader");
    if (name == NULL && p->target != NULL && p->target->cloud != NULL && p->n == 0)
        return gy_error_set(err, GY_ENOTFOUND,
                            p->in_cloud == 0 ? "cloud \"%s\" has no node"
                                             : "cloud \"%s\" has no ready node connected",
                            p->target->cloud);
    if (name == NULL && p->target != NULL && p->n == 0)
        return gy_error_set(err, GY_EUNAVAILABLE, "no ready node is connected");
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The cluster's view */

json_t *sch_fleet_images(struct sch_fleet *f, const char *node, struct gy_error *err)
{
    if (!leading(f, err))
        return NULL;
    struct node_pick p = {.connected_only = true, .only = node};
    if (pick(f, &p, err) < 0) {
        pick_free(&p);
        return NULL;
    }
    struct sch_inventory_of *of = gy_xcalloc(p.n ? p.n : 1, sizeof(*of));
    for (size_t i = 0; i < p.n; i++) {
        struct fleet_session *s = fleet_session_of(f, p.names[i]);
        of[i].node = p.names[i];
        of[i].inventory = s != NULL ? &s->images : NULL;
    }
    json_t *answer = sch_inventory_json(of, p.n);
    free(of);
    pick_free(&p);
    return answer;
}

/* ---------------------------------------------------------------------------------------
 * Requests */

static void request_freed(uv_handle_t *h)
{
    struct fleet_image_request *r = h->data;
    struct sch_fleet *f = r->fleet;
    for (size_t i = 0; i < r->n; i++) {
        free(r->answers[i].node);
        json_decref(r->answers[i].result);
    }
    free(r->answers);
    free(r->op);
    free(r);
    fleet_handle_gone(f);
}

/* Every node has answered (or failed): the caller is told, and the request goes. */
static void request_finish(struct fleet_image_request *r)
{
    struct sch_fleet *f = r->fleet;
    for (struct fleet_image_request **p = &f->image_requests; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    json_t *results = json_array();
    size_t failed = 0;
    for (size_t i = 0; i < r->n; i++) {
        json_array_append(results, r->answers[i].result);
        failed += r->answers[i].failed;
    }
    uv_timer_stop(&r->timer);
    r->done(r->data, results, failed);
    uv_close((uv_handle_t *)&r->timer, request_freed);
}

/* Records a node's outcome: an error, or (error NULL) result's fields. */
static void answer_set(struct fleet_image_request *r, struct image_answer *a, const char *error,
                       json_t *result)
{
    if (a->result != NULL) {
        json_decref(result);
        return;
    }
    a->session = NULL;
    if (error != NULL) {
        a->failed = true;
        json_decref(result);
        result = json_pack("{s:s,s:s}", "node", a->node, "error", error);
        gy_log_info("image request failed on a node", "op=%s node=%s error=\"%s\"", r->op, a->node,
                    error);
    } else {
        json_object_set_new(result, "node", json_string(a->node));
    }
    a->result = result;
    if (--r->pending == 0)
        request_finish(r);
}

static void on_request_timeout(uv_timer_t *t)
{
    struct fleet_image_request *r = t->data;
    char why[128];
    uint64_t ms = uv_timer_get_repeat(t);
    snprintf(why, sizeof(why), "no answer from the node within %llus",
             (unsigned long long)(ms / 1000));
    for (size_t i = 0; i < r->n && r->pending > 0; i++)
        if (r->answers[i].result == NULL)
            answer_set(r, &r->answers[i], why, NULL);
}

void fleet_image_result(struct sch_fleet *f, struct fleet_session *s, const Gantry__ImageResult *m)
{
    for (struct fleet_image_request *r = f->image_requests; r != NULL; r = r->next) {
        for (size_t i = 0; i < r->n; i++) {
            struct image_answer *a = &r->answers[i];
            if (a->id != m->request_id || a->session != s)
                continue;
            if (m->error != NULL && m->error[0] != '\0') {
                /* The agent's words reach the user: printable, bounded. */
                char error[512];
                size_t k = 0;
                for (; m->error[k] != '\0' && k < sizeof(error) - 1; k++)
                    error[k] = (unsigned char)m->error[k] < 0x20 || m->error[k] == 0x7f
                                   ? '?'
                                   : m->error[k];
                error[k] = '\0';
                answer_set(r, a, error, NULL);
                return;
            }
            json_t *result = json_object();
            if (m->image != NULL) {
                struct sch_node_image img;
                char problem[256] = "";
                if (sch_node_image_take(&img, m->image, NULL, problem, sizeof(problem)) < 0) {
                    gy_log_warn("image result: image dropped", "node=%s problem=\"%s\"", a->node,
                                problem);
                } else {
                    json_t *image = sch_node_image_json(&img);
                    json_object_update(result, image);
                    json_decref(image);
                    sch_node_image_free(&img);
                }
            }
            json_object_set_new(result, "bytes_registry",
                                json_integer(m->bytes_registry > 0 ? m->bytes_registry : 0));
            json_object_set_new(result, "bytes_peers",
                                json_integer(m->bytes_peers > 0 ? m->bytes_peers : 0));
            answer_set(r, a, NULL, result);
            return;
        }
    }
}

void fleet_images_end(struct sch_fleet *f, struct fleet_session *s, const char *why)
{
    /* Finishing a request unlinks it: walk from the head again after each. */
    bool again = true;
    while (again) {
        again = false;
        for (struct fleet_image_request *r = f->image_requests; r != NULL && !again; r = r->next) {
            for (size_t i = 0; i < r->n; i++) {
                struct image_answer *a = &r->answers[i];
                if (a->result != NULL || (s != NULL && a->session != s))
                    continue;
                bool last = r->pending == 1;
                answer_set(r, a, why, NULL);
                if (last) {
                    again = true;
                    break;
                }
            }
        }
    }
}

int sch_fleet_image_request(struct sch_fleet *f, const char *op, const char *ref,
                            const struct sch_fleet_image_target *target, uint64_t timeout_ms,
                            sch_fleet_image_done_fn done, void *data, struct gy_error *err)
{
    if (!leading(f, err))
        return -GY_EUNAVAILABLE;
    static const struct sch_fleet_image_target everywhere = {0};
    struct node_pick p = {.target = target != NULL ? target : &everywhere};
    int rc = pick(f, &p, err);
    if (rc < 0) {
        pick_free(&p);
        return rc;
    }
    struct fleet_image_request *r = gy_xcalloc(1, sizeof(*r));
    r->fleet = f;
    r->op = gy_xstrdup(op);
    r->done = done;
    r->data = data;
    r->n = p.n;
    r->pending = p.n;
    r->answers = gy_xcalloc(p.n, sizeof(*r->answers));
    uv_timer_init(f->loop, &r->timer);
    r->timer.data = r;
    f->open_handles++;
    r->next = f->image_requests;
    f->image_requests = r;
    for (size_t i = 0; i < p.n; i++) {
        struct image_answer *a = &r->answers[i];
        a->node = p.names[i];
        a->session = fleet_session_of(f, a->node);
        a->id = ++f->next_image_id;
    }
    free(p.names); /* the answers own the names now */
    gy_log_info("image request", "op=%s ref=%s nodes=%zu", op, ref, r->n);
    /* The timer's repeat holds the limit, for the message; it fires once. */
    uv_timer_start(&r->timer, on_request_timeout, timeout_ms, timeout_ms);
    for (size_t i = 0; i < r->n; i++) {
        Gantry__ImageRequest req = GANTRY__IMAGE_REQUEST__INIT;
        req.request_id = r->answers[i].id;
        req.op = (char *)op;
        req.ref = (char *)ref;
        /* A pull asks the nodes of the node's cloud first, as a replica's start does. */
        Gantry__ImagePeer **peers = NULL;
        if (strcmp(op, "pull") == 0 && r->answers[i].session != NULL)
            req.n_peers = fleet_image_peers(r->answers[i].session, &peers);
        req.peers = peers;
        Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
        frame.frame_case = GANTRY__AGENT_FRAME__FRAME_IMAGE_REQUEST;
        frame.image_request = &req;
        fleet_session_send(r->answers[i].session, &frame);
        for (size_t k = 0; k < req.n_peers; k++)
            free(peers[k]);
        free(peers);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * ImageLocality */

void fleet_image_bytes(void *data, const struct gy_spec *spec, const char *const *nodes, size_t n,
                       int64_t *bytes)
{
    struct sch_fleet *f = data;
    struct sch_image_wanted wanted;
    sch_image_wanted_init(&wanted, spec->image, spec->image_digest);
    /* The image's layers, as any node that holds it reported them, weigh the nodes that
     * hold only some of them. */
    for (struct fleet_session *s = f->sessions; s != NULL && wanted.known == NULL; s = s->next)
        if (s->welcomed && !s->closing)
            wanted.known = sch_inventory_find(&s->images, &wanted);
    for (size_t i = 0; i < n; i++) {
        struct fleet_session *s = fleet_session_of(f, nodes[i]);
        bytes[i] = s != NULL ? sch_inventory_locality(&s->images, &wanted) : 0;
    }
}
