/*
 * test_json_view.c — the tree-free scanner (daemon/decode/json_view.c), table by table: what
 * it reads and how, and what it leaves to jansson. Every document it accepts is also parsed
 * by jansson here, which must accept it too and read each member the same; what it declines
 * is either invalid JSON (jansson's error) or a shape it leaves to jansson on purpose.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/json_view.h"

/* Compares one scanned member with jansson's reading of it. */
static int same_as_jansson(const fn_jv_t *v, json_t *j)
{
    switch (v->type) {
    case FN_JV_STRING:
        return json_is_string(j) && json_string_length(j) == v->len &&
               memcmp(json_string_value(j), v->s, v->len) == 0 && v->s[v->len] == '\0';
    case FN_JV_INTEGER:
        return json_is_integer(j) && json_integer_value(j) == v->i;
    case FN_JV_REAL:
        return json_is_real(j) && json_real_value(j) == v->d;
    case FN_JV_TRUE:
        return json_is_true(j);
    case FN_JV_FALSE:
        return json_is_false(j);
    case FN_JV_NULL:
        return json_is_null(j);
    case FN_JV_OBJECT:
        return json_is_object(j);
    case FN_JV_ARRAY:
        return 0;
    }
    return 0;
}

static void check_object(const fn_jv_object_t *o, json_t *j, const char *doc)
{
    CHECK_INT(o->n, json_object_size(j));
    for (size_t i = 0; i < o->n; i++) {
        json_t *m = json_object_getn(j, o->m[i].key, o->m[i].klen);
        if (!m || !same_as_jansson(&o->m[i].v, m)) {
            fn_test_failures++;
            fprintf(stderr, "  %s: member %s read differently\n", doc, o->m[i].key);
        }
    }
}

enum { DECLINE = -1 };

static const struct {
    const char *doc;
    int members; /* top-level members when accepted, DECLINE when not */
    int props;   /* props members when accepted */
} cases[] = {
    {"{}", 0, 0},
    {" \t\r\n{ \"a\" : 1 } \n", 1, 0},
    {"{\"a\":\"x\",\"b\":-0,\"c\":0.5,\"d\":-1.25e-3,\"e\":true,\"f\":false,\"g\":null}", 7, 0},
    {"{\"a\":123456789012345678,\"b\":-123456789012345678}", 2, 0},
    {"{\"a\":1E400}", DECLINE, 0}, /* overflows a double: jansson's error */
    {"{\"a\":1e-400}", 1, 0},      /* underflows to 0: jansson reads 0 */
    {"{\"props\":{}}", 1, 0},
    {"{\"props\":{\"a\":\"b\",\"n\":2}}", 1, 2},
    {"{\"props\":\"flat\"}", 1, 0}, /* a scalar named props: for event.c to refuse */
    {"{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\u20ac \\uFFFF\"}", 1, 0},
    {"{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}", 1, 0}, /* raw UTF-8 */
    {"{\"\":1}", 1, 0},                                 /* an empty key */
    /* left to jansson on purpose */
    {"{\"s\":\"\\u0000\"}", DECLINE, 0},
    {"{\"s\":\"\\ud83d\\ude00\"}", DECLINE, 0},
    {"{\"k\\u0065y\":1}", DECLINE, 0},
    {"{\"a\":1234567890123456789}", DECLINE, 0},
    {"{\"a\":[]}", DECLINE, 0},
    {"{\"a\":{}}", DECLINE, 0},
    {"{\"props\":{\"a\":{}}}", DECLINE, 0},
    {"{\"props\":{\"a\":[1]}}", DECLINE, 0},
    {"[]", DECLINE, 0},
    {"\"str\"", DECLINE, 0},
    /* invalid JSON: declined, so jansson says what is wrong */
    {"", DECLINE, 0},
    {"{", DECLINE, 0},
    {"{\"a\"}", DECLINE, 0},
    {"{\"a\":}", DECLINE, 0},
    {"{\"a\":1,}", DECLINE, 0},
    {"{\"a\":1 \"b\":2}", DECLINE, 0},
    {"{\"a\":01}", DECLINE, 0},
    {"{\"a\":1.}", DECLINE, 0},
    {"{\"a\":.5}", DECLINE, 0},
    {"{\"a\":+1}", DECLINE, 0},
    {"{\"a\":1e}", DECLINE, 0},
    {"{\"a\":-}", DECLINE, 0},
    {"{\"a\":tru}", DECLINE, 0},
    {"{\"a\":truex}", DECLINE, 0},
    {"{\"a\":1x}", DECLINE, 0},
    {"{\"a\":\"x\ty\"}", DECLINE, 0}, /* a raw control character */
    {"{\"a\":\"\\x\"}", DECLINE, 0},
    {"{\"a\":\"\\u12\"}", DECLINE, 0},
    {"{\"a\":\"open}", DECLINE, 0},
    {"{\"a\":1,\"a\":2}", DECLINE, 0}, /* a duplicate key */
    {"{\"props\":{\"a\":1,\"a\":1}}", DECLINE, 0},
    {"{} {}", DECLINE, 0},
    {"{}x", DECLINE, 0},
    {"{'a':1}", DECLINE, 0},
};

static void run_case(const char *doc, size_t len, int members, int props)
{
    fn_jv_object_t top, pv;
    char *out = malloc(len + 1);
    CHECK(out != NULL);
    if (!out)
        return;
    bool ok = fn_jv_scan(doc, len, out, &top, &pv);
    json_error_t err;
    json_t *j =
        json_loadb(doc, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
    if (ok != (members != DECLINE)) {
        fn_test_failures++;
        fprintf(stderr, "  %s: scanner %s\n", doc, ok ? "accepted" : "declined");
    } else if (ok) {
        /* whatever the scanner accepts, jansson accepts and reads alike */
        CHECK(j != NULL && json_is_object(j));
        if (j && json_is_object(j)) {
            CHECK_INT(top.n, members);
            CHECK_INT(pv.n, props);
            check_object(&top, j, doc);
            json_t *jp = json_object_get(j, "props");
            if (json_is_object(jp))
                check_object(&pv, jp, doc);
            const fn_jv_t *a = fn_jv_get(&top, "a", 1);
            CHECK(!a == !json_object_get(j, "a"));
        }
    }
    json_decref(j);
    free(out);
}

/* The table's limit: FN_JV_MAX_MEMBERS members are read, one more is left to jansson. */
static void test_limits(void)
{
    char doc[1024];
    for (int n = FN_JV_MAX_MEMBERS; n <= FN_JV_MAX_MEMBERS + 1; n++) {
        size_t len = 0;
        doc[len++] = '{';
        for (int i = 0; i < n; i++)
            len +=
                (size_t)snprintf(doc + len, sizeof doc - len, "%s\"k%d\":%d", i ? "," : "", i, i);
        doc[len++] = '}';
        doc[len] = '\0';
        run_case(doc, len, n <= FN_JV_MAX_MEMBERS ? n : DECLINE, 0);
    }
    /* the decoded strings fit the caller's len + 1 bytes exactly at worst */
    run_case("{\"\":\"\"}", 7, 1, 0);
}

/* Each escape, and each raw character a string may not hold, at every place in and around
 * the eight-byte words the scanner checks at once, among ASCII and UTF-8: read as jansson
 * reads it, or declined. */
static void test_every_place(void)
{
    static const struct {
        const char *in; /* as it stands in the document */
        bool ok;
    } specials[] = {{"\\\"", true}, {"\\\\", true},  {"\\n", true},  {"\\u00e9", true},
                    {"\t", false},  {"\x01", false}, {"\x1f", false}};
    static const char *const plain[] = {"a", "\xc3\xa9", "~", " "};
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++)
        for (size_t pl = 0; pl < sizeof plain / sizeof *plain; pl++)
            for (size_t at = 0; at < 20; at++) {
                char doc[128];
                size_t n = (size_t)snprintf(doc, sizeof doc, "{\"s\":\"");
                bool placed = false;
                for (size_t chars = 0; chars < 24;) {
                    const char *piece = !placed && chars >= at ? specials[k].in : plain[pl];
                    placed |= piece == specials[k].in;
                    n += (size_t)snprintf(doc + n, sizeof doc - n, "%s", piece);
                    chars += strlen(piece);
                }
                n += (size_t)snprintf(doc + n, sizeof doc - n, "\",\"t\":\"x\"}");
                run_case(doc, n, specials[k].ok ? 2 : DECLINE, 0);
            }
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(cases[i].doc, strlen(cases[i].doc), cases[i].members, cases[i].props);
    test_limits();
    test_every_place();
    return fn_test_result("test_json_view");
}
