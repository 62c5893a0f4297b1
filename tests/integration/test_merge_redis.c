/*
 * test_merge_redis.c — merge.lua's steps on a real Redis, one by one, as merge_flow.c sends
 * them (issue 20): what each writes (people counters, links, timers, the ids set), that each
 * is idempotent (DETACH twice gives the same snapshot and counts once, APPLY twice is a
 * duplicate with its stored result, FINISH and DONE twice change nothing), that APPLY writes
 * nothing when the root changed after READ, the answers that steer the flow (moved, taken,
 * refused, collision, done), an event of the absorbed id redirected while pending and after,
 * and an erasure's IDS, FORGET and UNLINK.
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it). Each run
 * uses its own key prefix.
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/merge_step.h"
#include "funneld/step.h"

static const char *CONFIG =
    "{\"max_future\":0,\"redis\":{\"key_prefix\":\"PREFIX\",\"shards\":8},"
    "\"identity\":{\"max_ids\":3},\"funnels\":["
    "{\"name\":\"b2b\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"awareness\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"interest\",\"on\":[{\"type\":\"email_click\"}]},"
    " {\"name\":\"evaluation\",\"on\":[{\"type\":\"demo_request\"}],\"stale_after\":\"3d\"},"
    " {\"name\":\"purchase\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"attribution\":{\"models\":[\"linear\"],\"max_touches\":3}}]}";

#define T0 "1790000000000"
static const int64_t NOW = 1790000000000LL + 60000;

static redisContext *rc;
static fn_config_t *cfg;
static char step_sha[41], merge_sha[41];
static fn_step_call_t step_call; /* fn_test_step_call */
static char prefix[32];
static int msg_no;

static fn_hash128_t hash_of(const char *id)
{
    return fn_step_lead_hash(id, strlen(id));
}

static redisReply *send(const fn_buf_t *cmd)
{
    redisAppendFormattedCommand(rc, cmd->data, cmd->len);
    void *r = NULL;
    CHECK(redisGetReply(rc, &r) == REDIS_OK);
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        fprintf(stderr, "redis: %s\n", reply->str);
    return reply;
}

static bool decode(const char *json, fn_event_t *ev)
{
    char reason[256];
    fn_reject_t code = fn_event_decode(json, strlen(json), cfg, NOW, ev, reason, sizeof reason);
    if (code != FN_REJ_NONE)
        fprintf(stderr, "decode: %s\n", reason);
    return code == FN_REJ_NONE;
}

/* One ordinary step (step.lua); returns its raw reply (the caller frees it). */
static redisReply *step(const char *json)
{
    fn_event_t ev = {0};
    CHECK(decode(json, &ev));
    fn_buf_t cmd = {0};
    char token[64];
    snprintf(token, sizeof token, "it:%d", ++msg_no);
    CHECK(fn_step_build(cfg, &step_call, token, &ev, hash_of(ev.lead_id.p), NOW, 0, "in", 0,
                        &cmd) == FN_OK);
    redisReply *r = send(&cmd);
    fn_buf_free(&cmd);
    fn_event_clear(&ev);
    return r;
}

static void step_ok(const char *json)
{
    redisReply *r = step(json);
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

/* One merge.lua step on lead id. */
static redisReply *merge(fn_merge_phase_t phase, const char *id, const char *root,
                         const char *cause, int64_t root_ids, const fn_merge_plan_t *plan,
                         const char *result)
{
    char due[352];
    fn_step_due_key(cfg, fn_step_shard(cfg, hash_of(id)), "in", 0, due, sizeof due);
    fn_merge_cmd_t c = {.phase = phase,
                        .id = {id, strlen(id)},
                        .hash = hash_of(id),
                        .root = {root, strlen(root)},
                        .cause = {cause, strlen(cause)},
                        .result = {result, strlen(result)},
                        .root_ids = root_ids,
                        .plan = plan,
                        .due = due,
                        .now_ms = NOW,
                        .due_by = NOW};
    fn_buf_t cmd = {0};
    CHECK(fn_merge_build(cfg, merge_sha, &c, &cmd) == FN_OK);
    redisReply *r = send(&cmd);
    fn_buf_free(&cmd);
    return r;
}

static bool is(const redisReply *r, const char *status)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, status) == 0;
}

static const char *str_at(const redisReply *r, size_t i)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements > i &&
                   r->element[i]->type == REDIS_REPLY_STRING
               ? r->element[i]->str
               : NULL;
}

static long long total(const char *field)
{
    return fn_test_stats_total(rc, cfg, prefix, field);
}

/* The people counters of funnel b2b: leads, then the population of each of its 4 stages. */
static void people(long long out[5])
{
    out[0] = total("b2b|leads");
    for (int k = 0; k < 4; k++) {
        char f[32];
        snprintf(f, sizeof f, "b2b|p|%d", k);
        out[k + 1] = total(f);
    }
}

static void check_people(long long leads, long long p0, long long p1, long long p2, long long p3,
                         const char *what)
{
    long long got[5], want[5] = {leads, p0, p1, p2, p3};
    people(got);
    for (int i = 0; i < 5; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "%s: counter %d is %lld, want %lld\n", what, i, got[i], want[i]);
            CHECK(false);
        }
}

static char *hget(const char *id, const char *field)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(id), &k);
    redisReply *r = redisCommand(rc, "HGET %s %s", k.lead, field);
    char *v = r && r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

static bool field_is(const char *id, const char *field, const char *want)
{
    char *v = hget(id, field);
    bool same = want ? v && strcmp(v, want) == 0 : v == NULL;
    if (!same)
        fprintf(stderr, "%s.%s is %s, want %s\n", id, field, v ? v : "(none)",
                want ? want : "(none)");
    free(v);
    return same;
}

/* Whether lead id is at stage want of funnel (its position read as lead_pos.h reads it). */
static bool stage_is(const char *id, const char *funnel, int64_t want)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(id), &k);
    redisReply *h = redisCommand(rc, "HGETALL %s", k.lead);
    fn_lead_pos_t pos;
    bool read = h && h->type == REDIS_REPLY_ARRAY && fn_lead_pos_read(h, funnel, &pos);
    bool same = read && pos.has_stage && pos.stage == want;
    if (!same)
        fprintf(stderr, "%s's stage in %s is %lld, want %lld\n", id, funnel,
                read && pos.has_stage ? (long long)pos.stage : -1LL, (long long)want);
    freeReplyObject(h);
    return same;
}

/* Whether lead id's seen set holds member (len bytes) with the score of NOW in seconds, as
 * every id recorded there has (daemon/state/seen.lua). */
static bool seen_now(const char *id, const char *member, size_t len)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(id), &k);
    redisReply *r = redisCommand(rc, "ZSCORE %s %b", k.seen, member, len);
    bool yes = r && r->type == REDIS_REPLY_STRING &&
               strtoll(r->str, NULL, 10) == NOW / FN_STEP_SEEN_UNIT_MS;
    freeReplyObject(r);
    return yes;
}

/* Whether lead id has its stalled timer of b2b in its shard's due zset. */
static bool timer_armed(const char *id)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(id), &k);
    char due[352], member[160];
    fn_step_due_key(cfg, k.shard, "in", 0, due, sizeof due);
    fn_key_timer_member(member, sizeof member, k.lead, "b2b", "stalled", 7);
    redisReply *r = redisCommand(rc, "ZSCORE %s %s", due, member);
    bool armed = r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return armed;
}

/* With add, gives lead id's stalled timer of b2b a copy of its member that names the whole
 * lead key, as members were written before 2026-12-06 (true when it did); without, whether
 * such a member is in the zset. */
static bool whole_member(const char *id, bool add)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(id), &k);
    char due[352], member[160], whole[256];
    fn_step_due_key(cfg, k.shard, "in", 0, due, sizeof due);
    fn_key_timer_member(member, sizeof member, k.lead, "b2b", "stalled", 7);
    snprintf(whole, sizeof whole, "%s|b2b|stalled", k.lead);
    redisReply *r = redisCommand(rc, "ZSCORE %s %s", due, add ? member : whole);
    bool found = r && r->type == REDIS_REPLY_STRING;
    if (found && add) {
        redisReply *w = redisCommand(rc, "ZADD %s %s %s", due, r->str, whole);
        found = w && w->type == REDIS_REPLY_INTEGER && w->integer == 1;
        freeReplyObject(w);
    }
    freeReplyObject(r);
    return found;
}

/* How many touches lead id keeps for attribution. */
static long long touches_of(const char *id)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(id), &k);
    redisReply *r = redisCommand(rc, "ZCARD %s", k.touches);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

static bool same_reply(const redisReply *a, const redisReply *b)
{
    if (!a || !b || a->type != b->type || a->elements != b->elements || a->len != b->len)
        return false;
    if (a->str && memcmp(a->str, b->str, a->len) != 0)
        return false;
    for (size_t i = 0; i < a->elements; i++)
        if (!same_reply(a->element[i], b->element[i]))
            return false;
    return true;
}

/* Plans the merge of snapshot (DETACH's answer) into kept (READ's) for the identify ident. */
static void plan_of(const redisReply *kept, const redisReply *snapshot, const char *ident,
                    const char *root, const char *absorbed, fn_merge_plan_t *plan)
{
    fn_event_t ev = {0};
    CHECK(decode(ident, &ev));
    ev.lead_id = (fn_str_t){root, strlen(root)};
    fn_lead_keys_t k;
    fn_step_keys(cfg, hash_of(root), &k);
    const fn_merge_input_t in = {.cfg = cfg,
                                 .kept = kept->element[1],
                                 .absorbed = snapshot->element[1],
                                 .ids = snapshot->element[2],
                                 .touches = snapshot->element[4],
                                 .ev = &ev,
                                 .absorbed_id = {absorbed, strlen(absorbed)},
                                 .root_key = k.lead,
                                 .due_tail = "in:0",
                                 .token = "it:merge",
                                 .now_ms = NOW};
    CHECK(fn_merge_plan(&in, plan) == FN_OK);
    fn_event_clear(&ev);
}

#define EV(lead, id, type)                                                                         \
    "{\"event_id\":\"" id "\",\"lead_id\":\"" lead "\",\"ts\":" T0                                 \
    ",\"channel\":\"web\",\"type\":\"" type "\"}"
#define IDENT(lead, id, prev)                                                                      \
    "{\"event_id\":\"" id "\",\"lead_id\":\"" lead "\",\"ts\":" T0                                 \
    ",\"channel\":\"web\",\"type\":\"identify\",\"props\":{\"previous_id\":\"" prev "\"}}"

static void test_merge_steps(void)
{
    /* K, the kept lead, at interest; P, the absorbed one, at evaluation with a stalled timer */
    step_ok(EV("K", "k-1", "page_view"));
    step_ok(EV("K", "k-2", "email_click"));
    step_ok(EV("P", "p-1", "demo_request"));
    check_people(2, 0, 1, 1, 0, "before");
    CHECK(timer_armed("P"));
    CHECK(whole_member("P", true)); /* and under its old name too */

    redisReply *r = merge(FN_PHASE_ROOT, "K", "", "id-1", 0, NULL, "");
    CHECK(is(r, "root") && str_at(r, 1) && strcmp(str_at(r, 1), "1") == 0);
    freeReplyObject(r);

    /* DETACH: P leaves the people counters and its timer's zset, linked to K, pending */
    redisReply *snap = merge(FN_PHASE_DETACH, "P", "K", "id-1", 1, NULL, "");
    CHECK(is(snap, "snapshot") && snap->elements == 5);
    check_people(1, 0, 1, 0, 0, "detached");
    CHECK(!timer_armed("P"));
    CHECK(!whole_member("P", false)); /* its frozen field would fire from it */
    CHECK(field_is("P", FN_F_MERGED_INTO, "K"));
    CHECK(field_is("P", FN_F_MERGE_PENDING, "1"));
    CHECK(field_is("P", FN_F_MERGE_CAUSE, "id-1"));
    CHECK(seen_now("P", "id-1", 4) && seen_now("P", "p-1", 3));
    /* a replay of it: the same snapshot, counted once */
    r = merge(FN_PHASE_DETACH, "P", "K", "id-1", 1, NULL, "");
    CHECK(is(r, "snapshot") && r->elements == 5 && snap->elements == 5 &&
          same_reply(r->element[1], snap->element[1]) &&
          same_reply(r->element[2], snap->element[2]) &&
          same_reply(r->element[4], snap->element[4]));
    CHECK(snap->elements == 5 && snap->element[4]->elements == 2); /* P's touch, with its time */
    freeReplyObject(r);
    check_people(1, 0, 1, 0, 0, "detached twice");

    /* P's event while the merge is pending: redirected to K, pending */
    r = step(EV("P", "p-2", "page_view"));
    CHECK(is(r, "redirect") && str_at(r, 1) && strcmp(str_at(r, 1), "K") == 0 && str_at(r, 2) &&
          strcmp(str_at(r, 2), "1") == 0);
    freeReplyObject(r);

    /* APPLY planned on a read the root has moved on from writes nothing */
    redisReply *kept = merge(FN_PHASE_READ, "K", "", "id-1", 0, NULL, "");
    CHECK(is(kept, "lead"));
    fn_merge_plan_t plan = {0};
    plan_of(kept, snap, IDENT("K", "id-1", "P"), "K", "P", &plan);
    step_ok(EV("K", "k-3", "page_view")); /* a touch: K's hash changes */
    r = merge(FN_PHASE_APPLY, "K", "", "id-1", 0, &plan, "");
    CHECK(is(r, "changed"));
    freeReplyObject(r);
    check_people(1, 0, 1, 0, 0, "changed");
    CHECK(stage_is("K", "b2b", 1));
    fn_merge_plan_free(&plan);
    freeReplyObject(kept);

    /* read again, plan, apply: one person at evaluation, its timer armed on K */
    kept = merge(FN_PHASE_READ, "K", "", "id-1", 0, NULL, "");
    CHECK(is(kept, "lead"));
    memset(&plan, 0, sizeof plan);
    plan_of(kept, snap, IDENT("K", "id-1", "P"), "K", "P", &plan);
    CHECK(plan.n_outputs >= 2); /* lead_merged and K's implied stage_changed */
    r = merge(FN_PHASE_APPLY, "K", "", "id-1", 0, &plan, "");
    CHECK(is(r, "ok"));
    freeReplyObject(r);
    check_people(1, 0, 0, 1, 0, "applied");
    CHECK(seen_now("K", "id-1", 4));
    CHECK(stage_is("K", "b2b", 2));
    CHECK(timer_armed("K"));
    /* P's touch joined K's three, kept to max_touches (3) */
    CHECK_INT(touches_of("K"), 3);
    /* applied twice: a duplicate that answers with the stored result */
    r = merge(FN_PHASE_APPLY, "K", "", "id-1", 0, &plan, "");
    CHECK(is(r, "dup") && str_at(r, 1) && strcmp(str_at(r, 1), plan.pending.data) == 0);
    freeReplyObject(r);
    check_people(1, 0, 0, 1, 0, "applied twice");
    r = merge(FN_PHASE_READ, "K", "", "id-1", 0, NULL, "");
    CHECK(is(r, "dup"));
    freeReplyObject(r);
    fn_merge_plan_free(&plan);
    freeReplyObject(kept);
    freeReplyObject(snap);
    fn_lead_keys_t kk;
    fn_step_keys(cfg, hash_of("K"), &kk);
    char ids[96], hex[33];
    fn_hash_hex(hash_of("K"), hex);
    fn_key_ids(ids, sizeof ids, cfg->key_prefix, kk.shard, hex);
    r = redisCommand(rc, "SMEMBERS %s", ids);
    CHECK(r && r->elements == 1 && strcmp(r->element[0]->str, "P") == 0);
    freeReplyObject(r);

    /* FINISH, twice: P's events now simply go to K */
    for (int i = 0; i < 2; i++) {
        r = merge(FN_PHASE_FINISH, "P", "", "id-1", 0, NULL, "");
        CHECK(is(r, "ok"));
        freeReplyObject(r);
        CHECK(field_is("P", FN_F_MERGE_PENDING, NULL));
    }
    r = step(EV("P", "p-3", "page_view"));
    CHECK(is(r, "redirect") && str_at(r, 2) && strcmp(str_at(r, 2), "") == 0);
    freeReplyObject(r);
    /* an event P saw before the merge stays a duplicate */
    r = step(EV("P", "p-1", "demo_request"));
    CHECK(is(r, "dup"));
    freeReplyObject(r);

    /* DONE records the identify on its lead_id: a replay stops at ROOT with the result */
    r = merge(FN_PHASE_DONE, "K", "", "id-1", 0, NULL, "it:merge|[]");
    CHECK(is(r, "ok"));
    freeReplyObject(r);
    CHECK(seen_now("K", "id-1", 5)); /* "id-1" and its NUL */
    r = merge(FN_PHASE_ROOT, "K", "", "id-1", 0, NULL, "");
    CHECK(is(r, "done") && str_at(r, 1) && strcmp(str_at(r, 1), "it:merge|[]") == 0);
    freeReplyObject(r);

    /* the answers that steer the flow */
    r = merge(FN_PHASE_ROOT, "P", "", "", 0, NULL, ""); /* following a chain */
    CHECK(is(r, "moved") && str_at(r, 1) && strcmp(str_at(r, 1), "K") == 0);
    freeReplyObject(r);
    r = merge(FN_PHASE_DETACH, "P", "Q", "id-2", 1, NULL, "");
    CHECK(is(r, "taken") && str_at(r, 1) && strcmp(str_at(r, 1), "K") == 0 && str_at(r, 2) &&
          strcmp(str_at(r, 2), "id-1") == 0);
    freeReplyObject(r);
    CHECK(field_is("P", FN_F_MERGE_CAUSE, "id-1"));
    step_ok(EV("Q", "q-1", "page_view"));
    /* a root said to hold 3 ids already (max_ids): Q would be the 4th */
    r = merge(FN_PHASE_DETACH, "Q", "K", "id-3", 3, NULL, "");
    CHECK(is(r, "refused") && str_at(r, 1) && strstr(str_at(r, 1), "identity.max_ids"));
    freeReplyObject(r);
    CHECK(field_is("Q", FN_F_MERGED_INTO, NULL));
    check_people(2, 1, 0, 1, 0, "refused: Q stays its own lead");
    /* an id whose key holds another lead */
    fn_merge_cmd_t c = {.phase = FN_PHASE_ROOT,
                        .id = {"X", 1},
                        .hash = hash_of("K"),
                        .cause = {"id-4", 4},
                        .now_ms = NOW};
    fn_buf_t cmd = {0};
    CHECK(fn_merge_build(cfg, merge_sha, &c, &cmd) == FN_OK);
    r = send(&cmd);
    fn_buf_free(&cmd);
    CHECK(is(r, "collision"));
    freeReplyObject(r);

    /* an erasure of K: IDS names P, FORGET makes P a fresh id that remembers its events,
     * UNLINK deletes the set that named it */
    r = merge(FN_PHASE_IDS, "P", "", "", 0, NULL, "");
    CHECK(is(r, "moved"));
    freeReplyObject(r);
    r = merge(FN_PHASE_IDS, "K", "", "", 0, NULL, "");
    CHECK(is(r, "ids") && r->elements == 2 && r->element[1]->elements == 1 &&
          strcmp(r->element[1]->element[0]->str, "P") == 0);
    freeReplyObject(r);
    for (int i = 0; i < 2; i++) {
        r = merge(FN_PHASE_FORGET, "P", "K", "erase-1", 0, NULL, "");
        CHECK(is(r, "ok"));
        freeReplyObject(r);
    }
    for (int i = 0; i < 2; i++) { /* then the set naming them */
        r = merge(FN_PHASE_UNLINK, "K", "", "", 0, NULL, "");
        CHECK(is(r, "ok"));
        freeReplyObject(r);
    }
    r = merge(FN_PHASE_IDS, "K", "", "", 0, NULL, "");
    CHECK(is(r, "ids") && r->elements == 2 && r->element[1]->elements == 0);
    freeReplyObject(r);
    CHECK(field_is("P", FN_F_MERGED_INTO, NULL));
    CHECK(field_is("P", FN_F_FORGOTTEN, "1"));
    CHECK_INT(touches_of("P"), 0);
    CHECK(field_is("P", FN_F_ID, "P"));
    r = step(EV("P", "p-1", "demo_request")); /* seen before the merge */
    CHECK(is(r, "dup"));
    freeReplyObject(r);
    r = step(EV("P", "p-4", "page_view")); /* a new lead */
    CHECK(r && r->type == REDIS_REPLY_ARRAY && !is(r, "redirect") && !is(r, "dup"));
    freeReplyObject(r);
}

/* Two leads stored with the position layout before "|p" (six fields, position.lua) merge as
 * two stored now: detach takes the absorbed one out of the counters of the stage its old
 * fields name, the plan reads both positions, and apply writes the kept lead's "|p" and
 * deletes its old fields. */
static void test_merge_old_layout(void)
{
    step_ok(EV("K2", "k2-1", "page_view"));
    step_ok(EV("K2", "k2-2", "email_click"));
    step_ok(EV("P2", "p2-1", "demo_request"));
    CHECK(fn_test_to_old_layout(rc, cfg, "K2", "b2b"));
    CHECK(fn_test_to_old_layout(rc, cfg, "P2", "b2b"));
    CHECK(field_is("K2", "b2b|p", NULL) && field_is("K2", "b2b|k", "1"));
    long long before[5], after[5];
    people(before);
    redisReply *snap = merge(FN_PHASE_DETACH, "P2", "K2", "id-9", 1, NULL, "");
    CHECK(is(snap, "snapshot"));
    people(after);
    CHECK_INT(after[0] - before[0], -1); /* P2 leaves the leads */
    CHECK_INT(after[3] - before[3], -1); /* and the people at evaluation */
    redisReply *kept = merge(FN_PHASE_READ, "K2", "", "id-9", 0, NULL, "");
    CHECK(is(kept, "lead"));
    fn_merge_plan_t plan = {0};
    plan_of(kept, snap, IDENT("K2", "id-9", "P2"), "K2", "P2", &plan);
    redisReply *r = merge(FN_PHASE_APPLY, "K2", "", "id-9", 0, &plan, "");
    CHECK(is(r, "ok"));
    freeReplyObject(r);
    people(after);
    CHECK_INT(after[2] - before[2], -1); /* K2 left interest */
    CHECK_INT(after[3] - before[3], 0);  /* for evaluation, where P2 was */
    CHECK(stage_is("K2", "b2b", 2));
    static const char *const old[] = {"b2b|n", "b2b|a", "b2b|x", "b2b|k", "b2b|e", "b2b|b"};
    for (size_t i = 0; i < sizeof old / sizeof *old; i++)
        CHECK(field_is("K2", old[i], NULL));
    /* the next event reads the merged "|p": a touch at evaluation, its 4th */
    r = step(EV("K2", "k2-3", "page_view"));
    CHECK(r && r->type == REDIS_REPLY_ARRAY && !is(r, "redirect"));
    freeReplyObject(r);
    CHECK(stage_is("K2", "b2b", 2));
    char *pos = hget("K2", "b2b|p");
    CHECK(pos && strncmp(pos, "4|", 2) == 0);
    free(pos);
    fn_merge_plan_free(&plan);
    freeReplyObject(kept);
    freeReplyObject(snap);
}

int main(void)
{
    if (!fn_test_redis_start(CONFIG, "itm", prefix, &cfg, &rc))
        return 1;
    if (!fn_test_script_load(rc, fn_lua_step_src, step_sha) ||
        !fn_test_script_load(rc, fn_lua_merge_src, merge_sha) ||
        !fn_test_step_call(rc, step_sha, &step_call))
        return 1;
    test_merge_steps();
    test_merge_old_layout();
    redisFree(rc);
    fn_config_free(cfg);
    return fn_test_result("test_merge_redis");
}
