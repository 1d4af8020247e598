/* A stand-in for the control plane's leader, for testing gantry-agent alone: it accepts
 * agent sessions, answers hello with welcome and the full assignment read from a file of
 * workload specs (JSON lines: {"id":"...","spec":{...}}, or {"stop":"ID"} for a stop),
 * re-sends the assignment when the file changes (on SIGHUP), acknowledges heartbeats, and prints
 * every replica status it receives as one JSON line on stdout. Test use only. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/spec.h"
#include "proto/frame.h"
#include "proto/gantry.pb-c.h"
#include "proto/spec_pb.h"

struct conn {
    uv_tcp_t tcp;
    struct gy_frame_decoder decoder;
    bool welcomed;
};

static const char *assign_path;
static struct conn *current;

static void send_frame(struct conn *c, const Gantry__AgentFrame *f)
{
    uint8_t *buf;
    size_t len;
    if (gy_frame_pack(&f->base, &buf, &len, NULL) < 0)
        return;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    free(buf);
}

/* Reads the assignment file and sends it as a full assignment. */
static void send_assignment(struct conn *c)
{
    FILE *f = fopen(assign_path, "r");
    if (f == NULL)
        return;
    Gantry__AssignedReplica *items[64];
    Gantry__WorkloadSpec *specs[64];
    char *stops[64];
    size_t n = 0, n_stop = 0;
    char line[8192];
    while (n < 64 && fgets(line, sizeof(line), f) != NULL) {
        json_t *doc = json_loads(line, 0, NULL);
        if (doc == NULL)
            continue;
        const char *stop = json_string_value(json_object_get(doc, "stop"));
        if (stop != NULL) {
            if (n_stop < 64)
                stops[n_stop++] = strdup(stop);
            json_decref(doc);
            continue;
        }
        struct gy_spec spec;
        struct gy_spec_problems problems = {0};
        if (gy_spec_from_json(json_object_get(doc, "spec"), NULL, &spec, &problems) == 0) {
            specs[n] = gy_spec_to_proto(&spec);
            items[n] = calloc(1, sizeof(Gantry__AssignedReplica));
            gantry__assigned_replica__init(items[n]);
            items[n]->replica_id = strdup(json_string_value(json_object_get(doc, "id")));
            items[n]->generation = 1;
            items[n]->spec = specs[n];
            n++;
        } else {
            for (size_t i = 0; i < problems.n; i++)
                fprintf(stderr, "fake_leader: %s: %s\n", problems.items[i].path,
                        problems.items[i].message);
        }
        gy_spec_free(&spec);
        gy_spec_problems_free(&problems);
        json_decref(doc);
    }
    fclose(f);
    Gantry__Assignment as = GANTRY__ASSIGNMENT__INIT;
    as.full = 1;
    as.start = items;
    as.n_start = n;
    as.stop = stops;
    as.n_stop = n_stop;
    Gantry__AgentFrame out = GANTRY__AGENT_FRAME__INIT;
    out.frame_case = GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT;
    out.assignment = &as;
    send_frame(c, &out);
    for (size_t i = 0; i < n; i++) {
        free(items[i]->replica_id);
        free(items[i]);
        gy_spec_proto_free(specs[i]);
    }
    for (size_t i = 0; i < n_stop; i++)
        free(stops[i]);
}

static void print_status(const char *how, const Gantry__ReplicaStatus *st)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:i, s:b, s:i, s:i, s:i, s:s, s:s}", "event", how, "id",
                  st->replica_id, "workload", st->workload, "state", st->state, "ready", st->ready,
                  "restarts", st->restarts, "exit_code", st->exit_code, "exit_signal",
                  st->exit_signal, "address", st->address, "reason", st->reason);
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

static void on_frame(struct conn *c, const uint8_t *body, size_t len)
{
    Gantry__AgentFrame *f =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, body, len, NULL);
    if (f == NULL)
        return;
    Gantry__AgentFrame out = GANTRY__AGENT_FRAME__INIT;
    switch (f->frame_case) {
    case GANTRY__AGENT_FRAME__FRAME_HELLO: {
        for (size_t i = 0; i < f->hello->n_replicas; i++)
            print_status("hello", f->hello->replicas[i]);
        Gantry__Welcome w = GANTRY__WELCOME__INIT;
        w.cluster_id = (char *)"test-cluster";
        w.server_id = 1;
        w.heartbeat_interval_ms = 500;
        out.frame_case = GANTRY__AGENT_FRAME__FRAME_WELCOME;
        out.welcome = &w;
        send_frame(c, &out);
        c->welcomed = true;
        send_assignment(c);
        break;
    }
    case GANTRY__AGENT_FRAME__FRAME_STATUS:
        print_status("status", f->status);
        break;
    case GANTRY__AGENT_FRAME__FRAME_HEARTBEAT: {
        Gantry__Heartbeat ack = GANTRY__HEARTBEAT__INIT;
        out.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
        out.heartbeat = &ack;
        send_frame(c, &out);
        break;
    }
    default:
        break;
    }
    protobuf_c_message_free_unpacked(&f->base, NULL);
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    gy_frame_decoder_free(&c->decoder);
    free(c);
}

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(n);
    buf->len = n;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (nread < 0) {
        if (current == c)
            current = NULL;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = nread > 0 ? (size_t)nread : 0;
    while (n > 0) {
        const uint8_t *frame;
        size_t flen;
        long used = gy_frame_decoder_feed(&c->decoder, p, n, &frame, &flen, NULL);
        if (used < 0)
            break;
        p += used;
        n -= (size_t)used;
        if (frame != NULL)
            on_frame(c, frame, flen);
    }
    free(buf->base);
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    gy_frame_decoder_init(&c->decoder, 0);
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    current = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_hup(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    if (current != NULL && current->welcomed)
        send_assignment(current);
}

static void on_term(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fake_leader HOST:PORT ASSIGNMENT_FILE\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    assign_path = argv[2];
    char host[64];
    const char *colon = strrchr(argv[1], ':');
    if (colon == NULL || (size_t)(colon - argv[1]) >= sizeof(host))
        return 2;
    memcpy(host, argv[1], (size_t)(colon - argv[1]));
    host[colon - argv[1]] = '\0';
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in addr;
    uv_ip4_addr(host, atoi(colon + 1), &addr);
    uv_tcp_t listener;
    uv_tcp_init(loop, &listener);
    if (uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0) < 0 ||
        uv_listen((uv_stream_t *)&listener, 16, on_accept) < 0) {
        fprintf(stderr, "fake_leader: cannot listen on %s\n", argv[1]);
        return 1;
    }
    uv_signal_t hup, term;
    uv_signal_init(loop, &hup);
    uv_signal_start(&hup, on_hup, SIGHUP);
    uv_signal_init(loop, &term);
    uv_signal_start(&term, on_term, SIGTERM);
    fprintf(stderr, "fake_leader: listening on %s\n", argv[1]);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
