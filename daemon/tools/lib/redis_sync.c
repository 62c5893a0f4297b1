/*
 * redis_sync.c — the tools' blocking Redis connection (redis_sync.h).
 */
#include <stdio.h>

#include "funneld/common.h"
#include "redis_sync.h"

/* Sends one setup command; prints why and returns FN_ERR when it is refused. */
static int setup(redisContext *rc, const char *tool, const char *what, redisReply *r)
{
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        fprintf(stderr, "%s: %s: %s\n", tool, what, r ? r->str : rc->errstr);
    if (r)
        freeReplyObject(r);
    return ok ? FN_OK : FN_ERR;
}

redisContext *fn_redis_sync_connect(const char *url, const char *tool)
{
    char host[256], user[128], pass[256];
    int port, db;
    if (fn_redis_url_parse(url, host, sizeof host, &port, user, sizeof user, pass, sizeof pass,
                           &db)) {
        /* The url may hold a password: it is not printed. */
        fprintf(stderr, "%s: redis.url: cannot parse\n", tool);
        return NULL;
    }
    redisContext *rc = redisConnect(host, port);
    if (!rc || rc->err) {
        fprintf(stderr, "%s: cannot connect to Redis at %s:%d: %s\n", tool, host, port,
                rc ? rc->errstr : "out of memory");
        goto fail;
    }
    if (pass[0] && user[0] && setup(rc, tool, "AUTH", redisCommand(rc, "AUTH %s %s", user, pass)))
        goto fail;
    if (pass[0] && !user[0] && setup(rc, tool, "AUTH", redisCommand(rc, "AUTH %s", pass)))
        goto fail;
    if (db && setup(rc, tool, "SELECT", redisCommand(rc, "SELECT %d", db)))
        goto fail;
    return rc;
fail:
    if (rc)
        redisFree(rc);
    return NULL;
}
