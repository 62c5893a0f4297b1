/*
 * evaluate.h — the periodic evaluation of every funnel (analytics/evaluate.c): snapshots and
 * bottleneck decisions (SPEC §4), one evaluation at a time per funnel, locked per tick so
 * that several daemons agree on who evaluates.
 *
 * It reads through the store (store.h), produces through the output (output.h), reads the
 * input's partition clocks (input.h) and judges with judge.h; the spine (core/daemon.c) and
 * the reload (core/reload.c, which restarts it on a new configuration) call it.
 */
#ifndef FUNNELD_EVALUATE_H
#define FUNNELD_EVALUATE_H

#include <stdbool.h>

#include "funneld/input.h"
#include "funneld/output.h"
#include "funneld/store.h"

typedef struct fn_eval_ctx fn_eval_ctx_t;

/* Creates the evaluation context on the host's config and log (host is copied), reading
 * through store, producing through out, its clock from input's partitions. NULL on OOM.
 * Freed by fn_eval_free. */
fn_eval_ctx_t *fn_eval_new(const fn_host_t *host, fn_store_t *store, fn_output_t *out,
                           fn_input_t *input);
/* Begins evaluating the funnels of the running config (each from no tick judged here). FN_ERR on
 * OOM. After a close it may start again (a reload does, with the new configuration). */
int fn_eval_start(fn_eval_ctx_t *v);
/* No evaluation begins any more (the daemon is stopping); those under way finish. */
void fn_eval_stop(fn_eval_ctx_t *v);
/* Forgets the funnels' evaluations (what one in progress holds is freed). Safe before or
 * after a start, and twice; call it only when fn_eval_settled, or at exit after the producer
 * and the store are gone. */
void fn_eval_close(fn_eval_ctx_t *v);
/* Closes v and frees it. NULL is fine. */
void fn_eval_free(fn_eval_ctx_t *v);

/* Called by the tick: starts the evaluations whose tick came. */
void fn_eval_tick(fn_eval_ctx_t *v);
/* True when no Redis command or analytics output of it is outstanding. */
bool fn_eval_idle(const fn_eval_ctx_t *v);
/* Idle, and no evaluation in progress or waiting for its announcements: the configuration
 * may be replaced. */
bool fn_eval_settled(const fn_eval_ctx_t *v);

#endif
