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
/* A copy of a conversation (goosed's message format, see providers/provider.h) in which every
 * tool call is answered, as all three APIs demand: a tool_request that the next message does not
 * answer (goosed stopped between storing the call and storing its result) gets an is_error
 * tool_response saying so, in that next user message or in a user message inserted for it; a
 * tool_response answering no tool_request of the message before it is left out. A conversation
 * that needs no change comes back equal. Returns a new array the caller frees; the input is not
 * changed. */
json_t *content_answer_tool_calls(json_t *messages);
/* Whether m is one message goosed can store and send to a provider: an object with "role" "user"
 * or "assistant" and "content", an array of items of the kinds above (non-empty in a user
 * message; an assistant's may be empty, as a reply with nothing in it is stored), each with its
 * fields of the right types: text {"text"}; thinking {"thinking", "signature"?} and tool_request
 * {"id", "name", "arguments": object} in assistant messages only; tool_response {"id", "name"?,
 * "content": array, "is_error"?: boolean} in user messages only. When not, false and err says
 * what is wrong, naming the field ("role", "content[2].type", ...). Nothing is changed. */
bool content_message_check(json_t *m, char *err, size_t errlen);
/* The error message of a provider's JSON error body: `{"error": "..."}` or
 * `{"error": {"message": "..."}}` (root may be NULL); else the start of the raw body. Writes
 * into out. */
void content_error_message(json_t *root, const char *body, size_t len, char *out, size_t outlen);

#endif
