/*
 * redis_loop.c — hiredis's event hooks on the libuv loop (redis_loop.h).
 *
 * What is watched is derived, in watch(), from what hiredis wants and from whether writing
 * must wait for the socket: while connecting (hiredis learns the outcome when the socket
 * first reports writable) and after a write that left bytes behind (`stalled`). Otherwise a
 * queued write is done from the idle handle: libuv runs idle callbacks before it computes
 * how long to wait, and an active idle handle makes that wait zero, so the commands queued
 * by any callback of a loop turn leave in one write before the loop sleeps.
 */
#include "funneld/redis_loop.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct redis_loop {
    redisAsyncContext *ac; /* NULL once hiredis has let go (its cleanup hook) */
    uv_poll_t poll;
    uv_idle_t idle;
    int want;     /* UV_READABLE | UV_WRITABLE: what hiredis asked for */
    int watched;  /* what the poll handle watches now (0: stopped) */
    bool writing; /* inside hiredis's write: an addWrite now means bytes were left behind */
    bool stalled; /* a write left bytes behind: wait for the socket to be writable */
    int open;     /* handles not yet closed; the last close callback frees this */
} redis_loop_t;

static void on_poll(uv_poll_t *h, int status, int events);

static bool connected(const redis_loop_t *p)
{
    return (p->ac->c.flags & REDIS_CONNECTED) != 0;
}

/* Makes the poll handle watch what hiredis needs now, calling libuv only on a change. */
static void watch(redis_loop_t *p)
{
    int ev = p->want & UV_READABLE;
    if ((p->want & UV_WRITABLE) && (p->stalled || !connected(p)))
        ev |= UV_WRITABLE;
    if (ev == p->watched)
        return;
    p->watched = ev;
    if (ev)
        uv_poll_start(&p->poll, ev, on_poll);
    else
        uv_poll_stop(&p->poll);
}

/* hiredis writes what it can of its buffer; it calls del_write when all went, add_write
 * when some is left (and add_read either way). */
static void write_now(redis_loop_t *p)
{
    p->writing = true;
    redisAsyncHandleWrite(p->ac); /* may free ac: cleanup() then clears p->ac */
    p->writing = false;
}

static void on_idle(uv_idle_t *h)
{
    redis_loop_t *p = h->data;
    uv_idle_stop(&p->idle);
    if (p->ac && (p->want & UV_WRITABLE) && !p->stalled)
        write_now(p);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    redis_loop_t *p = h->data;
    if (!p->ac)
        return;
    if (status < 0) {
        /* libuv stopped watching (an error on the socket): let hiredis read the error and
         * disconnect, through the connect check while it is still connecting. */
        p->watched = 0;
        events = connected(p) ? UV_READABLE : UV_WRITABLE;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        write_now(p);
}

static void add_read(void *data)
{
    redis_loop_t *p = data;
    p->want |= UV_READABLE;
    watch(p);
}

static void del_read(void *data)
{
    redis_loop_t *p = data;
    p->want &= ~UV_READABLE;
    watch(p);
}

static void add_write(void *data)
{
    redis_loop_t *p = data;
    p->want |= UV_WRITABLE;
    if (p->writing)
        p->stalled = true;
    if (p->stalled || !connected(p))
        watch(p);
    else if (!uv_is_active((uv_handle_t *)&p->idle))
        uv_idle_start(&p->idle, on_idle);
}

static void del_write(void *data)
{
    redis_loop_t *p = data;
    p->want &= ~UV_WRITABLE;
    p->stalled = false;
    watch(p);
}

static void on_close(uv_handle_t *h)
{
    redis_loop_t *p = h->data;
    assert(p->open > 0);
    if (--p->open == 0)
        free(p);
}

static void cleanup(void *data)
{
    redis_loop_t *p = data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_close);
    uv_close((uv_handle_t *)&p->idle, on_close);
}

int fn_redis_loop_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    redis_loop_t *p = calloc(1, sizeof *p);
    if (!p)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p); /* nothing to close: the handle was not initialised */
        return REDIS_ERR;
    }
    uv_idle_init(loop, &p->idle); /* cannot fail */
    p->ac = ac;
    p->poll.data = p->idle.data = p;
    p->open = 2;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
