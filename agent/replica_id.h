/* Replica ids as the control plane makes them: the workload's name, a '-' and 32 random
 * bits in eight lower-case hex digits ("web-0f3a9c2e"). The agent checks ids it reads from
 * outside its own records (the runtime's container listing) against this scheme before
 * it uses them in paths and namespace names. */
#ifndef GANTRY_AGENT_REPLICA_ID_H
#define GANTRY_AGENT_REPLICA_ID_H

#include <stdbool.h>

#include "common/spec.h"

#define AGENT_REPLICA_ID_SUFFIX 9 /* "-" and eight hex digits */
#define AGENT_REPLICA_ID_MAX    (GY_SPEC_NAME_MAX + AGENT_REPLICA_ID_SUFFIX)

/* True when id follows the scheme; its workload name is then copied into workload. */
bool agent_replica_id_parse(const char *id, char workload[GY_SPEC_NAME_MAX + 1]);

#endif
