/*
 * merge_step.c — merge.lua's commands and the plan its "apply" step writes (merge_step.h).
 *
 * The plan is the whole decision: fn_merge_leads() (merge.h) takes the two leads as read,
 * this file turns the merged lead into field writes, people-counter deltas, timer members
 * and output events, and merge.lua only checks that the root is still as read and writes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/emit.h"
#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/merge_step.h"
#include "funneld/step.h"

/* ---- RESP ------------------------------------------------------------------------------ */

static int bulk(fn_buf_t *b, const char *p, size_t len)
{
    return fn_buf_appendf(b, "$%zu\r\n", len) || fn_buf_append(b, p, len) ||
           fn_buf_append(b, "\r\n", 2);
}

static int bulk_s(fn_buf_t *b, const char *s)
{
    return bulk(b, s, strlen(s));
}

static int bulk_i(fn_buf_t *b, int64_t v)
{
    char t[FN_I64_TEXT];
    return bulk(b, t, fn_i64_text(v, t));
}

int fn_merge_build(const fn_config_t *cfg, const char *sha, const fn_merge_cmd_t *c, fn_buf_t *out)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, c->hash, &k);
    char hex[33], ids[96];
    fn_hash_hex(c->hash, hex);
    fn_key_ids(ids, sizeof ids, cfg->key_prefix, k.shard, hex);
    char outbox[64], leases[64], caps[FN_MAX_FUNNELS * (FN_NAME_MAX + 44)];
    fn_key_outbox(outbox, sizeof outbox, cfg->key_prefix, k.shard);
    fn_key_leases(leases, sizeof leases, cfg->key_prefix, k.shard);
    fn_step_caps(cfg, caps, sizeof caps);
    fn_buf_t w = {0}; /* the words after EVALSHA sha */
    size_t n = 0;
    int rc = FN_ERR;
#define W(expr)                                                                                    \
    do {                                                                                           \
        if (expr)                                                                                  \
            goto done;                                                                             \
        n++;                                                                                       \
    } while (0)
    switch (c->phase) {
    case FN_PHASE_ROOT:
    case FN_PHASE_OWNER:
        W(bulk_s(&w, "4"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, ids));
        W(bulk_s(&w, k.seen));
        W(bulk_s(&w, k.pending));
        W(bulk_s(&w, "root"));
        W(bulk(&w, c->id.p, c->id.len));
        W(bulk(&w, c->cause.p ? c->cause.p : "", c->cause.len));
        break;
    case FN_PHASE_DONE:
        W(bulk_s(&w, "2"));
        W(bulk_s(&w, k.seen));
        W(bulk_s(&w, k.pending));
        W(bulk_s(&w, "done"));
        W(bulk(&w, c->cause.p, c->cause.len));
        W(bulk_i(&w, c->now_ms));
        W(bulk_i(&w, cfg->dedupe_ttl_ms));
        W(bulk(&w, c->result.p ? c->result.p : "", c->result.len));
        break;
    case FN_PHASE_IDS:
        W(bulk_s(&w, "2"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, ids));
        W(bulk_s(&w, "ids"));
        W(bulk(&w, c->id.p, c->id.len));
        break;
    case FN_PHASE_UNLINK:
        W(bulk_s(&w, "1"));
        W(bulk_s(&w, ids));
        W(bulk_s(&w, "unlink"));
        break;
    case FN_PHASE_FORGET:
        W(bulk_s(&w, "4"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, ids));
        W(bulk_s(&w, k.seen));
        W(bulk_s(&w, k.touches));
        W(bulk_s(&w, "forget"));
        W(bulk(&w, c->id.p, c->id.len));
        W(bulk(&w, c->root.p, c->root.len));
        W(bulk(&w, c->cause.p, c->cause.len));
        W(bulk_i(&w, c->now_ms));
        break;
    case FN_PHASE_DETACH: {
        char funnels[FN_MAX_FUNNELS * (FN_NAME_MAX + 1) + 1];
        size_t fl = 0;
        funnels[0] = '\0';
        for (size_t i = 0; i < cfg->n_funnels; i++) {
            fn_cat(funnels, sizeof funnels, &fl, cfg->funnels[i].name,
                   strlen(cfg->funnels[i].name));
            fn_cat(funnels, sizeof funnels, &fl, ",", 1);
        }
        W(bulk_s(&w, "7"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, k.stats));
        W(bulk_s(&w, ids));
        W(bulk_s(&w, k.seen));
        W(bulk_s(&w, outbox));
        W(bulk_s(&w, leases));
        W(bulk_s(&w, k.touches));
        W(bulk_s(&w, "detach"));
        W(bulk(&w, c->id.p, c->id.len));
        W(bulk(&w, c->root.p, c->root.len));
        W(bulk(&w, c->cause.p, c->cause.len));
        W(bulk_i(&w, cfg->identity_max_ids));
        W(bulk_i(&w, c->root_ids));
        W(bulk(&w, funnels, fl));
        W(bulk_i(&w, c->now_ms));
        W(bulk_s(&w, caps));
        W(bulk_i(&w, c->due_by));
        break;
    }
    case FN_PHASE_READ:
        W(bulk_s(&w, "6"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, k.seen));
        W(bulk_s(&w, k.pending));
        W(bulk_s(&w, k.stats));
        W(bulk_s(&w, outbox));
        W(bulk_s(&w, leases));
        W(bulk_s(&w, "read"));
        W(bulk(&w, c->id.p, c->id.len));
        W(bulk(&w, c->cause.p, c->cause.len));
        W(bulk_i(&w, c->now_ms));
        W(bulk_s(&w, caps));
        W(bulk_i(&w, c->due_by));
        break;
    case FN_PHASE_APPLY:
        W(bulk_s(&w, "7"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, k.seen));
        W(bulk_s(&w, k.pending));
        W(bulk_s(&w, k.stats));
        W(bulk_s(&w, ids));
        W(bulk_s(&w, c->due));
        W(bulk_s(&w, k.touches));
        W(bulk_s(&w, "apply"));
        W(bulk(&w, c->id.p, c->id.len));
        W(bulk(&w, c->cause.p, c->cause.len));
        W(bulk_i(&w, c->now_ms));
        W(bulk_i(&w, cfg->dedupe_ttl_ms));
        if (!c->plan)
            goto done;
        if (c->plan->n_outputs)
            W(bulk(&w, c->plan->pending.data, c->plan->pending.len));
        else
            W(bulk(&w, "", 0)); /* nothing to emit again: nothing stored */
        break;
    case FN_PHASE_FINISH:
        W(bulk_s(&w, "1"));
        W(bulk_s(&w, k.lead));
        W(bulk_s(&w, "finish"));
        W(bulk(&w, c->cause.p, c->cause.len));
        break;
    default:
        goto done;
    }
#undef W
    fn_buf_reset(out);
    const fn_merge_plan_t *plan = c->plan;
    size_t extra = c->phase == FN_PHASE_APPLY && plan ? plan->n_args : 0;
    if (fn_buf_appendf(out, "*%zu\r\n", n + 2 + extra) || bulk_s(out, "EVALSHA") ||
        bulk_s(out, sha) || fn_buf_append(out, w.data, w.len) ||
        (extra && fn_buf_append(out, plan->args.data, plan->args.len)))
        goto done;
    rc = FN_OK;
done:
    fn_buf_free(&w);
    return rc;
}

/* ---- reading a lead hash ----------------------------------------------------------------- */

static fn_str_t hget(const redisReply *r, const char *field)
{
    size_t fl = strlen(field);
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING && f->len == fl &&
            memcmp(f->str, field, fl) == 0)
            return (fn_str_t){v->str, v->len};
    }
    return (fn_str_t){NULL, 0};
}

fn_str_t fn_merge_hget(const redisReply *r, const char *field)
{
    return hget(r, field);
}

static bool to_i64(fn_str_t s, int64_t *out)
{
    return s.p && fn_i64_parse(s.p, s.len, out) == FN_OK;
}

static int64_t i64_or(fn_str_t s, int64_t dflt)
{
    int64_t v;
    return to_i64(s, &v) ? v : dflt;
}

void fn_merge_read_lead(const fn_config_t *cfg, const redisReply *r, fn_merge_lead_t *o)
{
    memset(o, 0, sizeof *o);
    o->has_ts = to_i64(hget(r, FN_F_TS), &o->ts);
    o->first.set = to_i64(hget(r, FN_F_FIRST_AT), &o->first.at);
    o->first.channel = hget(r, FN_F_FIRST_CH);
    o->first.campaign = hget(r, FN_F_FIRST_CP);
    o->first.source = hget(r, FN_F_FIRST_SRC);
    o->last.set = to_i64(hget(r, FN_F_LAST_AT), &o->last.at);
    o->last.channel = hget(r, FN_F_LAST_CH);
    o->last.campaign = hget(r, FN_F_LAST_CP);
    o->last.source = hget(r, FN_F_LAST_SRC);
    o->value = hget(r, FN_F_VALUE);
    o->has_value = o->value.p && o->value.len;
    o->value_at = i64_or(hget(r, FN_F_VALUE_AT), 0);
    fn_str_t c = hget(r, FN_F_CONSENT);
    o->consent = c.len == 1 && (c.p[0] == '0' || c.p[0] == '1') ? c.p[0] : 0;
    o->has_consent_at = o->consent && to_i64(hget(r, FN_F_CONSENT_AT), &o->consent_at);
    o->n_funnels = cfg->n_funnels;
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        fn_merge_funnel_t *m = &o->funnel[i];
        fn_lead_pos_t pos;
        fn_lead_pos_read(r, f->name, &pos);
        if (!pos.status || !pos.has_stage || pos.stage >= (int64_t)f->n_stages)
            continue; /* none, or a position this config cannot hold: treated as none */
        char s = pos.status;
        m->pos.kind = s == FN_STATUS_ACTIVE[0]      ? FN_POS_ACTIVE
                      : s == FN_STATUS_CONVERTED[0] ? FN_POS_CONVERTED
                      : s == FN_STATUS_LOST[0]      ? FN_POS_LOST
                                                    : FN_POS_OUTSIDE;
        if (m->pos.kind == FN_POS_OUTSIDE)
            continue;
        m->pos.stage = (int)pos.stage;
        m->entered_at = pos.has_entered ? pos.entered_at : 0;
        m->began_at = pos.has_began ? pos.began_at : m->entered_at;
        m->active_at = pos.has_active ? pos.active_at : m->entered_at;
        m->touches = pos.has_touches ? pos.touches : 0;
    }
}

/* ---- the plan --------------------------------------------------------------------------- */

/* A timer field's value: "<due>|<stage>|<zset>|<cause>", zset "" for a fired stall. */
typedef struct timer_val {
    bool ok;
    int64_t due;
    int stage;
    fn_str_t zset, cause;
} timer_val_t;

static timer_val_t timer_read(fn_str_t v)
{
    timer_val_t t = {0};
    if (!v.p)
        return t;
    const char *p = v.p, *end = v.p + v.len, *bar[3];
    for (int i = 0; i < 3; i++) {
        const char *b = memchr(p, '|', (size_t)(end - p));
        if (!b)
            return t;
        bar[i] = b;
        p = b + 1;
    }
    int64_t stage;
    if (!to_i64((fn_str_t){v.p, (size_t)(bar[0] - v.p)}, &t.due) ||
        !to_i64((fn_str_t){bar[0] + 1, (size_t)(bar[1] - bar[0] - 1)}, &stage))
        return t;
    t.stage = (int)stage;
    t.zset = (fn_str_t){bar[1] + 1, (size_t)(bar[2] - bar[1] - 1)};
    t.cause = (fn_str_t){bar[2] + 1, (size_t)(end - bar[2] - 1)};
    t.ok = true;
    return t;
}

/* The plan's counted lists, each built in its own buffer and joined at the end. */
typedef struct lists {
    fn_buf_t read, set, del, incr, incrf, sadd, zrem, zadd, touch;
    size_t n_read, n_set, n_del, n_incr, n_incrf, n_sadd, n_zrem, n_zadd, n_touch;
} lists_t;

static int pair(fn_buf_t *b, size_t *n, const char *k, size_t kl, const char *v, size_t vl)
{
    (*n)++;
    return bulk(b, k, kl) || bulk(b, v, vl);
}

static int set_s(lists_t *l, const char *field, fn_str_t v)
{
    return pair(&l->set, &l->n_set, field, strlen(field), v.p ? v.p : "", v.len);
}

static int set_i(lists_t *l, const char *field, int64_t v)
{
    char t[FN_I64_TEXT];
    return pair(&l->set, &l->n_set, field, strlen(field), t, fn_i64_text(v, t));
}

static int incr(lists_t *l, const char *funnel, const char *what, int stage, int64_t by)
{
    char field[FN_NAME_MAX + 40], t[FN_I64_TEXT];
    if (stage >= 0)
        snprintf(field, sizeof field, "%s|%s|%d", funnel, what, stage);
    else
        snprintf(field, sizeof field, "%s|%s", funnel, what);
    return pair(&l->incr, &l->n_incr, field, strlen(field), t, fn_i64_text(by, t));
}

static int incr_value(lists_t *l, const char *funnel, int stage, double by)
{
    char field[FN_NAME_MAX + 40], t[40];
    snprintf(field, sizeof field, "%s|pv|%d", funnel, stage);
    snprintf(t, sizeof t, "%.17g", by);
    return pair(&l->incrf, &l->n_incrf, field, strlen(field), t, strlen(t));
}

static double value_of(const fn_merge_lead_t *l)
{
    if (!l->has_value || l->value.len >= 40)
        return 0;
    char t[40];
    memcpy(t, l->value.p, l->value.len);
    t[l->value.len] = '\0';
    return strtod(t, NULL);
}

static bool counted(fn_pos_kind_t k)
{
    return k == FN_POS_ACTIVE || k == FN_POS_CONVERTED;
}

/* The people counters of the root's shard: its old position out, the merged one in (the
 * absorbed lead left its own shard's in "detach"). */
static int people(lists_t *l, const fn_funnel_t *f, const fn_merge_funnel_t *old,
                  const fn_merge_funnel_t *now, double oldv, double newv)
{
    int rc = 0;
    bool same = old->pos.kind == now->pos.kind && old->pos.stage == now->pos.stage;
    if (!same && counted(old->pos.kind))
        rc |= incr(l, f->name, "p", old->pos.stage, -1);
    if (!same && counted(now->pos.kind))
        rc |= incr(l, f->name, "p", now->pos.stage, 1);
    if (old->pos.kind == FN_POS_ACTIVE && oldv != 0 && (!same || newv != oldv))
        rc |= incr_value(l, f->name, old->pos.stage, -oldv);
    if (now->pos.kind == FN_POS_ACTIVE && newv != 0 && (!same || newv != oldv))
        rc |= incr_value(l, f->name, now->pos.stage, newv);
    if (old->pos.kind == FN_POS_OUTSIDE && now->pos.kind != FN_POS_OUTSIDE)
        rc |= incr(l, f->name, "leads", -1, 1);
    if (now->pos.kind == FN_POS_CONVERTED && old->pos.kind != FN_POS_CONVERTED)
        rc |= incr(l, f->name, "conv", -1, 1);
    return rc;
}

/* Breakdown populations (SPEC §11, analytics.lua): the merged lead keeps the root's value of
 * each of f's dimensions, or takes the absorbed lead's where the root has none (it never
 * entered since the dimension was configured); the root's old position's counts out, the
 * merged one's in, as people() does (the absorbed lead left its own in "detach"). */
static int breakdowns(lists_t *l, const fn_merge_input_t *in, const fn_funnel_t *f,
                      const fn_merge_funnel_t *old, const fn_merge_funnel_t *now)
{
    int rc = 0;
    bool same = old->pos.kind == now->pos.kind && old->pos.stage == now->pos.stage;
    for (int i = 0; i < f->n_breakdowns; i++) {
        const char *dim = f->breakdowns[i].dim;
        char name[2 * FN_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s%s", f->name, FN_FF_BREAKDOWN, dim);
        fn_str_t mine = hget(in->kept, name), v = mine;
        if (!v.p && now->pos.kind != FN_POS_OUTSIDE && (v = hget(in->absorbed, name)).p)
            rc |= set_s(l, name, v);
        if (same && mine.p)
            continue;
        /* a value is at most a campaign's 256 bytes (event.c) */
        char field[3 * FN_NAME_MAX + 512], t[FN_I64_TEXT];
        if (mine.p && counted(old->pos.kind)) {
            int n = snprintf(field, sizeof field, "%s|bp|%s|%d|%.*s", f->name, dim, old->pos.stage,
                             (int)mine.len, mine.p);
            if (n < 0 || (size_t)n >= sizeof field)
                return FN_ERR;
            rc |= pair(&l->incr, &l->n_incr, field, (size_t)n, t, fn_i64_text(-1, t));
        }
        if (v.p && counted(now->pos.kind)) {
            int n = snprintf(field, sizeof field, "%s|bp|%s|%d|%.*s", f->name, dim, now->pos.stage,
                             (int)v.len, v.p);
            if (n < 0 || (size_t)n >= sizeof field)
                return FN_ERR;
            rc |= pair(&l->incr, &l->n_incr, field, (size_t)n, t, fn_i64_text(1, t));
        }
    }
    return rc;
}

/* Removes the root's timer field name (value v) and its member. */
static int timer_drop(lists_t *l, const fn_merge_input_t *in, const fn_funnel_t *f,
                      const char *name, fn_str_t reason, timer_val_t v)
{
    int rc = bulk_s(&l->del, name);
    l->n_del++;
    if (v.ok && v.zset.len) {
        char key[400], member[512];
        /* the field holds the zset key's tail (or, written before, the whole key) */
        const char *due = strstr(in->root_key, FN_KEY_LEAD);
        size_t base = due ? (size_t)(due - in->root_key) : 0;
        if (v.zset.len > base && memcmp(v.zset.p, in->root_key, base) == 0)
            snprintf(key, sizeof key, "%.*s", (int)v.zset.len, v.zset.p);
        else
            snprintf(key, sizeof key, "%.*s%s%.*s", (int)base, in->root_key, FN_KEY_DUE,
                     (int)v.zset.len, v.zset.p);
        size_t ml =
            fn_key_timer_member(member, sizeof member, in->root_key, f->name, reason.p, reason.len);
        rc |= pair(&l->zrem, &l->n_zrem, key, strlen(key), member, ml);
    } else if (v.ok && reason.len == 7 && memcmp(reason.p, "stalled", 7) == 0) {
        rc |= incr(l, f->name, "stl", v.stage, -1); /* a fired stall's marker */
    }
    return rc;
}

/* Arms timer (f, reason) of the root into the due zset. */
static int timer_arm(lists_t *l, const fn_merge_input_t *in, const fn_funnel_t *f, fn_str_t reason,
                     int64_t due, int stage, fn_str_t cause, int64_t *min_due)
{
    char name[FN_NAME_MAX + 80], value[600], member[512], score[FN_I64_TEXT];
    snprintf(name, sizeof name, "%s%s%.*s", f->name, FN_FF_TIMER, (int)reason.len, reason.p);
    snprintf(value, sizeof value, "%lld|%d|%s|%.*s", (long long)due, stage, in->due_tail,
             (int)cause.len, cause.p);
    size_t ml =
        fn_key_timer_member(member, sizeof member, in->root_key, f->name, reason.p, reason.len);
    if (!*min_due || due < *min_due)
        *min_due = due;
    return pair(&l->set, &l->n_set, name, strlen(name), value, strlen(value)) ||
           pair(&l->zadd, &l->n_zadd, score, fn_i64_text(due, score), member, ml);
}

/* Each timer of funnel f on one side, by reason: the lead hash's "<f>|t|<reason>" fields. */
typedef struct timer_set {
    size_t n;
    fn_str_t reason[40], value[40];
} timer_set_t;

static void timers_of(const redisReply *r, const char *funnel, timer_set_t *t)
{
    char prefix[FN_NAME_MAX + 8];
    size_t pl = (size_t)snprintf(prefix, sizeof prefix, "%s%s", funnel, FN_FF_TIMER);
    t->n = 0;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || f->len <= pl || memcmp(f->str, prefix, pl) != 0 ||
            t->n == sizeof t->reason / sizeof t->reason[0])
            continue;
        t->reason[t->n] = (fn_str_t){f->str + pl, f->len - pl};
        t->value[t->n++] = (fn_str_t){v->str, v->len};
    }
}

static fn_str_t find_timer(const timer_set_t *t, fn_str_t reason)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->reason[i].len == reason.len && memcmp(t->reason[i].p, reason.p, reason.len) == 0)
            return t->value[i];
    return (fn_str_t){NULL, 0};
}

/* The merged lead's timers in funnel f (SPEC §10): both sides' pending ones carry over, the
 * kept lead's first; a stall is re-armed from the merged lead's latest activity; none stay
 * for a lead that is no longer active or is opted out. */
static int timers(lists_t *l, const fn_merge_input_t *in, const fn_funnel_t *f,
                  const fn_merge_funnel_t *now, char consent, int64_t *min_due, int64_t *tn)
{
    timer_set_t kt, at;
    timers_of(in->kept, f->name, &kt);
    timers_of(in->absorbed, f->name, &at);
    bool live = now->pos.kind == FN_POS_ACTIVE && consent != '0';
    const fn_str_t stalled = {"stalled", 7};
    int rc = 0;
    char name[FN_NAME_MAX + 80];
    for (size_t i = 0; i < kt.n; i++) {
        bool is_stall = kt.reason[i].len == 7 && memcmp(kt.reason[i].p, "stalled", 7) == 0;
        timer_val_t v = timer_read(kt.value[i]);
        if (live && !is_stall && v.ok && v.zset.len) {
            if (v.due < *tn || !*tn)
                *tn = v.due; /* a pending rule timer of the root stays as it is */
            continue;
        }
        snprintf(name, sizeof name, "%s%s%.*s", f->name, FN_FF_TIMER, (int)kt.reason[i].len,
                 kt.reason[i].p);
        rc |= timer_drop(l, in, f, name, kt.reason[i], v);
    }
    if (!live)
        return rc;
    for (size_t i = 0; i < at.n; i++) {
        bool is_stall = at.reason[i].len == 7 && memcmp(at.reason[i].p, "stalled", 7) == 0;
        timer_val_t v = timer_read(at.value[i]), k = timer_read(find_timer(&kt, at.reason[i]));
        if (is_stall || !v.ok || !v.zset.len || (k.ok && k.zset.len))
            continue;
        rc |= timer_arm(l, in, f, at.reason[i], v.due, v.stage, v.cause, min_due);
        if (v.due < *tn || !*tn)
            *tn = v.due;
    }
    int64_t stale = f->stages[now->pos.stage].stale_after_ms;
    if (stale > 0) {
        int64_t due = now->active_at + stale;
        rc |= timer_arm(l, in, f, stalled, due, now->pos.stage, in->ev->event_id, min_due);
        if (due < *tn || !*tn)
            *tn = due;
    }
    return rc;
}

static char op_of(fn_outcome_kind_t k)
{
    return k == FN_OUT_CONVERT ? 'C' : k == FN_OUT_FORWARD ? 'F' : 'E';
}

static int output(fn_merge_plan_t *p, const fn_buf_t *payload)
{
    if (fn_buf_append(&p->outputs, payload->data, payload->len) ||
        fn_buf_append(&p->outputs, "", 1) || fn_buf_append(&p->pending, ",", 1) ||
        fn_buf_append_json_str(&p->pending, payload->data, payload->len))
        return FN_ERR;
    p->n_outputs++;
    return FN_OK;
}

static fn_attr_t attr_of(const fn_merge_touch_t *t, int64_t at)
{
    fn_attr_t a = {t->channel, t->campaign, t->source, t->set ? t->at : at};
    if (!a.channel.p)
        a.channel = (fn_str_t){"", 0};
    return a;
}

int fn_merge_plan(const fn_merge_input_t *in, fn_merge_plan_t *p)
{
    const fn_config_t *cfg = in->cfg;
    fn_merge_lead_t kept, absorbed, out;
    fn_merge_move_t moves[FN_MAX_FUNNELS];
    lists_t l = {0};
    fn_buf_t payload = {0};
    int rc = FN_ERR;
    memset(p, 0, sizeof *p);
    fn_merge_read_lead(cfg, in->kept, &kept);
    fn_merge_read_lead(cfg, in->absorbed, &absorbed);
    fn_merge_leads(&kept, &absorbed, &out, moves);
    int64_t at = in->ev->ts_ms;
    if (out.has_ts && out.ts > at)
        at = out.ts;

    /* the hash as read: apply refuses to write unless the root is still exactly this */
    for (size_t i = 0; in->kept && i + 1 < in->kept->elements; i += 2)
        if (pair(&l.read, &l.n_read, in->kept->element[i]->str, in->kept->element[i]->len,
                 in->kept->element[i + 1]->str, in->kept->element[i + 1]->len))
            goto done;

    /* the lead's own fields */
    if (set_s(&l, FN_F_ID, in->ev->lead_id) || set_i(&l, FN_F_TS, at))
        goto done;
    const fn_merge_touch_t *touches[2] = {&out.first, &out.last};
    static const char *const names[2][4] = {
        {FN_F_FIRST_CH, FN_F_FIRST_CP, FN_F_FIRST_SRC, FN_F_FIRST_AT},
        {FN_F_LAST_CH, FN_F_LAST_CP, FN_F_LAST_SRC, FN_F_LAST_AT}};
    for (int t = 0; t < 2; t++)
        if (touches[t]->set &&
            (set_s(&l, names[t][0], touches[t]->channel) ||
             set_s(&l, names[t][1], touches[t]->campaign) ||
             set_s(&l, names[t][2], touches[t]->source) || set_i(&l, names[t][3], touches[t]->at)))
            goto done;
    if (out.last.set) {
        bool from_absorbed = absorbed.last.set && out.last.at == absorbed.last.at &&
                             (!kept.last.set || absorbed.last.at > kept.last.at);
        fn_str_t ty = hget(from_absorbed ? in->absorbed : in->kept, FN_F_LAST_TYPE);
        if (ty.p && set_s(&l, FN_F_LAST_TYPE, ty))
            goto done;
    }
    if (out.has_value &&
        (set_s(&l, FN_F_VALUE, out.value) || set_i(&l, FN_F_VALUE_AT, out.value_at)))
        goto done;
    if (out.consent) {
        char c[2] = {out.consent, 0};
        if (set_s(&l, FN_F_CONSENT, (fn_str_t){c, 1}) ||
            (out.has_consent_at && set_i(&l, FN_F_CONSENT_AT, out.consent_at)))
            goto done;
    }

    /* per funnel: position, counters, timers */
    double oldv = value_of(&kept), newv = value_of(&out);
    int64_t tn = 0;
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        const fn_merge_funnel_t *m = &out.funnel[i];
        char name[FN_NAME_MAX + 8];
        if (m->pos.kind != FN_POS_OUTSIDE) {
            const char *x = m->pos.kind == FN_POS_ACTIVE      ? FN_STATUS_ACTIVE
                            : m->pos.kind == FN_POS_CONVERTED ? FN_STATUS_CONVERTED
                                                              : FN_STATUS_LOST;
            fn_lead_pos_t pos = {.has_touches = true,
                                 .has_active = true,
                                 .has_stage = true,
                                 .has_entered = true,
                                 .has_began = true,
                                 .touches = m->touches,
                                 .active_at = m->active_at,
                                 .status = x[0],
                                 .stage = m->pos.stage,
                                 .entered_at = m->entered_at,
                                 .began_at = m->began_at};
            char text[FN_LEAD_POS_TEXT];
            size_t tl = fn_lead_pos_text(&pos, text);
            fn_field_funnel(name, sizeof name, f->name, FN_FF_POS);
            if (set_s(&l, name, (fn_str_t){text, tl}))
                goto done;
            /* the kept lead's position in the layout before "|p" (position.lua) goes */
            static const char *const old[] = {FN_FF_STATUS, FN_FF_STAGE,   FN_FF_ENTERED,
                                              FN_FF_BEGAN,  FN_FF_TOUCHES, FN_FF_ACTIVE};
            for (int s = 0; s < 6; s++) {
                fn_field_funnel(name, sizeof name, f->name, old[s]);
                if (!hget(in->kept, name).p)
                    continue;
                if (bulk_s(&l.del, name))
                    goto done;
                l.n_del++;
            }
        }
        if (people(&l, f, &kept.funnel[i], m, oldv, newv) ||
            breakdowns(&l, in, f, &kept.funnel[i], m) ||
            timers(&l, in, f, m, out.consent, &p->armed_due, &tn))
            goto done;
    }
    if (tn) {
        if (set_i(&l, FN_F_TIMERS_NEXT, tn))
            goto done;
    } else if (hget(in->kept, FN_F_TIMERS_NEXT).p) {
        if (bulk_s(&l.del, FN_F_TIMERS_NEXT))
            goto done;
        l.n_del++;
    }

    /* the ids the root holds now */
    if (bulk(&l.sadd, in->absorbed_id.p, in->absorbed_id.len))
        goto done;
    l.n_sadd++;
    for (size_t i = 0; in->ids && i < in->ids->elements; i++, l.n_sadd++)
        if (bulk(&l.sadd, in->ids->element[i]->str, in->ids->element[i]->len))
            goto done;

    /* outputs: a lead_merged per funnel where either lead had state, then the moves */
    if (fn_buf_appendf(&p->pending, "%s|[\"merged\"", in->token))
        goto done;
    fn_step_result_t res = {0};
    res.at = at;
    res.value = out.has_value ? out.value : (fn_str_t){"", 0};
    res.first = attr_of(&out.first, at);
    res.last = attr_of(&out.last, at);
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        if (!moves[i].either)
            continue;
        const fn_funnel_t *f = &cfg->funnels[i];
        fn_pos_t from = kept.funnel[i].pos, to = out.funnel[i].pos;
        if (fn_emit_merged(&payload, in->ev, f, in->absorbed_id, from, to, at, in->now_ms) ||
            output(p, &payload))
            goto done;
    }
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        if (moves[i].kind == FN_OUT_TOUCH)
            continue;
        const fn_merge_funnel_t *k = &kept.funnel[i], *m = &out.funnel[i];
        fn_step_transition_t t = {
            &cfg->funnels[i], op_of(moves[i].kind), moves[i].from, moves[i].to, 0, at - m->began_at,
            m->touches,   NULL /* a conversion implied by a merge was credited where it happened */};
        if (k->pos.kind == FN_POS_ACTIVE)
            t.time_in_stage_ms = at - k->entered_at;
        if (t.cycle_ms < 0)
            t.cycle_ms = 0;
        if (t.time_in_stage_ms < 0)
            t.time_in_stage_ms = 0;
        if (fn_emit_transition(&payload, in->ev, &res, &t, in->now_ms) || output(p, &payload))
            goto done;
        p->n_transitions++;
    }
    if (fn_buf_append(&p->pending, "]", 1))
        goto done;

    /* the absorbed lead's touches join the root's (attribution.lua), kept to the cap */
    int64_t cap = fn_step_touch_cap(cfg);
    for (size_t i = 0; cap > 0 && in->touches && i + 1 < in->touches->elements; i += 2) {
        const redisReply *m = in->touches->element[i], *sc = in->touches->element[i + 1];
        if (m->type == REDIS_REPLY_STRING && sc->type == REDIS_REPLY_STRING &&
            pair(&l.touch, &l.n_touch, sc->str, sc->len, m->str, m->len))
            goto done;
    }

    /* join the lists, each with its count, then the touch cap */
    const fn_buf_t *bufs[] = {&l.read, &l.set,  &l.del,  &l.incr, &l.incrf,
                              &l.sadd, &l.zrem, &l.zadd, &l.touch};
    const size_t counts[] = {l.n_read, l.n_set,  l.n_del,  l.n_incr, l.n_incrf,
                             l.n_sadd, l.n_zrem, l.n_zadd, l.n_touch};
    const size_t width[] = {2, 2, 1, 2, 2, 1, 2, 2, 2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (bulk_i(&p->args, (int64_t)counts[i]) ||
            (bufs[i]->len && fn_buf_append(&p->args, bufs[i]->data, bufs[i]->len)))
            goto done;
        p->n_args += 1 + counts[i] * width[i];
    }
    if (bulk_i(&p->args, cap))
        goto done;
    p->n_args++;
    rc = FN_OK;
done:
    fn_buf_free(&l.read), fn_buf_free(&l.set), fn_buf_free(&l.del), fn_buf_free(&l.incr);
    fn_buf_free(&l.incrf), fn_buf_free(&l.sadd), fn_buf_free(&l.zrem), fn_buf_free(&l.zadd);
    fn_buf_free(&l.touch);
    fn_buf_free(&payload);
    if (rc)
        fn_merge_plan_free(p);
    return rc;
}

void fn_merge_plan_free(fn_merge_plan_t *p)
{
    fn_buf_free(&p->args);
    fn_buf_free(&p->pending);
    fn_buf_free(&p->outputs);
    memset(p, 0, sizeof *p);
}

int fn_merge_pending_outputs(const char *p, size_t len, fn_str_t *owner, fn_buf_t *outputs,
                             size_t *n)
{
    const char *bar = memchr(p, '|', len);
    *n = 0;
    if (!bar)
        return FN_ERR;
    *owner = (fn_str_t){p, (size_t)(bar - p)};
    json_error_t err;
    json_t *a = json_loadb(bar + 1, len - (size_t)(bar - p) - 1, 0, &err);
    int rc = FN_ERR;
    if (!json_is_array(a) || json_array_size(a) < 1 ||
        strcmp(json_string_value(json_array_get(a, 0)) ? json_string_value(json_array_get(a, 0))
                                                       : "",
               "merged") != 0)
        goto done;
    fn_buf_reset(outputs);
    for (size_t i = 1; i < json_array_size(a); i++) {
        json_t *s = json_array_get(a, i);
        if (!json_is_string(s) ||
            fn_buf_append(outputs, json_string_value(s), json_string_length(s)) ||
            fn_buf_append(outputs, "", 1))
            goto done;
        (*n)++;
    }
    rc = FN_OK;
done:
    json_decref(a);
    return rc;
}
