/*
 * daemon.h — the daemon's context and lifecycle.
 *
 * One fn_daemon_t owns all mutable state (no globals): the loop, the config, the log, the
 * counters (stats.h), and one context per module (input.h, output.h, http.h, reload.h, ...).
 * Modules do not include this: the daemon lends them a host (host.h) and registers the
 * callbacks they call up through; http reads a status view (status.h) the daemon fills. The
 * life of one consumed message is in msg.h.
 */
#ifndef FUNNELD_DAEMON_H
#define FUNNELD_DAEMON_H

#include <hiredis/async.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "funneld/analytics.h"
#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/hash.h"
#include "funneld/http.h"
#include "funneld/input.h"
#include "funneld/log.h"
#include "funneld/msg.h"
#include "funneld/output.h"
/* Until the store reports a step's reply through a callback, store.c reaches the pipeline
 * through daemon.h. */
#include "funneld/pipeline.h"
#include "funneld/reload.h"
#include "funneld/stats.h"

/* What one evaluation of a tick does (analytics/evaluate.c). */
typedef enum {
    FN_EVAL_FULL = 0, /* the clock's tick: bottlenecks judged and a snapshot */
    FN_EVAL_PAST,     /* a tick the clock passed: bottlenecks judged over its window only */
    FN_EVAL_SNAPSHOT, /* the clock's tick while past ones wait: a snapshot only */
} fn_eval_mode_t;

/* One funnel's periodic evaluation (analytics/evaluate.c). */
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

typedef struct fn_daemon {
    uv_loop_t *loop;
    fn_config_t *cfg; /* owned; replaced by a reload (reload.c) */
    fn_log_t log;

    fn_input_t *input;   /* owned */
    fn_output_t *output; /* owned */
    fn_reload_t *reload; /* owned */

    /* state */
    redisAsyncContext *redis;
    bool redis_ready; /* connected, authenticated, script loaded */
    char script_sha[41];
    char instance[33]; /* random per process: with a message number, names pending results */
    uint64_t msg_seq;
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
    fn_msg_t **lead_table; /* chain heads by lead hash */
    size_t lead_table_mask;
    char fire_sha[41];
    /* The store's epoch marker as first seen (store.c): a reconnect that finds it gone or
     * different means Redis lost or swapped funneld's data. */
    char redis_epoch[48];
    char redis_epoch_try[48]; /* the value this connection offered with SET NX */
    uint64_t redis_connects;

    /* retargeting timers (timers/timers.c) */
    size_t timer_requests;      /* fire.lua calls and outbox clears without a reply yet */
    size_t triggers_in_flight;  /* produced, not yet acknowledged */
    size_t trigger_claims;      /* outbox entries outstanding fire.lua calls may hand out */
    struct trig_out *held;      /* produced, not yet acknowledged: their leases are renewed */
    struct trig_out *uncleared; /* delivered while Redis was away: outbox entries to clear */
    int64_t next_sweep_ms;      /* next look for outbox entries whose lease ran out */
    int64_t next_renew_ms;      /* next renewal of the leases of held triggers */

    /* analytics (analytics/evaluate.c) */
    fn_eval_t *evals; /* one per funnel */
    char read_sha[41];
    size_t analytics_requests, analytics_in_flight;
    int64_t refused_logged_ms; /* analytics outputs refused: last logged, and since then */
    uint64_t refused_unlogged;

    /* messages */
    size_t in_flight;
    size_t in_flight_bytes; /* input bytes of in-flight messages still holding their event */
    fn_msg_t *free_msgs;

    fn_http_t *http;           /* owned */
    int64_t config_generation; /* 1 at start, +1 per accepted reload (reload.c) */

    uv_timer_t tick; /* drains queues as a safety net and retries refused produce calls */
    uv_signal_t sig_term, sig_int, sig_hup;
    bool stopping;
    int64_t stop_deadline_ms; /* give up draining in-flight work after this */
    int exit_code;
    fn_stats_t stats;
} fn_daemon_t;

/* --- daemon.c: lifecycle (the message bookkeeping is declared in msg.h) --- */

/* Creates the daemon for cfg (taking ownership) on loop. Returns NULL and logs on error. */
fn_daemon_t *fn_daemon_new(uv_loop_t *loop, fn_config_t *cfg, fn_log_level_t level);
/* Connects everything and runs the loop until a signal stops it. Returns the exit code. */
int fn_daemon_run(fn_daemon_t *d);
void fn_daemon_free(fn_daemon_t *d);
/* Begins a graceful stop: no more consumption, drain in-flight work, commit, exit. */
void fn_daemon_stop(fn_daemon_t *d, int exit_code);

/* --- state/store.c: Redis connection and the per-lead queue --- */
int fn_store_start(fn_daemon_t *d);
/* Queues m's step behind earlier events of the same lead, or sends it. */
void fn_store_submit(fn_daemon_t *d, fn_msg_t *m);
/* m's step is finished: lets the lead's next event go. */
void fn_store_release(fn_daemon_t *d, fn_msg_t *m);
/* Clears m's stored result now that its outputs are delivered (fire and forget). */
void fn_store_clear_pending(fn_daemon_t *d, fn_msg_t *m);
void fn_store_close(fn_daemon_t *d);
/* Called by the tick: drops a connection whose outstanding steps got no reply for long. */
void fn_store_watchdog(fn_daemon_t *d);
/* True for a Redis error that passes (NOSCRIPT, LOADING, OOM, a failover, auth being fixed). */
bool fn_store_transient(const char *err);

/* --- timers/timers.c: retargeting timers and triggers --- */
/* Called by the tick: fires what is due by each assigned partition's clock. */
void fn_timers_tick(fn_daemon_t *d);
/* Produces the trigger of outbox entry e (a string reply) of shard. */
void fn_timers_emit(fn_daemon_t *d, unsigned shard, const redisReply *e);
/* A step armed a timer due at `due` in p's zset of shard. */
void fn_timers_armed(fn_daemon_t *d, fn_partition_t *p, unsigned shard, int64_t due);
/* p was assigned or revoked: its clock and what is known of its timers start over. */
void fn_timers_reset(fn_daemon_t *d, fn_partition_t *p);
/* Redis is ready again: renews the leases of the triggers this process holds, clears the
 * outbox entries of triggers delivered while it was away, and forgets every known due time
 * (a step whose reply was lost may have armed a timer the daemon never heard of). */
void fn_timers_on_ready(fn_daemon_t *d);
/* Frees what is left at exit (those entries are delivered again after their leases). */
void fn_timers_close(fn_daemon_t *d);
/* True when no timer request or trigger delivery is outstanding. */
bool fn_timers_idle(const fn_daemon_t *d);
void fn_timers_free_partition(fn_partition_t *p);

/* --- analytics/evaluate.c: snapshots and bottlenecks --- */
int fn_eval_start(fn_daemon_t *d);
/* Called by the tick: starts the evaluations whose tick came. */
void fn_eval_tick(fn_daemon_t *d);
/* "Now" for evaluations: wall time, or the latest finished event time (event clock). */
int64_t fn_eval_clock(const fn_daemon_t *d);
/* Whether stage stats s make a bottleneck given it was raised before; *change tells whether
 * that differs (hysteresis: see evaluate.c). */
bool fn_eval_judge(const fn_bottleneck_cfg_t *b, const fn_stage_stats_t *s, bool raised,
                   bool *change);
bool fn_eval_idle(const fn_daemon_t *d);
void fn_eval_free(fn_daemon_t *d);

#endif
