/*
 * test_reply_arena.c — replies built in an arena are the replies hiredis's own reader builds:
 * every type, nesting to hiredis's limit, replies larger than a block, input fed whole, byte
 * by byte and at random cuts, and a protocol error half-way (the sanitizer build sees any
 * leak or stray free).
 */
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/common.h"
#include "funneld/reply_arena.h"

static bool same_tree(const redisReply *a, const redisReply *b)
{
    if (!a || !b)
        return a == b;
    if (a->type != b->type || a->integer != b->integer || a->len != b->len ||
        a->elements != b->elements)
        return false;
    if ((a->str == NULL) != (b->str == NULL) || (a->str && memcmp(a->str, b->str, a->len + 1)))
        return false;
    for (size_t i = 0; i < a->elements; i++)
        if (!same_tree(a->element[i], b->element[i]))
            return false;
    return true;
}

/* Feeds resp to r in pieces of at most cut bytes (0: whole; SIZE_MAX: random, from rng) and
 * returns the one reply it holds at the end (NULL if none or on an error). */
static redisReply *read_one(redisReader *r, const char *resp, size_t len, size_t cut,
                            fn_test_rng_t *rng)
{
    void *reply = NULL;
    for (size_t at = 0; at < len;) {
        size_t n = cut == 0 ? len - at : cut == SIZE_MAX ? 1 + fn_test_rnd(rng) % 97 : cut;
        if (n > len - at)
            n = len - at;
        if (redisReaderFeed(r, resp + at, n) != REDIS_OK)
            return NULL;
        at += n;
        if (at < len && (redisReaderGetReply(r, &reply) != REDIS_OK || reply)) {
            if (reply)
                r->fn->freeObject(reply); /* a reply before the end: not one reply */
            return NULL;
        }
    }
    if (redisReaderGetReply(r, &reply) != REDIS_OK)
        return NULL;
    return reply;
}

/* resp parsed by hiredis's own reader and by an arena one, fed each way, gives equal trees. */
static void check_same(const char *what, const char *resp, size_t len)
{
    static const size_t cuts[] = {0, 1, 7, SIZE_MAX};
    fn_test_rng_t rng = {0x9e3779b97f4a7c15ULL};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        redisReader *plain = redisReaderCreate(), *arena = redisReaderCreate();
        CHECK(plain && arena && fn_reply_arena_use(arena));
        redisReply *want = read_one(plain, resp, len, cuts[c], &rng);
        redisReply *got = read_one(arena, resp, len, cuts[c], &rng);
        CHECK(want && got);
        if (!same_tree(want, got))
            fprintf(stderr, "%s, cut %zu: the trees differ\n", what, cuts[c]);
        CHECK(same_tree(want, got));
        freeReplyObject(want);
        if (got)
            arena->fn->freeObject(got);
        redisReaderFree(plain);
        redisReaderFree(arena);
    }
}

static void test_types(void)
{
    static const struct {
        const char *what, *resp;
    } cases[] = {
        {"status", "+OK\r\n"},
        {"error", "-ERR funneld step refused, nothing written: why\r\n"},
        {"integer", ":-9223372036854775807\r\n"},
        {"nil bulk", "$-1\r\n"},
        {"nil array", "*-1\r\n"},
        {"empty array", "*0\r\n"},
        {"empty string", "$0\r\n\r\n"},
        {"a step's reply", "*7\r\n$2\r\nok\r\n$13\r\n1795440000000\r\n$0\r\n\r\n*8\r\n$3\r\nweb"
                           "\r\n$6\r\nspring\r\n$6\r\ngoogle\r\n$13\r\n1795440000000\r\n$5\r\ne"
                           "mail\r\n$0\r\n\r\n$0\r\n\r\n$13\r\n1795440000001\r\n*1\r\n*7\r\n$3\r"
                           "\nb2b\r\n$1\r\nF\r\n$1\r\n0\r\n$1\r\n1\r\n$4\r\n1000\r\n$1\r\n0\r\n"
                           "$1\r\n2\r\n$0\r\n\r\n*0\r\n"},
        {"mixed, nil inside", "*5\r\n:1\r\n$-1\r\n*-1\r\n+QUEUED\r\n-WRONGTYPE x\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_same(cases[i].what, cases[i].resp, strlen(cases[i].resp));
    /* eight arrays deep, hiredis's limit, and a string with a NUL inside */
    static const char nested[] =
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*2\r\n:7\r\n$3\r\na\0b\r\n";
    check_same("nested to hiredis's limit", nested, sizeof nested - 1);
}

/* Larger than any block: many elements of random lengths, nested arrays that each take a
 * new block, one long string. */
static void test_large(void)
{
    fn_buf_t b = {0};
    fn_test_rng_t rng = {42};
    fn_buf_appendf(&b, "*3\r\n*%d\r\n", 5000);
    for (int i = 0; i < 5000; i++) {
        size_t n = (size_t)(fn_test_rnd(&rng) % 300);
        fn_buf_appendf(&b, "$%zu\r\n", n);
        for (size_t k = 0; k < n; k++)
            fn_buf_append(&b, &"abcdefghij"[k % 10], 1);
        fn_buf_append(&b, "\r\n", 2);
    }
    fn_buf_appendf(&b, "*%d\r\n", 300);
    for (int i = 0; i < 300; i++)
        fn_buf_appendf(&b, "*2\r\n:%d\r\n$5\r\nfield\r\n", i);
    size_t big = 200 * 1024;
    fn_buf_appendf(&b, "$%zu\r\n", big);
    for (size_t k = 0; k < big; k++)
        fn_buf_append(&b, &"0123456789"[k % 10], 1);
    fn_buf_append(&b, "\r\n", 2);
    check_same("large", b.data, b.len);
    fn_buf_free(&b);
}

/* A protocol error half-way through an array: both readers fail, and the arena reader's
 * partial reply is freed with the reader (a leak here fails the sanitizer build). */
static void test_error_half_way(void)
{
    static const char resp[] = "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n!bad\r\n";
    redisReader *plain = redisReaderCreate(), *arena = redisReaderCreate();
    CHECK(plain && arena && fn_reply_arena_use(arena));
    void *a = NULL, *b = NULL;
    redisReaderFeed(plain, resp, sizeof resp - 1);
    redisReaderFeed(arena, resp, sizeof resp - 1);
    CHECK_INT(redisReaderGetReply(plain, &a), REDIS_ERR);
    CHECK_INT(redisReaderGetReply(arena, &b), REDIS_ERR);
    CHECK(a == NULL && b == NULL);
    CHECK_INT(arena->err, REDIS_ERR_PROTOCOL);
    redisReaderFree(plain);
    redisReaderFree(arena);

    /* a reader that holds half a reply made by other functions is left as it was */
    redisReader *half = redisReaderCreate();
    redisReaderFeed(half, "*2\r\n:1\r\n", 8);
    void *none = NULL;
    CHECK_INT(redisReaderGetReply(half, &none), REDIS_OK);
    CHECK(none == NULL);
    redisReplyObjectFunctions *before = half->fn;
    CHECK(!fn_reply_arena_use(half));
    CHECK(half->fn == before);
    redisReaderFree(half);
    CHECK(!fn_reply_arena_use(NULL));
}

int main(void)
{
    test_types();
    test_large();
    test_error_half_way();
    return fn_test_result("test_reply_arena");
}
