/* The AppendEntries answer cap (scheduler/raft/libraft_compat.c) on a fake raft_io: while an
 * AppendEntries is received, a success answer to its leader claims no match past
 * prev_log_index + n_entries; everything else passes unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "scheduler/raft/libraft_compat.h"

/* The fake storage and transport underneath: records what is sent, hands out the receive
 * callback. */
static raft_io_recv_cb delivered_to;
static struct raft_message sent[8];
static int n_sent;

static int fake_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                      raft_io_recv_cb recv)
{
    (void)io;
    (void)msecs;
    (void)tick;
    delivered_to = recv;
    return 0;
}

static int fake_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
    (void)io;
    (void)req;
    (void)cb;
    assert_true(n_sent < 8);
    sent[n_sent++] = *m;
    return 0;
}

/* The fake libraft above: answers every AppendEntries at once, as 0.15 does for entries it
 * holds already, with the answer the test sets. */
static struct raft_append_entries_result answer;
static raft_id answer_to;
static int received;

static void libraft_recv(struct raft_io *io, struct raft_message *m)
{
    received++;
    if (m->type != RAFT_IO_APPEND_ENTRIES)
        return;
    struct raft_message reply = {.type = RAFT_IO_APPEND_ENTRIES_RESULT,
                                 .server_id = answer_to != 0 ? answer_to : m->server_id};
    reply.append_entries_result = answer;
    struct raft_io_send req;
    io->send(io, &req, &reply, NULL);
}

struct fixture {
    struct raft_io io;
    struct sch_libraft_match match;
};

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->io.start = fake_start;
    f->io.send = fake_send;
    sch_libraft_match_wrap(&f->match, &f->io);
    assert_int_equal(f->io.start(&f->io, 100, NULL, libraft_recv), 0);
    n_sent = 0;
    received = 0;
    answer_to = 0;
}

/* Delivers an AppendEntries from server 2 with prev_log_index prev and n entries. */
static void deliver(struct fixture *f, raft_index prev, unsigned n)
{
    struct raft_entry entries[4] = {{0}};
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = 2};
    m.append_entries.prev_log_index = prev;
    m.append_entries.n_entries = n;
    m.append_entries.entries = n > 0 ? entries : NULL;
    delivered_to(&f->io, &m);
}

static void test_heartbeat_answer_capped_at_prev(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f);
    /* A follower holding 1263-1264 of an earlier term answers a heartbeat at 1262. */
    answer = (struct raft_append_entries_result){.term = 5, .rejected = 0, .last_log_index = 1264};
    deliver(&f, 1262, 0);
    assert_int_equal(n_sent, 1);
    assert_int_equal(sent[0].append_entries_result.last_log_index, 1262);
    assert_int_equal(sent[0].append_entries_result.term, 5);
    assert_int_equal(f.match.capped, 1);
    sch_libraft_match_unwrap(&f.match);
}

static void test_held_entries_answer_capped_at_last_sent(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f);
    answer = (struct raft_append_entries_result){.term = 5, .last_log_index = 1264};
    deliver(&f, 1260, 2);
    assert_int_equal(sent[0].append_entries_result.last_log_index, 1262);
    sch_libraft_match_unwrap(&f.match);
}

static void test_other_answers_unchanged(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f);
    /* Rejections keep their hint: the leader backs up with it. */
    answer =
        (struct raft_append_entries_result){.term = 5, .rejected = 1263, .last_log_index = 1264};
    deliver(&f, 1263, 0);
    assert_int_equal(sent[0].append_entries_result.last_log_index, 1264);
    /* An answer within what the request proved. */
    answer = (struct raft_append_entries_result){.term = 5, .last_log_index = 1261};
    deliver(&f, 1262, 0);
    assert_int_equal(sent[1].append_entries_result.last_log_index, 1261);
    /* An answer to another server than the one being received. */
    answer = (struct raft_append_entries_result){.term = 5, .last_log_index = 1264};
    answer_to = 3;
    deliver(&f, 1262, 0);
    assert_int_equal(sent[2].append_entries_result.last_log_index, 1264);
    /* Outside a receive (an answer sent once new entries are written). */
    struct raft_message late = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = 2};
    late.append_entries_result.last_log_index = 1300;
    struct raft_io_send req;
    f.io.send(&f.io, &req, &late, NULL);
    assert_int_equal(sent[3].append_entries_result.last_log_index, 1300);
    /* Other messages reach libraft as they are. */
    struct raft_message vote = {.type = RAFT_IO_REQUEST_VOTE, .server_id = 2};
    delivered_to(&f.io, &vote);
    assert_int_equal(received, 4);
    assert_int_equal(n_sent, 4);
    assert_int_equal(f.match.capped, 0);
    sch_libraft_match_unwrap(&f.match);
}

static void test_two_servers_in_one_process(void **state)
{
    (void)state;
    struct fixture a, b;
    setup(&a);
    raft_io_recv_cb recv_a = delivered_to;
    setup(&b);
    answer = (struct raft_append_entries_result){.term = 5, .last_log_index = 50};
    delivered_to = recv_a;
    deliver(&a, 40, 0);
    assert_int_equal(sent[0].append_entries_result.last_log_index, 40);
    assert_int_equal(a.match.capped, 1);
    assert_int_equal(b.match.capped, 0);
    sch_libraft_match_unwrap(&a.match);
    sch_libraft_match_unwrap(&b.match);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_answer_capped_at_prev),
        cmocka_unit_test(test_held_entries_answer_capped_at_last_sent),
        cmocka_unit_test(test_other_answers_unchanged),
        cmocka_unit_test(test_two_servers_in_one_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
