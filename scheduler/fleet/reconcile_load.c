/* How a reconcile pass reads the state: the workloads it is about (settled ones left out),
 * their replicas and conditions, and, when something is to be placed, every node with what
 * is allocated on it. */
#include "scheduler/fleet/reconcile_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "proto/spec_pb.h"
#include "scheduler/state/query_fleet.h"

void reconcile_state_free(struct reconcile_state *st)
{
    for (size_t i = 0; i < st->n_nodes; i++) {
        struct node_row *n = &st->nodes[i];
        for (size_t l = 0; l < n->n_labels; l++) {
            free((char *)n->labels[l].key);
            free((char *)n->labels[l].value);
        }
        free(n->labels);
        sch_host_ports_free(&n->host_ports);
        free(n->name);
        free(n->cloud);
        free(n->zone);
    }
    free(st->nodes);
    for (size_t i = 0; i < st->n_workloads; i++) {
        if (st->workloads[i].decoded)
            gy_spec_free(&st->workloads[i].spec);
        free(st->workloads[i].name);
        free(st->workloads[i].unschedulable);
        free(st->workloads[i].rollout_halted);
        free(st->workloads[i].moving);
        free(st->workloads[i].move_stopped);
    }
    free(st->workloads);
    for (size_t i = 0; i < st->n_replicas; i++) {
        free(st->replicas[i].id);
        free(st->replicas[i].workload);
        free(st->replicas[i].node);
        free(st->replicas[i].reason);
        free(st->replicas[i].node_cloud);
    }
    free(st->replicas);
}

static int load_some(struct reconcile_state *st, const char *const *only, size_t n_only,
                     struct gy_error *err);

static void node_add(void *data, const struct sch_node_row *row)
{
    struct reconcile_state *st = data;
    if (st->n_nodes == st->cap_nodes) {
        st->cap_nodes = st->cap_nodes ? st->cap_nodes * 2 : 16;
        st->nodes = gy_xrealloc(st->nodes, st->cap_nodes * sizeof(*st->nodes));
    }
    struct node_row *n = &st->nodes[st->n_nodes++];
    memset(n, 0, sizeof(*n));
    n->name = gy_xstrdup(row->name);
    n->cloud = gy_xstrdup(row->cloud);
    n->zone = gy_xstrdup(row->zone);
    json_t *labels = json_loads(row->labels, 0, NULL);
    const char *key;
    json_t *value;
    json_object_foreach(labels, key, value)
    {
        n->labels = gy_xrealloc(n->labels, (n->n_labels + 1) * sizeof(*n->labels));
        n->labels[n->n_labels].key = gy_xstrdup(key);
        n->labels[n->n_labels].value =
            gy_xstrdup(json_is_string(value) ? json_string_value(value) : "");
        n->n_labels++;
    }
    json_decref(labels);
    n->view.name = n->name;
    n->view.cloud = n->cloud;
    n->view.zone = n->zone;
    n->view.labels = n->labels;
    n->view.n_labels = n->n_labels;
    n->view.capacity.cpu_millis = row->cpu_millis;
    n->view.capacity.memory_bytes = row->memory_bytes;
    n->view.capacity.pids = row->pids;
    n->view.schedulable = row->state == GANTRY__NODE_STATE__NODE_READY;
    n->view.storage_pressure = row->storage_pressure;
}

/* Reads every node (placement needs them all); only done when something is to be placed,
 * which most passes, driven by replica reports, do not need. */
int reconcile_load_nodes(struct reconcile_state *st)
{
    if (st->nodes_loaded)
        return st->nodes_rc;
    st->nodes_loaded = true;
    int rc = sch_query_nodes(st->fsm, node_add, st, &st->nodes_err);
    /* The rows have stopped moving: each view can point at its node's host ports. */
    for (size_t i = 0; i < st->n_nodes; i++)
        st->nodes[i].view.host_ports = &st->nodes[i].host_ports;
    return st->nodes_rc = rc < 0 ? rc : 0;
}

/* Keeps a stored condition the reconciler acts on. */
static void condition_load(void *data, const struct sch_condition_row *c)
{
    struct workload_row *w = data;
    if (strcmp(c->kind, SCH_CONDITION_UNSCHEDULABLE) == 0) {
        w->unschedulable = gy_xstrdup(c->message);
    } else if (strcmp(c->kind, SCH_CONDITION_ROLLOUT_HALTED) == 0) {
        w->rollout_halted = gy_xstrdup(c->message);
    } else if (strcmp(c->kind, SCH_CONDITION_MOVING) == 0) {
        w->moving = gy_xstrdup(c->message);
        w->moving_since_ms = c->time_ms;
    } else if (strcmp(c->kind, SCH_CONDITION_MOVE_STOPPED) == 0) {
        w->move_stopped = gy_xstrdup(c->message);
    }
}

/* A growing list of names. */
struct name_list {
    char **names;
    size_t n;
    size_t cap;
};

static void name_list_add(void *data, const char *name)
{
    struct name_list *l = data;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->names = gy_xrealloc(l->names, l->cap * sizeof(*l->names));
    }
    l->names[l->n++] = gy_xstrdup(name);
}

static void name_list_free(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
}

int reconcile_load(struct reconcile_state *st, const char *const *only, size_t n_only,
                   struct gy_error *err)
{
    if (only != NULL)
        return load_some(st, only, n_only, err);
    /* A pass over everything (after a leader change) also skips the settled workloads. */
    struct name_list all = {0};
    int rc = sch_query_workload_names(st->fsm, name_list_add, &all, err);
    if (rc >= 0)
        rc = load_some(st, (const char *const *)all.names, all.n, err);
    name_list_free(&all);
    return rc;
}

static struct workload_row *workload_find(struct reconcile_state *st, const char *name)
{
    /* Workloads are loaded in byte order of their names. */
    size_t lo = 0, hi = st->n_workloads;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->workloads[mid].name, name);
        if (c == 0)
            return &st->workloads[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

struct node_row *reconcile_node_find(struct reconcile_state *st, const char *name)
{
    /* Nodes are sorted by name. */
    size_t lo = 0, hi = st->n_nodes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(st->nodes[mid].name, name);
        if (c == 0)
            return &st->nodes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Appends a workload (name, spec, generation, replicas). */
static void workload_append(struct reconcile_state *st, const struct sch_workload_progress_row *row)
{
    if (st->n_workloads == st->cap_workloads) {
        st->cap_workloads = st->cap_workloads ? st->cap_workloads * 2 : 16;
        st->workloads = gy_xrealloc(st->workloads, st->cap_workloads * sizeof(*st->workloads));
    }
    struct workload_row *w = &st->workloads[st->n_workloads++];
    memset(w, 0, sizeof(*w));
    w->name = gy_xstrdup(row->name);
    w->generation = row->generation;
    w->desired = (uint32_t)row->desired;
    Gantry__WorkloadSpec *msg = gantry__workload_spec__unpack(NULL, row->spec_len, row->spec);
    if (msg != NULL) {
        struct gy_error perr;
        if (gy_spec_from_proto(msg, &w->spec, &perr) == 0)
            w->decoded = true;
        else
            gy_spec_free(&w->spec);
        gantry__workload_spec__free_unpacked(msg, NULL);
    }
    if (w->decoded)
        w->spec.replicas = w->desired;
}

static void replica_append(void *data, const struct sch_replica_row *row)
{
    struct reconcile_state *st = data;
    if (st->n_replicas == st->cap_replicas) {
        st->cap_replicas = st->cap_replicas ? st->cap_replicas * 2 : 64;
        st->replicas = gy_xrealloc(st->replicas, st->cap_replicas * sizeof(*st->replicas));
    }
    struct replica_row *r = &st->replicas[st->n_replicas++];
    memset(r, 0, sizeof(*r));
    r->rowid = row->rowid;
    r->id = gy_xstrdup(row->id);
    r->workload = gy_xstrdup(row->workload);
    r->generation = row->generation;
    r->node = gy_xstrdup(row->node);
    r->state = row->state;
    r->ready = row->ready;
    r->reason = gy_xstrdup(row->reason);
    r->node_state = row->node_state;
    r->node_cloud = gy_xstrdup(row->node_cloud);
    r->node_cost = row->node_cost;
    r->changed_ms = row->changed_ms;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The condition kinds whose presence means a pass has something to decide. */
static const char *const ACTED_ON_KINDS[4] = {
    SCH_CONDITION_UNSCHEDULABLE,
    SCH_CONDITION_ROLLOUT_HALTED,
    SCH_CONDITION_MOVING,
    SCH_CONDITION_MOVE_STOPPED,
};

/* One workload being looked up by load_some. */
struct lookup {
    struct reconcile_state *st;
    bool draining; /* some node drains */
    bool down;     /* some node is down */
    bool loaded;   /* the workload is not settled and was appended */
    bool any_replica;
    bool any_condition;
};

/* Keeps a workload unless it is settled: exactly its desired count of live replicas, all of
 * its current generation, none on a draining or down node, and no condition recorded. A
 * pass then
 * has nothing to decide for it (no placement, no stop, no rollout step, no condition to
 * change), whatever the states its replicas report; most passes follow such reports, and
 * this spares them loading every replica of the workload. Whether it has any replica or
 * condition at all also spares a new workload those two reads. */
static void lookup_workload(void *data, const struct sch_workload_progress_row *row)
{
    struct lookup *lk = data;
    bool settled = row->live_current == row->desired && row->live_old == 0 && !row->has_condition;
    struct gy_error err;
    if (settled && lk->draining)
        settled = sch_query_workload_on_nodes_in(lk->st->fsm, row->name,
                                                 GANTRY__NODE_STATE__NODE_DRAINING, &err) == 0;
    /* A replica on a down node is counted while its workload's disconnect_grace lasts, and
     * only a pass can tell when that ends. */
    if (settled && lk->down)
        settled = sch_query_workload_on_nodes_in(lk->st->fsm, row->name,
                                                 GANTRY__NODE_STATE__NODE_DOWN, &err) == 0;
    if (settled)
        return;
    workload_append(lk->st, row);
    lk->loaded = true;
    lk->any_replica = row->any_replica;
    lk->any_condition = row->has_condition;
}

/* Loads only the named workloads, their replicas and conditions: a pass then costs what
 * changed, not the size of the whole state. Settled workloads are left out; so are
 * deleted ones (their replicas are stopping already). */
static int load_some(struct reconcile_state *st, const char *const *only, size_t n_only,
                     struct gy_error *err)
{
    const char **names = gy_xcalloc(n_only + 1, sizeof(*names));
    if (n_only > 0)
        memcpy(names, only, n_only * sizeof(*names));
    qsort(names, n_only, sizeof(*names), name_cmp);
    struct lookup lk = {.st = st};
    /* Whether any node drains is asked once per pass; when it cannot be told, every
     * workload is looked at. */
    lk.draining =
        n_only > 0 && sch_query_any_node_in(st->fsm, GANTRY__NODE_STATE__NODE_DRAINING, err) != 0;
    lk.down = n_only > 0 && sch_query_any_node_in(st->fsm, GANTRY__NODE_STATE__NODE_DOWN, err) != 0;
    int rc = 0;
    for (size_t i = 0; i < n_only && rc >= 0; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        lk.loaded = false;
        rc = sch_query_workload_progress(st->fsm, names[i], ACTED_ON_KINDS, lookup_workload, &lk,
                                         err);
        if (rc <= 0 || !lk.loaded)
            continue;
        struct workload_row *w = &st->workloads[st->n_workloads - 1];
        w->first_replica = st->n_replicas;
        if (lk.any_replica)
            rc = sch_query_workload_replicas(st->fsm, names[i], replica_append, st, err);
        w->n_replicas = st->n_replicas - w->first_replica;
        if (rc >= 0 && lk.any_condition)
            rc = sch_query_workload_conditions(st->fsm, names[i], condition_load, w, err);
    }
    free(names);
    return rc < 0 ? rc : 0;
}

/* Adds up, per node, what the replicas of each workload take (allocations grouped by
 * workload, so each workload's requests are found once). */
struct allocating {
    struct reconcile_state *st;
    char *workload; /* the workload of res and host */
    struct gy_resources res;
    struct gy_port host[GY_SPEC_PORTS_MAX]; /* its host ports (name left out) */
    size_t n_host;
};

/* Keeps the host ports of a workload's spec; a spec holds at most GY_SPEC_PORTS_MAX. */
static void allocation_host_port(struct allocating *al, uint32_t host_port, int protocol)
{
    if (host_port == 0 || al->n_host == GY_SPEC_PORTS_MAX)
        return;
    al->host[al->n_host++] = (struct gy_port){
        .host_port = host_port,
        .protocol = protocol == GY_PROTOCOL_UDP ? GY_PROTOCOL_UDP : GY_PROTOCOL_TCP,
    };
}

static void allocation_add(void *data, const struct sch_allocation_row *a)
{
    struct allocating *al = data;
    struct reconcile_state *st = al->st;
    if (al->workload == NULL || strcmp(al->workload, a->workload) != 0) {
        free(al->workload);
        al->workload = gy_xstrdup(a->workload);
        memset(&al->res, 0, sizeof(al->res));
        al->n_host = 0;
        struct workload_row *w = workload_find(st, a->workload);
        if (w != NULL && w->decoded) {
            al->res = w->spec.resources;
            for (size_t i = 0; i < w->spec.n_ports; i++)
                allocation_host_port(al, w->spec.ports[i].host_port, w->spec.ports[i].protocol);
        } else {
            Gantry__WorkloadSpec *msg = sch_query_workload_spec(st->fsm, a->workload);
            if (msg != NULL && msg->resources != NULL) {
                al->res.cpu_millis = msg->resources->cpu_millis;
                al->res.memory_bytes = msg->resources->memory_bytes;
                al->res.pids = msg->resources->pids;
            }
            for (size_t i = 0; msg != NULL && i < msg->n_ports; i++)
                allocation_host_port(al, msg->ports[i]->host_port, (int)msg->ports[i]->protocol);
            if (msg != NULL)
                gantry__workload_spec__free_unpacked(msg, NULL);
        }
    }
    struct node_row *n = reconcile_node_find(st, a->node);
    if (n == NULL)
        return;
    n->view.allocated.cpu_millis += a->replicas * al->res.cpu_millis;
    n->view.allocated.memory_bytes += a->replicas * al->res.memory_bytes;
    n->view.allocated.pids += a->replicas * al->res.pids;
    /* The scheduler keeps only a workload's current spec, so every replica of it, of
     * whichever generation, counts as holding its current host ports (as for resources). */
    for (size_t i = 0; i < al->n_host; i++) {
        if (sch_host_ports_add(&n->host_ports, al->host[i].host_port, al->host[i].protocol,
                               (uint32_t)a->replicas) < 0) {
            fprintf(stderr, "gantry: out of memory recording host ports\n");
            abort();
        }
    }
}

/* What every node has promised already: resources of all replicas that hold some, over
 * the whole state. Computed once per pass, and only when something is to be placed. */
void reconcile_allocations(struct reconcile_state *st)
{
    if (st->alloc_done)
        return;
    st->alloc_done = true;
    struct allocating al = {.st = st};
    struct gy_error err;
    sch_query_allocations(st->fsm, allocation_add, &al, &err);
    free(al.workload);
}

size_t sch_reconcile_waiting(struct sch_fsm *fsm, char ***names)
{
    struct name_list waiting = {0};
    struct gy_error err;
    sch_query_workloads_with_condition(fsm, SCH_CONDITION_UNSCHEDULABLE, SCH_CONDITION_MOVE_STOPPED,
                                       name_list_add, &waiting, &err);
    *names = waiting.names;
    return waiting.n;
}

size_t sch_reconcile_cut_off(struct sch_fsm *fsm, char ***names)
{
    struct name_list cut = {0};
    struct gy_error err;
    sch_query_workloads_on_nodes_in(fsm, GANTRY__NODE_STATE__NODE_DOWN, name_list_add, &cut, &err);
    *names = cut.names;
    return cut.n;
}

static bool first_only(void *data, const char *name)
{
    (void)data;
    (void)name;
    return false;
}

bool sch_reconcile_drain_due(struct sch_fsm *fsm)
{
    struct gy_error err;
    return sch_query_drained_nodes(fsm, first_only, NULL, &err) > 0;
}
