/* The encoding of a Raft log entry: a protobuf Command behind a small header, padded with
 * zero bytes to a multiple of 8 because libraft 0.15 reads entries back assuming that
 * padding (docs/operations.md, "Storage"). */
#ifndef GANTRY_SCHEDULER_STATE_COMMAND_H
#define GANTRY_SCHEDULER_STATE_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "proto/gantry.pb-c.h"

/* "GYC1" in little-endian order: the first four bytes of every entry. */
#define SCH_COMMAND_MAGIC  0x31435947u
#define SCH_COMMAND_HEADER 8
/* An entry larger than this is refused before it reaches the log. */
#define SCH_COMMAND_MAX (16u * 1024u * 1024u)

/* Encodes cmd into a buffer allocated with raft_malloc (so it can be handed to
 * raft_apply); *len is a multiple of 8. Returns 0, or -GY_ETOOBIG / -GY_ENOMEM. */
int sch_command_encode(const Gantry__Command *cmd, void **out, size_t *len, struct gy_error *err);

/* Decodes an entry. Returns NULL with err filled when the header, the length, the padding
 * or the protobuf is invalid; the caller frees the result with
 * gantry__command__free_unpacked(cmd, NULL). */
Gantry__Command *sch_command_decode(const void *buf, size_t len, struct gy_error *err);
/* The same, with the protobuf allocations from alloc (NULL: malloc); the caller frees the
 * result with gantry__command__free_unpacked(cmd, alloc). */
Gantry__Command *sch_command_decode_with(const void *buf, size_t len, ProtobufCAllocator *alloc,
                                         struct gy_error *err);

/* A protobuf-packed Command waiting to be proposed (see sch_command_encode_group). */
struct sch_packed_command {
    uint8_t *bytes;
    size_t len;
};

/* Packs cmd into a malloc'd buffer, so the caller's message can be freed at once. */
int sch_command_pack(const Gantry__Command *cmd, struct sch_packed_command *out,
                     struct gy_error *err);

/* Encodes commands that arrived together as one entry: a single command as itself, more as
 * a Command holding a CommandBatch, written straight from the packed bytes (the same wire
 * form protobuf-c would produce). The buffer comes from raft_malloc. */
int sch_command_encode_group(const struct sch_packed_command *cmds, size_t n, void **out,
                             size_t *len, struct gy_error *err);

/* A short name of the command's kind ("apply_workloads", "batch", ...), for logs and
 * metrics. */
const char *sch_command_kind(const Gantry__Command *cmd);

#endif
