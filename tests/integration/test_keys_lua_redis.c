/*
 * test_keys_lua_redis.c — the Lua scripts see the same key and field names as C: the probe
 * script the build writes from daemon/state/keys.def and step.h, embedded through the same
 * substitution as the scripts (each K.NAME replaced by its text), run by a real Redis, names
 * exactly the entries of fn_key_names with the same text and the step layout numbers of
 * include/funneld/step.h; no embedded script is left with a K.NAME.
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it).
 */
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/analytics.h"
#include "funneld/keys.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

static const char *lookup(const redisReply *r, const char *name)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->str;
    return NULL;
}

static void test_prelude_names_equal_c(redisContext *rc)
{
    /* {name, value as text, ...} */
    redisReply *r = redisCommand(rc, "EVAL %s 0", fn_lua_keys_src);
    CHECK(r && r->type == REDIS_REPLY_ARRAY);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "EVAL: %s\n", r && r->str ? r->str : "no reply");
        freeReplyObject(r);
        return;
    }
    for (size_t i = 0; i < fn_key_n_names; i++) {
        const char *lua = lookup(r, fn_key_names[i].name);
        if (!lua || strcmp(lua, fn_key_names[i].text) != 0)
            fprintf(stderr, "K.%s: C \"%s\", Lua %s\n", fn_key_names[i].name, fn_key_names[i].text,
                    lua ? lua : "(none)");
        CHECK(lua && strcmp(lua, fn_key_names[i].text) == 0);
    }
    static const struct {
        const char *name;
        long long value;
    } step[] = {
        {"STEP_KEYS", FN_STEP_KEYS},
        {"STEP_ARGV_FIXED", FN_STEP_ARGV_FIXED},
        {"STEP_ARGV_PER_FUNNEL", FN_STEP_ARGV_PER_FUNNEL},
        {"STEP_ARGV_TAIL", FN_STEP_ARGV_TAIL},
        {"STEP_ARG_NOW", FN_STEP_ARG_NOW},
        {"STEP_ARG_DEDUPE_TTL", FN_STEP_ARG_DEDUPE_TTL},
        {"STEP_ARG_LEAD_ID", FN_STEP_ARG_LEAD_ID},
        {"STEP_ARG_EVENT_ID", FN_STEP_ARG_EVENT_ID},
        {"STEP_ARG_TS", FN_STEP_ARG_TS},
        {"STEP_ARG_KIND", FN_STEP_ARG_KIND},
        {"STEP_ARG_CHANNEL", FN_STEP_ARG_CHANNEL},
        {"STEP_ARG_TYPE", FN_STEP_ARG_TYPE},
        {"STEP_ARG_CAMPAIGN", FN_STEP_ARG_CAMPAIGN},
        {"STEP_ARG_SOURCE", FN_STEP_ARG_SOURCE},
        {"STEP_ARG_VALUE", FN_STEP_ARG_VALUE},
        {"STEP_ARG_MARKETING", FN_STEP_ARG_MARKETING},
        {"STEP_ARG_TOKEN", FN_STEP_ARG_TOKEN},
        {"STEP_ARG_CLUSTER", FN_STEP_ARG_CLUSTER},
        {"STEP_ARG_NFUN", FN_STEP_ARG_NFUN},
        {"STEP_FARG_NAME", FN_STEP_FARG_NAME},
        {"STEP_FARG_STAGES", FN_STEP_FARG_STAGES},
        {"STEP_FARG_PLAN", FN_STEP_FARG_PLAN},
        {"STEP_FARG_TIMERS", FN_STEP_FARG_TIMERS},
        {"STEP_TAIL_CAPS", FN_STEP_TAIL_CAPS},
        {"STEP_TAIL_BOUND", FN_STEP_TAIL_BOUND},
        {"STEP_TAIL_BREAKDOWN", FN_STEP_TAIL_BREAKDOWN},
        {"STEP_TAIL_MARKETING", FN_STEP_TAIL_MARKETING},
        {"STEP_CREDIT_CONV_UNITS", FN_STEP_CREDIT_CONV_UNITS},
        {"STEP_WEEK_MS", FN_STEP_WEEK_MS},
        {"STEP_WEEK_OFFSET_MS", FN_STEP_WEEK_OFFSET_MS},
        {"STEP_CREDIT_MONEY_UNITS", FN_STEP_CREDIT_MONEY_UNITS},
        {"STEP_MODEL_MARKOV", FN_STEP_MODEL_MARKOV},
        {"STEP_BD_VALUE_MAX", FN_STEP_BD_VALUE_MAX},
        {"STEP_SEEN_UNIT_MS", FN_STEP_SEEN_UNIT_MS},
        {"STEP_SEEN_LEGACY_MIN", FN_STEP_SEEN_LEGACY_MIN},
        {"STEP_PRUNE_ONE_IN", FN_STEP_PRUNE_ONE_IN},
        {"STEP_PRUNE_MAX", FN_STEP_PRUNE_MAX},
    };
    size_t n_step = sizeof step / sizeof *step;
    for (size_t i = 0; i < n_step; i++) {
        const char *lua = lookup(r, step[i].name);
        CHECK(lua && strtoll(lua, NULL, 10) == step[i].value);
    }
    /* no name in the scripts that C does not have */
    CHECK_INT(r->elements / 2, fn_key_n_names + n_step);
    freeReplyObject(r);
}

/* "K." then a capital: a name the build should have written in. */
static bool has_k_name(const char *src)
{
    for (const char *p = strstr(src, "K."); p; p = strstr(p + 1, "K."))
        if (p[2] >= 'A' && p[2] <= 'Z')
            return true;
    return false;
}

static void test_scripts_have_no_names_left(void)
{
    const char *scripts[] = {fn_lua_step_src, fn_lua_fire_src, fn_lua_read_src,
                             fn_lua_announced_src, fn_lua_keys_src};
    for (size_t i = 0; i < sizeof scripts / sizeof *scripts; i++)
        CHECK(!has_k_name(scripts[i]));
    CHECK(has_k_name("return K.F_ID"));
}

int main(void)
{
    redisContext *rc = fn_test_redis_connect();
    if (!rc || rc->err) {
        fprintf(stderr, "redis: %s\n", rc ? rc->errstr : "out of memory");
        return 1;
    }
    test_prelude_names_equal_c(rc);
    test_scripts_have_no_names_left();
    redisFree(rc);
    return fn_test_result("test_keys_lua_redis");
}
