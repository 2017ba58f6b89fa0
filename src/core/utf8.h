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

/* For text from a peer written where it must not drive a terminal or start a line of its own
 * (goosed's log, goose's output): the length of the next unit at p (n > 0 bytes readable), and
 * in *escape whether to write it as \xHH per byte: a control character (C0 but the bytes in
 * keep, DEL, C1) or a byte that is not UTF-8 (a unit of one byte). */
size_t utf8_next_shown(const unsigned char *p, size_t n, const char *keep, bool *escape);

/* Where to cut text of len bytes so that no character is split: the largest length of at most max
 * bytes that ends between characters (len when len <= max). */
size_t utf8_prefix(const char *s, size_t len, size_t max);
/* The start of the last part of s (len bytes) of at most max bytes that begins on a character. */
size_t utf8_suffix(const char *s, size_t len, size_t max);

#endif
