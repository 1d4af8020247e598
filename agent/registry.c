/* The registry client; see registry.h. It follows the OCI distribution specification
 * (v1.0: /v2/ endpoints, manifests by tag or digest, blobs with Range) and the Docker
 * Registry HTTP API V2 where they differ: Docker-Content-Digest, the token
 * authentication of docs/spec/auth/token.md, manifest lists. One libcurl easy handle per
 * struct agent_registry keeps connections between requests; redirects are followed here
 * rather than by libcurl so that the rule for credentials (only to the registry's own
 * origin) and the one against HTTPS-to-HTTP downgrades are written down in one place. */
#include "agent/registry.h"
#include "agent/registry-internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_LOW_SPEED_TIME_S   30L
#define DEFAULT_REQUEST_TIMEOUT_MS 60000L
/* A transfer slower than this for low_speed_time_s is given up (the peer is stuck). */
#define LOW_SPEED_LIMIT 1024L
/* What is kept of an error answer's body: enough for the registry's JSON errors. */
#define ERROR_BODY_MAX  (64 * 1024)
#define REDIRECTS_MAX   5
#define URL_MAX         8192
#define PROGRESS_STEP   (256 * 1024)
#define KNOWN_HOSTS_MAX 16
/* A mirror that could not be reached is left out of the handle's requests this long,
 * so that a pull does not wait for its connect timeout once per blob. */
#define MIRROR_DOWN_MS 30000
/* Docker Hub's API lives on another host than the name references use. */
#define DOCKER_HUB_API "registry-1.docker.io"

static const char ACCEPT_MANIFESTS[] =
    "Accept: " AGENT_MEDIA_OCI_INDEX ", " AGENT_MEDIA_DOCKER_LIST ", " AGENT_MEDIA_OCI_MANIFEST
    ", " AGENT_MEDIA_DOCKER_MANIFEST;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------
 * Transfers: one HTTP exchange on the handle's easy handle */

/* The file a blob streams into, with its hash so far. */
struct blob_sink {
    int fd;
    EVP_MD_CTX *md;
    const char *digest;
    int64_t expected; /* the descriptor's size */
    int64_t offset;   /* bytes in the file before this response */
    int64_t done;     /* bytes in the file now */
    int64_t reported; /* done at the last progress call */
    bool range_ignored;
    bool range_wrong; /* a 206 for another range than asked: start again from 0 */
    bool bad_size;    /* the answer is longer or shorter than the blob: it is not the blob */
};

struct endpoint {
    char base[GY_IMAGE_NAME_MAX + 16]; /* "https://host:port" */
    char host[GY_IMAGE_NAME_MAX + 1];  /* "host:port", for credentials and messages */
    bool insecure;                     /* plain HTTP */
    bool mirror;
};

/* What a registry endpoint asked for in its last challenge, so that later requests
 * authenticate without a 401 first. */
struct host_auth {
    char base[GY_IMAGE_NAME_MAX + 16];
    struct agent_auth_challenge challenge;
};

/* A mirror that failed to answer, and until when it is skipped. */
struct mirror_down {
    char base[GY_IMAGE_NAME_MAX + 16];
    int64_t until_ms;
};

struct agent_registry {
    CURL *curl;
    struct agent_registry_options opts;
    struct agent_platform platform;
    struct agent_token_cache *own_tokens;
    struct host_auth known[KNOWN_HOSTS_MAX];
    size_t n_known;
    struct mirror_down down[KNOWN_HOSTS_MAX];
    size_t n_down;
};

struct transfer {
    struct agent_registry *r;
    long status;
    char reason[64];
    char content_type[128];
    char content_digest[128];
    char content_range[128];
    int64_t content_length;
    char www_auth[3 * AGENT_AUTH_REALM_MAX];
    size_t www_auth_len;
    char *body; /* NUL-terminated */
    size_t len, cap;
    size_t max; /* of a 2xx body kept in memory */
    bool too_big;
    struct blob_sink *sink; /* NULL: a 2xx body goes to memory */
    bool failed;            /* a callback stopped the transfer, for the reason in cb_err */
    struct gy_error cb_err;
};

static bool cancelled(const struct agent_registry *r)
{
    return r->opts.cancel != NULL && atomic_load(r->opts.cancel);
}

static void transfer_reset(struct transfer *t)
{
    t->status = 0;
    t->reason[0] = t->content_type[0] = t->content_digest[0] = t->content_range[0] = '\0';
    t->content_length = -1;
    t->www_auth[0] = '\0';
    t->www_auth_len = 0;
    t->len = 0;
    if (t->body != NULL)
        t->body[0] = '\0';
    t->too_big = t->failed = false;
    gy_error_clear(&t->cb_err);
}

static bool is_2xx(long status)
{
    return status >= 200 && status < 300;
}

static void progress(struct agent_registry *r, struct blob_sink *s, bool force)
{
    if (r->opts.progress == NULL)
        return;
    if (!force && s->done - s->reported < PROGRESS_STEP && s->done != s->expected)
        return;
    s->reported = s->done;
    r->opts.progress(r->opts.progress_arg, s->digest, s->done, s->expected);
}

/* Throws away what the file holds: the download starts from byte 0. */
static int sink_restart(struct blob_sink *s, struct gy_error *err)
{
    if (ftruncate(s->fd, 0) < 0)
        return gy_error_sys(err, errno, "truncate blob %s", s->digest);
    EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
    s->offset = s->done = s->reported = 0;
    return 0;
}

/* The headers of a 2xx answer to a blob request are in: is it the range asked for? */
static bool sink_begin(struct transfer *t)
{
    struct blob_sink *s = t->sink;
    if (t->status == 206) {
        long long start = -1;
        if (sscanf(t->content_range, "bytes %lld-", &start) != 1 || start != s->offset) {
            s->range_wrong = true;
            t->failed = true;
            gy_error_set(&t->cb_err, GY_EPROTO,
                         "asked for the bytes from %" PRId64 ", got range \"%s\"", s->offset,
                         t->content_range);
            return false;
        }
    } else if (s->offset > 0) {
        /* The server ignored the Range header: the body is the whole blob. */
        s->range_ignored = true;
        if (sink_restart(s, &t->cb_err) < 0) {
            t->failed = true;
            return false;
        }
    }
    if (t->content_length >= 0 && s->offset + t->content_length != s->expected) {
        t->failed = s->bad_size = true;
        gy_error_set(&t->cb_err, GY_EPROTO,
                     "the registry sends %" PRId64 " bytes, the manifest says %" PRId64,
                     s->offset + t->content_length, s->expected);
        return false;
    }
    progress(t->r, s, true);
    return true;
}

static bool sink_write(struct transfer *t, const char *data, size_t len)
{
    struct blob_sink *s = t->sink;
    if ((int64_t)len > s->expected - s->done) {
        t->failed = s->bad_size = true;
        gy_error_set(&t->cb_err, GY_EPROTO, "larger than the %" PRId64 " bytes the manifest says",
                     s->expected);
        return false;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(s->fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            t->failed = true;
            gy_error_sys(&t->cb_err, errno, "write the blob's file");
            return false;
        }
        off += (size_t)n;
    }
    EVP_DigestUpdate(s->md, data, len);
    s->done += (int64_t)len;
    progress(t->r, s, s->done == s->expected);
    return true;
}

static bool body_append(struct transfer *t, const char *data, size_t len)
{
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + len + 1)
            cap *= 2;
        t->body = gy_xrealloc(t->body, cap);
        t->cap = cap;
    }
    memcpy(t->body + t->len, data, len);
    t->len += len;
    t->body[t->len] = '\0';
    return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * nmemb;
    if (cancelled(t->r))
        return 0;
    if (is_2xx(t->status) && t->sink != NULL)
        return sink_write(t, data, len) ? len : 0;
    if (is_2xx(t->status)) {
        if (t->len + len > t->max) {
            t->too_big = true;
            return 0;
        }
        body_append(t, data, len);
        return len;
    }
    /* An error answer: keep its start, which holds the registry's JSON errors. */
    size_t keep = t->len >= ERROR_BODY_MAX ? 0 : ERROR_BODY_MAX - t->len;
    if (keep > 0)
        body_append(t, data, len < keep ? len : keep);
    return len;
}

/* Copies a header's value, trimmed, into buf (cut to fit). */
static void header_value(const char *v, size_t n, char *buf, size_t len)
{
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    agent_reg_text_clean(v, n, buf, len);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * nmemb;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* The status line of a (new) answer. */
        transfer_reset(t);
        const char *end = data + len, *p = memchr(data, ' ', len);
        if (p == NULL)
            return len;
        long status = 0;
        int digits = 0;
        for (p++; p < end && *p >= '0' && *p <= '9' && digits < 3; p++, digits++)
            status = status * 10 + (*p - '0');
        t->status = digits == 3 ? status : 0;
        if (p < end && *p == ' ')
            header_value(p + 1, (size_t)(end - p - 1), t->reason, sizeof(t->reason));
        return len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (is_2xx(t->status) && t->sink != NULL && !sink_begin(t))
            return 0;
        if (is_2xx(t->status) && t->sink == NULL && t->content_length > (int64_t)t->max) {
            t->too_big = true;
            return 0;
        }
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return len;
    size_t nl = (size_t)(colon - data), vl = len - nl - 1;
    const char *v = colon + 1;
    if (nl == 12 && strncasecmp(data, "content-type", 12) == 0) {
        header_value(v, vl, t->content_type, sizeof(t->content_type));
    } else if (nl == 21 && strncasecmp(data, "docker-content-digest", 21) == 0) {
        header_value(v, vl, t->content_digest, sizeof(t->content_digest));
    } else if (nl == 13 && strncasecmp(data, "content-range", 13) == 0) {
        header_value(v, vl, t->content_range, sizeof(t->content_range));
    } else if (nl == 14 && strncasecmp(data, "content-length", 14) == 0) {
        char num[32];
        header_value(v, vl, num, sizeof(num));
        char *end;
        long long cl = strtoll(num, &end, 10);
        t->content_length = (*end == '\0' && cl >= 0 && num[0] != '\0') ? cl : -1;
    } else if (nl == 16 && strncasecmp(data, "www-authenticate", 16) == 0) {
        /* Several challenges headers are one comma-separated list. */
        char one[sizeof(t->www_auth)];
        header_value(v, vl, one, sizeof(one));
        size_t ol = strlen(one);
        if (t->www_auth_len + ol + 3 < sizeof(t->www_auth)) {
            if (t->www_auth_len > 0) {
                memcpy(t->www_auth + t->www_auth_len, ", ", 2);
                t->www_auth_len += 2;
            }
            memcpy(t->www_auth + t->www_auth_len, one, ol + 1);
            t->www_auth_len += ol;
        }
    }
    return len;
}

static int on_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct transfer *t = arg;
    return cancelled(t->r) ? 1 : 0;
}

/* Turns a libcurl failure into an error that says what could not be reached. */
static int curl_failure(struct agent_registry *r, CURLcode rc, const char *url,
                        const char *curl_msg, struct transfer *t, struct gy_error *err)
{
    if (t->failed)
        return gy_error_set(err, t->cb_err.code, "%s", t->cb_err.msg);
    if (cancelled(r))
        return gy_error_set(err, GY_EUNAVAILABLE, "GET %s: canceled", url);
    const char *m = curl_msg[0] ? curl_msg : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return gy_error_set(err, GY_EUNAVAILABLE, "GET %s: cannot connect: %s", url, m);
    case CURLE_OPERATION_TIMEDOUT:
        return gy_error_set(err, GY_ETIMEOUT, "GET %s: timed out: %s", url, m);
    case CURLE_SSL_CONNECT_ERROR:
        return gy_error_set(err, GY_EPROTO,
                            "GET %s: TLS handshake failed: %s (a registry that speaks plain "
                            "HTTP must be marked insecure in the registry configuration)",
                            url, m);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        return gy_error_set(err, GY_EPROTO, "GET %s: TLS: %s", url, m);
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return gy_error_set(err, GY_EUNAVAILABLE, "GET %s: connection lost: %s", url, m);
    case CURLE_WRITE_ERROR:
        if (t->too_big)
            return gy_error_set(err, GY_ETOOBIG, "GET %s: the answer is larger than %zu bytes", url,
                                t->max);
        break;
    default:
        break;
    }
    return gy_error_set(err, GY_EIO, "GET %s: %s", url, m);
}

/* One GET of url with the given extra header lines; no redirect or 401 is handled here.
 * small bounds the whole exchange in time (manifests, tokens, pings). */
static int perform(struct agent_registry *r, const char *url, struct curl_slist *headers,
                   bool small, struct transfer *t, struct gy_error *err)
{
    CURL *c = r->curl;
    char curl_msg[CURL_ERROR_SIZE] = "";
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gantry-agent/" GANTRY_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, r->opts.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->opts.low_speed_time_s);
    if (small)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->opts.request_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    transfer_reset(t);
    CURLcode rc = curl_easy_perform(c);
    /* The handle outlives these buffers (the caller's headers, this frame's message). */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    if (rc != CURLE_OK)
        return curl_failure(r, rc, url, curl_msg, t, err);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t->status);
    return 0;
}

/* "CODE: message; CODE: message" from a registry's error body
 * ({"errors": [{"code", "message", "detail"}]}), or "" when it has none. */
static void registry_errors(const struct transfer *t, char *buf, size_t len)
{
    buf[0] = '\0';
    if (t->len == 0)
        return;
    json_t *root = json_loadb(t->body, t->len, 0, NULL);
    json_t *errors = json_object_get(root, "errors");
    size_t o = 0;
    for (size_t i = 0; i < json_array_size(errors) && i < 3; i++) {
        json_t *e = json_array_get(errors, i);
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        char one[256], c1[64] = "", m1[160] = "";
        if (code != NULL)
            agent_reg_text_clean(code, strlen(code), c1, sizeof(c1));
        if (msg != NULL)
            agent_reg_text_clean(msg, strlen(msg), m1, sizeof(m1));
        snprintf(one, sizeof(one), "%s%s%s", c1, c1[0] && m1[0] ? ": " : "", m1);
        int n = snprintf(buf + o, len - o, "%s%s", o ? "; " : "", one);
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
    json_decref(root);
}

/* ---------------------------------------------------------------------------------------
 * Endpoints and authentication */

static bool mirror_is_down(const struct agent_registry *r, const char *base)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < r->n_down; i++)
        if (strcmp(r->down[i].base, base) == 0 && r->down[i].until_ms > now)
            return true;
    return false;
}

/* Where to send a request for domain: its mirrors that are not known to be down, in
 * order, then the registry itself. */
static size_t endpoints_of(const struct agent_registry *r, const char *domain, struct endpoint *eps)
{
    const struct agent_registry_host *h = agent_registry_config_find(r->opts.config, domain);
    size_t n = 0;
    for (size_t i = 0; h != NULL && i < h->n_mirrors && i < AGENT_REGISTRY_MIRRORS_MAX; i++) {
        if (mirror_is_down(r, h->mirrors[i]))
            continue;
        struct endpoint *e = &eps[n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->base, sizeof(e->base), "%s", h->mirrors[i]);
        snprintf(e->host, sizeof(e->host), "%s", strstr(h->mirrors[i], "://") + 3);
        e->insecure = strncmp(h->mirrors[i], "http://", 7) == 0;
        e->mirror = true;
    }
    struct endpoint *e = &eps[n++];
    memset(e, 0, sizeof(*e));
    const char *api = strcasecmp(domain, GY_IMAGE_DEFAULT_DOMAIN) == 0 ? DOCKER_HUB_API : domain;
    e->insecure = h != NULL && h->insecure;
    snprintf(e->host, sizeof(e->host), "%s", api);
    snprintf(e->base, sizeof(e->base), "%s://%s", e->insecure ? "http" : "https", api);
    return n;
}

/* True when url is on origin base ("scheme://host[:port]"): credentials may go there. */
static bool same_origin(const char *url, const char *base)
{
    size_t n = strlen(base);
    return strncasecmp(url, base, n) == 0 && (url[n] == '/' || url[n] == '\0' || url[n] == '?');
}

static struct host_auth *known_get(struct agent_registry *r, const char *base, bool create)
{
    for (size_t i = 0; i < r->n_known; i++)
        if (strcmp(r->known[i].base, base) == 0)
            return &r->known[i];
    if (!create)
        return NULL;
    size_t i = r->n_known < KNOWN_HOSTS_MAX ? r->n_known++ : KNOWN_HOSTS_MAX - 1;
    memset(&r->known[i], 0, sizeof(r->known[i]));
    snprintf(r->known[i].base, sizeof(r->known[i].base), "%.*s", (int)sizeof(r->known[i].base) - 1,
             base);
    return &r->known[i];
}

static const struct agent_registry_creds *creds_for(const struct agent_registry *r,
                                                    const struct endpoint *ep, const char *path)
{
    return agent_registry_auth_find(r->opts.auth, ep->host, path);
}

static char *basic_header(const struct agent_registry_creds *c)
{
    size_t ul = strlen(c->username), pl = strlen(c->password);
    char *plain = gy_xmalloc(ul + pl + 2);
    memcpy(plain, c->username, ul);
    plain[ul] = ':';
    memcpy(plain + ul + 1, c->password, pl + 1);
    size_t enc_len = 4 * ((ul + pl + 1 + 2) / 3) + 1;
    char *hdr = gy_xmalloc(enc_len + 32);
    int n = snprintf(hdr, 32, "Authorization: Basic ");
    EVP_EncodeBlock((unsigned char *)hdr + n, (const unsigned char *)plain, (int)(ul + pl + 1));
    explicit_bzero(plain, ul + pl + 1);
    free(plain);
    return hdr;
}

static void secret_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void scope_for(const char *path, const struct agent_auth_challenge *ch, char *buf,
                      size_t len)
{
    if (path != NULL)
        snprintf(buf, len, "repository:%s:pull", path);
    else
        snprintf(buf, len, "%s", ch->scope);
}

/* Asks a token server (the realm of a Bearer challenge) for a token for scope, with
 * basic credentials when there are some, anonymously otherwise, and caches it. */
static int token_fetch(struct agent_registry *r, const struct endpoint *ep,
                       const struct agent_auth_challenge *ch, const char *scope,
                       const struct agent_registry_creds *creds, char **token, struct gy_error *err)
{
    bool https = strncasecmp(ch->realm, "https://", 8) == 0;
    bool http = strncasecmp(ch->realm, "http://", 7) == 0;
    if (!https && !(http && ep->insecure))
        return gy_error_set(err, GY_EPERM,
                            "registry %s names the token server \"%.200s\", which is not an "
                            "https:// URL (http:// is accepted only for registries marked "
                            "insecure)",
                            ep->host, ch->realm);
    char *svc = curl_easy_escape(r->curl, ch->service, 0);
    char *scp = curl_easy_escape(r->curl, scope, 0);
    char url[URL_MAX];
    int n = snprintf(url, sizeof(url), "%s%s%s%s%s%s%s", ch->realm,
                     strchr(ch->realm, '?') ? "&" : "?", ch->service[0] ? "service=" : "",
                     ch->service[0] ? svc : "", ch->service[0] && scope[0] ? "&" : "",
                     scope[0] ? "scope=" : "", scope[0] ? scp : "");
    curl_free(svc);
    curl_free(scp);
    if (n < 0 || (size_t)n >= sizeof(url))
        return gy_error_set(err, GY_EPROTO, "registry %s: the token server URL is too long",
                            ep->host);
    char *auth = creds != NULL ? basic_header(creds) : NULL;
    struct curl_slist *headers = NULL;
    if (auth != NULL)
        headers = curl_slist_append(headers, auth);
    struct transfer t = {.r = r, .max = AGENT_AUTH_TOKEN_BODY_MAX};
    int rc = perform(r, url, headers, true, &t, err);
    curl_slist_free_all(headers);
    secret_free(auth);
    if (rc < 0) {
        free(t.body);
        return gy_error_wrap(err, "get a token for %s", ep->host);
    }
    if (t.status == 401 || t.status == 403) {
        char regerr[400];
        registry_errors(&t, regerr, sizeof(regerr));
        free(t.body);
        return gy_error_set(
            err, GY_EPERM, "token server %.200s refused %s for %s: %ld%s%s%s%s", ch->realm,
            creds != NULL ? "the credentials of the auth file" : "anonymous access", ep->host,
            t.status, t.reason[0] ? " " : "", t.reason, regerr[0] ? ": " : "", regerr);
    }
    if (t.status != 200) {
        free(t.body);
        return gy_error_set(err, GY_EPROTO, "token server %.200s for %s: %ld%s%s", ch->realm,
                            ep->host, t.status, t.reason[0] ? " " : "", t.reason);
    }
    int64_t expires = 0;
    rc =
        agent_auth_token_parse(t.body != NULL ? t.body : "", t.len, now_ms(), token, &expires, err);
    if (t.body != NULL)
        explicit_bzero(t.body, t.len);
    free(t.body);
    if (rc < 0)
        return gy_error_wrap(err, "token server %.200s for %s", ch->realm, ep->host);
    agent_token_cache_put(r->opts.tokens, ch->realm, ch->service, scope,
                          creds != NULL ? creds->username : "", *token, expires);
    return 0;
}

/* The Authorization header line for a request to ep about repository path (NULL for
 * none), from what ep asked for before; NULL when it asked for nothing yet or there is
 * nothing to give. The caller frees it with secret_free. scope receives the token scope
 * used ("" when none). */
static int auth_prepare(struct agent_registry *r, const struct endpoint *ep, const char *path,
                        char **hdr, char *scope, size_t scope_len, struct gy_error *err)
{
    *hdr = NULL;
    scope[0] = '\0';
    const struct host_auth *ha = known_get(r, ep->base, false);
    if (ha == NULL)
        return 0;
    const struct agent_registry_creds *creds = creds_for(r, ep, path);
    if (ha->challenge.scheme == AGENT_AUTH_BASIC) {
        if (creds != NULL)
            *hdr = basic_header(creds);
        return 0;
    }
    if (ha->challenge.scheme != AGENT_AUTH_BEARER)
        return 0;
    scope_for(path, &ha->challenge, scope, scope_len);
    const struct agent_auth_challenge *ch = &ha->challenge;
    char *token = agent_token_cache_get(r->opts.tokens, ch->realm, ch->service, scope,
                                        creds != NULL ? creds->username : "", now_ms());
    if (token == NULL) {
        int rc = token_fetch(r, ep, ch, scope, creds, &token, err);
        if (rc < 0)
            return rc;
    }
    *hdr = gy_xasprintf("Authorization: Bearer %s", token);
    secret_free(token);
    return 0;
}

/* A sentence for a 401 or 403: whether credentials were there to send. */
static void auth_hint(const struct agent_registry *r, const struct endpoint *ep, const char *path,
                      char *buf, size_t len)
{
    const char *file = agent_registry_auth_origin(r->opts.auth);
    if (creds_for(r, ep, path) != NULL)
        snprintf(buf, len, " (%s refused the credentials from %s)", ep->host, file);
    else if (file[0] != '\0')
        snprintf(buf, len, " (authentication required: %s has no credentials for %s)", file,
                 ep->host);
    else
        snprintf(buf, len, " (authentication required: no auth file is configured)");
}

static int status_error(const struct agent_registry *r, const struct endpoint *ep, const char *path,
                        const char *what, const char *url, const struct transfer *t,
                        struct gy_error *err)
{
    enum gy_code code = GY_EPROTO;
    if (t->status == 404)
        code = GY_ENOTFOUND;
    else if (t->status == 401 || t->status == 403)
        code = GY_EPERM;
    else if (t->status == 429 || t->status >= 500)
        code = GY_EUNAVAILABLE;
    char regerr[400], hint[GY_IMAGE_NAME_MAX + 4200] = "";
    registry_errors(t, regerr, sizeof(regerr));
    if (code == GY_EPERM)
        auth_hint(r, ep, path, hint, sizeof(hint));
    return gy_error_set(err, code, "%s: GET %s: %ld%s%s%s%s%s", what, url, t->status,
                        t->reason[0] ? " " : "", t->reason, regerr[0] ? ": " : "", regerr, hint);
}

/* Sends a GET of url to endpoint ep, for repository path (NULL for none): authenticates
 * as ep asked before, answers one 401 with credentials or a token and tries again, and
 * follows redirects, sending credentials only to ep's own origin and never from HTTPS
 * down to HTTP. On return t holds the last answer, whatever its status. */
static int exchange(struct agent_registry *r, const struct endpoint *ep, const char *path,
                    const char *url, const char *accept, int64_t range_from, bool small,
                    struct transfer *t, struct gy_error *err)
{
    char cur[URL_MAX];
    snprintf(cur, sizeof(cur), "%s", url);
    bool answered_401 = false;
    int redirects = 0;
    for (;;) {
        bool own = same_origin(cur, ep->base);
        char *auth = NULL, scope[AGENT_AUTH_SCOPE_MAX] = "";
        if (own) {
            int rc = auth_prepare(r, ep, path, &auth, scope, sizeof(scope), err);
            if (rc < 0)
                return rc;
        }
        struct curl_slist *headers = NULL;
        char range[64];
        if (accept != NULL)
            headers = curl_slist_append(headers, accept);
        if (auth != NULL)
            headers = curl_slist_append(headers, auth);
        if (range_from > 0) {
            snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-", range_from);
            headers = curl_slist_append(headers, range);
        }
        bool sent_auth = auth != NULL;
        int rc = cancelled(r) ? gy_error_set(err, GY_EUNAVAILABLE, "GET %s: canceled", cur)
                              : perform(r, cur, headers, small, t, err);
        curl_slist_free_all(headers);
        secret_free(auth);
        if (rc < 0)
            return rc;
        if (t->status == 401 && own && !answered_401) {
            struct agent_auth_challenge ch;
            struct gy_error cerr;
            if (agent_auth_challenge_parse(t->www_auth, &ch, &cerr) < 0)
                return gy_error_set(err, GY_EPROTO, "GET %s: 401: %s", cur, cerr.msg);
            struct host_auth *ha = known_get(r, ep->base, true);
            if (sent_auth && ha->challenge.scheme == AGENT_AUTH_BEARER) {
                const struct agent_registry_creds *c = creds_for(r, ep, path);
                agent_token_cache_drop(r->opts.tokens, ha->challenge.realm, ha->challenge.service,
                                       scope, c != NULL ? c->username : "");
            }
            ha->challenge = ch;
            answered_401 = true;
            /* Basic without credentials cannot do better: the caller reports the 401. */
            if (ch.scheme == AGENT_AUTH_BASIC && creds_for(r, ep, path) == NULL)
                return 0;
            continue;
        }
        bool redirect = t->status == 301 || t->status == 302 || t->status == 303 ||
                        t->status == 307 || t->status == 308;
        if (!redirect)
            return 0;
        char *loc = NULL;
        curl_easy_getinfo(r->curl, CURLINFO_REDIRECT_URL, &loc);
        if (loc == NULL)
            return 0;
        if (++redirects > REDIRECTS_MAX)
            return gy_error_set(err, GY_EPROTO, "GET %s: more than %d redirects", url,
                                REDIRECTS_MAX);
        bool to_https = strncasecmp(loc, "https://", 8) == 0;
        bool to_http = strncasecmp(loc, "http://", 7) == 0;
        if (!to_https && !to_http)
            return gy_error_set(err, GY_EPROTO, "GET %s: redirect to a URL that is not HTTP(S)",
                                cur);
        if (to_http && strncasecmp(cur, "https://", 8) == 0 && !ep->insecure)
            return gy_error_set(err, GY_EPROTO, "GET %s: redirect from HTTPS to plain HTTP refused",
                                cur);
        if (strlen(loc) >= sizeof(cur))
            return gy_error_set(err, GY_EPROTO, "GET %s: redirect to a URL that is too long", cur);
        snprintf(cur, sizeof(cur), "%s", loc);
    }
}

/* A path that can go into a URL as it is: what gy_image_ref_parse lets through. */
static int ref_check(const struct gy_image_ref *ref, struct gy_error *err)
{
    bool ok = ref->path[0] != '\0' && ref->domain[0] != '\0';
    for (const char *c = ref->path; ok && *c; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
             *c == '-' || *c == '/';
    if (!ok || gy_image_domain_check(ref->domain, NULL) < 0)
        return gy_error_set(err, GY_EINVAL, "not a parsed image reference");
    return 0;
}

/* Logs a mirror's failure; one that could not be reached is skipped for a while. */
static void mirror_failed(struct agent_registry *r, const struct endpoint *ep,
                          const struct gy_error *err)
{
    bool down = err->code == GY_EUNAVAILABLE || err->code == GY_ETIMEOUT;
    gy_log_warn("registry mirror failed, trying the next endpoint",
                "mirror=%s skipped_for_ms=%d error=\"%s\"", ep->base, down ? MIRROR_DOWN_MS : 0,
                err->msg);
    if (!down)
        return;
    size_t i = 0;
    while (i < r->n_down && strcmp(r->down[i].base, ep->base) != 0)
        i++;
    if (i == r->n_down) {
        i = r->n_down < KNOWN_HOSTS_MAX ? r->n_down++ : KNOWN_HOSTS_MAX - 1;
        snprintf(r->down[i].base, sizeof(r->down[i].base), "%s", ep->base);
    }
    r->down[i].until_ms = now_ms() + MIRROR_DOWN_MS;
}

/* ---------------------------------------------------------------------------------------
 * The handle */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int agent_registry_new(const struct agent_registry_options *opts, struct agent_registry **out,
                       struct gy_error *err)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    struct agent_registry *r = gy_xcalloc(1, sizeof(*r));
    if (opts != NULL)
        r->opts = *opts;
    if (r->opts.connect_timeout_ms <= 0)
        r->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (r->opts.low_speed_time_s <= 0)
        r->opts.low_speed_time_s = DEFAULT_LOW_SPEED_TIME_S;
    if (r->opts.request_timeout_ms <= 0)
        r->opts.request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    if (r->opts.platform != NULL) {
        r->platform = *r->opts.platform;
    } else {
        int rc = agent_platform_detect(&r->platform, err);
        if (rc < 0) {
            free(r);
            return rc;
        }
    }
    r->opts.platform = &r->platform;
    if (r->opts.tokens == NULL)
        r->opts.tokens = r->own_tokens = agent_token_cache_new();
    r->curl = curl_easy_init();
    if (r->curl == NULL) {
        agent_registry_free(r);
        return gy_error_set(err, GY_ENOMEM, "cannot start the HTTP client");
    }
    *out = r;
    return 0;
}

void agent_registry_free(struct agent_registry *r)
{
    if (r == NULL)
        return;
    if (r->curl != NULL)
        curl_easy_cleanup(r->curl);
    agent_token_cache_free(r->own_tokens);
    free(r);
}

int agent_registry_ping(struct agent_registry *r, const char *domain, struct gy_error *err)
{
    int rc = gy_image_domain_check(domain, err);
    if (rc < 0)
        return rc;
    struct endpoint eps[AGENT_REGISTRY_MIRRORS_MAX + 1];
    size_t n = endpoints_of(r, domain, eps);
    for (size_t i = 0; i < n; i++) {
        char url[URL_MAX];
        snprintf(url, sizeof(url), "%.*s/v2/", (int)sizeof(url) - 8, eps[i].base);
        struct transfer t = {.r = r, .max = ERROR_BODY_MAX};
        rc = perform(r, url, NULL, true, &t, err);
        if (rc == 0 && t.status == 401) {
            struct agent_auth_challenge ch;
            rc = agent_auth_challenge_parse(t.www_auth, &ch, err);
            if (rc == 0)
                known_get(r, eps[i].base, true)->challenge = ch;
            else
                gy_error_wrap(err, "GET %s: 401", url);
        } else if (rc == 0 && t.status != 200) {
            rc = status_error(r, &eps[i], NULL, "registry check", url, &t, err);
        }
        free(t.body);
        if (rc == 0 || cancelled(r))
            return rc;
        if (i + 1 < n)
            mirror_failed(r, &eps[i], err);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Manifests over the network */

static int manifest_from(struct agent_registry *r, const struct endpoint *ep,
                         const struct gy_image_ref *ref, const char *reference, const char *what,
                         struct agent_manifest *out, struct gy_error *err)
{
    char url[URL_MAX];
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", ep->base, ref->path, reference);
    struct transfer t = {.r = r, .max = AGENT_REGISTRY_MANIFEST_MAX};
    int rc = exchange(r, ep, ref->path, url, ACCEPT_MANIFESTS, 0, true, &t, err);
    if (rc < 0) {
        gy_error_wrap(err, "%s", what);
    } else if (t.status != 200) {
        rc = status_error(r, ep, ref->path, what, url, &t, err);
    } else if ((rc = agent_manifest_parse(t.body != NULL ? t.body : "", t.len, t.content_type, out,
                                          err)) < 0) {
        gy_error_wrap(err, "%s from %s", what, ep->host);
    } else if (strncmp(reference, "sha256:", 7) == 0 && strcmp(out->digest, reference) != 0) {
        rc = gy_error_set(err, GY_EPROTO,
                          "%s from %s: the content's digest is %s: damaged in the registry or "
                          "on the way",
                          what, ep->host, out->digest);
    } else if (gy_image_digest_valid(t.content_digest) &&
               strcmp(t.content_digest, out->digest) != 0) {
        rc = gy_error_set(err, GY_EPROTO,
                          "%s from %s: the registry says its digest is %s, its content's is %s",
                          what, ep->host, t.content_digest, out->digest);
    }
    if (rc < 0)
        agent_manifest_free(out);
    free(t.body);
    return rc;
}

int agent_registry_manifest_get(struct agent_registry *r, const struct gy_image_ref *ref,
                                const char *reference, struct agent_manifest *out,
                                struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    int rc = ref_check(ref, err);
    if (rc < 0)
        return rc;
    bool by_digest = strncmp(reference, "sha256:", 7) == 0;
    if (by_digest ? !gy_image_digest_valid(reference)
                  : reference[0] == '\0' || strlen(reference) > GY_IMAGE_TAG_MAX)
        return gy_error_set(err, GY_EINVAL, "\"%.80s\" is neither a tag nor a sha256 digest",
                            reference);
    for (const char *c = reference; !by_digest && *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.' || *c == '-'))
            return gy_error_set(err, GY_EINVAL, "\"%.80s\" is not a valid tag", reference);
    char what[2 * GY_IMAGE_NAME_MAX + GY_IMAGE_TAG_MAX + 32];
    snprintf(what, sizeof(what), "manifest %s/%s%c%s", ref->domain, ref->path,
             by_digest ? '@' : ':', reference);
    struct endpoint eps[AGENT_REGISTRY_MIRRORS_MAX + 1];
    size_t n = endpoints_of(r, ref->domain, eps);
    for (size_t i = 0; i < n; i++) {
        rc = manifest_from(r, &eps[i], ref, reference, what, out, err);
        if (rc == 0 || cancelled(r))
            return rc;
        if (i + 1 < n)
            mirror_failed(r, &eps[i], err);
    }
    return rc;
}

int agent_registry_resolve(struct agent_registry *r, const struct gy_image_ref *ref,
                           struct agent_registry_image *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *top = ref->digest[0] != '\0' ? ref->digest : ref->tag;
    struct agent_manifest m;
    int rc = agent_registry_manifest_get(r, ref, top, &m, err);
    if (rc < 0)
        return rc;
    memcpy(out->resolved, m.digest, sizeof(out->resolved));
    if (!agent_manifest_is_index(m.kind)) {
        out->manifest = m;
        return 0;
    }
    out->index = m;
    size_t which = 0;
    if ((rc = agent_manifest_pick(&out->index, &r->platform, &which, err)) < 0)
        return gy_error_wrap(err, "image %s/%s", ref->domain, ref->path);
    const struct agent_descriptor *d = &out->index.manifests[which];
    out->platform = d->platform;
    if ((rc = agent_registry_manifest_get(r, ref, d->digest, &out->manifest, err)) < 0)
        return rc;
    if ((int64_t)out->manifest.len != d->size)
        return gy_error_set(err, GY_EPROTO, "manifest %s is %zu bytes, index %s says %" PRId64,
                            d->digest, out->manifest.len, out->index.digest, d->size);
    if (agent_manifest_is_index(out->manifest.kind))
        return gy_error_set(err, GY_EPROTO,
                            "index %s points at another index (%s) for its platform, which is "
                            "not supported",
                            out->index.digest, d->digest);
    return 0;
}

void agent_registry_image_free(struct agent_registry_image *img)
{
    if (img == NULL)
        return;
    agent_manifest_free(&img->index);
    agent_manifest_free(&img->manifest);
    memset(img, 0, sizeof(*img));
}

/* ---------------------------------------------------------------------------------------
 * Blobs */

/* The digest of what the file holds so far, without ending the running hash. */
static void sink_digest(struct blob_sink *s, char out[GY_IMAGE_DIGEST_LEN + 1])
{
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (copy == NULL) {
        fputs("gantry: out of memory (SHA-256 context)\n", stderr);
        abort();
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX_copy_ex(copy, s->md);
    EVP_DigestFinal_ex(copy, md, &n);
    EVP_MD_CTX_free(copy);
    agent_reg_digest_format(md, out);
}

/* Hashes the bytes already in the file (a download that was cut off). */
static int sink_resume(struct blob_sink *s, struct gy_error *err)
{
    struct stat st;
    if (fstat(s->fd, &st) < 0)
        return gy_error_sys(err, errno, "stat blob %s", s->digest);
    if (st.st_size > s->expected)
        return sink_restart(s, err);
    char buf[64 * 1024];
    int64_t done = 0;
    while (done < st.st_size) {
        ssize_t n = pread(s->fd, buf, sizeof(buf), done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return gy_error_sys(err, errno, "read partial blob %s", s->digest);
        if (n == 0)
            break;
        EVP_DigestUpdate(s->md, buf, (size_t)n);
        done += n;
    }
    s->offset = s->done = s->reported = done;
    return 0;
}

/* One try at endpoint ep: 0 when a whole answer was written (not yet verified), 1 when
 * the request must be made again from byte 0, negative on failure. */
static int blob_from(struct agent_registry *r, const struct endpoint *ep,
                     const struct gy_image_ref *ref, struct blob_sink *s, const char *what,
                     struct gy_error *err)
{
    char url[URL_MAX];
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", ep->base, ref->path, s->digest);
    struct transfer t = {.r = r, .max = ERROR_BODY_MAX, .sink = s};
    s->offset = s->done;
    s->range_wrong = s->bad_size = false;
    int rc = exchange(r, ep, ref->path, url, NULL, s->done, false, &t, err);
    if (rc < 0 && s->range_wrong) {
        rc = sink_restart(s, err) < 0 ? -err->code : 1;
    } else if (rc < 0) {
        gy_error_wrap(err, "%s from %s", what, ep->host);
    } else if (t.status == 416 && s->offset > 0) {
        rc = sink_restart(s, err) < 0 ? -err->code : 1;
    } else if (!is_2xx(t.status)) {
        rc = status_error(r, ep, ref->path, what, url, &t, err);
    }
    free(t.body);
    return rc;
}

int agent_registry_blob_fetch(struct agent_registry *r, const struct gy_image_ref *ref,
                              const struct agent_descriptor *blob, const char *path,
                              struct agent_blob_result *res, struct gy_error *err)
{
    struct agent_blob_result local;
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    int rc = ref_check(ref, err);
    if (rc < 0)
        return rc;
    if (!gy_image_digest_valid(blob->digest) || blob->size < 0)
        return gy_error_set(err, GY_EINVAL, "blob \"%.80s\": not a sha256 digest and a size",
                            blob->digest);
    char what[2 * GY_IMAGE_NAME_MAX + GY_IMAGE_DIGEST_LEN + 32];
    snprintf(what, sizeof(what), "blob %s of %s/%s", blob->digest, ref->domain, ref->path);
    struct blob_sink s = {.fd = -1, .digest = blob->digest, .expected = blob->size};
    s.fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s.fd < 0)
        return gy_error_sys(err, errno, "open %s for %s", path, what);
    s.md = EVP_MD_CTX_new();
    if (s.md == NULL || EVP_DigestInit_ex(s.md, EVP_sha256(), NULL) != 1) {
        rc = gy_error_set(err, GY_ENOMEM, "start a SHA-256 hash for %s", what);
        goto out;
    }
    char got[GY_IMAGE_DIGEST_LEN + 1];
    if ((rc = sink_resume(&s, err)) < 0)
        goto out;
    res->resumed_from = s.done;
    if (s.done == s.expected) {
        sink_digest(&s, got);
        if (strcmp(got, blob->digest) == 0) {
            res->complete_before = true;
            res->size = s.done;
            progress(r, &s, true);
            goto out;
        }
        if ((rc = sink_restart(&s, err)) < 0)
            goto out;
        res->resumed_from = 0;
    }

    struct endpoint eps[AGENT_REGISTRY_MIRRORS_MAX + 1];
    size_t n = endpoints_of(r, ref->domain, eps);
    bool retried = false;
    for (size_t i = 0; i < n; i++) {
        rc = blob_from(r, &eps[i], ref, &s, what, err);
        if (rc == 1 && !retried) {
            retried = true;
            res->resumed_from = 0;
            rc = blob_from(r, &eps[i], ref, &s, what, err);
        }
        if (rc == 1)
            rc = gy_error_set(err, GY_EPROTO, "%s from %s: the range answers do not fit", what,
                              eps[i].host);
        if (rc < 0 && s.bad_size && !cancelled(r)) {
            /* Not the blob: like a wrong digest, nothing of it is kept. */
            struct gy_error terr;
            if (sink_restart(&s, &terr) < 0 || i + 1 == n) {
                unlink(path);
                char msg[GY_ERROR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s", err->msg);
                rc = gy_error_set(err, err->code, "%s; %s was removed", msg, path);
                break;
            }
        }
        if (rc < 0) {
            if (cancelled(r) || rc == -GY_ESYS)
                break;
            if (i + 1 < n)
                mirror_failed(r, &eps[i], err);
            continue;
        }
        res->range_ignored |= s.range_ignored;
        if (s.range_ignored)
            res->resumed_from = 0;
        if (s.done < s.expected) {
            /* The answer ended early without an error: what arrived stays for a resume. */
            rc = gy_error_set(err, GY_EUNAVAILABLE,
                              "%s from %s: the answer ended after %" PRId64 " of %" PRId64 " bytes",
                              what, eps[i].host, s.done, s.expected);
            if (i + 1 < n)
                mirror_failed(r, &eps[i], err);
            continue;
        }
        sink_digest(&s, got);
        if (strcmp(got, blob->digest) == 0) {
            if (fdatasync(s.fd) < 0) {
                rc = gy_error_sys(err, errno, "sync %s", path);
                goto out;
            }
            res->size = s.done;
            rc = 0;
            goto out;
        }
        /* The bytes kept from before may be what is wrong: then once more, all of it; else
         * the next endpoint; else the file goes. */
        bool again = res->resumed_from > 0 && !retried, next = !again && i + 1 < n;
        rc = gy_error_set(err, GY_EPROTO,
                          "%s from %s: the content's digest is %s (%" PRId64
                          " bytes): damaged in the registry or on the way; %s%s",
                          what, eps[i].host, got, s.done, again || next ? "" : path,
                          again  ? "fetching it again from byte 0"
                          : next ? "trying the next endpoint"
                                 : " was removed");
        if (!again && !next) {
            unlink(path);
            goto out;
        }
        gy_log_warn("blob damaged", "error=\"%s\"", err->msg);
        struct gy_error terr;
        if (sink_restart(&s, &terr) < 0) {
            rc = gy_error_set(err, terr.code, "%s", terr.msg);
            goto out;
        }
        res->resumed_from = 0;
        if (again) {
            retried = true;
            i--;
        }
    }
out:
    if (rc < 0) {
        struct stat st;
        /* An empty file has nothing worth resuming. */
        if (fstat(s.fd, &st) == 0 && st.st_size == 0)
            unlink(path);
    }
    close(s.fd);
    EVP_MD_CTX_free(s.md);
    return rc;
}
