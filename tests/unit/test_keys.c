/*
 * test_keys.c — the keys module writes the layout of daemon/state/README.md byte for byte:
 * existing data sets stay readable only as long as these strings never change.
 */
#include <string.h>

#include "fn_test.h"
#include "funneld/keys.h"

#define HEX "0123456789abcdeffedcba9876543210"

/* Each key function's output for a given prefix, shard and hash, against the layout. */
static void test_keys_match_the_layout(void)
{
    char got[16][200], lead[200];
    size_t n = 0;
    fn_key_lead(got[n++], sizeof got[0], "fn", 7, HEX);
    fn_key_seen(got[n++], sizeof got[0], "fn", 7, HEX);
    fn_key_out(got[n++], sizeof got[0], "a.b-c_D9", 63, HEX);
    fn_key_stats(got[n++], sizeof got[0], "fn", 0);
    fn_key_outbox(got[n++], sizeof got[0], "fn", 12);
    fn_key_leases(got[n++], sizeof got[0], "fn", 12);
    fn_key_due(got[n++], sizeof got[0], "fn", 3, "touchpoints", 11);
    fn_key_epoch(got[n++], sizeof got[0], "fn");
    fn_key_shard_epoch(got[n++], sizeof got[0], "fn", 5);
    fn_key_bn(got[n++], sizeof got[0], "fn", "sales");
    fn_key_eval(got[n++], sizeof got[0], "fn", "sales", 1795342500000LL, 0);
    fn_key_eval(got[n++], sizeof got[0], "fn", "sales", 1795342500000LL, 1);
    fn_field_funnel(got[n++], sizeof got[0], "sales", FN_FF_STAGE);
    fn_field_funnel(got[n++], sizeof got[0], "sales", FN_FF_TIMER);
    /* a due zset's member names the lead by its key's tail, whatever the prefix holds */
    fn_key_lead(lead, sizeof lead, "fn:lead:x", 7, HEX);
    fn_key_timer_member(got[n++], sizeof got[0], lead, "sales", "stalled", 7);
    fn_key_timer_member(got[n++], sizeof got[0], lead, "sales", "cart_abandonedX", 14);
    static const char *const expected[] = {
        "fn:{7}:lead:" HEX,
        "fn:{7}:seen:" HEX,
        "a.b-c_D9:{63}:out:" HEX,
        "fn:{0}:stats",
        "fn:{12}:outbox",
        "fn:{12}:leases",
        "fn:{3}:due:touchpoints:11",
        "fn:epoch",
        "fn:{5}:epoch",
        "fn:bn:sales",
        "fn:eval:sales:1795342500000",
        "fn:eval:sales:1795342500000:s",
        "sales|k",
        "sales|t|",
        HEX "|sales|stalled",
        HEX "|sales|cart_abandoned",
    };
    CHECK_INT(n, sizeof expected / sizeof *expected);
    for (size_t i = 0; i < n; i++)
        CHECK_STR(got[i], expected[i]);
}

/* The field names of the README's table, and the status values step.lua writes. */
static void test_field_names_match_the_layout(void)
{
    static const struct {
        const char *got, *expected;
    } cases[] = {
        {FN_F_ID, "id"},
        {FN_F_TS, "ts"},
        {FN_F_CONSENT, "c"},
        {FN_F_VALUE, "v"},
        {FN_F_VALUE_AT, "vt"},
        {FN_F_TIMERS_NEXT, "tn"},
        {FN_F_SEEN_EXPIRY, "sx"},
        {FN_F_FIRST_CH, "f.ch"},
        {FN_F_FIRST_CP, "f.cp"},
        {FN_F_FIRST_SRC, "f.src"},
        {FN_F_FIRST_AT, "f.at"},
        {FN_F_LAST_CH, "l.ch"},
        {FN_F_LAST_CP, "l.cp"},
        {FN_F_LAST_SRC, "l.src"},
        {FN_F_LAST_AT, "l.at"},
        {FN_F_LAST_TYPE, "l.ty"},
        {FN_FF_POS, "|p"},
        {FN_FF_STAGE, "|k"},
        {FN_FF_STATUS, "|x"},
        {FN_FF_ENTERED, "|e"},
        {FN_FF_BEGAN, "|b"},
        {FN_FF_TOUCHES, "|n"},
        {FN_FF_ACTIVE, "|a"},
        {FN_FF_CAP, "|cap"},
        {FN_FF_TIMER, "|t|"},
        {FN_STATUS_ACTIVE, "a"},
        {FN_STATUS_CONVERTED, "c"},
        {FN_STATUS_LOST, "l"},
        {FN_KEY_FLOW, "flow:"},
        {FN_KEY_SKETCH, "sk:"},
        {FN_KEY_IDS, "ids:"},
        {FN_F_CONSENT_AT, "ct"},
        {FN_F_MERGED_INTO, "mi"},
        {FN_F_MERGE_CAUSE, "mc"},
        {FN_F_MERGE_PENDING, "mp"},
        {FN_F_FORGOTTEN, "fg"},
        {FN_KEY_MARKET, "mkt:"},
        {FN_KEY_MARKET_MIN, "mkm:"},
        {FN_FF_MARKOV_LAST, "|m"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_STR(cases[i].got, cases[i].expected);
}

/* The name table the Lua prelude test compares against lists every name once. */
static void test_name_table_is_unique(void)
{
    CHECK(fn_key_n_names > 30);
    for (size_t i = 0; i < fn_key_n_names; i++)
        for (size_t j = i + 1; j < fn_key_n_names; j++)
            CHECK(strcmp(fn_key_names[i].name, fn_key_names[j].name) != 0);
}

/* A key that does not fit is cut, NUL-terminated, never overrun. */
static void test_truncates(void)
{
    char k[8];
    memset(k, 'x', sizeof k);
    fn_key_lead(k, sizeof k, "fn", 7, HEX);
    CHECK_STR(k, "fn:{7}:");
    fn_key_eval(k, sizeof k, "fn", "sales", 17, 1);
    CHECK_STR(k, "fn:eval");
    fn_key_stats(k, 0, "fn", 1); /* writes nothing */
    /* at the edge: a key that just fits is whole, one byte less cuts its last character */
    char e[13];
    CHECK_INT(fn_key_shard(e, sizeof e, "fn", 1, FN_KEY_STATS, "", 0), 12);
    CHECK_STR(e, "fn:{1}:stats");
    CHECK_INT(fn_key_shard(e, sizeof e - 1, "fn", 1, FN_KEY_STATS, "", 0), 11);
    CHECK_STR(e, "fn:{1}:stat");
}

int main(void)
{
    test_keys_match_the_layout();
    test_field_names_match_the_layout();
    test_name_table_is_unique();
    test_truncates();
    return fn_test_result("test_keys");
}
