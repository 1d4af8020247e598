/* Assignments on the leader; see assign.h. */
#include "scheduler/fleet/assign.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/fleet/reconcile.h"
#include "scheduler/state/query_fleet.h"

/* ---------------------------------------------------------------------------------------
 * Sets of replica ids */

static size_t idset_pos(const struct sch_idset *s, const char *id, bool *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->ids[mid], id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

bool sch_idset_has(const struct sch_idset *s, const char *id)
{
    bool found;
    idset_pos(s, id, &found);
    return found;
}

static void idset_add(struct sch_idset *s, const char *id)
{
    bool found;
    size_t pos = idset_pos(s, id, &found);
    if (found)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->ids = gy_xrealloc(s->ids, s->cap * sizeof(*s->ids));
    }
    memmove(&s->ids[pos + 1], &s->ids[pos], (s->n - pos) * sizeof(*s->ids));
    s->ids[pos] = gy_xstrdup(id);
    s->n++;
}

static bool idset_remove(struct sch_idset *s, const char *id)
{
    bool found;
    size_t pos = idset_pos(s, id, &found);
    if (!found)
        return false;
    free(s->ids[pos]);
    memmove(&s->ids[pos], &s->ids[pos + 1], (s->n - pos - 1) * sizeof(*s->ids));
    s->n--;
    return true;
}

void sch_idset_free(struct sch_idset *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    memset(s, 0, sizeof(*s));
}

void sch_assign_sent_clear(struct sch_assign_sent *sent)
{
    sch_idset_free(&sent->started);
    sch_idset_free(&sent->stopped);
}

bool sch_assign_sent_forget_stop(struct sch_assign_sent *sent, const char *id)
{
    return idset_remove(&sent->stopped, id);
}

/* ---------------------------------------------------------------------------------------
 * The spec cache */

struct sch_spec_cache_entry {
    Gantry__WorkloadSpec *spec; /* NULL: the workload is gone */
    UT_hash_handle hh;
    char name[];
};

void sch_spec_cache_clear(struct sch_spec_cache *c)
{
    struct sch_spec_cache_entry *e, *next;
    HASH_ITER(hh, c->entries, e, next)
    {
        HASH_DEL(c->entries, e);
        if (e->spec != NULL)
            gantry__workload_spec__free_unpacked(e->spec, NULL);
        free(e);
    }
}

/* The current spec of a workload; NULL when it is gone. The cache keeps it. */
static Gantry__WorkloadSpec *spec_get(struct sch_fsm *fsm, struct sch_spec_cache *c,
                                      const char *workload)
{
    struct sch_spec_cache_entry *e;
    HASH_FIND_STR(c->entries, workload, e);
    if (e != NULL)
        return e->spec;
    size_t len = strlen(workload);
    e = gy_xmalloc(sizeof(*e) + len + 1);
    memset(e, 0, sizeof(*e));
    memcpy(e->name, workload, len + 1);
    e->spec = sch_query_workload_spec(fsm, workload);
    HASH_ADD_KEYPTR(hh, c->entries, e->name, len, e);
    return e->spec;
}

/* ---------------------------------------------------------------------------------------
 * Differences */

/* The difference under construction for one node. */
struct diff {
    struct sch_fsm *fsm;
    struct sch_spec_cache *cache;
    struct sch_assign_sent *sent;
    bool full;
    Gantry__Assignment *msg;
    struct sch_idset live; /* replicas the state holds as live on the node */
};

static void stop_add(struct diff *d, const char *id)
{
    Gantry__Assignment *m = d->msg;
    m->stop = gy_xrealloc(m->stop, (m->n_stop + 1) * sizeof(*m->stop));
    m->stop[m->n_stop++] = gy_xstrdup(id);
    idset_add(&d->sent->stopped, id);
}

static void replica_compare(void *data, const struct sch_node_replica_row *r)
{
    struct diff *d = data;
    struct sch_assign_sent *sent = d->sent;
    if (sch_replica_state_is_live(r->state)) {
        idset_add(&d->live, r->id);
        if (!d->full && sch_idset_has(&sent->started, r->id))
            return;
        Gantry__WorkloadSpec *spec = spec_get(d->fsm, d->cache, r->workload);
        if (spec == NULL)
            return; /* its workload is gone */
        Gantry__AssignedReplica *a = gy_xmalloc(sizeof(*a));
        gantry__assigned_replica__init(a);
        a->replica_id = gy_xstrdup(r->id);
        a->generation = r->generation;
        a->spec = spec;
        Gantry__Assignment *m = d->msg;
        m->start = gy_xrealloc(m->start, (m->n_start + 1) * sizeof(*m->start));
        m->start[m->n_start++] = a;
        idset_add(&sent->started, r->id);
    } else if (!sch_idset_has(&sent->stopped, r->id)) {
        stop_add(d, r->id);
        idset_remove(&sent->started, r->id);
    }
}

int sch_assign_diff(struct sch_fsm *fsm, const char *node, bool full, struct sch_assign_sent *sent,
                    struct sch_spec_cache *cache, struct sch_assignment *out, struct gy_error *err)
{
    gantry__assignment__init(&out->msg);
    out->msg.full = full;
    struct diff d = {.fsm = fsm, .cache = cache, .sent = sent, .full = full, .msg = &out->msg};
    int rc = sch_query_node_replicas(fsm, node, replica_compare, &d, err);
    if (rc < 0) {
        sch_idset_free(&d.live);
        sch_assignment_free(out);
        return rc;
    }
    /* Replicas sent earlier that the state no longer holds as live on this node. */
    for (size_t i = 0; i < sent->started.n;) {
        const char *id = sent->started.ids[i];
        if (sch_idset_has(&d.live, id)) {
            i++;
            continue;
        }
        if (!sch_idset_has(&sent->stopped, id))
            stop_add(&d, id);
        idset_remove(&sent->started, id);
    }
    sch_idset_free(&d.live);
    return full || out->msg.n_start > 0 || out->msg.n_stop > 0;
}

void sch_assignment_free(struct sch_assignment *a)
{
    for (size_t i = 0; i < a->msg.n_start; i++) {
        free(a->msg.start[i]->replica_id);
        free(a->msg.start[i]);
    }
    for (size_t i = 0; i < a->msg.n_stop; i++)
        free(a->msg.stop[i]);
    free(a->msg.start);
    free(a->msg.stop);
    gantry__assignment__init(&a->msg);
}

/* ---------------------------------------------------------------------------------------
 * Nodes due a push */

void sch_push_queue_clear(struct sch_push_queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->nodes[i]);
    free(q->nodes);
    q->nodes = NULL;
    q->n = q->cap = q->pos = 0;
}

void sch_push_queue_add(struct sch_push_queue *q, const char *node)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->nodes = gy_xrealloc(q->nodes, q->cap * sizeof(*q->nodes));
    }
    q->nodes[q->n++] = gy_xstrdup(node);
}

const char *sch_push_queue_next(struct sch_push_queue *q)
{
    if (q->pos < q->n)
        return q->nodes[q->pos++];
    if (q->n > 0)
        sch_push_queue_clear(q);
    return NULL;
}

struct changed {
    struct sch_push_queue *queue;
    bool (*connected)(void *data, const char *node);
    void *data;
};

static void changed_node(void *data, const char *node)
{
    struct changed *c = data;
    if (c->connected(c->data, node))
        sch_push_queue_add(c->queue, node);
}

int sch_push_queue_changed(struct sch_push_queue *q, struct sch_fsm *fsm,
                           bool (*connected)(void *data, const char *node), void *data,
                           struct gy_error *err)
{
    struct changed c = {q, connected, data};
    return sch_query_nodes_changed_after(fsm, &q->mark, changed_node, &c, err);
}

struct stale {
    struct sch_idset *before; /* stopping at the previous look */
    struct sch_idset now;     /* stopping at this one */
    void (*cb)(void *data, const char *id, const char *node);
    void *data;
};

static void stale_stop(void *data, const struct sch_replica_at_row *r)
{
    struct stale *st = data;
    idset_add(&st->now, r->id);
    if (sch_idset_has(st->before, r->id))
        st->cb(st->data, r->id, r->node);
}

int sch_assign_stale_stops(struct sch_fsm *fsm, struct sch_idset *stopping,
                           void (*stale)(void *data, const char *id, const char *node), void *data,
                           struct gy_error *err)
{
    struct stale st = {.before = stopping, .cb = stale, .data = data};
    int rc = sch_query_stopping(fsm, stale_stop, &st, err);
    if (rc < 0) {
        sch_idset_free(&st.now);
        return rc;
    }
    sch_idset_free(stopping);
    *stopping = st.now;
    return rc;
}
