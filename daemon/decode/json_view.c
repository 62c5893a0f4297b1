/*
 * json_view.c — the tree-free scanner of json_view.h.
 *
 * Building a jansson tree per message (an allocation per member, a hash table per object) was
 * most of the daemon's decoding cost, yet the daemon reads a dozen known members and then
 * drops the tree. This scanner reads the usual message in one pass into two fixed tables.
 * It declines, rather than reports, everything outside that shape: jansson then parses the
 * message, so the accepted set, the values read and every error text stay jansson's. Where
 * jansson's reading needs care it declines too: keys with escapes (duplicate detection would
 * have to compare decoded keys), "\u0000" and surrogate escapes, integers of more than 18
 * digits (jansson's range check), reals that overflow, nested values other than "props".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/common.h"
#include "funneld/json_view.h"

typedef struct scan {
    const unsigned char *p, *end;
    char *out; /* where the next decoded string goes */
} scan_t;

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The string token at s->p (its opening quote), decoded into s->out. A decoded string is
 * never longer than its token, so the output never outgrows the input. */
static bool scan_string(scan_t *s, bool is_key, const char **str, size_t *len)
{
    char *w = s->out;
    s->p++;
    for (;;) {
        const unsigned char *run = s->p;
        while (s->end - s->p >= 8 && fn_json_plain8(s->p)) /* eight at a time */
            s->p += 8;
        while (s->p < s->end && fn_json_plain(*s->p))
            s->p++;
        memcpy(w, run, (size_t)(s->p - run));
        w += s->p - run;
        if (s->p >= s->end || *s->p < 0x20)
            return false; /* unterminated, or a raw control character */
        if (*s->p == '"')
            break;
        if (is_key || s->end - s->p < 2)
            return false;
        unsigned char c = s->p[1];
        s->p += 2;
        static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
        const char *k = c ? strchr(simple_in, c) : NULL;
        if (k) {
            *w++ = simple_out[k - simple_in];
            continue;
        }
        if (c != 'u' || s->end - s->p < 4)
            return false;
        unsigned long cp = 0;
        for (int i = 0; i < 4; i++) {
            int h = hex_digit(s->p[i]);
            if (h < 0)
                return false;
            cp = cp << 4 | (unsigned long)h;
        }
        s->p += 4;
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        if (cp < 0x80) {
            *w++ = (char)cp;
        } else if (cp < 0x800) {
            *w++ = (char)(0xC0 | cp >> 6);
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *w++ = (char)(0xE0 | cp >> 12);
            *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    s->p++;
    *w = '\0';
    *str = s->out;
    *len = (size_t)(w - s->out);
    s->out = w + 1;
    return true;
}

/* Moves q past one or more digits; NULL when there is none. */
static const unsigned char *digits(const unsigned char *q, const unsigned char *end)
{
    if (q >= end || !is_digit(*q))
        return NULL;
    while (q < end && is_digit(*q))
        q++;
    return q;
}

/* A number token (RFC 8259's grammar, as jansson's lexer reads it). */
static bool scan_number(scan_t *s, fn_jv_t *v)
{
    const unsigned char *a = s->p, *q = a;
    if (q < s->end && *q == '-')
        q++;
    const unsigned char *int_part = q;
    q = q < s->end && *q == '0' ? q + 1 : digits(q, s->end);
    if (!q)
        return false;
    size_t n_int = (size_t)(q - int_part);
    bool real = false;
    if (q < s->end && *q == '.') {
        if (!(q = digits(q + 1, s->end)))
            return false;
        real = true;
    }
    if (q < s->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < s->end && (*q == '+' || *q == '-'))
            q++;
        if (!(q = digits(q, s->end)))
            return false;
        real = true;
    }
    char tmp[48];
    size_t n = (size_t)(q - a);
    if (n >= sizeof tmp || (!real && n_int > 18))
        return false;
    memcpy(tmp, a, n);
    tmp[n] = '\0';
    if (real) {
        v->type = FN_JV_REAL;
        v->d = strtod(tmp, NULL);
        if (isinf(v->d))
            return false; /* jansson: "real number overflow" */
    } else {
        v->type = FN_JV_INTEGER;
        v->i = strtoll(tmp, NULL, 10);
    }
    s->p = q;
    return true;
}

static bool scan_literal(scan_t *s, const char *word, fn_jv_type_t type, fn_jv_t *v)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    v->type = type;
    return true;
}

/* The object at s->p (its '{'). props: where a member "props" that is an object goes; NULL
 * inside props itself, where a nested value declines. */
static bool scan_object(scan_t *s, fn_jv_object_t *o, fn_jv_object_t *props)
{
    o->n = 0;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"' || o->n == FN_JV_MAX_MEMBERS)
            return false;
        fn_jv_member_t *m = &o->m[o->n];
        memset(m, 0, sizeof *m);
        if (!scan_string(s, true, &m->key, &m->klen))
            return false;
        for (size_t j = 0; j < o->n; j++)
            if (o->m[j].klen == m->klen && memcmp(o->m[j].key, m->key, m->klen) == 0)
                return false; /* a duplicate: jansson's error */
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return false;
        s->p++;
        skip_ws(s);
        if (s->p >= s->end)
            return false;
        bool ok;
        switch (*s->p) {
        case '"':
            m->v.type = FN_JV_STRING;
            ok = scan_string(s, false, &m->v.s, &m->v.len);
            break;
        case '{':
            ok = props && m->klen == 5 && memcmp(m->key, "props", 5) == 0 &&
                 scan_object(s, props, NULL);
            m->v.type = FN_JV_OBJECT;
            break;
        case 't':
            ok = scan_literal(s, "true", FN_JV_TRUE, &m->v);
            break;
        case 'f':
            ok = scan_literal(s, "false", FN_JV_FALSE, &m->v);
            break;
        case 'n':
            ok = scan_literal(s, "null", FN_JV_NULL, &m->v);
            break;
        default:
            ok = scan_number(s, &m->v);
            break;
        }
        if (!ok)
            return false;
        o->n++;
        /* After a value only a separator may follow ("truex", "1.5x" are jansson errors). */
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return true;
        }
        return false;
    }
}

bool fn_jv_scan(const char *buf, size_t len, char *out, fn_jv_object_t *top, fn_jv_object_t *props)
{
    scan_t s = {(const unsigned char *)buf, (const unsigned char *)buf + len, out};
    top->n = 0;
    props->n = 0;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{' || !scan_object(&s, top, props))
        return false;
    skip_ws(&s);
    return s.p == s.end;
}

const fn_jv_t *fn_jv_get(const fn_jv_object_t *o, const char *key, size_t klen)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->m[i].klen == klen && memcmp(o->m[i].key, key, klen) == 0)
            return &o->m[i].v;
    return NULL;
}
