/*
 * json_view.h — a strict scanner for the usual shape of a touchpoint message: one flat JSON
 * object whose values are scalars, except "props", itself an object of scalars.
 *
 * It builds no tree and allocates nothing: strings are decoded into a caller's buffer and the
 * members are listed in two fixed tables. It accepts only documents that jansson, as
 * daemon/decode/event.c calls it, would accept and read the same way; anything else (nesting,
 * escapes in keys, \u0000, surrogate escapes, long numbers, more than FN_JV_MAX_MEMBERS
 * members, any syntax error) makes it decline, and the caller parses with jansson instead, so
 * every rejection keeps jansson's reason. tests/unit/test_json_view.c and tests/fuzz/fuzz_event.c
 * hold the two to the same results.
 */
#ifndef FUNNELD_JSON_VIEW_H
#define FUNNELD_JSON_VIEW_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    FN_JV_STRING = 0,
    FN_JV_INTEGER,
    FN_JV_REAL,
    FN_JV_TRUE,
    FN_JV_FALSE,
    FN_JV_NULL,
    FN_JV_OBJECT, /* only the top-level "props" */
    FN_JV_ARRAY,  /* never from the scanner; event.c's name for a jansson array */
} fn_jv_type_t;

typedef struct fn_jv {
    fn_jv_type_t type;
    const char *s; /* FN_JV_STRING: decoded, NUL-terminated, in the caller's buffer */
    size_t len;
    long long i; /* FN_JV_INTEGER */
    double d;    /* FN_JV_REAL */
} fn_jv_t;

#define FN_JV_MAX_MEMBERS 24

typedef struct fn_jv_member {
    const char *key; /* in the caller's buffer, NUL-terminated, no escapes */
    size_t klen;
    fn_jv_t v;
} fn_jv_member_t;

typedef struct fn_jv_object {
    size_t n;
    fn_jv_member_t m[FN_JV_MAX_MEMBERS];
} fn_jv_object_t;

/* Scans buf[0..len) (valid UTF-8, checked by the caller) into top and, when top has a "props"
 * object, props (else props->n is 0). out must hold len + 1 bytes; keys and strings live there
 * afterwards. Returns false when the document is not of the shape above (or not valid JSON):
 * nothing in top, props or out is then meaningful. */
bool fn_jv_scan(const char *buf, size_t len, char *out, fn_jv_object_t *top, fn_jv_object_t *props);

/* The member named key (klen bytes), or NULL. */
const fn_jv_t *fn_jv_get(const fn_jv_object_t *o, const char *key, size_t klen);

#endif
