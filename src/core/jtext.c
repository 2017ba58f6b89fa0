/* jtext: compact JSON text of a jansson value (see jtext.h). */
#include "core/jtext.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A real as jansson writes it (strconv.c, jsonp_dtostr with precision 17): "%.17g", ".0"
 * appended when there is neither a point nor an exponent, the exponent without '+' and leading
 * zeros. The length, or 0 for NaN and infinities. */
static size_t real_text(double d, char out[32])
{
    if (isnan(d) || isinf(d)) return 0;
    int n = snprintf(out, 32, "%.17g", d);
    if (n <= 0 || n >= 28) return 0;
    size_t len = (size_t)n;
    if (!strchr(out, '.') && !strchr(out, 'e')) {
        memcpy(out + len, ".0", 3);
        len += 2;
    }
    char *start = strchr(out, 'e');
    if (start) {
        start++;
        char *end = start + 1;
        if (*start == '-') start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, len - (size_t)(end - out) + 1);
            len -= (size_t)(end - start);
        }
    }
    return len;
}

gd_err jtext_append(buf *b, const json_t *v)
{
    char num[32];
    gd_err e = GD_OK;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        e = buf_append(b, "{", 1);
        const char *k;
        json_t *m;
        bool first = true;
        json_object_foreach((json_t *)v, k, m)
        {
            if (e) break;
            if (!first) e = buf_append(b, ",", 1);
            first = false;
            if (!e) e = buf_json_string(b, k, strlen(k));
            if (!e) e = buf_append(b, ":", 1);
            if (!e) e = jtext_append(b, m);
        }
        return e ? e : buf_append(b, "}", 1);
    }
    case JSON_ARRAY: {
        e = buf_append(b, "[", 1);
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            if (e) break;
            if (i) e = buf_append(b, ",", 1);
            if (!e) e = jtext_append(b, m);
        }
        return e ? e : buf_append(b, "]", 1);
    }
    case JSON_STRING:
        return buf_json_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: {
        int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf_append(b, num, (size_t)n);
    }
    case JSON_REAL: {
        size_t n = real_text(json_real_value(v), num);
        return n ? buf_append(b, num, n) : GD_EINVAL;
    }
    case JSON_TRUE:
        return buf_append(b, "true", 4);
    case JSON_FALSE:
        return buf_append(b, "false", 5);
    case JSON_NULL:
        return buf_append(b, "null", 4);
    }
    return GD_EINVAL;
}

char *jtext(const json_t *v, size_t *len)
{
    if (!v) return NULL;
    buf b;
    buf_init(&b, (size_t)-1);
    gd_err e = buf_reserve(&b, 256);
    if (!e) e = jtext_append(&b, v);
    if (!e && !b.len) e = GD_EINVAL;
    if (e) {
        buf_free(&b);
        return NULL;
    }
    if (len) *len = b.len;
    return buf_detach_fit(&b); /* texts are kept (events, stored messages) */
}

size_t jtext_size(const json_t *v)
{
    char num[32];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = 2, i = 0;
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            n += (i++ ? 1 : 0) + buf_json_string_size(k, strlen(k)) + 1 + jtext_size(m);
        }
        return n;
    }
    case JSON_ARRAY: {
        size_t n = 2, i;
        json_t *m;
        json_array_foreach(v, i, m) n += (i ? 1 : 0) + jtext_size(m);
        return n;
    }
    case JSON_STRING:
        return buf_json_string_size(json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return real_text(json_real_value(v), num);
    case JSON_TRUE:
        return 4;
    case JSON_FALSE:
        return 5;
    case JSON_NULL:
        return 4;
    }
    return 0;
}

const char *jtext_parse_error(const json_error_t *e)
{
    if (json_error_code(e) == json_error_null_character)
        return "a string holds \\u0000 (NUL), which is not taken";
    return e->text;
}
