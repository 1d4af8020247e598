/* The agent's content-addressed OCI image store under DATA_DIR/oci: verified blobs, image
 * records naming a manifest, a config and layers, the image config parser, and garbage
 * collection. Layers are unpacked by oci_layer.h. The on-disk layout and its rules are in
 * docs/images.md, section "Store".
 *
 * Every function is safe to call from several threads and processes on the same store:
 * files appear by rename, and the store keeps its own lock files. Digests and names come
 * from the network, so every entry point validates them before they touch a path. */
#ifndef GANTRY_AGENT_OCI_STORE_H
#define GANTRY_AGENT_OCI_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* "sha256:" and 64 lower-case hex digits, and the buffer that holds one with its NUL. */
#define OCI_DIGEST_LEN 71
#define OCI_DIGEST_BUF 72

/* Longest image name or reference ("registry.example/team/app:1.2" or "app@sha256:..."). */
#define OCI_IMAGE_NAME_MAX 255
/* Most layers an image may have (overlayfs allows 500 lower directories; the runtime's
 * mount options are limited to a page, see runtime/mount.c). */
#define OCI_IMAGE_LAYERS_MAX 128
/* Bounds on what an image record carries besides its digests. */
#define OCI_ANNOTATIONS_MAX      256
#define OCI_ANNOTATION_KEY_MAX   256
#define OCI_ANNOTATION_VALUE_MAX 4096

/* Bounds on an image config (oci_config_parse) and the manifests and configs read with
 * oci_store_blob_read_small by the registry client. */
#define OCI_CONFIG_MAX_BYTES   (4u << 20)
#define OCI_CONFIG_STRING_MAX  65536
#define OCI_CONFIG_ITEMS_MAX   1024
#define OCI_MANIFEST_MAX_BYTES (4u << 20)

/* Default bound on one layer's unpacked size (see max_layer_bytes). */
#define OCI_LAYER_DEFAULT_MAX_BYTES (INT64_C(16) << 30)
/* Default age below which unreferenced blobs and layers survive a collection. */
#define OCI_STORE_DEFAULT_GC_GRACE_MS (INT64_C(15) * 60 * 1000)
/* Age after which an abandoned partial download is removed by a collection. */
#define OCI_STORE_INGEST_STALE_MS (INT64_C(24) * 3600 * 1000)

struct oci_store;

/* How a store behaves; fill with oci_store_options_default, then change fields. */
struct oci_store_options {
    /* Bound on one layer: on its decompressed tar stream and, separately, on the sum of
     * the sizes its entries declare (sparse files count at their full size). A layer over
     * it is refused with GY_ETOOBIG: this is the decompression-bomb guard. */
    int64_t max_layer_bytes;
    /* Unreferenced blobs and unpacked layers younger than this are kept by oci_store_gc,
     * so that a pull in progress (blobs committed, image not yet recorded) is not
     * collected under its feet. */
    int64_t gc_grace_ms;
    /* Resolve layer entry paths with a walk of single components (openat with O_NOFOLLOW)
     * even where openat2(RESOLVE_BENEATH) exists: for tests of the fallback, and for
     * sandboxes whose seccomp filter refuses openat2 with an unexpected error. */
    bool no_openat2;
    /* Wall clock in milliseconds; NULL means CLOCK_REALTIME. It stamps blobs, layers and
     * image use, which the collector compares with it. Must be thread-safe. */
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
};

void oci_store_options_default(struct oci_store_options *opts);

/* ---- Digests ---------------------------------------------------------------------- */

/* 0 when digest is exactly "sha256:" followed by 64 lower-case hex digits; otherwise
 * GY_EINVAL with a message that shows the (sanitised, shortened) input. */
int oci_digest_check(const char *digest, struct gy_error *err);

/* Writes "sha256:HEX" of a raw SHA-256 value into out. */
void oci_digest_format(const unsigned char sha256[32], char out[OCI_DIGEST_BUF]);

/* ---- The store -------------------------------------------------------------------- */

/* Opens (creating if needed, mode 0700: layers hold set-uid files that must not be
 * reachable by local users) the store at root, usually DATA_DIR/oci. root is made
 * absolute and canonical, so that the layer paths given to the runtime are the paths the
 * kernel shows in mountinfo. opts may be NULL for the defaults. Free with
 * oci_store_close. */
int oci_store_open(const char *root, const struct oci_store_options *opts, struct oci_store **out,
                   struct gy_error *err);
void oci_store_close(struct oci_store *store);

/* The canonical root directory and the options of an open store (borrowed). */
const char *oci_store_root(const struct oci_store *store);
const struct oci_store_options *oci_store_get_options(const struct oci_store *store);
/* The store's clock (options.clock_ms or CLOCK_REALTIME), in milliseconds. */
int64_t oci_store_now_ms(const struct oci_store *store);

/* Takes the store-wide lock: shared for work that must not overlap a collection
 * (recording images, unpacking layers), exclusive for the collection itself. Returns the
 * descriptor that holds it (close it to release) or a negative error. Blocks. */
int oci_store_lock(const struct oci_store *store, bool exclusive, struct gy_error *err);

/* Takes the exclusive lock ROOT/locks/NAME (NAME is "blob-HEX" or "layer-HEX"): returns
 * the descriptor that holds it (close it to release). With nonblock, GY_ECONFLICT when
 * someone holds it; otherwise blocks. */
int oci_store_lock_named(const struct oci_store *store, const char *name, bool nonblock,
                         struct gy_error *err);

/* ---- Blobs: ROOT/blobs/sha256/HEX ------------------------------------------------- */

/* The partial-download path of a blob, ROOT/ingest/HEX.partial. A download appends to
 * it and resumes from its size; it becomes a blob only through oci_store_blob_commit. */
int oci_store_ingest_path(const struct oci_store *store, const char *digest, char *buf, size_t len,
                          struct gy_error *err);

/* Opens (creating) the partial download of digest for appending: *fd is write-only with
 * O_APPEND and *offset is how many bytes it already holds, where a resumed download
 * starts (an HTTP Range). The caller closes *fd before committing. */
int oci_store_ingest_open(const struct oci_store *store, const char *digest, int *fd,
                          int64_t *offset, struct gy_error *err);

/* Serialises downloads of one blob between threads and processes: returns a descriptor
 * holding an exclusive lock for digest (close it to release), blocking until it is free.
 * Two downloads appending to one partial file would interleave; the digest check would
 * catch it, but only after the work is wasted. */
int oci_store_ingest_lock(const struct oci_store *store, const char *digest, struct gy_error *err);

/* Makes the file at partial_path (usually oci_store_ingest_path's) the blob digest:
 * hashes it again, streaming in bounded memory, and renames it into place only when the
 * SHA-256 matches (copying when partial_path is on another file system). On a mismatch
 * the partial file is removed and the error, GY_EPROTO, names the blob and both digests.
 * Committing a blob the store already has replaces it with identical content. */
int oci_store_blob_commit(struct oci_store *store, const char *partial_path, const char *digest,
                          struct gy_error *err);

/* Stores len bytes held in memory (a manifest, a config) as a blob. With expected_digest
 * non-NULL the bytes must hash to it (GY_EPROTO otherwise, nothing written). The digest is
 * written to out_digest when it is non-NULL. */
int oci_store_blob_write(struct oci_store *store, const void *data, size_t len,
                         const char *expected_digest, char out_digest[OCI_DIGEST_BUF],
                         struct gy_error *err);

/* True when the store holds the blob (false for an invalid digest). */
bool oci_store_blob_has(const struct oci_store *store, const char *digest);

/* The path of a blob, whether or not the store holds it. */
int oci_store_blob_path(const struct oci_store *store, const char *digest, char *buf, size_t len,
                        struct gy_error *err);

/* Reads a blob of at most max_bytes (GY_ETOOBIG beyond) into *out, NUL-terminated, and
 * verifies its digest; the caller frees *out. A blob whose content no longer matches its
 * name is removed (so that a pull fetches it again) and reported with GY_EIO;
 * GY_ENOTFOUND when the store does not hold it. */
int oci_store_blob_read_small(const struct oci_store *store, const char *digest, size_t max_bytes,
                              char **out, size_t *len, struct gy_error *err);

/* ---- Image config (OCI image-spec config.md) -------------------------------------- */

struct oci_port {
    uint16_t port;
    char protocol[8]; /* "tcp", "udp" or "sctp" */
};

struct oci_annotation {
    char *key;
    char *value;
};

/* The parts of an image config that running a container needs. Strings are owned by the
 * struct (free with oci_config_free); absent optional fields are NULL or empty. */
struct oci_config {
    char *os;           /* required, e.g. "linux" */
    char *architecture; /* required, e.g. "amd64" */
    char *variant;      /* e.g. "v8"; NULL when absent */
    char **entrypoint;  /* config.Entrypoint */
    size_t n_entrypoint;
    char **cmd; /* config.Cmd */
    size_t n_cmd;
    char **env; /* config.Env, each "KEY=VALUE" with a non-empty KEY */
    size_t n_env;
    char *working_dir; /* config.WorkingDir */
    char *user;        /* config.User: "name", "uid", "uid:gid", "name:group" */
    char *stop_signal; /* config.StopSignal as written ("SIGTERM", "15", "SIGRTMIN+3") */
    int stop_signo;    /* the same as a number; 0 when absent */
    struct oci_port *exposed_ports; /* config.ExposedPorts ("80/tcp", "53/udp", "8080") */
    size_t n_exposed_ports;
    struct oci_annotation *labels; /* config.Labels, sorted by key */
    size_t n_labels;
    char (*diff_ids)[OCI_DIGEST_BUF]; /* rootfs.diff_ids, base layer first */
    size_t n_diff_ids;
};

/* Parses len bytes of an OCI image config. Types are checked field by field (GY_EPARSE
 * naming the field, e.g. "config.Env[2]: expected a string"), sizes are bounded by the
 * OCI_CONFIG_* limits and OCI_IMAGE_LAYERS_MAX (GY_ETOOBIG), os, architecture and
 * rootfs (type "layers" with sha256 diff_ids) are required. Unknown fields are ignored.
 * On failure *out is left empty. */
int oci_config_parse(const char *json, size_t len, struct oci_config *out, struct gy_error *err);
void oci_config_free(struct oci_config *cfg);

/* ---- Images: ROOT/images/NAMEHASH.json -------------------------------------------- */

/* One recorded image. Owned by the struct; free with oci_image_free. */
struct oci_image {
    char *name;
    char manifest_digest[OCI_DIGEST_BUF];
    char config_digest[OCI_DIGEST_BUF];
    char (*layers)[OCI_DIGEST_BUF];   /* layer blobs, base first, as in the manifest */
    char (*diff_ids)[OCI_DIGEST_BUF]; /* the config's rootfs.diff_ids, one per layer */
    size_t n_layers;
    struct oci_annotation *annotations; /* sorted by key */
    size_t n_annotations;
    int64_t created_ms;   /* when oci_image_put recorded it */
    int64_t last_used_ms; /* last oci_image_put or oci_image_lowerdirs */
};

/* 0 when name is a valid image name or reference: 1 to OCI_IMAGE_NAME_MAX characters of
 * [A-Za-z0-9._:/@+-], starting with a letter or digit. */
int oci_image_name_check(const char *name, struct gy_error *err);

/* Records image name (replacing a record of the same name atomically): the manifest, the
 * config and the layer blobs (base first, as the manifest lists them) must all be in the
 * store (GY_ENOTFOUND naming the missing one). The config is read and parsed, and its
 * rootfs.diff_ids must be one per layer; they are kept so that layers are checked when
 * unpacked. annotations (borrowed) may be NULL when n_annotations is 0. */
int oci_image_put(struct oci_store *store, const char *name, const char *manifest_digest,
                  const char *config_digest, const char *const *layers, size_t n_layers,
                  const struct oci_annotation *annotations, size_t n_annotations,
                  struct gy_error *err);

/* Looks up one image; GY_ENOTFOUND when there is no record of that name. */
int oci_image_get(const struct oci_store *store, const char *name, struct oci_image *out,
                  struct gy_error *err);

/* Every recorded image, sorted by name; free with oci_image_list_free. A damaged record is
 * skipped with a warning in the log. */
int oci_image_list(const struct oci_store *store, struct oci_image **out, size_t *n,
                   struct gy_error *err);

/* Removes an image's record; its blobs and layers go at the next oci_store_gc unless
 * another image uses them. GY_ENOTFOUND when absent. */
int oci_image_remove(struct oci_store *store, const char *name, struct gy_error *err);

/* The unpacked layer directories of an image, unpacking (and checking against the
 * config's diff_ids) any layer not unpacked yet, and marks the image used now. The order
 * is the one rt_create_opts.layers takes: BASE LAYER FIRST (runtime/mount.c reverses it
 * into overlayfs' topmost-first lowerdir= option). *dirs is an array of *n strings; free
 * it with oci_strv_free. */
int oci_image_lowerdirs(struct oci_store *store, const char *name, char ***dirs, size_t *n,
                        struct gy_error *err);

void oci_image_free(struct oci_image *image);
void oci_image_list_free(struct oci_image *images, size_t n);
void oci_strv_free(char **v, size_t n);

/* ---- Overlay mounts --------------------------------------------------------------- */

/* The directories overlay mounts of this machine use (lowerdir, upperdir, workdir), read
 * from the mountinfo of every mount namespace the agent can see, since the runtime mounts
 * each container's root in the container's own namespace. */
struct oci_overlay_mounts {
    char **dirs;
    size_t n;
};

/* Reads them; an agent that cannot read /proc/self/mountinfo gets GY_EIO and should then
 * keep everything. */
int oci_overlay_mounts_read(struct oci_overlay_mounts *out, struct gy_error *err);
/* True when dir, or something beneath it, is one of the mounts' directories. */
bool oci_overlay_mounts_use(const struct oci_overlay_mounts *mounts, const char *dir);
void oci_overlay_mounts_free(struct oci_overlay_mounts *mounts);

/* ---- Garbage collection ----------------------------------------------------------- */

/* Answers whether a replica on this node uses image (running, starting or about to be
 * started); such images, and everything they need, are never collected. It runs while the
 * collection holds the store lock, so it must not call back into the store. */
typedef bool (*oci_image_in_use_fn)(const struct oci_image *image, void *arg);

/* What a collection removed; free with oci_gc_report_free. */
struct oci_gc_report {
    char **images; /* names of image records removed to meet the budget */
    size_t n_images;
    char **blobs; /* digests of blobs removed */
    size_t n_blobs;
    char **layers; /* digests of unpacked layers removed */
    size_t n_layers;
    size_t n_partials;   /* abandoned downloads, unpack directories, record temporaries */
    int64_t bytes_freed; /* sizes of the blobs, unpacked layers and downloads removed */
    int64_t bytes_total; /* the same measure of what the store holds afterwards */
};

/* Collects the store, holding its lock exclusively (unpacks and oci_image_put wait):
 * 1. removes abandoned partial downloads (older than OCI_STORE_INGEST_STALE_MS and not
 *    locked with oci_store_ingest_lock) and abandoned unpack directories;
 * 2. removes blobs and unpacked layers no recorded image references and older than
 *    options.gc_grace_ms;
 * 3. then, while the store holds more than budget_bytes (a negative budget means none),
 *    removes whole images, least recently used first, that in_use (may be NULL: nothing
 *    is in use) says no replica uses, with the blobs and layers no remaining image needs.
 * An unpacked layer that an overlay mount uses is never removed, whatever the records
 * say. Sizes are apparent sizes: blob file sizes plus the bytes of the files in each
 * layer. report may be NULL. */
int oci_store_gc(struct oci_store *store, int64_t budget_bytes, oci_image_in_use_fn in_use,
                 void *arg, struct oci_gc_report *report, struct gy_error *err);
void oci_gc_report_free(struct oci_gc_report *report);

/* A signal as an image config's StopSignal names it ("SIGTERM", "TERM", "15",
 * "SIGRTMIN+3"): its number, or -1. */
int oci_signal_parse(const char *s);

#endif
