/*
 * analytics.c — a funnel's figures summed over the shards (analytics.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/analytics.h"
#include "funneld/step.h"
#include "funneld/keys.h"
#include "funneld/markov.h"
#include "funneld/window.h"

#define DEFAULT_WINDOW_MS 3600000LL
#define DEFAULT_BASELINE_MS 86400000LL

void fn_analytics_duration(double ms, char *out, size_t outlen)
{
    if (ms < 0 || isnan(ms))
        snprintf(out, outlen, "-");
    else if (ms >= 86400000)
        snprintf(out, outlen, "%.1fd", ms / 86400000);
    else if (ms >= 3600000)
        snprintf(out, outlen, "%.1fh", ms / 3600000);
    else if (ms >= 60000)
        snprintf(out, outlen, "%.0fm", ms / 60000);
    else
        snprintf(out, outlen, "%.0fs", ms / 1000);
}

int fn_analytics_begin(fn_funnel_stats_t *st, const fn_funnel_t *f, int64_t now_ms)
{
    memset(st, 0, sizeof *st);
    st->now_ms = now_ms;
    st->n_stages = f->n_stages;
    st->window_ms = f->bottleneck.window_ms > 0 ? f->bottleneck.window_ms : DEFAULT_WINDOW_MS;
    st->baseline_ms =
        f->bottleneck.baseline_ms > 0 ? f->bottleneck.baseline_ms : DEFAULT_BASELINE_MS;
    fn_analytics_duration((double)st->window_ms, st->window_label, sizeof st->window_label);
    st->conv_by_channel = json_object();
    st->conv_by_campaign = json_object();
    st->n_cohorts = f->cohorts < FN_ANALYTICS_MAX_COHORTS ? f->cohorts : FN_ANALYTICS_MAX_COHORTS;
    st->week = fn_analytics_week(now_ms);
    st->market_model = fn_attr_credit_model(&f->attribution);
    st->markov_counts = json_object();
    st->bd = json_object();
    bool ok = st->conv_by_channel && st->conv_by_campaign && st->markov_counts && st->bd;
    for (int i = 0; ok && i < f->n_breakdowns; i++)
        ok = json_object_set_new(st->bd, f->breakdowns[i].dim, json_object()) == 0;
    for (int d = 0; d < 2; d++)
        ok = (st->market[d] = json_object()) && ok;
    for (int m = 0; m < FN_ATTR_N_MODELS; m++)
        for (int d = 0; d < 2; d++)
            ok = (st->credited[m][d] = json_object()) && ok;
    for (size_t k = 0; k < f->n_stages; k++)
        fn_sketch_init(&st->stage[k].time_in_stage);
    fn_sketch_init(&st->to_convert);
    if (!ok) {
        fn_analytics_free(st);
        return FN_ERR;
    }
    return FN_OK;
}

void fn_analytics_free(fn_funnel_stats_t *st)
{
    json_decref(st->conv_by_channel);
    json_decref(st->conv_by_campaign);
    st->conv_by_channel = st->conv_by_campaign = NULL;
    json_decref(st->markov_counts);
    json_decref(st->markov);
    json_decref(st->bd);
    st->markov_counts = st->markov = st->bd = NULL;
    for (int d = 0; d < 2; d++) {
        json_decref(st->market[d]);
        st->market[d] = NULL;
    }
    for (int m = 0; m < FN_ATTR_N_MODELS; m++)
        for (int d = 0; d < 2; d++) {
            json_decref(st->credited[m][d]);
            st->credited[m][d] = NULL;
        }
    for (size_t k = 0; k < st->n_stages; k++)
        fn_sketch_free(&st->stage[k].time_in_stage);
    fn_sketch_free(&st->to_convert);
}

/* "h<hour> m<minute> ..." for the buckets covering the span ending at end. */
static int plan_arg(int64_t end, int64_t span, fn_buf_t *out)
{
    fn_window_plan_t plan;
    fn_window_plan(end, span, &plan);
    fn_buf_reset(out);
    for (size_t i = 0; i < plan.n; i++) /* "m<index>" or "h<index>", one space apart */
        if ((i && fn_buf_append(out, " ", 1)) ||
            fn_buf_append(out, plan.item[i].minute ? "m" : "h", 1) ||
            fn_buf_append_i64(out, plan.item[i].index))
            return FN_ERR;
    return fn_buf_append(out, "", 1) ? FN_ERR : FN_OK; /* NUL for %s */
}

int fn_analytics_read_args(const fn_config_t *cfg, const fn_funnel_t *f,
                           const fn_funnel_stats_t *st, unsigned shard, fn_analytics_read_args_t *a)
{
    memset(a, 0, sizeof *a);
    fn_key_stats(a->key, sizeof a->key, cfg->key_prefix, shard);
    snprintf(a->n, sizeof a->n, "%zu", f->n_stages);
    if (plan_arg(st->now_ms, st->window_ms, &a->win) ||
        plan_arg(st->now_ms, st->baseline_ms, &a->base))
        return FN_ERR;
    bool market = st->market_model >= 0 && !st->no_sketches;
    bool bd = f->n_breakdowns > 0; /* a past tick's judgment needs them too */
    const char *argv[FN_ANALYTICS_READ_ARGC] = {"1",
                                                a->key,
                                                f->name,
                                                a->n,
                                                a->win.data,
                                                a->base.data,
                                                st->no_sketches ? "0" : "1",
                                                market ? "1" : "0",
                                                bd ? "1" : "0"};
    memcpy(a->argv, argv, sizeof argv);
    return FN_OK;
}

void fn_analytics_read_args_free(fn_analytics_read_args_t *a)
{
    fn_buf_free(&a->win);
    fn_buf_free(&a->base);
}

int fn_analytics_read_cmd(const fn_config_t *cfg, const fn_funnel_t *f, const fn_funnel_stats_t *st,
                          const char *sha, unsigned shard, fn_buf_t *out)
{
    fn_analytics_read_args_t a;
    int rc = FN_ERR;
    if (fn_analytics_read_args(cfg, f, st, shard, &a))
        goto out;
    fn_buf_reset(out);
    if (fn_buf_appendf(out, "*%d\r\n$7\r\nEVALSHA\r\n$%zu\r\n%s\r\n", FN_ANALYTICS_READ_ARGC + 2,
                       strlen(sha), sha))
        goto out;
    for (size_t i = 0; i < FN_ANALYTICS_READ_ARGC; i++)
        if (fn_buf_appendf(out, "$%zu\r\n%s\r\n", strlen(a.argv[i]), a.argv[i]))
            goto out;
    rc = FN_OK;
out:
    fn_analytics_read_args_free(&a);
    return rc;
}

static long long num(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

/* an array of n integer zeros (reals when real) */
static json_t *zeros(size_t n, bool real)
{
    json_t *a = json_array();
    for (size_t j = 0; a && j < n; j++)
        if (json_array_append_new(a, real ? json_real(0) : json_integer(0))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Adds v units to measure i (FN_MARKET_*, + FN_MARKET_ALL for all time) of the cost figure
 * of name ("" is "(none)") on side (0 channel, 1 campaign). */
static void market_put(fn_funnel_stats_t *st, int side, const char *name, int i, double v)
{
    const char *what = name[0] ? name : "(none)";
    json_t *a = json_object_get(st->market[side], what);
    if (!a) {
        a = zeros(FN_MARKET_N, true);
        if (!a || json_object_set_new(st->market[side], what, a))
            return; /* out of memory: left out */
    }
    json_t *x = json_array_get(a, (size_t)i);
    json_real_set(x, json_real_value(x) + v);
}

/* Adds a cost figure "<what><side>|<name>" (analytics.lua) of one shard, read over the window
 * (window) or all time. False when name is none. */
static bool add_market(fn_funnel_stats_t *st, const char *name, const redisReply *v, bool window)
{
    static const char whats[] = "$nvr"; /* in FN_MARKET_* order */
    const char *w = name[0] ? strchr(whats, name[0]) : NULL;
    if (!w || (name[1] != 'c' && name[1] != 'p') || name[2] != '|' || v->type != REDIS_REPLY_STRING)
        return false;
    market_put(st, name[1] == 'p', name + 3, (int)(w - whats) + (window ? 0 : FN_MARKET_ALL),
               strtod(v->str, NULL));
    return true;
}

/* Adds n to figure i (FN_BD_*) of stage k of value (rest: "<value>") of a configured
 * breakdown dimension, from "<dim>|<k>|<value>". */
static void add_breakdown(fn_funnel_stats_t *st, const char *s, int i, json_int_t n)
{
    const char *bar = strchr(s, '|');
    if (!bar)
        return;
    char dim[FN_NAME_MAX + 8], *end;
    size_t dl = (size_t)(bar - s);
    if (dl >= sizeof dim)
        return;
    memcpy(dim, s, dl);
    dim[dl] = '\0';
    json_t *values = json_object_get(st->bd, dim);
    long k = strtol(bar + 1, &end, 10);
    if (!values || end == bar + 1 || *end != '|' || k < 0 || (size_t)k >= st->n_stages)
        return;
    const char *value = end[1] ? end + 1 : "(none)";
    json_t *a = json_object_get(values, value);
    if (!a) {
        a = zeros(st->n_stages * FN_BD_N, false);
        if (!a || json_object_set_new(values, value, a))
            return; /* out of memory: left out */
    }
    json_t *x = json_array_get(a, (size_t)k * FN_BD_N + (size_t)i);
    json_integer_set(x, json_integer_value(x) + n);
}

/* Adds a credited counter of one shard (attribution.lua): "a<model>c|<channel>" or
 * "a<model>p|<campaign>" conversions, with "$" before the bar revenue, each counted in the
 * integer units of step.h. False when name is none. */
static bool add_credited(fn_funnel_stats_t *st, const char *name, size_t len, const char *bar,
                         const redisReply *v)
{
    if (!bar || len < 3 || len > 4 || name[0] != 'a' || name[1] < '0' ||
        name[1] >= '0' + FN_ATTR_N_MODELS || (name[2] != 'c' && name[2] != 'p') ||
        (len == 4 && name[3] != '$'))
        return false;
    json_t *o = st->credited[name[1] - '0'][name[2] == 'p'];
    const char *what = bar[1] ? bar + 1 : "(none)";
    const char *key = len == 4 ? "revenue" : "conversions";
    json_t *cur = json_object_get(o, what);
    if (!cur) {
        cur = json_pack("{s:f,s:f}", "conversions", 0.0, "revenue", 0.0);
        if (!cur || json_object_set_new(o, what, cur))
            return true; /* out of memory: left out */
    }
    json_t *x = json_object_get(cur, key);
    double units = len == 4 ? FN_STEP_CREDIT_MONEY_UNITS : FN_STEP_CREDIT_CONV_UNITS;
    json_real_set(x, json_real_value(x) + strtod(v->str, NULL) / units);
    if (name[1] - '0' == st->market_model)
        market_put(st, name[2] == 'p', bar + 1,
                   FN_MARKET_ALL + (len == 4 ? FN_MARKET_REVENUE : FN_MARKET_CONV),
                   strtod(v->str, NULL));
    return true;
}

int64_t fn_analytics_week(int64_t ms)
{
    int64_t t = ms - FN_STEP_WEEK_OFFSET_MS;
    return t >= 0 ? t / FN_STEP_WEEK_MS : -((-t + FN_STEP_WEEK_MS - 1) / FN_STEP_WEEK_MS);
}

/* Adds an entry cohort's counter of one shard, "coh|<week>|<k>" (step.lua), when its week is
 * one of the last n_cohorts. */
static void add_cohort(fn_funnel_stats_t *st, const char *rest, const redisReply *v)
{
    char *end;
    long long week = strtoll(rest, &end, 10);
    long k = *end == '|' ? strtol(end + 1, NULL, 10) : -1;
    int64_t back = st->week - week;
    if (k < 0 || (size_t)k >= st->n_stages || back < 0 || back >= st->n_cohorts)
        return;
    st->cohort[back].reached[k] += num(v);
}

/* Adds a counter "<name>[|<k>]" of one shard. */
static void add_counter(fn_funnel_stats_t *st, const char *name, const redisReply *v)
{
    const char *bar = strchr(name, '|');
    size_t len = bar ? (size_t)(bar - name) : strlen(name);
    long k = bar ? strtol(bar + 1, NULL, 10) : -1;
    bool stage_ok = k >= 0 && (size_t)k < st->n_stages;
#define IS(lit) (len == sizeof lit - 1 && memcmp(name, lit, len) == 0)
    if (IS("leads") && !bar)
        st->leads += num(v);
    else if (IS("conv") && !bar)
        st->converted += num(v);
    else if (IS("lost") && !bar)
        st->lost += num(v);
    else if (IS("cyc_sum") && !bar)
        st->cycle_sum_ms += num(v);
    else if (IS("val_n") && !bar)
        st->value_n += num(v);
    else if (IS("val_sum") && !bar)
        st->value_sum += strtod(v->str, NULL);
    else if (IS("p") && stage_ok)
        st->stage[k].population += num(v);
    else if (IS("e") && stage_ok)
        st->stage[k].entered += num(v);
    else if (IS("stl") && stage_ok)
        st->stage[k].stalled += num(v);
    else if (IS("pv") && stage_ok)
        st->stage[k].pipeline += strtod(v->str, NULL);
    else if (add_credited(st, name, len, bar, v))
        ;
    else if (len == 2 && (name[0] == '$' || name[0] == 'n') && add_market(st, name, v, false))
        ;
    else if (len == 2 && name[0] == 'm' && strchr("vcn", name[1]) && bar) {
        json_t *cur = json_object_get(st->markov_counts, name);
        json_object_set_new(st->markov_counts, name,
                            json_integer(json_integer_value(cur) + num(v)));
    } else if (IS("mr") && !bar)
        st->markov_revenue += strtod(v->str, NULL);
    else if ((IS("bp") || IS("be")) && bar)
        add_breakdown(st, bar + 1, IS("bp") ? FN_BD_POPULATION : FN_BD_ENTERED_TOTAL, num(v));
    else if (IS("coh") && bar)
        add_cohort(st, bar + 1, v);
    else if ((IS("conv_ch") || IS("conv_cp")) && bar) {
        json_t *o = IS("conv_ch") ? st->conv_by_channel : st->conv_by_campaign;
        const char *what = bar[1] ? bar + 1 : "(none)";
        json_t *cur = json_object_get(o, what);
        json_object_set_new(o, what, json_integer(json_integer_value(cur) + num(v)));
    }
#undef IS
}

static void add_flows(fn_funnel_stats_t *st, const redisReply *r, bool window)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *name = r->element[i]->str;
        long k = strtol(name + 2, NULL, 10);
        if ((name[0] != 'e' && name[0] != 'a') || name[1] != '|' || k < 0 ||
            (size_t)k >= st->n_stages)
            continue;
        fn_stage_stats_t *s = &st->stage[k];
        int64_t v = num(r->element[i + 1]);
        if (window)
            *(name[0] == 'e' ? &s->win_entered : &s->win_advanced) += v;
        else
            *(name[0] == 'e' ? &s->base_entered : &s->base_advanced) += v;
    }
}

static int add_sketch(fn_sketch_t *sk, const redisReply *r)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (fn_sketch_add(sk, (int)num(r->element[i]), (uint64_t)num(r->element[i + 1])))
            return FN_ERR;
    return FN_OK;
}

/* Adds one shard's breakdown flows over the window (or the baseline): "<e|a>|<k>|<dim>|
 * <value>" -> sum. */
static void add_breakdown_flows(fn_funnel_stats_t *st, const redisReply *bf, bool window)
{
    for (size_t i = 0; i + 1 < bf->elements; i += 2) {
        const char *name = bf->element[i]->str;
        if (bf->element[i]->type == REDIS_REPLY_STRING && (name[0] == 'e' || name[0] == 'a') &&
            name[1] == '|') {
            /* "<e|a>|<k>|<dim>|<value>" -> "<dim>|<k>|<value>" */
            const char *kb = name + 2, *kend = strchr(kb, '|');
            const char *dend = kend ? strchr(kend + 1, '|') : NULL;
            if (!dend)
                continue;
            char buf[1024];
            int n = snprintf(buf, sizeof buf, "%.*s|%.*s|%s", (int)(dend - kend - 1), kend + 1,
                             (int)(kend - kb), kb, dend + 1);
            int what = name[0] == 'e' ? (window ? FN_BD_WIN_ENTERED : FN_BD_BASE_ENTERED)
                                      : (window ? FN_BD_WIN_ADVANCED : FN_BD_BASE_ADVANCED);
            if (n > 0 && (size_t)n < sizeof buf)
                add_breakdown(st, buf, what,
                              (json_int_t)strtoll(bf->element[i + 1]->str, NULL, 10));
        }
    }
}

int fn_analytics_add(fn_funnel_stats_t *st, const redisReply *r, char *err, size_t errlen)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
        snprintf(err, errlen, "read reply is not an array of 7");
        return FN_ERR;
    }
    const redisReply *counters = r->element[0], *sketches = r->element[1];
    if (counters->type != REDIS_REPLY_ARRAY || sketches->type != REDIS_REPLY_ARRAY ||
        sketches->elements != st->n_stages + 1 || r->element[2]->type != REDIS_REPLY_ARRAY ||
        r->element[3]->type != REDIS_REPLY_ARRAY || r->element[4]->type != REDIS_REPLY_ARRAY ||
        r->element[5]->type != REDIS_REPLY_ARRAY || r->element[6]->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "read reply has the wrong shape");
        return FN_ERR;
    }
    for (size_t i = 0; i + 1 < counters->elements; i += 2)
        if (counters->element[i]->type == REDIS_REPLY_STRING &&
            counters->element[i + 1]->type == REDIS_REPLY_STRING)
            add_counter(st, counters->element[i]->str, counters->element[i + 1]);
    for (size_t k = 0; k <= st->n_stages; k++)
        if (add_sketch(k < st->n_stages ? &st->stage[k].time_in_stage : &st->to_convert,
                       sketches->element[k])) {
            snprintf(err, errlen, "out of memory");
            return FN_ERR;
        }
    add_flows(st, r->element[2], true);
    add_flows(st, r->element[3], false);
    const redisReply *mk = r->element[4];
    for (size_t i = 0; i + 1 < mk->elements; i += 2)
        if (mk->element[i]->type == REDIS_REPLY_STRING)
            (void)add_market(st, mk->element[i]->str, mk->element[i + 1], true);
    for (int w = 0; w < 2; w++) /* the window's, then the baseline's */
        add_breakdown_flows(st, r->element[5 + w], w == 0);
    return FN_OK;
}

static double quantile(const fn_sketch_t *s, double q)
{
    return fn_sketch_count(s) ? fn_sketch_quantile(s, q) : -1;
}

typedef struct named_count {
    const char *name;
    json_int_t n;
} named_count_t;

/* Larger counts first, then by name, so the names kept are the same on every read. */
static int by_count(const void *a, const void *b)
{
    const named_count_t *x = a, *y = b;
    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* A breakdown's value by name: a count, credited figures or cost figures. */
typedef struct named {
    const char *name;
    json_t *v;
} named_t;

/* How keep_top orders values (larger first; a tie: by name, so the names kept are the same on
 * every read) and sums those it does not keep. */
typedef struct top_kind {
    int (*cmp)(const json_t *a, const json_t *b); /* < 0: a first */
    json_t *(*zero)(const json_t *like);          /* a new sum of nothing, shaped like like */
    void (*add)(json_t *sum, const json_t *v);
} top_kind_t;

static int by_kind(const void *a, const void *b, void *kind)
{
    const named_t *x = a, *y = b;
    int c = ((const top_kind_t *)kind)->cmp(x->v, y->v);
    return c ? c : strcmp(x->name, y->name);
}

/* Keeps the max first values of *o by name and sums the rest under "(other)" (SPEC §11's
 * max_breakdown): each shard keeps up to max names (analytics.lua), so their union can hold
 * more, and a shard's own "(other)" is summed too. The result is ordered; totals stay. */
static int keep_top(json_t **o, int max, const top_kind_t *kind)
{
    size_t n = json_object_size(*o), at = 0;
    named_t *all = calloc(n ? n : 1, sizeof *all);
    json_t *out = json_object(), *other = kind->zero(json_object_iter_value(json_object_iter(*o)));
    if (!all || !out || !other)
        goto fail;
    const char *name;
    json_t *v;
    bool others = false;
    json_object_foreach (*o, name, v) {
        if (strcmp(name, FN_ANALYTICS_OTHER) == 0) {
            others = true;
            kind->add(other, v);
        } else {
            all[at++] = (named_t){name, v};
        }
    }
    qsort_r(all, at, sizeof *all, by_kind, (void *)kind);
    for (size_t i = 0; i < at; i++) {
        if (i < (size_t)max) {
            if (json_object_set(out, all[i].name, all[i].v))
                goto fail;
            continue;
        }
        others = true;
        kind->add(other, all[i].v);
    }
    if (others && json_object_set(out, FN_ANALYTICS_OTHER, other))
        goto fail;
    json_decref(other);
    free(all);
    json_decref(*o);
    *o = out;
    return FN_OK;
fail:
    free(all);
    json_decref(out);
    json_decref(other);
    return FN_ERR;
}

/* conversions by first touch: counts */
static int count_cmp(const json_t *a, const json_t *b)
{
    json_int_t x = json_integer_value(a), y = json_integer_value(b);
    return x == y ? 0 : x > y ? -1 : 1;
}
static json_t *count_zero(const json_t *like)
{
    (void)like;
    return json_integer(0);
}
static void count_add(json_t *sum, const json_t *v)
{
    json_integer_set(sum, json_integer_value(sum) + json_integer_value(v));
}
static const top_kind_t counts_kind = {count_cmp, count_zero, count_add};

/* credited figures {"conversions", "revenue"}: the most credited conversions first */
static double conversions_of(const json_t *v)
{
    return json_real_value(json_object_get(v, "conversions"));
}
static int credit_cmp(const json_t *a, const json_t *b)
{
    double x = conversions_of(a), y = conversions_of(b);
    return x == y ? 0 : x > y ? -1 : 1;
}
static json_t *credit_zero(const json_t *like)
{
    (void)like;
    return json_pack("{s:f,s:f}", "conversions", 0.0, "revenue", 0.0);
}
static void credit_add(json_t *sum, const json_t *v)
{
    for (const char *k = "conversions"; k; k = *k == 'c' ? "revenue" : NULL) {
        json_t *x = json_object_get(sum, k);
        json_real_set(x, json_real_value(x) + json_real_value(json_object_get(v, k)));
    }
}
static const top_kind_t credit_kind = {credit_cmp, credit_zero, credit_add};

/* cost figures, FN_MARKET_N reals: the most spend over all time first, then new leads */
static double market_at(const json_t *v, int i)
{
    return json_real_value(json_array_get(v, (size_t)i));
}
static int market_cmp(const json_t *a, const json_t *b)
{
    for (int i = FN_MARKET_ALL + FN_MARKET_COST; i <= FN_MARKET_ALL + FN_MARKET_LEADS; i++) {
        double p = market_at(a, i), q = market_at(b, i);
        if (p != q)
            return p > q ? -1 : 1;
    }
    return 0;
}
static json_t *market_zero(const json_t *like)
{
    (void)like;
    return zeros(FN_MARKET_N, true);
}
static void market_add_to(json_t *sum, const json_t *v)
{
    for (int j = 0; j < FN_MARKET_N; j++) {
        json_t *x = json_array_get(sum, (size_t)j);
        json_real_set(x, json_real_value(x) + market_at(v, j));
    }
}
static const top_kind_t market_kind = {market_cmp, market_zero, market_add_to};

/* breakdown values, FN_BD_N integers per stage: the most leads entered first */
static int bd_cmp(const json_t *a, const json_t *b)
{
    json_int_t x = json_integer_value(json_array_get(a, FN_BD_ENTERED_TOTAL)),
               y = json_integer_value(json_array_get(b, FN_BD_ENTERED_TOTAL));
    return x == y ? 0 : x > y ? -1 : 1;
}
static json_t *bd_zero(const json_t *like)
{
    return zeros(json_array_size(like), false);
}
static void bd_add(json_t *sum, const json_t *v)
{
    for (size_t j = 0; j < json_array_size(sum); j++) {
        json_t *x = json_array_get(sum, j);
        json_integer_set(x, json_integer_value(x) + json_integer_value(json_array_get(v, j)));
    }
}
static const top_kind_t bd_kind = {bd_cmp, bd_zero, bd_add};

/* The channel of a Markov counter's name part (the start is ""), as the chain keeps it: by
 * name when one of the kept ones (index in kept), else "(other)" (index n - 1, when used). */
static long markov_index(json_t *kept, const char *name, size_t len, size_t n_other)
{
    char buf[FN_NAME_MAX + 64];
    if (len >= sizeof buf)
        return (long)n_other;
    memcpy(buf, name, len);
    buf[len] = '\0';
    json_t *i = json_object_get(kept, buf);
    return i ? (long)json_integer_value(i) : (long)n_other;
}

/* Traffic of each channel (moves in and out), to keep the busiest by name. */
static void markov_traffic(json_t *traffic, const char *name, size_t len, json_int_t n)
{
    char buf[FN_NAME_MAX + 64];
    if (len == 0 || len >= sizeof buf)
        return;
    memcpy(buf, name, len);
    buf[len] = '\0';
    json_t *cur = json_object_get(traffic, buf);
    json_object_set_new(traffic, buf, json_integer(json_integer_value(cur) + n));
}

/* Solves the funnel's Markov chain (markov.h) from the counters read: each channel's removal
 * effect, and the chain's conversions and revenue shared in proportion to the effects. */
static int markov_finish(fn_funnel_stats_t *st, const fn_funnel_t *f)
{
    int max = f->max_breakdown > 0 ? f->max_breakdown : FN_ANALYTICS_MAX_BREAKDOWN;
    if (max > FN_ANALYTICS_MARKOV_CHANNELS)
        max = FN_ANALYTICS_MARKOV_CHANNELS;
    json_t *traffic = json_object(), *kept = json_object();
    named_count_t *all = NULL;
    int64_t *counts = NULL;
    double *work = NULL, *effect = NULL;
    int rc = FN_ERR;
    if (!traffic || !kept)
        goto out;
    const char *key;
    json_t *v;
    json_object_foreach (st->markov_counts, key, v) {
        const char *name = key + 3, *tab = strchr(name, '\t');
        if (key[1] == 'v' && tab) {
            markov_traffic(traffic, name, (size_t)(tab - name), json_integer_value(v));
            markov_traffic(traffic, tab + 1, strlen(tab + 1), json_integer_value(v));
        } else if (key[1] != 'v') {
            markov_traffic(traffic, name, strlen(name), json_integer_value(v));
        }
    }
    size_t n_names = json_object_size(traffic), at = 0;
    if (!(all = calloc(n_names ? n_names : 1, sizeof *all)))
        goto out;
    json_object_foreach (traffic, key, v)
        if (strcmp(key, FN_ANALYTICS_OTHER) != 0)
            all[at++] = (named_count_t){key, json_integer_value(v)};
    qsort(all, at, sizeof *all, by_count);
    size_t n = at < (size_t)max ? at : (size_t)max;
    for (size_t i = 0; i < n; i++)
        json_object_set_new(kept, all[i].name, json_integer((json_int_t)i));
    /* the rest, and the shards' own "(other)", as one state */
    bool other = at > n || json_object_get(traffic, FN_ANALYTICS_OTHER);
    size_t states = n + (other ? 1 : 0);
    counts = calloc((states + 3) * (states ? states : 1), sizeof *counts);
    work = malloc(sizeof *work * (states ? states : 1) * (states + 1));
    effect = malloc(sizeof *effect * (states ? states : 1));
    if (!counts || !work || !effect)
        goto out;
    int64_t *move = counts, *start = move + states * states, *conv = start + states,
            *null = conv + states;
    int64_t conversions = 0;
    json_object_foreach (st->markov_counts, key, v) {
        const char *name = key + 3, *tab = strchr(name, '\t');
        json_int_t c = json_integer_value(v);
        if (key[1] == 'v' && tab) {
            long to = markov_index(kept, tab + 1, strlen(tab + 1), n);
            if (tab == name)
                start[to] += c;
            else
                move[markov_index(kept, name, (size_t)(tab - name), n) * (long)states + to] += c;
        } else if (key[1] == 'c') {
            conv[markov_index(kept, name, strlen(name), n)] += c;
            conversions += c;
        } else if (key[1] == 'n') {
            null[markov_index(kept, name, strlen(name), n)] += c;
        }
    }
    fn_markov_t m = {states, start, move, conv, null};
    double p = fn_markov_removal_effects(&m, effect, work), sum = 0;
    for (size_t i = 0; i < states; i++)
        sum += effect[i];
    json_t *by = json_object();
    st->markov = json_pack("{s:f,s:I,s:o}", "conversion_probability", p, "conversions",
                           (json_int_t)conversions, "by_channel", by);
    if (!st->markov)
        goto out;
    for (size_t i = 0; i < states; i++) {
        double share = sum > 0 ? effect[i] / sum : 0;
        json_object_set_new(by, i < n ? all[i].name : FN_ANALYTICS_OTHER,
                            json_pack("{s:f,s:f,s:f}", "removal_effect", effect[i], "conversions",
                                      share * (double)conversions, "revenue",
                                      share * st->markov_revenue / FN_STEP_CREDIT_MONEY_UNITS));
    }
    rc = FN_OK;
out:
    json_decref(traffic);
    json_decref(kept);
    free(all);
    free(counts);
    free(work);
    free(effect);
    return rc;
}

void fn_analytics_breakdown_stage(const json_t *a, size_t k, fn_stage_stats_t *s)
{
    memset(s, 0, sizeof *s);
    int64_t x[FN_BD_N];
    for (int i = 0; i < FN_BD_N; i++)
        x[i] = json_integer_value(json_array_get(a, k * FN_BD_N + (size_t)i));
    s->population = x[FN_BD_POPULATION];
    s->entered = x[FN_BD_ENTERED_TOTAL];
    s->win_entered = x[FN_BD_WIN_ENTERED];
    s->win_advanced = x[FN_BD_WIN_ADVANCED];
    s->base_entered = x[FN_BD_BASE_ENTERED];
    s->base_advanced = x[FN_BD_BASE_ADVANCED];
    s->rate = s->win_entered ? (double)s->win_advanced / (double)s->win_entered : 0;
    s->baseline_rate = s->base_entered ? (double)s->base_advanced / (double)s->base_entered : 0;
}

void fn_analytics_finish(fn_funnel_stats_t *st, const fn_funnel_t *f)
{
    if (fn_attr_has_markov(&f->attribution) && !st->no_sketches)
        (void)markov_finish(st, f); /* out of memory: no markov figures */
    int max = f->max_breakdown > 0 ? f->max_breakdown : FN_ANALYTICS_MAX_BREAKDOWN;
    /* out of memory: the figures stay as read, unbounded but correct */
    (void)keep_top(&st->conv_by_channel, max, &counts_kind);
    (void)keep_top(&st->conv_by_campaign, max, &counts_kind);
    for (int m = 0; m < FN_ATTR_N_MODELS; m++)
        for (int d = 0; d < 2; d++)
            (void)keep_top(&st->credited[m][d], max, &credit_kind);
    for (int d = 0; d < 2; d++)
        (void)keep_top(&st->market[d], max, &market_kind);
    const char *dim;
    json_t *values;
    json_object_foreach (st->bd, dim, values) {
        json_t *kept = json_incref(values);
        if (keep_top(&kept, max, &bd_kind) == FN_OK)
            json_object_set(st->bd, dim, kept);
        json_decref(kept);
    }
    for (size_t k = 0; k < st->n_stages; k++) {
        fn_stage_stats_t *s = &st->stage[k];
        s->rate = s->win_entered ? (double)s->win_advanced / (double)s->win_entered : 0;
        s->baseline_rate = s->base_entered ? (double)s->base_advanced / (double)s->base_entered : 0;
        s->flow_per_hour = (double)s->win_entered * 3600000.0 / (double)st->window_ms;
        s->median_ms = quantile(&s->time_in_stage, 0.5);
        s->p90_ms = quantile(&s->time_in_stage, 0.9);
        st->weighted_pipeline += s->pipeline * f->stages[k].probability;
    }
    st->conversion_rate = st->leads ? (double)st->converted / (double)st->leads : 0;
    st->avg_cycle_ms = st->converted ? (double)st->cycle_sum_ms / (double)st->converted : -1;
    st->avg_sale = st->value_n ? st->value_sum / (double)st->value_n : 0;
    st->median_convert_ms = quantile(&st->to_convert, 0.5);
    st->p90_convert_ms = quantile(&st->to_convert, 0.9);
}

static json_t *ms_or_null(double ms)
{
    return ms < 0 ? json_null() : json_integer((json_int_t)llround(ms));
}

/* Money sums are kept with HINCRBYFLOAT; show them to the cent. */
static json_t *money(double v)
{
    return json_real(round(v * 100) / 100);
}

/* Credited conversions are sums of weights: shown to a millionth, which hides the float
 * noise of the sums (0.30000000000000004) and no real share. */
static json_t *share(double v)
{
    return json_real(round(v * 1e6) / 1e6);
}

static json_t *credited_side(const json_t *o)
{
    json_t *out = json_object();
    const char *name;
    json_t *v;
    json_object_foreach ((json_t *)o, name, v)
        json_object_set_new(out, name,
                            json_pack("{s:o,s:o}", "conversions", share(conversions_of(v)),
                                      "revenue",
                                      money(json_real_value(json_object_get(v, "revenue")))));
    return out;
}

/* a / b, or null when b is 0 (no leads: no cost per lead) */
static json_t *ratio(double a, double b, bool money_)
{
    if (b == 0)
        return json_null();
    return money_ ? money(a / b) : share(a / b);
}

/* One span (FN_MARKET_ALL: all time, 0: the window) of a cost figure, in money and
 * conversions: {cost, leads, conversions, revenue, cpl, cpa, roas}. */
static json_t *market_span(const json_t *v, int span)
{
    double cost = market_at(v, span + FN_MARKET_COST) / FN_STEP_CREDIT_MONEY_UNITS,
           leads = market_at(v, span + FN_MARKET_LEADS),
           conv = market_at(v, span + FN_MARKET_CONV) / FN_STEP_CREDIT_CONV_UNITS,
           revenue = market_at(v, span + FN_MARKET_REVENUE) / FN_STEP_CREDIT_MONEY_UNITS;
    return json_pack(
        "{s:o,s:I,s:o,s:o,s:o,s:o,s:o}", "cost", money(cost), "leads", (json_int_t)llround(leads),
        "conversions", share(conv), "revenue", money(revenue), "cpl", ratio(cost, leads, true),
        "cpa", ratio(cost, round(conv * 1e6) / 1e6, true), "roas", ratio(revenue, cost, false));
}

/* {dimension: {value: [{"stage", "population", "entered_total", "entered", "advanced",
 * "flow_rate"}, ...]}}: per stage of each value, as the funnel's stages are shown. */
static json_t *breakdowns_json(const fn_funnel_t *f, const fn_funnel_stats_t *st)
{
    json_t *o = json_object();
    const char *dim, *value;
    json_t *values, *a;
    json_object_foreach (st->bd, dim, values) {
        json_t *d = json_object();
        json_object_foreach (values, value, a) {
            json_t *stages = json_array();
            for (size_t k = 0; k < st->n_stages; k++) {
                json_int_t x[FN_BD_N];
                for (int i = 0; i < FN_BD_N; i++)
                    x[i] = json_integer_value(json_array_get(a, k * FN_BD_N + (size_t)i));
                json_array_append_new(
                    stages, json_pack("{s:s,s:I,s:I,s:I,s:I,s:f}", "stage", f->stages[k].name,
                                      "population", x[FN_BD_POPULATION], "entered_total",
                                      x[FN_BD_ENTERED_TOTAL], "entered", x[FN_BD_WIN_ENTERED],
                                      "advanced", x[FN_BD_WIN_ADVANCED], "flow_rate",
                                      x[FN_BD_WIN_ENTERED] ? (double)x[FN_BD_WIN_ADVANCED] /
                                                                 (double)x[FN_BD_WIN_ENTERED]
                                                           : 0.0));
            }
            json_object_set_new(d, value, stages);
        }
        json_object_set_new(o, dim, d);
    }
    return o;
}

/* {"model", "by_channel": {name: {"window": span, "all_time": span}}, "by_campaign": ...} */
static json_t *market_json(const fn_funnel_stats_t *st)
{
    json_t *o = json_pack("{s:s}", "model", fn_attr_model_name(st->market_model));
    for (int d = 0; d < 2; d++) {
        json_t *side = json_object();
        const char *name;
        json_t *v;
        json_object_foreach (st->market[d], name, v)
            json_object_set_new(side, name,
                                json_pack("{s:o,s:o}", "window", market_span(v, 0), "all_time",
                                          market_span(v, FN_MARKET_ALL)));
        json_object_set_new(o, d ? "by_campaign" : "by_channel", side);
    }
    return o;
}

/* [{"week", "entered", "reached": [...], "converted"}, ...], the oldest week first. */
static json_t *cohorts_json(const fn_funnel_t *f, const fn_funnel_stats_t *st)
{
    json_t *a = json_array();
    for (int back = st->n_cohorts - 1; back >= 0; back--) {
        char day[40];
        fn_time_format((st->week - back) * FN_STEP_WEEK_MS + FN_STEP_WEEK_OFFSET_MS, day,
                       sizeof day);
        day[10] = '\0'; /* the Monday, YYYY-MM-DD */
        const int64_t *r = st->cohort[back].reached;
        json_t *reached = json_array();
        for (size_t k = 0; k < st->n_stages; k++)
            json_array_append_new(reached, json_integer(r[k]));
        json_t *conv =
            f->conversion_index >= 0 ? json_integer(r[f->conversion_index]) : json_null();
        json_array_append_new(a,
                              json_pack("{s:s,s:I,s:o,s:o}", "week", day, "entered",
                                        (json_int_t)r[0], "reached", reached, "converted", conv));
    }
    return a;
}

/* {"<model>": {"by_channel": {...}, "by_campaign": {...}}, ...} in the funnel's model order. */
static json_t *credited_json(const fn_funnel_t *f, const fn_funnel_stats_t *st)
{
    json_t *o = json_object();
    for (int i = 0; i < f->attribution.n_models; i++) {
        int m = f->attribution.models[i];
        if (m == FN_ATTR_MARKOV) {
            json_object_set_new(o, fn_attr_model_name(m),
                                st->markov ? json_incref(st->markov)
                                           : json_pack("{s:f,s:i,s:{}}", "conversion_probability",
                                                       0.0, "conversions", 0, "by_channel"));
            continue;
        }
        json_object_set_new(o, fn_attr_model_name(m),
                            json_pack("{s:o,s:o}", "by_channel", credited_side(st->credited[m][0]),
                                      "by_campaign", credited_side(st->credited[m][1])));
    }
    return o;
}

json_t *fn_analytics_json(const fn_funnel_t *f, const fn_funnel_stats_t *st)
{
    json_t *o = json_object(), *stages = json_array();
    json_object_set_new(o, "window_ms", json_integer(st->window_ms));
    for (size_t k = 0; k < st->n_stages; k++) {
        const fn_stage_stats_t *s = &st->stage[k];
        json_t *j = json_object();
        json_object_set_new(j, "stage", json_string(f->stages[k].name));
        json_object_set_new(j, "population", json_integer(s->population));
        json_object_set_new(j, "entered_total", json_integer(s->entered));
        json_object_set_new(j, "entered", json_integer(s->win_entered));
        json_object_set_new(j, "advanced", json_integer(s->win_advanced));
        json_object_set_new(j, "flow_rate", json_real(s->rate));
        json_object_set_new(j, "flow_per_hour", json_real(s->flow_per_hour));
        json_object_set_new(j, "median_time_in_stage_ms", ms_or_null(s->median_ms));
        json_object_set_new(j, "p90_time_in_stage_ms", ms_or_null(s->p90_ms));
        json_object_set_new(j, "stalled", json_integer(s->stalled));
        json_object_set_new(j, "pipeline_value", money(s->pipeline));
        json_object_set_new(j, "bottleneck", json_boolean(s->bottleneck));
        json_array_append_new(stages, j);
    }
    json_object_set_new(o, "stages", stages);
    json_object_set_new(o, "leads", json_integer(st->leads));
    json_object_set_new(o, "converted", json_integer(st->converted));
    json_object_set_new(o, "lost", json_integer(st->lost));
    json_object_set_new(o, "conversion_rate", json_real(st->conversion_rate));
    json_object_set_new(o, "avg_cycle_ms", ms_or_null(st->avg_cycle_ms));
    json_object_set_new(o, "median_time_to_convert_ms", ms_or_null(st->median_convert_ms));
    json_object_set_new(o, "p90_time_to_convert_ms", ms_or_null(st->p90_convert_ms));
    json_object_set_new(o, "avg_sale_value", money(st->avg_sale));
    json_object_set_new(o, "weighted_pipeline", money(st->weighted_pipeline));
    json_object_set(o, "conversions_by_channel", st->conv_by_channel);
    json_object_set(o, "conversions_by_campaign", st->conv_by_campaign);
    if (f->attribution.enabled)
        json_object_set_new(o, "attribution", credited_json(f, st));
    if (st->n_cohorts > 0)
        json_object_set_new(o, "cohorts", cohorts_json(f, st));
    if (st->market_model >= 0)
        json_object_set_new(o, "marketing", market_json(st));
    if (f->n_breakdowns > 0)
        json_object_set_new(o, "breakdowns", breakdowns_json(f, st));
    return o;
}

/* Loads read.lua on rc unless it is one of the n in loaded (then added); sha gets its digest. */
static int load_read(redisContext *rc, redisContext **loaded, size_t *n, char sha[41], char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < *n; i++)
        if (loaded[i] == rc)
            return FN_OK;
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", fn_lua_read_src);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        snprintf(err, errlen, "SCRIPT LOAD: %s", r ? r->str : rc->errstr);
        freeReplyObject(r);
        return FN_ERR;
    }
    snprintf(sha, 41, "%s", r->str);
    freeReplyObject(r);
    loaded[(*n)++] = rc;
    return FN_OK;
}

int fn_analytics_read(fn_redis_route_fn route, void *priv, const fn_config_t *cfg,
                      const fn_funnel_t *f, int64_t now_ms, fn_funnel_stats_t *st, char *err,
                      size_t errlen)
{
    /* every shard's node, and the nodes read.lua was loaded on (at most one per shard) */
    size_t shards = (size_t)cfg->redis_shards, n_loaded = 0;
    redisContext **of = calloc(shards, sizeof *of), **loaded = calloc(shards, sizeof *loaded);
    char sha[41] = "";
    int rc_ = FN_OK;
    if (!of || !loaded) {
        snprintf(err, errlen, "out of memory");
        rc_ = FN_ERR;
    }
    for (size_t s = 0; rc_ == FN_OK && s < shards; s++) {
        char key[64];
        fn_key_stats(key, sizeof key, cfg->key_prefix, (unsigned)s);
        if (!(of[s] = route(priv, key))) {
            snprintf(err, errlen, "no Redis node for shard %zu", s);
            rc_ = FN_ERR;
        } else {
            rc_ = load_read(of[s], loaded, &n_loaded, sha, err, errlen);
        }
    }
    free(loaded);
    if (rc_ != FN_OK) {
        free(of);
        return rc_;
    }
    if (fn_analytics_begin(st, f, now_ms)) {
        snprintf(err, errlen, "out of memory");
        free(of);
        return FN_ERR;
    }
    fn_buf_t cmd = {0};
    /* pipelined: all the commands out, then each node's replies in the order it got them */
    for (size_t s = 0; s < shards && rc_ == FN_OK; s++) {
        if (fn_analytics_read_cmd(cfg, f, st, sha, (unsigned)s, &cmd) ||
            redisAppendFormattedCommand(of[s], cmd.data, cmd.len) != REDIS_OK) {
            snprintf(err, errlen, "out of memory");
            rc_ = FN_ERR;
        }
    }
    for (size_t s = 0; s < shards && rc_ == FN_OK; s++) {
        void *rep = NULL;
        if (redisGetReply(of[s], &rep) != REDIS_OK) {
            snprintf(err, errlen, "Redis: %s", of[s]->errstr);
            rc_ = FN_ERR;
        } else if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "read.lua: %s", ((redisReply *)rep)->str);
            rc_ = FN_ERR;
        } else {
            rc_ = fn_analytics_add(st, rep, err, errlen);
        }
        freeReplyObject(rep);
    }
    fn_buf_free(&cmd);
    free(of);
    if (rc_ == FN_OK) {
        fn_analytics_finish(st, f);
        /* the bottleneck marks, as the daemon last recorded them */
        char bn[128];
        fn_key_bn(bn, sizeof bn, cfg->key_prefix, f->name);
        redisContext *rc = route(priv, bn);
        redisReply *r = rc ? redisCommand(rc, "HGETALL %s", bn) : NULL;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
            char *end;
            long k = strtol(r->element[i]->str, &end, 10);
            if (end != r->element[i]->str && *end == '\0' && k >= 0 && (size_t)k < st->n_stages)
                st->stage[k].bottleneck = true;
        }
        freeReplyObject(r);
    } else {
        fn_analytics_free(st);
    }
    return rc_;
}
