/* jscan: see jscan.h. A recursive descent over the bytes, one token per value. */
#include "core/jscan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"

typedef struct {
    js_doc *d;
    const unsigned char *s;
    size_t n, i;
    int depth;
    gd_err e;
    char *err;
    size_t errlen;
} parser;

static bool fail(parser *p, const char *what)
{
    if (!p->e) {
        p->e = GD_EINVAL;
        snprintf(p->err, p->errlen, "%s at byte %zu", what, p->i);
    }
    return false;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
        p->i++;
    }
}

/* A new token of type at the current position; -1 when out of memory. */
static int new_tok(parser *p, js_type type)
{
    js_doc *d = p->d;
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 64;
        js_tok *t = realloc(d->t, (size_t)cap * sizeof *t);
        if (!t) {
            p->e = GD_ENOMEM;
            snprintf(p->err, p->errlen, "out of memory reading JSON");
            return -1;
        }
        d->t = t;
        d->cap = cap;
    }
    d->t[d->n] = (js_tok){.start = (uint32_t)p->i, .type = (uint8_t)type};
    return (int)d->n++;
}

static int hex4(const unsigned char *h)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = h[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* A string, p->i at its opening quote. */
static bool string(parser *p)
{
    p->i++;
    int t = new_tok(p, JS_STRING);
    if (t < 0) return false;
    bool escaped = false;
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c == '"') {
            js_tok *k = &p->d->t[t];
            k->len = (uint32_t)(p->i - k->start);
            k->escaped = escaped;
            k->end = (uint32_t)t + 1;
            p->i++;
            return true;
        }
        if (c < 0x20) return fail(p, "control character in a string");
        if (c < 0x80 && c != '\\') {
            p->i++;
            continue;
        }
        if (c >= 0x80) {
            size_t len = utf8_seq_len(p->s + p->i, p->n - p->i);
            if (!len) return fail(p, "invalid UTF-8 in a string");
            p->i += len;
            continue;
        }
        escaped = true;
        if (p->i + 1 >= p->n) break;
        unsigned char x = p->s[p->i + 1];
        if (x != 'u') {
            if (!x || !strchr("\"\\/bfnrt", x)) return fail(p, "invalid escape in a string");
            p->i += 2;
            continue;
        }
        int u = p->i + 6 <= p->n ? hex4(p->s + p->i + 2) : -1;
        if (u < 0) return fail(p, "invalid \\u escape in a string");
        if (u == 0) return fail(p, "\\u0000 in a string");
        if (u >= 0xDC00 && u <= 0xDFFF) return fail(p, "lone low surrogate in a string");
        p->i += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            int l = p->i + 6 <= p->n && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u'
                        ? hex4(p->s + p->i + 2)
                        : -1;
            if (l < 0xDC00 || l > 0xDFFF) return fail(p, "lone high surrogate in a string");
            p->i += 6;
        }
    }
    return fail(p, "unterminated string");
}

static bool digits(parser *p)
{
    size_t from = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
        p->i++;
    return p->i > from;
}

static bool number(parser *p)
{
    int t = new_tok(p, JS_NUMBER);
    if (t < 0) return false;
    if (p->s[p->i] == '-') p->i++;
    if (p->i < p->n && p->s[p->i] == '0')
        p->i++;
    else if (p->i >= p->n || p->s[p->i] < '1' || p->s[p->i] > '9' || !digits(p))
        return fail(p, "invalid number");
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (!digits(p)) return fail(p, "invalid number");
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (!digits(p)) return fail(p, "invalid number");
    }
    js_tok *k = &p->d->t[t];
    k->len = (uint32_t)(p->i - k->start);
    k->end = (uint32_t)t + 1;
    /* jansson refuses an integer a long long cannot hold and a real that overflows a double */
    char tmp[64];
    const char *num = (const char *)p->s + k->start;
    bool integer =
        !memchr(num, '.', k->len) && !memchr(num, 'e', k->len) && !memchr(num, 'E', k->len);
    if (k->len >= sizeof tmp) {
        if (integer) return fail(p, "integer out of range");
        /* a long real: strtod reads it from a copy of its own */
        char *copy = strndup(num, k->len);
        if (!copy) return fail(p, "out of memory");
        errno = 0;
        double v = strtod(copy, NULL);
        free(copy);
        if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
            return fail(p, "real number overflow");
        return true;
    }
    memcpy(tmp, num, k->len);
    tmp[k->len] = '\0';
    errno = 0;
    if (integer) {
        (void)strtoll(tmp, NULL, 10);
        if (errno == ERANGE) return fail(p, "integer out of range");
    } else {
        double v = strtod(tmp, NULL);
        if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
            return fail(p, "real number overflow");
    }
    return true;
}

static bool literal(parser *p, const char *word, js_type type)
{
    size_t len = strlen(word);
    if (p->n - p->i < len || memcmp(p->s + p->i, word, len)) return fail(p, "invalid literal");
    int t = new_tok(p, type);
    if (t < 0) return false;
    p->i += len;
    p->d->t[t].len = (uint32_t)len;
    p->d->t[t].end = (uint32_t)t + 1;
    return true;
}

static bool value(parser *p);

/* An object or an array, p->i at its opening bracket. */
static bool container(parser *p, bool object)
{
    if (++p->depth > JS_MAX_DEPTH) return fail(p, "nesting too deep");
    int t = new_tok(p, object ? JS_OBJECT : JS_ARRAY);
    if (t < 0) return false;
    unsigned char close = object ? '}' : ']';
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
    } else {
        for (;;) {
            if (object) {
                if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected a string key");
                if (!string(p)) return false;
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
                p->i++;
                skip_ws(p);
            }
            if (!value(p)) return false;
            skip_ws(p);
            if (p->i >= p->n) return fail(p, object ? "unterminated object" : "unterminated array");
            if (p->s[p->i] == close) {
                p->i++;
                break;
            }
            if (p->s[p->i] != ',') return fail(p, "expected ',' or a closing bracket");
            p->i++;
            skip_ws(p);
        }
    }
    js_tok *k = &p->d->t[t];
    k->len = (uint32_t)(p->i - k->start);
    k->end = p->d->n;
    p->depth--;
    return true;
}

static bool value(parser *p)
{
    if (p->i >= p->n) return fail(p, "expected a value");
    switch (p->s[p->i]) {
    case '{':
        return container(p, true);
    case '[':
        return container(p, false);
    case '"':
        return string(p);
    case 't':
        return literal(p, "true", JS_TRUE);
    case 'f':
        return literal(p, "false", JS_FALSE);
    case 'n':
        return literal(p, "null", JS_NULL);
    default:
        if (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9')) return number(p);
        return fail(p, "expected a value");
    }
}

gd_err js_parse(js_doc *d, const char *text, size_t len, char *err, size_t errlen)
{
    d->text = text;
    d->n = 0;
    if (len >= UINT32_MAX) {
        snprintf(err, errlen, "JSON text too large (%zu bytes)", len);
        return GD_EINVAL;
    }
    parser p = {.d = d, .s = (const unsigned char *)text, .n = len, .err = err, .errlen = errlen};
    skip_ws(&p);
    if (value(&p)) {
        skip_ws(&p);
        if (p.i < p.n) fail(&p, "text after the value");
    }
    if (p.e) d->n = 0;
    return p.e;
}

void js_free(js_doc *d)
{
    free(d->t);
    js_init(d);
}

js_type js_typeof(const js_doc *d, int i)
{
    return i >= 0 && (uint32_t)i < d->n ? (js_type)d->t[i].type : JS_NONE;
}

int js_get(const js_doc *d, int i, const char *key)
{
    if (js_typeof(d, i) != JS_OBJECT) return -1;
    int found = -1;
    for (uint32_t k = (uint32_t)i + 1; k < d->t[i].end; k = d->t[k + 1].end)
        if (js_string_eq(d, (int)k, key)) found = (int)k + 1;
    return found;
}

int js_at(const js_doc *d, int i, size_t idx)
{
    if (js_typeof(d, i) != JS_ARRAY) return -1;
    for (uint32_t k = (uint32_t)i + 1; k < d->t[i].end; k = d->t[k].end)
        if (!idx--) return (int)k;
    return -1;
}

size_t js_size(const js_doc *d, int i)
{
    js_type type = js_typeof(d, i);
    if (type != JS_OBJECT && type != JS_ARRAY) return 0;
    size_t n = 0;
    for (uint32_t k = (uint32_t)i + 1; k < d->t[i].end; k = d->t[k].end, n++)
        if (type == JS_OBJECT) k++; /* the key; then its value */
    return n;
}

/* Decodes the escape at s (a backslash; checked by the parser) into out (up to 4 bytes);
 * returns the bytes of text it took, and sets *outlen. */
static size_t unescape(const unsigned char *s, char out[4], size_t *outlen)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (s[1] != 'u') {
        out[0] = to[strchr(from, s[1]) - from];
        *outlen = 1;
        return 2;
    }
    unsigned long u = (unsigned long)hex4(s + 2);
    size_t took = 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        u = 0x10000 + ((u - 0xD800) << 10) + ((unsigned long)hex4(s + 8) - 0xDC00);
        took = 12;
    }
    if (u < 0x80) {
        out[0] = (char)u;
        *outlen = 1;
    } else if (u < 0x800) {
        out[0] = (char)(0xC0 | (u >> 6));
        out[1] = (char)(0x80 | (u & 0x3F));
        *outlen = 2;
    } else if (u < 0x10000) {
        out[0] = (char)(0xE0 | (u >> 12));
        out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        out[2] = (char)(0x80 | (u & 0x3F));
        *outlen = 3;
    } else {
        out[0] = (char)(0xF0 | (u >> 18));
        out[1] = (char)(0x80 | ((u >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((u >> 6) & 0x3F));
        out[3] = (char)(0x80 | (u & 0x3F));
        *outlen = 4;
    }
    return took;
}

bool js_string(const js_doc *d, int i, buf *scratch, const char **s, size_t *n)
{
    if (js_typeof(d, i) != JS_STRING) return false;
    const js_tok *k = &d->t[i];
    const unsigned char *p = (const unsigned char *)d->text + k->start, *end = p + k->len;
    if (!k->escaped) {
        *s = (const char *)p;
        *n = k->len;
        return true;
    }
    buf_reset(scratch);
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p != '\\')
            p++;
        if (p > run && buf_append(scratch, run, (size_t)(p - run)) != GD_OK) return false;
        if (p == end) break;
        char out[4];
        size_t outlen;
        p += unescape(p, out, &outlen);
        if (buf_append(scratch, out, outlen) != GD_OK) return false;
    }
    if (buf_append(scratch, "", 1) != GD_OK) return false; /* a NUL after it, not counted */
    scratch->len--;
    *s = scratch->data ? scratch->data : "";
    *n = scratch->len;
    return true;
}

bool js_string_eq(const js_doc *d, int i, const char *s)
{
    if (js_typeof(d, i) != JS_STRING) return false;
    const js_tok *k = &d->t[i];
    const unsigned char *p = (const unsigned char *)d->text + k->start, *end = p + k->len;
    size_t slen = strlen(s);
    if (!k->escaped) return k->len == slen && !memcmp(p, s, slen);
    const unsigned char *q = (const unsigned char *)s, *qend = q + slen;
    while (p < end) {
        if (*p != '\\') {
            if (q == qend || *q++ != *p++) return false;
            continue;
        }
        char out[4];
        size_t outlen;
        p += unescape(p, out, &outlen);
        if ((size_t)(qend - q) < outlen || memcmp(q, out, outlen)) return false;
        q += outlen;
    }
    return q == qend;
}

bool js_int(const js_doc *d, int i, long long *out)
{
    if (js_typeof(d, i) != JS_NUMBER) return false;
    const js_tok *k = &d->t[i];
    const char *p = d->text + k->start;
    char tmp[32];
    if (k->len >= sizeof tmp || memchr(p, '.', k->len) || memchr(p, 'e', k->len) ||
        memchr(p, 'E', k->len))
        return false;
    memcpy(tmp, p, k->len);
    tmp[k->len] = '\0';
    errno = 0;
    char *endp;
    long long v = strtoll(tmp, &endp, 10);
    if (errno == ERANGE || *endp) return false;
    *out = v;
    return true;
}

const char *js_raw(const js_doc *d, int i, size_t *len)
{
    js_type type = js_typeof(d, i);
    if (type == JS_NONE) {
        *len = 0;
        return NULL;
    }
    const js_tok *k = &d->t[i];
    bool quoted = type == JS_STRING;
    *len = k->len + (quoted ? 2 : 0);
    return d->text + k->start - (quoted ? 1 : 0);
}
