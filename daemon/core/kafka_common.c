/*
 * kafka_common.c — what the consumer (input/) and the producer (output/) share: setting
 * properties with errors that name the property, and routing librdkafka's errors and logs
 * into the daemon's log.
 */
#include "funneld/daemon.h"

int fn_kafka_conf_set(fn_daemon_t *d, rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fn_log(&d->log, FN_LOG_ERROR, "kafka", "kafka.properties.%s: %s", k, err);
        return FN_ERR;
    }
    return FN_OK;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    fn_daemon_t *d = opaque;
    const char *who = rd_kafka_type(rk) == RD_KAFKA_CONSUMER ? "consumer" : "producer";
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        fn_log(&d->log, FN_LOG_ERROR, "kafka", "fatal %s error: %s", who, buf);
        fn_daemon_stop(d, 1);
        return;
    }
    /* Broker-down and transport errors are normal weather: librdkafka reconnects itself. */
    fn_log(&d->log, FN_LOG_WARN, "kafka", "%s: %s: %s", who,
           rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    fn_daemon_t *d = rd_kafka_opaque(rk);
    fn_log_level_t l = level <= 3 ? FN_LOG_ERROR : level <= 4 ? FN_LOG_WARN : FN_LOG_DEBUG;
    fn_log(&d->log, l, "rdkafka", "%s: %s", fac, buf);
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    if (rd_kafka_type(rk) == RD_KAFKA_CONSUMER)
        fn_metrics_on_kafka_stats(opaque, json, len);
    return 0; /* librdkafka frees json */
}

int fn_kafka_conf_common(fn_daemon_t *d, rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    /* Logs go through the main queue so they are written on the loop, not from
     * librdkafka's threads. Nagle's algorithm only delays the small produce and fetch requests
     * of a steady, moderate rate (latency); kafka.properties may turn it back on. */
    return fn_kafka_conf_set(d, conf, "log.queue", "true") ||
           fn_kafka_conf_set(d, conf, "socket.nagle.disable", "true");
}
