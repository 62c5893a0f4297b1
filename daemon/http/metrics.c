/*
 * metrics.c — the Prometheus text of GET /metrics (names, types and labels as in
 * deploy/prometheus/METRICS.md) and the librdkafka statistics it takes lag and broker state
 * from, all read from the status view (status.h). Label values come from the config or fixed
 * lists, never from input data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/status.h"

static int head(fn_buf_t *b, const char *name, const char *type, const char *help)
{
    return fn_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; label is "" or a label pair such as node="h:p". */
static int hist_series(fn_buf_t *b, const char *name, const char *label, const fn_hist_t *h)
{
    const char *sep = *label ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i < FN_HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        if (fn_buf_appendf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, fn_hist_bound(i),
                           (unsigned long long)cum))
            return FN_ERR;
    }
    const char *o = *label ? "{" : "", *c = *label ? "}" : "";
    return fn_buf_appendf(
        b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n", name, label,
        sep, (unsigned long long)h->count, name, o, label, c, h->sum, name, o, label, c,
        (unsigned long long)h->count);
}

static int hist(fn_buf_t *b, const char *name, const char *help, const fn_hist_t *h)
{
    return head(b, name, "histogram", help) || hist_series(b, name, "", h);
}

bool fn_status_ready(const fn_status_t *s)
{
    return s->joined && s->redis_up && s->kafka_up && !s->stopping;
}

static int per_topic(const fn_status_t *st, fn_buf_t *b)
{
    const fn_config_t *cfg = st->cfg;
    for (size_t i = 0; i < cfg->n_input_topics; i++) {
        uint64_t n = 0;
        for (const fn_partition_t *p = st->partitions; p; p = p->next)
            if (strcmp(p->topic, cfg->input_topics[i]) == 0)
                n += p->consumed;
        if (fn_buf_appendf(b, "funneld_events_consumed_total{topic=\"%s\"} %llu\n",
                           cfg->input_topics[i], (unsigned long long)n))
            return FN_ERR;
    }
    return FN_OK;
}

static int produce_failures(const fn_status_t *st, fn_buf_t *b)
{
    if (head(b, "funneld_produce_failures_total", "counter",
             "Outputs given up: refused by the producer (too large, unknown topic, ...) or "
             "by the broker for good."))
        return FN_ERR;
    for (int i = 0; i < FN_OUT_TOPICS; i++)
        if (fn_buf_appendf(b, "funneld_produce_failures_total{topic=\"%s\"} %llu\n",
                           st->out_topics[i], (unsigned long long)st->stats->produce_failed[i]))
            return FN_ERR;
    return FN_OK;
}

/* Per Redis node, and the Redis Cluster's redirects. */
static int redis_nodes(const fn_status_t *st, fn_buf_t *b)
{
    const fn_stats_t *s = st->stats;
    if (head(b, "funneld_redis_node_up", "gauge",
             "Per Redis node funneld keeps a connection to (each master of a cluster): 1 when "
             "connected and the scripts are loaded."))
        return FN_ERR;
    for (size_t i = 0; i < st->n_redis_nodes; i++)
        if (fn_buf_appendf(b, "funneld_redis_node_up{node=\"%s\"} %d\n", st->redis_nodes[i].addr,
                           st->redis_nodes[i].up))
            return FN_ERR;
    if (head(b, "funneld_redis_node_steps_total", "counter",
             "Per Redis node: step replies it brought (a fast path's read and apply count one "
             "each)."))
        return FN_ERR;
    for (size_t i = 0; i < st->n_redis_nodes; i++)
        if (fn_buf_appendf(b, "funneld_redis_node_steps_total{node=\"%s\"} %llu\n",
                           st->redis_nodes[i].addr, (unsigned long long)st->redis_nodes[i].steps))
            return FN_ERR;
    if (head(b, "funneld_redis_node_waiting", "gauge",
             "Per Redis node: steps bound for it, sent or not yet."))
        return FN_ERR;
    for (size_t i = 0; i < st->n_redis_nodes; i++)
        if (fn_buf_appendf(b, "funneld_redis_node_waiting{node=\"%s\"} %zu\n",
                           st->redis_nodes[i].addr, st->redis_nodes[i].waiting))
            return FN_ERR;
    if (head(b, "funneld_redis_node_roundtrip_seconds", "histogram",
             "Per Redis node: one step call, sent to reply."))
        return FN_ERR;
    for (size_t i = 0; i < st->n_redis_nodes; i++) {
        char label[300];
        snprintf(label, sizeof label, "node=\"%s\"", st->redis_nodes[i].addr);
        if (hist_series(b, "funneld_redis_node_roundtrip_seconds", label, &st->redis_nodes[i].rtt))
            return FN_ERR;
    }
    return head(b, "funneld_redis_redirects_total", "counter",
                "Redis Cluster answers that sent a step or command elsewhere (moved, ask) or "
                "back for later (tryagain, clusterdown).") ||
                   fn_buf_appendf(b,
                                  "funneld_redis_redirects_total{kind=\"moved\"} %llu\n"
                                  "funneld_redis_redirects_total{kind=\"ask\"} %llu\n"
                                  "funneld_redis_redirects_total{kind=\"tryagain\"} %llu\n"
                                  "funneld_redis_redirects_total{kind=\"clusterdown\"} %llu\n",
                                  (unsigned long long)s->redis_moved,
                                  (unsigned long long)s->redis_ask,
                                  (unsigned long long)s->redis_tryagain,
                                  (unsigned long long)s->redis_clusterdown) ||
                   head(b, "funneld_redis_unreplicated_total", "counter",
                        "WAITs after steps on a Redis Cluster master that no replica answered "
                        "in time: those writes were not confirmed on a replica.") ||
                   fn_buf_appendf(b, "funneld_redis_unreplicated_total %llu\n",
                                  (unsigned long long)s->redis_unreplicated) ||
                   head(b, "funneld_redis_fast_path_total", "counter",
                        "Touches whose lead was read for the fast path (redis.fast_path), by "
                        "outcome: applied by it; stale (written since the read: the whole step "
                        "took it); declined (the whole step's to take).") ||
                   fn_buf_appendf(b,
                                  "funneld_redis_fast_path_total{outcome=\"applied\"} %llu\n"
                                  "funneld_redis_fast_path_total{outcome=\"stale\"} %llu\n"
                                  "funneld_redis_fast_path_total{outcome=\"declined\"} %llu\n",
                                  (unsigned long long)s->fast_applied,
                                  (unsigned long long)s->fast_stale,
                                  (unsigned long long)s->fast_declined) ||
                   head(b, "funneld_redis_limbo", "gauge",
                        "Steps waiting for a Redis Cluster node to go to (map unknown, slot "
                        "uncovered, redirect being followed).") ||
                   fn_buf_appendf(b, "funneld_redis_limbo %zu\n", st->redis_limbo)
               ? FN_ERR
               : FN_OK;
}

int fn_metrics_render(const fn_status_t *st, fn_buf_t *b)
{
    const fn_stats_t *s = st->stats;
    const fn_config_t *cfg = st->cfg;
    uint64_t rejected = 0, ignored = 0;
    for (int i = 1; i < FN_REJ_COUNT; i++)
        rejected += s->rejected[i];
    for (int i = 1; i < FN_IGN_COUNT; i++)
        ignored += s->ignored[i];
    static const char *const ttypes[] = {"stage_changed", "converted", "lost", "lead_erased"};

    if (head(b, "funneld_events_consumed_total", "counter",
             "Messages taken from an input topic, valid or not.") ||
        per_topic(st, b) ||
        head(b, "funneld_events_total", "counter", "Finished input messages by outcome.") ||
        fn_buf_appendf(b,
                       "funneld_events_total{outcome=\"transition\"} %llu\n"
                       "funneld_events_total{outcome=\"touch\"} %llu\n"
                       "funneld_events_total{outcome=\"duplicate\"} %llu\n"
                       "funneld_events_total{outcome=\"rejected\"} %llu\n"
                       "funneld_events_total{outcome=\"ignored\"} %llu\n",
                       (unsigned long long)s->msgs_transition,
                       (unsigned long long)(s->touches + s->consents),
                       (unsigned long long)s->duplicates, (unsigned long long)rejected,
                       (unsigned long long)ignored) ||
        head(b, "funneld_rejected_total", "counter", "Dead-lettered messages by error code."))
        return FN_ERR;
    for (int i = 1; i < FN_REJ_COUNT; i++)
        if (fn_buf_appendf(b, "funneld_rejected_total{reason=\"%s\"} %llu\n",
                           fn_reject_code((fn_reject_t)i), (unsigned long long)s->rejected[i]))
            return FN_ERR;
    if (head(b, "funneld_ignored_total", "counter",
             "Valid input that is no touchpoint (Segment group calls, identify calls of one id), "
             "by reason; committed, not dead-lettered."))
        return FN_ERR;
    for (int i = 1; i < FN_IGN_COUNT; i++)
        if (fn_buf_appendf(b, "funneld_ignored_total{reason=\"%s\"} %llu\n",
                           fn_ignore_code((fn_ignore_t)i), (unsigned long long)s->ignored[i]))
            return FN_ERR;
    static const char *const merge_results[FN_MERGE_COUNT] = {"merged", "repeat", "loop"};
    if (head(b, "funneld_merges_total", "counter",
             "Identify events by what they did: merged, repeat (already true), loop (would "
             "make a loop); refused ones are funneld_rejected_total{reason=\"merge_refused\"}."))
        return FN_ERR;
    for (int i = 0; i < FN_MERGE_COUNT; i++)
        if (fn_buf_appendf(b, "funneld_merges_total{result=\"%s\"} %llu\n", merge_results[i],
                           (unsigned long long)s->merges[i]))
            return FN_ERR;
    if (head(b, "funneld_merge_retries_total", "counter",
             "Merge steps past the point where the absorbed id was linked that failed and "
             "were retried (a merge is finished, never dead-lettered, once it began).") ||
        fn_buf_appendf(b, "funneld_merge_retries_total %llu\n",
                       (unsigned long long)s->merge_retries))
        return FN_ERR;
    if (head(b, "funneld_transitions_total", "counter", "Transition events emitted."))
        return FN_ERR;
    for (size_t f = 0; f < cfg->n_funnels && s->trans_by_funnel; f++)
        for (int t = 0; t < 4; t++)
            if (fn_buf_appendf(b, "funneld_transitions_total{funnel=\"%s\",type=\"%s\"} %llu\n",
                               cfg->funnels[f].name, ttypes[t],
                               (unsigned long long)s->trans_by_funnel[f][t]))
                return FN_ERR;
    if (head(b, "funneld_triggers_total", "counter", "Retargeting triggers emitted."))
        return FN_ERR;
    for (size_t f = 0; f < cfg->n_funnels && s->trig_by_funnel; f++)
        for (size_t r = 0; r <= cfg->funnels[f].n_retarget; r++)
            if (fn_buf_appendf(b, "funneld_triggers_total{funnel=\"%s\",reason=\"%s\"} %llu\n",
                               cfg->funnels[f].name,
                               r ? cfg->funnels[f].retarget[r - 1].name : "stalled",
                               (unsigned long long)s->trig_by_funnel[f][r]))
                return FN_ERR;
    if (head(b, "funneld_triggers_suppressed_total", "counter",
             "Due triggers not emitted, as this process saw them fire (cancellations by "
             "opt-out and erasure are counted per funnel in Redis).") ||
        fn_buf_appendf(b,
                       "funneld_triggers_suppressed_total{reason=\"opted_out\"} %llu\n"
                       "funneld_triggers_suppressed_total{reason=\"capped\"} %llu\n",
                       (unsigned long long)s->triggers_opted_out,
                       (unsigned long long)s->triggers_capped) ||
        produce_failures(st, b) ||
        head(b, "funneld_dlq_total", "counter", "Dead letters acknowledged by Kafka.") ||
        fn_buf_appendf(b, "funneld_dlq_total %llu\n", (unsigned long long)s->dlq_delivered) ||
        hist(b, "funneld_redis_roundtrip_seconds",
             "One Redis step call, sent to reply (a fast path's read and apply are one each).",
             &s->redis_rtt) ||
        hist(b, "funneld_end_to_end_seconds",
             "One input message from consumed to done (applied, outputs acknowledged).",
             &s->end_to_end) ||
        head(b, "funneld_in_flight", "gauge", "Messages between consume and commit.") ||
        fn_buf_appendf(b, "funneld_in_flight %zu\n", st->in_flight) ||
        head(b, "funneld_outputs_waiting", "gauge",
             "Outputs of consumed messages waiting for room in the producer's queue.") ||
        fn_buf_appendf(b, "funneld_outputs_waiting %zu\n", st->outputs_waiting) ||
        head(b, "funneld_triggers_in_flight", "gauge",
             "Triggers produced and not yet acknowledged by Kafka.") ||
        fn_buf_appendf(b, "funneld_triggers_in_flight %zu\n", st->triggers_in_flight) ||
        head(b, "funneld_consumer_lag", "gauge",
             "Per assigned input partition: high watermark minus next offset to consume."))
        return FN_ERR;
    for (const fn_partition_t *p = st->partitions; p; p = p->next)
        if (p->assigned && p->lag >= 0 &&
            fn_buf_appendf(b, "funneld_consumer_lag{topic=\"%s\",partition=\"%d\"} %lld\n",
                           p->topic, (int)p->partition, (long long)p->lag))
            return FN_ERR;
    return head(b, "funneld_kafka_up", "gauge", "1 when a broker is reachable.") ||
                   fn_buf_appendf(b, "funneld_kafka_up %d\n", st->kafka_up) ||
                   head(b, "funneld_redis_up", "gauge",
                        "1 when Redis is connected and the scripts are loaded.") ||
                   fn_buf_appendf(b, "funneld_redis_up %d\n", st->redis_up) ||
                   head(b, "funneld_redis_data_lost_total", "counter",
                        "Epoch markers found gone or changed on a reconnect (one per shard on a "
                        "cluster).") ||
                   fn_buf_appendf(b, "funneld_redis_data_lost_total %llu\n",
                                  (unsigned long long)s->redis_data_lost) ||
                   redis_nodes(st, b) ||
                   head(b, "funneld_ready", "gauge", "1 when /readyz answers 200.") ||
                   fn_buf_appendf(b, "funneld_ready %d\n", fn_status_ready(st)) ||
                   head(b, "funneld_config_generation", "gauge",
                        "1 at start, +1 for every configuration accepted on SIGHUP.") ||
                   fn_buf_appendf(b, "funneld_config_generation %lld\n",
                                  (long long)st->config_generation) ||
                   head(b, "funneld_configs_retired", "gauge",
                        "Configurations replaced on SIGHUP and still held by in-flight steps.") ||
                   fn_buf_appendf(b, "funneld_configs_retired %zu\n", st->configs_retired) ||
                   head(b, "funneld_live_streams", "gauge",
                        "The live view's open event streams (GET /api/stream).") ||
                   fn_buf_appendf(b, "funneld_live_streams %zu\n", st->live_streams) ||
                   head(b, "funneld_live_dropped_total", "counter",
                        "Live view event streams cut off because their client read too "
                        "slowly.") ||
                   fn_buf_appendf(b, "funneld_live_dropped_total %llu\n",
                                  (unsigned long long)s->live_dropped) ||
                   head(b, "funneld_live_feed_total", "counter",
                        "The group's outputs the live view's feed read back from Kafka.") ||
                   fn_buf_appendf(b, "funneld_live_feed_total %llu\n",
                                  (unsigned long long)s->live_feed)
               ? FN_ERR
               : FN_OK;
}
