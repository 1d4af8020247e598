/* Unit tests of the node's side of replica networking: subnet parsing and (as root, inside
 * a private network namespace of the test's own) the bridge with its gateway address.
 * Replica networks through CNI are in test_agent_cni. */
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
static void test_bridge(void **state)
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

    assert_int_equal(system("ip -br addr show gtbr0 | grep -q ' 198.18.5.1/24'"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_bridge),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
