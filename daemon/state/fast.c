/*
 * fast.c — a touch that moves the lead in no funnel, decided in C (fast.h). Every decision
 * here is step.lua's for such an event, taken from the same fields: the lines of step.lua
 * each part follows are named, and a field this code would read differently from the
 * script (text a Lua tonumber takes that a plain integer is not, a malformed position or
 * timer) sends the event the whole step's way rather than guess.
 */
#include "funneld/fast.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/keys.h"
#include "funneld/rules.h"
#include "funneld/step.h"

#define SEEN_SLACK_DIV 8
#define MAX_TIMERS 64 /* timer fields of the lead's routed funnels this code keeps */
#define MAX_WORDS 512
#define ARENA 8192

static const fn_str_t NONE = {NULL, 0};

static bool is(fn_str_t s)
{
    return s.p != NULL;
}

static bool eq(fn_str_t a, fn_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool eq_s(fn_str_t a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.p, s, n) == 0;
}

/* A plain decimal integer of at most 16 characters and 2^53 (exact in Lua's doubles): the
 * only numbers this code reads. */
static bool int_of(fn_str_t s, int64_t *out)
{
    size_t i = 0;
    bool neg = s.len > 0 && s.p[0] == '-';
    if (neg)
        i = 1;
    if (s.len <= i || s.len > 16)
        return false;
    int64_t v = 0;
    for (; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (s.p[i] - '0');
    }
    if (v > ((int64_t)1 << 53))
        return false; /* Lua would not hold it exactly */
    *out = neg ? -v : v;
    return true;
}

/* A stored value step.lua's is_num reads as a finite number: plain decimal text only. */
static bool plain_number(fn_str_t s)
{
    size_t i = 0, digits = 0;
    if (i < s.len && s.p[i] == '-')
        i++;
    for (; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++)
        digits++;
    if (i < s.len && s.p[i] == '.')
        for (i++; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++)
            digits++;
    if (digits == 0 || digits > 17)
        return false;
    if (i < s.len && (s.p[i] == 'e' || s.p[i] == 'E')) {
        i++;
        if (i < s.len && (s.p[i] == '-' || s.p[i] == '+'))
            i++;
        size_t e = 0;
        for (; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++)
            e++;
        if (e == 0 || e > 2)
            return false;
    }
    return i == s.len;
}

/* ---- the lead as read ---- */

typedef struct funnel_read {
    const fn_funnel_t *f;
    size_t name_len;
    fn_str_t pos; /* "<f>|p" */
} funnel_read_t;

typedef struct timer_field {
    size_t funnel; /* index into lead_read_t.fun */
    fn_str_t reason, value;
} timer_field_t;

/* The lead-hash fields this code reads, with their lengths (taken once per event, not per
 * field: a lead has a few dozen). */
enum {
    F_ID,
    F_TS,
    F_TYPE,
    F_FIRST_AT,
    F_LAST_CH,
    F_LAST_CP,
    F_LAST_SRC,
    F_LAST_AT,
    F_VALUE,
    F_CONSENT,
    F_TN,
    F_SX,
    F_VERSION,
    F_MERGED,
    F_PENDING,
    F_FORGOTTEN,
    N_FIELDS
};

typedef struct lead_read {
    fn_str_t field[N_FIELDS]; /* by F_*; .p NULL when the lead lacks it */
    bool old_layout;          /* a funnel's position is in the six fields of before 2026-12-07 */
    bool too_many;            /* more timer fields than this code keeps */
    funnel_read_t fun[FN_MAX_FUNNELS];
    size_t n_fun;
    timer_field_t timers[MAX_TIMERS];
    size_t n_timers;
} lead_read_t;

typedef struct names {
    fn_str_t field[N_FIELDS];
    fn_str_t pos, timer, old[6];
} names_t;

static void names_init(names_t *n)
{
    const char *f[N_FIELDS] = {
        [F_ID] = FN_F_ID,
        [F_TS] = FN_F_TS,
        [F_TYPE] = FN_F_LAST_TYPE,
        [F_FIRST_AT] = FN_F_FIRST_AT,
        [F_LAST_CH] = FN_F_LAST_CH,
        [F_LAST_CP] = FN_F_LAST_CP,
        [F_LAST_SRC] = FN_F_LAST_SRC,
        [F_LAST_AT] = FN_F_LAST_AT,
        [F_VALUE] = FN_F_VALUE,
        [F_CONSENT] = FN_F_CONSENT,
        [F_TN] = FN_F_TIMERS_NEXT,
        [F_SX] = FN_F_SEEN_EXPIRY,
        [F_VERSION] = FN_F_VERSION,
        [F_MERGED] = FN_F_MERGED_INTO,
        [F_PENDING] = FN_F_MERGE_PENDING,
        [F_FORGOTTEN] = FN_F_FORGOTTEN,
    };
    for (size_t i = 0; i < N_FIELDS; i++)
        n->field[i] = (fn_str_t){f[i], strlen(f[i])};
    n->pos = (fn_str_t){FN_FF_POS, strlen(FN_FF_POS)};
    n->timer = (fn_str_t){FN_FF_TIMER, strlen(FN_FF_TIMER)};
    const char *old[] = {FN_FF_STAGE, FN_FF_STATUS,  FN_FF_ENTERED,
                         FN_FF_BEGAN, FN_FF_TOUCHES, FN_FF_ACTIVE};
    for (size_t i = 0; i < 6; i++)
        n->old[i] = (fn_str_t){old[i], strlen(old[i])};
}

static fn_str_t str_of(const redisReply *r)
{
    return (fn_str_t){r->str, r->len};
}

static void read_funnel_field(lead_read_t *l, const names_t *n, fn_str_t name, const char *bar,
                              fn_str_t value)
{
    size_t fl = (size_t)(bar - name.p), fi = 0;
    while (fi < l->n_fun &&
           !(l->fun[fi].name_len == fl && memcmp(l->fun[fi].f->name, name.p, fl) == 0))
        fi++;
    if (fi == l->n_fun)
        return; /* a funnel this event is not routed to */
    fn_str_t suffix = {bar, name.len - fl};
    if (eq(suffix, n->pos)) {
        l->fun[fi].pos = value;
        return;
    }
    size_t tl = n->timer.len;
    if (suffix.len > tl && memcmp(suffix.p, n->timer.p, tl) == 0) {
        if (l->n_timers == MAX_TIMERS) {
            l->too_many = true;
            return;
        }
        l->timers[l->n_timers++] = (timer_field_t){fi, {suffix.p + tl, suffix.len - tl}, value};
        return;
    }
    for (size_t i = 0; i < 6; i++)
        if (eq(suffix, n->old[i]))
            l->old_layout = true;
}

/* Reads h (an HGETALL reply) for the funnels ev is routed to; false when it is no hash. */
static bool read_lead(const fn_config_t *cfg, const fn_event_t *ev, const redisReply *h,
                      const names_t *n, lead_read_t *l)
{
    memset(l, 0, offsetof(lead_read_t, fun));
    l->n_fun = l->n_timers = 0;
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        size_t len = strlen(f->name);
        /* fn_step_build's routing: a touch names its funnel, or goes to every one */
        if (ev->funnel.p && (len != ev->funnel.len || memcmp(f->name, ev->funnel.p, len)))
            continue;
        l->fun[l->n_fun++] = (funnel_read_t){f, len, NONE};
    }
    if (!h || h->type != REDIS_REPLY_ARRAY || h->elements % 2)
        return false;
    for (size_t j = 0; j < h->elements; j += 2) {
        const redisReply *k = h->element[j], *v = h->element[j + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return false;
        fn_str_t name = str_of(k), value = str_of(v);
        const char *bar = memchr(name.p, '|', name.len);
        if (bar) {
            read_funnel_field(l, n, name, bar, value);
            continue;
        }
        for (size_t i = 0; i < N_FIELDS; i++)
            if (eq(name, n->field[i])) {
                l->field[i] = value;
                break;
            }
    }
    return true;
}

/* The value of timer field "<funnel fi>|t|<reason>", or NONE. */
static fn_str_t timer_of(const lead_read_t *l, size_t fi, const char *reason, size_t rl)
{
    for (size_t i = 0; i < l->n_timers; i++)
        if (l->timers[i].funnel == fi && l->timers[i].reason.len == rl &&
            memcmp(l->timers[i].reason.p, reason, rl) == 0)
            return l->timers[i].value;
    return NONE;
}

/* ---- the apply call being built ---- */

typedef struct apply {
    const char *w[MAX_WORDS];
    size_t len[MAX_WORDS];
    size_t n;
    char arena[ARENA];
    size_t used;
    bool full; /* out of words or arena: the fast path is not taken */
} apply_t;

static void word(apply_t *a, const char *p, size_t len)
{
    if (a->n == MAX_WORDS) {
        a->full = true;
        return;
    }
    a->w[a->n] = p ? p : "";
    a->len[a->n++] = p ? len : 0;
}

static void word_str(apply_t *a, fn_str_t s)
{
    word(a, s.p, s.len);
}

/* Copies the concatenation of parts into the arena; returns it (NONE when full). */
static fn_str_t text(apply_t *a, const fn_str_t *parts, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    if (a->used + len > ARENA) {
        a->full = true;
        return (fn_str_t){"", 0};
    }
    char *p = a->arena + a->used;
    for (size_t i = 0, at = 0; i < n; at += parts[i].len, i++)
        if (parts[i].len)
            memcpy(p + at, parts[i].p, parts[i].len);
    a->used += len;
    return (fn_str_t){p, len};
}

static fn_str_t num(apply_t *a, int64_t v)
{
    char t[FN_I64_TEXT];
    size_t n = fn_i64_text(v, t);
    return text(a, &(fn_str_t){t, n}, 1);
}

#define S(lit) ((fn_str_t){(lit), strlen(lit)})

/* ---- deciding ---- */

/* One funnel's position as "|p" holds it (position.lua's pos_get): touches, activity,
 * status (0: not entered), stage text, entered and began texts. */
typedef struct pos {
    int64_t touches;
    char status;
    fn_str_t stage, entered, began;
} pos_t;

/* Splits s at '|' into at most max parts; returns the count (max + 1 when more). */
static size_t split(fn_str_t s, fn_str_t *parts, size_t max)
{
    size_t n = 0, from = 0;
    for (size_t i = 0; i <= s.len; i++)
        if (i == s.len || s.p[i] == '|') {
            if (n == max)
                return max + 1;
            parts[n++] = (fn_str_t){s.p + from, i - from};
            from = i + 1;
        }
    return n;
}

static bool all_digits(fn_str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
    return true;
}

/* False for anything pos_get would not read as the same position, or that the step would
 * refuse (a status it does not know, an active stage that is no integer). */
static bool pos_read(fn_str_t p, pos_t *out)
{
    memset(out, 0, sizeof *out);
    if (!is(p))
        return true; /* never touched the funnel */
    fn_str_t part[5];
    size_t n = split(p, part, 5);
    int64_t v;
    if ((n != 2 && n != 5) || part[0].len == 0 || !all_digits(part[0]) ||
        !int_of(part[0], &out->touches) || !int_of(part[1], &v))
        return false;
    if (n == 2)
        return true;
    if (part[2].len < 1 || !((part[2].p[0] >= 'a' && part[2].p[0] <= 'z') ||
                             (part[2].p[0] >= 'A' && part[2].p[0] <= 'Z')))
        return false;
    out->status = part[2].p[0];
    out->stage = (fn_str_t){part[2].p + 1, part[2].len - 1};
    out->entered = part[3];
    out->began = part[4];
    if (!all_digits(out->stage) || !int_of(part[3], &v) || !int_of(part[4], &v))
        return false;
    if (out->status != FN_STATUS_ACTIVE[0] && out->status != FN_STATUS_CONVERTED[0] &&
        out->status != FN_STATUS_LOST[0])
        return false;
    if (out->status == FN_STATUS_ACTIVE[0] && (out->stage.len == 0 || out->stage.len > 2))
        return false;
    return true;
}

/* A timer field's parts (timer.lua's timer_parse): due, stage, zset tail or key, cause.
 * False when the field is there but does not read as one (the step reads such a field as
 * a timer with no due: this code leaves it to the step). */
typedef struct timer_val {
    bool set;
    int64_t due, stage;
    fn_str_t zset;
} timer_val_t;

static bool timer_read(fn_str_t v, timer_val_t *t)
{
    memset(t, 0, sizeof *t);
    if (!is(v))
        return true;
    fn_str_t part[4];
    /* the cause (after the third '|') may hold '|': split the first three only */
    size_t n = 0, from = 0;
    for (size_t i = 0; i < v.len && n < 3; i++)
        if (v.p[i] == '|') {
            part[n++] = (fn_str_t){v.p + from, i - from};
            from = i + 1;
        }
    if (n != 3 || !int_of(part[0], &t->due) || !int_of(part[1], &t->stage))
        return false;
    t->zset = part[2];
    t->set = true;
    return true;
}

/* stale_of in step.lua: the k-th (from 0) number of "<ms>,<ms>,...", 0 if none. */
static int64_t stale_of(fn_str_t list, int64_t k)
{
    int64_t j = 0, v = 0;
    bool in = false;
    for (size_t i = 0; i <= list.len; i++) {
        bool d = i < list.len && list.p[i] >= '0' && list.p[i] <= '9';
        if (d) {
            v = in ? v * 10 + (list.p[i] - '0') : list.p[i] - '0';
            in = true;
        } else if (in) {
            if (j == k)
                return v;
            j++;
            in = false;
        }
    }
    return 0;
}

typedef struct decide {
    const fn_fast_in_t *in;
    apply_t *a;
    fn_str_t lead_tail; /* the lead key's tail after "<prefix>:{<shard>}:lead:" */
    fn_str_t due_ref;   /* the due zset's tail after "<prefix>:{<shard>}:due:" */
    size_t kbase_len;   /* "<prefix>:{<shard>}:" */
    size_t n_fields, n_zadds;
    bool full; /* more fields or timers than fit: the fast path is not taken */
    bool has_tn, tn_dirty;
    int64_t lead_tn; /* step.lua's lead_tn: the lead's "tn", lowered by what is armed */
    int64_t min_due;
    /* not cleared per event: */
    char due_key[352];
    fn_str_t fields[2 * (MAX_TIMERS + FN_MAX_FUNNELS + 16)]; /* (name, value) */
    fn_str_t zadds[2 * MAX_TIMERS];                          /* (score, member) */
} decide_t;

static bool put(decide_t *d, fn_str_t k, fn_str_t v)
{
    if (d->n_fields + 2 > sizeof d->fields / sizeof d->fields[0]) {
        d->full = true;
        return false;
    }
    d->fields[d->n_fields++] = k;
    d->fields[d->n_fields++] = v;
    return true;
}

/* Sets *same to whether zset (as a timer field holds it: a tail, or, written before, the
 * whole key) names this event's due zset, as timer.lua's timer_parse would make it whole. */
static void zset_is_due(const decide_t *d, fn_str_t zset, bool *same)
{
    size_t kl = strlen(d->due_key);
    if (zset.len == kl && memcmp(zset.p, d->due_key, kl) == 0) {
        *same = true;
        return;
    }
    /* timer_parse makes a tail whole unless it starts with the shard's base already */
    bool whole = zset.len >= d->kbase_len && memcmp(zset.p, d->due_key, d->kbase_len) == 0;
    *same = !whole && eq(zset, d->due_ref);
}

/* step.lua's timer_arm for a timer whose field t was read: false when it would write
 * anything but this zset and the lead (another zset's member, a stalled marker's count). */
static bool timer_arm(decide_t *d, const funnel_read_t *fr, fn_str_t reason, int64_t due,
                      int64_t stage, const timer_val_t *t)
{
    if (!d->has_tn || due < d->lead_tn)
        d->lead_tn = due, d->has_tn = true, d->tn_dirty = true;
    bool same = false;
    if (t->set && t->zset.len > 0) {
        zset_is_due(d, t->zset, &same);
        if (!same)
            return false; /* its member leaves another zset */
    }
    if (t->set && t->zset.len == 0 && eq_s(reason, "stalled"))
        return false; /* a fired stall's marker: the step takes it off the stalled count */
    bool later = same && t->due <= due;
    apply_t *a = d->a;
    fn_str_t due_s = num(a, due);
    if (!later) {
        fn_str_t member =
            text(a,
                 (fn_str_t[]){d->lead_tail, S("|"), ((fn_str_t){fr->f->name, fr->name_len}), S("|"),
                              reason},
                 5);
        if (d->n_zadds + 2 > sizeof d->zadds / sizeof d->zadds[0]) {
            d->full = true;
            return false;
        }
        d->zadds[d->n_zadds++] = due_s;
        d->zadds[d->n_zadds++] = member;
    }
    fn_str_t field =
        text(a, (fn_str_t[]){((fn_str_t){fr->f->name, fr->name_len}), S(FN_FF_TIMER), reason}, 3);
    fn_str_t value = text(
        a,
        (fn_str_t[]){due_s, S("|"), num(a, stage), S("|"), d->due_ref, S("|"), d->in->ev->event_id},
        7);
    if (!put(d, field, value))
        return false;
    if (d->min_due == 0 || due < d->min_due)
        d->min_due = due;
    return true;
}

/* The funnel loop of step.lua for a funnel whose plan gives the stored position a touch:
 * the position's text, then its timers. at: the lead's time; consent: the lead's "c". */
static bool touch_funnel(decide_t *d, const lead_read_t *l, size_t fi, int64_t at, fn_str_t at_s)
{
    const funnel_read_t *fr = &l->fun[fi];
    fn_str_t consent = l->field[F_CONSENT];
    const fn_funnel_t *f = fr->f;
    const fn_event_t *ev = d->in->ev;
    apply_t *a = d->a;
    pos_t p;
    if (!pos_read(fr->pos, &p))
        return false;
    int64_t n = (int64_t)f->n_stages, k = 0;
    if (p.status == FN_STATUS_ACTIVE[0] && !int_of(p.stage, &k))
        return false;
    /* the plan's entry for the stored position must be a touch */
    char plan[2 * (FN_MAX_STAGES + 3) + 1];
    size_t pl = fn_rules_plan(f, fn_rules_match(f, ev), plan, sizeof plan);
    if (pl > 0 && !(p.status == FN_STATUS_ACTIVE[0] && k >= n)) {
        int64_t slot = p.status == 0                        ? 0
                       : p.status == FN_STATUS_ACTIVE[0]    ? 1 + k
                       : p.status == FN_STATUS_CONVERTED[0] ? n + 1
                                                            : n + 2;
        if ((size_t)(2 * slot + 1) >= pl || plan[2 * slot] != 'T')
            return false;
    }
    /* the position: pos_text(touches + 1, at, status, stage, entered, began) */
    fn_str_t touches = num(a, p.touches + 1);
    fn_str_t pos = p.status
                       ? text(a,
                              (fn_str_t[]){touches, S("|"), at_s, S("|"), (fn_str_t){&p.status, 1},
                                           p.stage, S("|"), p.entered, S("|"), p.began},
                              10)
                       : text(a, (fn_str_t[]){touches, S("|"), at_s}, 3);
    if (!put(d, text(a, (fn_str_t[]){((fn_str_t){f->name, fr->name_len}), S(FN_FF_POS)}, 2), pos))
        return false;

    char spec[FN_TIMER_SPEC_MAX];
    size_t sl = fn_rules_timer_spec(f, ev, spec, sizeof spec);
    if (sl == 0)
        return true; /* no timers: the step's `elseif m.stale` is not taken */
    size_t cut = 0;
    while (cut < sl && ((spec[cut] >= '0' && spec[cut] <= '9') || spec[cut] == ','))
        cut++;
    fn_str_t stale = {spec, cut};
    bool opted_out = eq_s(consent, "0");
    bool active = p.status == FN_STATUS_ACTIVE[0];
    fn_str_t tv = timer_of(l, fi, "stalled", 7);
    int64_t stale_ms = active && !opted_out ? stale_of(stale, k) : 0;
    if (stale_ms > 0) {
        int64_t due = at + stale_ms;
        timer_val_t t;
        if (!timer_read(tv, &t))
            return false;
        if (!(t.set && t.due >= due && t.stage == k) && !timer_arm(d, fr, S("stalled"), due, k, &t))
            return false;
    } else if (is(tv)) {
        return false; /* the step cancels it */
    }
    /* the rules: "|A<within>:<name>" arms, "|U:<name>" cancels */
    for (size_t i = cut; i < sl;) {
        if (spec[i] != '|' || i + 1 >= sl)
            return false;
        char act = spec[i + 1];
        size_t j = i + 2;
        int64_t within = 0;
        while (j < sl && spec[j] >= '0' && spec[j] <= '9')
            within = within * 10 + (spec[j++] - '0');
        if (j >= sl || spec[j] != ':')
            return false;
        size_t name_at = ++j;
        while (j < sl && spec[j] != '|')
            j++;
        fn_str_t name = {spec + name_at, j - name_at};
        i = j;
        if (name.len == 0 || (act != 'A' && act != 'U'))
            return false;
        fn_str_t rv = timer_of(l, fi, name.p, name.len);
        if (act == 'U') {
            if (is(rv))
                return false; /* the step cancels it */
            continue;
        }
        if (p.status == FN_STATUS_CONVERTED[0] || p.status == FN_STATUS_LOST[0])
            continue; /* touches after the end of the journey arm nothing */
        if (opted_out)
            return false; /* the step counts it as suppressed */
        timer_val_t t;
        if (!timer_read(rv, &t))
            return false;
        /* spec is a stack buffer: the reason goes into the arena before it is kept */
        fn_str_t reason = text(a, &name, 1);
        if (!timer_arm(d, fr, reason, ev->ts_ms + within, active ? k : -1, &t))
            return false;
    }
    return true;
}

bool fn_fast_candidate(const fn_config_t *cfg, const fn_event_t *ev, int64_t now_ms)
{
    if (!cfg->redis_fast_path || ev->kind != FN_EV_TOUCHPOINT || ev->has_value || now_ms < 1000)
        return false;
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        if (ev->funnel.p &&
            (strlen(f->name) != ev->funnel.len || memcmp(f->name, ev->funnel.p, ev->funnel.len)))
            continue;
        if (f->attribution.enabled)
            return false; /* the step keeps the touch, and may count a Markov move */
    }
    return true;
}

bool fn_fast_build(const fn_fast_in_t *in, const char *fn_name, fn_buf_t *cmd, fn_fast_out_t *out)
{
    const fn_config_t *cfg = in->cfg;
    const fn_event_t *ev = in->ev;
    if (!fn_fast_candidate(cfg, ev, in->now_ms))
        return false;
    /* on the stack: a few kilobytes each, and most of them never touched */
    lead_read_t lr, *l = &lr;
    apply_t ar, *a = &ar;
    decide_t dr, *d = &dr;
    names_t names;
    names_init(&names);
    if (!read_lead(cfg, ev, in->lead, &names, l))
        return false;
    /* a lead that exists under this id, with no merge marks (step.lua: collision,
     * redirect, forgotten) and no position in the layout of before */
    if (!is(l->field[F_ID]) || !eq(l->field[F_ID], ev->lead_id) || is(l->field[F_MERGED]) ||
        is(l->field[F_PENDING]) || is(l->field[F_FORGOTTEN]) || l->old_layout || l->too_many)
        return false;
    memset(d, 0, offsetof(decide_t, due_key));
    a->n = a->used = 0;
    a->full = false;
    d->in = in;
    d->a = a;

    fn_lead_keys_t k;
    fn_step_keys_fast(cfg, in->lead_hash, &k);
    fn_step_due_key(cfg, k.shard, in->topic, in->partition, d->due_key, sizeof d->due_key);
    char base[96];
    d->kbase_len = fn_key_shard(base, sizeof base, cfg->key_prefix, k.shard, "", "", 0);
    size_t lead_part = d->kbase_len + strlen(FN_KEY_LEAD);
    size_t due_part = d->kbase_len + strlen(FN_KEY_DUE);
    d->lead_tail = (fn_str_t){k.lead + lead_part, strlen(k.lead) - lead_part};
    d->due_ref = (fn_str_t){d->due_key + due_part, strlen(d->due_key) - due_part};

    /* the lead's due timers fire first (timer_fire_due): none may be due by the bound */
    int64_t bound = in->clock_ms > ev->ts_ms ? in->clock_ms : ev->ts_ms;
    if (cfg->clock == FN_CLOCK_WALL && in->now_ms < bound)
        bound = in->now_ms;
    int64_t v;
    if (is(l->field[F_TN])) {
        if (!int_of(l->field[F_TN], &v) || v <= bound)
            return false;
        d->has_tn = true;
        d->lead_tn = v;
    }
    /* the stored value must read as a number (else the step refuses) */
    if (is(l->field[F_VALUE]) && l->field[F_VALUE].len > 0 && !plain_number(l->field[F_VALUE]))
        return false;
    if (is(l->field[F_VALUE]) && l->field[F_VALUE].len >= sizeof out->value)
        return false;

    /* a late event never moves the lead backwards in time */
    int64_t ts = ev->ts_ms, at = ts, prev = 0;
    if (is(l->field[F_TS])) {
        if (!int_of(l->field[F_TS], &prev))
            return false;
        if (prev > at)
            at = prev;
    }
    fn_str_t ts_s = num(a, ts), at_s = at == ts ? ts_s : num(a, at);
    if (!eq(l->field[F_TYPE], ev->type) || !is(l->field[F_TYPE]))
        put(d, S(FN_F_LAST_TYPE), ev->type);
    if (!is(l->field[F_TS]) || !eq(l->field[F_TS], at_s))
        put(d, S(FN_F_TS), at_s);
    /* first touch the earliest event, last touch the latest */
    int64_t first_at = 0, last_at = 0;
    if ((is(l->field[F_FIRST_AT]) && !int_of(l->field[F_FIRST_AT], &first_at)) ||
        (is(l->field[F_LAST_AT]) && !int_of(l->field[F_LAST_AT], &last_at)))
        return false;
    if (!is(l->field[F_FIRST_AT]) || ts < first_at) {
        put(d, S(FN_F_FIRST_CH), ev->channel);
        put(d, S(FN_F_FIRST_CP), ev->campaign);
        put(d, S(FN_F_FIRST_SRC), ev->source);
        put(d, S(FN_F_FIRST_AT), ts_s);
    }
    if (!is(l->field[F_LAST_AT]) || ts >= last_at) {
        if (!is(l->field[F_LAST_CH]) || !eq(l->field[F_LAST_CH], ev->channel))
            put(d, S(FN_F_LAST_CH), ev->channel);
        if (!is(l->field[F_LAST_CP]) || !eq(l->field[F_LAST_CP], ev->campaign))
            put(d, S(FN_F_LAST_CP), ev->campaign);
        if (!is(l->field[F_LAST_SRC]) || !eq(l->field[F_LAST_SRC], ev->source))
            put(d, S(FN_F_LAST_SRC), ev->source);
        if (!is(l->field[F_LAST_AT]) || !eq(l->field[F_LAST_AT], ts_s))
            put(d, S(FN_F_LAST_AT), ts_s);
    }

    for (size_t i = 0; i < l->n_fun; i++)
        if (!touch_funnel(d, l, i, at, at_s))
            return false;

    if (d->tn_dirty)
        put(d, S(FN_F_TIMERS_NEXT), num(a, d->lead_tn));
    /* the version (version.lua's version_next) */
    int64_t ver = in->now_ms * 1000;
    if (is(l->field[F_VERSION])) {
        if (!int_of(l->field[F_VERSION], &ver))
            return false;
        ver++;
    }
    put(d, S(FN_F_VERSION), num(a, ver));
    /* the seen set's expiry moves when less than a window is left, and on every pruning
     * call (step.lua) */
    bool prune = in->now_ms % FN_STEP_PRUNE_ONE_IN == 0;
    int64_t ttl = cfg->dedupe_ttl_ms, keep = ttl + ttl / SEEN_SLACK_DIV, sx = 0;
    fn_str_t expire = {"", 0};
    if (is(l->field[F_SX]) && !int_of(l->field[F_SX], &sx))
        return false;
    if (!is(l->field[F_SX]) || sx < in->now_ms + ttl || prune) {
        put(d, S(FN_F_SEEN_EXPIRY), num(a, in->now_ms + keep));
        expire = num(a, keep);
    }
    if (a->full || d->full)
        return false;

    /* FCALL <fast> 4 lead seen due pending  version event score expire prune window n
     * [score member]... fields */
    char nkeys[] = "4";
    word(a, "FCALL", 5);
    word(a, fn_name, strlen(fn_name));
    word(a, nkeys, 1);
    word(a, k.lead, strlen(k.lead));
    word(a, k.seen, strlen(k.seen));
    word(a, d->due_key, strlen(d->due_key));
    word(a, k.pending, strlen(k.pending));
    word_str(a, is(l->field[F_VERSION]) ? l->field[F_VERSION] : S(""));
    word_str(a, ev->event_id);
    /* seen.lua's seen_score: the millisecond text without its last three digits */
    fn_str_t now_s = num(a, in->now_ms);
    word(a, now_s.p, now_s.len - 3);
    word_str(a, expire);
    word_str(a, prune ? now_s : S(""));
    word_str(a, num(a, ttl));
    word_str(a, num(a, (int64_t)(d->n_zadds / 2)));
    for (size_t i = 0; i < d->n_zadds; i++)
        word_str(a, d->zadds[i]);
    for (size_t i = 0; i < d->n_fields; i++)
        word_str(a, d->fields[i]);
    if (a->full)
        return false;

    if (fn_resp_head(cmd, a->n))
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (fn_resp_bulk(cmd, a->w[i], a->len[i]))
            return false;
    out->at = at;
    out->value[0] = '\0';
    if (is(l->field[F_VALUE])) {
        memcpy(out->value, l->field[F_VALUE].p, l->field[F_VALUE].len);
        out->value[l->field[F_VALUE].len] = '\0';
    }
    out->armed_due = d->min_due;
    return true;
}

static void str_reply(redisReply *r, char *s)
{
    memset(r, 0, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->str = s;
    r->len = strlen(s);
}

const redisReply *fn_fast_reply(const fn_fast_out_t *out, fn_fast_reply_t *room)
{
    /* {'ok', at, value, '' (touch), '' (transitions), armed due or '', '' (fired)} */
    memcpy(room->ok, "ok", 3);
    fn_i64_text(out->at, room->at);
    memcpy(room->value, out->value, sizeof room->value);
    room->due[0] = room->none[0] = '\0';
    if (out->armed_due)
        fn_i64_text(out->armed_due, room->due);
    char *parts[7] = {room->ok,   room->at,  room->value, room->none,
                      room->none, room->due, room->none};
    for (size_t i = 0; i < 7; i++) {
        str_reply(&room->el[i], parts[i]);
        room->els[i] = &room->el[i];
    }
    memset(&room->top, 0, sizeof room->top);
    room->top.type = REDIS_REPLY_ARRAY;
    room->top.elements = 7;
    room->top.element = room->els;
    return &room->top;
}
