/*
 * http.h — the daemon's HTTP endpoint (http/http.c): GET /metrics, /healthz and /readyz on the
 * daemon's loop, and the paths other modules serve through routes (the live view: live.h).
 * It reads the daemon through the status view (status.h) only, and knows no route's owner:
 * a request carries its own answer (fn_http_respond), given now or later.
 */
#ifndef FUNNELD_HTTP_H
#define FUNNELD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "funneld/log.h"
#include "funneld/status.h"

typedef struct fn_http fn_http_t;
typedef struct http_conn fn_http_req_t;
typedef struct http_conn fn_http_stream_t;

/* The most server-sent event streams open at once; more are answered 503. */
#define FN_HTTP_MAX_STREAMS 32
/* The most bytes a stream's client may leave unread (beyond the kernel's buffer) before a
 * send: more, and the stream is closed. One message may take it past this once. */
#define FN_HTTP_STREAM_BUF (256 * 1024)
#define FN_HTTP_MAX_ROUTES 8
/* A request's head must arrive, and its answer be given, within this many ms of its
 * connection; an answer its route's owner has not given by then is a 503 (Retry-After). */
#define FN_HTTP_TIMEOUT_MS 5000

/* A route's handler: answer req with fn_http_respond (now or later) or fn_http_stream_open. */
typedef void fn_http_handler(void *data, fn_http_req_t *req);
/* A stream ended (client gone, too slow, or closed by either side); s is invalid after it. */
typedef void fn_http_stream_closed(void *data, fn_http_stream_t *s);

/* The endpoint on loop, not started; status(data, view) fills the view for each request.
 * log is borrowed. NULL when out of memory. Freed by fn_http_free. */
fn_http_t *fn_http_new(uv_loop_t *loop, fn_log_t *log, fn_status_cb *status, void *data);
/* Paths equal to path, or beginning with it when it ends in '/', go to cb(data, req). Routes
 * are registered before the start. FN_ERR when FN_HTTP_MAX_ROUTES are taken. */
int fn_http_route(fn_http_t *h, const char *path, fn_http_handler *cb, void *data);
/* Listens on listen ("host:port", "[v6]:port"; port 0 picks one, logged). token (copied;
 * NULL or "" for none): every path but /, /healthz and /readyz then needs "Authorization:
 * Bearer TOKEN". FN_ERR (logged) leaves what was set up for fn_http_close. */
int fn_http_start(fn_http_t *h, const char *listen, const char *token);
/* Stops listening and ends every stream; connections still open finish (each within its
 * timeout). Safe after a partial or failed start, without one, and twice. */
void fn_http_close(fn_http_t *h);
/* Frees h (NULL is fine); fn_http_close must have run and the loop closed its handles. */
void fn_http_free(fn_http_t *h);
/* Open streams now (a gauge for /metrics). */
size_t fn_http_streams(const fn_http_t *h);

/* The request's path, percent-encoded as sent, without its query. */
const char *fn_http_req_path(const fn_http_req_t *r);
/* May the client see lead ids: it gave the token, or no token is set and it is on loopback,
 * asked for a loopback name (Host) and came through no proxy (Forwarded, X-Forwarded-For). */
bool fn_http_req_trusted(const fn_http_req_t *r);
/* The value of header name (case-insensitive) copied into out (cap bytes, truncated), or
 * NULL when the request has none. */
const char *fn_http_req_header(const fn_http_req_t *r, const char *name, char *out, size_t cap);
/* Answers r (body copied) and lets go of it: r is invalid after the call. A client that went
 * away meanwhile gets nothing, and one connected more than FN_HTTP_TIMEOUT_MS before was
 * answered 503 (Retry-After) by the endpoint already; the call still lets go. Call exactly
 * once per request that is not turned into a stream. */
void fn_http_respond(fn_http_req_t *r, int code, const char *type, const char *body, size_t len);

/* Turns r into a server-sent event stream (200, text/event-stream, kept open); closed(data,
 * s) is called once when it ends. NULL, with r invalid after the call and closed never
 * called, when FN_HTTP_MAX_STREAMS are open (r is answered 503), for HEAD (answered 200),
 * or when the client is already gone (or was answered 503 at the timeout). */
fn_http_stream_t *fn_http_stream_open(fn_http_req_t *r, fn_http_stream_closed *closed, void *data);
/* Queues len bytes for s's client. FN_HTTP_TOO_SLOW when more than FN_HTTP_STREAM_BUF bytes
 * already wait for it, FN_ERR when the stream is closing, out of memory or the write fails:
 * either way s is closed (its closed callback runs before this returns). */
int fn_http_stream_send(fn_http_stream_t *s, const char *p, size_t len);
#define FN_HTTP_TOO_SLOW (-2)
/* Ends s; its closed callback runs before this returns. */
void fn_http_stream_close(fn_http_stream_t *s);

#endif
