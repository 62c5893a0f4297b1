/*
 * bench_fill_timers.c — pre-fills Redis with pending retargeting timers for the benchmark
 * (issue 3 item 8: "a million pending timers must not slow the event path").
 *
 * Each timer belongs to a fake lead "pending-<n>" (the loadgen never produces such ids) and
 * is laid out exactly as step.lua lays out a stalled timer (README "Retargeting triggers",
 * "Redis layout"): the lead's key and shard come from fn_step_lead_hash()/fn_step_keys(), its
 * zset from fn_step_due_key() for one of the input topic's partitions (timer n goes to
 * partition n % PARTITIONS), and per timer it pipelines
 *
 *   HSET <lead key> id <lead id> <f>|p 1|<due>|a<stage>|<due>|<due>
 *        <f>|t|stalled <due>|<stage>|<topic>:<p>|fill tn <due>
 *   ZADD <zset> <due> <lead key's hex>|<f>|stalled
 *
 * with the config's key prefix and shards, so the daemon run with the same config sees them
 * as its own. The due time is far in the future (default 2100-01-01, plus n ms so scores
 * differ), so none of them is due while the benchmark runs: they are the pending timers whose
 * presence must cost the event path and the timer tick nothing.
 *
 * Output: a human summary on stderr, and one line on stdout for scripts:
 *   RESULT fill_timers timers=N seconds=S rate=R zsets=Z used_memory_before=B
 *          used_memory_after=A bytes_per_timer=P
 *
 * Usage: bench_fill_timers -c CONFIG -n COUNT [-p KEY_PREFIX] [-t TOPIC] [-P PARTITIONS]
 *                          [-f FUNNEL] [-d DUE_MS] [-w WINDOW] [-u REDIS_URL]
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/keys.h"
#include "funneld/lead_pos.h"
#include "funneld/step.h"
#include "cli.h"
#include "redis_sync.h"

#define TOOL "bench_fill_timers"
#define DUE_2100_MS 4102444800000LL /* 2100-01-01T00:00:00Z */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: bench_fill_timers -c CONFIG -n COUNT [-p KEY_PREFIX] [-t TOPIC] [-P PARTITIONS]\n"
        "                         [-f FUNNEL] [-d DUE_MS] [-w WINDOW] [-u REDIS_URL]\n"
        "  -c  funneld config (key prefix, shards, funnels, input topic and redis.url;\n"
        "      FUNNELD_REDIS_URL overrides the url)\n"
        "  -n  pending timers to write (one fake lead \"pending-<n>\" each)\n"
        "  -p  key prefix (default: the config's)\n"
        "  -t  input topic whose partitions' zsets get the timers (default: the config's\n"
        "      first input topic)\n"
        "  -P  partitions of that topic, timers spread round robin (default 6)\n"
        "  -f  funnel (default: the first funnel with a stage that has stale_after)\n"
        "  -d  due time of timer 0, epoch ms; timer n is due at DUE_MS + n\n"
        "      (default 4102444800000, 2100-01-01)\n"
        "  -w  timers in flight on the connection (default 1000)\n"
        "  -u  redis://[[user]:password@]host[:port][/db] (default: the config's)\n");
}

/* INFO memory used_memory, or -1. */
static long long used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "used_memory:");
        if (p)
            v = strtoll(p + 12, NULL, 10);
    } else {
        fprintf(stderr, TOOL ": INFO memory: %s\n",
                r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
    }
    if (r)
        freeReplyObject(r);
    return v;
}

/* Reads one reply; an error reply counts as a failure. */
static int read_reply(redisContext *c, long long *errors)
{
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
        fprintf(stderr, TOOL ": reply: %s\n", c->errstr);
        return FN_ERR;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (*errors < 5)
            fprintf(stderr, TOOL ": %s\n", r->str);
        (*errors)++;
    }
    freeReplyObject(r);
    return FN_OK;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *prefix_opt = NULL, *topic_opt = NULL, *funnel_opt = NULL,
               *url_opt = NULL;
    long long count = -1, due0 = DUE_2100_MS, partitions = 6, window = 1000;
    const fn_cli_opt_t opts[] = {{'c', FN_CLI_STR, &cfg_path, 0, 0},
                                 {'n', FN_CLI_INT, &count, 0, LLONG_MAX},
                                 {'p', FN_CLI_STR, &prefix_opt, 0, 0},
                                 {'t', FN_CLI_STR, &topic_opt, 0, 0},
                                 {'P', FN_CLI_INT, &partitions, 1, INT32_MAX},
                                 {'f', FN_CLI_STR, &funnel_opt, 0, 0},
                                 {'d', FN_CLI_INT, &due0, 1, LLONG_MAX / 2},
                                 {'w', FN_CLI_INT, &window, 1, INT32_MAX},
                                 {'u', FN_CLI_STR, &url_opt, 0, 0}};
    int st = fn_cli_parse(argc, argv, TOOL, opts, sizeof opts / sizeof opts[0], usage);
    if (st >= 0)
        return st;
    if (!cfg_path || count < 0) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    redisContext *redis = NULL;
    fn_config_t *cfg = fn_cli_config(TOOL, cfg_path, prefix_opt);
    if (!cfg)
        goto done;
    const char *topic = topic_opt ? topic_opt : cfg->n_input_topics ? cfg->input_topics[0] : NULL;
    if (!topic) {
        fprintf(stderr, TOOL ": the config has no input topic; pass -t\n");
        goto done;
    }

    /* The funnel and the stage the fake leads stall in: one with stale_after, as step.lua
     * arms a stalled timer only there. */
    const fn_funnel_t *f = NULL;
    size_t stage = 0;
    for (size_t i = 0; i < cfg->n_funnels && !f; i++) {
        if (funnel_opt && strcmp(cfg->funnels[i].name, funnel_opt) != 0)
            continue;
        for (size_t s = 0; s < cfg->funnels[i].n_stages; s++)
            if (cfg->funnels[i].stages[s].stale_after_ms > 0) {
                f = &cfg->funnels[i];
                stage = s;
                break;
            }
    }
    if (!f) {
        fprintf(stderr, TOOL ": %s%s has no stage with stale_after\n",
                funnel_opt ? "funnel " : "the config", funnel_opt ? funnel_opt : "");
        goto done;
    }

    redis = fn_redis_sync_connect(url_opt ? url_opt : cfg->redis_url, TOOL);
    if (!redis)
        goto done;

    long long mem0 = used_memory(redis);
    char fp[FN_NAME_MAX + 8], ft[FN_NAME_MAX + 16];
    fn_field_funnel(fp, sizeof fp, f->name, FN_FF_POS);
    fn_field_funnel(ft, sizeof ft, f->name, FN_FF_TIMER);
    snprintf(ft + strlen(ft), sizeof ft - strlen(ft), "stalled");

    long long errors = 0, sent = 0, recvd = 0; /* in commands: two per timer */
    double t0 = fn_cli_mono_s();
    for (long long n = 0; n < count; n++) {
        char lead_id[32], due_s[24], zset[352], tval[448], member[192], pos[FN_LEAD_POS_TEXT];
        int idlen = snprintf(lead_id, sizeof lead_id, "pending-%lld", n);
        fn_lead_keys_t k;
        fn_step_keys(cfg, fn_step_lead_hash(lead_id, (size_t)idlen), &k);
        fn_step_due_key(cfg, k.shard, topic, (int32_t)(n % partitions), zset, sizeof zset);
        long long due = due0 + n;
        snprintf(due_s, sizeof due_s, "%lld", due);
        /* the field names the zset by its key's tail, "<topic>:<partition>" (timer.lua) */
        snprintf(tval, sizeof tval, "%lld|%zu|%s:%d|fill", due, stage, topic,
                 (int)(n % partitions));
        fn_key_timer_member(member, sizeof member, k.lead, f->name, "stalled", 7);
        /* active in the stage since its due time: a fake lead, never touched */
        fn_lead_pos_t lp = {.has_touches = true,
                            .has_active = true,
                            .has_stage = true,
                            .has_entered = true,
                            .has_began = true,
                            .touches = 1,
                            .active_at = due,
                            .status = FN_STATUS_ACTIVE[0],
                            .stage = (int64_t)stage,
                            .entered_at = due,
                            .began_at = due};
        fn_lead_pos_text(&lp, pos);
        const char *hv[] = {"HSET", k.lead, "id", lead_id, fp, pos, ft, tval, "tn", due_s};
        const char *zv[] = {"ZADD", zset, due_s, member};
        if (redisAppendCommandArgv(redis, 10, hv, NULL) != REDIS_OK ||
            redisAppendCommandArgv(redis, 4, zv, NULL) != REDIS_OK) {
            fprintf(stderr, TOOL ": append: %s\n", redis->errstr);
            goto done;
        }
        sent += 2;
        /* keep at most `window` timers in flight: redisGetReply flushes the output */
        while (sent - recvd > 2 * window)
            if (read_reply(redis, &errors))
                goto done;
            else
                recvd++;
    }
    while (recvd < sent)
        if (read_reply(redis, &errors))
            goto done;
        else
            recvd++;
    double secs = fn_cli_mono_s() - t0;
    long long mem1 = used_memory(redis);
    long long zsets = (long long)cfg->redis_shards * partitions;
    double per = count > 0 && mem0 >= 0 && mem1 >= 0 ? (double)(mem1 - mem0) / (double)count : 0;

    fprintf(stderr,
            TOOL ": %lld pending timer(s) of funnel %s, stage %zu, due from %lld, "
                 "in %lld zset(s) (%d shards x %lld partitions of %s), prefix %s: %.2f s = %.0f "
                 "timers/s, %lld error(s); used_memory %lld -> %lld bytes (%.0f per timer)\n",
            count, f->name, stage, due0, zsets, cfg->redis_shards, partitions, topic,
            cfg->key_prefix, secs, secs > 0 ? (double)count / secs : 0.0, errors, mem0, mem1, per);
    printf("RESULT fill_timers timers=%lld seconds=%.3f rate=%.0f zsets=%lld "
           "used_memory_before=%lld used_memory_after=%lld bytes_per_timer=%.0f errors=%lld\n",
           count, secs, secs > 0 ? (double)count / secs : 0.0, zsets, mem0, mem1, per, errors);
    rc = errors ? 1 : 0;

done:
    if (redis)
        redisFree(redis);
    if (cfg)
        fn_config_free(cfg);
    return rc;
}
