/* The node daemon; see daemon.h. Everything runs on one libuv loop: the session with the
 * control plane, a 200 ms supervision tick, the heartbeat, health checks (exec probes on
 * the thread pool) and signal handling. */
#include "agent/daemon.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "agent/bundle.h"
#include "agent/db_health.h"
#include "agent/health.h"
#include "agent/image.h"
#include "agent/metric.h"
#include "agent/network.h"
#include "agent/peer_server.h"
#include "agent/node_images.h"
#include "agent/pull.h"
#include "agent/replica_id.h"
#include "agent/replica_net.h"
#include "agent/wireguard.h"
#include "agent/session.h"
#include "agent/state.h"
#include "common/cidr.h"
#include "common/log.h"
#include "common/quantity.h"
#include "common/xalloc.h"
#include "proto/frame.h"
#include "proto/gantry.pb-c.h"
#include "proto/spec_pb.h"
#include "runtime/runtime.h"

#define TICK_MS            200
#define BACKOFF_FIRST_MS   250
#define BACKOFF_MAX_MS     30000
#define RAN_LONG_ENOUGH_MS 10000 /* a replica that ran this long restarts without delay */
#define LOG_CHUNK_MAX      (64 * 1024)

struct agent;

struct replica {
    struct agent *agent;
    struct replica *next;
    char *id;
    char *workload;
    uint64_t generation;
    uint8_t *spec_pb; /* packed Gantry__WorkloadSpec, as assigned */
    size_t spec_len;
    struct gy_spec spec;

    Gantry__ReplicaState state;
    bool ready;
    uint32_t restarts;
    int exit_code;
    int exit_signal;
    bool oom_killed;
    int64_t started_ms;
    int64_t changed_ms;
    char reason[320];
    uint32_t address;

    bool has_container; /* a runtime container with this id exists */
    bool recorded;      /* agent.db has a row for it (a container is started only then) */
    bool bare;          /* found in the runtime without a row: no spec until assigned */
    bool assigned;      /* the leader wants it to run */
    bool starting;      /* a start runs on the thread pool (see replica_start) */
    bool waiting_net;   /* held until the node has its replica subnet (net_adopt) */
    bool exit_handled;  /* its container's exit was handled: restart it when due */
    bool stop_pending;  /* asked to stop while starting: stops once the start is done */
    bool stopping;
    bool killed;
    uint64_t kill_at;    /* uv_now() after which SIGKILL follows SIGTERM */
    uint64_t restart_at; /* uv_now() of the next start attempt */
    uint64_t backoff_ms;
    uint64_t started_at; /* uv_now() of the last start */
    struct agent_health *health;
};

struct log_follow {
    struct log_follow *next;
    uint64_t request_id;
    char *replica_id;
    uint64_t offset;
};

struct agent {
    const struct agent_config *cfg;
    uv_loop_t loop;
    struct agent_state *db;
    struct agent_db_health dbh; /* whether agent.db takes writes */
    struct agent_session *session;
    struct agent_puller puller; /* images from registries (pull.h) */
    bool puller_open;
    struct agent_peer_server *blob_server;         /* layers for peers (peer_server.h) */
    char blob_address[AGENT_PEER_ADDRESS_MAX + 1]; /* what Hello says of it; "" = none */
    struct agent_image_peer *image_peers;          /* the leader's last list (image_peers_take) */
    size_t n_image_peers;
    struct agent_node_images *images; /* what the leader hears of them (node_images.h) */
    struct agent_net_config net;
    bool net_ready;          /* net has the node's replica subnet (--subnet, or the leader's) */
    struct agent_rnet *rnet; /* each replica's network, through CNI (replica_net.h) */
    uv_timer_t pool_timer;   /* refills the warm pool of attachments once starts are quiet */
    bool pool_filling;
    size_t net_jobs; /* attaches and detaches on the thread pool */
    /* Tunnels to other clouds (docs/network.md): the node's public key ("" when tunnels are
     * off) from the start, and the WireGuard device once a peer of another cloud exists. */
    char tunnel_key[AGENT_WG_KEY_B64];
    struct agent_wg *wg;
    char *base_config;
    struct replica *replicas;
    struct log_follow *follows;
    uv_timer_t tick;
    uv_timer_t heartbeat;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    Gantry__Label **labels;
    size_t n_labels;
    bool stopping;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *runtime_root(const struct agent *a)
{
    return a->cfg->runtime_root;
}

/* ---------------------------------------------------------------------------------------
 * Reporting and persistence */

static void replica_status(const struct replica *r, Gantry__ReplicaStatus *st, char *addr_buf)
{
    gantry__replica_status__init(st);
    st->replica_id = r->id;
    st->workload = r->workload;
    st->generation = r->generation;
    st->state = r->state;
    st->ready = r->ready;
    st->restarts = r->restarts;
    st->exit_code = r->exit_code;
    st->exit_signal = r->exit_signal;
    st->oom_killed = r->oom_killed;
    st->address = r->address != 0 ? (char *)agent_net_addr_str(r->address, addr_buf) : "";
    st->reason = (char *)r->reason;
    st->changed_ms = (uint64_t)r->changed_ms;
}

static void health_send(struct agent *a);

/* A write to agent.db failed: new replicas wait until a probe write succeeds, and the
 * leader, told at once, places none here meanwhile. */
static void db_write_failed(struct agent *a, const struct gy_error *err)
{
    if (!agent_db_health_failed(&a->dbh, err->msg, uv_now(&a->loop)))
        return;
    gy_log_error("agent database refuses writes; this node starts no new replica until it "
                 "takes them again, and keeps running the replicas it has",
                 "error=\"%s\"", err->msg);
    health_send(a);
}

static int replica_persist(struct replica *r)
{
    char addr[AGENT_NET_ADDR_MAX] = "";
    if (r->address != 0)
        agent_net_addr_str(r->address, addr);
    struct agent_replica_row row = {
        .id = r->id,
        .workload = r->workload,
        .generation = r->generation,
        .spec = r->spec_pb,
        .spec_len = r->spec_len,
        .state = r->state,
        .ready = r->ready,
        .restarts = r->restarts,
        .exit_code = r->exit_code,
        .exit_signal = r->exit_signal,
        .oom_killed = r->oom_killed,
        .started_ms = r->started_ms,
        .changed_ms = r->changed_ms,
        .reason = r->reason,
        .address = addr,
    };
    struct gy_error err;
    if (agent_state_replica_put(r->agent->db, &row, &err) < 0) {
        gy_log_warn("cannot record replica state", "replica=%s error=\"%s\"", r->id, err.msg);
        db_write_failed(r->agent, &err);
        return -err.code;
    }
    r->recorded = true;
    agent_db_health_write_ok(&r->agent->dbh);
    return 0;
}

static void replica_report(struct replica *r)
{
    struct agent *a = r->agent;
    if (a->session == NULL || !agent_session_ready(a->session))
        return;
    Gantry__ReplicaStatus st;
    char addr[AGENT_NET_ADDR_MAX];
    replica_status(r, &st, addr);
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_STATUS;
    f.status = &st;
    agent_session_send(a->session, &f);
}

/* Records a state change: memory, disk, and the leader, in that order. */
static void __attribute__((format(printf, 3, 4)))
replica_set(struct replica *r, Gantry__ReplicaState state, const char *fmt, ...)
{
    r->state = state;
    r->changed_ms = wall_ms();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    replica_persist(r);
    replica_report(r);
}

/* ---------------------------------------------------------------------------------------
 * Starting */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void replica_dir(const struct agent *a, const struct replica *r, const char *sub, char *buf,
                        size_t len)
{
    snprintf(buf, len, "%s/replicas/%s%s%s", a->cfg->data_dir, r->id, sub[0] ? "/" : "", sub);
}

static int exec_probe(void *data, const struct gy_strv *argv, int timeout_ms, char *detail,
                      size_t len)
{
    struct replica *r = data;
    const char **args = gy_xcalloc(argv->n + 1, sizeof(char *));
    for (size_t i = 0; i < argv->n; i++)
        args[i] = argv->items[i];
    struct rt_exec_opts opts = {
        .argv = args, .capture = true, .output_max = 200, .timeout_ms = timeout_ms};
    struct rt_exec_result res = {0};
    struct gy_error err;
    int code;
    if (rt_container_exec(runtime_root(r->agent), r->id, &opts, &res, &err) < 0) {
        snprintf(detail, len, "%s", err.msg);
        code = 126;
    } else {
        code = res.timed_out ? 124 : res.exit_code;
        if (res.timed_out)
            snprintf(detail, len, "timed out after %dms", timeout_ms);
        else if (res.output != NULL)
            snprintf(detail, len, "%s", res.output);
        for (char *p = detail; *p != '\0'; p++)
            if (*p == '\n')
                *p = ' ';
    }
    free(res.output);
    free(args);
    return code;
}

static void on_health(void *data, bool healthy, const char *detail);

static void schedule_restart(struct replica *r, const char *why)
{
    struct agent *a = r->agent;
    if (!r->has_container || r->started_at == 0)
        gy_log_warn("replica not started", "replica=%s reason=\"%s\"", r->id, why);
    uint64_t now = uv_now(&a->loop);
    bool ran_long = r->started_at != 0 && now - r->started_at >= RAN_LONG_ENOUGH_MS;
    if (ran_long || r->backoff_ms == 0)
        r->backoff_ms = ran_long ? 0 : BACKOFF_FIRST_MS;
    else
        r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
    r->restart_at = now + r->backoff_ms;
    char delay[GY_QUANTITY_BUF];
    gy_duration_format((int64_t)r->backoff_ms, delay);
    /* Three quick failures in a row make a crash loop, shown as such. */
    bool loop = r->backoff_ms >= BACKOFF_FIRST_MS * 4;
    replica_set(r,
                r->exit_code == 0 && r->exit_signal == 0 ? GANTRY__REPLICA_STATE__REPLICA_EXITED
                                                         : GANTRY__REPLICA_STATE__REPLICA_FAILED,
                "%s%s; restarting in %s", loop ? "crash loop: " : "", why, delay);
}

/* A start on the thread pool: the replica's network, its runtime config and writable
 * layer, and the container, which together take tens of milliseconds of process starts
 * and kernel work; the replicas of one assignment start side by side. The loop thread
 * keeps everything else: the replica is not freed, its spec not changed, nor its address
 * reused meanwhile (starting holds it). */
struct start_job {
    uv_work_t req;
    struct replica *r;
    char rootfs[PATH_MAX];            /* a bare root filesystem (agent/image.h), or "" */
    char image[GY_IMAGE_REF_MAX + 1]; /* else an image from a registry, pulled here */
    enum { START_OK, START_PULL, START_NETWORK, START_CONFIG, START_CREATE } failed;
    struct gy_error err;
    uint32_t address;               /* the replica's, from its network */
    struct agent_image_peer *peers; /* the nodes of this cloud, copied from the agent's */
    size_t n_peers;
    /* How far the pull got, written by its threads and read by the progress timer, which
     * shows it in the replica's reason once a second. */
    _Atomic int64_t pull_done;
    _Atomic int64_t pull_total;
    int64_t shown_done;
    uv_timer_t progress;
};

/* ---------------------------------------------------------------------------------------
 * Replica networks off the event loop: detaches, and the warm pool (replica_net.h) */

/* Refills begin this long after the last start or detach, so that they take no CPU from
 * a burst of starts and removals; the first fill a second after the agent starts. */
#define POOL_QUIET_MS 5000
#define POOL_FIRST_MS 1000
/* The VXLAN overlay to the nodes of this cloud that no direct route reaches. */
#define AGENT_VXLAN_INTERFACE "gantry-vx"
#define AGENT_PORTS_MAX       64
#define POOL_RETRY_MS         30000

struct net_job {
    uv_work_t req;
    struct agent *a;
    char *id;   /* a replica to detach or check; NULL: add one attachment to the pool */
    bool reuse; /* the replica's container is gone: its pooled network may serve again */
    bool check; /* CNI CHECK of an adopted replica's network; a failed one is detached */
    struct gy_error err;
    int rc;
};

static void net_job_work(uv_work_t *req)
{
    struct net_job *job = req->data;
    struct agent_rnet *rn = job->a->rnet;
    if (job->check) {
        job->rc = agent_rnet_check(rn, job->id, &job->err);
        /* Broken: the network goes now, so that the restart that follows makes a new one. */
        struct gy_error e;
        if (job->rc < 0 && agent_rnet_detach(rn, job->id, false, &e) < 0)
            gy_log_warn("cannot remove a broken replica network", "replica=%s error=\"%s\"",
                        job->id, e.msg);
    } else if (job->id != NULL) {
        job->rc = agent_rnet_detach(rn, job->id, job->reuse, &job->err);
    } else {
        job->rc = agent_rnet_pool_fill_one(rn, &job->err);
    }
}

static struct replica *replica_find(struct agent *a, const char *id);

static void pool_refill_later(struct agent *a);
static void on_pool_timer(uv_timer_t *t);
static void net_job_queue(struct agent *a, const char *id, bool reuse);

static void net_job_done(uv_work_t *req, int status)
{
    struct net_job *job = req->data;
    struct agent *a = job->a;
    (void)status;
    a->net_jobs--;
    if (job->id == NULL)
        a->pool_filling = false;
    if (job->rc < 0 && job->check) {
        /* The container restarts through its restart policy, with a new network. */
        gy_log_warn("replica network fails its CNI CHECK; restarting the replica",
                    "replica=%s error=\"%s\"", job->id, job->err.msg);
        struct replica *r = replica_find(a, job->id);
        if (r != NULL && r->has_container && !r->stopping)
            rt_container_kill(runtime_root(a), r->id, SIGKILL, true, NULL);
    } else if (job->rc < 0 && job->id != NULL) {
        gy_log_warn("cannot remove replica network", "replica=%s error=\"%s\"", job->id,
                    job->err.msg);
    } else if (job->rc < 0)
        gy_log_warn("warm pool of replica networks not refilled", "error=\"%s\"", job->err.msg);
    if (a->stopping || a->rnet == NULL) {
        /* nothing more */
    } else if (job->id == NULL && job->rc < 0) {
        /* A pool that cannot be filled is tried again much later, not every second. */
        uv_timer_start(&a->pool_timer, on_pool_timer, POOL_RETRY_MS, 0);
    } else if (job->id == NULL && a->net_jobs == 0 && agent_rnet_pool_missing(a->rnet) > 0) {
        net_job_queue(a, NULL, false);
    } else {
        pool_refill_later(a);
    }
    free(job->id);
    free(job);
}

static void net_job_submit(struct agent *a, struct net_job *job)
{
    if (uv_queue_work(&a->loop, &job->req, net_job_work, net_job_done) < 0) {
        free(job->id);
        free(job);
        return;
    }
    a->net_jobs++;
    if (job->id == NULL)
        a->pool_filling = true;
}

static void net_job_queue(struct agent *a, const char *id, bool reuse)
{
    struct net_job *job = gy_xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->a = a;
    job->id = id != NULL ? gy_xstrdup(id) : NULL;
    job->reuse = reuse;
    net_job_submit(a, job);
}

/* After a restart of the agent: CNI CHECK of an adopted replica's network. */
static void net_check(struct agent *a, const char *id)
{
    if (!agent_rnet_ready(a->rnet))
        return; /* no network yet: nothing to check */
    struct net_job *job = gy_xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->a = a;
    job->id = gy_xstrdup(id);
    job->check = true;
    net_job_submit(a, job);
}

/* A replica's network goes on the thread pool: CNI DEL runs plugins. */
static void net_detach(struct agent *a, const char *id, bool reuse)
{
    net_job_queue(a, id, reuse);
}

static void on_pool_timer(uv_timer_t *t)
{
    struct agent *a = t->data;
    if (a->stopping || a->pool_filling || a->rnet == NULL)
        return;
    /* Starts and detaches first: the pool waits until none is under way. */
    if (a->net_jobs > 0) {
        pool_refill_later(a);
        return;
    }
    if (agent_rnet_pool_missing(a->rnet) > 0)
        net_job_queue(a, NULL, false);
}

static void pool_refill_in(struct agent *a, uint64_t ms)
{
    if (!a->stopping && a->rnet != NULL && agent_rnet_pool_missing(a->rnet) > 0)
        uv_timer_start(&a->pool_timer, on_pool_timer, ms, 0);
}

static void pool_refill_later(struct agent *a)
{
    pool_refill_in(a, POOL_QUIET_MS);
}

static void on_pull_progress(void *arg, int64_t done, int64_t total)
{
    struct start_job *job = arg;
    atomic_store(&job->pull_total, total);
    atomic_store(&job->pull_done, done);
}

/* `pulling image REF: 12.3/50.1 MB`, reported (not recorded: it is out of date in a second)
 * when the pull moved since the last look. */
static void on_progress_tick(uv_timer_t *t)
{
    struct start_job *job = t->data;
    struct replica *r = job->r;
    int64_t done = atomic_load(&job->pull_done), total = atomic_load(&job->pull_total);
    if (total <= 0 || done == job->shown_done || r->stopping ||
        r->state != GANTRY__REPLICA_STATE__REPLICA_STARTING)
        return;
    job->shown_done = done;
    /* The sizes stay whole when a reference at its longest is cut (GY_IMAGE_REF_MAX). */
    char sizes[64];
    snprintf(sizes, sizeof(sizes), ": %.1f/%.1f MB", (double)done / 1e6, (double)total / 1e6);
    snprintf(r->reason, sizeof(r->reason), "pulling image %.*s%s",
             (int)(sizeof(r->reason) - sizeof("pulling image ") - strlen(sizes)), job->image,
             sizes);
    replica_report(r);
}

static void start_job_free(uv_handle_t *h)
{
    struct start_job *job = h->data;
    free(job->peers);
    free(job);
}

/* The layers and config of the replica's registry image, pulled first when the node does
 * not hold it (the store keeps one download of a blob at a time across replicas), from the
 * nodes of this cloud where they have it (pull.h). */
static int start_image(struct start_job *job, char ***dirs, size_t *n,
                       struct agent_image_defaults *defaults)
{
    struct agent *a = job->r->agent;
    struct agent_pull_result pulled;
    struct agent_pull_options opts = {
        .peers = job->peers,
        .n_peers = job->n_peers,
        .self = a->cfg->name,
        .progress = on_pull_progress,
        .progress_arg = job,
    };
    if (agent_pull_from(&a->puller, job->image, &opts, &pulled, &job->err) < 0)
        return -1;
    return agent_image_prepare(&a->puller, pulled.name, dirs, n, defaults, &job->err);
}

static void start_work(uv_work_t *req)
{
    struct start_job *job = req->data;
    struct replica *r = job->r;
    struct agent *a = r->agent;
    char path[PATH_MAX], upper[PATH_MAX], work[PATH_MAX];
    char netns[256];
    job->failed = START_OK;
    char **dirs = NULL;
    size_t n_dirs = 0;
    struct agent_image_defaults defaults = {0};
    /* Where a start spends its time, in the debug log: image, network, files, container. */
    uint64_t t[5];
    t[0] = uv_hrtime();
    if (job->rootfs[0] == '\0' && start_image(job, &dirs, &n_dirs, &defaults) < 0) {
        job->failed = START_PULL;
        return;
    }
    t[1] = uv_hrtime();
    struct agent_cni_port ports[AGENT_PORTS_MAX];
    struct agent_cni_args args = {.ports = ports};
    for (size_t i = 0; i < r->spec.n_ports && args.n_ports < AGENT_PORTS_MAX; i++)
        if (r->spec.ports[i].host_port != 0)
            ports[args.n_ports++] =
                (struct agent_cni_port){.host_port = (uint16_t)r->spec.ports[i].host_port,
                                        .container_port = (uint16_t)r->spec.ports[i].container_port,
                                        .udp = r->spec.ports[i].protocol == GY_PROTOCOL_UDP};
    if (agent_rnet_attach(a->rnet, r->id, &args, netns, sizeof(netns), &job->address, &job->err) <
        0) {
        job->failed = START_NETWORK;
        goto out;
    }
    t[2] = uv_hrtime();
    struct agent_bundle_params params = {
        .replica_id = r->id, .netns_path = netns, .image = dirs != NULL ? &defaults : NULL};
    char *config = agent_bundle_config(a->base_config, &r->spec, &params, &job->err);
    if (config == NULL) {
        job->failed = START_CONFIG;
        goto out;
    }
    /* Every start begins from the image: a fresh writable layer, as Kubernetes does. */
    replica_dir(a, r, "", path, sizeof(path));
    nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    replica_dir(a, r, "upper", upper, sizeof(upper));
    replica_dir(a, r, "work", work, sizeof(work));
    char replicas_dir[PATH_MAX];
    snprintf(replicas_dir, sizeof(replicas_dir), "%s/replicas", a->cfg->data_dir);
    mkdir(replicas_dir, 0700);
    mkdir(path, 0700);
    mkdir(upper, 0755);
    mkdir(work, 0700);
    const char *flat[] = {job->rootfs};
    struct rt_create_opts opts = {.root = runtime_root(a),
                                  .id = r->id,
                                  .config_json = config,
                                  .layers = dirs != NULL ? (const char **)dirs : flat,
                                  .n_layers = dirs != NULL ? n_dirs : 1,
                                  .upper_dir = upper,
                                  .work_dir = work,
                                  .start = true};
    t[3] = uv_hrtime();
    if (rt_container_create(&opts, NULL, &job->err) < 0)
        job->failed = START_CREATE;
    t[4] = uv_hrtime();
    gy_log_debug("replica start",
                 "replica=%s image_ms=%.1f network_ms=%.1f files_ms=%.1f create_ms=%.1f", r->id,
                 (double)(t[1] - t[0]) / 1e6, (double)(t[2] - t[1]) / 1e6,
                 (double)(t[3] - t[2]) / 1e6, (double)(t[4] - t[3]) / 1e6);
    free(config);
out:
    oci_strv_free(dirs, n_dirs);
    agent_image_defaults_free(&defaults);
}

/* The signal that asks the replica's process to stop: the image's StopSignal, which the
 * start wrote into the container's annotations (so it holds also for a replica adopted
 * after a restart of the agent), else SIGTERM; its name goes in name. */
static int stop_signal_of(struct agent *a, const struct replica *r, char *name, size_t len)
{
    int signo = SIGTERM;
    char *text = rt_container_annotations(runtime_root(a), r->id);
    json_t *doc = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *given =
        json_string_value(json_object_get(doc, "org.opencontainers.image.stopSignal"));
    int parsed = oci_signal_parse(given);
    if (parsed > 0 && parsed < 65)
        signo = parsed;
    if (signo == SIGTERM || given == NULL)
        snprintf(name, len, "SIGTERM");
    else
        snprintf(name, len, "%.20s", given);
    json_decref(doc);
    free(text);
    return signo;
}

static void replica_stop(struct replica *r);

static void start_done(uv_work_t *req, int status)
{
    struct start_job *job = req->data;
    struct replica *r = job->r;
    struct agent *a = r->agent;
    (void)status; /* starts are never cancelled */
    r->starting = false;
    a->net_jobs--;
    if (job->address != 0 && job->address != r->address) {
        r->address = job->address;
        replica_persist(r);
    }
    pool_refill_later(a);
    switch (job->failed) {
    case START_NETWORK:
        schedule_restart(r, job->err.msg);
        break;
    case START_PULL: {
        /* Kubernetes' ImagePullBackOff: tried again after the restart delay, which grows. */
        char why[sizeof(job->err.msg) + 32];
        snprintf(why, sizeof(why), "ImagePullBackOff: %s", job->err.msg);
        gy_log_warn("image pull failed", "replica=%s image=%s error=\"%s\"", r->id, job->image,
                    job->err.msg);
        r->exit_code = 0;
        r->exit_signal = 0;
        schedule_restart(r, why);
        break;
    }
    case START_CONFIG:
        r->exit_code = 1;
        schedule_restart(r, job->err.msg);
        break;
    case START_CREATE:
        r->exit_code = job->err.code == GY_ENOTFOUND ? 127 : job->err.code == GY_EPERM ? 126 : 1;
        r->exit_signal = 0;
        schedule_restart(r, job->err.msg);
        break;
    case START_OK: {
        r->has_container = true;
        r->exit_handled = false;
        r->started_at = uv_now(&a->loop);
        r->started_ms = wall_ms();
        r->exit_code = 0;
        r->exit_signal = 0;
        r->oom_killed = false;
        char addr[AGENT_NET_ADDR_MAX];
        agent_net_addr_str(r->address, addr);
        static const struct agent_health_callbacks hcb = {.on_change = on_health};
        if (!a->stopping && !r->stop_pending)
            r->health = agent_health_start(&a->loop, &r->spec.health, addr, exec_probe, r, &hcb, r);
        r->ready = r->health == NULL;
        replica_set(r, GANTRY__REPLICA_STATE__REPLICA_RUNNING, "%s",
                    r->ready ? "running" : "running; waiting for the health check");
        gy_log_info("replica started", "replica=%s address=%s", r->id, addr);
        break;
    }
    }
    uv_close((uv_handle_t *)&job->progress, start_job_free);
    if (r->stop_pending && !a->stopping) {
        r->stop_pending = false;
        replica_stop(r);
    }
}

static void replica_start(struct replica *r)
{
    struct agent *a = r->agent;
    struct gy_error err;

    if (r->starting)
        return;
    if (!agent_rnet_ready(a->rnet)) {
        r->waiting_net = true;
        replica_set(r, GANTRY__REPLICA_STATE__REPLICA_PENDING, "%s",
                    "waiting for the node's replica subnet from the leader");
        return;
    }
    if (r->has_container) {
        if (rt_container_delete(runtime_root(a), r->id, true, &err) < 0 &&
            err.code != GY_ENOTFOUND) {
            schedule_restart(r, err.msg);
            return;
        }
        r->has_container = false;
    }
    /* A root filesystem imported under this name first (gantry-agent image import), else an
     * image from a registry, pulled on the thread pool by the start. */
    struct agent_image img;
    memset(&img, 0, sizeof(img));
    char image[GY_IMAGE_REF_MAX + 1] = "";
    bool pulling = false;
    if (agent_image_get(a->cfg->data_dir, r->spec.image, &img, &err) < 0) {
        struct gy_image_ref ref;
        if (!a->puller_open || gy_image_ref_parse(r->spec.image, &ref, NULL) < 0) {
            r->exit_code = 0;
            r->exit_signal = 0;
            schedule_restart(r, err.msg);
            r->state = GANTRY__REPLICA_STATE__REPLICA_PENDING;
            replica_persist(r);
            replica_report(r);
            return;
        }
        /* The digest the leader pinned at apply decides what is pulled (docs/images.md). */
        if (r->spec.image_digest != NULL)
            snprintf(ref.digest, sizeof(ref.digest), "%s", r->spec.image_digest);
        gy_image_ref_format(&ref, image, sizeof(image));
        struct oci_image have;
        if (oci_image_get(a->puller.store, image, &have, NULL) == 0) {
            oci_image_free(&have);
        } else {
            replica_set(r, GANTRY__REPLICA_STATE__REPLICA_STARTING, "pulling image %s", image);
            pulling = true;
        }
    }
    struct start_job *job = gy_xcalloc(1, sizeof(*job));
    job->req.data = job;
    job->r = r;
    snprintf(job->rootfs, sizeof(job->rootfs), "%s", img.rootfs);
    snprintf(job->image, sizeof(job->image), "%s", image);
    if (image[0] != '\0' && a->n_image_peers > 0) {
        job->peers = gy_xcalloc(a->n_image_peers, sizeof(*job->peers));
        memcpy(job->peers, a->image_peers, a->n_image_peers * sizeof(*job->peers));
        job->n_peers = a->n_image_peers;
    }
    uv_timer_init(&a->loop, &job->progress);
    job->progress.data = job;
    if (uv_queue_work(&a->loop, &job->req, start_work, start_done) < 0) {
        uv_close((uv_handle_t *)&job->progress, start_job_free);
        schedule_restart(r, "cannot queue the start");
        return;
    }
    if (pulling)
        uv_timer_start(&job->progress, on_progress_tick, 1000, 1000);
    r->starting = true;
    a->net_jobs++;
}

static void on_health(void *data, bool healthy, const char *detail)
{
    struct replica *r = data;
    if (r->stopping || r->state != GANTRY__REPLICA_STATE__REPLICA_RUNNING)
        return;
    r->ready = healthy;
    if (healthy) {
        replica_set(r, GANTRY__REPLICA_STATE__REPLICA_RUNNING, "ready");
        return;
    }
    /* Unhealthy: kill it; the exit is then handled like any other, by the restart policy. */
    gy_log_warn("replica unhealthy", "replica=%s reason=\"%s\"", r->id, detail);
    replica_set(r, GANTRY__REPLICA_STATE__REPLICA_RUNNING, "%s; restarting", detail);
    rt_container_kill(runtime_root(r->agent), r->id, SIGKILL, true, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Exits, stops and removal */

static void replica_exited(struct replica *r, const struct rt_state *st)
{
    agent_health_stop(r->health);
    r->health = NULL;
    r->ready = false;
    r->exit_code = st->exit_code;
    r->exit_signal = st->exit_signal;
    r->oom_killed = st->oom_killed;
    char why[128];
    if (st->oom_killed)
        snprintf(why, sizeof(why), "killed for exceeding its memory limit (OOM)");
    else if (st->exit_signal != 0)
        snprintf(why, sizeof(why), "killed by signal %d", st->exit_signal);
    else
        snprintf(why, sizeof(why), "exited with code %d", st->exit_code);
    bool failed = st->exit_code != 0 || st->exit_signal != 0;
    bool restart = r->spec.restart == GY_RESTART_ALWAYS ||
                   (r->spec.restart == GY_RESTART_ON_FAILURE && failed);
    gy_log_info("replica exited", "replica=%s reason=\"%s\" restart=%s", r->id, why,
                restart ? "yes" : "no");
    if (restart) {
        r->restarts++;
        schedule_restart(r, why);
    } else {
        r->assigned = false; /* done: the policy keeps it down */
        replica_set(r,
                    failed ? GANTRY__REPLICA_STATE__REPLICA_FAILED
                           : GANTRY__REPLICA_STATE__REPLICA_EXITED,
                    "%s", why);
    }
}

static void replica_free(struct replica *r)
{
    agent_health_stop(r->health);
    gy_spec_free(&r->spec);
    free(r->spec_pb);
    free(r->id);
    free(r->workload);
    free(r);
}

static void replica_unlink(struct agent *a, struct replica *r)
{
    for (struct replica **p = &a->replicas; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

/* Removes everything of a stopped replica: container, network, files, state row. */
static void replica_finish_stop(struct replica *r)
{
    struct agent *a = r->agent;
    struct gy_error err;
    bool gone = true; /* no process of the replica is left */
    if (r->has_container && rt_container_delete(runtime_root(a), r->id, true, &err) < 0 &&
        err.code != GY_ENOTFOUND) {
        gy_log_warn("cannot delete container", "replica=%s error=\"%s\"", r->id, err.msg);
        gone = false;
    }
    r->has_container = false;
    net_detach(a, r->id, gone);
    char path[PATH_MAX];
    replica_dir(a, r, "", path, sizeof(path));
    nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    r->ready = false;
    replica_set(r, GANTRY__REPLICA_STATE__REPLICA_STOPPED, "stopped");
    /* A row left behind is removed when the database takes writes again (db_recover). */
    if (agent_state_replica_delete(a->db, r->id, &err) < 0)
        db_write_failed(a, &err);
    gy_log_info("replica removed", "replica=%s", r->id);
    replica_unlink(a, r);
    replica_free(r);
}

static void replica_stop(struct replica *r)
{
    if (r->stopping)
        return;
    struct agent *a = r->agent;
    r->assigned = false;
    if (r->starting) {
        r->stop_pending = true; /* start_done stops it */
        return;
    }
    r->stopping = true;
    agent_health_stop(r->health);
    r->health = NULL;
    r->ready = false;
    struct rt_state st;
    if (r->has_container && rt_container_state(runtime_root(a), r->id, &st, NULL) == 0 &&
        st.status == RT_STATUS_RUNNING) {
        char signame[32];
        int signo = stop_signal_of(a, r, signame, sizeof(signame));
        rt_container_kill(runtime_root(a), r->id, signo, false, NULL);
        uint64_t grace = r->spec.stop_grace_ms > 0 ? (uint64_t)r->spec.stop_grace_ms : 10000;
        r->kill_at = uv_now(&a->loop) + grace;
        replica_set(r, GANTRY__REPLICA_STATE__REPLICA_STOPPING, "stopping (%s)", signame);
        return;
    }
    replica_finish_stop(r);
}

/* ---------------------------------------------------------------------------------------
 * Recording before starting, and the agent's database under faults */

static struct replica *replica_find(struct agent *a, const char *id);

/* Reports a replica that cannot be recorded as failed, with the database's reason. It
 * stays assigned and starts once agent.db takes writes again (db_recover). */
static void replica_refuse(struct replica *r)
{
    struct agent *a = r->agent;
    r->state = GANTRY__REPLICA_STATE__REPLICA_FAILED;
    r->ready = false;
    r->changed_ms = wall_ms();
    snprintf(r->reason, sizeof(r->reason), "%.200s; not started until the database takes writes",
             a->dbh.reason);
    gy_log_warn("replica not started: it cannot be recorded", "replica=%s error=\"%s\"", r->id,
                a->dbh.reason);
    replica_report(r);
}

/* A container agent.db does not know would be an orphan after a restart of the agent, so a
 * newly assigned replica is recorded before its container starts. */
static void replica_record_then_start(struct replica *r)
{
    r->state = GANTRY__REPLICA_STATE__REPLICA_PENDING;
    r->changed_ms = wall_ms();
    snprintf(r->reason, sizeof(r->reason), "assigned");
    if (replica_persist(r) < 0) {
        replica_refuse(r);
        return;
    }
    replica_report(r);
    replica_start(r);
}

/* agent.db takes writes again: records what changed meanwhile, starts the replicas that
 * waited for their record, and removes the rows of replicas gone meanwhile. */
static void db_recover(struct agent *a)
{
    for (struct replica *r = a->replicas; r != NULL && !a->dbh.failing; r = r->next) {
        if (!r->recorded && !r->bare && r->assigned && !r->starting && !r->stopping)
            replica_record_then_start(r);
        else
            replica_persist(r);
    }
    struct agent_replica_row *rows;
    size_t n;
    struct gy_error err;
    if (a->dbh.failing || agent_state_replica_list(a->db, &rows, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n && !a->dbh.failing; i++)
        if (replica_find(a, rows[i].id) == NULL &&
            agent_state_replica_delete(a->db, rows[i].id, &err) < 0)
            db_write_failed(a, &err);
    agent_replica_rows_free(rows, n);
}

/* A probe write while agent.db refuses writes, at most every AGENT_DB_PROBE_MAX_MS. */
static void db_probe(struct agent *a, uint64_t now)
{
    struct gy_error err;
    uint64_t since = a->dbh.since_ms, refused = a->dbh.failed_writes;
    bool ok = agent_state_probe(a->db, wall_ms(), &err) == 0;
    agent_db_health_probe_done(&a->dbh, ok, now);
    if (!ok)
        return;
    gy_log_info("agent database takes writes again; new replicas start",
                "path=%s refused_for_ms=%" PRIu64 " refused_writes=%" PRIu64,
                agent_state_path(a->db), now - since, refused);
    db_recover(a);
    if (!a->dbh.failing)
        health_send(a);
}

/* ---------------------------------------------------------------------------------------
 * Assignments */

static struct replica *replica_find(struct agent *a, const char *id)
{
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

/* Makes a replica from its packed spec; NULL (logged) when the spec is unusable. */
static struct replica *replica_new(struct agent *a, const char *id, const char *workload,
                                   uint64_t generation, const uint8_t *spec_pb, size_t len)
{
    Gantry__WorkloadSpec *msg = gantry__workload_spec__unpack(NULL, len, spec_pb);
    struct gy_error err;
    struct replica *r = gy_xcalloc(1, sizeof(*r));
    if (msg == NULL || gy_spec_from_proto(msg, &r->spec, &err) < 0) {
        gy_log_error("unusable replica spec", "replica=%s error=\"%s\"", id,
                     msg == NULL ? "malformed" : err.msg);
        if (msg != NULL)
            gy_spec_free(&r->spec);
        gantry__workload_spec__free_unpacked(msg, NULL);
        free(r);
        return NULL;
    }
    gantry__workload_spec__free_unpacked(msg, NULL);
    r->agent = a;
    r->id = gy_xstrdup(id);
    r->workload = gy_xstrdup(workload != NULL && workload[0] ? workload : r->spec.name);
    r->generation = generation;
    r->spec_pb = gy_xmalloc(len);
    memcpy(r->spec_pb, spec_pb, len);
    r->spec_len = len;
    r->next = a->replicas;
    a->replicas = r;
    return r;
}

/* The leader assigns a container adopted bare (see adopt_unrecorded): it takes the spec
 * and generation assigned, is recorded, and is supervised from now on like any other. */
static void replica_unbare(struct replica *r, const Gantry__AssignedReplica *ar)
{
    struct agent *a = r->agent;
    struct gy_error err;
    size_t len = gantry__workload_spec__get_packed_size(ar->spec);
    struct gy_spec spec;
    memset(&spec, 0, sizeof(spec));
    if (gy_spec_from_proto(ar->spec, &spec, &err) < 0) {
        gy_log_error("unusable replica spec", "replica=%s error=\"%s\"", r->id, err.msg);
        gy_spec_free(&spec);
        return;
    }
    r->spec = spec;
    r->spec_pb = gy_xmalloc(len ? len : 1);
    gantry__workload_spec__pack(ar->spec, r->spec_pb);
    r->spec_len = len;
    r->generation = ar->generation;
    free(r->workload);
    r->workload = gy_xstrdup(r->spec.name);
    r->bare = false;
    r->assigned = true;
    struct rt_state st;
    if (r->has_container && rt_container_state(runtime_root(a), r->id, &st, NULL) == 0 &&
        st.status == RT_STATUS_RUNNING) {
        char addr[AGENT_NET_ADDR_MAX];
        agent_net_addr_str(r->address, addr);
        static const struct agent_health_callbacks hcb = {.on_change = on_health};
        r->health = agent_health_start(&a->loop, &r->spec.health, addr, exec_probe, r, &hcb, r);
        r->ready = r->health == NULL;
    }
    gy_log_info("adopted container assigned by the leader", "replica=%s workload=%s", r->id,
                r->workload);
    bool running = r->state == GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    replica_set(r, r->state, "%s",
                !running   ? "adopted"
                : r->ready ? "adopted; running"
                           : "adopted; running; waiting for the health check");
}

static void assignment_start(struct agent *a, const Gantry__AssignedReplica *ar)
{
    /* Checked at the boundary: the id names directories, the container and the network
     * namespace of the replica, whoever sent it. */
    char workload[GY_SPEC_NAME_MAX + 1];
    if (!agent_replica_id_parse(ar->replica_id, workload) ||
        (ar->spec != NULL && (ar->spec->name == NULL || strcmp(workload, ar->spec->name) != 0))) {
        char shown[AGENT_REPLICA_ID_MAX + 1];
        size_t i = 0;
        for (const char *c = ar->replica_id != NULL ? ar->replica_id : "";
             *c && i + 1 < sizeof(shown); c++)
            shown[i++] =
                (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ? *c : '?';
        shown[i] = '\0';
        gy_log_warn("assigned replica refused: its id is not its workload's name, '-' and eight "
                    "hex digits",
                    "replica=%s", shown);
        return;
    }
    struct replica *r = replica_find(a, ar->replica_id);
    if (r != NULL) {
        /* Already known: a stop in progress is not undone, and a replica the policy left
         * down stays down. */
        if (r->bare && !r->stopping && ar->spec != NULL)
            replica_unbare(r, ar);
        return;
    }
    if (ar->spec == NULL)
        return;
    size_t len = gantry__workload_spec__get_packed_size(ar->spec);
    uint8_t *buf = gy_xmalloc(len ? len : 1);
    gantry__workload_spec__pack(ar->spec, buf);
    r = replica_new(a, ar->replica_id, ar->spec->name, ar->generation, buf, len);
    free(buf);
    if (r == NULL)
        return;
    r->assigned = true;
    r->restart_at = 0;
    replica_record_then_start(r);
}

/* Answers a stop for a replica this node does not hold: it is stopped. Its last report
 * may have been lost with a leader, which would otherwise wait for it forever (and count
 * its resources as taken). */
static void report_gone(struct agent *a, const char *id)
{
    if (a->session == NULL || !agent_session_ready(a->session))
        return;
    Gantry__ReplicaStatus st;
    gantry__replica_status__init(&st);
    st.replica_id = (char *)id;
    st.workload = "";
    st.state = GANTRY__REPLICA_STATE__REPLICA_STOPPED;
    st.address = "";
    st.reason = "not on this node";
    st.changed_ms = (uint64_t)wall_ms();
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_STATUS;
    f.status = &st;
    agent_session_send(a->session, &f);
}

/* The nodes of this cloud whose layer servers pulls may ask (docs/images.md, "Peers"): the
 * list the leader sends with every replica to start, the same for all of them, replaces
 * the one before; entries that are not a node name and HOST:PORT are dropped. */
static void image_peers_take(struct agent *a, const Gantry__Assignment *as)
{
    if (as->n_start == 0)
        return;
    const Gantry__AssignedReplica *ar = as->start[0];
    free(a->image_peers);
    a->image_peers = NULL;
    a->n_image_peers = 0;
    if (ar->n_image_peers == 0)
        return;
    a->image_peers = gy_xcalloc(ar->n_image_peers, sizeof(*a->image_peers));
    for (size_t i = 0; i < ar->n_image_peers && a->n_image_peers < AGENT_IMAGE_PEERS_MAX; i++) {
        const Gantry__ImagePeer *ip = ar->image_peers[i];
        if (ip->node == NULL || ip->node[0] == '\0' || strlen(ip->node) > AGENT_PEER_NODE_MAX ||
            !agent_peer_address_valid(ip->address))
            continue;
        struct agent_image_peer *peer = &a->image_peers[a->n_image_peers++];
        snprintf(peer->node, sizeof(peer->node), "%s", ip->node);
        snprintf(peer->address, sizeof(peer->address), "%s", ip->address);
    }
}

static void on_assignment(void *data, const Gantry__Assignment *as)
{
    struct agent *a = data;
    image_peers_take(a, as);
    gy_log_debug("assignment", "full=%d start=%zu stop=%zu", (int)as->full, as->n_start,
                 as->n_stop);
    if (as->full) {
        /* Everything not listed goes. */
        for (struct replica *r = a->replicas, *next; r != NULL; r = next) {
            next = r->next;
            bool listed = false;
            for (size_t i = 0; i < as->n_start && !listed; i++)
                listed = strcmp(as->start[i]->replica_id, r->id) == 0;
            if (!listed)
                replica_stop(r);
        }
    }
    for (size_t i = 0; i < as->n_stop; i++) {
        struct replica *r = replica_find(a, as->stop[i]);
        if (r != NULL)
            replica_stop(r);
        else
            report_gone(a, as->stop[i]);
    }
    for (size_t i = 0; i < as->n_start; i++)
        assignment_start(a, as->start[i]);
}

/* ---------------------------------------------------------------------------------------
 * Logs */

static void send_log_chunk(struct agent *a, uint64_t request_id, const uint8_t *data, size_t len,
                           bool eof, const char *error)
{
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    Gantry__LogChunk c = GANTRY__LOG_CHUNK__INIT;
    c.request_id = request_id;
    c.data.data = (uint8_t *)data;
    c.data.len = len;
    c.eof = eof;
    c.error = (char *)(error != NULL ? error : "");
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_LOG_CHUNK;
    f.log_chunk = &c;
    agent_session_send(a->session, &f);
}

/* Sends what the log holds past *offset (a rotated, shorter log starts over). Returns
 * false when the replica's log cannot be read. */
static bool send_log_from(struct agent *a, uint64_t request_id, const char *replica_id,
                          uint64_t *offset, bool eof_at_end)
{
    char *path = rt_container_log_path(runtime_root(a), replica_id);
    FILE *f = path != NULL ? fopen(path, "rb") : NULL;
    free(path);
    if (f == NULL)
        return false;
    fseeko(f, 0, SEEK_END);
    uint64_t size = (uint64_t)ftello(f);
    if (size < *offset)
        *offset = 0;
    fseeko(f, (off_t)*offset, SEEK_SET);
    uint8_t *buf = gy_xmalloc(LOG_CHUNK_MAX);
    size_t n;
    bool sent_any = false;
    while ((n = fread(buf, 1, LOG_CHUNK_MAX, f)) > 0) {
        *offset += n;
        bool last = eof_at_end && *offset >= size;
        send_log_chunk(a, request_id, buf, n, last, NULL);
        sent_any = true;
    }
    if (eof_at_end && !sent_any)
        send_log_chunk(a, request_id, NULL, 0, true, NULL);
    free(buf);
    fclose(f);
    return true;
}

static void on_log_request(void *data, const Gantry__LogRequest *req)
{
    struct agent *a = data;
    if (req->cancel) {
        for (struct log_follow **p = &a->follows; *p != NULL; p = &(*p)->next) {
            if ((*p)->request_id == req->request_id) {
                struct log_follow *f = *p;
                *p = f->next;
                free(f->replica_id);
                free(f);
                break;
            }
        }
        return;
    }
    uint64_t offset = req->offset;
    if (replica_find(a, req->replica_id) == NULL ||
        !send_log_from(a, req->request_id, req->replica_id, &offset, !req->follow)) {
        char why[256];
        snprintf(why, sizeof(why), "replica %s has no log on node %s", req->replica_id,
                 a->cfg->name);
        send_log_chunk(a, req->request_id, NULL, 0, true, why);
        return;
    }
    if (req->follow) {
        struct log_follow *f = gy_xcalloc(1, sizeof(*f));
        f->request_id = req->request_id;
        f->replica_id = gy_xstrdup(req->replica_id);
        f->offset = offset;
        f->next = a->follows;
        a->follows = f;
    }
}

/* ---------------------------------------------------------------------------------------
 * Load-metric probes for the autoscaler */

static void metric_answered(void *data, const Gantry__MetricValue *value)
{
    struct agent *a = data;
    if (a->session == NULL || !agent_session_ready(a->session))
        return;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_METRIC_VALUE;
    f.metric_value = (Gantry__MetricValue *)value;
    agent_session_send(a->session, &f);
}

static void on_metric_probe(void *data, const Gantry__MetricProbe *probe)
{
    struct agent *a = data;
    struct replica *r = replica_find(a, probe->replica_id);
    if (r == NULL || !r->has_container || r->state != GANTRY__REPLICA_STATE__REPLICA_RUNNING) {
        char why[256];
        snprintf(why, sizeof(why), "replica %s is not running on node %s", probe->replica_id,
                 a->cfg->name);
        Gantry__MetricValue v = GANTRY__METRIC_VALUE__INIT;
        v.request_id = probe->request_id;
        v.replica_id = probe->replica_id;
        v.error = why;
        metric_answered(a, &v);
        return;
    }
    char addr[AGENT_NET_ADDR_MAX] = "";
    if (r->address != 0)
        agent_net_addr_str(r->address, addr);
    agent_metric_probe(&a->loop, probe, runtime_root(a), addr, metric_answered, a);
}

static void follows_tick(struct agent *a)
{
    for (struct log_follow **p = &a->follows; *p != NULL;) {
        struct log_follow *f = *p;
        bool alive = replica_find(a, f->replica_id) != NULL && a->session != NULL &&
                     agent_session_ready(a->session) &&
                     send_log_from(a, f->request_id, f->replica_id, &f->offset, false);
        if (alive) {
            p = &f->next;
            continue;
        }
        if (a->session != NULL && agent_session_ready(a->session))
            send_log_chunk(a, f->request_id, NULL, 0, true, NULL);
        *p = f->next;
        free(f->replica_id);
        free(f);
    }
}

/* ---------------------------------------------------------------------------------------
 * The supervision tick and the heartbeat */

static void on_tick(uv_timer_t *t)
{
    struct agent *a = t->data;
    uint64_t now = uv_now(&a->loop);
    for (struct replica *r = a->replicas, *next; r != NULL; r = next) {
        next = r->next;
        struct rt_state st;
        struct gy_error err;
        /* A bare container waits for the assignment that names it, or its stop. */
        if (r->starting || (r->bare && !r->stopping))
            continue;
        if (r->stopping) {
            int rc = rt_container_state(runtime_root(a), r->id, &st, &err);
            if (rc < 0 || st.status == RT_STATUS_STOPPED) {
                replica_finish_stop(r);
            } else if (!r->killed && now >= r->kill_at) {
                rt_container_kill(runtime_root(a), r->id, SIGKILL, true, NULL);
                r->killed = true;
            }
            continue;
        }
        if (r->has_container) {
            int rc = rt_container_state(runtime_root(a), r->id, &st, &err);
            if (rc < 0 && err.code == GY_ENOTFOUND) {
                /* Someone removed it behind our back: start it again. */
                r->has_container = false;
                if (r->assigned) {
                    r->exit_code = 0;
                    r->exit_signal = 9;
                    schedule_restart(r, "container disappeared");
                }
            } else if (rc == 0 && st.status == RT_STATUS_STOPPED) {
                /* The exit is handled once; the stopped container stays until the restart
                 * (if the policy wants one) replaces it when its backoff is over. */
                if (!r->exit_handled) {
                    r->exit_handled = true;
                    replica_exited(r, &st);
                } else if (r->assigned && now >= r->restart_at) {
                    replica_start(r);
                }
            }
            continue;
        }
        if (r->assigned && r->recorded && now >= r->restart_at)
            replica_start(r);
    }
    follows_tick(a);
    if (agent_db_health_probe_due(&a->dbh, now))
        db_probe(a, now);
}

/* The node's health for hello and heartbeat; reason holds its text. */
static void node_health(const struct agent *a, Gantry__NodeHealth *health,
                        char reason[AGENT_DB_REASON_WIRE_MAX + 1])
{
    gantry__node_health__init(health);
    agent_db_health_wire_reason(&a->dbh, reason);
    health->storage_refused = reason;
}

/* A heartbeat without samples, sent when the node's health changes so that the leader
 * need not wait for the next one. */
static void health_send(struct agent *a)
{
    if (a->session == NULL || !agent_session_ready(a->session))
        return;
    Gantry__NodeHealth health;
    char reason[AGENT_DB_REASON_WIRE_MAX + 1];
    node_health(a, &health, reason);
    Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
    hb.time_ms = (uint64_t)wall_ms();
    hb.health = &health;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
    f.heartbeat = &hb;
    agent_session_send(a->session, &f);
}

static void on_heartbeat(uv_timer_t *t)
{
    struct agent *a = t->data;
    /* An image pulled, loaded, imported or removed by another process shows here. */
    agent_node_images_check(a->images);
    if (a->session == NULL || !agent_session_ready(a->session))
        return;
    size_t n = 0;
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        n++;
    Gantry__ContainerSample *samples = gy_xcalloc(n ? n : 1, sizeof(*samples));
    Gantry__ContainerSample **ptrs = gy_xcalloc(n ? n : 1, sizeof(*ptrs));
    Gantry__NodeSample node = GANTRY__NODE_SAMPLE__INIT;
    size_t k = 0;
    for (struct replica *r = a->replicas; r != NULL; r = r->next) {
        struct rt_stats stats;
        if (!r->has_container || r->state != GANTRY__REPLICA_STATE__REPLICA_RUNNING ||
            rt_container_stats(runtime_root(a), r->id, &stats, NULL) < 0)
            continue;
        gantry__container_sample__init(&samples[k]);
        samples[k].replica_id = r->id;
        samples[k].cpu_usage_ns = stats.cpu_usage_ns;
        samples[k].memory_bytes = stats.memory_bytes;
        node.cpu_usage_ns += stats.cpu_usage_ns;
        node.memory_bytes += stats.memory_bytes;
        ptrs[k] = &samples[k];
        k++;
    }
    node.containers = (uint32_t)k;
    Gantry__NodeHealth health;
    char reason[AGENT_DB_REASON_WIRE_MAX + 1];
    node_health(a, &health, reason);
    Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
    hb.time_ms = (uint64_t)wall_ms();
    hb.samples = ptrs;
    hb.n_samples = k;
    hb.node = &node;
    hb.health = &health;
    hb.images = agent_node_images_report(a->images, false);
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
    f.heartbeat = &hb;
    agent_session_send(a->session, &f);
    free(ptrs);
    free(samples);
}

/* ---------------------------------------------------------------------------------------
 * Session callbacks */

static int make_hello(void *data, uint8_t **frame, size_t *len)
{
    struct agent *a = data;
    const struct agent_config *cfg = a->cfg;
    Gantry__NodeInfo node = GANTRY__NODE_INFO__INIT;
    Gantry__Resources cap = GANTRY__RESOURCES__INIT;
    node.name = (char *)cfg->name;
    node.cloud = (char *)cfg->cloud;
    node.region = (char *)cfg->region;
    node.zone = (char *)cfg->zone;
    node.labels = a->labels;
    node.n_labels = a->n_labels;
    cap.cpu_millis = cfg->cpu_millis;
    cap.memory_bytes = cfg->memory_bytes;
    cap.pids = cfg->pids;
    node.capacity = &cap;
    node.cost_per_hour = cfg->cost_per_hour;
    node.address = (char *)(cfg->address != NULL ? cfg->address : "");
    node.blob_address = a->blob_address;
    char subnet[64] = "", net_text[AGENT_NET_ADDR_MAX];
    if (a->net_ready)
        snprintf(subnet, sizeof(subnet), "%s/%d", agent_net_addr_str(a->net.network, net_text),
                 a->net.prefix_len);
    node.subnet = subnet;
    node.tunnel_key = a->tunnel_key;
    node.tunnel_port = a->tunnel_key[0] != '\0' ? a->cfg->tunnel_port : 0;

    size_t n = 0;
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        n++;
    Gantry__ReplicaStatus *st = gy_xcalloc(n ? n : 1, sizeof(*st));
    Gantry__ReplicaStatus **ptrs = gy_xcalloc(n ? n : 1, sizeof(*ptrs));
    char(*addrs)[AGENT_NET_ADDR_MAX] = gy_xcalloc(n ? n : 1, AGENT_NET_ADDR_MAX);
    size_t k = 0;
    for (struct replica *r = a->replicas; r != NULL; r = r->next, k++) {
        replica_status(r, &st[k], addrs[k]);
        ptrs[k] = &st[k];
    }
    char *cluster_id = NULL;
    agent_state_meta_get(a->db, "cluster_id", &cluster_id, NULL);
    Gantry__NodeHealth health;
    char reason[AGENT_DB_REASON_WIRE_MAX + 1];
    node_health(a, &health, reason);
    Gantry__Hello hello = GANTRY__HELLO__INIT;
    hello.protocol_version = 1;
    hello.cluster_id = cluster_id != NULL ? cluster_id : "";
    hello.node = &node;
    hello.replicas = ptrs;
    hello.n_replicas = k;
    hello.health = &health;
    hello.images = agent_node_images_report(a->images, true);
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_HELLO;
    f.hello = &hello;
    int rc = gy_frame_pack(&f.base, frame, len, NULL);
    free(cluster_id);
    free(addrs);
    free(ptrs);
    free(st);
    return rc;
}

static void on_welcome(void *data, const Gantry__Welcome *w)
{
    struct agent *a = data;
    if (w->cluster_id != NULL && w->cluster_id[0] != '\0')
        agent_state_meta_set(a->db, "cluster_id", w->cluster_id, NULL);
    if (w->heartbeat_interval_ms > 0)
        uv_timer_set_repeat(&a->heartbeat, w->heartbeat_interval_ms);
    agent_node_images_welcomed(a->images);
}

/* Takes subnet as the node's replica subnet: the bridge with its gateway address, unless a
 * route of the host other than the bridge's own already covers part of it (the message
 * names both). */
static int net_adopt(struct agent *a, const char *subnet, struct gy_error *err)
{
    struct agent_net_config net;
    int rc = agent_net_config_init(&net, subnet, a->cfg->bridge, a->cfg->ns_prefix, err);
    if (rc < 0)
        return rc;
    char found[128];
    if (gy_cidr_route_overlap(net.network, net.prefix_len, net.bridge, true, found, sizeof(found)))
        return gy_error_set(err, GY_ECONFLICT,
                            "replica subnet %s overlaps the host's route %s; give the node "
                            "another subnet (--subnet, or the leader's --cluster-network)",
                            subnet, found);
    /* An operator's CNI list makes its own bridges and routes (docs/network.md). */
    if (!agent_rnet_custom(a->rnet) && (rc = agent_net_bridge_up(&net, err)) < 0)
        return rc;
    if ((rc = agent_rnet_subnet(a->rnet, subnet, err)) < 0)
        return rc;
    a->net = net;
    a->net_ready = true;
    pool_refill_in(a, POOL_FIRST_MS);
    return 0;
}

/* The subnet the leader recorded for a node that had none: taken, kept for restarts, and
 * the replicas that waited for it start. */
static void net_from_leader(struct agent *a, const char *subnet)
{
    struct gy_error err;
    if (net_adopt(a, subnet, &err) < 0) {
        gy_log_error("the replica subnet from the leader cannot be used",
                     "subnet=%.64s error=\"%s\"", subnet, err.msg);
        for (struct replica *r = a->replicas; r != NULL; r = r->next)
            if (r->waiting_net)
                replica_set(r, GANTRY__REPLICA_STATE__REPLICA_PENDING,
                            "the node's replica subnet from the leader cannot be used: %s",
                            err.msg);
        return;
    }
    if (agent_state_meta_set(a->db, "subnet", subnet, &err) < 0)
        gy_log_warn("replica subnet not kept for restarts", "error=\"%s\"", err.msg);
    gy_log_info("replica subnet from the leader", "subnet=%s bridge=%s", subnet, a->net.bridge);
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        if (r->waiting_net) {
            r->waiting_net = false;
            replica_start(r);
        }
}

/* The other nodes of this cloud, from the leader: a route to each one's replica subnet
 * through its address. Checked here, at the boundary: a peer whose address or subnet does
 * not parse, or whose subnet overlaps this node's or an earlier peer's, is left out with a
 * warning (docs/network.md). */
static struct agent_wg_config tunnel_config(const struct agent *a)
{
    return (struct agent_wg_config){.interface = a->cfg->tunnel_interface,
                                    .data_dir = a->cfg->data_dir,
                                    .listen_port = a->cfg->tunnel_port};
}

/* The WireGuard peers and routes for the nodes of other clouds: wireguard-go is started
 * with the first one (docs/network.md, "Between clouds"). Returns the tunnel's interface
 * index, or 0 when there is no tunnel. */
static int tunnels_sync(struct agent *a, const struct agent_wg_peer *peers, size_t n)
{
    struct gy_error err;
    if (n == 0 && a->wg == NULL)
        return 0;
    if (a->wg == NULL) {
        struct agent_wg_config cfg = tunnel_config(a);
        if (agent_wg_open(&a->wg, &cfg, &err) < 0) {
            gy_log_error("tunnel to other clouds not started", "interface=%s error=\"%s\"",
                         cfg.interface, err.msg);
            return 0;
        }
        gy_log_info("tunnel to other clouds started", "interface=%s port=%u key=%s", cfg.interface,
                    (unsigned)a->cfg->tunnel_port, agent_wg_public_key(a->wg));
    }
    int rc = agent_wg_peers_set(a->wg, peers, n, &err);
    if (rc == -GY_EUNAVAILABLE) {
        /* wireguard-go went away: a new one, given the peers again. */
        gy_log_warn("tunnel daemon gone; starting it again", "error=\"%s\"", err.msg);
        agent_wg_close(a->wg);
        a->wg = NULL;
        struct agent_wg_config cfg = tunnel_config(a);
        if ((rc = agent_wg_open(&a->wg, &cfg, &err)) == 0)
            rc = agent_wg_peers_set(a->wg, peers, n, &err);
    }
    if (rc < 0) {
        gy_log_error("tunnel peers not set", "error=\"%s\"", err.msg);
        return 0;
    }
    return agent_wg_ifindex(a->wg);
}

/* The other nodes, from the leader: a route to each one's replica subnet, through its
 * address for the nodes of this cloud, through the WireGuard tunnel for those of other
 * clouds that have a key. Checked here, at the boundary: a peer whose address, subnet or
 * key does not parse, or whose subnet overlaps this node's or an earlier peer's, is left
 * out with a warning (docs/network.md). */
static void on_network_peers(void *data, const Gantry__NetworkPeers *msg)
{
    struct agent *a = data;
    if (!a->net_ready && msg->subnet != NULL && msg->subnet[0] != '\0')
        net_from_leader(a, msg->subnet);
    if (agent_rnet_custom(a->rnet))
        return; /* the operator's CNI network routes between nodes */
    size_t n_max = msg->n_peers < 4096 ? msg->n_peers : 4096;
    struct agent_net_route *routes = gy_xcalloc(n_max ? n_max : 1, sizeof(*routes));
    struct agent_wg_peer *tunneled = gy_xcalloc(n_max ? n_max : 1, sizeof(*tunneled));
    struct agent_net_vxlan_peer *overlaid = gy_xcalloc(n_max ? n_max : 1, sizeof(*overlaid));
    size_t n = 0, n_tunneled = 0, n_overlaid = 0;
    for (size_t i = 0; i < n_max; i++) {
        const Gantry__NetworkPeer *p = msg->peers[i];
        const char *name = p->node != NULL ? p->node : "";
        struct agent_net_route r = {0};
        if (p->address == NULL || !agent_net_addr_parse(p->address, &r.via) || p->subnet == NULL ||
            !gy_cidr_parse(p->subnet, 8, 30, &r.dst, &r.prefix_len)) {
            gy_log_warn("network peer left out: address or subnet does not parse", "node=%.64s",
                        name);
            continue;
        }
        bool other_cloud =
            p->cloud != NULL && p->cloud[0] != '\0' && strcmp(p->cloud, a->cfg->cloud) != 0;
        if (other_cloud && a->tunnel_key[0] == '\0') {
            gy_log_warn("network peer left out: it is in another cloud and tunnels are off",
                        "node=%.64s cloud=%.64s", name, p->cloud);
            continue;
        }
        if (other_cloud && (!gy_tunnel_key_valid(p->tunnel_key) || p->tunnel_port == 0 ||
                            p->tunnel_port > 65535)) {
            gy_log_warn("network peer left out: it is in another cloud without a valid tunnel "
                        "key and port",
                        "node=%.64s cloud=%.64s", name, p->cloud);
            continue;
        }
        const char *clash = NULL;
        char local[128];
        if (a->net_ready && gy_cidr_overlap(r.dst, r.prefix_len, a->net.network, a->net.prefix_len))
            clash = "this node's replica subnet";
        else if ((r.via >> 24) == 127)
            clash = "a loopback address: the node shares this host";
        else if (gy_cidr_route_overlap(r.dst, r.prefix_len, a->cfg->tunnel_interface, false, local,
                                       sizeof(local)))
            clash = "a network of this host (the node shares this host or its network)";
        for (size_t j = 0; j < n && clash == NULL; j++)
            if (gy_cidr_overlap(r.dst, r.prefix_len, routes[j].dst, routes[j].prefix_len))
                clash = "another peer's subnet";
        if (clash != NULL) {
            gy_log_warn("network peer left out: its subnet overlaps",
                        "node=%.64s subnet=%.64s with=\"%s\"", name, p->subnet, clash);
            continue;
        }
        if (!other_cloud && a->net_ready &&
            !gy_cidr_onlink(r.via, a->cfg->bridge, AGENT_VXLAN_INTERFACE)) {
            /* Of this cloud but not on a network of this host: no direct route can reach
             * it, the VXLAN overlay does. */
            overlaid[n_overlaid++] = (struct agent_net_vxlan_peer){
                .network = r.dst, .prefix_len = r.prefix_len, .address = r.via};
            r.via = r.dst; /* the peer's end of the overlay */
            r.dev = -1;    /* set below, once the overlay is there */
        } else if (other_cloud) {
            struct agent_wg_peer *t = &tunneled[n_tunneled++];
            snprintf(t->public_key, sizeof(t->public_key), "%s", p->tunnel_key);
            snprintf(t->endpoint, sizeof(t->endpoint), "%s:%u", p->address, p->tunnel_port);
            t->allowed = r.dst;
            t->allowed_len = r.prefix_len;
            r.via = 0; /* dev: set below, once the tunnel is there */
        }
        routes[n++] = r;
    }
    int dev = tunnels_sync(a, tunneled, n_tunneled);
    int vx = 0;
    struct gy_error verr;
    if (n_overlaid > 0 &&
        agent_net_vxlan_sync(&a->net, AGENT_VXLAN_INTERFACE, overlaid, n_overlaid, &vx, &verr) < 0)
        gy_log_error("overlay to the nodes of this cloud not made", "error=\"%s\"", verr.msg);
    /* Without the tunnel, the other clouds' subnets get no route; without the overlay,
     * the nodes it was for get none. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if ((routes[i].via == 0 && dev == 0) || (routes[i].dev == -1 && vx <= 0))
            continue;
        if (routes[i].via == 0)
            routes[i].dev = dev;
        else if (routes[i].dev == -1)
            routes[i].dev = vx;
        routes[kept++] = routes[i];
    }
    size_t changed = 0;
    struct gy_error err;
    if (agent_net_routes_sync(routes, kept, &changed, &err) < 0)
        gy_log_error("routes to other nodes not made", "error=\"%s\"", err.msg);
    else if (changed > 0)
        gy_log_info("routes to other nodes", "peers=%zu tunneled=%zu overlaid=%zu changed=%zu",
                    kept, n_tunneled, n_overlaid, changed);
    free(overlaid);
    free(tunneled);
    free(routes);
}

/* gantry rotate-key: a new key pair, on the device when it runs, and the public key to the
 * leader, which gives it to the other nodes. */
static void on_rotate_tunnel_key(void *data)
{
    struct agent *a = data;
    struct gy_error err;
    if (a->tunnel_key[0] == '\0') {
        gy_log_warn("tunnel key not rotated: tunnels are off", "node=%s", a->cfg->name);
        return;
    }
    int rc = a->wg != NULL ? agent_wg_rotate(a->wg, &err)
                           : agent_wg_key_rotate(a->cfg->data_dir, a->tunnel_key, &err);
    if (rc < 0) {
        gy_log_error("tunnel key not rotated", "error=\"%s\"", err.msg);
        return;
    }
    if (a->wg != NULL)
        snprintf(a->tunnel_key, sizeof(a->tunnel_key), "%s", agent_wg_public_key(a->wg));
    gy_log_info("tunnel key rotated", "key=%s", a->tunnel_key);
    Gantry__TunnelKey key = GANTRY__TUNNEL_KEY__INIT;
    key.public_key = a->tunnel_key;
    key.port = a->cfg->tunnel_port;
    Gantry__AgentFrame f = GANTRY__AGENT_FRAME__INIT;
    f.frame_case = GANTRY__AGENT_FRAME__FRAME_TUNNEL_KEY;
    f.tunnel_key = &key;
    agent_session_send(a->session, &f);
}

static void on_image_request(void *data, const Gantry__ImageRequest *req)
{
    struct agent *a = data;
    agent_node_images_request(a->images, req);
}

/* node_images.h's in_use: the first replica that runs from target. A stopping replica
 * still has its container; a bare one has no spec yet and is not counted. */
static const char *image_in_use(void *arg, const struct agent_image_target *target)
{
    struct agent *a = arg;
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        if (!r->bare && agent_image_target_used_by(target, r->spec.image, r->spec.image_digest))
            return r->id;
    return NULL;
}

static void image_send(void *arg, const Gantry__AgentFrame *frame)
{
    struct agent *a = arg;
    if (a->session != NULL && agent_session_ready(a->session))
        agent_session_send(a->session, frame);
}

/* node_images.h's peers: the leader's last list of this cloud's layer servers. */
static size_t image_peers_copy(void *arg, struct agent_image_peer **peers)
{
    struct agent *a = arg;
    *peers = NULL;
    if (a->n_image_peers == 0)
        return 0;
    *peers = gy_xcalloc(a->n_image_peers, sizeof(**peers));
    memcpy(*peers, a->image_peers, a->n_image_peers * sizeof(**peers));
    return a->n_image_peers;
}

static void on_disconnect(void *data)
{
    struct agent *a = data;
    /* Follows belong to the old session; the server asks again after a reconnect. */
    while (a->follows != NULL) {
        struct log_follow *f = a->follows;
        a->follows = f->next;
        free(f->replica_id);
        free(f);
    }
}

/* ---------------------------------------------------------------------------------------
 * Start-up, adoption, shutdown */

static int labels_parse(struct agent *a, const char *text, struct gy_error *err)
{
    if (text == NULL || text[0] == '\0')
        return 0;
    char *copy = gy_xstrdup(text);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq == tok) {
            gy_error_set(err, GY_EINVAL, "--labels: \"%s\" is not KEY=VALUE", tok);
            free(copy);
            return -GY_EINVAL;
        }
        *eq = '\0';
        Gantry__Label *l = gy_xmalloc(sizeof(*l));
        gantry__label__init(l);
        l->key = gy_xstrdup(tok);
        l->value = gy_xstrdup(eq + 1);
        a->labels = gy_xrealloc(a->labels, (a->n_labels + 1) * sizeof(*a->labels));
        a->labels[a->n_labels++] = l;
    }
    free(copy);
    return 0;
}

/* Takes over the containers under the runtime root that agent.db has no row for: a record
 * lost with a damaged database (replaced at open), or never written. They are adopted bare,
 * with what the runtime says of them: recorded (when the database takes writes) and
 * reported in the hello; the first assignment that lists one gives it its spec
 * (replica_unbare), and the full assignment that does not stops it, so none keeps running
 * unseen. Ids come from outside agent.db and are checked against the naming scheme before
 * they name paths or namespaces; other containers are left alone, with a warning. */
static void adopt_unrecorded(struct agent *a)
{
    char **ids;
    size_t n;
    struct gy_error err;
    if (rt_container_list(runtime_root(a), &ids, &n, &err) < 0) {
        gy_log_error("cannot list the runtime's containers; unrecorded ones are not adopted",
                     "root=%s error=\"%s\"", runtime_root(a), err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char workload[GY_SPEC_NAME_MAX + 1];
        if (replica_find(a, ids[i]) != NULL)
            continue;
        if (!agent_replica_id_parse(ids[i], workload)) {
            gy_log_warn("container under the runtime root is not a replica; left alone",
                        "root=%s id=%.80s", runtime_root(a), ids[i]);
            continue;
        }
        struct rt_state st;
        if (rt_container_state(runtime_root(a), ids[i], &st, &err) < 0) {
            gy_log_warn("cannot read an unrecorded container; not adopted",
                        "replica=%s error=\"%s\"", ids[i], err.msg);
            continue;
        }
        struct replica *r = gy_xcalloc(1, sizeof(*r));
        r->agent = a;
        r->id = gy_xstrdup(ids[i]);
        r->workload = gy_xstrdup(workload);
        r->bare = true;
        r->has_container = true;
        r->started_ms = st.created_ns / 1000000;
        if (agent_rnet_address(a->rnet, r->id, &r->address, &err) < 0)
            gy_log_warn("unrecorded container without a usable address", "replica=%s error=\"%s\"",
                        r->id, err.msg);
        if (st.status == RT_STATUS_RUNNING) {
            r->state = GANTRY__REPLICA_STATE__REPLICA_RUNNING;
            r->started_at = uv_now(&a->loop);
        } else {
            r->exit_code = st.exit_code;
            r->exit_signal = st.exit_signal;
            r->oom_killed = st.oom_killed;
            r->state = st.exit_code == 0 && st.exit_signal == 0
                           ? GANTRY__REPLICA_STATE__REPLICA_EXITED
                           : GANTRY__REPLICA_STATE__REPLICA_FAILED;
        }
        r->changed_ms = wall_ms();
        snprintf(r->reason, sizeof(r->reason), "adopted: found without a record in agent.db");
        r->next = a->replicas;
        a->replicas = r;
        replica_persist(r);
        gy_log_warn("adopted a container agent.db has no record of; the leader's assignment "
                    "keeps or stops it",
                    "replica=%s status=%s", r->id, rt_status_name(st.status));
    }
    rt_ids_free(ids, n);
}

/* Takes over the replicas recorded before a restart: running containers are adopted as
 * they are (never started twice), exited ones go through their restart policy, missing
 * ones are started again. */
static int adopt(struct agent *a, struct gy_error *err)
{
    struct agent_replica_row *rows;
    size_t n;
    int rc = agent_state_replica_list(a->db, &rows, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct agent_replica_row *row = &rows[i];
        if (row->spec_len == 0) {
            /* A bare adoption's row: adopt_unrecorded finds its container again, if any. */
            agent_state_replica_delete(a->db, row->id, NULL);
            continue;
        }
        struct replica *r =
            replica_new(a, row->id, row->workload, row->generation, row->spec, row->spec_len);
        if (r == NULL) {
            agent_state_replica_delete(a->db, row->id, NULL);
            continue;
        }
        r->recorded = true;
        r->state = row->state;
        r->restarts = row->restarts;
        r->exit_code = row->exit_code;
        r->exit_signal = row->exit_signal;
        r->oom_killed = row->oom_killed;
        r->started_ms = row->started_ms;
        r->changed_ms = row->changed_ms;
        snprintf(r->reason, sizeof(r->reason), "%s", row->reason);
        agent_net_addr_parse(row->address, &r->address);
        bool done = row->state == GANTRY__REPLICA_STATE__REPLICA_STOPPING ||
                    row->state == GANTRY__REPLICA_STATE__REPLICA_STOPPED;
        bool left_down = (row->state == GANTRY__REPLICA_STATE__REPLICA_EXITED ||
                          row->state == GANTRY__REPLICA_STATE__REPLICA_FAILED) &&
                         strstr(row->reason, "restarting") == NULL;
        r->assigned = !done && !left_down;
        struct rt_state st;
        struct gy_error serr;
        if (rt_container_state(runtime_root(a), r->id, &st, &serr) == 0) {
            r->has_container = true;
            if (st.status == RT_STATUS_RUNNING) {
                char addr[AGENT_NET_ADDR_MAX];
                agent_net_addr_str(r->address, addr);
                static const struct agent_health_callbacks hcb = {.on_change = on_health};
                r->health =
                    agent_health_start(&a->loop, &r->spec.health, addr, exec_probe, r, &hcb, r);
                r->ready = r->health == NULL;
                r->started_at = uv_now(&a->loop);
                r->state = GANTRY__REPLICA_STATE__REPLICA_RUNNING;
                gy_log_info("adopted running replica", "replica=%s pid=%d", r->id, (int)st.pid);
                net_check(a, r->id);
            }
        }
        if (done) {
            r->stopping = true;
            r->kill_at = uv_now(&a->loop);
        }
    }
    agent_replica_rows_free(rows, n);
    adopt_unrecorded(a);
    return 0;
}

static void close_walk(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct agent *a = sig->data;
    if (a->stopping)
        return;
    a->stopping = true;
    gy_log_info("stopping; containers keep running", "signal=%d", signum);
    agent_node_images_stop(a->images);
    for (struct replica *r = a->replicas; r != NULL; r = r->next) {
        agent_health_stop(r->health);
        r->health = NULL;
    }
    if (a->session != NULL)
        agent_session_close(a->session, NULL, NULL);
    a->session = NULL;
    uv_timer_stop(&a->tick);
    uv_timer_stop(&a->heartbeat);
    uv_close((uv_handle_t *)&a->tick, NULL);
    uv_close((uv_handle_t *)&a->heartbeat, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
}

/* Starts the layer server for the nodes of this cloud (docs/images.md, "Peers") and sets
 * the address Hello gives for it: the one bound, or for a wildcard the --address host. A
 * --blob-listen that cannot be used is an error; the default (--address, port 7703) that
 * cannot be bound leaves the server off with a warning. */
static int blob_server_start(struct agent *a, struct gy_error *err)
{
    const struct agent_config *cfg = a->cfg;
    const char *address = cfg->address != NULL ? cfg->address : "";
    const char *listen = cfg->blob_listen;
    char fallback[AGENT_PEER_ADDRESS_MAX + 1];
    if (listen != NULL && strcmp(listen, "off") == 0)
        return 0;
    if (listen == NULL) {
        if (address[0] == '\0') {
            gy_log_info("layer server off: no --address to listen on", "hint=\"%s\"",
                        "give --address or --blob-listen HOST:PORT");
            return 0;
        }
        snprintf(fallback, sizeof(fallback), strchr(address, ':') != NULL ? "[%s]:%d" : "%s:%d",
                 address, AGENT_PEER_SERVER_PORT);
    }
    struct agent_peer_server_options opts = {.listen = listen != NULL ? listen : fallback};
    int rc = agent_peer_server_start(&a->puller, &opts, &a->blob_server, err);
    if (rc < 0 && listen != NULL)
        return gy_error_wrap(err, "--blob-listen");
    if (rc < 0) {
        gy_log_warn("layer server not started; peers fetch nothing from this node", "error=\"%s\"",
                    err->msg);
        return 0;
    }
    const char *bound = agent_peer_server_address(a->blob_server);
    const char *port = strrchr(bound, ':');
    if (strncmp(bound, "0.0.0.0:", 8) == 0 || strncmp(bound, "[::]:", 5) == 0)
        snprintf(a->blob_address, sizeof(a->blob_address),
                 address[0] == '\0'             ? ""
                 : strchr(address, ':') != NULL ? "[%s]%s"
                                                : "%s%s",
                 address, port);
    else
        snprintf(a->blob_address, sizeof(a->blob_address), "%s", bound);
    if (!agent_peer_address_valid(a->blob_address))
        a->blob_address[0] = '\0';
    gy_log_info("layer server listening", "address=%s advertised=%s", bound,
                a->blob_address[0] != '\0' ? a->blob_address : "none");
    return 0;
}

/* At start, after adoption: the networks of replicas that are gone, and pooled ones of
 * another list, are given back (replica_net.h). */
static void net_collect(struct agent *a)
{
    size_t n = 0;
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        n++;
    const char **live = gy_xcalloc(n ? n : 1, sizeof(char *));
    n = 0;
    for (struct replica *r = a->replicas; r != NULL; r = r->next)
        live[n++] = r->id;
    size_t removed = 0;
    struct gy_error err;
    if (agent_rnet_collect(a->rnet, live, n, &removed, &err) < 0)
        gy_log_warn("replica networks not collected", "error=\"%s\"", err.msg);
    if (removed > 0)
        gy_log_info("replica networks collected", "removed=%zu", removed);
    free(live);
    pool_refill_in(a, POOL_FIRST_MS);
}

int agent_daemon_run(const struct agent_config *cfg, struct gy_error *err)
{
    struct agent a;
    memset(&a, 0, sizeof(a));
    a.cfg = cfg;
    int rc;
    if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "create data dir %s", cfg->data_dir);
    if ((rc = labels_parse(&a, cfg->labels, err)) < 0)
        return rc;
    if ((rc = agent_net_config_init(&a.net, NULL, cfg->bridge, cfg->ns_prefix, err)) < 0)
        return rc;
    if ((rc = agent_state_open(cfg->data_dir, &a.db, err)) < 0)
        return rc;
    struct agent_rnet_config ncfg = {.data_dir = cfg->data_dir,
                                     .ns_prefix = cfg->ns_prefix,
                                     .bridge = cfg->bridge,
                                     .conf = cfg->cni_conf,
                                     .bin_dirs = cfg->cni_bin_dirs,
                                     .pool = cfg->cni_pool};
    if ((rc = agent_rnet_open(&a.rnet, &ncfg, err)) < 0) {
        agent_state_close(a.db);
        return gy_error_wrap(err, "--cni-conf");
    }
    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.pool_timer);
    a.pool_timer.data = &a;
    /* The node's replica subnet: --subnet, else the one the leader gave it before (kept in
     * the agent's database), else the leader's answer to the hello (net_from_leader). */
    char *stored = NULL;
    const char *subnet = cfg->subnet;
    if (subnet == NULL && agent_state_meta_get(a.db, "subnet", &stored, NULL) == 0 &&
        stored != NULL && *stored != '\0')
        subnet = stored;
    rc = subnet != NULL ? net_adopt(&a, subnet, err) : 0;
    free(stored);
    if (rc < 0) {
        rc = gy_error_wrap(err, "--subnet");
        goto fail_early;
    }
    /* The tunnel key is made (or read) at once, so that the hello carries it; wireguard-go
     * starts only when a node of another cloud appears. */
    if (!cfg->tunnels_off && agent_wg_key_public(cfg->data_dir, a.tunnel_key, err) < 0) {
        rc = gy_error_wrap(err, "tunnel key");
        goto fail_early;
    }
    if ((rc = agent_puller_open(&a.puller, cfg->data_dir, cfg->registries, err)) < 0) {
        rc = gy_error_wrap(err, "images");
        goto fail_early;
    }
    a.puller_open = true;
    if ((cfg->max_downloads > 0 &&
         (rc = agent_puller_set_max_downloads(&a.puller, cfg->max_downloads, err)) < 0) ||
        (rc = blob_server_start(&a, err)) < 0) {
        agent_puller_close(&a.puller);
        goto fail_early;
    }
    a.base_config = rt_config_default_json();
    if ((rc = adopt(&a, err)) < 0)
        goto out;
    net_collect(&a);
    struct agent_node_images_config icfg = {.loop = &a.loop,
                                            .puller = &a.puller,
                                            .data_dir = cfg->data_dir,
                                            .node = cfg->name,
                                            .db = a.db,
                                            .in_use = image_in_use,
                                            .send = image_send,
                                            .peers = image_peers_copy,
                                            .arg = &a};
    a.images = agent_node_images_new(&icfg);

    static const struct agent_session_callbacks scb = {.make_hello = make_hello,
                                                       .on_welcome = on_welcome,
                                                       .on_assignment = on_assignment,
                                                       .on_log_request = on_log_request,
                                                       .on_metric_probe = on_metric_probe,
                                                       .on_image_request = on_image_request,
                                                       .on_network_peers = on_network_peers,
                                                       .on_rotate_tunnel_key = on_rotate_tunnel_key,
                                                       .on_disconnect = on_disconnect};
    struct agent_session_options sopts = {0};
    if ((rc = agent_session_start(&a.loop, cfg->servers, &sopts, &scb, &a, &a.session, err)) < 0)
        goto out;

    uv_timer_init(&a.loop, &a.tick);
    uv_timer_init(&a.loop, &a.heartbeat);
    a.tick.data = &a;
    a.heartbeat.data = &a;
    uv_timer_start(&a.tick, on_tick, 0, TICK_MS);
    uint64_t hb = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 1000;
    uv_timer_start(&a.heartbeat, on_heartbeat, hb, hb);
    uv_signal_init(&a.loop, &a.sigterm);
    uv_signal_init(&a.loop, &a.sigint);
    a.sigterm.data = &a;
    a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    gy_log_info("agent started", "node=%s servers=%s cloud=%s data_dir=%s", cfg->name, cfg->servers,
                cfg->cloud, cfg->data_dir);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    uv_walk(&a.loop, close_walk, NULL);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    while (a.replicas != NULL) {
        struct replica *r = a.replicas;
        a.replicas = r->next;
        r->health = NULL; /* already stopped with the loop */
        replica_free(r);
    }
    on_disconnect(&a);
    for (size_t i = 0; i < a.n_labels; i++) {
        free(a.labels[i]->key);
        free(a.labels[i]->value);
        free(a.labels[i]);
    }
    free(a.labels);
    free(a.base_config);
    agent_node_images_free(a.images);
    agent_peer_server_stop(a.blob_server);
    free(a.image_peers);
    agent_puller_close(&a.puller);
    agent_rnet_close(a.rnet);
    agent_wg_close(a.wg);
    agent_state_close(a.db);
    return rc;
fail_early:
    uv_close((uv_handle_t *)&a.pool_timer, NULL);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    agent_rnet_close(a.rnet);
    agent_state_close(a.db);
    return rc;
}
