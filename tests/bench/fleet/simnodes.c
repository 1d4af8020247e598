/* Benchmark only: many simulated nodes in one process. Each node holds a real agent
 * session with the control plane (hello, heartbeats, replica status) but its "container
 * driver" is simulated: an assigned replica is reported running and ready at once, a
 * withdrawn one stopped. It measures the control plane alone, at fleet sizes a test
 * machine cannot host as real agents.
 *
 *   simnodes SERVERS COUNT [PREFIX]   (SERVERS: HOST:PORT[,HOST:PORT...])
 *
 * Prints one line a second: sessions welcomed, replicas running. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "proto/frame.h"
#include "proto/gantry.pb-c.h"

struct sim {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct gy_frame_decoder decoder;
    char name[64];
    char target[64];
    bool welcomed;
    bool connected;
    int redirects;
};

static struct sim *sims;
static int n_sims;
static char **servers;
static int n_servers;
static const char *prefix = "sim";
static long running, welcomed;
static uv_loop_t *loop;

static void sim_connect(struct sim *s);

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

static void send_frame(struct sim *s, const Gantry__AgentFrame *f)
{
    if (!s->connected)
        return;
    uint8_t *buf;
    size_t len;
    if (gy_frame_pack(&f->base, &buf, &len, NULL) < 0)
        return;
    uv_write_t *req = malloc(sizeof(*req));
    req->data = buf;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
        free(buf);
        free(req);
    }
}

static void send_status(struct sim *s, const char *id, const char *workload, uint64_t gen,
                        Gantry__ReplicaState state)
{
    Gantry__ReplicaStatus st = GANTRY__REPLICA_STATUS__INIT;
    st.replica_id = (char *)id;
    st.workload = (char *)workload;
    st.generation = gen;
    st.state = state;
    st.ready = state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    st.reason = (char *)(state == GANTRY__REPLICA_STATE__REPLICA_RUNNING ? "simulated" : "");
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_STATUS;
    f.status = &st;
    send_frame(s, &f);
}

static void on_closed(uv_handle_t *h)
{
    struct sim *s = h->data;
    gy_frame_decoder_free(&s->decoder);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    sim_connect(s);
}

static void sim_drop(struct sim *s)
{
    if (s->welcomed)
        welcomed--;
    s->welcomed = false;
    s->connected = false;
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_frame(struct sim *s, const uint8_t *body, size_t len)
{
    Gantry__AgentFrame *f =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, body, len, NULL);
    if (f == NULL)
        return;
    if (f->frame_case == GANTRY__AGENT_FRAME__FRAME_WELCOME) {
        s->welcomed = true;
        welcomed++;
    } else if (f->frame_case == GANTRY__AGENT_FRAME__FRAME_REDIRECT) {
        const char *to = f->redirect->leader_agent_address;
        if (to != NULL && to[0] != '\0')
            snprintf(s->target, sizeof(s->target), "%s", to);
        else
            snprintf(s->target, sizeof(s->target), "%s", servers[rand() % n_servers]);
        sim_drop(s);
    } else if (f->frame_case == GANTRY__AGENT_FRAME__FRAME_ASSIGNMENT) {
        const Gantry__Assignment *a = f->assignment;
        for (size_t i = 0; i < a->n_start; i++) {
            const Gantry__AssignedReplica *r = a->start[i];
            send_status(s, r->replica_id, r->spec ? r->spec->name : "", r->generation,
                        GANTRY__REPLICA_STATE__REPLICA_RUNNING);
            running++;
        }
        for (size_t i = 0; i < a->n_stop; i++) {
            send_status(s, a->stop[i], "", 0, GANTRY__REPLICA_STATE__REPLICA_STOPPED);
            running--;
        }
    }
    protobuf_c_message_free_unpacked(&f->base, NULL);
}

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(n);
    buf->len = n;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct sim *s = st->data;
    if (nread < 0) {
        free(buf->base);
        sim_drop(s);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    while (n > 0 && s->connected) {
        const uint8_t *frame;
        size_t flen;
        long used = gy_frame_decoder_feed(&s->decoder, p, n, &frame, &flen, NULL);
        if (used < 0) {
            sim_drop(s);
            break;
        }
        p += used;
        n -= (size_t)used;
        if (frame != NULL)
            on_frame(s, frame, flen);
    }
    free(buf->base);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct sim *s = req->data;
    if (status < 0) {
        snprintf(s->target, sizeof(s->target), "%s", servers[rand() % n_servers]);
        uv_close((uv_handle_t *)&s->tcp, on_closed);
        return;
    }
    s->connected = true;
    Gantry__NodeInfo node = GANTRY__NODE_INFO__INIT;
    Gantry__Resources cap = GANTRY__RESOURCES__INIT;
    cap.cpu_millis = 64000;
    cap.memory_bytes = INT64_C(256) << 30;
    node.name = s->name;
    node.cloud = (char *)"sim";
    node.region = (char *)"sim";
    char zone[16];
    snprintf(zone, sizeof(zone), "z%d", (int)(s - sims) % 3);
    node.zone = zone;
    node.capacity = &cap;
    Gantry__Hello hello = GANTRY__HELLO__INIT;
    hello.protocol_version = 1;
    hello.node = &node;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_HELLO;
    f.hello = &hello;
    send_frame(s, &f);
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

static void sim_connect(struct sim *s)
{
    gy_frame_decoder_init(&s->decoder, 0);
    char host[64];
    const char *colon = strrchr(s->target, ':');
    memcpy(host, s->target, (size_t)(colon - s->target));
    host[colon - s->target] = '\0';
    struct sockaddr_in addr;
    uv_ip4_addr(host, atoi(colon + 1), &addr);
    s->connect.data = s;
    if (uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&addr, on_connect) < 0)
        uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_heartbeat(uv_timer_t *t)
{
    (void)t;
    Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
    f.heartbeat = &hb;
    for (int i = 0; i < n_sims; i++)
        if (sims[i].welcomed)
            send_frame(&sims[i], &f);
}

static void on_report(uv_timer_t *t)
{
    (void)t;
    printf("welcomed=%ld running=%ld\n", welcomed, running);
    fflush(stdout);
}

static void on_term(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: simnodes SERVERS COUNT [PREFIX]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char *list = strdup(argv[1]);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        servers = realloc(servers, (size_t)(n_servers + 1) * sizeof(*servers));
        servers[n_servers++] = tok;
    }
    n_sims = atoi(argv[2]);
    if (argc > 3)
        prefix = argv[3];
    loop = uv_default_loop();
    sims = calloc((size_t)n_sims, sizeof(*sims));
    for (int i = 0; i < n_sims; i++) {
        struct sim *s = &sims[i];
        snprintf(s->name, sizeof(s->name), "%s-%05d", prefix, i);
        snprintf(s->target, sizeof(s->target), "%s", servers[i % n_servers]);
        uv_tcp_init(loop, &s->tcp);
        s->tcp.data = s;
        sim_connect(s);
    }
    uv_timer_t hb, report;
    uv_timer_init(loop, &hb);
    uv_timer_start(&hb, on_heartbeat, 1000, 1000);
    uv_timer_init(loop, &report);
    uv_timer_start(&report, on_report, 1000, 1000);
    uv_signal_t term;
    uv_signal_init(loop, &term);
    uv_signal_start(&term, on_term, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
