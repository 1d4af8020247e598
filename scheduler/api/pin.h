/* Pinning images at apply (docs/images.md, "Pinning"): the leader resolves each workload's
 * image reference to a digest once, before it proposes the apply, and records the digest
 * and the image's OCI annotations and labels with the spec. Every replica of the generation
 * then pulls those bytes; a tag moved later changes nothing until the next apply. The
 * lookups block on the network and run on the libuv thread pool. */
#ifndef GANTRY_SCHEDULER_API_PIN_H
#define GANTRY_SCHEDULER_API_PIN_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "common/error.h"
#include "common/image_ref.h"

struct agent_registry_config;
struct agent_registry_auth;

/* The image labels kept per workload, and their sizes (longer ones are cut). */
#define SCH_PIN_LABELS_MAX 32
#define SCH_PIN_KEY_MAX    128
#define SCH_PIN_VALUE_MAX  256

enum sch_pin_outcome {
    SCH_PIN_SKIPPED = 0, /* not a registry reference with a domain or digest: not pinned */
    SCH_PIN_PINNED,      /* digest set */
    SCH_PIN_UNRESOLVED,  /* the registry could not be reached: applied unpinned, message says */
    SCH_PIN_REFUSED,     /* the registry answered that it has no such image, or refused us */
};

struct sch_pin_label {
    char key[SCH_PIN_KEY_MAX + 1];
    char value[SCH_PIN_VALUE_MAX + 1];
};

struct sch_pin_item {
    char image[GY_IMAGE_REF_MAX + 1]; /* in: the spec's image as written */
    enum sch_pin_outcome outcome;     /* out, and the rest */
    char digest[GY_IMAGE_DIGEST_LEN + 1];
    struct sch_pin_label labels[SCH_PIN_LABELS_MAX]; /* sorted by key */
    size_t n_labels;
    char message[GY_ERROR_MSG_MAX]; /* why it was refused or left unpinned */
};

/* True when image is a reference the leader pins: it names its registry (a first
 * component with "." or ":", or "localhost") or a digest. A short name such as `busybox`
 * may name a root filesystem imported on the nodes and is left to them. */
bool sch_pin_wanted(const char *image);

/* Resolves items[0..n) (their image set) on the loop's thread pool with the registry
 * configuration and credentials given (either may be NULL), then calls done on the loop
 * thread. The items and what cfg and auth point to must live until then. */
typedef void (*sch_pin_done_fn)(void *data, struct sch_pin_item *items, size_t n);
int sch_pin_start(uv_loop_t *loop, const struct agent_registry_config *cfg,
                  const struct agent_registry_auth *auth, struct sch_pin_item *items, size_t n,
                  sch_pin_done_fn done, void *data);

/* Resolves one item now, on the calling thread (the worker's body; also for tests). */
void sch_pin_resolve(const struct agent_registry_config *cfg,
                     const struct agent_registry_auth *auth, struct sch_pin_item *item);

#endif
