/*
 * stats.c — the latency histograms' buckets (stats.h).
 */
#include "funneld/stats.h"

static const double bounds[FN_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};

double fn_hist_bound(int i)
{
    return bounds[i];
}

void fn_hist_observe(fn_hist_t *h, double seconds)
{
    int i = 0;
    while (i < FN_HIST_BUCKETS && seconds > bounds[i])
        i++;
    h->bucket[i]++;
    h->sum += seconds;
    h->count++;
}
