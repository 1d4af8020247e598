/* Scope-bound cleanup helpers (__attribute__((cleanup))) and explicit ownership hand-off. */
#ifndef GANTRY_COMMON_CLEANUP_H
#define GANTRY_COMMON_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>

static inline void gy__free_ptr(void *p)
{
    free(*(void **)p);
}
static inline void gy__close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void gy__fclose_file(FILE **f)
{
    if (*f != NULL)
        fclose(*f);
}
static inline void gy__closedir_dir(DIR **d)
{
    if (*d != NULL)
        closedir(*d);
}

/* `cleanup_free char *p = ...;` frees p when it goes out of scope. */
#define cleanup_free __attribute__((cleanup(gy__free_ptr)))
/* `cleanup_close int fd = -1;` closes fd (when >= 0) at end of scope. */
#define cleanup_close    __attribute__((cleanup(gy__close_fd)))
#define cleanup_fclose   __attribute__((cleanup(gy__fclose_file)))
#define cleanup_closedir __attribute__((cleanup(gy__closedir_dir)))

/* Returns *pp and sets *pp to NULL: ownership moves to the caller. */
static inline void *gy_steal_ptr(void *pp)
{
    void **p = pp;
    void *v = *p;
    *p = NULL;
    return v;
}

/* Returns *fd and sets it to -1: ownership of the descriptor moves to the caller. */
static inline int gy_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#endif
