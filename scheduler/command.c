/* Raft log entry encoding: header (magic, payload length), protobuf, zero padding. */
#include "scheduler/command.h"

#include <raft.h>
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

int sch_command_encode(const Gantry__Command *cmd, void **out, size_t *len, struct gy_error *err)
{
    size_t payload = gantry__command__get_packed_size(cmd);
    if (payload > SCH_COMMAND_MAX - SCH_COMMAND_HEADER - 8)
        return gy_error_set(err, GY_ETOOBIG, "command of %zu bytes is over the %u byte limit",
                            payload, SCH_COMMAND_MAX);
    size_t total = (SCH_COMMAND_HEADER + payload + 7) & ~(size_t)7;
    uint8_t *buf = raft_malloc(total);
    if (buf == NULL)
        return gy_error_set(err, GY_ENOMEM, "allocate a command of %zu bytes", total);
    put_u32(buf, SCH_COMMAND_MAGIC);
    put_u32(buf + 4, (uint32_t)payload);
    gantry__command__pack(cmd, buf + SCH_COMMAND_HEADER);
    memset(buf + SCH_COMMAND_HEADER + payload, 0, total - SCH_COMMAND_HEADER - payload);
    *out = buf;
    *len = total;
    return 0;
}

Gantry__Command *sch_command_decode(const void *data, size_t len, struct gy_error *err)
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
    Gantry__Command *cmd = gantry__command__unpack(NULL, payload, buf + SCH_COMMAND_HEADER);
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
