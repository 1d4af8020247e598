/* The replicated state machine: one SQLite database per server (workloads with their spec
 * and generation, replicas, nodes, servers, the audit trail) changed only by decoded Raft
 * commands, each in one transaction. A server's database file is its durable state, with
 * the Raft index it holds recorded in it: its snapshots are markers that name that file,
 * and a full image (header and database) is made only for a follower that needs one, for
 * a backup, or by an in-memory state. */
#ifndef GANTRY_SCHEDULER_STATE_FSM_H
#define GANTRY_SCHEDULER_STATE_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <sqlite3.h>
#include <uv.h>

#include "common/error.h"
#include "proto/gantry.pb-c.h"
#include "scheduler/state/arena.h"

/* Version of the tables below; a snapshot with another version is refused on restore. */
#define SCH_FSM_SCHEMA_VERSION 1

/* The cluster network and node subnet size of a cluster whose InitCluster named none
 * (docs/network.md): clear of podman's 10.88/16, Docker's 172.17/16 and the usual
 * Kubernetes pod ranges 10.42/16 and 10.244/16. */
#define SCH_CLUSTER_NETWORK_DEFAULT "10.73.0.0/16"
#define SCH_NODE_PREFIX_DEFAULT     24
/* The audit trail keeps this many of the newest events, pruned every PRUNE_EVERY events. */
#define SCH_FSM_EVENTS_KEEP        50000
#define SCH_FSM_EVENTS_PRUNE_EVERY 1000
/* How many outcomes of applied commands wait for their proposer (see sch_fsm_result_claim). */
#define SCH_FSM_RESULT_SLOTS 4096
/* Prepared statements kept for the less frequent commands. */
#define SCH_FSM_STMT_CACHE 96
/* Entries a follower's state may hold back while it waits for an image to rebuild from. */
#define SCH_FSM_HOLD_BYTES (256u << 20)
/* Digests kept of the latest CheckDigest entries, for the leader to ask for. */
#define SCH_FSM_DIGEST_NOTES 16
/* Entries a follower may hold unapplied, in bytes (see sch_fsm_drain). */
#define SCH_FSM_DEFER_BYTES (4u * 1024u * 1024u)
/* Frames of a file-backed database's write-ahead log after which a commit copies them into
 * the database file (see sch_fsm_flush). */
#define SCH_FSM_WAL_FRAMES 1024
/* Page cache of a file-backed state database, in KiB (see sch_fsm_init_file). */
#define SCH_FSM_CACHE_KIB 2048

enum sch_outcome {
    SCH_OUTCOME_CREATED = 0,
    SCH_OUTCOME_UPDATED,
    SCH_OUTCOME_UNCHANGED,
};

const char *sch_outcome_name(enum sch_outcome outcome);

struct sch_apply_outcome {
    char *name;
    enum sch_outcome outcome;
    uint64_t generation;
};

/* What one command did. code is 0 or a negative gy_code; a command with a non-zero code
 * changed nothing. A batch has one sub-result per command, in order. */
struct sch_result {
    int code;
    char *message; /* set when code != 0 */
    struct sch_apply_outcome *outcomes;
    size_t n_outcomes;
    struct sch_result *batch;
    size_t n_batch;
    uint64_t last_event; /* sequence number of the last audit event it wrote, or 0 */
    size_t slot;         /* private: position in the result ring */
};

void sch_result_free(struct sch_result *result);

struct sch_fsm;

/* Hooks the server sets to learn about applied state. Both run on the loop thread, after
 * the transaction committed (or the snapshot was restored). */
struct sch_fsm_hooks {
    /* True when results should be kept for a proposer (the server is the leader). */
    bool (*want_result)(void *data);
    /* Called after every applied command and after a restore. */
    void (*applied)(void *data, struct sch_fsm *fsm);
    /* Called when libraft takes a snapshot (before it is written). */
    void (*snapshot)(void *data, struct sch_fsm *fsm);
    void *data;
};

struct sch_fsm {
    sqlite3 *db;
    struct sch_fsm_hooks hooks;
    uint64_t applied;    /* commands applied since start or restore */
    uint64_t rejected;   /* of which rejected (bad entry or failed check) */
    uint64_t last_event; /* highest audit event sequence number */
    uint64_t snapshots;  /* snapshots taken */
    uint64_t restores;   /* snapshots restored */
    uint64_t log_bytes;  /* bytes of log entries applied since the last snapshot or restore */
    /* The database failed to read or write (disk full, I/O error): this server can no
     * longer apply commands as the others do and must stop. */
    bool storage_failed;
    /* Counters the leader watches to skip work (in memory only, not part of the state):
     * fleet_epoch moves when the desired state or an assignment may have changed
     * (workloads, nodes, placements, stops, lost replicas, restores); status_epoch when
     * only replica reports were applied. */
    uint64_t fleet_epoch;
    uint64_t status_epoch;
    /* Moves when a replica is removed and gives its node's resources back. */
    uint64_t room_epoch;
    /* Workloads whose desired or actual replicas changed since the leader last took the
     * set (sch_fsm_dirty_take), or dirty_all when a change may concern any of them (nodes,
     * a restore). In memory only. */
    char **dirty;
    size_t n_dirty;
    size_t cap_dirty;
    bool dirty_all;
    struct sch_result *slots[SCH_FSM_RESULT_SLOTS];
    /* Where log entries are decoded (reset after each apply). */
    struct sch_arena arena;
    sqlite3_stmt *stmts[16];
    /* Statements prepared on first use and kept (sch_fsm_stmt), finalized with the
     * database. */
    struct {
        const char *sql;
        sqlite3_stmt *stmt;
    } cache[SCH_FSM_STMT_CACHE];
    size_t n_cache;
    /* Committed entries given to a follower and not applied yet, oldest first, and their
     * total size (see sch_fsm_drain). */
    struct sch_fsm_deferred {
        void *buf;
        size_t len;
        uint64_t index;
    } * deferred;
    size_t n_deferred;
    size_t cap_deferred;
    size_t deferred_bytes;
    /* Whether a follower's applies may wait for sch_fsm_drain (servers set it). */
    bool defer_applies;
    bool draining;
    /* Divergence checks: the index of the entry being applied (0 outside an apply, or when
     * indexes are not tracked), the digests noted at the last CheckDigest entries, oldest
     * first, and a count that moves whenever a ReportDivergence is applied. */
    uint64_t applying_index;
    struct sch_fsm_digest_note {
        uint64_t index;
        uint64_t digest;
    } digests[SCH_FSM_DIGEST_NOTES];
    size_t n_digests;
    uint64_t divergence_epoch;
    /* The state is held for a rebuild (sch_fsm_hold): committed entries wait, up to
     * SCH_FSM_HOLD_BYTES, for the image that replaces the database; rebuilds counts them. */
    bool holding;
    uint64_t rebuilds;
    /* The database file failed its check at open (damaged_path: where it was moved) and a
     * Raft snapshot marker needs the file that was: the state waits, held, for the leader's
     * image of at least image_needed (sch_fsm_rebuild); 0 when nothing waits. */
    char damaged_path[4200];
    uint64_t image_needed;
    uint64_t image_lineage; /* the lineage of the file the marker names, which it keeps */
    /* Frames in the write-ahead log of a file-backed database. */
    uint64_t wal_frames;
    /* The database file ("" when the state lives in memory) and the name a restore writes
     * to before it replaces it. */
    char path[4096];
    char spare_path[4096];
    /* Where the database stands in the Raft log. raft_applied points at libraft's last
     * applied index (the server sets it; NULL leaves indexes untracked), so the entry being
     * applied is *raft_applied + 1. applied_index is the index of the last entry executed
     * (or of the last snapshot), stored_index the one the database file records (it is
     * written with each commit), skip_through the index up to which entries libraft
     * replays are already in the database (after a restart or a restore), and lineage the
     * random id the file was created with. */
    const raft_index *raft_applied;
    uint64_t applied_index;
    uint64_t stored_index;
    uint64_t skip_through;
    uint64_t skipped;
    uint64_t lineage;
    /* The copies of the write-ahead log into the database file run on libuv's thread pool
     * (sch_fsm_set_loop), through a connection of their own, so that neither the copy nor
     * its two syncs hold up the loop. ckpt_lock is held while one runs: replacing the file
     * waits for it. Without a loop the copies run on the caller's thread. */
    uv_loop_t *loop;
    sqlite3 *ckpt_db;
    uv_work_t ckpt_work;
    uv_mutex_t ckpt_lock;
    bool ckpt_ready; /* ckpt_lock initialized */
    bool ckpt_running;
    bool ckpt_closing;
    int ckpt_rc;
    uint64_t checkpoints;
};

/* A prepared statement of the state database for sql, reset and with its bindings
 * cleared, kept across calls (and across commands) until the database is closed or
 * replaced by a restore: the caller must not finalize it, and must reset it before it
 * asks for the same sql again. Statements are found by the address of sql, so pass string
 * literals. NULL when sql does not compile. */
sqlite3_stmt *sch_fsm_stmt(struct sch_fsm *fsm, const char *sql);

/* Opens an empty in-memory database with the current schema. */
int sch_fsm_init(struct sch_fsm *fsm, struct gy_error *err);
/* Opens the database in the file path, or creates it with the current schema when there is
 * none (or what is there is not a state database of this schema), with a page cache of
 * SCH_FSM_CACHE_KIB: the state then costs memory only for its cached pages. The file is
 * this server's durable state up to the index it records: commits are not synced, but
 * the write-ahead log keeps it consistent across a crash, and sch_fsm_sync_files makes it
 * durable before libraft records a snapshot (a marker) that relies on it. A restore
 * writes the image to path.1, syncs it and renames it over path. */
int sch_fsm_init_file(struct sch_fsm *fsm, const char *path, struct gy_error *err);
/* Runs the copies of the write-ahead log into the file on loop's thread pool from now on. */
int sch_fsm_set_loop(struct sch_fsm *fsm, uv_loop_t *loop);
/* Empties a file-backed database (for a server whose Raft storage holds no snapshot, so
 * that libraft replays the whole log into it). */
int sch_fsm_reset(struct sch_fsm *fsm, struct gy_error *err);
/* Syncs the database file at path and its write-ahead log to disk. Touches no sch_fsm, so
 * it may run on another thread. 0 or a negative errno. */
int sch_fsm_sync_files(const char *path);
void sch_fsm_close(struct sch_fsm *fsm);

/* Executes one decoded command in one transaction and describes the outcome in *result
 * (which the caller frees with sch_result_free). Returns 0 when the command was applied,
 * or result->code when it was rejected and changed nothing. */
int sch_fsm_execute(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result);

/* Commits the commands applied since the last call (sch_fsm_execute leaves them in an open
 * transaction). Returns -1 and sets storage_failed when that fails. */
int sch_fsm_flush(struct sch_fsm *fsm);

/* Applies the entries libraft gave this follower and that wait (defer_applies). libraft
 * 0.15 applies the committed entries a follower learns of before it acknowledges the new
 * ones, so every acknowledgement, and with it every commit, waited for the follower's
 * SQLite work. A follower's apply callback therefore only copies the entry; the server
 * drains them once per loop turn, after the acknowledgements went out, and before anything
 * reads the state (API requests, snapshots, restores, leadership). A leader applies at
 * once, in order after whatever still waits. */
void sch_fsm_drain(struct sch_fsm *fsm);

/* Applies an encoded log entry (scheduler/state/command.h); the raft_fsm apply callback. A
 * malformed entry is rejected and logged, never fatal: every server rejects it alike. */
int sch_fsm_apply_entry(struct sch_fsm *fsm, const void *buf, size_t len,
                        struct sch_result **result);

/* Takes ownership of a result handed to a raft_apply callback; free it with
 * sch_result_free. Results nobody claims are freed when their ring slot is reused. */
struct sch_result *sch_fsm_result_claim(struct sch_fsm *fsm, void *result);

/* Serializes the database behind a SnapshotHeader into one malloc'd buffer. */
int sch_fsm_snapshot_image(struct sch_fsm *fsm, void **out, size_t *len, struct gy_error *err);
/* Whether a snapshot is a marker (it names a database file rather than holding one). */
bool sch_fsm_is_marker(const void *buf, size_t len);
/* Replaces a marker that libraft loaded to send to a follower with a full image of the
 * database now (from raft_malloc, as libraft frees it); the image may hold entries past
 * the snapshot's index, which the follower then skips. */
int sch_fsm_image_for_marker(struct sch_fsm *fsm, struct raft_buffer *buf, struct gy_error *err);
/* Replaces the database with a snapshot image (copied; buf stays the caller's). A header
 * of another format or schema version is refused and leaves the state as it was. */
int sch_fsm_restore_image(struct sch_fsm *fsm, const void *buf, size_t len, struct gy_error *err);

/* What a snapshot image holds (sch_fsm_image_check). */
struct sch_image_info {
    uint64_t applied_index;  /* the Raft index of the cluster it was taken from */
    uint64_t database_bytes; /* the size of its database */
    char cluster_id[80];     /* "" when that cluster had none yet */
    uint64_t workloads;
    uint64_t nodes;
    uint64_t replicas;
};

/* Checks a snapshot image (a backup from GET /v1/cluster/snapshot) and changes nothing: a
 * Gantry header of an image (not a marker) of this schema version, then a database of the
 * size the header gives that passes SQLite's integrity check and holds the tables of this
 * schema. The error names the problem; row contents carry no checksum, so a flipped bit
 * inside a value passes. */
int sch_fsm_image_check(const void *buf, size_t len, struct sch_image_info *info,
                        struct gy_error *err);
/* Makes a checked image the first state of a new cluster (gantry-scheduler --restore):
 * replaces the database with it as sch_fsm_restore_image does, then sets its position to
 * index 0 of a new lineage (the new cluster's log starts over), empties the servers table
 * (the new cluster's servers record themselves), drops the cluster id unless
 * keep_cluster_id (the first leader then names a new cluster), records an audit event and
 * syncs the file. A failure leaves a database that must not be used: the caller stops. */
int sch_fsm_seed(struct sch_fsm *fsm, const void *buf, size_t len, bool keep_cluster_id,
                 struct gy_error *err);

/* Fills a raft_fsm (version 2) whose callbacks drive this state machine. */
void sch_fsm_raft(struct sch_fsm *fsm, struct raft_fsm *out);

/* The API's names of a node state and of a replica state (Gantry__NodeState,
 * Gantry__ReplicaState values); "unknown" for any other value. */
const char *sch_node_state_name(int state);
const char *sch_replica_state_name(int state);

/* The node condition a SetNodeCondition command may set (the only kind so far): the node's
 * agent reports that its own database refuses writes, and placement leaves the node out. */
#define SCH_NODE_CONDITION_STORAGE "StoragePressure"
/* The longest message of a node condition, in bytes. */
#define SCH_NODE_CONDITION_MESSAGE_MAX 512

/* True when message may be a node condition's message: 1 to SCH_NODE_CONDITION_MESSAGE_MAX
 * bytes of printable ASCII (0x20 to 0x7e), so that it is shown as it is in JSON, tables and
 * logs. Text from an agent is checked with it before it is proposed, and by the state
 * machine again. */
bool sch_node_condition_message_valid(const char *message);

/* The cluster id recorded by InitCluster, or "" when none yet; copied into buf. */
void sch_fsm_cluster_id(struct sch_fsm *fsm, char *buf, size_t len);
/* Copies server id's recorded API address into buf ("" when the server has no row). */
void sch_fsm_server_api_address(struct sch_fsm *fsm, uint64_t id, char *buf, size_t len);
/* True when server id's row records exactly these three addresses. */
bool sch_fsm_server_recorded(struct sch_fsm *fsm, uint64_t id, const char *raft_address,
                             const char *api_address, const char *agent_address);

/* Hands the dirty workload set to the caller (who frees each name and the array) and
 * starts a new one. *all is true when every workload must be looked at. */
void sch_fsm_dirty_take(struct sch_fsm *fsm, char ***names, size_t *n, bool *all);

/* A hash of the whole state (every table, in key order), to compare servers. */
uint64_t sch_fsm_digest(struct sch_fsm *fsm);
/* The digest this server noted when it applied the CheckDigest entry at index: true and
 * *digest set, or false when it has no note of that index (not applied yet, or too old). */
bool sch_fsm_digest_at(const struct sch_fsm *fsm, uint64_t index, uint64_t *digest);
/* The newest CheckDigest entry this server applied: its index and digest, or false. */
bool sch_fsm_digest_latest(const struct sch_fsm *fsm, uint64_t *index, uint64_t *digest);
/* Holds (or releases) a follower's applies while its state is rebuilt: entries wait
 * instead of being executed, and the wait ends with sch_fsm_rebuild or a release (which
 * applies them). */
void sch_fsm_hold(struct sch_fsm *fsm, bool hold);
/* Replaces the database with image (a full snapshot image of the same cluster, from the
 * leader) and applies the entries that waited past it, then ends the hold. The image must
 * hold every entry this database executed, and none past stored, the last entry this server's
 * log holds on disk (GY_EUNAVAILABLE otherwise: ask again later); a foreign or damaged image
 * is refused and changes nothing. */
int sch_fsm_rebuild(struct sch_fsm *fsm, const void *image, size_t len, uint64_t stored,
                    struct gy_error *err);
/* Whether server id is recorded as diverged (ReportDivergence), and at which checked
 * index; false when it is not, or the state cannot be read. */
bool sch_fsm_server_diverged(struct sch_fsm *fsm, uint64_t id, uint64_t *index);
/* The servers recorded as diverged, up to max of them into ids; returns how many there
 * are, or a negative gy_code when the state cannot be read. */
int sch_fsm_diverged_servers(struct sch_fsm *fsm, uint64_t *ids, size_t max, struct gy_error *err);

#endif
