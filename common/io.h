/* Whole reads from a descriptor. */
#ifndef GANTRY_COMMON_IO_H
#define GANTRY_COMMON_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Reads up to len bytes into buf, across short reads and EINTR, stopping at end of file.
 * Returns the bytes read, or -1 with errno set. */
ssize_t gy_read_full(int fd, void *buf, size_t len);

#endif
