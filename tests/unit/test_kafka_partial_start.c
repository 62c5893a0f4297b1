/*
 * test_kafka_partial_start.c — the consumer and the producer close cleanly after a start
 * that failed once their rd_kafka_t existed, at the pipe that wakes the loop (issue 17: the
 * close used to stop and close a uv_poll_t never initialised and close fd 0). After the
 * close, no file descriptor is left open, fd 0 is the same file, and once the daemon's own
 * handles are closed the loop has none left (uv_loop_close returns 0).
 *
 * pipe2 fails on demand: the test is linked with --wrap=pipe2 (tests/unit/CMakeLists.txt),
 * which redirects funneld's own calls only, not those inside libuv or librdkafka. The
 * brokers are a closed loopback port: nothing is ever consumed or produced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fn_test.h"
#include "fn_test_fds.h"
#include "funneld/daemon.h"

static bool fail_pipe2;

int __real_pipe2(int fds[2], int flags);

int __wrap_pipe2(int fds[2], int flags)
{
    if (fail_pipe2) {
        errno = EMFILE;
        return -1;
    }
    return __real_pipe2(fds, flags);
}

static fn_config_t *config(void)
{
    const char *text = "{\"kafka\":{\"brokers\":\"127.0.0.1:1\"},"
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

static void on_closed(uv_handle_t *h)
{
}

static void on_message(void *data, fn_partition_t *p, rd_kafka_message_t *rkm)
{
    rd_kafka_message_destroy(rkm); /* nothing is consumed from a closed port */
}

static void on_partition(void *data, fn_partition_t *p, bool assigned)
{
}

static bool never_full(void *data, size_t *msgs, size_t *bytes)
{
    *msgs = *bytes = 0;
    return false;
}

static bool never_stopping(void *data)
{
    return false;
}

static int output_start(fn_daemon_t *d)
{
    return fn_output_start(d->output);
}

static void output_close(fn_daemon_t *d)
{
    fn_output_close(d->output);
}

static int input_start(fn_daemon_t *d)
{
    const fn_input_cbs_t cb = {on_message, on_partition, never_full, never_stopping, d};
    return fn_input_start(d->input, &cb);
}

static void input_close(fn_daemon_t *d)
{
    fn_input_close(d->input);
}

static void start_fails_then_close(const char *name, int (*start)(fn_daemon_t *),
                                   void (*close_it)(fn_daemon_t *))
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
    int before = fn_test_open_fds();
    fail_pipe2 = true;
    CHECK(start(d) != FN_OK);
    fail_pipe2 = false;
    close_it(d);
    CHECK_INT(fn_test_open_fds(), before);
    CHECK(fn_test_fd0_intact());
    uv_close((uv_handle_t *)&d->tick, on_closed);
    uv_close((uv_handle_t *)&d->sig_term, on_closed);
    uv_close((uv_handle_t *)&d->sig_int, on_closed);
    uv_close((uv_handle_t *)&d->sig_hup, on_closed);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    fn_daemon_free(d);
    printf("%s: done\n", name);
}

int main(void)
{
    /* fd 0 must be something the test recognises, so that closing it by mistake shows. */
    if (fcntl(0, F_GETFD) == -1 && open("/dev/null", O_RDONLY) != 0)
        return 1;
    if (!fn_test_fd0_note())
        return 1;
    start_fails_then_close("producer", output_start, output_close);
    start_fails_then_close("consumer", input_start, input_close);
    return fn_test_result("test_kafka_partial_start");
}
