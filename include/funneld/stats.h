/*
 * stats.h — the daemon's counters (fn_stats_t) and latency histograms, for /metrics and the
 * logs. A module that only counts includes this, not daemon.h; the daemon owns the one
 * fn_stats_t and lends it to the modules.
 */
#ifndef FUNNELD_STATS_H
#define FUNNELD_STATS_H

#include <stdint.h>

#include "funneld/common.h"
#include "funneld/event.h"

/* A latency histogram with the buckets of deploy/prometheus/METRICS.md (seconds). */
#define FN_HIST_BUCKETS 14
typedef struct fn_hist {
    uint64_t bucket[FN_HIST_BUCKETS + 1]; /* the last is +Inf */
    double sum;
    uint64_t count;
} fn_hist_t;

/* Counts one observation of `seconds` in h. */
void fn_hist_observe(fn_hist_t *h, double seconds);
/* The upper bound of bucket i (i < FN_HIST_BUCKETS), in seconds. */
double fn_hist_bound(int i);

/* Counters for /metrics and the logs: each is read by metrics.c or a log line. Plain
 * integers: the loop is single-threaded. */
/* What an accepted identify did: funneld_merges_total{result}. */
typedef enum {
    FN_MERGE_DONE = 0, /* "merged" */
    FN_MERGE_REPEAT,   /* "repeat": previous_id was merged into the same lead already */
    FN_MERGE_LOOP,     /* "loop": lead_id was merged into previous_id: nothing to do */
    FN_MERGE_COUNT
} fn_merge_result_t;

typedef struct fn_stats {
    uint64_t consumed, transitions, touches, duplicates, consents;
    uint64_t rejected[FN_REJ_COUNT];
    uint64_t ignored[FN_IGN_COUNT];  /* valid input that is no touchpoint, by reason */
    uint64_t merges[FN_MERGE_COUNT]; /* identify events by what they did (merge refusals are
                                      * rejected[FN_REJ_MERGE_REFUSED]) */
    uint64_t merge_retries;          /* merge steps past DETACH retried after a failure */
    uint64_t delivery_retries;
    uint64_t redis_data_lost; /* epoch markers found gone or changed (one per shard on a cluster) */
    /* Redis Cluster answers that sent a step or command elsewhere or back for later */
    uint64_t redis_moved, redis_ask, redis_tryagain, redis_clusterdown;
    uint64_t redis_unreplicated; /* WAITs no replica answered in time (writes not confirmed) */
    /* touches read for the fast path (fast.h): applied by it; found written since the read
     * (sent as the whole step); declined once read (the whole step's to take) */
    uint64_t fast_applied, fast_stale, fast_declined;
    uint64_t triggers_capped, triggers_opted_out;
    uint64_t triggers_deferred; /* fired, refused by the full producer queue: left in the outbox */
    uint64_t msgs_transition, dlq_delivered;
    /* the live view: event streams cut off because their client read too slowly, and the
     * group's outputs its feed read back */
    uint64_t live_dropped, live_feed;
    uint64_t produce_failed[FN_OUT_TOPICS]; /* outputs given up, per fn_output_topic */
    fn_hist_t redis_rtt, end_to_end;
    /* per funnel (config order): transitions by type (stage_changed, converted, lost,
     * lead_erased) and triggers by reason (0 stalled, 1 + rule index) */
    uint64_t (*trans_by_funnel)[4];
    uint64_t (*trig_by_funnel)[1 + FN_MAX_RULES];
} fn_stats_t;

#endif
