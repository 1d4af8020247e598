/* A fixture for unit tests that drive a real, in-memory state machine: cmocka setup and
 * teardown, executing a command that must be accepted, and one helper per command kind the
 * tests build. Every helper is static inline, so a test includes it and uses what it
 * needs. */
#ifndef GANTRY_TESTS_UNIT_STATE_FIXTURE_H
#define GANTRY_TESTS_UNIT_STATE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/spec.h"
#include "proto/gantry.pb-c.h"
#include "proto/spec_pb.h"
#include "scheduler/state/fsm.h"

/* What the commands built by gt_command carry: the wall clock they were proposed at and
 * their actor (NULL leaves the empty actor of GANTRY__COMMAND__INIT). A test program sets
 * it before its tests run; a test that times its commands moves it. */
static struct {
    uint64_t time_ms;
    const char *actor;
} gt_clock;

/* cmocka setup: an empty in-memory state machine in *state. */
static inline int gt_fsm_setup(void **state)
{
    struct sch_fsm *fsm = calloc(1, sizeof(*fsm));
    struct gy_error err;
    assert_int_equal(sch_fsm_init(fsm, &err), 0);
    *state = fsm;
    return 0;
}

/* cmocka teardown of gt_fsm_setup. */
static inline int gt_fsm_teardown(void **state)
{
    sch_fsm_close(*state);
    free(*state);
    return 0;
}

/* A command of kind, stamped with gt_clock; the caller points it at its body. */
static inline Gantry__Command gt_command(Gantry__Command__CmdCase kind)
{
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.time_ms = gt_clock.time_ms;
    if (gt_clock.actor != NULL)
        cmd.actor = (char *)gt_clock.actor;
    cmd.cmd_case = kind;
    return cmd;
}

/* Executes cmd as it is, failing the test when the state machine refuses it or a step of
 * its batch. */
static inline void gt_execute(struct sch_fsm *fsm, const Gantry__Command *cmd)
{
    struct sch_result *res = calloc(1, sizeof(*res));
    if (sch_fsm_execute(fsm, cmd, res) != 0)
        fail_msg("command %d refused: %s", (int)cmd->cmd_case, res->message ? res->message : "?");
    for (size_t i = 0; i < res->n_batch; i++)
        if (res->batch[i].code != 0)
            fail_msg("batch step %zu refused: %s", i, res->batch[i].message);
    sch_result_free(res);
}

/* Fills info (and cap, its capacity) for node name in cloud; other fields stay unset. */
static inline void gt_node_info(Gantry__NodeInfo *info, Gantry__Resources *cap, const char *name,
                                const char *cloud, int64_t cpu_millis, int64_t memory_bytes)
{
    gantry__node_info__init(info);
    gantry__resources__init(cap);
    info->name = (char *)name;
    info->cloud = (char *)cloud;
    cap->cpu_millis = cpu_millis;
    cap->memory_bytes = memory_bytes;
    info->capacity = cap;
}

/* Registers the node info describes. */
static inline void gt_register(struct sch_fsm *fsm, Gantry__NodeInfo *info)
{
    Gantry__RegisterNode reg = GANTRY__REGISTER_NODE__INIT;
    reg.node = info;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_REGISTER_NODE);
    cmd.register_node = &reg;
    gt_execute(fsm, &cmd);
}

/* Registers node name in cloud with the given capacity and nothing else. */
static inline void gt_register_node(struct sch_fsm *fsm, const char *name, const char *cloud,
                                    int64_t cpu_millis, int64_t memory_bytes)
{
    Gantry__NodeInfo info;
    Gantry__Resources cap;
    gt_node_info(&info, &cap, name, cloud, cpu_millis, memory_bytes);
    gt_register(fsm, &info);
}

/* Sets node name to state, for the reason "test". */
static inline void gt_set_node_state(struct sch_fsm *fsm, const char *name, Gantry__NodeState state)
{
    Gantry__SetNodeState set = GANTRY__SET_NODE_STATE__INIT;
    set.name = (char *)name;
    set.state = state;
    set.reason = (char *)"test";
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_SET_NODE_STATE);
    cmd.set_node_state = &set;
    gt_execute(fsm, &cmd);
}

/* Sets node name's condition kind to message, or clears it when message is "". */
static inline void gt_set_node_condition(struct sch_fsm *fsm, const char *name, const char *kind,
                                         const char *message)
{
    Gantry__SetNodeCondition set = GANTRY__SET_NODE_CONDITION__INIT;
    set.node = (char *)name;
    set.kind = (char *)kind;
    set.message = (char *)message;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_SET_NODE_CONDITION);
    cmd.set_node_condition = &set;
    gt_execute(fsm, &cmd);
}

/* Applies the one workload spec describes. */
static inline void gt_apply(struct sch_fsm *fsm, Gantry__WorkloadSpec *spec)
{
    Gantry__ApplyWorkloads apply = GANTRY__APPLY_WORKLOADS__INIT;
    apply.workloads = &spec;
    apply.n_workloads = 1;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_APPLY_WORKLOADS);
    cmd.apply_workloads = &apply;
    gt_execute(fsm, &cmd);
}

/* Applies spec in its wire form, then frees spec. */
static inline void gt_apply_spec(struct sch_fsm *fsm, struct gy_spec *spec)
{
    Gantry__WorkloadSpec *pb = gy_spec_to_proto(spec);
    gt_apply(fsm, pb);
    gy_spec_proto_free(pb);
    gy_spec_free(spec);
}

/* Scales workload name to replicas, for reason (NULL: none). */
static inline void gt_scale(struct sch_fsm *fsm, const char *name, uint32_t replicas,
                            const char *reason)
{
    Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
    scale.name = (char *)name;
    scale.replicas = replicas;
    if (reason != NULL)
        scale.reason = (char *)reason;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_SCALE_WORKLOAD);
    cmd.scale_workload = &scale;
    gt_execute(fsm, &cmd);
}

/* Places replica id of workload (generation 1) on node. */
static inline void gt_place(struct sch_fsm *fsm, const char *id, const char *workload,
                            const char *node)
{
    Gantry__ReplicaPlacement placement = GANTRY__REPLICA_PLACEMENT__INIT;
    placement.replica_id = (char *)id;
    placement.workload = (char *)workload;
    placement.generation = 1;
    placement.node = (char *)node;
    Gantry__ReplicaPlacement *all = &placement;
    Gantry__PlaceReplicas place = GANTRY__PLACE_REPLICAS__INIT;
    place.replicas = &all;
    place.n_replicas = 1;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_PLACE_REPLICAS);
    cmd.place_replicas = &place;
    gt_execute(fsm, &cmd);
}

/* Records the n replica reports in updates, in one command. */
static inline void gt_update_replicas(struct sch_fsm *fsm, Gantry__ReplicaStatus **updates,
                                      size_t n)
{
    Gantry__UpdateReplicas update = GANTRY__UPDATE_REPLICAS__INIT;
    update.updates = updates;
    update.n_updates = n;
    Gantry__Command cmd = gt_command(GANTRY__COMMAND__CMD_UPDATE_REPLICAS);
    cmd.update_replicas = &update;
    gt_execute(fsm, &cmd);
}

/* Records one replica report. */
static inline void gt_update_replica(struct sch_fsm *fsm, Gantry__ReplicaStatus *status)
{
    gt_update_replicas(fsm, &status, 1);
}

/* Frees n names and their array, as sch_fsm_dirty_take and sch_reconcile_waiting hand them
 * over. */
static inline void gt_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Takes the dirty workload set and forgets it, as a pass that looks at nothing would. */
static inline void gt_dirty_drop(struct sch_fsm *fsm)
{
    char **names;
    size_t n;
    bool all;
    sch_fsm_dirty_take(fsm, &names, &n, &all);
    gt_names_free(names, n);
}

#endif
