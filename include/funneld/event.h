/*
 * event.h — decoding and validating one touchpoint message (SPEC §1).
 *
 * fn_event_decode() makes one JSON parse per message: the usual flat message is read by the
 * tree-free scanner of json_view.h, anything else by jansson. On success the event owns what
 * it was read into (the scanner's buffer, or jansson's document); every const char * in it
 * points there and lives until fn_event_clear(). On rejection it fills a reject code and a
 * human reason for the DLQ.
 */
#ifndef FUNNELD_EVENT_H
#define FUNNELD_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funneld/config.h"
#include "funneld/json_view.h"

typedef enum {
    FN_EV_TOUCHPOINT = 0, /* an ordinary event the funnels see */
    FN_EV_CONSENT,        /* type "consent": records props.marketing */
    FN_EV_ERASE,          /* type "erase": right to erasure */
    FN_EV_IDENTIFY,       /* type "identify": props.previous_id is merged into lead_id */
    FN_EV_IGNORED,        /* valid input that is no touchpoint (a Segment group call): counted */
    FN_EV_COST,           /* type "cost": spend (props.amount) of a channel and campaign */
} fn_event_kind_t;

/* Why a message went to the dead-letter topic. Codes are the funneld.error header values. */
typedef enum {
    FN_REJ_NONE = 0,
    FN_REJ_OVERSIZE,       /* "oversize": larger than max_message_bytes */
    FN_REJ_INVALID_UTF8,   /* "invalid_utf8" */
    FN_REJ_INVALID_JSON,   /* "invalid_json": not parseable, too deep, duplicate keys */
    FN_REJ_NOT_OBJECT,     /* "not_object": valid JSON but not an object */
    FN_REJ_MISSING_FIELD,  /* "missing_field" */
    FN_REJ_WRONG_TYPE,     /* "wrong_type" */
    FN_REJ_INVALID_VALUE,  /* "invalid_value": empty/too long id, NUL byte, bad timestamp text */
    FN_REJ_TS_RANGE,       /* "ts_out_of_range": before 1970, after 9999, or too far ahead */
    FN_REJ_UNKNOWN_FUNNEL, /* "unknown_funnel" */
    FN_REJ_LEAD_COLLISION, /* "lead_collision": two lead ids hash alike (set by the store) */
    FN_REJ_STEP_FAILED,    /* "step_failed": Redis refused the step itself, repeatedly */
    FN_REJ_MERGE_REFUSED,  /* "merge_refused": an identify a guard rail refuses (the rule named) */
    FN_REJ_COUNT
} fn_reject_t;

/* Why valid input was left out: a metric label, funneld_ignored_total{reason}. */
typedef enum {
    FN_IGN_NONE = 0,
    FN_IGN_SEGMENT_GROUP,    /* "segment_group": a user's account, not something they did */
    FN_IGN_SEGMENT_IDENTIFY, /* "segment_identify": traits of one id, nothing to merge */
    FN_IGN_COUNT
} fn_ignore_t;

/* The largest cost one event may record, in hundredths (a cost of ten billion): sums of
 * many stay exact in a double's 53 bits. */
#define FN_EVENT_MAX_COST_CENTS 1000000000000LL

typedef struct fn_str {
    const char *p; /* NUL-terminated, points into what the event owns; NULL when absent */
    size_t len;
} fn_str_t;

typedef struct fn_event {
    fn_event_kind_t kind;
    fn_str_t event_id, lead_id, channel, type, funnel;
    int64_t ts_ms;
    json_t *props; /* read by jansson: borrowed from doc; NULL when absent or scanned */
    const fn_jv_object_t *props_view; /* scanned: the props members, in mem; else NULL */
    fn_str_t campaign, source, medium, url, currency, stage; /* known props when strings */
    fn_str_t previous_id; /* FN_EV_IDENTIFY: the id merged into lead_id */
    bool has_value;
    double value;
    int64_t cost_cents; /* FN_EV_COST: props.amount in hundredths, 0..FN_EVENT_MAX_COST_CENTS */
    bool has_marketing; /* consent events: props.marketing present */
    bool marketing;
    fn_ignore_t ignored; /* FN_EV_IGNORED: why */
    json_t *doc;         /* owned: jansson's document, or NULL when the scanner read the message */
    void *mem;           /* owned: the scanner's strings and props_view, or NULL */
} fn_event_t;

/* Returns the stable code string of a reject reason ("invalid_json", …). */
const char *fn_reject_code(fn_reject_t r);

/* Returns the stable label of an ignore reason ("segment_group", …). */
const char *fn_ignore_code(fn_ignore_t r);

/* Decodes buf[0..len). now_ms is the wall clock for the far-future check. On success returns
 * FN_REJ_NONE and fills ev; otherwise returns the code, writes a reason naming the field
 * into reason (e.g. "lead_id: longer than 128 bytes") and leaves ev empty. */
fn_reject_t fn_event_decode(const char *buf, size_t len, const fn_config_t *cfg, int64_t now_ms,
                            fn_event_t *ev, char *reason, size_t reasonlen);

/* The same as fn_event_decode(), always through a jansson document: the reference the
 * scanner is tested against (tests/unit/test_event.c, tests/fuzz/fuzz_event.c). */
fn_reject_t fn_event_decode_tree(const char *buf, size_t len, const fn_config_t *cfg,
                                 int64_t now_ms, fn_event_t *ev, char *reason, size_t reasonlen);

/* The same for a message in Segment's format (segment.h): the Segment fields are mapped
 * to the touchpoint's, then checked as fn_event_decode() checks them, and a reason names the
 * Segment field. A call that is no touchpoint decodes to kind FN_EV_IGNORED. */
fn_reject_t fn_event_decode_segment(const char *buf, size_t len, const fn_config_t *cfg,
                                    int64_t now_ms, fn_event_t *ev, char *reason, size_t reasonlen);

/* Whether props holds key with a value equal to want (json_equal's sense), however the
 * event was read. */
bool fn_event_prop_equals(const fn_event_t *ev, const char *key, const json_t *want);

/* props' key as text into out (a string as it is, a number as JSON writes it, true or false),
 * cut to outlen - 1 bytes; returns its length, or -1 when key is absent, null or nested. */
int fn_event_prop_text(const fn_event_t *ev, const char *key, char *out, size_t outlen);

/* The number of members of props (0 when absent). */
size_t fn_event_props_size(const fn_event_t *ev);

/* Releases the event's document and zeroes it. Safe on a zeroed event. */
void fn_event_clear(fn_event_t *ev);

#endif
