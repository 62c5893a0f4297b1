/*
 * test_output_purge.c — every produce request completes, once, even when nothing was
 * delivered (output.h): at close, outputs queued in librdkafka and outputs waiting in the
 * backlog for room complete with FN_OUT_PURGED, and a send refused for lack of room never
 * completes (its producer keeps it). The brokers are a closed loopback port and the queue
 * holds one message, so the second output waits in the backlog. The close waits its flush
 * bound (kafka_out.c) before purging.
 */
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/daemon.h"

static fn_config_t *config(void)
{
    const char *text = "{\"kafka\":{\"brokers\":\"127.0.0.1:1\",\"properties\":{"
                       "\"queue.buffering.max.messages\":1}},"
                       "\"funnels\":[{\"name\":\"f\",\"stages\":[{\"name\":\"a\",\"on\":[{"
                       "\"type\":\"t\"}]},{\"name\":\"b\",\"on\":[{\"type\":\"u\"}]}]}]}";
    char err[256] = "";
    json_t *root = json_loads(text, 0, NULL);
    fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    json_decref(root);
    if (!cfg)
        fprintf(stderr, "test config: %s\n", err);
    return cfg;
}

typedef struct rec {
    fn_out_req_t out; /* first, as in the producers' records */
    int completions;
    fn_out_status_t status;
} rec_t;

static void on_done(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                    rd_kafka_resp_err_t err)
{
    rec_t *r = (rec_t *)req;
    r->completions++;
    r->status = status;
}

static void on_closed(uv_handle_t *h)
{
}

static void test_close_completes_what_was_not_delivered(void)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    fn_config_t *cfg = config();
    fn_daemon_t *d = cfg ? fn_daemon_new(&loop, cfg, FN_LOG_ERROR) : NULL;
    CHECK(d != NULL);
    if (!d) {
        fn_config_free(cfg);
        return;
    }
    rec_t queued = {{on_done, NULL, false}, 0, 0};
    rec_t waiting = {{on_done, NULL, false}, 0, 0};
    rec_t refused = {{on_done, NULL, true}, 0, 0};
    CHECK_INT(fn_output_start(d->output), FN_OK);
    CHECK_INT(fn_output_produce(d->output, &queued.out, "t", "k", 1, "v", 1, NULL), FN_OK);
    CHECK_INT(fn_output_waiting(d->output), 0);
    CHECK_INT(fn_output_produce(d->output, &waiting.out, "t", "k", 1, "v", 1, NULL), FN_OK);
    CHECK_INT(fn_output_waiting(d->output), 1); /* the queue was full: in the backlog */
    CHECK_INT(fn_output_room(d->output), 0);
    CHECK_INT(fn_output_send(d->output, "t", "k", 1, "v", 1, &refused.out),
              RD_KAFKA_RESP_ERR__QUEUE_FULL);
    fn_output_poll(d->output);
    CHECK_INT(queued.completions + waiting.completions + refused.completions, 0);
    fn_output_close(d->output);
    CHECK_INT(queued.completions, 1);
    CHECK_INT(queued.status, FN_OUT_PURGED);
    CHECK_INT(waiting.completions, 1);
    CHECK_INT(waiting.status, FN_OUT_PURGED);
    CHECK_INT(refused.completions, 0);
    CHECK_INT(fn_output_waiting(d->output), 0);
    fn_output_close(d->output); /* twice is fine */
    uv_close((uv_handle_t *)&d->tick, on_closed);
    uv_close((uv_handle_t *)&d->sig_term, on_closed);
    uv_close((uv_handle_t *)&d->sig_int, on_closed);
    uv_close((uv_handle_t *)&d->sig_hup, on_closed);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    fn_daemon_free(d);
}

int main(void)
{
    test_close_completes_what_was_not_delivered();
    return fn_test_result("test_output_purge");
}
