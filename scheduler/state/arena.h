/* A bump allocator for protobuf-c: a decoded Command is hundreds of small allocations
 * (strings, repeated fields, nested specs) that all go together after its apply, so they
 * come from one block and go with a reset instead of one free each. */
#ifndef GANTRY_SCHEDULER_STATE_ARENA_H
#define GANTRY_SCHEDULER_STATE_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* The block kept between resets at most; a larger decode spills to malloc. */
#define SCH_ARENA_KEEP_MAX (1u << 20)

struct sch_arena {
    uint8_t *block;
    size_t cap;
    size_t used;
    /* What did not fit: malloc'd, freed at the reset, which grows the block to fit it. */
    void **spill;
    size_t n_spill;
    size_t cap_spill;
    size_t spilled;
    ProtobufCAllocator allocator; /* for protobuf-c's unpack and free_unpacked */
};

void sch_arena_init(struct sch_arena *a);
/* Frees everything handed out since the last reset. */
void sch_arena_reset(struct sch_arena *a);
void sch_arena_free(struct sch_arena *a);

#endif
