/* The layer server; see peer_server.h. One request per connection (the answer ends with
 * the connection), which keeps the parser to a request line and a bounded head. A blob is
 * read from its file in 256 KiB chunks, one write in flight per connection. A blob the
 * store lacks is downloaded by a thread of the server's (pull-internal.h: one download of
 * a blob per process, within the node's slots for peers) while the connection follows the
 * download's partial file as it grows, so a peer gets its first bytes as soon as the
 * registry sends them; the peer checks the digest of what it got in any case. */
#include "agent/peer_server.h"
#include "agent/pull-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "common/log.h"
#include "common/xalloc.h"

#define DEFAULT_MAX_CONNECTIONS   64
#define DEFAULT_HEADER_TIMEOUT_MS 10000
#define DEFAULT_IDLE_TIMEOUT_MS   30000
#define HEAD_MAX                  8192
#define CHUNK                     (256 * 1024)
/* How often a connection that follows a download looks at its file. */
#define FOLLOW_MS 50

/* A blob downloaded from the registry for peers, by a thread of the server's. */
struct pull_through {
    struct pull_through *next;
    struct agent_peer_server *s;
    struct gy_image_ref ref;
    struct agent_descriptor blob;
    pthread_t thread;
    bool started;
    atomic_bool done;
    /* Set by the thread before done. */
    bool ok;
    struct gy_error err;
    int refs; /* connections that follow it (loop thread) */
};

enum conn_state {
    CONN_HEAD,   /* reading the request's head */
    CONN_SEND,   /* sending a blob of the store */
    CONN_FOLLOW, /* sending a blob as its download brings it */
    CONN_FINISH, /* sending a short answer, then closing */
    CONN_CLOSED,
};

struct conn {
    struct agent_peer_server *s;
    struct conn *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int open_handles;
    enum conn_state state;
    char head[HEAD_MAX + 1];
    size_t head_len;
    char digest[OCI_DIGEST_BUF];
    int fd;
    int64_t offset, size;
    bool headers_sent;
    bool writing;
    uv_write_t wreq;
    char *buf;
    uint64_t moved_at; /* loop time of the last byte sent or read */
    struct pull_through *pull;
};

struct agent_peer_server {
    struct agent_puller *p;
    struct agent_peer_server_options opts;
    char address[AGENT_PEER_ADDRESS_MAX + 1];
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake; /* a download ended, or the server stops */
    pthread_t thread;
    atomic_bool stopping;
    pthread_mutex_t mu; /* wake_closed, against threads that wake the loop late */
    bool wake_closed;
    struct conn *conns;
    int n_conns;
    struct pull_through *pulls;
};

/* ---------------------------------------------------------------------------------------
 * Downloads for peers */

static void server_wake(struct agent_peer_server *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->wake_closed)
        uv_async_send(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

static void *pull_through_run(void *arg)
{
    struct pull_through *pt = arg;
    struct agent_peer_server *s = pt->s;
    struct agent_puller *p = s->p;
    char name[GY_IMAGE_REF_MAX + 32];
    gy_image_ref_name(&pt->ref, name, sizeof(name));
    struct gy_error err;
    int rc = 0;
    int64_t fetched = 0;
    /* The blob first, then a slot: a download of the blob under way (this node's own pull
     * of it, say) is waited for without a slot, and every slot for peers is held by a
     * download from the registry, which needs nothing else to finish. */
    int owner = agent_pull_flight_begin(p, pt->blob.digest, &s->stopping);
    if (owner < 0) {
        rc = gy_error_set(&err, GY_EUNAVAILABLE, "the layer server is stopping");
    } else if (owner == 1) {
        if (!agent_pull_slot_take(p, AGENT_SLOTS_PEERS, &s->stopping)) {
            rc = gy_error_set(&err, GY_EUNAVAILABLE, "the layer server is stopping");
        } else {
            struct agent_registry_options opts = {
                .config = &p->registries,
                .auth = p->auth,
                .tokens = p->tokens,
                .cancel = &s->stopping,
            };
            struct agent_registry *reg = NULL;
            if ((rc = agent_registry_new(&opts, &reg, &err)) == 0)
                rc = agent_pull_blob_registry(p, reg, &pt->ref, &pt->blob, &fetched, &err);
            agent_registry_free(reg);
            agent_pull_slot_give(p, AGENT_SLOTS_PEERS);
            if (rc == 0)
                gy_log_info("blob pulled for peers", "blob=%s repo=%s bytes_registry=%" PRId64,
                            pt->blob.digest, name, fetched);
            else
                gy_log_warn("blob for peers not pulled", "blob=%s repo=%s error=\"%s\"",
                            pt->blob.digest, name, err.msg);
        }
        agent_pull_flight_end(p, pt->blob.digest);
    }
    pt->ok = rc == 0;
    if (rc < 0)
        pt->err = err;
    atomic_store(&pt->done, true);
    server_wake(s);
    return NULL;
}

/* The download of digest for peers: one already under way, or a new one. NULL when no
 * thread can be started. */
static struct pull_through *pull_through_get(struct agent_peer_server *s, const char *digest,
                                             const struct gy_image_ref *ref, int64_t size)
{
    for (struct pull_through *pt = s->pulls; pt != NULL; pt = pt->next)
        if (strcmp(pt->blob.digest, digest) == 0 && !atomic_load(&pt->done)) {
            pt->refs++;
            return pt;
        }
    struct pull_through *pt = gy_xcalloc(1, sizeof(*pt));
    pt->s = s;
    pt->ref = *ref;
    snprintf(pt->blob.digest, sizeof(pt->blob.digest), "%s", digest);
    snprintf(pt->blob.media_type, sizeof(pt->blob.media_type), "application/octet-stream");
    pt->blob.size = size;
    atomic_init(&pt->done, false);
    if (pthread_create(&pt->thread, NULL, pull_through_run, pt) != 0) {
        free(pt);
        return NULL;
    }
    pt->started = true;
    pt->refs = 1;
    pt->next = s->pulls;
    s->pulls = pt;
    return pt;
}

/* Frees the downloads that ended and that no connection follows. */
static void pull_through_reap(struct agent_peer_server *s, bool all)
{
    for (struct pull_through **pp = &s->pulls; *pp != NULL;) {
        struct pull_through *pt = *pp;
        if (!all && (pt->refs > 0 || !atomic_load(&pt->done))) {
            pp = &pt->next;
            continue;
        }
        *pp = pt->next;
        if (pt->started)
            pthread_join(pt->thread, NULL);
        free(pt);
    }
}

/* ---------------------------------------------------------------------------------------
 * Connections */

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    free(c->buf);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    struct agent_peer_server *s = c->s;
    c->state = CONN_CLOSED;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->pull != NULL) {
        c->pull->refs--;
        c->pull = NULL;
        pull_through_reap(s, false);
    }
    for (struct conn **pc = &s->conns; *pc != NULL; pc = &(*pc)->next)
        if (*pc == c) {
            *pc = c->next;
            s->n_conns--;
            break;
        }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    struct conn *c = req->data;
    free(req);
    conn_close(c);
}

/* Ends the answer: the client sees the end of the stream after everything written. */
static void conn_finish(struct conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_FINISH;
    uv_shutdown_t *req = gy_xmalloc(sizeof(*req));
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        free(req);
        conn_close(c);
    }
}

static void conn_pump(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = false;
    if (c->state == CONN_CLOSED)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->moved_at = uv_now(&c->s->loop);
    if (c->state == CONN_FINISH)
        conn_finish(c);
    else
        conn_pump(c);
}

/* Writes len bytes of c->buf. */
static void conn_write(struct conn *c, size_t len)
{
    uv_buf_t b = uv_buf_init(c->buf, (unsigned)len);
    c->wreq.data = c;
    c->writing = true;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        c->writing = false;
        conn_close(c);
    }
}

/* Answers with a status and a one-line reason, then closes. */
static void conn_error(struct conn *c, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_error(struct conn *c, int status, const char *reason, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gy_log_debug("layer server refused a request", "status=%d reason=\"%s\"", status, msg);
    if (c->buf == NULL)
        c->buf = gy_xmalloc(CHUNK);
    int n = snprintf(c->buf, CHUNK,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason, strlen(msg) + 1, msg);
    c->state = CONN_FINISH;
    conn_write(c, (size_t)n);
}

static size_t conn_headers(struct conn *c)
{
    return (size_t)snprintf(c->buf, CHUNK,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                            "Content-Length: %" PRId64 "\r\nDocker-Content-Digest: %s\r\n"
                            "Connection: close\r\n\r\n",
                            c->size, c->digest);
}

/* Opens the blob, or the partial file of its download; false when neither is there. */
static bool follow_open(struct conn *c)
{
    struct oci_store *store = c->s->p->store;
    char path[PATH_MAX];
    if (oci_store_blob_has(store, c->digest) &&
        oci_store_blob_path(store, c->digest, path, sizeof(path), NULL) == 0 &&
        (c->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
        return true;
    if (oci_store_ingest_path(store, c->digest, path, sizeof(path), NULL) == 0 &&
        (c->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
        return true;
    return false;
}

/* Sends what comes next: headers, then the blob from c->offset. In CONN_FOLLOW it waits
 * (for the timer) when the download has brought nothing new. */
static void conn_pump(struct conn *c)
{
    if (c->writing || c->state == CONN_CLOSED || c->state == CONN_FINISH)
        return;
    struct agent_peer_server *s = c->s;
    if (c->offset >= c->size && c->headers_sent) {
        gy_log_debug("layer server sent a blob", "blob=%s bytes=%" PRId64, c->digest, c->size);
        conn_finish(c);
        return;
    }
    if (c->state == CONN_FOLLOW && c->fd < 0 && !follow_open(c)) {
        if (atomic_load(&c->pull->done) && !oci_store_blob_has(s->p->store, c->digest))
            conn_error(c, 502, "Bad Gateway", "blob %s: %s", c->digest, c->pull->err.msg);
        return;
    }
    if (c->state == CONN_FOLLOW) {
        struct stat st;
        if (fstat(c->fd, &st) < 0 || st.st_size < c->offset || st.st_nlink == 0) {
            /* Truncated or replaced under this connection: what was sent may not be the
             * blob (the peer's check would refuse it), or nothing was: open it again. */
            close(c->fd);
            c->fd = -1;
            if (c->offset > 0)
                conn_close(c);
            return;
        }
        if (st.st_size == c->offset) {
            bool done = atomic_load(&c->pull->done);
            if (done && !oci_store_blob_has(s->p->store, c->digest)) {
                if (!c->headers_sent)
                    conn_error(c, 502, "Bad Gateway", "blob %s: %s", c->digest, c->pull->err.msg);
                else
                    conn_close(c);
                return;
            }
            if (done) {
                /* Committed: the blob's own file from now on (the partial one was renamed,
                 * or was another's). */
                close(c->fd);
                c->fd = -1;
                c->state = CONN_SEND;
                char path[PATH_MAX];
                if (oci_store_blob_path(s->p->store, c->digest, path, sizeof(path), NULL) < 0 ||
                    (c->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
                    conn_close(c);
                    return;
                }
            } else if (c->headers_sent || st.st_size == 0) {
                return;
            }
        }
    }
    size_t off = 0;
    if (!c->headers_sent) {
        off = conn_headers(c);
        c->headers_sent = true;
    }
    int64_t want = c->size - c->offset;
    if (want > (int64_t)(CHUNK - off))
        want = (int64_t)(CHUNK - off);
    ssize_t n = 0;
    while (want > 0 && (n = pread(c->fd, c->buf + off, (size_t)want, c->offset)) < 0 &&
           errno == EINTR)
        ;
    if (n < 0) {
        gy_log_warn("layer server cannot read a blob", "blob=%s error=\"%s\"", c->digest,
                    strerror(errno));
        conn_close(c);
        return;
    }
    if (n == 0 && want > 0 && c->state == CONN_SEND) {
        /* The file is shorter than the blob: the store is damaged. */
        conn_close(c);
        return;
    }
    c->offset += n;
    if (off + (size_t)n > 0)
        conn_write(c, off + (size_t)n);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct agent_peer_server *s = c->s;
    uint64_t now = uv_now(&s->loop);
    if (c->state == CONN_HEAD && now - c->moved_at >= (uint64_t)s->opts.header_timeout_ms) {
        conn_error(c, 408, "Request Timeout", "the request's head took longer than %d ms",
                   s->opts.header_timeout_ms);
        return;
    }
    if (c->state != CONN_HEAD && now - c->moved_at >= (uint64_t)s->opts.idle_timeout_ms) {
        gy_log_warn("layer server dropped a connection that moved nothing",
                    "blob=%s sent=%" PRId64 " of=%" PRId64 " idle_ms=%" PRIu64, c->digest,
                    c->offset, c->size, now - c->moved_at);
        conn_close(c);
        return;
    }
    if (c->state == CONN_FOLLOW)
        conn_pump(c);
}

/* Decodes %XX escapes of a query value into out; false when it does not fit or is
 * malformed. */
static bool query_decode(const char *v, size_t n, char *out, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return false;
            char hex[3] = {v[i + 1], v[i + 2], 0};
            char *end;
            long x = strtol(hex, &end, 16);
            if (*end != '\0' || x <= 0)
                return false;
            ch = (char)x;
            i += 2;
        }
        if (k + 1 >= len)
            return false;
        out[k++] = ch;
    }
    out[k] = '\0';
    return true;
}

/* The request's head is in: checks it and starts the answer. */
static void conn_request(struct conn *c)
{
    struct agent_peer_server *s = c->s;
    struct agent_puller *p = s->p;
    c->buf = gy_xmalloc(CHUNK);
    char *line_end = strstr(c->head, "\r\n");
    *line_end = '\0';
    const char *line = c->head;
    if (strncmp(line, "GET ", 4) != 0) {
        conn_error(c, 405, "Method Not Allowed", "only GET is served");
        return;
    }
    const char *target = line + 4, *sp = strchr(target, ' ');
    if (sp == NULL || strncmp(sp + 1, "HTTP/1.", 7) != 0) {
        conn_error(c, 400, "Bad Request", "not an HTTP/1.x request line");
        return;
    }
    static const char prefix[] = "/v1/blobs/";
    if (strncmp(target, prefix, sizeof(prefix) - 1) != 0) {
        conn_error(c, 404, "Not Found", "only /v1/blobs/DIGEST is served");
        return;
    }
    const char *dg = target + sizeof(prefix) - 1, *q = memchr(dg, '?', (size_t)(sp - dg));
    const char *dg_end = q != NULL ? q : sp;
    if ((size_t)(dg_end - dg) != OCI_DIGEST_LEN) {
        conn_error(c, 400, "Bad Request", "the digest is not sha256: and 64 lower-case hex digits");
        return;
    }
    memcpy(c->digest, dg, OCI_DIGEST_LEN);
    c->digest[OCI_DIGEST_LEN] = '\0';
    if (!gy_image_digest_valid(c->digest)) {
        c->digest[0] = '\0';
        conn_error(c, 400, "Bad Request", "the digest is not sha256: and 64 lower-case hex digits");
        return;
    }
    char repo[GY_IMAGE_NAME_MAX + 1] = "";
    int64_t size = -1;
    for (const char *kv = q != NULL ? q + 1 : sp; kv < sp;) {
        const char *amp = memchr(kv, '&', (size_t)(sp - kv)), *end = amp != NULL ? amp : sp;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (eq != NULL && eq - kv == 4 && strncmp(kv, "repo", 4) == 0) {
            if (!query_decode(eq + 1, (size_t)(end - eq - 1), repo, sizeof(repo))) {
                conn_error(c, 400, "Bad Request", "repo is not a repository name");
                return;
            }
        } else if (eq != NULL && eq - kv == 4 && strncmp(kv, "size", 4) == 0) {
            size = 0;
            const char *d = eq + 1;
            for (; d < end && *d >= '0' && *d <= '9' && size <= INT64_MAX / 16; d++)
                size = size * 10 + (*d - '0');
            if (d != end || d == eq + 1 ||
                size > oci_store_get_options(p->store)->max_layer_bytes) {
                conn_error(c, 400, "Bad Request", "size is not a number of bytes up to %" PRId64,
                           oci_store_get_options(p->store)->max_layer_bytes);
                return;
            }
        }
        kv = end + 1;
    }
    struct gy_image_ref ref;
    char normal[GY_IMAGE_REF_MAX + 32];
    struct gy_error err;
    if (repo[0] != '\0' &&
        (gy_image_ref_parse(repo, &ref, &err) < 0 || ref.digest[0] != '\0' ||
         gy_image_ref_name(&ref, normal, sizeof(normal)) < 0 || strcmp(normal, repo) != 0)) {
        conn_error(c, 400, "Bad Request", "repo \"%.80s\" is not a normalised repository name",
                   repo);
        return;
    }
    char path[PATH_MAX];
    if (oci_store_blob_has(p->store, c->digest) &&
        oci_store_blob_path(p->store, c->digest, path, sizeof(path), NULL) == 0 &&
        (c->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        struct stat st;
        if (fstat(c->fd, &st) < 0 || (size >= 0 && st.st_size != size)) {
            conn_error(c, 409, "Conflict", "blob %s is %lld bytes here, not %" PRId64, c->digest,
                       (long long)st.st_size, size);
            return;
        }
        c->size = st.st_size;
        c->state = CONN_SEND;
        gy_log_debug("layer server sends a blob", "blob=%s bytes=%" PRId64, c->digest, c->size);
        conn_pump(c);
        return;
    }
    if (repo[0] == '\0' || size < 0) {
        conn_error(c, 404, "Not Found",
                   "blob %s is not in this node's store (give repo and size to have it fetched)",
                   c->digest);
        return;
    }
    c->pull = pull_through_get(s, c->digest, &ref, size);
    if (c->pull == NULL) {
        conn_error(c, 503, "Service Unavailable", "cannot start a download");
        return;
    }
    c->size = size;
    c->state = CONN_FOLLOW;
    gy_log_debug("layer server fetches a blob for a peer", "blob=%s repo=%s bytes=%" PRId64,
                 c->digest, repo, size);
    uv_timer_start(&c->timer, on_timer, FOLLOW_MS, FOLLOW_MS);
    conn_pump(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    *buf = uv_buf_init(c->head + c->head_len, (unsigned)(HEAD_MAX - c->head_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct conn *c = stream->data;
    if (c->state != CONN_HEAD)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->head_len += (size_t)nread;
    c->head[c->head_len] = '\0';
    c->moved_at = uv_now(&c->s->loop);
    if (strstr(c->head, "\r\n\r\n") != NULL) {
        uv_read_stop(stream);
        conn_request(c);
    } else if (c->head_len >= HEAD_MAX) {
        uv_read_stop(stream);
        conn_error(c, 431, "Request Header Fields Too Large", "the request's head is over %d bytes",
                   HEAD_MAX);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct agent_peer_server *s = listener->data;
    if (status < 0)
        return;
    struct conn *c = gy_xcalloc(1, sizeof(*c));
    c->s = s;
    c->fd = -1;
    c->state = CONN_HEAD;
    uv_tcp_init(&s->loop, &c->tcp);
    uv_timer_init(&s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    c->moved_at = uv_now(&s->loop);
    if (s->n_conns > s->opts.max_connections) {
        conn_error(c, 503, "Service Unavailable", "more than %d connections",
                   s->opts.max_connections);
        return;
    }
    uv_timer_start(&c->timer, on_timer, 1000, 1000);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---------------------------------------------------------------------------------------
 * The server's thread */

static void on_wake(uv_async_t *a)
{
    struct agent_peer_server *s = a->data;
    if (atomic_load(&s->stopping)) {
        while (s->conns != NULL)
            conn_close(s->conns);
        if (!uv_is_closing((uv_handle_t *)&s->listener))
            uv_close((uv_handle_t *)&s->listener, NULL);
        pthread_mutex_lock(&s->mu);
        s->wake_closed = true;
        pthread_mutex_unlock(&s->mu);
        uv_close((uv_handle_t *)&s->wake, NULL);
        return;
    }
    /* A download ended: the connections that follow it answer now. */
    for (struct conn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_FOLLOW && atomic_load(&c->pull->done))
            conn_pump(c);
    }
    pull_through_reap(s, false);
}

static void *server_run(void *arg)
{
    struct agent_peer_server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int listen_addr(const char *text, struct sockaddr_storage *sa, struct gy_error *err)
{
    char host[AGENT_PEER_ADDRESS_MAX + 1];
    const char *colon = strrchr(text, ':');
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535 ||
        (size_t)(colon - text) >= sizeof(host))
        return gy_error_set(err, GY_EINVAL, "\"%.80s\" is not HOST:PORT", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    int rc;
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']')
            return gy_error_set(err, GY_EINVAL, "\"%.80s\" is not HOST:PORT", text);
        host[n - 1] = '\0';
        rc = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)sa);
    } else {
        rc = uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, (int)port,
                         (struct sockaddr_in *)sa);
    }
    if (rc < 0)
        return gy_error_set(err, GY_EINVAL, "\"%.80s\": the host must be an IP address", text);
    return 0;
}

int agent_peer_server_start(struct agent_puller *p, const struct agent_peer_server_options *opts,
                            struct agent_peer_server **out, struct gy_error *err)
{
    *out = NULL;
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    int rc = listen_addr(opts->listen, &sa, err);
    if (rc < 0)
        return gy_error_wrap(err, "listen for peers");
    struct agent_peer_server *s = gy_xcalloc(1, sizeof(*s));
    s->p = p;
    s->opts = *opts;
    if (s->opts.max_connections <= 0)
        s->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (s->opts.header_timeout_ms <= 0)
        s->opts.header_timeout_ms = DEFAULT_HEADER_TIMEOUT_MS;
    if (s->opts.idle_timeout_ms <= 0)
        s->opts.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    s->opts.listen = NULL;
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->mu, NULL);
    uv_loop_init(&s->loop);
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection)) < 0) {
        gy_error_set(err, rc == UV_EADDRINUSE ? GY_EEXISTS : GY_EIO, "listen for peers on %s: %s",
                     opts->listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -err->code;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    char ip[64] = "";
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof(ip));
        snprintf(s->address, sizeof(s->address), "[%s]:%u", ip,
                 ntohs(((struct sockaddr_in6 *)&bound)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof(ip));
        snprintf(s->address, sizeof(s->address), "%s:%u", ip,
                 ntohs(((struct sockaddr_in *)&bound)->sin_port));
    }
    uv_async_init(&s->loop, &s->wake, on_wake);
    s->wake.data = s;
    if (pthread_create(&s->thread, NULL, server_run, s) != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_close((uv_handle_t *)&s->wake, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return gy_error_set(err, GY_ESYS, "start the layer server's thread");
    }
    *out = s;
    return 0;
}

const char *agent_peer_server_address(const struct agent_peer_server *s)
{
    return s->address;
}

void agent_peer_server_stop(struct agent_peer_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    uv_async_send(&s->wake);
    pthread_join(s->thread, NULL);
    /* Its downloads see stopping (their waits and the registry's transfers look at it). */
    pull_through_reap(s, true);
    uv_loop_close(&s->loop);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
