/*
 * merge_step.h — the Redis side of identity merges seen from C: the commands of merge.lua's
 * steps and the plan the "apply" step writes. Pure: no I/O (the flow that sends them is
 * core/merge_flow.c; the steps and why each crash point is safe are in merge.lua and README,
 * "Identity merges").
 */
#ifndef FUNNELD_MERGE_STEP_H
#define FUNNELD_MERGE_STEP_H

#include <hiredis/hiredis.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/hash.h"
#include "funneld/merge.h"

typedef enum {
    FN_PHASE_STEP = 0, /* the ordinary step (step.lua) */
    FN_PHASE_ROOT,     /* identify: follow the kept lead to the lead it went into, if any */
    FN_PHASE_OWNER,    /* identify: the root of the lead previous_id went into before */
    FN_PHASE_DETACH,   /* identify: previous_id's lead linked to the root, its snapshot */
    FN_PHASE_READ,     /* identify: the root's hash */
    FN_PHASE_APPLY,    /* identify: the merged lead written if the root is as read */
    FN_PHASE_FINISH,   /* identify: previous_id's link marked complete */
    FN_PHASE_DONE,     /* identify: recorded as handled on lead_id, with its result */
    FN_PHASE_IDS,      /* erase: the ids merged into the lead */
    FN_PHASE_FORGET,   /* erase: one of those ids deleted */
    FN_PHASE_UNLINK,   /* erase: the set naming them deleted */
} fn_merge_phase_t;

struct fn_merge_plan;

/* One merge.lua call: the step, the lead it runs on (its id and hash), and what that step
 * takes besides. Strings are borrowed for the build. */
typedef struct fn_merge_cmd {
    fn_merge_phase_t phase;
    fn_str_t id;       /* the lead the step runs on */
    fn_hash128_t hash; /* its hash (fn_step_lead_hash) */
    fn_str_t root;     /* DETACH, FORGET: the root's id */
    fn_str_t cause;    /* the identify's (or, FORGET, the erase's) event id; ROOT: '' when
                        * following a chain rather than at lead_id */
    fn_str_t result;   /* DONE: the result to store */
    int64_t root_ids;  /* DETACH: the ids the root holds, itself included */
    const struct fn_merge_plan *plan; /* APPLY: what fn_merge_plan computed */
    const char *due;                  /* APPLY: the due zset new timers go to */
    int64_t now_ms;
    int64_t due_by; /* DETACH, READ: the lead's timers due by then fire first */
} fn_merge_cmd_t;

/* Writes the RESP EVALSHA of c into out (sha: merge.lua's digest). FN_OK or FN_ERR (OOM). */
int fn_merge_build(const fn_config_t *cfg, const char *sha, const fn_merge_cmd_t *c, fn_buf_t *out);

/* What "apply" writes, computed from the root's hash as read (kept) and the absorbed lead's
 * snapshot; the RESP words after the step's fixed arguments (merge.lua, "apply") go into
 * plan, the pending result (the token, then the outputs as a JSON array) into pending, and
 * the output payloads one by one into outputs (each NUL-terminated, in order). */
typedef struct fn_merge_input {
    const fn_config_t *cfg;
    const redisReply *kept;     /* HGETALL of the root: {field, value, ...} */
    const redisReply *absorbed; /* the snapshot: HGETALL of previous_id's lead */
    const redisReply *ids;      /* the ids merged into previous_id before */
    const redisReply *touches;  /* its touches for attribution {member, score, ...}, or NULL */
    const fn_event_t *ev;       /* the identify, its lead_id the root's id */
    fn_str_t absorbed_id;
    const char *root_key; /* the root's lead hash key: timer members name it */
    const char *due_tail; /* "<topic>:<partition>" of the due zset new timers go to */
    const char *token;    /* "<instance>:<message>" */
    int64_t now_ms;
} fn_merge_input_t;

typedef struct fn_merge_plan {
    fn_buf_t args; /* counted lists, RESP-free: "len:bytes" words (see fn_merge_build) */
    size_t n_args;
    fn_buf_t pending; /* token|["merged", payload, ...] */
    fn_buf_t outputs; /* payloads, each NUL-terminated */
    size_t n_outputs;
    size_t n_transitions; /* of the outputs: stage_changed/converted (the rest lead_merged) */
    int64_t armed_due;    /* earliest timer armed in the due zset, or 0 */
} fn_merge_plan_t;

/* Computes the plan. FN_OK, or FN_ERR on OOM. */
int fn_merge_plan(const fn_merge_input_t *in, fn_merge_plan_t *plan);
/* Frees the plan's buffers (the struct itself is the caller's). */
void fn_merge_plan_free(fn_merge_plan_t *plan);

/* Reads a lead hash ({field, value, ...}) the way the merge rules see it. Strings point
 * into r. */
void fn_merge_read_lead(const fn_config_t *cfg, const redisReply *r, fn_merge_lead_t *out);

/* The value of field in a lead hash reply ({field, value, ...}), or {NULL, 0}. */
fn_str_t fn_merge_hget(const redisReply *r, const char *field);

/* Splits a stored pending result "token|[...]": the owner token, and the payloads into
 * outputs (each NUL-terminated, like fn_merge_plan's). FN_ERR when it is not one. */
int fn_merge_pending_outputs(const char *p, size_t len, fn_str_t *owner, fn_buf_t *outputs,
                             size_t *n);

/* Script source, embedded at build time from merge.lua. */
extern const char fn_lua_merge_src[];

#endif
