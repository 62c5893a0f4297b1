/*
 * test_merge.c — the identity merge rules of SPEC §10 (fn_merge_leads): a table of one
 * funnel's two positions (outside, active at a stage, converted, lost on either side) with the
 * merged position and the kept lead's move; the lead-level rules (first and last touch,
 * value, consent in every order); and invariants over many random pairs (the merged position
 * is one side's, the kept lead never moves back, touches add up, entry and activity times
 * are the earliest and latest).
 */
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/merge.h"

enum { OUT = FN_POS_OUTSIDE, ACT = FN_POS_ACTIVE, CONV = FN_POS_CONVERTED, LOST = FN_POS_LOST };

typedef struct side {
    int kind, stage;
    int64_t entered;
} side_t;

typedef struct fcase {
    const char *name;
    side_t kept, absorbed;
    int want_kind, want_stage;
    int64_t want_entered;
    fn_outcome_kind_t move;
    int from, to;
    bool either;
} fcase_t;

static const fcase_t funnels[] = {
    {"neither has state", {OUT, 0, 0}, {OUT, 0, 0}, OUT, 0, 0, FN_OUT_TOUCH, -1, -1, false},
    {"absorbed only, active", {OUT, 0, 0}, {ACT, 2, 100}, ACT, 2, 100, FN_OUT_ENTER, -1, 2, true},
    {"kept only, active", {ACT, 1, 100}, {OUT, 0, 0}, ACT, 1, 100, FN_OUT_TOUCH, 1, -1, true},
    {"further stage wins: absorbed",
     {ACT, 1, 100},
     {ACT, 3, 50},
     ACT,
     3,
     50,
     FN_OUT_FORWARD,
     1,
     3,
     true},
    {"further stage wins: kept",
     {ACT, 3, 100},
     {ACT, 1, 50},
     ACT,
     3,
     100,
     FN_OUT_TOUCH,
     3,
     -1,
     true},
    {"same stage: the earlier arrival",
     {ACT, 2, 500},
     {ACT, 2, 100},
     ACT,
     2,
     100,
     FN_OUT_TOUCH,
     2,
     -1,
     true},
    {"same stage, same time: kept",
     {ACT, 2, 100},
     {ACT, 2, 100},
     ACT,
     2,
     100,
     FN_OUT_TOUCH,
     2,
     -1,
     true},
    {"converted side wins: absorbed",
     {ACT, 2, 100},
     {CONV, 4, 900},
     CONV,
     4,
     900,
     FN_OUT_CONVERT,
     2,
     4,
     true},
    {"converted side wins: kept",
     {CONV, 4, 900},
     {ACT, 3, 100},
     CONV,
     4,
     900,
     FN_OUT_TOUCH,
     -1,
     -1,
     true},
    {"both converted: the earlier",
     {CONV, 4, 900},
     {CONV, 4, 300},
     CONV,
     4,
     300,
     FN_OUT_TOUCH,
     -1,
     -1,
     true},
    {"converted over lost",
     {LOST, 2, 100},
     {CONV, 4, 900},
     CONV,
     4,
     900,
     FN_OUT_CONVERT,
     -1,
     4,
     true},
    {"converted, kept had none",
     {OUT, 0, 0},
     {CONV, 4, 900},
     CONV,
     4,
     900,
     FN_OUT_CONVERT,
     -1,
     4,
     true},
    {"active over lost: absorbed",
     {LOST, 2, 100},
     {ACT, 1, 50},
     ACT,
     1,
     50,
     FN_OUT_ENTER,
     -1,
     1,
     true},
    {"active over lost: kept",
     {ACT, 1, 100},
     {LOST, 3, 50},
     ACT,
     1,
     100,
     FN_OUT_TOUCH,
     1,
     -1,
     true},
    {"both lost: the kept",
     {LOST, 2, 100},
     {LOST, 3, 50},
     LOST,
     2,
     100,
     FN_OUT_TOUCH,
     -1,
     -1,
     true},
    {"lost, kept had none: no transition",
     {OUT, 0, 0},
     {LOST, 2, 50},
     LOST,
     2,
     50,
     FN_OUT_TOUCH,
     -1,
     -1,
     true},
};

static fn_merge_funnel_t make(side_t s, int64_t began, int64_t active, int64_t touches)
{
    fn_merge_funnel_t f = {{(fn_pos_kind_t)s.kind, s.stage}, s.entered, 0, 0, 0};
    if (s.kind != OUT)
        f.began_at = began, f.active_at = active, f.touches = touches;
    return f;
}

static void test_funnel_table(void)
{
    for (size_t i = 0; i < sizeof funnels / sizeof funnels[0]; i++) {
        const fcase_t *c = &funnels[i];
        fn_merge_lead_t k = {.n_funnels = 1}, a = {.n_funnels = 1}, out;
        fn_merge_move_t mv;
        k.funnel[0] = make(c->kept, 40, 1000, 3);
        a.funnel[0] = make(c->absorbed, 20, 2000, 4);
        fn_merge_leads(&k, &a, &out, &mv);
        const fn_merge_funnel_t *m = &out.funnel[0];
        int fails = fn_test_failures;
        CHECK_INT(m->pos.kind, c->want_kind);
        if (c->want_kind != OUT) {
            CHECK_INT(m->pos.stage, c->want_stage);
            CHECK_INT(m->entered_at, c->want_entered);
        }
        CHECK_INT(mv.kind, c->move);
        if (mv.kind != FN_OUT_TOUCH) {
            CHECK_INT(mv.from, c->from);
            CHECK_INT(mv.to, c->to);
        }
        CHECK_INT(mv.either, c->either);
        /* entered the funnel: the earliest; activity: the latest; touches add up */
        bool k_in = c->kept.kind != OUT, a_in = c->absorbed.kind != OUT;
        CHECK_INT(m->began_at, a_in ? 20 : k_in ? 40 : 0);
        CHECK_INT(m->active_at, a_in ? 2000 : k_in ? 1000 : 0);
        CHECK_INT(m->touches, (k_in ? 3 : 0) + (a_in ? 4 : 0));
        if (fn_test_failures != fails)
            fprintf(stderr, "  in funnel case \"%s\"\n", c->name);
    }
}

static fn_merge_touch_t touch(const char *ch, int64_t at)
{
    fn_merge_touch_t t = {true, {ch, strlen(ch)}, {"", 0}, {"", 0}, at};
    return t;
}

static void test_lead_fields(void)
{
    fn_merge_lead_t k = {.has_ts = true, .ts = 500, .n_funnels = 0};
    fn_merge_lead_t a = {.has_ts = true, .ts = 700, .n_funnels = 0}, out;
    fn_merge_move_t mv[1];
    k.first = touch("email", 100), k.last = touch("web", 500);
    a.first = touch("ads", 50), a.last = touch("crm", 700);
    k.has_value = true, k.value = (fn_str_t){"100", 3}, k.value_at = 400;
    a.has_value = true, a.value = (fn_str_t){"250.5", 5}, a.value_at = 300;
    fn_merge_leads(&k, &a, &out, mv);
    CHECK_INT(out.ts, 700);
    CHECK_STR(out.first.channel.p, "ads"); /* the earliest first touch */
    CHECK_STR(out.last.channel.p, "crm");  /* the latest last touch */
    CHECK_STR(out.value.p, "100");         /* the latest value by event time: the kept one's */
    CHECK_INT(out.value_at, 400);

    /* ties go to the kept lead; a side without a touch or a value takes the other's */
    a.first = touch("ads", 100), a.last = touch("crm", 500), a.value_at = 400;
    fn_merge_leads(&k, &a, &out, mv);
    CHECK_STR(out.first.channel.p, "email");
    CHECK_STR(out.last.channel.p, "web");
    CHECK_STR(out.value.p, "100");
    k.first.set = k.last.set = k.has_value = false, k.has_ts = false;
    fn_merge_leads(&k, &a, &out, mv);
    CHECK_STR(out.first.channel.p, "ads");
    CHECK_STR(out.last.channel.p, "crm");
    CHECK(out.has_value);
    CHECK_STR(out.value.p, "250.5");
    CHECK_INT(out.ts, 700);
    a.has_ts = false;
    fn_merge_leads(&k, &a, &out, mv);
    CHECK(!out.has_ts);
}

static void test_consent(void)
{
    static const struct {
        char kc;
        int kt; /* -1: time not known */
        char ac;
        int at;
        char want;
        int want_at;
    } cases[] = {
        {'1', 100, '0', 50, '1', 100},  /* the later event: the kept opt-in */
        {'1', 100, '0', 200, '0', 200}, /* the later event: the absorbed opt-out */
        {'0', 100, '1', 200, '1', 200}, /* a later opt-in overrides an opt-out */
        {0, -1, '0', 50, '0', 50},      /* only one side has consent */
        {'1', 60, 0, -1, '1', 60},
        {'1', -1, '0', 200, '0', 200}, /* a time not known: an opt-out wins */
        {'0', -1, '1', 200, '0', -1},
        {'1', 100, '1', 100, '1', 100}, /* a tie: the kept */
        {0, -1, 0, -1, 0, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_merge_lead_t k = {0}, a = {0}, out;
        fn_merge_move_t mv[1];
        k.consent = cases[i].kc, k.has_consent_at = cases[i].kt >= 0, k.consent_at = cases[i].kt;
        a.consent = cases[i].ac, a.has_consent_at = cases[i].at >= 0, a.consent_at = cases[i].at;
        fn_merge_leads(&k, &a, &out, mv);
        CHECK_INT(out.consent, cases[i].want);
        CHECK_INT(out.has_consent_at, cases[i].want_at >= 0);
        if (cases[i].want_at >= 0)
            CHECK_INT(out.consent_at, cases[i].want_at);
        if (out.consent != cases[i].want)
            fprintf(stderr, "  consent case %zu\n", i);
    }
}

static side_t random_side(unsigned *seed)
{
    side_t s = {rand_r(seed) % 4, rand_r(seed) % 5, 100 + rand_r(seed) % 1000};
    if (s.kind == CONV)
        s.stage = 4;
    return s;
}

/* Over many random pairs in several funnels: the merged position is one side's; a converted
 * kept lead stays converted, an active one never goes back; the move agrees with the
 * positions; the entry time is the earliest and touches add up. */
static void test_invariants(void)
{
    unsigned seed = 19;
    int bad = 0;
    for (int n = 0; n < 20000; n++) {
        fn_merge_lead_t k = {.n_funnels = 3}, a = {.n_funnels = 3}, out;
        fn_merge_move_t mv[3];
        for (int f = 0; f < 3; f++) {
            k.funnel[f] = make(random_side(&seed), rand_r(&seed) % 100, rand_r(&seed) % 5000,
                               rand_r(&seed) % 9);
            a.funnel[f] = make(random_side(&seed), rand_r(&seed) % 100, rand_r(&seed) % 5000,
                               rand_r(&seed) % 9);
        }
        fn_merge_leads(&k, &a, &out, mv);
        for (int f = 0; f < 3; f++) {
            const fn_merge_funnel_t *kf = &k.funnel[f], *af = &a.funnel[f], *m = &out.funnel[f];
            bool is_k = m->pos.kind == kf->pos.kind && m->pos.stage == kf->pos.stage &&
                        m->entered_at == kf->entered_at;
            bool is_a = m->pos.kind == af->pos.kind && m->pos.stage == af->pos.stage &&
                        m->entered_at == af->entered_at;
            bool ok = is_k || is_a;
            if (kf->pos.kind == FN_POS_CONVERTED)
                ok = ok && m->pos.kind == FN_POS_CONVERTED;
            if (kf->pos.kind == FN_POS_ACTIVE)
                ok = ok && (m->pos.kind == FN_POS_CONVERTED ||
                            (m->pos.kind == FN_POS_ACTIVE && m->pos.stage >= kf->pos.stage));
            bool stays = (m->pos.kind == kf->pos.kind && m->pos.stage == kf->pos.stage) ||
                         m->pos.kind == FN_POS_LOST || m->pos.kind == FN_POS_OUTSIDE;
            ok = ok && (mv[f].kind == FN_OUT_TOUCH) == stays;
            if (mv[f].kind != FN_OUT_TOUCH)
                ok = ok && mv[f].to == m->pos.stage;
            bool k_in = kf->pos.kind != FN_POS_OUTSIDE, a_in = af->pos.kind != FN_POS_OUTSIDE;
            ok = ok && m->touches == (k_in ? kf->touches : 0) + (a_in ? af->touches : 0);
            if (k_in && a_in)
                ok = ok &&
                     m->began_at == (kf->began_at < af->began_at ? kf->began_at : af->began_at);
            ok = ok && mv[f].either == (k_in || a_in);
            if (!ok && bad++ < 5)
                fprintf(stderr, "  pair %d funnel %d: kept %d/%d absorbed %d/%d -> %d/%d move %d\n",
                        n, f, kf->pos.kind, kf->pos.stage, af->pos.kind, af->pos.stage, m->pos.kind,
                        m->pos.stage, mv[f].kind);
        }
    }
    CHECK_INT(bad, 0);
}

int main(void)
{
    test_funnel_table();
    test_lead_fields();
    test_consent();
    test_invariants();
    return fn_test_result("test_merge");
}
