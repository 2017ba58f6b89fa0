/* buf: a growable byte string with a hard cap (curl's dynbuf). Always NUL-terminated when
 * non-empty, so buf.data can be used as a C string. A buf owns its data: buf_free releases it.
 *
 * Every append's result must be checked (the compiler says so): an append that fails writes
 * nothing, so after the first failure the buf holds a complete prefix of what was meant. The
 * usual shape accumulates the first error, `gd_err e = GD_OK; if (!e) e = buf_puts(...);`, and
 * then decides once: propagate e, or say the result is cut (buf_mark_truncated). */
#ifndef GD_BUF_H
#define GD_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

/* ---- the caps, in one place (curl's DYN_* limits) ----
 * Caps that are settings or belong to one module's own table live there: a request body is
 * max_body_size (config/config.c); the developer extension's tool results are DEV_TEXT_CAP and
 * DEV_OUTPUT_CAP (extensions/developer/dev.h). */
#define BUF_CAP_SSE_LINE       (8u << 20)  /* providers: one line of a provider's event stream */
#define BUF_CAP_SSE_EVENT_NAME 256u        /* providers: an event stream's `event:` name */
#define BUF_CAP_SSE_DATA_LINES 4u          /* providers: an event's data, in lines' caps */
#define BUF_CAP_PROVIDER_ERROR (64u << 10) /* providers: a failed request's body kept */
#define BUF_CAP_TOOL_ARGS      (4u << 20)  /* providers: one streamed tool call's arguments */
#define BUF_CAP_SIGNATURE      (1u << 20)  /* providers: a thinking block's signature */
#define BUF_CAP_CONTENT        (64u << 20) /* content joined for a provider: text, data: URL */
#define BUF_CAP_REPLY_TEXT     (16u << 20) /* agent: the text (or thinking) of one message */
#define BUF_CAP_INSTRUCTIONS   (1u << 20)  /* extensions: all their instructions together */
#define BUF_CAP_SYSTEM_PROMPT  (BUF_CAP_INSTRUCTIONS + (64u << 10)) /* agent: with them */
#define BUF_CAP_MESSAGE        (64u << 10)       /* an error message built from parts */
#define BUF_CAP_SSE_OUT        (64u << 20)       /* api: what waits to be sent to one SSE client */
#define BUF_CAP_CONFIG_LIST    (16u << 10)       /* config: a list setting, joined with commas */
#define BUF_CAP_CONFIG_FILE    (16u << 20)       /* config: config.yaml, read and rewritten */
#define BUF_CAP_SECRETS_FILE   (1u << 20)        /* config: secrets.yaml */
#define BUF_CAP_HISTORY        ((size_t)4 << 30) /* api: a session's history as one JSON text */

#define BUF_MUST_CHECK __attribute__((warn_unused_result))

typedef struct {
    char *data;
    size_t len;
    size_t alloc;
    size_t cap; /* never grows past this many bytes; appends beyond fail with GD_ETOOBIG */
} buf;

void buf_init(buf *b, size_t cap);
void buf_free(buf *b);
void buf_reset(buf *b); /* keeps the allocation, len = 0 */
/* Makes room for extra more bytes now (appends grow the buffer themselves: this saves the copies
 * of a long text built in many appends). GD_ETOOBIG past the cap, GD_ENOMEM. */
gd_err buf_reserve(buf *b, size_t extra) BUF_MUST_CHECK;
/* Appends; GD_ETOOBIG past the cap, GD_ENOMEM, (printf) GD_EINVAL for a bad format. On failure
 * nothing is written. */
gd_err buf_append(buf *b, const void *data, size_t len) BUF_MUST_CHECK;
gd_err buf_puts(buf *b, const char *s) BUF_MUST_CHECK;
gd_err buf_printf(buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) BUF_MUST_CHECK;
gd_err buf_vprintf(buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0))) BUF_MUST_CHECK;
/* After the append that failed with err, ends b with note (e.g. "\n[truncated]\n") so that what
 * was built says it is cut short. When the note does not fit the cap (or memory), bytes are
 * dropped from the end of b first, never inside a UTF-8 sequence. GD_OK when err is GD_OK or the
 * note is in; err when even that is impossible (b has no room at all for the note). */
gd_err buf_mark_truncated(buf *b, gd_err err, const char *note) BUF_MUST_CHECK;
/* Drops an append's result on purpose: the call site says in a comment why that is harmless. */
static inline void buf_ignore(gd_err e)
{
    (void)e;
}
/* Hands the data to the caller (who frees it with free()) and leaves b empty. Never NULL
 * unless out of memory. */
char *buf_detach(buf *b) BUF_MUST_CHECK;
/* buf_detach, the allocation cut to the data: for a text that is kept (no growth slack). */
char *buf_detach_fit(buf *b) BUF_MUST_CHECK;
/* Appends the n bytes of UTF-8 at s as a JSON string, quotes included, escaped exactly as jansson
 * writes it (\" \\ \b \f \n \r \t, other controls as \u00XX, the rest as is). For text that
 * is already valid UTF-8: it is not checked. */
gd_err buf_json_string(buf *b, const char *s, size_t n) BUF_MUST_CHECK;
/* How many bytes buf_json_string writes for those n bytes, quotes included. */
size_t buf_json_string_size(const char *s, size_t n);

#endif
