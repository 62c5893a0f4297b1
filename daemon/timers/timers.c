/*
 * timers.c — retargeting timers on the loop: when to run fire.lua, and delivering what fired.
 *
 * Timers live in Redis, one zset per (shard, input partition), so they survive restarts and
 * are shared by every daemon of the group; the daemon that owns a partition fires its
 * timers, by that partition's clock (trigger.h). The cost is per due timer, never per lead:
 * for each zset the daemon remembers the earliest due time (learned from the step replies
 * that arm timers and from each fire.lua reply), and the tick sends fire.lua only for zsets
 * whose earliest timer is due. A fresh assignment starts with every zset "unknown", which
 * costs one call per zset to learn.
 *
 * Fired triggers wait in the shard's outbox until Kafka acknowledges them; a daemon that
 * dies in between leaves them leased, and after the lease any daemon hands them out again
 * (same id). So a trigger is claimed once and delivered at least once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/daemon.h"
#include "funneld/emit.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

#define FIRE_LIMIT 500       /* timers claimed per call; more are claimed on the next tick */
#define SWEEP_EVERY_MS 10000 /* how often expired leases are looked for */

typedef struct fire_req {
    fn_daemon_t *d;
    fn_partition_t *p; /* NULL for a lease sweep */
    unsigned shard;
} fire_req_t;

typedef struct trig_out {
    fn_owner_t owner; /* FN_OWNER_TRIGGER; first, see fn_owner_t */
    unsigned shard;
    struct trig_out *next; /* on d->uncleared: delivered while Redis was away */
    size_t keylen;
    char key[];
} trig_out_t;

static void outbox_keys(const fn_config_t *cfg, unsigned shard, char *outbox, char *leases,
                        size_t n)
{
    snprintf(outbox, n, "%s:{%u}:outbox", cfg->key_prefix, shard);
    snprintf(leases, n, "%s:{%u}:leases", cfg->key_prefix, shard);
}

static int ensure_arrays(const fn_daemon_t *d, fn_partition_t *p)
{
    if (p->next_due)
        return FN_OK;
    size_t n = (size_t)d->cfg->redis_shards;
    p->next_due = malloc(n * sizeof *p->next_due);
    p->firing = calloc(n, 1);
    if (!p->next_due || !p->firing) {
        fn_timers_free_partition(p);
        return FN_ERR;
    }
    for (size_t s = 0; s < n; s++)
        p->next_due[s] = FN_DUE_UNKNOWN;
    return FN_OK;
}

void fn_timers_free_partition(fn_partition_t *p)
{
    free(p->next_due);
    free(p->firing);
    p->next_due = NULL;
    p->firing = NULL;
}

void fn_timers_reset(fn_daemon_t *d, fn_partition_t *p)
{
    p->maxts_done = 0;
    p->maxts_seen = 0;
    p->at_eof = false;
    if (p->next_due)
        for (int s = 0; s < d->cfg->redis_shards; s++)
            p->next_due[s] = FN_DUE_UNKNOWN;
}

void fn_timers_armed(fn_daemon_t *d, fn_partition_t *p, unsigned shard, int64_t due)
{
    if (ensure_arrays(d, p) || shard >= (unsigned)d->cfg->redis_shards)
        return; /* stays unknown: learned by the next fire call */
    if (p->next_due[shard] != FN_DUE_UNKNOWN && due < p->next_due[shard])
        p->next_due[shard] = due;
}

bool fn_timers_idle(const fn_daemon_t *d)
{
    return d->timer_requests == 0 && d->triggers_in_flight == 0;
}

void fn_timers_emit(fn_daemon_t *d, unsigned shard, const redisReply *e)
{
    fn_trigger_t t;
    char err[128];
    if (e->type != REDIS_REPLY_STRING || fn_trigger_parse(e->str, e->len, &t, err, sizeof err)) {
        d->stats.timer_errors++;
        fn_log(&d->log, FN_LOG_ERROR, "timers", "shard %u: %s; left in the outbox", shard,
               e->type == REDIS_REPLY_STRING ? err : "entry is not a string");
        return;
    }
    const fn_funnel_t *f = fn_config_funnel(d->cfg, t.funnel.p, t.funnel.len);
    size_t ri = 0; /* the reason for /metrics: 0 stalled (or a rule no longer configured) */
    for (size_t r = 0; f && r < f->n_retarget && !ri; r++)
        if (strlen(f->retarget[r].name) == t.reason.len &&
            memcmp(f->retarget[r].name, t.reason.p, t.reason.len) == 0)
            ri = 1 + r;
    trig_out_t *o = malloc(sizeof *o + t.key.len);
    if (!o || fn_emit_retarget(&d->out_buf, &t, f, fn_now_ms())) {
        free(o);
        json_decref(t.doc);
        fn_log(&d->log, FN_LOG_ERROR, "timers", "out of memory; the trigger stays in the outbox");
        return;
    }
    o->owner = FN_OWNER_TRIGGER;
    o->shard = shard;
    o->keylen = t.key.len;
    memcpy(o->key, t.key.p, t.key.len);
    rd_kafka_resp_err_t rc =
        fn_output_send(d, d->cfg->topic_retargeting, t.lead_id.p, t.lead_id.len, d->out_buf.data,
                       d->out_buf.len, NULL, &o->owner);
    json_decref(t.doc);
    if (rc) {
        fn_output_failed(d, d->cfg->topic_retargeting);
        /* Its lease runs out and it is handed out again. */
        fn_log(&d->log, FN_LOG_ERROR, "kafka", "produce to %s: %s", d->cfg->topic_retargeting,
               rd_kafka_err2str(rc));
        free(o);
        return;
    }
    d->triggers_in_flight++;
    d->stats.triggers_emitted++;
    if (f && d->stats.trig_by_funnel)
        d->stats.trig_by_funnel[f - d->cfg->funnels][ri]++;
}

static void on_fire_reply(redisAsyncContext *ac, void *r, void *priv)
{
    fire_req_t *q = priv;
    fn_daemon_t *d = q->d;
    redisReply *reply = r;
    d->timer_requests--;
    if (q->p)
        q->p->firing[q->shard] = 0;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 &&
              reply->element[0]->type == REDIS_REPLY_STRING &&
              reply->element[1]->type == REDIS_REPLY_ARRAY &&
              reply->element[2]->type == REDIS_REPLY_INTEGER &&
              reply->element[3]->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        /* No reply: the connection went away, and a new one asks again. */
        if (q->p)
            q->p->next_due[q->shard] = FN_DUE_UNKNOWN;
        if (reply) {
            d->stats.timer_errors++;
            bool noscript =
                reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
            fn_log(&d->log, noscript ? FN_LOG_INFO : FN_LOG_WARN, "timers", "fire failed: %s",
                   reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            if (noscript && d->redis)
                redisAsyncDisconnect(ac); /* the reconnect loads the scripts again */
        }
        free(q);
        return;
    }
    if (q->p) {
        const redisReply *nx = reply->element[0];
        int64_t next = FN_DUE_NONE;
        if (nx->len) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(nx->len < 31 ? nx->len : 31), nx->str);
            next = (int64_t)strtod(tmp, NULL);
        }
        q->p->next_due[q->shard] = next;
    }
    d->stats.triggers_capped += (uint64_t)reply->element[2]->integer;
    d->stats.triggers_opted_out += (uint64_t)reply->element[3]->integer;
    const redisReply *entries = reply->element[1];
    for (size_t i = 0; i < entries->elements; i++)
        fn_timers_emit(d, q->shard, entries->element[i]);
    free(q);
}

static void send_fire(fn_daemon_t *d, fn_partition_t *p, unsigned shard, int64_t now, int64_t wall)
{
    const fn_config_t *cfg = d->cfg;
    char due_key[352], outbox[64], leases[64], stats[64];
    char a_now[24], a_wall[24], a_limit[16];
    char caps[FN_MAX_FUNNELS * (FN_NAME_MAX + 44)];

    fire_req_t *q = malloc(sizeof *q);
    if (!q)
        return;
    q->d = d;
    q->p = p;
    q->shard = shard;
    outbox_keys(cfg, shard, outbox, leases, sizeof outbox);
    snprintf(stats, sizeof stats, "%s:{%u}:stats", cfg->key_prefix, shard);
    if (p)
        fn_step_due_key(cfg, shard, p->topic, p->partition, due_key, sizeof due_key);
    else
        snprintf(due_key, sizeof due_key, "%s", leases); /* unused by a sweep; same slot */
    snprintf(a_now, sizeof a_now, "%lld", (long long)now);
    snprintf(a_wall, sizeof a_wall, "%lld", (long long)wall);
    snprintf(a_limit, sizeof a_limit, "%d", FIRE_LIMIT);
    fn_step_caps(cfg, caps, sizeof caps);
    const char *argv[] = {"EVALSHA", d->fire_sha, "4",    due_key, outbox,        leases,
                          stats,     a_now,       a_wall, a_limit, p ? "0" : "1", caps};
    size_t argl[sizeof argv / sizeof *argv];
    int n = (int)(sizeof argv / sizeof *argv);
    for (int i = 0; i < n; i++)
        argl[i] = strlen(argv[i]);
    if (redisAsyncCommandArgv(d->redis, on_fire_reply, q, n, argv, argl) != REDIS_OK) {
        free(q);
        return;
    }
    d->timer_requests++;
    if (p)
        p->firing[shard] = 1;
}

void fn_timers_tick(fn_daemon_t *d)
{
    if (!d->redis_ready || d->stopping)
        return;
    int64_t wall = fn_now_ms();
    unsigned shards = (unsigned)d->cfg->redis_shards;
    for (fn_partition_t *p = d->partitions; p; p = p->next) {
        if (!p->assigned || ensure_arrays(d, p))
            continue;
        int64_t now = fn_trigger_clock(d->cfg->clock, wall, p->maxts_done, p->at_eof && !p->head);
        for (unsigned s = 0; s < shards && d->redis_ready; s++)
            if (!p->firing[s] &&
                (p->next_due[s] == FN_DUE_UNKNOWN || (now > 0 && p->next_due[s] <= now)))
                send_fire(d, p, s, now, wall);
    }
    if (wall >= d->next_sweep_ms) {
        d->next_sweep_ms = wall + SWEEP_EVERY_MS;
        for (unsigned s = 0; s < shards && d->redis_ready; s++)
            send_fire(d, NULL, s, 0, wall);
    }
}

static void on_clear_reply(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = priv;
    d->timer_requests--;
}

static void remember_uncleared(fn_daemon_t *d, trig_out_t *o)
{
    o->next = d->uncleared;
    d->uncleared = o;
}

/* The reply to the ZREM that ends a clear, which owns o: without a reply (the connection
 * was lost, and the HDEL before it may be lost too) o is cleared again once Redis is back,
 * rather than delivered again when its lease runs out. */
static void on_cleared(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    trig_out_t *o = priv;
    d->timer_requests--;
    if (r)
        free(o);
    else
        remember_uncleared(d, o);
}

/* Deletes o's outbox entry, then its lease; o is freed with the reply. False (o kept)
 * without a connection. */
static bool clear_entry(fn_daemon_t *d, trig_out_t *o)
{
    if (!d->redis_ready)
        return false;
    char outbox[64], leases[64];
    outbox_keys(d->cfg, o->shard, outbox, leases, sizeof outbox);
    /* Outbox first: a lease without its entry is dropped by the next sweep. */
    if (redisAsyncCommand(d->redis, on_clear_reply, d, "HDEL %s %b", outbox, o->key, o->keylen) !=
        REDIS_OK)
        return false;
    d->timer_requests++;
    if (redisAsyncCommand(d->redis, on_cleared, o, "ZREM %s %b", leases, o->key, o->keylen) !=
        REDIS_OK)
        return false;
    d->timer_requests++;
    return true;
}

void fn_timers_delivered(fn_daemon_t *d, fn_owner_t *owner)
{
    trig_out_t *o = (trig_out_t *)owner;
    d->triggers_in_flight--;
    d->stats.triggers_delivered++;
    /* Redis away: the entry is cleared when it is back, rather than delivered again when
     * its lease runs out. */
    if (!clear_entry(d, o))
        remember_uncleared(d, o);
}

void fn_timers_on_ready(fn_daemon_t *d)
{
    trig_out_t *list = d->uncleared;
    d->uncleared = NULL;
    while (list) {
        trig_out_t *o = list;
        list = o->next;
        if (!clear_entry(d, o))
            remember_uncleared(d, o);
    }
}

void fn_timers_close(fn_daemon_t *d)
{
    /* Not cleared: they are delivered again, with their ids, after their leases. */
    while (d->uncleared) {
        trig_out_t *o = d->uncleared;
        d->uncleared = o->next;
        free(o);
    }
}
