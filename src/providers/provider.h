/* providers: LLM providers. A provider is a row of the table in registry.c (name, dialect, host
 * and key variables, default model); a dialect (openai.c, anthropic.c, google.c) knows how to
 * build a request body and parse the provider's stream. client.c drives every request of every
 * session on goosed's own HTTP/1.1 client (h1client.h), with retries.
 *
 * The conversation handed to a dialect is goosed's own message format: an array of
 *   {"role": "user"|"assistant", "content": [item, ...]}
 * with items
 *   {"type":"text","text":s}
 *   {"type":"thinking","thinking":s,"signature":s?}              (assistant)
 *   {"type":"tool_request","id":s,"name":s,"arguments":{...}}     (assistant)
 *   {"type":"tool_response","id":s,"name":s,"content":[mcp item, ...],"is_error":b}
 *     (tool results travel in user messages, as in Goose)
 * where a tool result's content is an array of MCP content items:
 *   {"type":"text","text":s}
 *   {"type":"image","data":base64,"mimeType":s}
 *   {"type":"resource","resource":{"uri":s,"mimeType":s?,"text":s}}  or  {...,"blob":base64}
 * Each dialect sends them in its API's own shape (content_tool_parts in core/content.h reads
 * them): OpenAI puts the text in the `tool` message and the images in one `user` message after
 * the turn's tool messages (image_url parts with data: URLs); Anthropic sends text and base64
 * image blocks in the tool_result, with is_error; Gemini puts the text in the functionResponse
 * ({"content": text}) and the images as inlineData parts after the function responses. A text
 * resource is sent as text ("resource <uri>:\n<text>"), an image blob as an image, other blobs,
 * images of a type the API refuses and unknown item types as a short text note.
 *
 * Tools are an array of {"name":s,"description":s,"input_schema":{...}}. */
#ifndef GD_PROVIDER_H
#define GD_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jscan.h"
#include "core/loop.h"

/* Tool calls taken from one reply, in every dialect: a model that sends more is broken (or
 * hostile), and each is run and answered in the next request. */
#define PROV_MAX_TOOL_CALLS 64
/* Bytes of a tool call's id or name a provider may send: the providers' own ids are a few dozen
 * bytes and their names at most 64 (a name over it calls no tool of goosed's anyway); each is
 * stored, sent back with every later request, and its result message rewritten as tools end. */
#define PROV_MAX_TOOL_ID 256

typedef enum { DIALECT_OPENAI, DIALECT_ANTHROPIC, DIALECT_GOOGLE } prov_dialect;

/* One row per provider. */
typedef struct {
    const char *name; /* "openai", "ollama", ... */
    prov_dialect dialect;
    const char *host_env;     /* "OPENAI_HOST" */
    const char *default_host; /* "https://api.openai.com" */
    const char *path_env;     /* "OPENAI_BASE_PATH", or NULL */
    const char *default_path; /* "v1/chat/completions"; for google the models/ prefix */
    const char *key_env;      /* "OPENAI_API_KEY"; NULL when no key is needed */
    const char *default_model;
    const char *description;
} provider_def;

extern const provider_def provider_defs[];
extern const size_t provider_ndefs;
const provider_def *provider_find(const char *name);

/* Everything a request needs, resolved from config, environment and secrets. */
typedef struct {
    const provider_def *def;
    char base[1024]; /* scheme://host[:port][/prefix], no trailing slash */
    char path[256];  /* relative path, no leading slash */
    char key[1024];  /* "" when none */
    char model[256];
    long timeout_s; /* api_timeout: connect + whole response without progress */
    long max_retries;
    /* Anthropic extended thinking: its budget in tokens, 0 when off (CLAUDE_THINKING_ENABLED,
     * CLAUDE_THINKING_BUDGET, as the real Goose names them) */
    long thinking_budget;
} provider_cfg;

/* What the stream produced, and how it ended. */
typedef struct {
    char stop_reason[32]; /* end_turn, tool_use, max_tokens, error, cancelled */
    long input_tokens;
    long output_tokens;
    long http_status;    /* 0 when no HTTP answer (connection error) */
    bool retryable;      /* 429, 5xx, connection errors */
    long retry_after_ms; /* from Retry-After, 0 when absent */
    char error[1024];    /* the provider's own message when it failed */
    bool too_long;       /* it refused the request as over the model's context window */
} prov_result;

/* Where a dialect's parser delivers the reply as it arrives (on the provider thread). The
 * strings are only valid during the call. */
typedef struct {
    void *ud;
    void (*text)(void *ud, const char *s, size_t n);
    void (*thinking)(void *ud, const char *s, size_t n);
    /* thinking signature (Anthropic), once the thinking block ends */
    void (*signature)(void *ud, const char *s);
    /* a whole tool call, once its arguments are complete; arguments is borrowed */
    void (*tool_call)(void *ud, const char *id, const char *name, json_t *arguments);
    /* optional: called with true before the events of one read from the provider are
     * delivered and with false after them, so that the sink can pass them on as one burst */
    void (*burst)(void *ud, bool begin);
} prov_sink;

typedef struct prov_parser prov_parser;

/* A dialect: request building and stream parsing. No I/O here. */
typedef struct {
    const char *name;
    /* The request body; its tools (when any) are its last member, "tools", as build_tools makes
     * them. Caller owns the result. */
    json_t *(*build)(const provider_cfg *c, const char *system, json_t *messages, json_t *tools);
    /* The value of that "tools" member for tools (goosed's list: name, description,
     * input_schema); NULL when there are none. Caller owns the result. */
    json_t *(*build_tools)(json_t *tools);
    /* The endpoint URL for a streamed request, written into url. */
    void (*url)(const provider_cfg *c, char *url, size_t len);
    /* Appends auth and dialect headers to h, each "Name: value\r\n" (Content-Type and Accept
     * are added by the client). GD_ENOMEM / GD_ETOOBIG from h. */
    gd_err (*headers)(const provider_cfg *c, buf *h);
    prov_parser *(*parser_new)(const prov_sink *sink);
    /* One server-sent event: event is its `event:` name or NULL, data its joined `data:` lines.
     * Returns GD_EINVAL with res->error set for a malformed event (the stream is then failed). */
    gd_err (*parser_event)(prov_parser *p, const char *event, const char *data, prov_result *res);
    /* The stream ended cleanly: deliver what is pending, set stop_reason and usage. Returns
     * GD_EINVAL with res->error when it ended too early (no terminator, an open tool call). */
    gd_err (*parser_finish)(prov_parser *p, prov_result *res);
    void (*parser_free)(prov_parser *p);
    /* A non-2xx answer's body: put the provider's own message into res->error. */
    void (*error_body)(const char *body, size_t len, prov_result *res);
} prov_dialect_ops;

/* Whether an error a provider reported inside its stream is worth retrying: overloaded, rate
 * limited or a server error (Anthropic's overloaded_error / api_error / rate_limit_error,
 * OpenAI's server_error, Gemini's 429 and 5xx codes). */
bool prov_transient_error(json_t *err);

/* An error the provider reported inside its stream ({"message", "type"/"code"/"status"}): its
 * message into res->error, whether it is worth retrying; returns GD_EINVAL. */
gd_err prov_stream_error(json_t *err, prov_result *res);

/* error_body for providers whose error answers are JSON with the message where
 * content_error_message looks for it (OpenAI's and Anthropic's {"error": {"message"}}). */
void prov_error_body_json(const char *body, size_t len, prov_result *res);
/* A tool's name or a call's id from the history as every provider's API takes it back: itself when
 * it is [A-Za-z_][A-Za-z0-9_-]{0,63}; else its bytes outside that set as _, a leading _ when it
 * starts otherwise, cut to 55 bytes, and _ with 8 hex digits of its hash (the same one always,
 * two different ones kept apart). A model may name a tool that does not exist (repo.open_file),
 * another provider's ids take other characters (functions.x:0): stored as they came, they would
 * make every later request of the session refused. Returns out. */
#define PROV_SAFE_NAME_LEN 65
const char *prov_safe_name(const char *s, char out[PROV_SAFE_NAME_LEN]);
/* A retry delay given in seconds (Retry-After, Gemini's retryDelay "12s"), in ms, at most the
 * longest goosed waits; 0 when it is not a positive number (then goosed's own backoff). */
long prov_retry_ms(const char *secs);
/* A token count a provider reported, made sane: none below 0 or above 10^12 (an answer's counts
 * are added up over a reply's rounds and a session's replies). */
static inline long prov_tokens(long long v)
{
    return v < 0 ? 0 : v > 1000000000000LL ? 1000000000000L : (long)v;
}

/* One streamed chunk's JSON object, or NULL with res->error naming what was wrong with it: not
 * JSON, not an object, or an error the provider reported in the stream (an "error" member, as
 * all three dialects send it; see prov_stream_error). */
json_t *prov_parse_chunk(const char *data, prov_result *res);
/* The same without a tree, for the chunks of every token: data read into d (jscan). false, with
 * res->error set as prov_parse_chunk sets it, when it is not a JSON object or is an error. */
bool prov_scan_chunk(js_doc *d, const char *data, prov_result *res);

extern const prov_dialect_ops dialect_openai;
extern const prov_dialect_ops dialect_anthropic;
extern const prov_dialect_ops dialect_google;
const prov_dialect_ops *dialect_of(const provider_def *def);

/* ---- client.c: requests on h1client, on a core/loop ---- */

typedef struct prov_client prov_client;
typedef struct prov_call prov_call;
/* Called once per call, on the loop's thread, when it has ended (done, failed after its
 * retries, or cancelled); never from inside prov_call_start or prov_call_cancel. The call is
 * freed right after it returns. */
typedef void (*prov_done)(void *ud, const prov_result *res);

/* A client whose requests run on l (borrowed). NULL with a message in err when out of
 * memory. Every
 * function below runs on l's thread only. */
prov_client *prov_client_new(loop *l, char *err, size_t errlen);
/* Frees the client; calls still running end without their done. */
void prov_client_free(prov_client *cl);
/* A tools list written in a dialect's shape, kept between the requests of a conversation: a
 * session's tools are the same request after request, and writing them was most of the cost of
 * a request body. Zero it before use; prov_tools_text_clear frees what it holds. Loop thread. */
typedef struct {
    const prov_dialect_ops *d; /* the dialect it was written for */
    json_t *tools;             /* the list it was written from (a reference: never reused) */
    char *text;
    size_t len;
} prov_tools_text;
void prov_tools_text_clear(prov_tools_text *tt);
/* The request body as text, as JSON_COMPACT writes d->build's: the body without its tools, then
 * the tools' text (tt's when written for d and this list; else written now, and kept in tt when
 * tt is not NULL) spliced in as its last member. NULL when out of memory. Caller frees. */
char *prov_body_text(const prov_dialect_ops *d, const provider_cfg *cfg, const char *system,
                     json_t *messages, json_t *tools, prov_tools_text *tt);

/* Starts a streamed request. Takes no ownership of messages/tools (they are serialised now).
 * tt (may be NULL) keeps tools' text for the next request with the same list.
 * Retries 429, 5xx and connection errors with exponential backoff and jitter, honouring
 * Retry-After, up to cfg->max_retries times, but never once output has reached the sink.
 * Returns NULL (and does not call done) only when out of memory. */
prov_call *prov_call_start(prov_client *cl, const provider_cfg *cfg, const char *system,
                           json_t *messages, json_t *tools, prov_tools_text *tt,
                           const prov_sink *sink, prov_done done, void *ud);
/* Asks a call to stop; done follows with stop_reason "cancelled". The handle is valid until
 * done has returned. */
void prov_call_cancel(prov_call *c);

/* ---- sse_reader.c: text/event-stream framing ---- */

typedef struct sse_reader sse_reader;
typedef gd_err (*sse_event_fn)(void *ud, const char *event, const char *data);
/* A reader that calls fn for each complete event; lines are capped at max_line bytes. */
sse_reader *sse_reader_new(size_t max_line, sse_event_fn fn, void *ud);
/* Feeds bytes; GD_ETOOBIG when a line passes the cap, or fn's error. */
gd_err sse_reader_feed(sse_reader *r, const char *data, size_t len);
/* End of input: dispatches a last event not followed by a blank line. */
gd_err sse_reader_end(sse_reader *r);
void sse_reader_free(sse_reader *r);
/* The last event ID (the `id:` field as of the last dispatched event, "" when none): owned by
 * r, valid until the next feed. What a client sends as Last-Event-ID when it reconnects. */
const char *sse_reader_last_id(const sse_reader *r);
/* The reconnection time the stream asked for with `retry:` in ms, or -1 when it did not. */
long sse_reader_retry_ms(const sse_reader *r);

#endif
