/*
 * kafka_common.c — what the consumer (input/) and the producer (output/) share: setting
 * properties with errors that name the property, and routing librdkafka's errors and logs
 * into the daemon's log. It knows the client only through its fn_kafka_client_t
 * (kafka_common.h): a fatal error, all brokers down and statistics are the client's to act on.
 *
 * Credentials (sasl.password, ssl.key.password, … see fn_secret_key) never reach the log:
 * librdkafka quotes a rejected value in its error text, and a debug setting could make it
 * print more, so every text from librdkafka has the configured secret values replaced by
 * "[redacted]" before it is logged.
 */
#include <stdio.h>

#include "funneld/common.h"
#include "funneld/kafka_common.h"

void fn_kafka_redact(const fn_kafka_client_t *c, char *text, size_t cap)
{
    const fn_config_t *cfg = c->cfg ? *c->cfg : NULL;
    for (size_t i = 0; cfg && i < cfg->n_kafka_props; i++)
        if (fn_secret_key(cfg->kafka_props[i].key))
            fn_redact(text, cap, cfg->kafka_props[i].value);
}

int fn_kafka_conf_set(const fn_kafka_client_t *c, rd_kafka_conf_t *conf, const char *k,
                      const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        if (fn_secret_key(k))
            fn_redact(err, sizeof err, v); /* even if it is not from kafka.properties */
        fn_kafka_redact(c, err, sizeof err);
        fn_log(c->log, FN_LOG_ERROR, "kafka", "kafka.properties.%s: %s", k, err);
        return FN_ERR;
    }
    return FN_OK;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    fn_kafka_client_t *c = opaque;
    const char *who = rd_kafka_type(rk) == RD_KAFKA_CONSUMER ? "consumer" : "producer";
    char buf[1024];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        fn_kafka_redact(c, buf, sizeof buf);
        fn_log(c->log, FN_LOG_ERROR, "kafka", "fatal %s error: %s", who, buf);
        c->on_fatal(c->data);
        return;
    }
    /* Broker-down and transport errors are normal weather: librdkafka reconnects itself.
     * Not ready from now on, rather than at the next statistics (up to 5 s later), which
     * also say when a broker is up again. */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        c->on_down(c->data);
    /* An authentication failure is such an error too: logged (again while it lasts), and
     * seen in /readyz and funneld_kafka_up, rather than stopping the daemon. */
    snprintf(buf, sizeof buf, "%s", reason);
    fn_kafka_redact(c, buf, sizeof buf);
    fn_log(c->log, FN_LOG_WARN, "kafka", "%s: %s: %s", who,
           rd_kafka_err2name((rd_kafka_resp_err_t)err), buf);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const fn_kafka_client_t *c = rd_kafka_opaque(rk);
    fn_log_level_t l = level <= 3 ? FN_LOG_ERROR : level <= 4 ? FN_LOG_WARN : FN_LOG_DEBUG;
    if (l < c->log->level)
        return;
    char text[1024];
    snprintf(text, sizeof text, "%s", buf);
    fn_kafka_redact(c, text, sizeof text);
    fn_log(c->log, l, "rdkafka", "%s: %s", fac, text);
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    fn_kafka_client_t *c = opaque;
    if (c->on_stats)
        c->on_stats(c->data, json, len);
    return 0; /* librdkafka frees json */
}

int fn_kafka_conf_common(fn_kafka_client_t *c, rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    /* Logs go through the main queue so they are written on the loop, not from
     * librdkafka's threads. Nagle's algorithm only delays the small produce and fetch requests
     * of a steady, moderate rate (latency); kafka.properties may turn it back on. */
    return fn_kafka_conf_set(c, conf, "log.queue", "true") ||
           fn_kafka_conf_set(c, conf, "socket.nagle.disable", "true");
}

int fn_kafka_conf_props(const fn_kafka_client_t *c, rd_kafka_conf_t *conf,
                        bool (*skip)(const char *key))
{
    const fn_config_t *cfg = *c->cfg;
    for (size_t i = 0; i < cfg->n_kafka_props; i++)
        if (!(skip && skip(cfg->kafka_props[i].key)) &&
            fn_kafka_conf_set(c, conf, cfg->kafka_props[i].key, cfg->kafka_props[i].value))
            return FN_ERR;
    return FN_OK;
}

rd_kafka_t *fn_kafka_new(const fn_kafka_client_t *c, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                         const char *component, const char *what)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf); /* librdkafka leaves it to the caller when it fails */
        fn_kafka_redact(c, err, sizeof err);
        fn_log(c->log, FN_LOG_ERROR, component, "cannot create %s: %s", what, err);
        return NULL;
    }
    rd_kafka_set_log_queue(rk, NULL);
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}
