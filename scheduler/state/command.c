/* Raft log entry encoding: header (magic, payload length), protobuf, zero padding. */
#include "scheduler/state/command.h"

#include <raft.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Allocates an entry for a payload of payload bytes (what names it in the error) with
 * raft_malloc, writes its header and zeroes its padding; the caller writes the payload at
 * *buf + SCH_COMMAND_HEADER. */
static int entry_new(size_t payload, const char *what, uint8_t **buf, size_t *len,
                     struct gy_error *err)
{
    if (payload > SCH_COMMAND_MAX - SCH_COMMAND_HEADER - 8)
        return gy_error_set(err, GY_ETOOBIG, "%s of %zu bytes is over the %u byte limit", what,
                            payload, SCH_COMMAND_MAX);
    size_t total = (SCH_COMMAND_HEADER + payload + 7) & ~(size_t)7;
    uint8_t *entry = raft_malloc(total);
    if (entry == NULL)
        return gy_error_set(err, GY_ENOMEM, "allocate a command of %zu bytes", total);
    put_u32(entry, SCH_COMMAND_MAGIC);
    put_u32(entry + 4, (uint32_t)payload);
    memset(entry + SCH_COMMAND_HEADER + payload, 0, total - SCH_COMMAND_HEADER - payload);
    *buf = entry;
    *len = total;
    return 0;
}

int sch_command_encode(const Gantry__Command *cmd, void **out, size_t *len, struct gy_error *err)
{
    uint8_t *buf = NULL;
    int rc = entry_new(gantry__command__get_packed_size(cmd), "command", &buf, len, err);
    if (rc < 0)
        return rc;
    gantry__command__pack(cmd, buf + SCH_COMMAND_HEADER);
    *out = buf;
    return 0;
}

int sch_command_pack(const Gantry__Command *cmd, struct sch_packed_command *out,
                     struct gy_error *err)
{
    size_t len = gantry__command__get_packed_size(cmd);
    if (len > SCH_COMMAND_MAX / 2)
        return gy_error_set(err, GY_ETOOBIG, "command of %zu bytes is over the %u byte limit", len,
                            SCH_COMMAND_MAX / 2);
    out->bytes = malloc(len ? len : 1);
    if (out->bytes == NULL)
        return gy_error_set(err, GY_ENOMEM, "allocate a command of %zu bytes", len);
    gantry__command__pack(cmd, out->bytes);
    out->len = len;
    return 0;
}

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Field 1 of CommandBatch (commands) and field 20 of Command (batch), both
 * length-delimited. */
#define BATCH_COMMANDS_TAG 0x0a
#define COMMAND_BATCH_TAG  ((20u << 3) | 2u)

int sch_command_encode_group(const struct sch_packed_command *cmds, size_t n, void **out,
                             size_t *len, struct gy_error *err)
{
    size_t inner = 0;
    for (size_t i = 0; i < n; i++)
        inner += 1 + varint_len(cmds[i].len) + cmds[i].len;
    size_t payload =
        n == 1 ? cmds[0].len : varint_len(COMMAND_BATCH_TAG) + varint_len(inner) + inner;
    uint8_t *buf = NULL;
    int rc = entry_new(payload, "command group", &buf, len, err);
    if (rc < 0)
        return rc;
    uint8_t *p = buf + SCH_COMMAND_HEADER;
    if (n == 1) {
        memcpy(p, cmds[0].bytes, cmds[0].len);
        p += cmds[0].len;
    } else {
        p += varint_put(p, COMMAND_BATCH_TAG);
        p += varint_put(p, inner);
        for (size_t i = 0; i < n; i++) {
            *p++ = BATCH_COMMANDS_TAG;
            p += varint_put(p, cmds[i].len);
            memcpy(p, cmds[i].bytes, cmds[i].len);
            p += cmds[i].len;
        }
    }
    *out = buf;
    return 0;
}

Gantry__Command *sch_command_decode(const void *data, size_t len, struct gy_error *err)
{
    return sch_command_decode_with(data, len, NULL, err);
}

Gantry__Command *sch_command_decode_with(const void *data, size_t len, ProtobufCAllocator *alloc,
                                         struct gy_error *err)
{
    const uint8_t *buf = data;
    if (len < SCH_COMMAND_HEADER || len % 8 != 0) {
        gy_error_set(err, GY_EPROTO, "command entry of %zu bytes is not a padded entry", len);
        return NULL;
    }
    if (get_u32(buf) != SCH_COMMAND_MAGIC) {
        gy_error_set(err, GY_EPROTO, "command entry has a bad magic number 0x%08x", get_u32(buf));
        return NULL;
    }
    size_t payload = get_u32(buf + 4);
    if (payload > len - SCH_COMMAND_HEADER || len - SCH_COMMAND_HEADER - payload >= 8) {
        gy_error_set(err, GY_EPROTO, "command entry of %zu bytes claims a %zu byte payload", len,
                     payload);
        return NULL;
    }
    for (size_t i = SCH_COMMAND_HEADER + payload; i < len; i++) {
        if (buf[i] != 0) {
            gy_error_set(err, GY_EPROTO, "command entry has non-zero padding");
            return NULL;
        }
    }
    Gantry__Command *cmd = gantry__command__unpack(alloc, payload, buf + SCH_COMMAND_HEADER);
    if (cmd == NULL)
        gy_error_set(err, GY_EPROTO, "command entry holds an invalid protobuf Command");
    return cmd;
}

const char *sch_command_kind(const Gantry__Command *cmd)
{
    switch (cmd->cmd_case) {
    case GANTRY__COMMAND__CMD_APPLY_WORKLOADS:
        return "apply_workloads";
    case GANTRY__COMMAND__CMD_DELETE_WORKLOAD:
        return "delete_workload";
    case GANTRY__COMMAND__CMD_SCALE_WORKLOAD:
        return "scale_workload";
    case GANTRY__COMMAND__CMD_REGISTER_NODE:
        return "register_node";
    case GANTRY__COMMAND__CMD_SET_NODE_STATE:
        return "set_node_state";
    case GANTRY__COMMAND__CMD_SET_NODE_CONDITION:
        return "set_node_condition";
    case GANTRY__COMMAND__CMD_REMOVE_NODE:
        return "remove_node";
    case GANTRY__COMMAND__CMD_SET_NODE_TUNNEL:
        return "set_node_tunnel";
    case GANTRY__COMMAND__CMD_PLACE_REPLICAS:
        return "place_replicas";
    case GANTRY__COMMAND__CMD_UPDATE_REPLICAS:
        return "update_replicas";
    case GANTRY__COMMAND__CMD_SET_SERVER:
        return "set_server";
    case GANTRY__COMMAND__CMD_REMOVE_SERVER:
        return "remove_server";
    case GANTRY__COMMAND__CMD_INIT_CLUSTER:
        return "init_cluster";
    case GANTRY__COMMAND__CMD_BATCH:
        return "batch";
    default:
        return "empty";
    }
}
