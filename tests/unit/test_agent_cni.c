/* Unit tests of replica networks through CNI: the plugin protocol against small plugins
 * written by the test (order of ADD and DEL, prevResult, the cache, errors, the checks of
 * a list), and, as root inside a private network namespace of the test's own, Debian's
 * reference plugins: a replica attached, kept across a restart of its container, taken
 * from the warm pool, published on a host port, and detached without a trace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "skip.h"
#include "agent/cni.h"
#include "agent/network.h"
#include "agent/replica_net.h"

static char tmp[128];

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/gt-cni-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    return 0;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* A plugin that logs "NAME COMMAND ID" and its stdin, then prints a result whose address
 * is ADDR (or, for DEL, nothing). */
static void fake_plugin(const char *dir, const char *name, const char *addr)
{
    char path[512], text[2048];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(text, sizeof(text),
             "#!/bin/sh\n"
             "echo \"%s $CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >> %s/log\n"
             "cat >> %s/log\n"
             "echo >> %s/log\n"
             "[ \"$CNI_COMMAND\" = ADD ] || exit 0\n"
             "echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\","
             "\"sandbox\":\"'$CNI_NETNS'\"}],\"ips\":[{\"interface\":0,"
             "\"address\":\"%s/24\"}],\"marker\":\"%s\"}'\n",
             name, tmp, tmp, tmp, addr, name);
    write_file(path, text, 0755);
}

static void test_protocol(void **state)
{
    (void)state;
    char bin[256], list[256], cache[256], log[256];
    snprintf(bin, sizeof(bin), "%s/bin", tmp);
    snprintf(list, sizeof(list), "%s/net.conflist", tmp);
    snprintf(cache, sizeof(cache), "%s/cache", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    mkdir(bin, 0755);
    fake_plugin(bin, "alpha", "10.9.0.2");
    fake_plugin(bin, "beta", "10.9.0.7");
    fake_plugin(bin, "portmap", "10.9.0.5");
    write_file(list,
               "{\"cniVersion\":\"1.0.0\",\"name\":\"n1\",\"plugins\":["
               "{\"type\":\"alpha\",\"k\":1},"
               "{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}},"
               "{\"type\":\"beta\",\"capabilities\":{\"portMappings\":true}}]}",
               0644);
    struct agent_cni *cni;
    struct gy_error err;
    char dirs[600];
    snprintf(dirs, sizeof(dirs), "/nonexistent:%s", bin);
    if (agent_cni_open(&cni, list, dirs, cache, &err) != 0)
        fail_msg("open: %s", err.msg);
    assert_string_equal(agent_cni_name(cni), "n1");

    /* Without port mappings, portmap (which would only hand prevResult on) is not
     * started. */
    struct agent_cni_result res;
    if (agent_cni_add(cni, "c0", "/run/netns/x", "eth0", NULL, &res, &err) != 0)
        fail_msg("add: %s", err.msg);
    char *text = read_text(log);
    assert_non_null(strstr(text, "alpha ADD c0 eth0"));
    assert_non_null(strstr(text, "beta ADD c0 eth0"));
    assert_null(strstr(text, "portmap"));
    free(text);
    assert_int_equal(agent_cni_del(cni, "c0", "", "eth0", &err), 0);
    unlink(log);

    /* ADD: alpha, portmap, then beta, each with the result before it as prevResult and the
     * port mappings when it declared them. */
    struct agent_cni_port port = {.host_port = 8080, .container_port = 80};
    struct agent_cni_args args = {.ports = &port, .n_ports = 1};
    if (agent_cni_add(cni, "c1", "/run/netns/x", "eth0", &args, &res, &err) != 0)
        fail_msg("add: %s", err.msg);
    assert_int_equal(res.address, (10u << 24) | (9u << 16) | 7u);
    assert_int_equal(res.prefix_len, 24);
    text = read_text(log);
    char *a = strstr(text, "alpha ADD c1 eth0");
    char *p = strstr(text, "portmap ADD c1 eth0");
    char *b = strstr(text, "beta ADD c1 eth0");
    assert_non_null(a);
    assert_non_null(p);
    assert_non_null(b);
    assert_true(a < p && p < b);
    assert_non_null(strstr(p, "\"marker\":\"alpha\""));
    assert_non_null(strstr(b, "\"prevResult\":{"));
    assert_non_null(strstr(b, "\"marker\":\"portmap\""));
    assert_non_null(strstr(b, "\"runtimeConfig\":{\"portMappings\":[{"));
    assert_non_null(strstr(b, "\"hostPort\":8080"));
    char *alpha_in = strndup(a, (size_t)(p - a));
    assert_null(strstr(alpha_in, "runtimeConfig")); /* alpha declared no capability */
    assert_null(strstr(alpha_in, "prevResult"));
    assert_non_null(strstr(alpha_in, "\"name\":\"n1\""));
    assert_non_null(strstr(alpha_in, "\"cniVersion\":\"1.0.0\""));
    assert_non_null(strstr(alpha_in, "\"k\":1"));
    free(alpha_in);
    free(text);
    assert_int_equal(agent_cni_cached(cni, "c1", "eth0", &res, &err), 0);
    assert_int_equal(res.address & 0xff, 7);
    assert_false(agent_cni_cached_reusable(cni, "c1", "eth0")); /* it has a port */
    char **ids;
    size_t n;
    assert_int_equal(agent_cni_cached_list(cni, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "c1");
    free(ids[0]);
    free(ids);

    /* CHECK: in order, each with the cached result as prevResult. */
    unlink(log);
    assert_int_equal(agent_cni_check(cni, "c1", "/run/netns/x", "eth0", &err), 0);
    text = read_text(log);
    a = strstr(text, "alpha CHECK c1 eth0");
    b = strstr(text, "beta CHECK c1 eth0");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    assert_non_null(strstr(a, "\"prevResult\":{"));
    assert_non_null(strstr(a, "\"marker\":\"beta\""));
    free(text);

    /* DEL in reverse order, each with the cached result, after the list changed on disk:
     * DEL is given what ADD was given. */
    unlink(log);
    write_file(list, "{\"cniVersion\":\"1.0.0\",\"name\":\"n1\",\"plugins\":[{\"type\":\"beta\"}]}",
               0644);
    if (agent_cni_del(cni, "c1", "", "eth0", &err) != 0)
        fail_msg("del: %s", err.msg);
    text = read_text(log);
    b = strstr(text, "beta DEL c1 eth0");
    p = strstr(text, "portmap DEL c1 eth0");
    a = strstr(text, "alpha DEL c1 eth0");
    assert_non_null(a);
    assert_non_null(p);
    assert_non_null(b);
    assert_true(b < p && p < a);
    assert_non_null(strstr(p, "\"hostPort\":8080")); /* the arguments ADD had */
    assert_non_null(strstr(a, "\"marker\":\"beta\""));
    free(text);
    assert_int_equal(agent_cni_cached(cni, "c1", "eth0", &res, &err), -GY_ENOTFOUND);
    agent_cni_close(cni);
}

static void test_errors(void **state)
{
    (void)state;
    char bin[256], list[256], cache[256], log[256], path[300];
    snprintf(bin, sizeof(bin), "%s/bin", tmp);
    snprintf(list, sizeof(list), "%s/net.conflist", tmp);
    snprintf(cache, sizeof(cache), "%s/cache", tmp);
    snprintf(log, sizeof(log), "%s/log", tmp);
    mkdir(bin, 0755);
    fake_plugin(bin, "alpha", "10.9.0.2");
    snprintf(path, sizeof(path), "%s/bad", bin);
    write_file(path,
               "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = DEL ] && exit 0\n"
               "echo '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"no such thing\","
               "\"details\":\"really\"}'\nexit 1\n",
               0755);
    write_file(list,
               "{\"cniVersion\":\"1.0.0\",\"name\":\"n2\",\"plugins\":["
               "{\"type\":\"alpha\"},{\"type\":\"bad\"}]}",
               0644);
    struct agent_cni *cni;
    struct gy_error err;
    assert_int_equal(agent_cni_open(&cni, list, bin, cache, &err), 0);
    struct agent_cni_result res;
    assert_true(agent_cni_add(cni, "c2", "/run/netns/y", "eth0", NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "CNI plugin bad ADD for c2: no such thing: really (code 7)"));
    /* What ran is undone, and nothing is cached. */
    char *text = read_text(log);
    assert_non_null(strstr(text, "alpha DEL c2"));
    free(text);
    assert_int_equal(agent_cni_cached(cni, "c2", "eth0", &res, &err), -GY_ENOTFOUND);
    /* A plugin that is not installed is named. */
    assert_true(agent_cni_add(cni, "bad/id", "/run/netns/y", "eth0", NULL, &res, &err) < 0);
    agent_cni_close(cni);
    write_file(list, "{\"cniVersion\":\"1.0.0\",\"name\":\"n3\",\"plugins\":[{\"type\":\"gone\"}]}",
               0644);
    assert_int_equal(agent_cni_open(&cni, list, bin, cache, &err), 0);
    assert_true(agent_cni_add(cni, "c3", "/run/netns/y", "eth0", NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "CNI plugin \"gone\" is not in"));
    agent_cni_close(cni);

    /* Lists that cannot be used: each problem names the file and the field. */
    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"{\"name\":\"n\",\"plugins\":[{\"type\":\"a\"}]}", "field \"cniVersion\""},
        {"{\"cniVersion\":\"0.2.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"a\"}]}",
         "\"0.2.0\" is not one of"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"a b\",\"plugins\":[{\"type\":\"a\"}]}",
         "field \"name\""},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[]}", "field \"plugins\""},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"../x\"}]}",
         "field \"plugins[0].type\""},
        {"{\"cniVersion\":\"1.0.0\",\n\"name\":}", "line 2, column"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(list, bad[i].text, 0644);
        assert_int_equal(agent_cni_open(&cni, list, bin, cache, &err), -GY_EINVAL);
        if (strstr(err.msg, bad[i].expect) == NULL || strstr(err.msg, list) == NULL)
            fail_msg("case %zu: \"%s\"", i, err.msg);
    }
}

static bool plugins_present(void)
{
    const char *need[] = {"bridge", "host-local", "portmap", "firewall", "bandwidth"};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/usr/lib/cni/%s", need[i]);
        if (access(path, X_OK) != 0)
            return false;
    }
    return true;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "lock") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_reference_plugins(void **state)
{
    (void)state;
    if (geteuid() != 0)
        GT_SKIP("network namespaces need root");
    if (!plugins_present())
        GT_SKIP("Debian's containernetworking-plugins are not in /usr/lib/cni");
    assert_int_equal(unshare(CLONE_NEWNET), 0);
    assert_int_equal(system("ip link set lo up"), 0);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "gtc%d-", (int)getpid());
    struct agent_net_config net;
    struct gy_error err;
    assert_int_equal(agent_net_config_init(&net, "198.18.6.0/24", "gtcbr0", prefix, &err), 0);
    if (agent_net_bridge_up(&net, &err) != 0)
        fail_msg("bridge: %s", err.msg);
    struct agent_rnet_config cfg = {.data_dir = tmp,
                                    .ns_prefix = prefix,
                                    .bridge = "gtcbr0",
                                    .bin_dirs = "/usr/lib/cni",
                                    .pool = 1};
    struct agent_rnet *rn;
    if (agent_rnet_open(&rn, &cfg, &err) != 0)
        fail_msg("open: %s", err.msg);
    assert_false(agent_rnet_ready(rn));
    if (agent_rnet_subnet(rn, "198.18.6.0/24", &err) != 0)
        fail_msg("subnet: %s", err.msg);
    assert_true(agent_rnet_ready(rn));

    /* A replica of its own: it reaches the gateway; attached again (a restart of its
     * container), it keeps namespace and address. */
    char ns[256], cmd[512];
    uint32_t addr = 0, again = 0;
    if (agent_rnet_attach(rn, "web-00000001", NULL, ns, sizeof(ns), &addr, &err) != 0)
        fail_msg("attach: %s", err.msg);
    assert_int_equal(addr, (198u << 24) | (18u << 16) | (6u << 8) | 2u);
    snprintf(cmd, sizeof(cmd),
             "ip netns exec %sweb-00000001 busybox ping -c1 -W2 198.18.6.1 >/dev/null", prefix);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(agent_rnet_attach(rn, "web-00000001", NULL, ns, sizeof(ns), &again, &err), 0);
    assert_int_equal(again, addr);

    /* The pool: one attachment made ahead, taken by the next replica without ports. */
    assert_int_equal(agent_rnet_pool_missing(rn), 1);
    if (agent_rnet_pool_fill_one(rn, &err) != 0)
        fail_msg("pool: %s", err.msg);
    assert_int_equal(agent_rnet_pool_missing(rn), 0);
    uint32_t pooled = 0;
    assert_int_equal(agent_rnet_attach(rn, "web-00000002", NULL, ns, sizeof(ns), &pooled, &err), 0);
    assert_int_equal(agent_rnet_pool_missing(rn), 1);
    assert_int_equal(pooled & 0xff, 3);
    snprintf(cmd, sizeof(cmd),
             "ip netns exec %sweb-00000002 busybox ping -c1 -W2 198.18.6.2 >/dev/null", prefix);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "ls /run/netns | grep -q '^%spool\\.'", prefix);
    assert_int_not_equal(system(cmd), 0); /* renamed to the replica's */
    uint32_t seen = 0;
    assert_int_equal(agent_rnet_address(rn, "web-00000002", &seen, &err), 0);
    assert_int_equal(seen, pooled);

    /* A published port: portmap's DNAT rule is there while the replica is. */
    struct agent_cni_port port = {.host_port = 18080, .container_port = 80};
    struct agent_cni_args args = {.ports = &port, .n_ports = 1};
    uint32_t published = 0;
    if (agent_rnet_attach(rn, "api-00000001", &args, ns, sizeof(ns), &published, &err) != 0)
        fail_msg("attach with a port: %s", err.msg);
    assert_int_equal(system("iptables -t nat -S | grep -q 'dport 18080 -j DNAT --to-destination "
                            "198.18.6.4:80'"),
                     0);

    /* A restart of the agent: the pool is made again from what is on disk, the networks of
     * replicas that are gone are removed. */
    assert_int_equal(agent_rnet_pool_fill_one(rn, &err), 0);
    agent_rnet_close(rn);
    assert_int_equal(agent_rnet_open(&rn, &cfg, &err), 0);
    assert_int_equal(agent_rnet_subnet(rn, "198.18.6.0/24", &err), 0);
    const char *live[] = {"web-00000002"};
    size_t removed = 0;
    if (agent_rnet_collect(rn, live, 1, &removed, &err) != 0)
        fail_msg("collect: %s", err.msg);
    assert_int_equal(removed, 2); /* web-00000001 and api-00000001 */
    assert_int_equal(agent_rnet_pool_missing(rn), 0);
    assert_int_not_equal(system("iptables -t nat -S | grep -q 18080"), 0);
    assert_int_not_equal(system("iptables -S | grep -q '198.18.6.2/32'"), 0);
    snprintf(cmd, sizeof(cmd), "test -e /run/netns/%sweb-00000001", prefix);
    assert_int_not_equal(system(cmd), 0);

    /* A pooled network whose replica is gone serves the next one. */
    uint32_t third = 0, fourth = 0;
    assert_int_equal(agent_rnet_attach(rn, "web-00000003", NULL, ns, sizeof(ns), &third, &err), 0);
    assert_int_equal(agent_rnet_pool_missing(rn), 1);
    assert_int_equal(agent_rnet_detach(rn, "web-00000003", true, &err), 0);
    assert_int_equal(agent_rnet_pool_missing(rn), 0);
    snprintf(cmd, sizeof(cmd), "test -e /run/netns/%sweb-00000003", prefix);
    assert_int_not_equal(system(cmd), 0);
    assert_int_equal(agent_rnet_attach(rn, "web-00000004", NULL, ns, sizeof(ns), &fourth, &err), 0);
    assert_int_equal(fourth, third);
    assert_int_equal(agent_rnet_detach(rn, "web-00000004", false, &err), 0);

    /* Detach: no namespace, no veth, no lease, no rule is left; the pool goes at the end. */
    assert_int_equal(agent_rnet_detach(rn, "web-00000002", false, &err), 0);
    assert_int_equal(agent_rnet_detach(rn, "web-00000002", false, &err), 0); /* absent: fine */
    removed = 0;
    assert_int_equal(agent_rnet_collect(rn, NULL, 0, &removed, &err), 0);
    agent_rnet_close(rn);
    cfg.pool = 0;
    assert_int_equal(agent_rnet_open(&rn, &cfg, &err), 0);
    assert_int_equal(agent_rnet_subnet(rn, "198.18.6.0/24", &err), 0);
    assert_int_equal(agent_rnet_collect(rn, NULL, 0, &removed, &err), 0);
    agent_rnet_close(rn);
    snprintf(cmd, sizeof(cmd), "ls /run/netns | grep -q '^%s'", prefix);
    assert_int_not_equal(system(cmd), 0);
    assert_int_not_equal(system("ip -o link show master gtcbr0 | grep -q veth"), 0);
    assert_int_not_equal(system("iptables -S | grep -q '198.18.6'"), 0);
    char leases[300];
    snprintf(leases, sizeof(leases), "%s/cni/ipam/gantry", tmp);
    assert_int_equal(count_files(leases), 1); /* last_reserved_ip.0 alone */
    char owners[300];
    snprintf(owners, sizeof(owners), "%s/cni/owners", tmp);
    assert_int_equal(count_files(owners), 0);
}

/* An operator's list (--cni-conf): ready at once, no subnet needed, its own bridge and
 * addresses. */
static void test_operator_list(void **state)
{
    (void)state;
    if (geteuid() != 0)
        GT_SKIP("network namespaces need root");
    if (!plugins_present())
        GT_SKIP("Debian's containernetworking-plugins are not in /usr/lib/cni");
    assert_int_equal(unshare(CLONE_NEWNET), 0);
    assert_int_equal(system("ip link set lo up"), 0);
    char prefix[32], list[256], text[1024];
    snprintf(prefix, sizeof(prefix), "gto%d-", (int)getpid());
    snprintf(list, sizeof(list), "%s/operator.conflist", tmp);
    snprintf(text, sizeof(text),
             "{\"cniVersion\":\"0.4.0\",\"name\":\"opnet\",\"plugins\":[{\"type\":\"bridge\","
             "\"bridge\":\"gtop0\",\"isGateway\":true,\"ipam\":{\"type\":\"host-local\","
             "\"subnet\":\"198.18.7.0/24\",\"dataDir\":\"%s/leases\"}}]}",
             tmp);
    write_file(list, text, 0644);
    struct agent_rnet_config cfg = {.data_dir = tmp,
                                    .ns_prefix = prefix,
                                    .bridge = "unused0",
                                    .conf = list,
                                    .bin_dirs = "/usr/lib/cni",
                                    .pool = 0};
    struct agent_rnet *rn;
    struct gy_error err;
    if (agent_rnet_open(&rn, &cfg, &err) != 0)
        fail_msg("open: %s", err.msg);
    assert_true(agent_rnet_custom(rn));
    assert_true(agent_rnet_ready(rn));
    assert_int_equal(agent_rnet_subnet(rn, "198.18.6.0/24", &err), 0); /* ignored */
    char ns[256];
    uint32_t addr = 0;
    if (agent_rnet_attach(rn, "op-00000001", NULL, ns, sizeof(ns), &addr, &err) != 0)
        fail_msg("attach: %s", err.msg);
    assert_int_equal(addr, (198u << 24) | (18u << 16) | (7u << 8) | 2u);
    assert_int_equal(system("ip -o link show master gtop0 | grep -q veth"), 0);
    /* Its version has CHECK, and the attachment passes it. */
    if (agent_rnet_check(rn, "op-00000001", &err) != 0)
        fail_msg("check: %s", err.msg);
    assert_int_equal(agent_rnet_detach(rn, "op-00000001", false, &err), 0);
    assert_int_not_equal(system("ip -o link show master gtop0 | grep -q veth"), 0);
    agent_rnet_close(rn);
    /* A list that does not parse is refused at open, naming the file. */
    write_file(list, "{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"plugins\":[{}]}", 0644);
    assert_int_equal(agent_rnet_open(&rn, &cfg, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "plugins[0].type"));
    assert_non_null(strstr(err.msg, list));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_protocol, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_errors, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_reference_plugins, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_operator_list, setup_tmp, teardown_tmp),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
