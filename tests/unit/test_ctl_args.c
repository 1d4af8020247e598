/* Unit tests of the command-line parser: commands, flags in every spelling, global flags
 * anywhere, argument counts, and the did-you-mean hints of usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "ctl/ctl.h"

#define PARSE(inv, err, ...)                                                                       \
    ({                                                                                             \
        char *argv_[] = {"gantry", __VA_ARGS__, NULL};                                             \
        ctl_args_parse((int)(sizeof(argv_) / sizeof(argv_[0])) - 1, argv_, (inv), (err));          \
    })

static void test_apply_flags(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "apply", "-f", "web.yaml", "--wait", "--timeout=30s"), 0);
    assert_string_equal(inv.command->name, "apply");
    assert_string_equal(ctl_opt(&inv, "filename"), "web.yaml");
    assert_true(ctl_opt_set(&inv, "wait"));
    assert_string_equal(ctl_opt(&inv, "timeout"), "30s");
    assert_null(inv.server);

    assert_int_equal(PARSE(&inv, &err, "apply", "--filename=-"), 0);
    assert_string_equal(ctl_opt(&inv, "filename"), "-");
    assert_false(ctl_opt_set(&inv, "wait"));
    assert_null(ctl_opt(&inv, "timeout"));

    /* The short form with its value attached. */
    assert_int_equal(PARSE(&inv, &err, "apply", "-fweb.yaml"), 0);
    assert_string_equal(ctl_opt(&inv, "filename"), "web.yaml");
}

static void test_global_flags_anywhere(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "--server", "http://a:1", "get", "nodes"), 0);
    assert_string_equal(inv.server, "http://a:1");
    assert_string_equal(inv.args[0], "nodes");
    assert_int_equal(
        PARSE(&inv, &err, "get", "workloads", "web", "--server=http://b:2", "-o", "json"), 0);
    assert_string_equal(inv.server, "http://b:2");
    assert_int_equal(inv.n_args, 2);
    assert_string_equal(inv.args[1], "web");
    assert_string_equal(ctl_opt(&inv, "output"), "json");
    assert_int_equal(PARSE(&inv, &err, "scale", "--help"), 0);
    assert_true(inv.help);
    assert_string_equal(inv.command->name, "scale");
    assert_int_equal(PARSE(&inv, &err, "help", "events"), 0);
    assert_true(inv.help);
    assert_string_equal(inv.command->name, "events");
    assert_int_equal(PARSE(&inv, &err, "--version"), 0);
    assert_true(inv.version);
    assert_null(inv.command);
}

static void test_same_short_flag_per_command(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    /* -f is the file for apply and "follow" for logs and events. */
    assert_int_equal(PARSE(&inv, &err, "logs", "web-1", "-f"), 0);
    assert_true(ctl_opt_set(&inv, "follow"));
    assert_int_equal(PARSE(&inv, &err, "events", "-f", "--since", "12"), 0);
    assert_true(ctl_opt_set(&inv, "follow"));
    assert_string_equal(ctl_opt(&inv, "since"), "12");
}

static void test_negative_number_is_an_argument(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "scale", "web", "-1"), 0);
    assert_string_equal(inv.args[1], "-1");
    /* After "--" everything is an argument. */
    assert_int_equal(PARSE(&inv, &err, "delete", "--", "--odd"), 0);
    assert_string_equal(inv.args[0], "--odd");
}

static void test_unknown_command_suggests(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "aply", "-f", "x"), -GY_EINVAL);
    assert_string_equal(err.msg, "unknown command \"aply\"; did you mean \"apply\"?");
    assert_int_equal(PARSE(&inv, &err, "destroy"), -GY_EINVAL);
    assert_string_equal(err.msg, "unknown command \"destroy\"");
    assert_int_equal(PARSE(&inv, &err, "evnets"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "did you mean \"events\""));
}

static void test_unknown_flag_suggests(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "get", "workloads", "--outptu", "json"), -GY_EINVAL);
    assert_string_equal(err.msg, "get: unknown flag \"--outptu\"; did you mean \"--output\"?");
    assert_int_equal(PARSE(&inv, &err, "apply", "-f", "x", "--wiat"), -GY_EINVAL);
    assert_string_equal(err.msg, "apply: unknown flag \"--wiat\"; did you mean \"--wait\"?");
    assert_int_equal(PARSE(&inv, &err, "apply", "--sever=http://x"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "did you mean \"--server\""));
    assert_int_equal(PARSE(&inv, &err, "get", "nodes", "-x"), -GY_EINVAL);
    assert_string_equal(err.msg, "get: unknown flag \"-x\"");
    /* A flag of another command is unknown here. */
    assert_int_equal(PARSE(&inv, &err, "scale", "web", "3", "--wait"), -GY_EINVAL);
    assert_int_equal(PARSE(&inv, &err, "--bogus"), -GY_EINVAL);
    assert_string_equal(err.msg, "unknown flag \"--bogus\"");
}

static void test_flag_values(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "apply", "-f"), -GY_EINVAL);
    assert_string_equal(err.msg, "flag --filename needs a value");
    assert_int_equal(PARSE(&inv, &err, "get", "nodes", "--server"), -GY_EINVAL);
    assert_string_equal(err.msg, "flag --server needs a value");
    assert_int_equal(PARSE(&inv, &err, "apply", "-f", "x", "--wait=yes"), -GY_EINVAL);
    assert_string_equal(err.msg, "flag --wait takes no value");
}

static void test_argument_counts(void **state)
{
    (void)state;
    struct ctl_invocation inv;
    struct gy_error err;
    assert_int_equal(PARSE(&inv, &err, "get"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "get: missing arguments (usage: gantry get"));
    assert_int_equal(PARSE(&inv, &err, "scale", "web"), -GY_EINVAL);
    assert_int_equal(PARSE(&inv, &err, "scale", "web", "3", "4"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "scale: unexpected argument \"4\""));
    assert_int_equal(PARSE(&inv, &err, "version", "extra"), -GY_EINVAL);
    assert_int_equal(PARSE(&inv, &err, "describe", "workload", "web"), 0);
    /* Help needs no arguments. */
    assert_int_equal(PARSE(&inv, &err, "scale", "-h"), 0);
}

static void test_every_command_has_help(void **state)
{
    (void)state;
    for (size_t i = 0; i < ctl_n_commands; i++) {
        const struct ctl_command *c = &ctl_commands[i];
        assert_ptr_equal(ctl_command_find(c->name), c);
        assert_non_null(strstr(c->help, "Examples:"));
        assert_non_null(strstr(c->usage, c->name));
        assert_true(c->n_options <= CTL_MAX_OPTIONS);
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        ctl_command_help_print(c, f);
        fclose(f);
        for (size_t k = 0; k < c->n_options; k++)
            assert_non_null(strstr(text, c->options[k].name));
        free(text);
    }
}

/* Parses a `gantry cluster ...` line into a cluster request. */
static int cluster_parse(struct ctl_cluster_request *req, struct gy_error *err, int argc,
                         char **argv)
{
    struct ctl_invocation inv;
    int rc = ctl_args_parse(argc, argv, &inv, err);
    if (rc < 0)
        return rc;
    assert_string_equal(inv.command->name, "cluster");
    return ctl_cluster_parse(&inv, req, err);
}

#define CLUSTER(req, err, ...)                                                                     \
    ({                                                                                             \
        char *argv_[] = {"gantry", "cluster", __VA_ARGS__, NULL};                                  \
        cluster_parse((req), (err), (int)(sizeof(argv_) / sizeof(argv_[0])) - 1, argv_);           \
    })

static void test_cluster_subcommands(void **state)
{
    (void)state;
    struct ctl_cluster_request req;
    struct gy_error err;
    assert_int_equal(CLUSTER(&req, &err, "status"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_STATUS);
    assert_false(req.json);
    assert_int_equal(CLUSTER(&req, &err, "members", "-o", "json"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_MEMBERS);
    assert_true(req.json);
    assert_int_equal(CLUSTER(&req, &err, "remove", "4"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_REMOVE);
    assert_int_equal(req.id, 4);
    assert_int_equal(CLUSTER(&req, &err, "transfer-leader", "2"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_TRANSFER);
    assert_int_equal(req.id, 2);
    /* No id: any up-to-date voter. */
    assert_int_equal(CLUSTER(&req, &err, "transfer-leader"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_TRANSFER);
    assert_int_equal(req.id, 0);
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "save", "/var/backups/s1"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_SNAPSHOT_SAVE);
    assert_string_equal(req.file, "/var/backups/s1");
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "restore", "/b/s1", "--data-dir", "/d"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_SNAPSHOT_RESTORE);
    assert_string_equal(req.file, "/b/s1");
    assert_string_equal(req.data_dir, "/d");
    assert_string_equal(req.server_id, "1");
    assert_string_equal(req.raft_addr, "127.0.0.1:7701");
    assert_false(req.keep_cluster_id);
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "restore", "f", "--data-dir", "/d", "--id",
                             "3", "--raft-addr", "10.0.0.3:7701", "--keep-cluster-id"),
                     0);
    assert_string_equal(req.server_id, "3");
    assert_string_equal(req.raft_addr, "10.0.0.3:7701");
    assert_true(req.keep_cluster_id);
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "restore", "f"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "--data-dir is required"));
    assert_int_equal(
        CLUSTER(&req, &err, "snapshot", "restore", "f", "--data-dir", "/d", "--id", "0"),
        -GY_EINVAL);
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "save", "f", "--data-dir", "/d"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster snapshot: --data-dir goes with cluster snapshot restore");
    /* Global flags still go anywhere. */
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "--server", "http://a:1", "save", "f"), 0);
    assert_string_equal(req.file, "f");
}

static void test_cluster_verify_and_join_token(void **state)
{
    (void)state;
    struct ctl_cluster_request req;
    struct gy_error err;
    assert_int_equal(CLUSTER(&req, &err, "verify"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_VERIFY);
    assert_false(req.json);
    assert_int_equal(CLUSTER(&req, &err, "verify", "-o", "json"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_VERIFY);
    assert_true(req.json);
    assert_int_equal(CLUSTER(&req, &err, "verify", "now"), -GY_EINVAL);
    assert_string_equal(
        err.msg, "cluster verify: unexpected argument \"now\" (usage: gantry cluster verify)");
    assert_int_equal(CLUSTER(&req, &err, "verfy"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster: unknown subcommand \"verfy\"; did you mean \"verify\"?");

    /* Without --role: a server and a node. */
    assert_int_equal(CLUSTER(&req, &err, "join-token"), 0);
    assert_int_equal(req.op, CTL_CLUSTER_JOIN_TOKEN);
    assert_int_equal(req.role, CTL_JOIN_ANY);
    assert_false(req.quiet);
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--role", "server"), 0);
    assert_int_equal(req.role, CTL_JOIN_SERVER);
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--role=node", "-q"), 0);
    assert_int_equal(req.role, CTL_JOIN_NODE);
    assert_true(req.quiet);
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--role", "server", "--host", "10.0.0.4"),
                     0);
    assert_string_equal(req.host, "10.0.0.4");
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--host", "a b;c"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "--host \"a b;c\" is not a host name or IPv4 address"));
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--role", "node", "--host", "h1"),
                     -GY_EINVAL);
    assert_int_equal(CLUSTER(&req, &err, "status", "--host", "h1"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster status: --host goes with cluster join-token");
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--role", "worker"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster join-token: unknown role \"worker\" (server or node)");
    assert_int_equal(CLUSTER(&req, &err, "join-tokn"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "did you mean \"join-token\"?"));
    assert_int_equal(CLUSTER(&req, &err, "join-token", "server"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "unexpected argument \"server\""));
    /* Its flags go with it alone, and -o json does not go with it. */
    assert_int_equal(CLUSTER(&req, &err, "status", "--role", "node"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster status: --role goes with cluster join-token");
    assert_int_equal(CLUSTER(&req, &err, "members", "-q"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster members: -q goes with cluster join-token");
    assert_int_equal(CLUSTER(&req, &err, "join-token", "-o", "json"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "-o json goes with cluster status, members and verify"));
    /* --role needs its value. */
    assert_int_equal(CLUSTER(&req, &err, "join-token", "--role"), -GY_EINVAL);
    assert_string_equal(err.msg, "flag --role needs a value");
}

static void test_cluster_usage_errors(void **state)
{
    (void)state;
    struct ctl_cluster_request req;
    struct gy_error err;
    assert_int_equal(CLUSTER(&req, &err, "member"), -GY_EINVAL);
    assert_string_equal(err.msg,
                        "cluster: unknown subcommand \"member\"; did you mean \"members\"?");
    assert_int_equal(CLUSTER(&req, &err, "remove"), -GY_EINVAL);
    assert_string_equal(err.msg,
                        "cluster remove: missing the server id (usage: gantry cluster remove ID)");
    static const char *const bad_ids[] = {"0", "-3", "two", "4x", "99999999999999999999999", ""};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        char *argv[] = {"gantry", "cluster", "transfer-leader", "--", (char *)bad_ids[i], NULL};
        assert_int_equal(cluster_parse(&req, &err, 5, argv), -GY_EINVAL);
        assert_non_null(strstr(err.msg, "is not a server id (a positive whole number)"));
    }
    assert_int_equal(CLUSTER(&req, &err, "transfer-leader", "2", "3"), -GY_EINVAL);
    assert_string_equal(err.msg,
                        "cluster transfer-leader: unexpected argument \"3\" (usage: gantry "
                        "cluster transfer-leader [ID])");
    assert_int_equal(CLUSTER(&req, &err, "members", "x"), -GY_EINVAL);
    assert_int_equal(CLUSTER(&req, &err, "snapshot"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "missing the action"));
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "load", "f"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "unknown action \"load\"; it is \"save\" or \"restore\""));
    assert_int_equal(CLUSTER(&req, &err, "snapshot", "save"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "missing the file to write"));
    assert_int_equal(CLUSTER(&req, &err, "members", "-o", "yaml"), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "unknown output format \"yaml\""));
    assert_int_equal(CLUSTER(&req, &err, "remove", "4", "-o", "json"), -GY_EINVAL);
    assert_string_equal(err.msg, "cluster remove: -o json goes with cluster status, members and "
                                 "verify");
    /* More words than any subcommand takes are caught by the command-line parser. */
    struct ctl_invocation inv;
    char *argv[] = {"gantry", "cluster", "snapshot", "save", "f", "g", NULL};
    assert_int_equal(ctl_args_parse(6, argv, &inv, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "unexpected argument \"g\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_flags),
        cmocka_unit_test(test_global_flags_anywhere),
        cmocka_unit_test(test_same_short_flag_per_command),
        cmocka_unit_test(test_negative_number_is_an_argument),
        cmocka_unit_test(test_unknown_command_suggests),
        cmocka_unit_test(test_unknown_flag_suggests),
        cmocka_unit_test(test_flag_values),
        cmocka_unit_test(test_argument_counts),
        cmocka_unit_test(test_every_command_has_help),
        cmocka_unit_test(test_cluster_subcommands),
        cmocka_unit_test(test_cluster_usage_errors),
        cmocka_unit_test(test_cluster_verify_and_join_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
