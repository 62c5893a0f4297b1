/*
 * merge.c — identity merges as pure functions (merge.h, SPEC §10).
 */
#include <assert.h>
#include <string.h>

#include "funneld/merge.h"

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Whether the absorbed side's state wins the funnel over the kept side's. */
static bool absorbed_wins(const fn_merge_funnel_t *k, const fn_merge_funnel_t *a)
{
    fn_pos_kind_t kk = k->pos.kind, ak = a->pos.kind;
    if (ak == FN_POS_OUTSIDE)
        return false;
    if (kk == FN_POS_OUTSIDE)
        return true;
    if (kk == FN_POS_CONVERTED || ak == FN_POS_CONVERTED) {
        if (kk != ak)
            return ak == FN_POS_CONVERTED;
        return a->entered_at < k->entered_at; /* the person converted first then */
    }
    if (kk != ak)
        return ak == FN_POS_ACTIVE; /* active over lost */
    if (kk == FN_POS_LOST)
        return false;
    if (a->pos.stage != k->pos.stage)
        return a->pos.stage > k->pos.stage;
    return a->entered_at < k->entered_at;
}

static void merge_funnel(const fn_merge_funnel_t *k, const fn_merge_funnel_t *a,
                         fn_merge_funnel_t *out, fn_merge_move_t *move)
{
    bool k_in = k->pos.kind != FN_POS_OUTSIDE, a_in = a->pos.kind != FN_POS_OUTSIDE;
    *out = absorbed_wins(k, a) ? *a : *k;
    if (k_in && a_in) {
        out->began_at = min64(k->began_at, a->began_at);
        out->active_at = max64(k->active_at, a->active_at);
        out->touches = k->touches + a->touches;
    }
    move->either = k_in || a_in;
    move->kind = FN_OUT_TOUCH;
    move->from = k->pos.kind == FN_POS_ACTIVE ? k->pos.stage : -1;
    move->to = -1;
    switch (out->pos.kind) {
    case FN_POS_CONVERTED:
        if (k->pos.kind != FN_POS_CONVERTED)
            move->kind = FN_OUT_CONVERT, move->to = out->pos.stage;
        break;
    case FN_POS_ACTIVE:
        if (k->pos.kind != FN_POS_ACTIVE)
            move->kind = FN_OUT_ENTER, move->to = out->pos.stage, move->from = -1;
        else if (out->pos.stage != k->pos.stage)
            move->kind = FN_OUT_FORWARD, move->to = out->pos.stage;
        break;
    default: /* outside (neither had state), or lost: no transition implied */
        break;
    }
    assert(move->kind != FN_OUT_FORWARD || move->to > move->from);
}

/* Earliest (first) or latest (!first) of two touches; a tie goes to the kept lead's. */
static fn_merge_touch_t pick_touch(fn_merge_touch_t k, fn_merge_touch_t a, bool first)
{
    if (!a.set)
        return k;
    if (!k.set)
        return a;
    return (first ? a.at < k.at : a.at > k.at) ? a : k;
}

void fn_merge_leads(const fn_merge_lead_t *kept, const fn_merge_lead_t *absorbed,
                    fn_merge_lead_t *out, fn_merge_move_t *moves)
{
    assert(out != kept && out != absorbed && kept->n_funnels == absorbed->n_funnels);
    memset(out, 0, sizeof *out);
    out->has_ts = kept->has_ts || absorbed->has_ts;
    out->ts = !absorbed->has_ts ? kept->ts
              : !kept->has_ts   ? absorbed->ts
                                : max64(kept->ts, absorbed->ts);
    out->first = pick_touch(kept->first, absorbed->first, true);
    out->last = pick_touch(kept->last, absorbed->last, false);

    bool a_value = absorbed->has_value && (!kept->has_value || absorbed->value_at > kept->value_at);
    out->has_value = kept->has_value || absorbed->has_value;
    out->value = a_value ? absorbed->value : kept->value;
    out->value_at = a_value ? absorbed->value_at : kept->value_at;

    /* Consent: the later consent event by event time; without both times, an opt-out wins
     * (no later opt-in can be shown to override it). */
    const fn_merge_lead_t *c = kept;
    if (!kept->consent)
        c = absorbed;
    else if (absorbed->consent) {
        if (kept->has_consent_at && absorbed->has_consent_at)
            c = absorbed->consent_at > kept->consent_at ? absorbed : kept;
        else
            c = absorbed->consent == '0' ? absorbed : kept;
    }
    out->consent = c->consent;
    out->has_consent_at = c->has_consent_at;
    out->consent_at = c->consent_at;

    out->n_funnels = kept->n_funnels;
    for (size_t i = 0; i < kept->n_funnels; i++)
        merge_funnel(&kept->funnel[i], &absorbed->funnel[i], &out->funnel[i], &moves[i]);
}
