/*
 * bench_kafka_ceiling.c — the Kafka ceiling of issue 7: librdkafka alone, consuming the
 * pre-filled input topic and producing output messages with no processing in between.
 *
 * It owns only this measurement. The consumer joins a new group and reads the topic from
 * the earliest offset with the consumer settings funneld uses (auto commit every second,
 * 2 MB local queue, Nagle off); for each input it produces an output keyed by the input's
 * key to another topic with funneld's producer settings (acks=all, idempotence, linger 2 ms,
 * Nagle off, batches of 10,000), and it counts delivery reports. It stops when every
 * message that was in the topic at start (the sum of the high watermarks less the low ones)
 * was consumed and every output is acknowledged.
 *
 *   -m COUNT   produce COUNT outputs in all instead of one per input, spread evenly over the
 *              inputs (funneld emits a transition for some inputs only, two for others)
 *   -s BYTES   output payload size; 0 (default) repeats the input's payload
 *
 * Output: a human summary on stderr, and one line on stdout for scripts:
 *   RESULT kafka_ceiling events=N outputs=M seconds=S eps=E seconds_with_join=J ...
 * "seconds" runs from the first consumed message to the last delivery report; the group
 * join before it is reported apart.
 *
 * Usage: bench_kafka_ceiling -b BROKERS -t INPUT -o OUTPUT [-g GROUP] [-m COUNT] [-s BYTES]
 */
#include <inttypes.h>
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TOOL "bench_kafka_ceiling"

typedef struct dr_state {
    long long delivered, failed;
    double t_last;
} dr_state_t;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    dr_state_t *s = opaque;
    (void)rk;
    if (m->err) {
        if (s->failed < 5)
            fprintf(stderr, TOOL ": delivery failed: %s\n", rd_kafka_err2str(m->err));
        s->failed++;
    } else {
        s->delivered++;
    }
    s->t_last = fn_cli_mono_s();
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_kafka_ceiling -b BROKERS -t INPUT -o OUTPUT [-g GROUP] [-m COUNT]\n"
               "                           [-s BYTES]\n"
               "  -b  bootstrap servers (default $FUNNELD_BROKERS)\n"
               "  -t  pre-filled input topic, read from the earliest offset\n"
               "  -o  output topic\n"
               "  -g  consumer group (default bench-kafka-<pid>-<time>): use a new one\n"
               "  -m  outputs in all, spread evenly over the inputs (default: one per input)\n"
               "  -s  output payload bytes (default 0: the input's payload)\n");
}

/* Sum over the topic's partitions of high - low watermark. */
static long long topic_size(rd_kafka_t *rk, const char *topic, int *n_parts)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    long long total = -1;
    if (!rkt) {
        fprintf(stderr, TOOL ": topic %s: %s\n", topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto done;
    }
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e) {
        fprintf(stderr, TOOL ": metadata of %s: %s\n", topic, rd_kafka_err2str(e));
        goto done;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, TOOL ": topic %s: %s\n", topic,
                md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
        goto done;
    }
    total = 0;
    *n_parts = md->topics[0].partition_cnt;
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo, hi;
        e = rd_kafka_query_watermark_offsets(rk, topic, md->topics[0].partitions[i].id, &lo, &hi,
                                             10000);
        if (e) {
            fprintf(stderr, TOOL ": watermarks of %s: %s\n", topic, rd_kafka_err2str(e));
            total = -1;
            goto done;
        }
        total += hi - lo;
    }
done:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    return total;
}

int main(int argc, char **argv)
{
    const char *brokers = getenv("FUNNELD_BROKERS"), *in_topic = NULL, *out_topic = NULL;
    const char *group_opt = NULL;
    long long want_outputs = -1, payload_bytes = 0;
    const fn_cli_opt_t opts[] = {{'b', FN_CLI_STR, &brokers, 0, 0},
                                 {'t', FN_CLI_STR, &in_topic, 0, 0},
                                 {'o', FN_CLI_STR, &out_topic, 0, 0},
                                 {'g', FN_CLI_STR, &group_opt, 0, 0},
                                 {'m', FN_CLI_INT, &want_outputs, 0, LLONG_MAX / 16},
                                 {'s', FN_CLI_INT, &payload_bytes, 0, 1000000}};
    int st = fn_cli_parse(argc, argv, TOOL, opts, sizeof opts / sizeof opts[0], usage);
    if (st >= 0)
        return st;
    if (!brokers || !in_topic || !out_topic) {
        usage(stderr);
        return 2;
    }

    int rc = 1;
    char err[512], group[128];
    rd_kafka_conf_t *cconf = NULL, *pconf = NULL;
    rd_kafka_t *cons = NULL, *prod = NULL;
    rd_kafka_topic_t *out_rkt = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    rd_kafka_message_t *m = NULL;
    char *pad = NULL;
    dr_state_t dr = {0};
    long long consumed = 0, produced = 0;
    double t_start = fn_cli_mono_s(), t_first = 0;
    rd_kafka_resp_err_t e;

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (group_opt)
        snprintf(group, sizeof group, "%s", group_opt);
    else
        snprintf(group, sizeof group, "bench-kafka-%ld-%ld", (long)getpid(), (long)time(NULL));
    if (payload_bytes > 0) {
        pad = malloc((size_t)payload_bytes);
        if (!pad) {
            fprintf(stderr, TOOL ": out of memory\n");
            goto fail;
        }
        memset(pad, 'x', (size_t)payload_bytes);
    }

    /* the consumer: funneld's settings (daemon/input/kafka_in.c) */
    cconf = rd_kafka_conf_new();
    if (fn_cli_kafka_set(TOOL, cconf, "bootstrap.servers", brokers) ||
        fn_cli_kafka_set(TOOL, cconf, "group.id", group) ||
        fn_cli_kafka_set(TOOL, cconf, "auto.offset.reset", "earliest") ||
        fn_cli_kafka_set(TOOL, cconf, "enable.auto.commit", "true") ||
        fn_cli_kafka_set(TOOL, cconf, "auto.commit.interval.ms", "1000") ||
        fn_cli_kafka_set(TOOL, cconf, "queued.max.messages.kbytes", "2048") ||
        fn_cli_kafka_set(TOOL, cconf, "socket.nagle.disable", "true"))
        goto fail;
    cons = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof err);
    if (!cons) {
        fprintf(stderr, TOOL ": consumer: %s\n", err);
        goto fail;
    }
    cconf = NULL;
    e = rd_kafka_poll_set_consumer(cons);
    if (e) {
        fprintf(stderr, TOOL ": poll_set_consumer: %s\n", rd_kafka_err2str(e));
        goto fail;
    }

    /* the producer: funneld's settings (daemon/output/kafka_out.c) */
    pconf = rd_kafka_conf_new();
    if (fn_cli_kafka_set(TOOL, pconf, "bootstrap.servers", brokers) ||
        fn_cli_kafka_set(TOOL, pconf, "enable.idempotence", "true") ||
        fn_cli_kafka_set(TOOL, pconf, "acks", "all") ||
        fn_cli_kafka_set(TOOL, pconf, "linger.ms", "2") ||
        fn_cli_kafka_set(TOOL, pconf, "batch.num.messages", "10000") ||
        fn_cli_kafka_set(TOOL, pconf, "queue.buffering.max.messages", "2000000") ||
        fn_cli_kafka_set(TOOL, pconf, "queue.buffering.max.kbytes", "1048576") ||
        fn_cli_kafka_set(TOOL, pconf, "message.timeout.ms", "0") ||
        fn_cli_kafka_set(TOOL, pconf, "socket.nagle.disable", "true"))
        goto fail;
    rd_kafka_conf_set_opaque(pconf, &dr);
    rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof err);
    if (!prod) {
        fprintf(stderr, TOOL ": producer: %s\n", err);
        goto fail;
    }
    pconf = NULL;
    out_rkt = rd_kafka_topic_new(prod, out_topic, NULL);
    if (!out_rkt) {
        fprintf(stderr, TOOL ": topic %s: %s\n", out_topic,
                rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }

    int n_parts = 0;
    long long total = topic_size(cons, in_topic, &n_parts);
    if (total < 0)
        goto fail;
    if (total == 0) {
        fprintf(stderr, TOOL ": %s is empty\n", in_topic);
        goto fail;
    }
    if (want_outputs < 0)
        want_outputs = total;
    if (want_outputs > total * 8) {
        fprintf(stderr, TOOL ": -m %lld is more than 8 per input\n", want_outputs);
        goto fail;
    }
    fprintf(stderr,
            TOOL ": %s has %lld message(s) in %d partition(s); group %s, "
                 "%lld output(s) to %s\n",
            in_topic, total, n_parts, group, want_outputs, out_topic);

    sub = rd_kafka_topic_partition_list_new(1);
    if (!sub) {
        fprintf(stderr, TOOL ": out of memory\n");
        goto fail;
    }
    rd_kafka_topic_partition_list_add(sub, in_topic, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(cons, sub);
    if (e) {
        fprintf(stderr, TOOL ": subscribe: %s\n", rd_kafka_err2str(e));
        goto fail;
    }

    while (consumed < total && !stop_flag) {
        m = rd_kafka_consumer_poll(cons, 100);
        rd_kafka_poll(prod, 0);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, TOOL ": consume: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            m = NULL;
            continue;
        }
        if (consumed == 0)
            t_first = fn_cli_mono_s();
        /* outputs for input i: floor((i+1)·M/N) - floor(i·M/N), so M in all */
        long long n_out = (consumed + 1) * want_outputs / total - consumed * want_outputs / total;
        consumed++;
        for (long long j = 0; j < n_out; j++) {
            const void *val = pad ? (const void *)pad : m->payload;
            size_t vlen = pad ? (size_t)payload_bytes : m->len;
            for (;;) {
                if (rd_kafka_produce(out_rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                     (void *)val, vlen, m->key, m->key_len, NULL) == 0)
                    break;
                rd_kafka_resp_err_t pe = rd_kafka_last_error();
                if (pe != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                    fprintf(stderr, TOOL ": produce: %s\n", rd_kafka_err2str(pe));
                    goto fail;
                }
                rd_kafka_poll(prod, 10);
            }
            produced++;
        }
        rd_kafka_message_destroy(m);
        m = NULL;
    }
    double t_consumed = fn_cli_mono_s();
    while (dr.delivered + dr.failed < produced && !stop_flag)
        rd_kafka_poll(prod, 100);
    if (stop_flag) {
        fprintf(stderr, TOOL ": interrupted after %lld input(s)\n", consumed);
        goto fail;
    }
    if (produced == 0)
        dr.t_last = t_consumed;
    double secs = dr.t_last - t_first, with_join = dr.t_last - t_start;
    fprintf(stderr,
            TOOL ": %lld input(s) consumed, %lld output(s) produced, %lld "
                 "delivered, %lld failed\n"
                 "  %.3f s from the first input to the last delivery = %.0f inputs/s "
                 "(%.0f outputs/s); %.3f s with the group join\n",
            consumed, produced, dr.delivered, dr.failed, secs, (double)consumed / secs,
            (double)produced / secs, with_join);
    printf("RESULT kafka_ceiling events=%lld outputs=%lld seconds=%.3f eps=%.0f "
           "seconds_with_join=%.3f eps_with_join=%.0f consume_seconds=%.3f failed=%lld\n",
           consumed, produced, secs, (double)consumed / secs, with_join,
           (double)consumed / with_join, t_consumed - t_first, dr.failed);
    rc = dr.failed ? 1 : 0;

fail:
    if (m)
        rd_kafka_message_destroy(m);
    if (sub)
        rd_kafka_topic_partition_list_destroy(sub);
    if (cons) {
        e = rd_kafka_consumer_close(cons);
        if (e)
            fprintf(stderr, TOOL ": consumer close: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(cons);
    }
    if (out_rkt)
        rd_kafka_topic_destroy(out_rkt);
    if (prod) {
        if (rd_kafka_flush(prod, 30000))
            fprintf(stderr, TOOL ": %d output(s) not flushed\n", rd_kafka_outq_len(prod));
        rd_kafka_destroy(prod);
    }
    if (cconf)
        rd_kafka_conf_destroy(cconf);
    if (pconf)
        rd_kafka_conf_destroy(pconf);
    free(pad);
    return rc;
}
