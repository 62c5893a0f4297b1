/*
 * test_term.c — the terminal escaping of funnelctl's output (term.h), table by table: what
 * stays as it is (printable ASCII and UTF-8, emoji sequences with their joiners), what
 * becomes a visible escape (C0, DEL, C1, bidi controls, separators, bytes that are not
 * UTF-8), and that an escaped text never holds a byte a terminal acts on.
 */
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "term.h"

typedef struct {
    const char *in;
    size_t len; /* 0: strlen(in) */
    const char *want;
} esc_case_t;

#define BYTES(s) s, sizeof s - 1

static void test_escape(void)
{
    static const esc_case_t cases[] = {
        {"", 0, ""},
        {"spring-sale_2026 (q1)", 0, "spring-sale_2026 (q1)"},
        {"a\\b", 0, "a\\\\b"},
        {"\\x1b", 0, "\\\\x1b"}, /* a literal backslash-x stays told apart from an escape */
        /* C0 controls and DEL */
        {"\x1b[2J\x1b]0;pwned\x07", 0, "\\x1b[2J\\x1b]0;pwned\\x07"},
        {"line\nnext\r\ttab", 0, "line\\x0anext\\x0d\\x09tab"},
        {BYTES("nul\0end"), "nul\\x00end"},
        {"del\x7f", 0, "del\\x7f"},
        /* valid UTF-8 that prints stays intact */
        {"caf\xc3\xa9 \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac", 0,
         "caf\xc3\xa9 \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac"},
        {"\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x9a\x80", 0,
         "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x9a\x80"},
        {"\xc2\xa0nbsp \xc2\xa9", 0, "\xc2\xa0nbsp \xc2\xa9"}, /* U+00A0, U+00A9: just past C1 */
        /* C1 controls, as UTF-8 (U+009B is CSI) and as raw bytes (not UTF-8) */
        {"\xc2\x9b"
         "2J",
         0, "\\u009b2J"},
        {"\xc2\x80\xc2\x9f", 0, "\\u0080\\u009f"},
        {"\x9b"
         "2J",
         0, "\\x9b2J"},
        /* bidi controls and separators */
        {"admin\xe2\x80\xae"
         "cod.exe",
         0, "admin\\u202ecod.exe"},
        {"\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", 0, "\\u202a\\u202b\\u202c\\u202d"},
        {"\xe2\x81\xa6\xe2\x81\xa7\xe2\x81\xa8\xe2\x81\xa9", 0, "\\u2066\\u2067\\u2068\\u2069"},
        {"\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c", 0, "\\u200e\\u200f\\u061c"},
        {"a\xe2\x80\xa8"
         "b\xe2\x80\xa9",
         0, "a\\u2028b\\u2029"},
        /* not UTF-8: each byte visible, decoding resumes at the next one */
        {"\xc3\x28", 0, "\\xc3("},                       /* bad continuation */
        {"\xc0\xaf", 0, "\\xc0\\xaf"},                   /* overlong "/" */
        {"\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf"},          /* overlong, 3 bytes */
        {"\xed\xa0\x80", 0, "\\xed\\xa0\\x80"},          /* a surrogate */
        {"\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80"}, /* beyond U+10FFFF */
        {"\xf5\xff\xfe", 0, "\\xf5\\xff\\xfe"},
        {"cut \xe2\x82", 0, "cut \\xe2\\x82"}, /* cut off at the end */
        {"\xe2\x1b[m", 0, "\\xe2\\x1b[m"},     /* cut off by an ESC */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const esc_case_t *c = &cases[i];
        fn_buf_t out = {0};
        CHECK_INT(fn_term_escape(&out, c->in, c->len ? c->len : strlen(c->in)), FN_OK);
        if (!out.data || strcmp(out.data, c->want) != 0)
            fprintf(stderr, "case %zu\n", i);
        CHECK_STR(out.data ? out.data : "", c->want);
        fn_buf_free(&out);
    }
}

static void test_escape_json(void)
{
    static const esc_case_t cases[] = {
        {"{\n  \"campaign\": \"spring\"\n}", 0, "{\n  \"campaign\": \"spring\"\n}"},
        {"{\"c\": \"\\u001b[2J\"}", 0, "{\"c\": \"\\u001b[2J\"}"}, /* jansson's escape stays */
        {"[\"caf\xc3\xa9 \xf0\x9f\x9a\x80\"]", 0, "[\"caf\xc3\xa9 \xf0\x9f\x9a\x80\"]"},
        {"[\"\xc2\x9b"
         "2J\"]",
         0, "[\"\\u009b2J\"]"},
        {"[\"del\x7f\"]", 0, "[\"del\\u007f\"]"},
        {"[\"a\xe2\x80\xae"
         "b\"]",
         0, "[\"a\\u202eb\"]"},
        {"[\"a\xe2\x80\xa8\"]", 0, "[\"a\\u2028\"]"},
        {"[\"\x1b\"]", 0, "[\"\\u001b\"]"},
        {"[\"\xff\"]", 0, "[\"\\ufffd\"]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const esc_case_t *c = &cases[i];
        fn_buf_t out = {0};
        CHECK_INT(fn_term_escape_json(&out, c->in, c->len ? c->len : strlen(c->in)), FN_OK);
        if (!out.data || strcmp(out.data, c->want) != 0)
            fprintf(stderr, "json case %zu\n", i);
        CHECK_STR(out.data ? out.data : "", c->want);
        fn_buf_free(&out);
    }
}

/* Whatever the input, the escaped text holds no C0 byte and no DEL, and is valid UTF-8
 * without a code point a terminal acts on: escaping it again changes nothing but its
 * backslashes, each of which doubles. */
static void test_random(void)
{
    fn_test_rng_t rng = {0x9e3779b97f4a7c15ULL};
    for (int round = 0; round < 20000 && !fn_test_failures; round++) {
        unsigned char in[24];
        size_t len = (size_t)(fn_test_rnd(&rng) % sizeof in);
        for (size_t i = 0; i < len; i++)
            in[i] = (unsigned char)fn_test_rnd(&rng);
        fn_buf_t out = {0}, again = {0};
        CHECK_INT(fn_term_escape(&out, (const char *)in, len), FN_OK);
        size_t controls = 0, backslashes = 0;
        for (size_t i = 0; i < out.len; i++) {
            unsigned char c = (unsigned char)out.data[i];
            controls += c < 0x20 || c == 0x7f;
            backslashes += c == '\\';
        }
        CHECK_INT(controls, 0);
        CHECK_INT(fn_term_escape(&again, out.data ? out.data : "", out.len), FN_OK);
        CHECK_INT(again.len, out.len + backslashes);
        fn_buf_free(&out);
        fn_buf_free(&again);
    }
}

int main(void)
{
    test_escape();
    test_escape_json();
    test_random();
    return fn_test_result("test_term");
}
