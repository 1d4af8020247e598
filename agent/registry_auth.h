/* Registry authentication: credentials from an auth file, WWW-Authenticate challenges
 * and the bearer tokens a registry's token server hands out. No network I/O here; the
 * client (registry.c) makes the requests. Credentials and tokens are never logged and
 * never put in error messages. */
#ifndef GANTRY_AGENT_REGISTRY_AUTH_H
#define GANTRY_AGENT_REGISTRY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* The largest auth file read (a real one is a few hundred bytes). */
#define AGENT_AUTH_FILE_MAX (1024 * 1024)
/* The largest token server answer read, and the longest token kept. */
#define AGENT_AUTH_TOKEN_BODY_MAX (1024 * 1024)
#define AGENT_AUTH_TOKEN_MAX      (64 * 1024)

/* One user name and password, for a registry or a part of one. */
struct agent_registry_creds {
    char *username;
    char *password;
};

/* The credentials of an auth file (opaque). */
struct agent_registry_auth;

/* Reads an auth file in the format of containers-auth.json(5) and Docker's config.json:
 *
 *   {"auths": {"registry.example:5000": {"auth": "BASE64(user:password)"},
 *              "quay.io/team":          {"username": "u", "password": "p"},
 *              "https://index.docker.io/v1/": {"auth": "..."}}}
 *
 * Keys are a registry host, optionally followed by a repository namespace (the most
 * specific key wins), or a URL (scheme and a "/v1/" or "/v2/" path are dropped;
 * index.docker.io and registry-1.docker.io mean docker.io). An entry with no credentials
 * (Docker writes `{}` when a credential helper keeps them) is skipped; other keys of the
 * file ("credsStore", "credHelpers") are ignored. A missing file is an empty set.
 * Errors name the file and the key, never a secret. The caller frees *out with
 * agent_registry_auth_free. */
int agent_registry_auth_load(const char *path, struct agent_registry_auth **out,
                             struct gy_error *err);

/* Like agent_registry_auth_load on text[0..len); origin names it in messages. */
int agent_registry_auth_parse(const char *text, size_t len, const char *origin,
                              struct agent_registry_auth **out, struct gy_error *err);

/* Wipes the secrets from memory and frees auth (which may be NULL). */
void agent_registry_auth_free(struct agent_registry_auth *auth);

/* The credentials for repository path (e.g. "team/web") on registry host (e.g.
 * "registry.example:5000", compared without regard to case), or NULL; owned by auth.
 * auth may be NULL. */
const struct agent_registry_creds *agent_registry_auth_find(const struct agent_registry_auth *auth,
                                                            const char *host, const char *path);

/* The file the set was read from (for messages), or "" for an empty set. */
const char *agent_registry_auth_origin(const struct agent_registry_auth *auth);

/* The number of entries with credentials. */
size_t agent_registry_auth_count(const struct agent_registry_auth *auth);

/* ---------------------------------------------------------------------------------------
 * Challenges (RFC 7235, and the Docker token authentication specification) */

enum agent_auth_scheme {
    AGENT_AUTH_NONE = 0,
    AGENT_AUTH_BASIC,
    AGENT_AUTH_BEARER,
};

#define AGENT_AUTH_REALM_MAX   2048
#define AGENT_AUTH_SERVICE_MAX 512
#define AGENT_AUTH_SCOPE_MAX   2048

struct agent_auth_challenge {
    enum agent_auth_scheme scheme;
    char realm[AGENT_AUTH_REALM_MAX];     /* Bearer: the token server's URL; Basic: a label */
    char service[AGENT_AUTH_SERVICE_MAX]; /* Bearer: "" when absent */
    char scope[AGENT_AUTH_SCOPE_MAX];     /* Bearer: "" when absent */
};

/* Parses the value of WWW-Authenticate (several headers joined by ", " are one value):
 * a list of challenges `SCHEME [token68 | name=value, ...]`, values tokens or quoted
 * strings with backslash escapes, commas and '=' allowed inside quotes. Picks Bearer when
 * offered, else Basic; other schemes are skipped. GY_EPROTO when the value is malformed
 * (unterminated quote, a parameter given twice, a value longer than its buffer), when
 * Bearer has no realm, or when neither Basic nor Bearer is offered. */
int agent_auth_challenge_parse(const char *header, struct agent_auth_challenge *out,
                               struct gy_error *err);

/* Parses a token server's answer, {"token": T} or {"access_token": T} with an optional
 * "expires_in" in seconds (60 when absent or smaller, as the token specification says;
 * at most a day). Sets *token (the caller frees it) and *expires_at_ms: now_ms plus the
 * lifetime less a margin of 10% (at most 30 s) for the time requests take. A token that
 * could not travel in an HTTP header (control characters, blanks, more than
 * AGENT_AUTH_TOKEN_MAX bytes) is refused with GY_EPROTO. */
int agent_auth_token_parse(const char *body, size_t len, int64_t now_ms, char **token,
                           int64_t *expires_at_ms, struct gy_error *err);

/* ---------------------------------------------------------------------------------------
 * Token cache: bearer tokens by realm, service, scope and user, until they expire. Safe to
 * share between threads. Time is passed in (now_ms, any monotonic clock) so that tests
 * decide it. */

struct agent_token_cache;

struct agent_token_cache *agent_token_cache_new(void);
/* Wipes the tokens and frees cache (which may be NULL). */
void agent_token_cache_free(struct agent_token_cache *cache);

/* A copy of the token cached for the key that is still valid at now_ms (the caller frees
 * it), or NULL. username is "" for anonymous tokens. */
char *agent_token_cache_get(struct agent_token_cache *cache, const char *realm, const char *service,
                            const char *scope, const char *username, int64_t now_ms);

/* Stores a copy of token until expires_at_ms, replacing one for the same key. The cache
 * holds at most 64 tokens: expired ones go first, then the one that expires soonest. */
void agent_token_cache_put(struct agent_token_cache *cache, const char *realm, const char *service,
                           const char *scope, const char *username, const char *token,
                           int64_t expires_at_ms);

/* Forgets the token of a key (the registry refused it before it expired). */
void agent_token_cache_drop(struct agent_token_cache *cache, const char *realm, const char *service,
                            const char *scope, const char *username);

#endif
