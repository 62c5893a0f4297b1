/*
 * test_analytics.c — fn_analytics_finish's breakdown bound (SPEC §11 max_breakdown): the
 * largest sums over the shards are kept by name, the rest summed under "(other)" (with what
 * the shards already put there), ties broken by name, the total unchanged. The entry-cohort
 * weeks at their edges, and a shard's cohort, credited and cost counters as a snapshot shows
 * them; read.lua's window and baseline arguments.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/analytics.h"
#include "funneld/window.h"

static void check_case(const char *in, int max, const char *want, const char *why)
{
    fn_funnel_t f = {.name = "f", .n_stages = 1, .max_breakdown = max};
    fn_stage_t stage = {.name = "s"};
    f.stages = &stage;
    fn_funnel_stats_t st;
    CHECK_INT(fn_analytics_begin(&st, &f, 1000), FN_OK);
    json_decref(st.conv_by_campaign);
    st.conv_by_campaign = json_loads(in, 0, NULL);
    fn_analytics_finish(&st, &f);
    char *got = json_dumps(st.conv_by_campaign, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!got || strcmp(got, want) != 0)
        fprintf(stderr, "%s: got %s, want %s\n", why, got ? got : "(null)", want);
    CHECK_STR(got, want);
    free(got);
    fn_analytics_free(&st);
}

static void test_weeks(void)
{
    static const struct {
        int64_t ms, week;
    } cases[] = {
        {1793577600000LL, 2965}, /* Monday 2026-11-02 00:00 UTC */
        {1793577599999LL, 2964}, /* the Sunday before, a millisecond earlier */
        {1793577600000LL + 604799999LL, 2965},
        {345600000LL, 0}, /* Monday 1970-01-05 */
        {0, -1},          /* Thursday 1970-01-01: the week of Monday 1969-12-29 */
        {345600000LL - 604800000LL, -1},
        {345600000LL - 604800001LL, -2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_INT(fn_analytics_week(cases[i].ms), cases[i].week);
}

static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static redisReply *arr(size_t n)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    for (size_t i = 0; i < n; i++)
        r->element[i] = arr(0);
    return r;
}

static void test_cohorts_and_credit_in_a_snapshot(void)
{
    fn_stage_t stages[3] = {{.name = "visit"}, {.name = "cart"}, {.name = "won"}};
    fn_funnel_t f = {.name = "f",
                     .stages = stages,
                     .n_stages = 3,
                     .conversion_index = 2,
                     .cohorts = 2,
                     .max_breakdown = 10,
                     .attribution = {.enabled = true, .n_models = 1, .models = {FN_ATTR_LINEAR}}};
    fn_funnel_stats_t st;
    /* a Wednesday of week 2965 (the one of Monday 2026-11-02) */
    CHECK_INT(fn_analytics_begin(&st, &f, 1793577600000LL + 2 * 86400000LL), FN_OK);
    static const char *const counters[] = {
        "coh|2965|0", "3",       "coh|2965|2", "1",     "coh|2964|0", "5",       "coh|2964|1", "2",
        "coh|2963|0", "9", /* older than the last 2 weeks */
        "coh|2966|0", "4", /* a week ahead of now */
        "coh|2965|3", "7", /* no such stage */
        "a2c|web",    "1500000", "a2c$|web",   "12345", "a2p|",       "1000000", "a3c|web",    "5"};
    size_t n = sizeof counters / sizeof *counters;
    redisReply *r = arr(7);
    freeReplyObject(r->element[0]);
    r->element[0] = arr(0);
    free(r->element[0]->element);
    r->element[0]->element = calloc(n, sizeof(redisReply *));
    r->element[0]->elements = n;
    for (size_t i = 0; i < n; i++)
        r->element[0]->element[i] = str(counters[i]);
    freeReplyObject(r->element[1]);
    r->element[1] = arr(4); /* the sketches: one per stage and the time to convert */
    char err[128];
    CHECK_INT(fn_analytics_add(&st, r, err, sizeof err), FN_OK);
    freeReplyObject(r);
    fn_analytics_finish(&st, &f);
    json_t *o = fn_analytics_json(&f, &st);
    char *coh = json_dumps(json_object_get(o, "cohorts"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK_STR(coh, "[{\"week\":\"2026-10-26\",\"entered\":5,\"reached\":[5,2,0],\"converted\":0},"
                   "{\"week\":\"2026-11-02\",\"entered\":3,\"reached\":[3,0,1],\"converted\":1}]");
    free(coh);
    /* credited: integer millionths and cents; a model not configured is not shown */
    char *at = json_dumps(json_object_get(o, "attribution"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK_STR(at, "{\"linear\":{\"by_channel\":{\"web\":{\"conversions\":1.5,\"revenue\":123.45}},"
                  "\"by_campaign\":{\"(none)\":{\"conversions\":1.0,\"revenue\":0.0}}}}");
    free(at);
    json_decref(o);
    fn_analytics_free(&st);
}

/* A flat array reply of the n strings in s. */
static redisReply *flat(const char *const *s, size_t n)
{
    redisReply *r = arr(0);
    free(r->element);
    r->element = calloc(n ? n : 1, sizeof(redisReply *));
    r->elements = n;
    for (size_t i = 0; i < n; i++)
        r->element[i] = str(s[i]);
    return r;
}

/* Adds one shard's read.lua reply to st: the counters, n_stages + 1 empty sketches, and
 * `extra` (n_extra strings) as reply element `at` (4: the cost figures, 5: the breakdowns'
 * flows). */
static void add_reply(fn_funnel_stats_t *st, const char *const *counters, size_t n_counters,
                      size_t at, const char *const *extra, size_t n_extra)
{
    redisReply *r = arr(7);
    freeReplyObject(r->element[0]);
    r->element[0] = flat(counters, n_counters);
    freeReplyObject(r->element[1]);
    r->element[1] = arr(st->n_stages + 1);
    freeReplyObject(r->element[at]);
    r->element[at] = flat(extra, n_extra);
    char err[128];
    CHECK_INT(fn_analytics_add(st, r, err, sizeof err), FN_OK);
    freeReplyObject(r);
}

/* Cost figures (SPEC §11): spend, new leads, and the first model's credit, over the window
 * (read.lua's fifth reply) and all time (the counters), with CPL, CPA and ROAS; a channel
 * beyond max_breakdown under "(other)"; ratios of nothing are null. */
static void test_cost_figures_in_a_snapshot(void)
{
    fn_stage_t stages[2] = {{.name = "visit"}, {.name = "won"}};
    fn_funnel_t f = {.name = "f",
                     .stages = stages,
                     .n_stages = 2,
                     .conversion_index = 1,
                     .max_breakdown = 1,
                     .attribution = {.enabled = true,
                                     .n_models = 2,
                                     .models = {FN_ATTR_LINEAR, FN_ATTR_FIRST_TOUCH}}};
    fn_funnel_stats_t st;
    CHECK_INT(fn_analytics_begin(&st, &f, 1793577600000LL), FN_OK);
    static const char *const counters[] = {
        "$c|ads",      "15000",   "$p|spring", "15000",    "nc|ads", "3",          "np|spring",
        "3",           "a2c|ads", "1500000",   "a2c$|ads", "30000",  "a2p|spring", "1500000",
        "a2p$|spring", "30000",   "a0c|ads",   "2000000", /* not the first model: no part */
        "nc|web",      "2",       "$c#",       "1"};
    static const char *const window[] = {"$c|ads", "5000",   "nc|ads", "1",
                                         "vc|ads", "500000", "rc|ads", "10000"};
    for (int shard = 0; shard < 2; shard++) /* two shards alike: every sum doubles */
        add_reply(&st, counters, sizeof counters / sizeof *counters, 4, window,
                  sizeof window / sizeof *window);
    fn_analytics_finish(&st, &f);
    json_t *o = fn_analytics_json(&f, &st);
    char *mk = json_dumps(json_object_get(o, "marketing"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *want =
        "{\"model\":\"linear\",\"by_channel\":{"
        "\"ads\":{\"window\":{\"cost\":100.0,\"leads\":2,\"conversions\":1.0,\"revenue\":200.0,"
        "\"cpl\":50.0,\"cpa\":100.0,\"roas\":2.0},"
        "\"all_time\":{\"cost\":300.0,\"leads\":6,\"conversions\":3.0,\"revenue\":600.0,"
        "\"cpl\":50.0,\"cpa\":100.0,\"roas\":2.0}},"
        "\"(other)\":{\"window\":{\"cost\":0.0,\"leads\":0,\"conversions\":0.0,\"revenue\":0.0,"
        "\"cpl\":null,\"cpa\":null,\"roas\":null},"
        "\"all_time\":{\"cost\":0.0,\"leads\":4,\"conversions\":0.0,\"revenue\":0.0,"
        "\"cpl\":0.0,\"cpa\":null,\"roas\":null}}},"
        "\"by_campaign\":{"
        "\"spring\":{\"window\":{\"cost\":0.0,\"leads\":0,\"conversions\":0.0,\"revenue\":0.0,"
        "\"cpl\":null,\"cpa\":null,\"roas\":null},"
        "\"all_time\":{\"cost\":300.0,\"leads\":6,\"conversions\":3.0,\"revenue\":600.0,"
        "\"cpl\":50.0,\"cpa\":100.0,\"roas\":2.0}}}}";
    if (!mk || strcmp(mk, want) != 0)
        fprintf(stderr, "marketing: got %s\n", mk ? mk : "(null)");
    CHECK_STR(mk, want);
    free(mk);
    json_decref(o);
    fn_analytics_free(&st);
}

/* Breakdowns (SPEC §11): per configured dimension and value, per stage, the population and
 * entered total (counters) and the window's entered and advanced (read.lua's sixth reply)
 * with the flow rate; a dimension no longer configured is left out; values beyond
 * max_breakdown are summed under "(other)", the largest by leads entered kept. */
static void test_breakdowns_in_a_snapshot(void)
{
    fn_stage_t stages[2] = {{.name = "visit"}, {.name = "won"}};
    fn_funnel_t f = {.name = "f",
                     .stages = stages,
                     .n_stages = 2,
                     .conversion_index = 1,
                     .max_breakdown = 2,
                     .n_breakdowns = 1,
                     .breakdowns = {{.dim = "props.segment", .source = FN_BD_PROP}}};
    fn_funnel_stats_t st;
    CHECK_INT(fn_analytics_begin(&st, &f, 1793577600000LL), FN_OK);
    static const char *const counters[] = {
        "bp|props.segment|0|smb",   "4", "be|props.segment|0|smb",   "10",
        "be|props.segment|1|smb",   "6", "bp|props.segment|1|smb",   "6",
        "be|props.segment|0|ent|x", "7", "bp|props.segment|0|ent|x", "7",
        "be|props.segment|0|",      "1", /* no value: (none) */
        "bp|channel|0|web",         "9", /* not configured */
        "be|props.segment|9|smb",   "1", /* no such stage */
        "bd:props.segment|smb",     "10"};
    static const char *const window[] = {
        "e|0|props.segment|smb", "8", "a|0|props.segment|smb", "2",
        "e|1|props.segment|smb", "2", "e|0|channel|web",       "5"};
    add_reply(&st, counters, sizeof counters / sizeof *counters, 5, window,
              sizeof window / sizeof *window);
    fn_analytics_finish(&st, &f);
    json_t *o = fn_analytics_json(&f, &st);
    char *bd = json_dumps(json_object_get(o, "breakdowns"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    const char *want =
        "{\"props.segment\":{"
        "\"smb\":[{\"stage\":\"visit\",\"population\":4,\"entered_total\":10,\"entered\":8,"
        "\"advanced\":2,\"flow_rate\":0.25},{\"stage\":\"won\",\"population\":6,"
        "\"entered_total\":6,\"entered\":2,\"advanced\":0,\"flow_rate\":0.0}],"
        "\"ent|x\":[{\"stage\":\"visit\",\"population\":7,\"entered_total\":7,\"entered\":0,"
        "\"advanced\":0,\"flow_rate\":0.0},{\"stage\":\"won\",\"population\":0,"
        "\"entered_total\":0,\"entered\":0,\"advanced\":0,\"flow_rate\":0.0}],"
        "\"(other)\":[{\"stage\":\"visit\",\"population\":0,\"entered_total\":1,\"entered\":0,"
        "\"advanced\":0,\"flow_rate\":0.0},{\"stage\":\"won\",\"population\":0,"
        "\"entered_total\":0,\"entered\":0,\"advanced\":0,\"flow_rate\":0.0}]}}";
    if (!bd || strcmp(bd, want) != 0)
        fprintf(stderr, "breakdowns: got %s\n", bd ? bd : "(null)");
    CHECK_STR(bd, want);
    free(bd);
    json_decref(o);
    fn_analytics_free(&st);
}

/* read.lua's window and baseline arguments: each bucket of fn_window_plan as "m<minute>" or
 * "h<hour>", one space apart, for a tick on an hour, within one and a day later. */
static void test_read_args_plans(void)
{
    fn_stage_t stage = {.name = "s"};
    fn_funnel_t f = {.name = "f", .stages = &stage, .n_stages = 1};
    fn_config_t cfg = {.key_prefix = "p"};
    static const int64_t ends[] = {1793577600000LL, 1793577600000LL + 1234567,
                                   1793577600000LL + 86400000 + 59999};
    for (size_t e = 0; e < sizeof ends / sizeof *ends; e++) {
        fn_funnel_stats_t st;
        CHECK_INT(fn_analytics_begin(&st, &f, ends[e]), FN_OK);
        fn_analytics_read_args_t a;
        CHECK_INT(fn_analytics_read_args(&cfg, &f, &st, 3, &a), FN_OK);
        const int64_t spans[2] = {st.window_ms, st.baseline_ms};
        for (int k = 0; k < 2; k++) {
            fn_window_plan_t plan;
            fn_window_plan(st.now_ms, spans[k], &plan);
            char want[8192];
            size_t n = 0;
            for (size_t i = 0; i < plan.n && n < sizeof want; i++)
                n += (size_t)snprintf(want + n, sizeof want - n, "%s%c%lld", i ? " " : "",
                                      plan.item[i].minute ? 'm' : 'h',
                                      (long long)plan.item[i].index);
            CHECK(plan.n > 0 && n < sizeof want);
            CHECK_STR(a.argv[4 + k], want);
        }
        fn_analytics_read_args_free(&a);
        fn_analytics_free(&st);
    }
}

int main(void)
{
    test_breakdowns_in_a_snapshot();
    test_cost_figures_in_a_snapshot();
    test_read_args_plans();
    test_weeks();
    test_cohorts_and_credit_in_a_snapshot();
    check_case("{}", 3, "{}", "empty");
    check_case("{\"a\":1,\"b\":5}", 3, "{\"b\":5,\"a\":1}", "under the bound: ordered by count");
    check_case("{\"a\":1,\"b\":5,\"c\":2,\"d\":9}", 2, "{\"d\":9,\"b\":5,\"(other)\":3}",
               "over: the largest kept, the rest summed");
    check_case("{\"a\":1,\"(other)\":7,\"b\":2,\"c\":3}", 2, "{\"c\":3,\"b\":2,\"(other)\":8}",
               "the shards' (other) is added to");
    check_case("{\"z\":4,\"y\":4,\"x\":4}", 2, "{\"x\":4,\"y\":4,\"(other)\":4}", "ties: by name");
    check_case("{\"(other)\":6,\"a\":1}", 1, "{\"a\":1,\"(other)\":6}",
               "(other) is not a name: it may be larger than every kept one");
    check_case("{\"a\":1}", 0, "{\"a\":1}", "0 (a funnel built by hand): the default bound");
    return fn_test_result("test_analytics");
}
