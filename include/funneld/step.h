/*
 * step.h — the Redis Lua step seen from C: building its command for one event and reading
 * its reply (the script is daemon/state/step.lua). Pure: no I/O.
 */
#ifndef FUNNELD_STEP_H
#define FUNNELD_STEP_H

#include <hiredis/hiredis.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/hash.h"

typedef enum {
    FN_STEP_OK = 0,
    FN_STEP_DUP,       /* already applied: nothing to emit */
    FN_STEP_ERASED,    /* the lead was erased */
    FN_STEP_COLLISION, /* another lead id owns this key */
    FN_STEP_REDIRECT,  /* the id was merged into another lead (target): nothing applied */
} fn_step_status_t;

typedef struct fn_attr {
    fn_str_t channel, campaign, source; /* empty strings mean "none" */
    int64_t at;
} fn_attr_t;

typedef struct fn_step_transition {
    const fn_funnel_t *funnel;
    char op;      /* 'E' enter, 'F' forward, 'B' back, 'C' convert, 'L' lost */
    int from, to; /* -1 for none */
    int64_t time_in_stage_ms, cycle_ms, touches;
    /* a conversion's multi-touch credit, {model number, channel, campaign, weight, ...}
     * (strings; attribution.lua), or NULL */
    const redisReply *credit;
} fn_step_transition_t;

/* At most one transition per funnel the step names. */
#define FN_STEP_MAX_TRANSITIONS FN_MAX_FUNNELS

/* The step's command, word by word (step.lua reads the same positions by these names, and
 * refuses, before touching anything, a command whose length does not match its funnel
 * count): EVALSHA, the digest, the key count, the keys, the fixed arguments (ARGV 1..15,
 * the last being the funnel count), then per funnel its name, stage count, plan and timer
 * spec, then the trigger caps, the bound of due timers, the funnels' max_breakdown list and
 * their marketing analytics (FN_STEP_TAIL_MARKETING). */
#define FN_STEP_KEYS 7
#define FN_STEP_ARGV_FIXED 15
#define FN_STEP_ARGV_PER_FUNNEL 4
#define FN_STEP_ARGV_TAIL 4
/* The fixed arguments' ARGV indices. The build writes every FN_STEP_ name with a number into
 * the Lua scripts (K.STEP_ARG_NOW ...), so C and step.lua share this one list. */
#define FN_STEP_ARG_NOW 1
#define FN_STEP_ARG_DEDUPE_TTL 2
#define FN_STEP_ARG_LEAD_ID 3
#define FN_STEP_ARG_EVENT_ID 4
#define FN_STEP_ARG_TS 5
#define FN_STEP_ARG_KIND 6
#define FN_STEP_ARG_CHANNEL 7
#define FN_STEP_ARG_TYPE 8
#define FN_STEP_ARG_CAMPAIGN 9
#define FN_STEP_ARG_SOURCE 10
#define FN_STEP_ARG_VALUE 11
#define FN_STEP_ARG_MARKETING 12
#define FN_STEP_ARG_TOKEN 13
#define FN_STEP_ARG_CLUSTER 14
#define FN_STEP_ARG_NFUN 15
/* Funnel i's (from 0) arguments, at FN_STEP_ARGV_FIXED + FN_STEP_ARGV_PER_FUNNEL * i + j. */
#define FN_STEP_FARG_NAME 1
#define FN_STEP_FARG_STAGES 2
#define FN_STEP_FARG_PLAN 3
#define FN_STEP_FARG_TIMERS 4
/* The arguments after the last funnel, at the next funnel's place + j. */
#define FN_STEP_TAIL_CAPS 1
#define FN_STEP_TAIL_BOUND 2
#define FN_STEP_TAIL_BREAKDOWN 3
/* Multi-touch attribution, entry cohorts and breakdowns, one word so that a config without
 * them sends one empty word: "" when none of the funnels named has any, else "<touches a
 * lead keeps (0: none)>,<the funnel the event was routed to, or empty>" then per funnel
 * named, in order, ";<attribution>/<cohorts>/<breakdowns>": attribution "<model
 * numbers>|<lookback ms>|<max touches>|<half-life ms>" (fn_attr_model_t digits in the
 * configured order) or empty, cohorts "1" when counted, "r" when also regress is allowed (the
 * highest stage each lead reached is kept, so a lead counts once per stage), or empty,
 * breakdowns "<f|l><dimension>,..." (first or last touch) or empty; then, when a breakdown
 * is a props dimension, "\n" and per such dimension in that order the event's value as
 * "<bytes>:<text>" (at most FN_STEP_BD_VALUE_MAX bytes; "-1:" when absent). */
#define FN_STEP_TAIL_MARKETING 4
#define FN_STEP_BD_VALUE_MAX 128
/* Credited conversions and revenue are counted as integers (attribution.lua): conversions in
 * millionths, revenue in hundredths of the value's unit. */
/* Entry cohorts are weeks from Monday 00:00 UTC: week w begins at w * WEEK + OFFSET (the
 * epoch was a Thursday; its Monday came four days later). */
#define FN_STEP_WEEK_MS 604800000
#define FN_STEP_WEEK_OFFSET_MS 345600000
/* A seen set's score (daemon/state/README.md, daemon/state/seen.lua) counts whole units of
 * this many ms: in seconds a score fits a listpack's 32-bit integer, where a millisecond
 * epoch takes 64 bits per id. Scores from FN_STEP_SEEN_LEGACY_MIN up are milliseconds,
 * written before (no second of this era is that large; no millisecond since 1973 is less). */
#define FN_STEP_SEEN_UNIT_MS 1000
#define FN_STEP_SEEN_LEGACY_MIN 100000000000
_Static_assert(FN_STEP_SEEN_UNIT_MS == 1000, "seen.lua divides by dropping three digits");
/* A step prunes its lead's seen set (up to FN_STEP_PRUNE_MAX ids past the window) and moves
 * the set's expiry on one call in FN_STEP_PRUNE_ONE_IN, picked by the daemon's clock (its
 * millisecond), and looks for millisecond scores of before on one such call in
 * FN_STEP_PRUNE_ONE_IN again: step.lua and the fast path (fast.c, fast.lua) alike. */
#define FN_STEP_PRUNE_ONE_IN 8
#define FN_STEP_PRUNE_MAX 64
/* markov's model number (fn_attr_model_t) in the marketing word: it credits no conversion */
#define FN_STEP_MODEL_MARKOV 5
#define FN_STEP_CREDIT_CONV_UNITS 1000000
#define FN_STEP_CREDIT_MONEY_UNITS 100
_Static_assert(FN_STEP_MODEL_MARKOV == FN_ATTR_MARKOV, "markov's number");
_Static_assert(FN_STEP_ARG_NFUN == FN_STEP_ARGV_FIXED, "the funnel count ends the fixed arguments");
_Static_assert(FN_STEP_FARG_TIMERS == FN_STEP_ARGV_PER_FUNNEL, "four arguments per funnel");
_Static_assert(FN_STEP_TAIL_MARKETING == FN_STEP_ARGV_TAIL, "four arguments after the funnels");
#define FN_STEP_WORDS(n_funnels)                                                                   \
    (3 + FN_STEP_KEYS + FN_STEP_ARGV_FIXED + FN_STEP_ARGV_PER_FUNNEL * (n_funnels) +               \
     FN_STEP_ARGV_TAIL)
/* The longest command: an erase names every funnel of the largest config. */
#define FN_STEP_MAX_WORDS FN_STEP_WORDS(FN_MAX_FUNNELS)

/* A parsed reply. Strings point into the redisReply, which must outlive the result. */
typedef struct fn_step_result {
    fn_step_status_t status;
    bool replay;    /* OK or ERASED read back from an unacknowledged stored result */
    int64_t at;     /* event time as the lead's clock sees it (never earlier than before) */
    fn_str_t value; /* the lead's value as a decimal number, or empty */
    /* first and last touch: set when n_trans > 0 */
    fn_attr_t first, last;
    fn_step_transition_t trans[FN_STEP_MAX_TRANSITIONS];
    size_t n_trans;
    size_t n_unreadable;     /* transitions left out: this config cannot render them (see err) */
    bool applied;            /* the status says OK or ERASED: set even when the rest is malformed */
    int64_t armed_due;       /* earliest retargeting timer this step armed, or 0 */
    const redisReply *fired; /* outbox entries of timers that fired first, or NULL */
    fn_str_t target;         /* REDIRECT: the lead id the event's id was merged into */
    bool merge_pending;      /* REDIRECT: that lead has not absorbed this one yet */
} fn_step_result_t;

/* The lead's key names: every key of one lead and its shard's counters share the hash tag
 * "{<shard>}". The lead id itself never appears in a key, only its hash, so no id can reach
 * another lead's keys or another slot. */
typedef struct fn_lead_keys {
    char lead[96], seen[96], pending[96], stats[64], touches[96];
    unsigned shard;
} fn_lead_keys_t;

/* Name of the zset holding the retargeting timers that events of topic/partition armed for
 * leads of shard ("<prefix>:{<shard>}:due:<topic>:<partition>"): the daemon that owns the
 * partition fires them, by that partition's clock. */
void fn_step_due_key(const fn_config_t *cfg, unsigned shard, const char *topic, int32_t partition,
                     char *out, size_t outlen);

fn_hash128_t fn_step_lead_hash(const char *lead_id, size_t len);
/* The shard (hash tag) of a lead's keys. */
unsigned fn_step_shard(const fn_config_t *cfg, fn_hash128_t lead_hash);
void fn_step_keys(const fn_config_t *cfg, fn_hash128_t lead_hash, fn_lead_keys_t *k);
/* fn_step_keys' lead, seen, pending and shard only, the keys the fast path's read and apply
 * name (stats and touches are left empty). */
void fn_step_keys_fast(const fn_config_t *cfg, fn_hash128_t lead_hash, fn_lead_keys_t *k);

/* How a step is called: FCALL of the step library's function (fn_lua_step_lib, Redis 7
 * functions), or EVALSHA of the step script (fn_lua_step_src) by its 40-char digest where
 * functions cannot be loaded. The same code runs either way. */
typedef struct fn_step_call {
    const char *verb; /* "FCALL" or "EVALSHA" */
    const char *name; /* the function's name, or the script's digest */
} fn_step_call_t;

/* Writes the RESP-encoded step call for ev into out (call: see fn_step_call_t; token is
 * "<instance>:<message>", naming this daemon process and this consumed message, see step.lua;
 * clock_ms is the partition's event time at ev (fn_msg_t.clock_ms; 0: ev's own time), by which the
 * lead's due timers fire first; topic/partition is where ev was consumed, for its timers). Only the
 * funnels the event is routed to are sent; an erase names every funnel. */
int fn_step_build(const fn_config_t *cfg, const fn_step_call_t *call, const char *token,
                  const fn_event_t *ev, fn_hash128_t lead_hash, int64_t now_ms, int64_t clock_ms,
                  const char *topic, int32_t partition, fn_buf_t *out);

/* A command written as RESP, word by word, as the store sends it (hiredis's own formatting
 * cost more than the rest of a step's build): fn_resp_head empties out and writes the
 * count of n words, fn_resp_bulk appends one word. FN_ERR when out of memory. */
int fn_resp_head(fn_buf_t *out, size_t n);
int fn_resp_bulk(fn_buf_t *out, const char *p, size_t len);

/* Writes the trigger caps argument of the scripts ("name=max,per;..." for funnels with a
 * trigger_cap) into out. */
void fn_step_caps(const fn_config_t *cfg, char *out, size_t outlen);
/* How many touches a lead keeps for attribution: the largest max_touches of the funnels with
 * attribution, 0 when none has it. */
int64_t fn_step_touch_cap(const fn_config_t *cfg);

/* Parses a step reply. Returns FN_ERR with a reason in err for a malformed reply (then
 * res->applied tells whether its status said the event was applied); FN_OK otherwise, with
 * the transitions this config cannot render (a funnel it no longer has, a stage index out
 * of range) left out and counted in res->n_unreadable, the first one's reason in err. */
int fn_step_parse(const fn_config_t *cfg, const redisReply *r, fn_step_result_t *res, char *err,
                  size_t errlen);

/* Script source, embedded at build time from step.lua and its preludes. */
extern const char fn_lua_step_src[];
/* The same as a function library ("#!lua name=...", for FUNCTION LOAD) whose one function
 * has the library's name, fn_lua_step_lib_name: "funneld_step_" and 16 hex digits of the
 * script's digest, so each build's library stands apart (cmake/embed.cmake). */
extern const char fn_lua_step_lib[];
extern const char fn_lua_step_lib_name[];
/* The library's second function, the fast path's apply (daemon/state/fast.lua, fast.h). */
extern const char fn_lua_step_lib_fast_name[];
/* Whether reply, FUNCTION LOAD's answer to fn_lua_step_lib, leaves the step callable by FCALL:
 * the library's name, or "already exists" (the same build's library, by its name, is there). */
bool fn_step_lib_loaded(const redisReply *reply);

#endif
