/* Unit tests of the agent's local state: schema creation, meta, replica rows that survive
 * reopening, deletion, and a database from a newer version refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/state.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
