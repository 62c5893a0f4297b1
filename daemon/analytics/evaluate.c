/*
 * evaluate.c — every evaluate_every, per funnel: read the funnel's figures from every shard,
 * emit a funnel_snapshot, and raise or clear bottlenecks (SPEC §4).
 *
 * Ticks are aligned to multiples of evaluate_every on the daemon's clock (wall, or under the
 * event clock the latest finished event time of its partitions), so several daemons agree on
 * them; a SET NX lock per (funnel, tick) lets one of them evaluate, and every id is a hash of
 * (type, funnel, stage, tick), so even a repeat carries the same id.
 *
 * Every tick the clock passes is judged for bottlenecks, in tick order, over its own window
 * (SPEC §5), so a back-fill that moves the clock across a day at once raises and clears what
 * the day did, with the same ids. Catching up is one evaluation at a time per funnel, each
 * started when the one before it has finished and its announcements are acknowledged, so the
 * loop only ever serves a few replies of it at once. fn_window_next_tick picks the ticks: one
 * per minute (ticks of one minute share a window) and none older than the buckets kept. A
 * tick is judged only once every partition that still has input has passed it (the
 * watermark, below): with several partitions read at different speeds the clock is the
 * fastest one, and a window judged before the slower ones filled it would decide on part of
 * the data. A past tick's judgment reads no sketches and emits no snapshot; while ticks wait
 * for the watermark, the clock's tick gets a snapshot of its own (its own lock), the stages
 * marked as last judged. A daemon starts judging at the earliest event clock its partitions
 * began at (first_judged).
 *
 * An evaluation cut short by the connection going or by a flushed script cache is tried again
 * after the reconnect, by the daemon that holds the tick's lock: under the event clock a clock
 * that does not move would otherwise leave that tick without its snapshot and bottleneck
 * decisions for good.
 *
 * Bottleneck state lives in Redis ("<prefix>:bn:<funnel>": field BN_JUDGED the last tick
 * judged, and stage index -> "<tick>|<s>", s = 'p' raised but not yet acknowledged by Kafka,
 * 'a' raised and announced, 'c' cleared but not yet acknowledged; a cleared and announced
 * stage has no field). It is written before the
 * event is produced and marked announced when Kafka acknowledges it; an evaluation that finds
 * a change not announced (its daemon died) announces it again, with the same id, so a change
 * is never lost and never gets two ids. A daemon does not evaluate a funnel while its own
 * announcements are in flight.
 *
 * The reads are paced, EVAL_READS_AT_ONCE outstanding: every shard's read.lua sent at once
 * would hold the steps queued behind them every evaluate_every, and set the p99 latency at a
 * steady rate (tests/bench/README.md). Steps sent meanwhile go in between.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/analytics.h"
#include "funneld/evaluate.h"
#include "funneld/hash.h"
#include "funneld/host.h"
#include "funneld/input.h"
#include "funneld/judge.h"
#include "funneld/keys.h"
#include "funneld/output.h"
#include "funneld/store.h"
#include "funneld/window.h"

#define EVAL_READS_AT_ONCE 2
/* The field of the bottleneck state holding the last tick judged (stage fields are numbers). */
#define BN_JUDGED "judged"

/* What one evaluation of a tick does. */
typedef enum {
    FN_EVAL_FULL = 0, /* the clock's tick: bottlenecks judged and a snapshot */
    FN_EVAL_PAST,     /* a tick the clock passed: bottlenecks judged over its window only */
    FN_EVAL_SNAPSHOT, /* the clock's tick while past ones wait: a snapshot only */
} fn_eval_mode_t;

/* One funnel's periodic evaluation. */
typedef struct fn_eval {
    const fn_funnel_t *f;
    int64_t last_tick; /* the last tick judged here or by another daemon */
    int64_t snap_tick; /* the last tick with a snapshot from here or another daemon */
    int64_t judged_at; /* the last tick judged as stored in Redis, when seen ahead of ours */
    int64_t tick;      /* the one in progress */
    fn_eval_mode_t mode;
    int64_t held_tick;        /* the last tick whose lock this daemon won (it may try it again) */
    fn_eval_mode_t held_mode; /* ... and for what (each mode has its own lock) */
    bool busy, failed;
    bool again;  /* a reconnect cures the failure (connection gone, NOSCRIPT): try the tick again */
    int pending; /* replies still to come */
    int next_read;          /* next shard to read; redis_shards: the bottleneck state; then done */
    int announcing;         /* bottleneck changes produced, not yet acknowledged */
    int64_t skip_logged_ms; /* ticks given up: last logged, and since then */
    uint64_t skipped_unlogged;
    fn_funnel_stats_t st;
    json_t *bn_state; /* stage index -> raised */
} fn_eval_t;

/* The evaluation context (evaluate.h). */
struct fn_eval_ctx {
    fn_host_t host; /* the loop, the running config, log and counters (a copy) */
    fn_store_t *store;
    fn_output_t *out;
    fn_input_t *input;
    fn_eval_t *evals; /* one per funnel of the configuration it was started with */
    size_t n_evals;
    size_t requests;           /* Redis commands without a reply yet */
    size_t in_flight;          /* analytics events produced, not yet acknowledged */
    int64_t refused_logged_ms; /* analytics outputs refused: last logged, and since then */
    uint64_t refused_unlogged;
    bool stopping; /* no evaluation begins any more */
};

/* The running config (a reload replaces it: never keep a pointer into it). */
static inline const fn_config_t *running(const fn_eval_ctx_t *v)
{
    return *v->host.cfg;
}

typedef struct eval_reply {
    fn_eval_t *e;
    fn_eval_ctx_t *v;
    bool state; /* the bottleneck state's HGETALL, not a shard's read.lua (or the lock) */
} eval_reply_t;

/* A bottleneck state field: "<stage>", or "<stage>|<dimension>|<value>" for a breakdown
 * value's (a value is at most a campaign's 256 bytes). */
#define BN_FIELD_MAX (24 + FN_NAME_MAX + 8 + 512)

typedef struct bn_out {
    fn_out_req_t out; /* first: its delivery comes back to on_out_done (output.h) */
    fn_eval_t *e;
    int stage;                /* -1: a snapshot, nothing to record */
    char field[BN_FIELD_MAX]; /* the stage's bottleneck state field */
    bool raise;
    int64_t tick;
} bn_out_t;

static void send_reads(fn_eval_ctx_t *v, fn_eval_t *e);
static void next_eval(fn_eval_ctx_t *v, fn_eval_t *e);
static void done_tick(fn_eval_t *e);

static void state_key(const fn_config_t *cfg, const char *funnel, char *out, size_t n)
{
    fn_key_bn(out, n, cfg->key_prefix, funnel);
}

/* "Now" for evaluations: wall time, or the latest finished event time (event clock). */
static int64_t eval_clock(const fn_eval_ctx_t *v)
{
    if (running(v)->clock == FN_CLOCK_WALL)
        return fn_now_ms();
    int64_t now = 0;
    for (const fn_partition_t *p = fn_input_partitions(v->input); p; p = p->next)
        if (p->assigned && p->maxts_done > now)
            now = p->maxts_done;
    return now;
}

/* The time up to which every assigned partition has applied its input: under the event
 * clock the least finished event time of the partitions that still have some (one at its end
 * with nothing in flight does not hold it back), never beyond the clock; the wall time
 * otherwise. Past ticks are judged up to here. */
static int64_t watermark(const fn_eval_ctx_t *v, int64_t clock)
{
    if (running(v)->clock == FN_CLOCK_WALL)
        return clock;
    int64_t w = clock;
    for (const fn_partition_t *p = fn_input_partitions(v->input); p; p = p->next)
        if (p->assigned && !(p->at_eof && !p->head) && p->maxts_done < w)
            w = p->maxts_done;
    return w;
}

/* The id of an analytics event; dim and value (a breakdown value's bottleneck) or NULL. */
static void id_of(const char *type, const char *funnel, int stage, int64_t tick, const char *dim,
                  const char *value, char out[33])
{
    char s[16], t[24];
    snprintf(s, sizeof s, "%d", stage);
    snprintf(t, sizeof t, "%lld", (long long)tick);
    const char *parts[] = {type, funnel, s, t, dim, value};
    const size_t lens[] = {strlen(type), strlen(funnel),        strlen(s),
                           strlen(t),    dim ? strlen(dim) : 0, value ? strlen(value) : 0};
    fn_hash_hex(fn_hash_parts(parts, lens, dim ? 6 : 4), out);
}

static void put_time(json_t *o, const char *key, int64_t ms)
{
    char t[40];
    fn_time_format(ms, t, sizeof t);
    json_object_set_new(o, key, json_string(t));
}

/* Logs an analytics output given up, at most once a minute with the count since the last
 * line (one per tick and funnel would flood the log). */
static void log_refused(fn_eval_ctx_t *v, const char *topic, const char *funnel, const char *why)
{
    int64_t now = fn_now_ms();
    v->refused_unlogged++;
    if (now - v->refused_logged_ms < 60000)
        return;
    fn_log(v->host.log, FN_LOG_ERROR, "analytics",
           "funnel %s: not produced to %s: %s (%llu such output(s) since the last line; "
           "funneld_produce_failures_total counts them)",
           funnel, topic, why, (unsigned long long)v->refused_unlogged);
    v->refused_logged_ms = now;
    v->refused_unlogged = 0;
}

/* Logs a tick given up, at most once a minute per funnel with the count since the last line:
 * a catch-up meets the same cause at every tick. */
static void log_skipped(fn_eval_ctx_t *v, fn_eval_t *e, const char *why)
{
    int64_t now = fn_now_ms();
    e->skipped_unlogged++;
    if (now - e->skip_logged_ms < 60000)
        return;
    fn_log(v->host.log, FN_LOG_WARN, "analytics",
           "funnel %s: evaluation at %lld skipped: %s (%llu tick(s) skipped since the last line)",
           e->f->name, (long long)e->tick, why, (unsigned long long)e->skipped_unlogged);
    e->skip_logged_ms = now;
    e->skipped_unlogged = 0;
}

static bool produce(fn_eval_ctx_t *v, const char *topic, const char *funnel, json_t *o,
                    bn_out_t *owner)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) {
        free(owner);
        return false;
    }
    /* The producer refuses a message above message.max.bytes (with some framing on top):
     * say so with the sizes, and count it, rather than only the producer's error. */
    size_t len = strlen(text), max = fn_output_max_bytes(v->out);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
    if (len + strlen(funnel) < max)
        e = fn_output_send(v->out, topic, funnel, strlen(funnel), text, len, &owner->out);
    free(text);
    if (e) {
        char why[200];
        if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
            snprintf(why, sizeof why,
                     "%zu bytes, above the producer's message.max.bytes of %zu (raise it in "
                     "kafka.properties, or lower max_breakdown)",
                     len, max);
        else
            snprintf(why, sizeof why, "%s", rd_kafka_err2str(e));
        fn_output_failed(v->out, topic);
        log_refused(v, topic, funnel, why);
        free(owner);
        return false;
    }
    v->in_flight++;
    return true;
}

static void on_out_done(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                        rd_kafka_resp_err_t err);

static bn_out_t *owner_new(fn_eval_ctx_t *v, fn_eval_t *e, int stage, const char *field, bool raise,
                           int64_t tick)
{
    bn_out_t *o = calloc(1, sizeof *o);
    if (o) {
        /* Too large is final: the next evaluation builds it again (on_out_done). */
        o->out = (fn_out_req_t){.done = on_out_done, .data = v, .refusable = true};
        o->e = e;
        o->stage = stage;
        snprintf(o->field, sizeof o->field, "%s", field ? field : "");
        o->raise = raise;
        o->tick = tick;
    }
    return o;
}

static void on_state_reply(void *priv, const redisReply *reply)
{
    (void)reply;
    fn_eval_ctx_t *v = priv;
    v->requests--;
}

/* Records a decision at tick for a stage's state field as not yet acknowledged: 'p' raised,
 * 'c' cleared. */
static void record(fn_eval_ctx_t *v, fn_eval_t *e, const char *field, int64_t tick, char what)
{
    char key[128];
    if (!fn_store_connected(v->store))
        return; /* not recorded: the next evaluation decides again */
    state_key(running(v), e->f->name, key, sizeof key);
    char value[32];
    snprintf(value, sizeof value, "%lld|%c", (long long)tick, what);
    if (fn_store_callf(v->store, key, on_state_reply, v, "HSET %s %s %s", key, field, value) ==
        FN_OK)
        v->requests++;
}

/* Kafka acknowledged the decision at tick: 'p' becomes 'a', 'c' goes; only if the stage's
 * stored decision is still that one (announced.lua), since a newer one may have replaced it
 * while the event was in flight. */
static void record_announced(fn_eval_ctx_t *v, fn_eval_t *e, const char *field, int64_t tick,
                             bool raise)
{
    char key[128], was[32], now[32];
    state_key(running(v), e->f->name, key, sizeof key);
    snprintf(was, sizeof was, "%lld|%c", (long long)tick, raise ? 'p' : 'c');
    snprintf(now, sizeof now, "%lld|a", (long long)tick);
    if (fn_store_callf(v->store, key, on_state_reply, v, "EVAL %s 1 %s %s %s %s",
                       fn_lua_announced_src, key, field, was, raise ? now : "") == FN_OK)
        v->requests++;
}

/* Announces a change of stage k's figures s decided at `tick` (this evaluation's, or an
 * earlier one found not announced): recorded as pending in state field `field`, produced,
 * marked announced on acknowledgement. dim and value name a breakdown value's, else NULL. */
static void emit_bottleneck(fn_eval_ctx_t *v, fn_eval_t *e, int k, const fn_stage_stats_t *s,
                            const char *field, const char *dim, const char *value, bool raise,
                            int64_t tick)
{
    const fn_funnel_t *f = e->f;
    const char *type = raise ? "bottleneck" : "bottleneck_cleared";
    char id[33];
    id_of(type, f->name, k, tick, dim, value, id);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "funnel", json_string(f->name));
    json_object_set_new(o, "stage", json_string(f->stages[k].name));
    json_object_set_new(o, "next_stage", json_string(f->stages[k + 1].name));
    json_object_set_new(o, "window_ms", json_integer(f->bottleneck.window_ms));
    json_object_set_new(o, "entered", json_integer(s->win_entered));
    json_object_set_new(o, "advanced", json_integer(s->win_advanced));
    json_object_set_new(o, "rate", json_real(s->rate));
    json_object_set_new(o, "baseline_rate", json_real(s->baseline_rate));
    json_object_set_new(o, "baseline_entered", json_integer(s->base_entered));
    json_object_set_new(o, "stalled", json_integer(e->st.stage[k].stalled));
    if (dim)
        json_object_set_new(o, "breakdown",
                            json_pack("{s:s,s:s}", "dimension", dim, "value", value));
    put_time(o, "at", tick);
    put_time(o, "emitted_at", fn_now_ms());
    bn_out_t *own = owner_new(v, e, k, field, raise, tick);
    if (!own) {
        json_decref(o);
        return;
    }
    record(v, e, field, tick, raise ? 'p' : 'c');
    if (produce(v, running(v)->topic_bottlenecks, f->name, o, own))
        e->announcing++;
}

/* Records that the funnel's bottlenecks were judged up to tick (BN_JUDGED). */
static void record_judged(fn_eval_ctx_t *v, fn_eval_t *e, int64_t tick)
{
    char key[128], value[24];
    if (!fn_store_connected(v->store))
        return;
    state_key(running(v), e->f->name, key, sizeof key);
    snprintf(value, sizeof value, "%lld", (long long)tick);
    if (fn_store_callf(v->store, key, on_state_reply, v, "HSET %s %s %s", key, BN_JUDGED, value) ==
        FN_OK)
        v->requests++;
}

/* The decision stored in state field `field` of stage k (figures s; dim and value name a
 * breakdown value's, else NULL) and, when judging, the announcement of one decided but never
 * acknowledged, then the judgment of s and the announcement of a change. Returns whether the
 * stage is raised now. */
static bool judge_stage(fn_eval_ctx_t *v, fn_eval_t *e, int k, const fn_stage_stats_t *s,
                        const char *field, const char *dim, const char *value, bool judge)
{
    const char *val = json_string_value(json_object_get(e->bn_state, field));
    long long at = 0;
    char what = 0;
    if (val && sscanf(val, "%lld|%c", &at, &what) != 2)
        what = 0;
    bool raised = what == 'p' || what == 'a';
    if (!judge)
        return raised;              /* the marks as they stand */
    if (what == 'p' || what == 'c') /* decided, never acknowledged: announce again */
        emit_bottleneck(v, e, k, s, field, dim, value, what == 'p', at);
    bool change = false;
    bool now = e->f->bottleneck.enabled ? fn_judge(&e->f->bottleneck, s, raised, &change) : raised;
    if (change)
        emit_bottleneck(v, e, k, s, field, dim, value, now, e->tick);
    return now;
}

/* Judges every stage of every breakdown value (SPEC §11) as the funnel's own stages are:
 * the same window, baseline and hysteresis, each value's state in its own field. */
static void judge_breakdowns(fn_eval_ctx_t *v, fn_eval_t *e)
{
    const fn_funnel_t *f = e->f;
    if (!f->bottleneck.enabled)
        return;
    const char *dim, *value;
    json_t *values, *a;
    json_object_foreach (e->st.bd, dim, values) {
        json_object_foreach (values, value, a) {
            if (strcmp(value, FN_ANALYTICS_OTHER) == 0)
                continue; /* a sum of values, no segment of its own */
            for (size_t k = 0; k + 1 < f->n_stages; k++) {
                fn_stage_stats_t s;
                fn_analytics_breakdown_stage(a, k, &s);
                char field[BN_FIELD_MAX];
                if (snprintf(field, sizeof field, "%zu|%s|%s", k, dim, value) >= (int)sizeof field)
                    continue;
                (void)judge_stage(v, e, (int)k, &s, field, dim, value, true);
            }
        }
    }
}

static void complete(fn_eval_ctx_t *v, fn_eval_t *e)
{
    const fn_funnel_t *f = e->f;
    fn_analytics_finish(&e->st, f);
    /* Decisions only move forward: a tick at or before the last one judged (by this daemon
     * before a reload or a restart, or by another daemon) is not judged again, and the
     * catch-up goes on from there. */
    const char *j = json_string_value(json_object_get(e->bn_state, BN_JUDGED));
    int64_t judged = j ? strtoll(j, NULL, 10) : 0;
    bool judge = e->mode != FN_EVAL_SNAPSHOT && e->tick > judged;
    if (e->mode != FN_EVAL_SNAPSHOT && judged > e->judged_at)
        e->judged_at = judged;
    if (judge)
        record_judged(v, e, e->tick);
    for (size_t k = 0; k + 1 < f->n_stages; k++) {
        char field[16];
        snprintf(field, sizeof field, "%zu", k);
        e->st.stage[k].bottleneck =
            judge_stage(v, e, (int)k, &e->st.stage[k], field, NULL, NULL, judge);
    }
    if (judge)
        judge_breakdowns(v, e);
    /* A past tick has no snapshot; nor has a tick that got one while past ones waited. */
    if (e->mode == FN_EVAL_PAST || (e->mode == FN_EVAL_FULL && e->snap_tick >= e->tick))
        return;
    json_t *o = json_object();
    char id[33];
    id_of("funnel_snapshot", f->name, -1, e->tick, NULL, NULL, id);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "type", json_string("funnel_snapshot"));
    json_object_set_new(o, "funnel", json_string(f->name));
    put_time(o, "at", e->tick);
    put_time(o, "emitted_at", fn_now_ms());
    json_t *body = fn_analytics_json(f, &e->st);
    json_object_update(o, body);
    json_decref(body);
    bn_out_t *own = owner_new(v, e, -1, NULL, false, e->tick);
    if (own) {
        produce(v, running(v)->topic_snapshots, f->name, o, own);
    } else {
        json_decref(o);
    }
}

static void finish_eval(fn_eval_ctx_t *v, fn_eval_t *e)
{
    if (!e->failed)
        complete(v, e);
    else if (e->again)
        fn_log(v->host.log, FN_LOG_INFO, "analytics",
               "funnel %s: evaluation at %lld interrupted; it runs again once Redis is back",
               e->f->name, (long long)e->tick);
    else
        log_skipped(v, e, "a read failed");
    fn_analytics_free(&e->st);
    json_decref(e->bn_state);
    e->bn_state = NULL;
    if (!e->failed || !e->again)
        done_tick(e);
    e->busy = false;
    next_eval(v, e);
}

/* A read failed: the evaluation is abandoned. When a reconnect cures the cause (the
 * connection went, or the script cache was flushed) it is tried again after one, so the
 * retries are paced by the reconnect's backoff; other errors skip the tick. */
static void read_failed(fn_eval_ctx_t *v, fn_eval_t *e, const redisReply *reply)
{
    bool noscript = reply && strncmp(reply->str, "NOSCRIPT", 8) == 0;
    bool cured = !reply || !fn_store_ready(v->store) || noscript;
    e->again = e->failed ? e->again && cured : cured;
    e->failed = true;
    /* A reconnect loads the scripts again; waiting for a step or the lease sweep to meet
     * NOSCRIPT would skip the ticks in between. */
    if (noscript)
        fn_store_reconnect(v->store, "NOSCRIPT from read.lua");
}

static void on_part(void *priv, const redisReply *reply)
{
    eval_reply_t *q = priv;
    fn_eval_ctx_t *v = q->v;
    fn_eval_t *e = q->e;
    bool state = q->state;
    free(q);
    v->requests--;
    char err[160];
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply)
            fn_log(v->host.log, FN_LOG_WARN, "analytics", "read: %s", reply->str);
        read_failed(v, e, reply);
    } else if (!state) {
        if (fn_analytics_add(&e->st, reply, err, sizeof err)) {
            fn_log(v->host.log, FN_LOG_WARN, "analytics", "read: %s", err);
            e->failed = true;
        }
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        /* told apart by the request, not by its shape: two fields have 4 elements too */
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
            json_object_set_new(e->bn_state, reply->element[i]->str,
                                json_string(reply->element[i + 1]->str));
    }
    e->pending--;
    send_reads(v, e);
}

/* Sends a shard's read.lua (args), or the bottleneck state's HGETALL (args NULL, key). */
static bool send_part(fn_eval_ctx_t *v, fn_eval_t *e, const fn_analytics_read_args_t *args,
                      const char *key)
{
    eval_reply_t *q = malloc(sizeof *q);
    if (!q)
        return false;
    q->e = e;
    q->v = v;
    q->state = args == NULL;
    int rc = args ? fn_store_eval(v->store, FN_SCRIPT_READ, args->key, on_part, q,
                                  FN_ANALYTICS_READ_ARGC, args->argv, NULL)
                  : fn_store_callf(v->store, key, on_part, q, "HGETALL %s", key);
    if (rc != FN_OK) {
        free(q);
        return false;
    }
    v->requests++;
    e->pending++;
    return true;
}

static void on_lock(void *priv, const redisReply *reply)
{
    eval_reply_t *q = priv;
    fn_eval_t *e = q->e;
    fn_eval_ctx_t *v = q->v;
    free(q);
    v->requests--;
    /* Not set, and this daemon won it before: an interrupted evaluation tried again. */
    bool same_lock = e->held_tick == e->tick &&
                     (e->held_mode == FN_EVAL_SNAPSHOT) == (e->mode == FN_EVAL_SNAPSHOT);
    bool won = reply &&
               (reply->type == REDIS_REPLY_STATUS || (reply->type == REDIS_REPLY_NIL && same_lock));
    if (won) {
        e->held_tick = e->tick;
        e->held_mode = e->mode;
    }
    if (!won || !fn_store_ready(v->store) || fn_analytics_begin(&e->st, e->f, e->tick)) {
        bool skipped = !won && reply && reply->type == REDIS_REPLY_NIL; /* another daemon's */
        if (reply && reply->type == REDIS_REPLY_ERROR && !fn_store_transient(reply->str)) {
            log_skipped(v, e, reply->str);
            skipped = true;
        }
        e->busy = false;
        if (skipped) {
            done_tick(e);
            next_eval(v, e);
        }
        return;
    }
    e->st.no_sketches = e->mode == FN_EVAL_PAST;
    e->failed = false;
    e->again = false;
    e->pending = 0;
    e->next_read = 0;
    e->bn_state = json_object();
    send_reads(v, e);
}

/* Sends e's next reads (every shard, then the bottleneck state) up to EVAL_READS_AT_ONCE
 * outstanding; finishes the evaluation once nothing is left to send or to receive. After a
 * failure only the outstanding replies are awaited. */
static void send_reads(fn_eval_ctx_t *v, fn_eval_t *e)
{
    int shards = running(v)->redis_shards;
    while (!e->failed && e->pending < EVAL_READS_AT_ONCE && e->next_read <= shards) {
        if (!fn_store_ready(v->store)) {
            read_failed(v, e, NULL); /* the connection went */
            break;
        }
        if (e->next_read < shards) {
            fn_analytics_read_args_t args;
            if (fn_analytics_read_args(running(v), e->f, &e->st, (unsigned)e->next_read, &args) ||
                !send_part(v, e, &args, NULL))
                e->failed = true;
            fn_analytics_read_args_free(&args);
        } else {
            char key[128];
            state_key(running(v), e->f->name, key, sizeof key);
            if (!send_part(v, e, NULL, key))
                e->failed = true;
        }
        e->next_read++;
    }
    if (e->pending == 0)
        finish_eval(v, e);
}

/* Where a daemon that has judged no tick yet starts: under the event clock the earliest
 * clock its partitions began at (resumed from the commit, or their first event), so a
 * back-fill is judged from its beginning; 1 (no catch-up) under the wall clock. */
static int64_t first_judged(const fn_eval_ctx_t *v)
{
    int64_t from = INT64_MAX;
    for (const fn_partition_t *p = fn_input_partitions(v->input); p; p = p->next)
        if (p->assigned && p->clock_from > 0 && p->clock_from < from)
            from = p->clock_from;
    return running(v)->clock == FN_CLOCK_WALL || from == INT64_MAX ? 1 : from;
}

/* The tick and mode of e's next evaluation at clock now, or false when none is due: the
 * next tick to judge (fn_window_next_tick) once the watermark has passed it; else a
 * snapshot of the clock's tick if it has none yet. */
static bool plan_next(const fn_eval_ctx_t *v, const fn_eval_t *e, int64_t now, int64_t *tick,
                      fn_eval_mode_t *mode)
{
    int64_t every = e->f->bottleneck.evaluate_every_ms;
    int64_t latest = now / every * every;
    if (latest <= e->last_tick)
        return false;
    int64_t next = fn_window_next_tick(e->last_tick ? e->last_tick : first_judged(v) - 1, latest,
                                       every, fn_now_ms() - FN_WINDOW_RETENTION_MS);
    if (next <= watermark(v, now)) {
        *tick = next, *mode = next == latest ? FN_EVAL_FULL : FN_EVAL_PAST;
        return true;
    }
    if (latest > e->snap_tick) {
        *tick = latest, *mode = FN_EVAL_SNAPSHOT;
        return true;
    }
    return false;
}

/* An evaluation of e's tick ended (done, skipped, or another daemon's): the cursors move. */
static void done_tick(fn_eval_t *e)
{
    if (e->mode != FN_EVAL_SNAPSHOT)
        e->last_tick = e->tick > e->judged_at ? e->tick : e->judged_at;
    if (e->mode != FN_EVAL_PAST && e->tick > e->snap_tick)
        e->snap_tick = e->tick;
}

/* Starts e's next evaluation, if one is due: takes the tick's lock (SET NX, one lock for
 * judging a tick and another for its snapshot alone); the reads follow in on_lock. Called by
 * the tick and, to catch up without waiting for it, whenever an evaluation of e ends. */
static void next_eval(fn_eval_ctx_t *v, fn_eval_t *e)
{
    /* While Kafka is away or the producer's queue is full, evaluations wait (their ticks are
     * not passed over): their events would only pile up or be refused. */
    if (!fn_store_ready(v->store) || v->stopping || e->busy || e->announcing ||
        !fn_input_kafka_up(v->input) || !fn_output_room(v->out))
        return;
    int64_t now = eval_clock(v), tick;
    fn_eval_mode_t mode;
    if (now <= 0 || !plan_next(v, e, now, &tick, &mode))
        return;
    int64_t every = e->f->bottleneck.evaluate_every_ms;
    char key[180], ttl[24];
    fn_key_eval(key, sizeof key, running(v)->key_prefix, e->f->name, tick,
                mode == FN_EVAL_SNAPSHOT);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(every * 10 > 60000 ? every * 10 : 60000));
    eval_reply_t *q = malloc(sizeof *q);
    if (!q)
        return;
    q->e = e;
    q->v = v;
    q->state = false;
    if (fn_store_callf(v->store, key, on_lock, q, "SET %s %s NX PX %s", key,
                       fn_store_instance(v->store), ttl) != FN_OK) {
        free(q);
        return;
    }
    v->requests++;
    e->busy = true;
    e->tick = tick;
    e->mode = mode;
}

void fn_eval_tick(fn_eval_ctx_t *v)
{
    if (!v->evals)
        return;
    for (size_t i = 0; i < v->n_evals; i++)
        next_eval(v, &v->evals[i]);
}

/* Kafka acknowledged analytics event o: records a bottleneck state change and frees it. */
static void delivered(fn_eval_ctx_t *v, bn_out_t *o)
{
    v->in_flight--;
    fn_eval_t *e = o->e;
    if (o->stage >= 0) {
        e->announcing--;
        if (fn_store_ready(v->store))
            record_announced(v, e, o->field, o->tick, o->raise);
    }
    free(o);
    if (e->announcing == 0)
        next_eval(v, e); /* a catch-up waits for the acknowledgements of the tick before */
}

/* Kafka refused analytics event o for good (too large for the broker): counted, logged and
 * freed; a bottleneck change stays unannounced and is announced again by a later evaluation. */
static void refused(fn_eval_ctx_t *v, bn_out_t *o, const char *topic, const char *why)
{
    fn_eval_t *e = o->e;
    v->in_flight--;
    if (o->stage >= 0)
        e->announcing--;
    log_refused(v, topic, e->f->name, why);
    free(o);
    if (e->announcing == 0)
        next_eval(v, e);
}

static void on_out_done(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                        rd_kafka_resp_err_t err)
{
    bn_out_t *o = (bn_out_t *)req;
    if (status == FN_OUT_DELIVERED)
        delivered(req->data, o);
    else if (status == FN_OUT_REFUSED)
        refused(req->data, o, topic, rd_kafka_err2str(err));
    else
        free(o); /* purged at exit: the bottleneck stays unannounced in Redis */
}

fn_eval_ctx_t *fn_eval_new(const fn_host_t *host, fn_store_t *store, fn_output_t *out,
                           fn_input_t *input)
{
    fn_eval_ctx_t *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->host = *host;
    v->store = store;
    v->out = out;
    v->input = input;
    return v;
}

int fn_eval_start(fn_eval_ctx_t *v)
{
    assert(!v->evals);
    v->evals = calloc(running(v)->n_funnels, sizeof *v->evals);
    if (!v->evals)
        return FN_ERR;
    v->n_evals = running(v)->n_funnels;
    for (size_t i = 0; i < v->n_evals; i++)
        v->evals[i].f = &running(v)->funnels[i];
    return FN_OK;
}

void fn_eval_stop(fn_eval_ctx_t *v)
{
    v->stopping = true;
}

bool fn_eval_idle(const fn_eval_ctx_t *v)
{
    return v->requests == 0 && v->in_flight == 0;
}

bool fn_eval_settled(const fn_eval_ctx_t *v)
{
    if (!fn_eval_idle(v))
        return false;
    for (size_t i = 0; i < v->n_evals; i++)
        if (v->evals[i].busy || v->evals[i].announcing)
            return false;
    return true;
}

void fn_eval_close(fn_eval_ctx_t *v)
{
    for (size_t i = 0; i < v->n_evals; i++) {
        if (v->evals[i].busy && v->evals[i].bn_state) {
            fn_analytics_free(&v->evals[i].st);
            json_decref(v->evals[i].bn_state);
        }
    }
    free(v->evals);
    v->evals = NULL;
    v->n_evals = 0;
}

void fn_eval_free(fn_eval_ctx_t *v)
{
    if (!v)
        return;
    fn_eval_close(v);
    free(v);
}
