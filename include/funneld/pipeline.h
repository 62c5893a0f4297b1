/*
 * pipeline.h — what happens to a message between input and output (core/pipeline.c): the
 * spine's half that the daemon hands each consumed message to, and that learns a step's
 * outcome from the store.
 */
#ifndef FUNNELD_PIPELINE_H
#define FUNNELD_PIPELINE_H

#include <librdkafka/rdkafka.h>

#include "funneld/msg.h"

/* Takes a consumed message of partition p (and destroys it: what is needed is copied). */
void fn_pipe_on_message(fn_daemon_t *d, fn_partition_t *p, rd_kafka_message_t *rkm);
/* m's step was applied: redis_reply (a redisReply) is its result, read during the call. */
void fn_pipe_on_step_reply(fn_daemon_t *d, fn_msg_t *m, const void *redis_reply);
/* m's step cannot be applied (reason says why): releases the lead and dead-letters m. */
void fn_pipe_step_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason);

#endif
