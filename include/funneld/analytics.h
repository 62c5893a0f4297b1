/*
 * analytics.h — a funnel's live figures (SPEC §4 snapshots and bottlenecks, funnelctl stats),
 * summed over every Redis shard from what the Lua step keeps (daemon/analytics/analytics.lua)
 * and read with daemon/analytics/read.lua, one call per shard.
 *
 * The same code serves funnelctl (synchronous hiredis) and the daemon (asynchronous): both
 * build the read command with fn_analytics_read_cmd, feed each shard's reply to
 * fn_analytics_add, then call fn_analytics_finish.
 */
#ifndef FUNNELD_ANALYTICS_H
#define FUNNELD_ANALYTICS_H

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/sketch.h"

/* Where breakdowns sum the values beyond max_breakdown (SPEC §11; analytics.lua writes it). */
#define FN_ANALYTICS_OTHER "(other)"
/* The most channels the Markov chain keeps by name (the busiest; the rest are one state,
 * "(other)"): the solve is cubic in them, and runs on the daemon's loop. */
#define FN_ANALYTICS_MARKOV_CHANNELS 64
/* max_breakdown's default, for a funnel built without the config parser. */
#define FN_ANALYTICS_MAX_BREAKDOWN 100
/* the most weeks of entry cohorts a snapshot shows (funnels[].cohorts) */
#define FN_ANALYTICS_MAX_COHORTS 52

typedef struct fn_stage_stats {
    int64_t population; /* leads in the stage now (converted leads stay in the last) */
    int64_t entered;    /* leads that ever entered it */
    int64_t win_entered, win_advanced;   /* in the window */
    int64_t base_entered, base_advanced; /* in the baseline */
    int64_t stalled;            /* leads whose stall in this stage was detected, not moved since */
    double pipeline;            /* sum of the values of the leads active here */
    double rate, baseline_rate; /* flow to the next stage: entered k+1 / entered k */
    double flow_per_hour;       /* entered in the window, per hour */
    double median_ms, p90_ms;   /* time in stage of the leads that left it; -1: none yet */
    fn_sketch_t time_in_stage;
    bool bottleneck; /* set by the caller from the bottleneck state */
} fn_stage_stats_t;

typedef struct fn_funnel_stats {
    int64_t now_ms, window_ms, baseline_ms;
    int64_t leads, converted, lost;
    int64_t cycle_sum_ms, value_n;
    double value_sum;
    double conversion_rate, avg_cycle_ms, avg_sale, weighted_pipeline;
    double median_convert_ms, p90_convert_ms;
    fn_sketch_t to_convert;
    json_t *conv_by_channel, *conv_by_campaign; /* objects name -> count (owned) */
    /* conversions and revenue credited by each attribution model (fn_attr_model_t), by
     * channel [0] and by campaign [1]: objects name -> {"conversions", "revenue"} (owned) */
    json_t *credited[FN_ATTR_N_MODELS][2];
    /* cost figures (SPEC §11) by channel [0] and by campaign [1]: objects name -> array of
     * FN_MARKET_N reals, FN_MARKET_* over the window then the same + FN_MARKET_ALL over all
     * time, in the integer units analytics.lua counts (owned); market_model is the model
     * whose credit they use (the funnel's first), -1 when the funnel keeps none */
    json_t *market[2];
    int market_model;
    /* the Markov chain's counters summed over the shards (attribution.lua: "mv|<from>\t<to>",
     * "mc|<channel>", "mn|<channel>" -> count) and its converted revenue in cents (owned);
     * markov is what fn_analytics_finish made of them, NULL without markov (owned) */
    json_t *markov_counts, *markov;
    double markov_revenue;
    /* breakdowns (SPEC §11): dimension -> value -> array of FN_BD_N integers per stage
     * (FN_BD_* of stage 0, then stage 1, ...), for the funnel's configured dimensions (owned) */
    json_t *bd;
    /* entry cohorts: [i] is the week i weeks before now's (0: the current week), reached[k]
     * the leads of that week that reached stage k (stage 0: that entered) */
    struct {
        int64_t reached[FN_MAX_STAGES];
    } cohort[FN_ANALYTICS_MAX_COHORTS];
    int n_cohorts;
    int64_t week; /* now's week (step.h, FN_STEP_WEEK_MS) */
    fn_stage_stats_t stage[FN_MAX_STAGES];
    size_t n_stages;
    char window_label[16];
    /* Set by the caller after fn_analytics_begin: the reads skip the time-in-stage sketches
     * (judging a past tick's bottlenecks needs its flows only), which then stay empty. */
    bool no_sketches;
} fn_funnel_stats_t;

/* The measures of a cost figure: spend and revenue in cents, conversions in millionths. */
enum { FN_MARKET_COST, FN_MARKET_LEADS, FN_MARKET_CONV, FN_MARKET_REVENUE, FN_MARKET_ALL };
#define FN_MARKET_N (2 * FN_MARKET_ALL)

/* A breakdown value's figures per stage: people in it now, ever entered, and entered and
 * advanced over the window and over the baseline. */
enum {
    FN_BD_POPULATION,
    FN_BD_ENTERED_TOTAL,
    FN_BD_WIN_ENTERED,
    FN_BD_WIN_ADVANCED,
    FN_BD_BASE_ENTERED,
    FN_BD_BASE_ADVANCED,
    FN_BD_N
};

/* Stage k's figures of breakdown value a (an array of st->bd) as a stage's, for judging its
 * bottleneck: entered and advanced over the window and baseline, and both rates. */
void fn_analytics_breakdown_stage(const json_t *a, size_t k, fn_stage_stats_t *s);

/* The entry-cohort week of an instant (weeks from Monday 00:00 UTC, step.h). */
int64_t fn_analytics_week(int64_t ms);

/* Starts st for funnel f at now_ms: the window and baseline are f's bottleneck settings
 * (defaults when f has none). Returns FN_ERR on out of memory. */
int fn_analytics_begin(fn_funnel_stats_t *st, const fn_funnel_t *f, int64_t now_ms);

/* read.lua's arguments for shard, what follows EVALSHA <digest>: numkeys, the shard's stats
 * key, funnel, stage count, window and baseline plans, sketches flag, cost figures flag,
 * breakdowns flag (their flows over the window and the baseline). argv points into a;
 * fn_analytics_read_args_free frees it (also after a failure). */
#define FN_ANALYTICS_READ_ARGC 9
typedef struct fn_analytics_read_args {
    char key[64], n[8];
    fn_buf_t win, base;
    const char *argv[FN_ANALYTICS_READ_ARGC];
} fn_analytics_read_args_t;
int fn_analytics_read_args(const fn_config_t *cfg, const fn_funnel_t *f,
                           const fn_funnel_stats_t *st, unsigned shard,
                           fn_analytics_read_args_t *a);
void fn_analytics_read_args_free(fn_analytics_read_args_t *a);

/* Writes the RESP EVALSHA of read.lua (digest sha) for shard into out. */
int fn_analytics_read_cmd(const fn_config_t *cfg, const fn_funnel_t *f, const fn_funnel_stats_t *st,
                          const char *sha, unsigned shard, fn_buf_t *out);

/* Adds one shard's read.lua reply. Returns FN_OK, or FN_ERR with the reason in err. */
int fn_analytics_add(fn_funnel_stats_t *st, const redisReply *r, char *err, size_t errlen);

/* Derives rates, averages, quantiles and the weighted pipeline, and keeps f's max_breakdown
 * largest channels and campaigns by name (the rest under FN_ANALYTICS_OTHER). */
void fn_analytics_finish(fn_funnel_stats_t *st, const fn_funnel_t *f);

/* Frees what st owns. */
void fn_analytics_free(fn_funnel_stats_t *st);

/* The blocking connection to the Redis node serving key, or NULL (a Redis Cluster has one
 * per master; one server answers every key). */
typedef redisContext *(*fn_redis_route_fn)(void *priv, const char *key);

/* Reads f's figures over synchronous connections, each shard from the node route gives for
 * it (loads read.lua on each). funnelctl uses it. */
int fn_analytics_read(fn_redis_route_fn route, void *priv, const fn_config_t *cfg,
                      const fn_funnel_t *f, int64_t now_ms, fn_funnel_stats_t *st, char *err,
                      size_t errlen);

/* The per-stage and per-funnel figures as the body of a funnel_snapshot event (new ref). */
json_t *fn_analytics_json(const fn_funnel_t *f, const fn_funnel_stats_t *st);

/* Formats a duration for people ("3.2h", "41m", "9s", "-" when negative). */
void fn_analytics_duration(double ms, char *out, size_t outlen);

/* read.lua's source, embedded at build time. */
extern const char fn_lua_read_src[];

/* announced.lua's source (embedded at build time): marks a bottleneck decision announced only
 * while it is still the stored one (compare-and-set; the script's header has its arguments). */
extern const char fn_lua_announced_src[];

#endif
