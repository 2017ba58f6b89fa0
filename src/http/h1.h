/* h1: the HTTP/1.1 wire format, as pure functions over bytes (no I/O, no allocation): the
 * request head (request line and header fields, RFC 9112 sections 3 and 5), and the chunked
 * transfer coding of a request body (section 7.1) with its trailer section. The server
 * (http/server.c) feeds them what it has read; they never read past the bytes given. */
#ifndef GD_HTTP_H1_H
#define GD_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H1_MAX_HEADERS 128 /* header fields in one request: more is a 431 */

typedef struct {
    const char *name; /* into the caller's buffer, not NUL-terminated */
    size_t nlen;
    const char *value; /* leading and trailing whitespace removed */
    size_t vlen;
} h1_header;

typedef struct {
    const char *method;
    size_t mlen;
    const char *target;
    size_t tlen;
    int minor; /* HTTP/1.minor */
    size_t nheaders;
    h1_header headers[H1_MAX_HEADERS];
    const char *why; /* with H1_BAD: what is wrong, for the error message (a static string) */
    const char *bad; /* with H1_BAD and a header at fault: its name (not NUL-terminated) */
    size_t badlen;
} h1_head;

/* What h1_parse_head returns when it does not return the head's length. */
enum {
    H1_MORE = 0,               /* the head is not complete yet */
    H1_BAD = -400,             /* malformed (h->why says how) */
    H1_TARGET_TOO_LONG = -414, /* the request line alone is over the limit */
    H1_HEAD_TOO_BIG = -431,    /* the head is over the limit (or has too many fields) */
    H1_VERSION = -505,         /* not HTTP/1.x (HTTP/2's preface included) */
};

/* Parses the request head at buf[0..len). Returns its length (through its empty line; leading
 * empty lines before the request line, which RFC 9112 section 2.2 lets a server skip, count in
 * it) once complete, H1_MORE when more bytes are needed, or a negative H1_* error. max bounds
 * the head's size: past it, H1_TARGET_TOO_LONG while the request line is not complete, else
 * H1_HEAD_TOO_BIG. *h points into buf. Lines end in CRLF or a bare LF; a bare CR is malformed.
 * `from` is how many bytes of buf an earlier call already saw incomplete (0 the first time):
 * the end of the head is looked for from there only. */
long h1_parse_head(const char *buf, size_t len, size_t max, size_t from, h1_head *h);

/* Whether the header's name is `name` (case-insensitively). */
bool h1_name_is(const h1_header *hd, const char *name);

/* Incremental decoder of a chunked body. Zero it to start. */
typedef struct {
    int state;
    uint64_t left;   /* bytes of the current chunk still to come */
    size_t linelen;  /* bytes of the current size or trailer line */
    size_t trailers; /* bytes of trailer section so far */
    int digits;
} h1_chunked;

#define H1_CHUNK_LINE_MAX 1024       /* a chunk size line (with extensions) */
#define H1_TRAILERS_MAX   (16 << 10) /* the trailer section */

/* Decodes buf[0..len) in place: the body's data bytes are moved to buf[0..*out); *used says how
 * many input bytes were consumed. Every line of the framing ends with CRLF, as RFC 9112 section 7.1
 * writes it: a bare LF, which a head may use, is refused here (a proxy in front that reads it
 * otherwise would disagree about where the body, and so the next request, begins). Returns 1 when
 * the body (and its trailers) ended within them (bytes after *used belong to what follows), 0 when
 * more input is needed (*used == len), -1 when malformed. */
int h1_chunked_decode(h1_chunked *d, char *buf, size_t len, size_t *out, size_t *used);

#endif
