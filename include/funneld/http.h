/*
 * http.h — the operations endpoint (http/http.c): GET /metrics, /healthz, /readyz on the
 * daemon's loop. It reads the daemon through the status view (status.h) only.
 */
#ifndef FUNNELD_HTTP_H
#define FUNNELD_HTTP_H

#include <uv.h>

#include "funneld/log.h"
#include "funneld/status.h"

typedef struct fn_http fn_http_t;

/* The endpoint on loop, not started; status(data, view) fills the view for each request.
 * log is borrowed. NULL when out of memory. Freed by fn_http_free. */
fn_http_t *fn_http_new(uv_loop_t *loop, fn_log_t *log, fn_status_cb *status, void *data);
/* Listens on listen ("host:port", "[v6]:port"; port 0 picks one, logged). FN_ERR (logged)
 * leaves what was set up for fn_http_close. */
int fn_http_start(fn_http_t *h, const char *listen);
/* Stops listening; connections still open finish (each within its timeout). Safe after a
 * partial or failed start, without one, and twice. */
void fn_http_close(fn_http_t *h);
/* Frees h (NULL is fine); fn_http_close must have run and the loop closed its handles. */
void fn_http_free(fn_http_t *h);

#endif
