/*
 * emit.c — the JSON text of transition and erasure events (SPEC §4, emit.h).
 *
 * Written by hand into a reusable buffer rather than through a jansson tree: this runs for
 * every transition, and the field order stays stable for people reading the topic. Keys and
 * numbers are appended directly rather than through printf, whose cost showed in the profile.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/emit.h"
#include "funneld/hash.h"

void fn_emit_id(const char *type, const char *funnel, const fn_event_t *ev, char out[33])
{
    const char *parts[] = {type, funnel, ev->lead_id.p, ev->event_id.p};
    const size_t lens[] = {strlen(type), strlen(funnel), ev->lead_id.len, ev->event_id.len};
    fn_hash_hex(fn_hash_parts(parts, lens, 4), out);
}

/* A string literal, its length counted by the compiler. */
#define put_lit(b, s) fn_buf_append((b), (s), sizeof(s) - 1)

/* Appends s (a trusted name) as it is. */
static int put_raw(fn_buf_t *b, const char *s)
{
    return fn_buf_append(b, s, strlen(s));
}

/* ,"key": — one reservation and plain stores: a transition writes a dozen keys */
static int put_key(fn_buf_t *b, const char *key)
{
    size_t n = strlen(key);
    if (fn_buf_reserve(b, n + 4))
        return FN_ERR;
    char *w = b->data + b->len;
    *w++ = ',', *w++ = '"';
    memcpy(w, key, n);
    w += n;
    *w++ = '"', *w++ = ':', *w = '\0';
    b->len = (size_t)(w - b->data);
    return FN_OK;
}

static int put_str(fn_buf_t *b, const char *key, const char *s, size_t n)
{
    return put_key(b, key) || fn_buf_append_json_str(b, s, n);
}

static int put_opt_str(fn_buf_t *b, const char *key, fn_str_t s)
{
    if (!s.p || s.len == 0)
        return put_key(b, key) || fn_buf_append(b, "null", 4);
    return put_str(b, key, s.p, s.len);
}

static int put_time(fn_buf_t *b, const char *key, int64_t ms)
{
    char ts[40];
    size_t n = fn_time_format(ms, ts, sizeof ts);
    return put_str(b, key, ts, n);
}

static int put_stage(fn_buf_t *b, const char *name_key, const char *index_key, const fn_funnel_t *f,
                     int idx)
{
    if (idx < 0)
        return put_key(b, name_key) || fn_buf_append(b, "null", 4) || put_key(b, index_key) ||
               fn_buf_append(b, "null", 4);
    const char *name = f->stages[idx].name;
    return put_str(b, name_key, name, strlen(name)) || put_key(b, index_key) ||
           fn_buf_append_i64(b, idx);
}

static int put_attr(fn_buf_t *b, const char *key, const fn_attr_t *a)
{
    if (put_lit(b, "\"") || put_raw(b, key) || put_lit(b, "\":{\"channel\":") ||
        fn_buf_append_json_str(b, a->channel.p ? a->channel.p : "", a->channel.len) ||
        put_opt_str(b, "campaign", a->campaign) || put_opt_str(b, "source", a->source) ||
        put_time(b, "at", a->at) || fn_buf_append(b, "}", 1))
        return FN_ERR;
    return FN_OK;
}

static int put_head(fn_buf_t *b, const char *type, const char *funnel, const fn_event_t *ev)
{
    char id[33];
    fn_emit_id(type, funnel, ev, id);
    fn_buf_reset(b);
    return put_lit(b, "{\"id\":\"") || fn_buf_append(b, id, 32) || put_lit(b, "\",\"type\":\"") ||
           put_raw(b, type) || put_lit(b, "\"") || put_str(b, "funnel", funnel, strlen(funnel)) ||
           put_str(b, "lead_id", ev->lead_id.p, ev->lead_id.len);
}

static const char *type_of(char op)
{
    return op == 'C' ? "converted" : op == 'L' ? "lost" : "stage_changed";
}

static const char *direction_of(char op)
{
    return op == 'B' ? "back" : op == 'L' ? "lost" : "forward";
}

/* A conversion's multi-touch credit (SPEC §11): ,"credit":{"<model>":[{"channel", "campaign",
 * "weight"}, ...], ...} from the step's {model, channel, campaign, weight, ...}, grouped by
 * model in the order the step gives them (the funnel's); nothing when there is none. */
static int put_credit(fn_buf_t *b, const redisReply *c)
{
    if (!c || c->elements == 0)
        return FN_OK;
    if (fn_buf_append(b, ",\"credit\":{", 11))
        return FN_ERR;
    const char *model = NULL;
    for (size_t i = 0; i + 3 < c->elements; i += 4) {
        const redisReply *m = c->element[i], *ch = c->element[i + 1], *cp = c->element[i + 2];
        const char *name = fn_attr_model_name(atoi(m->str));
        double w = strtod(c->element[i + 3]->str, NULL);
        if (!name || !isfinite(w))
            continue; /* not from this build's step: left out rather than invented */
        bool first = name != model;
        if (first && fn_buf_appendf(b, "%s\"%s\":[", model ? "]," : "", name))
            return FN_ERR;
        if ((!first && fn_buf_append(b, ",", 1)) || fn_buf_append(b, "{", 1) ||
            fn_buf_append(b, "\"channel\":", 10) || fn_buf_append_json_str(b, ch->str, ch->len) ||
            fn_buf_append(b, ",\"campaign\":", 12) ||
            (cp->len ? fn_buf_append_json_str(b, cp->str, cp->len) : fn_buf_append(b, "null", 4)) ||
            fn_buf_appendf(b, ",\"weight\":%.17g}", w))
            return FN_ERR;
        model = name;
    }
    return fn_buf_append(b, model ? "]}" : "}", model ? 2 : 1);
}

int fn_emit_transition(fn_buf_t *b, const fn_event_t *ev, const fn_step_result_t *r,
                       const fn_step_transition_t *t, int64_t emitted_at)
{
    const fn_funnel_t *f = t->funnel;
    if (put_head(b, type_of(t->op), f->name, ev) ||
        put_stage(b, "from", "from_index", f, t->from) ||
        put_stage(b, "to", "to_index", f, t->to) ||
        put_str(b, "direction", direction_of(t->op), strlen(direction_of(t->op))) ||
        fn_buf_append(b, ",\"skipped\":[", 12))
        return FN_ERR;
    /* Stages passed over on the way forward; entering from outside passes over all before. */
    if (t->op == 'E' || t->op == 'F' || t->op == 'C')
        for (int s = t->from + 1; s < t->to; s++) {
            const char *name = f->stages[s].name;
            if ((s > t->from + 1 && fn_buf_append(b, ",", 1)) ||
                fn_buf_append_json_str(b, name, strlen(name)))
                return FN_ERR;
        }
    if (fn_buf_append(b, "]", 1) || put_time(b, "at", r->at) ||
        put_time(b, "emitted_at", emitted_at) || put_key(b, "time_in_stage_ms") ||
        fn_buf_append_i64(b, t->time_in_stage_ms) || put_key(b, "cycle_ms") ||
        fn_buf_append_i64(b, t->cycle_ms) || put_key(b, "touches") ||
        fn_buf_append_i64(b, t->touches) ||
        put_str(b, "cause_event_id", ev->event_id.p, ev->event_id.len) ||
        put_str(b, "channel", ev->channel.p, ev->channel.len) || put_key(b, "value"))
        return FN_ERR;
    /* The value text comes from our own formatting of a finite double (step.c), so it is a
     * valid JSON number and is copied as is. */
    if (r->value.len ? fn_buf_append(b, r->value.p, r->value.len) : fn_buf_append(b, "null", 4))
        return FN_ERR;
    if (fn_buf_append(b, ",\"attribution\":{", 16) || put_attr(b, "first", &r->first) ||
        fn_buf_append(b, ",", 1) || put_attr(b, "last", &r->last) || fn_buf_append(b, "}", 1) ||
        put_credit(b, t->credit) || fn_buf_append(b, "}", 1))
        return FN_ERR;
    return FN_OK;
}

int fn_emit_erased(fn_buf_t *b, const fn_event_t *ev, const fn_funnel_t *f, int64_t at,
                   int64_t emitted_at)
{
    if (put_head(b, "lead_erased", f->name, ev) || put_time(b, "at", at) ||
        put_time(b, "emitted_at", emitted_at) ||
        put_str(b, "cause_event_id", ev->event_id.p, ev->event_id.len) || fn_buf_append(b, "}", 1))
        return FN_ERR;
    return FN_OK;
}

static const char *status_of(fn_pos_kind_t k)
{
    return k == FN_POS_ACTIVE      ? "active"
           : k == FN_POS_CONVERTED ? "converted"
           : k == FN_POS_LOST      ? "lost"
                                   : "none";
}

static int put_pos(fn_buf_t *b, const char *name_key, const char *index_key, const char *status_key,
                   const fn_funnel_t *f, fn_pos_t p)
{
    int idx =
        p.kind == FN_POS_OUTSIDE || p.stage < 0 || (size_t)p.stage >= f->n_stages ? -1 : p.stage;
    const char *st = status_of(p.kind);
    return put_stage(b, name_key, index_key, f, idx) || put_str(b, status_key, st, strlen(st));
}

int fn_emit_merged(fn_buf_t *b, const fn_event_t *ev, const fn_funnel_t *f, fn_str_t merged_id,
                   fn_pos_t from, fn_pos_t to, int64_t at, int64_t emitted_at)
{
    if (put_head(b, "lead_merged", f->name, ev) ||
        put_str(b, "merged_lead_id", merged_id.p, merged_id.len) ||
        put_pos(b, "from", "from_index", "from_status", f, from) ||
        put_pos(b, "to", "to_index", "to_status", f, to) || put_time(b, "at", at) ||
        put_time(b, "emitted_at", emitted_at) ||
        put_str(b, "cause_event_id", ev->event_id.p, ev->event_id.len) || fn_buf_append(b, "}", 1))
        return FN_ERR;
    return FN_OK;
}

/* The value text comes from Redis; it was written by our own formatting, but it is checked
 * before being copied into JSON as a number. */
static int put_value(fn_buf_t *b, fn_str_t v)
{
    if (put_key(b, "value"))
        return FN_ERR;
    char tmp[48], *end;
    if (v.len == 0 || v.len >= sizeof tmp)
        return fn_buf_append(b, "null", 4);
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    double d = strtod(tmp, &end);
    if (*end || !isfinite(d) || tmp[0] == '+' || tmp[0] == '.' || strpbrk(tmp, "xXnNiI"))
        return fn_buf_append(b, "null", 4);
    return fn_buf_append(b, v.p, v.len);
}

int fn_emit_retarget(fn_buf_t *b, const fn_trigger_t *t, const fn_funnel_t *f, int64_t emitted_at)
{
    char id[33];
    fn_trigger_id(t, id);
    fn_buf_reset(b);
    if (fn_buf_appendf(b, "{\"id\":\"%s\",\"type\":\"retarget\"", id) ||
        put_str(b, "funnel", t->funnel.p, t->funnel.len) ||
        put_str(b, "lead_id", t->lead_id.p, t->lead_id.len) ||
        put_str(b, "reason", t->reason.p, t->reason.len))
        return FN_ERR;
    if (f && t->stage >= 0 && (size_t)t->stage < f->n_stages) {
        if (put_stage(b, "stage", "stage_index", f, t->stage))
            return FN_ERR;
    } else if (fn_buf_append(b, ",\"stage\":null,\"stage_index\":null", 32)) {
        return FN_ERR;
    }
    int64_t idle = t->last_activity ? t->due - t->last_activity : 0;
    if (fn_buf_appendf(b, ",\"idle_ms\":%lld", (long long)(idle > 0 ? idle : 0)) ||
        put_time(b, "due_at", t->due) || put_time(b, "at", t->due) ||
        put_time(b, "emitted_at", emitted_at) || fn_buf_append(b, ",\"last_touch\":", 14))
        return FN_ERR;
    if (t->last_at == 0) {
        if (fn_buf_append(b, "null", 4))
            return FN_ERR;
    } else if (fn_buf_append(b, "{\"channel\":", 11) ||
               fn_buf_append_json_str(b, t->last_channel.p, t->last_channel.len) ||
               put_str(b, "type", t->last_type.p, t->last_type.len) ||
               put_time(b, "at", t->last_at) || fn_buf_append(b, "}", 1)) {
        return FN_ERR;
    }
    if (put_value(b, t->value) || put_str(b, "cause_event_id", t->cause.p, t->cause.len) ||
        fn_buf_append(b, "}", 1))
        return FN_ERR;
    return FN_OK;
}
