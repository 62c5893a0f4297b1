/*
 * redis_sync.c — the tools' blocking Redis connection (redis_sync.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "funneld/cluster.h"
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

/* A connection to host:port with the URL's credentials and database; a refused connection is
 * printed only when say is set (a caller that will try again says it last). */
static redisContext *connect_node(const char *host, int port, const char *user, const char *pass,
                                  int db, const char *tool, int say)
{
    redisContext *rc = redisConnect(host, port);
    if (!rc || rc->err) {
        if (say)
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
    return connect_node(host, port, user, pass, db, tool, 1);
}

/* How long a tool waits for a failed-over master's replacement to appear in the map. */
enum { MAP_TRIES = 20, MAP_PAUSE_NS = 250 * 1000 * 1000 };

struct fn_redis_sync {
    const char *tool;
    int cluster;
    char host[256]; /* the node rs->one is connected to */
    char user[128], pass[256];
    redisContext *one;      /* one server; on a cluster the node the map was read from */
    fn_cluster_map_t *map;  /* cluster only */
    redisContext **by_node; /* per node of map, opened on first use */
};

/* Reads the slot map through rs->one, dropping any map and node connections before it;
 * FN_ERR (printed why) when it cannot. */
static int read_map(fn_redis_sync_t *rs)
{
    const char *host = rs->host;
    for (size_t i = 0; rs->map && i < rs->map->n_nodes; i++)
        if (rs->by_node[i])
            redisFree(rs->by_node[i]);
    free(rs->by_node);
    rs->by_node = NULL;
    fn_cluster_map_free(rs->map);
    rs->map = NULL;

    redisReply *r = redisCommand(rs->one, "CLUSTER SLOTS");
    char err[200];
    if (r && r->type != REDIS_REPLY_ERROR)
        rs->map = fn_cluster_map_build(r, host, err, sizeof err);
    else
        snprintf(err, sizeof err, "%s", r ? r->str : rs->one->errstr);
    freeReplyObject(r);
    if (!rs->map) {
        fprintf(stderr, "%s: CLUSTER SLOTS from %s: %s\n", rs->tool, host, err);
        return FN_ERR;
    }
    if (!(rs->by_node = calloc(rs->map->n_nodes ? rs->map->n_nodes : 1, sizeof *rs->by_node))) {
        fprintf(stderr, "%s: out of memory\n", rs->tool);
        return FN_ERR;
    }
    return FN_OK;
}

fn_redis_sync_t *fn_redis_sync_open(const fn_config_t *cfg, const char *tool)
{
    fn_redis_sync_t *rs = calloc(1, sizeof *rs);
    char host[256];
    int port, db;
    if (!rs) {
        fprintf(stderr, "%s: out of memory\n", tool);
        return NULL;
    }
    rs->tool = tool;
    if (fn_redis_url_parse(cfg->redis_url, host, sizeof host, &port, rs->user, sizeof rs->user,
                           rs->pass, sizeof rs->pass, &db)) {
        fprintf(stderr, "%s: redis.url: cannot parse\n", tool);
        goto fail;
    }
    /* a cluster: the URL's node, else each seed in turn, until one answers (the last one
     * tried says why it did not) */
    size_t last = cfg->redis_cluster ? cfg->n_redis_seeds : 0;
    rs->cluster = cfg->redis_cluster;
    for (size_t i = 0; !rs->one && i <= last; i++) {
        if (i > 0 && fn_redis_seed_parse(cfg->redis_seeds[i - 1], host, sizeof host, &port))
            continue;
        rs->one = connect_node(host, port, rs->user, rs->pass, db, tool, i == last);
    }
    snprintf(rs->host, sizeof rs->host, "%s", host);
    if (!rs->one || (cfg->redis_cluster && read_map(rs)))
        goto fail;
    return rs;
fail:
    fn_redis_sync_close(rs);
    return NULL;
}

redisContext *fn_redis_sync_route(void *p, const char *key)
{
    fn_redis_sync_t *rs = p;
    if (!rs->cluster)
        return rs->one;
    if (!rs->map)
        return NULL; /* a re-read failed; it said why */
    unsigned slot = fn_cluster_keyslot(key, strlen(key));
    /* A master that refuses may have just failed over, and the node the map came from may not
     * have heard yet (gossip takes a moment): re-read the map a few times before giving up. */
    for (int tries = 1;; tries++) {
        int i = fn_cluster_map_master(rs->map, slot);
        if (i < 0) {
            fprintf(stderr, "%s: slot %u has no master in the cluster's map\n", rs->tool, slot);
            return NULL;
        }
        if (!rs->by_node[i])
            rs->by_node[i] = connect_node(rs->map->nodes[i].host, rs->map->nodes[i].port, rs->user,
                                          rs->pass, 0, rs->tool, tries == MAP_TRIES);
        if (rs->by_node[i] || tries == MAP_TRIES)
            return rs->by_node[i];
        nanosleep(&(struct timespec){.tv_nsec = MAP_PAUSE_NS}, NULL);
        if (read_map(rs))
            return NULL;
    }
}

void fn_redis_sync_close(fn_redis_sync_t *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; rs->map && rs->by_node && i < rs->map->n_nodes; i++)
        if (rs->by_node[i])
            redisFree(rs->by_node[i]);
    free(rs->by_node);
    fn_cluster_map_free(rs->map);
    if (rs->one)
        redisFree(rs->one);
    free(rs);
}
