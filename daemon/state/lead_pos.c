/*
 * lead_pos.c — the "|p" field of a lead's position in one funnel, read and written as
 * position.lua does for the scripts. Pure.
 */
#include <assert.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/lead_view.h"

/* Funnel funnel's field suffix in h, as text (borrowed from h), or NULL. */
static const char *hfield(const redisReply *h, const char *funnel, const char *suffix)
{
    char name[FN_NAME_MAX + 16];
    fn_field_funnel(name, sizeof name, funnel, suffix);
    return fn_lead_view_field(h, name);
}

static bool i64_of(const char *s, size_t len, int64_t *out)
{
    return fn_i64_parse(s, len, out) == FN_OK;
}

static bool old_i64(const redisReply *h, const char *funnel, const char *suffix, int64_t *out)
{
    const char *v = hfield(h, funnel, suffix);
    return v && i64_of(v, strlen(v), out);
}

/* The layout before "|p": six fields. */
static void read_old(const redisReply *h, const char *funnel, fn_lead_pos_t *pos)
{
    pos->has_touches = old_i64(h, funnel, FN_FF_TOUCHES, &pos->touches);
    pos->has_active = old_i64(h, funnel, FN_FF_ACTIVE, &pos->active_at);
    const char *x = hfield(h, funnel, FN_FF_STATUS);
    pos->status = x && x[0] && !x[1] ? x[0] : 0;
    pos->has_stage = old_i64(h, funnel, FN_FF_STAGE, &pos->stage);
    pos->has_entered = old_i64(h, funnel, FN_FF_ENTERED, &pos->entered_at);
    pos->has_began = old_i64(h, funnel, FN_FF_BEGAN, &pos->began_at);
}

bool fn_lead_pos_read(const redisReply *h, const char *funnel, fn_lead_pos_t *pos)
{
    memset(pos, 0, sizeof *pos);
    const char *v = hfield(h, funnel, FN_FF_POS);
    if (!v) {
        read_old(h, funnel, pos);
        return true;
    }
    /* "<touches>|<active>" or "<touches>|<active>|<status><stage>|<entered>|<began>" */
    const char *part[5];
    size_t len[5], n = 0;
    const char *p = v, *end = v + strlen(v);
    for (;;) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        if (n == 5)
            goto bad;
        part[n] = p;
        len[n++] = (size_t)((bar ? bar : end) - p);
        if (!bar)
            break;
        p = bar + 1;
    }
    if ((n != 2 && n != 5) || !i64_of(part[0], len[0], &pos->touches) || pos->touches < 0 ||
        !i64_of(part[1], len[1], &pos->active_at))
        goto bad;
    pos->has_touches = pos->has_active = true;
    if (n == 2)
        return true;
    char st = len[2] ? part[2][0] : 0;
    if ((st != FN_STATUS_ACTIVE[0] && st != FN_STATUS_CONVERTED[0] && st != FN_STATUS_LOST[0]) ||
        !i64_of(part[3], len[3], &pos->entered_at) || !i64_of(part[4], len[4], &pos->began_at))
        goto bad;
    pos->status = st;
    pos->has_entered = pos->has_began = true;
    if (len[2] > 1) {
        if (!i64_of(part[2] + 1, len[2] - 1, &pos->stage) || pos->stage < 0)
            goto bad;
        pos->has_stage = true;
    }
    return true;
bad:
    memset(pos, 0, sizeof *pos);
    return false;
}

size_t fn_lead_pos_text(const fn_lead_pos_t *pos, char *out)
{
    size_t at = 0;
    fn_cat_i64(out, FN_LEAD_POS_TEXT, &at, pos->touches);
    fn_cat(out, FN_LEAD_POS_TEXT, &at, "|", 1);
    fn_cat_i64(out, FN_LEAD_POS_TEXT, &at, pos->active_at);
    if (pos->status) {
        assert(pos->has_stage && pos->has_entered && pos->has_began);
        char s[3] = {'|', pos->status, 0};
        fn_cat(out, FN_LEAD_POS_TEXT, &at, s, 2);
        fn_cat_i64(out, FN_LEAD_POS_TEXT, &at, pos->stage);
        fn_cat(out, FN_LEAD_POS_TEXT, &at, "|", 1);
        fn_cat_i64(out, FN_LEAD_POS_TEXT, &at, pos->entered_at);
        fn_cat(out, FN_LEAD_POS_TEXT, &at, "|", 1);
        fn_cat_i64(out, FN_LEAD_POS_TEXT, &at, pos->began_at);
    }
    return at;
}
