/* Unpacking OCI layer blobs (tar, gzip or zstd, told apart by their content) once each
 * into ROOT/layers/HEX/fs, in the form overlayfs reads as a lower directory, without
 * letting a hostile archive write anywhere else. */
#ifndef GANTRY_AGENT_OCI_LAYER_H
#define GANTRY_AGENT_OCI_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "agent/oci_store.h"
#include "common/error.h"

/* What ROOT/layers/HEX/layer.json records about an unpacked layer. */
struct oci_layer_info {
    char digest[OCI_DIGEST_BUF];  /* the layer blob (compressed) */
    char diff_id[OCI_DIGEST_BUF]; /* SHA-256 of the decompressed tar stream */
    char compression[8];          /* "none", "gzip" or "zstd", as found in the content */
    int64_t size_bytes;           /* bytes of file content written */
    int64_t entries;              /* tar entries applied */
    int64_t unpacked_ms;          /* store clock when the unpack completed */
};

/* Unpacks the layer blob digest (which the store must hold) into ROOT/layers/HEX/fs and
 * sets *out_dir to that path (the caller frees it). A layer is unpacked once: later calls,
 * from any thread or process, return the same directory; concurrent first calls wait for
 * one another (a lock file per layer), and a rename race between unpackers that did not
 * share the lock leaves one complete copy.
 *
 * The blob's digest is checked again while reading it, and the decompressed stream is
 * hashed: when diff_id is non-NULL it must match (GY_EPROTO otherwise, nothing kept), also
 * for a layer unpacked earlier without one.
 *
 * Entries keep their owner (when the agent is root), mode including set-uid bits, mtime,
 * xattrs where the file system takes them (the image's own trusted.overlay.* and
 * user.overlay.* are dropped), symlinks, hard links to earlier entries of the same layer,
 * fifos, and device nodes only when the agent is root (GY_EPERM otherwise). OCI whiteouts
 * become overlayfs' forms: ".wh.NAME" a 0/0 character device NAME, ".wh..wh..opq" the xattr
 * trusted.overlay.opaque=y on its directory (which needs root).
 *
 * Refused with an error naming the layer digest and the entry: ".." components, absolute
 * paths, any entry or hard-link target whose path goes through a symlink, hard links to
 * paths outside the layer, names longer than NAME_MAX, unknown entry types, and layers
 * past options.max_layer_bytes (GY_ETOOBIG). Paths are resolved beneath the layer's root
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where the kernel has it, and a walk
 * of single components opened with O_NOFOLLOW elsewhere. */
int oci_layer_unpack(struct oci_store *store, const char *digest, const char *diff_id,
                     char **out_dir, struct gy_error *err);

/* The directory a layer unpacks into, ROOT/layers/HEX/fs, whether or not it exists. */
int oci_layer_dir(const struct oci_store *store, const char *digest, char *buf, size_t len,
                  struct gy_error *err);

/* Reads what the store recorded about an unpacked layer; GY_ENOTFOUND when the layer is
 * not unpacked. */
int oci_layer_info(const struct oci_store *store, const char *digest, struct oci_layer_info *out,
                   struct gy_error *err);

/* Removes an unpacked layer (not its blob). GY_ECONFLICT when an overlay mount uses it
 * (per mounts, or, when mounts is NULL, the mounts read now) or an unpack of it is under
 * way; GY_ENOTFOUND when it is not unpacked. The directory leaves ROOT/layers by one
 * rename before it is deleted, so a half-deleted layer never looks complete. */
int oci_layer_remove(struct oci_store *store, const char *digest,
                     const struct oci_overlay_mounts *mounts, struct gy_error *err);

/* Removes unpack directories that no unpack is working in (left by a crash) from
 * ROOT/tmp; returns how many. */
int oci_layer_clean_tmp(struct oci_store *store, struct gy_error *err);

#endif
