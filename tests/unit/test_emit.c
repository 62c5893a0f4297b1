/*
 * test_emit.c — output events (SPEC §4): every transition field, skipped stages, lost and
 * erased shapes, JSON escaping of hostile ids, and ids that depend on the cause only.
 */
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/emit.h"

static fn_stage_t stages[5] = {{.name = "awareness"},
                               {.name = "interest"},
                               {.name = "evaluation"},
                               {.name = "decision"},
                               {.name = "purchase", .conversion = true}};
static fn_funnel_t b2b = {.name = "b2b", .stages = stages, .n_stages = 5, .conversion_index = 4};

#define S(lit) ((fn_str_t){lit, sizeof(lit) - 1})

static fn_event_t event(const char *lead, const char *id)
{
    fn_event_t ev = {0};
    ev.lead_id = (fn_str_t){lead, strlen(lead)};
    ev.event_id = (fn_str_t){id, strlen(id)};
    ev.channel = S("web");
    ev.type = S("demo_request");
    return ev;
}

static fn_step_result_t result(void)
{
    fn_step_result_t r = {0};
    r.status = FN_STEP_OK;
    r.at = 1790000000250LL;
    r.value = S("1200.5");
    r.first = (fn_attr_t){S("ads"), S("spring"), S("google"), 1789000000000LL};
    r.last = (fn_attr_t){S("email"), S("nurture-3"), S(""), 1790000000250LL};
    return r;
}

static json_t *emit(const fn_event_t *ev, const fn_step_result_t *r, fn_step_transition_t t)
{
    fn_buf_t b = {0};
    CHECK(fn_emit_transition(&b, ev, r, &t, 1790000001000LL) == FN_OK);
    json_error_t err;
    json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        fprintf(stderr, "invalid JSON: %s in %s\n", err.text, b.data);
    fn_buf_free(&b);
    return j;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}
static long long num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void test_forward_with_skip(void)
{
    fn_event_t ev = event("L-1", "e-991");
    fn_step_result_t r = result();
    json_t *j =
        emit(&ev, &r, (fn_step_transition_t){&b2b, 'F', 0, 3, 86400000, 259200000, 7, NULL});
    CHECK(j != NULL);
    if (!j)
        return;
    CHECK_STR(str(j, "type"), "stage_changed");
    CHECK_STR(str(j, "funnel"), "b2b");
    CHECK_STR(str(j, "lead_id"), "L-1");
    CHECK_STR(str(j, "from"), "awareness");
    CHECK_STR(str(j, "to"), "decision");
    CHECK_INT(num(j, "from_index"), 0);
    CHECK_INT(num(j, "to_index"), 3);
    CHECK_STR(str(j, "direction"), "forward");
    json_t *sk = json_object_get(j, "skipped");
    CHECK_INT(json_array_size(sk), 2);
    CHECK_STR(json_string_value(json_array_get(sk, 0)), "interest");
    CHECK_STR(json_string_value(json_array_get(sk, 1)), "evaluation");
    CHECK_STR(str(j, "at"), "2026-09-21T14:13:20.250Z");
    CHECK_STR(str(j, "emitted_at"), "2026-09-21T14:13:21.000Z");
    CHECK_INT(num(j, "time_in_stage_ms"), 86400000);
    CHECK_INT(num(j, "cycle_ms"), 259200000);
    CHECK_INT(num(j, "touches"), 7);
    CHECK_STR(str(j, "cause_event_id"), "e-991");
    CHECK_STR(str(j, "channel"), "web");
    CHECK(json_real_value(json_object_get(j, "value")) == 1200.5);
    json_t *first = json_object_get(json_object_get(j, "attribution"), "first");
    json_t *last = json_object_get(json_object_get(j, "attribution"), "last");
    CHECK_STR(str(first, "channel"), "ads");
    CHECK_STR(str(first, "campaign"), "spring");
    CHECK_STR(str(first, "source"), "google");
    CHECK_STR(str(first, "at"), "2026-09-10T00:26:40.000Z");
    CHECK_STR(str(last, "campaign"), "nurture-3");
    CHECK(json_is_null(json_object_get(last, "source")));
    CHECK_INT(strlen(str(j, "id")), 32);
    json_decref(j);
}

static void test_shapes(void)
{
    fn_event_t ev = event("L-1", "e1");
    fn_step_result_t r = result();
    r.value = S("");
    /* entering from outside: from is null, every earlier stage skipped */
    json_t *j = emit(&ev, &r, (fn_step_transition_t){&b2b, 'E', -1, 2, 0, 0, 1, NULL});
    CHECK(json_is_null(json_object_get(j, "from")) &&
          json_is_null(json_object_get(j, "from_index")));
    CHECK_INT(json_array_size(json_object_get(j, "skipped")), 2);
    CHECK(json_is_null(json_object_get(j, "value")));
    json_decref(j);
    /* conversion */
    j = emit(&ev, &r, (fn_step_transition_t){&b2b, 'C', 3, 4, 5, 6, 7, NULL});
    CHECK_STR(str(j, "type"), "converted");
    CHECK_STR(str(j, "to"), "purchase");
    CHECK_INT(json_array_size(json_object_get(j, "skipped")), 0);
    json_decref(j);
    /* a conversion's multi-touch credit, grouped by model; an empty campaign is null */
    redisReply words[12], *elems[12];
    const char *text[12] = {"2", "ads", "spring", "0.5", "2",      "email",
                            "",  "0.5", "4",      "ads", "spring", "1"};
    for (int i = 0; i < 12; i++) {
        words[i] = (redisReply){
            .type = REDIS_REPLY_STRING, .str = (char *)text[i], .len = strlen(text[i])};
        elems[i] = &words[i];
    }
    redisReply credit = {.type = REDIS_REPLY_ARRAY, .elements = 12, .element = elems};
    j = emit(&ev, &r, (fn_step_transition_t){&b2b, 'C', 3, 4, 5, 6, 7, &credit});
    json_t *c = json_object_get(j, "credit");
    CHECK_INT(json_object_size(c), 2);
    json_t *lin = json_object_get(c, "linear"), *pos = json_object_get(c, "position_based");
    CHECK_INT(json_array_size(lin), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(lin, 0), "campaign")), "spring");
    CHECK(json_is_null(json_object_get(json_array_get(lin, 1), "campaign")));
    CHECK(json_real_value(json_object_get(json_array_get(lin, 1), "weight")) == 0.5);
    CHECK_INT(json_array_size(pos), 1);
    CHECK(json_number_value(json_object_get(json_array_get(pos, 0), "weight")) == 1.0);
    json_decref(j);
    /* none: no credit field */
    j = emit(&ev, &r, (fn_step_transition_t){&b2b, 'C', 3, 4, 5, 6, 7, NULL});
    CHECK(json_object_get(j, "credit") == NULL);
    json_decref(j);
    /* back */
    j = emit(&ev, &r, (fn_step_transition_t){&b2b, 'B', 3, 1, 5, 6, 7, NULL});
    CHECK_STR(str(j, "direction"), "back");
    CHECK_INT(json_array_size(json_object_get(j, "skipped")), 0);
    json_decref(j);
    /* lost */
    j = emit(&ev, &r, (fn_step_transition_t){&b2b, 'L', 2, -1, 5, 6, 7, NULL});
    CHECK_STR(str(j, "type"), "lost");
    CHECK_STR(str(j, "from"), "evaluation");
    CHECK(json_is_null(json_object_get(j, "to")) && json_is_null(json_object_get(j, "to_index")));
    CHECK_STR(str(j, "direction"), "lost");
    json_decref(j);
}

static void test_erased_and_hostile(void)
{
    fn_event_t ev = event("evil\"}\n{\\", "x");
    fn_buf_t b = {0};
    CHECK(fn_emit_erased(&b, &ev, &b2b, 1790000000000LL, 1790000000001LL) == FN_OK);
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    CHECK(j != NULL);
    CHECK_STR(str(j, "type"), "lead_erased");
    CHECK_STR(str(j, "lead_id"), "evil\"}\n{\\");
    CHECK_STR(str(j, "cause_event_id"), "x");
    CHECK(strchr(b.data, '\n') == NULL); /* one event, one line */
    json_decref(j);
    fn_buf_free(&b);
}

static void test_ids(void)
{
    fn_event_t a = event("L-1", "e1"), b = event("L-1", "e2"), c = event("L-2", "e1");
    char ia[33], ia2[33], ib[33], ic[33], it[33], ifn[33];
    fn_emit_id("stage_changed", "b2b", &a, ia);
    fn_emit_id("stage_changed", "b2b", &a, ia2);
    fn_emit_id("stage_changed", "b2b", &b, ib);
    fn_emit_id("stage_changed", "b2b", &c, ic);
    fn_emit_id("converted", "b2b", &a, it);
    fn_emit_id("stage_changed", "aida", &a, ifn);
    CHECK_STR(ia, ia2);
    CHECK(strcmp(ia, ib) && strcmp(ia, ic) && strcmp(ia, it) && strcmp(ia, ifn));
    /* ids are stable across releases: consumers de-duplicate on them */
    CHECK_STR(ia, "350f6e6d59d82c8cf5d66d641c47b1ab");
}

int main(void)
{
    test_forward_with_skip();
    test_shapes();
    test_erased_and_hostile();
    test_ids();
    return fn_test_result("test_emit");
}
