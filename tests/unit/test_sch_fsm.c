/* Unit tests of the state machine: every command kind, atomicity, batches, audit events
 * and snapshot round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <raft.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scheduler/state/command.h"
#include "scheduler/state/fsm.h"
#include "scheduler/state/query_fleet.h"
#include "state_fixture.h"

/* A file-backed state machine in a fresh directory (removed by teardown_file). */
static char file_dir[64];

static int setup_file(void **state)
{
    snprintf(file_dir, sizeof(file_dir), "/tmp/gantry-fsm-XXXXXX");
    assert_non_null(mkdtemp(file_dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/state.db", file_dir);
    struct sch_fsm *fsm = calloc(1, sizeof(*fsm));
    struct gy_error err;
    assert_int_equal(sch_fsm_init_file(fsm, path, &err), 0);
    *state = fsm;
    return 0;
}

/* Removes the database files of path: the file, its write-ahead log and its index. */
static void remove_db(const char *path)
{
    char side[4200];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    unlink(path);
}

static int teardown_file(void **state)
{
    char path[sizeof(((struct sch_fsm *)0)->path)];
    snprintf(path, sizeof(path), "%s", ((struct sch_fsm *)*state)->path);
    gt_fsm_teardown(state);
    /* Closing kept the database (the durable state); nothing else is left. */
    remove_db(path);
    assert_int_equal(rmdir(file_dir), 0);
    return 0;
}

static int64_t count(struct sch_fsm *fsm, const char *sql)
{
    sqlite3_stmt *stmt;
    assert_int_equal(sqlite3_prepare_v2(fsm->db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static Gantry__Command command(const char *actor)
{
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.time_ms = 1000;
    cmd.actor = (char *)actor;
    return cmd;
}

/* Applies workloads named in names (NULL-terminated) with the given image. */
static int apply(struct sch_fsm *fsm, const char *const *names, const char *image,
                 struct sch_result *result)
{
    Gantry__WorkloadSpec specs[8], *ptrs[8];
    size_t n = 0;
    for (; names[n] != NULL; n++) {
        gantry__workload_spec__init(&specs[n]);
        specs[n].name = (char *)names[n];
        specs[n].image = (char *)image;
        specs[n].replicas = 2;
        ptrs[n] = &specs[n];
    }
    Gantry__ApplyWorkloads apply = GANTRY__APPLY_WORKLOADS__INIT;
    apply.workloads = ptrs;
    apply.n_workloads = n;
    Gantry__Command cmd = command("user:test");
    cmd.cmd_case = GANTRY__COMMAND__CMD_APPLY_WORKLOADS;
    cmd.apply_workloads = &apply;
    return sch_fsm_execute(fsm, &cmd, result);
}

static void test_apply_created_updated_unchanged(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    const char *names[] = {"web", "db", NULL};
    assert_int_equal(apply(fsm, names, "busybox", &r), 0);
    assert_int_equal(r.n_outcomes, 2);
    assert_int_equal(r.outcomes[0].outcome, SCH_OUTCOME_CREATED);
    assert_int_equal(r.outcomes[0].generation, 1);
    assert_int_equal(r.last_event, 2);
    free(r.outcomes[0].name);
    free(r.outcomes[1].name);
    free(r.outcomes);

    const char *web[] = {"web", NULL};
    assert_int_equal(apply(fsm, web, "busybox", &r), 0);
    assert_int_equal(r.outcomes[0].outcome, SCH_OUTCOME_UNCHANGED);
    assert_int_equal(r.outcomes[0].generation, 1);
    free(r.outcomes[0].name);
    free(r.outcomes);

    assert_int_equal(apply(fsm, web, "alpine", &r), 0);
    assert_int_equal(r.outcomes[0].outcome, SCH_OUTCOME_UPDATED);
    assert_int_equal(r.outcomes[0].generation, 2);
    free(r.outcomes[0].name);
    free(r.outcomes);

    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events"), 4);
    assert_int_equal(count(fsm, "SELECT generation FROM workloads WHERE name = 'web'"), 2);
}

static void test_apply_is_atomic(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    const char *names[] = {"good", "Bad_Name", NULL};
    assert_int_equal(apply(fsm, names, "busybox", &r), -GY_EINVAL);
    assert_non_null(strstr(r.message, "Bad_Name"));
    assert_int_equal(r.last_event, 0);
    free(r.message);
    free(r.outcomes[0].name);
    free(r.outcomes);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events"), 0);
    assert_int_equal(fsm->rejected, 1);
}

static void test_scale_and_delete(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    const char *web[] = {"web", NULL};
    assert_int_equal(apply(fsm, web, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes);

    Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
    scale.name = (char *)"web";
    scale.replicas = 5;
    scale.reason = (char *)"manual";
    Gantry__Command cmd = command("user:cli");
    cmd.cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
    cmd.scale_workload = &scale;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes);
    assert_int_equal(count(fsm, "SELECT replicas FROM workloads WHERE name = 'web'"), 5);
    /* A scale is not a new generation: running replicas stay current. */
    assert_int_equal(count(fsm, "SELECT generation FROM workloads WHERE name = 'web'"), 1);

    scale.name = (char *)"nope";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_ENOTFOUND);
    assert_non_null(strstr(r.message, "nope"));
    free(r.message);

    Gantry__DeleteWorkload del = GANTRY__DELETE_WORKLOAD__INIT;
    del.name = (char *)"web";
    cmd.cmd_case = GANTRY__COMMAND__CMD_DELETE_WORKLOAD;
    cmd.delete_workload = &del;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 0);
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_ENOTFOUND);
    free(r.message);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE kind = 'delete'"), 1);
}

static void register_node(struct sch_fsm *fsm, const char *name)
{
    Gantry__Label label = GANTRY__LABEL__INIT;
    label.key = (char *)"disk";
    label.value = (char *)"ssd \"fast\"";
    Gantry__Label *labels[] = {&label};
    Gantry__NodeInfo node;
    Gantry__Resources capacity;
    gt_node_info(&node, &capacity, name, "private", 4000, 8ll << 30);
    node.labels = labels;
    node.n_labels = 1;
    Gantry__RegisterNode reg = GANTRY__REGISTER_NODE__INIT;
    reg.node = &node;
    Gantry__Command cmd = command("agent:n1");
    cmd.cmd_case = GANTRY__COMMAND__CMD_REGISTER_NODE;
    cmd.register_node = &reg;
    gt_execute(fsm, &cmd);
}

static void test_nodes_and_replicas(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    register_node(fsm, "n1");
    assert_int_equal(count(fsm, "SELECT json_valid(labels) FROM nodes WHERE name = 'n1'"), 1);
    assert_int_equal(count(fsm, "SELECT cpu_millis FROM nodes"), 4000);

    Gantry__SetNodeState set = GANTRY__SET_NODE_STATE__INIT;
    set.name = (char *)"n1";
    set.state = GANTRY__NODE_STATE__NODE_CORDONED;
    Gantry__Command cmd = command("user:cli");
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
    cmd.set_node_state = &set;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    /* Registering again keeps the operator's cordon. */
    register_node(fsm, "n1");
    assert_int_equal(count(fsm, "SELECT state FROM nodes"), GANTRY__NODE_STATE__NODE_CORDONED);
    set.name = (char *)"ghost";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_ENOTFOUND);
    free(r.message);

    const char *web[] = {"web", NULL};
    assert_int_equal(apply(fsm, web, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes);

    Gantry__ReplicaPlacement p1 = GANTRY__REPLICA_PLACEMENT__INIT, p2 = p1;
    p1.replica_id = (char *)"web-1";
    p1.workload = (char *)"web";
    p1.generation = 1;
    p1.node = (char *)"n1";
    p2 = p1;
    p2.replica_id = (char *)"web-2";
    p2.node = (char *)"n9";
    Gantry__ReplicaPlacement *both[] = {&p1, &p2};
    Gantry__PlaceReplicas place = GANTRY__PLACE_REPLICAS__INIT;
    place.replicas = both;
    place.n_replicas = 2;
    cmd = command("reconciler");
    cmd.cmd_case = GANTRY__COMMAND__CMD_PLACE_REPLICAS;
    cmd.place_replicas = &place;
    /* One unknown node rejects the whole batch. */
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_ENOTFOUND);
    assert_non_null(strstr(r.message, "n9"));
    free(r.message);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), 0);
    p2.node = (char *)"n1";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas"), 2);
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_EEXISTS);
    free(r.message);

    Gantry__ReplicaStatus s = GANTRY__REPLICA_STATUS__INIT;
    s.replica_id = (char *)"web-1";
    s.state = GANTRY__REPLICA_STATE__REPLICA_RUNNING;
    s.ready = true;
    s.address = (char *)"10.0.0.5:8080";
    Gantry__ReplicaStatus ghost = s;
    ghost.replica_id = (char *)"web-77";
    Gantry__ReplicaStatus *updates[] = {&s, &ghost};
    Gantry__UpdateReplicas update = GANTRY__UPDATE_REPLICAS__INIT;
    update.updates = updates;
    update.n_updates = 2;
    cmd = command("agent:n1");
    cmd.cmd_case = GANTRY__COMMAND__CMD_UPDATE_REPLICAS;
    cmd.update_replicas = &update;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT state FROM replicas WHERE id = 'web-1'"),
                     GANTRY__REPLICA_STATE__REPLICA_RUNNING);
    assert_int_equal(count(fsm, "SELECT ready FROM replicas WHERE id = 'web-1'"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE message LIKE '%1 unknown%'"), 1);

    /* Deleting the workload asks its replicas to stop. */
    Gantry__DeleteWorkload del = GANTRY__DELETE_WORKLOAD__INIT;
    del.name = (char *)"web";
    cmd = command("user:cli");
    cmd.cmd_case = GANTRY__COMMAND__CMD_DELETE_WORKLOAD;
    cmd.delete_workload = &del;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM replicas WHERE state = 3"), 2);
}

/* A node's StoragePressure condition: set with its audit event, a repeat changes nothing,
 * another reason replaces the first, an empty message clears it with its event; unknown
 * kinds, messages that are not printable ASCII of at most 512 bytes and unknown nodes are
 * refused. A database written before node conditions existed (no table) has the digest of
 * one that holds none, and takes them once an image of it is restored. */
static void test_node_conditions(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    struct gy_error err;
    register_node(fsm, "n1");
    uint64_t digest = sch_fsm_digest(fsm);
    assert_int_equal(sqlite3_exec(fsm->db, "DROP TABLE node_conditions", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sch_fsm_digest(fsm), digest);
    void *image;
    size_t len;
    assert_int_equal(sch_fsm_snapshot_image(fsm, &image, &len, &err), 0);
    assert_int_equal(sch_fsm_restore_image(fsm, image, len, &err), 0);
    free(image);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_conditions"), 0);
    assert_int_equal(sch_fsm_digest(fsm), digest);

    Gantry__SetNodeCondition set = GANTRY__SET_NODE_CONDITION__INIT;
    set.node = (char *)"n1";
    set.kind = (char *)SCH_NODE_CONDITION_STORAGE;
    set.message = (char *)"agent database: disk full at /d/agent.db";
    Gantry__Command cmd = command("agent:n1");
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_CONDITION;
    cmd.set_node_condition = &set;
    uint64_t events = fsm->last_event;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(fsm->last_event, events + 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE kind = 'node_condition' AND"
                                " object = 'node/n1' AND actor = 'agent:n1' AND message ="
                                " 'node n1: storage refuses writes: agent database: disk full at"
                                " /d/agent.db'"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_conditions WHERE node = 'n1' AND"
                                " kind = 'StoragePressure' AND time_ms = 1000"),
                     1);
    assert_int_not_equal(sch_fsm_digest(fsm), digest);
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(fsm->last_event, events + 1);
    set.message = (char *)"agent database: I/O error at /d/agent.db";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(fsm->last_event, events + 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_conditions WHERE message ="
                                " 'agent database: I/O error at /d/agent.db'"),
                     1);

    /* Refused, and nothing changes. */
    char longest[SCH_NODE_CONDITION_MESSAGE_MAX + 2];
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    const char *bad_messages[] = {"line\nbreak", "tab\there", "caf\xc3\xa9", "del\x7f", longest};
    for (size_t i = 0; i < sizeof(bad_messages) / sizeof(bad_messages[0]); i++) {
        set.message = (char *)bad_messages[i];
        assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_EINVAL);
        free(r.message);
    }
    longest[SCH_NODE_CONDITION_MESSAGE_MAX] = '\0';
    assert_true(sch_node_condition_message_valid(longest));
    set.message = (char *)"full";
    set.kind = (char *)"MemoryPressure";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_EINVAL);
    assert_non_null(strstr(r.message, "MemoryPressure"));
    free(r.message);
    set.kind = (char *)SCH_NODE_CONDITION_STORAGE;
    set.node = (char *)"ghost";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_ENOTFOUND);
    free(r.message);
    assert_int_equal(fsm->last_event, events + 2);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_conditions"), 1);

    /* Cleared once, with its event; a repeat changes nothing. */
    set.node = (char *)"n1";
    set.message = (char *)"";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(fsm->last_event, events + 3);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE message ="
                                " 'node n1: storage takes writes again'"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_conditions"), 0);
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(fsm->last_event, events + 3);
}

static void test_servers_and_cluster_id(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    char id[128];
    sch_fsm_cluster_id(fsm, id, sizeof(id));
    assert_string_equal(id, "");
    Gantry__InitCluster init = GANTRY__INIT_CLUSTER__INIT;
    init.cluster_id = (char *)"0123456789abcdef";
    Gantry__Command cmd = command("server:1");
    cmd.cmd_case = GANTRY__COMMAND__CMD_INIT_CLUSTER;
    cmd.init_cluster = &init;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    init.cluster_id = (char *)"fedcba9876543210";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_EEXISTS);
    free(r.message);
    sch_fsm_cluster_id(fsm, id, sizeof(id));
    assert_string_equal(id, "0123456789abcdef");

    Gantry__SetServer set = GANTRY__SET_SERVER__INIT;
    set.id = 2;
    set.raft_address = (char *)"127.0.0.1:7711";
    set.api_address = (char *)"127.0.0.1:7710";
    set.agent_address = (char *)"127.0.0.1:7712";
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_SERVER;
    cmd.set_server = &set;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    set.api_address = (char *)"127.0.0.1:7720";
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM servers WHERE api_address LIKE '%7720'"), 1);
    Gantry__RemoveServer rm = GANTRY__REMOVE_SERVER__INIT;
    rm.id = 2;
    cmd.cmd_case = GANTRY__COMMAND__CMD_REMOVE_SERVER;
    cmd.remove_server = &rm;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM servers"), 0);
}

/* Registers name with subnet (NULL: none named) and returns the subnet the state records
 * for it afterwards ("" when none), in buf. */
static const char *subnet_after(struct sch_fsm *fsm, const char *name, const char *subnet,
                                char *buf, size_t len)
{
    Gantry__NodeInfo node;
    Gantry__Resources capacity;
    gt_node_info(&node, &capacity, name, "private", 4000, 8ll << 30);
    node.subnet = (char *)(subnet != NULL ? subnet : "");
    Gantry__RegisterNode reg = GANTRY__REGISTER_NODE__INIT;
    reg.node = &node;
    Gantry__Command cmd = command("agent:x");
    cmd.cmd_case = GANTRY__COMMAND__CMD_REGISTER_NODE;
    cmd.register_node = &reg;
    gt_execute(fsm, &cmd);
    sch_query_node_subnet(fsm, name, buf, len);
    return buf;
}

static int init_cluster(struct sch_fsm *fsm, const char *network, unsigned prefix,
                        struct sch_result *r)
{
    Gantry__InitCluster init = GANTRY__INIT_CLUSTER__INIT;
    init.cluster_id = (char *)"0123456789abcdef";
    init.cluster_network = (char *)network;
    init.node_prefix = prefix;
    Gantry__Command cmd = command("server:1");
    cmd.cmd_case = GANTRY__COMMAND__CMD_INIT_CLUSTER;
    cmd.init_cluster = &init;
    return sch_fsm_execute(fsm, &cmd, r);
}

static void test_node_subnets_carved(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    assert_int_equal(init_cluster(fsm, "198.20.0.0/22", 24, &r), 0);
    char buf[64];
    /* The first free subnet, in order; one an agent names is taken as it is and skipped. */
    assert_string_equal(subnet_after(fsm, "a", NULL, buf, sizeof(buf)), "198.20.0.0/24");
    assert_string_equal(subnet_after(fsm, "b", "198.20.1.0/24", buf, sizeof(buf)), "198.20.1.0/24");
    assert_string_equal(subnet_after(fsm, "c", NULL, buf, sizeof(buf)), "198.20.2.0/24");
    /* A node that comes back without naming one keeps its own. */
    assert_string_equal(subnet_after(fsm, "a", NULL, buf, sizeof(buf)), "198.20.0.0/24");
    assert_string_equal(subnet_after(fsm, "d", NULL, buf, sizeof(buf)), "198.20.3.0/24");
    /* The network is used up: the node registers without one, and the event says so. */
    assert_string_equal(subnet_after(fsm, "e", NULL, buf, sizeof(buf)), "");
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM nodes WHERE name = 'e'"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE object = 'node/e' AND message"
                                " LIKE '%no replica subnet is free%'"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE object = 'node/c' AND message"
                                " LIKE '%replica subnet 198.20.2.0/24'"),
                     1);
}

static int remove_node(struct sch_fsm *fsm, const char *name, struct sch_result *r)
{
    Gantry__RemoveNode rm = GANTRY__REMOVE_NODE__INIT;
    rm.name = (char *)name;
    Gantry__Command cmd = command("user:cli");
    cmd.cmd_case = GANTRY__COMMAND__CMD_REMOVE_NODE;
    cmd.remove_node = &rm;
    return sch_fsm_execute(fsm, &cmd, r);
}

static void test_node_removed_frees_subnet(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    assert_int_equal(init_cluster(fsm, "198.20.0.0/22", 24, &r), 0);
    char buf[64];
    assert_string_equal(subnet_after(fsm, "a", NULL, buf, sizeof(buf)), "198.20.0.0/24");
    assert_string_equal(subnet_after(fsm, "b", NULL, buf, sizeof(buf)), "198.20.1.0/24");
    /* A node that is not down stays. */
    assert_int_equal(remove_node(fsm, "a", &r), -GY_ECONFLICT);
    assert_non_null(strstr(r.message, "is ready"));
    free(r.message);
    assert_int_equal(remove_node(fsm, "nope", &r), -GY_ENOTFOUND);
    free(r.message);
    Gantry__SetNodeState set = GANTRY__SET_NODE_STATE__INIT;
    set.name = (char *)"a";
    set.state = GANTRY__NODE_STATE__NODE_DOWN;
    set.reason = (char *)"silent";
    Gantry__Command cmd = command("server:1");
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
    cmd.set_node_state = &set;
    gt_execute(fsm, &cmd);
    assert_int_equal(remove_node(fsm, "a", &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM nodes WHERE name = 'a'"), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_networks WHERE node = 'a'"), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE object = 'node/a' AND message"
                                " LIKE '%subnet released: 198.20.0.0/24'"),
                     1);
    /* Its subnet goes to the next node that needs one. */
    assert_string_equal(subnet_after(fsm, "c", NULL, buf, sizeof(buf)), "198.20.0.0/24");
}

/* A node of cloud with subnet and, when key is not NULL, a tunnel key on port 51820. */
static int register_tunnel(struct sch_fsm *fsm, const char *name, const char *cloud,
                           const char *subnet, const char *key, struct sch_result *r)
{
    Gantry__NodeInfo node;
    Gantry__Resources cap;
    gt_node_info(&node, &cap, name, cloud, 1000, 1ll << 30);
    node.address = (char *)"192.0.2.1";
    node.subnet = (char *)subnet;
    node.tunnel_key = (char *)(key != NULL ? key : "");
    node.tunnel_port = key != NULL ? 51820 : 0;
    Gantry__RegisterNode reg = GANTRY__REGISTER_NODE__INIT;
    reg.node = &node;
    Gantry__Command cmd = command("agent:x");
    cmd.cmd_case = GANTRY__COMMAND__CMD_REGISTER_NODE;
    cmd.register_node = &reg;
    return sch_fsm_execute(fsm, &cmd, r);
}

struct seen_peers {
    char text[512];
};

static void peer_seen(void *data, const struct sch_network_peer *p)
{
    struct seen_peers *s = data;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof(s->text) - n, "%s/%s/%.4s/%u,", p->name, p->cloud, p->tunnel_key,
             p->tunnel_port);
}

static void test_node_tunnels(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r = {0};
    static const char key_a[] = "hZ3uJ0lFqOQd1qjM8mI1l7iTn3v3gWc9hQmGmJQ6S3c=";
    static const char key_b[] = "es11d37pBps/hckhhpjqkhizdLrk9bKgBe3YvGuq8RY=";
    assert_int_equal(register_tunnel(fsm, "a", "private", "198.20.0.0/24", key_a, &r), 0);
    assert_int_equal(register_tunnel(fsm, "b", "private", "198.20.1.0/24", NULL, &r), 0);
    assert_int_equal(register_tunnel(fsm, "c", "public", "198.20.2.0/24", key_b, &r), 0);
    assert_int_equal(register_tunnel(fsm, "d", "public", "198.20.3.0/24", NULL, &r), 0);
    /* A key that is not one is refused, and nothing changes. */
    assert_int_equal(register_tunnel(fsm, "e", "public", "198.20.4.0/24", "bm90IGEga2V5", &r),
                     -GY_EINVAL);
    assert_non_null(strstr(r.message, "not a WireGuard key"));
    free(r.message);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM nodes WHERE name = 'e'"), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_tunnels"), 2);

    /* A's peers: b of its cloud, and c of the other, which has a key; not d. */
    struct seen_peers seen = {""};
    struct gy_error err;
    assert_true(sch_query_network_peers(fsm, "private", "a", peer_seen, &seen, &err) >= 0);
    assert_string_equal(seen.text, "b/private//0,c/public/es11/51820,");
    /* D's: c of its cloud, and a; b has no key. */
    memset(&seen, 0, sizeof(seen));
    assert_true(sch_query_network_peers(fsm, "public", "d", peer_seen, &seen, &err) >= 0);
    assert_string_equal(seen.text, "a/private/hZ3u/51820,c/public/es11/51820,");

    /* A new key for c, recorded with an event; a bad one is refused. */
    Gantry__SetNodeTunnel set = GANTRY__SET_NODE_TUNNEL__INIT;
    set.name = (char *)"c";
    set.public_key = (char *)key_a;
    set.port = 51821;
    Gantry__Command cmd = command("agent:c");
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_TUNNEL;
    cmd.set_node_tunnel = &set;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), 0);
    assert_int_equal(count(fsm, "SELECT port FROM node_tunnels WHERE node = 'c' AND public_key"
                                " LIKE 'hZ3u%'"),
                     51821);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE object = 'node/c' AND message"
                                " LIKE 'new tunnel key hZ3uJ0lF...'"),
                     1);
    set.public_key = (char *)"hZ3uJ0lFqOQd1qjM8mI1l7iTn3v3gWc9hQmGmJQ6S3d="; /* stray bits */
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_EINVAL);
    free(r.message);
    set.name = (char *)"nope";
    set.public_key = (char *)key_b;
    assert_int_equal(sch_fsm_execute(fsm, &cmd, &r), -GY_ENOTFOUND);
    free(r.message);
    /* A node that comes back without a key leaves the tunnels; a removed one too. */
    assert_int_equal(register_tunnel(fsm, "a", "private", "198.20.0.0/24", NULL, &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_tunnels WHERE node = 'a'"), 0);
    gt_set_node_state(fsm, "c", GANTRY__NODE_STATE__NODE_DOWN);
    assert_int_equal(remove_node(fsm, "c", &r), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM node_tunnels"), 0);
}

static void test_cluster_network_checked(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    assert_int_equal(init_cluster(fsm, "10.73.0.1/16", 0, &r), -GY_EINVAL);
    assert_non_null(strstr(r.message, "10.73.0.1/16"));
    free(r.message);
    assert_int_equal(init_cluster(fsm, "10.73.0.0/16", 16, &r), -GY_EINVAL);
    free(r.message);
    /* Refused commands change nothing: no cluster id either. */
    char id[128];
    sch_fsm_cluster_id(fsm, id, sizeof(id));
    assert_string_equal(id, "");
    /* Without a network the default is carved. */
    assert_int_equal(init_cluster(fsm, "", 0, &r), 0);
    char buf[64];
    assert_string_equal(subnet_after(fsm, "a", NULL, buf, sizeof(buf)), "10.73.0.0/24");
}

static void test_batch_isolates_failures(void **state)
{
    struct sch_fsm *fsm = *state;
    Gantry__WorkloadSpec a = GANTRY__WORKLOAD_SPEC__INIT, b = a, c = a;
    a.name = (char *)"a";
    b.name = (char *)"B!";
    c.name = (char *)"c";
    Gantry__WorkloadSpec *pa[] = {&a}, *pb[] = {&b}, *pc[] = {&c};
    Gantry__ApplyWorkloads aa = GANTRY__APPLY_WORKLOADS__INIT, ab = aa, ac = aa;
    aa.workloads = pa;
    aa.n_workloads = 1;
    ab.workloads = pb;
    ab.n_workloads = 1;
    ac.workloads = pc;
    ac.n_workloads = 1;
    Gantry__Command ca = command("user:cli"), cb = ca, cc = ca;
    ca.cmd_case = cb.cmd_case = cc.cmd_case = GANTRY__COMMAND__CMD_APPLY_WORKLOADS;
    ca.apply_workloads = &aa;
    cb.apply_workloads = &ab;
    cc.apply_workloads = &ac;
    Gantry__Command *cmds[] = {&ca, &cb, &cc};
    Gantry__CommandBatch batch = GANTRY__COMMAND_BATCH__INIT;
    batch.commands = cmds;
    batch.n_commands = 3;
    Gantry__Command cmd = command("api");
    cmd.cmd_case = GANTRY__COMMAND__CMD_BATCH;
    cmd.batch = &batch;

    /* Through the encoded path, as Raft delivers it. */
    void *buf;
    size_t len;
    struct gy_error err;
    assert_int_equal(sch_command_encode(&cmd, &buf, &len, &err), 0);
    struct sch_result *r;
    assert_int_equal(sch_fsm_apply_entry(fsm, buf, len, &r), 0);
    raft_free(buf);
    assert_int_equal(r->code, 0);
    assert_int_equal(r->n_batch, 3);
    assert_int_equal(r->batch[0].code, 0);
    assert_int_equal(r->batch[1].code, -GY_EINVAL);
    assert_int_equal(r->batch[2].code, 0);
    assert_int_equal(r->batch[2].last_event, 2);
    sch_result_free(r);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 2);
    assert_int_equal(count(fsm, "SELECT MAX(seq) FROM events"), 2);
}

static void test_malformed_entry_is_rejected(void **state)
{
    struct sch_fsm *fsm = *state;
    uint8_t junk[24] = {1, 2, 3};
    struct sch_result *r;
    assert_int_equal(sch_fsm_apply_entry(fsm, junk, sizeof(junk), &r), 0);
    assert_int_equal(r->code, -GY_EPROTO);
    sch_result_free(r);
    assert_int_equal(fsm->rejected, 1);
}

static void test_snapshot_round_trip(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    const char *names[] = {"web", "db", NULL};
    assert_int_equal(apply(fsm, names, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes[1].name);
    free(r.outcomes);
    register_node(fsm, "n1");
    uint64_t digest = sch_fsm_digest(fsm);

    void *image;
    size_t len;
    struct gy_error err;
    assert_int_equal(sch_fsm_snapshot_image(fsm, &image, &len, &err), 0);

    struct sch_fsm other;
    assert_int_equal(sch_fsm_init(&other, &err), 0);
    assert_int_not_equal(sch_fsm_digest(&other), digest);
    assert_int_equal(sch_fsm_restore_image(&other, image, len, &err), 0);
    assert_int_equal(sch_fsm_digest(&other), digest);
    assert_int_equal(other.last_event, fsm->last_event);
    /* The restored state keeps working. */
    const char *more[] = {"cache", NULL};
    assert_int_equal(apply(&other, more, "redis", &r), 0);
    assert_int_equal(r.outcomes[0].outcome, SCH_OUTCOME_CREATED);
    assert_int_equal(r.last_event, fsm->last_event + 1);
    free(r.outcomes[0].name);
    free(r.outcomes);

    /* Damaged images are refused and leave the state as it was. */
    uint64_t before = sch_fsm_digest(&other);
    assert_int_equal(sch_fsm_restore_image(&other, image, 4, &err), -GY_EPROTO);
    assert_int_equal(sch_fsm_restore_image(&other, image, len - 100, &err), -GY_EPROTO);
    ((uint8_t *)image)[0] ^= 1;
    assert_int_equal(sch_fsm_restore_image(&other, image, len, &err), -GY_EPROTO);
    assert_int_equal(sch_fsm_digest(&other), before);
    free(image);
    sch_fsm_close(&other);
}

/* A file-backed state restores into a new file, which then replaces the old one. */
static void test_file_backed_restore(void **state)
{
    struct sch_fsm *fsm = *state;
    struct sch_result r;
    const char *names[] = {"web", "db", NULL};
    assert_int_equal(apply(fsm, names, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes[1].name);
    free(r.outcomes);
    uint64_t digest = sch_fsm_digest(fsm);
    void *image;
    size_t len;
    struct gy_error err;
    assert_int_equal(sch_fsm_snapshot_image(fsm, &image, &len, &err), 0);

    /* Into itself: the state stays the same, in a new file under the same name. */
    char first[sizeof(fsm->path)];
    snprintf(first, sizeof(first), "%s", fsm->path);
    struct stat before_st, after_st;
    assert_int_equal(stat(first, &before_st), 0);
    assert_int_equal(sch_fsm_restore_image(fsm, image, len, &err), 0);
    assert_int_equal(sch_fsm_digest(fsm), digest);
    assert_string_equal(fsm->path, first);
    assert_int_equal(stat(first, &after_st), 0);
    assert_int_not_equal(after_st.st_ino, before_st.st_ino);
    assert_int_equal(access(fsm->spare_path, F_OK), -1);
    const char *more[] = {"cache", NULL};
    assert_int_equal(apply(fsm, more, "redis", &r), 0);
    assert_int_equal(r.outcomes[0].outcome, SCH_OUTCOME_CREATED);
    free(r.outcomes[0].name);
    free(r.outcomes);

    /* A damaged image is refused, leaves the state alone and no file behind. */
    uint64_t before = sch_fsm_digest(fsm);
    assert_int_equal(sch_fsm_restore_image(fsm, image, len - 100, &err), -GY_EPROTO);
    /* The database's own header ("SQLite format 3") damaged: the new file is refused. */
    uint8_t *bytes = image;
    size_t header_len = (8 + (bytes[4] | bytes[5] << 8 | bytes[6] << 16) + 7) & ~(size_t)7;
    bytes[header_len] ^= 0xff;
    assert_int_equal(sch_fsm_restore_image(fsm, image, len, &err), -GY_EPROTO);
    assert_int_equal(sch_fsm_digest(fsm), before);
    assert_int_equal(access(fsm->spare_path, F_OK), -1);
    free(image);

    /* An in-memory state takes a file-backed image and the other way round. */
    assert_int_equal(sch_fsm_snapshot_image(fsm, &image, &len, &err), 0);
    struct sch_fsm other;
    assert_int_equal(sch_fsm_init(&other, &err), 0);
    assert_int_equal(sch_fsm_restore_image(&other, image, len, &err), 0);
    assert_int_equal(sch_fsm_digest(&other), before);
    free(image);
    sch_fsm_close(&other);
}

static void test_raft_callbacks(void **state)
{
    struct sch_fsm *fsm = *state;
    struct raft_fsm rf;
    sch_fsm_raft(fsm, &rf);
    assert_int_equal(rf.version, 2);

    const char *web[] = {"web", NULL};
    struct sch_result r;
    assert_int_equal(apply(fsm, web, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes);

    struct raft_buffer *bufs;
    unsigned n;
    assert_int_equal(rf.snapshot(&rf, &bufs, &n), 0);
    /* The header and a copy of the database. */
    assert_int_equal(n, 2);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    struct raft_buffer joined = {raft_malloc(total), total};
    for (size_t i = 0, at = 0; i < n; at += bufs[i].len, i++)
        memcpy((uint8_t *)joined.base + at, bufs[i].base, bufs[i].len);
    /* Commits go on while libraft writes the image: they must not reach it. */
    const char *later[] = {"later", NULL};
    assert_int_equal(apply(fsm, later, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes);
    fsm->wal_frames = SCH_FSM_WAL_FRAMES;
    assert_int_equal(sch_fsm_flush(fsm), 0);
    for (size_t i = 0, at = 0; i < n; at += bufs[i].len, i++)
        assert_memory_equal((uint8_t *)joined.base + at, bufs[i].base, bufs[i].len);
    assert_int_equal(rf.snapshot_finalize(&rf, &bufs, &n), 0);
    assert_null(bufs);

    struct sch_fsm other;
    struct gy_error err;
    assert_int_equal(sch_fsm_init(&other, &err), 0);
    struct raft_fsm rf2;
    sch_fsm_raft(&other, &rf2);
    /* restore takes ownership of the buffer on success: the state as it was at the
     * snapshot, without the later apply. */
    assert_int_equal(rf2.restore(&rf2, &joined), 0);
    assert_int_equal(count(&other, "SELECT COUNT(*) FROM workloads"), 1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 2);
    const char *more[] = {"later", NULL};
    assert_int_equal(apply(&other, more, "busybox", &r), 0);
    free(r.outcomes[0].name);
    free(r.outcomes);
    assert_int_equal(sch_fsm_digest(&other), sch_fsm_digest(fsm));

    /* apply always returns 0, also for garbage, and keeps no result for a follower. */
    uint8_t junk[8] = {0};
    struct raft_buffer entry = {junk, sizeof(junk)};
    void *result = (void *)1;
    assert_int_equal(rf2.apply(&rf2, &entry, &result), 0);
    assert_null(result);
    sch_fsm_close(&other);
}

static bool always(void *data)
{
    (void)data;
    return true;
}

static void test_unclaimed_results_are_recycled(void **state)
{
    struct sch_fsm *fsm = *state;
    struct raft_fsm rf;
    sch_fsm_raft(fsm, &rf);
    fsm->hooks.want_result = always;
    uint8_t junk[8] = {0};
    struct raft_buffer entry = {junk, sizeof(junk)};
    /* Far more results than slots: none claimed but one, and nothing may leak. */
    for (int i = 0; i < SCH_FSM_RESULT_SLOTS + 10; i++) {
        void *result;
        assert_int_equal(rf.apply(&rf, &entry, &result), 0);
        assert_non_null(result);
    }
    /* The ring recycled the oldest unclaimed results; a fresh one is still claimable. */
    void *live;
    assert_int_equal(rf.apply(&rf, &entry, &live), 0);
    struct sch_result *r = sch_fsm_result_claim(fsm, live);
    assert_int_equal(r->code, -GY_EPROTO);
    sch_result_free(r);
}

static bool never(void *data)
{
    (void)data;
    return false;
}

/* One apply of workload name, encoded as a log entry (raft_malloc'ed, as raft's are). */
static struct raft_buffer apply_entry(const char *name)
{
    Gantry__WorkloadSpec spec = GANTRY__WORKLOAD_SPEC__INIT, *ptr = &spec;
    spec.name = (char *)name;
    spec.image = (char *)"busybox";
    spec.replicas = 1;
    Gantry__ApplyWorkloads apply = GANTRY__APPLY_WORKLOADS__INIT;
    apply.workloads = &ptr;
    apply.n_workloads = 1;
    Gantry__Command cmd = command("user:test");
    cmd.cmd_case = GANTRY__COMMAND__CMD_APPLY_WORKLOADS;
    cmd.apply_workloads = &apply;
    void *out;
    size_t len;
    struct gy_error err;
    assert_int_equal(sch_command_encode(&cmd, &out, &len, &err), 0);
    return (struct raft_buffer){out, len};
}

/* A follower's entries wait until they are drained, in order, and before anything that
 * reads the state as raft counts it: a snapshot, a restore, an apply as the leader. */
static void test_follower_applies_wait_for_drain(void **state)
{
    struct sch_fsm *fsm = *state;
    struct raft_fsm rf;
    sch_fsm_raft(fsm, &rf);
    fsm->defer_applies = true;
    fsm->hooks.want_result = never;
    const char *names[] = {"a", "b", "c", "d"};
    struct raft_buffer entries[4];
    for (int i = 0; i < 4; i++)
        entries[i] = apply_entry(names[i]);
    void *result = (void *)1;
    assert_int_equal(rf.apply(&rf, &entries[0], &result), 0);
    assert_null(result);
    assert_int_equal(rf.apply(&rf, &entries[1], &result), 0);
    /* Copies wait; raft's buffers are its own again. */
    memset(entries[0].base, 0, entries[0].len);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 0);
    assert_int_equal(fsm->n_deferred, 2);
    sch_fsm_drain(fsm);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 2);
    assert_int_equal(fsm->n_deferred, 0);
    assert_int_equal(fsm->deferred_bytes, 0);

    /* A snapshot includes what waited. */
    assert_int_equal(rf.apply(&rf, &entries[2], &result), 0);
    struct raft_buffer *bufs;
    unsigned n;
    assert_int_equal(rf.snapshot(&rf, &bufs, &n), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 3);
    assert_int_equal(rf.snapshot_finalize(&rf, &bufs, &n), 0);

    /* As the leader, what waited is applied first, then the entry, with its result. */
    assert_int_equal(rf.apply(&rf, &entries[3], &result), 0);
    fsm->hooks.want_result = always;
    assert_int_equal(rf.apply(&rf, &entries[1], &result), 0);
    assert_non_null(result);
    struct sch_result *r = sch_fsm_result_claim(fsm, result);
    assert_int_equal(r->code, 0);
    assert_int_equal(r->outcomes[0].outcome, SCH_OUTCOME_UNCHANGED);
    sch_result_free(r);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 4);
    assert_int_equal(count(fsm, "SELECT MAX(seq) FROM events"), 5);

    /* Past SCH_FSM_DEFER_BYTES, entries are applied at once. */
    fsm->hooks.want_result = never;
    fsm->deferred_bytes = SCH_FSM_DEFER_BYTES;
    struct raft_buffer e = apply_entry("e");
    assert_int_equal(rf.apply(&rf, &e, &result), 0);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 5);
    fsm->deferred_bytes = 0;
    raft_free(e.base);
    for (int i = 0; i < 4; i++)
        raft_free(entries[i].base);
}

/* Applies entry as libraft does: at index *applied + 1, which it counts as applied after. */
static void raft_apply_at(struct raft_fsm *rf, raft_index *applied, struct raft_buffer *entry)
{
    void *result = (void *)1;
    assert_int_equal(rf->apply(rf, entry, &result), 0);
    assert_null(result);
    (*applied)++;
}

/* A file-backed state's snapshots are markers: the database file is the state, with the
 * index it holds recorded in it, and entries replayed up to that index are skipped. */
static void test_markers_name_the_database_file(void **state)
{
    struct sch_fsm *fsm = *state;
    char path[sizeof(fsm->path)];
    snprintf(path, sizeof(path), "%s", fsm->path);
    struct raft_fsm rf;
    sch_fsm_raft(fsm, &rf);
    raft_index applied = 0;
    fsm->raft_applied = &applied;
    fsm->hooks.want_result = never;
    struct raft_buffer a = apply_entry("a"), b = apply_entry("b"), c = apply_entry("c"),
                       d = apply_entry("d");
    raft_apply_at(&rf, &applied, &a);
    raft_apply_at(&rf, &applied, &b);
    applied++; /* a barrier at 3: libraft applies it without the state machine */

    /* The marker covers index 3; the file records it. */
    struct raft_buffer *bufs;
    unsigned n;
    assert_int_equal(rf.snapshot(&rf, &bufs, &n), 0);
    assert_int_equal(n, 1);
    assert_true(sch_fsm_is_marker(bufs[0].base, bufs[0].len));
    assert_int_equal(fsm->stored_index, 3);
    struct raft_buffer marker = {raft_malloc(bufs[0].len), bufs[0].len};
    memcpy(marker.base, bufs[0].base, bufs[0].len);
    assert_int_equal(rf.snapshot_finalize(&rf, &bufs, &n), 0);
    struct gy_error err;
    assert_int_equal(sch_fsm_restore_image(fsm, marker.base, marker.len, &err), -GY_EPROTO);

    /* After the snapshot: index 4, then a restart (close and open the same file). */
    raft_apply_at(&rf, &applied, &c);
    uint64_t digest = sch_fsm_digest(fsm);
    uint64_t lineage = fsm->lineage;
    sch_fsm_close(fsm);
    assert_int_equal(sch_fsm_init_file(fsm, path, &err), 0);
    assert_int_equal(sch_fsm_digest(fsm), digest);
    assert_int_equal(fsm->stored_index, 4);
    assert_int_equal(fsm->lineage, lineage);
    sch_fsm_raft(fsm, &rf);
    fsm->raft_applied = &applied;
    fsm->hooks.want_result = never;

    /* A marker of another file, or past this file's index, is refused. */
    struct raft_buffer copy = {raft_malloc(marker.len), marker.len};
    memcpy(copy.base, marker.base, marker.len);
    fsm->lineage ^= 1;
    assert_int_equal(rf.restore(&rf, &copy), RAFT_CORRUPT);
    fsm->lineage ^= 1;
    fsm->stored_index = 2;
    assert_int_equal(rf.restore(&rf, &copy), RAFT_CORRUPT);
    fsm->stored_index = 4;
    raft_free(copy.base);

    /* libraft restores the marker (index 3) and replays from 4: c is skipped, d applied. */
    applied = 3;
    assert_int_equal(rf.restore(&rf, &marker), 0);
    assert_int_equal(fsm->skip_through, 4);
    raft_apply_at(&rf, &applied, &c);
    assert_int_equal(fsm->skipped, 1);
    assert_int_equal(sch_fsm_digest(fsm), digest);
    raft_apply_at(&rf, &applied, &d);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), 4);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE object = 'workload/c'"), 1);
    assert_int_equal(sch_fsm_flush(fsm), 0);
    assert_int_equal(fsm->stored_index, 5);

    /* A follower gets a full image in place of the marker: the database at index 5, whose
     * entries after the snapshot's index it then skips. */
    assert_int_equal(rf.snapshot(&rf, &bufs, &n), 0);
    struct raft_buffer sent = {raft_malloc(bufs[0].len), bufs[0].len};
    memcpy(sent.base, bufs[0].base, bufs[0].len);
    assert_int_equal(rf.snapshot_finalize(&rf, &bufs, &n), 0);
    assert_int_equal(sch_fsm_image_for_marker(fsm, &sent, &err), 0);
    assert_false(sch_fsm_is_marker(sent.base, sent.len));
    char other_path[sizeof(fsm->path)];
    snprintf(other_path, sizeof(other_path), "%s/other.db", file_dir);
    struct sch_fsm other;
    assert_int_equal(sch_fsm_init_file(&other, other_path, &err), 0);
    struct raft_fsm rf2;
    sch_fsm_raft(&other, &rf2);
    raft_index other_applied = 5;
    other.raft_applied = &other_applied;
    assert_int_equal(rf2.restore(&rf2, &sent), 0);
    assert_int_equal(other.stored_index, 5);
    assert_int_equal(other.lineage, fsm->lineage);
    assert_int_equal(sch_fsm_digest(&other), sch_fsm_digest(fsm));
    /* Restarted, the follower keeps its file: the image it installed is not newer. */
    sch_fsm_close(&other);
    assert_int_equal(sch_fsm_init_file(&other, other_path, &err), 0);
    sch_fsm_raft(&other, &rf2);
    assert_int_equal(rf.snapshot(&rf, &bufs, &n), 0);
    struct raft_buffer again = {raft_malloc(bufs[0].len), bufs[0].len};
    memcpy(again.base, bufs[0].base, bufs[0].len);
    assert_int_equal(rf.snapshot_finalize(&rf, &bufs, &n), 0);
    assert_int_equal(sch_fsm_image_for_marker(fsm, &again, &err), 0);
    ino_t inode = 0;
    struct stat st;
    assert_int_equal(stat(other_path, &st), 0);
    inode = st.st_ino;
    assert_int_equal(rf2.restore(&rf2, &again), 0);
    assert_int_equal(stat(other_path, &st), 0);
    assert_int_equal(st.st_ino, inode);
    assert_int_equal(sch_fsm_digest(&other), sch_fsm_digest(fsm));

    /* With no snapshot at all, the database starts empty. */
    assert_int_equal(sch_fsm_reset(&other, &err), 0);
    assert_int_equal(other.stored_index, 0);
    assert_int_equal(count(&other, "SELECT COUNT(*) FROM workloads"), 0);
    sch_fsm_close(&other);
    remove_db(other_path);
    raft_free(a.base);
    raft_free(b.base);
    raft_free(c.base);
    raft_free(d.base);
}

/* With a loop, the write-ahead log is copied into the file on the thread pool, while
 * commits go on; the log starts over once a copy has caught up, and the state is intact. */
static void test_copies_run_on_the_thread_pool(void **state)
{
    struct sch_fsm *fsm = *state;
    char path[sizeof(fsm->path)];
    snprintf(path, sizeof(path), "%s", fsm->path);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(sch_fsm_set_loop(fsm, &loop), 0);
    struct raft_fsm rf;
    sch_fsm_raft(fsm, &rf);
    fsm->hooks.want_result = never;
    int n = 0;
    for (; n < 20000 && fsm->checkpoints < 3; n++) {
        char name[32];
        snprintf(name, sizeof(name), "w%d", n);
        struct raft_buffer e = apply_entry(name);
        void *result;
        assert_int_equal(rf.apply(&rf, &e, &result), 0);
        raft_free(e.base);
        assert_int_equal(sch_fsm_flush(fsm), 0);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_true(fsm->checkpoints >= 3);
    assert_non_null(fsm->ckpt_db); /* the copies ran on the thread pool */
    /* Commits stop: the copy under way finishes, one more catches up, the log starts over. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5000 && fsm->ckpt_running; i++)
            uv_run(&loop, UV_RUN_ONCE);
        char name[32];
        snprintf(name, sizeof(name), "w%d", n++);
        struct raft_buffer e = apply_entry(name);
        void *result;
        assert_int_equal(rf.apply(&rf, &e, &result), 0);
        raft_free(e.base);
        assert_int_equal(sch_fsm_flush(fsm), 0);
    }
    assert_true(fsm->wal_frames < SCH_FSM_WAL_FRAMES);
    uint64_t digest = sch_fsm_digest(fsm);
    /* Closed with a copy under way or not: the loop finishes it and ends cleanly. */
    sch_fsm_close(fsm);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    struct gy_error err;
    assert_int_equal(sch_fsm_init_file(fsm, path, &err), 0);
    assert_int_equal(sch_fsm_digest(fsm), digest);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM workloads"), n);
}

/* Applies one autoscaled workload web (min..max) starting at replicas. */
static void apply_autoscaled(struct sch_fsm *fsm, uint32_t replicas, uint32_t min, uint32_t max)
{
    Gantry__Autoscale as = GANTRY__AUTOSCALE__INIT;
    as.enabled = true;
    as.min = min;
    as.max = max;
    as.cpu_percent = 50;
    as.idle_after_ms = min == 0 ? 60000 : 0;
    Gantry__WorkloadSpec spec = GANTRY__WORKLOAD_SPEC__INIT, *ptr = &spec;
    spec.name = (char *)"web";
    spec.image = (char *)"busybox";
    spec.replicas = replicas;
    spec.autoscale = &as;
    Gantry__ApplyWorkloads apply = GANTRY__APPLY_WORKLOADS__INIT;
    apply.workloads = &ptr;
    apply.n_workloads = 1;
    Gantry__Command cmd = command("user:test");
    cmd.cmd_case = GANTRY__COMMAND__CMD_APPLY_WORKLOADS;
    cmd.apply_workloads = &apply;
    gt_execute(fsm, &cmd);
}

static void scale_to(struct sch_fsm *fsm, const char *actor, uint32_t replicas, const char *reason)
{
    Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
    scale.name = (char *)"web";
    scale.replicas = replicas;
    scale.reason = (char *)reason;
    Gantry__Command cmd = command(actor);
    cmd.cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
    cmd.scale_workload = &scale;
    gt_execute(fsm, &cmd);
}

static void test_autoscaled_apply_keeps_count(void **state)
{
    struct sch_fsm *fsm = *state;
    const char *q = "SELECT replicas FROM workloads WHERE name = 'web'";
    /* A new workload starts at replicas, within the bounds. */
    apply_autoscaled(fsm, 9, 1, 4);
    assert_int_equal(count(fsm, q), 4);
    /* The autoscaler's decision is an event with its reason and an Autoscaled condition. */
    scale_to(fsm, "autoscaler", 2, "cpu 10% of target 50%, low for 30s: 4 -> 2");
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM events WHERE message ="
                                " 'cpu 10% of target 50%, low for 30s: 4 -> 2'"),
                     1);
    assert_int_equal(count(fsm, "SELECT COUNT(*) FROM conditions WHERE kind = 'Autoscaled'"
                                " AND message LIKE '%4 -> 2'"),
                     1);
    /* A later apply keeps the autoscaler's count. */
    apply_autoscaled(fsm, 4, 1, 4);
    assert_int_equal(count(fsm, q), 2);
    /* ... brought within new bounds. */
    apply_autoscaled(fsm, 4, 3, 5);
    assert_int_equal(count(fsm, q), 3);
    /* Retired to zero, an apply wakes it at replicas. */
    apply_autoscaled(fsm, 2, 0, 5);
    scale_to(fsm, "autoscaler", 0, "idle for 1m: 3 -> 0");
    assert_int_equal(count(fsm, q), 0);
    apply_autoscaled(fsm, 2, 0, 5);
    assert_int_equal(count(fsm, q), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_created_updated_unchanged, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_apply_is_atomic, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_scale_and_delete, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_autoscaled_apply_keeps_count, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_and_replicas, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_conditions, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_conditions, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_servers_and_cluster_id, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_subnets_carved, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_cluster_network_checked, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_removed_frees_subnet, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_node_tunnels, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_batch_isolates_failures, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_entry_is_rejected, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_round_trip, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_raft_callbacks, gt_fsm_setup, gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_markers_name_the_database_file, setup_file,
                                        teardown_file),
        cmocka_unit_test_setup_teardown(test_file_backed_restore, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_copies_run_on_the_thread_pool, setup_file,
                                        teardown_file),
        cmocka_unit_test_setup_teardown(test_unclaimed_results_are_recycled, gt_fsm_setup,
                                        gt_fsm_teardown),
        cmocka_unit_test_setup_teardown(test_follower_applies_wait_for_drain, gt_fsm_setup,
                                        gt_fsm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
