/* The node's image inventory; see inventory.h. */
#include "agent/inventory.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/image.h"
#include "common/log.h"
#include "common/xalloc.h"

#define OCI_IMAGE_PREFIX "org.opencontainers.image."

void agent_node_image_free(Gantry__NodeImage *image)
{
    if (image != NULL)
        protobuf_c_message_free_unpacked(&image->base, NULL);
}

void agent_inventory_free(Gantry__ImageInventory *inventory)
{
    if (inventory != NULL)
        protobuf_c_message_free_unpacked(&inventory->base, NULL);
}

/* The size of a blob the store holds, 0 when it cannot be read. */
static int64_t blob_size(struct oci_store *store, const char *digest)
{
    char path[PATH_MAX];
    struct stat st;
    if (oci_store_blob_path(store, digest, path, sizeof(path), NULL) < 0 || stat(path, &st) < 0)
        return 0;
    return (int64_t)st.st_size;
}

static bool key_printable(const char *key)
{
    size_t n = 0;
    for (; key[n] != '\0'; n++)
        if (n >= AGENT_INVENTORY_LABEL_KEY_MAX || (unsigned char)key[n] < 0x20 ||
            (unsigned char)key[n] > 0x7e)
            return false;
    return n > 0;
}

/* A label's value as reported: cut to the bound, '?' for what is not printable ASCII. */
static char *value_shown(const char *value)
{
    size_t n = strnlen(value, AGENT_INVENTORY_LABEL_VALUE_MAX);
    char *out = gy_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e ? '?' : value[i];
    out[n] = '\0';
    return out;
}

static bool label_taken(const Gantry__NodeImage *img, const char *key)
{
    for (size_t i = 0; i < img->n_labels; i++)
        if (strcmp(img->labels[i]->key, key) == 0)
            return true;
    return false;
}

/* Adds the labels of list that pass (oci: only org.opencontainers.image.* keys; else only
 * the others) while there is room. */
static void labels_add(Gantry__NodeImage *img, const struct oci_annotation *list, size_t n,
                       bool oci)
{
    for (size_t i = 0; i < n && img->n_labels < AGENT_INVENTORY_LABELS_MAX; i++) {
        const char *key = list[i].key;
        if (key == NULL || list[i].value == NULL || !key_printable(key) ||
            (strncmp(key, OCI_IMAGE_PREFIX, strlen(OCI_IMAGE_PREFIX)) == 0) != oci ||
            label_taken(img, key))
            continue;
        Gantry__Label *l = gy_xmalloc(sizeof(*l));
        gantry__label__init(l);
        l->key = gy_xstrdup(key);
        l->value = value_shown(list[i].value);
        img->labels[img->n_labels++] = l;
    }
}

/* A NodeImage with every string its own (protobuf_c_message_free_unpacked frees it). */
static Gantry__NodeImage *node_image_new(const char *name, const char *digest, const char *resolved)
{
    Gantry__NodeImage *img = gy_xmalloc(sizeof(*img));
    gantry__node_image__init(img);
    img->name = gy_xstrdup(name);
    img->digest = gy_xstrdup(digest);
    img->resolved = gy_xstrdup(resolved != NULL ? resolved : "");
    return img;
}

/* One image of the OCI store as reported. */
static Gantry__NodeImage *oci_node_image(struct oci_store *store, const struct oci_image *rec,
                                         const char *resolved)
{
    Gantry__NodeImage *img = node_image_new(rec->name, rec->manifest_digest, resolved);
    img->pulled_ms = rec->created_ms > 0 ? (uint64_t)rec->created_ms : 0;
    img->size = blob_size(store, rec->config_digest);
    img->n_layers = img->n_layer_sizes = rec->n_layers;
    img->layers = gy_xcalloc(rec->n_layers ? rec->n_layers : 1, sizeof(*img->layers));
    img->layer_sizes = gy_xcalloc(rec->n_layers ? rec->n_layers : 1, sizeof(*img->layer_sizes));
    for (size_t i = 0; i < rec->n_layers; i++) {
        img->layers[i] = gy_xstrdup(rec->layers[i]);
        img->layer_sizes[i] = blob_size(store, rec->layers[i]);
        img->size += img->layer_sizes[i];
    }
    /* Annotations are in the record; config labels in the config blob. */
    struct oci_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    char *json = NULL;
    size_t len = 0;
    bool have_cfg = oci_store_blob_read_small(store, rec->config_digest, OCI_CONFIG_MAX_BYTES,
                                              &json, &len, NULL) == 0 &&
                    oci_config_parse(json, len, &cfg, NULL) == 0;
    free(json);
    img->labels = gy_xcalloc(AGENT_INVENTORY_LABELS_MAX, sizeof(*img->labels));
    for (int oci = 1; oci >= 0; oci--) {
        labels_add(img, rec->annotations, rec->n_annotations, oci);
        if (have_cfg)
            labels_add(img, cfg.labels, cfg.n_labels, oci);
    }
    if (have_cfg)
        oci_config_free(&cfg);
    return img;
}

/* The resolved digest of a stored image: the one its name carries, else what a pull
 * learned for this manifest. */
static const char *resolved_of(const struct oci_image *rec,
                               const struct agent_inventory_resolved *resolved, size_t n,
                               char buf[GY_IMAGE_DIGEST_LEN + 1])
{
    struct gy_image_ref ref;
    if (gy_image_ref_parse(rec->name, &ref, NULL) == 0 && ref.digest[0] != '\0') {
        snprintf(buf, GY_IMAGE_DIGEST_LEN + 1, "%s", ref.digest);
        return buf;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(resolved[i].name, rec->name) == 0 &&
            strcmp(resolved[i].manifest, rec->manifest_digest) == 0)
            return resolved[i].resolved;
    return "";
}

/* Appends img unless the inventory is full; frees it then. */
static bool inventory_add(Gantry__ImageInventory *inv, Gantry__NodeImage *img, size_t *bytes,
                          size_t *left_out)
{
    size_t size = gantry__node_image__get_packed_size(img) + 8;
    if (inv->n_images >= AGENT_INVENTORY_IMAGES_MAX || *bytes + size > AGENT_INVENTORY_BYTES_MAX) {
        agent_node_image_free(img);
        (*left_out)++;
        return false;
    }
    *bytes += size;
    inv->images[inv->n_images++] = img;
    return true;
}

int agent_inventory_build(struct oci_store *store, const char *data_dir,
                          const struct agent_inventory_resolved *resolved, size_t n_resolved,
                          Gantry__ImageInventory **out, struct gy_error *err)
{
    *out = NULL;
    struct oci_image *recs = NULL;
    size_t n_recs = 0;
    struct agent_image *flat = NULL;
    size_t n_flat = 0;
    int rc = store != NULL ? oci_image_list(store, &recs, &n_recs, err) : 0;
    if (rc < 0)
        return gy_error_wrap(err, "image inventory");
    if ((rc = agent_image_list(data_dir, &flat, &n_flat, err)) < 0) {
        oci_image_list_free(recs, n_recs);
        return gy_error_wrap(err, "image inventory");
    }
    Gantry__ImageInventory *inv = gy_xmalloc(sizeof(*inv));
    gantry__image_inventory__init(inv);
    size_t cap = n_recs + n_flat;
    cap = cap < AGENT_INVENTORY_IMAGES_MAX ? cap : AGENT_INVENTORY_IMAGES_MAX;
    inv->images = gy_xcalloc(cap ? cap : 1, sizeof(*inv->images));
    size_t bytes = 0, left_out = 0;
    for (size_t i = 0; i < n_recs; i++) {
        if (inv->n_images >= AGENT_INVENTORY_IMAGES_MAX) {
            left_out += n_recs - i;
            break;
        }
        char buf[GY_IMAGE_DIGEST_LEN + 1];
        inventory_add(
            inv, oci_node_image(store, &recs[i], resolved_of(&recs[i], resolved, n_resolved, buf)),
            &bytes, &left_out);
    }
    for (size_t i = 0; i < n_flat; i++) {
        if (inv->n_images >= AGENT_INVENTORY_IMAGES_MAX) {
            left_out += n_flat - i;
            break;
        }
        Gantry__NodeImage *img = node_image_new(flat[i].name, "", "");
        img->size = flat[i].size_bytes > 0 ? flat[i].size_bytes : 0;
        img->pulled_ms = flat[i].imported_ms > 0 ? (uint64_t)flat[i].imported_ms : 0;
        inventory_add(inv, img, &bytes, &left_out);
    }
    if (left_out > 0)
        gy_log_warn("image inventory: images left out of the node's report",
                    "reported=%zu left_out=%zu max_images=%d max_bytes=%u", inv->n_images, left_out,
                    AGENT_INVENTORY_IMAGES_MAX, AGENT_INVENTORY_BYTES_MAX);
    oci_image_list_free(recs, n_recs);
    free(flat);
    *out = inv;
    return 0;
}

Gantry__NodeImage *agent_inventory_image(struct oci_store *store, const char *name,
                                         const char *resolved, struct gy_error *err)
{
    struct oci_image rec;
    if (oci_image_get(store, name, &rec, err) < 0)
        return NULL;
    char buf[GY_IMAGE_DIGEST_LEN + 1];
    const char *from_name = resolved_of(&rec, NULL, 0, buf);
    Gantry__NodeImage *img =
        oci_node_image(store, &rec, resolved != NULL && resolved[0] != '\0' ? resolved : from_name);
    oci_image_free(&rec);
    return img;
}

/* The modification time of a directory, in ns; 0 when it does not exist. */
static uint64_t dir_mtime(const char *data_dir, const char *sub)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/%s", data_dir, sub) >= (int)sizeof(path) ||
        stat(path, &st) < 0)
        return 0;
    return (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
}

uint64_t agent_inventory_fingerprint(const char *data_dir)
{
    uint64_t a = dir_mtime(data_dir, "oci/images"), b = dir_mtime(data_dir, "images");
    return a * 31 + b;
}
