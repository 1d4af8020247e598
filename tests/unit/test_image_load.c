/* Unit tests of `gantry-agent image load` (agent/image_load.h): OCI image layouts as a
 * directory, a tar and a gzip-compressed tar, docker save archives, built here with
 * libarchive's writer (two layers, the second with a whiteout); indexes resolved for a
 * platform; names from annotations, RepoTags and --name; hostile and broken archives
 * refused with errors naming the entry and nothing recorded; and agent_pull using a loaded
 * image when its registry cannot be reached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/image_load.h"
#include "agent/oci_store.h"
#include "agent/pull.h"
#include "agent/registry.h"
#include "tests/unit/skip.h"

/* ---- Archives built in memory ---------------------------------------------------- */

struct bytes {
    unsigned char *data;
    size_t len;
    size_t cap;
};

static la_ssize_t bytes_write(struct archive *a, void *arg, const void *p, size_t n)
{
    (void)a;
    struct bytes *b = arg;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return (la_ssize_t)n;
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static struct bytes bytes_of(const char *s)
{
    struct bytes b = {.len = strlen(s), .cap = strlen(s) + 1};
    b.data = malloc(b.cap);
    memcpy(b.data, s, b.cap);
    return b;
}

struct tar {
    struct archive *a;
    struct bytes out;
};

/* A pax tar writer; gzip compresses the whole archive. */
static struct tar *tar_new(bool gzip)
{
    struct tar *t = calloc(1, sizeof(*t));
    t->a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
    if (gzip)
        assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
    assert_int_equal(archive_write_open(t->a, &t->out, NULL, bytes_write, NULL), ARCHIVE_OK);
    return t;
}

static void tar_add(struct tar *t, const char *path, mode_t type, const void *data, size_t len,
                    const char *symlink)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_mtime(e, 1500000000, 0);
    archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)len : 0);
    if (symlink != NULL)
        archive_entry_set_symlink(e, symlink);
    if (archive_write_header(t->a, e) != ARCHIVE_OK)
        fail_msg("write header %s: %s", path, archive_error_string(t->a));
    if (type == AE_IFREG && len > 0)
        assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
}

static void tar_file(struct tar *t, const char *path, const char *text)
{
    tar_add(t, path, AE_IFREG, text, strlen(text), NULL);
}

static struct bytes tar_finish(struct tar *t)
{
    assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    struct bytes out = t->out;
    free(t);
    return out;
}

/* Gzip-compresses bytes, as a registry's layer blob is. */
static struct bytes gzip(const struct bytes *in)
{
    struct bytes out = {0};
    struct archive *a = archive_write_new();
    archive_write_set_format_raw(a);
    archive_write_add_filter_gzip(a);
    archive_write_set_bytes_per_block(a, 0);
    assert_int_equal(archive_write_open(a, &out, NULL, bytes_write, NULL), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "layer");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)in->len);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    assert_int_equal(archive_write_data(a, in->data, in->len), (la_ssize_t)in->len);
    archive_entry_free(e);
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return out;
}

static void sha256_hex(const struct bytes *b, char out[OCI_DIGEST_BUF])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len;
    EVP_Digest(b->data, b->len, md, &md_len, EVP_sha256(), NULL);
    oci_digest_format(md, out);
}

/* ---- Images ------------------------------------------------------------------------ */

struct blob {
    struct bytes data;
    char digest[OCI_DIGEST_BUF];
};

static void blob_set(struct blob *b, struct bytes data)
{
    b->data = data;
    sha256_hex(&b->data, b->digest);
}

/* An image of two layers: the first has /etc/motd and /gone, the second deletes /gone (a
 * whiteout) and adds /etc/two. tar[] are the layers uncompressed (their digests are the
 * diff_ids), gz[] the same gzip-compressed (the OCI layout's layer blobs). */
struct image {
    struct blob tar[2];
    struct blob gz[2];
    struct blob config;
    struct blob manifest;
    struct agent_platform platform;
};

static void image_build(struct image *img, const struct agent_platform *p, const char *motd)
{
    memset(img, 0, sizeof(*img));
    img->platform = *p;
    struct tar *t = tar_new(false);
    tar_add(t, "etc/", AE_IFDIR, NULL, 0, NULL);
    tar_file(t, "etc/motd", motd);
    tar_file(t, "gone", "deleted by the second layer\n");
    blob_set(&img->tar[0], tar_finish(t));
    t = tar_new(false);
    tar_file(t, ".wh.gone", "");
    tar_file(t, "etc/two", "from the second layer\n");
    tar_file(t, "etc/which", motd); /* no two test images share a layer */
    blob_set(&img->tar[1], tar_finish(t));
    for (int i = 0; i < 2; i++)
        blob_set(&img->gz[i], gzip(&img->tar[i].data));
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"architecture\":\"%s\",\"os\":\"%s\"%s%s%s,\"config\":{\"Cmd\":[\"/bin/sh\"]},"
             "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\",\"%s\"]}}",
             p->arch, p->os, p->variant[0] ? ",\"variant\":\"" : "", p->variant,
             p->variant[0] ? "\"" : "", img->tar[0].digest, img->tar[1].digest);
    blob_set(&img->config, bytes_of(text));
    snprintf(text, sizeof(text),
             "{\"schemaVersion\":2,\"mediaType\":\"" AGENT_MEDIA_OCI_MANIFEST "\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":["
             "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\","
             "\"size\":%zu},"
             "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\","
             "\"size\":%zu}]}",
             img->config.digest, img->config.data.len, img->gz[0].digest, img->gz[0].data.len,
             img->gz[1].digest, img->gz[1].data.len);
    blob_set(&img->manifest, bytes_of(text));
}

static void image_free(struct image *img)
{
    for (int i = 0; i < 2; i++) {
        bytes_free(&img->tar[i].data);
        bytes_free(&img->gz[i].data);
    }
    bytes_free(&img->config.data);
    bytes_free(&img->manifest.data);
}

static int64_t image_bytes(const struct image *img)
{
    return (int64_t)(img->config.data.len + img->gz[0].data.len + img->gz[1].data.len);
}

/* ---- Layouts: written into a directory or a tar ------------------------------------ */

struct sink {
    const char *dir; /* a directory, or */
    struct tar *tar; /* a tar */
    const char *prefix;
};

static void mkdir_parents(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = strchr(buf + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
}

static void sink_write(struct sink *s, const char *path, const void *data, size_t len)
{
    if (s->tar != NULL) {
        char name[PATH_MAX];
        snprintf(name, sizeof(name), "%s%s", s->prefix != NULL ? s->prefix : "", path);
        tar_add(s->tar, name, AE_IFREG, data, len, NULL);
        return;
    }
    char full[PATH_MAX];
    snprintf(full, sizeof(full), "%s/%s", s->dir, path);
    mkdir_parents(full);
    FILE *f = fopen(full, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void sink_blob(struct sink *s, const struct blob *b)
{
    char path[128];
    snprintf(path, sizeof(path), "blobs/sha256/%s", b->digest + 7);
    sink_write(s, path, b->data.data, b->data.len);
}

static void sink_text(struct sink *s, const char *path, const char *text)
{
    sink_write(s, path, text, strlen(text));
}

static void sink_image_blobs(struct sink *s, const struct image *img)
{
    sink_blob(s, &img->gz[0]);
    sink_blob(s, &img->gz[1]);
    sink_blob(s, &img->config);
    sink_blob(s, &img->manifest);
}

/* index.json with one manifest entry; annotations is "" or `"key":"value",...`. */
static void sink_index(struct sink *s, const struct blob *manifest, const char *media,
                       const char *annotations)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"schemaVersion\":2,\"mediaType\":\"" AGENT_MEDIA_OCI_INDEX "\",\"manifests\":["
             "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu%s%s%s}]}",
             media, manifest->digest, manifest->data.len,
             annotations[0] ? ",\"annotations\":{" : "", annotations, annotations[0] ? "}" : "");
    sink_text(s, "index.json", text);
}

static void sink_layout_file(struct sink *s)
{
    sink_text(s, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
}

/* ---- Fixture ------------------------------------------------------------------------ */

struct fixture {
    char scratch[64];
    char root[128];
    char file[128]; /* an archive written by archive_save */
    struct oci_store *store;
    struct agent_platform platform; /* this node's */
    struct agent_platform other;    /* another one */
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->scratch, sizeof(fx->scratch), "/tmp/gantry-image-load.XXXXXX");
    if (mkdtemp(fx->scratch) == NULL)
        return -1;
    snprintf(fx->root, sizeof(fx->root), "%s/oci", fx->scratch);
    snprintf(fx->file, sizeof(fx->file), "%s/image.tar", fx->scratch);
    struct gy_error err;
    if (oci_store_open(fx->root, NULL, &fx->store, &err) < 0 ||
        agent_platform_detect(&fx->platform, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    agent_platform_parse(strcmp(fx->platform.arch, "amd64") == 0 ? "linux/arm64/v8" : "linux/amd64",
                         &fx->other, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    oci_store_close(fx->store);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwX '%s' 2>/dev/null; rm -rf '%s'", fx->scratch,
             fx->scratch);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void archive_save(struct fixture *fx, struct tar *t)
{
    struct bytes b = tar_finish(t);
    FILE *f = fopen(fx->file, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(b.data, 1, b.len, f), b.len);
    fclose(f);
    bytes_free(&b);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Nothing was recorded, and no staging file is left in the store's ingest directory. */
static void assert_nothing_recorded(struct fixture *fx)
{
    struct oci_image *list;
    size_t n;
    struct gy_error err;
    assert_int_equal(oci_image_list(fx->store, &list, &n, &err), 0);
    oci_image_list_free(list, n);
    assert_int_equal(n, 0);
    char ingest[256];
    snprintf(ingest, sizeof(ingest), "%s/ingest", oci_store_root(fx->store));
    assert_int_equal(count_entries(ingest), 0);
}

static struct agent_load_result load_ok(struct fixture *fx, const char *path, const char *name)
{
    struct agent_load_options opts = {.name = name, .platform = &fx->platform};
    struct agent_load_result res;
    struct gy_error err;
    if (agent_image_load(fx->store, path, &opts, &res, &err) < 0)
        fail_msg("load %s: %s", path, err.msg);
    return res;
}

/* Loads path expecting a failure with code and every one of the strings in its message,
 * and that nothing was recorded. */
static void load_fails(struct fixture *fx, const char *path, const char *name, enum gy_code code,
                       const char *want1, const char *want2)
{
    struct agent_load_options opts = {.name = name, .platform = &fx->platform};
    struct agent_load_result res;
    struct gy_error err;
    int rc = agent_image_load(fx->store, path, &opts, &res, &err);
    if (rc == 0)
        fail_msg("load %s succeeded (%zu images)", path, res.n_images);
    fprintf(stderr, "refused as expected: %s\n", err.msg);
    assert_int_equal(rc, -(int)code);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, path));
    if (want1 != NULL && strstr(err.msg, want1) == NULL)
        fail_msg("\"%s\" is not in: %s", want1, err.msg);
    if (want2 != NULL && strstr(err.msg, want2) == NULL)
        fail_msg("\"%s\" is not in: %s", want2, err.msg);
    assert_nothing_recorded(fx);
}

static void read_text(const char *dir, const char *rel, char *buf, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* The stored image is the one given, and its layers unpack with the whiteout in place. */
static void assert_stored(struct fixture *fx, const char *name, const char *manifest,
                          const char *config, const struct blob layers[2],
                          const struct blob tars[2], const char *motd)
{
    struct oci_image got;
    struct gy_error err;
    if (oci_image_get(fx->store, name, &got, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(got.manifest_digest, manifest);
    assert_string_equal(got.config_digest, config);
    assert_int_equal(got.n_layers, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(got.layers[i], layers[i].digest);
        assert_string_equal(got.diff_ids[i], tars[i].digest);
    }
    oci_image_free(&got);
    char **dirs;
    size_t n;
    if (oci_image_lowerdirs(fx->store, name, &dirs, &n, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 2);
    char text[256], path[PATH_MAX];
    read_text(dirs[0], "etc/motd", text, sizeof(text));
    assert_string_equal(text, motd);
    read_text(dirs[0], "gone", text, sizeof(text));
    read_text(dirs[1], "etc/two", text, sizeof(text));
    assert_string_equal(text, "from the second layer\n");
    struct stat st;
    snprintf(path, sizeof(path), "%s/gone", dirs[1]);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISCHR(st.st_mode)); /* overlayfs' whiteout: a 0/0 character device */
    assert_int_equal(st.st_rdev, makedev(0, 0));
    oci_strv_free(dirs, n);
}

/* ---- OCI image layouts ----------------------------------------------------------------- */

static void test_oci_directory(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "hello from a directory\n");
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/layout", fx->scratch);
    mkdir(dir, 0755);
    struct sink s = {.dir = dir};
    sink_layout_file(&s);
    sink_image_blobs(&s, &img);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST,
               "\""
               "org.opencontainers.image.ref.name"
               "\":\"registry.example:5000/team/app:1\"");

    struct agent_load_result res = load_ok(fx, dir, NULL);
    assert_int_equal(res.format, AGENT_LOAD_OCI_DIR);
    assert_int_equal(res.n_images, 1);
    assert_string_equal(res.images[0].name, "registry.example:5000/team/app:1");
    assert_string_equal(res.images[0].manifest_digest, img.manifest.digest);
    assert_int_equal(res.images[0].layers, 2);
    assert_int_equal(res.images[0].bytes, image_bytes(&img));
    agent_load_result_free(&res);
    assert_stored(fx, "registry.example:5000/team/app:1", img.manifest.digest, img.config.digest,
                  img.gz, img.tar, "hello from a directory\n");

    /* Loading again changes nothing and copies nothing it holds. */
    res = load_ok(fx, dir, NULL);
    assert_string_equal(res.images[0].manifest_digest, img.manifest.digest);
    agent_load_result_free(&res);
    char ingest[256];
    snprintf(ingest, sizeof(ingest), "%s/ingest", oci_store_root(fx->store));
    assert_int_equal(count_entries(ingest), 0);
    image_free(&img);
}

/* As `tar -C layout -czf image.tar.gz .` makes it: "./" names, the index after the blobs,
 * the whole gzip-compressed; named the way Docker 25 and containerd export. */
static void test_oci_archive_gzip(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "hello from a tar.gz\n");
    struct tar *t = tar_new(true);
    struct sink s = {.tar = t, .prefix = "./"};
    tar_add(t, "./", AE_IFDIR, NULL, 0, NULL);
    tar_add(t, "./blobs/", AE_IFDIR, NULL, 0, NULL);
    tar_add(t, "./blobs/sha256/", AE_IFDIR, NULL, 0, NULL);
    sink_image_blobs(&s, &img);
    sink_layout_file(&s);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST,
               "\"io.containerd.image.name\":\"docker.io/library/app:2\","
               "\"org.opencontainers.image.ref.name\":\"2\"");
    archive_save(fx, t);

    struct agent_load_result res = load_ok(fx, fx->file, NULL);
    assert_int_equal(res.format, AGENT_LOAD_OCI_TAR);
    assert_int_equal(res.n_images, 1);
    assert_string_equal(res.images[0].name, "docker.io/library/app:2");
    assert_string_equal(res.images[0].manifest_digest, img.manifest.digest);
    agent_load_result_free(&res);
    assert_stored(fx, "docker.io/library/app:2", img.manifest.digest, img.config.digest, img.gz,
                  img.tar, "hello from a tar.gz\n");
    char ingest[256];
    snprintf(ingest, sizeof(ingest), "%s/ingest", oci_store_root(fx->store));
    assert_int_equal(count_entries(ingest), 0);
    image_free(&img);
}

/* An index entry for manifest on platform p; extra is "" or `,"annotations":{...}`. */
static void index_entry(char *buf, size_t len, const struct blob *manifest,
                        const struct agent_platform *p, const char *extra)
{
    snprintf(buf, len,
             "{\"mediaType\":\"" AGENT_MEDIA_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
             "\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"%s%s%s}%s}",
             manifest->digest, manifest->data.len, p->os, p->arch,
             p->variant[0] ? ",\"variant\":\"" : "", p->variant, p->variant[0] ? "\"" : "", extra);
}

/* An index entry that is itself an index (skopeo copy --all), and an index whose entries
 * of one name are platforms: the node's platform is loaded, or the one asked for. */
static void test_oci_platforms(void **state)
{
    struct fixture *fx = *state;
    struct image mine, other;
    image_build(&mine, &fx->platform, "this node's platform\n");
    image_build(&other, &fx->other, "another platform\n");
    char text[4096], e1[1024], e2[1024];
    index_entry(e1, sizeof(e1), &other.manifest, &fx->other, "");
    index_entry(e2, sizeof(e2), &mine.manifest, &fx->platform, "");
    snprintf(text, sizeof(text),
             "{\"schemaVersion\":2,\"mediaType\":\"" AGENT_MEDIA_OCI_INDEX
             "\",\"manifests\":[%s,%s]}",
             e1, e2);
    struct blob nested;
    blob_set(&nested, bytes_of(text));

    struct tar *t = tar_new(false);
    struct sink s = {.tar = t};
    sink_layout_file(&s);
    sink_image_blobs(&s, &other);
    sink_image_blobs(&s, &mine);
    sink_blob(&s, &nested);
    sink_index(&s, &nested, AGENT_MEDIA_OCI_INDEX,
               "\"org.opencontainers.image.ref.name\":\"multi:1\"");
    archive_save(fx, t);
    struct agent_load_result res = load_ok(fx, fx->file, NULL);
    assert_int_equal(res.n_images, 1);
    assert_string_equal(res.images[0].name, "docker.io/library/multi:1");
    assert_string_equal(res.images[0].manifest_digest, mine.manifest.digest);
    agent_load_result_free(&res);
    assert_stored(fx, "docker.io/library/multi:1", mine.manifest.digest, mine.config.digest,
                  mine.gz, mine.tar, "this node's platform\n");

    /* The same by digest: a name with the index's digest names what was loaded. */
    char byname[256];
    snprintf(byname, sizeof(byname), "docker.io/library/multi@%s", nested.digest);
    res = load_ok(fx, fx->file, byname);
    assert_string_equal(res.images[0].name, byname);
    assert_string_equal(res.images[0].manifest_digest, mine.manifest.digest);
    agent_load_result_free(&res);

    /* Flat: two entries of one name, told apart by platform; another platform asked for. */
    const char *ann = ",\"annotations\":{\"org.opencontainers.image.ref.name\":\"flat:1\"}";
    index_entry(e1, sizeof(e1), &other.manifest, &fx->other, ann);
    index_entry(e2, sizeof(e2), &mine.manifest, &fx->platform, ann);
    snprintf(text, sizeof(text), "{\"schemaVersion\":2,\"manifests\":[%s,%s]}", e1, e2);
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    sink_image_blobs(&s, &other);
    sink_image_blobs(&s, &mine);
    sink_text(&s, "index.json", text);
    archive_save(fx, t);
    struct agent_load_options opts = {.platform = &fx->other};
    struct gy_error err;
    if (agent_image_load(fx->store, fx->file, &opts, &res, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_images, 1);
    assert_string_equal(res.images[0].name, "docker.io/library/flat:1");
    assert_string_equal(res.images[0].manifest_digest, other.manifest.digest);
    agent_load_result_free(&res);
    assert_stored(fx, "docker.io/library/flat:1", other.manifest.digest, other.config.digest,
                  other.gz, other.tar, "another platform\n");

    bytes_free(&nested.data);
    image_free(&mine);
    image_free(&other);
}

/* A layout without a name: refused unless --name gives one; --name with a digest must name
 * the image loaded. */
static void test_oci_names(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "unnamed\n");
    struct tar *t = tar_new(false);
    struct sink s = {.tar = t};
    sink_layout_file(&s);
    sink_image_blobs(&s, &img);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST, "");
    archive_save(fx, t);

    load_fails(fx, fx->file, NULL, GY_EINVAL, "has no name", "--name");
    char wrong[256];
    snprintf(wrong, sizeof(wrong), "localhost:5000/x@%s", img.config.digest);
    load_fails(fx, fx->file, wrong, GY_EINVAL, "has a digest", img.manifest.digest);
    load_fails(fx, fx->file, "Not/A/Reference", GY_EINVAL, "--name", "lower-case");

    struct agent_load_result res = load_ok(fx, fx->file, "localhost:5000/x");
    assert_string_equal(res.images[0].name, "localhost:5000/x:latest");
    agent_load_result_free(&res);
    assert_stored(fx, "localhost:5000/x:latest", img.manifest.digest, img.config.digest, img.gz,
                  img.tar, "unnamed\n");

    /* A name that is no reference is refused, unless --name replaces it. */
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    sink_image_blobs(&s, &img);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST,
               "\"org.opencontainers.image.ref.name\":\"Latest\"");
    archive_save(fx, t);
    struct gy_error err;
    assert_int_equal(oci_image_remove(fx->store, "localhost:5000/x:latest", &err), 0);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "manifests[0]: name", "\"Latest\"");
    res = load_ok(fx, fx->file, "localhost:5000/y:2");
    assert_string_equal(res.images[0].name, "localhost:5000/y:2");
    agent_load_result_free(&res);
    image_free(&img);
}

/* ---- docker save archives ---------------------------------------------------------------- */

/* What docker save writes: a directory per layer with layer.tar (here the second is a
 * symlink to a file elsewhere in the archive, as Docker writes repeated layers and skopeo
 * its legacy directories), the config as HEX.json, manifest.json and repositories. */
static void docker_archive(struct fixture *fx, const struct image *img, const char *repo_tags,
                           const char *config_text)
{
    struct tar *t = tar_new(false);
    struct sink s = {.tar = t};
    tar_add(t, "one/", AE_IFDIR, NULL, 0, NULL);
    sink_write(&s, "one/layer.tar", img->tar[0].data.data, img->tar[0].data.len);
    sink_text(&s, "one/VERSION", "1.0");
    sink_write(&s, "two.tar", img->tar[1].data.data, img->tar[1].data.len);
    tar_add(t, "two/", AE_IFDIR, NULL, 0, NULL);
    tar_add(t, "two/layer.tar", AE_IFLNK, NULL, 0, "../two.tar");
    sink_text(&s, "config.json", config_text != NULL ? config_text : (char *)img->config.data.data);
    char text[1024];
    snprintf(text, sizeof(text),
             "[{\"Config\":\"config.json\",\"RepoTags\":%s,"
             "\"Layers\":[\"one/layer.tar\",\"./two/layer.tar\"]}]",
             repo_tags);
    sink_text(&s, "manifest.json", text);
    sink_text(&s, "repositories", "{}");
    archive_save(fx, t);
}

static void test_docker_save(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "hello from docker save\n");
    docker_archive(fx, &img, "[\"team/app:3\",\"team/app:latest\"]", NULL);

    struct agent_load_result res = load_ok(fx, fx->file, NULL);
    assert_int_equal(res.format, AGENT_LOAD_DOCKER);
    assert_int_equal(res.n_images, 2);
    assert_string_equal(res.images[0].name, "docker.io/team/app:3");
    assert_string_equal(res.images[1].name, "docker.io/team/app:latest");
    assert_string_equal(res.images[0].manifest_digest, res.images[1].manifest_digest);
    assert_int_equal(res.images[0].layers, 2);
    assert_int_equal(res.images[0].bytes,
                     (int64_t)(img.config.data.len + img.tar[0].data.len + img.tar[1].data.len));
    char manifest[OCI_DIGEST_BUF];
    snprintf(manifest, sizeof(manifest), "%s", res.images[0].manifest_digest);
    agent_load_result_free(&res);
    /* Uncompressed layers: the blobs are the diff_ids. */
    assert_stored(fx, "docker.io/team/app:3", manifest, img.config.digest, img.tar, img.tar,
                  "hello from docker save\n");
    assert_stored(fx, "docker.io/team/app:latest", manifest, img.config.digest, img.tar, img.tar,
                  "hello from docker save\n");

    /* The manifest built for it is an OCI image manifest the registry code reads. */
    char *text;
    size_t len;
    struct gy_error err;
    assert_int_equal(
        oci_store_blob_read_small(fx->store, manifest, OCI_MANIFEST_MAX_BYTES, &text, &len, &err),
        0);
    struct agent_manifest m;
    if (agent_manifest_parse(text, len, NULL, &m, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(m.kind, AGENT_MANIFEST_OCI);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[1].digest, img.tar[1].digest);
    assert_int_equal(m.layers[1].size, (int64_t)img.tar[1].data.len);
    agent_manifest_free(&m);
    free(text);

    /* The staging files of what the image did not need (one/VERSION, repositories) are
     * gone, and so are the rest. */
    char ingest[256];
    snprintf(ingest, sizeof(ingest), "%s/ingest", oci_store_root(fx->store));
    assert_int_equal(count_entries(ingest), 0);
    image_free(&img);
}

/* ---- Refused ------------------------------------------------------------------------- */

static void test_refused_oci(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "hostile\n");
    const char *named = "\"org.opencontainers.image.ref.name\":\"evil:1\"";
    char blob_path[128];
    snprintf(blob_path, sizeof(blob_path), "blobs/sha256/%.64s", img.gz[1].digest + 7);

    /* A blob whose content is not what its name says. */
    struct tar *t = tar_new(false);
    struct sink s = {.tar = t};
    sink_layout_file(&s);
    sink_blob(&s, &img.gz[0]);
    sink_write(&s, blob_path, img.gz[0].data.data, img.gz[0].data.len);
    sink_blob(&s, &img.config);
    sink_blob(&s, &img.manifest);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST, named);
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_EPROTO, blob_path, "hashes to");

    /* A layer the archive lacks. */
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    sink_blob(&s, &img.gz[0]);
    sink_blob(&s, &img.config);
    sink_blob(&s, &img.manifest);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST, named);
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_ENOTFOUND, blob_path, "not in the archive");

    /* Paths that leave the archive, however they are spelt. */
    static const char *const escapes[] = {"../evil", "blobs/../../evil", "/etc/evil"};
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        t = tar_new(false);
        s.tar = t;
        sink_layout_file(&s);
        sink_image_blobs(&s, &img);
        tar_file(t, escapes[i], "escape\n");
        sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST, named);
        archive_save(fx, t);
        load_fails(fx, fx->file, NULL, GY_EPERM, escapes[i],
                   escapes[i][0] == '/' ? "absolute" : "\"..\"");
    }
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    sink_image_blobs(&s, &img);
    tar_add(t, "blobs/link", AE_IFLNK, NULL, 0, "../../etc/passwd");
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST, named);
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_EPERM, "blobs/link", "outside the archive");

    /* Entries an image archive never holds, and one written twice. */
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    tar_add(t, "fifo", AE_IFIFO, NULL, 0, NULL);
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "\"fifo\"", "not a file");
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    sink_layout_file(&s);
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "oci-layout", "twice");

    /* An index.json past its bound is refused before it is read. */
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    size_t big = AGENT_LOAD_INDEX_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    sink_write(&s, "index.json", huge, big);
    free(huge);
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_ETOOBIG, "index.json", "more than");

    /* Not an archive at all, and an archive of something else. */
    FILE *f = fopen(fx->file, "w");
    fputs("this is not a tar archive, nor anything libarchive reads as one\n", f);
    fclose(f);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "not a tar archive", NULL);
    t = tar_new(true);
    tar_file(t, "README", "hello\n");
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "neither an OCI image layout", "manifest.json");

    /* --name for an archive of two images. */
    struct image two;
    image_build(&two, &fx->platform, "second image\n");
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"schemaVersion\":2,\"manifests\":["
             "{\"mediaType\":\"" AGENT_MEDIA_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
             "\"annotations\":{\"org.opencontainers.image.ref.name\":\"a:1\"}},"
             "{\"mediaType\":\"" AGENT_MEDIA_OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu,"
             "\"annotations\":{\"org.opencontainers.image.ref.name\":\"b:1\"}}]}",
             img.manifest.digest, img.manifest.data.len, two.manifest.digest,
             two.manifest.data.len);
    t = tar_new(false);
    s.tar = t;
    sink_layout_file(&s);
    sink_image_blobs(&s, &img);
    sink_image_blobs(&s, &two);
    sink_text(&s, "index.json", text);
    archive_save(fx, t);
    load_fails(fx, fx->file, "c:1", GY_EINVAL, "several images", "--name");
    /* Without it both load, each under its name. */
    struct agent_load_result res = load_ok(fx, fx->file, NULL);
    assert_int_equal(res.n_images, 2);
    assert_string_equal(res.images[0].name, "docker.io/library/a:1");
    assert_string_equal(res.images[1].name, "docker.io/library/b:1");
    agent_load_result_free(&res);
    image_free(&two);
    image_free(&img);
}

static void test_refused_directory(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "hostile directory\n");
    char dir[128], path[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/layout", fx->scratch);
    mkdir(dir, 0755);
    struct sink s = {.dir = dir};
    sink_layout_file(&s);
    sink_image_blobs(&s, &img);
    sink_index(&s, &img.manifest, AGENT_MEDIA_OCI_MANIFEST,
               "\"org.opencontainers.image.ref.name\":\"evil:1\"");
    /* The second layer's file holds the first layer's bytes. */
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", dir, img.gz[1].digest + 7);
    FILE *f = fopen(path, "w");
    fwrite(img.gz[0].data.data, 1, img.gz[0].data.len, f);
    fclose(f);
    char rel[128];
    snprintf(rel, sizeof(rel), "blobs/sha256/%.64s", img.gz[1].digest + 7);
    load_fails(fx, dir, NULL, GY_EPROTO, rel, "hashes to");

    /* A blob that is a symlink could read any file of the node. */
    unlink(path);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    load_fails(fx, dir, NULL, GY_EPERM, rel, "symlink");
    unlink(path);
    load_fails(fx, dir, NULL, GY_ENOTFOUND, rel, "not in the layout");
    /* So is a directory on the way that is one. */
    char blobs[256], moved[256];
    snprintf(blobs, sizeof(blobs), "%s/blobs", dir);
    snprintf(moved, sizeof(moved), "%s/elsewhere", fx->scratch);
    assert_int_equal(rename(blobs, moved), 0);
    assert_int_equal(symlink(moved, blobs), 0);
    load_fails(fx, dir, NULL, GY_EPERM, "blobs/sha256/", "symlink");

    /* A directory that is not a layout. */
    char empty[128];
    snprintf(empty, sizeof(empty), "%s/empty", fx->scratch);
    mkdir(empty, 0755);
    load_fails(fx, empty, NULL, GY_EINVAL, "OCI image layout", NULL);
    image_free(&img);
}

static void test_refused_docker(void **state)
{
    struct fixture *fx = *state;
    struct image img;
    image_build(&img, &fx->platform, "hostile docker\n");

    /* The config's diff_ids do not match the layer tars (here: the compressed ones). */
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"%s\",\"%s\"]}}",
             img.gz[0].digest, img.gz[1].digest);
    docker_archive(fx, &img, "[\"team/app:4\"]", text);
    load_fails(fx, fx->file, NULL, GY_EPROTO, "one/layer.tar", "rootfs.diff_ids[0]");

    /* One diff_id for two layers. */
    snprintf(text, sizeof(text),
             "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"%s\"]}}",
             img.tar[0].digest);
    docker_archive(fx, &img, "[\"team/app:4\"]", text);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "manifest.json[0]", "one per layer");

    /* No RepoTags and no --name. */
    docker_archive(fx, &img, "null", NULL);
    load_fails(fx, fx->file, NULL, GY_EINVAL, "no RepoTags", "--name");
    struct agent_load_result res = load_ok(fx, fx->file, "team/app:5");
    assert_string_equal(res.images[0].name, "docker.io/team/app:5");
    agent_load_result_free(&res);
    struct gy_error err;
    assert_int_equal(oci_image_remove(fx->store, "docker.io/team/app:5", &err), 0);

    /* A layer path that leaves the archive, and one it lacks. */
    struct tar *t = tar_new(false);
    struct sink s = {.tar = t};
    sink_text(&s, "config.json", (const char *)img.config.data.data);
    sink_text(&s, "manifest.json",
              "[{\"Config\":\"config.json\",\"RepoTags\":[\"x:1\"],"
              "\"Layers\":[\"../../etc/shadow\"]}]");
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_EPERM, "Layers[0]", "\"..\"");
    t = tar_new(false);
    s.tar = t;
    sink_text(&s, "config.json", (const char *)img.config.data.data);
    sink_write(&s, "one/layer.tar", img.tar[0].data.data, img.tar[0].data.len);
    tar_add(t, "two/layer.tar", AE_IFLNK, NULL, 0, "../nowhere.tar");
    sink_text(&s, "manifest.json",
              "[{\"Config\":\"config.json\",\"RepoTags\":[\"x:1\"],"
              "\"Layers\":[\"one/layer.tar\",\"two/layer.tar\"]}]");
    archive_save(fx, t);
    load_fails(fx, fx->file, NULL, GY_ENOTFOUND, "Layers[1]", "nowhere.tar");
    image_free(&img);
}

/* ---- Pulls of a loaded image without a registry ----------------------------------------- */

static void test_pull_uses_loaded_image_offline(void **state)
{
    struct fixture *fx = *state;
    /* A port nothing listens on: a connection there is refused at once. */
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    assert_int_equal(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)&addr, &alen), 0);
    close(sock);
    unsigned port = ntohs(addr.sin_port);

    struct image img;
    image_build(&img, &fx->platform, "offline\n");
    docker_archive(fx, &img, "null", NULL);
    char name[128], other[128], config[256];
    snprintf(name, sizeof(name), "127.0.0.1:%u/test/app:1", port);
    snprintf(other, sizeof(other), "127.0.0.1:%u/test/other:1", port);
    struct agent_load_result res = load_ok(fx, fx->file, name);
    char manifest[OCI_DIGEST_BUF];
    snprintf(manifest, sizeof(manifest), "%s", res.images[0].manifest_digest);
    agent_load_result_free(&res);

    struct agent_puller p = {.store = fx->store};
    struct gy_error err;
    snprintf(config, sizeof(config), "{\"registries\":{\"127.0.0.1:%u\":{\"insecure\":true}}}",
             port);
    assert_int_equal(
        agent_registry_config_parse(config, strlen(config), "test", &p.registries, &err), 0);
    struct agent_pull_result pulled;
    if (agent_pull(&p, name, &pulled, &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(pulled.cached);
    assert_string_equal(pulled.name, name);
    assert_string_equal(pulled.manifest_digest, manifest);
    assert_int_equal(pulled.layers, 2);
    /* An image the node does not hold still needs the registry. */
    assert_int_equal(agent_pull(&p, other, &pulled, &err), -GY_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "test/other:1"));
    assert_non_null(strstr(err.msg, "cannot connect"));
    agent_registry_config_free(&p.registries);
    image_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_oci_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oci_archive_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oci_platforms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oci_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docker_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_oci, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_docker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_uses_loaded_image_offline, setup, teardown),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
