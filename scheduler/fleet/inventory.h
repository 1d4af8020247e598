/* The images nodes hold, as their agents report them (Hello.images, Heartbeat.images) and
 * the leader keeps them in memory with each agent session: checked and bounded where they
 * arrive, grouped for GET /v1/images, and weighed for ImageLocality, the placement
 * tie-breaker that prefers a node already holding a replica's image (docs/images.md,
 * "Images across the cluster"). Pure functions of their arguments. */
#ifndef GANTRY_SCHEDULER_FLEET_INVENTORY_H
#define GANTRY_SCHEDULER_FLEET_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/image_ref.h"
#include "proto/gantry.pb-c.h"

/* Bounds on one node's report; what lies beyond them is dropped with a warning. */
#define SCH_INVENTORY_IMAGES_MAX      1024
#define SCH_INVENTORY_LAYERS_MAX      128 /* as the agent's store allows (oci_store.h) */
#define SCH_INVENTORY_LABELS_MAX      32
#define SCH_INVENTORY_LABEL_KEY_MAX   128
#define SCH_INVENTORY_LABEL_VALUE_MAX 256

struct sch_image_label {
    char *key;
    char *value;
};

/* One image a node holds: from a registry (digest set) or a root filesystem imported under
 * a name (digest empty, no layers). Owned by its inventory. */
struct sch_node_image {
    char *name;                              /* the normalised reference, or the imported name */
    char digest[GY_IMAGE_DIGEST_LEN + 1];    /* its manifest's digest, or "" */
    char resolved[GY_IMAGE_DIGEST_LEN + 1];  /* what its reference named when pulled, or "" */
    int64_t size;                            /* bytes of config and layers */
    char (*layers)[GY_IMAGE_DIGEST_LEN + 1]; /* layer digests, base first */
    int64_t *layer_sizes;
    size_t n_layers;
    struct sch_image_label *labels; /* OCI annotations and config labels */
    size_t n_labels;
    uint64_t pulled_ms;
};

struct sch_inventory_layer;

/* Everything one node reported, and an index of the layers it holds. Zero it before the
 * first sch_inventory_take. */
struct sch_inventory {
    struct sch_node_image *images;
    size_t n;
    struct sch_inventory_layer *layers; /* by digest, with its size */
};

/* Replaces inv with the images of msg that pass the checks: a registry image's name is a
 * reference (gy_image_ref_parse) and its digest, resolved digest and layers are sha256
 * digests (gy_image_digest_valid), an imported image's name passes
 * gy_image_local_name_check; sizes are not negative, one size per layer, at most
 * SCH_INVENTORY_LAYERS_MAX layers. An image that fails is dropped, as are the images past
 * SCH_INVENTORY_IMAGES_MAX, the labels past SCH_INVENTORY_LABELS_MAX, and labels whose key
 * or value is not printable ASCII within its bound. Returns how many images and labels
 * were dropped; problem (len bytes) then holds the first reason, e.g. `image
 * "docker.io/x:1": layers[2]: "sha256:zz" is not a sha256 digest`, for the caller's log. */
size_t sch_inventory_take(struct sch_inventory *inv, const Gantry__ImageInventory *msg,
                          char *problem, size_t len);
void sch_inventory_clear(struct sch_inventory *inv);

/* One image under the same checks (labels past the bounds dropped, counted in *dropped
 * when it is not NULL): 0 with *out filled (free with sch_node_image_free), or -1 with the
 * reason in problem and *out empty. */
int sch_node_image_take(struct sch_node_image *out, const Gantry__NodeImage *msg, size_t *dropped,
                        char *problem, size_t len);
void sch_node_image_free(struct sch_node_image *img);

/* ---- ImageLocality ---------------------------------------------------------------- */

/* The image a workload runs, as the inventories are searched for it. */
struct sch_image_wanted {
    const char *image;                    /* the spec's image as written (borrowed) */
    char ref_name[GY_IMAGE_REF_MAX + 32]; /* its normalised reference; "" when not one */
    char digest[GY_IMAGE_DIGEST_LEN + 1]; /* the digest pinned at apply, or "" */
    const struct sch_node_image *known;   /* a node's record of it, for its layers */
};

/* Prepares wanted for image (a reference or an imported name) and digest (NULL or "" when
 * none is pinned). known starts NULL: set it to sch_inventory_find's answer on any node. */
void sch_image_wanted_init(struct sch_image_wanted *wanted, const char *image, const char *digest);

/* True when img is the wanted image: with a pinned digest, img's digest or resolved digest
 * is that digest; without one, img is the imported root filesystem of that name or the
 * registry image of that normalised reference. */
bool sch_image_matches(const struct sch_image_wanted *wanted, const struct sch_node_image *img);

/* The node's record of the wanted image, or NULL. */
const struct sch_node_image *sch_inventory_find(const struct sch_inventory *inv,
                                                const struct sch_image_wanted *wanted);

/* How many bytes of the wanted image the node holds, as kube-scheduler's ImageLocality
 * weighs it: the image's size when the node holds the image; else the sizes of the
 * layers of wanted->known (when set) found among the node's images, each counted once.
 * 0 when inv is NULL. */
int64_t sch_inventory_locality(const struct sch_inventory *inv,
                               const struct sch_image_wanted *wanted);

/* ---- The cluster's view (GET /v1/images) ------------------------------------------ */

/* One node's inventory, for sch_inventory_json. */
struct sch_inventory_of {
    const char *node;
    const struct sch_inventory *inventory;
};

/* The answer of GET /v1/images: {"items": [...]}, one item per name and digest, sorted by
 * name then digest: {"name", "digest", "resolved", "size", "layers" (count), "nodes"
 * (names, in the order given), "labels" (object), "pulled_ms" (the latest)}. The caller
 * owns the result. */
json_t *sch_inventory_json(const struct sch_inventory_of *nodes, size_t n);

/* One image as an object of that shape without "nodes" (a pull's answer). */
json_t *sch_node_image_json(const struct sch_node_image *img);

#endif
