/* Images loaded from files into the node's OCI store (agent/oci_store.h), for nodes that
 * reach no registry: an OCI image layout (a directory, or a tar archive of one, possibly
 * gzip- or zstd-compressed) or a `docker save` archive. docs/images.md, "Air-gapped nodes:
 * image load", describes the formats, how names are chosen and what is refused. */
#ifndef GANTRY_AGENT_IMAGE_LOAD_H
#define GANTRY_AGENT_IMAGE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "agent/oci_store.h"
#include "agent/registry.h"
#include "common/error.h"
#include "common/image_ref.h"

/* The most entries an archive may have, and the longest path inside it. */
#define AGENT_LOAD_ENTRIES_MAX 16384
#define AGENT_LOAD_PATH_MAX    1024
/* The largest oci-layout, index.json or manifest.json accepted (manifests and configs in
 * blobs are bounded by OCI_MANIFEST_MAX_BYTES and OCI_CONFIG_MAX_BYTES when read back). */
#define AGENT_LOAD_LAYOUT_MAX 4096
#define AGENT_LOAD_INDEX_MAX  OCI_MANIFEST_MAX_BYTES

enum agent_load_format {
    AGENT_LOAD_OCI_DIR = 1, /* an OCI image layout directory */
    AGENT_LOAD_OCI_TAR,     /* the same as a tar archive */
    AGENT_LOAD_DOCKER,      /* a `docker save` archive (manifest.json) */
};

struct agent_load_options {
    /* The name to record the image under (any form gy_image_ref_parse takes), instead of
     * the one the archive gives; NULL: the archive's. Refused for an archive of several
     * images. */
    const char *name;
    /* The platform an image index is resolved for; NULL: this node's (uname). */
    const struct agent_platform *platform;
};

/* One image recorded by a load. */
struct agent_loaded_image {
    char name[GY_IMAGE_REF_MAX + 32];     /* normalised reference: the store's key */
    char manifest_digest[OCI_DIGEST_BUF]; /* the image manifest recorded */
    size_t layers;
    int64_t bytes; /* config and layers, as stored */
};

/* What a load did; free with agent_load_result_free. */
struct agent_load_result {
    enum agent_load_format format;
    struct agent_loaded_image *images; /* in the order the archive lists them */
    size_t n_images;
};

/* Loads the image or images at path into store and records them (oci_image_put):
 *
 * - a directory must be an OCI image layout (oci-layout, index.json, blobs/sha256/HEX);
 * - a file is read once, as a stream, with libarchive: a tar archive, plain, gzip or zstd,
 *   holding an OCI image layout, or a `docker save` archive (manifest.json naming a
 *   config and uncompressed layer tars by path). An archive with both is read as the OCI
 *   layout.
 *
 * Every blob goes into the store through an ingest file and oci_store_blob_commit, which
 * checks its SHA-256; manifests and configs are read back from the store, bounded. For a
 * docker save archive the layer tars' digests must equal the config's rootfs.diff_ids, and
 * an OCI manifest is built for them. An index entry that is itself an index, or several
 * entries of one name, are resolved for opts->platform as a pull would
 * (agent_manifest_pick).
 *
 * Names: opts->name, else the index entry's annotation io.containerd.image.name or
 * org.opencontainers.image.ref.name, or each of a docker save image's RepoTags, normalised
 * (gy_image_ref_parse); an image without one is refused (GY_EINVAL). A name with a digest
 * must name the manifest or the index entry loaded.
 *
 * Refused with an error that names path and the entry: absolute paths and ".." components
 * (GY_EPERM), links that leave the archive, entries other than files, directories and
 * links, a blob whose content does not match its name (GY_EPROTO), a missing blob
 * (GY_ENOTFOUND), sizes past the bounds above or the store's max_layer_bytes
 * (GY_ETOOBIG). Every image is checked before any is recorded, so a refused archive
 * records nothing (blobs committed on the way are collected by oci_store_gc). Holds the
 * store's shared lock while it works. Blocks on the disk. */
int agent_image_load(struct oci_store *store, const char *path,
                     const struct agent_load_options *opts, struct agent_load_result *out,
                     struct gy_error *err);
void agent_load_result_free(struct agent_load_result *res);

/* "OCI image layout directory", "OCI image layout archive", "docker save archive". */
const char *agent_load_format_name(enum agent_load_format format);

#endif
