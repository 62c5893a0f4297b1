/*
 * redis_sync.h — a blocking Redis connection for the command-line tools (funnelctl and the
 * benchmark's drivers). The daemon itself never blocks on Redis; it uses store.h.
 */
#ifndef FUNNELD_REDIS_SYNC_H
#define FUNNELD_REDIS_SYNC_H

#include <hiredis/hiredis.h>

/* Connects to the Redis that url names (redis://[user:password@]host[:port][/db]) and sends
 * AUTH and SELECT as it asks. On failure prints "<tool>: <what failed>: <why>" on stderr and
 * returns NULL. The caller owns the context and frees it with redisFree(). */
redisContext *fn_redis_sync_connect(const char *url, const char *tool);

#endif
