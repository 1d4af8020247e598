/* Whole reads; see io.h. */
#include "common/io.h"

#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t gy_read_full(int fd, void *buf, size_t len)
{
    size_t have = 0;
    while (have < len) {
        ssize_t n = read(fd, (char *)buf + have, len - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

int gy_read_file(const char *path, size_t max, char **text, size_t *len, struct gy_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gy_error_set(err, errno == ENOENT ? GY_ENOTFOUND : GY_EIO, "%s: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        return gy_error_set(err, GY_EINVAL, "%s: not a regular file of at most %zu bytes", path,
                            max);
    }
    char *buf = gy_xmalloc((size_t)st.st_size + 1);
    ssize_t n = gy_read_full(fd, buf, (size_t)st.st_size);
    int saved = errno;
    close(fd);
    if (n < 0) {
        free(buf);
        return gy_error_set(err, GY_EIO, "%s: %s", path, strerror(saved));
    }
    buf[n] = '\0';
    *text = buf;
    *len = (size_t)n;
    return 0;
}

int gy_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                         struct gy_error *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
        return gy_error_set(err, GY_EINVAL, "%s: path too long", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return gy_error_set(err, GY_EIO, "%s: %s", tmp, strerror(errno));
    fchmod(fd, (mode_t)mode);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break;
        off += (size_t)w;
    }
    int saved = errno;
    if (off < len || fsync(fd) < 0) {
        if (off == len)
            saved = errno;
        close(fd);
        unlink(tmp);
        return gy_error_set(err, GY_EIO, "%s: %s", tmp, strerror(saved));
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        saved = errno;
        unlink(tmp);
        return gy_error_set(err, GY_EIO, "%s: %s", path, strerror(saved));
    }
    return 0;
}
