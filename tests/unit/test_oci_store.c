/* Unit tests of the OCI image store: digest validation, blob commits (mismatch refused
 * and nothing kept, resumed downloads, another file system), verified small reads, the
 * image config parser, image records and their lower directories, and garbage collection
 * with a budget, an in-use image, the grace period and (as root) a mounted layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/oci_layer.h"
#include "agent/oci_store.h"
#include "tests/unit/skip.h"

struct fixture {
    char scratch[64];
    char root[128];
    struct oci_store *store;
    int64_t now_ms; /* the store's clock */
};

static int64_t fixture_clock(void *arg)
{
    return ((struct fixture *)arg)->now_ms;
}

static int open_store(struct fixture *fx, int64_t grace_ms)
{
    struct oci_store_options opts;
    oci_store_options_default(&opts);
    opts.gc_grace_ms = grace_ms;
    opts.clock_ms = fixture_clock;
    opts.clock_arg = fx;
    struct gy_error err;
    if (oci_store_open(fx->root, &opts, &fx->store, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->scratch, sizeof(fx->scratch), "/tmp/gantry-oci-store.XXXXXX");
    if (mkdtemp(fx->scratch) == NULL)
        return -1;
    snprintf(fx->root, sizeof(fx->root), "%s/oci", fx->scratch);
    fx->now_ms = INT64_C(1700000000000);
    if (open_store(fx, 0) < 0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    oci_store_close(fx->store);
    /* Layers keep the image's read-only directories: without root, make them writable
     * first. */
    char cmd[384];
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwX '%s' 2>/dev/null; rm -rf '%s'", fx->scratch,
             fx->scratch);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static void sha256_hex(const void *data, size_t len, char out[OCI_DIGEST_BUF])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len;
    EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    oci_digest_format(md, out);
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

static void write_all(int fd, const void *data, size_t len)
{
    assert_int_equal(write(fd, data, len), (ssize_t)len);
}

/* ---- Digests ---------------------------------------------------------------------- */

static void test_digest_check(void **state)
{
    struct fixture *fx = *state;
    char good[OCI_DIGEST_BUF];
    sha256_hex("x", 1, good);
    assert_int_equal(oci_digest_check(good, NULL), 0);
    char upper[OCI_DIGEST_BUF];
    memcpy(upper, good, sizeof(upper));
    for (size_t i = 7; i < OCI_DIGEST_LEN; i++)
        if (upper[i] >= 'a' && upper[i] <= 'f')
            upper[i] = (char)(upper[i] - 'a' + 'A');
    char longer[OCI_DIGEST_BUF + 2];
    snprintf(longer, sizeof(longer), "%s0", good);
    char shorter[OCI_DIGEST_BUF];
    snprintf(shorter, sizeof(shorter), "%.70s", good);
    char traversal[OCI_DIGEST_BUF];
    snprintf(traversal, sizeof(traversal), "sha256:../../../../etc/passwd%.35s", good + 7);
    const char *bad[] = {NULL,
                         "",
                         "sha256:",
                         upper,
                         longer,
                         shorter,
                         traversal,
                         "sha512:"
                         "00",
                         "SHA256:0",
                         "sha256 "
                         "0",
                         good + 7};
    struct gy_error err;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bad[i] != NULL && strcmp(bad[i], upper) == 0 && strcmp(upper, good) == 0)
            continue; /* a digest without a-f */
        assert_int_equal(oci_digest_check(bad[i], &err), -GY_EINVAL);
    }
    /* Control characters from the network never reach a message. */
    assert_int_equal(oci_digest_check("sha256:\n\033[2J", &err), -GY_EINVAL);
    assert_null(strchr(err.msg, '\n'));
    assert_null(strchr(err.msg, '\033'));
    /* Every entry point checks. */
    char path[PATH_MAX];
    assert_int_equal(oci_store_blob_path(fx->store, traversal, path, sizeof(path), &err),
                     -GY_EINVAL);
}

/* ---- Blobs ------------------------------------------------------------------------ */

static void test_commit_mismatch_keeps_nothing(void **state)
{
    struct fixture *fx = *state;
    const char *expected = "the blob the manifest names";
    const char *received = "something else entirely";
    char digest[OCI_DIGEST_BUF], actual[OCI_DIGEST_BUF];
    sha256_hex(expected, strlen(expected), digest);
    sha256_hex(received, strlen(received), actual);
    int fd;
    int64_t offset;
    struct gy_error err;
    assert_int_equal(oci_store_ingest_open(fx->store, digest, &fd, &offset, &err), 0);
    assert_int_equal(offset, 0);
    write_all(fd, received, strlen(received));
    close(fd);
    char partial[PATH_MAX];
    assert_int_equal(oci_store_ingest_path(fx->store, digest, partial, sizeof(partial), &err), 0);
    assert_int_equal(oci_store_blob_commit(fx->store, partial, digest, &err), -GY_EPROTO);
    assert_non_null(strstr(err.msg, digest));
    assert_non_null(strstr(err.msg, actual));
    assert_int_equal(access(partial, F_OK), -1);
    assert_false(oci_store_blob_has(fx->store, digest));
    assert_false(oci_store_blob_has(fx->store, actual));
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/blobs/sha256", oci_store_root(fx->store));
    assert_int_equal(count_entries(dir), 0);
    snprintf(dir, sizeof(dir), "%s/ingest", oci_store_root(fx->store));
    assert_int_equal(count_entries(dir), 0);
    /* Nor from memory. */
    assert_int_equal(
        oci_store_blob_write(fx->store, received, strlen(received), digest, NULL, &err),
        -GY_EPROTO);
    assert_false(oci_store_blob_has(fx->store, actual));
    /* Bad digests are refused before any file is touched. */
    assert_int_equal(oci_store_blob_commit(fx->store, partial, "sha256:abc", &err), -GY_EINVAL);
    assert_int_equal(oci_store_ingest_open(fx->store, "sha256:../x", &fd, &offset, &err),
                     -GY_EINVAL);
}

static void test_resume_partial_download(void **state)
{
    struct fixture *fx = *state;
    size_t len = 3u << 20;
    unsigned char *content = malloc(len);
    for (size_t i = 0; i < len; i++)
        content[i] = (unsigned char)(i * 31 + (i >> 12));
    char digest[OCI_DIGEST_BUF];
    sha256_hex(content, len, digest);
    struct gy_error err;
    int lock = oci_store_ingest_lock(fx->store, digest, &err);
    assert_true(lock >= 0);
    int fd;
    int64_t offset;
    assert_int_equal(oci_store_ingest_open(fx->store, digest, &fd, &offset, &err), 0);
    write_all(fd, content, len / 3); /* the connection drops here */
    close(fd);
    assert_int_equal(oci_store_ingest_open(fx->store, digest, &fd, &offset, &err), 0);
    assert_int_equal(offset, (int64_t)(len / 3));
    write_all(fd, content + offset, len - (size_t)offset);
    close(fd);
    char partial[PATH_MAX];
    oci_store_ingest_path(fx->store, digest, partial, sizeof(partial), &err);
    assert_int_equal(oci_store_blob_commit(fx->store, partial, digest, &err), 0);
    close(lock);
    assert_true(oci_store_blob_has(fx->store, digest));
    assert_int_equal(access(partial, F_OK), -1);
    char path[PATH_MAX];
    assert_int_equal(oci_store_blob_path(fx->store, digest, path, sizeof(path), &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, (off_t)len);
    assert_int_equal(st.st_mode & 0777, 0444);
    assert_int_equal(st.st_mtim.tv_sec, fx->now_ms / 1000);
    free(content);
}

/* A partial file elsewhere, on another file system when /dev/shm is one, is copied in. */
static void test_commit_from_elsewhere(void **state)
{
    struct fixture *fx = *state;
    const char *dirs[] = {fx->scratch, "/dev/shm"};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/gantry-oci-test-%d-%zu", dirs[i], (int)getpid(), i);
        FILE *f = fopen(path, "w");
        if (f == NULL)
            continue;
        fprintf(f, "blob number %zu\n", i);
        fclose(f);
        char text[32], digest[OCI_DIGEST_BUF];
        snprintf(text, sizeof(text), "blob number %zu\n", i);
        sha256_hex(text, strlen(text), digest);
        struct gy_error err;
        if (oci_store_blob_commit(fx->store, path, digest, &err) < 0)
            fail_msg("%s", err.msg);
        assert_true(oci_store_blob_has(fx->store, digest));
        assert_int_equal(access(path, F_OK), -1);
    }
}

static void test_read_small(void **state)
{
    struct fixture *fx = *state;
    const char *manifest = "{\"schemaVersion\":2}";
    char digest[OCI_DIGEST_BUF];
    struct gy_error err;
    assert_int_equal(
        oci_store_blob_write(fx->store, manifest, strlen(manifest), NULL, digest, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(oci_store_blob_read_small(fx->store, digest, 1024, &text, &len, &err), 0);
    assert_int_equal(len, strlen(manifest));
    assert_string_equal(text, manifest);
    free(text);
    assert_int_equal(oci_store_blob_read_small(fx->store, digest, 4, &text, &len, &err),
                     -GY_ETOOBIG);
    assert_null(text);
    char absent[OCI_DIGEST_BUF];
    sha256_hex("absent", 6, absent);
    assert_int_equal(oci_store_blob_read_small(fx->store, absent, 1024, &text, &len, &err),
                     -GY_ENOTFOUND);
    /* A blob damaged on disk is noticed, reported and removed. */
    char path[PATH_MAX];
    oci_store_blob_path(fx->store, digest, path, sizeof(path), NULL);
    chmod(path, 0644);
    FILE *f = fopen(path, "w");
    fputs("{\"schemaVersion\":3}", f);
    fclose(f);
    assert_int_equal(oci_store_blob_read_small(fx->store, digest, 1024, &text, &len, &err),
                     -GY_EIO);
    assert_non_null(strstr(err.msg, digest));
    assert_false(oci_store_blob_has(fx->store, digest));
}

/* ---- Config ------------------------------------------------------------------------ */

static const char *const good_config =
    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"variant\":null,"
    "\"config\":{\"Entrypoint\":[\"/docker-entrypoint.sh\"],\"Cmd\":[\"nginx\",\"-g\","
    "\"daemon off;\"],\"Env\":[\"PATH=/usr/bin:/bin\",\"EMPTY=\"],\"WorkingDir\":\"/srv\","
    "\"User\":\"101:101\",\"ExposedPorts\":{\"80/tcp\":{},\"53/udp\":{},\"8080\":{}},"
    "\"StopSignal\":\"SIGQUIT\",\"Labels\":{\"z\":\"last\",\"a\":\"first\"}},"
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
    "1111111111111111111111111111111111111111111111111111111111111111\",\"sha256:"
    "2222222222222222222222222222222222222222222222222222222222222222\"]},"
    "\"history\":[{\"created_by\":\"ignored\"}]}";

static void test_config_parse(void **state)
{
    (void)state;
    struct oci_config cfg;
    struct gy_error err;
    assert_int_equal(oci_config_parse(good_config, strlen(good_config), &cfg, &err), 0);
    assert_string_equal(cfg.os, "linux");
    assert_string_equal(cfg.architecture, "amd64");
    assert_null(cfg.variant);
    assert_int_equal(cfg.n_entrypoint, 1);
    assert_string_equal(cfg.entrypoint[0], "/docker-entrypoint.sh");
    assert_int_equal(cfg.n_cmd, 3);
    assert_string_equal(cfg.cmd[2], "daemon off;");
    assert_int_equal(cfg.n_env, 2);
    assert_string_equal(cfg.working_dir, "/srv");
    assert_string_equal(cfg.user, "101:101");
    assert_int_equal(cfg.stop_signo, SIGQUIT);
    assert_int_equal(cfg.n_exposed_ports, 3);
    bool udp53 = false;
    for (size_t i = 0; i < cfg.n_exposed_ports; i++)
        udp53 |=
            cfg.exposed_ports[i].port == 53 && strcmp(cfg.exposed_ports[i].protocol, "udp") == 0;
    assert_true(udp53);
    assert_int_equal(cfg.n_labels, 2);
    assert_string_equal(cfg.labels[0].key, "a");
    assert_int_equal(cfg.n_diff_ids, 2);
    assert_string_equal(cfg.diff_ids[1],
                        "sha256:"
                        "2222222222222222222222222222222222222222222222222222222222222222");
    oci_config_free(&cfg);

    const char *minimal = "{\"os\":\"linux\",\"architecture\":\"arm64\",\"rootfs\":{\"type\":"
                          "\"layers\",\"diff_ids\":[]},\"config\":{\"StopSignal\":\"RTMIN+3\"}}";
    assert_int_equal(oci_config_parse(minimal, strlen(minimal), &cfg, &err), 0);
    assert_int_equal(cfg.stop_signo, SIGRTMIN + 3);
    assert_null(cfg.cmd);
    oci_config_free(&cfg);

    struct {
        const char *json;
        int code;
        const char *says;
    } bad[] = {
        {"[]", -GY_EPARSE, "object"},
        {"{\"os\":\"linux\"", -GY_EPARSE, "image config"},
        {"{\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
         -GY_EPARSE, "os is required"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\"}", -GY_EPARSE, "rootfs"},
        {"{\"os\":\"linux\",\"architecture\":7,\"rootfs\":{}}", -GY_EPARSE, "architecture"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[\"sha256:NOPE\"]}}",
         -GY_EPARSE, "rootfs.diff_ids[0]"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"Env\":\"PATH=/bin\"}}",
         -GY_EPARSE, "config.Env"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"Cmd\":[\"sh\",7]}}",
         -GY_EPARSE, "config.Cmd[1]"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"Env\":[\"=x\"]}}",
         -GY_EPARSE, "KEY=VALUE"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"ExposedPorts\":{\"99999/tcp\":{}}}}",
         -GY_EPARSE, "ExposedPorts"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"ExposedPorts\":{\"80/icmp\":{}}}}",
         -GY_EPARSE, "ExposedPorts"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"StopSignal\":\"SIGNOPE\"}}",
         -GY_EPARSE, "StopSignal"},
        {"{\"os\":\"linux\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\","
         "\"diff_ids\":[]},\"config\":{\"Labels\":{\"a\":1}}}",
         -GY_EPARSE, "Labels"},
        {"{\"os\":\"linux\",\"os\":\"windows\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":"
         "\"layers\",\"diff_ids\":[]}}",
         -GY_EPARSE, "duplicate"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = oci_config_parse(bad[i].json, strlen(bad[i].json), &cfg, &err);
        if (rc != bad[i].code || strstr(err.msg, bad[i].says) == NULL)
            fail_msg("case %zu: rc=%d message \"%s\" (want %d, \"%s\")", i, rc, err.msg,
                     bad[i].code, bad[i].says);
        assert_null(cfg.os);
    }

    /* Sizes are bounded: too many items, too long a string, too big a document. */
    size_t cap = 64u << 20;
    char *big = malloc(cap);
    size_t n = (size_t)snprintf(big, cap,
                                "{\"os\":\"linux\",\"architecture\":\"amd64\","
                                "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},"
                                "\"config\":{\"Env\":[");
    for (int i = 0; i < OCI_CONFIG_ITEMS_MAX + 1; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"K%d=v\"", i ? "," : "", i);
    n += (size_t)snprintf(big + n, cap - n, "]}}");
    assert_int_equal(oci_config_parse(big, n, &cfg, &err), -GY_ETOOBIG);
    n = (size_t)snprintf(big, cap, "{\"os\":\"");
    memset(big + n, 'x', OCI_CONFIG_STRING_MAX + 1);
    n += OCI_CONFIG_STRING_MAX + 1;
    n += (size_t)snprintf(big + n, cap - n,
                          "\",\"architecture\":\"amd64\",\"rootfs\":{\"type\":"
                          "\"layers\",\"diff_ids\":[]}}");
    assert_int_equal(oci_config_parse(big, n, &cfg, &err), -GY_ETOOBIG);
    assert_int_equal(oci_config_parse(big, OCI_CONFIG_MAX_BYTES + 1, &cfg, &err), -GY_ETOOBIG);
    free(big);
}

/* ---- Images ------------------------------------------------------------------------ */

struct bytes {
    unsigned char *data;
    size_t len;
};

static la_ssize_t bytes_write(struct archive *a, void *arg, const void *p, size_t n)
{
    (void)a;
    struct bytes *b = arg;
    b->data = realloc(b->data, b->len + n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return (la_ssize_t)n;
}

/* A layer holding one file of size bytes named name; its digest and diff_id. */
static void layer_make(struct fixture *fx, const char *name, size_t size, bool gzip,
                       char digest[OCI_DIGEST_BUF], char diff_id[OCI_DIGEST_BUF])
{
    struct bytes plain = {0}, packed = {0};
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open(a, &plain, NULL, bytes_write, NULL);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_write_header(a, e);
    char *content = malloc(size + 1);
    for (size_t i = 0; i < size; i++)
        content[i] = name[i % strlen(name)];
    archive_write_data(a, content, size);
    free(content);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    sha256_hex(plain.data, plain.len, diff_id);
    struct bytes *blob = &plain;
    if (gzip) {
        a = archive_write_new();
        archive_write_set_format_raw(a);
        archive_write_add_filter_gzip(a);
        archive_write_open(a, &packed, NULL, bytes_write, NULL);
        e = archive_entry_new();
        archive_entry_set_pathname(e, "layer");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)plain.len);
        archive_write_header(a, e);
        archive_write_data(a, plain.data, plain.len);
        archive_entry_free(e);
        archive_write_close(a);
        archive_write_free(a);
        blob = &packed;
    }
    struct gy_error err;
    if (oci_store_blob_write(fx->store, blob->data, blob->len, NULL, digest, &err) < 0)
        fail_msg("%s", err.msg);
    free(plain.data);
    free(packed.data);
}

struct layer {
    char digest[OCI_DIGEST_BUF];
    char diff_id[OCI_DIGEST_BUF];
};

/* Records image name with the given layers (base first): a config listing their diff_ids
 * and a manifest naming it. */
static int image_make(struct fixture *fx, const char *name, const struct layer *layers, size_t n,
                      struct gy_error *err)
{
    char config[4096], manifest[4096], cd[OCI_DIGEST_BUF], md[OCI_DIGEST_BUF];
    int len = snprintf(config, sizeof(config),
                       "{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Labels\":"
                       "{\"image\":\"%s\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[",
                       name);
    for (size_t i = 0; i < n; i++)
        len += snprintf(config + len, sizeof(config) - (size_t)len, "%s\"%s\"", i ? "," : "",
                        layers[i].diff_id);
    snprintf(config + len, sizeof(config) - (size_t)len, "]}}");
    assert_int_equal(oci_store_blob_write(fx->store, config, strlen(config), NULL, cd, err), 0);
    snprintf(manifest, sizeof(manifest), "{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\"}}",
             cd);
    assert_int_equal(oci_store_blob_write(fx->store, manifest, strlen(manifest), NULL, md, err), 0);
    const char *digests[8];
    for (size_t i = 0; i < n; i++)
        digests[i] = layers[i].digest;
    struct oci_annotation ann[] = {
        {.key = "org.opencontainers.image.ref.name", .value = (char *)name}};
    return oci_image_put(fx->store, name, md, cd, digests, n, ann, 1, err);
}

static void test_images(void **state)
{
    struct fixture *fx = *state;
    struct layer l[3];
    layer_make(fx, "base", 100, true, l[0].digest, l[0].diff_id);
    layer_make(fx, "middle", 200, false, l[1].digest, l[1].diff_id);
    layer_make(fx, "top", 300, true, l[2].digest, l[2].diff_id);
    struct gy_error err;
    const char *name = "registry.example:5000/team/app:1.2";
    assert_int_equal(image_make(fx, name, l, 3, &err), 0);

    struct oci_image img;
    assert_int_equal(oci_image_get(fx->store, name, &img, &err), 0);
    assert_string_equal(img.name, name);
    assert_int_equal(img.n_layers, 3);
    assert_string_equal(img.layers[0], l[0].digest);
    assert_string_equal(img.diff_ids[2], l[2].diff_id);
    assert_int_equal(img.n_annotations, 1);
    assert_string_equal(img.annotations[0].value, name);
    assert_int_equal(img.created_ms, fx->now_ms);
    assert_int_equal(img.last_used_ms, fx->now_ms);
    oci_image_free(&img);

    /* Lower directories come base first, as rt_create_opts.layers takes them. */
    fx->now_ms += 5000;
    char **dirs;
    size_t n;
    assert_int_equal(oci_image_lowerdirs(fx->store, name, &dirs, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        char want[PATH_MAX];
        assert_int_equal(oci_layer_dir(fx->store, l[i].digest, want, sizeof(want), &err), 0);
        assert_string_equal(dirs[i], want);
    }
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/top", dirs[2]);
    assert_int_equal(access(p, F_OK), 0);
    oci_strv_free(dirs, n);
    assert_int_equal(oci_image_get(fx->store, name, &img, &err), 0);
    assert_int_equal(img.last_used_ms, fx->now_ms);
    oci_image_free(&img);

    /* A layer repeated counts once, at its topmost place. */
    struct layer rep[3] = {l[0], l[1], l[0]};
    assert_int_equal(image_make(fx, "repeated", rep, 3, &err), 0);
    assert_int_equal(oci_image_lowerdirs(fx->store, "repeated", &dirs, &n, &err), 0);
    assert_int_equal(n, 2);
    char want[PATH_MAX];
    oci_layer_dir(fx->store, l[0].digest, want, sizeof(want), &err);
    assert_string_equal(dirs[1], want);
    oci_strv_free(dirs, n);

    struct oci_image *list;
    assert_int_equal(oci_image_list(fx->store, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, name);
    assert_string_equal(list[1].name, "repeated");
    oci_image_list_free(list, n);

    assert_int_equal(oci_image_remove(fx->store, "repeated", &err), 0);
    assert_int_equal(oci_image_remove(fx->store, "repeated", &err), -GY_ENOTFOUND);
    assert_int_equal(oci_image_get(fx->store, "repeated", &img, &err), -GY_ENOTFOUND);

    /* Refusals: a missing blob, diff_ids that do not match the layers, bad names. */
    char absent[OCI_DIGEST_BUF];
    sha256_hex("absent", 6, absent);
    const char *layers[] = {absent};
    assert_int_equal(
        oci_image_put(fx->store, "x", l[0].digest, l[0].digest, layers, 1, NULL, 0, &err),
        -GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, absent));
    assert_int_equal(image_make(fx, "two-of-three", l, 2, &err), 0);
    assert_int_equal(oci_image_get(fx->store, "two-of-three", &img, &err), 0);
    const char *three[] = {l[0].digest, l[1].digest, l[2].digest};
    assert_int_equal(oci_image_put(fx->store, "mismatch", img.manifest_digest, img.config_digest,
                                   three, 3, NULL, 0, &err),
                     -GY_EINVAL);
    assert_non_null(strstr(err.msg, "diff_ids"));
    oci_image_free(&img);
    const char *bad_names[] = {"", ".hidden", "a b", "a\nb", "/abs"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_int_equal(oci_image_get(fx->store, bad_names[i], &img, &err), -GY_EINVAL);
}

/* ---- Garbage collection ------------------------------------------------------------ */

static bool in_use_by_name(const struct oci_image *image, void *arg)
{
    return strcmp(image->name, (const char *)arg) == 0;
}

static bool report_has(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static bool layer_unpacked(struct fixture *fx, const char *digest)
{
    struct oci_layer_info info;
    return oci_layer_info(fx->store, digest, &info, NULL) == 0;
}

static void unpack_all(struct fixture *fx, const char *name)
{
    char **dirs;
    size_t n;
    struct gy_error err;
    if (oci_image_lowerdirs(fx->store, name, &dirs, &n, &err) < 0)
        fail_msg("%s", err.msg);
    oci_strv_free(dirs, n);
}

static void test_gc_budget_and_in_use(void **state)
{
    struct fixture *fx = *state;
    struct layer l[6];
    const char *names[] = {"shared", "only-a", "only-b", "only-c", "orphan", "stray"};
    for (size_t i = 0; i < 6; i++)
        layer_make(fx, names[i], 10000 * (i + 1), i % 2 == 0, l[i].digest, l[i].diff_id);
    struct gy_error err;
    struct layer a[] = {l[0], l[1]}, b[] = {l[0], l[2]}, c[] = {l[3]};
    fx->now_ms += 1000000;
    assert_int_equal(image_make(fx, "a", a, 2, &err), 0);
    unpack_all(fx, "a");
    fx->now_ms += 1000000;
    assert_int_equal(image_make(fx, "b", b, 2, &err), 0);
    unpack_all(fx, "b");
    fx->now_ms += 1000000;
    assert_int_equal(image_make(fx, "c", c, 1, &err), 0);
    unpack_all(fx, "c");
    /* A layer unpacked for an image that was never recorded. */
    char *dir;
    assert_int_equal(oci_layer_unpack(fx->store, l[4].digest, NULL, &dir, &err), 0);
    free(dir);
    fx->now_ms += 1000000;
    unpack_all(fx, "b"); /* b is the most recently used */

    /* No budget: only what no image references goes. */
    struct oci_gc_report rep;
    assert_int_equal(oci_store_gc(fx->store, -1, in_use_by_name, "b", &rep, &err), 0);
    assert_int_equal(rep.n_images, 0);
    assert_true(report_has(rep.blobs, rep.n_blobs, l[4].digest));
    assert_true(report_has(rep.blobs, rep.n_blobs, l[5].digest));
    assert_true(report_has(rep.layers, rep.n_layers, l[4].digest));
    assert_int_equal(rep.n_blobs, 2);
    assert_int_equal(rep.n_layers, 1);
    assert_true(rep.bytes_freed >= 50000 + 60000);
    int64_t total = rep.bytes_total;
    oci_gc_report_free(&rep);
    assert_false(oci_store_blob_has(fx->store, l[4].digest));
    assert_false(layer_unpacked(fx, l[4].digest));

    /* A budget just under the total: the least recently used image goes, and only it. */
    assert_int_equal(oci_store_gc(fx->store, total - 1, in_use_by_name, "b", &rep, &err), 0);
    assert_int_equal(rep.n_images, 1);
    assert_string_equal(rep.images[0], "a");
    assert_true(report_has(rep.layers, rep.n_layers, l[1].digest));
    assert_false(report_has(rep.layers, rep.n_layers, l[0].digest)); /* b needs it */
    assert_int_equal(rep.bytes_total, total - rep.bytes_freed);
    oci_gc_report_free(&rep);
    struct oci_image img;
    assert_int_equal(oci_image_get(fx->store, "a", &img, &err), -GY_ENOTFOUND);
    assert_int_equal(oci_image_get(fx->store, "c", &img, &err), 0);
    oci_image_free(&img);

    /* Budget 0: everything but the image in use and what it needs. */
    assert_int_equal(oci_store_gc(fx->store, 0, in_use_by_name, "b", &rep, &err), 0);
    assert_int_equal(rep.n_images, 1);
    assert_string_equal(rep.images[0], "c");
    assert_true(rep.bytes_total > 0);
    oci_gc_report_free(&rep);
    struct oci_image *list;
    size_t n;
    assert_int_equal(oci_image_list(fx->store, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "b");
    for (size_t i = 0; i < list[0].n_layers; i++) {
        assert_true(oci_store_blob_has(fx->store, list[0].layers[i]));
        assert_true(layer_unpacked(fx, list[0].layers[i]));
    }
    assert_true(oci_store_blob_has(fx->store, list[0].config_digest));
    assert_true(oci_store_blob_has(fx->store, list[0].manifest_digest));
    oci_image_list_free(list, n);
    assert_false(oci_store_blob_has(fx->store, l[3].digest));
    assert_false(layer_unpacked(fx, l[3].digest));
    unpack_all(fx, "b"); /* still runs */
}

static void test_gc_grace_and_partials(void **state)
{
    struct fixture *fx = *state;
    oci_store_close(fx->store);
    assert_int_equal(open_store(fx, 3600 * 1000), 0);
    const char *text = "committed by a pull that has not recorded its image yet";
    char digest[OCI_DIGEST_BUF];
    struct gy_error err;
    assert_int_equal(oci_store_blob_write(fx->store, text, strlen(text), NULL, digest, &err), 0);
    int fd;
    int64_t offset;
    char other[OCI_DIGEST_BUF];
    sha256_hex("partial", 7, other);
    assert_int_equal(oci_store_ingest_open(fx->store, other, &fd, &offset, &err), 0);
    write_all(fd, "par", 3);
    close(fd);
    char partial[PATH_MAX];
    oci_store_ingest_path(fx->store, other, partial, sizeof(partial), &err);
    /* The partial file's age is its mtime on the real clock: age it by hand. */
    struct timespec old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
    assert_int_equal(utimensat(AT_FDCWD, partial, old, 0), 0);

    struct oci_gc_report rep;
    fx->now_ms = INT64_C(1700000000000) + 1000;
    assert_int_equal(oci_store_gc(fx->store, -1, NULL, NULL, &rep, &err), 0);
    assert_int_equal(rep.n_blobs, 0); /* young */
    assert_int_equal(rep.n_partials, 1);
    oci_gc_report_free(&rep);
    assert_true(oci_store_blob_has(fx->store, digest));
    assert_int_equal(access(partial, F_OK), -1);

    /* A download in progress keeps its partial file, however old. */
    assert_int_equal(oci_store_ingest_open(fx->store, other, &fd, &offset, &err), 0);
    close(fd);
    assert_int_equal(utimensat(AT_FDCWD, partial, old, 0), 0);
    int lock = oci_store_ingest_lock(fx->store, other, &err);
    assert_true(lock >= 0);
    fx->now_ms += 2 * 3600 * 1000;
    assert_int_equal(oci_store_gc(fx->store, -1, NULL, NULL, &rep, &err), 0);
    assert_int_equal(rep.n_blobs, 1); /* now past the grace period */
    assert_int_equal(rep.n_partials, 0);
    oci_gc_report_free(&rep);
    close(lock);
    assert_false(oci_store_blob_has(fx->store, digest));
    assert_int_equal(access(partial, F_OK), 0);
}

/* An unreferenced layer that an overlay mount uses stays until it is unmounted. */
static void test_gc_keeps_mounted_layer(void **state)
{
    struct fixture *fx = *state;
    if (geteuid() != 0) {
        GT_SKIP("not root: cannot mount overlay to test that mounted layers are kept");
        return;
    }
    struct layer l;
    layer_make(fx, "mounted", 100, true, l.digest, l.diff_id);
    char *dir;
    struct gy_error err;
    assert_int_equal(oci_layer_unpack(fx->store, l.digest, NULL, &dir, &err), 0);
    char mnt[PATH_MAX], empty[PATH_MAX], opts[2 * PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s/mnt", fx->scratch);
    snprintf(empty, sizeof(empty), "%s/empty", fx->scratch);
    mkdir(mnt, 0755);
    mkdir(empty, 0755);
    snprintf(opts, sizeof(opts), "lowerdir=%s:%s", dir, empty);
    if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) < 0) {
        char why[256];
        snprintf(why, sizeof(why), "overlay mount not possible here: %s", strerror(errno));
        free(dir);
        GT_SKIP(why);
        return;
    }
    struct oci_gc_report rep;
    int rc = oci_store_gc(fx->store, 0, NULL, NULL, &rep, &err);
    bool kept = layer_unpacked(fx, l.digest);
    size_t removed_layers = rep.n_layers;
    if (rc == 0)
        oci_gc_report_free(&rep);
    umount2(mnt, MNT_DETACH);
    assert_int_equal(rc, 0);
    assert_true(kept);
    assert_int_equal(removed_layers, 0);
    assert_int_equal(oci_store_gc(fx->store, 0, NULL, NULL, &rep, &err), 0);
    assert_int_equal(rep.n_layers, 1);
    oci_gc_report_free(&rep);
    assert_false(layer_unpacked(fx, l.digest));
    free(dir);
}

static void test_overlay_mounts_parse(void **state)
{
    (void)state;
    struct oci_overlay_mounts m;
    struct gy_error err;
    assert_int_equal(oci_overlay_mounts_read(&m, &err), 0);
    oci_overlay_mounts_free(&m);
    char *dirs[] = {"/var/lib/gantry/oci/layers/ab/fs", "/x y"};
    struct oci_overlay_mounts fake = {.dirs = dirs, .n = 2};
    assert_true(oci_overlay_mounts_use(&fake, "/var/lib/gantry/oci/layers/ab"));
    assert_true(oci_overlay_mounts_use(&fake, "/var/lib/gantry/oci/layers/ab/"));
    assert_false(oci_overlay_mounts_use(&fake, "/var/lib/gantry/oci/layers/a"));
    assert_true(oci_overlay_mounts_use(&fake, "/x y"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_digest_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_mismatch_keeps_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_partial_download, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_from_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_small, setup, teardown),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_budget_and_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_grace_and_partials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlay_mounts_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_keeps_mounted_layer, setup, teardown),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
