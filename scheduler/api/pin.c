/* Pinning images at apply; see pin.h. */
#include "scheduler/api/pin.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/registry.h"
#include "common/log.h"
#include "common/xalloc.h"

/* The leader answers an apply only after its lookups: a registry that does not answer
 * costs at most a connect timeout per endpoint and a bounded request. */
#define PIN_CONNECT_MS  3000
#define PIN_REQUEST_MS  15000
#define PIN_LOW_SPEED_S 10

#define OCI_LABEL_PREFIX "org.opencontainers.image."

bool sch_pin_wanted(const char *image)
{
    if (image == NULL || *image == '\0')
        return false;
    if (strchr(image, '@') != NULL)
        return true;
    const char *slash = strchr(image, '/');
    if (slash == NULL)
        return false;
    size_t len = (size_t)(slash - image);
    if (len == 9 && strncmp(image, "localhost", 9) == 0)
        return true;
    for (size_t i = 0; i < len; i++)
        if (image[i] == '.' || image[i] == ':')
            return true;
    return false;
}

/* Copies s, printable ASCII only (anything else becomes '?'), cut to fit. */
static void printable_copy(char *dst, size_t size, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < size; i++)
        dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    dst[i] = '\0';
}

/* Adds the string members of obj to all (later sources override earlier ones). */
static void labels_merge(json_t *all, const json_t *obj)
{
    if (!json_is_object(obj))
        return;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        if (json_is_string(value) && *key != '\0' && json_object_size(all) < 4096)
            json_object_set(all, key, value);
    }
}

static void annotations_merge(json_t *all, const struct agent_manifest *m)
{
    if (m->bytes == NULL || m->len == 0)
        return;
    json_t *doc = json_loadb((const char *)m->bytes, m->len, 0, NULL);
    if (doc != NULL)
        labels_merge(all, json_object_get(doc, "annotations"));
    json_decref(doc);
}

static int label_cmp(const void *a, const void *b)
{
    const struct sch_pin_label *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Keeps the labels of all in item: the org.opencontainers.image.* ones first, then the
 * others, up to SCH_PIN_LABELS_MAX, sorted by key. */
static void labels_keep(struct sch_pin_item *item, json_t *all)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *key;
        json_t *value;
        json_object_foreach(all, key, value)
        {
            bool oci = strncmp(key, OCI_LABEL_PREFIX, strlen(OCI_LABEL_PREFIX)) == 0;
            if ((pass == 0) != oci || item->n_labels == SCH_PIN_LABELS_MAX)
                continue;
            struct sch_pin_label *l = &item->labels[item->n_labels++];
            printable_copy(l->key, sizeof(l->key), key);
            printable_copy(l->value, sizeof(l->value), json_string_value(value));
        }
    }
    qsort(item->labels, item->n_labels, sizeof(item->labels[0]), label_cmp);
}

/* The image's ExposedPorts ("8080/tcp": {}) as one label, "8080/tcp,9090/udp", in the key
 * the agent gives the container's annotation, so that describe and the apply event show
 * what the image says it listens on. */
static void exposed_ports(json_t *found, const json_t *ports)
{
    if (!json_is_object(ports) || json_object_size(ports) == 0)
        return;
    char text[SCH_PIN_VALUE_MAX + 1] = "";
    size_t used = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)ports, key, value)
    {
        int n = snprintf(text + used, sizeof(text) - used, "%s%s", used ? "," : "", key);
        if (n < 0 || (size_t)n >= sizeof(text) - used)
            break;
        used += (size_t)n;
    }
    if (used > 0)
        json_object_set_new(found, OCI_LABEL_PREFIX "exposedPorts", json_string(text));
}

/* The Labels of image configs read before, by digest: a config is content-addressed, so
 * what it says never changes, and applying an image pinned before costs the manifest's
 * request alone. A few recent configs, under a lock (pins run on the thread pool). */
#define PIN_CACHE_SIZE     64
#define PIN_CACHE_TEXT_MAX (64 * 1024)
static struct {
    char digest[GY_IMAGE_DIGEST_LEN + 1];
    char *labels; /* the config's Labels and ExposedPorts (exposed_ports) as JSON text */
} pin_cache[PIN_CACHE_SIZE];
static size_t pin_cache_next;
static pthread_mutex_t pin_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool pin_cache_get(const char *digest, json_t *all)
{
    json_t *labels = NULL;
    pthread_mutex_lock(&pin_cache_lock);
    for (size_t i = 0; i < PIN_CACHE_SIZE && labels == NULL; i++)
        if (pin_cache[i].labels != NULL && strcmp(pin_cache[i].digest, digest) == 0)
            labels = json_loads(pin_cache[i].labels, 0, NULL);
    pthread_mutex_unlock(&pin_cache_lock);
    if (labels == NULL)
        return false;
    labels_merge(all, labels);
    json_decref(labels);
    return true;
}

static void pin_cache_put(const char *digest, const json_t *labels)
{
    char *text = json_dumps(labels, JSON_COMPACT);
    if (text == NULL || strlen(text) > PIN_CACHE_TEXT_MAX || strlen(digest) > GY_IMAGE_DIGEST_LEN) {
        free(text);
        return;
    }
    pthread_mutex_lock(&pin_cache_lock);
    size_t slot = pin_cache_next++ % PIN_CACHE_SIZE;
    free(pin_cache[slot].labels);
    snprintf(pin_cache[slot].digest, sizeof(pin_cache[slot].digest), "%s", digest);
    pin_cache[slot].labels = text;
    pthread_mutex_unlock(&pin_cache_lock);
}

/* The image config's Labels, from the cache or fetched into a temporary file and read (at
 * most AGENT_REGISTRY_CONFIG_MAX, as the manifest's descriptor allows; the fetch checks
 * the digest). */
static void config_labels(struct agent_registry *reg, const struct gy_image_ref *ref,
                          const struct agent_descriptor *config, json_t *all)
{
    if (config->digest[0] == '\0' || config->size <= 0 || config->size > AGENT_REGISTRY_CONFIG_MAX)
        return;
    if (pin_cache_get(config->digest, all))
        return;
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/gantry-pin-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    close(fd);
    struct gy_error err;
    if (agent_registry_blob_fetch(reg, ref, config, path, NULL, &err) == 0) {
        json_t *doc = json_load_file(path, 0, NULL);
        if (doc != NULL) {
            json_t *found = json_object();
            const json_t *cfg = json_object_get(doc, "config");
            labels_merge(found, json_object_get(cfg, "Labels"));
            exposed_ports(found, json_object_get(cfg, "ExposedPorts"));
            labels_merge(all, found);
            pin_cache_put(config->digest, found);
            json_decref(found);
        }
        json_decref(doc);
    } else {
        gy_log_debug("image config not read", "image=%s error=\"%s\"", ref->path, err.msg);
    }
    unlink(path);
}

void sch_pin_resolve(const struct agent_registry_config *cfg,
                     const struct agent_registry_auth *auth, struct sch_pin_item *item)
{
    item->outcome = SCH_PIN_SKIPPED;
    item->digest[0] = '\0';
    item->n_labels = 0;
    item->message[0] = '\0';
    if (!sch_pin_wanted(item->image))
        return;
    struct gy_image_ref ref;
    struct gy_error err;
    if (gy_image_ref_parse(item->image, &ref, &err) < 0) {
        item->outcome = SCH_PIN_REFUSED;
        snprintf(item->message, sizeof(item->message), "%s", err.msg);
        return;
    }
    if (ref.digest[0] != '\0') {
        /* Pinned as written; the labels are looked up when the registry answers. */
        item->outcome = SCH_PIN_PINNED;
        snprintf(item->digest, sizeof(item->digest), "%s", ref.digest);
    }
    struct agent_registry_options opts = {
        .config = cfg,
        .auth = auth,
        .connect_timeout_ms = PIN_CONNECT_MS,
        .request_timeout_ms = PIN_REQUEST_MS,
        .low_speed_time_s = PIN_LOW_SPEED_S,
    };
    struct agent_registry *reg = NULL;
    if (agent_registry_new(&opts, &reg, &err) < 0) {
        if (item->outcome != SCH_PIN_PINNED) {
            item->outcome = SCH_PIN_UNRESOLVED;
            snprintf(item->message, sizeof(item->message), "%s", err.msg);
        }
        return;
    }
    struct agent_registry_image img;
    memset(&img, 0, sizeof(img));
    int rc = agent_registry_resolve(reg, &ref, &img, &err);
    if (rc < 0) {
        if (item->outcome != SCH_PIN_PINNED) {
            bool down = err.code == GY_EUNAVAILABLE || err.code == GY_ETIMEOUT;
            item->outcome = down ? SCH_PIN_UNRESOLVED : SCH_PIN_REFUSED;
            snprintf(item->message, sizeof(item->message), "%s", err.msg);
        }
    } else {
        item->outcome = SCH_PIN_PINNED;
        snprintf(item->digest, sizeof(item->digest), "%s", img.resolved);
        json_t *all = json_object();
        config_labels(reg, &ref, &img.manifest.config, all);
        annotations_merge(all, &img.index);
        annotations_merge(all, &img.manifest);
        labels_keep(item, all);
        json_decref(all);
    }
    agent_registry_image_free(&img);
    agent_registry_free(reg);
}

/* ---------------------------------------------------------------------------------------
 * On the thread pool */

struct pin_job {
    uv_work_t work;
    const struct agent_registry_config *cfg;
    const struct agent_registry_auth *auth;
    struct sch_pin_item *items;
    size_t n;
    sch_pin_done_fn done;
    void *data;
};

static void pin_work(uv_work_t *work)
{
    struct pin_job *job = work->data;
    for (size_t i = 0; i < job->n; i++) {
        /* One lookup per distinct reference: an apply of many workloads of one image
         * resolves it once. */
        size_t same = i;
        for (size_t j = 0; j < i; j++)
            if (strcmp(job->items[j].image, job->items[i].image) == 0) {
                same = j;
                break;
            }
        if (same != i)
            job->items[i] = job->items[same];
        else
            sch_pin_resolve(job->cfg, job->auth, &job->items[i]);
    }
}

static void pin_after(uv_work_t *work, int status)
{
    struct pin_job *job = work->data;
    if (status != 0)
        for (size_t i = 0; i < job->n; i++) {
            job->items[i].outcome = SCH_PIN_UNRESOLVED;
            snprintf(job->items[i].message, sizeof(job->items[i].message),
                     "the lookup was cancelled");
        }
    job->done(job->data, job->items, job->n);
    free(job);
}

int sch_pin_start(uv_loop_t *loop, const struct agent_registry_config *cfg,
                  const struct agent_registry_auth *auth, struct sch_pin_item *items, size_t n,
                  sch_pin_done_fn done, void *data)
{
    struct pin_job *job = gy_xcalloc(1, sizeof(*job));
    job->work.data = job;
    job->cfg = cfg;
    job->auth = auth;
    job->items = items;
    job->n = n;
    job->done = done;
    job->data = data;
    int rc = uv_queue_work(loop, &job->work, pin_work, pin_after);
    if (rc != 0)
        free(job);
    return rc;
}
