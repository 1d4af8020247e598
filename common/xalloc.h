/* Allocation for daemons and the CLI: on failure print a message and abort. Code inside
 * the Raft state machine uses plain malloc and returns GY_ENOMEM instead. */
#ifndef GANTRY_COMMON_XALLOC_H
#define GANTRY_COMMON_XALLOC_H

#include <stddef.h>

void *gy_xmalloc(size_t size);
void *gy_xcalloc(size_t count, size_t size);
void *gy_xrealloc(void *ptr, size_t size);
char *gy_xstrdup(const char *s);
char *gy_xstrndup(const char *s, size_t n);
/* asprintf that aborts on failure; the caller frees the result. */
char *gy_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
