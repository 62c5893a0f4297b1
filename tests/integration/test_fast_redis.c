/*
 * test_fast_redis.c — the fast path (fast.h, fast.lua) against the whole step on a real
 * Redis: one stream of events (touches in and out of order, moves, values, consent, timers
 * armed, re-armed, cancelled and due, duplicates, a late lead) goes through the whole step
 * under one key prefix and through the fast path, where it takes an event, under another.
 * Every reply must read the same, and at the end the two data sets must be the same, key
 * for key and field for field (the prefix aside). An apply whose lead was written since its
 * read, or whose event is seen already, writes nothing and says "stale".
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it).
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/fast.h"
#include "funneld/keys.h"
#include "funneld/trigger.h"
#include "funneld/step.h"

static const char *CONFIG =
    "{\"max_future\":0,\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":4},\"funnels\":["
    "{\"name\":\"shop\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"visit\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"interest\",\"on\":[{\"type\":\"email_click\"}],\"stale_after\":\"7d\"},"
    " {\"name\":\"cart\",\"on\":[{\"type\":\"cart_add\"}],\"stale_after\":\"2h\"},"
    " {\"name\":\"buy\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"lost\":{\"on\":[{\"type\":\"deal_lost\"}]},"
    " \"retarget\":[{\"name\":\"cart_abandoned\",\"after\":{\"type\":\"cart_add\"},"
    "   \"unless\":[{\"type\":\"purchase\"},{\"type\":\"checkout_start\"}],\"within\":\"1h\"},"
    "  {\"name\":\"revisit\",\"after\":{\"type\":\"page_view\"},\"within\":\"30m\"}]},"
    "{\"name\":\"aida\",\"allow_regress\":true,\"stages\":["
    " {\"name\":\"a\",\"on\":[{\"type\":\"ad_click\"}]},"
    " {\"name\":\"i\",\"on\":[{\"type\":\"email_click\"}],\"stale_after\":\"1d\"},"
    " {\"name\":\"d\",\"on\":[{\"type\":\"demo_request\"}],\"stale_after\":\"3h\"}],"
    " \"cohorts\":4,\"breakdowns\":[\"channel\"]}]}";

static redisContext *rc;
static fn_config_t *cfg_whole, *cfg_fast;
static char prefix_whole[32], prefix_fast[32];
static int msg_no; /* the message number of the event being sent, for both data sets */

/* The whole step of ev under cfg, as the daemon sends it; the reply (the caller frees). */
static redisReply *whole_step(const fn_config_t *cfg, const fn_event_t *ev, int64_t now)
{
    fn_buf_t cmd = {0};
    char token[64];
    snprintf(token, sizeof token, "inst:%d", msg_no);
    const fn_step_call_t call = {"FCALL", fn_lua_step_lib_name};
    CHECK(fn_step_build(cfg, &call, token, ev, fn_step_lead_hash(ev->lead_id.p, ev->lead_id.len),
                        now, 0, "in", 0, &cmd) == FN_OK);
    redisAppendFormattedCommand(rc, cmd.data, cmd.len);
    void *r = NULL;
    CHECK(redisGetReply(rc, &r) == REDIS_OK);
    fn_buf_free(&cmd);
    return r;
}

/* The lead's HGETALL under cfg. */
static redisReply *read_lead(const fn_config_t *cfg, const fn_event_t *ev)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash(ev->lead_id.p, ev->lead_id.len), &k);
    return redisCommand(rc, "HGETALL %s", k.lead);
}

/* The apply fast.c builds for ev on the lead as read (lead); NULL when it declines. *out
 * gets the answer it gives. */
static redisReply *fast_apply(const fn_event_t *ev, const redisReply *lead, int64_t now,
                              fn_fast_out_t *out)
{
    const fn_fast_in_t in = {
        cfg_fast, ev, fn_step_lead_hash(ev->lead_id.p, ev->lead_id.len), lead, now, 0, "in", 0};
    fn_buf_t cmd = {0};
    if (!fn_fast_build(&in, fn_lua_step_lib_fast_name, &cmd, out)) {
        fn_buf_free(&cmd);
        return NULL;
    }
    redisAppendFormattedCommand(rc, cmd.data, cmd.len);
    void *r = NULL;
    CHECK(redisGetReply(rc, &r) == REDIS_OK);
    fn_buf_free(&cmd);
    return r;
}

static bool decode(const char *json, const fn_config_t *cfg, fn_event_t *ev)
{
    char reason[256];
    memset(ev, 0, sizeof *ev);
    fn_reject_t code = fn_event_decode(json, strlen(json), cfg, 0, ev, reason, sizeof reason);
    if (code != FN_REJ_NONE)
        fprintf(stderr, "decode %s: %s\n", json, reason);
    return code == FN_REJ_NONE;
}

/* Two parsed step replies read the same (outbox entries name each data set's keys: their
 * count only). */
static void check_same(const redisReply *a, const redisReply *b, const char *json)
{
    fn_step_result_t ra, rb;
    char err[256];
    CHECK(fn_step_parse(cfg_whole, a, &ra, err, sizeof err) == FN_OK);
    CHECK(fn_step_parse(cfg_fast, b, &rb, err, sizeof err) == FN_OK);
    bool same = ra.status == rb.status && ra.at == rb.at && ra.value.len == rb.value.len &&
                (ra.value.len == 0 || memcmp(ra.value.p, rb.value.p, ra.value.len) == 0) &&
                ra.n_trans == rb.n_trans && ra.armed_due == rb.armed_due &&
                (ra.fired ? ra.fired->elements : 0) == (rb.fired ? rb.fired->elements : 0);
    if (!same)
        fprintf(stderr,
                "replies differ for %s: status %d/%d at %lld/%lld value %.*s/%.*s trans %zu/%zu "
                "armed %lld/%lld\n",
                json, ra.status, rb.status, (long long)ra.at, (long long)rb.at, (int)ra.value.len,
                ra.value.p ? ra.value.p : "", (int)rb.value.len, rb.value.p ? rb.value.p : "",
                ra.n_trans, rb.n_trans, (long long)ra.armed_due, (long long)rb.armed_due);
    CHECK(same);
}

/* Whether the two data sets are the same (the prefix aside); prints the first difference. */
static bool same_state(void)
{
    char *sw = fn_test_redis_state(rc, prefix_whole), *sf = fn_test_redis_state(rc, prefix_fast);
    bool same = strcmp(sw, sf) == 0 && strlen(sw) > 100;
    if (!same) {
        size_t at = 0;
        while (sw[at] && sw[at] == sf[at])
            at++;
        while (at > 0 && sw[at - 1] != '\n')
            at--;
        fprintf(stderr, "whole: %.400s\nfast:  %.400s\n", sw + at, sf + at);
    }
    CHECK(same);
    free(sw);
    free(sf);
    return same;
}

/* A small deterministic generator (the stream must be the same every run). */
static uint64_t rng = 88172645463325252ULL;
static unsigned next(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void test_stream_same_both_ways(void)
{
    static const char *types[] = {"page_view",      "page_view", "page_view", "page_view",
                                  "email_click",    "cart_add",  "ad_click",  "demo_request",
                                  "checkout_start", "purchase",  "deal_lost", "page_view",
                                  "page_view",      "ad_click"};
    const size_t n_types = sizeof types / sizeof types[0];
    int64_t now = 1790000000000LL, ts = now - 3600000;
    size_t events = 6000, fast = 0, stale = 0, declined = 0, checked = 0;
    char json[512], last[512] = "";
    for (size_t i = 0; i < events; i++) {
        /* a lead's events minutes apart in the first half (its timers pending, moved, armed
         * again), hours apart in the second (they come due) */
        now += 1 + next(i < events / 2 ? 60000 : 900000);
        ts = now - next(2) * (int64_t)next(7200000); /* some late, most on time */
        unsigned lead = next(40), kind = next(100);
        if (kind < 3 && last[0]) {
            snprintf(json, sizeof json, "%s", last); /* a duplicate */
        } else if (kind < 6) {
            snprintf(json, sizeof json,
                     "{\"event_id\":\"e%zu\",\"lead_id\":\"L%u\",\"ts\":%lld,\"channel\":\"web\","
                     "\"type\":\"consent\",\"props\":{\"marketing\":%s}}",
                     i, lead, (long long)ts, next(2) ? "true" : "false");
        } else {
            const char *type = types[next((unsigned)n_types)];
            char value[48] = "";
            if (next(10) == 0)
                snprintf(value, sizeof value, ",\"value\":%u.5", next(1000));
            snprintf(json, sizeof json,
                     "{\"event_id\":\"e%zu\",\"lead_id\":\"L%u\",\"ts\":%lld,\"channel\":\"%s\","
                     "\"type\":\"%s\",\"props\":{\"campaign\":\"c%u\",\"source\":\"s%u\"%s}}",
                     i, lead, (long long)ts, next(3) ? "web" : "email", type, next(3), next(2),
                     value);
        }
        snprintf(last, sizeof last, "%s", json);
        msg_no++;
        fn_event_t ev_w, ev_f;
        if (!decode(json, cfg_whole, &ev_w) || !decode(json, cfg_fast, &ev_f)) {
            CHECK(false);
            continue;
        }
        redisReply *a = whole_step(cfg_whole, &ev_w, now);
        redisReply *lead_read = read_lead(cfg_fast, &ev_f);
        fn_fast_out_t out;
        redisReply *applied = fast_apply(&ev_f, lead_read, now, &out);
        const redisReply *b = NULL;
        redisReply *whole = NULL;
        fn_fast_reply_t room;
        if (!applied) {
            declined++;
            b = whole = whole_step(cfg_fast, &ev_f, now);
        } else if (applied->type == REDIS_REPLY_STRING && strcmp(applied->str, "ok") == 0) {
            fast++;
            b = fn_fast_reply(&out, &room);
        } else {
            stale++; /* a duplicate: the whole step says so */
            b = whole = whole_step(cfg_fast, &ev_f, now);
        }
        check_same(a, b, json);
        freeReplyObject(a);
        if (whole)
            freeReplyObject(whole);
        freeReplyObject(lead_read);
        if (applied)
            freeReplyObject(applied);
        fn_event_clear(&ev_w);
        fn_event_clear(&ev_f);
        /* the data sets every hundred events, and at the end: a timer member one of them
         * lacks would not show at the end, once the timer fired (the step fires by fields) */
        if (i % 100 == 99 || i + 1 == events)
            checked += same_state();
    }
    fprintf(stderr, "%zu events: %zu by the fast path, %zu stale, %zu declined\n", events, fast,
            stale, declined);
    CHECK(checked == events / 100);
    /* the stream is made to give the fast path a good share, and the whole step the rest */
    CHECK(fast > events / 4);
    CHECK(declined > events / 4);
    CHECK(stale > 0);
}

/* ev's apply, built from lead_read, answers stale and writes nothing. */
static void check_stale(const fn_event_t *ev, const redisReply *lead_read, int64_t now)
{
    char *before = fn_test_redis_state(rc, prefix_fast);
    fn_fast_out_t out;
    redisReply *r = fast_apply(ev, lead_read, now, &out);
    CHECK(r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "stale") == 0);
    char *after = fn_test_redis_state(rc, prefix_fast);
    CHECK(strcmp(before, after) == 0);
    freeReplyObject(r);
    free(before);
    free(after);
}

/* An apply built from a read that something else wrote after writes nothing. */
static void test_stale_apply_writes_nothing(void)
{
    int64_t now = 1795000000001LL;
    const char *first = "{\"event_id\":\"s1\",\"lead_id\":\"S\",\"ts\":1795000000000,"
                        "\"channel\":\"web\",\"type\":\"page_view\"}";
    const char *second = "{\"event_id\":\"s2\",\"lead_id\":\"S\",\"ts\":1795000000100,"
                         "\"channel\":\"web\",\"type\":\"page_view\"}";
    const char *third = "{\"event_id\":\"s3\",\"lead_id\":\"S\",\"ts\":1795000000200,"
                        "\"channel\":\"email\",\"type\":\"page_view\"}";
    fn_event_t e1, e2, e3;
    CHECK(decode(first, cfg_fast, &e1) && decode(second, cfg_fast, &e2) &&
          decode(third, cfg_fast, &e3));
    freeReplyObject(whole_step(cfg_fast, &e1, now)); /* the lead exists */
    redisReply *lead_read = read_lead(cfg_fast, &e3);
    freeReplyObject(whole_step(cfg_fast, &e2, now + 1)); /* written after the read */
    check_stale(&e3, lead_read, now + 2);
    freeReplyObject(lead_read);
    /* an event seen already: the apply leaves it to the whole step */
    lead_read = read_lead(cfg_fast, &e2);
    check_stale(&e2, lead_read, now + 3);
    freeReplyObject(lead_read);
    fn_event_clear(&e1);
    fn_event_clear(&e2);
    fn_event_clear(&e3);
}

/* A timer the clock's tick (fire.lua) fires between the read and the apply moves the lead's
 * version on: the apply writes nothing. */
static void test_fired_between_read_and_apply(void)
{
    int64_t t0 = 1796000000001LL;
    const char *view = "{\"event_id\":\"t1\",\"lead_id\":\"T\",\"ts\":1796000000000,"
                       "\"channel\":\"web\",\"type\":\"page_view\"}";
    const char *again = "{\"event_id\":\"t2\",\"lead_id\":\"T\",\"ts\":1796000060000,"
                        "\"channel\":\"web\",\"type\":\"checkout_start\"}";
    fn_event_t e1, e2;
    CHECK(decode(view, cfg_fast, &e1) && decode(again, cfg_fast, &e2));
    freeReplyObject(whole_step(cfg_fast, &e1, t0)); /* arms "revisit", due in 30 minutes */
    redisReply *lead_read = read_lead(cfg_fast, &e2);
    fn_fast_out_t out;
    fn_buf_t cmd = {0};
    const fn_fast_in_t in = {cfg_fast, &e2, fn_step_lead_hash("T", 1), lead_read, t0 + 60001, 0,
                             "in",     0};
    CHECK(fn_fast_build(&in, fn_lua_step_lib_fast_name, &cmd, &out)); /* it takes it */
    fn_buf_free(&cmd);
    fn_lead_keys_t k;
    fn_step_keys(cfg_fast, fn_step_lead_hash("T", 1), &k);
    char due[128], outbox[64], leases[64], stats[64], now[32];
    fn_step_due_key(cfg_fast, k.shard, "in", 0, due, sizeof due);
    fn_key_outbox(outbox, sizeof outbox, prefix_fast, k.shard);
    fn_key_leases(leases, sizeof leases, prefix_fast, k.shard);
    fn_key_stats(stats, sizeof stats, prefix_fast, k.shard);
    snprintf(now, sizeof now, "%lld", (long long)(t0 + 3600000));
    redisReply *f = redisCommand(rc, "EVAL %s 4 %s %s %s %s %s %s 100 0 %s", fn_lua_fire_src, due,
                                 outbox, leases, stats, now, now, "");
    if (f && f->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "fire.lua: %s\n", f->str);
    CHECK(f && f->type == REDIS_REPLY_ARRAY && f->elements == 4 &&
          f->element[1]->type == REDIS_REPLY_ARRAY && f->element[1]->elements >= 1);
    freeReplyObject(f);
    /* it fired T's "revisit" (the zset holds the stream's timers too) */
    redisReply *tv = redisCommand(rc, "HGET %s shop|t|revisit", k.lead);
    CHECK(tv && tv->type == REDIS_REPLY_NIL);
    freeReplyObject(tv);
    check_stale(&e2, lead_read, t0 + 60001);
    freeReplyObject(lead_read);
    fn_event_clear(&e1);
    fn_event_clear(&e2);
}

int main(void)
{
    if (!fn_test_redis_start(CONFIG, "fw", prefix_whole, &cfg_whole, &rc))
        return 1;
    cfg_fast = fn_test_config(CONFIG, "ff", prefix_fast);
    if (!cfg_fast)
        return 1;
    redisReply *r = redisCommand(rc, "FUNCTION LOAD %s", fn_lua_step_lib);
    CHECK(fn_step_lib_loaded(r));
    freeReplyObject(r);
    test_stream_same_both_ways();
    test_stale_apply_writes_nothing();
    test_fired_between_read_and_apply();
    redisReply *del = redisCommand(rc, "EVAL %s 0 %s:* %s:*",
                                   "for _, p in ipairs(ARGV) do for _, k in ipairs("
                                   "redis.call('KEYS', p)) do redis.call('DEL', k) end end",
                                   prefix_whole, prefix_fast);
    freeReplyObject(del);
    fn_config_free(cfg_whole);
    fn_config_free(cfg_fast);
    redisFree(rc);
    return fn_test_result("test_fast_redis");
}
