/* The encoding of a Raft log entry: a protobuf Command behind a small header, padded with
 * zero bytes to a multiple of 8 because libraft 0.15 reads entries back assuming that
 * padding (docs/operations.md, "Storage"). */
#ifndef GANTRY_SCHEDULER_COMMAND_H
#define GANTRY_SCHEDULER_COMMAND_H

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

/* A short name of the command's kind ("apply_workloads", "batch", ...), for logs and
 * metrics. */
const char *sch_command_kind(const Gantry__Command *cmd);

#endif
