/* Agent local state; see state.h. */
#include "agent/state.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"

#define SCHEMA_VERSION 1

struct agent_state {
    sqlite3 *db;
    char path[PATH_MAX];
    char moved_aside[PATH_MAX + 64]; /* where a damaged file went at open, or "" */
};

static const char *const schema_v1 =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE replicas ("
    "  id TEXT PRIMARY KEY, workload TEXT NOT NULL, generation INTEGER NOT NULL,"
    "  spec BLOB NOT NULL, state INTEGER NOT NULL, ready INTEGER NOT NULL,"
    "  restarts INTEGER NOT NULL, exit_code INTEGER NOT NULL, exit_signal INTEGER NOT NULL,"
    "  oom_killed INTEGER NOT NULL, started_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL,"
    "  reason TEXT NOT NULL, address TEXT NOT NULL);";

/* What a failed SQLite call says about the file, in words for the operator and the
 * leader, and the error code and errno that go with it. */
static const char *fault_words(int rc, enum gy_code *code, int *sys_errno)
{
    *code = GY_EIO;
    *sys_errno = 0;
    switch (rc & 0xff) {
    case SQLITE_FULL:
        *sys_errno = ENOSPC;
        return "disk full";
    case SQLITE_IOERR:
        *sys_errno = EIO;
        return "I/O error";
    case SQLITE_READONLY:
        *sys_errno = EROFS;
        return "read-only";
    case SQLITE_CANTOPEN:
        return "cannot open";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return "damaged";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        *code = GY_EUNAVAILABLE;
        return "locked by another process";
    default:
        *code = GY_EINTERNAL;
        return "failed";
    }
}

/* Fills err with "agent database: disk full at PATH (what: sqlite's words)". The leading
 * part names the problem and the file, and travels unchanged into replica reports. */
static int db_error_rc(struct agent_state *st, struct gy_error *err, int rc, const char *what)
{
    enum gy_code code;
    int sys_errno;
    const char *words = fault_words(rc, &code, &sys_errno);
    gy_error_set(err, code, "agent database: %s at %s (%s: %s)", words, st->path, what,
                 sqlite3_errmsg(st->db));
    if (err != NULL)
        err->sys_errno = sys_errno;
    return -(int)code;
}

static int db_error(struct agent_state *st, struct gy_error *err, const char *what)
{
    return db_error_rc(st, err, sqlite3_extended_errcode(st->db), what);
}

/* Steps a write statement to its end and finalizes it; the error (err filled) keeps the
 * step's own code, which finalizing could otherwise blur. */
static int write_step(struct agent_state *st, sqlite3_stmt *q, const char *what,
                      struct gy_error *err)
{
    int rc = sqlite3_step(q);
    int ret = rc == SQLITE_DONE ? 0 : db_error_rc(st, err, sqlite3_extended_errcode(st->db), what);
    sqlite3_finalize(q);
    return ret;
}

/* Runs PRAGMA quick_check: 1 when the file is sound, 0 when it is damaged or not a
 * database at all, negative (err filled) when it cannot be read. A zero-length or new file
 * is sound. */
static int db_check(struct agent_state *st, struct gy_error *err)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &q, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            const unsigned char *verdict = sqlite3_column_text(q, 0);
            bool ok = verdict != NULL && strcmp((const char *)verdict, "ok") == 0;
            if (!ok)
                gy_log_error("agent database check failed", "path=%s problem=\"%s\"", st->path,
                             verdict != NULL ? (const char *)verdict : "");
            sqlite3_finalize(q);
            return ok ? 1 : 0;
        }
    }
    sqlite3_finalize(q);
    int ext = sqlite3_extended_errcode(st->db);
    if ((ext & 0xff) == SQLITE_CORRUPT || (ext & 0xff) == SQLITE_NOTADB) {
        gy_log_error("agent database check failed", "path=%s problem=\"%s\"", st->path,
                     sqlite3_errmsg(st->db));
        return 0;
    }
    return db_error_rc(st, err, ext, "check");
}

/* Renames the damaged file (and its write-ahead log) to PATH.corrupt-<UTC time>, keeping
 * it for a post-mortem, and forgets its shared-memory index. */
static int db_move_aside(struct agent_state *st, struct gy_error *err)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    char aside[sizeof(st->moved_aside)];
    for (int n = 0;; n++) {
        if (n == 0)
            snprintf(aside, sizeof(aside), "%s.corrupt-%s", st->path, stamp);
        else
            snprintf(aside, sizeof(aside), "%s.corrupt-%s.%d", st->path, stamp, n);
        if (access(aside, F_OK) < 0 || n == 100)
            break;
    }
    if (rename(st->path, aside) < 0)
        return gy_error_sys(err, errno,
                            "agent database %s is damaged and cannot be moved aside to %s; "
                            "move it away by hand (the agent rebuilds it from its containers "
                            "and the leader), then start the agent again: rename",
                            st->path, aside);
    char from[PATH_MAX + 8], to[sizeof(aside) + 8];
    snprintf(from, sizeof(from), "%s-wal", st->path);
    snprintf(to, sizeof(to), "%s-wal", aside);
    if (rename(from, to) < 0 && errno != ENOENT)
        gy_log_warn("cannot move the damaged write-ahead log aside", "path=%s error=\"%s\"", from,
                    strerror(errno));
    snprintf(from, sizeof(from), "%s-shm", st->path);
    unlink(from);
    snprintf(st->moved_aside, sizeof(st->moved_aside), "%s", aside);
    gy_log_error("agent database damaged: moved aside, starting a fresh one; records are "
                 "rebuilt from the runtime's containers and the leader's assignment",
                 "path=%s moved_to=%s", st->path, aside);
    return 0;
}

/* Opens st->path, sets it up and migrates its schema; on failure st->db is closed. */
static int db_setup(struct agent_state *st, bool *damaged, struct gy_error *err)
{
    *damaged = false;
    int rc = sqlite3_open_v2(st->path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        db_error_rc(st, err, rc, "open");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 5000);
    /* SQLite opens a file it may not write read-only, without a word: the agent could then
     * record nothing, so it does not start on it. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        gy_error_set(err, GY_EIO, "agent database: read-only at %s", st->path);
        goto fail;
    }
    int sound = db_check(st, err);
    if (sound < 0)
        goto fail;
    if (sound == 0) {
        *damaged = true;
        goto fail;
    }
    /* WAL with synchronous=FULL: every committed change survives a crash of the agent or
     * the machine, and readers never block the writer. */
    const char *setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
    if (sqlite3_exec(st->db, setup, NULL, NULL, NULL) != SQLITE_OK) {
        db_error(st, err, "set up");
        goto fail;
    }
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK) {
        db_error(st, err, "read schema version");
        goto fail;
    }
    int version = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    if (version > SCHEMA_VERSION) {
        gy_error_set(err, GY_EINVAL,
                     "%s has schema version %d, newer than this agent understands (%d)", st->path,
                     version, SCHEMA_VERSION);
        goto fail;
    }
    if (version == 0) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "BEGIN; %s PRAGMA user_version=%d; COMMIT;", schema_v1,
                 SCHEMA_VERSION);
        if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            db_error(st, err, "create schema");
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
    }
    return 0;
fail:
    sqlite3_close(st->db);
    st->db = NULL;
    return err != NULL && err->code != GY_EOK ? -(int)err->code : -GY_EIO;
}

int agent_state_open(const char *data_dir, struct agent_state **out, struct gy_error *err)
{
    struct agent_state *st = gy_xcalloc(1, sizeof(*st));
    if (snprintf(st->path, sizeof(st->path), "%s/agent.db", data_dir) >= (int)sizeof(st->path)) {
        free(st);
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    }
    gy_error_clear(err);
    bool damaged;
    int rc = db_setup(st, &damaged, err);
    if (rc < 0 && damaged) {
        gy_error_clear(err);
        if ((rc = db_move_aside(st, err)) < 0) {
            free(st); /* err says what to do */
            return rc;
        }
        rc = db_setup(st, &damaged, err);
    }
    if (rc < 0) {
        /* The daemon cannot keep its records: say what to do rather than run without. */
        if (err != NULL && err->code != GY_EINVAL)
            gy_error_wrap(err,
                          "cannot open or create the agent database %s (make its "
                          "directory writable and free space on its filesystem, then "
                          "start the agent again)",
                          st->path);
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

const char *agent_state_path(const struct agent_state *st)
{
    return st->path;
}

const char *agent_state_moved_aside(const struct agent_state *st)
{
    return st->moved_aside[0] != '\0' ? st->moved_aside : NULL;
}

int agent_state_probe(struct agent_state *st, int64_t now_ms, struct gy_error *err)
{
    char value[32];
    snprintf(value, sizeof(value), "%lld", (long long)now_ms);
    return agent_state_meta_set(st, "write_probe", value, err);
}

void agent_state_close(struct agent_state *st)
{
    if (st == NULL)
        return;
    sqlite3_close(st->db);
    free(st);
}

int agent_state_meta_get(struct agent_state *st, const char *key, char **value,
                         struct gy_error *err)
{
    *value = NULL;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?", -1, &q, NULL) !=
        SQLITE_OK)
        return db_error(st, err, "read meta");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *value = gy_xstrdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(st, err, "read meta");
    return 0;
}

int agent_state_meta_set(struct agent_state *st, const char *key, const char *value,
                         struct gy_error *err)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", -1, &q,
                           NULL) != SQLITE_OK)
        return db_error(st, err, "write meta");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    return write_step(st, q, "write meta", err);
}

int agent_state_replica_put(struct agent_state *st, const struct agent_replica_row *row,
                            struct gy_error *err)
{
    sqlite3_stmt *q;
    const char *sql = "INSERT OR REPLACE INTO replicas (id, workload, generation, spec, state, "
                      "ready, restarts, exit_code, exit_signal, oom_killed, started_ms, "
                      "changed_ms, reason, address) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_error(st, err, "write replica");
    sqlite3_bind_text(q, 1, row->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, row->workload != NULL ? row->workload : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)row->generation);
    sqlite3_bind_blob(q, 4, row->spec != NULL ? (const void *)row->spec : (const void *)"",
                      (int)row->spec_len, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, row->state);
    sqlite3_bind_int(q, 6, row->ready);
    sqlite3_bind_int64(q, 7, row->restarts);
    sqlite3_bind_int(q, 8, row->exit_code);
    sqlite3_bind_int(q, 9, row->exit_signal);
    sqlite3_bind_int(q, 10, row->oom_killed);
    sqlite3_bind_int64(q, 11, row->started_ms);
    sqlite3_bind_int64(q, 12, row->changed_ms);
    sqlite3_bind_text(q, 13, row->reason != NULL ? row->reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 14, row->address != NULL ? row->address : "", -1, SQLITE_STATIC);
    return write_step(st, q, "write replica", err);
}

int agent_state_replica_delete(struct agent_state *st, const char *id, struct gy_error *err)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "DELETE FROM replicas WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
        return db_error(st, err, "delete replica");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    return write_step(st, q, "delete replica", err);
}

static char *column_strdup(sqlite3_stmt *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q, col);
    return gy_xstrdup(t != NULL ? (const char *)t : "");
}

int agent_state_replica_list(struct agent_state *st, struct agent_replica_row **rows, size_t *n,
                             struct gy_error *err)
{
    *rows = NULL;
    *n = 0;
    sqlite3_stmt *q;
    const char *sql =
        "SELECT id, workload, generation, spec, state, ready, restarts, exit_code, "
        "exit_signal, oom_killed, started_ms, changed_ms, reason, address FROM replicas "
        "ORDER BY id";
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_error(st, err, "list replicas");
    struct agent_replica_row *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            out = gy_xrealloc(out, cap * sizeof(*out));
        }
        struct agent_replica_row *r = &out[count++];
        memset(r, 0, sizeof(*r));
        r->id = column_strdup(q, 0);
        r->workload = column_strdup(q, 1);
        r->generation = (uint64_t)sqlite3_column_int64(q, 2);
        r->spec_len = (size_t)sqlite3_column_bytes(q, 3);
        r->spec = gy_xmalloc(r->spec_len);
        if (r->spec_len > 0)
            memcpy(r->spec, sqlite3_column_blob(q, 3), r->spec_len);
        r->state = sqlite3_column_int(q, 4);
        r->ready = sqlite3_column_int(q, 5);
        r->restarts = (uint32_t)sqlite3_column_int64(q, 6);
        r->exit_code = sqlite3_column_int(q, 7);
        r->exit_signal = sqlite3_column_int(q, 8);
        r->oom_killed = sqlite3_column_int(q, 9);
        r->started_ms = sqlite3_column_int64(q, 10);
        r->changed_ms = sqlite3_column_int64(q, 11);
        r->reason = column_strdup(q, 12);
        r->address = column_strdup(q, 13);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        agent_replica_rows_free(out, count);
        return db_error(st, err, "list replicas");
    }
    *rows = out;
    *n = count;
    return 0;
}

void agent_replica_row_free(struct agent_replica_row *row)
{
    free(row->id);
    free(row->workload);
    free(row->spec);
    free(row->reason);
    free(row->address);
}

void agent_replica_rows_free(struct agent_replica_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        agent_replica_row_free(&rows[i]);
    free(rows);
}
