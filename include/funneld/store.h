/*
 * store.h — the store: the one owner of funneld's Redis connection(s).
 *
 * Steps go through the per-lead queue (lead_queue.h) and out on the connection, pipelined;
 * their replies come back to the spine through the hooks given at start. Timers and
 * evaluation send their own commands through fn_store_call/fn_store_eval and learn of a
 * lost connection from a NULL reply; nobody but store.c touches hiredis's async API. On a
 * Redis Cluster (redis.cluster) there is one connection per master behind the same calls:
 * every call names the key it touches, and its slot picks the connection.
 *
 * `redisReply` (hiredis/hiredis.h; read.h in hiredis 1.x) is the one hiredis type that
 * crosses this seam: replies are read by their callers, valid only during the callback.
 */
#ifndef FUNNELD_STORE_H
#define FUNNELD_STORE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "funneld/host.h"
#include "funneld/status.h"

struct fn_msg;

typedef struct fn_store fn_store_t;

/* The scripts the store loads on every connection; callers name one, never its digest. */
typedef enum {
    FN_SCRIPT_STEP = 0,
    FN_SCRIPT_FIRE,
    FN_SCRIPT_READ,
    FN_SCRIPT_MERGE,
    FN_SCRIPT_COUNT
} fn_script_t;

/* A command's completion: reply is NULL when the connection went away (or the store closed)
 * before it answered. */
typedef void (*fn_store_cb)(void *priv, const redisReply *reply);

/* What the store tells its owner (registered at start; priv is passed back). */
typedef struct fn_store_hooks {
    void *priv;
    /* A step's reply (not an error): m is done with the store until fn_store_release. */
    void (*step_reply)(void *priv, struct fn_msg *m, const redisReply *reply);
    /* m's step failed for good (reason says why; the owner logs it): the store does not
     * retry it, though the owner may send it again (fn_store_resend_later). */
    void (*step_failed)(void *priv, struct fn_msg *m, const char *reason);
    /* The connection is ready again (connected, scripts loaded): after every (re)connect. */
    void (*ready)(void *priv);
    /* The config to build m's step with, now: the owner may pin it to m (a reload must not
     * free it while m's reply is outstanding). Called for every send, retries included. */
    const fn_config_t *(*step_config)(void *priv, struct fn_msg *m);
    /* Writes the RESP command of m's merge step (m->phase is not FN_PHASE_STEP) into out;
     * token names this process and message. FN_OK, or FN_ERR (out of memory). */
    int (*merge_build)(void *priv, struct fn_msg *m, const char *sha, const char *token,
                       fn_buf_t *out);
    /* True when nothing is left for Redis to do (the daemon is stopping with nothing in
     * flight): the store then stops reconnecting. May be NULL (never). */
    bool (*finished)(void *priv);
} fn_store_hooks_t;

/* Creates a store on the host's loop, config, log and counters (host is copied). NULL on
 * OOM. Freed by fn_store_free. */
fn_store_t *fn_store_new(const fn_host_t *host);
/* Sizes the lead queue and begins connecting (with retries: an unreachable Redis is not an
 * error here). FN_OK or FN_ERR. */
int fn_store_start(fn_store_t *s, const fn_store_hooks_t *hooks);
/* Drops the connection at once (outstanding callbacks get NULL) and stops the timer; safe
 * after a partial or failed start, and twice. */
void fn_store_close(fn_store_t *s);
/* Frees s (closing it first if needed). NULL is fine. */
void fn_store_free(fn_store_t *s);

/* The random id of this process: with a message number it names a step's pending result;
 * evaluation locks carry it too. */
const char *fn_store_instance(const fn_store_t *s);

/* ---- steps ---- */
/* Queues m's step behind earlier events of the same lead, or sends it. */
void fn_store_submit(fn_store_t *s, struct fn_msg *m);
/* m's step is finished: lets the lead's next event go. */
void fn_store_release(fn_store_t *s, struct fn_msg *m);
/* Sends m again, to the node of m->lead_hash: its next merge step (m->phase, merge_step.h)
 * or its step for the lead it was redirected to. m stays at the head of its lead's queue. */
void fn_store_resend(fn_store_t *s, struct fn_msg *m);
/* The same after a pause (a merge the event waits for is still pending). */
void fn_store_resend_later(fn_store_t *s, struct fn_msg *m);
/* A deep copy of a reply that freeReplyObject frees; NULL on OOM. */
redisReply *fn_store_reply_copy(const redisReply *r);
/* Clears m's stored result now that its outputs are delivered (fire and forget). */
void fn_store_clear_pending(fn_store_t *s, struct fn_msg *m);
/* Called by the tick: pings an idle connection, drops one whose outstanding commands got no
 * reply for long, gives up a connection attempt that never became ready. */
void fn_store_watchdog(fn_store_t *s);
/* True for a Redis error that passes (NOSCRIPT or the step's function not found, LOADING,
 * OOM, a failover, auth being fixed). */
bool fn_store_transient(const char *err);

/* ---- generic commands (timers, evaluation) ---- */
/* Connected, authenticated and scripts loaded. */
bool fn_store_ready(const fn_store_t *s);
/* A connection exists (it may still be setting up): commands may be queued on it. */
bool fn_store_connected(const fn_store_t *s);
/* Sends argv (argvlen NULL: NUL-terminated strings) touching `key`; cb (may be NULL: fire
 * and forget) gets the reply. FN_ERR when there is no connection: cb is then never called. */
int fn_store_call(fn_store_t *s, const char *key, fn_store_cb cb, void *priv, int argc,
                  const char *const *argv, const size_t *argvlen);
/* The same with a printf-like hiredis format (%s, %b, %d...). */
int fn_store_callf(fn_store_t *s, const char *key, fn_store_cb cb, void *priv, const char *fmt,
                   ...);
/* Runs loaded script `script`: argv is what follows EVALSHA <digest> (numkeys, keys, args);
 * key is its first key. A NOSCRIPT reply reaches cb like any error; the caller then asks for
 * fn_store_reconnect, which loads the scripts again. */
int fn_store_eval(fn_store_t *s, fn_script_t script, const char *key, fn_store_cb cb, void *priv,
                  int argc, const char *const *argv, const size_t *argvlen);
/* Drops the connection so that a new one is made (and the scripts loaded again), e.g. after
 * NOSCRIPT; why is logged at debug level. Outstanding commands get NULL. */
void fn_store_reconnect(fn_store_t *s, const char *why);

/* ---- status (http, metrics) ---- */
/* Redis is usable: the funneld_redis_up gauge and /readyz. */
bool fn_store_up(const fn_store_t *s);
/* Connections made since start (each one offered the epoch marker). */
uint64_t fn_store_connects(const fn_store_t *s);
/* Why Redis is not usable (a seed that is no cluster node, uncovered slots, a master not
 * reachable ...), for /readyz; "" when it is. Valid until the store next runs. */
const char *fn_store_detail(fn_store_t *s);
/* The nodes the store keeps a connection to: writes up to max into out, returns how many. */
size_t fn_store_nodes(const fn_store_t *s, fn_redis_node_t *out, size_t max);
/* Steps waiting for a cluster node to go to (the map not known, a slot uncovered, a
 * redirect being followed). */
size_t fn_store_limbo(const fn_store_t *s);

#endif
