/*
 * store.c — the Redis connection and the per-lead queue in front of it (store.h).
 *
 * One async hiredis connection on the loop carries every step, pipelined, and the commands
 * timers and evaluation send through fn_store_call. Replies come back in send order, so
 * "sent" is a FIFO. Only one step per lead is outstanding at a time (lead_queue.c holds the
 * rest in input order): that keeps a lead's events in order even when one step has to be
 * retried after an error or a reconnect, and it is what will let steps spread over several
 * Redis Cluster connections later.
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
#include "funneld/store.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "funneld/keys.h"
#include "funneld/analytics.h"
#include "funneld/host.h"
#include "funneld/msg.h"
#include "funneld/lead_queue.h"
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

/* A generic command's completion, kept on a free list: no allocation per command once warm. */
typedef struct store_call {
    fn_store_t *s;
    fn_store_cb cb;
    void *priv;
    struct store_call *next;
} store_call_t;

struct fn_store {
    fn_host_t host; /* the loop, config, log, counters and the stop on a fatal error */
    fn_store_hooks_t hooks;
    redisAsyncContext *redis;
    bool redis_ready; /* connected, authenticated, scripts loaded */
    char sha[FN_SCRIPT_COUNT][41];
    char instance[33]; /* random per process: with a message number, names pending results */
    fn_msg_queue_t redis_wait; /* ready to send, in order */
    fn_msg_queue_t redis_sent; /* sent, replies come back in this order */
    fn_buf_t step_cmd;         /* the RESP step being sent; hiredis copies it, and a re-send
                                * after a reconnect builds it again from the event */
    int64_t redis_backoff_ms;
    int64_t redis_progress_ms; /* last reply, or first send into an empty "sent" queue */
    int64_t redis_connect_ms;  /* when the current connection attempt began */
    int64_t redis_ping_ms;     /* when an idle-check PING was sent, 0: none outstanding */
    int64_t redis_watch_ms;    /* the watchdog's last run (a late one means a loop stall) */
    bool store_started;
    uv_timer_t redis_timer;
    fn_lead_queue_t leads;
    /* The store's epoch marker as first seen: a reconnect that finds it gone or different
     * means Redis lost or swapped funneld's data. */
    char redis_epoch[48];
    char redis_epoch_try[48]; /* the value this connection offered with SET NX */
    uint64_t redis_connects;
    store_call_t *free_calls;
};

static void connect_now(fn_store_t *s);

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

#define MSG_OF(node) ((fn_msg_t *)((char *)(node)-offsetof(fn_msg_t, lead)))

static void flush_wait(fn_store_t *s);

static void on_step_reply(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    fn_msg_t *m = priv;
    redisReply *reply = r;
    if (!reply)
        return; /* connection lost: on_disconnect re-queues everything still in "sent" */
    fn_msg_t *head = fn_queue_pop(&s->redis_sent);
    if (head != m) {
        /* Back in front, so that on_disconnect re-queues it with the rest. */
        if (head) {
            head->q_next = s->redis_sent.head;
            s->redis_sent.head = head;
            if (!s->redis_sent.tail)
                s->redis_sent.tail = head;
            s->redis_sent.len++;
        }
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "reply out of order; reconnecting");
        redisAsyncDisconnect(ac);
        return;
    }
    s->redis_progress_ms = fn_now_ms();
    fn_hist_observe(&s->host.stats->redis_rtt, (double)(uv_hrtime() - m->sent_ns) / 1e9);
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
            fn_log_ctx(s->host.log, FN_LOG_ERROR, "redis", &ctx, "%s; dead-lettered", reason);
            s->hooks.step_failed(s->hooks.priv, m, reason);
            return;
        }
        bool noscript = strncmp(reply->str, "NOSCRIPT", 8) == 0;
        fn_log(s->host.log, noscript ? FN_LOG_INFO : FN_LOG_WARN, "redis", "step failed: %s%s",
               reply->str, noscript ? " (loading the script again)" : "; retrying");
        /* Retry after a pause; the lead's later events wait behind this one. A reconnect
         * also reloads the script, which is what NOSCRIPT needs. */
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&s->redis_wait, m);
        redisAsyncDisconnect(ac);
        return;
    }
    s->hooks.step_reply(s->hooks.priv, m, reply);
}

static void send_step(fn_store_t *s, fn_msg_t *m)
{
    char token[64];
    snprintf(token, sizeof token, "%s:%llu", s->instance, (unsigned long long)m->seq);
    const fn_config_t *cfg = s->hooks.step_config(s->hooks.priv, m);
    if (fn_step_build(cfg, s->sha[FN_SCRIPT_STEP], token, &m->ev, m->lead_hash, fn_now_ms(),
                      m->clock_ms, m->part->topic, m->part->partition, &s->step_cmd)) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "out of memory building a step");
        s->host.stop(s->host.data, 1);
        return;
    }
    if (redisAsyncFormattedCommand(s->redis, on_step_reply, m, s->step_cmd.data, s->step_cmd.len) !=
        REDIS_OK) {
        m->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&s->redis_wait, m);
        return;
    }
    m->state = FN_MSG_REDIS_SENT;
    m->sent_ns = uv_hrtime();
    if (!s->redis_sent.head)
        s->redis_progress_ms = fn_now_ms();
    fn_queue_push(&s->redis_sent, m);
}

static void flush_wait(fn_store_t *s)
{
    while (s->redis_ready && s->redis_wait.head) {
        fn_msg_t *m = fn_queue_pop(&s->redis_wait);
        send_step(s, m);
        if (m->state != FN_MSG_REDIS_SENT)
            break;
    }
}

void fn_store_submit(fn_store_t *s, fn_msg_t *m)
{
    if (!fn_lead_queue_push(&s->leads, &m->lead, m->lead_hash)) {
        m->state = FN_MSG_LEAD_WAIT;
        return;
    }
    m->state = FN_MSG_REDIS_WAIT;
    fn_queue_push(&s->redis_wait, m);
    flush_wait(s);
}

void fn_store_release(fn_store_t *s, fn_msg_t *m)
{
    fn_lead_node_t *next = fn_lead_queue_release(&s->leads, &m->lead);
    if (next) {
        fn_msg_t *n = MSG_OF(next);
        n->state = FN_MSG_REDIS_WAIT;
        fn_queue_push(&s->redis_wait, n);
        flush_wait(s);
    }
}

void fn_store_clear_pending(fn_store_t *s, fn_msg_t *m)
{
    if (!s->redis_ready)
        return; /* harmless to skip: a replay would only re-emit the same ids */
    fn_lead_keys_t k;
    fn_step_keys((*s->host.cfg), m->lead_hash, &k);
    redisAsyncCommand(s->redis, NULL, NULL, "HDEL %s %b", k.pending, m->ev.event_id.p,
                      m->ev.event_id.len);
}

/* ---- connection ---- */

static void schedule_reconnect(fn_store_t *s)
{
    if (s->hooks.finished && s->hooks.finished(s->hooks.priv))
        return;
    s->redis_backoff_ms = s->redis_backoff_ms ? s->redis_backoff_ms * 2 : BACKOFF_MIN_MS;
    if (s->redis_backoff_ms > BACKOFF_MAX_MS)
        s->redis_backoff_ms = BACKOFF_MAX_MS;
    uv_timer_start(&s->redis_timer, on_redis_timer, (uint64_t)s->redis_backoff_ms, 0);
}

/* Stores a SCRIPT LOAD reply's digest into sha (41 bytes); false (and the connection is
 * re-made) when the reply is not one. */
static bool script_loaded(fn_store_t *s, redisAsyncContext *ac, const redisReply *reply,
                          const char *what, char *sha)
{
    if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "SCRIPT LOAD (%s) failed: %s", what,
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
    fn_store_t *s = ac->data;
    if (!r || !script_loaded(s, ac, r, "step", s->sha[FN_SCRIPT_STEP]))
        return;
    s->redis_ready = true;
    s->redis_backoff_ms = 0;
    fn_log(s->host.log, FN_LOG_INFO, "redis", "ready (step script %.12s…), %zu step(s) to send",
           s->sha[FN_SCRIPT_STEP], s->redis_wait.len);
    if (s->hooks.ready)
        s->hooks.ready(s->hooks.priv);
    flush_wait(s);
}

static void on_fire_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    if (r)
        script_loaded(s, ac, r, "fire", s->sha[FN_SCRIPT_FIRE]);
}

static void on_read_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    if (r)
        script_loaded(s, ac, r, "read", s->sha[FN_SCRIPT_READ]);
}

static void on_epoch_set(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        fn_log(s->host.log, FN_LOG_WARN, "redis", "epoch marker: %s; a loss of data goes unnoticed",
               reply->str);
    else if (reply && reply->type == REDIS_REPLY_STATUS && !s->redis_epoch[0])
        fn_log(s->host.log, FN_LOG_INFO, "redis", "empty store: new epoch %s", s->redis_epoch_try);
}

static void on_epoch_get(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_STRING)
        return; /* an error reply was logged by the SET; the connection is being re-made */
    char now[sizeof s->redis_epoch];
    snprintf(now, sizeof now, "%.*s", (int)reply->len, reply->str);
    if (s->redis_epoch[0] && strcmp(now, s->redis_epoch) != 0) {
        s->host.stats->redis_data_lost++;
        fn_log(s->host.log, FN_LOG_ERROR, "redis",
               "the store lost its data: epoch %s is gone (now %s); Redis was restarted without "
               "persistence, flushed or replaced. Lead state, de-duplication, timers and "
               "counters written before are lost; processing goes on from here",
               s->redis_epoch, now);
    }
    memcpy(s->redis_epoch, now, sizeof now);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        bool auth = strcmp(priv, "AUTH") == 0;
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "%s: %s%s", (const char *)priv, reply->str,
               auth ? " (check the user and password in redis.url or FUNNELD_REDIS_URL)" : "");
        redisAsyncDisconnect(ac);
    }
}

/* The commands after the gate: the epoch marker and the scripts. */
static void send_setup(fn_store_t *s, redisAsyncContext *ac)
{
    /* Two plain commands rather than SET NX GET, which needs Redis 7. */
    snprintf(s->redis_epoch_try, sizeof s->redis_epoch_try, "%s-%llu", s->instance,
             (unsigned long long)++s->redis_connects);
    char epoch[64];
    fn_key_epoch(epoch, sizeof epoch, (*s->host.cfg)->key_prefix);
    redisAsyncCommand(ac, on_epoch_set, NULL, "SET %s %s NX", epoch, s->redis_epoch_try);
    redisAsyncCommand(ac, on_epoch_get, NULL, "GET %s", epoch);
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
    fn_store_t *s = ac->data;
    redisReply *reply = r;
    if (!reply || (ac->c.flags & REDIS_DISCONNECTING))
        return; /* lost, or AUTH/SELECT failed (logged) and it is being re-made */
    if (reply->type == REDIS_REPLY_ERROR) {
        bool noauth = strncmp(reply->str, "NOAUTH", 6) == 0;
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "%s%s", reply->str,
               noauth ? " (Redis wants a password: redis://[user:]password@host:port/db in "
                        "redis.url or FUNNELD_REDIS_URL)"
                      : "");
        redisAsyncDisconnect(ac);
        return;
    }
    send_setup(s, ac);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    fn_store_t *s = ac->data;
    if (status != REDIS_OK) {
        fn_log(s->host.log, FN_LOG_WARN, "redis", "connect failed: %s; retrying in %lld ms",
               ac->errstr, (long long)s->redis_backoff_ms);
        s->redis = NULL; /* hiredis frees the context after this callback */
        schedule_reconnect(s);
        return;
    }
    fn_log(s->host.log, FN_LOG_INFO, "redis", "connected");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    fn_store_t *s = ac->data;
    s->redis = NULL;
    s->redis_ping_ms = 0;
    s->redis_ready = false;
    /* Steps without a reply go back in front of the ones never sent. */
    fn_msg_queue_t q = s->redis_sent;
    memset(&s->redis_sent, 0, sizeof s->redis_sent);
    if (q.head) {
        q.tail->q_next = s->redis_wait.head;
        if (!s->redis_wait.head)
            s->redis_wait.tail = q.tail;
        s->redis_wait.head = q.head;
        s->redis_wait.len += q.len;
    }
    for (fn_msg_t *m = s->redis_wait.head; m; m = m->q_next)
        m->state = FN_MSG_REDIS_WAIT;
    if (status != REDIS_OK || s->redis_wait.len)
        fn_log(s->host.log, FN_LOG_WARN, "redis", "disconnected (%s), %zu step(s) to re-send",
               ac->errstr[0] ? ac->errstr : "closed", s->redis_wait.len);
    schedule_reconnect(s);
}

static void connect_now(fn_store_t *s)
{
    char host[256], user[128], pass[256];
    int port, db;
    if (fn_redis_url_parse((*s->host.cfg)->redis_url, host, sizeof host, &port, user, sizeof user,
                           pass, sizeof pass, &db)) {
        fn_log(s->host.log, FN_LOG_ERROR, "redis", "redis.url: cannot parse");
        s->host.stop(s->host.data, 1);
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac || ac->err) {
        fn_log(s->host.log, FN_LOG_WARN, "redis", "connect %s:%d: %s", host, port,
               ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    s->redis = ac;
    s->redis_connect_ms = fn_now_ms();
    redisLibuvAttach(ac, s->host.loop);
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
    fn_store_t *s = t->data;
    if (!s->redis)
        connect_now(s);
}

static void on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    fn_store_t *s = ac->data;
    s->redis_ping_ms = 0;
    if (r)
        s->redis_progress_ms = fn_now_ms();
}

/* Replies that came while the loop was held are still unread in the socket, and the tick
 * runs before the loop reads it: so the time of a stall is not Redis's silence, and the
 * watchdog's references move forward by it. A reply's age then counts only the time the
 * loop could have read it. */
static void discount_stall(fn_store_t *s, int64_t now)
{
    int64_t gap = s->redis_watch_ms ? now - s->redis_watch_ms : 0;
    s->redis_watch_ms = now;
    if (gap < LOOP_STALL_MS)
        return;
    int64_t *refs[] = {&s->redis_progress_ms, &s->redis_ping_ms, &s->redis_connect_ms};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        if (*refs[i]) /* 0: no PING outstanding */
            *refs[i] = *refs[i] + gap < now ? *refs[i] + gap : now;
}

void fn_store_watchdog(fn_store_t *s)
{
    int64_t now = fn_now_ms();
    discount_stall(s, now);
    /* An idle connection is pinged, so that a Redis that went away is noticed (and /readyz
     * says so) before the next event needs it; no answer within the reply timeout drops it. */
    if (s->redis && s->redis_ready) {
        if (s->redis_ping_ms && now - s->redis_ping_ms >= REPLY_TIMEOUT_MS) {
            fn_log(s->host.log, FN_LOG_WARN, "redis", "no answer to PING for %d ms; reconnecting",
                   REPLY_TIMEOUT_MS);
            s->redis_ping_ms = 0;
            redisAsyncFree(s->redis);
            return;
        }
        if (!s->redis_ping_ms && !s->redis_sent.head && now - s->redis_progress_ms >= PING_MS &&
            redisAsyncCommand(s->redis, on_ping, NULL, "PING") == REDIS_OK)
            s->redis_ping_ms = now;
    }
    if (s->redis && !s->redis_ready && now - s->redis_connect_ms >= REPLY_TIMEOUT_MS) {
        /* The same adapter flaw hides a refused connect (libuv reports it as a poll error),
         * and a set-up reply may never come: give the attempt up and start another. */
        redisAsyncContext *ac = s->redis;
        bool connected = (ac->c.flags & REDIS_CONNECTED) != 0;
        fn_log(s->host.log, FN_LOG_WARN, "redis", "not ready %d ms after connecting; retrying",
               REPLY_TIMEOUT_MS);
        redisAsyncFree(ac); /* calls on_disconnect only if it had connected */
        if (!connected) {
            s->redis = NULL;
            schedule_reconnect(s);
        }
        return;
    }
    if (!s->redis || !s->redis_sent.head || now - s->redis_progress_ms < REPLY_TIMEOUT_MS)
        return;
    fn_log(s->host.log, FN_LOG_WARN, "redis",
           "no reply for %d ms with %zu step(s) outstanding; "
           "reconnecting",
           REPLY_TIMEOUT_MS, s->redis_sent.len);
    /* Freeing (not a polite disconnect, which would wait for the replies) runs the pending
     * callbacks with no reply and then on_disconnect, which re-queues the steps. */
    redisAsyncContext *ac = s->redis;
    redisAsyncFree(ac);
}

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
    if (fn_lead_queue_init(&s->leads, (*s->host.cfg)->max_in_flight))
        return FN_ERR;
    uv_timer_init(s->host.loop, &s->redis_timer);
    s->redis_timer.data = s;
    s->store_started = true;
    connect_now(s);
    return FN_OK;
}

void fn_store_close(fn_store_t *s)
{
    if (!s || !s->store_started)
        return;
    s->store_started = false;
    uv_timer_stop(&s->redis_timer);
    uv_close((uv_handle_t *)&s->redis_timer, NULL);
    if (s->redis) {
        /* Free rather than disconnect politely: a polite disconnect waits for outstanding
         * replies, and with Redis unresponsive the loop, and so the process, would never
         * end. Steps without a reply are simply not committed. */
        redisAsyncContext *ac = s->redis;
        ac->onDisconnect = NULL; /* 0.14's setter refuses to replace a callback */
        s->redis = NULL;
        s->redis_ready = false;
        redisAsyncFree(ac);
    }
    fn_lead_queue_free(&s->leads);
    /* The messages still queued are the daemon's; it releases them after this. */
    memset(&s->redis_wait, 0, sizeof s->redis_wait);
    memset(&s->redis_sent, 0, sizeof s->redis_sent);
}

void fn_store_free(fn_store_t *s)
{
    if (!s)
        return;
    fn_store_close(s);
    while (s->free_calls) {
        store_call_t *c = s->free_calls;
        s->free_calls = c->next;
        free(c);
    }
    fn_buf_free(&s->step_cmd);
    free(s);
}

/* ---- generic commands ---- */

bool fn_store_ready(const fn_store_t *s)
{
    return s->redis && s->redis_ready;
}

bool fn_store_connected(const fn_store_t *s)
{
    return s->redis != NULL;
}

bool fn_store_up(const fn_store_t *s)
{
    return s->redis_ready;
}

uint64_t fn_store_connects(const fn_store_t *s)
{
    return s->redis_connects;
}

static void on_call_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    store_call_t *c = priv;
    fn_store_t *s = c->s;
    fn_store_cb cb = c->cb;
    void *cb_priv = c->priv;
    c->next = s->free_calls;
    s->free_calls = c;
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
    (void)key; /* one connection today; a cluster layer routes by its slot */
    if (!s->redis)
        return FN_ERR;
    store_call_t *c = cb ? call_new(s, cb, priv) : NULL;
    if (cb && !c)
        return FN_ERR;
    if (redisAsyncCommandArgv(s->redis, c ? on_call_reply : NULL, c, argc, (const char **)argv,
                              argvlen) != REDIS_OK) {
        call_drop(s, c);
        return FN_ERR;
    }
    return FN_OK;
}

int fn_store_callf(fn_store_t *s, const char *key, fn_store_cb cb, void *priv, const char *fmt, ...)
{
    (void)key;
    if (!s->redis)
        return FN_ERR;
    store_call_t *c = cb ? call_new(s, cb, priv) : NULL;
    if (cb && !c)
        return FN_ERR;
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAsyncCommand(s->redis, c ? on_call_reply : NULL, c, fmt, ap);
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
    if (!s->redis)
        return;
    fn_log(s->host.log, FN_LOG_DEBUG, "redis", "reconnecting: %s", why);
    redisAsyncDisconnect(s->redis);
}
