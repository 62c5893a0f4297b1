/*
 * emit.h — output events as JSON text (SPEC §4). Pure functions: the caller passes the
 * emission time, so tests get byte-exact output.
 *
 * Ids are a deterministic function of the cause (type, funnel, lead id, cause event id),
 * so processing the same input again yields the same id and consumers can de-duplicate.
 */
#ifndef FUNNELD_EMIT_H
#define FUNNELD_EMIT_H

#include "funneld/common.h"
#include "funneld/event.h"
#include "funneld/rules.h"
#include "funneld/step.h"
#include "funneld/trigger.h"

/* Computes the id of an output caused by ev: hash of (type, funnel, lead id, event id). */
void fn_emit_id(const char *type, const char *funnel, const fn_event_t *ev, char out[33]);

/* Writes a transitions-topic event (stage_changed, converted or lost) for t into out
 * (reset first). */
int fn_emit_transition(fn_buf_t *out, const fn_event_t *ev, const fn_step_result_t *r,
                       const fn_step_transition_t *t, int64_t emitted_at);

/* Writes a lead_erased event for funnel f into out (reset first). */
int fn_emit_erased(fn_buf_t *out, const fn_event_t *ev, const fn_funnel_t *f, int64_t at,
                   int64_t emitted_at);

/* Writes a lead_merged event (SPEC §10) for funnel f into out (reset first): ev's lead_id
 * is the kept lead's, merged_id the id merged into it, from and to the kept lead's position
 * in f before and after. */
int fn_emit_merged(fn_buf_t *out, const fn_event_t *ev, const fn_funnel_t *f, fn_str_t merged_id,
                   fn_pos_t from, fn_pos_t to, int64_t at, int64_t emitted_at);

/* Writes a retargeting-topic event (type "retarget") for trigger t into out (reset first).
 * f is t's funnel in the running config, or NULL when it is no longer configured (the stage
 * is then null). "at" is the due time: the moment the lead became a retargeting target. */
int fn_emit_retarget(fn_buf_t *out, const fn_trigger_t *t, const fn_funnel_t *f,
                     int64_t emitted_at);

#endif
