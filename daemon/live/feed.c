/*
 * feed.c — the live view's feed: the group's outputs, read back from the end of the
 * transitions, retargeting and bottlenecks topics (live_feed.h).
 *
 * Reading the topics, not the daemon's own producer, is what makes a page served by any
 * daemon of a group show every daemon's transitions; and the event path never waits for it:
 * librdkafka fetches on its own threads into a small queue (QUEUE_KB), and the loop only
 * takes what is there when the bridge wakes it. Its group never commits: a restart begins
 * again at the end, as a page expects of a live feed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "funneld/kafka_bridge.h"
#include "funneld/kafka_common.h"
#include "funneld/live_feed.h"

#define QUEUE_KB "1024"
#define LOG_EVERY_MS 60000

/* The feed's context (live_feed.h). */
struct fn_live_feed {
    fn_kafka_client_t kc; /* first: librdkafka's opaque (kafka_common.h) */
    fn_host_t host;
    fn_live_feed_cb *cb;
    void *data;
    rd_kafka_t *consumer;
    fn_kafka_bridge_t bridge;
    bool closed;
    bool paused;           /* what comes is dropped (fetched before the pause) */
    int64_t err_logged_ms; /* consume errors: last logged, and since then */
    uint64_t err_unlogged;
};

static void on_fatal(void *data)
{
    fn_live_feed_t *f = data;
    fn_log(f->host.log, FN_LOG_WARN, "live",
           "the feed's consumer failed; the page shows no "
           "new transitions until a restart");
}

static void on_down(void *data)
{
    (void)data; /* the event path reports the brokers; librdkafka reconnects the feed itself */
}

static fn_feed_kind_t kind_of(const fn_config_t *cfg, const char *topic, bool *known)
{
    *known = true;
    if (strcmp(topic, cfg->topic_transitions) == 0)
        return FN_FEED_TRANSITION;
    if (strcmp(topic, cfg->topic_retargeting) == 0)
        return FN_FEED_RETARGETING;
    *known = strcmp(topic, cfg->topic_bottlenecks) == 0;
    return FN_FEED_BOTTLENECK;
}

static void log_error(fn_live_feed_t *f, const char *what)
{
    int64_t now = fn_now_ms();
    if (now - f->err_logged_ms < LOG_EVERY_MS) {
        f->err_unlogged++;
        return;
    }
    fn_log(f->host.log, FN_LOG_WARN, "live", "feed: %s (%llu more since the last line)", what,
           (unsigned long long)f->err_unlogged);
    f->err_logged_ms = now;
    f->err_unlogged = 0;
}

/* The bridge woke us: take everything queued (the next wake-up only comes once it is empty). */
static void on_queued(void *data)
{
    fn_live_feed_t *f = data;
    rd_kafka_message_t *m;
    while (!f->closed && (m = rd_kafka_consumer_poll(f->consumer, 0))) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_error(f, rd_kafka_message_errstr(m));
        } else {
            bool known;
            fn_feed_kind_t kind = kind_of(*f->host.cfg, rd_kafka_topic_name(m->rkt), &known);
            if (known && m->payload && !f->paused)
                f->cb(f->data, kind, m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
    }
}

fn_live_feed_t *fn_live_feed_new(const fn_host_t *host, fn_live_feed_cb *cb, void *data)
{
    fn_live_feed_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->host = *host;
    f->cb = cb;
    f->data = data;
    f->kc.log = host->log;
    f->kc.cfg = host->cfg;
    f->kc.on_fatal = on_fatal;
    f->kc.on_down = on_down;
    f->kc.data = f;
    fn_kafka_bridge_init(&f->bridge);
    return f;
}

int fn_live_feed_start(fn_live_feed_t *f)
{
    const fn_config_t *cfg = *f->host.cfg;
    const fn_kafka_client_t *kc = &f->kc;
    char group[512], hostname[128] = "host";
    rd_kafka_topic_partition_list_t *topics = NULL;
    gethostname(hostname, sizeof hostname - 1);
    uint64_t rnd = (uint64_t)fn_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)f;
    snprintf(group, sizeof group, "%s.live.%s.%ld.%llx", cfg->group_id, hostname, (long)getpid(),
             (unsigned long long)(rnd & 0xffffffffu));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (fn_kafka_conf_set(kc, conf, "bootstrap.servers", cfg->brokers) ||
        fn_kafka_conf_common(&f->kc, conf))
        goto fail;
    if (fn_kafka_conf_props(kc, conf, NULL))
        goto fail;
    /* after kafka.properties: the feed's own group, from the end, never committing */
    if (fn_kafka_conf_set(kc, conf, "group.id", group) ||
        fn_kafka_conf_set(kc, conf, "enable.auto.commit", "false") ||
        fn_kafka_conf_set(kc, conf, "enable.auto.offset.store", "false") ||
        fn_kafka_conf_set(kc, conf, "auto.offset.reset", "latest") ||
        fn_kafka_conf_set(kc, conf, "enable.partition.eof", "false") ||
        fn_kafka_conf_set(kc, conf, "statistics.interval.ms", "0") ||
        fn_kafka_conf_set(kc, conf, "queued.max.messages.kbytes", QUEUE_KB))
        goto fail;
    f->consumer = fn_kafka_new(kc, RD_KAFKA_CONSUMER, conf, "live", "the feed's consumer");
    conf = NULL; /* the consumer's now, or destroyed */
    if (!f->consumer)
        goto fail;
    int rc = fn_kafka_bridge_start(&f->bridge, f->host.loop,
                                   rd_kafka_queue_get_consumer(f->consumer), on_queued, f);
    if (rc) {
        fn_log(f->host.log, FN_LOG_ERROR, "live", "feed queue's wake-up pipe: %s", uv_strerror(rc));
        goto fail;
    }
    topics = rd_kafka_topic_partition_list_new(3);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_transitions, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_retargeting, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_bottlenecks, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(f->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        fn_log(f->host.log, FN_LOG_ERROR, "live", "feed subscribe: %s", rd_kafka_err2str(e));
        return FN_ERR;
    }
    return FN_OK;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return FN_ERR;
}

void fn_live_feed_pause(fn_live_feed_t *f, bool paused)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (!f->consumer || f->closed || f->paused == paused ||
        rd_kafka_assignment(f->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    f->paused = paused;
    if (paused) {
        rd_kafka_pause_partitions(f->consumer, parts);
    } else {
        /* from the end: what came meanwhile is no longer live */
        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset = RD_KAFKA_OFFSET_END;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(f->consumer, parts, 0); /* async */
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_resume_partitions(f->consumer, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void fn_live_feed_close(fn_live_feed_t *f)
{
    if (!f || f->closed)
        return;
    f->closed = true;
    fn_kafka_bridge_close(&f->bridge);
    if (f->consumer) {
        rd_kafka_consumer_close(f->consumer);
        rd_kafka_destroy(f->consumer);
        f->consumer = NULL;
    }
}

void fn_live_feed_free(fn_live_feed_t *f)
{
    free(f);
}
