/*
 * lead_queue.h — the per-lead queue in front of the store: one step per lead outstanding.
 *
 * Every event of a lead waits behind the lead's earlier ones, in input order; only the head
 * of a lead's chain may be sent. That keeps a lead's events in order even when one step is
 * retried after an error or a reconnect. Pure and intrusive: a node lives inside its owner
 * (fn_msg_t), the table holds chain heads keyed by lead hash. Nothing here allocates per
 * event; the caller owns the nodes.
 */
#ifndef FUNNELD_LEAD_QUEUE_H
#define FUNNELD_LEAD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "funneld/hash.h"

typedef struct fn_lead_node {
    fn_hash128_t lead;
    struct fn_lead_node *next;        /* next event of the same lead, waiting behind this one */
    struct fn_lead_node *tail;        /* last of the lead's chain (valid on the chain's head) */
    struct fn_lead_node *bucket_next; /* table chaining between chain heads */
} fn_lead_node_t;

typedef struct fn_lead_queue {
    fn_lead_node_t **table; /* chain heads by lead hash; owned */
    size_t mask;
} fn_lead_queue_t;

/* Sizes the table for up to max_entries chains (a power of two, at least twice that, so
 * chains stay short; it never grows). FN_OK, or FN_ERR on OOM. */
int fn_lead_queue_init(fn_lead_queue_t *q, size_t max_entries);
/* Frees the table (not the nodes). Safe on a zeroed or freed queue. */
void fn_lead_queue_free(fn_lead_queue_t *q);
/* Queues n for lead: true when n heads the lead's chain and may be sent now, false when it
 * waits behind an earlier event of the lead. */
bool fn_lead_queue_push(fn_lead_queue_t *q, fn_lead_node_t *n, fn_hash128_t lead);
/* n's step is finished: returns the lead's next node, now its chain's head and to be sent,
 * or NULL. A node that is not a chain head (never pushed) is left alone. */
fn_lead_node_t *fn_lead_queue_release(fn_lead_queue_t *q, fn_lead_node_t *n);

#endif
