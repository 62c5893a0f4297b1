/*
 * pipeline.h — what happens to one consumed message between input and output
 * (core/pipeline.c): decode, dead letter or Redis step, then the outputs of the step's
 * result (msg.h). Part of the spine: core/daemon.c hands it the input's messages and the
 * store's step replies.
 */
#ifndef FUNNELD_PIPELINE_H
#define FUNNELD_PIPELINE_H

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "funneld/msg.h"

/* Takes a consumed message of partition p (and destroys it: what is needed is copied). */
void fn_pipe_on_message(fn_daemon_t *d, fn_partition_t *p, rd_kafka_message_t *rkm);
/* m's step answered (a redisReply, not an error, valid during the call): its outputs are
 * produced, its timers noted, and it is released from the lead's queue. */
void fn_pipe_on_step_reply(fn_daemon_t *d, fn_msg_t *m, const void *redis_reply);
/* m's step cannot be applied (reason says why): releases the lead and dead-letters m. */
void fn_pipe_step_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason);

/* m is through Redis: releases its lead (the lead's next event goes) and lets its
 * partition's held messages go when m was the identify they waited for. */
void fn_pipe_release(fn_daemon_t *d, fn_msg_t *m);
/* Releases m's lead and dead-letters m with code and reason. */
void fn_pipe_reject(fn_daemon_t *d, fn_msg_t *m, fn_reject_t code, const char *reason);
/* Timers of a lead of shard that were due fired first in a step (fired: the outbox entries,
 * may be NULL); their triggers are in the outbox, delivered on their own (a lost one is
 * handed out again after its lease). */
void fn_pipe_emit_fired(fn_daemon_t *d, unsigned shard, const redisReply *fired);
/* Produces m's n outputs (payloads, each NUL-terminated, on the transitions topic keyed by
 * m's lead id; n_transitions of them stage changes) and releases m's lead; m is done once
 * they are acknowledged, and its stored result then cleared. */
void fn_pipe_emit_all(fn_daemon_t *d, fn_msg_t *m, const char *payloads, size_t n,
                      size_t n_transitions);

#endif
