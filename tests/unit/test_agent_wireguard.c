/* Unit tests of WireGuard tunnels through wireguard-go: which public keys are accepted, the
 * node's key file, how a daemon that cannot start is reported, and, as root with
 * wireguard-go installed, two nodes in network namespaces of the test's own joined by a
 * veth pair: a tunnel between them that carries a ping, the same daemon and key kept
 * across a restart of the agent, a daemon that died replaced, a key rotation, a peer list
 * refused whole for one bad key, and both daemons stopped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "skip.h"
#include "agent/wireguard.h"

static char tmp[128];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/gt-wg-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    return 0;
}

static int remove_tmp(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    return remove_tmp();
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The first line a shell command prints, without its newline. */
static void run_line(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (fgets(out, (int)len, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void test_key_valid(void **state)
{
    (void)state;
    static const char *const good[] = {
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "+/+/9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!agent_wg_key_valid(good[i]))
            fail_msg("refused \"%s\"", good[i]);
    static const char *const bad[] = {
        "",
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw",   /* no padding */
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw==", /* 45 characters */
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk==",  /* 31 bytes */
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx=",  /* spare bits set */
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8yk-=",  /* URL-safe alphabet */
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykwA",  /* no '=' */
        "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\n",
        " HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
        "HIgo9xNzJMWLKASShiTqIyb Z0U3wGLiUeJ1PKf8ykw=",
        "1c882bf7137324c58b28049286256a2326f1674537c062e251e2753ca7fcca4c", /* hex */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (agent_wg_key_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    assert_false(agent_wg_key_valid(NULL));
}

/* The key alone, before any tunnel: made once, kept, and replaced by a rotation. */
static void test_key_file(void **state)
{
    (void)state;
    char data[256], path[300], first[AGENT_WG_KEY_B64], again[AGENT_WG_KEY_B64];
    snprintf(data, sizeof(data), "%s/data", tmp);
    snprintf(path, sizeof(path), "%s/wireguard.key", data);
    struct gy_error err;
    assert_int_equal(agent_wg_key_public(data, first, &err), 0);
    assert_true(agent_wg_key_valid(first));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(agent_wg_key_public(data, again, &err), 0);
    assert_string_equal(again, first);
    if (system("command -v wg >/dev/null") == 0) {
        char cmd[400], pub[64];
        snprintf(cmd, sizeof(cmd), "wg pubkey < %s", path);
        run_line(cmd, pub, sizeof(pub));
        assert_string_equal(pub, first);
    }
    char rotated[AGENT_WG_KEY_B64];
    assert_int_equal(agent_wg_key_rotate(data, rotated, &err), 0);
    assert_true(agent_wg_key_valid(rotated));
    assert_string_not_equal(rotated, first);
    assert_int_equal(agent_wg_key_public(data, again, &err), 0);
    assert_string_equal(again, rotated);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_errors(void **state)
{
    (void)state;
    char data[256], fake[256], name[16];
    snprintf(data, sizeof(data), "%s/data", tmp);
    snprintf(name, sizeof(name), "gtw%dx", (int)getpid());
    struct agent_wg *wg = NULL;
    struct gy_error err;
    struct agent_wg_config cfg = {.interface = "a/b", .data_dir = data};
    assert_int_equal(agent_wg_open(&wg, &cfg, &err), -GY_EINVAL);
    cfg.interface = "much-too-long-name";
    assert_int_equal(agent_wg_open(&wg, &cfg, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "much-too-long-name"));

    /* A program that is not there is named; the key is made all the same, readable by its
     * owner alone, and kept for the next attempt. */
    cfg.interface = name;
    cfg.program = "/nonexistent/wireguard-go";
    assert_true(agent_wg_open(&wg, &cfg, &err) < 0);
    assert_null(wg);
    assert_non_null(strstr(err.msg, "cannot run /nonexistent/wireguard-go"));
    char key_path[300], key[64], again[64];
    snprintf(key_path, sizeof(key_path), "%s/wireguard.key", data);
    struct stat st;
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "cat %s", key_path);
    run_line(cmd, key, sizeof(key));
    assert_true(agent_wg_key_valid(key));

    /* A daemon that exits at once: its last words are the error. */
    snprintf(fake, sizeof(fake), "%s/fake-wg", tmp);
    write_file(fake, "#!/bin/sh\necho \"starting $*\" >&2\necho 'no TUN for you' >&2\nexit 1\n",
               0755);
    cfg.program = fake;
    assert_true(agent_wg_open(&wg, &cfg, &err) < 0);
    if (strstr(err.msg, "wireguard-go exited (status 1): no TUN for you") == NULL)
        fail_msg("%s", err.msg);
    char pid_path[300];
    snprintf(pid_path, sizeof(pid_path), "%s/wireguard.pid", data);
    assert_int_not_equal(access(pid_path, F_OK), 0);
    run_line(cmd, again, sizeof(again));
    assert_string_equal(again, key);

    /* A key file that is not a key is not replaced: the node's identity is at stake. */
    write_file(key_path, "not a key\n", 0600);
    assert_int_equal(agent_wg_open(&wg, &cfg, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, key_path));
    assert_int_equal(agent_wg_stop(&cfg, &err), 0); /* nothing runs: fine */
}

/* ---------------------------------------------------------------------------------------
 * Two nodes and a tunnel */

/* One node: a network namespace, a data directory and a wireguard-go of its own. */
struct node {
    char ns[32];
    char iface[16];
    char data[256];
    uint16_t port;
    struct agent_wg_config cfg;
    struct agent_wg *wg;
};

static struct node nodes[2];

static void node_init(struct node *n, char side)
{
    snprintf(n->ns, sizeof(n->ns), "gtw%d%c", (int)getpid(), side);
    snprintf(n->iface, sizeof(n->iface), "gtw%d%c", (int)getpid(), side);
    snprintf(n->data, sizeof(n->data), "%s/%c", tmp, side);
    n->port = (uint16_t)(51900 + 2 * (getpid() % 50) + (side - 'a'));
    n->cfg = (struct agent_wg_config){
        .interface = n->iface, .data_dir = n->data, .listen_port = n->port};
    n->wg = NULL;
}

static pid_t node_pid(const struct node *n)
{
    char path[300], text[32];
    snprintf(path, sizeof(path), "%s/wireguard.pid", n->data);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    pid_t pid = fgets(text, sizeof(text), f) != NULL ? (pid_t)atoi(text) : 0;
    fclose(f);
    return pid;
}

struct open_job {
    struct node *node;
    int rc;
    struct gy_error err;
};

/* agent_wg_open on a thread that entered the node's namespace, as the agent of that node
 * would run it: wireguard-go is started in the namespace of the thread that starts it. */
static void *open_thread(void *arg)
{
    struct open_job *job = arg;
    char path[64];
    snprintf(path, sizeof(path), "/run/netns/%s", job->node->ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        job->rc = -1;
        snprintf(job->err.msg, sizeof(job->err.msg), "enter %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    close(fd);
    job->rc = agent_wg_open(&job->node->wg, &job->node->cfg, &job->err);
    return NULL;
}

static void node_open(struct node *n)
{
    struct open_job job = {.node = n};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, open_thread, &job), 0);
    pthread_join(t, NULL);
    if (job.rc != 0)
        fail_msg("open %s: %s", n->iface, job.err.msg);
    assert_true(agent_wg_ifindex(n->wg) > 0);
}

/* The peer that reaches node n: its key, its address on the veth pair, its tunnel network. */
static struct agent_wg_peer peer_of(const struct node *n, int index)
{
    struct agent_wg_peer p = {.allowed = (10u << 24) | (99u << 16) | ((uint32_t)index + 1) << 8,
                              .allowed_len = 24};
    snprintf(p.public_key, sizeof(p.public_key), "%s", agent_wg_public_key(n->wg));
    snprintf(p.endpoint, sizeof(p.endpoint), "192.0.2.%d:%u", index + 1, (unsigned)n->port);
    return p;
}

static void peers_link(struct node *n, const struct node *other, int other_index)
{
    struct agent_wg_peer p = peer_of(other, other_index);
    struct gy_error err;
    if (agent_wg_peers_set(n->wg, &p, 1, &err) != 0)
        fail_msg("peers of %s: %s", n->iface, err.msg);
}

/* A ping through the tunnel from node a to node b's tunnel address. The first may wait for
 * a handshake, which wireguard-go repeats after 5 s when its first initiation was sent
 * before the other side knew the key: a few tries. */
static bool ping_through(int tries)
{
    for (int i = 0; i < tries; i++)
        if (sh("ip netns exec %s busybox ping -c1 -W2 10.99.2.1 >/dev/null 2>&1", nodes[0].ns) == 0)
            return true;
    return false;
}

static void key_file_matches(const struct node *n)
{
    char cmd[400], pub[64];
    snprintf(cmd, sizeof(cmd), "wg pubkey < %s/wireguard.key", n->data);
    run_line(cmd, pub, sizeof(pub));
    assert_string_equal(pub, agent_wg_public_key(n->wg));
}

static int setup_nodes(void **state)
{
    setup_tmp(state);
    node_init(&nodes[0], 'a');
    node_init(&nodes[1], 'b');
    return 0;
}

/* Whatever happened, no daemon and no namespace of the test's is left. */
static int teardown_nodes(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        struct node *n = &nodes[i];
        agent_wg_close(n->wg);
        n->wg = NULL;
        pid_t pid = node_pid(n);
        struct gy_error err;
        if (agent_wg_stop(&n->cfg, &err) != 0) {
            fprintf(stderr, "stop %s: %s\n", n->iface, err.msg);
            if (pid > 0)
                kill(pid, SIGKILL);
        }
        sh("ip netns del %s 2>/dev/null", n->ns);
    }
    return remove_tmp();
}

static void test_tunnel(void **state)
{
    (void)state;
    if (geteuid() != 0)
        GT_SKIP("network namespaces and TUN devices need root");
    if (system("command -v wireguard-go >/dev/null && command -v wg >/dev/null && "
               "command -v busybox >/dev/null") != 0)
        GT_SKIP("wireguard-go, wg (wireguard-tools) or busybox is not installed");
    struct node *a = &nodes[0], *b = &nodes[1];
    assert_int_equal(sh("ip netns add %s && ip netns add %s", a->ns, b->ns), 0);
    assert_int_equal(sh("ip -n %s link set lo up && ip -n %s link set lo up", a->ns, b->ns), 0);
    assert_int_equal(sh("ip -n %s link add v0 type veth peer name v1 netns %s", a->ns, b->ns), 0);
    assert_int_equal(sh("ip -n %s addr add 192.0.2.1/24 dev v0 && ip -n %s link set v0 up && "
                        "ip -n %s addr add 192.0.2.2/24 dev v1 && ip -n %s link set v1 up",
                        a->ns, a->ns, b->ns, b->ns),
                     0);
    node_open(a);
    node_open(b);
    assert_string_not_equal(agent_wg_public_key(a->wg), agent_wg_public_key(b->wg));
    assert_true(agent_wg_key_valid(agent_wg_public_key(a->wg)));
    key_file_matches(a);
    key_file_matches(b);
    pid_t pid_a = node_pid(a), pid_b = node_pid(b);
    assert_true(pid_a > 0 && pid_b > 0);
    /* The device is in the node's namespace, not the test's. */
    assert_int_equal(sh("ip -n %s link show %s | grep -q UP", a->ns, a->iface), 0);
    assert_int_not_equal(sh("ip link show %s >/dev/null 2>&1", a->iface), 0);
    for (int i = 0; i < 2; i++) {
        struct node *n = &nodes[i];
        assert_int_equal(sh("ip -n %s addr add 10.99.%d.1/24 dev %s && ip -n %s route add "
                            "10.99.%d.0/24 dev %s",
                            n->ns, i + 1, n->iface, n->ns, 2 - i, n->iface),
                         0);
    }
    peers_link(a, b, 1);
    peers_link(b, a, 0);
    assert_true(ping_through(3));
    uint64_t rx = 0, tx = 0;
    struct gy_error err;
    assert_int_equal(agent_wg_transfer(a->wg, &rx, &tx, &err), 0);
    assert_true(rx > 0);
    assert_true(tx > 0);

    /* The same peers again change nothing: the session and its handshake stay. */
    char before[128], after[128], cmd[256];
    snprintf(cmd, sizeof(cmd), "wg show %s latest-handshakes", b->iface);
    run_line(cmd, before, sizeof(before));
    assert_non_null(strchr(before, '\t'));
    assert_string_not_equal(strchr(before, '\t') + 1, "0");
    peers_link(b, a, 0);
    run_line(cmd, after, sizeof(after));
    assert_string_equal(after, before);

    /* A restart of the agent: the running daemon, its key and its peers are kept. */
    char key_a[AGENT_WG_KEY_B64];
    snprintf(key_a, sizeof(key_a), "%s", agent_wg_public_key(a->wg));
    agent_wg_close(a->wg);
    a->wg = NULL;
    node_open(a);
    assert_int_equal(node_pid(a), pid_a);
    assert_string_equal(agent_wg_public_key(a->wg), key_a);
    assert_int_equal(kill(pid_a, 0), 0);
    assert_true(ping_through(1));

    /* A daemon that died, killed so that its socket file stays: the next open starts
     * another with the same key. Its device is new, without address, route or peers. */
    assert_int_equal(kill(pid_a, SIGKILL), 0);
    assert_int_equal(waitpid(pid_a, NULL, 0), pid_a);
    agent_wg_close(a->wg);
    a->wg = NULL;
    node_open(a);
    assert_int_not_equal(node_pid(a), pid_a);
    pid_a = node_pid(a);
    assert_string_equal(agent_wg_public_key(a->wg), key_a);
    assert_int_equal(sh("ip -n %s addr add 10.99.1.1/24 dev %s && ip -n %s route add "
                        "10.99.2.0/24 dev %s",
                        a->ns, a->iface, a->ns, a->iface),
                     0);
    peers_link(a, b, 1);
    assert_true(ping_through(3));

    /* A new key: peers that still expect the old one refuse it, and carry traffic again
     * once they are given the new one. */
    if (agent_wg_rotate(a->wg, &err) != 0)
        fail_msg("rotate: %s", err.msg);
    assert_string_not_equal(agent_wg_public_key(a->wg), key_a);
    key_file_matches(a);
    struct stat st;
    char key_path[300];
    snprintf(key_path, sizeof(key_path), "%s/wireguard.key", a->data);
    assert_int_equal(stat(key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_false(sh("ip netns exec %s busybox ping -c1 -W1 10.99.2.1 >/dev/null 2>&1", a->ns) == 0);
    peers_link(b, a, 0);
    assert_true(ping_through(3));

    /* A list with one bad peer is refused whole, naming it; the device keeps its peers. */
    struct agent_wg_peer list[2] = {peer_of(a, 0), peer_of(a, 0)};
    snprintf(list[1].public_key, sizeof(list[1].public_key),
             "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx=");
    assert_int_equal(agent_wg_peers_set(b->wg, list, 2, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "peer 1"));
    assert_non_null(strstr(err.msg, "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykx="));
    list[1] = peer_of(a, 0);
    snprintf(list[1].public_key, sizeof(list[1].public_key),
             "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=");
    snprintf(list[1].endpoint, sizeof(list[1].endpoint), "192.0.2.9:port");
    assert_int_equal(agent_wg_peers_set(b->wg, list, 2, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "endpoint \"192.0.2.9:port\""));
    list[1] = list[0];
    assert_int_equal(agent_wg_peers_set(b->wg, list, 2, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "also the key of peer 0"));
    char peers[128];
    snprintf(cmd, sizeof(cmd), "wg show %s peers", b->iface);
    run_line(cmd, peers, sizeof(peers));
    assert_string_equal(peers, agent_wg_public_key(a->wg));
    assert_true(ping_through(1));

    /* Leaving the overlay: both daemons stop, and their devices go with them. */
    agent_wg_close(a->wg);
    agent_wg_close(b->wg);
    a->wg = b->wg = NULL;
    for (int i = 0; i < 2; i++) {
        struct node *n = &nodes[i];
        if (agent_wg_stop(&n->cfg, &err) != 0)
            fail_msg("stop %s: %s", n->iface, err.msg);
        assert_int_equal(node_pid(n), 0);
        assert_int_not_equal(sh("ip -n %s link show %s >/dev/null 2>&1", n->ns, n->iface), 0);
        char sock[64];
        snprintf(sock, sizeof(sock), "/var/run/wireguard/%s.sock", n->iface);
        assert_int_not_equal(access(sock, F_OK), 0);
        assert_int_equal(sh("ip netns del %s", n->ns), 0);
        assert_int_not_equal(sh("ip netns list | grep -q '^%s'", n->ns), 0);
    }
    assert_int_equal(kill(pid_a, 0), -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(kill(pid_b, 0), -1);
    assert_int_equal(errno, ESRCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test_setup_teardown(test_key_file, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_open_errors, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_tunnel, setup_nodes, teardown_nodes),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
