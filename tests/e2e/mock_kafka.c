/*
 * mock_kafka.c — librdkafka's mock cluster as a process of its own, for the end-to-end
 * tests that need a group coordinator they can slow down (test_slow_coordinator_e2e.py).
 *
 * Prints "bootstrap <servers>" once the cluster listens, then answers each line on stdin
 * with "ok" or "error <why>":
 *   topic <name> <partitions>          creates a topic (the mock has no CreateTopics)
 *   delay <api key> <count> <ms>       the next <count> requests of that API to broker 1
 *                                      are answered <ms> late (and the connection's
 *                                      later answers wait behind them)
 * End of input destroys the cluster.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reply(const char *what)
{
    printf("%s\n", what);
    fflush(stdout);
}

int main(void)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "mock_kafka: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc) {
        fprintf(stderr, "mock_kafka: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    char line[512], name[256];
    int a, b, c;
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "topic %255s %d", name, &a) == 2) {
            rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, a, 1);
            reply(e ? rd_kafka_err2str(e) : "ok");
        } else if (sscanf(line, "delay %d %d %d", &a, &b, &c) == 3 && b > 0) {
            rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
            for (int i = 0; i < b && !e; i++)
                e = rd_kafka_mock_broker_push_request_error_rtts(mc, 1, (int16_t)a, 1,
                                                                 RD_KAFKA_RESP_ERR_NO_ERROR, c);
            reply(e ? rd_kafka_err2str(e) : "ok");
        } else {
            reply("error unknown command");
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
