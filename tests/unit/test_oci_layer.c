/* Unit tests of the OCI layer unpacker: metadata kept, gzip and zstd found by content,
 * diff_id checks, hostile archives (built here with libarchive's writer) that must not
 * create anything outside the layer, whiteouts and opaque directories (and, as root, an
 * overlay mount that honours them), device nodes refused without root, size bounds,
 * concurrent unpacks of one layer, removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <locale.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent/oci_layer.h"
#include "agent/oci_store.h"
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

struct tar {
    struct archive *a;
    struct bytes out;
};

/* A pax tar writer; filter is "none", "gzip" or "zstd". */
static struct tar *tar_new(const char *filter)
{
    struct tar *t = calloc(1, sizeof(*t));
    t->a = archive_write_new();
    assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
    /* No zero padding after the compressed stream: zstd readers rightly refuse it. */
    archive_write_set_bytes_in_last_block(t->a, 1);
    if (strcmp(filter, "gzip") == 0)
        assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
    else if (strcmp(filter, "zstd") == 0)
        assert_int_equal(archive_write_add_filter_zstd(t->a), ARCHIVE_OK);
    assert_int_equal(archive_write_open(t->a, &t->out, NULL, bytes_write, NULL), ARCHIVE_OK);
    return t;
}

static void tar_add(struct tar *t, const char *path, mode_t type, mode_t perm, const void *data,
                    size_t len, const char *link, bool hardlink, uid_t uid, dev_t rdev,
                    const char *xattr_key, const char *xattr_value)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_uid(e, uid);
    archive_entry_set_gid(e, uid);
    archive_entry_set_mtime(e, 1500000000, 0);
    archive_entry_set_size(e, type == AE_IFREG && !hardlink ? (la_int64_t)len : 0);
    if (link != NULL && hardlink)
        archive_entry_set_hardlink(e, link);
    else if (link != NULL)
        archive_entry_set_symlink(e, link);
    if (rdev != 0)
        archive_entry_set_rdev(e, rdev);
    if (xattr_key != NULL)
        archive_entry_xattr_add_entry(e, xattr_key, xattr_value, strlen(xattr_value));
    if (archive_write_header(t->a, e) != ARCHIVE_OK)
        fail_msg("write header %s: %s", path, archive_error_string(t->a));
    if (type == AE_IFREG && !hardlink && len > 0)
        assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
    archive_entry_free(e);
}

static void tar_file(struct tar *t, const char *path, const char *text)
{
    tar_add(t, path, AE_IFREG, 0644, text, strlen(text), NULL, false, 0, 0, NULL, NULL);
}

static void tar_dir(struct tar *t, const char *path, mode_t perm)
{
    tar_add(t, path, AE_IFDIR, perm, NULL, 0, NULL, false, 0, 0, NULL, NULL);
}

static void tar_symlink(struct tar *t, const char *path, const char *target)
{
    tar_add(t, path, AE_IFLNK, 0777, NULL, 0, target, false, 0, 0, NULL, NULL);
}

static void tar_hardlink(struct tar *t, const char *path, const char *target)
{
    tar_add(t, path, AE_IFREG, 0644, NULL, 0, target, true, 0, 0, NULL, NULL);
}

static struct bytes tar_finish(struct tar *t)
{
    assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
    archive_write_free(t->a);
    struct bytes out = t->out;
    free(t);
    return out;
}

/* Compresses bytes (an uncompressed tar) with filter, as a registry's layer would be. */
static struct bytes compress(const struct bytes *in, const char *filter)
{
    struct bytes out = {0};
    struct archive *a = archive_write_new();
    archive_write_set_format_raw(a);
    if (strcmp(filter, "gzip") == 0)
        archive_write_add_filter_gzip(a);
    else
        archive_write_add_filter_zstd(a);
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

static void sha256_hex(const void *data, size_t len, char out[OCI_DIGEST_BUF])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len;
    EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    oci_digest_format(md, out);
}

/* ---- Fixture ---------------------------------------------------------------------- */

struct fixture {
    char scratch[64];  /* everything the test makes */
    char root[128];    /* the store */
    char outside[128]; /* a directory hostile archives aim at; must stay empty */
    struct oci_store *store;
};

static int setup_with(void **state, bool no_openat2, int64_t max_bytes)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->scratch, sizeof(fx->scratch), "/tmp/gantry-oci-layer.XXXXXX");
    if (mkdtemp(fx->scratch) == NULL)
        return -1;
    snprintf(fx->root, sizeof(fx->root), "%s/oci", fx->scratch);
    snprintf(fx->outside, sizeof(fx->outside), "%s/outside", fx->scratch);
    mkdir(fx->outside, 0755);
    struct oci_store_options opts;
    oci_store_options_default(&opts);
    opts.no_openat2 = no_openat2;
    if (max_bytes > 0)
        opts.max_layer_bytes = max_bytes;
    struct gy_error err;
    if (oci_store_open(fx->root, &opts, &fx->store, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, false, 0);
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

/* Stores bytes as a blob; returns its digest in digest. */
static void blob_add(struct fixture *fx, const struct bytes *b, char digest[OCI_DIGEST_BUF])
{
    struct gy_error err;
    int rc = oci_store_blob_write(fx->store, b->data, b->len, NULL, digest, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void path_in(char *buf, size_t len, const char *dir, const char *rel)
{
    if (snprintf(buf, len, "%s/%s", dir, rel) >= (int)len)
        fail_msg("path too long: %s/%s", dir, rel);
}

static char *unpack_ok(struct fixture *fx, const char *digest, const char *diff_id)
{
    char *dir = NULL;
    struct gy_error err;
    if (oci_layer_unpack(fx->store, digest, diff_id, &dir, &err) < 0)
        fail_msg("unpack: %s", err.msg);
    return dir;
}

/* ---- Metadata ---------------------------------------------------------------------- */

static void test_unpack_keeps_metadata(void **state)
{
    struct fixture *fx = *state;
    bool root = geteuid() == 0;
    /* The archive is written in a UTF-8 locale, so that its UTF-8 name gets a pax header
     * as Go's archive/tar writes it; the agent reads it in the C locale. */
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    assert_true(utf8 != (locale_t)0);
    locale_t previous = uselocale(utf8);
    struct tar *t = tar_new("none");
    tar_dir(t, "./", 0755);
    tar_dir(t, "etc/", 0755);
    tar_file(t, "etc/hosts", "127.0.0.1 localhost\n");
    tar_dir(t, "bin/", 0755);
    tar_add(t, "bin/su", AE_IFREG, 04755, "su", 2, NULL, false, 0, 0, NULL, NULL);
    tar_add(t, "home/user/notes", AE_IFREG, 0600, "n", 1, NULL, false, 1000, 0, "user.gantry",
            "kept");
    tar_add(t, "bin/sneaky", AE_IFREG, 0755, "x", 1, NULL, false, 0, 0, "trusted.overlay.redirect",
            "/etc");
    tar_symlink(t, "bin/sh", "su");
    tar_symlink(t, "lib", "/usr/lib");
    tar_hardlink(t, "bin/su2", "bin/su");
    tar_dir(t, "ro/", 0555);
    tar_file(t, "ro/inside", "inside a read-only directory\n");
    tar_file(t, "deep/a/b/c.txt", "implicit parents\n");
    tar_add(t, "run/fifo", AE_IFIFO, 0640, NULL, 0, NULL, false, 0, 0, NULL, NULL);
    tar_file(t, "caf\xc3\xa9.txt", "utf-8 name\n");
    tar_file(t, "dup", "first\n");
    tar_file(t, "dup", "second\n");
    if (root)
        tar_add(t, "dev/null", AE_IFCHR, 0666, NULL, 0, NULL, false, 0, makedev(1, 3), NULL, NULL);
    struct bytes layer = tar_finish(t);
    uselocale(previous);
    freelocale(utf8);
    char digest[OCI_DIGEST_BUF], diff_id[OCI_DIGEST_BUF];
    sha256_hex(layer.data, layer.len, diff_id);
    blob_add(fx, &layer, digest);
    assert_string_equal(digest, diff_id); /* uncompressed: one and the same */
    bytes_free(&layer);

    char *dir = unpack_ok(fx, digest, diff_id);
    char expect[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
    snprintf(expect, sizeof(expect), "%s/layers/%s/fs", oci_store_root(fx->store), digest + 7);
    assert_string_equal(dir, expect);

    struct stat st, st2;
    path_in(p, sizeof(p), dir, "etc/hosts");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(st.st_mtim.tv_sec, 1500000000);
    path_in(p, sizeof(p), dir, "bin/su");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 04755); /* set-uid kept, as the image says */
    path_in(q, sizeof(q), dir, "bin/su2");
    assert_int_equal(stat(q, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    assert_int_equal(st2.st_nlink, 2);
    char target[64] = {0};
    path_in(p, sizeof(p), dir, "bin/sh");
    assert_int_equal(readlink(p, target, sizeof(target) - 1), 2);
    assert_string_equal(target, "su");
    path_in(p, sizeof(p), dir, "lib");
    memset(target, 0, sizeof(target));
    assert_int_equal(readlink(p, target, sizeof(target) - 1), 8);
    assert_string_equal(target, "/usr/lib");
    path_in(p, sizeof(p), dir, "ro");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0555); /* applied after its content */
    assert_int_equal(st.st_mtim.tv_sec, 1500000000);
    path_in(p, sizeof(p), dir, "ro/inside");
    assert_true(exists(p));
    path_in(p, sizeof(p), dir, "deep/a/b/c.txt");
    assert_true(exists(p));
    path_in(p, sizeof(p), dir, "run/fifo");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0640);
    path_in(p, sizeof(p), dir, "caf\xc3\xa9.txt");
    assert_true(exists(p));
    path_in(p, sizeof(p), dir, "dup");
    char text[32] = {0};
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    assert_string_equal(text, "second\n");
    path_in(p, sizeof(p), dir, "bin/sneaky");
    assert_true(lgetxattr(p, "trusted.overlay.redirect", text, sizeof(text)) < 0);
    path_in(p, sizeof(p), dir, "home/user/notes");
    assert_int_equal(lstat(p, &st), 0);
    if (root) {
        assert_int_equal(st.st_uid, 1000);
        assert_int_equal(st.st_gid, 1000);
        memset(text, 0, sizeof(text));
        assert_int_equal(lgetxattr(p, "user.gantry", text, sizeof(text)), 4);
        assert_string_equal(text, "kept");
        path_in(p, sizeof(p), dir, "dev/null");
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(1, 3));
    }

    struct oci_layer_info info;
    struct gy_error err;
    assert_int_equal(oci_layer_info(fx->store, digest, &info, &err), 0);
    assert_string_equal(info.compression, "none");
    assert_string_equal(info.diff_id, diff_id);
    assert_int_equal(info.entries, root ? 18 : 17);

    /* Once: a second call finds the same directory and does not unpack again. */
    path_in(p, sizeof(p), dir, "etc/hosts");
    assert_int_equal(stat(p, &st), 0);
    char *again = unpack_ok(fx, digest, NULL);
    assert_string_equal(again, dir);
    assert_int_equal(stat(p, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);
    free(again);
    free(dir);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/tmp", oci_store_root(fx->store));
    assert_int_equal(count_entries(tmp), 0);
}

/* ---- Compression ------------------------------------------------------------------- */

static void test_gzip_and_zstd_by_content(void **state)
{
    struct fixture *fx = *state;
    struct tar *t = tar_new("none");
    tar_file(t, "hello.txt", "hello\n");
    tar_dir(t, "d/", 0755);
    tar_file(t, "d/world.txt", "world\n");
    struct bytes plain = tar_finish(t);
    char diff_id[OCI_DIGEST_BUF];
    sha256_hex(plain.data, plain.len, diff_id);
    const char *filters[] = {"gzip", "zstd"};
    for (size_t i = 0; i < 2; i++) {
        struct bytes packed = compress(&plain, filters[i]);
        char digest[OCI_DIGEST_BUF];
        blob_add(fx, &packed, digest);
        assert_string_not_equal(digest, diff_id);
        bytes_free(&packed);
        char *dir = unpack_ok(fx, digest, diff_id);
        char p[PATH_MAX];
        path_in(p, sizeof(p), dir, "d/world.txt");
        assert_true(exists(p));
        struct oci_layer_info info;
        assert_int_equal(oci_layer_info(fx->store, digest, &info, NULL), 0);
        assert_string_equal(info.compression, filters[i]);
        assert_string_equal(info.diff_id, diff_id);
        free(dir);
    }
    /* A writer that compresses the tar itself, as registries' layers are, works too. */
    t = tar_new("zstd");
    tar_file(t, "z.txt", "z\n");
    struct bytes z = tar_finish(t);
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &z, digest);
    bytes_free(&z);
    free(unpack_ok(fx, digest, NULL));
    bytes_free(&plain);
}

static void test_diff_id_mismatch(void **state)
{
    struct fixture *fx = *state;
    struct tar *t = tar_new("none");
    tar_file(t, "a", "a\n");
    struct bytes plain = tar_finish(t);
    struct bytes packed = compress(&plain, "gzip");
    char digest[OCI_DIGEST_BUF], diff_id[OCI_DIGEST_BUF], wrong[OCI_DIGEST_BUF];
    sha256_hex(plain.data, plain.len, diff_id);
    sha256_hex("other", 5, wrong);
    blob_add(fx, &packed, digest);
    bytes_free(&plain);
    bytes_free(&packed);

    char *dir = NULL;
    struct gy_error err;
    assert_int_equal(oci_layer_unpack(fx->store, digest, wrong, &dir, &err), -GY_EPROTO);
    assert_null(dir);
    assert_non_null(strstr(err.msg, digest));
    assert_non_null(strstr(err.msg, diff_id));
    assert_non_null(strstr(err.msg, wrong));
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/layers/%s", oci_store_root(fx->store), digest + 7);
    assert_false(exists(p));
    snprintf(p, sizeof(p), "%s/tmp", oci_store_root(fx->store));
    assert_int_equal(count_entries(p), 0);

    free(unpack_ok(fx, digest, diff_id));
    /* An unpacked layer is checked against a diff_id given later, too. */
    assert_int_equal(oci_layer_unpack(fx->store, digest, wrong, &dir, &err), -GY_EPROTO);
    assert_non_null(strstr(err.msg, wrong));
    assert_int_equal(oci_layer_unpack(fx->store, "sha256:ABC", NULL, &dir, &err), -GY_EINVAL);
    assert_int_equal(oci_layer_unpack(fx->store, digest, "md5:00", &dir, &err), -GY_EINVAL);
    char absent[OCI_DIGEST_BUF];
    sha256_hex("absent", 6, absent);
    assert_int_equal(oci_layer_unpack(fx->store, absent, NULL, &dir, &err), -GY_ENOTFOUND);
}

/* ---- Hostile archives -------------------------------------------------------------- */

struct hostile {
    const char *name;
    void (*build)(struct tar *t, const char *outside);
    const char *entry; /* the entry the error must name */
};

static void h_dotdot(struct tar *t, const char *outside)
{
    (void)outside;
    tar_file(t, "../escape", "x");
}

static void h_dotdot_inner(struct tar *t, const char *outside)
{
    (void)outside;
    tar_dir(t, "a/", 0755);
    tar_file(t, "a/../../outside/escape", "x");
}

static void h_absolute(struct tar *t, const char *outside)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/escape", outside);
    tar_file(t, path, "x");
}

static void h_symlink_outside(struct tar *t, const char *outside)
{
    tar_symlink(t, "a", outside);
    tar_file(t, "a/passwd", "root::0:0::/:/bin/sh\n");
}

static void h_symlink_etc(struct tar *t, const char *outside)
{
    (void)outside;
    tar_symlink(t, "a", "/etc");
    tar_file(t, "a/gantry-oci-escape-test", "x");
}

static void h_symlink_dotdot(struct tar *t, const char *outside)
{
    (void)outside;
    tar_symlink(t, "up", "../../..");
    tar_file(t, "up/escape", "x");
}

static void h_symlink_chain(struct tar *t, const char *outside)
{
    tar_symlink(t, "b", outside);
    tar_symlink(t, "a", "b");
    tar_file(t, "a/escape", "x");
}

static void h_dir_then_symlink(struct tar *t, const char *outside)
{
    tar_dir(t, "d/", 0755);
    tar_symlink(t, "d", outside);
    tar_file(t, "d/escape", "x");
}

static void h_hardlink_absolute(struct tar *t, const char *outside)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/target", outside);
    tar_hardlink(t, "h", path);
}

static void h_hardlink_dotdot(struct tar *t, const char *outside)
{
    (void)outside;
    tar_hardlink(t, "h", "../outside/target");
}

static void h_hardlink_through_symlink(struct tar *t, const char *outside)
{
    tar_symlink(t, "s", outside);
    tar_hardlink(t, "h", "s/target");
}

static void h_whiteout_dotdot(struct tar *t, const char *outside)
{
    (void)outside;
    tar_dir(t, "d/", 0755);
    tar_file(t, "d/.wh...", "");
}

static const struct hostile hostiles[] = {
    {"'..' entry", h_dotdot, "../escape"},
    {"'..' inside an entry", h_dotdot_inner, "a/../../outside/escape"},
    {"absolute entry", h_absolute, "/escape"},
    {"write through a symlink to outside", h_symlink_outside, "a/passwd"},
    {"write through a symlink to /etc", h_symlink_etc, "a/gantry-oci-escape-test"},
    {"write through a relative symlink up", h_symlink_dotdot, "up/escape"},
    {"write through a chain of symlinks", h_symlink_chain, "a/escape"},
    {"directory replaced by a symlink", h_dir_then_symlink, "d/escape"},
    {"hard link to an absolute path", h_hardlink_absolute, "\"h\""},
    {"hard link to ../", h_hardlink_dotdot, "\"h\""},
    {"hard link through a symlink", h_hardlink_through_symlink, "\"h\""},
    {"whiteout of '..'", h_whiteout_dotdot, "d/.wh..."},
};

static void run_hostiles(struct fixture *fx)
{
    char target[PATH_MAX];
    snprintf(target, sizeof(target), "%s/target", fx->outside);
    for (size_t i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
        /* A file outside for hard links to aim at; it must keep one link. */
        FILE *f = fopen(target, "w");
        assert_non_null(f);
        fputs("outside\n", f);
        fclose(f);
        struct tar *t = tar_new(i % 2 == 0 ? "none" : "gzip");
        tar_file(t, "innocent", "first entry\n");
        hostiles[i].build(t, fx->outside);
        struct bytes layer = tar_finish(t);
        char digest[OCI_DIGEST_BUF];
        blob_add(fx, &layer, digest);
        bytes_free(&layer);

        char *dir = NULL;
        struct gy_error err;
        int rc = oci_layer_unpack(fx->store, digest, NULL, &dir, &err);
        if (rc == 0)
            fail_msg("hostile archive \"%s\" was unpacked", hostiles[i].name);
        assert_null(dir);
        if (strstr(err.msg, digest) == NULL || strstr(err.msg, hostiles[i].entry) == NULL)
            fail_msg("\"%s\": error does not name the layer and entry %s: %s", hostiles[i].name,
                     hostiles[i].entry, err.msg);
        /* Nothing outside, nothing half-done inside. */
        assert_int_equal(count_entries(fx->outside), 1);
        struct stat st;
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal(st.st_nlink, 1);
        assert_false(exists("/etc/gantry-oci-escape-test"));
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/escape", fx->scratch);
        assert_false(exists(p));
        snprintf(p, sizeof(p), "%s/layers/%s", oci_store_root(fx->store), digest + 7);
        assert_false(exists(p));
        snprintf(p, sizeof(p), "%s/tmp", oci_store_root(fx->store));
        assert_int_equal(count_entries(p), 0);
        assert_int_equal(count_entries(fx->scratch), 2); /* oci and outside */
    }
}

static void test_hostile_archives(void **state)
{
    run_hostiles(*state);
}

static int setup_walk(void **state)
{
    return setup_with(state, true, 0);
}

/* The same archives through the component walk that stands in for openat2. */
static void test_hostile_archives_without_openat2(void **state)
{
    run_hostiles(*state);
}

/* A symlink inside the layer is fine as long as nothing is written through it, and an
 * absolute symlink is stored as written. */
static void test_symlinks_not_followed(void **state)
{
    struct fixture *fx = *state;
    struct tar *t = tar_new("none");
    tar_symlink(t, "etc", "/etc");
    tar_symlink(t, "loop", "loop");
    tar_file(t, "f", "f\n");
    tar_hardlink(t, "hl", "etc"); /* links the symlink itself */
    struct bytes layer = tar_finish(t);
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &layer, digest);
    bytes_free(&layer);
    char *dir = unpack_ok(fx, digest, NULL);
    char p[PATH_MAX];
    struct stat st;
    path_in(p, sizeof(p), dir, "hl");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    free(dir);
}

/* ---- Size bounds ------------------------------------------------------------------- */

static int setup_small(void **state)
{
    return setup_with(state, false, 1 << 20);
}

static void test_decompression_bomb(void **state)
{
    struct fixture *fx = *state;
    size_t big = 8u << 20;
    char *zeros = calloc(1, big);
    struct tar *t = tar_new("gzip");
    tar_add(t, "bomb", AE_IFREG, 0644, zeros, big, NULL, false, 0, 0, NULL, NULL);
    struct bytes layer = tar_finish(t);
    free(zeros);
    assert_true(layer.len < 64 * 1024); /* 8 MiB of zeros, compressed */
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &layer, digest);
    bytes_free(&layer);
    char *dir = NULL;
    struct gy_error err;
    assert_int_equal(oci_layer_unpack(fx->store, digest, NULL, &dir, &err), -GY_ETOOBIG);
    assert_non_null(strstr(err.msg, digest));
    assert_non_null(strstr(err.msg, "bomb"));
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/tmp", oci_store_root(fx->store));
    assert_int_equal(count_entries(p), 0);

    /* Many small files add up the same way, through the decompressed stream. */
    t = tar_new("zstd");
    for (int i = 0; i < 4000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "f%d", i);
        tar_file(t, name, "");
    }
    layer = tar_finish(t);
    blob_add(fx, &layer, digest);
    bytes_free(&layer);
    assert_int_equal(oci_layer_unpack(fx->store, digest, NULL, &dir, &err), -GY_ETOOBIG);
}

/* A header that claims a huge file is refused before anything is read or written. */
static void test_declared_size_bound(void **state)
{
    struct fixture *fx = *state;
    struct archive *a = archive_write_new();
    struct bytes out = {0};
    archive_write_set_format_ustar(a);
    archive_write_open(a, &out, NULL, bytes_write, NULL);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "huge");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 10);
    archive_write_header(a, e);
    archive_write_data(a, "0123456789", 10);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    /* Size field: 8 GiB - 1 in octal, then the header checksum again. */
    memcpy(out.data + 124, "77777777777", 12);
    memset(out.data + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += out.data[i];
    snprintf((char *)out.data + 148, 8, "%06o", sum);
    out.data[155] = ' ';
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &out, digest);
    bytes_free(&out);
    char *dir = NULL;
    struct gy_error err;
    assert_int_equal(oci_layer_unpack(fx->store, digest, NULL, &dir, &err), -GY_ETOOBIG);
    assert_non_null(strstr(err.msg, "\"huge\""));
    assert_non_null(strstr(err.msg, "add up to more than"));
}

static void test_not_a_layer(void **state)
{
    struct fixture *fx = *state;
    char *dir = NULL;
    struct gy_error err;
    char digest[OCI_DIGEST_BUF];
    struct bytes junk = {.data = (unsigned char *)strdup("this is not a tar file at all"),
                         .len = 29};
    blob_add(fx, &junk, digest);
    bytes_free(&junk);
    assert_true(oci_layer_unpack(fx->store, digest, NULL, &dir, &err) < 0);
    assert_non_null(strstr(err.msg, digest));

    /* gzip inside gzip is not a layer format. */
    struct tar *t = tar_new("none");
    tar_file(t, "a", "a");
    struct bytes plain = tar_finish(t);
    struct bytes once = compress(&plain, "gzip");
    struct bytes twice = compress(&once, "gzip");
    blob_add(fx, &twice, digest);
    assert_true(oci_layer_unpack(fx->store, digest, NULL, &dir, &err) < 0);
    assert_non_null(strstr(err.msg, "more than once"));
    bytes_free(&plain);
    bytes_free(&once);
    bytes_free(&twice);
}

/* ---- Whiteouts and overlay --------------------------------------------------------- */

static void test_whiteouts_and_opaque(void **state)
{
    struct fixture *fx = *state;
    bool root = geteuid() == 0;
    struct tar *t = tar_new("none");
    tar_file(t, "a", "hidden by the upper layer\n");
    tar_file(t, "b", "stays\n");
    tar_dir(t, "d/", 0755);
    tar_file(t, "d/x", "x\n");
    tar_file(t, "d/y", "y\n");
    struct bytes lower = tar_finish(t);
    t = tar_new("gzip");
    tar_file(t, ".wh.a", "");
    tar_file(t, ".wh..wh.plnk", ""); /* aufs bookkeeping: ignored */
    if (root) {
        tar_dir(t, "d/", 0755);
        tar_file(t, "d/.wh..wh..opq", "");
    }
    tar_file(t, "d/z", "z\n");
    struct bytes upper = tar_finish(t);
    char dl[OCI_DIGEST_BUF], du[OCI_DIGEST_BUF];
    blob_add(fx, &lower, dl);
    blob_add(fx, &upper, du);
    bytes_free(&lower);
    bytes_free(&upper);
    char *lower_dir = unpack_ok(fx, dl, NULL);
    char *upper_dir = unpack_ok(fx, du, NULL);

    char p[PATH_MAX];
    struct stat st;
    path_in(p, sizeof(p), upper_dir, "a");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(st.st_rdev, makedev(0, 0));
    path_in(p, sizeof(p), upper_dir, ".wh.a");
    assert_false(exists(p));
    path_in(p, sizeof(p), upper_dir, ".wh..wh.plnk");
    assert_false(exists(p));
    path_in(p, sizeof(p), upper_dir, "d/.wh..wh..opq");
    assert_false(exists(p));
    if (!root) {
        free(lower_dir);
        free(upper_dir);
        GT_SKIP("not root: opaque directories (trusted.* xattrs) and overlay mounts untested");
        return;
    }
    char value[8] = {0};
    path_in(p, sizeof(p), upper_dir, "d");
    assert_int_equal(lgetxattr(p, "trusted.overlay.opaque", value, sizeof(value)), 1);
    assert_string_equal(value, "y");

    /* The kernel's view: an overlay of the two layers hides a and d/x, d/y. */
    char mnt[PATH_MAX], opts[2 * PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s/mnt", fx->scratch);
    mkdir(mnt, 0755);
    snprintf(opts, sizeof(opts), "lowerdir=%s:%s", upper_dir, lower_dir);
    if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) < 0) {
        char why[256];
        snprintf(why, sizeof(why),
                 "overlay mount not possible here (%s): whiteouts checked "
                 "on disk only",
                 strerror(errno));
        rmdir(mnt);
        free(lower_dir);
        free(upper_dir);
        GT_SKIP(why);
        return;
    }
    path_in(p, sizeof(p), mnt, "a");
    bool a_visible = exists(p);
    path_in(p, sizeof(p), mnt, "b");
    bool b_visible = exists(p);
    path_in(p, sizeof(p), mnt, "d");
    int in_d = count_entries(p);
    path_in(p, sizeof(p), mnt, "d/z");
    bool z_visible = exists(p);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    assert_false(a_visible);
    assert_true(b_visible);
    assert_int_equal(in_d, 1);
    assert_true(z_visible);
    free(lower_dir);
    free(upper_dir);
}

/* Without root: device nodes are refused, whiteouts still work (Linux 5.8 lets anyone make
 * a 0/0 character device). As root the check runs in a child that drops to nobody. */
static int unprivileged_checks(const char *root_dir)
{
    struct oci_store *store;
    struct gy_error err;
    if (oci_store_open(root_dir, NULL, &store, &err) < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    int failures = 0;
    struct tar *t = tar_new("none");
    tar_file(t, "ok", "ok\n");
    tar_add(t, "dev/sda", AE_IFBLK, 0660, NULL, 0, NULL, false, 0, makedev(8, 0), NULL, NULL);
    struct bytes layer = tar_finish(t);
    char digest[OCI_DIGEST_BUF];
    if (oci_store_blob_write(store, layer.data, layer.len, NULL, digest, &err) < 0)
        return fprintf(stderr, "blob: %s\n", err.msg), 1;
    bytes_free(&layer);
    char *dir = NULL;
    int rc = oci_layer_unpack(store, digest, NULL, &dir, &err);
    if (rc != -GY_EPERM || strstr(err.msg, "device node refused") == NULL ||
        strstr(err.msg, "dev/sda") == NULL) {
        fprintf(stderr, "device: rc=%d %s\n", rc, err.msg);
        failures++;
    }
    t = tar_new("none");
    tar_file(t, ".wh.gone", "");
    layer = tar_finish(t);
    oci_store_blob_write(store, layer.data, layer.len, NULL, digest, &err);
    bytes_free(&layer);
    if (oci_layer_unpack(store, digest, NULL, &dir, &err) < 0) {
        fprintf(stderr, "whiteout: %s\n", err.msg);
        failures++;
    } else {
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof(p), "%s/gone", dir);
        if (lstat(p, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(0, 0)) {
            fprintf(stderr, "whiteout: %s is not a 0/0 device\n", p);
            failures++;
        }
        free(dir);
    }
    oci_store_close(store);
    return failures;
}

static void test_unprivileged(void **state)
{
    struct fixture *fx = *state;
    char root_dir[PATH_MAX];
    snprintf(root_dir, sizeof(root_dir), "%s/unpriv", fx->scratch);
    if (geteuid() != 0) {
        assert_int_equal(unprivileged_checks(root_dir), 0);
        return;
    }
    mkdir(root_dir, 0700);
    assert_int_equal(chown(root_dir, 65534, 65534), 0);
    assert_int_equal(chmod(fx->scratch, 0711), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        _exit(unprivileged_checks(root_dir) == 0 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- Concurrency and removal ------------------------------------------------------- */

struct racer {
    struct fixture *fx;
    const char *digest;
    pthread_barrier_t *barrier;
    char *dir;
    int rc;
    char msg[GY_ERROR_MSG_MAX];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct gy_error err;
    pthread_barrier_wait(r->barrier);
    r->rc = oci_layer_unpack(r->fx->store, r->digest, NULL, &r->dir, &err);
    if (r->rc < 0)
        snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
    return NULL;
}

static void test_concurrent_unpack(void **state)
{
    struct fixture *fx = *state;
    struct tar *t = tar_new("gzip");
    char *chunk = malloc(16384);
    for (int i = 0; i < 16384; i++)
        chunk[i] = (char)(i * 7);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "dir%d/file%d", i % 10, i);
        tar_add(t, name, AE_IFREG, 0644, chunk, 16384, NULL, false, 0, 0, NULL, NULL);
    }
    free(chunk);
    struct bytes layer = tar_finish(t);
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &layer, digest);
    bytes_free(&layer);

    enum { RACERS = 4 };
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACERS);
    struct racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.fx = fx, .digest = digest, .barrier = &barrier};
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < RACERS; i++) {
        if (racers[i].rc < 0)
            fail_msg("racer %d: %s", i, racers[i].msg);
        assert_string_equal(racers[i].dir, racers[0].dir);
    }
    int files = 0;
    for (int d = 0; d < 10; d++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/dir%d", racers[0].dir, d);
        files += count_entries(p);
    }
    assert_int_equal(files, 300);
    struct oci_layer_info info;
    assert_int_equal(oci_layer_info(fx->store, digest, &info, NULL), 0);
    assert_int_equal(info.size_bytes, 300 * 16384);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/tmp", oci_store_root(fx->store));
    assert_int_equal(count_entries(p), 0);
    for (int i = 0; i < RACERS; i++)
        free(racers[i].dir);
}

static void test_remove_and_clean(void **state)
{
    struct fixture *fx = *state;
    struct tar *t = tar_new("none");
    tar_dir(t, "ro/", 0500);
    tar_file(t, "ro/f", "f\n");
    struct bytes layer = tar_finish(t);
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &layer, digest);
    bytes_free(&layer);
    char *dir = unpack_ok(fx, digest, NULL);
    struct gy_error err;
    assert_int_equal(oci_layer_remove(fx->store, digest, NULL, &err), 0);
    assert_false(exists(dir));
    assert_int_equal(oci_layer_remove(fx->store, digest, NULL, &err), -GY_ENOTFOUND);
    assert_true(oci_store_blob_has(fx->store, digest)); /* the blob stays */
    free(dir);

    /* What a crash leaves in tmp goes; something else there is left alone. */
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/tmp/layer-%s-abcdef", oci_store_root(fx->store), digest + 7);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/tmp/layer-%s-abcdef/fs", oci_store_root(fx->store), digest + 7);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/tmp/unrelated", oci_store_root(fx->store));
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(oci_layer_clean_tmp(fx->store, &err), 1);
    snprintf(p, sizeof(p), "%s/tmp", oci_store_root(fx->store));
    assert_int_equal(count_entries(p), 1);
}

/* A layer directory without its record (debris) is replaced, not trusted. */
static void test_debris_replaced(void **state)
{
    struct fixture *fx = *state;
    struct tar *t = tar_new("none");
    tar_file(t, "real", "real\n");
    struct bytes layer = tar_finish(t);
    char digest[OCI_DIGEST_BUF];
    blob_add(fx, &layer, digest);
    bytes_free(&layer);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/layers/%s", oci_store_root(fx->store), digest + 7);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/layers/%s/junk", oci_store_root(fx->store), digest + 7);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    char *dir = unpack_ok(fx, digest, NULL);
    assert_false(exists(p));
    path_in(p, sizeof(p), dir, "real");
    assert_true(exists(p));
    snprintf(p, sizeof(p), "%s/tmp", oci_store_root(fx->store));
    assert_int_equal(count_entries(p), 0);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unpack_keeps_metadata, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gzip_and_zstd_by_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diff_id_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_archives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_archives_without_openat2, setup_walk,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlinks_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decompression_bomb, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_declared_size_bound, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unprivileged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_unpack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_and_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debris_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whiteouts_and_opaque, setup, teardown),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
