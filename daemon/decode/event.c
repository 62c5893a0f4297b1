/*
 * event.c — decoding and validating one touchpoint message (SPEC §1, event.h).
 *
 * Order of checks: size, then strict UTF-8 over the raw bytes (so bad text gets its own code
 * and a byte offset rather than a parser message), then exactly one parse, then the fields in
 * a fixed order (event_id, lead_id, ts, channel, type, funnel, props), so the first problem
 * found is always the one reported.
 *
 * The parse is the tree-free scanner of json_view.h for the usual flat message, and jansson
 * for everything else, including every message that is not valid JSON (the scanner declines
 * those, so jansson's error text is the reason). The field checks read both through one
 * fn_jv_t view, so the two give the same event and the same reasons; tests hold them to it.
 *
 * What jansson 2.14 does for us, and we rely on:
 *  - nesting deeper than 2048 arrays/objects fails with "maximum parsing depth reached"; its
 *    recursion is bounded by that, so no depth pre-scan is needed (10000-deep input is a plain
 *    invalid_json, tested);
 *  - integers outside long long ("too big integer") and reals that overflow a double ("real
 *    number overflow") fail the parse, so they are invalid_json, not ts_out_of_range; every
 *    integer that does parse is range-checked against 1970..9999 here;
 *  - "\uD800"-style lone surrogate escapes and NUL in object keys fail the parse.
 *
 * Unknown top-level fields and unknown props are accepted and kept in the document: producers
 * may add fields before funneld knows them (forward compatibility), and free props feed the
 * funnels' matchers.
 *
 * Reasons travel in a Kafka header and a log line: they are built in a stack buffer, quote
 * message text only as a short excerpt escaped like a JSON string, and are copied out as
 * printable ASCII, truncated to the caller's buffer between escapes, never inside one. No
 * allocation here besides the scanner's one block or jansson's parse.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/event.h"
#include "funneld/segment.h"

#define MIN_TS_MS 0LL               /* 1970-01-01T00:00:00.000Z */
#define MAX_TS_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define MAX_TS_TEXT 64              /* longer ts strings are not timestamps */
#define MAX_NAME_LEN 64             /* channel, type */
#define MAX_PROP_LEN 256            /* known string props */
#define MAX_ABS_VALUE 1e15          /* money: beyond this doubles stop counting cents */
#define EXCERPT_BYTES 40            /* message bytes a reason may quote */

static const char *const codes[FN_REJ_COUNT] = {
    "none",           "oversize",    "invalid_utf8",  "invalid_json",    "not_object",
    "missing_field",  "wrong_type",  "invalid_value", "ts_out_of_range", "unknown_funnel",
    "lead_collision", "step_failed", "merge_refused"};

const char *fn_reject_code(fn_reject_t r)
{
    return (unsigned)r < FN_REJ_COUNT ? codes[r] : "unknown";
}

static const char *const ignore_codes[FN_IGN_COUNT] = {"none", "segment_group", "segment_identify"};

const char *fn_ignore_code(fn_ignore_t r)
{
    return (unsigned)r < FN_IGN_COUNT ? ignore_codes[r] : "unknown";
}

/* Decodes the UTF-8 character at s (at most n bytes) into *cp; returns its length, or 0 when
 * the bytes there are not a whole, well-formed character. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned long *cp)
{
    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xF4)
        return 0;
    unsigned long v = len == 1 ? s[0] : s[0] & (0x3F >> (len - 1));
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[k] & 0x3F);
    }
    *cp = v;
    return len;
}

/* Writes one character as ASCII: itself when printable, else a JSON-style \uXXXX escape (a
 * surrogate pair above U+FFFF). Returns the bytes written (at most 12), or 0 when it would not
 * fit whole in out[0..room). quote also escapes '"' and '\\', for quoted excerpts. */
static size_t put_char(char *out, size_t room, unsigned long cp, bool quote)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[12];
    size_t n = 0;
    if (cp >= 0x20 && cp < 0x7f) {
        if (quote && (cp == '"' || cp == '\\'))
            tmp[n++] = '\\';
        tmp[n++] = (char)cp;
    } else {
        unsigned long units[2] = {cp, 0};
        size_t nu = 1;
        if (cp > 0xFFFF) {
            units[0] = 0xD800 + ((cp - 0x10000) >> 10);
            units[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            nu = 2;
        }
        for (size_t u = 0; u < nu; u++) {
            tmp[n++] = '\\', tmp[n++] = 'u';
            for (int sh = 12; sh >= 0; sh -= 4)
                tmp[n++] = hex[(units[u] >> sh) & 15];
        }
    }
    if (n > room)
        return 0;
    memcpy(out, tmp, n);
    return n;
}

/* Copies src into dst (dstlen > 0) as printable ASCII, the safest thing to put in a Kafka
 * header and a log line: control bytes and non-ASCII characters (BOMs, bidi overrides) become
 * \uXXXX escapes, bytes that are not whole UTF-8 become '?', and the copy stops before an
 * escape that would not fit whole. */
static void copy_safe(char *dst, size_t dstlen, const char *src)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0, left = strlen(src);
    while (left) {
        /* An escape already in src (from excerpt() or jansson's text) is cut whole or not at
         * all, so a truncated reason never ends in half an escape. */
        if (s[0] == '\\' && left >= 2 && s[1] >= 0x20 && s[1] < 0x7f) {
            size_t n = 2;
            if (s[1] == 'u') {
                /* "\u" without four hex digits is message text the parser quoted (a cut
                 * escape, "\u00"): its backslash is written as \u005c, so every "\u" in a
                 * reason starts a whole escape. */
                if (left < 6 || strspn((const char *)s + 2, "0123456789abcdefABCDEF") < 4) {
                    if (o + 6 > dstlen - 1)
                        break;
                    memcpy(dst + o, "\\u005c", 6);
                    o += 6, s++, left--;
                    continue;
                }
                n = 6;
            }
            if (o + n > dstlen - 1)
                break;
            memcpy(dst + o, s, n);
            o += n, s += n, left -= n;
            continue;
        }
        unsigned long cp = '?';
        size_t n = utf8_decode(s, left, &cp);
        size_t w = put_char(dst + o, dstlen - 1 - o, n ? cp : '?', false);
        if (w == 0)
            break;
        o += w;
        s += n ? n : 1;
        left -= n ? n : 1;
    }
    dst[o] = '\0';
}

static fn_reject_t fail(fn_reject_t code, char *reason, size_t rl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static fn_reject_t fail(fn_reject_t code, char *reason, size_t rl, const char *fmt, ...)
{
    if (!reason || rl == 0)
        return code;
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    copy_safe(reason, rl, tmp);
    return code;
}

/* Writes a quoted excerpt of the first EXCERPT_BYTES bytes of s (NUL bytes allowed) into out,
 * escaped like a JSON string literal so the reason stays ASCII; "..." marks a cut. out must
 * hold EXCERPT_SIZE bytes: each input byte becomes at most 6 output bytes. */
#define EXCERPT_SIZE (6 * EXCERPT_BYTES + 8)
static const char *excerpt(const char *s, size_t len, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, i = 0;
    out[o++] = '"';
    while (i < len) {
        unsigned long cp = '?';
        size_t n = utf8_decode(u + i, len - i, &cp);
        if (i + (n ? n : 1) > EXCERPT_BYTES)
            break;
        o += put_char(out + o, EXCERPT_SIZE - 5 - o, n ? cp : '?', true);
        i += n ? n : 1;
    }
    out[o++] = '"';
    if (i < len)
        memcpy(out + o, "...", 3), o += 3;
    out[o] = '\0';
    return out;
}

/* Returns the offset of the first byte that is not strict UTF-8 (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF, no truncated sequence), or len when all is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* a message is mostly ASCII: eight bytes at a time while no top bit is set */
        uint64_t v;
        while (len - i >= 8 && (memcpy(&v, s + i, 8), !(v & 0x8080808080808080u)))
            i += 8;
        if (i == len)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* U+D800..U+DFFF surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return i; /* continuation byte, C0/C1 overlong lead, or F5..FF */
        }
        if (len - i <= n)
            return i; /* truncated at the end of the message */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return i;
        i += n + 1;
    }
    return len;
}

/* Where the fields are read from: the scanner's table or a jansson object (event.h). Every
 * check below sees a member as an fn_jv_t either way, so both give the same results and
 * reasons. */
typedef struct src {
    const fn_jv_object_t *view; /* scanned; else obj */
    json_t *obj;
} src_t;

/* A jansson value as the scanner would have read it; strings point into the document. */
static void jv_from_json(json_t *v, fn_jv_t *out)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        out->type = FN_JV_OBJECT;
        break;
    case JSON_ARRAY:
        out->type = FN_JV_ARRAY;
        break;
    case JSON_STRING:
        out->type = FN_JV_STRING;
        out->s = json_string_value(v);
        out->len = json_string_length(v);
        break;
    case JSON_INTEGER:
        out->type = FN_JV_INTEGER;
        out->i = (long long)json_integer_value(v);
        break;
    case JSON_REAL:
        out->type = FN_JV_REAL;
        out->d = json_real_value(v);
        break;
    case JSON_TRUE:
        out->type = FN_JV_TRUE;
        break;
    case JSON_FALSE:
        out->type = FN_JV_FALSE;
        break;
    case JSON_NULL:
        out->type = FN_JV_NULL;
        break;
    }
}

/* The member key of o, or NULL; tmp holds it when o is a jansson object. */
static const fn_jv_t *src_get(src_t o, const char *key, fn_jv_t *tmp)
{
    if (o.view)
        return fn_jv_get(o.view, key, strlen(key));
    json_t *v = o.obj ? json_object_get(o.obj, key) : NULL;
    if (!v)
        return NULL;
    jv_from_json(v, tmp);
    return tmp;
}

static const char *jv_type_name(const fn_jv_t *v)
{
    switch (v->type) {
    case FN_JV_OBJECT:
        return "object";
    case FN_JV_ARRAY:
        return "array";
    case FN_JV_STRING:
        return "string";
    case FN_JV_INTEGER:
        return "integer";
    case FN_JV_REAL:
        return "real number";
    case FN_JV_TRUE:
    case FN_JV_FALSE:
        return "boolean";
    case FN_JV_NULL:
        return "null";
    }
    return "?";
}

enum { STR_OPTIONAL = 0, STR_REQUIRED = 1, STR_NO_CTRL = 2 };

/* A string field with at most maxlen bytes and no NUL byte (fn_str_t promises a C string);
 * required ones must be non-empty, STR_NO_CTRL ones must not contain control characters. */
static fn_reject_t get_str(src_t obj, const char *key, const char *path, int flags, size_t maxlen,
                           fn_str_t *out, char *reason, size_t rl)
{
    fn_jv_t tmp;
    const fn_jv_t *v = src_get(obj, key, &tmp);
    if (!v) {
        if (flags & STR_REQUIRED)
            return fail(FN_REJ_MISSING_FIELD, reason, rl, "%s: missing", path);
        return FN_REJ_NONE;
    }
    if (v->type != FN_JV_STRING)
        return fail(FN_REJ_WRONG_TYPE, reason, rl, "%s: expected string, got %s", path,
                    jv_type_name(v));
    const char *s = v->s;
    size_t len = v->len;
    if (len == 0 && (flags & STR_REQUIRED))
        return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: empty", path);
    if (len > maxlen)
        return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: longer than %zu bytes (%zu)", path,
                    maxlen, len);
    if (memchr(s, '\0', len))
        return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: contains a NUL byte", path);
    if (flags & STR_NO_CTRL)
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return fail(FN_REJ_INVALID_VALUE, reason, rl,
                            "%s: contains a control character at byte %zu", path, i);
    out->p = s;
    out->len = len;
    return FN_REJ_NONE;
}

/* "1d", "36h", "90s", "1500ms": the largest unit that divides ms, for reasons. */
static void format_duration(int64_t ms, char *out, size_t outlen)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].ms == 0) {
            snprintf(out, outlen, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    snprintf(out, outlen, "%lldms", (long long)ms);
}

static fn_reject_t get_ts(src_t obj, const fn_config_t *cfg, int64_t now_ms, int64_t *out,
                          char *reason, size_t rl)
{
    fn_jv_t tmp;
    const fn_jv_t *v = src_get(obj, "ts", &tmp);
    if (!v)
        return fail(FN_REJ_MISSING_FIELD, reason, rl, "ts: missing");
    int64_t ms;
    if (v->type == FN_JV_INTEGER) {
        ms = (int64_t)v->i;
    } else if (v->type == FN_JV_STRING) {
        const char *s = v->s;
        size_t len = v->len;
        char ex[EXCERPT_SIZE];
        if (len > MAX_TS_TEXT || fn_time_parse(s, len, &ms) != FN_OK)
            return fail(FN_REJ_INVALID_VALUE, reason, rl,
                        "ts: %s is not an RFC 3339 timestamp (like 2026-11-22T10:15:00.250Z)",
                        excerpt(s, len, ex));
    } else {
        return fail(FN_REJ_WRONG_TYPE, reason, rl,
                    "ts: expected an RFC 3339 string or integer epoch milliseconds, got %s",
                    jv_type_name(v));
    }
    if (ms < MIN_TS_MS)
        return fail(FN_REJ_TS_RANGE, reason, rl, "ts: %lld ms is before 1970-01-01T00:00:00Z",
                    (long long)ms);
    if (ms > MAX_TS_MS)
        return fail(FN_REJ_TS_RANGE, reason, rl, "ts: %lld ms is after 9999-12-31T23:59:59.999Z",
                    (long long)ms);
    /* Written as a difference: ms is bounded above, so this cannot overflow even when
     * max_future_ms is huge. */
    if (cfg->max_future_ms > 0 && ms - now_ms > cfg->max_future_ms) {
        char when[40], ahead[32];
        fn_time_format(ms, when, sizeof when);
        format_duration(cfg->max_future_ms, ahead, sizeof ahead);
        return fail(FN_REJ_TS_RANGE, reason, rl, "ts: %s is more than %s ahead of the clock", when,
                    ahead);
    }
    *out = ms;
    return FN_REJ_NONE;
}

static fn_reject_t get_props(fn_event_t *ev, src_t top, const fn_jv_object_t *props_view,
                             char *reason, size_t rl)
{
    static const struct {
        const char *key, *path;
        size_t off;
    } known[] = {
        {"campaign", "props.campaign", offsetof(fn_event_t, campaign)},
        {"source", "props.source", offsetof(fn_event_t, source)},
        {"medium", "props.medium", offsetof(fn_event_t, medium)},
        {"url", "props.url", offsetof(fn_event_t, url)},
        {"currency", "props.currency", offsetof(fn_event_t, currency)},
        {"stage", "props.stage", offsetof(fn_event_t, stage)},
    };
    fn_jv_t tmp;
    const fn_jv_t *pv = src_get(top, "props", &tmp);
    if (!pv)
        return FN_REJ_NONE;
    if (pv->type != FN_JV_OBJECT)
        return fail(FN_REJ_WRONG_TYPE, reason, rl, "props: expected object, got %s",
                    jv_type_name(pv));
    src_t props = {NULL, NULL};
    if (top.view)
        props.view = ev->props_view = props_view;
    else
        props.obj = ev->props = json_object_get(top.obj, "props");
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        fn_str_t *dst = (fn_str_t *)((char *)ev + known[i].off);
        fn_reject_t r = get_str(props, known[i].key, known[i].path, STR_OPTIONAL, MAX_PROP_LEN, dst,
                                reason, rl);
        if (r)
            return r;
    }
    const fn_jv_t *v = src_get(props, "value", &tmp);
    if (v) {
        if (v->type != FN_JV_INTEGER && v->type != FN_JV_REAL)
            return fail(FN_REJ_WRONG_TYPE, reason, rl, "props.value: expected number, got %s",
                        jv_type_name(v));
        double d = v->type == FN_JV_INTEGER ? (double)v->i : v->d;
        if (!isfinite(d) || fabs(d) > MAX_ABS_VALUE)
            return fail(FN_REJ_INVALID_VALUE, reason, rl,
                        "props.value: %.16g is out of range (at most 1e15 in magnitude)", d);
        ev->has_value = true;
        ev->value = d;
    }
    /* Typed wherever it appears, so a producer's mistake shows before it matters. */
    const fn_jv_t *mk = src_get(props, "marketing", &tmp);
    if (mk) {
        if (mk->type != FN_JV_TRUE && mk->type != FN_JV_FALSE)
            return fail(FN_REJ_WRONG_TYPE, reason, rl, "props.marketing: expected boolean, got %s",
                        jv_type_name(mk));
        ev->has_marketing = true;
        ev->marketing = mk->type == FN_JV_TRUE;
    }
    return FN_REJ_NONE;
}

/* The same lookup as fn_config_funnel(), kept here so the decoder does not depend on config.c;
 * a length compare first, so names with an embedded NUL never match. */
static bool funnel_known(const fn_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const char *n = cfg->funnels[i].name;
        if (n && strlen(n) == len && memcmp(n, name, len) == 0)
            return true;
    }
    return false;
}

/* funnel is optional; any string that does not name a configured funnel (empty, too long,
 * NUL, or just unknown) is unknown_funnel, since no configured name can match it. */
static fn_reject_t get_funnel(fn_event_t *ev, src_t top, const fn_config_t *cfg, char *reason,
                              size_t rl)
{
    fn_jv_t tmp;
    const fn_jv_t *v = src_get(top, "funnel", &tmp);
    if (!v)
        return FN_REJ_NONE;
    if (v->type != FN_JV_STRING)
        return fail(FN_REJ_WRONG_TYPE, reason, rl, "funnel: expected string, got %s",
                    jv_type_name(v));
    const char *s = v->s;
    size_t len = v->len;
    char ex[EXCERPT_SIZE];
    if (!funnel_known(cfg, s, len))
        return fail(FN_REJ_UNKNOWN_FUNNEL, reason, rl, "funnel: %s is not configured",
                    excerpt(s, len, ex));
    ev->funnel.p = s;
    ev->funnel.len = len;
    return FN_REJ_NONE;
}

/* A cost (SPEC §11) records spend for the funnels that keep cost figures, those with
 * attribution (their first model credits the conversions a cost is weighed against). Its
 * amount must be a plain, finite, non-negative number of at most 1e10: a refund or a
 * correction is a later cost event of its own, never a negative one that could make a
 * window's spend negative. */
static fn_reject_t get_cost(fn_event_t *ev, const fn_config_t *cfg, char *reason, size_t rl)
{
    src_t props = {ev->props_view, ev->props};
    fn_jv_t tmp;
    const fn_jv_t *v = props.view || props.obj ? src_get(props, "amount", &tmp) : NULL;
    if (!v)
        return fail(FN_REJ_MISSING_FIELD, reason, rl,
                    "props.amount: missing (required for type cost)");
    if (v->type != FN_JV_INTEGER && v->type != FN_JV_REAL)
        return fail(FN_REJ_WRONG_TYPE, reason, rl, "props.amount: expected number, got %s",
                    jv_type_name(v));
    double d = v->type == FN_JV_INTEGER ? (double)v->i : v->d;
    if (!isfinite(d) || d < 0 || d * 100 > (double)FN_EVENT_MAX_COST_CENTS)
        return fail(FN_REJ_INVALID_VALUE, reason, rl,
                    "props.amount: %.16g is out of range (a cost is 0 to 1e10)", d);
    ev->cost_cents = llround(d * 100);
    bool any = false;
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        bool named = !ev->funnel.p || (strlen(f->name) == ev->funnel.len &&
                                       memcmp(f->name, ev->funnel.p, ev->funnel.len) == 0);
        any = any || (named && f->attribution.enabled);
    }
    if (!any)
        return fail(FN_REJ_INVALID_VALUE, reason, rl,
                    ev->funnel.p ? "funnel: %s keeps no cost figures (it has no attribution)"
                                 : "type: cost, but no funnel keeps cost figures (none has "
                                   "attribution)%s",
                    ev->funnel.p ? ev->funnel.p : "");
    return FN_REJ_NONE;
}

static fn_reject_t decode_fields(fn_event_t *ev, src_t o, const fn_jv_object_t *props_view,
                                 const fn_config_t *cfg, int64_t now_ms, char *reason, size_t rl)
{
    const int req = STR_REQUIRED, name = STR_REQUIRED | STR_NO_CTRL;
    fn_reject_t r;
    /* Ids are opaque: any bytes but NUL (newlines, braces, colons included); the store never
     * uses them as key fragments. */
    if ((r = get_str(o, "event_id", "event_id", req, FN_MAX_ID_LEN, &ev->event_id, reason, rl)) ||
        (r = get_str(o, "lead_id", "lead_id", req, FN_MAX_ID_LEN, &ev->lead_id, reason, rl)) ||
        (r = get_ts(o, cfg, now_ms, &ev->ts_ms, reason, rl)) ||
        (r = get_str(o, "channel", "channel", name, MAX_NAME_LEN, &ev->channel, reason, rl)) ||
        (r = get_str(o, "type", "type", name, MAX_NAME_LEN, &ev->type, reason, rl)) ||
        (r = get_funnel(ev, o, cfg, reason, rl)) || (r = get_props(ev, o, props_view, reason, rl)))
        return r;
    if (ev->type.len == 7 && memcmp(ev->type.p, "consent", 7) == 0) {
        ev->kind = FN_EV_CONSENT;
        if (!ev->has_marketing)
            return fail(FN_REJ_MISSING_FIELD, reason, rl,
                        "props.marketing: missing (required for type consent)");
    } else if (ev->type.len == 5 && memcmp(ev->type.p, "erase", 5) == 0) {
        ev->kind = FN_EV_ERASE;
    } else if (ev->type.len == 8 && memcmp(ev->type.p, "identify", 8) == 0) {
        ev->kind = FN_EV_IDENTIFY;
        src_t props = {ev->props_view, ev->props};
        if (!props.view && !props.obj)
            return fail(FN_REJ_MISSING_FIELD, reason, rl,
                        "props.previous_id: missing (required for type identify)");
        if ((r = get_str(props, "previous_id", "props.previous_id", req, FN_MAX_ID_LEN,
                         &ev->previous_id, reason, rl)))
            return r;
        if (ev->previous_id.len == ev->lead_id.len &&
            memcmp(ev->previous_id.p, ev->lead_id.p, ev->lead_id.len) == 0)
            return fail(FN_REJ_INVALID_VALUE, reason, rl,
                        "props.previous_id: equals lead_id (a lead cannot merge into itself)");
        /* Guard rails of identity systems (SPEC §10): placeholder ids are never merged. */
        const fn_str_t *ids[2] = {&ev->lead_id, &ev->previous_id};
        static const char *const names[2] = {"lead_id", "props.previous_id"};
        for (int i = 0; i < 2; i++)
            if (fn_config_id_blocked(cfg, ids[i]->p, ids[i]->len))
                return fail(FN_REJ_MERGE_REFUSED, reason, rl,
                            "identity.blocked: %s is a blocked id; nothing merged", names[i]);
    } else if (ev->type.len == 4 && memcmp(ev->type.p, "cost", 4) == 0) {
        ev->kind = FN_EV_COST;
        return get_cost(ev, cfg, reason, rl);
    } else {
        ev->kind = FN_EV_TOUCHPOINT;
    }
    return FN_REJ_NONE;
}

/* The checks on the raw bytes that every input format shares: size, then strict UTF-8. */
static fn_reject_t check_raw(const char *buf, size_t len, const fn_config_t *cfg, char *reason,
                             size_t reasonlen)
{
    if (len > cfg->max_message_bytes)
        return fail(FN_REJ_OVERSIZE, reason, reasonlen, "message is %zu bytes, limit %zu", len,
                    cfg->max_message_bytes);
    if (len == 0 || !buf)
        return fail(FN_REJ_INVALID_JSON, reason, reasonlen, "empty message");
    size_t bad = utf8_invalid_at((const unsigned char *)buf, len);
    if (bad < len)
        return fail(FN_REJ_INVALID_UTF8, reason, reasonlen, "invalid UTF-8 at byte %zu (0x%02x)",
                    bad, (unsigned char)buf[bad]);
    return FN_REJ_NONE;
}

/* jansson's parse of a message that must be one JSON object; *doc is owned by the caller
 * (also when the message is refused as not an object). */
static fn_reject_t parse_doc(const char *buf, size_t len, json_t **doc, char *reason,
                             size_t reasonlen)
{
    json_error_t err;
    /* JSON_DECODE_ANY so that "str" or null is reported as not_object rather than a parse
     * error; JSON_ALLOW_NUL lets "\u0000" through so the field check can name it; the EOF
     * check stays on, so trailing bytes after the value are invalid_json. */
    *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
    if (!*doc) /* err.text quotes at most a short token of the message (jansson omits longer ones)
                */
        return fail(FN_REJ_INVALID_JSON, reason, reasonlen, "%s at byte %d", err.text,
                    err.position);
    if (!json_is_object(*doc)) {
        fn_jv_t t;
        jv_from_json(*doc, &t);
        return fail(FN_REJ_NOT_OBJECT, reason, reasonlen, "expected a JSON object, got %s",
                    jv_type_name(&t));
    }
    return FN_REJ_NONE;
}

/* view: try the scanner first (fn_event_decode), or go straight to jansson (the reference). */
static fn_reject_t decode(const char *buf, size_t len, const fn_config_t *cfg, int64_t now_ms,
                          fn_event_t *ev, char *reason, size_t reasonlen, bool view)
{
    fn_reject_t r;
    memset(ev, 0, sizeof *ev);
    if (reason && reasonlen)
        reason[0] = '\0';
    if ((r = check_raw(buf, len, cfg, reason, reasonlen)) != FN_REJ_NONE)
        return r;
    if (view) {
        /* One allocation: the props table, then the decoded strings (at most len + 1 bytes). */
        fn_jv_object_t top, *props = malloc(sizeof *props + len + 1);
        if (props && fn_jv_scan(buf, len, (char *)(props + 1), &top, props)) {
            ev->mem = props;
            r = decode_fields(ev, (src_t){&top, NULL}, props, cfg, now_ms, reason, reasonlen);
            if (r != FN_REJ_NONE)
                goto fail;
            return FN_REJ_NONE;
        }
        free(props); /* declined (or no memory): jansson reads it, and says what is wrong */
    }
    if ((r = parse_doc(buf, len, &ev->doc, reason, reasonlen)) != FN_REJ_NONE)
        goto fail;
    r = decode_fields(ev, (src_t){NULL, ev->doc}, NULL, cfg, now_ms, reason, reasonlen);
    if (r != FN_REJ_NONE)
        goto fail;
    return FN_REJ_NONE;

fail:
    fn_event_clear(ev);
    return r;
}

fn_reject_t fn_event_decode_segment(const char *buf, size_t len, const fn_config_t *cfg,
                                    int64_t now_ms, fn_event_t *ev, char *reason, size_t reasonlen)
{
    fn_reject_t r;
    fn_segment_t seg = {0};
    json_t *doc = NULL;
    memset(ev, 0, sizeof *ev);
    if (reason && reasonlen)
        reason[0] = '\0';
    if ((r = check_raw(buf, len, cfg, reason, reasonlen)) != FN_REJ_NONE ||
        (r = parse_doc(buf, len, &doc, reason, reasonlen)) != FN_REJ_NONE)
        goto fail;
    r = fn_segment_translate(doc, cfg, &seg, reason, reasonlen);
    json_decref(doc);
    doc = NULL;
    if (r != FN_REJ_NONE)
        goto fail;
    if (seg.ignored) {
        ev->kind = FN_EV_IGNORED;
        ev->ignored = seg.ignored;
        return FN_REJ_NONE;
    }
    ev->doc = seg.native; /* the event owns it now */
    seg.native = NULL;
    r = decode_fields(ev, (src_t){NULL, ev->doc}, NULL, cfg, now_ms, reason, reasonlen);
    if (r != FN_REJ_NONE) {
        fn_segment_name_field(&seg, reason, reasonlen);
        goto fail;
    }
    return FN_REJ_NONE;

fail:
    json_decref(doc);
    fn_segment_clear(&seg);
    fn_event_clear(ev);
    return r;
}

fn_reject_t fn_event_decode(const char *buf, size_t len, const fn_config_t *cfg, int64_t now_ms,
                            fn_event_t *ev, char *reason, size_t reasonlen)
{
    return decode(buf, len, cfg, now_ms, ev, reason, reasonlen, true);
}

fn_reject_t fn_event_decode_tree(const char *buf, size_t len, const fn_config_t *cfg,
                                 int64_t now_ms, fn_event_t *ev, char *reason, size_t reasonlen)
{
    return decode(buf, len, cfg, now_ms, ev, reason, reasonlen, false);
}

bool fn_event_prop_equals(const fn_event_t *ev, const char *key, const json_t *want)
{
    if (ev->props) {
        json_t *have = json_object_get(ev->props, key);
        return have && json_equal(want, have);
    }
    const fn_jv_t *v = ev->props_view ? fn_jv_get(ev->props_view, key, strlen(key)) : NULL;
    if (!v)
        return false;
    switch (json_typeof(want)) {
    case JSON_STRING:
        return v->type == FN_JV_STRING && v->len == json_string_length(want) &&
               memcmp(v->s, json_string_value(want), v->len) == 0;
    case JSON_INTEGER:
        return v->type == FN_JV_INTEGER && v->i == (long long)json_integer_value(want);
    case JSON_REAL:
        return v->type == FN_JV_REAL && v->d == json_real_value(want);
    case JSON_TRUE:
        return v->type == FN_JV_TRUE;
    case JSON_FALSE:
        return v->type == FN_JV_FALSE;
    case JSON_NULL:
        return v->type == FN_JV_NULL;
    default:
        return false; /* the scanner reads no nested props value: such events are jansson's */
    }
}

int fn_event_prop_text(const fn_event_t *ev, const char *key, char *out, size_t outlen)
{
    fn_jv_t tmp;
    src_t props = {ev->props_view, ev->props};
    const fn_jv_t *v = props.view || props.obj ? src_get(props, key, &tmp) : NULL;
    int n = -1;
    if (!v || outlen == 0)
        return -1;
    switch (v->type) {
    case FN_JV_STRING:
        n = (int)(v->len < outlen ? v->len : outlen - 1);
        memcpy(out, v->s, (size_t)n);
        out[n] = '\0';
        return n;
    case FN_JV_INTEGER:
        n = snprintf(out, outlen, "%lld", v->i);
        break;
    case FN_JV_REAL:
        n = snprintf(out, outlen, "%.17g", v->d);
        break;
    case FN_JV_TRUE:
    case FN_JV_FALSE:
        n = snprintf(out, outlen, "%s", v->type == FN_JV_TRUE ? "true" : "false");
        break;
    default:
        return -1;
    }
    return n < 0 ? -1 : (size_t)n < outlen ? n : (int)outlen - 1;
}

size_t fn_event_props_size(const fn_event_t *ev)
{
    if (ev->props)
        return json_object_size(ev->props);
    return ev->props_view ? ev->props_view->n : 0;
}

void fn_event_clear(fn_event_t *ev)
{
    if (ev->doc)
        json_decref(ev->doc);
    free(ev->mem);
    memset(ev, 0, sizeof *ev);
}
