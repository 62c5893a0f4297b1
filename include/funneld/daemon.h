/*
 * daemon.h — the daemon's context and lifecycle.
 *
 * One fn_daemon_t owns all mutable state (no globals): the loop, the config, the log, the
 * counters, and one context per module (input.h, output.h, reload.h, ...). The life of one
 * consumed message is in msg.h.
 */
#ifndef FUNNELD_DAEMON_H
#define FUNNELD_DAEMON_H

#include <uv.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/input.h"
#include "funneld/log.h"
#include "funneld/msg.h"
#include "funneld/output.h"
#include "funneld/reload.h"

/* A latency histogram with the buckets of deploy/prometheus/METRICS.md (seconds). */
#define FN_HIST_BUCKETS 14
typedef struct fn_hist {
    uint64_t bucket[FN_HIST_BUCKETS + 1]; /* the last is +Inf */
    double sum;
    uint64_t count;
} fn_hist_t;

/* Counts one observation of `seconds` in h. */
void fn_hist_observe(fn_hist_t *h, double seconds);
/* The upper bound of bucket i (i < FN_HIST_BUCKETS), in seconds. */
double fn_hist_bound(int i);

/* Counters for /metrics and the logs. Plain integers: the loop is single-threaded. */
typedef struct fn_stats {
    uint64_t consumed, transitions, touches, duplicates, replays, erased, consents;
    uint64_t rejected[FN_REJ_COUNT];
    uint64_t produced, delivered, delivery_retries;
    uint64_t redis_errors, redis_reconnects, redis_replies;
    uint64_t redis_data_lost; /* reconnects that found the store's epoch marker gone/changed */
    uint64_t by_type[6];      /* stage_changed(enter/forward), back, converted, lost, erased */
    uint64_t committed;
    uint64_t blocked_count, paused_count;
    uint64_t triggers_emitted, triggers_delivered, triggers_capped, triggers_opted_out;
    uint64_t timer_errors;
    uint64_t triggers_deferred; /* fired, refused by the full producer queue: left in the outbox */
    uint64_t snapshots, bottlenecks[2]; /* raised, cleared */
    uint64_t msgs_transition, dlq_delivered, reloads_rejected;
    uint64_t produce_failed[FN_OUT_TOPICS]; /* outputs given up, per fn_output_topic */
    fn_hist_t redis_rtt, end_to_end;
    /* per funnel (config order): transitions by type (stage_changed, converted, lost,
     * lead_erased) and triggers by reason (0 stalled, 1 + rule index) */
    uint64_t (*trans_by_funnel)[4];
    uint64_t (*trig_by_funnel)[1 + FN_MAX_RULES];
} fn_stats_t;

typedef struct fn_daemon {
    uv_loop_t *loop;
    fn_config_t *cfg; /* owned; replaced by a reload (reload.c) */
    fn_log_t log;

    fn_input_t *input;   /* owned */
    fn_output_t *output; /* owned */
    fn_reload_t *reload; /* owned */

    /* state: the Redis connection(s) and the per-lead queue (store.h) */
    struct fn_store *store;
    uint64_t msg_seq; /* numbers the messages of this process (fn_msg_t.seq) */

    struct fn_timers *timers; /* owned: retargeting timers (timers.h) */

    struct fn_eval_ctx *eval; /* owned: snapshots and bottlenecks (evaluate.h) */

    /* messages */
    size_t in_flight;
    size_t in_flight_bytes; /* input bytes of in-flight messages still holding their event */
    fn_msg_t *free_msgs;

    /* http (http/http.c) */
    uv_tcp_t http;
    bool http_started;
    size_t http_conns;                           /* open connections, at most http.c's MAX_CONNS */
    struct http_conn *http_oldest, *http_newest; /* those not answered yet, by age */
    int64_t config_generation;

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

/* --- http/http.c and http/metrics.c --- */
/* Listens on http.listen: /metrics, /healthz, /readyz. */
int fn_http_start(fn_daemon_t *d);
void fn_http_close(fn_daemon_t *d);
/* True when partitions were assigned (or the group gave us none), Redis and Kafka are up. */
bool fn_http_ready(const fn_daemon_t *d);
/* Writes the Prometheus text of every metric into out. */
int fn_metrics_render(const fn_daemon_t *d, fn_buf_t *out);

#endif
