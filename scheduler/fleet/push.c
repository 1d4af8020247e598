/* Assignments on their way to the agents: the difference for a session (assign.h) sent as
 * an Assignment frame, and the queue of nodes due one, pushed in slices. */
#include "scheduler/fleet/fleet_internal.h"

#include "common/log.h"

void fleet_push(struct fleet_session *s, bool full, struct sch_spec_cache *cache)
{
    struct sch_fleet *f = s->fleet;
    struct sch_assignment as;
    struct gy_error err;
    int rc = sch_assign_diff(&f->node->fsm, s->node->name, full, &s->sent, cache, &as, &err);
    if (rc < 0) {
        gy_log_warn("assignment not pushed", "node=%s error=\"%s\"", s->node->name, err.msg);
        return;
    }
    if (rc > 0) {
        Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
        frame.frame_case = GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT;
        frame.assignment = &as.msg;
        fleet_session_send(s, &frame);
        gy_log_debug("assignment pushed", "node=%s start=%zu stop=%zu", s->node->name,
                     as.msg.n_start, as.msg.n_stop);
    }
    sch_assignment_free(&as);
}

static bool connected(void *data, const char *node)
{
    return fleet_session_of(data, node) != NULL;
}

void fleet_push_changed(struct sch_fleet *f)
{
    struct gy_error err;
    if (sch_push_queue_changed(&f->push, &f->node->fsm, connected, f, &err) < 0)
        gy_log_warn("assignments not pushed", "error=\"%s\"", err.msg);
}

/* A stop sent long ago of a replica still stopping: forgotten, so that the node's next
 * push sends it again. */
static void stale_stop(void *data, const char *id, const char *node)
{
    struct sch_fleet *f = data;
    struct fleet_session *s = fleet_session_of(f, node);
    if (s != NULL && sch_assign_sent_forget_stop(&s->sent, id))
        sch_push_queue_add(&f->push, node);
}

void fleet_restop(struct sch_fleet *f)
{
    struct gy_error err;
    if (sch_assign_stale_stops(&f->node->fsm, &f->stopping, stale_stop, f, &err) < 0)
        gy_log_warn("stops not sent again", "error=\"%s\"", err.msg);
}

/* Loop time one call of fleet_push_some may take: Raft's heartbeats and the agents' frames
 * are served in between. */
#define PUSH_SLICE_NS (20 * 1000000ULL)

void fleet_push_some(struct sch_fleet *f)
{
    if (f->push.pos == f->push.n)
        return;
    uint64_t start = uv_hrtime();
    struct sch_spec_cache cache = {0};
    const char *node;
    while (uv_hrtime() - start < PUSH_SLICE_NS && (node = sch_push_queue_next(&f->push)) != NULL) {
        struct fleet_session *s = fleet_session_of(f, node);
        if (s != NULL)
            fleet_push(s, false, &cache);
    }
    sch_spec_cache_clear(&cache);
    if (f->push.pos == f->push.n)
        sch_push_queue_clear(&f->push);
    else
        fleet_kick(f);
}
