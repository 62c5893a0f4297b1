/*
 * cluster.c — Redis Cluster routing without I/O (cluster.h): which slot a key is in, which
 * master serves a slot, and what a cluster's error reply asks for.
 *
 * The map comes from CLUSTER SLOTS rather than CLUSTER SHARDS. SLOTS exists on every cluster
 * Redis (3.0 on; SHARDS is 7.0 only, and managed services lag), its reply is already what
 * routing needs (one entry per slot range: the master first, then its replicas) and it is
 * what hiredis-cluster and redis-py read, so its corners are well trodden. What SHARDS adds,
 * each node's health and replication offset, routing does not use: a master is reachable
 * when its connection is up, which the store knows better than any one node's gossip, and
 * SLOTS already leaves out a replica that is failing or has not finished its first sync (so
 * a fresh cluster's reply may list its replicas only seconds after its masters).
 *
 * Everything in a reply is checked before it is believed: a node answering CLUSTER SLOTS is
 * trusted with routing but not with our memory. A reply that does not add up (overlapping
 * ranges, a node both master and replica) is refused whole, so the caller asks another node
 * rather than routing by half a map.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "funneld/cluster.h"

/* The CRC of each nibble value (0x1021 shifted through four bits), the first sixteen
 * entries of Redis's byte table: a byte is two lookups instead of eight shifts. */
static const uint16_t crc16_nibble[16] = {0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5,
                                          0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
                                          0xc18c, 0xd1ad, 0xe1ce, 0xf1ef};

uint16_t fn_cluster_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned b = (unsigned char)buf[i];
        crc = (uint16_t)((crc << 4) ^ crc16_nibble[((crc >> 12) ^ (b >> 4)) & 0x0f]);
        crc = (uint16_t)((crc << 4) ^ crc16_nibble[((crc >> 12) ^ b) & 0x0f]);
    }
    return crc;
}

unsigned fn_cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close && close > key + from) /* "{}" is no tag: the whole key is hashed */
            return fn_cluster_crc16(key + from, (size_t)(close - (key + from))) &
                   (FN_CLUSTER_SLOTS - 1);
    }
    return fn_cluster_crc16(key, len) & (FN_CLUSTER_SLOTS - 1);
}

/* ------------------------------------------------------------------ addresses */

/* Copies an address's host into out (FN_CLUSTER_HOST_MAX bytes): an empty one means
 * from_host, "[v6]" loses its brackets. Refuses a host that does not fit or holds a byte
 * that has no place in an address or a DNS name (NUL, space, control characters). */
static bool copy_host(char *out, const char *s, size_t len, const char *from_host)
{
    if (len == 0) {
        if (!from_host || !*from_host)
            return false;
        s = from_host;
        len = strlen(from_host);
    }
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= FN_CLUSTER_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* A decimal number of 1..max_digits digits, nothing else, into *out. */
static bool parse_uint(const char *s, size_t len, size_t max_digits, unsigned long *out)
{
    if (len == 0 || len > max_digits)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* ------------------------------------------------------------------ the map */

/* Slot states while building: listed with a master that has no usable address (counted as
 * uncovered in the end, but still taken for overlap checks). */
#define SLOT_NONE (-1)
_Static_assert(FN_CLUSTER_MAX_NODES <= INT16_MAX, "a node index fits the map's int16_t slots");
#define SLOT_NO_ADDRESS (-2)

/* A reply with more node entries than this is not a cluster's: 16384 single-slot ranges,
 * each a master and three replicas. Bounds the time a hostile reply can cost. */
#define MAX_NODE_REFS (4 * FN_CLUSTER_SLOTS)

typedef struct build {
    fn_cluster_map_t *m;
    size_t cap;
    const char *from_host;
    char *err;
    size_t errlen;
    size_t refs;
} build_t;

/* Names the entry and what is wrong with it in err; returns -1. */
static int fail(build_t *b, size_t entry, const char *what)
{
    if (b->errlen)
        snprintf(b->err, b->errlen, "CLUSTER SLOTS entry %zu: %s", entry, what);
    return -1;
}

static bool is_string(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

int fn_cluster_map_find(const fn_cluster_map_t *m, const char *host, int port)
{
    char h[FN_CLUSTER_HOST_MAX];
    if (!host || !copy_host(h, host, strlen(host), NULL))
        return -1;
    for (size_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].port == port && strcasecmp(m->nodes[i].host, h) == 0)
            return (int)i;
    return -1;
}

/* The node r describes (host, port[, id, metadata]), added to the map when new, checked
 * against what the reply said of it before when not: its index, or -1 with err set. A
 * replica's master is the entry's master index; master_of -1 adds a master. *no_address is
 * set (and -1 returned, err left empty) when the node announced "?" for its endpoint. */
static int add_node(build_t *b, size_t entry, const redisReply *r, int master_of, bool *no_address)
{
    fn_cluster_map_t *m = b->m;
    char host[FN_CLUSTER_HOST_MAX];
    *no_address = false;
    if (++b->refs > MAX_NODE_REFS)
        return fail(b, entry, "more nodes than a cluster has");
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
        return fail(b, entry, "a node is not [host, port, ...]");
    const redisReply *h = r->element[0], *p = r->element[1];
    if (p->type != REDIS_REPLY_INTEGER || p->integer < 1 || p->integer > 65535)
        return fail(b, entry, "a node's port is not 1..65535");
    if (h->type == REDIS_REPLY_NIL) {
        if (!copy_host(host, "", 0, b->from_host))
            return fail(b, entry, "a node's host is nil and the seed's is unknown");
    } else if (!is_string(h)) {
        return fail(b, entry, "a node's host is not a string");
    } else if (h->len == 1 && h->str[0] == '?') {
        *no_address = true;
        return -1;
    } else if (!copy_host(host, h->str, h->len, b->from_host)) {
        return fail(b, entry, "a node's host is not an address");
    }
    char id[41] = "";
    const redisReply *idr = r->elements >= 3 ? r->element[2] : NULL;
    if (idr && is_string(idr) && idr->len < sizeof id) {
        memcpy(id, idr->str, idr->len);
        id[idr->len] = '\0';
    }

    int port = (int)p->integer;
    int at = fn_cluster_map_find(m, host, port);
    if (at >= 0) {
        if (m->nodes[at].master != master_of)
            return fail(b, entry,
                        master_of < 0 ? "a replica elsewhere is listed as a master"
                                      : "a node is a master or another master's replica");
        return at;
    }
    if (m->n_nodes == FN_CLUSTER_MAX_NODES)
        return fail(b, entry, "more nodes than a cluster has");
    if (m->n_nodes == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        fn_cluster_node_t *n = realloc(m->nodes, cap * sizeof *n);
        if (!n)
            return fail(b, entry, "out of memory");
        m->nodes = n;
        b->cap = cap;
    }
    fn_cluster_node_t *n = &m->nodes[m->n_nodes];
    memset(n, 0, sizeof *n);
    memcpy(n->host, host, sizeof host);
    n->port = port;
    memcpy(n->id, id, sizeof id);
    n->master = master_of;
    if (master_of < 0)
        m->n_masters++;
    return (int)m->n_nodes++;
}

/* One entry: [first slot, last slot, master, replica...]. Returns 0, or -1 with err set. */
static int add_entry(build_t *b, size_t i, const redisReply *e)
{
    fn_cluster_map_t *m = b->m;
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
        return fail(b, i, "not [first, last, master, ...]");
    const redisReply *f = e->element[0], *l = e->element[1];
    if (f->type != REDIS_REPLY_INTEGER || l->type != REDIS_REPLY_INTEGER)
        return fail(b, i, "its slots are not integers");
    if (f->integer < 0 || l->integer >= FN_CLUSTER_SLOTS || f->integer > l->integer)
        return fail(b, i, "its slot range is not in 0..16383");
    unsigned first = (unsigned)f->integer, last = (unsigned)l->integer;
    for (unsigned s = first; s <= last; s++)
        if (m->slot[s] != SLOT_NONE) {
            char what[64];
            snprintf(what, sizeof what, "slot %u is in two ranges", s);
            return fail(b, i, what);
        }

    bool no_address;
    int master = add_node(b, i, e->element[2], -1, &no_address);
    if (master < 0 && !no_address)
        return -1;
    for (unsigned s = first; s <= last; s++)
        m->slot[s] = (int16_t)(master < 0 ? SLOT_NO_ADDRESS : master);
    if (master < 0)
        return 0; /* its replicas have no master in the map: left out */
    m->nodes[master].slots += last - first + 1;
    for (size_t k = 3; k < e->elements; k++)
        if (add_node(b, i, e->element[k], master, &no_address) < 0 && !no_address)
            return -1;
    return 0;
}

fn_cluster_map_t *fn_cluster_map_build(const redisReply *r, const char *from_host, char *err,
                                       size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    fn_cluster_map_t *m = calloc(1, sizeof *m);
    if (!m) {
        if (errlen)
            snprintf(err, errlen, "CLUSTER SLOTS: out of memory");
        return NULL;
    }
    build_t b = {.m = m, .from_host = from_host, .err = err, .errlen = errlen};
    for (size_t s = 0; s < FN_CLUSTER_SLOTS; s++)
        m->slot[s] = SLOT_NONE;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (errlen)
            snprintf(err, errlen, "CLUSTER SLOTS: the reply is %s",
                     !r                             ? "missing"
                     : r->type == REDIS_REPLY_ERROR ? r->str
                                                    : "not an array");
        goto fail;
    }
    for (size_t i = 0; i < r->elements; i++)
        if (add_entry(&b, i, r->element[i]) < 0)
            goto fail;
    for (size_t s = 0; s < FN_CLUSTER_SLOTS; s++)
        if (m->slot[s] < 0) {
            m->slot[s] = SLOT_NONE;
            m->uncovered++;
        }
    return m;
fail:
    fn_cluster_map_free(m);
    return NULL;
}

void fn_cluster_map_free(fn_cluster_map_t *m)
{
    if (!m)
        return;
    free(m->nodes);
    free(m);
}

int fn_cluster_map_master(const fn_cluster_map_t *m, unsigned slot)
{
    return slot < FN_CLUSTER_SLOTS ? m->slot[slot] : -1;
}

/* The next uncovered range at or after *from, into *r; moves *from past it. */
static bool next_uncovered(const fn_cluster_map_t *m, unsigned *from, fn_cluster_range_t *r)
{
    unsigned s = *from;
    while (s < FN_CLUSTER_SLOTS && m->slot[s] >= 0)
        s++;
    if (s == FN_CLUSTER_SLOTS)
        return false;
    r->first = s;
    while (s + 1 < FN_CLUSTER_SLOTS && m->slot[s + 1] < 0)
        s++;
    r->last = s;
    *from = s + 1;
    return true;
}

size_t fn_cluster_map_uncovered(const fn_cluster_map_t *m, fn_cluster_range_t *out, size_t max)
{
    size_t n = 0;
    unsigned from = 0;
    fn_cluster_range_t r;
    while (next_uncovered(m, &from, &r)) {
        if (n < max)
            out[n] = r;
        n++;
    }
    return n;
}

size_t fn_cluster_map_uncovered_text(const fn_cluster_map_t *m, char *out, size_t n)
{
    size_t count = 0, at = 0;
    bool full = false;
    unsigned from = 0;
    fn_cluster_range_t r;
    if (n)
        out[0] = '\0';
    while (next_uncovered(m, &from, &r)) {
        char one[32];
        int len = r.first == r.last
                      ? snprintf(one, sizeof one, "%s%u", count ? "," : "", r.first)
                      : snprintf(one, sizeof one, "%s%u-%u", count ? "," : "", r.first, r.last);
        count++;
        if (full || n == 0)
            continue;
        if (at + (size_t)len + 4 > n) { /* keep room for "..." and the NUL */
            if (at + 4 <= n)
                memcpy(out + at, "...", 4);
            full = true;
            continue;
        }
        memcpy(out + at, one, (size_t)len + 1);
        at += (size_t)len;
    }
    return count;
}

/* ------------------------------------------------------------------ error replies */

/* err begins with the word w, followed by a space or the end. */
static bool word_is(const char *err, size_t len, const char *w)
{
    size_t wl = strlen(w);
    return len >= wl && memcmp(err, w, wl) == 0 && (len == wl || err[wl] == ' ');
}

/* "<slot> <host>:<port>", the rest of a MOVED or ASK. */
static bool parse_redirect(const char *s, size_t len, const char *from_host,
                           fn_cluster_redirect_t *to)
{
    const char *sp = memchr(s, ' ', len);
    unsigned long slot, port;
    if (!sp || !parse_uint(s, (size_t)(sp - s), 5, &slot) || slot >= FN_CLUSTER_SLOTS)
        return false;
    const char *addr = sp + 1;
    size_t alen = len - (size_t)(addr - s);
    const char *colon = NULL;
    for (size_t i = 0; i < alen; i++)
        if (addr[i] == ':')
            colon = addr + i;
    if (!colon)
        return false;
    size_t hlen = (size_t)(colon - addr);
    if (!parse_uint(colon + 1, alen - hlen - 1, 5, &port) || port < 1 || port > 65535)
        return false;
    fn_cluster_redirect_t r = {.slot = (unsigned)slot, .port = (int)port};
    if (!copy_host(r.host, addr, hlen, from_host))
        return false;
    if (to)
        *to = r;
    return true;
}

fn_cluster_reply_t fn_cluster_classify(const char *err, size_t len, const char *from_host,
                                       fn_cluster_redirect_t *to)
{
    if (!err)
        return FN_CLUSTER_REPLY_OTHER;
    if (word_is(err, len, "MOVED") || word_is(err, len, "ASK")) {
        bool moved = err[0] == 'M';
        size_t skip = moved ? 6 : 4;
        if (len <= skip || !parse_redirect(err + skip, len - skip, from_host, to))
            return FN_CLUSTER_BAD_REDIRECT;
        return moved ? FN_CLUSTER_MOVED : FN_CLUSTER_ASK;
    }
    if (word_is(err, len, "TRYAGAIN"))
        return FN_CLUSTER_TRYAGAIN;
    if (word_is(err, len, "CLUSTERDOWN"))
        return FN_CLUSTER_CLUSTERDOWN;
    return FN_CLUSTER_REPLY_OTHER;
}
