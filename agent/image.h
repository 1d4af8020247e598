/* The node's image store: named root filesystems under DATA_DIR/images, imported from a
 * directory or a tarball, handed to the runtime as read-only overlay layers. */
#ifndef GANTRY_AGENT_IMAGE_H
#define GANTRY_AGENT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/image_ref.h"

#define AGENT_IMAGE_NAME_MAX GY_IMAGE_LOCAL_NAME_MAX

struct agent_image {
    char name[AGENT_IMAGE_NAME_MAX + 1];
    char rootfs[4096];   /* absolute path of the layer directory */
    int64_t imported_ms; /* wall clock of the import */
    int64_t size_bytes;  /* apparent size of the files */
};

/* True when name is a valid image name: 1..128 of [a-z0-9._:-], starting with a letter or
 * digit, not "." or "..". Names are single path components, so they cannot escape the
 * store. */
int agent_image_name_check(const char *name, struct gy_error *err);

/* Imports the directory or tarball (.tar, .tar.gz, .tgz, .tar.xz; anything `tar` reads)
 * at path as image name in the store under data_dir, replacing an image of the same name
 * only once the new one is complete. Owners, modes, symlinks and device nodes are kept. */
int agent_image_import(const char *data_dir, const char *name, const char *path,
                       struct agent_image *out, struct gy_error *err);

/* Looks up one image; GY_ENOTFOUND when the store does not have it. */
int agent_image_get(const char *data_dir, const char *name, struct agent_image *out,
                    struct gy_error *err);

/* All images, sorted by name; the caller frees *out. */
int agent_image_list(const char *data_dir, struct agent_image **out, size_t *n,
                     struct gy_error *err);

/* Removes an image; GY_ENOTFOUND when absent. */
int agent_image_remove(const char *data_dir, const char *name, struct gy_error *err);

#endif
