/* Pulling images from registries into the node's store; see pull.h. */
#include "agent/pull.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"

int agent_puller_open(struct agent_puller *p, const char *data_dir, const char *registries_path,
                      struct gy_error *err)
{
    memset(p, 0, sizeof(*p));
    char root[PATH_MAX];
    if (snprintf(root, sizeof(root), "%s/oci", data_dir) >= (int)sizeof(root))
        return gy_error_set(err, GY_EINVAL, "data directory %s: path too long", data_dir);
    int rc = oci_store_open(root, NULL, &p->store, err);
    if (rc < 0)
        return rc;
    if (registries_path != NULL &&
        (rc = agent_registry_config_load(registries_path, &p->registries, err)) < 0) {
        agent_puller_close(p);
        return rc;
    }
    if (p->registries.auth_file != NULL &&
        (rc = agent_registry_auth_load(p->registries.auth_file, &p->auth, err)) < 0) {
        agent_puller_close(p);
        return rc;
    }
    return 0;
}

void agent_puller_close(struct agent_puller *p)
{
    oci_store_close(p->store);
    agent_registry_config_free(&p->registries);
    agent_registry_auth_free(p->auth);
    memset(p, 0, sizeof(*p));
}

/* Fetches one blob into the store unless it is there: into its partial file (resumed),
 * then committed, which checks the digest once more. */
static int fetch_blob(struct agent_puller *p, struct agent_registry *reg,
                      const struct gy_image_ref *ref, const struct agent_descriptor *blob,
                      int64_t *fetched, struct gy_error *err)
{
    if (oci_store_blob_has(p->store, blob->digest))
        return 0;
    int lock = oci_store_ingest_lock(p->store, blob->digest, err);
    if (lock < 0)
        return lock;
    int rc = 0;
    /* Another download may have finished it while this one waited for the lock. */
    if (!oci_store_blob_has(p->store, blob->digest)) {
        char path[PATH_MAX];
        struct agent_blob_result res = {0};
        if ((rc = oci_store_ingest_path(p->store, blob->digest, path, sizeof(path), err)) == 0 &&
            (rc = agent_registry_blob_fetch(reg, ref, blob, path, &res, err)) == 0) {
            *fetched += res.size - res.resumed_from;
            rc = oci_store_blob_commit(p->store, path, blob->digest, err);
        }
    }
    close(lock);
    return rc;
}

int agent_pull(struct agent_puller *p, const char *text, struct agent_pull_result *out,
               struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    struct gy_image_ref ref;
    int rc = gy_image_ref_parse(text, &ref, err);
    if (rc < 0)
        return rc;
    gy_image_ref_format(&ref, out->name, sizeof(out->name));
    /* A reference by digest names bytes that cannot change: a stored image is used as is. */
    struct oci_image have;
    if (ref.digest[0] != '\0' && oci_image_get(p->store, out->name, &have, NULL) == 0) {
        snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", have.manifest_digest);
        snprintf(out->resolved, sizeof(out->resolved), "%s", ref.digest);
        out->layers = have.n_layers;
        out->cached = true;
        oci_image_free(&have);
        return 0;
    }
    struct agent_registry_options opts = {
        .config = &p->registries,
        .auth = p->auth,
    };
    struct agent_registry *reg = NULL;
    if ((rc = agent_registry_new(&opts, &reg, err)) < 0)
        return rc;
    struct agent_registry_image img;
    memset(&img, 0, sizeof(img));
    struct gy_error rerr;
    if ((rc = agent_registry_resolve(reg, &ref, &img, &rerr)) < 0) {
        agent_registry_image_free(&img);
        agent_registry_free(reg);
        /* A registry the node cannot reach does not stop it from running the image it holds
         * under this exact name (loaded with `image load`, or pulled before). */
        if ((rerr.code == GY_EUNAVAILABLE || rerr.code == GY_ETIMEOUT) &&
            oci_image_get(p->store, out->name, &have, NULL) == 0) {
            gy_log_warn("registry unreachable, using the stored image",
                        "image=%s manifest=%s error=\"%s\"", out->name, have.manifest_digest,
                        rerr.msg);
            snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s",
                     have.manifest_digest);
            out->layers = have.n_layers;
            out->cached = true;
            oci_image_free(&have);
            return 0;
        }
        if (err != NULL)
            *err = rerr;
        return gy_error_wrap(err, "pull %s", out->name);
    }
    const struct agent_manifest *m = &img.manifest;
    snprintf(out->resolved, sizeof(out->resolved), "%s", img.resolved);
    snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", m->digest);
    out->layers = m->n_layers;
    out->bytes_total = m->config.size;
    for (size_t i = 0; i < m->n_layers; i++)
        out->bytes_total += m->layers[i].size;
    bool had = oci_image_get(p->store, out->name, &have, NULL) == 0;
    if (had) {
        out->cached = strcmp(have.manifest_digest, m->digest) == 0;
        oci_image_free(&have);
    }
    if (out->cached) {
        agent_registry_image_free(&img);
        agent_registry_free(reg);
        return 0;
    }
    rc = oci_store_blob_write(p->store, m->bytes, m->len, m->digest, NULL, err);
    if (rc == 0)
        rc = fetch_blob(p, reg, &ref, &m->config, &out->bytes_fetched, err);
    for (size_t i = 0; rc == 0 && i < m->n_layers; i++)
        rc = fetch_blob(p, reg, &ref, &m->layers[i], &out->bytes_fetched, err);
    if (rc == 0) {
        const char **layers = gy_xcalloc(m->n_layers + 1, sizeof(*layers));
        for (size_t i = 0; i < m->n_layers; i++)
            layers[i] = m->layers[i].digest;
        rc = oci_image_put(p->store, out->name, m->digest, m->config.digest, layers, m->n_layers,
                           NULL, 0, err);
        free(layers);
    }
    agent_registry_image_free(&img);
    agent_registry_free(reg);
    if (rc < 0)
        return gy_error_wrap(err, "pull %s", out->name);
    gy_log_info("image pulled",
                "image=%s manifest=%s layers=%zu bytes=%" PRId64 " fetched=%" PRId64, out->name,
                out->manifest_digest, out->layers, out->bytes_total, out->bytes_fetched);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Users */

/* Opens DIR/etc/NAME of one layer without following a symlink anywhere: a layer's link
 * points into the image, not into this host. 1: opened; 0: absent; -1: a whiteout hides
 * it (lower layers do not count). */
static int layer_etc_open(const char *dir, const char *name, FILE **out)
{
    *out = NULL;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    int efd = openat(dfd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (efd < 0)
        return 0;
    struct stat st;
    if (fstatat(efd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        close(efd);
        return 0;
    }
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0) {
        close(efd);
        return -1;
    }
    int fd = S_ISREG(st.st_mode) ? openat(efd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    close(efd);
    if (fd < 0)
        return 0;
    *out = fdopen(fd, "r");
    if (*out == NULL) {
        close(fd);
        return 0;
    }
    return 1;
}

/* Looks name up in the topmost etc/FILE of the layers: the third field of its line (the
 * uid in passwd, the gid in group) and, for passwd, the fourth (the primary gid). */
static bool etc_lookup(char *const *dirs, size_t n, const char *file, const char *name,
                       uint32_t *id, uint32_t *gid)
{
    for (size_t i = n; i-- > 0;) {
        FILE *f;
        int rc = layer_etc_open(dirs[i], file, &f);
        if (rc < 0)
            return false;
        if (rc == 0)
            continue;
        char line[1024];
        bool found = false;
        for (int lines = 0; !found && lines < 100000 && fgets(line, sizeof(line), f) != NULL;
             lines++) {
            char *save = NULL;
            char *fields[4] = {0};
            char *tok = strtok_r(line, ":\n", &save);
            for (int k = 0; k < 4 && tok != NULL; k++) {
                fields[k] = tok;
                tok = strtok_r(NULL, ":\n", &save);
            }
            /* passwd: name:x:uid:gid; group: name:x:gid:members */
            if (fields[0] == NULL || fields[2] == NULL || strcmp(fields[0], name) != 0)
                continue;
            char *end;
            unsigned long v = strtoul(fields[2], &end, 10);
            if (*end != '\0' || v > UINT32_MAX)
                continue;
            *id = (uint32_t)v;
            if (gid != NULL && fields[3] != NULL) {
                unsigned long g = strtoul(fields[3], &end, 10);
                *gid = *end == '\0' && g <= UINT32_MAX ? (uint32_t)g : 0;
            }
            found = true;
        }
        fclose(f);
        return found;
    }
    return false;
}

static bool parse_id(const char *s, uint32_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

int agent_image_user(const char *user, char *const *dirs, size_t n_dirs, uint32_t *uid,
                     uint32_t *gid, struct gy_error *err)
{
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", user) >= (int)sizeof(buf))
        return gy_error_set(err, GY_EINVAL, "image config User is too long");
    char *group = strchr(buf, ':');
    if (group != NULL)
        *group++ = '\0';
    *uid = 0;
    *gid = 0;
    bool numeric = parse_id(buf, uid);
    if (!numeric && !etc_lookup(dirs, n_dirs, "passwd", buf, uid, gid))
        return gy_error_set(err, GY_ENOTFOUND,
                            "image config User \"%s\": no such user in the image's /etc/passwd",
                            buf);
    if (group != NULL && !parse_id(group, gid) &&
        !etc_lookup(dirs, n_dirs, "group", group, gid, NULL))
        return gy_error_set(err, GY_ENOTFOUND,
                            "image config User \"%s\": no such group \"%s\" in the image's "
                            "/etc/group",
                            user, group);
    if (numeric && group == NULL) {
        /* A bare uid takes the primary group its passwd line gives, if any (as runc). */
        for (size_t i = n_dirs; i-- > 0;) {
            FILE *f;
            int rc = layer_etc_open(dirs[i], "passwd", &f);
            if (rc < 0)
                break;
            if (rc == 0)
                continue;
            char line[1024];
            for (int lines = 0; lines < 100000 && fgets(line, sizeof(line), f) != NULL; lines++) {
                unsigned u, g;
                char *p = strchr(line, ':');
                if (p != NULL && (p = strchr(p + 1, ':')) != NULL &&
                    sscanf(p + 1, "%u:%u", &u, &g) == 2 && u == *uid) {
                    *gid = g;
                    break;
                }
            }
            fclose(f);
            break;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * What a replica starts from */

static char **strv_dup(char *const *v, size_t n)
{
    char **out = gy_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = gy_xstrdup(v[i]);
    return out;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

void agent_image_defaults_free(struct agent_image_defaults *d)
{
    strv_free(d->entrypoint, d->n_entrypoint);
    strv_free(d->cmd, d->n_cmd);
    strv_free(d->env, d->n_env);
    free((char *)d->working_dir);
    memset(d, 0, sizeof(*d));
}

int agent_image_prepare(struct agent_puller *p, const char *name, char ***dirs, size_t *n_dirs,
                        struct agent_image_defaults *d, struct gy_error *err)
{
    memset(d, 0, sizeof(*d));
    *dirs = NULL;
    *n_dirs = 0;
    struct oci_image img;
    int rc = oci_image_get(p->store, name, &img, err);
    if (rc < 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    struct oci_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    rc = oci_store_blob_read_small(p->store, img.config_digest, OCI_CONFIG_MAX_BYTES, &text, &len,
                                   err);
    if (rc == 0)
        rc = oci_config_parse(text, len, &cfg, err);
    free(text);
    oci_image_free(&img);
    if (rc == 0)
        rc = oci_image_lowerdirs(p->store, name, dirs, n_dirs, err);
    if (rc < 0) {
        oci_config_free(&cfg);
        return gy_error_wrap(err, "image %s", name);
    }
    d->entrypoint = strv_dup(cfg.entrypoint, cfg.n_entrypoint);
    d->n_entrypoint = cfg.n_entrypoint;
    d->cmd = strv_dup(cfg.cmd, cfg.n_cmd);
    d->n_cmd = cfg.n_cmd;
    d->env = strv_dup(cfg.env, cfg.n_env);
    d->n_env = cfg.n_env;
    d->working_dir = cfg.working_dir != NULL ? gy_xstrdup(cfg.working_dir) : NULL;
    if (cfg.user != NULL && cfg.user[0] != '\0') {
        rc = agent_image_user(cfg.user, *dirs, *n_dirs, &d->uid, &d->gid, err);
        d->has_user = rc == 0;
    }
    oci_config_free(&cfg);
    if (rc < 0) {
        agent_image_defaults_free(d);
        oci_strv_free(*dirs, *n_dirs);
        *dirs = NULL;
        *n_dirs = 0;
        return gy_error_wrap(err, "image %s", name);
    }
    return 0;
}
