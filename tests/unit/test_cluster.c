/*
 * test_cluster.c — Redis Cluster routing (cluster.h) table by table: CRC16 and key slots
 * against values a real redis-server 7.0 gave for CLUSTER KEYSLOT; slot maps from
 * hand-built CLUSTER SLOTS replies, well-formed (Redis 3 to 7 shapes, IPv6, hostnames,
 * unknown endpoints) and malformed (each refused with its reason); MOVED/ASK/TRYAGAIN/
 * CLUSTERDOWN replies; and random reply trees that must never crash the builder nor yield a
 * map that routes a slot to anything but a master.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/cluster.h"

/* ------------------------------------------------------------------ replies by hand */

static redisReply *reply(int type)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = type;
    return r;
}

static redisReply *rnum(long long v)
{
    redisReply *r = reply(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

/* A string of len bytes (it may hold a NUL). */
static redisReply *rstrn(const char *s, size_t len)
{
    redisReply *r = reply(REDIS_REPLY_STRING);
    r->str = malloc(len + 1);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static redisReply *rstr(const char *s)
{
    return rstrn(s, strlen(s));
}

/* An array of the replies given, up to a NULL. */
static redisReply *rarr(redisReply *first, ...)
{
    redisReply *r = reply(REDIS_REPLY_ARRAY);
    va_list ap;
    va_start(ap, first);
    for (redisReply *e = first; e; e = va_arg(ap, redisReply *)) {
        r->element = realloc(r->element, (r->elements + 1) * sizeof *r->element);
        r->element[r->elements++] = e;
    }
    va_end(ap);
    return r;
}

static void rfree(redisReply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        rfree(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

/* [host, port, id] as Redis 4..6 sends it; Redis 7 adds a metadata array (node7). */
static redisReply *node(const char *host, long long port, const char *id)
{
    return rarr(rstr(host), rnum(port), rstr(id), NULL);
}

static redisReply *node7(const char *host, long long port, const char *id)
{
    return rarr(rstr(host), rnum(port), rstr(id),
                rarr(rstr("hostname"), rstr("redis-a.example"), NULL), NULL);
}

static redisReply *range(long long first, long long last, redisReply *master, ...)
{
    redisReply *r = rarr(rnum(first), rnum(last), master, NULL);
    va_list ap;
    va_start(ap, master);
    for (redisReply *e = va_arg(ap, redisReply *); e; e = va_arg(ap, redisReply *)) {
        r->element = realloc(r->element, (r->elements + 1) * sizeof *r->element);
        r->element[r->elements++] = e;
    }
    va_end(ap);
    return r;
}

/* The reply redis-cli --cluster create's layout gives: three masters, one replica each. */
static redisReply *three_masters(void)
{
    return rarr(
        range(0, 5460, node7("127.0.0.1", 7000, "a"), node7("127.0.0.1", 7003, "d"), NULL),
        range(5461, 10922, node7("127.0.0.1", 7001, "b"), node7("127.0.0.1", 7004, "e"), NULL),
        range(10923, 16383, node7("127.0.0.1", 7002, "c"), node7("127.0.0.1", 7005, "f"), NULL),
        NULL);
}

/* ------------------------------------------------------------------ slots */

static void test_crc16(void)
{
    CHECK_INT(fn_cluster_crc16("123456789", 9), 0x31C3);
    CHECK_INT(fn_cluster_crc16("", 0), 0);
    CHECK_INT(fn_cluster_crc16("A", 1), 0x58E5); /* XMODEM of one byte */
}

static void test_keyslot(void)
{
    /* CLUSTER KEYSLOT on redis-server 7.0.15 */
    static const struct {
        const char *key;
        unsigned slot;
    } cases[] = {
        {"foo", 12182},
        {"bar", 5061},
        {"{user1000}.following", 3443},
        {"{user1000}.followers", 3443},
        {"{}foo", 9500},         /* empty tag: the whole key */
        {"foo{}{bar}", 8363},    /* the first '{' and its '}' make an empty tag */
        {"foo{{bar}}zap", 4015}, /* tag "{bar" */
        {"{bar", 4015},          /* no '}': the whole key, which is that tag */
        {"foo{bar}{zap}", 5061}, /* only the first tag counts */
        {"bar}", 6624},
        {"", 0},
        {"a{b}c{", 3300},
        {"{{}}", 4092}, /* tag "{" */
        {"123456789", 12739},
        {"fn:{12}:lead:abc", 8373},
        {"fn:{0}:stats", 13907},
        {"fn:{63}:outbox", 10499},
        {"fn:epoch", 6428},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned got = fn_cluster_keyslot(cases[i].key, strlen(cases[i].key));
        if (got != cases[i].slot)
            fprintf(stderr, "keyslot(\"%s\")\n", cases[i].key);
        CHECK_INT(got, cases[i].slot);
    }
    /* a key with a NUL byte is hashed whole, NUL included */
    CHECK(fn_cluster_keyslot("a\0b", 3) != fn_cluster_keyslot("a", 1));
    /* every key of a shard is in the slot of the shard number, whatever the prefix */
    for (unsigned shard = 0; shard < 64; shard++) {
        char tag[8], k1[64], k2[64];
        int tl = snprintf(tag, sizeof tag, "%u", shard);
        int l1 = snprintf(k1, sizeof k1, "fn:{%u}:lead:0123456789abcdef", shard);
        int l2 = snprintf(k2, sizeof k2, "app.x:{%u}:due:events:3", shard);
        unsigned s = fn_cluster_keyslot(tag, (size_t)tl);
        CHECK_INT(fn_cluster_keyslot(k1, (size_t)l1), s);
        CHECK_INT(fn_cluster_keyslot(k2, (size_t)l2), s);
    }
}

/* ------------------------------------------------------------------ maps */

static void test_map_three_masters(void)
{
    char err[200];
    redisReply *r = three_masters();
    fn_cluster_map_t *m = fn_cluster_map_build(r, "127.0.0.1", err, sizeof err);
    CHECK(m != NULL);
    if (!m) {
        fprintf(stderr, "%s\n", err);
        rfree(r);
        return;
    }
    CHECK_INT(m->n_nodes, 6);
    CHECK_INT(m->n_masters, 3);
    CHECK_INT(m->uncovered, 0);
    int a = fn_cluster_map_find(m, "127.0.0.1", 7000),
        c = fn_cluster_map_find(m, "127.0.0.1", 7002);
    int f = fn_cluster_map_find(m, "127.0.0.1", 7005);
    CHECK(a >= 0 && c >= 0 && f >= 0);
    CHECK_INT(fn_cluster_map_find(m, "127.0.0.1", 7006), -1);
    CHECK_INT(fn_cluster_map_find(m, "127.0.0.2", 7000), -1);
    CHECK_INT(fn_cluster_map_master(m, 0), a);
    CHECK_INT(fn_cluster_map_master(m, 5460), a);
    CHECK_INT(fn_cluster_map_master(m, 16383), c);
    CHECK_INT(fn_cluster_map_master(m, 16384), -1);
    CHECK_INT(fn_cluster_map_master(m, 8373), fn_cluster_map_find(m, "127.0.0.1", 7001));
    CHECK_INT(m->nodes[f].master, c);
    CHECK_INT(m->nodes[a].master, -1);
    CHECK_INT(m->nodes[a].slots, 5461);
    CHECK_INT(m->nodes[f].slots, 0);
    CHECK_STR(m->nodes[a].id, "a");
    char text[64] = "x";
    CHECK_INT(fn_cluster_map_uncovered_text(m, text, sizeof text), 0);
    CHECK_STR(text, "");
    fn_cluster_map_free(m);
    rfree(r);
}

/* A master serving several ranges (after a reshard), Redis 3's [host, port] nodes, gaps. */
static void test_map_ranges_and_gaps(void)
{
    char err[200], text[64];
    redisReply *r = rarr(range(100, 4999, rarr(rstr("10.0.0.1"), rnum(6379), NULL), NULL),
                         range(5001, 5001, rarr(rstr("10.0.0.2"), rnum(6379), NULL), NULL),
                         range(6000, 15999, rarr(rstr("10.0.0.1"), rnum(6379), NULL),
                               rarr(rstr("10.0.0.3"), rnum(6379), NULL), NULL),
                         NULL);
    fn_cluster_map_t *m = fn_cluster_map_build(r, "10.0.0.1", err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        CHECK_INT(m->n_masters, 2);
        CHECK_INT(m->n_nodes, 3);
        CHECK_INT(m->nodes[0].slots, 4900 + 10000);
        CHECK_STR(m->nodes[0].id, "");
        CHECK_INT(m->uncovered, 100 + 1 + 998 + 384);
        fn_cluster_range_t rs[2];
        CHECK_INT(fn_cluster_map_uncovered(m, rs, 2), 4);
        CHECK_INT(rs[0].first, 0);
        CHECK_INT(rs[0].last, 99);
        CHECK_INT(rs[1].first, 5000);
        CHECK_INT(rs[1].last, 5000);
        CHECK_INT(fn_cluster_map_uncovered_text(m, text, sizeof text), 4);
        CHECK_STR(text, "0-99,5000,5002-5999,16000-16383");
        /* cut short: whole ranges only, then "..." */
        CHECK_INT(fn_cluster_map_uncovered_text(m, text, 16), 4);
        CHECK_STR(text, "0-99,5000...");
        CHECK_INT(fn_cluster_map_uncovered_text(m, text, 4), 4);
        CHECK_STR(text, "...");
        CHECK_INT(fn_cluster_map_uncovered_text(m, text, 3), 4);
        CHECK_STR(text, "");
    }
    fn_cluster_map_free(m);
    rfree(r);

    /* an empty reply: a cluster with no slots assigned yet */
    r = rarr(NULL);
    m = fn_cluster_map_build(r, "h", err, sizeof err);
    CHECK(m && m->uncovered == FN_CLUSTER_SLOTS && m->n_nodes == 0);
    if (m) {
        CHECK_INT(fn_cluster_map_uncovered_text(m, text, sizeof text), 1);
        CHECK_STR(text, "0-16383");
    }
    fn_cluster_map_free(m);
    rfree(r);
}

/* Addresses: nil and "" mean the seed's host, IPv6, hostnames, "?" has no address. */
static void test_map_addresses(void)
{
    char err[200];
    redisReply *nil = reply(REDIS_REPLY_NIL);
    redisReply *r =
        rarr(range(0, 99, rarr(nil, rnum(7000), NULL), node("", 7003, "d"), NULL),
             range(100, 199, node("::1", 7001, "b"), node("[::1]", 7004, "e"), NULL),
             range(200, 299, node("Redis-2.Example.com", 7002, "c"), NULL),
             range(300, 399, node("?", 7008, "x"), node("127.0.0.1", 7009, "y"), NULL),
             range(400, 499, node("127.0.0.1", 7010, "z"), node("?", 7011, "w"), NULL), NULL);
    fn_cluster_map_t *m = fn_cluster_map_build(r, "seed.local", err, sizeof err);
    CHECK(m != NULL);
    if (m) {
        int a = fn_cluster_map_find(m, "seed.local", 7000);
        CHECK(a >= 0);
        CHECK_INT(fn_cluster_map_master(m, 0), a);
        CHECK_INT(m->nodes[fn_cluster_map_find(m, "seed.local", 7003)].master, a);
        int b = fn_cluster_map_find(m, "::1", 7001);
        CHECK(b >= 0);
        CHECK_INT(fn_cluster_map_find(m, "[::1]", 7001), b);
        CHECK_STR(m->nodes[fn_cluster_map_find(m, "::1", 7004)].host, "::1");
        CHECK(fn_cluster_map_find(m, "redis-2.example.COM", 7002) >= 0);
        CHECK_INT(fn_cluster_map_master(m, 300), -1); /* "?" master: uncovered */
        CHECK_INT(fn_cluster_map_find(m, "127.0.0.1", 7009), -1);
        CHECK_INT(fn_cluster_map_find(m, "?", 7011), -1);
        CHECK_INT(m->n_nodes, 6);
        CHECK_INT(m->uncovered, FN_CLUSTER_SLOTS - 400);
        char text[64];
        fn_cluster_map_uncovered_text(m, text, sizeof text);
        CHECK_STR(text, "300-399,500-16383");
        CHECK_INT(fn_cluster_map_find(m, NULL, 7000), -1);
        CHECK_INT(fn_cluster_map_find(m, "", 7000), -1);
    }
    fn_cluster_map_free(m);
    /* without a seed host, a nil or empty host cannot be resolved */
    m = fn_cluster_map_build(r, NULL, err, sizeof err);
    CHECK(m == NULL);
    CHECK(strstr(err, "entry 0") != NULL);
    rfree(r);
}

static void test_map_malformed(void)
{
    char longhost[400];
    memset(longhost, 'h', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    redisReply *err_reply = reply(REDIS_REPLY_ERROR);
    err_reply->str = strdup("ERR This instance has cluster support disabled");
    err_reply->len = strlen(err_reply->str);
    static const char *want[] = {
        "missing",
        "not an array",
        "cluster support disabled",
        "entry 0: not [first, last, master, ...]",
        "entry 0: not [first, last, master, ...]",
        "entry 1: its slots are not integers",
        "entry 0: its slot range is not in 0..16383",
        "entry 0: its slot range is not in 0..16383",
        "entry 0: its slot range is not in 0..16383",
        "entry 1: slot 50 is in two ranges",
        "entry 0: a node is not [host, port, ...]",
        "entry 0: a node is not [host, port, ...]",
        "entry 0: a node's port is not 1..65535",
        "entry 0: a node's port is not 1..65535",
        "entry 0: a node's port is not 1..65535",
        "entry 0: a node's host is not a string",
        "entry 0: a node's host is not an address",
        "entry 0: a node's host is not an address",
        "entry 0: a node's host is not an address",
        "entry 0: a node's host is not an address",
        "entry 1: a replica elsewhere is listed as a master",
        "entry 1: a node is a master or another master's replica",
        "entry 1: a node is a master or another master's replica",
    };
    redisReply *cases[] = {
        NULL,
        rnum(3),
        err_reply,
        rarr(rnum(0), NULL),
        rarr(range(0, 1, NULL, NULL), NULL) /* [0, 1]: no master */,
        rarr(range(0, 1, node("a", 1, ""), NULL), rarr(rstr("2"), rnum(3), node("a", 1, ""), NULL),
             NULL),
        rarr(range(-1, 1, node("a", 1, ""), NULL), NULL),
        rarr(range(0, 16384, node("a", 1, ""), NULL), NULL),
        rarr(range(10, 9, node("a", 1, ""), NULL), NULL),
        rarr(range(0, 50, node("a", 1, ""), NULL), range(50, 60, node("b", 1, ""), NULL), NULL),
        rarr(range(0, 1, rnum(7), NULL), NULL),
        rarr(range(0, 1, rarr(rstr("a"), NULL), NULL), NULL),
        rarr(range(0, 1, node("a", 0, ""), NULL), NULL),
        rarr(range(0, 1, node("a", 65536, ""), NULL), NULL),
        rarr(range(0, 1, rarr(rstr("a"), rstr("6379"), NULL), NULL), NULL),
        rarr(range(0, 1, rarr(rnum(1), rnum(6379), NULL), NULL), NULL),
        rarr(range(0, 1, node(longhost, 1, ""), NULL), NULL),
        rarr(range(0, 1, rarr(rstrn("a\0b", 3), rnum(1), NULL), NULL), NULL),
        rarr(range(0, 1, node("a b", 1, ""), NULL), NULL),
        rarr(range(0, 1, node("[]", 1, ""), NULL), NULL),
        rarr(range(0, 1, node("a", 1, ""), node("b", 1, ""), NULL),
             range(2, 3, node("b", 1, ""), NULL), NULL),
        rarr(range(0, 1, node("a", 1, ""), NULL),
             range(2, 3, node("b", 1, ""), node("a", 1, ""), NULL), NULL),
        rarr(range(0, 1, node("a", 1, ""), node("r", 1, ""), NULL),
             range(2, 3, node("b", 1, ""), node("r", 1, ""), NULL), NULL),
    };
    CHECK_INT(sizeof cases / sizeof cases[0], sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[200] = "";
        fn_cluster_map_t *m = fn_cluster_map_build(cases[i], "seed", err, sizeof err);
        CHECK(m == NULL);
        if (!strstr(err, want[i]))
            fprintf(stderr, "case %zu: \"%s\", expected \"%s\"\n", i, err, want[i]);
        CHECK(strstr(err, want[i]) != NULL);
        fn_cluster_map_free(m);
        rfree(cases[i]);
    }
    /* err may be left out */
    CHECK(fn_cluster_map_build(NULL, "seed", NULL, 0) == NULL);
}

/* Random reply trees, shaped like CLUSTER SLOTS often enough to get deep: never a crash
 * (ASan run), and a map that is built routes every slot to a master or to nothing. */
static redisReply *random_reply(fn_test_rng_t *g, int depth)
{
    static const char *hosts[] = {"a", "b", "", "?", "::1", "[::1]", "c d", "r1", "r2"};
    unsigned k = (unsigned)(fn_test_rnd(g) % 10);
    if (depth >= 3 || k < 3) {
        switch (fn_test_rnd(g) % 4) {
        case 0:
            return rnum((long long)(fn_test_rnd(g) % 20000) - 100);
        case 1:
            return rnum((long long)(fn_test_rnd(g) % 5));
        case 2:
            return reply(REDIS_REPLY_NIL);
        default:
            return rstr(hosts[fn_test_rnd(g) % (sizeof hosts / sizeof hosts[0])]);
        }
    }
    if (depth == 1 && k < 8) { /* an entry */
        long long f = (long long)(fn_test_rnd(g) % 16384);
        redisReply *e = rarr(rnum(f), rnum(f + (long long)(fn_test_rnd(g) % 3000)), NULL);
        size_t n = fn_test_rnd(g) % 4;
        for (size_t i = 0; i < n; i++) {
            e->element = realloc(e->element, (e->elements + 1) * sizeof *e->element);
            e->element[e->elements++] =
                fn_test_rnd(g) % 8
                    ? node(hosts[fn_test_rnd(g) % 9], 7000 + (long long)(fn_test_rnd(g) % 4), "")
                    : random_reply(g, depth + 1);
        }
        return e;
    }
    redisReply *r = rarr(NULL);
    size_t n = fn_test_rnd(g) % 5;
    for (size_t i = 0; i < n; i++) {
        r->element = realloc(r->element, (r->elements + 1) * sizeof *r->element);
        r->element[r->elements++] = random_reply(g, depth + 1);
    }
    return r;
}

static void test_map_random(void)
{
    fn_test_rng_t g = {0x5eed5eedULL};
    int built = 0;
    for (int i = 0; i < 20000; i++) {
        redisReply *r = random_reply(&g, 0);
        char err[200];
        fn_cluster_map_t *m = fn_cluster_map_build(r, i % 2 ? "seed" : NULL, err, sizeof err);
        if (m) {
            built++;
            bool ok = true;
            unsigned served = 0;
            for (unsigned s = 0; s < FN_CLUSTER_SLOTS; s++) {
                int n = m->slot[s];
                if (n >= 0)
                    served++;
                if (n < -1 || n >= (int)m->n_nodes || (n >= 0 && m->nodes[n].master != -1))
                    ok = false;
            }
            for (size_t n = 0; n < m->n_nodes; n++) {
                int ma = m->nodes[n].master;
                if (ma >= (int)m->n_nodes || (ma >= 0 && m->nodes[ma].master != -1))
                    ok = false;
            }
            CHECK(ok);
            CHECK_INT(served + m->uncovered, FN_CLUSTER_SLOTS);
        }
        fn_cluster_map_free(m);
        rfree(r);
    }
    CHECK(built > 100); /* the random shapes reach the well-formed path too */
}

/* ------------------------------------------------------------------ error replies */

static void test_classify(void)
{
    static const struct {
        const char *err;
        fn_cluster_reply_t kind;
        unsigned slot;
        const char *host;
        int port;
    } cases[] = {
        {"MOVED 3999 127.0.0.1:6381", FN_CLUSTER_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 3999 127.0.0.1:6381", FN_CLUSTER_ASK, 3999, "127.0.0.1", 6381},
        {"MOVED 0 ::1:7000", FN_CLUSTER_MOVED, 0, "::1", 7000},
        {"MOVED 16383 [2001:db8::7]:7000", FN_CLUSTER_MOVED, 16383, "2001:db8::7", 7000},
        {"MOVED 12 :6380", FN_CLUSTER_MOVED, 12, "seed", 6380}, /* unknown endpoint */
        {"ASK 12 redis-1.example:6379", FN_CLUSTER_ASK, 12, "redis-1.example", 6379},
        {"MOVED", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED ", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 16384 a:1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 123456 a:1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED -1 a:1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED x a:1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1 a", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1 a:", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1 a:0", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1 a:65536", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1 a:12x", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1 a b:1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVED 1  a:1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"ASK 1", FN_CLUSTER_BAD_REDIRECT, 0, NULL, 0},
        {"MOVEDX 1 a:1", FN_CLUSTER_REPLY_OTHER, 0, NULL, 0},
        {"moved 1 a:1", FN_CLUSTER_REPLY_OTHER, 0, NULL, 0},
        {"TRYAGAIN Multiple keys request during rehashing of slot", FN_CLUSTER_TRYAGAIN, 0, NULL,
         0},
        {"CLUSTERDOWN The cluster is down", FN_CLUSTER_CLUSTERDOWN, 0, NULL, 0},
        {"CLUSTERDOWN Hash slot not served", FN_CLUSTER_CLUSTERDOWN, 0, NULL, 0},
        {"CROSSSLOT Keys in request don't hash to the same slot", FN_CLUSTER_REPLY_OTHER, 0, NULL,
         0},
        {"NOSCRIPT No matching script", FN_CLUSTER_REPLY_OTHER, 0, NULL, 0},
        {"ERR wrong number of arguments", FN_CLUSTER_REPLY_OTHER, 0, NULL, 0},
        {"", FN_CLUSTER_REPLY_OTHER, 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_cluster_redirect_t to = {.slot = 99999};
        fn_cluster_reply_t k = fn_cluster_classify(cases[i].err, strlen(cases[i].err), "seed", &to);
        if (k != cases[i].kind)
            fprintf(stderr, "classify(\"%s\")\n", cases[i].err);
        CHECK_INT(k, cases[i].kind);
        if (cases[i].host) {
            CHECK_INT(to.slot, cases[i].slot);
            CHECK_STR(to.host, cases[i].host);
            CHECK_INT(to.port, cases[i].port);
        } else {
            CHECK_INT(to.slot, 99999); /* untouched */
        }
    }
    /* only len bytes are read: the text need not end in a NUL there */
    char buf[] = "MOVED 7 h:6379XXXX";
    fn_cluster_redirect_t to;
    CHECK_INT(fn_cluster_classify(buf, 14, NULL, &to), FN_CLUSTER_MOVED);
    CHECK_INT(to.port, 6379);
    CHECK_INT(fn_cluster_classify(buf, 3, NULL, &to), FN_CLUSTER_REPLY_OTHER);
    /* an empty host without a seed host, and no out struct */
    CHECK_INT(fn_cluster_classify("MOVED 1 :7000", 13, NULL, &to), FN_CLUSTER_BAD_REDIRECT);
    CHECK_INT(fn_cluster_classify("ASK 1 h:7000", 12, NULL, NULL), FN_CLUSTER_ASK);
    CHECK_INT(fn_cluster_classify(NULL, 0, NULL, NULL), FN_CLUSTER_REPLY_OTHER);
}

int main(void)
{
    test_crc16();
    test_keyslot();
    test_map_three_masters();
    test_map_ranges_and_gaps();
    test_map_addresses();
    test_map_malformed();
    test_map_random();
    test_classify();
    return fn_test_result("test_cluster");
}
