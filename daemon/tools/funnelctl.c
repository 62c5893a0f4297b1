/*
 * funnelctl.c — look at funnels and leads straight from Redis (SPEC §7).
 *
 *   funnelctl [-c FILE] [--json] stats FUNNEL [--by DIMENSION]
 *   funnelctl [-c FILE] [--json] lead FUNNEL LEAD_ID
 *   funnelctl [-c FILE] [--json] attribution FUNNEL [--model M]
 *   funnelctl [-c FILE] [--json] cohorts FUNNEL
 *   funnelctl [-c FILE] [--json] roi FUNNEL
 *
 * It reads the same keys the daemon writes (README "Redis layout"), with the daemon's own
 * config for the key prefix, shard count and stage names, and never writes. Aggregates are
 * summed over every shard; a lead is found by its hashed key, exactly as the step finds it.
 *
 * What a lead's hash holds came from events (campaigns, channels, sources, event ids: UTM
 * values and form fields anyone can set), so every text printed from it, and the lead id, is
 * escaped for the terminal first (term.h): a campaign cannot clear the screen, retitle the
 * window or reorder the line around it.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/analytics.h"
#include "funneld/config.h"
#include "funneld/keys.h"
#include "funneld/lead_view.h"
#include "redis_sync.h"
#include "funneld/step.h"
#include "term.h"

typedef struct ctl {
    fn_config_t *cfg;
    fn_redis_sync_t *rs; /* one server or a cluster's masters */
    bool json;
} ctl_t;

static void usage(FILE *out)
{
    fprintf(out, "usage: funnelctl [-c FILE] [--json] stats FUNNEL [--by DIMENSION]\n"
                 "       funnelctl [-c FILE] [--json] lead FUNNEL LEAD_ID\n"
                 "       funnelctl [-c FILE] [--json] attribution FUNNEL [--model M]\n"
                 "       funnelctl [-c FILE] [--json] cohorts FUNNEL\n"
                 "       funnelctl [-c FILE] [--json] roi FUNNEL\n"
                 "\n"
                 "Shows a funnel (a bar per stage: population, entered, conversion from the stage\n"
                 "before, flow over the last window, median and p90 time in stage, bottleneck\n"
                 "marked) or one lead (stage, times, touches, attribution, consent, pending\n"
                 "retargeting triggers, the ids merged into it) straight from Redis. An id\n"
                 "merged into another lead shows the person it is part of. attribution shows\n"
                 "the conversions and revenue each attribution model credited to each channel\n"
                 "and campaign (--model M: that model only); cohorts the weekly entry cohorts\n"
                 "and how far each got; roi the spend, new leads, credited conversions and\n"
                 "revenue, CPL, CPA and ROAS per channel and campaign, over the window and all\n"
                 "time.\n"
                 "\n"
                 "  -c, --config FILE  the daemon's configuration (default $FUNNELD_CONFIG, then\n"
                 "                     /etc/funneld/funneld.json); FUNNELD_REDIS_URL and\n"
                 "                     FUNNELD_REDIS_CLUSTER override redis.url, redis.cluster\n"
                 "      --json         one JSON document on stdout, for scripts\n"
                 "      --model M      attribution: one model (first_touch, linear, ...)\n"
                 "      --by DIMENSION stats: per value of one of the funnel's breakdowns\n"
                 "                     (channel, campaign, source, props.KEY)\n"
                 "\n"
                 "Exit codes: 0 shown, 1 unknown lead or Redis error, 2 usage, config, unknown\n"
                 "funnel, or a funnel without attribution (attribution, roi), that model or\n"
                 "cohorts.\n");
}

/* ---- lead ---- */

/* Replaces every string in o (recursively) by its terminal-safe form (term.h). */
static int escape_strings(json_t *o)
{
    if (json_is_string(o)) {
        fn_buf_t b = {0};
        int rc = fn_term_escape(&b, json_string_value(o), json_string_length(o));
        if (rc == FN_OK && json_string_setn(o, b.data ? b.data : "", b.len))
            rc = FN_ERR;
        fn_buf_free(&b);
        return rc;
    }
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(o))
        json_object_foreach (o, k, v)
            if (escape_strings(v))
                return FN_ERR;
    if (json_is_array(o))
        json_array_foreach (o, i, v)
            if (escape_strings(v))
                return FN_ERR;
    return FN_OK;
}

/* Prints o as JSON whose strings cannot drive the terminal either (term.h). */
static int print_json(json_t *o)
{
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fn_buf_t b = {0};
    int rc = !text || fn_term_escape_json(&b, text, strlen(text)) ? FN_ERR : FN_OK;
    if (rc == FN_OK)
        printf("%s\n", b.data);
    else
        fprintf(stderr, "funnelctl: out of memory\n");
    free(text);
    fn_buf_free(&b);
    return rc;
}

/* --json: prints o, its exit code in *rc. Otherwise makes o's strings safe for the terminal
 * and returns false, for the caller to print it as text (true, *rc 1, when out of memory). */
static bool printed_as_json(const ctl_t *c, json_t *o, int *rc)
{
    *rc = 0;
    if (c->json) {
        *rc = print_json(o) ? 1 : 0;
        return true;
    }
    if (escape_strings(o)) {
        fprintf(stderr, "funnelctl: out of memory\n");
        *rc = 1;
        return true;
    }
    return false;
}

/* The hash of lead id (HGETALL), or NULL after printing why. */
static redisReply *lead_hash(ctl_t *c, const char *id, const char *shown)
{
    fn_lead_keys_t k;
    fn_step_keys(c->cfg, fn_step_lead_hash(id, strlen(id)), &k);
    redisContext *node = fn_redis_sync_route(c->rs, k.lead);
    redisReply *h = node ? redisCommand(node, "HGETALL %s", k.lead) : NULL;
    if (!h || h->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "funnelctl: HGETALL: %s\n",
                h      ? h->str
                : node ? node->errstr
                       : "no Redis node for the lead");
        freeReplyObject(h);
        return NULL;
    }
    const char *stored = fn_lead_view_field(h, FN_F_ID);
    if (stored && strcmp(stored, id) != 0) {
        fprintf(stderr, "funnelctl: the key of lead %s belongs to another lead id\n", shown);
        freeReplyObject(h);
        return NULL;
    }
    return h;
}

static int by_str(const void *a, const void *b)
{
    const redisReply *x = *(redisReply *const *)a, *y = *(redisReply *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The ids merged into lead id (its ids set), sorted, or NULL on a Redis error. */
static json_t *merged_ids(ctl_t *c, const char *id)
{
    fn_lead_keys_t k;
    fn_hash128_t hash = fn_step_lead_hash(id, strlen(id));
    fn_step_keys(c->cfg, hash, &k);
    char hex[33], key[96];
    fn_hash_hex(hash, hex);
    fn_key_ids(key, sizeof key, c->cfg->key_prefix, k.shard, hex);
    redisContext *node = fn_redis_sync_route(c->rs, key);
    redisReply *r = node ? redisCommand(node, "SMEMBERS %s", key) : NULL;
    json_t *ids = r && r->type == REDIS_REPLY_ARRAY ? json_array() : NULL;
    if (ids && r->elements) /* SMEMBERS, not SORT: the daemon's ACL need not grow */
        qsort(r->element, r->elements, sizeof *r->element, by_str);
    for (size_t i = 0; ids && i < r->elements; i++)
        json_array_append_new(ids, json_stringn(r->element[i]->str, r->element[i]->len));
    freeReplyObject(r);
    return ids;
}

static int cmd_lead(ctl_t *c, const fn_funnel_t *f, const char *lead_id)
{
    fn_buf_t shown = {0}; /* lead_id as it may be printed */
    if (fn_term_escape(&shown, lead_id, strlen(lead_id))) {
        fprintf(stderr, "funnelctl: out of memory\n");
        return 1;
    }
    /* An id merged into another lead (identity merges) shows the person it is part of: its
     * link is followed, as the daemon follows it for the id's events. */
    char *id = strdup(lead_id);
    redisReply *h = id ? lead_hash(c, id, shown.data) : NULL;
    for (int64_t hops = 0; h && fn_lead_view_field(h, FN_F_MERGED_INTO); hops++) {
        free(id);
        id = hops < c->cfg->identity_max_ids ? strdup(fn_lead_view_field(h, FN_F_MERGED_INTO))
                                             : NULL;
        freeReplyObject(h);
        h = id ? lead_hash(c, id, shown.data) : NULL;
        if (!id)
            fprintf(stderr, "funnelctl: lead %s: a chain of merged ids too long\n", shown.data);
    }
    json_t *o = h ? fn_lead_view_json(f, id, h) : NULL;
    freeReplyObject(h);
    if (!o) {
        if (h)
            fprintf(stderr, "funnelctl: no state for lead %s (never seen, or erased)\n",
                    shown.data);
        free(id);
        fn_buf_free(&shown);
        return 1;
    }
    json_t *ids = merged_ids(c, id);
    json_object_set_new(o, "merged_from",
                        strcmp(id, lead_id) != 0 ? json_string(lead_id) : json_null());
    json_object_set_new(o, "merged_ids", ids ? ids : json_array());
    free(id);
    int rc;
    if (!printed_as_json(c, o, &rc)) {
        json_t *from = json_object_get(o, "merged_from");
        if (json_is_string(from))
            printf("%s was merged into ", json_string_value(from));
        printf("lead %s in funnel %s: %s", json_string_value(json_object_get(o, "lead_id")),
               f->name, json_string_value(json_object_get(o, "status")));
        if (json_is_string(json_object_get(o, "stage")))
            printf(" at %s since %s", json_string_value(json_object_get(o, "stage")),
                   json_string_value(json_object_get(o, "stage_entered_at")));
        printf("\n  entered the funnel %s, last activity %s, %lld touches\n",
               json_is_string(json_object_get(o, "funnel_entered_at"))
                   ? json_string_value(json_object_get(o, "funnel_entered_at"))
                   : "-",
               json_is_string(json_object_get(o, "last_activity_at"))
                   ? json_string_value(json_object_get(o, "last_activity_at"))
                   : "-",
               (long long)json_integer_value(json_object_get(o, "touches")));
        json_t *v = json_object_get(o, "value"), *cs = json_object_get(o, "marketing_consent");
        printf("  value %s%.2f, marketing consent %s\n", json_is_null(v) ? "(none) " : "",
               json_is_null(v) ? 0.0 : json_real_value(v),
               json_is_null(cs)   ? "not given"
               : json_is_true(cs) ? "yes"
                                  : "no");
        const char *which[] = {"first", "last"};
        for (int i = 0; i < 2; i++) {
            json_t *t = json_object_get(json_object_get(o, "attribution"), which[i]);
            json_t *cp = json_object_get(t, "campaign"), *at = json_object_get(t, "at");
            printf("  %-5s touch %s / %s at %s\n", which[i],
                   json_is_string(json_object_get(t, "channel"))
                       ? json_string_value(json_object_get(t, "channel"))
                       : "-",
                   json_is_string(cp) ? json_string_value(cp) : "-",
                   json_is_string(at) ? json_string_value(at) : "-");
        }
        json_t *mids = json_object_get(o, "merged_ids"), *mid;
        size_t j;
        if (json_array_size(mids))
            printf("  ids merged into it:");
        json_array_foreach (mids, j, mid)
            printf(" %s", json_string_value(mid));
        if (json_array_size(mids))
            printf("\n");
        json_t *tr = json_object_get(o, "triggers");
        if (json_array_size(tr) == 0)
            printf("  no retargeting triggers pending\n");
        size_t i;
        json_t *t;
        json_array_foreach (tr, i, t)
            printf("  trigger %-16s due %s (%s, armed by %s)\n",
                   json_string_value(json_object_get(t, "reason")),
                   json_string_value(json_object_get(t, "due_at")),
                   json_string_value(json_object_get(t, "state")),
                   json_string_value(json_object_get(t, "cause_event_id")));
    }
    json_decref(o);
    fn_buf_free(&shown);
    return rc;
}

/* ---- stats ---- */

static void draw_bar(const char *name, double share, const char *marks)
{
    int width = 40, n = (int)lround(share * width);
    int pad = (width - n) / 2;
    printf("  %-14.14s %*s", name, pad, "");
    for (int i = 0; i < n; i++)
        fputs("█", stdout);
    printf("%*s %s\n", width - n - pad, "", marks);
}

/* Reads f's figures from every shard into st and returns them as a snapshot's body (new
 * ref; the caller frees both), or NULL after saying why on stderr. */
static json_t *read_funnel(ctl_t *c, const fn_funnel_t *f, int64_t now_ms, fn_funnel_stats_t *st)
{
    char err[256];
    if (fn_analytics_read(fn_redis_sync_route, c->rs, c->cfg, f, now_ms, st, err, sizeof err)) {
        fprintf(stderr, "funnelctl: %s\n", err);
        return NULL;
    }
    json_t *o = fn_analytics_json(f, st);
    if (!o) {
        fprintf(stderr, "funnelctl: out of memory\n");
        fn_analytics_free(st);
    }
    return o;
}

/* stats --by DIM: per value of the breakdown, a row per stage (the snapshot's breakdowns). */
static int cmd_stats_by(ctl_t *c, const fn_funnel_t *f, const char *dim, fn_funnel_stats_t *st,
                        json_t *o)
{
    json_t *values = json_object_get(json_object_get(o, "breakdowns"), dim);
    json_t *out = json_pack("{s:s,s:s,s:I,s:O}", "funnel", f->name, "by", dim, "window_ms",
                            (json_int_t)st->window_ms, "values", values);
    int rc;
    if (!printed_as_json(c, out, &rc)) {
        printf("funnel %s by %s (each lead by its value when it entered); window %s\n", f->name,
               dim, st->window_label);
        printf("  %-24s %-14s %10s %9s %9s %9s %9s\n", dim, "stage", "population", "entered",
               "in window", "advanced", "flow");
        const char *value;
        json_t *stages;
        json_object_foreach (json_object_get(out, "values"), value, stages) {
            size_t k;
            json_t *s;
            json_array_foreach (stages, k, s) {
                printf("  %-24.24s %-14.14s %10lld %9lld %9lld %9lld %8.1f%%\n", k ? "" : value,
                       json_string_value(json_object_get(s, "stage")),
                       (long long)json_integer_value(json_object_get(s, "population")),
                       (long long)json_integer_value(json_object_get(s, "entered_total")),
                       (long long)json_integer_value(json_object_get(s, "entered")),
                       (long long)json_integer_value(json_object_get(s, "advanced")),
                       100 * json_number_value(json_object_get(s, "flow_rate")));
            }
        }
    }
    json_decref(out);
    return rc;
}

static int cmd_stats(ctl_t *c, const fn_funnel_t *f, const char *by, int64_t now_ms)
{
    fn_funnel_stats_t st;
    json_t *o = read_funnel(c, f, now_ms, &st);
    if (!o)
        return 1;
    if (by) {
        int rc = cmd_stats_by(c, f, by, &st, o);
        json_decref(o);
        fn_analytics_free(&st);
        return rc;
    }
    if (c->json) {
        int rc = print_json(o) ? 1 : 0;
        json_decref(o);
        fn_analytics_free(&st);
        return rc;
    }
    double top = 1;
    for (size_t k = 0; k < f->n_stages; k++)
        if (st.stage[k].entered > top)
            top = (double)st.stage[k].entered;
    printf("funnel %s: %lld leads, %lld converted (%.1f %%), %lld lost; window %s\n", f->name,
           (long long)st.leads, (long long)st.converted,
           st.leads ? 100.0 * (double)st.converted / (double)st.leads : 0.0, (long long)st.lost,
           st.window_label);
    printf("  %-14s %40s   population  entered   from prev   flow/h  median   p90\n", "stage", "");
    for (size_t k = 0; k < f->n_stages; k++) {
        const fn_stage_stats_t *s = &st.stage[k];
        char marks[256], med[16], p90[16];
        fn_analytics_duration(s->median_ms, med, sizeof med);
        fn_analytics_duration(s->p90_ms, p90, sizeof p90);
        double prev = k ? (double)st.stage[k - 1].entered : 0;
        char conv[16] = "";
        if (k && prev > 0)
            snprintf(conv, sizeof conv, "%.1f %%", 100.0 * (double)s->entered / prev);
        snprintf(marks, sizeof marks, "%10lld %9lld %10s %8.1f %7s %5s%s", (long long)s->population,
                 (long long)s->entered, conv, s->flow_per_hour, med, p90,
                 s->bottleneck ? "  ◀ BOTTLENECK" : "");
        draw_bar(f->stages[k].name, (double)s->entered / top, marks);
    }
    char cyc[16], med[16], p90[16];
    fn_analytics_duration(st.avg_cycle_ms, cyc, sizeof cyc);
    fn_analytics_duration(st.median_convert_ms, med, sizeof med);
    fn_analytics_duration(st.p90_convert_ms, p90, sizeof p90);
    printf("  avg cycle %s, median to convert %s (p90 %s), avg sale %.2f, weighted pipeline %.2f\n",
           cyc, med, p90, st.avg_sale, st.weighted_pipeline);
    json_decref(o);
    fn_analytics_free(&st);
    return 0;
}

/* ---- attribution ---- */

/* One side (by_channel or by_campaign) of a model's credited figures, largest first as the
 * snapshot orders them. */
static void print_credited(const char *title, json_t *side, double conversions)
{
    printf("    %-24s %12s %8s %12s\n", title, "conversions", "share", "revenue");
    const char *name;
    json_t *v;
    json_object_foreach (side, name, v) {
        double cv = json_number_value(json_object_get(v, "conversions"));
        printf("    %-24.24s %12.2f %7.1f%% %12.2f\n", name, cv,
               conversions > 0 ? 100.0 * cv / conversions : 0.0,
               json_number_value(json_object_get(v, "revenue")));
    }
}

/* markov's figures: the chain's conversion probability, then per channel its removal effect
 * and the conversions and revenue shared by it. */
static void print_markov(json_t *v)
{
    printf("    %lld conversions in the chain, conversion probability %.4f\n",
           (long long)json_integer_value(json_object_get(v, "conversions")),
           json_number_value(json_object_get(v, "conversion_probability")));
    printf("    %-24s %14s %12s %12s\n", "channel", "removal effect", "conversions", "revenue");
    const char *name;
    json_t *c;
    json_object_foreach (json_object_get(v, "by_channel"), name, c)
        printf("    %-24.24s %13.1f%% %12.2f %12.2f\n", name,
               100 * json_number_value(json_object_get(c, "removal_effect")),
               json_number_value(json_object_get(c, "conversions")),
               json_number_value(json_object_get(c, "revenue")));
}

static int cmd_attribution(ctl_t *c, const fn_funnel_t *f, const char *model, int64_t now_ms)
{
    fn_funnel_stats_t st;
    json_t *o = read_funnel(c, f, now_ms, &st);
    if (!o)
        return 1;
    json_t *all = json_object_get(o, "attribution");
    json_t *out = json_pack("{s:s,s:I,s:o}", "funnel", f->name, "converted",
                            (json_int_t)st.converted, "attribution", json_object());
    json_t *pick = json_object_get(out, "attribution");
    const char *name;
    json_t *v;
    json_object_foreach (all, name, v)
        if (!model || strcmp(model, name) == 0)
            json_object_set(pick, name, v);
    int rc;
    if (!printed_as_json(c, out, &rc)) {
        printf("funnel %s: %lld conversions, credited by model\n", f->name,
               (long long)st.converted);
        json_object_foreach (pick, name, v) {
            printf("  %s\n", name);
            if (strcmp(name, "markov") == 0) {
                print_markov(v);
                continue;
            }
            print_credited("channel", json_object_get(v, "by_channel"), (double)st.converted);
            print_credited("campaign", json_object_get(v, "by_campaign"), (double)st.converted);
        }
    }
    json_decref(out);
    json_decref(o);
    fn_analytics_free(&st);
    return rc;
}

/* ---- roi ---- */

/* A ratio of a cost figure, or "-" for null (a ratio of nothing). */
static void print_ratio(json_t *v)
{
    if (json_is_number(v))
        printf(" %9.2f", json_number_value(v));
    else
        printf(" %9s", "-");
}

/* One side (by_channel or by_campaign) of the cost figures over span. */
static void print_market(const char *title, json_t *side, const char *span)
{
    printf("    %-20s %11s %6s %9s %11s %9s %9s %9s\n", title, "cost", "leads", "conv", "revenue",
           "CPL", "CPA", "ROAS");
    const char *name;
    json_t *v;
    json_object_foreach (side, name, v) {
        json_t *x = json_object_get(v, span);
        printf("    %-20.20s %11.2f %6lld %9.2f %11.2f", name,
               json_number_value(json_object_get(x, "cost")),
               (long long)json_integer_value(json_object_get(x, "leads")),
               json_number_value(json_object_get(x, "conversions")),
               json_number_value(json_object_get(x, "revenue")));
        print_ratio(json_object_get(x, "cpl"));
        print_ratio(json_object_get(x, "cpa"));
        print_ratio(json_object_get(x, "roas"));
        putchar('\n');
    }
}

static int cmd_roi(ctl_t *c, const fn_funnel_t *f, int64_t now_ms)
{
    fn_funnel_stats_t st;
    json_t *o = read_funnel(c, f, now_ms, &st);
    if (!o)
        return 1;
    json_t *out = json_pack("{s:s,s:I,s:O}", "funnel", f->name, "window_ms",
                            (json_int_t)st.window_ms, "marketing", json_object_get(o, "marketing"));
    int rc;
    if (!printed_as_json(c, out, &rc)) {
        json_t *mk = json_object_get(out, "marketing");
        printf("funnel %s: spend, new leads (first touch), conversions and revenue credited by "
               "%s\n",
               f->name, json_string_value(json_object_get(mk, "model")));
        static const char *const spans[][2] = {{"window", "over the window"},
                                               {"all_time", "over all time"}};
        for (int i = 0; i < 2; i++) {
            printf("  %s%s%s\n", spans[i][1], i ? "" : " of ", i ? "" : st.window_label);
            print_market("channel", json_object_get(mk, "by_channel"), spans[i][0]);
            print_market("campaign", json_object_get(mk, "by_campaign"), spans[i][0]);
        }
    }
    json_decref(out);
    json_decref(o);
    fn_analytics_free(&st);
    return rc;
}

/* ---- cohorts ---- */

static int cmd_cohorts(ctl_t *c, const fn_funnel_t *f, int64_t now_ms)
{
    fn_funnel_stats_t st;
    json_t *o = read_funnel(c, f, now_ms, &st);
    if (!o)
        return 1;
    json_t *weeks = json_object_get(o, "cohorts");
    json_t *out = json_pack("{s:s,s:O}", "funnel", f->name, "cohorts", weeks);
    int rc;
    if (!printed_as_json(c, out, &rc)) {
        printf("funnel %s: entry cohorts, the last %d weeks (leads that entered, then how many "
               "reached each stage so far)\n  %-10s",
               f->name, f->cohorts, "week of");
        for (size_t k = 0; k < f->n_stages; k++)
            printf(" %10.10s", f->stages[k].name);
        printf(" %10s\n", "converted");
        size_t i;
        json_t *w;
        json_array_foreach (weeks, i, w) {
            json_t *reached = json_object_get(w, "reached");
            printf("  %-10s", json_string_value(json_object_get(w, "week")));
            for (size_t k = 0; k < f->n_stages; k++)
                printf(" %10lld", (long long)json_integer_value(json_array_get(reached, k)));
            json_int_t in = json_integer_value(json_object_get(w, "entered"));
            json_t *conv = json_object_get(w, "converted");
            if (json_is_integer(conv) && in > 0)
                printf(" %9.1f%%\n", 100.0 * (double)json_integer_value(conv) / (double)in);
            else
                printf(" %10s\n", "-");
        }
    }
    json_decref(out);
    json_decref(o);
    fn_analytics_free(&st);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"model", required_argument, NULL, 'm'},  {"by", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *path = getenv("FUNNELD_CONFIG"), *model = NULL, *by = NULL;
    ctl_t c = {0};
    int opt, rc = 2;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'j':
            c.json = true;
            break;
        case 'm':
            model = optarg;
            break;
        case 'b':
            by = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int nargs = argc - optind;
    const char *cmd = nargs > 0 ? argv[optind] : "";
    if (!((strcmp(cmd, "stats") == 0 && nargs == 2) || (strcmp(cmd, "lead") == 0 && nargs == 3) ||
          (strcmp(cmd, "attribution") == 0 && nargs == 2) ||
          (strcmp(cmd, "cohorts") == 0 && nargs == 2) || (strcmp(cmd, "roi") == 0 && nargs == 2)) ||
        (model && strcmp(cmd, "attribution") != 0) || (by && strcmp(cmd, "stats") != 0)) {
        usage(stderr);
        return 2;
    }
    if (!path)
        path = "/etc/funneld/funneld.json";
    char err[512];
    c.cfg = fn_config_load(path, err, sizeof err);
    if (!c.cfg) {
        fprintf(stderr, "funnelctl: %s: %s\n", path, err);
        return 2;
    }
    const char *name = argv[optind + 1];
    const fn_funnel_t *f = fn_config_funnel(c.cfg, name, strlen(name));
    if (!f) {
        fprintf(stderr, "funnelctl: unknown funnel \"%s\"; configured:", name);
        for (size_t i = 0; i < c.cfg->n_funnels; i++)
            fprintf(stderr, " %s", c.cfg->funnels[i].name);
        fputc('\n', stderr);
        goto out;
    }
    if (strcmp(cmd, "cohorts") == 0 && f->cohorts == 0) {
        fprintf(stderr, "funnelctl: funnel \"%s\" counts no cohorts (cohorts: 0)\n", name);
        goto out;
    }
    bool known_by = !by;
    for (int i = 0; by && i < f->n_breakdowns; i++)
        known_by = known_by || strcmp(by, f->breakdowns[i].dim) == 0;
    if (!known_by) {
        fprintf(stderr, "funnelctl: funnel \"%s\" has no breakdown \"%s\";", name, by);
        for (int i = 0; i < f->n_breakdowns; i++)
            fprintf(stderr, " %s", f->breakdowns[i].dim);
        fprintf(stderr, "%s\n", f->n_breakdowns ? "" : " none configured (breakdowns)");
        goto out;
    }
    if (strcmp(cmd, "attribution") == 0 || strcmp(cmd, "roi") == 0) {
        const fn_attribution_cfg_t *a = &f->attribution;
        bool known = !model;
        for (int i = 0; a->enabled && i < a->n_models && !known; i++)
            known = strcmp(model, fn_attr_model_name(a->models[i])) == 0;
        if (!a->enabled || !known) {
            fprintf(stderr, "funnelctl: funnel \"%s\" has %s\n", name,
                    !a->enabled ? "no attribution configured" : "no such attribution model");
            goto out;
        }
    }
    rc = 1;
    if (!(c.rs = fn_redis_sync_open(c.cfg, "funnelctl")))
        goto out;
    rc = strcmp(cmd, "lead") == 0          ? cmd_lead(&c, f, argv[optind + 2])
         : strcmp(cmd, "attribution") == 0 ? cmd_attribution(&c, f, model, fn_now_ms())
         : strcmp(cmd, "cohorts") == 0     ? cmd_cohorts(&c, f, fn_now_ms())
         : strcmp(cmd, "roi") == 0         ? cmd_roi(&c, f, fn_now_ms())
                                           : cmd_stats(&c, f, by, fn_now_ms());
out:
    fn_redis_sync_close(c.rs);
    fn_config_free(c.cfg);
    return rc;
}
