/*
 * lead_view.c — one lead in one funnel as a JSON document, from its hash (HGETALL): what
 * `funnelctl lead` prints and the live view's lead search shows (SPEC §7, §12). Pure: the
 * callers read the hash, each its own way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/lead_view.h"
#include "funneld/step.h"

const char *fn_lead_view_field(const redisReply *h, const char *name)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, name) == 0)
            return h->element[i + 1]->str;
    return NULL;
}

static json_t *time_or_null(const char *ms)
{
    if (!ms || !*ms)
        return json_null();
    char t[40];
    fn_time_format(strtoll(ms, NULL, 10), t, sizeof t);
    return json_string(t);
}

static json_t *time_if(bool has, int64_t ms)
{
    if (!has)
        return json_null();
    char t[40];
    fn_time_format(ms, t, sizeof t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* One touch's attribution fields: the first or the last touch's channel, campaign, source
 * and time. */
static json_t *touch_json(const redisReply *h, const char *ch, const char *cp, const char *src,
                          const char *at)
{
    json_t *o = json_object();
    json_object_set_new(o, "channel", str_or_null(fn_lead_view_field(h, ch)));
    json_object_set_new(o, "campaign", str_or_null(fn_lead_view_field(h, cp)));
    json_object_set_new(o, "source", str_or_null(fn_lead_view_field(h, src)));
    json_object_set_new(o, "at", time_or_null(fn_lead_view_field(h, at)));
    return o;
}

json_t *fn_lead_view_json(const fn_funnel_t *f, const char *lead_id, const redisReply *h)
{
    if (!fn_lead_view_field(h, FN_F_ID))
        return NULL;
    fn_lead_pos_t pos;
    fn_lead_pos_read(h, f->name, &pos); /* a malformed one shows as outside */
    char x = pos.status;
    json_t *o = json_object();
    json_object_set_new(o, "funnel", json_string(f->name));
    json_object_set_new(o, "lead_id", json_string(lead_id));
    const char *status = !x                            ? "outside"
                         : x == FN_STATUS_ACTIVE[0]    ? "active"
                         : x == FN_STATUS_CONVERTED[0] ? "converted"
                                                       : "lost";
    json_object_set_new(o, "status", json_string(status));
    int64_t stage = pos.has_stage ? pos.stage : -1;
    bool in_stage = x && x != FN_STATUS_LOST[0] && stage >= 0 && (uint64_t)stage < f->n_stages;
    json_object_set_new(o, "stage", in_stage ? json_string(f->stages[stage].name) : json_null());
    json_object_set_new(o, "stage_index", in_stage ? json_integer(stage) : json_null());
    json_object_set_new(o, "stage_entered_at", time_if(pos.has_entered, pos.entered_at));
    json_object_set_new(o, "funnel_entered_at", time_if(pos.has_began, pos.began_at));
    json_object_set_new(o, "last_activity_at", time_if(pos.has_active, pos.active_at));
    json_object_set_new(o, "touches", json_integer(pos.has_touches ? pos.touches : 0));
    const char *v = fn_lead_view_field(h, FN_F_VALUE);
    json_object_set_new(o, "value", v ? json_real(strtod(v, NULL)) : json_null());
    const char *c = fn_lead_view_field(h, FN_F_CONSENT);
    json_object_set_new(o, "marketing_consent",
                        !c || !*c ? json_null() : json_boolean(strcmp(c, "1") == 0));
    json_t *attr = json_object();
    json_object_set_new(attr, "first",
                        touch_json(h, FN_F_FIRST_CH, FN_F_FIRST_CP, FN_F_FIRST_SRC, FN_F_FIRST_AT));
    json_object_set_new(attr, "last",
                        touch_json(h, FN_F_LAST_CH, FN_F_LAST_CP, FN_F_LAST_SRC, FN_F_LAST_AT));
    json_object_set_new(o, "attribution", attr);

    json_t *triggers = json_array();
    char prefix[160];
    fn_field_funnel(prefix, sizeof prefix, f->name, FN_FF_TIMER);
    int pl = (int)strlen(prefix);
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *name = h->element[i]->str, *val = h->element[i + 1]->str;
        if (strncmp(name, prefix, (size_t)pl) != 0)
            continue;
        long long due = 0;
        int st = -1, consumed = 0;
        /* "<due>|<stage>|<zset>|<cause>"; an empty zset marks a stall that already fired */
        if (sscanf(val, "%lld|%d|%n", &due, &st, &consumed) < 2)
            continue;
        const char *zset = val + consumed, *bar = strchr(zset, '|');
        if (!bar)
            continue;
        json_t *t = json_object();
        json_object_set_new(t, "reason", json_string(name + pl));
        json_object_set_new(t, "due_at", time_or_null(val));
        json_object_set_new(t, "state", json_string(bar == zset ? "fired" : "pending"));
        json_object_set_new(t, "cause_event_id", json_string(bar + 1));
        json_array_append_new(triggers, t);
    }
    json_object_set_new(o, "triggers", triggers);
    return o;
}
