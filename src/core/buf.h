/* buf: a growable byte string with a hard cap (curl's dynbuf). Always NUL-terminated when
 * non-empty, so buf.data can be used as a C string. A buf owns its data: buf_free releases it. */
#ifndef GD_BUF_H
#define GD_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

typedef struct {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* never grows past this many bytes; appends beyond fail with GD_ETOOBIG */
} buf;

void buf_init(buf *b, size_t cap);
void buf_free(buf *b);
void buf_reset(buf *b); /* keeps the allocation, len = 0 */
gd_err buf_append(buf *b, const void *data, size_t len);
gd_err buf_puts(buf *b, const char *s);
gd_err buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
gd_err buf_vprintf(buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hands the data to the caller (who frees it with free()) and leaves b empty. Never NULL
 * unless out of memory. */
char *buf_detach(buf *b);

#endif
