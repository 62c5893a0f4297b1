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
 *
 * Every produced message's opaque is its request (output.h): the delivery report goes back
 * to the request's callback, so this file knows none of its producers.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/kafka_bridge.h"
#include "funneld/kafka_common.h"
#include "funneld/output.h"

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

/* An output refused by the full queue, waiting for room (fn_output_t.wait). */
typedef struct fn_out_wait {
    struct fn_out_wait *next;
    rd_kafka_headers_t *hdrs; /* owned */
    fn_out_req_t *req;
    size_t keylen, len;
    char *key, *payload; /* point into data */
    char topic_and_data[];
} fn_out_wait_t;

struct fn_output {
    fn_kafka_client_t kc; /* first: the producer's opaque (kafka_common.h) */
    fn_host_t host;       /* the loop, config, log, stats and the stop on a fatal error */
    rd_kafka_t *producer;
    fn_kafka_bridge_t bridge; /* wakes the loop for delivery reports */
    fn_buf_t buf;             /* fn_output_buf */
    bool closing;             /* shutting down: undelivered outputs are purged, not retried */
    /* Outputs of messages that librdkafka's full queue refused, in order: produced again
     * from the loop, never waited for. Bounded by the in-flight bound. */
    fn_out_wait_t *wait, *wait_tail;
    size_t waiting;              /* how many */
    bool refused;                /* the queue refused a message since the last delivery */
    size_t max_msgs;             /* queue.buffering.max.messages as configured */
    void (*on_down)(void *data); /* every broker down (fn_output_new) */
    void *down_data;
};

/* One produce call; counts it and notes a refusal for lack of room. */
static rd_kafka_resp_err_t produce_once(fn_output_t *o, const char *topic, const void *key,
                                        size_t keylen, const void *payload, size_t len,
                                        rd_kafka_headers_t *hdrs, fn_out_req_t *req)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(
        o->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)payload, len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(req), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        o->refused = true;
    return e;
}

/* produce_once, and for a dead letter refused as too large the cuts of dlq_cut (*keylen and
 * *len become what is kept). */
static rd_kafka_resp_err_t produce_cut(fn_output_t *o, const char *topic, const void *key,
                                       size_t *keylen, const void *payload, size_t *len,
                                       rd_kafka_headers_t *hdrs, fn_out_req_t *req)
{
    rd_kafka_resp_err_t e = produce_once(o, topic, key, *keylen, payload, *len, hdrs, req);
    for (int cuts = 0; too_large(e) && is_dead_letter(hdrs) && cuts < 2; cuts++) {
        size_t cut = dlq_cut(hdrs, *keylen, *len);
        fn_log(o->host.log, FN_LOG_WARN, "kafka",
               "dead letter of %zu bytes (key %zu) too large for %s; sending its first %zu", *len,
               *keylen, topic, cut);
        *keylen = *keylen < cut ? *keylen : cut;
        *len = *len < cut ? *len : cut;
        e = produce_once(o, topic, key, *keylen, payload, *len, hdrs, req);
    }
    return e;
}

/* Keeps a copy of an output for later, behind those already waiting; takes hdrs. */
static int wait_for_room(fn_output_t *o, const char *topic, const void *key, size_t keylen,
                         const void *payload, size_t len, rd_kafka_headers_t *hdrs,
                         fn_out_req_t *req)
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
    w->req = req;
    w->next = NULL;
    if (o->wait_tail)
        o->wait_tail->next = w;
    else
        o->wait = w;
    o->wait_tail = w;
    o->waiting++;
    return FN_OK;
}

/* Produces now, or behind the outputs already waiting, or keeps the output waiting when the
 * queue is full (taking hdrs). Returns 0 or a permanent error (hdrs still the caller's). */
static rd_kafka_resp_err_t send_or_wait(fn_output_t *o, const char *topic, const void *key,
                                        size_t keylen, const void *payload, size_t len,
                                        rd_kafka_headers_t *hdrs, fn_out_req_t *req)
{
    rd_kafka_resp_err_t e = o->wait ? RD_KAFKA_RESP_ERR__QUEUE_FULL
                                    : produce_cut(o, topic, key, &keylen, payload, &len, hdrs, req);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return e;
    if (wait_for_room(o, topic, key, keylen, payload, len, hdrs, req))
        return RD_KAFKA_RESP_ERR__FAIL; /* out of memory */
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Produces the outputs waiting for room, in order, until the queue refuses one. */
static void flush_waiting(fn_output_t *o)
{
    while (o->wait) {
        fn_out_wait_t *w = o->wait;
        rd_kafka_resp_err_t e = produce_cut(o, w->topic_and_data, w->key, &w->keylen, w->payload,
                                            &w->len, w->hdrs, w->req);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return;
        o->wait = w->next;
        if (!o->wait)
            o->wait_tail = NULL;
        o->waiting--;
        if (e) {
            /* Its owner is never done: an input is not committed and is consumed again
             * after the restart. */
            fn_log(o->host.log, FN_LOG_ERROR, "kafka", "produce to %s: %s; stopping",
                   w->topic_and_data, rd_kafka_err2str(e));
            if (w->hdrs)
                rd_kafka_headers_destroy(w->hdrs);
            o->host.stop(o->host.data, 1);
        }
        free(w);
    }
}

/* At exit: what waits was never produced; it stays where it came from (see on_delivery). */
static void drop_waiting(fn_output_t *o)
{
    while (o->wait) {
        fn_out_wait_t *w = o->wait;
        o->wait = w->next;
        if (w->hdrs)
            rd_kafka_headers_destroy(w->hdrs);
        if (w->req)
            w->req->done(w->req, FN_OUT_PURGED, w->topic_and_data, RD_KAFKA_RESP_ERR__PURGE_QUEUE);
        free(w);
    }
    o->wait_tail = NULL;
    o->waiting = 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    fn_output_t *o = opaque;
    fn_out_req_t *req = rkm->_private;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    if (rkm->err && o->closing) {
        /* Purged at exit: what Kafka did not take stays where it came from (an input not
         * committed, a trigger in its outbox, a bottleneck not marked announced); its
         * producer frees what nothing else holds. */
        if (req)
            req->done(req, FN_OUT_PURGED, topic, rkm->err);
        return;
    }
    if (rkm->err && too_large(rkm->err) && req && req->refusable) {
        /* A snapshot or bottleneck is built again by the next evaluation: produced again
         * unchanged it would be refused for ever, holding the evaluations back. */
        fn_output_failed(o, topic);
        req->done(req, FN_OUT_REFUSED, topic, rkm->err);
        return;
    }
    if (rkm->err) {
        o->host.stats->delivery_retries++;
        if (o->host.stats->delivery_retries % 1000 == 1)
            fn_log(o->host.log, FN_LOG_WARN, "kafka", "delivery to %s failed (%s); producing again",
                   topic, rd_kafka_err2str(rkm->err));
        rd_kafka_headers_t *hdrs = NULL, *copy = NULL;
        if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
            copy = rd_kafka_headers_copy(hdrs);
        size_t keylen = rkm->key_len, len = rkm->len;
        if (too_large(rkm->err) && is_dead_letter(copy)) {
            size_t cut = dlq_cut(copy, keylen, len);
            keylen = keylen < cut ? keylen : cut;
            len = len < cut ? len : cut;
        }
        /* A full queue keeps it waiting for room, whatever its producer. */
        rd_kafka_resp_err_t e =
            send_or_wait(o, topic, rkm->key, keylen, rkm->payload, len, copy, req);
        if (!e)
            return;
        if (copy)
            rd_kafka_headers_destroy(copy);
        fn_output_failed(o, topic);
        fn_log(o->host.log, FN_LOG_ERROR, "kafka", "cannot produce again to %s: %s; stopping",
               topic, rd_kafka_err2str(e));
        o->host.stop(o->host.data, 1);
        return;
    }
    o->refused = false; /* room again */
    if (strcmp(topic, (*o->host.cfg)->topic_dlq) == 0)
        o->host.stats->dlq_delivered++;
    if (req)
        req->done(req, FN_OUT_DELIVERED, topic, RD_KAFKA_RESP_ERR_NO_ERROR);
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

static void on_fatal(void *data)
{
    fn_output_t *o = data;
    o->host.stop(o->host.data, 1);
}

static void on_down(void *data)
{
    fn_output_t *o = data;
    o->on_down(o->down_data);
}

fn_output_t *fn_output_new(const fn_host_t *host, void (*on_down_cb)(void *data), void *data)
{
    fn_output_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->host = *host;
    o->kc.log = host->log;
    o->kc.cfg = host->cfg;
    o->kc.on_fatal = on_fatal;
    o->kc.on_down = on_down;
    o->kc.data = o;
    o->on_down = on_down_cb;
    o->down_data = data;
    fn_kafka_bridge_init(&o->bridge);
    return o;
}

int fn_output_start(fn_output_t *o)
{
    const fn_config_t *cfg = *o->host.cfg;
    const fn_kafka_client_t *kc = &o->kc;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (fn_kafka_conf_set(kc, conf, "bootstrap.servers", cfg->brokers) ||
        fn_kafka_conf_set(kc, conf, "enable.idempotence", "true") ||
        /* Short: at a steady rate linger is added to every output's latency, and during a
         * backlog batches fill while earlier requests are in flight anyway. */
        fn_kafka_conf_set(kc, conf, "linger.ms", "2") ||
        fn_kafka_conf_set(kc, conf, "batch.num.messages", "10000") ||
        fn_kafka_conf_set(kc, conf, "queue.buffering.max.messages", "2000000") ||
        fn_kafka_conf_set(kc, conf, "queue.buffering.max.kbytes", "1048576") ||
        fn_kafka_conf_common(&o->kc, conf))
        goto fail;
    if (fn_kafka_conf_props(kc, conf, consumer_only))
        goto fail;
    /* Never give up on a message, and keep a lead's outputs in order and free of duplicates
     * across retries: see the comment at the top. kafka.properties cannot change these. */
    if (fn_kafka_conf_set(kc, conf, "message.timeout.ms", "0") ||
        fn_kafka_conf_set(kc, conf, "enable.idempotence", "true"))
        goto fail;
    char qmax[32];
    size_t qlen = sizeof qmax;
    if (rd_kafka_conf_get(conf, "queue.buffering.max.messages", qmax, &qlen) == RD_KAFKA_CONF_OK)
        o->max_msgs = strtoull(qmax, NULL, 10);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    o->producer = fn_kafka_new(kc, RD_KAFKA_PRODUCER, conf, "kafka", "producer");
    if (!o->producer)
        return FN_ERR; /* conf destroyed */
    int rc = fn_kafka_bridge_start(&o->bridge, o->host.loop, rd_kafka_queue_get_main(o->producer),
                                   on_queued, o);
    if (rc) {
        fn_log(o->host.log, FN_LOG_ERROR, "kafka", "producer queue's wake-up pipe: %s",
               uv_strerror(rc));
        return FN_ERR;
    }
    return FN_OK;
fail:
    rd_kafka_conf_destroy(conf);
    return FN_ERR;
}

rd_kafka_resp_err_t fn_output_send(fn_output_t *o, const char *topic, const void *key,
                                   size_t keylen, const void *payload, size_t len,
                                   fn_out_req_t *req)
{
    /* Outputs of messages waiting for room go first. */
    if (o->wait)
        return RD_KAFKA_RESP_ERR__QUEUE_FULL;
    return produce_once(o, topic, key, keylen, payload, len, NULL, req);
}

size_t fn_output_room(const fn_output_t *o)
{
    if (!o->producer || o->wait || o->refused)
        return 0;
    size_t queued = (size_t)rd_kafka_outq_len(o->producer);
    return queued < o->max_msgs ? o->max_msgs - queued : 0;
}

size_t fn_output_waiting(const fn_output_t *o)
{
    return o->waiting;
}

int fn_output_produce(fn_output_t *o, fn_out_req_t *req, const char *topic, const void *key,
                      size_t keylen, const void *payload, size_t len, const fn_out_dlq_t *dlq)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (dlq) {
        char source[320];
        snprintf(source, sizeof source, "%s/%d/%lld", dlq->topic, dlq->partition,
                 (long long)dlq->offset);
        hdrs = rd_kafka_headers_new(3);
        rd_kafka_header_add(hdrs, "funneld.error", -1, dlq->code, -1);
        rd_kafka_header_add(hdrs, "funneld.reason", -1, dlq->reason, -1);
        rd_kafka_header_add(hdrs, "funneld.source", -1, source, -1);
    }
    rd_kafka_resp_err_t e = send_or_wait(o, topic, key, keylen, payload, len, hdrs, req);
    if (!e)
        return FN_OK;
    fn_output_failed(o, topic);
    fn_log(o->host.log, FN_LOG_ERROR, "kafka", "produce to %s: %s", topic, rd_kafka_err2str(e));
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
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

void fn_output_failed(fn_output_t *o, const char *topic)
{
    for (int i = 0; i < FN_OUT_TOPICS; i++)
        if (strcmp(topic, fn_output_topic(*o->host.cfg, i)) == 0) {
            o->host.stats->produce_failed[i]++;
            return;
        }
}

size_t fn_output_max_bytes(const fn_output_t *o)
{
    char v[32];
    size_t n = sizeof v;
    if (!o->producer || rd_kafka_conf_get(rd_kafka_conf(o->producer), "message.max.bytes", v, &n) !=
                            RD_KAFKA_CONF_OK)
        return 1000000; /* librdkafka's default */
    return (size_t)strtoull(v, NULL, 10);
}

fn_buf_t *fn_output_buf(fn_output_t *o)
{
    return &o->buf;
}

void fn_output_poll(fn_output_t *o)
{
    if (!o->producer)
        return;
    while (rd_kafka_poll(o->producer, 0) > 0) {
    }
    flush_waiting(o);
}

void fn_output_close(fn_output_t *o)
{
    if (!o->producer)
        return;
    flush_waiting(o);
    rd_kafka_resp_err_t e = rd_kafka_flush(o->producer, 10000);
    if (e)
        fn_log(o->host.log, FN_LOG_WARN, "kafka",
               "flush: %s (%d message(s) not delivered; their "
               "inputs were not committed)",
               rd_kafka_err2str(e), rd_kafka_outq_len(o->producer));
    /* Delivery reports for what is left, so that their producers free them (a destroy
     * without them would drop the reports). */
    o->closing = true;
    drop_waiting(o);
    rd_kafka_purge(o->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(o->producer, 1000);
    fn_kafka_bridge_close(&o->bridge);
    rd_kafka_destroy(o->producer);
    o->producer = NULL;
}

void fn_output_free(fn_output_t *o)
{
    if (!o)
        return;
    fn_buf_free(&o->buf);
    free(o);
}
