/*
 * markov.c — removal effects of a first-order Markov chain of channels (markov.h).
 *
 * The probability x_i of converting from channel i solves x_i = c_i + Σ_j q_ij x_j, where
 * q_ij is the share of i's moves out that went to j and c_i the share that converted. With
 * Gaussian elimination (partial pivoting) on (I − Q) x = c; a removed channel's row is
 * x_r = 0, which sends every move into it to null.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "funneld/markov.h"

double fn_markov_conversion(const fn_markov_t *m, size_t removed, double *work)
{
    size_t n = m->n, w = n + 1;
    double starts = 0;
    for (size_t j = 0; j < n; j++)
        starts += (double)m->start[j];
    if (n == 0 || starts <= 0)
        return 0;
    /* work: n rows of n coefficients and the right-hand side */
    for (size_t i = 0; i < n; i++) {
        double *row = work + i * w;
        double out = (double)m->conv[i] + (double)m->null[i];
        for (size_t j = 0; j < n; j++)
            out += (double)m->move[i * n + j];
        for (size_t j = 0; j < n; j++)
            row[j] = i == j ? 1.0 : 0.0;
        row[n] = 0;
        if (i == removed || out <= 0)
            continue; /* x_i = 0: removed, or no move out (null) */
        for (size_t j = 0; j < n; j++)
            if (j != removed)
                row[j] -= (double)m->move[i * n + j] / out;
        row[n] = (double)m->conv[i] / out;
    }
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(work[i * w + k]) > fabs(work[p * w + k]))
                p = i;
        if (p != k)
            for (size_t j = 0; j < w; j++) {
                double t = work[k * w + j];
                work[k * w + j] = work[p * w + j];
                work[p * w + j] = t;
            }
        double d = work[k * w + k];
        /* I − Q is diagonally dominant (each row of Q sums to at most 1): d > 0 unless a
         * closed loop never leaves, which then converts with probability 0 */
        if (fabs(d) < 1e-300)
            continue;
        for (size_t i = k + 1; i < n; i++) {
            double f = work[i * w + k] / d;
            if (f != 0)
                for (size_t j = k; j < w; j++)
                    work[i * w + j] -= f * work[k * w + j];
        }
    }
    /* back substitution: x_i into the right-hand side column */
    for (size_t k = n; k-- > 0;) {
        double s = work[k * w + n];
        for (size_t j = k + 1; j < n; j++)
            s -= work[k * w + j] * work[j * w + n];
        double d = work[k * w + k];
        work[k * w + n] = fabs(d) < 1e-300 ? 0 : s / d;
    }
    double p = 0;
    for (size_t j = 0; j < n; j++)
        if (j != removed)
            p += (double)m->start[j] / starts * work[j * w + n];
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

double fn_markov_removal_effects(const fn_markov_t *m, double *effect, double *work)
{
    double p = fn_markov_conversion(m, SIZE_MAX, work);
    for (size_t i = 0; i < m->n; i++) {
        double e = p > 0 ? 1 - fn_markov_conversion(m, i, work) / p : 0;
        effect[i] = e < 0 ? 0 : e > 1 ? 1 : e;
    }
    return p;
}
