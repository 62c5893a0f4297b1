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

#include <uv.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/http.h"
#include "funneld/input.h"
#include "funneld/live.h"
#include "funneld/log.h"
#include "funneld/msg.h"
#include "funneld/output.h"
#include "funneld/reload.h"
#include "funneld/stats.h"
#include "funneld/status.h"

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

    fn_http_t *http;                                  /* owned */
    fn_live_t *live;                                  /* owned */
    fn_redis_node_t redis_nodes[FN_STATUS_MAX_NODES]; /* the status view's, per request */

    uv_timer_t tick; /* drains queues as a safety net and retries refused produce calls */
    uv_signal_t sig_term, sig_int, sig_hup;
    bool stopping;
    int64_t stop_deadline_ms; /* give up draining in-flight work after this */
    int exit_code;
    fn_stats_t stats;
    fn_log_limit_t lim_merge; /* merges retried after a failure (merge_flow.c) */
} fn_daemon_t;

/* --- daemon.c: lifecycle (the message bookkeeping is declared in msg.h) --- */

/* Creates the daemon for cfg (taking ownership) on loop. Returns NULL and logs on error. */
fn_daemon_t *fn_daemon_new(uv_loop_t *loop, fn_config_t *cfg, fn_log_level_t level);
/* Connects everything and runs the loop until a signal stops it. Returns the exit code. */
int fn_daemon_run(fn_daemon_t *d);
void fn_daemon_free(fn_daemon_t *d);
/* Begins a graceful stop: no more consumption, drain in-flight work, commit, exit. */
void fn_daemon_stop(fn_daemon_t *d, int exit_code);

#endif
