/* Unit tests of the Raft entry encoding: padding to 8 bytes and strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <raft.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/state/arena.h"
#include "scheduler/state/command.h"

static void *encode_scale(const char *name, size_t *len)
{
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
    scale.name = (char *)name;
    scale.replicas = 7;
    cmd.time_ms = 99;
    cmd.actor = (char *)"user:test";
    cmd.cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
    cmd.scale_workload = &scale;
    void *buf;
    struct gy_error err;
    assert_int_equal(sch_command_encode(&cmd, &buf, len, &err), 0);
    return buf;
}

static void test_padded_round_trip(void **state)
{
    (void)state;
    /* Names of every length modulo 8 exercise every amount of padding. */
    char name[32];
    for (size_t n = 1; n <= 16; n++) {
        memset(name, 'a', n);
        name[n] = '\0';
        size_t len;
        void *buf = encode_scale(name, &len);
        assert_int_equal(len % 8, 0);
        struct gy_error err;
        Gantry__Command *cmd = sch_command_decode(buf, len, &err);
        assert_non_null(cmd);
        assert_int_equal(cmd->cmd_case, GANTRY__COMMAND__CMD_SCALE_WORKLOAD);
        assert_string_equal(cmd->scale_workload->name, name);
        assert_int_equal(cmd->scale_workload->replicas, 7);
        assert_string_equal(sch_command_kind(cmd), "scale_workload");
        gantry__command__free_unpacked(cmd, NULL);
        raft_free(buf);
    }
}

static void test_rejects_damage(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = encode_scale("web", &len);
    struct gy_error err;

    assert_null(sch_command_decode(buf, len - 8, &err));
    assert_null(sch_command_decode(buf, len - 1, &err));
    assert_non_null(strstr(err.msg, "padded"));

    buf[0] ^= 0xff;
    assert_null(sch_command_decode(buf, len, &err));
    assert_non_null(strstr(err.msg, "magic"));
    buf[0] ^= 0xff;

    uint8_t saved = buf[4];
    buf[4] = 0xff;
    assert_null(sch_command_decode(buf, len, &err));
    assert_non_null(strstr(err.msg, "payload"));
    buf[4] = saved;

    /* A payload whose padding was tampered with. */
    if (buf[len - 1] == 0) {
        buf[len - 1] = 1;
        assert_null(sch_command_decode(buf, len, &err));
        assert_non_null(strstr(err.msg, "padding"));
        buf[len - 1] = 0;
    }
    Gantry__Command *cmd = sch_command_decode(buf, len, &err);
    assert_non_null(cmd);
    gantry__command__free_unpacked(cmd, NULL);
    raft_free(buf);
}

static void test_rejects_garbage_protobuf(void **state)
{
    (void)state;
    uint8_t buf[16] = {0x47, 0x59, 0x43, 0x31, 8,    0,    0,    0,
                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct gy_error err;
    assert_null(sch_command_decode(buf, sizeof(buf), &err));
    assert_non_null(strstr(err.msg, "protobuf"));
}

static void test_group_is_a_batch(void **state)
{
    (void)state;
    struct sch_packed_command packed[3];
    struct gy_error err;
    const char *names[] = {"web", "a-much-longer-name-for-the-second-workload", "db"};
    for (int i = 0; i < 3; i++) {
        Gantry__Command cmd = GANTRY__COMMAND__INIT;
        Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
        scale.name = (char *)names[i];
        scale.replicas = (uint32_t)i;
        cmd.actor = (char *)"user:test";
        cmd.cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
        cmd.scale_workload = &scale;
        assert_int_equal(sch_command_pack(&cmd, &packed[i], &err), 0);
    }
    void *buf;
    size_t len;
    /* One command travels as itself. */
    assert_int_equal(sch_command_encode_group(packed, 1, &buf, &len, &err), 0);
    Gantry__Command *one = sch_command_decode(buf, len, &err);
    assert_non_null(one);
    assert_int_equal(one->cmd_case, GANTRY__COMMAND__CMD_SCALE_WORKLOAD);
    gantry__command__free_unpacked(one, NULL);
    raft_free(buf);

    assert_int_equal(sch_command_encode_group(packed, 3, &buf, &len, &err), 0);
    assert_int_equal(len % 8, 0);
    Gantry__Command *group = sch_command_decode(buf, len, &err);
    assert_non_null(group);
    assert_int_equal(group->cmd_case, GANTRY__COMMAND__CMD_BATCH);
    assert_int_equal(group->batch->n_commands, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(group->batch->commands[i]->scale_workload->name, names[i]);
        assert_int_equal(group->batch->commands[i]->scale_workload->replicas, i);
        free(packed[i].bytes);
    }
    gantry__command__free_unpacked(group, NULL);
    raft_free(buf);
}

/* Entries decode into the arena: what does not fit its block spills to malloc, and the
 * reset after it grows the block so the same entry fits next time. */
static void test_decode_into_arena(void **state)
{
    (void)state;
    char name[600];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    size_t len;
    void *buf = encode_scale(name, &len);
    struct sch_arena arena;
    sch_arena_init(&arena);
    for (int round = 0; round < 3; round++) {
        struct gy_error err;
        Gantry__Command *cmd = sch_command_decode_with(buf, len, &arena.allocator, &err);
        assert_non_null(cmd);
        assert_string_equal(cmd->scale_workload->name, name);
        assert_string_equal(cmd->actor, "user:test");
        if (round == 0)
            assert_true(arena.n_spill > 0); /* the empty arena had no block */
        else
            assert_int_equal(arena.n_spill, 0);
        gantry__command__free_unpacked(cmd, &arena.allocator);
        sch_arena_reset(&arena);
        assert_int_equal(arena.used, 0);
        assert_true(arena.cap >= sizeof(name));
    }
    /* A damaged entry fails cleanly with the arena too. */
    struct gy_error err;
    assert_null(sch_command_decode_with(buf, len - 8, &arena.allocator, &err));
    sch_arena_free(&arena);
    assert_null(arena.block);
    raft_free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padded_round_trip),        cmocka_unit_test(test_rejects_damage),
        cmocka_unit_test(test_rejects_garbage_protobuf), cmocka_unit_test(test_group_is_a_batch),
        cmocka_unit_test(test_decode_into_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
