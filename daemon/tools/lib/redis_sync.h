/*
 * redis_sync.h — a blocking Redis connection for the command-line tools (funnelctl and the
 * benchmark's drivers). The daemon itself never blocks on Redis; it uses store.h.
 */
#ifndef FUNNELD_REDIS_SYNC_H
#define FUNNELD_REDIS_SYNC_H

#include <hiredis/hiredis.h>

#include "funneld/config.h"

/* Connects to the Redis that url names (redis://[[user]:password@]host[:port][/db]) and sends
 * AUTH and SELECT as it asks. On failure prints "<tool>: <what failed>: <why>" on stderr and
 * returns NULL. The caller owns the context and frees it with redisFree(). */
redisContext *fn_redis_sync_connect(const char *url, const char *tool);

/* The Redis of a configuration: one server, or on a Redis Cluster (redis.cluster) one
 * connection per master, opened when a key of its slots is first asked for, from the slot
 * map read from redis.url's node or a seed. */
typedef struct fn_redis_sync fn_redis_sync_t;

/* Connects as cfg says (cfg must outlive the result). On failure prints why, as
 * fn_redis_sync_connect, and returns NULL. Closed with fn_redis_sync_close. */
fn_redis_sync_t *fn_redis_sync_open(const fn_config_t *cfg, const char *tool);
/* The connection of the node serving key (rs is an fn_redis_sync_t *; the signature is
 * fn_redis_route_fn's), or NULL (printed why). Owned by rs. */
redisContext *fn_redis_sync_route(void *rs, const char *key);
/* Closes every connection and frees rs. NULL is fine. */
void fn_redis_sync_close(fn_redis_sync_t *rs);

#endif
