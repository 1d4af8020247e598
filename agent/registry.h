/* A client of the OCI distribution API (registry v2): manifests and blobs pulled over
 * libcurl, with digests verified, mirrors, credentials and resumable downloads. */
#ifndef GANTRY_AGENT_REGISTRY_H
#define GANTRY_AGENT_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/registry_auth.h"
#include "common/error.h"
#include "common/image_ref.h"

/* The largest manifest or index accepted, as containerd and the distribution spec use. */
#define AGENT_REGISTRY_MANIFEST_MAX (4 * 1024 * 1024)
/* The largest image configuration accepted (a real one is a few kilobytes). */
#define AGENT_REGISTRY_CONFIG_MAX (8 * 1024 * 1024)
/* The most layers in a manifest, and entries in an index. */
#define AGENT_REGISTRY_ENTRIES_MAX 1024
/* The most mirrors per registry. */
#define AGENT_REGISTRY_MIRRORS_MAX 16

#define AGENT_MEDIA_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define AGENT_MEDIA_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define AGENT_MEDIA_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define AGENT_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

/* ---------------------------------------------------------------------------------------
 * Configuration: which registries are plain HTTP, their mirrors, where credentials are
 * (registry_config.c; the format is in docs/images.md, "Registries"). */

struct agent_registry_host {
    char *host;     /* "registry.example:5000", lower case, as references name it */
    bool insecure;  /* plain HTTP instead of HTTPS */
    char **mirrors; /* "https://HOST[:PORT]" or "http://HOST[:PORT]", tried in order */
    size_t n_mirrors;
};

struct agent_registry_config {
    char *auth_file; /* absolute path, or NULL for none */
    struct agent_registry_host *hosts;
    size_t n_hosts;
};

/* Reads a registry configuration (JSON, at most 1 MiB). Errors (GY_EINVAL, GY_EPARSE)
 * name the file and the field: `registry config /etc/gantry/registries.json:
 * registries."r.example".mirrors[1]: ...`. The caller frees out with
 * agent_registry_config_free, also after a failure. */
int agent_registry_config_load(const char *path, struct agent_registry_config *out,
                               struct gy_error *err);
/* Like agent_registry_config_load on text[0..len); origin names it in messages. */
int agent_registry_config_parse(const char *text, size_t len, const char *origin,
                                struct agent_registry_config *out, struct gy_error *err);
void agent_registry_config_free(struct agent_registry_config *cfg);
/* The settings for host (case does not matter), or NULL when it has none; cfg may be
 * NULL. */
const struct agent_registry_host *
agent_registry_config_find(const struct agent_registry_config *cfg, const char *host);

/* ---------------------------------------------------------------------------------------
 * Platforms, as OCI image indexes name them (GOOS/GOARCH words) */

struct agent_platform {
    char os[32];      /* "linux" */
    char arch[32];    /* "amd64", "arm64", "arm" */
    char variant[16]; /* "v8" for arm64, "v7" for armv7l, "" when none */
};

/* Maps a uname(2) machine ("x86_64", "aarch64", "armv7l", "i686", ...) to an OCI
 * architecture and variant, with os "linux". An unknown machine is taken as it is. */
void agent_platform_from_machine(const char *machine, struct agent_platform *out);
/* This node's platform, from uname(2). */
int agent_platform_detect(struct agent_platform *out, struct gy_error *err);
/* Parses "OS/ARCH[/VARIANT]" (as `--platform` takes it). */
int agent_platform_parse(const char *s, struct agent_platform *out, struct gy_error *err);
/* "linux/arm64/v8", or "linux/amd64" without a variant. */
void agent_platform_format(const struct agent_platform *p, char *buf, size_t len);

/* ---------------------------------------------------------------------------------------
 * Manifests */

enum agent_manifest_kind {
    AGENT_MANIFEST_NONE = 0,
    AGENT_MANIFEST_OCI_INDEX,
    AGENT_MANIFEST_OCI,
    AGENT_MANIFEST_DOCKER_LIST,
    AGENT_MANIFEST_DOCKER_V2,
};

/* A content descriptor: what a manifest says about a blob or another manifest. */
struct agent_descriptor {
    char media_type[128];
    char digest[GY_IMAGE_DIGEST_LEN + 1];
    int64_t size;
    bool has_platform;              /* index entries */
    struct agent_platform platform; /* characters outside [A-Za-z0-9._-] shown as '?' */
};

struct agent_manifest {
    enum agent_manifest_kind kind;
    char media_type[128];
    char digest[GY_IMAGE_DIGEST_LEN + 1]; /* sha256 of bytes */
    unsigned char *bytes;                 /* exactly as served: what the digest covers */
    size_t len;
    struct agent_descriptor config; /* image manifests */
    struct agent_descriptor *layers;
    size_t n_layers;
    struct agent_descriptor *manifests; /* indexes and manifest lists */
    size_t n_manifests;
};

/* True for an index or a Docker manifest list. */
bool agent_manifest_is_index(enum agent_manifest_kind kind);

/* Parses and checks a manifest: its kind from content_type (the Content-Type the registry
 * sent; NULL, "application/json" or "application/octet-stream" mean "look at the
 * content"), which must agree with the "mediaType" inside; schemaVersion 2; descriptors
 * with a media type, a sha256 digest and a size (a config at most
 * AGENT_REGISTRY_CONFIG_MAX). Schema 1 manifests are refused with a message saying so.
 * Copies bytes and computes their digest. The caller frees out with agent_manifest_free,
 * which is safe after a failure. */
int agent_manifest_parse(const void *bytes, size_t len, const char *content_type,
                         struct agent_manifest *out, struct gy_error *err);
void agent_manifest_free(struct agent_manifest *m);

/* Picks the entry of an index for platform p: same os and architecture, then the exact
 * variant before none, and for arm an older variant (v6 on a v7 node) last; the first of
 * equals wins. Only entries that are image manifests count. GY_ENOTFOUND, with the
 * platforms the index has, when none fits. */
int agent_manifest_pick(const struct agent_manifest *index, const struct agent_platform *p,
                        size_t *which, struct gy_error *err);

/* ---------------------------------------------------------------------------------------
 * The client
 *
 * One struct agent_registry is one connection cache (a libcurl easy handle) and must be
 * used by one thread at a time; several threads use several handles. Every call is
 * synchronous and blocks on the network: in the agent they run on the libuv thread pool
 * (uv_queue_work), and the loop thread stops them by setting *cancel. */

/* Called from the calling thread as a blob arrives: bytes of digest in the file so far
 * (a resumed download starts above 0) out of total. At most every 256 KiB, and once at
 * the start and the end. */
typedef void (*agent_registry_progress_fn)(void *arg, const char *digest, int64_t done,
                                           int64_t total);

struct agent_registry_options {
    const struct agent_registry_config *config; /* NULL: HTTPS everywhere, no mirrors */
    const struct agent_registry_auth *auth;     /* NULL: anonymous */
    struct agent_token_cache *tokens;           /* NULL: a cache of the handle's own */
    const struct agent_platform *platform;      /* NULL: this node's (uname) */
    long connect_timeout_ms;                    /* 0: 10 s */
    long low_speed_time_s;                      /* 0: 30 s below 1 KiB/s aborts */
    long request_timeout_ms;                    /* manifests, tokens: 0: 60 s in all */
    const atomic_bool *cancel;                  /* NULL, or set to true to stop */
    agent_registry_progress_fn progress;        /* NULL: none */
    void *progress_arg;
};

struct agent_registry;

/* Makes a handle; opts is copied, the config, auth and token cache it points to must
 * outlive the handle (they are only read, and the cache is thread-safe). */
int agent_registry_new(const struct agent_registry_options *opts, struct agent_registry **out,
                       struct gy_error *err);
void agent_registry_free(struct agent_registry *r);

/* GET /v2/ on the first endpoint of domain (mirrors first) that answers: 0 when one is a
 * registry (200, or 401 with a challenge, which is remembered so that later requests
 * authenticate at once). Connection errors say which address could not be reached. */
int agent_registry_ping(struct agent_registry *r, const char *domain, struct gy_error *err);

/* Fetches the manifest `reference` (a tag or a digest) of ref's repository, accepting
 * OCI indexes and manifests and Docker manifest lists and v2 manifests, and verifies it:
 * a digest reference must match the content's sha256, and so must the
 * Docker-Content-Digest header when the registry sends one. Mirrors are tried first.
 * Errors carry the HTTP status and the registry's own error ("404 Not Found:
 * MANIFEST_UNKNOWN: manifest unknown"); 404 is GY_ENOTFOUND, 401/403 GY_EPERM, 429 and
 * 5xx and connection failures GY_EUNAVAILABLE, timeouts GY_ETIMEOUT. */
int agent_registry_manifest_get(struct agent_registry *r, const struct gy_image_ref *ref,
                                const char *reference, struct agent_manifest *out,
                                struct gy_error *err);

/* What a reference resolves to on this node's platform. */
struct agent_registry_image {
    char resolved[GY_IMAGE_DIGEST_LEN + 1]; /* the digest the tag names (index or manifest) */
    struct agent_manifest index;            /* kind NONE when ref names an image manifest */
    struct agent_platform platform;         /* the entry picked from the index */
    struct agent_manifest manifest;         /* the image manifest: config and layers */
};

/* Resolves ref (its digest if it has one, else its tag) to an image manifest: fetches
 * the manifest, and for an index or manifest list the entry for the handle's platform
 * (GY_ENOTFOUND naming the platforms there are when none fits). The caller frees out with
 * agent_registry_image_free, also after a failure. */
int agent_registry_resolve(struct agent_registry *r, const struct gy_image_ref *ref,
                           struct agent_registry_image *out, struct gy_error *err);
void agent_registry_image_free(struct agent_registry_image *img);

struct agent_blob_result {
    int64_t size;         /* bytes of the blob */
    int64_t resumed_from; /* bytes that were already in the file and were kept */
    bool complete_before; /* the file already held the whole blob: nothing was fetched */
    bool range_ignored;   /* the server sent the whole blob to a range request */
};

/* Downloads blob (digest and size from a manifest) of ref's repository to path, whose
 * directory must exist, hashing while it streams. A file already at path is taken as the
 * start of the blob: its bytes are hashed and the rest is asked for with
 * `Range: bytes=N-` (a server that sends everything instead is read from byte 0). A blob
 * whose content does not match digest or size is an error naming the blob, and the file
 * is removed (after one retry from byte 0 when the download was resumed); after any other
 * failure (network, cancel) the partial file stays for the next try. Redirects (to a
 * storage service) are followed, with credentials sent only to the registry's own origin.
 * res may be NULL. */
int agent_registry_blob_fetch(struct agent_registry *r, const struct gy_image_ref *ref,
                              const struct agent_descriptor *blob, const char *path,
                              struct agent_blob_result *res, struct gy_error *err);

#endif
