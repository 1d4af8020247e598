/* Whole-image operations; see image_ops.h. */
#include "agent/image_ops.h"

#include <stdio.h>
#include <string.h>

#include "agent/image.h"

int agent_image_pull_unpack(struct agent_puller *p, const char *ref,
                            const struct agent_pull_options *opts, struct agent_pull_result *out,
                            struct gy_error *err)
{
    int rc = agent_pull_from(p, ref, opts, out, err);
    if (rc < 0)
        return rc;
    char **dirs;
    size_t n_dirs;
    struct agent_image_defaults defaults;
    if ((rc = agent_image_prepare(p, out->name, &dirs, &n_dirs, &defaults, err)) < 0)
        return rc;
    oci_strv_free(dirs, n_dirs);
    agent_image_defaults_free(&defaults);
    return 0;
}

int agent_image_target_find(struct agent_puller *p, const char *data_dir, const char *ref,
                            const char *node, struct agent_image_target *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    struct agent_image flat;
    if (gy_image_local_name_check(ref, NULL) == 0 &&
        agent_image_get(data_dir, ref, &flat, NULL) == 0) {
        out->imported = true;
        snprintf(out->name, sizeof(out->name), "%s", ref);
        return 0;
    }
    struct gy_image_ref parsed;
    int rc = gy_image_ref_parse(ref, &parsed, err);
    if (rc < 0) {
        if (gy_image_local_name_check(ref, NULL) == 0)
            return gy_error_set(err, GY_ENOTFOUND, "image %s not found on node %s", ref, node);
        return rc;
    }
    gy_image_ref_format(&parsed, out->name, sizeof(out->name));
    struct oci_image rec;
    if (p->store == NULL || oci_image_get(p->store, out->name, &rec, NULL) < 0)
        return gy_error_set(err, GY_ENOTFOUND, "image %s not found on node %s", ref, node);
    oci_image_free(&rec);
    return 0;
}

bool agent_image_target_used_by(const struct agent_image_target *target, const char *image,
                                const char *digest)
{
    if (image == NULL)
        return false;
    if (target->imported)
        return strcmp(image, target->name) == 0;
    struct gy_image_ref ref;
    if (gy_image_ref_parse(image, &ref, NULL) < 0)
        return false;
    char name[GY_IMAGE_REF_MAX + 32];
    if (gy_image_ref_format(&ref, name, sizeof(name)) >= 0 && strcmp(name, target->name) == 0)
        return true;
    /* A replica of a pinned digest runs the image stored under the reference with it. */
    if (digest == NULL || digest[0] == '\0' || ref.digest[0] != '\0')
        return false;
    snprintf(ref.digest, sizeof(ref.digest), "%s", digest);
    return gy_image_ref_format(&ref, name, sizeof(name)) >= 0 && strcmp(name, target->name) == 0;
}

int agent_image_target_remove(struct agent_puller *p, const char *data_dir,
                              const struct agent_image_target *target, struct gy_error *err)
{
    if (target->imported)
        return agent_image_remove(data_dir, target->name, err);
    return oci_image_remove(p->store, target->name, err);
}
