/*
 * kafka_out.c — the producer for transitions, DLQ and (later) trigger and analytics events.
 *
 * Idempotent producer with message.timeout.ms=0: librdkafka retries a message for as long as
 * the broker is away, in order, without duplicates — a broker outage becomes backpressure
 * (the in-flight bound pauses the consumer) instead of lost output. A delivery that still
 * fails permanently is produced again: its input offset is never committed until it is
 * delivered, so giving up would be the only way to lose it.
 *
 * Delivery reports are served on the loop, woken by the main queue's kafka_bridge.h pipe.
 *
 * Nothing waits on the loop for room in librdkafka's queue. An output of a consumed message
 * that the full queue refuses waits in the daemon's backlog, in order (later outputs queue
 * behind it), and is produced from the loop once deliveries made room; the message is not
 * done meanwhile, so the in-flight bound pauses consumption and bounds the backlog. Triggers
 * and analytics events are not kept here: refused, they stay in Redis (fn_output_send).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/daemon.h"
#include "funneld/store.h"

/* What a dead letter keeps of its key and of its value when Kafka refuses it as too large. */
#define DLQ_CUT_BYTES 65536

/* A dead letter is the input's bytes, and an input can be larger than the producer's
 * message.max.bytes (default 1,000,000) or the DLQ topic's max.message.bytes: producing it
 * again unchanged would fail forever and hold its partition. So a dead letter refused as too
 * large is sent again with its key and value cut to their first DLQ_CUT_BYTES bytes and a
 * funneld.truncated header "key=<bytes> value=<bytes>" giving the original sizes; refused
 * again, with the key and value empty. Adds the header to hdrs on the first cut; returns how
 * many bytes of key and of value to keep. */
static size_t dlq_cut(rd_kafka_headers_t *hdrs, size_t keylen, size_t len)
{
    const void *v;
    size_t vl;
    if (rd_kafka_header_get_last(hdrs, "funneld.truncated", &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    char sizes[64];
    snprintf(sizes, sizeof sizes, "key=%zu value=%zu", keylen, len);
    rd_kafka_header_add(hdrs, "funneld.truncated", -1, sizes, -1);
    return DLQ_CUT_BYTES;
}

static bool too_large(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

static bool is_dead_letter(rd_kafka_headers_t *hdrs)
{
    const void *v;
    size_t vl;
    return hdrs && rd_kafka_header_get_last(hdrs, "funneld.error", &v, &vl) == 0;
}

/* An output refused by the full queue, waiting for room (d->out_wait). */
typedef struct fn_out_wait {
    struct fn_out_wait *next;
    rd_kafka_headers_t *hdrs; /* owned */
    void *opaque;
    size_t keylen, len;
    char *key, *payload; /* point into data */
    char topic_and_data[];
} fn_out_wait_t;

/* One produce call; counts it and notes a refusal for lack of room. */
static rd_kafka_resp_err_t produce_once(fn_daemon_t *d, const char *topic, const void *key,
                                        size_t keylen, const void *payload, size_t len,
                                        rd_kafka_headers_t *hdrs, void *opaque)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        d->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)payload, len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (!e)
        d->stats.produced++;
    else if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        d->output_refused = true;
    return e;
}

/* produce_once, and for a dead letter refused as too large the cuts of dlq_cut (*keylen and
 * *len become what is kept). */
static rd_kafka_resp_err_t produce_cut(fn_daemon_t *d, const char *topic, const void *key,
                                       size_t *keylen, const void *payload, size_t *len,
                                       rd_kafka_headers_t *hdrs, void *opaque)
{
    rd_kafka_resp_err_t e = produce_once(d, topic, key, *keylen, payload, *len, hdrs, opaque);
    for (int cuts = 0; too_large(e) && is_dead_letter(hdrs) && cuts < 2; cuts++) {
        size_t cut = dlq_cut(hdrs, *keylen, *len);
        fn_log(&d->log, FN_LOG_WARN, "kafka",
               "dead letter of %zu bytes (key %zu) too large for %s; sending its first %zu", *len,
               *keylen, topic, cut);
        *keylen = *keylen < cut ? *keylen : cut;
        *len = *len < cut ? *len : cut;
        e = produce_once(d, topic, key, *keylen, payload, *len, hdrs, opaque);
    }
    return e;
}

/* Keeps a copy of an output for later, behind those already waiting; takes hdrs. */
static int wait_for_room(fn_daemon_t *d, const char *topic, const void *key, size_t keylen,
                         const void *payload, size_t len, rd_kafka_headers_t *hdrs, void *opaque)
{
    size_t tl = strlen(topic) + 1;
    fn_out_wait_t *w = malloc(sizeof *w + tl + keylen + len);
    if (!w)
        return FN_ERR;
    memcpy(w->topic_and_data, topic, tl);
    w->key = w->topic_and_data + tl;
    w->payload = w->key + keylen;
    if (keylen)
        memcpy(w->key, key, keylen);
    if (len)
        memcpy(w->payload, payload, len);
    w->keylen = keylen;
    w->len = len;
    w->hdrs = hdrs;
    w->opaque = opaque;
    w->next = NULL;
    if (d->out_wait_tail)
        d->out_wait_tail->next = w;
    else
        d->out_wait = w;
    d->out_wait_tail = w;
    d->out_waiting++;
    return FN_OK;
}

/* Produces now, or behind the outputs already waiting, or keeps the output waiting when the
 * queue is full (taking hdrs). Returns 0 or a permanent error (hdrs still the caller's). */
static rd_kafka_resp_err_t send_or_wait(fn_daemon_t *d, const char *topic, const void *key,
                                        size_t keylen, const void *payload, size_t len,
                                        rd_kafka_headers_t *hdrs, void *opaque)
{
    rd_kafka_resp_err_t e = d->out_wait
                                ? RD_KAFKA_RESP_ERR__QUEUE_FULL
                                : produce_cut(d, topic, key, &keylen, payload, &len, hdrs, opaque);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return e;
    if (wait_for_room(d, topic, key, keylen, payload, len, hdrs, opaque))
        return RD_KAFKA_RESP_ERR__FAIL; /* out of memory */
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Produces the outputs waiting for room, in order, until the queue refuses one. */
static void flush_waiting(fn_daemon_t *d)
{
    while (d->out_wait) {
        fn_out_wait_t *w = d->out_wait;
        rd_kafka_resp_err_t e = produce_cut(d, w->topic_and_data, w->key, &w->keylen, w->payload,
                                            &w->len, w->hdrs, w->opaque);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return;
        d->out_wait = w->next;
        if (!d->out_wait)
            d->out_wait_tail = NULL;
        d->out_waiting--;
        if (e) {
            /* Its owner is never done: an input is not committed and is consumed again
             * after the restart. */
            fn_log(&d->log, FN_LOG_ERROR, "kafka", "produce to %s: %s; stopping", w->topic_and_data,
                   rd_kafka_err2str(e));
            if (w->hdrs)
                rd_kafka_headers_destroy(w->hdrs);
            fn_daemon_stop(d, 1);
        }
        free(w);
    }
}

/* At exit: what waits was never produced; it stays where it came from (see on_delivery). */
static void drop_waiting(fn_daemon_t *d)
{
    while (d->out_wait) {
        fn_out_wait_t *w = d->out_wait;
        d->out_wait = w->next;
        if (w->hdrs)
            rd_kafka_headers_destroy(w->hdrs);
        fn_msg_t *m = w->opaque;
        if (m && m->owner != FN_OWNER_MSG)
            free(m);
        free(w);
    }
    d->out_wait_tail = NULL;
    d->out_waiting = 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    fn_daemon_t *d = opaque;
    fn_msg_t *m = rkm->_private;
    if (rkm->err && d->output_closing) {
        /* Purged at exit: what Kafka did not take stays where it came from (an input not
         * committed, a trigger in its outbox, a bottleneck not marked announced), so only
         * the owners of triggers and analytics events, which nothing else holds, are freed;
         * inputs are released with the rest of the unfinished ones. Their owner field is
         * the first member of the struct that was allocated. */
        if (m && m->owner != FN_OWNER_MSG)
            free(m);
        return;
    }
    if (rkm->err && too_large(rkm->err) && m && m->owner == FN_OWNER_ANALYTICS) {
        /* A snapshot or bottleneck is built again by the next evaluation: produced again
         * unchanged it would be refused for ever, holding the evaluations back. */
        fn_output_failed(d, rd_kafka_topic_name(rkm->rkt));
        fn_eval_refused(d, &m->owner, rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        return;
    }
    if (rkm->err) {
        d->stats.delivery_retries++;
        if (d->stats.delivery_retries % 1000 == 1)
            fn_log(&d->log, FN_LOG_WARN, "kafka", "delivery to %s failed (%s); producing again",
                   rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
        rd_kafka_headers_t *hdrs = NULL, *copy = NULL;
        if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
            copy = rd_kafka_headers_copy(hdrs);
        size_t keylen = rkm->key_len, len = rkm->len;
        if (too_large(rkm->err) && is_dead_letter(copy)) {
            size_t cut = dlq_cut(copy, keylen, len);
            keylen = keylen < cut ? keylen : cut;
            len = len < cut ? len : cut;
        }
        /* A full queue keeps it waiting for room, whatever its owner. */
        rd_kafka_resp_err_t e = send_or_wait(d, rd_kafka_topic_name(rkm->rkt), rkm->key, keylen,
                                             rkm->payload, len, copy, m);
        if (!e)
            return;
        if (copy)
            rd_kafka_headers_destroy(copy);
        fn_output_failed(d, rd_kafka_topic_name(rkm->rkt));
        fn_log(&d->log, FN_LOG_ERROR, "kafka", "cannot produce again to %s: %s; stopping",
               rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(e));
        fn_daemon_stop(d, 1);
        return;
    }
    d->stats.delivered++;
    d->output_refused = false; /* room again */
    if (strcmp(rd_kafka_topic_name(rkm->rkt), d->cfg->topic_dlq) == 0)
        d->stats.dlq_delivered++;
    if (m && m->owner == FN_OWNER_TRIGGER) {
        fn_timers_delivered(d, &m->owner);
        return;
    }
    if (m && m->owner == FN_OWNER_ANALYTICS) {
        fn_eval_delivered(d, &m->owner);
        return;
    }
    if (m && --m->pending_dr == 0) {
        if (m->clear_pending)
            fn_store_clear_pending(d->store, m);
        fn_msg_done(d, m);
    }
}

static void on_queued(void *data)
{
    fn_output_poll(data);
}

/* Consumer-only properties would make the producer complain; skip them for it. */
static bool consumer_only(const char *k)
{
    static const char *const keys[] = {"group.id",
                                       "auto.offset.reset",
                                       "enable.auto.commit",
                                       "auto.commit.interval.ms",
                                       "partition.assignment.strategy",
                                       "session.timeout.ms",
                                       "max.poll.interval.ms",
                                       "heartbeat.interval.ms",
                                       "group.instance.id",
                                       "queued.max.messages.kbytes",
                                       "fetch.max.bytes",
                                       "isolation.level",
                                       "enable.partition.eof",
                                       "enable.auto.offset.store"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

int fn_output_start(fn_daemon_t *d)
{
    const fn_config_t *cfg = d->cfg;
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (fn_kafka_conf_set(d, conf, "bootstrap.servers", cfg->brokers) ||
        fn_kafka_conf_set(d, conf, "enable.idempotence", "true") ||
        /* Short: at a steady rate linger is added to every output's latency, and during a
         * backlog batches fill while earlier requests are in flight anyway. */
        fn_kafka_conf_set(d, conf, "linger.ms", "2") ||
        fn_kafka_conf_set(d, conf, "batch.num.messages", "10000") ||
        fn_kafka_conf_set(d, conf, "queue.buffering.max.messages", "2000000") ||
        fn_kafka_conf_set(d, conf, "queue.buffering.max.kbytes", "1048576") ||
        fn_kafka_conf_common(d, conf))
        goto fail;
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (!consumer_only(cfg->kafka_props[i].key) &&
            fn_kafka_conf_set(d, conf, cfg->kafka_props[i].key, cfg->kafka_props[i].value))
            goto fail;
    /* Never give up on a message, and keep a lead's outputs in order and free of duplicates
     * across retries: see the comment at the top. kafka.properties cannot change these. */
    if (fn_kafka_conf_set(d, conf, "message.timeout.ms", "0") ||
        fn_kafka_conf_set(d, conf, "enable.idempotence", "true"))
        goto fail;
    char qmax[32];
    size_t qlen = sizeof qmax;
    if (rd_kafka_conf_get(conf, "queue.buffering.max.messages", qmax, &qlen) == RD_KAFKA_CONF_OK)
        d->producer_max_msgs = strtoull(qmax, NULL, 10);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    d->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!d->producer) {
        fn_kafka_redact(d, err, sizeof err);
        fn_log(&d->log, FN_LOG_ERROR, "kafka", "cannot create producer: %s", err);
        goto fail;
    }
    rd_kafka_set_log_queue(d->producer, NULL);
    int rc = fn_kafka_bridge_start(&d->producer_bridge, d->loop,
                                   rd_kafka_queue_get_main(d->producer), on_queued, d);
    if (rc) {
        fn_log(&d->log, FN_LOG_ERROR, "kafka", "producer queue's wake-up pipe: %s",
               uv_strerror(rc));
        return FN_ERR;
    }
    return FN_OK;
fail:
    rd_kafka_conf_destroy(conf);
    return FN_ERR;
}

rd_kafka_resp_err_t fn_output_send(fn_daemon_t *d, const char *topic, const void *key,
                                   size_t keylen, const void *payload, size_t len,
                                   rd_kafka_headers_t *hdrs, void *opaque)
{
    /* Outputs of messages waiting for room go first. */
    if (d->out_wait)
        return RD_KAFKA_RESP_ERR__QUEUE_FULL;
    return produce_once(d, topic, key, keylen, payload, len, hdrs, opaque);
}

size_t fn_output_room(const fn_daemon_t *d)
{
    if (!d->producer || d->out_wait || d->output_refused)
        return 0;
    size_t queued = (size_t)rd_kafka_outq_len(d->producer);
    return queued < d->producer_max_msgs ? d->producer_max_msgs - queued : 0;
}

int fn_output_produce(fn_daemon_t *d, fn_msg_t *m, const char *topic, const void *key,
                      size_t keylen, const void *payload, size_t len, const char *dlq_code,
                      const char *dlq_reason)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (dlq_code) {
        char source[320];
        snprintf(source, sizeof source, "%s/%d/%lld", m->part->topic, m->part->partition,
                 (long long)m->offset);
        hdrs = rd_kafka_headers_new(3);
        rd_kafka_header_add(hdrs, "funneld.error", -1, dlq_code, -1);
        rd_kafka_header_add(hdrs, "funneld.reason", -1, dlq_reason, -1);
        rd_kafka_header_add(hdrs, "funneld.source", -1, source, -1);
    }
    rd_kafka_resp_err_t e = send_or_wait(d, topic, key, keylen, payload, len, hdrs, m);
    if (!e) {
        m->pending_dr++;
        return FN_OK;
    }
    fn_output_failed(d, topic);
    fn_log(&d->log, FN_LOG_ERROR, "kafka", "produce to %s: %s", topic, rd_kafka_err2str(e));
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    /* A reference that is never released: m can never be done, so its offset is never
     * committed and the output is produced again by whoever consumes it next. */
    m->pending_dr++;
    return FN_ERR;
}

const char *fn_output_topic(const fn_config_t *cfg, int i)
{
    const char *const t[FN_OUT_TOPICS] = {cfg->topic_transitions, cfg->topic_retargeting,
                                          cfg->topic_bottlenecks, cfg->topic_snapshots,
                                          cfg->topic_dlq};
    assert(i >= 0 && i < FN_OUT_TOPICS);
    return t[i];
}

void fn_output_failed(fn_daemon_t *d, const char *topic)
{
    for (int i = 0; i < FN_OUT_TOPICS; i++)
        if (strcmp(topic, fn_output_topic(d->cfg, i)) == 0) {
            d->stats.produce_failed[i]++;
            return;
        }
}

size_t fn_output_max_bytes(fn_daemon_t *d)
{
    char v[32];
    size_t n = sizeof v;
    if (!d->producer || rd_kafka_conf_get(rd_kafka_conf(d->producer), "message.max.bytes", v, &n) !=
                            RD_KAFKA_CONF_OK)
        return 1000000; /* librdkafka's default */
    return (size_t)strtoull(v, NULL, 10);
}

void fn_output_poll(fn_daemon_t *d)
{
    if (!d->producer)
        return;
    while (rd_kafka_poll(d->producer, 0) > 0) {
    }
    flush_waiting(d);
}

void fn_output_close(fn_daemon_t *d)
{
    if (!d->producer)
        return;
    flush_waiting(d);
    rd_kafka_resp_err_t e = rd_kafka_flush(d->producer, 10000);
    if (e)
        fn_log(&d->log, FN_LOG_WARN, "kafka",
               "flush: %s (%d message(s) not delivered; their "
               "inputs were not committed)",
               rd_kafka_err2str(e), rd_kafka_outq_len(d->producer));
    /* Delivery reports for what is left, so that their owners are freed (a destroy without
     * them would drop the reports). */
    d->output_closing = true;
    drop_waiting(d);
    rd_kafka_purge(d->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(d->producer, 1000);
    fn_kafka_bridge_close(&d->producer_bridge);
    rd_kafka_destroy(d->producer);
    d->producer = NULL;
}
