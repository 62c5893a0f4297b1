/*
 * test_lead_pos.c — a lead's position in one funnel read from its hash (the "|p" field, or
 * the six fields written before it) and written back, as daemon/state/position.lua does.
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/lead_pos.h"

/* An HGETALL reply of the given name/value pairs (NULL-terminated); freed by freeReplyObject. */
static redisReply *hash_of(const char *const *kv)
{
    redisReply *h = calloc(1, sizeof *h);
    h->type = REDIS_REPLY_ARRAY;
    while (kv[h->elements])
        h->elements++;
    h->element = calloc(h->elements ? h->elements : 1, sizeof *h->element);
    for (size_t i = 0; i < h->elements; i++) {
        redisReply *e = calloc(1, sizeof *e);
        e->type = REDIS_REPLY_STRING;
        e->str = strdup(kv[i]);
        e->len = strlen(kv[i]);
        h->element[i] = e;
    }
    return h;
}

/* Equal in every field the has_ flags say hold (and in the flags and status). */
static bool same(const fn_lead_pos_t *a, const fn_lead_pos_t *b)
{
    return a->has_touches == b->has_touches && a->has_active == b->has_active &&
           a->has_stage == b->has_stage && a->has_entered == b->has_entered &&
           a->has_began == b->has_began && a->status == b->status &&
           (!a->has_touches || a->touches == b->touches) &&
           (!a->has_active || a->active_at == b->active_at) &&
           (!a->has_stage || a->stage == b->stage) &&
           (!a->has_entered || a->entered_at == b->entered_at) &&
           (!a->has_began || a->began_at == b->began_at);
}

/* A position that entered the funnel (every number held), and one only touched. */
#define ENTERED(n, a, st, k, e, b)                                                                 \
    {                                                                                              \
        .has_touches = true, .has_active = true, .has_stage = true, .has_entered = true,           \
        .has_began = true, .touches = n, .active_at = a, .status = st, .stage = k,                 \
        .entered_at = e, .began_at = b                                                             \
    }
#define TOUCHED(n, a)                                                                              \
    {                                                                                              \
        .has_touches = true, .has_active = true, .touches = n, .active_at = a                      \
    }

typedef struct pos_case {
    const char *kv[16];
    bool ok;
    fn_lead_pos_t want;
} pos_case_t;

static void test_read(void)
{
    static const pos_case_t cases[] = {
        /* never touched the funnel (another funnel's field is not this one's) */
        {{"id", "L", "other|p", "3|5", NULL}, true, {0}},
        {{"sales|p", "3|1795440000000", NULL}, true, TOUCHED(3, 1795440000000)},
        {{"sales|p", "12|1795440000300|a2|1795440000200|1795440000100", NULL},
         true,
         ENTERED(12, 1795440000300, 'a', 2, 1795440000200, 1795440000100)},
        /* converted; negative times read */
        {{"sales|p", "1|-5|c10|-7|-9", NULL}, true, ENTERED(1, -5, 'c', 10, -7, -9)},
        /* lost without a stage */
        {{"sales|p", "1|2|l|3|4", NULL},
         true,
         {.has_touches = true,
          .has_active = true,
          .has_entered = true,
          .has_began = true,
          .touches = 1,
          .active_at = 2,
          .status = 'l',
          .entered_at = 3,
          .began_at = 4}},
        /* malformed: each reads as nothing, and false */
        {{"sales|p", "", NULL}, false, {0}},
        {{"sales|p", "3", NULL}, false, {0}},
        {{"sales|p", "3|", NULL}, false, {0}},
        {{"sales|p", "-3|5", NULL}, false, {0}},
        {{"sales|p", "3|5|", NULL}, false, {0}},
        {{"sales|p", "3|5|a1|2", NULL}, false, {0}},
        {{"sales|p", "3|5|z1|2|3", NULL}, false, {0}},
        {{"sales|p", "3|5|a-1|2|3", NULL}, false, {0}},
        {{"sales|p", "3|5|a1|2|3|4", NULL}, false, {0}},
        {{"sales|p", "3|5|a1|2|x", NULL}, false, {0}},
        {{"sales|p", "99999999999999999999|5", NULL}, false, {0}},
        /* the layout before "|p": six fields, unreadable numbers read as absent */
        {{"sales|n", "4", "sales|a", "1795440000300", "sales|x", "a", "sales|k", "1", "sales|e",
          "1795440000200", "sales|b", "1795440000100", NULL},
         true,
         ENTERED(4, 1795440000300, 'a', 1, 1795440000200, 1795440000100)},
        {{"sales|n", "4", "sales|a", "soon", "sales|x", "c", "sales|k", "zz", NULL},
         true,
         {.has_touches = true, .touches = 4, .status = 'c'}},
        /* "|p" wins over old fields left beside it */
        {{"sales|k", "3", "sales|x", "c", "sales|p", "2|7", NULL}, true, TOUCHED(2, 7)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        redisReply *h = hash_of(cases[i].kv);
        fn_lead_pos_t got;
        memset(&got, 0x5a, sizeof got);
        bool ok = fn_lead_pos_read(h, "sales", &got) == cases[i].ok && same(&got, &cases[i].want);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "case %zu (%s = %s) read wrong\n", i, cases[i].kv[0], cases[i].kv[1]);
        freeReplyObject(h);
    }
}

/* What fn_lead_pos_text writes reads back the same; the two shapes of the text. */
static void test_text_round_trip(void)
{
    const fn_lead_pos_t cases[] = {
        TOUCHED(0, 1795440000000),
        ENTERED(INT64_MAX, INT64_MIN, 'l', INT64_MAX, INT64_MIN, INT64_MIN),
        ENTERED(3, 30, 'a', 0, 20, 10),
    };
    const char *want[] = {"0|1795440000000", NULL, "3|30|a0|20|10"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[FN_LEAD_POS_TEXT];
        size_t n = fn_lead_pos_text(&cases[i], text);
        CHECK_INT(n, strlen(text));
        CHECK(n < FN_LEAD_POS_TEXT);
        if (want[i])
            CHECK_STR(text, want[i]);
        const char *kv[] = {"f|p", text, NULL};
        redisReply *h = hash_of(kv);
        fn_lead_pos_t got;
        CHECK(fn_lead_pos_read(h, "f", &got));
        CHECK(same(&got, &cases[i]));
        freeReplyObject(h);
    }
}

int main(void)
{
    test_read();
    test_text_round_trip();
    return fn_test_result("test_lead_pos");
}
