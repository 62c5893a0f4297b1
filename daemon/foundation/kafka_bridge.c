/*
 * kafka_bridge.c — the pipe between a librdkafka queue and the libuv loop (kafka_bridge.h).
 *
 * librdkafka is driven from the loop without a thread or busy polling. The queue writes to
 * the pipe from librdkafka's threads, under the queue's lock, so once the IO event is
 * disabled nothing writes any more and the pipe may be closed. Close releases only what
 * start set up: the file descriptors are -1 until pipe2 opened them, and the poll handle is
 * closed only if uv_poll_init succeeded (`started`), so a start that failed half-way (no fd
 * left, say) never closes fd 0 or an uninitialised handle.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "funneld/kafka_bridge.h"

void fn_kafka_bridge_init(fn_kafka_bridge_t *b)
{
    b->queue = NULL;
    b->fds[0] = b->fds[1] = -1;
    b->started = false;
    b->cb = NULL;
    b->data = NULL;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    fn_kafka_bridge_t *b = h->data;
    char buf[256];
    while (read(b->fds[0], buf, sizeof buf) > 0) {
    }
    b->cb(b->data);
}

int fn_kafka_bridge_start(fn_kafka_bridge_t *b, uv_loop_t *loop, rd_kafka_queue_t *q,
                          fn_kafka_bridge_cb *cb, void *data)
{
    assert(q && cb);
    assert(!b->queue && !b->started && b->fds[0] == -1 && b->fds[1] == -1);
    b->queue = q;
    b->cb = cb;
    b->data = data;
    if (pipe2(b->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        int e = -errno;
        b->fds[0] = b->fds[1] = -1;
        return e;
    }
    int rc = uv_poll_init(loop, &b->poll, b->fds[0]);
    if (rc)
        return rc;
    b->started = true;
    b->poll.data = b;
    rc = uv_poll_start(&b->poll, UV_READABLE, on_readable);
    if (rc)
        return rc;
    /* Last: librdkafka writes only once something reads. */
    rd_kafka_queue_io_event_enable(q, b->fds[1], "1", 1);
    return 0;
}

void fn_kafka_bridge_close(fn_kafka_bridge_t *b)
{
    if (b->queue) {
        rd_kafka_queue_io_event_enable(b->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(b->queue);
        b->queue = NULL;
    }
    if (b->started) {
        /* Stops the watcher now; the handle's memory is the owner's until the loop runs
         * the close (nothing to free, hence no callback). */
        uv_close((uv_handle_t *)&b->poll, NULL);
        b->started = false;
    }
    for (int i = 0; i < 2; i++) {
        if (b->fds[i] >= 0)
            close(b->fds[i]);
        b->fds[i] = -1;
    }
}
