/*
 * test_config.c — the configuration contract (SPEC §2, daemon/foundation/config.c): every
 * shipped config in deploy/config loads with the values it was written with, defaults fill what a
 * document leaves out, every rule rejects a bad document with its exact "path: what is wrong"
 * message, the environment overrides connection settings, and the option tables and
 * schemas/config.schema.json describe the same fields (so the two cannot drift).
 *
 * Runs with the repository root as the working directory (tests/unit/CMakeLists.txt).
 */
#include <glob.h>
#include <stdlib.h>
#include <unistd.h>

#include "fn_test.h"
#include "funneld/config.h"

/* Test documents are written with ' for " so they stay readable as C strings. */
static json_t *doc(const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t jerr;
    json_t *root = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        fprintf(stderr, "bad test document (%s): %s\n", jerr.text, s);
    free(s);
    return root;
}

static fn_config_t *from_text(const char *text, char *err, size_t errlen)
{
    json_t *root = doc(text);
    if (!root) {
        snprintf(err, errlen, "(test document does not parse)");
        return NULL;
    }
    fn_config_t *cfg = fn_config_from_json(root, err, errlen);
    json_decref(root);
    return cfg;
}

static const fn_stage_t *stage(const fn_funnel_t *f, size_t i)
{
    return f && i < f->n_stages ? &f->stages[i] : NULL;
}

static const char *kafka_prop(const fn_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (strcmp(cfg->kafka_props[i].key, key) == 0)
            return cfg->kafka_props[i].value;
    return NULL;
}

static void check_stage_names(const fn_funnel_t *f, const char *const *names, size_t n)
{
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK_INT(f->n_stages, n);
    for (size_t i = 0; i < n && i < f->n_stages; i++)
        CHECK_STR(f->stages[i].name, names[i]);
    /* every shipped funnel ends in its conversion stage */
    CHECK_INT(f->conversion_index, (int)n - 1);
    CHECK(f->stages[n - 1].conversion);
}

static fn_config_t *load(const char *path)
{
    char err[512] = "";
    fn_config_t *cfg = fn_config_load(path, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "%s: %s\n", path, err);
    CHECK(cfg != NULL);
    return cfg;
}

/* ---- shipped configs -------------------------------------------------------------------- */

static void test_every_shipped_config_loads(void)
{
    glob_t g;
    CHECK_INT(glob("deploy/config/*.json", 0, NULL, &g), 0);
    CHECK(g.gl_pathc >= 5);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        fn_config_t *cfg = load(g.gl_pathv[i]);
        fn_config_free(cfg);
    }
    globfree(&g);
}

static void test_demo_is_the_spec_example_plus_aida(void)
{
    fn_config_t *cfg = load("deploy/config/demo.json");
    if (!cfg)
        return;
    CHECK_STR(cfg->brokers, "127.0.0.1:9092");
    CHECK_STR(cfg->group_id, "funneld");
    CHECK_INT(cfg->n_input_topics, 1);
    CHECK_STR(cfg->input_topics[0], "touchpoints");
    CHECK_STR(cfg->topic_transitions, "funnel.transitions");
    CHECK_STR(cfg->topic_dlq, "funnel.dlq");
    CHECK_STR(kafka_prop(cfg, "security.protocol"), "plaintext");
    CHECK_STR(cfg->redis_url, "redis://127.0.0.1:6379/0");
    CHECK_STR(cfg->key_prefix, "fn");
    CHECK_STR(cfg->http_listen, "127.0.0.1:9464");
    CHECK_INT(cfg->clock, FN_CLOCK_WALL);
    CHECK_INT(cfg->dedupe_ttl_ms, 7 * 86400000LL);
    CHECK_INT(cfg->n_funnels, 2);

    const fn_funnel_t *b2b = fn_config_funnel(cfg, "b2b", 3);
    static const char *const b2b_names[] = {"awareness", "interest", "evaluation", "decision",
                                            "purchase"};
    check_stage_names(b2b, b2b_names, 5);
    if (b2b && b2b->n_stages == 5) {
        CHECK_INT(stage(b2b, 0)->stale_after_ms, 0);
        CHECK(stage(b2b, 0)->probability == 0.0);
        CHECK_INT(stage(b2b, 0)->n_on, 2);
        CHECK_STR(stage(b2b, 0)->on[0].type, "page_view");
        CHECK(stage(b2b, 0)->on[0].channel == NULL);
        CHECK_INT(stage(b2b, 1)->stale_after_ms, 7 * 86400000LL);
        CHECK(stage(b2b, 1)->probability == 0.05);
        CHECK_INT(stage(b2b, 3)->stale_after_ms, 48 * 3600000LL);
        CHECK(stage(b2b, 3)->probability == 0.6);
        const fn_matcher_t *crm = &stage(b2b, 3)->on[1];
        CHECK_STR(crm->channel, "crm");
        CHECK_STR(crm->type, "deal_stage");
        CHECK(json_is_object(crm->props));
        CHECK_STR(json_string_value(json_object_get(crm->props, "stage")), "proposal");
        /* the conversion stage without a probability counts at full value */
        CHECK(stage(b2b, 4)->probability == 1.0);
        CHECK_INT(b2b->n_lost_on, 1);
        CHECK_STR(b2b->lost_on[0].type, "deal_lost");
        CHECK(b2b->allow_skip);
        CHECK(!b2b->allow_regress);
        CHECK_INT(b2b->n_retarget, 1);
        CHECK_STR(b2b->retarget[0].name, "cart_abandoned");
        CHECK_STR(b2b->retarget[0].after.type, "cart_add");
        CHECK_INT(b2b->retarget[0].n_unless, 1);
        CHECK_STR(b2b->retarget[0].unless[0].type, "purchase");
        CHECK_INT(b2b->retarget[0].within_ms, 3600000);
        CHECK(b2b->bottleneck.enabled);
        CHECK_INT(b2b->bottleneck.window_ms, 3600000);
        CHECK_INT(b2b->bottleneck.baseline_ms, 86400000);
        CHECK_INT(b2b->bottleneck.min_entered, 30);
        CHECK(b2b->bottleneck.drop == 0.5);
        CHECK_INT(b2b->bottleneck.evaluate_every_ms, 10000);
        CHECK_INT(b2b->trigger_cap_max, 0);
        CHECK_INT(b2b->cohorts, 8); /* the default */
    }
    static const char *const aida_names[] = {"attention", "interest", "desire", "action"};
    check_stage_names(fn_config_funnel(cfg, "aida", 4), aida_names, 4);
    /* lookup is by exactly len bytes */
    CHECK(fn_config_funnel(cfg, "b2bx", 3) == b2b);
    CHECK(fn_config_funnel(cfg, "b2", 2) == NULL);
    CHECK(fn_config_funnel(cfg, "nope", 4) == NULL);
    fn_config_free(cfg);
}

static void test_b2b_pipeline(void)
{
    fn_config_t *cfg = load("deploy/config/b2b.json");
    if (!cfg)
        return;
    const fn_funnel_t *f = fn_config_funnel(cfg, "b2b", 3);
    static const char *const names[] = {"lead", "prospect", "qualified", "committed", "closed"};
    check_stage_names(f, names, 5);
    if (f && f->n_stages == 5) {
        CHECK(f->allow_skip);
        CHECK(f->allow_regress); /* deals slip back in a B2B pipeline */
        CHECK_STR(stage(f, 2)->on[0].channel, "crm");
        CHECK_STR(json_string_value(json_object_get(stage(f, 2)->on[0].props, "stage")),
                  "qualified");
        CHECK_INT(f->n_lost_on, 2);
        CHECK_INT(f->trigger_cap_max, 3);
        CHECK_INT(f->trigger_cap_per_ms, 7 * 86400000LL);
        CHECK_INT(f->bottleneck.baseline_ms, 30 * 86400000LL);
        for (size_t i = 0; i + 1 < f->n_stages; i++) /* probabilities rise down the funnel */
            CHECK(f->stages[i].probability < f->stages[i + 1].probability);
    }
    fn_config_free(cfg);
}

static void test_classic_models(void)
{
    static const char *const aida[] = {"attention", "interest", "desire", "action"};
    static const char *const aarrr[] = {"acquisition", "activation", "retention", "referral",
                                        "revenue"};
    static const char *const five[] = {"awareness", "interest", "consideration", "intent",
                                       "purchase"};
    struct {
        const char *file, *funnel;
        const char *const *names;
        size_t n;
    } models[] = {
        {"deploy/config/aida.json", "aida", aida, 4},
        {"deploy/config/aarrr.json", "aarrr", aarrr, 5},
        {"deploy/config/five-stage.json", "five-stage", five, 5},
    };
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        fn_config_t *cfg = load(models[m].file);
        if (!cfg)
            continue;
        const fn_funnel_t *f = fn_config_funnel(cfg, models[m].funnel, strlen(models[m].funnel));
        check_stage_names(f, models[m].names, models[m].n);
        if (f) {
            CHECK(f->n_retarget >= 1);
            CHECK(f->bottleneck.enabled);
            CHECK(f->trigger_cap_max >= 1);
        }
        fn_config_free(cfg);
    }
    fn_config_t *cfg = load("deploy/config/aarrr.json");
    const fn_funnel_t *f = cfg ? fn_config_funnel(cfg, "aarrr", 5) : NULL;
    if (f && f->n_stages == 5) {
        CHECK_STR(stage(f, 0)->on[0].type, "signup");
        CHECK_STR(stage(f, 4)->on[0].type, "purchase");
    }
    fn_config_free(cfg);
    cfg = load("deploy/config/five-stage.json");
    f = cfg ? fn_config_funnel(cfg, "five-stage", 10) : NULL;
    if (f && f->n_stages == 5) /* a pricing page view is a stronger signal than any page view */
        CHECK_STR(json_string_value(json_object_get(stage(f, 2)->on[0].props, "url")), "/pricing");
    fn_config_free(cfg);
}

/* ---- defaults ----------------------------------------------------------------------------- */

static void test_defaults_fill_a_minimal_document(void)
{
    char err[512] = "";
    fn_config_t *cfg = from_text("{'funnels':[{'name':'f','stages':["
                                 "{'name':'a','on':[{'type':'t'}]},"
                                 "{'name':'b','on':[{'type':'u'}],'conversion':true}]}]}",
                                 err, sizeof err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    CHECK_STR(cfg->brokers, "127.0.0.1:9092");
    CHECK_STR(cfg->group_id, "funneld");
    CHECK_INT(cfg->n_input_topics, 1);
    CHECK_STR(cfg->input_topics[0], "touchpoints");
    CHECK_STR(cfg->topic_transitions, "funnel.transitions");
    CHECK_STR(cfg->topic_retargeting, "funnel.retargeting");
    CHECK_STR(cfg->topic_bottlenecks, "funnel.bottlenecks");
    CHECK_STR(cfg->topic_snapshots, "funnel.snapshots");
    CHECK_STR(cfg->topic_dlq, "funnel.dlq");
    CHECK_INT(cfg->n_kafka_props, 0);
    CHECK_STR(cfg->redis_url, "redis://127.0.0.1:6379/0");
    CHECK_STR(cfg->key_prefix, "fn");
    CHECK_INT(cfg->redis_shards, 64);
    CHECK_STR(cfg->http_listen, "127.0.0.1:9464");
    CHECK_INT(cfg->clock, FN_CLOCK_WALL);
    CHECK_INT(cfg->dedupe_ttl_ms, 7 * 86400000LL);
    CHECK_INT(cfg->max_future_ms, 86400000LL);
    CHECK_INT(cfg->max_message_bytes, 65536);
    CHECK_INT(cfg->max_in_flight, 20000);
    CHECK_INT(cfg->n_funnels, 1);
    const fn_funnel_t *f = &cfg->funnels[0];
    CHECK_STR(f->name, "f");
    CHECK(!f->allow_skip);
    CHECK(!f->allow_regress);
    CHECK_INT(f->n_lost_on, 0);
    CHECK(f->lost_on == NULL);
    CHECK_INT(f->n_retarget, 0);
    CHECK_INT(f->trigger_cap_max, 0);
    CHECK_INT(f->trigger_cap_per_ms, 0);
    CHECK_INT(f->conversion_index, 1);
    CHECK_INT(f->stages[0].stale_after_ms, 0);
    CHECK(f->stages[0].probability == 0.0);
    CHECK(!f->stages[0].conversion);
    CHECK(f->stages[1].probability == 1.0);
    /* no "bottleneck": detection off, but snapshots still need evaluate_every and a window */
    CHECK(!f->bottleneck.enabled);
    CHECK_INT(f->bottleneck.window_ms, 3600000);
    CHECK_INT(f->bottleneck.baseline_ms, 86400000);
    CHECK_INT(f->bottleneck.min_entered, 30);
    CHECK(f->bottleneck.drop == 0.5);
    CHECK_INT(f->bottleneck.evaluate_every_ms, 10000);
    fn_config_free(cfg);
}

/* Security: without an http section, or with one that leaves listen out, the endpoint binds
 * the loopback address only; exposing it is a decision written in the config. */
static void test_endpoint_listens_on_loopback_by_default(void)
{
    const char *docs[] = {"{'funnels':[{'name':'f','stages':[{'name':'a','on':[{'type':'t'}],"
                          "'conversion':true}]}]}",
                          "{'http':{},'funnels':[{'name':'f','stages':[{'name':'a','on':"
                          "[{'type':'t'}],'conversion':true}]}]}"};
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        char err[512] = "";
        fn_config_t *cfg = from_text(docs[i], err, sizeof err);
        CHECK_STR(err, "");
        CHECK_STR(cfg ? cfg->http_listen : NULL, "127.0.0.1:9464");
        fn_config_free(cfg);
    }
}

/* Security: a config error about a credential names where it is, never what it is. */
static void test_errors_never_quote_credentials(void)
{
#define ONE_FUNNEL "'funnels':[{'name':'f','stages':[{'name':'a','on':[{'type':'t'}]}]}]"
    const struct {
        const char *doc, *path;
    } bad[] = {{"{'redis':{'url':'redis://funneld:hunter2-secret@'}," ONE_FUNNEL "}", "redis.url"},
               {"{'redis':{'url':'redis://funneld:hunter2-secret@h:99999/0'}," ONE_FUNNEL "}",
                "redis.url"},
               {"{'kafka':{'properties':{'sasl.password':['hunter2-secret']}}," ONE_FUNNEL "}",
                "sasl.password"},
               {"{'kafka':{'properties':{'sasl.password':{'v':'hunter2-secret'}}}," ONE_FUNNEL "}",
                "sasl.password"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[512] = "";
        fn_config_t *cfg = from_text(bad[i].doc, err, sizeof err);
        CHECK(cfg == NULL);
        CHECK(strstr(err, bad[i].path) != NULL);
        CHECK(strstr(err, "hunter2") == NULL);
        fn_config_free(cfg);
    }
    char err[512] = "";
    fn_config_t *cfg = from_text(
        "{'kafka':{'properties':{'sasl.password':'hunter2-secret'}},"
        "'redis':{'url':'redis://funneld:hunter2-secret@127.0.0.1:6380/0'}," ONE_FUNNEL "}",
        err, sizeof err);
#undef ONE_FUNNEL
    CHECK_STR(err, "");
    CHECK_STR(cfg ? kafka_prop(cfg, "sasl.password") : NULL, "hunter2-secret"); /* verbatim */
    fn_config_free(cfg);
}

/* acks=all is what the producer uses anyway; saying so in the file is not an error. */
static void test_acks_all_is_accepted(void)
{
#define ONE_FUNNEL "'funnels':[{'name':'f','stages':[{'name':'a','on':[{'type':'t'}]}]}]"
    const char *docs[] = {"{'kafka':{'properties':{'acks':'all'}}," ONE_FUNNEL "}",
                          "{'kafka':{'properties':{'acks':-1}}," ONE_FUNNEL "}",
                          "{'kafka':{'properties':{'request.required.acks':'-1'}}," ONE_FUNNEL "}"};
#undef ONE_FUNNEL
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char err[512] = "";
        fn_config_t *cfg = from_text(docs[i], err, sizeof err);
        CHECK_STR(err, "");
        fn_config_free(cfg);
    }
}

static void test_explicit_values_and_conversions(void)
{
    char err[512] = "";
    fn_config_t *cfg = from_text(
        "{'kafka':{'properties':{'linger.ms':5,'enable.idempotence':true,'x.ratio':0.25,"
        "'s':'text','f':false}},'clock':'event','dedupe_ttl':1500,'max_future':'0s',"
        "'redis':{'shards':1,'key_prefix':'a.b-c_D9'},'http':{'listen':'[::1]:0'},"
        "'funnels':[{'name':'f','stages':[{'name':'only','on':[{'type':'t'}]}],"
        "'bottleneck':{},'trigger_cap':{'max':2,'per':'90s'},"
        "'retarget':[{'name':'r','after':{'props':{'n':1}},'unless':[],'within':'250ms'}]},"
        "{'name':'g','stages':[{'name':'done','on':[{'channel':'web'}],'conversion':true,"
        "'probability':0.9}]}]}",
        err, sizeof err);
    CHECK_STR(err, "");
    CHECK(cfg != NULL);
    if (!cfg)
        return;
    CHECK_INT(cfg->n_kafka_props, 5);
    CHECK_STR(kafka_prop(cfg, "linger.ms"), "5");
    CHECK_STR(kafka_prop(cfg, "enable.idempotence"), "true");
    CHECK_STR(kafka_prop(cfg, "x.ratio"), "0.25");
    CHECK_STR(kafka_prop(cfg, "s"), "text");
    CHECK_STR(kafka_prop(cfg, "f"), "false");
    CHECK_INT(cfg->clock, FN_CLOCK_EVENT);
    CHECK_INT(cfg->dedupe_ttl_ms, 1500);
    CHECK_INT(cfg->max_future_ms, 0);
    CHECK_INT(cfg->redis_shards, 1);
    CHECK_STR(cfg->key_prefix, "a.b-c_D9");
    CHECK_STR(cfg->http_listen, "[::1]:0");
    const fn_funnel_t *f = &cfg->funnels[0];
    CHECK_INT(f->conversion_index, -1);
    CHECK(f->bottleneck.enabled); /* present, even empty, means on with the defaults */
    CHECK_INT(f->bottleneck.evaluate_every_ms, 10000);
    CHECK_INT(f->trigger_cap_max, 2);
    CHECK_INT(f->trigger_cap_per_ms, 90000);
    CHECK_INT(f->retarget[0].within_ms, 250);
    CHECK_INT(f->retarget[0].n_unless, 0);
    CHECK_INT(json_integer_value(json_object_get(f->retarget[0].after.props, "n")), 1);
    const fn_funnel_t *g = &cfg->funnels[1];
    CHECK_INT(g->conversion_index, 0);
    CHECK(g->stages[0].probability == 0.9); /* an explicit probability is kept */
    CHECK_STR(g->stages[0].on[0].channel, "web");
    fn_config_free(cfg);
}

/* ---- bad documents ------------------------------------------------------------------------ */

#define ONE_STAGE "[{'name':'a','on':[{'type':'t'}]}]"
/* a valid document with top-level fields added in front (top ends with a comma) */
#define TOP(top) "{" top "'funnels':[{'name':'f','stages':" ONE_STAGE "}]}"
/* a valid funnel with fields appended (extra starts with a comma) */
#define FUN(extra) "{'funnels':[{'name':'f','stages':" ONE_STAGE extra "}]}"
/* a funnel with these stages */
#define STAGES(s) "{'funnels':[{'name':'f','stages':[" s "]}]}"
/* a funnel whose first stage has these matchers */
#define ON(m) STAGES("{'name':'a','on':[" m "]}")

#define DUR_MSG "not a duration (use \"90s\", \"15m\", \"48h\", \"7d\" or integer milliseconds)"
#define NAME_MSG "must be 1 to 64 characters of A-Z a-z 0-9 _ . -"
#define PREFIX_MSG "must be 1 to 32 characters of A-Z a-z 0-9 _ . -"
#define LISTEN_MSG "must be HOST:PORT with a port from 0 to 65535"
#define SCALAR_MSG "expected a string, number or boolean, got "
#define ACKS_MSG                                                                                   \
    "must be \"all\" (or -1): outputs are produced with acks=all, or a broker's death could lose " \
    "them"

static const struct {
    const char *json, *error;
} bad_docs[] = {
    /* the document and its sections */
    {"[]", "top level: expected an object, got an array"},
    {"{}", "funnels: is required"},
    {"{'funnels':[]}", "funnels: must be a non-empty array of funnels"},
    {"{'funnels':{}}", "funnels: must be a non-empty array of funnels"},
    {TOP("'funels':[],"), "funels: unknown field"},
    {TOP("'kafka':{'brokerz':'x'},"), "kafka.brokerz: unknown field"},
    {TOP("'kafka':{'topics':{'dlqq':'x'}},"), "kafka.topics.dlqq: unknown field"},
    {TOP("'kafka':'localhost',"), "kafka: expected an object, got a string"},
    {TOP("'kafka':{'topics':[]},"), "kafka.topics: expected an object, got an array"},
    {TOP("'kafka.brokers':'x',"), "[\"kafka.brokers\"]: unknown field"},
    /* kafka */
    {TOP("'kafka':{'brokers':9092},"), "kafka.brokers: expected a string, got an integer"},
    {TOP("'kafka':{'brokers':''},"), "kafka.brokers: must not be empty"},
    {TOP("'kafka':{'group_id':null},"), "kafka.group_id: expected a string, got null"},
    {TOP("'kafka':{'input_topics':[]},"),
     "kafka.input_topics: must be a non-empty array of strings"},
    {TOP("'kafka':{'input_topics':['a',1]},"),
     "kafka.input_topics: must be a non-empty array of strings"},
    {TOP("'kafka':{'input_topics':'touchpoints'},"),
     "kafka.input_topics: must be a non-empty array of strings"},
    {TOP("'kafka':{'topics':{'dlq':'funnel dlq'}},"),
     "kafka.topics.dlq: must be a Kafka topic name: 1 to 249 characters of A-Z a-z 0-9 _ . -"},
    {TOP("'kafka':{'properties':{'linger.ms':null}},"),
     "kafka.properties[\"linger.ms\"]: " SCALAR_MSG "null"},
    {TOP("'kafka':{'properties':{'acks':['all']}},"),
     "kafka.properties.acks: " SCALAR_MSG "an array"},
    {TOP("'kafka':{'properties':[]},"), "kafka.properties: expected an object, got an array"},
    {TOP("'kafka':{'properties':{'acks':'1'}},"), "kafka.properties.acks: " ACKS_MSG},
    {TOP("'kafka':{'properties':{'acks':0}},"), "kafka.properties.acks: " ACKS_MSG},
    {TOP("'kafka':{'properties':{'request.required.acks':'1'}},"),
     "kafka.properties[\"request.required.acks\"]: " ACKS_MSG},
    /* redis and http */
    {TOP("'redis':{'url':'http://127.0.0.1:6379'},"),
     "redis.url: must start with redis:// (redis://[[user]:password@]host:port[/db])"},
    {TOP("'redis':{'url':'redis://'},"),
     "redis.url: must start with redis:// (redis://[[user]:password@]host:port[/db])"},
    {TOP("'redis':{'key_prefix':'fn:x'},"), "redis.key_prefix: " PREFIX_MSG},
    {TOP("'redis':{'key_prefix':''},"), "redis.key_prefix: " PREFIX_MSG},
    {TOP("'redis':{'key_prefix':'abcdefghijklmnopqrstuvwxyz0123456'},"),
     "redis.key_prefix: " PREFIX_MSG},
    {TOP("'redis':{'shards':0},"), "redis.shards: must be an integer from 1 to 4096"},
    {TOP("'redis':{'cluster':true,'url':'redis://h:7000/3'},"),
     "redis.url: a Redis Cluster has database 0 only (redis.cluster is true)"},
    {TOP("'redis':{'cluster':'yes'},"), "redis.cluster: expected true or false, got a string"},
    {TOP("'redis':{'cluster':true,'seeds':['h:7001','h']},"), "redis.seeds[1]: must be host:port"},
    {TOP("'redis':{'cluster':true,'seeds':['u:p@h:7001']},"), "redis.seeds[0]: must be host:port"},
    {TOP("'redis':{'cluster':true,'seeds':[]},"),
     "redis.seeds: must be a non-empty array of strings"},
    {TOP("'redis':{'shards':4097},"), "redis.shards: must be an integer from 1 to 4096"},
    {TOP("'redis':{'shards':'64'},"), "redis.shards: expected an integer, got a string"},
    {TOP("'redis':{'shards':1.5},"), "redis.shards: expected an integer, got a number"},
    {TOP("'redis':{'db':1},"), "redis.db: unknown field"},
    {TOP("'http':{'listen':'9464'},"), "http.listen: " LISTEN_MSG},
    {TOP("'http':{'listen':'127.0.0.1:70000'},"), "http.listen: " LISTEN_MSG},
    {TOP("'http':{'listen':':9464'},"), "http.listen: " LISTEN_MSG},
    {TOP("'http':{'listen':'::1:9464'},"), "http.listen: " LISTEN_MSG},
    {TOP("'http':{'listen':'host:'},"), "http.listen: " LISTEN_MSG},
    /* engine settings */
    {TOP("'clock':'cpu',"), "clock: must be \"wall\" or \"event\""},
    {TOP("'clock':1,"), "clock: must be \"wall\" or \"event\""},
    {TOP("'dedupe_ttl':'0s',"), "dedupe_ttl: must be greater than 0"},
    {TOP("'dedupe_ttl':0,"), "dedupe_ttl: must be greater than 0"},
    {TOP("'dedupe_ttl':'7 days',"), "dedupe_ttl: " DUR_MSG},
    {TOP("'dedupe_ttl':'7',"), "dedupe_ttl: " DUR_MSG},
    {TOP("'dedupe_ttl':'1h30m',"), "dedupe_ttl: " DUR_MSG},
    {TOP("'max_future':-5,"), "max_future: " DUR_MSG},
    {TOP("'max_future':'3651d',"), "max_future: must be at most 3650d"},
    {TOP("'max_future':315360000001,"), "max_future: must be at most 3650d"},
    {TOP("'max_future':'99999999999999999999d',"), "max_future: " DUR_MSG},
    {TOP("'max_future':1.5,"), "max_future: " DUR_MSG},
    {TOP("'max_future':true,"), "max_future: " DUR_MSG},
    {TOP("'max_message_bytes':100,"), "max_message_bytes: must be an integer from 256 to 16777216"},
    {TOP("'max_message_bytes':16777217,"),
     "max_message_bytes: must be an integer from 256 to 16777216"},
    {TOP("'max_in_flight':0,"), "max_in_flight: must be an integer from 1 to 1000000"},
    /* funnels */
    {"{'funnels':['b2b']}", "funnels[0]: expected an object, got a string"},
    {"{'funnels':[{'stages':" ONE_STAGE "}]}", "funnels[0].name: is required"},
    {"{'funnels':[{'name':'b 2b','stages':" ONE_STAGE "}]}", "funnels[0].name: " NAME_MSG},
    {"{'funnels':[{'name':'','stages':" ONE_STAGE "}]}", "funnels[0].name: " NAME_MSG},
    {"{'funnels':[{'name':'f','stages':" ONE_STAGE "},{'name':'f','stages':" ONE_STAGE "}]}",
     "funnels: funnel name \"f\" is used twice"},
    {FUN(",'stagez':[]"), "funnels[0].stagez: unknown field"},
    /* a misspelt key is reported as such, not as the required field it was meant to be */
    {"{'funnels':[{'nmae':'f','stages':" ONE_STAGE "}]}", "funnels[0].nmae: unknown field"},
    {FUN(",'allow_skip':'true'"), "funnels[0].allow_skip: expected true or false, got a string"},
    {FUN(",'allow_regress':1"), "funnels[0].allow_regress: expected true or false, got an integer"},
    /* stages */
    {"{'funnels':[{'name':'f'}]}", "funnels[0].stages: is required"},
    {STAGES(""), "funnels[0].stages: must be an array of 1 to 60 stages"},
    {"{'funnels':[{'name':'f','stages':{}}]}",
     "funnels[0].stages: must be an array of 1 to 60 stages"},
    {STAGES("{'name':'interest','on':[{'type':'t'}]},{'name':'interest','on':[{'type':'u'}]}"),
     "funnels[0].stages: stage name \"interest\" is used twice"},
    {STAGES("{'on':[{'type':'t'}]}"), "funnels[0].stages[0].name: is required"},
    {STAGES("{'name':'a\\u0001','on':[{'type':'t'}]}"),
     "funnels[0].stages[0].name: must be 1 to 64 bytes without control characters"},
    {STAGES("{'name':'','on':[{'type':'t'}]}"),
     "funnels[0].stages[0].name: must be 1 to 64 bytes without control characters"},
    {STAGES("{'name':'a'}"), "funnels[0].stages[0].on: is required"},
    {STAGES("{'name':'a','on':[]}"),
     "funnels[0].stages[0].on: must be a non-empty array of matchers"},
    {STAGES("{'name':'a','on':{'type':'t'}}"),
     "funnels[0].stages[0].on: must be a non-empty array of matchers"},
    {STAGES("{'name':'a','on':[{'type':'t'}],'stale':'1d'}"),
     "funnels[0].stages[0].stale: unknown field"},
    {"{'funnels':[{'name':'e','stages':" ONE_STAGE "},{'name':'f','stages':["
     "{'name':'a','on':[{'type':'t'}]},{'name':'b','on':[{'type':'u'}]},"
     "{'name':'c','on':[{'type':'v'}],'stale_after':'5 minutes'}]}]}",
     "funnels[1].stages[2].stale_after: " DUR_MSG},
    {STAGES("{'name':'a','on':[{'type':'t'}],'stale_after':-1}"),
     "funnels[0].stages[0].stale_after: " DUR_MSG},
    {STAGES("{'name':'a','on':[{'type':'t'}],'probability':1.5}"),
     "funnels[0].stages[0].probability: must be a number from 0 to 1"},
    {STAGES("{'name':'a','on':[{'type':'t'}],'probability':-0.1}"),
     "funnels[0].stages[0].probability: must be a number from 0 to 1"},
    {STAGES("{'name':'a','on':[{'type':'t'}],'probability':'high'}"),
     "funnels[0].stages[0].probability: expected a number, got a string"},
    {STAGES("{'name':'a','on':[{'type':'t'}],'conversion':'yes'}"),
     "funnels[0].stages[0].conversion: expected true or false, got a string"},
    {STAGES("{'name':'a','on':[{'type':'t'}],'conversion':true},{'name':'b','on':[{'type':'u'}]}"),
     "funnels[0].stages[0].conversion: the conversion stage must be the last: conversion ends "
     "the funnel, so stages after it could never be reached"},
    {STAGES("{'name':'a','on':[{'type':'t'}]},{'name':'b','on':[{'type':'u'}],'conversion':true},"
            "{'name':'c','on':[{'type':'v'}],'conversion':true}"),
     "funnels[0].stages[2].conversion: only one stage can be the conversion stage (stages[1] is)"},
    /* matchers */
    {ON("{}"),
     "funnels[0].stages[0].on[0]: a matcher needs at least one of channel, type or props"},
    {ON("'page_view'"), "funnels[0].stages[0].on[0]: expected an object, got a string"},
    {ON("{'type':'t'},{'typ':'u'}"), "funnels[0].stages[0].on[1].typ: unknown field"},
    {ON("{'type':''}"), "funnels[0].stages[0].on[0].type: must not be empty"},
    {ON("{'channel':3}"), "funnels[0].stages[0].on[0].channel: expected a string, got an integer"},
    {ON("{'type':'deal_stage','props':{'stage':['a']}}"),
     "funnels[0].stages[0].on[0].props.stage: " SCALAR_MSG "an array"},
    {ON("{'type':'deal_stage','props':{'utm.source':null}}"),
     "funnels[0].stages[0].on[0].props[\"utm.source\"]: " SCALAR_MSG "null"},
    {ON("{'type':'deal_stage','props':{}}"),
     "funnels[0].stages[0].on[0].props: must be a non-empty object of strings, numbers or "
     "booleans"},
    {ON("{'props':'stage=proposal'}"),
     "funnels[0].stages[0].on[0].props: must be a non-empty object of strings, numbers or "
     "booleans"},
    /* lost */
    {FUN(",'lost':{}"), "funnels[0].lost.on: is required"},
    {FUN(",'lost':{'on':[]}"), "funnels[0].lost.on: must be a non-empty array of matchers"},
    {FUN(",'lost':[{'type':'deal_lost'}]"), "funnels[0].lost: expected an object, got an array"},
    {FUN(",'lost':{'on':[{'type':'deal_lost'}],'after':'1d'}"),
     "funnels[0].lost.after: unknown field"},
    {FUN(",'lost':{'on':[{'tpye':'deal_lost'}]}"), "funnels[0].lost.on[0].tpye: unknown field"},
    /* retarget */
    {FUN(",'retarget':{}"),
     "funnels[0].retarget: must be an array of retarget rules, got an object"},
    {FUN(",'retarget':[{'name':'stalled','after':{'type':'a'},'within':'1h'}]"),
     "funnels[0].retarget[0].name: \"stalled\" is reserved for the stale-stage trigger"},
    {FUN(",'retarget':[{'name':'cart abandoned','after':{'type':'a'},'within':'1h'}]"),
     "funnels[0].retarget[0].name: " NAME_MSG},
    {FUN(",'retarget':[{'name':'r','after':{'type':'a'},'within':'1h'},"
         "{'name':'r','after':{'type':'b'},'within':'2h'}]"),
     "funnels[0].retarget: rule name \"r\" is used twice"},
    {FUN(",'retarget':[{'after':{'type':'a'},'within':'1h'}]"),
     "funnels[0].retarget[0].name: is required"},
    {FUN(",'retarget':[{'name':'r','within':'1h'}]"), "funnels[0].retarget[0].after: is required"},
    {FUN(",'retarget':[{'name':'r','after':[{'type':'a'}],'within':'1h'}]"),
     "funnels[0].retarget[0].after: expected an object, got an array"},
    {FUN(",'retarget':[{'name':'r','after':{},'within':'1h'}]"),
     "funnels[0].retarget[0].after: a matcher needs at least one of channel, type or props"},
    {FUN(",'retarget':[{'name':'r','after':{'type':'a'}}]"),
     "funnels[0].retarget[0].within: is required"},
    {FUN(",'retarget':[{'name':'r','after':{'type':'a'},'within':'0s'}]"),
     "funnels[0].retarget[0].within: must be greater than 0"},
    {FUN(",'retarget':[{'name':'r','after':{'type':'a'},'within':'soon'}]"),
     "funnels[0].retarget[0].within: " DUR_MSG},
    {FUN(",'retarget':[{'name':'r','after':{'type':'a'},'unless':{'type':'b'},'within':'1h'}]"),
     "funnels[0].retarget[0].unless: must be an array of matchers"},
    {FUN(",'retarget':[{'name':'r','after':{'type':'a'},"
         "'unless':[{'type':'b'},{}],'within':'1h'}]"),
     "funnels[0].retarget[0].unless[1]: a matcher needs at least one of channel, type or props"},
    /* bottleneck */
    {FUN(",'bottleneck':{'window':'1h','baseline':'1h'}"),
     "funnels[0].bottleneck.baseline: must be longer than window"},
    {FUN(",'bottleneck':{'baseline':'30m'}"),
     "funnels[0].bottleneck.baseline: must be longer than window"},
    {FUN(",'bottleneck':{'drop':1}"),
     "funnels[0].bottleneck.drop: must be a number greater than 0 and less than 1"},
    {FUN(",'bottleneck':{'drop':0}"),
     "funnels[0].bottleneck.drop: must be a number greater than 0 and less than 1"},
    {FUN(",'bottleneck':{'min_entered':0}"),
     "funnels[0].bottleneck.min_entered: must be an integer of at least 1"},
    {FUN(",'bottleneck':{'evaluate_every':0}"),
     "funnels[0].bottleneck.evaluate_every: must be greater than 0"},
    {FUN(",'bottleneck':{'window':'0ms'}"), "funnels[0].bottleneck.window: must be greater than 0"},
    {FUN(",'bottleneck':{'windows':'1h'}"), "funnels[0].bottleneck.windows: unknown field"},
    {FUN(",'bottleneck':true"), "funnels[0].bottleneck: expected an object, got a boolean"},
    /* trigger_cap */
    {FUN(",'trigger_cap':{'max':0,'per':'1d'}"),
     "funnels[0].trigger_cap.max: must be an integer of at least 1"},
    {FUN(",'trigger_cap':{'max':3}"), "funnels[0].trigger_cap.per: is required"},
    {FUN(",'trigger_cap':{'per':'1d'}"), "funnels[0].trigger_cap.max: is required"},
    {FUN(",'trigger_cap':{'max':3,'per':'0s'}"),
     "funnels[0].trigger_cap.per: must be greater than 0"},
    {FUN(",'trigger_cap':{'max':3,'per':'1d','burst':2}"),
     "funnels[0].trigger_cap.burst: unknown field"},
    /* attribution */
    {FUN(",'attribution':{'models':[]}"),
     "funnels[0].attribution.models: must be a non-empty array of model names, got an array"},
    {FUN(",'attribution':{'models':'linear'}"),
     "funnels[0].attribution.models: must be a non-empty array of model names, got a string"},
    {FUN(",'attribution':{'models':['linear','markov_chain']}"),
     "funnels[0].attribution.models[1]: must be one of first_touch, last_touch, linear, "
     "time_decay, position_based, markov"},
    /* breakdowns */
    {FUN(",'breakdowns':'channel'"),
     "funnels[0].breakdowns: must be an array of at most 4 dimensions, got a string"},
    {FUN(",'breakdowns':['channel','campaign','source','props.a','props.b']"),
     "funnels[0].breakdowns: must be an array of at most 4 dimensions, got more"},
    {FUN(",'breakdowns':['medium']"),
     "funnels[0].breakdowns[0]: must be channel, campaign, source or props.<key> (a key of 1 "
     "to 64 characters of A-Z a-z 0-9 _ . -)"},
    {FUN(",'breakdowns':['props.a|b']"),
     "funnels[0].breakdowns[0]: must be channel, campaign, source or props.<key> (a key of 1 "
     "to 64 characters of A-Z a-z 0-9 _ . -)"},
    {FUN(",'breakdowns':['props.']"),
     "funnels[0].breakdowns[0]: must be channel, campaign, source or props.<key> (a key of 1 "
     "to 64 characters of A-Z a-z 0-9 _ . -)"},
    {FUN(",'breakdowns':[7]"), "funnels[0].breakdowns[0]: must be a dimension name or an object"},
    {FUN(",'breakdowns':[{'touch':'last'}]"), "funnels[0].breakdowns[0].dimension: is required"},
    {FUN(",'breakdowns':[{'dimension':'channel','touch':'middle'}]"),
     "funnels[0].breakdowns[0].touch: must be \"first\" or \"last\""},
    {FUN(",'breakdowns':[{'dimension':'channel','by':'x'}]"),
     "funnels[0].breakdowns[0].by: unknown field"},
    {FUN(",'breakdowns':['channel',{'dimension':'channel','touch':'last'}]"),
     "funnels[0].breakdowns[1]: \"channel\" is named twice"},
    {FUN(",'attribution':{'models':['markov']}"),
     "funnels[0].attribution.models: markov alone credits no single conversion: name a "
     "rule-based model too (the first of them credits each conversion and the cost figures)"},
    {FUN(",'attribution':{'models':['linear','linear']}"),
     "funnels[0].attribution.models[1]: \"linear\" is named twice"},
    {FUN(",'attribution':{'max_touches':0}"),
     "funnels[0].attribution.max_touches: must be an integer from 1 to 200"},
    {FUN(",'attribution':{'max_touches':201}"),
     "funnels[0].attribution.max_touches: must be an integer from 1 to 200"},
    {FUN(",'attribution':{'lookback':'0s'}"),
     "funnels[0].attribution.lookback: must be greater than 0"},
    {FUN(",'attribution':{'half_life':'soon'}"), "funnels[0].attribution.half_life: " DUR_MSG},
    {FUN(",'attribution':{'model':['linear']}"), "funnels[0].attribution.model: unknown field"},
    {FUN(",'cohorts':53"), "funnels[0].cohorts: must be an integer from 0 to 52"},
    {FUN(",'cohorts':-1"), "funnels[0].cohorts: must be an integer from 0 to 52"},
};

static void test_bad_documents_name_path_and_problem(void)
{
    for (size_t i = 0; i < sizeof bad_docs / sizeof bad_docs[0]; i++) {
        char err[512] = "";
        fn_config_t *cfg = from_text(bad_docs[i].json, err, sizeof err);
        CHECK(cfg == NULL);
        if (strcmp(err, bad_docs[i].error) != 0)
            fprintf(stderr, "case %zu: %s\n", i, bad_docs[i].json);
        CHECK_STR(err, bad_docs[i].error);
        fn_config_free(cfg);
    }
}

static void test_no_document_is_an_error_not_a_crash(void)
{
    char err[512] = "";
    CHECK(fn_config_from_json(NULL, err, sizeof err) == NULL);
    CHECK_STR(err, "top level: expected an object, got nothing");
}

static void test_sixty_stages_at_most(void)
{
    char text[8192], err[512];
    for (int n = 60; n <= 61; n++) {
        size_t len = (size_t)snprintf(text, sizeof text, "{'funnels':[{'name':'f','stages':[");
        for (int i = 0; i < n; i++)
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "%s{'name':'s%d','on':[{'type':'t%d'}]}", i ? "," : "", i, i);
        snprintf(text + len, sizeof text - len, "]}]}");
        err[0] = '\0';
        fn_config_t *cfg = from_text(text, err, sizeof err);
        if (n == 60) {
            CHECK(cfg != NULL);
            CHECK_INT(cfg ? cfg->funnels[0].n_stages : 0, 60);
        } else {
            CHECK(cfg == NULL);
            CHECK_STR(err, "funnels[0].stages: must be an array of 1 to 60 stages");
        }
        fn_config_free(cfg);
    }
}

/* ---- files and environment -------------------------------------------------------------- */

static char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/fn_test_config_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_file_errors_carry_line_and_column(void)
{
    char err[512] = "";
    char *path = write_temp("{\n  \"funnels\": [,]\n}\n");
    CHECK(fn_config_load(path, err, sizeof err) == NULL);
    CHECK(strncmp(err, "line 2, column ", 15) == 0);
    unlink(path);

    /* a syntax error next to a credential does not quote it */
    const char *leaky[] = {"{\"redis\": {\"url\": redis://u:hunter2-secret@h:1/0}}",
                           "{\"kafka\": {\"properties\": {\"sasl.password\": hunter2-secret}}}",
                           "{\"kafka\": {\"properties\": {\"sasl.password\": \"hunter2-secret}}}"};
    for (size_t i = 0; i < sizeof leaky / sizeof *leaky; i++) {
        path = write_temp(leaky[i]);
        err[0] = '\0';
        CHECK(fn_config_load(path, err, sizeof err) == NULL);
        CHECK(strncmp(err, "line 1, column ", 15) == 0);
        CHECK(strstr(err, "hunter2") == NULL);
        unlink(path);
    }

    path = write_temp("{\"clock\": \"wall\", \"clock\": \"event\", \"funnels\": []}");
    err[0] = '\0';
    CHECK(fn_config_load(path, err, sizeof err) == NULL);
    CHECK(strncmp(err, "line 1, column ", 15) == 0);
    CHECK(strstr(err, "duplicate object key") != NULL);
    unlink(path);

    err[0] = '\0';
    CHECK(fn_config_load("/nonexistent/funneld.json", err, sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/funneld.json") != NULL);

    /* a valid JSON file that breaks a rule reports the rule's path, as from_json does */
    path = write_temp("{\"funnels\": [{\"name\": \"f\", \"stagez\": []}]}");
    err[0] = '\0';
    CHECK(fn_config_load(path, err, sizeof err) == NULL);
    CHECK_STR(err, "funnels[0].stagez: unknown field");
    unlink(path);
}

static void test_environment_overrides_connections(void)
{
    char err[512] = "";
    char *path = write_temp("{\"kafka\": {\"brokers\": \"file:9092\"},"
                            " \"redis\": {\"url\": \"redis://file/1\"},"
                            " \"funnels\": [{\"name\": \"f\", \"stages\":"
                            " [{\"name\": \"a\", \"on\": [{\"type\": \"t\"}]}]}]}");
    if (!path)
        return;

    setenv("FUNNELD_BROKERS", "k1:9092,k2:9092", 1);
    setenv("FUNNELD_REDIS_URL", "redis://env:6380/2", 1);
    fn_config_t *cfg = fn_config_load(path, err, sizeof err);
    CHECK(cfg != NULL);
    CHECK_STR(cfg ? cfg->brokers : NULL, "k1:9092,k2:9092");
    CHECK_STR(cfg ? cfg->redis_url : NULL, "redis://env:6380/2");
    fn_config_free(cfg);

    /* from_json reads no environment; apply_env is the explicit step */
    json_t *root = json_load_file(path, 0, NULL);
    cfg = fn_config_from_json(root, err, sizeof err);
    json_decref(root);
    CHECK_STR(cfg ? cfg->brokers : NULL, "file:9092");
    CHECK_INT(cfg ? fn_config_apply_env(cfg, err, sizeof err) : -1, 0);
    CHECK_STR(cfg ? cfg->brokers : NULL, "k1:9092,k2:9092");
    CHECK_STR(cfg ? cfg->redis_url : NULL, "redis://env:6380/2");
    fn_config_free(cfg);

    /* an empty variable counts as unset */
    setenv("FUNNELD_BROKERS", "", 1);
    unsetenv("FUNNELD_REDIS_URL");
    cfg = fn_config_load(path, err, sizeof err);
    CHECK_STR(cfg ? cfg->brokers : NULL, "file:9092");
    CHECK_STR(cfg ? cfg->redis_url : NULL, "redis://file/1");
    fn_config_free(cfg);

    /* the environment is held to the same rule as the file */
    setenv("FUNNELD_REDIS_URL", "localhost:6379", 1);
    err[0] = '\0';
    CHECK(fn_config_load(path, err, sizeof err) == NULL);
    CHECK_STR(
        err,
        "FUNNELD_REDIS_URL: must start with redis:// (redis://[[user]:password@]host:port[/db])");

    /* FUNNELD_REDIS_CLUSTER: true or false, held to the cluster's rules (database 0) */
    setenv("FUNNELD_REDIS_URL", "redis://env:7000", 1);
    setenv("FUNNELD_REDIS_CLUSTER", "true", 1);
    cfg = fn_config_load(path, err, sizeof err);
    CHECK(cfg && cfg->redis_cluster);
    fn_config_free(cfg);
    setenv("FUNNELD_REDIS_CLUSTER", "false", 1);
    cfg = fn_config_load(path, err, sizeof err);
    CHECK(cfg && !cfg->redis_cluster);
    fn_config_free(cfg);
    setenv("FUNNELD_REDIS_CLUSTER", "yes", 1);
    CHECK(fn_config_load(path, err, sizeof err) == NULL);
    CHECK_STR(err, "FUNNELD_REDIS_CLUSTER: must be true or false");
    unsetenv("FUNNELD_REDIS_URL"); /* the file's redis://file/1: database 1 */
    setenv("FUNNELD_REDIS_CLUSTER", "true", 1);
    CHECK(fn_config_load(path, err, sizeof err) == NULL);
    CHECK(strncmp(err, "redis.url: a Redis Cluster has database 0 only", 46) == 0);

    unsetenv("FUNNELD_BROKERS");
    unsetenv("FUNNELD_REDIS_URL");
    unsetenv("FUNNELD_REDIS_CLUSTER");
    unlink(path);
}

/* ---- the option tables and the JSON Schema ----------------------------------------------- */

static json_t *schema_resolve(json_t *schema, json_t *node)
{
    for (int hops = 0; node && hops < 8; hops++) {
        const char *ref = json_string_value(json_object_get(node, "$ref"));
        if (!ref)
            return node;
        if (strncmp(ref, "#/$defs/", 8) != 0)
            return NULL;
        node = json_object_get(json_object_get(schema, "$defs"), ref + 8);
    }
    return node;
}

/* The schema node that describes path ("funnels[].stages[].name"; "" is the document),
 * before following its $ref, so its own description and default can be read. */
static json_t *schema_node(json_t *schema, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", path);
    json_t *node = schema;
    for (char *seg = strtok_r(buf, ".", &save); seg && node; seg = strtok_r(NULL, ".", &save)) {
        size_t len = strlen(seg);
        bool items = len > 2 && strcmp(seg + len - 2, "[]") == 0;
        if (items)
            seg[len - 2] = '\0';
        node = json_object_get(json_object_get(schema_resolve(schema, node), "properties"), seg);
        if (items)
            node = json_object_get(schema_resolve(schema, node), "items");
    }
    return node;
}

static bool schema_type_is(json_t *node, const char *type)
{
    return json_is_string(json_object_get(node, "type")) &&
           strcmp(json_string_value(json_object_get(node, "type")), type) == 0;
}

static bool schema_type_matches(json_t *schema, json_t *node, const char *type)
{
    json_t *res = schema_resolve(schema, node);
    if (strcmp(type, "duration") == 0) {
        const char *ref = json_string_value(json_object_get(node, "$ref"));
        return ref && (strcmp(ref, "#/$defs/duration") == 0 ||
                       strcmp(ref, "#/$defs/positiveDuration") == 0);
    }
    if (strcmp(type, "enum") == 0)
        return json_is_array(json_object_get(res, "enum"));
    if (strcmp(type, "string[]") == 0)
        return schema_type_is(res, "array") &&
               schema_type_is(schema_resolve(schema, json_object_get(res, "items")), "string");
    return schema_type_is(res, type);
}

static bool is_option(const char *path)
{
    const fn_config_option_t *o;
    for (size_t i = 0; (o = fn_config_option(i)); i++)
        if (strcmp(o->path, path) == 0)
            return true;
    return false;
}

/* A section is a path some option lies under ("kafka", "kafka.topics", "funnels[]"). */
static bool is_section(const char *path)
{
    const fn_config_option_t *o;
    size_t len = strlen(path);
    for (size_t i = 0; (o = fn_config_option(i)); i++)
        if (strncmp(o->path, path, len) == 0 && o->path[len] == '.')
            return true;
    return false;
}

static void test_schema_documents_every_option(void)
{
    json_error_t jerr;
    json_t *schema = json_load_file("schemas/config.schema.json", JSON_REJECT_DUPLICATES, &jerr);
    CHECK(schema != NULL);
    if (!schema) {
        fprintf(stderr, "schemas/config.schema.json: %s (line %d)\n", jerr.text, jerr.line);
        return;
    }
    CHECK_STR(json_string_value(json_object_get(schema, "$schema")),
              "https://json-schema.org/draft/2020-12/schema");

    /* table → schema: each option is there, with the table's doc, default and type */
    const fn_config_option_t *o;
    size_t n = 0;
    for (size_t i = 0; (o = fn_config_option(i)); i++, n++) {
        json_t *node = schema_node(schema, o->path);
        if (!node) {
            fprintf(stderr, "schema lacks option %s\n", o->path);
            CHECK(node != NULL);
            continue;
        }
        const char *desc = json_string_value(json_object_get(node, "description"));
        if (!desc || strcmp(desc, o->doc) != 0)
            fprintf(stderr, "%s: schema description differs from the table's doc\n", o->path);
        CHECK_STR(desc, o->doc);
        json_t *want = o->def ? json_loads(o->def, JSON_DECODE_ANY, NULL) : NULL;
        json_t *have = json_object_get(node, "default");
        bool same = want ? have && json_equal(want, have) : have == NULL;
        if (!same)
            fprintf(stderr, "%s: schema default differs from the table's %s\n", o->path,
                    o->def ? o->def : "(none)");
        CHECK(same);
        json_decref(want);
        if (!schema_type_matches(schema, node, o->type))
            fprintf(stderr, "%s: schema type is not %s\n", o->path, o->type);
        CHECK(schema_type_matches(schema, node, o->type));
    }
    CHECK(n >= 40);

    /* schema → table: every object the tables describe lists no property they do not declare.
     * Walk the distinct parents of the option paths (plus the document itself). */
    char last[256] = "-";
    for (size_t i = 0; i == 0 || fn_config_option(i - 1); i++) {
        char parent[256] = "";
        if (i > 0) {
            snprintf(parent, sizeof parent, "%s", fn_config_option(i - 1)->path);
            char *dot = strrchr(parent, '.');
            *(dot ? dot : parent) = '\0';
        }
        if (strcmp(parent, last) == 0)
            continue; /* options of one object are declared together */
        snprintf(last, sizeof last, "%s", parent);
        json_t *node = schema_resolve(schema, *parent ? schema_node(schema, parent) : schema);
        json_t *props = json_object_get(node, "properties");
        CHECK(json_is_object(props));
        CHECK(json_is_false(json_object_get(node, "additionalProperties")));
        const char *key;
        json_t *v;
        json_object_foreach (props, key, v) {
            char path[320];
            snprintf(path, sizeof path, "%s%s%s", parent, *parent ? "." : "", key);
            if (!is_option(path) && !is_section(path))
                fprintf(stderr, "schema documents %s, which the option tables lack\n", path);
            CHECK(is_option(path) || is_section(path));
        }
    }
    json_decref(schema);
}

/* Whether doc has the option at path, "[]" meaning in some element of that array. */
static bool doc_has(json_t *v, const char *path)
{
    if (!*path)
        return true;
    if (strncmp(path, "[]", 2) == 0) {
        const char *rest = path[2] == '.' ? path + 3 : path + 2;
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e)
            if (doc_has(e, rest))
                return true;
        return false;
    }
    size_t len = strcspn(path, ".[");
    json_t *sub = json_object_getn(v, path, len);
    const char *rest = path[len] == '.' ? path + len + 1 : path + len;
    return sub && doc_has(sub, rest);
}

/* fn_config_free frees field by field as the tables declare them: a document giving every
 * option loads and frees with nothing left over (a leak under the ASan build). */
static void test_every_option_set_frees_clean(void)
{
    static const char *const path = "tests/fuzz/corpus/fuzz_config/valid-everything";
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    CHECK(root != NULL);
    const fn_config_option_t *o;
    for (size_t i = 0; root && (o = fn_config_option(i)); i++) {
        if (!doc_has(root, o->path))
            fprintf(stderr, "%s does not set %s\n", path, o->path);
        CHECK(doc_has(root, o->path));
    }
    json_decref(root);
    fn_config_t *cfg = load(path);
    if (!cfg)
        return;
    CHECK_INT(cfg->funnels[0].max_breakdown, 10000);
    CHECK_INT(cfg->funnels[0].cohorts, 12);
    CHECK_INT(cfg->funnels[0].n_breakdowns, 2);
    CHECK_STR(cfg->funnels[0].breakdowns[1].dim, "props.segment");
    CHECK_INT(cfg->funnels[0].breakdowns[1].source, FN_BD_PROP);
    CHECK(cfg->funnels[0].breakdowns[1].last && !cfg->funnels[0].breakdowns[0].last);
    const fn_attribution_cfg_t *a = &cfg->funnels[0].attribution;
    CHECK(a->enabled);
    CHECK_INT(a->n_models, 6);
    CHECK_INT(a->models[0], FN_ATTR_LINEAR);
    CHECK_INT(a->models[4], FN_ATTR_POSITION_BASED);
    CHECK_INT(a->models[5], FN_ATTR_MARKOV);
    CHECK_INT(fn_attr_credit_model(a), FN_ATTR_LINEAR);
    CHECK(fn_attr_has_markov(a));
    CHECK_INT(a->lookback_ms, 30 * 86400000LL);
    CHECK_INT(a->max_touches, 20);
    CHECK_INT(a->half_life_ms, 3 * 86400000LL);
    CHECK(cfg->n_funnels < 2 || !cfg->funnels[1].attribution.enabled);
    CHECK_STR(cfg->kafka_props[3].value, "sasl_ssl");
    fn_config_free(cfg);
    fn_config_free(NULL);
}

int main(void)
{
    /* the runner's environment must not leak into the expected values */
    unsetenv("FUNNELD_BROKERS");
    unsetenv("FUNNELD_REDIS_URL");
    test_every_shipped_config_loads();
    test_demo_is_the_spec_example_plus_aida();
    test_b2b_pipeline();
    test_classic_models();
    test_defaults_fill_a_minimal_document();
    test_endpoint_listens_on_loopback_by_default();
    test_errors_never_quote_credentials();
    test_explicit_values_and_conversions();
    test_acks_all_is_accepted();
    test_bad_documents_name_path_and_problem();
    test_no_document_is_an_error_not_a_crash();
    test_sixty_stages_at_most();
    test_file_errors_carry_line_and_column();
    test_environment_overrides_connections();
    test_schema_documents_every_option();
    test_every_option_set_frees_clean();
    return fn_test_result("test_config");
}
