/*
 * test_judge.c — bottleneck judgement (judge.h) by table: raising below (1 - drop) of the
 * baseline, staying raised within the hysteresis band, clearing half-way back, the state kept
 * when too few leads entered (window or baseline) or the baseline had no flow, and each
 * threshold exactly. Rates are dyadic so that the thresholds are exact in binary.
 */
#include "fn_test.h"
#include "funneld/judge.h"

typedef struct judge_case {
    const char *name;
    bool raised;                       /* before */
    int64_t win_entered, base_entered; /* leads entering the stage */
    double rate, baseline_rate;        /* flow to the next stage */
    bool want, want_change;
} judge_case_t;

int main(void)
{
    /* drop 0.5 of a baseline of 0.5: raised below 0.25, cleared at 0.375 and above. */
    const fn_bottleneck_cfg_t b = {.enabled = true, .min_entered = 30, .drop = 0.5};
    const judge_case_t cases[] = {
        {"healthy stays clear", false, 100, 100, 0.5, 0.5, false, false},
        {"below (1 - drop) raises", false, 100, 100, 0.125, 0.5, true, true},
        {"no flow at all raises", false, 100, 100, 0.0, 0.5, true, true},
        {"exactly (1 - drop) does not raise", false, 100, 100, 0.25, 0.5, false, false},
        {"just below (1 - drop) raises", false, 100, 100, 0.2499, 0.5, true, true},
        {"in the band, clear stays clear", false, 100, 100, 0.3, 0.5, false, false},
        {"raised, still low, stays raised", true, 100, 100, 0.125, 0.5, true, false},
        {"raised, in the band, stays raised", true, 100, 100, 0.3, 0.5, true, false},
        {"raised, just below half-way, stays", true, 100, 100, 0.3749, 0.5, true, false},
        {"raised, exactly half-way, clears", true, 100, 100, 0.375, 0.5, false, true},
        {"raised, back to baseline, clears", true, 100, 100, 0.5, 0.5, false, true},
        {"too few in the window: clear stays", false, 29, 100, 0.0, 0.5, false, false},
        {"too few in the window: raised stays", true, 29, 100, 0.5, 0.5, true, false},
        {"too few in the baseline: clear stays", false, 100, 29, 0.0, 0.5, false, false},
        {"too few in the baseline: raised stays", true, 100, 29, 0.5, 0.5, true, false},
        {"exactly min_entered in both is judged", false, 30, 30, 0.0, 0.5, true, true},
        {"baseline rate zero: clear stays", false, 100, 100, 0.0, 0.0, false, false},
        {"baseline rate zero: raised stays", true, 100, 100, 0.0, 0.0, true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const judge_case_t *c = &cases[i];
        fn_stage_stats_t s = {.win_entered = c->win_entered,
                              .base_entered = c->base_entered,
                              .rate = c->rate,
                              .baseline_rate = c->baseline_rate};
        bool change = !c->want_change;
        bool now = fn_judge(&b, &s, c->raised, &change);
        if (now != c->want || change != c->want_change)
            fprintf(stderr, "case: %s\n", c->name);
        CHECK(now == c->want);
        CHECK(change == c->want_change);
    }
    return fn_test_result("test_judge");
}
