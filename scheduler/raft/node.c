/* The Raft node: setup on the loop, group commit, barriers, membership, cluster identity,
 * leader duties and shutdown. Everything runs on the loop thread. */
#include "scheduler/raft/node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/io.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/raft/segment_check.h"
#include "scheduler/state/command.h"

struct sch_proposal {
    struct sch_packed_command packed;
    uint64_t queued_ns; /* uv_hrtime() when it was queued */
    sch_propose_cb cb;
    void *data;
    struct sch_proposal *next;
};

struct sch_waiter {
    sch_done_cb cb;
    void *data;
    struct sch_waiter *next;
};

/* One Raft entry carrying the proposals that were grouped into it. */
struct group {
    struct raft_apply req;
    uint64_t proposed_ns; /* uv_hrtime() when it went to raft_apply */
    struct sch_node *node;
    struct sch_proposal **items;
    size_t n;
};

struct barrier {
    struct raft_barrier req;
    struct sch_node *node;
    struct sch_waiter *waiters;
};

struct change {
    struct raft_change req;
    struct sch_node *node;
    uint64_t id;
    sch_done_cb cb;
    void *data;
};

/* A leadership transfer asked for through the API (sch_node_transfer). */
struct sch_transfer {
    struct raft_transfer req;
    struct sch_node *node;
    uint64_t target;
    bool any; /* the caller named no server: whichever voter takes over will do */
    sch_transfer_cb cb;
    void *data;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *sch_node_role_name(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    default:
        return "spare";
    }
}

/* ---------------------------------------------------------------------------------------
 * Data directory */

static int read_small_file(const char *path, char *buf, size_t len, struct gy_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            buf[0] = '\0';
            return 0;
        }
        return gy_error_sys(err, errno, "open %s", path);
    }
    ssize_t n = read(fd, buf, len - 1);
    if (n < 0)
        return gy_error_sys(err, errno, "read %s", path);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 1;
}

/* Writes a small file durably: temporary file, fsync, rename, fsync of the directory. */
static int write_small_file(const char *dir, const char *name, const char *text,
                            struct gy_error *err)
{
    char path[4200], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return gy_error_sys(err, errno, "create %s", tmp);
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
        return gy_error_sys(err, errno, "write %s", tmp);
    if (fsync(fd) < 0)
        return gy_error_sys(err, errno, "fsync %s", tmp);
    if (rename(tmp, path) < 0)
        return gy_error_sys(err, errno, "rename %s to %s", tmp, path);
    cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    return 0;
}

static int ensure_dir(const char *path, struct gy_error *err)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "create directory %s", path);
    struct stat st;
    if (stat(path, &st) < 0)
        return gy_error_sys(err, errno, "stat %s", path);
    if (!S_ISDIR(st.st_mode))
        return gy_error_set(err, GY_EINVAL, "%s is not a directory", path);
    return 0;
}

static bool raft_dir_has_state(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/metadata1", dir);
    if (access(path, F_OK) == 0)
        return true;
    snprintf(path, sizeof(path), "%s/metadata2", dir);
    return access(path, F_OK) == 0;
}

int sch_node_set_cluster_id(struct sch_node *node, const char *cluster_id, struct gy_error *err)
{
    if (*node->cluster_id != '\0') {
        if (strcmp(node->cluster_id, cluster_id) != 0)
            return gy_error_set(err, GY_ECONFLICT,
                                "data directory %s belongs to cluster %s, not to cluster %s",
                                node->cfg.data_dir, node->cluster_id, cluster_id);
        return 0;
    }
    int rc = write_small_file(node->cfg.data_dir, "cluster-id", cluster_id, err);
    if (rc < 0)
        return gy_error_wrap(err, "record cluster id");
    snprintf(node->cluster_id, sizeof(node->cluster_id), "%s", cluster_id);
    gy_log_info("cluster id recorded", "cluster=%s", cluster_id);
    return 0;
}

/* Splits "HOST:PORT" and checks that the port is free, because libraft reports an address
 * in use as a bare I/O error. */
static int check_listen_address(const char *what, const char *addr, struct gy_error *err)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || colon[1] == '\0')
        return gy_error_set(err, GY_EINVAL, "%s \"%s\" is not HOST:PORT", what, addr);
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return gy_error_set(err, GY_EINVAL, "%s \"%s\" has an invalid port", what, addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return gy_error_set(err, GY_EINVAL, "%s \"%s\" needs an IPv4 address", what, addr);
    cleanup_close int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return gy_error_sys(err, errno, "socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EADDRINUSE)
            return gy_error_set(err, GY_EEXISTS, "%s %s is already in use", what, addr);
        return gy_error_sys(err, errno, "bind %s %s", what, addr);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * State machine hooks */

static bool want_result(void *data)
{
    struct sch_node *node = data;
    return raft_state(&node->raft) == RAFT_LEADER;
}

static void fatal_stop_cb(uv_timer_t *timer)
{
    struct sch_node *node = timer->data;
    if (node->on_fatal != NULL)
        node->on_fatal(node->on_applied_data);
}

/* ---------------------------------------------------------------------------------------
 * A disk that fails a write */

static void do_close(struct sch_node *node);

static void storage_fail_cb(uv_timer_t *timer)
{
    struct sch_node *node = timer->data;
    if (!node->closing)
        do_close(node);
}

/* The disk failed a write of the log or the state: the server leaves the cluster (Raft
 * closes, from a timer since this may run inside libraft) and keeps its API up. */
static void storage_fail(struct sch_node *node, const char *why)
{
    if (node->storage_fault.down || node->closing)
        return;
    node->storage_fault.down = true;
    node->storage_fault.failures_total++;
    node->storage_fault.since_ms = uv_now(node->loop);
    node->storage_fault.probed_ms = node->storage_fault.since_ms;
    snprintf(node->storage_fault.why, sizeof(node->storage_fault.why), "%s", why);
    raft_id leader = 0;
    const char *address = NULL;
    if (node->raft_started)
        raft_leader(&node->raft, &leader, &address);
    node->storage_fault.leader = leader == node->cfg.id ? 0 : leader;
    gy_log_error("storage failed",
                 "error=\"%s\" data_dir=%s action=\"this server leaves the cluster until its "
                 "disk takes writes again, then starts afresh; reads with ?stale go on\"",
                 why, node->cfg.data_dir);
    uv_timer_start(&node->stop_timer, storage_fail_cb, 0, 0);
}

/* Whether DIR's file system has the reserve free (at least 4 MiB when there is no
 * reserve) and takes a synced write; *free_bytes gets its free space. */
static bool dir_takes_writes(const struct sch_node *node, const char *dir, uint64_t *free_bytes)
{
    struct statvfs st;
    if (statvfs(dir, &st) != 0)
        return false;
    *free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
    uint64_t want = node->cfg.min_free_bytes > 0 ? node->cfg.min_free_bytes : (uint64_t)4 << 20;
    if (*free_bytes < want)
        return false;
    char path[4200];
    snprintf(path, sizeof(path), "%s/.probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    static const char block[65536];
    bool ok = write(fd, block, sizeof(block)) == (ssize_t)sizeof(block) && fsync(fd) == 0;
    close(fd);
    unlink(path);
    return ok;
}

/* How long a server whose disk failed waits between probes: two seconds, doubled for each
 * time it started afresh within the last ten minutes and failed again (an I/O error that
 * a probe does not meet), up to a minute. The count crosses the fresh start in the
 * environment (SCH_RESTARTS_ENV, "COUNT:MONOTONIC_MS"). */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t probe_interval(void)
{
    const char *env = getenv(SCH_RESTARTS_ENV);
    unsigned count = 0;
    unsigned long long at = 0;
    if (env == NULL || sscanf(env, "%u:%llu", &count, &at) != 2 || mono_ms() - at > 600000)
        return 2000;
    return count >= 5 ? 60000 : 2000ull << count;
}

static void note_restart(void)
{
    const char *env = getenv(SCH_RESTARTS_ENV);
    unsigned count = 0;
    unsigned long long at = 0;
    if (env == NULL || sscanf(env, "%u:%llu", &count, &at) != 2 || mono_ms() - at > 600000)
        count = 0;
    char value[64];
    snprintf(value, sizeof(value), "%u:%llu", count + 1, (unsigned long long)mono_ms());
    setenv(SCH_RESTARTS_ENV, value, 1);
}

/* While the disk is down: once the data directory and the Raft log's directory (a mount of
 * their own, maybe) take writes again, the server starts afresh. */
static void storage_probe(struct sch_node *node)
{
    uint64_t now = uv_now(node->loop);
    if (now - node->storage_fault.probed_ms < probe_interval() || node->on_restart == NULL)
        return;
    node->storage_fault.probed_ms = now;
    uint64_t free_bytes = 0, raft_free = 0;
    if (!dir_takes_writes(node, node->cfg.data_dir, &free_bytes) ||
        !dir_takes_writes(node, node->raft_dir, &raft_free))
        return;
    gy_log_info("storage is back",
                "data_dir=%s free_bytes=%" PRIu64 " raft_free_bytes=%" PRIu64 " down_ms=%" PRIu64
                " action=\"starting afresh\"",
                node->cfg.data_dir, free_bytes, raft_free, now - node->storage_fault.since_ms);
    note_restart();
    node->on_restart(node->on_applied_data);
}

bool sch_node_storage_down(const struct sch_node *node, char *msg, size_t len)
{
    if (!node->storage_fault.down)
        return false;
    if (msg != NULL)
        snprintf(msg, len,
                 "server %" PRIu64 " left the cluster: its disk failed a write (%s) in %s; it "
                 "serves ?stale reads and starts afresh once the disk takes writes again",
                 node->cfg.id, node->storage_fault.why, node->cfg.data_dir);
    return true;
}

/* The log bytes after which this server takes a snapshot: --snapshot-bytes, less a tenth
 * per server id after the first (of five). Every server applies the same log, so with one
 * budget they would all snapshot at the same entry, and while a majority writes a snapshot
 * every commit waits for it; staggered, at most one usually does. */
static uint64_t snapshot_budget(const struct sch_node *node)
{
    uint64_t step = node->cfg.snapshot_bytes / 10;
    return node->cfg.snapshot_bytes - step * ((node->cfg.id - 1) % 5);
}

static void fsm_applied(void *data, struct sch_fsm *fsm)
{
    struct sch_node *node = data;
    if (fsm->storage_failed)
        /* Applying on regardless would make this server's state differ from the others';
         * started afresh it rebuilds the state from the snapshot and the log. */
        storage_fail(node, "the state database failed a write");
    if (!node->cluster_checked || fsm->restores != node->seen_restores) {
        char id[80];
        sch_fsm_cluster_id(fsm, id, sizeof(id));
        node->seen_restores = fsm->restores;
        node->self_checked = 0;
        if (*id != '\0') {
            node->cluster_checked = true;
            struct gy_error err;
            if (sch_node_set_cluster_id(node, id, &err) < 0 && node->exit_code == 0) {
                /* State of another cluster reached this server: it must not serve it. */
                gy_log_error("refusing to run", "error=\"%s\"", err.msg);
                node->exit_code = 1;
                uv_timer_start(&node->stop_timer, fatal_stop_cb, 0, 0);
            }
        }
    }
    /* Past the byte budget, the next apply takes a snapshot: libraft takes one when the
     * entries applied since the last reach the threshold. */
    if (node->cfg.snapshot_bytes > 0 && !node->snapshot_due &&
        fsm->log_bytes >= snapshot_budget(node) && node->raft_started) {
        node->snapshot_due = true;
        raft_set_snapshot_threshold(&node->raft, 1);
    }
    sch_verify_applied(&node->verify);
    if (node->on_applied != NULL)
        node->on_applied(node->on_applied_data);
}

/* The newest entries up to the last applied one whose sizes add up to at most budget
 * bytes, but no more than max entries: how many to keep after a snapshot. */
static unsigned trailing_within(struct sch_node *node, uint64_t budget, unsigned max)
{
    const struct raft_log *log = &node->raft.log;
    size_t n =
        log->back >= log->front ? log->back - log->front : log->size - log->front + log->back;
    raft_index applied = node->raft.last_applied;
    if (n == 0 || applied <= log->offset)
        return max < 16 ? max : 16;
    size_t last = applied - log->offset - 1; /* position of the last applied entry */
    if (last >= n)
        last = n - 1;
    uint64_t sum = 0;
    unsigned kept = 0;
    for (size_t i = last + 1; i-- > 0 && kept < max;) {
        sum += log->entries[(log->front + i) % log->size].buf.len;
        if (sum > budget)
            break;
        kept++;
    }
    /* A follower a moment behind still catches up from the log. */
    return kept < 16 && max >= 16 ? 16 : kept;
}

/* <data-dir>/peers: "ID API-ADDRESS" per server, as the state had them at the last
 * snapshot. A server whose state database was damaged finds its leader's API with it
 * (sch_node_leader), to fetch the image that replaces its state. */
static void peers_path(const struct sch_node *node, char *buf, size_t len)
{
    snprintf(buf, len, "%s/peers", node->cfg.data_dir);
}

static void peers_save(struct sch_node *node, struct sch_fsm *fsm)
{
    char path[4200], tmp[4300], api[256];
    peers_path(node, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return;
    for (unsigned i = 0; i < node->raft.configuration.n; i++) {
        raft_id id = node->raft.configuration.servers[i].id;
        sch_fsm_server_api_address(fsm, id, api, sizeof(api));
        if (*api != '\0')
            fprintf(f, "%llu %s\n", (unsigned long long)id, api);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

/* The API address of server id in <data-dir>/peers ("" when it has none). */
static void peers_lookup(const struct sch_node *node, uint64_t id, char *buf, size_t len)
{
    char path[4200], line[320], api[256];
    buf[0] = '\0';
    peers_path(node, path, sizeof(path));
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    unsigned long long got;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "%llu %255s", &got, api) == 2 && got == id) {
            snprintf(buf, len, "%s", api);
            break;
        }
    fclose(f);
}

static void fsm_snapshot(void *data, struct sch_fsm *fsm)
{
    struct sch_node *node = data;
    if (!node->raft_started)
        return;
    peers_save(node, fsm);
    node->snapshot_due = false;
    raft_set_snapshot_threshold(&node->raft, node->cfg.snapshot_threshold);
    if (node->cfg.snapshot_bytes > 0)
        raft_set_snapshot_trailing(&node->raft, trailing_within(node, node->cfg.snapshot_bytes / 8,
                                                                node->cfg.snapshot_trailing));
}

/* ---------------------------------------------------------------------------------------
 * Proposals and barriers */

static void proposal_free(struct sch_proposal *p)
{
    free(p->packed.bytes);
    free(p);
}

static void group_done(struct raft_apply *req, int status, void *opaque)
{
    struct group *g = req->data;
    struct sch_node *node = g->node;
    struct sch_result *result = status == 0 ? sch_fsm_result_claim(&node->fsm, opaque) : NULL;
    char message[300];
    if (status != 0)
        snprintf(message, sizeof(message),
                 "leadership was lost before the write was committed (%s); it may or may not "
                 "have been applied",
                 raft_strerror(status));
    else
        snprintf(message, sizeof(message), "the write was applied but its result was lost");
    for (size_t i = 0; i < g->n; i++) {
        struct sch_proposal *p = g->items[i];
        if (result == NULL) {
            p->cb(p->data, status != 0 ? -GY_EUNAVAILABLE : -GY_EINTERNAL, NULL, message);
        } else if (g->n > 1 && result->n_batch == g->n) {
            p->cb(p->data, 0, &result->batch[i], NULL);
        } else {
            p->cb(p->data, 0, result, NULL);
        }
        proposal_free(p);
    }
    sch_result_free(result);
    node->inflight_entries--;
    node->stats.entry_ns += uv_hrtime() - g->proposed_ns;
    node->stats.entries_done++;
    free(g->items);
    free(g);
}

static void barrier_done(struct raft_barrier *req, int status)
{
    struct barrier *b = req->data;
    b->node->inflight_barriers--;
    char message[200];
    snprintf(message, sizeof(message), "leadership was lost during the read barrier (%s)",
             raft_strerror(status));
    struct sch_waiter *w = b->waiters;
    while (w != NULL) {
        struct sch_waiter *next = w->next;
        w->cb(w->data, status == 0 ? 0 : -GY_EUNAVAILABLE, status == 0 ? NULL : message);
        free(w);
        w = next;
    }
    free(b);
}

/* Moves the proposals that were waiting to share an entry to the end of the queue. */
static void lazy_join(struct sch_node *node)
{
    if (node->lazy_head == NULL)
        return;
    size_t n = 0;
    for (struct sch_proposal *p = node->lazy_head; p != NULL; p = p->next)
        n++;
    if (node->queue_tail != NULL)
        node->queue_tail->next = node->lazy_head;
    else
        node->queue_head = node->lazy_head;
    node->queue_tail = node->lazy_tail;
    node->queued += n;
    node->lazy_head = node->lazy_tail = NULL;
    uv_timer_stop(&node->lazy_timer);
}

static void lazy_timer_cb(uv_timer_t *timer)
{
    /* Nothing came to share an entry with: the check phase of this turn sends them. */
    lazy_join(timer->data);
}

static void fail_queued(struct sch_node *node, const char *message)
{
    lazy_join(node);
    struct sch_proposal *p = node->queue_head;
    node->queue_head = node->queue_tail = NULL;
    node->queued = 0;
    while (p != NULL) {
        struct sch_proposal *next = p->next;
        p->cb(p->data, -GY_EUNAVAILABLE, NULL, message);
        proposal_free(p);
        p = next;
    }
    struct sch_waiter *w = node->readers;
    node->readers = NULL;
    while (w != NULL) {
        struct sch_waiter *next = w->next;
        w->cb(w->data, -GY_EUNAVAILABLE, message);
        free(w);
        w = next;
    }
}

static void flush_group(struct sch_node *node)
{
    size_t n = node->queued < SCH_GROUP_MAX ? node->queued : SCH_GROUP_MAX;
    struct group *g = gy_xcalloc(1, sizeof(*g));
    g->node = node;
    g->items = gy_xcalloc(n, sizeof(*g->items));
    struct sch_packed_command *packed = gy_xcalloc(n, sizeof(*packed));
    uint64_t now = uv_hrtime();
    g->proposed_ns = now;
    for (size_t i = 0; i < n; i++) {
        struct sch_proposal *p = node->queue_head;
        node->queue_head = p->next;
        g->items[i] = p;
        packed[i] = p->packed;
        node->stats.queue_ns += now - p->queued_ns;
    }
    if (node->queue_head == NULL)
        node->queue_tail = NULL;
    node->queued -= n;
    g->n = n;

    struct gy_error err;
    struct raft_buffer buf;
    int rc = sch_command_encode_group(packed, n, &buf.base, &buf.len, &err);
    free(packed);
    if (rc == 0) {
        g->req.data = g;
        rc = raft_apply(&node->raft, &g->req, &buf, 1, group_done);
        if (rc != 0) {
            raft_free(buf.base);
            gy_error_set(&err, GY_EUNAVAILABLE, "propose: %s", raft_strerror(rc));
            rc = -GY_EUNAVAILABLE;
        }
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            g->items[i]->cb(g->items[i]->data, rc < 0 ? rc : -GY_EUNAVAILABLE, NULL, err.msg);
            proposal_free(g->items[i]);
        }
        free(g->items);
        free(g);
        return;
    }
    node->inflight_entries++;
    node->stats.entries++;
}

static void flush_cb(uv_check_t *check)
{
    struct sch_node *node = check->data;
    /* The entries a follower acknowledged during this turn are applied now (sch_fsm_drain). */
    sch_fsm_drain(&node->fsm);
    /* The commands applied since the last commit share the next one. */
    uint64_t now = uv_now(node->loop);
    bool due = now - node->flushed_at >= SCH_FLUSH_EVERY_MS;
    if (due)
        node->flushed_at = now;
    if (due && !node->storage_fault.down && sch_fsm_flush(&node->fsm) < 0)
        storage_fail(node, "the state database cannot be written");
    /* Proposals that may wait join the next entry, or go at once when none is on its way
     * (then nothing would come to share one soon). */
    if (node->lazy_head != NULL && node->inflight_entries < SCH_INFLIGHT_MAX &&
        (node->queued > 0 || node->inflight_entries == 0))
        lazy_join(node);
    while (node->queued > 0 && node->inflight_entries < SCH_INFLIGHT_MAX)
        flush_group(node);
    if (node->readers != NULL) {
        struct barrier *b = gy_xcalloc(1, sizeof(*b));
        b->node = node;
        b->waiters = node->readers;
        node->readers = NULL;
        b->req.data = b;
        node->inflight_barriers++;
        int rc = raft_barrier(&node->raft, &b->req, barrier_done);
        if (rc != 0) {
            b->req.data = b;
            barrier_done(&b->req, rc);
        } else {
            node->stats.barriers++;
        }
    }
}

bool sch_node_is_leader(struct sch_node *node)
{
    return node->raft_started && raft_state(&node->raft) == RAFT_LEADER;
}

static int proposal_new(struct sch_node *node, const Gantry__Command *cmd, sch_propose_cb cb,
                        void *data, struct sch_proposal **out, struct gy_error *err)
{
    if (node->closing)
        return gy_error_set(err, GY_EUNAVAILABLE, "the server is shutting down");
    if (!sch_node_is_leader(node))
        return gy_error_set(err, GY_EUNAVAILABLE, "this server is not the leader");
    struct sch_proposal *p = gy_xcalloc(1, sizeof(*p));
    int rc = sch_command_pack(cmd, &p->packed, err);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->cb = cb;
    p->data = data;
    p->queued_ns = uv_hrtime();
    node->stats.proposals++;
    *out = p;
    return 0;
}

/* Queues a proposal: lazy ones wait in their own list (sch_node_propose_lazy). */
static int propose(struct sch_node *node, const Gantry__Command *cmd, sch_propose_cb cb, void *data,
                   bool lazy, struct gy_error *err)
{
    struct sch_proposal *p = NULL;
    int rc = proposal_new(node, cmd, cb, data, &p, err);
    if (rc < 0)
        return rc;
    struct sch_proposal **head = lazy ? &node->lazy_head : &node->queue_head;
    struct sch_proposal **tail = lazy ? &node->lazy_tail : &node->queue_tail;
    if (*tail != NULL)
        (*tail)->next = p;
    else
        *head = p;
    *tail = p;
    if (!lazy)
        node->queued++;
    else if (!uv_is_active((uv_handle_t *)&node->lazy_timer))
        uv_timer_start(&node->lazy_timer, lazy_timer_cb, SCH_LAZY_WAIT_MS, 0);
    return 0;
}

int sch_node_propose(struct sch_node *node, const Gantry__Command *cmd, sch_propose_cb cb,
                     void *data, struct gy_error *err)
{
    return propose(node, cmd, cb, data, false, err);
}

int sch_node_propose_lazy(struct sch_node *node, const Gantry__Command *cmd, sch_propose_cb cb,
                          void *data, struct gy_error *err)
{
    return propose(node, cmd, cb, data, true, err);
}

int sch_node_barrier(struct sch_node *node, sch_done_cb cb, void *data, struct gy_error *err)
{
    if (node->closing)
        return gy_error_set(err, GY_EUNAVAILABLE, "the server is shutting down");
    if (!sch_node_is_leader(node))
        return gy_error_set(err, GY_EUNAVAILABLE, "this server is not the leader");
    struct sch_waiter *w = gy_xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->data = data;
    w->next = node->readers;
    node->readers = w;
    return 0;
}

uint64_t sch_node_leader(struct sch_node *node, char *api_buf, size_t len)
{
    raft_id id = 0;
    const char *address = NULL;
    if (api_buf != NULL && len > 0)
        api_buf[0] = '\0';
    if (node->storage_fault.down)
        id = node->storage_fault.leader; /* its Raft is closed: the last leader it knew */
    else if (node->raft_started)
        raft_leader(&node->raft, &id, &address);
    if (id == 0 || api_buf == NULL)
        return id;
    sch_fsm_server_api_address(&node->fsm, id, api_buf, len);
    if (*api_buf == '\0' && node->fsm.image_needed != 0)
        peers_lookup(node, id, api_buf, len);
    return id;
}

/* ---------------------------------------------------------------------------------------
 * Leader duties */

static void duty_done(void *data, int status, const struct sch_result *result, const char *message)
{
    bool *flag = data;
    *flag = false;
    if (status < 0)
        gy_log_warn("leader duty not committed", "error=\"%s\"", message);
    else if (result->code < 0 && result->code != -GY_EEXISTS)
        gy_log_warn("leader duty rejected", "error=\"%s\"", result->message);
}

/* Proposes cmd as this server's own duty, stamped now; *inflight stays true until it is
 * settled. A proposal that fails at once is tried again by the next round of duties. */
static void duty_propose(struct sch_node *node, Gantry__Command *cmd, bool *inflight)
{
    char actor[40];
    snprintf(actor, sizeof(actor), "server:%" PRIu64, node->cfg.id);
    cmd->time_ms = now_ms();
    cmd->actor = actor;
    struct gy_error err;
    if (sch_node_propose(node, cmd, duty_done, inflight, &err) == 0)
        *inflight = true;
}

static bool self_recorded(struct sch_node *node)
{
    return sch_fsm_server_recorded(&node->fsm, node->cfg.id, node->cfg.raft_addr,
                                   node->cfg.api_addr, node->cfg.agent_addr);
}

/* Raises or clears the NOSPACE alarm from the data directory's free space, once a second. */
static void space_check(struct sch_node *node)
{
    uint64_t now = uv_now(node->loop);
    if (node->cfg.min_free_bytes == 0 ||
        (node->space.checked_ms != 0 && now - node->space.checked_ms < 1000))
        return;
    node->space.checked_ms = now;
    struct statvfs st;
    if (statvfs(node->cfg.data_dir, &st) != 0)
        return;
    node->space.free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
    bool low = node->space.free_bytes < node->cfg.min_free_bytes;
    if (low && !node->space.alarm) {
        node->space.raised_total++;
        gy_log_error("NOSPACE alarm raised",
                     "data_dir=%s free_bytes=%" PRIu64 " reserve_bytes=%" PRIu64
                     " action=\"client writes are refused until space is freed; reads go on\"",
                     node->cfg.data_dir, node->space.free_bytes, node->cfg.min_free_bytes);
    } else if (!low && node->space.alarm) {
        gy_log_info("NOSPACE alarm cleared", "data_dir=%s free_bytes=%" PRIu64, node->cfg.data_dir,
                    node->space.free_bytes);
    }
    node->space.alarm = low;
}

bool sch_node_nospace(const struct sch_node *node, char *msg, size_t len)
{
    if (!node->space.alarm)
        return false;
    if (msg != NULL)
        snprintf(msg, len,
                 "server %" PRIu64 " is short of disk space: its data directory %s has %" PRIu64
                 " MiB free, below the reserve of %" PRIu64
                 " MiB (--min-free-space); writes are refused until space is freed, reads go on",
                 node->cfg.id, node->cfg.data_dir, node->space.free_bytes >> 20,
                 node->cfg.min_free_bytes >> 20);
    return true;
}

static void duties_cb(uv_timer_t *timer)
{
    struct sch_node *node = timer->data;
    if (node->closing)
        return;
    if (node->storage_fault.down) {
        storage_probe(node);
        return;
    }
    space_check(node);
    sch_verify_tick(&node->verify);
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&node->raft, &leader, &address);
    if (leader != node->last_leader) {
        node->last_leader = leader;
        node->stats.leader_changes++;
        if (leader != 0)
            gy_log_info("leader known", "leader=%llu address=%s term=%llu self=%s",
                        (unsigned long long)leader, address ? address : "",
                        (unsigned long long)node->raft.current_term,
                        leader == node->cfg.id ? "true" : "false");
        else
            gy_log_info("no leader known", "term=%llu",
                        (unsigned long long)node->raft.current_term);
    }
    if (!sch_node_is_leader(node))
        return;
    char cluster[80] = "";
    /* Once the state names its cluster (cluster_checked), it never changes. */
    if (!node->cluster_checked)
        sch_fsm_cluster_id(&node->fsm, cluster, sizeof(cluster));
    if (!node->cluster_checked && *cluster == '\0' && !node->init_inflight) {
        /* The first leader of a new cluster names it. */
        char id[80];
        if (*node->cluster_id != '\0') {
            snprintf(id, sizeof(id), "%s", node->cluster_id);
        } else {
            uint8_t raw[16];
            if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
                return;
            for (int i = 0; i < 16; i++)
                snprintf(id + 2 * i, 3, "%02x", raw[i]);
        }
        Gantry__InitCluster init = GANTRY__INIT_CLUSTER__INIT;
        init.cluster_id = id;
        init.cluster_network =
            (char *)(node->cfg.cluster_network != NULL ? node->cfg.cluster_network : "");
        init.node_prefix = node->cfg.node_prefix;
        Gantry__Command cmd = GANTRY__COMMAND__INIT;
        cmd.cmd_case = GANTRY__COMMAND__CMD_INIT_CLUSTER;
        cmd.init_cluster = &init;
        duty_propose(node, &cmd, &node->init_inflight);
    }
    /* The servers table changes only through applied commands. */
    if (!node->self_inflight && node->self_checked != node->fsm.applied + 1 &&
        !self_recorded(node)) {
        /* Followers forward to the leader's API address, so a new leader records it. */
        Gantry__SetServer set = GANTRY__SET_SERVER__INIT;
        set.id = node->cfg.id;
        set.raft_address = (char *)node->cfg.raft_addr;
        set.api_address = (char *)node->cfg.api_addr;
        set.agent_address = (char *)node->cfg.agent_addr;
        Gantry__Command cmd = GANTRY__COMMAND__INIT;
        cmd.cmd_case = GANTRY__COMMAND__CMD_SET_SERVER;
        cmd.set_server = &set;
        duty_propose(node, &cmd, &node->self_inflight);
    } else if (!node->self_inflight) {
        node->self_checked = node->fsm.applied + 1;
    }
}

/* ---------------------------------------------------------------------------------------
 * Membership */

static void change_finish(struct change *c, int status)
{
    char message[200] = "";
    if (status != 0)
        snprintf(message, sizeof(message), "membership change for server %" PRIu64 ": %s", c->id,
                 raft_strerror(status));
    int code = 0;
    if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN)
        code = -GY_EUNAVAILABLE;
    else if (status == RAFT_CANTCHANGE)
        code = -GY_ECONFLICT;
    else if (status == RAFT_BADID || status == RAFT_NOTFOUND)
        code = -GY_ENOTFOUND;
    else if (status == RAFT_DUPLICATEID || status == RAFT_DUPLICATEADDRESS)
        code = -GY_EEXISTS;
    else if (status != 0)
        code = -GY_EUNAVAILABLE;
    c->cb(c->data, code, status ? message : NULL);
    free(c);
}

/* A membership change of server id, whose end is reported to cb. */
static struct change *change_new(struct sch_node *node, uint64_t id, sch_done_cb cb, void *data)
{
    struct change *c = gy_xcalloc(1, sizeof(*c));
    c->node = node;
    c->id = id;
    c->cb = cb;
    c->data = data;
    c->req.data = c;
    return c;
}

/* Frees c, which libraft refused to start with rc, and fills err; verb names the change
 * ("add", "remove"). */
static int change_refused(struct change *c, int rc, const char *verb, struct gy_error *err)
{
    uint64_t id = c->id;
    free(c);
    if (rc == RAFT_CANTCHANGE)
        return gy_error_set(err, GY_ECONFLICT, "another membership change is in progress; retry");
    return gy_error_set(err, GY_EUNAVAILABLE, "%s server %" PRIu64 ": %s", verb, id,
                        raft_strerror(rc));
}

static void promote_done(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status == 0)
        gy_log_info("server promoted to voter", "server=%" PRIu64, c->id);
    change_finish(c, status);
}

static void add_done(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status != 0) {
        change_finish(c, status);
        return;
    }
    /* raft_assign catches the new server up before the configuration that makes it a
     * voter is appended, so it never counts towards a quorum while behind. */
    int rc = raft_assign(&c->node->raft, &c->req, c->id, RAFT_VOTER, promote_done);
    if (rc != 0)
        change_finish(c, rc);
}

static const struct raft_server *config_find(struct sch_node *node, uint64_t id)
{
    for (unsigned i = 0; i < node->raft.configuration.n; i++)
        if (node->raft.configuration.servers[i].id == id)
            return &node->raft.configuration.servers[i];
    return NULL;
}

int sch_node_add_server(struct sch_node *node, uint64_t id, const char *raft_addr, sch_done_cb cb,
                        void *data, struct gy_error *err)
{
    if (!sch_node_is_leader(node))
        return gy_error_set(err, GY_EUNAVAILABLE, "this server is not the leader");
    if (node->seeded_lineage != 0 && node->raft.log.snapshot.last_index == 0)
        /* A new server would replay the log from its first entry, which does not hold the
         * restored state: it joins once a snapshot (sent to it whole) does. */
        return gy_error_set(err, GY_EUNAVAILABLE,
                            "this cluster's state was restored from a snapshot file and is "
                            "not in a Raft snapshot yet; retry shortly");
    const struct raft_server *known = config_find(node, id);
    if (known != NULL && strcmp(known->address, raft_addr) != 0)
        return gy_error_set(err, GY_ECONFLICT, "server %" PRIu64 " is already a member at %s", id,
                            known->address);
    for (unsigned i = 0; i < node->raft.configuration.n; i++) {
        const struct raft_server *s = &node->raft.configuration.servers[i];
        if (s->id != id && strcmp(s->address, raft_addr) == 0)
            return gy_error_set(err, GY_ECONFLICT, "raft address %s is used by server %llu",
                                raft_addr, (unsigned long long)s->id);
    }
    if (known != NULL && known->role == RAFT_VOTER) {
        cb(data, 0, NULL);
        return 0;
    }
    struct change *c = change_new(node, id, cb, data);
    int rc = known != NULL ? raft_assign(&node->raft, &c->req, id, RAFT_VOTER, promote_done)
                           : raft_add(&node->raft, &c->req, id, raft_addr, add_done);
    if (rc != 0)
        return change_refused(c, rc, "add", err);
    gy_log_info("adding server", "server=%" PRIu64 " raft=%s", id, raft_addr);
    return 0;
}

static void remove_done(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status == 0)
        gy_log_info("server removed", "server=%" PRIu64, c->id);
    change_finish(c, status);
}

int sch_node_remove_server(struct sch_node *node, uint64_t id, sch_done_cb cb, void *data,
                           struct gy_error *err)
{
    if (!sch_node_is_leader(node))
        return gy_error_set(err, GY_EUNAVAILABLE, "this server is not the leader");
    if (config_find(node, id) == NULL)
        return gy_error_set(err, GY_ENOTFOUND, "server %" PRIu64 " is not a member", id);
    struct change *c = change_new(node, id, cb, data);
    int rc = raft_remove(&node->raft, &c->req, id, remove_done);
    if (rc != 0)
        return change_refused(c, rc, "remove", err);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Leadership transfer and the leader's view of the members */

/* The voter best placed to take over: heard from within the election timeout, with the
 * longest log; 0 when there is none. libraft 0.15 picks one itself for id 0 but crashes
 * when no voter qualifies, so the choice is made here. */
static raft_id transfer_target(struct sch_node *node)
{
    raft_id target = 0;
    raft_index best = 0;
    if (raft_state(&node->raft) != RAFT_LEADER || node->raft.leader_state.progress == NULL)
        return 0;
    for (unsigned i = 0; i < node->raft.configuration.n; i++) {
        const struct raft_server *srv = &node->raft.configuration.servers[i];
        const struct raft_progress *pr = &node->raft.leader_state.progress[i];
        if (srv->role != RAFT_VOTER || srv->id == node->cfg.id || !pr->recent_recv)
            continue;
        if (target == 0 || pr->match_index > best) {
            target = srv->id;
            best = pr->match_index;
        }
    }
    return target;
}

static void api_transfer_done(struct raft_transfer *req)
{
    struct sch_transfer *t = req->data;
    struct sch_node *node = t->node;
    node->transfer = NULL;
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&node->raft, &leader, &address);
    char message[300];
    int status = 0;
    if (node->closing) {
        status = -GY_EUNAVAILABLE;
        snprintf(message, sizeof(message), "the server is shutting down");
    } else if (leader == t->target || (t->any && leader != 0 && leader != node->cfg.id)) {
        gy_log_info("leadership transferred", "from=%" PRIu64 " to=%llu term=%llu", node->cfg.id,
                    (unsigned long long)leader, (unsigned long long)node->raft.current_term);
    } else if (raft_state(&node->raft) == RAFT_LEADER) {
        status = -GY_ETIMEOUT;
        snprintf(message, sizeof(message),
                 "server %" PRIu64 " did not take over within the election timeout (%u ms): it "
                 "may be unreachable or too far behind; server %" PRIu64 " still leads",
                 t->target, node->cfg.election_ms, node->cfg.id);
    } else if (leader != 0) {
        status = -GY_ECONFLICT;
        snprintf(message, sizeof(message),
                 "server %llu took over leadership instead of server %" PRIu64,
                 (unsigned long long)leader, t->target);
    } else {
        status = -GY_EUNAVAILABLE;
        snprintf(message, sizeof(message),
                 "server %" PRIu64 " stepped down but no new leader is known yet; retry "
                 "shortly",
                 node->cfg.id);
    }
    if (status != 0)
        gy_log_warn("leadership transfer failed", "to=%" PRIu64 " error=\"%s\"", t->target,
                    message);
    t->cb(t->data, status, status == 0 ? leader : 0, status == 0 ? NULL : message);
    free(t);
}

int sch_node_transfer(struct sch_node *node, uint64_t id, sch_transfer_cb cb, void *data,
                      struct gy_error *err)
{
    if (node->closing)
        return gy_error_set(err, GY_EUNAVAILABLE, "the server is shutting down");
    if (!sch_node_is_leader(node))
        return gy_error_set(err, GY_EUNAVAILABLE, "this server is not the leader");
    if (node->transfer != NULL || node->raft.transfer != NULL)
        return gy_error_set(err, GY_ECONFLICT,
                            "a leadership transfer is already under way; retry shortly");
    if (id == node->cfg.id) {
        cb(data, 0, id, NULL);
        return 0;
    }
    bool any = id == 0;
    if (any) {
        unsigned voters = 0;
        for (unsigned i = 0; i < node->raft.configuration.n; i++)
            voters += node->raft.configuration.servers[i].role == RAFT_VOTER;
        if (voters <= 1)
            return gy_error_set(err, GY_ECONFLICT,
                                "this cluster has no other voter to hand leadership to");
        if ((id = transfer_target(node)) == 0)
            return gy_error_set(err, GY_ECONFLICT,
                                "no other voter has been heard from within the election "
                                "timeout; leadership stays with server %" PRIu64,
                                node->cfg.id);
    }
    const struct raft_server *srv = config_find(node, id);
    if (srv == NULL)
        return gy_error_set(err, GY_ENOTFOUND, "server %" PRIu64 " is not a member of the cluster",
                            id);
    if (srv->role != RAFT_VOTER)
        return gy_error_set(err, GY_ECONFLICT,
                            "server %" PRIu64 " is a %s, not a voter: only a voter can lead", id,
                            sch_node_role_name(srv->role));
    struct sch_transfer *t = gy_xcalloc(1, sizeof(*t));
    t->req.data = t;
    t->node = node;
    t->target = id;
    t->any = any;
    t->cb = cb;
    t->data = data;
    int rc = raft_transfer(&node->raft, &t->req, id, api_transfer_done);
    if (rc != 0) {
        free(t);
        return gy_error_set(err, rc == RAFT_NOTLEADER ? GY_EUNAVAILABLE : GY_ECONFLICT,
                            "transfer leadership to server %" PRIu64 ": %s", id, raft_strerror(rc));
    }
    node->transfer = t;
    gy_log_info("transferring leadership", "to=%" PRIu64 " chosen=%s", id, any ? "yes" : "no");
    return 0;
}

int sch_node_members(struct sch_node *node, struct sch_member **out, size_t *n,
                     struct gy_error *err)
{
    *out = NULL;
    *n = 0;
    if (!sch_node_is_leader(node) || node->raft.leader_state.progress == NULL)
        return gy_error_set(err, GY_EUNAVAILABLE, "this server is not the leader");
    const struct raft_configuration *conf = &node->raft.configuration;
    struct sch_member *members = gy_xcalloc(conf->n ? conf->n : 1, sizeof(*members));
    for (unsigned i = 0; i < conf->n; i++) {
        const struct raft_server *srv = &conf->servers[i];
        const struct raft_progress *pr = &node->raft.leader_state.progress[i];
        struct sch_member *m = &members[i];
        m->id = srv->id;
        snprintf(m->address, sizeof(m->address), "%s", srv->address);
        m->role = srv->role;
        m->leader = srv->id == node->cfg.id;
        m->reachable = m->leader || pr->recent_recv;
        m->match_index = m->leader ? (uint64_t)raft_last_index(&node->raft) : pr->match_index;
    }
    *out = members;
    *n = conf->n;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Storage: snapshots are markers of the state database file (see scheduler/state/fsm.c)
 *
 * libraft's storage is wrapped in three places. Before it records one of this server's
 * snapshots, the database file is synced on the thread pool, since the snapshot lets
 * libraft drop the log entries the file now holds. When it loads a snapshot to send a
 * follower, the marker becomes a full image of the database. And when it loads no snapshot
 * at start, it replays the whole log, so the database starts empty. */

static struct sch_node *node_of_io(struct raft_io *io)
{
    return (struct sch_node *)((char *)io - offsetof(struct sch_node, io));
}

struct snapshot_sync {
    uv_work_t work;
    struct sch_node *node;
    char path[4096];
    int status; /* 0 or a negative errno */
    unsigned trailing;
    struct raft_io_snapshot_put *req;
    const struct raft_snapshot *snapshot;
    raft_io_snapshot_put_cb cb;
};

static void snapshot_sync_work(uv_work_t *work)
{
    struct snapshot_sync *s = work->data;
    s->status = sch_fsm_sync_files(s->path);
}

static void snapshot_sync_done(uv_work_t *work, int status)
{
    struct snapshot_sync *s = work->data;
    struct sch_node *node = s->node;
    node->syncs_pending--;
    int rc = 0;
    if (node->storage_close_cb != NULL || status != 0) {
        rc = RAFT_CANCELED;
    } else if (s->status < 0) {
        gy_log_error("snapshot failed", "error=\"sync %s: %s\"", s->path, strerror(-s->status));
        rc = RAFT_IOERR;
    } else {
        rc = node->storage.snapshot_put(&node->io, s->trailing, s->req, s->snapshot, s->cb);
    }
    if (rc != 0)
        s->cb(s->req, rc);
    free(s);
    if (node->syncs_pending == 0 && node->storage_close_cb != NULL) {
        raft_io_close_cb cb = node->storage_close_cb;
        node->storage_close_cb = NULL;
        node->storage.close(&node->io, cb);
    }
}

static int storage_snapshot_put(struct raft_io *io, unsigned trailing,
                                struct raft_io_snapshot_put *req,
                                const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct sch_node *node = node_of_io(io);
    /* A snapshot installed from the leader (trailing 0) is a full image: written as it is. */
    if (trailing == 0 || snapshot->n_bufs != 1 ||
        !sch_fsm_is_marker(snapshot->bufs[0].base, snapshot->bufs[0].len))
        return node->storage.snapshot_put(io, trailing, req, snapshot, cb);
    struct snapshot_sync *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return RAFT_NOMEM;
    s->work.data = s;
    s->node = node;
    snprintf(s->path, sizeof(s->path), "%s", node->fsm.path);
    s->trailing = trailing;
    s->req = req;
    s->snapshot = snapshot;
    s->cb = cb;
    if (uv_queue_work(node->loop, &s->work, snapshot_sync_work, snapshot_sync_done) != 0) {
        free(s);
        return RAFT_IOERR;
    }
    node->syncs_pending++;
    return 0;
}

struct snapshot_load {
    struct raft_io_snapshot_get get; /* libraft's storage answers this one */
    struct sch_node *node;
    struct raft_io_snapshot_get *req;
    raft_io_snapshot_get_cb cb;
};

static void snapshot_free(struct raft_snapshot *snapshot)
{
    for (unsigned i = 0; i < snapshot->n_bufs; i++)
        raft_free(snapshot->bufs[i].base);
    raft_free(snapshot->bufs);
    raft_configuration_close(&snapshot->configuration);
    raft_free(snapshot);
}

static void snapshot_loaded(struct raft_io_snapshot_get *get, struct raft_snapshot *snapshot,
                            int status)
{
    struct snapshot_load *l = get->data;
    struct sch_node *node = l->node;
    if (status == 0 && snapshot->n_bufs == 1 &&
        sch_fsm_is_marker(snapshot->bufs[0].base, snapshot->bufs[0].len)) {
        struct gy_error err;
        if (node->closing) {
            status = RAFT_CANCELED;
        } else if (sch_fsm_image_for_marker(&node->fsm, &snapshot->bufs[0], &err) < 0) {
            gy_log_error("snapshot for a follower failed", "error=\"%s\"", err.msg);
            status = RAFT_NOMEM;
        } else {
            gy_log_info("snapshot image made for a follower",
                        "index=%" PRIu64 " database_index=%" PRIu64 " bytes=%zu",
                        (uint64_t)snapshot->index, node->fsm.stored_index, snapshot->bufs[0].len);
        }
        if (status != 0) {
            snapshot_free(snapshot);
            snapshot = NULL;
        }
    }
    l->cb(l->req, snapshot, status);
    free(l);
}

static int storage_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                                raft_io_snapshot_get_cb cb)
{
    struct sch_node *node = node_of_io(io);
    struct snapshot_load *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return RAFT_NOMEM;
    l->get.data = l;
    l->node = node;
    l->req = req;
    l->cb = cb;
    int rc = node->storage.snapshot_get(io, &l->get, snapshot_loaded);
    if (rc != 0)
        free(l);
    return rc;
}

/* Frees what a load handed over, for a load that is then refused. */
static void load_free(struct raft_snapshot **snapshot, struct raft_entry *entries[],
                      size_t *n_entries)
{
    if (*snapshot != NULL) {
        raft_configuration_close(&(*snapshot)->configuration);
        for (unsigned i = 0; i < (*snapshot)->n_bufs; i++)
            raft_free((*snapshot)->bufs[i].base);
        raft_free((*snapshot)->bufs);
        raft_free(*snapshot);
        *snapshot = NULL;
    }
    void *batch = NULL;
    for (size_t i = 0; i < *n_entries; i++) {
        if ((*entries)[i].batch != batch)
            raft_free((*entries)[i].batch);
        batch = (*entries)[i].batch;
    }
    raft_free(*entries);
    *entries = NULL;
    *n_entries = 0;
}

static int storage_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                        struct raft_snapshot **snapshot, raft_index *start_index,
                        struct raft_entry *entries[], size_t *n_entries)
{
    struct sch_node *node = node_of_io(io);
    int rc = node->storage.load(io, term, voted_for, snapshot, start_index, entries, n_entries);
    if (rc != 0)
        return rc;
    /* The state database applied entries that neither the log nor its snapshot hold: the
     * log lost them (a removed segment). */
    uint64_t last = *snapshot != NULL ? (*snapshot)->index : 0;
    if (*n_entries > 0)
        last = (uint64_t)*start_index + *n_entries - 1;
    if (node->fsm.stored_index > last && node->seeded_lineage == 0) {
        snprintf(io->errmsg, sizeof(io->errmsg),
                 "the Raft log ends at %" PRIu64 " but the state database applied %" PRIu64
                 ": entries are missing from the log",
                 last, node->fsm.stored_index);
        gy_log_error("refusing a Raft log with entries missing",
                     "log_last=%" PRIu64 " applied_index=%" PRIu64, last, node->fsm.stored_index);
        load_free(snapshot, entries, n_entries);
        return RAFT_CORRUPT;
    }
    if (*snapshot != NULL || node->fsm.stored_index == 0)
        return 0;
    if (node->seeded_lineage != 0 && node->seeded_lineage == node->fsm.lineage) {
        /* A database seeded by --restore holds what the log cannot replay: it is kept, and
         * the entries it already applied are skipped (skip_through). */
        gy_log_info("state database kept",
                    "reason=\"seeded from a snapshot file, no Raft snapshot yet\" "
                    "applied_index=%" PRIu64,
                    node->fsm.stored_index);
        return 0;
    }
    /* No snapshot: libraft applies the log from its first entry. */
    struct gy_error err;
    if (sch_fsm_reset(&node->fsm, &err) < 0) {
        snprintf(io->errmsg, sizeof(io->errmsg), "%.200s", err.msg);
        return RAFT_IOERR;
    }
    gy_log_info("state database emptied", "reason=\"no snapshot: the whole log is replayed\"");
    return 0;
}

static void storage_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct sch_node *node = node_of_io(io);
    if (node->syncs_pending > 0) {
        node->storage_close_cb = cb; /* the last sync to finish closes the storage */
        return;
    }
    node->storage.close(io, cb);
}

/* Failures of the log's writes: the status reaches libraft as before, and the server
 * leaves the cluster (storage_fail) since libraft writes no more to a log that failed. */
static void log_write_failed(struct sch_node *node, const char *what, int status)
{
    if (status == 0 || status == RAFT_CANCELED || node->closing)
        return;
    char why[sizeof(node->storage_fault.why)];
    const char *detail = status == RAFT_NOSPACE     ? "no space left on the device"
                         : *node->io.errmsg != '\0' ? node->io.errmsg
                                                    : raft_strerror(status);
    snprintf(why, sizeof(why), "the Raft log in %.200s: %s failed: %.200s", node->raft_dir, what,
             detail);
    storage_fail(node, why);
}

/* Appends handed to libraft's storage and not yet called back, with the callbacks libraft
 * gave (storage_append puts its own in between; libraft owns req->data). Few are ever on
 * their way at once. */
static struct append_pending {
    struct raft_io_append *req;
    raft_io_append_cb cb;
    struct sch_node *node;
} * appends;
static size_t n_appends, cap_appends;

static void storage_append_done(struct raft_io_append *req, int status)
{
    for (size_t i = 0; i < n_appends; i++) {
        if (appends[i].req != req)
            continue;
        struct append_pending a = appends[i];
        appends[i] = appends[--n_appends];
        if (n_appends == 0) {
            free(appends);
            appends = NULL;
            cap_appends = 0;
        }
        log_write_failed(a.node, "append", status);
        a.cb(req, status);
        return;
    }
}

static int storage_append(struct raft_io *io, struct raft_io_append *req,
                          const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct sch_node *node = node_of_io(io);
    if (n_appends == cap_appends) {
        cap_appends = cap_appends ? 2 * cap_appends : 16;
        appends = gy_xrealloc(appends, cap_appends * sizeof(*appends));
    }
    appends[n_appends++] = (struct append_pending){.req = req, .cb = cb, .node = node};
    int rc = node->storage.append(io, req, entries, n, storage_append_done);
    if (rc != 0) {
        n_appends--;
        log_write_failed(node, "append", rc);
    }
    return rc;
}

static int storage_truncate(struct raft_io *io, raft_index index)
{
    struct sch_node *node = node_of_io(io);
    int rc = node->storage.truncate(io, index);
    log_write_failed(node, "truncate", rc);
    return rc;
}

static int storage_set_term(struct raft_io *io, raft_term term)
{
    struct sch_node *node = node_of_io(io);
    int rc = node->storage.set_term(io, term);
    log_write_failed(node, "recording the term", rc);
    return rc;
}

static int storage_set_vote(struct raft_io *io, raft_id server_id)
{
    struct sch_node *node = node_of_io(io);
    int rc = node->storage.set_vote(io, server_id);
    log_write_failed(node, "recording the vote", rc);
    return rc;
}

static void storage_wrap(struct sch_node *node)
{
    node->storage.append = node->io.append;
    node->storage.truncate = node->io.truncate;
    node->storage.set_term = node->io.set_term;
    node->storage.set_vote = node->io.set_vote;
    node->io.append = storage_append;
    node->io.truncate = storage_truncate;
    node->io.set_term = storage_set_term;
    node->io.set_vote = storage_set_vote;
    node->storage.load = node->io.load;
    node->storage.snapshot_put = node->io.snapshot_put;
    node->storage.snapshot_get = node->io.snapshot_get;
    node->storage.close = node->io.close;
    node->io.load = storage_load;
    node->io.snapshot_put = storage_snapshot_put;
    node->io.snapshot_get = storage_snapshot_get;
    node->io.close = storage_close;
}

/* ---------------------------------------------------------------------------------------
 * Start and stop */

static void do_close(struct sch_node *node);
static void close_handles(struct sch_node *node);

static int parse_bootstrap(struct sch_node *node, struct raft_configuration *conf,
                           struct gy_error *err)
{
    cleanup_free char *copy = gy_xstrdup(node->cfg.bootstrap);
    char *save = NULL;
    bool self = false;
    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            return gy_error_set(err, GY_EINVAL, "--bootstrap: \"%s\" is not ID=HOST:PORT", tok);
        *eq = '\0';
        char *end;
        unsigned long long id = strtoull(tok, &end, 10);
        if (*end != '\0' || id == 0)
            return gy_error_set(err, GY_EINVAL, "--bootstrap: \"%s\" is not a server id", tok);
        int rc = raft_configuration_add(conf, id, eq + 1, RAFT_VOTER);
        if (rc != 0)
            return gy_error_set(err, GY_EINVAL, "--bootstrap: server %llu at %s: %s", id, eq + 1,
                                raft_strerror(rc));
        if (id == node->cfg.id) {
            if (strcmp(eq + 1, node->cfg.raft_addr) != 0)
                return gy_error_set(err, GY_EINVAL,
                                    "--bootstrap lists server %llu at %s but --raft-addr is %s", id,
                                    eq + 1, node->cfg.raft_addr);
            self = true;
        }
    }
    if (!self)
        return gy_error_set(err, GY_EINVAL,
                            "--bootstrap does not list this server (--id %" PRIu64 ")",
                            node->cfg.id);
    return 0;
}

static int prepare_data_dir(struct sch_node *node, struct gy_error *err)
{
    int rc = ensure_dir(node->cfg.data_dir, err);
    if (rc < 0)
        return rc;
    snprintf(node->raft_dir, sizeof(node->raft_dir), "%s/raft", node->cfg.data_dir);
    if ((rc = ensure_dir(node->raft_dir, err)) < 0)
        return rc;
    char path[4200], text[100];
    snprintf(path, sizeof(path), "%s/server-id", node->cfg.data_dir);
    rc = read_small_file(path, text, sizeof(text), err);
    if (rc < 0)
        return rc;
    char want[32];
    snprintf(want, sizeof(want), "%" PRIu64, node->cfg.id);
    if (rc > 0 && strcmp(text, want) != 0)
        return gy_error_set(err, GY_ECONFLICT,
                            "data directory %s belongs to server %s, not to --id %s",
                            node->cfg.data_dir, text, want);
    if (rc == 0 && (rc = write_small_file(node->cfg.data_dir, "server-id", want, err)) < 0)
        return rc;
    /* One server per data directory: the lock lasts as long as this process. */
    char lock_path[4200];
    snprintf(lock_path, sizeof(lock_path), "%s/lock", node->cfg.data_dir);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return gy_error_sys(err, errno, "open %s", lock_path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return gy_error_set(err, GY_ECONFLICT,
                                "data directory %s is in use by another gantry-scheduler",
                                node->cfg.data_dir);
        return gy_error_sys(err, e, "lock %s", lock_path);
    }
    node->lock_fd = fd;
    snprintf(path, sizeof(path), "%s/cluster-id", node->cfg.data_dir);
    rc = read_small_file(path, node->cluster_id, sizeof(node->cluster_id), err);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/restored", node->cfg.data_dir);
    if ((rc = read_small_file(path, text, sizeof(text), err)) < 0)
        return rc;
    node->seeded_lineage = rc > 0 ? strtoull(text, NULL, 16) : 0;
    return 0;
}

/* Reads the file at path into a malloc'd buffer. */
static int read_whole_file(const char *path, void **out, size_t *len, struct gy_error *err)
{
    *out = NULL;
    *len = 0;
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return gy_error_sys(err, errno, "open %s", path);
    if (fstat(fd, &st) < 0)
        return gy_error_sys(err, errno, "stat %s", path);
    if (!S_ISREG(st.st_mode))
        return gy_error_set(err, GY_EINVAL, "%s is not a regular file", path);
    size_t size = (size_t)st.st_size;
    cleanup_free uint8_t *buf = gy_xmalloc(size > 0 ? size : 1);
    ssize_t have = gy_read_full(fd, buf, size);
    if (have < 0)
        return gy_error_sys(err, errno, "read %s", path);
    *out = gy_steal_ptr(&buf);
    *len = (size_t)have;
    return 0;
}

/* --restore: reads and checks the snapshot file, and that the data directory holds no
 * cluster, before anything is written; the image is the caller's to free. */
static int restore_prepare(struct sch_node *node, void **image, size_t *len, struct gy_error *err)
{
    const struct sch_node_config *cfg = &node->cfg;
    int rc = read_whole_file(cfg->restore_path, image, len, err);
    if (rc < 0)
        return gy_error_wrap(err, "--restore");
    struct sch_image_info info;
    if ((rc = sch_fsm_image_check(*image, *len, &info, err)) < 0) {
        free(*image);
        *image = NULL;
        return gy_error_wrap(err, "--restore: %s is refused", cfg->restore_path);
    }
    char raft_dir[4096], path[4200], text[100];
    snprintf(raft_dir, sizeof(raft_dir), "%s/raft", cfg->data_dir);
    const char *why = raft_dir_has_state(raft_dir) ? "holds Raft state already" : NULL;
    snprintf(path, sizeof(path), "%s/cluster-id", cfg->data_dir);
    if (why == NULL && read_small_file(path, text, sizeof(text), err) > 0)
        why = "belongs to a cluster already";
    if (why != NULL) {
        free(*image);
        *image = NULL;
        return gy_error_set(err, GY_ECONFLICT,
                            "--restore seeds a new cluster in a fresh data directory, but %s "
                            "%s (start it without --restore, or give another --data-dir)",
                            cfg->data_dir, why);
    }
    gy_log_info("restoring a snapshot file",
                "file=%s index=%" PRIu64 " bytes=%zu cluster=%s workloads=%" PRIu64
                " nodes=%" PRIu64 " replicas=%" PRIu64,
                cfg->restore_path, info.applied_index, *len,
                *info.cluster_id ? info.cluster_id : "none", info.workloads, info.nodes,
                info.replicas);
    return 0;
}

/* --restore, once the data directory is prepared: the image becomes the state, and
 * DIR/restored names its new lineage (see seeded_lineage). */
static int restore_seed(struct sch_node *node, const void *image, size_t len, struct gy_error *err)
{
    int rc = sch_fsm_seed(&node->fsm, image, len, node->cfg.keep_cluster_id, err);
    if (rc < 0)
        return gy_error_wrap(err, "--restore %s", node->cfg.restore_path);
    char lineage[32];
    snprintf(lineage, sizeof(lineage), "%" PRIx64, node->fsm.lineage);
    if ((rc = write_small_file(node->cfg.data_dir, "restored", lineage, err)) < 0)
        return gy_error_wrap(err, "--restore");
    node->seeded_lineage = node->fsm.lineage;
    char cluster[80];
    sch_fsm_cluster_id(&node->fsm, cluster, sizeof(cluster));
    gy_log_info("state restored from a snapshot file", "file=%s lineage=%s cluster=%s",
                node->cfg.restore_path, lineage, *cluster ? cluster : "new");
    return 0;
}

/* --force-new-cluster: the configuration becomes this server alone, appended to the log
 * on disk (raft_recover; before raft_start). */
static int force_new_cluster(struct sch_node *node, struct gy_error *err)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rc = raft_configuration_add(&conf, node->cfg.id, node->cfg.raft_addr, RAFT_VOTER);
    if (rc == 0)
        rc = raft_recover(&node->raft, &conf);
    raft_configuration_close(&conf);
    if (rc != 0)
        return gy_error_set(err, GY_EIO,
                            "--force-new-cluster: rewrite the Raft configuration in %s: %s %s",
                            node->raft_dir, raft_strerror(rc), node->io.errmsg);
    return 0;
}

/* Says loudly, on standard error and in the log, what --force-new-cluster did. */
static void force_new_cluster_report(struct sch_node *node)
{
    uint64_t kept = node->raft.configuration_index > 0 ? node->raft.configuration_index - 1 : 0;
    fprintf(stderr,
            "gantry-scheduler: --force-new-cluster: the Raft configuration in %s is now this "
            "server alone (id %" PRIu64 " at %s).\n"
            "gantry-scheduler: its log up to index %" PRIu64 " and its state are kept and "
            "count as committed; writes the lost servers acknowledged after that index are "
            "gone.\n"
            "gantry-scheduler: make sure the other servers never start again with their "
            "data: wipe their data directories and add them back with --join. Start this "
            "server without --force-new-cluster from now on.\n",
            node->raft_dir, node->cfg.id, node->cfg.raft_addr, kept);
    gy_log_warn("forced a new one-server cluster",
                "id=%" PRIu64 " raft=%s kept_index=%" PRIu64 " cluster=%s", node->cfg.id,
                node->cfg.raft_addr, kept, *node->cluster_id ? node->cluster_id : "none");
}

int sch_node_start(struct sch_node *node, uv_loop_t *loop, const struct sch_node_config *cfg,
                   struct gy_error *err)
{
    memset(node, 0, sizeof(*node));
    node->loop = loop;
    node->cfg = *cfg;
    /* A snapshot file is checked before the data directory is touched: a refused file
     * changes nothing. */
    cleanup_free void *image = NULL;
    size_t image_len = 0;
    int rc;
    if (cfg->restore_path != NULL && (rc = restore_prepare(node, &image, &image_len, err)) < 0)
        return rc;
    if ((rc = prepare_data_dir(node, err)) < 0)
        return rc;
    bool has_state = raft_dir_has_state(node->raft_dir);
    if (!has_state && cfg->force_new_cluster)
        return gy_error_set(err, GY_EINVAL,
                            "--force-new-cluster needs the data directory of a surviving "
                            "server, but %s holds no Raft state",
                            cfg->data_dir);
    if (!has_state && cfg->bootstrap == NULL && !cfg->joining)
        return gy_error_set(err, GY_EINVAL,
                            "data directory %s holds no cluster state: start the first servers "
                            "with --bootstrap, or add this one with --join",
                            cfg->data_dir);
    /* libraft 0.15 ends the log at the first bad batch of an open segment, taking it for a
     * torn write even when written batches follow: refuse that before libraft loads the
     * log (in raft_recover below, or raft_start). */
    if (has_state) {
        struct sch_segment_report open_segments;
        rc = sch_segment_check_open(node->raft_dir, &open_segments, err);
        if (rc == -GY_EIO) {
            char why[GY_ERROR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", err->msg);
            gy_log_error("refusing a damaged Raft log", "dir=%s error=\"%s\"", node->raft_dir, why);
            return gy_error_set(err, GY_EIO,
                                "raft storage in %s: %s (see docs/operations.md, \"A damaged "
                                "server\")",
                                node->raft_dir, why);
        }
        if (rc < 0)
            return gy_error_wrap(err, "check the open Raft segments in %s", node->raft_dir);
        if (open_segments.torn[0] != '\0')
            gy_log_warn("Raft log ends in a torn write", "segment=%s offset=%zu",
                        open_segments.torn, open_segments.torn_offset);
    }
    if ((rc = check_listen_address("raft address", cfg->raft_addr, err)) < 0)
        return rc;
    char state_path[4200];
    snprintf(state_path, sizeof(state_path), "%s/state.db", cfg->data_dir);
    if ((rc = sch_fsm_init_file(&node->fsm, state_path, err)) < 0)
        return rc;
    if (image != NULL && (rc = restore_seed(node, image, image_len, err)) < 0) {
        sch_fsm_close(&node->fsm);
        return rc;
    }
    if (sch_fsm_set_loop(&node->fsm, loop) < 0) {
        sch_fsm_close(&node->fsm);
        return gy_error_set(err, GY_ENOMEM, "state database: cannot start its copier");
    }
    node->fsm.hooks.want_result = want_result;
    node->fsm.hooks.applied = fsm_applied;
    node->fsm.hooks.snapshot = fsm_snapshot;
    node->fsm.hooks.data = node;
    node->fsm.defer_applies = true;
    uv_check_init(loop, &node->flush);
    node->flush.data = node;
    uv_timer_init(loop, &node->duties);
    node->duties.data = node;
    uv_timer_init(loop, &node->lazy_timer);
    node->lazy_timer.data = node;
    uv_timer_init(loop, &node->stop_timer);
    node->stop_timer.data = node;
    sch_verify_init(&node->verify, node, loop, cfg->verify_interval_ms);
    node->closing = true; /* until raft runs; the error paths below close the handles */

    rc = raft_uv_tcp_init(&node->transport, loop);
    if (rc != 0) {
        close_handles(node);
        return gy_error_set(err, GY_EIO, "raft transport: %s", raft_strerror(rc));
    }
    sch_libraft_transport_wrap(&node->transport);
    char errmsg[RAFT_ERRMSG_BUF_SIZE] = "";
    rc = raft_uv_init(&node->io, loop, node->raft_dir, &node->transport);
    if (rc != 0) {
        snprintf(errmsg, sizeof(errmsg), "%s", node->io.errmsg);
        raft_uv_tcp_close(&node->transport);
        close_handles(node);
        return gy_error_set(err, GY_EIO, "raft storage in %s: %s", node->raft_dir, errmsg);
    }
    storage_wrap(node);
    sch_libraft_match_wrap(&node->match, &node->io);
    sch_libraft_storage_configure(&node->io, cfg->connect_retry_ms);
    sch_fsm_raft(&node->fsm, &node->raft_fsm);
    rc = raft_init(&node->raft, &node->io, &node->raft_fsm, cfg->id, cfg->raft_addr);
    if (rc != 0) {
        raft_uv_close(&node->io);
        sch_libraft_match_unwrap(&node->match);
        raft_uv_tcp_close(&node->transport);
        close_handles(node);
        return gy_error_set(err, GY_EINTERNAL, "raft init: %s", raft_strerror(rc));
    }
    node->raft.data = node;
    node->fsm.raft_applied = &node->raft.last_applied;
    node->io_open = true;
    raft_set_election_timeout(&node->raft, cfg->election_ms);
    raft_set_heartbeat_timeout(&node->raft, cfg->heartbeat_ms);
    raft_set_snapshot_threshold(&node->raft, cfg->snapshot_threshold);
    raft_set_snapshot_trailing(&node->raft, cfg->snapshot_trailing);
    /* Pre-vote: a server that restarts or was removed asks first whether it could win, so it
     * does not disrupt a working leader with a higher term. */
    raft_set_pre_vote(&node->raft, true);

    if (cfg->force_new_cluster)
        rc = force_new_cluster(node, err);
    if (rc == 0 && cfg->bootstrap != NULL) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rc = parse_bootstrap(node, &conf, err);
        if (rc == 0 && cfg->restore_path != NULL && conf.n != 1)
            /* Servers bootstrapped with an empty state would share its log. */
            rc = gy_error_set(err, GY_EINVAL,
                              "--restore starts a one-server cluster: --bootstrap must name "
                              "this server alone; add the others with --join");
        if (rc == 0) {
            int brc = raft_bootstrap(&node->raft, &conf);
            /* A server that already has state ignores --bootstrap and rejoins with it. */
            if (brc != 0 && brc != RAFT_CANTBOOTSTRAP)
                rc = gy_error_set(err, GY_EIO, "raft bootstrap: %s", raft_strerror(brc));
        }
        raft_configuration_close(&conf);
    }
    if (rc == 0) {
        int src = raft_start(&node->raft);
        if (src != 0)
            rc = gy_error_set(err, GY_EIO, "raft start on %s: %s %s%s", cfg->raft_addr,
                              raft_strerror(src), raft_errmsg(&node->raft),
                              src == RAFT_CORRUPT ? " (see docs/operations.md, \"A damaged "
                                                    "server\")"
                                                  : "");
    }
    node->raft_started = true;
    if (rc == 0 && node->fsm.image_needed != 0) {
        unsigned voters = 0;
        for (unsigned i = 0; i < node->raft.configuration.n; i++)
            if (node->raft.configuration.servers[i].role == RAFT_VOTER &&
                node->raft.configuration.servers[i].id != cfg->id)
                voters++;
        if (voters == 0)
            rc = gy_error_set(err, GY_EIO,
                              "the state database was damaged (moved to %s) and no other server "
                              "holds the state: restore a snapshot (gantry-scheduler --restore "
                              "FILE; see docs/operations.md, \"A damaged server\")",
                              node->fsm.damaged_path);
    }
    if (rc < 0) {
        /* The loop finishes the close; the caller runs it before exiting. */
        do_close(node);
        return rc;
    }
    node->closing = false;
    if (node->seeded_lineage != 0 && node->seeded_lineage == node->fsm.lineage &&
        node->raft.log.snapshot.last_index == 0) {
        /* The restored state goes into a Raft snapshot at the first apply, so that new
         * servers get it whole (sch_node_add_server waits for it). */
        node->snapshot_due = true;
        raft_set_snapshot_threshold(&node->raft, 1);
    }
    if (cfg->force_new_cluster)
        force_new_cluster_report(node);
    uv_check_start(&node->flush, flush_cb);
    uv_timer_start(&node->duties, duties_cb, cfg->heartbeat_ms, cfg->heartbeat_ms);
    gy_log_info("raft started", "id=%" PRIu64 " raft=%s dir=%s cluster=%s", cfg->id, cfg->raft_addr,
                node->raft_dir, *node->cluster_id ? node->cluster_id : "none");
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * A data directory prepared from a snapshot file, without serving */

static void restore_only_closed(struct raft *raft)
{
    bool *done = raft->data;
    *done = true;
}

int sch_node_restore_only(const struct sch_node_config *cfg, struct gy_error *err)
{
    static struct sch_node node; /* large; one per process */
    memset(&node, 0, sizeof(node));
    node.cfg = *cfg;
    cleanup_free void *image = NULL;
    size_t image_len = 0;
    int rc = restore_prepare(&node, &image, &image_len, err);
    if (rc < 0)
        return rc;
    if ((rc = prepare_data_dir(&node, err)) < 0)
        goto out;
    char state_path[4200];
    snprintf(state_path, sizeof(state_path), "%s/state.db", cfg->data_dir);
    if ((rc = sch_fsm_init_file(&node.fsm, state_path, err)) < 0)
        goto out;
    rc = restore_seed(&node, image, image_len, err);
    sch_fsm_close(&node.fsm);
    if (rc < 0)
        goto out;
    /* The Raft configuration that names this server alone, as --bootstrap writes it. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm = {.version = 1};
    rc = raft_uv_tcp_init(&transport, &loop);
    if (rc != 0) {
        rc = gy_error_set(err, GY_EIO, "raft transport: %s", raft_strerror(rc));
        goto loop_out;
    }
    rc = raft_uv_init(&io, &loop, node.raft_dir, &transport);
    if (rc != 0) {
        rc = gy_error_set(err, GY_EIO, "raft storage in %s: %s", node.raft_dir, io.errmsg);
        raft_uv_tcp_close(&transport);
        goto loop_out;
    }
    bool closed = false;
    rc = raft_init(&raft, &io, &fsm, cfg->id, cfg->raft_addr);
    if (rc == 0) {
        raft.data = &closed;
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        int brc = raft_configuration_add(&conf, cfg->id, cfg->raft_addr, RAFT_VOTER);
        if (brc == 0)
            brc = raft_bootstrap(&raft, &conf);
        raft_configuration_close(&conf);
        rc = brc == 0 ? 0
                      : gy_error_set(err, GY_EIO, "raft bootstrap in %s: %s", node.raft_dir,
                                     raft_strerror(brc));
        raft_close(&raft, restore_only_closed);
        for (int i = 0; i < 1000 && !closed; i++)
            uv_run(&loop, UV_RUN_ONCE);
    } else {
        rc = gy_error_set(err, GY_EINTERNAL, "raft init: %s", raft_strerror(rc));
    }
    raft_uv_close(&io);
    raft_uv_tcp_close(&transport);
loop_out:
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
out:
    if (node.lock_fd > 0)
        close(node.lock_fd);
    return rc;
}

static void handle_closed(uv_handle_t *handle)
{
    struct sch_node *node = handle->data;
    if (handle != (uv_handle_t *)&node->stop_timer)
        return;
    sch_fsm_close(&node->fsm);
    if (node->close_cb != NULL)
        node->close_cb(node);
}

static void close_handles(struct sch_node *node)
{
    sch_verify_close(&node->verify, NULL);
    uv_close((uv_handle_t *)&node->flush, handle_closed);
    uv_close((uv_handle_t *)&node->duties, handle_closed);
    uv_close((uv_handle_t *)&node->lazy_timer, handle_closed);
    uv_close((uv_handle_t *)&node->stop_timer, handle_closed);
}

/* libraft's close callback may come twice (libraft_compat.c): the second frees nothing. */
static void raft_closed(struct raft *raft)
{
    struct sch_node *node = raft->data;
    /* Closed after a disk fault, the handles stay: the API serves reads meanwhile. */
    if (sch_libraft_closed_once(raft, &node->raft_close_done) &&
        (!node->storage_fault.down || node->stop_requested))
        close_handles(node);
}

void sch_node_release(struct sch_node *node)
{
    if (node->lock_fd > 0) {
        close(node->lock_fd);
        node->lock_fd = 0;
    }
    if (!node->io_open)
        return;
    node->io_open = false;
    raft_uv_close(&node->io);
    sch_libraft_match_unwrap(&node->match);
    raft_uv_tcp_close(&node->transport);
}

static void close_retry_cb(uv_timer_t *timer)
{
    do_close(timer->data);
}

static void do_close(struct sch_node *node)
{
    /* libraft 0.15 was seen to crash in raft_close with entries or barriers still being
     * written: give them up to a second to settle first. */
    uint64_t now = uv_now(node->loop);
    if (node->close_deadline == 0)
        node->close_deadline = now + 1000;
    if (node->raft_started && (node->inflight_entries > 0 || node->inflight_barriers > 0) &&
        now < node->close_deadline) {
        uv_timer_start(&node->stop_timer, close_retry_cb, 10, 0);
        return;
    }
    if (node->raft_started) {
        node->raft_started = false;
        uv_timer_stop(&node->stop_timer);
        fail_queued(node, "the server is shutting down");
        raft_close(&node->raft, raft_closed);
    }
}

static void transfer_done(struct raft_transfer *req)
{
    struct sch_node *node = req->data;
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&node->raft, &leader, &address);
    gy_log_info("leadership transfer finished", "leader=%llu", (unsigned long long)leader);
    free(req);
    do_close(node);
}

static void stop_timeout_cb(uv_timer_t *timer)
{
    do_close(timer->data);
}

void sch_node_stop(struct sch_node *node, void (*cb)(struct sch_node *node))
{
    if (node->stop_requested)
        return;
    node->stop_requested = true;
    node->closing = true;
    node->close_cb = cb;
    if (node->storage_fault.down) {
        /* Raft closed, or closes now and then closes the handles (raft_closed). */
        if (node->raft_close_done)
            close_handles(node);
        else
            do_close(node);
        return;
    }
    if (!node->raft_started) {
        /* Already closing after a failed start: the callback still runs at the end. */
        return;
    }
    fail_queued(node, "the server is shutting down");
    /* A planned stop hands leadership over so the cluster does not wait for an election
     * timeout. A transfer asked for through the API and still under way is given up
     * (raft_close ends it). */
    raft_id target = node->transfer == NULL ? transfer_target(node) : 0;
    if (target != 0) {
        struct raft_transfer *req = gy_xcalloc(1, sizeof(*req));
        req->data = node;
        if (raft_transfer(&node->raft, req, target, transfer_done) == 0) {
            gy_log_info("transferring leadership before exit", "to=%llu",
                        (unsigned long long)target);
            /* raft_transfer gives up after an election timeout; this is a backstop. */
            uv_timer_start(&node->stop_timer, stop_timeout_cb, 3ull * node->cfg.election_ms, 0);
            return;
        }
        free(req);
    }
    do_close(node);
}
