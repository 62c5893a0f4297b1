/*
 * lead_pos.h — a lead's position in one funnel as its hash keeps it (state/lead_pos.c): the
 * field "<funnel>|p" (daemon/state/keys.def, daemon/state/position.lua, which the scripts
 * read and write), or, in a lead written before 2026-12-07, the six fields it replaced.
 */
#ifndef FUNNELD_LEAD_POS_H
#define FUNNELD_LEAD_POS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct fn_lead_pos {
    bool has_touches, has_active, has_stage, has_entered, has_began;
    int64_t touches, active_at; /* touches in the funnel, last activity (ms) */
    char status;                /* FN_STATUS_ACTIVE[0] ...; 0: never entered the funnel */
    int64_t stage, entered_at, began_at;
} fn_lead_pos_t;

/* Funnel funnel's position in a lead hash given as its HGETALL reply h (NULL: none). Returns
 * false, and *pos zeroed, when "|p" is malformed; a lead that never touched the funnel reads
 * as all zero and true. Numbers the old fields hold that do not parse read as absent. */
bool fn_lead_pos_read(const redisReply *h, const char *funnel, fn_lead_pos_t *pos);

/* The longest text of "|p": five int64s, their separators and the status. */
#define FN_LEAD_POS_TEXT (5 * 20 + 6)
/* Writes the text of "|p" for pos and a NUL into out (FN_LEAD_POS_TEXT bytes); returns its
 * length. A position with a status needs has_stage, has_entered and has_began. */
size_t fn_lead_pos_text(const fn_lead_pos_t *pos, char *out);

#endif
