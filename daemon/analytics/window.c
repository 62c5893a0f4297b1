/*
 * window.c — the buckets of a flow window (see window.h).
 */
#include "funneld/window.h"

/* floor(a / b) for b > 0, also for negative a. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int64_t fn_window_minute(int64_t ms)
{
    return floor_div(ms, FN_WINDOW_MINUTE_MS);
}

int64_t fn_window_hour(int64_t ms)
{
    return floor_div(ms, FN_WINDOW_HOUR_MS);
}

/* Appends minute buckets lo .. hi - 1. */
static void put_minutes(fn_window_plan_t *plan, int64_t lo, int64_t hi)
{
    for (int64_t m = lo; m < hi; m++)
        plan->item[plan->n++] = (fn_window_bucket_t){.minute = true, .index = m};
}

size_t fn_window_plan(int64_t end_ms, int64_t span_ms, fn_window_plan_t *plan)
{
    plan->n = 0;
    if (span_ms <= 0)
        return 0;
    if (span_ms > FN_WINDOW_MAX_SPAN_MS)
        span_ms = FN_WINDOW_MAX_SPAN_MS;
    int64_t m0 = fn_window_minute(end_ms - span_ms), m1 = fn_window_minute(end_ms);
    /* whole hours h0 .. h1 - 1 lie inside minutes m0 .. m1 - 1 */
    int64_t h0 = -floor_div(-m0, 60), h1 = floor_div(m1, 60);
    if (h0 >= h1) {
        put_minutes(plan, m0, m1);
        return plan->n;
    }
    put_minutes(plan, m0, h0 * 60);
    for (int64_t h = h0; h < h1; h++)
        plan->item[plan->n++] = (fn_window_bucket_t){.minute = false, .index = h};
    put_minutes(plan, h1 * 60, m1);
    return plan->n;
}

int64_t fn_window_next_tick(int64_t last, int64_t latest, int64_t every, int64_t oldest)
{
    if (last <= 0 || latest <= last)
        return latest;
    int64_t from = (fn_window_minute(last) + 1) * FN_WINDOW_MINUTE_MS;
    if (oldest >= from)
        from = oldest + 1;
    int64_t t = -floor_div(-from, every) * every; /* the first tick at or after from */
    return t < latest ? t : latest;
}
