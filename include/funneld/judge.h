/*
 * judge.h — bottleneck judgement (analytics/judge.c): pure, no I/O, no clock.
 *
 * A stage is a bottleneck when its flow to the next stage over the window falls below
 * (1 - drop) of the same flow over the baseline, with at least min_entered leads entering it
 * in both (SPEC §4); evaluate.c judges every tick with it and announces the changes.
 */
#ifndef FUNNELD_JUDGE_H
#define FUNNELD_JUDGE_H

#include <stdbool.h>

#include "funneld/analytics.h"
#include "funneld/config.h"

/* Whether stage stats s (win_entered, base_entered, rate, baseline_rate) make a bottleneck
 * under b, given whether it was raised before; *change tells whether that differs. Too
 * little flow (or no baseline flow) keeps the state as it was. */
bool fn_judge(const fn_bottleneck_cfg_t *b, const fn_stage_stats_t *s, bool raised, bool *change);

#endif
