/*
 * keys.c — builds funneld's Redis key names from the one layout definition (keys.def, read
 * by include/funneld/keys.h and by the Lua prelude generator). Pure.
 *
 * Keys are put together by hand rather than with snprintf (fn_cat): several are made for
 * every event.
 */
#include "funneld/keys.h"

#include <string.h>

#include "funneld/common.h"

#define FN_SHARD_KEY(name, s) const char FN_KEY_##name[] = s;
#define FN_PREFIX_KEY(name, s) const char FN_KEY_##name[] = s;
#define FN_FIELD(name, s) const char FN_F_##name[] = s;
#define FN_FUNNEL_FIELD(name, s) const char FN_FF_##name[] = s;
#define FN_TOKEN(name, s) const char FN_##name[] = s;
#include "../../daemon/state/keys.def"
#undef FN_SHARD_KEY
#undef FN_PREFIX_KEY
#undef FN_FIELD
#undef FN_FUNNEL_FIELD
#undef FN_TOKEN

/* The Lua names: the C name without "FN_" (cmake/keys_lua.cmake names them the same way). */
#define FN_SHARD_KEY(name, s) {"KEY_" #name, s},
#define FN_PREFIX_KEY(name, s) {"KEY_" #name, s},
#define FN_FIELD(name, s) {"F_" #name, s},
#define FN_FUNNEL_FIELD(name, s) {"FF_" #name, s},
#define FN_TOKEN(name, s) {#name, s},
const fn_key_name_t fn_key_names[] = {
#include "../../daemon/state/keys.def"
};
#undef FN_SHARD_KEY
#undef FN_PREFIX_KEY
#undef FN_FIELD
#undef FN_FUNNEL_FIELD
#undef FN_TOKEN
const size_t fn_key_n_names = sizeof fn_key_names / sizeof *fn_key_names;

static void cat_s(char *out, size_t outlen, size_t *at, const char *s)
{
    fn_cat(out, outlen, at, s, strlen(s));
}

size_t fn_key_shard(char *out, size_t outlen, const char *prefix, unsigned shard, const char *part,
                    const char *tail, size_t taillen)
{
    char num[FN_I64_TEXT];
    size_t pl = strlen(prefix), nl = fn_i64_text(shard, num), ql = strlen(part);
    if (pl + nl + ql + taillen + 5 <= outlen) {
        /* the usual case, written in one pass (a step names eight keys) */
        char *w = out;
        memcpy(w, prefix, pl), w += pl;
        *w++ = ':', *w++ = '{';
        memcpy(w, num, nl), w += nl;
        *w++ = '}', *w++ = ':';
        memcpy(w, part, ql), w += ql;
        memcpy(w, tail, taillen), w += taillen;
        *w = '\0';
        return (size_t)(w - out);
    }
    size_t n = 0;
    if (outlen == 0)
        return 0;
    out[0] = '\0';
    fn_cat(out, outlen, &n, prefix, pl);
    fn_cat(out, outlen, &n, ":{", 2);
    fn_cat(out, outlen, &n, num, nl);
    fn_cat(out, outlen, &n, "}:", 2);
    fn_cat(out, outlen, &n, part, ql);
    fn_cat(out, outlen, &n, tail, taillen);
    return n;
}

void fn_key_lead(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_LEAD, hex, strlen(hex));
}

void fn_key_seen(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_SEEN, hex, strlen(hex));
}

void fn_key_ids(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_IDS, hex, strlen(hex));
}

void fn_key_touches(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_TOUCHES, hex, strlen(hex));
}

void fn_key_out(char *out, size_t outlen, const char *prefix, unsigned shard, const char *hex)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_OUT, hex, strlen(hex));
}

void fn_key_stats(char *out, size_t outlen, const char *prefix, unsigned shard)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_STATS, "", 0);
}

void fn_key_outbox(char *out, size_t outlen, const char *prefix, unsigned shard)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_OUTBOX, "", 0);
}

void fn_key_leases(char *out, size_t outlen, const char *prefix, unsigned shard)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_LEASES, "", 0);
}

size_t fn_key_timer_member(char *out, size_t outlen, const char *lead_key, const char *funnel,
                           const char *reason, size_t reason_len)
{
    size_t n = 0;
    if (outlen == 0)
        return 0;
    out[0] = '\0';
    /* the hex after the key's last ':' (the prefix may hold anything, the hex no ':') */
    const char *tail = strrchr(lead_key, ':');
    cat_s(out, outlen, &n, tail ? tail + 1 : lead_key);
    fn_cat(out, outlen, &n, "|", 1);
    cat_s(out, outlen, &n, funnel);
    fn_cat(out, outlen, &n, "|", 1);
    fn_cat(out, outlen, &n, reason, reason_len);
    return n;
}

void fn_key_due(char *out, size_t outlen, const char *prefix, unsigned shard, const char *topic,
                int32_t partition)
{
    size_t n = fn_key_shard(out, outlen, prefix, shard, FN_KEY_DUE, topic, strlen(topic));
    fn_cat(out, outlen, &n, ":", 1);
    fn_cat_i64(out, outlen, &n, partition);
}

/* "<prefix>:" + part + tail + suffix */
static void prefix_key(char *out, size_t outlen, const char *prefix, const char *part,
                       const char *tail, const char *suffix)
{
    size_t n = 0;
    if (outlen == 0)
        return;
    out[0] = '\0';
    cat_s(out, outlen, &n, prefix);
    fn_cat(out, outlen, &n, ":", 1);
    cat_s(out, outlen, &n, part);
    cat_s(out, outlen, &n, tail);
    cat_s(out, outlen, &n, suffix);
}

void fn_key_shard_epoch(char *out, size_t outlen, const char *prefix, unsigned shard)
{
    fn_key_shard(out, outlen, prefix, shard, FN_KEY_SHARD_EPOCH, "", 0);
}

void fn_key_epoch(char *out, size_t outlen, const char *prefix)
{
    prefix_key(out, outlen, prefix, FN_KEY_EPOCH, "", "");
}

void fn_key_bn(char *out, size_t outlen, const char *prefix, const char *funnel)
{
    prefix_key(out, outlen, prefix, FN_KEY_BN, funnel, "");
}

void fn_key_live(char *out, size_t outlen, const char *prefix)
{
    prefix_key(out, outlen, prefix, FN_KEY_LIVE, "", "");
}

void fn_key_eval(char *out, size_t outlen, const char *prefix, const char *funnel, int64_t tick,
                 int snapshot)
{
    prefix_key(out, outlen, prefix, FN_KEY_EVAL, funnel, ":");
    size_t n = strnlen(out, outlen);
    fn_cat_i64(out, outlen, &n, tick);
    if (snapshot)
        fn_cat(out, outlen, &n, ":s", 2);
}

void fn_field_funnel(char *out, size_t outlen, const char *funnel, const char *suffix)
{
    size_t n = 0;
    if (outlen == 0)
        return;
    out[0] = '\0';
    cat_s(out, outlen, &n, funnel);
    cat_s(out, outlen, &n, suffix);
}
