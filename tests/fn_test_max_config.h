/*
 * fn_test_max_config.h — the largest config funneld accepts (FN_MAX_FUNNELS funnels, the first
 * with FN_MAX_STAGES stages, a stale_after on each and FN_MAX_RULES retarget rules, every
 * funnel with a trigger cap), as JSON text, for the tests that prove the step carries it.
 *
 * Funnel "f0": stage 0 on page_view, stage i on type "t<i>", the last stage the conversion;
 * rules r0..r<FN_MAX_RULES-1> after cart_add within 10 minutes unless purchase. Funnels "f1"..:
 * stage 0 on page_view, stage 1 on purchase (conversion).
 */
#ifndef FN_TEST_MAX_CONFIG_H
#define FN_TEST_MAX_CONFIG_H

#include <stdio.h>
#include <stdlib.h>

#include "funneld/common.h"

/* The config under key prefix prefix (a string the caller frees), or NULL without memory. */
static inline char *fn_test_max_config_json(const char *prefix, const char *clock)
{
    size_t cap = 64 * 1024, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
#define PUT(...) (n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, __VA_ARGS__))
    PUT("{\"max_future\":0,\"clock\":\"%s\",\"redis\":{\"key_prefix\":\"%s\",\"shards\":4},"
        "\"funnels\":[",
        clock, prefix);
    for (int f = 0; f < FN_MAX_FUNNELS; f++) {
        int stages = f == 0 ? FN_MAX_STAGES : 2;
        PUT("%s{\"name\":\"f%d\",\"allow_skip\":true,\"trigger_cap\":{\"max\":100,\"per\":\"1d\"},"
            "\"attribution\":{\"models\":[\"first_touch\",\"last_touch\",\"linear\","
            "\"time_decay\",\"position_based\"],\"lookback\":\"3650d\",\"max_touches\":200,"
            "\"half_life\":\"3650d\"},\"stages\":[",
            f ? "," : "", f);
        for (int k = 0; k < stages; k++) {
            PUT("%s{\"name\":\"s%d\",\"stale_after\":\"1h\",\"on\":[{\"type\":", k ? "," : "", k);
            if (k == 0)
                PUT("\"page_view\"}]}");
            else if (f == 0 && k < stages - 1)
                PUT("\"t%d\"}]}", k);
            else
                PUT("\"purchase\"}],\"conversion\":true}");
        }
        PUT("]");
        if (f == 0) {
            PUT(",\"retarget\":[");
            for (int r = 0; r < FN_MAX_RULES; r++)
                PUT("%s{\"name\":\"r%d\",\"after\":{\"type\":\"cart_add\"},"
                    "\"unless\":[{\"type\":\"purchase\"}],\"within\":\"10m\"}",
                    r ? "," : "", r);
            PUT("]");
        }
        PUT("}");
    }
    PUT("]}");
#undef PUT
    if (n >= cap) {
        free(s);
        return NULL;
    }
    return s;
}

#endif
