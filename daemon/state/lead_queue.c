/*
 * lead_queue.c — chain heads keyed by lead hash (see lead_queue.h).
 */
#include "funneld/lead_queue.h"

#include <stdlib.h>

#include "funneld/common.h"

static bool same_lead(fn_hash128_t a, fn_hash128_t b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

static fn_lead_node_t **bucket_of(fn_lead_queue_t *q, fn_hash128_t lead)
{
    return &q->table[lead.lo & q->mask];
}

int fn_lead_queue_init(fn_lead_queue_t *q, size_t max_entries)
{
    size_t size = 1024;
    while (size < 2 * max_entries)
        size *= 2;
    q->table = calloc(size, sizeof *q->table);
    if (!q->table)
        return FN_ERR;
    q->mask = size - 1;
    return FN_OK;
}

void fn_lead_queue_free(fn_lead_queue_t *q)
{
    free(q->table);
    q->table = NULL;
    q->mask = 0;
}

bool fn_lead_queue_push(fn_lead_queue_t *q, fn_lead_node_t *n, fn_hash128_t lead)
{
    n->lead = lead;
    n->next = NULL;
    fn_lead_node_t **b = bucket_of(q, lead);
    for (fn_lead_node_t *h = *b; h; h = h->bucket_next)
        if (same_lead(h->lead, lead)) {
            h->tail->next = n;
            h->tail = n;
            return false;
        }
    n->bucket_next = *b;
    *b = n;
    n->tail = n;
    return true;
}

fn_lead_node_t *fn_lead_queue_release(fn_lead_queue_t *q, fn_lead_node_t *n)
{
    fn_lead_node_t **b = bucket_of(q, n->lead);
    while (*b && *b != n)
        b = &(*b)->bucket_next;
    if (!*b)
        return NULL; /* not a chain head (never submitted) */
    *b = n->bucket_next;
    n->bucket_next = NULL;
    fn_lead_node_t *next = n->next;
    n->next = NULL;
    if (next) {
        next->tail = n->tail;
        fn_lead_node_t **nb = bucket_of(q, next->lead);
        next->bucket_next = *nb;
        *nb = next;
    }
    n->tail = NULL;
    return next;
}
