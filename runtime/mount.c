/* The container's root file system: the root itself (bind or overlayfs), the config's
 * mounts, /dev, pivot_root, and the masked and read-only paths (runtime-spec config.md
 * "root", "mounts", config-linux.md "maskedPaths", "readonlyPaths"). Runs inside the new
 * mount namespace, so every mount disappears with the container. */
#include "runtime/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* Opens path inside the tree at rootfd, with symlinks resolved as if rootfd were "/", so
 * a hostile image cannot point a mount outside its root. */
static int open_in_root(int rootfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

/* Makes every missing component of path under rootfd (the last one as a file when
 * as_file) and returns an O_PATH descriptor of it. */
static int make_in_root(int rootfd, const char *path, bool as_file, struct gy_error *err)
{
    int fd = open_in_root(rootfd, path, O_PATH);
    if (fd >= 0)
        return fd;
    if (errno != ENOENT)
        return gy_error_sys(err, errno, "open %s in the container", path);
    cleanup_free char *copy = gy_xstrdup(path);
    cleanup_close int parent = open_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
    if (parent < 0)
        return gy_error_sys(err, errno, "open the container root");
    char *save = NULL;
    char *comp = strtok_r(copy, "/", &save);
    while (comp != NULL) {
        char *next = strtok_r(NULL, "/", &save);
        bool last = next == NULL;
        int child = open_in_root(parent, comp, O_PATH);
        if (child < 0 && errno == ENOENT) {
            if (last && as_file) {
                int f = openat(parent, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
                if (f < 0 && errno != EEXIST)
                    return gy_error_sys(err, errno, "create %s in the container", path);
                if (f >= 0)
                    close(f);
            } else if (mkdirat(parent, comp, 0755) < 0 && errno != EEXIST) {
                return gy_error_sys(err, errno, "mkdir %s in the container", path);
            }
            child = open_in_root(parent, comp, O_PATH);
        }
        if (child < 0)
            return gy_error_sys(err, errno, "open %s in the container", path);
        close(parent);
        parent = child;
        comp = next;
    }
    return gy_steal_fd(&parent);
}

static void fd_path(int fd, char buf[64])
{
    snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

/* Mount flags the kernel locks on an existing mount (they must be kept on remount). */
static unsigned long locked_flags(const char *path)
{
    struct statvfs st;
    unsigned long flags = 0;
    if (statvfs(path, &st) < 0)
        return 0;
    if (st.f_flag & ST_NOSUID)
        flags |= MS_NOSUID;
    if (st.f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (st.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    if (st.f_flag & ST_RDONLY)
        flags |= MS_RDONLY;
    return flags;
}

/* Remounts a bind mount with flags (MS_RDONLY, MS_NOSUID ...), keeping locked ones. */
static int remount_bind(const char *target, unsigned long flags, const char *what,
                        struct gy_error *err)
{
    unsigned long keep = locked_flags(target) & ~MS_RDONLY;
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | keep | flags, NULL) < 0)
        return gy_error_sys(err, errno, "remount %s", what);
    return 0;
}

static int mount_root(const struct rt_config *c, const struct rt_rootfs_args *a,
                      struct gy_error *err)
{
    if (a->n_layers == 0) {
        if (mount(a->rootfs, a->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
            return gy_error_sys(err, errno, "root.path: bind mount %s", a->rootfs);
        return 0;
    }
    /* overlayfs lists the top layer first; layers come base first. */
    size_t len = 64 + strlen(a->upper_dir) + strlen(a->work_dir);
    for (size_t i = 0; i < a->n_layers; i++)
        len += strlen(a->layers[i]) + 1;
    cleanup_free char *opts = gy_xmalloc(len);
    size_t used = (size_t)snprintf(opts, len, "lowerdir=");
    for (size_t i = a->n_layers; i-- > 0;)
        used += (size_t)snprintf(opts + used, len - used, "%s%s", a->layers[i], i > 0 ? ":" : "");
    snprintf(opts + used, len - used, ",upperdir=%s,workdir=%s", a->upper_dir, a->work_dir);
    if (strlen(opts) >= 4096)
        return gy_error_set(err, GY_ETOOBIG,
                            "overlay options for %zu layers exceed one page; use shorter "
                            "layer paths",
                            a->n_layers);
    (void)c;
    if (mount("overlay", a->rootfs, "overlay", 0, opts) < 0)
        return gy_error_sys(err, errno, "mount overlay on %s (%s)", a->rootfs, opts);
    return 0;
}

/* Mounts the container's own cgroup at dest: cgroup2 directly, v1 as a tmpfs holding a
 * bind of each controller's directory. */
static int mount_cgroup(int rootfd, const struct rt_mount *m, int destfd,
                        const struct rt_rootfs_args *a, const char *what, struct gy_error *err)
{
    char target[64];
    fd_path(destfd, target);
    unsigned long ro = m->flags & MS_RDONLY;
    unsigned long base = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    char **hosts = NULL, **names = NULL;
    int n = a->cgroup_ops->dirs(RT_CGROUP_MOUNT, a->cgroup_path, &hosts, &names, err);
    int rc = 0;
    if (strcmp(a->cgroup_ops->name, "v2") == 0) {
        if (mount("cgroup2", target, "cgroup2", base | ro, NULL) < 0 &&
            (mount(hosts[0], target, NULL, MS_BIND | MS_REC, NULL) < 0 ||
             (ro && remount_bind(target, MS_RDONLY | base, what, err) < 0)))
            rc = gy_error_sys(err, errno, "%s: mount cgroup2", what);
        goto out;
    }
    if (mount("tmpfs", target, "tmpfs", base, "mode=755") < 0) {
        rc = gy_error_sys(err, errno, "%s: mount tmpfs", what);
        goto out;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        cleanup_free char *sub = gy_xasprintf("%s/%s", m->destination, names[i]);
        cleanup_close int subfd = make_in_root(rootfd, sub, false, err);
        if (subfd < 0) {
            rc = subfd;
            break;
        }
        char subtarget[64];
        fd_path(subfd, subtarget);
        if (mount(hosts[i], subtarget, NULL, MS_BIND | MS_REC, NULL) < 0) {
            rc = gy_error_sys(err, errno, "%s: bind %s", what, hosts[i]);
            break;
        }
        if (ro) {
            cleanup_close int top = make_in_root(rootfd, sub, false, err);
            char toptarget[64];
            fd_path(top, toptarget);
            rc = top < 0 ? top : remount_bind(toptarget, MS_RDONLY | base, what, err);
        }
    }
    /* The path the target fd names must be re-resolved after mounting on top of it. */
    if (rc == 0 && ro) {
        cleanup_close int top = make_in_root(rootfd, m->destination, false, err);
        if (top < 0) {
            rc = top;
        } else {
            char toptarget[64];
            fd_path(top, toptarget);
            if (mount(NULL, toptarget, NULL, MS_REMOUNT | base | MS_RDONLY, "mode=755") < 0)
                rc = gy_error_sys(err, errno, "%s: remount read-only", what);
        }
    }
out:
    for (int i = 0; i < n; i++) {
        free(hosts[i]);
        free(names[i]);
    }
    free(hosts);
    free(names);
    return rc;
}

static int mount_one(int rootfd, const struct rt_mount *m, size_t index,
                     const struct rt_rootfs_args *a, struct gy_error *err)
{
    char what[96];
    snprintf(what, sizeof(what), "mounts[%zu] (%s)", index, m->destination);
    bool as_file = false;
    if (m->bind) {
        struct stat st;
        if (stat(m->source, &st) < 0)
            return gy_error_sys(err, errno, "%s: source %s", what, m->source);
        as_file = !S_ISDIR(st.st_mode);
    }
    cleanup_close int destfd = make_in_root(rootfd, m->destination, as_file, err);
    if (destfd < 0)
        return gy_error_wrap(err, "%s", what);
    char target[64];
    fd_path(destfd, target);
    if (m->type != NULL && (strcmp(m->type, "cgroup") == 0 || strcmp(m->type, "cgroup2") == 0) &&
        a->before_cgroup_mount != NULL) {
        int rc = a->before_cgroup_mount(a->ctx, err);
        if (rc < 0)
            return rc;
    }
    if (m->type != NULL && strcmp(m->type, "cgroup") == 0)
        return mount_cgroup(rootfd, m, destfd, a, what, err);
    if (m->bind) {
        if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0)
            return gy_error_sys(err, errno, "%s: bind %s", what, m->source);
        unsigned long extra = m->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
        if (extra != 0) {
            /* Re-resolve: the fd still names the directory under the new mount. */
            cleanup_close int top = make_in_root(rootfd, m->destination, as_file, err);
            if (top < 0)
                return gy_error_wrap(err, "%s", what);
            char toptarget[64];
            fd_path(top, toptarget);
            if (remount_bind(toptarget, extra, what, err) < 0)
                return -GY_ESYS;
        }
    } else {
        const char *source = m->source != NULL ? m->source : m->type;
        unsigned long flags = m->flags & ~(MS_BIND | MS_REC);
        if (mount(source, target, m->type, flags, m->data[0] != '\0' ? m->data : NULL) < 0) {
            int saved = errno;
            /* In a user namespace sysfs may only be mounted with a network namespace of
             * its own; a read-only bind of the host's /sys is the usual stand-in. */
            if (saved == EPERM && strcmp(m->type, "sysfs") == 0 &&
                mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) == 0) {
                cleanup_close int top = make_in_root(rootfd, m->destination, false, err);
                char toptarget[64];
                fd_path(top, toptarget);
                return top < 0
                           ? -GY_ESYS
                           : remount_bind(toptarget, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                          what, err);
            }
            return gy_error_sys(err, saved, "%s: mount %s", what, m->type);
        }
    }
    if (m->propagation != 0) {
        cleanup_close int top = make_in_root(rootfd, m->destination, as_file, err);
        char toptarget[64];
        fd_path(top, toptarget);
        if (top < 0 || mount(NULL, toptarget, NULL, m->propagation, NULL) < 0)
            return gy_error_sys(err, errno, "%s: set propagation", what);
    }
    return 0;
}

/* The standard device nodes of a container (runtime-spec config-linux.md "Default
 * Devices"). In a user namespace mknod is refused; the host's nodes are bound instead. */
static int make_devices(int rootfd, struct gy_error *err)
{
    static const struct {
        const char *name;
        unsigned int major, minor;
    } devices[] = {
        {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
        {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
    };
    static const struct {
        const char *name;
        const char *target;
    } links[] = {
        {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
        {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},         {"core", "/proc/kcore"},
    };
    cleanup_close int dev = open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY);
    if (dev < 0)
        return gy_error_sys(err, errno, "open /dev in the container");
    mode_t old = umask(0);
    int rc = 0;
    for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]) && rc == 0; i++) {
        dev_t nr = makedev(devices[i].major, devices[i].minor);
        if (mknodat(dev, devices[i].name, S_IFCHR | 0666, nr) == 0 || errno == EEXIST)
            continue;
        if (errno != EPERM) {
            rc = gy_error_sys(err, errno, "mknod /dev/%s", devices[i].name);
            break;
        }
        int f = openat(dev, devices[i].name, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (f < 0) {
            rc = gy_error_sys(err, errno, "create /dev/%s", devices[i].name);
            break;
        }
        close(f);
        cleanup_free char *host = gy_xasprintf("/dev/%s", devices[i].name);
        cleanup_close int target = openat(dev, devices[i].name, O_PATH | O_CLOEXEC);
        char tpath[64];
        fd_path(target, tpath);
        if (target < 0 || mount(host, tpath, NULL, MS_BIND, NULL) < 0)
            rc = gy_error_sys(err, errno, "bind %s", host);
    }
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]) && rc == 0; i++) {
        if (symlinkat(links[i].target, dev, links[i].name) < 0 && errno != EEXIST)
            rc = gy_error_sys(err, errno, "symlink /dev/%s", links[i].name);
    }
    umask(old);
    return rc;
}

/* linux.devices: each node at its path, with its mode and owner; in a user namespace,
 * where mknod is refused, the host's node at the same path is bound instead. */
static int make_config_devices(int rootfd, const struct rt_config *c, struct gy_error *err)
{
    mode_t old = umask(0);
    int rc = 0;
    for (size_t i = 0; i < c->n_device_nodes && rc == 0; i++) {
        const struct rt_device_node *d = &c->device_nodes[i];
        cleanup_free char *parent = gy_xstrdup(d->path);
        char *slash = strrchr(parent, '/');
        const char *base = d->path + (slash - parent) + 1;
        *slash = '\0';
        cleanup_close int dir = make_in_root(rootfd, parent[0] != '\0' ? parent : "/", false, err);
        if (dir < 0) {
            rc = gy_error_wrap(err, "linux.devices[%zu]", i);
            break;
        }
        mode_t kind = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
        unlinkat(dir, base, 0);
        if (mknodat(dir, base, kind | d->mode, makedev(d->major, d->minor)) == 0) {
            if (fchownat(dir, base, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
                rc = gy_error_sys(err, errno, "linux.devices[%zu]: chown %s", i, d->path);
            continue;
        }
        if (errno != EPERM) {
            rc = gy_error_sys(err, errno, "linux.devices[%zu]: mknod %s", i, d->path);
            break;
        }
        int f = openat(dir, base, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        if (f >= 0)
            close(f);
        cleanup_close int target = openat(dir, base, O_PATH | O_CLOEXEC);
        char tpath[64];
        fd_path(target, tpath);
        if (f < 0 || target < 0 || mount(d->path, tpath, NULL, MS_BIND, NULL) < 0)
            rc = gy_error_sys(err, errno, "linux.devices[%zu]: bind the host's %s", i, d->path);
    }
    umask(old);
    return rc;
}

static int pivot(const char *rootfs, struct gy_error *err)
{
    /* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only
     * the container's tree (runc's and crun's approach: no temporary directory). */
    if (chdir(rootfs) < 0)
        return gy_error_sys(err, errno, "chdir %s", rootfs);
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return gy_error_sys(err, errno, "pivot_root %s", rootfs);
    if (umount2(".", MNT_DETACH) < 0)
        return gy_error_sys(err, errno, "detach the old root");
    if (chdir("/") < 0)
        return gy_error_sys(err, errno, "chdir /");
    return 0;
}

static int write_sysctls(const struct rt_config *c, struct gy_error *err)
{
    for (size_t i = 0; i < c->n_sysctls; i++) {
        cleanup_free char *path = gy_xasprintf("/proc/sys/%s", c->sysctls[i].key);
        for (char *p = path + strlen("/proc/sys/"); *p != '\0'; p++)
            if (*p == '.')
                *p = '/';
        if (rt_file_write(path, c->sysctls[i].value, 0, err) < 0)
            return gy_error_wrap(err, "linux.sysctl.%s", c->sysctls[i].key);
    }
    return 0;
}

static int mask_paths(const struct rt_config *c, struct gy_error *err)
{
    for (size_t i = 0; i < c->n_masked_paths; i++) {
        const char *p = c->masked_paths[i];
        struct stat st;
        if (stat(p, &st) < 0) {
            if (errno == ENOENT)
                continue;
            return gy_error_sys(err, errno, "linux.maskedPaths[%zu]: stat %s", i, p);
        }
        int rc = S_ISDIR(st.st_mode)
                     ? mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             "size=0,mode=0")
                     : mount("/dev/null", p, NULL, MS_BIND, NULL);
        if (rc < 0)
            return gy_error_sys(err, errno, "linux.maskedPaths[%zu]: mask %s", i, p);
    }
    for (size_t i = 0; i < c->n_readonly_paths; i++) {
        const char *p = c->readonly_paths[i];
        if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT)
                continue;
            return gy_error_sys(err, errno, "linux.readonlyPaths[%zu]: bind %s", i, p);
        }
        char what[64];
        snprintf(what, sizeof(what), "linux.readonlyPaths[%zu]", i);
        if (remount_bind(p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, what, err) < 0)
            return -GY_ESYS;
    }
    return 0;
}

int rt_rootfs_setup(const struct rt_config *c, const struct rt_rootfs_args *a, struct gy_error *err)
{
    int rc;
    /* Nothing mounted below may propagate back to the host. */
    if (mount(NULL, "/", NULL, c->rootfs_propagation, NULL) < 0)
        return gy_error_sys(err, errno, "linux.rootfsPropagation: make / %s",
                            (c->rootfs_propagation & MS_SHARED) ? "shared" : "private");
    if ((rc = mount_root(c, a, err)) < 0)
        return rc;
    cleanup_close int rootfd = open(a->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return gy_error_sys(err, errno, "open %s", a->rootfs);
    bool dev_tmpfs = false;
    for (size_t i = 0; i < c->n_mounts; i++) {
        if ((rc = mount_one(rootfd, &c->mounts[i], i, a, err)) < 0)
            return rc;
        if (strcmp(c->mounts[i].destination, "/dev") == 0 && !c->mounts[i].bind)
            dev_tmpfs = true;
    }
    if (dev_tmpfs && (rc = make_devices(rootfd, err)) < 0)
        return rc;
    if ((rc = make_config_devices(rootfd, c, err)) < 0)
        return rc;
    if (a->before_pivot != NULL && (rc = a->before_pivot(a->ctx, err)) < 0)
        return rc;
    if ((rc = pivot(a->rootfs, err)) < 0)
        return rc;
    if ((rc = write_sysctls(c, err)) < 0)
        return rc;
    if ((rc = mask_paths(c, err)) < 0)
        return rc;
    if (c->root_readonly && remount_bind("/", MS_RDONLY, "root.readonly: /", err) < 0)
        return -GY_ESYS;
    return 0;
}

int rt_program_lookup(const char *prog, char *const *env, const char *cwd, char *path, size_t size,
                      struct gy_error *err)
{
    struct stat st;
    if (strchr(prog, '/') != NULL) {
        /* exec runs after the chdir to cwd: a relative path is checked from there. */
        char where[PATH_MAX];
        if (prog[0] != '/' && cwd != NULL)
            snprintf(where, sizeof(where), "%s/%s", cwd, prog);
        else
            snprintf(where, sizeof(where), "%s", prog);
        snprintf(path, size, "%s", prog);
        if (stat(where, &st) < 0)
            return errno == EACCES ? gy_error_set(err, GY_EPERM, "exec %s: permission denied", prog)
                                   : gy_error_set(err, GY_ENOTFOUND,
                                                  "exec %s: no such file or directory", prog);
        if (S_ISDIR(st.st_mode) || access(where, X_OK) < 0)
            return gy_error_set(err, GY_EPERM, "exec %s: permission denied", prog);
        return 0;
    }
    const char *search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], "PATH=", 5) == 0)
            search = env[i] + 5;
    bool denied = false;
    const char *p = search;
    while (*p != '\0') {
        const char *end = strchr(p, ':');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            snprintf(path, size, "%.*s/%s", (int)len, p, prog);
            if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
                if (access(path, X_OK) == 0)
                    return 0;
                denied = true;
            }
        }
        p += len;
        if (*p == ':')
            p++;
    }
    if (denied)
        return gy_error_set(err, GY_EPERM, "exec %s: permission denied", prog);
    return gy_error_set(err, GY_ENOTFOUND, "exec %s: executable file not found in $PATH", prog);
}
