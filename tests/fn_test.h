/*
 * fn_test.h — the few assertion macros our C tests use. A failed check prints file, line and
 * the expression, and the test keeps going so one run shows every failure; main() returns
 * fn_test_result() so ctest sees the outcome.
 */
#ifndef FN_TEST_H
#define FN_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fn_test_failures;
static int fn_test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        fn_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            fn_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long fa_ = (long long)(a), fb_ = (long long)(b);                                      \
        fn_test_checks++;                                                                          \
        if (fa_ != fb_) {                                                                          \
            fn_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,    \
                    fa_, #b, fb_);                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        fn_test_checks++;                                                                          \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            fn_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                   \
        }                                                                                          \
    } while (0)

/* xorshift64*: the tests' own random numbers, seeded explicitly (s must not be 0). */
typedef struct fn_test_rng {
    uint64_t s;
} fn_test_rng_t;

static inline uint64_t fn_test_rnd(fn_test_rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

static inline int fn_test_result(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, fn_test_checks, fn_test_failures);
    return fn_test_failures ? 1 : 0;
}

#endif
