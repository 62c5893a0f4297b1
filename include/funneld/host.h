/*
 * host.h — what the daemon lends a module it creates: the loop, the running configuration,
 * the log and the counters, and the one upward call every module may need, a stop on a
 * fatal error. A module keeps a copy of this instead of including daemon.h, so it never
 * sees the daemon's fields.
 */
#ifndef FUNNELD_HOST_H
#define FUNNELD_HOST_H

#include <uv.h>

#include "funneld/config.h"
#include "funneld/log.h"
#include "funneld/stats.h"

typedef struct fn_host {
    uv_loop_t *loop;
    fn_config_t *const *cfg; /* *cfg is the running config: a reload replaces it */
    fn_log_t *log;
    fn_stats_t *stats;
    /* A fatal error: begins the daemon's graceful stop with exit_code (the highest asked
     * wins). Called as stop(data, exit_code). */
    void (*stop)(void *data, int exit_code);
    void *data;
    /* The running config's generation (1 at start, +1 per applied reload), as
     * config_generation(data): a pointer to a config may be reused after it is freed. */
    int64_t (*config_generation)(void *data);
} fn_host_t;

#endif
