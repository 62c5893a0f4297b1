/*
 * http.c — the daemon's HTTP endpoint (SPEC §7, §12): GET /metrics, /healthz, /readyz on
 * http.listen, and the routes other modules register (the live view's page and API).
 *
 * It must never hurt the event path, whatever a client does: at most MAX_CONNS connections
 * are open, a request must fit in REQ_MAX bytes (else 431) and arrive within
 * FN_HTTP_TIMEOUT_MS (else the connection is dropped), one request per connection (the
 * answer closes it), and reading stops as soon as the request's head is complete. Memory per
 * connection is therefore bounded, and a slow or hostile client only ever costs one small
 * buffer and a timer.
 *
 * Nor may clients that hold connections without finishing a request lock out the probes
 * (/healthz, /readyz): an orchestrator would restart a healthy daemon. So a connection that
 * arrives at the limit evicts the oldest one whose request is still unanswered (the daemon
 * keeps those, oldest first, in h->oldest..newest), and is only refused when every
 * open connection is already sending its answer, which takes at most FN_HTTP_TIMEOUT_MS.
 * A probe sends its request as soon as it connects, so to starve it a client must open
 * MAX_CONNS connections in the moment before that request is read, not merely hold them.
 *
 * A server-sent event stream leaves those slots for a budget of its own
 * (FN_HTTP_MAX_STREAMS), and a client that does not read its stream is cut off once
 * FN_HTTP_STREAM_BUF bytes wait for it: a browser reconnects and resumes (Last-Event-ID),
 * and the daemon never holds more than the budget times the limit for listeners.
 *
 * A route's answer may come later (it reads Redis): the connection is then kept until the
 * owner responds, even when its client went away or its timeout closed it, so a request is
 * always valid until fn_http_respond. An answer that has not come within FN_HTTP_TIMEOUT_MS
 * is given here as 503 (Retry-After), not a silent close.
 *
 * HEAD gets the headers GET would get, Content-Length included, and no body (RFC 9110 9.3.2).
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/http.h"

#define MAX_CONNS 64
#define REQ_MAX 8192
#define PATH_MAX_LEN 2048
#define TOKEN_MAX 512

typedef struct http_route {
    char path[64];
    fn_http_handler *cb;
    void *data;
} http_route_t;

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
    struct http_conn *streams;         /* open event streams, through next_stream */
    size_t n_streams;
    http_route_t routes[FN_HTTP_MAX_ROUTES];
    size_t n_routes;
    char token[TOKEN_MAX + 1]; /* "" when none */
};

/* A connection; to a route's owner, the request (fn_http_req_t) or the stream on it. */
struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    fn_http_t *h;
    fn_buf_t out;
    size_t len;
    int open_handles;
    bool answered;
    bool counted;    /* one of h->conns: admitted and not closing */
    bool head_only;  /* a HEAD request: the answer has no body */
    bool with_owner; /* handed to a route's owner, which has not responded yet: kept */
    bool authorised; /* it gave the token */
    bool loopback;   /* its peer is on loopback */
    /* a stream: in h->streams while open; closed runs once when it ends */
    bool stream;
    fn_http_stream_closed *closed;
    void *closed_data;
    struct http_conn *next_stream;
    /* among the unanswered connections (h->oldest..newest), while unanswered */
    struct http_conn *older, *newer;
    char path[PATH_MAX_LEN];
    char req[REQ_MAX];
};
typedef struct http_conn http_conn_t;

/* A queued write of a stream, with its bytes. */
typedef struct stream_write {
    uv_write_t w;
    http_conn_t *c;
    char data[];
} stream_write_t;

static void on_closed(uv_handle_t *handle)
{
    http_conn_t *c = handle->data;
    if (--c->open_handles == 0 && !c->with_owner) {
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

static void stream_remove(http_conn_t *c)
{
    fn_http_t *h = c->h;
    for (http_conn_t **p = &h->streams; *p; p = &(*p)->next_stream)
        if (*p == c) {
            *p = c->next_stream;
            h->n_streams--;
            return;
        }
}

static void conn_close(http_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    unanswered_remove(c);
    if (c->counted) {
        c->counted = false;
        c->h->conns--;
    }
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
    if (c->stream) {
        stream_remove(c);
        fn_http_stream_closed *closed = c->closed;
        c->closed = NULL;
        if (closed)
            closed(c->closed_data, c);
    }
}

static void on_written(uv_write_t *w, int status)
{
    conn_close(w->data);
}

static void answer(http_conn_t *c, int code, const char *reason, const char *type,
                   const char *extra, const char *body, size_t len)
{
    unanswered_remove(c);
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    fn_buf_t head = {0};
    if (fn_buf_appendf(&head,
                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\nCache-Control: no-store\r\n"
                       "X-Content-Type-Options: nosniff\r\n%s\r\n",
                       code, reason, type, len, extra ? extra : "") ||
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
    answer(c, code, reason, "text/plain; charset=utf-8", NULL, text, strlen(text));
}

static const char *reason_of(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 503:
        return "Service Unavailable";
    default:
        return code >= 500 ? "Internal Server Error" : "Error";
    }
}

const char *fn_http_req_header(const fn_http_req_t *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = strchr(r->req, '\n');
    while (p && p[1] && p[1] != '\r' && p[1] != '\n') {
        const char *line = p + 1;
        p = strchr(line, '\n');
        if (strncasecmp(line, name, n) != 0 || line[n] != ':')
            continue;
        const char *v = line + n + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t len = strcspn(v, "\r\n");
        while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        if (cap == 0)
            return NULL;
        if (len >= cap)
            len = cap - 1;
        memcpy(out, v, len);
        out[len] = '\0';
        return out;
    }
    return NULL;
}

/* The request carries "Authorization: Bearer <h->token>"; compared in constant time for a
 * token of a given length, so the answer's timing does not tell how much of it matched. */
static bool authorised(const http_conn_t *c)
{
    char v[TOKEN_MAX + 16];
    if (!fn_http_req_header(c, "Authorization", v, sizeof v) || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    const char *given = v + 7, *want = c->h->token;
    size_t n = strlen(want);
    if (strlen(given) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(given[i] ^ want[i]);
    return diff == 0;
}

const char *fn_http_req_path(const fn_http_req_t *r)
{
    return r->path;
}

/* Without a token, a loopback peer is trusted only when it also asked for a loopback name
 * and came through no proxy: a page that rebinds its own domain to 127.0.0.1 sends that
 * domain as Host, and a local reverse proxy makes every client look local (it adds
 * Forwarded or X-Forwarded-For, or asks for the public name). */
static bool local_request(const http_conn_t *r)
{
    char host[300], skip[8];
    if (fn_http_req_header(r, "Forwarded", skip, sizeof skip) ||
        fn_http_req_header(r, "X-Forwarded-For", skip, sizeof skip))
        return false;
    if (!fn_http_req_header(r, "Host", host, sizeof host))
        return true; /* no browser leaves it out */
    char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    if (host[0] == '[') {
        if (!end)
            return false;
        end[1] = '\0';
    } else if (end) {
        *end = '\0';
    }
    struct in_addr v4; /* a literal address: "127.evil.example" is a name anyone can own */
    return strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
           (uv_inet_pton(AF_INET, host, &v4) == 0 && (ntohl(v4.s_addr) >> 24) == 127);
}

bool fn_http_req_trusted(const fn_http_req_t *r)
{
    return r->h->token[0] ? r->authorised : r->loopback && local_request(r);
}

void fn_http_respond(fn_http_req_t *c, int code, const char *type, const char *body, size_t len)
{
    assert(c->with_owner && !c->stream);
    c->with_owner = false;
    /* answered 503 by its timeout meanwhile (on_timeout), or closed: this answer is dropped */
    if (c->answered || uv_is_closing((uv_handle_t *)&c->tcp)) {
        if (c->open_handles == 0) { /* both closed while its owner worked: ours to free */
            fn_buf_free(&c->out);
            free(c);
        }
        return;
    }
    answer(c, code, reason_of(code), type, NULL, body, len);
}

static void on_alloc_discard(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

fn_http_stream_t *fn_http_stream_open(fn_http_req_t *c, fn_http_stream_closed *closed, void *data)
{
    fn_http_t *h = c->h;
    if (c->head_only || h->n_streams >= FN_HTTP_MAX_STREAMS || c->answered ||
        uv_is_closing((uv_handle_t *)&c->tcp)) {
        const char *why = c->head_only ? "" : "too many event streams open\n";
        fn_http_respond(c, c->head_only ? 200 : 503,
                        c->head_only ? "text/event-stream" : "text/plain; charset=utf-8", why,
                        strlen(why));
        return NULL;
    }
    c->with_owner = false;
    unanswered_remove(c);
    c->answered = true;
    if (c->counted) { /* a stream leaves its connection slot to requests */
        c->counted = false;
        h->conns--;
    }
    uv_timer_stop(&c->timer);
    /* The kernel's share of an unread stream is bounded too (it would otherwise grow its
     * send buffer to megabytes before the budget below is ever reached). */
    int sndbuf = FN_HTTP_STREAM_BUF / 4;
    (void)uv_send_buffer_size((uv_handle_t *)&c->tcp, &sndbuf);
    /* read again, only to learn when the client leaves */
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc_discard, on_read);
    c->stream = true;
    c->next_stream = h->streams;
    h->streams = c;
    h->n_streams++;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-store\r\nConnection: keep-alive\r\n"
                               "X-Content-Type-Options: nosniff\r\n\r\n";
    /* the client may already be gone: the send then closes the stream, before its owner
     * knows of it (closed is set after) */
    if (fn_http_stream_send(c, head, sizeof head - 1))
        return NULL;
    c->closed = closed;
    c->closed_data = data;
    return c;
}

static void on_stream_written(uv_write_t *w, int status)
{
    stream_write_t *sw = (stream_write_t *)w;
    http_conn_t *c = sw->c;
    free(sw);
    if (status < 0)
        conn_close(c);
}

int fn_http_stream_send(fn_http_stream_t *c, const char *p, size_t len)
{
    assert(c->stream);
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return FN_ERR;
    /* what waits already, not this message: any one message gets through to a reader */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > FN_HTTP_STREAM_BUF) {
        conn_close(c);
        return FN_HTTP_TOO_SLOW;
    }
    stream_write_t *sw = malloc(sizeof *sw + len);
    if (!sw) {
        conn_close(c);
        return FN_ERR;
    }
    sw->c = c;
    memcpy(sw->data, p, len);
    uv_buf_t b = uv_buf_init(sw->data, (unsigned)len);
    if (uv_write(&sw->w, (uv_stream_t *)&c->tcp, &b, 1, on_stream_written) != 0) {
        free(sw);
        conn_close(c);
        return FN_ERR;
    }
    return FN_OK;
}

void fn_http_stream_close(fn_http_stream_t *c)
{
    conn_close(c);
}

size_t fn_http_streams(const fn_http_t *h)
{
    return h->n_streams;
}

static bool public_path(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0;
}

static void route(http_conn_t *c)
{
    char method[8] = "";
    int n = 0;
    if (sscanf(c->req, "%7s %n", method, &n) != 1 || n == 0) {
        answer_text(c, 400, "Bad Request", "bad request\n");
        return;
    }
    size_t plen = strcspn(c->req + n, " \r\n");
    if (plen == 0 || plen >= sizeof c->path || strncmp(c->req + n + plen, " HTTP/1.", 8) != 0) {
        answer_text(c, 400, "Bad Request", "bad request\n");
        return;
    }
    memcpy(c->path, c->req + n, plen);
    c->path[plen] = '\0';
    c->path[strcspn(c->path, "?#")] = '\0';
    const char *path = c->path;
    c->head_only = strcmp(method, "HEAD") == 0;
    fn_http_t *h = c->h;
    c->authorised = h->token[0] && authorised(c);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        answer_text(c, 405, "Method Not Allowed", "only GET\n");
        return;
    }
    if (h->token[0] && !c->authorised && !public_path(path)) {
        static const char text[] = "a token is needed: Authorization: Bearer TOKEN\n";
        answer(c, 401, "Unauthorized", "text/plain; charset=utf-8",
               "WWW-Authenticate: Bearer realm=\"funneld\"\r\n", text, sizeof text - 1);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        answer_text(c, 200, "OK", "ok\n");
    } else if (strcmp(path, "/readyz") == 0) {
        char why[512];
        fn_status_t st = {0};
        h->status(h->status_data, &st);
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
        h->status(h->status_data, &st);
        if (fn_metrics_render(&st, &body))
            answer_text(c, 500, "Internal Server Error", "out of memory\n");
        else
            answer(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", NULL, body.data,
                   body.len);
        fn_buf_free(&body);
    } else {
        for (size_t i = 0; i < h->n_routes; i++) {
            const http_route_t *rt = &h->routes[i];
            size_t rl = strlen(rt->path);
            bool prefix = rl > 1 && rt->path[rl - 1] == '/';
            if (prefix ? strncmp(path, rt->path, rl) == 0 : strcmp(path, rt->path) == 0) {
                c->with_owner = true;
                uv_read_stop((uv_stream_t *)&c->tcp); /* the request is whole: kept as read */
                rt->cb(rt->data, c);
                return;
            }
        }
        answer_text(c, 404, "Not Found", "try /, /metrics, /healthz or /readyz\n");
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = handle->data;
    /* Never more than the room left: the request buffer is the whole budget. */
    *buf = uv_buf_init(c->req + c->len, (unsigned)(REQ_MAX - 1 - c->len));
}

/* A stream's reads land after its request (kept whole, still terminated) and are dropped. */
static void on_alloc_discard(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = handle->data;
    *buf = uv_buf_init(c->req + c->len + 1, (unsigned)(REQ_MAX - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    http_conn_t *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->answered)
        return; /* a stream's client only ever closes; what it sends is dropped */
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        route(c);
    else if (c->len >= REQ_MAX - 1)
        answer_text(c, 431, "Request Header Fields Too Large", "request too large\n");
}

/* A request not whole in time is dropped. One whole and handed to its route's owner, which
 * has not answered in time (it reads Redis, which may be slow), is answered 503 here so its
 * client learns why and when to ask again; the owner's answer is dropped when it comes
 * (fn_http_respond). The 503's own write is bounded by the same timeout. */
static void on_timeout(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    if (c->with_owner && !c->answered) {
        static const char text[] = "the answer did not come in time; try again\n";
        answer(c, 503, "Service Unavailable", "text/plain; charset=utf-8", "Retry-After: 1\r\n",
               text, sizeof text - 1);
        if (!uv_is_closing((uv_handle_t *)&c->timer))
            uv_timer_start(&c->timer, on_timeout, FN_HTTP_TIMEOUT_MS, 0);
        return;
    }
    conn_close(c);
}

static bool peer_loopback(http_conn_t *c)
{
    struct sockaddr_storage peer;
    int len = sizeof peer;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) != 0)
        return false;
    if (peer.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr) >> 24) == 127;
    if (peer.ss_family != AF_INET6)
        return false;
    const unsigned char *a = ((struct sockaddr_in6 *)&peer)->sin6_addr.s6_addr;
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char one[16] = {[15] = 1};
    return memcmp(a, one, 16) == 0 || (memcmp(a, v4mapped, 12) == 0 && a[12] == 127);
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
    c->loopback = peer_loopback(c);
    c->counted = true;
    h->conns++;
    unanswered_add(c);
    uv_timer_start(&c->timer, on_timeout, FN_HTTP_TIMEOUT_MS, 0);
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

int fn_http_route(fn_http_t *h, const char *path, fn_http_handler *cb, void *data)
{
    if (h->n_routes >= FN_HTTP_MAX_ROUTES || strlen(path) >= sizeof h->routes[0].path)
        return FN_ERR;
    http_route_t *r = &h->routes[h->n_routes++];
    snprintf(r->path, sizeof r->path, "%s", path);
    r->cb = cb;
    r->data = data;
    return FN_OK;
}

int fn_http_start(fn_http_t *h, const char *listen, const char *token)
{
    snprintf(h->token, sizeof h->token, "%s", token ? token : "");
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
    /* the address last: scripts read the port from the end of this line */
    fn_log(h->log, FN_LOG_INFO, "http", "serving /metrics, /healthz, /readyz%s%s on %s:%d",
           h->n_routes ? " and the live view at /" : "",
           h->token[0] ? " (all but /, /healthz and /readyz need the token)" : "", ip, bport);
    return FN_OK;
}

void fn_http_close(fn_http_t *h)
{
    if (!h)
        return;
    while (h->streams) /* each close takes it off the list */
        conn_close(h->streams);
    if (h->started && !uv_is_closing((uv_handle_t *)&h->server))
        uv_close((uv_handle_t *)&h->server, NULL);
}

void fn_http_free(fn_http_t *h)
{
    free(h);
}
