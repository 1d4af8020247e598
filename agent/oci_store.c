/* The OCI image store; see oci_store.h and docs/images.md ("Store").
 *
 * Layout under ROOT (DATA_DIR/oci, mode 0700):
 *   blobs/sha256/HEX       verified blobs, read-only; their mtime is when they were committed
 *   ingest/HEX.partial     downloads in progress, resumed from their size
 *   layers/HEX/            unpacked layers (oci_layer.c): fs/ and layer.json
 *   images/NAMEHASH.json   one record per image; NAMEHASH is the SHA-256 of the name, so any
 *                          reference maps to one safe file name; its mtime is the last use
 *   tmp/                   unpack and removal work directories (oci_layer.c)
 *   locks/                 flock files: blob-HEX.lock (downloads), layer-HEX.lock (unpacks)
 *   lock                   the store lock: shared by writers, exclusive for a collection
 * Every file appears by rename from a temporary name in the same directory or file system,
 * so a reader sees a complete file or none. */
#include "agent/oci_store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/oci_layer.h"
#include "common/cleanup.h"
#include "common/io.h"
#include "common/log.h"
#include "common/xalloc.h"

#define HASH_CHUNK (256u << 10)

struct oci_store {
    char *root; /* canonical absolute path */
    struct oci_store_options opts;
};

/* ======================================================================================
 * Helpers
 * ====================================================================================== */

static bool __attribute__((format(printf, 3, 4)))
path_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

/* A printable, shortened copy of untrusted text (a digest or name from the network) for an
 * error message; buf holds at least 96 bytes. */
static const char *shown(const char *s, char *buf)
{
    if (s == NULL)
        return "(null)";
    size_t i = 0;
    for (; s[i] != '\0' && i < 80; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (s[i] != '\0')
        memcpy(buf + i, "...", 4);
    else
        buf[i] = '\0';
    return buf;
}

static int mkdir_p(const char *path, mode_t mode, struct gy_error *err)
{
    char buf[PATH_MAX];
    if (!path_fmt(buf, sizeof(buf), "%s", path))
        return gy_error_set(err, GY_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return gy_error_sys(err, errno, "mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "mkdir %s", buf);
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static struct timespec ms_to_timespec(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    if (ts.tv_nsec < 0) {
        ts.tv_sec--;
        ts.tv_nsec += 1000000000;
    }
    return ts;
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* Opens path (creating it) and flocks it with op; returns the descriptor or a negative
 * error, GY_ECONFLICT when op has LOCK_NB and the lock is held. */
static int lock_file(const char *path, int op, struct gy_error *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return gy_error_sys(err, errno, "open lock %s", path);
    while (flock(fd, op) < 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(fd);
        if (e == EWOULDBLOCK)
            return gy_error_set(err, GY_ECONFLICT, "%s is locked", path);
        return gy_error_sys(err, e, "lock %s", path);
    }
    return fd;
}

static void strv_push(char ***v, size_t *n, const char *s)
{
    *v = gy_xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = gy_xstrdup(s);
}

void oci_strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ======================================================================================
 * Digests
 * ====================================================================================== */

int oci_digest_check(const char *digest, struct gy_error *err)
{
    char buf[96];
    if (digest == NULL)
        return gy_error_set(err, GY_EINVAL, "missing digest");
    if (strncmp(digest, "sha256:", 7) != 0)
        return gy_error_set(err, GY_EINVAL,
                            "digest \"%s\": only sha256 digests are supported (\"sha256:\" and "
                            "64 lower-case hex digits)",
                            shown(digest, buf));
    bool ok = strnlen(digest, OCI_DIGEST_LEN + 1) == OCI_DIGEST_LEN;
    for (size_t i = 7; ok && i < OCI_DIGEST_LEN; i++)
        ok = (digest[i] >= '0' && digest[i] <= '9') || (digest[i] >= 'a' && digest[i] <= 'f');
    if (!ok)
        return gy_error_set(err, GY_EINVAL,
                            "digest \"%s\": must be \"sha256:\" and 64 lower-case hex digits",
                            shown(digest, buf));
    return 0;
}

void oci_digest_format(const unsigned char sha256[32], char out[OCI_DIGEST_BUF])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[sha256[i] >> 4];
        out[8 + 2 * i] = hex[sha256[i] & 15];
    }
    out[OCI_DIGEST_LEN] = '\0';
}

static void sha256_mem(const void *data, size_t len, char out[OCI_DIGEST_BUF])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        /* Only an OpenSSL without SHA-256 gets here; no digest then matches anything. */
        memset(out, 0, OCI_DIGEST_BUF);
        return;
    }
    oci_digest_format(md, out);
}

/* Copies from fd to out_fd (when >= 0) until EOF, hashing what passes; what names fd in
 * messages. */
static int sha256_copy(int fd, int out_fd, const char *what, char out[OCI_DIGEST_BUF],
                       int64_t *size, struct gy_error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return gy_error_set(err, GY_EINTERNAL, "SHA-256 is not available from OpenSSL");
    }
    cleanup_free unsigned char *buf = gy_xmalloc(HASH_CHUNK);
    int64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, HASH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = gy_error_sys(err, errno, "read %s", what);
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        total += n;
        for (ssize_t done = 0; out_fd >= 0 && done < n;) {
            ssize_t w = write(out_fd, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = gy_error_sys(err, errno, "copy %s", what);
                goto out;
            }
            done += w;
        }
    }
out:
    if (rc == 0) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        EVP_DigestFinal_ex(ctx, md, &md_len);
        oci_digest_format(md, out);
        if (size != NULL)
            *size = total;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ======================================================================================
 * The store
 * ====================================================================================== */

void oci_store_options_default(struct oci_store_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_layer_bytes = OCI_LAYER_DEFAULT_MAX_BYTES;
    opts->gc_grace_ms = OCI_STORE_DEFAULT_GC_GRACE_MS;
}

int oci_store_open(const char *root, const struct oci_store_options *opts, struct oci_store **out,
                   struct gy_error *err)
{
    *out = NULL;
    if (root == NULL || root[0] == '\0')
        return gy_error_set(err, GY_EINVAL, "open image store: no root directory");
    int rc = mkdir_p(root, 0700, err);
    if (rc < 0)
        return gy_error_wrap(err, "open image store %s", root);
    char real[PATH_MAX];
    if (realpath(root, real) == NULL)
        return gy_error_sys(err, errno, "open image store %s", root);
    /* Unpacked layers keep the image's set-uid binaries: only the agent may reach them. */
    if (chmod(real, 0700) < 0)
        return gy_error_sys(err, errno, "open image store: chmod 0700 %s", real);
    static const char *const dirs[] = {"blobs",  "blobs/sha256", "ingest", "layers",
                                       "images", "tmp",          "locks"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[PATH_MAX];
        if (!path_fmt(path, sizeof(path), "%s/%s", real, dirs[i]))
            return gy_error_set(err, GY_EINVAL, "open image store: path too long: %s", real);
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return gy_error_sys(err, errno, "open image store: mkdir %s", path);
    }
    struct oci_store *store = gy_xcalloc(1, sizeof(*store));
    store->root = gy_xstrdup(real);
    if (opts != NULL)
        store->opts = *opts;
    else
        oci_store_options_default(&store->opts);
    if (store->opts.max_layer_bytes <= 0)
        store->opts.max_layer_bytes = OCI_LAYER_DEFAULT_MAX_BYTES;
    if (store->opts.gc_grace_ms < 0)
        store->opts.gc_grace_ms = 0;
    *out = store;
    return 0;
}

void oci_store_close(struct oci_store *store)
{
    if (store == NULL)
        return;
    free(store->root);
    free(store);
}

const char *oci_store_root(const struct oci_store *store)
{
    return store->root;
}

const struct oci_store_options *oci_store_get_options(const struct oci_store *store)
{
    return &store->opts;
}

int64_t oci_store_now_ms(const struct oci_store *store)
{
    if (store->opts.clock_ms != NULL)
        return store->opts.clock_ms(store->opts.clock_arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int oci_store_lock(const struct oci_store *store, bool exclusive, struct gy_error *err)
{
    char path[PATH_MAX];
    if (!path_fmt(path, sizeof(path), "%s/lock", store->root))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", store->root);
    return lock_file(path, exclusive ? LOCK_EX : LOCK_SH, err);
}

int oci_store_lock_named(const struct oci_store *store, const char *name, bool nonblock,
                         struct gy_error *err)
{
    char path[PATH_MAX];
    if (strchr(name, '/') != NULL ||
        !path_fmt(path, sizeof(path), "%s/locks/%s.lock", store->root, name))
        return gy_error_set(err, GY_EINVAL, "invalid lock name %s", name);
    return lock_file(path, nonblock ? LOCK_EX | LOCK_NB : LOCK_EX, err);
}

/* ======================================================================================
 * Blobs
 * ====================================================================================== */

int oci_store_blob_path(const struct oci_store *store, const char *digest, char *buf, size_t len,
                        struct gy_error *err)
{
    int rc = oci_digest_check(digest, err);
    if (rc < 0)
        return rc;
    if (!path_fmt(buf, len, "%s/blobs/sha256/%s", store->root, digest + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", store->root);
    return 0;
}

int oci_store_ingest_path(const struct oci_store *store, const char *digest, char *buf, size_t len,
                          struct gy_error *err)
{
    int rc = oci_digest_check(digest, err);
    if (rc < 0)
        return rc;
    if (!path_fmt(buf, len, "%s/ingest/%s.partial", store->root, digest + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", store->root);
    return 0;
}

int oci_store_ingest_open(const struct oci_store *store, const char *digest, int *fd,
                          int64_t *offset, struct gy_error *err)
{
    *fd = -1;
    *offset = 0;
    char path[PATH_MAX];
    int rc = oci_store_ingest_path(store, digest, path, sizeof(path), err);
    if (rc < 0)
        return gy_error_wrap(err, "open download");
    cleanup_close int f = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f < 0)
        return gy_error_sys(err, errno, "open download of %s: %s", digest, path);
    struct stat st;
    if (fstat(f, &st) < 0)
        return gy_error_sys(err, errno, "open download of %s: stat %s", digest, path);
    if (!S_ISREG(st.st_mode))
        return gy_error_set(err, GY_EIO, "open download of %s: %s is not a regular file", digest,
                            path);
    *offset = st.st_size;
    *fd = gy_steal_fd(&f);
    return 0;
}

int oci_store_ingest_lock(const struct oci_store *store, const char *digest, struct gy_error *err)
{
    int rc = oci_digest_check(digest, err);
    if (rc < 0)
        return gy_error_wrap(err, "lock download");
    char name[80];
    snprintf(name, sizeof(name), "blob-%s", digest + 7);
    return oci_store_lock_named(store, name, false, err);
}

/* Makes a verified blob file durable and immutable-looking, stamped with the store clock
 * (the collector's grace period counts from it). */
static int blob_seal(const struct oci_store *store, int fd, const char *what, struct gy_error *err)
{
    struct timespec ts = ms_to_timespec(oci_store_now_ms(store));
    struct timespec times[2] = {ts, ts};
    if (fchmod(fd, 0444) < 0 || futimens(fd, times) < 0 || fsync(fd) < 0)
        return gy_error_sys(err, errno, "seal %s", what);
    return 0;
}

/* The EXDEV path of a commit: copies the partial file into the store, hashing what is
 * copied, then renames the copy into place. */
static int blob_copy_in(const struct oci_store *store, int src, const char *partial_path,
                        const char *digest, const char *final, struct gy_error *err)
{
    char tmp[PATH_MAX];
    if (!path_fmt(tmp, sizeof(tmp), "%s/ingest/%s.copy-XXXXXX", store->root, digest + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", store->root);
    cleanup_close int dst = mkostemp(tmp, O_CLOEXEC);
    if (dst < 0)
        return gy_error_sys(err, errno, "commit blob %s: create %s", digest, tmp);
    char actual[OCI_DIGEST_BUF];
    int rc;
    if (lseek(src, 0, SEEK_SET) < 0) {
        rc = gy_error_sys(err, errno, "commit blob %s: rewind %s", digest, partial_path);
        goto err_unlink;
    }
    if ((rc = sha256_copy(src, dst, partial_path, actual, NULL, err)) < 0)
        goto err_unlink;
    if (strcmp(actual, digest) != 0) {
        unlink(partial_path);
        rc = gy_error_set(err, GY_EPROTO,
                          "commit blob %s: the download %s hashes to %s, not %s; it was removed",
                          digest, partial_path, actual, digest);
        goto err_unlink;
    }
    if ((rc = blob_seal(store, dst, tmp, err)) < 0)
        goto err_unlink;
    if (rename(tmp, final) < 0) {
        rc = gy_error_sys(err, errno, "commit blob %s: rename %s to %s", digest, tmp, final);
        goto err_unlink;
    }
    unlink(partial_path);
    return 0;

err_unlink:
    unlink(tmp);
    return rc;
}

int oci_store_blob_commit(struct oci_store *store, const char *partial_path, const char *digest,
                          struct gy_error *err)
{
    char final[PATH_MAX];
    int rc = oci_store_blob_path(store, digest, final, sizeof(final), err);
    if (rc < 0)
        return gy_error_wrap(err, "commit blob");
    cleanup_close int fd = open(partial_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "commit blob %s: open %s", digest, partial_path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return gy_error_sys(err, errno, "commit blob %s: stat %s", digest, partial_path);
    if (!S_ISREG(st.st_mode))
        return gy_error_set(err, GY_EINVAL, "commit blob %s: %s is not a regular file", digest,
                            partial_path);
    char actual[OCI_DIGEST_BUF];
    if ((rc = sha256_copy(fd, -1, partial_path, actual, NULL, err)) < 0)
        return gy_error_wrap(err, "commit blob %s", digest);
    if (strcmp(actual, digest) != 0) {
        unlink(partial_path);
        return gy_error_set(err, GY_EPROTO,
                            "commit blob %s: the download %s hashes to %s, not %s; it was "
                            "removed",
                            digest, partial_path, actual, digest);
    }
    if ((rc = blob_seal(store, fd, partial_path, err)) < 0)
        return gy_error_wrap(err, "commit blob %s", digest);
    if (rename(partial_path, final) < 0) {
        if (errno != EXDEV)
            return gy_error_sys(err, errno, "commit blob %s: rename %s to %s", digest, partial_path,
                                final);
        rc = blob_copy_in(store, fd, partial_path, digest, final, err);
    } else {
        /* rename moved a path, not the descriptor that was hashed: check they are still
         * the same file, so nothing unverified can slip in between. */
        struct stat now;
        if (lstat(final, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
            unlink(final);
            return gy_error_set(err, GY_ECONFLICT,
                                "commit blob %s: %s was replaced while it was verified", digest,
                                partial_path);
        }
    }
    if (rc < 0)
        return rc;
    char dir[PATH_MAX];
    if (path_fmt(dir, sizeof(dir), "%s/blobs/sha256", store->root))
        fsync_dir(dir);
    return 0;
}

int oci_store_blob_write(struct oci_store *store, const void *data, size_t len,
                         const char *expected_digest, char out_digest[OCI_DIGEST_BUF],
                         struct gy_error *err)
{
    char actual[OCI_DIGEST_BUF];
    int rc;
    if (expected_digest != NULL && (rc = oci_digest_check(expected_digest, err)) < 0)
        return gy_error_wrap(err, "write blob");
    sha256_mem(data, len, actual);
    if (expected_digest != NULL && strcmp(actual, expected_digest) != 0)
        return gy_error_set(err, GY_EPROTO, "write blob %s: the content hashes to %s",
                            expected_digest, actual);
    if (out_digest != NULL)
        memcpy(out_digest, actual, OCI_DIGEST_BUF);
    if (oci_store_blob_has(store, actual))
        return 0;
    char tmp[PATH_MAX];
    if (!path_fmt(tmp, sizeof(tmp), "%s/ingest/%s.write-XXXXXX", store->root, actual + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", store->root);
    cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "write blob %s: create %s", actual, tmp);
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = gy_error_sys(err, errno, "write blob %s: write %s", actual, tmp);
            unlink(tmp);
            return rc;
        }
        done += (size_t)n;
    }
    if ((rc = oci_store_blob_commit(store, tmp, actual, err)) < 0) {
        unlink(tmp);
        return rc;
    }
    return 0;
}

bool oci_store_blob_has(const struct oci_store *store, const char *digest)
{
    char path[PATH_MAX];
    struct stat st;
    return oci_store_blob_path(store, digest, path, sizeof(path), NULL) == 0 &&
           lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int oci_store_blob_read_small(const struct oci_store *store, const char *digest, size_t max_bytes,
                              char **out, size_t *len, struct gy_error *err)
{
    *out = NULL;
    *len = 0;
    char path[PATH_MAX];
    int rc = oci_store_blob_path(store, digest, path, sizeof(path), err);
    if (rc < 0)
        return gy_error_wrap(err, "read blob");
    cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return gy_error_set(err, GY_ENOTFOUND, "blob %s is not in the store", digest);
    if (fd < 0)
        return gy_error_sys(err, errno, "read blob %s: open %s", digest, path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return gy_error_sys(err, errno, "read blob %s: stat %s", digest, path);
    if (!S_ISREG(st.st_mode))
        return gy_error_set(err, GY_EIO, "read blob %s: %s is not a regular file", digest, path);
    if ((uint64_t)st.st_size > max_bytes)
        return gy_error_set(err, GY_ETOOBIG, "blob %s is %lld bytes, more than the %zu allowed",
                            digest, (long long)st.st_size, max_bytes);
    size_t want = (size_t)st.st_size;
    cleanup_free char *buf = gy_xmalloc(want + 1);
    size_t got = 0;
    /* Read one byte past the size seen, to notice a file that changed under us. */
    while (got < want + 1) {
        ssize_t n = read(fd, buf + got, want + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return gy_error_sys(err, errno, "read blob %s: read %s", digest, path);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    char actual[OCI_DIGEST_BUF];
    sha256_mem(buf, got, actual);
    if (got != want || strcmp(actual, digest) != 0) {
        unlink(path);
        return gy_error_set(err, GY_EIO,
                            "blob %s: the stored file hashes to %s; the store is damaged, so the "
                            "blob was removed and must be pulled again",
                            digest, actual);
    }
    buf[got] = '\0';
    *len = got;
    *out = gy_steal_ptr(&buf);
    return 0;
}

/* ======================================================================================
 * Image config
 * ====================================================================================== */

static int cfg_string(json_t *v, const char *field, bool required, char **out, struct gy_error *err)
{
    if (v == NULL || json_is_null(v)) {
        if (required)
            return gy_error_set(err, GY_EPARSE, "image config: %s is required", field);
        return 0;
    }
    if (!json_is_string(v))
        return gy_error_set(err, GY_EPARSE, "image config: %s: expected a string", field);
    if (json_string_length(v) > OCI_CONFIG_STRING_MAX)
        return gy_error_set(err, GY_ETOOBIG,
                            "image config: %s: %zu bytes, more than the %d allowed", field,
                            json_string_length(v), OCI_CONFIG_STRING_MAX);
    *out = gy_xstrdup(json_string_value(v));
    return 0;
}

static int cfg_strings(json_t *v, const char *field, char ***out, size_t *n, struct gy_error *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return gy_error_set(err, GY_EPARSE, "image config: %s: expected an array of strings",
                            field);
    if (json_array_size(v) > OCI_CONFIG_ITEMS_MAX)
        return gy_error_set(err, GY_ETOOBIG,
                            "image config: %s: %zu items, more than the %d "
                            "allowed",
                            field, json_array_size(v), OCI_CONFIG_ITEMS_MAX);
    *out = gy_xcalloc(json_array_size(v) + 1, sizeof(**out));
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        char name[64];
        snprintf(name, sizeof(name), "%s[%zu]", field, i);
        int rc = cfg_string(item, name, true, &(*out)[i], err);
        if (rc < 0)
            return rc;
        (*n)++;
    }
    return 0;
}

static int signal_parse(const char *s);

int oci_signal_parse(const char *s)
{
    return s != NULL ? signal_parse(s) : -1;
}

/* Signal names as Docker's StopSignal takes them ("SIGTERM", "TERM", "15", "SIGRTMIN+3");
 * returns the number or -1. */
static int signal_parse(const char *s)
{
    static const struct {
        const char *name;
        int signo;
    } names[] = {
        {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
        {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
        {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
        {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
        {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
        {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
        {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
        {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
        {"SYS", SIGSYS},
    };
    if (s[0] >= '0' && s[0] <= '9') {
        char *end;
        long v = strtol(s, &end, 10);
        return *end == '\0' && v >= 1 && v <= SIGRTMAX ? (int)v : -1;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].signo;
    bool plus = strncasecmp(s, "RTMIN+", 6) == 0, minus = strncasecmp(s, "RTMAX-", 6) == 0;
    if (strcasecmp(s, "RTMIN") == 0)
        return SIGRTMIN;
    if (strcasecmp(s, "RTMAX") == 0)
        return SIGRTMAX;
    if (plus || minus) {
        char *end;
        long v = strtol(s + 6, &end, 10);
        if (*end != '\0' || s[6] < '0' || s[6] > '9' || v > SIGRTMAX - SIGRTMIN)
            return -1;
        return plus ? SIGRTMIN + (int)v : SIGRTMAX - (int)v;
    }
    return -1;
}

static int annotation_cmp(const void *a, const void *b)
{
    return strcmp(((const struct oci_annotation *)a)->key, ((const struct oci_annotation *)b)->key);
}

static int cfg_labels(json_t *v, struct oci_config *cfg, struct gy_error *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return gy_error_set(err, GY_EPARSE, "image config: config.Labels: expected an object");
    if (json_object_size(v) > OCI_CONFIG_ITEMS_MAX)
        return gy_error_set(err, GY_ETOOBIG,
                            "image config: config.Labels: %zu labels, more "
                            "than the %d allowed",
                            json_object_size(v), OCI_CONFIG_ITEMS_MAX);
    cfg->labels = gy_xcalloc(json_object_size(v) + 1, sizeof(*cfg->labels));
    const char *key;
    json_t *value;
    json_object_foreach(v, key, value)
    {
        char field[128], buf[96];
        snprintf(field, sizeof(field), "config.Labels[\"%s\"]", shown(key, buf));
        if (strlen(key) > OCI_CONFIG_STRING_MAX)
            return gy_error_set(err, GY_ETOOBIG, "image config: %s: key too long", field);
        struct oci_annotation *l = &cfg->labels[cfg->n_labels];
        int rc = cfg_string(value, field, true, &l->value, err);
        if (rc < 0)
            return rc;
        l->key = gy_xstrdup(key);
        cfg->n_labels++;
    }
    qsort(cfg->labels, cfg->n_labels, sizeof(*cfg->labels), annotation_cmp);
    return 0;
}

static int cfg_ports(json_t *v, struct oci_config *cfg, struct gy_error *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return gy_error_set(err, GY_EPARSE,
                            "image config: config.ExposedPorts: expected an object");
    if (json_object_size(v) > OCI_CONFIG_ITEMS_MAX)
        return gy_error_set(err, GY_ETOOBIG,
                            "image config: config.ExposedPorts: %zu ports, "
                            "more than the %d allowed",
                            json_object_size(v), OCI_CONFIG_ITEMS_MAX);
    cfg->exposed_ports = gy_xcalloc(json_object_size(v) + 1, sizeof(*cfg->exposed_ports));
    const char *key;
    json_t *value;
    json_object_foreach(v, key, value)
    {
        (void)value; /* always {} in practice; nothing in it is defined */
        char buf[96];
        char *end;
        errno = 0;
        long port = key[0] >= '0' && key[0] <= '9' ? strtol(key, &end, 10) : -1;
        const char *proto = port > 0 && *end == '/' ? end + 1 : "tcp";
        bool ok = port >= 1 && port <= 65535 && errno == 0 && (*end == '\0' || *end == '/') &&
                  (strcasecmp(proto, "tcp") == 0 || strcasecmp(proto, "udp") == 0 ||
                   strcasecmp(proto, "sctp") == 0);
        if (!ok)
            return gy_error_set(err, GY_EPARSE,
                                "image config: config.ExposedPorts: \"%s\" is not PORT or "
                                "PORT/tcp, PORT/udp, PORT/sctp",
                                shown(key, buf));
        struct oci_port *p = &cfg->exposed_ports[cfg->n_exposed_ports++];
        p->port = (uint16_t)port;
        for (size_t i = 0; proto[i] != '\0' && i < sizeof(p->protocol) - 1; i++)
            p->protocol[i] = (char)tolower((unsigned char)proto[i]);
    }
    return 0;
}

static int cfg_rootfs(json_t *v, struct oci_config *cfg, struct gy_error *err)
{
    if (v == NULL || json_is_null(v))
        return gy_error_set(err, GY_EPARSE, "image config: rootfs is required");
    if (!json_is_object(v))
        return gy_error_set(err, GY_EPARSE, "image config: rootfs: expected an object");
    json_t *type = json_object_get(v, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "layers") != 0)
        return gy_error_set(err, GY_EPARSE, "image config: rootfs.type must be \"layers\"");
    json_t *ids = json_object_get(v, "diff_ids");
    if (!json_is_array(ids))
        return gy_error_set(err, GY_EPARSE,
                            "image config: rootfs.diff_ids: expected an array of digests");
    if (json_array_size(ids) > OCI_IMAGE_LAYERS_MAX)
        return gy_error_set(err, GY_ETOOBIG,
                            "image config: rootfs.diff_ids: %zu layers, more than the %d "
                            "allowed",
                            json_array_size(ids), OCI_IMAGE_LAYERS_MAX);
    cfg->diff_ids = gy_xcalloc(json_array_size(ids) + 1, sizeof(*cfg->diff_ids));
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        const char *s = json_string_value(id);
        char buf[96];
        if (oci_digest_check(s, NULL) < 0)
            return gy_error_set(err, GY_EPARSE,
                                "image config: rootfs.diff_ids[%zu]: \"%s\" is not a sha256 "
                                "digest",
                                i, s != NULL ? shown(s, buf) : "(not a string)");
        memcpy(cfg->diff_ids[cfg->n_diff_ids++], s, OCI_DIGEST_BUF);
    }
    return 0;
}

int oci_config_parse(const char *json, size_t len, struct oci_config *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    if (len > OCI_CONFIG_MAX_BYTES)
        return gy_error_set(err, GY_ETOOBIG, "image config: %zu bytes, more than the %u allowed",
                            len, OCI_CONFIG_MAX_BYTES);
    json_error_t jerr;
    /* Duplicate keys are refused: two readers must never see two different configs. */
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gy_error_set(err, GY_EPARSE, "image config: %s (line %d, column %d)", jerr.text,
                            jerr.line, jerr.column);
    int rc;
    if (!json_is_object(doc)) {
        rc = gy_error_set(err, GY_EPARSE, "image config: expected a JSON object");
        goto out;
    }
    if ((rc = cfg_string(json_object_get(doc, "os"), "os", true, &out->os, err)) < 0 ||
        (rc = cfg_string(json_object_get(doc, "architecture"), "architecture", true,
                         &out->architecture, err)) < 0 ||
        (rc = cfg_string(json_object_get(doc, "variant"), "variant", false, &out->variant, err)) <
            0 ||
        (rc = cfg_rootfs(json_object_get(doc, "rootfs"), out, err)) < 0)
        goto out;
    json_t *c = json_object_get(doc, "config");
    if (c != NULL && !json_is_null(c)) {
        if (!json_is_object(c)) {
            rc = gy_error_set(err, GY_EPARSE, "image config: config: expected an object");
            goto out;
        }
        if ((rc = cfg_strings(json_object_get(c, "Entrypoint"), "config.Entrypoint",
                              &out->entrypoint, &out->n_entrypoint, err)) < 0 ||
            (rc = cfg_strings(json_object_get(c, "Cmd"), "config.Cmd", &out->cmd, &out->n_cmd,
                              err)) < 0 ||
            (rc = cfg_strings(json_object_get(c, "Env"), "config.Env", &out->env, &out->n_env,
                              err)) < 0 ||
            (rc = cfg_string(json_object_get(c, "WorkingDir"), "config.WorkingDir", false,
                             &out->working_dir, err)) < 0 ||
            (rc = cfg_string(json_object_get(c, "User"), "config.User", false, &out->user, err)) <
                0 ||
            (rc = cfg_string(json_object_get(c, "StopSignal"), "config.StopSignal", false,
                             &out->stop_signal, err)) < 0 ||
            (rc = cfg_ports(json_object_get(c, "ExposedPorts"), out, err)) < 0 ||
            (rc = cfg_labels(json_object_get(c, "Labels"), out, err)) < 0)
            goto out;
        for (size_t i = 0; i < out->n_env; i++) {
            const char *eq = strchr(out->env[i], '=');
            if (eq == NULL || eq == out->env[i]) {
                char buf[96];
                rc = gy_error_set(err, GY_EPARSE,
                                  "image config: config.Env[%zu]: \"%s\" is not KEY=VALUE", i,
                                  shown(out->env[i], buf));
                goto out;
            }
        }
        if (out->stop_signal != NULL && out->stop_signal[0] != '\0' &&
            (out->stop_signo = signal_parse(out->stop_signal)) < 0) {
            char buf[96];
            rc = gy_error_set(err, GY_EPARSE,
                              "image config: config.StopSignal: \"%s\" is not a signal",
                              shown(out->stop_signal, buf));
            goto out;
        }
        if (out->stop_signo < 0)
            out->stop_signo = 0;
    }
    rc = 0;
out:
    json_decref(doc);
    if (rc < 0)
        oci_config_free(out);
    return rc;
}

void oci_config_free(struct oci_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->os);
    free(cfg->architecture);
    free(cfg->variant);
    oci_strv_free(cfg->entrypoint, cfg->n_entrypoint);
    oci_strv_free(cfg->cmd, cfg->n_cmd);
    oci_strv_free(cfg->env, cfg->n_env);
    free(cfg->working_dir);
    free(cfg->user);
    free(cfg->stop_signal);
    free(cfg->exposed_ports);
    for (size_t i = 0; i < cfg->n_labels; i++) {
        free(cfg->labels[i].key);
        free(cfg->labels[i].value);
    }
    free(cfg->labels);
    free(cfg->diff_ids);
    memset(cfg, 0, sizeof(*cfg));
}

/* ======================================================================================
 * Images
 * ====================================================================================== */

int oci_image_name_check(const char *name, struct gy_error *err)
{
    char buf[96];
    size_t len = name != NULL ? strnlen(name, OCI_IMAGE_NAME_MAX + 1) : 0;
    if (len == 0 || len > OCI_IMAGE_NAME_MAX)
        return gy_error_set(err, GY_EINVAL, "image name \"%s\": must be 1 to %d characters",
                            shown(name != NULL ? name : "", buf), OCI_IMAGE_NAME_MAX);
    if (!isalnum((unsigned char)name[0]))
        return gy_error_set(err, GY_EINVAL, "image name \"%s\": must start with a letter or digit",
                            shown(name, buf));
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!isalnum((unsigned char)c) && strchr("._:/@+-", c) == NULL)
            return gy_error_set(err, GY_EINVAL,
                                "image name \"%s\": character %zu is not allowed (use letters, "
                                "digits and . _ : / @ + -)",
                                shown(name, buf), i + 1);
    }
    return 0;
}

static void record_path(const struct oci_store *store, const char *name, char *buf, size_t len)
{
    char hash[OCI_DIGEST_BUF];
    sha256_mem(name, strlen(name), hash);
    path_fmt(buf, len, "%s/images/%s.json", store->root, hash + 7);
}

void oci_image_free(struct oci_image *image)
{
    if (image == NULL)
        return;
    free(image->name);
    free(image->layers);
    free(image->diff_ids);
    for (size_t i = 0; i < image->n_annotations; i++) {
        free(image->annotations[i].key);
        free(image->annotations[i].value);
    }
    free(image->annotations);
    memset(image, 0, sizeof(*image));
}

void oci_image_list_free(struct oci_image *images, size_t n)
{
    for (size_t i = 0; images != NULL && i < n; i++)
        oci_image_free(&images[i]);
    free(images);
}

static int record_digests(json_t *arr, const char *field, size_t n_expected,
                          char (**out)[OCI_DIGEST_BUF], struct gy_error *err)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > OCI_IMAGE_LAYERS_MAX ||
        (n_expected != 0 && json_array_size(arr) != n_expected))
        return gy_error_set(err, GY_EIO, "\"%s\" is not a list of 1 to %d digests", field,
                            OCI_IMAGE_LAYERS_MAX);
    *out = gy_xcalloc(json_array_size(arr), sizeof(**out));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (oci_digest_check(json_string_value(v), NULL) < 0)
            return gy_error_set(err, GY_EIO, "\"%s\"[%zu] is not a digest", field, i);
        memcpy((*out)[i], json_string_value(v), OCI_DIGEST_BUF);
    }
    return 0;
}

/* Reads and validates one record file; a damaged file gives GY_EIO. */
static int record_load(const char *path, struct oci_image *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? gy_error_set(err, GY_ENOTFOUND, "no image record %s", path)
                               : gy_error_sys(err, errno, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return gy_error_sys(err, errno, "stat %s", path);
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)OCI_MANIFEST_MAX_BYTES)
        return gy_error_set(err, GY_EIO,
                            "image record %s: not a regular file of at most %u "
                            "bytes",
                            path, OCI_MANIFEST_MAX_BYTES);
    /* Read whole and parsed from memory: jansson's json_loadfd reads a byte per call. */
    cleanup_free char *text = gy_xmalloc((size_t)st.st_size + 1);
    ssize_t got = gy_read_full(fd, text, (size_t)st.st_size);
    if (got < 0)
        return gy_error_sys(err, errno, "read %s", path);
    json_error_t jerr;
    json_t *doc = json_loadb(text, (size_t)got, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gy_error_set(err, GY_EIO, "image record %s: %s (line %d)", path, jerr.text,
                            jerr.line);
    int rc = 0;
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *manifest = json_string_value(json_object_get(doc, "manifest"));
    const char *config = json_string_value(json_object_get(doc, "config"));
    json_t *annotations = json_object_get(doc, "annotations");
    if (oci_image_name_check(name, NULL) < 0 || oci_digest_check(manifest, NULL) < 0 ||
        oci_digest_check(config, NULL) < 0 ||
        !json_is_integer(json_object_get(doc, "created_ms")) ||
        (annotations != NULL && !json_is_object(annotations))) {
        rc = gy_error_set(err, GY_EIO, "image record %s: missing or invalid fields", path);
        goto out;
    }
    out->name = gy_xstrdup(name);
    memcpy(out->manifest_digest, manifest, OCI_DIGEST_BUF);
    memcpy(out->config_digest, config, OCI_DIGEST_BUF);
    out->created_ms = json_integer_value(json_object_get(doc, "created_ms"));
    out->last_used_ms = mtime_ms(&st);
    json_t *layers = json_object_get(doc, "layers");
    if ((rc = record_digests(layers, "layers", 0, &out->layers, err)) < 0 ||
        (rc = record_digests(json_object_get(doc, "diff_ids"), "diff_ids", json_array_size(layers),
                             &out->diff_ids, err)) < 0) {
        gy_error_wrap(err, "image record %s", path);
        goto out;
    }
    out->n_layers = json_array_size(layers);
    if (annotations != NULL) {
        out->annotations = gy_xcalloc(json_object_size(annotations) + 1, sizeof(*out->annotations));
        const char *key;
        json_t *value;
        json_object_foreach(annotations, key, value)
        {
            if (!json_is_string(value)) {
                rc = gy_error_set(err, GY_EIO, "image record %s: annotation is not a string", path);
                goto out;
            }
            out->annotations[out->n_annotations].key = gy_xstrdup(key);
            out->annotations[out->n_annotations++].value = gy_xstrdup(json_string_value(value));
        }
        qsort(out->annotations, out->n_annotations, sizeof(*out->annotations), annotation_cmp);
    }
out:
    json_decref(doc);
    if (rc < 0)
        oci_image_free(out);
    return rc;
}

/* Writes text to final through a temporary file in the same directory, durable before the
 * rename, with its mtime set to mtime. */
static int write_atomic(const char *final, const char *text, int64_t mtime, struct gy_error *err)
{
    char tmp[PATH_MAX];
    if (!path_fmt(tmp, sizeof(tmp), "%s.tmp-XXXXXX", final))
        return gy_error_set(err, GY_EINVAL, "path too long: %s", final);
    cleanup_close int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "create %s", tmp);
    size_t len = strlen(text);
    int rc = 0;
    for (size_t done = 0; done < len && rc == 0;) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno != EINTR)
            rc = gy_error_sys(err, errno, "write %s", tmp);
        else if (n > 0)
            done += (size_t)n;
    }
    struct timespec ts = ms_to_timespec(mtime);
    struct timespec times[2] = {ts, ts};
    if (rc == 0 && (fchmod(fd, 0600) < 0 || fsync(fd) < 0 || futimens(fd, times) < 0))
        rc = gy_error_sys(err, errno, "write %s", tmp);
    if (rc == 0 && rename(tmp, final) < 0)
        rc = gy_error_sys(err, errno, "rename %s to %s", tmp, final);
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", final);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        fsync_dir(dir);
    }
    return 0;
}

static int image_put_check(const struct oci_store *store, const char *name,
                           const char *manifest_digest, const char *config_digest,
                           const char *const *layers, size_t n_layers,
                           const struct oci_annotation *annotations, size_t n_annotations,
                           struct gy_error *err)
{
    int rc;
    if ((rc = oci_image_name_check(name, err)) < 0)
        return rc;
    if ((rc = oci_digest_check(manifest_digest, err)) < 0)
        return gy_error_wrap(err, "manifest");
    if ((rc = oci_digest_check(config_digest, err)) < 0)
        return gy_error_wrap(err, "config");
    if (n_layers == 0 || n_layers > OCI_IMAGE_LAYERS_MAX)
        return gy_error_set(err, GY_EINVAL, "%zu layers: an image has 1 to %d", n_layers,
                            OCI_IMAGE_LAYERS_MAX);
    for (size_t i = 0; i < n_layers; i++)
        if ((rc = oci_digest_check(layers[i], err)) < 0)
            return gy_error_wrap(err, "layer %zu", i);
    if (n_annotations > OCI_ANNOTATIONS_MAX)
        return gy_error_set(err, GY_ETOOBIG, "%zu annotations, more than the %d allowed",
                            n_annotations, OCI_ANNOTATIONS_MAX);
    for (size_t i = 0; i < n_annotations; i++) {
        const struct oci_annotation *a = &annotations[i];
        if (a->key == NULL || a->key[0] == '\0' || strlen(a->key) > OCI_ANNOTATION_KEY_MAX ||
            a->value == NULL || strlen(a->value) > OCI_ANNOTATION_VALUE_MAX)
            return gy_error_set(err, GY_EINVAL,
                                "annotation %zu: key must be 1 to %d bytes and value at most %d", i,
                                OCI_ANNOTATION_KEY_MAX, OCI_ANNOTATION_VALUE_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(annotations[j].key, a->key) == 0)
                return gy_error_set(err, GY_EINVAL, "annotation \"%s\" is given twice", a->key);
    }
    const char *what[] = {"manifest", "config"};
    const char *digests[] = {manifest_digest, config_digest};
    for (size_t i = 0; i < 2; i++)
        if (!oci_store_blob_has(store, digests[i]))
            return gy_error_set(err, GY_ENOTFOUND, "%s blob %s is not in the store", what[i],
                                digests[i]);
    for (size_t i = 0; i < n_layers; i++)
        if (!oci_store_blob_has(store, layers[i]))
            return gy_error_set(err, GY_ENOTFOUND, "layer %zu blob %s is not in the store", i,
                                layers[i]);
    return 0;
}

int oci_image_put(struct oci_store *store, const char *name, const char *manifest_digest,
                  const char *config_digest, const char *const *layers, size_t n_layers,
                  const struct oci_annotation *annotations, size_t n_annotations,
                  struct gy_error *err)
{
    char shown_name[96];
    shown(name, shown_name);
    cleanup_close int lock = oci_store_lock(store, false, err);
    if (lock < 0)
        return gy_error_wrap(err, "record image \"%s\"", shown_name);
    int rc = image_put_check(store, name, manifest_digest, config_digest, layers, n_layers,
                             annotations, n_annotations, err);
    if (rc < 0)
        return gy_error_wrap(err, "record image \"%s\"", shown_name);
    cleanup_free char *text = NULL;
    size_t len;
    if ((rc = oci_store_blob_read_small(store, config_digest, OCI_CONFIG_MAX_BYTES, &text, &len,
                                        err)) < 0)
        return gy_error_wrap(err, "record image \"%s\"", name);
    struct oci_config cfg;
    if ((rc = oci_config_parse(text, len, &cfg, err)) < 0)
        return gy_error_wrap(err, "record image \"%s\": config %s", name, config_digest);
    if (cfg.n_diff_ids != n_layers) {
        rc = gy_error_set(err, GY_EINVAL,
                          "record image \"%s\": the manifest has %zu layers but the config %s "
                          "lists %zu diff_ids",
                          name, n_layers, config_digest, cfg.n_diff_ids);
        oci_config_free(&cfg);
        return rc;
    }
    int64_t now = oci_store_now_ms(store);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I}", "name", name, "manifest", manifest_digest,
                            "config", config_digest, "created_ms", (json_int_t)now);
    json_t *jl = json_array(), *jd = json_array(), *ja = json_object();
    for (size_t i = 0; i < n_layers; i++) {
        json_array_append_new(jl, json_string(layers[i]));
        json_array_append_new(jd, json_string(cfg.diff_ids[i]));
    }
    for (size_t i = 0; i < n_annotations; i++)
        json_object_set_new(ja, annotations[i].key, json_string(annotations[i].value));
    json_object_set_new(doc, "layers", jl);
    json_object_set_new(doc, "diff_ids", jd);
    json_object_set_new(doc, "annotations", ja);
    oci_config_free(&cfg);
    char *out = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    if (out == NULL)
        return gy_error_set(err, GY_EINVAL, "record image \"%s\": an annotation is not valid UTF-8",
                            name);
    char path[PATH_MAX];
    record_path(store, name, path, sizeof(path));
    rc = write_atomic(path, out, now, err);
    free(out);
    if (rc < 0)
        return gy_error_wrap(err, "record image \"%s\"", name);
    return 0;
}

int oci_image_get(const struct oci_store *store, const char *name, struct oci_image *out,
                  struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    int rc = oci_image_name_check(name, err);
    if (rc < 0)
        return rc;
    char path[PATH_MAX];
    record_path(store, name, path, sizeof(path));
    if ((rc = record_load(path, out, err)) < 0) {
        if (rc == -GY_ENOTFOUND)
            return gy_error_set(err, GY_ENOTFOUND, "image \"%s\" is not in the store", name);
        return gy_error_wrap(err, "image \"%s\"", name);
    }
    if (strcmp(out->name, name) != 0) {
        oci_image_free(out);
        return gy_error_set(err, GY_EIO, "image \"%s\": record %s names another image", name, path);
    }
    return 0;
}

static int image_cmp(const void *a, const void *b)
{
    return strcmp(((const struct oci_image *)a)->name, ((const struct oci_image *)b)->name);
}

int oci_image_list(const struct oci_store *store, struct oci_image **out, size_t *n,
                   struct gy_error *err)
{
    *out = NULL;
    *n = 0;
    char dir[PATH_MAX];
    if (!path_fmt(dir, sizeof(dir), "%s/images", store->root))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", store->root);
    cleanup_closedir DIR *d = opendir(dir);
    if (d == NULL)
        return gy_error_sys(err, errno, "list images: open %s", dir);
    struct oci_image *list = NULL;
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strlen(de->d_name) != 64 + 5 || strcmp(de->d_name + 64, ".json") != 0)
            continue;
        char path[PATH_MAX];
        if (!path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name))
            continue;
        struct oci_image img;
        struct gy_error lerr;
        if (record_load(path, &img, &lerr) < 0) {
            if (lerr.code != GY_ENOTFOUND)
                gy_log_warn("damaged image record skipped", "error=\"%s\"", lerr.msg);
            continue;
        }
        list = gy_xrealloc(list, (count + 1) * sizeof(*list));
        list[count++] = img;
    }
    if (count > 0)
        qsort(list, count, sizeof(*list), image_cmp);
    *out = list;
    *n = count;
    return 0;
}

int oci_image_remove(struct oci_store *store, const char *name, struct gy_error *err)
{
    int rc = oci_image_name_check(name, err);
    if (rc < 0)
        return gy_error_wrap(err, "remove image");
    char path[PATH_MAX];
    record_path(store, name, path, sizeof(path));
    if (unlink(path) < 0) {
        if (errno == ENOENT)
            return gy_error_set(err, GY_ENOTFOUND, "image \"%s\" is not in the store", name);
        return gy_error_sys(err, errno, "remove image \"%s\": unlink %s", name, path);
    }
    return 0;
}

int oci_image_lowerdirs(struct oci_store *store, const char *name, char ***dirs, size_t *n,
                        struct gy_error *err)
{
    *dirs = NULL;
    *n = 0;
    cleanup_close int lock = oci_store_lock(store, false, err);
    if (lock < 0)
        return gy_error_wrap(err, "image \"%s\"", name);
    struct oci_image img;
    int rc = oci_image_get(store, name, &img, err);
    if (rc < 0)
        return rc;
    char **list = gy_xcalloc(img.n_layers, sizeof(*list));
    size_t count = 0;
    for (size_t i = 0; i < img.n_layers; i++) {
        /* overlayfs refuses a directory given twice; a layer repeated in an image (the
         * empty layer often is) counts once, at its topmost place, which shows the same
         * tree: whatever the lower copy adds, the upper copy adds again above it. */
        bool again = false;
        for (size_t j = i + 1; j < img.n_layers && !again; j++)
            again = strcmp(img.layers[i], img.layers[j]) == 0;
        if (again)
            continue;
        if ((rc = oci_layer_unpack(store, img.layers[i], img.diff_ids[i], &list[count], err)) < 0) {
            gy_error_wrap(err, "image \"%s\": layer %zu", name, i);
            oci_strv_free(list, count);
            oci_image_free(&img);
            return rc;
        }
        count++;
    }
    oci_image_free(&img);
    char path[PATH_MAX];
    record_path(store, name, path, sizeof(path));
    struct timespec ts = ms_to_timespec(oci_store_now_ms(store));
    struct timespec times[2] = {ts, ts};
    if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) < 0)
        gy_log_warn("cannot mark image used", "image=\"%s\" error=\"%s\"", name, strerror(errno));
    *dirs = list;
    *n = count;
    return 0;
}

/* ======================================================================================
 * Overlay mounts
 * ====================================================================================== */

/* Undoes mountinfo's octal escapes (\040 for a space, \072 for ':', \054 for ',') in
 * place. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (char *r = s; *r != '\0'; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Adds the directories of one mountinfo line when it is an overlay mount. Separators in
 * the super options are raw ',' and ':'; the same characters inside paths are escaped in
 * octal, so the options are split first and the pieces unescaped after. */
static void mountinfo_line(char *line, struct oci_overlay_mounts *out)
{
    char *sep = strstr(line, " - ");
    if (sep == NULL)
        return;
    char *rest = sep + 3;
    char *fstype = strsep(&rest, " ");
    strsep(&rest, " "); /* the source */
    if (fstype == NULL || rest == NULL || strcmp(fstype, "overlay") != 0)
        return;
    rest[strcspn(rest, "\n")] = '\0';
    for (char *opt; (opt = strsep(&rest, ",")) != NULL;) {
        char *value = strchr(opt, '=');
        if (value == NULL)
            continue;
        *value++ = '\0';
        if (strcmp(opt, "lowerdir") != 0 && strcmp(opt, "lowerdir+") != 0 &&
            strcmp(opt, "upperdir") != 0 && strcmp(opt, "workdir") != 0 &&
            strcmp(opt, "datadir+") != 0)
            continue;
        for (char *dir; (dir = strsep(&value, ":")) != NULL;) {
            if (dir[0] == '\0')
                continue; /* "::" separates data-only layers */
            unescape_octal(dir);
            strv_push(&out->dirs, &out->n, dir);
        }
    }
}

static int mountinfo_read(const char *path, struct oci_overlay_mounts *out)
{
    cleanup_fclose FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0)
        mountinfo_line(line, out);
    free(line);
    return 0;
}

int oci_overlay_mounts_read(struct oci_overlay_mounts *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    struct stat self_ns;
    if (mountinfo_read("/proc/self/mountinfo", out) < 0)
        return gy_error_sys(err, errno, "read /proc/self/mountinfo");
    ino_t *seen = NULL;
    size_t n_seen = 0;
    if (stat("/proc/self/ns/mnt", &self_ns) == 0) {
        seen = gy_xrealloc(seen, sizeof(*seen));
        seen[n_seen++] = self_ns.st_ino;
    }
    /* Containers mount their root in their own mount namespace: read one process's
     * mountinfo per namespace. Processes that exit meanwhile are skipped. */
    cleanup_closedir DIR *proc = opendir("/proc");
    struct dirent *de;
    while (proc != NULL && (de = readdir(proc)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[64];
        struct stat ns;
        snprintf(path, sizeof(path), "/proc/%.20s/ns/mnt", de->d_name);
        if (stat(path, &ns) < 0)
            continue;
        bool known = false;
        for (size_t i = 0; i < n_seen && !known; i++)
            known = seen[i] == ns.st_ino;
        if (known)
            continue;
        seen = gy_xrealloc(seen, (n_seen + 1) * sizeof(*seen));
        seen[n_seen++] = ns.st_ino;
        snprintf(path, sizeof(path), "/proc/%.20s/mountinfo", de->d_name);
        mountinfo_read(path, out);
    }
    free(seen);
    return 0;
}

bool oci_overlay_mounts_use(const struct oci_overlay_mounts *mounts, const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    for (size_t i = 0; i < mounts->n; i++) {
        const char *d = mounts->dirs[i];
        if (strncmp(d, dir, len) == 0 && (d[len] == '\0' || d[len] == '/'))
            return true;
    }
    return false;
}

void oci_overlay_mounts_free(struct oci_overlay_mounts *mounts)
{
    oci_strv_free(mounts->dirs, mounts->n);
    memset(mounts, 0, sizeof(*mounts));
}

/* ======================================================================================
 * Garbage collection
 * ====================================================================================== */

/* A sorted set of digests. */
struct digest_set {
    char (*d)[OCI_DIGEST_BUF];
    size_t n;
};

static int digest_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void digest_set_add(struct digest_set *s, const char *digest)
{
    s->d = gy_xrealloc(s->d, (s->n + 1) * sizeof(*s->d));
    memcpy(s->d[s->n++], digest, OCI_DIGEST_BUF);
}

static bool digest_set_has(const struct digest_set *s, const char *digest)
{
    return s->n > 0 && bsearch(digest, s->d, s->n, sizeof(*s->d), digest_cmp) != NULL;
}

/* The blobs and the layers that the images not marked gone reference. */
static void refs_build(const struct oci_image *images, const bool *gone, size_t n,
                       struct digest_set *blobs, struct digest_set *layers)
{
    blobs->n = 0;
    layers->n = 0;
    for (size_t i = 0; i < n; i++) {
        if (gone[i])
            continue;
        digest_set_add(blobs, images[i].manifest_digest);
        digest_set_add(blobs, images[i].config_digest);
        for (size_t j = 0; j < images[i].n_layers; j++) {
            digest_set_add(blobs, images[i].layers[j]);
            digest_set_add(layers, images[i].layers[j]);
        }
    }
    if (blobs->n > 0)
        qsort(blobs->d, blobs->n, sizeof(*blobs->d), digest_cmp);
    if (layers->n > 0)
        qsort(layers->d, layers->n, sizeof(*layers->d), digest_cmp);
}

struct gc {
    struct oci_store *store;
    struct oci_overlay_mounts mounts;
    struct oci_gc_report *rep;
    int64_t now;
    int64_t total;
};

/* Removes a blob; returns its size, 0 when it was already gone. */
static int64_t gc_blob_remove(struct gc *gc, const char *digest)
{
    char path[PATH_MAX];
    struct stat st;
    if (oci_store_blob_path(gc->store, digest, path, sizeof(path), NULL) < 0 ||
        lstat(path, &st) < 0 || unlink(path) < 0)
        return 0;
    strv_push(&gc->rep->blobs, &gc->rep->n_blobs, digest);
    gc->rep->bytes_freed += st.st_size;
    return st.st_size;
}

/* Removes an unpacked layer unless a mount or an unpack uses it; returns its size, 0 when
 * it was kept or gone. */
static int64_t gc_layer_remove(struct gc *gc, const char *digest)
{
    struct oci_layer_info info;
    struct gy_error err;
    int64_t size = oci_layer_info(gc->store, digest, &info, &err) == 0 ? info.size_bytes : 0;
    int rc = oci_layer_remove(gc->store, digest, &gc->mounts, &err);
    if (rc == -GY_ENOTFOUND)
        return 0;
    if (rc < 0) {
        if (rc != -GY_ECONFLICT)
            gy_log_warn("cannot remove layer", "layer=%s error=\"%s\"", digest, err.msg);
        return 0;
    }
    strv_push(&gc->rep->layers, &gc->rep->n_layers, digest);
    gc->rep->bytes_freed += size;
    return size;
}

/* Removes abandoned downloads, temporary files and lock files that nobody holds. */
static void gc_ingest(struct gc *gc)
{
    char dir[PATH_MAX];
    path_fmt(dir, sizeof(dir), "%s/ingest", gc->store->root);
    cleanup_closedir DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        char path[PATH_MAX], lock[PATH_MAX];
        struct stat st;
        if (strlen(de->d_name) < 64 || de->d_name[0] == '.' ||
            !path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) || lstat(path, &st) < 0 ||
            gc->now - mtime_ms(&st) < OCI_STORE_INGEST_STALE_MS ||
            !path_fmt(lock, sizeof(lock), "%s/locks/blob-%.64s.lock", gc->store->root, de->d_name))
            continue;
        int fd = lock_file(lock, LOCK_EX | LOCK_NB, NULL);
        if (fd < 0)
            continue; /* a download is under way */
        if (unlink(path) == 0) {
            gc->rep->n_partials++;
            gc->rep->bytes_freed += st.st_size;
        }
        close(fd);
    }
    /* Temporary record files left by a crash between create and rename. */
    if (path_fmt(dir, sizeof(dir), "%s/images", gc->store->root)) {
        cleanup_closedir DIR *im = opendir(dir);
        while (im != NULL && (de = readdir(im)) != NULL) {
            char path[PATH_MAX];
            struct stat st;
            if (strstr(de->d_name, ".json.tmp-") != NULL &&
                path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) && lstat(path, &st) == 0 &&
                gc->now - mtime_ms(&st) >= OCI_STORE_INGEST_STALE_MS && unlink(path) == 0)
                gc->rep->n_partials++;
        }
    }
    if (!path_fmt(dir, sizeof(dir), "%s/locks", gc->store->root))
        return;
    cleanup_closedir DIR *l = opendir(dir);
    while (l != NULL && (de = readdir(l)) != NULL) {
        char path[PATH_MAX];
        if (de->d_name[0] == '.' || !path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name))
            continue;
        /* Unlinking a free lock file can at worst let two later workers overlap, which
         * the store tolerates (verified commits, unpack rename races). */
        int fd = lock_file(path, LOCK_EX | LOCK_NB, NULL);
        if (fd >= 0) {
            unlink(path);
            close(fd);
        }
    }
}

/* Phase 2: images the records reference no longer, and old enough. */
static int gc_unreferenced(struct gc *gc, const struct digest_set *blobs,
                           const struct digest_set *layers, struct gy_error *err)
{
    int64_t grace = gc->store->opts.gc_grace_ms;
    char dir[PATH_MAX];
    path_fmt(dir, sizeof(dir), "%s/blobs/sha256", gc->store->root);
    cleanup_closedir DIR *d = opendir(dir);
    if (d == NULL)
        return gy_error_sys(err, errno, "open %s", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char digest[OCI_DIGEST_BUF], path[PATH_MAX];
        struct stat st;
        if (!path_fmt(digest, sizeof(digest), "sha256:%s", de->d_name) ||
            oci_digest_check(digest, NULL) < 0 ||
            !path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name) || lstat(path, &st) < 0)
            continue;
        if (!digest_set_has(blobs, digest) && gc->now - mtime_ms(&st) >= grace)
            gc_blob_remove(gc, digest);
        else
            gc->total += st.st_size;
    }
    path_fmt(dir, sizeof(dir), "%s/layers", gc->store->root);
    cleanup_closedir DIR *ld = opendir(dir);
    if (ld == NULL)
        return gy_error_sys(err, errno, "open %s", dir);
    while ((de = readdir(ld)) != NULL) {
        char digest[OCI_DIGEST_BUF];
        if (!path_fmt(digest, sizeof(digest), "sha256:%s", de->d_name) ||
            oci_digest_check(digest, NULL) < 0)
            continue;
        struct oci_layer_info info;
        bool known = oci_layer_info(gc->store, digest, &info, NULL) == 0;
        int64_t size = known ? info.size_bytes : 0;
        /* A directory without its record is debris of a crash: no age protects it. */
        bool old = !known || gc->now - info.unpacked_ms >= grace;
        if (digest_set_has(layers, digest) || !old || gc_layer_remove(gc, digest) == 0)
            gc->total += size;
    }
    return 0;
}

static int lru_cmp(const void *a, const void *b)
{
    const struct oci_image *x = *(const struct oci_image *const *)a;
    const struct oci_image *y = *(const struct oci_image *const *)b;
    if (x->last_used_ms != y->last_used_ms)
        return x->last_used_ms < y->last_used_ms ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Phase 3: whole images, least recently used first, until the store fits the budget. */
static void gc_budget(struct gc *gc, struct oci_image *images, size_t n, int64_t budget,
                      oci_image_in_use_fn in_use, void *arg, struct digest_set *blobs,
                      struct digest_set *layers)
{
    struct oci_image **order = gy_xcalloc(n + 1, sizeof(*order));
    bool *gone = gy_xcalloc(n + 1, sizeof(*gone));
    for (size_t i = 0; i < n; i++)
        order[i] = &images[i];
    qsort(order, n, sizeof(*order), lru_cmp);
    for (size_t k = 0; k < n && gc->total > budget; k++) {
        struct oci_image *img = order[k];
        if (in_use != NULL && in_use(img, arg))
            continue;
        char path[PATH_MAX];
        record_path(gc->store, img->name, path, sizeof(path));
        if (unlink(path) < 0 && errno != ENOENT) {
            gy_log_warn("cannot remove image record", "image=\"%s\" error=\"%s\"", img->name,
                        strerror(errno));
            continue;
        }
        gone[img - images] = true;
        strv_push(&gc->rep->images, &gc->rep->n_images, img->name);
        refs_build(images, gone, n, blobs, layers);
        const char *own[] = {img->manifest_digest, img->config_digest};
        for (size_t i = 0; i < 2; i++)
            if (!digest_set_has(blobs, own[i]))
                gc->total -= gc_blob_remove(gc, own[i]);
        for (size_t i = 0; i < img->n_layers; i++) {
            if (digest_set_has(blobs, img->layers[i]))
                continue;
            gc->total -= gc_blob_remove(gc, img->layers[i]);
            gc->total -= gc_layer_remove(gc, img->layers[i]);
        }
    }
    free(gone);
    free(order);
}

int oci_store_gc(struct oci_store *store, int64_t budget_bytes, oci_image_in_use_fn in_use,
                 void *arg, struct oci_gc_report *report, struct gy_error *err)
{
    struct oci_gc_report rep = {0};
    struct gc gc = {.store = store, .rep = &rep};
    cleanup_close int lock = oci_store_lock(store, true, err);
    if (lock < 0)
        return gy_error_wrap(err, "collect image store");
    gc.now = oci_store_now_ms(store);
    int rc = oci_overlay_mounts_read(&gc.mounts, err);
    if (rc < 0)
        return gy_error_wrap(err, "collect image store: cannot tell which layers are mounted");
    struct oci_image *images = NULL;
    size_t n = 0;
    struct digest_set blobs = {0}, layers = {0};
    if ((rc = oci_image_list(store, &images, &n, err)) < 0)
        goto out;

    gc_ingest(&gc);
    struct gy_error terr;
    int cleaned = oci_layer_clean_tmp(store, &terr);
    if (cleaned < 0)
        gy_log_warn("cannot clean unpack directories", "error=\"%s\"", terr.msg);
    else
        rep.n_partials += (size_t)cleaned;

    bool *none = gy_xcalloc(n + 1, sizeof(*none));
    refs_build(images, none, n, &blobs, &layers);
    free(none);
    if ((rc = gc_unreferenced(&gc, &blobs, &layers, err)) < 0)
        goto out;
    if (budget_bytes >= 0 && gc.total > budget_bytes)
        gc_budget(&gc, images, n, budget_bytes, in_use, arg, &blobs, &layers);
    rep.bytes_total = gc.total;
    if (rep.n_images + rep.n_blobs + rep.n_layers + rep.n_partials > 0)
        gy_log_info("image store collected",
                    "images=%zu blobs=%zu layers=%zu partials=%zu freed_bytes=%lld "
                    "total_bytes=%lld",
                    rep.n_images, rep.n_blobs, rep.n_layers, rep.n_partials,
                    (long long)rep.bytes_freed, (long long)rep.bytes_total);
out:
    free(blobs.d);
    free(layers.d);
    oci_image_list_free(images, n);
    oci_overlay_mounts_free(&gc.mounts);
    if (rc < 0) {
        oci_gc_report_free(&rep);
        return gy_error_wrap(err, "collect image store");
    }
    if (report != NULL)
        *report = rep;
    else
        oci_gc_report_free(&rep);
    return 0;
}

void oci_gc_report_free(struct oci_gc_report *report)
{
    if (report == NULL)
        return;
    oci_strv_free(report->images, report->n_images);
    oci_strv_free(report->blobs, report->n_blobs);
    oci_strv_free(report->layers, report->n_layers);
    memset(report, 0, sizeof(*report));
}
