/*
 * test_step_redis.c — the Lua step on a real Redis: every funnel rule as it lands in Redis,
 * replay idempotence (same outputs, counters unchanged), late events, hostile lead ids,
 * consent, erasure and collision detection, and how long event ids are kept; the largest config
 * (FN_MAX_FUNNELS funnels) through the real step; a step refused for malformed arguments, a
 * malformed stored lead or a counter it would overflow leaves Redis exactly as it was; an
 * erasure keeps the unacknowledged results of the lead's earlier events and fires the
 * lead's timers already due before cancelling the rest.
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it). Each run
 * uses its own key prefix so runs never see each other's keys.
 */
#include <assert.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fn_test.h"
#include "fn_test_max_config.h"
#include "fn_test_redis.h"
#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

static const char *CONFIG =
    "{\"max_future\":0,\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":8},\"funnels\":["
    "{\"name\":\"b2b\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"awareness\",\"on\":[{\"type\":\"page_view\"},{\"type\":\"ad_click\"}]},"
    " {\"name\":\"interest\",\"on\":[{\"type\":\"email_click\"}]},"
    " {\"name\":\"evaluation\",\"on\":[{\"type\":\"demo_request\"}]},"
    " {\"name\":\"decision\",\"on\":[{\"channel\":\"crm\",\"type\":\"deal_stage\","
    "   \"props\":{\"stage\":\"proposal\"}}]},"
    " {\"name\":\"purchase\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"lost\":{\"on\":[{\"type\":\"deal_lost\"}]}},"
    "{\"name\":\"strict\",\"allow_regress\":true,\"stages\":["
    " {\"name\":\"a\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"b\",\"on\":[{\"type\":\"email_click\"}]},"
    " {\"name\":\"c\",\"on\":[{\"type\":\"demo_request\"}]}]}]}";

static redisContext *rc;
static fn_config_t *cfg;
static char sha[41], fire_sha[41];
static fn_step_call_t step_call; /* fn_test_step_call */
static char prefix[32];
static redisReply *last_reply;
/* the daemon process applying events; test_replay switches it to act as a restarted one */
static const char *instance = "instance-a";
static int msg_no, resend_no;
/* the daemon's wall clock passed to the step (its millisecond picks the steps that prune) */
static int64_t step_now = 1790000000000LL;

/* Sends one event's step and keeps its reply in last_reply (NULL when the event does not
 * decode). resend: send as the same message again, as the daemon does after a lost reply. */
static redisReply *send_step(const char *json, bool resend)
{
    fn_event_t ev = {0};
    char reason[256];
    fn_reject_t code =
        fn_event_decode(json, strlen(json), cfg, fn_now_ms(), &ev, reason, sizeof reason);
    CHECK_INT(code, FN_REJ_NONE);
    if (code != FN_REJ_NONE) {
        fprintf(stderr, "decode: %s\n", reason);
        return NULL;
    }
    fn_buf_t cmd = {0};
    char token[64];
    snprintf(token, sizeof token, "%s:%d", instance, resend ? resend_no : ++msg_no);
    CHECK(fn_step_build(cfg, &step_call, token, &ev,
                        fn_step_lead_hash(ev.lead_id.p, ev.lead_id.len), step_now, 0, "in", 0,
                        &cmd) == FN_OK);
    if (last_reply)
        freeReplyObject(last_reply);
    last_reply = NULL;
    redisAppendFormattedCommand(rc, cmd.data, cmd.len);
    void *r = NULL;
    CHECK(redisGetReply(rc, &r) == REDIS_OK);
    last_reply = r;
    fn_buf_free(&cmd);
    fn_event_clear(&ev);
    return last_reply;
}

/* Applies one event; res points into last_reply until the next call. */
static fn_reject_t apply_as(const char *json, fn_step_result_t *res, bool resend)
{
    char err[256];
    memset(res, 0, sizeof *res);
    if (!send_step(json, resend)) {
        res->status = -1;
        return FN_REJ_INVALID_VALUE;
    }
    if (last_reply && last_reply->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis: %s\n", last_reply->str);
    int ok = fn_step_parse(cfg, last_reply, res, err, sizeof err);
    if (ok != FN_OK)
        fprintf(stderr, "parse: %s\n", err);
    CHECK(ok == FN_OK);
    return FN_REJ_NONE;
}

static fn_reject_t apply(const char *json, fn_step_result_t *res)
{
    return apply_as(json, res, false);
}

static long long stat_of(const char *lead_id, const char *field)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash(lead_id, strlen(lead_id)), &k);
    redisReply *r = redisCommand(rc, "HGET %s %s", k.stats, field);
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

static long long total(const char *field)
{
    return fn_test_stats_total(rc, cfg, prefix, field);
}

#define EV(lead, id, ts, ch, type, extra)                                                          \
    "{\"event_id\":\"" id "\",\"lead_id\":\"" lead "\",\"ts\":" ts ",\"channel\":\"" ch            \
    "\",\"type\":\"" type "\"" extra "}"

static const fn_step_transition_t *trans_of(const fn_step_result_t *r, const char *funnel)
{
    for (size_t i = 0; i < r->n_trans; i++)
        if (strcmp(r->trans[i].funnel->name, funnel) == 0)
            return &r->trans[i];
    return NULL;
}

static void test_journey(void)
{
    fn_step_result_t r;
    const fn_step_transition_t *t;
    /* enters both funnels at their first stage */
    apply(EV("L-1", "e1", "\"2026-11-22T10:00:00Z\"", "ads", "ad_click",
             ",\"props\":{\"campaign\":\"spring\",\"source\":\"google\"}"),
          &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK_INT(r.n_trans, 1); /* "strict" funnel's first stage wants page_view */
    t = trans_of(&r, "b2b");
    CHECK(t && t->op == 'E' && t->from == -1 && t->to == 0 && t->cycle_ms == 0);
    /* a touch: no transition, but touches counted */
    apply(EV("L-1", "e2", "\"2026-11-22T11:00:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.n_trans, 0);
    /* skip forward over interest to evaluation; value set */
    apply(EV("L-1", "e3", "\"2026-11-23T10:00:00Z\"", "web", "demo_request",
             ",\"props\":{\"value\":1200,\"campaign\":\"nurture-3\"}"),
          &r);
    t = trans_of(&r, "b2b");
    CHECK(t && t->op == 'F' && t->from == 0 && t->to == 2);
    CHECK_INT(t ? t->time_in_stage_ms : 0, 86400000);
    CHECK_INT(t ? t->cycle_ms : 0, 86400000);
    CHECK_INT(t ? t->touches : 0, 3);
    CHECK(r.value.len == 4 && memcmp(r.value.p, "1200", 4) == 0);
    CHECK(r.first.channel.len == 3 && memcmp(r.first.channel.p, "ads", 3) == 0);
    CHECK(r.last.campaign.len == 9 && memcmp(r.last.campaign.p, "nurture-3", 9) == 0);
    /* the strict funnel (no skip) enters at c directly: entry ignores allow_skip */
    t = trans_of(&r, "strict");
    CHECK(t && t->op == 'E' && t->to == 2);
    /* regress in strict (allow_regress), a touch in b2b (no regress) */
    apply(EV("L-1", "e4", "\"2026-11-23T11:00:00Z\"", "email", "email_click", ""), &r);
    t = trans_of(&r, "strict");
    CHECK(t && t->op == 'B' && t->from == 2 && t->to == 1);
    CHECK(trans_of(&r, "b2b") == NULL);
    /* the CRM matcher needs props.stage */
    apply(EV("L-1", "e5", "1795440000000", "crm", "deal_stage",
             ",\"props\":{\"stage\":\"negotiation\"}"),
          &r);
    CHECK(trans_of(&r, "b2b") == NULL);
    apply(EV("L-1", "e6", "1795440001000", "crm", "deal_stage",
             ",\"props\":{\"stage\":\"proposal\"}"),
          &r);
    t = trans_of(&r, "b2b");
    CHECK(t && t->op == 'F' && t->from == 2 && t->to == 3);
    /* conversion */
    apply(EV("L-1", "e7", "1795440002000", "web", "purchase", ",\"props\":{\"value\":1500.5}"), &r);
    t = trans_of(&r, "b2b");
    CHECK(t && t->op == 'C' && t->from == 3 && t->to == 4);
    resend_no = msg_no; /* test_replay sends e7 again as this same message */
    /* after conversion: touches only */
    apply(EV("L-1", "e8", "1795440003000", "web", "page_view", ""), &r);
    CHECK(trans_of(&r, "b2b") == NULL);

    CHECK_INT(stat_of("L-1", "b2b|e|0"), 1);
    CHECK_INT(stat_of("L-1", "b2b|e|1"), 1); /* skipped stages count as entered */
    CHECK_INT(stat_of("L-1", "b2b|e|4"), 1);
    CHECK_INT(stat_of("L-1", "b2b|p|0"), 0);
    CHECK_INT(stat_of("L-1", "b2b|p|4"), 1);
    CHECK_INT(stat_of("L-1", "b2b|conv"), 1);
    CHECK_INT(stat_of("L-1", "b2b|conv_ch|ads"), 1);
    CHECK_INT(stat_of("L-1", "strict|e|1"), 2); /* entered on the way in and on the way back */
}

static void test_replay(void)
{
    fn_step_result_t r;
    long long conv = total("b2b|conv"), e0 = total("b2b|e|0");
    /* the same message sent again (its reply was lost) gets the result it never saw */
    apply_as(EV("L-1", "e7", "1795440002000", "web", "purchase", ",\"props\":{\"value\":1500.5}"),
             &r, true);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(r.replay && r.n_trans == 1);
    /* another copy seen by the same process: it is delivering the first's outputs, so silence */
    apply(EV("L-1", "e7", "1795440002000", "web", "purchase", ",\"props\":{\"value\":1500.5}"), &r);
    CHECK_INT(r.status, FN_STEP_DUP);
    /* after a restart (another instance), the unacknowledged conversion is repeated */
    instance = "instance-b";
    apply(EV("L-1", "e7", "1795440002000", "web", "purchase", ",\"props\":{\"value\":1500.5}"), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(r.replay);
    const fn_step_transition_t *t = trans_of(&r, "b2b");
    CHECK(t && t->op == 'C' && t->from == 3 && t->to == 4);
    /* once acknowledged (the daemon clears the pending result), a replay is a plain dup */
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("L-1", 3), &k);
    freeReplyObject(redisCommand(rc, "HDEL %s e7", k.pending));
    apply(EV("L-1", "e7", "1795440002000", "web", "purchase", ""), &r);
    CHECK_INT(r.status, FN_STEP_DUP);
    /* a result stored before empty lists went as "" holds [] for them: still read */
    freeReplyObject(redisCommand(rc, "ZADD %s 1 e-old", k.seen));
    freeReplyObject(redisCommand(rc, "HSET %s e-old %s", k.pending,
                                 "gone:1|[\"ok\",\"1795440002500\",\"\",[],[],\"\"]"));
    apply(EV("L-1", "e-old", "1795440002500", "web", "page_view", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(r.replay && r.applied && r.n_trans == 0 && r.at == 1795440002500 && !r.fired);
    freeReplyObject(redisCommand(rc, "HDEL %s e-old", k.pending));
    /* replaying every event again changes no counter */
    apply(EV("L-1", "e1", "\"2026-11-22T10:00:00Z\"", "ads", "ad_click", ""), &r);
    apply(EV("L-1", "e3", "\"2026-11-23T10:00:00Z\"", "web", "demo_request", ""), &r);
    apply(EV("L-1", "e2", "\"2026-11-22T11:00:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_DUP);
    CHECK_INT(total("b2b|conv"), conv);
    CHECK_INT(total("b2b|e|0"), e0);
}

static void test_lost_and_late(void)
{
    fn_step_result_t r;
    apply(EV("L-2", "a", "2000000", "web", "page_view", ""), &r);
    apply(EV("L-2", "b", "3000000", "crm", "deal_lost", ""), &r);
    const fn_step_transition_t *t = trans_of(&r, "b2b");
    CHECK(t && t->op == 'L' && t->from == 0 && t->to == -1);
    CHECK_INT(stat_of("L-2", "b2b|lost"), 1);
    CHECK_INT(stat_of("L-2", "b2b|lostfrom|0"), 1);
    /* lost is terminal */
    apply(EV("L-2", "c", "4000000", "web", "purchase", ""), &r);
    CHECK(trans_of(&r, "b2b") == NULL);

    /* a late event never moves the lead back in time */
    apply(EV("L-3", "a", "5000000", "web", "page_view", ""), &r);
    apply(EV("L-3", "b", "1000000", "web", "demo_request", ""), &r);
    t = trans_of(&r, "b2b");
    CHECK_INT(r.at, 5000000);
    CHECK(t && t->time_in_stage_ms == 0 && t->op == 'F');
    /* and it does not become the last touch, but does become the first */
    CHECK_INT(r.first.at, 1000000);
    CHECK_INT(r.last.at, 5000000);
}

static void test_hostile_ids(void)
{
    fn_step_result_t r;
    const char *ids[] = {"a}{b", "*", "x:y\\nz", "{0}", "fn:{0}:stats"};
    for (size_t i = 0; i < 5; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"event_id\":\"h\",\"lead_id\":\"%s\",\"ts\":1,\"channel\":\"web\","
                 "\"type\":\"page_view\"}",
                 ids[i]);
        apply(json, &r);
        CHECK_INT(r.status, FN_STEP_OK);
        CHECK_INT(r.n_trans, 2);
    }
    /* every key this run made has our prefix, a numeric hash tag and a hex lead hash */
    redisReply *keys = redisCommand(rc, "KEYS %s:*", prefix);
    CHECK(keys && keys->type == REDIS_REPLY_ARRAY && keys->elements > 0);
    for (size_t i = 0; keys && i < keys->elements; i++) {
        const char *k = keys->element[i]->str + strlen(prefix);
        int shard = -1, n = 0;
        char kind[8] = "", hex[40] = "";
        int got = sscanf(k, ":{%d}:%7[a-z]%n", &shard, kind, &n);
        CHECK(got == 2 && shard >= 0 && shard < cfg->redis_shards);
        if (strcmp(kind, "flow") == 0 || strcmp(kind, "sk") == 0 || strcmp(kind, "due") == 0) {
            /* analytics and timers: a funnel or topic name, then numbers (or "conv") */
            char name[64] = "", rest[32] = "";
            CHECK(sscanf(k + n, ":%63[a-z0-9.]:%31[0-9a-z]", name, rest) == 2);
            CHECK(strcmp(name, "b2b") == 0 || strcmp(name, "strict") == 0 ||
                  strcmp(name, "in") == 0);
            CHECK(strspn(rest, "0123456789") == strlen(rest) || strcmp(rest, "conv") == 0);
        } else if (strcmp(kind, "stats") != 0) {
            CHECK(sscanf(k + n, ":%39[0-9a-f]", hex) == 1 && strlen(hex) == 32 &&
                  strlen(k + n) == 33);
        }
    }
    freeReplyObject(keys);
}

/* A config change that removes stages leaves leads stored at stages the new plan does not
 * cover: their next event is a touch, never a script error half-way through the writes. */
static void test_config_shrunk(void)
{
    fn_step_result_t r;
    apply(EV("K-1", "k1", "1795440000000", "web", "demo_request", ""), &r);
    CHECK(trans_of(&r, "b2b") && trans_of(&r, "b2b")->to == 2);
    apply(EV("K-2", "k1", "1795440000000", "crm", "deal_stage",
             ",\"props\":{\"stage\":\"proposal\"}"),
          &r);
    CHECK(trans_of(&r, "b2b") && trans_of(&r, "b2b")->to == 3);
    const char *small = "{\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":8},\"funnels\":["
                        "{\"name\":\"b2b\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":"
                        "\"page_view\"}]}]}]}";
    char p2[32];
    fn_config_t *full = cfg, *shrunk = fn_test_config(small, "it", p2);
    CHECK(shrunk && strcmp(p2, prefix) == 0);
    if (!shrunk)
        return;
    cfg = shrunk;
    CHECK_INT(apply(EV("K-1", "k2", "1795440001000", "web", "page_view", ""), &r), FN_REJ_NONE);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK_INT(r.n_trans, 0);
    CHECK_INT(apply(EV("K-2", "k2", "1795440001000", "web", "page_view", ""), &r), FN_REJ_NONE);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK_INT(r.n_trans, 0);
    cfg = full;
    fn_config_free(shrunk);
}

static void test_consent_erase_collision(void)
{
    fn_step_result_t r;
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("L-1", 3), &k);
    apply(EV("L-1", "c1", "1795440004000", "web", "consent", ",\"props\":{\"marketing\":false}"),
          &r);
    CHECK_INT(r.status, FN_STEP_OK);
    redisReply *c = redisCommand(rc, "HGET %s c", k.lead);
    CHECK(c && c->type == REDIS_REPLY_STRING && strcmp(c->str, "0") == 0);
    freeReplyObject(c);

    long long pop4 = total("b2b|p|4"), e4 = total("b2b|e|4");
    apply(EV("L-1", "x1", "1795440005000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    redisReply *ex = redisCommand(rc, "EXISTS %s %s", k.lead, k.pending);
    CHECK(ex && ex->integer == 1); /* only the pending erase result itself remains */
    freeReplyObject(ex);
    CHECK_INT(total("b2b|p|4"), pop4 - 1); /* the lead left the population */
    CHECK_INT(total("b2b|e|4"), e4);       /* anonymous counters stay */
    apply(EV("L-1", "x1", "1795440005000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_DUP); /* same instance: it is delivering the erasure */
    instance = "instance-c";          /* a restarted daemon repeats the lead_erased events */
    apply(EV("L-1", "x1", "1795440005000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    CHECK(r.replay);

    /* a key whose stored lead id differs is never touched */
    fn_step_keys(cfg, fn_step_lead_hash("L-9", 3), &k);
    freeReplyObject(redisCommand(rc, "HSET %s id someone-else", k.lead));
    apply(EV("L-9", "z", "1", "web", "page_view", ""), &r);
    CHECK_INT(r.status, FN_STEP_COLLISION);
    redisReply *n = redisCommand(rc, "HLEN %s", k.lead);
    CHECK(n && n->integer == 1);
    freeReplyObject(n);
}

static long long reply_int(const char *fmt, const char *key)
{
    redisReply *r = redisCommand(rc, fmt, key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    freeReplyObject(r);
    return v;
}

static bool is_seen(const char *seen_key, const char *event_id)
{
    redisReply *r = redisCommand(rc, "ZSCORE %s %s", seen_key, event_id);
    bool yes = r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return yes;
}

/* an id's score in a seen set, or -1 */
static long long reply_score(const char *seen_key, const char *event_id)
{
    redisReply *r = redisCommand(rc, "ZSCORE %s %s", seen_key, event_id);
    long long v = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

/* The seen set outlives the lead's last event by at least a window: its expiry moves only
 * when less than that is left (then to 9/8 of a window) or on a sampled step (the clock's
 * millisecond a multiple of 8), and the sampled steps prune ids older than a window. */
static void test_seen_window(void)
{
    fn_step_result_t r;
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("L-seen", 6), &k);
    const int64_t ttl = cfg->dedupe_ttl_ms, t0 = 1790000000001LL; /* t0 % 8 == 1 */
    step_now = t0;
    apply(EV("L-seen", "s1", "\"2026-11-22T10:00:00Z\"", "ads", "ad_click", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    long long pttl = reply_int("PTTL %s", k.seen);
    CHECK(pttl > ttl && pttl <= ttl + ttl / 8);
    redisReply *sx = redisCommand(rc, "HGET %s sx", k.lead);
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)(t0 + ttl + ttl / 8));
    CHECK(sx && sx->type == REDIS_REPLY_STRING && strcmp(sx->str, want) == 0);
    freeReplyObject(sx);

    /* inside the slack the step sends no PEXPIRE: a set made persistent stays persistent */
    CHECK_INT(reply_int("PERSIST %s", k.seen), 1);
    step_now = t0 + 1000;
    apply(EV("L-seen", "s2", "\"2026-11-22T10:01:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK_INT(reply_int("PTTL %s", k.seen), -1);
    /* a copy is still a duplicate */
    apply(EV("L-seen", "s2", "\"2026-11-22T10:01:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_DUP);

    /* with less than a window left the expiry moves again; s1 and s2 are now older than a
     * window, and this step's millisecond is not a multiple of 8, so they stay */
    step_now = t0 + ttl + 1002; /* % 8 == 3 */
    apply(EV("L-seen", "s3", "\"2026-11-29T10:00:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    pttl = reply_int("PTTL %s", k.seen);
    CHECK(pttl > ttl && pttl <= ttl + ttl / 8);
    CHECK(is_seen(k.seen, "s1") && is_seen(k.seen, "s2") && is_seen(k.seen, "s3"));
    /* until a sampled step prunes them; s3 is inside the window and stays. The sampled step
     * also gives a set that lost its TTL one again. A score is the second an id was recorded
     * in, so s2, 7 ms past its window but in the second the window begins in, stays to the
     * next sampled step. Ids recorded before in milliseconds are pruned by the same window,
     * on one sampled step in eight (the clock's millisecond a multiple of 64). */
    CHECK_INT(reply_score(k.seen, "s1"), t0 / 1000);
    CHECK_INT(reply_score(k.seen, "s3"), (t0 + ttl + 1002) / 1000);
    freeReplyObject(redisCommand(rc, "ZADD %s %lld ms-old %lld ms-new", k.seen,
                                 (long long)(t0 + 1006), (long long)(t0 + 2050)));
    CHECK_INT(reply_int("PERSIST %s", k.seen), 1);
    step_now = t0 + ttl + 1007; /* % 8 == 0, % 64 == 48 */
    apply(EV("L-seen", "s4", "\"2026-11-29T10:01:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(!is_seen(k.seen, "s1") && is_seen(k.seen, "s2"));
    CHECK(is_seen(k.seen, "s3") && is_seen(k.seen, "s4"));
    pttl = reply_int("PTTL %s", k.seen);
    CHECK(pttl > ttl && pttl <= ttl + ttl / 8);
    step_now = t0 + ttl + 2015; /* % 8 == 0, % 64 == 32: the next second */
    apply(EV("L-seen", "s5", "\"2026-11-29T10:02:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(!is_seen(k.seen, "s2") && is_seen(k.seen, "ms-old") && is_seen(k.seen, "ms-new"));
    step_now = t0 + ttl + 2047; /* % 64 == 0 */
    apply(EV("L-seen", "s6", "\"2026-11-29T10:03:00Z\"", "email", "email_open", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(!is_seen(k.seen, "ms-old") && is_seen(k.seen, "ms-new"));
    CHECK(is_seen(k.seen, "s3") && is_seen(k.seen, "s4") && is_seen(k.seen, "s5"));

    /* a consent as a lead's first event, and an erasure, leave the set with its expiry */
    fn_step_keys(cfg, fn_step_lead_hash("L-seen-c", 8), &k);
    step_now = t0 + 2;
    apply(
        EV("L-seen-c", "c1", "1795440004000", "web", "consent", ",\"props\":{\"marketing\":true}"),
        &r);
    CHECK_INT(r.status, FN_STEP_OK);
    pttl = reply_int("PTTL %s", k.seen);
    CHECK(pttl > ttl && pttl <= ttl + ttl / 8);
    CHECK_INT(reply_int("HEXISTS %s sx", k.lead), 1);
    CHECK_INT(reply_int("PERSIST %s", k.seen), 1);
    step_now = t0 + 3;
    apply(EV("L-seen-c", "x1", "1795440005000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    CHECK(is_seen(k.seen, "c1") && is_seen(k.seen, "x1"));
    CHECK_INT(reply_int("PTTL %s", k.seen), -1); /* sx still held: no PEXPIRE */
    CHECK_INT(reply_int("EXISTS %s", k.lead), 0);
    /* the lead's sx went with it: its next event sets the expiry again */
    apply(EV("L-seen-c", "v1", "1795440006000", "web", "page_view", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    pttl = reply_int("PTTL %s", k.seen);
    CHECK(pttl > ttl && pttl <= ttl + ttl / 8);
    step_now = 1790000000000LL;
}

/* The step for json is refused with an error reply that says nothing was written, and Redis
 * is left exactly as it was. */
static void check_refused(const char *json, const char *why)
{
    char *before = fn_test_redis_state(rc, prefix);
    redisReply *r = send_step(json, false);
    CHECK(r && r->type == REDIS_REPLY_ERROR);
    if (r && r->type == REDIS_REPLY_ERROR) {
        CHECK(strstr(r->str, "nothing written") != NULL);
        CHECK(strstr(r->str, why) != NULL);
        if (!strstr(r->str, why))
            fprintf(stderr, "refused for: %s\n", r->str);
    } else {
        fprintf(stderr, "not refused (reply type %d)\n", r ? r->type : -1);
    }
    char *after = fn_test_redis_state(rc, prefix);
    CHECK(strcmp(before, after) == 0);
    free(before);
    free(after);
}

static void hset_lead(const char *lead_id, const char *field, const char *value)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash(lead_id, strlen(lead_id)), &k);
    freeReplyObject(redisCommand(rc, "HSET %s %s %s", k.lead, field, value));
}

/* Sends a step for lead "C-4" by hand: a touch with event_id, whose arguments from the
 * funnel count on are tail (so a test can send what the daemon never would). */
static redisReply *raw_step(const fn_lead_keys_t *k, const char *event_id, const char *const *tail,
                            size_t n_tail)
{
    const char *head[] = {"EVALSHA",
                          sha,
                          "7",
                          k->lead,
                          k->seen,
                          k->pending,
                          k->stats,
                          "due",
                          "ob",
                          "ls",
                          "1790000000000",
                          "604800000",
                          "C-4",
                          event_id,
                          "1795440000000",
                          "t",
                          "web",
                          "page_view",
                          "",
                          "",
                          "",
                          "",
                          "i:1",
                          ""};
    enum { N_HEAD = sizeof head / sizeof *head };
    const char *argv[N_HEAD + 16];
    assert(n_tail <= 16);
    memcpy(argv, head, sizeof head);
    memcpy(argv + N_HEAD, tail, n_tail * sizeof *tail);
    return redisCommandArgv(rc, (int)(N_HEAD + n_tail), argv, NULL);
}

/* Issue 16 item 3: whatever makes a step fail is found before its first write. */
static void test_refused_step_writes_nothing(void)
{
    fn_step_result_t r;
    /* a stored position that cannot be read, in the second funnel: the first funnel's
     * counters must not move either */
    apply(EV("C-1", "c1", "1795440000000", "web", "page_view", ""), &r);
    CHECK_INT(r.n_trans, 2);
    hset_lead("C-1", "strict|p", "1|1795440000000|azz|1795440000000|1795440000000");
    long long e2 = total("b2b|e|2"), leads = total("b2b|leads");
    check_refused(EV("C-1", "c2", "1795440001000", "web", "demo_request", ""), "strict|p");
    CHECK_INT(total("b2b|e|2"), e2);
    CHECK_INT(total("b2b|leads"), leads);
    /* a stored value that is not a number */
    apply(EV("C-2", "c1", "1795440000000", "web", "page_view", ""), &r);
    hset_lead("C-2", "v", "lots");
    check_refused(EV("C-2", "c2", "1795440001000", "web", "purchase", ""), "lead field v");

    /* a conversion whose cycle time would overflow the cycle-time sum */
    apply(EV("C-3", "c1", "1795440000000", "web", "page_view", ""), &r);
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("C-3", 3), &k);
    redisReply *old = redisCommand(rc, "HGET %s b2b|cyc_sum", k.stats);
    freeReplyObject(redisCommand(rc, "HSET %s b2b|cyc_sum 9223372036854775000", k.stats));
    long long conv = total("b2b|conv");
    check_refused(EV("C-3", "c2", "1795440001000", "web", "purchase", ""), "would overflow");
    CHECK_INT(total("b2b|conv"), conv);
    if (old && old->type == REDIS_REPLY_STRING)
        freeReplyObject(redisCommand(rc, "HSET %s b2b|cyc_sum %s", k.stats, old->str));
    else
        freeReplyObject(redisCommand(rc, "HDEL %s b2b|cyc_sum", k.stats));
    freeReplyObject(old);
    /* once the counter is sound again the same event applies */
    apply(EV("C-3", "c2", "1795440001000", "web", "purchase", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(trans_of(&r, "b2b") && trans_of(&r, "b2b")->op == 'C');

    /* a command that does not carry as many arguments as its funnel count says */
    fn_step_keys(cfg, fn_step_lead_hash("C-4", 3), &k);
    char *before = fn_test_redis_state(rc, prefix);
    static const char *const short_tail[] = {"2",      "b2b", "5", "E0E0F1F2F3F4C4T0", "",
                                             "strict", "3",   "",  "1795440000000"};
    redisReply *e = raw_step(&k, "a1", short_tail, sizeof short_tail / sizeof *short_tail);
    CHECK(e && e->type == REDIS_REPLY_ERROR && strstr(e->str, "nothing written") &&
          strstr(e->str, "arguments for 2 funnels"));
    freeReplyObject(e);
    /* a timer spec that is not "<stale list>[|A<ms>:<name>|U:<name>...]" is refused */
    static const char *const bad_specs[] = {"0,5x,0", "0,-5,0", "0,5,0|B:r", "0,5,0|A:r",
                                            "0,5,0|U:r|"};
    for (size_t i = 0; i < sizeof bad_specs / sizeof *bad_specs; i++) {
        const char *tail[] = {"1", "b2b", "5", "", bad_specs[i], "", "1795440000000", "", ""};
        e = raw_step(&k, "a2", tail, sizeof tail / sizeof *tail);
        CHECK(e && e->type == REDIS_REPLY_ERROR && strstr(e->str, "nothing written") &&
              strstr(e->str, "timer spec is malformed"));
        freeReplyObject(e);
    }
    char *after = fn_test_redis_state(rc, prefix);
    CHECK(strcmp(before, after) == 0);
    free(before);
    free(after);
}

/* Issue 16 item 2: the largest config funneld accepts goes through the real step. */
static void test_max_config(void)
{
    char *json = fn_test_max_config_json(prefix, "event");
    json_t *root = json ? json_loads(json, 0, NULL) : NULL;
    char err[256];
    fn_config_t *full = cfg, *max = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    json_decref(root);
    free(json);
    CHECK(max && max->n_funnels == FN_MAX_FUNNELS);
    if (!max)
        return;
    cfg = max;
    fn_step_result_t r;
    apply(EV("M-1", "m1", "1795440000000", "web", "page_view", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK_INT(r.n_trans, FN_MAX_FUNNELS);
    char field[32];
    for (int f = 0; f < FN_MAX_FUNNELS; f++) {
        snprintf(field, sizeof field, "f%d|leads", f);
        CHECK_INT(total(field), 1);
        snprintf(field, sizeof field, "f%d|p|0", f);
        CHECK_INT(total(field), 1);
    }
    /* every rule of f0 arms its timer, all due 10 minutes later */
    apply(EV("M-1", "m2", "1795440060000", "web", "cart_add", ",\"props\":{\"value\":99}"), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK_INT(r.armed_due, 1795440060000LL + 600000);
    /* the rules' timers fire first at the next event, each within the cap */
    apply(EV("M-1", "m3", "1795440700000", "web", "t58", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(r.fired && r.fired->elements == FN_MAX_RULES);
    CHECK(trans_of(&r, "f0") && trans_of(&r, "f0")->to == FN_MAX_STAGES - 2);
    apply(EV("M-1", "m4", "1795440800000", "web", "purchase", ""), &r);
    CHECK_INT(r.n_trans, FN_MAX_FUNNELS);
    snprintf(field, sizeof field, "f0|p|%d", FN_MAX_STAGES - 1);
    CHECK_INT(total(field), 1);
    CHECK_INT(total("f63|conv"), 1);
    apply(EV("M-1", "m5", "1795440900000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    CHECK_INT(total(field), 0);
    CHECK_INT(total("f63|p|1"), 0);
    CHECK_INT(total("f0|leads"), 1);
    cfg = full;
    fn_config_free(max);
}

/* Issue 16 item 6: an erasure keeps what at-least-once needs of the lead's earlier events. */
static void test_erase_keeps_unacknowledged_results(void)
{
    fn_step_result_t r;
    apply(EV("E-1", "e1", "1795440000000", "web", "page_view", ""), &r);
    CHECK_INT(r.n_trans, 2);
    apply(EV("E-1", "x1", "1795440001000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    /* the daemon crashed before e1's transitions were acknowledged: its successor, replaying
     * from the committed offset, emits them again before the erasure */
    const char *was = instance;
    instance = "instance-e";
    apply(EV("E-1", "e1", "1795440000000", "web", "page_view", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(r.replay);
    CHECK_INT(r.n_trans, 2);
    CHECK(trans_of(&r, "b2b") && trans_of(&r, "b2b")->op == 'E');
    apply(EV("E-1", "x1", "1795440001000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    CHECK(r.replay);
    /* the lead itself is gone: nothing of its position or attribution is left */
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("E-1", 3), &k);
    CHECK_INT(reply_int("EXISTS %s", k.lead), 0);
    instance = was;
}

/* Issue 16 item 12: an erasure fires the lead's timers already due by its clock (as the tick
 * would have, had it come first) and cancels the rest. */
static void test_erase_fires_due_timers_first(void)
{
    const char *text =
        "{\"max_future\":0,\"clock\":\"event\",\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":8},"
        "\"funnels\":[{\"name\":\"tm\",\"stages\":["
        " {\"name\":\"a\",\"stale_after\":\"1h\",\"on\":[{\"type\":\"page_view\"}]},"
        " {\"name\":\"b\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
        " \"retarget\":[{\"name\":\"cart\",\"after\":{\"type\":\"cart_add\"},"
        "  \"unless\":[{\"type\":\"purchase\"}],\"within\":\"10m\"}]}]}";
    char p2[32];
    fn_config_t *full = cfg, *timed = fn_test_config(text, "it", p2);
    CHECK(timed && strcmp(p2, prefix) == 0);
    if (!timed)
        return;
    cfg = timed;
    fn_step_result_t r;
    apply(EV("T-1", "t1", "1795440000000", "web", "page_view", ""), &r);
    apply(EV("T-1", "t2", "1795440060000", "web", "cart_add", ""), &r); /* cart due +10m */
    CHECK_INT(r.armed_due, 1795440660000LL);
    /* erased 30 minutes in: the cart timer was due, the stalled one (1 h) was not */
    apply(EV("T-1", "x1", "1795441860000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    CHECK(r.fired && r.fired->elements == 1);
    CHECK(r.fired && r.fired->elements == 1 && r.fired->element[0]->type == REDIS_REPLY_STRING &&
          strstr(r.fired->element[0]->str, "\"cart\""));
    CHECK_INT(total("tm|trig|cart"), 1);
    CHECK_INT(total("tm|sup|erased"), 1);
    CHECK_INT(total("tm|trig|stalled"), 0);
    /* nothing of the lead is left in any zset of timers */
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("T-1", 3), &k);
    char due[256];
    fn_step_due_key(cfg, k.shard, "in", 0, due, sizeof due);
    CHECK_INT(reply_int("ZCARD %s", due), 0);

    /* The same lead's story with the clock's tick first: fire.lua claims the cart timer by
     * the erasure's time, then the erasure finds nothing due. The same triggers, the same
     * cancellations. */
    apply(EV("T-2", "t1", "1795440000000", "web", "page_view", ""), &r);
    apply(EV("T-2", "t2", "1795440060000", "web", "cart_add", ""), &r);
    fn_step_keys(cfg, fn_step_lead_hash("T-2", 3), &k);
    fn_step_due_key(cfg, k.shard, "in", 0, due, sizeof due);
    redisReply *fr = redisCommand(rc,
                                  "EVALSHA %s 4 %s %s:{%u}:outbox %s:{%u}:leases %s 1795441860000 "
                                  "%lld 100 0 %s",
                                  fire_sha, due, prefix, k.shard, prefix, k.shard, k.stats,
                                  (long long)step_now, "");
    CHECK(fr && fr->type == REDIS_REPLY_ARRAY && fr->elements == 4 &&
          fr->element[1]->elements == 1);
    freeReplyObject(fr);
    apply(EV("T-2", "x1", "1795441860000", "web", "erase", ""), &r);
    CHECK_INT(r.status, FN_STEP_ERASED);
    CHECK(!r.fired); /* nothing fired by the erasure: an empty list ("" in the reply) */
    CHECK_INT(total("tm|trig|cart"), 2);
    CHECK_INT(total("tm|sup|erased"), 2);
    CHECK_INT(total("tm|trig|stalled"), 0);
    cfg = full;
    fn_config_free(timed);
}

/* Issue 16 item 3: a replayed result stored under a config that had another funnel is still
 * an applied event: what this config can render is emitted, the rest counted. */
static void test_replay_under_another_config(void)
{
    fn_step_result_t r;
    apply(EV("R-1", "r1", "1795440000000", "web", "page_view", ""), &r);
    CHECK_INT(r.n_trans, 2);
    const char *small = "{\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":8},\"funnels\":["
                        "{\"name\":\"b2b\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":"
                        "\"page_view\"}]}]}]}";
    char p2[32];
    fn_config_t *full = cfg, *shrunk = fn_test_config(small, "it", p2);
    CHECK(shrunk && strcmp(p2, prefix) == 0);
    if (!shrunk)
        return;
    cfg = shrunk;
    const char *was = instance;
    instance = "instance-r"; /* a successor replays the unacknowledged event */
    apply(EV("R-1", "r1", "1795440000000", "web", "page_view", ""), &r);
    CHECK_INT(r.status, FN_STEP_OK);
    CHECK(r.replay && r.applied);
    CHECK_INT(r.n_trans, 1);
    CHECK_INT(r.n_unreadable, 1);
    CHECK(trans_of(&r, "b2b") && trans_of(&r, "b2b")->op == 'E');
    instance = was;
    cfg = full;
    fn_config_free(shrunk);
}

/* Entry cohorts (SPEC §11): a lead counts in the week it entered the funnel (weeks from
 * Monday 00:00 UTC), once per stage it reached, stages passed over included; a step back
 * and forward again reaches nothing new. */
static void test_cohorts(void)
{
    fn_step_result_t res;
    const char *fields[] = {"b2b|coh|2964|0",    "b2b|coh|2964|1",    "b2b|coh|2964|2",
                            "strict|coh|2964|0", "strict|coh|2964|1", "strict|coh|2964|2",
                            "b2b|coh|2965|0",    "b2b|coh|2965|4",    "strict|coh|2965|0"};
    enum { N = sizeof fields / sizeof *fields };
    long long before[N];
    for (int i = 0; i < N; i++)
        before[i] = total(fields[i]);
    /* the last millisecond of the week of Monday 2026-10-26, then the next Monday */
    apply(EV("coh-A", "c1", "1793577599999", "web", "page_view", ""), &res);
    apply(EV("coh-A", "c2", "1793577600000", "email", "email_click", ""), &res);
    apply(EV("coh-A", "c3", "1793577600001", "web", "page_view", ""), &res); /* strict: back */
    CHECK(trans_of(&res, "strict") && trans_of(&res, "strict")->op == 'B');
    apply(EV("coh-A", "c4", "1793577600002", "email", "email_click", ""), &res);
    apply(EV("coh-A", "c5", "1793577600003", "web", "demo_request", ""), &res);
    /* entering at the conversion stage: every stage before it is reached too */
    apply(EV("coh-B", "c1", "1793577600000", "web", "purchase", ""), &res);
    const long long want[N] = {1, 1, 1, 1, 1, 1, 1, 1, 0};
    for (int i = 0; i < N; i++)
        if (total(fields[i]) - before[i] != want[i]) {
            fprintf(stderr, "%s grew by %lld, want %lld\n", fields[i], total(fields[i]) - before[i],
                    want[i]);
            CHECK(false);
        }
    /* "strict" allows regress: the highest stage reached is kept */
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash("coh-A", 5), &k);
    redisReply *r = redisCommand(rc, "HMGET %s strict|h b2b|h", k.lead);
    CHECK(r && r->elements == 2 && r->element[0]->str && strcmp(r->element[0]->str, "2") == 0 &&
          r->element[1]->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
}

/* The fields of lead_id's hash named funnel + one of the old layout's suffixes, counted. */
static int old_fields_of(const char *lead_id, const char *funnel)
{
    const char *const suffix[] = {FN_FF_TOUCHES, FN_FF_ACTIVE,  FN_FF_STATUS,
                                  FN_FF_STAGE,   FN_FF_ENTERED, FN_FF_BEGAN};
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash(lead_id, strlen(lead_id)), &k);
    int n = 0;
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        char f[64];
        fn_field_funnel(f, sizeof f, funnel, suffix[i]);
        redisReply *r = redisCommand(rc, "HEXISTS %s %s", k.lead, f);
        n += r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    return n;
}

static char *pos_text_of(const char *lead_id, const char *funnel)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash(lead_id, strlen(lead_id)), &k);
    char f[64];
    fn_field_funnel(f, sizeof f, funnel, FN_FF_POS);
    redisReply *r = redisCommand(rc, "HGET %s %s", k.lead, f);
    char *v = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

/* A lead stored in the layout before "|p" (six fields per funnel) goes on as if it had been
 * stored in the new one: a twin lead in the new layout gets the same events, and after each
 * step the two have the same transitions and the same "|p", and the old fields are gone. */
static void test_position_written_before(void)
{
    static const char *const types[] = {"page_view", "email_open", "demo_request", "email_click",
                                        "page_view", "deal_stage", "purchase",     "page_view"};
    static const char *const funnels[] = {"b2b", "strict"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        char ev_new[256], ev_old[256];
        const char *props =
            strcmp(types[i], "deal_stage") == 0 ? ",\"props\":{\"stage\":\"proposal\"}" : "";
        snprintf(ev_new, sizeof ev_new,
                 "{\"event_id\":\"o%zu\",\"lead_id\":\"Pos-new\",\"ts\":%lld,"
                 "\"channel\":\"crm\",\"type\":\"%s\"%s}",
                 i, 1795440000000LL + 3600000LL * (long long)i, types[i], props);
        snprintf(ev_old, sizeof ev_old,
                 "{\"event_id\":\"o%zu\",\"lead_id\":\"Pos-old\",\"ts\":%lld,"
                 "\"channel\":\"crm\",\"type\":\"%s\"%s}",
                 i, 1795440000000LL + 3600000LL * (long long)i, types[i], props);
        for (size_t j = 0; j < 2; j++)
            CHECK(fn_test_to_old_layout(rc, cfg, "Pos-old", funnels[j]));
        fn_step_result_t a, b;
        apply(ev_new, &a);
        fn_step_transition_t ta[FN_MAX_FUNNELS];
        size_t na = a.n_trans;
        memcpy(ta, a.trans, na * sizeof *ta);
        apply(ev_old, &b);
        CHECK_INT(b.status, FN_STEP_OK);
        CHECK_INT(b.n_trans, na);
        for (size_t t = 0; t < na && t < b.n_trans; t++) {
            CHECK(ta[t].funnel == b.trans[t].funnel && ta[t].op == b.trans[t].op);
            CHECK(ta[t].from == b.trans[t].from && ta[t].to == b.trans[t].to);
            CHECK_INT(b.trans[t].time_in_stage_ms, ta[t].time_in_stage_ms);
            CHECK_INT(b.trans[t].cycle_ms, ta[t].cycle_ms);
            CHECK_INT(b.trans[t].touches, ta[t].touches);
        }
        for (size_t j = 0; j < 2; j++) {
            char *pn = pos_text_of("Pos-new", funnels[j]), *po = pos_text_of("Pos-old", funnels[j]);
            CHECK(pn && po && strcmp(pn, po) == 0);
            if (!(pn && po && strcmp(pn, po) == 0))
                fprintf(stderr, "event %zu, %s: |p %s in the new layout, %s from the old\n", i,
                        funnels[j], pn ? pn : "(none)", po ? po : "(none)");
            free(pn);
            free(po);
            CHECK_INT(old_fields_of("Pos-old", funnels[j]), 0);
        }
    }
    /* the journey went through entry, a touch, a skip, a step back, a move and a conversion */
    char *p = pos_text_of("Pos-new", "b2b");
    CHECK(p && strncmp(p, "8|", 2) == 0 && strstr(p, "|c4|"));
    free(p);
}

int main(void)
{
    if (!fn_test_redis_start(CONFIG, "it", prefix, &cfg, &rc))
        return 1;
    if (!fn_test_script_load(rc, fn_lua_step_src, sha) ||
        !fn_test_script_load(rc, fn_lua_fire_src, fire_sha) ||
        !fn_test_step_call(rc, sha, &step_call))
        return 1;

    test_journey();
    test_replay();
    test_lost_and_late();
    test_hostile_ids();
    test_config_shrunk();
    test_consent_erase_collision();
    test_seen_window();
    test_refused_step_writes_nothing();
    test_max_config();
    test_erase_keeps_unacknowledged_results();
    test_erase_fires_due_timers_first();
    test_replay_under_another_config();
    test_cohorts();
    test_position_written_before();

    if (last_reply)
        freeReplyObject(last_reply);
    redisFree(rc);
    fn_config_free(cfg);
    return fn_test_result("test_step_redis");
}
