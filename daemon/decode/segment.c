/*
 * segment.c — a Segment-spec message as a funneld touchpoint (segment.h).
 *
 * Only the mapping is here: which Segment field becomes which touchpoint field. Whether a
 * value is acceptable (an id's length, a timestamp's form, a prop's type) is decided by the
 * touchpoint checks of event.c on the document built here, so the two formats cannot drift
 * apart; this file refuses only what is Segment's own (an unknown call type, a track call
 * without an event name, a wrongly typed properties or context).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "funneld/segment.h"

static fn_reject_t refuse(fn_reject_t code, char *reason, size_t rl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static fn_reject_t refuse(fn_reject_t code, char *reason, size_t rl, const char *fmt, ...)
{
    if (reason && rl) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, rl, fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *type_name(const json_t *v)
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
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static void source(fn_segment_t *s, const char *native, const char *segment)
{
    if (s->n_sources < FN_SEGMENT_MAX_SOURCES)
        s->sources[s->n_sources++] = (fn_segment_source_t){native, segment};
}

/* A Segment field that is absent or null is not there (libraries write "userId": null for an
 * anonymous visitor). */
static json_t *present(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int set(json_t *obj, const char *key, json_t *v)
{
    return json_object_set(obj, key, v);
}

static int set_text(json_t *obj, const char *key, const char *text)
{
    return json_object_set_new(obj, key, json_string(text));
}

/* The channel a medium stands for: segment.channels by the medium in lower case, else
 * segment.default_channel. */
static const char *channel_of(const fn_config_t *cfg, const json_t *medium)
{
    if (json_is_string(medium)) {
        const char *m = json_string_value(medium);
        size_t len = json_string_length(medium);
        for (size_t i = 0; i < cfg->n_segment_channels; i++) {
            const char *k = cfg->segment_channels[i].key;
            if (strlen(k) != len)
                continue;
            size_t j = 0;
            while (j < len && tolower((unsigned char)m[j]) == (unsigned char)k[j])
                j++;
            if (j == len)
                return cfg->segment_channels[i].value;
        }
    }
    return cfg->segment_default_channel ? cfg->segment_default_channel : "web";
}

static const char *event_type_of(const fn_config_t *cfg, const json_t *event)
{
    const char *name = json_string_value(event);
    for (size_t i = 0; i < cfg->n_segment_events; i++)
        if (strlen(cfg->segment_events[i].key) == json_string_length(event) &&
            strcmp(cfg->segment_events[i].key, name) == 0)
            return cfg->segment_events[i].value;
    return NULL;
}

/* props: properties' members, then what Segment keeps elsewhere for the known props, where
 * properties does not set them (a producer's explicit value wins over the page's context). */
static fn_reject_t build_props(json_t *seg, const char *call, fn_segment_t *out, json_t *props,
                               char *reason, size_t rl)
{
    json_t *properties = present(seg, "properties");
    if (properties) {
        if (!json_is_object(properties))
            return refuse(FN_REJ_WRONG_TYPE, reason, rl, "properties: expected object, got %s",
                          type_name(properties));
        if (json_object_update(props, properties))
            return refuse(FN_REJ_INVALID_VALUE, reason, rl, "out of memory");
    }
    json_t *context = present(seg, "context");
    if (context && !json_is_object(context))
        return refuse(FN_REJ_WRONG_TYPE, reason, rl, "context: expected object, got %s",
                      type_name(context));
    json_t *campaign = context ? present(context, "campaign") : NULL;
    if (campaign && !json_is_object(campaign))
        return refuse(FN_REJ_WRONG_TYPE, reason, rl, "context.campaign: expected object, got %s",
                      type_name(campaign));
    static const struct {
        const char *from, *to, *path;
    } utm[] = {{"name", "campaign", "context.campaign.name"},
               {"source", "source", "context.campaign.source"},
               {"medium", "medium", "context.campaign.medium"}};
    for (size_t i = 0; i < sizeof utm / sizeof utm[0]; i++) {
        json_t *v = campaign ? present(campaign, utm[i].from) : NULL;
        if (v && !json_object_get(props, utm[i].to)) {
            set(props, utm[i].to, v);
            source(out, utm[i].to, utm[i].path);
        }
    }
    json_t *page = context ? present(context, "page") : NULL;
    json_t *url = json_is_object(page) ? present(page, "url") : NULL;
    if (url && strcmp(call, "track") != 0 && !json_object_get(props, "url")) {
        set(props, "url", url);
        source(out, "url", "context.page.url");
    }
    /* Segment's e-commerce events carry the money as revenue. */
    json_t *revenue = properties ? present(properties, "revenue") : NULL;
    if (revenue && !json_object_get(props, "value")) {
        set(props, "value", revenue);
        source(out, "value", "properties.revenue");
    }
    return FN_REJ_NONE;
}

fn_reject_t fn_segment_translate(json_t *seg, const fn_config_t *cfg, fn_segment_t *out,
                                 char *reason, size_t rl)
{
    memset(out, 0, sizeof *out);
    json_t *type = json_object_get(seg, "type");
    if (!type)
        return refuse(FN_REJ_MISSING_FIELD, reason, rl,
                      "type: missing (the Segment call: track, page, screen, identify, alias "
                      "or group)");
    if (!json_is_string(type))
        return refuse(FN_REJ_WRONG_TYPE, reason, rl, "type: expected string, got %s",
                      type_name(type));
    const char *call = json_string_value(type);
    bool track = strcmp(call, "track") == 0, page = strcmp(call, "page") == 0;
    bool screen = strcmp(call, "screen") == 0, identify = strcmp(call, "identify") == 0;
    bool alias = strcmp(call, "alias") == 0;
    if (strcmp(call, "group") == 0) {
        out->ignored = FN_IGN_SEGMENT_GROUP; /* a user's account, not something the person did */
        return FN_REJ_NONE;
    }
    if (!track && !page && !screen && !identify && !alias)
        return refuse(FN_REJ_INVALID_VALUE, reason, rl,
                      "type: not a Segment call (track, page, screen, identify, alias, group)");

    json_t *user = present(seg, "userId"), *anon = present(seg, "anonymousId");
    if (json_is_string(user) && json_string_length(user) == 0)
        user = NULL; /* "" is how some libraries write "not known yet" */
    json_t *previous = NULL;
    const char *previous_from = NULL;
    if (identify) {
        /* An identify names one person by two ids, or only records traits of one: the
         * latter is nothing a funnel counts. */
        if (!user || !anon) {
            out->ignored = FN_IGN_SEGMENT_IDENTIFY;
            return FN_REJ_NONE;
        }
        previous = anon, previous_from = "anonymousId";
    } else if (alias) {
        previous = present(seg, "previousId"), previous_from = "previousId";
        if (!user)
            return refuse(FN_REJ_MISSING_FIELD, reason, rl, "userId: missing (required for alias)");
        if (!previous)
            return refuse(FN_REJ_MISSING_FIELD, reason, rl,
                          "previousId: missing (required for alias)");
    }
    json_t *lead = user ? user : anon;
    if (!lead)
        return refuse(FN_REJ_MISSING_FIELD, reason, rl,
                      "userId, anonymousId: missing (a call needs one of them)");

    const char *native_type = NULL;
    json_t *event = NULL;
    if (track) {
        event = present(seg, "event");
        if (!event)
            return refuse(FN_REJ_MISSING_FIELD, reason, rl, "event: missing (required for track)");
        if (!json_is_string(event))
            return refuse(FN_REJ_WRONG_TYPE, reason, rl, "event: expected string, got %s",
                          type_name(event));
        native_type = event_type_of(cfg, event);
    } else {
        native_type = page || screen ? "page_view" : "identify";
    }

    json_t *n = json_object(), *props = json_object();
    fn_reject_t r = FN_REJ_INVALID_VALUE;
    if (!n || !props) {
        refuse(r, reason, rl, "out of memory");
        goto fail;
    }
    json_t *ts = present(seg, "timestamp");
    const char *ts_from = "timestamp";
    if (!ts && (ts = present(seg, "originalTimestamp")))
        ts_from = "originalTimestamp";
    json_t *id = json_object_get(seg, "messageId");
    source(out, "event_id", "messageId");
    source(out, "lead_id", user ? "userId" : "anonymousId");
    source(out, "ts", ts_from);
    if ((id && set(n, "event_id", id)) || set(n, "lead_id", lead) || (ts && set(n, "ts", ts))) {
        refuse(r, reason, rl, "out of memory");
        goto fail;
    }
    if (event && !native_type) {
        set(n, "type", event);
        source(out, "type", "event");
    } else {
        set_text(n, "type", native_type);
        if (event)
            source(out, "type", "event");
    }
    if ((r = build_props(seg, call, out, props, reason, rl)) != FN_REJ_NONE)
        goto fail;
    if (previous) {
        set(props, "previous_id", previous);
        source(out, "previous_id", previous_from);
    }
    set_text(n, "channel", channel_of(cfg, json_object_get(props, "medium")));
    if (json_object_size(props) || present(seg, "properties"))
        set(n, "props", props);
    json_decref(props);
    out->native = n;
    return FN_REJ_NONE;

fail:
    json_decref(n);
    json_decref(props);
    out->n_sources = 0;
    return r;
}

void fn_segment_name_field(const fn_segment_t *s, char *reason, size_t rl)
{
    const char *colon = strchr(reason, ':');
    if (!colon)
        return;
    size_t plen = (size_t)(colon - reason);
    const char *field = reason;
    bool prop = plen > 6 && strncmp(reason, "props.", 6) == 0;
    if (prop)
        field += 6, plen -= 6;
    const char *from = NULL;
    for (size_t i = 0; i < s->n_sources && !from; i++) {
        const char *nat = s->sources[i].native;
        bool is_prop = strcmp(nat, "event_id") && strcmp(nat, "lead_id") && strcmp(nat, "ts") &&
                       strcmp(nat, "type");
        if (is_prop == prop && strlen(nat) == plen && strncmp(nat, field, plen) == 0)
            from = s->sources[i].segment;
    }
    char prop_path[96];
    if (!from && prop) { /* any other prop is properties' own */
        snprintf(prop_path, sizeof prop_path, "properties.%.*s", (int)plen, field);
        from = prop_path;
    } else if (!from && plen == 5 && strncmp(reason, "props", 5) == 0) {
        from = "properties";
    }
    if (!from)
        return;
    char out[512];
    snprintf(out, sizeof out, "%s (%.*s)%s", from, (int)(colon - reason), reason, colon);
    snprintf(reason, rl, "%s", out);
}

void fn_segment_clear(fn_segment_t *s)
{
    json_decref(s->native);
    memset(s, 0, sizeof *s);
}
