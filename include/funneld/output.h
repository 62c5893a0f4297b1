/*
 * output.h — the Kafka producer (output/kafka_out.c): transitions, dead letters, triggers and
 * analytics events.
 *
 * A produced message carries its own completion: a request (fn_out_req_t) that the producer
 * places as the first member of its record and that comes back, in the delivery report, to
 * the callback it names. The output knows nothing of who produced what; a request always
 * completes, with FN_OUT_DELIVERED, FN_OUT_PURGED (at shutdown) or FN_OUT_REFUSED (too large,
 * for a request that said it may be given up), and never twice for one produced message.
 */
#ifndef FUNNELD_OUTPUT_H
#define FUNNELD_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/host.h"
typedef struct fn_output fn_output_t;

typedef enum {
    FN_OUT_DELIVERED = 0, /* Kafka acknowledged it */
    /* Not delivered at shutdown: what it came from keeps it (an input not committed, a
     * trigger in its outbox, a bottleneck not marked announced). */
    FN_OUT_PURGED,
    /* Refused for good as too large (only for a request with refusable set): produced again
     * unchanged it would be refused for ever. */
    FN_OUT_REFUSED,
} fn_out_status_t;

typedef struct fn_out_req fn_out_req_t;

/* Called on the loop once per produced message of req; topic is the message's, err the
 * librdkafka error of a purge or refusal (0 when delivered). */
typedef void fn_out_done_cb(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                            rd_kafka_resp_err_t err);

/* A produce request: the first member of the record a producer allocates for what it sends
 * (so the output's opaque is both). The producer owns the record; one request may stand
 * for several produced messages (a consumed message's outputs). */
struct fn_out_req {
    fn_out_done_cb *done;
    void *data;     /* the producer's context */
    bool refusable; /* too large is final (FN_OUT_REFUSED) rather than produced again */
};

/* An output, not started, lent host (copied); NULL when out of memory. Freed by
 * fn_output_free. on_down(data) is called when the producer finds every broker down
 * (readiness). */
fn_output_t *fn_output_new(const fn_host_t *host, void (*on_down)(void *data), void *data);
/* Creates the producer and wakes the loop for its delivery reports. FN_ERR (logged) leaves
 * what was set up for fn_output_close. */
int fn_output_start(fn_output_t *o);
/* Flushes outstanding messages (bounded wait), completes what is left with FN_OUT_PURGED
 * and destroys the producer. Safe after a partial or failed start, and twice. */
void fn_output_close(fn_output_t *o);
/* Frees o (NULL is fine); fn_output_close must have run. */
void fn_output_free(fn_output_t *o);

/* Produces a copy of payload for req (not a consumed message's output). Never waits: when
 * librdkafka's queue is full (or outputs of messages wait for room) it returns
 * RD_KAFKA_RESP_ERR__QUEUE_FULL and the caller keeps what it sends where it came from
 * (a trigger in its outbox, a bottleneck in Redis). Returns 0 or the librdkafka error; req
 * completes only after 0. */
rd_kafka_resp_err_t fn_output_send(fn_output_t *o, const char *topic, const void *key,
                                   size_t keylen, const void *payload, size_t len,
                                   fn_out_req_t *req);

/* Where a dead letter came from and why (its funneld.* headers). */
typedef struct fn_out_dlq {
    const char *code, *reason;
    const char *topic;
    int32_t partition;
    int64_t offset;
} fn_out_dlq_t;

/* Produces payload to topic for a consumed message's req (copying it); with dlq, as a dead
 * letter with its headers. A full queue never blocks: the output waits, in order, and is
 * produced from the loop once there is room. Returns FN_OK or FN_ERR (a permanent error,
 * logged and counted; req never completes for it, so its input is never committed). */
int fn_output_produce(fn_output_t *o, fn_out_req_t *req, const char *topic, const void *key,
                      size_t keylen, const void *payload, size_t len, const fn_out_dlq_t *dlq);
/* How many more messages librdkafka's queue takes now: 0 while outputs of messages wait for
 * room or since a refusal not yet followed by a delivery. Firing and evaluations wait on it. */
size_t fn_output_room(const fn_output_t *o);
/* Outputs of messages waiting for room (funneld_outputs_waiting). */
size_t fn_output_waiting(const fn_output_t *o);
/* The name of output topic i (0 .. FN_OUT_TOPICS - 1) in cfg. */
const char *fn_output_topic(const fn_config_t *cfg, int i);
/* Counts an output to topic that was given up (refused by the producer or the broker) for
 * funneld_produce_failures_total. */
void fn_output_failed(fn_output_t *o, const char *topic);
/* The producer's message.max.bytes: larger messages are refused before they are queued. */
size_t fn_output_max_bytes(const fn_output_t *o);
/* A scratch buffer for building a payload just before it is produced (copied by the
 * produce call, so reused by the next one). Owned by the output. */
fn_buf_t *fn_output_buf(fn_output_t *o);
/* Serves delivery reports, then produces the outputs that wait for room. */
void fn_output_poll(fn_output_t *o);

#endif
