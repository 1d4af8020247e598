/* Whole reads from a descriptor. */
#ifndef GANTRY_COMMON_IO_H
#define GANTRY_COMMON_IO_H

#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Reads up to len bytes into buf, across short reads and EINTR, stopping at end of file.
 * Returns the bytes read, or -1 with errno set. */
ssize_t gy_read_full(int fd, void *buf, size_t len);

/* Reads the whole file at path, of at most max bytes, into a NUL-terminated *text the caller
 * frees; *len is its length. */
int gy_read_file(const char *path, size_t max, char **text, size_t *len, struct gy_error *err);

/* Replaces the file at path with len bytes of data, or leaves it as it was: written to a
 * temporary file beside it, synced, then renamed over it. */
int gy_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                         struct gy_error *err);

#endif
