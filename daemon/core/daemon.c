/*
 * daemon.c — the daemon's lifecycle (start, tick, graceful stop) and the bookkeeping that
 * turns finished messages into committed offsets (msg.h, offsets.h).
 */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "funneld/daemon.h"
#include "funneld/evaluate.h"
#include "funneld/hash.h"
#include "funneld/offsets.h"
#include "funneld/merge_flow.h"
#include "funneld/pipeline.h"
#include "funneld/store.h"
#include "funneld/timers.h"

#define TICK_MS 100
#define DRAIN_DEADLINE_MS 30000

void fn_queue_push(fn_msg_queue_t *q, fn_msg_t *m)
{
    m->q_next = NULL;
    if (q->tail)
        q->tail->q_next = m;
    else
        q->head = m;
    q->tail = m;
    q->len++;
}

fn_msg_t *fn_queue_pop(fn_msg_queue_t *q)
{
    fn_msg_t *m = q->head;
    if (!m)
        return NULL;
    q->head = m->q_next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    m->q_next = NULL;
    return m;
}

fn_msg_t *fn_msg_new(fn_daemon_t *d)
{
    fn_msg_t *m = d->free_msgs;
    if (m) {
        d->free_msgs = m->q_next;
        fn_buf_t keep = m->raw; /* the input buffer is reused, not reallocated */
        memset(m, 0, sizeof *m);
        m->raw = keep;
        fn_buf_reset(&m->raw);
    } else if (!(m = calloc(1, sizeof *m))) {
        return NULL;
    }
    d->in_flight++;
    return m;
}

fn_log_ctx_t fn_msg_log_ctx(const fn_msg_t *m, char hex[33])
{
    fn_log_ctx_t ctx = {m->part ? m->part->topic : NULL, m->part ? m->part->partition : -1,
                        m->part ? (long long)m->offset : -1, NULL};
    if (m->accepted) {
        fn_hash_hex(m->lead_hash, hex);
        ctx.lead_hash = hex;
    }
    return ctx;
}

/* Input buffers larger than this are not kept on the free list: one huge message must not
 * leave a huge buffer behind for good. */
#define RAW_KEEP_MAX 4096

/* At the in-flight bound (messages or bytes): consumption waits. */
static bool full(const fn_daemon_t *d)
{
    return d->in_flight >= d->cfg->max_in_flight || d->in_flight_bytes >= FN_IN_FLIGHT_BYTES_MAX;
}

void fn_msg_uncharge(fn_daemon_t *d, fn_msg_t *m)
{
    d->in_flight_bytes -= m->charged;
    m->charged = 0;
}

static void msg_free(fn_daemon_t *d, fn_msg_t *m)
{
    fn_msg_uncharge(d, m);
    fn_reload_let_go(d->reload, m);
    if (m->raw.cap > RAW_KEEP_MAX)
        fn_buf_free(&m->raw);
    fn_event_clear(&m->ev);
    fn_merge_free(m);
    m->q_next = d->free_msgs;
    d->free_msgs = m;
    d->in_flight--;
}

static void kick(fn_daemon_t *d)
{
    /* Run the tick as soon as the loop is free instead of draining from inside a callback. */
    if (!uv_is_closing((uv_handle_t *)&d->tick))
        uv_timer_start(&d->tick, d->tick.timer_cb, 0, TICK_MS);
}

/* A message off its partition's in-flight list (offsets.h): finished or dropped. */
static void release_finished(fn_msg_t *m, void *data)
{
    fn_daemon_t *d = data;
    fn_hist_observe(&d->stats.end_to_end, (double)(uv_hrtime() - m->consumed_ns) / 1e9);
    msg_free(d, m);
}

static void release_unfinished(fn_msg_t *m, void *data)
{
    msg_free(data, m);
}

void fn_msg_done(fn_daemon_t *d, fn_msg_t *m)
{
    m->state = FN_MSG_DONE;
    fn_partition_t *p = m->part;
    if (!p) {
        msg_free(d, m);
        return;
    }
    fn_offsets_advance(p, release_finished, d);
    if ((fn_input_blocked_since(d->input) && d->in_flight <= d->cfg->max_in_flight * 3 / 4 &&
         d->in_flight_bytes <= FN_IN_FLIGHT_BYTES_MAX / 4 * 3) ||
        (d->stopping && d->in_flight == 0 && fn_timers_idle(d->timers) && fn_eval_idle(d->eval)))
        kick(d);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void drop_unfinished(fn_daemon_t *d)
{
    if (d->in_flight)
        fn_log(&d->log, FN_LOG_WARN, "daemon",
               "%zu message(s) unfinished at shutdown; not committed, they will be consumed "
               "again",
               d->in_flight);
    for (fn_partition_t *p = fn_input_partitions(d->input); p; p = p->next)
        fn_offsets_drop(p, release_unfinished, d);
}

static void finish(fn_daemon_t *d)
{
    uint64_t rejected = 0;
    for (int i = 0; i < FN_REJ_COUNT; i++)
        rejected += d->stats.rejected[i];
    fn_log(&d->log, FN_LOG_INFO, "daemon",
           "stopping: %zu message(s) still in flight; consumed %llu, transitions %llu, "
           "duplicates %llu, dead letters %llu",
           d->in_flight, (unsigned long long)d->stats.consumed,
           (unsigned long long)d->stats.transitions, (unsigned long long)d->stats.duplicates,
           (unsigned long long)rejected);
    /* Order matters: Redis first (nothing more will come back from it), then the producer's
     * flush (deliveries still finish messages and store their offsets), then what is left
     * unfinished is released — it was not committed, so it is consumed again — and only then
     * the consumer, whose destroy waits until every message it handed out is destroyed. */
    fn_live_close(d->live);
    fn_http_close(d->http);
    fn_store_close(d->store);
    fn_output_close(d->output);
    drop_unfinished(d);
    fn_input_close(d->input);
    uv_timer_stop(&d->tick);
    uv_close((uv_handle_t *)&d->tick, on_closed);
    uv_close((uv_handle_t *)&d->sig_term, on_closed);
    uv_close((uv_handle_t *)&d->sig_int, on_closed);
    uv_close((uv_handle_t *)&d->sig_hup, on_closed);
}

static void on_tick(uv_timer_t *t)
{
    fn_daemon_t *d = t->data;
    fn_output_poll(d->output);
    fn_store_watchdog(d->store);
    if (d->stopping) {
        if ((d->in_flight == 0 && fn_timers_idle(d->timers) && fn_eval_idle(d->eval)) ||
            fn_now_ms() >= d->stop_deadline_ms)
            finish(d);
        return;
    }
    fn_reload_apply(d->reload);
    fn_timers_tick(d->timers);
    fn_eval_tick(d->eval);
    fn_input_tick(d->input);
}

void fn_daemon_stop(fn_daemon_t *d, int exit_code)
{
    if (exit_code > d->exit_code)
        d->exit_code = exit_code;
    if (d->stopping)
        return;
    d->stopping = true;
    d->stop_deadline_ms = fn_now_ms() + DRAIN_DEADLINE_MS;
    fn_log(&d->log, exit_code ? FN_LOG_ERROR : FN_LOG_INFO, "daemon",
           "stop requested; finishing %zu in-flight message(s)", d->in_flight);
    fn_input_set_paused(d->input, true);
    fn_eval_stop(d->eval);
    kick(d);
}

static void on_signal(uv_signal_t *s, int signum)
{
    fn_daemon_t *d = s->data;
    if (signum == SIGHUP) {
        if (!d->stopping)
            fn_reload_request(d->reload);
        return;
    }
    fn_daemon_stop(d, 0);
}

/* The store's hooks: a step's reply and failure go to the pipeline, a ready connection to
 * the timers. */
static void on_step_reply(void *priv, fn_msg_t *m, const redisReply *reply)
{
    fn_pipe_on_step_reply(priv, m, reply);
}

static void on_step_failed(void *priv, fn_msg_t *m, const char *reason)
{
    fn_daemon_t *d = priv;
    if (fn_merge_failed(d, m, reason))
        return;
    char hex[33];
    fn_log_ctx_t ctx = fn_msg_log_ctx(m, hex);
    fn_log_ctx(&d->log, FN_LOG_ERROR, "redis", &ctx, "%s; dead-lettered", reason);
    fn_pipe_step_failed(d, m, reason);
}

static void on_store_ready(void *priv)
{
    fn_daemon_t *d = priv;
    fn_timers_on_ready(d->timers);
}

/* The running config, pinned to m until its record is released (a reload keeps it alive). */
static const fn_config_t *step_config(void *data, fn_msg_t *m)
{
    fn_daemon_t *d = data;
    fn_reload_hold(d->reload, m);
    return d->cfg;
}

static int merge_build(void *priv, fn_msg_t *m, const char *sha, const char *token, fn_buf_t *out)
{
    return fn_merge_build_cmd(priv, m, sha, token, out);
}

static bool store_finished(void *data)
{
    const fn_daemon_t *d = data;
    return d->stopping && !d->in_flight;
}

static int start_store(fn_daemon_t *d)
{
    const fn_store_hooks_t hooks = {.priv = d,
                                    .step_reply = on_step_reply,
                                    .step_failed = on_step_failed,
                                    .ready = on_store_ready,
                                    .step_config = step_config,
                                    .merge_build = merge_build,
                                    .finished = store_finished};
    return fn_store_start(d->store, &hooks);
}

static void on_kafka_down(void *data)
{
    fn_daemon_t *d = data;
    fn_input_kafka_down(d->input);
}

static void on_message(void *data, fn_partition_t *p, rd_kafka_message_t *rkm)
{
    fn_pipe_on_message(data, p, rkm);
}

static void on_partition(void *data, fn_partition_t *p, bool assigned)
{
    (void)assigned;
    fn_daemon_t *d = data;
    fn_timers_reset(d->timers, p);
}

/* The reload's hooks: the evaluations keep pointers into the configuration, so a new one
 * waits until they are settled, and they start over on it. */
static bool on_reload_quiet(void *priv)
{
    fn_daemon_t *d = priv;
    return fn_eval_settled(d->eval);
}

static void on_reload_release(void *priv)
{
    fn_daemon_t *d = priv;
    fn_eval_close(d->eval);
}

static int on_reload_adopt(void *priv)
{
    fn_daemon_t *d = priv;
    return fn_eval_start(d->eval);
}

/* The status view of /metrics and /readyz (status.h). */
static void fill_status(void *data, fn_status_t *st)
{
    fn_daemon_t *d = data;
    st->cfg = d->cfg;
    st->stats = &d->stats;
    st->partitions = fn_input_partitions(d->input);
    for (int i = 0; i < FN_OUT_TOPICS; i++)
        st->out_topics[i] = fn_output_topic(d->cfg, i);
    st->joined = fn_input_joined(d->input);
    st->redis_up = fn_store_up(d->store);
    st->redis_detail = fn_store_detail(d->store);
    st->redis_limbo = fn_store_limbo(d->store);
    size_t n = fn_store_nodes(d->store, d->redis_nodes, FN_STATUS_MAX_NODES);
    st->redis_nodes = d->redis_nodes;
    st->n_redis_nodes = n < FN_STATUS_MAX_NODES ? n : FN_STATUS_MAX_NODES;
    st->live_streams = fn_http_streams(d->http);
    st->kafka_up = fn_input_kafka_up(d->input);
    st->stopping = d->stopping;
    st->in_flight = d->in_flight;
    st->outputs_waiting = fn_output_waiting(d->output);
    st->triggers_in_flight = fn_timers_in_flight(d->timers);
    st->configs_retired = fn_reload_retired(d->reload);
    st->config_generation = fn_reload_generation(d->reload);
}

static bool input_full(void *data, size_t *msgs, size_t *bytes)
{
    const fn_daemon_t *d = data;
    *msgs = d->in_flight;
    *bytes = d->in_flight_bytes;
    return full(d);
}

static bool input_stopping(void *data)
{
    const fn_daemon_t *d = data;
    return d->stopping;
}

static int start_input(fn_daemon_t *d)
{
    const fn_input_cbs_t cb = {on_message, on_partition, input_full, input_stopping, d};
    return fn_input_start(d->input, &cb);
}

static void host_stop(void *data, int exit_code)
{
    fn_daemon_stop(data, exit_code);
}

static int64_t host_generation(void *data)
{
    const fn_daemon_t *d = data;
    return fn_reload_generation(d->reload);
}

fn_daemon_t *fn_daemon_new(uv_loop_t *loop, fn_config_t *cfg, fn_log_level_t level)
{
    fn_daemon_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->log.level = level;
    d->log.out = stderr;
    const fn_host_t host = {loop, &d->cfg, &d->log, &d->stats, host_stop, d, host_generation};
    if (!(d->input = fn_input_new(&host)) ||
        !(d->output = fn_output_new(&host, on_kafka_down, d)) ||
        !(d->reload = fn_reload_new(&host, &d->cfg)) || !(d->store = fn_store_new(&host)) ||
        !(d->timers = fn_timers_new(&host, d->store, d->output, d->input)) ||
        !(d->eval = fn_eval_new(&host, d->store, d->output, d->input)) ||
        !(d->http = fn_http_new(loop, &d->log, fill_status, d)) ||
        !(d->live = fn_live_new(&host, d->store, d->input, d->http))) {
        fn_input_free(d->input);
        fn_output_free(d->output);
        fn_reload_free(d->reload);
        fn_store_free(d->store);
        fn_timers_free(d->timers);
        fn_eval_free(d->eval);
        fn_http_free(d->http);
        free(d);
        return NULL;
    }
    d->cfg = cfg;
    const fn_reload_hooks_t rh = {d, on_reload_quiet, on_reload_release, on_reload_adopt};
    fn_reload_set_hooks(d->reload, &rh);
    uv_timer_init(loop, &d->tick);
    d->tick.data = d;
    uv_signal_init(loop, &d->sig_term);
    uv_signal_init(loop, &d->sig_int);
    uv_signal_init(loop, &d->sig_hup);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    return d;
}

int fn_daemon_run(fn_daemon_t *d)
{
    signal(SIGPIPE, SIG_IGN);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS);
    d->stats.trans_by_funnel = calloc(d->cfg->n_funnels, sizeof *d->stats.trans_by_funnel);
    d->stats.trig_by_funnel = calloc(d->cfg->n_funnels, sizeof *d->stats.trig_by_funnel);
    if (!d->stats.trans_by_funnel || !d->stats.trig_by_funnel || fn_eval_start(d->eval) ||
        fn_timers_start(d->timers) || fn_live_start(d->live) ||
        fn_http_start(d->http, d->cfg->http_listen, d->cfg->http_auth_token) ||
        fn_output_start(d->output) || start_store(d) || start_input(d)) {
        fn_daemon_stop(d, 1);
        d->stop_deadline_ms = 0; /* nothing was consumed: stop at once */
    } else {
        fn_log(&d->log, FN_LOG_INFO, "daemon", "funneld %s running with %zu funnel(s)", FN_VERSION,
               d->cfg->n_funnels);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    return d->exit_code;
}

void fn_daemon_free(fn_daemon_t *d)
{
    if (!d)
        return;
    while (d->free_msgs) {
        fn_msg_t *m = d->free_msgs;
        d->free_msgs = m->q_next;
        fn_buf_free(&m->raw);
        free(m);
    }
    fn_input_free(d->input);
    fn_output_free(d->output);
    fn_store_free(d->store);
    fn_timers_free(d->timers); /* after the store and the producer: their last callbacks */
    fn_eval_free(d->eval);
    fn_reload_free(d->reload);
    fn_live_free(d->live);
    fn_http_free(d->http);
    free(d->stats.trans_by_funnel);
    free(d->stats.trig_by_funnel);
    fn_config_free(d->cfg);
    free(d);
}
