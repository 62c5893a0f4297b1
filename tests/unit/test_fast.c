/*
 * test_fast.c — the fast path's decision (fast.h) on leads as read, table by table: what it
 * writes for a touch it takes, and every lead or event it must leave to the whole step
 * (a new or another lead, merge marks, the layout of before, a malformed or hostile field,
 * a move, a value, a due timer, a timer in another zset, a cancel). That
 * its writes are the whole step's, event for event, is test_fast_redis's (integration).
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/fast.h"
#include "funneld/step.h"

static const char *CONFIG =
    "{\"max_future\":0,\"redis\":{\"key_prefix\":\"t\",\"shards\":4},\"funnels\":["
    "{\"name\":\"shop\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"visit\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"interest\",\"on\":[{\"type\":\"email_click\"}],\"stale_after\":\"1h\"},"
    " {\"name\":\"buy\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"retarget\":[{\"name\":\"nudge\",\"after\":{\"type\":\"ping\"},"
    "   \"unless\":[{\"type\":\"pong\"}],\"within\":\"10m\"}]}]}";

#define NOW 1796000000001LL /* not a multiple of FN_STEP_PRUNE_ONE_IN: no pruning step */
/* The apply's words (fast.lua): FCALL f 4, its four keys, the version, the event id, the seen
 * score, the expiry, the prune's clock, the window, then the number of timers to add. */
#define W_PRUNE 11
#define W_NTIMERS 13
#define TS 1796000000000LL

static fn_config_t *cfg;

/* An HGETALL reply of the given field, value pairs (NULL-terminated). */
static redisReply *hash_of(const char *const *kv)
{
    size_t n = 0;
    while (kv[n])
        n++;
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    for (size_t i = 0; i < n; i++) {
        redisReply *s = calloc(1, sizeof *s);
        s->type = REDIS_REPLY_STRING;
        s->len = strlen(kv[i]);
        s->str = strdup(kv[i]);
        r->element[i] = s;
    }
    return r;
}

/* The words of a RESP command; n set to their count. Words point into cmd. */
static size_t words_of(const fn_buf_t *cmd, const char **w, size_t *len, size_t max)
{
    const char *p = cmd->data;
    size_t n = strtoul(p + 1, NULL, 10), i = 0;
    p = strstr(p, "\r\n") + 2;
    for (; i < n && i < max; i++) {
        len[i] = strtoul(p + 1, NULL, 10);
        p = strstr(p, "\r\n") + 2;
        w[i] = p;
        p += len[i] + 2;
    }
    return i;
}

/* The value the apply sets field to ("" when it sets none; a static buffer). */
static const char *field_set(const fn_buf_t *cmd, const char *field)
{
    static char out[256];
    const char *w[256];
    size_t len[256];
    size_t n = words_of(cmd, w, len, 256);
    size_t at = W_NTIMERS + 1 + 2 * strtoul(w[W_NTIMERS], NULL, 10); /* after the timers */
    for (size_t i = at; i + 1 < n; i += 2)
        if (len[i] == strlen(field) && memcmp(w[i], field, len[i]) == 0) {
            snprintf(out, sizeof out, "%.*s", (int)len[i + 1], w[i + 1]);
            return out;
        }
    return "";
}

/* Decides event (type, optional extra JSON members) on the lead kv; true when taken. */
static bool decide(const char *type, const char *extra, const char *const *kv, int64_t now,
                   fn_buf_t *cmd, fn_fast_out_t *out)
{
    char json[512], reason[256];
    snprintf(json, sizeof json,
             "{\"event_id\":\"e9\",\"lead_id\":\"L1\",\"ts\":%lld,\"channel\":\"web\","
             "\"type\":\"%s\"%s}",
             (long long)TS, type, extra ? extra : "");
    fn_event_t ev = {0};
    CHECK(fn_event_decode(json, strlen(json), cfg, 0, &ev, reason, sizeof reason) == FN_REJ_NONE);
    redisReply *h = hash_of(kv);
    const fn_fast_in_t in = {cfg, &ev, fn_step_lead_hash("L1", 2), h, now, 0, "in", 3};
    bool taken = fn_fast_build(&in, "f", cmd, out);
    freeReplyObject(h);
    fn_event_clear(&ev);
    return taken;
}

/* A lead active in "shop" at stage 0, with a stalled timer nowhere (visit has none). */
#define BASE                                                                                       \
    "id", "L1", "ts", "1795999000000", "l.ty", "page_view", "l.ch", "web", "l.cp", "", "l.src",    \
        "", "l.at", "1795999000000", "f.at", "1795990000000", "w", "1795990000000500", "sx",       \
        "1797000000000"

static void test_a_touch_is_taken(void)
{
    fn_buf_t cmd = {0};
    fn_fast_out_t out;
    const char *lead[] = {BASE, "shop|p", "3|1795999000000|a0|1795990000000|1795990000000", NULL};
    CHECK(decide("page_view", NULL, lead, NOW, &cmd, &out));
    CHECK_STR(field_set(&cmd, "shop|p"), "4|1796000000000|a0|1795990000000|1795990000000");
    CHECK_STR(field_set(&cmd, "w"), "1795990000000501");
    CHECK_STR(field_set(&cmd, "ts"), "1796000000000");
    CHECK_STR(field_set(&cmd, "l.at"), "1796000000000");
    CHECK_STR(field_set(&cmd, "l.ty"), ""); /* unchanged: not written */
    CHECK_STR(field_set(&cmd, "f.at"), ""); /* not the earliest */
    CHECK_STR(field_set(&cmd, "sx"), "");   /* the seen set's expiry holds */
    CHECK(out.at == TS && out.value[0] == '\0' && out.armed_due == 0);
    /* a late event: the lead's time stays, the touch counts */
    const char *later[] = {BASE, "shop|p",        "3|1796000500000|a0|1795990000000|1795990000000",
                           "ts", "1796000500000", NULL};
    /* (a second "ts" later in the reply is the one a hash would hold: read last wins) */
    CHECK(decide("page_view", NULL, later, NOW, &cmd, &out));
    CHECK(out.at == 1796000500000LL);
    CHECK_STR(field_set(&cmd, "shop|p"), "4|1796000500000|a0|1795990000000|1795990000000");
    const char *w[64];
    size_t len[64];
    words_of(&cmd, w, len, 64);
    CHECK(len[W_PRUNE] == 0); /* no prune */
    /* the pruning call (step.lua's too): the prune's clock goes, and the seen set's expiry
     * moves though it holds */
    CHECK(decide("page_view", NULL, lead, NOW - 1, &cmd, &out));
    words_of(&cmd, w, len, 64);
    CHECK(len[W_PRUNE] == 13 && memcmp(w[W_PRUNE], "1796000000000", 13) == 0);
    CHECK(len[W_PRUNE + 1] == 9 && memcmp(w[W_PRUNE + 1], "604800000", 9) == 0);
    CHECK_STR(field_set(&cmd, "sx"), "1796680400000");
    fn_buf_free(&cmd);
}

static void test_timers_armed_and_moved(void)
{
    fn_buf_t cmd = {0};
    fn_fast_out_t out;
    /* at stage 1 (stale_after 1h) with its stalled timer pending in this zset: moved later,
     * the field only (the member's score is a lower bound) */
    const char *pending[] = {BASE,
                             "shop|p",
                             "5|1795999000000|a1|1795990000000|1795980000000",
                             "shop|t|stalled",
                             "1796002600000|1|in:3|e7",
                             "tn",
                             "1796002600000",
                             NULL};
    CHECK(decide("page_view", NULL, pending, NOW, &cmd, &out));
    CHECK_STR(field_set(&cmd, "shop|t|stalled"), "1796003600000|1|in:3|e9");
    const char *w[64];
    size_t len[64];
    words_of(&cmd, w, len, 64);
    CHECK(len[W_NTIMERS] == 1 && w[W_NTIMERS][0] == '0'); /* no member added */
    CHECK(out.armed_due == 1796003600000LL);
    /* a rule armed anew: its member is added */
    CHECK(decide("ping", NULL, pending, NOW, &cmd, &out));
    words_of(&cmd, w, len, 64);
    CHECK(len[W_NTIMERS] == 1 && w[W_NTIMERS][0] == '1');
    CHECK_STR(field_set(&cmd, "shop|t|nudge"), "1796000600000|1|in:3|e9");
    CHECK_STR(field_set(&cmd, "tn"), "1796000600000");
    fn_buf_free(&cmd);
}

static void test_left_to_the_whole_step(void)
{
    fn_buf_t cmd = {0};
    fn_fast_out_t out;
    const char *active = "3|1795999000000|a0|1795990000000|1795990000000";
    struct {
        const char *why, *type, *extra;
        const char *kv[32];
        int64_t now;
    } cases[] = {
        {"a new lead", "page_view", NULL, {NULL}, NOW},
        {"another lead's id", "page_view", NULL, {"id", "L2", "shop|p", active, NULL}, NOW},
        {"merged away", "page_view", NULL, {BASE, "shop|p", active, "mi", "L9", NULL}, NOW},
        {"forgotten", "page_view", NULL, {BASE, "shop|p", active, "fg", "1", NULL}, NOW},
        {"the layout of before",
         "page_view",
         NULL,
         {BASE, "shop|k", "0", "shop|x", "a", NULL},
         NOW},
        {"a move", "email_click", NULL, {BASE, "shop|p", active, NULL}, NOW},
        {"never in the funnel: an entry", "page_view", NULL, {BASE, "shop|p", "2|17", NULL}, NOW},
        {"a value", "page_view", ",\"props\":{\"value\":5}", {BASE, "shop|p", active, NULL}, NOW},
        {"a timer due",
         "page_view",
         NULL,
         {BASE, "shop|p", active, "tn", "1795000000000", NULL},
         NOW},
        {"tn not a plain integer",
         "page_view",
         NULL,
         {BASE, "shop|p", active, "tn", "1e13", NULL},
         NOW},
        {"a status it does not know",
         "page_view",
         NULL,
         {BASE, "shop|p", "3|1795999000000|z0|1|1", NULL},
         NOW},
        {"an active stage that is no number",
         "page_view",
         NULL,
         {BASE, "shop|p", "3|1795999000000|a|1|1", NULL},
         NOW},
        {"a position cut short",
         "page_view",
         NULL,
         {BASE, "shop|p", "3|1795999000000|a0|1", NULL},
         NOW},
        {"touches past 2^53",
         "page_view",
         NULL,
         {BASE, "shop|p", "99999999999999999|1795999000000", NULL},
         NOW},
        {"a stored value that is no number",
         "page_view",
         NULL,
         {BASE, "shop|p", active, "v", "lots", NULL},
         NOW},
        {"a version that is no number",
         "page_view",
         NULL,
         {BASE, "shop|p", active, "w", "x1", NULL},
         NOW},
        {"a stalled timer in another zset",
         "page_view",
         NULL,
         {BASE, "shop|p", "5|1795999000000|a1|1|1", "shop|t|stalled", "1796002600000|1|in:4|e7",
          "tn", "1796002600000", NULL},
         NOW},
        {"a stall that fired (its marker)",
         "page_view",
         NULL,
         {BASE, "shop|p", "5|1795999000000|a1|1|1", "shop|t|stalled", "1795002600000|1||e7", NULL},
         NOW},
        {"a malformed timer",
         "page_view",
         NULL,
         {BASE, "shop|p", "5|1795999000000|a1|1|1", "shop|t|stalled", "soon", NULL},
         NOW},
        {"a cancel",
         "pong",
         NULL,
         {BASE, "shop|p", active, "shop|t|nudge", "1796000600000|0|in:3|e1", "tn", "1796000600000",
          NULL},
         NOW},
        {"opted out, a rule to arm", "ping", NULL, {BASE, "shop|p", active, "c", "0", NULL}, NOW},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool taken = decide(cases[i].type, cases[i].extra, cases[i].kv, cases[i].now, &cmd, &out);
        if (taken)
            fprintf(stderr, "taken, but should not be: %s\n", cases[i].why);
        CHECK(!taken);
    }
    /* replies no hash has */
    fn_event_t ev = {0};
    char reason[256];
    const char *json = "{\"event_id\":\"e9\",\"lead_id\":\"L1\",\"ts\":1796000000000,"
                       "\"channel\":\"web\",\"type\":\"page_view\"}";
    CHECK(fn_event_decode(json, strlen(json), cfg, 0, &ev, reason, sizeof reason) == FN_REJ_NONE);
    redisReply odd = {.type = REDIS_REPLY_ARRAY, .elements = 1};
    redisReply *one[1] = {&(redisReply){.type = REDIS_REPLY_STRING, .str = "id", .len = 2}};
    odd.element = one;
    redisReply nil = {.type = REDIS_REPLY_NIL};
    redisReply ints = {.type = REDIS_REPLY_ARRAY, .elements = 2};
    redisReply *two[2] = {&(redisReply){.type = REDIS_REPLY_INTEGER, .integer = 1},
                          &(redisReply){.type = REDIS_REPLY_INTEGER, .integer = 2}};
    ints.element = two;
    const redisReply *bad[] = {&odd, &nil, &ints, NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const fn_fast_in_t in = {cfg, &ev, fn_step_lead_hash("L1", 2), bad[i], NOW, 0, "in", 3};
        CHECK(!fn_fast_build(&in, "f", &cmd, &out));
    }
    fn_event_clear(&ev);
    fn_buf_free(&cmd);
}

static void test_the_reply_reads_as_a_step(void)
{
    fn_fast_out_t out = {.at = 1796000000000LL, .value = "12.5", .armed_due = 1796003600000LL};
    fn_fast_reply_t room;
    const redisReply *r = fn_fast_reply(&out, &room);
    fn_step_result_t res;
    char err[128];
    CHECK(fn_step_parse(cfg, r, &res, err, sizeof err) == FN_OK);
    CHECK(res.status == FN_STEP_OK && res.at == out.at && res.n_trans == 0 &&
          res.armed_due == out.armed_due && res.value.len == 4 && !res.fired);
}

int main(void)
{
    char err[256];
    json_error_t jerr;
    json_t *root = json_loads(CONFIG, 0, &jerr);
    cfg = fn_config_from_json(root, err, sizeof err);
    json_decref(root);
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    test_a_touch_is_taken();
    test_timers_armed_and_moved();
    test_left_to_the_whole_step();
    test_the_reply_reads_as_a_step();
    fn_config_free(cfg);
    return fn_test_result("test_fast");
}
