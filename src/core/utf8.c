#include "core/utf8.h"

#include <string.h>

size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    if (!n) return 0;
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0; /* no overlong forms */
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

bool utf8_valid(const char *p, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq_len((const unsigned char *)p + i, n - i))) return false;
    return true;
}

size_t utf8_next_shown(const unsigned char *p, size_t n, const char *keep, bool *escape)
{
    size_t k = p[0] < 0x80 ? 1 : utf8_seq_len(p, n);
    if (!k) {
        *escape = true;
        return 1;
    }
    *escape = (p[0] < 0x20 && !(p[0] && strchr(keep, p[0]))) || p[0] == 0x7f ||
              (k == 2 && p[0] == 0xc2 && p[1] < 0xa0);
    return k;
}

size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) /* a continuation byte */
        n--;
    return n;
}

size_t utf8_suffix(const char *s, size_t len, size_t max)
{
    if (len <= max) return 0;
    size_t from = len - max;
    while (from < len && ((unsigned char)s[from] & 0xC0) == 0x80)
        from++;
    return from;
}
