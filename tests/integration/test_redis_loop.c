/*
 * test_redis_loop.c — hiredis driven by the loop through redis_loop.h, against the fixture's
 * redis-server: every command queued gets its reply, in order, whichever loop phase queued it
 * (a timer, before the loop waits; a reply callback, while it serves the socket; a turn with
 * thousands queued at once); a command larger than the socket takes in one write (the path
 * that waits for writability) arrives whole; a connection the server kills and one that is
 * refused end with hiredis's callbacks and leave no handle on the loop (uv_loop_close
 * succeeds only then, and the sanitizer run sees the adapter's memory freed).
 */
#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fn_test.h"
#include "fn_test_redis.h"
#include "funneld/redis_loop.h"

typedef struct {
    uv_loop_t loop;
    uv_timer_t give_up; /* a reply that never comes fails the test instead of hanging it */
    uv_timer_t kick;
    redisAsyncContext *ac;
    char key[64];
    long long incrs; /* INCR replies seen, each checked to be the next count */
    long long out_of_order;
    int connected;    /* connect callback: 1 ok, -1 error */
    int disconnected; /* disconnect callback: 1 REDIS_OK, -1 REDIS_ERR */
    int done;         /* the case's last reply arrived */
    long long client_id;
    size_t big; /* the large value's length, as STRLEN reported it */
} ctx_t;

static void on_give_up(uv_timer_t *t)
{
    ctx_t *c = t->data;
    fprintf(stderr, "gave up waiting\n");
    CHECK(!"a reply came within the give-up time");
    if (c->ac)
        redisAsyncFree(c->ac); /* pending callbacks get NULL replies */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    ctx_t *c = ac->data;
    c->connected = status == REDIS_OK ? 1 : -1;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it, without a disconnect callback */
        uv_timer_stop(&c->give_up);
        uv_timer_stop(&c->kick);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    ctx_t *c = ac->data;
    c->disconnected = status == REDIS_OK ? 1 : -1;
    c->ac = NULL;
    uv_timer_stop(&c->give_up);
    uv_timer_stop(&c->kick);
}

/* host: 128 bytes */
static bool redis_addr(char *host, int *port)
{
    const char *url = getenv("FUNNELD_REDIS_URL");
    if (!url || strncmp(url, "redis://", 8) != 0)
        return false;
    *port = 6379;
    return sscanf(url + 8, "%127[^:/]:%d", host, port) >= 1;
}

/* A loop, a connection through the adapter (NULL ac when refused at once) and a give-up
 * timer. */
static void start(ctx_t *c, const char *host, int port, const char *tag)
{
    memset(c, 0, sizeof *c);
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->give_up);
    uv_timer_init(&c->loop, &c->kick);
    c->give_up.data = c->kick.data = c;
    uv_timer_start(&c->give_up, on_give_up, 20000, 0);
    snprintf(c->key, sizeof c->key, "fn-test-redis-loop-%s-%d", tag, (int)getpid());
    c->ac = redisAsyncConnect(host, port);
    if (c->ac && c->ac->err) {
        redisAsyncFree(c->ac);
        c->ac = NULL;
        c->connected = -1;
    }
    if (!c->ac) {
        uv_timer_stop(&c->give_up);
        return;
    }
    c->ac->data = c;
    CHECK_INT(fn_redis_loop_attach(c->ac, &c->loop), REDIS_OK);
    CHECK_INT(fn_redis_loop_attach(c->ac, &c->loop), REDIS_ERR); /* once only */
    redisAsyncSetConnectCallback(c->ac, on_connect);
    redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
}

/* Runs the loop until nothing is left on it, then closes it: fails if a handle stayed. */
static void finish(ctx_t *c)
{
    uv_close((uv_handle_t *)&c->give_up, NULL);
    uv_close((uv_handle_t *)&c->kick, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&c->loop), 0);
}

/* ---- many commands, queued from a timer and from reply callbacks ---- */

#define BATCH 5000
#define ROUNDS 4

static void on_incr(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_INTEGER || reply->integer != c->incrs + 1)
        c->out_of_order++;
    c->incrs++;
}

static void on_get(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    redisReply *reply = r;
    char want[32];
    snprintf(want, sizeof want, "%d", BATCH * ROUNDS);
    CHECK(reply && reply->type == REDIS_REPLY_STRING && strcmp(reply->str, want) == 0);
    c->done = 1;
    redisAsyncCommand(ac, NULL, NULL, "DEL %s", c->key);
    redisAsyncDisconnect(ac); /* after the DEL's reply */
}

static void queue_batch(ctx_t *c);

/* The last INCR of a batch queues the next batch from inside the reply callback. */
static void on_last_incr(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    on_incr(ac, r, priv);
    if (c->incrs < (long long)BATCH * ROUNDS)
        queue_batch(c);
    else
        redisAsyncCommand(ac, on_get, NULL, "GET %s", c->key);
}

static void queue_batch(ctx_t *c)
{
    for (int i = 0; i < BATCH; i++)
        redisAsyncCommand(c->ac, i == BATCH - 1 ? on_last_incr : on_incr, NULL, "INCR %s", c->key);
}

/* A timer runs before the loop waits: the batch must leave then, with nothing else to wake
 * the loop. */
static void on_kick(uv_timer_t *t)
{
    ctx_t *c = t->data;
    if (c->ac)
        queue_batch(c);
}

static void on_del(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    uv_timer_start(&c->kick, on_kick, 10, 0);
}

static void test_pipelined(const char *host, int port)
{
    ctx_t c;
    start(&c, host, port, "incr");
    CHECK(c.ac != NULL);
    if (!c.ac)
        return;
    redisAsyncCommand(c.ac, on_del, NULL, "DEL %s", c.key);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    CHECK_INT(c.connected, 1);
    CHECK_INT(c.incrs, (long long)BATCH * ROUNDS);
    CHECK_INT(c.out_of_order, 0);
    CHECK_INT(c.done, 1);
    CHECK_INT(c.disconnected, 1);
    finish(&c);
}

/* ---- a command larger than one write ---- */

#define BIG (16u << 20)

static void on_ping(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    redisReply *reply = r;
    CHECK(reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0);
    c->done = 1;
    redisAsyncCommand(ac, NULL, NULL, "DEL %s", c->key);
    redisAsyncDisconnect(ac);
}

static void on_strlen(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        c->big = (size_t)reply->integer;
}

static void on_set(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    CHECK(reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0);
}

static void test_big_write(const char *host, int port)
{
    ctx_t c;
    start(&c, host, port, "big");
    CHECK(c.ac != NULL);
    if (!c.ac)
        return;
    char *value = malloc(BIG);
    CHECK(value != NULL);
    if (!value)
        return;
    for (size_t i = 0; i < BIG; i++)
        value[i] = (char)('a' + i % 26);
    /* queued before the connect completes, then while the first is still being written */
    redisAsyncCommand(c.ac, on_set, NULL, "SET %s %b", c.key, value, (size_t)BIG);
    free(value);
    redisAsyncCommand(c.ac, on_strlen, NULL, "STRLEN %s", c.key);
    redisAsyncCommand(c.ac, on_ping, NULL, "PING");
    uv_run(&c.loop, UV_RUN_DEFAULT);
    CHECK_INT(c.big, BIG);
    CHECK_INT(c.done, 1);
    CHECK_INT(c.disconnected, 1);
    finish(&c);
}

/* ---- the server drops the connection ---- */

static void on_client_id(redisAsyncContext *ac, void *r, void *priv)
{
    ctx_t *c = ac->data;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_INTEGER)
        return;
    c->client_id = reply->integer;
    redisContext *rc = fn_test_redis_connect();
    if (rc && !rc->err) {
        redisReply *k = redisCommand(rc, "CLIENT KILL ID %lld", c->client_id);
        CHECK(k && k->type == REDIS_REPLY_INTEGER && k->integer == 1);
        freeReplyObject(k);
    }
    if (rc)
        redisFree(rc);
    /* queued after the kill: hiredis answers it with no reply when it sees the close */
    redisAsyncCommand(ac, NULL, NULL, "PING");
}

static void test_killed(const char *host, int port)
{
    ctx_t c;
    start(&c, host, port, "kill");
    CHECK(c.ac != NULL);
    if (!c.ac)
        return;
    redisAsyncCommand(c.ac, on_client_id, NULL, "CLIENT ID");
    uv_run(&c.loop, UV_RUN_DEFAULT);
    CHECK(c.client_id > 0);
    CHECK_INT(c.disconnected, -1);
    finish(&c);
}

/* ---- nobody listens ---- */

static void test_refused(void)
{
    /* a port that was free a moment ago: bound, then closed without listening */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    int port = ntohs(a.sin_port);
    close(fd);
    ctx_t c;
    start(&c, "127.0.0.1", port, "refused");
    if (c.ac)
        redisAsyncCommand(c.ac, NULL, NULL, "PING");
    uv_run(&c.loop, UV_RUN_DEFAULT);
    CHECK_INT(c.connected, -1);
    CHECK(c.ac == NULL);
    finish(&c);
}

int main(void)
{
    char host[128];
    int port;
    if (!redis_addr(host, &port)) {
        fprintf(stderr, "FUNNELD_REDIS_URL is not set (run under the ctest services fixture)\n");
        return 1;
    }
    test_pipelined(host, port);
    test_big_write(host, port);
    test_killed(host, port);
    test_refused();
    return fn_test_result("test_redis_loop");
}
