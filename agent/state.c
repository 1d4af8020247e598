/* Agent local state; see state.h. */
#include "agent/state.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define SCHEMA_VERSION 1

struct agent_state {
    sqlite3 *db;
};

static const char *const schema_v1 =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE replicas ("
    "  id TEXT PRIMARY KEY, workload TEXT NOT NULL, generation INTEGER NOT NULL,"
    "  spec BLOB NOT NULL, state INTEGER NOT NULL, ready INTEGER NOT NULL,"
    "  restarts INTEGER NOT NULL, exit_code INTEGER NOT NULL, exit_signal INTEGER NOT NULL,"
    "  oom_killed INTEGER NOT NULL, started_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL,"
    "  reason TEXT NOT NULL, address TEXT NOT NULL);";

static int db_error(struct agent_state *st, struct gy_error *err, const char *what)
{
    return gy_error_set(err, GY_EIO, "agent state: %s: %s", what, sqlite3_errmsg(st->db));
}

int agent_state_open(const char *data_dir, struct agent_state **out, struct gy_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/agent.db", data_dir) >= (int)sizeof(path))
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    struct agent_state *st = gy_xcalloc(1, sizeof(*st));
    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        gy_error_set(err, GY_EIO, "open %s: %s", path, sqlite3_errstr(rc));
        sqlite3_close(st->db);
        free(st);
        return -GY_EIO;
    }
    sqlite3_busy_timeout(st->db, 5000);
    /* WAL with synchronous=FULL: every committed change survives a crash of the agent or
     * the machine, and readers never block the writer. */
    const char *setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
    if (sqlite3_exec(st->db, setup, NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL) != SQLITE_OK)
        goto fail;
    int version = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    if (version > SCHEMA_VERSION) {
        gy_error_set(err, GY_EINVAL,
                     "%s has schema version %d, newer than this agent understands (%d)", path,
                     version, SCHEMA_VERSION);
        sqlite3_close(st->db);
        free(st);
        return -GY_EINVAL;
    }
    if (version == 0) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "BEGIN; %s PRAGMA user_version=%d; COMMIT;", schema_v1,
                 SCHEMA_VERSION);
        if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
            goto fail;
    }
    *out = st;
    return 0;
fail:
    db_error(st, err, path);
    sqlite3_close(st->db);
    free(st);
    return -GY_EIO;
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
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(st, err, "write meta");
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
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(st, err, "write replica");
}

int agent_state_replica_delete(struct agent_state *st, const char *id, struct gy_error *err)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "DELETE FROM replicas WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
        return db_error(st, err, "delete replica");
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : db_error(st, err, "delete replica");
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
