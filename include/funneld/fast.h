/*
 * fast.h — the fast path of a touchpoint (state/fast.c): its step decided in C from the lead's
 * hash as read, and written by a small apply (daemon/state/fast.lua) instead of the whole Lua
 * step. It takes the common case only, a touch that moves the lead in no funnel and fires
 * nothing (pruning the seen set as the step does on its sampled calls); anything else (a move,
 * a value, a due timer, a merge mark, attribution, a field it does not read exactly as step.lua
 * does) goes the whole step's way, as does an apply that finds the hash written since it was
 * read. Where it applies, Redis ends up as the whole step would have left it, and the daemon
 * gets the reply the step would have given (tests/integration/test_fast_redis.c holds the two
 * to each other). Pure: no I/O.
 */
#ifndef FUNNELD_FAST_H
#define FUNNELD_FAST_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/hash.h"

/* One event's fast path, as the step would be sent (fn_step_build's arguments). */
typedef struct fn_fast_in {
    const fn_config_t *cfg;
    const fn_event_t *ev;
    fn_hash128_t lead_hash;
    const redisReply *lead; /* the lead hash's HGETALL reply, read before deciding */
    int64_t now_ms;         /* the step's clock (step.lua's ARGV now) */
    int64_t clock_ms;       /* the partition's event time at ev (fn_step_build) */
    const char *topic;      /* where ev was consumed, for its timers' zset */
    int32_t partition;
} fn_fast_in_t;

/* What the step would have answered: its time, the lead's value, the earliest due time it
 * armed (0: none). */
typedef struct fn_fast_out {
    int64_t at;
    char value[48]; /* the stored value's text, "" for none */
    int64_t armed_due;
} fn_fast_out_t;

/* Whether ev may take the fast path before its lead is read: a touchpoint without a value,
 * whose funnels keep no touches for attribution, with a clock (now_ms) past its first second. */
bool fn_fast_candidate(const fn_config_t *cfg, const fn_event_t *ev, int64_t now_ms);

/* Decides in's step from the lead as read. True, with the apply call (FCALL of fn_name,
 * fast.lua) in cmd and the step's answer in out, when the fast path takes it; false when
 * only the whole step can (cmd is then undefined). */
bool fn_fast_build(const fn_fast_in_t *in, const char *fn_name, fn_buf_t *cmd, fn_fast_out_t *out);

/* Room for the step's reply of a fast path that applied. */
typedef struct fn_fast_reply {
    redisReply top, el[7];
    redisReply *els[7];
    char ok[3], at[FN_I64_TEXT], value[48], due[FN_I64_TEXT], none[1];
} fn_fast_reply_t;

/* The step's reply for out, shaped as step.lua's (fn_step_parse reads it), built in room
 * without allocating: it lives as long as room, and is never given to freeReplyObject. */
const redisReply *fn_fast_reply(const fn_fast_out_t *out, fn_fast_reply_t *room);

#endif
