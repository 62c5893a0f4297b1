/*
 * sketch.c — the log-bucketed quantile sketch (see sketch.h for the formulas).
 */
#include <math.h>
#include <stdlib.h>

#include "funneld/sketch.h"

int fn_sketch_bucket(int64_t ms)
{
    if (ms < 1)
        return 0;
    if (ms > FN_SKETCH_MAX_MS)
        ms = FN_SKETCH_MAX_MS;
    return 1 + (int)ceil(log((double)ms) / FN_SKETCH_LOG_GAMMA);
}

double fn_sketch_bucket_value(int idx)
{
    if (idx <= 0)
        return 0;
    if (idx >= FN_SKETCH_BUCKETS)
        idx = FN_SKETCH_BUCKETS - 1;
    double gamma = (1 + FN_SKETCH_ALPHA) / (1 - FN_SKETCH_ALPHA);
    return 2 * pow(gamma, idx - 1) / (gamma + 1);
}

void fn_sketch_init(fn_sketch_t *s)
{
    s->counts = NULL;
    s->n = 0;
}

void fn_sketch_free(fn_sketch_t *s)
{
    free(s->counts);
    fn_sketch_init(s);
}

/* Allocates s's counts if it has none yet. */
static int ensure(fn_sketch_t *s)
{
    if (!s->counts)
        s->counts = calloc(FN_SKETCH_BUCKETS, sizeof *s->counts);
    return s->counts ? FN_OK : FN_ERR;
}

int fn_sketch_add(fn_sketch_t *s, int idx, uint64_t count)
{
    if (idx < 0 || idx >= FN_SKETCH_BUCKETS || s->n + count < s->n)
        return FN_ERR;
    if (count == 0)
        return FN_OK;
    if (ensure(s))
        return FN_ERR;
    s->counts[idx] += count;
    s->n += count;
    return FN_OK;
}

int fn_sketch_merge(fn_sketch_t *dst, const fn_sketch_t *src)
{
    if (src->n == 0)
        return FN_OK;
    if (dst->n + src->n < dst->n || ensure(dst))
        return FN_ERR;
    uint64_t n = src->n; /* read before dst->n changes: src may be dst */
    for (int i = 0; i < FN_SKETCH_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->n += n;
    return FN_OK;
}

uint64_t fn_sketch_count(const fn_sketch_t *s)
{
    return s->n;
}

double fn_sketch_quantile(const fn_sketch_t *s, double q)
{
    if (s->n == 0)
        return -1;
    double x = q * (double)s->n, near = nearbyint(x);
    if (fabs(x - near) <= 1e-12 * (near > 1 ? near : 1)) /* 0.7 * 100 is 70.00000000000001 */
        x = near;
    uint64_t rank = !(x > 1) ? 1 : x >= (double)s->n ? s->n : (uint64_t)ceil(x);
    uint64_t seen = 0;
    for (int i = 0; i < FN_SKETCH_BUCKETS; i++) {
        seen += s->counts[i];
        if (seen >= rank)
            return fn_sketch_bucket_value(i);
    }
    return fn_sketch_bucket_value(FN_SKETCH_BUCKETS - 1); /* not reached: seen ends at n */
}
