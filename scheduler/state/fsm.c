/* The state machine on SQLite: schema, command execution, snapshots and the raft_fsm
 * callbacks. Everything here runs on the loop thread, except the copies of the write-ahead
 * log into the file (checkpoint_work), which use a connection of their own on the thread
 * pool under ckpt_lock. */
#include "scheduler/state/fsm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "common/cidr.h"
#include "common/hash.h"
#include "common/log.h"
#include "scheduler/state/command.h"

#define SNAPSHOT_MAGIC  0x31535947u /* "GYS1" */
#define SNAPSHOT_FORMAT 1           /* header, then a database image */
#define SNAPSHOT_MARKER 2           /* header only: the database file holds the state */

static const char *const schema_sql =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE servers (id INTEGER PRIMARY KEY, raft_address TEXT NOT NULL,"
    "  api_address TEXT NOT NULL, agent_address TEXT NOT NULL);"
    "CREATE TABLE workloads (name TEXT PRIMARY KEY, spec BLOB NOT NULL,"
    "  generation INTEGER NOT NULL, replicas INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE nodes (name TEXT PRIMARY KEY, cloud TEXT NOT NULL, region TEXT NOT NULL,"
    "  zone TEXT NOT NULL, labels TEXT NOT NULL, cpu_millis INTEGER NOT NULL,"
    "  memory_bytes INTEGER NOT NULL, pids INTEGER NOT NULL, cost REAL NOT NULL,"
    "  address TEXT NOT NULL, state INTEGER NOT NULL, reason TEXT NOT NULL,"
    "  registered_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE replicas (id TEXT PRIMARY KEY, workload TEXT NOT NULL,"
    "  generation INTEGER NOT NULL, node TEXT NOT NULL, state INTEGER NOT NULL,"
    "  ready INTEGER NOT NULL, restarts INTEGER NOT NULL, exit_code INTEGER NOT NULL,"
    "  exit_signal INTEGER NOT NULL, oom_killed INTEGER NOT NULL, address TEXT NOT NULL,"
    "  reason TEXT NOT NULL, changed_ms INTEGER NOT NULL);"
    /* generation and state too: the reconciler counts a workload's live replicas per
     * generation from the index alone (reconcile.c, SETTLED_SQL). */
    "CREATE INDEX replicas_by_workload ON replicas (workload, generation, state);"
    "CREATE INDEX replicas_by_node ON replicas (node);"
    "CREATE TABLE conditions (workload TEXT NOT NULL, kind TEXT NOT NULL,"
    "  message TEXT NOT NULL, time_ms INTEGER NOT NULL, PRIMARY KEY (workload, kind));"
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,"
    "  actor TEXT NOT NULL, kind TEXT NOT NULL, object TEXT NOT NULL,"
    "  message TEXT NOT NULL);";

/* Where the database stands in the Raft log (see struct sch_fsm): one row, local to each
 * server (the digest leaves it out), created in a database of an older image too. */
static const char *const position_sql =
    "CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 0),"
    "  applied_index INTEGER NOT NULL, lineage INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO position (id, applied_index, lineage)"
    "  VALUES (0, 0, random() & 9223372036854775807);";
static const char position_update_sql[] = "UPDATE position SET applied_index = ? WHERE id = 0";

/* Tables added after schema version 1, created when missing in a database that predates
 * them (a server's file, a snapshot image) as in a new one: the state of such a database is
 * the same with them empty. The digest counts them only when they hold rows (digest_of). */
static const char *const added_tables_sql =
    "CREATE TABLE IF NOT EXISTS node_conditions (node TEXT NOT NULL, kind TEXT NOT NULL,"
    "  message TEXT NOT NULL, time_ms INTEGER NOT NULL, PRIMARY KEY (node, kind));"
    /* The replica subnet each node reported (docs/network.md). */
    "CREATE TABLE IF NOT EXISTS node_networks (node TEXT PRIMARY KEY, subnet TEXT NOT NULL);"
    /* The WireGuard public key and port of each node that takes part in the tunnels
     * between clouds (docs/network.md). */
    "CREATE TABLE IF NOT EXISTS node_tunnels (node TEXT PRIMARY KEY, public_key TEXT NOT NULL,"
    "  port INTEGER NOT NULL);";

/* Prepared statements used on the hot path of applying workloads. */
enum {
    STMT_WORKLOAD_GET = 0,
    STMT_WORKLOAD_INSERT,
    STMT_WORKLOAD_UPDATE,
    STMT_EVENT_INSERT,
    STMT_COUNT,
};

static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_WORKLOAD_GET] = "SELECT spec, generation, replicas FROM workloads WHERE name = ?",
    [STMT_WORKLOAD_INSERT] = "INSERT INTO workloads (name, spec, generation, replicas,"
                             " created_ms, updated_ms) VALUES (?, ?, 1, ?, ?, ?)",
    [STMT_WORKLOAD_UPDATE] = "UPDATE workloads SET spec = ?, generation = generation + ?,"
                             " replicas = ?, updated_ms = ? WHERE name = ?",
    [STMT_EVENT_INSERT] = "INSERT INTO events (seq, time_ms, actor, kind, object, message)"
                          " VALUES (?, ?, ?, ?, ?, ?)",
};

const char *sch_outcome_name(enum sch_outcome outcome)
{
    switch (outcome) {
    case SCH_OUTCOME_CREATED:
        return "created";
    case SCH_OUTCOME_UPDATED:
        return "updated";
    default:
        return "unchanged";
    }
}

static void result_clear(struct sch_result *result)
{
    free(result->message);
    for (size_t i = 0; i < result->n_outcomes; i++)
        free(result->outcomes[i].name);
    free(result->outcomes);
    for (size_t i = 0; i < result->n_batch; i++)
        result_clear(&result->batch[i]);
    free(result->batch);
    memset(result, 0, sizeof(*result));
}

void sch_result_free(struct sch_result *result)
{
    if (result == NULL)
        return;
    result_clear(result);
    free(result);
}

/* Marks the result rejected with a message; returns the code for convenience. */
static int reject(struct sch_result *result, enum gy_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reject(struct sch_result *result, enum gy_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(result->message);
    if (vasprintf(&result->message, fmt, ap) < 0)
        result->message = NULL;
    va_end(ap);
    result->code = -(int)code;
    return result->code;
}

/* Errors of the storage rather than of the command: this server could no longer apply
 * commands as the others do. */
static void note_storage_error(struct sch_fsm *fsm)
{
    switch (sqlite3_errcode(fsm->db) & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
    case SQLITE_CORRUPT:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_NOTADB:
        if (!fsm->storage_failed)
            gy_log_error("state database failed", "error=\"%s\"", sqlite3_errmsg(fsm->db));
        fsm->storage_failed = true;
        break;
    default:
        break;
    }
}

static int reject_sql(struct sch_fsm *fsm, struct sch_result *result, const char *what)
{
    note_storage_error(fsm);
    return reject(result, GY_EIO, "%s: %s", what, sqlite3_errmsg(fsm->db));
}

/* A prepared statement for sql (a string constant: the cache is keyed by its address),
 * from the cache or prepared now; hand it back with stmt_put. NULL when it cannot be
 * prepared. *kept is false when the cache is full and the statement must be finalized. */
static sqlite3_stmt *stmt_get(struct sch_fsm *fsm, const char *sql, bool *kept)
{
    for (size_t i = 0; i < fsm->n_cache; i++) {
        if (fsm->cache[i].sql == sql) {
            *kept = true;
            return fsm->cache[i].stmt;
        }
    }
    sqlite3_stmt *stmt;
    *kept = fsm->n_cache < SCH_FSM_STMT_CACHE;
    if (sqlite3_prepare_v3(fsm->db, sql, -1, *kept ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, NULL) !=
        SQLITE_OK)
        return NULL;
    if (*kept) {
        fsm->cache[fsm->n_cache].sql = sql;
        fsm->cache[fsm->n_cache].stmt = stmt;
        fsm->n_cache++;
    }
    return stmt;
}

static void stmt_put(sqlite3_stmt *stmt, bool kept)
{
    if (kept) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    } else {
        sqlite3_finalize(stmt);
    }
}

/* Runs one statement without parameters (BEGIN, SAVEPOINT, ...). */
static int exec_sql(struct sch_fsm *fsm, const char *sql)
{
    bool kept;
    sqlite3_stmt *stmt = stmt_get(fsm, sql, &kept);
    if (stmt == NULL)
        return -1;
    int rc = sqlite3_step(stmt);
    stmt_put(stmt, kept);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static int prepare_all(struct sch_fsm *fsm, struct gy_error *err)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        if (sqlite3_prepare_v3(fsm->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &fsm->stmts[i],
                               NULL) != SQLITE_OK)
            return gy_error_set(err, GY_EINTERNAL, "prepare \"%s\": %s", stmt_sql[i],
                                sqlite3_errmsg(fsm->db));
    }
    return 0;
}

static void finalize_all(struct sch_fsm *fsm)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(fsm->stmts[i]);
        fsm->stmts[i] = NULL;
    }
    for (size_t i = 0; i < fsm->n_cache; i++)
        sqlite3_finalize(fsm->cache[i].stmt);
    fsm->n_cache = 0;
}

sqlite3_stmt *sch_fsm_stmt(struct sch_fsm *fsm, const char *sql)
{
    bool kept;
    sqlite3_stmt *stmt = stmt_get(fsm, sql, &kept);
    if (stmt == NULL)
        return NULL;
    if (!kept) {
        /* The cache is full: this caller cannot own a statement. */
        sqlite3_finalize(stmt);
        return NULL;
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return stmt;
}

static uint64_t query_u64(struct sch_fsm *fsm, const char *sql)
{
    sqlite3_stmt *stmt;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(fsm->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        v = (uint64_t)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* The database lives in SQLite's memdb VFS: one contiguous image, so a snapshot is a single
 * copy rather than a walk through the page cache (which stalled the loop for hundreds of
 * milliseconds on a 60 MB state), and a restored snapshot is the same kind of database as a
 * fresh one. The Raft log and snapshots on disk are what make the state durable. */
static int open_memdb(sqlite3 **db)
{
    /* Only the loop thread uses the database: SQLite's own locking is not needed. */
    return sqlite3_open_v2(
        "file:gantry-state?vfs=memdb", db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
}

/* A file-backed database holds only SCH_FSM_CACHE_KIB of pages in memory; the rest stays in
 * the kernel's page cache or on disk. Commits go to a write-ahead log that this module
 * copies into the file itself (checkpoint_start), on a connection of its own, never on
 * close; SQLite keeps the page cache valid across transactions as long as no other
 * connection writes, and the copy changes no content. synchronous = NORMAL: a commit is
 * not synced, but a copy syncs the log before it copies it into the database and the
 * database before the log is reused, so after a crash the file always holds some
 * consistent earlier state (with the index it recorded); sch_fsm_sync_files makes the
 * newest durable. (The data directory's lock keeps other processes out.) */
static int open_file_db(const char *path, sqlite3 **db)
{
    int rc = sqlite3_open_v2(
        path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return rc;
    char pragmas[300];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode = WAL;"
             " PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL;"
             " PRAGMA cache_size = -%d; PRAGMA mmap_size = 0; PRAGMA temp_store = MEMORY;",
             SCH_FSM_CACHE_KIB);
    if ((rc = sqlite3_exec(*db, pragmas, NULL, NULL, NULL)) != SQLITE_OK)
        return rc;
    return sqlite3_db_config(*db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
}

/* Counts the frames in the write-ahead log after each commit. */
static int wal_hook(void *data, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    ((struct sch_fsm *)data)->wal_frames = frames > 0 ? (uint64_t)frames : 0;
    return SQLITE_OK;
}

/* Removes a database file, its write-ahead log and its shared-memory index. */
/* PRAGMA quick_check: the pages, records and indexes of the file are consistent (a torn
 * or flipped page is found; it reads the whole file, a few milliseconds per megabyte). */
static bool file_sound(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &stmt, NULL) != SQLITE_OK)
        return (sqlite3_errcode(db) & 0xff) != SQLITE_CORRUPT &&
               (sqlite3_errcode(db) & 0xff) != SQLITE_NOTADB;
    bool ok = sqlite3_step(stmt) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") == 0;
    sqlite3_finalize(stmt);
    return ok;
}

/* Renames the database file and its write-ahead log to to (and to-wal); its shared
 * memory file goes. */
static int move_db_aside(const char *path, const char *to)
{
    char from_side[4100], to_side[4300];
    snprintf(from_side, sizeof(from_side), "%s-shm", path);
    if (unlink(from_side) < 0 && errno != ENOENT)
        return -1;
    snprintf(from_side, sizeof(from_side), "%s-wal", path);
    snprintf(to_side, sizeof(to_side), "%s-wal", to);
    if (rename(from_side, to_side) < 0 && errno != ENOENT)
        return -1;
    return rename(path, to);
}

static int unlink_db(const char *path)
{
    char side[4100];
    snprintf(side, sizeof(side), "%s-shm", path);
    if (unlink(side) < 0 && errno != ENOENT)
        return -1;
    snprintf(side, sizeof(side), "%s-wal", path);
    if (unlink(side) < 0 && errno != ENOENT)
        return -1;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Copies of the write-ahead log into the database file */

static void checkpoint_work(uv_work_t *work)
{
    struct sch_fsm *fsm = work->data;
    uv_mutex_lock(&fsm->ckpt_lock);
    fsm->ckpt_rc =
        fsm->ckpt_db != NULL
            ? sqlite3_wal_checkpoint_v2(fsm->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL)
            : SQLITE_OK;
    uv_mutex_unlock(&fsm->ckpt_lock);
}

static void checkpoint_done(uv_work_t *work, int status)
{
    (void)status;
    struct sch_fsm *fsm = work->data;
    fsm->ckpt_running = false;
    if (fsm->ckpt_closing) {
        sqlite3_close(fsm->ckpt_db);
        fsm->ckpt_db = NULL;
        uv_mutex_destroy(&fsm->ckpt_lock);
        fsm->ckpt_ready = false;
        return;
    }
    if (fsm->ckpt_rc != SQLITE_OK && fsm->ckpt_rc != SQLITE_BUSY)
        gy_log_warn("state database copy failed", "error=\"%s\"", sqlite3_errstr(fsm->ckpt_rc));
    fsm->checkpoints++;
}

/* Copies the write-ahead log into the file: on the thread pool when there is a loop (one
 * copy at a time; the commits meanwhile go on, and the next copy takes what they added, until
 * a copy catches up and the log starts over), else here. */
static void checkpoint_start(struct sch_fsm *fsm)
{
    if (fsm->ckpt_running)
        return;
    /* A log that keeps growing means the copies never caught up with the commits (each takes
     * longer than the time between two): this one copies the rest here, so that the next
     * commit starts the log over. */
    if (fsm->loop == NULL || fsm->ckpt_closing || fsm->wal_frames >= 8 * SCH_FSM_WAL_FRAMES) {
        if (sqlite3_wal_checkpoint_v2(fsm->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) ==
            SQLITE_OK)
            fsm->checkpoints++;
        return;
    }
    if (fsm->ckpt_db == NULL) {
        sqlite3 *db = NULL;
        if (open_file_db(fsm->path, &db) != SQLITE_OK) {
            gy_log_warn("state database copy failed", "error=\"open %s: %s\"", fsm->path,
                        db ? sqlite3_errmsg(db) : "out of memory");
            sqlite3_close(db);
            return;
        }
        sqlite3_exec(db, "PRAGMA cache_size = 16", NULL, NULL, NULL);
        uv_mutex_lock(&fsm->ckpt_lock);
        fsm->ckpt_db = db;
        uv_mutex_unlock(&fsm->ckpt_lock);
    }
    fsm->ckpt_work.data = fsm;
    if (uv_queue_work(fsm->loop, &fsm->ckpt_work, checkpoint_work, checkpoint_done) == 0)
        fsm->ckpt_running = true;
}

/* Closes the copying connection, after the copy under way if any (the file is about to be
 * replaced or closed). */
static void checkpoint_detach(struct sch_fsm *fsm)
{
    if (!fsm->ckpt_ready)
        return;
    uv_mutex_lock(&fsm->ckpt_lock);
    sqlite3_close(fsm->ckpt_db);
    fsm->ckpt_db = NULL;
    uv_mutex_unlock(&fsm->ckpt_lock);
}

int sch_fsm_set_loop(struct sch_fsm *fsm, uv_loop_t *loop)
{
    if (*fsm->path == '\0' || fsm->ckpt_ready)
        return 0;
    if (uv_mutex_init(&fsm->ckpt_lock) != 0)
        return -1;
    fsm->ckpt_ready = true;
    fsm->loop = loop;
    return 0;
}

/* Reads the position row (after position_sql made sure there is one), and creates the
 * tables added since schema version 1 that the database lacks: every database the state
 * machine opens, creates or restores passes here. */
static int read_position(struct sch_fsm *fsm)
{
    sqlite3_stmt *stmt;
    if (sqlite3_exec(fsm->db, position_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(fsm->db, added_tables_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(fsm->db, "SELECT applied_index, lineage FROM position WHERE id = 0", -1,
                           &stmt, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(stmt) == SQLITE_ROW ? 0 : -1;
    if (rc == 0) {
        fsm->stored_index = (uint64_t)sqlite3_column_int64(stmt, 0);
        fsm->lineage = (uint64_t)sqlite3_column_int64(stmt, 1);
        fsm->applied_index = fsm->stored_index;
        fsm->skip_through = fsm->stored_index;
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* Records applied_index in the database (in the open transaction, or as one of its own). */
static int store_position(struct sch_fsm *fsm)
{
    if (fsm->applied_index == fsm->stored_index)
        return 0;
    bool kept;
    sqlite3_stmt *stmt = stmt_get(fsm, position_update_sql, &kept);
    if (stmt == NULL)
        return -1;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)fsm->applied_index);
    int rc = sqlite3_step(stmt);
    stmt_put(stmt, kept);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Whether db holds a state database of schema version want. */
static bool schema_matches(sqlite3 *db, uint32_t want)
{
    sqlite3_stmt *check;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &check,
                           NULL) != SQLITE_OK)
        return false;
    bool ok = sqlite3_step(check) == SQLITE_ROW && (uint32_t)sqlite3_column_int(check, 0) == want;
    sqlite3_finalize(check);
    return ok;
}

static int init_schema(struct sch_fsm *fsm, struct gy_error *err)
{
    char version[128];
    snprintf(version, sizeof(version),
             "INSERT INTO meta (key, value) VALUES ('schema_version', '%d');",
             SCH_FSM_SCHEMA_VERSION);
    if (sqlite3_exec(fsm->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(fsm->db, version, NULL, NULL, NULL) != SQLITE_OK || read_position(fsm) < 0) {
        int rc =
            gy_error_set(err, GY_EINTERNAL, "create state schema: %s", sqlite3_errmsg(fsm->db));
        sch_fsm_close(fsm);
        return rc;
    }
    int rc = prepare_all(fsm, err);
    if (rc < 0)
        sch_fsm_close(fsm);
    return rc;
}

int sch_fsm_init(struct sch_fsm *fsm, struct gy_error *err)
{
    memset(fsm, 0, sizeof(*fsm));
    if (open_memdb(&fsm->db) != SQLITE_OK) {
        int rc = gy_error_set(err, GY_EIO, "open state database: %s",
                              fsm->db ? sqlite3_errmsg(fsm->db) : "out of memory");
        sqlite3_close(fsm->db);
        fsm->db = NULL;
        return rc;
    }
    return init_schema(fsm, err);
}

static void mark_all(struct sch_fsm *fsm);

/* Creates an empty database in fsm->path (which must not exist). */
static int create_file(struct sch_fsm *fsm, struct gy_error *err)
{
    if (open_file_db(fsm->path, &fsm->db) != SQLITE_OK) {
        int rc = gy_error_set(err, GY_EIO, "open state database %s: %s", fsm->path,
                              fsm->db ? sqlite3_errmsg(fsm->db) : "out of memory");
        sqlite3_close(fsm->db);
        fsm->db = NULL;
        return rc;
    }
    sqlite3_wal_hook(fsm->db, wal_hook, fsm);
    return init_schema(fsm, err);
}

int sch_fsm_init_file(struct sch_fsm *fsm, const char *path, struct gy_error *err)
{
    memset(fsm, 0, sizeof(*fsm));
    if (strlen(path) + 3 > sizeof(fsm->path))
        return gy_error_set(err, GY_EINVAL, "state database path %s is too long", path);
    snprintf(fsm->path, sizeof(fsm->path), "%s", path);
    snprintf(fsm->spare_path, sizeof(fsm->spare_path), "%s.1", path);
    /* A restore that did not get to its rename left its new file. */
    if (unlink_db(fsm->spare_path) < 0)
        return gy_error_sys(err, errno, "remove %s", fsm->spare_path);
    if (access(fsm->path, F_OK) == 0) {
        sqlite3 *db = NULL;
        int orc = open_file_db(fsm->path, &db);
        bool damaged = orc == SQLITE_OK
                           ? !file_sound(db)
                           : (orc & 0xff) == SQLITE_CORRUPT || (orc & 0xff) == SQLITE_NOTADB;
        if (damaged) {
            /* A damaged file is kept aside for whoever wants to look at it; the state comes
             * back from the log, or from the leader's image (image_needed). */
            sqlite3_close(db);
            db = NULL;
            snprintf(fsm->damaged_path, sizeof(fsm->damaged_path), "%s.damaged-%lld", fsm->path,
                     (long long)time(NULL));
            if (move_db_aside(fsm->path, fsm->damaged_path) < 0)
                return gy_error_sys(err, errno, "move the damaged state database %s aside",
                                    fsm->path);
            gy_log_error("state database damaged",
                         "path=%s moved_to=%s action=\"the state is "
                         "rebuilt from the log, or from the leader's image\"",
                         fsm->path, fsm->damaged_path);
            return create_file(fsm, err);
        }
        if (orc == SQLITE_OK && schema_matches(db, SCH_FSM_SCHEMA_VERSION)) {
            fsm->db = db;
            struct gy_error perr;
            if (read_position(fsm) == 0 && prepare_all(fsm, &perr) == 0) {
                sqlite3_wal_hook(db, wal_hook, fsm);
                fsm->last_event = query_u64(fsm, "SELECT COALESCE(MAX(seq), 0) FROM events");
                fsm->fleet_epoch++;
                fsm->dirty_all = true;
                gy_log_info("state database opened",
                            "path=%s applied_index=%" PRIu64 " lineage=%" PRIx64, fsm->path,
                            fsm->stored_index, fsm->lineage);
                return 0;
            }
            finalize_all(fsm);
            fsm->db = NULL;
        }
        /* The snapshot that needs this file, if any, refuses to start without it. */
        gy_log_warn("state database unusable, starting an empty one", "path=%s error=\"%s\"",
                    fsm->path, db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        if (unlink_db(fsm->path) < 0)
            return gy_error_sys(err, errno, "remove state database %s", fsm->path);
    }
    return create_file(fsm, err);
}

int sch_fsm_reset(struct sch_fsm *fsm, struct gy_error *err)
{
    if (*fsm->path == '\0')
        return 0;
    sch_fsm_flush(fsm);
    checkpoint_detach(fsm);
    finalize_all(fsm);
    sqlite3_close(fsm->db);
    fsm->db = NULL;
    if (unlink_db(fsm->path) < 0)
        return gy_error_sys(err, errno, "remove state database %s", fsm->path);
    int rc = create_file(fsm, err);
    if (rc < 0)
        return rc;
    fsm->last_event = 0;
    fsm->fleet_epoch++;
    mark_all(fsm);
    return 0;
}

int sch_fsm_sync_files(const char *path)
{
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    const char *files[] = {wal, path};
    for (size_t i = 0; i < 2; i++) {
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && i == 0)
            continue; /* no write-ahead log: all of it is in the database */
        if (fd < 0)
            return -errno;
        int rc = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void deferred_free(struct sch_fsm *fsm);

void sch_fsm_close(struct sch_fsm *fsm)
{
    deferred_free(fsm); /* rebuilt from the log at the next start, as the rest */
    sch_fsm_flush(fsm);
    sch_arena_free(&fsm->arena);
    finalize_all(fsm);
    if (fsm->db != NULL)
        sqlite3_close(fsm->db);
    fsm->db = NULL;
    if (fsm->ckpt_running) {
        fsm->ckpt_closing = true; /* checkpoint_done closes its connection */
    } else if (fsm->ckpt_ready) {
        checkpoint_detach(fsm);
        uv_mutex_destroy(&fsm->ckpt_lock);
        fsm->ckpt_ready = false;
    }
    for (size_t i = 0; i < SCH_FSM_RESULT_SLOTS; i++) {
        sch_result_free(fsm->slots[i]);
        fsm->slots[i] = NULL;
    }
    for (size_t i = 0; i < fsm->n_dirty; i++)
        free(fsm->dirty[i]);
    free(fsm->dirty);
    fsm->dirty = NULL;
    fsm->n_dirty = fsm->cap_dirty = 0;
}

static int run(struct sch_fsm *fsm, const char *sql, const char *types, ...);

/* ---------------------------------------------------------------------------------------
 * Audit events */

static int event_add(struct sch_fsm *fsm, const Gantry__Command *cmd, const char *kind,
                     const char *object, struct sch_result *result, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int event_add(struct sch_fsm *fsm, const Gantry__Command *cmd, const char *kind,
                     const char *object, struct sch_result *result, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    sqlite3_stmt *stmt = fsm->stmts[STMT_EVENT_INSERT];
    uint64_t seq = fsm->last_event + 1;
    sqlite3_reset(stmt);
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)cmd->time_ms);
    sqlite3_bind_text(stmt, 3, cmd->actor ? cmd->actor : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, object, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 6, message, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE)
        return reject_sql(fsm, result, "append audit event");
    fsm->last_event = seq;
    result->last_event = seq;
    /* The audit trail keeps the most recent SCH_FSM_EVENTS_KEEP events. Pruning depends only
     * on the sequence number, so every server prunes the same rows. */
    if (seq % SCH_FSM_EVENTS_PRUNE_EVERY == 0 && seq > SCH_FSM_EVENTS_KEEP &&
        run(fsm, "DELETE FROM events WHERE seq <= ?", "i", (int64_t)(seq - SCH_FSM_EVENTS_KEEP)) <
            0)
        return reject_sql(fsm, result, "prune audit events");
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Workloads */

static bool name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return name[0] != '-' && name[n - 1] != '-';
}

/* The replica count an apply sets. An autoscaled workload keeps the count its autoscaler
 * (or a manual scale) chose, within the bounds of the new spec; the spec's replicas is only
 * where a new workload, or one woken from idle (count 0), starts. */
static uint32_t autoscaled_count(const Gantry__WorkloadSpec *spec, int64_t current)
{
    const Gantry__Autoscale *a = spec->autoscale;
    if (a == NULL || !a->enabled)
        return spec->replicas;
    uint32_t low = a->min > 0 ? a->min : 1;
    uint32_t want = current > 0 ? (uint32_t)current : spec->replicas;
    if (want < low)
        want = low;
    if (a->max > 0 && want > a->max)
        want = a->max;
    return want;
}

/* ", image REF pinned to DIGEST (authors=..., licenses=...)" for an apply event when the
 * leader pinned the spec's image, with the org.opencontainers.image.* annotations and
 * labels it recorded (the audit trail of docs/images.md); "" otherwise. */
static void image_audit(const Gantry__WorkloadSpec *spec, char *buf, size_t len)
{
    buf[0] = '\0';
    if (spec->image_digest == NULL || spec->image_digest[0] == '\0')
        return;
    size_t used =
        (size_t)snprintf(buf, len, ", image %s pinned to %s", spec->image, spec->image_digest);
    static const char prefix[] = "org.opencontainers.image.";
    bool open = false;
    for (size_t i = 0; i < spec->n_image_labels && used < len; i++) {
        const Gantry__Label *l = spec->image_labels[i];
        if (strncmp(l->key, prefix, sizeof(prefix) - 1) != 0)
            continue;
        used += (size_t)snprintf(buf + used, len - used, "%s%s=%s", open ? ", " : " (",
                                 l->key + sizeof(prefix) - 1, l->value);
        open = true;
    }
    if (open && used + 1 < len)
        snprintf(buf + used, len - used, ")");
}

static int apply_one_workload(struct sch_fsm *fsm, const Gantry__Command *cmd,
                              const Gantry__WorkloadSpec *spec, struct sch_result *result)
{
    if (!name_valid(spec->name))
        return reject(result, GY_EINVAL, "workload name \"%s\" is not a DNS label",
                      spec->name ? spec->name : "");
    /* The stored spec is the template: everything but the replica count, which lives in its
     * own column. Only a template change makes a new generation (and a rolling update);
     * scaling does not, as with a Kubernetes Deployment. */
    Gantry__WorkloadSpec template = *spec;
    template.replicas = 0;
    size_t len = gantry__workload_spec__get_packed_size(&template);
    uint8_t *blob = malloc(len ? len : 1);
    if (blob == NULL)
        return reject(result, GY_ENOMEM, "encode workload %s", spec->name);
    gantry__workload_spec__pack(&template, blob);

    sqlite3_stmt *get = fsm->stmts[STMT_WORKLOAD_GET];
    sqlite3_reset(get);
    sqlite3_bind_text(get, 1, spec->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(get);
    enum sch_outcome outcome;
    uint64_t generation;
    uint32_t replicas = spec->replicas;
    bool template_changed = false;
    if (rc == SQLITE_ROW) {
        const void *old = sqlite3_column_blob(get, 0);
        size_t old_len = (size_t)sqlite3_column_bytes(get, 0);
        generation = (uint64_t)sqlite3_column_int64(get, 1);
        int64_t old_replicas = sqlite3_column_int64(get, 2);
        replicas = autoscaled_count(spec, old_replicas);
        template_changed = !(old_len == len && (len == 0 || memcmp(old, blob, len) == 0));
        outcome = template_changed || old_replicas != (int64_t)replicas ? SCH_OUTCOME_UPDATED
                                                                        : SCH_OUTCOME_UNCHANGED;
    } else if (rc == SQLITE_DONE) {
        replicas = autoscaled_count(spec, 0);
        outcome = SCH_OUTCOME_CREATED;
        generation = 0;
    } else {
        sqlite3_reset(get);
        free(blob);
        return reject_sql(fsm, result, "read workload");
    }
    sqlite3_reset(get);

    sqlite3_stmt *stmt = NULL;
    if (outcome == SCH_OUTCOME_CREATED) {
        stmt = fsm->stmts[STMT_WORKLOAD_INSERT];
        sqlite3_reset(stmt);
        sqlite3_bind_text(stmt, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(stmt, 2, blob, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 3, replicas);
        sqlite3_bind_int64(stmt, 4, (sqlite3_int64)cmd->time_ms);
        sqlite3_bind_int64(stmt, 5, (sqlite3_int64)cmd->time_ms);
        generation = 1;
    } else if (outcome == SCH_OUTCOME_UPDATED) {
        stmt = fsm->stmts[STMT_WORKLOAD_UPDATE];
        sqlite3_reset(stmt);
        sqlite3_bind_blob(stmt, 1, blob, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(stmt, 2, template_changed ? 1 : 0);
        sqlite3_bind_int64(stmt, 3, replicas);
        sqlite3_bind_int64(stmt, 4, (sqlite3_int64)cmd->time_ms);
        sqlite3_bind_text(stmt, 5, spec->name, -1, SQLITE_STATIC);
        if (template_changed)
            generation++;
    }
    if (stmt != NULL) {
        rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        if (rc != SQLITE_DONE) {
            free(blob);
            return reject_sql(fsm, result, "write workload");
        }
    }
    /* A new template supersedes a move in progress or stopped. */
    if (template_changed &&
        run(fsm, "DELETE FROM conditions WHERE workload = ? AND kind IN ('Moving', 'MoveStopped')",
            "t", spec->name) < 0) {
        free(blob);
        return reject_sql(fsm, result, "end move");
    }
    free(blob);

    struct sch_apply_outcome *grown =
        realloc(result->outcomes, (result->n_outcomes + 1) * sizeof(*grown));
    if (grown == NULL)
        return reject(result, GY_ENOMEM, "record outcome of %s", spec->name);
    result->outcomes = grown;
    struct sch_apply_outcome *o = &result->outcomes[result->n_outcomes];
    o->name = strdup(spec->name);
    if (o->name == NULL)
        return reject(result, GY_ENOMEM, "record outcome of %s", spec->name);
    o->outcome = outcome;
    o->generation = generation;
    result->n_outcomes++;

    char object[128];
    snprintf(object, sizeof(object), "workload/%s", spec->name);
    if (outcome == SCH_OUTCOME_UNCHANGED)
        return event_add(fsm, cmd, "apply", object, result, "unchanged at generation %" PRIu64,
                         generation);
    char image[768];
    image_audit(spec, image, sizeof(image));
    return event_add(fsm, cmd, "apply", object, result, "%s: generation %" PRIu64 ", %u replicas%s",
                     sch_outcome_name(outcome), generation, replicas, image);
}

static int exec_apply(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result)
{
    const Gantry__ApplyWorkloads *apply = cmd->apply_workloads;
    if (apply->n_workloads == 0)
        return reject(result, GY_EINVAL, "apply holds no workloads");
    for (size_t i = 0; i < apply->n_workloads; i++) {
        int rc = apply_one_workload(fsm, cmd, apply->workloads[i], result);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Runs one statement with text and integer parameters given as a format: 't' text, 'i'
 * int64, 'd' double. Returns the number of changed rows, or -1 on error. */
static int run(struct sch_fsm *fsm, const char *sql, const char *types, ...)
{
    bool kept;
    sqlite3_stmt *stmt = stmt_get(fsm, sql, &kept);
    if (stmt == NULL)
        return -1;
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i] != '\0'; i++) {
        if (types[i] == 't') {
            const char *s = va_arg(ap, const char *);
            sqlite3_bind_text(stmt, i + 1, s ? s : "", -1, SQLITE_STATIC);
        } else if (types[i] == 'i') {
            sqlite3_bind_int64(stmt, i + 1, va_arg(ap, int64_t));
        } else {
            sqlite3_bind_double(stmt, i + 1, va_arg(ap, double));
        }
    }
    va_end(ap);
    int rc = sqlite3_step(stmt);
    stmt_put(stmt, kept);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return -1;
    return sqlite3_changes(fsm->db);
}

static bool exists(struct sch_fsm *fsm, const char *sql, const char *key)
{
    bool kept;
    sqlite3_stmt *stmt = stmt_get(fsm, sql, &kept);
    if (stmt == NULL)
        return false;
    sqlite3_bind_text(stmt, 1, key ? key : "", -1, SQLITE_STATIC);
    bool found = sqlite3_step(stmt) == SQLITE_ROW;
    stmt_put(stmt, kept);
    return found;
}

static int exec_delete(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result)
{
    const char *name = cmd->delete_workload->name;
    int n = run(fsm, "DELETE FROM workloads WHERE name = ?", "t", name);
    if (n < 0)
        return reject_sql(fsm, result, "delete workload");
    if (run(fsm, "DELETE FROM conditions WHERE workload = ?", "t", name) < 0)
        return reject_sql(fsm, result, "delete conditions");
    if (n == 0)
        return reject(result, GY_ENOTFOUND, "workload \"%s\" not found", name);
    /* Its replicas are asked to stop; the reconciler removes them once agents report them
     * stopped. */
    int stopping = run(fsm,
                       "UPDATE replicas SET state = ?, reason = 'workload deleted', changed_ms = ?"
                       " WHERE workload = ? AND state NOT IN (?, ?, ?)",
                       "iitiii", (int64_t)GANTRY__REPLICA_STATE__REPLICA_STOPPING,
                       (int64_t)cmd->time_ms, name, (int64_t)GANTRY__REPLICA_STATE__REPLICA_STOPPED,
                       (int64_t)GANTRY__REPLICA_STATE__REPLICA_EXITED,
                       (int64_t)GANTRY__REPLICA_STATE__REPLICA_FAILED);
    if (stopping < 0)
        return reject_sql(fsm, result, "stop replicas of deleted workload");
    char object[128];
    snprintf(object, sizeof(object), "workload/%s", name);
    return event_add(fsm, cmd, "delete", object, result, "deleted; %d replicas stopping", stopping);
}

static int exec_scale(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result)
{
    const Gantry__ScaleWorkload *scale = cmd->scale_workload;
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(fsm->db, "SELECT replicas, generation FROM workloads WHERE name = ?", -1,
                           &stmt, NULL) != SQLITE_OK)
        return reject_sql(fsm, result, "read workload");
    sqlite3_bind_text(stmt, 1, scale->name ? scale->name : "", -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return reject(result, GY_ENOTFOUND, "workload \"%s\" not found", scale->name);
    }
    int64_t before = sqlite3_column_int64(stmt, 0);
    uint64_t generation = (uint64_t)sqlite3_column_int64(stmt, 1);
    sqlite3_finalize(stmt);
    if (scale->replicas > 10000)
        return reject(result, GY_ERANGE, "replicas %u is over the limit of 10000", scale->replicas);
    if (run(fsm, "UPDATE workloads SET replicas = ?, updated_ms = ? WHERE name = ?", "iit",
            (int64_t)scale->replicas, (int64_t)cmd->time_ms, scale->name) < 0)
        return reject_sql(fsm, result, "scale workload");
    struct sch_apply_outcome *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->name = strdup(scale->name)) == NULL) {
        free(o);
        return reject(result, GY_ENOMEM, "record outcome");
    }
    o->outcome = before == (int64_t)scale->replicas ? SCH_OUTCOME_UNCHANGED : SCH_OUTCOME_UPDATED;
    o->generation = generation;
    result->outcomes = o;
    result->n_outcomes = 1;
    /* The autoscaler's last decision stays visible in describe as a condition. */
    if (cmd->actor != NULL && strcmp(cmd->actor, "autoscaler") == 0 && scale->reason != NULL &&
        run(fsm,
            "INSERT INTO conditions (workload, kind, message, time_ms) VALUES (?, 'Autoscaled', ?, "
            "?)"
            " ON CONFLICT (workload, kind) DO UPDATE SET message = excluded.message,"
            " time_ms = excluded.time_ms",
            "tti", scale->name, scale->reason, (int64_t)cmd->time_ms) < 0)
        return reject_sql(fsm, result, "record autoscale decision");
    char object[128];
    snprintf(object, sizeof(object), "workload/%s", scale->name);
    if (cmd->actor != NULL && strcmp(cmd->actor, "autoscaler") == 0 && scale->reason != NULL &&
        *scale->reason != '\0')
        return event_add(fsm, cmd, "scale", object, result, "%s", scale->reason);
    return event_add(fsm, cmd, "scale", object, result, "replicas %" PRId64 " -> %u%s%s", before,
                     scale->replicas, scale->reason && *scale->reason ? ": " : "",
                     scale->reason ? scale->reason : "");
}

/* ---------------------------------------------------------------------------------------
 * Nodes and replicas */

/* The text of the first column of sql's first row for key, or "" (buf). */
static void meta_get_sql(struct sch_fsm *fsm, const char *sql, const char *key, char *buf,
                         size_t len)
{
    sqlite3_stmt *stmt;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(fsm->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
}

static void meta_get(struct sch_fsm *fsm, const char *key, char *buf, size_t len)
{
    meta_get_sql(fsm, "SELECT value FROM meta WHERE key = ?", key, buf, len);
}

/* The cluster network and node prefix the state records (InitCluster), or the defaults. */
static void cluster_network(struct sch_fsm *fsm, uint32_t *net, int *net_len, int *node_len)
{
    char text[64] = "", prefix[16] = "";
    meta_get(fsm, "cluster_network", text, sizeof(text));
    meta_get(fsm, "node_prefix", prefix, sizeof(prefix));
    if (!gy_cidr_parse(text, 8, 28, net, net_len))
        gy_cidr_parse(SCH_CLUSTER_NETWORK_DEFAULT, 8, 28, net, net_len);
    *node_len = atoi(prefix);
    if (*node_len <= *net_len || *node_len > 28)
        *node_len = SCH_NODE_PREFIX_DEFAULT > *net_len ? SCH_NODE_PREFIX_DEFAULT : *net_len;
}

/* Writes into buf the first subnet of the cluster network that overlaps no node's; returns 1,
 * 0 when none is free, or a negative error. Deterministic: every server picks the same. */
static int subnet_carve(struct sch_fsm *fsm, char *buf, size_t len)
{
    uint32_t net;
    int net_len, node_len;
    cluster_network(fsm, &net, &net_len, &node_len);
    size_t n = 0, cap = 0;
    struct {
        uint32_t addr;
        int len;
    } *taken = NULL;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(fsm->db, "SELECT subnet FROM node_networks", -1, &q, NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(q) == SQLITE_ROW) {
        uint32_t a;
        int l;
        if (!gy_cidr_parse((const char *)sqlite3_column_text(q, 0), 8, 30, &a, &l))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            void *grown = realloc(taken, cap * sizeof(*taken));
            if (grown == NULL) {
                sqlite3_finalize(q);
                free(taken);
                return -1;
            }
            taken = grown;
        }
        taken[n].addr = a;
        taken[n++].len = l;
    }
    sqlite3_finalize(q);
    int found = 0;
    uint64_t count = UINT64_C(1) << (node_len - net_len);
    for (uint64_t k = 0; k < count && !found; k++) {
        uint32_t candidate = net + (uint32_t)(k << (32 - node_len));
        bool free_here = true;
        for (size_t i = 0; i < n && free_here; i++)
            free_here = !gy_cidr_overlap(candidate, node_len, taken[i].addr, taken[i].len);
        if (free_here) {
            snprintf(buf, len, "%u.%u.%u.%u/%d", candidate >> 24, (candidate >> 16) & 0xff,
                     (candidate >> 8) & 0xff, candidate & 0xff, node_len);
            found = 1;
        }
    }
    free(taken);
    return found;
}

static int exec_register_node(struct sch_fsm *fsm, const Gantry__Command *cmd,
                              struct sch_result *result)
{
    const Gantry__NodeInfo *node = cmd->register_node->node;
    if (node == NULL || !name_valid(node->name))
        return reject(result, GY_EINVAL, "node name \"%s\" is not a DNS label",
                      node && node->name ? node->name : "");
    bool tunnel = node->tunnel_key != NULL && node->tunnel_key[0] != '\0';
    if (tunnel && (!gy_tunnel_key_valid(node->tunnel_key) || node->tunnel_port == 0 ||
                   node->tunnel_port > 65535))
        return reject(result, GY_EINVAL,
                      "node %s: tunnel key \"%.60s\" or port %u is not a WireGuard key and a "
                      "UDP port",
                      node->name, node->tunnel_key, node->tunnel_port);
    /* Labels are kept as a JSON object text, sorted by key by the writer. */
    size_t cap = 3;
    for (size_t i = 0; i < node->n_labels; i++)
        cap += 8 + 2 * (strlen(node->labels[i]->key) + strlen(node->labels[i]->value));
    char *labels = malloc(cap);
    if (labels == NULL)
        return reject(result, GY_ENOMEM, "encode labels");
    size_t off = 0;
    labels[off++] = '{';
    for (size_t i = 0; i < node->n_labels; i++) {
        const char *parts[2] = {node->labels[i]->key, node->labels[i]->value};
        if (i > 0)
            labels[off++] = ',';
        for (int p = 0; p < 2; p++) {
            labels[off++] = '"';
            for (const char *c = parts[p]; *c; c++) {
                if (*c == '"' || *c == '\\')
                    labels[off++] = '\\';
                labels[off++] = (unsigned char)*c < 0x20 ? ' ' : *c;
            }
            labels[off++] = '"';
            if (p == 0)
                labels[off++] = ':';
        }
    }
    labels[off++] = '}';
    labels[off] = '\0';
    const Gantry__Resources *cap_res = node->capacity;
    bool known = exists(fsm, "SELECT 1 FROM nodes WHERE name = ?", node->name);
    /* A node that comes back keeps an operator's cordon or drain; a down node is ready again. */
    int n =
        run(fsm,
            "INSERT INTO nodes (name, cloud, region, zone, labels, cpu_millis, memory_bytes,"
            " pids, cost, address, state, reason, registered_ms, updated_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET cloud = excluded.cloud,"
            " region = excluded.region, zone = excluded.zone, labels = excluded.labels,"
            " cpu_millis = excluded.cpu_millis, memory_bytes = excluded.memory_bytes,"
            " pids = excluded.pids, cost = excluded.cost, address = excluded.address,"
            " state = CASE WHEN state = 1 THEN 0 ELSE state END,"
            " updated_ms = excluded.updated_ms",
            "tttttiiidtii", node->name, node->cloud, node->region, node->zone, labels,
            (int64_t)(cap_res ? cap_res->cpu_millis : 0),
            (int64_t)(cap_res ? cap_res->memory_bytes : 0), (int64_t)(cap_res ? cap_res->pids : 0),
            node->cost_per_hour, node->address, (int64_t)cmd->time_ms, (int64_t)cmd->time_ms);
    free(labels);
    if (n < 0)
        return reject_sql(fsm, result, "register node");
    /* The subnet the agent names is recorded as it is; one that names none keeps the
     * subnet it was given before, or gets the first free one of the cluster network. */
    char carved[32] = "";
    if (node->subnet != NULL && node->subnet[0] != '\0')
        n = run(fsm,
                "INSERT INTO node_networks (node, subnet) VALUES (?, ?)"
                " ON CONFLICT (node) DO UPDATE SET subnet = excluded.subnet",
                "tt", node->name, node->subnet);
    else if (exists(fsm, "SELECT 1 FROM node_networks WHERE node = ?", node->name))
        n = 0;
    else if ((n = subnet_carve(fsm, carved, sizeof(carved))) > 0)
        n = run(fsm, "INSERT INTO node_networks (node, subnet) VALUES (?, ?)", "tt", node->name,
                carved);
    if (n >= 0)
        n = tunnel ? run(fsm,
                         "INSERT INTO node_tunnels (node, public_key, port) VALUES (?, ?, ?)"
                         " ON CONFLICT (node) DO UPDATE SET public_key = excluded.public_key,"
                         " port = excluded.port",
                         "tti", node->name, node->tunnel_key, (int64_t)node->tunnel_port)
                   : run(fsm, "DELETE FROM node_tunnels WHERE node = ?", "t", node->name);
    if (n < 0)
        return reject_sql(fsm, result, "record the node's subnet");
    char object[128];
    snprintf(object, sizeof(object), "node/%s", node->name);
    if (*carved != '\0')
        return event_add(fsm, cmd, "register", object, result, "%s in cloud %s, replica subnet %s",
                         known ? "registered again" : "registered", node->cloud ? node->cloud : "",
                         carved);
    return event_add(fsm, cmd, "register", object, result, "%s in cloud %s%s",
                     known ? "registered again" : "registered", node->cloud ? node->cloud : "",
                     n == 0 && (node->subnet == NULL || node->subnet[0] == '\0') &&
                             !exists(fsm, "SELECT 1 FROM node_networks WHERE node = ?", node->name)
                         ? "; no replica subnet is free in the cluster network"
                         : "");
}

const char *sch_node_state_name(int state)
{
    static const char *const names[] = {"ready", "down", "cordoned", "draining"};
    return state >= 0 && state < 4 ? names[state] : "unknown";
}

const char *sch_replica_state_name(int state)
{
    static const char *const names[] = {"pending", "starting", "running", "stopping",
                                        "stopped", "exited",   "failed",  "lost"};
    return state >= 0 && state < 8 ? names[state] : "unknown";
}

static int exec_set_node_state(struct sch_fsm *fsm, const Gantry__Command *cmd,
                               struct sch_result *result)
{
    const Gantry__SetNodeState *set = cmd->set_node_state;
    if ((int)set->state < 0 || (int)set->state > 3)
        return reject(result, GY_EINVAL, "node state %d is not known", (int)set->state);
    int n = run(fsm, "UPDATE nodes SET state = ?, reason = ?, updated_ms = ? WHERE name = ?",
                "itit", (int64_t)set->state, set->reason, (int64_t)cmd->time_ms, set->name);
    if (n < 0)
        return reject_sql(fsm, result, "set node state");
    if (n == 0)
        return reject(result, GY_ENOTFOUND, "node \"%s\" not found", set->name);
    char object[128];
    snprintf(object, sizeof(object), "node/%s", set->name);
    return event_add(fsm, cmd, "node_state", object, result, "%s%s%s",
                     sch_node_state_name((int)set->state), set->reason && *set->reason ? ": " : "",
                     set->reason ? set->reason : "");
}

static int exec_remove_node(struct sch_fsm *fsm, const Gantry__Command *cmd,
                            struct sch_result *result)
{
    const char *name = cmd->remove_node->name != NULL ? cmd->remove_node->name : "";
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(fsm->db, "SELECT state FROM nodes WHERE name = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return reject_sql(fsm, result, "remove node");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int state = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    if (state < 0)
        return reject(result, GY_ENOTFOUND, "node \"%s\" not found", name);
    if (state != GANTRY__NODE_STATE__NODE_DOWN)
        return reject(result, GY_ECONFLICT,
                      "node \"%s\" is %s: only a node that is down can be removed (drain it, "
                      "then stop its agent)",
                      name, sch_node_state_name(state));
    char subnet[64] = "";
    meta_get_sql(fsm, "SELECT subnet FROM node_networks WHERE node = ?", name, subnet,
                 sizeof(subnet));
    int replicas = (int)run(fsm, "DELETE FROM replicas WHERE node = ?", "t", name);
    if (replicas < 0 || run(fsm, "DELETE FROM node_conditions WHERE node = ?", "t", name) < 0 ||
        run(fsm, "DELETE FROM node_networks WHERE node = ?", "t", name) < 0 ||
        run(fsm, "DELETE FROM node_tunnels WHERE node = ?", "t", name) < 0 ||
        run(fsm, "DELETE FROM nodes WHERE name = ?", "t", name) < 0)
        return reject_sql(fsm, result, "remove node");
    char object[128];
    snprintf(object, sizeof(object), "node/%s", name);
    return event_add(fsm, cmd, "remove", object, result, "removed with %d replica record%s%s%s",
                     replicas, replicas == 1 ? "" : "s", *subnet ? "; subnet released: " : "",
                     subnet);
}

static int exec_set_node_tunnel(struct sch_fsm *fsm, const Gantry__Command *cmd,
                                struct sch_result *result)
{
    const Gantry__SetNodeTunnel *t = cmd->set_node_tunnel;
    const char *name = t->name != NULL ? t->name : "";
    if (!exists(fsm, "SELECT 1 FROM nodes WHERE name = ?", name))
        return reject(result, GY_ENOTFOUND, "node \"%s\" not found", name);
    if (!gy_tunnel_key_valid(t->public_key) || t->port == 0 || t->port > 65535)
        return reject(result, GY_EINVAL,
                      "node %s: tunnel key \"%.60s\" or port %u is not a WireGuard key and a "
                      "UDP port",
                      name, t->public_key != NULL ? t->public_key : "", t->port);
    if (run(fsm,
            "INSERT INTO node_tunnels (node, public_key, port) VALUES (?, ?, ?)"
            " ON CONFLICT (node) DO UPDATE SET public_key = excluded.public_key,"
            " port = excluded.port",
            "tti", name, t->public_key, (int64_t)t->port) < 0)
        return reject_sql(fsm, result, "set node tunnel");
    char object[128];
    snprintf(object, sizeof(object), "node/%s", name);
    /* The key is public; its first characters tell one from another in the audit trail. */
    return event_add(fsm, cmd, "tunnel-key", object, result, "new tunnel key %.8s...",
                     t->public_key);
}

bool sch_node_condition_message_valid(const char *message)
{
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)message; c != NULL && *c != '\0'; c++, n++)
        if (*c < 0x20 || *c > 0x7e || n >= SCH_NODE_CONDITION_MESSAGE_MAX)
            return false;
    return n > 0;
}

/* Sets or (with an empty message) clears a condition of a node. Nothing changes, and no
 * event is written, when the state already says so: a proposal repeated after a lost
 * answer is harmless. */
static int exec_set_node_condition(struct sch_fsm *fsm, const Gantry__Command *cmd,
                                   struct sch_result *result)
{
    const Gantry__SetNodeCondition *c = cmd->set_node_condition;
    if (c->kind == NULL || strcmp(c->kind, SCH_NODE_CONDITION_STORAGE) != 0)
        return reject(result, GY_EINVAL, "node condition \"%s\" is not known (%s)",
                      c->kind ? c->kind : "", SCH_NODE_CONDITION_STORAGE);
    bool clear = c->message == NULL || *c->message == '\0';
    if (!clear && !sch_node_condition_message_valid(c->message))
        return reject(result, GY_EINVAL,
                      "node condition message is not printable ASCII of at most %d bytes",
                      SCH_NODE_CONDITION_MESSAGE_MAX);
    if (c->node == NULL || !exists(fsm, "SELECT 1 FROM nodes WHERE name = ?", c->node))
        return reject(result, GY_ENOTFOUND, "node \"%s\" not found", c->node ? c->node : "");
    int n;
    if (clear)
        n = run(fsm, "DELETE FROM node_conditions WHERE node = ? AND kind = ?", "tt", c->node,
                c->kind);
    else
        n = run(fsm,
                "INSERT INTO node_conditions (node, kind, message, time_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (node, kind) DO UPDATE SET message = excluded.message,"
                " time_ms = excluded.time_ms WHERE message != excluded.message",
                "ttti", c->node, c->kind, c->message, (int64_t)cmd->time_ms);
    if (n < 0)
        return reject_sql(fsm, result, "record node condition");
    if (n == 0)
        return 0;
    char object[128];
    snprintf(object, sizeof(object), "node/%s", c->node);
    if (clear)
        return event_add(fsm, cmd, "node_condition", object, result,
                         "node %s: storage takes writes again", c->node);
    return event_add(fsm, cmd, "node_condition", object, result,
                     "node %s: storage refuses writes: %s", c->node, c->message);
}

static int exec_place(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result)
{
    const Gantry__PlaceReplicas *place = cmd->place_replicas;
    if (place->n_replicas == 0)
        return reject(result, GY_EINVAL, "placement holds no replicas");
    for (size_t i = 0; i < place->n_replicas; i++) {
        const Gantry__ReplicaPlacement *p = place->replicas[i];
        if (p->replica_id == NULL || *p->replica_id == '\0')
            return reject(result, GY_EINVAL, "replicas[%zu]: empty replica id", i);
        /* A placement names one workload for many replicas: it is checked once. */
        bool same = i > 0 && p->workload != NULL && place->replicas[i - 1]->workload != NULL &&
                    strcmp(p->workload, place->replicas[i - 1]->workload) == 0;
        if (!same && !exists(fsm, "SELECT 1 FROM workloads WHERE name = ?", p->workload))
            return reject(result, GY_ENOTFOUND, "replicas[%zu]: workload \"%s\" not found", i,
                          p->workload);
        if (!exists(fsm, "SELECT 1 FROM nodes WHERE name = ?", p->node))
            return reject(result, GY_ENOTFOUND, "replicas[%zu]: node \"%s\" not found", i, p->node);
        int n = run(fsm,
                    "INSERT INTO replicas (id, workload, generation, node, state, ready,"
                    " restarts, exit_code, exit_signal, oom_killed, address, reason, changed_ms)"
                    " VALUES (?, ?, ?, ?, 0, 0, 0, 0, 0, 0, '', '', ?)"
                    " ON CONFLICT (id) DO NOTHING",
                    "ttiti", p->replica_id, p->workload, (int64_t)p->generation, p->node,
                    (int64_t)cmd->time_ms);
        if (n < 0)
            return reject_sql(fsm, result, "place replica");
        if (n == 0)
            return reject(result, GY_EEXISTS, "replicas[%zu]: replica \"%s\" already exists", i,
                          p->replica_id);
    }
    char object[128];
    snprintf(object, sizeof(object), "workload/%s", place->replicas[0]->workload);
    return event_add(fsm, cmd, "place", object, result, "placed %zu replicas, first %s on %s",
                     place->n_replicas, place->replicas[0]->replica_id, place->replicas[0]->node);
}

static int exec_update_replicas(struct sch_fsm *fsm, const Gantry__Command *cmd,
                                struct sch_result *result)
{
    const Gantry__UpdateReplicas *update = cmd->update_replicas;
    size_t changed = 0, unknown = 0;
    for (size_t i = 0; i < update->n_updates; i++) {
        const Gantry__ReplicaStatus *s = update->updates[i];
        if ((int)s->state < 0 || (int)s->state > 7)
            return reject(result, GY_EINVAL, "updates[%zu]: replica state %d is not known", i,
                          (int)s->state);
        int n;
        if (s->state == GANTRY__REPLICA_STATE__REPLICA_STOPPED) {
            /* Its agent has removed it: the replica is gone. */
            n = run(fsm, "DELETE FROM replicas WHERE id = ?", "t", s->replica_id);
            if (n > 0)
                fsm->room_epoch++;
        } else {
            /* A replica being stopped only goes on to stopped, and a lost one only to
             * stopping: a late report from an agent never revives either. */
            n = run(fsm,
                    "UPDATE replicas SET state = ?, ready = ?, restarts = ?, exit_code = ?,"
                    " exit_signal = ?, oom_killed = ?, address = ?, reason = ?, changed_ms = ?"
                    " WHERE id = ? AND state != ? AND (state != ? OR ? = ?)",
                    "iiiiiittitiiii", (int64_t)s->state, (int64_t)s->ready, (int64_t)s->restarts,
                    (int64_t)s->exit_code, (int64_t)s->exit_signal, (int64_t)s->oom_killed,
                    s->address, s->reason, (int64_t)(s->changed_ms ? s->changed_ms : cmd->time_ms),
                    s->replica_id, (int64_t)GANTRY__REPLICA_STATE__REPLICA_STOPPING,
                    (int64_t)GANTRY__REPLICA_STATE__REPLICA_LOST, (int64_t)s->state,
                    (int64_t)GANTRY__REPLICA_STATE__REPLICA_STOPPING);
        }
        /* A report about a replica the state does not know (removed meanwhile) is dropped:
         * the reconciler tells that agent to stop it. */
        if (n == 0)
            unknown++;
        else
            changed++;
    }
    return event_add(fsm, cmd, "replicas", "replicas", result,
                     "%zu replica states updated, %zu unknown", changed, unknown);
}

static int exec_report_condition(struct sch_fsm *fsm, const Gantry__Command *cmd,
                                 struct sch_result *result)
{
    const Gantry__ReportCondition *c = cmd->report_condition;
    if (c->workload == NULL || c->kind == NULL || *c->kind == '\0')
        return reject(result, GY_EINVAL, "condition needs a workload and a kind");
    int n;
    if (c->message == NULL || *c->message == '\0')
        n = run(fsm, "DELETE FROM conditions WHERE workload = ? AND kind = ?", "tt", c->workload,
                c->kind);
    else
        n = run(fsm,
                "INSERT INTO conditions (workload, kind, message, time_ms) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (workload, kind) DO UPDATE SET message = excluded.message,"
                " time_ms = excluded.time_ms",
                "ttti", c->workload, c->kind, c->message, (int64_t)cmd->time_ms);
    if (n < 0)
        return reject_sql(fsm, result, "record condition");
    char object[128];
    snprintf(object, sizeof(object), "workload/%s", c->workload);
    if (c->message == NULL || *c->message == '\0')
        return event_add(fsm, cmd, "condition", object, result, "%s cleared", c->kind);
    return event_add(fsm, cmd, "condition", object, result, "%s: %s", c->kind, c->message);
}

/* ---------------------------------------------------------------------------------------
 * Divergence checks (docs/operations.md, "Divergence") */

static uint64_t digest_of(struct sch_fsm *fsm);

/* Notes the digest of the state as of this entry. Every server computes it at the same
 * point of the log, so servers that applied the same commands note the same value. */
static int exec_check_digest(struct sch_fsm *fsm, const Gantry__Command *cmd,
                             struct sch_result *result)
{
    (void)cmd;
    (void)result;
    if (fsm->applying_index == 0)
        return 0;
    if (fsm->n_digests == SCH_FSM_DIGEST_NOTES) {
        memmove(&fsm->digests[0], &fsm->digests[1],
                (SCH_FSM_DIGEST_NOTES - 1) * sizeof(fsm->digests[0]));
        fsm->n_digests--;
    }
    fsm->digests[fsm->n_digests].index = fsm->applying_index;
    fsm->digests[fsm->n_digests].digest = digest_of(fsm);
    fsm->n_digests++;
    return 0;
}

static int exec_report_divergence(struct sch_fsm *fsm, const Gantry__Command *cmd,
                                  struct sch_result *result)
{
    const Gantry__ReportDivergence *d = cmd->report_divergence;
    if (d->server_id == 0)
        return reject(result, GY_EINVAL, "divergence report names no server");
    char key[64], value[32], object[64];
    snprintf(key, sizeof(key), "diverged:%" PRIu64, d->server_id);
    snprintf(value, sizeof(value), "%" PRIu64, d->index);
    snprintf(object, sizeof(object), "server/%" PRIu64, d->server_id);
    int n = d->resolved ? run(fsm, "DELETE FROM meta WHERE key = ?", "t", key)
                        : run(fsm, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", "tt",
                              key, value);
    if (n < 0)
        return reject_sql(fsm, result, "record divergence");
    fsm->divergence_epoch++;
    if (d->resolved)
        return event_add(fsm, cmd, "converged", object, result,
                         "state matches the majority's again at index %" PRIu64, d->index);
    return event_add(fsm, cmd, "diverged", object, result,
                     "state differs from the majority's at index %" PRIu64
                     ": digest %s, expected %s; the server rebuilds its state from its peers",
                     d->index, d->found != NULL ? d->found : "",
                     d->expected != NULL ? d->expected : "");
}

bool sch_fsm_digest_at(const struct sch_fsm *fsm, uint64_t index, uint64_t *digest)
{
    for (size_t i = 0; i < fsm->n_digests; i++) {
        if (fsm->digests[i].index == index) {
            *digest = fsm->digests[i].digest;
            return true;
        }
    }
    return false;
}

bool sch_fsm_digest_latest(const struct sch_fsm *fsm, uint64_t *index, uint64_t *digest)
{
    if (fsm->n_digests == 0)
        return false;
    *index = fsm->digests[fsm->n_digests - 1].index;
    *digest = fsm->digests[fsm->n_digests - 1].digest;
    return true;
}

bool sch_fsm_server_diverged(struct sch_fsm *fsm, uint64_t id, uint64_t *index)
{
    char key[64];
    snprintf(key, sizeof(key), "diverged:%" PRIu64, id);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(fsm->db, "SELECT value FROM meta WHERE key = ?", -1, &stmt, NULL) !=
        SQLITE_OK)
        return false;
    sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
    bool found = sqlite3_step(stmt) == SQLITE_ROW;
    if (found && index != NULL)
        *index = (uint64_t)sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return found;
}

int sch_fsm_diverged_servers(struct sch_fsm *fsm, uint64_t *ids, size_t max, struct gy_error *err)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(fsm->db,
                           "SELECT CAST(substr(key, 10) AS INTEGER) FROM meta"
                           " WHERE key LIKE 'diverged:%' ORDER BY 1",
                           -1, &stmt, NULL) != SQLITE_OK)
        return gy_error_set(err, GY_EIO, "read the diverged servers: %s", sqlite3_errmsg(fsm->db));
    int n = 0, rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if ((size_t)n < max)
            ids[n] = (uint64_t)sqlite3_column_int64(stmt, 0);
        n++;
    }
    if (rc != SQLITE_DONE)
        gy_error_set(err, GY_EIO, "read the diverged servers: %s", sqlite3_errmsg(fsm->db));
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? n : -GY_EIO;
}

/* ---------------------------------------------------------------------------------------
 * Moves between clouds */

static int exec_move(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result)
{
    const Gantry__MoveWorkload *m = cmd->move_workload;
    if (m->name == NULL || m->to == NULL || *m->to == '\0')
        return reject(result, GY_EINVAL, "a move needs a workload and a cloud");
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(fsm->db,
                           "SELECT spec, generation, replicas FROM workloads WHERE name = ?", -1,
                           &stmt, NULL) != SQLITE_OK)
        return reject_sql(fsm, result, "read workload");
    sqlite3_bind_text(stmt, 1, m->name, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return reject(result, GY_ENOTFOUND, "workload \"%s\" not found", m->name);
    }
    Gantry__WorkloadSpec *spec = gantry__workload_spec__unpack(
        NULL, (size_t)sqlite3_column_bytes(stmt, 0), sqlite3_column_blob(stmt, 0));
    uint64_t generation = (uint64_t)sqlite3_column_int64(stmt, 1) + 1;
    int64_t replicas = sqlite3_column_int64(stmt, 2);
    sqlite3_finalize(stmt);
    if (spec == NULL)
        return reject(result, GY_EINTERNAL, "stored spec of %s cannot be decoded", m->name);
    /* The placement names the target cloud only; the rest of the spec is kept. */
    char from[256] = "";
    Gantry__Placement fresh = GANTRY__PLACEMENT__INIT;
    Gantry__Placement *pl = spec->placement != NULL ? spec->placement : &fresh;
    for (size_t i = 0; i < pl->n_clouds; i++)
        snprintf(from + strlen(from), sizeof(from) - strlen(from), "%s%s", i ? "," : "",
                 pl->clouds[i]);
    if (pl->n_clouds == 1 && strcmp(pl->clouds[0], m->to) == 0) {
        /* Already placed there alone: nothing to move, no new generation. */
        gantry__workload_spec__free_unpacked(spec, NULL);
        struct sch_apply_outcome *same = calloc(1, sizeof(*same));
        if (same == NULL || (same->name = strdup(m->name)) == NULL) {
            free(same);
            return reject(result, GY_ENOMEM, "record outcome");
        }
        same->outcome = SCH_OUTCOME_UNCHANGED;
        same->generation = generation - 1;
        result->outcomes = same;
        result->n_outcomes = 1;
        char obj[128];
        snprintf(obj, sizeof(obj), "workload/%s", m->name);
        return event_add(fsm, cmd, "move", obj, result, "already in %s", m->to);
    }
    char **saved = pl->clouds;
    size_t n_saved = pl->n_clouds;
    char *to = m->to;
    pl->clouds = &to;
    pl->n_clouds = 1;
    Gantry__Placement *saved_pl = spec->placement;
    spec->placement = pl;
    size_t len = gantry__workload_spec__get_packed_size(spec);
    uint8_t *blob = malloc(len ? len : 1);
    if (blob != NULL)
        gantry__workload_spec__pack(spec, blob);
    pl->clouds = saved;
    pl->n_clouds = n_saved;
    spec->placement = saved_pl;
    gantry__workload_spec__free_unpacked(spec, NULL);
    if (blob == NULL)
        return reject(result, GY_ENOMEM, "encode workload %s", m->name);
    sqlite3_stmt *up;
    if (sqlite3_prepare_v2(fsm->db,
                           "UPDATE workloads SET spec = ?, generation = ?, updated_ms = ?"
                           " WHERE name = ?",
                           -1, &up, NULL) != SQLITE_OK) {
        free(blob);
        return reject_sql(fsm, result, "move workload");
    }
    sqlite3_bind_blob(up, 1, blob, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(up, 2, (sqlite3_int64)generation);
    sqlite3_bind_int64(up, 3, (sqlite3_int64)cmd->time_ms);
    sqlite3_bind_text(up, 4, m->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(up);
    sqlite3_finalize(up);
    free(blob);
    if (rc != SQLITE_DONE)
        return reject_sql(fsm, result, "move workload");
    char message[512];
    snprintf(message, sizeof(message), "to %s from %s: %" PRId64 " replicas, generation %" PRIu64,
             m->to, *from ? from : "any cloud", replicas, generation);
    if (run(fsm, "DELETE FROM conditions WHERE workload = ? AND kind IN ('Moved', 'MoveStopped')",
            "t", m->name) < 0 ||
        run(fsm,
            "INSERT INTO conditions (workload, kind, message, time_ms) VALUES (?, 'Moving', ?, ?)"
            " ON CONFLICT (workload, kind) DO UPDATE SET message = excluded.message,"
            " time_ms = excluded.time_ms",
            "tti", m->name, message, (int64_t)cmd->time_ms) < 0)
        return reject_sql(fsm, result, "record move");
    struct sch_apply_outcome *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->name = strdup(m->name)) == NULL) {
        free(o);
        return reject(result, GY_ENOMEM, "record outcome");
    }
    o->outcome = SCH_OUTCOME_UPDATED;
    o->generation = generation;
    result->outcomes = o;
    result->n_outcomes = 1;
    char object[128];
    snprintf(object, sizeof(object), "workload/%s", m->name);
    return event_add(fsm, cmd, "move", object, result, "moving %s", message);
}

/* ---------------------------------------------------------------------------------------
 * Servers and cluster identity */

static int exec_set_server(struct sch_fsm *fsm, const Gantry__Command *cmd,
                           struct sch_result *result)
{
    const Gantry__SetServer *s = cmd->set_server;
    if (s->id == 0 || s->raft_address == NULL || *s->raft_address == '\0')
        return reject(result, GY_EINVAL, "server needs an id and a raft address");
    if (run(fsm,
            "INSERT INTO servers (id, raft_address, api_address, agent_address)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " raft_address = excluded.raft_address, api_address = excluded.api_address,"
            " agent_address = excluded.agent_address",
            "itt"
            "t",
            (int64_t)s->id, s->raft_address, s->api_address, s->agent_address) < 0)
        return reject_sql(fsm, result, "record server");
    char object[64];
    snprintf(object, sizeof(object), "server/%" PRIu64, s->id);
    return event_add(fsm, cmd, "server", object, result, "raft %s, api %s, agent %s",
                     s->raft_address, s->api_address ? s->api_address : "",
                     s->agent_address ? s->agent_address : "");
}

static int exec_remove_server(struct sch_fsm *fsm, const Gantry__Command *cmd,
                              struct sch_result *result)
{
    uint64_t id = cmd->remove_server->id;
    if (run(fsm, "DELETE FROM servers WHERE id = ?", "i", (int64_t)id) < 0)
        return reject_sql(fsm, result, "remove server");
    char object[64];
    snprintf(object, sizeof(object), "server/%" PRIu64, id);
    return event_add(fsm, cmd, "server", object, result, "removed from the cluster");
}

void sch_fsm_cluster_id(struct sch_fsm *fsm, char *buf, size_t len)
{
    sqlite3_stmt *stmt;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(fsm->db, "SELECT value FROM meta WHERE key = 'cluster_id'", -1, &stmt,
                           NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
}

void sch_fsm_server_api_address(struct sch_fsm *fsm, uint64_t id, char *buf, size_t len)
{
    sqlite3_stmt *stmt;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(fsm->db, "SELECT api_address FROM servers WHERE id = ?", -1, &stmt,
                           NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)id);
    if (sqlite3_step(stmt) == SQLITE_ROW)
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
}

bool sch_fsm_server_recorded(struct sch_fsm *fsm, uint64_t id, const char *raft_address,
                             const char *api_address, const char *agent_address)
{
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(fsm->db,
                           "SELECT 1 FROM servers WHERE id = ? AND raft_address = ?"
                           " AND api_address = ? AND agent_address = ?",
                           -1, &stmt, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)id);
    sqlite3_bind_text(stmt, 2, raft_address, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, api_address, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, agent_address, -1, SQLITE_STATIC);
    bool same = sqlite3_step(stmt) == SQLITE_ROW;
    sqlite3_finalize(stmt);
    return same;
}

static int exec_init_cluster(struct sch_fsm *fsm, const Gantry__Command *cmd,
                             struct sch_result *result)
{
    const char *id = cmd->init_cluster->cluster_id;
    char current[128];
    sch_fsm_cluster_id(fsm, current, sizeof(current));
    if (*current != '\0')
        return reject(result, GY_EEXISTS, "cluster id is already %s", current);
    if (id == NULL || strlen(id) < 8 || strlen(id) > 64)
        return reject(result, GY_EINVAL, "cluster id \"%s\" must have 8 to 64 characters",
                      id ? id : "");
    const char *network = cmd->init_cluster->cluster_network;
    uint32_t prefix = cmd->init_cluster->node_prefix;
    uint32_t addr;
    int len;
    if (network != NULL && *network != '\0' && !gy_cidr_parse(network, 8, 28, &addr, &len))
        return reject(result, GY_EINVAL,
                      "cluster network \"%s\" is not an IPv4 network with a prefix of 8 to 28",
                      network);
    if (prefix != 0 && (network == NULL || *network == '\0' || (int)prefix <= len || prefix > 28))
        return reject(result, GY_EINVAL,
                      "node subnet prefix %u must be longer than the cluster network's and at "
                      "most 28",
                      prefix);
    if (run(fsm, "INSERT INTO meta (key, value) VALUES ('cluster_id', ?)", "t", id) < 0)
        return reject_sql(fsm, result, "record cluster id");
    char prefix_text[16];
    snprintf(prefix_text, sizeof(prefix_text), "%u", prefix);
    if ((network != NULL && *network != '\0' &&
         run(fsm, "INSERT INTO meta (key, value) VALUES ('cluster_network', ?)", "t", network) <
             0) ||
        (prefix != 0 &&
         run(fsm, "INSERT INTO meta (key, value) VALUES ('node_prefix', ?)", "t", prefix_text) < 0))
        return reject_sql(fsm, result, "record the cluster network");
    return event_add(fsm, cmd, "cluster", "cluster", result, "cluster %s created", id);
}

/* ---------------------------------------------------------------------------------------
 * Execution */

static int exec_command(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result,
                        int depth);

/* A batch runs its commands in order, each in a savepoint: one that fails changes nothing
 * and leaves the others applied. Batches nest one level, since a proposal that is a batch
 * (a reconcile pass) can share an entry with other proposals (group commit). */
static int exec_batch(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result,
                      int depth)
{
    const Gantry__CommandBatch *batch = cmd->batch;
    result->batch = calloc(batch->n_commands ? batch->n_commands : 1, sizeof(*result->batch));
    if (result->batch == NULL)
        return reject(result, GY_ENOMEM, "allocate batch results");
    result->n_batch = batch->n_commands;
    for (size_t i = 0; i < batch->n_commands; i++) {
        struct sch_result *sub = &result->batch[i];
        const Gantry__Command *inner = batch->commands[i];
        if (inner->cmd_case == GANTRY__COMMAND__CMD_BATCH && depth >= 1) {
            reject(sub, GY_EINVAL, "batches nest at most one level");
            continue;
        }
        /* A condition is checked before its one write: a refusal leaves nothing to undo,
         * so the reconciler's many conditions go without a savepoint each. */
        if (inner->cmd_case == GANTRY__COMMAND__CMD_REPORT_CONDITION) {
            exec_command(fsm, inner, sub, depth + 1);
            if (sub->last_event > result->last_event)
                result->last_event = sub->last_event;
            continue;
        }
        if (exec_sql(fsm, "SAVEPOINT command") < 0)
            return reject_sql(fsm, result, "open savepoint");
        if (exec_command(fsm, inner, sub, depth + 1) < 0) {
            if (exec_sql(fsm, "ROLLBACK TO command") < 0)
                return reject_sql(fsm, result, "roll back savepoint");
            /* The event counter moved with rows that are now gone. */
            fsm->last_event = query_u64(fsm, "SELECT COALESCE(MAX(seq), 0) FROM events");
            sub->last_event = 0;
        }
        if (exec_sql(fsm, "RELEASE command") < 0)
            return reject_sql(fsm, result, "release savepoint");
        if (sub->last_event > result->last_event)
            result->last_event = sub->last_event;
    }
    return 0;
}
/* Past this many names the set is dropped for "all": one full pass is cheaper. */
#define DIRTY_MAX 4096

static void mark_all(struct sch_fsm *fsm)
{
    for (size_t i = 0; i < fsm->n_dirty; i++)
        free(fsm->dirty[i]);
    fsm->n_dirty = 0;
    fsm->dirty_all = true;
}

static void mark_dirty(struct sch_fsm *fsm, const char *workload)
{
    if (fsm->dirty_all || workload == NULL || workload[0] == '\0')
        return;
    if (fsm->n_dirty > 0 && strcmp(fsm->dirty[fsm->n_dirty - 1], workload) == 0)
        return;
    if (fsm->n_dirty >= DIRTY_MAX) {
        mark_all(fsm);
        return;
    }
    if (fsm->n_dirty == fsm->cap_dirty) {
        size_t cap = fsm->cap_dirty ? fsm->cap_dirty * 2 : 64;
        char **grown = realloc(fsm->dirty, cap * sizeof(*grown));
        if (grown == NULL) {
            mark_all(fsm);
            return;
        }
        fsm->dirty = grown;
        fsm->cap_dirty = cap;
    }
    char *copy = strdup(workload);
    if (copy == NULL) {
        mark_all(fsm);
        return;
    }
    fsm->dirty[fsm->n_dirty++] = copy;
}

void sch_fsm_dirty_take(struct sch_fsm *fsm, char ***names, size_t *n, bool *all)
{
    *names = fsm->dirty;
    *n = fsm->n_dirty;
    *all = fsm->dirty_all;
    fsm->dirty = NULL;
    fsm->n_dirty = 0;
    fsm->cap_dirty = 0;
    fsm->dirty_all = false;
}

/* Notes which workloads a command may change, for the leader's next reconcile pass. */
static void note_dirty(struct sch_fsm *fsm, const Gantry__Command *cmd)
{
    switch (cmd->cmd_case) {
    case GANTRY__COMMAND__CMD_APPLY_WORKLOADS:
        for (size_t i = 0; i < cmd->apply_workloads->n_workloads; i++)
            mark_dirty(fsm, cmd->apply_workloads->workloads[i]->name);
        break;
    case GANTRY__COMMAND__CMD_DELETE_WORKLOAD:
        mark_dirty(fsm, cmd->delete_workload->name);
        break;
    case GANTRY__COMMAND__CMD_SCALE_WORKLOAD:
        mark_dirty(fsm, cmd->scale_workload->name);
        break;
    case GANTRY__COMMAND__CMD_MOVE_WORKLOAD:
        mark_dirty(fsm, cmd->move_workload->name);
        break;
    case GANTRY__COMMAND__CMD_PLACE_REPLICAS:
        for (size_t i = 0; i < cmd->place_replicas->n_replicas; i++)
            mark_dirty(fsm, cmd->place_replicas->replicas[i]->workload);
        break;
    case GANTRY__COMMAND__CMD_UPDATE_REPLICAS:
        /* A replica that reports stopped was no longer counted: nothing to decide. */
        for (size_t i = 0; i < cmd->update_replicas->n_updates; i++)
            if (cmd->update_replicas->updates[i]->state != GANTRY__REPLICA_STATE__REPLICA_STOPPED)
                mark_dirty(fsm, cmd->update_replicas->updates[i]->workload);
        break;
    case GANTRY__COMMAND__CMD_REGISTER_NODE:
    case GANTRY__COMMAND__CMD_SET_NODE_STATE:
    case GANTRY__COMMAND__CMD_SET_NODE_CONDITION:
    case GANTRY__COMMAND__CMD_REMOVE_NODE:
        mark_all(fsm);
        break;
    default:
        break;
    }
}

static int exec_command(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result,
                        int depth)
{
    note_dirty(fsm, cmd);
    if (cmd->cmd_case == GANTRY__COMMAND__CMD_UPDATE_REPLICAS) {
        fsm->status_epoch++;
        /* Stops and losses change what agents must run. */
        const Gantry__UpdateReplicas *u = cmd->update_replicas;
        for (size_t i = 0; i < u->n_updates; i++) {
            int st = u->updates[i]->state;
            if (st == GANTRY__REPLICA_STATE__REPLICA_STOPPING ||
                st == GANTRY__REPLICA_STATE__REPLICA_LOST) {
                fsm->fleet_epoch++;
                break;
            }
        }
    } else if (cmd->cmd_case != GANTRY__COMMAND__CMD_BATCH &&
               cmd->cmd_case != GANTRY__COMMAND__CMD_CHECK_DIGEST &&
               cmd->cmd_case != GANTRY__COMMAND__CMD_REPORT_DIVERGENCE) {
        fsm->fleet_epoch++;
    }
    switch (cmd->cmd_case) {
    case GANTRY__COMMAND__CMD_APPLY_WORKLOADS:
        return exec_apply(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_DELETE_WORKLOAD:
        return exec_delete(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_SCALE_WORKLOAD:
        return exec_scale(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_REGISTER_NODE:
        return exec_register_node(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_SET_NODE_STATE:
        return exec_set_node_state(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_REMOVE_NODE:
        return exec_remove_node(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_SET_NODE_TUNNEL:
        return exec_set_node_tunnel(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_SET_NODE_CONDITION:
        return exec_set_node_condition(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_PLACE_REPLICAS:
        return exec_place(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_UPDATE_REPLICAS:
        return exec_update_replicas(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_SET_SERVER:
        return exec_set_server(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_REMOVE_SERVER:
        return exec_remove_server(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_INIT_CLUSTER:
        return exec_init_cluster(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_BATCH:
        return exec_batch(fsm, cmd, result, depth);
    case GANTRY__COMMAND__CMD_REPORT_CONDITION:
        return exec_report_condition(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_MOVE_WORKLOAD:
        return exec_move(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_CHECK_DIGEST:
        return exec_check_digest(fsm, cmd, result);
    case GANTRY__COMMAND__CMD_REPORT_DIVERGENCE:
        return exec_report_divergence(fsm, cmd, result);
    default:
        return reject(result, GY_EINVAL, "command holds no operation");
    }
}

/* Commands run inside one transaction that stays open until sch_fsm_flush, each in a
 * savepoint of its own: the commands applied in one turn of the loop share one commit, so
 * the pages they all touch (the newest events, the indexes) are written to the file once.
 * Every read goes through this connection and sees them at once. */
int sch_fsm_execute(struct sch_fsm *fsm, const Gantry__Command *cmd, struct sch_result *result)
{
    memset(result, 0, sizeof(*result));
    if (sqlite3_get_autocommit(fsm->db) && exec_sql(fsm, "BEGIN") < 0) {
        fsm->applied++;
        fsm->rejected++;
        return reject_sql(fsm, result, "begin transaction");
    }
    /* A batch runs each of its commands in a savepoint of its own, and fails as a whole only
     * before writing anything or when the storage fails (which stops the server): it needs
     * no savepoint around it, which spares copying every page it touches once more. */
    bool savepoint = cmd->cmd_case != GANTRY__COMMAND__CMD_BATCH;
    if (savepoint && exec_sql(fsm, "SAVEPOINT entry") < 0) {
        fsm->applied++;
        fsm->rejected++;
        return reject_sql(fsm, result, "open savepoint");
    }
    uint64_t events_before = fsm->last_event;
    int rc = exec_command(fsm, cmd, result, 0);
    if (rc < 0 && savepoint) {
        if (exec_sql(fsm, "ROLLBACK TO entry") < 0)
            note_storage_error(fsm);
        fsm->last_event = events_before;
        result->last_event = 0;
    } else if (rc < 0 && result->batch != NULL) {
        /* Past its first savepoint, only the storage fails a batch as a whole. */
        if (!fsm->storage_failed)
            gy_log_error("state database failed", "error=\"%s\"",
                         result->message ? result->message : "batch");
        fsm->storage_failed = true;
    }
    if (savepoint && exec_sql(fsm, "RELEASE entry") < 0)
        note_storage_error(fsm);
    fsm->applied++;
    if (rc < 0)
        fsm->rejected++;
    return rc;
}

int sch_fsm_flush(struct sch_fsm *fsm)
{
    if (fsm->db == NULL || sqlite3_get_autocommit(fsm->db))
        return 0;
    uint64_t applied = fsm->applied_index;
    if (store_position(fsm) == 0 && exec_sql(fsm, "COMMIT") == 0) {
        fsm->stored_index = applied;
        /* The log is copied into the database file now and then. */
        if (*fsm->path != '\0' && fsm->wal_frames >= SCH_FSM_WAL_FRAMES)
            checkpoint_start(fsm);
        return 0;
    }
    /* The applied commands are still in the open transaction, but the file lost them:
     * this server stops (see storage_failed) rather than carry on diverging. */
    note_storage_error(fsm);
    fsm->storage_failed = true;
    return -1;
}

int sch_fsm_apply_entry(struct sch_fsm *fsm, const void *buf, size_t len, struct sch_result **out)
{
    struct sch_result *result = calloc(1, sizeof(*result));
    struct gy_error err;
    *out = NULL;
    if (fsm->arena.allocator.alloc == NULL)
        sch_arena_init(&fsm->arena);
    Gantry__Command *cmd = sch_command_decode_with(buf, len, &fsm->arena.allocator, &err);
    if (result == NULL) {
        /* Nothing can be recorded; the command itself must still apply on every server. */
        if (cmd != NULL) {
            struct sch_result local;
            sch_fsm_execute(fsm, cmd, &local);
            result_clear(&local);
        }
        sch_arena_reset(&fsm->arena);
        return 0;
    }
    if (cmd == NULL) {
        reject(result, GY_EPROTO, "%s", err.msg);
        fsm->applied++;
        fsm->rejected++;
        gy_log_error("rejected a malformed log entry", "bytes=%zu error=\"%s\"", len, err.msg);
    } else {
        sch_fsm_execute(fsm, cmd, result);
    }
    sch_arena_reset(&fsm->arena);
    *out = result;
    return 0;
}

struct sch_result *sch_fsm_result_claim(struct sch_fsm *fsm, void *opaque)
{
    struct sch_result *result = opaque;
    if (result == NULL)
        return NULL;
    if (fsm->slots[result->slot] == result)
        fsm->slots[result->slot] = NULL;
    return result;
}

/* ---------------------------------------------------------------------------------------
 * Snapshots */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The snapshot header block: magic, header length, SnapshotHeader, zero padding to 8. It
 * records where the database stands (stored_index, lineage): an image is the database at
 * that index, a marker names the database file that holds it (or a later one). */
static int header_encode(struct sch_fsm *fsm, uint32_t format, size_t db_len, uint8_t **out,
                         size_t *len)
{
    char cluster_id[128];
    sch_fsm_cluster_id(fsm, cluster_id, sizeof(cluster_id));
    Gantry__SnapshotHeader header = GANTRY__SNAPSHOT_HEADER__INIT;
    header.format = format;
    header.schema_version = SCH_FSM_SCHEMA_VERSION;
    header.cluster_id = cluster_id;
    header.database_bytes = db_len;
    header.applied_index = fsm->stored_index;
    header.lineage = fsm->lineage;
    size_t packed = gantry__snapshot_header__get_packed_size(&header);
    size_t total = (8 + packed + 7) & ~(size_t)7;
    uint8_t *buf = calloc(1, total);
    if (buf == NULL)
        return -1;
    put_u32(buf, SNAPSHOT_MAGIC);
    put_u32(buf + 4, (uint32_t)packed);
    gantry__snapshot_header__pack(&header, buf + 8);
    *out = buf;
    *len = total;
    return 0;
}

struct header_info {
    uint32_t format;
    uint64_t applied_index;
    uint64_t lineage;
    char cluster_id[128];
    size_t header_len; /* the database image starts here */
};

/* Checks a snapshot's header block: a marker, or an image whose database fills the rest. */
static int header_decode(const uint8_t *buf, size_t len, struct header_info *info,
                         struct gy_error *err)
{
    memset(info, 0, sizeof(*info));
    if (len < 8 || get_u32(buf) != SNAPSHOT_MAGIC)
        return gy_error_set(err, GY_EPROTO, "snapshot has no Gantry header");
    size_t packed = get_u32(buf + 4);
    size_t header_len = (8 + packed + 7) & ~(size_t)7;
    if (packed > len || header_len > len)
        return gy_error_set(err, GY_EPROTO, "snapshot header of %zu bytes is truncated", packed);
    Gantry__SnapshotHeader *header = gantry__snapshot_header__unpack(NULL, packed, buf + 8);
    if (header == NULL)
        return gy_error_set(err, GY_EPROTO, "snapshot header is not a SnapshotHeader");
    uint32_t schema = header->schema_version;
    uint64_t db_len = header->database_bytes;
    info->format = header->format;
    info->applied_index = header->applied_index;
    info->lineage = header->lineage;
    snprintf(info->cluster_id, sizeof(info->cluster_id), "%s",
             header->cluster_id != NULL ? header->cluster_id : "");
    info->header_len = header_len;
    gantry__snapshot_header__free_unpacked(header, NULL);
    if (info->format != SNAPSHOT_FORMAT && info->format != SNAPSHOT_MARKER)
        return gy_error_set(err, GY_EPROTO, "snapshot format %u is not supported (want %d or %d)",
                            info->format, SNAPSHOT_FORMAT, SNAPSHOT_MARKER);
    if (schema != SCH_FSM_SCHEMA_VERSION)
        return gy_error_set(err, GY_EPROTO, "snapshot schema version %u is not supported (want %d)",
                            schema, SCH_FSM_SCHEMA_VERSION);
    if (info->format == SNAPSHOT_MARKER ? db_len != 0 : db_len != len - header_len)
        return gy_error_set(err, GY_EPROTO, "snapshot holds %zu database bytes, header says %llu",
                            len - header_len, (unsigned long long)db_len);
    return 0;
}

bool sch_fsm_is_marker(const void *buf, size_t len)
{
    struct header_info info;
    struct gy_error err;
    return header_decode(buf, len, &info, &err) == 0 && info.format == SNAPSHOT_MARKER;
}

/* Reads len bytes of the file at path into buf; false on any shortfall. */
static bool read_whole(const char *path, uint8_t *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t have = 0;
    while (have < len) {
        ssize_t n = pread(fd, buf + have, len - have, (off_t)have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    return have == len;
}

/* The database image behind its header, in one buffer from alloc. A file-backed database
 * is read from its file straight into that buffer: between commands no transaction is open
 * and, after a full checkpoint, the file holds every committed page, so it is the
 * consistent image, and reading it costs a few milliseconds where sqlite3_serialize, page
 * by page through a small cache, took several times that on the loop. An in-memory one is
 * serialized. */
static void drain(struct sch_fsm *fsm);

static int build_image(struct sch_fsm *fsm, void *(*alloc)(size_t), void **out, size_t *len,
                       struct gy_error *err)
{
    drain(fsm);
    sch_fsm_flush(fsm);
    size_t total = 0;
    unsigned char *copy = NULL;
    /* A copy under way on the thread pool would make this one fail: it waits for it. */
    if (fsm->ckpt_ready)
        uv_mutex_lock(&fsm->ckpt_lock);
    int ckpt =
        *fsm->path != '\0' && sqlite3_get_autocommit(fsm->db) != 0
            ? sqlite3_wal_checkpoint_v2(fsm->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL)
            : SQLITE_MISUSE;
    if (fsm->ckpt_ready)
        uv_mutex_unlock(&fsm->ckpt_lock);
    if (ckpt == SQLITE_OK) {
        fsm->wal_frames = 0;
        total = (size_t)(query_u64(fsm, "PRAGMA page_count") * query_u64(fsm, "PRAGMA page_size"));
    } else {
        sqlite3_int64 n = 0;
        if ((copy = sqlite3_serialize(fsm->db, "main", &n, 0)) == NULL)
            return gy_error_set(err, GY_ENOMEM, "serialize state database");
        total = (size_t)n;
    }
    uint8_t *header;
    size_t header_len;
    if (header_encode(fsm, SNAPSHOT_FORMAT, total, &header, &header_len) < 0) {
        sqlite3_free(copy);
        return gy_error_set(err, GY_ENOMEM, "encode snapshot header");
    }
    uint8_t *image = alloc(header_len + total);
    if (image == NULL) {
        free(header);
        sqlite3_free(copy);
        return gy_error_set(err, GY_ENOMEM, "allocate a snapshot image of %zu bytes",
                            header_len + total);
    }
    memcpy(image, header, header_len);
    free(header);
    if (copy != NULL) {
        memcpy(image + header_len, copy, total);
        sqlite3_free(copy);
    } else if (!read_whole(fsm->path, image + header_len, total)) {
        int rc = gy_error_sys(err, errno ? errno : EIO, "read state database %s", fsm->path);
        (alloc == raft_malloc ? raft_free : free)(image);
        return rc;
    } else if (total >= 100) {
        image[header_len + 18] = image[header_len + 19] = 1; /* rollback journal, not WAL */
    }
    *out = image;
    *len = header_len + total;
    return 0;
}

int sch_fsm_snapshot_image(struct sch_fsm *fsm, void **out, size_t *len, struct gy_error *err)
{
    return build_image(fsm, malloc, out, len, err);
}

int sch_fsm_image_for_marker(struct sch_fsm *fsm, struct raft_buffer *buf, struct gy_error *err)
{
    if (fsm->db == NULL)
        return gy_error_set(err, GY_EUNAVAILABLE, "the state database is closed");
    void *image;
    size_t len;
    int rc = build_image(fsm, raft_malloc, &image, &len, err);
    if (rc < 0)
        return rc;
    raft_free(buf->base);
    buf->base = image;
    buf->len = len;
    return 0;
}

/* Writes a database image to a new file and syncs it. */
static int write_image(const char *path, const uint8_t *data, size_t len, struct gy_error *err)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return gy_error_sys(err, errno, "remove %s", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return gy_error_sys(err, errno, "create %s", path);
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = gy_error_sys(err, n < 0 ? errno : EIO, "write %s", path);
            close(fd);
            unlink(path);
            return rc;
        }
        data += n;
        len -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        int rc = gy_error_sys(err, errno, "sync %s", path);
        close(fd);
        unlink(path);
        return rc;
    }
    close(fd);
    return 0;
}

/* Syncs the directory holding path, so that a rename in it is durable. */
static int sync_dir_of(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Checks an image written to fsm->spare_path, then puts it in place of the database file:
 * the old file's write-ahead log goes first (it must not be read into the new file), then
 * the rename. A crash at any point leaves a consistent database under path, or none. */
static int install_file(struct sch_fsm *fsm, struct gy_error *err)
{
    sqlite3 *db = NULL;
    bool ok = open_file_db(fsm->spare_path, &db) == SQLITE_OK &&
              schema_matches(db, SCH_FSM_SCHEMA_VERSION);
    if (!ok) {
        int rc = gy_error_set(err, GY_EPROTO,
                              "snapshot database %s is not a state database of schema "
                              "version %d: %s",
                              fsm->spare_path, SCH_FSM_SCHEMA_VERSION,
                              db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        unlink_db(fsm->spare_path);
        return rc;
    }
    sqlite3_close(db);
    checkpoint_detach(fsm);
    finalize_all(fsm);
    sqlite3_close(fsm->db);
    fsm->db = NULL;
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s-wal", fsm->path);
    int rc = 0;
    if ((unlink(wal) < 0 && errno != ENOENT) || rename(fsm->spare_path, fsm->path) < 0)
        rc = gy_error_sys(err, errno, "replace state database %s", fsm->path);
    snprintf(wal, sizeof(wal), "%s-wal", fsm->spare_path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", fsm->spare_path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", fsm->path);
    unlink(wal);
    sync_dir_of(fsm->path);
    if (open_file_db(fsm->path, &fsm->db) != SQLITE_OK) {
        rc = gy_error_set(err, GY_EIO, "open state database %s: %s", fsm->path,
                          fsm->db ? sqlite3_errmsg(fsm->db) : "out of memory");
        fsm->storage_failed = true;
        return rc;
    }
    sqlite3_wal_hook(fsm->db, wal_hook, fsm);
    fsm->wal_frames = 0;
    if (rc < 0)
        fsm->storage_failed = true; /* the old state is gone, the new one is not in place */
    return rc;
}

int sch_fsm_restore_image(struct sch_fsm *fsm, const void *data, size_t len, struct gy_error *err)
{
    const uint8_t *buf = data;
    struct header_info info;
    int rc = header_decode(buf, len, &info, err);
    if (rc < 0)
        return rc;
    if (info.format != SNAPSHOT_FORMAT)
        return gy_error_set(err, GY_EPROTO, "snapshot is a marker and holds no database");
    size_t db_len = len - info.header_len;

    if (*fsm->path != '\0') {
        /* Written and checked under the other name first, so a bad image leaves the state
         * as it was. */
        if ((rc = write_image(fsm->spare_path, buf + info.header_len, db_len, err)) < 0)
            return rc;
        sch_fsm_flush(fsm);
        if ((rc = install_file(fsm, err)) < 0)
            return rc;
    } else {
        /* In memory: loaded into a fresh connection first, for the same reason. */
        sqlite3 *db = NULL;
        if (open_memdb(&db) != SQLITE_OK) {
            sqlite3_close(db);
            return gy_error_set(err, GY_ENOMEM, "open database for restore");
        }
        unsigned char *copy = sqlite3_malloc64(db_len ? db_len : 1);
        if (copy == NULL) {
            sqlite3_close(db);
            return gy_error_set(err, GY_ENOMEM, "allocate %zu bytes for restore", db_len);
        }
        memcpy(copy, buf + info.header_len, db_len);
        if (sqlite3_deserialize(db, "main", copy, (sqlite3_int64)db_len, (sqlite3_int64)db_len,
                                SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) !=
            SQLITE_OK) {
            rc = gy_error_set(err, GY_EPROTO, "load snapshot database: %s", sqlite3_errmsg(db));
            sqlite3_close(db);
            return rc;
        }
        if (!schema_matches(db, SCH_FSM_SCHEMA_VERSION)) {
            sqlite3_close(db);
            return gy_error_set(err, GY_EPROTO, "snapshot database has no matching schema version");
        }
        finalize_all(fsm);
        sqlite3_close(fsm->db);
        fsm->db = db;
    }
    if ((rc = prepare_all(fsm, err)) < 0)
        return rc;
    if (read_position(fsm) < 0) {
        fsm->storage_failed = true;
        return gy_error_set(err, GY_EIO, "read the restored database's position: %s",
                            sqlite3_errmsg(fsm->db));
    }
    fsm->last_event = query_u64(fsm, "SELECT COALESCE(MAX(seq), 0) FROM events");
    fsm->restores++;
    fsm->log_bytes = 0;
    fsm->fleet_epoch++;
    mark_all(fsm);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * A new cluster seeded from a snapshot file (gantry-scheduler --restore) */

/* One number a query on db answers, or -1. */
static int64_t db_count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
}

int sch_fsm_image_check(const void *data, size_t len, struct sch_image_info *info,
                        struct gy_error *err)
{
    const uint8_t *buf = data;
    memset(info, 0, sizeof(*info));
    struct header_info header;
    int rc = header_decode(buf, len, &header, err);
    if (rc < 0)
        return rc;
    if (header.format != SNAPSHOT_FORMAT)
        return gy_error_set(err, GY_EPROTO,
                            "it is a snapshot marker of a server's data directory, which names "
                            "a database file instead of holding one");
    size_t db_len = len - header.header_len;
    static const char sqlite_magic[16] = "SQLite format 3";
    if (db_len < 100 || memcmp(buf + header.header_len, sqlite_magic, 16) != 0)
        return gy_error_set(err, GY_EPROTO,
                            "the %zu bytes after its header are not an SQLite database", db_len);
    /* Read in place, in memory, read-only: nothing is written anywhere. */
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        sqlite3_close(db);
        return gy_error_set(err, GY_ENOMEM, "open a database to check the snapshot");
    }
    if (sqlite3_deserialize(db, "main", (unsigned char *)buf + header.header_len,
                            (sqlite3_int64)db_len, (sqlite3_int64)db_len,
                            SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
        rc = gy_error_set(err, GY_EPROTO, "its database does not open: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return rc;
    }
    /* Every page, index and constraint: a file cut short or overwritten in its structure
     * fails here (row contents carry no checksum). */
    sqlite3_stmt *check = NULL;
    char problem[300] = "";
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &check, NULL) != SQLITE_OK) {
        snprintf(problem, sizeof(problem), "%s", sqlite3_errmsg(db));
    } else {
        int step = sqlite3_step(check);
        const char *verdict =
            step == SQLITE_ROW ? (const char *)sqlite3_column_text(check, 0) : NULL;
        if (verdict == NULL)
            snprintf(problem, sizeof(problem), "%s", sqlite3_errmsg(db));
        else if (strcmp(verdict, "ok") != 0)
            snprintf(problem, sizeof(problem), "%s", verdict);
    }
    /* One line: SQLite's report starts with a line naming the schema. */
    const char *banner = "*** in database main ***\n";
    if (strncmp(problem, banner, strlen(banner)) == 0)
        memmove(problem, problem + strlen(banner), strlen(problem + strlen(banner)) + 1);
    for (char *c = problem; *c != '\0'; c++)
        if (*c == '\n')
            *c = ' ';
    sqlite3_finalize(check);
    if (*problem != '\0') {
        sqlite3_close(db);
        return gy_error_set(err, GY_EPROTO, "its database is damaged: %s", problem);
    }
    if (!schema_matches(db, SCH_FSM_SCHEMA_VERSION)) {
        sqlite3_close(db);
        return gy_error_set(err, GY_EPROTO,
                            "its database is not a Gantry state of schema version %d",
                            SCH_FSM_SCHEMA_VERSION);
    }
    int64_t workloads = db_count(db, "SELECT COUNT(*) FROM workloads");
    int64_t nodes = db_count(db, "SELECT COUNT(*) FROM nodes");
    int64_t replicas = db_count(db, "SELECT COUNT(*) FROM replicas");
    if (workloads < 0 || nodes < 0 || replicas < 0 ||
        db_count(db, "SELECT COUNT(*) FROM events") < 0 ||
        db_count(db, "SELECT COUNT(*) FROM servers") < 0) {
        rc = gy_error_set(err, GY_EPROTO, "its database lacks the tables of the state: %s",
                          sqlite3_errmsg(db));
        sqlite3_close(db);
        return rc;
    }
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'cluster_id'", -1, &stmt,
                           NULL) == SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL)
            snprintf(info->cluster_id, sizeof(info->cluster_id), "%s",
                     (const char *)sqlite3_column_text(stmt, 0));
        sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    info->applied_index = header.applied_index;
    info->database_bytes = db_len;
    info->workloads = (uint64_t)workloads;
    info->nodes = (uint64_t)nodes;
    info->replicas = (uint64_t)replicas;
    return 0;
}

int sch_fsm_seed(struct sch_fsm *fsm, const void *buf, size_t len, bool keep_cluster_id,
                 struct gy_error *err)
{
    struct sch_image_info info;
    int rc = sch_fsm_image_check(buf, len, &info, err);
    if (rc < 0)
        return rc;
    if ((rc = sch_fsm_restore_image(fsm, buf, len, err)) < 0)
        return rc;
    /* The new cluster's log starts at its bootstrap entry: the database is at index 0 of
     * it, in a file of its own lineage. Its servers record themselves as they start or
     * join; the first leader names a new cluster unless the old id is kept. */
    char message[400];
    snprintf(message, sizeof(message),
             "restored from a snapshot of cluster %s at index %" PRIu64 "%s",
             *info.cluster_id ? info.cluster_id : "(unnamed)", info.applied_index,
             keep_cluster_id ? ", keeping its cluster id" : "");
    sqlite3_stmt *event = NULL;
    bool ok = sqlite3_exec(fsm->db,
                           "BEGIN IMMEDIATE;"
                           " UPDATE position SET applied_index = 0,"
                           "  lineage = random() & 9223372036854775807 WHERE id = 0;"
                           " DELETE FROM servers;",
                           NULL, NULL, NULL) == SQLITE_OK;
    if (ok && !keep_cluster_id)
        ok = sqlite3_exec(fsm->db, "DELETE FROM meta WHERE key = 'cluster_id'", NULL, NULL, NULL) ==
             SQLITE_OK;
    if (ok)
        ok = sqlite3_prepare_v2(fsm->db,
                                "INSERT INTO events (seq, time_ms, actor, kind, object, message)"
                                " VALUES (?, ?, 'restore', 'cluster', 'cluster', ?)",
                                -1, &event, NULL) == SQLITE_OK;
    if (ok) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sqlite3_bind_int64(event, 1, (sqlite3_int64)(fsm->last_event + 1));
        sqlite3_bind_int64(event, 2, (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        sqlite3_bind_text(event, 3, message, -1, SQLITE_STATIC);
        ok = sqlite3_step(event) == SQLITE_DONE;
    }
    sqlite3_finalize(event);
    if (ok)
        ok = sqlite3_exec(fsm->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        rc = gy_error_set(err, GY_EIO, "prepare the restored state for a new cluster: %s",
                          sqlite3_errmsg(fsm->db));
        sqlite3_exec(fsm->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (read_position(fsm) < 0)
        return gy_error_set(err, GY_EIO, "read the restored database's position: %s",
                            sqlite3_errmsg(fsm->db));
    fsm->last_event++;
    if (*fsm->path != '\0') {
        /* Durable before the new cluster's log is written: a start that stops short of
         * that may simply be run again. */
        int src = sch_fsm_sync_files(fsm->path);
        if (src < 0)
            return gy_error_sys(err, -src, "sync state database %s", fsm->path);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * raft_fsm callbacks */

/* Steps of the loop that take this long are logged (debug): they delay Raft's heartbeats. */
#define SLOW_MS 50

static void apply_now(struct sch_fsm *fsm, const void *base, size_t len, uint64_t index,
                      bool leading, void **out)
{
    struct sch_result *result;
    uint64_t t0 = uv_hrtime();
    fsm->applying_index = index;
    sch_fsm_apply_entry(fsm, base, len, &result);
    fsm->applying_index = 0;
    if (index > fsm->applied_index)
        fsm->applied_index = index;
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    if (took_ms >= SLOW_MS)
        gy_log_debug("slow apply", "bytes=%zu took_ms=%" PRIu64, len, took_ms);
    if (result != NULL && leading) {
        /* Keep it in the ring until the proposer's callback claims it; an entry of an earlier
         * leader has no proposer here, and its result is freed when the slot comes round. */
        size_t slot = fsm->applied % SCH_FSM_RESULT_SLOTS;
        sch_result_free(fsm->slots[slot]);
        result->slot = slot;
        fsm->slots[slot] = result;
        *out = result;
    } else {
        sch_result_free(result);
    }
    if (fsm->hooks.applied != NULL)
        fsm->hooks.applied(fsm->hooks.data, fsm);
}

/* Applies the entries that wait; an entry the database holds already (installed with an
 * image while they waited) is skipped. */
static void drain(struct sch_fsm *fsm)
{
    if (fsm->draining || fsm->n_deferred == 0)
        return; /* an applied hook that reads the state comes back here */
    fsm->draining = true;
    for (size_t i = 0; i < fsm->n_deferred; i++) {
        void *unused = NULL;
        if (fsm->deferred[i].index == 0 || fsm->deferred[i].index > fsm->skip_through)
            apply_now(fsm, fsm->deferred[i].buf, fsm->deferred[i].len, fsm->deferred[i].index,
                      false, &unused);
        else
            fsm->skipped++;
        free(fsm->deferred[i].buf);
    }
    fsm->n_deferred = 0;
    fsm->deferred_bytes = 0;
    fsm->draining = false;
}

void sch_fsm_drain(struct sch_fsm *fsm)
{
    /* While the state is held for a rebuild, entries wait for the new database; a snapshot
     * or a restore still takes them (drain). */
    if (!fsm->holding)
        drain(fsm);
}

void sch_fsm_hold(struct sch_fsm *fsm, bool hold)
{
    fsm->holding = hold;
    if (!hold)
        drain(fsm);
}

int sch_fsm_rebuild(struct sch_fsm *fsm, const void *image, size_t len, uint64_t stored,
                    struct gy_error *err)
{
    struct header_info info;
    int rc = header_decode(image, len, &info, err);
    if (rc < 0)
        return rc;
    char cluster[80];
    sch_fsm_cluster_id(fsm, cluster, sizeof(cluster));
    if (*cluster != '\0' && strcmp(info.cluster_id, cluster) != 0)
        return gy_error_set(err, GY_ECONFLICT, "the image is of cluster %s, not %s",
                            info.cluster_id, cluster);
    /* Every entry this database executed must be in the image: the ones after it that wait
     * are applied once it is installed, and libraft gives none of the others again. */
    if (info.applied_index < fsm->applied_index)
        return gy_error_set(err, GY_EUNAVAILABLE,
                            "the image holds the state at index %" PRIu64
                            ", before this server's %" PRIu64,
                            info.applied_index, fsm->applied_index);
    /* A state that waited for an image keeps the lineage of the file its marker names. */
    uint64_t lineage = fsm->image_needed != 0 ? fsm->image_lineage : fsm->lineage;
    /* Nor may it hold entries this server's log has not stored yet: a start checks that the
     * log reaches the database's index. */
    if (info.applied_index > stored)
        return gy_error_set(err, GY_EUNAVAILABLE,
                            "the image holds the state at index %" PRIu64
                            ", past this server's stored log (%" PRIu64 ")",
                            info.applied_index, stored);
    if ((rc = sch_fsm_restore_image(fsm, image, len, err)) < 0)
        return rc;
    /* The file keeps this server's lineage: its Raft snapshots are markers naming it, and the
     * rebuilt state (at the image's index, past every marker's) still continues its log. */
    if (*fsm->path != '\0' && lineage != fsm->lineage) {
        char sql[96];
        snprintf(sql, sizeof(sql), "UPDATE position SET lineage = %" PRId64 " WHERE id = 0",
                 (int64_t)lineage);
        if (sqlite3_exec(fsm->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            return gy_error_set(err, GY_EIO, "record the rebuilt database's lineage: %s",
                                sqlite3_errmsg(fsm->db));
        fsm->lineage = lineage;
    }
    fsm->rebuilds++;
    fsm->image_needed = 0;
    sch_fsm_hold(fsm, false);
    return 0;
}

static void deferred_free(struct sch_fsm *fsm)
{
    for (size_t i = 0; i < fsm->n_deferred; i++)
        free(fsm->deferred[i].buf);
    free(fsm->deferred);
    fsm->deferred = NULL;
    fsm->n_deferred = fsm->cap_deferred = fsm->deferred_bytes = 0;
}

/* Keeps a copy of a follower's entry for sch_fsm_drain; false when it must be applied now
 * (too much waits already, or no memory). */
static bool defer(struct sch_fsm *fsm, const struct raft_buffer *buf, uint64_t index)
{
    size_t limit = fsm->holding ? SCH_FSM_HOLD_BYTES : SCH_FSM_DEFER_BYTES;
    if (fsm->deferred_bytes + buf->len > limit)
        return false;
    if (fsm->n_deferred == fsm->cap_deferred) {
        size_t cap = fsm->cap_deferred ? fsm->cap_deferred * 2 : 64;
        struct sch_fsm_deferred *grown = realloc(fsm->deferred, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        fsm->deferred = grown;
        fsm->cap_deferred = cap;
    }
    void *copy = malloc(buf->len > 0 ? buf->len : 1);
    if (copy == NULL)
        return false;
    memcpy(copy, buf->base, buf->len);
    fsm->deferred[fsm->n_deferred].buf = copy;
    fsm->deferred[fsm->n_deferred].len = buf->len;
    fsm->deferred[fsm->n_deferred].index = index;
    fsm->n_deferred++;
    fsm->deferred_bytes += buf->len;
    return true;
}

static int fsm_apply_cb(struct raft_fsm *rf, const struct raft_buffer *buf, void **out)
{
    struct sch_fsm *fsm = rf->data;
    *out = NULL;
    fsm->log_bytes += buf->len;
    /* libraft applies entries in order and counts this one as applied once this returns. */
    uint64_t index = fsm->raft_applied != NULL ? (uint64_t)*fsm->raft_applied + 1 : 0;
    if (index != 0 && index <= fsm->skip_through) {
        /* Replayed after a restart or a restore: the database holds it already. */
        fsm->skipped++;
        return 0;
    }
    bool leading = fsm->hooks.want_result != NULL && fsm->hooks.want_result(fsm->hooks.data);
    if ((fsm->defer_applies || fsm->holding) && !leading && defer(fsm, buf, index))
        return 0;
    drain(fsm);
    apply_now(fsm, buf->base, buf->len, index, leading, out);
    /* Rejected commands are reported through the result: a non-zero return would stop this
     * server from applying anything further. */
    return 0;
}

/* A file-backed state's snapshot is a marker: the header alone, naming the database file
 * (lineage) and the index it holds, recorded in the file before the marker is made. The
 * server syncs the file before libraft writes the marker (sch_fsm_sync_files), so the
 * log entries the snapshot lets libraft drop are in durable state, and a snapshot costs a
 * sync of what changed instead of a copy of the whole state on every server. An in-memory
 * state's snapshot is its image. */
static int raft_snapshot_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct sch_fsm *fsm = rf->data;
    if (fsm->image_needed != 0)
        return RAFT_BUSY; /* nothing to mark: the state is the leader's image to come */
    drain(fsm);           /* the snapshot is of everything libraft counts as applied */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct raft_buffer *array = malloc(2 * sizeof(*array));
    if (array == NULL)
        return RAFT_NOMEM;
    uint8_t *header = NULL;
    size_t header_len = 0;
    size_t db_len = 0;
    unsigned n = 1;
    if (*fsm->path != '\0') {
        /* Entries past the last command (barriers, configuration changes) are covered too. */
        if (fsm->raft_applied != NULL && *fsm->raft_applied > fsm->applied_index)
            fsm->applied_index = *fsm->raft_applied;
        if (sch_fsm_flush(fsm) < 0 || store_position(fsm) < 0) {
            note_storage_error(fsm);
            free(array);
            gy_log_error("snapshot failed", "error=\"record the applied index: %s\"",
                         sqlite3_errmsg(fsm->db));
            return RAFT_IOERR;
        }
        fsm->stored_index = fsm->applied_index;
        if (header_encode(fsm, SNAPSHOT_MARKER, 0, &header, &header_len) < 0) {
            free(array);
            return RAFT_NOMEM;
        }
    } else {
        sqlite3_int64 len = 0;
        sch_fsm_flush(fsm);
        array[1].base = sqlite3_serialize(fsm->db, "main", &len, 0);
        array[1].len = (size_t)len;
        db_len = (size_t)len;
        if (array[1].base == NULL ||
            header_encode(fsm, SNAPSHOT_FORMAT, db_len, &header, &header_len) < 0) {
            sqlite3_free(array[1].base);
            free(array);
            gy_log_error("snapshot failed", "error=\"out of memory\"");
            return RAFT_NOMEM;
        }
        n = 2;
    }
    array[0].base = header;
    array[0].len = header_len;
    *bufs = array;
    *n_bufs = n;
    fsm->snapshots++;
    fsm->log_bytes = 0;
    if (fsm->hooks.snapshot != NULL)
        fsm->hooks.snapshot(fsm->hooks.data, fsm);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    gy_log_info("snapshot taken", "index=%" PRIu64 " bytes=%zu marker=%s took_ms=%ld",
                fsm->applied_index, header_len + db_len, n == 1 ? "yes" : "no",
                (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    return 0;
}

static int raft_snapshot_finalize_cb(struct raft_fsm *rf, struct raft_buffer *bufs[],
                                     unsigned *n_bufs)
{
    (void)rf;
    if (*bufs != NULL && *n_bufs >= 1)
        free((*bufs)[0].base);
    if (*bufs != NULL && *n_bufs == 2)
        sqlite3_free((*bufs)[1].base);
    free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/* A marker needs this server's database file at its index or past it; an image is taken
 * unless the file is already at or past the image (after a restart, the image a follower
 * installed earlier). Entries libraft then replays up to the database's index are skipped. */
static int restore(struct sch_fsm *fsm, const struct raft_buffer *buf, bool *kept,
                   struct gy_error *err)
{
    struct header_info info;
    int rc = header_decode(buf->base, buf->len, &info, err);
    if (rc < 0)
        return rc;
    bool same_file = *fsm->path != '\0' && info.lineage == fsm->lineage &&
                     fsm->stored_index >= info.applied_index;
    *kept = info.format == SNAPSHOT_MARKER || (same_file && info.applied_index > 0);
    if (info.format == SNAPSHOT_MARKER && !same_file && *fsm->damaged_path != '\0') {
        /* The file the marker names was damaged: the state waits for the leader's image of
         * this index or later, and the entries after it wait with it. */
        fsm->image_needed = info.applied_index;
        fsm->image_lineage = info.lineage;
        fsm->applied_index = info.applied_index;
        fsm->skip_through = info.applied_index;
        fsm->holding = true;
        fsm->restores++;
        fsm->log_bytes = 0;
        *kept = false;
        gy_log_warn("state waits for the leader's image",
                    "index=%" PRIu64 " reason=\"the snapshot needs the damaged state database "
                    "(moved to %s)\"",
                    info.applied_index, fsm->damaged_path);
        return 0;
    }
    if (info.format == SNAPSHOT_MARKER && !same_file)
        return gy_error_set(err, GY_ECONFLICT,
                            "the snapshot needs state database %s of lineage %" PRIx64
                            " at index %" PRIu64 " or later, but it is of lineage %" PRIx64
                            " at index %" PRIu64,
                            *fsm->path ? fsm->path : "(in memory)", info.lineage,
                            info.applied_index, fsm->lineage, fsm->stored_index);
    if (*kept) {
        fsm->skip_through = fsm->stored_index;
        fsm->restores++;
        fsm->log_bytes = 0;
        fsm->fleet_epoch++;
        mark_all(fsm);
        return 0;
    }
    return sch_fsm_restore_image(fsm, buf->base, buf->len, err);
}

static int raft_restore_cb(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct sch_fsm *fsm = rf->data;
    struct gy_error err;
    drain(fsm); /* the snapshot covers them; applied, nothing waits out of order */
    bool kept = false;
    if (restore(fsm, buf, &kept, &err) < 0) {
        gy_log_error("snapshot restore failed", "error=\"%s\"", err.msg);
        return RAFT_CORRUPT;
    }
    /* On success the state machine owns the buffer. */
    raft_free(buf->base);
    gy_log_info("snapshot restored",
                "bytes=%zu database=%s applied_index=%" PRIu64 " last_event=%" PRIu64, buf->len,
                fsm->image_needed != 0 ? "awaited"
                : kept                 ? "kept"
                                       : "replaced",
                fsm->stored_index, fsm->last_event);
    if (fsm->hooks.applied != NULL)
        fsm->hooks.applied(fsm->hooks.data, fsm);
    return 0;
}

void sch_fsm_raft(struct sch_fsm *fsm, struct raft_fsm *out)
{
    memset(out, 0, sizeof(*out));
    out->version = 2;
    out->data = fsm;
    out->apply = fsm_apply_cb;
    out->snapshot = raft_snapshot_cb;
    out->restore = raft_restore_cb;
    out->snapshot_finalize = raft_snapshot_finalize_cb;
}

/* ---------------------------------------------------------------------------------------
 * Digest */

uint64_t sch_fsm_digest(struct sch_fsm *fsm)
{
    return digest_of(fsm);
}

static uint64_t digest_of(struct sch_fsm *fsm)
{
    static const char *const tables[] = {
        "SELECT * FROM meta ORDER BY key",
        "SELECT * FROM servers ORDER BY id",
        "SELECT * FROM workloads ORDER BY name",
        "SELECT * FROM nodes ORDER BY name",
        "SELECT * FROM replicas ORDER BY id",
        "SELECT * FROM events ORDER BY seq",
        "SELECT * FROM node_conditions ORDER BY node, kind",
        "SELECT * FROM node_networks ORDER BY node",
        "SELECT * FROM node_tunnels ORDER BY node",
    };
    /* The tables from first_added on were added after schema version 1 (added_tables_sql)
     * and count only when they hold rows, so that a state that leaves them empty has the
     * digest it had before they existed, on servers of either version. */
    const size_t first_added = 6;
    uint64_t h = GY_FNV64_INIT;
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
        sqlite3_stmt *stmt;
        if (sqlite3_prepare_v2(fsm->db, tables[t], -1, &stmt, NULL) != SQLITE_OK)
            continue;
        size_t rows = 0;
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            rows++;
            int n = sqlite3_column_count(stmt);
            for (int c = 0; c < n; c++) {
                const void *v = sqlite3_column_blob(stmt, c);
                int len = sqlite3_column_bytes(stmt, c);
                h = gy_fnv1a64(h, &len, sizeof(len));
                if (v != NULL)
                    h = gy_fnv1a64(h, v, (size_t)len);
            }
        }
        sqlite3_finalize(stmt);
        if (t < first_added || rows > 0)
            h = gy_fnv1a64(h, &t, sizeof(t));
    }
    return h;
}
