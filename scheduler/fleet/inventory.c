/* Node image inventories; see inventory.h. */
#include "scheduler/fleet/inventory.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/xalloc.h"

/* A layer the node holds, in the inventory's index by digest. */
struct sch_inventory_layer {
    char digest[GY_IMAGE_DIGEST_LEN + 1];
    int64_t size;
    UT_hash_handle hh;
};

static void __attribute__((format(printf, 3, 4)))
problem_set(char *problem, size_t len, const char *fmt, ...)
{
    if (problem == NULL || len == 0 || problem[0] != '\0')
        return; /* the first problem is the one reported */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, len, fmt, ap);
    va_end(ap);
}

/* Printable ASCII of 1..max bytes (empty allowed when allow_empty). */
static bool printable(const char *s, size_t max, bool allow_empty)
{
    if (s == NULL)
        return allow_empty;
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return false;
    return n > 0 || allow_empty;
}

/* At most 80 bytes of a string from the wire, with anything unprintable shown as '?', for
 * a log line. */
static const char *shown(const char *s, char buf[84])
{
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i < 80; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

void sch_node_image_free(struct sch_node_image *img)
{
    free(img->name);
    free(img->layers);
    free(img->layer_sizes);
    for (size_t i = 0; i < img->n_labels; i++) {
        free(img->labels[i].key);
        free(img->labels[i].value);
    }
    free(img->labels);
    memset(img, 0, sizeof(*img));
}

/* Checks what names and sizes the image; the reason goes to problem. */
static bool image_valid(const Gantry__NodeImage *msg, char *problem, size_t len)
{
    char a[84], b[84];
    const char *name = msg->name != NULL ? msg->name : "";
    const char *digest = msg->digest != NULL ? msg->digest : "";
    const char *resolved = msg->resolved != NULL ? msg->resolved : "";
    if (digest[0] == '\0') {
        /* A root filesystem imported under a name: no digest, no layers. */
        if (gy_image_local_name_check(name, NULL) < 0) {
            problem_set(problem, len, "image \"%s\": not a valid imported image name",
                        shown(name, a));
            return false;
        }
        if (resolved[0] != '\0' || msg->n_layers > 0) {
            problem_set(problem, len, "image \"%s\": layers or a resolved digest without a digest",
                        shown(name, a));
            return false;
        }
    } else {
        struct gy_image_ref ref;
        if (gy_image_ref_parse(name, &ref, NULL) < 0) {
            problem_set(problem, len, "image \"%s\": not an image reference", shown(name, a));
            return false;
        }
        if (!gy_image_digest_valid(digest)) {
            problem_set(problem, len, "image \"%s\": digest \"%s\" is not a sha256 digest",
                        shown(name, a), shown(digest, b));
            return false;
        }
        if (resolved[0] != '\0' && !gy_image_digest_valid(resolved)) {
            problem_set(problem, len, "image \"%s\": resolved \"%s\" is not a sha256 digest",
                        shown(name, a), shown(resolved, b));
            return false;
        }
    }
    if (msg->size < 0) {
        problem_set(problem, len, "image \"%s\": size %lld is negative", shown(name, a),
                    (long long)msg->size);
        return false;
    }
    if (msg->n_layers > SCH_INVENTORY_LAYERS_MAX) {
        problem_set(problem, len, "image \"%s\": %zu layers, more than %d", shown(name, a),
                    msg->n_layers, SCH_INVENTORY_LAYERS_MAX);
        return false;
    }
    if (msg->n_layer_sizes != msg->n_layers) {
        problem_set(problem, len, "image \"%s\": %zu layers but %zu layer sizes", shown(name, a),
                    msg->n_layers, msg->n_layer_sizes);
        return false;
    }
    for (size_t i = 0; i < msg->n_layers; i++) {
        if (!gy_image_digest_valid(msg->layers[i])) {
            problem_set(problem, len, "image \"%s\": layers[%zu]: \"%s\" is not a sha256 digest",
                        shown(name, a), i, shown(msg->layers[i], b));
            return false;
        }
        if (msg->layer_sizes[i] < 0) {
            problem_set(problem, len, "image \"%s\": layer_sizes[%zu] is negative", shown(name, a),
                        i);
            return false;
        }
    }
    return true;
}

int sch_node_image_take(struct sch_node_image *out, const Gantry__NodeImage *msg, size_t *dropped,
                        char *problem, size_t len)
{
    memset(out, 0, sizeof(*out));
    if (msg == NULL || !image_valid(msg, problem, len))
        return -1;
    out->name = gy_xstrdup(msg->name);
    snprintf(out->digest, sizeof(out->digest), "%s", msg->digest != NULL ? msg->digest : "");
    snprintf(out->resolved, sizeof(out->resolved), "%s",
             msg->resolved != NULL ? msg->resolved : "");
    out->size = msg->size;
    out->pulled_ms = msg->pulled_ms;
    out->n_layers = msg->n_layers;
    if (msg->n_layers > 0) {
        out->layers = gy_xcalloc(msg->n_layers, sizeof(*out->layers));
        out->layer_sizes = gy_xcalloc(msg->n_layers, sizeof(*out->layer_sizes));
        for (size_t i = 0; i < msg->n_layers; i++) {
            snprintf(out->layers[i], sizeof(out->layers[i]), "%s", msg->layers[i]);
            out->layer_sizes[i] = msg->layer_sizes[i];
        }
    }
    size_t keep =
        msg->n_labels < SCH_INVENTORY_LABELS_MAX ? msg->n_labels : SCH_INVENTORY_LABELS_MAX;
    size_t bad = msg->n_labels - keep;
    char a[84], b[84];
    if (bad > 0)
        problem_set(problem, len, "image \"%s\": %zu labels, more than %d", shown(msg->name, a),
                    msg->n_labels, SCH_INVENTORY_LABELS_MAX);
    if (keep > 0)
        out->labels = gy_xcalloc(keep, sizeof(*out->labels));
    for (size_t i = 0; i < keep; i++) {
        const Gantry__Label *l = msg->labels[i];
        if (l == NULL || !printable(l->key, SCH_INVENTORY_LABEL_KEY_MAX, false) ||
            !printable(l->value, SCH_INVENTORY_LABEL_VALUE_MAX, true)) {
            problem_set(problem, len,
                        "image \"%s\": label \"%s\" is not printable ASCII within %d bytes "
                        "(key) and %d (value)",
                        shown(msg->name, a), l != NULL ? shown(l->key, b) : "",
                        SCH_INVENTORY_LABEL_KEY_MAX, SCH_INVENTORY_LABEL_VALUE_MAX);
            bad++;
            continue;
        }
        struct sch_image_label *dst = &out->labels[out->n_labels++];
        dst->key = gy_xstrdup(l->key);
        dst->value = gy_xstrdup(l->value != NULL ? l->value : "");
    }
    if (dropped != NULL)
        *dropped += bad;
    return 0;
}

void sch_inventory_clear(struct sch_inventory *inv)
{
    struct sch_inventory_layer *l, *tmp;
    HASH_ITER(hh, inv->layers, l, tmp)
    {
        HASH_DEL(inv->layers, l);
        free(l);
    }
    for (size_t i = 0; i < inv->n; i++)
        sch_node_image_free(&inv->images[i]);
    free(inv->images);
    memset(inv, 0, sizeof(*inv));
}

size_t sch_inventory_take(struct sch_inventory *inv, const Gantry__ImageInventory *msg,
                          char *problem, size_t len)
{
    if (problem != NULL && len > 0)
        problem[0] = '\0';
    sch_inventory_clear(inv);
    size_t n = msg != NULL ? msg->n_images : 0;
    size_t dropped = 0;
    if (n > SCH_INVENTORY_IMAGES_MAX) {
        problem_set(problem, len, "%zu images, more than %d", n, SCH_INVENTORY_IMAGES_MAX);
        dropped += n - SCH_INVENTORY_IMAGES_MAX;
        n = SCH_INVENTORY_IMAGES_MAX;
    }
    if (n > 0)
        inv->images = gy_xcalloc(n, sizeof(*inv->images));
    for (size_t i = 0; i < n; i++) {
        struct sch_node_image *img = &inv->images[inv->n];
        if (sch_node_image_take(img, msg->images[i], &dropped, problem, len) < 0) {
            dropped++;
            continue;
        }
        inv->n++;
        for (size_t k = 0; k < img->n_layers; k++) {
            struct sch_inventory_layer *l;
            HASH_FIND_STR(inv->layers, img->layers[k], l);
            if (l != NULL)
                continue;
            l = gy_xcalloc(1, sizeof(*l));
            memcpy(l->digest, img->layers[k], sizeof(l->digest));
            l->size = img->layer_sizes[k];
            HASH_ADD_STR(inv->layers, digest, l);
        }
    }
    return dropped;
}

/* ---------------------------------------------------------------------------------------
 * ImageLocality */

void sch_image_wanted_init(struct sch_image_wanted *w, const char *image, const char *digest)
{
    memset(w, 0, sizeof(*w));
    w->image = image != NULL ? image : "";
    struct gy_image_ref ref;
    if (gy_image_ref_parse(w->image, &ref, NULL) == 0 &&
        gy_image_ref_format(&ref, w->ref_name, sizeof(w->ref_name)) < 0)
        w->ref_name[0] = '\0';
    if (digest != NULL && gy_image_digest_valid(digest))
        snprintf(w->digest, sizeof(w->digest), "%s", digest);
}

bool sch_image_matches(const struct sch_image_wanted *w, const struct sch_node_image *img)
{
    /* An imported root filesystem of the image's name is what the agent runs first,
     * whatever digest was pinned (docs/images.md). */
    if (img->digest[0] == '\0')
        return strcmp(img->name, w->image) == 0;
    if (w->digest[0] != '\0')
        return strcmp(img->digest, w->digest) == 0 || strcmp(img->resolved, w->digest) == 0;
    return w->ref_name[0] != '\0' && strcmp(img->name, w->ref_name) == 0;
}

const struct sch_node_image *sch_inventory_find(const struct sch_inventory *inv,
                                                const struct sch_image_wanted *w)
{
    /* An imported root filesystem first, as the agent's start looks for one first. */
    const struct sch_node_image *registry = NULL;
    for (size_t i = 0; inv != NULL && i < inv->n; i++) {
        if (!sch_image_matches(w, &inv->images[i]))
            continue;
        if (inv->images[i].digest[0] == '\0')
            return &inv->images[i];
        if (registry == NULL)
            registry = &inv->images[i];
    }
    return registry;
}

int64_t sch_inventory_locality(const struct sch_inventory *inv, const struct sch_image_wanted *w)
{
    if (inv == NULL)
        return 0;
    const struct sch_node_image *held = sch_inventory_find(inv, w);
    if (held != NULL)
        return held->size;
    const struct sch_node_image *known = w->known;
    if (known == NULL)
        return 0;
    int64_t bytes = 0;
    for (size_t i = 0; i < known->n_layers; i++) {
        bool again = false;
        for (size_t k = 0; k < i && !again; k++)
            again = strcmp(known->layers[k], known->layers[i]) == 0;
        struct sch_inventory_layer *l;
        HASH_FIND_STR(inv->layers, known->layers[i], l);
        if (l != NULL && !again)
            bytes += known->layer_sizes[i];
    }
    return bytes;
}

/* ---------------------------------------------------------------------------------------
 * The cluster's view */

json_t *sch_node_image_json(const struct sch_node_image *img)
{
    json_t *labels = json_object();
    for (size_t i = 0; i < img->n_labels; i++)
        json_object_set_new(labels, img->labels[i].key, json_string(img->labels[i].value));
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:o,s:I}", "name", img->name, "digest", img->digest,
                     "resolved", img->resolved, "size", (json_int_t)img->size, "layers",
                     (json_int_t)img->n_layers, "labels", labels, "pulled_ms",
                     (json_int_t)img->pulled_ms);
}

struct held {
    const struct sch_node_image *img;
    const char *node;
    size_t order;
};

static int held_cmp(const void *pa, const void *pb)
{
    const struct held *a = pa, *b = pb;
    int c = strcmp(a->img->name, b->img->name);
    if (c == 0)
        c = strcmp(a->img->digest, b->img->digest);
    if (c == 0)
        c = a->order < b->order ? -1 : a->order > b->order;
    return c;
}

json_t *sch_inventory_json(const struct sch_inventory_of *nodes, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += nodes[i].inventory != NULL ? nodes[i].inventory->n : 0;
    struct held *all = gy_xcalloc(total ? total : 1, sizeof(*all));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; nodes[i].inventory != NULL && j < nodes[i].inventory->n; j++)
            all[k] = (struct held){&nodes[i].inventory->images[j], nodes[i].node, k}, k++;
    qsort(all, total, sizeof(*all), held_cmp);
    json_t *items = json_array();
    for (size_t i = 0; i < total;) {
        json_t *item = sch_node_image_json(all[i].img);
        json_t *on = json_array();
        uint64_t pulled = 0;
        size_t j = i;
        for (; j < total && strcmp(all[j].img->name, all[i].img->name) == 0 &&
               strcmp(all[j].img->digest, all[i].img->digest) == 0;
             j++) {
            /* A node lists an image once; a report that repeats one counts it once. */
            if (j == i || strcmp(all[j].node, all[j - 1].node) != 0)
                json_array_append_new(on, json_string(all[j].node));
            if (all[j].img->pulled_ms > pulled)
                pulled = all[j].img->pulled_ms;
            if (*json_string_value(json_object_get(item, "resolved")) == '\0' &&
                all[j].img->resolved[0] != '\0')
                json_object_set_new(item, "resolved", json_string(all[j].img->resolved));
        }
        json_object_set_new(item, "pulled_ms", json_integer((json_int_t)pulled));
        json_object_set_new(item, "nodes", on);
        json_array_append_new(items, item);
        i = j;
    }
    free(all);
    return json_pack("{s:o}", "items", items);
}
