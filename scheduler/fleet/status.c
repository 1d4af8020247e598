/* Replica status batching on the leader; see status.h. */
#include "scheduler/fleet/status.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "scheduler/state/query_fleet.h"

/* Rebuilds the index over the array, whose elements moved. */
static void index_rebuild(struct sch_status_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct sch_status_pending *p = &b->pending[i];
        HASH_ADD_KEYPTR(hh, b->index, p->report->replica_id, strlen(p->report->replica_id), p);
    }
}

void sch_status_clear(struct sch_status_batch *b)
{
    HASH_CLEAR(hh, b->index);
    for (size_t i = 0; i < b->n; i++)
        gantry__replica_status__free_unpacked(b->pending[i].report, NULL);
    free(b->pending);
    free(b->taken);
    memset(b, 0, sizeof(*b));
}

bool sch_status_queue(struct sch_status_batch *b, struct sch_fsm *fsm,
                      const struct sch_fleet_node *node, uint64_t session,
                      const Gantry__ReplicaStatus *report)
{
    if (node->session == 0 || node->session != session)
        return false;
    if (!sch_query_report_is_news(fsm, node->name, report))
        return false;
    /* A deep copy through the wire form keeps ownership simple. */
    size_t len = gantry__replica_status__get_packed_size(report);
    uint8_t *buf = gy_xmalloc(len ? len : 1);
    gantry__replica_status__pack(report, buf);
    Gantry__ReplicaStatus *copy = gantry__replica_status__unpack(NULL, len, buf);
    free(buf);
    if (copy == NULL)
        return false;
    struct sch_status_pending *p;
    HASH_FIND_STR(b->index, copy->replica_id, p);
    if (p != NULL) {
        /* A newer report of the same replica replaces the one not yet proposed. */
        HASH_DEL(b->index, p);
        gantry__replica_status__free_unpacked(p->report, NULL);
        p->report = copy;
        HASH_ADD_KEYPTR(hh, b->index, copy->replica_id, strlen(copy->replica_id), p);
        return true;
    }
    if (b->n == b->cap) {
        /* The index points into the array: it is built again where the array moved. */
        HASH_CLEAR(hh, b->index);
        b->cap = b->cap ? b->cap * 2 : 64;
        b->pending = gy_xrealloc(b->pending, b->cap * sizeof(*b->pending));
        index_rebuild(b);
    }
    p = &b->pending[b->n++];
    memset(p, 0, sizeof(*p));
    p->report = copy;
    HASH_ADD_KEYPTR(hh, b->index, copy->replica_id, strlen(copy->replica_id), p);
    return true;
}

size_t sch_status_take(struct sch_status_batch *b, uint64_t wall_ms, Gantry__Command *cmd,
                       Gantry__UpdateReplicas *up)
{
    if (b->n == 0)
        return 0;
    size_t n = b->n < SCH_STATUS_BATCH ? b->n : SCH_STATUS_BATCH;
    /* The command wants an array of reports: they are gathered into an array the batch
     * keeps from one proposal to the next. */
    if (n > b->cap_taken) {
        b->cap_taken = n;
        b->taken = gy_xrealloc(b->taken, n * sizeof(*b->taken));
    }
    for (size_t i = 0; i < n; i++)
        b->taken[i] = b->pending[i].report;
    gantry__update_replicas__init(up);
    up->updates = b->taken;
    up->n_updates = n;
    gantry__command__init(cmd);
    cmd->time_ms = wall_ms;
    cmd->actor = (char *)"agents";
    cmd->cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
    cmd->update_replicas = up;
    return n;
}

void sch_status_drop(struct sch_status_batch *b, size_t n)
{
    if (n > b->n)
        n = b->n;
    HASH_CLEAR(hh, b->index);
    for (size_t i = 0; i < n; i++)
        gantry__replica_status__free_unpacked(b->pending[i].report, NULL);
    memmove(b->pending, b->pending + n, (b->n - n) * sizeof(*b->pending));
    b->n -= n;
    index_rebuild(b);
}
