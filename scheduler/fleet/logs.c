/* The log relay: the leader asks a replica's agent for its log and hands the chunks of the
 * answer to the sink the caller gave (the API streams them to its client). */
#include "scheduler/fleet/fleet_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/state/query_fleet.h"

struct fleet_log {
    struct fleet_log *next;
    uint64_t id;
    struct sch_fleet_log_sink sink;
    struct fleet_session *session;
    bool follow;
    bool started;
};

/* Ends a relay: the sink is told (with error, or NULL at the end of the log) and, for a
 * follow, the agent is told to stop sending. */
static void log_finish(struct sch_fleet *f, struct fleet_log *r, const char *error)
{
    if (r->follow && r->session != NULL && !r->session->closing) {
        Gantry__LogRequest cancel = GANTRY__LOG_REQUEST__INIT;
        cancel.request_id = r->id;
        cancel.cancel = 1;
        Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
        frame.frame_case = GANTRY__AGENT_FRAME__FRAME_LOG_REQUEST;
        frame.log_request = &cancel;
        fleet_session_send(r->session, &frame);
    }
    for (struct fleet_log **p = &f->logs; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    r->sink.end(r->sink.data, r->started, r->started ? NULL : error);
    free(r);
}

void fleet_logs_end(struct sch_fleet *f, struct fleet_session *s, const char *why)
{
    for (struct fleet_log *r = f->logs, *next; r != NULL; r = next) {
        next = r->next;
        if (s == NULL || r->session == s)
            log_finish(f, r, why);
    }
}

void fleet_log_chunk(struct sch_fleet *f, const Gantry__LogChunk *c)
{
    struct fleet_log *r = f->logs;
    while (r != NULL && r->id != c->request_id)
        r = r->next;
    if (r == NULL)
        return;
    if (c->error != NULL && c->error[0] != '\0' && !r->started) {
        log_finish(f, r, c->error);
        return;
    }
    if (!r->started) {
        r->sink.start(r->sink.data);
        r->started = true;
    }
    bool alive = true;
    if (c->data.len > 0)
        alive = r->sink.write(r->sink.data, (const char *)c->data.data, c->data.len);
    if (c->eof || !alive)
        log_finish(f, r, NULL);
}

int sch_fleet_logs(struct sch_fleet *f, const char *replica_id, bool follow,
                   const struct sch_fleet_log_sink *sink, struct gy_error *err)
{
    char node[256];
    if (f == NULL)
        return gy_error_set(err, GY_EUNAVAILABLE, "the server is shutting down");
    if (!sch_query_replica_node(&f->node->fsm, replica_id, node, sizeof(node)) || node[0] == '\0')
        return gy_error_set(err, GY_ENOTFOUND, "replica \"%s\" not found", replica_id);
    struct fleet_session *s = fleet_session_of(f, node);
    if (s == NULL)
        return gy_error_set(err, GY_EUNAVAILABLE, "node %s of replica %s is not connected", node,
                            replica_id);
    struct fleet_log *r = gy_xcalloc(1, sizeof(*r));
    r->id = ++f->next_log_id;
    r->sink = *sink;
    r->session = s;
    r->follow = follow;
    r->next = f->logs;
    f->logs = r;
    Gantry__LogRequest req = GANTRY__LOG_REQUEST__INIT;
    req.request_id = r->id;
    req.replica_id = (char *)replica_id;
    req.follow = follow;
    Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
    frame.frame_case = GANTRY__AGENT_FRAME__FRAME_LOG_REQUEST;
    frame.log_request = &req;
    fleet_session_send(s, &frame);
    return 0;
}
