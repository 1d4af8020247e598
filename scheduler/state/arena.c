/* Bump allocator; see arena.h. */
#include "scheduler/state/arena.h"

#include <stdlib.h>

#define ALIGN 16

static void *arena_alloc(void *data, size_t size)
{
    struct sch_arena *a = data;
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (size <= a->cap - a->used) {
        void *p = a->block + a->used;
        a->used += size;
        return p;
    }
    if (a->n_spill == a->cap_spill) {
        size_t cap = a->cap_spill ? a->cap_spill * 2 : 16;
        void **grown = realloc(a->spill, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        a->spill = grown;
        a->cap_spill = cap;
    }
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        return NULL;
    a->spill[a->n_spill++] = p;
    a->spilled += size;
    return p;
}

static void arena_release(void *data, void *p)
{
    /* Everything goes at the reset. */
    (void)data;
    (void)p;
}

void sch_arena_init(struct sch_arena *a)
{
    *a = (struct sch_arena){.allocator = {.alloc = arena_alloc, .free = arena_release}};
    a->allocator.allocator_data = a;
}

void sch_arena_reset(struct sch_arena *a)
{
    for (size_t i = 0; i < a->n_spill; i++)
        free(a->spill[i]);
    a->n_spill = 0;
    size_t want = a->used + a->spilled;
    if (a->spilled > 0 && want > a->cap && want <= SCH_ARENA_KEEP_MAX) {
        /* Next time it all fits in the block. */
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < want)
            cap *= 2;
        if (cap > SCH_ARENA_KEEP_MAX)
            cap = SCH_ARENA_KEEP_MAX;
        uint8_t *block = malloc(cap);
        if (block != NULL) {
            free(a->block);
            a->block = block;
            a->cap = cap;
        }
    }
    a->used = 0;
    a->spilled = 0;
}

void sch_arena_free(struct sch_arena *a)
{
    sch_arena_reset(a);
    free(a->block);
    free(a->spill);
    sch_arena_init(a);
}
