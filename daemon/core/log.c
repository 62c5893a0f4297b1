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

void fn_log(const fn_log_t *lg, fn_log_level_t level, const char *component, const char *fmt, ...)
{
    if (!lg || level < lg->level)
        return;
    char msg[1024], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn_time_format(fn_now_ms(), ts, sizeof ts);
    fn_buf_t b = {0};
    if (fn_buf_appendf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts,
                       level_names[level]) ||
        fn_buf_append_json_str(&b, component, strlen(component)) ||
        fn_buf_append(&b, ",\"msg\":", 7) || fn_buf_append_json_str(&b, msg, strlen(msg)) ||
        fn_buf_append(&b, "}\n", 2)) {
        fn_buf_free(&b);
        return;
    }
    fwrite(b.data, 1, b.len, lg->out ? lg->out : stderr);
    fn_buf_free(&b);
}
