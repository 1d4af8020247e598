/* Unit tests of replica networking: subnet parsing, address allocation and veth names,
 * and (as root, inside a private network namespace of the test's own) a bridge and a
 * replica namespace that reaches the gateway and is removed without a trace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "skip.h"
#include "agent/network.h"

static void test_config_parse(void **state)
{
    (void)state;
    struct agent_net_config cfg;
    struct gy_error err;
    assert_int_equal(agent_net_config_init(&cfg, "10.88.0.0/24", "gantry0", "gantry-", &err), 0);
    char buf[AGENT_NET_ADDR_MAX];
    assert_string_equal(agent_net_addr_str(cfg.gateway, buf), "10.88.0.1");
    assert_int_equal(cfg.prefix_len, 24);

    const char *bad[] = {"10.88.0.0", "10.88.0.1/24", "10.88.0.0/8", "10.88.0.0/31", "300.1.1.1/24",
                         "",          "10.88.0.0/2x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(agent_net_config_init(&cfg, bad[i], "gantry0", "gantry-", &err),
                         -GY_EINVAL);
    agent_net_config_init(&cfg, "10.88.0.1/24", "gantry0", "gantry-", &err);
    assert_non_null(strstr(err.msg, "host bits must be zero"));
    assert_int_equal(
        agent_net_config_init(&cfg, "10.88.0.0/24", "a-very-long-bridge-name", "g-", &err),
        -GY_EINVAL);
}

/* The names are pinned: agents of every version must find the veths of replicas that an
 * earlier agent started. */
static void test_veth_name(void **state)
{
    (void)state;
    char name[AGENT_NET_VETH_MAX];
    agent_net_veth_name("web-1", name);
    assert_string_equal(name, "gy76b7b71f");
    agent_net_veth_name("", name);
    assert_string_equal(name, "gy811c9dc5");
    char long_id[201];
    memset(long_id, 'a', 200);
    long_id[200] = '\0';
    agent_net_veth_name(long_id, name);
    assert_string_equal(name, "gy4e48052d");
}

static void test_address_pick(void **state)
{
    (void)state;
    struct agent_net_config cfg;
    assert_int_equal(agent_net_config_init(&cfg, "192.168.7.0/30", "br", "p-", NULL), 0);
    char buf[AGENT_NET_ADDR_MAX];
    uint32_t a = agent_net_address_pick(&cfg, NULL, 0);
    assert_string_equal(agent_net_addr_str(a, buf), "192.168.7.2");
    /* A /30 has one address for replicas besides the gateway. */
    assert_int_equal(agent_net_address_pick(&cfg, &a, 1), 0);

    assert_int_equal(agent_net_config_init(&cfg, "10.1.0.0/24", "br", "p-", NULL), 0);
    uint32_t used[3];
    agent_net_addr_parse("10.1.0.2", &used[0]);
    agent_net_addr_parse("10.1.0.4", &used[1]);
    agent_net_addr_parse("10.1.0.3", &used[2]);
    assert_string_equal(agent_net_addr_str(agent_net_address_pick(&cfg, used, 3), buf), "10.1.0.5");
    used[1] = 0;
    assert_string_equal(agent_net_addr_str(agent_net_address_pick(&cfg, used, 3), buf), "10.1.0.4");
}

static void test_replica_namespace(void **state)
{
    (void)state;
    if (geteuid() != 0)
        GT_SKIP("a network namespace needs root");
    /* Everything below happens in a network namespace of this test's own. */
    assert_int_equal(unshare(CLONE_NEWNET), 0);
    assert_int_equal(system("ip link set lo up"), 0);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "gt%d-", (int)getpid());
    struct agent_net_config cfg;
    struct gy_error err;
    assert_int_equal(agent_net_config_init(&cfg, "198.18.5.0/24", "gtbr0", prefix, &err), 0);
    if (agent_net_bridge_up(&cfg, &err) != 0)
        fail_msg("bridge: %s", err.msg);
    assert_int_equal(agent_net_bridge_up(&cfg, &err), 0); /* idempotent */

    uint32_t addr = agent_net_address_pick(&cfg, NULL, 0);
    char path[256];
    if (agent_net_replica_up(&cfg, "web-1", addr, path, sizeof(path), &err) != 0)
        fail_msg("replica up: %s", err.msg);
    assert_int_equal(access(path, F_OK), 0);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ip netns exec %sweb-1 busybox ping -c1 -W2 198.18.5.1 >/dev/null",
             prefix);
    assert_int_equal(system(cmd), 0);
    /* Up again replaces the namespace (a crash may have left one behind). */
    if (agent_net_replica_up(&cfg, "web-1", addr, path, sizeof(path), &err) != 0)
        fail_msg("replica up again: %s", err.msg);
    assert_int_equal(system(cmd), 0);

    assert_int_equal(agent_net_replica_down(&cfg, "web-1", &err), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(agent_net_replica_down(&cfg, "web-1", &err), 0);
    assert_int_equal(system("ip link show gtbr0 >/dev/null 2>&1 && "
                            "! ip link show master gtbr0 | grep -q gy"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_veth_name),
        cmocka_unit_test(test_address_pick),
        cmocka_unit_test(test_replica_namespace),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
