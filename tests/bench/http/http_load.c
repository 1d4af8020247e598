/* A small HTTP/1.1 load generator for loopback benchmarks: C client threads, each sending
 * GET requests one after another for a fixed time (over one keep-alive connection, or a new
 * connection per request with --close), then prints requests per second and latency
 * percentiles. */
#include <arpa/inet.h>
#include <errno.h>
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

#define MAX_SAMPLES (1u << 22)

struct worker {
    pthread_t thread;
    const char *host;
    int port;
    const char *path;
    bool close_each;
    double seconds;
    uint64_t done;
    uint64_t errors;
    uint32_t *lat_us; /* one sample per request, up to MAX_SAMPLES */
    size_t n_lat;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int dial(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one answer: headers, then Content-Length bytes of body, or up to the close when the
 * answer has no length. Returns false on an error or an early close. */
static bool read_answer(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (end == NULL) {
        if (len == cap)
            return false;
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len < cap ? len : cap - 1] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (strncmp(buf, "HTTP/1.", 7) != 0 || buf[9] != '2')
        return false;
    size_t head = (size_t)(end - buf) + 4;
    long want = -1;
    for (char *line = strstr(buf, "\r\n"); line != NULL && line < end;
         line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            want = strtol(line + 17, NULL, 10);
    if (want < 0) {
        char sink[4096];
        while (recv(fd, sink, sizeof(sink), 0) > 0)
            ;
        return true;
    }
    size_t have = len - head;
    while (have < (size_t)want) {
        char sink[4096];
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char req[512];
    int req_len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", w->path,
                           w->host, w->close_each ? "Connection: close\r\n" : "");
    static __thread char buf[65536];
    uint64_t stop = now_ns() + (uint64_t)(w->seconds * 1e9);
    int fd = -1;
    while (now_ns() < stop) {
        uint64_t t0 = now_ns();
        if (fd < 0)
            fd = dial(w->host, w->port);
        bool ok = fd >= 0 && send(fd, req, (size_t)req_len, MSG_NOSIGNAL) == req_len &&
                  read_answer(fd, buf, sizeof(buf) - 1);
        if (!ok || w->close_each) {
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        if (!ok) {
            w->errors++;
            if (w->errors > 1000)
                break;
            continue;
        }
        w->done++;
        if (w->n_lat < MAX_SAMPLES)
            w->lat_us[w->n_lat++] = (uint32_t)((now_ns() - t0) / 1000);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int conns = 4;
    double seconds = 3;
    bool close_each = false;
    const char *label = "server";
    int opt;
    while ((opt = getopt(argc, argv, "c:d:kl:")) != -1) {
        switch (opt) {
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'k':
            close_each = true;
            break;
        case 'l':
            label = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind != 3 || conns < 1 || conns > 256 || seconds <= 0)
        goto usage;
    struct worker *ws = calloc((size_t)conns, sizeof(*ws));
    for (int i = 0; i < conns; i++) {
        ws[i] = (struct worker){.host = argv[optind],
                                .port = atoi(argv[optind + 1]),
                                .path = argv[optind + 2],
                                .close_each = close_each,
                                .seconds = seconds};
        ws[i].lat_us = malloc(MAX_SAMPLES / (size_t)conns * sizeof(uint32_t) + 4);
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    uint64_t done = 0, errors = 0;
    size_t n = 0;
    uint32_t *all = malloc(MAX_SAMPLES * sizeof(uint32_t) + 4);
    for (int i = 0; i < conns; i++) {
        pthread_join(ws[i].thread, NULL);
        done += ws[i].done;
        errors += ws[i].errors;
        for (size_t j = 0; j < ws[i].n_lat && n < MAX_SAMPLES; j++)
            all[n++] = ws[i].lat_us[j];
        free(ws[i].lat_us);
    }
    qsort(all, n, sizeof(*all), cmp_u32);
    printf("%-28s %10.0f req/s   p50 %6u us   p99 %6u us   errors %llu\n", label,
           (double)done / seconds, n ? all[n / 2] : 0, n ? all[n * 99 / 100] : 0,
           (unsigned long long)errors);
    free(all);
    free(ws);
    return 0;
usage:
    fprintf(stderr, "usage: http_load [-c CONNS] [-d SECONDS] [-k] [-l LABEL] HOST PORT PATH\n"
                    "  -k  a new connection per request (Connection: close)\n");
    return 2;
}
