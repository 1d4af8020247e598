/* The leader's duties: one pass after each burst of applied commands and every tick. A
 * pass follows leadership (a new leader waits for a barrier of its term, a former one
 * drops its agents), then judges liveness, proposes the waiting replica reports, drives
 * reconcile (its placements committed in slices) and the autoscaler, and pushes the
 * assignments that changed. The tick also closes agent sessions that fell silent and
 * hands freed heap back to the system. */
#include "scheduler/fleet/fleet_internal.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef GANTRY_WITH_MIMALLOC
#include <mimalloc.h>
#endif

#include "common/log.h"
#include "common/xalloc.h"

/* Runs the duties soon: a few milliseconds coalesce a burst of applied commands into one
 * pass, which matters when each pass reads the whole state. */
#define KICK_DELAY_MS 5
/* Replicas placed by one proposal at most. */
#define PLACE_SLICE 4096
/* Slices in flight at once. One: proposals made while entries are in flight share the
 * next entry, so a second slice in flight would make the entries (and applies) longer. */
#define PLACE_INFLIGHT 1
/* How often a pass looks for drained nodes and for workloads waiting for room. */
#define ROOM_EVERY_MS 1000
/* A pass longer than this delays Raft's heartbeats (and the agents' frames) on this loop. */
#define SLOW_DUTIES_NS (50 * 1000000ULL)
/* How often freed heap is handed back to the system. A leader allocates and frees far more
 * than a follower (requests, plans, pushes); glibc keeps what was freed in the middle of
 * its heap, which measured 9 of a leader's 27 MB after a burst of 8,000 applies, and
 * mimalloc keeps freed pages for reuse until it is asked to collect. */
#define TRIM_EVERY_MS 10000

static void duties(struct sch_fleet *f);

static void on_kick(uv_timer_t *t)
{
    duties(t->data);
}

void fleet_kick(struct sch_fleet *f)
{
    if (!f->closing && !f->stop_leading && !uv_is_active((uv_handle_t *)&f->kick))
        uv_timer_start(&f->kick, on_kick, KICK_DELAY_MS, 0);
}

static uint32_t fleet_random(void *data)
{
    struct sch_fleet *f = data;
    /* xorshift64*: replica ids only need to be unlikely to collide. */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (uint32_t)((f->rng * 2685821657736338717ULL) >> 32);
}

/* ---------------------------------------------------------------------------------------
 * Liveness and replica status */

static void liveness_done(void *data, int status, const struct sch_result *result,
                          const char *message)
{
    struct sch_fleet *f = data;
    if (!fleet_settled(f))
        return;
    f->liveness_inflight = false;
    if (status < 0)
        gy_log_warn("node state not recorded", "error=\"%s\"", message ? message : "");
    else if (result != NULL && result->code < 0)
        gy_log_warn("node state refused", "error=\"%s\"", result->message ? result->message : "");
    fleet_kick(f);
}

static void liveness(struct sch_fleet *f)
{
    if (f->liveness_inflight)
        return;
    struct sch_liveness_verdict verdict;
    struct gy_error err;
    int rc = sch_liveness_judge(&f->liveness, &f->node->fsm, uv_now(f->loop), fleet_wall_ms(),
                                &verdict, &err);
    if (rc < 0)
        gy_log_warn("liveness not judged", "error=\"%s\"", err.msg);
    if (rc <= 0)
        return;
    gy_log_warn("node is down", "node=%s silent_ms=%" PRIu64 " unknown_replicas=%zu", verdict.node,
                f->liveness.timeout_ms, verdict.unknown);
    if (fleet_propose(f, verdict.command, liveness_done, false, &err) == 0)
        f->liveness_inflight = true;
    sch_liveness_verdict_free(&verdict);
}

static void status_done(void *data, int status, const struct sch_result *result,
                        const char *message)
{
    struct sch_fleet *f = data;
    (void)result;
    if (!fleet_settled(f))
        return;
    f->status_inflight = false;
    gy_log_debug("replica status recorded", "status=%d", status);
    if (status < 0)
        gy_log_warn("replica status not recorded", "error=\"%s\"", message ? message : "");
    fleet_kick(f);
}

static void status_flush(struct sch_fleet *f)
{
    if (f->status_inflight)
        return;
    Gantry__Command cmd;
    Gantry__UpdateReplicas up;
    size_t n = sch_status_take(&f->status, fleet_wall_ms(), &cmd, &up);
    if (n == 0)
        return;
    struct gy_error err;
    if (fleet_propose(f, &cmd, status_done, false, &err) == 0)
        f->status_inflight = true;
    gy_log_debug("replica status proposed", "reports=%zu", n);
    sch_status_drop(&f->status, n);
}

/* ---------------------------------------------------------------------------------------
 * Reconcile */

void fleet_plan_release(struct sch_fleet *f)
{
    if (f->place != NULL)
        f->place->n_replicas = f->place_total; /* all of them are freed */
    sch_reconcile_plan_free(&f->plan);
    f->place = NULL;
    f->place_next = f->place_total = 0;
    f->place_inflight = 0;
    f->place_failed = false;
}

static void reconcile_done(void *data, int status, const struct sch_result *result,
                           const char *message);

/* Proposes the next slice of the kept plan's placements; false when none is left or the
 * proposal failed. */
static bool place_next_slice(struct sch_fleet *f)
{
    if (f->place == NULL || f->place_next >= f->place_total)
        return false;
    size_t n = f->place_total - f->place_next;
    if (n > PLACE_SLICE)
        n = PLACE_SLICE;
    Gantry__PlaceReplicas p = GANTRY__PLACE_REPLICAS__INIT;
    p.replicas = f->place->replicas + f->place_next;
    p.n_replicas = n;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.time_ms = fleet_wall_ms();
    cmd.actor = (char *)"reconciler";
    cmd.cmd_case = GANTRY__COMMAND__CMD_PLACE_REPLICAS;
    cmd.place_replicas = &p;
    struct gy_error err;
    if (fleet_propose(f, &cmd, reconcile_done, false, &err) < 0) {
        gy_log_warn("reconcile not proposed", "error=\"%s\"", err.msg);
        return false;
    }
    f->place_next += n;
    f->place_inflight++;
    return true;
}

static void reconcile_done(void *data, int status, const struct sch_result *result,
                           const char *message)
{
    struct sch_fleet *f = data;
    if (!fleet_settled(f))
        return;
    f->place_inflight--;
    if (status < 0) {
        gy_log_warn("reconcile not recorded", "error=\"%s\"", message ? message : "");
        /* The workloads it was about are no longer marked: look at all of them again. */
        f->dirty_reconcile = true;
        f->place_failed = true;
    } else if (result != NULL) {
        for (size_t i = 0; i < result->n_batch; i++)
            if (result->batch[i].code < 0)
                gy_log_warn("reconcile step refused", "error=\"%s\"",
                            result->batch[i].message ? result->batch[i].message : "");
        if (result->n_batch == 0 && result->code < 0)
            gy_log_warn("reconcile step refused", "error=\"%s\"",
                        result->message ? result->message : "");
    }
    if (!f->place_failed && f->leading)
        place_next_slice(f);
    if (f->place_inflight > 0)
        return; /* the pass ends when its last proposal settles */
    if (f->place != NULL && f->place_next < f->place_total)
        f->dirty_reconcile = true; /* the rest is planned again */
    fleet_plan_release(f);
    f->reconcile_inflight = false;
    /* What was just applied may call for more. */
    fleet_kick(f);
}

/* How long the leader has known node down, on the liveness clock. */
static uint64_t down_for(void *data, const char *node)
{
    struct sch_fleet *f = data;
    return sch_liveness_down_for(&f->liveness, node, uv_now(f->loop));
}

/* One pass over the named workloads (all of them when only is NULL). */
static void reconcile(struct sch_fleet *f, const char *const *only, size_t n_only)
{
    if (f->reconcile_inflight)
        return;
    f->reconcile_passes++;
    f->reconciled_at = uv_now(f->loop);
    struct sch_reconcile_plan *plan = &f->plan;
    struct gy_error err;
    struct sch_reconcile_time time = {.wall_ms = fleet_wall_ms(),
                                      .down_for = down_for,
                                      .down_data = f,
                                      .image_bytes = fleet_image_bytes,
                                      .image_data = f};
    int rc = sch_reconcile_plan_at(&f->node->fsm, only, n_only, &time, fleet_random, f, plan, &err);
    if (rc < 0) {
        gy_log_warn("reconcile failed", "error=\"%s\"", err.msg);
        return;
    }
    if (plan->command == NULL)
        return;
    gy_log_debug("reconcile", "placed=%zu stopped=%zu conditions=%zu", plan->placed, plan->stopped,
                 plan->conditions);
    /* The first proposal carries the stops, the conditions and the first slice of the
     * placements; the rest follow one by one (reconcile_done). */
    Gantry__CommandBatch *batch = plan->command->batch;
    for (size_t i = 0; batch != NULL && i < batch->n_commands; i++) {
        if (batch->commands[i]->cmd_case == GANTRY__COMMAND__CMD_PLACE_REPLICAS) {
            f->place = batch->commands[i]->place_replicas;
            f->place_total = f->place->n_replicas;
            f->place_next = f->place_total < PLACE_SLICE ? f->place_total : PLACE_SLICE;
            f->place->n_replicas = f->place_next;
        }
    }
    if (fleet_propose(f, plan->command, reconcile_done, true, &err) == 0) {
        f->reconcile_inflight = true;
        f->place_inflight = 1;
        while (f->place_inflight < PLACE_INFLIGHT && place_next_slice(f))
            ;
        return;
    }
    gy_log_warn("reconcile not proposed", "error=\"%s\"", err.msg);
    fleet_plan_release(f);
}

/* Reconciles the workloads that applied commands touched, so that a pass costs what
 * changed; a full pass follows leadership changes and failures. Once a second it also
 * looks at what no workload's change marks: a drain ends when its node's last replica has
 * stopped, and room freed by stopped replicas lets waiting workloads be placed. */
static void reconcile_due(struct sch_fleet *f)
{
    struct sch_fsm *fsm = &f->node->fsm;
    char **names;
    size_t n;
    bool all;
    sch_fsm_dirty_take(fsm, &names, &n, &all);
    if (f->dirty_reconcile)
        all = true;
    /* The autoscaler reads again only what changed, too. */
    sch_autoscaler_changed(f->autoscaler, names, n, all);
    if (!all && sch_autoscaler_discover(f->autoscaler, fsm) < 0)
        gy_log_warn("autoscaler failed", "error=\"cannot read the changed workloads\"");
    if (all || n > 0) {
        f->dirty_reconcile = false;
        reconcile(f, all ? NULL : (const char *const *)names, n);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    uint64_t now = uv_now(f->loop);
    if (f->reconcile_inflight || now - f->drain_checked_at < ROOM_EVERY_MS)
        return;
    f->drain_checked_at = now;
    static const char *const none[1] = {""};
    char **waiting = NULL;
    size_t n_waiting = 0;
    if (fsm->room_epoch != f->room_seen) {
        f->room_seen = fsm->room_epoch;
        n_waiting = sch_reconcile_waiting(fsm, &waiting);
    }
    /* Workloads with replicas on cut-off nodes: their disconnect_grace ends with time. */
    char **cut = NULL;
    size_t n_cut = sch_reconcile_cut_off(fsm, &cut);
    if (n_cut > 0) {
        waiting = gy_xrealloc(waiting, (n_waiting + n_cut) * sizeof(*waiting));
        memcpy(waiting + n_waiting, cut, n_cut * sizeof(*cut));
        n_waiting += n_cut;
    }
    free(cut);
    if (now - f->restopped_at >= SCH_ASSIGN_RESTOP_MS) {
        f->restopped_at = now;
        fleet_restop(f);
    }
    if (n_waiting > 0 || sch_reconcile_drain_due(fsm))
        reconcile(f, n_waiting > 0 ? (const char *const *)waiting : none, n_waiting);
    for (size_t i = 0; i < n_waiting; i++)
        free(waiting[i]);
    free(waiting);
}

/* ---------------------------------------------------------------------------------------
 * Autoscaling */

static void autoscale_done(void *data, int status, const struct sch_result *result,
                           const char *message)
{
    struct sch_fleet *f = data;
    if (!fleet_settled(f))
        return;
    f->autoscale_inflight = false;
    if (status < 0)
        gy_log_warn("autoscale decision not recorded", "error=\"%s\"", message ? message : "");
    else if (result != NULL)
        for (size_t i = 0; i < result->n_batch; i++)
            if (result->batch[i].code < 0)
                gy_log_warn("autoscale decision refused", "error=\"%s\"",
                            result->batch[i].message ? result->batch[i].message : "");
}

/* Every SCH_AUTOSCALE_EVAL_MS: scale commands for the workloads whose load calls for it,
 * and the metric probes that are due. */
static void autoscale(struct sch_fleet *f)
{
    uint64_t now = uv_now(f->loop);
    if (f->autoscale_inflight || now - f->autoscaled_at < SCH_AUTOSCALE_EVAL_MS)
        return;
    f->autoscaled_at = now;
    struct sch_autoscale_plan plan;
    struct gy_error err;
    if (sch_autoscaler_plan(f->autoscaler, &f->node->fsm, now, fleet_wall_ms(), &plan, &err) < 0) {
        gy_log_warn("autoscaler failed", "error=\"%s\"", err.msg);
        return;
    }
    if (plan.command != NULL) {
        for (size_t i = 0; i < plan.command->batch->n_commands; i++) {
            const Gantry__ScaleWorkload *sc = plan.command->batch->commands[i]->scale_workload;
            gy_log_info("autoscale", "workload=%s replicas=%u reason=\"%s\"", sc->name,
                        sc->replicas, sc->reason);
        }
        if (fleet_propose(f, plan.command, autoscale_done, false, &err) == 0)
            f->autoscale_inflight = true;
        else
            gy_log_warn("autoscale decision not proposed", "error=\"%s\"", err.msg);
    }
    for (size_t i = 0; i < plan.n_probes; i++) {
        struct fleet_session *s = fleet_session_of(f, plan.probes[i].node);
        if (s == NULL)
            continue;
        Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
        frame.frame_case = GANTRY__AGENT_FRAME__FRAME_METRIC_PROBE;
        frame.metric_probe = plan.probes[i].probe;
        fleet_session_send(s, &frame);
    }
    sch_autoscale_plan_free(&plan);
}

/* ---------------------------------------------------------------------------------------
 * The pass */

static void caught_up(void *data, int status, const char *message)
{
    struct sch_fleet *f = data;
    if (!fleet_settled(f))
        return;
    f->barrier_inflight = false;
    if (status < 0) {
        gy_log_warn("leader barrier failed", "error=\"%s\"", message ? message : "");
        return;
    }
    if (f->leading) {
        f->caught_up = true;
        f->dirty_reconcile = true;
        fleet_kick(f);
    }
}

/* Follows the Raft node's leadership; true when the fleet leads and has caught up. */
static bool follow_leadership(struct sch_fleet *f)
{
    bool leading = sch_node_is_leader(f->node) && !f->stop_leading;
    if (leading && !f->leading) {
        sch_liveness_lead(&f->liveness, uv_now(f->loop));
        f->caught_up = false;
        gy_log_info("leading the fleet", "sessions=%d", f->sessions != NULL);
    }
    /* A new leader may not have applied everything its predecessor committed yet: it
     * decides nothing before a barrier of its own term has applied, or it could place
     * replicas that an entry still in its log already placed. */
    if (leading && !f->caught_up && !f->barrier_inflight) {
        struct gy_error err;
        if (sch_node_barrier(f->node, caught_up, f, &err) == 0) {
            f->barrier_inflight = true;
            f->inflight++;
        }
    }
    if (!leading && f->leading) {
        /* Agents must follow the new leader: drop every session, they reconnect. */
        while (f->sessions != NULL)
            fleet_session_close(f->sessions, "no longer the leader");
        sch_status_clear(&f->status);
        sch_autoscaler_reset(f->autoscaler);
        sch_push_queue_clear(&f->push);
        /* A later leadership counts stops from when it sees them. */
        sch_idset_free(&f->stopping);
    }
    f->leading = leading;
    return leading && f->caught_up;
}

static void duties(struct sch_fleet *f)
{
    sch_fsm_drain(&f->node->fsm);
    if (!follow_leadership(f))
        return;
    uint64_t t0 = uv_hrtime();
    liveness(f);
    uint64_t t1 = uv_hrtime();
    status_flush(f);
    uint64_t t2 = uv_hrtime();
    if (!f->reconcile_inflight)
        reconcile_due(f);
    uint64_t t3 = uv_hrtime();
    struct sch_fsm *fsm = &f->node->fsm;
    if (fsm->fleet_epoch != f->pushed_epoch) {
        f->pushed_epoch = fsm->fleet_epoch;
        fleet_push_changed(f);
    }
    fleet_push_some(f);
    autoscale(f);
    uint64_t t4 = uv_hrtime();
    if (t4 - t0 >= SLOW_DUTIES_NS)
        gy_log_debug("slow duties",
                     "liveness_ms=%" PRIu64 " status_ms=%" PRIu64 " reconcile_ms=%" PRIu64
                     " push_ms=%" PRIu64,
                     (t1 - t0) / 1000000, (t2 - t1) / 1000000, (t3 - t2) / 1000000,
                     (t4 - t3) / 1000000);
}

/* Closes the agent sessions not heard from within the silence limit: the agent on the
 * other side leaves a silent server after as long, so such a session is dead either way,
 * and closing it ends what it serves (log relays) at once. */
static void sessions_expire(struct sch_fleet *f)
{
    struct sch_session_timeouts limits;
    sch_liveness_session_timeouts(f->liveness.timeout_ms, &limits);
    uint64_t now = uv_now(f->loop);
    struct sch_fleet_node *n, *next;
    HASH_ITER(hh, f->liveness.nodes, n, next)
    {
        if (n->agent == NULL ||
            !sch_liveness_session_silent(&f->liveness, n, now, limits.silence_ms))
            continue;
        char why[96];
        snprintf(why, sizeof(why), "no frame from the agent for %" PRIu32 "ms", limits.silence_ms);
        fleet_session_close(n->agent, why);
    }
}

void fleet_on_tick(uv_timer_t *t)
{
    struct sch_fleet *f = t->data;
    sessions_expire(f);
    duties(f);
    uint64_t now = uv_now(f->loop);
    if (now - f->trimmed_at >= TRIM_EVERY_MS) {
        f->trimmed_at = now;
#ifdef GANTRY_WITH_MIMALLOC
        mi_collect(true);
#else
        malloc_trim(0);
#endif
    }
}
