/* Layer unpacking; see oci_layer.h and docs/images.md ("Store").
 *
 * A layer blob goes through two libarchive readers. The first, with the "raw" format,
 * undoes whatever compression the content shows (gzip, zstd or none; libarchive's own
 * decoders, never a subprocess) while the blob's bytes are hashed for its digest. The
 * second reads the tar from the first's output, which is hashed for the diff_id and
 * counted against max_layer_bytes.
 *
 * Entries are not written with archive_write_disk. Each is created here relative to a
 * descriptor of the layer's root: its parent is opened beneath that root without
 * following any symlink (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or one
 * O_NOFOLLOW component at a time), and the entry itself is made with the *at call for its
 * type on that parent, so no name, link target or order of entries can reach outside.
 * Directory modes and times are applied at the end, once nothing more is written in
 * them. The work happens in ROOT/tmp/layer-HEX-XXXXXX, renamed to ROOT/layers/HEX when
 * complete and verified. */
#include "agent/oci_layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/limits.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"

#define READ_CHUNK (256u << 10)
/* Deepest directory tree removed; a tree deeper than PATH_MAX allows cannot be made by an
 * unpack anyway. */
#define REMOVE_DEPTH_MAX (PATH_MAX / 2)

/* A directory whose mode and times wait for the end of the unpack. */
struct deferred_dir {
    char *path; /* clean path relative to the layer's root, "" for the root */
    mode_t mode;
    struct timespec times[2];
};

struct unpack {
    struct oci_store *store;
    const char *digest; /* the layer blob, for messages */
    int64_t max_bytes;
    bool use_openat2;
    bool root; /* the agent runs as root: owners are kept and device nodes made */
    struct gy_error *err;

    /* Reading. */
    int blob_fd;
    EVP_MD_CTX *blob_md; /* over the blob as stored */
    EVP_MD_CTX *diff_md; /* over the decompressed tar stream */
    unsigned char *blob_buf;
    unsigned char *tar_buf;
    struct archive *outer;  /* blob -> tar stream */
    struct archive *inner;  /* tar stream -> entries */
    int64_t stream_bytes;   /* decompressed bytes so far */
    int64_t declared_bytes; /* sum of the entries' declared sizes */
    bool too_big;
    bool outer_eof;
    char compression[8];

    /* Writing. */
    int fs_fd; /* O_PATH descriptor of the layer's root directory */
    struct deferred_dir *dirs;
    size_t n_dirs;
    int64_t entries;
    int64_t content_bytes;
    const char *entry; /* archive path of the entry being applied */
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

/* A printable, shortened copy of an archive path for a message; buf holds cap bytes. */
static const char *shown(const char *s, char *buf, size_t cap)
{
    if (s == NULL)
        return "(none)";
    size_t i = 0;
    for (; s[i] != '\0' && i + 4 < cap; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (s[i] != '\0')
        memcpy(buf + i, "...", 4);
    else
        buf[i] = '\0';
    return buf;
}

/* Fails the entry being applied: "entry "PATH": MESSAGE" (with ": strerror(errnum)" when
 * errnum is not 0); the caller adds the layer. */
static int __attribute__((format(printf, 4, 5)))
entry_fail(struct unpack *u, enum gy_code code, int errnum, const char *fmt, ...)
{
    char what[512], path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    shown(u->entry, path, sizeof(path));
    if (errnum != 0)
        return gy_error_sys(u->err, errnum, "entry \"%s\": %s", path, what);
    return gy_error_set(u->err, code, "entry \"%s\": %s", path, what);
}

static int layer_paths(const struct oci_store *store, const char *digest, char *final, size_t len,
                       struct gy_error *err)
{
    if (!path_fmt(final, len, "%s/layers/%s", oci_store_root(store), digest + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", oci_store_root(store));
    return 0;
}

static void lock_name(const char *digest, char *buf, size_t len)
{
    snprintf(buf, len, "layer-%s", digest + 7);
}

/* Removes name in parent and, when it is a directory, everything beneath it, never
 * following symlinks nor leaving the file system of dev. Returns 0 or -errno. */
static int remove_at(int parent, const char *name, dev_t dev, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR)
        return -errno;
    if (depth > REMOVE_DEPTH_MAX)
        return -ELOOP;
    /* Without root a read-only directory of the image cannot be emptied. */
    fchmodat(parent, name, 0700, 0);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != dev) {
        close(fd);
        return -EXDEV;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = remove_at(dirfd(d), de->d_name, dev, depth + 1);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

/* Removes the directory at path (absolute) and its content. */
static int remove_tree(const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash == NULL || slash[1] == '\0')
        return -EINVAL;
    *slash = '\0';
    cleanup_close int fd =
        open(parent[0] != '\0' ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    return remove_at(fd, slash + 1, st.st_dev, 0);
}

/* ======================================================================================
 * Paths beneath the layer's root
 * ====================================================================================== */

/* Copies an archive path into out (len bytes) without empty and "." components, so that
 * "./usr//bin/" becomes "usr/bin" and "./" becomes "" (the layer's root). Absolute paths,
 * ".." components and names longer than NAME_MAX are refused; what says which path of the
 * entry this is ("path" or "hard link target"). */
static int path_clean(struct unpack *u, const char *path, const char *what, char *out, size_t len)
{
    char buf[256];
    if (path == NULL || path[0] == '\0')
        return entry_fail(u, GY_EINVAL, 0, "empty %s", what);
    if (path[0] == '/')
        return entry_fail(u, GY_EPERM, 0, "absolute %s \"%s\" refused", what,
                          shown(path, buf, sizeof(buf)));
    size_t o = 0;
    for (const char *p = path; *p != '\0';) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p != '\0' && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return entry_fail(u, GY_EPERM, 0, "%s \"%s\" has a \"..\" component, refused", what,
                              shown(path, buf, sizeof(buf)));
        if (n > NAME_MAX)
            return entry_fail(u, GY_EINVAL, 0, "%s has a name longer than %d bytes", what,
                              NAME_MAX);
        if (o + n + 2 > len)
            return entry_fail(u, GY_EINVAL, 0, "%s longer than %zu bytes", what, len - 1);
        if (o > 0)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

/* Splits a clean path in place: *dir is "" for an entry at the root. */
static void path_split(char *clean, const char **dir, const char **base)
{
    char *slash = strrchr(clean, '/');
    if (slash == NULL) {
        *dir = "";
        *base = clean;
    } else {
        *slash = '\0';
        *dir = clean;
        *base = slash + 1;
    }
}

/* The walk: opens rel one component at a time with O_NOFOLLOW, making missing directories
 * (mode 0755) when create is set. */
static int dir_walk(struct unpack *u, const char *rel, bool create)
{
    char buf[PATH_MAX], shown_buf[256];
    snprintf(buf, sizeof(buf), "%s", rel);
    int fd = fcntl(u->fs_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return entry_fail(u, GY_ESYS, errno, "dup");
    for (char *comp = buf, *next; comp != NULL; comp = next) {
        next = strchr(comp, '/');
        if (next != NULL)
            *next++ = '\0';
        int sub = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(fd);
                return entry_fail(u, GY_ESYS, e, "mkdir %s", shown(buf, shown_buf, 256));
            }
            fchmodat(fd, comp, 0755, 0);
            sub = openat(fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (sub < 0) {
            int e = errno;
            struct stat st;
            bool link = fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
            close(fd);
            shown(buf, shown_buf, sizeof(shown_buf));
            if (link)
                return entry_fail(u, GY_EPERM, 0,
                                  "\"%s\" is a symlink; a path through a symlink is refused",
                                  shown_buf);
            if (e == ENOTDIR)
                return entry_fail(u, GY_EINVAL, 0, "\"%s\" is not a directory", shown_buf);
            if (e == ENOENT)
                return entry_fail(u, GY_ENOTFOUND, 0, "\"%s\" is not in the layer", shown_buf);
            return entry_fail(u, GY_ESYS, e, "open %s", shown_buf);
        }
        close(fd);
        fd = sub;
        if (next != NULL)
            next[-1] = '/';
    }
    return fd;
}

/* Opens the directory rel (clean; "" for the root) beneath the layer's root, following no
 * symlink, making missing directories when create is set. Returns an O_PATH descriptor
 * or a negative error naming the entry. openat2 gives the kernel's guarantee on the common
 * path; when it fails for any reason but leaving the tree, the walk (itself safe) makes
 * what is missing or finds the component to blame. */
static int dir_open(struct unpack *u, const char *rel, bool create)
{
    if (rel[0] == '\0') {
        int fd = fcntl(u->fs_fd, F_DUPFD_CLOEXEC, 0);
        return fd >= 0 ? fd : entry_fail(u, GY_ESYS, errno, "dup");
    }
    if (u->use_openat2) {
        struct open_how how = {
            .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
            .resolve =
                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        long fd;
        int tries = 0;
        do
            fd = syscall(SYS_openat2, u->fs_fd, rel, &how, sizeof(how));
        while (fd < 0 && errno == EAGAIN && ++tries < 8);
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOSYS || errno == EPERM || errno == E2BIG || errno == EINVAL) {
            gy_log_debug("openat2 unavailable, walking paths", "errno=%d", errno);
            u->use_openat2 = false;
        } else if (errno == EXDEV) {
            return entry_fail(u, GY_EPERM, 0, "path leaves the layer, refused");
        }
    }
    return dir_walk(u, rel, create);
}

/* ======================================================================================
 * Entries
 * ====================================================================================== */

static int xattrs_apply(struct unpack *u, struct archive_entry *e, int fd, int dirfd,
                        const char *name)
{
    const char *key;
    const void *value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
        /* overlayfs reads these as its own instructions (redirects, metacopy, opaque):
         * an image must not smuggle them into a lower directory. */
        if (strncmp(key, "trusted.overlay.", 16) == 0 || strncmp(key, "user.overlay.", 13) == 0)
            continue;
        if (strlen(key) > XATTR_NAME_MAX || size > XATTR_SIZE_MAX)
            return entry_fail(u, GY_EINVAL, 0, "xattr too long");
        int rc;
        if (fd >= 0) {
            rc = fsetxattr(fd, key, value, size, 0);
        } else {
            char path[64 + NAME_MAX];
            snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
            rc = lsetxattr(path, key, value, size, 0);
        }
        if (rc < 0) {
            if (errno == ENOTSUP || errno == EOPNOTSUPP || errno == EPERM || errno == EACCES) {
                gy_log_debug("xattr not kept", "layer=%s key=%s errno=%d", u->digest, key, errno);
                continue;
            }
            return entry_fail(u, GY_ESYS, errno, "set xattr %s", key);
        }
    }
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec times[2])
{
    times[1].tv_sec = archive_entry_mtime(e);
    times[1].tv_nsec = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
    times[0] = times[1];
    if (archive_entry_atime_is_set(e)) {
        times[0].tv_sec = archive_entry_atime(e);
        times[0].tv_nsec = archive_entry_atime_nsec(e);
    }
    if (times[0].tv_nsec < 0 || times[0].tv_nsec >= 1000000000)
        times[0].tv_nsec = 0;
    if (times[1].tv_nsec < 0 || times[1].tv_nsec >= 1000000000)
        times[1].tv_nsec = 0;
}

/* The owner of an entry, or a refusal of ids that chown would read as "unchanged". */
static int entry_owner(struct unpack *u, struct archive_entry *e, uid_t *uid, gid_t *gid)
{
    int64_t ui = archive_entry_uid(e), gi = archive_entry_gid(e);
    if (ui < 0 || ui >= (int64_t)UINT32_MAX || gi < 0 || gi >= (int64_t)UINT32_MAX)
        return entry_fail(u, GY_EINVAL, 0, "owner %lld:%lld out of range", (long long)ui,
                          (long long)gi);
    *uid = (uid_t)ui;
    *gid = (gid_t)gi;
    return 0;
}

/* Owner, xattrs, mode and times of a non-directory, non-regular entry just made as name in
 * dirfd. Path calls on (dirfd, name) are safe here: the layer is being built in a directory
 * only this unpack writes, and the symlink case never follows. */
static int meta_apply_at(struct unpack *u, struct archive_entry *e, int dirfd, const char *name,
                         bool symlink)
{
    uid_t uid = 0;
    gid_t gid = 0;
    int rc = entry_owner(u, e, &uid, &gid);
    if (rc < 0)
        return rc;
    if (u->root && fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, GY_ESYS, errno, "chown");
    if ((rc = xattrs_apply(u, e, -1, dirfd, name)) < 0)
        return rc;
    if (!symlink && fchmodat(dirfd, name, archive_entry_perm(e) & 07777, 0) < 0)
        return entry_fail(u, GY_ESYS, errno, "chmod");
    struct timespec times[2];
    entry_times(e, times);
    if (utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, GY_ESYS, errno, "set times");
    return 0;
}

static int entry_regular(struct unpack *u, struct archive_entry *e, int dirfd, const char *name)
{
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size < 0)
        return entry_fail(u, GY_EINVAL, 0, "negative size");
    if (size > u->max_bytes - u->declared_bytes)
        return entry_fail(u, GY_ETOOBIG, 0,
                          "the layer's files add up to more than %lld bytes (max_layer_bytes)",
                          (long long)u->max_bytes);
    u->declared_bytes += size;
    cleanup_close int fd =
        openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return entry_fail(u, GY_ESYS, errno, "create");
    int64_t end = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(u->inner, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            if (u->too_big)
                return entry_fail(u, GY_ETOOBIG, 0,
                                  "the layer unpacks to more than %lld bytes (max_layer_bytes)",
                                  (long long)u->max_bytes);
            return entry_fail(u, GY_EIO, 0, "read: %s", archive_error_string(u->inner));
        }
        if (off < 0 || (int64_t)len > size || off > size - (int64_t)len)
            return entry_fail(u, GY_EIO, 0, "data beyond the entry's size");
        for (size_t done = 0; done < len;) {
            ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return entry_fail(u, GY_ESYS, errno, "write");
            done += (size_t)n;
        }
        if (off + (int64_t)len > end)
            end = off + (int64_t)len;
        u->content_bytes += (int64_t)len;
    }
    /* A sparse file may end in a hole. */
    if (end < size && ftruncate(fd, size) < 0)
        return entry_fail(u, GY_ESYS, errno, "truncate");
    uid_t uid = 0;
    gid_t gid = 0;
    int rc = entry_owner(u, e, &uid, &gid);
    if (rc < 0)
        return rc;
    /* chown clears set-uid bits and file capabilities: owner, then mode, then xattrs. */
    if (u->root && fchown(fd, uid, gid) < 0)
        return entry_fail(u, GY_ESYS, errno, "chown");
    if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
        return entry_fail(u, GY_ESYS, errno, "chmod");
    if ((rc = xattrs_apply(u, e, fd, dirfd, name)) < 0)
        return rc;
    struct timespec times[2];
    entry_times(e, times);
    if (futimens(fd, times) < 0)
        return entry_fail(u, GY_ESYS, errno, "set times");
    return 0;
}

static int entry_directory(struct unpack *u, struct archive_entry *e, int dirfd, const char *name,
                           const char *clean)
{
    int fd;
    if (clean[0] == '\0') {
        fd = openat(u->fs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        if (mkdirat(dirfd, name, 0700) < 0) {
            struct stat st;
            if (errno != EEXIST)
                return entry_fail(u, GY_ESYS, errno, "mkdir");
            /* An earlier entry of that name: a directory stays (with what it holds, as tar
             * does), anything else is replaced. */
            if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return entry_fail(u, GY_ESYS, errno, "stat");
            if (!S_ISDIR(st.st_mode)) {
                int rc = remove_at(dirfd, name, st.st_dev, 0);
                if (rc < 0)
                    return entry_fail(u, GY_ESYS, -rc, "replace");
                if (mkdirat(dirfd, name, 0700) < 0)
                    return entry_fail(u, GY_ESYS, errno, "mkdir");
            }
        }
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return entry_fail(u, GY_ESYS, errno, "open directory");
    uid_t uid = 0;
    gid_t gid = 0;
    int rc = entry_owner(u, e, &uid, &gid);
    if (rc == 0 && u->root && fchown(fd, uid, gid) < 0)
        rc = entry_fail(u, GY_ESYS, errno, "chown");
    if (rc == 0)
        rc = xattrs_apply(u, e, fd, dirfd, name);
    close(fd);
    if (rc < 0)
        return rc;
    u->dirs = gy_xrealloc(u->dirs, (u->n_dirs + 1) * sizeof(*u->dirs));
    struct deferred_dir *d = &u->dirs[u->n_dirs++];
    d->path = gy_xstrdup(clean);
    d->mode = archive_entry_perm(e) & 07777;
    entry_times(e, d->times);
    return 0;
}

static int entry_hardlink(struct unpack *u, const char *target, int dirfd, const char *name,
                          const char *clean)
{
    char tclean[PATH_MAX];
    int rc = path_clean(u, target, "hard link target", tclean, sizeof(tclean));
    if (rc < 0)
        return rc;
    if (tclean[0] == '\0')
        return entry_fail(u, GY_EPERM, 0, "hard link to the layer's root refused");
    if (strcmp(tclean, clean) == 0)
        return 0; /* a link to itself */
    const char *tdir, *tbase;
    path_split(tclean, &tdir, &tbase);
    cleanup_close int tparent = dir_open(u, tdir, false);
    if (tparent < 0)
        return tparent;
    struct stat st;
    if (fstatat(tparent, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, errno == ENOENT ? GY_ENOTFOUND : GY_ESYS, 0,
                          "hard link target \"%s\" is not an earlier entry of the layer", target);
    if (S_ISDIR(st.st_mode))
        return entry_fail(u, GY_EPERM, 0, "hard link to a directory refused");
    if ((rc = remove_at(dirfd, name, st.st_dev, 0)) < 0)
        return entry_fail(u, GY_ESYS, -rc, "replace");
    /* flags 0: a symlink target is linked itself, never followed. */
    if (linkat(tparent, tbase, dirfd, name, 0) < 0)
        return entry_fail(u, GY_ESYS, errno, "link to \"%s\"", target);
    return 0;
}

/* ".wh.NAME": hides NAME of the layers below, as overlayfs' whiteout, a 0/0 character
 * device (which the kernel lets unprivileged users make since Linux 5.8). */
static int entry_whiteout(struct unpack *u, int dirfd, const char *name)
{
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return entry_fail(u, GY_EPERM, 0, "whiteout of \"%s\" refused", name);
    struct stat st;
    if (fstatat(dirfd, ".", &st, 0) < 0)
        return entry_fail(u, GY_ESYS, errno, "stat");
    int rc = remove_at(dirfd, name, st.st_dev, 0);
    if (rc < 0)
        return entry_fail(u, GY_ESYS, -rc, "replace");
    if (mknodat(dirfd, name, S_IFCHR | 0, makedev(0, 0)) < 0)
        return entry_fail(u, GY_ESYS, errno, "make whiteout");
    if (u->root && fchownat(dirfd, name, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, GY_ESYS, errno, "chown whiteout");
    return 0;
}

/* ".wh..wh..opq": the directory hides everything of the layers below. */
static int entry_opaque(struct unpack *u, int dirfd)
{
    cleanup_close int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return entry_fail(u, GY_ESYS, errno, "open directory");
    if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0) {
        if (errno == EPERM)
            return entry_fail(u, GY_EPERM, 0,
                              "an opaque directory (trusted.overlay.opaque) needs root");
        return entry_fail(u, GY_ESYS, errno, "set trusted.overlay.opaque");
    }
    return 0;
}

static int entry_apply(struct unpack *u, struct archive_entry *e)
{
    char clean[PATH_MAX];
    int rc = path_clean(u, u->entry, "path", clean, sizeof(clean));
    if (rc < 0)
        return rc;
    char copy[PATH_MAX];
    memcpy(copy, clean, sizeof(copy));
    const char *dir, *base;
    path_split(copy, &dir, &base);
    mode_t type = archive_entry_filetype(e);
    const char *hardlink = archive_entry_hardlink(e);

    if (clean[0] == '\0' && (type != AE_IFDIR || hardlink != NULL))
        return entry_fail(u, GY_EPERM, 0, "the layer's root must be a directory");
    cleanup_close int dirfd = dir_open(u, dir, true);
    if (dirfd < 0)
        return dirfd;

    if (strncmp(base, ".wh.", 4) == 0) {
        if (strcmp(base, ".wh..wh..opq") == 0)
            return entry_opaque(u, dirfd);
        if (strncmp(base, ".wh..wh.", 8) == 0)
            return 0; /* aufs bookkeeping (.wh..wh.plnk and the like): nothing to apply */
        return entry_whiteout(u, dirfd, base + 4);
    }
    if (hardlink != NULL)
        return entry_hardlink(u, hardlink, dirfd, base, clean);
    if (type == AE_IFDIR)
        return entry_directory(u, e, dirfd, base, clean);

    struct stat st;
    if (fstatat(dirfd, ".", &st, 0) < 0)
        return entry_fail(u, GY_ESYS, errno, "stat");
    if ((rc = remove_at(dirfd, base, st.st_dev, 0)) < 0)
        return entry_fail(u, GY_ESYS, -rc, "replace");
    switch (type) {
    case AE_IFREG:
        return entry_regular(u, e, dirfd, base);
    case AE_IFLNK: {
        const char *target = archive_entry_symlink(e);
        if (target == NULL || target[0] == '\0' || strlen(target) >= PATH_MAX)
            return entry_fail(u, GY_EINVAL, 0, "symlink without a valid target");
        /* The target is stored as written, absolute or not: nothing here follows it, and
         * in the container it resolves inside the container's root. */
        if (symlinkat(target, dirfd, base) < 0)
            return entry_fail(u, GY_ESYS, errno, "symlink");
        return meta_apply_at(u, e, dirfd, base, true);
    }
    case AE_IFCHR:
    case AE_IFBLK:
        if (!u->root)
            return entry_fail(u, GY_EPERM, 0,
                              "device node refused: the agent does not run as root");
        if (mknodat(dirfd, base, (type == AE_IFCHR ? S_IFCHR : S_IFBLK) | 0600,
                    archive_entry_rdev(e)) < 0)
            return entry_fail(u, GY_ESYS, errno, "mknod");
        return meta_apply_at(u, e, dirfd, base, false);
    case AE_IFIFO:
        if (mknodat(dirfd, base, S_IFIFO | 0600, 0) < 0)
            return entry_fail(u, GY_ESYS, errno, "mkfifo");
        return meta_apply_at(u, e, dirfd, base, false);
    case AE_IFSOCK:
        return 0; /* a socket cannot be restored; tar implementations skip it too */
    default:
        return entry_fail(u, GY_EINVAL, 0, "unknown entry type 0%o", (unsigned)type);
    }
}

/* Directory modes and times, once nothing more is written in them. A directory an entry
 * later replaced is skipped. */
static int dirs_finish(struct unpack *u)
{
    for (size_t i = u->n_dirs; i-- > 0;) {
        struct deferred_dir *d = &u->dirs[i];
        u->entry = d->path;
        struct gy_error quiet;
        struct gy_error *saved = u->err;
        u->err = &quiet;
        int pfd = dir_open(u, d->path, false);
        u->err = saved;
        if (pfd < 0)
            continue;
        int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(pfd);
        if (fd < 0)
            return entry_fail(u, GY_ESYS, errno, "open directory");
        int rc = 0;
        if (fchmod(fd, d->mode) < 0)
            rc = entry_fail(u, GY_ESYS, errno, "chmod");
        else if (futimens(fd, d->times) < 0)
            rc = entry_fail(u, GY_ESYS, errno, "set times");
        close(fd);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ======================================================================================
 * Reading the blob
 * ====================================================================================== */

static la_ssize_t blob_read(struct archive *a, void *arg, const void **buf)
{
    struct unpack *u = arg;
    ssize_t n;
    do
        n = read(u->blob_fd, u->blob_buf, READ_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        archive_set_error(a, errno, "read layer blob");
        return -1;
    }
    EVP_DigestUpdate(u->blob_md, u->blob_buf, (size_t)n);
    *buf = u->blob_buf;
    return n;
}

static la_ssize_t tar_read(struct archive *a, void *arg, const void **buf)
{
    struct unpack *u = arg;
    if (u->outer_eof)
        return 0;
    la_ssize_t n = archive_read_data(u->outer, u->tar_buf, READ_CHUNK);
    if (n < 0) {
        archive_set_error(a, EIO, "decompress: %s", archive_error_string(u->outer));
        return -1;
    }
    if (n == 0)
        u->outer_eof = true;
    if (n > u->max_bytes - u->stream_bytes) {
        u->too_big = true;
        archive_set_error(a, EIO, "the layer unpacks to more than %lld bytes",
                          (long long)u->max_bytes);
        return -1;
    }
    u->stream_bytes += n;
    EVP_DigestUpdate(u->diff_md, u->tar_buf, (size_t)n);
    *buf = u->tar_buf;
    return n;
}

static void digest_final(EVP_MD_CTX *md, char out[OCI_DIGEST_BUF])
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md, raw, &len);
    oci_digest_format(raw, out);
}

static int stream_open(struct unpack *u)
{
    u->outer = archive_read_new();
    u->inner = archive_read_new();
    if (u->outer == NULL || u->inner == NULL)
        return gy_error_set(u->err, GY_ENOMEM, "libarchive reader");
    /* ARCHIVE_WARN here would mean an external program does the work: refused. */
    if (archive_read_support_filter_gzip(u->outer) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(u->outer) != ARCHIVE_OK)
        return gy_error_set(u->err, GY_EINTERNAL,
                            "this libarchive has no built-in gzip or zstd decoder");
    archive_read_support_format_raw(u->outer);
    archive_read_support_format_empty(u->outer);
    if (archive_read_open(u->outer, u, NULL, blob_read, NULL) != ARCHIVE_OK)
        return gy_error_set(u->err, GY_EIO, "read blob: %s", archive_error_string(u->outer));
    struct archive_entry *raw;
    int r = archive_read_next_header(u->outer, &raw);
    if (r == ARCHIVE_EOF)
        u->outer_eof = true;
    else if (r < ARCHIVE_WARN)
        return gy_error_set(u->err, GY_EIO, "read blob: %s", archive_error_string(u->outer));
    int filters = archive_filter_count(u->outer);
    if (filters > 2)
        return gy_error_set(u->err, GY_EINVAL,
                            "the blob is compressed more than once (%s over %s), refused",
                            archive_filter_name(u->outer, 0), archive_filter_name(u->outer, 1));
    int code = filters == 2 ? archive_filter_code(u->outer, 0) : ARCHIVE_FILTER_NONE;
    snprintf(u->compression, sizeof(u->compression), "%s",
             code == ARCHIVE_FILTER_GZIP   ? "gzip"
             : code == ARCHIVE_FILTER_ZSTD ? "zstd"
                                           : "none");
    archive_read_support_format_tar(u->inner);
    archive_read_support_format_empty(u->inner);
    if (archive_read_open(u->inner, u, NULL, tar_read, NULL) != ARCHIVE_OK) {
        if (u->too_big)
            return gy_error_set(u->err, GY_ETOOBIG,
                                "the layer unpacks to more than %lld bytes (max_layer_bytes)",
                                (long long)u->max_bytes);
        return gy_error_set(u->err, GY_EINVAL, "not a tar layer: %s",
                            archive_error_string(u->inner));
    }
    return 0;
}

/* Reads the rest of both streams through their hashes (the end-of-archive blocks, any
 * padding after them) and checks the digests. */
static int stream_verify(struct unpack *u, const char *diff_id, char actual_diff[OCI_DIGEST_BUF])
{
    const void *buf;
    la_ssize_t n;
    while ((n = tar_read(u->inner, u, &buf)) > 0)
        ;
    if (n < 0) {
        if (u->too_big)
            return gy_error_set(u->err, GY_ETOOBIG,
                                "the layer unpacks to more than %lld bytes (max_layer_bytes)",
                                (long long)u->max_bytes);
        return gy_error_set(u->err, GY_EIO, "read: %s", archive_error_string(u->inner));
    }
    while ((n = blob_read(u->outer, u, &buf)) > 0)
        ;
    if (n < 0)
        return gy_error_sys(u->err, errno, "read blob");
    char actual_blob[OCI_DIGEST_BUF];
    digest_final(u->blob_md, actual_blob);
    digest_final(u->diff_md, actual_diff);
    if (strcmp(actual_blob, u->digest) != 0)
        return gy_error_set(u->err, GY_EIO,
                            "the stored blob hashes to %s: the store is damaged; remove the "
                            "blob and pull again",
                            actual_blob);
    if (diff_id != NULL && strcmp(actual_diff, diff_id) != 0)
        return gy_error_set(u->err, GY_EPROTO,
                            "diff_id mismatch: the uncompressed layer hashes to %s, the image "
                            "config says %s",
                            actual_diff, diff_id);
    return 0;
}

/* ======================================================================================
 * Unpacking
 * ====================================================================================== */

static int layer_json_write(struct unpack *u, int workfd, const char *diff_id_actual, int64_t now)
{
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "digest", u->digest, "diff_id", diff_id_actual,
                  "compression", u->compression, "size_bytes", (json_int_t)u->content_bytes,
                  "entries", (json_int_t)u->entries, "unpacked_ms", (json_int_t)now);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL)
        return gy_error_set(u->err, GY_ENOMEM, "layer.json");
    cleanup_close int fd =
        openat(workfd, "layer.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t len = strlen(text), done = 0;
    while (fd >= 0 && done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            done += (size_t)n;
    }
    free(text);
    if (fd < 0 || done < len)
        return gy_error_sys(u->err, errno, "write layer.json");
    return 0;
}

/* Unpacks the blob into work/fs and writes work/layer.json; work is a fresh directory. */
static int unpack_into(struct unpack *u, const char *blob_path, const char *work,
                       const char *diff_id)
{
    cleanup_close int workfd = open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (workfd < 0)
        return gy_error_sys(u->err, errno, "open %s", work);
    if (mkdirat(workfd, "fs", 0755) < 0 || fchmodat(workfd, "fs", 0755, 0) < 0)
        return gy_error_sys(u->err, errno, "mkdir %s/fs", work);
    u->fs_fd = openat(workfd, "fs", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u->fs_fd < 0)
        return gy_error_sys(u->err, errno, "open %s/fs", work);
    u->blob_fd = open(blob_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (u->blob_fd < 0)
        return gy_error_sys(u->err, errno, "open %s", blob_path);
    u->blob_md = EVP_MD_CTX_new();
    u->diff_md = EVP_MD_CTX_new();
    if (u->blob_md == NULL || u->diff_md == NULL ||
        EVP_DigestInit_ex(u->blob_md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(u->diff_md, EVP_sha256(), NULL) != 1)
        return gy_error_set(u->err, GY_EINTERNAL, "SHA-256 is not available from OpenSSL");
    u->blob_buf = gy_xmalloc(READ_CHUNK);
    u->tar_buf = gy_xmalloc(READ_CHUNK);
    int rc = stream_open(u);
    if (rc < 0)
        return rc;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(u->inner, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            if (u->too_big)
                return gy_error_set(u->err, GY_ETOOBIG,
                                    "the layer unpacks to more than %lld bytes "
                                    "(max_layer_bytes)",
                                    (long long)u->max_bytes);
            return gy_error_set(u->err, GY_EINVAL, "read tar after %lld entries: %s",
                                (long long)u->entries, archive_error_string(u->inner));
        }
        u->entry = archive_entry_pathname(e);
        if (u->entry == NULL)
            u->entry = archive_entry_pathname_utf8(e);
        if (u->entry == NULL)
            return gy_error_set(u->err, GY_EINVAL, "entry %lld has no readable path",
                                (long long)u->entries);
        if ((rc = entry_apply(u, e)) < 0)
            return rc;
        u->entries++;
    }
    if ((rc = dirs_finish(u)) < 0)
        return rc;
    char diff[OCI_DIGEST_BUF];
    if ((rc = stream_verify(u, diff_id, diff)) < 0)
        return rc;
    if ((rc = layer_json_write(u, workfd, diff, oci_store_now_ms(u->store))) < 0)
        return rc;
    /* Everything written must be on disk before the rename makes the layer visible. */
    if (syncfs(workfd) < 0)
        return gy_error_sys(u->err, errno, "sync %s", work);
    return 0;
}

static void unpack_free(struct unpack *u)
{
    if (u->inner != NULL)
        archive_read_free(u->inner);
    if (u->outer != NULL)
        archive_read_free(u->outer);
    EVP_MD_CTX_free(u->blob_md);
    EVP_MD_CTX_free(u->diff_md);
    free(u->blob_buf);
    free(u->tar_buf);
    if (u->blob_fd >= 0)
        close(u->blob_fd);
    if (u->fs_fd >= 0)
        close(u->fs_fd);
    for (size_t i = 0; i < u->n_dirs; i++)
        free(u->dirs[i].path);
    free(u->dirs);
}

/* 1 when the layer is unpacked (checking diff_id when given), 0 when not, or an error. */
static int layer_ready(const struct oci_store *store, const char *digest, const char *diff_id,
                       struct gy_error *err)
{
    struct oci_layer_info info;
    int rc = oci_layer_info(store, digest, &info, err);
    if (rc == -GY_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (diff_id != NULL && strcmp(info.diff_id, diff_id) != 0)
        return gy_error_set(err, GY_EPROTO,
                            "diff_id mismatch: the uncompressed layer hashes to %s, the image "
                            "config says %s",
                            info.diff_id, diff_id);
    return 1;
}

static int unpack_locked(struct oci_store *store, const char *digest, const char *diff_id,
                         const char *final, struct gy_error *err)
{
    const char *root = oci_store_root(store);
    char blob[PATH_MAX], work[PATH_MAX];
    int rc = oci_store_blob_path(store, digest, blob, sizeof(blob), err);
    if (rc < 0)
        return rc;
    if (access(blob, F_OK) < 0)
        return gy_error_set(err, GY_ENOTFOUND, "blob %s is not in the store", digest);
    if (!path_fmt(work, sizeof(work), "%s/tmp/layer-%s-XXXXXX", root, digest + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", root);
    if (mkdtemp(work) == NULL)
        return gy_error_sys(err, errno, "mkdtemp %s", work);
    struct unpack u = {
        .store = store,
        .digest = digest,
        .max_bytes = oci_store_get_options(store)->max_layer_bytes,
        .use_openat2 = !oci_store_get_options(store)->no_openat2,
        .root = geteuid() == 0,
        .err = err,
        .blob_fd = -1,
        .fs_fd = -1,
    };
    rc = unpack_into(&u, blob, work, diff_id);
    unpack_free(&u);
    if (rc == 0 && chmod(work, 0700) < 0)
        rc = gy_error_sys(err, errno, "chmod %s", work);
    if (rc == 0 && rename(work, final) < 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) {
            rc = gy_error_sys(err, errno, "rename %s to %s", work, final);
        } else if (layer_ready(store, digest, NULL, NULL) == 1) {
            /* Another unpacker, which did not share our lock file, finished first: its
             * copy is as good as ours. */
            remove_tree(work);
            return 0;
        } else {
            /* A directory without its record is debris (nothing renames one into place):
             * move it aside and take its place. */
            char debris[PATH_MAX];
            if (!path_fmt(debris, sizeof(debris), "%s/tmp/layer-%s-XXXXXX", root, digest + 7) ||
                mkdtemp(debris) == NULL || rename(final, debris) < 0 || rename(work, final) < 0)
                rc = gy_error_sys(err, errno, "replace the incomplete %s", final);
            else
                remove_tree(debris);
        }
    }
    if (rc < 0) {
        remove_tree(work);
        return rc;
    }
    char layers[PATH_MAX];
    if (path_fmt(layers, sizeof(layers), "%s/layers", root)) {
        int fd = open(layers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    return 0;
}

int oci_layer_unpack(struct oci_store *store, const char *digest, const char *diff_id,
                     char **out_dir, struct gy_error *err)
{
    *out_dir = NULL;
    int rc = oci_digest_check(digest, err);
    if (rc < 0)
        return gy_error_wrap(err, "unpack layer");
    if (diff_id != NULL && (rc = oci_digest_check(diff_id, err)) < 0)
        return gy_error_wrap(err, "unpack layer %s: diff_id", digest);
    char final[PATH_MAX], fs[PATH_MAX];
    if ((rc = layer_paths(store, digest, final, sizeof(final), err)) < 0 ||
        !path_fmt(fs, sizeof(fs), "%s/fs", final))
        return gy_error_wrap(err, "unpack layer %s", digest);
    if ((rc = layer_ready(store, digest, diff_id, err)) < 0)
        return gy_error_wrap(err, "unpack layer %s", digest);
    if (rc == 0) {
        cleanup_close int store_lock = oci_store_lock(store, false, err);
        if (store_lock < 0)
            return gy_error_wrap(err, "unpack layer %s", digest);
        char name[80];
        lock_name(digest, name, sizeof(name));
        cleanup_close int layer_lock = oci_store_lock_named(store, name, false, err);
        if (layer_lock < 0)
            return gy_error_wrap(err, "unpack layer %s", digest);
        /* Whoever held the lock before us may have done the work. */
        if ((rc = layer_ready(store, digest, diff_id, err)) == 0) {
            rc = unpack_locked(store, digest, diff_id, final, err);
            if (rc == 0)
                rc = layer_ready(store, digest, diff_id, err);
        }
        if (rc < 0)
            return gy_error_wrap(err, "unpack layer %s", digest);
    }
    *out_dir = gy_xstrdup(fs);
    return 0;
}

int oci_layer_dir(const struct oci_store *store, const char *digest, char *buf, size_t len,
                  struct gy_error *err)
{
    int rc = oci_digest_check(digest, err);
    if (rc < 0)
        return rc;
    if (!path_fmt(buf, len, "%s/layers/%s/fs", oci_store_root(store), digest + 7))
        return gy_error_set(err, GY_EINVAL, "image store path too long: %s", oci_store_root(store));
    return 0;
}

int oci_layer_info(const struct oci_store *store, const char *digest, struct oci_layer_info *out,
                   struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    char final[PATH_MAX], path[PATH_MAX];
    int rc = oci_digest_check(digest, err);
    if (rc < 0 || (rc = layer_paths(store, digest, final, sizeof(final), err)) < 0)
        return rc;
    if (!path_fmt(path, sizeof(path), "%s/layer.json", final))
        return gy_error_set(err, GY_EINVAL, "image store path too long");
    if (access(path, F_OK) < 0 && errno == ENOENT)
        return gy_error_set(err, GY_ENOTFOUND, "layer %s is not unpacked", digest);
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return gy_error_set(err, GY_EIO, "layer %s: %s: %s", digest, path, jerr.text);
    const char *d = json_string_value(json_object_get(doc, "digest"));
    const char *diff = json_string_value(json_object_get(doc, "diff_id"));
    const char *comp = json_string_value(json_object_get(doc, "compression"));
    if (d == NULL || strcmp(d, digest) != 0 || oci_digest_check(diff, NULL) < 0 || comp == NULL ||
        strlen(comp) >= sizeof(out->compression)) {
        json_decref(doc);
        return gy_error_set(err, GY_EIO, "layer %s: %s is damaged", digest, path);
    }
    memcpy(out->digest, d, OCI_DIGEST_BUF);
    memcpy(out->diff_id, diff, OCI_DIGEST_BUF);
    snprintf(out->compression, sizeof(out->compression), "%s", comp);
    out->size_bytes = json_integer_value(json_object_get(doc, "size_bytes"));
    out->entries = json_integer_value(json_object_get(doc, "entries"));
    out->unpacked_ms = json_integer_value(json_object_get(doc, "unpacked_ms"));
    json_decref(doc);
    return 0;
}

int oci_layer_remove(struct oci_store *store, const char *digest,
                     const struct oci_overlay_mounts *mounts, struct gy_error *err)
{
    char final[PATH_MAX], work[PATH_MAX];
    int rc = oci_digest_check(digest, err);
    if (rc < 0 || (rc = layer_paths(store, digest, final, sizeof(final), err)) < 0)
        return gy_error_wrap(err, "remove layer");
    struct stat st;
    if (lstat(final, &st) < 0)
        return errno == ENOENT
                   ? gy_error_set(err, GY_ENOTFOUND, "layer %s is not unpacked", digest)
                   : gy_error_sys(err, errno, "remove layer %s: stat %s", digest, final);
    struct oci_overlay_mounts now = {0};
    if (mounts == NULL) {
        if ((rc = oci_overlay_mounts_read(&now, err)) < 0)
            return gy_error_wrap(err, "remove layer %s", digest);
        mounts = &now;
    }
    bool used = oci_overlay_mounts_use(mounts, final);
    oci_overlay_mounts_free(&now);
    if (used)
        return gy_error_set(err, GY_ECONFLICT, "remove layer %s: an overlay mount uses %s", digest,
                            final);
    char name[80];
    lock_name(digest, name, sizeof(name));
    cleanup_close int lock = oci_store_lock_named(store, name, true, err);
    if (lock < 0)
        return gy_error_set(err, GY_ECONFLICT, "remove layer %s: an unpack of it is under way",
                            digest);
    if (!path_fmt(work, sizeof(work), "%s/tmp/layer-%s-XXXXXX", oci_store_root(store),
                  digest + 7) ||
        mkdtemp(work) == NULL)
        return gy_error_sys(err, errno, "remove layer %s: mkdtemp", digest);
    if (rename(final, work) < 0) {
        rc = gy_error_sys(err, errno, "remove layer %s: rename %s to %s", digest, final, work);
        rmdir(work);
        return rc;
    }
    if ((rc = remove_tree(work)) < 0)
        return gy_error_sys(err, -rc, "remove layer %s: remove %s", digest, work);
    char lock_path[PATH_MAX];
    if (path_fmt(lock_path, sizeof(lock_path), "%s/locks/%s.lock", oci_store_root(store), name))
        unlink(lock_path);
    return 0;
}

int oci_layer_clean_tmp(struct oci_store *store, struct gy_error *err)
{
    char dir[PATH_MAX];
    if (!path_fmt(dir, sizeof(dir), "%s/tmp", oci_store_root(store)))
        return gy_error_set(err, GY_EINVAL, "image store path too long");
    cleanup_closedir DIR *d = opendir(dir);
    if (d == NULL)
        return gy_error_sys(err, errno, "open %s", dir);
    struct stat st;
    if (fstat(dirfd(d), &st) < 0)
        return gy_error_sys(err, errno, "stat %s", dir);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char digest[OCI_DIGEST_BUF], name[80];
        if (strncmp(de->d_name, "layer-", 6) != 0 || strlen(de->d_name) < 6 + 64 + 1 ||
            de->d_name[6 + 64] != '-' ||
            !path_fmt(digest, sizeof(digest), "sha256:%.64s", de->d_name + 6) ||
            oci_digest_check(digest, NULL) < 0)
            continue;
        lock_name(digest, name, sizeof(name));
        int lock = oci_store_lock_named(store, name, true, NULL);
        if (lock < 0)
            continue; /* an unpack or a removal works there */
        if (remove_at(dirfd(d), de->d_name, st.st_dev, 0) == 0)
            count++;
        close(lock);
    }
    return count;
}
