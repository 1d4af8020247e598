/* Commands of the leader's duties, allocated part by part with malloc. */
#include "scheduler/fleet/fleet_command.h"

#include "common/xalloc.h"

Gantry__Command *fleet_command_new(const char *actor, uint64_t wall_ms)
{
    Gantry__Command *c = gy_xmalloc(sizeof(*c));
    gantry__command__init(c);
    c->time_ms = wall_ms;
    c->actor = gy_xstrdup(actor);
    return c;
}

Gantry__Command *fleet_command_batch(const char *actor, uint64_t wall_ms,
                                     Gantry__Command **commands, size_t n)
{
    Gantry__Command *c = fleet_command_new(actor, wall_ms);
    Gantry__CommandBatch *batch = gy_xmalloc(sizeof(*batch));
    gantry__command_batch__init(batch);
    batch->commands = commands;
    batch->n_commands = n;
    c->cmd_case = GANTRY__COMMAND__CMD_BATCH;
    c->batch = batch;
    return c;
}
