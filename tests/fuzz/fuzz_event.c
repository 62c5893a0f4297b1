/*
 * fuzz_event.c — libFuzzer target for fn_event_decode() (daemon/decode/event.c): arbitrary
 * bytes as one Kafka message, decoded against a small fixed config, exactly as
 * daemon/core/pipeline.c does (256-byte reason buffer, a fixed wall clock).
 *
 * The jansson reference (fn_event_decode_tree) is checked as below, and fn_event_decode, which
 * reads the usual message with the tree-free scanner instead, must give the same code, reason,
 * fields and matches.
 *
 * Beyond "no crash, no leak, no undefined behaviour" it checks what the rest of the daemon
 * relies on (SPEC §1):
 *  - accepted: event_id and lead_id are 1..128 bytes, NUL-free, valid UTF-8; channel and type
 *    1..64 bytes without control characters; ts inside 1970..9999 and not beyond
 *    now + max_future; funnel absent or configured; the known props are NUL-free UTF-8 of at
 *    most 256 bytes; value finite and at most 1e15; kind agrees with type; every fn_str_t points
 *    at the string in the event's own document. Re-encoding the document and decoding it again
 *    gives the same event (nothing depends on the spelling of the message). The rules then run
 *    on it for every funnel, and their plan and timer spec must be well formed.
 *  - rejected: the event is left zeroed, the code is one the decoder may give, and the reason
 *    is non-empty printable ASCII; with a smaller buffer it is a prefix of the full one.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/rules.h"

#include "fuzz_common.h"

#define NOW_MS 1795348800000LL      /* 2026-11-22T12:00:00Z, as in tests/unit/test_event.c */
#define MAX_TS_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define REASON_MAX 256              /* daemon/core/pipeline.c */

/* Two funnels with every kind of matcher (channel, type, props of each scalar type), lost
 * rules and retarget rules, so accepted events exercise the matchers too; b2b's attribution
 * lets cost events through. max_message_bytes is
 * small so the oversize path is reachable with the fuzzer's input sizes. */
static const char config_json[] =
    "{\"max_message_bytes\": 2048, \"max_future\": \"1d\","
    " \"segment\": {\"events\": {\"Order Completed\": \"purchase\", \"Consent\": \"consent\"}},"
    " \"funnels\": ["
    " {\"name\": \"b2b\", \"allow_skip\": true, \"stages\": ["
    "   {\"name\": \"awareness\", \"on\": [{\"type\": \"page_view\"}, {\"type\": \"ad_click\"}]},"
    "   {\"name\": \"interest\", \"on\": [{\"type\": \"email_click\"}], \"stale_after\": \"7d\"},"
    "   {\"name\": \"evaluation\", \"on\": [{\"channel\": \"web\", \"type\": \"demo_request\"}]},"
    "   {\"name\": \"decision\", \"on\": [{\"channel\": \"crm\", \"type\": \"deal_stage\","
    "     \"props\": {\"stage\": \"proposal\"}}], \"stale_after\": \"48h\"},"
    "   {\"name\": \"purchase\", \"on\": [{\"type\": \"purchase\"}], \"conversion\": true}],"
    "  \"lost\": {\"on\": [{\"type\": \"deal_lost\"}]},"
    "  \"attribution\": {\"models\": [\"linear\", \"markov\"]},"
    "  \"retarget\": [{\"name\": \"cart\", \"after\": {\"type\": \"cart_add\"},"
    "    \"unless\": [{\"type\": \"purchase\"}], \"within\": \"1h\"}]},"
    " {\"name\": \"aida\", \"allow_regress\": true, \"stages\": ["
    "   {\"name\": \"a\", \"on\": [{\"props\": {\"vip\": true}}, {\"props\": {\"n\": 1}}]},"
    "   {\"name\": \"i\", \"on\": [{\"props\": {\"n\": 1.5}}, {\"props\": {\"n\": \"1\"}}]},"
    "   {\"name\": \"d\", \"on\": [{\"channel\": \"email\", \"props\": {\"vip\": false,"
    "     \"campaign\": \"spring\"}}]}],"
    "  \"lost\": {\"on\": [{\"props\": {\"value\": 0}}]}}]}";

static fn_config_t *cfg; /* the daemon's view */
static fn_config_t big;  /* a shallow copy allowing 16 MB, for re-decoding re-encodings */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    json_error_t jerr;
    char err[512];
    json_t *root = json_loads(config_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        fprintf(stderr, "fuzz_event: built-in config: %s\n", jerr.text);
        abort();
    }
    cfg = fn_config_from_json(root, err, sizeof err);
    json_decref(root);
    if (!cfg) {
        fprintf(stderr, "fuzz_event: built-in config: %s\n", err);
        abort();
    }
    big = *cfg;
    big.max_message_bytes = 16u << 20;
    return 0;
}

static void check_str(const char *what, fn_str_t s, size_t minlen, size_t maxlen, bool no_ctrl,
                      json_t *obj, const char *key)
{
    if (!s.p) {
        FZ_CHECK(s.len == 0, "%s: NULL with length %zu", what, s.len);
        FZ_CHECK(minlen == 0, "%s: required but NULL", what);
        return;
    }
    FZ_CHECK(s.len >= minlen && s.len <= maxlen, "%s: length %zu outside %zu..%zu", what, s.len,
             minlen, maxlen);
    FZ_CHECK(strlen(s.p) == s.len, "%s: strlen %zu != len %zu (embedded NUL)", what, strlen(s.p),
             s.len);
    FZ_CHECK(fz_utf8_valid(s.p, s.len), "%s: not valid UTF-8", what);
    if (no_ctrl)
        for (size_t i = 0; i < s.len; i++)
            FZ_CHECK((unsigned char)s.p[i] >= 0x20 && s.p[i] != 0x7f,
                     "%s: control byte 0x%02x at %zu", what, (unsigned char)s.p[i], i);
    /* the promise of event.h: it points into the event's own document */
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    FZ_CHECK(v && json_is_string(v) && json_string_value(v) == s.p &&
                 json_string_length(v) == s.len,
             "%s: does not point at the document's \"%s\"", what, key);
}

static bool str_same(fn_str_t a, fn_str_t b)
{
    return a.len == b.len && (!a.p) == (!b.p) && (!a.p || memcmp(a.p, b.p, a.len) == 0);
}

static void check_accepted(const fn_event_t *ev, const fn_config_t *c)
{
    FZ_CHECK(ev->doc && json_is_object(ev->doc), "accepted event without an object document");
    check_str("event_id", ev->event_id, 1, FN_MAX_ID_LEN, false, ev->doc, "event_id");
    check_str("lead_id", ev->lead_id, 1, FN_MAX_ID_LEN, false, ev->doc, "lead_id");
    check_str("channel", ev->channel, 1, 64, true, ev->doc, "channel");
    check_str("type", ev->type, 1, 64, true, ev->doc, "type");
    FZ_CHECK(ev->ts_ms >= 0 && ev->ts_ms <= MAX_TS_MS, "ts %lld out of range",
             (long long)ev->ts_ms);
    if (c->max_future_ms > 0)
        FZ_CHECK(ev->ts_ms - NOW_MS <= c->max_future_ms, "ts %lld beyond max_future",
                 (long long)ev->ts_ms);
    if (ev->funnel.p) {
        check_str("funnel", ev->funnel, 1, FN_NAME_MAX, false, ev->doc, "funnel");
        FZ_CHECK(fn_config_funnel(c, ev->funnel.p, ev->funnel.len) != NULL,
                 "funnel \"%s\" is not configured", ev->funnel.p);
    }
    json_t *props = json_object_get(ev->doc, "props");
    FZ_CHECK(ev->props == props && (!props || json_is_object(props)), "props mismatch");
    const struct {
        const char *key;
        fn_str_t s;
    } known[] = {{"campaign", ev->campaign}, {"source", ev->source},     {"medium", ev->medium},
                 {"url", ev->url},           {"currency", ev->currency}, {"stage", ev->stage}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        json_t *v = props ? json_object_get(props, known[i].key) : NULL;
        FZ_CHECK(!v || json_is_string(v), "props.%s accepted as a non-string", known[i].key);
        if (v) {
            FZ_CHECK(known[i].s.p != NULL, "props.%s present but not decoded", known[i].key);
            check_str(known[i].key, known[i].s, 0, 256, false, props, known[i].key);
        } else
            FZ_CHECK(!known[i].s.p && !known[i].s.len, "props.%s set but absent", known[i].key);
    }
    json_t *value = props ? json_object_get(props, "value") : NULL;
    FZ_CHECK(ev->has_value == (value != NULL), "has_value %d, value present %d", ev->has_value,
             value != NULL);
    if (ev->has_value)
        FZ_CHECK(isfinite(ev->value) && fabs(ev->value) <= 1e15 &&
                     ev->value == json_number_value(value),
                 "value %.17g", ev->value);
    json_t *mk = props ? json_object_get(props, "marketing") : NULL;
    FZ_CHECK(ev->has_marketing == (mk != NULL) && (!mk || ev->marketing == json_is_true(mk)),
             "marketing flags");
    bool consent = ev->type.len == 7 && memcmp(ev->type.p, "consent", 7) == 0;
    bool erase = ev->type.len == 5 && memcmp(ev->type.p, "erase", 5) == 0;
    bool identify = ev->type.len == 8 && memcmp(ev->type.p, "identify", 8) == 0;
    bool cost = ev->type.len == 4 && memcmp(ev->type.p, "cost", 4) == 0;
    fn_event_kind_t want = consent    ? FN_EV_CONSENT
                           : erase    ? FN_EV_ERASE
                           : identify ? FN_EV_IDENTIFY
                           : cost     ? FN_EV_COST
                                      : FN_EV_TOUCHPOINT;
    FZ_CHECK(ev->kind == want, "kind %d for type \"%s\"", ev->kind, ev->type.p);
    if (consent)
        FZ_CHECK(ev->has_marketing, "consent accepted without props.marketing");
    /* a cost's amount: a number, 0 to 1e10, kept to the cent */
    if (cost) {
        json_t *amount = props ? json_object_get(props, "amount") : NULL;
        FZ_CHECK(json_is_number(amount) && json_number_value(amount) >= 0 &&
                     ev->cost_cents == llround(json_number_value(amount) * 100) &&
                     ev->cost_cents <= FN_EVENT_MAX_COST_CENTS,
                 "cost accepted with amount %lld cents", (long long)ev->cost_cents);
    }
    /* an identify names another id: 1..128 bytes, not lead_id, neither blocked */
    if (identify) {
        check_str("previous_id", ev->previous_id, 1, FN_MAX_ID_LEN, false, props, "previous_id");
        FZ_CHECK(ev->previous_id.len != ev->lead_id.len ||
                     memcmp(ev->previous_id.p, ev->lead_id.p, ev->lead_id.len) != 0,
                 "identify accepted merging lead_id into itself");
        FZ_CHECK(!fn_config_id_blocked(c, ev->previous_id.p, ev->previous_id.len) &&
                     !fn_config_id_blocked(c, ev->lead_id.p, ev->lead_id.len),
                 "identify accepted naming a blocked id");
    }
}

/* What the daemon does next with an accepted touchpoint (daemon/state/step.c): a plan and a
 * timer spec per funnel. Both must be well formed whatever the event holds. */
static void run_rules(const fn_event_t *ev)
{
    static char spec[FN_TIMER_SPEC_MAX];
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        fn_match_t m = fn_rules_match(f, ev);
        FZ_CHECK(m.stage >= -1 && m.stage < (int)f->n_stages, "match stage %d of %zu", m.stage,
                 f->n_stages);
        /* the highest matching stage, by asking each matcher */
        int want = -1;
        for (size_t s = 0; s < f->n_stages; s++)
            for (size_t k = 0; k < f->stages[s].n_on; k++)
                if (fn_rules_matcher_matches(&f->stages[s].on[k], ev))
                    want = (int)s;
        FZ_CHECK(m.stage == want, "match stage %d, highest matching stage %d", m.stage, want);
        fz_check_plan(f, m);
        size_t n = fn_rules_timer_spec(f, ev, spec, sizeof spec);
        FZ_CHECK(n < sizeof spec && strlen(spec) == n, "timer spec length %zu", n);
    }
}

/* Re-encodes the accepted document and decodes it again: the same event must come out. */
static void check_reencoded(const fn_event_t *ev)
{
    size_t len = json_dumpb(ev->doc, NULL, 0, JSON_COMPACT);
    FZ_CHECK(len > 0, "accepted document does not encode");
    char *buf = malloc(len);
    FZ_CHECK(buf != NULL, "out of memory");
    FZ_CHECK(json_dumpb(ev->doc, buf, len, JSON_COMPACT) == len, "encode length changed");
    fn_event_t again;
    char reason[REASON_MAX];
    fn_reject_t r = fn_event_decode(buf, len, &big, NOW_MS, &again, reason, sizeof reason);
    FZ_CHECK(r == FN_REJ_NONE, "re-encoded event rejected: %s (%s): %.*s", fn_reject_code(r),
             reason, (int)(len < 300 ? len : 300), buf);
    FZ_CHECK(str_same(ev->event_id, again.event_id) && str_same(ev->lead_id, again.lead_id) &&
                 str_same(ev->channel, again.channel) && str_same(ev->type, again.type) &&
                 str_same(ev->funnel, again.funnel) && str_same(ev->campaign, again.campaign) &&
                 str_same(ev->source, again.source) && str_same(ev->medium, again.medium) &&
                 str_same(ev->url, again.url) && str_same(ev->currency, again.currency) &&
                 str_same(ev->stage, again.stage),
             "re-encoded event differs in a string field");
    FZ_CHECK(ev->ts_ms == again.ts_ms && ev->kind == again.kind &&
                 ev->has_value == again.has_value && (!ev->has_value || ev->value == again.value) &&
                 ev->has_marketing == again.has_marketing && ev->marketing == again.marketing,
             "re-encoded event differs: ts %lld/%lld kind %d/%d", (long long)ev->ts_ms,
             (long long)again.ts_ms, ev->kind, again.kind);
    fn_event_clear(&again);
    free(buf);
}

static void check_rejected(fn_reject_t r, const fn_event_t *ev, const char *reason,
                           const uint8_t *data, size_t size)
{
    static const fn_event_t zero;
    FZ_CHECK(r > FN_REJ_NONE && r < FN_REJ_COUNT && r != FN_REJ_LEAD_COLLISION &&
                 r != FN_REJ_STEP_FAILED,
             "reject code %d", (int)r);
    FZ_CHECK(strcmp(fn_reject_code(r), "unknown") != 0, "code %d has no name", (int)r);
    FZ_CHECK(memcmp(ev, &zero, sizeof zero) == 0, "rejected event (%s) not left zeroed",
             fn_reject_code(r));
    FZ_CHECK(fz_printable(reason, REASON_MAX) && reason[0] != '\0',
             "reason for %s is empty or not printable ASCII", fn_reject_code(r));
    /* a smaller buffer cuts the same reason short: a prefix, still printable */
    size_t small = 1 + size % 48;
    char cut[48];
    fn_event_t ev2;
    fn_reject_t r2 = fn_event_decode((const char *)data, size, cfg, NOW_MS, &ev2, cut, small);
    FZ_CHECK(r2 == r, "same message, code %d then %d", (int)r, (int)r2);
    FZ_CHECK(fz_printable(cut, small), "short reason not printable/terminated");
    FZ_CHECK(strncmp(cut, reason, strlen(cut)) == 0,
             "short reason \"%s\" is not a prefix of \"%s\"", cut, reason);
    fn_event_clear(&ev2);
}

/* fn_event_decode() reads the usual message with its tree-free scanner (json_view.h): it
 * must give what the jansson reference gave, code, reason and every field, and the rules must
 * match it alike. */
static void check_scanner(const uint8_t *data, size_t size, fn_reject_t want, const char *why,
                          const fn_event_t *ref)
{
    fn_event_t ev;
    char reason[REASON_MAX];
    fn_reject_t r =
        fn_event_decode((const char *)data, size, cfg, NOW_MS, &ev, reason, sizeof reason);
    FZ_CHECK(r == want, "scanner path %s, reference %s", fn_reject_code(r), fn_reject_code(want));
    FZ_CHECK(strcmp(reason, why) == 0, "scanner path reason \"%s\", reference \"%s\"", reason, why);
    if (r != FN_REJ_NONE)
        return;
    FZ_CHECK(str_same(ev.event_id, ref->event_id) && str_same(ev.lead_id, ref->lead_id) &&
                 str_same(ev.channel, ref->channel) && str_same(ev.type, ref->type) &&
                 str_same(ev.funnel, ref->funnel) && str_same(ev.campaign, ref->campaign) &&
                 str_same(ev.source, ref->source) && str_same(ev.medium, ref->medium) &&
                 str_same(ev.url, ref->url) && str_same(ev.currency, ref->currency) &&
                 str_same(ev.stage, ref->stage),
             "scanner path differs in a string field");
    FZ_CHECK(ev.ts_ms == ref->ts_ms && ev.kind == ref->kind && ev.has_value == ref->has_value &&
                 ev.value == ref->value && ev.has_marketing == ref->has_marketing &&
                 ev.marketing == ref->marketing &&
                 fn_event_props_size(&ev) == fn_event_props_size(ref),
             "scanner path differs: ts %lld/%lld kind %d/%d", (long long)ev.ts_ms,
             (long long)ref->ts_ms, ev.kind, ref->kind);
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        fn_match_t a = fn_rules_match(f, &ev), b = fn_rules_match(f, ref);
        FZ_CHECK(a.stage == b.stage && a.lost == b.lost, "funnel %s matches differently", f->name);
    }
    fn_event_clear(&ev);
}

/* The same bytes read as a Segment call (segment.h): refused like any input, or a document
 * that is itself a valid touchpoint, which decodes natively to the same event. */
static void check_segment(const uint8_t *data, size_t size)
{
    fn_event_t ev;
    char reason[REASON_MAX];
    fn_reject_t r =
        fn_event_decode_segment((const char *)data, size, cfg, NOW_MS, &ev, reason, sizeof reason);
    if (r != FN_REJ_NONE) {
        static const fn_event_t zero;
        FZ_CHECK(r < FN_REJ_COUNT && r != FN_REJ_LEAD_COLLISION && r != FN_REJ_STEP_FAILED,
                 "segment: reject code %d", (int)r);
        FZ_CHECK(memcmp(&ev, &zero, sizeof zero) == 0, "segment: rejected event not zeroed");
        FZ_CHECK(fz_printable(reason, REASON_MAX) && reason[0] != '\0',
                 "segment: reason for %s is empty or not printable ASCII", fn_reject_code(r));
        return;
    }
    if (ev.kind == FN_EV_IGNORED) {
        FZ_CHECK(ev.ignored > FN_IGN_NONE && ev.ignored < FN_IGN_COUNT && !ev.doc,
                 "segment: ignored with reason %d", (int)ev.ignored);
        return;
    }
    FZ_CHECK(size <= cfg->max_message_bytes, "segment: accepted %zu bytes over the limit", size);
    check_accepted(&ev, cfg);
    if (ev.kind == FN_EV_TOUCHPOINT)
        run_rules(&ev);
    check_reencoded(&ev);
    fn_event_clear(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_segment(data, size);
    fn_event_t ev;
    char reason[REASON_MAX];
    memset(reason, 0x5a, sizeof reason);
    fn_reject_t r =
        fn_event_decode_tree((const char *)data, size, cfg, NOW_MS, &ev, reason, sizeof reason);
    check_scanner(data, size, r, reason, &ev);
    if (fz_trace())
        fprintf(stderr, "fuzz_event: %zu bytes: %s%s%s\n", size, fn_reject_code(r), r ? ": " : "",
                r ? reason : "");
    if (r != FN_REJ_NONE) {
        check_rejected(r, &ev, reason, data, size);
        return 0;
    }
    FZ_CHECK(size <= cfg->max_message_bytes, "accepted %zu bytes over the limit", size);
    FZ_CHECK(fz_utf8_valid((const char *)data, size), "accepted a message that is not UTF-8");
    check_accepted(&ev, cfg);
    if (ev.kind == FN_EV_TOUCHPOINT)
        run_rules(&ev);
    check_reencoded(&ev);
    fn_event_clear(&ev);
    FZ_CHECK(ev.doc == NULL, "fn_event_clear left the document");
    return 0;
}
