/*
 * markov.h — data-driven attribution (SPEC §11 "markov"): a first-order Markov chain of the
 * channels leads touch, with a start, a conversion and a null state, built from exact move
 * counters (daemon/analytics/attribution.lua), and each channel's removal effect: the share
 * of the chain's conversion probability lost when the channel is removed (every move into
 * it going to null instead). Pure: no I/O, no allocation beyond the caller's arrays.
 */
#ifndef FUNNELD_MARKOV_H
#define FUNNELD_MARKOV_H

#include <stddef.h>
#include <stdint.h>

/* The most channels a chain holds (max_breakdown's bound, and "(other)"). */
#define FN_MARKOV_MAX_CHANNELS 10001

/* The counters of one chain over n channels (0..n-1): start[j] moves from the start to j,
 * move[i * n + j] from i to j, conv[i] from i to a conversion, null[i] from i to null (a
 * lost lead). A channel with no move out counts as going to null. */
typedef struct fn_markov {
    size_t n;
    const int64_t *start, *move, *conv, *null;
} fn_markov_t;

/* The probability of reaching a conversion from the start, with channel `removed` removed
 * (SIZE_MAX: none). work holds n * (n + 1) doubles. 0 for a chain with no start moves. */
double fn_markov_conversion(const fn_markov_t *m, size_t removed, double *work);

/* Every channel's removal effect into effect[0..n): 1 − P(without it) / P, in [0, 1]; all 0
 * when P is 0. work as for fn_markov_conversion. Returns P. */
double fn_markov_removal_effects(const fn_markov_t *m, double *effect, double *work);

#endif
