/*
 * store.c — the Redis connection and the per-lead queue in front of it.
 *
 * One async hiredis connection on the loop carries every step, pipelined. Replies come back
 * in send order, so "sent" is a FIFO. Only one step per lead is outstanding at a time (the
 * lead table below holds the rest in input order): that keeps a lead's events in order even
 * when one step has to be retried after an error or a reconnect, and it is what will let
 * steps spread over several Redis Cluster connections later.
 *
 * Redis going away is normal weather: the unanswered steps go back to the front of the
 * wait queue, the connection is re-made with exponential backoff (100 ms to 5 s), the script
 * is loaded again, and the steps are re-sent. Re-sending a step that did run is harmless:
 * the step de-duplicates by event id.
 *
 * A Redis that comes back empty (restarted without persistence, flushed, or replaced) is
 * not something a step can notice: every lead would look new. So each connection checks
 * the store's epoch marker (<prefix>:epoch, written once with SET NX): if the value this
 * process saw before is gone or different, the loss is logged as an error and counted
 * (funneld_redis_data_lost_total), and processing goes on with the store as it is now.
 */
#include <hiredis/adapters/libuv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/daemon.h"
#include "funneld/step.h"
#include "funneld/analytics.h"
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

static void connect_now(fn_daemon_t *d);

/* Conditions that pass (a reload, a failover, a script cache flush, memory pressure, auth
 * being fixed): the step is retried after a reconnect for as long as they last. */
bool fn_store_transient(const char *err)
{
    static const char *const prefixes[] = {"NOSCRIPT", "LOADING",    "BUSY",     "OOM",
                                           "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                                           "MOVED",    "ASK",        "NOAUTH",   "NOPERM"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(err, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}
static void on_redis_timer(uv_timer_t *t);

/* ---- the lead table: chain heads keyed by lead hash ---- */

static bool same_lead(const fn_msg_t *a, const fn_msg_t *b)
{
    return a->lead_hash.hi == b->lead_hash.hi && a->lead_hash.lo == b->lead_hash.lo;
}

static fn_msg_t **bucket_of(fn_daemon_t *d, const fn_msg_t *m)
{
    return &d->lead_table[m->lead_hash.lo & d->lead_table_mask];
}

static void flush_wait(fn_daemon_t *d);

static void on_step_reply(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    fn_msg_t *m = priv;
    redisReply *reply = r;
    if (!reply)
        return; /* connection lost: on_disconnect re-queues everything still in "sent" */
    fn_msg_t *head = fn_queue_pop(&d->redis_sent);
    if (head != m) {
        /* Back in front, so that on_disconnect re-queues it with the rest. */
        if (head) {
            head->q_next = d->redis_sent.head;
            d->redis_sent.head = head;
            if (!d->redis_sent.tail)
                d->redis_sent.tail = head;
            d->redis_sent.len++;
        }
        fn_log(&d->log, FN_LOG_ERROR, "redis", "reply out of order; reconnecting");
        redisAsyncDisconnect(ac);
        return;
    }
    d->redis_progress_ms = fn_now_ms();
    fn_hist_observe(&d->stats.redis_rtt, (double)(uv_hrtime() - m->sent_ns) / 1e9);
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!fn_store_transient(reply->str)) {
            /* The step itself fails, and is dead-lettered at once, never retried: the script
             * is deterministic, so a retry fails the same way. step.lua checks what could fail
             * before its first write and refuses with "nothing written"; anything else (a
             * foreign key of another type under the prefix) may have written part of the step,
             * which Redis never rolls back, and a retry would apply that part again. */
            char reason[256];
            snprintf(reason, sizeof reason, "step: %.200s", reply->str);
            char hex[33];
            fn_log_ctx_t ctx = fn_msg_log_ctx(m, hex);
            fn_log_ctx(&d->log, FN_LOG_ERROR, "redis", &ctx, "%s; dead-lettered", reason);
            fn_pipe_step_failed(d, m, reason);
            return;
        }
        bool noscript = strncmp(reply->str, "NOSCRIPT", 8) == 0;
        fn_log(&d->log, noscript ? FN_LOG_INFO : FN_LOG_WARN, "redis", "step failed: %s%s",
               reply->str, noscript ? " (loading the script again)" : "; retrying");
        /* Retry after a pause; the lead's later events wait behind this one. A reconnect
         * also reloads the script, which is what NOSCRIPT needs. */
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&d->redis_wait, m);
        redisAsyncDisconnect(ac);
        return;
    }
    fn_pipe_on_step_reply(d, m, reply);
}

static void send_step(fn_daemon_t *d, fn_msg_t *m)
{
    char token[64];
    snprintf(token, sizeof token, "%s:%llu", d->instance, (unsigned long long)m->seq);
    fn_reload_hold(d->reload, m);
    if (fn_step_build(d->cfg, d->script_sha, token, &m->ev, m->lead_hash, fn_now_ms(), m->clock_ms,
                      m->part->topic, m->part->partition, &d->step_cmd)) {
        fn_log(&d->log, FN_LOG_ERROR, "redis", "out of memory building a step");
        fn_daemon_stop(d, 1);
        return;
    }
    if (redisAsyncFormattedCommand(d->redis, on_step_reply, m, d->step_cmd.data, d->step_cmd.len) !=
        REDIS_OK) {
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&d->redis_wait, m);
        return;
    }
    m->state = FN_MSG_REDIS_SENT;
    m->sent_ns = uv_hrtime();
    if (!d->redis_sent.head)
        d->redis_progress_ms = fn_now_ms();
    fn_queue_push(&d->redis_sent, m);
}

static void flush_wait(fn_daemon_t *d)
{
    while (d->redis_ready && d->redis_wait.head) {
        fn_msg_t *m = fn_queue_pop(&d->redis_wait);
        send_step(d, m);
        if (m->state != FN_MSG_REDIS_SENT)
            break;
    }
}

void fn_store_submit(fn_daemon_t *d, fn_msg_t *m)
{
    fn_msg_t **b = bucket_of(d, m);
    for (fn_msg_t *h = *b; h; h = h->bucket_next)
        if (same_lead(h, m)) {
            h->lead_tail->lead_next = m;
            h->lead_tail = m;
            m->state = FN_MSG_LEAD_WAIT;
            return;
        }
    m->bucket_next = *b;
    *b = m;
    m->lead_tail = m;
    m->state = FN_MSG_REDIS_WAIT;
    fn_queue_push(&d->redis_wait, m);
    flush_wait(d);
}

void fn_store_release(fn_daemon_t *d, fn_msg_t *m)
{
    fn_msg_t **b = bucket_of(d, m);
    while (*b && *b != m)
        b = &(*b)->bucket_next;
    if (!*b)
        return; /* not a chain head (never submitted) */
    *b = m->bucket_next;
    m->bucket_next = NULL;
    fn_msg_t *next = m->lead_next;
    m->lead_next = NULL;
    if (next) {
        next->lead_tail = m->lead_tail;
        next->bucket_next = *bucket_of(d, next);
        *bucket_of(d, next) = next;
        next->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&d->redis_wait, next);
        flush_wait(d);
    }
    m->lead_tail = NULL;
}

void fn_store_clear_pending(fn_daemon_t *d, fn_msg_t *m)
{
    if (!d->redis_ready)
        return; /* harmless to skip: a replay would only re-emit the same ids */
    fn_lead_keys_t k;
    fn_step_keys(d->cfg, m->lead_hash, &k);
    redisAsyncCommand(d->redis, NULL, NULL, "HDEL %s %b", k.pending, m->ev.event_id.p,
                      m->ev.event_id.len);
}

/* ---- connection ---- */

static void schedule_reconnect(fn_daemon_t *d)
{
    if (d->stopping && !d->in_flight)
        return;
    d->redis_backoff_ms = d->redis_backoff_ms ? d->redis_backoff_ms * 2 : BACKOFF_MIN_MS;
    if (d->redis_backoff_ms > BACKOFF_MAX_MS)
        d->redis_backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&d->redis_timer, on_redis_timer, (uint64_t)d->redis_backoff_ms, 0);
}

/* Stores a SCRIPT LOAD reply's digest into sha (41 bytes); false (and the connection is
 * re-made) when the reply is not one. */
static bool script_loaded(fn_daemon_t *d, redisAsyncContext *ac, const redisReply *reply,
                          const char *what, char *sha)
{
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        fn_log(&d->log, FN_LOG_ERROR, "redis", "SCRIPT LOAD (%s) failed: %s", what,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        redisAsyncDisconnect(ac);
        return false;
    }
    memcpy(sha, reply->str, 40);
    sha[40] = '\0';
    return true;
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    if (!r || !script_loaded(d, ac, r, "step", d->script_sha))
        return;
    d->redis_ready = true;
    d->redis_backoff_ms = 0;
    fn_log(&d->log, FN_LOG_INFO, "redis", "ready (step script %.12s…), %zu step(s) to send",
           d->script_sha, d->redis_wait.len);
    fn_timers_on_ready(d);
    flush_wait(d);
}

static void on_fire_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    if (r)
        script_loaded(d, ac, r, "fire", d->fire_sha);
}

static void on_read_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    if (r)
        script_loaded(d, ac, r, "read", d->read_sha);
}

static void on_epoch_set(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        fn_log(&d->log, FN_LOG_WARN, "redis", "epoch marker: %s; a loss of data goes unnoticed",
               reply->str);
    else if (reply && reply->type == REDIS_REPLY_STATUS && !d->redis_epoch[0])
        fn_log(&d->log, FN_LOG_INFO, "redis", "empty store: new epoch %s", d->redis_epoch_try);
}

static void on_epoch_get(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_STRING)
        return; /* an error reply was logged by the SET; the connection is being re-made */
    char now[sizeof d->redis_epoch];
    snprintf(now, sizeof now, "%.*s", (int)reply->len, reply->str);
    if (d->redis_epoch[0] && strcmp(now, d->redis_epoch) != 0) {
        d->stats.redis_data_lost++;
        fn_log(&d->log, FN_LOG_ERROR, "redis",
               "the store lost its data: epoch %s is gone (now %s); Redis was restarted without "
               "persistence, flushed or replaced. Lead state, de-duplication, timers and "
               "counters written before are lost; processing goes on from here",
               d->redis_epoch, now);
    }
    memcpy(d->redis_epoch, now, sizeof now);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        bool auth = strcmp(priv, "AUTH") == 0;
        fn_log(&d->log, FN_LOG_ERROR, "redis", "%s: %s%s", (const char *)priv, reply->str,
               auth ? " (check the user and password in redis.url or FUNNELD_REDIS_URL)" : "");
        redisAsyncDisconnect(ac);
    }
}

/* The commands after the gate: the epoch marker and the scripts. */
static void send_setup(fn_daemon_t *d, redisAsyncContext *ac)
{
    /* Two plain commands rather than SET NX GET, which needs Redis 7. */
    snprintf(d->redis_epoch_try, sizeof d->redis_epoch_try, "%s-%llu", d->instance,
             (unsigned long long)++d->redis_connects);
    redisAsyncCommand(ac, on_epoch_set, NULL, "SET %s:epoch %s NX", d->cfg->key_prefix,
                      d->redis_epoch_try);
    redisAsyncCommand(ac, on_epoch_get, NULL, "GET %s:epoch", d->cfg->key_prefix);
    /* Replies come in order: the connection is ready once the step script, loaded last, is. */
    redisAsyncCommand(ac, on_fire_loaded, NULL, "SCRIPT LOAD %s", fn_lua_fire_src);
    redisAsyncCommand(ac, on_read_loaded, NULL, "SCRIPT LOAD %s", fn_lua_read_src);
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
    fn_daemon_t *d = ac->data;
    redisReply *reply = r;
    if (!reply || (ac->c.flags & REDIS_DISCONNECTING))
        return; /* lost, or AUTH/SELECT failed (logged) and it is being re-made */
    if (reply->type == REDIS_REPLY_ERROR) {
        bool noauth = strncmp(reply->str, "NOAUTH", 6) == 0;
        fn_log(&d->log, FN_LOG_ERROR, "redis", "%s%s", reply->str,
               noauth ? " (Redis wants a password: redis://[user:]password@host:port/db in "
                        "redis.url or FUNNELD_REDIS_URL)"
                      : "");
        redisAsyncDisconnect(ac);
        return;
    }
    send_setup(d, ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    fn_daemon_t *d = ac->data;
    if (status != REDIS_OK) {
        fn_log(&d->log, FN_LOG_WARN, "redis", "connect failed: %s; retrying in %lld ms", ac->errstr,
               (long long)d->redis_backoff_ms);
        d->redis = NULL; /* hiredis frees the context after this callback */
        schedule_reconnect(d);
        return;
    }
    fn_log(&d->log, FN_LOG_INFO, "redis", "connected");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    fn_daemon_t *d = ac->data;
    d->redis = NULL;
    d->redis_ping_ms = 0;
    d->redis_ready = false;
    /* Steps without a reply go back in front of the ones never sent. */
    fn_msg_queue_t q = d->redis_sent;
    memset(&d->redis_sent, 0, sizeof d->redis_sent);
    if (q.head) {
        q.tail->q_next = d->redis_wait.head;
        if (!d->redis_wait.head)
            d->redis_wait.tail = q.tail;
        d->redis_wait.head = q.head;
        d->redis_wait.len += q.len;
    }
    for (fn_msg_t *m = d->redis_wait.head; m; m = m->q_next)
        m->state = FN_MSG_REDIS_WAIT;
    if (status != REDIS_OK || d->redis_wait.len)
        fn_log(&d->log, FN_LOG_WARN, "redis", "disconnected (%s), %zu step(s) to re-send",
               ac->errstr[0] ? ac->errstr : "closed", d->redis_wait.len);
    schedule_reconnect(d);
}

static void connect_now(fn_daemon_t *d)
{
    char host[256], user[128], pass[256];
    int port, db;
    if (fn_redis_url_parse(d->cfg->redis_url, host, sizeof host, &port, user, sizeof user, pass,
                           sizeof pass, &db)) {
        fn_log(&d->log, FN_LOG_ERROR, "redis", "redis.url: cannot parse");
        fn_daemon_stop(d, 1);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac || ac->err) {
        fn_log(&d->log, FN_LOG_WARN, "redis", "connect %s:%d: %s", host, port,
               ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(d);
        return;
    }
    ac->data = d;
    d->redis = ac;
    d->redis_connect_ms = fn_now_ms();
    redisLibuvAttach(ac, d->loop);
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

static void on_redis_timer(uv_timer_t *t)
{
    fn_daemon_t *d = t->data;
    if (!d->redis)
        connect_now(d);
}

static void on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    fn_daemon_t *d = ac->data;
    d->redis_ping_ms = 0;
    if (r)
        d->redis_progress_ms = fn_now_ms();
}

/* Replies that came while the loop was held are still unread in the socket, and the tick
 * runs before the loop reads it: so the time of a stall is not Redis's silence, and the
 * watchdog's references move forward by it. A reply's age then counts only the time the
 * loop could have read it. */
static void discount_stall(fn_daemon_t *d, int64_t now)
{
    int64_t gap = d->redis_watch_ms ? now - d->redis_watch_ms : 0;
    d->redis_watch_ms = now;
    if (gap < LOOP_STALL_MS)
        return;
    int64_t *refs[] = {&d->redis_progress_ms, &d->redis_ping_ms, &d->redis_connect_ms};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        if (*refs[i]) /* 0: no PING outstanding */
            *refs[i] = *refs[i] + gap < now ? *refs[i] + gap : now;
}

void fn_store_watchdog(fn_daemon_t *d)
{
    int64_t now = fn_now_ms();
    discount_stall(d, now);
    /* An idle connection is pinged, so that a Redis that went away is noticed (and /readyz
     * says so) before the next event needs it; no answer within the reply timeout drops it. */
    if (d->redis && d->redis_ready) {
        if (d->redis_ping_ms && now - d->redis_ping_ms >= REPLY_TIMEOUT_MS) {
            fn_log(&d->log, FN_LOG_WARN, "redis", "no answer to PING for %d ms; reconnecting",
                   REPLY_TIMEOUT_MS);
            d->redis_ping_ms = 0;
            redisAsyncFree(d->redis);
            return;
        }
        if (!d->redis_ping_ms && !d->redis_sent.head && now - d->redis_progress_ms >= PING_MS &&
            redisAsyncCommand(d->redis, on_ping, NULL, "PING") == REDIS_OK)
            d->redis_ping_ms = now;
    }
    if (d->redis && !d->redis_ready && now - d->redis_connect_ms >= REPLY_TIMEOUT_MS) {
        /* The same adapter flaw hides a refused connect (libuv reports it as a poll error),
         * and a set-up reply may never come: give the attempt up and start another. */
        redisAsyncContext *ac = d->redis;
        bool connected = (ac->c.flags & REDIS_CONNECTED) != 0;
        fn_log(&d->log, FN_LOG_WARN, "redis", "not ready %d ms after connecting; retrying",
               REPLY_TIMEOUT_MS);
        redisAsyncFree(ac); /* calls on_disconnect only if it had connected */
        if (!connected) {
            d->redis = NULL;
            schedule_reconnect(d);
        }
        return;
    }
    if (!d->redis || !d->redis_sent.head || now - d->redis_progress_ms < REPLY_TIMEOUT_MS)
        return;
    fn_log(&d->log, FN_LOG_WARN, "redis",
           "no reply for %d ms with %zu step(s) outstanding; "
           "reconnecting",
           REPLY_TIMEOUT_MS, d->redis_sent.len);
    /* Freeing (not a polite disconnect, which would wait for the replies) runs the pending
     * callbacks with no reply and then on_disconnect, which re-queues the steps. */
    redisAsyncContext *ac = d->redis;
    redisAsyncFree(ac);
}

int fn_store_start(fn_daemon_t *d)
{
    size_t size = 1024;
    while (size < 2 * d->cfg->max_in_flight)
        size *= 2;
    d->lead_table = calloc(size, sizeof *d->lead_table);
    if (!d->lead_table)
        return FN_ERR;
    d->lead_table_mask = size - 1;
    uv_timer_init(d->loop, &d->redis_timer);
    d->redis_timer.data = d;
    d->store_started = true;
    connect_now(d);
    return FN_OK;
}

void fn_store_close(fn_daemon_t *d)
{
    if (!d->store_started)
        return;
    d->store_started = false;
    uv_timer_stop(&d->redis_timer);
    uv_close((uv_handle_t *)&d->redis_timer, NULL);
    if (d->redis) {
        /* Free rather than disconnect politely: a polite disconnect waits for outstanding
         * replies, and with Redis unresponsive the loop, and so the process, would never
         * end. Steps without a reply are simply not committed. */
        redisAsyncContext *ac = d->redis;
        ac->onDisconnect = NULL; /* 0.14's setter refuses to replace a callback */
        d->redis = NULL;
        d->redis_ready = false;
        redisAsyncFree(ac);
    }
    free(d->lead_table);
    d->lead_table = NULL;
}
