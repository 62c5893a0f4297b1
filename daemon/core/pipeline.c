/*
 * pipeline.c — what happens to one consumed message between input and output: decode,
 * dead-letter or Redis step, then the output events of the step's result (msg.h).
 */
#include <stdio.h>
#include <string.h>

#include "funneld/daemon.h"
#include "funneld/emit.h"
#include "funneld/merge_flow.h"
#include "funneld/merge_step.h"
#include "funneld/offsets.h"
#include "funneld/output.h"
#include "funneld/pipeline.h"
#include "funneld/step.h"
#include "funneld/store.h"
#include "funneld/timers.h"

/* One of m's outputs is finished (output.h): once all are acknowledged its stored result is
 * cleared and it is done. Purged at exit, it stays unfinished: not committed, it is
 * consumed again (daemon.c releases it with the rest). Never refused: not refusable. */
static void on_output_done(fn_out_req_t *req, fn_out_status_t status, const char *topic,
                           rd_kafka_resp_err_t err)
{
    (void)topic;
    (void)err;
    fn_msg_t *m = (fn_msg_t *)req;
    fn_daemon_t *d = req->data;
    if (status != FN_OUT_DELIVERED)
        return;
    if (--m->pending_dr == 0) {
        if (m->clear_pending)
            fn_store_clear_pending(d->store, m);
        fn_msg_done(d, m);
    }
}

/* Produces one output of m; a permanent failure leaves m's output never acknowledged, so m
 * is never done and its input never committed: whoever consumes it next produces it again. */
static int produce(fn_daemon_t *d, fn_msg_t *m, const char *topic, const void *key, size_t keylen,
                   const void *payload, size_t len, const fn_out_dlq_t *dlq)
{
    m->out.done = on_output_done;
    m->out.data = d;
    m->pending_dr++;
    return fn_output_produce(d->output, &m->out, topic, key, keylen, payload, len, dlq);
}

/* Sends the original bytes to the DLQ with the reason in headers; done on delivery. */
static void dead_letter(fn_daemon_t *d, fn_msg_t *m, fn_reject_t code, const char *reason)
{
    d->stats.rejected[code]++;
    char hex[33];
    fn_log_ctx_t ctx = fn_msg_log_ctx(m, hex);
    fn_log_ctx(&d->log, FN_LOG_DEBUG, "decode", &ctx, "rejected: %s: %s", fn_reject_code(code),
               reason);
    m->state = FN_MSG_PRODUCING;
    const fn_out_dlq_t dlq = {fn_reject_code(code), reason, m->part->topic, m->part->partition,
                              m->offset};
    if (produce(d, m, d->cfg->topic_dlq, m->has_key ? m->raw.data : NULL, m->key_len,
                m->has_value ? m->raw.data + m->key_len : NULL, m->raw.len - m->key_len, &dlq))
        fn_daemon_stop(d, 1); /* not committed: it is consumed again after the restart */
}

/* ---- identify and erase barriers ----
 * A merge takes the state of two leads that the partition's other events change (an
 * erasure deletes every id merged into a person), so where one falls among them decides the
 * outcome. So that it is always the partition's order (a replay, or a run killed half-way,
 * gives the same), an identify or erase starts only once every earlier message of its
 * partition is through Redis, and the later ones wait until it is: they are held in the
 * partition's queue, in order, and let go when it finishes. */

static bool barrier(const fn_msg_t *m)
{
    return m->ev.kind == FN_EV_IDENTIFY || m->ev.kind == FN_EV_ERASE;
}

static void begin(fn_daemon_t *d, fn_msg_t *m)
{
    m->part->in_redis++;
    if (m->ev.kind == FN_EV_IDENTIFY)
        fn_merge_identify(d, m);
    else if (m->ev.kind == FN_EV_ERASE)
        fn_merge_erase(d, m);
    else
        fn_store_submit(d->store, m);
}

static void drain(fn_daemon_t *d, fn_partition_t *p)
{
    for (;;) {
        if (p->barrier) {
            if (!p->barrier_started && p->in_redis == 0) {
                p->barrier_started = true;
                begin(d, p->barrier);
            }
            return;
        }
        fn_msg_t *m = p->held_head;
        if (!m)
            return;
        p->held_head = m->q_next;
        if (!p->held_head)
            p->held_tail = NULL;
        m->q_next = NULL;
        if (barrier(m)) {
            p->barrier = m;
            p->barrier_started = false;
            continue;
        }
        begin(d, m);
    }
}

static void admit(fn_daemon_t *d, fn_partition_t *p, fn_msg_t *m)
{
    if (p->barrier || p->held_head) {
        m->state = FN_MSG_LEAD_WAIT;
        m->q_next = NULL;
        if (p->held_tail)
            p->held_tail->q_next = m;
        else
            p->held_head = m;
        p->held_tail = m;
        return;
    }
    if (barrier(m)) {
        m->state = FN_MSG_LEAD_WAIT;
        p->barrier = m;
        p->barrier_started = false;
        drain(d, p);
        return;
    }
    begin(d, m);
}

void fn_pipe_release(fn_daemon_t *d, fn_msg_t *m)
{
    fn_partition_t *p = m->part;
    fn_store_release(d->store, m);
    if (!p)
        return;
    p->in_redis--;
    if (m == p->barrier)
        p->barrier = NULL;
    if (p->barrier || p->held_head)
        drain(d, p);
}

void fn_pipe_on_message(fn_daemon_t *d, fn_partition_t *p, rd_kafka_message_t *rkm)
{
    fn_msg_t *m = fn_msg_new(d);
    /* Key and payload are copied and the message destroyed at once: its payload points into
     * librdkafka's fetch response, which stays allocated while any of its messages lives, so
     * holding messages until commit pinned whole responses per in-flight message. */
    if (!m || !p || fn_buf_append(&m->raw, rkm->key ? rkm->key : "", rkm->key ? rkm->key_len : 0) ||
        fn_buf_append(&m->raw, rkm->payload ? rkm->payload : "", rkm->payload ? rkm->len : 0)) {
        fn_log(&d->log, FN_LOG_ERROR, "pipeline", "out of memory; stopping");
        rd_kafka_message_destroy(rkm);
        if (m)
            fn_msg_done(d, m);
        fn_daemon_stop(d, 1);
        return;
    }
    m->charged = m->raw.len;
    d->in_flight_bytes += m->charged;
    m->has_key = rkm->key != NULL;
    m->has_value = rkm->payload != NULL;
    m->key_len = rkm->key ? rkm->key_len : 0;
    m->offset = rkm->offset;
    rd_kafka_message_destroy(rkm);
    int64_t now = fn_now_ms();
    m->consumed_ms = now;
    m->consumed_ns = uv_hrtime();
    m->seq = ++d->msg_seq;
    fn_offsets_append(p, m);
    d->stats.consumed++;

    char reason[256];
    const char *body = m->raw.data + m->key_len;
    size_t body_len = m->raw.len - m->key_len;
    fn_reject_t code =
        fn_config_input_format(d->cfg, p->topic) == FN_INPUT_SEGMENT
            ? fn_event_decode_segment(body, body_len, d->cfg, now, &m->ev, reason, sizeof reason)
            : fn_event_decode(body, body_len, d->cfg, now, &m->ev, reason, sizeof reason);
    if (code != FN_REJ_NONE) {
        dead_letter(d, m, code, reason);
        return;
    }
    if (m->ev.kind == FN_EV_IGNORED) {
        d->stats.ignored[m->ev.ignored]++;
        fn_msg_done(d, m);
        return;
    }
    m->accepted = true;
    if (m->ev.ts_ms > p->maxts_seen)
        p->maxts_seen = m->ev.ts_ms;
    m->clock_ms = p->maxts_seen;
    m->lead_hash = fn_step_lead_hash(m->ev.lead_id.p, m->ev.lead_id.len);
    admit(d, p, m);
}

void fn_pipe_reject(fn_daemon_t *d, fn_msg_t *m, fn_reject_t code, const char *reason)
{
    fn_pipe_release(d, m);
    dead_letter(d, m, code, reason);
}

void fn_pipe_step_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason)
{
    fn_pipe_release(d, m);
    dead_letter(d, m, FN_REJ_STEP_FAILED, reason);
}

/* Row of f in the per-funnel counters, or NULL: f may belong to the config a step was built
 * with before a reload, and is then found again by name. */
static uint64_t *funnel_counters(fn_daemon_t *d, const fn_funnel_t *f)
{
    const fn_config_t *c = d->cfg;
    if (!d->stats.trans_by_funnel)
        return NULL;
    if (f < c->funnels || f >= c->funnels + c->n_funnels)
        f = fn_config_funnel(c, f->name, strlen(f->name));
    return f ? d->stats.trans_by_funnel[f - c->funnels] : NULL;
}

static void count_transition(fn_daemon_t *d, const fn_funnel_t *f, char op)
{
    d->stats.transitions++;
    uint64_t *row = funnel_counters(d, f);
    if (row)
        row[op == 'C' ? 1 : op == 'L' ? 2 : 0]++;
}

static void produce_output(fn_daemon_t *d, fn_msg_t *m)
{
    const fn_buf_t *b = fn_output_buf(d->output);
    if (produce(d, m, d->cfg->topic_transitions, m->ev.lead_id.p, m->ev.lead_id.len, b->data,
                b->len, NULL))
        fn_daemon_stop(d, 1);
}

/* After its outputs are produced, a message only waits for their acknowledgement, and of its
 * event needs only the id (to clear the stored result) and the time (the event clock). The
 * parsed document and the input bytes go now: most in-flight messages are in this state
 * (Kafka's acknowledgement takes longer than the Redis step), so this is most of the memory
 * max_in_flight allows. The id fits in the input buffer, which held it, so the append does
 * not allocate and cannot fail in practice; if it ever did, the message keeps its document. */
static void keep_only_id(fn_daemon_t *d, fn_msg_t *m)
{
    fn_buf_reset(&m->raw);
    if (fn_buf_append(&m->raw, m->ev.event_id.p, m->ev.event_id.len))
        return; /* keeps the document */
    int64_t ts = m->ev.ts_ms;
    fn_event_clear(&m->ev);
    m->ev.ts_ms = ts;
    m->ev.event_id.p = m->raw.data;
    m->ev.event_id.len = m->raw.len;
    m->key_len = 0;
    m->has_key = false;
    fn_msg_uncharge(d, m);
}

/* An event whose id was merged into another lead counts for that lead (SPEC §10): its step
 * goes there. While that lead has not absorbed the id yet, the event waits and asks again. */
static void redirect(fn_daemon_t *d, fn_msg_t *m, const fn_step_result_t *res)
{
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    if (res->merge_pending) {
        fn_store_resend_later(d->store, m);
        return;
    }
    if (++m->hops > cfg->identity_max_ids) {
        fn_pipe_step_failed(d, m, "lead_id: a chain of merged ids longer than identity.max_ids");
        return;
    }
    if (fn_merge_retarget(m, res->target.p, res->target.len)) {
        fn_log(&d->log, FN_LOG_ERROR, "pipeline", "out of memory; stopping");
        fn_pipe_release(d, m);
        fn_daemon_stop(d, 1);
        return;
    }
    fn_store_resend(d->store, m);
}

/* An event of an id merged into another lead was applied there (or found there as a
 * duplicate): its id goes into the id's own seen set too. If the person is erased later, the
 * id starts over with that set, and a replay of the event must still be a duplicate there.
 * The erasure waits for this event (a barrier), and this command goes to the id's node
 * before the erasure's, so it is in place first; fire and forget like a pending result's
 * clearing (a lost one only matters if the process dies too). */
static void note_seen(fn_daemon_t *d, fn_msg_t *m)
{
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    fn_lead_keys_t k;
    fn_step_keys(cfg, m->lead.lead, &k);
    long long keep = (long long)(cfg->dedupe_ttl_ms + cfg->dedupe_ttl_ms / 8);
    /* "<event id>\0": no event id has a NUL, so the note never reads as the id's own event
     * while the id still links to the person (step.lua looks for it once "fg" says the id
     * started over) */
    char member[FN_MAX_ID_LEN + 1];
    size_t n = m->ev.event_id.len;
    if (n > FN_MAX_ID_LEN)
        return;
    memcpy(member, m->ev.event_id.p, n);
    member[n] = '\0';
    fn_store_callf(d->store, k.seen, NULL, NULL, "ZADD %s %lld %b", k.seen,
                   (long long)(fn_now_ms() / FN_STEP_SEEN_UNIT_MS), member, n + 1);
    fn_store_callf(d->store, k.seen, NULL, NULL, "PEXPIRE %s %lld", k.seen, keep);
}

void fn_pipe_on_step_reply(fn_daemon_t *d, fn_msg_t *m, const void *redis_reply)
{
    if (m->phase != FN_PHASE_STEP) {
        fn_merge_on_reply(d, m, redis_reply);
        return;
    }
    fn_step_result_t res;
    char err[256];
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    if (fn_step_parse(cfg, redis_reply, &res, err, sizeof err)) {
        char hex[33];
        fn_log_ctx_t ctx = fn_msg_log_ctx(m, hex);
        if (res.applied) {
            /* Applied: a dead letter would say it was not, and a copy sent again would only
             * be a duplicate. Its stored result stays in Redis (not cleared) for inspection
             * and for a successor's replay. */
            fn_log_ctx(&d->log, FN_LOG_ERROR, "redis", &ctx,
                       "%s: the event is applied but its outputs cannot be emitted", err);
            fn_pipe_release(d, m);
            fn_msg_done(d, m);
            return;
        }
        fn_log_ctx(&d->log, FN_LOG_ERROR, "redis", &ctx, "%s; dead-lettered", err);
        fn_pipe_step_failed(d, m, err);
        return;
    }
    if (m->hops > 0 &&
        (res.status == FN_STEP_OK || res.status == FN_STEP_ERASED || res.status == FN_STEP_DUP))
        note_seen(d, m);
    if (res.n_unreadable) {
        char hex[33];
        fn_log_ctx_t ctx = fn_msg_log_ctx(m, hex);
        fn_log_ctx(&d->log, FN_LOG_ERROR, "redis", &ctx,
                   "%zu transition(s) of this applied event cannot be emitted (%s); the "
                   "other %zu are",
                   res.n_unreadable, err, res.n_trans);
    }
    switch (res.status) {
    case FN_STEP_COLLISION:
        fn_pipe_release(d, m);
        dead_letter(d, m, FN_REJ_LEAD_COLLISION,
                    "lead_id: another lead id maps to the same Redis key; not applied");
        return;
    case FN_STEP_DUP:
        d->stats.duplicates++;
        fn_pipe_release(d, m);
        fn_msg_done(d, m);
        return;
    case FN_STEP_REDIRECT:
        redirect(d, m, &res);
        return;
    case FN_STEP_OK:
    case FN_STEP_ERASED:
        break;
    }
    unsigned shard = fn_step_shard(d->cfg, m->lead_hash);
    if (res.armed_due)
        fn_timers_armed(d->timers, m->part, shard, res.armed_due);
    fn_pipe_emit_fired(d, shard, res.fired);

    /* Hold one reference while producing so that deliveries served meanwhile cannot finish
     * the message before all its outputs are queued. */
    m->state = FN_MSG_PRODUCING;
    m->pending_dr = 1;
    int64_t now = fn_now_ms();
    size_t n = 0;
    if (res.status == FN_STEP_ERASED) {
        for (size_t i = 0; i < cfg->n_funnels; i++, n++) {
            const fn_funnel_t *f = &cfg->funnels[i];
            if (fn_emit_erased(fn_output_buf(d->output), &m->ev, f, res.at, now))
                goto oom;
            uint64_t *row = funnel_counters(d, f);
            if (row)
                row[3]++;
            produce_output(d, m);
        }
    } else {
        for (size_t i = 0; i < res.n_trans; i++, n++) {
            if (fn_emit_transition(fn_output_buf(d->output), &m->ev, &res, &res.trans[i], now))
                goto oom;
            count_transition(d, res.trans[i].funnel, res.trans[i].op);
            produce_output(d, m);
        }
        if (m->ev.kind == FN_EV_CONSENT)
            d->stats.consents++;
        else if (n == 0)
            d->stats.touches++;
    }
    m->clear_pending = n > 0;
    if (n > 0)
        d->stats.msgs_transition++;
    keep_only_id(d, m);
    fn_pipe_release(d, m);
    if (--m->pending_dr == 0)
        fn_msg_done(d, m);
    return;
oom:
    fn_log(&d->log, FN_LOG_ERROR, "pipeline", "out of memory building an output; stopping");
    fn_pipe_release(d, m);
    fn_daemon_stop(d, 1);
}

void fn_pipe_emit_fired(fn_daemon_t *d, unsigned shard, const redisReply *fired)
{
    for (size_t i = 0; fired && i < fired->elements; i++) {
        const redisReply *e = fired->element[i];
        bool str = e->type == REDIS_REPLY_STRING;
        fn_timers_emit(d->timers, shard, str ? e->str : NULL, str ? e->len : 0);
    }
}

void fn_pipe_emit_all(fn_daemon_t *d, fn_msg_t *m, const char *payloads, size_t n,
                      size_t n_transitions)
{
    m->state = FN_MSG_PRODUCING;
    m->pending_dr = 1;
    const char *p = payloads;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(p);
        if (produce(d, m, d->cfg->topic_transitions, m->ev.lead_id.p, m->ev.lead_id.len, p, len,
                    NULL)) {
            fn_pipe_release(d, m);
            fn_daemon_stop(d, 1);
            return;
        }
        p += len + 1;
    }
    d->stats.transitions += n_transitions;
    m->clear_pending = n > 0;
    if (n > 0)
        d->stats.msgs_transition++;
    else
        d->stats.touches++;
    keep_only_id(d, m);
    fn_pipe_release(d, m);
    if (--m->pending_dr == 0)
        fn_msg_done(d, m);
}
