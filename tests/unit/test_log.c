/*
 * test_log.c — log lines are one valid JSON object each, with the context fields when given,
 * hostile message text escaped, and levels below the threshold dropped.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/log.h"

int main(void)
{
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
