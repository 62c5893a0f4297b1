/*
 * test_step.c — the step's command layout (include/funneld/step.h): the command fn_step_build
 * writes has exactly FN_STEP_WORDS(funnels named) words for every kind of event, up to the
 * largest config (an erasure names all FN_MAX_FUNNELS funnels), with the trailing arguments
 * where step.lua reads them (caps, the bound of due timers, the max_breakdown list). A word dropped
 * at the limit shifted every later argument.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "fn_test_max_config.h"
#include "funneld/step.h"

/* Splits a RESP array of bulk strings: returns its count, and its last four words in
 * last[0] (fourth from the end) .. last[3] (the last). */
static long resp_words(const fn_buf_t *b, char last[4][8192])
{
    const char *p = b->data, *end = b->data + b->len;
    if (*p != '*')
        return -1;
    long count = strtol(p + 1, NULL, 10), seen = 0;
    p = strstr(p, "\r\n") + 2;
    while (p < end) {
        if (*p != '$')
            return -1;
        long len = strtol(p + 1, NULL, 10);
        p = strstr(p, "\r\n") + 2;
        memmove(last[0], last[1], 3 * sizeof last[0]);
        snprintf(last[3], sizeof last[3], "%.*s", (int)len, p);
        p += len + 2;
        seen++;
    }
    return seen == count ? count : -1;
}

/* Word number i (from 0) of a RESP array of bulk strings into out; false if there is none. */
static bool resp_word(const fn_buf_t *b, long i, char *out, size_t outlen)
{
    const char *p = strstr(b->data, "\r\n") + 2, *end = b->data + b->len;
    for (long k = 0; p < end && *p == '$'; k++) {
        long len = strtol(p + 1, NULL, 10);
        p = strstr(p, "\r\n") + 2;
        if (k == i) {
            snprintf(out, outlen, "%.*s", (int)len, p);
            return true;
        }
        p += len + 2;
    }
    return false;
}

/* the script's call in most cases here; test_call_forms checks both forms */
static const fn_step_call_t call = {"EVALSHA", "0123456789012345678901234567890123456789"};

static fn_config_t *load(const char *text)
{
    char err[256];
    json_t *root = json_loads(text, 0, NULL);
    fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    if (!cfg)
        fprintf(stderr, "config: %s\n", root ? err : "not JSON");
    json_decref(root);
    return cfg;
}

static void test_layout_at_the_maximum(void)
{
    CHECK_INT(FN_STEP_MAX_WORDS, FN_STEP_WORDS(FN_MAX_FUNNELS));
    CHECK_INT(FN_STEP_WORDS(FN_MAX_FUNNELS), 3 + 7 + 15 + 4 * FN_MAX_FUNNELS + 4);
    CHECK(FN_STEP_MAX_TRANSITIONS >= FN_MAX_FUNNELS);

    char *json = fn_test_max_config_json("unit", "event");
    fn_config_t *cfg = json ? load(json) : NULL;
    free(json);
    CHECK(cfg && cfg->n_funnels == FN_MAX_FUNNELS);
    if (!cfg)
        return;
    static const struct {
        const char *event;
        size_t funnels; /* named in the command */
    } cases[] = {
        {"{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,\"channel\":\"web\","
         "\"type\":\"page_view\"}",
         FN_MAX_FUNNELS},
        {"{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,\"channel\":\"web\","
         "\"type\":\"cart_add\",\"props\":{\"value\":12.5}}",
         FN_MAX_FUNNELS},
        {"{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,\"channel\":\"web\","
         "\"type\":\"page_view\",\"funnel\":\"f63\"}",
         1},
        {"{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,\"channel\":\"web\","
         "\"type\":\"erase\"}",
         FN_MAX_FUNNELS},
        {"{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,\"channel\":\"web\","
         "\"type\":\"consent\",\"props\":{\"marketing\":true}}",
         0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fn_event_t ev = {0};
        char reason[256];
        CHECK_INT(fn_event_decode(cases[i].event, strlen(cases[i].event), cfg, 0, &ev, reason,
                                  sizeof reason),
                  FN_REJ_NONE);
        fn_buf_t cmd = {0};
        CHECK(fn_step_build(cfg, &call, "i:1", &ev, fn_step_lead_hash("L", 1), 5000, 0, "in", 0,
                            &cmd) == FN_OK);
        static char last[4][8192];
        memset(last, 0, sizeof last);
        long words = cmd.len ? resp_words(&cmd, last) : -1;
        CHECK_INT(words, FN_STEP_WORDS(cases[i].funnels));
        CHECK(strncmp(last[0], "f0=100,86400000;", 16) == 0); /* the trigger caps */
        CHECK_STR(last[1], "1000");                           /* the bound of due timers */
        /* each named funnel's max_breakdown, comma-terminated (default 100) */
        CHECK_INT((long)strlen(last[2]), (long)(4 * cases[i].funnels));
        /* marketing analytics, for a touchpoint or an erasure (its breakdowns): the touches a
         * lead keeps (every funnel keeps 200), the event's funnel field, then each funnel's
         * attribution, cohorts and breakdowns (none) */
        bool touch = cases[i].funnels > 0;
        bool routed = strstr(cases[i].event, "\"funnel\"") != NULL;
        CHECK(touch ? strncmp(last[3], routed ? "200,f63;" : "200,;", routed ? 8 : 5) == 0
                    : last[3][0] == '\0');
        const char *spec = ";01234|315360000000|200|315360000000/1/";
        size_t n = 0;
        for (const char *p = last[3]; (p = strstr(p, spec)); p += strlen(spec))
            n++;
        CHECK_INT((long)n, touch ? (long)cases[i].funnels : 0);
        fn_buf_free(&cmd);
        fn_event_clear(&ev);
    }
    fn_config_free(cfg);
}

/* ARGV[FN_STEP_ARG_CLUSTER] tells step.lua to read its undeclared keys first: "1" on a
 * Redis Cluster only. */
static void test_cluster_flag(void)
{
    static const char *const ev_json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,"
                                       "\"channel\":\"web\",\"type\":\"page_view\"}";
    for (int cluster = 0; cluster <= 1; cluster++) {
        fn_config_t *cfg =
            load("{\"redis\":{\"cluster\":true},\"funnels\":[{\"name\":\"f\","
                 "\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"page_view\"}]}]}]}");
        if (!cfg)
            return;
        cfg->redis_cluster = cluster;
        fn_event_t ev = {0};
        char reason[256], word[16] = "?";
        CHECK_INT(fn_event_decode(ev_json, strlen(ev_json), cfg, 0, &ev, reason, sizeof reason),
                  FN_REJ_NONE);
        fn_buf_t cmd = {0};
        CHECK(fn_step_build(cfg, &call, "i:1", &ev, fn_step_lead_hash("L", 1), 5000, 0, "in", 0,
                            &cmd) == FN_OK);
        /* EVALSHA, digest, key count, the keys, then ARGV from 1 */
        CHECK(resp_word(&cmd, 3 + FN_STEP_KEYS + FN_STEP_ARG_CLUSTER - 1, word, sizeof word));
        CHECK_STR(word, cluster ? "1" : "");
        CHECK(resp_word(&cmd, 3 + FN_STEP_KEYS + FN_STEP_ARG_NFUN - 1, word, sizeof word));
        CHECK_STR(word, "1");
        fn_buf_free(&cmd);
        fn_event_clear(&ev);
        fn_config_free(cfg);
    }
}

/* The call's verb and name lead the command, the same keys and arguments follow either. */
static void test_call_forms(void)
{
    static const char *const ev_json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,"
                                       "\"channel\":\"web\",\"type\":\"page_view\"}";
    fn_config_t *cfg = load("{\"funnels\":[{\"name\":\"f\","
                            "\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"page_view\"}]}]}]}");
    if (!cfg)
        return;
    fn_event_t ev = {0};
    char reason[256];
    CHECK_INT(fn_event_decode(ev_json, strlen(ev_json), cfg, 0, &ev, reason, sizeof reason),
              FN_REJ_NONE);
    const fn_step_call_t fcall = {"FCALL", fn_lua_step_lib_name};
    fn_buf_t by_script = {0}, by_function = {0};
    CHECK(fn_step_build(cfg, &call, "i:1", &ev, fn_step_lead_hash("L", 1), 5000, 0, "in", 0,
                        &by_script) == FN_OK);
    CHECK(fn_step_build(cfg, &fcall, "i:1", &ev, fn_step_lead_hash("L", 1), 5000, 0, "in", 0,
                        &by_function) == FN_OK);
    char a[64] = "?", b[64] = "?";
    CHECK(resp_word(&by_script, 0, a, sizeof a) && resp_word(&by_function, 0, b, sizeof b));
    CHECK_STR(a, "EVALSHA");
    CHECK_STR(b, "FCALL");
    CHECK(resp_word(&by_function, 1, b, sizeof b));
    CHECK_STR(b, fn_lua_step_lib_name);
    CHECK(strncmp(fn_lua_step_lib_name, "funneld_step_", 13) == 0 &&
          strlen(fn_lua_step_lib_name) == 13 + 16);
    /* the library declares itself by that name and registers the function under it */
    char head[64];
    snprintf(head, sizeof head, "#!lua name=%s\n", fn_lua_step_lib_name);
    CHECK(strncmp(fn_lua_step_lib, head, strlen(head)) == 0);
    char reg[96];
    snprintf(reg, sizeof reg, "redis.register_function('%s', function(KEYS, ARGV)",
             fn_lua_step_lib_name);
    CHECK(strstr(fn_lua_step_lib, reg) != NULL);
    for (long i = 2; i < FN_STEP_WORDS(1); i++) {
        CHECK(resp_word(&by_script, i, a, sizeof a) && resp_word(&by_function, i, b, sizeof b));
        CHECK_STR(a, b);
    }
    fn_buf_free(&by_script);
    fn_buf_free(&by_function);
    fn_event_clear(&ev);
    fn_config_free(cfg);
}

/* FUNCTION LOAD's answers: loaded, or the same build's library already there, count; a Redis
 * without functions, an ACL refusal, another error or no reply leave the step on EVALSHA. */
static void test_lib_loaded(void)
{
    static const struct {
        int type;
        const char *str;
        bool loaded;
    } cases[] = {
        {REDIS_REPLY_STRING, "funneld_step_0123456789abcdef", true},
        {REDIS_REPLY_ERROR, "ERR Library 'funneld_step_0123456789abcdef' already exists", true},
        {REDIS_REPLY_ERROR, "ERR unknown command 'FUNCTION'", false},
        {REDIS_REPLY_ERROR,
         "NOPERM this user has no permissions to run the 'function|load' command", false},
        {REDIS_REPLY_ERROR, "ERR Error registering functions", false},
        {REDIS_REPLY_STATUS, "OK", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redisReply r = {
            .type = cases[i].type, .str = (char *)cases[i].str, .len = strlen(cases[i].str)};
        CHECK(fn_step_lib_loaded(&r) == cases[i].loaded);
    }
    CHECK(!fn_step_lib_loaded(NULL));
}

int main(void)
{
    test_layout_at_the_maximum();
    test_cluster_flag();
    test_call_forms();
    test_lib_loaded();
    return fn_test_result("test_step");
}
