/*
 * config.h — the daemon's configuration document (SPEC §2), loaded and validated once.
 *
 * fn_config_load() returns a fully validated fn_config_t or an error that names the JSON path
 * of the offending field ("funnels[1].stages[2].stale_after: not a duration"). The config owns
 * every string and array it points to; fn_config_free() releases all of it.
 */
#ifndef FUNNELD_CONFIG_H
#define FUNNELD_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "funneld/common.h"

typedef enum { FN_CLOCK_WALL = 0, FN_CLOCK_EVENT = 1 } fn_clock_t;

/* A matcher matches an event when every field it names equals the event's (SPEC §2). */
typedef struct fn_matcher {
    char *channel; /* NULL: any channel */
    char *type;    /* NULL: any type */
    json_t *props; /* NULL or an object; each key's value must json_equal the event's prop */
} fn_matcher_t;

typedef struct fn_stage {
    char *name;
    fn_matcher_t *on;
    size_t n_on;
    int64_t stale_after_ms; /* 0: never stale */
    double probability;     /* for the weighted pipeline; 0 when absent, 1 for conversion */
    bool conversion;
} fn_stage_t;

typedef struct fn_retarget_rule {
    char *name;
    fn_matcher_t after;
    fn_matcher_t *unless;
    size_t n_unless;
    int64_t within_ms;
} fn_retarget_rule_t;

typedef struct fn_bottleneck_cfg {
    bool enabled; /* false when the funnel has no "bottleneck" object */
    int64_t window_ms, baseline_ms, evaluate_every_ms;
    int64_t min_entered;
    double drop;
} fn_bottleneck_cfg_t;

/* Multi-touch attribution models (SPEC §11). The numbers name a model in Redis (the shard
 * counters' fields and the step's arguments): never renumber one. */
typedef enum {
    FN_ATTR_FIRST_TOUCH = 0,
    FN_ATTR_LAST_TOUCH = 1,
    FN_ATTR_LINEAR = 2,
    FN_ATTR_TIME_DECAY = 3,
    FN_ATTR_POSITION_BASED = 4,
    FN_ATTR_MARKOV = 5, /* data-driven: removal effects of a channel chain, no per-lead credit */
    FN_ATTR_N_MODELS
} fn_attr_model_t;

/* The model's configured name ("first_touch", ...); NULL out of range. */
const char *fn_attr_model_name(int model);

typedef struct fn_attribution_cfg {
    bool enabled;                      /* false when the funnel has no "attribution" object */
    int models[FN_ATTR_N_MODELS];      /* fn_attr_model_t, in the configured order */
    int n_models;                      /* the first is the funnel's primary model */
    int64_t lookback_ms, half_life_ms; /* touches older than lookback at conversion count not */
    int64_t max_touches;               /* the most recent touches considered */
} fn_attribution_cfg_t;

/* The model that credits each conversion on its `converted` event and in the cost figures:
 * the first configured one that is not markov; -1 without attribution. */
int fn_attr_credit_model(const fn_attribution_cfg_t *a);
/* Whether markov is one of a's models. */
bool fn_attr_has_markov(const fn_attribution_cfg_t *a);

/* A breakdown dimension (SPEC §11): where a lead's value for it comes from. */
typedef enum {
    FN_BD_CHANNEL = 0, /* "channel" */
    FN_BD_CAMPAIGN,    /* "campaign" */
    FN_BD_SOURCE,      /* "source" */
    FN_BD_PROP,        /* "props.<key>": the event's props value, as text */
} fn_bd_source_t;

#define FN_MAX_BREAKDOWNS 4
typedef struct fn_breakdown_cfg {
    char dim[FN_NAME_MAX + 8]; /* as configured: "channel", "props.segment", ... */
    fn_bd_source_t source;
    bool last; /* "touch": "last": the lead's latest touch's value, else its first touch's */
} fn_breakdown_cfg_t;

typedef struct fn_funnel {
    char *name;
    fn_stage_t *stages;
    size_t n_stages;
    fn_matcher_t *lost_on; /* "lost": {"on": [...]}; n_lost_on may be 0 */
    size_t n_lost_on;
    bool allow_skip;
    bool allow_regress;
    int conversion_index; /* index of the conversion stage (always the last), or -1 */
    fn_retarget_rule_t *retarget;
    size_t n_retarget;
    fn_bottleneck_cfg_t bottleneck;
    int64_t trigger_cap_max; /* 0: no cap */
    int64_t trigger_cap_per_ms;
    int max_breakdown; /* channels and campaigns each kept by name; the rest are "(other)" */
    fn_attribution_cfg_t attribution;
    int cohorts; /* weeks of entry cohorts in snapshots; 0: cohorts are not counted */
    fn_breakdown_cfg_t breakdowns[FN_MAX_BREAKDOWNS]; /* per-value figures, in snapshots */
    int n_breakdowns;
} fn_funnel_t;

typedef struct fn_kv {
    char *key;
    char *value;
} fn_kv_t;

typedef struct fn_config {
    /* kafka */
    char *brokers;
    char *group_id;
    char **input_topics;
    size_t n_input_topics;
    char *topic_transitions, *topic_retargeting, *topic_bottlenecks, *topic_snapshots, *topic_dlq;
    fn_kv_t *kafka_props; /* passed to librdkafka as is, for consumer and producer */
    size_t n_kafka_props;
    fn_kv_t *input_formats; /* input topic -> "native" or "segment"; unlisted: native */
    size_t n_input_formats;
    /* redis */
    char *redis_url;      /* redis://[[user]:password@]host:port[/db] */
    char *key_prefix;     /* default "fn" */
    int redis_shards;     /* hash-tag buckets for per-funnel counters; default 64 */
    bool redis_cluster;   /* redis_url and redis_seeds are nodes of a Redis Cluster */
    bool redis_fast_path; /* touches that move nothing take fast.h's way */
    char **redis_seeds;   /* more cluster nodes to start from, "host:port"; may be NULL */
    size_t n_redis_seeds;
    /* http */
    char *http_listen;     /* default "127.0.0.1:9464" */
    char *http_auth_token; /* NULL: none (the live view hides lead ids beyond loopback) */
    /* engine */
    fn_clock_t clock;
    int64_t dedupe_ttl_ms;    /* default 7d */
    int64_t max_future_ms;    /* events later than wall now + this are rejected; default 1d */
    size_t max_message_bytes; /* default 65536 */
    size_t max_in_flight;     /* events consumed but not yet committed; default 20000 */
    /* Segment-spec input (decode/segment.c) */
    fn_kv_t *segment_events; /* track event name -> event type */
    size_t n_segment_events;
    fn_kv_t *segment_channels; /* lower-case campaign medium -> channel */
    size_t n_segment_channels;
    char *segment_default_channel;
    /* identity merges (SPEC §10) */
    char **identity_blocked; /* ids never merged, compared case-blind; may be empty */
    size_t n_identity_blocked;
    int identity_max_ids;
    fn_funnel_t *funnels;
    size_t n_funnels;
} fn_config_t;

/* How an input topic's messages are written (kafka.input_formats). */
typedef enum { FN_INPUT_NATIVE = 0, FN_INPUT_SEGMENT } fn_input_format_t;

/* Reads and validates FILE, then applies FUNNELD_BROKERS / FUNNELD_REDIS_URL from the
 * environment. On error returns NULL and writes "path: what is wrong" into err. */
fn_config_t *fn_config_load(const char *path, char *err, size_t errlen);

/* Validates an already parsed document (root is borrowed). Same error contract as above;
 * does not read the environment. */
fn_config_t *fn_config_from_json(json_t *root, char *err, size_t errlen);

/* Applies FUNNELD_BROKERS, FUNNELD_REDIS_URL and FUNNELD_REDIS_CLUSTER where set (non-empty),
 * the connection settings a container's environment gives. Returns 0, or -1 with
 * "VARIABLE: what is wrong" (or out of memory) in err. */
int fn_config_apply_env(fn_config_t *cfg, char *err, size_t errlen);

/* Returns the format of the input topic's messages (FN_INPUT_NATIVE when not listed). */
fn_input_format_t fn_config_input_format(const fn_config_t *cfg, const char *topic);

/* Whether id (len bytes) is one of identity.blocked, compared case-blind. */
bool fn_config_id_blocked(const fn_config_t *cfg, const char *id, size_t len);

/* Returns the funnel named name (len bytes), or NULL. */
const fn_funnel_t *fn_config_funnel(const fn_config_t *cfg, const char *name, size_t len);

/* Compares every option that is fixed at start (not reloadable in the option tables) and
 * returns the name of the first that differs between a and b, or NULL when none does. */
const char *fn_config_fixed_diff(const fn_config_t *a, const fn_config_t *b);

/* Frees cfg and everything it owns, field by field as the option tables declare them; cfg
 * may be partly built (fn_config_from_json's cleanup) or NULL. */
void fn_config_free(fn_config_t *cfg);

/* One declared option, as config.c's tables declare it: parsing, defaults and error messages
 * are driven by those tables, and this view lets docs and the schema test read them too.
 * path is dotted, with [] for "any element" ("kafka.topics.dlq",
 * "funnels[].stages[].stale_after"); type is "string", "string[]", "integer", "number",
 * "boolean", "duration", "enum", "object" or "array"; def is the default as JSON text, or NULL
 * when the field has none. reloadable: a SIGHUP may change it; otherwise it is fixed at start
 * and a file that changes it is refused (fn_config_fixed_diff). */
typedef struct fn_config_option {
    const char *path;
    const char *type;
    const char *def;
    const char *doc;
    bool reloadable;
} fn_config_option_t;

/* Returns the i-th declared option (0-based, declaration order), or NULL past the last. */
const fn_config_option_t *fn_config_option(size_t i);

#endif
