/*
 * kafka_common.h — what the consumer (input/) and the producer (output/) share
 * (core/kafka_common.c): setting properties with errors that name the property, and routing
 * librdkafka's errors, logs and statistics to the client that owns the handle.
 *
 * Each client embeds an fn_kafka_client_t as the FIRST member of its context and
 * fn_kafka_conf_common makes it the handle's opaque: librdkafka's callbacks registered by the
 * client (rebalance, delivery reports) receive that pointer and read it as the context.
 */
#ifndef FUNNELD_KAFKA_COMMON_H
#define FUNNELD_KAFKA_COMMON_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "funneld/config.h"
#include "funneld/log.h"

typedef struct fn_kafka_client {
    const fn_log_t *log;
    /* The running config, read for the secret kafka.properties to redact (a reload replaces
     * the config but never its kafka.properties). */
    fn_config_t *const *cfg;
    void (*on_fatal)(void *data); /* a fatal error: the handle is unusable */
    void (*on_down)(void *data);  /* all brokers are down (librdkafka reconnects itself) */
    void (*on_stats)(void *data, const char *json, size_t len); /* NULL: ignored */
    void *data;
} fn_kafka_client_t;

/* Sets one librdkafka property; logs "kafka.properties.KEY: why" and returns FN_ERR. */
int fn_kafka_conf_set(const fn_kafka_client_t *c, rd_kafka_conf_t *conf, const char *k,
                      const char *v);
/* Replaces the values of the secret kafka.properties (fn_secret_key) in a text from
 * librdkafka with "[redacted]" before it is logged. */
void fn_kafka_redact(const fn_kafka_client_t *c, char *text, size_t cap);
/* Opaque (c), error, log and statistics callbacks shared by consumer and producer. */
int fn_kafka_conf_common(fn_kafka_client_t *c, rd_kafka_conf_t *conf);
/* Sets the config's kafka.properties on conf, but those skip(key) is true of (skip NULL:
 * all). FN_ERR as fn_kafka_conf_set. */
int fn_kafka_conf_props(const fn_kafka_client_t *c, rd_kafka_conf_t *conf,
                        bool (*skip)(const char *key));
/* A handle of type made from conf, which it owns from this call on, also when it fails (conf
 * is destroyed then). Its logs go to its main queue (fn_kafka_conf_common); a consumer's
 * messages to its consumer queue. NULL after logging "cannot create <what>: why" (with the
 * secrets redacted) under component. */
rd_kafka_t *fn_kafka_new(const fn_kafka_client_t *c, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                         const char *component, const char *what);

#endif
