/*
 * fn_test_redis.h — what the integration tests share: a connection to the Redis the ctest
 * services fixture started, and a config whose key prefix is private to this run.
 */
#ifndef FN_TEST_REDIS_H
#define FN_TEST_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/step.h"

/* Connects to FUNNELD_REDIS_URL; exits when it is not set. */
static inline redisContext *fn_test_redis_connect(void)
{
    const char *url = getenv("FUNNELD_REDIS_URL");
    if (!url || strncmp(url, "redis://", 8) != 0) {
        fprintf(stderr, "FUNNELD_REDIS_URL is not set (run under the ctest services fixture)\n");
        exit(1);
    }
    char host[128] = "127.0.0.1";
    int port = 6379;
    sscanf(url + 8, "%127[^:/]:%d", host, &port);
    return redisConnect(host, port);
}

/* Loads config text whose "PREFIX" is replaced by tag + pid (written to prefix, 32 bytes).
 * Returns NULL after printing the error. */
static inline fn_config_t *fn_test_config(const char *text, const char *tag, char *prefix)
{
    snprintf(prefix, 32, "%s%d", tag, (int)getpid());
    char doc[8192], err[256];
    const char *at = strstr(text, "PREFIX");
    if (!at)
        return NULL;
    snprintf(doc, sizeof doc, "%.*s%s%s", (int)(at - text), text, prefix, at + 6);
    json_error_t jerr;
    json_t *root = json_loads(doc, 0, &jerr);
    fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    if (!cfg)
        fprintf(stderr, "config: %s\n", root ? err : jerr.text);
    json_decref(root);
    return cfg;
}

/* The start of an integration test: config text with a prefix private to this run (tag,
 * fn_test_config) and a connection to the fixture's Redis. false after printing why. */
static inline bool fn_test_redis_start(const char *config, const char *tag, char *prefix,
                                       fn_config_t **cfg, redisContext **rc)
{
    *cfg = fn_test_config(config, tag, prefix);
    if (!*cfg)
        return false;
    *rc = fn_test_redis_connect();
    if (!*rc || (*rc)->err) {
        fprintf(stderr, "cannot connect to Redis\n");
        return false;
    }
    return true;
}

/* Loads a script (SCRIPT LOAD src) and writes its digest into sha; false after printing why. */
static inline bool fn_test_script_load(redisContext *rc, const char *src, char sha[41])
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", src);
    bool ok = r && r->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(sha, 41, "%s", r->str);
    else
        fprintf(stderr, "SCRIPT LOAD failed: %s\n", r ? r->str : rc->errstr);
    freeReplyObject(r);
    return ok;
}

/* How this run calls the step (fn_step_call_t): EVALSHA of the script whose digest is sha,
 * or, when FUNNELD_TEST_STEP_CALL is "fcall" (ctest registers the tests that step a second
 * time so, as ".fcall"), FCALL of the step library, loaded here as the daemon loads it;
 * false after printing why. */
static inline bool fn_test_step_call(redisContext *rc, const char *sha, fn_step_call_t *call)
{
    const char *how = getenv("FUNNELD_TEST_STEP_CALL");
    *call = (fn_step_call_t){"EVALSHA", sha};
    if (!how || strcmp(how, "fcall") != 0)
        return true;
    redisReply *r = redisCommand(rc, "FUNCTION LOAD %s", fn_lua_step_lib);
    bool ok = fn_step_lib_loaded(r);
    if (ok)
        *call = (fn_step_call_t){"FCALL", fn_lua_step_lib_name};
    else
        fprintf(stderr, "FUNCTION LOAD failed: %s\n", r ? r->str : rc->errstr);
    freeReplyObject(r);
    return ok;
}

/* Sums a counter over every shard's stats hash of the run's prefix, as analytics and
 * funnelctl do. */
static inline long long fn_test_stats_total(redisContext *rc, const fn_config_t *cfg,
                                            const char *prefix, const char *field)
{
    long long sum = 0;
    for (int s = 0; s < cfg->redis_shards; s++) {
        redisReply *r = redisCommand(rc, "HGET %s:{%d}:stats %s", prefix, s, field);
        if (r && r->type == REDIS_REPLY_STRING)
            sum += atoll(r->str);
        freeReplyObject(r);
    }
    return sum;
}

/* Rewrites lead_id's position in funnel into the six fields written before "|p"
 * (daemon/state/position.lua), as a lead stored by an earlier version holds it. False when
 * its hash or position cannot be read. */
static inline bool fn_test_to_old_layout(redisContext *rc, const fn_config_t *cfg,
                                         const char *lead_id, const char *funnel)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, fn_step_lead_hash(lead_id, strlen(lead_id)), &k);
    redisReply *h = redisCommand(rc, "HGETALL %s", k.lead);
    fn_lead_pos_t pos;
    bool ok = h && h->type == REDIS_REPLY_ARRAY && fn_lead_pos_read(h, funnel, &pos);
    freeReplyObject(h);
    if (!ok || !pos.has_touches)
        return ok;
    struct {
        const char *suffix;
        bool has;
        long long v;
    } old[] = {{FN_FF_TOUCHES, true, pos.touches},
               {FN_FF_ACTIVE, true, pos.active_at},
               {FN_FF_STAGE, pos.has_stage, pos.stage},
               {FN_FF_ENTERED, pos.has_entered, pos.entered_at},
               {FN_FF_BEGAN, pos.has_began, pos.began_at}};
    char f[FN_NAME_MAX + 16];
    fn_field_funnel(f, sizeof f, funnel, FN_FF_POS);
    freeReplyObject(redisCommand(rc, "HDEL %s %s", k.lead, f));
    for (size_t i = 0; i < sizeof old / sizeof *old; i++) {
        if (!old[i].has || (i >= 2 && !pos.status))
            continue;
        fn_field_funnel(f, sizeof f, funnel, old[i].suffix);
        freeReplyObject(redisCommand(rc, "HSET %s %s %lld", k.lead, f, old[i].v));
    }
    if (pos.status) {
        fn_field_funnel(f, sizeof f, funnel, FN_FF_STATUS);
        freeReplyObject(redisCommand(rc, "HSET %s %s %b", k.lead, f, &pos.status, (size_t)1));
    }
    return true;
}

static inline int fn_test_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Everything under prefix (keys, types, contents; not expiries) as one string in which
 * prefix reads "P" (the caller frees): hashes, zsets and sets by sorted members (two runs
 * may have written them in other orders), strings by value, other types by DUMP. */
static inline char *fn_test_redis_state(redisContext *rc, const char *prefix)
{
    redisReply *keys = redisCommand(rc, "KEYS %s:*", prefix);
    fn_buf_t b = {0};
    char **names = calloc(keys->elements + 1, sizeof *names);
    for (size_t i = 0; i < keys->elements; i++)
        names[i] = keys->element[i]->str;
    qsort(names, keys->elements, sizeof *names, fn_test_cmp_str);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *t = redisCommand(rc, "TYPE %s", names[i]);
        redisReply *v = NULL;
        if (strcmp(t->str, "hash") == 0)
            v = redisCommand(rc, "HGETALL %s", names[i]);
        else if (strcmp(t->str, "zset") == 0)
            v = redisCommand(rc, "ZRANGE %s 0 -1 WITHSCORES", names[i]);
        else if (strcmp(t->str, "set") == 0)
            v = redisCommand(rc, "SMEMBERS %s", names[i]);
        else if (strcmp(t->str, "string") == 0)
            v = redisCommand(rc, "GET %s", names[i]);
        else
            v = redisCommand(rc, "DUMP %s", names[i]);
        /* a hash's fields in order of name: the two sets may have written them in another */
        char **items = NULL;
        size_t n = v && v->type == REDIS_REPLY_ARRAY ? v->elements : 0;
        if (n) {
            items = calloc(n, sizeof *items);
            bool pairs = strcmp(t->str, "hash") == 0 || strcmp(t->str, "zset") == 0;
            for (size_t j = 0; j < n; j += pairs ? 2 : 1) {
                fn_buf_t it = {0};
                fn_buf_append(&it, v->element[j]->str, v->element[j]->len);
                if (pairs) {
                    fn_buf_append(&it, "=", 1);
                    fn_buf_append(&it, v->element[j + 1]->str, v->element[j + 1]->len);
                }
                items[j] = it.data;
            }
            size_t m = 0;
            for (size_t j = 0; j < n; j++)
                if (items[j])
                    items[m++] = items[j];
            qsort(items, m, sizeof *items, fn_test_cmp_str);
            n = m;
        }
        fn_buf_appendf(&b, "%s %s", names[i] + strlen(prefix), t->str);
        for (size_t j = 0; j < n; j++) {
            fn_buf_appendf(&b, " %s", items[j]);
            free(items[j]);
        }
        if (v && v->type == REDIS_REPLY_STRING)
            fn_buf_append(&b, v->str, v->len);
        fn_buf_append(&b, "\n", 1);
        free(items);
        freeReplyObject(t);
        freeReplyObject(v);
    }
    free(names);
    freeReplyObject(keys);
    /* keys named inside values (outbox entries) */
    char *s = b.data ? b.data : strdup("");
    for (char *at = strstr(s, prefix); at; at = strstr(at, prefix)) {
        at[0] = 'P';
        memmove(at + 1, at + strlen(prefix), strlen(at + strlen(prefix)) + 1);
    }
    return s;
}

#endif
