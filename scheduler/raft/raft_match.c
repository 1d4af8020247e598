/* libraft 0.15 lets a follower answer an AppendEntries whose entries it already holds (a
 * heartbeat, say) with its last stored index, and that counts entries past the leader's
 * log that an earlier term left behind. The leader caps the figure at its own last index
 * and records the follower as matching up to there, without having checked those entries'
 * terms (replicationUpdate). From then on:
 *   - the follower counts towards the quorum of entries it does not hold: with the other
 *     follower down, the leader would acknowledge a write that a later election can undo;
 *   - the follower rejects the next entries, and the leader, in pipeline mode, takes every
 *     rejection at or below that match as stale: the follower never catches up.
 * Seen after a full restart in which the last leader had written two entries of its term
 * before it stopped: that server stayed one entry behind the others for good.
 *
 * Raft's rule (thesis 3.5, Figure 3.1) is that a success answer proves a match up to
 * prev_log_index + len(entries) and no further. The wrapped receive notes that bound while
 * libraft handles an AppendEntries, and the wrapped send lowers the answer's
 * last_log_index to it: libraft answers the entries it already holds from inside the
 * receive, and answers new entries only once they are written, by which time it has
 * truncated whatever conflicted with them. */
#include "scheduler/raft/raft_match.h"

#include <stddef.h>

static struct sch_raft_match *wraps;

static struct sch_raft_match *match_of(struct raft_io *io)
{
    for (struct sch_raft_match *m = wraps; m != NULL; m = m->next)
        if (m->io == io)
            return m;
    return NULL;
}

static void match_recv(struct raft_io *io, struct raft_message *message)
{
    struct sch_raft_match *m = match_of(io);
    if (message->type != RAFT_IO_APPEND_ENTRIES) {
        m->recv(io, message);
        return;
    }
    /* libraft owns the message (and its entries) once called: read first. */
    m->from = message->server_id;
    m->matched = message->append_entries.prev_log_index + message->append_entries.n_entries;
    m->recv(io, message);
    m->from = 0;
}

static int match_send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *message, raft_io_send_cb cb)
{
    struct sch_raft_match *m = match_of(io);
    if (m->from == 0 || message->type != RAFT_IO_APPEND_ENTRIES_RESULT ||
        message->server_id != m->from || message->append_entries_result.rejected != 0 ||
        message->append_entries_result.last_log_index <= m->matched)
        return m->send(io, req, message, cb);
    /* raft_uv encodes the message before send returns: a copy on the stack will do. */
    struct raft_message capped = *message;
    capped.append_entries_result.last_log_index = m->matched;
    m->capped++;
    return m->send(io, req, &capped, cb);
}

static int match_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct sch_raft_match *m = match_of(io);
    m->recv = recv;
    return m->start(io, msecs, tick, match_recv);
}

void sch_raft_match_wrap(struct sch_raft_match *m, struct raft_io *io)
{
    m->io = io;
    m->start = io->start;
    m->send = io->send;
    m->recv = NULL;
    m->from = 0;
    m->matched = 0;
    m->capped = 0;
    io->start = match_start;
    io->send = match_send;
    m->next = wraps;
    wraps = m;
}

void sch_raft_match_unwrap(struct sch_raft_match *m)
{
    for (struct sch_raft_match **p = &wraps; *p != NULL; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    m->next = NULL;
}
