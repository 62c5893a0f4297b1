/*
 * config.c — the configuration document (SPEC §2): reading the JSON file, validating every
 * field, and building the fn_config_t the rest of the daemon reads.
 *
 * This file owns the option tables. Every field of the document, top-level or nested, is
 * declared once in a table (path, type, default, doc) in the Fluent Bit config-map manner, and
 * one walker drives parsing, defaults, unknown-field detection and error messages from them.
 * Defaults are JSON text run through the same parser as user input, so a default can never
 * be something the validator would reject. Fields that are themselves objects or arrays
 * (funnels, stages, matchers, retarget rules, ...) are table entries with a small hook that
 * parses the nested value with the next table, carrying the concrete JSON path for messages.
 *
 * The same tables say which options a reload may change (a line's reloadable flag;
 * fn_config_fixed_diff compares every other one by its kind) and how each field is freed (by
 * its kind; a nested value by the release hook that pairs with its parse hook), so adding an
 * option is one line here plus its entry in schemas/config.schema.json.
 *
 * Errors are "path: what is wrong" ("funnels[1].stages[2].stale_after: not a duration ...").
 * Every allocation hangs off the fn_config_t as soon as it is made, so the single cleanup on
 * any error is fn_config_free() on the partly built config.
 */
#include <assert.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "funneld/common.h"
#include "funneld/config.h"

#define PATH_LEN 320
#define MAX_DURATION_MS (3650LL * 86400000)

typedef struct parse_ctx {
    char *err;
    size_t errlen;
} parse_ctx_t;

typedef enum {
    OPT_STRING,   /* char * */
    OPT_STRINGS,  /* char ** with a size_t count at off_n */
    OPT_KV,       /* fn_kv_t * with a size_t count at off_n */
    OPT_INT,      /* int */
    OPT_INT64,    /* int64_t */
    OPT_SIZE,     /* size_t */
    OPT_DURATION, /* int64_t milliseconds */
    OPT_NUMBER,   /* double */
    OPT_BOOL,     /* bool */
    OPT_ENUM,     /* int: index into choices */
    OPT_OBJECT,   /* nested object, parsed by the entry's hook */
    OPT_ARRAY,    /* nested array, parsed by the entry's hook */
} opt_kind_t;

/* The public type name of each kind (fn_config_option_t.type), pasted from the kind's name. */
#define OPT_STRING_TYPE "string"
#define OPT_STRINGS_TYPE "string[]"
#define OPT_KV_TYPE "object"
#define OPT_INT_TYPE "integer"
#define OPT_INT64_TYPE "integer"
#define OPT_SIZE_TYPE "integer"
#define OPT_DURATION_TYPE "duration"
#define OPT_NUMBER_TYPE "number"
#define OPT_BOOL_TYPE "boolean"
#define OPT_ENUM_TYPE "enum"
#define OPT_OBJECT_TYPE "object"
#define OPT_ARRAY_TYPE "array"

enum {
    OPT_REQUIRED = 1 << 0, /* no default: the document must give it */
    OPT_POSITIVE = 1 << 1, /* durations: 0 is not allowed */
    OPT_LO_EXCL = 1 << 2,  /* numbers: the bounds themselves are not allowed */
    OPT_HI_EXCL = 1 << 3,
    OPT_STRING_VALUES = 1 << 4, /* OPT_KV: values must be strings */
    OPT_EMPTY_OK = 1 << 5,      /* OPT_STRINGS: an empty array, and empty strings, are fine */
};

/* Returns what is wrong with a string value, or NULL when it is fine. */
typedef const char *(*opt_check_fn)(const char *s, size_t len);
/* OPT_KV: returns what is wrong with one member (key, its value as text), or NULL. */
typedef const char *(*opt_kv_check_fn)(const char *key, const char *value);
/* Parses a nested value into base; path is the value's concrete JSON path. */
typedef int (*opt_parse_fn)(parse_ctx_t *c, json_t *v, const char *path, void *base);
/* Frees what the entry's parse hook allocated into base, which may be partly built. */
typedef void (*opt_release_fn)(void *base);

typedef struct opt {
    fn_config_option_t info;
    opt_kind_t kind;
    size_t off, off_n;
    unsigned flags;
    double lo, hi; /* numbers: value bounds; integers, strings: hi 0 means unbounded */
    opt_check_fn check;
    opt_kv_check_fn kv_check;   /* OPT_KV: each member */
    const char *const *choices; /* OPT_ENUM, NULL-terminated */
    opt_parse_fn parse;         /* OPT_OBJECT, OPT_ARRAY */
    opt_release_fn release;     /* OPT_OBJECT, OPT_ARRAY; NULL when parse allocates nothing */
    /* Options fixed at start: the name a refused reload gives, when not the option's path. */
    const char *refused_as;
} opt_t;

/* A table describes one JSON object. Entry paths start with prefix; the rest is the key in the
 * object, dotted for sections ("kafka.topics.dlq" in the top-level table). */
typedef struct opt_table {
    const char *prefix;
    const opt_t *opts;
    size_t n;
    /* Cross-field checks once every field is parsed; present has bit i set for opts[i]. */
    int (*finish)(parse_ctx_t *c, const struct opt_table *t, void *base, uint64_t present,
                  const char *path);
} opt_table_t;

#define OPT(kind_, path_, def_, doc_)                                                              \
    .info.path = path_, .info.type = kind_##_TYPE, .info.def = def_, .info.doc = doc_, .kind = kind_
/* A line without it is fixed at start: an option nobody decided about is refused on a reload
 * rather than silently not applied. */
#define RELOADABLE .info.reloadable = true
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- error reporting and paths ---------------------------------------------------------- */

static int fail(parse_ctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(parse_ctx_t *c, const char *path, const char *fmt, ...)
{
    if (!c->err || !c->errlen)
        return FN_ERR;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", *path ? path : "top level", msg);
    return FN_ERR;
}

static int oom(parse_ctx_t *c, const char *path)
{
    return fail(c, path, "out of memory");
}

static const char *type_name(const json_t *v)
{
    if (!v) /* fn_config_from_json(NULL, ...) */
        return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A declared field's path: table keys are trusted and joined as they are. */
static void path_field(char *out, const char *base, const char *key)
{
    snprintf(out, PATH_LEN, "%s%s%s", base, *base ? "." : "", key);
}

/* A key taken from the document: anything that is not a plain identifier is quoted, so that
 * "kafka.properties[\"linger.ms\"]" cannot be mistaken for nested objects. */
static void path_key(char *out, const char *base, const char *key)
{
    bool plain = *key && !(key[0] >= '0' && key[0] <= '9');
    for (const char *p = key; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_';
    if (plain)
        path_field(out, base, key);
    else
        snprintf(out, PATH_LEN, "%s[\"%s\"]", base, key);
}

/* jansson allows NUL inside keys; a C string would silently cut such a key short. */
static bool key_has_nul(const char *key)
{
    return json_object_iter_key_len(json_object_key_to_iter(key)) != strlen(key);
}

static void path_index(char *out, const char *base, size_t i)
{
    snprintf(out, PATH_LEN, "%s[%zu]", base, i);
}

/* ---- checks on string values ------------------------------------------------------------ */

static bool name_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

/* Funnel and rule names end up in Redis keys, topic payloads and metric labels, so they are
 * kept to a charset that needs no escaping anywhere. */
static const char *check_name(const char *s, size_t len)
{
    if (len < 1 || len > FN_NAME_MAX || !name_chars(s, len))
        return "must be 1 to 64 characters of A-Z a-z 0-9 _ . -";
    return NULL;
}

static const char *check_rule_name(const char *s, size_t len)
{
    const char *e = check_name(s, len);
    if (e)
        return e;
    /* a retarget event's reason is either "stalled" or a rule name: they must not collide */
    if (strcmp(s, "stalled") == 0)
        return "\"stalled\" is reserved for the stale-stage trigger";
    return NULL;
}

/* Stage names are only ever payload (JSON-escaped) and labels, so any text will do, but a
 * control character is always a mistake and would garble logs and the terminal view. */
static const char *check_stage_name(const char *s, size_t len)
{
    if (len < 1 || len > FN_NAME_MAX)
        return "must be 1 to 64 bytes without control characters";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "must be 1 to 64 bytes without control characters";
    return NULL;
}

static const char *check_key_prefix(const char *s, size_t len)
{
    if (len < 1 || len > 32 || !name_chars(s, len))
        return "must be 1 to 32 characters of A-Z a-z 0-9 _ . -";
    return NULL;
}

/* The same rule the broker applies, checked here so a typo fails at start, not at the first
 * produce. */
static const char *check_topic(const char *s, size_t len)
{
    if (len < 1 || len > 249 || !name_chars(s, len))
        return "must be a Kafka topic name: 1 to 249 characters of A-Z a-z 0-9 _ . -";
    return NULL;
}

/* No output may be lost when a broker dies (SPEC §9): that needs acks=all, which the
 * idempotent producer sets itself. librdkafka would refuse another value too, but only when the
 * daemon starts, and without naming the field. */
static const char *check_kafka_property(const char *key, const char *value)
{
    if ((strcmp(key, "acks") == 0 || strcmp(key, "request.required.acks") == 0) &&
        strcmp(value, "all") != 0 && strcmp(value, "-1") != 0)
        return "must be \"all\" (or -1): outputs are produced with acks=all, or a broker's "
               "death could lose them";
    return NULL;
}

static const char *check_input_format(const char *topic, const char *format)
{
    if (check_topic(topic, strlen(topic)))
        return "must be keyed by an input topic's name";
    if (strcmp(format, "native") != 0 && strcmp(format, "segment") != 0)
        return "must be \"native\" or \"segment\"";
    return NULL;
}

/* A Segment event name may be any text; what it maps to is an event type, with the limits
 * of one (decode/event.c: 1 to 64 bytes, no control characters). */
static const char *check_type_map(const char *key, const char *value)
{
    if (!*key)
        return "an empty name is no Segment event";
    if (check_stage_name(value, strlen(value)))
        return "must map to 1 to 64 bytes without control characters";
    return NULL;
}

static const char *check_channel_map(const char *key, const char *value)
{
    for (const char *k = key; *k; k++)
        if (*k >= 'A' && *k <= 'Z')
            return "must be keyed by a medium in lower case (mediums are compared case-blind)";
    if (check_stage_name(value, strlen(value)))
        return "must map to 1 to 64 bytes without control characters";
    return NULL;
}

static const char *check_channel(const char *s, size_t len)
{
    return check_stage_name(s, len) ? "must be 1 to 64 bytes without control characters" : NULL;
}

static const char *check_redis_url(const char *s, size_t len)
{
    char host[256], user[128], pass[256];
    int port, db;
    if (len <= 8 || strncmp(s, "redis://", 8) != 0)
        return "must start with redis:// (redis://[[user]:password@]host:port[/db])";
    /* the same parser the daemon and funnelctl connect with, so what passes here connects */
    if (fn_redis_url_parse(s, host, sizeof host, &port, user, sizeof user, pass, sizeof pass, &db))
        return "must be redis://[[user]:password@]host[:port][/db] with a host name or IPv4 "
               "address, a port 1-65535 and a db number";
    return NULL;
}

/* Error messages quote the file (jansson's excerpt, unknown keys): control and non-ASCII
 * bytes become '?', so a config file cannot send escape sequences to a terminal. */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static const char *check_listen(const char *s, size_t len)
{
    static const char *const msg = "must be HOST:PORT with a port from 0 to 65535";
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return msg;
    size_t hostlen = (size_t)(colon - s), ndig = 0;
    long port = 0;
    for (const char *p = colon + 1; *p; p++, ndig++) {
        if (*p < '0' || *p > '9' || ndig >= 5)
            return msg;
        port = port * 10 + (*p - '0');
    }
    if (ndig == 0 || port > 65535)
        return msg;
    /* an IPv6 address is bracketed, otherwise its colons would be read as the port's */
    if (s[0] == '[' && (hostlen < 3 || s[hostlen - 1] != ']'))
        return msg;
    if (s[0] != '[' && memchr(s, ':', hostlen))
        return msg;
    (void)len;
    return NULL;
}

static const char *check_token(const char *s, size_t len)
{
    if (len < 16 || len > 512)
        return "must be 16 to 512 characters";
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return "must be printable ASCII without spaces";
    return NULL;
}

/* ---- the tables ------------------------------------------------------------------------- */

static int parse_funnels(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_stages(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_stage_on(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_props(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_lost(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_lost_on(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_retarget(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_after(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_unless(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_bottleneck(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_trigger_cap(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_attribution(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_attr_models(parse_ctx_t *c, json_t *v, const char *path, void *base);
static int parse_breakdowns(parse_ctx_t *c, json_t *v, const char *path, void *base);
static void release_funnels(void *base);
static void release_stages(void *base);
static void release_stage_on(void *base);
static void release_props(void *base);
static void release_lost(void *base);
static void release_lost_on(void *base);
static void release_retarget(void *base);
static void release_after(void *base);
static void release_unless(void *base);
static int finish_funnel(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                         const char *path);
static int finish_stage(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                        const char *path);
static int finish_matcher(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                          const char *path);
static int finish_bottleneck(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                             const char *path);

static const char *const clock_names[] = {"wall", "event", NULL};

/* The usual utm_medium values of marketing teams (GA4's default channel grouping, in
 * funneld's channel names). */
#define SEGMENT_CHANNELS_DEFAULT                                                                   \
    "{\"email\": \"email\", \"e-mail\": \"email\", \"newsletter\": \"email\", "                    \
    "\"cpc\": \"ads\", \"ppc\": \"ads\", \"paid\": \"ads\", \"paidsearch\": \"ads\", "             \
    "\"display\": \"ads\", \"banner\": \"ads\", \"cpm\": \"ads\", \"social\": \"social\", "        \
    "\"paid_social\": \"social\", \"paidsocial\": \"social\", \"sms\": \"sms\", "                  \
    "\"referral\": \"referral\", \"affiliate\": \"referral\", \"organic\": \"web\"}"

#define CFG(f) offsetof(fn_config_t, f)
static const opt_t top_opts[] = {
    {OPT(OPT_STRING, "kafka.brokers", "\"127.0.0.1:9092\"",
         "Kafka bootstrap servers, host:port[,host:port...]; FUNNELD_BROKERS overrides it"),
     .off = CFG(brokers), .lo = 1},
    {OPT(OPT_STRING, "kafka.group_id", "\"funneld\"",
         "Kafka consumer group; daemons sharing it share the input partitions"),
     .off = CFG(group_id), .lo = 1, .hi = 255},
    {OPT(OPT_STRINGS, "kafka.input_topics", "[\"touchpoints\"]",
         "Topics the touchpoint events are consumed from"),
     .off = CFG(input_topics), .off_n = CFG(n_input_topics)},
    {OPT(OPT_STRING, "kafka.topics.transitions", "\"funnel.transitions\"",
         "Topic for stage_changed, converted, lost and lead_erased events, keyed by lead id"),
     .off = CFG(topic_transitions), .check = check_topic, .refused_as = "kafka.topics"},
    {OPT(OPT_STRING, "kafka.topics.retargeting", "\"funnel.retargeting\"",
         "Topic for retarget triggers (stalled leads and retarget rules), keyed by lead id"),
     .off = CFG(topic_retargeting), .check = check_topic, .refused_as = "kafka.topics"},
    {OPT(OPT_STRING, "kafka.topics.bottlenecks", "\"funnel.bottlenecks\"",
         "Topic for bottleneck and bottleneck_cleared events, keyed by funnel name"),
     .off = CFG(topic_bottlenecks), .check = check_topic, .refused_as = "kafka.topics"},
    {OPT(OPT_STRING, "kafka.topics.snapshots", "\"funnel.snapshots\"",
         "Topic for funnel_snapshot events, keyed by funnel name"),
     .off = CFG(topic_snapshots), .check = check_topic, .refused_as = "kafka.topics"},
    {OPT(OPT_STRING, "kafka.topics.dlq", "\"funnel.dlq\"",
         "Dead-letter topic: rejected input, original bytes, the reason in headers"),
     .off = CFG(topic_dlq), .check = check_topic, .refused_as = "kafka.topics"},
    {OPT(OPT_KV, "kafka.properties", "{}",
         "librdkafka properties for consumer and producer (SASL, TLS, tuning); values are "
         "strings, numbers or booleans"),
     .off = CFG(kafka_props), .off_n = CFG(n_kafka_props), .kv_check = check_kafka_property},
    {OPT(OPT_KV, "kafka.input_formats", "{}",
         "Input topics read in another format than funneld's own, {\"topic\": \"segment\"}; "
         "each must be one of kafka.input_topics, the others are read as funneld's JSON"),
     .off = CFG(input_formats), .off_n = CFG(n_input_formats), .kv_check = check_input_format,
     .flags = OPT_STRING_VALUES},
    {OPT(OPT_STRING, "redis.url", "\"redis://127.0.0.1:6379/0\"",
         "Redis server, redis://[[user]:password@]host:port[/db]; FUNNELD_REDIS_URL overrides it"),
     .off = CFG(redis_url), .check = check_redis_url},
    {OPT(OPT_STRING, "redis.key_prefix", "\"fn\"",
         "Prefix of every Redis key funneld writes: 1 to 32 characters of A-Z a-z 0-9 _ . -"),
     .off = CFG(key_prefix), .check = check_key_prefix},
    {OPT(OPT_INT, "redis.shards", "64",
         "Hash-tag buckets the per-funnel counters are spread over, 1 to 4096"),
     .off = CFG(redis_shards), .lo = 1, .hi = 4096},
    {OPT(OPT_BOOL, "redis.cluster", "false",
         "Redis Cluster: redis.url (and redis.seeds) are nodes to learn the slot map from; "
         "each key goes to the master serving its slot; FUNNELD_REDIS_CLUSTER (true or false) "
         "overrides it"),
     .off = CFG(redis_cluster)},
    {OPT(OPT_BOOL, "redis.fast_path", "true",
         "A touch that moves the lead in no funnel is decided by the daemon from the lead as "
         "read and written by a small Redis function, not by the whole Lua step (Redis 7)"),
     .off = CFG(redis_fast_path)},
    {OPT(OPT_STRINGS, "redis.seeds", NULL,
         "More Redis Cluster nodes to learn the slot map from, \"host:port\" each (read only "
         "when redis.cluster is true); user and password are redis.url's"),
     .off = CFG(redis_seeds), .off_n = CFG(n_redis_seeds)},
    {OPT(OPT_STRING, "http.listen", "\"127.0.0.1:9464\"",
         "HOST:PORT for the live view (/ and /api/), /metrics, /healthz and /readyz"),
     .off = CFG(http_listen), .check = check_listen},
    {OPT(OPT_STRING, "http.auth_token", NULL,
         "When set, every path but /, /healthz and /readyz needs \"Authorization: Bearer "
         "TOKEN\" (16 to 512 printable characters); without it the live view shows lead ids "
         "to loopback clients only; FUNNELD_HTTP_AUTH_TOKEN overrides it"),
     .off = CFG(http_auth_token), .check = check_token},
    {OPT(OPT_ENUM, "clock", "\"wall\"",
         "\"wall\" fires timers and closes windows by the wall clock; \"event\" uses the "
         "largest event time seen, so replays give the same results at any speed"),
     .off = CFG(clock), .choices = clock_names},
    {OPT(OPT_DURATION, "dedupe_ttl", "\"7d\"",
         "How long a (lead_id, event_id) pair is remembered to recognise duplicates"),
     .off = CFG(dedupe_ttl_ms), .flags = OPT_POSITIVE},
    {OPT(OPT_DURATION, "max_future", "\"1d\"",
         "Events whose time is later than the wall clock plus this are rejected"),
     .off = CFG(max_future_ms)},
    {OPT(OPT_SIZE, "max_message_bytes", "65536",
         "Larger input messages go to the dead-letter topic; 256 to 16777216"),
     .off = CFG(max_message_bytes), .lo = 256, .hi = 16777216},
    {OPT(OPT_SIZE, "max_in_flight", "20000",
         "Events consumed but not yet committed before consumption pauses; 1 to 1000000"),
     .off = CFG(max_in_flight), .lo = 1, .hi = 1000000},
    {OPT(OPT_KV, "segment.events", "{}",
         "Segment track event names and the funneld event types they become, "
         "{\"Order Completed\": \"purchase\"}; a name not listed is the type as it is"),
     RELOADABLE, .off = CFG(segment_events), .off_n = CFG(n_segment_events),
     .kv_check = check_type_map, .flags = OPT_STRING_VALUES},
    {OPT(OPT_KV, "segment.channels", SEGMENT_CHANNELS_DEFAULT,
         "The channel of a Segment event by its medium (properties.medium, else "
         "context.campaign.medium; compared in lower case)"),
     RELOADABLE, .off = CFG(segment_channels), .off_n = CFG(n_segment_channels),
     .kv_check = check_channel_map, .flags = OPT_STRING_VALUES},
    {OPT(OPT_STRING, "segment.default_channel", "\"web\"",
         "The channel of a Segment event without a medium, or with one not in segment.channels"),
     RELOADABLE, .off = CFG(segment_default_channel), .check = check_channel},
    {OPT(OPT_STRINGS, "identity.blocked",
         "[\"\", \"null\", \"undefined\", \"anonymous\", \"0\", \"-1\"]",
         "Ids an identify never merges (compared case-blind): an identify naming one is "
         "dead-lettered as merge_refused"),
     RELOADABLE, .off = CFG(identity_blocked), .off_n = CFG(n_identity_blocked),
     .flags = OPT_EMPTY_OK},
    {OPT(OPT_INT, "identity.max_ids", "100",
         "Most ids one person's lead may hold, its own included; an identify that would make "
         "more is dead-lettered as merge_refused; 2 to 100000"),
     RELOADABLE, .off = CFG(identity_max_ids), .lo = 2, .hi = 100000},
    {OPT(OPT_ARRAY, "funnels", NULL,
         "The funnels, run side by side; an event without a funnel field is offered to each"),
     RELOADABLE, .flags = OPT_REQUIRED, .parse = parse_funnels, .release = release_funnels},
};

/* Everything under funnels[] is reloadable, as funnels is: a reload exists to change them. */
#define FUN(f) offsetof(fn_funnel_t, f)
static const opt_t funnel_opts[] = {
    {OPT(OPT_STRING, "funnels[].name", NULL,
         "Unique funnel name, 1 to 64 characters of A-Z a-z 0-9 _ . -"),
     RELOADABLE, .off = FUN(name), .flags = OPT_REQUIRED, .check = check_name},
    {OPT(OPT_ARRAY, "funnels[].stages", NULL,
         "1 to 60 stages in funnel order; an event matching stage k means the lead reached k"),
     RELOADABLE, .flags = OPT_REQUIRED, .parse = parse_stages, .release = release_stages},
    {OPT(OPT_OBJECT, "funnels[].lost", NULL, "Events that move a lead to the terminal lost state"),
     RELOADABLE, .parse = parse_lost, .release = release_lost},
    {OPT(OPT_BOOL, "funnels[].allow_skip", "false",
         "Move straight to a later matched stage, listing the stages passed over; otherwise "
         "move one stage forward"),
     RELOADABLE, .off = FUN(allow_skip)},
    {OPT(OPT_BOOL, "funnels[].allow_regress", "false",
         "Move a lead back to an earlier matched stage; otherwise such an event is a touch"),
     RELOADABLE, .off = FUN(allow_regress)},
    {OPT(OPT_ARRAY, "funnels[].retarget", NULL,
         "Retargeting rules: trigger when an after event is not followed by an unless event "
         "within the time"),
     RELOADABLE, .parse = parse_retarget, .release = release_retarget},
    {OPT(OPT_OBJECT, "funnels[].bottleneck", NULL,
         "Bottleneck detection, enabled when present: a stage's flow over window falls below "
         "(1 - drop) times its flow over baseline"),
     RELOADABLE, .parse = parse_bottleneck},
    {OPT(OPT_OBJECT, "funnels[].trigger_cap", NULL,
         "At most max retargeting triggers per lead in any span of per"),
     RELOADABLE, .parse = parse_trigger_cap},
    {OPT(OPT_OBJECT, "funnels[].attribution", NULL,
         "Multi-touch attribution, on when present: each conversion's credit per model, and "
         "conversions and revenue credited per channel and campaign in snapshots"),
     RELOADABLE, .parse = parse_attribution},
    {OPT(OPT_INT, "funnels[].cohorts", "8",
         "Weekly cohorts of funnel entry in snapshots: the last this many weeks (0 to 52), each "
         "with the leads that entered and how many reached each stage; 0: not counted"),
     RELOADABLE, .off = FUN(cohorts), .lo = 0, .hi = 52},
    {OPT(OPT_ARRAY, "funnels[].breakdowns", "[]",
         "Dimensions whose values get their own stage figures in snapshots (at most 4): "
         "channel, campaign, source or props.<key>, each a string (the lead's first touch) or "
         "{\"dimension\", \"touch\": \"first\" or \"last\"}; a lead's value is taken when it "
         "enters the funnel"),
     RELOADABLE, .parse = parse_breakdowns},
    {OPT(OPT_INT, "funnels[].max_breakdown", "100",
         "Values kept by name per dimension (channels and campaigns of conversions, credit and "
         "cost, breakdown values), 1 to 10000; the rest are summed under \"(other)\""),
     RELOADABLE, .off = FUN(max_breakdown), .lo = 1, .hi = 10000},
};

#define STG(f) offsetof(fn_stage_t, f)
static const opt_t stage_opts[] = {
    {OPT(OPT_STRING, "funnels[].stages[].name", NULL,
         "Stage name, unique in the funnel, 1 to 64 bytes without control characters"),
     RELOADABLE, .off = STG(name), .flags = OPT_REQUIRED, .check = check_stage_name},
    {OPT(OPT_ARRAY, "funnels[].stages[].on", NULL,
         "Matchers: an event matching any of them means the lead reached this stage"),
     RELOADABLE, .flags = OPT_REQUIRED, .parse = parse_stage_on, .release = release_stage_on},
    {OPT(OPT_DURATION, "funnels[].stages[].stale_after", "0",
         "Idle time after which a lead in this stage triggers a stalled retarget; 0: never"),
     RELOADABLE, .off = STG(stale_after_ms)},
    {OPT(OPT_NUMBER, "funnels[].stages[].probability", "0",
         "Chance 0 to 1 that a lead here closes, for the weighted pipeline; 1 for the "
         "conversion stage when absent"),
     RELOADABLE, .off = STG(probability), .lo = 0, .hi = 1},
    {OPT(OPT_BOOL, "funnels[].stages[].conversion", "false",
         "Reaching this stage converts the lead; at most one, and it must be the last stage"),
     RELOADABLE, .off = STG(conversion)},
};

/* Documented once, under stages[].on[]; the same table reads lost.on[], retarget[].after and
 * retarget[].unless[]. */
#define MAT(f) offsetof(fn_matcher_t, f)
static const opt_t matcher_opts[] = {
    {OPT(OPT_STRING, "funnels[].stages[].on[].channel", NULL,
         "The event's channel must equal this"),
     RELOADABLE, .off = MAT(channel), .lo = 1},
    {OPT(OPT_STRING, "funnels[].stages[].on[].type", NULL, "The event's type must equal this"),
     RELOADABLE, .off = MAT(type), .lo = 1},
    {OPT(OPT_OBJECT, "funnels[].stages[].on[].props", NULL,
         "Each key's value (string, number or boolean) must equal the event's props value"),
     RELOADABLE, .parse = parse_props, .release = release_props},
};

static const opt_t lost_opts[] = {
    {OPT(OPT_ARRAY, "funnels[].lost.on", NULL,
         "Matchers: an event matching any of them means the lead is lost"),
     RELOADABLE, .flags = OPT_REQUIRED, .parse = parse_lost_on, .release = release_lost_on},
};

#define RT(f) offsetof(fn_retarget_rule_t, f)
static const opt_t retarget_opts[] = {
    {OPT(OPT_STRING, "funnels[].retarget[].name", NULL,
         "Unique rule name, the retarget event's reason; A-Z a-z 0-9 _ . -, not \"stalled\""),
     RELOADABLE, .off = RT(name), .flags = OPT_REQUIRED, .check = check_rule_name},
    {OPT(OPT_OBJECT, "funnels[].retarget[].after", NULL, "Matcher of the event that arms the rule"),
     RELOADABLE, .flags = OPT_REQUIRED, .parse = parse_after, .release = release_after},
    {OPT(OPT_ARRAY, "funnels[].retarget[].unless", NULL,
         "Matchers of events that disarm the rule before it fires"),
     RELOADABLE, .parse = parse_unless, .release = release_unless},
    {OPT(OPT_DURATION, "funnels[].retarget[].within", NULL,
         "The rule fires when no unless event arrives within this time after the after event"),
     RELOADABLE, .off = RT(within_ms), .flags = OPT_REQUIRED | OPT_POSITIVE},
};

#define BN(f) offsetof(fn_bottleneck_cfg_t, f)
static const opt_t bottleneck_opts[] = {
    {OPT(OPT_DURATION, "funnels[].bottleneck.window", "\"1h\"",
         "Recent span whose stage-to-stage flow is compared with the baseline"),
     RELOADABLE, .off = BN(window_ms), .flags = OPT_POSITIVE},
    {OPT(OPT_DURATION, "funnels[].bottleneck.baseline", "\"24h\"",
         "Longer span giving the normal flow; must be longer than window"),
     RELOADABLE, .off = BN(baseline_ms), .flags = OPT_POSITIVE},
    {OPT(OPT_INT64, "funnels[].bottleneck.min_entered", "30",
         "Leads that must have entered the stage in both spans before it is judged"),
     RELOADABLE, .off = BN(min_entered), .lo = 1},
    {OPT(OPT_NUMBER, "funnels[].bottleneck.drop", "0.5",
         "Relative fall of the flow that counts as a bottleneck, between 0 and 1 exclusive"),
     RELOADABLE, .off = BN(drop), .lo = 0, .hi = 1, .flags = OPT_LO_EXCL | OPT_HI_EXCL},
    {OPT(OPT_DURATION, "funnels[].bottleneck.evaluate_every", "\"10s\"",
         "How often bottlenecks are evaluated and funnel snapshots emitted"),
     RELOADABLE, .off = BN(evaluate_every_ms), .flags = OPT_POSITIVE},
};

#define ATR(f) offsetof(fn_attribution_cfg_t, f)
static const opt_t attribution_opts[] = {
    {OPT(OPT_ARRAY, "funnels[].attribution.models", "[\"first_touch\"]",
         "Models, each once: first_touch, last_touch, linear, time_decay, position_based "
         "(40 % first, 40 % last, 20 % over the middle), markov (data-driven: each channel's "
         "removal effect in a Markov chain of the funnel's journeys; never alone); the first "
         "that is not markov credits each conversion and the cost figures"),
     RELOADABLE, .parse = parse_attr_models},
    {OPT(OPT_DURATION, "funnels[].attribution.lookback", "\"90d\"",
         "Touches longer than this before the conversion get no credit"),
     RELOADABLE, .off = ATR(lookback_ms), .flags = OPT_POSITIVE},
    {OPT(OPT_INT64, "funnels[].attribution.max_touches", "50",
         "The most recent touches that share the credit, 1 to 200; also how many a lead keeps"),
     RELOADABLE, .off = ATR(max_touches), .lo = 1, .hi = 200},
    {OPT(OPT_DURATION, "funnels[].attribution.half_life", "\"7d\"",
         "time_decay: a touch this long before the conversion weighs half as much as one at it"),
     RELOADABLE, .off = ATR(half_life_ms), .flags = OPT_POSITIVE},
};

static const opt_t cap_opts[] = {
    {OPT(OPT_INT64, "funnels[].trigger_cap.max", NULL,
         "Most retargeting triggers one lead may receive in any span of per"),
     RELOADABLE, .off = FUN(trigger_cap_max), .flags = OPT_REQUIRED, .lo = 1},
    {OPT(OPT_DURATION, "funnels[].trigger_cap.per", NULL, "The span the cap applies to"),
     RELOADABLE, .off = FUN(trigger_cap_per_ms), .flags = OPT_REQUIRED | OPT_POSITIVE},
};

static const opt_table_t top_table = {"", top_opts, N_OF(top_opts), NULL};
static const opt_table_t funnel_table = {"funnels[].", funnel_opts, N_OF(funnel_opts),
                                         finish_funnel};
static const opt_table_t stage_table = {"funnels[].stages[].", stage_opts, N_OF(stage_opts),
                                        finish_stage};
static const opt_table_t matcher_table = {"funnels[].stages[].on[].", matcher_opts,
                                          N_OF(matcher_opts), finish_matcher};
static const opt_table_t lost_table = {"funnels[].lost.", lost_opts, N_OF(lost_opts), NULL};
static const opt_table_t retarget_table = {"funnels[].retarget[].", retarget_opts,
                                           N_OF(retarget_opts), NULL};
static const opt_table_t bottleneck_table = {"funnels[].bottleneck.", bottleneck_opts,
                                             N_OF(bottleneck_opts), finish_bottleneck};
static const opt_table_t cap_table = {"funnels[].trigger_cap.", cap_opts, N_OF(cap_opts), NULL};
static const opt_table_t attribution_table = {"funnels[].attribution.", attribution_opts,
                                              N_OF(attribution_opts), NULL};

/* parse_object records which fields were present in a 64-bit mask */
_Static_assert(N_OF(top_opts) <= 64, "a table has at most 64 options");

static const opt_table_t *const all_tables[] = {
    &top_table,      &funnel_table,     &stage_table, &matcher_table,     &lost_table,
    &retarget_table, &bottleneck_table, &cap_table,   &attribution_table,
};

const fn_config_option_t *fn_config_option(size_t i)
{
    for (size_t t = 0; t < N_OF(all_tables); t++) {
        if (i < all_tables[t]->n)
            return &all_tables[t]->opts[i].info;
        i -= all_tables[t]->n;
    }
    return NULL;
}

/* ---- the generic walker ----------------------------------------------------------------- */

static const char *opt_key(const opt_table_t *t, const opt_t *o)
{
    return o->info.path + strlen(t->prefix);
}

static bool has(const opt_table_t *t, uint64_t present, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(opt_key(t, &t->opts[i]), key) == 0)
            return present & ((uint64_t)1 << i);
    return false;
}

/* Looks a dotted key up in obj ("topics.dlq" is obj.topics.dlq). */
static json_t *lookup(json_t *obj, const char *key)
{
    for (;;) {
        const char *dot = strchr(key, '.');
        if (!dot)
            return json_object_get(obj, key);
        obj = json_object_getn(obj, key, (size_t)(dot - key));
        if (!json_is_object(obj))
            return NULL;
        key = dot + 1;
    }
}

/* Rejects every key of obj the table does not declare, so a typo never passes silently.
 * sect is the dotted section obj stands for inside the table ("kafka.topics." at the top). */
static int check_keys(parse_ctx_t *c, const opt_table_t *t, json_t *obj, const char *path,
                      const char *sect)
{
    const char *key;
    json_t *v;
    json_object_foreach (obj, key, v) {
        char full[PATH_LEN], sub[PATH_LEN];
        size_t flen = (size_t)snprintf(full, sizeof full, "%s%s", sect, key);
        path_key(sub, path, key);
        /* a key with a dot or a NUL would alias a section path; no declared key has one */
        if (strchr(key, '.') || key_has_nul(key) || flen >= sizeof full)
            return fail(c, sub, "unknown field");
        bool known = false, section = false;
        for (size_t i = 0; i < t->n && !known; i++) {
            const char *k = opt_key(t, &t->opts[i]);
            known = strcmp(k, full) == 0;
            section |= strncmp(k, full, flen) == 0 && k[flen] == '.';
        }
        if (known)
            continue;
        if (!section)
            return fail(c, sub, "unknown field");
        if (!json_is_object(v))
            return fail(c, sub, "expected an object, got %s", type_name(v));
        char subsect[PATH_LEN + 2];
        snprintf(subsect, sizeof subsect, "%s.", full);
        if (check_keys(c, t, v, sub, subsect))
            return FN_ERR;
    }
    return FN_OK;
}

static int parse_duration(parse_ctx_t *c, json_t *v, const char *path, unsigned flags, int64_t *out)
{
    int64_t ms = -1;
    if (json_is_string(v)) {
        if (fn_duration_parse(json_string_value(v), &ms))
            ms = -1;
    } else if (json_is_integer(v)) {
        ms = json_integer_value(v);
    }
    if (ms < 0)
        return fail(c, path,
                    "not a duration (use \"90s\", \"15m\", \"48h\", \"7d\" or integer "
                    "milliseconds)");
    if ((flags & OPT_POSITIVE) && ms == 0)
        return fail(c, path, "must be greater than 0");
    /* durations are added to epoch milliseconds everywhere; a cap keeps that far from
     * overflow, and nothing in a sales funnel needs more than ten years */
    if (ms > MAX_DURATION_MS)
        return fail(c, path, "must be at most 3650d");
    *out = ms;
    return FN_OK;
}

static int set_string(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, char **dst)
{
    if (!json_is_string(v))
        return fail(c, path, "expected a string, got %s", type_name(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len)
        return fail(c, path, "must not contain NUL characters");
    if (len < o->lo || (o->hi && len > o->hi)) {
        if (o->hi)
            return fail(c, path, "must be %.0f to %.0f bytes long", o->lo, o->hi);
        return fail(c, path, "must not be empty");
    }
    const char *what = o->check ? o->check(s, len) : NULL;
    if (what)
        return fail(c, path, "%s", what);
    free(*dst);
    if (!(*dst = strdup(s)))
        return oom(c, path);
    return FN_OK;
}

static int set_strings(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, char ***dst,
                       size_t *n)
{
    size_t i;
    json_t *e;
    bool empty_ok = o->flags & OPT_EMPTY_OK;
    if (!json_is_array(v) || (json_array_size(v) == 0 && !empty_ok))
        goto bad;
    json_array_foreach (v, i, e) {
        if (!json_is_string(e) || (json_string_length(e) == 0 && !empty_ok) ||
            strlen(json_string_value(e)) != json_string_length(e))
            goto bad;
    }
    if (json_array_size(v) && !(*dst = calloc(json_array_size(v), sizeof **dst)))
        return oom(c, path);
    *n = json_array_size(v);
    json_array_foreach (v, i, e) {
        if (!((*dst)[i] = strdup(json_string_value(e))))
            return oom(c, path);
    }
    return FN_OK;
bad:
    return fail(c, path,
                empty_ok ? "must be an array of strings without NUL characters"
                         : "must be a non-empty array of strings");
}

/* librdkafka takes every property as text, so numbers and booleans are written the way its
 * documentation spells them: 5 → "5", true → "true". */
static int scalar_text(json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return FN_OK;
    case JSON_REAL: /* the shortest text that reads back as the same double */
        snprintf(buf, len, "%.15g", json_real_value(v));
        if (strtod(buf, NULL) != json_real_value(v))
            snprintf(buf, len, "%.17g", json_real_value(v));
        return FN_OK;
    case JSON_TRUE:
    case JSON_FALSE:
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
        return FN_OK;
    default:
        return FN_ERR;
    }
}

static int set_kv(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, fn_kv_t **dst,
                  size_t *n)
{
    if (!json_is_object(v))
        return fail(c, path, "expected an object, got %s", type_name(v));
    if (json_object_size(v) && !(*dst = calloc(json_object_size(v), sizeof **dst)))
        return oom(c, path);
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        char buf[64], sub[PATH_LEN];
        const char *text = buf;
        path_key(sub, path, key);
        if (key_has_nul(key))
            return fail(c, sub, "property names must not contain NUL characters");
        if (json_is_string(e))
            text = json_string_value(e);
        else if (o->flags & OPT_STRING_VALUES)
            return fail(c, sub, "expected a string, got %s", type_name(e));
        else if (scalar_text(e, buf, sizeof buf))
            return fail(c, sub, "expected a string, number or boolean, got %s", type_name(e));
        const char *why = o->kv_check ? o->kv_check(key, text) : NULL;
        if (why)
            return fail(c, sub, "%s", why);
        fn_kv_t *kv = &(*dst)[(*n)++];
        if (!(kv->key = strdup(key)) || !(kv->value = strdup(text)))
            return oom(c, sub);
    }
    return FN_OK;
}

static int set_integer(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, json_int_t *out)
{
    if (!json_is_integer(v))
        return fail(c, path, "expected an integer, got %s", type_name(v));
    json_int_t x = json_integer_value(v);
    if ((double)x < o->lo || (o->hi && (double)x > o->hi)) {
        if (o->hi)
            return fail(c, path, "must be an integer from %.0f to %.0f", o->lo, o->hi);
        return fail(c, path, "must be an integer of at least %.0f", o->lo);
    }
    *out = x;
    return FN_OK;
}

static int set_number(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, double *out)
{
    if (!json_is_number(v))
        return fail(c, path, "expected a number, got %s", type_name(v));
    double x = json_number_value(v);
    bool lo_ok = (o->flags & OPT_LO_EXCL) ? x > o->lo : x >= o->lo;
    bool hi_ok = (o->flags & OPT_HI_EXCL) ? x < o->hi : x <= o->hi;
    if (!lo_ok || !hi_ok) {
        if (o->flags & (OPT_LO_EXCL | OPT_HI_EXCL))
            return fail(c, path, "must be a number greater than %g and less than %g", o->lo, o->hi);
        return fail(c, path, "must be a number from %g to %g", o->lo, o->hi);
    }
    *out = x;
    return FN_OK;
}

static int set_enum(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, int *out)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    for (int i = 0; s && o->choices[i]; i++)
        if (strcmp(s, o->choices[i]) == 0) {
            *out = i;
            return FN_OK;
        }
    char list[128];
    size_t used = 0;
    for (int i = 0; o->choices[i] && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s\"%s\"",
                                 i == 0              ? ""
                                 : o->choices[i + 1] ? ", "
                                                     : " or ",
                                 o->choices[i]);
    return fail(c, path, "must be %s", list);
}

/* The enum's storage is read as an int; fn_clock_t is the only enum we store. */
_Static_assert(sizeof(fn_clock_t) == sizeof(int), "enum options are stored as int");

static int set_value(parse_ctx_t *c, const opt_t *o, json_t *v, const char *path, void *base)
{
    char *field = (char *)base + o->off;
    json_int_t i;
    switch (o->kind) {
    case OPT_STRING:
        return set_string(c, o, v, path, (char **)field);
    case OPT_STRINGS:
        return set_strings(c, o, v, path, (char ***)field, (size_t *)((char *)base + o->off_n));
    case OPT_KV:
        return set_kv(c, o, v, path, (fn_kv_t **)field, (size_t *)((char *)base + o->off_n));
    case OPT_INT:
        if (set_integer(c, o, v, path, &i))
            return FN_ERR;
        *(int *)field = (int)i;
        return FN_OK;
    case OPT_INT64:
        if (set_integer(c, o, v, path, &i))
            return FN_ERR;
        *(int64_t *)field = i;
        return FN_OK;
    case OPT_SIZE:
        if (set_integer(c, o, v, path, &i))
            return FN_ERR;
        *(size_t *)field = (size_t)i;
        return FN_OK;
    case OPT_DURATION:
        return parse_duration(c, v, path, o->flags, (int64_t *)field);
    case OPT_NUMBER:
        return set_number(c, o, v, path, (double *)field);
    case OPT_BOOL:
        if (!json_is_boolean(v))
            return fail(c, path, "expected true or false, got %s", type_name(v));
        *(bool *)field = json_is_true(v);
        return FN_OK;
    case OPT_ENUM:
        return set_enum(c, o, v, path, (int *)field);
    case OPT_OBJECT:
    case OPT_ARRAY:
        return o->parse(c, v, path, base);
    }
    return fail(c, path, "internal error: unknown option kind");
}

/* Parses obj into base with table t: unknown keys first (so a misspelt key is reported as
 * such, not as the missing field it was meant to be), then every declared field in table
 * order, then the table's cross-field checks. */
static int parse_object(parse_ctx_t *c, const opt_table_t *t, json_t *obj, const char *path,
                        void *base)
{
    if (!json_is_object(obj))
        return fail(c, path, "expected an object, got %s", type_name(obj));
    if (check_keys(c, t, obj, path, ""))
        return FN_ERR;
    uint64_t present = 0;
    for (size_t i = 0; i < t->n; i++) {
        const opt_t *o = &t->opts[i];
        char sub[PATH_LEN];
        path_field(sub, path, opt_key(t, o));
        json_t *v = lookup(obj, opt_key(t, o));
        if (v) {
            present |= (uint64_t)1 << i;
            if (set_value(c, o, v, sub, base))
                return FN_ERR;
            continue;
        }
        if (o->flags & OPT_REQUIRED)
            return fail(c, sub, "is required");
        if (!o->info.def)
            continue; /* optional with no default: the field stays zero */
        json_t *def = json_loads(o->info.def, JSON_DECODE_ANY, NULL);
        if (!def)
            return fail(c, sub, "internal error: bad default %s", o->info.def);
        int rc = set_value(c, o, def, sub, base);
        json_decref(def);
        if (rc)
            return FN_ERR;
    }
    return t->finish ? t->finish(c, t, base, present, path) : FN_OK;
}

/* ---- nested values ---------------------------------------------------------------------- */

static int parse_matchers(parse_ctx_t *c, json_t *v, const char *path, bool nonempty,
                          fn_matcher_t **out, size_t *n)
{
    if (!json_is_array(v) || (nonempty && json_array_size(v) == 0))
        return fail(c, path, "must be %s array of matchers", nonempty ? "a non-empty" : "an");
    size_t count = json_array_size(v);
    if (count && !(*out = calloc(count, sizeof **out)))
        return oom(c, path);
    *n = count;
    for (size_t i = 0; i < count; i++) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        if (parse_object(c, &matcher_table, json_array_get(v, i), sub, &(*out)[i]))
            return FN_ERR;
    }
    return FN_OK;
}

static int finish_matcher(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                          const char *path)
{
    (void)t, (void)base;
    /* an empty matcher would match every event: certainly not what anyone meant */
    if (!present)
        return fail(c, path, "a matcher needs at least one of channel, type or props");
    return FN_OK;
}

static int parse_props(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_matcher_t *m = base;
    if (!json_is_object(v) || json_object_size(v) == 0)
        return fail(c, path, "must be a non-empty object of strings, numbers or booleans");
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        /* matching is equality, which is only meaningful for scalars */
        if (!json_is_string(e) && !json_is_number(e) && !json_is_boolean(e)) {
            char sub[PATH_LEN];
            path_key(sub, path, key);
            return fail(c, sub, "expected a string, number or boolean, got %s", type_name(e));
        }
    }
    m->props = json_incref(v);
    return FN_OK;
}

static int parse_stage_on(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_stage_t *s = base;
    return parse_matchers(c, v, path, true, &s->on, &s->n_on);
}

static int finish_stage(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                        const char *path)
{
    fn_stage_t *s = base;
    (void)c, (void)path;
    /* a converted lead has closed, so the forecast counts it at full value unless told */
    if (s->conversion && !has(t, present, "probability"))
        s->probability = 1.0;
    return FN_OK;
}

/* Conversion ends the funnel (SPEC §3: after it events are touches only), so a conversion
 * stage anywhere but last would leave the stages after it unreachable. */
static int check_conversion(parse_ctx_t *c, fn_funnel_t *f, const char *path)
{
    int first = -1;
    for (size_t i = 0; i < f->n_stages; i++) {
        if (!f->stages[i].conversion)
            continue;
        char sub[PATH_LEN], conv[PATH_LEN];
        path_index(sub, path, i);
        path_field(conv, sub, "conversion");
        if (first >= 0)
            return fail(c, conv, "only one stage can be the conversion stage (stages[%d] is)",
                        first);
        first = (int)i;
    }
    if (first >= 0 && (size_t)first != f->n_stages - 1) {
        char sub[PATH_LEN], conv[PATH_LEN];
        path_index(sub, path, (size_t)first);
        path_field(conv, sub, "conversion");
        return fail(c, conv,
                    "the conversion stage must be the last: conversion ends the funnel, so "
                    "stages after it could never be reached");
    }
    f->conversion_index = first;
    return FN_OK;
}

static int parse_stages(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_funnel_t *f = base;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n < 1 || n > FN_MAX_STAGES)
        return fail(c, path, "must be an array of 1 to %d stages", FN_MAX_STAGES);
    if (!(f->stages = calloc(n, sizeof *f->stages)))
        return oom(c, path);
    f->n_stages = n;
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        if (parse_object(c, &stage_table, json_array_get(v, i), sub, &f->stages[i]))
            return FN_ERR;
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->stages[j].name, f->stages[i].name) == 0)
                return fail(c, path, "stage name \"%s\" is used twice", f->stages[i].name);
    }
    return check_conversion(c, f, path);
}

static int parse_lost_on(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_funnel_t *f = base;
    return parse_matchers(c, v, path, true, &f->lost_on, &f->n_lost_on);
}

static int parse_lost(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    return parse_object(c, &lost_table, v, path, base);
}

static int parse_after(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_retarget_rule_t *r = base;
    return parse_object(c, &matcher_table, v, path, &r->after);
}

static int parse_unless(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_retarget_rule_t *r = base;
    return parse_matchers(c, v, path, false, &r->unless, &r->n_unless);
}

static int parse_retarget(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_funnel_t *f = base;
    if (!json_is_array(v))
        return fail(c, path, "must be an array of retarget rules, got %s", type_name(v));
    size_t n = json_array_size(v);
    if (n > FN_MAX_RULES)
        return fail(c, path, "at most %d retarget rules per funnel, got %zu", FN_MAX_RULES, n);
    if (n && !(f->retarget = calloc(n, sizeof *f->retarget)))
        return oom(c, path);
    f->n_retarget = n;
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        if (parse_object(c, &retarget_table, json_array_get(v, i), sub, &f->retarget[i]))
            return FN_ERR;
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->retarget[j].name, f->retarget[i].name) == 0)
                return fail(c, path, "rule name \"%s\" is used twice", f->retarget[i].name);
    }
    return FN_OK;
}

static int finish_bottleneck(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                             const char *path)
{
    fn_bottleneck_cfg_t *b = base;
    (void)t, (void)present;
    /* the baseline is the "normal" the window is compared with; a shorter one is just noise */
    if (b->baseline_ms <= b->window_ms) {
        char sub[PATH_LEN];
        path_field(sub, path, "baseline");
        return fail(c, sub, "must be longer than window");
    }
    /* daemon/analytics/analytics.lua keeps flow counts 32 days */
    if (b->baseline_ms > 30 * 86400000LL) {
        char sub[PATH_LEN];
        path_field(sub, path, "baseline");
        return fail(c, sub, "must be at most 30d");
    }
    if (b->evaluate_every_ms < 1000) {
        char sub[PATH_LEN];
        path_field(sub, path, "evaluate_every");
        return fail(c, sub, "must be at least 1s");
    }
    return FN_OK;
}

static int parse_bottleneck(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_funnel_t *f = base;
    if (parse_object(c, &bottleneck_table, v, path, &f->bottleneck))
        return FN_ERR;
    f->bottleneck.enabled = true;
    return FN_OK;
}

static const char *const attr_model_names[FN_ATTR_N_MODELS] = {
    [FN_ATTR_FIRST_TOUCH] = "first_touch",
    [FN_ATTR_LAST_TOUCH] = "last_touch",
    [FN_ATTR_LINEAR] = "linear",
    [FN_ATTR_TIME_DECAY] = "time_decay",
    [FN_ATTR_POSITION_BASED] = "position_based",
    [FN_ATTR_MARKOV] = "markov"};

const char *fn_attr_model_name(int model)
{
    return model >= 0 && model < FN_ATTR_N_MODELS ? attr_model_names[model] : NULL;
}

int fn_attr_credit_model(const fn_attribution_cfg_t *a)
{
    for (int i = 0; a->enabled && i < a->n_models; i++)
        if (a->models[i] != FN_ATTR_MARKOV)
            return a->models[i];
    return -1;
}

bool fn_attr_has_markov(const fn_attribution_cfg_t *a)
{
    for (int i = 0; a->enabled && i < a->n_models; i++)
        if (a->models[i] == FN_ATTR_MARKOV)
            return true;
    return false;
}

static int parse_attr_models(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_attribution_cfg_t *a = base;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, path, "must be a non-empty array of model names, got %s", type_name(v));
    a->n_models = 0;
    size_t i;
    json_t *m;
    json_array_foreach (v, i, m) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        int k = 0;
        while (k < FN_ATTR_N_MODELS &&
               !(json_is_string(m) && strcmp(json_string_value(m), attr_model_names[k]) == 0))
            k++;
        if (k == FN_ATTR_N_MODELS)
            return fail(c, sub,
                        "must be one of first_touch, last_touch, linear, time_decay, "
                        "position_based, markov");
        for (int j = 0; j < a->n_models; j++)
            if (a->models[j] == k)
                return fail(c, sub, "\"%s\" is named twice", attr_model_names[k]);
        a->models[a->n_models++] = k;
    }
    if (a->n_models == 1 && a->models[0] == FN_ATTR_MARKOV)
        return fail(c, path,
                    "markov alone credits no single conversion: name a rule-based model too "
                    "(the first of them credits each conversion and the cost figures)");
    return FN_OK;
}

/* "channel", "campaign", "source" or "props.<key>" (a key of name characters, since the
 * dimension is part of counter names) into b; an error text, or NULL. */
static const char *breakdown_dim(const char *s, fn_breakdown_cfg_t *b)
{
    static const char *const fixed[] = {"channel", "campaign", "source"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, fixed[i]) == 0) {
            b->source = (fn_bd_source_t)i;
            snprintf(b->dim, sizeof b->dim, "%s", s);
            return NULL;
        }
    size_t len = strlen(s);
    if (strncmp(s, "props.", 6) != 0 || len - 6 < 1 || len - 6 > FN_NAME_MAX ||
        !name_chars(s + 6, len - 6))
        return "must be channel, campaign, source or props.<key> (a key of 1 to 64 characters "
               "of A-Z a-z 0-9 _ . -)";
    b->source = FN_BD_PROP;
    snprintf(b->dim, sizeof b->dim, "%s", s);
    return NULL;
}

static int parse_breakdowns(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_funnel_t *f = base;
    if (!json_is_array(v) || json_array_size(v) > FN_MAX_BREAKDOWNS)
        return fail(c, path, "must be an array of at most %d dimensions, got %s", FN_MAX_BREAKDOWNS,
                    json_is_array(v) ? "more" : type_name(v));
    f->n_breakdowns = 0;
    size_t i;
    json_t *d;
    json_array_foreach (v, i, d) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        fn_breakdown_cfg_t *b = &f->breakdowns[f->n_breakdowns];
        *b = (fn_breakdown_cfg_t){0};
        json_t *dim = d, *touch = NULL;
        if (json_is_object(d)) {
            const char *k;
            json_t *x;
            json_object_foreach (d, k, x)
                if (strcmp(k, "dimension") != 0 && strcmp(k, "touch") != 0) {
                    char field[PATH_LEN];
                    path_key(field, sub, k);
                    return fail(c, field, "unknown field");
                }
            dim = json_object_get(d, "dimension");
            touch = json_object_get(d, "touch");
            if (!dim)
                return fail(c, strcat(sub, ".dimension"), "is required");
        }
        const char *err = json_is_string(dim) ? breakdown_dim(json_string_value(dim), b)
                                              : "must be a dimension name or an object";
        if (err)
            return fail(c, json_is_object(d) ? strcat(sub, ".dimension") : sub, "%s", err);
        if (touch && !(json_is_string(touch) && (strcmp(json_string_value(touch), "first") == 0 ||
                                                 strcmp(json_string_value(touch), "last") == 0)))
            return fail(c, strcat(sub, ".touch"), "must be \"first\" or \"last\"");
        b->last = touch && strcmp(json_string_value(touch), "last") == 0;
        for (int j = 0; j < f->n_breakdowns; j++)
            if (strcmp(f->breakdowns[j].dim, b->dim) == 0)
                return fail(c, sub, "\"%s\" is named twice", b->dim);
        f->n_breakdowns++;
    }
    return FN_OK;
}

static int parse_attribution(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_funnel_t *f = base;
    fn_attribution_cfg_t *a = &f->attribution;
    a->n_models = 1; /* the default, unless "models" says otherwise */
    a->models[0] = FN_ATTR_FIRST_TOUCH;
    if (parse_object(c, &attribution_table, v, path, a))
        return FN_ERR;
    a->enabled = true;
    return FN_OK;
}

static int parse_trigger_cap(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    return parse_object(c, &cap_table, v, path, base);
}

static int finish_funnel(parse_ctx_t *c, const opt_table_t *t, void *base, uint64_t present,
                         const char *path)
{
    fn_funnel_t *f = base;
    if (has(t, present, "bottleneck"))
        return FN_OK;
    /* Without a "bottleneck" object detection is off, but the window and evaluate_every still
     * carry their defaults: snapshots are emitted every evaluate_every regardless. */
    json_t *empty = json_object();
    char sub[PATH_LEN];
    path_field(sub, path, "bottleneck");
    if (!empty)
        return oom(c, sub);
    int rc = parse_object(c, &bottleneck_table, empty, sub, &f->bottleneck);
    json_decref(empty);
    f->bottleneck.enabled = false;
    return rc;
}

static int parse_funnels(parse_ctx_t *c, json_t *v, const char *path, void *base)
{
    fn_config_t *cfg = base;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, path, "must be a non-empty array of funnels");
    size_t n = json_array_size(v);
    /* One step carries every funnel an event is routed to, in one Lua call. */
    if (n > FN_MAX_FUNNELS)
        return fail(c, path, "at most %d funnels, got %zu", FN_MAX_FUNNELS, n);
    if (!(cfg->funnels = calloc(n, sizeof *cfg->funnels)))
        return oom(c, path);
    cfg->n_funnels = n;
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_LEN];
        path_index(sub, path, i);
        cfg->funnels[i].conversion_index = -1;
        if (parse_object(c, &funnel_table, json_array_get(v, i), sub, &cfg->funnels[i]))
            return FN_ERR;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->funnels[j].name, cfg->funnels[i].name) == 0)
                return fail(c, path, "funnel name \"%s\" is used twice", cfg->funnels[i].name);
    }
    return FN_OK;
}

/* A cluster has database 0 only; a seed is host:port. Checked after the environment, which
 * may change the URL. */
static int check_cluster(parse_ctx_t *c, const fn_config_t *cfg)
{
    char host[256], user[128], pass[256];
    int port, db;
    if (cfg->redis_cluster &&
        fn_redis_url_parse(cfg->redis_url, host, sizeof host, &port, user, sizeof user, pass,
                           sizeof pass, &db) == 0 &&
        db != 0)
        return fail(c, "redis.url", "a Redis Cluster has database 0 only (redis.cluster is true)");
    for (size_t i = 0; i < cfg->n_redis_seeds; i++) {
        char path[32];
        snprintf(path, sizeof path, "redis.seeds[%zu]", i);
        if (fn_redis_seed_parse(cfg->redis_seeds[i], host, sizeof host, &port))
            return fail(c, path, "must be host:port");
    }
    return FN_OK;
}

static int check_input_formats(parse_ctx_t *c, const fn_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_input_formats; i++) {
        bool found = false;
        for (size_t t = 0; t < cfg->n_input_topics && !found; t++)
            found = strcmp(cfg->input_topics[t], cfg->input_formats[i].key) == 0;
        if (!found) {
            char path[PATH_LEN];
            path_key(path, "kafka.input_formats", cfg->input_formats[i].key);
            return fail(c, path, "is not one of kafka.input_topics");
        }
    }
    return FN_OK;
}

/* ---- public API ------------------------------------------------------------------------- */

bool fn_config_id_blocked(const fn_config_t *cfg, const char *id, size_t len)
{
    for (size_t i = 0; i < cfg->n_identity_blocked; i++)
        if (strlen(cfg->identity_blocked[i]) == len &&
            strncasecmp(cfg->identity_blocked[i], id, len) == 0)
            return true;
    return false;
}

fn_input_format_t fn_config_input_format(const fn_config_t *cfg, const char *topic)
{
    for (size_t i = 0; topic && i < cfg->n_input_formats; i++)
        if (strcmp(cfg->input_formats[i].key, topic) == 0)
            return strcmp(cfg->input_formats[i].value, "segment") == 0 ? FN_INPUT_SEGMENT
                                                                       : FN_INPUT_NATIVE;
    return FN_INPUT_NATIVE;
}

fn_config_t *fn_config_from_json(json_t *root, char *err, size_t errlen)
{
    parse_ctx_t c = {err, errlen};
    fn_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        oom(&c, "");
        return NULL;
    }
    if (parse_object(&c, &top_table, root, "", cfg) || check_cluster(&c, cfg) ||
        check_input_formats(&c, cfg))
        goto fail;
    return cfg;
fail:
    if (errlen)
        printable(err);
    fn_config_free(cfg);
    return NULL;
}

static int replace_from_env(char **field, const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) /* an empty variable is treated as unset, as compose files often leave it */
        return FN_OK;
    char *dup = strdup(v);
    if (!dup)
        return FN_ERR;
    free(*field);
    *field = dup;
    return FN_OK;
}

int fn_config_apply_env(fn_config_t *cfg, char *err, size_t errlen)
{
    parse_ctx_t c = {err, errlen};
    if (replace_from_env(&cfg->brokers, "FUNNELD_BROKERS") ||
        replace_from_env(&cfg->redis_url, "FUNNELD_REDIS_URL") ||
        replace_from_env(&cfg->http_auth_token, "FUNNELD_HTTP_AUTH_TOKEN"))
        return oom(&c, "");
    /* the environment bypasses the table, so its checked fields are checked here */
    const char *what = check_redis_url(cfg->redis_url, strlen(cfg->redis_url));
    if (what)
        return fail(&c, "FUNNELD_REDIS_URL", "%s", what);
    if (cfg->http_auth_token &&
        (what = check_token(cfg->http_auth_token, strlen(cfg->http_auth_token))))
        return fail(&c, "FUNNELD_HTTP_AUTH_TOKEN", "%s", what);
    const char *cluster = getenv("FUNNELD_REDIS_CLUSTER");
    if (cluster && *cluster) {
        if (strcmp(cluster, "true") && strcmp(cluster, "false"))
            return fail(&c, "FUNNELD_REDIS_CLUSTER", "must be true or false");
        cfg->redis_cluster = strcmp(cluster, "true") == 0;
    }
    return FN_OK;
}

fn_config_t *fn_config_load(const char *path, char *err, size_t errlen)
{
    parse_ctx_t c = {err, errlen};
    json_error_t jerr;
    fn_config_t *cfg = NULL;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* the caller prints the file name; jansson's position is what it cannot know. Its
         * excerpt of the text there ("near '…'") is left out: in a file with a syntax error
         * next to a credential (an unquoted or unterminated password) it would quote it.
         * A duplicate key's excerpt is the key, which is kept. */
        char *near = strstr(jerr.text, " near '");
        if (near && strncmp(jerr.text, "duplicate object key", 20) != 0)
            *near = '\0';
        if (jerr.line > 0)
            snprintf(err, errlen, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        else
            snprintf(err, errlen, "%s", jerr.text);
        if (errlen)
            printable(err);
        return NULL;
    }
    cfg = fn_config_from_json(root, err, errlen);
    json_decref(root);
    if (!cfg)
        return NULL;
    if (fn_config_apply_env(cfg, err, errlen) || check_cluster(&c, cfg))
        goto fail;
    return cfg;
fail:
    if (errlen)
        printable(err);
    fn_config_free(cfg);
    return NULL;
}

const fn_funnel_t *fn_config_funnel(const fn_config_t *cfg, const char *name, size_t len)
{
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const char *fname = cfg->funnels[i].name;
        if (fname && strlen(fname) == len && memcmp(fname, name, len) == 0)
            return &cfg->funnels[i];
    }
    return NULL;
}

/* ---- reloading and freeing, by kind ------------------------------------------------------ */

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Whether option o holds the same value in a and b (the base of the table o belongs to). */
static bool same_value(const opt_t *o, const void *a, const void *b)
{
    const char *fa = (const char *)a + o->off, *fb = (const char *)b + o->off;
    size_t na = 0, nb = 0;
    if (o->kind == OPT_STRINGS || o->kind == OPT_KV) {
        na = *(const size_t *)((const char *)a + o->off_n);
        nb = *(const size_t *)((const char *)b + o->off_n);
        if (na != nb)
            return false;
    }
    switch (o->kind) {
    case OPT_STRING:
        return same_str(*(char *const *)fa, *(char *const *)fb);
    case OPT_STRINGS:
        for (size_t i = 0; i < na; i++)
            if (!same_str((*(char **const *)fa)[i], (*(char **const *)fb)[i]))
                return false;
        return true;
    case OPT_KV: /* in document order, as librdkafka is given them */
        for (size_t i = 0; i < na; i++) {
            const fn_kv_t *ka = &(*(fn_kv_t *const *)fa)[i], *kb = &(*(fn_kv_t *const *)fb)[i];
            if (!same_str(ka->key, kb->key) || !same_str(ka->value, kb->value))
                return false;
        }
        return true;
    case OPT_INT:
    case OPT_ENUM:
        return *(const int *)fa == *(const int *)fb;
    case OPT_INT64:
    case OPT_DURATION:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    case OPT_SIZE:
        return *(const size_t *)fa == *(const size_t *)fb;
    case OPT_NUMBER:
        return *(const double *)fa == *(const double *)fb;
    case OPT_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case OPT_OBJECT:
    case OPT_ARRAY:
        break;
    }
    /* a nested value has no comparison of its own: it can only be reloadable */
    assert(!"an option fixed at start must be a plain value");
    return false;
}

const char *fn_config_fixed_diff(const fn_config_t *a, const fn_config_t *b)
{
    /* every nested table lies under a reloadable top-level entry, so the top table is all */
    for (size_t i = 0; i < top_table.n; i++) {
        const opt_t *o = &top_table.opts[i];
        if (!o->info.reloadable && !same_value(o, a, b))
            return o->refused_as ? o->refused_as : o->info.path;
    }
    return NULL;
}

/* Frees every field of base that table t declares; base itself belongs to the caller. */
static void free_fields(const opt_table_t *t, void *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const opt_t *o = &t->opts[i];
        char *field = (char *)base + o->off;
        switch (o->kind) {
        case OPT_STRING:
            free(*(char **)field);
            break;
        case OPT_STRINGS: {
            char **v = *(char ***)field;
            size_t n = *(size_t *)((char *)base + o->off_n);
            for (size_t k = 0; v && k < n; k++)
                free(v[k]);
            free(v);
            break;
        }
        case OPT_KV: {
            fn_kv_t *v = *(fn_kv_t **)field;
            size_t n = *(size_t *)((char *)base + o->off_n);
            for (size_t k = 0; v && k < n; k++) {
                free(v[k].key);
                free(v[k].value);
            }
            free(v);
            break;
        }
        case OPT_OBJECT:
        case OPT_ARRAY:
            if (o->release)
                o->release(base);
            break;
        default: /* numbers, booleans and enums own nothing */
            break;
        }
    }
}

/* The release hooks: each undoes its parse hook, on the same base. */

static void free_matchers(fn_matcher_t *ms, size_t n)
{
    for (size_t i = 0; ms && i < n; i++)
        free_fields(&matcher_table, &ms[i]);
    free(ms);
}

static void release_props(void *base)
{
    fn_matcher_t *m = base;
    json_decref(m->props);
}

static void release_stage_on(void *base)
{
    fn_stage_t *s = base;
    free_matchers(s->on, s->n_on);
}

static void release_stages(void *base)
{
    fn_funnel_t *f = base;
    for (size_t i = 0; f->stages && i < f->n_stages; i++)
        free_fields(&stage_table, &f->stages[i]);
    free(f->stages);
}

static void release_lost_on(void *base)
{
    fn_funnel_t *f = base;
    free_matchers(f->lost_on, f->n_lost_on);
}

static void release_lost(void *base)
{
    free_fields(&lost_table, base);
}

static void release_after(void *base)
{
    fn_retarget_rule_t *r = base;
    free_fields(&matcher_table, &r->after);
}

static void release_unless(void *base)
{
    fn_retarget_rule_t *r = base;
    free_matchers(r->unless, r->n_unless);
}

static void release_retarget(void *base)
{
    fn_funnel_t *f = base;
    for (size_t i = 0; f->retarget && i < f->n_retarget; i++)
        free_fields(&retarget_table, &f->retarget[i]);
    free(f->retarget);
}

static void release_funnels(void *base)
{
    fn_config_t *cfg = base;
    for (size_t i = 0; cfg->funnels && i < cfg->n_funnels; i++)
        free_fields(&funnel_table, &cfg->funnels[i]);
    free(cfg->funnels);
}

void fn_config_free(fn_config_t *cfg)
{
    if (!cfg)
        return;
    free_fields(&top_table, cfg);
    free(cfg);
}
