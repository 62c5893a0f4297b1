/*
 * test_trigger.c — the timer logic that runs in C: the partition clock of both kinds, the
 * timer spec the rules hand to the Lua step, outbox entries (well-formed and hostile), the
 * deterministic trigger id and the retarget event's JSON.
 */
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/emit.h"
#include "funneld/rules.h"
#include "funneld/trigger.h"

static const char *CONFIG =
    "{\"funnels\":[{\"name\":\"shop\",\"allow_skip\":true,\"stages\":["
    " {\"name\":\"visit\",\"on\":[{\"type\":\"page_view\"}]},"
    " {\"name\":\"cart\",\"on\":[{\"type\":\"cart_add\"}],\"stale_after\":\"2d\"},"
    " {\"name\":\"buy\",\"on\":[{\"type\":\"purchase\"}],\"conversion\":true}],"
    " \"retarget\":[{\"name\":\"cart_abandoned\",\"after\":{\"type\":\"cart_add\"},"
    "   \"unless\":[{\"type\":\"purchase\"}],\"within\":\"1h\"},"
    "  {\"name\":\"browse\",\"after\":{\"type\":\"page_view\"},"
    "   "
    "\"unless\":[{\"type\":\"page_view\",\"props\":{\"url\":\"/thanks\"}}],\"within\":\"30m\"}]},"
    "{\"name\":\"plain\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"page_view\"}]}]}]}";

static fn_config_t *cfg;

static void test_clock(void)
{
    /* event clock: the partition's own latest finished event time, wall time ignored */
    CHECK_INT(fn_trigger_clock(FN_CLOCK_EVENT, 5000, 0, false), 0);
    CHECK_INT(fn_trigger_clock(FN_CLOCK_EVENT, 5000, 7000, true), 7000);
    CHECK_INT(fn_trigger_clock(FN_CLOCK_EVENT, 5000, 3000, false), 3000);
    /* wall clock: wall time when caught up; behind, never past what has been processed */
    CHECK_INT(fn_trigger_clock(FN_CLOCK_WALL, 5000, 3000, true), 5000);
    CHECK_INT(fn_trigger_clock(FN_CLOCK_WALL, 5000, 3000, false), 3000);
    CHECK_INT(fn_trigger_clock(FN_CLOCK_WALL, 5000, 0, false), 0);
    CHECK_INT(fn_trigger_clock(FN_CLOCK_WALL, 5000, 9000, false), 5000);
}

static const char *spec_for(const fn_funnel_t *f, const char *json, char *out)
{
    fn_event_t ev = {0};
    char reason[128];
    fn_reject_t rc = fn_event_decode(json, strlen(json), cfg, fn_now_ms(), &ev, reason, 128);
    CHECK_INT(rc, FN_REJ_NONE);
    fn_rules_timer_spec(f, &ev, out, FN_TIMER_SPEC_MAX);
    fn_event_clear(&ev);
    return out;
}

#define EV(type, extra)                                                                            \
    "{\"event_id\":\"e\",\"lead_id\":\"L\",\"ts\":1000,\"channel\":\"web\",\"type\":\"" type       \
    "\"" extra "}"

static void test_spec(void)
{
    char out[FN_TIMER_SPEC_MAX];
    const fn_funnel_t *shop = &cfg->funnels[0], *plain = &cfg->funnels[1];
    /* a funnel with a stale stage always gets the stale list, so any stage re-arms */
    CHECK_STR(spec_for(shop, EV("email_open", ""), out), "0,172800000,0");
    CHECK_STR(spec_for(shop, EV("cart_add", ""), out), "0,172800000,0|A3600000:cart_abandoned");
    CHECK_STR(spec_for(shop, EV("purchase", ""), out), "0,172800000,0|U:cart_abandoned");
    CHECK_STR(spec_for(shop, EV("page_view", ""), out), "0,172800000,0|A1800000:browse");
    /* matching after and unless at once: unless wins */
    CHECK_STR(spec_for(shop, EV("page_view", ",\"props\":{\"url\":\"/thanks\"}"), out),
              "0,172800000,0|U:browse");
    /* nothing to do for a funnel without stale stages or rules */
    CHECK_STR(spec_for(plain, EV("page_view", ""), out), "");
    /* a too small buffer writes nothing rather than a cut spec */
    char small[8] = "x";
    fn_event_t ev = {0};
    char reason[128];
    const char *j = EV("cart_add", "");
    fn_event_decode(j, strlen(j), cfg, fn_now_ms(), &ev, reason, sizeof reason);
    CHECK_INT(fn_rules_timer_spec(shop, &ev, small, sizeof small), 0);
    CHECK_STR(small, "");
    fn_event_clear(&ev);
}

static void test_parse_and_emit(void)
{
    const char *good = "[\"k|shop|stalled|e9\",\"L-1\",\"shop\",\"stalled\",\"1\","
                       "\"1790172800000\",\"1790000000000\",\"email\",\"email_open\","
                       "\"1790000000000\",\"1200.5\",\"e9\"]";
    fn_trigger_t t;
    char err[128];
    CHECK_INT(fn_trigger_parse(good, strlen(good), &t, err, sizeof err), FN_OK);
    CHECK_INT(t.stage, 1);
    CHECK_INT(t.due, 1790172800000LL);
    char id[33], id2[33];
    fn_trigger_id(&t, id);
    fn_buf_t b = {0};
    CHECK_INT(fn_emit_retarget(&b, &t, &cfg->funnels[0], 1790172801000LL), FN_OK);
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "id")), id);
    CHECK_STR(json_string_value(json_object_get(j, "type")), "retarget");
    CHECK_STR(json_string_value(json_object_get(j, "stage")), "cart");
    CHECK_INT(json_integer_value(json_object_get(j, "idle_ms")), 172800000);
    CHECK_STR(json_string_value(json_object_get(j, "due_at")), "2026-09-23T14:13:20.000Z");
    CHECK_STR(json_string_value(json_object_get(j, "at")), "2026-09-23T14:13:20.000Z");
    CHECK(json_real_value(json_object_get(j, "value")) == 1200.5);
    json_t *lt = json_object_get(j, "last_touch");
    CHECK_STR(json_string_value(json_object_get(lt, "type")), "email_open");
    CHECK_STR(json_string_value(json_object_get(j, "cause_event_id")), "e9");
    json_decref(j);
    json_decref(t.doc);

    /* the id depends on the cause: another arming, another id; the same, the same */
    const char *other = "[\"k\",\"L-1\",\"shop\",\"stalled\",\"1\",\"1\",\"\",\"\",\"\",\"\","
                        "\"\",\"e10\"]";
    CHECK_INT(fn_trigger_parse(other, strlen(other), &t, err, sizeof err), FN_OK);
    fn_trigger_id(&t, id2);
    CHECK(strcmp(id, id2) != 0);
    /* no last touch, no value, funnel gone from the config: nulls, still valid JSON */
    CHECK_INT(fn_emit_retarget(&b, &t, NULL, 2), FN_OK);
    j = json_loadb(b.data, b.len, 0, NULL);
    CHECK(j && json_is_null(json_object_get(j, "stage")));
    CHECK(j && json_is_null(json_object_get(j, "last_touch")));
    CHECK(j && json_is_null(json_object_get(j, "value")));
    json_decref(j);
    json_decref(t.doc);

    /* hostile or damaged entries are refused, never half-read */
    const char *bad[] = {
        "",
        "{}",
        "[1,2,3]",
        "[\"k\",\"L\",\"shop\",\"stalled\",\"x\",\"1\",\"\",\"\",\"\",\"\",\"\",\"e\"]",
        "[\"k\",\"L\",\"shop\",\"stalled\",\"99\",\"1\",\"\",\"\",\"\",\"\",\"\",\"e\"]",
        "[\"k\",\"\",\"shop\",\"stalled\",\"1\",\"1\",\"\",\"\",\"\",\"\",\"\",\"e\"]",
        "[\"k\",\"L\",\"shop\",\"stalled\",\"1\",\"99999999999999999999999\",\"\",\"\",\"\",\"\","
        "\"\",\"e\"]",
        "[\"k\",\"L\",\"shop\",\"stalled\",\"1\",1,\"\",\"\",\"\",\"\",\"\",\"e\"]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        CHECK_INT(fn_trigger_parse(bad[i], strlen(bad[i]), &t, err, sizeof err), FN_ERR);
        CHECK(err[0] != '\0' && t.doc == NULL);
    }
    /* a value that is not a JSON number never reaches the output as one */
    const char *nan = "[\"k\",\"L\",\"shop\",\"r\",\"-1\",\"1\",\"\",\"\",\"\",\"\",\"nan\",\"e\"]";
    CHECK_INT(fn_trigger_parse(nan, strlen(nan), &t, err, sizeof err), FN_OK);
    CHECK_INT(fn_emit_retarget(&b, &t, &cfg->funnels[0], 2), FN_OK);
    j = json_loadb(b.data, b.len, 0, NULL);
    CHECK(j && json_is_null(json_object_get(j, "value")));
    json_decref(j);
    json_decref(t.doc);
    fn_buf_free(&b);
}

int main(void)
{
    json_t *root = json_loads(CONFIG, 0, NULL);
    char err[256];
    cfg = fn_config_from_json(root, err, sizeof err);
    json_decref(root);
    if (!cfg) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    test_clock();
    test_spec();
    test_parse_and_emit();
    fn_config_free(cfg);
    return fn_test_result("test_trigger");
}
