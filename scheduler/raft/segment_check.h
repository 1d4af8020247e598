/* A check of libraft 0.15's open log segments at start, before libraft loads them, that
 * tells a torn last write (which libraft may cut) from a damaged batch with written batches
 * after it (which it must not cut: docs/operations.md, "A damaged server"). */
#ifndef GANTRY_SCHEDULER_RAFT_SEGMENT_CHECK_H
#define GANTRY_SCHEDULER_RAFT_SEGMENT_CHECK_H

#include <stddef.h>

#include "common/error.h"

/* The longest open segment file read (the default segment is 8 MiB; a larger file is not
 * one libraft 0.15 wrote with Gantry's settings). */
#define SCH_SEGMENT_MAX_FILE (64u << 20)

#define SCH_SEGMENT_NAME_MAX 64

/* What the check found in the open segments of a directory. */
struct sch_segment_report {
    unsigned segments; /* open segments with a log in them */
    size_t batches;    /* batches that decode whole with both checksums right */
    /* The open segment whose last batch is torn (a write cut short, or a batch after the
     * last one that fails its checksum with only zeros or nothing after it), "" if none:
     * libraft ends the log there at its load. torn_offset is that batch's first byte. */
    char torn[SCH_SEGMENT_NAME_MAX];
    size_t torn_offset;
};

/* Reads every open segment ("open-N", in the order of N, as libraft loads them) in
 * raft_dir with the on-disk format of libraft 0.15 (src/uv_segment.c, uvLoadEntriesBatch and
 * uvSegmentLoadOpen; src/uv_encoding.c): a format word (1), then batches, each two CRC32
 * checksums (libraft's byteCrc32: polynomial 0x04c11db7, most significant bit first, no
 * inversion) over the batch header (an entry count, then term, type and data size per entry)
 * and over the entries' data.
 *
 * libraft takes the first batch of an open segment that does not decode, or fails a
 * checksum, for the end of the log and truncates the segment there. That is right for a
 * torn last write, and wrong when written batches follow: the batch is damaged, and the
 * entries in it and after it, which this server may have acknowledged, would be dropped
 * (and those of a later open segment loaded at indexes that are not theirs).
 *
 * Returns 0 when no batch is cut that way: every batch decodes, or only the last is bad
 * with zeros or nothing after it (a torn write, in report->torn). Returns -GY_EIO when a
 * bad batch has a valid batch after it, in its own segment or a later open one, with a
 * message "damaged Raft segment open-N: data checksum mismatch in the batch at byte B,
 * followed by K valid batches: it may hold acknowledged entries"; also when an open segment
 * is larger than SCH_SEGMENT_MAX_FILE, or when what follows a bad batch cannot be told apart
 * in reasonable time (neither happens with a file libraft wrote). Returns -GY_ESYS when the
 * directory or a segment cannot be read. A missing directory holds no open segment (0).
 *
 * What libraft refuses on its own (a format other than 1, a file shorter than the format
 * word) is left to it. Segments are only read, never changed. report may be NULL. */
int sch_segment_check_open(const char *raft_dir, struct sch_segment_report *report,
                           struct gy_error *err);

#endif
