/* Small file helpers of the runtime: whole-file reads and writes of the short values
 * that cgroup and /proc files hold, "key value" lines, mkdir -p and pid lists. Errors
 * name the path. */
#include "runtime/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

int rt_file_write(const char *path, const char *text, int create, struct gy_error *err)
{
    cleanup_close int fd =
        open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);
    if (fd < 0)
        return gy_error_sys(err, errno, "open %s", path);
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    if (n < 0)
        return gy_error_sys(err, errno, "write \"%s\" to %s", text, path);
    if ((size_t)n != len)
        return gy_error_set(err, GY_EIO, "write \"%s\" to %s: short write", text, path);
    return 0;
}

int rt_file_read(const char *path, char *buf, size_t size, struct gy_error *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "open %s", path);
    size_t used = 0;
    while (used + 1 < size) {
        ssize_t n = read(fd, buf + used, size - 1 - used);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return gy_error_sys(err, errno, "read %s", path);
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    return (int)used;
}

int64_t rt_keyed_value(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *line = text;
    while (line != NULL && *line != '\0') {
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return strtoll(line + klen + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

int rt_mkdir_p(const char *path, struct gy_error *err)
{
    /* The parents usually exist already: one mkdir is then all it takes. */
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return gy_error_sys(err, errno, "mkdir %s", path);
    cleanup_free char *copy = gy_xstrdup(path);
    for (char *p = copy + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0755) < 0 && errno != EEXIST)
            return gy_error_sys(err, errno, "mkdir %s", copy);
        *p = '/';
    }
    if (mkdir(copy, 0755) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "mkdir %s", copy);
    return 0;
}

int rt_pids_parse(const char *text, pid_t **pids, size_t *count)
{
    size_t n = 0, cap = 16;
    pid_t *list = gy_xcalloc(cap, sizeof(*list));
    const char *p = text;
    while (*p != '\0') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (v > 0) {
            if (n == cap) {
                cap *= 2;
                list = gy_xrealloc(list, cap * sizeof(*list));
            }
            list[n++] = (pid_t)v;
        }
        p = end;
        while (*p == '\n' || *p == ' ')
            p++;
    }
    *pids = list;
    *count = n;
    return 0;
}
