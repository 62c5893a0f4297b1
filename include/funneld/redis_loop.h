/*
 * redis_loop.h — an async hiredis connection driven by the libuv loop.
 *
 * hiredis asks its event library to watch reads and writes through five hooks. The adapter
 * hiredis ships for libuv answers each with uv_poll_start, which libuv carries out as a
 * removal of the socket from epoll at once and an addition before the next wait: a system
 * call each time a command is queued or a reply read (hiredis re-arms reading after each),
 * and another per loop turn. This one calls libuv only when what is watched changes, and
 * writes the queued commands from an idle handle, before the loop next waits, without first
 * waiting for the socket to be writable: one write for all the commands a loop turn queued.
 * The connect, and a write the kernel did not take whole, still wait for writability.
 *
 * Life: attach right after redisAsyncConnect, before anything is queued; hiredis detaches it
 * when it frees the context (its cleanup hook closes both handles; the adapter's memory goes
 * with the last close callback, so the loop must run once more before it is closed).
 */
#ifndef FUNNELD_REDIS_LOOP_H
#define FUNNELD_REDIS_LOOP_H

#include <hiredis/async.h>
#include <uv.h>

/* Drives ac from loop. REDIS_OK, or REDIS_ERR with nothing attached (ac's socket is already
 * watched by this loop, or no memory); the caller then frees ac. */
int fn_redis_loop_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
