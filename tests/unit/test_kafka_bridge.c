/*
 * test_kafka_bridge.c — the pipe between a librdkafka queue and the loop: an event put on
 * the queue wakes the owner's callback on the loop, and close after a full start, after a
 * start that failed (no file descriptor left for the pipe) or without any start leaves no
 * file descriptor open and no handle on the loop, and never closes fd 0.
 *
 * No broker is needed: the producer has no bootstrap servers, so it opens no socket, and
 * its message waits in the unassigned partition until a purge turns it into a delivery
 * report on the main queue, which is the event the bridge watches.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fn_test.h"
#include "fn_test_fds.h"
#include "funneld/kafka_bridge.h"

typedef enum { START_FULL, START_FAILS, START_NONE } start_t;

typedef struct {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    int wakeups;
    int purged; /* delivery reports served from the callback */
} ctx_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    ctx_t *c = opaque;
    if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE)
        c->purged++;
}

static void on_queued(void *data)
{
    ctx_t *c = data;
    c->wakeups++;
    rd_kafka_poll(c->rk, 0);
    uv_stop(c->loop);
}

/* Only there so that a wake-up that never comes fails the test instead of hanging it. */
static void on_give_up(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void silent(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

static rd_kafka_t *new_producer(ctx_t *c)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, silent);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rd_kafka_new: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* A start with every file descriptor below the limit in use, so that pipe2 fails. */
static int start_without_fds(fn_kafka_bridge_t *b, ctx_t *c)
{
    struct rlimit was;
    CHECK(getrlimit(RLIMIT_NOFILE, &was) == 0);
    int lowest_free = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK(lowest_free > 0);
    close(lowest_free);
    struct rlimit low = {.rlim_cur = (rlim_t)lowest_free, .rlim_max = was.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    int rc = fn_kafka_bridge_start(b, c->loop, rd_kafka_queue_get_main(c->rk), on_queued, c);
    CHECK(setrlimit(RLIMIT_NOFILE, &was) == 0);
    return rc;
}

static void run_case(const char *name, start_t how)
{
    uv_loop_t loop;
    CHECK_INT(uv_loop_init(&loop), 0);
    ctx_t c = {.loop = &loop};
    c.rk = new_producer(&c);
    CHECK(c.rk != NULL);
    if (!c.rk)
        return;
    int before = fn_test_open_fds();
    fn_kafka_bridge_t b;
    fn_kafka_bridge_init(&b);
    uv_timer_t give_up; /* closed in the loop's last run: it must live until then */

    if (how == START_FULL) {
        CHECK_INT(fn_kafka_bridge_start(&b, &loop, rd_kafka_queue_get_main(c.rk), on_queued, &c),
                  0);
        CHECK(b.started);
        CHECK(b.fds[0] > 0 && b.fds[1] > 0);
        CHECK_INT(fn_test_open_fds(), before + 2);
        CHECK_INT(rd_kafka_producev(c.rk, RD_KAFKA_V_TOPIC("bridge"), RD_KAFKA_V_VALUE("x", 1),
                                    RD_KAFKA_V_END),
                  0);
        CHECK_INT(rd_kafka_purge(c.rk, RD_KAFKA_PURGE_F_QUEUE), 0);
        uv_timer_init(&loop, &give_up);
        uv_timer_start(&give_up, on_give_up, 30000, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&give_up, NULL);
        CHECK_INT(c.wakeups, 1);
        CHECK_INT(c.purged, 1);
    } else if (how == START_FAILS) {
        CHECK_INT(start_without_fds(&b, &c), UV_EMFILE);
        CHECK(!b.started);
        CHECK(b.fds[0] == -1 && b.fds[1] == -1);
    }

    fn_kafka_bridge_close(&b);
    fn_kafka_bridge_close(&b); /* idempotent */
    CHECK(!b.started && !b.queue);
    CHECK(b.fds[0] == -1 && b.fds[1] == -1);
    CHECK_INT(fn_test_open_fds(), before);
    CHECK(fn_test_fd0_intact());
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0); /* runs the close callbacks */
    CHECK_INT(uv_loop_close(&loop), 0);
    rd_kafka_destroy(c.rk); /* would wait for a queue handle the bridge kept */
    CHECK(fn_test_fd0_intact());
    printf("%s: done\n", name);
}

int main(void)
{
    /* fd 0 must be something the test recognises, so that closing it by mistake shows. */
    if (fcntl(0, F_GETFD) == -1 && open("/dev/null", O_RDONLY) != 0)
        return 1;
    if (!fn_test_fd0_note())
        return 1;
    static const struct {
        const char *name;
        start_t how;
    } cases[] = {
        {"close after a full start", START_FULL},
        {"close after a start without fds for the pipe", START_FAILS},
        {"close without a start", START_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(cases[i].name, cases[i].how);
    return fn_test_result("test_kafka_bridge");
}
