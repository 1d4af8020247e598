/* Blobs from the layer servers of a node's peers; see peer_fetch.h. */
#include "agent/peer_fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/oci_store.h"
#include "common/xalloc.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 3000L
#define DEFAULT_LOW_SPEED_TIME_S   30L
#define LOW_SPEED_LIMIT            1024L
#define PROGRESS_STEP              (256 * 1024)
/* What is kept of an error answer: the server's one-line reason. */
#define ERROR_BODY_MAX 1024

/* ---------------------------------------------------------------------------------------
 * Addresses and ranking */

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

bool agent_peer_address_valid(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    const char *colon = len > 0 ? strrchr(s, ':') : NULL;
    if (colon == NULL || colon == s || len > AGENT_PEER_ADDRESS_MAX)
        return false;
    const char *port = colon + 1;
    size_t digits = strlen(port);
    if (digits == 0 || digits > 5 || port[0] == '0')
        return false;
    long v = 0;
    for (const char *c = port; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (*c - '0');
    }
    if (v > 65535)
        return false;
    if (s[0] == '[') {
        /* "[IPv6]": hex digits, colons and dots (an embedded IPv4) between the brackets. */
        if (colon[-1] != ']' || colon - s < 4)
            return false;
        for (const char *c = s + 1; c < colon - 1; c++)
            if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') ||
                  (*c >= 'A' && *c <= 'F') || *c == ':' || *c == '.'))
                return false;
        return true;
    }
    if (s[0] == '-' || s[0] == '.' || colon[-1] == '.' || colon[-1] == '-')
        return false;
    for (const char *c = s; c < colon; c++)
        if (!host_char(*c) || (*c == '.' && c[1] == '.'))
            return false;
    return true;
}

uint64_t agent_peer_score(const char *digest, const char *node)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        fputs("gantry: out of memory (SHA-256 context)\n", stderr);
        abort();
    }
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, digest, strlen(digest));
    EVP_DigestUpdate(ctx, "\n", 1);
    EVP_DigestUpdate(ctx, node, strlen(node));
    EVP_DigestFinal_ex(ctx, md, &n);
    EVP_MD_CTX_free(ctx);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | md[i];
    return v;
}

void agent_peer_rank(const char *digest, const char *const *nodes, size_t n, size_t *order)
{
    uint64_t *score = gy_xcalloc(n ? n : 1, sizeof(*score));
    for (size_t i = 0; i < n; i++) {
        score[i] = agent_peer_score(digest, nodes[i]);
        order[i] = i;
    }
    /* Insertion sort: a pull has at most AGENT_IMAGE_PEERS_MAX + 1 nodes. */
    for (size_t i = 1; i < n; i++) {
        size_t k = order[i], j = i;
        while (j > 0) {
            size_t p = order[j - 1];
            bool before =
                score[k] > score[p] || (score[k] == score[p] && strcmp(nodes[k], nodes[p]) < 0);
            if (!before)
                break;
            order[j] = p;
            j--;
        }
        order[j] = k;
    }
    free(score);
}

/* ---------------------------------------------------------------------------------------
 * The client */

struct agent_peer_client {
    CURL *curl;
    struct agent_peer_options opts;
};

/* One GET of a blob: the file it streams into, with its hash so far. */
struct peer_transfer {
    struct agent_peer_client *c;
    const struct agent_descriptor *blob;
    int fd;
    EVP_MD_CTX *md;
    long status;
    bool checked_status;
    int64_t limit; /* the blob's size, or the bound on a manifest of unknown size */
    int64_t done, reported;
    bool too_long;
    bool write_failed;
    int write_errno;
    char body[ERROR_BODY_MAX + 1]; /* an error answer's start */
    size_t body_len;
};

static bool cancelled(const struct agent_peer_client *c)
{
    return c->opts.cancel != NULL && atomic_load(c->opts.cancel);
}

static void progress(struct peer_transfer *t, bool force)
{
    struct agent_peer_client *c = t->c;
    if (c->opts.progress == NULL || (!force && t->done - t->reported < PROGRESS_STEP))
        return;
    t->reported = t->done;
    c->opts.progress(c->opts.progress_arg, t->blob->digest, t->done, t->blob->size);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct peer_transfer *t = arg;
    size_t len = size * nmemb;
    if (cancelled(t->c))
        return 0;
    if (!t->checked_status) {
        curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &t->status);
        t->checked_status = true;
    }
    if (t->status != 200) {
        size_t keep = ERROR_BODY_MAX - t->body_len;
        if (keep > len)
            keep = len;
        memcpy(t->body + t->body_len, data, keep);
        t->body_len += keep;
        t->body[t->body_len] = '\0';
        return len;
    }
    if ((int64_t)len > t->limit - t->done) {
        t->too_long = true;
        return 0;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(t->fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            t->write_failed = true;
            t->write_errno = errno;
            return 0;
        }
        off += (size_t)n;
    }
    EVP_DigestUpdate(t->md, data, len);
    t->done += (int64_t)len;
    progress(t, t->done == t->limit);
    return len;
}

static int on_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct peer_transfer *t = arg;
    return cancelled(t->c) ? 1 : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int agent_peer_client_new(const struct agent_peer_options *opts, struct agent_peer_client **out,
                          struct gy_error *err)
{
    *out = NULL;
    struct agent_peer_client *c = gy_xcalloc(1, sizeof(*c));
    if (opts != NULL)
        c->opts = *opts;
    if (c->opts.connect_timeout_ms <= 0)
        c->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (c->opts.low_speed_time_s <= 0)
        c->opts.low_speed_time_s = DEFAULT_LOW_SPEED_TIME_S;
    pthread_once(&curl_once, curl_init_once);
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        free(c);
        return gy_error_set(err, GY_ENOMEM, "cannot start the HTTP client");
    }
    *out = c;
    return 0;
}

void agent_peer_client_free(struct agent_peer_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

/* Turns a libcurl failure into an error naming the blob and the peer. */
static int transfer_failure(const struct peer_transfer *t, CURLcode rc, const char *curl_msg,
                            const char *what, struct gy_error *err)
{
    const char *m = curl_msg[0] ? curl_msg : curl_easy_strerror(rc);
    if (t->too_long)
        return gy_error_set(err, GY_EPROTO, "%s: larger than %s%" PRId64 " bytes", what,
                            t->blob->size >= 0 ? "the blob's " : "a manifest's ", t->limit);
    if (t->write_failed) {
        errno = t->write_errno;
        return gy_error_sys(err, t->write_errno, "%s: write the blob's file", what);
    }
    if (cancelled(t->c))
        return gy_error_set(err, GY_EUNAVAILABLE, "%s: canceled", what);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return gy_error_set(err, GY_ETIMEOUT, "%s: timed out: %s", what, m);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return gy_error_set(err, GY_EUNAVAILABLE, "%s: cannot connect: %s", what, m);
    default:
        return gy_error_set(err, GY_EUNAVAILABLE, "%s: %s", what, m);
    }
}

int agent_peer_blob_fetch(struct agent_peer_client *c, const struct agent_image_peer *peer,
                          const char *repo, const struct agent_descriptor *blob, const char *path,
                          struct gy_error *err)
{
    if (!gy_image_digest_valid(blob->digest))
        return gy_error_set(err, GY_EINVAL, "blob \"%.80s\": not a sha256 digest", blob->digest);
    if (!agent_peer_address_valid(peer->address))
        return gy_error_set(err, GY_EINVAL, "peer %s: \"%.80s\" is not HOST:PORT", peer->node,
                            peer->address);
    char what[AGENT_PEER_NODE_MAX + AGENT_PEER_ADDRESS_MAX + GY_IMAGE_DIGEST_LEN + 64];
    snprintf(what, sizeof(what), "blob %s from peer %s (%s)", blob->digest, peer->node,
             peer->address);
    char *esc = curl_easy_escape(c->curl, repo, 0);
    char size[32] = "";
    if (blob->size >= 0)
        snprintf(size, sizeof(size), "&size=%" PRId64, blob->size);
    char *url = gy_xasprintf("http://%s/v1/blobs/%s?repo=%s%s", peer->address, blob->digest,
                             esc != NULL ? esc : "", size);
    curl_free(esc);
    struct peer_transfer t = {.c = c, .blob = blob, .fd = -1};
    t.limit = blob->size >= 0 ? blob->size : AGENT_REGISTRY_MANIFEST_MAX;
    int rc = 0;
    t.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (t.fd < 0) {
        rc = gy_error_sys(err, errno, "open %s for %s", path, what);
        free(url);
        return rc;
    }
    t.md = EVP_MD_CTX_new();
    if (t.md == NULL || EVP_DigestInit_ex(t.md, EVP_sha256(), NULL) != 1) {
        rc = gy_error_set(err, GY_ENOMEM, "start a SHA-256 hash for %s", what);
        goto out;
    }
    char curl_msg[CURL_ERROR_SIZE] = "";
    CURL *h = c->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "gantry-agent/" GANTRY_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->opts.low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    progress(&t, true);
    CURLcode crc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (crc != CURLE_OK) {
        rc = transfer_failure(&t, crc, curl_msg, what, err);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.status != 200) {
        /* The server's reason, its first line, printable ASCII only. */
        char reason[ERROR_BODY_MAX + 1];
        size_t k = 0;
        for (size_t i = 0; i < t.body_len && t.body[i] != '\r' && t.body[i] != '\n'; i++)
            reason[k++] = t.body[i] >= 0x20 && t.body[i] < 0x7f ? t.body[i] : '?';
        reason[k] = '\0';
        enum gy_code code = t.status == 404   ? GY_ENOTFOUND
                            : t.status >= 500 ? GY_EUNAVAILABLE
                                              : GY_EPROTO;
        rc = gy_error_set(err, code, "%s: %ld%s%s", what, t.status, reason[0] ? ": " : "", reason);
        goto out;
    }
    if (blob->size >= 0 && t.done != blob->size) {
        rc = gy_error_set(err, GY_EUNAVAILABLE,
                          "%s: the answer ended after %" PRId64 " of %" PRId64 " bytes", what,
                          t.done, blob->size);
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(t.md, md, &n);
    char got[OCI_DIGEST_BUF];
    oci_digest_format(md, got);
    if (strcmp(got, blob->digest) != 0) {
        rc = gy_error_set(err, GY_EPROTO,
                          "%s: the content's digest is %s (%" PRId64
                          " bytes): damaged on that node or on the way; not used",
                          what, got, t.done);
        goto out;
    }
    if (fdatasync(t.fd) < 0)
        rc = gy_error_sys(err, errno, "sync %s", path);
out:
    close(t.fd);
    if (rc < 0)
        unlink(path);
    EVP_MD_CTX_free(t.md);
    free(url);
    return rc;
}
