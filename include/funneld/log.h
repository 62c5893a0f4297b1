/*
 * log.h — structured logs: one JSON object per line on stderr with time, level, component
 * and message. The logger is a value the daemon context owns; there is no global logger.
 */
#ifndef FUNNELD_LOG_H
#define FUNNELD_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { FN_LOG_DEBUG = 0, FN_LOG_INFO, FN_LOG_WARN, FN_LOG_ERROR } fn_log_level_t;

typedef struct fn_log {
    fn_log_level_t level;
    FILE *out; /* stderr unless a test redirects it */
} fn_log_t;

/* Parses "debug", "info", "warn", "error". Returns 0 on success, -1 otherwise. */
int fn_log_level_parse(const char *s, fn_log_level_t *out);

/* Writes one line {"ts":…,"level":…,"component":…,"msg":…} when level is enabled. */
void fn_log(const fn_log_t *lg, fn_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Where a message was consumed, and whose lead it was (its key hash, never the id): logged
 * as fields "topic", "partition", "offset" and "lead" after "msg". NULL/negative: omitted. */
typedef struct fn_log_ctx {
    const char *topic;
    int partition;
    long long offset;
    const char *lead_hash; /* 32 hex characters, or NULL */
} fn_log_ctx_t;

/* fn_log with context fields. */
void fn_log_ctx(const fn_log_t *lg, fn_log_level_t level, const char *component,
                const fn_log_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* One line per cause per interval: a limiter the owner of a repeated log line keeps. */
typedef struct fn_log_limit {
    int64_t next_ms;  /* when the next line may be written */
    uint64_t skipped; /* lines held back since the last one written */
} fn_log_limit_t;

/* True when a line may be written at now_ms (then *skipped gets how many were held back
 * since the previous line, to be logged with it, and the next waits interval_ms); false
 * counts this one as held back. */
bool fn_log_limit_pass(fn_log_limit_t *l, int64_t now_ms, int64_t interval_ms, uint64_t *skipped);

#endif
