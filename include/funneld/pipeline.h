/*
 * pipeline.h — what happens to one consumed message between input and output
 * (core/pipeline.c): decode, dead letter or Redis step, then the outputs of the step's
 * result (msg.h). Part of the spine: core/daemon.c hands it the input's messages and the
 * store's step replies.
 */
#ifndef FUNNELD_PIPELINE_H
#define FUNNELD_PIPELINE_H

#include <librdkafka/rdkafka.h>

#include "funneld/msg.h"

/* Takes a consumed message of partition p (and destroys it: what is needed is copied). */
void fn_pipe_on_message(fn_daemon_t *d, fn_partition_t *p, rd_kafka_message_t *rkm);
/* m's step answered (a redisReply, not an error, valid during the call): its outputs are
 * produced, its timers noted, and it is released from the lead's queue. */
void fn_pipe_on_step_reply(fn_daemon_t *d, fn_msg_t *m, const void *redis_reply);
/* m's step cannot be applied (reason says why): releases the lead and dead-letters m. */
void fn_pipe_step_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason);

#endif
