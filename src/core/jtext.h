/* jtext: a jansson value written as compact JSON text, byte for byte what
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes (members in insertion order, strings
 * escaped as buf_json_string, reals as jansson's "%.17g" with ".0" when it has no point),
 * without jansson's callback per fragment: the hot paths (a provider request's body, an event
 * on the bus, a message stored) write their JSON here.
 *
 * Threads: none of its own; a value must not be changed by another thread meanwhile. */
#ifndef GD_JTEXT_H
#define GD_JTEXT_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Appends v's text to b. GD_EINVAL for a real that is NaN or infinite (jansson refuses those
 * too), GD_ETOOBIG past b's cap, GD_ENOMEM; b then holds a prefix of it. */
gd_err jtext_append(buf *b, const json_t *v) BUF_MUST_CHECK;
/* v's text as a new NUL-terminated string the caller frees, its length in *len (may be NULL);
 * NULL when v is NULL, out of memory, or as jtext_append refuses. */
char *jtext(const json_t *v, size_t *len);
/* The length of v's text, without writing it (what json_dumpb(v, NULL, 0, JSON_COMPACT) says). */
size_t jtext_size(const json_t *v);
/* What a jansson parse error says, for a client: its text, but for the errors whose text names
 * jansson's own flags (a NUL in a string: "...without JSON_ALLOW_NUL"). */
const char *jtext_parse_error(const json_error_t *e);

#endif
