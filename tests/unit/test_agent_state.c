/* Unit tests of the agent's local state: schema creation, meta, replica rows that survive
 * reopening, deletion, and a database from a newer version refused; under faults: writes
 * refused by a full disk or an I/O error (a SQLite VFS that fails writes on demand) are
 * errors that name the problem and the file, and writes succeed again once the fault is
 * gone; a damaged file is moved aside at open and replaced by a fresh database. Also the
 * write-health schedule and the reason it sends the leader (agent/db_health.h) and the
 * replica id scheme (agent/replica_id.h)
 * that the daemon applies to containers it finds without a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/db_health.h"
#include "agent/replica_id.h"
#include "agent/state.h"

/* ---------------------------------------------------------------------------------------
 * A VFS over the default one whose writes fail with fault_code while it is not SQLITE_OK:
 * what SQLite sees of a full disk (SQLITE_FULL) or a failing one (SQLITE_IOERR_WRITE). */

static int fault_code = SQLITE_OK;
static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;

struct fault_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
};

#define REAL(f) (((struct fault_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int ff_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (fault_code != SQLITE_OK)
        return fault_code;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ff_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int ff_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int ff_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, p);
}
static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: no memory-mapped I/O, so every write goes through ff_write. */
static const sqlite3_io_methods fault_io = {
    .iVersion = 2,
    .xClose = ff_close,
    .xRead = ff_read,
    .xWrite = ff_write,
    .xTruncate = ff_truncate,
    .xSync = ff_sync,
    .xFileSize = ff_size,
    .xLock = ff_lock,
    .xUnlock = ff_unlock,
    .xCheckReservedLock = ff_check_lock,
    .xFileControl = ff_control,
    .xSectorSize = ff_sector,
    .xDeviceCharacteristics = ff_chars,
    .xShmMap = ff_shm_map,
    .xShmLock = ff_shm_lock,
    .xShmBarrier = ff_shm_barrier,
    .xShmUnmap = ff_shm_unmap,
};

static int ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    struct fault_file *ff = (struct fault_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    ff->base.pMethods = rc == SQLITE_OK ? &fault_io : NULL;
    return rc;
}

static void fault_vfs_install(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    fault_vfs = *real_vfs;
    fault_vfs.zName = "gantry-fault";
    fault_vfs.szOsFile = (int)sizeof(struct fault_file) + real_vfs->szOsFile;
    fault_vfs.xOpen = ff_open;
    assert_int_equal(sqlite3_vfs_register(&fault_vfs, 1), SQLITE_OK);
}

static char dir[64];

static int setup(void **state)
{
    (void)state;
    fault_code = SQLITE_OK;
    snprintf(dir, sizeof(dir), "/tmp/gantry-agent-state.XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_rows_survive_reopen(void **state)
{
    (void)state;
    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    uint8_t spec[] = {0x0a, 0x03, 'w', 'e', 'b'};
    struct agent_replica_row row = {.id = "web-b",
                                    .workload = "web",
                                    .generation = 3,
                                    .spec = spec,
                                    .spec_len = sizeof(spec),
                                    .state = 2,
                                    .ready = 1,
                                    .restarts = 4,
                                    .exit_code = 137,
                                    .exit_signal = 9,
                                    .oom_killed = 1,
                                    .started_ms = 11,
                                    .changed_ms = 22,
                                    .reason = "OOMKilled",
                                    .address = "10.88.0.7"};
    assert_int_equal(agent_state_replica_put(st, &row, &err), 0);
    row.id = "web-a";
    row.restarts = 0;
    assert_int_equal(agent_state_replica_put(st, &row, &err), 0);
    assert_int_equal(agent_state_meta_set(st, "cluster_id", "c-123", &err), 0);
    agent_state_close(st);

    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    struct agent_replica_row *rows;
    size_t n;
    assert_int_equal(agent_state_replica_list(st, &rows, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, "web-a");
    assert_string_equal(rows[1].id, "web-b");
    assert_int_equal(rows[1].restarts, 4);
    assert_int_equal(rows[1].exit_code, 137);
    assert_int_equal(rows[1].oom_killed, 1);
    assert_int_equal(rows[1].generation, 3);
    assert_int_equal(rows[1].spec_len, sizeof(spec));
    assert_memory_equal(rows[1].spec, spec, sizeof(spec));
    assert_string_equal(rows[1].reason, "OOMKilled");
    assert_string_equal(rows[1].address, "10.88.0.7");
    agent_replica_rows_free(rows, n);

    char *v;
    assert_int_equal(agent_state_meta_get(st, "cluster_id", &v, &err), 0);
    assert_string_equal(v, "c-123");
    free(v);
    assert_int_equal(agent_state_meta_get(st, "absent", &v, &err), 0);
    assert_null(v);

    assert_int_equal(agent_state_replica_delete(st, "web-a", &err), 0);
    assert_int_equal(agent_state_replica_list(st, &rows, &n, &err), 0);
    assert_int_equal(n, 1);
    agent_replica_rows_free(rows, n);
    agent_state_close(st);
}

static void test_newer_schema_is_refused(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/agent.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open(dir, &st, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "schema version 99"));
}

static void test_missing_dir_is_an_error(void **state)
{
    (void)state;
    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open("/nonexistent/dir", &st, &err), -GY_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/agent.db"));
}

/* ---------------------------------------------------------------------------------------
 * Faults */

static const uint8_t spec_web[] = {0x0a, 0x03, 'w', 'e', 'b'};

static int put(struct agent_state *st, const char *id, struct gy_error *err)
{
    struct agent_replica_row row = {.id = (char *)id,
                                    .workload = "web",
                                    .generation = 1,
                                    .spec = (uint8_t *)spec_web,
                                    .spec_len = sizeof(spec_web),
                                    .state = 1,
                                    .reason = "assigned",
                                    .address = ""};
    return agent_state_replica_put(st, &row, err);
}

static size_t count_rows(struct agent_state *st)
{
    struct agent_replica_row *rows;
    size_t n;
    struct gy_error err;
    assert_int_equal(agent_state_replica_list(st, &rows, &n, &err), 0);
    agent_replica_rows_free(rows, n);
    return n;
}

static void test_disk_full_is_an_error_naming_the_file(void **state)
{
    (void)state;
    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    assert_int_equal(put(st, "web-00000001", &err), 0);

    fault_code = SQLITE_FULL;
    assert_true(put(st, "web-00000002", &err) < 0);
    char want[128];
    snprintf(want, sizeof(want), "agent database: disk full at %s/agent.db", dir);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(err.code, GY_EIO);
    assert_int_equal(err.sys_errno, ENOSPC);
    assert_true(agent_state_replica_delete(st, "web-00000001", &err) < 0);
    assert_non_null(strstr(err.msg, "disk full"));
    assert_true(agent_state_probe(st, 1, &err) < 0);
    assert_true(agent_state_meta_set(st, "cluster_id", "c", &err) < 0);
    /* Reads still work, and see only what was committed. */
    assert_int_equal(count_rows(st), 1);

    fault_code = SQLITE_OK;
    assert_int_equal(agent_state_probe(st, 2, &err), 0);
    assert_int_equal(put(st, "web-00000002", &err), 0);
    assert_int_equal(count_rows(st), 2);
    agent_state_close(st);

    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    assert_int_equal(count_rows(st), 2);
    assert_null(agent_state_moved_aside(st));
    agent_state_close(st);
}

static void test_io_error_is_an_error_naming_the_file(void **state)
{
    (void)state;
    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    fault_code = SQLITE_IOERR_WRITE;
    assert_true(put(st, "web-00000001", &err) < 0);
    char want[128];
    snprintf(want, sizeof(want), "agent database: I/O error at %s/agent.db", dir);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(err.sys_errno, EIO);
    fault_code = SQLITE_OK;
    assert_int_equal(put(st, "web-00000001", &err), 0);
    assert_int_equal(count_rows(st), 1);
    agent_state_close(st);
}

static void test_database_that_cannot_be_created_is_refused(void **state)
{
    (void)state;
    struct agent_state *st = NULL;
    struct gy_error err;
    fault_code = SQLITE_FULL;
    assert_true(agent_state_open(dir, &st, &err) < 0);
    assert_null(st);
    assert_non_null(strstr(err.msg, "disk full"));
    assert_non_null(strstr(err.msg, "agent.db"));
    assert_non_null(strstr(err.msg, "free space"));
}

/* The names in dir that begin with prefix. */
static int count_files(const char *prefix, char *first, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (n++ == 0 && first != NULL) {
            int w = snprintf(first, len, "%s/%.200s", dir, e->d_name);
            assert_true(w > 0 && (size_t)w < len);
        }
    }
    closedir(d);
    return n;
}

static void test_garbage_file_is_moved_aside(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/agent.db", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", f);
    fclose(f);

    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    const char *aside = agent_state_moved_aside(st);
    assert_non_null(aside);
    char found[256];
    assert_int_equal(count_files("agent.db.corrupt-", found, sizeof(found)), 1);
    assert_string_equal(aside, found);
    /* The damaged file is kept as it was, for a post-mortem. */
    f = fopen(aside, "r");
    assert_non_null(f);
    char head[24];
    assert_non_null(fgets(head, sizeof(head), f));
    fclose(f);
    assert_string_equal(head, "this is not a database ");
    /* The new database is fresh and usable. */
    assert_int_equal(count_rows(st), 0);
    assert_int_equal(put(st, "web-00000001", &err), 0);
    agent_state_close(st);

    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    assert_null(agent_state_moved_aside(st));
    assert_int_equal(count_rows(st), 1);
    agent_state_close(st);
}

static void test_damaged_pages_are_detected(void **state)
{
    (void)state;
    struct agent_state *st;
    struct gy_error err;
    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    char id[32];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "web-%08x", i);
        assert_int_equal(put(st, id, &err), 0);
    }
    agent_state_close(st); /* the last close checkpoints the WAL into the file */

    /* A valid header, and garbage over the pages after the first. */
    char path[128];
    snprintf(path, sizeof(path), "%s/agent.db", dir);
    FILE *f = fopen(path, "r+");
    assert_non_null(f);
    assert_int_equal(fseek(f, 4096 + 16, SEEK_SET), 0);
    for (int i = 0; i < 8192; i++)
        fputc(0xa5, f);
    fclose(f);

    assert_int_equal(agent_state_open(dir, &st, &err), 0);
    assert_non_null(agent_state_moved_aside(st));
    assert_int_equal(count_rows(st), 0);
    agent_state_close(st);
    assert_int_equal(count_files("agent.db.corrupt-", NULL, 0), 1);
}

static void test_unusable_path_is_refused(void **state)
{
    (void)state;
    /* DIR/agent.db is a directory: SQLite cannot open it, and the agent must not start. */
    char path[128];
    snprintf(path, sizeof(path), "%s/agent.db", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    struct agent_state *st = NULL;
    struct gy_error err;
    assert_true(agent_state_open(dir, &st, &err) < 0);
    assert_null(st);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "agent database: cannot open at"));
    assert_non_null(strstr(err.msg, "start the agent again"));
}

/* ---------------------------------------------------------------------------------------
 * The write-health schedule and replica ids */

static void test_db_health_probes_with_bounded_backoff(void **state)
{
    (void)state;
    struct agent_db_health h = {0};
    assert_false(agent_db_health_probe_due(&h, 0));
    assert_true(agent_db_health_failed(&h, "agent database: disk full at /d/agent.db", 1000));
    assert_false(agent_db_health_failed(&h, "agent database: I/O error at /d/agent.db", 1100));
    assert_string_equal(h.reason, "agent database: disk full at /d/agent.db");
    assert_int_equal(h.failed_writes, 2);
    assert_false(agent_db_health_probe_due(&h, 1000 + AGENT_DB_PROBE_FIRST_MS - 1));
    assert_true(agent_db_health_probe_due(&h, 1000 + AGENT_DB_PROBE_FIRST_MS));
    /* Failed probes double the delay, never beyond the cap. */
    uint64_t now = 1000 + AGENT_DB_PROBE_FIRST_MS, last = 0;
    for (int i = 0; i < 20; i++) {
        agent_db_health_probe_done(&h, false, now);
        uint64_t delay = h.next_probe_ms - now;
        assert_true(delay >= last);
        assert_true(delay <= AGENT_DB_PROBE_MAX_MS);
        assert_false(agent_db_health_probe_due(&h, now + delay - 1));
        last = delay;
        now += delay;
    }
    assert_int_equal(last, AGENT_DB_PROBE_MAX_MS);
    /* A write that succeeds makes the probe due at once; the probe ends the fault. */
    agent_db_health_write_ok(&h);
    assert_true(agent_db_health_probe_due(&h, now));
    agent_db_health_probe_done(&h, true, now);
    assert_false(h.failing);
    assert_false(agent_db_health_probe_due(&h, now + 100000));
    assert_true(agent_db_health_failed(&h, "again", now));
}

/* The reason sent to the leader (NodeHealth.storage_refused): none while writes succeed,
 * and during a fault the fault's reason as printable ASCII of at most 512 bytes, which the
 * leader takes as it is. */
static void test_db_health_wire_reason(void **state)
{
    (void)state;
    struct agent_db_health h = {0};
    char out[AGENT_DB_REASON_WIRE_MAX + 1];
    agent_db_health_wire_reason(&h, out);
    assert_string_equal(out, "");
    agent_db_health_failed(&h, "agent database: disk full at /d/agent.db", 1000);
    agent_db_health_wire_reason(&h, out);
    assert_string_equal(out, "agent database: disk full at /d/agent.db");
    agent_db_health_probe_done(&h, true, 2000);
    agent_db_health_wire_reason(&h, out);
    assert_string_equal(out, "");

    /* A path with a newline, an escape and UTF-8 in it. */
    agent_db_health_failed(&h, "agent database: I/O error at /d\n\x1b[1m/caf\xc3\xa9.d/agent.db",
                           3000);
    agent_db_health_wire_reason(&h, out);
    assert_string_equal(out, "agent database: I/O error at /d??[1m/caf??.d/agent.db");
    agent_db_health_probe_done(&h, true, 4000);

    /* The longest reason the agent keeps is cut to what the leader takes. */
    char longest[sizeof(h.reason) + 100];
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    agent_db_health_failed(&h, longest, 5000);
    agent_db_health_wire_reason(&h, out);
    assert_true(strlen(out) > 0 && strlen(out) <= AGENT_DB_REASON_WIRE_MAX);
    for (const char *c = out; *c != '\0'; c++)
        assert_true(*c >= 0x20 && *c <= 0x7e);
    agent_db_health_probe_done(&h, true, 6000);
    agent_db_health_failed(&h, "", 7000);
    agent_db_health_wire_reason(&h, out);
    assert_string_equal(out, "agent database: write failed");
}

static void test_replica_ids_follow_the_scheme(void **state)
{
    (void)state;
    char w[GY_SPEC_NAME_MAX + 1];
    assert_true(agent_replica_id_parse("web-0f3a9c2e", w));
    assert_string_equal(w, "web");
    assert_true(agent_replica_id_parse("my-api-2-00000000", w));
    assert_string_equal(w, "my-api-2");
    char longest[GY_SPEC_NAME_MAX + 10];
    memset(longest, 'a', GY_SPEC_NAME_MAX);
    snprintf(longest + GY_SPEC_NAME_MAX, 10, "-deadbeef");
    assert_true(agent_replica_id_parse(longest, w));
    char too_long[GY_SPEC_NAME_MAX + 11];
    memset(too_long, 'a', GY_SPEC_NAME_MAX + 1);
    snprintf(too_long + GY_SPEC_NAME_MAX + 1, 10, "-deadbeef");
    assert_false(agent_replica_id_parse(too_long, w));
    const char *bad[] = {"",
                         "web",
                         "-0f3a9c2e",
                         "web-0F3A9C2E",
                         "web-0f3a9c2",
                         "web-0f3a9c2e0",
                         "web_0f3a9c2e",
                         "Web-0f3a9c2e",
                         "../x-0f3a9c2e",
                         "a/b-0f3a9c2e",
                         "web--0f3a9c2e",
                         "web-0f3a9c2g",
                         "web.1-0f3a9c2e"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (agent_replica_id_parse(bad[i], w))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_false(agent_replica_id_parse(NULL, w));
}

int main(void)
{
    fault_vfs_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_is_an_error_naming_the_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_io_error_is_an_error_naming_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_that_cannot_be_created_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file_is_moved_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_pages_are_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_path_is_refused, setup, teardown),
        cmocka_unit_test(test_db_health_probes_with_bounded_backoff),
        cmocka_unit_test(test_db_health_wire_reason),
        cmocka_unit_test(test_replica_ids_follow_the_scheme),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
