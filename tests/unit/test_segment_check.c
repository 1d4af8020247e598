/* The open-segment check (scheduler/raft/segment_check.c) on segments written by a real
 * libraft 0.15 one-server cluster, then cut short or changed: a torn last write passes, a
 * damaged batch with valid batches after it is refused, and hostile lengths are read within
 * the file (the test build runs with AddressSanitizer). libraft itself cuts such a damaged
 * segment without a word, which is why the check exists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "common/error.h"
#include "scheduler/raft/segment_check.h"

#define ENTRIES 6  /* applied one at a time: one batch each */
#define PAYLOAD 24 /* a multiple of 8, as Gantry pads its entries */
#define WAIT_MS 10000

/* ---------------------------------------------------------------------------------------
 * Files */

struct file {
    uint8_t *buf;
    size_t len;
};

static void file_read(const char *path, struct file *f)
{
    FILE *in = fopen(path, "rb");
    assert_non_null(in);
    assert_int_equal(fseek(in, 0, SEEK_END), 0);
    long size = ftell(in);
    assert_true(size >= 0);
    rewind(in);
    f->len = (size_t)size;
    f->buf = malloc(f->len > 0 ? f->len : 1);
    assert_non_null(f->buf);
    assert_int_equal(fread(f->buf, 1, f->len, in), f->len);
    fclose(in);
}

static void file_write(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    if (len > 0)
        assert_int_equal(fwrite(buf, 1, len, out), len);
    assert_int_equal(fclose(out), 0);
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", from_dir, name);
    struct file f;
    file_read(path, &f);
    file_write(to_dir, name, f.buf, f.len);
    free(f.buf);
}

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/gantry-segment-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/* Removes dir and the files in it (no fork: it runs after every check). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            assert_int_equal(unlinkat(dirfd(d), e->d_name, 0), 0);
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

/* ---------------------------------------------------------------------------------------
 * The format, read and written here independently of the code under test */

/* libraft's byteCrc32, one bit at a time. */
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 24;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x80000000u) ? (crc << 1) ^ 0x04c11db7u : crc << 1;
    }
    return crc;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get64((const uint8_t[8]){p[0], p[1], p[2], p[3]});
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

#define MAX_BATCHES 64

/* The batches of a segment libraft wrote (trusted): their offsets, and the offset where the
 * zero fill starts. Checks each batch's checksums with crc_bitwise on the way, which proves
 * which CRC32 libraft uses. */
static size_t batches_of(const struct file *f, size_t offsets[MAX_BATCHES], size_t *end)
{
    assert_true(f->len >= 8);
    assert_int_equal(get64(f->buf), 1); /* the format */
    size_t n = 0, off = 8;
    while (off + 16 <= f->len && get64(f->buf + off + 8) != 0) {
        assert_true(n < MAX_BATCHES);
        uint64_t entries = get64(f->buf + off + 8);
        size_t header_len = 8 + 16 * (size_t)entries;
        size_t data_len = 0;
        for (size_t i = 0; i < entries; i++)
            data_len += get32(f->buf + off + 16 + 16 * i + 12);
        assert_int_equal(crc_bitwise(f->buf + off + 8, header_len), get32(f->buf + off));
        assert_int_equal(crc_bitwise(f->buf + off + 8 + header_len, data_len),
                         get32(f->buf + off + 4));
        offsets[n++] = off;
        off += 8 + header_len + data_len;
    }
    *end = off;
    return n;
}

/* Appends a batch of one entry (term 1, a command) with data_len bytes of data, checksums
 * right, at *off of buf. */
static void put_batch(uint8_t *buf, size_t *off, uint32_t data_len, uint8_t fill)
{
    uint8_t *p = buf + *off;
    put64(p + 8, 1);
    put64(p + 16, 1);
    p[24] = RAFT_COMMAND;
    put32(p + 28, data_len);
    memset(p + 32, fill, data_len);
    put32(p, crc_bitwise(p + 8, 24));
    put32(p + 4, crc_bitwise(p + 32, data_len));
    *off += 32 + data_len;
}

/* ---------------------------------------------------------------------------------------
 * A real libraft 0.15 one-server cluster */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    (void)bufs;
    (void)n;
    return RAFT_NOTFOUND;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    (void)buf;
    return RAFT_NOTFOUND;
}

struct cluster {
    uv_loop_t loop;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    char addr[64];
    int closed;
    int applied;
};

static void cluster_closed(struct raft *raft)
{
    struct cluster *c = raft->data;
    if (c->closed++ == 0) { /* libraft 0.15 may call this twice */
        raft_uv_close(&c->io);
        raft_uv_tcp_close(&c->transport);
    }
}

static bool run_until(struct cluster *c, bool (*done)(struct cluster *c))
{
    uint64_t until = uv_now(&c->loop) + WAIT_MS;
    while (!done(c) && uv_now(&c->loop) < until)
        uv_run(&c->loop, UV_RUN_ONCE);
    return done(c);
}

static bool leading(struct cluster *c)
{
    return raft_state(&c->raft) == RAFT_LEADER;
}

static int apply_target;
static bool applied_all(struct cluster *c)
{
    return c->applied >= apply_target;
}

/* Starts libraft on dir (bootstrapping it when fresh); start_rc is raft_start's result. */
static void cluster_start(struct cluster *c, const char *dir, bool bootstrap, int *start_rc)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    assert_int_equal(raft_uv_tcp_init(&c->transport, &c->loop), 0);
    assert_int_equal(raft_uv_init(&c->io, &c->loop, dir, &c->transport), 0);
    raft_uv_set_auto_recovery(&c->io, false); /* as Gantry runs it */
    c->fsm = (struct raft_fsm){
        .version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
    snprintf(c->addr, sizeof(c->addr), "127.0.0.1:%d", free_port());
    assert_int_equal(raft_init(&c->raft, &c->io, &c->fsm, 1, c->addr), 0);
    c->raft.data = c;
    raft_set_election_timeout(&c->raft, 100);
    raft_set_heartbeat_timeout(&c->raft, 20);
    raft_set_snapshot_threshold(&c->raft, 1u << 20);
    if (bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        assert_int_equal(raft_configuration_add(&conf, 1, c->addr, RAFT_VOTER), 0);
        assert_int_equal(raft_bootstrap(&c->raft, &conf), 0);
        raft_configuration_close(&conf);
    }
    *start_rc = raft_start(&c->raft);
}

static void cluster_stop(struct cluster *c)
{
    raft_close(&c->raft, cluster_closed);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_true(c->closed >= 1);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

static void applied(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct cluster *c = req->data;
    assert_int_equal(status, 0);
    c->applied++;
    free(req);
}

/* Applies one entry of PAYLOAD bytes and waits for it. */
static void cluster_apply(struct cluster *c, uint8_t fill)
{
    struct raft_buffer buf = {.base = raft_malloc(PAYLOAD), .len = PAYLOAD};
    assert_non_null(buf.base);
    memset(buf.base, fill, PAYLOAD);
    struct raft_apply *req = calloc(1, sizeof(*req));
    assert_non_null(req);
    req->data = c;
    assert_int_equal(raft_apply(&c->raft, req, &buf, 1, applied), 0);
    apply_target = c->applied + 1;
    assert_true(run_until(c, applied_all));
}

/* What the shared fixture holds: a copy of the whole Raft directory of a one-server cluster
 * that applied ENTRIES entries, taken while it ran (its newest segment still open). */
struct fixture {
    char raft_dir[64];  /* the copy */
    char open_name[32]; /* the open segment with the entries */
    struct file open;   /* its content */
    size_t offsets[MAX_BATCHES];
    size_t n_batches;
    size_t end;       /* where its zero fill starts */
    raft_index last;  /* the last index the cluster had */
    size_t short_len; /* its log and 4 KiB of its zero fill: for the tests that try every
                         byte, which would take long with the whole file each time */
};

static struct fixture fx;

static int fixture_setup(void **state)
{
    (void)state;
    char live[64];
    make_dir(live, sizeof(live));
    struct cluster c;
    int rc;
    cluster_start(&c, live, true, &rc);
    assert_int_equal(rc, 0);
    assert_true(run_until(&c, leading));
    for (int i = 0; i < ENTRIES; i++)
        cluster_apply(&c, (uint8_t)(0xa0 + i));
    fx.last = raft_last_index(&c.raft);
    /* The copy is taken before the close, which would close the open segment. */
    make_dir(fx.raft_dir, sizeof(fx.raft_dir));
    DIR *d = opendir(live);
    assert_non_null(d);
    struct dirent *e;
    unsigned long long newest = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        copy_file(live, fx.raft_dir, e->d_name);
        unsigned long long counter;
        if (sscanf(e->d_name, "open-%llu", &counter) != 1)
            continue;
        if (strlen(e->d_name) >= sizeof(fx.open_name))
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", live, e->d_name);
        struct file f;
        file_read(path, &f);
        if (f.len >= 8 && get64(f.buf) == 1 && counter > newest) {
            newest = counter;
            memcpy(fx.open_name, e->d_name, strlen(e->d_name) + 1);
        }
        free(f.buf);
    }
    closedir(d);
    cluster_stop(&c);
    remove_dir(live);
    assert_true(newest > 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", fx.raft_dir, fx.open_name);
    file_read(path, &fx.open);
    fx.n_batches = batches_of(&fx.open, fx.offsets, &fx.end);
    assert_true(fx.n_batches >= ENTRIES);
    fx.short_len = fx.end + 4096 < fx.open.len ? fx.end + 4096 : fx.open.len;
    return 0;
}

static int fixture_teardown(void **state)
{
    (void)state;
    free(fx.open.buf);
    remove_dir(fx.raft_dir);
    return 0;
}

/* A directory holding the fixture's open segment as changed by the test (len bytes of buf),
 * under the name open-1. */
static void dir_with(char *dir, size_t size, const uint8_t *buf, size_t len)
{
    make_dir(dir, size);
    file_write(dir, "open-1", buf, len);
}

/* A copy of the first len bytes of the fixture's open segment. */
static uint8_t *segment_copy(size_t len)
{
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    memcpy(copy, fx.open.buf, len);
    return copy;
}

/* Runs the check on a directory holding buf as open-1; returns its result. */
static int check_buf(const uint8_t *buf, size_t len, struct sch_segment_report *report,
                     struct gy_error *err)
{
    char dir[64];
    dir_with(dir, sizeof(dir), buf, len);
    int rc = sch_segment_check_open(dir, report, err);
    remove_dir(dir);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Tests */

static void test_clean_segment_passes(void **state)
{
    (void)state;
    struct sch_segment_report report;
    struct gy_error err;
    assert_int_equal(sch_segment_check_open(fx.raft_dir, &report, &err), 0);
    assert_int_equal(report.segments, 1); /* the others are preallocated, unused */
    assert_int_equal(report.batches, fx.n_batches);
    assert_string_equal(report.torn, "");
    /* Nothing is changed. */
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", fx.raft_dir, fx.open_name);
    struct file f;
    file_read(path, &f);
    assert_int_equal(f.len, fx.open.len);
    assert_memory_equal(f.buf, fx.open.buf, f.len);
    free(f.buf);
}

static void test_no_open_segment_passes(void **state)
{
    (void)state;
    struct gy_error err;
    struct sch_segment_report report;
    assert_int_equal(sch_segment_check_open("/nonexistent/gantry/raft", &report, &err), 0);
    assert_int_equal(report.segments, 0);
    char dir[64];
    make_dir(dir, sizeof(dir));
    assert_int_equal(sch_segment_check_open(dir, &report, &err), 0);
    /* Closed segments, empty and unused open ones are not looked at, or hold nothing. */
    file_write(dir, "0000000000000001-0000000000000006", fx.open.buf, 40);
    file_write(dir, "open-7", NULL, 0);
    uint8_t zeros[4096] = {0};
    file_write(dir, "open-8", zeros, sizeof(zeros));
    file_write(dir, "open-x", fx.open.buf, fx.open.len);
    assert_int_equal(sch_segment_check_open(dir, &report, &err), 0);
    assert_int_equal(report.segments, 0);
    remove_dir(dir);
}

/* The file ends inside the last batch (a write cut short and the file with it), or the last
 * batch's second half is still zeros: a torn write. */
static void test_last_batch_cut_short_passes(void **state)
{
    (void)state;
    size_t last = fx.offsets[fx.n_batches - 1];
    struct sch_segment_report report;
    struct gy_error err;
    /* From the entry count's first byte on (1: not zero), so that the file does not end in
     * the zeros of a checksum, which would be the end of the log. */
    for (size_t cut = last + 9; cut < fx.end; cut += 7) {
        assert_int_equal(check_buf(fx.open.buf, cut, &report, &err), 0);
        assert_string_equal(report.torn, "open-1");
        assert_int_equal(report.torn_offset, last);
        assert_int_equal(report.batches, fx.n_batches - 1);
    }
    uint8_t *copy = segment_copy(fx.open.len);
    size_t half = last + (fx.end - last) / 2;
    memset(copy + half, 0, fx.end - half);
    assert_int_equal(check_buf(copy, fx.open.len, &report, &err), 0);
    assert_string_equal(report.torn, "open-1");
    assert_int_equal(report.torn_offset, last);
    /* Cut right after the last batch: nothing torn. */
    assert_int_equal(check_buf(fx.open.buf, fx.end, &report, &err), 0);
    assert_string_equal(report.torn, "");
    assert_int_equal(report.batches, fx.n_batches);
    free(copy);
}

/* A changed byte in the last batch, with zeros after it, cannot be told from a torn write. */
static void test_last_batch_flipped_passes(void **state)
{
    (void)state;
    size_t last = fx.offsets[fx.n_batches - 1];
    struct sch_segment_report report;
    struct gy_error err;
    for (size_t at = last; at < fx.end; at++) {
        uint8_t *copy = segment_copy(fx.short_len);
        copy[at] ^= 0x40;
        assert_int_equal(check_buf(copy, fx.short_len, &report, &err), 0);
        assert_string_equal(report.torn, "open-1");
        assert_int_equal(report.torn_offset, last);
        free(copy);
    }
}

static void assert_refused(const uint8_t *buf, size_t len, size_t batch, const char *why)
{
    struct gy_error err;
    struct sch_segment_report report;
    int rc = check_buf(buf, len, &report, &err);
    assert_int_equal(rc, -GY_EIO);
    char want[256];
    snprintf(want, sizeof(want), "damaged Raft segment open-1: %s in the batch at byte %zu, ", why,
             fx.offsets[batch]);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    snprintf(want, sizeof(want), "followed by %zu valid batches: it may hold acknowledged entries",
             fx.n_batches - 1 - batch);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

/* Every byte of the first batch's data changed in turn: refused, with the offset. */
static void test_first_batch_data_flipped_refused(void **state)
{
    (void)state;
    size_t data = fx.offsets[0] + 8 + 8 + 16 * (size_t)get64(fx.open.buf + fx.offsets[0] + 8);
    for (size_t at = data; at < fx.offsets[1]; at++) {
        uint8_t *copy = segment_copy(fx.short_len);
        copy[at] ^= 0x01;
        assert_refused(copy, fx.short_len, 0, "data checksum mismatch");
        free(copy);
    }
}

/* Every byte of the first batch's checksums and header changed in turn: refused, whatever
 * the change makes of the entry count and sizes. */
static void test_first_batch_header_flipped_refused(void **state)
{
    (void)state;
    size_t data = fx.offsets[0] + 8 + 8 + 16 * (size_t)get64(fx.open.buf + fx.offsets[0] + 8);
    for (size_t at = fx.offsets[0]; at < data; at++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            uint8_t *copy = segment_copy(fx.short_len);
            copy[at] ^= (uint8_t)(1u << bit);
            struct gy_error err;
            assert_int_equal(check_buf(copy, fx.short_len, NULL, &err), -GY_EIO);
            char want[128];
            snprintf(want, sizeof(want), "open-1: ");
            assert_non_null(strstr(err.msg, want));
            assert_non_null(strstr(err.msg, "in the batch at byte 8, followed by"));
            free(copy);
        }
    }
    /* A middle batch too. */
    size_t mid = fx.n_batches / 2;
    uint8_t *copy = segment_copy(fx.open.len);
    copy[fx.offsets[mid] + 2] ^= 0x80; /* its header checksum */
    assert_refused(copy, fx.open.len, mid, "header checksum mismatch");
    free(copy);
}

/* Entry counts and sizes that would take a reader far past the file. */
static void test_absurd_lengths_stay_in_bounds(void **state)
{
    (void)state;
    const uint64_t counts[] = {UINT64_MAX, 1ull << 32, 262145, 262144, 1u << 17, 100000};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        uint8_t *copy = segment_copy(fx.open.len);
        put64(copy + fx.offsets[0] + 8, counts[i]);
        struct gy_error err;
        assert_int_equal(check_buf(copy, fx.open.len, NULL, &err), -GY_EIO);
        assert_non_null(strstr(err.msg, "in the batch at byte 8, followed by"));
        /* The same count in the last batch: torn. */
        memcpy(copy, fx.open.buf, fx.open.len);
        put64(copy + fx.offsets[fx.n_batches - 1] + 8, counts[i]);
        assert_int_equal(check_buf(copy, fx.open.len, NULL, &err), 0);
        /* And in a file that ends right after the count. */
        assert_int_equal(check_buf(copy, fx.offsets[fx.n_batches - 1] + 16, NULL, &err), 0);
        free(copy);
    }
    /* A data size of 4 GiB - 1 behind a header whose checksum is right. */
    uint8_t *copy = segment_copy(fx.open.len);
    size_t last = fx.offsets[fx.n_batches - 1];
    put32(copy + last + 16 + 12, UINT32_MAX);
    put32(copy + last, crc_bitwise(copy + last + 8, 8 + 16 * (size_t)get64(copy + last + 8)));
    struct sch_segment_report report;
    struct gy_error err;
    assert_int_equal(check_buf(copy, fx.open.len, &report, &err), 0);
    assert_string_equal(report.torn, "open-1");
    assert_int_equal(report.torn_offset, last);
    /* The same in the first batch. */
    memcpy(copy, fx.open.buf, fx.open.len);
    put32(copy + 8 + 16 + 12, UINT32_MAX);
    put32(copy + 8, crc_bitwise(copy + 16, 8 + 16 * (size_t)get64(copy + 16)));
    assert_refused(copy, fx.open.len, 0, "data that runs past the end of the file");
    free(copy);

    /* Small files of every length, made of a format word and pieces of a batch. */
    uint8_t tiny[64];
    size_t off = 8;
    memset(tiny, 0, sizeof(tiny));
    put64(tiny, 1);
    put_batch(tiny, &off, 16, 0x5a);
    for (size_t len = 0; len <= off; len++) {
        uint8_t *exact = malloc(len > 0 ? len : 1); /* exact size: ASan sees a read past it */
        memcpy(exact, tiny, len);
        assert_int_equal(check_buf(exact, len, &report, &err), 0);
        assert_int_equal(report.batches, len == off ? 1 : 0);
        free(exact);
    }
}

/* A plausible batch at every 16 bytes with a large entry count: the search after a bad batch
 * gives up (and refuses) rather than take the file's size squared. */
static void test_hostile_file_is_bounded(void **state)
{
    (void)state;
    size_t len = 2u << 20;
    uint8_t *buf = calloc(1, len);
    assert_non_null(buf);
    put64(buf, 1);
    for (size_t at = 8; at + 16 <= len; at += 16) {
        /* Read from here a count of 59905; read from the next word on, entries of term 7,
         * type 1 (0xea01's low byte) and size 0. */
        put64(buf + at, 0xea01);
        put64(buf + at + 8, 7);
    }
    struct gy_error err;
    int rc = check_buf(buf, len, NULL, &err);
    assert_int_equal(rc, -GY_EIO);
    assert_non_null(strstr(err.msg, "could not be checked"));
    free(buf);
}

/* A file larger than any segment libraft writes is refused without being read. */
static void test_oversized_segment_refused(void **state)
{
    (void)state;
    char dir[64];
    dir_with(dir, sizeof(dir), fx.open.buf, 4096);
    char path[128];
    snprintf(path, sizeof(path), "%s/open-1", dir);
    assert_int_equal(truncate(path, (off_t)SCH_SEGMENT_MAX_FILE + 1), 0); /* sparse */
    struct gy_error err;
    assert_int_equal(sch_segment_check_open(dir, NULL, &err), -GY_EIO);
    assert_non_null(strstr(err.msg, "damaged Raft segment open-1: 67108865 bytes"));
    remove_dir(dir);
}

/* A bad last batch in one open segment and valid batches in the next: libraft would load
 * the next segment's entries at indexes that are not theirs. */
static void test_valid_batches_in_a_later_segment_refused(void **state)
{
    (void)state;
    char dir[64];
    uint8_t *copy = segment_copy(fx.open.len);
    copy[fx.offsets[fx.n_batches - 1] + 40] ^= 0x10;
    dir_with(dir, sizeof(dir), copy, fx.open.len);
    file_write(dir, "open-2", fx.open.buf, fx.open.len);
    struct gy_error err;
    assert_int_equal(sch_segment_check_open(dir, NULL, &err), -GY_EIO);
    char want[256];
    snprintf(want, sizeof(want),
             "damaged Raft segment open-1: data checksum mismatch in the batch at byte %zu, "
             "followed by %zu valid batches (the last in open-2): it may hold acknowledged "
             "entries",
             fx.offsets[fx.n_batches - 1], fx.n_batches);
    assert_string_equal(err.msg, want);
    /* With open-2 unused (zeros) it is a torn write again. */
    uint8_t *zeros = calloc(1, fx.open.len);
    file_write(dir, "open-2", zeros, fx.open.len);
    assert_int_equal(sch_segment_check_open(dir, NULL, &err), 0);
    /* Order is by counter, not by name: open-10 comes after open-9. */
    file_write(dir, "open-9", copy, fx.open.len);
    file_write(dir, "open-10", fx.open.buf, fx.open.len);
    assert_int_equal(sch_segment_check_open(dir, NULL, &err), -GY_EIO);
    assert_non_null(strstr(err.msg, "(the last in open-10)"));
    free(zeros);
    free(copy);
    remove_dir(dir);
}

/* The reason for the check: libraft 0.15 loads an open segment whose first batch is damaged
 * without an error, and the log ends before it. The check, run first, refuses it. */
static void test_libraft_cuts_a_damaged_open_segment(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof(dir));
    DIR *d = opendir(fx.raft_dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            copy_file(fx.raft_dir, dir, e->d_name);
    closedir(d);
    size_t mid = fx.n_batches / 2;
    uint8_t *copy = segment_copy(fx.open.len);
    copy[fx.offsets[mid] + 40] ^= 0x01;
    file_write(dir, fx.open_name, copy, fx.open.len);
    free(copy);

    struct gy_error err;
    assert_int_equal(sch_segment_check_open(dir, NULL, &err), -GY_EIO);
    assert_non_null(strstr(err.msg, fx.open_name));

    struct cluster c;
    int rc;
    cluster_start(&c, dir, false, &rc);
    assert_int_equal(rc, 0); /* no error... */
    raft_index last = raft_last_index(&c.raft);
    cluster_stop(&c);
    assert_true(last < fx.last); /* ...and entries gone */
    print_message("libraft 0.15 loaded the damaged open segment: last index %llu instead of "
                  "%llu\n",
                  (unsigned long long)last, (unsigned long long)fx.last);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_segment_passes),
        cmocka_unit_test(test_no_open_segment_passes),
        cmocka_unit_test(test_last_batch_cut_short_passes),
        cmocka_unit_test(test_last_batch_flipped_passes),
        cmocka_unit_test(test_first_batch_data_flipped_refused),
        cmocka_unit_test(test_first_batch_header_flipped_refused),
        cmocka_unit_test(test_absurd_lengths_stay_in_bounds),
        cmocka_unit_test(test_hostile_file_is_bounded),
        cmocka_unit_test(test_oversized_segment_refused),
        cmocka_unit_test(test_valid_batches_in_a_later_segment_refused),
        cmocka_unit_test(test_libraft_cuts_a_damaged_open_segment),
    };
    return cmocka_run_group_tests(tests, fixture_setup, fixture_teardown);
}
