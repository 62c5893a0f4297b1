/*
 * store.c — the Redis connections and the per-lead queue in front of them (store.h).
 *
 * One async hiredis connection per Redis node ("conn") on the loop carries the steps bound
 * for it, pipelined, and the commands timers and evaluation send through fn_store_call.
 * Replies come back in send order, so each conn's "sent" is a FIFO. Only one step per lead
 * is outstanding at a time (lead_queue.c holds the rest in input order): that keeps a lead's
 * events in order even when one step has to be retried after an error, a reconnect or a
 * redirect to another node.
 *
 * One server (redis.cluster false) is the one conn. On a Redis Cluster the store learns the
 * slot map (CLUSTER SLOTS, cluster.h) from any node it reaches (redis.url, then
 * redis.seeds), keeps one conn per master, and sends each step to the master of its lead's
 * shard slot. MOVED refreshes the map and re-routes the step; ASK, TRYAGAIN and CLUSTERDOWN
 * wait a little and re-route (a step is not sent with ASKING: see follow_cluster_error). A step
 * with no master to go to (the map not known yet, its slot uncovered, a redirect being
 * followed) waits in "limbo" until the next map or retry. A master that fails is re-tried
 * with backoff while the map is refreshed, so its replica's promotion is found.
 *
 * Redis going away is normal weather: a conn's unanswered steps go back to the front of its
 * wait queue, the connection is re-made with exponential backoff (100 ms to 5 s), the
 * scripts are loaded again, and the steps are re-sent. Re-sending a step that did run is
 * harmless: the step de-duplicates by event id.
 *
 * The fast path (fast.h, redis.fast_path, where the step library is loaded): a touch that may
 * take it is sent first as an HGETALL of its lead; from the reply the daemon decides the step
 * itself and sends the apply (fast.lua), which writes only if the lead is as read. A lead the
 * fast path cannot take, an apply that finds the lead written since, an error, or a read
 * or apply that must be sent again (a reconnect, a redirect) sends the message the whole
 * step's way or back to its read: the fast path never decides from a reply it has not got.
 *
 * A Redis that comes back empty (restarted without persistence, flushed, or replaced) is
 * not something a step can notice: every lead would look new. So each connection checks an
 * epoch marker written once with SET NX (<prefix>:epoch on one server; on a cluster one per
 * shard, <prefix>:{s}:epoch, checked on the master serving it): if the value this process
 * saw before is gone or different, the loss is logged as an error and counted
 * (funneld_redis_data_lost_total), and processing goes on with the store as it is now.
 */
#include "funneld/store.h"

#include <hiredis/async.h>
#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "funneld/analytics.h"
#include "funneld/cluster.h"
#include "funneld/fast.h"
#include "funneld/host.h"
#include "funneld/keys.h"
#include "funneld/lead_queue.h"
#include "funneld/merge_step.h"
#include "funneld/msg.h"
#include "funneld/redis_loop.h"
#include "funneld/reply_arena.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A step takes well under a millisecond; five seconds without any reply while steps are
 * outstanding means the connection is dead or black-holed. hiredis 0.14's libuv adapter
 * in particular ignores a poll error (libuv reports POLLERR, e.g. after a reset, as a
 * negative status and stops the handle), leaving the connection silent forever. */
#define REPLY_TIMEOUT_MS 5000
#define PING_MS 1000 /* idle time after which the connection is checked */
/* The watchdog runs every tick; a run this much later than the last one means the loop
 * itself was held (a blocking librdkafka call, a stopped or starved process). */
#define LOOP_STALL_MS 1000
/* The slot map is asked for again at most this often while redirects come in, every
 * REFRESH_DOWN_MS while a master is unreachable or a slot uncovered (to find a promoted
 * replica), and every REFRESH_IDLE_MS otherwise (a failover with no traffic to tell). */
#define REFRESH_MIN_MS 100
#define REFRESH_DOWN_MS 1000
#define REFRESH_IDLE_MS 10000
/* Steps in limbo after TRYAGAIN or CLUSTERDOWN wait this long, doubling up to the max. */
#define LIMBO_MIN_MS 50
#define LIMBO_MAX_MS 2000
/* On a cluster a step counts once a replica has it too (WAIT 1): else a master that dies
 * right after answering takes the write with it, and its promoted replica would not know
 * the event was applied. A replica slower than this is not waited for (logged, counted). */
#define WAIT_MS 500
/* A repeated cause (a redirect storm, a failing step, a seed that is no cluster node) is
 * logged once per interval, with the count of those held back. */
#define LOG_EVERY_MS 10000

/* A generic command's completion, kept on a free list: no allocation per command once warm. */
typedef struct store_call {
    fn_store_t *s;
    fn_store_cb cb;
    void *priv;
    struct store_call *next;
} store_call_t;

/* A step's reply kept until the WAIT after it confirms that a replica has the write. */
typedef struct held {
    fn_msg_t *m;
    redisReply *reply; /* a copy: hiredis frees its own after the callback */
    struct held *next;
} held_t;

/* One Redis node's connection and the steps bound for it. */
typedef struct conn {
    fn_store_t *s;
    char host[FN_CLUSTER_HOST_MAX];
    int port;
    redisAsyncContext *ac; /* NULL while down */
    bool ready;            /* connected, authenticated, scripts loaded */
    bool fcall;            /* the step library is loaded there: steps go by FCALL */
    bool retired;          /* no longer a master: closed once its replies are in */
    fn_msg_queue_t wait;   /* routed here, ready to send, in order */
    fn_msg_queue_t sent;   /* sent, replies come back in this order */
    int64_t backoff_ms;
    int64_t progress_ms; /* last reply, or first send into an empty "sent" queue */
    int64_t connect_ms;  /* when the current connection attempt began */
    int64_t ping_ms;     /* when an idle-check PING was sent, 0: none outstanding */
    char epoch_try[48];  /* the value this connection offered with SET NX */
    uv_timer_t timer;    /* the reconnect backoff */
    uint64_t steps;      /* step replies it brought (funneld_redis_node_steps_total) */
    fn_hist_t rtt;       /* their round trips (funneld_redis_node_roundtrip_seconds) */
    /* durable: the node is a master with a replica, so a step's reply is held until a WAIT
     * sent after the step answers (the WAITs are numbered by marks). */
    bool durable;
    bool wait_out; /* a WAIT is outstanding */
    bool unwaited; /* steps were sent since the last WAIT */
    uint32_t marks;
    held_t *held, *held_tail;
    size_t n_held;
    struct conn *dead_next;
} conn_t;

struct fn_store {
    fn_host_t host; /* the loop, config, log, counters and the stop on a fatal error */
    fn_store_hooks_t hooks;
    bool started;
    bool cluster;
    conn_t **conns; /* every live conn; one server: exactly one */
    size_t n_conns;
    conn_t *dead; /* retired conns, their timers closed; freed with the store */
    char sha[FN_SCRIPT_COUNT][41];
    char instance[33]; /* random per process: with a message number, names pending results */
    fn_buf_t step_cmd; /* the RESP step being sent; hiredis copies it, and a re-send after a
                        * reconnect or a redirect builds it again from the event */
    fn_lead_queue_t leads;
    fn_msg_queue_t limbo; /* steps with nowhere to go yet */
    int64_t limbo_at_ms;  /* when limbo is routed again */
    int64_t limbo_backoff_ms;
    int64_t watch_ms; /* the watchdog's last run (a late one means a loop stall) */
    uint64_t connects;
    /* cluster */
    fn_cluster_map_t *map;
    conn_t **master_conn;    /* per node of map: its conn when a master serving slots */
    uint16_t *shard_slot;    /* the slot of each shard's hash tag */
    bool refreshing;         /* a CLUSTER SLOTS is outstanding */
    size_t map_nodes_logged; /* the node count of the last map logged */
    bool lonely;             /* a master has no replica in the map (yet: a new cluster lists
                              * them a little after it is up), so its steps are not waited for */
    bool refresh_wanted;
    int64_t refresh_ms;    /* when the last one was sent */
    size_t next_seed;      /* the seed tried next when no node answers */
    char detail[320];      /* why Redis is not usable, for /readyz; "" when it is */
    char down_detail[320]; /* fn_store_detail's text for a master that is down */
    /* The epoch marker as first seen: one server's, or each shard's on a cluster. */
    char epoch[48];
    char (*shard_epoch)[48];
    fn_log_limit_t lim_step, lim_redirect, lim_map, lim_wait, lim_lost;
    store_call_t *free_calls;
};

static void connect_now(conn_t *c);
static void flush_conn(conn_t *c);
static void want_refresh(fn_store_t *s);
static void maybe_wait(conn_t *c);
static void on_fast_reply(conn_t *c, fn_msg_t *m, const redisReply *reply);
static void step_answered(conn_t *c, fn_msg_t *m, const redisReply *reply);
static void route_step(fn_store_t *s, fn_msg_t *m);

/* Conditions that pass (a reload, a failover, a script cache flush, memory pressure, auth
 * being fixed): the step is retried after a reconnect for as long as they last. */
bool fn_store_transient(const char *err)
{
    static const char *const prefixes[] = {"NOSCRIPT",    "ERR Function not found",
                                           "LOADING",     "BUSY",
                                           "OOM",         "READONLY",
                                           "MASTERDOWN",  "TRYAGAIN",
                                           "CLUSTERDOWN", "MOVED",
                                           "ASK",         "NOAUTH",
                                           "NOPERM"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static const fn_config_t *running(const fn_store_t *s)
{
    return *s->host.cfg;
}

/* ---- routing ---- */

static conn_t *route_slot(const fn_store_t *s, unsigned slot)
{
    if (!s->cluster)
        return s->conns[0];
    if (!s->map)
        return NULL;
    int i = fn_cluster_map_master(s->map, slot);
    return i < 0 ? NULL : s->master_conn[i];
}

static conn_t *route_key(const fn_store_t *s, const char *key)
{
    if (!s->cluster)
        return s->conns[0];
    return route_slot(s, fn_cluster_keyslot(key, strlen(key)));
}

static conn_t *route_msg(const fn_store_t *s, const fn_msg_t *m)
{
    if (!s->cluster)
        return s->conns[0];
    return route_slot(s, s->shard_slot[fn_step_shard(running(s), m->lead_hash)]);
}

/* Appends q to the back of into, emptying q. */
static void queue_move(fn_msg_queue_t *into, fn_msg_queue_t *q)
{
    if (!q->head)
        return;
    if (into->tail)
        into->tail->q_next = q->head;
    else
        into->head = q->head;
    into->tail = q->tail;
    into->len += q->len;
    memset(q, 0, sizeof *q);
}

static void to_limbo(fn_store_t *s, fn_msg_t *m)
{
    m->state = FN_MSG_REDIS_WAIT;
    fn_queue_push(&s->limbo, m);
}

/* Routes every step in limbo again; those with nowhere to go stay. */
static void route_limbo(fn_store_t *s)
{
    fn_msg_queue_t q = s->limbo;
    memset(&s->limbo, 0, sizeof s->limbo);
    fn_msg_t *m;
    while ((m = fn_queue_pop(&q))) {
        conn_t *c = route_msg(s, m);
        fn_queue_push(c ? &c->wait : &s->limbo, m);
    }
    for (size_t i = 0; i < s->n_conns; i++)
        flush_conn(s->conns[i]);
}

/* Limbo is routed again after a pause that doubles while redirects keep coming. */
static void limbo_later(fn_store_t *s)
{
    s->limbo_backoff_ms = s->limbo_backoff_ms ? s->limbo_backoff_ms * 2 : LIMBO_MIN_MS;
    if (s->limbo_backoff_ms > LIMBO_MAX_MS)
        s->limbo_backoff_ms = LIMBO_MAX_MS;
    s->limbo_at_ms = fn_now_ms() + s->limbo_backoff_ms;
}

/* ---- replies held for a replica ---- */

/* A deep copy freeReplyObject can free (the connection's replies come from an arena,
 * reply_arena.h, freed with the reply by hiredis after its callback). */
static redisReply *reply_copy(const redisReply *r)
{
    redisReply *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->type = r->type;
    c->integer = r->integer;
    if (r->str) {
        if (!(c->str = malloc(r->len + 1)))
            goto fail;
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    }
    if (r->elements) {
        if (!(c->element = calloc(r->elements, sizeof *c->element)))
            goto fail;
        c->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i] && !(c->element[i] = reply_copy(r->element[i])))
                goto fail;
    }
    return c;
fail:
    freeReplyObject(c);
    return NULL;
}

/* Hands the held replies covered by WAIT number upto (all of them: UINT32_MAX) to the
 * spine, in order. */
static void deliver_held(conn_t *c, uint32_t upto)
{
    fn_store_t *s = c->s;
    while (c->held && c->held->m->wait_mark <= upto) {
        held_t *h = c->held;
        c->held = h->next;
        if (!c->held)
            c->held_tail = NULL;
        c->n_held--;
        s->hooks.step_reply(s->hooks.priv, h->m, h->reply);
        freeReplyObject(h->reply);
        free(h);
    }
}

/* Takes the held steps back, to be sent again (their reply may not have survived the node),
 * onto the front of q. */
static void unhold(conn_t *c, fn_msg_queue_t *q)
{
    fn_msg_queue_t back = {0};
    while (c->held) {
        held_t *h = c->held;
        c->held = h->next;
        fn_queue_push(&back, h->m);
        freeReplyObject(h->reply);
        free(h);
    }
    c->held_tail = NULL;
    c->n_held = 0;
    queue_move(&back, q);
    *q = back;
}

static void on_wait(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    redisReply *reply = r;
    c->wait_out = false;
    if (!reply)
        return; /* lost: on_disconnect sends the held steps again */
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 1) {
        s->host.stats->redis_unreplicated++;
        uint64_t skipped;
        if (fn_log_limit_pass(&s->lim_wait, fn_now_ms(), LOG_EVERY_MS, &skipped))
            fn_log(s->host.log, FN_LOG_WARN, "redis",
                   "%s:%d: no replica confirmed the writes within %d ms (%s); going on without "
                   "(%llu more since the last line)",
                   c->host, c->port, WAIT_MS,
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "WAIT answered 0",
                   (unsigned long long)skipped);
    }
    deliver_held(c, (uint32_t)(uintptr_t)priv);
    maybe_wait(c); /* the steps sent while this one was outstanding */
}

/* One WAIT outstanding per connection at a time, covering every step sent before it. */
static void maybe_wait(conn_t *c)
{
    if (!c->durable || !c->unwaited || c->wait_out || !c->ac)
        return;
    uint32_t mark = c->marks + 1;
    if (redisAsyncCommand(c->ac, on_wait, (void *)(uintptr_t)mark, "WAIT 1 %d", WAIT_MS) !=
        REDIS_OK)
        return;
    c->marks = mark;
    c->wait_out = true;
    c->unwaited = false;
}

/* ---- steps ---- */

#define MSG_OF(node) ((fn_msg_t *)((char *)(node)-offsetof(fn_msg_t, lead)))

/* fn_msg_t.fast: where a step is on the fast path */
enum {
    FAST_UNTRIED = 0, /* not yet: the next send decides */
    FAST_READ,        /* its lead's HGETALL is out */
    FAST_APPLY,       /* its apply is out */
    FAST_WHOLE,       /* the whole step's (declined, stale, or not a candidate) */
};

static void log_redirect(fn_store_t *s, const conn_t *c, const char *err)
{
    uint64_t skipped;
    if (fn_log_limit_pass(&s->lim_redirect, fn_now_ms(), LOG_EVERY_MS, &skipped))
        fn_log(s->host.log, FN_LOG_INFO, "redis",
               "%s:%d: %.200s (following it; %llu more redirect(s) since the last line)", c->host,
               c->port, err, (unsigned long long)skipped);
}

/* m waits in limbo for a cluster that sent it elsewhere or back for later: routed again
 * after a backoff (pause) or once the map is refreshed (refresh), or both. */
static void step_waits(conn_t *c, fn_msg_t *m, const redisReply *reply, bool pause, bool refresh)
{
    fn_store_t *s = c->s;
    log_redirect(s, c, reply->str);
    to_limbo(s, m);
    if (pause)
        limbo_later(s);
    if (refresh)
        want_refresh(s);
}

/* A cluster's answer that the step belongs elsewhere, or later: true when handled (m then
 * waits in limbo). */
static bool follow_cluster_error(conn_t *c, fn_msg_t *m, const redisReply *reply)
{
    fn_stats_t *st = c->s->host.stats;
    switch (fn_cluster_classify(reply->str, reply->len, c->host, NULL)) {
    case FN_CLUSTER_MOVED:
    case FN_CLUSTER_BAD_REDIRECT:
        st->redis_moved++;
        step_waits(c, m, reply, false, true);
        return true;
    case FN_CLUSTER_ASK:
        /* Not followed: the importing node would run the step under ASKING while keys the
         * script finds on its own (flows, sketches) may still be on this node; it would make
         * them anew there, and the migration could then not move the old ones. The step
         * waits until the slot has moved (then MOVED), like a TRYAGAIN. */
        st->redis_ask++;
        step_waits(c, m, reply, true, false);
        return true;
    case FN_CLUSTER_TRYAGAIN:
        st->redis_tryagain++;
        step_waits(c, m, reply, true, true);
        return true;
    case FN_CLUSTER_CLUSTERDOWN:
        st->redis_clusterdown++;
        step_waits(c, m, reply, true, true);
        return true;
    case FN_CLUSTER_REPLY_OTHER:
        break;
    }
    /* A key the script found on its own has left with a slot being resharded: step.lua
     * reads every such key before its first write, so nothing was written, and the step
     * goes again once the slot has moved. */
    if (strstr(reply->str, "non local key")) {
        st->redis_tryagain++;
        step_waits(c, m, reply, true, true);
        return true;
    }
    return false;
}

static void on_step_reply(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    fn_msg_t *m = priv;
    redisReply *reply = r;
    if (!reply)
        return; /* connection lost: on_disconnect re-queues everything still in "sent" */
    fn_msg_t *head = fn_queue_pop(&c->sent);
    if (head != m) {
        /* Back in front, so that on_disconnect re-queues it with the rest. */
        if (head) {
            head->q_next = c->sent.head;
            c->sent.head = head;
            if (!c->sent.tail)
                c->sent.tail = head;
            c->sent.len++;
        }
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "%s:%d: reply out of order; reconnecting",
               c->host, c->port);
        redisAsyncDisconnect(ac);
        return;
    }
    c->progress_ms = fn_now_ms();
    c->steps++;
    double rtt = (double)(uv_hrtime() - m->sent_ns) / 1e9;
    fn_hist_observe(&s->host.stats->redis_rtt, rtt);
    fn_hist_observe(&c->rtt, rtt);
    if (m->fast == FAST_READ || m->fast == FAST_APPLY) {
        on_fast_reply(c, m, reply);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (s->cluster && follow_cluster_error(c, m, reply))
            return;
        if (!fn_store_transient(reply->str)) {
            /* The step itself fails, and is dead-lettered at once, never retried: the script
             * is deterministic, so a retry fails the same way. step.lua checks what could fail
             * before its first write and refuses with "nothing written"; anything else (a
             * foreign key of another type under the prefix) may have written part of the step,
             * which Redis never rolls back, and a retry would apply that part again. */
            char reason[256];
            snprintf(reason, sizeof reason, "step: %.200s", reply->str);
            s->hooks.step_failed(s->hooks.priv, m, reason); /* which logs what it does */
            return;
        }
        fn_cluster_reply_t kind = fn_cluster_classify(reply->str, reply->len, c->host, NULL);
        if (kind != FN_CLUSTER_REPLY_OTHER) {
            /* One server answering like a cluster node: no reconnect cures that, so the
             * step waits (with backoff) and readiness says why. */
            snprintf(s->detail, sizeof s->detail,
                     "%s:%d answers as a Redis Cluster node (%.40s): set redis.cluster to true",
                     c->host, c->port, reply->str);
            uint64_t skipped;
            if (fn_log_limit_pass(&s->lim_step, fn_now_ms(), LOG_EVERY_MS, &skipped))
                fn_log(s->host.log, FN_LOG_ERROR, "redis", "%s (%llu more since the last line)",
                       s->detail, (unsigned long long)skipped);
            to_limbo(s, m);
            limbo_later(s);
            return;
        }
        /* the step's script or function is gone (SCRIPT FLUSH, FUNCTION FLUSH, a restart) */
        bool noscript = strncmp(reply->str, "NOSCRIPT", 8) == 0 ||
                        strncmp(reply->str, "ERR Function not found", 22) == 0;
        uint64_t skipped;
        if (fn_log_limit_pass(&s->lim_step, fn_now_ms(), noscript ? 0 : LOG_EVERY_MS, &skipped))
            fn_log(s->host.log, noscript ? FN_LOG_INFO : FN_LOG_WARN, "redis",
                   "%s:%d: step failed: %s%s (%llu more since the last line)", c->host, c->port,
                   reply->str, noscript ? " (loading it again)" : "; retrying",
                   (unsigned long long)skipped);
        /* Retry after a pause; the lead's later events wait behind this one. A reconnect
         * also reloads the script and the library, which is what NOSCRIPT needs. */
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&c->wait, m);
        redisAsyncDisconnect(ac);
        return;
    }
    step_answered(c, m, reply);
}

/* m's step answered with reply (not an error): to the spine now, or once a replica has it. */
static void step_answered(conn_t *c, fn_msg_t *m, const redisReply *reply)
{
    fn_store_t *s = c->s;
    s->limbo_backoff_ms = 0;
    if (!s->cluster)
        s->detail[0] = '\0';
    held_t *h = c->durable ? malloc(sizeof *h) : NULL;
    if (h && (h->reply = reply_copy(reply))) {
        h->m = m;
        h->next = NULL;
        if (c->held_tail)
            c->held_tail->next = h;
        else
            c->held = h;
        c->held_tail = h;
        c->n_held++;
        maybe_wait(c); /* when the WAIT before it has answered already, or none was sent */
        return;
    }
    free(h); /* out of memory, or not durable: the reply counts now */
    s->hooks.step_reply(s->hooks.priv, m, reply);
}

/* Bookkeeping of a command of m's just handed to hiredis; write: it may write (a WAIT covers
 * it on a durable node). */
static void step_sent(conn_t *c, fn_msg_t *m, bool write)
{
    m->state = FN_MSG_REDIS_SENT;
    m->sent_ns = uv_hrtime();
    m->wait_mark = c->marks + 1;
    if (write)
        c->unwaited = true;
    if (!c->sent.head)
        c->progress_ms = fn_now_ms();
    fn_queue_push(&c->sent, m);
}

/* Sends m's lead read for the fast path when m may take it (true), else decides it is the
 * whole step's. A read or apply sent before and not answered (a reconnect, a redirect)
 * starts again from the read. */
static bool send_fast_read(conn_t *c, fn_msg_t *m)
{
    fn_store_t *s = c->s;
    if (m->fast == FAST_READ || m->fast == FAST_APPLY)
        m->fast = FAST_UNTRIED;
    if (m->fast != FAST_UNTRIED)
        return false;
    const fn_config_t *cfg = s->hooks.step_config(s->hooks.priv, m);
    int64_t now = fn_now_ms();
    if (m->phase != FN_PHASE_STEP || !c->fcall || !fn_fast_candidate(cfg, &m->ev, now)) {
        m->fast = FAST_WHOLE;
        return false;
    }
    fn_lead_keys_t k;
    fn_step_keys_fast(cfg, m->lead_hash, &k);
    /* written as the step is: hiredis's formatting was most of the read's cost */
    if (fn_resp_head(&s->step_cmd, 2) || fn_resp_bulk(&s->step_cmd, "HGETALL", 7) ||
        fn_resp_bulk(&s->step_cmd, k.lead, strlen(k.lead))) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "out of memory building a step");
        s->host.stop(s->host.data, 1);
        return true;
    }
    if (redisAsyncFormattedCommand(c->ac, on_step_reply, m, s->step_cmd.data, s->step_cmd.len) !=
        REDIS_OK) {
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&c->wait, m);
        return true;
    }
    m->fast = FAST_READ;
    m->fast_now = now;
    step_sent(c, m, false);
    return true;
}

/* The lead read for m's fast path, or its apply, answered. */
static void on_fast_reply(conn_t *c, fn_msg_t *m, const redisReply *reply)
{
    fn_store_t *s = c->s;
    fn_stats_t *st = s->host.stats;
    if (reply->type == REDIS_REPLY_ERROR && s->cluster && follow_cluster_error(c, m, reply))
        return; /* sent again from its read once it has somewhere to go */
    if (reply->type == REDIS_REPLY_ERROR) {
        /* whatever it is, the whole step meets it too, and handles it as it does */
        m->fast = FAST_WHOLE;
        route_step(s, m);
        return;
    }
    if (m->fast == FAST_APPLY) {
        if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING) {
            if (reply->len == 2 && memcmp(reply->str, "ok", 2) == 0) {
                st->fast_applied++;
                fn_fast_reply_t room;
                step_answered(c, m, fn_fast_reply(&m->fast_out, &room));
                return;
            }
        }
        st->fast_stale++; /* written since it was read: the whole step decides again */
        m->fast = FAST_WHOLE;
        route_step(s, m);
        return;
    }
    const fn_config_t *cfg = s->hooks.step_config(s->hooks.priv, m);
    const fn_fast_in_t in = {cfg,         &m->ev,      m->lead_hash,   reply,
                             m->fast_now, m->clock_ms, m->part->topic, m->part->partition};
    if (!fn_fast_build(&in, fn_lua_step_lib_fast_name, &s->step_cmd, &m->fast_out)) {
        st->fast_declined++;
        m->fast = FAST_WHOLE;
        route_step(s, m);
        return;
    }
    /* sent at once, ahead of the steps waiting (other leads': this one has one at a time) */
    if (!c->ready || !c->ac ||
        redisAsyncFormattedCommand(c->ac, on_step_reply, m, s->step_cmd.data, s->step_cmd.len) !=
            REDIS_OK) {
        m->fast = FAST_UNTRIED;
        route_step(s, m);
        return;
    }
    m->fast = FAST_APPLY;
    step_sent(c, m, true);
}

static void send_step(conn_t *c, fn_msg_t *m)
{
    fn_store_t *s = c->s;
    if (send_fast_read(c, m))
        return;
    /* "<instance>:<message>", written by hand rather than by snprintf: once per event */
    char token[sizeof s->instance + 1 + FN_I64_TEXT];
    size_t il = strlen(s->instance);
    memcpy(token, s->instance, il);
    token[il] = ':';
    fn_i64_text((int64_t)m->seq, token + il + 1);
    const fn_config_t *cfg = s->hooks.step_config(s->hooks.priv, m);
    const fn_step_call_t call = c->fcall ? (fn_step_call_t){"FCALL", fn_lua_step_lib_name}
                                         : (fn_step_call_t){"EVALSHA", s->sha[FN_SCRIPT_STEP]};
    int built =
        m->phase == FN_PHASE_STEP
            ? fn_step_build(cfg, &call, token, &m->ev, m->lead_hash, fn_now_ms(), m->clock_ms,
                            m->part->topic, m->part->partition, &s->step_cmd)
            : s->hooks.merge_build(s->hooks.priv, m, s->sha[FN_SCRIPT_MERGE], token, &s->step_cmd);
    if (built) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "out of memory building a step");
        s->host.stop(s->host.data, 1);
        return;
    }
    if (redisAsyncFormattedCommand(c->ac, on_step_reply, m, s->step_cmd.data, s->step_cmd.len) !=
        REDIS_OK) {
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&c->wait, m);
        return;
    }
    step_sent(c, m, true);
}

static void flush_conn(conn_t *c)
{
    while (c->ready && c->ac && c->wait.head) {
        fn_msg_t *m = fn_queue_pop(&c->wait);
        send_step(c, m);
        if (m->state != FN_MSG_REDIS_SENT)
            break;
    }
    maybe_wait(c);
}

/* Sends m to the node of its shard, or parks it in limbo. */
static void route_step(fn_store_t *s, fn_msg_t *m)
{
    m->state = FN_MSG_REDIS_WAIT;
    conn_t *c = route_msg(s, m);
    if (!c) {
        fn_queue_push(&s->limbo, m);
        want_refresh(s);
        return;
    }
    fn_queue_push(&c->wait, m);
    flush_conn(c);
}

void fn_store_submit(fn_store_t *s, fn_msg_t *m)
{
    m->fast = FAST_UNTRIED;
    if (!fn_lead_queue_push(&s->leads, &m->lead, m->lead_hash)) {
        m->state = FN_MSG_LEAD_WAIT;
        return;
    }
    route_step(s, m);
}

void fn_store_resend(fn_store_t *s, fn_msg_t *m)
{
    m->fast = FAST_UNTRIED;
    route_step(s, m);
}

void fn_store_resend_later(fn_store_t *s, fn_msg_t *m)
{
    to_limbo(s, m);
    limbo_later(s);
}

redisReply *fn_store_reply_copy(const redisReply *r)
{
    return reply_copy(r);
}

void fn_store_release(fn_store_t *s, fn_msg_t *m)
{
    fn_lead_node_t *next = fn_lead_queue_release(&s->leads, &m->lead);
    if (next)
        route_step(s, MSG_OF(next));
}

void fn_store_clear_pending(fn_store_t *s, fn_msg_t *m)
{
    conn_t *c = route_msg(s, m);
    if (!c || !c->ready)
        return; /* harmless to skip: a replay would only re-emit the same ids */
    fn_lead_keys_t k;
    fn_step_keys(running(s), m->lead_hash, &k);
    /* by argument vector: hiredis's format parser was most of this call's work */
    const char *argv[] = {"HDEL", k.pending, m->ev.event_id.p};
    const size_t lens[] = {4, strlen(k.pending), m->ev.event_id.len};
    redisAsyncCommandArgv(c->ac, NULL, NULL, 3, argv, lens);
}

/* ---- connections ---- */

static void on_conn_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (!c->ac && !c->retired)
        connect_now(c);
}

static conn_t *conn_new(fn_store_t *s, const char *host, int port)
{
    conn_t *c = calloc(1, sizeof *c);
    conn_t **grown = c ? realloc(s->conns, (s->n_conns + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(c);
        return NULL;
    }
    s->conns = grown;
    s->conns[s->n_conns++] = c;
    c->s = s;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    uv_timer_init(s->host.loop, &c->timer);
    c->timer.data = c;
    return c;
}

/* Takes c out of the live conns (its timer closed); the memory goes with the store. Only
 * for a conn without a connection. */
static void conn_bury(fn_store_t *s, conn_t *c)
{
    assert(!c->ac);
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i] == c) {
            s->conns[i] = s->conns[--s->n_conns];
            break;
        }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, NULL);
    c->dead_next = s->dead;
    s->dead = c;
}

/* c serves no slot any more: its waiting steps go elsewhere, and it closes once the
 * replies it is owed are in. */
static void conn_retire(fn_store_t *s, conn_t *c)
{
    c->retired = true;
    c->ready = false;
    for (fn_msg_t *m = c->wait.head; m; m = m->q_next)
        m->state = FN_MSG_REDIS_WAIT;
    queue_move(&s->limbo, &c->wait);
    if (c->ac)
        redisAsyncDisconnect(c->ac); /* waits for the replies; on_disconnect buries it */
    else
        conn_bury(s, c);
}

static void schedule_reconnect(conn_t *c)
{
    fn_store_t *s = c->s;
    if (c->retired || (s->hooks.finished && s->hooks.finished(s->hooks.priv)))
        return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&c->timer, on_conn_timer, (uint64_t)c->backoff_ms, 0);
}

/* Stores a SCRIPT LOAD reply's digest into sha (41 bytes); false (and the connection is
 * re-made) when the reply is not one. */
static bool script_loaded(conn_t *c, redisAsyncContext *ac, const redisReply *reply,
                          const char *what, char *sha)
{
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        fn_log(c->s->host.log, FN_LOG_ERROR, "redis", "%s:%d: SCRIPT LOAD (%s) failed: %s", c->host,
               c->port, what, reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        redisAsyncDisconnect(ac);
        return false;
    }
    memcpy(sha, reply->str, 40);
    sha[40] = '\0';
    return true;
}

static void check_shard_epochs(conn_t *c);

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    if (!r || !script_loaded(c, ac, r, "step", s->sha[FN_SCRIPT_STEP]))
        return;
    c->ready = true;
    c->backoff_ms = 0;
    fn_log(s->host.log, FN_LOG_INFO, "redis", "%s:%d ready (step %s %s), %zu step(s) to send",
           c->host, c->port, c->fcall ? "function" : "script",
           c->fcall ? fn_lua_step_lib_name : s->sha[FN_SCRIPT_STEP], c->wait.len);
    if (s->cluster)
        check_shard_epochs(c);
    if (s->hooks.ready)
        s->hooks.ready(s->hooks.priv);
    flush_conn(c);
    if (s->limbo.head)
        route_limbo(s);
}

/* FUNCTION LOAD's answer (fn_step_lib_loaded). Anything else (a Redis before 7, an ACL without
 * FUNCTION LOAD or FCALL) leaves this connection's steps on EVALSHA of the same code. */
static void on_lib_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    const redisReply *reply = r;
    if (!reply)
        return;
    c->fcall = fn_step_lib_loaded(reply);
    if (!c->fcall)
        fn_log(c->s->host.log, FN_LOG_INFO, "redis",
               "%s:%d: FUNCTION LOAD: %s; steps run as a script (EVALSHA) there", c->host, c->port,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
}

static void on_fire_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    if (r)
        script_loaded(c, ac, r, "fire", c->s->sha[FN_SCRIPT_FIRE]);
}

static void on_merge_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    if (r)
        script_loaded(c, ac, r, "merge", c->s->sha[FN_SCRIPT_MERGE]);
}

static void on_read_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    if (r)
        script_loaded(c, ac, r, "read", c->s->sha[FN_SCRIPT_READ]);
}

static void on_epoch_set(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        fn_log(c->s->host.log, FN_LOG_WARN, "redis",
               "%s:%d: epoch marker: %s; a loss of data goes unnoticed", c->host, c->port,
               reply->str);
    else if (reply && reply->type == REDIS_REPLY_STATUS && !priv && !c->s->epoch[0])
        fn_log(c->s->host.log, FN_LOG_INFO, "redis", "empty store: new epoch %s", c->epoch_try);
}

/* Compares a marker read back with the one remembered (seen: 48 bytes), and remembers it. */
static void epoch_seen(fn_store_t *s, const redisReply *reply, char *seen, const char *where)
{
    char now[48];
    snprintf(now, sizeof now, "%.*s", (int)reply->len, reply->str);
    uint64_t skipped;
    if (seen[0] && strcmp(now, seen) != 0) {
        s->host.stats->redis_data_lost++;
        /* a cluster master that came back empty loses every shard it serves: one line */
        if (fn_log_limit_pass(&s->lim_lost, fn_now_ms(), LOG_EVERY_MS, &skipped))
            fn_log(s->host.log, FN_LOG_ERROR, "redis",
                   "the store lost its data%s: epoch %s is gone (now %s); Redis was restarted "
                   "without persistence, flushed or replaced. Lead state, de-duplication, "
                   "timers and counters written before are lost; processing goes on from here "
                   "(%llu more marker(s) found gone since the last line)",
                   where, seen, now, (unsigned long long)skipped);
    }
    memcpy(seen, now, sizeof now);
}

static void on_epoch_get(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_STRING)
        epoch_seen(c->s, reply, c->s->epoch, "");
    /* else: an error reply was logged by the SET; the connection is being re-made */
}

static void on_shard_epoch_get(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    redisReply *reply = r;
    unsigned shard = (unsigned)((uintptr_t)priv - 1);
    if (!reply || reply->type != REDIS_REPLY_STRING || !s->shard_epoch ||
        shard >= (unsigned)running(s)->redis_shards)
        return;
    char where[FN_CLUSTER_HOST_MAX + 48];
    snprintf(where, sizeof where, " (shard %u on %s:%d)", shard, c->host, c->port);
    epoch_seen(s, reply, s->shard_epoch[shard], where);
}

/* Offers and reads back the marker of every shard c's master serves. */
static void check_shard_epochs(conn_t *c)
{
    fn_store_t *s = c->s;
    if (!s->map || !s->shard_epoch)
        return;
    snprintf(c->epoch_try, sizeof c->epoch_try, "%s-%llu", s->instance,
             (unsigned long long)s->connects);
    for (unsigned shard = 0; shard < (unsigned)running(s)->redis_shards; shard++) {
        if (route_slot(s, s->shard_slot[shard]) != c)
            continue;
        char key[96];
        fn_key_shard_epoch(key, sizeof key, running(s)->key_prefix, shard);
        void *tag = (void *)(uintptr_t)(shard + 1);
        redisAsyncCommand(c->ac, on_epoch_set, tag, "SET %s %s NX", key, c->epoch_try);
        redisAsyncCommand(c->ac, on_shard_epoch_get, tag, "GET %s", key);
    }
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        bool auth = strcmp(priv, "AUTH") == 0;
        fn_log(c->s->host.log, FN_LOG_ERROR, "redis", "%s:%d: %s: %s%s", c->host, c->port,
               (const char *)priv, reply->str,
               auth ? " (check the user and password in redis.url or FUNNELD_REDIS_URL)" : "");
        redisAsyncDisconnect(ac);
    }
}

static void maybe_refresh(fn_store_t *s);

/* The commands after the gate: the epoch marker (one server) and the scripts. */
static void send_setup(conn_t *c, redisAsyncContext *ac)
{
    fn_store_t *s = c->s;
    ++s->connects;
    if (!s->cluster) {
        /* Two plain commands rather than SET NX GET, which needs Redis 7. */
        snprintf(c->epoch_try, sizeof c->epoch_try, "%s-%llu", s->instance,
                 (unsigned long long)s->connects);
        char epoch[64];
        fn_key_epoch(epoch, sizeof epoch, running(s)->key_prefix);
        redisAsyncCommand(ac, on_epoch_set, NULL, "SET %s %s NX", epoch, c->epoch_try);
        redisAsyncCommand(ac, on_epoch_get, NULL, "GET %s", epoch);
    } else if (!s->map || s->refresh_wanted) {
        maybe_refresh(s);
    }
    /* Replies come in order: the connection is ready once the step script, loaded last, is. */
    redisAsyncCommand(ac, on_fire_loaded, NULL, "SCRIPT LOAD %s", fn_lua_fire_src);
    redisAsyncCommand(ac, on_read_loaded, NULL, "SCRIPT LOAD %s", fn_lua_read_src);
    redisAsyncCommand(ac, on_merge_loaded, NULL, "SCRIPT LOAD %s", fn_lua_merge_src);
    c->fcall = false;
    redisAsyncCommand(ac, on_lib_loaded, NULL, "FUNCTION LOAD %s", fn_lua_step_lib);
    redisAsyncCommand(ac, on_script_loaded, NULL, "SCRIPT LOAD %s", fn_lua_step_src);
}

/* A connection's first commands are small ones: AUTH and SELECT when configured, then a
 * PING whose answer opens the gate to the rest. Redis (6.2.6 and later) drops a client that
 * sends a bulk over 16 KB before it is authenticated, as the SCRIPT LOADs are; the reset
 * would throw away the AUTH error unread and leave the connection silent until the
 * watchdog. Behind the gate, a refused AUTH (WRONGPASS) or a server that wants a password
 * funneld was not given (NOAUTH) is logged, and the connection re-made with backoff. */
static void on_gate(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    redisReply *reply = r;
    if (!reply || (ac->c.flags & REDIS_DISCONNECTING))
        return; /* lost, or AUTH/SELECT failed (logged) and it is being re-made */
    if (reply->type == REDIS_REPLY_ERROR) {
        bool noauth = strncmp(reply->str, "NOAUTH", 6) == 0;
        fn_log(c->s->host.log, FN_LOG_ERROR, "redis", "%s:%d: %s%s", c->host, c->port, reply->str,
               noauth ? " (Redis wants a password: redis://[user:]password@host:port/db in "
                        "redis.url or FUNNELD_REDIS_URL)"
                      : "");
        redisAsyncDisconnect(ac);
        return;
    }
    c->progress_ms = fn_now_ms();
    send_setup(c, ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    if (status != REDIS_OK) {
        fn_log(s->host.log, FN_LOG_WARN, "redis", "connect %s:%d failed: %s; retrying in %lld ms",
               c->host, c->port, ac->errstr, (long long)c->backoff_ms);
        c->ac = NULL; /* hiredis frees the context after this callback */
        if (c->retired)
            conn_bury(s, c);
        else
            schedule_reconnect(c);
        want_refresh(s);
        return;
    }
    fn_log(s->host.log, FN_LOG_INFO, "redis", "connected to %s:%d", c->host, c->port);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    c->ac = NULL;
    c->ping_ms = 0;
    c->ready = false;
    c->wait_out = c->unwaited = false;
    /* Steps without a reply go back in front of the ones never sent, and before them the
     * ones whose reply no replica confirmed. */
    fn_msg_queue_t q = c->sent;
    memset(&c->sent, 0, sizeof c->sent);
    queue_move(&q, &c->wait);
    c->wait = q;
    unhold(c, &c->wait);
    for (fn_msg_t *m = c->wait.head; m; m = m->q_next)
        m->state = FN_MSG_REDIS_WAIT;
    if (c->retired) {
        /* routed by the watchdog, not here: this may run inside apply_map, mid-swap */
        queue_move(&s->limbo, &c->wait);
        conn_bury(s, c);
        s->limbo_at_ms = 0;
        return;
    }
    if (status != REDIS_OK || c->wait.len)
        fn_log(s->host.log, FN_LOG_WARN, "redis", "%s:%d disconnected (%s), %zu step(s) to re-send",
               c->host, c->port, ac->errstr[0] ? ac->errstr : "closed", c->wait.len);
    schedule_reconnect(c);
    want_refresh(s);
}

static void connect_now(conn_t *c)
{
    fn_store_t *s = c->s;
    char host[256], user[128], pass[256];
    int port, db;
    if (fn_redis_url_parse(running(s)->redis_url, host, sizeof host, &port, user, sizeof user, pass,
                           sizeof pass, &db)) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "redis.url: cannot parse");
        s->host.stop(s->host.data, 1);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (!ac || ac->err) {
        fn_log(s->host.log, FN_LOG_WARN, "redis", "connect %s:%d: %s", c->host, c->port,
               ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    if (fn_redis_loop_attach(ac, s->host.loop) != REDIS_OK) {
        fn_log(s->host.log, FN_LOG_WARN, "redis", "connect %s:%d: cannot watch its socket", c->host,
               c->port);
        redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    /* every reply built in one block: hiredis frees it after its callback, and a reply held
     * past that is a copy (reply_copy) */
    fn_reply_arena_use(ac->c.reader);
    ac->data = c;
    c->ac = ac;
    c->connect_ms = fn_now_ms();
    c->progress_ms = 0; /* set again once it answers the gate's PING */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (pass[0] && user[0])
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s %s", user, pass);
    else if (pass[0])
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", pass);
    if (db)
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %d", db);
    redisAsyncCommand(ac, on_gate, NULL, "PING"); /* the rest once it answers: see on_gate */
}

/* ---- the cluster's slot map ---- */

static conn_t *conn_find(const fn_store_t *s, const char *host, int port)
{
    for (size_t i = 0; i < s->n_conns; i++) {
        conn_t *c = s->conns[i];
        if (!c->retired && c->port == port && strcasecmp(c->host, host) == 0)
            return c;
    }
    return NULL;
}

/* The seeds in order: redis.url's node, then redis.seeds. */
static bool seed_addr(const fn_store_t *s, size_t i, char *host, size_t hostlen, int *port)
{
    const fn_config_t *cfg = running(s);
    char user[128], pass[256];
    int db;
    if (i == 0)
        return fn_redis_url_parse(cfg->redis_url, host, hostlen, port, user, sizeof user, pass,
                                  sizeof pass, &db) == 0;
    return i <= cfg->n_redis_seeds &&
           fn_redis_seed_parse(cfg->redis_seeds[i - 1], host, hostlen, port) == 0;
}

/* With no node reachable, one more seed is tried (a conn to it, kept until a map says
 * whether it is a master). */
static void try_next_seed(fn_store_t *s)
{
    for (size_t i = 0; i < s->n_conns; i++)
        if (s->conns[i]->ac && !s->conns[i]->retired)
            return; /* one is connecting or connected: wait for it */
    size_t n = 1 + running(s)->n_redis_seeds;
    for (size_t k = 0; k < n; k++) {
        size_t i = (s->next_seed + k) % n;
        char host[FN_CLUSTER_HOST_MAX];
        int port;
        if (!seed_addr(s, i, host, sizeof host, &port) || conn_find(s, host, port))
            continue;
        s->next_seed = i + 1;
        conn_t *c = conn_new(s, host, port);
        if (c)
            connect_now(c);
        return;
    }
}

static void apply_map(fn_store_t *s, fn_cluster_map_t *map);

static void log_map_trouble(fn_store_t *s, fn_log_level_t level)
{
    uint64_t skipped;
    if (fn_log_limit_pass(&s->lim_map, fn_now_ms(), LOG_EVERY_MS, &skipped))
        fn_log(s->host.log, level, "redis", "%s (%llu more since the last line)", s->detail,
               (unsigned long long)skipped);
}

static void on_slots(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    fn_store_t *s = c->s;
    redisReply *reply = r;
    s->refreshing = false;
    if (!reply) {
        s->refresh_wanted = true;
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s->refresh_wanted = true;
        bool not_cluster = strstr(reply->str, "cluster support disabled") != NULL;
        snprintf(s->detail, sizeof s->detail,
                 not_cluster ? "%s:%d is not a Redis Cluster node (%.60s): point redis.url at a "
                               "cluster node, or set redis.cluster to false"
                             : "%s:%d: CLUSTER SLOTS: %.100s",
                 c->host, c->port, reply->str);
        log_map_trouble(s, FN_LOG_ERROR);
        return;
    }
    char err[200];
    fn_cluster_map_t *map = fn_cluster_map_build(reply, c->host, err, sizeof err);
    if (!map) {
        s->refresh_wanted = true;
        snprintf(s->detail, sizeof s->detail, "%s:%d: unusable slot map: %s", c->host, c->port,
                 err);
        log_map_trouble(s, FN_LOG_ERROR);
        return;
    }
    apply_map(s, map);
}

/* Asks a reachable node for the slot map, unless one was asked for a moment ago (the
 * watchdog asks again then). */
static void maybe_refresh(fn_store_t *s)
{
    if (!s->cluster || !s->started || s->refreshing)
        return;
    int64_t now = fn_now_ms();
    if (s->refresh_ms && now - s->refresh_ms < REFRESH_MIN_MS) {
        s->refresh_wanted = true;
        return;
    }
    /* past the gate (it answered a PING), and of those the one heard from last: a node that
     * just died is often not known to be dead yet */
    conn_t *via = NULL;
    for (size_t i = 0; i < s->n_conns; i++) {
        conn_t *c = s->conns[i];
        if (c->ac && !c->retired && c->progress_ms && !(c->ac->c.flags & REDIS_DISCONNECTING) &&
            (!via || c->progress_ms > via->progress_ms))
            via = c;
    }
    if (!via) {
        s->refresh_wanted = true;
        try_next_seed(s);
        return;
    }
    if (redisAsyncCommand(via->ac, on_slots, NULL, "CLUSTER SLOTS") != REDIS_OK) {
        s->refresh_wanted = true;
        return;
    }
    s->refreshing = true;
    s->refresh_wanted = false;
    s->refresh_ms = now;
}

static void want_refresh(fn_store_t *s)
{
    if (!s->cluster)
        return;
    s->refresh_wanted = true;
    maybe_refresh(s);
}

/* Takes up a new slot map: a conn per master that serves slots (the ones already open are
 * kept), the others retired, and every step not yet sent routed again. */
static void apply_map(fn_store_t *s, fn_cluster_map_t *map)
{
    conn_t **by_node = calloc(map->n_nodes ? map->n_nodes : 1, sizeof *by_node);
    if (!by_node) {
        fn_cluster_map_free(map);
        s->refresh_wanted = true;
        return;
    }
    bool changed =
        !s->map || s->map->n_masters != map->n_masters || s->map->uncovered != map->uncovered;
    bool lonely = false;
    for (size_t i = 0; i < map->n_nodes; i++) {
        const fn_cluster_node_t *n = &map->nodes[i];
        if (n->master != -1 || n->slots == 0)
            continue;
        conn_t *c = conn_find(s, n->host, n->port);
        if (!c) {
            changed = true;
            if (!(c = conn_new(s, n->host, n->port))) {
                free(by_node);
                fn_cluster_map_free(map);
                s->refresh_wanted = true;
                return;
            }
            connect_now(c);
        }
        by_node[i] = c;
        bool durable = false;
        for (size_t j = 0; j < map->n_nodes && !durable; j++)
            durable = map->nodes[j].master == (int)i;
        if (c->durable && !durable)
            deliver_held(c, UINT32_MAX); /* no replica left to wait for */
        c->durable = durable;
        lonely |= !durable;
    }
    s->lonely = lonely;
    /* backwards: a retired conn without a connection leaves the array at once */
    for (size_t k = s->n_conns; k-- > 0;) {
        conn_t *c = s->conns[k];
        bool kept = false;
        for (size_t i = 0; i < map->n_nodes && !kept; i++)
            kept = by_node[i] == c;
        if (!kept && !c->retired) {
            changed = true;
            conn_retire(s, c);
        }
    }
    fn_cluster_map_free(s->map);
    free(s->master_conn);
    s->map = map;
    s->master_conn = by_node;
    for (size_t i = 0; i < s->n_conns; i++) {
        conn_t *c = s->conns[i];
        for (fn_msg_t *m = c->wait.head; m; m = m->q_next)
            m->state = FN_MSG_REDIS_WAIT;
        queue_move(&s->limbo, &c->wait);
    }
    s->detail[0] = '\0';
    if (map->uncovered) {
        char ranges[200];
        fn_cluster_map_uncovered_text(map, ranges, sizeof ranges);
        snprintf(s->detail, sizeof s->detail, "slots %s have no master", ranges);
        log_map_trouble(s, FN_LOG_ERROR);
    }
    if (changed || s->map_nodes_logged != map->n_nodes)
        fn_log(s->host.log, FN_LOG_INFO, "redis",
               "cluster map: %zu master(s), %zu node(s), %u slot(s) uncovered", map->n_masters,
               map->n_nodes, map->uncovered);
    s->map_nodes_logged = map->n_nodes;
    route_limbo(s);
    /* a conn that was ready already checks the markers of the shards it serves now */
    if (changed)
        for (size_t i = 0; i < s->n_conns; i++)
            if (s->conns[i]->ready)
                check_shard_epochs(s->conns[i]);
}

/* ---- life cycle ---- */

/* A random id for this process. Only uniqueness matters, so any failure of the kernel's
 * random source falls back to time, pid and address bits. */
static void instance_id(char out[33])
{
    uint64_t r[2] = {0, 0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(r, sizeof r, 1, f) != 1) {
        r[0] = (uint64_t)fn_now_ms() ^ ((uint64_t)getpid() << 32);
        r[1] = (uint64_t)(uintptr_t)out ^ (uint64_t)clock();
    }
    if (f)
        fclose(f);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)r[0], (unsigned long long)r[1]);
}

fn_store_t *fn_store_new(const fn_host_t *host)
{
    fn_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->host = *host;
    instance_id(s->instance);
    return s;
}

const char *fn_store_instance(const fn_store_t *s)
{
    return s->instance;
}

int fn_store_start(fn_store_t *s, const fn_store_hooks_t *hooks)
{
    assert(hooks && hooks->step_reply && hooks->step_failed && hooks->step_config);
    s->hooks = *hooks;
    const fn_config_t *cfg = running(s);
    s->cluster = cfg->redis_cluster;
    if (fn_lead_queue_init(&s->leads, cfg->max_in_flight))
        return FN_ERR;
    if (s->cluster) {
        size_t n = (size_t)cfg->redis_shards;
        s->shard_slot = calloc(n, sizeof *s->shard_slot);
        s->shard_epoch = calloc(n, sizeof *s->shard_epoch);
        if (!s->shard_slot || !s->shard_epoch)
            return FN_ERR;
        for (size_t i = 0; i < n; i++) {
            char tag[16];
            int len = snprintf(tag, sizeof tag, "{%zu}", i);
            s->shard_slot[i] = (uint16_t)fn_cluster_keyslot(tag, (size_t)len);
        }
    }
    char host[FN_CLUSTER_HOST_MAX];
    int port;
    if (!seed_addr(s, 0, host, sizeof host, &port)) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "redis.url: cannot parse");
        return FN_ERR;
    }
    conn_t *c = conn_new(s, host, port);
    if (!c)
        return FN_ERR;
    s->next_seed = 1;
    s->started = true;
    if (s->cluster)
        snprintf(s->detail, sizeof s->detail, "the cluster's slot map is not known yet");
    connect_now(c);
    return FN_OK;
}

void fn_store_close(fn_store_t *s)
{
    if (!s || !s->started)
        return;
    s->started = false;
    /* Free rather than disconnect politely: a polite disconnect waits for outstanding
     * replies, and with Redis unresponsive the loop, and so the process, would never end.
     * Steps without a reply are simply not committed. */
    while (s->n_conns) {
        conn_t *c = s->conns[s->n_conns - 1];
        if (c->ac) {
            redisAsyncContext *ac = c->ac;
            ac->onDisconnect = NULL; /* 0.14's setter refuses to replace a callback */
            c->ac = NULL;
            c->ready = false;
            redisAsyncFree(ac);
        }
        fn_msg_queue_t drop = {0};
        unhold(c, &drop);
        memset(&c->wait, 0, sizeof c->wait);
        memset(&c->sent, 0, sizeof c->sent);
        conn_bury(s, c);
    }
    fn_lead_queue_free(&s->leads);
    /* The messages still queued are the daemon's; it releases them after this. */
    memset(&s->limbo, 0, sizeof s->limbo);
}

void fn_store_free(fn_store_t *s)
{
    if (!s)
        return;
    fn_store_close(s);
    while (s->dead) {
        conn_t *c = s->dead;
        s->dead = c->dead_next;
        free(c);
    }
    free(s->conns);
    while (s->free_calls) {
        store_call_t *c = s->free_calls;
        s->free_calls = c->next;
        free(c);
    }
    fn_cluster_map_free(s->map);
    free(s->master_conn);
    free(s->shard_slot);
    free(s->shard_epoch);
    fn_buf_free(&s->step_cmd);
    free(s);
}

/* ---- watchdog ---- */

static void on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *c = ac->data;
    c->ping_ms = 0;
    if (r)
        c->progress_ms = fn_now_ms();
}

/* Replies that came while the loop was held are still unread in the socket, and the tick
 * runs before the loop reads it: so the time of a stall is not Redis's silence, and the
 * watchdog's references move forward by it. A reply's age then counts only the time the
 * loop could have read it. */
static void discount_stall(conn_t *c, int64_t gap, int64_t now)
{
    int64_t *refs[] = {&c->progress_ms, &c->ping_ms, &c->connect_ms};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        if (*refs[i]) /* 0: no PING outstanding */
            *refs[i] = *refs[i] + gap < now ? *refs[i] + gap : now;
}

static void watch_conn(conn_t *c, int64_t now)
{
    fn_store_t *s = c->s;
    /* An idle connection is pinged, so that a Redis that went away is noticed (and /readyz
     * says so) before the next event needs it; no answer within the reply timeout drops it. */
    if (c->ac && c->ready) {
        if (c->ping_ms && now - c->ping_ms >= REPLY_TIMEOUT_MS) {
            fn_log(s->host.log, FN_LOG_WARN, "redis",
                   "%s:%d: no answer to PING for %d ms; reconnecting", c->host, c->port,
                   REPLY_TIMEOUT_MS);
            c->ping_ms = 0;
            redisAsyncFree(c->ac);
            return;
        }
        if (!c->ping_ms && !c->sent.head && now - c->progress_ms >= PING_MS &&
            redisAsyncCommand(c->ac, on_ping, NULL, "PING") == REDIS_OK)
            c->ping_ms = now;
    }
    if (c->ac && !c->ready && !c->retired && now - c->connect_ms >= REPLY_TIMEOUT_MS) {
        /* The same adapter flaw hides a refused connect (libuv reports it as a poll error),
         * and a set-up reply may never come: give the attempt up and start another. */
        redisAsyncContext *ac = c->ac;
        bool connected = (ac->c.flags & REDIS_CONNECTED) != 0;
        fn_log(s->host.log, FN_LOG_WARN, "redis",
               "%s:%d not ready %d ms after connecting; retrying", c->host, c->port,
               REPLY_TIMEOUT_MS);
        redisAsyncFree(ac); /* calls on_disconnect only if it had connected */
        if (!connected) {
            c->ac = NULL;
            schedule_reconnect(c);
        }
        return;
    }
    if (!c->ac || !c->sent.head || now - c->progress_ms < REPLY_TIMEOUT_MS)
        return;
    fn_log(s->host.log, FN_LOG_WARN, "redis",
           "%s:%d: no reply for %d ms with %zu step(s) outstanding; reconnecting", c->host, c->port,
           REPLY_TIMEOUT_MS, c->sent.len);
    /* Freeing (not a polite disconnect, which would wait for the replies) runs the pending
     * callbacks with no reply and then on_disconnect, which re-queues the steps. */
    redisAsyncFree(c->ac);
}

void fn_store_watchdog(fn_store_t *s)
{
    if (!s->started)
        return;
    int64_t now = fn_now_ms();
    int64_t gap = s->watch_ms ? now - s->watch_ms : 0;
    s->watch_ms = now;
    /* A conn may leave the array while it is watched (a retired one that drops): walk a copy. */
    size_t n = s->n_conns;
    conn_t *stack[16];
    conn_t **each = n <= 16 ? stack : malloc(n * sizeof *each);
    if (!each)
        return;
    memcpy(each, s->conns, n * sizeof *each);
    for (size_t i = 0; i < n; i++) {
        if (gap >= LOOP_STALL_MS)
            discount_stall(each[i], gap, now);
        watch_conn(each[i], now);
    }
    if (each != stack)
        free(each);
    if (s->cluster) {
        int64_t since = now - s->refresh_ms;
        if (s->refresh_wanted || ((s->lonely || !fn_store_ready(s)) && since >= REFRESH_DOWN_MS) ||
            since >= REFRESH_IDLE_MS)
            want_refresh(s);
    }
    if (s->limbo.head && now >= s->limbo_at_ms)
        route_limbo(s);
}

/* ---- generic commands and status ---- */

bool fn_store_ready(const fn_store_t *s)
{
    if (!s->started || !s->n_conns)
        return false;
    if (!s->cluster)
        return s->conns[0]->ac && s->conns[0]->ready;
    if (!s->map || s->map->uncovered || !s->map->n_masters)
        return false;
    for (size_t i = 0; i < s->map->n_nodes; i++)
        if (s->master_conn[i] && !(s->master_conn[i]->ac && s->master_conn[i]->ready))
            return false;
    return true;
}

bool fn_store_connected(const fn_store_t *s)
{
    if (!s->started || !s->n_conns)
        return false;
    if (!s->cluster)
        return s->conns[0]->ac != NULL;
    if (!s->map || s->map->uncovered)
        return false;
    for (size_t i = 0; i < s->map->n_nodes; i++)
        if (s->master_conn[i] && !s->master_conn[i]->ac)
            return false;
    return true;
}

bool fn_store_up(const fn_store_t *s)
{
    /* one server that answers like a cluster node is connected, yet steps cannot go on */
    return fn_store_ready(s) && (s->cluster || !s->detail[0]);
}

uint64_t fn_store_connects(const fn_store_t *s)
{
    return s->connects;
}

/* "a-b,c" into out: the slot ranges master i of s->map serves, "..." when they do not fit. */
static void master_ranges(const fn_store_t *s, int i, char *out, size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (unsigned a = 0; a < FN_CLUSTER_SLOTS; a++) {
        if (s->map->slot[a] != i)
            continue;
        unsigned b = a;
        while (b + 1 < FN_CLUSTER_SLOTS && s->map->slot[b + 1] == i)
            b++;
        int w = b > a ? snprintf(out + len, n - len, "%s%u-%u", len ? "," : "", a, b)
                      : snprintf(out + len, n - len, "%s%u", len ? "," : "", a);
        if (w < 0 || (size_t)w >= n - len) {
            snprintf(out + (n > 4 ? n - 4 : 0), n > 4 ? 4 : n, "...");
            return;
        }
        len += (size_t)w;
        a = b;
    }
}

const char *fn_store_detail(fn_store_t *s)
{
    if (s->detail[0])
        return s->detail;
    if (s->cluster && s->map) {
        /* a master the map still names, not reachable (a failover may be on its way) */
        for (size_t i = 0; i < s->map->n_nodes; i++) {
            const conn_t *c = s->master_conn[i];
            if (!c || (c->ac && c->ready))
                continue;
            char ranges[160];
            master_ranges(s, (int)i, ranges, sizeof ranges);
            snprintf(s->down_detail, sizeof s->down_detail,
                     "slots %s have no reachable master (%s:%d)", ranges, c->host, c->port);
            return s->down_detail;
        }
    }
    for (size_t i = 0; i < s->n_conns; i++)
        if (!s->conns[i]->retired && !s->conns[i]->ready)
            return s->cluster ? "the cluster's slot map is not known yet" : "not connected";
    return "";
}

size_t fn_store_nodes(const fn_store_t *s, fn_redis_node_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_conns; i++) {
        const conn_t *c = s->conns[i];
        if (c->retired)
            continue;
        if (n < max) {
            snprintf(out[n].addr, sizeof out[n].addr, "%s:%d", c->host, c->port);
            out[n].up = c->ac && c->ready;
            out[n].steps = c->steps;
            out[n].waiting = c->wait.len + c->sent.len + c->n_held;
            out[n].rtt = c->rtt;
        }
        n++;
    }
    return n;
}

size_t fn_store_limbo(const fn_store_t *s)
{
    return s->limbo.len;
}

static void on_call_reply(redisAsyncContext *ac, void *r, void *priv)
{
    conn_t *conn = ac->data;
    store_call_t *c = priv;
    fn_store_t *s = c->s;
    fn_store_cb cb = c->cb;
    void *cb_priv = c->priv;
    c->next = s->free_calls;
    s->free_calls = c;
    const redisReply *reply = r;
    if (s->cluster && reply && reply->type == REDIS_REPLY_ERROR &&
        fn_cluster_classify(reply->str, reply->len, conn->host, NULL) != FN_CLUSTER_REPLY_OTHER) {
        /* the caller retries on its own schedule; by then the map is new */
        log_redirect(s, conn, reply->str);
        want_refresh(s);
    }
    cb(cb_priv, r);
}

static store_call_t *call_new(fn_store_t *s, fn_store_cb cb, void *priv)
{
    store_call_t *c = s->free_calls;
    if (c)
        s->free_calls = c->next;
    else if (!(c = malloc(sizeof *c)))
        return NULL;
    c->s = s;
    c->cb = cb;
    c->priv = priv;
    return c;
}

static void call_drop(fn_store_t *s, store_call_t *c)
{
    if (c) {
        c->next = s->free_calls;
        s->free_calls = c;
    }
}

int fn_store_call(fn_store_t *s, const char *key, fn_store_cb cb, void *priv, int argc,
                  const char *const *argv, const size_t *argvlen)
{
    conn_t *conn = s->started ? route_key(s, key) : NULL;
    if (!conn || !conn->ac)
        return FN_ERR;
    store_call_t *c = cb ? call_new(s, cb, priv) : NULL;
    if (cb && !c)
        return FN_ERR;
    if (redisAsyncCommandArgv(conn->ac, c ? on_call_reply : NULL, c, argc, (const char **)argv,
                              argvlen) != REDIS_OK) {
        call_drop(s, c);
        return FN_ERR;
    }
    return FN_OK;
}

int fn_store_callf(fn_store_t *s, const char *key, fn_store_cb cb, void *priv, const char *fmt, ...)
{
    conn_t *conn = s->started ? route_key(s, key) : NULL;
    if (!conn || !conn->ac)
        return FN_ERR;
    store_call_t *c = cb ? call_new(s, cb, priv) : NULL;
    if (cb && !c)
        return FN_ERR;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(conn->ac, c ? on_call_reply : NULL, c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        call_drop(s, c);
        return FN_ERR;
    }
    return FN_OK;
}

int fn_store_eval(fn_store_t *s, fn_script_t script, const char *key, fn_store_cb cb, void *priv,
                  int argc, const char *const *argv, const size_t *argvlen)
{
    assert(script >= 0 && script < FN_SCRIPT_COUNT && argc >= 0);
    /* EVALSHA <digest> in front of argv: on the stack for the usual few arguments, allocated
     * for a long one (a lease renewal names up to a thousand entries). */
    enum { ON_STACK = 32 };
    const char *stack_v[ON_STACK];
    size_t stack_l[ON_STACK];
    size_t n = (size_t)argc + 2;
    const char **all = n <= ON_STACK ? stack_v : malloc(n * sizeof *all);
    size_t *lens = n <= ON_STACK ? stack_l : malloc(n * sizeof *lens);
    int rc = FN_ERR;
    if (!all || !lens)
        goto out;
    all[0] = "EVALSHA", lens[0] = 7;
    all[1] = s->sha[script], lens[1] = strlen(s->sha[script]);
    for (int i = 0; i < argc; i++) {
        all[2 + i] = argv[i];
        lens[2 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    rc = fn_store_call(s, key, cb, priv, (int)n, all, lens);
out:
    if (all != stack_v)
        free(all);
    if (lens != stack_l)
        free(lens);
    return rc;
}

void fn_store_reconnect(fn_store_t *s, const char *why)
{
    for (size_t i = 0; s->started && i < s->n_conns; i++) {
        conn_t *c = s->conns[i];
        if (!c->ac || c->retired || (c->ac->c.flags & REDIS_DISCONNECTING))
            continue;
        fn_log(s->host.log, FN_LOG_DEBUG, "redis", "%s:%d: reconnecting: %s", c->host, c->port,
               why);
        redisAsyncDisconnect(c->ac);
    }
}
