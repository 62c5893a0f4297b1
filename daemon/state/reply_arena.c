/* reply_arena.c — hiredis replies built in one arena per reply (see reply_arena.h). */
#include "funneld/reply_arena.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if HIREDIS_MAJOR == 0

/* A block after the first, when a reply outgrows it; newest first. */
typedef struct chunk {
    struct chunk *next;
} chunk_t;

/* The root of a reply: what hiredis and the daemon see (reply, first, so that a pointer to
 * it is one to the root) and the arena its elements come from. */
typedef struct root {
    redisReply reply;
    chunk_t *chunks;
    char *free_p; /* room left in the current block */
    size_t free_n;
    size_t next_n; /* the size of the next block */
} root_t;

#define ALIGN_UP(n) (((n) + (_Alignof(max_align_t) - 1)) & ~(_Alignof(max_align_t) - 1))
#define ROOT_SIZE ALIGN_UP(sizeof(root_t))
#define CHUNK_SIZE ALIGN_UP(sizeof(chunk_t))
/* The first block of an array reply (with its root, a size glibc's malloc serves from its
 * per-thread cache: a step's usual reply fits), and the most a block is sized for ahead of
 * need. */
#define FIRST_ROOM (1024 - ROOT_SIZE)
#define MAX_ROOM (256 * 1024)
/* What an element of an array is expected to need: its pointer, object and a short string. */
#define PER_ELEMENT (sizeof(redisReply *) + sizeof(redisReply) + 32)

/* A new root with room bytes of arena after it; NULL on OOM. */
static root_t *root_new(int type, size_t room)
{
    root_t *root = malloc(ROOT_SIZE + room);
    if (!root)
        return NULL;
    root->reply = (redisReply){.type = type};
    root->chunks = NULL;
    root->free_p = (char *)root + ROOT_SIZE;
    root->free_n = room;
    root->next_n = room * 2 > FIRST_ROOM ? room * 2 : FIRST_ROOM;
    return root;
}

/* n bytes from root's arena, aligned for any object; NULL on OOM. */
static void *arena_alloc(root_t *root, size_t n)
{
    n = ALIGN_UP(n);
    if (n > root->free_n) {
        size_t room = root->next_n > n ? root->next_n : n;
        chunk_t *c = malloc(CHUNK_SIZE + room);
        if (!c)
            return NULL;
        c->next = root->chunks;
        root->chunks = c;
        root->free_p = (char *)c + CHUNK_SIZE;
        root->free_n = room;
        if (root->next_n < MAX_ROOM)
            root->next_n *= 2;
    }
    void *p = root->free_p;
    root->free_p += n;
    root->free_n -= n;
    return p;
}

static root_t *root_of(const redisReadTask *task)
{
    while (task->parent)
        task = task->parent;
    assert(task->obj);
    return (root_t *)task->obj;
}

/* An element of the reply task belongs to (root's), linked into its parent; NULL on OOM. */
static redisReply *element_new(root_t *root, const redisReadTask *task, int type, size_t extra)
{
    redisReply *r = arena_alloc(root, sizeof *r + extra);
    if (!r)
        return NULL;
    *r = (redisReply){.type = type};
    redisReply *parent = task->parent->obj;
    assert(parent->type == REDIS_REPLY_ARRAY && (size_t)task->idx < parent->elements);
    parent->element[task->idx] = r;
    return r;
}

static void free_reply(void *reply)
{
    root_t *root = reply; /* reply is a root's first member (hiredis frees only roots) */
    if (!root)
        return;
    for (chunk_t *c = root->chunks, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(root);
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    assert(task->type == REDIS_REPLY_ERROR || task->type == REDIS_REPLY_STATUS ||
           task->type == REDIS_REPLY_STRING);
    redisReply *r;
    if (!task->parent) {
        root_t *root = root_new(task->type, len + 1);
        if (!root)
            return NULL;
        r = &root->reply;
        r->str = root->free_p;
        root->free_n = 0;
    } else {
        /* the string right after its object, in the same allocation */
        if (!(r = element_new(root_of(task), task, task->type, len + 1)))
            return NULL;
        r->str = (char *)(r + 1);
    }
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    redisReply *r;
    if (!task->parent) {
        size_t room = n * PER_ELEMENT;
        root_t *root = root_new(REDIS_REPLY_ARRAY, room < FIRST_ROOM ? FIRST_ROOM
                                                   : room > MAX_ROOM ? MAX_ROOM
                                                                     : room);
        if (!root)
            return NULL;
        r = &root->reply;
        if (n && !(r->element = arena_alloc(root, n * sizeof *r->element))) {
            free_reply(root);
            return NULL;
        }
    } else {
        root_t *root = root_of(task);
        if (!(r = element_new(root, task, REDIS_REPLY_ARRAY, 0)))
            return NULL;
        if (n && !(r->element = arena_alloc(root, n * sizeof *r->element)))
            return NULL; /* the reader frees the root, and this with it */
    }
    if (n)
        memset(r->element, 0, n * sizeof *r->element);
    r->elements = n;
    return r;
}

static void *create_integer(const redisReadTask *task, long long v)
{
    redisReply *r;
    if (!task->parent) {
        root_t *root = root_new(REDIS_REPLY_INTEGER, 0);
        r = root ? &root->reply : NULL;
    } else {
        r = element_new(root_of(task), task, REDIS_REPLY_INTEGER, 0);
    }
    if (r)
        r->integer = v;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    if (!task->parent) {
        root_t *root = root_new(REDIS_REPLY_NIL, 0);
        return root ? &root->reply : NULL;
    }
    return element_new(root_of(task), task, REDIS_REPLY_NIL, 0);
}

/* hiredis 0.14 declares the reader's functions non-const but never writes them. */
static const redisReplyObjectFunctions arena_functions = {create_string, create_array,
                                                          create_integer, create_nil, free_reply};

bool fn_reply_arena_use(redisReader *r)
{
    /* the reply the reader may hold was made by the functions it had: leave such a reader be */
    if (!r || r->reply)
        return false;
    r->fn = (redisReplyObjectFunctions *)&arena_functions;
    return true;
}

#else

bool fn_reply_arena_use(redisReader *r)
{
    (void)r;
    return false;
}

#endif
