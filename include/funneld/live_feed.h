/*
 * live_feed.h — the live view's feed (live/feed.c): what every daemon of the group emits on
 * the transitions, retargeting and bottlenecks topics, read back from those topics' end.
 *
 * It is a consumer of its own, in a consumer group of its own (the daemon's group id with
 * ".live.<host>.<pid>.<random>" after it) that never commits, so each daemon's live view
 * sees every output of the group without taking part in its input's assignment.
 */
#ifndef FUNNELD_LIVE_FEED_H
#define FUNNELD_LIVE_FEED_H

#include <stdbool.h>
#include <stddef.h>

#include "funneld/host.h"

typedef enum { FN_FEED_TRANSITION, FN_FEED_RETARGETING, FN_FEED_BOTTLENECK } fn_feed_kind_t;

typedef struct fn_live_feed fn_live_feed_t;
/* One output read back: its payload, valid during the call. */
typedef void fn_live_feed_cb(void *data, fn_feed_kind_t kind, const char *payload, size_t len);

/* The feed on the host's loop and config, not started. NULL when out of memory. */
fn_live_feed_t *fn_live_feed_new(const fn_host_t *host, fn_live_feed_cb *cb, void *data);
/* Starts reading from the topics' end (nothing blocks: the group assigns them later). FN_ERR
 * (logged) leaves what was set up for fn_live_feed_close. */
int fn_live_feed_start(fn_live_feed_t *f);
/* Pauses reading (nobody watches: nothing is fetched, what was is dropped), or resumes it
 * from the topics' end. Neither blocks. */
void fn_live_feed_pause(fn_live_feed_t *f, bool paused);
/* Leaves the group and stops; blocks up to librdkafka's close. Safe unstarted and twice. */
void fn_live_feed_close(fn_live_feed_t *f);
/* Frees f (NULL is fine) after fn_live_feed_close, once the loop closed its handles. */
void fn_live_feed_free(fn_live_feed_t *f);

#endif
