/* Loading images from OCI image layouts and docker save archives into the node's store;
 * see image_load.h and docs/images.md ("Air-gapped nodes: image load").
 *
 * A source is either a directory (an OCI layout, whose blobs are copied in on demand) or
 * an archive, read once from start to end because a compressed tar cannot seek: every
 * regular file is hashed while it is copied to a staging file in ROOT/ingest (or only
 * hashed, when the store already holds a blob of that name), and the small metadata files
 * (oci-layout, index.json, manifest.json) are kept in memory. Then the image is worked out
 * from the metadata, the files it needs are committed into the store
 * (oci_store_blob_commit hashes them again), manifests and configs are read back from the
 * store (bounded, verified), and staging files nothing used are removed. */
#include "agent/image_load.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"

#define COPY_CHUNK      (256u << 10)
#define LINK_HOPS_MAX   8 /* symlinks and hard links followed to reach one file */
#define INDEX_DEPTH_MAX 4 /* indexes nested in indexes */
#define NAME_BUF        (GY_IMAGE_REF_MAX + 32)

#define MEDIA_OCI_CONFIG    "application/vnd.oci.image.config.v1+json"
#define MEDIA_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define ANNOTATION_REF_NAME "org.opencontainers.image.ref.name"
#define ANNOTATION_CTR_NAME "io.containerd.image.name"

/* ======================================================================================
 * Paths inside an archive
 * ====================================================================================== */

/* A printable, shortened copy of a name from the archive for a message. */
static const char *shown(const char *s, char buf[96])
{
    size_t o = 0;
    for (; s != NULL && *s != '\0' && o < 80; s++)
        buf[o++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
    if (s != NULL && *s != '\0') {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* Appends component c (n bytes) to the clean path out of length *o; NULL or why not. */
static const char *path_push(char out[AGENT_LOAD_PATH_MAX + 1], size_t *o, const char *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
            return "control characters in a path are refused";
    if (*o + (*o > 0) + n > AGENT_LOAD_PATH_MAX)
        return "the path is too long";
    if (*o > 0)
        out[(*o)++] = '/';
    memcpy(out + *o, c, n);
    *o += n;
    out[*o] = '\0';
    return NULL;
}

/* Cleans a path as an archive names an entry: "./" and empty components are dropped
 * ("./blobs//sha256/X" is "blobs/sha256/X", "./" is ""). Returns NULL, or why the path
 * is refused: absolute paths and ".." components never name anything in an image. */
static const char *path_clean(const char *in, char out[AGENT_LOAD_PATH_MAX + 1])
{
    size_t o = 0;
    out[0] = '\0';
    if (in[0] == '/')
        return "absolute paths are refused";
    if (strlen(in) > AGENT_LOAD_PATH_MAX)
        return "the path is too long";
    for (const char *p = in; *p != '\0';) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return "\"..\" components are refused";
        const char *why = n == 0 || (n == 1 && p[0] == '.') ? NULL : path_push(out, &o, p, n);
        if (why != NULL)
            return why;
        p = *end != '\0' ? end + 1 : end;
    }
    return NULL;
}

/* The clean path a symlink at link_path (clean) to target points at, resolved like the
 * kernel would inside the archive's root; ".." may climb, but never above the root.
 * Returns NULL or why it is refused. */
static const char *link_resolve(const char *link_path, const char *target,
                                char out[AGENT_LOAD_PATH_MAX + 1])
{
    if (target[0] == '/')
        return "a symlink to an absolute path is refused";
    if (strlen(target) > AGENT_LOAD_PATH_MAX)
        return "the symlink's target is too long";
    const char *slash = strrchr(link_path, '/');
    size_t o = slash != NULL ? (size_t)(slash - link_path) : 0;
    memcpy(out, link_path, o);
    out[o] = '\0';
    for (const char *p = target; *p != '\0';) {
        const char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (o == 0)
                return "the symlink points outside the archive, refused";
            char *up = memrchr(out, '/', o);
            o = up != NULL ? (size_t)(up - out) : 0;
            out[o] = '\0';
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            const char *why = path_push(out, &o, p, n);
            if (why != NULL)
                return why;
        }
        p = *end != '\0' ? end + 1 : end;
    }
    return NULL;
}

/* True when path is "blobs/sha256/" and a valid hex digest; *digest is then "sha256:HEX". */
static bool path_is_blob(const char *path, char digest[OCI_DIGEST_BUF])
{
    if (strncmp(path, "blobs/sha256/", 13) != 0 || strlen(path + 13) != 64)
        return false;
    snprintf(digest, OCI_DIGEST_BUF, "sha256:%s", path + 13);
    return oci_digest_check(digest, NULL) == 0;
}

/* ======================================================================================
 * Copying with a hash
 * ====================================================================================== */

/* Where bytes come from: an archive's current entry, or a file. */
struct reader {
    struct archive *a;
    int fd;
};

static ssize_t reader_read(struct reader *r, void *buf, size_t len)
{
    if (r->a != NULL)
        return archive_read_data(r->a, buf, len);
    for (;;) {
        ssize_t n = read(r->fd, buf, len);
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

static const char *reader_error(struct reader *r)
{
    const char *s = r->a != NULL ? archive_error_string(r->a) : strerror(errno);
    return s != NULL ? s : "read error";
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Copies what r yields to out_fd (or nowhere, when it is -1), at most max bytes
 * (GY_ETOOBIG beyond), and gives the SHA-256 and size of what was read. */
static int copy_hashed(struct reader *r, int out_fd, int64_t max, char digest[OCI_DIGEST_BUF],
                       int64_t *size, struct gy_error *err)
{
    cleanup_free unsigned char *buf = gy_xmalloc(COPY_CHUNK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return gy_error_set(err, GY_ENOMEM, "SHA-256 context");
    }
    int64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = reader_read(r, buf, COPY_CHUNK);
        if (n == 0)
            break;
        if (n < 0) {
            rc = gy_error_set(err, GY_EIO, "read: %s", reader_error(r));
            break;
        }
        total += n;
        if (total > max) {
            rc = gy_error_set(err, GY_ETOOBIG, "more than %" PRId64 " bytes, refused", max);
            break;
        }
        EVP_DigestUpdate(md, buf, (size_t)n);
        if (out_fd >= 0 && write_all(out_fd, buf, (size_t)n) < 0) {
            rc = gy_error_sys(err, errno, "write");
            break;
        }
    }
    if (rc == 0) {
        unsigned char raw[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        EVP_DigestFinal_ex(md, raw, &len);
        oci_digest_format(raw, digest);
        *size = total;
    }
    EVP_MD_CTX_free(md);
    return rc;
}

/* Reads all of r into memory, at most max bytes, NUL-terminated. */
static int read_small(struct reader *r, size_t max, char **out, size_t *len, struct gy_error *err)
{
    size_t cap = 4096, got = 0;
    cleanup_free char *buf = gy_xmalloc(cap + 1);
    for (;;) {
        if (got == cap) {
            if (cap > max)
                return gy_error_set(err, GY_ETOOBIG, "more than %zu bytes, refused", max);
            cap *= 2;
            buf = gy_xrealloc(buf, cap + 1);
        }
        ssize_t n = reader_read(r, buf + got, cap - got);
        if (n < 0)
            return gy_error_set(err, GY_EIO, "read: %s", reader_error(r));
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > max)
        return gy_error_set(err, GY_ETOOBIG, "more than %zu bytes, refused", max);
    buf[got] = '\0';
    *len = got;
    *out = gy_steal_ptr(&buf);
    return 0;
}

/* ======================================================================================
 * Sources
 * ====================================================================================== */

enum entry_kind {
    ENTRY_FILE, /* a regular file: staged, or hashed against a blob the store holds */
    ENTRY_LINK, /* a symlink or hard link to another entry */
    ENTRY_META, /* oci-layout, index.json or manifest.json, in memory */
};

struct entry {
    char *path; /* clean, relative to the archive's root */
    enum entry_kind kind;
    char *target;                /* ENTRY_LINK: the clean path it names */
    char *staged;                /* ENTRY_FILE: its copy in ROOT/ingest until committed */
    char digest[OCI_DIGEST_BUF]; /* ENTRY_FILE: SHA-256 of its content */
    int64_t size;
    char *data; /* ENTRY_META */
    size_t len;
};

struct source {
    struct oci_store *store;
    const char *path; /* as the caller gave it */
    bool is_dir;
    int dir_fd;
    int64_t max_file; /* bound on one file: the store's layer bound and 1/64 for compression */
    struct entry *entries;
    size_t n_entries, cap_entries;
};

static const char *const meta_names[] = {"oci-layout", "index.json", "manifest.json"};

static size_t meta_max(const char *path)
{
    return strcmp(path, "oci-layout") == 0 ? AGENT_LOAD_LAYOUT_MAX : AGENT_LOAD_INDEX_MAX;
}

static bool is_meta(const char *path)
{
    for (size_t i = 0; i < sizeof(meta_names) / sizeof(meta_names[0]); i++)
        if (strcmp(path, meta_names[i]) == 0)
            return true;
    return false;
}

static void source_free(struct source *src)
{
    for (size_t i = 0; i < src->n_entries; i++) {
        struct entry *e = &src->entries[i];
        if (e->staged != NULL)
            unlink(e->staged);
        free(e->path);
        free(e->target);
        free(e->staged);
        free(e->data);
    }
    free(src->entries);
    if (src->dir_fd >= 0)
        close(src->dir_fd);
    src->entries = NULL;
    src->n_entries = src->cap_entries = 0;
    src->dir_fd = -1;
}

static struct entry *entry_get(const struct source *src, const char *path)
{
    for (size_t i = 0; i < src->n_entries; i++)
        if (strcmp(src->entries[i].path, path) == 0)
            return &src->entries[i];
    return NULL;
}

static struct entry *entry_add(struct source *src, const char *path, enum entry_kind kind)
{
    if (src->n_entries == src->cap_entries) {
        src->cap_entries = src->cap_entries ? 2 * src->cap_entries : 16;
        src->entries = gy_xrealloc(src->entries, src->cap_entries * sizeof(*src->entries));
    }
    struct entry *e = &src->entries[src->n_entries++];
    memset(e, 0, sizeof(*e));
    e->path = gy_xstrdup(path);
    e->kind = kind;
    return e;
}

/* The file entry path names, following links. GY_ENOTFOUND when the archive lacks it. */
static int entry_find(const struct source *src, const char *path, struct entry **out,
                      struct gy_error *err)
{
    char b1[96], b2[96];
    const char *cur = path;
    for (int hops = 0; hops <= LINK_HOPS_MAX; hops++) {
        struct entry *e = entry_get(src, cur);
        if (e == NULL && cur == path)
            return gy_error_set(err, GY_ENOTFOUND, "\"%s\" is not in the archive", shown(path, b1));
        if (e == NULL)
            return gy_error_set(err, GY_ENOTFOUND,
                                "\"%s\" links to \"%s\", which is not in the archive",
                                shown(path, b1), shown(cur, b2));
        if (e->kind == ENTRY_META)
            return gy_error_set(err, GY_EINVAL, "\"%s\" is not an image file", shown(path, b1));
        if (e->kind == ENTRY_FILE) {
            *out = e;
            return 0;
        }
        cur = e->target;
    }
    return gy_error_set(err, GY_EINVAL, "\"%s\": more than %d links to follow", shown(path, b1),
                        LINK_HOPS_MAX);
}

/* Commits a staged file entry as the blob of its digest (oci_store_blob_commit hashes it
 * again). An entry whose blob the store held when it was read has nothing staged. */
static int entry_commit(struct source *src, struct entry *e, struct gy_error *err)
{
    if (e->staged == NULL)
        return oci_store_blob_has(src->store, e->digest)
                   ? 0
                   : gy_error_set(err, GY_ENOTFOUND, "blob %s left the store while loading",
                                  e->digest);
    int rc = 0;
    if (oci_store_blob_has(src->store, e->digest))
        unlink(e->staged);
    else if ((rc = oci_store_blob_commit(src->store, e->staged, e->digest, err)) < 0)
        unlink(e->staged);
    free(e->staged);
    e->staged = NULL;
    return rc;
}

/* A fresh staging file ROOT/ingest/RANDOM.load-XXXXXX: named like the store's downloads
 * (64 hex digits first), so that oci_store_gc removes one a crash leaves behind. */
static int stage_open(struct source *src, char **path, struct gy_error *err)
{
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return gy_error_sys(err, errno, "getrandom");
    char hex[OCI_DIGEST_BUF];
    oci_digest_format(raw, hex);
    char *p = gy_xasprintf("%s/ingest/%s.load-XXXXXX", oci_store_root(src->store), hex + 7);
    int fd = mkostemp(p, O_CLOEXEC);
    if (fd < 0) {
        int rc = gy_error_sys(err, errno, "create %s", p);
        free(p);
        return rc;
    }
    *path = p;
    return fd;
}

/* Reads one regular file of the archive (or layout) into e: a metadata file into memory;
 * a blob the store holds is only hashed; anything else is staged. A file named
 * blobs/sha256/HEX must hash to sha256:HEX. */
static int entry_read(struct source *src, struct entry *e, struct reader *r, struct gy_error *err)
{
    if (e->kind == ENTRY_META)
        return read_small(r, meta_max(e->path), &e->data, &e->len, err);
    char named[OCI_DIGEST_BUF];
    bool blob = path_is_blob(e->path, named);
    int fd = -1, rc = 0;
    if (!blob || !oci_store_blob_has(src->store, named)) {
        if ((fd = stage_open(src, &e->staged, err)) < 0)
            return fd;
    }
    rc = copy_hashed(r, fd, src->max_file, e->digest, &e->size, err);
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = gy_error_sys(err, errno, "write %s", e->staged);
    if (rc == 0 && blob && strcmp(e->digest, named) != 0)
        rc = gy_error_set(err, GY_EPROTO, "the content hashes to %s, not %s", e->digest, named);
    if (rc < 0 && e->staged != NULL) {
        unlink(e->staged);
        free(e->staged);
        e->staged = NULL;
    }
    return rc;
}

/* ---- Archives ------------------------------------------------------------------------ */

/* Adds the archive's current entry: checks its path (and a link's target), keeps the
 * metadata, stages files. */
static int tar_entry(struct source *src, struct archive *a, struct archive_entry *ae,
                     struct gy_error *err)
{
    char b1[96], b2[96];
    const char *raw = archive_entry_pathname(ae);
    if (raw == NULL)
        return gy_error_set(err, GY_EINVAL, "an entry whose name cannot be read");
    char path[AGENT_LOAD_PATH_MAX + 1], target[AGENT_LOAD_PATH_MAX + 1];
    const char *why = path_clean(raw, path);
    if (why != NULL)
        return gy_error_set(err, GY_EPERM, "entry \"%s\": %s", shown(raw, b1), why);
    const char *hardlink = archive_entry_hardlink(ae);
    mode_t type = archive_entry_filetype(ae);
    if (hardlink == NULL && type == AE_IFDIR)
        return 0;
    if (path[0] == '\0')
        return gy_error_set(err, GY_EINVAL, "entry \"%s\": the archive's root is not a directory",
                            shown(raw, b1));
    if (entry_get(src, path) != NULL)
        return gy_error_set(err, GY_EINVAL, "entry \"%s\" appears twice", shown(path, b1));
    if (src->n_entries >= AGENT_LOAD_ENTRIES_MAX)
        return gy_error_set(err, GY_ETOOBIG, "more than %d entries, refused",
                            AGENT_LOAD_ENTRIES_MAX);
    if (hardlink != NULL || type == AE_IFLNK) {
        const char *to = hardlink != NULL ? hardlink : archive_entry_symlink(ae);
        if (to == NULL)
            return gy_error_set(err, GY_EINVAL, "entry \"%s\": a link without a target",
                                shown(path, b1));
        why = hardlink != NULL ? path_clean(to, target) : link_resolve(path, to, target);
        if (why != NULL)
            return gy_error_set(err, GY_EPERM, "entry \"%s\": link to \"%s\": %s", shown(path, b1),
                                shown(to, b2), why);
        entry_add(src, path, ENTRY_LINK)->target = gy_xstrdup(target);
        return 0;
    }
    if (type != AE_IFREG)
        return gy_error_set(err, GY_EINVAL,
                            "entry \"%s\": not a file, directory or link (an image archive holds "
                            "nothing else), refused",
                            shown(path, b1));
    size_t limit = is_meta(path) ? meta_max(path) : (size_t)src->max_file;
    if (archive_entry_size_is_set(ae) && archive_entry_size(ae) > (la_int64_t)limit)
        return gy_error_set(err, GY_ETOOBIG, "entry \"%s\" is %" PRId64 " bytes, more than %zu",
                            shown(path, b1), (int64_t)archive_entry_size(ae), limit);
    struct entry *e = entry_add(src, path, is_meta(path) ? ENTRY_META : ENTRY_FILE);
    struct reader r = {.a = a, .fd = -1};
    int rc = entry_read(src, e, &r, err);
    if (rc < 0)
        return gy_error_wrap(err, "entry \"%s\"", shown(path, b1));
    return 0;
}

static int tar_read(struct source *src, int fd, struct gy_error *err)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return gy_error_set(err, GY_ENOMEM, "libarchive reader");
    int rc = 0;
    /* ARCHIVE_WARN would mean an external program decompresses: not in the agent. */
    if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK) {
        rc =
            gy_error_set(err, GY_EINTERNAL, "this libarchive has no built-in gzip or zstd decoder");
        goto out;
    }
    archive_read_support_format_tar(a);
    if (archive_read_open_fd(a, fd, COPY_CHUNK) != ARCHIVE_OK) {
        rc = gy_error_set(err, GY_EINVAL, "not a tar archive: %s", archive_error_string(a));
        goto out;
    }
    for (;;) {
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = gy_error_set(err, GY_EINVAL, "%s: %s",
                              src->n_entries == 0 ? "not a tar archive" : "damaged archive",
                              archive_error_string(a));
            goto out;
        }
        if (archive_filter_count(a) > 2) {
            rc = gy_error_set(err, GY_EINVAL, "the archive is compressed more than once, refused");
            goto out;
        }
        if ((rc = tar_entry(src, a, ae, err)) < 0)
            goto out;
    }
out:
    archive_read_free(a);
    return rc;
}

/* ---- Directories --------------------------------------------------------------------- */

/* Opens rel (clean) beneath the layout directory, following no symlink: a layout is plain
 * files, and a link could reach anything on the node. */
static int dir_open(struct source *src, const char *rel, int *out, struct gy_error *err)
{
    char b1[96];
    char buf[AGENT_LOAD_PATH_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", rel);
    int dfd = fcntl(src->dir_fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return gy_error_sys(err, errno, "dup");
    char *save = NULL;
    char *c = strtok_r(buf, "/", &save);
    while (c != NULL) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (next != NULL ? O_DIRECTORY : O_NONBLOCK);
        int fd = openat(dfd, c, flags);
        int e = errno;
        struct stat st;
        bool link = fd < 0 && (e == ELOOP || e == ENOTDIR) &&
                    fstatat(dfd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
        close(dfd);
        if (fd < 0 && e == ENOENT)
            return gy_error_set(err, GY_ENOTFOUND, "\"%s\" is not in the layout", shown(rel, b1));
        if (link)
            return gy_error_set(err, GY_EPERM,
                                "\"%s\" is or goes through a symlink, refused in a layout",
                                shown(rel, b1));
        if (fd < 0)
            return gy_error_sys(err, e, "open \"%s\"", shown(rel, b1));
        dfd = fd;
        c = next;
    }
    struct stat st;
    if (fstat(dfd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(dfd);
        return gy_error_set(err, GY_EINVAL, "\"%s\" is not a regular file", shown(rel, b1));
    }
    *out = dfd;
    return 0;
}

static int dir_read_meta(struct source *src, struct gy_error *err)
{
    for (size_t i = 0; i < sizeof(meta_names) / sizeof(meta_names[0]); i++) {
        struct gy_error oerr;
        cleanup_close int fd = -1;
        if (dir_open(src, meta_names[i], &fd, &oerr) < 0) {
            if (oerr.code == GY_ENOTFOUND)
                continue;
            if (err != NULL)
                *err = oerr;
            return -(int)oerr.code;
        }
        struct entry *e = entry_add(src, meta_names[i], ENTRY_META);
        struct reader r = {.fd = fd};
        if (entry_read(src, e, &r, err) < 0)
            return gy_error_wrap(err, "%s", meta_names[i]);
    }
    return 0;
}

/* Copies blobs/sha256/HEX of a layout directory into the store, through its ingest file
 * under the blob's download lock, and commits it. */
static int dir_blob(struct source *src, const char *digest, struct gy_error *err)
{
    char rel[80];
    snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
    cleanup_close int in = -1;
    int rc = dir_open(src, rel, &in, err);
    if (rc < 0)
        return rc;
    cleanup_close int lock = oci_store_ingest_lock(src->store, digest, err);
    if (lock < 0)
        return lock;
    struct reader r = {.fd = in};
    char actual[OCI_DIGEST_BUF];
    int64_t size;
    if (oci_store_blob_has(src->store, digest)) {
        /* Still read: an archive is checked the same whatever a node holds. */
        if ((rc = copy_hashed(&r, -1, src->max_file, actual, &size, err)) < 0)
            return gy_error_wrap(err, "%s", rel);
        if (strcmp(actual, digest) != 0)
            return gy_error_set(err, GY_EPROTO, "%s: the content hashes to %s, not %s", rel, actual,
                                digest);
        return 0;
    }
    char path[PATH_MAX];
    if ((rc = oci_store_ingest_path(src->store, digest, path, sizeof(path), err)) < 0)
        return rc;
    cleanup_close int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return gy_error_sys(err, errno, "%s: open %s", rel, path);
    rc = copy_hashed(&r, out, src->max_file, actual, &size, err);
    if (rc == 0 && close(gy_steal_fd(&out)) < 0)
        rc = gy_error_sys(err, errno, "%s: write %s", rel, path);
    if (rc == 0 && strcmp(actual, digest) != 0)
        rc = gy_error_set(err, GY_EPROTO, "the content hashes to %s, not %s", actual, digest);
    if (rc < 0) {
        unlink(path);
        return gy_error_wrap(err, "%s", rel);
    }
    if ((rc = oci_store_blob_commit(src->store, path, digest, err)) < 0)
        return gy_error_wrap(err, "%s", rel);
    return 0;
}

/* ---- Either ---------------------------------------------------------------------------- */

/* Makes sure the store holds blob digest from the source's blobs/sha256/HEX and that it
 * is size bytes, as its descriptor says. */
static int source_blob(struct source *src, const char *digest, int64_t size, struct gy_error *err)
{
    int rc;
    if (src->is_dir) {
        if ((rc = dir_blob(src, digest, err)) < 0)
            return rc;
    } else {
        char rel[80];
        snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
        struct entry *e;
        if ((rc = entry_find(src, rel, &e, err)) < 0)
            return rc;
        if (strcmp(e->digest, digest) != 0)
            return gy_error_set(err, GY_EPROTO, "%s: the content hashes to %s", rel, e->digest);
        if ((rc = entry_commit(src, e, err)) < 0)
            return gy_error_wrap(err, "%s", rel);
    }
    char path[PATH_MAX];
    struct stat st;
    if ((rc = oci_store_blob_path(src->store, digest, path, sizeof(path), err)) < 0)
        return rc;
    if (stat(path, &st) < 0)
        return gy_error_sys(err, errno, "stat %s", path);
    if (st.st_size != size)
        return gy_error_set(err, GY_EPROTO,
                            "blob %s is %lld bytes, but its descriptor says %" PRId64, digest,
                            (long long)st.st_size, size);
    return 0;
}

static const struct entry *source_meta(const struct source *src, const char *name)
{
    const struct entry *e = entry_get(src, name);
    return e != NULL && e->kind == ENTRY_META ? e : NULL;
}

/* ======================================================================================
 * Images
 * ====================================================================================== */

/* One image worked out from the source, recorded once every image is. */
struct load_image {
    char name[NAME_BUF];
    char resolved[OCI_DIGEST_BUF]; /* what the name's entry points at: index or manifest */
    char manifest[OCI_DIGEST_BUF];
    char config[OCI_DIGEST_BUF];
    char (*layers)[OCI_DIGEST_BUF];
    size_t n_layers;
    int64_t bytes;
    char where[96]; /* "index.json manifests[0]", "manifest.json[1]" */
};

struct load {
    struct source src;
    const struct agent_load_options *opts;
    struct agent_platform platform;
    struct load_image *images;
    size_t n_images;
};

static struct load_image *image_add(struct load *ld)
{
    ld->images = gy_xrealloc(ld->images, (ld->n_images + 1) * sizeof(*ld->images));
    struct load_image *img = &ld->images[ld->n_images++];
    memset(img, 0, sizeof(*img));
    return img;
}

/* Normalises a reference (from --name or the archive) into the store's name for it. */
static int name_normalise(const char *raw, char out[NAME_BUF], struct gy_error *err)
{
    struct gy_image_ref ref;
    int rc = gy_image_ref_parse(raw, &ref, err);
    if (rc < 0)
        return rc;
    if (gy_image_ref_format(&ref, out, NAME_BUF) < 0)
        return gy_error_set(err, GY_EINVAL, "image reference too long");
    return 0;
}

/* Reads a config from the store and checks it lists one diff_id per layer. */
static int config_read(struct load *ld, const char *digest, size_t n_layers, struct oci_config *cfg,
                       struct gy_error *err)
{
    cleanup_free char *text = NULL;
    size_t len;
    int rc =
        oci_store_blob_read_small(ld->src.store, digest, OCI_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc == 0)
        rc = oci_config_parse(text, len, cfg, err);
    if (rc < 0)
        return gy_error_wrap(err, "config %s", digest);
    if (cfg->n_diff_ids != n_layers) {
        rc = gy_error_set(err, GY_EINVAL,
                          "config %s lists %zu diff_ids for %zu layers; they must be one per layer",
                          digest, cfg->n_diff_ids, n_layers);
        oci_config_free(cfg);
        return rc;
    }
    return 0;
}

/* ---- OCI image layouts ----------------------------------------------------------------- */

static int oci_layout_check(const struct entry *layout, struct gy_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(layout->data, layout->len, JSON_REJECT_DUPLICATES, &jerr);
    const char *v = json_string_value(json_object_get(doc, "imageLayoutVersion"));
    char b1[96];
    int rc = 0;
    if (v == NULL)
        rc = gy_error_set(err, GY_EPARSE, "oci-layout: no \"imageLayoutVersion\" string");
    else if (strncmp(v, "1.", 2) != 0)
        rc = gy_error_set(err, GY_EPARSE, "oci-layout: imageLayoutVersion \"%s\" is not 1.x",
                          shown(v, b1));
    json_decref(doc);
    return rc;
}

/* Resolves one index entry to an image manifest (through nested indexes, for the
 * platform) and brings its blobs into the store. */
static int oci_resolve(struct load *ld, const struct agent_descriptor *top, struct load_image *img,
                       struct gy_error *err)
{
    struct agent_descriptor d = *top;
    struct agent_manifest m;
    memset(&m, 0, sizeof(m));
    int rc;
    for (int depth = 0;; depth++) {
        if (depth > INDEX_DEPTH_MAX)
            return gy_error_set(err, GY_EPROTO, "indexes nested more than %d deep, refused",
                                INDEX_DEPTH_MAX);
        cleanup_free char *text = NULL;
        size_t len;
        if ((rc = source_blob(&ld->src, d.digest, d.size, err)) < 0 ||
            (rc = oci_store_blob_read_small(ld->src.store, d.digest, OCI_MANIFEST_MAX_BYTES, &text,
                                            &len, err)) < 0)
            return gy_error_wrap(err, "manifest %s", d.digest);
        if ((rc = agent_manifest_parse(text, len, d.media_type, &m, err)) < 0) {
            agent_manifest_free(&m);
            return rc;
        }
        if (!agent_manifest_is_index(m.kind))
            break;
        size_t which;
        rc = agent_manifest_pick(&m, &ld->platform, &which, err);
        if (rc == 0)
            d = m.manifests[which];
        agent_manifest_free(&m);
        if (rc < 0)
            return rc;
    }
    snprintf(img->resolved, sizeof(img->resolved), "%s", top->digest);
    snprintf(img->manifest, sizeof(img->manifest), "%s", m.digest);
    snprintf(img->config, sizeof(img->config), "%s", m.config.digest);
    img->n_layers = m.n_layers;
    img->layers = gy_xcalloc(m.n_layers + 1, sizeof(*img->layers));
    if (m.n_layers == 0 || m.n_layers > OCI_IMAGE_LAYERS_MAX) {
        rc = gy_error_set(err, GY_EINVAL, "manifest %s has %zu layers; an image has 1 to %d",
                          m.digest, m.n_layers, OCI_IMAGE_LAYERS_MAX);
        goto out;
    }
    if ((rc = source_blob(&ld->src, m.config.digest, m.config.size, err)) < 0) {
        gy_error_wrap(err, "manifest %s: config", m.digest);
        goto out;
    }
    img->bytes = m.config.size;
    for (size_t i = 0; i < m.n_layers; i++) {
        if ((rc = source_blob(&ld->src, m.layers[i].digest, m.layers[i].size, err)) < 0) {
            gy_error_wrap(err, "manifest %s: layer %zu", m.digest, i);
            goto out;
        }
        snprintf(img->layers[i], OCI_DIGEST_BUF, "%s", m.layers[i].digest);
        img->bytes += m.layers[i].size;
    }
    struct oci_config cfg;
    if ((rc = config_read(ld, m.config.digest, m.n_layers, &cfg, err)) < 0) {
        gy_error_wrap(err, "manifest %s", m.digest);
        goto out;
    }
    oci_config_free(&cfg);
out:
    agent_manifest_free(&m);
    return rc;
}

/* The name index.json gives entry i: containerd's full name first (Docker and containerd
 * set org.opencontainers.image.ref.name to the tag alone), else the OCI ref.name. */
static const char *oci_entry_name(json_t *index, size_t i)
{
    json_t *ann =
        json_object_get(json_array_get(json_object_get(index, "manifests"), i), "annotations");
    const char *name = json_string_value(json_object_get(ann, ANNOTATION_CTR_NAME));
    if (name == NULL || name[0] == '\0')
        name = json_string_value(json_object_get(ann, ANNOTATION_REF_NAME));
    return name != NULL && name[0] != '\0' ? name : NULL;
}

static int oci_load(struct load *ld, struct gy_error *err)
{
    const struct entry *layout = source_meta(&ld->src, "oci-layout");
    const struct entry *ie = source_meta(&ld->src, "index.json");
    int rc;
    if (layout == NULL)
        return gy_error_set(err, GY_EINVAL,
                            "index.json without oci-layout: not an OCI image layout");
    if ((rc = oci_layout_check(layout, err)) < 0)
        return rc;
    struct agent_manifest index;
    if ((rc = agent_manifest_parse(ie->data, ie->len, NULL, &index, err)) < 0) {
        agent_manifest_free(&index);
        return gy_error_wrap(err, "index.json");
    }
    json_t *doc = json_loadb(ie->data, ie->len, 0, NULL);
    char(*names)[NAME_BUF] = gy_xcalloc(index.n_manifests + 1, sizeof(*names));
    char b1[96], b2[96];
    if (!agent_manifest_is_index(index.kind)) {
        rc = gy_error_set(err, GY_EPARSE, "index.json is not an image index");
        goto out;
    }
    if (index.n_manifests == 0) {
        rc = gy_error_set(err, GY_ENOTFOUND, "index.json lists no images");
        goto out;
    }
    for (size_t i = 0; i < index.n_manifests; i++) {
        const char *raw = oci_entry_name(doc, i);
        if (raw == NULL || name_normalise(raw, names[i], err) == 0)
            continue;
        /* With --name, a name the archive gives only tells its images apart. */
        if (ld->opts->name == NULL) {
            rc = gy_error_wrap(err, "index.json manifests[%zu]: name", i);
            goto out;
        }
        snprintf(names[i], NAME_BUF, "%s", raw);
    }
    if (ld->opts->name != NULL) {
        for (size_t i = 1; i < index.n_manifests; i++) {
            if (strcmp(names[i], names[0]) != 0) {
                rc = gy_error_set(err, GY_EINVAL,
                                  "the layout holds several images (\"%s\", \"%s\"); --name names "
                                  "one",
                                  shown(names[0][0] ? names[0] : "(no name)", b1),
                                  shown(names[i][0] ? names[i] : "(no name)", b2));
                goto out;
            }
        }
        for (size_t i = 0; i < index.n_manifests; i++)
            snprintf(names[i], NAME_BUF, "%s", ld->opts->name);
    }
    for (size_t i = 0; i < index.n_manifests; i++) {
        if (names[i][0] == '\0') {
            rc = gy_error_set(
                err, GY_EINVAL,
                "index.json manifests[%zu] (%s) has no name (annotation " ANNOTATION_REF_NAME
                " or " ANNOTATION_CTR_NAME "): give one with --name",
                i, index.manifests[i].digest);
            goto out;
        }
    }
    /* Entries of one name are one image for several platforms. */
    for (size_t i = 0; i < index.n_manifests; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(names[i], names[j]) == 0;
        if (seen)
            continue;
        struct agent_manifest group = index;
        group.manifests = gy_xcalloc(index.n_manifests, sizeof(*group.manifests));
        group.n_manifests = 0;
        size_t first = i;
        for (size_t j = i; j < index.n_manifests; j++)
            if (strcmp(names[i], names[j]) == 0)
                group.manifests[group.n_manifests++] = index.manifests[j];
        size_t which = 0;
        if (group.n_manifests > 1)
            rc = agent_manifest_pick(&group, &ld->platform, &which, err);
        struct agent_descriptor d = group.manifests[which];
        free(group.manifests);
        if (rc < 0) {
            gy_error_wrap(err, "index.json, image \"%s\"", names[i]);
            goto out;
        }
        for (size_t j = i; j < index.n_manifests; j++)
            if (strcmp(index.manifests[j].digest, d.digest) == 0 &&
                strcmp(names[i], names[j]) == 0) {
                first = j;
                break;
            }
        struct load_image *img = image_add(ld);
        snprintf(img->name, sizeof(img->name), "%s", names[i]);
        snprintf(img->where, sizeof(img->where), "index.json manifests[%zu]", first);
        if ((rc = oci_resolve(ld, &d, img, err)) < 0) {
            gy_error_wrap(err, "%s (\"%s\")", img->where, names[i]);
            goto out;
        }
    }
out:
    json_decref(doc);
    free(names);
    agent_manifest_free(&index);
    return rc;
}

/* ---- docker save archives --------------------------------------------------------------- */

/* The file entry a path of manifest.json names, cleaned and followed through links. */
static int docker_file(struct load *ld, json_t *v, const char *field, struct entry **out,
                       struct gy_error *err)
{
    char b1[96];
    const char *raw = json_string_value(v);
    if (raw == NULL)
        return gy_error_set(err, GY_EPARSE, "%s is not a string", field);
    char path[AGENT_LOAD_PATH_MAX + 1];
    const char *why = path_clean(raw, path);
    if (why != NULL)
        return gy_error_set(err, GY_EPERM, "%s \"%s\": %s", field, shown(raw, b1), why);
    int rc = entry_find(&ld->src, path, out, err);
    if (rc < 0)
        return gy_error_wrap(err, "%s", field);
    return 0;
}

/* An OCI manifest for a docker save image: the config and the uncompressed layer tars. */
static int docker_manifest(struct load *ld, const struct entry *config, struct entry **layers,
                           size_t n, char digest[OCI_DIGEST_BUF], struct gy_error *err)
{
    json_t *jl = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(jl, json_pack("{s:s, s:s, s:I}", "mediaType", MEDIA_OCI_LAYER_TAR,
                                            "digest", layers[i]->digest, "size",
                                            (json_int_t)layers[i]->size));
    json_t *doc =
        json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
                  AGENT_MEDIA_OCI_MANIFEST, "config", "mediaType", MEDIA_OCI_CONFIG, "digest",
                  config->digest, "size", (json_int_t)config->size, "layers", jl);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    if (text == NULL)
        return gy_error_set(err, GY_ENOMEM, "build the manifest");
    int rc = oci_store_blob_write(ld->src.store, text, strlen(text), NULL, digest, err);
    free(text);
    return rc;
}

static int docker_image(struct load *ld, json_t *item, size_t idx, size_t n_items,
                        struct gy_error *err)
{
    char b1[96];
    json_t *jl = json_object_get(item, "Layers"), *tags = json_object_get(item, "RepoTags");
    if (!json_is_object(item))
        return gy_error_set(err, GY_EPARSE, "not an object");
    size_t n = json_array_size(jl);
    if (!json_is_array(jl) || n == 0 || n > OCI_IMAGE_LAYERS_MAX)
        return gy_error_set(err, GY_EPARSE, "Layers must be a list of 1 to %d paths",
                            OCI_IMAGE_LAYERS_MAX);
    if (tags != NULL && !json_is_null(tags) &&
        (!json_is_array(tags) || json_array_size(tags) > OCI_IMAGE_LAYERS_MAX))
        return gy_error_set(err, GY_EPARSE, "RepoTags must be a list of names");
    /* The names first, so that an archive without one fails before any work. */
    size_t n_names = ld->opts->name != NULL ? 1 : json_array_size(tags);
    if (ld->opts->name != NULL && n_items > 1)
        return gy_error_set(err, GY_EINVAL, "the archive holds %zu images; --name names one",
                            n_items);
    if (n_names == 0)
        return gy_error_set(err, GY_EINVAL, "no RepoTags: give the image a name with --name");
    char(*names)[NAME_BUF] = gy_xcalloc(n_names, sizeof(*names));
    int rc = 0;
    for (size_t i = 0; i < n_names && rc == 0; i++) {
        const char *raw =
            ld->opts->name != NULL ? ld->opts->name : json_string_value(json_array_get(tags, i));
        if (raw == NULL)
            rc = gy_error_set(err, GY_EPARSE, "RepoTags[%zu] is not a string", i);
        else if ((rc = name_normalise(raw, names[i], err)) < 0)
            gy_error_wrap(err, "RepoTags[%zu]", i);
    }
    struct entry **layers = gy_xcalloc(n, sizeof(*layers));
    struct entry *config = NULL;
    if (rc == 0)
        rc = docker_file(ld, json_object_get(item, "Config"), "Config", &config, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char field[32];
        snprintf(field, sizeof(field), "Layers[%zu]", i);
        rc = docker_file(ld, json_array_get(jl, i), field, &layers[i], err);
    }
    struct oci_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (rc == 0 && (rc = entry_commit(&ld->src, config, err)) < 0)
        gy_error_wrap(err, "Config \"%s\"", shown(config->path, b1));
    if (rc == 0)
        rc = config_read(ld, config->digest, n, &cfg, err);
    /* A docker save layer is the uncompressed tar, so its digest is its diff_id. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (strcmp(cfg.diff_ids[i], layers[i]->digest) != 0)
            rc = gy_error_set(err, GY_EPROTO,
                              "Layers[%zu] \"%s\" hashes to %s, but the config's "
                              "rootfs.diff_ids[%zu] is %s (a docker save layer must be the "
                              "uncompressed tar the config names)",
                              i, shown(layers[i]->path, b1), layers[i]->digest, i, cfg.diff_ids[i]);
    oci_config_free(&cfg);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = entry_commit(&ld->src, layers[i], err)) < 0)
            gy_error_wrap(err, "Layers[%zu] \"%s\"", i, shown(layers[i]->path, b1));
    char manifest[OCI_DIGEST_BUF];
    if (rc == 0)
        rc = docker_manifest(ld, config, layers, n, manifest, err);
    for (size_t k = 0; rc == 0 && k < n_names; k++) {
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(names[j], names[k]) == 0;
        if (dup)
            continue;
        struct load_image *img = image_add(ld);
        snprintf(img->name, sizeof(img->name), "%s", names[k]);
        snprintf(img->where, sizeof(img->where), "manifest.json[%zu]", idx);
        snprintf(img->resolved, sizeof(img->resolved), "%s", manifest);
        snprintf(img->manifest, sizeof(img->manifest), "%s", manifest);
        snprintf(img->config, sizeof(img->config), "%s", config->digest);
        img->layers = gy_xcalloc(n, sizeof(*img->layers));
        img->n_layers = n;
        img->bytes = config->size;
        for (size_t i = 0; i < n; i++) {
            snprintf(img->layers[i], OCI_DIGEST_BUF, "%s", layers[i]->digest);
            img->bytes += layers[i]->size;
        }
    }
    free(layers);
    free(names);
    return rc;
}

static int docker_load(struct load *ld, struct gy_error *err)
{
    const struct entry *me = source_meta(&ld->src, "manifest.json");
    json_error_t jerr;
    json_t *doc = json_loadb(me->data, me->len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gy_error_set(err, GY_EPARSE, "manifest.json: %s (line %d)", jerr.text, jerr.line);
    int rc = 0;
    size_t n = json_array_size(doc);
    if (!json_is_array(doc) || n == 0 || n > AGENT_REGISTRY_ENTRIES_MAX)
        rc = gy_error_set(err, GY_EPARSE, "manifest.json: not a list of 1 to %d images",
                          AGENT_REGISTRY_ENTRIES_MAX);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if ((rc = docker_image(ld, json_array_get(doc, i), i, n, err)) < 0)
            gy_error_wrap(err, "manifest.json[%zu]", i);
    json_decref(doc);
    return rc;
}

/* ======================================================================================
 * Loading
 * ====================================================================================== */

const char *agent_load_format_name(enum agent_load_format format)
{
    switch (format) {
    case AGENT_LOAD_OCI_DIR:
        return "OCI image layout directory";
    case AGENT_LOAD_OCI_TAR:
        return "OCI image layout archive";
    case AGENT_LOAD_DOCKER:
        return "docker save archive";
    }
    return "unknown";
}

void agent_load_result_free(struct agent_load_result *res)
{
    if (res == NULL)
        return;
    free(res->images);
    memset(res, 0, sizeof(*res));
}

static void load_free(struct load *ld)
{
    source_free(&ld->src);
    for (size_t i = 0; i < ld->n_images; i++)
        free(ld->images[i].layers);
    free(ld->images);
}

/* Reads the source and works out its images, committing their blobs. */
static int load_read(struct load *ld, const char *path, enum agent_load_format *format,
                     struct gy_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "open");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return gy_error_sys(err, errno, "stat");
    int rc;
    if (S_ISDIR(st.st_mode)) {
        ld->src.is_dir = true;
        ld->src.dir_fd = gy_steal_fd(&fd);
        rc = dir_read_meta(&ld->src, err);
    } else {
        rc = tar_read(&ld->src, fd, err);
    }
    if (rc < 0)
        return rc;
    if (source_meta(&ld->src, "index.json") != NULL &&
        (source_meta(&ld->src, "oci-layout") != NULL ||
         source_meta(&ld->src, "manifest.json") == NULL)) {
        *format = ld->src.is_dir ? AGENT_LOAD_OCI_DIR : AGENT_LOAD_OCI_TAR;
        return oci_load(ld, err);
    }
    if (source_meta(&ld->src, "manifest.json") != NULL && !ld->src.is_dir) {
        *format = AGENT_LOAD_DOCKER;
        return docker_load(ld, err);
    }
    if (ld->src.is_dir)
        return gy_error_set(err, GY_EINVAL,
                            "a directory must be an OCI image layout (oci-layout, index.json, "
                            "blobs/sha256/); load a docker save archive as the tar file");
    return gy_error_set(err, GY_EINVAL,
                        "neither an OCI image layout (oci-layout, index.json) nor a docker save "
                        "archive (manifest.json)");
}

/* Checks what no single image can: the names are distinct, and a name with a digest names
 * what was loaded. */
static int load_check_names(const struct load *ld, struct gy_error *err)
{
    for (size_t i = 0; i < ld->n_images; i++) {
        const struct load_image *img = &ld->images[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(ld->images[j].name, img->name) == 0)
                return gy_error_set(err, GY_EINVAL, "%s and %s are both named \"%s\"",
                                    ld->images[j].where, img->where, img->name);
        struct gy_image_ref ref;
        if (gy_image_ref_parse(img->name, &ref, err) < 0)
            return gy_error_wrap(err, "%s", img->where);
        if (ref.digest[0] != '\0' && strcmp(ref.digest, img->manifest) != 0 &&
            strcmp(ref.digest, img->resolved) != 0)
            return gy_error_set(err, GY_EINVAL,
                                "%s: the name \"%s\" has a digest, but the image is %s", img->where,
                                img->name, img->manifest);
    }
    return 0;
}

int agent_image_load(struct oci_store *store, const char *path,
                     const struct agent_load_options *opts, struct agent_load_result *out,
                     struct gy_error *err)
{
    static const struct agent_load_options none = {0};
    memset(out, 0, sizeof(*out));
    struct load ld = {
        .src = {.store = store, .path = path, .dir_fd = -1},
        .opts = opts != NULL ? opts : &none,
    };
    int64_t max = oci_store_get_options(store)->max_layer_bytes;
    ld.src.max_file = max + max / 64;
    char name[NAME_BUF];
    int rc = 0;
    if (ld.opts->name != NULL && (rc = name_normalise(ld.opts->name, name, err)) < 0)
        return gy_error_wrap(err, "load %s: --name", path);
    struct agent_load_options normalised = *ld.opts;
    if (ld.opts->name != NULL) {
        normalised.name = name;
        ld.opts = &normalised;
    }
    if (ld.opts->platform != NULL)
        ld.platform = *ld.opts->platform;
    else if ((rc = agent_platform_detect(&ld.platform, err)) < 0)
        return gy_error_wrap(err, "load %s", path);
    /* Shared: a collection waits until the images are recorded, so it cannot take blobs
     * committed early in a long load for unreferenced ones. */
    cleanup_close int lock = oci_store_lock(store, false, err);
    if (lock < 0)
        return gy_error_wrap(err, "load %s", path);
    enum agent_load_format format = 0;
    if ((rc = load_read(&ld, path, &format, err)) < 0 || (rc = load_check_names(&ld, err)) < 0)
        goto out;
    for (size_t i = 0; i < ld.n_images; i++) {
        const struct load_image *img = &ld.images[i];
        const char **layers = gy_xcalloc(img->n_layers + 1, sizeof(*layers));
        for (size_t k = 0; k < img->n_layers; k++)
            layers[k] = img->layers[k];
        rc = oci_image_put(store, img->name, img->manifest, img->config, layers, img->n_layers,
                           NULL, 0, err);
        free(layers);
        if (rc < 0)
            goto out;
        gy_log_info("image loaded",
                    "image=%s manifest=%s layers=%zu bytes=%" PRId64 " format=\"%s\"", img->name,
                    img->manifest, img->n_layers, img->bytes, agent_load_format_name(format));
    }
    out->format = format;
    out->images = gy_xcalloc(ld.n_images + 1, sizeof(*out->images));
    out->n_images = ld.n_images;
    for (size_t i = 0; i < ld.n_images; i++) {
        struct agent_loaded_image *o = &out->images[i];
        snprintf(o->name, sizeof(o->name), "%s", ld.images[i].name);
        snprintf(o->manifest_digest, sizeof(o->manifest_digest), "%s", ld.images[i].manifest);
        o->layers = ld.images[i].n_layers;
        o->bytes = ld.images[i].bytes;
    }
out:
    load_free(&ld);
    if (rc < 0)
        return gy_error_wrap(err, "load %s", path);
    return 0;
}
