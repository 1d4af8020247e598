/* Reconciliation planning; see reconcile.h. */
#include "scheduler/fleet/reconcile_internal.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "common/xalloc.h"
#include "proto/spec_pb.h"
#include "scheduler/fleet/fleet_command.h"
#include "scheduler/state/query_fleet.h"

int sch_replica_state_is_live(int state)
{
    return state != GANTRY__REPLICA_STATE__REPLICA_STOPPING &&
           state != GANTRY__REPLICA_STATE__REPLICA_STOPPED &&
           state != GANTRY__REPLICA_STATE__REPLICA_LOST;
}

/* ---------------------------------------------------------------------------------------
 * The command under construction */

struct builder {
    Gantry__ReplicaPlacement **place;
    size_t n_place;
    Gantry__ReplicaStatus **stop;
    size_t n_stop;
    Gantry__Command **extra; /* conditions */
    size_t n_extra;
};

static void add_place(struct builder *b, const char *id, const char *workload, uint64_t gen,
                      const char *node)
{
    Gantry__ReplicaPlacement *p = gy_xmalloc(sizeof(*p));
    gantry__replica_placement__init(p);
    p->replica_id = gy_xstrdup(id);
    p->workload = gy_xstrdup(workload);
    p->generation = gen;
    p->node = gy_xstrdup(node);
    if ((b->n_place & (b->n_place - 1)) == 0) /* 0, 1, 2, 4, ...: the capacity doubles */
        b->place = gy_xrealloc(b->place, (b->n_place ? b->n_place * 2 : 1) * sizeof(*b->place));
    b->place[b->n_place++] = p;
}

static void add_stop(struct builder *b, struct replica_row *r, const char *why)
{
    Gantry__ReplicaStatus *s = gy_xmalloc(sizeof(*s));
    gantry__replica_status__init(s);
    s->replica_id = gy_xstrdup(r->id);
    s->workload = gy_xstrdup(r->workload);
    s->generation = r->generation;
    s->state = GANTRY__REPLICA_STATE__REPLICA_STOPPING;
    s->reason = gy_xstrdup(why);
    if ((b->n_stop & (b->n_stop - 1)) == 0)
        b->stop = gy_xrealloc(b->stop, (b->n_stop ? b->n_stop * 2 : 1) * sizeof(*b->stop));
    b->stop[b->n_stop++] = s;
    r->stop = true;
}

/* Adds c to the commands that follow the placements and stops. */
static void add_extra(struct builder *b, Gantry__Command *c)
{
    b->extra = gy_xrealloc(b->extra, (b->n_extra + 1) * sizeof(*b->extra));
    b->extra[b->n_extra++] = c;
}

static void add_condition(struct builder *b, const char *workload, const char *kind,
                          const char *message, uint64_t now_ms)
{
    Gantry__Command *c = fleet_command_new("reconciler", now_ms);
    Gantry__ReportCondition *rc = gy_xmalloc(sizeof(*rc));
    gantry__report_condition__init(rc);
    rc->workload = gy_xstrdup(workload);
    rc->kind = gy_xstrdup(kind);
    rc->message = gy_xstrdup(message);
    c->cmd_case = GANTRY__COMMAND__CMD_REPORT_CONDITION;
    c->report_condition = rc;
    add_extra(b, c);
}

/* Records a condition change when the stored one differs. */
static void condition(struct builder *b, const char *workload, const char *kind, const char *stored,
                      const char *message, uint64_t now_ms)
{
    if (strcmp(stored != NULL ? stored : "", message) != 0)
        add_condition(b, workload, kind, message, now_ms);
}

static void builder_free(struct builder *b)
{
    for (size_t i = 0; i < b->n_place; i++)
        protobuf_c_message_free_unpacked(&b->place[i]->base, NULL);
    for (size_t i = 0; i < b->n_stop; i++)
        protobuf_c_message_free_unpacked(&b->stop[i]->base, NULL);
    for (size_t i = 0; i < b->n_extra; i++)
        protobuf_c_message_free_unpacked(&b->extra[i]->base, NULL);
    free(b->place);
    free(b->stop);
    free(b->extra);
}

/* ---------------------------------------------------------------------------------------
 * Per-workload decisions */

/* Orders stop candidates: not ready first, then those in the least preferred cloud, then
 * on the most expensive node, then the newest (highest rowid). When load falls, the
 * replicas that burst into a public cloud go first. */
static int stop_order(const void *a, const void *b)
{
    const struct replica_row *ra = *(struct replica_row *const *)a;
    const struct replica_row *rb = *(struct replica_row *const *)b;
    bool a_ready = ra->ready && ra->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    bool b_ready = rb->ready && rb->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    if (a_ready != b_ready)
        return a_ready ? 1 : -1;
    if (ra->rank != rb->rank)
        return ra->rank > rb->rank ? -1 : 1;
    if (ra->node_cost != rb->node_cost)
        return ra->node_cost > rb->node_cost ? -1 : 1;
    return ra->rowid > rb->rowid ? -1 : ra->rowid < rb->rowid ? 1 : 0;
}

/* A replica's cloud's place in the workload's preference; unlisted clouds come last. */
static size_t cloud_rank(const struct workload_row *w, const struct replica_row *r)
{
    const struct gy_strv *clouds = &w->spec.placement.clouds;
    for (size_t i = 0; i < clouds->n; i++)
        if (strcmp(clouds->items[i], r->node_cloud) == 0)
            return i;
    return clouds->n;
}

static bool is_ready(const struct replica_row *r)
{
    return r->ready && r->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
}

/* A new replica id: the workload's name and 32 random bits, unique among its replicas
 * (ids of other workloads have another prefix). */
static void make_id(char *buf, size_t len, const struct workload_row *w, sch_random_fn rnd,
                    void *data, const struct reconcile_state *st)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        snprintf(buf, len, "%s-%08" PRIx32, w->name, rnd(data));
        bool taken = false;
        for (size_t k = 0; k < w->n_replicas && !taken; k++)
            taken = strcmp(st->replicas[w->first_replica + k].id, buf) == 0;
        if (!taken)
            return;
    }
}

/* A move ends when every replica is of the new generation and ready; it stops, saying
 * why, when new replicas cannot be placed or crash-loop (the old ones keep serving, as
 * the rollout stays make-before-break). */
static void move_progress(struct builder *b, const struct workload_row *w,
                          struct replica_row *const *cur, size_t n_cur, size_t n_old,
                          bool crash_loop, const char *unplaced, uint64_t now_ms)
{
    if (w->moving == NULL && w->move_stopped == NULL)
        return;
    const char *to = w->spec.placement.clouds.n > 0 ? w->spec.placement.clouds.items[0] : "any";
    size_t ready = 0;
    for (size_t i = 0; i < n_cur; i++)
        if (is_ready(cur[i]) && !cur[i]->stop)
            ready++;
    char msg[1400];
    if (n_old == 0 && ready >= w->desired) {
        uint64_t took =
            w->moving != NULL && now_ms > w->moving_since_ms ? now_ms - w->moving_since_ms : 0;
        snprintf(msg, sizeof(msg), "to %s: %" PRIu32 " replicas in %.1fs", to, w->desired,
                 (double)took / 1000.0);
        if (w->moving != NULL)
            add_condition(b, w->name, SCH_CONDITION_MOVING, "", now_ms);
        if (w->move_stopped != NULL)
            add_condition(b, w->name, SCH_CONDITION_MOVE_STOPPED, "", now_ms);
        add_condition(b, w->name, SCH_CONDITION_MOVED, msg, now_ms);
    } else if (w->moving != NULL && (*unplaced != '\0' || crash_loop)) {
        snprintf(msg, sizeof(msg), "move to %s stopped: %s; the previous replicas keep serving", to,
                 crash_loop ? "the new replicas are crash-looping" : unplaced);
        add_condition(b, w->name, SCH_CONDITION_MOVING, "", now_ms);
        add_condition(b, w->name, SCH_CONDITION_MOVE_STOPPED, msg, now_ms);
    }
}

/* Cordons a draining node that holds no live replica any more: drained, it takes no new
 * replicas until uncordoned. */
struct cordoning {
    struct builder *b;
    uint64_t now_ms;
};

static bool cordon_drained(void *data, const char *node)
{
    struct cordoning *cd = data;
    Gantry__Command *c = fleet_command_new("reconciler", cd->now_ms);
    Gantry__SetNodeState *set = gy_xmalloc(sizeof(*set));
    gantry__set_node_state__init(set);
    set->name = gy_xstrdup(node);
    set->state = GANTRY__NODE_STATE__NODE_CORDONED;
    set->reason = gy_xstrdup("drained: no replicas left");
    c->cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
    c->set_node_state = set;
    add_extra(cd->b, c);
    return true;
}

static void drained_nodes(struct sch_fsm *fsm, struct builder *b, uint64_t now_ms)
{
    struct cordoning cd = {b, now_ms};
    struct gy_error err;
    sch_query_drained_nodes(fsm, cordon_drained, &cd, &err);
}

/* True when r is on a node cut off from the control plane (down) for longer than its
 * workload's disconnect_grace: it no longer counts, and is replaced. Within the grace it
 * counts as any replica (not ready: its state is unknown). */
static bool cut_off_past_grace(const struct reconcile_state *st, const struct workload_row *w,
                               const struct replica_row *r)
{
    if (r->node_state != GANTRY__NODE_STATE__NODE_DOWN)
        return false;
    uint64_t grace = w->spec.disconnect_grace_ms > 0 ? (uint64_t)w->spec.disconnect_grace_ms : 0;
    if (grace == 0)
        return true;
    const struct sch_reconcile_time *t = st->time;
    return t->down_for != NULL && t->down_for(t->down_data, r->node) >= grace;
}

/* Orders cut-off replicas for stopping: the older generation first, then the older
 * placement. */
static int cut_off_order(const void *a, const void *b)
{
    const struct replica_row *ra = *(struct replica_row *const *)a;
    const struct replica_row *rb = *(struct replica_row *const *)b;
    if (ra->generation != rb->generation)
        return ra->generation < rb->generation ? -1 : 1;
    return ra->rowid < rb->rowid ? -1 : ra->rowid > rb->rowid ? 1 : 0;
}

/* Replicas cut off past their grace have been replaced: as many as the replicas that run
 * (state running) go beyond the desired count are stopped, the older generation first.
 * One whose replacement has not started stays, so that its node, coming back, has it
 * taken back running, and the replacement is the surplus then. The stop reaches the agent
 * when its node returns. */
static void stop_replaced(struct builder *b, const struct workload_row *w,
                          struct replica_row *const *counted, size_t n_counted,
                          struct replica_row **gone, size_t n_gone)
{
    size_t running = 0;
    for (size_t i = 0; i < n_counted; i++)
        if (!counted[i]->stop && counted[i]->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING)
            running++;
    size_t surplus = running + n_gone > w->desired ? running + n_gone - w->desired : 0;
    if (surplus > n_gone)
        surplus = n_gone;
    qsort(gone, n_gone, sizeof(*gone), cut_off_order);
    for (size_t i = 0; i < surplus; i++) {
        char why[192];
        snprintf(why, sizeof(why), "replaced while node %s was cut off", gone[i]->node);
        add_stop(b, gone[i], why);
    }
}

/* ImageLocality: how much of the workload's image each node holds, from the leader's
 * inventories (views are in the order of st->nodes). */
static void image_locality(const struct reconcile_state *st, const struct gy_spec *spec,
                           struct sch_place_node *views)
{
    if (st->time->image_bytes == NULL || st->n_nodes == 0 || spec->image == NULL)
        return;
    const char **names = gy_xcalloc(st->n_nodes, sizeof(*names));
    int64_t *bytes = gy_xcalloc(st->n_nodes, sizeof(*bytes));
    for (size_t i = 0; i < st->n_nodes; i++)
        names[i] = st->nodes[i].name;
    st->time->image_bytes(st->time->image_data, spec, names, st->n_nodes, bytes);
    for (size_t i = 0; i < st->n_nodes; i++)
        views[i].image_bytes = bytes[i];
    free(bytes);
    free(names);
}

/* Host ports during a rolling update (docs/spec.md, "ports"). A replica of the new
 * generation cannot go to a node where a replica of its workload holds the host ports, so a
 * workload that runs on every node that fits it cannot surge. Then old replicas on such
 * nodes are stopped first, within max_unavailable but at least one, and their replacements
 * go to the nodes they free once they have stopped. Replicas that wait for such nodes (an
 * old replica stopping there, or to be stopped in a later step) make no Unschedulable
 * condition: the update is under way. views and res are those of the workload's placement;
 * *n_ready is the ready count left by the stops decided so far. */
static void host_port_handover(struct reconcile_state *st, const struct workload_row *w,
                               struct builder *b, const struct sch_place_node *views,
                               const struct sch_place_result *res, size_t unplaced,
                               struct replica_row *const *old, size_t n_old, size_t *n_ready,
                               uint32_t unavailable, bool stop_first, char *reason)
{
    /* Per node, the workload's replicas there: kept (live, current generation, or just
     * placed), old (live, to be replaced) and going (stopping, or stopped by this plan). */
    struct holding {
        uint32_t kept;
        uint32_t old;
        uint32_t going;
    } *hold = gy_xcalloc(st->n_nodes + 1, sizeof(*hold));
    for (uint32_t i = 0; i < res->placed; i++)
        hold[res->node_index[i]].kept++;
    for (size_t k = 0; k < w->n_replicas; k++) {
        const struct replica_row *r = &st->replicas[w->first_replica + k];
        struct node_row *n = reconcile_node_find(st, r->node);
        if (n == NULL)
            continue;
        struct holding *h = &hold[n - st->nodes];
        if (r->state == GANTRY__REPLICA_STATE__REPLICA_STOPPING || r->stop)
            h->going++;
        else if (!sch_replica_state_is_live(r->state))
            continue;
        else if (r->generation < w->generation)
            h->old++;
        else
            h->kept++;
    }
    size_t freeing = 0, later = 0;
    for (size_t i = 0; i < st->n_nodes; i++) {
        if (!views[i].held_by_workload || hold[i].kept > 0)
            continue;
        if (hold[i].old > 0)
            later++;
        else if (hold[i].going > 0)
            freeing++;
    }
    size_t budget = unavailable > 0 ? unavailable : 1;
    size_t min_ready = w->desired > budget ? w->desired - budget : 0;
    for (size_t i = 0; stop_first && i < n_old && freeing < unplaced; i++) {
        if (*n_ready <= min_ready)
            break;
        struct replica_row *r = old[i];
        struct node_row *n = reconcile_node_find(st, r->node);
        if (r->stop || !is_ready(r) || n == NULL)
            continue;
        size_t at = (size_t)(n - st->nodes);
        if (!views[at].held_by_workload || hold[at].kept > 0 || hold[at].old != 1)
            continue;
        char why[192];
        snprintf(why, sizeof(why),
                 "replaced by generation %" PRIu64 ", stopped first to free its host ports",
                 w->generation);
        add_stop(b, r, why);
        (*n_ready)--;
        hold[at].old = 0;
        freeing++;
        later--;
    }
    if (unplaced <= freeing + (stop_first ? later : 0))
        reason[0] = '\0';
    free(hold);
}

static void plan_workload(struct reconcile_state *st, struct workload_row *w, struct builder *b,
                          uint64_t now_ms, sch_random_fn rnd, void *rnd_data)
{
    size_t n_live = 0, n_cur = 0, n_old = 0, n_ready = 0, n_draining = 0, n_gone = 0;
    bool crash_loop = false;
    struct replica_row **cur = gy_xcalloc(w->n_replicas + 1, sizeof(*cur));
    struct replica_row **old = gy_xcalloc(w->n_replicas + 1, sizeof(*old));
    struct replica_row **gone = gy_xcalloc(w->n_replicas + 1, sizeof(*gone));
    for (size_t k = 0; k < w->n_replicas; k++) {
        struct replica_row *r = &st->replicas[w->first_replica + k];
        if (!sch_replica_state_is_live(r->state))
            continue;
        if (cut_off_past_grace(st, w, r)) {
            gone[n_gone++] = r;
            continue;
        }
        n_live++;
        if (is_ready(r))
            n_ready++;
        r->rank = cloud_rank(w, r);
        if (r->node_state == GANTRY__NODE_STATE__NODE_DRAINING) {
            /* Replaced like an outdated replica, make-before-break. */
            old[n_old++] = r;
            n_draining++;
        } else if (r->generation >= w->generation) {
            cur[n_cur++] = r;
            if (strncmp(r->reason, "crash loop", 10) == 0)
                crash_loop = true;
        } else {
            old[n_old++] = r;
        }
    }
    uint32_t desired = w->desired;
    uint32_t surge = w->spec.update.max_surge;
    uint32_t unavailable = w->spec.update.max_unavailable;
    /* Moves and drains are make-before-break: a new replica is ready before an old one
     * stops, whatever the update strategy says. */
    bool make_before_break = w->moving != NULL || w->move_stopped != NULL || n_draining > 0;
    if (make_before_break) {
        unavailable = 0;
        if (surge == 0)
            surge = 1;
    }
    size_t to_place = 0;
    if (n_old == 0) {
        if (n_cur < desired)
            to_place = desired - n_cur;
    } else if (!crash_loop) {
        /* Rolling update: grow the new generation while the total stays within
         * desired + max_surge. */
        size_t limit = (size_t)desired + surge;
        size_t room = n_live < limit ? limit - n_live : 0;
        size_t want = n_cur < desired ? desired - n_cur : 0;
        to_place = room < want ? room : want;
    }

    /* Excess replicas of the current generation (scale-down). */
    if (n_cur > desired) {
        qsort(cur, n_cur, sizeof(*cur), stop_order);
        for (size_t i = 0; i < n_cur - desired; i++) {
            if (is_ready(cur[i]) && n_ready > 0)
                n_ready--;
            add_stop(b, cur[i], "scaled down");
        }
    }
    /* Outdated replicas: the ones not ready go at once; ready ones only while the ready
     * count stays at or above desired - max_unavailable. A crash-looping new generation
     * halts this, so the old replicas keep serving. */
    if (n_old > 0) {
        qsort(old, n_old, sizeof(*old), stop_order);
        size_t min_ready = desired > unavailable ? desired - unavailable : 0;
        size_t cur_kept = n_cur < desired ? n_cur : desired;
        /* Without max_surge no new replica is placed before an old one stops: up to
         * max_unavailable of them stop ahead of their replacements. */
        size_t ahead = surge == 0 ? unavailable : 0;
        for (size_t i = 0; i < n_old; i++) {
            struct replica_row *r = old[i];
            char why[192];
            if (r->node_state == GANTRY__NODE_STATE__NODE_DRAINING &&
                r->generation >= w->generation)
                snprintf(why, sizeof(why), "node %s is draining", r->node);
            else
                snprintf(why, sizeof(why), "replaced by generation %" PRIu64, w->generation);
            if (!is_ready(r)) {
                if (!crash_loop)
                    add_stop(b, r, why);
                continue;
            }
            /* Never more old replicas than the new generation leaves room for. */
            bool above_min = n_ready > min_ready;
            bool surplus = (size_t)(n_old - i) + cur_kept + ahead > desired;
            if (!crash_loop && above_min && surplus) {
                add_stop(b, r, why);
                n_ready--;
            }
        }
    }
    condition(b, w->name, SCH_CONDITION_ROLLOUT_HALTED, w->rollout_halted,
              n_old > 0 && crash_loop
                  ? "the new generation is crash-looping; the previous one keeps serving"
                  : "",
              now_ms);

    char reason[1024] = "";
    bool host_ports = gy_spec_has_host_ports(&w->spec);
    if (to_place > 0 && reconcile_load_nodes(st) == 0) {
        for (size_t k = 0; k < w->n_replicas; k++) {
            struct replica_row *r = &st->replicas[w->first_replica + k];
            bool live = sch_replica_state_is_live(r->state);
            /* Stopping replicas hold host ports until they have stopped. */
            bool stopping = host_ports && r->state == GANTRY__REPLICA_STATE__REPLICA_STOPPING;
            struct node_row *n = live || stopping ? reconcile_node_find(st, r->node) : NULL;
            if (n != NULL && live)
                n->view.workload_replicas++;
            else if (n != NULL)
                n->view.workload_stopping++;
        }
        reconcile_allocations(st);
        struct sch_place_node *views = gy_xcalloc(st->n_nodes + 1, sizeof(*views));
        for (size_t i = 0; i < st->n_nodes; i++)
            views[i] = st->nodes[i].view;
        image_locality(st, &w->spec, views);
        size_t *idx = gy_xcalloc(to_place, sizeof(*idx));
        struct sch_place_result res = {.node_index = idx};
        struct gy_error err;
        if (sch_place(views, st->n_nodes, &w->spec, (uint32_t)to_place, &res, &err) < 0) {
            memcpy(reason, err.msg,
                   sizeof(reason) < sizeof(err.msg) ? sizeof(reason) : sizeof(err.msg));
            reason[sizeof(reason) - 1] = '\0';
        } else {
            for (uint32_t i = 0; i < res.placed; i++) {
                char id[128];
                make_id(id, sizeof(id), w, rnd, rnd_data, st);
                add_place(b, id, w->name, w->generation, st->nodes[idx[i]].name);
            }
            for (size_t i = 0; i < st->n_nodes; i++)
                st->nodes[i].view.allocated = views[i].allocated;
            if (res.placed < to_place) {
                int n = snprintf(reason, sizeof(reason),
                                 "%zu of %zu replicas cannot be placed: ", to_place - res.placed,
                                 to_place);
                if (n > 0 && (size_t)n < sizeof(reason))
                    strncat(reason, res.reason, sizeof(reason) - (size_t)n - 1);
            }
            if (res.placed < to_place && res.held_by_workload > 0)
                host_port_handover(st, w, b, views, &res, to_place - res.placed, old, n_old,
                                   &n_ready, unavailable,
                                   n_old > 0 && !crash_loop && !make_before_break, reason);
        }
        free(idx);
        free(views);
    }
    condition(b, w->name, SCH_CONDITION_UNSCHEDULABLE, w->unschedulable, reason, now_ms);
    move_progress(b, w, cur, n_cur, n_old, crash_loop, reason, now_ms);
    if (n_gone > 0) {
        /* cur and old together: every replica that counts. */
        memcpy(cur + n_cur, old, n_old * sizeof(*old));
        stop_replaced(b, w, cur, n_cur + n_old, gone, n_gone);
    }
    /* The per-node counts of this workload go back to zero for the next one. */
    for (size_t k = 0; k < w->n_replicas; k++) {
        struct node_row *n = reconcile_node_find(st, st->replicas[w->first_replica + k].node);
        if (n != NULL) {
            n->view.workload_replicas = 0;
            n->view.workload_stopping = 0;
        }
    }
    free(cur);
    free(old);
    free(gone);
}

int sch_reconcile_plan(struct sch_fsm *fsm, const char *const *only, size_t n_only, uint64_t now_ms,
                       sch_random_fn rnd, void *rnd_data, struct sch_reconcile_plan *plan,
                       struct gy_error *err)
{
    struct sch_reconcile_time time = {.wall_ms = now_ms};
    return sch_reconcile_plan_at(fsm, only, n_only, &time, rnd, rnd_data, plan, err);
}

int sch_reconcile_plan_at(struct sch_fsm *fsm, const char *const *only, size_t n_only,
                          const struct sch_reconcile_time *time, sch_random_fn rnd, void *rnd_data,
                          struct sch_reconcile_plan *plan, struct gy_error *err)
{
    uint64_t now_ms = time->wall_ms;
    memset(plan, 0, sizeof(*plan));
    struct reconcile_state st;
    memset(&st, 0, sizeof(st));
    st.fsm = fsm;
    st.time = time;
    int rc = reconcile_load(&st, only, n_only, err);
    if (rc < 0) {
        reconcile_state_free(&st);
        return rc;
    }
    struct builder b;
    memset(&b, 0, sizeof(b));
    for (size_t i = 0; i < st.n_workloads; i++)
        if (st.workloads[i].decoded)
            plan_workload(&st, &st.workloads[i], &b, now_ms, rnd, rnd_data);
    drained_nodes(fsm, &b, now_ms);
    if (st.nodes_rc < 0) {
        /* Nothing decided without the nodes is proposed. */
        *err = st.nodes_err;
        rc = st.nodes_rc;
        reconcile_state_free(&st);
        builder_free(&b);
        return rc;
    }
    reconcile_state_free(&st);

    size_t n_cmds = (b.n_place > 0) + (b.n_stop > 0) + b.n_extra;
    plan->placed = b.n_place;
    plan->stopped = b.n_stop;
    plan->conditions = b.n_extra;
    if (n_cmds == 0)
        return 0;
    Gantry__Command **cmds = gy_xcalloc(n_cmds, sizeof(*cmds));
    size_t n = 0;
    if (b.n_place > 0) {
        Gantry__Command *c = fleet_command_new("reconciler", now_ms);
        Gantry__PlaceReplicas *p = gy_xmalloc(sizeof(*p));
        gantry__place_replicas__init(p);
        p->replicas = b.place;
        p->n_replicas = b.n_place;
        c->cmd_case = GANTRY__COMMAND__CMD_PLACE_REPLICAS;
        c->place_replicas = p;
        cmds[n++] = c;
    }
    if (b.n_stop > 0) {
        Gantry__Command *c = fleet_command_new("reconciler", now_ms);
        Gantry__UpdateReplicas *u = gy_xmalloc(sizeof(*u));
        gantry__update_replicas__init(u);
        u->updates = b.stop;
        u->n_updates = b.n_stop;
        c->cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
        c->update_replicas = u;
        cmds[n++] = c;
    }
    for (size_t i = 0; i < b.n_extra; i++)
        cmds[n++] = b.extra[i];
    free(b.extra);
    plan->command = fleet_command_batch("reconciler", now_ms, cmds, n);
    return 0;
}

void sch_reconcile_plan_free(struct sch_reconcile_plan *plan)
{
    /* Every part was allocated with malloc, as protobuf-c's unpacker would have. */
    if (plan->command != NULL)
        protobuf_c_message_free_unpacked(&plan->command->base, NULL);
    plan->command = NULL;
}
