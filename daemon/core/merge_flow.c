/*
 * merge_flow.c — one identify's merge, and one erasure's deletion of merged ids, step by
 * step through merge.lua (merge_flow.h).
 *
 * An identify (lead_id K, previous_id P) goes: ROOT on K (following K to the lead it was
 * merged into, if it was: the root R), DETACH on P (P linked to R, its snapshot), READ on R,
 * APPLY on R (the plan fn_merge_plan computed from both), FINISH on P, then its outputs.
 * Each step is idempotent and the plan is a function of what was read, so a replay of the
 * identify after a crash at any point ends in the same state and the same output ids.
 * An erasure goes IDS on its lead (following it to its root), FORGET on each id merged into
 * it, UNLINK (the set naming them) on the root, then the ordinary erase step there.
 *
 * The message stays at the head of its lead_id's queue throughout; every step is sent with
 * fn_store_resend to the node of m->lead_hash, which is the lead the step runs on.
 */
#include <stdlib.h>
#include <string.h>

#include "funneld/daemon.h"
#include "funneld/keys.h"
#include "funneld/merge_flow.h"
#include "funneld/merge_step.h"
#include "funneld/pipeline.h"
#include "funneld/step.h"
#include "funneld/store.h"
#include "funneld/timers.h"

/* A plan that keeps meeting a root changed by someone else gives up after this many reads
 * (one daemon's own steps cannot race it: they wait in the lead's queue). */
#define MAX_REREADS 50

typedef struct fn_merge_ctx {
    fn_buf_t cur;  /* the id the current step runs on */
    fn_buf_t root; /* the kept lead's root */
    int64_t root_ids;
    redisReply *snapshot, *ids, *touches, *kept; /* DETACH's and READ's answers (copies) */
    fn_merge_plan_t plan;
    bool gone; /* merged once and erased since: only a stored result is emitted again */
    int rereads;
    redisReply *erase_ids; /* IDS's answer (a copy) */
    size_t next_erase;
    fn_buf_t outputs; /* payloads to produce, each NUL-terminated */
    size_t n_outputs, n_transitions;
    fn_buf_t result; /* what DONE stores on lead_id: the outputs' stored form, or empty */
    int outcome;     /* fn_merge_result_t, counted when DONE answers */
} fn_merge_ctx_t;

int fn_merge_retarget(fn_msg_t *m, const char *id, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return FN_ERR;
    memcpy(copy, id, len);
    copy[len] = '\0';
    free(m->lead_owned);
    m->lead_owned = copy;
    m->ev.lead_id = (fn_str_t){copy, len};
    m->lead_hash = fn_step_lead_hash(copy, len);
    return FN_OK;
}

void fn_merge_free(fn_msg_t *m)
{
    fn_merge_ctx_t *c = m->merge;
    if (c) {
        fn_buf_free(&c->cur);
        fn_buf_free(&c->root);
        if (c->snapshot)
            freeReplyObject(c->snapshot);
        if (c->ids)
            freeReplyObject(c->ids);
        if (c->touches)
            freeReplyObject(c->touches);
        if (c->kept)
            freeReplyObject(c->kept);
        if (c->erase_ids)
            freeReplyObject(c->erase_ids);
        fn_merge_plan_free(&c->plan);
        fn_buf_free(&c->outputs);
        fn_buf_free(&c->result);
        free(c);
    }
    m->merge = NULL;
    free(m->lead_owned);
    m->lead_owned = NULL;
}

static int set_buf(fn_buf_t *b, const char *p, size_t len)
{
    fn_buf_reset(b);
    return len ? fn_buf_append(b, p, len) : FN_OK; /* p may be NULL: an empty plan's */
}

static bool same(const fn_buf_t *b, const char *p, size_t len)
{
    return b->len == len && memcmp(b->data, p, len) == 0;
}

/* The next step runs on lead id (len bytes): m is routed to its node. */
static int go(fn_daemon_t *d, fn_msg_t *m, int phase, const char *id, size_t len)
{
    fn_merge_ctx_t *c = m->merge;
    if (set_buf(&c->cur, id, len))
        return FN_ERR;
    m->phase = phase;
    m->lead_hash = fn_step_lead_hash(c->cur.data, c->cur.len);
    fn_store_resend(d->store, m);
    return FN_OK;
}

static fn_merge_ctx_t *ctx_new(fn_msg_t *m)
{
    if (!m->merge)
        m->merge = calloc(1, sizeof *m->merge);
    return m->merge;
}

static void oom(fn_daemon_t *d, fn_msg_t *m)
{
    fn_log(&d->log, FN_LOG_ERROR, "merge", "out of memory; stopping");
    fn_pipe_release(d, m);
    fn_daemon_stop(d, 1);
}

void fn_merge_identify(fn_daemon_t *d, fn_msg_t *m)
{
    fn_merge_ctx_t *c = ctx_new(m);
    if (!c || set_buf(&c->cur, m->ev.lead_id.p, m->ev.lead_id.len)) {
        oom(d, m);
        return;
    }
    m->phase = FN_PHASE_ROOT;
    fn_store_submit(d->store, m); /* behind the earlier events of lead_id */
}

void fn_merge_erase(fn_daemon_t *d, fn_msg_t *m)
{
    fn_merge_ctx_t *c = ctx_new(m);
    if (!c || set_buf(&c->cur, m->ev.lead_id.p, m->ev.lead_id.len)) {
        oom(d, m);
        return;
    }
    m->phase = FN_PHASE_IDS;
    fn_store_submit(d->store, m);
}

int fn_merge_build_cmd(fn_daemon_t *d, fn_msg_t *m, const char *sha, const char *token,
                       fn_buf_t *out)
{
    (void)token;
    fn_merge_ctx_t *c = m->merge;
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    char due[352];
    fn_step_due_key(cfg, fn_step_shard(cfg, m->lead_hash), m->part->topic, m->part->partition, due,
                    sizeof due);
    fn_merge_cmd_t cmd = {.phase = (fn_merge_phase_t)m->phase,
                          .id = {c->cur.data, c->cur.len},
                          .hash = m->lead_hash,
                          .root = {c->root.data, c->root.len},
                          .cause = m->ev.event_id,
                          .result = {c->result.data, c->result.len},
                          .root_ids = c->root_ids,
                          .plan = &c->plan,
                          .due = due,
                          .now_ms = fn_now_ms()};
    /* The timers due by the partition's time at this event fire first, as before a step
     * (step.c); by the wall clock, never ahead of the wall time. */
    int64_t b = m->clock_ms > m->ev.ts_ms ? m->clock_ms : m->ev.ts_ms;
    if (cfg->clock == FN_CLOCK_WALL && cmd.now_ms < b)
        b = cmd.now_ms;
    cmd.due_by = b;
    if ((m->phase == FN_PHASE_ROOT && m->hops > 0) || m->phase == FN_PHASE_OWNER)
        cmd.cause = (fn_str_t){"", 0}; /* following a chain: not the identify's own lead */
    return fn_merge_build(cfg, sha, &cmd, out);
}

static bool is(const redisReply *r, const char *status)
{
    size_t n = strlen(status);
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == n &&
           memcmp(r->element[0]->str, status, n) == 0;
}

static const redisReply *arg(const redisReply *r, size_t i, int type)
{
    return r->elements > i && r->element[i]->type == type ? r->element[i] : NULL;
}

/* The outputs to produce once the merge is finished: the plan's, or those of a result
 * stored by an earlier run whose outputs were never acknowledged (as step.lua decides for
 * a step: this very message sent again, or a result another instance left). */
static int outputs_from_pending(fn_daemon_t *d, fn_msg_t *m, const redisReply *pending)
{
    fn_merge_ctx_t *c = m->merge;
    c->n_outputs = 0;
    fn_buf_reset(&c->result);
    if (!pending || pending->len == 0)
        return FN_OK;
    if (fn_buf_append(&c->result, pending->str, pending->len))
        return FN_ERR;
    fn_str_t owner;
    size_t n;
    if (fn_merge_pending_outputs(pending->str, pending->len, &owner, &c->outputs, &n)) {
        fn_log(&d->log, FN_LOG_ERROR, "merge",
               "a stored merge result cannot be read; its "
               "outputs are not emitted again");
        return FN_OK;
    }
    const char *me = fn_store_instance(d->store);
    size_t ml = strlen(me);
    char token[64];
    int tl = snprintf(token, sizeof token, "%s:%llu", me, (unsigned long long)m->seq);
    bool mine = owner.len > ml && memcmp(owner.p, me, ml) == 0 && owner.p[ml] == ':';
    bool this_msg = owner.len == (size_t)tl && memcmp(owner.p, token, owner.len) == 0;
    if (this_msg || !mine)
        c->n_outputs = n;
    return FN_OK;
}

/* Timers of the lead the step ran on that were due fired first (pipeline.c sends them). */
static void emit_fired(fn_daemon_t *d, fn_msg_t *m, const redisReply *fired)
{
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    fn_pipe_emit_fired(d, fn_step_shard(cfg, m->lead_hash), fired);
}

static void refuse(fn_daemon_t *d, fn_msg_t *m, fn_reject_t code, const char *why)
{
    m->phase = FN_PHASE_STEP;
    fn_pipe_reject(d, m, code, why);
}

/* Once DETACH linked previous_id to the root and took it out of its counters, the merge must
 * go on to APPLY and FINISH: dead-lettered there, the id's events would wait for ever (its
 * "mp" stays) and its state would count nowhere. So a failure past DETACH is retried with the
 * store's backoff, from the step that failed (each is idempotent), and logged once per
 * interval: what stops it (a foreign key of the wrong type under the prefix, a kept lead that
 * someone keeps changing) can be cured while it waits, and the partition's commits wait
 * with it, so nothing is lost. Before DETACH nothing was written and a refusal stands. */
bool fn_merge_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason)
{
    fn_merge_ctx_t *c = m->merge;
    if (m->ev.kind != FN_EV_IDENTIFY || !c || !c->snapshot)
        return false;
    d->stats.merge_retries++;
    c->rereads = 0;
    m->hops = 0; /* the chain is walked again from where the step stopped */
    uint64_t skipped;
    if (fn_log_limit_pass(&d->lim_merge, fn_now_ms(), 10000, &skipped)) {
        char hex[33];
        fn_log_ctx_t ctx = fn_msg_log_ctx(m, hex);
        fn_log_ctx(&d->log, FN_LOG_ERROR, "merge", &ctx,
                   "%s; the merge began and is retried (%llu more since the last line)", reason,
                   (unsigned long long)skipped);
    }
    fn_store_resend_later(d->store, m);
    return true;
}

/* A step of the flow cannot go on: refused before DETACH, retried after it. */
static void fail(fn_daemon_t *d, fn_msg_t *m, fn_reject_t code, const char *why)
{
    if (!fn_merge_failed(d, m, why))
        refuse(d, m, code, why);
}

/* The identify is recorded as handled on its lead_id (DONE), with what it emits: kind is
 * what it did. */
static void done(fn_daemon_t *d, fn_msg_t *m, int kind)
{
    fn_merge_ctx_t *c = m->merge;
    c->outcome = kind;
    if (go(d, m, FN_PHASE_DONE, m->ev.lead_id.p, m->ev.lead_id.len))
        oom(d, m);
}

/* Nothing to merge (already true, or a loop). */
static void no_op(fn_daemon_t *d, fn_msg_t *m, int kind)
{
    fn_merge_ctx_t *c = m->merge;
    c->n_outputs = 0;
    fn_buf_reset(&c->result);
    done(d, m, kind);
}

/* DONE answered, or ROOT found the identify handled before: its outputs go out, keyed by the
 * kept lead, and its stored result on lead_id is cleared once they are acknowledged. */
static void finished(fn_daemon_t *d, fn_msg_t *m, bool count)
{
    fn_merge_ctx_t *c = m->merge;
    fn_hash128_t own = m->lead.lead; /* lead_id's: its pending result is cleared */
    m->phase = FN_PHASE_STEP;
    if (c->root.len && fn_merge_retarget(m, c->root.data, c->root.len)) {
        oom(d, m);
        return;
    }
    m->lead_hash = own;
    if (count)
        d->stats.merges[c->outcome]++;
    fn_pipe_emit_all(d, m, c->outputs.data, c->n_outputs, c->n_transitions);
}

static void on_identify(fn_daemon_t *d, fn_msg_t *m, const redisReply *r)
{
    fn_merge_ctx_t *c = m->merge;
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    const fn_str_t prev = m->ev.previous_id;
    const redisReply *x;
    char why[320];
    if (is(r, "collision")) {
        refuse(d, m, FN_REJ_LEAD_COLLISION,
               "lead_id or props.previous_id: another lead id maps to the same Redis key");
        return;
    }
    bool moved = is(r, "moved") && (x = arg(r, 1, REDIS_REPLY_STRING));
    if (moved && ++m->hops > cfg->identity_max_ids) {
        fail(d, m, FN_REJ_MERGE_REFUSED,
             "identity.max_ids: a chain of merged ids longer "
             "than the most ids one lead holds");
        return;
    }
    switch (m->phase) {
    case FN_PHASE_ROOT:
        if (is(r, "done")) { /* handled before: its outputs again if never acknowledged */
            if (outputs_from_pending(d, m, arg(r, 1, REDIS_REPLY_STRING)))
                oom(d, m);
            else
                finished(d, m, false);
            return;
        }
        if (moved) {
            if (go(d, m, FN_PHASE_ROOT, x->str, x->len))
                oom(d, m);
            return;
        }
        if (!is(r, "root") || !(x = arg(r, 1, REDIS_REPLY_STRING)))
            break;
        c->root_ids = strtoll(x->str, NULL, 10);
        if (set_buf(&c->root, c->cur.data, c->cur.len)) {
            oom(d, m);
            return;
        }
        if (same(&c->root, prev.p, prev.len)) {
            no_op(d, m, FN_MERGE_LOOP); /* previous_id is where lead_id went already */
            return;
        }
        if (go(d, m, FN_PHASE_DETACH, prev.p, prev.len))
            oom(d, m);
        return;
    case FN_PHASE_DETACH:
        if (is(r, "refused") && (x = arg(r, 1, REDIS_REPLY_STRING))) {
            refuse(d, m, FN_REJ_MERGE_REFUSED, x->str);
            return;
        }
        if (is(r, "gone")) {
            /* Merged by this identify once, and the person erased since: nothing to merge.
             * Its outputs may still be unacknowledged where it was applied (the root). */
            c->gone = true;
            if (go(d, m, FN_PHASE_READ, c->root.data, c->root.len))
                oom(d, m);
            return;
        }
        if (is(r, "taken") && (x = arg(r, 1, REDIS_REPLY_STRING))) {
            if (same(&c->root, x->str, x->len)) {
                no_op(d, m, FN_MERGE_REPEAT); /* already true */
                return;
            }
            if (go(d, m, FN_PHASE_OWNER, x->str, x->len))
                oom(d, m);
            return;
        }
        if (!is(r, "snapshot") || !arg(r, 1, REDIS_REPLY_ARRAY) || !arg(r, 2, REDIS_REPLY_ARRAY))
            break;
        emit_fired(d, m, arg(r, 3, REDIS_REPLY_ARRAY));
        m->hops = 0; /* READ walks the root's chain anew */
        const redisReply *touches = arg(r, 4, REDIS_REPLY_ARRAY);
        if (!(c->snapshot = fn_store_reply_copy(r->element[1])) ||
            !(c->ids = fn_store_reply_copy(r->element[2])) ||
            (touches && !(c->touches = fn_store_reply_copy(touches)))) {
            oom(d, m);
            return;
        }
        /* The merge is applied where previous_id was linked to (the root then), or, when
         * that lead went into another since, further down its chain: READ walks it from
         * there and finds the cause where it was applied (a replay), else the root now. */
        fn_str_t linked = fn_merge_hget(c->snapshot, FN_F_MERGED_INTO);
        if (!linked.p || set_buf(&c->root, linked.p, linked.len) ||
            go(d, m, FN_PHASE_READ, c->root.data, c->root.len))
            oom(d, m);
        return;
    case FN_PHASE_OWNER:
        if (moved) {
            if (go(d, m, FN_PHASE_OWNER, x->str, x->len))
                oom(d, m);
            return;
        }
        if (!is(r, "root"))
            break;
        if (same(&c->root, c->cur.data, c->cur.len)) {
            no_op(d, m, FN_MERGE_REPEAT); /* previous_id went into the same person before */
            return;
        }
        snprintf(why, sizeof why,
                 "props.previous_id: already merged into another lead (an id belongs to one "
                 "person); nothing merged");
        refuse(d, m, FN_REJ_MERGE_REFUSED, why);
        return;
    case FN_PHASE_READ:
    case FN_PHASE_APPLY:
        if (moved) { /* the root went into another lead meanwhile: absorb there */
            if (set_buf(&c->root, x->str, x->len) ||
                go(d, m, FN_PHASE_READ, c->root.data, c->root.len))
                oom(d, m);
            return;
        }
        if (is(r, "dup")) {
            const redisReply *p = arg(r, 1, REDIS_REPLY_STRING);
            c->outcome = FN_MERGE_DONE;
            if (outputs_from_pending(d, m, p) || go(d, m, FN_PHASE_FINISH, prev.p, prev.len))
                oom(d, m);
            return;
        }
        if (c->gone) { /* not found where it was applied: nothing to emit again */
            no_op(d, m, FN_MERGE_REPEAT);
            return;
        }
        if (is(r, "changed")) {
            if (++c->rereads > MAX_REREADS) {
                m->phase = FN_PHASE_READ;
                fail(d, m, FN_REJ_STEP_FAILED, "merge: the kept lead kept changing");
                return;
            }
            if (go(d, m, FN_PHASE_READ, c->root.data, c->root.len))
                oom(d, m);
            return;
        }
        if (m->phase == FN_PHASE_APPLY && is(r, "ok")) {
            c->n_outputs = c->plan.n_outputs;
            c->n_transitions = c->plan.n_transitions;
            c->outcome = FN_MERGE_DONE;
            if (set_buf(&c->outputs, c->plan.outputs.data, c->plan.outputs.len) ||
                set_buf(&c->result, c->plan.n_outputs ? c->plan.pending.data : "",
                        c->plan.n_outputs ? c->plan.pending.len : 0)) {
                oom(d, m);
                return;
            }
            if (c->plan.armed_due)
                fn_timers_armed(d->timers, m->part, fn_step_shard(cfg, m->lead_hash),
                                c->plan.armed_due);
            if (go(d, m, FN_PHASE_FINISH, prev.p, prev.len))
                oom(d, m);
            return;
        }
        if (m->phase != FN_PHASE_READ || !is(r, "lead") || !arg(r, 1, REDIS_REPLY_ARRAY))
            break;
        emit_fired(d, m, arg(r, 2, REDIS_REPLY_ARRAY));
        if (c->kept)
            freeReplyObject(c->kept);
        fn_merge_plan_free(&c->plan);
        if (!(c->kept = fn_store_reply_copy(r->element[1]))) {
            oom(d, m);
            return;
        }
        char root_key[96], tail[320], token[64];
        fn_lead_keys_t k;
        fn_step_keys(cfg, m->lead_hash, &k);
        snprintf(root_key, sizeof root_key, "%s", k.lead);
        snprintf(tail, sizeof tail, "%s:%d", m->part->topic, (int)m->part->partition);
        snprintf(token, sizeof token, "%s:%llu", fn_store_instance(d->store),
                 (unsigned long long)m->seq);
        fn_event_t ev = m->ev; /* the outputs name the root */
        ev.lead_id = (fn_str_t){c->root.data, c->root.len};
        const fn_merge_input_t in = {.cfg = cfg,
                                     .kept = c->kept,
                                     .absorbed = c->snapshot,
                                     .ids = c->ids,
                                     .touches = c->touches,
                                     .ev = &ev,
                                     .absorbed_id = prev,
                                     .root_key = root_key,
                                     .due_tail = tail,
                                     .token = token,
                                     .now_ms = fn_now_ms()};
        if (fn_merge_plan(&in, &c->plan)) {
            oom(d, m);
            return;
        }
        m->phase = FN_PHASE_APPLY;
        fn_store_resend(d->store, m);
        return;
    case FN_PHASE_FINISH:
        if (!is(r, "ok"))
            break;
        done(d, m, c->outcome);
        return;
    case FN_PHASE_DONE:
        if (!is(r, "ok"))
            break;
        finished(d, m, true);
        return;
    default:
        break;
    }
    fail(d, m, FN_REJ_STEP_FAILED, "merge: unexpected reply from merge.lua");
}

static void on_erase(fn_daemon_t *d, fn_msg_t *m, const redisReply *r)
{
    fn_merge_ctx_t *c = m->merge;
    const fn_config_t *cfg = m->cfg ? m->cfg : d->cfg;
    const redisReply *x;
    if (is(r, "collision")) {
        refuse(d, m, FN_REJ_LEAD_COLLISION,
               "lead_id: another lead id maps to the same Redis key; not applied");
        return;
    }
    if (m->phase == FN_PHASE_IDS && is(r, "moved") && (x = arg(r, 1, REDIS_REPLY_STRING))) {
        if (++m->hops > cfg->identity_max_ids) {
            refuse(d, m, FN_REJ_STEP_FAILED, "erase: a chain of merged ids too long");
            return;
        }
        if (go(d, m, FN_PHASE_IDS, x->str, x->len))
            oom(d, m);
        return;
    }
    if (m->phase == FN_PHASE_IDS) {
        if (!is(r, "ids") || !arg(r, 1, REDIS_REPLY_ARRAY)) {
            refuse(d, m, FN_REJ_STEP_FAILED, "erase: unexpected reply from merge.lua");
            return;
        }
        if (set_buf(&c->root, c->cur.data, c->cur.len) ||
            !(c->erase_ids = fn_store_reply_copy(r->element[1]))) {
            oom(d, m);
            return;
        }
        c->next_erase = 0;
    }
    /* FORGET answered (or IDS): the next id, then the set naming them, then the erasure
     * itself on the root */
    if (c->next_erase < c->erase_ids->elements) {
        const redisReply *id = c->erase_ids->element[c->next_erase++];
        if (go(d, m, FN_PHASE_FORGET, id->str, id->len))
            oom(d, m);
        return;
    }
    if (c->erase_ids->elements && m->phase != FN_PHASE_UNLINK) {
        if (go(d, m, FN_PHASE_UNLINK, c->root.data, c->root.len))
            oom(d, m);
        return;
    }
    m->phase = FN_PHASE_STEP;
    if (fn_merge_retarget(m, c->root.data, c->root.len)) {
        oom(d, m);
        return;
    }
    fn_store_resend(d->store, m);
}

void fn_merge_on_reply(fn_daemon_t *d, fn_msg_t *m, const redisReply *r)
{
    if (m->ev.kind == FN_EV_ERASE)
        on_erase(d, m, r);
    else
        on_identify(d, m, r);
}
