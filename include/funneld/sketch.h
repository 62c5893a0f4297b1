/*
 * sketch.h — a mergeable quantile sketch for durations in milliseconds (DDSketch-style log
 * buckets, relative accuracy FN_SKETCH_ALPHA = 2 %). Pure: no I/O, no clock, no globals.
 *
 * The Lua step counts durations in Redis hashes whose field is the bucket index, so the
 * bucket function is part of the data layout and must never change on a live data set.
 * With gamma = (1 + alpha) / (1 - alpha) = 51/49 and L = FN_SKETCH_LOG_GAMMA (ln gamma,
 * rounded to a double and written as the same literal in C and Lua):
 *
 *     bucket(ms) = 0                                        if ms < 1 (or NaN)
 *                = 1 + ceil(log(min(floor(ms), MAX)) / L)   otherwise, MAX = 10 years
 *
 *     value(0)   = 0
 *     value(i)   = 2 * gamma^(i-1) / (gamma + 1)            for i >= 1
 *
 * Bucket i >= 1 holds the values in (gamma^(i-2), gamma^(i-1)], so |value - ms| <= alpha * ms
 * for every 0 <= ms <= MAX (beyond MAX the estimate is MAX's). The "1 +" keeps bucket 0 for
 * zero alone: 1 ms is bucket 1 (log(1) = 0), 2 ms is bucket 19 (buckets 2..18 hold no whole
 * millisecond), MAX is bucket 663: 664 indexes, of which 607 are reached by whole milliseconds.
 *
 * The Lua twin is daemon/analytics/sketch.lua (sketch_bucket). Lua 5.1's math.log and
 * math.ceil are C's log and ceil on doubles, so both compute the same IEEE operations. No
 * whole millisecond up to MAX has log(ms) / L closer than 1.1e-12 (ms 8002667254, ~10 ulps)
 * to an integer, so a log() off by a few ulps on another machine still gives the same index.
 */
#ifndef FUNNELD_SKETCH_H
#define FUNNELD_SKETCH_H

#include <stdint.h>

#include "funneld/common.h"

#define FN_SKETCH_ALPHA 0.02
#define FN_SKETCH_LOG_GAMMA 0.040005334613699164 /* ln(51/49) as a double */
#define FN_SKETCH_MAX_MS 315576000000LL          /* 10 years of 365.25 days */
#define FN_SKETCH_BUCKETS 664                    /* indexes 0 .. 663 = bucket(MAX) */

/* Counts per bucket. Zero-initialised (fn_sketch_init) it is an empty sketch that owns
 * nothing; the counts array is allocated on the first add or merge. */
typedef struct fn_sketch {
    uint64_t *counts; /* FN_SKETCH_BUCKETS entries, or NULL while empty */
    uint64_t n;       /* sum of counts */
} fn_sketch_t;

/* The bucket index of a duration in ms (formula above): 0 .. FN_SKETCH_BUCKETS - 1. */
int fn_sketch_bucket(int64_t ms);

/* The representative value of bucket idx in ms (formula above); 0 for idx <= 0, and the last
 * bucket's value for idx beyond it. */
double fn_sketch_bucket_value(int idx);

/* Makes s an empty sketch. Allocates nothing. */
void fn_sketch_init(fn_sketch_t *s);

/* Frees what s owns and leaves it empty. */
void fn_sketch_free(fn_sketch_t *s);

/* Adds count values to bucket idx. Returns FN_ERR (s unchanged) for an index outside
 * 0 .. FN_SKETCH_BUCKETS - 1, a total that would overflow, or out of memory. */
int fn_sketch_add(fn_sketch_t *s, int idx, uint64_t count);

/* Adds every count of src to dst (src may be dst). Returns FN_ERR (dst unchanged) on
 * overflow or out of memory. */
int fn_sketch_merge(fn_sketch_t *dst, const fn_sketch_t *src);

/* How many values s holds. */
uint64_t fn_sketch_count(const fn_sketch_t *s);

/* The q-quantile by nearest rank: the estimate of the smallest value v such that at least
 * ceil(q * n) values are <= v (rank clamped to 1 .. n, NaN q is rank 1; q * n within a relative
 * 1e-12 of an integer counts as that integer, so q = 0.7 of 100 values is rank 70, not 71).
 * Within alpha of the true value. Returns -1 for an empty sketch. */
double fn_sketch_quantile(const fn_sketch_t *s, double q);

#endif
