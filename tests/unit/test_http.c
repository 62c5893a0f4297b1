/*
 * test_http.c — the operations endpoint without a daemon: readiness from its parts, the
 * metrics of a status view (status.h), and an endpoint whose start fails (a bad address, a
 * port in use) closed and freed safely, as is one never started.
 */
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/http.h"
#include "funneld/status.h"

static void test_ready(void)
{
    /* joined, redis up, kafka up, stopping -> ready */
    static const struct {
        bool joined, redis, kafka, stopping, ready;
    } cases[] = {
        {true, true, true, false, true},   {false, true, true, false, false},
        {true, false, true, false, false}, {true, true, false, false, false},
        {true, true, true, true, false},   {false, false, false, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_status_t s = {.joined = cases[i].joined,
                         .redis_up = cases[i].redis,
                         .kafka_up = cases[i].kafka,
                         .stopping = cases[i].stopping};
        CHECK_INT(fn_status_ready(&s), cases[i].ready);
    }
}

static void test_metrics(void)
{
    fn_config_t cfg = {0};
    char *topics[] = {"in"};
    cfg.input_topics = topics;
    cfg.n_input_topics = 1;
    fn_stats_t stats = {0};
    stats.produce_failed[4] = 3;
    stats.redis_data_lost = 2;
    fn_hist_observe(&stats.end_to_end, 0.003);
    fn_partition_t p = {.topic = "in", .partition = 5, .assigned = true, .consumed = 9, .lag = 7};
    fn_status_t s = {.cfg = &cfg,
                     .stats = &stats,
                     .partitions = &p,
                     .out_topics = {"t", "r", "b", "s", "dlq"},
                     .joined = true,
                     .redis_up = true,
                     .kafka_up = true,
                     .in_flight = 11,
                     .outputs_waiting = 4,
                     .triggers_in_flight = 6,
                     .configs_retired = 1,
                     .config_generation = 3};
    fn_buf_t b = {0};
    CHECK_INT(fn_metrics_render(&s, &b), FN_OK);
    static const char *const want[] = {
        "funneld_events_consumed_total{topic=\"in\"} 9\n",
        "funneld_produce_failures_total{topic=\"dlq\"} 3\n",
        "funneld_end_to_end_seconds_bucket{le=\"0.0025\"} 0\n",
        "funneld_end_to_end_seconds_bucket{le=\"0.005\"} 1\n",
        "funneld_in_flight 11\n",
        "funneld_outputs_waiting 4\n",
        "funneld_triggers_in_flight 6\n",
        "funneld_consumer_lag{topic=\"in\",partition=\"5\"} 7\n",
        "funneld_kafka_up 1\n",
        "funneld_redis_up 1\n",
        "funneld_redis_data_lost_total 2\n",
        "funneld_ready 1\n",
        "funneld_config_generation 3\n",
        "funneld_configs_retired 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bool found = b.data && strstr(b.data, want[i]);
        if (!found)
            fprintf(stderr, "missing: %s", want[i]);
        CHECK(found);
    }
    fn_buf_free(&b);
}

static void fill_nothing(void *data, fn_status_t *out)
{
    (void)data;
    (void)out;
}

static void start_fails(const char *listen, uv_loop_t *loop, fn_log_t *log)
{
    fn_http_t *h = fn_http_new(loop, log, fill_nothing, NULL);
    CHECK(h != NULL);
    CHECK_INT(fn_http_start(h, listen, NULL), FN_ERR);
    fn_http_close(h);
    fn_http_close(h);            /* twice is fine */
    uv_run(loop, UV_RUN_NOWAIT); /* runs the close callbacks */
    fn_http_free(h);
}

static void test_partial_start(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fn_log_t log = {.level = FN_LOG_ERROR, .out = stderr}; /* the failures below are logged */

    fn_http_t *never = fn_http_new(&loop, &log, fill_nothing, NULL);
    CHECK(never != NULL);
    fn_http_close(never); /* never started */
    fn_http_free(never);
    fn_http_free(NULL);

    start_fails("nothost:9464", &loop, &log); /* fails before the handle exists */

    /* a port in use: fails after the handle was initialised */
    uv_tcp_t taken;
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_tcp_init(&loop, &taken);
    CHECK_INT(uv_tcp_bind(&taken, (const struct sockaddr *)&any, 0), 0);
    CHECK_INT(uv_listen((uv_stream_t *)&taken, 1, NULL), 0);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&taken, (struct sockaddr *)&bound, &len);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ntohs(bound.sin_port));
    start_fails(listen, &loop, &log);
    uv_close((uv_handle_t *)&taken, NULL);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    test_ready();
    test_metrics();
    test_partial_start();
    return fn_test_result("test_http");
}
