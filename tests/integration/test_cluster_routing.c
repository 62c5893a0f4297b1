/*
 * test_cluster_routing.c — cluster.h against a real Redis Cluster (three masters, one
 * replica each; tests/integration/with-cluster.sh starts it): the map built from CLUSTER
 * SLOTS covers every slot with a master and lists every node, and each node's own reply
 * gives the same routing; for several hundred keys (funneld's "<prefix>:{<shard>}:..." keys
 * of shards 0..63 as step.c builds them, hash-tag corner cases, random bytes) our slot equals
 * the server's CLUSTER KEYSLOT, the master our map names answers a GET without a redirect,
 * and every other master answers MOVED naming that slot and that master as
 * fn_cluster_classify reads it; and one slot set migrating answers ASK that parses to the
 * importing node, which serves the key after ASKING.
 *
 * Needs FUNNELD_REDIS_CLUSTER_URL and FUNNELD_REDIS_CLUSTER_NODES (with-cluster.sh). Writes
 * nothing but the migration state of one slot, which it puts back.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fn_test.h"
#include "funneld/cluster.h"
#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/step.h"

static const char *CONFIG = "{\"redis\":{\"key_prefix\":\"itc\",\"shards\":64},\"funnels\":["
                            "{\"name\":\"f\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":"
                            "\"page_view\"}]}]}]}";

static fn_cluster_map_t *map;
static char seed_host[FN_CLUSTER_HOST_MAX];
static redisContext *conns[FN_CLUSTER_MAX_NODES];

/* One connection per node of the map, made when first needed (exits when it cannot be). */
static redisContext *conn(int node)
{
    if (!conns[node]) {
        const fn_cluster_node_t *n = &map->nodes[node];
        struct timeval tv = {5, 0};
        conns[node] = redisConnectWithTimeout(n->host, n->port, tv);
        if (!conns[node] || conns[node]->err) {
            fprintf(stderr, "connect %s:%d: %s\n", n->host, n->port,
                    conns[node] ? conns[node]->errstr : "out of memory");
            exit(1);
        }
    }
    return conns[node];
}

static fn_cluster_map_t *map_from(redisContext *rc, const char *host)
{
    char err[256];
    redisReply *r = redisCommand(rc, "CLUSTER SLOTS");
    fn_cluster_map_t *m = fn_cluster_map_build(r, host, err, sizeof err);
    if (!m)
        fprintf(stderr, "map: %s\n", err);
    freeReplyObject(r);
    return m;
}

static void test_map(void)
{
    CHECK_INT(map->uncovered, 0);
    CHECK_INT(map->n_masters, 3);
    CHECK_INT(map->n_nodes, 6);
    unsigned slots = 0;
    for (size_t i = 0; i < map->n_nodes; i++) {
        const fn_cluster_node_t *n = &map->nodes[i];
        if (n->master < 0) {
            slots += n->slots;
            int replicas = 0;
            for (size_t k = 0; k < map->n_nodes; k++)
                replicas += map->nodes[k].master == (int)i;
            CHECK_INT(replicas, 1);
        }
        CHECK_INT(strlen(n->id), 40);
    }
    CHECK_INT(slots, FN_CLUSTER_SLOTS);
    for (unsigned s = 0; s < FN_CLUSTER_SLOTS; s++)
        if (fn_cluster_map_master(map, s) < 0) {
            CHECK(!"every slot has a master");
            break;
        }

    /* every node the script started is in the map */
    const char *nodes = getenv("FUNNELD_REDIS_CLUSTER_NODES");
    char *list = strdup(nodes ? nodes : ""), *save = NULL;
    int listed = 0;
    for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(a, ':');
        CHECK(colon != NULL);
        if (!colon)
            continue;
        *colon = '\0';
        listed++;
        if (fn_cluster_map_find(map, a, atoi(colon + 1)) < 0)
            fprintf(stderr, "node %s:%s is not in the map\n", a, colon + 1);
        CHECK(fn_cluster_map_find(map, a, atoi(colon + 1)) >= 0);
    }
    free(list);
    CHECK_INT(listed, 6);

    /* every node, replicas included, gives the same routing */
    for (size_t i = 0; i < map->n_nodes; i++) {
        fn_cluster_map_t *other = map_from(conn((int)i), map->nodes[i].host);
        CHECK(other != NULL);
        if (!other)
            continue;
        bool same = other->n_masters == map->n_masters;
        for (unsigned s = 0; same && s < FN_CLUSTER_SLOTS; s++) {
            const fn_cluster_node_t *a = &map->nodes[map->slot[s]];
            const fn_cluster_node_t *b = &other->nodes[other->slot[s]];
            same = a->port == b->port && strcmp(a->host, b->host) == 0;
        }
        CHECK(same);
        fn_cluster_map_free(other);
    }
}

/* One key: our slot is the server's, its master serves it, every other master redirects. */
static int check_key(const char *key, size_t len)
{
    int bad = 0;
    unsigned slot = fn_cluster_keyslot(key, len);
    int owner = fn_cluster_map_master(map, slot);
    redisReply *r = redisCommand(conn(owner), "CLUSTER KEYSLOT %b", key, len);
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != (long long)slot) {
        fprintf(stderr, "slot of \"%.*s\": ours %u, server's %lld\n", (int)len, key, slot,
                r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1);
        bad++;
    }
    freeReplyObject(r);
    for (size_t i = 0; i < map->n_nodes; i++) {
        if (map->nodes[i].master >= 0)
            continue;
        r = redisCommand(conn((int)i), "GET %b", key, len);
        if (!r) {
            fprintf(stderr, "GET on %s:%d: %s\n", map->nodes[i].host, map->nodes[i].port,
                    conn((int)i)->errstr);
            exit(1);
        }
        if ((int)i == owner) {
            if (r->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "GET \"%.*s\" on its master: %s\n", (int)len, key, r->str);
                bad++;
            }
        } else {
            fn_cluster_redirect_t to = {0};
            fn_cluster_reply_t k =
                r->type == REDIS_REPLY_ERROR
                    ? fn_cluster_classify(r->str, (size_t)r->len, map->nodes[i].host, &to)
                    : FN_CLUSTER_REPLY_OTHER;
            if (k != FN_CLUSTER_MOVED || to.slot != slot ||
                fn_cluster_map_find(map, to.host, to.port) != owner) {
                fprintf(stderr, "GET \"%.*s\" on another master: %s\n", (int)len, key,
                        r->type == REDIS_REPLY_ERROR ? r->str : "(no error)");
                bad++;
            }
        }
        freeReplyObject(r);
    }
    return bad;
}

static void test_keys(void)
{
    int keys = 0, bad = 0;
    static const char *fixed[] = {"foo",
                                  "{user1000}.following",
                                  "{}foo",
                                  "foo{}{bar}",
                                  "foo{{bar}}zap",
                                  "fn:{12}:lead:abc",
                                  "{",
                                  "}",
                                  "{}",
                                  "{{}}",
                                  "a{b}c{d}",
                                  "fn:epoch",
                                  "fn:bn:b2b",
                                  "fn:eval:b2b:1:s"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++, keys++)
        bad += check_key(fixed[i], strlen(fixed[i]));

    /* funneld's own keys, as step.c builds them, for a lead in each of the 64 shards */
    char err[256];
    json_error_t jerr;
    json_t *root = json_loads(CONFIG, 0, &jerr);
    fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    json_decref(root);
    CHECK(cfg != NULL);
    if (cfg) {
        bool done[64] = {false};
        int left = 64;
        for (int n = 0; left > 0 && n < 100000; n++) {
            char id[32];
            int il = snprintf(id, sizeof id, "lead-%d", n);
            fn_hash128_t h = fn_step_lead_hash(id, (size_t)il);
            fn_lead_keys_t k;
            fn_step_keys(cfg, h, &k);
            if (done[k.shard])
                continue;
            done[k.shard] = true;
            left--;
            char due[160];
            fn_step_due_key(cfg, k.shard, "events", 3, due, sizeof due);
            const char *ks[] = {k.lead, k.seen, k.pending, k.stats, due};
            unsigned slot = fn_cluster_keyslot(k.lead, strlen(k.lead));
            for (size_t i = 0; i < 5; i++, keys++) {
                CHECK_INT(fn_cluster_keyslot(ks[i], strlen(ks[i])), slot); /* one slot a step */
                bad += check_key(ks[i], strlen(ks[i]));
            }
        }
        CHECK_INT(left, 0);
        fn_config_free(cfg);
    }

    /* random bytes, braces and NULs more often than chance would have them */
    fn_test_rng_t g = {0xc1a55e7ULL};
    static const char alphabet[] = "{}{}ab:\0\xff";
    for (int n = 0; n < 150; n++, keys++) {
        char key[24];
        size_t len = 1 + fn_test_rnd(&g) % sizeof key;
        for (size_t i = 0; i < len; i++)
            key[i] = alphabet[fn_test_rnd(&g) % (sizeof alphabet - 1)];
        bad += check_key(key, len);
    }
    CHECK_INT(bad, 0);
    CHECK(keys >= 400);
    printf("%d keys checked on %zu masters\n", keys, map->n_masters);
}

/* A slot set migrating from its master to another: the master answers ASK for a key it does
 * not hold, naming the importing node, which serves it after ASKING. Put back in any case. */
static void test_ask(void)
{
    const char *key = "itc:{ask}:probe";
    unsigned slot = fn_cluster_keyslot(key, strlen(key));
    int from = fn_cluster_map_master(map, slot), to = -1;
    for (size_t i = 0; i < map->n_nodes && to < 0; i++)
        if (map->nodes[i].master < 0 && (int)i != from)
            to = (int)i;
    CHECK(to >= 0);
    if (to < 0)
        return;
    redisReply *r1 =
        redisCommand(conn(to), "CLUSTER SETSLOT %u IMPORTING %s", slot, map->nodes[from].id);
    redisReply *r2 =
        redisCommand(conn(from), "CLUSTER SETSLOT %u MIGRATING %s", slot, map->nodes[to].id);
    CHECK(r1 && r1->type == REDIS_REPLY_STATUS);
    CHECK(r2 && r2->type == REDIS_REPLY_STATUS);
    freeReplyObject(r1);
    freeReplyObject(r2);

    redisReply *r = redisCommand(conn(from), "GET %s", key);
    fn_cluster_redirect_t dest = {0};
    CHECK(r && r->type == REDIS_REPLY_ERROR);
    if (r && r->type == REDIS_REPLY_ERROR) {
        CHECK_INT(fn_cluster_classify(r->str, (size_t)r->len, map->nodes[from].host, &dest),
                  FN_CLUSTER_ASK);
        CHECK_INT(dest.slot, slot);
        CHECK_INT(fn_cluster_map_find(map, dest.host, dest.port), to);
    }
    freeReplyObject(r);
    /* without ASKING the importing node sends us back; with it, it serves the key */
    r = redisCommand(conn(to), "GET %s", key);
    CHECK(r && r->type == REDIS_REPLY_ERROR &&
          fn_cluster_classify(r->str, (size_t)r->len, NULL, NULL) == FN_CLUSTER_MOVED);
    freeReplyObject(r);
    redisAppendCommand(conn(to), "ASKING");
    redisAppendCommand(conn(to), "GET %s", key);
    redisReply *a = NULL, *g = NULL;
    CHECK(redisGetReply(conn(to), (void **)&a) == REDIS_OK);
    CHECK(redisGetReply(conn(to), (void **)&g) == REDIS_OK);
    CHECK(a && a->type == REDIS_REPLY_STATUS);
    CHECK(g && g->type == REDIS_REPLY_NIL);
    freeReplyObject(a);
    freeReplyObject(g);

    r1 = redisCommand(conn(from), "CLUSTER SETSLOT %u STABLE", slot);
    r2 = redisCommand(conn(to), "CLUSTER SETSLOT %u STABLE", slot);
    CHECK(r1 && r1->type == REDIS_REPLY_STATUS);
    CHECK(r2 && r2->type == REDIS_REPLY_STATUS);
    freeReplyObject(r1);
    freeReplyObject(r2);
    r = redisCommand(conn(from), "GET %s", key);
    CHECK(r && r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
}

int main(void)
{
    alarm(240); /* below ctest's timeout, so the wrapper still stops the cluster */
    const char *url = getenv("FUNNELD_REDIS_CLUSTER_URL");
    char user[64], pass[128];
    int port, db;
    if (!url || fn_redis_url_parse(url, seed_host, sizeof seed_host, &port, user, sizeof user, pass,
                                   sizeof pass, &db) != FN_OK) {
        fprintf(stderr, "FUNNELD_REDIS_CLUSTER_URL is not set (run under with-cluster.sh)\n");
        return 1;
    }
    redisContext *seed = redisConnect(seed_host, port);
    if (!seed || seed->err) {
        fprintf(stderr, "connect %s: %s\n", url, seed ? seed->errstr : "out of memory");
        return 1;
    }
    /* CLUSTER SLOTS leaves out a replica whose replication offset, as gossip last told, is
     * still 0 (Redis's isReplicaAvailable): on a fresh, empty cluster that is until the
     * master's first replication PING (repl-ping-replica-period, 10 s), so the masters come
     * at once and the replicas a few seconds later. Routing uses masters only; the full
     * node list is waited for. */
    int64_t start = fn_now_ms();
    map = map_from(seed, seed_host);
    while (map && map->n_nodes < 6 && fn_now_ms() - start < 20000) {
        usleep(100 * 1000);
        fn_cluster_map_free(map);
        map = map_from(seed, seed_host);
    }
    if (map)
        printf("CLUSTER SLOTS listed %zu nodes after %lld ms\n", map->n_nodes,
               (long long)(fn_now_ms() - start));
    redisFree(seed);
    CHECK(map != NULL);
    if (map) {
        test_map();
        test_keys();
        test_ask();
        for (size_t i = 0; i < map->n_nodes; i++)
            if (conns[i])
                redisFree(conns[i]);
        fn_cluster_map_free(map);
    }
    return fn_test_result("test_cluster_routing");
}
