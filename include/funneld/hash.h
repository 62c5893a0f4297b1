/*
 * hash.h — the 128-bit hash behind output ids and lead keys. Ids must be a deterministic
 * function of their cause (SPEC §4), so this hash is fixed forever: changing it changes
 * every id consumers have already seen.
 */
#ifndef FUNNELD_HASH_H
#define FUNNELD_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct fn_hash128 {
    uint64_t hi, lo;
} fn_hash128_t;

/* Hashes parts[0..n) as one sequence, each part length-prefixed so ("ab","c") != ("a","bc"). */
fn_hash128_t fn_hash_parts(const char *const *parts, const size_t *lens, size_t n);

/* Writes h as 32 lowercase hex characters plus NUL into out (33 bytes). */
void fn_hash_hex(fn_hash128_t h, char out[33]);

#endif
