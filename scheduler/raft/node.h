/* The control-plane server's Raft node: libraft with its libuv storage and TCP transport
 * on the server's loop, the state machine, group commit of proposals, linearizable-read
 * barriers, membership changes, cluster identity in the data directory, and graceful
 * leadership transfer on shutdown. */
#ifndef GANTRY_SCHEDULER_RAFT_NODE_H
#define GANTRY_SCHEDULER_RAFT_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "common/error.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/fsm.h"
#include "scheduler/raft/libraft_compat.h"
#include "scheduler/raft/verify.h"

/* Defaults chosen for servers on one LAN (docs/operations.md, "Timing"). */
#define SCH_DEFAULT_ELECTION_MS        200
#define SCH_DEFAULT_HEARTBEAT_MS       40
#define SCH_DEFAULT_VERIFY_INTERVAL_MS 30000
/* The free space of the data directory below which client writes are refused (--min-free-space). */
#define SCH_DEFAULT_MIN_FREE_BYTES   ((uint64_t)64 << 20)
#define SCH_DEFAULT_CONNECT_RETRY_MS 100
/* Carries across a fresh start after a disk fault how many there were lately (node.c). */
#define SCH_RESTARTS_ENV               "GANTRY_STORAGE_RESTARTS"
#define SCH_DEFAULT_SNAPSHOT_THRESHOLD 50000
#define SCH_DEFAULT_SNAPSHOT_TRAILING  4096
/* A snapshot is also taken once this many bytes of log entries were applied since the last
 * one, and the log kept after it holds at most an eighth of that: libraft keeps every entry
 * since the last snapshot in memory, so this bounds the log's share of memory whatever the
 * size of the entries. */
#define SCH_DEFAULT_SNAPSHOT_BYTES (16u * 1024u * 1024u)
/* At most this many commands share one entry. */
#define SCH_GROUP_MAX 512
/* Group commit: while this many entries are on their way to a majority, new proposals
 * wait and then travel together in the next entry. Measured on 2 cores with three servers
 * on one disk: 4 gave the best throughput at 16 clients (1 and 2 leave the disk idle between
 * round trips; 8 makes entries too small to amortise the sync). */
#define SCH_INFLIGHT_MAX 4
/* A proposal that may wait (sch_node_propose_lazy) waits up to this long for one that may
 * not, and travels in its entry. */
#define SCH_LAZY_WAIT_MS 20
/* The state database commits what was applied at most this often: the Raft log, not the
 * file, is what is durable (the file is rebuilt from it after a restart), and a page that
 * many applies change in a row is then written once instead of once per loop turn. */
#define SCH_FLUSH_EVERY_MS 10

struct sch_node_config {
    uint64_t id;
    const char *data_dir;
    const char *raft_addr;
    const char *api_addr;
    const char *agent_addr;
    const char *bootstrap; /* "1=HOST:PORT,2=HOST:PORT" for a new cluster, or NULL */
    bool joining;          /* started with --join: no bootstrap, wait to be added */
    /* --restore: a snapshot file whose state seeds this new cluster (bootstrap must name
     * this server alone); keep_cluster_id keeps the file's cluster id instead of a new one. */
    const char *restore_path;
    bool keep_cluster_id;
    /* --force-new-cluster: the Raft configuration becomes this server alone (raft_recover)
     * before the start, keeping the log and the state (docs/operations.md, "Disaster
     * recovery"). */
    bool force_new_cluster;
    unsigned election_ms;
    unsigned heartbeat_ms;
    unsigned connect_retry_ms;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    uint64_t snapshot_bytes;     /* 0: entry counts alone decide */
    uint64_t verify_interval_ms; /* divergence checks while leading; 0: on demand only */
    uint64_t min_free_bytes;     /* the NOSPACE alarm's reserve; 0: never raised */
    /* A new cluster's network and node subnet size (--cluster-network, --node-subnet-size):
     * NULL and 0 for the state machine's defaults. */
    const char *cluster_network;
    unsigned node_prefix;
};

/* Whether this server's NOSPACE alarm stands; msg (if not NULL) gets a sentence for the
 * client that names the directory, its free space and the reserve. */
bool sch_node_nospace(const struct sch_node *node, char *msg, size_t len);

/* Called when a proposal is settled: status 0 with the state machine's result (valid only
 * during the call; result->code tells whether the command was applied), or a negative
 * gy_code (GY_EUNAVAILABLE: leadership lost or no leader) with a message. */
typedef void (*sch_propose_cb)(void *data, int status, const struct sch_result *result,
                               const char *message);
/* Called when a read barrier or a membership change is settled (0 or a negative gy_code). */
typedef void (*sch_done_cb)(void *data, int status, const char *message);
/* Called when a leadership transfer is settled: status 0 with the id of the server that
 * leads now, or a negative gy_code with a message. */
typedef void (*sch_transfer_cb)(void *data, int status, uint64_t leader, const char *message);

struct sch_proposal;
struct sch_waiter;
struct sch_transfer;

/* One server of the Raft configuration as the leader sees it (sch_node_members). */
struct sch_member {
    uint64_t id;
    char address[256]; /* Raft address */
    int role;          /* RAFT_VOTER, RAFT_STANDBY or RAFT_SPARE */
    bool leader;       /* this server, the leader */
    /* Heard from within the last election timeout (always true for the leader itself). */
    bool reachable;
    /* The last log index the leader knows the server stored (its own last index for the
     * leader). */
    uint64_t match_index;
};

struct sch_node_stats {
    uint64_t proposals;      /* commands proposed */
    uint64_t entries;        /* raft entries they travelled in */
    uint64_t barriers;       /* read barriers issued */
    uint64_t leader_changes; /* times the known leader changed */
    uint64_t queue_ns;       /* time proposals waited for their entry (group commit) */
    uint64_t entry_ns;       /* time entries took from raft_apply to applied */
    uint64_t entries_done;   /* entries applied (or failed) of those proposed here */
};

struct sch_node {
    uv_loop_t *loop;
    /* The data directory's free space, looked at every second: below cfg.min_free_bytes the
     * NOSPACE alarm stands (sch_node_nospace) and client writes are refused until it is
     * back above (docs/operations.md, "Storage faults"). */
    struct {
        uint64_t free_bytes;
        uint64_t checked_ms;
        bool alarm;
        uint64_t raised_total;
    } space;
    /* The disk failed a write of the Raft log or the state database (full to the last byte,
     * an I/O error): Raft is closed, so the server takes no part in the cluster, while its
     * API serves ?stale reads and relays the rest to the last leader it knew; once a probe
     * write succeeds again, on_restart runs and the server starts afresh from its data
     * directory (docs/operations.md, "Storage faults"). */
    struct {
        bool down;
        char why[512];
        uint64_t leader;   /* the leader known when it failed (0: none, or this server) */
        uint64_t since_ms; /* uv_now() when it failed */
        uint64_t probed_ms;
        uint64_t failures_total;
    } storage_fault;
    struct sch_node_config cfg;
    char raft_dir[4096];
    char cluster_id[80]; /* from the data directory, or "" before the cluster has one */
    int lock_fd;         /* holds the data directory's lock until the process exits */

    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm raft_fsm;
    struct sch_fsm fsm;
    bool raft_started;
    bool io_open;         /* io and transport hold memory until sch_node_release */
    bool raft_close_done; /* raft_close called back */
    /* libraft's own storage functions, which the ones node.c puts in io call (storage_wrap),
     * the snapshot syncs under way, and the storage close that waits for them. */
    struct {
        int (*load)(struct raft_io *io, raft_term *term, raft_id *voted_for,
                    struct raft_snapshot **snapshot, raft_index *start_index,
                    struct raft_entry *entries[], size_t *n_entries);
        int (*snapshot_put)(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                            const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);
        int (*snapshot_get)(struct raft_io *io, struct raft_io_snapshot_get *req,
                            raft_io_snapshot_get_cb cb);
        void (*close)(struct raft_io *io, raft_io_close_cb cb);
        int (*append)(struct raft_io *io, struct raft_io_append *req,
                      const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
        int (*truncate)(struct raft_io *io, raft_index index);
        int (*set_term)(struct raft_io *io, raft_term term);
        int (*set_vote)(struct raft_io *io, raft_id server_id);
    } storage;

    unsigned syncs_pending;
    struct sch_libraft_match match;    /* a follower's answers claim no more than they prove */
    struct sch_verify verify;          /* divergence checks (verify.h) */
    raft_io_close_cb storage_close_cb; /* set while the storage close waits for the syncs */

    uv_check_t flush;  /* sends grouped proposals and barriers once per loop turn */
    uv_timer_t duties; /* leader duties and leader-change tracking */
    uv_timer_t stop_timer;

    struct sch_proposal *queue_head, *queue_tail;
    size_t queued;
    struct sch_proposal *lazy_head, *lazy_tail; /* waiting to share an entry */
    uv_timer_t lazy_timer;                      /* sends them alone after SCH_LAZY_WAIT_MS */
    struct sch_waiter *readers;                 /* waiting for the next barrier */
    unsigned inflight_entries;
    uint64_t flushed_at; /* uv_now() of the last commit of the state database */

    bool init_inflight;
    bool self_inflight;
    uint64_t self_checked; /* fsm.applied + 1 when this server's row was last found right */
    raft_id last_leader;
    uint64_t seen_restores;
    bool cluster_checked;
    /* The state was seeded from a snapshot file (--restore, DIR/restored names the lineage
     * of that database): until libraft holds a snapshot of it, the log alone does not carry
     * that state, so joins wait (sch_node_add_server) and the next apply takes one. */
    uint64_t seeded_lineage;
    struct sch_transfer *transfer; /* a leadership transfer asked for through the API */
    bool snapshot_due;          /* the threshold was lowered so the next apply takes a snapshot */
    unsigned inflight_barriers; /* raft_barrier requests not yet called back */
    uint64_t close_deadline;    /* uv_now() after which closing waits no longer */

    /* Set by the owner: runs after every applied command or restore. */
    void (*on_applied)(void *data);
    /* Set by the owner: runs (from a timer) when the server must stop, e.g. its data
     * directory belongs to another cluster. exit_code is then non-zero. */
    void (*on_fatal)(void *data);
    /* Set by the owner: runs once the disk that failed takes writes again; the server then
     * stops and starts afresh (see storage_fault). */
    void (*on_restart)(void *data);
    void *on_applied_data;

    bool closing;
    bool stop_requested;
    int exit_code;
    void (*close_cb)(struct sch_node *node);
    struct sch_node_stats stats;
};

/* Prepares the data directory (checking its server id and cluster id), starts libraft and
 * the timers. The loop must then run. */
int sch_node_start(struct sch_node *node, uv_loop_t *loop, const struct sch_node_config *cfg,
                   struct gy_error *err);

/* Prepares cfg->data_dir from the snapshot file cfg->restore_path as a first start with
 * --restore would (the file checked first, the state seeded, a Raft configuration naming
 * this server alone) and returns without serving: the server then starts from the
 * directory with no --restore or --bootstrap. */
int sch_node_restore_only(const struct sch_node_config *cfg, struct gy_error *err);

/* Transfers leadership first when this server leads a cluster of several voters, then
 * closes Raft and every handle; cb runs when all is released. */
void sch_node_stop(struct sch_node *node, void (*cb)(struct sch_node *node));
/* Frees what libraft's storage and transport hold and lets go of the data directory. Called
 * once the loop has run to its end (also after a failed start), since their last handles
 * close after raft_close has called back. */
void sch_node_release(struct sch_node *node);

bool sch_node_is_leader(struct sch_node *node);
/* True while the disk failed a write (see storage_fault); msg gets what failed and what
 * the server does about it. */
bool sch_node_storage_down(const struct sch_node *node, char *msg, size_t len);
/* The known leader's id (0 when none) and its API address from the replicated servers
 * table (copied into buf; "" when not yet known). */
uint64_t sch_node_leader(struct sch_node *node, char *api_buf, size_t len);

/* Proposes a command (packed at once: the caller keeps cmd). Commands proposed in the same
 * loop turn share one Raft entry. Fails at once with -GY_EUNAVAILABLE when not the leader. */
int sch_node_propose(struct sch_node *node, const Gantry__Command *cmd, sch_propose_cb cb,
                     void *data, struct gy_error *err);

/* Like sch_node_propose, for work the leader does on its own (the reconciler's conditions
 * and placements): the command waits up to SCH_LAZY_WAIT_MS for a proposal that cannot
 * wait and travels in the same entry, so under load it adds no entry of its own, which
 * costs every server a disk write and a round trip. */
int sch_node_propose_lazy(struct sch_node *node, const Gantry__Command *cmd, sch_propose_cb cb,
                          void *data, struct gy_error *err);

/* Waits until a barrier issued after this call is applied, which proves this server is
 * still the leader and its state holds every write acknowledged before. */
int sch_node_barrier(struct sch_node *node, sch_done_cb cb, void *data, struct gy_error *err);

/* Adds a server (as a spare, then promoted to voter once caught up) or confirms it is one
 * already with that address. */
int sch_node_add_server(struct sch_node *node, uint64_t id, const char *raft_addr, sch_done_cb cb,
                        void *data, struct gy_error *err);
int sch_node_remove_server(struct sch_node *node, uint64_t id, sch_done_cb cb, void *data,
                           struct gy_error *err);

/* Hands leadership to voter id, or with id 0 to the reachable voter with the longest log
 * (Raft thesis 3.10, libraft's raft_transfer). Fails at once with -GY_EUNAVAILABLE when
 * this server does not lead, -GY_ENOTFOUND for an id outside the configuration,
 * -GY_ECONFLICT for a server that is not a voter, for id 0 when no other voter is
 * reachable, or while another transfer is under way. cb runs once the target leads
 * (status 0), or when the transfer failed: the target did not take over within an election
 * timeout (-GY_ETIMEOUT, this server still leads), another server won (-GY_ECONFLICT), or
 * the server stops (-GY_EUNAVAILABLE). With id being this server cb runs at once. */
int sch_node_transfer(struct sch_node *node, uint64_t id, sch_transfer_cb cb, void *data,
                      struct gy_error *err);

/* The servers of the configuration as this leader sees them, in configuration order, in a
 * malloc'd array the caller frees. -GY_EUNAVAILABLE when this server does not lead. */
int sch_node_members(struct sch_node *node, struct sch_member **out, size_t *n,
                     struct gy_error *err);

/* Records the cluster id learned from the cluster (on join) in the data directory. */
int sch_node_set_cluster_id(struct sch_node *node, const char *cluster_id, struct gy_error *err);

const char *sch_node_role_name(int role);

#endif
