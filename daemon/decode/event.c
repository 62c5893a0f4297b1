/*
 * event.c — decoding and validating one touchpoint message (SPEC §1, event.h).
 *
 * Order of checks: size, then UTF-8 over the raw bytes (so invalid text gets its own code
 * and a byte offset rather than a parser message), then one jansson parse with duplicate
 * keys rejected, then the fields. Unknown top-level fields are accepted so producers can add
 * fields before funneld knows them. Reasons never quote the message beyond a short escaped
 * excerpt: they travel in a Kafka header and in logs.
 */
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/event.h"

#define MIN_TS_MS 0LL               /* 1970-01-01 */
#define MAX_TS_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define MAX_NAME_LEN 64             /* channel, type, funnel */
#define MAX_PROP_LEN 256            /* known string props */
#define MAX_ABS_VALUE 1e15

static const char *const codes[FN_REJ_COUNT] = {
    "none",          "oversize",   "invalid_utf8",  "invalid_json",    "not_object",
    "missing_field", "wrong_type", "invalid_value", "ts_out_of_range", "unknown_funnel",
    "lead_collision"};

const char *fn_reject_code(fn_reject_t r)
{
    return r >= 0 && r < FN_REJ_COUNT ? codes[r] : "unknown";
}

static fn_reject_t fail(fn_reject_t code, char *reason, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static fn_reject_t fail(fn_reject_t code, char *reason, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, len, fmt, ap);
    va_end(ap);
    /* Reasons go into a Kafka header and a log line: no control characters. */
    for (char *p = reason; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return code;
}

/* Returns the offset of the first byte that is not strict UTF-8, or len when all is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* > U+10FFFF */
        } else
            return i;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len)
                return i;
            unsigned char cc = s[i + k];
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (cc < l || cc > h)
                return i;
        }
        i += n + 1;
    }
    return len;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* A required or optional string field with a length range and no NUL or control bytes. */
static fn_reject_t get_str(json_t *obj, const char *key, const char *path, bool required,
                           size_t maxlen, bool no_ctrl, fn_str_t *out, char *reason, size_t rl)
{
    json_t *v = json_object_get(obj, key);
    out->p = NULL;
    out->len = 0;
    if (!v) {
        if (required)
            return fail(FN_REJ_MISSING_FIELD, reason, rl, "%s: missing", path);
        return FN_REJ_NONE;
    }
    if (!json_is_string(v))
        return fail(FN_REJ_WRONG_TYPE, reason, rl, "%s: expected string, got %s", path,
                    json_type_name(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 && required)
        return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: empty", path);
    if (len > maxlen)
        return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: longer than %zu bytes", path, maxlen);
    if (memchr(s, '\0', len))
        return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: contains a NUL byte", path);
    if (no_ctrl)
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return fail(FN_REJ_INVALID_VALUE, reason, rl, "%s: contains a control character",
                            path);
    out->p = s;
    out->len = len;
    return FN_REJ_NONE;
}

static fn_reject_t get_ts(json_t *obj, const fn_config_t *cfg, int64_t now_ms, int64_t *out,
                          char *reason, size_t rl)
{
    json_t *v = json_object_get(obj, "ts");
    if (!v)
        return fail(FN_REJ_MISSING_FIELD, reason, rl, "ts: missing");
    int64_t ms;
    if (json_is_integer(v)) {
        ms = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > 64 || fn_time_parse(s, len, &ms) != FN_OK)
            return fail(FN_REJ_INVALID_VALUE, reason, rl,
                        "ts: not an RFC 3339 timestamp (like 2026-11-22T10:15:00.250Z)");
    } else {
        return fail(FN_REJ_WRONG_TYPE, reason, rl,
                    "ts: expected an RFC 3339 string or integer epoch milliseconds, got %s",
                    json_type_name(v));
    }
    if (ms < MIN_TS_MS || ms > MAX_TS_MS)
        return fail(FN_REJ_TS_RANGE, reason, rl, "ts: %lld ms is outside 1970..9999",
                    (long long)ms);
    if (cfg->max_future_ms > 0 && ms > now_ms + cfg->max_future_ms) {
        char when[40];
        fn_time_format(ms, when, sizeof when);
        return fail(FN_REJ_TS_RANGE, reason, rl, "ts: %s is more than %lld ms ahead of the clock",
                    when, (long long)cfg->max_future_ms);
    }
    *out = ms;
    return FN_REJ_NONE;
}

static fn_reject_t get_props(fn_event_t *ev, char *reason, size_t rl)
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
    json_t *props = json_object_get(ev->doc, "props");
    if (!props)
        return FN_REJ_NONE;
    if (!json_is_object(props))
        return fail(FN_REJ_WRONG_TYPE, reason, rl, "props: expected object, got %s",
                    json_type_name(props));
    ev->props = props;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        fn_str_t *dst = (fn_str_t *)((char *)ev + known[i].off);
        fn_reject_t r =
            get_str(props, known[i].key, known[i].path, false, MAX_PROP_LEN, true, dst, reason, rl);
        if (r)
            return r;
    }
    json_t *v = json_object_get(props, "value");
    if (v) {
        if (!json_is_number(v))
            return fail(FN_REJ_WRONG_TYPE, reason, rl, "props.value: expected number, got %s",
                        json_type_name(v));
        double d = json_number_value(v);
        if (!isfinite(d) || fabs(d) > MAX_ABS_VALUE)
            return fail(FN_REJ_INVALID_VALUE, reason, rl,
                        "props.value: out of range (|v| <= 1e15)");
        ev->has_value = true;
        ev->value = d;
    }
    json_t *mk = json_object_get(props, "marketing");
    if (mk) {
        if (!json_is_boolean(mk))
            return fail(FN_REJ_WRONG_TYPE, reason, rl, "props.marketing: expected boolean, got %s",
                        json_type_name(mk));
        ev->has_marketing = true;
        ev->marketing = json_is_true(mk);
    }
    return FN_REJ_NONE;
}

static bool funnel_known(const fn_config_t *cfg, fn_str_t name)
{
    for (size_t i = 0; i < cfg->n_funnels; i++)
        if (strlen(cfg->funnels[i].name) == name.len &&
            memcmp(cfg->funnels[i].name, name.p, name.len) == 0)
            return true;
    return false;
}

static fn_reject_t decode_fields(fn_event_t *ev, const fn_config_t *cfg, int64_t now_ms,
                                 char *reason, size_t rl)
{
    json_t *o = ev->doc;
    fn_reject_t r;
    if ((r = get_str(o, "event_id", "event_id", true, FN_MAX_ID_LEN, false, &ev->event_id, reason,
                     rl)) ||
        (r = get_str(o, "lead_id", "lead_id", true, FN_MAX_ID_LEN, false, &ev->lead_id, reason,
                     rl)) ||
        (r = get_ts(o, cfg, now_ms, &ev->ts_ms, reason, rl)) ||
        (r = get_str(o, "channel", "channel", true, MAX_NAME_LEN, true, &ev->channel, reason,
                     rl)) ||
        (r = get_str(o, "type", "type", true, MAX_NAME_LEN, true, &ev->type, reason, rl)) ||
        (r = get_str(o, "funnel", "funnel", false, MAX_NAME_LEN, true, &ev->funnel, reason, rl)) ||
        (r = get_props(ev, reason, rl)))
        return r;
    if (ev->funnel.p && !funnel_known(cfg, ev->funnel))
        return fail(FN_REJ_UNKNOWN_FUNNEL, reason, rl, "funnel: \"%.*s\" is not configured",
                    (int)ev->funnel.len, ev->funnel.p);
    if (ev->type.len == 7 && memcmp(ev->type.p, "consent", 7) == 0) {
        ev->kind = FN_EV_CONSENT;
        if (!ev->has_marketing)
            return fail(FN_REJ_MISSING_FIELD, reason, rl,
                        "props.marketing: missing (required for type consent)");
    } else if (ev->type.len == 5 && memcmp(ev->type.p, "erase", 5) == 0) {
        ev->kind = FN_EV_ERASE;
    }
    return FN_REJ_NONE;
}

fn_reject_t fn_event_decode(const char *buf, size_t len, const fn_config_t *cfg, int64_t now_ms,
                            fn_event_t *ev, char *reason, size_t reasonlen)
{
    memset(ev, 0, sizeof *ev);
    if (reasonlen)
        reason[0] = '\0';
    if (len > cfg->max_message_bytes)
        return fail(FN_REJ_OVERSIZE, reason, reasonlen, "message is %zu bytes, limit %zu", len,
                    cfg->max_message_bytes);
    if (len == 0 || !buf)
        return fail(FN_REJ_INVALID_JSON, reason, reasonlen, "empty message");
    size_t bad = utf8_invalid_at((const unsigned char *)buf, len);
    if (bad < len)
        return fail(FN_REJ_INVALID_UTF8, reason, reasonlen, "invalid UTF-8 at byte %zu (0x%02x)",
                    bad, (unsigned char)buf[bad]);
    json_error_t err;
    /* JSON_ALLOW_NUL lets "\u0000" through the parser so the field check can name it. */
    ev->doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!ev->doc)
        return fail(FN_REJ_INVALID_JSON, reason, reasonlen, "%s at line %d, column %d", err.text,
                    err.line, err.column);
    fn_reject_t r;
    if (!json_is_object(ev->doc))
        r = fail(FN_REJ_NOT_OBJECT, reason, reasonlen, "expected a JSON object, got %s",
                 json_type_name(ev->doc));
    else
        r = decode_fields(ev, cfg, now_ms, reason, reasonlen);
    if (r != FN_REJ_NONE)
        fn_event_clear(ev);
    return r;
}

void fn_event_clear(fn_event_t *ev)
{
    if (ev->doc)
        json_decref(ev->doc);
    memset(ev, 0, sizeof *ev);
}
