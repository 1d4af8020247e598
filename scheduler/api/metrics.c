/* GET /metrics: the Prometheus text exposition of the Raft position, leadership, the
 * leader's duties, state machine counters, and per route answer counts and latency
 * histograms (docs/api.md lists them). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/api/api_internal.h"
#include "scheduler/fleet/fleet.h"

static const double latency_bounds[SCH_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.5, 10.0,
};

void sch_metrics_observe(struct sch_api *api, enum sch_route route, int status,
                         uint64_t received_ns)
{
    struct sch_route_metrics *m = &api->metrics[route];
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        m->by_class[cls]++;
    double seconds = (double)(uv_hrtime() - received_ns) / 1e9;
    if (received_ns == 0 || seconds < 0)
        seconds = 0;
    size_t b = 0;
    while (b < SCH_LATENCY_BUCKETS && seconds > latency_bounds[b])
        b++;
    m->buckets[b]++;
    m->seconds_sum += seconds;
    m->count++;
}

struct text {
    char *buf;
    size_t len, cap;
};

static void emit(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        t->buf = gy_xrealloc(t->buf, t->cap);
    }
}

char *sch_metrics_render(struct sch_api *api)
{
    struct text t = {gy_xmalloc(8192), 0, 8192};
    struct sch_node *node = api->node;
    struct raft *raft = &node->raft;
    uint64_t leader = sch_node_leader(node, NULL, 0);

    emit(&t, "# HELP gantry_raft_term Current Raft term.\n# TYPE gantry_raft_term gauge\n");
    emit(&t, "gantry_raft_term %llu\n", (unsigned long long)raft->current_term);
    emit(&t, "# HELP gantry_raft_commit_index Highest log index known to be committed.\n"
             "# TYPE gantry_raft_commit_index gauge\n");
    emit(&t, "gantry_raft_commit_index %llu\n", (unsigned long long)raft->commit_index);
    emit(&t, "# HELP gantry_raft_applied_index Highest log index applied to the state.\n"
             "# TYPE gantry_raft_applied_index gauge\n");
    emit(&t, "gantry_raft_applied_index %llu\n", (unsigned long long)raft_last_applied(raft));
    emit(&t, "# HELP gantry_raft_last_index Highest index in the local log.\n"
             "# TYPE gantry_raft_last_index gauge\n");
    emit(&t, "gantry_raft_last_index %llu\n", (unsigned long long)raft_last_index(raft));
    emit(&t, "# HELP gantry_raft_leader Id of the known leader (0 = none).\n"
             "# TYPE gantry_raft_leader gauge\n");
    emit(&t, "gantry_raft_leader %" PRIu64 "\n", leader);
    emit(&t, "# HELP gantry_raft_is_leader 1 when this server is the leader.\n"
             "# TYPE gantry_raft_is_leader gauge\n");
    emit(&t, "gantry_raft_is_leader %d\n", sch_node_is_leader(node) ? 1 : 0);
    emit(&t, "# HELP gantry_raft_leader_changes_total Times the known leader changed.\n"
             "# TYPE gantry_raft_leader_changes_total counter\n");
    emit(&t, "gantry_raft_leader_changes_total %" PRIu64 "\n", node->stats.leader_changes);
    emit(&t, "# HELP gantry_raft_servers Servers in the Raft configuration.\n"
             "# TYPE gantry_raft_servers gauge\n");
    emit(&t, "gantry_raft_servers %u\n", raft->configuration.n);
    emit(&t, "# HELP gantry_proposals_total Commands proposed by this server.\n"
             "# TYPE gantry_proposals_total counter\n");
    emit(&t, "gantry_proposals_total %" PRIu64 "\n", node->stats.proposals);
    emit(&t, "# HELP gantry_raft_entries_total Raft entries those commands travelled in (group "
             "commit).\n# TYPE gantry_raft_entries_total counter\n");
    emit(&t, "gantry_raft_entries_total %" PRIu64 "\n", node->stats.entries);
    emit(&t, "# HELP gantry_raft_answers_capped_total AppendEntries answers whose matched index "
             "was lowered to what the request proved (libraft_compat.c).\n"
             "# TYPE gantry_raft_answers_capped_total counter\n");
    emit(&t, "gantry_raft_answers_capped_total %" PRIu64 "\n", node->match.capped);
    emit(&t,
         "# HELP gantry_storage_free_bytes Free space of the file system of the data directory.\n"
         "# TYPE gantry_storage_free_bytes gauge\n");
    emit(&t, "gantry_storage_free_bytes %" PRIu64 "\n", node->space.free_bytes);
    emit(&t, "# HELP gantry_storage_nospace 1 while the NOSPACE alarm stands: client writes are "
             "refused (--min-free-space).\n# TYPE gantry_storage_nospace gauge\n");
    emit(&t, "gantry_storage_nospace %d\n", node->space.alarm ? 1 : 0);
    emit(&t, "# HELP gantry_storage_nospace_raised_total Times the NOSPACE alarm was raised.\n"
             "# TYPE gantry_storage_nospace_raised_total counter\n");
    emit(&t, "gantry_storage_nospace_raised_total %" PRIu64 "\n", node->space.raised_total);
    emit(&t, "# HELP gantry_storage_failed 1 while this server is out of the cluster because its "
             "disk failed a write (full, I/O error).\n# TYPE gantry_storage_failed gauge\n");
    emit(&t, "gantry_storage_failed %d\n", node->storage_fault.down ? 1 : 0);
    const struct sch_verify *v = &node->verify;
    emit(&t, "# HELP gantry_verify_checks_total Divergence checks this server completed as "
             "leader.\n# TYPE gantry_verify_checks_total counter\n");
    emit(&t, "gantry_verify_checks_total %" PRIu64 "\n", v->checks);
    emit(&t, "# HELP gantry_verify_divergences_total Servers this leader found diverged.\n"
             "# TYPE gantry_verify_divergences_total counter\n");
    emit(&t, "gantry_verify_divergences_total %" PRIu64 "\n", v->divergences);
    emit(&t, "# HELP gantry_verify_no_majority_total Checks in which no digest had a "
             "majority.\n# TYPE gantry_verify_no_majority_total counter\n");
    emit(&t, "gantry_verify_no_majority_total %" PRIu64 "\n", v->no_majority);
    emit(&t, "# HELP gantry_verify_last_seconds How long the last check took, from its "
             "proposal to its verdict.\n# TYPE gantry_verify_last_seconds gauge\n");
    emit(&t, "gantry_verify_last_seconds %.3f\n", (double)v->last_ms / 1000.0);
    uint64_t ids[16];
    struct gy_error err;
    int diverged = sch_fsm_diverged_servers(&node->fsm, ids, 16, &err);
    emit(&t, "# HELP gantry_servers_diverged Servers the state records as diverged.\n"
             "# TYPE gantry_servers_diverged gauge\n");
    emit(&t, "gantry_servers_diverged %d\n", diverged < 0 ? 0 : diverged);
    emit(&t, "# HELP gantry_state_rebuilding 1 while this server rebuilds its state from the "
             "leader.\n# TYPE gantry_state_rebuilding gauge\n");
    emit(&t, "gantry_state_rebuilding %d\n", v->rebuilding ? 1 : 0);
    emit(&t, "# HELP gantry_state_rebuilds_total Rebuilds of the state of this server from an "
             "image of the leader.\n# TYPE gantry_state_rebuilds_total counter\n");
    emit(&t, "gantry_state_rebuilds_total %" PRIu64 "\n", v->rebuilds);
    emit(&t, "# HELP gantry_proposal_queue_seconds_total Time commands waited for the next entry "
             "(group commit).\n# TYPE gantry_proposal_queue_seconds_total counter\n");
    emit(&t, "gantry_proposal_queue_seconds_total %.6f\n", (double)node->stats.queue_ns / 1e9);
    emit(&t, "# HELP gantry_raft_entry_seconds_total Time entries took from proposal to applied.\n"
             "# TYPE gantry_raft_entry_seconds_total counter\n");
    emit(&t, "gantry_raft_entry_seconds_total %.6f\n", (double)node->stats.entry_ns / 1e9);
    emit(&t, "# HELP gantry_raft_entries_settled_total Entries proposed here that were applied or "
             "failed.\n# TYPE gantry_raft_entries_settled_total counter\n");
    emit(&t, "gantry_raft_entries_settled_total %" PRIu64 "\n", node->stats.entries_done);
    emit(&t, "# HELP gantry_read_barriers_total Read barriers issued.\n"
             "# TYPE gantry_read_barriers_total counter\n");
    emit(&t, "gantry_read_barriers_total %" PRIu64 "\n", node->stats.barriers);
    emit(&t, "# HELP gantry_raft_queued_proposals Proposals waiting for group commit.\n"
             "# TYPE gantry_raft_queued_proposals gauge\n");
    emit(&t, "gantry_raft_queued_proposals %zu\n", (size_t)node->queued);
    emit(&t, "# HELP gantry_raft_inflight_entries Entries appended and not yet applied.\n"
             "# TYPE gantry_raft_inflight_entries gauge\n");
    emit(&t, "gantry_raft_inflight_entries %zu\n", (size_t)node->inflight_entries);
    emit(&t, "# HELP gantry_raft_inflight_barriers Read barriers not yet applied.\n"
             "# TYPE gantry_raft_inflight_barriers gauge\n");
    emit(&t, "gantry_raft_inflight_barriers %zu\n", (size_t)node->inflight_barriers);
    struct sch_fleet_stats ls;
    sch_fleet_stats(api->fleet, &ls);
    emit(&t, "# HELP gantry_leader_caught_up 1 when leading and a barrier of this term applied.\n"
             "# TYPE gantry_leader_caught_up gauge\n");
    emit(&t, "gantry_leader_caught_up %d\n", ls.leading && ls.caught_up ? 1 : 0);
    emit(&t, "# HELP gantry_leader_reconcile_inflight 1 while a reconcile plan is committed.\n"
             "# TYPE gantry_leader_reconcile_inflight gauge\n");
    emit(&t, "gantry_leader_reconcile_inflight %d\n", ls.reconcile_inflight ? 1 : 0);
    emit(&t, "# HELP gantry_leader_reconcile_passes_total Reconcile passes planned.\n"
             "# TYPE gantry_leader_reconcile_passes_total counter\n");
    emit(&t, "gantry_leader_reconcile_passes_total %" PRIu64 "\n", ls.reconcile_passes);
    emit(&t, "# HELP gantry_leader_reconcile_age_seconds Time since the last reconcile pass.\n"
             "# TYPE gantry_leader_reconcile_age_seconds gauge\n");
    emit(&t, "gantry_leader_reconcile_age_seconds %.3f\n", (double)ls.reconcile_age_ms / 1000.0);
    emit(&t, "# HELP gantry_leader_pending_status Replica reports waiting to be proposed.\n"
             "# TYPE gantry_leader_pending_status gauge\n");
    emit(&t, "gantry_leader_pending_status %zu\n", ls.pending_status);
    emit(&t, "# HELP gantry_fsm_applied_total Log entries applied to the state.\n"
             "# TYPE gantry_fsm_applied_total counter\n");
    emit(&t, "gantry_fsm_applied_total %" PRIu64 "\n", node->fsm.applied);
    emit(&t, "# HELP gantry_fsm_rejected_total Applied entries whose command was rejected.\n"
             "# TYPE gantry_fsm_rejected_total counter\n");
    emit(&t, "gantry_fsm_rejected_total %" PRIu64 "\n", node->fsm.rejected);
    emit(&t, "# HELP gantry_fsm_snapshots_total Snapshots taken.\n"
             "# TYPE gantry_fsm_snapshots_total counter\n");
    emit(&t, "gantry_fsm_snapshots_total %" PRIu64 "\n", node->fsm.snapshots);
    emit(&t, "# HELP gantry_fsm_restores_total Snapshots restored.\n"
             "# TYPE gantry_fsm_restores_total counter\n");
    emit(&t, "gantry_fsm_restores_total %" PRIu64 "\n", node->fsm.restores);
    emit(&t, "# HELP gantry_fsm_stored_index Raft index the state database file holds.\n"
             "# TYPE gantry_fsm_stored_index gauge\n");
    emit(&t, "gantry_fsm_stored_index %" PRIu64 "\n", node->fsm.stored_index);
    emit(&t, "# HELP gantry_fsm_skipped_total Replayed log entries the state database held "
             "already.\n"
             "# TYPE gantry_fsm_skipped_total counter\n");
    emit(&t, "gantry_fsm_skipped_total %" PRIu64 "\n", node->fsm.skipped);
    emit(&t, "# HELP gantry_events_last Sequence number of the last audit event.\n"
             "# TYPE gantry_events_last gauge\n");
    emit(&t, "gantry_events_last %" PRIu64 "\n", node->fsm.last_event);

    const struct sch_route_metrics *routes = api->metrics;
    emit(&t, "# HELP gantry_http_requests_total API requests answered, by route and status "
             "class.\n# TYPE gantry_http_requests_total counter\n");
    for (enum sch_route r = 0; r < SCH_ROUTE_COUNT; r++)
        for (int c = 1; c <= 5; c++)
            if (routes[r].by_class[c] > 0)
                emit(&t, "gantry_http_requests_total{route=\"%s\",code=\"%dxx\"} %" PRIu64 "\n",
                     sch_route_def(r)->metric, c, routes[r].by_class[c]);
    emit(&t, "# HELP gantry_http_forwarded_total API requests relayed to the leader.\n"
             "# TYPE gantry_http_forwarded_total counter\n");
    for (enum sch_route r = 0; r < SCH_ROUTE_COUNT; r++)
        if (routes[r].forwarded > 0)
            emit(&t, "gantry_http_forwarded_total{route=\"%s\"} %" PRIu64 "\n",
                 sch_route_def(r)->metric, routes[r].forwarded);
    emit(&t, "# HELP gantry_http_request_duration_seconds Time from a complete request to its "
             "answer.\n# TYPE gantry_http_request_duration_seconds histogram\n");
    for (enum sch_route r = 0; r < SCH_ROUTE_COUNT; r++) {
        const struct sch_route_metrics *m = &routes[r];
        const char *route = sch_route_def(r)->metric;
        if (m->count == 0)
            continue;
        uint64_t cumulative = 0;
        for (int b = 0; b < SCH_LATENCY_BUCKETS; b++) {
            cumulative += m->buckets[b];
            emit(&t,
                 "gantry_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %" PRIu64
                 "\n",
                 route, latency_bounds[b], cumulative);
        }
        emit(&t,
             "gantry_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
             route, m->count);
        emit(&t, "gantry_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route,
             m->seconds_sum);
        emit(&t, "gantry_http_request_duration_seconds_count{route=\"%s\"} %" PRIu64 "\n", route,
             m->count);
    }
    return t.buf;
}

void sch_api_metrics(struct sch_call *call)
{
    char *text = sch_metrics_render(call->api);
    sch_call_respond(call, 200, "text/plain; version=0.0.4", NULL, text, strlen(text));
    free(text);
}
