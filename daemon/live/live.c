/*
 * live.c — the live view (SPEC §12, live.h): the page, its JSON API and its event stream.
 *
 * Figures: while somebody watches (an open stream, or an API request in the last WATCH_MS),
 * every REFRESH_MS the funnels' figures are read from every shard exactly as an evaluation
 * reads them (read.lua, and the bottleneck state), one funnel after the other with at most
 * READS_AT_ONCE replies outstanding, so a page costs Redis what the evaluations cost, not
 * more per viewer: every request and stream is served from the last refresh. Nobody
 * watching, nothing is read.
 *
 * Throughput and lag are the group's: every daemon writes its input rate and lag to one hash
 * each REFRESH_MS (fn_key_live), and the refresh sums the fields written in the last
 * DAEMON_FRESH_MS.
 *
 * Feed: the group's outputs as read back by the feed (live_feed.h), started by the first
 * viewer and paused (nothing fetched) while nobody watches. A person reads a handful of lines a
 * second, so at most FEED_PER_S transitions and triggers a second are passed on (bottleneck changes
 * always); the last RING of them are kept for a page that connects or reconnects (Last-Event-ID
 * "<run>-<seq>" of this run resumes after that event; of another run, or too old, begins with the
 * kept ones).
 *
 * Lead ids: a listener that may not see them (fn_http_req_trusted) gets every feed event
 * with lead_id, merged_lead_id and the event ids null (an event's id hashes its lead id),
 * and no lead search.
 *
 * Every stream gets the same text of the figures, made once per refresh (make_frames): a
 * page costs the loop one copy per refresh, not a serialisation.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "funneld/analytics.h"
#include "funneld/hash.h"
#include "funneld/keys.h"
#include "funneld/lead_view.h"
#include "funneld/live.h"
#include "funneld/live_feed.h"
#include "funneld/step.h"

#define REFRESH_MS 2000
#define REFRESH_DEADLINE_MS 15000
#define WATCH_MS 30000
#define KEEPALIVE_MS 15000
#define RING 100
#define FEED_PER_S 20
#define WAITING_MAX 64
#define READS_AT_ONCE 2
#define DAEMON_FRESH_MS 10000
#define DAEMON_STALE_MS 60000
#define ID_MAX 1024 /* a lead id asked for, decoded */

extern const char fn_live_page_html[];

typedef struct live_client {
    fn_live_t *l;
    fn_http_stream_t *s;
    bool trusted;
    struct live_client *next;
} live_client_t;

/* A feed event kept for replay: its SSE frame as any listener may see it (hidden: lead ids
 * null, made when first needed) and as a trusted one sees it (open); the payload is the
 * open frame's data, from offset data_at up to its closing blank line. */
typedef struct feed_item {
    uint64_t seq;
    fn_feed_kind_t kind;
    size_t data_at, data_len;
    char *open, *hidden;
} feed_item_t;

/* The live view's context (live.h). */
struct fn_live {
    fn_host_t host;
    fn_store_t *store;
    fn_input_t *input;
    fn_http_t *http;
    fn_live_feed_t *feed;
    bool feed_started, started, closed;
    uv_timer_t timer;
    bool timer_init;
    char id[200]; /* this daemon's field in the live hash */
    char run[20]; /* this run's mark in event ids */
    uint64_t last_consumed;
    int64_t last_ms;
    double rate; /* input events per second, since the last timer tick */
    int64_t watched_until, keepalive_at;
    /* the last refresh: funnel name -> /api/funnels/NAME body, the /api/funnels body */
    json_t *figures, *summary;
    fn_buf_t frames; /* their SSE text, as every stream gets it */
    int64_t refreshed_ms;
    /* the refresh in progress */
    bool refreshing, failed;
    const fn_config_t *ref_cfg; /* the config it began with: a reload abandons it */
    int64_t ref_gen;            /* ... and its generation (the address may be reused) */
    uint64_t ref_id;            /* which refresh: replies of an abandoned one are ignored */
    int64_t ref_began_ms;
    size_t ref_i;           /* funnel being read */
    int pending, next_read; /* replies outstanding; next shard (shards: bn, +1: done) */
    bool st_begun;
    fn_funnel_stats_t st;
    json_t *bn, *next_figures, *group;
    fn_http_req_t *waiting[WAITING_MAX]; /* requests waiting for a refresh */
    size_t n_waiting;
    live_client_t *clients;
    feed_item_t ring[RING]; /* seq % RING */
    uint64_t seq;           /* the newest kept (0: none yet) */
    int64_t bucket_s;
    int bucket;
};

static inline const fn_config_t *running(const fn_live_t *l)
{
    return *l->host.cfg;
}

static int64_t generation(const fn_live_t *l)
{
    return l->host.config_generation ? l->host.config_generation(l->host.data) : 0;
}

/* The refresh still reads the config it began with. */
static bool same_config(const fn_live_t *l)
{
    return l->ref_cfg == running(l) && l->ref_gen == generation(l) && !l->closed;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void respond_json(fn_http_req_t *r, int code, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        fn_http_respond(r, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    fn_http_respond(r, code, "application/json", text, strlen(text));
    free(text);
}

static void respond_error(fn_http_req_t *r, int code, const char *why)
{
    json_t *o = json_pack("{ss}", "error", why);
    respond_json(r, code, o);
    json_decref(o);
}

static json_t *time_json(int64_t ms)
{
    char t[40];
    fn_time_format(ms, t, sizeof t);
    return json_string(t);
}

static json_t *num_or_null(double x)
{
    return isfinite(x) && x >= 0 ? json_real(x) : json_null();
}

/* ---- streams ---------------------------------------------------------------------------- */

/* Sends text to c; false when that cut the stream off (c is then freed). */
static bool client_send(live_client_t *c, const char *text, size_t len)
{
    fn_live_t *l = c->l;
    int rc = fn_http_stream_send(c->s, text, len);
    if (rc == FN_HTTP_TOO_SLOW)
        l->host.stats->live_dropped++;
    return rc == FN_OK;
}

static void on_client_closed(void *data, fn_http_stream_t *s)
{
    live_client_t *c = data;
    fn_live_t *l = c->l;
    (void)s;
    for (live_client_t **p = &l->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    free(c);
}

/* The figures of the last refresh to c (one text for every client, made once per refresh). */
static bool client_figures(live_client_t *c)
{
    const fn_buf_t *f = &c->l->frames;
    return f->len == 0 || client_send(c, f->data, f->len);
}

/* The SSE text of the last refresh's figures: the summary, then each funnel. */
static int make_frames(fn_live_t *l)
{
    fn_buf_reset(&l->frames);
    char *text = json_dumps(l->summary, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = text ? fn_buf_appendf(&l->frames, "event: summary\ndata: %s\n\n", text) : FN_ERR;
    free(text);
    const char *name;
    json_t *body;
    json_object_foreach (l->figures, name, body) {
        text = rc == FN_OK ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        rc = text ? fn_buf_appendf(&l->frames, "event: funnel\ndata: %s\n\n", text) : FN_ERR;
        free(text);
    }
    if (rc != FN_OK)
        fn_buf_reset(&l->frames); /* out of memory: the streams get the next refresh's */
    return rc;
}

/* ---- the feed ----------------------------------------------------------------------------- */

static const char *const kind_names[] = {"transition", "retargeting", "bottleneck"};

/* The SSE frame of one feed event; hide: lead ids null. NULL when out of memory. *data_at:
 * where the payload begins in the frame (when not NULL). */
static char *frame_of(const fn_live_t *l, uint64_t seq, const char *kind, const char *payload,
                      size_t len, bool hide, size_t *data_at)
{
    fn_buf_t b = {0};
    char *text = NULL;
    if (hide) {
        json_t *o = json_loadb(payload, len, 0, NULL);
        /* the event ids go too: each is a hash of the lead id with fields shown beside it
         * (so a guess could be confirmed), and a cause's id is the producer's own text */
        static const char *const hidden[] = {"lead_id", "merged_lead_id", "id", "cause_event_id"};
        if (json_is_object(o)) {
            for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++)
                if (json_object_get(o, hidden[i]))
                    json_object_set_new(o, hidden[i], json_null());
            text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        }
        json_decref(o);
        if (!text)
            return NULL;
        payload = text;
        len = strlen(text);
    }
    int rc =
        fn_buf_appendf(&b, "id: %s-%llu\nevent: %s\ndata: ", l->run, (unsigned long long)seq, kind);
    if (data_at)
        *data_at = b.len;
    /* JSON from the producer is one line; a line break would end the SSE data field early */
    for (size_t i = 0; rc == FN_OK && i < len; i++)
        rc = fn_buf_append(&b, payload[i] == '\n' || payload[i] == '\r' ? " " : &payload[i], 1);
    if (rc == FN_OK)
        rc = fn_buf_append(&b, "\n\n", 3); /* with the NUL */
    free(text);
    if (rc != FN_OK) {
        fn_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* The hidden frame of a kept item, made from its open one's payload on first need. */
static const char *item_frame(const fn_live_t *l, feed_item_t *it, bool trusted)
{
    if (trusted || it->hidden || !it->open)
        return trusted ? it->open : it->hidden;
    it->hidden = frame_of(l, it->seq, kind_names[it->kind], it->open + it->data_at, it->data_len,
                          true, NULL);
    return it->hidden;
}

static void on_feed(void *data, fn_feed_kind_t kind, const char *payload, size_t len)
{
    fn_live_t *l = data;
    l->host.stats->live_feed++;
    if (memchr(payload, '\0', len))
        return; /* no output of ours has one; it would cut the frame short */
    int64_t s = fn_now_ms() / 1000;
    if (s != l->bucket_s) {
        l->bucket_s = s;
        l->bucket = 0;
    }
    if (kind != FN_FEED_BOTTLENECK && l->bucket >= FEED_PER_S)
        return; /* more than a person reads: the figures count them all */
    l->bucket++;
    uint64_t seq = l->seq + 1;
    size_t data_at = 0;
    char *open = frame_of(l, seq, kind_names[kind], payload, len, false, &data_at);
    if (!open)
        return;
    feed_item_t *it = &l->ring[seq % RING];
    free(it->open);
    free(it->hidden);
    it->seq = seq;
    it->kind = kind;
    it->data_at = data_at;
    it->data_len = len; /* the open frame's data has as many bytes as the payload */
    it->open = open;
    it->hidden = NULL;
    l->seq = seq;
    for (live_client_t *c = l->clients, *next; c; c = next) {
        next = c->next;
        const char *f = item_frame(l, it, c->trusted);
        if (f)
            (void)client_send(c, f, strlen(f));
    }
}

/* The kept feed events after Last-Event-ID last ("" or another run's: all kept). */
static bool client_replay(live_client_t *c, const char *last)
{
    fn_live_t *l = c->l;
    uint64_t from = l->seq >= RING ? l->seq - RING + 1 : 1;
    size_t rl = strlen(l->run);
    if (last && strncmp(last, l->run, rl) == 0 && last[rl] == '-') {
        uint64_t after = strtoull(last + rl + 1, NULL, 10);
        if (after + 1 > from && after <= l->seq)
            from = after + 1;
    }
    for (uint64_t q = from; q <= l->seq; q++) {
        const char *f = item_frame(l, &l->ring[q % RING], c->trusted);
        if (f && !client_send(c, f, strlen(f)))
            return false;
    }
    return true;
}

static void start_feed(fn_live_t *l)
{
    if (l->closed)
        return;
    if (l->feed_started) {
        fn_live_feed_pause(l->feed, false);
        return;
    }
    l->feed_started = true;
    if (fn_live_feed_start(l->feed))
        fn_log(l->host.log, FN_LOG_WARN, "live",
               "the feed could not start; the page shows figures without transitions");
}

/* ---- refresh ------------------------------------------------------------------------------ */

static void start_refresh(fn_live_t *l);

/* Bottleneck state field "<k>" or "<k>|<dim>|<value>" raised ('p' or 'a' after the tick)? */
static bool raised(const char *v)
{
    const char *bar = v ? strrchr(v, '|') : NULL;
    return bar && (bar[1] == 'p' || bar[1] == 'a');
}

/* The figures of the funnel just read, as /api/funnels/NAME shows them. */
static json_t *funnel_body(fn_live_t *l, const fn_funnel_t *f)
{
    fn_funnel_stats_t *st = &l->st;
    json_t *list = json_array();
    const char *field;
    json_t *v;
    json_object_foreach (l->bn, field, v) {
        char *end;
        long k = strtol(field, &end, 10);
        if (end == field || k < 0 || (size_t)k + 1 >= f->n_stages || !raised(json_string_value(v)))
            continue;
        json_t *bd = json_null();
        double rate = st->stage[k].rate, base = st->stage[k].baseline_rate;
        if (*end == '|') {
            const char *dim = end + 1, *bar = strchr(dim, '|');
            if (!bar)
                continue;
            char d[FN_NAME_MAX + 64];
            snprintf(d, sizeof d, "%.*s", (int)(bar - dim), dim);
            bd = json_pack("{ssss}", "dimension", d, "value", bar + 1);
            const json_t *a = json_object_get(json_object_get(st->bd, d), bar + 1);
            fn_stage_stats_t s = {0};
            rate = base = -1;
            if (a) {
                fn_analytics_breakdown_stage(a, (size_t)k, &s);
                rate = s.rate;
                base = s.baseline_rate;
            }
        } else if (*end == '\0') {
            st->stage[k].bottleneck = true;
        } else {
            continue;
        }
        json_t *b = json_object();
        json_object_set_new(b, "stage", json_string(f->stages[k].name));
        json_object_set_new(b, "stage_index", json_integer(k));
        json_object_set_new(b, "breakdown", bd);
        json_object_set_new(b, "rate", num_or_null(rate));
        json_object_set_new(b, "baseline_rate", num_or_null(base));
        json_array_append_new(list, b);
    }
    json_t *o = json_object();
    json_object_set_new(o, "funnel", json_string(f->name));
    json_object_set_new(o, "at", time_json(st->now_ms));
    json_object_set_new(o, "window", json_string(st->window_label));
    json_t *body = fn_analytics_json(f, st);
    json_object_update(o, body);
    json_decref(body);
    json_object_set_new(o, "bottlenecks", list);
    return o;
}

static json_t *summary_of(const fn_config_t *cfg, json_t *figures, json_t *group, int64_t now)
{
    json_t *o = json_object(), *list = json_array();
    json_object_set_new(o, "at", time_json(now));
    json_object_set_new(o, "group", group ? json_incref(group) : json_null());
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *f = &cfg->funnels[i];
        json_t *body = json_object_get(figures, f->name);
        if (!body)
            continue;
        json_t *s = json_object(), *stages = json_array();
        for (size_t k = 0; k < f->n_stages; k++)
            json_array_append_new(stages, json_string(f->stages[k].name));
        json_object_set_new(s, "name", json_string(f->name));
        json_object_set_new(s, "stages", stages);
        static const char *const copied[] = {"leads", "converted", "conversion_rate",
                                             "weighted_pipeline", "avg_sale_value"};
        for (size_t j = 0; j < sizeof copied / sizeof *copied; j++) {
            json_t *x = json_object_get(body, copied[j]);
            json_object_set(s, copied[j], x ? x : json_null());
        }
        json_object_set_new(
            s, "open_bottlenecks",
            json_integer((json_int_t)json_array_size(json_object_get(body, "bottlenecks"))));
        json_array_append_new(list, s);
    }
    json_object_set_new(o, "funnels", list);
    return o;
}

/* Answers an /api/funnels[/NAME] request from the last refresh (503 without one). */
static void answer_figures(fn_live_t *l, fn_http_req_t *r)
{
    const char *path = fn_http_req_path(r);
    if (!l->summary) {
        respond_error(r, 503, "the figures cannot be read now (Redis unavailable)");
    } else if (strcmp(path, "/api/funnels") == 0) {
        respond_json(r, 200, l->summary);
    } else {
        json_t *body = json_object_get(l->figures, path + strlen("/api/funnels/"));
        if (body)
            respond_json(r, 200, body);
        else
            respond_error(r, 404, "no such funnel");
    }
}

static void answer_waiting(fn_live_t *l)
{
    size_t n = l->n_waiting;
    l->n_waiting = 0;
    for (size_t i = 0; i < n; i++)
        answer_figures(l, l->waiting[i]);
}

static void refresh_done(fn_live_t *l)
{
    if (l->st_begun) {
        fn_analytics_free(&l->st);
        l->st_begun = false;
    }
    json_decref(l->bn);
    l->bn = NULL;
    bool ok = !l->failed && same_config(l);
    if (ok) {
        json_decref(l->figures);
        json_decref(l->summary);
        l->figures = l->next_figures;
        l->next_figures = NULL;
        int64_t now = fn_now_ms();
        l->summary = summary_of(running(l), l->figures, l->group, now);
        l->refreshed_ms = now;
        (void)make_frames(l);
        for (live_client_t *c = l->clients, *next; c; c = next) {
            next = c->next;
            (void)client_figures(c);
        }
    }
    json_decref(l->next_figures);
    json_decref(l->group);
    l->next_figures = l->group = NULL;
    l->refreshing = false;
    if (!ok && !l->closed && l->n_waiting && !same_config(l)) {
        start_refresh(l); /* a reload came between: read the new funnels */
        return;
    }
    answer_waiting(l);
}

static int64_t clock_now(const fn_live_t *l)
{
    int64_t now = 0;
    if (running(l)->clock == FN_CLOCK_EVENT)
        for (const fn_partition_t *p = fn_input_partitions(l->input); p; p = p->next)
            if (p->assigned && p->maxts_done > now)
                now = p->maxts_done;
    return now > 0 ? now : fn_now_ms(); /* no event applied here yet: the wall clock */
}

static void read_next(fn_live_t *l);

typedef struct live_reply {
    fn_live_t *l;
    uint64_t ref_id; /* the refresh it belongs to */
    int what;        /* 0 a shard's read.lua, 1 the bottleneck state, 2 the daemons' hash */
} live_reply_t;

static void on_daemons(fn_live_t *l, const redisReply *r)
{
    int64_t now = fn_now_ms();
    int daemons = 0;
    double rate = 0;
    long long lag = 0;
    char key[256];
    fn_key_live(key, sizeof key, running(l)->key_prefix);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        long long at = 0, g = 0;
        double x = 0;
        if (sscanf(r->element[i + 1]->str, "%lld %lf %lld", &at, &x, &g) != 3)
            continue;
        if (now - at <= DAEMON_FRESH_MS) {
            daemons++;
            rate += x;
            lag += g;
        } else if (now - at > DAEMON_STALE_MS) {
            fn_store_callf(l->store, key, NULL, NULL, "HDEL %s %s", key, r->element[i]->str);
        }
    }
    l->group =
        json_pack("{sisfsI}", "daemons", daemons, "events_per_s", rate, "lag", (json_int_t)lag);
}

static void on_read(void *priv, const redisReply *reply)
{
    live_reply_t *q = priv;
    fn_live_t *l = q->l;
    int what = q->what;
    bool abandoned = q->ref_id != l->ref_id;
    free(q);
    if (abandoned)
        return; /* its refresh was given up (refresh_abandon) */
    l->pending--;
    bool same = same_config(l);
    if (!reply || reply->type == REDIS_REPLY_ERROR || !same) {
        l->failed = true;
    } else if (what == 0) {
        char err[160];
        if (fn_analytics_add(&l->st, reply, err, sizeof err)) {
            fn_log(l->host.log, FN_LOG_DEBUG, "live", "read: %s", err);
            l->failed = true;
        }
    } else if (what == 1 && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
            json_object_set_new(l->bn, reply->element[i]->str,
                                json_string(reply->element[i + 1]->str));
    } else if (what == 2) {
        on_daemons(l, reply);
    }
    read_next(l);
}

static bool send_read(fn_live_t *l, int what, const fn_analytics_read_args_t *args, const char *key)
{
    live_reply_t *q = malloc(sizeof *q);
    if (!q)
        return false;
    q->l = l;
    q->ref_id = l->ref_id;
    q->what = what;
    int rc = what == 0 ? fn_store_eval(l->store, FN_SCRIPT_READ, args->key, on_read, q,
                                       FN_ANALYTICS_READ_ARGC, args->argv, NULL)
                       : fn_store_callf(l->store, key, on_read, q, "HGETALL %s", key);
    if (rc != FN_OK) {
        free(q);
        return false;
    }
    l->pending++;
    return true;
}

/* Sends the refresh's next reads: the funnel's shards, its bottleneck state; after the last
 * funnel the daemons' hash. Moves on when a funnel's replies are in. */
static void read_next(fn_live_t *l)
{
    const fn_config_t *cfg = l->ref_cfg;
    while (!l->failed && l->pending < READS_AT_ONCE) {
        if (!fn_store_ready(l->store) || !same_config(l)) {
            l->failed = true;
            break;
        }
        char key[512];
        if (l->ref_i == cfg->n_funnels) {
            if (l->next_read > 0)
                break; /* the daemons' hash was sent */
            fn_key_live(key, sizeof key, cfg->key_prefix);
            if (!send_read(l, 2, NULL, key))
                l->failed = true;
            l->next_read++;
            continue;
        }
        const fn_funnel_t *f = &cfg->funnels[l->ref_i];
        if (!l->st_begun) {
            if (fn_analytics_begin(&l->st, f, clock_now(l))) {
                l->failed = true;
                break;
            }
            l->st_begun = true;
            l->bn = json_object();
            l->next_read = 0;
        }
        if (l->next_read < cfg->redis_shards) {
            fn_analytics_read_args_t args;
            if (fn_analytics_read_args(cfg, f, &l->st, (unsigned)l->next_read, &args) ||
                !send_read(l, 0, &args, NULL))
                l->failed = true;
            fn_analytics_read_args_free(&args);
            l->next_read++;
        } else if (l->next_read == cfg->redis_shards) {
            fn_key_bn(key, sizeof key, cfg->key_prefix, f->name);
            if (!send_read(l, 1, NULL, key))
                l->failed = true;
            l->next_read++;
        } else if (l->pending == 0) {
            /* the funnel is read */
            fn_analytics_finish(&l->st, f);
            json_object_set_new(l->next_figures, f->name, funnel_body(l, f));
            fn_analytics_free(&l->st);
            l->st_begun = false;
            json_decref(l->bn);
            l->bn = NULL;
            l->ref_i++;
            l->next_read = 0;
        } else {
            break;
        }
    }
    if (l->pending == 0 && (l->failed || (l->ref_i == cfg->n_funnels && l->next_read > 0)))
        refresh_done(l);
}

static void start_refresh(fn_live_t *l)
{
    if (l->refreshing || l->closed)
        return;
    if (!fn_store_ready(l->store)) {
        answer_waiting(l); /* what the last refresh read, or 503 */
        return;
    }
    l->refreshing = true;
    l->failed = false;
    l->ref_cfg = running(l);
    l->ref_gen = generation(l);
    l->ref_id++;
    l->ref_began_ms = fn_now_ms();
    l->ref_i = 0;
    l->next_read = 0;
    l->pending = 0;
    l->next_figures = json_object();
    read_next(l);
}

/* ---- the timer: publish this daemon's rate, refresh while watched, keep streams alive ---- */

static void publish(fn_live_t *l, int64_t now)
{
    uint64_t consumed = l->host.stats->consumed;
    if (l->last_ms > 0 && now > l->last_ms)
        l->rate = (double)(consumed - l->last_consumed) * 1000.0 / (double)(now - l->last_ms);
    l->last_consumed = consumed;
    l->last_ms = now;
    long long lag = 0;
    for (const fn_partition_t *p = fn_input_partitions(l->input); p; p = p->next)
        if (p->assigned && p->lag > 0)
            lag += p->lag;
    if (!fn_store_ready(l->store))
        return;
    char key[256], v[96];
    fn_key_live(key, sizeof key, running(l)->key_prefix);
    snprintf(v, sizeof v, "%lld %.1f %lld", (long long)now, l->rate, lag);
    fn_store_callf(l->store, key, NULL, NULL, "HSET %s %s %s", key, l->id, v);
    fn_store_callf(l->store, key, NULL, NULL, "PEXPIRE %s %d", key, 2 * DAEMON_STALE_MS);
}

/* A refresh whose replies never came (a connection that hangs without being dropped) is
 * given up, so the figures and the requests waiting for them are not held for good. */
static void refresh_abandon(fn_live_t *l)
{
    fn_log(l->host.log, FN_LOG_WARN, "live", "figures not read within %d s; trying again",
           REFRESH_DEADLINE_MS / 1000);
    l->ref_id++; /* the replies still to come are ignored */
    l->pending = 0;
    l->failed = true;
    refresh_done(l);
}

static void on_timer(uv_timer_t *t)
{
    fn_live_t *l = t->data;
    int64_t now = fn_now_ms();
    if (l->refreshing && now - l->ref_began_ms > REFRESH_DEADLINE_MS)
        refresh_abandon(l);
    publish(l, now);
    if (l->clients || now < l->watched_until)
        start_refresh(l);
    else if (l->feed_started)
        fn_live_feed_pause(l->feed, true); /* nobody watches: fetch nothing */
    if (now >= l->keepalive_at) {
        l->keepalive_at = now + KEEPALIVE_MS;
        static const char ka[] = ": keepalive\n\n";
        for (live_client_t *c = l->clients, *next; c; c = next) {
            next = c->next;
            (void)client_send(c, ka, sizeof ka - 1);
        }
    }
}

/* ---- routes ------------------------------------------------------------------------------- */

static void watched(fn_live_t *l)
{
    l->watched_until = fn_now_ms() + WATCH_MS;
    start_feed(l);
}

static void serve_page(void *data, fn_http_req_t *r)
{
    (void)data;
    fn_http_respond(r, 200, "text/html; charset=utf-8", fn_live_page_html,
                    strlen(fn_live_page_html));
}

static void serve_stream(fn_live_t *l, fn_http_req_t *r)
{
    live_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        respond_error(r, 500, "out of memory");
        return;
    }
    char last[64];
    const char *last_id = fn_http_req_header(r, "Last-Event-ID", last, sizeof last);
    c->l = l;
    c->trusted = fn_http_req_trusted(r);
    c->s = fn_http_stream_open(r, on_client_closed, c);
    if (!c->s) {
        free(c); /* answered (503), or its client already gone (closed ran: not listed) */
        return;
    }
    c->next = l->clients;
    l->clients = c;
    watched(l);
    static const char retry[] = "retry: 2000\n\n";
    if (client_send(c, retry, sizeof retry - 1) && client_figures(c))
        (void)client_replay(c, last_id);
    if (!l->summary)
        start_refresh(l); /* a first viewer: its figures come with the refresh */
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes src (len bytes) into out (cap); false when malformed, NUL or too long. */
static bool decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= len || hex_digit(src[i + 1]) < 0 || hex_digit(src[i + 2]) < 0)
                return false;
            c = hex_digit(src[i + 1]) * 16 + hex_digit(src[i + 2]);
            i += 2;
        }
        if (c == 0 || n + 1 >= cap)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return true;
}

/* A lead search in progress: the merged-into chain followed, then the ids merged into it. */
typedef struct lookup {
    fn_live_t *l;
    fn_http_req_t *r;
    char funnel[FN_NAME_MAX + 1];
    char asked[ID_MAX], id[ID_MAX];
    int64_t hops;
    json_t *o;
} lookup_t;

static void lookup_end(lookup_t *k, int code, const char *why)
{
    if (why)
        respond_error(k->r, code, why);
    else
        respond_json(k->r, code, k->o);
    json_decref(k->o);
    free(k);
}

static const fn_funnel_t *funnel_named(const fn_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_funnels; i++)
        if (strcmp(cfg->funnels[i].name, name) == 0)
            return &cfg->funnels[i];
    return NULL;
}

static void lookup_hash(lookup_t *k);

static void on_ids(void *priv, const redisReply *r)
{
    lookup_t *k = priv;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        lookup_end(k, 503, "the lead cannot be read now (Redis unavailable)");
        return;
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < r->elements; i++)
        json_array_append_new(ids, json_stringn(r->element[i]->str, r->element[i]->len));
    json_object_set_new(k->o, "merged_from",
                        strcmp(k->id, k->asked) != 0 ? json_string(k->asked) : json_null());
    json_object_set_new(k->o, "merged_ids", ids);
    lookup_end(k, 200, NULL);
}

static void on_lead(void *priv, const redisReply *r)
{
    lookup_t *k = priv;
    fn_live_t *l = k->l;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        lookup_end(k, 503, "the lead cannot be read now (Redis unavailable)");
        return;
    }
    const char *stored = fn_lead_view_field(r, FN_F_ID);
    if (stored && strcmp(stored, k->id) != 0) {
        lookup_end(k, 404, "no state for this lead");
        return;
    }
    const char *into = fn_lead_view_field(r, FN_F_MERGED_INTO);
    if (into) { /* an id merged into another lead shows the person it is part of */
        if (++k->hops > running(l)->identity_max_ids || strlen(into) >= sizeof k->id) {
            lookup_end(k, 404, "a chain of merged ids too long");
            return;
        }
        snprintf(k->id, sizeof k->id, "%s", into);
        lookup_hash(k);
        return;
    }
    const fn_funnel_t *f = funnel_named(running(l), k->funnel);
    k->o = f ? fn_lead_view_json(f, k->id, r) : NULL;
    if (!k->o) {
        lookup_end(k, 404, f ? "no state for this lead (never seen, or erased)" : "no such funnel");
        return;
    }
    fn_lead_keys_t keys;
    fn_hash128_t hash = fn_step_lead_hash(k->id, strlen(k->id));
    fn_step_keys(running(l), hash, &keys);
    char hex[33], key[128];
    fn_hash_hex(hash, hex);
    fn_key_ids(key, sizeof key, running(l)->key_prefix, keys.shard, hex);
    if (fn_store_callf(l->store, key, on_ids, k, "SMEMBERS %s", key) != FN_OK)
        lookup_end(k, 503, "the lead cannot be read now (Redis unavailable)");
}

static void lookup_hash(lookup_t *k)
{
    fn_lead_keys_t keys;
    fn_step_keys(running(k->l), fn_step_lead_hash(k->id, strlen(k->id)), &keys);
    if (fn_store_callf(k->l->store, keys.lead, on_lead, k, "HGETALL %s", keys.lead) != FN_OK)
        lookup_end(k, 503, "the lead cannot be read now (Redis unavailable)");
}

static void serve_lead(fn_live_t *l, fn_http_req_t *r, const char *funnel, const char *id,
                       size_t id_len)
{
    if (!fn_http_req_trusted(r)) {
        respond_error(r, 403,
                      "lead ids are shown to loopback clients only, or to any client "
                      "with http.auth_token set and given");
        return;
    }
    lookup_t *k = calloc(1, sizeof *k);
    if (!k) {
        respond_error(r, 500, "out of memory");
        return;
    }
    k->l = l;
    k->r = r;
    snprintf(k->funnel, sizeof k->funnel, "%s", funnel);
    if (!decode(id, id_len, k->asked, sizeof k->asked) || !k->asked[0]) {
        lookup_end(k, 400, "a lead id is 1 to 1023 bytes, percent-encoded");
        return;
    }
    if (!funnel_named(running(l), funnel)) {
        lookup_end(k, 404, "no such funnel");
        return;
    }
    if (!fn_store_ready(l->store)) {
        lookup_end(k, 503, "the lead cannot be read now (Redis unavailable)");
        return;
    }
    memcpy(k->id, k->asked, sizeof k->id);
    lookup_hash(k);
}

static void serve_api(void *data, fn_http_req_t *r)
{
    fn_live_t *l = data;
    const char *path = fn_http_req_path(r);
    if (l->closed) {
        respond_error(r, 503, "stopping");
        return;
    }
    if (strcmp(path, "/api/stream") == 0) {
        serve_stream(l, r);
        return;
    }
    static const char base[] = "/api/funnels";
    if (strncmp(path, base, sizeof base - 1) != 0 ||
        (path[sizeof base - 1] && path[sizeof base - 1] != '/')) {
        respond_error(r, 404,
                      "try /api/funnels, /api/funnels/NAME, "
                      "/api/funnels/NAME/leads/ID or /api/stream");
        return;
    }
    watched(l);
    const char *rest = path[sizeof base - 1] ? path + sizeof base : NULL;
    const char *leads = rest ? strstr(rest, "/leads/") : NULL;
    if (leads) {
        char funnel[FN_NAME_MAX + 1];
        if (!decode(rest, (size_t)(leads - rest), funnel, sizeof funnel)) {
            respond_error(r, 404, "no such funnel");
            return;
        }
        const char *id = leads + strlen("/leads/");
        serve_lead(l, r, funnel, id, strlen(id));
        return;
    }
    if (rest && (!*rest || !funnel_named(running(l), rest))) {
        respond_error(r, 404, "no such funnel");
        return;
    }
    if (l->summary && fn_now_ms() - l->refreshed_ms <= 2 * REFRESH_MS) {
        answer_figures(l, r);
        return;
    }
    if (l->n_waiting >= WAITING_MAX) {
        respond_error(r, 503, "too many requests waiting for the figures");
        return;
    }
    l->waiting[l->n_waiting++] = r;
    start_refresh(l);
}

/* ---- life --------------------------------------------------------------------------------- */

fn_live_t *fn_live_new(const fn_host_t *host, fn_store_t *store, fn_input_t *input, fn_http_t *http)
{
    fn_live_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->host = *host;
    l->store = store;
    l->input = input;
    l->http = http;
    if (!(l->feed = fn_live_feed_new(host, on_feed, l))) {
        free(l);
        return NULL;
    }
    char hostname[128] = "host";
    gethostname(hostname, sizeof hostname - 1);
    uint64_t rnd = (uint64_t)fn_now_ms() * 2654435761u ^ (uint64_t)getpid() ^ (uintptr_t)l;
    snprintf(l->run, sizeof l->run, "%llx", (unsigned long long)(rnd & 0xffffffffffffull));
    snprintf(l->id, sizeof l->id, "%s:%ld:%s", hostname, (long)getpid(), l->run);
    return l;
}

int fn_live_start(fn_live_t *l)
{
    if (fn_http_route(l->http, "/", serve_page, l) ||
        fn_http_route(l->http, "/api/", serve_api, l)) {
        fn_log(l->host.log, FN_LOG_ERROR, "live", "no room for the live view's routes");
        return FN_ERR;
    }
    uv_timer_init(l->host.loop, &l->timer);
    l->timer.data = l;
    l->timer_init = true;
    uv_timer_start(&l->timer, on_timer, REFRESH_MS, REFRESH_MS);
    l->started = true;
    return FN_OK;
}

void fn_live_close(fn_live_t *l)
{
    if (!l || l->closed)
        return;
    l->closed = true;
    while (l->clients) /* each close unlinks it */
        fn_http_stream_close(l->clients->s);
    json_decref(l->summary);
    l->summary = NULL; /* waiting requests get 503 */
    answer_waiting(l);
    if (l->timer_init && !uv_is_closing((uv_handle_t *)&l->timer)) {
        uv_timer_stop(&l->timer);
        uv_close((uv_handle_t *)&l->timer, NULL);
    }
    fn_live_feed_close(l->feed);
}

void fn_live_free(fn_live_t *l)
{
    if (!l)
        return;
    assert(l->closed || !l->started);
    if (l->st_begun)
        fn_analytics_free(&l->st);
    json_decref(l->bn);
    json_decref(l->next_figures);
    json_decref(l->group);
    json_decref(l->figures);
    json_decref(l->summary);
    fn_buf_free(&l->frames);
    for (size_t i = 0; i < RING; i++) {
        free(l->ring[i].open);
        free(l->ring[i].hidden);
    }
    fn_live_feed_free(l->feed);
    free(l);
}
