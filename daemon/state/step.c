/*
 * step.c — builds the Lua step's command for one event and parses its reply (step.h).
 *
 * The command is written straight into RESP so the daemon can keep it in its in-flight
 * record and re-send it unchanged after a reconnect: the step is idempotent, so a re-send of
 * an event that was already applied only reports "dup".
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/keys.h"
#include "funneld/rules.h"
#include "funneld/step.h"

fn_hash128_t fn_step_lead_hash(const char *lead_id, size_t len)
{
    const char *parts[] = {"lead", lead_id};
    const size_t lens[] = {4, len};
    return fn_hash_parts(parts, lens, 2);
}

unsigned fn_step_shard(const fn_config_t *cfg, fn_hash128_t lead_hash)
{
    return (unsigned)(lead_hash.hi % (uint64_t)cfg->redis_shards);
}

static void cat_s(char *out, size_t outlen, size_t *at, const char *s)
{
    fn_cat(out, outlen, at, s, strlen(s));
}

/* The keys fn_step_keys_fast names, for the lead of hex hash in shard. The key names come
 * from the keys module (keys.def), the one owner of the layout. */
static void fast_keys(const fn_config_t *cfg, const char *hex, unsigned shard, fn_lead_keys_t *k)
{
    fn_key_lead(k->lead, sizeof k->lead, cfg->key_prefix, shard, hex);
    fn_key_seen(k->seen, sizeof k->seen, cfg->key_prefix, shard, hex);
    fn_key_out(k->pending, sizeof k->pending, cfg->key_prefix, shard, hex);
    k->shard = shard;
}

void fn_step_keys_fast(const fn_config_t *cfg, fn_hash128_t h, fn_lead_keys_t *k)
{
    char hex[33];
    fn_hash_hex(h, hex);
    fast_keys(cfg, hex, fn_step_shard(cfg, h), k);
    k->stats[0] = k->touches[0] = '\0';
}

void fn_step_keys(const fn_config_t *cfg, fn_hash128_t h, fn_lead_keys_t *k)
{
    char hex[33];
    fn_hash_hex(h, hex);
    fast_keys(cfg, hex, fn_step_shard(cfg, h), k);
    fn_key_stats(k->stats, sizeof k->stats, cfg->key_prefix, k->shard);
    fn_key_touches(k->touches, sizeof k->touches, cfg->key_prefix, k->shard, hex);
}

void fn_step_due_key(const fn_config_t *cfg, unsigned shard, const char *topic, int32_t partition,
                     char *out, size_t outlen)
{
    fn_key_due(out, outlen, cfg->key_prefix, shard, topic, partition);
}

/* Shortest decimal text that reads back as the same double. */
static int format_double(double v, char *out, size_t n)
{
    snprintf(out, n, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, n, "%.17g", v);
    return (int)strlen(out);
}

/* Sized from the layout's one definition (step.h): the config refuses more than
 * FN_MAX_FUNNELS funnels, so a command never outgrows it. */
typedef struct argv_s {
    const char *p[FN_STEP_MAX_WORDS];
    size_t len[FN_STEP_MAX_WORDS];
    const fn_funnel_t *spec_of[FN_STEP_MAX_WORDS]; /* the argument is this funnel's timer spec */
    size_t n;
} argv_t;

static void arg(argv_t *a, const char *p, size_t len)
{
    assert(a->n < FN_STEP_MAX_WORDS);
    if (a->n >= FN_STEP_MAX_WORDS)
        return; /* unreachable (see argv_t); fn_step_build then refuses the command */
    a->p[a->n] = p ? p : "";
    a->len[a->n] = p ? len : 0;
    a->spec_of[a->n] = NULL;
    a->n++;
}

static void arg_s(argv_t *a, const char *s)
{
    arg(a, s, strlen(s));
}
static void arg_str(argv_t *a, fn_str_t s)
{
    arg(a, s.p, s.len);
}

int fn_resp_head(fn_buf_t *out, size_t n)
{
    fn_buf_reset(out);
    char count[FN_I64_TEXT + 3];
    count[0] = '*';
    size_t cl = 1 + fn_i64_text((int64_t)n, count + 1);
    count[cl++] = '\r', count[cl++] = '\n';
    return fn_buf_append(out, count, cl);
}

int fn_resp_bulk(fn_buf_t *out, const char *p, size_t len)
{
    /* One reservation, then plain stores: this runs some forty times per event. */
    if (fn_buf_reserve(out, len + FN_I64_TEXT + 5))
        return FN_ERR;
    char *w = out->data + out->len;
    *w++ = '$';
    w += fn_i64_text((int64_t)len, w);
    *w++ = '\r', *w++ = '\n';
    memcpy(w, p, len);
    w += len;
    *w++ = '\r', *w++ = '\n';
    *w = '\0';
    out->len = (size_t)(w - out->data);
    return FN_OK;
}

/* Funnel f's part of the FN_STEP_TAIL_MARKETING word (step.h), appended to out at *n. */
static void marketing_spec(const fn_funnel_t *f, char *out, size_t outlen, size_t *n)
{
    const fn_attribution_cfg_t *at = &f->attribution;
    fn_cat(out, outlen, n, ";", 1);
    for (int i = 0; at->enabled && i < at->n_models; i++) {
        char d = (char)('0' + at->models[i]);
        fn_cat(out, outlen, n, &d, 1);
    }
    if (at->enabled) {
        fn_cat(out, outlen, n, "|", 1);
        fn_cat_i64(out, outlen, n, at->lookback_ms);
        fn_cat(out, outlen, n, "|", 1);
        fn_cat_i64(out, outlen, n, at->max_touches);
        fn_cat(out, outlen, n, "|", 1);
        fn_cat_i64(out, outlen, n, at->half_life_ms);
    }
    fn_cat(out, outlen, n, "/", 1);
    if (f->cohorts)
        fn_cat(out, outlen, n, f->allow_regress ? "r" : "1", 1);
    fn_cat(out, outlen, n, "/", 1);
    for (int i = 0; i < f->n_breakdowns; i++) {
        const fn_breakdown_cfg_t *b = &f->breakdowns[i];
        if (i)
            fn_cat(out, outlen, n, ",", 1);
        fn_cat(out, outlen, n, b->last ? "l" : "f", 1);
        fn_cat(out, outlen, n, b->dim, strlen(b->dim));
    }
}

/* The event's value of each props breakdown of f, "<bytes>:<text>" each ("-1:" absent),
 * appended to out at *n (step.h, FN_STEP_TAIL_MARKETING). */
static void breakdown_values(const fn_funnel_t *f, const fn_event_t *ev, char *out, size_t outlen,
                             size_t *n)
{
    for (int i = 0; i < f->n_breakdowns; i++) {
        const fn_breakdown_cfg_t *b = &f->breakdowns[i];
        if (b->source != FN_BD_PROP)
            continue;
        char v[FN_STEP_BD_VALUE_MAX + 1];
        int len = fn_event_prop_text(ev, b->dim + 6, v, sizeof v);
        fn_cat_i64(out, outlen, n, len);
        fn_cat(out, outlen, n, ":", 1);
        if (len > 0)
            fn_cat(out, outlen, n, v, (size_t)len);
    }
}

bool fn_step_lib_loaded(const redisReply *reply)
{
    return reply && (reply->type == REDIS_REPLY_STRING ||
                     (reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "already exists")));
}

int fn_step_build(const fn_config_t *cfg, const fn_step_call_t *call, const char *token,
                  const fn_event_t *ev, fn_hash128_t lead_hash, int64_t now_ms, int64_t clock_ms,
                  const char *topic, int32_t partition, fn_buf_t *out)
{
    fn_lead_keys_t k;
    fn_step_keys(cfg, lead_hash, &k);
    char due[352];
    fn_step_due_key(cfg, k.shard, topic, partition, due, sizeof due);
    char now[FN_I64_TEXT], ttl[FN_I64_TEXT], ts[FN_I64_TEXT], value[40], nfun[FN_I64_TEXT];
    char stages[FN_MAX_FUNNELS][FN_I64_TEXT];
    char plans[FN_MAX_FUNNELS][2 * (FN_MAX_STAGES + 3) + 1];
    /* marketing analytics of the funnels named (FN_STEP_TAIL_MARKETING), when any has some */
    char marketing[2 * FN_I64_TEXT + FN_NAME_MAX + 1 +
                   FN_MAX_FUNNELS * (FN_ATTR_N_MODELS + 3 * FN_I64_TEXT + 7 +
                                     FN_MAX_BREAKDOWNS * (FN_NAME_MAX + 10))];
    /* the props breakdowns' values, appended to marketing after "\n" */
    char bvalues[FN_MAX_FUNNELS * FN_MAX_BREAKDOWNS * (FN_STEP_BD_VALUE_MAX + FN_I64_TEXT + 1)];
    size_t ml = 0, bvl = 0;
    bool any_marketing = false;
    argv_t a; /* filled word by word (arg): most of its slots stay unused */
    a.n = 0;

    fn_i64_text(now_ms, now);
    fn_i64_text(cfg->dedupe_ttl_ms, ttl);
    fn_i64_text(ev->ts_ms, ts);
    value[0] = '\0';
    if (ev->kind == FN_EV_COST)
        fn_i64_text(ev->cost_cents, value); /* a cost's amount, in hundredths */
    else if (ev->has_value)
        format_double(ev->value, value, sizeof value);

    char outbox[64], leases[64];
    fn_key_outbox(outbox, sizeof outbox, cfg->key_prefix, k.shard);
    fn_key_leases(leases, sizeof leases, cfg->key_prefix, k.shard);
    char nkeys[FN_I64_TEXT];
    fn_i64_text(FN_STEP_KEYS, nkeys);
    arg_s(&a, call->verb), arg_s(&a, call->name), arg_s(&a, nkeys);
    arg_s(&a, k.lead), arg_s(&a, k.seen), arg_s(&a, k.pending), arg_s(&a, k.stats);
    arg_s(&a, due), arg_s(&a, outbox), arg_s(&a, leases);
    arg_s(&a, now), arg_s(&a, ttl), arg_str(&a, ev->lead_id), arg_str(&a, ev->event_id);
    arg_s(&a, ts);
    arg_s(&a, ev->kind == FN_EV_ERASE     ? "e"
              : ev->kind == FN_EV_CONSENT ? "c"
              : ev->kind == FN_EV_COST    ? "k"
                                          : "t");
    arg_str(&a, ev->channel), arg_str(&a, ev->type), arg_str(&a, ev->campaign);
    arg_str(&a, ev->source), arg_s(&a, value);
    arg_s(&a, ev->kind == FN_EV_CONSENT ? (ev->marketing ? "1" : "0") : "");
    arg_s(&a, token);
    arg_s(&a, cfg->redis_cluster ? "1" : ""); /* read the undeclared keys first (step.lua) */

    size_t nf = 0, bl = 0;
    char breakdown[FN_MAX_FUNNELS * (FN_I64_TEXT + 1) + 1];
    breakdown[0] = '\0';
    size_t nfun_at = a.n;
    arg_s(&a, "0"); /* patched below */
    assert(cfg->n_funnels <= FN_MAX_FUNNELS);
    for (size_t i = 0; ev->kind != FN_EV_CONSENT && i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        if ((ev->kind == FN_EV_TOUCHPOINT || ev->kind == FN_EV_COST) && ev->funnel.p &&
            (strlen(f->name) != ev->funnel.len || memcmp(f->name, ev->funnel.p, ev->funnel.len)))
            continue;
        /* a cost is kept by the funnels with attribution only (event.c) */
        if (ev->kind == FN_EV_COST && !f->attribution.enabled)
            continue;
        plans[nf][0] = '\0';
        if (ev->kind == FN_EV_TOUCHPOINT)
            fn_rules_plan(f, fn_rules_match(f, ev), plans[nf], sizeof plans[nf]);
        fn_i64_text((int64_t)f->n_stages, stages[nf]);
        arg_s(&a, f->name), arg_s(&a, stages[nf]), arg_s(&a, plans[nf]);
        /* the timer spec is written while encoding, into a stack buffer, one at a time */
        arg(&a, "", 0);
        if (ev->kind == FN_EV_TOUCHPOINT)
            a.spec_of[a.n - 1] = f;
        if (ev->kind != FN_EV_CONSENT) {
            any_marketing =
                any_marketing || f->attribution.enabled || f->cohorts || f->n_breakdowns;
            marketing_spec(f, marketing, sizeof marketing, &ml);
            breakdown_values(f, ev, bvalues, sizeof bvalues, &bvl); /* step.lua reads them all */
        }
        fn_cat_i64(breakdown, sizeof breakdown, &bl, f->max_breakdown);
        fn_cat(breakdown, sizeof breakdown, &bl, ",", 1);
        nf++;
    }
    fn_i64_text((int64_t)nf, nfun);
    /* The lead's timers due by the partition's time at this event fire before it is applied
     * (the tick would have fired them had this event's predecessors finished first); by the
     * wall clock, never ahead of the wall time (event times may run a little ahead of it). */
    char caps[FN_MAX_FUNNELS * (FN_NAME_MAX + 44)], bound[FN_I64_TEXT];
    fn_step_caps(cfg, caps, sizeof caps);
    int64_t b = clock_ms > ev->ts_ms ? clock_ms : ev->ts_ms;
    if (cfg->clock == FN_CLOCK_WALL && now_ms < b)
        b = now_ms;
    fn_i64_text(b, bound);
    /* The touches a lead keeps and the event's route head the funnels' parts; touches are
     * kept for the funnel with the most, whichever funnels this event reaches. */
    char head[2 * FN_I64_TEXT + FN_NAME_MAX + 2];
    size_t hl = 0;
    head[0] = '\0';
    if (any_marketing) {
        fn_cat_i64(head, sizeof head, &hl, fn_step_touch_cap(cfg));
        fn_cat(head, sizeof head, &hl, ",", 1);
        if (ev->funnel.p)
            fn_cat(head, sizeof head, &hl, ev->funnel.p, ev->funnel.len);
        if (hl + ml + 1 > sizeof marketing)
            return FN_ERR;
        memmove(marketing + hl, marketing, ml + 1);
        memcpy(marketing, head, hl);
        ml += hl;
        if (bvl > 0) {
            if (ml + 1 + bvl > sizeof marketing)
                return FN_ERR;
            marketing[ml++] = '\n';
            memcpy(marketing + ml, bvalues, bvl);
            ml += bvl;
        }
    }
    arg_s(&a, caps), arg_s(&a, bound), arg(&a, breakdown, bl);
    arg(&a, marketing, any_marketing ? ml : 0);
    a.p[nfun_at] = nfun;
    a.len[nfun_at] = strlen(nfun);
    /* A word dropped or added would shift every later argument: refuse rather than send. */
    if (a.n != FN_STEP_WORDS(nf))
        return FN_ERR;

    if (fn_resp_head(out, a.n))
        return FN_ERR;
    char spec[FN_TIMER_SPEC_MAX];
    for (size_t i = 0; i < a.n; i++) {
        if (a.spec_of[i]) {
            a.len[i] = fn_rules_timer_spec(a.spec_of[i], ev, spec, sizeof spec);
            a.p[i] = spec;
        }
        if (fn_resp_bulk(out, a.p[i], a.len[i]))
            return FN_ERR;
    }
    return FN_OK;
}

int64_t fn_step_touch_cap(const fn_config_t *cfg)
{
    int64_t cap = 0;
    for (size_t i = 0; i < cfg->n_funnels; i++)
        if (cfg->funnels[i].attribution.enabled && cfg->funnels[i].attribution.max_touches > cap)
            cap = cfg->funnels[i].attribution.max_touches;
    return cap;
}

void fn_step_caps(const fn_config_t *cfg, char *out, size_t outlen)
{
    size_t n = 0;
    if (outlen == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        if (f->trigger_cap_max > 0) {
            cat_s(out, outlen, &n, f->name);
            fn_cat(out, outlen, &n, "=", 1);
            fn_cat_i64(out, outlen, &n, f->trigger_cap_max);
            fn_cat(out, outlen, &n, ",", 1);
            fn_cat_i64(out, outlen, &n, f->trigger_cap_per_ms);
            fn_cat(out, outlen, &n, ";", 1);
        }
    }
}

static int reply_str(const redisReply *r, fn_str_t *s)
{
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
        return FN_ERR;
    s->p = r->str;
    s->len = r->len;
    return FN_OK;
}

static int reply_int(const redisReply *r, int64_t *v)
{
    if (r && r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return FN_OK;
    }
    fn_str_t s;
    if (reply_str(r, &s))
        return FN_ERR;
    return fn_i64_parse(s.p, s.len, v);
}

/* A list of a step reply: an array, or NULL for the empty string step.lua sends for an empty
 * one (a stored result from before sends an empty array). FN_ERR for anything else. */
static int reply_list(const redisReply *r, const redisReply **list)
{
    *list = NULL;
    if (r->type == REDIS_REPLY_ARRAY)
        *list = r->elements ? r : NULL;
    else if (r->type != REDIS_REPLY_STRING || r->len)
        return FN_ERR;
    return FN_OK;
}

static int parse_attr(const redisReply *r, size_t at, fn_attr_t *a)
{
    if (reply_str(r->element[at], &a->channel) || reply_str(r->element[at + 1], &a->campaign) ||
        reply_str(r->element[at + 2], &a->source) || reply_int(r->element[at + 3], &a->at))
        return FN_ERR;
    return FN_OK;
}

static int parse_transition(const fn_config_t *cfg, const redisReply *t, fn_step_transition_t *o,
                            char *err, size_t errlen)
{
    fn_str_t name, op;
    int64_t from, to;
    if (t->type != REDIS_REPLY_ARRAY || t->elements < 7 || t->elements > 8 ||
        reply_str(t->element[0], &name) || reply_str(t->element[1], &op) || op.len != 1 ||
        reply_int(t->element[2], &from) || reply_int(t->element[3], &to) ||
        reply_int(t->element[4], &o->time_in_stage_ms) || reply_int(t->element[5], &o->cycle_ms) ||
        reply_int(t->element[6], &o->touches)) {
        snprintf(err, errlen, "malformed transition in step reply");
        return FN_ERR;
    }
    /* the credit: {model, channel, campaign, weight, ...} (attribution.lua) */
    o->credit = t->elements == 8 ? t->element[7] : NULL;
    if (o->credit && (o->credit->type != REDIS_REPLY_ARRAY || o->credit->elements % 4)) {
        snprintf(err, errlen, "malformed credit in step reply");
        return FN_ERR;
    }
    for (size_t i = 0; o->credit && i < o->credit->elements; i++)
        if (o->credit->element[i]->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "malformed credit in step reply");
            return FN_ERR;
        }
    o->funnel = fn_config_funnel(cfg, name.p, name.len);
    if (!o->funnel) {
        snprintf(err, errlen, "step reply names funnel \"%.*s\" which is not configured",
                 (int)(name.len > 64 ? 64 : name.len), name.p);
        return FN_ERR;
    }
    int n = (int)o->funnel->n_stages;
    if (from < -1 || from >= n || to < -1 || to >= n) {
        snprintf(err, errlen, "step reply has stage index out of range for funnel %s",
                 o->funnel->name);
        return FN_ERR;
    }
    o->op = op.p[0];
    o->from = (int)from;
    o->to = (int)to;
    return FN_OK;
}

int fn_step_parse(const fn_config_t *cfg, const redisReply *r, fn_step_result_t *res, char *err,
                  size_t errlen)
{
    memset(res, 0, sizeof *res);
    fn_str_t status;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        reply_str(r->element[0], &status)) {
        snprintf(err, errlen, "step reply is not an array with a status");
        return FN_ERR;
    }
    if (status.len == 9 && memcmp(status.p, "collision", 9) == 0) {
        res->status = FN_STEP_COLLISION;
        return FN_OK;
    }
    if (status.len == 8 && memcmp(status.p, "redirect", 8) == 0) {
        fn_str_t pending;
        if (r->elements != 3 || reply_str(r->element[1], &res->target) || !res->target.len ||
            reply_str(r->element[2], &pending)) {
            snprintf(err, errlen, "step reply has a malformed redirect");
            return FN_ERR;
        }
        res->status = FN_STEP_REDIRECT;
        res->merge_pending = pending.len > 0;
        return FN_OK;
    }
    if (status.len >= 3 && memcmp(status.p, "dup", 3) == 0) {
        res->replay = true;
        status.p += status.len > 3 ? 4 : 3;
        status.len -= status.len > 3 ? 4 : 3;
        if (status.len == 0) {
            res->status = FN_STEP_DUP;
            return FN_OK;
        }
    }
    if (status.len == 6 && memcmp(status.p, "erased", 6) == 0) {
        res->status = FN_STEP_ERASED;
    } else if (status.len == 2 && memcmp(status.p, "ok", 2) == 0) {
        res->status = FN_STEP_OK;
    } else {
        snprintf(err, errlen, "unknown step status");
        return FN_ERR;
    }
    res->applied = true;
    const redisReply *attr, *trans;
    if (r->elements < 6 || r->elements > 7 || reply_int(r->element[1], &res->at) ||
        reply_str(r->element[2], &res->value) || reply_list(r->element[3], &attr) ||
        reply_list(r->element[4], &trans)) {
        snprintf(err, errlen, "step reply has the wrong shape");
        return FN_ERR;
    }
    fn_str_t due;
    if (reply_str(r->element[5], &due) || (due.len && reply_int(r->element[5], &res->armed_due))) {
        snprintf(err, errlen, "step reply has a malformed due time");
        return FN_ERR;
    }
    if (r->elements == 7 && reply_list(r->element[6], &res->fired)) {
        snprintf(err, errlen, "step reply has malformed triggers");
        return FN_ERR;
    }
    if (attr && attr->elements == 8) {
        if (parse_attr(attr, 0, &res->first) || parse_attr(attr, 4, &res->last)) {
            snprintf(err, errlen, "step reply has malformed attribution");
            return FN_ERR;
        }
    } else if (attr) {
        snprintf(err, errlen, "step reply has malformed attribution");
        return FN_ERR;
    }
    /* A transition this config cannot render (a replayed result stored under a config that
     * had another funnel, or more stages) is left out and counted: the event is applied,
     * and its other outputs are still owed. */
    err[0] = '\0';
    for (size_t i = 0; trans && i < trans->elements; i++) {
        if (res->n_trans == FN_STEP_MAX_TRANSITIONS) {
            if (!res->n_unreadable++)
                snprintf(err, errlen, "step reply has more than %d transitions",
                         FN_STEP_MAX_TRANSITIONS);
            continue;
        }
        char why[256];
        if (parse_transition(cfg, trans->element[i], &res->trans[res->n_trans], why, sizeof why)) {
            if (!res->n_unreadable++)
                snprintf(err, errlen, "%s", why);
            continue;
        }
        res->n_trans++;
    }
    return FN_OK;
}
