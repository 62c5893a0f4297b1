/*
 * test_segment.c — Segment-spec messages read as touchpoints (fn_event_decode_segment, SPEC
 * §10 and issue 20's mapping): a table of calls, valid and hostile, each with the touchpoint
 * fields it must give or the reject code and the Segment field the reason must name; calls
 * that are no touchpoint (group, identify of one id) must decode as ignored, with their
 * reason. Every accepted case is also written by hand as the native message it stands for,
 * and both must decode to the same event, field by field and prop by prop: the two formats
 * mean the same.
 */
#include <glob.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fn_test.h"
#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/segment.h"

#define NOW_MS 1795348800000LL /* 2026-11-22T12:00:00Z */
#define REASON_MAX 256

/* Two configs: one with a segment section (event and channel maps, no default map), one
 * with segment's defaults. */
static const char *const CONFIG_MAPPED =
    "{\"funnels\":[{\"name\":\"b2b\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"x\"}]}]}],"
    "\"segment\":{\"events\":{\"Order Completed\":\"purchase\",\"Product Added\":\"cart_add\","
    "\"Consent Given\":\"consent\"},"
    "\"channels\":{\"email\":\"email\",\"cpc\":\"ads\"},\"default_channel\":\"web\"}}";
static const char *const CONFIG_DEFAULT =
    "{\"funnels\":[{\"name\":\"b2b\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"x\"}]}]}]}";

enum { MAPPED = 0, DEFAULTS };
static fn_config_t *cfgs[2];

typedef struct scase {
    const char *name;
    int cfg;
    const char *json;
    fn_reject_t code;
    const char *reason;  /* text the reason must contain (rejected cases) */
    fn_ignore_t ignored; /* accepted: FN_IGN_NONE for a touchpoint */
    const char *native;  /* accepted touchpoints: the same message in funneld's format */
    const char *lead_id; /* accepted touchpoints: checked besides the native comparison */
    const char *type;
    const char *channel;
} scase_t;

#define TS "\"timestamp\":\"2026-11-22T10:00:00.000Z\""
#define NTS "\"ts\":\"2026-11-22T10:00:00.000Z\""

static const scase_t cases[] = {
    /* ---- track ---- */
    {"track, mapped name, utm context, revenue", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m1\",\"userId\":\"u1\",\"anonymousId\":\"a1\","
     "\"event\":\"Order Completed\"," TS ",\"properties\":{\"revenue\":99.5,\"currency\":\"EUR\"},"
     "\"context\":{\"campaign\":{\"name\":\"spring\",\"source\":\"newsletter\","
     "\"medium\":\"Email\"}}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m1\",\"lead_id\":\"u1\"," NTS ",\"channel\":\"email\",\"type\":\"purchase\","
     "\"props\":{\"revenue\":99.5,\"currency\":\"EUR\",\"campaign\":\"spring\","
     "\"source\":\"newsletter\",\"medium\":\"Email\",\"value\":99.5}}",
     "u1", "purchase", "email"},
    {"track, anonymous (userId null), name not mapped", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m2\",\"userId\":null,\"anonymousId\":\"a2\","
     "\"event\":\"Signed Up\"," TS "}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m2\",\"lead_id\":\"a2\"," NTS ",\"channel\":\"web\",\"type\":\"Signed Up\"}",
     "a2", "Signed Up", "web"},
    {"track, empty userId means anonymous", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m3\",\"userId\":\"\",\"anonymousId\":\"a3\","
     "\"event\":\"Product Added\"," TS ",\"properties\":{}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m3\",\"lead_id\":\"a3\"," NTS ",\"channel\":\"web\",\"type\":\"cart_add\","
     "\"props\":{}}",
     "a3", "cart_add", "web"},
    {"track, properties win over the context's campaign", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m4\",\"userId\":\"u4\",\"event\":\"Demo Requested\"," TS
     ",\"properties\":{\"campaign\":\"explicit\",\"medium\":\"CPC\",\"value\":10},"
     "\"context\":{\"campaign\":{\"name\":\"ambient\",\"medium\":\"email\",\"term\":\"x\"}}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m4\",\"lead_id\":\"u4\"," NTS ",\"channel\":\"ads\","
     "\"type\":\"Demo Requested\",\"props\":{\"campaign\":\"explicit\",\"medium\":\"CPC\","
     "\"value\":10}}",
     "u4", "Demo Requested", "ads"},
    {"track, unknown medium takes the default channel", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m5\",\"userId\":\"u5\",\"event\":\"x\"," TS
     ",\"context\":{\"campaign\":{\"medium\":\"carrier-pigeon\"}}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m5\",\"lead_id\":\"u5\"," NTS ",\"channel\":\"web\",\"type\":\"x\","
     "\"props\":{\"medium\":\"carrier-pigeon\"}}",
     "u5", "x", "web"},
    {"track, default channel map: paid_social", DEFAULTS,
     "{\"type\":\"track\",\"messageId\":\"m6\",\"userId\":\"u6\",\"event\":\"ad_click\"," TS
     ",\"context\":{\"campaign\":{\"medium\":\"Paid_Social\",\"source\":\"fb\"}}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m6\",\"lead_id\":\"u6\"," NTS ",\"channel\":\"social\","
     "\"type\":\"ad_click\",\"props\":{\"medium\":\"Paid_Social\",\"source\":\"fb\"}}",
     "u6", "ad_click", "social"},
    {"track, originalTimestamp when there is no timestamp", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m7\",\"userId\":\"u7\",\"event\":\"x\","
     "\"originalTimestamp\":\"2026-11-22T09:00:00+01:00\"}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m7\",\"lead_id\":\"u7\",\"ts\":\"2026-11-22T08:00:00Z\","
     "\"channel\":\"web\",\"type\":\"x\"}",
     "u7", "x", "web"},
    {"track, epoch-ms timestamp", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m8\",\"userId\":\"u8\",\"event\":\"x\","
     "\"timestamp\":1795341600000}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m8\",\"lead_id\":\"u8\",\"ts\":1795341600000,\"channel\":\"web\","
     "\"type\":\"x\"}",
     "u8", "x", "web"},
    {"track mapped to consent", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"m9\",\"userId\":\"u9\",\"event\":\"Consent Given\"," TS
     ",\"properties\":{\"marketing\":false}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"m9\",\"lead_id\":\"u9\"," NTS ",\"channel\":\"web\",\"type\":\"consent\","
     "\"props\":{\"marketing\":false}}",
     "u9", "consent", "web"},
    /* ---- page, screen ---- */
    {"page: page_view with the page's url", MAPPED,
     "{\"type\":\"page\",\"messageId\":\"p1\",\"anonymousId\":\"a10\",\"name\":\"Pricing\"," TS
     ",\"context\":{\"page\":{\"url\":\"https://x.test/pricing\"}}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"p1\",\"lead_id\":\"a10\"," NTS ",\"channel\":\"web\",\"type\":\"page_view\","
     "\"props\":{\"url\":\"https://x.test/pricing\"}}",
     "a10", "page_view", "web"},
    {"screen: page_view", MAPPED,
     "{\"type\":\"screen\",\"messageId\":\"s1\",\"userId\":\"u11\",\"name\":\"Home\"," TS "}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"s1\",\"lead_id\":\"u11\"," NTS ",\"channel\":\"web\","
     "\"type\":\"page_view\"}",
     "u11", "page_view", "web"},
    /* ---- identify, alias, group ---- */
    {"identify of two ids: a merge of the anonymous id", MAPPED,
     "{\"type\":\"identify\",\"messageId\":\"i1\",\"userId\":\"u12\",\"anonymousId\":\"a12\"," TS
     ",\"traits\":{\"email\":\"x@y.test\"}}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"i1\",\"lead_id\":\"u12\"," NTS ",\"channel\":\"web\",\"type\":\"identify\","
     "\"props\":{\"previous_id\":\"a12\"}}",
     "u12", "identify", "web"},
    {"alias: a merge of previousId", MAPPED,
     "{\"type\":\"alias\",\"messageId\":\"al1\",\"userId\":\"u13\",\"previousId\":\"old13\"," TS
     "}",
     FN_REJ_NONE, NULL, FN_IGN_NONE,
     "{\"event_id\":\"al1\",\"lead_id\":\"u13\"," NTS ",\"channel\":\"web\","
     "\"type\":\"identify\",\"props\":{\"previous_id\":\"old13\"}}",
     "u13", "identify", "web"},
    {"identify of one id: traits only", MAPPED,
     "{\"type\":\"identify\",\"messageId\":\"i2\",\"userId\":\"u14\"," TS
     ",\"traits\":{\"plan\":\"pro\"}}",
     FN_REJ_NONE, NULL, FN_IGN_SEGMENT_IDENTIFY, NULL, NULL, NULL, NULL},
    {"identify of an anonymous id only", MAPPED,
     "{\"type\":\"identify\",\"messageId\":\"i3\",\"userId\":null,\"anonymousId\":\"a15\"," TS "}",
     FN_REJ_NONE, NULL, FN_IGN_SEGMENT_IDENTIFY, NULL, NULL, NULL, NULL},
    {"group", MAPPED,
     "{\"type\":\"group\",\"messageId\":\"g1\",\"userId\":\"u16\",\"groupId\":\"acme\"," TS "}",
     FN_REJ_NONE, NULL, FN_IGN_SEGMENT_GROUP, NULL, NULL, NULL, NULL},
    /* ---- refused: Segment's own fields ---- */
    {"no type", MAPPED, "{\"messageId\":\"r1\",\"userId\":\"u\",\"event\":\"x\"," TS "}",
     FN_REJ_MISSING_FIELD, "type: missing", 0, NULL, NULL, NULL, NULL},
    {"type not a string", MAPPED, "{\"type\":5,\"messageId\":\"r2\",\"userId\":\"u\"," TS "}",
     FN_REJ_WRONG_TYPE, "type: expected string, got integer", 0, NULL, NULL, NULL, NULL},
    {"type not a call", MAPPED, "{\"type\":\"batch\",\"messageId\":\"r3\",\"userId\":\"u\"," TS "}",
     FN_REJ_INVALID_VALUE, "type: not a Segment call", 0, NULL, NULL, NULL, NULL},
    {"track without event", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r4\",\"userId\":\"u\"," TS "}", FN_REJ_MISSING_FIELD,
     "event: missing", 0, NULL, NULL, NULL, NULL},
    {"event not a string", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r5\",\"userId\":\"u\",\"event\":[1]," TS "}",
     FN_REJ_WRONG_TYPE, "event: expected string, got array", 0, NULL, NULL, NULL, NULL},
    {"no id at all", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r6\",\"userId\":null,\"event\":\"x\"," TS "}",
     FN_REJ_MISSING_FIELD, "userId, anonymousId: missing", 0, NULL, NULL, NULL, NULL},
    {"alias without previousId", MAPPED,
     "{\"type\":\"alias\",\"messageId\":\"r7\",\"userId\":\"u\"," TS "}", FN_REJ_MISSING_FIELD,
     "previousId: missing", 0, NULL, NULL, NULL, NULL},
    {"alias without userId", MAPPED,
     "{\"type\":\"alias\",\"messageId\":\"r8\",\"previousId\":\"p\"," TS "}", FN_REJ_MISSING_FIELD,
     "userId: missing", 0, NULL, NULL, NULL, NULL},
    {"properties not an object", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r9\",\"userId\":\"u\",\"event\":\"x\"," TS
     ",\"properties\":[1,2]}",
     FN_REJ_WRONG_TYPE, "properties: expected object, got array", 0, NULL, NULL, NULL, NULL},
    {"context not an object", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r10\",\"userId\":\"u\",\"event\":\"x\"," TS
     ",\"context\":\"web\"}",
     FN_REJ_WRONG_TYPE, "context: expected object, got string", 0, NULL, NULL, NULL, NULL},
    {"campaign not an object", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r11\",\"userId\":\"u\",\"event\":\"x\"," TS
     ",\"context\":{\"campaign\":true}}",
     FN_REJ_WRONG_TYPE, "context.campaign: expected object, got boolean", 0, NULL, NULL, NULL,
     NULL},
    /* ---- refused by the touchpoint checks, named by the Segment field ---- */
    {"no messageId", MAPPED, "{\"type\":\"track\",\"userId\":\"u\",\"event\":\"x\"," TS "}",
     FN_REJ_MISSING_FIELD, "messageId (event_id): missing", 0, NULL, NULL, NULL, NULL},
    {"userId a number", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r12\",\"userId\":42,\"event\":\"x\"," TS "}",
     FN_REJ_WRONG_TYPE, "userId (lead_id): expected string", 0, NULL, NULL, NULL, NULL},
    {"anonymousId too long", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r13\",\"anonymousId\":\""
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"event\":\"x\"," TS "}",
     FN_REJ_INVALID_VALUE, "anonymousId (lead_id)", 0, NULL, NULL, NULL, NULL},
    {"no timestamp", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r14\",\"userId\":\"u\",\"event\":\"x\"}",
     FN_REJ_MISSING_FIELD, "timestamp (ts): missing", 0, NULL, NULL, NULL, NULL},
    {"originalTimestamp not a time", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r15\",\"userId\":\"u\",\"event\":\"x\","
     "\"originalTimestamp\":\"yesterday\"}",
     FN_REJ_INVALID_VALUE, "originalTimestamp (ts)", 0, NULL, NULL, NULL, NULL},
    {"timestamp far in the future", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r16\",\"userId\":\"u\",\"event\":\"x\","
     "\"timestamp\":\"2030-01-01T00:00:00Z\"}",
     FN_REJ_TS_RANGE, "timestamp (ts)", 0, NULL, NULL, NULL, NULL},
    {"event name too long for a type", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r17\",\"userId\":\"u\",\"event\":\""
     "0123456789012345678901234567890123456789012345678901234567890123456789\"," TS "}",
     FN_REJ_INVALID_VALUE, "event (type)", 0, NULL, NULL, NULL, NULL},
    {"properties.value a string", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r18\",\"userId\":\"u\",\"event\":\"x\"," TS
     ",\"properties\":{\"value\":\"ten\"}}",
     FN_REJ_WRONG_TYPE, "properties.value (props.value): expected number", 0, NULL, NULL, NULL,
     NULL},
    {"properties.revenue a string", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r19\",\"userId\":\"u\",\"event\":\"x\"," TS
     ",\"properties\":{\"revenue\":\"ten\"}}",
     FN_REJ_WRONG_TYPE, "properties.revenue (props.value): expected number", 0, NULL, NULL, NULL,
     NULL},
    {"campaign name a number", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r20\",\"userId\":\"u\",\"event\":\"x\"," TS
     ",\"context\":{\"campaign\":{\"name\":5}}}",
     FN_REJ_WRONG_TYPE, "context.campaign.name (props.campaign): expected string", 0, NULL, NULL,
     NULL, NULL},
    {"a consent without marketing", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"r21\",\"userId\":\"u\",\"event\":\"Consent Given\"," TS
     "}",
     FN_REJ_MISSING_FIELD, "properties.marketing (props.marketing): missing", 0, NULL, NULL, NULL,
     NULL},
    /* ---- refused before any mapping ---- */
    {"not JSON", MAPPED, "{\"type\":\"track\",", FN_REJ_INVALID_JSON, NULL, 0, NULL, NULL, NULL,
     NULL},
    {"not an object", MAPPED, "[\"track\"]", FN_REJ_NOT_OBJECT, NULL, 0, NULL, NULL, NULL, NULL},
    {"duplicate keys", MAPPED,
     "{\"type\":\"track\",\"type\":\"page\",\"messageId\":\"d\",\"userId\":\"u\"," TS "}",
     FN_REJ_INVALID_JSON, NULL, 0, NULL, NULL, NULL, NULL},
    {"invalid UTF-8", MAPPED,
     "{\"type\":\"track\",\"messageId\":\"x\",\"userId\":\"\xc3\x28\",\"event\":\"x\"," TS "}",
     FN_REJ_INVALID_UTF8, NULL, 0, NULL, NULL, NULL, NULL},
};

static bool str_eq(fn_str_t a, fn_str_t b)
{
    return (!a.p && !b.p) || (a.p && b.p && a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
}

/* Every touchpoint field and every prop of a (Segment) equal b's (native). */
static void check_same_event(const char *name, const fn_event_t *a, const fn_event_t *b)
{
    bool same = a->kind == b->kind && str_eq(a->event_id, b->event_id) &&
                str_eq(a->lead_id, b->lead_id) && str_eq(a->channel, b->channel) &&
                str_eq(a->type, b->type) && str_eq(a->funnel, b->funnel) && a->ts_ms == b->ts_ms &&
                str_eq(a->campaign, b->campaign) && str_eq(a->source, b->source) &&
                str_eq(a->medium, b->medium) && str_eq(a->url, b->url) &&
                str_eq(a->currency, b->currency) && a->has_value == b->has_value &&
                (!a->has_value || a->value == b->value) && a->has_marketing == b->has_marketing &&
                a->marketing == b->marketing && fn_event_props_size(a) == fn_event_props_size(b);
    const char *key;
    json_t *v;
    if (b->props)
        json_object_foreach (b->props, key, v)
            same = same && fn_event_prop_equals(a, key, v);
    CHECK(same);
    if (!same)
        fprintf(stderr, "  %s: the Segment call and its native twin decode differently\n", name);
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static size_t run_table(void)
{
    size_t touch = 0, ignored = 0, refused = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const scase_t *c = &cases[i];
        fn_event_t ev, native;
        char reason[REASON_MAX];
        fn_reject_t r = fn_event_decode_segment(c->json, strlen(c->json), cfgs[c->cfg], NOW_MS, &ev,
                                                reason, sizeof reason);
        if (r != c->code)
            fprintf(stderr, "case \"%s\": code %s, expected %s (%s)\n", c->name, fn_reject_code(r),
                    fn_reject_code(c->code), reason);
        CHECK_INT(r, c->code);
        if (c->code != FN_REJ_NONE) {
            refused++;
            fn_event_t zero = {0};
            CHECK(memcmp(&ev, &zero, sizeof ev) == 0);
            CHECK(reason[0] != '\0' && printable(reason));
            if (c->reason && !strstr(reason, c->reason)) {
                fprintf(stderr, "case \"%s\": reason \"%s\" lacks \"%s\"\n", c->name, reason,
                        c->reason);
                CHECK(strstr(reason, c->reason) != NULL);
            }
            fn_event_clear(&ev);
            continue;
        }
        if (c->ignored) {
            ignored++;
            CHECK_INT(ev.kind, FN_EV_IGNORED);
            CHECK_INT(ev.ignored, c->ignored);
            fn_event_clear(&ev);
            continue;
        }
        touch++;
        CHECK(ev.kind != FN_EV_IGNORED);
        CHECK(ev.lead_id.p && strcmp(ev.lead_id.p, c->lead_id) == 0);
        CHECK(ev.type.p && strcmp(ev.type.p, c->type) == 0);
        CHECK(ev.channel.p && strcmp(ev.channel.p, c->channel) == 0);
        fn_reject_t rn = fn_event_decode(c->native, strlen(c->native), cfgs[c->cfg], NOW_MS,
                                         &native, reason, sizeof reason);
        CHECK_INT(rn, FN_REJ_NONE);
        if (rn != FN_REJ_NONE)
            fprintf(stderr, "case \"%s\": its native twin is refused: %s\n", c->name, reason);
        else
            check_same_event(c->name, &ev, &native);
        fn_event_clear(&native);
        fn_event_clear(&ev);
    }
    /* the table exercises all three outcomes */
    CHECK(touch >= 10 && ignored >= 3 && refused >= 20);
    return touch + ignored + refused;
}

/* Hostile sizes: an oversized message is refused before it is parsed; one huge property is
 * carried like any other. */
static void test_sizes(void)
{
    size_t big = 70000;
    char *buf = malloc(big + 256);
    CHECK(buf != NULL);
    if (!buf)
        return;
    int n = snprintf(buf, 256,
                     "{\"type\":\"track\",\"messageId\":\"b\",\"userId\":\"u\",\"event\":\"x\"," TS
                     ",\"properties\":{\"blob\":\"");
    memset(buf + n, 'x', big);
    strcpy(buf + n + big, "\"}}");
    fn_event_t ev;
    char reason[REASON_MAX];
    CHECK_INT(
        fn_event_decode_segment(buf, strlen(buf), cfgs[MAPPED], NOW_MS, &ev, reason, sizeof reason),
        FN_REJ_OVERSIZE);
    /* the same under the limit */
    size_t small = 60000;
    memset(buf + n, 'x', small);
    strcpy(buf + n + small, "\"}}");
    CHECK_INT(
        fn_event_decode_segment(buf, strlen(buf), cfgs[MAPPED], NOW_MS, &ev, reason, sizeof reason),
        FN_REJ_NONE);
    CHECK_INT(fn_event_props_size(&ev), 1);
    fn_event_clear(&ev);
    free(buf);
}

/* Config errors name the field: a format for a topic that is not consumed, a format nobody
 * knows, a channel map keyed in upper case, a type map to an empty type. */
static void test_config_errors(void)
{
    static const struct {
        const char *segment, *formats, *want;
    } bad[] = {
        {NULL, "{\"other\":\"segment\"}", "kafka.input_formats.other: is not one of"},
        {NULL, "{\"touchpoints\":\"csv\"}", "kafka.input_formats.touchpoints: must be"},
        {NULL, "{\"touchpoints\":1}", "kafka.input_formats.touchpoints: expected a string"},
        {"{\"channels\":{\"Email\":\"email\"}}", NULL, "segment.channels.Email: must be keyed"},
        {"{\"events\":{\"Order Completed\":\"\"}}", NULL,
         "segment.events[\"Order Completed\"]: must map to"},
        {"{\"default_channel\":\"\"}", NULL, "segment.default_channel: must be"},
        {"{\"colour\":\"red\"}", NULL, "segment.colour"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char doc[1024], err[256] = "";
        snprintf(doc, sizeof doc,
                 "{\"kafka\":{\"input_formats\":%s},%s%s%s\"funnels\":[{\"name\":\"f\","
                 "\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"x\"}]}]}]}",
                 bad[i].formats ? bad[i].formats : "{}", bad[i].segment ? "\"segment\":" : "",
                 bad[i].segment ? bad[i].segment : "", bad[i].segment ? "," : "");
        json_t *root = json_loads(doc, 0, NULL);
        CHECK(root != NULL);
        fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
        CHECK(cfg == NULL);
        if (!strstr(err, bad[i].want))
            fprintf(stderr, "config %s: error \"%s\" lacks \"%s\"\n", doc, err, bad[i].want);
        CHECK(strstr(err, bad[i].want) != NULL);
        fn_config_free(cfg);
        json_decref(root);
    }
    /* a format for a consumed topic is read back by topic */
    const char *good = "{\"kafka\":{\"input_topics\":[\"a\",\"b\"],\"input_formats\":"
                       "{\"b\":\"segment\",\"a\":\"native\"}},\"funnels\":[{\"name\":\"f\","
                       "\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"x\"}]}]}]}";
    char err[256] = "";
    json_t *root = json_loads(good, 0, NULL);
    fn_config_t *cfg = fn_config_from_json(root, err, sizeof err);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_INT(fn_config_input_format(cfg, "a"), FN_INPUT_NATIVE);
        CHECK_INT(fn_config_input_format(cfg, "b"), FN_INPUT_SEGMENT);
        CHECK_INT(fn_config_input_format(cfg, "c"), FN_INPUT_NATIVE);
        CHECK_STR(cfg->segment_default_channel, "web");
        CHECK(cfg->n_segment_channels > 10);
    }
    fn_config_free(cfg);
    json_decref(root);
}

/* The schema's samples (tests/schemas/samples/segment-*.json, which test_schemas.py checks
 * against schemas/segment.schema.json) are accepted or refused here as labelled. */
static void test_schema_samples(void)
{
    glob_t g;
    size_t n = 0;
    if (glob("tests/schemas/samples/segment-*.json", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++, n++) {
            FILE *f = fopen(g.gl_pathv[i], "rb");
            char buf[4096];
            size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
            if (f)
                fclose(f);
            fn_event_t ev;
            char reason[REASON_MAX];
            fn_reject_t r =
                fn_event_decode_segment(buf, len, cfgs[MAPPED], NOW_MS, &ev, reason, sizeof reason);
            bool valid = strstr(g.gl_pathv[i], "-valid-") != NULL;
            if ((r == FN_REJ_NONE) != valid)
                fprintf(stderr, "%s: %s (%s)\n", g.gl_pathv[i], fn_reject_code(r), reason);
            CHECK((r == FN_REJ_NONE) == valid);
            fn_event_clear(&ev);
        }
        globfree(&g);
    }
    CHECK(n >= 5);
}

int main(void)
{
    const char *docs[2] = {CONFIG_MAPPED, CONFIG_DEFAULT};
    for (int i = 0; i < 2; i++) {
        char err[256] = "";
        json_t *root = json_loads(docs[i], 0, NULL);
        cfgs[i] = root ? fn_config_from_json(root, err, sizeof err) : NULL;
        json_decref(root);
        if (!cfgs[i]) {
            fprintf(stderr, "config %d: %s\n", i, err);
            return 1;
        }
        cfgs[i]->max_future_ms = 86400000;
    }
    size_t n = run_table();
    test_sizes();
    test_config_errors();
    test_schema_samples();
    printf("test_segment: %zu calls\n", n);
    fn_config_free(cfgs[0]);
    fn_config_free(cfgs[1]);
    return fn_test_result("test_segment");
}
