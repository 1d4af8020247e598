/* A small HTTP/1.1 load generator for the control-plane benchmark: N clients, each on its
 * own keep-alive connection, send ~1 KiB writes (a gantry workload apply or an etcd JSON
 * gateway put) one after another and record each latency. The same program drives both
 * systems so the client side costs the same.
 *
 *   loadgen --mode gantry|etcd --target HOST:PORT[,HOST:PORT...] --clients N --requests N
 *   loadgen --mode gantry|etcd --target ... --probe MS   first success after now; prints the
 *                                                        wall clock in ns when it came
 *   --timeline FILE   also writes each successful write's completion time (ns since the
 *                     start, one per line), to find stalls */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VALUE_BYTES 1024

enum mode { MODE_GANTRY, MODE_ETCD };

struct target {
    char host[64];
    int port;
};

static enum mode mode = MODE_GANTRY;
static struct target targets[16];
static int n_targets;
static int n_clients = 1;
static long n_requests = 1000;
static long next_request;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static double *latencies;
static uint64_t *completions;
static uint64_t started_ns;
static long n_latencies;
static long errors;
static char value_b64[2048];
static char run_id[32];

static uint64_t now_ns(int clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void b64(const unsigned char *in, size_t len, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < len ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

static int connect_to(const struct target *t)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    inet_pton(AF_INET, t->host, &sa.sin_addr);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Builds one request of about 1 KiB of payload. */
static int build_request(const struct target *t, long id, char *buf, size_t len)
{
    char body[4096];
    if (mode == MODE_GANTRY) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"bench-%s-%ld\",\"image\":\"busybox\",\"replicas\":1,"
                 "\"command\":[\"httpd\",\"-f\",\"-p\",\"8080\"],\"env\":{\"PAYLOAD\":\"%.*s\"}}",
                 run_id, id, VALUE_BYTES - 120, value_b64);
        return snprintf(buf, len,
                        "POST /v1/apply HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json"
                        "\r\nContent-Length: %zu\r\n\r\n%s",
                        t->host, t->port, strlen(body), body);
    }
    char key[64], key64[128];
    snprintf(key, sizeof(key), "bench/%s/%ld", run_id, id);
    b64((const unsigned char *)key, strlen(key), key64);
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%.*s\"}", key64,
             (VALUE_BYTES / 3) * 4, value_b64);
    return snprintf(buf, len,
                    "POST /v3/kv/put HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s",
                    t->host, t->port, strlen(body), body);
}

/* Reads one answer; returns the status code, or -1 when the connection failed. */
static int read_answer(int fd)
{
    char buf[65536];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        int status = atoi(buf + 9);
        size_t header_len = (size_t)(end + 4 - buf);
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl != NULL && cl < end) {
            size_t body = strtoul(cl + 17, NULL, 10);
            while (have < header_len + body) {
                n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
                if (n <= 0)
                    return -1;
                have += (size_t)n;
            }
            return status;
        }
        /* Chunked: read until the last chunk. */
        while (strstr(buf + header_len, "0\r\n\r\n") == NULL) {
            if (have >= sizeof(buf) - 1)
                return -1;
            n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
            if (n <= 0)
                return -1;
            have += (size_t)n;
            buf[have] = '\0';
        }
        return status;
    }
}

static bool send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void *client(void *arg)
{
    long index = (long)arg;
    const struct target *t = &targets[index % n_targets];
    int fd = connect_to(t);
    char req[8192];
    for (;;) {
        pthread_mutex_lock(&lock);
        long id = next_request < n_requests ? next_request++ : -1;
        pthread_mutex_unlock(&lock);
        if (id < 0)
            break;
        int len = build_request(t, id, req, sizeof(req));
        uint64_t start = now_ns(CLOCK_MONOTONIC);
        int status = -1;
        if (fd >= 0 && send_all(fd, req, (size_t)len))
            status = read_answer(fd);
        double ms = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e6;
        pthread_mutex_lock(&lock);
        if (status == 200) {
            completions[n_latencies] = now_ns(CLOCK_MONOTONIC) - started_ns;
            latencies[n_latencies++] = ms;
        } else
            errors++;
        pthread_mutex_unlock(&lock);
        if (status != 200) {
            if (fd >= 0)
                close(fd);
            fd = connect_to(t);
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Writes to every target in turn until one answers 200; prints the wall clock then. */
static int probe(long timeout_ms)
{
    uint64_t deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ull;
    char req[8192];
    for (long id = 0; now_ns(CLOCK_MONOTONIC) < deadline; id++) {
        const struct target *t = &targets[id % n_targets];
        int fd = connect_to(t);
        if (fd >= 0) {
            struct timeval tv = {.tv_sec = 2};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            int len = build_request(t, id, req, sizeof(req));
            int status = send_all(fd, req, (size_t)len) ? read_answer(fd) : -1;
            close(fd);
            if (status == 200) {
                printf("%llu\n", (unsigned long long)now_ns(CLOCK_REALTIME));
                return 0;
            }
        }
        usleep(5000);
    }
    fprintf(stderr, "loadgen: no successful write within %ld ms\n", timeout_ms);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"mode", required_argument, NULL, 'm'},     {"target", required_argument, NULL, 't'},
        {"clients", required_argument, NULL, 'c'},  {"requests", required_argument, NULL, 'n'},
        {"probe", required_argument, NULL, 'p'},    {"id", required_argument, NULL, 'i'},
        {"timeline", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0},
    };
    long probe_ms = 0;
    const char *timeline = NULL;
    snprintf(run_id, sizeof(run_id), "%ld", (long)getpid());
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'm':
            mode = strcmp(optarg, "etcd") == 0 ? MODE_ETCD : MODE_GANTRY;
            break;
        case 't': {
            char *copy = strdup(optarg), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok && n_targets < 16;
                 tok = strtok_r(NULL, ",", &save)) {
                char *colon = strrchr(tok, ':');
                if (colon == NULL)
                    return 2;
                snprintf(targets[n_targets].host, sizeof(targets[0].host), "%.*s",
                         (int)(colon - tok), tok);
                targets[n_targets++].port = atoi(colon + 1);
            }
            free(copy);
            break;
        }
        case 'c':
            n_clients = atoi(optarg);
            break;
        case 'n':
            n_requests = atol(optarg);
            break;
        case 'p':
            probe_ms = atol(optarg);
            break;
        case 'i':
            snprintf(run_id, sizeof(run_id), "%s", optarg);
            break;
        case 'T':
            timeline = optarg;
            break;
        default:
            return 2;
        }
    }
    if (n_targets == 0 || n_clients <= 0 || n_requests <= 0) {
        fprintf(stderr, "usage: loadgen --mode gantry|etcd --target HOST:PORT[,...] "
                        "[--clients N] [--requests N] [--probe MS]\n");
        return 2;
    }
    unsigned char raw[VALUE_BYTES];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 131 + 7);
    b64(raw, sizeof(raw), value_b64);
    if (probe_ms > 0)
        return probe(probe_ms);

    latencies = calloc((size_t)n_requests, sizeof(double));
    completions = calloc((size_t)n_requests, sizeof(uint64_t));
    pthread_t *threads = calloc((size_t)n_clients, sizeof(pthread_t));
    uint64_t start = now_ns(CLOCK_MONOTONIC);
    started_ns = start;
    for (long i = 0; i < n_clients; i++)
        pthread_create(&threads[i], NULL, client, (void *)i);
    for (long i = 0; i < n_clients; i++)
        pthread_join(threads[i], NULL);
    double seconds = (double)(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
    qsort(latencies, (size_t)n_latencies, sizeof(double), cmp_double);
    double p50 = n_latencies ? latencies[n_latencies / 2] : 0;
    double p99 = n_latencies ? latencies[(long)((double)n_latencies * 0.99)] : 0;
    /* One machine-readable line: ok errors seconds throughput p50_ms p99_ms */
    printf("%ld %ld %.3f %.0f %.3f %.3f\n", n_latencies, errors, seconds,
           (double)n_latencies / seconds, p50, p99);
    FILE *out = timeline != NULL ? fopen(timeline, "w") : NULL;
    for (long i = 0; out != NULL && i < n_latencies; i++)
        fprintf(out, "%llu\n", (unsigned long long)completions[i]);
    if (out != NULL)
        fclose(out);
    free(completions);
    free(latencies);
    free(threads);
    return errors > 0 ? 1 : 0;
}
