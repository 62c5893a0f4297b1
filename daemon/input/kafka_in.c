/*
 * kafka_in.c — the consumer: group membership, partitions, backpressure and offsets.
 *
 * librdkafka is driven from the libuv loop without a thread or busy polling: the consumer
 * queue (with the main queue forwarded into it, so rebalances, errors and logs arrive there
 * too) wakes the loop through a kafka_bridge.h pipe when it goes from empty to non-empty.
 * Because the wake-up only comes on that transition, every wake-up drains the queue; the
 * daemon's tick drains it again in case a drain stopped at the in-flight bound.
 *
 * Offsets and the event clock: a partition's offset is committed only when every earlier
 * message of it is done (the done prefix, see offsets.h), and the commit carries the
 * partition's event clock at that offset as its metadata ("funneld/1 clock_ms=<ms>"). A
 * partition assigned to this daemon reads its commit back before it is fetched and resumes
 * its clock there, so a rebalance, a restart or a session lost in a broker outage fires the
 * same timers at the same events as an uninterrupted run (Kafka Streams keeps its partition
 * time the same way). The daemon commits itself, every auto.commit.interval.ms, at
 * revocation and at shutdown: librdkafka 2.0.2 drops the metadata of
 * rd_kafka_offsets_store, so its auto-commit timer could not carry the clock.
 *
 * A commit never moves a partition's offset backwards. Each assignment of a partition is a
 * generation of its own: messages still in flight when it was revoked finish (their steps
 * and outputs are applied), but they no longer feed its done prefix, which in a new
 * assignment is made only of messages fetched in it, from the group's committed offset on.
 * Nor is anything at or below the offset read back at assignment (or last committed)
 * committed. At-least-once holds: an offset committed is the end of a done prefix of the
 * current assignment, which began at the group's commit, and what lies below that commit
 * was done by whoever made it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "funneld/input.h"
#include "funneld/kafka_bridge.h"
#include "funneld/kafka_common.h"

#define CLOCK_META "funneld/1 clock_ms="
/* The two broker round trips the loop waits for, in the rebalance callback and at shutdown:
 * reading the commits of newly assigned partitions (rd_kafka_committed) and committing what
 * is done before partitions go (commit_sync). A coordinator answers them at once; one that
 * does not within this bound must not hold the loop (Redis replies, delivery reports and
 * /healthz wait on it), so the wait ends: the clock of those partitions then starts over
 * from their next events, and an unconfirmed commit means only that the next owner may
 * repeat more. */
#define COORDINATOR_WAIT_MS 2000
/* A partition whose commit could not be read at its assignment asks again, with a shorter
 * wait, first after CLOCK_RETRY_MS and then twice as long each time, CLOCK_RETRIES times
 * in all: with the event clock, such a partition at its end would otherwise hold its due
 * timers until its next event. Rare (a coordinator moving at that moment); the waits hold the
 * loop, so they are few and short, and a coordinator still away after them is given up on
 * (the clock then starts from the partition's next events, as before). */
#define CLOCK_RETRY_MS 3000
#define CLOCK_RETRY_WAIT_MS 500
#define CLOCK_RETRIES 5
/* How long the in-flight bound may hold consumption before the partitions are paused: a
 * short stall keeps prefetched messages, a long one (Redis or Kafka away) must not let
 * max.poll.interval.ms expire, so the consumer keeps polling with its partitions paused. */
#define PAUSE_AFTER_MS 5000

struct fn_input {
    fn_kafka_client_t kc; /* first: the consumer's opaque (kafka_common.h) */
    fn_host_t host;       /* the loop, config, log and the stop on a fatal error */
    fn_input_cbs_t cb;
    rd_kafka_t *consumer;
    fn_kafka_bridge_t bridge; /* wakes the loop for the consumer queue */
    fn_partition_t *partitions;
    int64_t blocked_since; /* wall ms when the in-flight bound stopped consumption, or 0 */
    bool paused;           /* partitions paused: blocked for long, or stopping */
    int assigned_count;
    int commit_every_ms;    /* auto.commit.interval.ms: the daemon commits, see above */
    int64_t last_commit_ms; /* wall ms of the last periodic commit */
    int64_t clock_retry_at; /* wall ms of the next retry of unread commits (restore_clocks) */
    int clock_retries;      /* retries made since a read last failed at an assignment */
    int commit_err;         /* rd_kafka_resp_err_t of the last failed commit, 0 after success */
    bool joined;            /* a first assignment (possibly empty) arrived */
    bool kafka_up;          /* a broker is up, per librdkafka's latest statistics */
    int64_t kafka_seen_ms;  /* when statistics last arrived */
};

/* The bookkeeping record of one topic partition, created on first use. NULL on OOM. */
static fn_partition_t *partition(fn_input_t *in, const char *topic, int32_t partition)
{
    for (fn_partition_t *p = in->partitions; p; p = p->next)
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    fn_partition_t *p = calloc(1, sizeof *p);
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->next_commit = -1;
    p->committed = -1;
    p->lag = -1;
    p->next = in->partitions;
    in->partitions = p;
    return p;
}

static void mark_assigned(fn_input_t *in, rd_kafka_topic_partition_list_t *parts, bool on)
{
    for (int i = 0; i < parts->cnt; i++) {
        fn_partition_t *p = partition(in, parts->elems[i].topic, parts->elems[i].partition);
        if (p && p->assigned != on) {
            p->assigned = on;
            /* Messages still in flight from before belong to the old assignment: they
             * finish, but no longer count for this partition's done prefix (fn_msg_done). */
            p->generation++;
            /* A partition given back to us restarts from its committed offset, which may be
             * below what we had done before: what we finish now must be committed again,
             * even at offsets we committed once; restore_clocks learns the group's offset. */
            if (on)
                p->next_commit = -1;
            p->committed = -1;
            p->clock_unread = false;
            in->cb.on_partition(in->cb.data, p, on);
            in->assigned_count += on ? 1 : -1;
        }
    }
}

static void note_commit(fn_input_t *in, rd_kafka_resp_err_t err,
                        const rd_kafka_topic_partition_list_t *offsets);

/* The event clock a commit's metadata carries, if it is one of ours. */
static bool parse_clock(const void *meta, size_t len, int64_t *clock)
{
    const size_t pre = sizeof CLOCK_META - 1;
    char buf[64];
    if (!meta || len <= pre || len >= sizeof buf || memcmp(meta, CLOCK_META, pre) != 0)
        return false;
    memcpy(buf, meta, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf + pre, &end, 10);
    if (errno || *end || end == buf + pre || v < 0)
        return false;
    *clock = v;
    return true;
}

/* Commits l and waits for the coordinator's answer, at most COORDINATOR_WAIT_MS.
 * rd_kafka_commit's synchronous form waits without a bound; this one waits on a queue of
 * its own, which is destroyed after (a late answer is then dropped there, and still reaches
 * on_committed through the consumer queue, as for every commit). */
static void commit_sync(fn_input_t *in, rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(in->consumer);
    if (!q) {
        fn_log(in->host.log, FN_LOG_ERROR, "kafka", "commit: out of memory");
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(in->consumer, l, q, NULL, NULL);
    if (e) {
        note_commit(in, e, l);
        goto done;
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, COORDINATOR_WAIT_MS);
    if (!ev) {
        fn_log(in->host.log, FN_LOG_WARN, "kafka",
               "offset commit of %d partition(s) not confirmed within %d ms; not waiting longer "
               "(what it covered may be repeated)",
               l->cnt, COORDINATOR_WAIT_MS);
        goto done;
    }
    const rd_kafka_topic_partition_list_t *got = rd_kafka_event_topic_partition_list(ev);
    note_commit(in, rd_kafka_event_error(ev), got ? got : l);
    rd_kafka_event_destroy(ev);
done:
    rd_kafka_queue_destroy(q);
}

/* Commits the done prefix of the assigned partitions (only those in `only` when given) that
 * moved since their last commit, each with its event clock. */
static void commit_parts(fn_input_t *in, const rd_kafka_topic_partition_list_t *only, bool sync)
{
    if (!in->consumer)
        return;
    int n = 0;
    for (fn_partition_t *p = in->partitions; p; p = p->next)
        n++;
    char(*meta)[64] = calloc(n ? (size_t)n : 1, sizeof *meta);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n ? n : 1);
    if (!meta || !l) {
        fn_log(in->host.log, FN_LOG_ERROR, "kafka", "commit: out of memory");
        goto done;
    }
    for (fn_partition_t *p = in->partitions; p; p = p->next) {
        /* Never at or below what the group holds: a commit only ever moves forward. */
        if (!p->assigned || p->next_commit < 0 || p->next_commit <= p->committed)
            continue;
        if (p->clock_unread && !sync) /* its clock in the group still to be read */
            continue;
        if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        rd_kafka_topic_partition_t *t =
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        t->offset = p->next_commit;
        int len = snprintf(meta[l->cnt - 1], sizeof *meta, CLOCK_META "%lld",
                           (long long)(p->maxts_done > 0 ? p->maxts_done : 0));
        t->metadata = meta[l->cnt - 1];
        t->metadata_size = (size_t)len;
    }
    if (l->cnt > 0 && sync) {
        commit_sync(in, l);
    } else if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(in->consumer, l, 1);
        if (e)
            note_commit(in, e, l);
    }
done:
    if (l) {
        for (int i = 0; i < l->cnt; i++) { /* the buffers are ours, not librdkafka's */
            l->elems[i].metadata = NULL;
            l->elems[i].metadata_size = 0;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    free(meta);
}

/* A commit's outcome: what the group now holds, and a line when commits start or stop
 * failing (they are retried at the next interval, and a failure only means more to repeat
 * after a handover). */
static void note_commit(fn_input_t *in, rd_kafka_resp_err_t err,
                        const rd_kafka_topic_partition_list_t *offsets)
{
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    rd_kafka_resp_err_t first = err;
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *t = &offsets->elems[i];
        if (err || t->err) {
            if (!first)
                first = t->err;
            continue;
        }
        fn_partition_t *p = partition(in, t->topic, t->partition);
        if (p && p->assigned && t->offset > p->committed)
            p->committed = t->offset;
    }
    if (first && (int)first != in->commit_err)
        fn_log(in->host.log, FN_LOG_WARN, "kafka", "offset commit failed: %s (retried every %d ms)",
               rd_kafka_err2str(first), in->commit_every_ms);
    else if (!first && in->commit_err)
        fn_log(in->host.log, FN_LOG_INFO, "kafka", "offset commits succeed again");
    in->commit_err = (int)first;
}

static void on_committed(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    note_commit(opaque, err, offsets);
}

/* Newly assigned partitions resume their event clock (and learn their committed offset,
 * below which commit_parts never commits) from their commits. Blocking, in the rebalance
 * callback, so that no message of theirs is fetched before; bounded (wait_ms). A partition
 * whose commit could not be read is marked clock_unread and asked again by retry_clocks;
 * by then it may have finished events, so a late answer only ever moves its clock forward.
 * Until then it is not committed periodically, which would put its own, younger clock in
 * place of the one still to be read. */
static void restore_clocks(fn_input_t *in, const rd_kafka_topic_partition_list_t *parts,
                           int wait_ms, bool retry)
{
    if (parts->cnt == 0)
        return;
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
    if (!c)
        return;
    int restored = 0, failed = 0;
    rd_kafka_resp_err_t all = rd_kafka_committed(in->consumer, c, wait_ms), why = all;
    for (int i = 0; i < c->cnt; i++) {
        const rd_kafka_topic_partition_t *t = &c->elems[i];
        fn_partition_t *p = partition(in, t->topic, t->partition);
        int64_t clock;
        if (!p || !p->assigned)
            continue;
        if (all || t->err) {
            failed++;
            if (!why)
                why = t->err;
            p->clock_unread = true;
            continue;
        }
        p->clock_unread = false;
        if (t->offset > p->committed)
            p->committed = t->offset;
        if (parse_clock(t->metadata, t->metadata_size, &clock)) {
            if (!retry || clock > p->maxts_done)
                p->maxts_done = clock;
            if (!retry || clock > p->maxts_seen)
                p->maxts_seen = clock;
            restored++;
        }
    }
    if (!retry || restored)
        fn_log(in->host.log, FN_LOG_INFO, "kafka",
               "event clock resumed from the commit for %d of %d partition(s)%s", restored, c->cnt,
               retry ? " asked again" : "");
    /* Said once per assignment (a retry that fails again stays silent), so that a delay of
     * triggers can be traced without flooding the log. */
    if (failed && !retry) {
        fn_log(in->host.log, FN_LOG_WARN, "kafka",
               "the committed offset of %d partition(s) could not be read (%s): asked again "
               "up to %d times, their event clock meanwhile from their next events",
               failed, rd_kafka_err2str(why), CLOCK_RETRIES);
        in->clock_retries = 0;
        in->clock_retry_at = fn_now_ms() + CLOCK_RETRY_MS;
    }
    rd_kafka_topic_partition_list_destroy(c);
}

/* Asks again for the commits that could not be read at assignment (restore_clocks), on the
 * schedule of CLOCK_RETRY_MS; after the last try they are given up on. */
static void retry_clocks(fn_input_t *in, int64_t now)
{
    if (!in->clock_retry_at || now < in->clock_retry_at)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    if (!l)
        return;
    bool stopping = in->cb.stopping(in->cb.data);
    int given_up = 0;
    for (fn_partition_t *p = in->partitions; p; p = p->next) {
        if (!p->assigned || !p->clock_unread)
            continue;
        if (stopping || in->clock_retries >= CLOCK_RETRIES) {
            p->clock_unread = false; /* committed as any other from now on */
            given_up++;
        } else {
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        }
    }
    if (l->cnt > 0) {
        restore_clocks(in, l, CLOCK_RETRY_WAIT_MS, true);
        in->clock_retries++;
        in->clock_retry_at = now + ((int64_t)CLOCK_RETRY_MS << in->clock_retries);
    } else {
        in->clock_retry_at = 0;
    }
    if (given_up && !stopping)
        fn_log(in->host.log, FN_LOG_WARN, "kafka",
               "gave up reading the committed offset of %d partition(s) after %d tries: their "
               "event clock goes by their events since the assignment",
               given_up, in->clock_retries);
    rd_kafka_topic_partition_list_destroy(l);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    fn_input_t *in = opaque;
    /* NULL when the consumer has no protocol any more: a revocation while it closes */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    bool cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    fn_log(in->host.log, FN_LOG_INFO, "kafka", "%s %d partition(s)",
           assign ? "assigned" : "revoked", parts->cnt);
    if (!assign && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        fn_log(in->host.log, FN_LOG_ERROR, "kafka", "rebalance failed: %s", rd_kafka_err2str(err));
        assign = false;
    }
    /* What is done stays done for the next owner; partitions already lost (the session
     * expired) cannot be committed, and trying would only wait for the coordinator's
     * refusal. */
    if (!assign && !rd_kafka_assignment_lost(rk))
        commit_parts(in, parts, true);
    mark_assigned(in, parts, assign);
    if (assign)
        restore_clocks(in, parts, COORDINATOR_WAIT_MS, false);
    in->joined = true;
    if (cooperative) {
        rd_kafka_error_t *e = assign ? rd_kafka_incremental_assign(rk, parts)
                                     : rd_kafka_incremental_unassign(rk, parts);
        if (e) {
            fn_log(in->host.log, FN_LOG_ERROR, "kafka", "incremental rebalance: %s",
                   rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, assign ? parts : NULL);
        if (e)
            fn_log(in->host.log, FN_LOG_ERROR, "kafka", "assign: %s", rd_kafka_err2str(e));
    }
    if (assign && in->paused)
        rd_kafka_pause_partitions(rk, parts);
}

static void on_queued(void *data)
{
    fn_input_drain(data);
}

static void on_fatal(void *data)
{
    fn_input_t *in = data;
    in->host.stop(in->host.data, 1);
}

static void on_down(void *data)
{
    fn_input_kafka_down(data);
}

/* librdkafka statistics (JSON): broker state and consumer lag per partition. */
static void on_stats(void *data, const char *text, size_t len)
{
    fn_input_t *in = data;
    json_t *j = json_loadb(text, len, 0, NULL);
    if (!j)
        return;
    in->kafka_seen_ms = fn_now_ms();
    bool up = false;
    const char *name;
    json_t *br;
    json_object_foreach (json_object_get(j, "brokers"), name, br) {
        /* learned brokers have a node id; the bootstrap entries have -1 */
        const char *state = json_string_value(json_object_get(br, "state"));
        if (json_integer_value(json_object_get(br, "nodeid")) >= 0 && state &&
            strcmp(state, "UP") == 0)
            up = true;
    }
    in->kafka_up = up;
    json_t *topic;
    json_object_foreach (json_object_get(j, "topics"), name, topic) {
        const char *pkey;
        json_t *part;
        json_object_foreach (json_object_get(topic, "partitions"), pkey, part) {
            long pn = strtol(pkey, NULL, 10);
            json_t *lag = json_object_get(part, "consumer_lag");
            if (pn < 0 || !json_is_integer(lag))
                continue;
            for (fn_partition_t *p = in->partitions; p; p = p->next)
                if (p->partition == pn && strcmp(p->topic, name) == 0)
                    p->lag = json_integer_value(lag);
        }
    }
    json_decref(j);
}

fn_input_t *fn_input_new(const fn_host_t *host)
{
    fn_input_t *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->host = *host;
    in->kc.log = host->log;
    in->kc.cfg = host->cfg;
    in->kc.on_fatal = on_fatal;
    in->kc.on_down = on_down;
    in->kc.on_stats = on_stats;
    in->kc.data = in;
    fn_kafka_bridge_init(&in->bridge);
    return in;
}

int fn_input_start(fn_input_t *in, const fn_input_cbs_t *cb)
{
    const fn_config_t *cfg = *in->host.cfg;
    const fn_kafka_client_t *kc = &in->kc;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *topics = NULL;

    in->cb = *cb;
    if (fn_kafka_conf_set(kc, conf, "bootstrap.servers", cfg->brokers) ||
        fn_kafka_conf_set(kc, conf, "group.id", cfg->group_id) ||
        fn_kafka_conf_set(kc, conf, "enable.auto.offset.store", "false") ||
        fn_kafka_conf_set(kc, conf, "enable.auto.commit", "false") ||
        fn_kafka_conf_set(kc, conf, "auto.commit.interval.ms", "1000") || /* read back below */
        fn_kafka_conf_set(kc, conf, "auto.offset.reset", "earliest") ||
        /* Prefetch: librdkafka keeps every prefetched message's fetch response, so this
         * bounds most of the daemon's memory during a backlog; too small a queue starves the
         * loop while Redis idles. The size is a measured trade-off (tests/bench/README.md). */
        fn_kafka_conf_set(kc, conf, "queued.max.messages.kbytes", "4096") ||
        fn_kafka_conf_set(kc, conf, "statistics.interval.ms", "5000") || /* lag, broker state */
        fn_kafka_conf_common(&in->kc, conf))
        goto fail;
    if (fn_kafka_conf_props(kc, conf, NULL))
        goto fail;
    /* The at-least-once contract and the event clock rest on these two, so kafka.properties
     * cannot change them: the daemon commits finished messages only, with their clock. */
    if (fn_kafka_conf_set(kc, conf, "enable.auto.offset.store", "false") ||
        fn_kafka_conf_set(kc, conf, "enable.auto.commit", "false") ||
        fn_kafka_conf_set(kc, conf, "enable.partition.eof",
                          "true")) /* the wall clock's "caught up" */
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_committed);
    char every[32];
    size_t every_len = sizeof every;
    if (rd_kafka_conf_get(conf, "auto.commit.interval.ms", every, &every_len) != RD_KAFKA_CONF_OK)
        goto fail;
    /* 0, librdkafka's "never", would leave a crash everything since the last revocation to
     * repeat: the default instead. */
    in->commit_every_ms = atoi(every) > 0 ? atoi(every) : 1000;

    in->consumer = fn_kafka_new(kc, RD_KAFKA_CONSUMER, conf, "kafka", "consumer");
    conf = NULL; /* the consumer's now, or destroyed */
    if (!in->consumer)
        goto fail;
    int rc = fn_kafka_bridge_start(&in->bridge, in->host.loop,
                                   rd_kafka_queue_get_consumer(in->consumer), on_queued, in);
    if (rc) {
        fn_log(in->host.log, FN_LOG_ERROR, "kafka", "consumer queue's wake-up pipe: %s",
               uv_strerror(rc));
        goto fail;
    }

    topics = rd_kafka_topic_partition_list_new((int)cfg->n_input_topics);
    for (size_t i = 0; i < cfg->n_input_topics; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->input_topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(in->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        fn_log(in->host.log, FN_LOG_ERROR, "kafka", "subscribe: %s", rd_kafka_err2str(e));
        return FN_ERR;
    }
    fn_log(in->host.log, FN_LOG_INFO, "kafka", "consumer in group %s on %zu topic(s) at %s",
           cfg->group_id, cfg->n_input_topics, cfg->brokers);
    return FN_OK;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return FN_ERR;
}

void fn_input_drain(fn_input_t *in)
{
    if (!in->consumer)
        return;
    /* Bounded batches keep the loop responsive to Redis replies and delivery reports. At the
     * in-flight bound, messages simply stay in librdkafka's local queue (itself bounded by
     * queued.max.messages.kbytes); the tick pauses the partitions if that lasts. */
    for (int n = 0; n < 5000; n++) {
        size_t msgs, bytes;
        if (in->cb.full(in->cb.data, &msgs, &bytes) && !in->paused) {
            if (!in->blocked_since) {
                in->blocked_since = fn_now_ms();
                fn_log(in->host.log, FN_LOG_DEBUG, "kafka",
                       "in-flight bound reached (%zu, %zu bytes); waiting", msgs, bytes);
            }
            return;
        }
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(in->consumer, 0);
        if (!rkm)
            return;
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && rkm->rkt) {
            fn_partition_t *p = partition(in, rd_kafka_topic_name(rkm->rkt), rkm->partition);
            if (p)
                p->at_eof = true;
        }
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fn_log(in->host.log, FN_LOG_WARN, "kafka", "consume: %s",
                       rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        if (in->cb.stopping(in->cb.data)) {
            /* Not processed, so not committed: the next owner of the partition gets it. */
            rd_kafka_message_destroy(rkm);
            continue;
        }
        fn_partition_t *p = partition(in, rd_kafka_topic_name(rkm->rkt), rkm->partition);
        if (p) {
            p->at_eof = false;
            p->consumed++;
        }
        in->cb.on_message(in->cb.data, p, rkm);
    }
}

void fn_input_set_paused(fn_input_t *in, bool paused)
{
    if (!in->consumer || in->paused == paused)
        return;
    in->paused = paused;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(in->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (paused)
            rd_kafka_pause_partitions(in->consumer, parts);
        else
            rd_kafka_resume_partitions(in->consumer, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    size_t msgs = 0, bytes = 0;
    if (in->cb.full)
        in->cb.full(in->cb.data, &msgs, &bytes);
    fn_log(in->host.log, FN_LOG_DEBUG, "kafka", "%s consumption (%zu in flight)",
           paused ? "paused" : "resumed", msgs);
}

void fn_input_tick(fn_input_t *in)
{
    if (!in->consumer)
        return; /* not started, or failed to: nothing to pause, drain or commit */
    size_t msgs, bytes;
    if (!in->cb.full(in->cb.data, &msgs, &bytes)) {
        in->blocked_since = 0;
        if (in->paused)
            fn_input_set_paused(in, false);
    } else if (in->blocked_since && fn_now_ms() - in->blocked_since > PAUSE_AFTER_MS) {
        fn_input_set_paused(in, true);
    }
    fn_input_drain(in);
    int64_t now = fn_now_ms();
    retry_clocks(in, now);
    if (now - in->last_commit_ms >= in->commit_every_ms) {
        in->last_commit_ms = now;
        fn_input_commit(in, false);
    }
}

void fn_input_commit(fn_input_t *in, bool sync)
{
    commit_parts(in, NULL, sync);
}

void fn_input_close(fn_input_t *in)
{
    if (!in->consumer)
        return;
    commit_parts(in, NULL, true);
    fn_kafka_bridge_close(&in->bridge);
    rd_kafka_consumer_close(in->consumer);
    rd_kafka_destroy(in->consumer);
    in->consumer = NULL;
}

void fn_input_free(fn_input_t *in)
{
    if (!in)
        return;
    while (in->partitions) {
        fn_partition_t *p = in->partitions;
        in->partitions = p->next;
        free(p->topic);
        free(p);
    }
    free(in);
}

fn_partition_t *fn_input_partitions(const fn_input_t *in)
{
    return in->partitions;
}

int64_t fn_input_blocked_since(const fn_input_t *in)
{
    return in->blocked_since;
}

bool fn_input_joined(const fn_input_t *in)
{
    return in->joined;
}

bool fn_input_kafka_up(const fn_input_t *in)
{
    return in->kafka_up;
}

void fn_input_kafka_down(fn_input_t *in)
{
    in->kafka_up = false;
}
