/*
 * merge.h — identity merges as pure functions (SPEC §10): what one person's two leads become
 * when an identify says they are the same. No I/O, no clock, no allocation.
 *
 * The daemon reads both leads (the kept one, which the identify's lead_id names, and the
 * absorbed one, its previous_id), computes the merged lead here, and Redis applies it
 * (README, "Identity merges": the steps and why each crash point is safe). Keeping the rules
 * here, table-tested (tests/unit/test_merge.c), keeps them out of the Lua that moves data.
 */
#ifndef FUNNELD_MERGE_H
#define FUNNELD_MERGE_H

#include <stdbool.h>
#include <stdint.h>

#include "funneld/common.h"
#include "funneld/event.h"
#include "funneld/rules.h"

/* One funnel's state of a lead, as its hash keeps it (`<f>|x |k |e |b |n |a`). pos.kind is
 * FN_POS_OUTSIDE when the lead has none in the funnel (the other fields are then 0). */
typedef struct fn_merge_funnel {
    fn_pos_t pos;
    int64_t entered_at; /* entered its current stage (converted: converted at; lost: lost at) */
    int64_t began_at;   /* entered the funnel */
    int64_t active_at;  /* last activity in the funnel */
    int64_t touches;
} fn_merge_funnel_t;

/* A touch for attribution; set false when the lead has none. */
typedef struct fn_merge_touch {
    bool set;
    fn_str_t channel, campaign, source;
    int64_t at;
} fn_merge_touch_t;

/* What the merge reads of one lead. Strings are borrowed (the caller's replies). */
typedef struct fn_merge_lead {
    bool has_ts;
    int64_t ts; /* the lead's clock: its latest event time */
    fn_merge_touch_t first, last;
    bool has_value;
    fn_str_t value; /* decimal text, as stored */
    int64_t value_at;
    char consent;        /* '1', '0', or 0 when no consent event was seen */
    bool has_consent_at; /* false for consent stored before its time was kept */
    int64_t consent_at;
    size_t n_funnels; /* the configured funnels, in config order */
    fn_merge_funnel_t funnel[FN_MAX_FUNNELS];
} fn_merge_lead_t;

/* The kept lead's move in one funnel. kind is FN_OUT_TOUCH when its position stays (other
 * fields, touches or times, may still change), FN_OUT_ENTER (it had none, or was lost, and
 * now is active at `to`), FN_OUT_FORWARD (active at `from`, now further at `to`) or
 * FN_OUT_CONVERT (now converted at `to`, from `from` or -1). A lost position the merge
 * gives a lead that had none is no move (no transition event is implied, SPEC §10). */
typedef struct fn_merge_move {
    fn_outcome_kind_t kind;
    int from, to;
    bool either; /* either lead had state in the funnel: a lead_merged event is due */
} fn_merge_move_t;

/* Merges absorbed into kept (both n_funnels long, the same funnels) into out, and writes
 * each funnel's move of the kept lead into moves[0 .. kept->n_funnels). Per funnel: a
 * converted side wins (both: the earlier conversion); else an active side over a lost one;
 * two active sides: the further stage (a tie: the earlier arrival); two lost: the kept one.
 * Entered-funnel time is the earliest, activity the latest, touches add up. First touch
 * is the earliest, last touch the latest, value the latest by event time, each tie going to
 * the kept lead. Consent: the later consent event wins; when a side's time is not known,
 * an opt-out on either side wins. out may not alias kept or absorbed. */
void fn_merge_leads(const fn_merge_lead_t *kept, const fn_merge_lead_t *absorbed,
                    fn_merge_lead_t *out, fn_merge_move_t *moves);

#endif
