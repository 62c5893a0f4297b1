/*
 * test_event.c — fn_event_decode() against a table of valid and hostile touchpoint messages
 * (SPEC §1): each case names the reject code it expects and, for accepted messages, the
 * decoded fields. Cases too big to write by hand (10000-deep nesting, a 1 MB string, 1000
 * props, messages exactly at the size limit) are built at run time and go through the same
 * checks. Every case also proves the invariants the DLQ relies on: a rejected event is left
 * zeroed, and the reason is non-empty, NUL-terminated, printable ASCII (message text only as a
 * short escaped excerpt), and short whatever the message size.
 *
 * The config is built by hand so this test does not depend on config.c.
 */
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/common.h"
#include "funneld/event.h"

#define NOW_MS 1795348800000LL /* 2026-11-22T12:00:00Z, the "wall clock" of every case */
#define DAY_MS 86400000LL
#define REASON_MAX 256 /* the size pipeline.c uses */

enum { CFG_DEFAULT = 0, CFG_NO_FUTURE, CFG_BIG, CFG_N };

/* b2b keeps cost figures (it has attribution) */
static fn_funnel_t funnels[] = {{.name = "b2b", .attribution = {.enabled = true}},
                                {.name = "aida"}};
static fn_config_t configs[CFG_N];

static void make_configs(void)
{
    for (int i = 0; i < CFG_N; i++) {
        configs[i].max_message_bytes = 65536;
        configs[i].max_future_ms = DAY_MS;
        configs[i].funnels = funnels;
        configs[i].n_funnels = sizeof funnels / sizeof funnels[0];
    }
    configs[CFG_NO_FUTURE].max_future_ms = 0; /* far-future rule disabled */
    configs[CFG_BIG].max_message_bytes = 2 * 1024 * 1024;
}

enum { MK_ABSENT = 0, MK_FALSE, MK_TRUE };

typedef struct tcase {
    const char *name;
    const char *json;   /* the message; NUL-terminated unless len is set */
    size_t len;         /* 0: strlen(json) */
    int cfg;            /* CFG_* */
    fn_reject_t code;   /* expected result */
    const char *reason; /* text the reason must contain; NULL: not checked */
    /* Checked for accepted messages only. */
    long long ts_ms;
    fn_event_kind_t kind;
    int has_value;
    double value;
    int marketing;       /* MK_* */
    const char *funnel;  /* NULL: no funnel */
    const char *lead_id; /* NULL: "L-1" */
    size_t lead_len;     /* 0: strlen(lead_id) */
} tcase_t;

/* The required fields but ts, in the shape most cases share. */
#define REQ "\"event_id\":\"e-1\",\"lead_id\":\"L-1\",\"channel\":\"web\",\"type\":\"page_view\""
#define TS_OK "\"ts\":1795342500250"
#define BASE "{" REQ "," TS_OK
/* BASE with one more field, or with props. */
#define WITH(field) BASE "," field "}"
#define PROPS(body) BASE ",\"props\":{" body "}}"
#define TS(v) "{" REQ ",\"ts\":" v "}"
#define TYPED(type, props)                                                                         \
    "{\"event_id\":\"e-1\",\"lead_id\":\"L-1\",\"channel\":\"web\","                               \
    "\"type\":\"" type "\"," TS_OK props "}"

static const tcase_t cases[] = {
    /* ---- accepted ---- */
    {.name = "integer epoch ms", .json = BASE "}", .ts_ms = 1795342500250LL},
    {.name = "ts 0 is 1970-01-01", .json = TS("0"), .ts_ms = 0},
    {.name = "RFC 3339 with milliseconds",
     .json = TS("\"2026-11-22T10:15:00.250Z\""),
     .ts_ms = 1795342500250LL},
    {.name = "RFC 3339 offset +02:00",
     .json = TS("\"2026-11-22T10:15:00+02:00\""),
     .ts_ms = 1795335300000LL},
    {.name = "RFC 3339 offset -05:30, one fraction digit",
     .json = TS("\"2026-11-22T10:15:00.1-05:30\""),
     .ts_ms = 1795362300100LL},
    {.name = "RFC 3339 nine fraction digits truncate to ms",
     .json = TS("\"2026-11-22T10:15:00.123999999Z\""),
     .ts_ms = 1795342500123LL},
    {.name = "RFC 3339 lower-case t and z",
     .json = TS("\"2026-11-22t10:15:00.250z\""),
     .ts_ms = 1795342500250LL},
    {.name = "Feb 29 of a leap year",
     .json = TS("\"2024-02-29T23:59:59.999Z\""),
     .ts_ms = 1709251199999LL},
    {.name = "leap second reads as the last ms before it",
     .json = TS("\"2016-12-31T23:59:60Z\""),
     .ts_ms = 1483228799999LL},
    {.name = "exactly max_future ahead is accepted",
     .json = TS("\"2026-11-23T12:00:00Z\""),
     .ts_ms = 1795435200000LL},
    {.name = "9999-12-31T23:59:59Z with the future rule disabled",
     .cfg = CFG_NO_FUTURE,
     .json = TS("\"9999-12-31T23:59:59Z\""),
     .ts_ms = 253402300799000LL},
    {.name = "largest integer ts with the future rule disabled",
     .cfg = CFG_NO_FUTURE,
     .json = TS("253402300799999"),
     .ts_ms = 253402300799999LL},
    {.name = "ids with {}:* and newlines are opaque",
     .json = "{\"event_id\":\"e\\n1\",\"lead_id\":\"{a}:*\\nb\",\"channel\":\"web\","
             "\"type\":\"page_view\"," TS_OK "}",
     .ts_ms = 1795342500250LL,
     .lead_id = "{a}:*\nb"},
    {.name = "4-byte emoji in lead_id",
     .json = "{\"event_id\":\"e-1\",\"lead_id\":\"L-\xF0\x9F\x98\x80\",\"channel\":\"web\","
             "\"type\":\"page_view\"," TS_OK "}",
     .ts_ms = 1795342500250LL,
     .lead_id = "L-\xF0\x9F\x98\x80"},
    {.name = "escaped surrogate pair in lead_id",
     .json = "{\"event_id\":\"e-1\",\"lead_id\":\"\\ud83d\\ude00\",\"channel\":\"web\","
             "\"type\":\"page_view\"," TS_OK "}",
     .ts_ms = 1795342500250LL,
     .lead_id = "\xF0\x9F\x98\x80"},
    {.name = "U+10FFFF and U+20AC in lead_id",
     .json = "{\"event_id\":\"e-1\",\"lead_id\":\"\xF4\x8F\xBF\xBF\xE2\x82\xAC\","
             "\"channel\":\"web\",\"type\":\"page_view\"," TS_OK "}",
     .ts_ms = 1795342500250LL,
     .lead_id = "\xF4\x8F\xBF\xBF\xE2\x82\xAC"},
    {.name = "128-byte event_id",
     .json = "{\"event_id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
             "\"lead_id\":\"L-1\",\"channel\":\"web\",\"type\":\"page_view\"," TS_OK "}",
     .ts_ms = 1795342500250LL},
    {.name = "known funnel",
     .json = WITH("\"funnel\":\"aida\""),
     .ts_ms = 1795342500250LL,
     .funnel = "aida"},
    {.name = "unknown top-level fields are ignored",
     .json = WITH("\"schema_version\":3,\"extra\":{\"a\":[1,2,{\"b\":null}]}"),
     .ts_ms = 1795342500250LL},
    {.name = "whitespace around the object",
     .json = " \t\r\n" BASE "} \n",
     .ts_ms = 1795342500250LL},
    {.name = "props with known strings and a real value",
     .json = PROPS("\"campaign\":\"spring\",\"source\":\"google\",\"medium\":\"cpc\","
                   "\"url\":\"https://example.com/p?a=1\",\"currency\":\"EUR\","
                   "\"stage\":\"proposal\",\"value\":1200.5,\"free\":[1]"),
     .ts_ms = 1795342500250LL,
     .has_value = 1,
     .value = 1200.5},
    {.name = "integer value",
     .json = PROPS("\"value\":1200"),
     .ts_ms = 1795342500250LL,
     .has_value = 1,
     .value = 1200},
    {.name = "value -1e15 is the bound",
     .json = PROPS("\"value\":-1e15"),
     .ts_ms = 1795342500250LL,
     .has_value = 1,
     .value = -1e15},
    {.name = "empty props object", .json = PROPS(""), .ts_ms = 1795342500250LL},
    {.name = "\\u0000 in a free prop is kept",
     .json = PROPS("\"note\":\"a\\u0000b\""),
     .ts_ms = 1795342500250LL},
    {.name = "consent true",
     .json = TYPED("consent", ",\"props\":{\"marketing\":true}"),
     .ts_ms = 1795342500250LL,
     .kind = FN_EV_CONSENT,
     .marketing = MK_TRUE},
    {.name = "consent false",
     .json = TYPED("consent", ",\"props\":{\"marketing\":false}"),
     .ts_ms = 1795342500250LL,
     .kind = FN_EV_CONSENT,
     .marketing = MK_FALSE},
    {.name = "erase", .json = TYPED("erase", ""), .ts_ms = 1795342500250LL, .kind = FN_EV_ERASE},
    {.name = "type names are case-sensitive: Consent is a touchpoint",
     .json = TYPED("Consent", ""),
     .ts_ms = 1795342500250LL,
     .kind = FN_EV_TOUCHPOINT},

    /* ---- size, encoding, syntax ---- */
    {.name = "empty input", .json = "", .code = FN_REJ_INVALID_JSON, .reason = "empty message"},
    {.name = "whitespace only", .json = "  \n", .code = FN_REJ_INVALID_JSON},
    {.name = "truncated JSON",
     .json = "{\"event_id\":\"e-1\",\"lead",
     .code = FN_REJ_INVALID_JSON,
     .reason = "premature end of input"},
    {.name = "lone open brace", .json = "{", .code = FN_REJ_INVALID_JSON},
    /* The parser quotes the cut "\u00"; its backslash must not start a half escape. */
    {.name = "cut \\u escape",
     .json = "{\"a\":\"x\\u00",
     .code = FN_REJ_INVALID_JSON,
     .reason = "\\u005cu00'"},
    {.name = "trailing garbage",
     .json = BASE "} x",
     .code = FN_REJ_INVALID_JSON,
     .reason = "end of file expected"},
    {.name = "two objects", .json = BASE "}" BASE "}", .code = FN_REJ_INVALID_JSON},
    {.name = "raw NUL after the object",
     .json = BASE "}\0",
     .len = sizeof(BASE "}"),
     .code = FN_REJ_INVALID_JSON},
    {.name = "raw NUL inside a string",
     .json = "{\"event_id\":\"e\0\"}",
     .len = 18,
     .code = FN_REJ_INVALID_JSON,
     .reason = "control character 0x0"},
    {.name = "raw newline inside a string",
     .json = "{\"event_id\":\"e\n\"}",
     .code = FN_REJ_INVALID_JSON},
    {.name = "UTF-8 BOM, quoted escaped by the parser's excerpt",
     .json = "\xEF\xBB\xBF" BASE "}",
     .code = FN_REJ_INVALID_JSON,
     .reason = "invalid token near '\\ufeff' at byte 3"},
    {.name = "duplicate key",
     .json = WITH("\"lead_id\":\"L-2\""),
     .code = FN_REJ_INVALID_JSON,
     .reason = "duplicate object key"},
    {.name = "duplicate key inside props",
     .json = PROPS("\"a\":1,\"a\":2"),
     .code = FN_REJ_INVALID_JSON,
     .reason = "duplicate object key"},
    {.name = "NUL in an object key", .json = WITH("\"a\\u0000\":1"), .code = FN_REJ_INVALID_JSON},
    {.name = "lone surrogate escape",
     .json = WITH("\"x\":\"\\ud800\""),
     .code = FN_REJ_INVALID_JSON},
    {.name = "invalid UTF-8 C3 28",
     .json = "{\"event_id\":\"\xC3"
             "(\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "invalid UTF-8 at byte 13 (0xc3)"},
    {.name = "invalid UTF-8 surrogate ED A0 80",
     .json = "{\"lead_id\":\"\xED\xA0\x80\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 12 (0xed)"},
    {.name = "invalid UTF-8 F5",
     .json = "{\"a\":\"\xF5\x80\x80\x80\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 6 (0xf5)"},
    {.name = "invalid UTF-8 above U+10FFFF (F4 90)",
     .json = "{\"a\":\"\xF4\x90\x80\x80\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 6 (0xf4)"},
    {.name = "invalid UTF-8 overlong C0 AF",
     .json = "{\"a\":\"\xC0\xAF\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 6 (0xc0)"},
    {.name = "invalid UTF-8 overlong E0 80 AF",
     .json = "{\"a\":\"\xE0\x80\xAF\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 6 (0xe0)"},
    {.name = "invalid UTF-8 lone continuation byte",
     .json = "{\"a\":\"\x80\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 6 (0x80)"},
    {.name = "invalid UTF-8 after a valid sequence and sixteen ASCII bytes",
     .json = "{\"a\":\"\xC3\xA9"
             "0123456789abcdef\xFF\"}",
     .code = FN_REJ_INVALID_UTF8,
     .reason = "at byte 24 (0xff)"},
    {.name = "invalid UTF-8 truncated at the end",
     .json = BASE "}\xF0\x9F\x98",
     .code = FN_REJ_INVALID_UTF8},
    {.name = "empty array", .json = "[]", .code = FN_REJ_NOT_OBJECT, .reason = "got array"},
    {.name = "string", .json = "\"str\"", .code = FN_REJ_NOT_OBJECT, .reason = "got string"},
    {.name = "null", .json = "null", .code = FN_REJ_NOT_OBJECT, .reason = "got null"},
    {.name = "number", .json = "42", .code = FN_REJ_NOT_OBJECT, .reason = "got integer"},
    {.name = "empty object",
     .json = "{}",
     .code = FN_REJ_MISSING_FIELD,
     .reason = "event_id: missing"},

    /* ---- required fields ---- */
    {.name = "missing lead_id",
     .json = "{\"event_id\":\"e\",\"channel\":\"web\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_MISSING_FIELD,
     .reason = "lead_id: missing"},
    {.name = "missing ts",
     .json = "{" REQ "}",
     .code = FN_REJ_MISSING_FIELD,
     .reason = "ts: missing"},
    {.name = "missing channel",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_MISSING_FIELD,
     .reason = "channel: missing"},
    {.name = "missing type",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":\"web\"," TS_OK "}",
     .code = FN_REJ_MISSING_FIELD,
     .reason = "type: missing"},
    {.name = "event_id is a number",
     .json = "{\"event_id\":1,\"lead_id\":\"L\",\"channel\":\"web\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_WRONG_TYPE,
     .reason = "event_id: expected string, got integer"},
    {.name = "lead_id is null",
     .json = "{\"event_id\":\"e\",\"lead_id\":null,\"channel\":\"web\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_WRONG_TYPE,
     .reason = "lead_id: expected string, got null"},
    {.name = "lead_id is an array",
     .json =
         "{\"event_id\":\"e\",\"lead_id\":[\"L\"],\"channel\":\"web\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_WRONG_TYPE,
     .reason = "lead_id: expected string, got array"},
    {.name = "channel is a number",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":5,\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_WRONG_TYPE,
     .reason = "channel: expected string, got integer"},
    {.name = "type is a boolean",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":\"web\",\"type\":false," TS_OK "}",
     .code = FN_REJ_WRONG_TYPE,
     .reason = "type: expected string, got boolean"},
    {.name = "129-byte event_id",
     .json = "{\"event_id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX\","
             "\"lead_id\":\"L-1\",\"channel\":\"web\",\"type\":\"page_view\"," TS_OK "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "event_id: longer than 128 bytes (129)"},
    {.name = "empty lead_id",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"\",\"channel\":\"web\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "lead_id: empty"},
    {.name = "\\u0000 in lead_id",
     .json =
         "{\"event_id\":\"e\",\"lead_id\":\"L\\u0000x\",\"channel\":\"web\",\"type\":\"x\"," TS_OK
         "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "lead_id: contains a NUL byte"},
    {.name = "\\u0000 alone as event_id",
     .json = "{\"event_id\":\"\\u0000\",\"lead_id\":\"L\",\"channel\":\"web\",\"type\":\"x\"," TS_OK
             "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "event_id: contains a NUL byte"},
    {.name = "newline in channel",
     .json =
         "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":\"w\\neb\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "channel: contains a control character at byte 1"},
    {.name = "DEL in type",
     .json =
         "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":\"web\",\"type\":\"x\\u007f\"," TS_OK
         "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "type: contains a control character"},
    {.name = "empty type",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":\"web\",\"type\":\"\"," TS_OK "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "type: empty"},
    {.name = "65-byte channel",
     .json = "{\"event_id\":\"e\",\"lead_id\":\"L\",\"channel\":\"0123456789abcdef0123456789abcdef"
             "0123456789abcdef0123456789abcdefX\",\"type\":\"x\"," TS_OK "}",
     .code = FN_REJ_INVALID_VALUE,
     .reason = "channel: longer than 64 bytes (65)"},

    /* ---- ts ---- */
    {.name = "ts is an array",
     .json = TS("[]"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "ts: expected an RFC 3339 string or integer epoch milliseconds, got array"},
    {.name = "ts is an object",
     .json = TS("{}"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "got object"},
    {.name = "ts is a boolean", .json = TS("true"), .code = FN_REJ_WRONG_TYPE},
    {.name = "ts is null", .json = TS("null"), .code = FN_REJ_WRONG_TYPE, .reason = "got null"},
    {.name = "ts is a real number 1.5e12",
     .json = TS("1.5e12"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "got real number"},
    {.name = "ts 1e30", .json = TS("1e30"), .code = FN_REJ_WRONG_TYPE},
    {.name = "ts 1795342500250.0", .json = TS("1795342500250.0"), .code = FN_REJ_WRONG_TYPE},
    {.name = "ts -1",
     .json = TS("-1"),
     .code = FN_REJ_TS_RANGE,
     .reason = "ts: -1 ms is before 1970-01-01T00:00:00Z"},
    {.name = "ts INT64_MAX",
     .json = TS("9223372036854775807"),
     .code = FN_REJ_TS_RANGE,
     .reason = "is after 9999-12-31T23:59:59.999Z"},
    {.name = "ts INT64_MIN", .json = TS("-9223372036854775808"), .code = FN_REJ_TS_RANGE},
    {.name = "ts INT64_MAX + 1 fails the parse",
     .json = TS("9223372036854775808"),
     .code = FN_REJ_INVALID_JSON,
     .reason = "too big integer"},
    {.name = "ts 1e400 fails the parse",
     .json = TS("1e400"),
     .code = FN_REJ_INVALID_JSON,
     .reason = "real number overflow"},
    {.name = "ts past 9999 as an integer, future rule disabled",
     .cfg = CFG_NO_FUTURE,
     .json = TS("253402300800000"),
     .code = FN_REJ_TS_RANGE,
     .reason = "is after 9999"},
    {.name = "year 0000",
     .json = TS("\"0000-01-01T00:00:00Z\""),
     .code = FN_REJ_TS_RANGE,
     .reason = "is before 1970"},
    {.name = "one ms before 1970",
     .json = TS("\"1969-12-31T23:59:59.999Z\""),
     .code = FN_REJ_TS_RANGE},
    {.name = "1970 local time east of UTC is before 1970",
     .json = TS("\"1970-01-01T01:00:00+02:00\""),
     .code = FN_REJ_TS_RANGE,
     .reason = "-3600000 ms"},
    {.name = "9999-12-31T23:59:59Z by default is too far ahead",
     .json = TS("\"9999-12-31T23:59:59Z\""),
     .code = FN_REJ_TS_RANGE,
     .reason = "ts: 9999-12-31T23:59:59.000Z is more than 1d ahead of the clock"},
    {.name = "9999-12-31 west of UTC is after 9999",
     .cfg = CFG_NO_FUTURE,
     .json = TS("\"9999-12-31T23:59:59-01:00\""),
     .code = FN_REJ_TS_RANGE,
     .reason = "is after 9999"},
    {.name = "2100 is too far ahead",
     .json = TS("\"2100-01-01T00:00:00Z\""),
     .code = FN_REJ_TS_RANGE,
     .reason = "ts: 2100-01-01T00:00:00.000Z is more than 1d ahead of the clock"},
    {.name = "1 ms past max_future",
     .json = TS("\"2026-11-23T12:00:00.001Z\""),
     .code = FN_REJ_TS_RANGE},
    {.name = "Feb 30",
     .json = TS("\"2026-02-30T00:00:00Z\""),
     .code = FN_REJ_INVALID_VALUE,
     .reason = "ts: \"2026-02-30T00:00:00Z\" is not an RFC 3339 timestamp"},
    {.name = "Feb 29 of a common year",
     .json = TS("\"2026-02-29T00:00:00Z\""),
     .code = FN_REJ_INVALID_VALUE},
    {.name = "hour 24", .json = TS("\"2026-11-22T24:00:00Z\""), .code = FN_REJ_INVALID_VALUE},
    {.name = "minute 60", .json = TS("\"2026-11-22T10:60:00Z\""), .code = FN_REJ_INVALID_VALUE},
    {.name = "no zone", .json = TS("\"2026-11-22T10:15:00\""), .code = FN_REJ_INVALID_VALUE},
    {.name = "date only", .json = TS("\"2026-11-22\""), .code = FN_REJ_INVALID_VALUE},
    {.name = "space instead of T",
     .json = TS("\"2026-11-22 10:15:00Z\""),
     .code = FN_REJ_INVALID_VALUE},
    {.name = "offset +24:00",
     .json = TS("\"2026-11-22T10:15:00+24:00\""),
     .code = FN_REJ_INVALID_VALUE},
    {.name = "empty ts string", .json = TS("\"\""), .code = FN_REJ_INVALID_VALUE},
    {.name = "ts digits as a string",
     .json = TS("\"1795342500250\""),
     .code = FN_REJ_INVALID_VALUE},
    {.name = "ts text with a newline is quoted escaped",
     .json = TS("\"yesterday\\n\""),
     .code = FN_REJ_INVALID_VALUE,
     .reason = "ts: \"yesterday\\u000a\" is not"},
    {.name = "long ts text is cut in the reason",
     .json = TS("\"2026-11-22T10:15:00.000000000000000000000000000000000000000000000000000Z\""),
     .code = FN_REJ_INVALID_VALUE,
     .reason = "00\"... is not an RFC 3339"},

    /* ---- funnel ---- */
    {.name = "unknown funnel",
     .json = WITH("\"funnel\":\"xyz\""),
     .code = FN_REJ_UNKNOWN_FUNNEL,
     .reason = "funnel: \"xyz\" is not configured"},
    {.name = "empty funnel",
     .json = WITH("\"funnel\":\"\""),
     .code = FN_REJ_UNKNOWN_FUNNEL,
     .reason = "funnel: \"\" is not configured"},
    {.name = "funnel with a NUL after a known name",
     .json = WITH("\"funnel\":\"b2b\\u0000\""),
     .code = FN_REJ_UNKNOWN_FUNNEL,
     .reason = "funnel: \"b2b\\u0000\" is not configured"},
    {.name = "funnel prefix of a known name",
     .json = WITH("\"funnel\":\"b2\""),
     .code = FN_REJ_UNKNOWN_FUNNEL},
    {.name = "funnel with quotes is escaped in the reason",
     .json = WITH("\"funnel\":\"a\\\"b\\\\c\""),
     .code = FN_REJ_UNKNOWN_FUNNEL,
     .reason = "funnel: \"a\\\"b\\\\c\" is not configured"},
    {.name = "non-ASCII funnel is escaped in the reason",
     .json = WITH("\"funnel\":\"\xF0\x9F\x98\x80\xE2\x80\xAEx\""),
     .code = FN_REJ_UNKNOWN_FUNNEL,
     .reason = "funnel: \"\\ud83d\\ude00\\u202ex\" is not configured"},
    {.name = "long funnel is cut in the reason",
     .json = WITH("\"funnel\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                  "0123456789abcdef0123456789abcdef\""),
     .code = FN_REJ_UNKNOWN_FUNNEL,
     .reason = "funnel: \"0123456789abcdef0123456789abcdef01234567\"... is not configured"},
    {.name = "funnel is a number",
     .json = WITH("\"funnel\":1"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "funnel: expected string, got integer"},
    {.name = "funnel is null", .json = WITH("\"funnel\":null"), .code = FN_REJ_WRONG_TYPE},

    /* ---- props ---- */
    {.name = "props is an array",
     .json = WITH("\"props\":[]"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "props: expected object, got array"},
    {.name = "props is a string", .json = WITH("\"props\":\"x\""), .code = FN_REJ_WRONG_TYPE},
    {.name = "props.campaign is a number",
     .json = PROPS("\"campaign\":5"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "props.campaign: expected string"},
    {.name = "props.url is an object",
     .json = PROPS("\"url\":{}"),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "props.url: expected string, got object"},
    {.name = "props.stage is null", .json = PROPS("\"stage\":null"), .code = FN_REJ_WRONG_TYPE},
    {.name = "props.source with a NUL",
     .json = PROPS("\"source\":\"g\\u0000\""),
     .code = FN_REJ_INVALID_VALUE,
     .reason = "props.source: contains a NUL byte"},
    {.name = "props.value is a string",
     .json = PROPS("\"value\":\"12\""),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "props.value: expected number, got string"},
    {.name = "props.value is a boolean",
     .json = PROPS("\"value\":true"),
     .code = FN_REJ_WRONG_TYPE},
    {.name = "props.value 1e300",
     .json = PROPS("\"value\":1e300"),
     .code = FN_REJ_INVALID_VALUE,
     .reason = "props.value: 1e+300 is out of range"},
    {.name = "props.value 1e15 + 1 as an integer",
     .json = PROPS("\"value\":1000000000000001"),
     .code = FN_REJ_INVALID_VALUE,
     .reason = "props.value: 1000000000000001 is out of range"},
    {.name = "props.value 1e400 fails the parse",
     .json = PROPS("\"value\":1e400"),
     .code = FN_REJ_INVALID_JSON},
    {.name = "props.marketing is a string",
     .json = PROPS("\"marketing\":\"yes\""),
     .code = FN_REJ_WRONG_TYPE,
     .reason = "props.marketing: expected boolean, got string"},
    {.name = "consent without props",
     .json = TYPED("consent", ""),
     .code = FN_REJ_MISSING_FIELD,
     .reason = "props.marketing: missing (required for type consent)"},
    {.name = "consent without props.marketing",
     .json = TYPED("consent", ",\"props\":{\"campaign\":\"c\"}"),
     .code = FN_REJ_MISSING_FIELD,
     .reason = "props.marketing: missing"},
    {.name = "consent with marketing null",
     .json = TYPED("consent", ",\"props\":{\"marketing\":null}"),
     .code = FN_REJ_WRONG_TYPE},
};

/* Reasons are printable ASCII, NUL-terminated within cap, with every \\u escape whole. */
static int reason_is_clean(const char *r, size_t cap)
{
    size_t n = strnlen(r, cap);
    if (n == cap)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (r[i] < 0x20 || r[i] > 0x7e)
            return 0;
        if (r[i] == '\\' && r[i + 1] == 'u')
            for (size_t k = 2; k < 6; k++)
                if (!strchr("0123456789abcdefABCDEF", r[i + k]) || r[i + k] == '\0')
                    return 0;
    }
    return 1;
}

static int is_zeroed(const fn_event_t *ev)
{
    static const fn_event_t zero;
    return memcmp(ev, &zero, sizeof zero) == 0;
}

static int str_same(fn_str_t a, fn_str_t b)
{
    return a.len == b.len && (!a.p) == (!b.p) && (!a.p || memcmp(a.p, b.p, a.len) == 0);
}

/* Cases the tree-free scanner read, and cases jansson read (after the scanner declined). */
static size_t n_scanned, n_tree;

/* fn_event_decode() against the reference, fn_event_decode_tree(): the same code, reason
 * and fields, whichever way the message was read. */
static void check_same_as_tree(const char *buf, size_t len, const fn_config_t *cfg,
                               fn_reject_t code, const char *reason, const fn_event_t *ev)
{
    fn_event_t t;
    char why[REASON_MAX];
    fn_reject_t tc = fn_event_decode_tree(buf, len, cfg, NOW_MS, &t, why, sizeof why);
    CHECK_STR(fn_reject_code(code), fn_reject_code(tc));
    CHECK_STR(reason, why);
    if (code == FN_REJ_NONE && tc == FN_REJ_NONE) {
        CHECK(t.doc != NULL && t.mem == NULL);
        CHECK(str_same(ev->event_id, t.event_id) && str_same(ev->lead_id, t.lead_id) &&
              str_same(ev->channel, t.channel) && str_same(ev->type, t.type) &&
              str_same(ev->funnel, t.funnel) && str_same(ev->campaign, t.campaign) &&
              str_same(ev->source, t.source) && str_same(ev->medium, t.medium) &&
              str_same(ev->url, t.url) && str_same(ev->currency, t.currency) &&
              str_same(ev->stage, t.stage));
        CHECK(ev->ts_ms == t.ts_ms && ev->kind == t.kind && ev->has_value == t.has_value &&
              ev->value == t.value && ev->has_marketing == t.has_marketing &&
              ev->marketing == t.marketing);
        CHECK_INT(fn_event_props_size(ev), fn_event_props_size(&t));
        if (ev->mem) {
            n_scanned++;
            CHECK(ev->doc == NULL && ev->props == NULL);
        } else {
            n_tree++;
            CHECK(ev->doc != NULL && ev->props_view == NULL);
        }
    }
    fn_event_clear(&t);
}

static void run_case(const tcase_t *c, const char *buf, size_t len)
{
    fn_event_t ev;
    char reason[REASON_MAX];
    memset(&ev, 0xA5, sizeof ev); /* decode must not trust what the caller left there */
    memset(reason, 'X', sizeof reason);
    int failures = fn_test_failures;
    fn_reject_t code =
        fn_event_decode(buf, len, &configs[c->cfg], NOW_MS, &ev, reason, sizeof reason);
    CHECK_STR(fn_reject_code(code), fn_reject_code(c->code));
    check_same_as_tree(buf, len, &configs[c->cfg], code, reason, &ev);
    CHECK(reason_is_clean(reason, sizeof reason));
    CHECK(strlen(reason) < 200); /* a short reason whatever the message size */
    if (c->code != FN_REJ_NONE) {
        CHECK(is_zeroed(&ev));
        CHECK(reason[0] != '\0');
        if (c->reason && !strstr(reason, c->reason)) {
            fn_test_failures++;
            fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", reason, c->reason);
        }
    } else if (code == FN_REJ_NONE) {
        const char *lead = c->lead_id ? c->lead_id : "L-1";
        size_t lead_len = c->lead_len ? c->lead_len : strlen(lead);
        CHECK_STR(reason, "");
        CHECK_INT(ev.ts_ms, c->ts_ms);
        CHECK_INT(ev.kind, c->kind);
        CHECK_INT(ev.lead_id.len, lead_len);
        CHECK(ev.lead_id.p && memcmp(ev.lead_id.p, lead, lead_len) == 0);
        CHECK(ev.lead_id.p && ev.lead_id.p[lead_len] == '\0');
        CHECK(ev.event_id.p && ev.event_id.len > 0 && ev.channel.p && ev.type.p);
        CHECK((ev.doc != NULL) != (ev.mem != NULL));
        CHECK_INT(ev.has_value, c->has_value);
        CHECK(ev.value == (c->has_value ? c->value : 0));
        CHECK_INT(ev.has_marketing, c->marketing != MK_ABSENT);
        CHECK_INT(ev.marketing, c->marketing == MK_TRUE);
        if (c->funnel)
            CHECK(ev.funnel.p && strcmp(ev.funnel.p, c->funnel) == 0 &&
                  ev.funnel.len == strlen(c->funnel));
        else
            CHECK(ev.funnel.p == NULL && ev.funnel.len == 0);
        fn_event_clear(&ev);
        CHECK(is_zeroed(&ev));
    }
    if (getenv("FN_TEST_VERBOSE")) /* to read every reason a user would see */
        printf("%-55.55s %-15s %s\n", c->name, fn_reject_code(code), reason);
    if (fn_test_failures != failures)
        fprintf(stderr, "  in case \"%s\": got %s, reason \"%s\"\n", c->name, fn_reject_code(code),
                reason);
}

static size_t run_table(void)
{
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        run_case(&cases[i], cases[i].json, cases[i].len ? cases[i].len : strlen(cases[i].json));
    return n;
}

/* A message whose "pad" field makes it exactly total bytes long. */
static char *padded(size_t total, size_t *len)
{
    static const char head[] = BASE ",\"pad\":\"";
    static const char tail[] = "\"}";
    char *b = malloc(total + 1);
    if (!b)
        return NULL;
    size_t pad = total - (sizeof head - 1) - (sizeof tail - 1);
    memcpy(b, head, sizeof head - 1);
    memset(b + sizeof head - 1, 'p', pad);
    memcpy(b + sizeof head - 1 + pad, tail, sizeof tail);
    *len = total;
    return b;
}

/* Cases built at run time; returns how many ran. */
static size_t run_generated(void)
{
    size_t n = 0, len;
    char *b;

    /* 10000-deep nesting, as the whole message and inside props: jansson stops at depth 2048
     * without recursing further, so this is invalid_json (and no stack overflow under ASan). */
    enum { DEEP = 10000 };
    b = malloc(2 * DEEP + 256);
    CHECK(b != NULL);
    if (b) {
        memset(b, '[', DEEP);
        memset(b + DEEP, ']', DEEP);
        tcase_t c = {.name = "10000-deep arrays",
                     .code = FN_REJ_INVALID_JSON,
                     .reason = "maximum parsing depth reached"};
        run_case(&c, b, 2 * DEEP), n++;

        memset(b, '{', DEEP);
        tcase_t c2 = {.name = "10000 open braces", .code = FN_REJ_INVALID_JSON};
        run_case(&c2, b, DEEP), n++;

        len = (size_t)sprintf(b, "%s", PROPS("\"deep\":"));
        len -= 2; /* drop the closing "}}" */
        memset(b + len, '[', DEEP);
        memset(b + len + DEEP, ']', DEEP);
        memcpy(b + len + 2 * DEEP, "}}", 2);
        tcase_t c3 = {.name = "10000-deep arrays inside props",
                      .cfg = CFG_BIG,
                      .code = FN_REJ_INVALID_JSON,
                      .reason = "maximum parsing depth reached"};
        run_case(&c3, b, len + 2 * DEEP + 2), n++;

        /* 2000 deep is within jansson's limit: free props are not ours to judge. */
        memset(b + len, '[', 2000);
        memset(b + len + 2000, ']', 2000);
        memcpy(b + len + 4000, "}}", 2);
        tcase_t c4 = {.name = "2000-deep arrays inside props", .ts_ms = 1795342500250LL};
        run_case(&c4, b, len + 4000 + 2), n++;
        free(b);
    }

    /* A 1 MB lead_id: the field rule rejects it when the size limit allows it, the size
     * limit first otherwise; neither reason quotes it. */
    enum { MB = 1024 * 1024 };
    static const char head[] =
        "{\"event_id\":\"e\",\"channel\":\"web\",\"type\":\"x\"," TS_OK ",\"lead_id\":\"";
    b = malloc(sizeof head + MB + 8);
    CHECK(b != NULL);
    if (b) {
        memcpy(b, head, sizeof head - 1);
        memset(b + sizeof head - 1, 'L', MB);
        memcpy(b + sizeof head - 1 + MB, "\"}", 2);
        len = sizeof head - 1 + MB + 2;
        tcase_t c = {.name = "1 MB lead_id, 2 MB limit",
                     .cfg = CFG_BIG,
                     .code = FN_REJ_INVALID_VALUE,
                     .reason = "lead_id: longer than 128 bytes (1048576)"};
        run_case(&c, b, len), n++;
        char want[80];
        snprintf(want, sizeof want, "message is %zu bytes, limit 65536", len);
        tcase_t c2 = {
            .name = "1 MB lead_id, default limit", .code = FN_REJ_OVERSIZE, .reason = want};
        run_case(&c2, b, len), n++;
        free(b);
    }

    /* The size limit is inclusive. */
    b = padded(65536, &len);
    if (b) {
        tcase_t c = {.name = "message of exactly max_message_bytes", .ts_ms = 1795342500250LL};
        run_case(&c, b, len), n++;
        free(b);
    }
    b = padded(65537, &len);
    if (b) {
        tcase_t c = {.name = "one byte over max_message_bytes",
                     .code = FN_REJ_OVERSIZE,
                     .reason = "message is 65537 bytes, limit 65536"};
        run_case(&c, b, len), n++;
        free(b);
    }

    /* 1000 props: accepted, all kept for the matchers. */
    b = malloc(64 * 1024);
    CHECK(b != NULL);
    if (b) {
        len = (size_t)sprintf(b, "%s", BASE ",\"props\":{");
        for (int i = 0; i < 1000; i++)
            len += (size_t)sprintf(b + len, "%s\"k%d\":%d", i ? "," : "", i, i);
        len += (size_t)sprintf(b + len, ",\"value\":7}}");
        tcase_t c = {.name = "1000 props", .ts_ms = 1795342500250LL, .has_value = 1, .value = 7};
        run_case(&c, b, len), n++;
        fn_event_t ev;
        char reason[REASON_MAX];
        CHECK_INT(
            fn_event_decode(b, len, &configs[CFG_DEFAULT], NOW_MS, &ev, reason, sizeof reason),
            FN_REJ_NONE);
        CHECK_INT(fn_event_props_size(&ev), 1001);
        CHECK(ev.doc != NULL); /* more members than the scanner's table: jansson reads it */
        fn_event_clear(&ev);
        free(b);
    }
    return n;
}

/* Reasons are cut to the caller's buffer, always terminated, never mid-character. */
static void test_reason_buffers(void)
{
    const char *msg = WITH("\"funnel\":\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"");
    fn_event_t ev;
    char reason[64];
    for (size_t cap = 1; cap <= sizeof reason; cap++) {
        memset(reason, 'X', sizeof reason);
        fn_reject_t r =
            fn_event_decode(msg, strlen(msg), &configs[CFG_DEFAULT], NOW_MS, &ev, reason, cap);
        CHECK_INT(r, FN_REJ_UNKNOWN_FUNNEL);
        CHECK(strlen(reason) < cap);
        CHECK(reason_is_clean(reason, cap));
        CHECK(reason[cap - 1] == '\0' || strlen(reason) < cap - 1);
        CHECK(cap == sizeof reason || reason[cap] == 'X'); /* nothing written past cap */
        CHECK(is_zeroed(&ev));
    }
    /* No reason buffer at all. */
    CHECK_INT(fn_event_decode("[]", 2, &configs[CFG_DEFAULT], NOW_MS, &ev, NULL, 0),
              FN_REJ_NOT_OBJECT);
    CHECK(is_zeroed(&ev));
    /* A control byte the parser quotes (a raw tab before a bad token) is escaped. */
    const char *tab = "{\"a\":\ttru}";
    CHECK_INT(fn_event_decode(tab, strlen(tab), &configs[CFG_DEFAULT], NOW_MS, &ev, reason,
                              sizeof reason),
              FN_REJ_INVALID_JSON);
    CHECK(reason_is_clean(reason, sizeof reason));
}

static void test_codes(void)
{
    static const char *const want[FN_REJ_COUNT] = {
        "none",           "oversize",    "invalid_utf8",  "invalid_json",    "not_object",
        "missing_field",  "wrong_type",  "invalid_value", "ts_out_of_range", "unknown_funnel",
        "lead_collision", "step_failed", "merge_refused"};
    for (int i = 0; i < FN_REJ_COUNT; i++)
        CHECK_STR(fn_reject_code((fn_reject_t)i), want[i]);
    CHECK_STR(fn_reject_code(FN_REJ_COUNT), "unknown");
    CHECK_STR(fn_reject_code((fn_reject_t)-1), "unknown");

    fn_event_t ev;
    memset(&ev, 0, sizeof ev);
    fn_event_clear(&ev); /* safe on a zeroed event */
    CHECK(is_zeroed(&ev));
}

/* schemas/dlq-headers.json, the users' reference, documents exactly the codes funneld emits. */
static void test_dlq_reference(void)
{
    json_error_t err;
    json_t *doc = json_load_file("schemas/dlq-headers.json", JSON_REJECT_DUPLICATES, &err);
    CHECK(doc != NULL);
    if (!doc) {
        fprintf(stderr, "  schemas/dlq-headers.json: %s\n", err.text);
        return;
    }
    json_t *codes = json_object_get(doc, "codes");
    CHECK(json_is_object(codes));
    for (int i = 1; i < FN_REJ_COUNT; i++) {
        json_t *c = json_object_get(codes, fn_reject_code((fn_reject_t)i));
        if (!c)
            fprintf(stderr, "  dlq-headers.json lacks %s\n", fn_reject_code((fn_reject_t)i));
        CHECK(json_is_string(json_object_get(c, "meaning")));
    }
    CHECK_INT(json_object_size(codes), FN_REJ_COUNT - 1);
    json_t *h = json_object_get(doc, "headers");
    CHECK(json_object_get(h, "funneld.error") && json_object_get(h, "funneld.reason") &&
          json_object_get(h, "funneld.source"));
    json_decref(doc);
}

/* The same message decoded twice gives equal results: nothing carries over between calls. */
static void test_reuse(void)
{
    const char *a = TYPED("consent", ",\"props\":{\"marketing\":true,\"value\":3}");
    const char *b = TS("\"2026-11-22T10:15:00Z\"");
    fn_event_t ev;
    char reason[REASON_MAX];
    CHECK_INT(fn_event_decode(a, strlen(a), &configs[0], NOW_MS, &ev, reason, sizeof reason), 0);
    fn_event_clear(&ev);
    CHECK_INT(fn_event_decode(b, strlen(b), &configs[0], NOW_MS, &ev, reason, sizeof reason), 0);
    CHECK_INT(ev.kind, FN_EV_TOUCHPOINT);
    CHECK(!ev.has_value && !ev.has_marketing && fn_event_props_size(&ev) == 0);
    CHECK(ev.campaign.p == NULL && ev.stage.p == NULL);
    fn_event_clear(&ev);
    /* Known props point into the document. */
    const char *c = PROPS("\"campaign\":\"spring\",\"stage\":\"\"");
    CHECK_INT(fn_event_decode(c, strlen(c), &configs[0], NOW_MS, &ev, reason, sizeof reason), 0);
    CHECK(ev.campaign.p && strcmp(ev.campaign.p, "spring") == 0 && ev.campaign.len == 6);
    CHECK(ev.stage.p && ev.stage.len == 0);
    CHECK(fn_event_props_size(&ev) == 2);
    fn_event_clear(&ev);
}

/* The schema samples (tests/schemas/samples, checked against the JSON Schema by
 * test_schemas.py) get the same verdict from the decoder, so the schema and the code agree.
 * Paths are relative to the source tree, where ctest runs unit tests. */
static void test_schema_samples(void)
{
    static const struct {
        const char *file;
        fn_reject_t code;
        fn_event_kind_t kind;
    } samples[] = {
        {"touchpoint-valid-1.json", FN_REJ_NONE, FN_EV_TOUCHPOINT},
        {"touchpoint-valid-2.json", FN_REJ_NONE, FN_EV_TOUCHPOINT},
        {"touchpoint-valid-3.json", FN_REJ_NONE, FN_EV_CONSENT},
        {"touchpoint-valid-4.json", FN_REJ_NONE, FN_EV_ERASE},
        {"touchpoint-valid-5.json", FN_REJ_NONE, FN_EV_TOUCHPOINT},
        {"touchpoint-valid-6.json", FN_REJ_NONE, FN_EV_COST},
        {"touchpoint-invalid-1.json", FN_REJ_MISSING_FIELD, 0},
        {"touchpoint-invalid-2.json", FN_REJ_WRONG_TYPE, 0},
        {"touchpoint-invalid-3.json", FN_REJ_INVALID_VALUE, 0},
        {"touchpoint-invalid-4.json", FN_REJ_MISSING_FIELD, 0},
        {"touchpoint-invalid-5.json", FN_REJ_WRONG_TYPE, 0},
        {"touchpoint-invalid-6.json", FN_REJ_INVALID_VALUE, 0},
        {"touchpoint-invalid-7.json", FN_REJ_WRONG_TYPE, 0},
    };
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char path[128], buf[4096], reason[REASON_MAX];
        snprintf(path, sizeof path, "tests/schemas/samples/%s", samples[i].file);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f) {
            fprintf(stderr, "  cannot open %s (run from the source tree)\n", path);
            continue;
        }
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fn_event_t ev;
        fn_reject_t code =
            fn_event_decode(buf, len, &configs[CFG_DEFAULT], NOW_MS, &ev, reason, sizeof reason);
        if (code != samples[i].code)
            fprintf(stderr, "  %s: %s (%s)\n", samples[i].file, fn_reject_code(code), reason);
        CHECK_INT(code, samples[i].code);
        if (code == FN_REJ_NONE)
            CHECK_INT(ev.kind, samples[i].kind);
        fn_event_clear(&ev);
    }
}

/* The hostile corpus the end-to-end test sends through Kafka (tests/hostile/manifest.json):
 * every case kept as a file gets the verdict the manifest names (the generated big ones are
 * covered by run_generated()), so a decoder change that moves a case is caught here first. */
static size_t test_hostile_corpus(void)
{
    json_error_t err;
    json_t *doc = json_load_file("tests/hostile/manifest.json", JSON_REJECT_DUPLICATES, &err);
    CHECK(doc != NULL);
    if (!doc) {
        fprintf(stderr, "  tests/hostile/manifest.json: %s (run from the source tree)\n", err.text);
        return 0;
    }
    size_t i, n = 0;
    json_t *c;
    json_array_foreach (json_object_get(doc, "cases"), i, c) {
        const char *file = json_string_value(json_object_get(c, "file"));
        const char *expect = json_string_value(json_object_get(c, "expect"));
        if (!file || !expect)
            continue; /* generated or tombstone: built at run time elsewhere */
        char path[256];
        snprintf(path, sizeof path, "tests/hostile/cases/%s", file);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        if (!f)
            continue;
        static char buf[65536 + 1];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        fn_reject_t want = FN_REJ_NONE;
        for (int r = 1; r < FN_REJ_COUNT; r++)
            if (strcmp(fn_reject_code((fn_reject_t)r), expect) == 0)
                want = (fn_reject_t)r;
        CHECK(want != FN_REJ_NONE || strcmp(expect, "accept") == 0);
        fn_event_t ev;
        char reason[REASON_MAX];
        fn_reject_t got =
            fn_event_decode(buf, len, &configs[CFG_DEFAULT], NOW_MS, &ev, reason, sizeof reason);
        if (got != want)
            fprintf(stderr, "  hostile %s: got %s (%s), want %s\n", file, fn_reject_code(got),
                    reason, expect);
        CHECK_INT(got, want);
        if (!reason_is_clean(reason, sizeof reason))
            fprintf(stderr, "  hostile %s: unclean reason \"%s\"\n", file, reason);
        CHECK(reason_is_clean(reason, sizeof reason));
        const char *lead = json_string_value(json_object_get(c, "lead_id"));
        if (got == FN_REJ_NONE && lead)
            CHECK(ev.lead_id.len == strlen(lead) &&
                  memcmp(ev.lead_id.p, lead, ev.lead_id.len) == 0);
        fn_event_clear(&ev);
        n++;
    }
    json_decref(doc);
    CHECK(n >= 150);
    return n;
}

/* Which reader takes which message, and props matched alike through either. */
static void test_scanner(void)
{
    static const struct {
        const char *json;
        int scanned; /* 1: the tree-free scanner reads it; 0: jansson does */
    } paths[] = {
        {BASE "}", 1},
        {PROPS("\"campaign\":\"spring\",\"value\":12.5,\"vip\":true,\"n\":null"), 1},
        {PROPS("\"campaign\":\"caf\\u00e9 \\\"q\\\" \\/\\n\""), 1},
        {PROPS("\"items\":[1,2]"), 0},            /* a nested value */
        {PROPS("\"cart\":{\"n\":1}"), 0},         /* an object in props */
        {WITH("\"extra\":[]"), 0},                /* a nested top-level value */
        {WITH("\"k\\u0065y\":1"), 0},             /* an escape in a key */
        {WITH("\"big\":1234567890123456789"), 0}, /* 19 digits */
        {WITH("\"s\":\"\\ud83d\\ude00\""), 0},    /* a surrogate pair */
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        fn_event_t ev;
        char reason[REASON_MAX];
        const char *m = paths[i].json;
        fn_reject_t r = fn_event_decode(m, strlen(m), &configs[CFG_DEFAULT], NOW_MS, &ev, reason,
                                        sizeof reason);
        CHECK_INT(r, FN_REJ_NONE);
        check_same_as_tree(m, strlen(m), &configs[CFG_DEFAULT], r, reason, &ev);
        if ((ev.mem != NULL) != paths[i].scanned) {
            fn_test_failures++;
            fprintf(stderr, "  %s: scanned %d\n", m, ev.mem != NULL);
        }
        fn_event_clear(&ev);
    }

    const char *m = PROPS("\"s\":\"proposal\",\"i\":1,\"r\":1.5,\"t\":true,\"f\":false,"
                          "\"z\":null,\"one\":\"1\"");
    const char *wants[] = {"\"proposal\"", "\"propos\"", "1",    "1.0",   "1.5",       "2",
                           "true",         "false",      "null", "\"1\"", "{\"a\":1}", "[1]"};
    const char *keys[] = {"s", "i", "r", "t", "f", "z", "one", "absent"};
    fn_event_t ev, tree;
    char reason[REASON_MAX];
    CHECK_INT(
        fn_event_decode(m, strlen(m), &configs[CFG_DEFAULT], NOW_MS, &ev, reason, sizeof reason),
        FN_REJ_NONE);
    CHECK_INT(fn_event_decode_tree(m, strlen(m), &configs[CFG_DEFAULT], NOW_MS, &tree, reason,
                                   sizeof reason),
              FN_REJ_NONE);
    CHECK(ev.mem != NULL && tree.doc != NULL);
    size_t equal = 0;
    for (size_t w = 0; w < sizeof wants / sizeof wants[0]; w++) {
        json_t *want = json_loads(wants[w], JSON_DECODE_ANY, NULL);
        CHECK(want != NULL);
        for (size_t k = 0; want && k < sizeof keys / sizeof keys[0]; k++) {
            bool a = fn_event_prop_equals(&ev, keys[k], want);
            bool b = fn_event_prop_equals(&tree, keys[k], want);
            equal += a;
            if (a != b) {
                fn_test_failures++;
                fprintf(stderr, "  props.%s == %s: scanned %d, tree %d\n", keys[k], wants[w], a, b);
            }
        }
        json_decref(want);
    }
    /* "proposal", 1, 1.5, true, false, null and "1", each once; 1.0 is a real, not 1 */
    CHECK_INT(equal, 7);
    fn_event_clear(&ev);
    fn_event_clear(&tree);
}

/* identify (SPEC §10): previous_id required, a string id, not lead_id, neither blocked. */
static void test_identify(void)
{
    char *blocked[] = {"anonymous", "0"};
    fn_config_t cfg = configs[CFG_DEFAULT];
    cfg.identity_blocked = blocked;
    cfg.n_identity_blocked = 2;
    static const struct {
        const char *props;
        fn_reject_t code;
        const char *reason;
    } idc[] = {
        {",\"props\":{\"previous_id\":\"anon-1\"}", FN_REJ_NONE, NULL},
        {"", FN_REJ_MISSING_FIELD, "props.previous_id: missing"},
        {",\"props\":{}", FN_REJ_MISSING_FIELD, "props.previous_id: missing"},
        {",\"props\":{\"previous_id\":7}", FN_REJ_WRONG_TYPE, "props.previous_id: expected string"},
        {",\"props\":{\"previous_id\":\"\"}", FN_REJ_INVALID_VALUE, "props.previous_id: empty"},
        {",\"props\":{\"previous_id\":\"L-1\"}", FN_REJ_INVALID_VALUE, "equals lead_id"},
        {",\"props\":{\"previous_id\":\"ANONYMOUS\"}", FN_REJ_MERGE_REFUSED,
         "identity.blocked: props.previous_id"},
        {",\"props\":{\"previous_id\":\"0\"}", FN_REJ_MERGE_REFUSED, "identity.blocked"},
    };
    for (size_t i = 0; i < sizeof idc / sizeof idc[0]; i++) {
        char msg[512], reason[REASON_MAX];
        snprintf(msg, sizeof msg,
                 "{\"event_id\":\"e-1\",\"lead_id\":\"L-1\",\"ts\":1795340000000,"
                 "\"channel\":\"web\",\"type\":\"identify\"%s}",
                 idc[i].props);
        fn_event_t ev;
        for (int tree = 0; tree < 2; tree++) {
            fn_reject_t r =
                tree ? fn_event_decode_tree(msg, strlen(msg), &cfg, NOW_MS, &ev, reason,
                                            sizeof reason)
                     : fn_event_decode(msg, strlen(msg), &cfg, NOW_MS, &ev, reason, sizeof reason);
            CHECK_INT(r, idc[i].code);
            if (r != FN_REJ_NONE) {
                if (idc[i].reason && !strstr(reason, idc[i].reason))
                    fprintf(stderr, "identify %zu: reason \"%s\"\n", i, reason);
                CHECK(!idc[i].reason || strstr(reason, idc[i].reason));
            } else {
                CHECK_INT(ev.kind, FN_EV_IDENTIFY);
                CHECK(ev.previous_id.len == 6 && memcmp(ev.previous_id.p, "anon-1", 6) == 0);
            }
            fn_event_clear(&ev);
        }
    }
    /* a blocked lead_id is refused too */
    const char *m = "{\"event_id\":\"e\",\"lead_id\":\"Anonymous\",\"ts\":1795340000000,"
                    "\"channel\":\"web\",\"type\":\"identify\",\"props\":{\"previous_id\":\"x\"}}";
    fn_event_t ev;
    char reason[REASON_MAX];
    CHECK_INT(fn_event_decode(m, strlen(m), &cfg, NOW_MS, &ev, reason, sizeof reason),
              FN_REJ_MERGE_REFUSED);
    CHECK(strstr(reason, "identity.blocked: lead_id") != NULL);
}

/* cost (SPEC §11): props.amount a plain number, 0 to 1e10, kept in hundredths; the event must
 * reach a funnel with attribution (only those keep cost figures). */
static void test_cost(void)
{
    fn_funnel_t fs[] = {{.name = "b2b", .attribution = {.enabled = true}}, {.name = "aida"}};
    fn_config_t cfg = configs[CFG_DEFAULT];
    cfg.funnels = fs;
    cfg.n_funnels = 2;
    fn_config_t none = cfg;
    none.n_funnels = 0; /* no funnel with attribution */
    static const struct {
        const char *extra;
        int cfg; /* 0: b2b has attribution, 1: no funnel */
        fn_reject_t code;
        const char *reason;
        long long cents;
    } kc[] = {
        {",\"props\":{\"amount\":12.34,\"campaign\":\"spring\"}", 0, FN_REJ_NONE, NULL, 1234},
        {",\"props\":{\"amount\":0}", 0, FN_REJ_NONE, NULL, 0},
        {",\"props\":{\"amount\":0.005}", 0, FN_REJ_NONE, NULL, 1}, /* rounded to a cent */
        {",\"props\":{\"amount\":10000000000}", 0, FN_REJ_NONE, NULL, 1000000000000LL},
        {",\"funnel\":\"b2b\",\"props\":{\"amount\":5}", 0, FN_REJ_NONE, NULL, 500},
        {"", 0, FN_REJ_MISSING_FIELD, "props.amount: missing (required for type cost)", 0},
        {",\"props\":{\"campaign\":\"c\"}", 0, FN_REJ_MISSING_FIELD, "props.amount: missing", 0},
        {",\"props\":{\"amount\":\"12.5\"}", 0, FN_REJ_WRONG_TYPE,
         "props.amount: expected number, got string", 0},
        {",\"props\":{\"amount\":\"NaN\"}", 0, FN_REJ_WRONG_TYPE, "props.amount: expected number",
         0},
        {",\"props\":{\"amount\":null}", 0, FN_REJ_WRONG_TYPE, "props.amount: expected number", 0},
        {",\"props\":{\"amount\":true}", 0, FN_REJ_WRONG_TYPE, "props.amount: expected number", 0},
        {",\"props\":{\"amount\":-1}", 0, FN_REJ_INVALID_VALUE,
         "props.amount: -1 is out of range (a cost is 0 to 1e10)", 0},
        {",\"props\":{\"amount\":-0.01}", 0, FN_REJ_INVALID_VALUE, "out of range", 0},
        {",\"props\":{\"amount\":10000000000.01}", 0, FN_REJ_INVALID_VALUE, "out of range", 0},
        {",\"props\":{\"amount\":1e308}", 0, FN_REJ_INVALID_VALUE, "out of range", 0},
        {",\"props\":{\"amount\":1e999}", 0, FN_REJ_INVALID_JSON, NULL, 0},
        {",\"props\":{\"amount\":NaN}", 0, FN_REJ_INVALID_JSON, NULL, 0},
        {",\"funnel\":\"aida\",\"props\":{\"amount\":5}", 0, FN_REJ_INVALID_VALUE,
         "funnel: aida keeps no cost figures (it has no attribution)", 0},
        {",\"props\":{\"amount\":5}", 1, FN_REJ_INVALID_VALUE, "no funnel keeps cost figures", 0},
    };
    for (size_t i = 0; i < sizeof kc / sizeof kc[0]; i++) {
        char msg[512], reason[REASON_MAX];
        snprintf(msg, sizeof msg,
                 "{\"event_id\":\"e-1\",\"lead_id\":\"acct-1\",\"ts\":1795340000000,"
                 "\"channel\":\"ads\",\"type\":\"cost\"%s}",
                 kc[i].extra);
        const fn_config_t *c = kc[i].cfg ? &none : &cfg;
        for (int tree = 0; tree < 2; tree++) {
            fn_event_t ev;
            fn_reject_t r =
                tree ? fn_event_decode_tree(msg, strlen(msg), c, NOW_MS, &ev, reason, sizeof reason)
                     : fn_event_decode(msg, strlen(msg), c, NOW_MS, &ev, reason, sizeof reason);
            if (r != kc[i].code || (r && kc[i].reason && !strstr(reason, kc[i].reason)))
                fprintf(stderr, "cost %zu (%s): %d \"%s\"\n", i, tree ? "tree" : "scanner", r,
                        r ? reason : "");
            CHECK_INT(r, kc[i].code);
            if (r != FN_REJ_NONE) {
                CHECK(!kc[i].reason || strstr(reason, kc[i].reason));
            } else {
                CHECK_INT(ev.kind, FN_EV_COST);
                CHECK_INT(ev.cost_cents, kc[i].cents);
            }
            fn_event_clear(&ev);
        }
    }
}

int main(void)
{
    make_configs();
    test_identify();
    test_cost();
    size_t n = run_table();
    n += run_generated();
    n += test_hostile_corpus();
    test_reason_buffers();
    test_codes();
    test_reuse();
    test_schema_samples();
    test_dlq_reference();
    test_scanner();
    /* Both readers took part: a test that only ever exercised one would prove nothing. */
    CHECK(n_scanned > 20 && n_tree > 5);
    printf("test_event: %zu message cases (%zu accepted read by the scanner, %zu by jansson)\n", n,
           n_scanned, n_tree);
    return fn_test_result("test_event");
}
