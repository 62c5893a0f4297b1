/*
 * offsets.h — the done-prefix offset tracker (core/offsets.c): a partition's in-flight
 * messages in offset order, and the advance of its commit point over those done.
 *
 * Pure: no I/O, no clock, no allocation. A partition's offset is committed only up to the
 * end of its done prefix — the messages at the head of its in-flight list that are all
 * done — so nothing is committed before every earlier message of it is finished
 * (at-least-once, SPEC §6). Each assignment of a partition is a generation of its own
 * (fn_partition_t.generation): a message of an earlier generation, still in flight at the
 * revocation, leaves the list when done but does not move the current commit point.
 */
#ifndef FUNNELD_OFFSETS_H
#define FUNNELD_OFFSETS_H

#include <stddef.h>

#include "funneld/msg.h"

/* Appends m, just consumed from p, to p's in-flight list and stamps it with p's current
 * generation. Offsets are appended in the order consumed. */
void fn_offsets_append(fn_partition_t *p, fn_msg_t *m);

/* Called with each message taken off the list; the callee owns it from then on. */
typedef void fn_offsets_release_cb(fn_msg_t *m, void *data);

/* Takes p's done prefix (messages in state FN_MSG_DONE at the head, in offset order) off its
 * in-flight list, handing each to release. Those of the current generation move p's event
 * clock (maxts_done, clock_from) and its commit point next_commit, which never moves
 * backwards. Returns how many were released. */
size_t fn_offsets_advance(fn_partition_t *p, fn_offsets_release_cb *release, void *data);

/* Takes every message off p's in-flight list, done or not (shutdown), handing each to
 * release; the commit point does not move. */
void fn_offsets_drop(fn_partition_t *p, fn_offsets_release_cb *release, void *data);

#endif
