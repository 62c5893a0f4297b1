/*
 * test_markov.c — removal effects of the Markov chain (markov.h) against worked examples
 * computed by hand: the textbook three-channel chain (paths C1→C2→C3→conv, C1→null,
 * C2→C3→null), a loop between two channels, a channel with no move out, a self-loop, an
 * empty chain, and a removed channel that every conversion passes through.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "fn_test.h"
#include "funneld/markov.h"

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}

typedef struct {
    const char *name;
    size_t n;
    int64_t start[4], move[16], conv[4], null[4];
    double p, effect[4];
} mcase_t;

static const mcase_t cases[] = {
    /* P = 2/3 · x1 + 1/3 · x2, x3 = 1/2, x2 = x3, x1 = x2 / 2: 1/3. Without C1: 1/6 (0.5);
     * without C2 or C3 nothing converts (1). */
    {"textbook",
     3,
     {2, 1, 0},
     {0, 1, 0, 0, 0, 2, 0, 0, 0},
     {0, 0, 1},
     {1, 0, 1},
     1.0 / 3,
     {0.5, 1, 1}},
    /* start→A; A→B, A→conv; B→A, B→null: x_A = 1/2 + x_B / 2, x_B = x_A / 2, x_A = 2/3.
     * Without B: x_A = 1/2, effect 1 − (1/2)/(2/3) = 1/4. */
    {"loop", 2, {1, 0}, {0, 1, 1, 0}, {1, 0}, {0, 1}, 2.0 / 3, {1, 0.25}},
    /* start→A 1, start→B 1; A→conv; B has no move out (an open journey): null. */
    {"no move out", 2, {1, 1}, {0, 0, 0, 0}, {1, 0}, {0, 0}, 0.5, {1, 0}},
    /* a self-loop changes nothing: A→A 3, A→conv 1, A→null 1: x_A = 1/2 */
    {"self-loop", 1, {4}, {3}, {1}, {1}, 0.5, {1}},
    {"empty", 0, {0}, {0}, {0}, {0}, 0, {0}},
    /* conversions that never came: P = 0, every effect 0 */
    {"no conversion", 2, {1, 0}, {0, 1, 0, 0}, {0, 0}, {0, 1}, 0, {0, 0}},
};

int main(void)
{
    double work[4 * 5], effect[4];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const mcase_t *t = &cases[c];
        fn_markov_t m = {t->n, t->start, t->move, t->conv, t->null};
        double p = fn_markov_removal_effects(&m, effect, work);
        if (!near(p, t->p))
            fprintf(stderr, "%s: P = %.17g, want %.17g\n", t->name, p, t->p);
        CHECK(near(p, t->p));
        for (size_t i = 0; i < t->n; i++) {
            if (!near(effect[i], t->effect[i]))
                fprintf(stderr, "%s: effect of %zu = %.17g, want %.17g\n", t->name, i, effect[i],
                        t->effect[i]);
            CHECK(near(effect[i], t->effect[i]));
        }
    }
    /* without C1 in the textbook chain: 1/6 */
    const mcase_t *t = &cases[0];
    fn_markov_t m = {t->n, t->start, t->move, t->conv, t->null};
    CHECK(near(fn_markov_conversion(&m, 0, work), 1.0 / 6));
    return fn_test_result("test_markov");
}
