/*
 * test_announced_redis.c — announced.lua on a real Redis (issue 16 item 11): Kafka's
 * acknowledgement of a bottleneck event marks the stage's decision announced only while that
 * decision is still the stored one. A late acknowledgement (of a raise, or of a clearing)
 * never overwrites a newer decision, and never brings a deleted one back.
 *
 * Needs FUNNELD_REDIS_URL (the ctest fixture starts redis-server and exports it).
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <unistd.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/analytics.h"

int main(void)
{
    redisContext *rc = fn_test_redis_connect();
    if (!rc || rc->err) {
        fprintf(stderr, "redis: %s\n", rc ? rc->errstr : "out of memory");
        return 1;
    }
    char key[64];
    snprintf(key, sizeof key, "ann%d:bn:f", (int)getpid());
    static const struct {
        const char *stored;    /* the stage's value before the acknowledgement, NULL: none */
        const char *was, *now; /* what the acknowledged event recorded, and its announced form */
        long long applied;
        const char *after; /* NULL: no field */
        const char *why;
    } cases[] = {
        {"100|p", "100|p", "100|a", 1, "100|a", "the raise it announced: marked announced"},
        {"100|c", "100|c", "", 1, NULL, "the clearing it announced: the field goes"},
        {"200|c", "100|p", "100|a", 0, "200|c", "late ack of a raise after a newer clearing"},
        {"300|p", "200|c", "", 0, "300|p", "late ack of a clearing after a newer raise"},
        {"300|a", "100|p", "100|a", 0, "300|a", "late ack after a newer raise was announced"},
        {NULL, "100|c", "", 0, NULL, "late ack of a clearing already announced: nothing"},
        {NULL, "100|p", "100|a", 0, NULL, "no decision stored: a late ack creates none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        freeReplyObject(redisCommand(rc, "DEL %s", key));
        freeReplyObject(redisCommand(rc, "HSET %s 7 keep", key)); /* another stage */
        if (cases[i].stored)
            freeReplyObject(redisCommand(rc, "HSET %s 1 %s", key, cases[i].stored));
        redisReply *r = redisCommand(rc, "EVAL %s 1 %s 1 %s %s", fn_lua_announced_src, key,
                                     cases[i].was, cases[i].now);
        CHECK(r && r->type == REDIS_REPLY_INTEGER);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer != cases[i].applied)
            fprintf(stderr, "case %zu (%s): applied %lld\n", i, cases[i].why, r->integer);
        CHECK_INT(r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1, cases[i].applied);
        freeReplyObject(r);
        r = redisCommand(rc, "HGET %s 1", key);
        const char *got = r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
        if (cases[i].after)
            CHECK_STR(got, cases[i].after);
        else
            CHECK(got == NULL);
        freeReplyObject(r);
        r = redisCommand(rc, "HGET %s 7", key);
        CHECK_STR(r && r->type == REDIS_REPLY_STRING ? r->str : NULL, "keep");
        freeReplyObject(r);
    }
    freeReplyObject(redisCommand(rc, "DEL %s", key));
    redisFree(rc);
    return fn_test_result("test_announced_redis");
}
