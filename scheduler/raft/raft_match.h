/* A follower's answer to an AppendEntries claims no more than the request proved: a fix,
 * around libraft 0.15's raft_io, for a leader that takes leftovers of an earlier term as
 * matched. See raft_match.c. */
#ifndef GANTRY_SCHEDULER_RAFT_RAFT_MATCH_H
#define GANTRY_SCHEDULER_RAFT_RAFT_MATCH_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>

struct sch_raft_match {
    struct raft_io *io;
    int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
    int (*send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                raft_io_send_cb cb);
    raft_io_recv_cb recv;        /* libraft's own receive callback */
    raft_id from;                /* the sender of the AppendEntries being received, or 0 */
    raft_index matched;          /* its prev_log_index + n_entries */
    uint64_t capped;             /* answers whose last_log_index was lowered */
    struct sch_raft_match *next; /* the process's wraps (one per server it runs) */
};

/* Puts m's start and send in io, before raft_init; m must outlive io. While libraft
 * receives an AppendEntries, a success answer it sends to that leader carries at most
 * prev_log_index + n_entries as last_log_index (Raft's matchIndex rule, thesis 3.5). */
void sch_raft_match_wrap(struct sch_raft_match *m, struct raft_io *io);

/* Forgets m (after io is closed). */
void sch_raft_match_unwrap(struct sch_raft_match *m);

#endif
