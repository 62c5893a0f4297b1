/*
 * trigger.h — retargeting triggers seen from C, as pure functions: the clock a partition's
 * timers fire by (SPEC §5), and the outbox entries daemon/timers/fire.lua hands out.
 */
#ifndef FUNNELD_TRIGGER_H
#define FUNNELD_TRIGGER_H

#include <jansson.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"

/* "Now" for the timers of one partition.
 * event clock: the largest event time among the partition's finished events (its done
 *   prefix), 0 before any; a partition's timers follow its own events only, so a replay gives
 *   the same triggers whatever the speed or the progress of other partitions.
 * wall clock: the wall time once the partition is caught up (at its end, nothing in flight);
 *   while it is behind, never later than its event clock, so a backlog never fires a timer
 *   that an event still waiting in that backlog would have cancelled. */
int64_t fn_trigger_clock(fn_clock_t clock, int64_t wall_ms, int64_t maxts_done, bool caught_up);

/* One fired trigger, read from an outbox entry. Strings point into `doc`, which the caller
 * frees with json_decref once done with the trigger. */
typedef struct fn_trigger {
    json_t *doc;
    fn_str_t key; /* outbox entry key: deleted once Kafka acknowledged the trigger */
    fn_str_t lead_id, funnel, reason, cause;
    fn_str_t last_channel, last_type;
    fn_str_t value; /* decimal text, or empty */
    int stage;      /* -1: not in a stage */
    int64_t due, last_activity, last_at;
} fn_trigger_t;

/* Parses an outbox entry. Returns FN_OK, or FN_ERR with the reason in err. */
int fn_trigger_parse(const char *text, size_t len, fn_trigger_t *t, char *err, size_t errlen);

/* The trigger's id: hash of ("retarget", funnel, lead id, reason, cause event id) — the
 * cause names one arming of one timer, so a trigger handed out again keeps its id. */
void fn_trigger_id(const fn_trigger_t *t, char out[33]);

/* fire.lua's source, embedded at build time. */
extern const char fn_lua_fire_src[];

#endif
