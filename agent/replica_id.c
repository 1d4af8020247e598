/* Replica ids; see replica_id.h. */
#include "agent/replica_id.h"

#include <string.h>

bool agent_replica_id_parse(const char *id, char workload[GY_SPEC_NAME_MAX + 1])
{
    if (id == NULL)
        return false;
    size_t len = strnlen(id, AGENT_REPLICA_ID_MAX + 1);
    if (len <= AGENT_REPLICA_ID_SUFFIX || len > AGENT_REPLICA_ID_MAX)
        return false;
    size_t name_len = len - AGENT_REPLICA_ID_SUFFIX;
    if (id[name_len] != '-')
        return false;
    for (size_t i = name_len + 1; i < len; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    char name[GY_SPEC_NAME_MAX + 1];
    memcpy(name, id, name_len);
    name[name_len] = '\0';
    if (!gy_spec_name_valid(name))
        return false;
    memcpy(workload, name, name_len + 1);
    return true;
}
