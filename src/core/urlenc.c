/* Percent-encoding of form and query values (urlenc.h). */
#include <string.h>

#include "core/urlenc.h"

gd_err url_encode(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        size_t n = strspn((const char *)p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789-._~");
        if (n) {
            gd_err e = buf_append(b, p, n);
            if (e) return e;
            p += n;
            if (!*p) break;
        }
        char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        gd_err e = buf_append(b, esc, 3);
        if (e) return e;
    }
    return GD_OK;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

long url_decode(const char *in, size_t n, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(in[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(in[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            c = hi << 4 | lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (!c || k + 1 >= outlen) return -1;
        out[k++] = (char)c;
    }
    if (!outlen) return -1;
    out[k] = '\0';
    return (long)k;
}
