/* Images from OCI registries on a node: a reference pulled into the node's content store
 * (agent/oci_store.h) through the registry client (agent/registry.h), and what a replica
 * of it starts from: the unpacked layers, base first, and the image's config. Every
 * function here blocks on the network or the disk and is meant for the libuv thread pool;
 * several may run at once (the store serialises downloads and unpacks of one blob). */
#ifndef GANTRY_AGENT_PULL_H
#define GANTRY_AGENT_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/bundle.h"
#include "agent/oci_store.h"
#include "agent/registry.h"
#include "common/error.h"
#include "common/image_ref.h"

struct agent_puller {
    struct oci_store *store;
    struct agent_registry_config registries; /* zeroed: HTTPS everywhere, no mirrors */
    struct agent_registry_auth *auth;        /* NULL: anonymous */
};

/* Opens the store under DATA_DIR/oci and reads the registry configuration at
 * registries_path (NULL: none) and the credentials file it names. */
int agent_puller_open(struct agent_puller *p, const char *data_dir, const char *registries_path,
                      struct gy_error *err);
void agent_puller_close(struct agent_puller *p);

/* What a pull did. */
struct agent_pull_result {
    char name[GY_IMAGE_REF_MAX + 1];               /* the normalised reference, the store's key */
    char manifest_digest[GY_IMAGE_DIGEST_LEN + 1]; /* the image manifest pulled */
    char resolved[GY_IMAGE_DIGEST_LEN + 1]; /* what the reference named (index or manifest) */
    size_t layers;
    int64_t bytes_fetched; /* from the registry (or its mirrors) in this pull */
    int64_t bytes_total;   /* config and layers, as the manifest gives them */
    bool cached;           /* the store held the image already: nothing was fetched */
};

/* Pulls ref (any form gy_image_ref_parse takes) unless the store holds it: resolves it
 * (a tag is looked up in the registry every time; a digest is not), fetches the config
 * and every layer not in the store (resuming a partial download), each checked against its
 * digest, and records the image under its normalised reference. When the registry cannot
 * be reached (GY_EUNAVAILABLE or GY_ETIMEOUT while resolving) and the store holds an image
 * under that normalised reference, that image is used (cached, with a warning logged). */
int agent_pull(struct agent_puller *p, const char *ref, struct agent_pull_result *out,
               struct gy_error *err);

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
