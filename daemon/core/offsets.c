/*
 * offsets.c — the done-prefix offset tracker (offsets.h): what a partition may commit.
 */
#include "funneld/offsets.h"

void fn_offsets_append(fn_partition_t *p, fn_msg_t *m)
{
    m->part = p;
    m->generation = p->generation;
    m->part_next = NULL;
    if (p->tail)
        p->tail->part_next = m;
    else
        p->head = m;
    p->tail = m;
}

size_t fn_offsets_advance(fn_partition_t *p, fn_offsets_release_cb *release, void *data)
{
    size_t n = 0;
    int64_t next = -1;
    while (p->head && p->head->state == FN_MSG_DONE) {
        fn_msg_t *x = p->head;
        p->head = x->part_next;
        if (!p->head)
            p->tail = NULL;
        /* A message of an earlier assignment of the partition (in flight when it was
         * revoked) is finished, but its offset and time say nothing about the current one,
         * which resumed from the group's commit (kafka_in.c). */
        bool current = x->generation == p->generation;
        if (current)
            next = x->offset + 1;
        if (current && x->accepted && p->clock_from == 0) /* where evaluate.c starts judging */
            p->clock_from = p->maxts_done > 0 ? p->maxts_done : x->ev.ts_ms;
        if (current && x->accepted && x->ev.ts_ms > p->maxts_done)
            p->maxts_done = x->ev.ts_ms;
        release(x, data);
        n++;
    }
    /* Nor backwards within one assignment (a fetch position reset, say). */
    if (next > p->next_commit)
        p->next_commit = next; /* committed by the tick, with maxts_done (kafka_in.c) */
    return n;
}

void fn_offsets_drop(fn_partition_t *p, fn_offsets_release_cb *release, void *data)
{
    while (p->head) {
        fn_msg_t *m = p->head;
        p->head = m->part_next;
        release(m, data);
    }
    p->tail = NULL;
}
