/*
 * timers.c — retargeting timers on the loop: when to run fire.lua, and delivering what fired.
 *
 * Timers live in Redis, one zset per (shard, input partition), so they survive restarts and
 * are shared by every daemon of the group; the daemon that owns a partition fires its
 * timers, by that partition's clock (trigger.h). The cost is per due timer, never per lead:
 * for each zset the daemon remembers the earliest due time (learned from the step replies
 * that arm timers and from each fire.lua reply), and the tick sends fire.lua only for zsets
 * whose earliest timer is due. A fresh assignment starts with every zset "unknown", which
 * costs one call per zset to learn. Steps this daemon did not send can arm timers in its
 * zsets too (after a rebalance, the old owner's steps still in flight finish), and nothing
 * tells it of those: so every LEARN_EVERY_MS each zset of an owned partition is learned
 * again, and such a timer fires at most that much late. The shards take turns over the
 * period, so that these calls come a few per tick rather than all in one.
 *
 * Fired triggers wait in the shard's outbox until Kafka acknowledges them; a daemon that
 * dies in between leaves them leased, and after the lease any daemon hands them out again
 * (same id). So a trigger is claimed once and delivered at least once.
 *
 * A live daemon keeps what it holds: every SWEEP_EVERY_MS, and first thing after a
 * reconnect, it renews the leases of the triggers it produced and Kafka has not acknowledged
 * yet, before its sweep looks for expired ones; so however long Kafka is away, no sweep hands
 * them out again. And it claims no more than it can hand to Kafka: firing and sweeping pause
 * while the broker is down, and each call claims at most what is left below max_in_flight
 * triggers in flight and below the room in the producer's queue. A trigger the full queue
 * refuses anyway stays in its outbox with its lease released, for the next sweep.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/emit.h"
#include "funneld/host.h"
#include "funneld/input.h"
#include "funneld/keys.h"
#include "funneld/output.h"
#include "funneld/step.h"
#include "funneld/store.h"
#include "funneld/timers.h"
#include "funneld/trigger.h"

#define FIRE_LIMIT 500          /* timers claimed per call; more are claimed on the next tick */
#define SWEEP_EVERY_MS 10000    /* how often held leases are renewed and expired ones looked for */
#define FIRE_LOG_EVERY_MS 10000 /* a failing fire call is logged once per this, with a count */
#define RENEW_BATCH 1000        /* leases renewed per call */
#define LEARN_EVERY_MS 30000    /* how often each owned zset's earliest due time is learned again */

/* What the timers know of one input partition's zsets (fn_partition_t.timers). */
struct fn_timers_part {
    int64_t *next_due; /* per shard: earliest timer in its zset, DUE_UNKNOWN or DUE_NONE */
    uint8_t *firing;   /* per shard: a fire.lua call is outstanding */
    struct fn_timers_part *next; /* all of them, freed with the timers */
};

#define DUE_UNKNOWN INT64_MIN
#define DUE_NONE INT64_MAX

struct fn_timers {
    fn_host_t host;          /* the loop, the running config, log and counters (a copy) */
    fn_log_limit_t lim_fire; /* "fire failed" lines */
    fn_store_t *store;
    fn_output_t *out;
    fn_input_t *input;
    bool started;
    size_t timer_requests;      /* fire.lua calls and outbox clears without a reply yet */
    size_t triggers_in_flight;  /* produced, not yet acknowledged */
    size_t trigger_claims;      /* outbox entries outstanding fire.lua calls may hand out */
    struct trig_out *held;      /* produced, not yet acknowledged: their leases are renewed */
    struct trig_out *uncleared; /* delivered while Redis was away: outbox entries to clear */
    int64_t next_sweep_ms;      /* next look for outbox entries whose lease ran out */
    int64_t next_renew_ms;      /* next renewal of the leases of held triggers */
    int64_t learn_cycle_ms;     /* when the current round of learning again began */
    unsigned learn_shard;       /* shards below this have been forgotten in the round */
    struct fn_timers_part *parts;
};

/* The running config (a reload replaces it: never keep a pointer into it). */
static inline const fn_config_t *running(const fn_timers_t *tm)
{
    return *tm->host.cfg;
}

typedef struct fire_req {
    fn_timers_t *tm;
    struct fn_timers_part *tp; /* NULL for a lease sweep */
    unsigned shard;
    size_t claim; /* most entries the call can hand out (counted in tm->trigger_claims) */
} fire_req_t;

typedef struct trig_out {
    fn_out_req_t out; /* first: its delivery comes back to on_trigger_done (output.h) */
    unsigned shard;
    /* On tm->held while Kafka has it (prev is then valid); on tm->uncleared once delivered
     * while Redis was away. */
    struct trig_out *next, *prev;
    size_t keylen;
    char key[];
} trig_out_t;

static void outbox_keys(const fn_config_t *cfg, unsigned shard, char *outbox, char *leases,
                        size_t n)
{
    fn_key_outbox(outbox, n, cfg->key_prefix, shard);
    fn_key_leases(leases, n, cfg->key_prefix, shard);
}

static void on_trigger_done(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                            rd_kafka_resp_err_t err);

/* p's zset knowledge, allocated on first use (all "unknown"). NULL on OOM. */
static struct fn_timers_part *part_of(fn_timers_t *tm, fn_partition_t *p)
{
    if (p->timers)
        return p->timers;
    size_t n = (size_t)running(tm)->redis_shards;
    struct fn_timers_part *tp = malloc(sizeof *tp + n * sizeof *tp->next_due + n);
    if (!tp)
        return NULL;
    tp->next_due = (int64_t *)(tp + 1);
    tp->firing = (uint8_t *)(tp->next_due + n);
    for (size_t s = 0; s < n; s++) {
        tp->next_due[s] = DUE_UNKNOWN;
        tp->firing[s] = 0;
    }
    tp->next = tm->parts;
    tm->parts = tp;
    p->timers = tp;
    return tp;
}

static void forget_due(const fn_timers_t *tm, struct fn_timers_part *tp)
{
    for (int s = 0; tp && s < running(tm)->redis_shards; s++)
        tp->next_due[s] = DUE_UNKNOWN;
}

void fn_timers_reset(fn_timers_t *tm, fn_partition_t *p)
{
    p->maxts_done = 0;
    p->maxts_seen = 0;
    p->at_eof = false;
    forget_due(tm, p->timers);
}

void fn_timers_armed(fn_timers_t *tm, fn_partition_t *p, unsigned shard, int64_t due)
{
    struct fn_timers_part *tp = part_of(tm, p);
    if (!tp || shard >= (unsigned)running(tm)->redis_shards)
        return; /* stays unknown: learned by the next fire call */
    if (tp->next_due[shard] != DUE_UNKNOWN && due < tp->next_due[shard])
        tp->next_due[shard] = due;
}

static void hold(fn_timers_t *tm, trig_out_t *o)
{
    o->prev = NULL;
    o->next = tm->held;
    if (tm->held)
        tm->held->prev = o;
    tm->held = o;
}

static void unhold(fn_timers_t *tm, trig_out_t *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        tm->held = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->next = o->prev = NULL;
}

static void on_lease_reply(void *priv, const redisReply *reply)
{
    (void)reply;
    fn_timers_t *tm = priv;
    tm->timer_requests--;
}

/* A trigger Kafka's full queue refused: its lease is released so that the next sweep hands
 * it out again (once there is room) rather than after the lease. */
static void release_lease(fn_timers_t *tm, unsigned shard, const char *key, size_t keylen)
{
    char outbox[64], leases[64];
    if (!fn_store_ready(tm->store))
        return; /* its lease runs out */
    outbox_keys(running(tm), shard, outbox, leases, sizeof outbox);
    if (fn_store_callf(tm->store, leases, on_lease_reply, tm, "ZADD %s XX 0 %b", leases, key,
                       keylen) == FN_OK)
        tm->timer_requests++;
}

void fn_timers_emit(fn_timers_t *tm, unsigned shard, const char *entry, size_t len)
{
    fn_trigger_t t;
    char err[128];
    if (!entry || fn_trigger_parse(entry, len, &t, err, sizeof err)) {
        fn_log(tm->host.log, FN_LOG_ERROR, "timers", "shard %u: %s; left in the outbox", shard,
               entry ? err : "entry is not a string");
        return;
    }
    const fn_funnel_t *f = fn_config_funnel(running(tm), t.funnel.p, t.funnel.len);
    size_t ri = 0; /* the reason for /metrics: 0 stalled (or a rule no longer configured) */
    for (size_t r = 0; f && r < f->n_retarget && !ri; r++)
        if (strlen(f->retarget[r].name) == t.reason.len &&
            memcmp(f->retarget[r].name, t.reason.p, t.reason.len) == 0)
            ri = 1 + r;
    trig_out_t *o = malloc(sizeof *o + t.key.len);
    fn_buf_t *buf = fn_output_buf(tm->out);
    if (!o || fn_emit_retarget(buf, &t, f, fn_now_ms())) {
        free(o);
        json_decref(t.doc);
        fn_log(tm->host.log, FN_LOG_ERROR, "timers",
               "out of memory; the trigger stays in the outbox");
        return;
    }
    o->out = (fn_out_req_t){.done = on_trigger_done, .data = tm};
    o->shard = shard;
    o->keylen = t.key.len;
    memcpy(o->key, t.key.p, t.key.len);
    rd_kafka_resp_err_t rc = fn_output_send(tm->out, running(tm)->topic_retargeting, t.lead_id.p,
                                            t.lead_id.len, buf->data, buf->len, &o->out);
    json_decref(t.doc);
    if (rc) {
        /* It stays in the outbox and is handed out again. A full queue is weather: one line
         * per thousand; anything else is a failure, counted for /metrics. */
        tm->host.stats->triggers_deferred++;
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            fn_output_failed(tm->out, running(tm)->topic_retargeting);
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL || tm->host.stats->triggers_deferred % 1000 == 1)
            fn_log(tm->host.log, FN_LOG_WARN, "kafka",
                   "produce to %s: %s; %llu trigger(s) left in the outbox so far",
                   running(tm)->topic_retargeting, rd_kafka_err2str(rc),
                   (unsigned long long)tm->host.stats->triggers_deferred);
        release_lease(tm, shard, o->key, o->keylen);
        free(o);
        return;
    }
    hold(tm, o);
    tm->triggers_in_flight++;
    if (f && tm->host.stats->trig_by_funnel)
        tm->host.stats->trig_by_funnel[f - running(tm)->funnels][ri]++;
}

static void on_fire_reply(void *priv, const redisReply *reply)
{
    fire_req_t *q = priv;
    fn_timers_t *tm = q->tm;
    tm->timer_requests--;
    tm->trigger_claims -= q->claim;
    if (q->tp)
        q->tp->firing[q->shard] = 0;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
              reply->element[0]->type == REDIS_REPLY_STRING &&
              reply->element[1]->type == REDIS_REPLY_ARRAY &&
              reply->element[2]->type == REDIS_REPLY_INTEGER &&
              reply->element[3]->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        /* No reply: the connection went away, and a new one asks again. */
        if (q->tp)
            q->tp->next_due[q->shard] = DUE_UNKNOWN;
        if (reply) {
            bool noscript =
                reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
            /* one line per interval: a cluster that is down answers every shard's call */
            uint64_t skipped;
            if (fn_log_limit_pass(&tm->lim_fire, fn_now_ms(), noscript ? 0 : FIRE_LOG_EVERY_MS,
                                  &skipped))
                fn_log(tm->host.log, noscript ? FN_LOG_INFO : FN_LOG_WARN, "timers",
                       "fire failed: %.200s (%llu more since the last line)",
                       reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply",
                       (unsigned long long)skipped);
            if (noscript) /* the reconnect loads the scripts again */
                fn_store_reconnect(tm->store, "NOSCRIPT from fire.lua");
        }
        free(q);
        return;
    }
    if (q->tp) {
        const redisReply *nx = reply->element[0];
        int64_t next = DUE_NONE;
        if (nx->len) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(nx->len < 31 ? nx->len : 31), nx->str);
            next = (int64_t)strtod(tmp, NULL);
        }
        q->tp->next_due[q->shard] = next;
    }
    /* A sweep that handed out all it could claim may have left more: sweep again at once. */
    if (!q->tp && reply->element[1]->elements >= q->claim)
        tm->next_sweep_ms = 0;
    tm->host.stats->triggers_capped += (uint64_t)reply->element[2]->integer;
    tm->host.stats->triggers_opted_out += (uint64_t)reply->element[3]->integer;
    const redisReply *entries = reply->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        bool str = e->type == REDIS_REPLY_STRING;
        fn_timers_emit(tm, q->shard, str ? e->str : NULL, str ? e->len : 0);
    }
    free(q);
}

/* Sends fire.lua for p's zset of shard (a lease sweep when p is NULL), handing out at most
 * `limit` entries from each of its two sources (expired leases, due timers). */
static void send_fire(fn_timers_t *tm, fn_partition_t *p, unsigned shard, int64_t now, int64_t wall,
                      size_t limit)
{
    const fn_config_t *cfg = running(tm);
    char due_key[352], outbox[64], leases[64], stats[64];
    char a_now[24], a_wall[24], a_limit[16];
    char caps[FN_MAX_FUNNELS * (FN_NAME_MAX + 44)];

    fire_req_t *q = malloc(sizeof *q);
    if (!q)
        return;
    q->tm = tm;
    q->tp = p ? p->timers : NULL;
    q->shard = shard;
    q->claim = p ? 2 * limit : limit;
    outbox_keys(cfg, shard, outbox, leases, sizeof outbox);
    fn_key_stats(stats, sizeof stats, cfg->key_prefix, shard);
    if (p)
        fn_step_due_key(cfg, shard, p->topic, p->partition, due_key, sizeof due_key);
    else
        snprintf(due_key, sizeof due_key, "%s", leases); /* unused by a sweep; same slot */
    snprintf(a_now, sizeof a_now, "%lld", (long long)now);
    snprintf(a_wall, sizeof a_wall, "%lld", (long long)wall);
    snprintf(a_limit, sizeof a_limit, "%zu", limit);
    fn_step_caps(cfg, caps, sizeof caps);
    const char *argv[] = {"4",   due_key, outbox,  leases,        stats,
                          a_now, a_wall,  a_limit, p ? "0" : "1", caps};
    int n = (int)(sizeof argv / sizeof *argv);
    if (fn_store_eval(tm->store, FN_SCRIPT_FIRE, due_key, on_fire_reply, q, n, argv, NULL) !=
        FN_OK) {
        free(q);
        return;
    }
    tm->timer_requests++;
    tm->trigger_claims += q->claim;
    if (p)
        p->timers->firing[shard] = 1;
}

/* Renews, in one shard, the leases of the n triggers this process holds there (fire.lua's
 * renew mode, so that the lease's length stays timer.lua's). */
static void renew_shard(fn_timers_t *tm, unsigned shard, size_t n, int64_t wall)
{
    char outbox[64], leases[64], a_wall[24];
    outbox_keys(running(tm), shard, outbox, leases, sizeof outbox);
    snprintf(a_wall, sizeof a_wall, "%lld", (long long)wall);
    /* KEYS: fire.lua's four (the unused ones name a key of the same slot); ARGV 1-5 as for a
     * sweep but mode '2'; then the entry keys. */
    const char *head[] = {"4", leases, outbox, leases, leases, "0", a_wall, "0", "2", ""};
    const size_t nhead = sizeof head / sizeof *head;
    size_t cap = nhead + (n < RENEW_BATCH ? n : RENEW_BATCH);
    const char **argv = malloc(cap * sizeof *argv);
    size_t *argl = malloc(cap * sizeof *argl);
    if (!argv || !argl)
        goto done; /* renewed next time: a lease lasts several periods */
    for (const trig_out_t *o = tm->held; o;) {
        size_t k;
        for (k = 0; k < nhead; k++) {
            argv[k] = head[k];
            argl[k] = strlen(head[k]);
        }
        for (; o && k < cap; o = o->next)
            if (o->shard == shard) {
                argv[k] = o->key;
                argl[k++] = o->keylen;
            }
        if (k > nhead && fn_store_eval(tm->store, FN_SCRIPT_FIRE, leases, on_lease_reply, tm,
                                       (int)k, argv, argl) == FN_OK)
            tm->timer_requests++;
    }
done:
    free(argv);
    free(argl);
}

static void renew_leases(fn_timers_t *tm, int64_t wall)
{
    unsigned shards = (unsigned)running(tm)->redis_shards;
    size_t *count = calloc(shards, sizeof *count);
    if (!count)
        return;
    for (const trig_out_t *o = tm->held; o; o = o->next)
        count[o->shard]++;
    for (unsigned s = 0; s < shards && fn_store_ready(tm->store); s++)
        if (count[s])
            renew_shard(tm, s, count[s], wall);
    free(count);
}

/* How many more outbox entries this process may hand out now: none while the broker is down;
 * else what is left below max_in_flight triggers in flight and below the producer's room,
 * less what outstanding calls may still hand out. */
static size_t claimable(const fn_timers_t *tm)
{
    if (!fn_input_kafka_up(tm->input))
        return 0;
    size_t bound = running(tm)->max_in_flight,
           room = fn_output_room(tm->out); /* room: net of those queued */
    size_t cap = tm->triggers_in_flight < bound ? bound - tm->triggers_in_flight : 0;
    if (room < cap)
        cap = room;
    return tm->trigger_claims < cap ? cap - tm->trigger_claims : 0;
}

/* Whether p's zset of shard needs a fire call by p's clock `now`. */
static bool wants_fire(const fn_partition_t *p, unsigned s, int64_t now)
{
    const struct fn_timers_part *tp = p->timers;
    return !tp->firing[s] &&
           (tp->next_due[s] == DUE_UNKNOWN || (now > 0 && tp->next_due[s] <= now));
}

/* Forgets the due times of the shards whose turn has come in this round of learning again
 * (shard s at s/shards of the round, in every partition). A zset whose fire call is
 * outstanding gets what that reply says: a timer armed after the call was sent is learned
 * in the next round. */
static void learn_again(fn_timers_t *tm, int64_t wall)
{
    unsigned shards = (unsigned)running(tm)->redis_shards;
    int64_t into = wall - tm->learn_cycle_ms; /* < 0 after the wall clock was set back */
    unsigned upto = into < 0 || into >= LEARN_EVERY_MS
                        ? shards
                        : (unsigned)((uint64_t)into * shards / LEARN_EVERY_MS);
    for (unsigned s = tm->learn_shard; s < upto; s++)
        for (struct fn_timers_part *tp = tm->parts; tp; tp = tp->next)
            tp->next_due[s] = DUE_UNKNOWN;
    tm->learn_shard = upto;
    if (upto >= shards) { /* a new round; after a stalled loop, from now */
        tm->learn_cycle_ms = wall;
        tm->learn_shard = 0;
    }
}

void fn_timers_tick(fn_timers_t *tm)
{
    if (!tm->started || !fn_store_ready(tm->store))
        return;
    int64_t wall = fn_now_ms();
    unsigned shards = (unsigned)running(tm)->redis_shards;
    /* Renewed every period, so a held lease always has most of its length left when any
     * call (a sweep, or a fire call, which hands out expired entries too) looks at it. */
    if (wall >= tm->next_renew_ms) {
        tm->next_renew_ms = wall + SWEEP_EVERY_MS;
        renew_leases(tm, wall);
    }
    bool sweep = wall >= tm->next_sweep_ms;
    if (sweep)
        tm->next_sweep_ms = wall + SWEEP_EVERY_MS;
    learn_again(tm, wall);
    /* What may be claimed is shared among the calls this tick wants (a fire call hands out
     * from two sources, a sweep from one), so that one zset does not hold the whole budget
     * while the others wait a turn each. */
    size_t parts = sweep ? shards : 0;
    for (fn_partition_t *p = fn_input_partitions(tm->input); p; p = p->next) {
        if (!p->assigned || !part_of(tm, p))
            continue;
        int64_t now =
            fn_trigger_clock(running(tm)->clock, wall, p->maxts_done, p->at_eof && !p->head);
        for (unsigned s = 0; s < shards; s++)
            parts += wants_fire(p, s, now) ? 2 : 0;
    }
    if (parts == 0)
        return;
    size_t share = claimable(tm) / parts;
    share = share < 1 ? 1 : share > FIRE_LIMIT ? FIRE_LIMIT : share;
    for (fn_partition_t *p = fn_input_partitions(tm->input); p; p = p->next) {
        if (!p->assigned || !p->timers)
            continue;
        int64_t now =
            fn_trigger_clock(running(tm)->clock, wall, p->maxts_done, p->at_eof && !p->head);
        for (unsigned s = 0; s < shards && fn_store_ready(tm->store); s++) {
            if (!wants_fire(p, s, now))
                continue;
            if (claimable(tm) < 2 * share)
                return; /* the rest waits, sweep included: tried again next tick */
            send_fire(tm, p, s, now, wall, share);
        }
    }
    for (unsigned s = 0; sweep && s < shards && fn_store_ready(tm->store); s++) {
        if (claimable(tm) < share)
            return; /* the other shards are swept next period */
        send_fire(tm, NULL, s, 0, wall, share);
    }
}

static void on_clear_reply(void *priv, const redisReply *reply)
{
    (void)reply;
    fn_timers_t *tm = priv;
    tm->timer_requests--;
}

static void remember_uncleared(fn_timers_t *tm, trig_out_t *o)
{
    o->next = tm->uncleared;
    tm->uncleared = o;
}

/* The reply to the ZREM that ends a clear, which owns o: without a reply (the connection
 * was lost, and the HDEL before it may be lost too) o is cleared again once Redis is back,
 * rather than delivered again when its lease runs out. */
static void on_cleared(void *priv, const redisReply *reply)
{
    trig_out_t *o = priv;
    fn_timers_t *tm = o->out.data;
    tm->timer_requests--;
    if (reply)
        free(o);
    else
        remember_uncleared(tm, o);
}

/* Deletes o's outbox entry, then its lease; o is freed with the reply. False (o kept)
 * without a connection. */
static bool clear_entry(fn_timers_t *tm, trig_out_t *o)
{
    if (!fn_store_ready(tm->store))
        return false;
    char outbox[64], leases[64];
    outbox_keys(running(tm), o->shard, outbox, leases, sizeof outbox);
    /* Outbox first: a lease without its entry is dropped by the next sweep. */
    if (fn_store_callf(tm->store, outbox, on_clear_reply, tm, "HDEL %s %b", outbox, o->key,
                       o->keylen) != FN_OK)
        return false;
    tm->timer_requests++;
    if (fn_store_callf(tm->store, leases, on_cleared, o, "ZREM %s %b", leases, o->key, o->keylen) !=
        FN_OK)
        return false;
    tm->timer_requests++;
    return true;
}

/* Kafka acknowledged trigger o: clears its outbox entry and frees it. Purged at exit, it is
 * only freed: its entry stays in the outbox, delivered again after its lease. */
static void on_trigger_done(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                            rd_kafka_resp_err_t err)
{
    (void)topic;
    (void)err;
    trig_out_t *o = (trig_out_t *)req;
    fn_timers_t *tm = req->data;
    if (status != FN_OUT_DELIVERED) { /* purged (a trigger is never refusable) */
        free(o);
        return;
    }
    unhold(tm, o);
    tm->triggers_in_flight--;
    /* Redis away: the entry is cleared when it is back, rather than delivered again when
     * its lease runs out. */
    if (!clear_entry(tm, o))
        remember_uncleared(tm, o);
}

void fn_timers_on_ready(fn_timers_t *tm)
{
    /* The step replies lost with the connection may have armed timers: due times are
     * learned again, one fire call per zset. */
    for (struct fn_timers_part *tp = tm->parts; tp; tp = tp->next)
        forget_due(tm, tp);
    renew_leases(tm, fn_now_ms());
    trig_out_t *list = tm->uncleared;
    tm->uncleared = NULL;
    while (list) {
        trig_out_t *o = list;
        list = o->next;
        if (!clear_entry(tm, o))
            remember_uncleared(tm, o);
    }
}

fn_timers_t *fn_timers_new(const fn_host_t *host, fn_store_t *store, fn_output_t *out,
                           fn_input_t *input)
{
    fn_timers_t *tm = calloc(1, sizeof *tm);
    if (!tm)
        return NULL;
    tm->host = *host;
    tm->store = store;
    tm->out = out;
    tm->input = input;
    return tm;
}

int fn_timers_start(fn_timers_t *tm)
{
    tm->started = true;
    return FN_OK;
}

bool fn_timers_idle(const fn_timers_t *tm)
{
    return tm->timer_requests == 0 && tm->triggers_in_flight == 0;
}

size_t fn_timers_in_flight(const fn_timers_t *tm)
{
    return tm->triggers_in_flight;
}

void fn_timers_close(fn_timers_t *tm)
{
    tm->started = false;
    tm->held = NULL; /* freed with the producer's purged delivery reports */
    /* Not cleared: they are delivered again, with their ids, after their leases. */
    while (tm->uncleared) {
        trig_out_t *o = tm->uncleared;
        tm->uncleared = o->next;
        free(o);
    }
}

void fn_timers_free(fn_timers_t *tm)
{
    if (!tm)
        return;
    fn_timers_close(tm);
    while (tm->parts) {
        struct fn_timers_part *tp = tm->parts;
        tm->parts = tp->next;
        free(tp);
    }
    free(tm);
}
