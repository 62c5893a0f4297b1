/*
 * keys.h — every Redis key and lead-hash field name funneld uses, from the one definition in
 * daemon/state/keys.def (the Lua scripts get the same names from it, generated at build
 * time: see cmake/keys_lua.cmake). Pure: the functions write into the caller's buffer, never
 * allocate, and truncate (NUL-terminated) a key that does not fit.
 */
#ifndef FUNNELD_KEYS_H
#define FUNNELD_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* The names as constant strings: FN_KEY_<NAME> is a key's part after "<prefix>:{<shard>}:"
 * or "<prefix>:", FN_F_<NAME> a lead-hash field, FN_FF_<NAME> the suffix of a funnel's
 * lead-hash field ("<funnel><suffix>"), FN_<NAME> a value (see keys.def for each). */
#define FN_SHARD_KEY(name, s) extern const char FN_KEY_##name[];
#define FN_PREFIX_KEY(name, s) extern const char FN_KEY_##name[];
#define FN_FIELD(name, s) extern const char FN_F_##name[];
#define FN_FUNNEL_FIELD(name, s) extern const char FN_FF_##name[];
#define FN_TOKEN(name, s) extern const char FN_##name[];
#include "../../daemon/state/keys.def"
#undef FN_SHARD_KEY
#undef FN_PREFIX_KEY
#undef FN_FIELD
#undef FN_FUNNEL_FIELD
#undef FN_TOKEN

/* Every name above as {Lua name (K.<name>), text}, in keys.def's order, for the test that
 * holds the Lua prelude to the C names. */
typedef struct fn_key_name {
    const char *name, *text;
} fn_key_name_t;
extern const fn_key_name_t fn_key_names[];
extern const size_t fn_key_n_names;

/* "<prefix>:{<shard>}:" + part + tail[0..taillen) into out; returns the length written. */
size_t fn_key_shard(char *out, size_t outlen, const char *prefix, unsigned shard, const char *part,
                    const char *tail, size_t taillen);

/* A lead's keys, named by its hash in hex (32 characters, fn_hash_hex). */
void fn_key_lead(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex);
void fn_key_seen(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex);
void fn_key_out(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex);
/* The ids merged into a lead (a set, in the lead's shard). */
void fn_key_ids(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex);
/* A lead's recent touches, for multi-touch attribution (a zset, in the lead's shard). */
void fn_key_touches(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex);
/* A shard's keys: counters, trigger outbox and its leases. */
void fn_key_stats(char *out, size_t outlen, const char *prefix, unsigned shard);
void fn_key_outbox(char *out, size_t outlen, const char *prefix, unsigned shard);
void fn_key_leases(char *out, size_t outlen, const char *prefix, unsigned shard);
/* The timers that events of topic/partition armed for the shard's leads. */
void fn_key_due(char *out, size_t outlen, const char *prefix, unsigned shard, const char *topic,
                int32_t partition);
/* The member of timer (funnel, reason[0..reason_len)) of the lead whose key is lead_key
 * (fn_key_lead) in a due zset: "<hex>|<funnel>|<reason>", the lead key's tail (the zset is in
 * the lead's shard; daemon/timers/timer.lua reads members). Returns the length. */
size_t fn_key_timer_member(char *out, size_t outlen, const char *lead_key, const char *funnel,
                           const char *reason, size_t reason_len);
/* The data set's epoch marker. */
void fn_key_epoch(char *out, size_t outlen, const char *prefix);
/* A shard's epoch marker: on a Redis Cluster each master keeps those of its shards. */
void fn_key_shard_epoch(char *out, size_t outlen, const char *prefix, unsigned shard);
/* A funnel's bottleneck state. */
void fn_key_bn(char *out, size_t outlen, const char *prefix, const char *funnel);
/* Each running daemon's input rate and lag (the live view's group figures). */
void fn_key_live(char *out, size_t outlen, const char *prefix);
/* The lock of one evaluation tick of a funnel; snapshot marks a snapshot tick's own lock. */
void fn_key_eval(char *out, size_t outlen, const char *prefix, const char *funnel, int64_t tick,
                 int snapshot);

/* A funnel's lead-hash field: "<funnel><suffix>" (suffix one of FN_FF_*). */
void fn_field_funnel(char *out, size_t outlen, const char *funnel, const char *suffix);

/* A script returning {name, text, ...} for every name the Lua scripts may write K.NAME for,
 * generated from keys.def and step.h and embedded through the same substitution: the test
 * that C and Lua agree runs it. */
extern const char fn_lua_keys_src[];

#endif
