/*
 * fuzz_common.h — what the libFuzzer targets in tests/fuzz share: an invariant check that
 * aborts (so libFuzzer records the input as a crash), a strict UTF-8 validator written
 * independently of the decoder's, and the structural checks every rules plan must pass.
 *
 * Header-only and static: each target is one translation unit linked with the daemon sources
 * it fuzzes (tests/fuzz/CMakeLists.txt), nothing else.
 */
#ifndef FUNNELD_FUZZ_COMMON_H
#define FUNNELD_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/rules.h"

/* FUZZ_TRACE=1 in the environment makes each target print one line per input (what the
 * input decoded to, which path it took): for reading a regression or checking the seeds. */
static inline bool fz_trace(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("FUZZ_TRACE");
        on = v && *v && *v != '0';
    }
    return on;
}

/* The checks for the two config findings (raw bytes in error messages, loose redis.url),
 * fixed since: on by default; FUZZ_STRICT=0 turns them off to look at older builds. */
static inline bool fz_strict(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("FUZZ_STRICT");
        on = !(v && *v == '0');
    }
    return on;
}

/* A broken invariant is a finding: say which, then abort so libFuzzer keeps the input. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "\n*** fuzz invariant failed at %s:%d: %s\n*** ", __FILE__, __LINE__,  \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* RFC 3629 UTF-8 without overlongs, surrogates or code points above U+10FFFF. Deliberately a
 * different formulation (decode, then check the value) from daemon/decode/event.c's byte-range
 * table, so a slip in one is caught by the other. */
static inline bool fz_utf8_valid(const char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n;
    }
    return true;
}

/* A NUL-terminated string of 1..max-1 printable ASCII bytes inside buf[0..cap). */
static inline bool fz_printable(const char *buf, size_t cap)
{
    const char *end = memchr(buf, '\0', cap);
    if (!end)
        return false;
    for (const char *p = buf; p < end; p++)
        if (*p < 0x20 || *p > 0x7e)
            return false;
    return true;
}

static inline const char *fz_outcome_name(fn_outcome_kind_t k)
{
    static const char *const names[] = {"touch", "enter", "forward", "back", "convert", "lost"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* The plan letter of each outcome kind, as rules.h documents it. */
static inline char fz_plan_letter(fn_outcome_kind_t k)
{
    static const char letters[] = "TEFBCL";
    return (unsigned)k < 6 ? letters[k] : '?';
}

/* SPEC §3 with the README's decisions, written as the list of cases rather than as code that
 * computes: the outcome a lead at pos must get for match m. */
static inline fn_outcome_t fz_expected_step(const fn_funnel_t *f, fn_pos_t pos, fn_match_t m)
{
    fn_outcome_t touch = {FN_OUT_TOUCH, -1, -1};
    int conv = f->conversion_index;
    /* converted and lost are terminal: touches only */
    if (pos.kind == FN_POS_CONVERTED || pos.kind == FN_POS_LOST)
        return touch;
    if (pos.kind == FN_POS_OUTSIDE) {
        /* lost for a lead that never entered is a touch; lost wins over a stage match */
        if (m.lost || m.stage < 0)
            return touch;
        if (m.stage == conv)
            return (fn_outcome_t){FN_OUT_CONVERT, -1, m.stage};
        return (fn_outcome_t){FN_OUT_ENTER, -1, m.stage};
    }
    int j = pos.stage;
    if (m.lost)
        return (fn_outcome_t){FN_OUT_LOST, j, -1};
    if (m.stage > j) {
        int to = f->allow_skip ? m.stage : j + 1;
        return (fn_outcome_t){to == conv ? FN_OUT_CONVERT : FN_OUT_FORWARD, j, to};
    }
    if (m.stage >= 0 && m.stage < j && f->allow_regress)
        return (fn_outcome_t){FN_OUT_BACK, j, m.stage};
    return touch;
}

static inline fn_pos_t fz_pos_of_slot(const fn_funnel_t *f, size_t slot)
{
    if (slot == 0)
        return (fn_pos_t){FN_POS_OUTSIDE, -1};
    if (slot <= f->n_stages)
        return (fn_pos_t){FN_POS_ACTIVE, (int)slot - 1};
    if (slot == f->n_stages + 1)
        return (fn_pos_t){FN_POS_CONVERTED, f->conversion_index};
    return (fn_pos_t){FN_POS_LOST, -1};
}

/* Checks one outcome against the expected one and against the shape rules.h promises. */
static inline void fz_check_outcome(const fn_funnel_t *f, fn_pos_t pos, fn_match_t m,
                                    fn_outcome_t o)
{
    fn_outcome_t want = fz_expected_step(f, pos, m);
    FZ_CHECK(o.kind == want.kind && o.from == want.from && o.to == want.to,
             "step(pos kind %d stage %d, match stage %d lost %d, skip %d regress %d conv %d, "
             "%zu stages) = %s %d->%d, want %s %d->%d",
             pos.kind, pos.stage, m.stage, m.lost, f->allow_skip, f->allow_regress,
             f->conversion_index, f->n_stages, fz_outcome_name(o.kind), o.from, o.to,
             fz_outcome_name(want.kind), want.from, want.to);
    int n = (int)f->n_stages;
    switch (o.kind) {
    case FN_OUT_TOUCH:
    case FN_OUT_LOST:
        FZ_CHECK(o.to == -1, "%s with a target %d", fz_outcome_name(o.kind), o.to);
        break;
    case FN_OUT_ENTER:
    case FN_OUT_FORWARD:
    case FN_OUT_BACK:
        FZ_CHECK(o.to >= 0 && o.to < n && o.to != f->conversion_index,
                 "%s to stage %d of %d (conversion %d)", fz_outcome_name(o.kind), o.to, n,
                 f->conversion_index);
        break;
    case FN_OUT_CONVERT:
        FZ_CHECK(f->conversion_index >= 0 && o.to == f->conversion_index,
                 "convert to %d, conversion stage %d", o.to, f->conversion_index);
        break;
    }
    if (o.kind == FN_OUT_FORWARD)
        FZ_CHECK(o.to > o.from, "forward from %d to %d", o.from, o.to);
    if (o.kind == FN_OUT_BACK)
        FZ_CHECK(f->allow_regress && o.to < o.from, "back from %d to %d (regress %d)", o.from, o.to,
                 f->allow_regress);
    if (o.kind != FN_OUT_TOUCH && o.kind != FN_OUT_ENTER &&
        !(o.kind == FN_OUT_CONVERT && pos.kind == FN_POS_OUTSIDE))
        FZ_CHECK(pos.kind == FN_POS_ACTIVE && o.from == pos.stage, "%s from %d, lead at %d/%d",
                 fz_outcome_name(o.kind), o.from, pos.kind, pos.stage);
}

/* Checks fn_rules_plan for match m: its length, every slot's letter and target, and that each
 * slot is exactly fn_rules_step's outcome for that position. Also checks the too-small-buffer
 * contract and the position index mapping. */
static inline void fz_check_plan(const fn_funnel_t *f, fn_match_t m)
{
    size_t slots = fn_rules_plan_slots(f);
    char plan[2 * (FN_MAX_STAGES + 3) + 1 + 8];
    memset(plan, 0x5a, sizeof plan);
    size_t len = fn_rules_plan(f, m, plan, sizeof plan);
    FZ_CHECK(len == 0 || len == 2 * slots, "plan length %zu, %zu slots", len, slots);
    FZ_CHECK(memchr(plan, '\0', sizeof plan) && strlen(plan) == len, "plan not NUL-terminated");
    bool all_touch = true;
    for (size_t s = 0; s < slots; s++) {
        fn_pos_t pos = fz_pos_of_slot(f, s);
        FZ_CHECK(fn_rules_pos_index(f, pos) == (int)s, "pos index of slot %zu is %d", s,
                 fn_rules_pos_index(f, pos));
        fn_outcome_t o = fn_rules_step(f, pos, m);
        fz_check_outcome(f, pos, m, o);
        all_touch &= o.kind == FN_OUT_TOUCH;
        if (len == 0)
            continue;
        char letter = plan[2 * s], target = plan[2 * s + 1];
        FZ_CHECK(letter == fz_plan_letter(o.kind), "slot %zu letter %c, step says %s", s, letter,
                 fz_outcome_name(o.kind));
        FZ_CHECK(target >= '0' && target < '0' + (int)f->n_stages, "slot %zu target 0x%02x", s,
                 (unsigned char)target);
        FZ_CHECK(target == '0' + (o.to >= 0 ? o.to : 0), "slot %zu target %c, step says %d", s,
                 target, o.to);
        if (pos.kind == FN_POS_CONVERTED || pos.kind == FN_POS_LOST)
            FZ_CHECK(letter == 'T' && target == '0', "terminal slot %zu is %c%c", s, letter,
                     target);
        if (pos.kind == FN_POS_OUTSIDE)
            FZ_CHECK(letter == 'T' || letter == 'E' || letter == 'C', "outside slot is %c", letter);
        else
            FZ_CHECK(letter != 'E', "slot %zu (not outside) enters", s);
        if (!f->allow_regress)
            FZ_CHECK(letter != 'B', "slot %zu goes back without allow_regress", s);
    }
    bool matches = m.stage >= 0 || m.lost;
    FZ_CHECK(len == (matches && !all_touch ? 2 * slots : 0),
             "plan length %zu, match stage %d lost %d, all touch %d", len, m.stage, m.lost,
             all_touch);
    /* too small a buffer: nothing written but an empty string */
    char small[2 * (FN_MAX_STAGES + 3) + 1];
    size_t cap = 1 + (size_t)(m.stage + 1) % (2 * slots);
    memset(small, 0x5a, sizeof small);
    FZ_CHECK(fn_rules_plan(f, m, small, cap) == 0 && small[0] == '\0',
             "plan into %zu bytes (needs %zu)", cap, 2 * slots + 1);
    FZ_CHECK(fn_rules_plan(f, m, small, 0) == 0 && small[0] == '\0', "plan into 0 bytes wrote");
}

#endif
