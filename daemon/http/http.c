/*
 * http.c — the operations endpoint on the daemon's loop (SPEC §7): GET /metrics, /healthz,
 * /readyz on http.listen.
 *
 * It must never hurt the event path, whatever a client does: at most MAX_CONNS connections
 * are open, a request must fit in REQ_MAX bytes (else 431) and arrive within TIMEOUT_MS (else
 * the connection is dropped), one request per connection (the answer closes it), and reading
 * stops as soon as the request's head is complete. Memory per connection is therefore
 * bounded, and a slow or hostile client only ever costs one small buffer and a timer.
 *
 * Nor may clients that hold connections without finishing a request lock out the probes
 * (/healthz, /readyz): an orchestrator would restart a healthy daemon. So a connection that
 * arrives at the limit evicts the oldest one whose request is still unanswered (the daemon
 * keeps those, oldest first, in h->oldest..newest), and is only refused when every
 * open connection is already sending its answer, which takes at most TIMEOUT_MS. A probe
 * sends its request as soon as it connects, so to starve it a client must open MAX_CONNS
 * connections in the moment before that request is read, not merely hold them.
 *
 * HEAD gets the headers GET would get, Content-Length included, and no body (RFC 9110 9.3.2).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/http.h"

#define MAX_CONNS 64
#define REQ_MAX 8192
#define TIMEOUT_MS 5000

/* The endpoint's context (http.h). */
struct fn_http {
    uv_loop_t *loop;
    fn_log_t *log;
    fn_status_cb *status; /* fills the view a request reads */
    void *status_data;
    uv_tcp_t server;
    bool started;                      /* server initialised: close must close it */
    size_t conns;                      /* open connections, at most MAX_CONNS */
    struct http_conn *oldest, *newest; /* those not answered yet, by age */
};

typedef struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    fn_http_t *h;
    fn_buf_t out;
    size_t len;
    int open_handles;
    bool answered;
    bool counted;   /* one of h->conns: admitted and not closing */
    bool head_only; /* a HEAD request: the answer has no body */
    /* among the unanswered connections (h->oldest..newest), while unanswered */
    struct http_conn *older, *newer;
    char req[REQ_MAX];
} http_conn_t;

static void on_closed(uv_handle_t *handle)
{
    http_conn_t *c = handle->data;
    if (--c->open_handles == 0) {
        fn_buf_free(&c->out);
        free(c);
    }
}

static void unanswered_add(http_conn_t *c)
{
    fn_http_t *h = c->h;
    c->older = h->newest;
    c->newer = NULL;
    if (h->newest)
        h->newest->newer = c;
    else
        h->oldest = c;
    h->newest = c;
}

/* c is answered or closing: it can no longer be evicted. */
static void unanswered_remove(http_conn_t *c)
{
    fn_http_t *h = c->h;
    if (!c->counted || c->answered)
        return; /* never added, or already removed */
    if (c->older)
        c->older->newer = c->newer;
    else
        h->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        h->newest = c->older;
    c->older = c->newer = NULL;
}

static void conn_close(http_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        unanswered_remove(c);
        if (c->counted) {
            c->counted = false;
            c->h->conns--;
        }
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, on_closed);
    }
}

static void on_written(uv_write_t *w, int status)
{
    conn_close(w->data);
}

static void answer(http_conn_t *c, int code, const char *reason, const char *type, const char *body,
                   size_t len)
{
    unanswered_remove(c);
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    fn_buf_t head = {0};
    if (fn_buf_appendf(&head,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\nCache-Control: no-store\r\n\r\n",
                       code, reason, type, len) ||
        (!c->head_only && fn_buf_append(&head, body, len))) {
        fn_buf_free(&head);
        conn_close(c);
        return;
    }
    fn_buf_free(&c->out);
    c->out = head;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void answer_text(http_conn_t *c, int code, const char *reason, const char *text)
{
    answer(c, code, reason, "text/plain; charset=utf-8", text, strlen(text));
}

static void route(http_conn_t *c)
{
    char method[8] = "", path[64] = "";
    if (sscanf(c->req, "%7s %63s HTTP/1.", method, path) != 2) {
        answer_text(c, 400, "Bad Request", "bad request\n");
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    c->head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        answer_text(c, 405, "Method Not Allowed", "only GET\n");
    } else if (strcmp(path, "/healthz") == 0) {
        answer_text(c, 200, "OK", "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        char why[512];
        fn_status_t st = {0};
        c->h->status(c->h->status_data, &st);
        bool ready = fn_status_ready(&st);
        bool detail = !st.redis_up && st.redis_detail && st.redis_detail[0];
        snprintf(why, sizeof why, "%s: partitions %s, redis %s%s%.330s%s, kafka %s%s\n",
                 ready ? "ready" : "not ready", st.joined ? "assigned" : "not yet",
                 st.redis_up ? "up" : "down", detail ? " (" : "", detail ? st.redis_detail : "",
                 detail ? ")" : "", st.kafka_up ? "up" : "down", st.stopping ? ", stopping" : "");
        answer_text(c, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", why);
    } else if (strcmp(path, "/metrics") == 0) {
        fn_buf_t body = {0};
        fn_status_t st = {0};
        c->h->status(c->h->status_data, &st);
        if (fn_metrics_render(&st, &body))
            answer_text(c, 500, "Internal Server Error", "out of memory\n");
        else
            answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body.data, body.len);
        fn_buf_free(&body);
    } else {
        answer_text(c, 404, "Not Found", "try /metrics, /healthz or /readyz\n");
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = handle->data;
    /* Never more than the room left: the request buffer is the whole budget. */
    *buf = uv_buf_init(c->req + c->len, (unsigned)(REQ_MAX - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_conn_t *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->answered)
        return;
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        route(c);
    else if (c->len >= REQ_MAX - 1)
        answer_text(c, 431, "Request Header Fields Too Large", "request too large\n");
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    fn_http_t *h = server->data;
    if (status < 0)
        return;
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (h->conns >= MAX_CONNS) {
        if (!h->oldest) {
            conn_close(c); /* every slot is sending its answer: closed at once, nothing read */
            return;
        }
        conn_close(h->oldest);
    }
    assert(h->conns < MAX_CONNS);
    c->counted = true;
    h->conns++;
    unanswered_add(c);
    uv_timer_start(&c->timer, on_timeout, TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

fn_http_t *fn_http_new(uv_loop_t *loop, fn_log_t *log, fn_status_cb *status, void *data)
{
    fn_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->loop = loop;
    h->log = log;
    h->status = status;
    h->status_data = data;
    return h;
}

int fn_http_start(fn_http_t *h, const char *listen)
{
    const char *colon = strrchr(listen, ':');
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    /* "[::1]:9464" */
    if (host[0] == '[') {
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = '\0';
    }
    int port = atoi(colon + 1);
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        fn_log(h->log, FN_LOG_ERROR, "http", "http.listen: %s is not an IP address", host);
        return FN_ERR;
    }
    uv_tcp_init(h->loop, &h->server);
    h->server.data = h;
    h->started = true;
    int rc = uv_tcp_bind(&h->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->server, 128, on_connection);
    if (rc != 0) {
        fn_log(h->log, FN_LOG_ERROR, "http", "http.listen %s: %s", listen, uv_strerror(rc));
        return FN_ERR;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    char ip[64] = "?";
    int bport = port;
    if (uv_tcp_getsockname(&h->server, (struct sockaddr *)&bound, &blen) == 0) {
        if (bound.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
            bport = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
            bport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        }
    }
    /* port 0 picks a free one; the log says which */
    fn_log(h->log, FN_LOG_INFO, "http", "serving /metrics, /healthz, /readyz on %s:%d", ip, bport);
    return FN_OK;
}

void fn_http_close(fn_http_t *h)
{
    if (h && h->started && !uv_is_closing((uv_handle_t *)&h->server))
        uv_close((uv_handle_t *)&h->server, NULL);
}

void fn_http_free(fn_http_t *h)
{
    free(h);
}
