/*
 * cluster.h — Redis Cluster routing, pure (no I/O, no clock): the key-to-slot function, the
 * slot map built from a CLUSTER SLOTS reply, and the reading of the errors a cluster answers
 * with (MOVED, ASK, TRYAGAIN, CLUSTERDOWN). The store (one connection per master, SPEC §9)
 * is what sends; this header only decides where to.
 *
 * Every funneld key of one lead or one shard carries the hash tag "{<shard>}", so all keys of
 * one step share a slot, and the slot of a shard is fn_cluster_keyslot("<shard>").
 */
#ifndef FUNNELD_CLUSTER_H
#define FUNNELD_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FN_CLUSTER_SLOTS 16384
/* Room for a DNS name (253 bytes) or an IPv6 address, NUL included. */
#define FN_CLUSTER_HOST_MAX 256
/* More nodes than Redis Cluster's advised ceiling (1000 masters) means a hostile reply. */
#define FN_CLUSTER_MAX_NODES 4096

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), as Redis's
 * crc16.c; "123456789" gives 0x31C3. */
uint16_t fn_cluster_crc16(const char *buf, size_t len);

/* The slot (0..16383) of a key, by Redis's rule: if the key has a '{' and, after it, a '}'
 * with at least one byte between them, only the bytes between the first '{' and the first
 * '}' after it are hashed; otherwise (no tag, or the empty tag "{}") the whole key is. */
unsigned fn_cluster_keyslot(const char *key, size_t len);

/* A node of the map. host is an IPv4 or IPv6 address (no brackets) or a hostname. */
typedef struct fn_cluster_node {
    char host[FN_CLUSTER_HOST_MAX];
    int port;       /* 1..65535 */
    char id[41];    /* the node id, "" when the reply gave none (Redis before 4.0) */
    int master;     /* for a replica, the index of its master in nodes[]; -1 for a master */
    unsigned slots; /* slots it serves (0 for a replica) */
} fn_cluster_node_t;

typedef struct fn_cluster_range {
    unsigned first, last; /* inclusive */
} fn_cluster_range_t;

/* Slot → master. Owned by the caller of fn_cluster_map_build, freed with fn_cluster_map_free.
 * Read-only after it is built: the store swaps a whole new map in on a refresh. */
typedef struct fn_cluster_map {
    int16_t slot[FN_CLUSTER_SLOTS]; /* index of the serving master in nodes[], -1 none */
    fn_cluster_node_t *nodes;       /* masters and replicas, each address once */
    size_t n_nodes, n_masters;
    unsigned uncovered; /* slots no master serves */
} fn_cluster_map_t;

/* Builds a map from a CLUSTER SLOTS reply (RESP2: the node metadata of Redis 7, a fourth
 * element per node, is ignored). from_host is the address the
 * command was sent to: an entry whose host is empty or nil means that one (Redis's "unknown
 * endpoint"). An entry whose master announces no usable address ("?", a hostname that was
 * asked for but not set) leaves its slots uncovered; such a replica is left out. Refused,
 * with the reason in err: a reply that is not an array of entries, an entry with a missing
 * or mistyped field, a slot outside 0..16383 or a range that ends before it starts, two
 * ranges that overlap, a port outside 1..65535, a host too long, one address listed as
 * master and as a replica (or as replica of two masters), too many nodes. Returns NULL
 * then, or when memory runs out. */
fn_cluster_map_t *fn_cluster_map_build(const redisReply *r, const char *from_host, char *err,
                                       size_t errlen);

void fn_cluster_map_free(fn_cluster_map_t *m);

/* The master serving slot (index in m->nodes), or -1 when none does or slot is out of range. */
int fn_cluster_map_master(const fn_cluster_map_t *m, unsigned slot);

/* The node with this address, or -1. Hostnames compare without regard to case; an IPv6
 * address may be given in brackets. */
int fn_cluster_map_find(const fn_cluster_map_t *m, const char *host, int port);

/* The slot ranges no master serves, in order: writes up to max of them into out and returns
 * how many there are (possibly more than max). */
size_t fn_cluster_map_uncovered(const fn_cluster_map_t *m, fn_cluster_range_t *out, size_t max);

/* The same ranges as text for a log line or a 503 ("0-5460,10923"); truncated with "..."
 * to fit n bytes. Returns the number of uncovered ranges. */
size_t fn_cluster_map_uncovered_text(const fn_cluster_map_t *m, char *out, size_t n);

/* What an error reply from a cluster node asks of the client. */
typedef enum {
    FN_CLUSTER_REPLY_OTHER = 0, /* not a cluster error: the command's own failure */
    FN_CLUSTER_MOVED,           /* the slot lives elsewhere now: refresh the map, resend */
    FN_CLUSTER_ASK,             /* migrating: ASKING then the command, once, to that node */
    FN_CLUSTER_TRYAGAIN,        /* multi-key command during a migration: back off, resend */
    FN_CLUSTER_CLUSTERDOWN,     /* the cluster is down or the slot unbound: back off */
    FN_CLUSTER_BAD_REDIRECT,    /* "MOVED"/"ASK" that does not parse: refresh the map */
} fn_cluster_reply_t;

typedef struct fn_cluster_redirect {
    unsigned slot;
    char host[FN_CLUSTER_HOST_MAX];
    int port;
} fn_cluster_redirect_t;

/* Classifies an error reply's text (hiredis's reply->str, without the leading '-'). For
 * MOVED and ASK ("MOVED <slot> <host>:<port>"; the port follows the last ':', so an IPv6
 * host needs no brackets; an empty host means from_host) fills *to, which may be NULL
 * otherwise. */
fn_cluster_reply_t fn_cluster_classify(const char *err, size_t len, const char *from_host,
                                       fn_cluster_redirect_t *to);

#endif
