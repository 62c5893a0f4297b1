/*
 * test_log.c — log lines are one valid JSON object each, with the context fields when given,
 * hostile message text escaped, levels below the threshold dropped, and the limiter passing one
 * line per interval with the count of those held back.
 */
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/log.h"

/* One line per interval: a table of calls (time, expected pass, expected skipped count). */
static void test_limit(void)
{
    static const struct {
        int64_t now;
        bool pass;
        uint64_t skipped;
    } calls[] = {
        {0, true, 0},    {10, false, 0},   {999, false, 0},  {1000, true, 2}, {1500, false, 0},
        {5000, true, 1}, {5000, false, 0}, {5999, false, 0}, {6000, true, 2}, {20000, true, 0},
    };
    fn_log_limit_t l = {0};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        uint64_t skipped = 99;
        bool pass = fn_log_limit_pass(&l, calls[i].now, 1000, &skipped);
        CHECK(pass == calls[i].pass);
        if (calls[i].pass)
            CHECK_INT(skipped, calls[i].skipped);
        else
            CHECK_INT(skipped, 99);
    }
}

int main(void)
{
    test_limit();
    FILE *f = tmpfile();
    fn_log_t lg = {.level = FN_LOG_INFO, .out = f};
    fn_log(&lg, FN_LOG_DEBUG, "x", "dropped");
    fn_log(&lg, FN_LOG_INFO, "redis", "ready %d", 7);
    fn_log_ctx_t ctx = {"touchpoints", 3, 1842, "0123456789abcdef0123456789abcdef"};
    fn_log_ctx(&lg, FN_LOG_ERROR, "redis", &ctx, "bad \"quote\"\n\x1b[2J %s", "x");
    fn_log_ctx_t none = {NULL, -1, -1, NULL};
    fn_log_ctx(&lg, FN_LOG_WARN, "kafka", &none, "plain");
    rewind(f);
    char line[2048];
    json_t *lines[4] = {0};
    int n = 0;
    while (n < 4 && fgets(line, sizeof line, f)) {
        json_error_t e;
        lines[n] = json_loads(line, 0, &e);
        CHECK(lines[n] != NULL);
        n++;
    }
    CHECK_INT(n, 3);
    CHECK_STR(json_string_value(json_object_get(lines[0], "msg")), "ready 7");
    CHECK_STR(json_string_value(json_object_get(lines[0], "level")), "info");
    CHECK(json_object_get(lines[0], "topic") == NULL);
    CHECK_STR(json_string_value(json_object_get(lines[1], "msg")), "bad \"quote\"\n\x1b[2J x");
    CHECK_STR(json_string_value(json_object_get(lines[1], "topic")), "touchpoints");
    CHECK_INT(json_integer_value(json_object_get(lines[1], "partition")), 3);
    CHECK_INT(json_integer_value(json_object_get(lines[1], "offset")), 1842);
    CHECK_STR(json_string_value(json_object_get(lines[1], "lead")),
              "0123456789abcdef0123456789abcdef");
    CHECK_STR(json_string_value(json_object_get(lines[2], "component")), "kafka");
    CHECK(json_object_size(lines[2]) == 4);
    /* the escape byte and the newline reach the file escaped, never raw */
    rewind(f);
    char all[4096];
    size_t len = fread(all, 1, sizeof all, f);
    CHECK(memchr(all, '\x1b', len) == NULL);
    int newlines = 0;
    for (size_t i = 0; i < len; i++)
        newlines += all[i] == '\n';
    CHECK_INT(newlines, 3);
    for (int i = 0; i < n; i++)
        json_decref(lines[i]);
    fclose(f);
    return fn_test_result("test_log");
}
