/* The images this node holds, as the agent reports them to the leader (Hello.images and
 * Heartbeat.images, docs/agent-protocol.md, "Images"): every image of the OCI store
 * (agent/oci_store.h) with its digests, layer sizes and labels, and every root filesystem
 * imported under a name (agent/image.h), within bounds that keep a frame small. Building
 * one reads the stores (blocking: the thread pool's work) and changes nothing. */
#ifndef GANTRY_AGENT_INVENTORY_H
#define GANTRY_AGENT_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "agent/oci_store.h"
#include "common/error.h"
#include "common/image_ref.h"
#include "proto/gantry.pb-c.h"

/* Most images reported; the leader keeps no more (scheduler/fleet/inventory.h). */
#define AGENT_INVENTORY_IMAGES_MAX 1024
/* Labels per image (OCI annotations first, then config labels; org.opencontainers.image.*
 * keys before the others), their longest key and value (longer values are cut, bytes
 * outside printable ASCII become '?'; a key that is not printable ASCII is left out). */
#define AGENT_INVENTORY_LABELS_MAX      32
#define AGENT_INVENTORY_LABEL_KEY_MAX   128
#define AGENT_INVENTORY_LABEL_VALUE_MAX 256
/* An inventory stops growing at this many packed bytes (a frame holds 16 MiB). */
#define AGENT_INVENTORY_BYTES_MAX (4u << 20)

/* What a pull learned that the store does not record: the digest a reference named (an
 * index, or the manifest itself) when it resolved to manifest. */
struct agent_inventory_resolved {
    char name[GY_IMAGE_REF_MAX + 32];
    char manifest[GY_IMAGE_DIGEST_LEN + 1];
    char resolved[GY_IMAGE_DIGEST_LEN + 1];
};

/* Builds the inventory of the stores: the OCI store's images (their resolved digest from
 * the name when it carries one, else from resolved[] when its manifest matches) then the
 * imported root filesystems under data_dir, each in name order, within the bounds above
 * (what is left out is logged). *out is freed with agent_inventory_free. A store that
 * cannot be listed is an error; an image whose blobs cannot be read is reported without
 * the sizes it lacks. */
int agent_inventory_build(struct oci_store *store, const char *data_dir,
                          const struct agent_inventory_resolved *resolved, size_t n_resolved,
                          Gantry__ImageInventory **out, struct gy_error *err);

/* The OCI store's image name as the inventory reports it, with resolved (may be NULL or
 * "") as its resolved digest; NULL with err when the store has no such image. Free with
 * agent_node_image_free. */
Gantry__NodeImage *agent_inventory_image(struct oci_store *store, const char *name,
                                         const char *resolved, struct gy_error *err);

void agent_inventory_free(Gantry__ImageInventory *inventory);
void agent_node_image_free(Gantry__NodeImage *image);

/* A number that changes whenever an image is recorded in or removed from either store,
 * also by another process (gantry-agent image pull, load, import or rm): made of the
 * modification times of DATA_DIR/oci/images and DATA_DIR/images. 0 when neither exists. */
uint64_t agent_inventory_fingerprint(const char *data_dir);

#endif
