/*
 * common.h — small things every funneld module shares: status codes, time helpers and a
 * growable byte buffer. Nothing here touches the network or keeps global state.
 */
#ifndef FUNNELD_COMMON_H
#define FUNNELD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FN_OK 0
#define FN_ERR (-1)

#define FN_MAX_STAGES 60 /* stage indexes are encoded as one character in the Lua plan */
#define FN_MAX_ID_LEN 128
#define FN_MAX_FUNNELS 64 /* funnels in one config: one step carries them all */
#define FN_MAX_RULES 32   /* retarget rules per funnel */
#define FN_NAME_MAX 64
/* The output topics (transitions, retargeting, bottlenecks, snapshots, dlq): output.h. */
#define FN_OUT_TOPICS 5

/* Wall-clock time in epoch milliseconds. */
int64_t fn_now_ms(void);

/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds ("2026-11-22T10:15:00.250Z")
 * into out (at least 32 bytes). Returns the length written. */
size_t fn_time_format(int64_t ms, char *out, size_t outlen);

/* Parses an RFC 3339 timestamp (with 'Z' or an offset, optional fraction) into epoch ms.
 * Returns FN_OK, or FN_ERR when the text is not a valid timestamp. */
int fn_time_parse(const char *s, size_t len, int64_t *out_ms);

/* Parses a duration: "250ms", "90s", "15m", "48h", "7d" (one unit, non-negative integer).
 * Returns FN_OK and the value in milliseconds, or FN_ERR. */
int fn_duration_parse(const char *s, int64_t *out_ms);

/* Splits redis://[[user]:password@]host[:port][/db] (port 6379 and db 0 by default); as in
 * redis-cli, "redis://secret@host" names a password. Returns FN_OK, or FN_ERR when there is no
 * host, the port is out of range or a credential does not fit its buffer. */
int fn_redis_url_parse(const char *url, char *host, size_t hostlen, int *port, char *user,
                       size_t userlen, char *pass, size_t passlen, int *db);

/* Splits a Redis Cluster seed, "host:port" (no credentials, no database, the port given).
 * Returns FN_OK, or FN_ERR for anything else. */
int fn_redis_seed_parse(const char *seed, char *host, size_t hostlen, int *port);

/* True when a librdkafka property's value is a credential: a name containing "password" or
 * "secret" (sasl.password, ssl.key.password, ssl.keystore.password,
 * sasl.oauthbearer.client.secret), ssl.key.pem and sasl.oauthbearer.config. Such values are
 * never written to a log. */
bool fn_secret_key(const char *key);

/* Replaces, in the NUL-terminated text (cap bytes of room), every occurrence of secret with
 * "[redacted]", and also a secret cut off at the end of the text (a message truncated while
 * quoting it). The result is truncated to fit; nothing is done for an empty secret. */
void fn_redact(char *text, size_t cap, const char *secret);

/* A growable byte buffer; the owner calls fn_buf_free. Append functions return FN_ERR only
 * when memory runs out. */
typedef struct fn_buf {
    char *data;
    size_t len;
    size_t cap;
} fn_buf_t;

void fn_buf_reset(fn_buf_t *b);
void fn_buf_free(fn_buf_t *b);
int fn_buf_append(fn_buf_t *b, const void *p, size_t n);
/* Makes room for extra more bytes and a NUL, so that they can be written at data + len. */
int fn_buf_reserve(fn_buf_t *b, size_t extra);
int fn_buf_appendf(fn_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the decimal text of v. */
int fn_buf_append_i64(fn_buf_t *b, int64_t v);
/* Writes the decimal text of v and a NUL into out (at least FN_I64_TEXT bytes); returns its
 * length. printf's cost (locale, format parsing) showed in every event's profile. */
#define FN_I64_TEXT 21
size_t fn_i64_text(int64_t v, char *out);
/* Reads s[0..len) as the decimal text of an int64: an optional '-', then digits only (no
 * space, no '+'). FN_ERR, *out untouched, for anything else or a value out of range. */
int fn_i64_parse(const char *s, size_t len, int64_t *out);

/* Bounded appends by hand, for text made for every event (printf's cost showed in the
 * profile): s[0..n), or v's decimal text, go to out at *at, which advances; like snprintf
 * they truncate and keep a NUL within outlen bytes. */
void fn_cat(char *out, size_t outlen, size_t *at, const char *s, size_t n);
void fn_cat_i64(char *out, size_t outlen, size_t *at, int64_t v);
/* True when byte c needs no escape in a JSON string: not below 0x20 (DEL and UTF-8 bytes go
 * as they are), '"' or '\\'. */
static inline bool fn_json_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}
/* fn_json_plain for each of the eight bytes at p, at once, so a scanner or writer can pass
 * them together. (x - 0x0101..) & ~x
 * has a byte's top bit set iff x has a zero byte (x - 0x2020..: a byte below 0x20), and x ^
 * '"' or x ^ '\\' in every byte keeps v's top bits, so ~v stands for all three. */
static inline bool fn_json_plain8(const void *p)
{
    const uint64_t ones = 0x0101010101010101u, tops = 0x8080808080808080u;
    uint64_t v;
    memcpy(&v, p, 8);
    uint64_t q = v ^ (ones * '"'), bs = v ^ (ones * '\\');
    return !(((v - ones * 0x20) | (q - ones) | (bs - ones)) & ~v & tops);
}
/* Appends s as a JSON string literal (quotes included, escaped). */
int fn_buf_append_json_str(fn_buf_t *b, const char *s, size_t n);

#endif
