/*
 * term.c — terminal-safe text for the tools (term.h).
 *
 * A code point is shown as it is unless a terminal would act on it: the C0 controls and DEL
 * (ESC starts every escape sequence), the C1 controls (U+009B is a one-character CSI for a
 * terminal that reads UTF-8 C1), the bidi controls (U+061C, U+200E, U+200F, U+202A..U+202E,
 * U+2066..U+2069: they reorder the rest of the line, "Trojan Source") and the line and
 * paragraph separators U+2028/U+2029. Bytes that do not decode as UTF-8 (overlong forms,
 * surrogates, beyond U+10FFFF, cut-off sequences) are never passed through either: a
 * terminal might combine them with what follows.
 */
#include "term.h"

static const char hex[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at s (up to len bytes) and its code point; 0 when the
 * first byte does not start one. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, v = c & 0x07, min = 0x10000;
    else
        return 0; /* a continuation byte, C0/C1 (overlong), or F5..FF */
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* True for a code point a terminal acts on instead of showing it. */
static bool acts_on_terminal(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
           cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static int append_u(fn_buf_t *out, uint32_t cp)
{
    char e[6] = {'\\', 'u', hex[cp >> 12 & 15], hex[cp >> 8 & 15], hex[cp >> 4 & 15], hex[cp & 15]};
    return fn_buf_append(out, e, sizeof e);
}

int fn_term_escape(fn_buf_t *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (fn_buf_reserve(out, len))
        return FN_ERR;
    out->data[out->len] = '\0'; /* also for an empty s */
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_next(p + i, len - i, &cp);
        int rc;
        if (n == 0 || cp < 0x20 || cp == 0x7f) {
            char e[4] = {'\\', 'x', hex[p[i] >> 4], hex[p[i] & 15]};
            rc = fn_buf_append(out, e, sizeof e);
            n = 1;
        } else if (cp == '\\') {
            rc = fn_buf_append(out, "\\\\", 2);
        } else if (acts_on_terminal(cp)) {
            rc = append_u(out, cp);
        } else {
            rc = fn_buf_append(out, p + i, n);
        }
        if (rc)
            return FN_ERR;
        i += n;
    }
    return FN_OK;
}

int fn_term_escape_json(fn_buf_t *out, const char *json, size_t len)
{
    const unsigned char *p = (const unsigned char *)json;
    if (fn_buf_reserve(out, len))
        return FN_ERR;
    out->data[out->len] = '\0'; /* also for an empty s */
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0;
        size_t n = utf8_next(p + i, len - i, &cp);
        int rc;
        /* JSON's own whitespace between tokens stays (jansson escapes every C0 control
         * inside strings) */
        bool space = cp == '\t' || cp == '\n' || cp == '\r';
        if (n == 0)
            rc = append_u(out, 0xfffd), n = 1;
        else if (!space && acts_on_terminal(cp))
            rc = append_u(out, cp);
        else
            rc = fn_buf_append(out, p + i, n);
        if (rc)
            return FN_ERR;
        i += n;
    }
    return FN_OK;
}
