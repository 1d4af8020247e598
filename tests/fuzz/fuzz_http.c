/* Fuzz target: arbitrary bytes into the HTTP protocol engine of one connection, without
 * sockets, in input-chosen pieces; the handler answers at once, later and out of order, or
 * as a stream, and everything the engine sends back must parse as valid HTTP answers. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/http/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_HELD 80

struct fuzz_state {
    struct http_buf output;
    struct sch_http_request *held[FUZZ_HELD];
    int n_held;
    unsigned counter;
    uint8_t mode;
    bool saw_head;
    bool finished;
    bool woken;
};

static struct fuzz_state *state_of(struct sch_http_conn *conn)
{
    return conn->handler_data;
}

static void fz_send(struct sch_http_conn *conn, char *buf, size_t len)
{
    struct fuzz_state *st = state_of(conn);
    if (st->finished)
        abort(); /* nothing may be sent after the last answer */
    http_buf_append(&st->output, buf, len);
    free(buf);
}

static void fz_finish(struct sch_http_conn *conn)
{
    state_of(conn)->finished = true;
}

static void fz_set_reading(struct sch_http_conn *conn, bool on)
{
    (void)conn;
    (void)on;
}

static void fz_wake(struct sch_http_conn *conn)
{
    state_of(conn)->woken = true;
}

static void fz_changed(struct sch_http_conn *conn)
{
    (void)conn;
}

static const struct http_conn_ops fuzz_ops = {
    .send = fz_send,
    .finish = fz_finish,
    .set_reading = fz_set_reading,
    .wake = fz_wake,
    .changed = fz_changed,
};

static void answer(struct sch_http_request *req, unsigned how)
{
    char value[64];
    switch (how % 5) {
    case 0:
        sch_http_respond(req, 200, "text/plain", NULL, req->body, req->body_len);
        break;
    case 1:
        sch_http_query(req, "a", value, sizeof(value));
        sch_http_respond_json(req, 201, json_pack("{s:s, s:s}", "path", req->path, "q", value));
        break;
    case 2:
        sch_http_respond_error(req, 404, "not_found", "name", "no %s", req->path);
        break;
    case 3:
        sch_http_stream_start(req, 200, "text/plain");
        sch_http_stream_write(req, req->raw, req->raw_len);
        sch_http_stream_write(req, "", 0);
        sch_http_stream_end(req);
        break;
    default:
        sch_http_respond(req, 204, NULL, "X-A: b\r\n", NULL, 0);
        break;
    }
}

static void fuzz_handler(struct sch_http_request *req, void *data)
{
    struct fuzz_state *st = data;
    if (strcmp(req->method, "HEAD") == 0)
        st->saw_head = true;
    (void)sch_http_header(req, "content-type");
    unsigned n = st->counter++;
    /* Every other request waits, so answers are given out of order below. */
    if (((st->mode >> (n % 8)) & 1) && st->n_held < FUZZ_HELD) {
        st->held[st->n_held++] = req;
        return;
    }
    answer(req, n + st->mode);
}

static void answer_held(struct fuzz_state *st)
{
    while (st->n_held > 0) {
        struct sch_http_request *req = st->held[--st->n_held];
        answer(req, (unsigned)st->n_held);
    }
}

struct output_check {
    unsigned begun;
    unsigned complete;
};

static int check_begin(http_parser *p)
{
    ((struct output_check *)p->data)->begun++;
    return 0;
}

static int check_complete(http_parser *p)
{
    ((struct output_check *)p->data)->complete++;
    return 0;
}

/* Everything the engine wrote must be a sequence of whole, well-formed answers: parsed to
 * the end (the end of the output standing for the connection's close), every answer begun
 * is complete. */
static void check_output(const struct fuzz_state *st)
{
    if (st->saw_head || st->output.len == 0)
        return;
    struct output_check check = {0};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &check;
    http_parser_settings settings = {.on_message_begin = check_begin,
                                     .on_message_complete = check_complete};
    size_t n = http_parser_execute(&p, &settings, st->output.data, st->output.len);
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK || n != st->output.len)
        abort();
    http_parser_execute(&p, &settings, NULL, 0);
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK || check.begun != check.complete)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t chunk = (size_t)data[0] % 31 + 1;
    struct fuzz_state st = {.mode = data[1]};
    data += 2;
    size -= 2;

    struct sch_http_options opts = {.max_body = 4096, .max_header = 2048};
    http_options_fill(&opts, &opts);
    struct sch_http_conn conn;
    memset(&conn, 0, sizeof(conn));
    http_conn_init(&conn, &fuzz_ops, &opts, fuzz_handler, &st);

    size_t off = 0;
    while (off < size && !conn.gone) {
        size_t n = size - off < chunk ? size - off : chunk;
        http_conn_feed(&conn, (const char *)data + off, n);
        off += n;
        if ((off / chunk) % 3 == 0)
            answer_held(&st);
        if (st.woken) {
            st.woken = false;
            http_conn_resume(&conn);
        }
    }
    /* Half of the held requests are answered while the connection is there, the rest after
     * it is gone (the answers are then dropped). */
    int keep = st.n_held / 2;
    while (st.n_held > keep) {
        struct sch_http_request *req = st.held[--st.n_held];
        answer(req, (unsigned)st.n_held);
    }
    if (st.woken)
        http_conn_resume(&conn);
    if (conn.partial && !conn.stopped)
        http_conn_reject(&conn, 408, "timeout", "request not complete in time");
    check_output(&st);
    http_conn_abort(&conn);
    answer_held(&st);
    http_conn_release(&conn);
    http_buf_free(&st.output);
    return 0;
}
