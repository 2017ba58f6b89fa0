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
/* What a provider can be sent of one tool result: the MCP content items of a tool_response
 * ({"type":"text","text"}, {"type":"image","data","mimeType"}, {"type":"resource","resource":
 * {"uri","mimeType"?,"text"|"blob"}}, ...) reduced to two kinds, in their order:
 *   {"type":"text","text":s}
 *   {"type":"image","mimeType":s,"data":base64}
 * A text resource becomes text ("resource <uri>:\n<text>"); a blob resource whose mime type
 * image_ok accepts becomes an image, any other blob a text note naming its uri and mime type; an
 * image image_ok refuses, an item missing its fields, or an item of an unknown type becomes a
 * short text note, so nothing is dropped silently and nothing unknown is sent raw. Empty text
 * items are left out. image_ok says which image mime types the provider takes (NULL: none).
 * Returns a new array the caller frees (json_decref); the strings in it are copies. */
json_t *content_tool_parts(json_t *items, bool (*image_ok)(const char *mime));
/* The error message of a provider's JSON error body: `{"error": "..."}` or
 * `{"error": {"message": "..."}}` (root may be NULL); else the start of the raw body. Writes
 * into out. */
void content_error_message(json_t *root, const char *body, size_t len, char *out, size_t outlen);

#endif
