/*
 * test_util.c — time parsing and formatting against an independent day count, durations,
 * the JSON string escaper, integer text and hash hex.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/common.h"
#include "funneld/hash.h"

static void test_time(void)
{
    static const struct {
        const char *text;
        int ok;
        long long ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 1, 0},
        {"2026-11-22T10:15:00.250Z", 1, 1795342500250LL},
        {"2026-11-22T12:15:00.250+02:00", 1, 1795342500250LL},
        {"2026-11-22T05:15:00.25-05:00", 1, 1795342500250LL},
        {"2026-11-22t10:15:00.2509z", 1, 1795342500250LL},
        {"2024-02-29T00:00:00Z", 1, 1709164800000LL},
        {"2023-02-29T00:00:00Z", 0, 0},
        {"2026-13-01T00:00:00Z", 0, 0},
        {"2026-11-22T24:00:00Z", 0, 0},
        {"2026-11-22T10:15:00", 0, 0},
        {"2026-11-22T10:15:00.Z", 0, 0},
        {"2026-11-22 10:15:00Z", 0, 0},
        {"2026-11-22T10:15:00Zjunk", 0, 0},
        {"", 0, 0},
        {"9999-12-31T23:59:59.999Z", 1, 253402300799999LL},
        {"0000-01-01T00:00:00Z", 1, -62167219200000LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ms = 0;
        int ok = fn_time_parse(cases[i].text, strlen(cases[i].text), &ms) == FN_OK;
        if (ok != cases[i].ok)
            fprintf(stderr, "case %s\n", cases[i].text);
        CHECK_INT(ok, cases[i].ok);
        if (ok && cases[i].ok)
            CHECK_INT(ms, cases[i].ms);
    }
    /* format and parse are inverse over a wide range, including before 1970 */
    for (int64_t ms = -86400000LL * 366 * 3; ms < 253402300799999LL; ms += 7777777777LL + 13) {
        char buf[40];
        int64_t back = -1;
        size_t n = fn_time_format(ms, buf, sizeof buf);
        if (fn_time_parse(buf, n, &back) != FN_OK || back != ms) {
            CHECK_INT(back, ms);
            break;
        }
    }
    char buf[40];
    fn_time_format(1795342500250LL, buf, sizeof buf);
    CHECK_STR(buf, "2026-11-22T10:15:00.250Z");
}

static void test_duration(void)
{
    int64_t ms;
    CHECK(fn_duration_parse("90s", &ms) == FN_OK && ms == 90000);
    CHECK(fn_duration_parse("15m", &ms) == FN_OK && ms == 900000);
    CHECK(fn_duration_parse("48h", &ms) == FN_OK && ms == 172800000);
    CHECK(fn_duration_parse("7d", &ms) == FN_OK && ms == 604800000);
    CHECK(fn_duration_parse("250ms", &ms) == FN_OK && ms == 250);
    CHECK(fn_duration_parse("0s", &ms) == FN_OK && ms == 0);
    CHECK(fn_duration_parse("1.5h", &ms) == FN_ERR);
    CHECK(fn_duration_parse("h", &ms) == FN_ERR);
    CHECK(fn_duration_parse("-1s", &ms) == FN_ERR);
    CHECK(fn_duration_parse("10", &ms) == FN_ERR);
    CHECK(fn_duration_parse("10w", &ms) == FN_ERR);
    CHECK(fn_duration_parse("99999999999999999999d", &ms) == FN_ERR);
    CHECK(fn_duration_parse("9999999999999999d", &ms) == FN_ERR);
}

static void test_json_str(void)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"", 0, "\"\""},
        {"web", 3, "\"web\""},
        {"a\"b\\c\n\x01", 7, "\"a\\\"b\\\\c\\u000a\\u0001\""},
        {"\"", 1, "\"\\\"\""},
        {"\\\\", 2, "\"\\\\\\\\\""},
        {"x\x1f", 2, "\"x\\u001f\""},
        {"\x7f\xc3\xa9/", 4, "\"\x7f\xc3\xa9/\""}, /* DEL, UTF-8 and '/' as they are */
        {"a\0b", 3, "\"a\\u0000b\""},
    };
    fn_buf_t b = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fn_buf_reset(&b);
        CHECK(fn_buf_append(&b, "[", 1) == FN_OK);
        CHECK(fn_buf_append_json_str(&b, cases[i].in, cases[i].n) == FN_OK);
        CHECK(b.len == 1 + strlen(cases[i].out) && b.data[b.len] == '\0');
        CHECK_STR(b.data + 1, cases[i].out);
    }
    /* each character that needs an escape, at every place in and around an eight-byte word,
     * among plain ASCII and UTF-8 (whose bytes have the top bit set) */
    static const char special[] = {'"', '\\', '\n', '\x1f', '\0', '\x01'};
    static const char *const plain[] = {"a", "\xc3\xa9", "~", " "};
    int wrong = 0;
    for (size_t k = 0; k < sizeof special; k++)
        for (size_t pl = 0; pl < sizeof plain / sizeof *plain; pl++)
            for (size_t at = 0; at < 20; at++) {
                char in[64], want[160];
                size_t n = 0, w = 0;
                bool placed = false;
                want[w++] = '"';
                while (n < 24) {
                    if (n >= at && !placed) {
                        placed = true;
                        in[n++] = special[k];
                        unsigned char c = (unsigned char)special[k];
                        w += (size_t)(c < 0x20 ? snprintf(want + w, 8, "\\u%04x", c)
                                               : snprintf(want + w, 8, "\\%c", c));
                    } else {
                        for (const char *p = plain[pl]; *p && n < 24; p++)
                            in[n++] = want[w++] = *p;
                    }
                }
                want[w++] = '"';
                want[w] = '\0';
                fn_buf_reset(&b);
                if (fn_buf_append_json_str(&b, in, n) != FN_OK || strcmp(b.data, want) != 0)
                    wrong++;
            }
    CHECK_INT(wrong, 0);
    /* long enough to grow the buffer between runs and escapes */
    char big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = i % 100 == 0 ? '"' : 'a';
    fn_buf_t w = {0};
    CHECK(fn_buf_append_json_str(&w, big, sizeof big) == FN_OK);
    CHECK(w.len == sizeof big + 30 + 2 && w.data[0] == '"' && w.data[w.len - 1] == '"');
    CHECK(w.data[1] == '\\' && w.data[2] == '"' && w.data[3] == 'a' && w.data[102] == '\\');
    fn_buf_free(&w);
    fn_buf_reset(&b);
    CHECK(fn_buf_appendf(&b, "%0300d", 7) == FN_OK && b.len == 300);
    fn_buf_free(&b);
}

/* Found by fuzz_config: what the config accepts must be what connects, never misread. */
static void test_redis_url(void)
{
    static const struct {
        const char *url, *host, *user, *pass;
        int port, db;
    } good[] = {
        {"redis://u:p@h.example:6380/3", "h.example", "u", "p", 6380, 3},
        {"redis://:secret@10.0.0.1", "10.0.0.1", "", "secret", 6379, 0},
        /* found by fuzz_config too: a userinfo without a colon is the password, as redis-cli
         * reads it, not a user name sent without one (which skipped AUTH altogether) */
        {"redis://secret@h:6380", "h", "", "secret", 6380, 0},
        {"redis://u:@h/2", "h", "u", "", 6379, 2},
    };
    char host[256], user[128], pass[256];
    int port = 0, db = -1;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        CHECK_INT(fn_redis_url_parse(good[i].url, host, sizeof host, &port, user, sizeof user, pass,
                                     sizeof pass, &db),
                  FN_OK);
        CHECK_STR(host, good[i].host);
        CHECK_STR(user, good[i].user);
        CHECK_STR(pass, good[i].pass);
        CHECK_INT(port, good[i].port);
        CHECK_INT(db, good[i].db);
    }
    /* too long for its buffer: refused, not cut */
    char longhost[400], longpass[300];
    snprintf(longhost, sizeof longhost, "redis://%0300d:1", 0);
    snprintf(longpass, sizeof longpass, "redis://%0260d@h", 0);
    const char *bad[] = {"redis://[::1]:6379/0",
                         "redis://h:",
                         "redis://h:4294973675/0",
                         "redis://h:6379x/1",
                         "redis://h:6379/1x",
                         "redis://h/-3",
                         "redis://h:0",
                         "redis://",
                         "http://h:6379",
                         "redis://:6379",
                         longhost,
                         longpass};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_INT(fn_redis_url_parse(bad[i], host, sizeof host, &port, user, sizeof user, pass,
                                     sizeof pass, &db),
                  FN_ERR);
}

/* Credentials in kafka.properties: which names are secret, and their values cut out of
 * librdkafka's texts, also when the text was truncated in the middle of one. */
static void test_redis_seed(void)
{
    static const struct {
        const char *seed;
        int ok;
        const char *host;
        int port;
    } cases[] = {
        {"127.0.0.1:7000", 1, "127.0.0.1", 7000},
        {"redis-0.redis.svc:6379", 1, "redis-0.redis.svc", 6379},
        {"h", 0, "", 0},          /* the port is not optional */
        {"h:0", 0, "", 0},        /* out of range */
        {"u:p@h:7000", 0, "", 0}, /* credentials are redis.url's */
        {"h:7000/1", 0, "", 0},   /* a cluster has database 0 only */
        {":7000", 0, "", 0},      /* no host */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char host[256] = "";
        int port = 0;
        int rc = fn_redis_seed_parse(cases[i].seed, host, sizeof host, &port);
        CHECK_INT(rc == FN_OK, cases[i].ok);
        if (cases[i].ok) {
            CHECK_STR(host, cases[i].host);
            CHECK_INT(port, cases[i].port);
        }
    }
}

static void test_secrets_are_redacted(void)
{
    const char *secret[] = {"sasl.password",         "ssl.key.password",
                            "ssl.keystore.password", "sasl.oauthbearer.client.secret",
                            "ssl.key.pem",           "sasl.oauthbearer.config",
                            "SASL.Password",         "my.custom.secret.thing"};
    const char *plain[] = {"sasl.username",     "sasl.mechanism",   "security.protocol",
                           "ssl.ca.location",   "ssl.key.location", "ssl.certificate.pem",
                           "bootstrap.servers", "linger.ms"};
    for (size_t i = 0; i < sizeof secret / sizeof *secret; i++)
        CHECK(fn_secret_key(secret[i]));
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        CHECK(!fn_secret_key(plain[i]));

    char t[128];
    snprintf(t, sizeof t, "Invalid value \"hunter22\" for \"sasl.password\"; hunter22!");
    fn_redact(t, sizeof t, "hunter22");
    CHECK_STR(t, "Invalid value \"[redacted]\" for \"sasl.password\"; [redacted]!");
    snprintf(t, sizeof t, "value \"hunter");
    fn_redact(t, sizeof t, "hunter22"); /* cut off while quoting it */
    CHECK_STR(t, "value \"[redacted]");
    snprintf(t, sizeof t, "ends with hun");
    fn_redact(t, sizeof t, "hunter22"); /* three bytes give nothing away */
    CHECK_STR(t, "ends with hun");
    snprintf(t, sizeof t, "nothing here");
    fn_redact(t, sizeof t, "");
    CHECK_STR(t, "nothing here");
    char small[16];
    snprintf(small, sizeof small, "pw=ab x");
    fn_redact(small, sizeof small, "ab"); /* grows, still fits */
    CHECK_STR(small, "pw=[redacted] x");
    snprintf(small, sizeof small, "0123456789ab x");
    fn_redact(small, sizeof small, "ab"); /* the mark does not fit: cut before the secret */
    CHECK_STR(small, "0123456789");
    snprintf(small, sizeof small, "ab ab ab ab ab");
    fn_redact(small, sizeof small, "ab");
    CHECK(strstr(small, "ab") == NULL);
    CHECK(strlen(small) < sizeof small);
}

/* fn_i64_text replaced printf("%lld") on the hot path: same text over the whole range. */
static void test_i64_text(void)
{
    const int64_t cases[] = {0,         1,        -1, 9, 10, -10, 123456789, 1795342500250LL,
                             INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[32], got[FN_I64_TEXT];
        snprintf(want, sizeof want, "%lld", (long long)cases[i]);
        size_t n = fn_i64_text(cases[i], got);
        CHECK_STR(got, want);
        CHECK_INT(n, strlen(want));
    }
    /* every digit count, at and around each power of ten, both signs */
    for (int64_t p = 1; p > 0; p = p <= INT64_MAX / 10 ? p * 10 : 0) { /* 1 .. 10^18 */
        for (int64_t d = -1; d <= 1; d++) {
            for (int sign = -1; sign <= 1; sign += 2) {
                int64_t v = sign * (p + d);
                char want[32], got[FN_I64_TEXT];
                snprintf(want, sizeof want, "%lld", (long long)v);
                CHECK_INT(fn_i64_text(v, got), strlen(want));
                CHECK_STR(got, want);
                int64_t back = 0;
                CHECK(fn_i64_parse(got, strlen(got), &back) == FN_OK && back == v);
            }
        }
    }
    /* fn_i64_parse reads back what fn_i64_text writes, and nothing else */
    static const struct {
        const char *s;
        int rc;
        int64_t v;
    } parse[] = {
        {"0", FN_OK, 0},
        {"-0", FN_OK, 0},
        {"007", FN_OK, 7},
        {"1795440000000", FN_OK, 1795440000000LL},
        {"9223372036854775807", FN_OK, INT64_MAX},
        {"-9223372036854775808", FN_OK, INT64_MIN},
        {"9223372036854775808", FN_ERR, 0},
        {"-9223372036854775809", FN_ERR, 0},
        {"99999999999999999999", FN_ERR, 0},
        {"", FN_ERR, 0},
        {"-", FN_ERR, 0},
        {"+1", FN_ERR, 0},
        {" 1", FN_ERR, 0},
        {"1 ", FN_ERR, 0},
        {"1.5", FN_ERR, 0},
        {"1e3", FN_ERR, 0},
        {"--1", FN_ERR, 0},
        {"0x10", FN_ERR, 0},
    };
    for (size_t i = 0; i < sizeof parse / sizeof *parse; i++) {
        int64_t v = 42;
        int rc = fn_i64_parse(parse[i].s, strlen(parse[i].s), &v);
        if (rc != parse[i].rc || v != (rc == FN_OK ? parse[i].v : 42))
            fprintf(stderr, "fn_i64_parse(\"%s\"): %d, %lld\n", parse[i].s, rc, (long long)v);
        CHECK(rc == parse[i].rc && v == (rc == FN_OK ? parse[i].v : 42));
    }
    int64_t two;
    CHECK(fn_i64_parse("12", 1, &two) == FN_OK && two == 1); /* only len bytes are read */
    int wrong = 0;                                           /* each of the short ones */
    for (int64_t v = -1000; v <= 1000; v++) {
        char want[32], got[FN_I64_TEXT];
        snprintf(want, sizeof want, "%lld", (long long)v);
        int64_t back;
        wrong += fn_i64_text(v, got) != strlen(want) || strcmp(got, want) != 0 ||
                 fn_i64_parse(got, strlen(got), &back) != FN_OK || back != v;
    }
    CHECK_INT(wrong, 0);
    fn_buf_t b = {0};
    CHECK(fn_buf_append_i64(&b, -42) == FN_OK && fn_buf_append_i64(&b, 7) == FN_OK);
    CHECK_STR(b.data, "-427");
    fn_buf_free(&b);
    char hex[33];
    fn_hash_hex((fn_hash128_t){0x0123456789abcdefULL, 0xfedcba9876543210ULL}, hex);
    CHECK_STR(hex, "0123456789abcdeffedcba9876543210");
}

int main(void)
{
    test_redis_url();
    test_redis_seed();
    test_secrets_are_redacted();
    test_i64_text();
    test_time();
    test_duration();
    test_json_str();
    return fn_test_result("test_util");
}
