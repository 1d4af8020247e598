/* Every way Gantry depends on or works around libraft 0.15 (Debian 12's libraft-dev), in
 * one place; see libraft_compat.h for the list. CMake refuses another libraft version
 * until each item below has been checked against it (cmake/Dependencies.cmake). */
#include "scheduler/raft/libraft_compat.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------
 * The process
 *
 * A peer that dies in the middle of a write must not kill the server through SIGPIPE: the
 * TCP transport writes to peers without MSG_NOSIGNAL (a follower died of it when its
 * leader was SIGKILLed). */

void sch_libraft_process_init(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* ---------------------------------------------------------------------------------------
 * io_destroy off the event loop
 *
 * libraft 0.15 closes each finished Raft log segment on the loop thread with io_destroy(2),
 * and the kernel makes that call wait for RCU grace periods: 30-75 ms measured here, during
 * which the server neither applies, nor answers, nor sends heartbeats. It happens at every
 * segment rollover and at every snapshot. libraft makes the call through syscall(3), which
 * this file defines for the whole process: an io_destroy goes to a thread of its own and
 * returns at once, and every other call goes to the C library's syscall unchanged.
 *
 * libraft destroys a context only once the writes submitted on it have completed (a
 * segment's writer is closed from its last write's completion), so the kernel has nothing
 * left to wait for but those grace periods; the context just lives a little longer. */

typedef long (*syscall_fn)(long number, ...);

static syscall_fn libc_syscall;
static pthread_once_t libc_once = PTHREAD_ONCE_INIT;

static void find_libc_syscall(void)
{
    libc_syscall = (syscall_fn)(uintptr_t)dlsym(RTLD_NEXT, "syscall");
}

static void *destroy_context(void *ctx)
{
    libc_syscall(SYS_io_destroy, (long)(uintptr_t)ctx);
    return NULL;
}

__attribute__((visibility("default"))) long syscall(long number, ...)
{
    /* Six arguments are taken whatever the call, as the C library's own syscall does: on
     * x86-64 and arm64 the unused ones are just whatever the registers held. */
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    pthread_once(&libc_once, find_libc_syscall);
    if (number == SYS_io_destroy) {
        pthread_attr_t attr;
        pthread_t thread;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            int rc = pthread_create(&thread, &attr, destroy_context, (void *)(uintptr_t)a[0]);
            pthread_attr_destroy(&attr);
            if (rc == 0)
                return 0;
        }
    }
    return libc_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---------------------------------------------------------------------------------------
 * TCP_NODELAY on peer connections
 *
 * libraft's TCP transport leaves Nagle's algorithm on. With several AppendEntries in flight,
 * a small message then waits for the peer's delayed acknowledgement (40 ms on Linux), which
 * showed up as a 40-50 ms p99 for every write. The transport's listen and connect are wrapped
 * so that each peer connection gets TCP_NODELAY before libraft uses it. The callbacks are
 * the same functions for every connection, so one saved copy serves the process. */

static int (*tcp_listen)(struct raft_uv_transport *t, raft_uv_accept_cb cb);
static int (*tcp_connect)(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                          const char *address, raft_uv_connect_cb cb);
static raft_uv_accept_cb raft_accept;
static raft_uv_connect_cb raft_connected;

static void nodelay_accept(struct raft_uv_transport *t, raft_id id, const char *address,
                           struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    raft_accept(t, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    raft_accept = cb;
    return tcp_listen(t, nodelay_accept);
}

static void nodelay_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    if (status == 0 && stream != NULL && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    raft_connected(req, stream, status);
}

static int nodelay_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                           const char *address, raft_uv_connect_cb cb)
{
    raft_connected = cb;
    return tcp_connect(t, req, id, address, nodelay_connected);
}

void sch_libraft_transport_wrap(struct raft_uv_transport *t)
{
    tcp_listen = t->listen;
    tcp_connect = t->connect;
    t->listen = nodelay_listen;
    t->connect = nodelay_connect;
}

/* ---------------------------------------------------------------------------------------
 * Storage settings
 *
 * Snapshot compression runs on the loop thread in this libraft: on a large state it stalls
 * heartbeats long enough to cause an election, so images are written uncompressed.
 *
 * Auto-recovery is off. With it, a segment that fails its checksum at load is renamed
 * "corrupt-..." and the server starts with the log that ends before it, without entries
 * it may have acknowledged and without a warning: with one more such server, a leader
 * could be elected that lacks a committed write. Without it the load fails, and the
 * server refuses to start (docs/operations.md, "A damaged server"). */

void sch_libraft_storage_configure(struct raft_io *io, unsigned connect_retry_ms)
{
    raft_uv_set_connect_retry_delay(io, connect_retry_ms);
    raft_uv_set_snapshot_compression(io, false);
    raft_uv_set_auto_recovery(io, false);
}

/* ---------------------------------------------------------------------------------------
 * A follower's answer claims no match past what the request proved
 *
 * libraft 0.15 lets a follower answer an AppendEntries whose entries it already holds (a
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

static struct sch_libraft_match *wraps;

static struct sch_libraft_match *match_of(struct raft_io *io)
{
    for (struct sch_libraft_match *m = wraps; m != NULL; m = m->next)
        if (m->io == io)
            return m;
    return NULL;
}

static void match_recv(struct raft_io *io, struct raft_message *message)
{
    struct sch_libraft_match *m = match_of(io);
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
    struct sch_libraft_match *m = match_of(io);
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
    struct sch_libraft_match *m = match_of(io);
    m->recv = recv;
    return m->start(io, msecs, tick, match_recv);
}

void sch_libraft_match_wrap(struct sch_libraft_match *m, struct raft_io *io)
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

void sch_libraft_match_unwrap(struct sch_libraft_match *m)
{
    for (struct sch_libraft_match **p = &wraps; *p != NULL; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    m->next = NULL;
}

/* ---------------------------------------------------------------------------------------
 * The close callback, called twice
 *
 * libraft 0.15 can call raft_close's callback twice: a segment writer that waits for a write
 * in its thread pool finishes closing after the storage said it was closed (the segment left
 * the queue that the close waits for), and then closes the instance again. The second call
 * frees the server address, the log and the configuration once more and calls the callback
 * again. So after the first call those are emptied and the callback is cleared, which makes
 * the second call free nothing; the storage and transport must be freed only after the loop
 * has run to its end, since the late close still reads them. */

bool sch_libraft_closed_once(struct raft *raft, bool *seen)
{
    raft->close_cb = NULL;
    raft->address = NULL;
    raft->log.entries = NULL;
    raft->log.refs = NULL;
    raft->log.size = raft->log.front = raft->log.back = raft->log.refs_size = 0;
    raft->configuration.servers = NULL;
    raft->configuration.n = 0;
    if (*seen)
        return false;
    *seen = true;
    return true;
}
