#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf *b, size_t cap)
{
    b->data = NULL;
    b->len = b->alloc = 0;
    b->cap = cap;
}

void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void buf_reset(buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

gd_err buf_reserve(buf *b, size_t extra)
{
    if (extra > b->cap || b->len > b->cap - extra) return GD_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc) return GD_OK;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n - 1 > b->cap) /* never allocate past cap + 1, written so that cap + 1 cannot wrap */
        n = need;
    char *p = realloc(b->data, n);
    if (!p) return GD_ENOMEM;
    b->data = p;
    b->alloc = n;
    return GD_OK;
}

gd_err buf_append(buf *b, const void *data, size_t len)
{
    gd_err e = buf_reserve(b, len);
    if (e) return e;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return GD_OK;
}

gd_err buf_puts(buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

gd_err buf_vprintf(buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return GD_EINVAL;
    gd_err e = buf_reserve(b, (size_t)n);
    if (e) return e;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return GD_OK;
}

gd_err buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gd_err e = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return e;
}

gd_err buf_mark_truncated(buf *b, gd_err err, const char *note)
{
    if (!err) return GD_OK;
    size_t n = strlen(note);
    if (buf_append(b, note, n) == GD_OK) return GD_OK;
    /* No room to grow: make it in what b already has, within the cap. */
    size_t room = b->alloc ? b->alloc - 1 : 0;
    if (room > b->cap) room = b->cap;
    if (n > room) return err;
    size_t keep = room - n < b->len ? room - n : b->len;
    while (keep > 0 && ((unsigned char)b->data[keep] & 0xC0) == 0x80) /* a continuation byte */
        keep--;
    memcpy(b->data + keep, note, n);
    b->len = keep + n;
    b->data[b->len] = '\0';
    return GD_OK;
}

char *buf_detach(buf *b)
{
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}

char *buf_detach_fit(buf *b)
{
    size_t n = b->len;
    char *p = buf_detach(b);
    char *fit = p && n ? realloc(p, n + 1) : NULL;
    return fit ? fit : p;
}

gd_err buf_json_string(buf *b, const char *s, size_t n)
{
    gd_err e = buf_reserve(b, n + 2); /* enough unless something must be escaped */
    if (!e) e = buf_append(b, "\"", 1);
    size_t run = 0; /* bytes before s[i] that need no escape, not yet appended */
    for (size_t i = 0; i < n && !e; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run) e = buf_append(b, s + i - run, run);
        run = 0;
        if (e) break;
        static const char short_forms[] = {['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
                                           ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't'};
        char esc[8];
        if (c < sizeof short_forms && short_forms[c])
            e = buf_append(b, (char[]){'\\', short_forms[c]}, 2);
        else
            e = buf_append(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04X", c));
    }
    if (!e && run) e = buf_append(b, s + n - run, run);
    if (!e) e = buf_append(b, "\"", 1);
    return e;
}

size_t buf_json_string_size(const char *s, size_t n)
{
    size_t size = n + 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            size += 1;
        else if (c < 0x20)
            size += 5; /* \u00XX */
    }
    return size;
}
