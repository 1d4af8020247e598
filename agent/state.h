/* The agent's local state in SQLite (DATA_DIR/agent.db): the replicas it was assigned and
 * what it last knew of each, so a restarted agent adopts its containers instead of
 * starting duplicates, plus a few facts about the node (cluster id). */
#ifndef GANTRY_AGENT_STATE_H
#define GANTRY_AGENT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct agent_state;

/* One assigned replica. spec is the packed Gantry__WorkloadSpec it was assigned with. */
struct agent_replica_row {
    char *id;
    char *workload;
    uint64_t generation;
    uint8_t *spec;
    size_t spec_len;
    int state; /* Gantry__ReplicaState */
    int ready;
    uint32_t restarts;
    int exit_code;
    int exit_signal;
    int oom_killed;
    int64_t started_ms;
    int64_t changed_ms;
    char *reason;
    char *address; /* the replica's IPv4 address on the node's bridge, or "" */
};

/* Opens (creating if needed) DATA_DIR/agent.db, checks it (PRAGMA quick_check) and
 * migrates its schema. A damaged file, or one that is not a database, is renamed to
 * agent.db.corrupt-<UTC time> (with its write-ahead log), logged as an error naming both
 * paths, and replaced by an empty database: the caller rebuilds its records (see
 * agent_state_moved_aside). Fails (err names the path and what to do) when no usable
 * database can be had: a read-only directory, a full disk, a damaged file that cannot be
 * moved aside, or a schema newer than this agent's (GY_EINVAL). */
int agent_state_open(const char *data_dir, struct agent_state **out, struct gy_error *err);
void agent_state_close(struct agent_state *st);

/* DATA_DIR/agent.db. */
const char *agent_state_path(const struct agent_state *st);
/* Where agent_state_open moved a damaged file, or NULL when it found none. */
const char *agent_state_moved_aside(const struct agent_state *st);

/* Every call that fails fills err with a message that begins with the problem and the
 * file, "agent database: disk full at DATA_DIR/agent.db", followed by the operation and
 * SQLite's words in parentheses. The code is GY_EIO for the file's faults (sys_errno
 * ENOSPC when the disk is full, EIO for an I/O error, EROFS when read-only),
 * GY_EUNAVAILABLE when another process holds a lock past the busy timeout. A failed
 * write changes nothing: SQLite rolls the statement back. */

/* One small durable write ("write_probe" in meta): succeeds once writes do again. */
int agent_state_probe(struct agent_state *st, int64_t now_ms, struct gy_error *err);

/* Node facts ("cluster_id", "node_name"). *value is NULL when unset; the caller frees it. */
int agent_state_meta_get(struct agent_state *st, const char *key, char **value,
                         struct gy_error *err);
int agent_state_meta_set(struct agent_state *st, const char *key, const char *value,
                         struct gy_error *err);

/* Inserts or replaces one replica row (durably: the write is committed on return). */
int agent_state_replica_put(struct agent_state *st, const struct agent_replica_row *row,
                            struct gy_error *err);
int agent_state_replica_delete(struct agent_state *st, const char *id, struct gy_error *err);
/* All rows, ordered by id; free with agent_replica_rows_free. */
int agent_state_replica_list(struct agent_state *st, struct agent_replica_row **rows, size_t *n,
                             struct gy_error *err);
void agent_replica_row_free(struct agent_replica_row *row);
void agent_replica_rows_free(struct agent_replica_row *rows, size_t n);

#endif
