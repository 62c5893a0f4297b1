/*
 * test_timers_redis.c — retargeting timers on a real Redis: the step arms, re-arms and
 * cancels them, fire.lua claims what is due exactly once, with stalled, sequence-rule,
 * conversion, consent, erasure, frequency-cap, outbox-lease and partition-move cases.
 *
 * Time is passed explicitly as "now" to fire.lua, as the daemon does with a partition's
 * clock, so every case is exact. Needs FUNNELD_REDIS_URL (the ctest services fixture).
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/emit.h"
#include "funneld/keys.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

static const char *CONFIG =
    "{\"max_future\":0,\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":4},\"funnels\":["
    "{\"name\":\"shop\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"visit\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"interest\",\"on\":[{\"type\":\"email_click\"}],\"stale_after\":\"7d\"},"
    " {\"name\":\"cart\",\"on\":[{\"type\":\"cart_add\"}],\"stale_after\":\"2d\"},"
    " {\"name\":\"buy\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"lost\":{\"on\":[{\"type\":\"deal_lost\"}]},"
    " \"retarget\":[{\"name\":\"cart_abandoned\",\"after\":{\"type\":\"cart_add\"},"
    "   \"unless\":[{\"type\":\"purchase\"},{\"type\":\"checkout_start\"}],\"within\":\"1h\"}]},"
    "{\"name\":\"capped\",\"stages\":[{\"name\":\"s\",\"on\":[{\"type\":\"signup\"}]}],"
    " \"retarget\":[{\"name\":\"nudge\",\"after\":{\"type\":\"ping\"},\"within\":\"1m\"}],"
    " \"trigger_cap\":{\"max\":2,\"per\":\"1h\"}}]}";

#define T0 1790000000000LL
#define H 3600000LL
#define D (24 * H)

static redisContext *rc;
static fn_config_t *cfg;
static char step_sha[41], fire_sha[41];
static fn_step_call_t step_call; /* fn_test_step_call */
static char prefix[32];
static int msg_no;
/* triggers the last step fired itself (timers due before its event) */
static size_t step_fired;
static char step_fired_reason[64];
/* the partition's event time the next steps are built with (0: each event's own time) */
static int64_t step_clock;

/* Applies one event consumed from partition `part` of topic "in"; returns the due time the
 * step armed (0: none), or -1 when the step failed. */
static int64_t apply_on(int part, const char *lead, const char *id, int64_t ts, const char *type,
                        const char *extra)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"event_id\":\"%s\",\"lead_id\":\"%s\",\"ts\":%lld,\"channel\":\"web\","
             "\"type\":\"%s\"%s}",
             id, lead, (long long)ts, type, extra);
    fn_event_t ev = {0};
    char reason[256], err[256];
    fn_reject_t code =
        fn_event_decode(json, strlen(json), cfg, fn_now_ms(), &ev, reason, sizeof reason);
    CHECK_INT(code, FN_REJ_NONE);
    if (code != FN_REJ_NONE) {
        fprintf(stderr, "decode: %s\n", reason);
        return -1;
    }
    fn_buf_t cmd = {0};
    char token[64];
    snprintf(token, sizeof token, "it:%d", ++msg_no);
    CHECK(fn_step_build(cfg, &step_call, token, &ev,
                        fn_step_lead_hash(ev.lead_id.p, ev.lead_id.len), T0, step_clock, "in", part,
                        &cmd) == FN_OK);
    redisAppendFormattedCommand(rc, cmd.data, cmd.len);
    redisReply *r = NULL;
    CHECK(redisGetReply(rc, (void **)&r) == REDIS_OK);
    fn_step_result_t res;
    int64_t due = -1;
    if (r && r->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis: %s\n", r->str);
    step_fired = 0;
    step_fired_reason[0] = '\0';
    if (fn_step_parse(cfg, r, &res, err, sizeof err) == FN_OK) {
        due = res.armed_due;
        for (size_t i = 0; res.fired && i < res.fired->elements; i++) {
            fn_trigger_t t;
            if (fn_trigger_parse(res.fired->element[i]->str, res.fired->element[i]->len, &t, err,
                                 sizeof err) == FN_OK) {
                step_fired++;
                snprintf(step_fired_reason, sizeof step_fired_reason, "%.*s", (int)t.reason.len,
                         t.reason.p);
                json_decref(t.doc);
            }
        }
    } else
        fprintf(stderr, "parse: %s\n", err);
    freeReplyObject(r);
    fn_buf_free(&cmd);
    fn_event_clear(&ev);
    return due;
}

static int64_t apply(const char *lead, const char *id, int64_t ts, const char *type,
                     const char *extra)
{
    return apply_on(0, lead, id, ts, type, extra);
}

static unsigned shard_of(const char *lead)
{
    return fn_step_shard(cfg, fn_step_lead_hash(lead, strlen(lead)));
}

static bool str_is(fn_str_t s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

typedef struct fired {
    fn_trigger_t t[16];
    size_t n;
    int64_t next; /* next due in the zset, 0: none */
    long long capped, opted_out;
} fired_t;

static void fired_free(fired_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        json_decref(f->t[i].doc);
    memset(f, 0, sizeof *f);
}

/* Runs fire.lua for partition `part` of the lead's shard at clock `now`. */
static void fire_on(int part, const char *lead, int64_t now, int64_t wall, bool sweep, fired_t *out)
{
    unsigned s = shard_of(lead);
    char due[128], outbox[64], leases[64], stats[64], a_now[24], a_wall[24];
    fn_step_due_key(cfg, s, "in", part, due, sizeof due);
    snprintf(outbox, sizeof outbox, "%s:{%u}:outbox", prefix, s);
    snprintf(leases, sizeof leases, "%s:{%u}:leases", prefix, s);
    snprintf(stats, sizeof stats, "%s:{%u}:stats", prefix, s);
    snprintf(a_now, sizeof a_now, "%lld", (long long)now);
    snprintf(a_wall, sizeof a_wall, "%lld", (long long)wall);
    redisReply *r =
        redisCommand(rc, "EVALSHA %s 4 %s %s %s %s %s %s 100 %s capped=2,3600000;", fire_sha, due,
                     outbox, leases, stats, a_now, a_wall, sweep ? "1" : "0");
    fired_free(out);
    CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r && r->type == REDIS_REPLY_ERROR)
            fprintf(stderr, "fire: %s\n", r->str);
        freeReplyObject(r);
        return;
    }
    out->next = r->element[0]->len ? atoll(r->element[0]->str) : 0;
    out->capped = r->element[2]->integer;
    out->opted_out = r->element[3]->integer;
    for (size_t i = 0; i < r->element[1]->elements && out->n < 16; i++) {
        char err[128];
        const redisReply *e = r->element[1]->element[i];
        int ok = fn_trigger_parse(e->str, e->len, &out->t[out->n], err, sizeof err);
        CHECK_INT(ok, FN_OK);
        /* other leads of the shard may have timers left from earlier cases: not counted */
        if (ok == FN_OK && str_is(out->t[out->n].lead_id, lead))
            out->n++;
        else if (ok == FN_OK)
            json_decref(out->t[out->n].doc);
    }
    freeReplyObject(r);
}

static void fire(const char *lead, int64_t now, fired_t *out)
{
    fire_on(0, lead, now, T0, false, out);
}

static long long stat_of(const char *lead, const char *field)
{
    redisReply *r = redisCommand(rc, "HGET %s:{%u}:stats %s", prefix, shard_of(lead), field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

static long long zcard(const char *lead, int part)
{
    char due[128];
    fn_step_due_key(cfg, shard_of(lead), "in", part, due, sizeof due);
    redisReply *r = redisCommand(rc, "ZCARD %s", due);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* The score of the lead's timer member in partition part's zset, -1: none. */
static int64_t member_score(const char *lead, int part, const char *funnel, const char *reason)
{
    char due[128];
    fn_lead_keys_t k;
    fn_step_due_key(cfg, shard_of(lead), "in", part, due, sizeof due);
    fn_step_keys(cfg, fn_step_lead_hash(lead, strlen(lead)), &k);
    char member[160];
    fn_key_timer_member(member, sizeof member, k.lead, funnel, reason, strlen(reason));
    redisReply *r = redisCommand(rc, "ZSCORE %s %s", due, member);
    int64_t v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static void test_stalled(void)
{
    fired_t f = {0};
    CHECK_INT(apply("S-1", "s1", T0, "page_view", ""), 0); /* visit: no stale_after */
    CHECK_INT(apply("S-1", "s2", T0 + H, "email_click", ""), T0 + H + 7 * D);
    fire("S-1", T0 + H + 7 * D - 1, &f);
    CHECK_INT(f.n, 0);
    CHECK_INT(f.next, T0 + H + 7 * D);
    /* a touch is activity: the stall is measured from it. The step writes the later due in
     * the lead's field only; the member keeps its score until fire.lua meets it early and
     * moves it to the field's due. */
    CHECK_INT(apply("S-1", "s3", T0 + 2 * D, "email_open", ""), T0 + 9 * D);
    CHECK_INT(member_score("S-1", 0, "shop", "stalled"), T0 + H + 7 * D);
    fire("S-1", T0 + H + 7 * D, &f);
    CHECK_INT(f.n, 0);
    CHECK_INT(member_score("S-1", 0, "shop", "stalled"), T0 + 9 * D);
    fire("S-1", T0 + 9 * D, &f);
    CHECK_INT(f.n, 1);
    if (f.n == 1) {
        fn_trigger_t *t = &f.t[0];
        CHECK(str_is(t->reason, "stalled") && str_is(t->funnel, "shop"));
        CHECK(str_is(t->cause, "s3") && str_is(t->lead_id, "S-1"));
        CHECK_INT(t->stage, 1);
        CHECK_INT(t->due, T0 + 9 * D);
        CHECK_INT(t->due - t->last_activity, 7 * D);
        CHECK(str_is(t->last_type, "email_open"));
        fn_buf_t b = {0};
        CHECK(fn_emit_retarget(&b, t, &cfg->funnels[0], T0 + 10 * D) == FN_OK);
        json_t *j = json_loadb(b.data, b.len, 0, NULL);
        CHECK(j && json_integer_value(json_object_get(j, "idle_ms")) == 7 * D);
        CHECK(j && strcmp(json_string_value(json_object_get(j, "stage")), "interest") == 0);
        CHECK(j && strcmp(json_string_value(json_object_get(j, "reason")), "stalled") == 0);
        json_decref(j);
        fn_buf_free(&b);
    }
    /* claimed once: firing again finds nothing; the lead counts as stalled in its stage */
    long long n_stalled = stat_of("S-1", "shop|stl|1");
    CHECK(n_stalled >= 1);
    fire("S-1", T0 + 20 * D, &f);
    CHECK_INT(f.n, 0);
    /* a late event (older than the latest activity) does not re-arm a stall that fired */
    CHECK_INT(apply("S-1", "s4", T0 + D, "email_open", ""), 0);
    fire("S-1", T0 + 20 * D, &f);
    CHECK_INT(f.n, 0);
    CHECK_INT(stat_of("S-1", "shop|stl|1"), n_stalled);
    /* new activity re-arms, with a new cause and so a new id; no longer stalled */
    CHECK_INT(apply("S-1", "s5", T0 + 21 * D, "cart_add", ""), T0 + 21 * D + H);
    CHECK_INT(stat_of("S-1", "shop|stl|1"), n_stalled - 1);
    fire("S-1", T0 + 30 * D, &f);
    CHECK_INT(f.n, 2); /* cart_abandoned at +1h, stalled in cart at +2d */
    if (f.n == 2) {
        bool stalled = str_is(f.t[0].reason, "stalled") || str_is(f.t[1].reason, "stalled");
        bool cart =
            str_is(f.t[0].reason, "cart_abandoned") || str_is(f.t[1].reason, "cart_abandoned");
        CHECK(stalled && cart);
        char id1[33], id2[33];
        fn_trigger_id(&f.t[0], id1);
        fn_trigger_id(&f.t[1], id2);
        CHECK(strcmp(id1, id2) != 0);
    }
    fired_free(&f);
}

/* A timer moved later by steps and met only once its field's due has passed fires once, at
 * the field's due, with the last step's cause; one moved earlier moves its member at once. */
static void test_moved_later_then_due(void)
{
    fired_t f = {0};
    CHECK_INT(apply("S-2", "m1", T0, "email_click", ""), T0 + 7 * D);
    CHECK_INT(apply("S-2", "m2", T0 + D, "email_open", ""), T0 + 8 * D);
    CHECK_INT(apply("S-2", "m3", T0 + 2 * D, "email_open", ""), T0 + 9 * D);
    CHECK_INT(member_score("S-2", 0, "shop", "stalled"), T0 + 7 * D);
    fire("S-2", T0 + 30 * D, &f);
    CHECK_INT(f.n, 1);
    if (f.n == 1) {
        CHECK(str_is(f.t[0].reason, "stalled") && str_is(f.t[0].cause, "m3"));
        CHECK_INT(f.t[0].due, T0 + 9 * D);
    }
    CHECK_INT(member_score("S-2", 0, "shop", "stalled"), -1);
    fire("S-2", T0 + 40 * D, &f);
    CHECK_INT(f.n, 0);
    /* into cart (stale_after 2d): the new due is earlier than the pending one, so the
     * member moves with the step */
    CHECK_INT(apply("S-3", "c1", T0, "email_click", ""), T0 + 7 * D);
    CHECK_INT(apply("S-3", "c2", T0 + H, "cart_add", ""), T0 + 2 * H); /* + cart_abandoned */
    CHECK_INT(member_score("S-3", 0, "shop", "stalled"), T0 + H + 2 * D);
    fired_free(&f);
}

static void test_sequence_rule(void)
{
    fired_t f = {0};
    /* the cart changed again: the wait restarts from the second cart_add */
    CHECK_INT(apply("Q-1", "q1", T0, "cart_add", ",\"funnel\":\"shop\""), T0 + H);
    CHECK_INT(apply("Q-1", "q2", T0 + H / 2, "cart_add", ",\"funnel\":\"shop\""), T0 + H / 2 + H);
    fire("Q-1", T0 + H, &f);
    CHECK_INT(f.n, 0);
    fire("Q-1", T0 + H / 2 + H, &f);
    CHECK_INT(f.n, 1);
    CHECK(f.n == 1 && str_is(f.t[0].reason, "cart_abandoned") && str_is(f.t[0].cause, "q2"));
    /* an unless event cancels */
    apply("Q-2", "r1", T0, "cart_add", ",\"funnel\":\"shop\"");
    apply("Q-2", "r2", T0 + 10 * 60000, "checkout_start", ",\"funnel\":\"shop\"");
    fire("Q-2", T0 + 5 * H, &f);
    CHECK_INT(f.n, 0);
    /* converting cancels the stalled timer and the rule's */
    apply("Q-3", "c1", T0, "cart_add", ",\"funnel\":\"shop\"");
    CHECK_INT(apply("Q-3", "c2", T0 + 60000, "purchase", ",\"funnel\":\"shop\""), 0);
    fire("Q-3", T0 + 30 * D, &f);
    CHECK_INT(f.n, 0);
    /* lost too; and touches after the end arm nothing */
    apply("Q-4", "l1", T0, "cart_add", ",\"funnel\":\"shop\"");
    apply("Q-4", "l2", T0 + 1, "deal_lost", ",\"funnel\":\"shop\"");
    CHECK_INT(apply("Q-4", "l3", T0 + 2, "cart_add", ",\"funnel\":\"shop\""), 0);
    fire("Q-4", T0 + 30 * D, &f);
    CHECK_INT(f.n, 0);
    fired_free(&f);
}

static void test_consent_and_erase(void)
{
    fired_t f = {0};
    long long sup = stat_of("C-1", "shop|sup|opted_out");
    apply("C-1", "k1", T0, "cart_add", ",\"funnel\":\"shop\"");
    long long pending = zcard("C-1", 0);
    apply("C-1", "k2", T0 + 1, "consent", ",\"props\":{\"marketing\":false}");
    CHECK_INT(zcard("C-1", 0), pending - 2); /* rule and stall both cancelled */
    CHECK_INT(stat_of("C-1", "shop|sup|opted_out"), sup + 2);
    /* while opted out: a rule's arming is blocked (counted), no stall is armed */
    CHECK_INT(apply("C-1", "k3", T0 + 2, "cart_add", ",\"funnel\":\"shop\""), 0);
    CHECK_INT(stat_of("C-1", "shop|sup|opted_out"), sup + 3);
    fire("C-1", T0 + 30 * D, &f);
    CHECK_INT(f.n, 0);
    /* opted in again: the next activity arms */
    apply("C-1", "k4", T0 + 3, "consent", ",\"props\":{\"marketing\":true}");
    CHECK_INT(apply("C-1", "k5", T0 + 4, "cart_add", ",\"funnel\":\"shop\""), T0 + 4 + H);
    /* opted out again after arming, then in again before due: still cancelled */
    apply("C-1", "k6", T0 + 5, "consent", ",\"props\":{\"marketing\":false}");
    apply("C-1", "k7", T0 + 6, "consent", ",\"props\":{\"marketing\":true}");
    fire("C-1", T0 + 30 * D, &f);
    CHECK_INT(f.n, 0);

    long long erased = stat_of("E-1", "shop|sup|erased");
    apply("E-1", "x1", T0, "cart_add", ",\"funnel\":\"shop\"");
    pending = zcard("E-1", 0);
    apply("E-1", "x2", T0 + 1, "erase", "");
    CHECK_INT(zcard("E-1", 0), pending - 2);
    CHECK_INT(stat_of("E-1", "shop|sup|erased"), erased + 2);
    fire("E-1", T0 + 30 * D, &f);
    CHECK_INT(f.n, 0);
    fired_free(&f);
}

static void test_cap(void)
{
    fired_t f = {0};
    /* at most 2 per hour: the third nudge within the hour is capped, the fourth is not */
    int64_t at[] = {0, 10 * 60000, 20 * 60000, 2 * H};
    int fired_n = 0;
    long long capped = 0;
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        apply("P-1", id, T0 + at[i], "ping", ",\"funnel\":\"capped\"");
        fire("P-1", T0 + at[i] + 60000, &f);
        fired_n += (int)f.n;
        capped += f.capped;
    }
    CHECK_INT(fired_n, 3);
    CHECK_INT(capped, 1);
    CHECK_INT(stat_of("P-1", "capped|sup|capped"), 1);
    CHECK_INT(stat_of("P-1", "capped|trig|nudge"), 3);
    fired_free(&f);
}

static void test_outbox_and_move(void)
{
    fired_t f = {0};
    apply("O-1", "o1", T0, "cart_add", ",\"funnel\":\"shop\"");
    fire("O-1", T0 + H, &f);
    CHECK_INT(f.n, 1);
    char key[256] = "", id1[33] = "";
    if (f.n == 1) {
        snprintf(key, sizeof key, "%.*s", (int)f.t[0].key.len, f.t[0].key.p);
        fn_trigger_id(&f.t[0], id1);
    }
    /* not acknowledged: after the lease the sweep hands it out again, same id */
    fire_on(0, "O-1", 0, T0 + 30000, true, &f);
    CHECK_INT(f.n, 0);
    fire_on(0, "O-1", 0, T0 + 61000, true, &f);
    CHECK_INT(f.n, 1);
    if (f.n == 1) {
        char id2[33];
        fn_trigger_id(&f.t[0], id2);
        CHECK_STR(id2, id1);
    }
    /* acknowledged: the daemon deletes the entry, and it is never handed out again */
    unsigned s = shard_of("O-1");
    redisReply *r = redisCommand(rc, "HDEL %s:{%u}:outbox %s", prefix, s, key);
    CHECK(r && r->integer == 1);
    freeReplyObject(r);
    fire_on(0, "O-1", 0, T0 + 10 * D, true, &f);
    CHECK_INT(f.n, 0);

    /* the lead's next event arrives on another partition: its timers move with it */
    CHECK_INT(apply_on(0, "M-1", "m1", T0, "cart_add", ",\"funnel\":\"shop\""), T0 + H);
    long long z0 = zcard("M-1", 0);
    CHECK_INT(apply_on(1, "M-1", "m2", T0 + 1, "cart_add", ",\"funnel\":\"shop\""), T0 + 1 + H);
    CHECK_INT(zcard("M-1", 0), z0 - 2);
    CHECK_INT(zcard("M-1", 1), 2);
    fire_on(0, "M-1", T0 + 30 * D, T0, false, &f);
    CHECK_INT(f.n, 0);
    fire_on(1, "M-1", T0 + 30 * D, T0, false, &f);
    CHECK_INT(f.n, 2);
    fired_free(&f);
}

/* Rewrites every timer field of lead that names partition part's zset by its tail ("in:<part>")
 * to name the whole key instead, as steps wrote them before 2026-12-05. Returns how many. */
static int to_whole_key(const char *lead, int part)
{
    char due[128], ref[32];
    fn_lead_keys_t k;
    fn_step_due_key(cfg, shard_of(lead), "in", part, due, sizeof due);
    fn_step_keys(cfg, fn_step_lead_hash(lead, strlen(lead)), &k);
    snprintf(ref, sizeof ref, "|in:%d|", part);
    redisReply *h = redisCommand(rc, "HGETALL %s", k.lead);
    int n = 0;
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const char *name = h->element[i]->str, *v = h->element[i + 1]->str;
        const char *at = strstr(v, ref);
        if (!strstr(name, "|t|") || !at)
            continue;
        char whole[512];
        snprintf(whole, sizeof whole, "%.*s|%s|%s", (int)(at - v), v, due, at + strlen(ref));
        redisReply *w = redisCommand(rc, "HSET %s %s %s", k.lead, name, whole);
        freeReplyObject(w);
        n++;
    }
    freeReplyObject(h);
    return n;
}

/* A timer field names its zset by the key's tail, not the whole key (which made the field too
 * long for a compact hash; the memory itself is measured by tests/bench/lead_memory.py); a
 * field naming the whole key, as written before, still works. */
static void test_field_layout(void)
{
    fired_t f = {0};
    fn_lead_keys_t k;
    CHECK_INT(apply_on(0, "F-1", "f1", T0, "cart_add", ",\"funnel\":\"shop\""), T0 + H);
    fn_step_keys(cfg, fn_step_lead_hash("F-1", 3), &k);
    redisReply *h = redisCommand(rc, "HGETALL %s", k.lead);
    int timers = 0;
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
        if (strstr(h->element[i]->str, "|t|")) {
            timers++;
            CHECK(strstr(h->element[i + 1]->str, "|in:0|f1") != NULL);
            CHECK(strstr(h->element[i + 1]->str, prefix) == NULL);
        }
    freeReplyObject(h);
    CHECK_INT(timers, 2);

    /* whole keys: moved to another partition's zset, the old members go */
    CHECK_INT(to_whole_key("F-1", 0), 2);
    long long z0 = zcard("F-1", 0), z1 = zcard("F-1", 1);
    CHECK_INT(apply_on(1, "F-1", "f2", T0 + 1, "cart_add", ",\"funnel\":\"shop\""), T0 + 1 + H);
    CHECK_INT(zcard("F-1", 0), z0 - 2);
    CHECK_INT(zcard("F-1", 1), z1 + 2);
    CHECK_INT(to_whole_key("F-1", 1), 2);
    /* and fire from them, with their cause */
    fire_on(1, "F-1", T0 + 30 * D, T0, false, &f);
    CHECK_INT(f.n, 2);
    for (size_t i = 0; i < f.n; i++)
        CHECK(str_is(f.t[i].cause, "f2") && str_is(f.t[i].lead_id, "F-1"));
    fired_free(&f);
}

/* Gives each of lead's members in partition part's zset a copy that names the whole lead
 * key, as steps wrote members before 2026-12-06; keep_tail false drops the tail's. Returns
 * how many members it copied. */
static int to_whole_member(const char *lead, int part, bool keep_tail)
{
    char due[128], hex[33];
    fn_lead_keys_t k;
    fn_step_due_key(cfg, shard_of(lead), "in", part, due, sizeof due);
    fn_step_keys(cfg, fn_step_lead_hash(lead, strlen(lead)), &k);
    snprintf(hex, sizeof hex, "%s", strrchr(k.lead, ':') + 1);
    redisReply *z = redisCommand(rc, "ZRANGE %s 0 -1 WITHSCORES", due);
    int n = 0;
    for (size_t i = 0; z && z->type == REDIS_REPLY_ARRAY && i + 1 < z->elements; i += 2) {
        const char *m = z->element[i]->str;
        if (strncmp(m, hex, strlen(hex)) != 0)
            continue;
        char whole[512];
        snprintf(whole, sizeof whole, "%s%s", k.lead, m + strlen(hex));
        redisReply *w = redisCommand(rc, "ZADD %s %s %s", due, z->element[i + 1]->str, whole);
        freeReplyObject(w);
        if (!keep_tail) {
            w = redisCommand(rc, "ZREM %s %s", due, m);
            freeReplyObject(w);
        }
        n++;
    }
    freeReplyObject(z);
    return n;
}

/* How many members of partition part's zset name lead, by its key or the key's tail. */
static int members_of(const char *lead, int part)
{
    char due[128];
    fn_lead_keys_t k;
    fn_step_due_key(cfg, shard_of(lead), "in", part, due, sizeof due);
    fn_step_keys(cfg, fn_step_lead_hash(lead, strlen(lead)), &k);
    const char *hex = strrchr(k.lead, ':') + 1;
    redisReply *z = redisCommand(rc, "ZRANGE %s 0 -1", due);
    int n = 0;
    for (size_t i = 0; z && z->type == REDIS_REPLY_ARRAY && i < z->elements; i++) {
        const char *m = z->element[i]->str;
        n += strncmp(m, hex, strlen(hex)) == 0 || strncmp(m, k.lead, strlen(k.lead)) == 0;
    }
    freeReplyObject(z);
    return n;
}

/* A member names its lead by the lead key's tail, not the whole key (which repeated the key
 * prefix in every member); members naming the whole key, as written before, still fire, once,
 * even next to a tail's member of the same timer. */
static void test_member_layout(void)
{
    fired_t f = {0};
    fn_lead_keys_t k;
    char due[128], want[160];
    CHECK_INT(apply_on(0, "W-1", "w1", T0, "cart_add", ",\"funnel\":\"shop\""), T0 + H);
    fn_step_keys(cfg, fn_step_lead_hash("W-1", 3), &k);
    fn_step_due_key(cfg, shard_of("W-1"), "in", 0, due, sizeof due);
    fn_key_timer_member(want, sizeof want, k.lead, "shop", "stalled", 7);
    CHECK(strchr(want, ':') == NULL && strstr(want, "|shop|stalled") != NULL);
    redisReply *r = redisCommand(rc, "ZSCORE %s %s", due, want);
    CHECK(r && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);

    /* whole-key members only: a later touch moves the stall in the field; fire.lua meets
     * the old member early and moves it under the tail's name, then fires each timer once */
    CHECK_INT(to_whole_member("W-1", 0, false), 2);
    CHECK_INT(member_score("W-1", 0, "shop", "stalled"), -1);
    CHECK_INT(apply_on(0, "W-1", "w2", T0 + D, "page_view", ",\"funnel\":\"shop\""), T0 + 3 * D);
    fire_on(0, "W-1", T0 + 2 * D + 1, T0, false, &f); /* cart_abandoned (+1h) fires */
    CHECK_INT(f.n, 1);
    CHECK_INT(member_score("W-1", 0, "shop", "stalled"), T0 + 3 * D);
    fire_on(0, "W-1", T0 + 30 * D, T0, false, &f);
    CHECK_INT(f.n, 1);
    CHECK(f.n == 1 && str_is(f.t[0].reason, "stalled") && str_is(f.t[0].cause, "w2"));
    CHECK_INT(members_of("W-1", 0), 0);

    /* both names of the same timers in the zset: each fires once, and both go */
    CHECK_INT(apply_on(0, "W-2", "w3", T0, "cart_add", ",\"funnel\":\"shop\""), T0 + H);
    CHECK_INT(to_whole_member("W-2", 0, true), 2);
    CHECK_INT(members_of("W-2", 0), 4);
    fire_on(0, "W-2", T0 + 30 * D, T0, false, &f);
    CHECK_INT(f.n, 2);
    CHECK_INT(members_of("W-2", 0), 0);
    fired_free(&f);
}

/* With the event clock a step fires the lead's timers that were due before its event, so
 * the outcome does not depend on whether the clock's tick came first. */
static void test_fired_by_next_event(void)
{
    fired_t f = {0};
    cfg->clock = FN_CLOCK_EVENT;
    apply("N-1", "n1", T0, "cart_add", ",\"funnel\":\"shop\"");
    /* still within the hour: nothing fires, the wait restarts */
    apply("N-1", "n2", T0 + H / 2, "cart_add", ",\"funnel\":\"shop\"");
    CHECK_INT(step_fired, 0);
    /* past the due time of n2's wait: it fires before page_view is applied */
    apply("N-1", "n3", T0 + 2 * H, "page_view", ",\"funnel\":\"shop\"");
    CHECK_INT(step_fired, 1);
    CHECK_STR(step_fired_reason, "cart_abandoned");
    /* the tick finds it claimed; the stall in cart (2d from n3... n3 is a touch in cart)
     * is the only timer left */
    fire("N-1", T0 + 2 * H, &f);
    CHECK_INT(f.n, 0);
    /* a purchase after the stall's due time: the stall fires first, then the conversion */
    apply("N-1", "n4", T0 + 10 * D, "purchase", ",\"funnel\":\"shop\"");
    CHECK_INT(step_fired, 1);
    CHECK_STR(step_fired_reason, "stalled");
    fire("N-1", T0 + 30 * D, &f);
    CHECK_INT(f.n, 0);
    cfg->clock = FN_CLOCK_WALL;
    fired_free(&f);
}

/* A lead's next event that is older than its due timer, consumed after another lead's later
 * event moved the partition's time past the due time: the timer fires first, as the tick
 * would have fired it had that later event finished first. */
static void test_fired_by_partition_time(void)
{
    fired_t f = {0};
    cfg->clock = FN_CLOCK_EVENT;
    apply("PT-1", "pt1", T0, "cart_add", ",\"funnel\":\"shop\"");
    step_clock = T0 + 2 * H;
    apply("PT-1", "pt2", T0 + H / 2, "page_view", ",\"funnel\":\"shop\"");
    CHECK_INT(step_fired, 1);
    CHECK_STR(step_fired_reason, "cart_abandoned");
    step_clock = 0;
    fire("PT-1", T0 + 2 * H, &f);
    CHECK_INT(f.n, 0);
    cfg->clock = FN_CLOCK_WALL;
    fired_free(&f);
}

static int load(const char *src, char sha[41])
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", src);
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "SCRIPT LOAD failed: %s\n", r ? r->str : rc->errstr);
        return FN_ERR;
    }
    snprintf(sha, 41, "%s", r->str);
    freeReplyObject(r);
    return FN_OK;
}

/* A lead stored with the position layout before "|p" (six fields, position.lua) fires its
 * stall as one stored now: from the clock's tick (fire.lua), with the stage and the last
 * activity the old fields hold, and from its next event (step.lua). Without its position
 * read, a stall would not fire (only an active lead in the timer's stage stalls). */
static void test_position_written_before(void)
{
    fired_t f = {0};
    int64_t clock = step_clock;
    step_clock = 0; /* each event's own time; partition 3, which no other test uses */
    CHECK_INT(apply_on(3, "Pos-1", "o1", T0, "email_click", ""), T0 + 7 * D);
    CHECK(fn_test_to_old_layout(rc, cfg, "Pos-1", "shop"));
    fire_on(3, "Pos-1", T0 + 7 * D, T0 + 7 * D, false, &f);
    CHECK_INT(f.n, 1);
    if (f.n == 1) {
        CHECK(str_is(f.t[0].reason, "stalled") && str_is(f.t[0].cause, "o1"));
        CHECK_INT(f.t[0].stage, 1);
        CHECK_INT(f.t[0].last_activity, T0);
    }
    fired_free(&f);
    cfg->clock = FN_CLOCK_EVENT;
    CHECK_INT(apply_on(3, "Pos-2", "o1", T0, "email_click", ""), T0 + 7 * D);
    CHECK(fn_test_to_old_layout(rc, cfg, "Pos-2", "shop"));
    apply_on(3, "Pos-2", "o2", T0 + 8 * D, "email_open", "");
    CHECK_INT(step_fired, 1);
    CHECK_STR(step_fired_reason, "stalled");
    cfg->clock = FN_CLOCK_WALL;
    step_clock = clock;
}

int main(void)
{
    cfg = fn_test_config(CONFIG, "tt", prefix);
    if (!cfg)
        return 1;
    rc = fn_test_redis_connect();
    if (!rc || rc->err || load(fn_lua_step_src, step_sha) || load(fn_lua_fire_src, fire_sha) ||
        !fn_test_step_call(rc, step_sha, &step_call)) {
        fprintf(stderr, "cannot connect to Redis or load the scripts\n");
        return 1;
    }
    test_stalled();
    test_moved_later_then_due();
    test_sequence_rule();
    test_consent_and_erase();
    test_cap();
    test_outbox_and_move();
    test_field_layout();
    test_member_layout();
    test_fired_by_next_event();
    test_fired_by_partition_time();
    test_position_written_before();
    redisFree(rc);
    fn_config_free(cfg);
    return fn_test_result("test_timers_redis");
}
