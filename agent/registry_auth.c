/* Registry authentication; see registry_auth.h. The challenge and token formats follow
 * RFC 7235 and the distribution project's token authentication specification
 * (docs/spec/auth/token.md); the auth file follows containers-auth.json(5). */
#include "agent/registry_auth.h"
#include "agent/registry-internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/image_ref.h"
#include "common/xalloc.h"

/* Keys of an auth file are quoted in messages (agent_reg_quote); secrets never are. */

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

/* ---------------------------------------------------------------------------------------
 * Auth files */

struct auth_entry {
    char *host; /* lower case, docker.io for Docker Hub */
    char *path; /* "" for the whole registry, else a namespace such as "team" */
    struct agent_registry_creds creds;
};

struct agent_registry_auth {
    char *origin;
    struct auth_entry *entries;
    size_t n;
};

/* Strict base64 (RFC 4648 alphabet, padding optional); false on any other byte. The
 * caller frees *out, which is NUL-terminated; *n excludes the terminator. */
static bool base64_decode(const char *in, char **out, size_t *n)
{
    size_t len = strlen(in);
    while (len > 0 && in[len - 1] == '=')
        len--;
    if (strlen(in) - len > 2 || len % 4 == 1)
        return false;
    char *buf = gy_xmalloc(len / 4 * 3 + 3 + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (v < 0) {
            explicit_bzero(buf, o);
            free(buf);
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    buf[o] = '\0';
    acc = 0;
    *out = buf;
    *n = o;
    return true;
}

static void entry_free(struct auth_entry *e)
{
    free(e->host);
    free(e->path);
    wipe_free(e->creds.username);
    wipe_free(e->creds.password);
}

void agent_registry_auth_free(struct agent_registry_auth *auth)
{
    if (auth == NULL)
        return;
    for (size_t i = 0; i < auth->n; i++)
        entry_free(&auth->entries[i]);
    free(auth->entries);
    free(auth->origin);
    free(auth);
}

/* The host Docker Hub goes by in references. */
static const char *canonical_host(const char *host)
{
    if (strcmp(host, "index.docker.io") == 0 || strcmp(host, "registry-1.docker.io") == 0)
        return GY_IMAGE_DEFAULT_DOMAIN;
    return host;
}

/* Splits a key ("host", "host/ns", "https://host/v1/") into a lower-case host and a
 * namespace path. */
static int key_split(const char *origin, const char *key, char **host, char **path,
                     struct gy_error *err)
{
    char q[160];
    const char *k = key;
    bool url = false;
    if (strncasecmp(k, "https://", 8) == 0)
        k += 8, url = true;
    else if (strncasecmp(k, "http://", 7) == 0)
        k += 7, url = true;
    const char *slash = strchr(k, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - k) : strlen(k);
    char *h = gy_xstrndup(k, hlen);
    for (char *c = h; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    struct gy_error derr;
    if (gy_image_domain_check(h, &derr) < 0) {
        free(h);
        return gy_error_set(err, GY_EINVAL, "auth file %s: key \"%s\" does not name a registry",
                            origin, agent_reg_quote(key, q, sizeof(q)));
    }
    char *p = gy_xstrdup(slash != NULL ? slash + 1 : "");
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        p[--plen] = '\0';
    /* Docker writes URLs with the API version as the path; it names no repository. */
    if (url && (strcmp(p, "v1") == 0 || strcmp(p, "v2") == 0))
        p[0] = '\0';
    for (char *c = p; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
                  *c == '-' || (*c == '/' && c[1] != '/' && c != p);
        if (!ok) {
            free(h);
            free(p);
            return gy_error_set(err, GY_EINVAL,
                                "auth file %s: key \"%s\" has an invalid repository namespace",
                                origin, agent_reg_quote(key, q, sizeof(q)));
        }
    }
    *host = gy_xstrdup(canonical_host(h));
    free(h);
    *path = p;
    return 0;
}

/* Reads one entry's credentials; 0 with *found false when it has none. */
static int entry_creds(const char *origin, const char *key, json_t *v,
                       struct agent_registry_creds *creds, bool *found, struct gy_error *err)
{
    char q[160];
    *found = false;
    if (!json_is_object(v))
        return gy_error_set(err, GY_EINVAL, "auth file %s: \"auths\".\"%s\" must be an object",
                            origin, agent_reg_quote(key, q, sizeof(q)));
    static const char *const fields[] = {"auth", "username", "password"};
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_object_get(v, fields[i]);
        if (f != NULL && !json_is_string(f) && !json_is_null(f))
            return gy_error_set(err, GY_EINVAL,
                                "auth file %s: \"auths\".\"%s\".%s must be a string", origin,
                                agent_reg_quote(key, q, sizeof(q)), fields[i]);
    }
    const char *auth = json_string_value(json_object_get(v, "auth"));
    const char *user = json_string_value(json_object_get(v, "username"));
    const char *pass = json_string_value(json_object_get(v, "password"));
    if (auth != NULL && *auth != '\0') {
        char *plain = NULL;
        size_t n = 0;
        if (!base64_decode(auth, &plain, &n))
            return gy_error_set(err, GY_EINVAL,
                                "auth file %s: \"auths\".\"%s\".auth is not valid base64", origin,
                                agent_reg_quote(key, q, sizeof(q)));
        char *colon = strchr(plain, ':');
        int rc = 0;
        if (strlen(plain) != n)
            rc = gy_error_set(err, GY_EINVAL,
                              "auth file %s: \"auths\".\"%s\".auth decodes to a NUL byte", origin,
                              agent_reg_quote(key, q, sizeof(q)));
        else if (colon == NULL || colon == plain)
            rc = gy_error_set(err, GY_EINVAL,
                              "auth file %s: \"auths\".\"%s\".auth must encode "
                              "\"user:password\"",
                              origin, agent_reg_quote(key, q, sizeof(q)));
        if (rc == 0) {
            creds->username = gy_xstrndup(plain, (size_t)(colon - plain));
            creds->password = gy_xstrdup(colon + 1);
            *found = true;
        }
        explicit_bzero(plain, n);
        free(plain);
        return rc;
    }
    if (user != NULL && *user != '\0') {
        if (pass == NULL)
            return gy_error_set(err, GY_EINVAL,
                                "auth file %s: \"auths\".\"%s\" has a username but no password",
                                origin, agent_reg_quote(key, q, sizeof(q)));
        creds->username = gy_xstrdup(user);
        creds->password = gy_xstrdup(pass);
        *found = true;
    }
    return 0;
}

int agent_registry_auth_parse(const char *text, size_t len, const char *origin,
                              struct agent_registry_auth **out, struct gy_error *err)
{
    *out = NULL;
    if (len > AGENT_AUTH_FILE_MAX)
        return gy_error_set(err, GY_ETOOBIG, "auth file %s: larger than %d bytes", origin,
                            AGENT_AUTH_FILE_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    /* jansson's text may quote the bytes near the error, which can be a secret: only the
     * position is reported. */
    if (root == NULL)
        return gy_error_set(err, GY_EPARSE, "auth file %s: not valid JSON (line %d, column %d)",
                            origin, jerr.line, jerr.column);
    struct agent_registry_auth *auth = gy_xcalloc(1, sizeof(*auth));
    auth->origin = gy_xstrdup(origin);
    int rc = 0;
    json_t *auths = NULL;
    if (!json_is_object(root)) {
        rc = gy_error_set(err, GY_EINVAL, "auth file %s: must hold a JSON object", origin);
        goto out;
    }
    auths = json_object_get(root, "auths");
    if (auths == NULL || json_is_null(auths))
        goto out;
    if (!json_is_object(auths)) {
        rc = gy_error_set(err, GY_EINVAL, "auth file %s: \"auths\" must be an object", origin);
        goto out;
    }
    auth->entries = gy_xcalloc(json_object_size(auths) + 1, sizeof(*auth->entries));
    const char *key;
    json_t *v;
    json_object_foreach(auths, key, v)
    {
        struct auth_entry e = {0};
        bool found;
        if ((rc = key_split(origin, key, &e.host, &e.path, err)) < 0)
            goto out;
        if ((rc = entry_creds(origin, key, v, &e.creds, &found, err)) < 0 || !found) {
            entry_free(&e);
            if (rc < 0)
                goto out;
            continue;
        }
        /* The first entry for a host and namespace wins ("docker.io" and
         * "https://index.docker.io/v1/" are the same). */
        bool dup = false;
        for (size_t i = 0; i < auth->n && !dup; i++)
            dup = strcmp(auth->entries[i].host, e.host) == 0 &&
                  strcmp(auth->entries[i].path, e.path) == 0;
        if (dup)
            entry_free(&e);
        else
            auth->entries[auth->n++] = e;
    }
out:
    json_decref(root);
    if (rc < 0) {
        agent_registry_auth_free(auth);
        return rc;
    }
    *out = auth;
    return 0;
}

int agent_registry_auth_load(const char *path, struct agent_registry_auth **out,
                             struct gy_error *err)
{
    *out = NULL;
    /* O_NONBLOCK: a FIFO at the path must not hang the caller (it is refused below). */
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return agent_registry_auth_parse("{}", 2, path, out, err);
    if (fd < 0)
        return gy_error_sys(err, errno, "open auth file %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return gy_error_sys(err, errno, "stat auth file %s", path);
    if (!S_ISREG(st.st_mode))
        return gy_error_set(err, GY_EINVAL, "auth file %s: not a regular file", path);
    if (st.st_size > AGENT_AUTH_FILE_MAX)
        return gy_error_set(err, GY_ETOOBIG, "auth file %s: larger than %d bytes", path,
                            AGENT_AUTH_FILE_MAX);
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *text = gy_xmalloc(cap + 1);
    for (;;) {
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            explicit_bzero(text, len);
            free(text);
            return gy_error_sys(err, e, "read auth file %s", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            /* The file grew since fstat: refuse rather than read without bound. */
            explicit_bzero(text, len);
            free(text);
            return gy_error_set(err, GY_EIO, "auth file %s: changed while being read", path);
        }
    }
    int rc = agent_registry_auth_parse(text, len, path, out, err);
    explicit_bzero(text, len);
    free(text);
    return rc;
}

const struct agent_registry_creds *agent_registry_auth_find(const struct agent_registry_auth *auth,
                                                            const char *host, const char *path)
{
    if (auth == NULL || host == NULL)
        return NULL;
    char h[GY_IMAGE_NAME_MAX + 1];
    snprintf(h, sizeof(h), "%s", host);
    for (char *c = h; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    const char *ch = canonical_host(h);
    const struct auth_entry *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < auth->n; i++) {
        const struct auth_entry *e = &auth->entries[i];
        if (strcmp(e->host, ch) != 0)
            continue;
        size_t n = strlen(e->path);
        bool match = n == 0 || (path != NULL && strncmp(path, e->path, n) == 0 &&
                                (path[n] == '\0' || path[n] == '/'));
        if (match && (best == NULL || n > best_len)) {
            best = e;
            best_len = n;
        }
    }
    return best != NULL ? &best->creds : NULL;
}

const char *agent_registry_auth_origin(const struct agent_registry_auth *auth)
{
    return auth != NULL && auth->origin != NULL ? auth->origin : "";
}

size_t agent_registry_auth_count(const struct agent_registry_auth *auth)
{
    return auth != NULL ? auth->n : 0;
}

/* ---------------------------------------------------------------------------------------
 * WWW-Authenticate */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

struct challenge_parser {
    const char *start;
    const char *p;
    struct gy_error *err;
};

static int parse_error(struct challenge_parser *cp, const char *problem)
{
    return gy_error_set(cp->err, GY_EPROTO, "WWW-Authenticate: %s at offset %zu", problem,
                        (size_t)(cp->p - cp->start));
}

/* Reads a token or a quoted string (unescaped) into buf; an unquoted value that is not a
 * token (a realm URL some servers leave bare) runs to the next ',' or blank. */
static int parse_value(struct challenge_parser *cp, char *buf, size_t len)
{
    size_t o = 0;
    const char *p = cp->p;
    if (*p == '"') {
        p++;
        for (;;) {
            char c = *p;
            if (c == '\\') {
                c = *++p;
                if (c == '\0')
                    break;
            } else if (c == '"') {
                break;
            }
            if (c == '\0')
                break;
            if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f) {
                cp->p = p;
                return parse_error(cp, "control character in a quoted string");
            }
            if (o + 1 >= len) {
                cp->p = p;
                return parse_error(cp, "parameter value too long");
            }
            buf[o++] = c;
            p++;
        }
        if (*p != '"') {
            cp->p = p;
            return parse_error(cp, "unterminated quoted string");
        }
        p++;
    } else {
        while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t') {
            if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"') {
                cp->p = p;
                return parse_error(cp, "unexpected character in a parameter value");
            }
            if (o + 1 >= len) {
                cp->p = p;
                return parse_error(cp, "parameter value too long");
            }
            buf[o++] = *p++;
        }
    }
    buf[o] = '\0';
    cp->p = p;
    return 0;
}

/* Length of the token at p. */
static size_t token_len(const char *p)
{
    size_t n = 0;
    while (is_tchar(p[n]))
        n++;
    return n;
}

/* True when p starts "name =": an auth-param rather than the next challenge's scheme. */
static bool at_param(const char *p)
{
    size_t n = token_len(p);
    if (n == 0)
        return false;
    const char *q = skip_ows(p + n);
    if (*q != '=')
        return false;
    /* "name==" or "name=" at the end is a token68 ending in padding. */
    q = skip_ows(q + 1);
    return *q != '=' && *q != ',' && *q != '\0';
}

int agent_auth_challenge_parse(const char *header, struct agent_auth_challenge *out,
                               struct gy_error *err)
{
    struct challenge_parser cp = {.start = header, .p = header, .err = err};
    struct agent_auth_challenge basic = {0}, bearer = {0}, cur;
    if (header == NULL)
        return gy_error_set(err, GY_EPROTO, "WWW-Authenticate is missing");
    for (;;) {
        while (*cp.p == ' ' || *cp.p == '\t' || *cp.p == ',')
            cp.p++;
        if (*cp.p == '\0')
            break;
        size_t n = token_len(cp.p);
        if (n == 0)
            return parse_error(&cp, "expected an authentication scheme");
        memset(&cur, 0, sizeof(cur));
        if (n == 5 && strncasecmp(cp.p, "basic", 5) == 0)
            cur.scheme = AGENT_AUTH_BASIC;
        else if (n == 6 && strncasecmp(cp.p, "bearer", 6) == 0)
            cur.scheme = AGENT_AUTH_BEARER;
        cp.p += n;
        if (*cp.p != '\0' && *cp.p != ' ' && *cp.p != '\t' && *cp.p != ',')
            return parse_error(&cp, "unexpected character after the scheme");
        cp.p = skip_ows(cp.p);
        bool seen_realm = false, seen_service = false, seen_scope = false;
        if (*cp.p != '\0' && *cp.p != ',' && !at_param(cp.p)) {
            /* token68: skip it; neither Basic nor Bearer challenges use one. */
            while (*cp.p != '\0' && *cp.p != ',' && *cp.p != ' ' && *cp.p != '\t')
                cp.p++;
        }
        while (at_param(cp.p)) {
            n = token_len(cp.p);
            const char *name = cp.p;
            cp.p = skip_ows(skip_ows(cp.p + n) + 1);
            char *dst = NULL, scratch[AGENT_AUTH_REALM_MAX];
            size_t dst_len = sizeof(scratch);
            bool *seen = NULL;
            if (n == 5 && strncasecmp(name, "realm", 5) == 0)
                dst = cur.realm, dst_len = sizeof(cur.realm), seen = &seen_realm;
            else if (n == 7 && strncasecmp(name, "service", 7) == 0)
                dst = cur.service, dst_len = sizeof(cur.service), seen = &seen_service;
            else if (n == 5 && strncasecmp(name, "scope", 5) == 0)
                dst = cur.scope, dst_len = sizeof(cur.scope), seen = &seen_scope;
            if (seen != NULL && *seen)
                return parse_error(&cp, "a parameter is given twice");
            if (seen != NULL)
                *seen = true;
            int rc = parse_value(&cp, dst != NULL ? dst : scratch, dst_len);
            if (rc < 0)
                return rc;
            cp.p = skip_ows(cp.p);
            if (*cp.p == '\0')
                break;
            if (*cp.p != ',')
                return parse_error(&cp, "expected ',' after a parameter");
            const char *after = cp.p + 1;
            while (*after == ' ' || *after == '\t' || *after == ',')
                after++;
            if (!at_param(after))
                break; /* the next challenge, or the end */
            cp.p = after;
        }
        if (cur.scheme == AGENT_AUTH_BEARER && bearer.scheme == AGENT_AUTH_NONE)
            bearer = cur;
        else if (cur.scheme == AGENT_AUTH_BASIC && basic.scheme == AGENT_AUTH_NONE)
            basic = cur;
        cp.p = skip_ows(cp.p);
        if (*cp.p != '\0' && *cp.p != ',')
            return parse_error(&cp, "expected ',' between challenges");
    }
    if (bearer.scheme == AGENT_AUTH_BEARER) {
        if (bearer.realm[0] == '\0')
            return gy_error_set(err, GY_EPROTO,
                                "WWW-Authenticate: the Bearer challenge has no "
                                "realm");
        *out = bearer;
        return 0;
    }
    if (basic.scheme == AGENT_AUTH_BASIC) {
        *out = basic;
        return 0;
    }
    return gy_error_set(err, GY_EPROTO,
                        "WWW-Authenticate offers neither Basic nor Bearer authentication");
}

/* ---------------------------------------------------------------------------------------
 * Tokens */

int agent_auth_token_parse(const char *body, size_t len, int64_t now_ms, char **token,
                           int64_t *expires_at_ms, struct gy_error *err)
{
    *token = NULL;
    if (len > AGENT_AUTH_TOKEN_BODY_MAX)
        return gy_error_set(err, GY_ETOOBIG, "token server answer is larger than %d bytes",
                            AGENT_AUTH_TOKEN_BODY_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return gy_error_set(err, GY_EPROTO,
                            "token server answer is not valid JSON (line %d, column %d)", jerr.line,
                            jerr.column);
    int rc = 0;
    const char *t = NULL;
    json_t *exp = NULL;
    if (!json_is_object(root)) {
        rc = gy_error_set(err, GY_EPROTO, "token server answer is not a JSON object");
        goto out;
    }
    t = json_string_value(json_object_get(root, "token"));
    if (t == NULL || *t == '\0')
        t = json_string_value(json_object_get(root, "access_token"));
    if (t == NULL || *t == '\0') {
        rc = gy_error_set(err, GY_EPROTO, "token server answer has no \"token\"");
        goto out;
    }
    size_t tlen = strlen(t);
    if (tlen > AGENT_AUTH_TOKEN_MAX) {
        rc = gy_error_set(err, GY_EPROTO, "token is longer than %d bytes", AGENT_AUTH_TOKEN_MAX);
        goto out;
    }
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f) {
            rc = gy_error_set(err, GY_EPROTO,
                              "token has a character that cannot be sent in a header");
            goto out;
        }
    }
    int64_t secs = 60;
    exp = json_object_get(root, "expires_in");
    if (json_is_integer(exp))
        secs = json_integer_value(exp);
    else if (json_is_real(exp))
        secs = (int64_t)json_real_value(exp);
    else if (exp != NULL && !json_is_null(exp)) {
        rc = gy_error_set(err, GY_EPROTO, "token server answer: \"expires_in\" is not a number");
        goto out;
    }
    if (secs < 60)
        secs = 60;
    if (secs > 86400)
        secs = 86400;
    int64_t life = secs * 1000;
    int64_t margin = life / 10 < 30000 ? life / 10 : 30000;
    *expires_at_ms = now_ms + life - margin;
    *token = gy_xstrdup(t);
out:
    json_decref(root);
    return rc;
}

#define TOKEN_CACHE_MAX 64

struct token_entry {
    char *realm, *service, *scope, *username;
    char *token;
    int64_t expires_at_ms;
};

struct agent_token_cache {
    pthread_mutex_t lock;
    struct token_entry entries[TOKEN_CACHE_MAX];
    size_t n;
};

struct agent_token_cache *agent_token_cache_new(void)
{
    struct agent_token_cache *c = gy_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void token_entry_free(struct token_entry *e)
{
    free(e->realm);
    free(e->service);
    free(e->scope);
    free(e->username);
    wipe_free(e->token);
    memset(e, 0, sizeof(*e));
}

void agent_token_cache_free(struct agent_token_cache *cache)
{
    if (cache == NULL)
        return;
    for (size_t i = 0; i < cache->n; i++)
        token_entry_free(&cache->entries[i]);
    pthread_mutex_destroy(&cache->lock);
    free(cache);
}

static struct token_entry *token_find(struct agent_token_cache *c, const char *realm,
                                      const char *service, const char *scope, const char *username)
{
    for (size_t i = 0; i < c->n; i++) {
        struct token_entry *e = &c->entries[i];
        if (strcmp(e->realm, realm) == 0 && strcmp(e->service, service) == 0 &&
            strcmp(e->scope, scope) == 0 && strcmp(e->username, username) == 0)
            return e;
    }
    return NULL;
}

static void token_remove(struct agent_token_cache *c, struct token_entry *e)
{
    token_entry_free(e);
    size_t i = (size_t)(e - c->entries);
    c->entries[i] = c->entries[--c->n];
    memset(&c->entries[c->n], 0, sizeof(c->entries[c->n]));
}

char *agent_token_cache_get(struct agent_token_cache *cache, const char *realm, const char *service,
                            const char *scope, const char *username, int64_t now_ms)
{
    char *token = NULL;
    pthread_mutex_lock(&cache->lock);
    struct token_entry *e = token_find(cache, realm, service, scope, username);
    if (e != NULL && e->expires_at_ms > now_ms)
        token = gy_xstrdup(e->token);
    else if (e != NULL)
        token_remove(cache, e);
    pthread_mutex_unlock(&cache->lock);
    return token;
}

void agent_token_cache_put(struct agent_token_cache *cache, const char *realm, const char *service,
                           const char *scope, const char *username, const char *token,
                           int64_t expires_at_ms)
{
    pthread_mutex_lock(&cache->lock);
    struct token_entry *e = token_find(cache, realm, service, scope, username);
    if (e != NULL)
        token_remove(cache, e);
    if (cache->n == TOKEN_CACHE_MAX) {
        /* Evict the entry that expires soonest: an expired one if there is any. */
        size_t victim = 0;
        for (size_t i = 1; i < cache->n; i++)
            if (cache->entries[i].expires_at_ms < cache->entries[victim].expires_at_ms)
                victim = i;
        token_remove(cache, &cache->entries[victim]);
    }
    e = &cache->entries[cache->n++];
    e->realm = gy_xstrdup(realm);
    e->service = gy_xstrdup(service);
    e->scope = gy_xstrdup(scope);
    e->username = gy_xstrdup(username);
    e->token = gy_xstrdup(token);
    e->expires_at_ms = expires_at_ms;
    pthread_mutex_unlock(&cache->lock);
}

void agent_token_cache_drop(struct agent_token_cache *cache, const char *realm, const char *service,
                            const char *scope, const char *username)
{
    pthread_mutex_lock(&cache->lock);
    struct token_entry *e = token_find(cache, realm, service, scope, username);
    if (e != NULL)
        token_remove(cache, e);
    pthread_mutex_unlock(&cache->lock);
}
