/* Commands the leader's duties build to propose (reconcile, autoscaler, liveness): every
 * part allocated with malloc, as protobuf-c's unpacker would, so that
 * protobuf_c_message_free_unpacked(&cmd->base, NULL) frees the whole. Nothing outside
 * scheduler/fleet/ includes it. */
#ifndef GANTRY_SCHEDULER_FLEET_FLEET_COMMAND_H
#define GANTRY_SCHEDULER_FLEET_FLEET_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "proto/gantry.pb-c.h"

/* An empty command of actor, stamped wall_ms; the caller sets its case and body. Aborts
 * when out of memory. */
Gantry__Command *fleet_command_new(const char *actor, uint64_t wall_ms);

/* A command of actor, stamped wall_ms, holding the n commands of the malloc'd array
 * commands in a batch; it takes the array and the commands. */
Gantry__Command *fleet_command_batch(const char *actor, uint64_t wall_ms,
                                     Gantry__Command **commands, size_t n);

#endif
