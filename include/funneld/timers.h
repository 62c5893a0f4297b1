/*
 * timers.h — retargeting timers and the delivery of the triggers they fire
 * (timers/timers.c).
 *
 * The timers live in Redis (fire.lua, timer.lua); this module decides when to run fire.lua
 * for which zset, produces what fired and clears each trigger's outbox entry once Kafka
 * acknowledged it. It sends through the store (store.h) and produces through the output
 * (output.h); the spine (core/daemon.c, core/pipeline.c) calls it, nobody else.
 *
 * What it knows of each input partition's zsets (earliest due time, a call outstanding) is
 * its own: fn_partition_t carries an opaque pointer to it, allocated and freed here.
 */
#ifndef FUNNELD_TIMERS_H
#define FUNNELD_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funneld/input.h"
#include "funneld/msg.h"
#include "funneld/output.h"
#include "funneld/store.h"

typedef struct fn_timers fn_timers_t;

/* Creates the timers on the host's config, log and counters (host is copied), sending through
 * store, producing through out and reading input's partitions. NULL on OOM. Freed by
 * fn_timers_free. */
fn_timers_t *fn_timers_new(const fn_host_t *host, fn_store_t *store, fn_output_t *out,
                           fn_input_t *input);
/* Marks t started: the tick fires from now on. FN_OK. */
int fn_timers_start(fn_timers_t *t);
/* Forgets the triggers delivered while Redis was away (not cleared: they are delivered again,
 * with their ids, after their leases); those Kafka still holds are freed with the producer's
 * purged delivery reports. Safe before or without a start, and twice. */
void fn_timers_close(fn_timers_t *t);
/* Closes t if needed and frees it with what it knows of each partition. NULL is fine. */
void fn_timers_free(fn_timers_t *t);

/* Called by the tick: fires what is due by each assigned partition's clock, renews held
 * leases and sweeps expired ones. */
void fn_timers_tick(fn_timers_t *t);
/* Produces the trigger of an outbox entry of shard (entry NULL: the reply was not a string,
 * counted and logged as an error). */
void fn_timers_emit(fn_timers_t *t, unsigned shard, const char *entry, size_t len);
/* A step armed a timer due at `due` in p's zset of shard. */
void fn_timers_armed(fn_timers_t *t, fn_partition_t *p, unsigned shard, int64_t due);
/* p was assigned or revoked: its clock and what is known of its timers start over. */
void fn_timers_reset(fn_timers_t *t, fn_partition_t *p);
/* Redis is ready again: renews the leases of the triggers this process holds, clears the
 * outbox entries of triggers delivered while it was away, and forgets every known due time
 * (a step whose reply was lost may have armed a timer the daemon never heard of). */
void fn_timers_on_ready(fn_timers_t *t);
/* True when no timer request or trigger delivery is outstanding. */
bool fn_timers_idle(const fn_timers_t *t);
/* Triggers produced and not yet acknowledged (for /metrics). */
size_t fn_timers_in_flight(const fn_timers_t *t);

#endif
