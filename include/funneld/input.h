/*
 * input.h — the Kafka consumer (input/kafka_in.c): group membership, the partitions it was
 * given, backpressure and offset commits.
 *
 * The input owns its partitions' records (fn_partition_t, msg.h) and hands every consumed
 * message to the callback given at start; it reports assignments and revocations the same
 * way. It commits what the offset tracker (offsets.h) says is done.
 */
#ifndef FUNNELD_INPUT_H
#define FUNNELD_INPUT_H

#include <stdbool.h>

#include <librdkafka/rdkafka.h>

#include "funneld/host.h"
#include "funneld/msg.h"

typedef struct fn_input fn_input_t;

typedef struct fn_input_cbs {
    /* A consumed message of partition p (p NULL when its record could not be allocated):
     * the callee takes rkm and destroys it. */
    void (*on_message)(void *data, fn_partition_t *p, rd_kafka_message_t *rkm);
    /* p was assigned (or revoked): its clock and what is known of its timers start over. */
    void (*on_partition)(void *data, fn_partition_t *p, bool assigned);
    /* Whether the in-flight bound holds consumption; *msgs and *bytes are what is in flight
     * (for the log). */
    bool (*full)(void *data, size_t *msgs, size_t *bytes);
    /* A graceful stop began: what is consumed now is destroyed unprocessed (not committed,
     * so the partition's next owner gets it). */
    bool (*stopping)(void *data);
    void *data;
} fn_input_cbs_t;

/* An input, not started, lent host (copied); NULL when out of memory. Freed by
 * fn_input_free. */
fn_input_t *fn_input_new(const fn_host_t *host);
/* Creates the consumer and subscribes to the input topics; cb (copied) receives what it
 * consumes. FN_ERR (logged) leaves what was set up for fn_input_close. */
int fn_input_start(fn_input_t *in, const fn_input_cbs_t *cb);
/* Commits the done prefixes synchronously and closes the consumer. Safe after a partial or
 * failed start, and twice. */
void fn_input_close(fn_input_t *in);
/* Frees in and its partitions' records (NULL is fine); fn_input_close must have run, and
 * whatever other modules hang on the partitions must be freed first. */
void fn_input_free(fn_input_t *in);

/* Called by the tick: pauses the partitions when the in-flight bound has held consumption
 * for long, resumes them when it no longer does, drains, and commits every
 * auto.commit.interval.ms. */
void fn_input_tick(fn_input_t *in);
/* Consumes whatever is queued, up to the in-flight bound (past it when paused: what a
 * paused consumer still returns must be processed, it is never dropped). */
void fn_input_drain(fn_input_t *in);
/* Pauses or resumes fetching for every assigned partition (backpressure, stopping). */
void fn_input_set_paused(fn_input_t *in, bool paused);
/* Commits each assigned partition's done prefix with its event clock as metadata, when it
 * moved since the last commit; asynchronously unless sync. Called by the tick, which
 * commits every auto.commit.interval.ms, and at revocation and shutdown. */
void fn_input_commit(fn_input_t *in, bool sync);

/* The partitions' records, a list through fn_partition_t.next (the input owns them). */
fn_partition_t *fn_input_partitions(const fn_input_t *in);
/* Since when the in-flight bound holds consumption (wall ms), or 0. */
int64_t fn_input_blocked_since(const fn_input_t *in);
/* A first assignment (possibly empty) arrived: the group took us in. */
bool fn_input_joined(const fn_input_t *in);
/* A broker is up, per librdkafka's latest statistics and errors. */
bool fn_input_kafka_up(const fn_input_t *in);
/* Every broker was found down (by the consumer or the producer): not up until the next
 * statistics say so. */
void fn_input_kafka_down(fn_input_t *in);

#endif
