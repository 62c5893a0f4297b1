/*
 * daemon.h — the daemon's context and the life of one consumed message.
 *
 * One fn_daemon_t owns all mutable state (no globals). Each Kafka message becomes an
 * fn_msg_t that lives until its offset may be committed:
 *
 *   consumed → decoded ─┬─ rejected → DLQ produce ───────────────┐
 *                       └─ lead queue → Redis step → outputs produce ─┴→ delivered → done
 *
 * A message is "done" only when its Redis step succeeded and every message it produced was
 * acknowledged by Kafka; a partition's offset advances over its done prefix only, which is
 * what makes the pipeline at-least-once (SPEC §6). Messages of one lead go through Redis one
 * at a time, in input order, so retries and reconnects can never reorder a lead's events.
 */
#ifndef FUNNELD_DAEMON_H
#define FUNNELD_DAEMON_H

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "funneld/analytics.h"
#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/hash.h"
#include "funneld/kafka_bridge.h"
#include "funneld/lead_queue.h"
#include "funneld/log.h"

typedef enum {
    FN_MSG_LEAD_WAIT = 1, /* behind an earlier event of the same lead */
    FN_MSG_REDIS_WAIT,    /* ready, Redis not connected or retry pending */
    FN_MSG_REDIS_SENT,    /* step sent, reply outstanding */
    FN_MSG_PRODUCING,     /* outputs (or the DLQ copy) awaiting delivery reports */
    FN_MSG_DONE,          /* may be committed once every earlier offset is done too */
} fn_msg_state_t;

typedef struct fn_partition {
    char *topic;
    int32_t partition;
    struct fn_msg *head, *tail; /* in-flight messages in offset order */
    int64_t next_commit;        /* offset after the last done prefix; -1 before any */
    int64_t committed;          /* the group's committed offset as last known; -1 unknown */
    bool assigned;
    /* Bumped at each assignment and revocation: which one a message was consumed in. */
    uint32_t generation;
    bool at_eof;        /* reached the end of the partition since its last message */
    int64_t maxts_done; /* latest event time in the done prefix: the event clock (trigger.h) */
    int64_t maxts_seen; /* latest event time consumed, in offset order (fn_msg_t.clock_ms) */
    int64_t clock_from; /* the event clock this process began at: maxts_done as resumed from
                         * the commit, else its first finished event time; 0 before */
    int64_t *next_due;  /* per shard: earliest timer in its zset, FN_DUE_UNKNOWN or _NONE */
    uint64_t consumed;  /* messages taken from it (for /metrics) */
    int64_t lag;        /* from librdkafka's statistics; -1 unknown */
    uint8_t *firing;    /* per shard: a fire.lua call is outstanding */
    struct fn_partition *next;
} fn_partition_t;

#define FN_DUE_UNKNOWN INT64_MIN
#define FN_DUE_NONE INT64_MAX

/* What a produced message's opaque points at: the first member of both kinds of owner. */
typedef enum { FN_OWNER_MSG = 0, FN_OWNER_TRIGGER = 1, FN_OWNER_ANALYTICS = 2 } fn_owner_t;

typedef struct fn_msg {
    fn_owner_t owner; /* FN_OWNER_MSG */
    fn_partition_t *part;
    int64_t offset;
    uint32_t generation;      /* its partition's generation when it was consumed */
    struct fn_msg *part_next; /* next offset of the same partition */
    fn_lead_node_t lead;      /* its place in the per-lead queue (state/store.c) */
    struct fn_msg *q_next;    /* Redis wait/sent queues, the free list */
    /* The input's key and payload, copied so that the Kafka message is destroyed as soon as
     * it is consumed (a live rd_kafka_message_t keeps its whole fetch response allocated);
     * only a dead letter needs them. The buffer is kept across reuses of the record. */
    fn_buf_t raw;
    size_t key_len; /* raw.data[0..key_len) is the key, the rest the payload */
    bool has_key;   /* a null key stays null in the dead letter */
    bool has_value; /* so does a null value (a tombstone) */
    size_t charged; /* input bytes counted in the daemon's in_flight_bytes */
    fn_event_t ev;
    fn_hash128_t lead_hash;
    const fn_config_t *cfg; /* the configuration its step was built with (see reload.c) */
    fn_msg_state_t state;
    int pending_dr;     /* produced messages not yet acknowledged */
    bool clear_pending; /* a stored result in Redis to clear once outputs are acked */
    bool accepted;      /* decoded: ev is valid and its time counts for the event clock */
    uint64_t consumed_ns, sent_ns; /* uv_hrtime at consume and at the last step send */
    int64_t consumed_ms;
    /* The partition's event time at this message: the latest accepted event time up to its
     * offset. Its step fires the lead's timers due by then, the same ones the tick fires
     * once this message's predecessors are done, whichever comes first. */
    int64_t clock_ms;
    uint64_t seq; /* this process's number for the message, part of its step token */
} fn_msg_t;

typedef struct fn_msg_queue {
    fn_msg_t *head, *tail;
    size_t len;
} fn_msg_queue_t;

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

/* The output topics (transitions, retargeting, bottlenecks, snapshots, dlq), as counted by
 * fn_output_failed. */
#define FN_OUT_TOPICS 5

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

/* A configuration replaced by a reload, kept while steps built with it are in flight. */
typedef struct fn_retired_cfg {
    fn_config_t *cfg;
    size_t users; /* messages holding it (fn_msg_t.cfg); freed when the last lets go */
    struct fn_retired_cfg *next;
} fn_retired_cfg_t;

typedef struct fn_daemon {
    uv_loop_t *loop;
    fn_config_t *cfg;         /* owned */
    char *config_path;        /* owned; re-read on SIGHUP */
    fn_config_t *pending_cfg; /* accepted by a reload, applied once analytics are idle */
    size_t cfg_users;         /* messages holding cfg (fn_msg_t.cfg) */
    fn_retired_cfg_t *retired;
    fn_log_t log;

    /* input */
    rd_kafka_t *consumer;
    fn_kafka_bridge_t consumer_bridge; /* wakes the loop for the consumer queue */
    fn_partition_t *partitions;
    int64_t blocked_since; /* wall ms when the in-flight bound stopped consumption, or 0 */
    bool paused;           /* partitions paused: blocked for long, or stopping */
    int assigned_count;
    int commit_every_ms;    /* auto.commit.interval.ms: the daemon commits, see kafka_in.c */
    int64_t last_commit_ms; /* wall ms of the last periodic commit */
    int commit_err;         /* rd_kafka_resp_err_t of the last failed commit, 0 after success */
    bool joined;            /* a first assignment (possibly empty) arrived */
    bool kafka_up;          /* a broker is up, per librdkafka's latest statistics */
    int64_t kafka_seen_ms;  /* when statistics last arrived */

    /* output */
    rd_kafka_t *producer;
    fn_kafka_bridge_t producer_bridge; /* wakes the loop for delivery reports */
    fn_buf_t out_buf;
    bool output_closing; /* shutting down: undelivered outputs are purged, not retried */
    /* Outputs of messages that librdkafka's full queue refused, in order: produced again
     * from the loop (kafka_out.c), never waited for. Bounded by the in-flight bound. */
    struct fn_out_wait *out_wait, *out_wait_tail;
    size_t out_waiting;       /* how many */
    bool output_refused;      /* the queue refused a message since the last delivery */
    size_t producer_max_msgs; /* queue.buffering.max.messages as configured */

    /* state: the Redis connection(s) and the per-lead queue (store.h) */
    struct fn_store *store;
    uint64_t msg_seq; /* numbers the messages of this process (fn_msg_t.seq) */

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
    size_t analytics_requests, analytics_in_flight;
    int64_t refused_logged_ms; /* analytics outputs refused: last logged, and since then */
    uint64_t refused_unlogged;

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

/* --- daemon.c: lifecycle and message bookkeeping --- */

/* Creates the daemon for cfg (taking ownership) on loop. Returns NULL and logs on error. */
fn_daemon_t *fn_daemon_new(uv_loop_t *loop, fn_config_t *cfg, fn_log_level_t level);
/* Connects everything and runs the loop until a signal stops it. Returns the exit code. */
int fn_daemon_run(fn_daemon_t *d);
void fn_daemon_free(fn_daemon_t *d);
/* Begins a graceful stop: no more consumption, drain in-flight work, commit, exit. */
void fn_daemon_stop(fn_daemon_t *d, int exit_code);

/* Input bytes of messages that still hold their parsed event, beyond which consumption waits
 * like at max_in_flight: messages are usually small, but up to max_message_bytes each, and
 * their parsed documents take several times their size. */
#define FN_IN_FLIGHT_BYTES_MAX (16u << 20)

fn_msg_t *fn_msg_new(fn_daemon_t *d);
/* At the in-flight bound (messages or bytes): consumption waits. */
bool fn_daemon_full(const fn_daemon_t *d);
/* m no longer holds its input and event: its bytes stop counting against the bound. */
void fn_msg_uncharge(fn_daemon_t *d, fn_msg_t *m);
/* The log context of m: its topic, partition, offset and (when decoded) lead key hash,
 * written into hex. */
fn_log_ctx_t fn_msg_log_ctx(const fn_msg_t *m, char hex[33]);
/* Marks m done and commits every done prefix of its partition. */
void fn_msg_done(fn_daemon_t *d, fn_msg_t *m);
void fn_queue_push(fn_msg_queue_t *q, fn_msg_t *m);
fn_msg_t *fn_queue_pop(fn_msg_queue_t *q);

/* --- core/kafka_common.c --- */
/* Sets one librdkafka property; logs "kafka.properties.KEY: why" and returns FN_ERR. */
int fn_kafka_conf_set(fn_daemon_t *d, rd_kafka_conf_t *conf, const char *k, const char *v);
/* Replaces the values of the secret kafka.properties (fn_secret_key) in a text from
 * librdkafka with "[redacted]" before it is logged. */
void fn_kafka_redact(const fn_daemon_t *d, char *text, size_t cap);
/* Opaque, error and log callbacks shared by consumer and producer. */
int fn_kafka_conf_common(fn_daemon_t *d, rd_kafka_conf_t *conf);

/* --- input/kafka_in.c --- */
int fn_input_start(fn_daemon_t *d);
/* The bookkeeping record of one topic partition, created on first use. NULL on OOM. */
fn_partition_t *fn_input_partition(fn_daemon_t *d, const char *topic, int32_t partition);
/* Consumes whatever is queued, up to the in-flight bound (past it when paused: what a
 * paused consumer still returns must be processed, it is never dropped). */
void fn_input_drain(fn_daemon_t *d);
/* Pauses or resumes fetching for every assigned partition (backpressure). */
void fn_input_set_paused(fn_daemon_t *d, bool paused);
/* Commits each assigned partition's done prefix with its event clock as metadata, when it
 * moved since the last commit; asynchronously unless sync. Called by the tick, which
 * commits every auto.commit.interval.ms, and at revocation and shutdown. */
void fn_input_commit(fn_daemon_t *d, bool sync);
/* Commits the done prefixes synchronously and closes the consumer. */
void fn_input_close(fn_daemon_t *d);

/* --- core/pipeline.c: what happens to a message between input and output --- */
/* Takes a consumed message (and destroys it: what is needed is copied). */
void fn_pipe_on_message(fn_daemon_t *d, rd_kafka_message_t *rkm);
void fn_pipe_on_step_reply(fn_daemon_t *d, fn_msg_t *m, const void *redis_reply);
/* m's step cannot be applied (reason says why): releases the lead and dead-letters m. */
void fn_pipe_step_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason);

/* --- timers/timers.c: retargeting timers and triggers --- */
/* Called by the tick: fires what is due by each assigned partition's clock. */
void fn_timers_tick(fn_daemon_t *d);
/* Produces the trigger of outbox entry e (a string reply) of shard. */
void fn_timers_emit(fn_daemon_t *d, unsigned shard, const redisReply *e);
/* A step armed a timer due at `due` in p's zset of shard. */
void fn_timers_armed(fn_daemon_t *d, fn_partition_t *p, unsigned shard, int64_t due);
/* p was assigned or revoked: its clock and what is known of its timers start over. */
void fn_timers_reset(fn_daemon_t *d, fn_partition_t *p);
/* Kafka acknowledged the trigger whose opaque is owner (FN_OWNER_TRIGGER): clears its
 * outbox entry and frees it. */
void fn_timers_delivered(fn_daemon_t *d, fn_owner_t *owner);
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
/* Kafka acknowledged an analytics event (owner FN_OWNER_ANALYTICS): records a bottleneck
 * state change and frees it. */
void fn_eval_delivered(fn_daemon_t *d, fn_owner_t *owner);
/* Kafka refused an analytics event for good (too large for the broker): counted, logged and
 * freed; a bottleneck change stays unannounced and is announced again by a later evaluation. */
void fn_eval_refused(fn_daemon_t *d, fn_owner_t *owner, const char *topic, const char *why);
bool fn_eval_idle(const fn_daemon_t *d);
void fn_eval_free(fn_daemon_t *d);

/* --- core/reload.c: SIGHUP --- */
/* Re-reads the config file: a valid one whose connection settings are unchanged is applied
 * (funnels and their rules); anything else is logged with the field and the old one stays. */
void fn_reload_request(fn_daemon_t *d);
/* Called by the tick: applies an accepted config once no evaluation is in progress. */
void fn_reload_apply(fn_daemon_t *d);
/* Compares what a reload may not change (fn_config_fixed_diff); returns the first differing
 * field, or NULL. */
const char *fn_reload_immutable_diff(const fn_config_t *a, const fn_config_t *b);
/* m's step is being built with the running config: m holds it (m->cfg) until
 * fn_reload_let_go, so a reload meanwhile cannot free it. A rebuilt step lets go of the config
 * it held before. */
void fn_reload_hold(fn_daemon_t *d, fn_msg_t *m);
/* m no longer needs the config its step was built with; a replaced config is freed when its
 * last holder lets go. Nothing to do when m holds none. */
void fn_reload_let_go(fn_daemon_t *d, fn_msg_t *m);
/* Replaced configs still held by in-flight messages (the funneld_configs_retired gauge). */
size_t fn_reload_retired(const fn_daemon_t *d);
void fn_reload_free(fn_daemon_t *d);

/* --- http/http.c and http/metrics.c --- */
/* Listens on http.listen: /metrics, /healthz, /readyz. */
int fn_http_start(fn_daemon_t *d);
void fn_http_close(fn_daemon_t *d);
/* True when partitions were assigned (or the group gave us none), Redis and Kafka are up. */
bool fn_http_ready(const fn_daemon_t *d);
/* Writes the Prometheus text of every metric into out. */
int fn_metrics_render(const fn_daemon_t *d, fn_buf_t *out);
/* librdkafka statistics (JSON): broker state and consumer lag per partition. */
void fn_metrics_on_kafka_stats(fn_daemon_t *d, const char *json, size_t len);

/* --- output/kafka_out.c --- */
/* Produces a copy of payload; opaque comes back in the delivery report. Never waits: when
 * librdkafka's queue is full (or outputs of messages wait for room) it returns
 * RD_KAFKA_RESP_ERR__QUEUE_FULL and the caller keeps what it sends where it came from
 * (a trigger in its outbox, a bottleneck in Redis). Returns 0 or the librdkafka error. */
rd_kafka_resp_err_t fn_output_send(fn_daemon_t *d, const char *topic, const void *key,
                                   size_t keylen, const void *payload, size_t len,
                                   rd_kafka_headers_t *hdrs, void *opaque);
int fn_output_start(fn_daemon_t *d);
/* How many more messages librdkafka's queue takes now: 0 while outputs of messages wait for
 * room or since a refusal not yet followed by a delivery. Firing and evaluations wait on it. */
size_t fn_output_room(const fn_daemon_t *d);
/* The name of output topic i (0 .. FN_OUT_TOPICS - 1) in cfg. */
const char *fn_output_topic(const fn_config_t *cfg, int i);
/* Counts an output to topic that was given up (refused by the producer or the broker) for
 * funneld_produce_failures_total. */
void fn_output_failed(fn_daemon_t *d, const char *topic);
/* The producer's message.max.bytes: larger messages are refused before they are queued. */
size_t fn_output_max_bytes(fn_daemon_t *d);
/* Produces payload to topic for m (copying it); m is told of delivery. DLQ headers are
 * added when dlq_code is not NULL. A full queue never blocks: the output waits, in order,
 * and is produced from the loop once there is room. Returns FN_OK or FN_ERR (a permanent
 * error, logged; m is never done, so its input is consumed again after a restart). */
int fn_output_produce(fn_daemon_t *d, fn_msg_t *m, const char *topic, const void *key,
                      size_t keylen, const void *payload, size_t len, const char *dlq_code,
                      const char *dlq_reason);
/* Serves delivery reports, then produces the outputs that wait for room. */
void fn_output_poll(fn_daemon_t *d);
/* Flushes outstanding messages (bounded wait) and destroys the producer. */
void fn_output_close(fn_daemon_t *d);

#endif
