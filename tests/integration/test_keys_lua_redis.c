/*
 * test_keys_lua_redis.c — the Lua scripts see the same key and field names as C: the prelude
 * generated from daemon/state/keys.def (keys.lua, table K), run by a real Redis, names
 * exactly the entries of fn_key_names with the same text, and the step layout counts of
 * include/funneld/step.h; every embedded script starts with that prelude.
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/analytics.h"
#include "funneld/keys.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

/* K's entries as {name, text, ...}, numbers as decimal text. */
static const char dump[] =
    "\nlocal r = {}\n"
    "for name, v in pairs(K) do r[#r + 1] = name; r[#r + 1] = tostring(v) end\n"
    "return r\n";

static const char *lookup(const redisReply *r, const char *name)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->str;
    return NULL;
}

static void test_prelude_names_equal_c(redisContext *rc)
{
    size_t n = strlen(fn_lua_keys_src);
    char *src = malloc(n + sizeof dump);
    memcpy(src, fn_lua_keys_src, n);
    memcpy(src + n, dump, sizeof dump);
    redisReply *r = redisCommand(rc, "EVAL %s 0", src);
    free(src);
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
    };
    size_t n_step = sizeof step / sizeof *step;
    for (size_t i = 0; i < n_step; i++) {
        const char *lua = lookup(r, step[i].name);
        CHECK(lua && strtoll(lua, NULL, 10) == step[i].value);
    }
    /* nothing in K that C does not have */
    CHECK_INT(r->elements / 2, fn_key_n_names + n_step);
    freeReplyObject(r);
}

static void test_scripts_start_with_the_prelude(void)
{
    const char *scripts[] = {fn_lua_step_src, fn_lua_fire_src, fn_lua_read_src};
    size_t n = strlen(fn_lua_keys_src);
    for (size_t i = 0; i < sizeof scripts / sizeof *scripts; i++)
        CHECK(strncmp(scripts[i], fn_lua_keys_src, n) == 0);
}

int main(void)
{
    redisContext *rc = fn_test_redis_connect();
    if (!rc || rc->err) {
        fprintf(stderr, "redis: %s\n", rc ? rc->errstr : "out of memory");
        return 1;
    }
    test_prelude_names_equal_c(rc);
    test_scripts_start_with_the_prelude();
    redisFree(rc);
    return fn_test_result("test_keys_lua_redis");
}
