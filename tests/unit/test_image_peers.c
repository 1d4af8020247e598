/* Unit tests of layers between the nodes of a cloud: the rendezvous ranking (pinned to its
 * definition, the same on every node whatever order it is given the nodes in, balanced, and
 * moving only what a new node takes), layer server addresses, the node's download slots and
 * blobs in flight, and the layer server with its client on loopback: a blob served and
 * checked, a damaged one refused and not kept, requests refused (bad digest, missing blob,
 * oversized head, a silent client), and a blob the server's store lacks fetched once from
 * a stand-in registry for two peers at once, streamed to them as it arrives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/peer_fetch.h"
#include "agent/peer_server.h"
#include "agent/pull-internal.h"
#include "agent/pull.h"

/* ---------------------------------------------------------------------------------------
 * Ranking */

static const char DIGEST_AB[] =
    "sha256:abababababababababababababababababababababababababababababababab";

static void test_score_pinned(void **state)
{
    (void)state;
    /* python3: sha256(digest + "\n" + node).digest()[:8], big-endian. */
    assert_true(agent_peer_score(DIGEST_AB, "node1") == UINT64_C(0xd2b89a53d8adfb9f));
    assert_true(agent_peer_score(DIGEST_AB, "node2") == UINT64_C(0x8c22cdd14722bfbf));
    assert_true(agent_peer_score(DIGEST_AB, "node3") == UINT64_C(0xc1e729db66af0aac));
    const char *nodes[] = {"node2", "node3", "node1"};
    size_t order[3];
    agent_peer_rank(DIGEST_AB, nodes, 3, order);
    assert_string_equal(nodes[order[0]], "node1");
    assert_string_equal(nodes[order[1]], "node3");
    assert_string_equal(nodes[order[2]], "node2");
}

static void digest_of(unsigned i, char out[OCI_DIGEST_BUF])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(&i, sizeof(i), md, &n, EVP_sha256(), NULL);
    oci_digest_format(md, out);
}

/* Every node sees the peers in its own order (the leader's list, itself included or
 * not): all of them rank every blob the same. */
static void test_rank_agreed(void **state)
{
    (void)state;
    const char *names[] = {"a1", "node-7", "b", "node10", "zz", "c3"};
    const size_t n = sizeof(names) / sizeof(names[0]);
    for (unsigned d = 0; d < 200; d++) {
        char digest[OCI_DIGEST_BUF];
        digest_of(d, digest);
        size_t ref[6];
        agent_peer_rank(digest, names, n, ref);
        for (size_t rot = 1; rot < n; rot++) {
            const char *view[6];
            for (size_t i = 0; i < n; i++)
                view[i] = names[(i + rot) % n];
            size_t order[6];
            agent_peer_rank(digest, view, n, order);
            for (size_t k = 0; k < n; k++)
                assert_string_equal(view[order[k]], names[ref[k]]);
        }
    }
}

static void test_rank_balanced_and_stable(void **state)
{
    (void)state;
    const char *four[] = {"node1", "node2", "node3", "node4"};
    const char *five[] = {"node1", "node2", "node3", "node4", "node5"};
    unsigned first[4] = {0}, moved = 0, to_new = 0;
    const unsigned total = 4000;
    for (unsigned d = 0; d < total; d++) {
        char digest[OCI_DIGEST_BUF];
        digest_of(d + 1000, digest);
        size_t o4[4], o5[5];
        agent_peer_rank(digest, four, 4, o4);
        agent_peer_rank(digest, five, 5, o5);
        first[o4[0]]++;
        if (strcmp(four[o4[0]], five[o5[0]]) != 0) {
            moved++;
            /* A node that joins takes blobs; none moves between the others. */
            assert_string_equal(five[o5[0]], "node5");
        }
        to_new += strcmp(five[o5[0]], "node5") == 0;
    }
    for (int i = 0; i < 4; i++)
        assert_in_range(first[i], total / 4 - total / 20, total / 4 + total / 20);
    assert_int_equal(moved, to_new);
    assert_in_range(to_new, total / 5 - total / 20, total / 5 + total / 20);
}

static void test_address_valid(void **state)
{
    (void)state;
    assert_true(agent_peer_address_valid("127.0.0.1:7703"));
    assert_true(agent_peer_address_valid("node-1.cloud.example:1"));
    assert_true(agent_peer_address_valid("[::1]:65535"));
    assert_true(agent_peer_address_valid("[fe80::1:2]:7703"));
    assert_false(agent_peer_address_valid(""));
    assert_false(agent_peer_address_valid("127.0.0.1"));
    assert_false(agent_peer_address_valid("127.0.0.1:"));
    assert_false(agent_peer_address_valid(":7703"));
    assert_false(agent_peer_address_valid("127.0.0.1:0"));
    assert_false(agent_peer_address_valid("127.0.0.1:65536"));
    assert_false(agent_peer_address_valid("127.0.0.1:07703"));
    assert_false(agent_peer_address_valid("host/x:80"));
    assert_false(agent_peer_address_valid("a..b:80"));
    assert_false(agent_peer_address_valid("-a:80"));
    assert_false(agent_peer_address_valid("[::1:80"));
    assert_false(agent_peer_address_valid("[::g]:80"));
    assert_false(agent_peer_address_valid("user@host:80"));
    char long_host[300];
    memset(long_host, 'a', 260);
    snprintf(long_host + 260, sizeof(long_host) - 260, ":80");
    assert_false(agent_peer_address_valid(long_host));
}

/* ---------------------------------------------------------------------------------------
 * A node: its store, download slots, blobs in flight */

struct node {
    char dir[64];
    struct agent_puller p;
};

static int node_setup(void **state)
{
    struct node *n = calloc(1, sizeof(*n));
    snprintf(n->dir, sizeof(n->dir), "/tmp/gantry-image-peers.XXXXXX");
    struct gy_error err;
    if (mkdtemp(n->dir) == NULL || agent_puller_open(&n->p, n->dir, NULL, &err) < 0) {
        free(n);
        return -1;
    }
    *state = n;
    return 0;
}

static int node_teardown(void **state)
{
    struct node *n = *state;
    agent_puller_close(&n->p);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", n->dir);
    if (system(cmd) != 0)
        return -1;
    free(n);
    return 0;
}

static void test_slots(void **state)
{
    struct node *n = *state;
    struct gy_error err;
    assert_int_equal(agent_puller_set_max_downloads(&n->p, 0, &err), -GY_EINVAL);
    assert_int_equal(agent_puller_set_max_downloads(&n->p, 65, &err), -GY_EINVAL);
    assert_int_equal(agent_puller_set_max_downloads(&n->p, 2, &err), 0);
    atomic_bool cancel = false;
    assert_true(agent_pull_slot_take(&n->p, AGENT_SLOTS_PULLS, &cancel));
    assert_true(agent_pull_slot_take(&n->p, AGENT_SLOTS_PULLS, &cancel));
    /* The peers' slots are counted apart. */
    assert_true(agent_pull_slot_take(&n->p, AGENT_SLOTS_PEERS, &cancel));
    atomic_store(&cancel, true);
    assert_false(agent_pull_slot_take(&n->p, AGENT_SLOTS_PULLS, &cancel));
    agent_pull_slot_give(&n->p, AGENT_SLOTS_PULLS);
    atomic_store(&cancel, false);
    assert_true(agent_pull_slot_take(&n->p, AGENT_SLOTS_PULLS, &cancel));
    for (int i = 0; i < 2; i++)
        agent_pull_slot_give(&n->p, AGENT_SLOTS_PULLS);
    agent_pull_slot_give(&n->p, AGENT_SLOTS_PEERS);
}

struct waiter {
    struct agent_puller *p;
    const char *digest;
    atomic_int result;
};

static void *flight_waiter(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->result, agent_pull_flight_begin(w->p, w->digest, NULL));
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_flights(void **state)
{
    struct node *n = *state;
    static const char content[] = "a blob in flight\n";
    char digest[OCI_DIGEST_BUF];
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(content, strlen(content), md, &len, EVP_sha256(), NULL);
    oci_digest_format(md, digest);
    assert_int_equal(agent_pull_flight_begin(&n->p, digest, NULL), 1);
    assert_true(agent_pull_flight_active(&n->p, digest));
    /* A second download of the blob waits for the first, and finds it in the store. */
    struct waiter w = {.p = &n->p, .digest = digest, .result = 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flight_waiter, &w), 0);
    sleep_ms(300);
    assert_int_equal(atomic_load(&w.result), 99);
    struct gy_error err;
    assert_int_equal(oci_store_blob_write(n->p.store, content, strlen(content), digest, NULL, &err),
                     0);
    agent_pull_flight_end(&n->p, digest);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&w.result), 0);
    assert_false(agent_pull_flight_active(&n->p, digest));
    /* One that failed makes the waiter the next download; a cancelled wait gives up. */
    char other[OCI_DIGEST_BUF];
    digest_of(7, other);
    assert_int_equal(agent_pull_flight_begin(&n->p, other, NULL), 1);
    atomic_bool cancel = true;
    assert_int_equal(agent_pull_flight_begin(&n->p, other, &cancel), -1);
    w.digest = other;
    atomic_store(&w.result, 99);
    assert_int_equal(pthread_create(&t, NULL, flight_waiter, &w), 0);
    sleep_ms(100);
    agent_pull_flight_end(&n->p, other);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&w.result), 1);
    agent_pull_flight_end(&n->p, other);
}

/* ---------------------------------------------------------------------------------------
 * The layer server and its client */

struct blob {
    char *data;
    size_t len;
    char digest[OCI_DIGEST_BUF];
};

static void blob_make(struct blob *b, size_t len, unsigned seed)
{
    b->data = malloc(len);
    b->len = len;
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        b->data[i] = (char)(x >> 16);
    }
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(b->data, len, md, &n, EVP_sha256(), NULL);
    oci_digest_format(md, b->digest);
}

static struct agent_peer_server *server_start(struct node *n, int header_timeout_ms)
{
    struct agent_peer_server_options opts = {.listen = "127.0.0.1:0",
                                             .header_timeout_ms = header_timeout_ms};
    struct agent_peer_server *s = NULL;
    struct gy_error err;
    if (agent_peer_server_start(&n->p, &opts, &s, &err) < 0)
        fail_msg("%s", err.msg);
    return s;
}

static int fetch(struct node *client, struct agent_peer_server *s, const char *repo,
                 const struct blob *b, const char *path, struct gy_error *err)
{
    struct agent_image_peer peer;
    snprintf(peer.node, sizeof(peer.node), "server");
    snprintf(peer.address, sizeof(peer.address), "%s", agent_peer_server_address(s));
    struct agent_descriptor d = {.size = (int64_t)b->len};
    snprintf(d.digest, sizeof(d.digest), "%s", b->digest);
    struct agent_peer_client *c;
    assert_int_equal(agent_peer_client_new(NULL, &c, err), 0);
    (void)client;
    int rc = agent_peer_blob_fetch(c, &peer, repo, &d, path, err);
    agent_peer_client_free(c);
    return rc;
}

static bool file_is(const char *path, const struct blob *b)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char *buf = malloc(b->len + 1);
    size_t n = fread(buf, 1, b->len + 1, f);
    fclose(f);
    bool same = n == b->len && memcmp(buf, b->data, b->len) == 0;
    free(buf);
    return same;
}

static void test_serve_and_refuse(void **state)
{
    struct node *n = *state;
    struct gy_error err;
    struct blob b;
    blob_make(&b, 3 * 1024 * 1024 + 17, 1);
    assert_int_equal(oci_store_blob_write(n->p.store, b.data, b.len, b.digest, NULL, &err), 0);
    struct agent_peer_server *s = server_start(n, 500);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/fetched", n->dir);
    if (fetch(n, s, "127.0.0.1:5000/test/app", &b, path, &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(file_is(path, &b));

    /* A blob the store lacks, asked without repo and size: nothing to fetch it from. */
    struct blob missing;
    blob_make(&missing, 1000, 2);
    assert_int_equal(fetch(n, s, "", &missing, path, &err), -GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "404"));
    assert_int_equal(access(path, F_OK), -1);

    /* A damaged copy: refused, named, and nothing of it kept. */
    char stored[PATH_MAX];
    assert_int_equal(oci_store_blob_path(n->p.store, b.digest, stored, sizeof(stored), &err), 0);
    chmod(stored, 0644);
    int fd = open(stored, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 1000), 1);
    close(fd);
    assert_int_equal(fetch(n, s, "127.0.0.1:5000/test/app", &b, path, &err), -GY_EPROTO);
    assert_non_null(strstr(err.msg, b.digest));
    assert_non_null(strstr(err.msg, "peer server"));
    assert_non_null(strstr(err.msg, "not used"));
    assert_int_equal(access(path, F_OK), -1);

    /* Requests refused before anything is read. */
    char cmd[512];
    const char *addr = agent_peer_server_address(s);
    struct {
        const char *target;
        const char *status;
    } bad[] = {
        {"/v1/blobs/sha256:ABAB", "400"},
        {"/v1/blobs/sha256:../../../etc/passwd", "400"},
        {"/v1/blobs/md5:0123", "400"},
        {"/v2/", "404"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd),
                 "curl -s -o /dev/null -w '%%{http_code}' --path-as-is 'http://%s%s'", addr,
                 bad[i].target);
        FILE *p = popen(cmd, "r");
        char out[16] = "";
        assert_non_null(fgets(out, sizeof(out), p));
        pclose(p);
        assert_string_equal(out, bad[i].status);
    }
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null -w '%%{http_code}' 'http://%s/v1/blobs/%s?repo=Bad/Repo&size=1'",
             addr, missing.digest);
    FILE *p = popen(cmd, "r");
    char out[16] = "";
    assert_non_null(fgets(out, sizeof(out), p));
    pclose(p);
    assert_string_equal(out, "400");

    /* A head over 8 KiB, and a client that sends nothing. */
    int port = atoi(strrchr(addr, ':') + 1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char big[9000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /v1/blobs/x HTTP/1.1\r\nX: ", 29);
    assert_true(write(sock, big, sizeof(big)) > 0);
    char answer[256] = "";
    assert_true(read(sock, answer, sizeof(answer) - 1) > 0);
    assert_non_null(strstr(answer, "431"));
    close(sock);
    sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    memset(answer, 0, sizeof(answer));
    /* The header timeout is 500 ms; the server's timer looks every second. */
    struct timeval tv = {5, 0};
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_true(read(sock, answer, sizeof(answer) - 1) > 0);
    assert_non_null(strstr(answer, "408"));
    close(sock);

    agent_peer_server_stop(s);
    free(b.data);
    free(missing.data);
}

/* A stand-in registry: serves one blob at /v2/test/app/blobs/DIGEST over plain HTTP, the
 * first half at once and the rest after a pause, and counts the blob requests. */
struct registry {
    int listener;
    int port;
    const struct blob *blob;
    atomic_int requests;
    atomic_bool stop;
    pthread_t thread;
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *registry_run(void *arg)
{
    struct registry *r = arg;
    while (!atomic_load(&r->stop)) {
        int c = accept(r->listener, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        size_t got = 0;
        while (got < sizeof(req) - 1) {
            ssize_t k = read(c, req + got, sizeof(req) - 1 - got);
            if (k <= 0)
                break;
            got += (size_t)k;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[got] = '\0';
        char want[256];
        snprintf(want, sizeof(want), "GET /v2/test/app/blobs/%s ", r->blob->digest);
        if (strncmp(req, want, strlen(want)) != 0) {
            static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
            write_all(c, nf, sizeof(nf) - 1);
            close(c);
            continue;
        }
        atomic_fetch_add(&r->requests, 1);
        char head[256];
        int hn = snprintf(head, sizeof(head),
                          "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                          r->blob->len);
        write_all(c, head, (size_t)hn);
        size_t half = r->blob->len / 2;
        write_all(c, r->blob->data, half);
        sleep_ms(400);
        write_all(c, r->blob->data + half, r->blob->len - half);
        close(c);
    }
    return NULL;
}

static void registry_start(struct registry *r, const struct blob *b)
{
    r->blob = b;
    r->listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(r->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    getsockname(r->listener, (struct sockaddr *)&sa, &len);
    r->port = ntohs(sa.sin_port);
    assert_int_equal(listen(r->listener, 8), 0);
    struct timeval tv = {0, 200000};
    setsockopt(r->listener, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(pthread_create(&r->thread, NULL, registry_run, r), 0);
}

static void registry_stop(struct registry *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    close(r->listener);
}

struct peer_fetch_arg {
    struct node *n;
    struct agent_peer_server *s;
    const char *repo;
    const struct blob *b;
    char path[PATH_MAX];
    int rc;
    struct gy_error err;
};

static void *peer_fetch_run(void *arg)
{
    struct peer_fetch_arg *a = arg;
    a->rc = fetch(a->n, a->s, a->repo, a->b, a->path, &a->err);
    return NULL;
}

static void test_pull_through(void **state)
{
    struct node *n = *state;
    struct blob b;
    blob_make(&b, 5 * 1024 * 1024 + 3, 3);
    struct registry reg = {0};
    registry_start(&reg, &b);
    char config[256], repo[128];
    snprintf(config, sizeof(config), "{\"registries\":{\"127.0.0.1:%d\":{\"insecure\":true}}}",
             reg.port);
    snprintf(repo, sizeof(repo), "127.0.0.1:%d/test/app", reg.port);
    struct gy_error err;
    assert_int_equal(
        agent_registry_config_parse(config, strlen(config), "test", &n->p.registries, &err), 0);
    struct agent_peer_server *s = server_start(n, 0);

    /* Two peers at once: one download from the registry, both served as it arrives. */
    struct peer_fetch_arg args[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i] = (struct peer_fetch_arg){.n = n, .s = s, .repo = repo, .b = &b};
        snprintf(args[i].path, sizeof(args[i].path), "%s/peer%d", n->dir, i);
        assert_int_equal(pthread_create(&threads[i], NULL, peer_fetch_run, &args[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        if (args[i].rc < 0)
            fail_msg("peer %d: %s", i, args[i].err.msg);
        assert_true(file_is(args[i].path, &b));
    }
    assert_int_equal(atomic_load(&reg.requests), 1);
    assert_true(oci_store_blob_has(n->p.store, b.digest));

    /* A blob the registry does not have: the peer hears why. */
    struct blob other;
    blob_make(&other, 4096, 4);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/other", n->dir);
    assert_true(fetch(n, s, repo, &other, path, &err) < 0);
    assert_non_null(strstr(err.msg, "502"));
    assert_non_null(strstr(err.msg, "404"));
    assert_int_equal(access(path, F_OK), -1);

    agent_peer_server_stop(s);
    registry_stop(&reg);
    free(b.data);
    free(other.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_pinned),
        cmocka_unit_test(test_rank_agreed),
        cmocka_unit_test(test_rank_balanced_and_stable),
        cmocka_unit_test(test_address_valid),
        cmocka_unit_test_setup_teardown(test_slots, node_setup, node_teardown),
        cmocka_unit_test_setup_teardown(test_flights, node_setup, node_teardown),
        cmocka_unit_test_setup_teardown(test_serve_and_refuse, node_setup, node_teardown),
        cmocka_unit_test_setup_teardown(test_pull_through, node_setup, node_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
