/*
 * window.h — which time buckets of the flow counts make up a window. Pure: no I/O, no clock.
 *
 * The Lua step counts flow per minute bucket, minute = floor(ms / 60000), and per hour bucket,
 * hour = floor(ms / 3600000) (daemon/analytics/analytics.lua). A window is answered by
 * summing the counts of the buckets fn_window_plan lists: whole hours in the middle, minutes
 * at the edges: a 24 h window is 24 hour buckets when it ends on the hour and at most 83
 * (23 hours + 60 minutes) otherwise.
 *
 * Windows are whole minutes. Both ends are rounded down to the start of their minute:
 *
 *     window(end, span) = [floor_min(end - span), floor_min(end)),  floor_min(t) = the start
 *                                                                  of t's minute
 *
 * so with end and span whole minutes (ticks on the minute, spans like "1h") it is exactly
 * [end - span, end): the minute that starts at end is not in it (it has not happened yet).
 * For other values it holds the events whose minute is in that range: an end of 12:00:10
 * covers up to 11:59:59.999, and a span of 90 s covers 1 or 2 minutes depending on end.
 */
#ifndef FUNNELD_WINDOW_H
#define FUNNELD_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FN_WINDOW_MINUTE_MS 60000LL
#define FN_WINDOW_HOUR_MS 3600000LL
/* How long a flow bucket is kept after its hour ends, by Redis's clock (the expiry is set from
 * the event time's hour): analytics.lua's FLOW_RETENTION_MS, which must stay equal. A back-fill
 * of events older than this stores no flow at all (the expiry is already past). */
#define FN_WINDOW_RETENTION_MS (32 * 86400000LL)
/* Longer spans are cut to this: flow buckets are kept 32 days, baselines are at most 30. */
#define FN_WINDOW_MAX_SPAN_MS (31 * 86400000LL)
/* The most buckets a plan can need: 59 minutes + 742 hours + 59 minutes (a span of 44638
 * minutes starting 1 minute past an hour); test_window.c finds this maximum. */
#define FN_WINDOW_MAX_ITEMS 860

/* One bucket: an hour (index = floor(ms / 1 h)) or a minute (index = floor(ms / 1 min)). */
typedef struct fn_window_bucket {
    bool minute; /* false: hour bucket */
    int64_t index;
} fn_window_bucket_t;

/* The buckets of one window, in time order, disjoint, covering it exactly. */
typedef struct fn_window_plan {
    size_t n;
    fn_window_bucket_t item[FN_WINDOW_MAX_ITEMS];
} fn_window_plan_t;

/* The minute and hour buckets of a time in epoch ms (floor, also for negative times). */
int64_t fn_window_minute(int64_t ms);
int64_t fn_window_hour(int64_t ms);

/* Fills plan with the fewest buckets covering window(end_ms, span_ms) (above); span_ms is
 * clamped to 0 .. FN_WINDOW_MAX_SPAN_MS (0 or less: an empty plan). end_ms must be at least
 * INT64_MIN + FN_WINDOW_MAX_SPAN_MS. Returns plan->n. */
size_t fn_window_plan(int64_t end_ms, int64_t span_ms, fn_window_plan_t *plan);

/* The next tick to judge bottlenecks at (SPEC §5: every tick the clock passes, in order), for
 * ticks that are multiples of every > 0. last is the last tick judged (0: none yet, so nothing
 * to catch up), latest the clock's tick now (> last), and ticks at or before oldest are left
 * out: their flow buckets are gone, or all but the last hour's (FN_WINDOW_RETENTION_MS), and a
 * window judged on what is left would decide on part of the data. Ticks of
 * one minute share their windows (window() above rounds the end down to its minute), so after
 * last the next tick worth judging is the first one in a later minute. Returns that tick when
 * it comes before latest (a tick the clock passed), else latest. */
int64_t fn_window_next_tick(int64_t last, int64_t latest, int64_t every, int64_t oldest);

#endif
