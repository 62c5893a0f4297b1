/*
 * lead_view.h — one lead in one funnel as JSON (state/lead_view.c), from its hash's HGETALL
 * reply: status, stage and its times, touches, value, consent, first and last touch, pending
 * and fired retargeting timers. funnelctl and the live view show the same document.
 */
#ifndef FUNNELD_LEAD_VIEW_H
#define FUNNELD_LEAD_VIEW_H

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "funneld/config.h"

/* The value of field name in an HGETALL reply h (borrowed from h), or NULL. */
const char *fn_lead_view_field(const redisReply *h, const char *name);
/* The lead (lead_id, whose hash h is) in funnel f, a new object the caller owns; NULL when
 * h holds no lead. "merged_from" and "merged_ids" are the caller's to add. */
json_t *fn_lead_view_json(const fn_funnel_t *f, const char *lead_id, const redisReply *h);

#endif
