/* utf8: the one check of UTF-8 (RFC 3629) that the JSON reader, the router, the server's
 * escaping of client bytes and the file tools share. */
#ifndef GD_UTF8_H
#define GD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the valid UTF-8 sequence at p, of which n bytes may be read: 1 for an ASCII byte
 * (NUL included), 2 to 4 for a multi-byte sequence, 0 when the bytes there are not one (an
 * overlong form, a surrogate, past U+10FFFF, cut short by n or by a NUL). */
size_t utf8_seq_len(const unsigned char *p, size_t n);

/* Whether the n bytes at p are all UTF-8 (a JSON string may hold nothing else; NUL counts). */
bool utf8_valid(const char *p, size_t n);

#endif
