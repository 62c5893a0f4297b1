/*
 * test_http_routes.c — the HTTP endpoint's routes on a real loop and real sockets, a client
 * thread speaking to it: an answer given later (also after its client left, and after the
 * endpoint's timeout answered 503 for it), the token (401
 * without it, / and the probes open), who may see lead ids, header lookup, and event streams:
 * their budget (503 beyond FN_HTTP_MAX_STREAMS), a client that never reads cut off at
 * FN_HTTP_STREAM_BUF (its closed callback runs), and fn_http_close ending the rest.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fn_test.h"
#include "funneld/http.h"

#define TOKEN "0123456789abcdef-token"

typedef struct srv {
    uv_loop_t *loop;
    fn_http_t *open, *guarded; /* without and with a token */
    int port_open, port_guarded;
    uv_timer_t later;
    fn_http_req_t *late[8];
    int n_late;
    fn_http_req_t *held; /* GET /held: answered only at the end, long after its timeout */
    fn_http_stream_t *flood;
    int flood_closed, streams_closed, flood_refused;
    fn_http_stream_t *streams[FN_HTTP_MAX_STREAMS + 4];
    int n_streams;
    uv_async_t done;
} srv_t;

static void fill_nothing(void *data, fn_status_t *out)
{
    (void)data;
    (void)out;
}

/* GET /later: answered by a timer, 100 ms on (its client may have left by then) */
static void on_later(uv_timer_t *t)
{
    srv_t *s = t->data;
    for (int i = 0; i < s->n_late; i++)
        fn_http_respond(s->late[i], 200, "text/plain", "late\n", 5);
    s->n_late = 0;
}

static void route_later(void *data, fn_http_req_t *r)
{
    srv_t *s = data;
    s->late[s->n_late++] = r;
    uv_timer_start(&s->later, on_later, 100, 0);
}

static void route_held(void *data, fn_http_req_t *r)
{
    srv_t *s = data;
    s->held = r;
}

/* GET /who: who the client is and what it sent in X-Test */
static void route_who(void *data, fn_http_req_t *r)
{
    (void)data;
    char v[32], body[128];
    const char *x = fn_http_req_header(r, "x-test", v, sizeof v);
    snprintf(body, sizeof body, "path=%s trusted=%d x=%s\n", fn_http_req_path(r),
             fn_http_req_trusted(r), x ? x : "(none)");
    fn_http_respond(r, 200, "text/plain", body, strlen(body));
}

static void stream_closed(void *data, fn_http_stream_t *st)
{
    srv_t *s = data;
    if (st == s->flood)
        s->flood_closed++;
    else
        s->streams_closed++;
}

/* GET /stream: two events at once */
static void route_stream(void *data, fn_http_req_t *r)
{
    srv_t *s = data;
    fn_http_stream_t *st = fn_http_stream_open(r, stream_closed, s);
    if (!st)
        return;
    s->streams[s->n_streams++] = st;
    CHECK_INT(fn_http_stream_send(st, "data: 1\n\n", 9), FN_OK);
    CHECK_INT(fn_http_stream_send(st, "data: 2\n\n", 9), FN_OK);
}

/* GET /flood: a stream sent 64 KiB at a time until the client, which never reads, is cut off */
static void route_flood(void *data, fn_http_req_t *r)
{
    srv_t *s = data;
    s->flood = fn_http_stream_open(r, stream_closed, s);
    CHECK(s->flood != NULL);
    static char chunk[64 * 1024];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 10000 && s->flood_closed == 0; i++) {
        int rc = fn_http_stream_send(s->flood, chunk, sizeof chunk);
        if (rc != FN_OK) {
            CHECK_INT(rc, FN_HTTP_TOO_SLOW); /* cut off for reading too slowly, nothing else */
            s->flood_refused++;
        }
    }
}

static void on_done(uv_async_t *a)
{
    srv_t *s = a->data;
    CHECK(s->held != NULL);
    if (s->held) /* its client was answered 503 and is gone: this answer is dropped (ASan) */
        fn_http_respond(s->held, 200, "text/plain", "too late\n", 9);
    fn_http_close(s->open); /* ends the streams still open */
    fn_http_close(s->guarded);
    uv_close((uv_handle_t *)&s->later, NULL);
    uv_close((uv_handle_t *)&s->done, NULL);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends req and reads until the server closes (or n bytes); returns the bytes read. */
static size_t ask(int port, const char *req, char *out, size_t n)
{
    int fd = dial(port);
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd, out + got, n - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    return got;
}

static void client(void *arg)
{
    srv_t *s = arg;
    char b[4096];
    /* an answer given later */
    ask(s->port_open, "GET /later HTTP/1.1\r\n\r\n", b, sizeof b);
    CHECK(strstr(b, "HTTP/1.1 200 OK") && strstr(b, "\r\n\r\nlate\n"));
    /* its client gone before it: nothing to write, nothing leaks (ASan) */
    int fd = dial(s->port_open);
    CHECK(write(fd, "GET /later HTTP/1.1\r\n\r\n", 23) == 23);
    close(fd);
    usleep(300 * 1000);
    /* an owner that has not answered within the endpoint's timeout: 503 with Retry-After,
     * not a connection closed without a word */
    ask(s->port_open, "GET /held HTTP/1.1\r\n\r\n", b, sizeof b);
    CHECK(strstr(b, "HTTP/1.1 503 Service Unavailable\r\n") && strstr(b, "\r\nRetry-After: 1\r\n"));
    CHECK(strstr(b, "too late") == NULL);
    /* a route, a header, a trusted loopback client without a token: not when it asks for
     * another name (a rebound domain) or came through a proxy */
    static const struct {
        const char *req, *want;
    } trust[] = {
        {"GET /who?q=1 HTTP/1.1\r\nX-Test: hello \r\n\r\n", "path=/who trusted=1 x=hello\n"},
        {"GET /who HTTP/1.1\r\nHost: 127.0.0.1:9464\r\n\r\n", "trusted=1"},
        {"GET /who HTTP/1.1\r\nhost: LOCALHOST\r\n\r\n", "trusted=1"},
        {"GET /who HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "trusted=1"},
        {"GET /who HTTP/1.1\r\nHost: evil.example:9464\r\n\r\n", "trusted=0"},
        {"GET /who HTTP/1.1\r\nHost: localhost.evil.example\r\n\r\n", "trusted=0"},
        {"GET /who HTTP/1.1\r\nHost: [::2]:80\r\n\r\n", "trusted=0"},
        {"GET /who HTTP/1.1\r\nHost: 127.evil.example\r\n\r\n", "trusted=0"},
        {"GET /who HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n", "trusted=1"},
        {"GET /who HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n", "trusted=0"},
        {"GET /who HTTP/1.1\r\nForwarded: for=10.0.0.9\r\nHost: localhost\r\n\r\n", "trusted=0"},
    };
    for (size_t i = 0; i < sizeof trust / sizeof *trust; i++) {
        ask(s->port_open, trust[i].req, b, sizeof b);
        if (!strstr(b, trust[i].want))
            fprintf(stderr, "trust case %zu: want %s, got %.120s\n", i, trust[i].want, b);
        CHECK(strstr(b, trust[i].want) != NULL);
    }
    ask(s->port_open, "GET /whom HTTP/1.1\r\n\r\n", b, sizeof b);
    CHECK(strstr(b, "HTTP/1.1 404"));
    /* the token: needed everywhere but /, /healthz and /readyz */
    static const struct {
        const char *req, *want;
    } guarded[] = {
        {"GET /who HTTP/1.1\r\n\r\n", "HTTP/1.1 401 Unauthorized"},
        {"GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 401 Unauthorized"},
        {"GET /who HTTP/1.1\r\nAuthorization: Bearer wrong-token-000000\r\n\r\n", "HTTP/1.1 401"},
        {"GET /who HTTP/1.1\r\nAuthorization: Bearer " TOKEN "x\r\n\r\n", "HTTP/1.1 401"},
        {"GET /who HTTP/1.1\r\nAuthorization: Bearer " TOKEN "\r\n\r\n", "trusted=1"},
        {"GET /who HTTP/1.1\r\nauthorization: bearer " TOKEN "\r\n\r\n", "trusted=1"},
        {"GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"},
        {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404"}, /* no page route here: open, not found */
    };
    for (size_t i = 0; i < sizeof guarded / sizeof *guarded; i++) {
        ask(s->port_guarded, guarded[i].req, b, sizeof b);
        if (!strstr(b, guarded[i].want))
            fprintf(stderr, "case %zu: want %s, got %.80s\n", i, guarded[i].want, b);
        CHECK(strstr(b, guarded[i].want) != NULL);
    }
    /* streams: FN_HTTP_MAX_STREAMS open, the next one refused */
    int fds[FN_HTTP_MAX_STREAMS];
    for (int i = 0; i < FN_HTTP_MAX_STREAMS; i++) {
        fds[i] = dial(s->port_open);
        CHECK(write(fds[i], "GET /stream HTTP/1.1\r\n\r\n", 24) == 24);
        size_t got = 0;
        ssize_t r;
        while (!strstr(b, "data: 2\n\n") && got + 1 < sizeof b &&
               (r = read(fds[i], b + got, sizeof b - 1 - got)) > 0) {
            got += (size_t)r;
            b[got] = '\0';
        }
        CHECK(strstr(b, "text/event-stream") && strstr(b, "data: 1\n\ndata: 2\n\n"));
        b[0] = '\0';
    }
    ask(s->port_open, "GET /stream HTTP/1.1\r\n\r\n", b, sizeof b);
    CHECK(strstr(b, "HTTP/1.1 503"));
    /* requests still have their own slots while the streams are open */
    ask(s->port_open, "GET /healthz HTTP/1.1\r\n\r\n", b, sizeof b);
    CHECK(strstr(b, "HTTP/1.1 200 OK"));
    close(fds[0]); /* a stream whose client leaves: its closed callback runs */
    for (int i = 0; i < 100 && s->streams_closed == 0; i++)
        usleep(20 * 1000);
    CHECK_INT(s->streams_closed, 1);
    /* a client that never reads: cut off, the owner told once */
    fd = dial(s->port_open);
    CHECK(write(fd, "GET /flood HTTP/1.1\r\n\r\n", 23) == 23);
    for (int i = 0; i < 500 && s->flood_closed == 0; i++)
        usleep(20 * 1000);
    CHECK_INT(s->flood_closed, 1);
    close(fd);
    for (int i = 1; i < FN_HTTP_MAX_STREAMS; i++)
        close(fds[i]);
    uv_async_send(&s->done);
}

static int port_of(fn_http_t *h, uv_loop_t *loop, const char *token)
{
    /* the port is in the log line only: bind a probe socket to find a free one first */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ntohs(a.sin_port));
    (void)loop;
    CHECK_INT(fn_http_start(h, listen, token), FN_OK);
    return ntohs(a.sin_port);
}

int main(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fn_log_t log = {.level = FN_LOG_ERROR, .out = stderr};
    srv_t s = {.loop = &loop};
    s.open = fn_http_new(&loop, &log, fill_nothing, NULL);
    s.guarded = fn_http_new(&loop, &log, fill_nothing, NULL);
    CHECK(s.open && s.guarded);
    fn_http_t *hs[] = {s.open, s.guarded};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(fn_http_route(hs[i], "/later", route_later, &s), FN_OK);
        CHECK_INT(fn_http_route(hs[i], "/who", route_who, &s), FN_OK);
        CHECK_INT(fn_http_route(hs[i], "/held", route_held, &s), FN_OK);
        CHECK_INT(fn_http_route(hs[i], "/stream", route_stream, &s), FN_OK);
        CHECK_INT(fn_http_route(hs[i], "/flood", route_flood, &s), FN_OK);
    }
    s.port_open = port_of(s.open, &loop, NULL);
    s.port_guarded = port_of(s.guarded, &loop, TOKEN);
    uv_timer_init(&loop, &s.later);
    s.later.data = &s;
    uv_async_init(&loop, &s.done, on_done);
    s.done.data = &s;
    uv_thread_t t;
    CHECK_INT(uv_thread_create(&t, client, &s), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_thread_join(&t);
    /* every stream ended: the one whose client left, the flood, the rest by fn_http_close */
    CHECK_INT(s.streams_closed, FN_HTTP_MAX_STREAMS);
    CHECK(s.flood_refused >= 1);
    CHECK_INT(fn_http_streams(s.open), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
    fn_http_free(s.open);
    fn_http_free(s.guarded);
    return fn_test_result("test_http_routes");
}
