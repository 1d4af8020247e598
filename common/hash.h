/* Hashing for the whole project: FNV-1a, 64-bit, for digests and short stable names, and
 * uthash (Debian's uthash-dev) as the one hash table. A struct kept in a table embeds
 * `UT_hash_handle hh;` and is found with HASH_FIND_STR and kin (uthash's documentation);
 * keys are hashed with FNV-1a as well, so every table in Gantry spreads keys the same way. */
#ifndef GANTRY_COMMON_HASH_H
#define GANTRY_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#define GY_FNV64_INIT UINT64_C(14695981039346656037)

/* Continues the FNV-1a hash h (start with GY_FNV64_INIT) over len bytes of data. */
static inline uint64_t gy_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* The 32-bit FNV-1a of a string, for short names that must stay the same across versions
 * (its low bits differ from gy_fnv1a64's). */
static inline uint32_t gy_fnv1a32_str(const char *s)
{
    uint32_t h = UINT32_C(2166136261);
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * UINT32_C(16777619);
    return h;
}

/* uthash hashes keys with FNV-1a (it expects an unsigned hashv of 32 bits). */
#define HASH_FUNCTION(keyptr, keylen, hashv)                                                       \
    do {                                                                                           \
        (hashv) = (unsigned)gy_fnv1a64(GY_FNV64_INIT, (keyptr), (size_t)(keylen));                 \
    } while (0)
/* A table that cannot grow stops the program with a message, as every allocation of
 * xalloc.h does. */
void gy_hash_oom(void) __attribute__((noreturn));
#define uthash_fatal(msg) gy_hash_oom()
#include <uthash.h>

#endif
