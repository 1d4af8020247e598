/* The fleet's life cycle and what the API reads of it; see fleet.h. */
#include "scheduler/fleet/fleet_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xalloc.h"

/* The period of the duties' regular pass. */
#define FLEET_TICK_MS 100

uint64_t fleet_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Frees a closing fleet once its last handle is closed and its last proposal settled:
 * Raft calls back after the fleet's part of the server has closed. */
static void fleet_maybe_free(struct sch_fleet *f)
{
    if (f->open_handles > 0 || f->inflight > 0 || !f->closing)
        return;
    void (*cb)(void *) = f->close_cb;
    void *arg = f->close_arg;
    sch_autoscaler_free(f->autoscaler);
    sch_liveness_free(&f->liveness);
    free(f);
    if (cb != NULL)
        cb(arg);
}

void fleet_handle_gone(struct sch_fleet *f)
{
    f->open_handles--;
    fleet_maybe_free(f);
}

static void handle_closed(uv_handle_t *h)
{
    fleet_handle_gone(h->data);
}

int fleet_propose(struct sch_fleet *f, const Gantry__Command *cmd, sch_propose_cb cb, bool lazy,
                  struct gy_error *err)
{
    int rc = lazy ? sch_node_propose_lazy(f->node, cmd, cb, f, err)
                  : sch_node_propose(f->node, cmd, cb, f, err);
    if (rc == 0)
        f->inflight++;
    return rc;
}

bool fleet_settled(struct sch_fleet *f)
{
    f->inflight--;
    if (f->closing) {
        fleet_maybe_free(f);
        return false;
    }
    return true;
}

int sch_fleet_start(uv_loop_t *loop, struct sch_node *node, const struct sch_fleet_config *cfg,
                    struct sch_fleet **out, struct gy_error *err)
{
    struct sch_fleet *f = gy_xcalloc(1, sizeof(*f));
    f->loop = loop;
    f->node = node;
    f->cfg = *cfg;
    if (f->cfg.node_down_ms == 0)
        f->cfg.node_down_ms = SCH_DEFAULT_NODE_DOWN_MS;
    sch_liveness_init(&f->liveness, f->cfg.node_down_ms);
    f->rng = fleet_wall_ms() ^ ((uint64_t)node->cfg.id << 32) ^ 0x9e3779b97f4a7c15ULL;
    f->autoscaler = sch_autoscaler_new();
    *out = f;
    uv_timer_init(loop, &f->tick);
    uv_timer_init(loop, &f->kick);
    f->tick.data = f;
    f->kick.data = f;
    f->open_handles = 2;
    int rc = fleet_listen(f, err);
    if (rc < 0)
        return rc;
    uv_timer_start(&f->tick, fleet_on_tick, FLEET_TICK_MS, FLEET_TICK_MS);
    return 0;
}

void sch_fleet_stop_leading(struct sch_fleet *f)
{
    if (f != NULL)
        f->stop_leading = true;
}

void sch_fleet_close(struct sch_fleet *f, void (*cb)(void *arg), void *arg)
{
    if (f == NULL) {
        if (cb != NULL)
            cb(arg);
        return;
    }
    f->close_cb = cb;
    f->close_arg = arg;
    f->closing = true;
    fleet_logs_end(f, NULL, "the server is shutting down");
    fleet_images_end(f, NULL, "the server is shutting down");
    while (f->sessions != NULL)
        fleet_session_close(f->sessions, "server shutting down");
    sch_status_clear(&f->status);
    sch_push_queue_clear(&f->push);
    sch_idset_free(&f->stopping);
    fleet_plan_release(f);
    if (f->listener_init)
        uv_close((uv_handle_t *)&f->listener, handle_closed);
    uv_close((uv_handle_t *)&f->tick, handle_closed);
    uv_close((uv_handle_t *)&f->kick, handle_closed);
}

void sch_fleet_applied(struct sch_fleet *f)
{
    if (f != NULL)
        fleet_kick(f);
}

json_t *sch_fleet_top(struct sch_fleet *f, const char *workload, struct gy_error *err)
{
    if (f == NULL || !f->leading || !f->caught_up) {
        gy_error_set(err, GY_EUNAVAILABLE, "the leader is starting; retry shortly");
        return NULL;
    }
    return sch_autoscaler_top(f->autoscaler, &f->node->fsm, workload, uv_now(f->loop), err);
}

json_t *sch_fleet_autoscaler_json(struct sch_fleet *f, const char *workload)
{
    if (f == NULL || !f->leading)
        return NULL;
    return sch_autoscaler_workload_json(f->autoscaler, workload, uv_now(f->loop));
}

void sch_fleet_stats(struct sch_fleet *f, struct sch_fleet_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (f == NULL)
        return;
    out->leading = f->leading;
    out->caught_up = f->caught_up;
    out->reconcile_inflight = f->reconcile_inflight;
    out->autoscale_inflight = f->autoscale_inflight;
    out->pending_status = f->status.n;
    out->reconcile_passes = f->reconcile_passes;
    out->reconcile_age_ms = f->reconciled_at ? uv_now(f->loop) - f->reconciled_at : 0;
}
