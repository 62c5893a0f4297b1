/*
 * test_analytics.c — fn_analytics_finish's breakdown bound (SPEC §11 max_breakdown): the
 * largest sums over the shards are kept by name, the rest summed under "(other)" (with what
 * the shards already put there), ties broken by name, the total unchanged.
 */
#include <jansson.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/analytics.h"

static void check_case(const char *in, int max, const char *want, const char *why)
{
    fn_funnel_t f = {.name = "f", .n_stages = 1, .max_breakdown = max};
    fn_stage_t stage = {.name = "s"};
    f.stages = &stage;
    fn_funnel_stats_t st;
    CHECK_INT(fn_analytics_begin(&st, &f, 1000), FN_OK);
    json_decref(st.conv_by_campaign);
    st.conv_by_campaign = json_loads(in, 0, NULL);
    fn_analytics_finish(&st, &f);
    char *got = json_dumps(st.conv_by_campaign, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!got || strcmp(got, want) != 0)
        fprintf(stderr, "%s: got %s, want %s\n", why, got ? got : "(null)", want);
    CHECK_STR(got, want);
    free(got);
    fn_analytics_free(&st);
}

int main(void)
{
    check_case("{}", 3, "{}", "empty");
    check_case("{\"a\":1,\"b\":5}", 3, "{\"b\":5,\"a\":1}", "under the bound: ordered by count");
    check_case("{\"a\":1,\"b\":5,\"c\":2,\"d\":9}", 2, "{\"d\":9,\"b\":5,\"(other)\":3}",
               "over: the largest kept, the rest summed");
    check_case("{\"a\":1,\"(other)\":7,\"b\":2,\"c\":3}", 2, "{\"c\":3,\"b\":2,\"(other)\":8}",
               "the shards' (other) is added to");
    check_case("{\"z\":4,\"y\":4,\"x\":4}", 2, "{\"x\":4,\"y\":4,\"(other)\":4}", "ties: by name");
    check_case("{\"(other)\":6,\"a\":1}", 1, "{\"a\":1,\"(other)\":6}",
               "(other) is not a name: it may be larger than every kept one");
    check_case("{\"a\":1}", 0, "{\"a\":1}", "0 (a funnel built by hand): the default bound");
    return fn_test_result("test_analytics");
}
