/* content: helpers for goosed's message content items ({"type":"text","text":...}, tool
 * requests and responses, thinking) and for providers' JSON error bodies. Shared by the
 * dialects, the agent and the API, so the format is read in one way. */
#ifndef GD_CONTENT_H
#define GD_CONTENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The item's "type", or "" when it has none. */
const char *content_type(json_t *item);
/* True when s is NULL, empty or only white space. */
bool content_blank(const char *s);
/* The "text" of every text item in the array `items`, joined with sep. Caller frees. */
char *content_text(json_t *items, const char *sep);
/* The error message of a provider's JSON error body: `{"error": "..."}` or
 * `{"error": {"message": "..."}}` (root may be NULL); else the start of the raw body. Writes
 * into out. */
void content_error_message(json_t *root, const char *body, size_t len, char *out, size_t outlen);

#endif
