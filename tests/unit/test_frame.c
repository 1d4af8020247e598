/* Unit tests of the framing codec and protobuf round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/gantry.pb-c.h"

/* Packs a ScaleWorkload command with a reason of reason_len bytes into a frame. */
static uint8_t *pack_scale(const char *name, uint32_t replicas, size_t *len)
{
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
    scale.name = (char *)name;
    scale.replicas = replicas;
    scale.reason = (char *)"manual";
    cmd.time_ms = 1234;
    cmd.actor = (char *)"user:test";
    cmd.cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
    cmd.scale_workload = &scale;
    uint8_t *buf;
    struct gy_error err;
    assert_int_equal(gy_frame_pack(&cmd.base, &buf, len, &err), 0);
    return buf;
}

static void check_scale(const uint8_t *body, size_t len, const char *name, uint32_t replicas)
{
    struct gy_error err;
    Gantry__Command *cmd =
        (Gantry__Command *)gy_frame_unpack(&gantry__command__descriptor, body, len, &err);
    assert_non_null(cmd);
    assert_int_equal(cmd->cmd_case, GANTRY__COMMAND__CMD_SCALE_WORKLOAD);
    assert_string_equal(cmd->scale_workload->name, name);
    assert_int_equal(cmd->scale_workload->replicas, replicas);
    assert_int_equal(cmd->time_ms, 1234);
    protobuf_c_message_free_unpacked(&cmd->base, NULL);
}

/* Feeds buf in chunks of `chunk` bytes and returns how many frames came out, checking each
 * against the expected scale commands web-0, web-1, ... */
static int feed_chunked(const uint8_t *buf, size_t len, size_t chunk)
{
    struct gy_frame_decoder d;
    gy_frame_decoder_init(&d, 1024);
    int frames = 0;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        const uint8_t *p = buf + off;
        off += n;
        while (n > 0) {
            const uint8_t *frame;
            size_t flen;
            struct gy_error err;
            long used = gy_frame_decoder_feed(&d, p, n, &frame, &flen, &err);
            assert_true(used >= 0);
            p += used;
            n -= (size_t)used;
            if (frame != NULL) {
                char name[16];
                snprintf(name, sizeof(name), "web-%d", frames);
                check_scale(frame, flen, name, (uint32_t)frames);
                frames++;
            }
        }
    }
    gy_frame_decoder_free(&d);
    return frames;
}

static void test_round_trip_any_chunking(void **state)
{
    (void)state;
    uint8_t all[4096];
    size_t total = 0;
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof(name), "web-%d", i);
        size_t len;
        uint8_t *f = pack_scale(name, (uint32_t)i, &len);
        memcpy(all + total, f, len);
        total += len;
        free(f);
    }
    size_t chunks[] = {1, 2, 3, 7, 64, 4096};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
        assert_int_equal(feed_chunked(all, total, chunks[i]), 5);
}

static void test_oversize_frame_is_rejected(void **state)
{
    (void)state;
    struct gy_frame_decoder d;
    gy_frame_decoder_init(&d, 100);
    uint8_t hdr[4];
    gy_frame_header_write(hdr, 101);
    const uint8_t *frame;
    size_t flen;
    struct gy_error err;
    long rc = gy_frame_decoder_feed(&d, hdr, 4, &frame, &flen, &err);
    assert_int_equal(rc, -GY_ETOOBIG);
    assert_null(frame);
    assert_non_null(strstr(err.msg, "101 bytes"));
    /* The stream stays failed: no resynchronisation on garbage. */
    assert_int_equal(gy_frame_decoder_feed(&d, hdr, 4, &frame, &flen, &err), -GY_EPROTO);
    gy_frame_decoder_free(&d);
}

static void test_huge_header_allocates_nothing(void **state)
{
    (void)state;
    struct gy_frame_decoder d;
    gy_frame_decoder_init(&d, 0); /* default limit */
    uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};
    const uint8_t *frame;
    size_t flen;
    struct gy_error err;
    assert_true(gy_frame_decoder_feed(&d, hdr, 4, &frame, &flen, &err) < 0);
    assert_null(d.body);
    gy_frame_decoder_free(&d);
}

static void test_empty_frame(void **state)
{
    (void)state;
    struct gy_frame_decoder d;
    gy_frame_decoder_init(&d, 100);
    uint8_t two[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t *frame;
    size_t flen;
    struct gy_error err;
    long used = gy_frame_decoder_feed(&d, two, 8, &frame, &flen, &err);
    assert_int_equal(used, 4);
    assert_non_null(frame);
    assert_int_equal(flen, 0);
    used = gy_frame_decoder_feed(&d, two + 4, 4, &frame, &flen, &err);
    assert_int_equal(used, 4);
    assert_non_null(frame);
    /* An empty body is a valid (all-default) message. */
    Gantry__AgentFrame *f =
        (Gantry__AgentFrame *)gy_frame_unpack(&gantry__agent_frame__descriptor, frame, 0, &err);
    assert_non_null(f);
    assert_int_equal(f->frame_case, GANTRY__AGENT_FRAME__FRAME__NOT_SET);
    protobuf_c_message_free_unpacked(&f->base, NULL);
    gy_frame_decoder_free(&d);
}

static void test_garbage_body_is_an_error(void **state)
{
    (void)state;
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
    struct gy_error err;
    ProtobufCMessage *m =
        gy_frame_unpack(&gantry__command__descriptor, garbage, sizeof(garbage), &err);
    assert_null(m);
    assert_int_equal(err.code, GY_EPROTO);
}

static void test_agent_frame_round_trip(void **state)
{
    (void)state;
    Gantry__AgentFrame frame = GANTRY__AGENT_FRAME__INIT;
    Gantry__Heartbeat hb = GANTRY__HEARTBEAT__INIT;
    Gantry__ContainerSample s1 = GANTRY__CONTAINER_SAMPLE__INIT;
    Gantry__ContainerSample *samples[] = {&s1};
    s1.replica_id = (char *)"web-abc";
    s1.cpu_usage_ns = 123456789;
    s1.memory_bytes = 4096;
    hb.time_ms = 99;
    hb.n_samples = 1;
    hb.samples = samples;
    frame.frame_case = GANTRY__AGENT_FRAME__FRAME_HEARTBEAT;
    frame.heartbeat = &hb;
    uint8_t *buf;
    size_t len;
    struct gy_error err;
    assert_int_equal(gy_frame_pack(&frame.base, &buf, &len, &err), 0);
    Gantry__AgentFrame *back = (Gantry__AgentFrame *)gy_frame_unpack(
        &gantry__agent_frame__descriptor, buf + 4, len - 4, &err);
    assert_non_null(back);
    assert_int_equal(back->frame_case, GANTRY__AGENT_FRAME__FRAME_HEARTBEAT);
    assert_int_equal(back->heartbeat->n_samples, 1);
    assert_string_equal(back->heartbeat->samples[0]->replica_id, "web-abc");
    assert_int_equal(back->heartbeat->samples[0]->cpu_usage_ns, 123456789);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_any_chunking),
        cmocka_unit_test(test_oversize_frame_is_rejected),
        cmocka_unit_test(test_huge_header_allocates_nothing),
        cmocka_unit_test(test_empty_frame),
        cmocka_unit_test(test_garbage_body_is_an_error),
        cmocka_unit_test(test_agent_frame_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
