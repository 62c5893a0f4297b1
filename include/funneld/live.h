/*
 * live.h — the live view (live/live.c, SPEC §12): the page at GET /, its data at
 * GET /api/funnels, /api/funnels/NAME and /api/funnels/NAME/leads/ID, and the server-sent
 * event stream GET /api/stream, served through the HTTP endpoint's routes (http.h).
 *
 * Figures are read from Redis, so they are the whole group's whichever daemon serves them;
 * the feed comes from the output topics (live_feed.h); each daemon publishes its input rate
 * and lag to Redis for the group's throughput. Nothing here is on the event path.
 */
#ifndef FUNNELD_LIVE_H
#define FUNNELD_LIVE_H

#include "funneld/host.h"
#include "funneld/http.h"
#include "funneld/input.h"
#include "funneld/store.h"

typedef struct fn_live fn_live_t;

/* The live view on the host's loop, config and counters, reading through store, the daemon's
 * partitions from input, serving through http. NULL when out of memory. */
fn_live_t *fn_live_new(const fn_host_t *host, fn_store_t *store, fn_input_t *input,
                       fn_http_t *http);
/* Registers the routes (call before fn_http_start), starts the feed and the refresh timer.
 * FN_ERR (logged) leaves what was set up for fn_live_close. */
int fn_live_start(fn_live_t *l);
/* Ends the streams, answers waiting requests 503, stops the timer and the feed. Safe
 * unstarted and twice. */
void fn_live_close(fn_live_t *l);
/* Frees l (NULL is fine) after fn_live_close, once the loop closed its handles. */
void fn_live_free(fn_live_t *l);

#endif
