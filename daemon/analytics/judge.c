/*
 * judge.c — bottleneck judgement with hysteresis (judge.h), apart from the evaluation's I/O
 * so that its thresholds are table-tested (tests/unit/test_judge.c).
 */
#include "funneld/judge.h"

bool fn_judge(const fn_bottleneck_cfg_t *b, const fn_stage_stats_t *s, bool raised, bool *change)
{
    *change = false;
    if (s->win_entered < b->min_entered || s->base_entered < b->min_entered ||
        s->baseline_rate <= 0)
        return raised; /* too little flow to judge either way: the state stays */
    /* Raised below (1 - drop) of the baseline; cleared only once back above half-way
     * between that and the baseline, so a rate hovering at the limit does not flap. */
    bool now = raised ? s->rate < (1 - b->drop / 2) * s->baseline_rate
                      : s->rate < (1 - b->drop) * s->baseline_rate;
    *change = now != raised;
    return now;
}
