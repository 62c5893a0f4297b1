/*
 * status.h — what the operations endpoint shows (http/http.c, http/metrics.c): a plain view
 * of the daemon's state, filled by the daemon (core/daemon.c) for each request.
 *
 * The endpoint reads this view only, never the daemon or its modules, so it depends on no
 * I/O module: a new gauge is one field here, one line in daemon.c and one in metrics.c.
 */
#ifndef FUNNELD_STATUS_H
#define FUNNELD_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/msg.h"
#include "funneld/stats.h"

/* One Redis node the daemon keeps a connection to (a master on a cluster). */
typedef struct fn_redis_node {
    char addr[280]; /* host:port */
    bool up;        /* connected, scripts loaded */
    uint64_t steps; /* step replies it brought */
    size_t waiting; /* steps bound for it, sent or not yet */
    fn_hist_t rtt;  /* its step round trips */
} fn_redis_node_t;
#define FN_STATUS_MAX_NODES 64

/* Borrowed pointers: valid during the request that asked for the view. */
typedef struct fn_status {
    const fn_config_t *cfg;                /* the running configuration: funnel and topic names */
    const fn_stats_t *stats;               /* the counters */
    const fn_partition_t *partitions;      /* the input's, a list through next: lag, consumed */
    const char *out_topics[FN_OUT_TOPICS]; /* fn_stats_t.produce_failed's topic names */
    /* readiness, part by part */
    bool joined;   /* a first assignment (possibly empty) arrived */
    bool redis_up; /* connected, authenticated, scripts loaded (every master of a cluster) */
    const char *redis_detail; /* why not, for /readyz ("" when up) */
    bool kafka_up;            /* a broker is reachable */
    bool stopping;            /* a graceful stop began */
    /* gauges */
    size_t in_flight;                   /* messages between consume and commit */
    size_t outputs_waiting;             /* outputs of messages waiting for room in the producer */
    size_t triggers_in_flight;          /* triggers produced, not yet acknowledged */
    size_t configs_retired;             /* replaced configurations still held */
    int64_t config_generation;          /* 1 at start, +1 per accepted reload */
    size_t redis_limbo;                 /* steps waiting for a cluster node to go to */
    const fn_redis_node_t *redis_nodes; /* the first FN_STATUS_MAX_NODES of them */
    size_t n_redis_nodes;
    size_t live_streams; /* the live view's open event streams */
} fn_status_t;

/* Fills *out with the daemon's current state (the daemon registers it with the endpoint). */
typedef void fn_status_cb(void *data, fn_status_t *out);

/* True when partitions were assigned (or the group gave us none), Redis and Kafka are up and
 * no stop began: /readyz answers 200. */
bool fn_status_ready(const fn_status_t *s);
/* Appends the Prometheus text of every metric of s to out (http/metrics.c). FN_ERR when out
 * of memory. */
int fn_metrics_render(const fn_status_t *s, fn_buf_t *out);

#endif
