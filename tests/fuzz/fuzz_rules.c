/*
 * fuzz_rules.c — libFuzzer target for the rules engine (daemon/rules/rules.c).
 *
 * The input is read as a recipe, not as text: the first bytes choose a funnel (1 to 60 stages,
 * allow_skip, allow_regress, a conversion stage, lost rules, stale_after values, up to 32
 * retarget rules with names up to 64 bytes) whose matchers draw channel, type and props from a
 * small vocabulary, so that events built from the remaining bytes from the same vocabulary
 * actually match. The funnel is written as a config document and validated by the real
 * fn_config_from_json(), and each event is written as a touchpoint message and decoded by the
 * real fn_event_decode(), so the rules only ever see what the daemon would give them.
 *
 * The fuzzer keeps its own model of every matcher and event (vocabulary indexes), and checks
 * the engine against it, one lead walking through the whole event sequence:
 *  - fn_rules_match gives the highest stage one of whose matchers the model says matches, and
 *    lost exactly when a lost matcher matches (equality of JSON values: 1, 1.0 and "1" differ);
 *  - fn_rules_step follows SPEC §3 (fz_expected_step in fuzz_common.h): converted and lost are
 *    terminal, lost wins, entry at the matched stage, one step forward without allow_skip,
 *    never backward without allow_regress;
 *  - fn_rules_plan is 2 * slots characters or empty, with valid letters and target stages,
 *    and each slot is the step's outcome for that position (the match of every event, and
 *    one more match the input picks; fuzz_config sweeps every match of every funnel);
 *  - fn_rules_timer_spec is exactly the text the model predicts, and fits FN_TIMER_SPEC_MAX.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/rules.h"

#include "fuzz_common.h"

#define NOW_MS 1795348800000LL
#define MAX_EVENTS 48
#define MAX_MATCHERS 3

static const char *const channels[] = {"web", "email", "crm", "ads"};
static const char *const types[] = {"page_view", "ad_click",   "email_click", "demo_request",
                                    "purchase",  "deal_stage", "deal_lost",   "cart_add"};
/* The first three are props the decoder knows and types; the others are free. */
static const char *const prop_keys[] = {"stage", "campaign", "value", "flag", "n"};
#define N_CH 4
#define N_TY 8
#define N_PK 5
#define N_PV 8
/* Values pairwise different under json_equal: 1, 1.0 and "1" are three different values. */
static json_t *prop_value(int i)
{
    switch (i) {
    case 0:
        return json_string("proposal");
    case 1:
        return json_string("spring");
    case 2:
        return json_integer(1);
    case 3:
        return json_real(1.0);
    case 4:
        return json_string("1");
    case 5:
        return json_true();
    case 6:
        return json_false();
    default:
        return json_integer(0);
    }
}

/* The input as a stream of choices; 0 once it runs out, so every input is a recipe. */
typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader_t;

static unsigned next(reader_t *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

/* A matcher or an event in vocabulary indexes; -1: field absent. */
typedef struct model {
    int channel, type;
    int props[N_PK];
} model_t;

typedef struct rule_model {
    model_t after;
    model_t unless[2];
    int n_unless;
    long long within_ms;
    char name[FN_NAME_MAX + 1];
} rule_model_t;

typedef struct funnel_model {
    int n_stages;
    model_t on[FN_MAX_STAGES][MAX_MATCHERS];
    int n_on[FN_MAX_STAGES];
    long long stale_ms[FN_MAX_STAGES];
    model_t lost[2];
    int n_lost;
    int n_rules;
    rule_model_t rules[FN_MAX_RULES];
} funnel_model_t;

static funnel_model_t fm; /* large: static, rebuilt for every input */

static void read_matcher(reader_t *r, model_t *m)
{
    unsigned b = next(r);
    m->channel = (b & 7) < N_CH ? (int)(b & 7) : -1;
    m->type = ((b >> 3) & 15) < N_TY ? (int)((b >> 3) & 15) : -1;
    for (int k = 0; k < N_PK; k++)
        m->props[k] = -1;
    if (b & 0x80) {
        unsigned np = 1 + next(r) % 2;
        for (unsigned i = 0; i < np; i++) {
            unsigned kv = next(r);
            m->props[kv % N_PK] = (int)((kv / N_PK) % N_PV);
        }
    }
    if (m->channel < 0 && m->type < 0 && !(b & 0x80))
        m->type = (int)(b % N_TY); /* a matcher must name something */
}

static void read_event(reader_t *r, model_t *e)
{
    unsigned a = next(r), b = next(r);
    e->channel = (int)(a % (N_CH + 1));             /* N_CH: "sms", which no matcher names */
    e->type = (int)((a / (N_CH + 1)) % (N_TY + 1)); /* N_TY: "post_like", likewise */
    for (int k = 0; k < N_PK; k++)
        e->props[k] = (b >> k) & 1 ? (int)(next(r) % N_PV) : -1;
    /* the decoder types known props (props.stage and props.campaign strings, props.value a
     * number): a producer would not send anything else, so neither does the fuzzer */
    for (int k = 0; k < 3; k++) {
        int v = e->props[k];
        bool is_string = v == 0 || v == 1 || v == 4, is_number = v == 2 || v == 3 || v == 7;
        if (v >= 0 && (k < 2 ? !is_string : !is_number))
            e->props[k] = -1;
    }
}

static bool model_matches(const model_t *m, const model_t *e)
{
    if (m->channel >= 0 && m->channel != e->channel)
        return false;
    if (m->type >= 0 && m->type != e->type)
        return false;
    for (int k = 0; k < N_PK; k++)
        if (m->props[k] >= 0 && m->props[k] != e->props[k])
            return false;
    return true;
}

static json_t *matcher_json(const model_t *m)
{
    json_t *o = json_object();
    if (m->channel >= 0)
        json_object_set_new(o, "channel", json_string(channels[m->channel]));
    if (m->type >= 0)
        json_object_set_new(o, "type", json_string(types[m->type]));
    json_t *props = NULL;
    for (int k = 0; k < N_PK; k++)
        if (m->props[k] >= 0) {
            if (!props)
                props = json_object();
            json_object_set_new(props, prop_keys[k], prop_value(m->props[k]));
        }
    if (props)
        json_object_set_new(o, "props", props);
    return o;
}

static const long long durations_ms[] = {0, 1, 1000, 3600000, 604800000, 315360000000LL};

/* Reads the funnel recipe into fm and returns it as a config document. */
static json_t *read_config(reader_t *r, bool *skip, bool *regress, bool *conversion)
{
    unsigned b0 = next(r), flags = next(r);
    fm.n_stages = b0 >= 0xF0 ? 1 + (int)(next(r) % FN_MAX_STAGES) : 1 + (int)(b0 % 8);
    *skip = flags & 1, *regress = flags & 2, *conversion = flags & 4;
    json_t *stages = json_array();
    for (int s = 0; s < fm.n_stages; s++) {
        json_t *st = json_object(), *on = json_array();
        char name[16];
        snprintf(name, sizeof name, "s%d", s);
        json_object_set_new(st, "name", json_string(name));
        fm.n_on[s] = 1 + (int)(next(r) % MAX_MATCHERS);
        for (int k = 0; k < fm.n_on[s]; k++) {
            read_matcher(r, &fm.on[s][k]);
            json_array_append_new(on, matcher_json(&fm.on[s][k]));
        }
        json_object_set_new(st, "on", on);
        fm.stale_ms[s] = (flags & 16) ? durations_ms[next(r) % 6] : 0;
        if (fm.stale_ms[s])
            json_object_set_new(st, "stale_after", json_integer(fm.stale_ms[s]));
        if (*conversion && s == fm.n_stages - 1)
            json_object_set_new(st, "conversion", json_true());
        json_array_append_new(stages, st);
    }
    json_t *f = json_object();
    json_object_set_new(f, "name", json_string("fz"));
    json_object_set_new(f, "stages", stages);
    json_object_set_new(f, "allow_skip", json_boolean(*skip));
    json_object_set_new(f, "allow_regress", json_boolean(*regress));
    fm.n_lost = 0;
    if (flags & 8) {
        json_t *on = json_array();
        fm.n_lost = 1 + (int)(next(r) % 2);
        for (int k = 0; k < fm.n_lost; k++) {
            read_matcher(r, &fm.lost[k]);
            json_array_append_new(on, matcher_json(&fm.lost[k]));
        }
        json_t *lost = json_object();
        json_object_set_new(lost, "on", on);
        json_object_set_new(f, "lost", lost);
    }
    fm.n_rules = 0;
    if (flags & 32) {
        json_t *rules = json_array();
        fm.n_rules = (int)(next(r) % (FN_MAX_RULES + 1));
        for (int i = 0; i < fm.n_rules; i++) {
            rule_model_t *rm = &fm.rules[i];
            /* unique by the prefix, padded to 3..64 bytes so the spec's bound is exercised */
            size_t len = 3 + next(r) % (FN_NAME_MAX - 2);
            snprintf(rm->name, sizeof rm->name, "r%02d", i);
            memset(rm->name + 3, '_', len - 3);
            rm->name[len] = '\0';
            read_matcher(r, &rm->after);
            rm->n_unless = (int)(next(r) % 3);
            json_t *unless = json_array();
            for (int k = 0; k < rm->n_unless; k++) {
                read_matcher(r, &rm->unless[k]);
                json_array_append_new(unless, matcher_json(&rm->unless[k]));
            }
            rm->within_ms = durations_ms[1 + next(r) % 5];
            json_t *rule = json_object();
            json_object_set_new(rule, "name", json_string(rm->name));
            json_object_set_new(rule, "after", matcher_json(&rm->after));
            json_object_set_new(rule, "unless", unless);
            json_object_set_new(rule, "within", json_integer(rm->within_ms));
            json_array_append_new(rules, rule);
        }
        json_object_set_new(f, "retarget", rules);
    }
    json_t *funnels = json_array();
    json_array_append_new(funnels, f);
    json_t *root = json_object();
    json_object_set_new(root, "funnels", funnels);
    return root;
}

/* Writes the model event as a touchpoint message and decodes it as the daemon would. */
static void make_event(const model_t *e, int i, fn_event_t *ev, const fn_config_t *cfg)
{
    json_t *o = json_object();
    char id[16];
    snprintf(id, sizeof id, "e%d", i);
    json_object_set_new(o, "event_id", json_string(id));
    json_object_set_new(o, "lead_id", json_string("L-1"));
    json_object_set_new(o, "ts", json_integer(1795342500000LL + i * 1000LL));
    json_object_set_new(o, "channel",
                        json_string(e->channel < N_CH ? channels[e->channel] : "sms"));
    json_object_set_new(o, "type", json_string(e->type < N_TY ? types[e->type] : "post_like"));
    json_t *props = NULL;
    for (int k = 0; k < N_PK; k++)
        if (e->props[k] >= 0) {
            if (!props)
                props = json_object();
            json_object_set_new(props, prop_keys[k], prop_value(e->props[k]));
        }
    if (props)
        json_object_set_new(o, "props", props);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    FZ_CHECK(text != NULL, "out of memory");
    char reason[256];
    fn_reject_t r = fn_event_decode(text, strlen(text), cfg, NOW_MS, ev, reason, sizeof reason);
    FZ_CHECK(r == FN_REJ_NONE, "a valid touchpoint was rejected: %s (%s): %s", fn_reject_code(r),
             reason, text);
    free(text);
}

/* The timer spec the model predicts (rules.h): "" when no stage is stale-tracked and the
 * event arms or cancels no rule; else every stage's stale_after, then |U:<name> for each rule
 * an unless matcher cancels, or |A<within>:<name> for each rule the after matcher arms. */
static size_t expected_spec(const model_t *e, char *out, size_t outlen)
{
    bool stale = false, any = false;
    for (int s = 0; s < fm.n_stages; s++)
        stale |= fm.stale_ms[s] > 0;
    for (int i = 0; i < fm.n_rules; i++) {
        any |= model_matches(&fm.rules[i].after, e);
        for (int k = 0; k < fm.rules[i].n_unless; k++)
            any |= model_matches(&fm.rules[i].unless[k], e);
    }
    out[0] = '\0';
    if (!stale && !any)
        return 0;
    size_t n = 0;
    for (int s = 0; s < fm.n_stages; s++)
        n += (size_t)snprintf(out + n, outlen - n, "%s%lld", s ? "," : "", fm.stale_ms[s]);
    for (int i = 0; i < fm.n_rules; i++) {
        const rule_model_t *rm = &fm.rules[i];
        bool cancel = false;
        for (int k = 0; k < rm->n_unless; k++)
            cancel |= model_matches(&rm->unless[k], e);
        if (cancel)
            n += (size_t)snprintf(out + n, outlen - n, "|U:%s", rm->name);
        else if (model_matches(&rm->after, e))
            n += (size_t)snprintf(out + n, outlen - n, "|A%lld:%s", rm->within_ms, rm->name);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t r = {data, size};
    bool skip, regress, conversion;
    json_t *root = read_config(&r, &skip, &regress, &conversion);
    char err[512];
    fn_config_t *cfg = fn_config_from_json(root, err, sizeof err);
    if (!cfg) {
        char *text = json_dumps(root, JSON_COMPACT);
        FZ_CHECK(cfg != NULL, "a valid funnel was rejected: %s\n%s", err, text ? text : "");
    }
    json_decref(root);
    const fn_funnel_t *f = &cfg->funnels[0];
    FZ_CHECK(f->n_stages == (size_t)fm.n_stages && f->allow_skip == skip &&
                 f->allow_regress == regress &&
                 f->conversion_index == (conversion ? fm.n_stages - 1 : -1) &&
                 f->n_lost_on == (size_t)fm.n_lost && f->n_retarget == (size_t)fm.n_rules,
             "config does not hold the funnel it was given");

    /* a match the events below may never produce: one more plan, chosen by the input */
    unsigned pick = next(&r);
    fz_check_plan(f, (fn_match_t){(int)(pick >> 1) % (fm.n_stages + 1) - 1, pick & 1});

    /* one lead through the event sequence, applying each outcome as the Lua step does */
    fn_pos_t pos = {FN_POS_OUTSIDE, -1};
    static char spec[FN_TIMER_SPEC_MAX], want_spec[2 * FN_TIMER_SPEC_MAX];
    for (int i = 0; i < MAX_EVENTS && r.n > 0; i++) {
        model_t e;
        read_event(&r, &e);
        fn_event_t ev;
        make_event(&e, i, &ev, cfg);

        fn_match_t want = {-1, false};
        for (int s = 0; s < fm.n_stages; s++)
            for (int k = 0; k < fm.n_on[s]; k++)
                if (model_matches(&fm.on[s][k], &e))
                    want.stage = s;
        for (int k = 0; k < fm.n_lost; k++)
            want.lost |= model_matches(&fm.lost[k], &e);
        fn_match_t m = fn_rules_match(f, &ev);
        FZ_CHECK(m.stage == want.stage && m.lost == want.lost,
                 "event %d: match stage %d lost %d, model says %d %d", i, m.stage, m.lost,
                 want.stage, want.lost);

        fz_check_plan(f, m);
        char plan[2 * (FN_MAX_STAGES + 3) + 1];
        size_t plen = fn_rules_plan(f, m, plan, sizeof plan);
        fn_outcome_t o = fn_rules_step(f, pos, m);
        fz_check_outcome(f, pos, m, o);
        int slot = fn_rules_pos_index(f, pos);
        if (plen)
            FZ_CHECK(plan[2 * slot] == fz_plan_letter(o.kind) &&
                         plan[2 * slot + 1] == '0' + (o.to >= 0 ? o.to : 0),
                     "event %d: plan slot %d is %c%c, step says %s %d", i, slot, plan[2 * slot],
                     plan[2 * slot + 1], fz_outcome_name(o.kind), o.to);
        else
            FZ_CHECK(o.kind == FN_OUT_TOUCH, "event %d: empty plan but step says %s", i,
                     fz_outcome_name(o.kind));

        fn_pos_t before = pos;
        switch (o.kind) {
        case FN_OUT_TOUCH:
            break;
        case FN_OUT_ENTER:
        case FN_OUT_FORWARD:
        case FN_OUT_BACK:
            pos = (fn_pos_t){FN_POS_ACTIVE, o.to};
            break;
        case FN_OUT_CONVERT:
            pos = (fn_pos_t){FN_POS_CONVERTED, o.to};
            break;
        case FN_OUT_LOST:
            pos = (fn_pos_t){FN_POS_LOST, before.stage};
            break;
        }
        /* the walk: terminal states stay, the stage never decreases without allow_regress */
        if (before.kind == FN_POS_CONVERTED || before.kind == FN_POS_LOST)
            FZ_CHECK(pos.kind == before.kind, "event %d: left a terminal state", i);
        if (before.kind == FN_POS_ACTIVE && pos.kind == FN_POS_ACTIVE && !regress)
            FZ_CHECK(pos.stage >= before.stage, "event %d: %d -> %d without allow_regress", i,
                     before.stage, pos.stage);
        if (before.kind == FN_POS_ACTIVE && pos.stage > before.stage && !skip)
            FZ_CHECK(pos.stage == before.stage + 1, "event %d: %d -> %d without allow_skip", i,
                     before.stage, pos.stage);

        if (fz_trace())
            fprintf(stderr,
                    "fuzz_rules: %zu stages skip %d regress %d conv %d lost %d rules %d: "
                    "event %d %s/%s match %d%s -> %s, lead at %d/%d\n",
                    f->n_stages, skip, regress, f->conversion_index, fm.n_lost, fm.n_rules, i,
                    ev.channel.p, ev.type.p, m.stage, m.lost ? " lost" : "",
                    fz_outcome_name(o.kind), pos.kind, pos.stage);
        size_t n = fn_rules_timer_spec(f, &ev, spec, sizeof spec);
        size_t wn = expected_spec(&e, want_spec, sizeof want_spec);
        FZ_CHECK(n == wn && strcmp(spec, want_spec) == 0 && n < sizeof spec,
                 "event %d: timer spec \"%s\" (%zu), model says \"%s\" (%zu)", i, spec, n,
                 want_spec, wn);
        /* a buffer under FN_TIMER_SPEC_MAX gets nothing but an empty string */
        char small[64];
        size_t cap = (size_t)i % sizeof small;
        memset(small, 0x5a, sizeof small);
        FZ_CHECK(fn_rules_timer_spec(f, &ev, small, cap) == 0 && (cap == 0 || small[0] == '\0') &&
                     (cap != 0 || small[0] == 0x5a),
                 "timer spec into %zu bytes", cap);
        fn_event_clear(&ev);
    }
    fn_config_free(cfg);
    return 0;
}
