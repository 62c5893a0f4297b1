/*
 * rules.c — SPEC §3 as pure functions (see rules.h for why the output is a plan).
 *
 * Decisions where SPEC is silent, also written in README.md:
 *  - "lost" rules win over stage rules when one event matches both: a deal_lost is final.
 *  - a lead outside the funnel that matches only "lost" is a touch: it was never in it.
 *  - entering from outside at stage k counts stages 0..k-1 as skipped even without
 *    allow_skip, so stage counts never grow down the funnel.
 *  - the conversion stage is the last stage (config enforces it); reaching it is CONVERT.
 */
#include <assert.h>
#include <string.h>

#include "funneld/rules.h"

static bool str_eq(const char *want, fn_str_t have)
{
    return have.p && strlen(want) == have.len && memcmp(want, have.p, have.len) == 0;
}

bool fn_rules_matcher_matches(const fn_matcher_t *m, const fn_event_t *ev)
{
    if (m->channel && !str_eq(m->channel, ev->channel))
        return false;
    if (m->type && !str_eq(m->type, ev->type))
        return false;
    if (m->props) {
        const char *key;
        json_t *want;
        json_object_foreach (m->props, key, want) {
            if (!fn_event_prop_equals(ev, key, want))
                return false;
        }
    }
    return true;
}

static bool any_matches(const fn_matcher_t *ms, size_t n, const fn_event_t *ev)
{
    for (size_t i = 0; i < n; i++)
        if (fn_rules_matcher_matches(&ms[i], ev))
            return true;
    return false;
}

fn_match_t fn_rules_match(const fn_funnel_t *f, const fn_event_t *ev)
{
    fn_match_t m = {.stage = -1, .lost = any_matches(f->lost_on, f->n_lost_on, ev)};
    for (size_t i = f->n_stages; i-- > 0;)
        if (any_matches(f->stages[i].on, f->stages[i].n_on, ev)) {
            m.stage = (int)i;
            break;
        }
    return m;
}

fn_outcome_t fn_rules_step(const fn_funnel_t *f, fn_pos_t pos, fn_match_t m)
{
    const fn_outcome_t touch = {FN_OUT_TOUCH, -1, -1};
    if (pos.kind == FN_POS_CONVERTED || pos.kind == FN_POS_LOST)
        return touch;
    if (m.lost)
        return pos.kind == FN_POS_ACTIVE ? (fn_outcome_t){FN_OUT_LOST, pos.stage, -1} : touch;
    if (m.stage < 0)
        return touch;

    if (pos.kind == FN_POS_OUTSIDE) {
        fn_outcome_kind_t k = m.stage == f->conversion_index ? FN_OUT_CONVERT : FN_OUT_ENTER;
        return (fn_outcome_t){k, -1, m.stage};
    }
    int j = pos.stage;
    if (m.stage > j) {
        int to = f->allow_skip ? m.stage : j + 1;
        fn_outcome_kind_t k = to == f->conversion_index ? FN_OUT_CONVERT : FN_OUT_FORWARD;
        return (fn_outcome_t){k, j, to};
    }
    if (m.stage < j && f->allow_regress)
        return (fn_outcome_t){FN_OUT_BACK, j, m.stage};
    return touch;
}

int fn_rules_pos_index(const fn_funnel_t *f, fn_pos_t pos)
{
    switch (pos.kind) {
    case FN_POS_OUTSIDE:
        return 0;
    case FN_POS_ACTIVE:
        return 1 + pos.stage;
    case FN_POS_CONVERTED:
        return (int)f->n_stages + 1;
    case FN_POS_LOST:
        return (int)f->n_stages + 2;
    }
    return 0;
}

static fn_pos_t pos_of_slot(const fn_funnel_t *f, size_t slot)
{
    if (slot == 0)
        return (fn_pos_t){FN_POS_OUTSIDE, -1};
    if (slot <= f->n_stages)
        return (fn_pos_t){FN_POS_ACTIVE, (int)slot - 1};
    if (slot == f->n_stages + 1)
        return (fn_pos_t){FN_POS_CONVERTED, f->conversion_index};
    return (fn_pos_t){FN_POS_LOST, -1};
}

size_t fn_rules_plan(const fn_funnel_t *f, fn_match_t m, char *out, size_t outlen)
{
    static const char letters[] = {'T', 'E', 'F', 'B', 'C', 'L'};
    size_t slots = fn_rules_plan_slots(f);
    if (outlen == 0)
        return 0;
    out[0] = '\0';
    if ((m.stage < 0 && !m.lost) || outlen < 2 * slots + 1)
        return 0;
    bool all_touch = true;
    for (size_t s = 0; s < slots; s++) {
        fn_outcome_t o = fn_rules_step(f, pos_of_slot(f, s), m);
        out[2 * s] = letters[o.kind];
        out[2 * s + 1] = (char)('0' + (o.to >= 0 ? o.to : 0));
        all_touch &= o.kind == FN_OUT_TOUCH;
    }
    out[2 * slots] = '\0';
    if (all_touch) {
        out[0] = '\0';
        return 0;
    }
    return 2 * slots;
}

size_t fn_rules_timer_spec(const fn_funnel_t *f, const fn_event_t *ev, char *out, size_t outlen)
{
    size_t n = 0;
    bool stale = false;
    for (size_t i = 0; i < f->n_stages; i++)
        stale |= f->stages[i].stale_after_ms > 0;
    if (outlen < FN_TIMER_SPEC_MAX) {
        if (outlen)
            out[0] = '\0';
        return 0;
    }
    out[0] = '\0';
    /* What ev does to each rule, judged once: 'U' cancels (unless wins), 'A' arms, 0 none. */
    char does[FN_MAX_RULES];
    bool any_rule = false;
    assert(f->n_retarget <= FN_MAX_RULES);
    for (size_t r = 0; r < f->n_retarget; r++) {
        const fn_retarget_rule_t *rule = &f->retarget[r];
        does[r] = any_matches(rule->unless, rule->n_unless, ev) ? 'U'
                  : fn_rules_matcher_matches(&rule->after, ev)  ? 'A'
                                                                : 0;
        any_rule |= does[r] != 0;
    }
    if (!stale && !any_rule)
        return 0;
    /* outlen holds FN_MAX_STAGES numbers (checked above): no bounds to check per stage */
    for (size_t i = 0; i < f->n_stages; i++) {
        if (i)
            out[n++] = ',';
        n += fn_i64_text(f->stages[i].stale_after_ms, out + n);
    }
    for (size_t r = 0; r < f->n_retarget; r++) {
        const fn_retarget_rule_t *rule = &f->retarget[r];
        if (does[r] == 'U') {
            fn_cat(out, outlen, &n, "|U:", 3);
        } else if (does[r] == 'A') {
            fn_cat(out, outlen, &n, "|A", 2);
            fn_cat_i64(out, outlen, &n, rule->within_ms);
            fn_cat(out, outlen, &n, ":", 1);
        } else {
            continue;
        }
        fn_cat(out, outlen, &n, rule->name, strlen(rule->name));
    }
    return n;
}
