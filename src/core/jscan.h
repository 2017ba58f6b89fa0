/* jscan: a strict JSON reader that builds no tree. It checks a text against RFC 8259 and notes
 * where each value lies (one token per value, in document order), so that a caller reads the few
 * members it needs without a node allocated per value. For the hot path of the providers'
 * streams, a small JSON chunk per token; everything else uses jansson.
 *
 * It accepts exactly what jansson's json_loadb(text, len, JSON_DECODE_ANY) accepts: valid UTF-8
 * only, no "\u0000", no lone surrogate, no trailing comma, nothing after the value; and, like
 * jansson, when an object has a key twice its last value counts. Nesting deeper than
 * JS_MAX_DEPTH is refused. Not thread-safe per document; documents are independent. */
#ifndef GD_JSCAN_H
#define GD_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define JS_MAX_DEPTH 2048 /* as jansson's parser */

typedef enum {
    JS_NONE,
    JS_OBJECT,
    JS_ARRAY,
    JS_STRING,
    JS_NUMBER,
    JS_TRUE,
    JS_FALSE,
    JS_NULL
} js_type;

typedef struct {
    uint32_t start;  /* offset of its first byte; a string's first byte after the quote */
    uint32_t len;    /* its bytes; a string's raw contents, between the quotes */
    uint32_t end;    /* the index of the first token after it: its members are skipped */
    uint8_t type;    /* js_type */
    uint8_t escaped; /* a string with a backslash in it: js_string decodes it */
} js_tok;

/* A parsed text. Zero it (or js_init) before the first js_parse; its token array is kept and
 * reused by later parses; js_free releases it. The text is borrowed: it must outlive the
 * tokens' use. */
typedef struct {
    const char *text;
    js_tok *t;
    uint32_t n, cap;
} js_doc;

static inline void js_init(js_doc *d)
{
    *d = (js_doc){0};
}
void js_free(js_doc *d);

/* Parses text (len bytes) as one JSON value. Token 0 is the top value. GD_EINVAL with a message
 * in err naming what is wrong and where ("invalid escape at byte 12"), GD_ENOMEM. */
gd_err js_parse(js_doc *d, const char *text, size_t len, char *err, size_t errlen);

/* Token i's type; JS_NONE for i < 0 (what the lookups below return for "absent"). */
js_type js_typeof(const js_doc *d, int i);
/* The value of member key of object i (the last one when key is there twice); -1 when i is
 * not an object or has no such member. */
int js_get(const js_doc *d, int i, const char *key);
/* Element idx of array i; -1 when i is not an array or is shorter. */
int js_at(const js_doc *d, int i, size_t idx);
/* The number of members (object) or elements (array) of i; 0 for anything else. */
size_t js_size(const js_doc *d, int i);
/* String i without its escapes. When it has none, *s points into the text (not NUL-terminated)
 * and scratch is untouched; otherwise it is decoded into scratch (reset first), *s points there.
 * false when i is not a string, or scratch cannot grow (GD_ENOMEM / its cap). */
bool js_string(const js_doc *d, int i, buf *scratch, const char **s, size_t *n);
/* Whether string i equals the NUL-terminated s (its escapes decoded). */
bool js_string_eq(const js_doc *d, int i, const char *s);
/* Number i as an integer, as jansson reads it: false when i is not a number, has a fraction or
 * an exponent, or does not fit in a long long. */
bool js_int(const js_doc *d, int i, long long *out);
/* The raw text of value i (a string's with its quotes), e.g. for json_loadb of a subtree. */
const char *js_raw(const js_doc *d, int i, size_t *len);

#endif
