/* urlenc: percent-encoding (RFC 3986) of form and query values, and its decoding. */
#ifndef GD_URLENC_H
#define GD_URLENC_H

#include <stddef.h>

#include "core/buf.h"

/* Appends s with every byte but RFC 3986's unreserved ones (A-Z a-z 0-9 - . _ ~) as %XX: a value
 * for application/x-www-form-urlencoded or a query. */
gd_err url_encode(buf *b, const char *s) BUF_MUST_CHECK;

/* Decodes in[0..n) (%XX, and '+' as a space: a form's or query's value) into out, NUL-ended:
 * its length, or -1 when it does not fit, a '%' is not followed by two hexadecimal digits, or it
 * decodes to a NUL. */
long url_decode(const char *in, size_t n, char *out, size_t outlen);

#endif
