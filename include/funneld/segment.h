/*
 * segment.h — Segment-spec input (track, page, screen, identify, alias, group calls, as
 * Segment, RudderStack, Jitsu and Snowplow write them to Kafka) read as funneld touchpoints.
 *
 * A Segment message becomes funneld's own touchpoint document, which then goes through the
 * very checks a native message does (event.h), so both formats accept, reject and mean the
 * same. The mapping is README's table ("Segment input"); it is pure, table-tested in
 * tests/unit/test_segment.c.
 */
#ifndef FUNNELD_SEGMENT_H
#define FUNNELD_SEGMENT_H

#include <jansson.h>
#include <stddef.h>

#include "funneld/config.h"
#include "funneld/event.h"

#define FN_SEGMENT_MAX_SOURCES 12

/* One translation. native is owned (a new reference) and NULL when the call was no
 * touchpoint (ignored names why) or was refused. sources name, for each touchpoint field
 * taken from the Segment message, the field it came from, so a refusal can name the field
 * the producer wrote. */
typedef struct fn_segment_source {
    const char *native, *segment; /* "lead_id", "userId"; props by their key: "campaign" */
} fn_segment_source_t;

typedef struct fn_segment {
    json_t *native;
    fn_ignore_t ignored; /* a call funnels do not see, or FN_IGN_NONE */
    fn_segment_source_t sources[FN_SEGMENT_MAX_SOURCES];
    size_t n_sources;
} fn_segment_t;

/* Translates the Segment message seg (an object, borrowed) with cfg's segment options into
 * out. Returns FN_REJ_NONE (out->native or out->ignored set), or a reject code with a reason
 * naming the Segment field. The native document's values may share seg's (reference counts),
 * so seg may be released at once. */
fn_reject_t fn_segment_translate(json_t *seg, const fn_config_t *cfg, fn_segment_t *out,
                                 char *reason, size_t reasonlen);

/* Rewrites a reason the touchpoint checks gave about the native document ("lead_id: longer
 * than 128 bytes") to name the Segment field it came from ("userId (lead_id): longer than
 * 128 bytes"). Reasons about other fields are left as they are. */
void fn_segment_name_field(const fn_segment_t *s, char *reason, size_t reasonlen);

/* Releases the translation's document and zeroes it. */
void fn_segment_clear(fn_segment_t *s);

#endif
