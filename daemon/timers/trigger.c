/*
 * trigger.c — the partition clock and outbox entries of retargeting triggers (trigger.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/hash.h"
#include "funneld/trigger.h"

int64_t fn_trigger_clock(fn_clock_t clock, int64_t wall_ms, int64_t maxts_done, bool caught_up)
{
    if (clock == FN_CLOCK_EVENT)
        return maxts_done;
    if (caught_up)
        return wall_ms;
    return maxts_done < wall_ms ? maxts_done : wall_ms;
}

static int get_str(json_t *a, size_t i, fn_str_t *s)
{
    json_t *v = json_array_get(a, i);
    if (!json_is_string(v))
        return FN_ERR;
    s->p = json_string_value(v);
    s->len = json_string_length(v);
    return FN_OK;
}

/* Integers travel as decimal text; an empty text is 0 ("never"). */
static int get_int(json_t *a, size_t i, int64_t *out)
{
    fn_str_t s;
    if (get_str(a, i, &s))
        return FN_ERR;
    if (s.len == 0) {
        *out = 0;
        return FN_OK;
    }
    return fn_i64_parse(s.p, s.len, out);
}

int fn_trigger_parse(const char *text, size_t len, fn_trigger_t *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    json_error_t je;
    json_t *a = json_loadb(text, len, 0, &je);
    int64_t stage = -1;
    if (!json_is_array(a) || json_array_size(a) != 12) {
        snprintf(err, errlen, "outbox entry is not an array of 12");
        goto fail;
    }
    if (get_str(a, 0, &t->key) || get_str(a, 1, &t->lead_id) || get_str(a, 2, &t->funnel) ||
        get_str(a, 3, &t->reason) || get_int(a, 4, &stage) || get_int(a, 5, &t->due) ||
        get_int(a, 6, &t->last_activity) || get_str(a, 7, &t->last_channel) ||
        get_str(a, 8, &t->last_type) || get_int(a, 9, &t->last_at) || get_str(a, 10, &t->value) ||
        get_str(a, 11, &t->cause)) {
        snprintf(err, errlen, "outbox entry has a malformed field");
        goto fail;
    }
    if (stage < -1 || stage >= FN_MAX_STAGES || t->lead_id.len == 0 || t->funnel.len == 0 ||
        t->reason.len == 0 || t->key.len == 0) {
        snprintf(err, errlen, "outbox entry has an empty or out-of-range field");
        goto fail;
    }
    t->stage = (int)stage;
    t->doc = a;
    return FN_OK;
fail:
    json_decref(a);
    memset(t, 0, sizeof *t);
    return FN_ERR;
}

void fn_trigger_id(const fn_trigger_t *t, char out[33])
{
    const char *parts[] = {"retarget", t->funnel.p, t->lead_id.p, t->reason.p, t->cause.p};
    const size_t lens[] = {8, t->funnel.len, t->lead_id.len, t->reason.len, t->cause.len};
    fn_hash_hex(fn_hash_parts(parts, lens, 5), out);
}
