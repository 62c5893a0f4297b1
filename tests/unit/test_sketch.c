/*
 * test_sketch.c — the quantile sketch: the bucket formula's accuracy over every whole ms up to
 * 2,000,000 and random ones up to 10 years, agreement with the Lua twin (sketch.lua) at every
 * bucket boundary, and quantiles of random data sets (eight distributions, heavy tails
 * included, 1 to 1,000,000 values, merged from random shards) against a sorted copy.
 */
#include <math.h>
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/sketch.h"

/* lua_first[i - 1] = the smallest whole ms that sketch.lua's sketch_bucket puts in bucket i
 * or above, i = 1 .. 663. Produced by Redis 7.0.15 (Lua 5.1) running sketch.lua followed by
 * a binary search per bucket (the generator is in the comment at the end of this file). */
// clang-format off
static const int64_t lua_first[] = {
    1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4,
    4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10, 10, 11, 11,
    12, 12, 12, 13, 13, 14, 15, 15, 16, 16, 17, 18, 18, 19, 20, 21, 21, 22, 23, 24, 25, 26, 27,
    28, 29, 30, 32, 33, 34, 36, 37, 39, 40, 42, 43, 45, 47, 49, 51, 53, 55, 57, 60, 62, 65, 67,
    70, 73, 76, 79, 82, 85, 89, 92, 96, 100, 104, 108, 113, 117, 122, 127, 132, 138, 143, 149,
    155, 161, 168, 175, 182, 189, 197, 205, 213, 222, 231, 241, 250, 261, 271, 282, 294, 306, 318,
    331, 345, 359, 373, 388, 404, 421, 438, 456, 474, 494, 514, 535, 557, 579, 603, 627, 653, 680,
    707, 736, 766, 798, 830, 864, 899, 936, 974, 1014, 1055, 1098, 1143, 1190, 1238, 1289, 1341,
    1396, 1453, 1512, 1574, 1638, 1705, 1775, 1847, 1922, 2001, 2082, 2167, 2256, 2348, 2444,
    2543, 2647, 2755, 2868, 2985, 3106, 3233, 3365, 3502, 3645, 3794, 3949, 4110, 4278, 4453,
    4634, 4823, 5020, 5225, 5438, 5660, 5891, 6132, 6382, 6643, 6914, 7196, 7489, 7795, 8113,
    8444, 8789, 9148, 9521, 9910, 10314, 10735, 11173, 11629, 12104, 12598, 13112, 13647, 14204,
    14784, 15388, 16016, 16669, 17350, 18058, 18795, 19562, 20360, 21191, 22056, 22957, 23894,
    24869, 25884, 26940, 28040, 29184, 30376, 31615, 32906, 34249, 35647, 37102, 38616, 40192,
    41833, 43540, 45317, 47167, 49092, 51096, 53181, 55352, 57611, 59963, 62410, 64957, 67609,
    70368, 73240, 76230, 79341, 82579, 85950, 89458, 93109, 96910, 100865, 104982, 109267, 113727,
    118369, 123200, 128229, 133463, 138910, 144580, 150481, 156623, 163016, 169670, 176595,
    183803, 191305, 199113, 207240, 215699, 224503, 233667, 243204, 253131, 263462, 274216,
    285409, 297058, 309183, 321802, 334937, 348608, 362837, 377646, 393061, 409104, 425802,
    443182, 461271, 480098, 499694, 520089, 541318, 563412, 586409, 610344, 635255, 661184,
    688171, 716260, 745495, 775923, 807594, 840557, 874865, 910574, 947740, 986423, 1026686,
    1068591, 1112207, 1157603, 1204852, 1254030, 1305215, 1358489, 1413937, 1471649, 1531716,
    1594235, 1659306, 1727033, 1797524, 1870892, 1947255, 2026735, 2109459, 2195559, 2285174,
    2378446, 2475526, 2576568, 2681734, 2791192, 2905118, 3023694, 3147111, 3275564, 3409260,
    3548414, 3693247, 3843992, 4000890, 4164191, 4334158, 4511062, 4695187, 4886828, 5086290,
    5293894, 5509971, 5734868, 5968944, 6212574, 6466149, 6730073, 7004770, 7290679, 7588258,
    7897982, 8220349, 8555874, 8905093, 9268566, 9646875, 10040625, 10450446, 10876995, 11320954,
    11783034, 12263974, 12764544, 13285546, 13827813, 14392214, 14979651, 15591065, 16227435,
    16889779, 17579158, 18296675, 19043478, 19820763, 20629773, 21471805, 22348205, 23260377,
    24209780, 25197934, 26226421, 27296887, 28411046, 29570680, 30777647, 32033877, 33341383,
    34702255, 36118674, 37592905, 39127310, 40724343, 42386561, 44116624, 45917303, 47791479,
    49742151, 51772443, 53885604, 56085016, 58374201, 60756821, 63236691, 65817781, 68504221,
    71300311, 74210528, 77239529, 80392163, 83673476, 87088720, 90643361, 94343090, 98193829,
    102201740, 106373240, 110715005, 115233984, 119937412, 124832817, 129928034, 135231219,
    140750860, 146495793, 152475213, 158698692, 165176189, 171918074, 178935139, 186238614,
    193840190, 201752034, 209986811, 218557701, 227478424, 236763257, 246427064, 256485311,
    266954099, 277850185, 289191009, 300994724, 313280223, 326067170, 339376034, 353228117,
    367645592, 382651534, 398269964, 414525881, 431445305, 449055317, 467384106, 486461008,
    506316559, 526982541, 548492033, 570879462, 594180665, 618432937, 643675098, 669947551,
    697292348, 725753261, 755375843, 786207510, 818297612, 851697515, 886460679, 922642747,
    960301635, 999497620, 1040293441, 1082754398, 1126948455, 1172946351, 1220821712, 1270651170,
    1322514483, 1376494666, 1432678121, 1491154779, 1552018240, 1615365923, 1681299226,
    1749923684, 1821349140, 1895689922, 1973065020, 2053598287, 2137418625, 2224660201LL,
    2315462658LL, 2409971338LL, 2508337515LL, 2610718639LL, 2717278583LL, 2828187913LL,
    2943624154LL, 3063772079LL, 3188824000LL, 3318980082LL, 3454448657LL, 3595446561LL,
    3742199482LL, 3894942318LL, 4053919555LL, 4219385660LL, 4391605482LL, 4570854686LL,
    4757420183LL, 4951600599LL, 5153706746LL, 5364062123LL, 5583003434LL, 5810881125LL,
    6048059947LL, 6294919536LL, 6551855028LL, 6819277682LL, 7097615546LL, 7387314140LL,
    7688837166LL, 8002667254LL, 8329306734LL, 8669278438LL, 9023126537LL, 9391417416LL,
    9774740576LL, 10173709579LL, 10588963031LL, 11021165604LL, 11471009098LL, 11939213551LL,
    12426528390LL, 12933733630LL, 13461641125LL, 14011095865LL, 14582977329LL, 15178200893LL,
    15797719297LL, 16442524166LL, 17113647602LL, 17812163830LL, 18539190925LL, 19295892596LL,
    20083480049LL, 20903213928LL, 21756406333LL, 22644422918LL, 23568685078LL, 24530672224LL,
    25531924152LL, 26574043505LL, 27658698342LL, 28787624805LL, 29962629899LL, 31185594384LL,
    32458475788LL, 33783311534LL, 35162222209LL, 36597414952LL, 38091186991LL, 39645929317LL,
    41264130514LL, 42948380739LL, 44701375871LL, 46525921825LL, 48424939042LL, 50401467167LL,
    52458669908LL, 54599840108LL, 56828405011LL, 59147931746LL, 61562133042LL, 64074873166LL,
    66690174111LL, 69412222034LL, 72245373954LL, 75194164727LL, 78263314308LL, 81457735300LL,
    84782540823LL, 88243052693LL, 91844809946LL, 95593577699LL, 99495356380LL, 103556391335LL,
    107783182818LL, 112182496402LL, 116761373806LL, 121527144165LL, 126487435764LL,
    131650188244LL, 137023665315LL, 142616467981LL, 148437548307LL, 154496223748LL,
    160802192064LL, 167365546842LL, 174196793652LL, 181306866863LL, 188707147143LL,
    196409479679LL, 204426193135LL, 212770119386LL, 221454614055LL, 230493577893LL,
    239901479032LL, 249693376135LL, 259884942508LL, 270492491182LL, 281533001026LL,
    293024143925LL, 304984313065LL
};
// clang-format on

/* sketch_bucket(ms) as sketch.lua computed it in the same Redis run. The Lua function also
 * gave 0 for -0.5, 0.5, 0.999, -inf and NaN, 1 for 1.5 (whole ms first) and 663 for inf. */
static const struct {
    int64_t ms;
    int bucket;
} lua_special[] = {
    {-1000000000000000000LL, 0},
    {-5, 0},
    {0, 0},
    {1, 1},
    {2, 19},
    {3, 29},
    {10, 59},
    {100, 117},
    {999, 174},
    {1000, 174},
    {60000, 277},
    {3600000, 379},
    {86400000, 458},
    {604800000, 507},
    {8002667254LL, 572},
    {315575999999LL, 663},
    {315576000000LL, 663},
    {315576000001LL, 663},
    {1000000000000000LL, 663},
};

#define NFIRST (sizeof lua_first / sizeof lua_first[0])

/* Uniform in (0, 1). */
static double unif(fn_test_rng_t *r)
{
    return ((double)(fn_test_rnd(r) >> 11) + 0.5) / 9007199254740992.0;
}

static int64_t clamp_ms(double v)
{
    if (!(v > 0))
        return 0;
    return v >= (double)FN_SKETCH_MAX_MS ? FN_SKETCH_MAX_MS : (int64_t)v;
}

/* |estimate - true| <= alpha * true, with room for the last bits of the double arithmetic. */
static int close_enough(double est, int64_t truth)
{
    if (truth == 0)
        return est == 0;
    return fabs(est - (double)truth) <= FN_SKETCH_ALPHA * (double)truth * (1 + 1e-12);
}

static void test_formula(void)
{
    CHECK_INT(fn_sketch_bucket(INT64_MIN), 0);
    CHECK_INT(fn_sketch_bucket(-1), 0);
    CHECK_INT(fn_sketch_bucket(0), 0);
    CHECK_INT(fn_sketch_bucket(1), 1);
    CHECK_INT(fn_sketch_bucket(FN_SKETCH_MAX_MS), FN_SKETCH_BUCKETS - 1);
    CHECK_INT(fn_sketch_bucket(INT64_MAX), FN_SKETCH_BUCKETS - 1);
    CHECK(fn_sketch_bucket_value(0) == 0);
    CHECK(fn_sketch_bucket_value(-7) == 0);
    CHECK(fabs(fn_sketch_bucket_value(1) - 0.98) < 1e-15);
    CHECK(fn_sketch_bucket_value(FN_SKETCH_BUCKETS) ==
          fn_sketch_bucket_value(FN_SKETCH_BUCKETS - 1));
    /* the constant is ln(51/49) and the bucket of a power of gamma is where the formula says */
    CHECK(fabs(FN_SKETCH_LOG_GAMMA - log(51.0 / 49.0)) < 1e-16); /* 51.0 / 49.0 is rounded too */
    CHECK(fabs(exp(FN_SKETCH_LOG_GAMMA) - (1 + FN_SKETCH_ALPHA) / (1 - FN_SKETCH_ALPHA)) < 1e-15);

    /* every whole ms up to 2,000,000: monotone, within alpha */
    long bad = 0, nonmono = 0;
    int prev = 0;
    for (int64_t ms = 0; ms <= 2000000; ms++) {
        int b = fn_sketch_bucket(ms);
        if (b < prev)
            nonmono++;
        if (!close_enough(fn_sketch_bucket_value(b), ms) && bad++ < 5)
            fprintf(stderr, "ms %lld: bucket %d value %.3f\n", (long long)ms, b,
                    fn_sketch_bucket_value(b));
        prev = b;
    }
    CHECK_INT(bad, 0);
    CHECK_INT(nonmono, 0);

    /* a million log-uniform values up to 10 years, and both sides of every bucket boundary */
    fn_test_rng_t r = {0x9e3779b97f4a7c15ULL};
    bad = 0;
    for (int i = 0; i < 1000000; i++) {
        int64_t ms = clamp_ms(exp(unif(&r) * log((double)FN_SKETCH_MAX_MS)));
        if (!close_enough(fn_sketch_bucket_value(fn_sketch_bucket(ms)), ms))
            bad++;
    }
    for (size_t i = 0; i < NFIRST; i++)
        for (int64_t ms = lua_first[i] - 1; ms <= lua_first[i]; ms++)
            if (!close_enough(fn_sketch_bucket_value(fn_sketch_bucket(ms)), ms))
                bad++;
    CHECK_INT(bad, 0);
}

static void test_lua_agrees(void)
{
    /* Both functions are monotone step functions of ms, so agreeing on where each bucket
     * starts means agreeing on every whole ms from 0 to 10 years. */
    CHECK_INT(NFIRST, FN_SKETCH_BUCKETS - 1);
    int reached = 1; /* bucket 0 */
    for (size_t i = 0; i < NFIRST; i++) {
        int idx = (int)i + 1;
        CHECK(fn_sketch_bucket(lua_first[i]) >= idx);
        CHECK(fn_sketch_bucket(lua_first[i] - 1) < idx);
        if (fn_sketch_bucket(lua_first[i]) == idx)
            reached++;
    }
    CHECK_INT(reached, 607); /* the figure sketch.h quotes */
    for (size_t i = 0; i < sizeof lua_special / sizeof lua_special[0]; i++)
        CHECK_INT(fn_sketch_bucket(lua_special[i].ms), lua_special[i].bucket);
}

static void test_api(void)
{
    fn_sketch_t s;
    fn_sketch_init(&s);
    CHECK(fn_sketch_count(&s) == 0);
    CHECK(fn_sketch_quantile(&s, 0.5) == -1);
    CHECK_INT(fn_sketch_add(&s, 3, 0), FN_OK);
    CHECK(s.counts == NULL); /* nothing allocated for nothing */
    CHECK_INT(fn_sketch_merge(&s, &s), FN_OK);
    CHECK(s.counts == NULL);
    CHECK_INT(fn_sketch_add(&s, -1, 1), FN_ERR);
    CHECK_INT(fn_sketch_add(&s, FN_SKETCH_BUCKETS, 1), FN_ERR);
    CHECK(fn_sketch_count(&s) == 0);

    CHECK_INT(fn_sketch_add(&s, fn_sketch_bucket(1000), 2), FN_OK);
    CHECK_INT(fn_sketch_add(&s, 0, 1), FN_OK);
    CHECK(fn_sketch_count(&s) == 3);
    CHECK(fn_sketch_quantile(&s, 0) == 0);
    CHECK(fn_sketch_quantile(&s, 1.0 / 3) == 0);
    CHECK(close_enough(fn_sketch_quantile(&s, 0.34), 1000));
    CHECK(fn_sketch_quantile(&s, -1) == 0);
    CHECK(fn_sketch_quantile(&s, NAN) == 0);
    CHECK(close_enough(fn_sketch_quantile(&s, 7), 1000));
    CHECK_INT(fn_sketch_merge(&s, &s), FN_OK); /* merging into itself doubles */
    CHECK(fn_sketch_count(&s) == 6);
    CHECK(s.counts[0] == 2 && s.counts[fn_sketch_bucket(1000)] == 4);

    fn_sketch_t big;
    fn_sketch_init(&big);
    CHECK_INT(fn_sketch_add(&big, 5, UINT64_MAX - 1), FN_OK);
    CHECK_INT(fn_sketch_add(&big, 5, 2), FN_ERR);
    CHECK_INT(fn_sketch_merge(&big, &s), FN_ERR);
    CHECK(fn_sketch_count(&big) == UINT64_MAX - 1 && big.counts[0] == 0);
    CHECK(fn_sketch_bucket_value(5) == fn_sketch_quantile(&big, 1));
    fn_sketch_free(&big);
    fn_sketch_free(&s);
    CHECK(s.counts == NULL && fn_sketch_count(&s) == 0);
}

/* q = 0.7 of 100 values is the 70th: 100 values 5 % apart (wider than a bucket) tell ranks
 * apart. */
static void test_nearest_rank(void)
{
    int64_t v[100];
    fn_sketch_t s;
    fn_sketch_init(&s);
    for (int i = 0; i < 100; i++)
        v[i] = (int64_t)llround(100 * pow(1.05, i + 1));
    for (int i = 99; i >= 0; i--) /* in decreasing order: the sketch does not care */
        CHECK_INT(fn_sketch_add(&s, fn_sketch_bucket(v[i]), 1), FN_OK);
    for (int k = 1; k <= 100; k++) {
        double est = fn_sketch_quantile(&s, k / 100.0);
        CHECK(est == fn_sketch_bucket_value(fn_sketch_bucket(v[k - 1])));
    }
    CHECK(close_enough(fn_sketch_quantile(&s, 0.7), v[69]));
    CHECK(!close_enough(fn_sketch_quantile(&s, 0.7), v[70]));
    CHECK(close_enough(fn_sketch_quantile(&s, 0.695), v[69]));
    CHECK(close_enough(fn_sketch_quantile(&s, 0.7001), v[70]));
    fn_sketch_free(&s);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

enum { SMALL, UNIFORM, EXPONENTIAL, LOGNORMAL, PARETO, CONSTANT, BIMODAL, LOGUNIFORM, NDIST };
static const char *const dist_name[NDIST] = {"small",  "uniform",  "exponential", "lognormal",
                                             "pareto", "constant", "bimodal",     "loguniform"};

static int64_t draw(fn_test_rng_t *r, int dist)
{
    switch (dist) {
    case SMALL: /* 0 .. 20 ms: zeros and many ties */
        return (int64_t)(fn_test_rnd(r) % 21);
    case UNIFORM:
        return 1 + (int64_t)(fn_test_rnd(r) % 1000000);
    case EXPONENTIAL: /* mean 5 minutes */
        return clamp_ms(-300000 * log(unif(r)));
    case LOGNORMAL: { /* median 1 minute, sigma 2.5: heavy tail */
        double z = sqrt(-2 * log(unif(r))) * cos(6.283185307179586 * unif(r));
        return clamp_ms(60000 * exp(2.5 * z));
    }
    case PARETO: /* x_m 1 s, shape 0.8: infinite mean, capped at 10 years */
        return clamp_ms(1000 * pow(unif(r), -1 / 0.8));
    case CONSTANT:
        return 42000;
    case BIMODAL: /* 70 % around 2 s, 30 % around 3 days */
        return unif(r) < 0.7 ? 1500 + (int64_t)(fn_test_rnd(r) % 1000)
                             : 259200000 + (int64_t)(fn_test_rnd(r) % 3600000) - 1800000;
    default: /* log-uniform over the whole range */
        return clamp_ms(exp(unif(r) * log((double)FN_SKETCH_MAX_MS)));
    }
}

/* Quantiles in 1/100000: the brute force computes the rank with integers. */
static const int64_t qs[] = {0,     1,     100,   1000,  10000, 25000, 50000, 70000,
                             75000, 90000, 95000, 99000, 99900, 99999, 100000};

/* One data set: the sketch of all values, the sketch merged from random shards (some added
 * value by value, some as (bucket, count) pairs as read back from Redis) against the sorted
 * values. */
static void check_dataset(fn_test_rng_t *r, int dist, size_t n, long *checks_on_data)
{
    int64_t *v = malloc(n * sizeof *v);
    enum { MAXSHARDS = 16 };
    fn_sketch_t all, merged, shard[MAXSHARDS];
    size_t nshards = 1 + fn_test_rnd(r) % MAXSHARDS;
    fn_sketch_init(&all);
    fn_sketch_init(&merged);
    for (size_t k = 0; k < nshards; k++)
        fn_sketch_init(&shard[k]);
    if (!v) {
        CHECK(v != NULL);
        return;
    }
    int add_failed = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = draw(r, dist);
        int b = fn_sketch_bucket(v[i]);
        add_failed |= fn_sketch_add(&all, b, 1);
        add_failed |= fn_sketch_add(&shard[fn_test_rnd(r) % nshards], b, 1);
    }
    CHECK_INT(add_failed, 0);
    for (size_t k = 0; k < nshards; k++) {
        if (k % 2) { /* through (bucket, count) pairs, as a Redis hash gives them */
            fn_sketch_t copy;
            fn_sketch_init(&copy);
            for (int b = 0; b < FN_SKETCH_BUCKETS && shard[k].counts; b++)
                add_failed |= fn_sketch_add(&copy, b, shard[k].counts[b]);
            add_failed |= fn_sketch_merge(&merged, &copy);
            fn_sketch_free(&copy);
        } else {
            add_failed |= fn_sketch_merge(&merged, &shard[k]);
        }
    }
    CHECK_INT(add_failed, 0);
    CHECK(fn_sketch_count(&all) == n);
    CHECK(fn_sketch_count(&merged) == n);
    CHECK(memcmp(all.counts, merged.counts, FN_SKETCH_BUCKETS * sizeof *all.counts) == 0);

    qsort(v, n, sizeof *v, cmp_i64);
    for (size_t j = 0; j < sizeof qs / sizeof qs[0]; j++) {
        int64_t rank = (qs[j] * (int64_t)n + 99999) / 100000;
        if (rank < 1)
            rank = 1;
        int64_t truth = v[rank - 1];
        double q = (double)qs[j] / 100000, est = fn_sketch_quantile(&all, q);
        if (!close_enough(est, truth))
            fprintf(stderr, "%s n=%zu q=%g: estimate %.3f, true %lld\n", dist_name[dist], n, q, est,
                    (long long)truth);
        CHECK(close_enough(est, truth));
        CHECK(fn_sketch_quantile(&merged, q) == est);
        *checks_on_data += 2;
    }
    free(v);
    fn_sketch_free(&all);
    fn_sketch_free(&merged);
    for (size_t k = 0; k < nshards; k++)
        fn_sketch_free(&shard[k]);
}

static void test_quantiles(void)
{
    static const size_t sizes[] = {1, 2, 3, 7, 10, 100, 1000, 10000, 100000};
    fn_test_rng_t r = {0x243f6a8885a308d3ULL};
    long checks = 0, sets = 0, values = 0;
    for (int d = 0; d < NDIST; d++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            check_dataset(&r, d, sizes[i], &checks);
            sets++;
            values += (long)sizes[i];
        }
        if (d == LOGNORMAL || d == PARETO || d == LOGUNIFORM || d == UNIFORM) {
            check_dataset(&r, d, 1000000, &checks);
            sets++;
            values += 1000000;
        }
    }
    printf("quantiles: %ld data sets, %ld values, %ld quantile checks\n", sets, values, checks);
}

int main(void)
{
    test_formula();
    test_lua_agrees();
    test_api();
    test_nearest_rank();
    test_quantiles();
    return fn_test_result("test_sketch");
}

/*
 * The tables above came from (sketch.lua's text followed by this, through redis-cli EVAL):
 *
 *   local top, first = sketch_bucket(SKETCH_MAX_MS), {}
 *   for i = 1, top do
 *     local lo, hi = 1, SKETCH_MAX_MS
 *     while lo < hi do
 *       local mid = math.floor((lo + hi) / 2)
 *       if sketch_bucket(mid) >= i then hi = mid else lo = mid + 1 end
 *     end
 *     first[#first + 1] = string.format('%d', lo)
 *   end
 *   return first
 */
