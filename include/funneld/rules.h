/*
 * rules.h — the funnel rules of SPEC §3 as pure functions: no I/O, no clock, no allocation.
 *
 * The lead's current position lives in Redis, so the daemon cannot know it when it decides.
 * Instead the rules compute a *plan*: the outcome of this event for every position the lead
 * could be in (outside the funnel, at each stage, converted, lost). The Redis Lua step reads
 * the real position and applies the plan's entry for it, atomically. All of the decision
 * logic therefore lives here, in C, tested table by table; the Lua step only looks it up.
 */
#ifndef FUNNELD_RULES_H
#define FUNNELD_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"

typedef enum {
    FN_POS_OUTSIDE = 0, /* the lead has never entered this funnel */
    FN_POS_ACTIVE,      /* at stage `stage` */
    FN_POS_CONVERTED,   /* terminal, at the conversion stage */
    FN_POS_LOST,        /* terminal; `stage` is the stage it was lost from */
} fn_pos_kind_t;

typedef struct fn_pos {
    fn_pos_kind_t kind;
    int stage;
} fn_pos_t;

/* What one event means for one funnel, before knowing the lead's position. */
typedef struct fn_match {
    int stage; /* highest stage whose rules match, or -1 */
    bool lost; /* the funnel's "lost" rules match */
} fn_match_t;

typedef enum {
    FN_OUT_TOUCH = 0, /* activity only; position unchanged */
    FN_OUT_ENTER,     /* from outside to `to` (from is null); stages before `to` are skipped */
    FN_OUT_FORWARD,   /* from `from` to `to` > from; stages strictly between are skipped */
    FN_OUT_BACK,      /* from `from` to `to` < from (allow_regress) */
    FN_OUT_CONVERT,   /* reached the conversion stage `to` (from outside or from `from`) */
    FN_OUT_LOST,      /* from stage `from` to the terminal lost state */
} fn_outcome_kind_t;

typedef struct fn_outcome {
    fn_outcome_kind_t kind;
    int from; /* -1 when the lead was outside */
    int to;   /* stage index; -1 for TOUCH and LOST */
} fn_outcome_t;

/* True when every field m names equals the event's. */
bool fn_rules_matcher_matches(const fn_matcher_t *m, const fn_event_t *ev);

/* Matches ev against every stage and the lost rules of f. */
fn_match_t fn_rules_match(const fn_funnel_t *f, const fn_event_t *ev);

/* The state machine: the outcome of match m for a lead at position pos in funnel f. */
fn_outcome_t fn_rules_step(const fn_funnel_t *f, fn_pos_t pos, fn_match_t m);

/* Number of positions a plan covers: outside, n stages, converted, lost. */
static inline size_t fn_rules_plan_slots(const fn_funnel_t *f)
{
    return f->n_stages + 3;
}

/* Position index used by plans and by the Lua step: outside 0, stage s → 1+s,
 * converted n+1, lost n+2. */
int fn_rules_pos_index(const fn_funnel_t *f, fn_pos_t pos);

/* Writes the plan for match m into out: two characters per position slot, a kind letter
 * ('T' touch, 'E' enter, 'F' forward, 'B' back, 'C' convert, 'L' lost) and the target stage
 * as '0' + index ('0' when there is none), then a NUL. out needs 2 * slots + 1 bytes.
 * Returns the length (0 and an empty string when m matches nothing: every slot a touch). */
size_t fn_rules_plan(const fn_funnel_t *f, fn_match_t m, char *out, size_t outlen);

/* Longest timer spec fn_rules_timer_spec writes (plus its NUL). */
#define FN_TIMER_SPEC_MAX (FN_MAX_STAGES * 21 + FN_MAX_RULES * (64 + 24) + 1)

/* Writes what event ev means for f's retargeting timers, for the Lua step: "" when f has no
 * stage with stale_after and ev arms or cancels none of f's rules; else the stale_after of
 * every stage ("<ms>,<ms>,...", so the step can re-arm the stalled timer of whatever stage the
 * lead ends up in), then "|A<within_ms>:<name>" for each rule ev arms and "|U:<name>" for each
 * rule ev cancels (an event that matches both after and unless cancels: the goal was met).
 * Returns the length. out needs FN_TIMER_SPEC_MAX bytes. */
size_t fn_rules_timer_spec(const fn_funnel_t *f, const fn_event_t *ev, char *out, size_t outlen);

#endif
