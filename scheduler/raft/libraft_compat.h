/* libraft 0.15, as Gantry uses it: the workarounds for its sharp edges, in one place.
 *
 * What Gantry depends on or works around, and where each lives:
 *   1. Entries are padded to a multiple of 8 bytes: 0.15 writes them unpadded but reads them
 *      back padded (state/command.c, which owns the entry encoding).
 *   2. The FSM's apply returns 0 even when a command is rejected, which it reports through
 *      the result; a non-zero return stops the node applying for good (state/fsm.c).
 *   3. SIGPIPE is ignored (sch_libraft_process_init).
 *   4. io_destroy(2) runs off the event loop (this file's syscall(3)).
 *   5. Peer connections get TCP_NODELAY (sch_libraft_transport_wrap).
 *   6. Snapshots are written uncompressed; the connect retry delay is set
 *      (sch_libraft_storage_configure).
 *   7. A follower's AppendEntries answer claims no match past the request
 *      (sch_libraft_match_wrap).
 *   8. raft_close's callback may come twice (sch_libraft_closed_once).
 * CMake refuses another libraft version until each item has been checked against it. */
#ifndef GANTRY_SCHEDULER_RAFT_LIBRAFT_COMPAT_H
#define GANTRY_SCHEDULER_RAFT_LIBRAFT_COMPAT_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>

/* Process-wide settings; call once before any Raft I/O. */
void sch_libraft_process_init(void);

/* Wraps the TCP transport's listen and connect (before raft_uv_init uses it). */
void sch_libraft_transport_wrap(struct raft_uv_transport *t);

/* Sets the libuv storage's options that Gantry relies on (after raft_uv_init). */
void sch_libraft_storage_configure(struct raft_io *io, unsigned connect_retry_ms);

struct sch_libraft_match {
    struct raft_io *io;
    int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
    int (*send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                raft_io_send_cb cb);
    raft_io_recv_cb recv;           /* libraft's own receive callback */
    raft_id from;                   /* the sender of the AppendEntries being received, or 0 */
    raft_index matched;             /* its prev_log_index + n_entries */
    uint64_t capped;                /* answers whose last_log_index was lowered */
    struct sch_libraft_match *next; /* the process's wraps (one per server it runs) */
};

/* Puts m's start and send in io, before raft_init; m must outlive io. While libraft
 * receives an AppendEntries, a success answer it sends to that leader carries at most
 * prev_log_index + n_entries as last_log_index (Raft's matchIndex rule, thesis 3.5). */
void sch_libraft_match_wrap(struct sch_libraft_match *m, struct raft_io *io);
/* Forgets m (after io is closed). */
void sch_libraft_match_unwrap(struct sch_libraft_match *m);

/* For raft_close's callback: empties what a second call would free again, and returns true
 * the first time only (*seen records it). The storage and transport must then be freed
 * only once the event loop has ended. */
bool sch_libraft_closed_once(struct raft *raft, bool *seen);

#endif
