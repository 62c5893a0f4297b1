/*
 * log.c — one JSON object per line on stderr (SPEC §7). Lines are built in one buffer and
 * written with a single fwrite so concurrent writers (tools, tests) never interleave a line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/log.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int fn_log_level_parse(const char *s, fn_log_level_t *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (fn_log_level_t)i;
            return 0;
        }
    return -1;
}

/* printf-checked like its callers (fn_log's attribute), so clang accepts fmt as a format. */
__attribute__((format(printf, 5, 0))) static void emit(const fn_log_t *lg, fn_log_level_t level,
                                                       const char *component,
                                                       const fn_log_ctx_t *ctx, const char *fmt,
                                                       va_list ap)
{
    char msg[1024], ts[32];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fn_time_format(fn_now_ms(), ts, sizeof ts);
    fn_buf_t b = {0};
    int rc = fn_buf_appendf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
                            level_names[level]) ||
             fn_buf_append_json_str(&b, component, strlen(component)) ||
             fn_buf_append(&b, ",\"msg\":", 7) || fn_buf_append_json_str(&b, msg, strlen(msg));
    if (!rc && ctx && ctx->topic)
        rc = fn_buf_append(&b, ",\"topic\":", 9) ||
             fn_buf_append_json_str(&b, ctx->topic, strlen(ctx->topic));
    if (!rc && ctx && ctx->partition >= 0)
        rc = fn_buf_appendf(&b, ",\"partition\":%d", ctx->partition);
    if (!rc && ctx && ctx->offset >= 0)
        rc = fn_buf_appendf(&b, ",\"offset\":%lld", ctx->offset);
    if (!rc && ctx && ctx->lead_hash)
        rc = fn_buf_append(&b, ",\"lead\":", 8) ||
             fn_buf_append_json_str(&b, ctx->lead_hash, strlen(ctx->lead_hash));
    if (!rc && !fn_buf_append(&b, "}\n", 2))
        fwrite(b.data, 1, b.len, lg->out ? lg->out : stderr);
    fn_buf_free(&b);
}

void fn_log(const fn_log_t *lg, fn_log_level_t level, const char *component, const char *fmt, ...)
{
    if (!lg || level < lg->level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(lg, level, component, NULL, fmt, ap);
    va_end(ap);
}

void fn_log_ctx(const fn_log_t *lg, fn_log_level_t level, const char *component,
                const fn_log_ctx_t *ctx, const char *fmt, ...)
{
    if (!lg || level < lg->level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(lg, level, component, ctx, fmt, ap);
    va_end(ap);
}

bool fn_log_limit_pass(fn_log_limit_t *l, int64_t now_ms, int64_t interval_ms, uint64_t *skipped)
{
    if (now_ms < l->next_ms) {
        l->skipped++;
        return false;
    }
    *skipped = l->skipped;
    l->skipped = 0;
    l->next_ms = now_ms + interval_ms;
    return true;
}
