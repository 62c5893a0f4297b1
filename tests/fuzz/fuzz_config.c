/*
 * fuzz_config.c — libFuzzer target for the configuration loader (daemon/foundation/config.c):
 * arbitrary bytes as the config file.
 *
 * Each input goes through the real fn_config_load() (the bytes are written to a memfd and
 * loaded through its /proc/self/fd path, so json_load_file, JSON_REJECT_DUPLICATES, the
 * environment step and the final redis URL check all run as in `funneld -c FILE`), and also
 * through json_loadb() with the same flag and fn_config_from_json(), the path the tests and
 * tools use. Both must agree. Every allocation must be freed (LeakSanitizer).
 *
 * On error the message must be non-empty, NUL-terminated and printable (it is printed to an
 * operator's terminal). On success the config must hold every bound config.c promises, since
 * the rest of the daemon relies on them without checking again: 1..64 funnels with unique
 * names, 1..60 stages, the conversion stage last, non-empty matchers, durations within 3650d,
 * and the worst-case timer spec, plan and trigger-cap text of each funnel must fit the
 * fixed buffers daemon/state/step.c gives them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/rules.h"

#include "fuzz_common.h"

#define ERR_MAX 512                         /* daemon/core/main.c */
#define MAX_DURATION_MS (3650LL * 86400000) /* config.c */

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* the loader's one outside input besides the file; unset, so both paths see the same */
    unsetenv("FUNNELD_BROKERS");
    unsetenv("FUNNELD_REDIS_URL");
    memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
    if (memfd < 0) {
        perror("fuzz_config: memfd_create");
        abort();
    }
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    return 0;
}

static int digits(long long v)
{
    char tmp[32];
    return snprintf(tmp, sizeof tmp, "%lld", v);
}

static bool name_ok(const char *s, size_t maxlen, bool any_text)
{
    size_t len = s ? strlen(s) : 0;
    if (len < 1 || len > maxlen)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (any_text ? (c < 0x20 || c == 0x7f)
                     : !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static void check_matcher(const fn_matcher_t *m, const char *where)
{
    FZ_CHECK(m->channel || m->type || m->props, "%s: empty matcher accepted", where);
    FZ_CHECK(!m->channel || m->channel[0], "%s: empty channel", where);
    FZ_CHECK(!m->type || m->type[0], "%s: empty type", where);
    if (m->props) {
        FZ_CHECK(json_is_object(m->props) && json_object_size(m->props) > 0,
                 "%s: props not a non-empty object", where);
        const char *key;
        json_t *v;
        json_object_foreach (m->props, key, v)
            FZ_CHECK(json_is_string(v) || json_is_number(v) || json_is_boolean(v),
                     "%s: props.%s is not a scalar", where, key);
    }
}

static void check_duration(int64_t ms, bool positive, const char *what)
{
    FZ_CHECK(ms >= (positive ? 1 : 0) && ms <= MAX_DURATION_MS, "%s: %lld ms", what, (long long)ms);
}

/* A touchpoint built from matcher m, so it matches m (and whatever else it happens to). */
static fn_event_t event_from(const fn_matcher_t *m)
{
    fn_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = FN_EV_TOUCHPOINT;
    ev.channel.p = m->channel ? m->channel : "web";
    ev.channel.len = strlen(ev.channel.p);
    ev.type.p = m->type ? m->type : "page_view";
    ev.type.len = strlen(ev.type.p);
    ev.event_id = (fn_str_t){"e", 1};
    ev.lead_id = (fn_str_t){"L", 1};
    ev.props = m->props;
    return ev;
}

static void check_funnel(const fn_config_t *cfg, size_t fi)
{
    const fn_funnel_t *f = &cfg->funnels[fi];
    FZ_CHECK(name_ok(f->name, FN_NAME_MAX, false), "funnels[%zu].name \"%s\"", fi,
             f->name ? f->name : "(null)");
    for (size_t j = 0; j < fi; j++)
        FZ_CHECK(strcmp(cfg->funnels[j].name, f->name) != 0, "funnel name %s twice", f->name);
    FZ_CHECK(fn_config_funnel(cfg, f->name, strlen(f->name)) == f, "lookup of %s", f->name);
    FZ_CHECK(f->n_stages >= 1 && f->n_stages <= FN_MAX_STAGES, "%zu stages", f->n_stages);
    FZ_CHECK(f->conversion_index == -1 || f->conversion_index == (int)f->n_stages - 1,
             "conversion index %d of %zu stages", f->conversion_index, f->n_stages);
    size_t spec_max = 0; /* the longest timer spec this funnel can produce */
    for (size_t s = 0; s < f->n_stages; s++) {
        const fn_stage_t *st = &f->stages[s];
        FZ_CHECK(name_ok(st->name, FN_NAME_MAX, true), "stage %zu name", s);
        for (size_t j = 0; j < s; j++)
            FZ_CHECK(strcmp(f->stages[j].name, st->name) != 0, "stage name %s twice", st->name);
        FZ_CHECK(st->n_on >= 1 && st->on, "stage %zu has no matcher", s);
        for (size_t k = 0; k < st->n_on; k++)
            check_matcher(&st->on[k], "stages[].on[]");
        check_duration(st->stale_after_ms, false, "stale_after");
        FZ_CHECK(st->probability >= 0 && st->probability <= 1, "probability %g", st->probability);
        FZ_CHECK(st->conversion == ((int)s == f->conversion_index), "stage %zu conversion %d", s,
                 st->conversion);
        spec_max += (s ? 1 : 0) + (size_t)digits(st->stale_after_ms);
    }
    FZ_CHECK(!f->n_lost_on || f->lost_on, "lost matchers missing");
    for (size_t k = 0; k < f->n_lost_on; k++)
        check_matcher(&f->lost_on[k], "lost.on[]");
    FZ_CHECK(f->n_retarget <= FN_MAX_RULES, "%zu retarget rules", f->n_retarget);
    for (size_t r = 0; r < f->n_retarget; r++) {
        const fn_retarget_rule_t *rule = &f->retarget[r];
        FZ_CHECK(name_ok(rule->name, FN_NAME_MAX, false) && strcmp(rule->name, "stalled") != 0,
                 "rule name \"%s\"", rule->name ? rule->name : "(null)");
        for (size_t j = 0; j < r; j++)
            FZ_CHECK(strcmp(f->retarget[j].name, rule->name) != 0, "rule %s twice", rule->name);
        check_matcher(&rule->after, "retarget[].after");
        for (size_t k = 0; k < rule->n_unless; k++)
            check_matcher(&rule->unless[k], "retarget[].unless[]");
        check_duration(rule->within_ms, true, "within");
        size_t arm = 2 + (size_t)digits(rule->within_ms) + 1 + strlen(rule->name);
        size_t cancel = 3 + strlen(rule->name);
        spec_max += arm > cancel ? arm : cancel;
    }
    /* daemon/state/step.c writes every timer spec into char[FN_TIMER_SPEC_MAX] */
    FZ_CHECK(spec_max < FN_TIMER_SPEC_MAX, "worst timer spec %zu bytes, buffer %d", spec_max,
             FN_TIMER_SPEC_MAX);
    const fn_bottleneck_cfg_t *b = &f->bottleneck;
    check_duration(b->window_ms, true, "bottleneck.window");
    check_duration(b->baseline_ms, true, "bottleneck.baseline");
    check_duration(b->evaluate_every_ms, true, "bottleneck.evaluate_every");
    FZ_CHECK(b->baseline_ms > b->window_ms, "baseline %lld <= window %lld",
             (long long)b->baseline_ms, (long long)b->window_ms);
    FZ_CHECK(b->min_entered >= 1 && b->drop > 0 && b->drop < 1, "min_entered %lld drop %g",
             (long long)b->min_entered, b->drop);
    FZ_CHECK((f->trigger_cap_max == 0 && f->trigger_cap_per_ms == 0) ||
                 (f->trigger_cap_max >= 1 && f->trigger_cap_per_ms >= 1 &&
                  f->trigger_cap_per_ms <= MAX_DURATION_MS),
             "trigger_cap %lld per %lld", (long long)f->trigger_cap_max,
             (long long)f->trigger_cap_per_ms);
    /* the step's max_breakdown list (step.c) gives each funnel FN_I64_TEXT + 1 bytes */
    FZ_CHECK(f->max_breakdown >= 1 && f->max_breakdown <= 10000, "max_breakdown %d",
             f->max_breakdown);
    /* daemon/state/step.c fn_step_caps: "<name>=<max>,<per>;" per funnel in
     * FN_NAME_MAX + 44 bytes a funnel */
    if (f->trigger_cap_max > 0) {
        size_t caps = strlen(f->name) + 1 + (size_t)digits(f->trigger_cap_max) + 1 +
                      (size_t)digits(f->trigger_cap_per_ms) + 1;
        FZ_CHECK(caps <= FN_NAME_MAX + 44, "trigger cap text %zu bytes", caps);
    }

    /* The rules on this funnel: every possible match gives a well-formed plan, and an event
     * built from each matcher gives a timer spec within its buffer. */
    for (int s = -1; s < (int)f->n_stages; s++) {
        fz_check_plan(f, (fn_match_t){s, false});
        fz_check_plan(f, (fn_match_t){s, true});
    }
    static char spec[FN_TIMER_SPEC_MAX];
    for (size_t r = 0; r < f->n_retarget; r++) {
        fn_event_t ev = event_from(&f->retarget[r].after);
        size_t n = fn_rules_timer_spec(f, &ev, spec, sizeof spec);
        FZ_CHECK(n > 0 && n < sizeof spec && strlen(spec) == n && n <= spec_max,
                 "timer spec of an event matching rule %zu: %zu bytes (bound %zu)", r, n, spec_max);
    }
    for (size_t s = 0; s < f->n_stages; s++) {
        fn_event_t ev = event_from(&f->stages[s].on[0]);
        fn_match_t m = fn_rules_match(f, &ev);
        FZ_CHECK(m.stage >= (int)s && m.stage < (int)f->n_stages,
                 "event built from stage %zu's matcher matched stage %d", s, m.stage);
    }
}

/* The text [s, s + n) is the decimal v. Leading zeros are allowed: "06379" is 6379 written
 * another way, which the parser rightly reads as such (the first long run's only finding was
 * this check being stricter than that; regressions/fuzz_config-redis-url-leading-zeros-*). */
static bool is_decimal_of(const char *s, size_t n, long v)
{
    char num[24];
    while (n > 1 && *s == '0') {
        s++;
        n--;
    }
    snprintf(num, sizeof num, "%ld", v);
    return strlen(num) == n && memcmp(num, s, n) == 0;
}

/* What the daemon does with redis.url at connect (daemon/state/store.c, same buffer sizes).
 * Always run, for ASan/UBSan; under FUZZ_STRICT an accepted URL must also parse, with nothing
 * cut short (finding 2 in tests/fuzz/README.md: `funneld --check-config` accepts URLs the daemon
 * then refuses at connect, or silently truncates). */
static void check_redis_url_usable(const char *url)
{
    char host[256], user[128], pass[256];
    int port = -1, db = -1;
    int rc = fn_redis_url_parse(url, host, sizeof host, &port, user, sizeof user, pass, sizeof pass,
                                &db);
    if (!fz_strict())
        return;
    FZ_CHECK(rc == FN_OK, "redis.url \"%s\" passed the config check but does not parse", url);
    FZ_CHECK(port > 0 && port < 65536 && db >= 0, "redis.url \"%s\": port %d db %d", url, port, db);
    const char *at = strrchr(url + 8, '@');
    const char *hp = at ? at + 1 : url + 8;
    size_t hostpart = strcspn(hp, ":/");
    FZ_CHECK(strlen(host) == hostpart, "redis.url \"%s\": host cut to \"%s\"", url, host);
    /* the port and db read are the port and db written: no wrap-around, no trailing junk */
    if (hp[hostpart] == ':') {
        size_t n = strcspn(hp + hostpart + 1, "/");
        FZ_CHECK(is_decimal_of(hp + hostpart + 1, n, port), "redis.url \"%s\": port read as %d",
                 url, port);
    }
    const char *slash = strchr(hp, '/');
    if (slash && slash[1])
        FZ_CHECK(is_decimal_of(slash + 1, strlen(slash + 1), db), "redis.url \"%s\": db read as %d",
                 url, db);
    if (at) {
        /* "user:password", ":password" or "password" (redis-cli's reading) */
        size_t userinfo = (size_t)(at - (url + 8));
        bool colon = memchr(url + 8, ':', userinfo) != NULL;
        FZ_CHECK((colon ? strlen(user) + 1 : 0) + strlen(pass) == userinfo && (colon || !user[0]),
                 "redis.url \"%s\": user/password cut to \"%s\"/\"%s\"", url, user, pass);
    }
}

static void check_config(const fn_config_t *cfg)
{
    FZ_CHECK(cfg->brokers && cfg->brokers[0], "brokers");
    FZ_CHECK(cfg->group_id && strlen(cfg->group_id) >= 1 && strlen(cfg->group_id) <= 255,
             "group_id");
    FZ_CHECK(cfg->n_input_topics >= 1 && cfg->input_topics, "input_topics");
    for (size_t i = 0; i < cfg->n_input_topics; i++)
        FZ_CHECK(cfg->input_topics[i] && cfg->input_topics[i][0], "input_topics[%zu]", i);
    const char *topics[] = {cfg->topic_transitions, cfg->topic_retargeting, cfg->topic_bottlenecks,
                            cfg->topic_snapshots, cfg->topic_dlq};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        FZ_CHECK(name_ok(topics[i], 249, false), "topic %zu \"%s\"", i,
                 topics[i] ? topics[i] : "(null)");
    FZ_CHECK(!cfg->n_kafka_props || cfg->kafka_props, "kafka properties");
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        FZ_CHECK(cfg->kafka_props[i].key && cfg->kafka_props[i].value, "kafka property %zu", i);
    FZ_CHECK(cfg->redis_url && strncmp(cfg->redis_url, "redis://", 8) == 0 &&
                 strlen(cfg->redis_url) > 8,
             "redis.url");
    check_redis_url_usable(cfg->redis_url);
    FZ_CHECK(name_ok(cfg->key_prefix, 32, false), "key_prefix");
    FZ_CHECK(cfg->redis_shards >= 1 && cfg->redis_shards <= 4096, "shards %d", cfg->redis_shards);
    FZ_CHECK(cfg->http_listen && strrchr(cfg->http_listen, ':'), "http.listen");
    FZ_CHECK(cfg->clock == FN_CLOCK_WALL || cfg->clock == FN_CLOCK_EVENT, "clock %d", cfg->clock);
    check_duration(cfg->dedupe_ttl_ms, true, "dedupe_ttl");
    check_duration(cfg->max_future_ms, false, "max_future");
    FZ_CHECK(cfg->max_message_bytes >= 256 && cfg->max_message_bytes <= 16777216,
             "max_message_bytes %zu", cfg->max_message_bytes);
    FZ_CHECK(cfg->max_in_flight >= 1 && cfg->max_in_flight <= 1000000, "max_in_flight %zu",
             cfg->max_in_flight);
    FZ_CHECK(cfg->n_funnels >= 1 && cfg->n_funnels <= FN_MAX_FUNNELS && cfg->funnels, "%zu funnels",
             cfg->n_funnels);
    for (size_t i = 0; i < cfg->n_funnels; i++)
        check_funnel(cfg, i);
}

/* The contract: a failure always explains itself, in a NUL-terminated message. The message is
 * printed to the operator's terminal on one line (daemon/core/main.c), so under FUZZ_STRICT it
 * must also hold no control characters and be valid UTF-8 (finding 1 in tests/fuzz/README.md:
 * today it quotes raw bytes of the document). */
static void check_error(const char *err, const char *what)
{
    const char *end = memchr(err, '\0', ERR_MAX);
    FZ_CHECK(end != NULL, "%s: error message not NUL-terminated", what);
    FZ_CHECK(err[0] != '\0', "%s: failed with an empty error message", what);
    if (!fz_strict())
        return;
    for (const char *p = err; p < end; p++)
        FZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
                 "%s: control byte 0x%02x at %zu in the error message: %s", what, (unsigned char)*p,
                 (size_t)(p - err), err);
    FZ_CHECK(fz_utf8_valid(err, (size_t)(end - err)), "%s: error message is not UTF-8: %s", what,
             err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the daemon's path: a file */
    FZ_CHECK(ftruncate(memfd, 0) == 0 && pwrite(memfd, data, size, 0) == (ssize_t)size,
             "writing the memfd failed");
    char err_file[ERR_MAX];
    memset(err_file, 0x5a, sizeof err_file);
    fn_config_t *from_file = fn_config_load(memfd_path, err_file, sizeof err_file);
    if (!from_file)
        check_error(err_file, "fn_config_load");

    /* the in-memory path */
    char err_mem[ERR_MAX];
    memset(err_mem, 0x5a, sizeof err_mem);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    fn_config_t *from_mem = NULL;
    if (root) {
        from_mem = fn_config_from_json(root, err_mem, sizeof err_mem);
        if (!from_mem)
            check_error(err_mem, "fn_config_from_json");
    }

    if (fz_trace())
        fprintf(stderr, "fuzz_config: %zu bytes: %s\n", size, from_file ? "accepted" : err_file);

    /* same bytes, same verdict; when the document parsed, the same message */
    FZ_CHECK((from_file != NULL) == (from_mem != NULL),
             "fn_config_load %s (%s) but "
             "json_loadb+fn_config_from_json %s (%s)",
             from_file ? "accepted" : "rejected", from_file ? "" : err_file,
             from_mem ? "accepted" : "rejected",
             from_mem ? ""
             : root   ? err_mem
                      : jerr.text);
    if (root && !from_mem && strncmp(err_mem, "FUNNELD_", 8) != 0)
        FZ_CHECK(strcmp(err_file, err_mem) == 0, "messages differ: \"%s\" / \"%s\"", err_file,
                 err_mem);

    if (from_mem) {
        check_config(from_mem);
        /* a config is loaded once; validating what it produced again gives the same result */
        FZ_CHECK(strcmp(from_mem->redis_url, from_file->redis_url) == 0 &&
                     from_mem->n_funnels == from_file->n_funnels &&
                     from_mem->max_message_bytes == from_file->max_message_bytes,
                 "the two paths built different configs");
    }
    fn_config_free(from_file);
    fn_config_free(from_mem);
    json_decref(root);
    return 0;
}
