/*
 * util.c — time, duration and buffer helpers shared by every module (see common.h).
 * Time conversion is done by hand rather than with timegm()/strptime() so that parsing is
 * strict, locale-free and identical on every libc.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "funneld/common.h"

int64_t fn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

size_t fn_i64_text(int64_t v, char *out)
{
    /* Two digits per division: epoch milliseconds have thirteen. */
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";
    if (v >= 0 && v < 100) { /* most RESP lengths and counts */
        if (v < 10) {
            out[0] = (char)('0' + v);
            out[1] = '\0';
            return 1;
        }
        out[0] = pairs[2 * v], out[1] = pairs[2 * v + 1], out[2] = '\0';
        return 2;
    }
    char tmp[FN_I64_TEXT];
    size_t n = sizeof tmp, len = 0;
    /* Unsigned arithmetic: -INT64_MIN does not fit an int64_t. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        const char *d = pairs + 2 * (u % 100);
        u /= 100;
        tmp[--n] = d[1];
        tmp[--n] = d[0];
    }
    if (u >= 10) {
        tmp[--n] = pairs[2 * u + 1];
        tmp[--n] = pairs[2 * u];
    } else {
        tmp[--n] = (char)('0' + u);
    }
    if (v < 0)
        out[len++] = '-';
    memcpy(out + len, tmp + n, sizeof tmp - n);
    len += sizeof tmp - n;
    out[len] = '\0';
    return len;
}

int fn_i64_parse(const char *s, size_t len, int64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    size_t i = neg;
    if (i == len)
        return FN_ERR;
    /* the magnitude, unsigned: INT64_MIN's does not fit an int64_t */
    uint64_t u = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - (unsigned)'0';
        if (d > 9 || u > (max - d) / 10)
            return FN_ERR;
        u = u * 10 + d;
    }
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return FN_OK;
}

/* Writes v as exactly width digits (v < 10^width). */
static void put_digits(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
}

size_t fn_time_format(int64_t ms, char *out, size_t outlen)
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    /* The common case by hand (this runs several times per output event); other years keep
     * printf's rendering. */
    if (y >= 0 && y <= 9999 && outlen >= 25) {
        put_digits(out, (unsigned)y, 4);
        out[4] = '-';
        put_digits(out + 5, mo, 2);
        out[7] = '-';
        put_digits(out + 8, d, 2);
        out[10] = 'T';
        put_digits(out + 11, (unsigned)(rem / 3600000), 2);
        out[13] = ':';
        put_digits(out + 14, (unsigned)(rem / 60000 % 60), 2);
        out[16] = ':';
        put_digits(out + 17, (unsigned)(rem / 1000 % 60), 2);
        out[19] = '.';
        put_digits(out + 20, (unsigned)(rem % 1000), 3);
        out[23] = 'Z';
        out[24] = '\0';
        return 24;
    }
    int n = snprintf(out, outlen, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, mo, d,
                     (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                     (int)(rem % 1000));
    return n < 0 ? 0 : (size_t)n < outlen ? (size_t)n : outlen - 1;
}

static int digits(const char *s, size_t len, size_t at, size_t n, int *out)
{
    if (at + n > len)
        return FN_ERR;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[at + i];
        if (c < '0' || c > '9')
            return FN_ERR;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return FN_OK;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int fn_time_parse(const char *s, size_t len, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, off = 0;
    if (digits(s, len, 0, 4, &y) || len < 19 || s[4] != '-' || digits(s, len, 5, 2, &mo) ||
        s[7] != '-' || digits(s, len, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s, len, 11, 2, &h) || s[13] != ':' || digits(s, len, 14, 2, &mi) || s[16] != ':' ||
        digits(s, len, 17, 2, &sec))
        return FN_ERR;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return FN_ERR;
    size_t i = 19;
    int frac_ms = 0;
    if (i < len && s[i] == '.') {
        size_t nd = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++)
            if (nd < 3)
                frac_ms = frac_ms * 10 + (s[i] - '0');
        if (nd == 0)
            return FN_ERR;
        for (; nd < 3; nd++)
            frac_ms *= 10;
    }
    if (i >= len)
        return FN_ERR;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (digits(s, len, i + 1, 2, &oh) || i + 3 >= len || s[i + 3] != ':' ||
            digits(s, len, i + 4, 2, &om) || oh > 23 || om > 59)
            return FN_ERR;
        off = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return FN_ERR;
    }
    if (i != len)
        return FN_ERR;
    if (sec == 60) /* a leap second is read as the last millisecond-precise instant before it */
        sec = 59, frac_ms = 999;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
    *out_ms = secs * 1000 + frac_ms;
    return FN_OK;
}

int fn_duration_parse(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return FN_ERR;
    int64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return FN_ERR;
        v = v * 10 + (*p - '0');
    }
    if (p == s)
        return FN_ERR;
    int64_t unit;
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else if (strcmp(p, "d") == 0)
        unit = 86400000;
    else
        return FN_ERR;
    if (v > INT64_MAX / unit)
        return FN_ERR;
    *out_ms = v * unit;
    return FN_OK;
}

void fn_buf_reset(fn_buf_t *b)
{
    b->len = 0;
}

void fn_buf_free(fn_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int fn_buf_reserve(fn_buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return FN_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return FN_ERR;
    b->data = p;
    b->cap = cap;
    return FN_OK;
}

int fn_buf_append(fn_buf_t *b, const void *p, size_t n)
{
    if (fn_buf_reserve(b, n))
        return FN_ERR;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return FN_OK;
}

int fn_buf_append_i64(fn_buf_t *b, int64_t v)
{
    char tmp[FN_I64_TEXT];
    return fn_buf_append(b, tmp, fn_i64_text(v, tmp));
}

int fn_buf_appendf(fn_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return FN_ERR;
    if ((size_t)n < sizeof tmp)
        return fn_buf_append(b, tmp, (size_t)n);
    if (fn_buf_reserve(b, (size_t)n))
        return FN_ERR;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return FN_OK;
}

int fn_buf_append_json_str(fn_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* room for the usual string, which has nothing to escape: its runs go in whole */
    if (fn_buf_reserve(b, n + 2))
        return FN_ERR;
    b->data[b->len++] = '"';
    size_t run = 0; /* where the run of characters that need no escape began */
    for (size_t i = 0; i < n; i++) {
        while (i + 8 <= n && fn_json_plain8(s + i)) /* eight at a time */
            i += 8;
        if (i >= n)
            break;
        unsigned char c = (unsigned char)s[i];
        if (fn_json_plain(c))
            continue;
        char esc[6] = {'\\', (char)c};
        size_t el = 2;
        if (c < 0x20) {
            esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], el = 6;
        }
        if (fn_buf_append(b, s + run, i - run) || fn_buf_append(b, esc, el))
            return FN_ERR;
        run = i + 1;
    }
    if (fn_buf_reserve(b, n - run + 1)) /* room there already, unless something was escaped */
        return FN_ERR;
    if (n > run)
        memcpy(b->data + b->len, s + run, n - run);
    b->len += n - run;
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
    return FN_OK;
}

/* Decimal digits only, at most max; the rest of the text must be exactly [s, e). */
static int parse_uint(const char *s, const char *e, long max, long *out)
{
    long v = 0;
    if (s == e)
        return FN_ERR;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return FN_ERR;
        v = v * 10 + (*p - '0');
        if (v > max)
            return FN_ERR;
    }
    *out = v;
    return FN_OK;
}

static bool contains_nocase(const char *s, const char *needle)
{
    size_t n = strlen(needle);
    for (; *s; s++)
        if (strncasecmp(s, needle, n) == 0)
            return true;
    return false;
}

bool fn_secret_key(const char *key)
{
    return contains_nocase(key, "password") || contains_nocase(key, "secret") ||
           strcasecmp(key, "ssl.key.pem") == 0 || strcasecmp(key, "sasl.oauthbearer.config") == 0;
}

/* A tail this short that happens to begin the secret is left alone: it gives nothing away,
 * and redacting it would mangle ordinary messages that end the way a secret starts. */
#define REDACT_MIN_TAIL 4

void fn_redact(char *text, size_t cap, const char *secret)
{
    static const char mark[] = "[redacted]";
    size_t n = strlen(secret), len = cap ? strnlen(text, cap) : 0;
    if (!n || !cap)
        return;
    if (len == cap) /* not terminated within cap: a caller's mistake, never read past it */
        text[len = cap - 1] = '\0';
    /* Left to right, in place where the text shrinks; where it grows, the rest is moved
     * right first (and cut at cap). */
    size_t i = 0;
    while (i < len) {
        size_t rest = len - i;
        size_t hit = rest >= n && memcmp(text + i, secret, n) == 0 ? n
                     : rest < n && rest >= REDACT_MIN_TAIL && memcmp(text + i, secret, rest) == 0
                         ? rest
                         : 0;
        if (!hit) {
            i++;
            continue;
        }
        size_t m = sizeof mark - 1;
        size_t tail = len - i - hit; /* bytes after the secret */
        if (i + m >= cap) {          /* not even the mark fits: cut the text here */
            text[i] = '\0';
            return;
        }
        if (i + m + tail >= cap)
            tail = cap - 1 - i - m;
        memmove(text + i + m, text + i + hit, tail);
        memcpy(text + i, mark, m);
        len = i + m + tail;
        text[len] = '\0';
        i += m;
    }
}

int fn_redis_url_parse(const char *url, char *host, size_t hostlen, int *port, char *user,
                       size_t userlen, char *pass, size_t passlen, int *db)
{
    if (strncmp(url, "redis://", 8) != 0)
        return FN_ERR;
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    user[0] = pass[0] = '\0';
    if (at) {
        /* "user:password@", ":password@", or "password@": without a colon the text is the
         * password, as redis-cli reads it (a user alone would connect unauthenticated) */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : p, *pstart = colon ? colon + 1 : p;
        if ((size_t)(uend - p) >= userlen || (size_t)(at - pstart) >= passlen)
            return FN_ERR; /* never cut a credential */
        snprintf(user, userlen, "%.*s", (int)(uend - p), p);
        snprintf(pass, passlen, "%.*s", (int)(at - pstart), pstart);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hend = slash ? slash : p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(hend - p));
    long v = 6379;
    if (colon) {
        if (parse_uint(colon + 1, hend, 65535, &v) || v == 0)
            return FN_ERR;
        hend = colon;
    }
    *port = (int)v;
    if ((size_t)(hend - p) >= hostlen || hend == p || memchr(p, '[', (size_t)(hend - p)))
        return FN_ERR;
    snprintf(host, hostlen, "%.*s", (int)(hend - p), p);
    v = 0;
    if (slash && slash[1] && parse_uint(slash + 1, slash + strlen(slash), 1000000, &v))
        return FN_ERR;
    *db = (int)v;
    return FN_OK;
}

void fn_cat(char *out, size_t outlen, size_t *at, const char *s, size_t n)
{
    if (*at + 1 >= outlen)
        return;
    if (n > outlen - 1 - *at)
        n = outlen - 1 - *at;
    memcpy(out + *at, s, n);
    *at += n;
    out[*at] = '\0';
}

void fn_cat_i64(char *out, size_t outlen, size_t *at, int64_t v)
{
    char tmp[FN_I64_TEXT];
    fn_cat(out, outlen, at, tmp, fn_i64_text(v, tmp));
}

int fn_redis_seed_parse(const char *seed, char *host, size_t hostlen, int *port)
{
    char url[320], user[8], pass[8];
    int db;
    if (strlen(seed) > 300 || !strchr(seed, ':') || strpbrk(seed, "@/"))
        return FN_ERR;
    snprintf(url, sizeof url, "redis://%s", seed);
    return fn_redis_url_parse(url, host, hostlen, port, user, sizeof user, pass, sizeof pass, &db);
}
