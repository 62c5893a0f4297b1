/*
 * test_attribution_redis.c — multi-touch attribution (SPEC §11, attribution.lua) through the
 * real step on a real Redis, against credits computed by hand: every model on one touch, on
 * four touches of different channels, on repeated channels (summed per channel and campaign),
 * at the lookback and max_touches edges, with a touch routed to another funnel; the weights
 * of every model adding up to 1; the credited conversions and revenue counters; a replay
 * counting nothing twice; an erasure deleting the touches. Cost figures (type cost): spend,
 * new leads and the first model's credit over all time and over the window, as read.lua and
 * a snapshot read them, a repeated cost counted once.
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it). Each run
 * uses its own key prefix.
 */
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/analytics.h"
#include "funneld/step.h"

static const char *CONFIG =
    "{\"max_future\":0,\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":4},\"funnels\":["
    "{\"name\":\"shop\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"visit\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"cart\",\"on\":[{\"type\":\"cart_add\"}]},"
    " {\"name\":\"won\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"attribution\":{\"models\":[\"first_touch\",\"last_touch\",\"linear\",\"time_decay\","
    "  "
    "\"position_based\",\"markov\"],\"lookback\":\"10d\",\"max_touches\":4,\"half_life\":\"1d\"}},"
    "{\"name\":\"other\",\"stages\":[{\"name\":\"seen\",\"on\":[{\"type\":\"page_view\"}]}]}]}";

#define DAY 86400000LL
static const int64_t T0 = 1790000000000LL;

static redisContext *rc;
static fn_config_t *cfg;
static char sha[41];
static fn_step_call_t step_call; /* fn_test_step_call */
static char prefix[32];
static int msg_no;
static redisReply *last;
static fn_step_result_t res;

static void apply(const char *lead, const char *json);

/* Applies one event (lead, id, days before T0, channel, type, campaign or NULL, value or 0,
 * funnel or NULL); res and last hold its reply until the next call. */
static void step(const char *lead, const char *id, int64_t days_before, const char *channel,
                 const char *type, const char *campaign, int value, const char *funnel)
{
    char json[512], props[160] = "";
    if (campaign && value)
        snprintf(props, sizeof props, ",\"props\":{\"campaign\":\"%s\",\"value\":%d}", campaign,
                 value);
    else if (campaign)
        snprintf(props, sizeof props, ",\"props\":{\"campaign\":\"%s\"}", campaign);
    else if (value)
        snprintf(props, sizeof props, ",\"props\":{\"value\":%d}", value);
    snprintf(json, sizeof json,
             "{\"event_id\":\"%s\",\"lead_id\":\"%s\",\"ts\":%lld,\"channel\":\"%s\","
             "\"type\":\"%s\"%s%s%s%s}",
             id, lead, (long long)(T0 - days_before * DAY), channel, type, props,
             funnel ? ",\"funnel\":\"" : "", funnel ? funnel : "", funnel ? "\"" : "");
    apply(lead, json);
}

/* Applies one message of lead as the daemon would; res and last hold its reply. */
static void apply(const char *lead, const char *json)
{
    fn_event_t ev = {0};
    char reason[256], token[32], err[256];
    CHECK_INT(fn_event_decode(json, strlen(json), cfg, T0, &ev, reason, sizeof reason),
              FN_REJ_NONE);
    fn_buf_t cmd = {0};
    snprintf(token, sizeof token, "it:%d", ++msg_no);
    CHECK(fn_step_build(cfg, &step_call, token, &ev, fn_step_lead_hash(lead, strlen(lead)), T0, 0,
                        "in", 0, &cmd) == FN_OK);
    if (last)
        freeReplyObject(last);
    redisAppendFormattedCommand(rc, cmd.data, cmd.len);
    void *r = NULL;
    CHECK(redisGetReply(rc, &r) == REDIS_OK);
    last = r;
    if (last && last->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis: %s\n", last->str);
    CHECK(fn_step_parse(cfg, last, &res, err, sizeof err) == FN_OK);
    fn_buf_free(&cmd);
    fn_event_clear(&ev);
}

/* The credit of the last step's conversion in funnel shop: model m's weight of channel ch
 * and campaign cp ("" for none), summed; -1 when absent. *n_of counts model m's entries and
 * *sum_of adds up its weights. */
static double credit(int m, const char *ch, const char *cp, int *n_of, double *sum_of)
{
    double w = -1;
    *n_of = 0;
    *sum_of = 0;
    for (size_t i = 0; i < res.n_trans; i++) {
        const redisReply *c = res.trans[i].credit;
        if (strcmp(res.trans[i].funnel->name, "shop") != 0 || !c)
            continue;
        for (size_t j = 0; j + 3 < c->elements; j += 4) {
            if (atoi(c->element[j]->str) != m)
                continue;
            double x = strtod(c->element[j + 3]->str, NULL);
            (*n_of)++;
            *sum_of += x;
            if (strcmp(c->element[j + 1]->str, ch) == 0 && strcmp(c->element[j + 2]->str, cp) == 0)
                w = x;
        }
    }
    return w;
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}

/* expected weights: per model, up to 4 (channel, campaign, weight) */
typedef struct {
    const char *ch, *cp;
    double w;
} part_t;

static void expect(const char *what, int model, const part_t *parts, int n)
{
    int n_of = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double w = credit(model, parts[i].ch, parts[i].cp, &n_of, &sum);
        if (!near(w, parts[i].w)) {
            fprintf(stderr, "%s, model %d: %s/%s weighs %.17g, want %.17g\n", what, model,
                    parts[i].ch, parts[i].cp, w, parts[i].w);
            CHECK(false);
        }
    }
    credit(model, "", "", &n_of, &sum);
    if (n_of != n || !near(sum, 1)) {
        fprintf(stderr, "%s, model %d: %d parts adding up to %.17g, want %d adding up to 1\n", what,
                model, n_of, sum, n);
        CHECK(false);
    }
}

static double stat_sum(const char *field)
{
    double sum = 0;
    for (int s = 0; s < cfg->redis_shards; s++) {
        redisReply *r = redisCommand(rc, "HGET %s:{%d}:stats %s", prefix, s, field);
        if (r && r->type == REDIS_REPLY_STRING)
            sum += strtod(r->str, NULL);
        freeReplyObject(r);
    }
    return sum;
}

enum { FIRST, LAST, LINEAR, DECAY, POSITION };

static void test_one_touch(void)
{
    step("A", "a-1", 0, "ads", "purchase", "spring", 0, NULL);
    CHECK_INT(res.n_trans, 1); /* shop converts; "other" has no stage for a purchase */
    for (int m = FIRST; m <= POSITION; m++)
        expect("one touch", m, (part_t[]){{"ads", "spring", 1}}, 1);
}

static void test_four_channels(void)
{
    step("B", "b-1", 3, "ads", "page_view", "c1", 0, NULL);
    step("B", "b-2", 2, "email", "cart_add", NULL, 0, NULL);
    step("B", "b-3", 1, "social", "page_view", "c2", 0, NULL);
    CHECK_INT(res.n_trans, 0);
    step("B", "b-4", 0, "web", "purchase", "c3", 100, NULL);
    expect("four", FIRST, (part_t[]){{"ads", "c1", 1}}, 1);
    expect("four", LAST, (part_t[]){{"web", "c3", 1}}, 1);
    expect("four", LINEAR,
           (part_t[]){
               {"ads", "c1", .25}, {"email", "", .25}, {"social", "c2", .25}, {"web", "c3", .25}},
           4);
    /* halves per day back from the newest: 1/8, 1/4, 1/2, 1 over 15/8 */
    expect("four", DECAY,
           (part_t[]){{"ads", "c1", 1.0 / 15},
                      {"email", "", 2.0 / 15},
                      {"social", "c2", 4.0 / 15},
                      {"web", "c3", 8.0 / 15}},
           4);
    expect(
        "four", POSITION,
        (part_t[]){{"ads", "c1", .4}, {"email", "", .1}, {"social", "c2", .1}, {"web", "c3", .4}},
        4);
}

static void test_repeats_are_summed(void)
{
    step("C", "c-1", 2, "ads", "page_view", "x", 0, NULL);
    step("C", "c-2", 1, "ads", "page_view", "x", 0, NULL);
    step("C", "c-3", 0, "email", "purchase", "y", 0, NULL);
    expect("repeats", FIRST, (part_t[]){{"ads", "x", 1}}, 1);
    expect("repeats", LINEAR, (part_t[]){{"ads", "x", 2.0 / 3}, {"email", "y", 1.0 / 3}}, 2);
    expect("repeats", POSITION, (part_t[]){{"ads", "x", .6}, {"email", "y", .4}}, 2);
    expect("repeats", DECAY, (part_t[]){{"ads", "x", 3.0 / 7}, {"email", "y", 4.0 / 7}}, 2);
}

static void test_lookback_and_max_touches(void)
{
    /* 12 days back is beyond the lookback; of the five within it, the four most recent */
    step("D", "d-1", 12, "old", "page_view", NULL, 0, NULL);
    step("D", "d-2", 4, "four", "page_view", NULL, 0, NULL);
    step("D", "d-3", 3, "three", "page_view", NULL, 0, NULL);
    step("D", "d-4", 2, "two", "page_view", NULL, 0, NULL);
    step("D", "d-5", 1, "one", "page_view", NULL, 0, NULL);
    step("D", "d-6", 0, "now", "purchase", NULL, 0, NULL);
    expect("edges", FIRST, (part_t[]){{"three", "", 1}}, 1);
    expect("edges", LINEAR,
           (part_t[]){{"three", "", .25}, {"two", "", .25}, {"one", "", .25}, {"now", "", .25}}, 4);
    /* the lead keeps max_touches (4) touches, the most recent by event time: a late one
     * older than those is dropped at once */
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("D", 1), &k);
    redisReply *r = redisCommand(rc, "ZCARD %s", k.touches);
    CHECK(r && r->integer == 4);
    freeReplyObject(r);
}

static void test_routed_touch(void)
{
    /* a touch routed to the funnel "other" is not shop's */
    step("E", "e-1", 1, "ads", "page_view", NULL, 0, "other");
    step("E", "e-2", 0, "web", "purchase", NULL, 0, NULL);
    expect("routed", LINEAR, (part_t[]){{"web", "", 1}}, 1);
}

static void test_counters_replay_erase(void)
{
    /* Counted in integer units (millionths of a conversion, cents): each conversion's parts
     * add up to exactly one conversion, so linear conversions by channel add up to the
     * conversions; revenue is weight × value */
    double conv = stat_sum("shop|conv"), lin = 0;
    const char *channels[] = {"ads", "email", "social", "web", "three", "two", "one", "now"};
    for (size_t i = 0; i < sizeof channels / sizeof *channels; i++) {
        char f[64];
        snprintf(f, sizeof f, "shop|a2c|%s", channels[i]);
        lin += stat_sum(f);
    }
    CHECK(near(conv, 5));
    CHECK(near(lin, conv * 1e6));
    CHECK(near(stat_sum("shop|a2c$|web"), 2500)); /* B: a quarter of 100.00 */
    CHECK(near(stat_sum("shop|a2p$|c3"), 2500));
    CHECK(near(stat_sum("shop|a0c|ads"), 3e6)); /* first touch of A, B and C */
    /* C's 2/3 and 1/3: 666666 and 333333, the unit left to the larger remainder */
    CHECK(near(stat_sum("shop|a2p|x"), 666667));
    CHECK(near(stat_sum("shop|a2c|email"), 250000 + 333333 + 0));
    /* time_decay: A 1e6; B 1/15 -> 66666.67, two units left to the .67s; C 3/7 -> 428571.43,
     * its unit left to email's 571428.57 */
    CHECK(near(stat_sum("shop|a3c|ads"), 1e6 + 66667 + 428571));
    CHECK(near(stat_sum("shop|a3c|email"), 133333 + 571429));
    /* a replay of a conversion counts nothing again */
    step("B", "b-4", 0, "web", "purchase", "c3", 100, NULL);
    CHECK(res.status == FN_STEP_DUP);
    CHECK(near(stat_sum("shop|a2c$|web"), 2500));
    CHECK(near(stat_sum("shop|a0c|ads"), 3e6));
    /* an erasure deletes the lead's touches */
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("B", 1), &k);
    step("B", "b-erase", 0, "web", "erase", NULL, 0, NULL);
    redisReply *r = redisCommand(rc, "EXISTS %s", k.touches);
    CHECK(r && r->integer == 0);
    freeReplyObject(r);
}

static redisContext *route(void *priv, const char *key)
{
    (void)key;
    return priv;
}

/* One event at wall-clock time ts (the cost figures' buckets expire by Redis's clock, so a
 * window is only kept for recent times). */
static void at(const char *lead, const char *id, int64_t ts, const char *channel, const char *type,
               const char *props)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"event_id\":\"%s\",\"lead_id\":\"%s\",\"ts\":%lld,\"channel\":\"%s\","
             "\"type\":\"%s\",\"props\":{%s}}",
             id, lead, (long long)ts, channel, type, props);
    apply(lead, json);
}

/* The cost figure of channel "paid" in a snapshot read at now: span "window" or "all_time". */
static json_t *paid(json_t *snap, const char *span)
{
    json_t *m = json_object_get(json_object_get(snap, "marketing"), "by_channel");
    return json_object_get(json_object_get(m, "paid"), span);
}

/* markov: every touch of a journey not yet ended counts its move from the journey's last
 * channel, and the converting touch its move to the conversion; a touch after it counts
 * nothing; markov credits no conversion on the event */
static void test_markov_counters(void)
{
    step("MK", "mk-1", 4, "mk-web", "page_view", NULL, 0, NULL);
    step("MK", "mk-2", 3, "mk-mail", "page_view", NULL, 0, NULL);
    step("MK", "mk-3", 2, "mk-web", "cart_add", NULL, 0, NULL);
    step("MK", "mk-4", 1, "mk-web", "purchase", NULL, 250, NULL);
    CHECK(res.n_trans == 1 && res.trans[0].op == 'C');
    int n_of;
    double sum;
    credit(5, "", "", &n_of, &sum);
    CHECK_INT(n_of, 0);
    step("MK", "mk-5", 0, "mk-mail", "page_view", NULL, 0, NULL);
    CHECK(near(stat_sum("shop|mv|\tmk-web"), 1));
    CHECK(near(stat_sum("shop|mv|mk-web\tmk-mail"), 1));
    CHECK(near(stat_sum("shop|mv|mk-mail\tmk-web"), 1));
    CHECK(near(stat_sum("shop|mv|mk-web\tmk-web"), 1));
    CHECK(near(stat_sum("shop|mc|mk-web"), 1));
    CHECK(near(stat_sum("shop|mv|mk-web\tmk-mail") + stat_sum("shop|mv|\tmk-mail"), 1));
}

static void test_cost(void)
{
    /* on the minute, so the window's edges are whole minutes */
    int64_t now = fn_now_ms() / 60000 * 60000, t = now - 10 * 60000;
    at("acct-1", "k-1", now - 2 * DAY, "paid", "cost", "\"amount\":120.5,\"campaign\":\"q4\"");
    CHECK(res.status == FN_STEP_OK && res.n_trans == 0);
    CHECK(near(stat_sum("shop|$c|paid"), 12050));
    CHECK(near(stat_sum("shop|$p|q4"), 12050));
    CHECK(near(stat_sum("other|$c|paid"), 0)); /* "other" has no attribution: no cost figures */
    at("acct-1", "k-1", now - 2 * DAY, "paid", "cost", "\"amount\":120.5,\"campaign\":\"q4\"");
    CHECK(res.status == FN_STEP_DUP);
    CHECK(near(stat_sum("shop|$c|paid"), 12050));
    at("acct-1", "k-2", t, "paid", "cost", "\"amount\":30,\"campaign\":\"q4\"");
    /* two new leads by first touch, one in the window; it converts there for 80.00 */
    at("P2", "p2-1", now - 2 * DAY, "paid", "page_view", "\"campaign\":\"q4\"");
    at("P1", "p1-1", t, "paid", "page_view", "\"campaign\":\"q4\"");
    at("P1", "p1-2", t + 60000, "web", "purchase", "\"value\":80");
    CHECK(res.n_trans == 1 && res.trans[0].op == 'C');
    /* the hour and minute buckets expire like the flows (set when a field is created) */
    fn_lead_keys_t ak;
    fn_step_keys(cfg, fn_step_lead_hash("acct-1", 6), &ak);
    for (int m = 0; m < 2; m++) {
        redisReply *r = redisCommand(rc, "PTTL %s:{%u}:%s:shop:%lld", prefix, ak.shard,
                                     m ? "mkm" : "mkt", (long long)(t / 3600000));
        CHECK(r && r->type == REDIS_REPLY_INTEGER && r->integer > 0);
        freeReplyObject(r);
    }
    CHECK(near(stat_sum("shop|nc|paid"), 2));
    CHECK(near(stat_sum("shop|np|q4"), 2));

    fn_funnel_stats_t st;
    char err[256];
    const fn_funnel_t *shop = fn_config_funnel(cfg, "shop", 4);
    CHECK(fn_analytics_read(route, rc, cfg, shop, now + 5 * 60000, &st, err, sizeof err) == FN_OK);
    json_t *snap = fn_analytics_json(shop, &st);
    char *w = json_dumps(paid(snap, "window"),
                         JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    char *a = json_dumps(paid(snap, "all_time"),
                         JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    /* first_touch, the first model: P1's purchase all to paid; the window holds k-2 and P1 */
    const char *want_w = "{\"cost\":30.0,\"leads\":1,\"conversions\":1.0,\"revenue\":80.0,"
                         "\"cpl\":30.0,\"cpa\":30.0,\"roas\":2.666667}";
    const char *want_a = "{\"cost\":150.5,\"leads\":2,\"conversions\":1.0,\"revenue\":80.0,"
                         "\"cpl\":75.25,\"cpa\":150.5,\"roas\":0.531561}";
    if (!w || !a || strcmp(w, want_w) || strcmp(a, want_a))
        fprintf(stderr, "cost figures: window %s, all time %s\n", w ? w : "-", a ? a : "-");
    CHECK_STR(w, want_w);
    CHECK_STR(a, want_a);
    CHECK_STR(json_string_value(json_object_get(json_object_get(snap, "marketing"), "model")),
              "first_touch");
    free(w);
    free(a);
    json_decref(snap);
    fn_analytics_free(&st);
    /* an hour later, the window has none of it; all time keeps it */
    CHECK(fn_analytics_read(route, rc, cfg, shop, now + 80 * 60000, &st, err, sizeof err) == FN_OK);
    snap = fn_analytics_json(shop, &st);
    CHECK(near(json_real_value(json_object_get(paid(snap, "window"), "cost")), 0));
    CHECK(json_is_null(json_object_get(paid(snap, "window"), "cpl")));
    CHECK(near(json_real_value(json_object_get(paid(snap, "all_time"), "cost")), 150.5));
    json_decref(snap);
    fn_analytics_free(&st);
}

int main(void)
{
    if (!fn_test_redis_start(CONFIG, "ita", prefix, &cfg, &rc))
        return 1;
    if (!fn_test_script_load(rc, fn_lua_step_src, sha) || !fn_test_step_call(rc, sha, &step_call))
        return 1;
    test_one_touch();
    test_four_channels();
    test_repeats_are_summed();
    test_lookback_and_max_touches();
    test_routed_touch();
    test_counters_replay_erase();
    test_markov_counters();
    test_cost();
    if (last)
        freeReplyObject(last);
    redisFree(rc);
    fn_config_free(cfg);
    return fn_test_result("test_attribution_redis");
}
