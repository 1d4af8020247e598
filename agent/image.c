/* Image store; see image.h.
 *
 * Layout under DATA_DIR/images:
 *   layers/NAME@MS/      one imported root filesystem (never changed after import)
 *   NAME.json            the manifest: {"name","layer","imported_ms","size_bytes","source"}
 * A re-import writes a new layer and then switches the manifest atomically (rename), so a
 * container started from the old layer keeps it: a layer is removed only when no manifest
 * names it and no overlay mount uses it (agent_image_gc). */
#include "agent/image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/tool.h"
#include "common/image_ref.h"
#include "common/cleanup.h"

int agent_image_name_check(const char *name, struct gy_error *err)
{
    return gy_image_local_name_check(name, err);
}

/* snprintf into a path buffer; false when the result did not fit. */
static bool __attribute__((format(printf, 3, 4)))
path_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mkdir_p(const char *path, struct gy_error *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return gy_error_set(err, GY_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return gy_error_sys(err, errno, "mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "mkdir %s", buf);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        return -1;
    return 0;
}

/* rm -rf without following symlinks or crossing into other file systems. */
static int remove_tree(const char *path, struct gy_error *err)
{
    if (nftw(path, remove_entry, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        return gy_error_sys(err, errno, "remove %s", path);
    return 0;
}

static int64_t tree_size;

static int add_size(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        tree_size += st->st_size;
    return 0;
}

static int manifest_path(const char *data_dir, const char *name, char *buf, size_t len)
{
    return path_fmt(buf, len, "%s/images/%s.json", data_dir, name) ? 0 : -1;
}

static int manifest_read(const char *data_dir, const char *name, struct agent_image *out,
                         char *layer, size_t layer_len, struct gy_error *err)
{
    char path[PATH_MAX];
    if (manifest_path(data_dir, name, path, sizeof(path)) < 0)
        return gy_error_set(err, GY_EINVAL, "data dir path too long");
    if (access(path, F_OK) < 0)
        return gy_error_set(err, GY_ENOTFOUND, "image \"%s\" is not in the store", name);
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (m == NULL)
        return gy_error_set(err, GY_EIO, "read %s: %s (line %d)", path, jerr.text, jerr.line);
    const char *layer_name = json_string_value(json_object_get(m, "layer"));
    if (layer_name == NULL || strchr(layer_name, '/') != NULL) {
        json_decref(m);
        return gy_error_set(err, GY_EIO, "%s: missing or invalid \"layer\"", path);
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    if (!path_fmt(out->rootfs, sizeof(out->rootfs), "%s/images/layers/%s", data_dir, layer_name)) {
        json_decref(m);
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    }
    out->imported_ms = json_integer_value(json_object_get(m, "imported_ms"));
    out->size_bytes = json_integer_value(json_object_get(m, "size_bytes"));
    if (layer != NULL)
        snprintf(layer, layer_len, "%s", layer_name);
    json_decref(m);
    return 0;
}

/* True when an overlay mount on this machine uses dir as one of its layers. */
static bool layer_in_use(const char *dir)
{
    cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return true; /* cannot tell: keep it */
    char *line = NULL;
    size_t cap = 0;
    bool used = false;
    size_t dlen = strlen(dir);
    while (!used && getline(&line, &cap, f) > 0) {
        if (strstr(line, " - overlay ") == NULL)
            continue;
        for (const char *p = strstr(line, dir); p != NULL; p = strstr(p + 1, dir)) {
            char before = p == line ? ' ' : p[-1];
            char after = p[dlen];
            if ((before == '=' || before == ':' || before == ',') &&
                (after == ':' || after == ',' || after == '\n' || after == ' ' || after == '\0'))
                used = true;
        }
    }
    free(line);
    return used;
}

/* Removes layers that no manifest names and no mount uses. */
static int image_gc(const char *data_dir, struct gy_error *err)
{
    char dir[PATH_MAX];
    if (!path_fmt(dir, sizeof(dir), "%s/images/layers", data_dir))
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    cleanup_closedir DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : gy_error_sys(err, errno, "open %s", dir);
    struct agent_image *images = NULL;
    size_t n = 0;
    int rc = agent_image_list(data_dir, &images, &n, err);
    if (rc < 0)
        return rc;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (!path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name))
            continue;
        bool named = false;
        for (size_t i = 0; i < n && !named; i++)
            named = strcmp(images[i].rootfs, path) == 0;
        if (!named && !layer_in_use(path) && (rc = remove_tree(path, err)) < 0)
            break;
    }
    free(images);
    return rc < 0 ? rc : 0;
}

int agent_image_import(const char *data_dir, const char *name, const char *path,
                       struct agent_image *out, struct gy_error *err)
{
    int rc = agent_image_name_check(name, err);
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(path, &st) < 0)
        return gy_error_sys(err, errno, "import image \"%s\" from %s", name, path);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return gy_error_set(err, GY_EINVAL,
                            "import image \"%s\": %s is neither a directory nor a tarball", name,
                            path);
    char layers[PATH_MAX];
    if (!path_fmt(layers, sizeof(layers), "%s/images/layers", data_dir))
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    if ((rc = mkdir_p(layers, err)) < 0)
        return gy_error_wrap(err, "import image \"%s\"", name);

    int64_t ms = now_ms();
    char layer_name[AGENT_IMAGE_NAME_MAX + 32];
    char layer[PATH_MAX], staging[PATH_MAX];
    if (!path_fmt(layer_name, sizeof(layer_name), "%s@%lld", name, (long long)ms) ||
        !path_fmt(layer, sizeof(layer), "%s/%s", layers, layer_name) ||
        !path_fmt(staging, sizeof(staging), "%s/.import-%s-%d", layers, layer_name, (int)getpid()))
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    if (mkdir(staging, 0755) < 0)
        return gy_error_sys(err, errno, "import image \"%s\": mkdir %s", name, staging);

    if (S_ISDIR(st.st_mode)) {
        char src[PATH_MAX];
        if (!path_fmt(src, sizeof(src), "%s/.", path)) {
            rc = gy_error_set(err, GY_EINVAL, "path too long: %s", path);
            goto fail;
        }
        const char *argv[] = {"cp", "-a", "--", src, staging, NULL};
        rc = agent_tool_run(argv, err);
    } else {
        const char *argv[] = {"tar", "--numeric-owner", "-xpf", path, "-C", staging, NULL};
        rc = agent_tool_run(argv, err);
    }
    if (rc < 0)
        goto fail;

    tree_size = 0;
    nftw(staging, add_size, 64, FTW_PHYS);
    if (rename(staging, layer) < 0) {
        rc = gy_error_sys(err, errno, "rename %s to %s", staging, layer);
        goto fail;
    }

    json_t *m =
        json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", name, "layer", layer_name, "imported_ms",
                  (json_int_t)ms, "size_bytes", (json_int_t)tree_size, "source", path);
    char mpath[PATH_MAX], mtmp[PATH_MAX + 8];
    manifest_path(data_dir, name, mpath, sizeof(mpath));
    path_fmt(mtmp, sizeof(mtmp), "%s.tmp", mpath);
    rc = json_dump_file(m, mtmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(m);
    if (rc < 0 || rename(mtmp, mpath) < 0) {
        rc = gy_error_sys(err, errno, "write manifest %s", mpath);
        unlink(mtmp);
        remove_tree(layer, NULL);
        return gy_error_wrap(err, "import image \"%s\"", name);
    }
    if (out != NULL && (rc = agent_image_get(data_dir, name, out, err)) < 0)
        return rc;
    /* The previous layer of this name goes unless a container still runs on it. */
    return image_gc(data_dir, err);

fail:
    remove_tree(staging, NULL);
    return gy_error_wrap(err, "import image \"%s\" from %s", name, path);
}

int agent_image_get(const char *data_dir, const char *name, struct agent_image *out,
                    struct gy_error *err)
{
    int rc = agent_image_name_check(name, err);
    if (rc < 0)
        return rc;
    return manifest_read(data_dir, name, out, NULL, 0, err);
}

static int image_cmp(const void *a, const void *b)
{
    return strcmp(((const struct agent_image *)a)->name, ((const struct agent_image *)b)->name);
}

int agent_image_list(const char *data_dir, struct agent_image **out, size_t *n,
                     struct gy_error *err)
{
    *out = NULL;
    *n = 0;
    char dir[PATH_MAX];
    if (!path_fmt(dir, sizeof(dir), "%s/images", data_dir))
        return gy_error_set(err, GY_EINVAL, "data dir path too long: %s", data_dir);
    cleanup_closedir DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : gy_error_sys(err, errno, "open %s", dir);
    struct agent_image *list = NULL;
    size_t count = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char name[AGENT_IMAGE_NAME_MAX + 1];
        if (len - 5 > AGENT_IMAGE_NAME_MAX)
            continue;
        memcpy(name, de->d_name, len - 5);
        name[len - 5] = '\0';
        if (agent_image_name_check(name, NULL) < 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            struct agent_image *grown = realloc(list, cap * sizeof(*list));
            if (grown == NULL) {
                free(list);
                return gy_error_set(err, GY_ENOMEM, "list images");
            }
            list = grown;
        }
        if (manifest_read(data_dir, name, &list[count], NULL, 0, NULL) == 0)
            count++;
    }
    if (count > 0)
        qsort(list, count, sizeof(*list), image_cmp);
    *out = list;
    *n = count;
    return 0;
}

int agent_image_remove(const char *data_dir, const char *name, struct gy_error *err)
{
    struct agent_image img;
    int rc = agent_image_get(data_dir, name, &img, err);
    if (rc < 0)
        return rc;
    char mpath[PATH_MAX];
    manifest_path(data_dir, name, mpath, sizeof(mpath));
    if (unlink(mpath) < 0)
        return gy_error_sys(err, errno, "remove image \"%s\": unlink %s", name, mpath);
    return image_gc(data_dir, err);
}
