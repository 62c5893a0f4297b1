/*
 * hash.c — the fixed 128-bit hash for output ids and lead keys (see hash.h).
 *
 * Two 64-bit FNV-1a lanes with different offsets, each finished with the splitmix64 mixer so
 * that similar inputs spread over the whole space. Not cryptographic: lead keys are verified
 * against the stored lead id in Redis, so a collision is detected, never silently merged.
 */

#include "funneld/hash.h"

#define FNV_PRIME 0x100000001b3ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void feed(uint64_t *a, uint64_t *b, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *a = (*a ^ p[i]) * FNV_PRIME;
        *b = (*b ^ p[i]) * FNV_PRIME;
        *b ^= *b >> 29;
    }
}

fn_hash128_t fn_hash_parts(const char *const *parts, const size_t *lens, size_t n)
{
    uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char len[8];
        uint64_t l = lens[i];
        for (int k = 0; k < 8; k++)
            len[k] = (unsigned char)(l >> (8 * k));
        feed(&a, &b, len, sizeof len);
        feed(&a, &b, (const unsigned char *)parts[i], lens[i]);
    }
    fn_hash128_t h = {mix64(a ^ mix64(b)), mix64(b + 0x9e3779b97f4a7c15ULL)};
    return h;
}

void fn_hash_hex(fn_hash128_t h, char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = digits[(h.hi >> (60 - 4 * i)) & 15];
        out[16 + i] = digits[(h.lo >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}
