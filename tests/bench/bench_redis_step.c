/*
 * bench_redis_step.c — the Redis ceiling of issue 7: the exact Lua step funneld runs per
 * event, driven as fast as one pipelined hiredis connection can drive it.
 *
 * It owns nothing of the daemon: it reads a JSON-lines file of touchpoints (written by
 * `funneld-loadgen --no-kafka --out FILE`, or together with the Kafka pre-fill), decodes each
 * line with fn_event_decode() against the same config funneld runs with, builds the very
 * EVALSHA command funneld would send with fn_step_build() (under a key prefix of its own, so
 * it starts from empty state exactly like a fresh funneld run), and only then starts the
 * clock: the timed part is appending the prebuilt commands to one sync hiredis connection,
 * keeping up to --window of them in flight, and reading the replies. Messages the decoder
 * rejects are skipped (funneld sends them to the dead-letter topic without touching Redis).
 *
 * It also reports what each step costs Redis: the delta of INFO commandstats (in Redis 7 the
 * commands a script calls are counted there too) and of INFO cpu, per step.
 *
 * Output: a human summary on stderr, and one line on stdout for scripts:
 *   RESULT redis_step events=N seconds=S eps=E cmds_per_event=C redis_cpu_s=R ...
 *
 * With -x fast, events go as funneld sends them with redis.fast_path on (fast.h): a touch
 * that may take the fast path is read first (HGETALL of its lead), then applied by the fast
 * path's function or, declined or found stale, by the whole step. The events go in batches
 * of up to --window events of distinct leads (a lead's events stay in order): the reads of
 * a batch pipelined, then its applies and steps, then the whole steps of the stale ones.
 *
 * Usage: bench_redis_step -c CONFIG -i EVENTS.jsonl [-p KEY_PREFIX] [-w WINDOW] [-u REDIS_URL]
 *                         [-n NOW_MS] [-x fcall|evalsha|fast] [-t TOPIC] [-P PARTITIONS]
 */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/fast.h"
#include "funneld/keys.h"
#include "funneld/step.h"
#include "cli.h"
#include "redis_sync.h"

#define TOOL "bench_redis_step"
#define MAX_CMDSTATS 512

typedef struct cmdstat {
    char name[64];
    long long calls;
} cmdstat_t;

typedef struct cmdstats {
    cmdstat_t s[MAX_CMDSTATS];
    size_t n;
    double cpu_user, cpu_sys;
} cmdstats_t;

typedef struct counts {
    long long ok, dup, dup_replay, erased, collision, errors, other, transitions;
} counts_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_redis_step -c CONFIG -i EVENTS.jsonl [-p KEY_PREFIX] [-w WINDOW]\n"
               "                        [-u REDIS_URL] [-n NOW_MS] [-x fcall|evalsha|fast]\n"
               "                        [-t TOPIC] [-P PARTITIONS]\n"
               "  -c  funneld config (the funnels and redis.url; FUNNELD_REDIS_URL overrides)\n"
               "  -i  touchpoints, one JSON message per line (funneld-loadgen --out)\n"
               "  -p  Redis key prefix (default bench-redis-<pid>-<time>): use a fresh one\n"
               "  -w  steps in flight on the connection (default 1000)\n"
               "  -u  redis://[[user]:password@]host[:port][/db] (default: the config's)\n"
               "  -n  the daemon's clock at the first step, +1 ms per step (default: the wall\n"
               "      clock): the step's sampled work then falls on the same steps every run\n"
               "  -x  how steps are called: fcall (default; the step library, as funneld calls\n"
               "      it on Redis 7), evalsha (the script, funneld's way where functions\n"
               "      cannot be loaded) or fast (funneld's fast path where it applies, the\n"
               "      step library's FCALL where not; see the top of the source)\n"
               "  -t  the input topic the events are taken as consumed from, for their timers'\n"
               "      zsets (default touchpoints)\n"
               "  -P  its partitions (default 6): a lead's events are taken from partition\n"
               "      (its hash mod PARTITIONS)\n");
}

static double info_double(const char *text, const char *field)
{
    const char *p = strstr(text, field);
    return p ? strtod(p + strlen(field), NULL) : 0.0;
}

/* INFO commandstats and INFO cpu in one snapshot. */
static int snapshot(redisContext *c, cmdstats_t *st)
{
    st->n = 0;
    redisReply *r = redisCommand(c, "INFO commandstats");
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, TOOL ": INFO commandstats: %s\n",
                r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
        goto fail;
    }
    for (char *line = r->str; line && *line;) {
        char *next = strchr(line, '\n');
        if (strncmp(line, "cmdstat_", 8) == 0 && st->n < MAX_CMDSTATS) {
            char *colon = strchr(line, ':');
            char *calls = colon ? strstr(colon, "calls=") : NULL;
            if (colon && calls && (!next || calls < next)) {
                cmdstat_t *s = &st->s[st->n++];
                snprintf(s->name, sizeof s->name, "%.*s", (int)(colon - line - 8), line + 8);
                s->calls = strtoll(calls + 6, NULL, 10);
            }
        }
        line = next ? next + 1 : NULL;
    }
    freeReplyObject(r);
    r = redisCommand(c, "INFO cpu");
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, TOOL ": INFO cpu: %s\n",
                r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
        goto fail;
    }
    st->cpu_user = info_double(r->str, "used_cpu_user:");
    st->cpu_sys = info_double(r->str, "used_cpu_sys:");
    freeReplyObject(r);
    return FN_OK;
fail:
    if (r)
        freeReplyObject(r);
    return FN_ERR;
}

static long long calls_of(const cmdstats_t *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->s[i].name, name) == 0)
            return st->s[i].calls;
    return 0;
}

static int by_calls_desc(const void *a, const void *b)
{
    const cmdstat_t *x = a, *y = b;
    return x->calls < y->calls ? 1 : x->calls > y->calls ? -1 : 0;
}

/* Fills delta with after - before per command (INFO itself left out) and returns the sum. */
static long long diff_stats(const cmdstats_t *before, const cmdstats_t *after, cmdstats_t *delta)
{
    long long total = 0;
    delta->n = 0;
    for (size_t i = 0; i < after->n; i++) {
        if (strcmp(after->s[i].name, "info") == 0)
            continue;
        long long d = after->s[i].calls - calls_of(before, after->s[i].name);
        if (d <= 0)
            continue;
        delta->s[delta->n] = after->s[i];
        delta->s[delta->n].calls = d;
        delta->n++;
        total += d;
    }
    qsort(delta->s, delta->n, sizeof delta->s[0], by_calls_desc);
    return total;
}

static void count_reply(const redisReply *r, counts_t *k)
{
    if (r->type == REDIS_REPLY_ERROR) {
        if (k->errors < 5)
            fprintf(stderr, TOOL ": step error: %s\n", r->str);
        k->errors++;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        k->other++;
        return;
    }
    const char *s = r->element[0]->str;
    if (strcmp(s, "ok") == 0)
        k->ok++;
    else if (strcmp(s, "dup") == 0)
        k->dup++;
    else if (strncmp(s, "dup-", 4) == 0)
        k->dup_replay++;
    else if (strcmp(s, "erased") == 0)
        k->erased++;
    else if (strcmp(s, "collision") == 0)
        k->collision++;
    else
        k->other++;
    if (strcmp(s, "ok") == 0 && r->elements >= 5 && r->element[4]->type == REDIS_REPLY_ARRAY)
        k->transitions += (long long)r->element[4]->elements;
}

/* The events of -x fast: their lines, each one's clock and message number. */
typedef struct fast_events {
    fn_buf_t text;
    size_t *at; /* line i is text.data[at[i] .. at[i + 1]) */
    int64_t *now;
    size_t *msg; /* the message number in the step's token (the whole modes' too) */
    size_t n, cap;
} fast_events_t;

typedef struct fast_counts {
    long long applied, stale, declined;
} fast_counts_t;

/* Sends every event of e the fast path's way (the top of this file), counting the step
 * replies (the fast path's as the step would have answered) into k. */
static int run_fast(redisContext *redis, const fn_config_t *cfg, const char *instance,
                    const fast_events_t *e, size_t window, const char *topic, long long partitions,
                    counts_t *k, fast_counts_t *fk)
{
    const fn_step_call_t call = {"FCALL", fn_lua_step_lib_name};
    fn_event_t *ev = calloc(window, sizeof *ev);
    fn_hash128_t *h = calloc(window, sizeof *h);
    fn_fast_out_t *out = calloc(window, sizeof *out);
    redisReply **read = calloc(window, sizeof *read);
    unsigned char *how = calloc(window, 1); /* 0 whole step, 1 read, 2 applied, 3 stale */
    fn_buf_t cmd = {0};
    char reason[256], token[64];
    int rc = FN_ERR;
    if (!ev || !h || !out || !read || !how)
        goto done;
    for (size_t at = 0; at < e->n;) {
        size_t b = 0;
        for (; at + b < e->n && b < window; b++) {
            size_t i = at + b;
            if (fn_event_decode(e->text.data + e->at[i], e->at[i + 1] - e->at[i], cfg, e->now[i],
                                &ev[b], reason, sizeof reason) != FN_REJ_NONE)
                goto done; /* decoded once already */
            h[b] = fn_step_lead_hash(ev[b].lead_id.p, ev[b].lead_id.len);
            bool again = false;
            for (size_t j = 0; j < b && !again; j++)
                again = h[j].hi == h[b].hi && h[j].lo == h[b].lo;
            if (again) {
                fn_event_clear(&ev[b]);
                break;
            }
        }
        /* the reads */
        for (size_t j = 0; j < b; j++) {
            how[j] = fn_fast_candidate(cfg, &ev[j], e->now[at + j]) ? 1 : 0;
            if (how[j]) {
                fn_lead_keys_t lk;
                fn_step_keys(cfg, h[j], &lk);
                redisAppendCommand(redis, "HGETALL %s", lk.lead);
            }
        }
        for (size_t j = 0; j < b; j++)
            if (how[j] && redisGetReply(redis, (void **)&read[j]) != REDIS_OK)
                goto done;
        /* the applies, and the steps of the others; then the steps of the stale */
        for (int pass = 0; pass < 2; pass++) {
            size_t sent = 0;
            for (size_t j = 0; j < b; j++) {
                int32_t part = (int32_t)(h[j].lo % (uint64_t)partitions);
                int64_t now = e->now[at + j];
                if (pass == 0 && how[j] == 1) {
                    const fn_fast_in_t in = {cfg, &ev[j], h[j], read[j], now, 0, topic, part};
                    if (fn_fast_build(&in, fn_lua_step_lib_fast_name, &cmd, &out[j])) {
                        redisAppendFormattedCommand(redis, cmd.data, cmd.len);
                        sent++;
                        continue;
                    }
                    fk->declined++;
                    how[j] = 0;
                }
                if ((pass == 0 && how[j] == 0) || (pass == 1 && how[j] == 3)) {
                    snprintf(token, sizeof token, "%s:%zu", instance, e->msg[at + j]);
                    if (fn_step_build(cfg, &call, token, &ev[j], h[j], now, 0, topic, part, &cmd))
                        goto done;
                    redisAppendFormattedCommand(redis, cmd.data, cmd.len);
                    sent++;
                    how[j] = 0;
                }
            }
            for (size_t j = 0, got = 0; j < b && got < sent; j++) {
                if (pass == 1 && how[j] != 0)
                    continue;
                if (pass == 0 && how[j] == 2)
                    continue;
                redisReply *r = NULL;
                if (redisGetReply(redis, (void **)&r) != REDIS_OK)
                    goto done;
                got++;
                if (pass == 0 && how[j] == 1) {
                    if (r->type == REDIS_REPLY_STRING && strcmp(r->str, "ok") == 0) {
                        fk->applied++;
                        fn_fast_reply_t room;
                        count_reply(fn_fast_reply(&out[j], &room), k);
                        how[j] = 2;
                    } else {
                        fk->stale++;
                        how[j] = 3;
                    }
                } else {
                    count_reply(r, k);
                    how[j] = 2;
                }
                freeReplyObject(r);
            }
        }
        for (size_t j = 0; j < b; j++) {
            if (read[j])
                freeReplyObject(read[j]);
            read[j] = NULL;
            fn_event_clear(&ev[j]);
        }
        at += b;
    }
    rc = FN_OK;
done:
    free(ev);
    free(h);
    free(out);
    free(read);
    free(how);
    fn_buf_free(&cmd);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *events_path = NULL, *prefix_opt = NULL, *url_opt = NULL;
    const char *how = "fcall", *topic = "touchpoints";
    long long window = 1000, now_opt = 0, partitions = 6;
    const fn_cli_opt_t opts[] = {{'c', FN_CLI_STR, &cfg_path, 0, 0},
                                 {'i', FN_CLI_STR, &events_path, 0, 0},
                                 {'p', FN_CLI_STR, &prefix_opt, 0, 0},
                                 {'w', FN_CLI_INT, &window, 1, INT32_MAX},
                                 {'u', FN_CLI_STR, &url_opt, 0, 0},
                                 {'n', FN_CLI_INT, &now_opt, 1, INT64_MAX},
                                 {'x', FN_CLI_STR, &how, 0, 0},
                                 {'t', FN_CLI_STR, &topic, 0, 0},
                                 {'P', FN_CLI_INT, &partitions, 1, INT32_MAX}};
    int st = fn_cli_parse(argc, argv, TOOL, opts, sizeof opts / sizeof opts[0], usage);
    if (st >= 0)
        return st;
    bool fast = strcmp(how, "fast") == 0;
    bool fcall = fast || strcmp(how, "fcall") == 0;
    if (!cfg_path || !events_path || (!fcall && strcmp(how, "evalsha") != 0)) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    char reason[256];
    fn_config_t *cfg = NULL;
    FILE *in = NULL;
    char *line = NULL;
    size_t linecap = 0;
    fn_buf_t all = {0}, one = {0};
    size_t *offs = NULL, n_cmds = 0, offs_cap = 0;
    redisContext *redis = NULL;
    redisReply *r = NULL;
    static cmdstats_t before, after, delta;
    counts_t k = {0};
    fast_events_t fe = {0};
    fast_counts_t fk = {0};
    long long lines = 0, rejected = 0;

    /* A key prefix of its own unless told, so runs never see each other's leads. */
    char prefix[128];
    if (!prefix_opt)
        snprintf(prefix, sizeof prefix, "bench-redis-%ld-%lld", (long)getpid(),
                 (long long)fn_now_ms());
    const char *key_prefix = prefix_opt ? prefix_opt : prefix;
    cfg = fn_cli_config(TOOL, cfg_path, key_prefix);
    if (!cfg)
        goto fail;

    redis = fn_redis_sync_connect(url_opt ? url_opt : cfg->redis_url, TOOL);
    if (!redis)
        goto fail;
    r = redisCommand(redis, "SCRIPT LOAD %s", fn_lua_step_src);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        fprintf(stderr, TOOL ": SCRIPT LOAD: %s\n",
                r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : redis->errstr);
        goto fail;
    }
    char sha[41];
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    freeReplyObject(r);
    fn_step_call_t call = {"EVALSHA", sha};
    if (fcall) {
        r = redisCommand(redis, "FUNCTION LOAD %s", fn_lua_step_lib);
        if (!fn_step_lib_loaded(r)) {
            fprintf(stderr, TOOL ": FUNCTION LOAD: %s (-x evalsha calls the script)\n",
                    r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply")
                      : redis->errstr);
            goto fail;
        }
        freeReplyObject(r);
        call = (fn_step_call_t){"FCALL", fn_lua_step_lib_name};
    }
    r = NULL;

    /* Build every command up front so the timed loop only talks to Redis. */
    in = fopen(events_path, "r");
    if (!in) {
        perror(events_path);
        goto fail;
    }
    char instance[40];
    snprintf(instance, sizeof instance, "bench%08x", (unsigned)(getpid() ^ (unsigned)time(NULL)));
    double t_build = fn_cli_mono_s();
    ssize_t len;
    while ((len = getline(&line, &linecap, in)) > 0) {
        lines++;
        if (line[len - 1] == '\n')
            len--;
        fn_event_t ev = {0};
        /* the clock of this step: told (the prune and the seen set's expiry are sampled by
         * it, step.lua), or the wall clock's */
        int64_t now = now_opt ? now_opt + lines - 1 : fn_now_ms();
        fn_reject_t rej = fn_event_decode(line, (size_t)len, cfg, now, &ev, reason, sizeof reason);
        if (rej != FN_REJ_NONE) {
            rejected++;
            continue;
        }
        if (fast) {
            /* kept as text, decoded again in the timed loop (after each read) */
            fn_event_clear(&ev);
            if (fe.n + 1 >= fe.cap) {
                size_t ncap = fe.cap ? fe.cap * 2 : 65536;
                size_t *a = realloc(fe.at, ncap * sizeof *a), *m;
                if (a)
                    fe.at = a;
                int64_t *w = realloc(fe.now, ncap * sizeof *w);
                if (w)
                    fe.now = w;
                m = realloc(fe.msg, ncap * sizeof *m);
                if (m)
                    fe.msg = m;
                if (!a || !w || !m)
                    goto oom;
                fe.cap = ncap;
            }
            fe.at[fe.n] = fe.text.len;
            fe.now[fe.n] = now;
            fe.msg[fe.n++] = ++n_cmds;
            if (fn_buf_append(&fe.text, line, (size_t)len))
                goto oom;
            continue;
        }
        char token[64];
        snprintf(token, sizeof token, "%s:%zu", instance, n_cmds + 1);
        fn_hash128_t h = fn_step_lead_hash(ev.lead_id.p, ev.lead_id.len);
        /* the timers zset of the partition the lead would be consumed from */
        int brc = fn_step_build(cfg, &call, token, &ev, h, now, 0, topic,
                                (int32_t)(h.lo % (uint64_t)partitions), &one);
        fn_event_clear(&ev);
        if (brc)
            goto oom;
        if (n_cmds + 1 >= offs_cap) {
            size_t ncap = offs_cap ? offs_cap * 2 : 65536;
            size_t *o = realloc(offs, ncap * sizeof *o);
            if (!o)
                goto oom;
            offs = o;
            offs_cap = ncap;
        }
        offs[n_cmds++] = all.len;
        if (fn_buf_append(&all, one.data, one.len))
            goto oom;
    }
    if (ferror(in)) {
        perror(events_path);
        goto fail;
    }
    if (n_cmds == 0) {
        fprintf(stderr, TOOL ": no valid event in %s\n", events_path);
        goto fail;
    }
    if (fast)
        fe.at[fe.n] = fe.text.len;
    else
        offs[n_cmds] = all.len;
    fprintf(stderr,
            TOOL ": %lld line(s), %lld rejected by the decoder, %zu step(s) built in "
                 "%.2f s (%.1f MB of RESP, %.0f bytes per step), prefix %s\n",
            lines, rejected, n_cmds, fn_cli_mono_s() - t_build, (double)all.len / 1e6,
            (double)all.len / (double)n_cmds, key_prefix);

    if (snapshot(redis, &before))
        goto fail;

    /* The timed loop: keep up to `window` steps in flight on the one connection. */
    size_t sent = 0, recvd = 0;
    double t0 = fn_cli_mono_s();
    if (fast && run_fast(redis, cfg, instance, &fe, (size_t)window, topic, partitions, &k, &fk)) {
        fprintf(stderr, TOOL ": fast: %s\n", redis->err ? redis->errstr : "failed");
        goto fail;
    }
    while (!fast && recvd < n_cmds) {
        while (sent < n_cmds && sent - recvd < (size_t)window) {
            if (redisAppendFormattedCommand(redis, all.data + offs[sent],
                                            offs[sent + 1] - offs[sent]) != REDIS_OK) {
                fprintf(stderr, TOOL ": append: %s\n", redis->errstr);
                goto fail;
            }
            sent++;
        }
        int done = 0;
        do {
            if (redisBufferWrite(redis, &done) != REDIS_OK) {
                fprintf(stderr, TOOL ": write: %s\n", redis->errstr);
                goto fail;
            }
        } while (!done);
        if (redisGetReply(redis, (void **)&r) != REDIS_OK || !r) {
            fprintf(stderr, TOOL ": reply: %s\n", redis->errstr);
            goto fail;
        }
        count_reply(r, &k);
        freeReplyObject(r);
        r = NULL;
        recvd++;
        /* every reply already read off the socket, without blocking */
        while (recvd < sent) {
            if (redisReaderGetReply(redis->reader, (void **)&r) != REDIS_OK) {
                fprintf(stderr, TOOL ": protocol error: %s\n", redis->reader->errstr);
                goto fail;
            }
            if (!r)
                break;
            count_reply(r, &k);
            freeReplyObject(r);
            r = NULL;
            recvd++;
        }
    }
    double secs = fn_cli_mono_s() - t0;

    if (snapshot(redis, &after))
        goto fail;
    long long total = diff_stats(&before, &after, &delta);
    double ev_n = (double)n_cmds;
    double redis_cpu = (after.cpu_user - before.cpu_user) + (after.cpu_sys - before.cpu_sys);

    fprintf(stderr,
            TOOL ": %zu steps in %.3f s = %.0f steps/s (window %lld)\n"
                 "  replies: ok %lld, dup %lld, dup-replay %lld, erased %lld, collision %lld, "
                 "errors %lld, other %lld; transitions %lld\n"
                 "  Redis: %lld commands = %.2f per step, %.2f Redis CPU s = %.1f us per step\n",
            n_cmds, secs, ev_n / secs, window, k.ok, k.dup, k.dup_replay, k.erased, k.collision,
            k.errors, k.other, k.transitions, total, (double)total / ev_n, redis_cpu,
            redis_cpu * 1e6 / ev_n);
    char breakdown[2048];
    size_t bl = 0;
    breakdown[0] = '\0';
    for (size_t i = 0; i < delta.n && bl < sizeof breakdown - 64; i++) {
        fprintf(stderr, "    %-16s %12lld  %6.3f per step\n", delta.s[i].name, delta.s[i].calls,
                (double)delta.s[i].calls / ev_n);
        bl += (size_t)snprintf(breakdown + bl, sizeof breakdown - bl, "%s%s:%.3f", i ? "," : "",
                               delta.s[i].name, (double)delta.s[i].calls / ev_n);
    }
    if (fast)
        fprintf(stderr, "  fast path: %lld applied, %lld stale, %lld declined\n", fk.applied,
                fk.stale, fk.declined);
    printf("RESULT redis_step events=%zu seconds=%.3f eps=%.0f cmds_per_event=%.3f "
           "redis_cpu_s=%.3f redis_cpu_us_per_event=%.2f transitions=%lld ok=%lld dup=%lld "
           "errors=%lld rejected=%lld cmds=%s\n",
           n_cmds, secs, ev_n / secs, (double)total / ev_n, redis_cpu, redis_cpu * 1e6 / ev_n,
           k.transitions, k.ok, k.dup + k.dup_replay, k.errors, rejected, breakdown);
    rc = k.errors || k.other || k.collision ? 1 : 0;
    goto done;

oom:
    fprintf(stderr, TOOL ": out of memory\n");
fail:
    rc = 1;
done:
    if (r)
        freeReplyObject(r);
    if (redis)
        redisFree(redis);
    if (in)
        fclose(in);
    free(line);
    free(offs);
    fn_buf_free(&all);
    fn_buf_free(&one);
    fn_buf_free(&fe.text);
    free(fe.at);
    free(fe.now);
    free(fe.msg);
    if (cfg)
        fn_config_free(cfg);
    return rc;
}
