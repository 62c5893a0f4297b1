/*
 * term.h — text from Redis made safe to print on a terminal (funnelctl).
 *
 * Campaigns, channels, sources and event ids arrive in events from outside (UTM values,
 * form fields), so a tool printing them must not let them drive the terminal: no escape
 * sequences, no C1 controls, no bidi overrides that reorder what is shown. Pure functions,
 * no I/O.
 */
#ifndef FUNNELD_TERM_H
#define FUNNELD_TERM_H

#include "funneld/common.h"

/* Appends s[0..len) to out as visible text: valid UTF-8 that prints stays as it is; a
 * backslash becomes "\\", C0 controls, DEL and bytes that are not valid UTF-8 become "\xHH"
 * (one per byte), and C1 controls (U+0080..U+009F), bidi controls and the line and paragraph
 * separators become "\uHHHH". out stays NUL-terminated. FN_ERR only when memory runs out. */
int fn_term_escape(fn_buf_t *out, const char *s, size_t len);

/* Appends JSON text (as jansson writes it) to out with the same characters a terminal acts
 * on but JSON may carry raw (DEL, C1 controls, bidi controls, line and paragraph separators)
 * written as \uHHHH escapes, so the document means the same; a byte that is not valid UTF-8
 * becomes \ufffd. out stays NUL-terminated. Returns FN_ERR only when memory runs out. */
int fn_term_escape_json(fn_buf_t *out, const char *json, size_t len);

#endif
