/* Images from OCI registries on a node: a reference pulled into the node's content store
 * (agent/oci_store.h) through the registry client (agent/registry.h) or from the layer
 * servers of the nodes of its cloud (agent/peer_fetch.h), and what a replica of it starts
 * from: the unpacked layers, base first, and the image's config. Every function here
 * blocks on the network or the disk and is meant for the libuv thread pool; several may
 * run at once (one download of a blob at a time, and at most max_downloads of them). */
#ifndef GANTRY_AGENT_PULL_H
#define GANTRY_AGENT_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/bundle.h"
#include "agent/oci_store.h"
#include "agent/peer_fetch.h"
#include "agent/registry.h"
#include "common/error.h"
#include "common/image_ref.h"

/* Blobs one pull fetches at once, and the default bound for the node (--max-downloads). */
#define AGENT_PULL_PARALLEL          3
#define AGENT_PULL_MAX_DOWNLOADS     3
#define AGENT_PULL_MAX_DOWNLOADS_MAX 64

struct agent_pull_shared;

struct agent_puller {
    struct oci_store *store;
    struct agent_registry_config registries; /* zeroed: HTTPS everywhere, no mirrors */
    struct agent_registry_auth *auth;        /* NULL: anonymous */
    struct agent_token_cache *tokens;        /* shared by the pulls' handles; NULL: each its own */
    /* The node's download slots and the blobs in flight (pull-internal.h); NULL in a
     * puller put together by hand: no bound, no sharing between pulls. */
    struct agent_pull_shared *shared;
};

/* Opens the store under DATA_DIR/oci and reads the registry configuration at
 * registries_path (NULL: none) and the credentials file it names. At most
 * AGENT_PULL_MAX_DOWNLOADS blobs download at once until agent_puller_set_max_downloads. */
int agent_puller_open(struct agent_puller *p, const char *data_dir, const char *registries_path,
                      struct gy_error *err);
void agent_puller_close(struct agent_puller *p);

/* The most blobs all the pulls of the node download at once (1 to
 * AGENT_PULL_MAX_DOWNLOADS_MAX); the layer server's downloads for peers are bounded by the
 * same number, counted apart. Call before the first pull. */
int agent_puller_set_max_downloads(struct agent_puller *p, int n, struct gy_error *err);

/* What a pull did. */
struct agent_pull_result {
    char name[GY_IMAGE_REF_MAX + 1];               /* the normalised reference, the store's key */
    char manifest_digest[GY_IMAGE_DIGEST_LEN + 1]; /* the image manifest pulled */
    char resolved[GY_IMAGE_DIGEST_LEN + 1]; /* what the reference named (index or manifest) */
    size_t layers;
    int64_t bytes_fetched; /* from the registry (or its mirrors) in this pull */
    int64_t bytes_peers;   /* from the layer servers of peers */
    int64_t bytes_total;   /* config and layers, as the manifest gives them */
    bool cached;           /* the store held the image already: nothing was fetched */
};

/* Called from any of a pull's threads (it must be thread-safe): bytes of the image's
 * config and layers in the store or arrived so far, out of total. */
typedef void (*agent_pull_progress_fn)(void *arg, int64_t done, int64_t total);

/* Where a pull may fetch from besides the registry, and whom it tells how far it got. */
struct agent_pull_options {
    /* The nodes of this node's cloud with a layer server (the leader's image_peers); this
     * node among them is recognised by name and stands for the registry. */
    const struct agent_image_peer *peers;
    size_t n_peers;
    const char *self;                /* this node's name; NULL: peers are not used */
    agent_pull_progress_fn progress; /* NULL: none */
    void *progress_arg;
};

/* Pulls ref (any form gy_image_ref_parse takes) unless the store holds it: resolves it
 * (a tag is looked up in the registry every time; a digest is not), fetches the config
 * and every layer not in the store (resuming a partial download), each checked against its
 * digest, and records the image under its normalised reference. When the registry cannot
 * be reached (GY_EUNAVAILABLE or GY_ETIMEOUT while resolving) and the store holds an image
 * under that normalised reference, that image is used (cached, with a warning logged). */
int agent_pull(struct agent_puller *p, const char *ref, struct agent_pull_result *out,
               struct gy_error *err);

/* agent_pull with peers (opts may be NULL: the registry only). Each blob the store lacks
 * is asked of the nodes ranked by agent_peer_rank for its digest, this node with them:
 * when this node ranks first it fetches the blob from the registry (then from the peers,
 * in their order, if the registry fails); otherwise from the peers in order and then the
 * registry. A peer's blob is checked as it streams; one that is damaged is logged with
 * the blob and the peer and not used. Up to AGENT_PULL_PARALLEL blobs of a pull are
 * fetched at once. A reference by digest whose manifest the registry cannot give
 * (GY_EUNAVAILABLE, GY_ETIMEOUT) is asked of the peers too. */
int agent_pull_from(struct agent_puller *p, const char *ref, const struct agent_pull_options *opts,
                    struct agent_pull_result *out, struct gy_error *err);

/* What a replica of the stored image named name (a normalised reference) starts from:
 * its layer directories, base first (the runtime's order; the caller frees them with
 * oci_strv_free), and its config's defaults (free with agent_image_defaults_free). A User
 * given by name is looked up in the image's /etc/passwd and /etc/group. */
int agent_image_prepare(struct agent_puller *p, const char *name, char ***dirs, size_t *n_dirs,
                        struct agent_image_defaults *defaults, struct gy_error *err);
void agent_image_defaults_free(struct agent_image_defaults *d);

/* The uid and gid an OCI config's User means ("uid", "uid:gid", "name", "name:group"),
 * names looked up in the passwd and group files of dirs (the image's layers, base first;
 * the topmost file wins, a whiteout hides it). */
int agent_image_user(const char *user, char *const *dirs, size_t n_dirs, uint32_t *uid,
                     uint32_t *gid, struct gy_error *err);

#endif
