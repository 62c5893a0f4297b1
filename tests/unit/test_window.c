/*
 * test_window.c — window plans against brute force: random event streams (one in 2026, one
 * around the epoch, with negative times) counted per minute and per hour as the Lua step does,
 * then for random (end, span) pairs the sum over the planned buckets must equal the
 * minute-by-minute sum over the window exactly, and for some pairs the count of the events
 * themselves; every plan is checked to be in order, contiguous, exact and minimal.
 */
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/window.h"

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

/* Uniform in lo .. hi - 1. */
static int64_t between(fn_test_rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(fn_test_rnd(r) % (uint64_t)(hi - lo));
}

/* The test's own floor division, written differently from window.c's. */
static int64_t fdiv(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* A stream of events and its counts per minute and per hour, as the Lua step keeps them. */
typedef struct stream {
    int64_t from, to; /* events in [from, to) */
    int64_t *ev;
    size_t n;
    int64_t mbase, hbase;
    int64_t *per_minute, *per_hour;
    size_t n_minutes, n_hours;
} stream_t;

static int64_t minute_count(const stream_t *s, int64_t m)
{
    return m >= s->mbase && m < s->mbase + (int64_t)s->n_minutes ? s->per_minute[m - s->mbase] : 0;
}

static int64_t hour_count(const stream_t *s, int64_t h)
{
    return h >= s->hbase && h < s->hbase + (int64_t)s->n_hours ? s->per_hour[h - s->hbase] : 0;
}

/* n events in [from, to): bursts (many in one minute), quiet stretches, events exactly on
 * minute and hour boundaries. */
static int stream_make(stream_t *s, fn_test_rng_t *r, int64_t from, int64_t to, size_t n)
{
    *s = (stream_t){.from = from, .to = to, .n = n};
    s->mbase = fdiv(from, MIN_MS);
    s->hbase = fdiv(from, HOUR_MS);
    s->n_minutes = (size_t)(fdiv(to - 1, MIN_MS) - s->mbase + 1);
    s->n_hours = (size_t)(fdiv(to - 1, HOUR_MS) - s->hbase + 1);
    s->ev = malloc(n * sizeof *s->ev);
    s->per_minute = calloc(s->n_minutes, sizeof *s->per_minute);
    s->per_hour = calloc(s->n_hours, sizeof *s->per_hour);
    if (!s->ev || !s->per_minute || !s->per_hour)
        return -1;
    int64_t burst = from;
    for (size_t i = 0; i < n; i++) {
        int64_t t;
        switch (fn_test_rnd(r) % 8) {
        case 0: /* a burst around one moment */
            if (fn_test_rnd(r) % 50 == 0)
                burst = between(r, from, to);
            t = burst + between(r, 0, 2 * MIN_MS);
            break;
        case 1: /* on a minute boundary */
            t = fdiv(between(r, from, to), MIN_MS) * MIN_MS;
            break;
        case 2: /* on an hour boundary, or the last ms before one */
            t = fdiv(between(r, from, to), HOUR_MS) * HOUR_MS - (int64_t)(fn_test_rnd(r) % 2);
            break;
        default: /* the first 60 % of the range is busier than the rest */
            t = between(r, from, fn_test_rnd(r) % 2 ? to : from + (to - from) * 6 / 10);
        }
        if (t < from || t >= to)
            t = from;
        s->ev[i] = t;
        s->per_minute[fdiv(t, MIN_MS) - s->mbase]++;
        s->per_hour[fdiv(t, HOUR_MS) - s->hbase]++;
    }
    return 0;
}

static void stream_free(stream_t *s)
{
    free(s->ev);
    free(s->per_minute);
    free(s->per_hour);
}

/* Start and end (exclusive) of a bucket, in minutes. */
static void item_minutes(const fn_window_bucket_t *it, int64_t *lo, int64_t *hi)
{
    *lo = it->minute ? it->index : it->index * 60;
    *hi = it->minute ? it->index + 1 : it->index * 60 + 60;
}

/* The plan covers minutes lo .. hi - 1 exactly, in order, without gaps or overlaps, and
 * with no minute bucket whose hour is wholly inside the window (fewest buckets). */
static int plan_ok(const fn_window_plan_t *p, int64_t lo, int64_t hi)
{
    if (p->n > FN_WINDOW_MAX_ITEMS)
        return 0;
    if (lo >= hi)
        return p->n == 0;
    int64_t at = lo;
    for (size_t i = 0; i < p->n; i++) {
        int64_t a, b;
        item_minutes(&p->item[i], &a, &b);
        if (a != at)
            return 0;
        if (p->item[i].minute) {
            int64_t h = fdiv(a, 60);
            if (h * 60 >= lo && h * 60 + 60 <= hi)
                return 0;
        }
        at = b;
    }
    return at == hi;
}

static long pairs, event_checks, items_total;

/* One (end, span): the plan's sum against the minute-by-minute sum, sometimes against the
 * events themselves. */
static void check_pair(const stream_t *s, int64_t end, int64_t span, int per_event)
{
    fn_window_plan_t p;
    size_t n = fn_window_plan(end, span, &p);
    CHECK(n == p.n);
    int64_t eff = span < 0 ? 0 : span > FN_WINDOW_MAX_SPAN_MS ? FN_WINDOW_MAX_SPAN_MS : span;
    int64_t lo = fdiv(end - eff, MIN_MS), hi = fdiv(end, MIN_MS);
    if (eff == 0)
        lo = hi;

    int64_t planned = 0, brute = 0;
    for (size_t i = 0; i < p.n; i++)
        planned +=
            p.item[i].minute ? minute_count(s, p.item[i].index) : hour_count(s, p.item[i].index);
    for (int64_t m = lo; m < hi; m++)
        brute += minute_count(s, m);
    if (planned != brute || !plan_ok(&p, lo, hi))
        fprintf(stderr, "end %lld span %lld: plan %lld brute %lld (%zu buckets)\n", (long long)end,
                (long long)span, (long long)planned, (long long)brute, p.n);
    CHECK_INT(planned, brute);
    CHECK(plan_ok(&p, lo, hi));
    if (per_event) {
        int64_t count = 0;
        for (size_t i = 0; i < s->n; i++)
            count += s->ev[i] >= lo * MIN_MS && s->ev[i] < hi * MIN_MS;
        CHECK_INT(planned, count);
        event_checks++;
    }
    pairs++;
    items_total += (long)p.n;
}

static int64_t random_span(fn_test_rng_t *r)
{
    static const int64_t fixed[] = {0,
                                    -5,
                                    1,
                                    MIN_MS - 1,
                                    MIN_MS,
                                    MIN_MS + 1,
                                    90000,
                                    HOUR_MS - 1,
                                    HOUR_MS,
                                    HOUR_MS + 1,
                                    2 * HOUR_MS - MIN_MS,
                                    DAY_MS,
                                    7 * DAY_MS,
                                    FN_WINDOW_MAX_SPAN_MS,
                                    FN_WINDOW_MAX_SPAN_MS + 1,
                                    30 * DAY_MS};
    switch (fn_test_rnd(r) % 4) {
    case 0:
        return fixed[fn_test_rnd(r) % (sizeof fixed / sizeof fixed[0])];
    case 1: /* whole minutes up to 3 hours */
        return between(r, 0, 181) * MIN_MS;
    case 2: /* any ms up to 3 hours */
        return between(r, 0, 3 * HOUR_MS);
    default: /* any ms up to a little over the cap */
        return between(r, 0, FN_WINDOW_MAX_SPAN_MS + 2 * HOUR_MS);
    }
}

static int64_t random_end(fn_test_rng_t *r, const stream_t *s)
{
    int64_t t = between(r, s->from - DAY_MS, s->to + DAY_MS);
    switch (fn_test_rnd(r) % 4) {
    case 0:
        return fdiv(t, MIN_MS) * MIN_MS;
    case 1:
        return fdiv(t, HOUR_MS) * HOUR_MS;
    default:
        return t;
    }
}

static void test_random(void)
{
    fn_test_rng_t r = {0x13198a2e03707344ULL};
    /* ten days in November 2026 (not on a minute), and six days around the epoch */
    const int64_t ranges[][2] = {{1795342500250LL, 1795342500250LL + 10 * DAY_MS},
                                 {-3 * DAY_MS - 12345, 3 * DAY_MS + 777}};
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        stream_t s;
        if (stream_make(&s, &r, ranges[k][0], ranges[k][1], 200000)) {
            CHECK(!"out of memory");
            stream_free(&s);
            return;
        }
        for (int i = 0; i < 10000; i++)
            check_pair(&s, random_end(&r, &s), random_span(&r), i % 40 == 0);
        /* every end within a few minutes of an hour, at every ms offset class */
        int64_t h = fdiv(s.from, HOUR_MS) * HOUR_MS + 5 * DAY_MS;
        for (int64_t end = h - 3 * MIN_MS; end <= h + 3 * MIN_MS; end += 7919)
            for (int j = 0; j < 8; j++)
                check_pair(&s, end, random_span(&r), 0);
        stream_free(&s);
    }
    printf("window: %ld (end, span) pairs, %ld also against the events, %.1f buckets per plan\n",
           pairs, event_checks, (double)items_total / (double)pairs);
}

static void test_shapes(void)
{
    const int64_t t0 = 1795341600000LL; /* 2026-11-22T10:00:00Z, on the hour */
    fn_window_plan_t p;
    CHECK_INT(fn_window_minute(-1), -1);
    CHECK_INT(fn_window_hour(-1), -1);
    CHECK_INT(fn_window_minute(59999), 0);
    CHECK_INT(fn_window_minute(60000), 1);
    CHECK_INT(fn_window_hour(3600000), 1);

    /* 24 h ending on the hour: 24 hour buckets, the last the hour before t0 */
    CHECK_INT(fn_window_plan(t0, DAY_MS, &p), 24);
    CHECK(!p.item[0].minute && p.item[0].index == t0 / HOUR_MS - 24);
    CHECK(!p.item[23].minute && p.item[23].index == t0 / HOUR_MS - 1);
    /* 24 h ending at :30: 30 minutes, 23 hours, 30 minutes */
    CHECK_INT(fn_window_plan(t0 + 30 * MIN_MS, DAY_MS, &p), 83);
    CHECK(p.item[0].minute && p.item[0].index == (t0 - DAY_MS) / MIN_MS + 30);
    CHECK(!p.item[30].minute && p.item[30].index == (t0 - DAY_MS) / HOUR_MS + 1);
    CHECK(p.item[82].minute && p.item[82].index == t0 / MIN_MS + 29);
    /* 1 h on the hour: one bucket; at :30, 60 minutes; ending 10 s into a minute: the same */
    CHECK_INT(fn_window_plan(t0, HOUR_MS, &p), 1);
    CHECK_INT(fn_window_plan(t0 + 30 * MIN_MS, HOUR_MS, &p), 60);
    CHECK_INT(fn_window_plan(t0 + 30 * MIN_MS + 10000, HOUR_MS, &p), 60);
    CHECK(p.item[59].index == t0 / MIN_MS + 29);
    /* spans that are not whole minutes */
    CHECK_INT(fn_window_plan(t0, 1, &p), 1); /* the minute before t0 */
    CHECK(p.item[0].minute && p.item[0].index == t0 / MIN_MS - 1);
    CHECK_INT(fn_window_plan(t0 + 30000, 1, &p), 0);
    CHECK_INT(fn_window_plan(t0, 90000, &p), 2);
    CHECK_INT(fn_window_plan(t0 + 40000, 90000, &p), 1);
    CHECK_INT(fn_window_plan(t0, 0, &p), 0);
    CHECK_INT(fn_window_plan(t0, -HOUR_MS, &p), 0);
    /* 118 minutes around one hour boundary, no hour whole: 118 minute buckets */
    CHECK_INT(fn_window_plan(t0 + 59 * MIN_MS, 118 * MIN_MS, &p), 118);

    /* the most buckets: every end minute of an hour with every span of the last two hours
     * below the cap (in whole minutes, and 1 ms more), and spans beyond the cap */
    size_t most = 0;
    for (int64_t end = t0; end < t0 + HOUR_MS; end += MIN_MS) {
        for (int64_t span = FN_WINDOW_MAX_SPAN_MS - 2 * HOUR_MS; span <= FN_WINDOW_MAX_SPAN_MS;
             span += MIN_MS)
            for (int64_t extra = 0; extra <= 1; extra++) {
                fn_window_plan(end, span + extra, &p);
                most = p.n > most ? p.n : most;
            }
        fn_window_plan(end, 30 * DAY_MS, &p);
        most = p.n > most ? p.n : most;
    }
    CHECK_INT(most, FN_WINDOW_MAX_ITEMS);
    CHECK_INT(fn_window_plan(t0 + 59 * MIN_MS, 44638 * MIN_MS, &p), FN_WINDOW_MAX_ITEMS);
}

/* fn_window_next_tick: the catch-up of ticks the clock passed (SPEC §5), as a table, then by
 * walking: from any start, repeated calls visit every minute the clock passed, in order, each
 * at its first tick, and end at the clock's tick; ticks with expired buckets are left out. */
static void test_next_tick(void)
{
    const int64_t M = FN_WINDOW_MINUTE_MS, H = FN_WINDOW_HOUR_MS, T = 1795000000000LL / H * H;
    /* automatic: locals are no constant expressions (GCC let a static table pass at -O2 only) */
    const struct {
        int64_t last, latest, every, oldest, want;
        const char *why;
    } cases[] = {
        {0, 100 * H, 10000, 0, 100 * H, "nothing evaluated yet: the clock's tick, no catch-up"},
        {T, T + 10000, 10000, 0, T + 10000, "the next tick is the clock's"},
        {T, T + 50000, 10000, 0, T + 50000, "ticks of last's minute share its window"},
        {T, T + 60000, 10000, 0, T + 60000, "the next minute's first tick is the clock's"},
        {T, T + 70000, 10000, 0, T + 60000, "passed: the next minute's first tick"},
        {T + 50000, T + 25 * H, 10000, 0, T + M, "a jump of a day: the next minute first"},
        {T, T + 10 * M, 45000, 0, T + 90000, "45 s ticks: the first one in a later minute"},
        {T, T + H, 10 * M, 0, T + 10 * M, "ticks longer than a minute: every one"},
        {T, T + 40 * 86400000LL, 10000, T + 30 * 86400000LL, T + 30 * 86400000LL + 10000,
         "expired buckets: the first tick after oldest"},
        {T, T + 40 * 86400000LL, 10000, T + 41 * 86400000LL, T + 40 * 86400000LL,
         "everything before the clock expired: the clock's tick"},
        {T + H, T + H, 10000, 0, T + H, "latest not after last: latest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int64_t got =
            fn_window_next_tick(cases[i].last, cases[i].latest, cases[i].every, cases[i].oldest);
        if (got != cases[i].want)
            fprintf(stderr, "case %zu (%s): got %lld, want %lld\n", i, cases[i].why, (long long)got,
                    (long long)cases[i].want);
        CHECK_INT(got, cases[i].want);
    }

    fn_test_rng_t r = {0x5eed7ULL};
    static const int64_t everies[] = {1000, 10000, 15000, 45000, 60000, 90000, 600000};
    for (int round = 0; round < 200; round++) {
        int64_t every = everies[fn_test_rnd(&r) % (sizeof everies / sizeof *everies)];
        int64_t last = (T + between(&r, 0, 3 * H)) / every * every;
        int64_t latest = (last + between(&r, 1, 5 * H)) / every * every;
        int64_t oldest = fn_test_rnd(&r) % 2 ? 0 : last + between(&r, 0, 2 * H);
        if (latest <= last)
            continue;
        int64_t prev = last, steps = 0, bad = 0;
        for (;;) {
            int64_t t = fn_window_next_tick(prev, latest, every, oldest);
            steps++;
            /* a tick, later than the one before, in a later minute unless it is latest */
            bad += t % every != 0 || t <= prev || t > latest;
            bad += t != latest && fn_window_minute(t) <= fn_window_minute(prev);
            bad += t != latest && t <= oldest;
            /* no tick skipped: none in a minute between prev's and t's, after oldest */
            int64_t first_missed = (fn_window_minute(prev) + 1) * M;
            if (first_missed <= oldest)
                first_missed = oldest + 1;
            first_missed = (first_missed + every - 1) / every * every;
            bad += first_missed < t && fn_window_minute(first_missed) < fn_window_minute(t);
            if (t >= latest || bad || steps > 100000)
                break;
            prev = t;
        }
        CHECK_INT(bad, 0);
    }
}

int main(void)
{
    test_next_tick();
    test_shapes();
    test_random();
    return fn_test_result("test_window");
}
