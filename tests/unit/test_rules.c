/*
 * test_rules.c — the funnel rules of SPEC §3, table by table: matching (highest stage wins,
 * props equality, lost), the state machine for every position and option, and the plan the
 * Lua step applies.
 */
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/rules.h"

static fn_matcher_t M(const char *channel, const char *type, const char *props_json)
{
    fn_matcher_t m = {(char *)channel, (char *)type, NULL};
    if (props_json)
        m.props = json_loads(props_json, 0, NULL);
    return m;
}

/* SPEC §2's b2b funnel: awareness, interest, evaluation, decision, purchase (conversion). */
static fn_matcher_t on_aw[2], on_in[2], on_ev[2], on_de[2], on_pu[1], on_lost[1];
static fn_stage_t stages[5];
static fn_funnel_t b2b;

static void setup(void)
{
    on_aw[0] = M(NULL, "page_view", NULL), on_aw[1] = M(NULL, "ad_click", NULL);
    on_in[0] = M(NULL, "email_click", NULL), on_in[1] = M(NULL, "content_download", NULL);
    on_ev[0] = M(NULL, "demo_request", NULL), on_ev[1] = M(NULL, "trial_start", NULL);
    on_de[0] = M(NULL, "checkout_start", NULL);
    on_de[1] = M("crm", "deal_stage", "{\"stage\":\"proposal\"}");
    on_pu[0] = M(NULL, "purchase", NULL);
    on_lost[0] = M(NULL, "deal_lost", NULL);
    stages[0] = (fn_stage_t){.name = "awareness", .on = on_aw, .n_on = 2};
    stages[1] = (fn_stage_t){.name = "interest", .on = on_in, .n_on = 2};
    stages[2] = (fn_stage_t){.name = "evaluation", .on = on_ev, .n_on = 2};
    stages[3] = (fn_stage_t){.name = "decision", .on = on_de, .n_on = 2};
    stages[4] = (fn_stage_t){.name = "purchase", .on = on_pu, .n_on = 1, .conversion = true};
    b2b = (fn_funnel_t){.name = "b2b",
                        .stages = stages,
                        .n_stages = 5,
                        .lost_on = on_lost,
                        .n_lost_on = 1,
                        .allow_skip = true,
                        .conversion_index = 4};
}

static fn_event_t ev_of(const char *json)
{
    fn_event_t ev = {0};
    ev.doc = json_loads(json, 0, NULL);
    json_t *c = json_object_get(ev.doc, "channel"), *t = json_object_get(ev.doc, "type");
    ev.channel = (fn_str_t){json_string_value(c), json_string_length(c)};
    ev.type = (fn_str_t){json_string_value(t), json_string_length(t)};
    ev.props = json_object_get(ev.doc, "props");
    return ev;
}

static void test_match(void)
{
    static const struct {
        const char *json;
        int stage;
        bool lost;
    } cases[] = {
        {"{\"channel\":\"web\",\"type\":\"page_view\"}", 0, false},
        {"{\"channel\":\"ads\",\"type\":\"ad_click\"}", 0, false},
        {"{\"channel\":\"email\",\"type\":\"email_open\"}", -1, false},
        {"{\"channel\":\"email\",\"type\":\"email_click\"}", 1, false},
        {"{\"channel\":\"web\",\"type\":\"trial_start\"}", 2, false},
        /* the CRM matcher needs channel, type and props.stage all equal */
        {"{\"channel\":\"crm\",\"type\":\"deal_stage\",\"props\":{\"stage\":\"proposal\"}}", 3,
         false},
        {"{\"channel\":\"web\",\"type\":\"deal_stage\",\"props\":{\"stage\":\"proposal\"}}", -1,
         false},
        {"{\"channel\":\"crm\",\"type\":\"deal_stage\",\"props\":{\"stage\":\"won\"}}", -1, false},
        {"{\"channel\":\"crm\",\"type\":\"deal_stage\"}", -1, false},
        {"{\"channel\":\"crm\",\"type\":\"deal_stage\",\"props\":{\"stage\":1}}", -1, false},
        {"{\"channel\":\"web\",\"type\":\"purchase\"}", 4, false},
        {"{\"channel\":\"crm\",\"type\":\"deal_lost\"}", -1, true},
        {"{\"channel\":\"web\",\"type\":\"PAGE_VIEW\"}", -1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_event_t ev = ev_of(cases[i].json);
        fn_match_t m = fn_rules_match(&b2b, &ev);
        CHECK_INT(m.stage, cases[i].stage);
        CHECK_INT(m.lost, cases[i].lost);
        json_decref(ev.doc);
    }

    /* with several matching stages the highest counts */
    fn_matcher_t any_web = M("web", NULL, NULL);
    fn_stage_t st2[2] = {{.name = "a", .on = &any_web, .n_on = 1},
                         {.name = "b", .on = on_ev, .n_on = 2}};
    fn_funnel_t f2 = {.name = "x", .stages = st2, .n_stages = 2, .conversion_index = -1};
    fn_event_t ev = ev_of("{\"channel\":\"web\",\"type\":\"demo_request\"}");
    CHECK_INT(fn_rules_match(&f2, &ev).stage, 1);
    json_decref(ev.doc);
    (void)any_web;
}

#define OUT(k, f, t) ((fn_outcome_t){FN_OUT_##k, f, t})
#define POS(k, s) ((fn_pos_t){FN_POS_##k, s})
#define MATCH(s, l) ((fn_match_t){s, l})

static void test_step(void)
{
    static const struct {
        bool skip, regress;
        fn_pos_t pos;
        fn_match_t m;
        fn_outcome_t want;
    } cases[] = {
        /* entry from outside, at the matched stage, whatever allow_skip says */
        {true, false, POS(OUTSIDE, -1), MATCH(0, false), OUT(ENTER, -1, 0)},
        {false, false, POS(OUTSIDE, -1), MATCH(2, false), OUT(ENTER, -1, 2)},
        {false, false, POS(OUTSIDE, -1), MATCH(4, false), OUT(CONVERT, -1, 4)},
        {true, false, POS(OUTSIDE, -1), MATCH(-1, false), OUT(TOUCH, -1, -1)},
        /* lost before entering is only a touch */
        {true, false, POS(OUTSIDE, -1), MATCH(-1, true), OUT(TOUCH, -1, -1)},
        /* forward with and without allow_skip */
        {true, false, POS(ACTIVE, 0), MATCH(1, false), OUT(FORWARD, 0, 1)},
        {true, false, POS(ACTIVE, 0), MATCH(3, false), OUT(FORWARD, 0, 3)},
        {false, false, POS(ACTIVE, 0), MATCH(3, false), OUT(FORWARD, 0, 1)},
        {true, false, POS(ACTIVE, 1), MATCH(4, false), OUT(CONVERT, 1, 4)},
        {false, false, POS(ACTIVE, 1), MATCH(4, false), OUT(FORWARD, 1, 2)},
        {false, false, POS(ACTIVE, 3), MATCH(4, false), OUT(CONVERT, 3, 4)},
        /* same stage: a touch */
        {true, true, POS(ACTIVE, 2), MATCH(2, false), OUT(TOUCH, -1, -1)},
        /* backward only with allow_regress */
        {true, false, POS(ACTIVE, 3), MATCH(1, false), OUT(TOUCH, -1, -1)},
        {true, true, POS(ACTIVE, 3), MATCH(1, false), OUT(BACK, 3, 1)},
        {false, true, POS(ACTIVE, 3), MATCH(0, false), OUT(BACK, 3, 0)},
        /* lost from any active stage; lost wins over a stage match */
        {true, false, POS(ACTIVE, 2), MATCH(-1, true), OUT(LOST, 2, -1)},
        {true, false, POS(ACTIVE, 2), MATCH(4, true), OUT(LOST, 2, -1)},
        /* terminal states: touches only */
        {true, true, POS(CONVERTED, 4), MATCH(0, false), OUT(TOUCH, -1, -1)},
        {true, true, POS(CONVERTED, 4), MATCH(4, false), OUT(TOUCH, -1, -1)},
        {true, true, POS(CONVERTED, 4), MATCH(-1, true), OUT(TOUCH, -1, -1)},
        {true, true, POS(LOST, 2), MATCH(3, false), OUT(TOUCH, -1, -1)},
        {true, true, POS(LOST, 2), MATCH(-1, true), OUT(TOUCH, -1, -1)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_funnel_t f = b2b;
        f.allow_skip = cases[i].skip;
        f.allow_regress = cases[i].regress;
        fn_outcome_t o = fn_rules_step(&f, cases[i].pos, cases[i].m);
        if (o.kind != cases[i].want.kind || o.from != cases[i].want.from ||
            o.to != cases[i].want.to)
            fprintf(stderr, "step case %zu: got kind %d %d->%d\n", i, o.kind, o.from, o.to);
        CHECK_INT(o.kind, cases[i].want.kind);
        CHECK_INT(o.from, cases[i].want.from);
        CHECK_INT(o.to, cases[i].want.to);
    }

    /* a funnel without a conversion stage never converts */
    fn_funnel_t nc = b2b;
    nc.conversion_index = -1;
    CHECK_INT(fn_rules_step(&nc, POS(ACTIVE, 3), MATCH(4, false)).kind, FN_OUT_FORWARD);
}

static void test_plan(void)
{
    char plan[2 * (FN_MAX_STAGES + 3) + 1];
    /* slots: outside, stages 0..4, converted, lost */
    CHECK_INT(fn_rules_plan(&b2b, MATCH(2, false), plan, sizeof plan), 16);
    CHECK_STR(plan, "E2F2F2T0T0T0T0T0");
    CHECK_INT(fn_rules_plan(&b2b, MATCH(4, false), plan, sizeof plan), 16);
    CHECK_STR(plan, "C4C4C4C4C4T0T0T0");
    CHECK_INT(fn_rules_plan(&b2b, MATCH(-1, true), plan, sizeof plan), 16);
    CHECK_STR(plan, "T0L0L0L0L0L0T0T0");
    /* nothing matched: an empty plan means "touch" for every position */
    CHECK_INT(fn_rules_plan(&b2b, MATCH(-1, false), plan, sizeof plan), 0);
    CHECK_STR(plan, "");
    /* a plan whose every slot is a touch is sent as empty too */
    fn_funnel_t one = b2b;
    one.n_stages = 1;
    one.conversion_index = -1;
    one.lost_on = NULL;
    CHECK_INT(fn_rules_plan(&one, MATCH(0, false), plan, sizeof plan), 8);
    CHECK_STR(plan, "E0T0T0T0");
    /* too small a buffer yields no plan rather than a truncated one */
    CHECK_INT(fn_rules_plan(&b2b, MATCH(2, false), plan, 10), 0);

    CHECK_INT(fn_rules_pos_index(&b2b, POS(OUTSIDE, -1)), 0);
    CHECK_INT(fn_rules_pos_index(&b2b, POS(ACTIVE, 3)), 4);
    CHECK_INT(fn_rules_pos_index(&b2b, POS(CONVERTED, 4)), 6);
    CHECK_INT(fn_rules_pos_index(&b2b, POS(LOST, 1)), 7);
}

static void teardown(void)
{
    json_decref(on_de[1].props);
}

int main(void)
{
    setup();
    test_match();
    test_step();
    test_plan();
    teardown();
    return fn_test_result("test_rules");
}
