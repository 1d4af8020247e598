/* Whole-image operations a node runs for `gantry-agent image` and for the leader's image
 * requests (`gantry image pull|rm`, docs/images.md, "Images across the cluster"): a pull
 * that leaves the layers unpacked, and finding and removing an image by the name or
 * reference a user gives, with the check that no replica runs from it. The pull and the
 * removal block (the thread pool's work); finding reads small files. */
#ifndef GANTRY_AGENT_IMAGE_OPS_H
#define GANTRY_AGENT_IMAGE_OPS_H

#include <stdbool.h>

#include "agent/pull.h"
#include "common/error.h"
#include "common/image_ref.h"

/* Pulls ref (agent_pull_from with opts, which may be NULL: from the registry only) and
 * unpacks its layers and reads its config (agent_image_prepare) as a replica's first start
 * would, so that the start finds the image ready. */
int agent_image_pull_unpack(struct agent_puller *p, const char *ref,
                            const struct agent_pull_options *opts, struct agent_pull_result *out,
                            struct gy_error *err);

/* An image on this node, as a user names it. */
struct agent_image_target {
    bool imported;                    /* a root filesystem imported under name (agent/image.h) */
    char name[GY_IMAGE_REF_MAX + 32]; /* else the OCI store's name: the normalised reference */
};

/* Finds what ref names on this node the way a replica's start does: a root filesystem
 * imported under that name first, else the OCI store's image of that normalised reference.
 * GY_ENOTFOUND when neither exists, with the message `image REF not found on node NODE`;
 * GY_EINVAL when ref is neither an imported image's name nor a reference. */
int agent_image_target_find(struct agent_puller *p, const char *data_dir, const char *ref,
                            const char *node, struct agent_image_target *out, struct gy_error *err);

/* True when a replica of image (its spec's image) with digest (its pinned image_digest,
 * NULL or "" when none) would run from target. */
bool agent_image_target_used_by(const struct agent_image_target *target, const char *image,
                                const char *digest);

/* Removes target's record; its files go now (an imported root filesystem no mount uses) or
 * at the store's next collection (blobs and layers no other image needs). */
int agent_image_target_remove(struct agent_puller *p, const char *data_dir,
                              const struct agent_image_target *target, struct gy_error *err);

#endif
