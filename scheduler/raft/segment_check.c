/* The open-segment check (segment_check.h): libraft 0.15's segment format, read without
 * libraft, and the rule that tells a torn last write from a damaged batch.
 *
 * Layout of an open segment, all integers little endian (src/uv_segment.c, uvSegmentBuffer*
 * and uvLoadEntriesBatch; src/uv_encoding.c, uvEncodeBatchHeader):
 *
 *     format            u64, 1
 *     batch...          one per write request, each:
 *         crc_header    u32, byteCrc32 of the header below
 *         crc_data      u32, byteCrc32 of the data below
 *         header        u64 entry count n, then per entry: u64 term, u8 type, 3 unused
 *                       bytes (not always zero), u32 data size
 *         data          the entries' data back to back (Gantry pads each to 8 bytes,
 *                       libraft_compat.h item 1, so every batch starts 8-byte aligned)
 *     zeros             the rest of the preallocated file
 *
 * libraft's reader takes the data length as the sum of the sizes, refuses a count of 0 or
 * above UV__MAX_SEGMENT_SIZE / 32, and in an open segment ends the log at the first batch
 * that fails any of that, whatever follows it (uvSegmentLoadOpen only traces a non-zero
 * tail). Only one write is in flight at a time (uv_append.c, uvAppendMaybeStart), so a
 * complete batch after a bad one was written after it: the bad one is damage, not a tear.
 * The one case where that reading is too strict is a power loss in the middle of a single
 * write that carried several batches, if the disk stored a later block and not an earlier
 * one: the server then refuses to start, which loses nothing (none of those batches was
 * acknowledged), and is replaced as for any damage. */
#include "scheduler/raft/segment_check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#define SEGMENT_FORMAT 1
/* libraft's bound on a batch's entry count: UV__MAX_SEGMENT_SIZE / (sizeof(uint64_t) * 4). */
#define SEGMENT_MAX_ENTRIES ((8u * 1024 * 1024) / 32)
#define BATCH_PREAMBLE      16 /* two checksums and the entry count */
#define ENTRY_HEADER        16
/* Entry types libraft accepts (RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE in raft.h). */
#define ENTRY_TYPE_MIN 1
#define ENTRY_TYPE_MAX 3
/* What may be spent looking for a valid batch after a bad one, in bytes examined per byte
 * of the file, plus a constant: a file libraft wrote needs a small fraction of it; a file
 * made to have a plausible batch at every offset would need its size squared. */
#define SCAN_BUDGET_PER_BYTE 16u
#define SCAN_BUDGET_BASE     (1u << 20)

/* ---------------------------------------------------------------------------------------
 * libraft's CRC32
 *
 * src/byte.c's byteCrc32, taken from libiberty: polynomial 0x04c11db7 shifted in most
 * significant bit first, the initial value passed in (0 for segments), no final inversion.
 * It is not zlib's crc32 (reflected, inverted), which gives other values. */

struct crc_table {
    uint32_t entry[256];
};

static void crc_table_init(struct crc_table *t)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i << 24;
        for (int bit = 0; bit < 8; bit++)
            c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
        t->entry[i] = c;
    }
}

static uint32_t crc_compute(const struct crc_table *t, const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = (crc << 8) ^ t->entry[((crc >> 24) ^ p[i]) & 0xffu];
    return crc;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The offset after the last byte of buf that is not zero (0 if all are). */
static size_t nonzero_end(const uint8_t *buf, size_t len)
{
    while (len > 0 && buf[len - 1] == 0)
        len--;
    return len;
}

/* ---------------------------------------------------------------------------------------
 * One batch */

struct batch {
    size_t end;      /* the first byte after it, when it decodes */
    size_t examined; /* bytes read to decide */
    char why[80];    /* why it does not decode */
};

/* Decodes the batch at off of buf (len bytes) as libraft's reader would, every length
 * checked against the bytes that are there before it is used. True when the batch is whole
 * with both checksums right. scanning: looking for a batch at any offset, where the entry
 * types are checked before the header checksum, to give up early on the many offsets
 * that are no batch (the outcome is the same). */
static bool batch_decode(const struct crc_table *crc, const uint8_t *buf, size_t len, size_t off,
                         bool scanning, struct batch *b)
{
    b->examined = BATCH_PREAMBLE;
    size_t left = len - off;
    if (left < BATCH_PREAMBLE) {
        snprintf(b->why, sizeof(b->why), "the end of the file");
        return false;
    }
    const uint8_t *p = buf + off;
    uint64_t n = get64(p + 8);
    if (n == 0) {
        snprintf(b->why, sizeof(b->why), "an entry count of 0");
        return false;
    }
    if (n > SEGMENT_MAX_ENTRIES) {
        snprintf(b->why, sizeof(b->why), "an entry count of %llu, out of range",
                 (unsigned long long)n);
        return false;
    }
    /* n is small enough here for the sizes below not to overflow. */
    size_t header_len = 8 + ENTRY_HEADER * (size_t)n;
    if (header_len > left - 8) {
        snprintf(b->why, sizeof(b->why), "a header that runs past the end of the file");
        return false;
    }
    const uint8_t *entries = p + 16;
    for (size_t i = 0; scanning && i < (size_t)n; i++) {
        b->examined += ENTRY_HEADER;
        uint8_t type = entries[ENTRY_HEADER * i + 8];
        if (type < ENTRY_TYPE_MIN || type > ENTRY_TYPE_MAX) {
            snprintf(b->why, sizeof(b->why), "an unknown entry type %u", type);
            return false;
        }
    }
    b->examined += header_len;
    if (crc_compute(crc, p + 8, header_len) != get32(p)) {
        snprintf(b->why, sizeof(b->why), "header checksum mismatch");
        return false;
    }
    uint64_t data_len = 0;
    for (size_t i = 0; i < (size_t)n; i++) {
        const uint8_t *entry = entries + ENTRY_HEADER * i;
        if (entry[8] < ENTRY_TYPE_MIN || entry[8] > ENTRY_TYPE_MAX) {
            snprintf(b->why, sizeof(b->why), "an unknown entry type %u", entry[8]);
            return false;
        }
        data_len += get32(entry + 12); /* at most 2^18 sizes below 2^32: no overflow */
    }
    size_t data_off = 8 + header_len;
    if (data_len > left - data_off) {
        snprintf(b->why, sizeof(b->why), "data that runs past the end of the file");
        return false;
    }
    b->examined += (size_t)data_len;
    if (crc_compute(crc, p + data_off, (size_t)data_len) != get32(p + 4)) {
        snprintf(b->why, sizeof(b->why), "data checksum mismatch");
        return false;
    }
    b->end = off + data_off + (size_t)data_len;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * The open segments of a directory, in libraft's order */

/* The first bad batch seen, and what came after it. */
struct damage {
    bool seen;
    char segment[SCH_SEGMENT_NAME_MAX];
    size_t offset;
    char why[80];
    size_t valid_after;                    /* valid batches after it, in any open segment */
    char last_valid[SCH_SEGMENT_NAME_MAX]; /* the segment of the last of them */
    bool unchecked;                        /* the scan after a bad batch gave up */
};

/* Walks one segment's batches; a bad batch that is not the zero fill is noted and the rest
 * of the file searched for a valid batch at each 8-byte boundary. */
static void segment_walk(const struct crc_table *crc, const char *name, const uint8_t *buf,
                         size_t len, struct damage *d, struct sch_segment_report *report)
{
    /* Shorter than the format word, another format, or never written: libraft refuses
     * the first two itself and removes the last. */
    if (len < 8 || get64(buf) != SEGMENT_FORMAT)
        return;
    report->segments++;
    uint64_t budget = (uint64_t)SCAN_BUDGET_PER_BYTE * len + SCAN_BUDGET_BASE;
    /* No batch starts in the zero fill (its entry count would be 0). */
    size_t written = nonzero_end(buf, len);
    size_t off = 8;
    struct batch b;
    while (off < len) {
        if (batch_decode(crc, buf, len, off, false, &b)) {
            report->batches++;
            if (d->seen) {
                d->valid_after++;
                snprintf(d->last_valid, sizeof(d->last_valid), "%s", name);
            }
            off = b.end;
            continue;
        }
        if (off >= written)
            return; /* the end of the log: the file's zero fill */
        if (!d->seen) {
            d->seen = true;
            snprintf(d->segment, sizeof(d->segment), "%s", name);
            d->offset = off;
            snprintf(d->why, sizeof(d->why), "%s", b.why);
        }
        if (report->torn[0] == '\0') {
            snprintf(report->torn, sizeof(report->torn), "%s", name);
            report->torn_offset = off;
        }
        size_t next = len;
        for (size_t at = off + 8; at < written && at + BATCH_PREAMBLE <= len; at += 8) {
            struct batch candidate;
            if (batch_decode(crc, buf, len, at, true, &candidate)) {
                next = at;
                break;
            }
            if (candidate.examined >= budget) {
                d->unchecked = true;
                return;
            }
            budget -= candidate.examined;
        }
        off = next;
    }
}

struct open_segment {
    unsigned long long counter;
    char name[SCH_SEGMENT_NAME_MAX];
};

/* "open-N" with N decimal digits that fit 64 bits (libraft's UV__OPEN_TEMPLATE). */
static bool open_segment_name(const char *name, struct open_segment *s)
{
    if (strncmp(name, "open-", 5) != 0)
        return false;
    const char *digits = name + 5;
    size_t n = strlen(digits);
    if (n == 0 || n > 20 || strspn(digits, "0123456789") != n)
        return false;
    errno = 0;
    unsigned long long counter = strtoull(digits, NULL, 10);
    if (errno != 0)
        return false;
    s->counter = counter;
    memcpy(s->name, name, 5 + n + 1); /* at most 26 bytes */
    return true;
}

static int open_segment_compare(const void *a, const void *b)
{
    const struct open_segment *x = a, *y = b;
    return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/* The open segments in dir, sorted by counter, in *out (the caller frees it). */
static int open_segments_list(const char *dir, struct open_segment **out, size_t *n_out,
                              struct gy_error *err)
{
    *out = NULL;
    *n_out = 0;
    cleanup_closedir DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        return gy_error_sys(err, errno, "open Raft directory %s", dir);
    }
    cleanup_free struct open_segment *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        struct open_segment s;
        if (!open_segment_name(e->d_name, &s))
            continue;
        if (n == cap) {
            size_t more = cap == 0 ? 8 : cap * 2;
            struct open_segment *grown = realloc(list, more * sizeof(*list));
            if (grown == NULL)
                return gy_error_set(err, GY_ENOMEM, "list the open segments of %s", dir);
            list = grown;
            cap = more;
        }
        list[n++] = s;
        errno = 0;
    }
    if (errno != 0)
        return gy_error_sys(err, errno, "read Raft directory %s", dir);
    if (n > 1)
        qsort(list, n, sizeof(*list), open_segment_compare);
    *out = gy_steal_ptr(&list);
    *n_out = n;
    return 0;
}

/* The content of dir/name in *buf (the caller frees it), *len bytes; *len 0 for an empty
 * file or one that is not a regular file (libraft removes an empty open segment). */
static int segment_read(const char *dir, const char *name, uint8_t **buf, size_t *len,
                        struct gy_error *err)
{
    *buf = NULL;
    *len = 0;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "open Raft segment %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0)
        return gy_error_sys(err, errno, "stat Raft segment %s", path);
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return 0;
    if ((uint64_t)st.st_size > SCH_SEGMENT_MAX_FILE)
        return gy_error_set(err, GY_EIO,
                            "damaged Raft segment %s: %lld bytes, more than any open segment "
                            "libraft writes (%u): it may hold acknowledged entries",
                            name, (long long)st.st_size, SCH_SEGMENT_MAX_FILE);
    size_t size = (size_t)st.st_size;
    cleanup_free uint8_t *content = malloc(size);
    if (content == NULL)
        return gy_error_set(err, GY_ENOMEM, "read Raft segment %s: %zu bytes", path, size);
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, content + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return gy_error_sys(err, errno, "read Raft segment %s", path);
        if (r == 0)
            return gy_error_set(err, GY_EIO, "read Raft segment %s: %zu bytes of %zu", path, got,
                                size);
        got += (size_t)r;
    }
    *buf = gy_steal_ptr(&content);
    *len = size;
    return 0;
}

int sch_segment_check_open(const char *raft_dir, struct sch_segment_report *report,
                           struct gy_error *err)
{
    struct sch_segment_report unused;
    if (report == NULL)
        report = &unused;
    memset(report, 0, sizeof(*report));
    cleanup_free struct open_segment *segments = NULL;
    size_t n = 0;
    int rc = open_segments_list(raft_dir, &segments, &n, err);
    if (rc < 0)
        return rc;
    struct crc_table crc;
    crc_table_init(&crc);
    struct damage d = {0};
    for (size_t i = 0; i < n && !d.unchecked; i++) {
        cleanup_free uint8_t *buf = NULL;
        size_t len = 0;
        if ((rc = segment_read(raft_dir, segments[i].name, &buf, &len, err)) < 0)
            return rc;
        segment_walk(&crc, segments[i].name, buf, len, &d, report);
    }
    if (d.unchecked || d.valid_after > 0)
        report->torn[0] = '\0';
    if (d.unchecked)
        return gy_error_set(err, GY_EIO,
                            "damaged Raft segment %s: %s in the batch at byte %zu, and what "
                            "follows it could not be checked: it may hold acknowledged entries",
                            d.segment, d.why, d.offset);
    if (d.valid_after == 0)
        return 0;
    char where[SCH_SEGMENT_NAME_MAX + 16] = "";
    if (strcmp(d.last_valid, d.segment) != 0)
        snprintf(where, sizeof(where), " (the last in %s)", d.last_valid);
    return gy_error_set(err, GY_EIO,
                        "damaged Raft segment %s: %s in the batch at byte %zu, followed by %zu "
                        "valid batch%s%s: it may hold acknowledged entries",
                        d.segment, d.why, d.offset, d.valid_after, d.valid_after == 1 ? "" : "es",
                        where);
}
