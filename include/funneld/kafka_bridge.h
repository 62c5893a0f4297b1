/*
 * kafka_bridge.h — wakes the libuv loop when a librdkafka queue gets something to serve.
 *
 * librdkafka writes a byte to a pipe when the queue goes from empty to non-empty
 * (rd_kafka_queue_io_event_enable) and a uv_poll watches the pipe's read end; its callback
 * empties the pipe and calls the owner's callback, which must then serve the whole queue
 * (the next byte only comes at the next empty-to-non-empty transition). The consumer
 * (input/kafka_in.c) and the producer (output/kafka_out.c) each own one.
 *
 * Life: fn_kafka_bridge_init, then fn_kafka_bridge_start, then fn_kafka_bridge_close. Close
 * is safe after any of them, a start that failed half-way included: it releases exactly
 * what was set up. The bridge's memory must stay valid until the loop has run the poll
 * handle's close callback (the daemon's context outlives uv_run). A closed bridge is not
 * started again.
 */
#ifndef FUNNELD_KAFKA_BRIDGE_H
#define FUNNELD_KAFKA_BRIDGE_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>
#include <uv.h>

/* Called on the loop when the queue has become non-empty. */
typedef void fn_kafka_bridge_cb(void *data);

typedef struct fn_kafka_bridge {
    rd_kafka_queue_t *queue; /* owned from fn_kafka_bridge_start on; NULL before and after */
    int fds[2];              /* the pipe (read, write end); -1 when not open */
    uv_poll_t poll;          /* on fds[0]; initialised only while started */
    bool started;            /* poll is initialised: close must uv_close it */
    fn_kafka_bridge_cb *cb;
    void *data;
} fn_kafka_bridge_t;

/* Not started, nothing open: what close expects of a bridge that never started. */
void fn_kafka_bridge_init(fn_kafka_bridge_t *b);
/* Takes q (released by close, even if this fails) and calls cb(data) on loop whenever it
 * becomes non-empty. 0, or a negative errno / libuv error code with nothing left watching. */
int fn_kafka_bridge_start(fn_kafka_bridge_t *b, uv_loop_t *loop, rd_kafka_queue_t *q,
                          fn_kafka_bridge_cb *cb, void *data);
/* Stops librdkafka writing, closes the poll handle (if it was initialised) and the pipe's
 * open ends, releases the queue. Call before rd_kafka_destroy. Idempotent. */
void fn_kafka_bridge_close(fn_kafka_bridge_t *b);

#endif
