/*
 * test_reload.c — a configuration replaced on SIGHUP lives exactly as long as the messages
 * whose steps were built with it (reload.c): a table of holds, let-gos and reloads, with the
 * number of replaced configs still kept after each. Under the ASan build (tests/run.sh,
 * detect_leaks=1) a replaced config that is dropped without being freed is a leak at exit,
 * and one freed while a message still holds it a use-after-free in the next step.
 */
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/reload.h"

static fn_config_t *config(const char *funnel)
{
    char text[512], err[256] = "";
    snprintf(
        text, sizeof text,
        "{\"funnels\":[{\"name\":\"%s\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"t\"}]},"
        "{\"name\":\"b\",\"on\":[{\"type\":\"u\"}]}]}]}",
        funnel);
    json_t *root = json_loads(text, 0, NULL);
    fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    json_decref(root);
    if (!cfg)
        fprintf(stderr, "test config: %s\n", err);
    return cfg;
}

enum { HOLD, LET_GO, RELOAD };

static void no_stop(void *data, int exit_code)
{
    (void)data, (void)exit_code;
    CHECK(!"a reload asked the daemon to stop");
}

static void test_replaced_configs_live_while_held(void)
{
    static const struct {
        int op;
        int msg; /* HOLD, LET_GO: which message */
        size_t retired;
    } steps[] = {
        {HOLD, 0, 0},   {HOLD, 1, 0},   /* two steps built with config 1 */
        {RELOAD, 0, 1},                 /* 1 is kept for them */
        {HOLD, 2, 1},                   /* a step built with 2 */
        {LET_GO, 0, 1}, {RELOAD, 0, 2}, /* 1 (held by message 1) and 2 (message 2) kept */
        {LET_GO, 2, 1},                 /* 2 freed */
        {HOLD, 1, 0},                   /* message 1's step rebuilt with 3: 1 freed */
        {RELOAD, 0, 1}, {LET_GO, 1, 0}, /* 3 kept for message 1, then freed */
        {LET_GO, 1, 0},                 /* holds nothing: nothing happens */
        {RELOAD, 0, 0},                 /* nothing holds 4: freed at once */
        {HOLD, 0, 0},                   /* held by message 0 at exit: freed with the daemon */
    };
    fn_log_t log = {.out = stderr, .level = FN_LOG_ERROR};
    fn_stats_t stats;
    memset(&stats, 0, sizeof stats);
    fn_config_t *running = config("f1");
    const fn_host_t host = {.cfg = &running, .log = &log, .stats = &stats, .stop = no_stop};
    fn_reload_t *rl = fn_reload_new(&host, &running);
    CHECK(running != NULL && rl != NULL);
    if (!running || !rl) {
        fn_reload_free(rl);
        fn_config_free(running);
        return;
    }
    fn_msg_t msgs[3];
    memset(msgs, 0, sizeof msgs);
    int generation = 1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        fn_msg_t *m = &msgs[steps[i].msg];
        switch (steps[i].op) {
        case HOLD:
            fn_reload_hold(rl, m);
            CHECK(m->cfg == running);
            break;
        case LET_GO:
            fn_reload_let_go(rl, m);
            CHECK(m->cfg == NULL);
            break;
        case RELOAD: {
            char name[8];
            snprintf(name, sizeof name, "f%d", ++generation);
            fn_reload_accept(rl, config(name)); /* applied at once: nothing evaluates */
            CHECK(!fn_reload_pending(rl));
            CHECK_STR(running->funnels[0].name, name);
            CHECK_INT(fn_reload_generation(rl), generation);
            CHECK_INT(fn_reload_users(rl), 0);
            break;
        }
        }
        if (fn_reload_retired(rl) != steps[i].retired)
            fprintf(stderr, "step %zu\n", i);
        CHECK_INT(fn_reload_retired(rl), steps[i].retired);
        /* every message still points at a live config: its first funnel is readable */
        for (size_t k = 0; k < 3; k++)
            CHECK(!msgs[k].cfg || msgs[k].cfg->funnels[0].name[0] == 'f');
    }
    CHECK_INT(fn_reload_users(rl), 1);
    fn_reload_free(rl);
    free(stats.trans_by_funnel);
    free(stats.trig_by_funnel);
    fn_config_free(running);
}

/* ---- what a reload may change -------------------------------------------------------- */

#define FUNNELS                                                                                    \
    "[{\"name\":\"f\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"t\"}]},"                     \
    "{\"name\":\"b\",\"on\":[{\"type\":\"u\"}]}]}]"

/* Every option fixed at start, a valid value other than its default, and the field a reload
 * that changes it is refused with (the five topics are refused as one, "kafka.topics"). */
static const struct {
    const char *path;
    const char *value;
    const char *refused_as;
} fixed[] = {
    {"kafka.brokers", "\"b1:9092,b2:9092\"", "kafka.brokers"},
    {"kafka.group_id", "\"other\"", "kafka.group_id"},
    {"kafka.input_topics", "[\"touchpoints\",\"more\"]", "kafka.input_topics"},
    {"kafka.topics.transitions", "\"x\"", "kafka.topics"},
    {"kafka.topics.retargeting", "\"x\"", "kafka.topics"},
    {"kafka.topics.bottlenecks", "\"x\"", "kafka.topics"},
    {"kafka.topics.snapshots", "\"x\"", "kafka.topics"},
    {"kafka.topics.dlq", "\"x\"", "kafka.topics"},
    {"kafka.properties", "{\"linger.ms\":5}", "kafka.properties"},
    {"kafka.input_formats", "{\"touchpoints\":\"segment\"}", "kafka.input_formats"},
    {"redis.url", "\"redis://10.0.0.1:6379/1\"", "redis.url"},
    {"redis.key_prefix", "\"other\"", "redis.key_prefix"},
    {"redis.shards", "8", "redis.shards"},
    {"redis.cluster", "true", "redis.cluster"},
    {"redis.fast_path", "false", "redis.fast_path"},
    {"redis.seeds", "[\"10.0.0.2:7000\"]", "redis.seeds"},
    {"http.listen", "\"127.0.0.1:9999\"", "http.listen"},
    {"http.auth_token", "\"another-token-0123456789\"", "http.auth_token"},
    {"clock", "\"event\"", "clock"},
    {"dedupe_ttl", "\"1d\"", "dedupe_ttl"},
    {"max_future", "\"2h\"", "max_future"},
    {"max_message_bytes", "1024", "max_message_bytes"},
    {"max_in_flight", "10", "max_in_flight"},
};
#define N_FIXED (sizeof fixed / sizeof fixed[0])

/* The minimal document with the option at dotted path set to value (JSON text), or with
 * nothing more when path is NULL; funnels (JSON text) replaces the one funnel when given. */
static fn_config_t *config_with(const char *path, const char *value, const char *funnels)
{
    char err[256] = "";
    json_t *root = json_object(), *v = NULL;
    fn_config_t *cfg = NULL;
    json_object_set_new(root, "funnels", json_loads(funnels ? funnels : FUNNELS, 0, NULL));
    if (path) {
        json_t *obj = root;
        const char *dot;
        while ((dot = strchr(path, '.'))) {
            json_t *sub = json_object_getn(obj, path, (size_t)(dot - path));
            if (!sub) {
                sub = json_object();
                json_object_setn_new(obj, path, (size_t)(dot - path), sub);
            }
            obj = sub;
            path = dot + 1;
        }
        if (!(v = json_loads(value, JSON_DECODE_ANY, NULL)))
            goto done;
        json_object_set_new(obj, path, v);
    }
    cfg = fn_config_from_json(root, err, sizeof err);
done:
    if (!cfg)
        fprintf(stderr, "test config (%s = %s): %s\n", path ? path : "-", value ? value : "-", err);
    json_decref(root);
    return cfg;
}

static bool has_fixed(const char *path)
{
    for (size_t k = 0; k < N_FIXED; k++)
        if (strcmp(fixed[k].path, path) == 0)
            return true;
    return false;
}

/* The option tables say which options are fixed: exactly the list above, and an option
 * nested under another (funnels[].stages[].name under funnels) shares its flag. */
static void test_tables_fix_exactly_the_settings_fixed_at_start(void)
{
    const fn_config_option_t *o, *p;
    for (size_t i = 0; (o = fn_config_option(i)); i++) {
        if (!o->reloadable && !has_fixed(o->path))
            fprintf(stderr, "%s is fixed at start in the tables, not in this test\n", o->path);
        CHECK(o->reloadable || has_fixed(o->path));
        if (o->reloadable && has_fixed(o->path))
            fprintf(stderr, "%s is reloadable in the tables, fixed in this test\n", o->path);
        CHECK(!(o->reloadable && has_fixed(o->path)));
        for (size_t j = 0; (p = fn_config_option(j)); j++) {
            size_t len = strlen(p->path);
            if (j != i && strncmp(o->path, p->path, len) == 0 &&
                (o->path[len] == '.' || o->path[len] == '['))
                CHECK(o->reloadable == p->reloadable);
        }
    }
    for (size_t k = 0; k < N_FIXED; k++) {
        bool found = false;
        for (size_t i = 0; (o = fn_config_option(i)) && !found; i++)
            found = strcmp(o->path, fixed[k].path) == 0;
        CHECK(found);
    }
}

/* Two configs differing only in one fixed option: the diff names it, either way round; the
 * option written out at its default is no difference. */
static void test_each_fixed_option_is_named(void)
{
    fn_config_t *base = config_with(NULL, NULL, NULL);
    CHECK(base != NULL);
    if (!base)
        return;
    CHECK(fn_reload_immutable_diff(base, base) == NULL);
    for (size_t k = 0; k < N_FIXED; k++) {
        fn_config_t *other = config_with(fixed[k].path, fixed[k].value, NULL);
        CHECK(other != NULL);
        if (!other)
            continue;
        const char *ab = fn_reload_immutable_diff(base, other);
        const char *ba = fn_reload_immutable_diff(other, base);
        if (!ab || strcmp(ab, fixed[k].refused_as) != 0)
            fprintf(stderr, "changing %s\n", fixed[k].path);
        CHECK_STR(ab, fixed[k].refused_as);
        CHECK_STR(ba, fixed[k].refused_as);
        fn_config_free(other);

        const fn_config_option_t *o = NULL;
        for (size_t i = 0; (o = fn_config_option(i)); i++)
            if (strcmp(o->path, fixed[k].path) == 0)
                break;
        CHECK(o != NULL);
        if (o && !o->def)
            continue; /* absent by default (redis.seeds): there is no default to write */
        fn_config_t *same = o ? config_with(o->path, o->def, NULL) : NULL;
        CHECK(same != NULL);
        if (same && fn_reload_immutable_diff(base, same))
            fprintf(stderr, "%s at its default differs\n", fixed[k].path);
        CHECK(!same || fn_reload_immutable_diff(base, same) == NULL);
        fn_config_free(same);
    }
    fn_config_free(base);
}

/* A kafka.properties list differs in a value as well as in a key; two changed options are
 * reported in table order, the first of them. */
static void test_lists_compared_element_by_element(void)
{
    static const struct {
        const char *path, *a, *b, *want;
    } cases[] = {
        {"kafka.properties", "{\"linger.ms\":5}", "{\"linger.ms\":6}", "kafka.properties"},
        {"kafka.properties", "{\"linger.ms\":5}", "{\"batch.size\":5}", "kafka.properties"},
        {"kafka.properties", "{\"linger.ms\":5}", "{\"linger.ms\":\"5\"}", NULL},
        {"kafka.input_topics", "[\"a\",\"b\"]", "[\"a\",\"c\"]", "kafka.input_topics"},
        {"kafka.input_topics", "[\"a\",\"b\"]", "[\"a\",\"b\"]", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_config_t *a = config_with(cases[i].path, cases[i].a, NULL);
        fn_config_t *b = config_with(cases[i].path, cases[i].b, NULL);
        CHECK(a && b);
        if (a && b) {
            const char *got = fn_reload_immutable_diff(a, b);
            if (cases[i].want)
                CHECK_STR(got, cases[i].want);
            else
                CHECK(got == NULL);
        }
        fn_config_free(a);
        fn_config_free(b);
    }
    fn_config_t *a = config_with("kafka.group_id", "\"g1\"", NULL);
    fn_config_t *b = config_with("redis.shards", "2", NULL);
    CHECK(a && b);
    if (a && b) {
        b->group_id[0] = 'h'; /* now group_id and shards differ: group_id is first */
        CHECK_STR(fn_reload_immutable_diff(a, b), "kafka.group_id");
    }
    fn_config_free(a);
    fn_config_free(b);
}

/* What a reload is for: changing funnels, their stages, rules and settings is no difference. */
static void test_funnel_changes_are_reloadable(void)
{
    static const char *const funnels[] = {
        /* a stage renamed */
        "[{\"name\":\"f\",\"stages\":[{\"name\":\"a2\",\"on\":[{\"type\":\"t\"}]},"
        "{\"name\":\"b\",\"on\":[{\"type\":\"u\"}]}]}]",
        /* a stage added, with a stale_after */
        "[{\"name\":\"f\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"t\"}]},"
        "{\"name\":\"b\",\"on\":[{\"type\":\"u\"}],\"stale_after\":\"1h\"},"
        "{\"name\":\"c\",\"on\":[{\"type\":\"v\"}],\"conversion\":true}]}]",
        /* a funnel added, with a rule, a cap and bottleneck detection */
        "[{\"name\":\"f\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"t\"}]},"
        "{\"name\":\"b\",\"on\":[{\"type\":\"u\"}]}]},"
        "{\"name\":\"g\",\"allow_skip\":true,\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"t\"}]}"
        "],"
        "\"retarget\":[{\"name\":\"r\",\"after\":{\"type\":\"t\"},\"within\":\"1h\"}],"
        "\"trigger_cap\":{\"max\":1,\"per\":\"1d\"},\"bottleneck\":{}}]",
    };
    fn_config_t *base = config_with(NULL, NULL, NULL);
    CHECK(base != NULL);
    for (size_t i = 0; base && i < sizeof funnels / sizeof funnels[0]; i++) {
        fn_config_t *next = config_with(NULL, NULL, funnels[i]);
        CHECK(next != NULL);
        CHECK(!next || fn_reload_immutable_diff(base, next) == NULL);
        fn_config_free(next);
    }
    fn_config_free(base);
}

int main(void)
{
    test_replaced_configs_live_while_held();
    test_tables_fix_exactly_the_settings_fixed_at_start();
    test_each_fixed_option_is_named();
    test_lists_compared_element_by_element();
    test_funnel_changes_are_reloadable();
    return fn_test_result("test_reload");
}
