/*
 * msg.h — the life of one consumed message, and of the partition it came from.
 *
 * Each Kafka message becomes an fn_msg_t that lives until its offset may be committed:
 *
 *   consumed → decoded ─┬─ rejected → DLQ produce ───────────────┐
 *                       └─ lead queue → Redis step → outputs produce ─┴→ delivered → done
 *
 * A message is "done" only when its Redis step succeeded and every message it produced was
 * acknowledged by Kafka; a partition's offset advances over its done prefix only (offsets.h),
 * which is what makes the pipeline at-least-once (SPEC §6). Messages of one lead go through
 * Redis one at a time, in input order, so retries and reconnects can never reorder a lead's
 * events. The records are the daemon's (core/daemon.c keeps a free list of them).
 */
#ifndef FUNNELD_MSG_H
#define FUNNELD_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/fast.h"
#include "funneld/hash.h"
#include "funneld/lead_queue.h"
#include "funneld/log.h"
#include "funneld/output.h"

typedef struct fn_daemon fn_daemon_t;

typedef enum {
    FN_MSG_LEAD_WAIT = 1, /* behind an earlier event of the same lead */
    FN_MSG_REDIS_WAIT,    /* ready, Redis not connected or retry pending */
    FN_MSG_REDIS_SENT,    /* step sent, reply outstanding */
    FN_MSG_PRODUCING,     /* outputs (or the DLQ copy) awaiting delivery reports */
    FN_MSG_DONE,          /* may be committed once every earlier offset is done too */
} fn_msg_state_t;

typedef struct fn_partition {
    char *topic;
    int32_t partition;
    struct fn_msg *head, *tail; /* in-flight messages in offset order */
    int64_t next_commit;        /* offset after the last done prefix; -1 before any */
    int64_t committed;          /* the group's committed offset as last known; -1 unknown */
    bool assigned;
    /* Bumped at each assignment and revocation: which one a message was consumed in. */
    uint32_t generation;
    bool at_eof;        /* reached the end of the partition since its last message */
    int64_t maxts_done; /* latest event time in the done prefix: the event clock (trigger.h) */
    int64_t maxts_seen; /* latest event time consumed, in offset order (fn_msg_t.clock_ms) */
    bool clock_unread;  /* its commit (and clock) could not be read at assignment: kafka_in.c
                         * asks again */
    int64_t clock_from; /* the event clock this process began at: maxts_done as resumed from
                         * the commit, else its first finished event time; 0 before */
    uint64_t consumed;  /* messages taken from it (for /metrics) */
    int64_t lag;        /* from librdkafka's statistics; -1 unknown */
    struct fn_timers_part *timers; /* what the timers know of its zsets (timers.h owns it) */
    /* The identify barrier (core/pipeline.c): messages between their submission to the store
     * and their release, the identify the later ones wait for (started or not), and those. */
    size_t in_redis;
    struct fn_msg *barrier;
    bool barrier_started;
    struct fn_msg *held_head, *held_tail;
    struct fn_partition *next;
} fn_partition_t;

typedef struct fn_msg {
    /* First: the request its outputs (or its dead letter) are produced with (output.h); one
     * completion per produced message, counted in pending_dr. */
    fn_out_req_t out;
    fn_partition_t *part;
    int64_t offset;
    uint32_t generation;      /* its partition's generation when it was consumed */
    struct fn_msg *part_next; /* next offset of the same partition */
    fn_lead_node_t lead;      /* its place in the per-lead queue (state/store.c) */
    struct fn_msg *q_next;    /* Redis wait/sent queues, the free list */
    /* The input's key and payload, copied so that the Kafka message is destroyed as soon as
     * it is consumed (a live rd_kafka_message_t keeps its whole fetch response allocated);
     * only a dead letter needs them. The buffer is kept across reuses of the record. */
    fn_buf_t raw;
    size_t key_len; /* raw.data[0..key_len) is the key, the rest the payload */
    bool has_key;   /* a null key stays null in the dead letter */
    bool has_value; /* so does a null value (a tombstone) */
    size_t charged; /* input bytes counted in the daemon's in_flight_bytes */
    fn_event_t ev;
    fn_hash128_t lead_hash;
    const fn_config_t *cfg; /* the configuration its step was built with (see reload.c) */
    fn_msg_state_t state;
    int pending_dr;     /* produced messages not yet acknowledged */
    bool clear_pending; /* a stored result in Redis to clear once outputs are acked */
    bool accepted;      /* decoded: ev is valid and its time counts for the event clock */
    uint64_t consumed_ns, sent_ns; /* uv_hrtime at consume and at the last step send */
    int64_t consumed_ms;
    /* The partition's event time at this message: the latest accepted event time up to its
     * offset. Its step fires the lead's timers due by then, the same ones the tick fires
     * once this message's predecessors are done, whichever comes first. */
    int64_t clock_ms;
    uint64_t seq; /* this process's number for the message, part of its step token */
    /* Identity merges (merge_flow.h): the merge step m is at (FN_PHASE_STEP, 0, for the
     * ordinary step), redirects followed, the lead id it was pointed at (owned), and an
     * identify's or erase's merge state (owned). */
    int phase;
    int hops;
    char *lead_owned;
    struct fn_merge_ctx *merge;
    uint32_t wait_mark; /* the store's: the WAIT on its connection that covers its step */
    /* the store's: where the step is on the fast path (store.c), the clock it read the lead
     * by, and the answer its apply gives when it applies */
    uint8_t fast;
    int64_t fast_now;
    fn_fast_out_t fast_out;
} fn_msg_t;

typedef struct fn_msg_queue {
    fn_msg_t *head, *tail;
    size_t len;
} fn_msg_queue_t;

/* --- core/daemon.c: message bookkeeping --- */

/* Input bytes of messages that still hold their parsed event, beyond which consumption waits
 * like at max_in_flight: messages are usually small, but up to max_message_bytes each, and
 * their parsed documents take several times their size. */
#define FN_IN_FLIGHT_BYTES_MAX (16u << 20)

fn_msg_t *fn_msg_new(fn_daemon_t *d);
/* m no longer holds its input and event: its bytes stop counting against the bound. */
void fn_msg_uncharge(fn_daemon_t *d, fn_msg_t *m);
/* The log context of m: its topic, partition, offset and (when decoded) lead key hash,
 * written into hex. */
fn_log_ctx_t fn_msg_log_ctx(const fn_msg_t *m, char hex[33]);
/* Marks m done and commits every done prefix of its partition. */
void fn_msg_done(fn_daemon_t *d, fn_msg_t *m);
void fn_queue_push(fn_msg_queue_t *q, fn_msg_t *m);
fn_msg_t *fn_queue_pop(fn_msg_queue_t *q);

#endif
