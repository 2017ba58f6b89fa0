/* The Anthropic Messages dialect. Streamed: `event: <type>` / `data: {"type": <type>, ...}`
 * pairs: message_start, then per content block content_block_start, content_block_delta...,
 * content_block_stop (blocks come one after another, never interleaved), then message_delta
 * (stop_reason, usage) and message_stop; `ping` may come anywhere, `error` ends the stream.
 * A tool_use block's input arrives as input_json_delta pieces and is whole at its block stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/content.h"
#include "providers/provider.h"

#define MAX_TOKENS 8192
#define VERSION    "2023-06-01"

/* ---- request ---- */

/* The image types the Messages API takes in an image block. */
static bool image_ok(const char *mime)
{
    static const char *const ok[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(mime, ok[i])) return true;
    return false;
}

/* A tool_result block for a tool_response item: its MCP content as text blocks (blank ones
 * left out) and base64 image blocks; is_error carried. New reference, NULL without an id. */
static json_t *tool_result(json_t *item)
{
    json_t *parts = content_tool_parts(json_object_get(item, "content"), image_ok);
    json_t *blocks = json_array(), *it;
    size_t i;
    json_array_foreach(parts, i, it)
    {
        const char *t = json_string_value(json_object_get(it, "text"));
        if (!strcmp(content_type(it), "image"))
            json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:O, s:O}}", "type", "image",
                                                    "source", "type", "base64", "media_type",
                                                    json_object_get(it, "mimeType"), "data",
                                                    json_object_get(it, "data")));
        else if (!content_blank(t))
            json_array_append_new(blocks, json_pack("{s:s, s:s}", "type", "text", "text", t));
    }
    json_decref(parts);
    const char *given = json_string_value(json_object_get(item, "id"));
    char id[PROV_SAFE_NAME_LEN];
    json_t *b = given ? json_pack("{s:s, s:s}", "type", "tool_result", "tool_use_id",
                                  prov_safe_name(given, id))
                      : NULL;
    if (!b) { /* no id: nothing the API could match it with */
        json_decref(blocks);
        return NULL;
    }
    if (json_array_size(blocks)) json_object_set(b, "content", blocks);
    json_decref(blocks);
    json_object_set_new(b, "is_error",
                        json_boolean(json_is_true(json_object_get(item, "is_error"))));
    return b;
}

/* The Anthropic content blocks of one goosed message. New reference; may be empty. */
static json_t *convert_content(json_t *content, bool assistant)
{
    json_t *blocks = json_array(), *it;
    size_t i;
    json_array_foreach(content, i, it)
    {
        const char *type = content_type(it);
        json_t *b = NULL;
        if (!strcmp(type, "text")) {
            const char *t = json_string_value(json_object_get(it, "text"));
            if (!content_blank(t)) b = json_pack("{s:s, s:s}", "type", "text", "text", t);
        } else if (!strcmp(type, "thinking") && assistant) {
            /* Only a signed thinking block may go back: the API refuses one without. */
            const char *t = json_string_value(json_object_get(it, "thinking"));
            const char *sig = json_string_value(json_object_get(it, "signature"));
            if (t && sig && *sig)
                b = json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking", t, "signature",
                              sig);
        } else if (!strcmp(type, "tool_request") && assistant) {
            json_t *args = json_object_get(it, "arguments");
            const char *id = json_string_value(json_object_get(it, "id"));
            const char *name = json_string_value(json_object_get(it, "name"));
            char sid[PROV_SAFE_NAME_LEN], sname[PROV_SAFE_NAME_LEN];
            b = id && name ? json_pack("{s:s, s:s, s:s}", "type", "tool_use", "id",
                                       prov_safe_name(id, sid), "name", prov_safe_name(name, sname))
                           : NULL;
            if (b)
                json_object_set_new(b, "input",
                                    json_is_object(args) ? json_incref(args) : json_object());
        } else if (!strcmp(type, "tool_response") && !assistant) {
            b = tool_result(it);
        }
        if (b) json_array_append_new(blocks, b);
    }
    return blocks;
}

/* In a user message the tool results must come first, before any text. */
static void results_first(json_t *blocks)
{
    json_t *sorted = json_array(), *b;
    size_t i;
    for (int want_result = 1; want_result >= 0; want_result--) {
        json_array_foreach(blocks, i, b)
        {
            if ((strcmp(content_type(b), "tool_result") == 0) == want_result)
                json_array_append(sorted, b);
        }
    }
    json_array_clear(blocks);
    json_array_extend(blocks, sorted);
    json_decref(sorted);
}

static json_t *an_build_tools(json_t *tools)
{
    if (!json_array_size(tools)) return NULL;
    json_t *ts = json_array(), *t;
    size_t i;
    json_array_foreach(tools, i, t)
    {
        json_t *schema = json_object_get(t, "input_schema");
        json_t *tool = json_pack("{s:O}", "name", json_object_get(t, "name"));
        if (!tool) continue;
        if (json_is_string(json_object_get(t, "description")))
            json_object_set(tool, "description", json_object_get(t, "description"));
        json_object_set_new(tool, "input_schema",
                            json_is_object(schema)
                                ? json_incref(schema)
                                : json_pack("{s:s, s:{}}", "type", "object", "properties"));
        json_array_append_new(ts, tool);
    }
    return ts;
}

static json_t *an_build(const provider_cfg *c, const char *system, json_t *messages, json_t *tools)
{
    json_t *msgs = json_array(), *m;
    size_t i;
    json_array_foreach(messages, i, m)
    {
        const char *r = json_string_value(json_object_get(m, "role"));
        const char *role = r && !strcmp(r, "assistant") ? "assistant" : "user";
        json_t *blocks = convert_content(json_object_get(m, "content"), !strcmp(role, "assistant"));
        json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
        if (!json_array_size(blocks)) {
            json_decref(blocks);
        } else if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
            /* The API wants user and assistant to alternate: merge same-role neighbours. */
            json_array_extend(json_object_get(last, "content"), blocks);
            json_decref(blocks);
        } else {
            json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", role, "content", blocks));
        }
    }
    json_array_foreach(msgs, i, m)
    {
        if (!strcmp(json_string_value(json_object_get(m, "role")), "user"))
            results_first(json_object_get(m, "content"));
    }
    /* With thinking on, max_tokens covers the thinking budget and the answer. */
    json_t *body = json_pack("{s:s, s:I}", "model", c->model, "max_tokens",
                             (json_int_t)(MAX_TOKENS + c->thinking_budget));
    if (c->thinking_budget > 0)
        json_object_set_new(body, "thinking",
                            json_pack("{s:s, s:I}", "type", "enabled", "budget_tokens",
                                      (json_int_t)c->thinking_budget));
    if (system && *system) json_object_set_new(body, "system", json_string(system));
    json_object_set_new(body, "stream", json_true());
    json_object_set_new(body, "messages", msgs);
    json_t *ts = an_build_tools(tools);
    if (ts) json_object_set_new(body, "tools", ts);
    return body;
}

static void an_url(const provider_cfg *c, char *url, size_t len)
{
    snprintf(url, len, "%s/%s", c->base, c->path);
}

static gd_err an_headers(const provider_cfg *c, buf *h)
{
    gd_err e = c->key[0] ? buf_printf(h, "x-api-key: %s\r\n", c->key) : GD_OK;
    return e ? e : buf_puts(h, "anthropic-version: " VERSION "\r\n");
}

/* ---- stream ---- */

typedef enum { BLOCK_NONE, BLOCK_TEXT, BLOCK_THINKING, BLOCK_TOOL, BLOCK_OTHER } block_kind;

struct prov_parser {
    prov_sink sink;
    bool stopped;  /* message_stop seen */
    char stop[32]; /* message_delta's stop_reason, "" until seen */
    long in_tokens, out_tokens;
    int ncalls;
    block_kind block; /* the open content block */
    char *tool_id;
    char *tool_name;
    json_t *tool_input; /* the tool_use block's input at its start */
    buf args;           /* its input_json_delta pieces */
    buf sig;            /* the thinking block's signature_delta pieces */
};

static prov_parser *an_parser_new(const prov_sink *sink)
{
    prov_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->sink = *sink;
    buf_init(&p->args, BUF_CAP_TOOL_ARGS);
    buf_init(&p->sig, BUF_CAP_SIGNATURE);
    return p;
}

static void block_reset(prov_parser *p)
{
    free(p->tool_id);
    free(p->tool_name);
    json_decref(p->tool_input);
    p->tool_id = p->tool_name = NULL;
    p->tool_input = NULL;
    buf_reset(&p->args);
    buf_reset(&p->sig);
    p->block = BLOCK_NONE;
}

static void an_parser_free(prov_parser *p)
{
    if (!p) return;
    block_reset(p);
    buf_free(&p->args);
    buf_free(&p->sig);
    free(p);
}

static gd_err fail(prov_result *res, const char *msg)
{
    snprintf(res->error, sizeof res->error, "%s", msg);
    return GD_EINVAL;
}

/* Token counts: input is the whole prompt, cached parts included. */
static void take_usage(prov_parser *p, json_t *usage)
{
    json_t *in = json_object_get(usage, "input_tokens");
    if (json_is_integer(in))
        p->in_tokens = prov_tokens(
            prov_tokens(json_integer_value(in)) +
            prov_tokens(json_integer_value(json_object_get(usage, "cache_creation_input_tokens"))) +
            prov_tokens(json_integer_value(json_object_get(usage, "cache_read_input_tokens"))));
    json_t *out = json_object_get(usage, "output_tokens");
    if (json_is_integer(out)) p->out_tokens = prov_tokens(json_integer_value(out));
}

static gd_err block_start(prov_parser *p, json_t *block, prov_result *res)
{
    block_reset(p);
    const char *type = content_type(block);
    if (!strcmp(type, "text")) {
        p->block = BLOCK_TEXT;
        const char *t = json_string_value(json_object_get(block, "text"));
        if (t && *t) p->sink.text(p->sink.ud, t, strlen(t));
    } else if (!strcmp(type, "thinking")) {
        p->block = BLOCK_THINKING;
        const char *t = json_string_value(json_object_get(block, "thinking"));
        if (t && *t && p->sink.thinking) p->sink.thinking(p->sink.ud, t, strlen(t));
    } else if (!strcmp(type, "tool_use")) {
        const char *id = json_string_value(json_object_get(block, "id"));
        const char *name = json_string_value(json_object_get(block, "name"));
        if (!id || !name || !*name)
            return fail(res, "provider sent a tool call without an id or a name");
        if (strlen(id) > PROV_MAX_TOOL_ID || strlen(name) > PROV_MAX_TOOL_ID)
            return fail(res, "provider sent a tool call whose id or name passes 256 bytes");
        if (p->ncalls >= PROV_MAX_TOOL_CALLS)
            return fail(res, "provider sent more than 64 tool calls in one reply");
        p->block = BLOCK_TOOL;
        p->tool_id = strdup(id);
        p->tool_name = strdup(name);
        p->tool_input = json_incref(json_object_get(block, "input"));
        if (!p->tool_id || !p->tool_name) return fail(res, "out of memory");
    } else {
        p->block = BLOCK_OTHER; /* redacted_thinking, server tools, ...: not kept */
    }
    return GD_OK;
}

static gd_err block_delta(prov_parser *p, json_t *delta, prov_result *res)
{
    const char *type = content_type(delta);
    const char *s;
    if (!strcmp(type, "text_delta")) {
        if ((s = json_string_value(json_object_get(delta, "text"))) && *s)
            p->sink.text(p->sink.ud, s, strlen(s));
    } else if (!strcmp(type, "thinking_delta")) {
        if ((s = json_string_value(json_object_get(delta, "thinking"))) && *s && p->sink.thinking)
            p->sink.thinking(p->sink.ud, s, strlen(s));
    } else if (!strcmp(type, "signature_delta")) {
        if ((s = json_string_value(json_object_get(delta, "signature"))) &&
            buf_puts(&p->sig, s) != GD_OK)
            return fail(
                res,
                "provider sent a thinking signature larger than 1 MiB"); /* BUF_CAP_SIGNATURE */
    } else if (!strcmp(type, "input_json_delta")) {
        if (p->block != BLOCK_TOOL)
            return fail(res, "provider sent tool arguments outside a tool call");
        if ((s = json_string_value(json_object_get(delta, "partial_json"))) &&
            buf_puts(&p->args, s) != GD_OK)
            return fail(res, "tool call arguments larger than 4 MiB"); /* BUF_CAP_TOOL_ARGS */
    } /* citations_delta and future kinds are ignored */
    return GD_OK;
}

static void block_stop(prov_parser *p)
{
    if (p->block == BLOCK_THINKING && p->sig.len && p->sink.signature) {
        p->sink.signature(p->sink.ud, p->sig.data);
    } else if (p->block == BLOCK_TOOL) {
        json_t *args;
        if (p->args.len)
            args = json_loads(p->args.data, JSON_DECODE_ANY, NULL);
        else /* no deltas: the input given at the start, or {} */
            args = json_is_object(p->tool_input) ? json_incref(p->tool_input) : json_object();
        /* Unparseable arguments are handed on as NULL: the agent answers the model with an error.
         */
        p->sink.tool_call(p->sink.ud, p->tool_id, p->tool_name, json_is_object(args) ? args : NULL);
        json_decref(args);
        p->ncalls++;
    }
    block_reset(p);
}

static gd_err an_parser_event(prov_parser *p, const char *event, const char *data, prov_result *res)
{
    json_t *ev = prov_parse_chunk(data, res);
    if (!ev) return GD_EINVAL;
    const char *type = json_string_value(json_object_get(ev, "type"));
    if (!type) type = event ? event : "";
    gd_err e = GD_OK;
    if (!strcmp(type, "error")) {
        e = prov_stream_error(json_object_get(ev, "error"), res);
    } else if (p->stopped) {
        /* nothing counts after message_stop */
    } else if (!strcmp(type, "message_start")) {
        take_usage(p, json_object_get(json_object_get(ev, "message"), "usage"));
    } else if (!strcmp(type, "content_block_start")) {
        e = block_start(p, json_object_get(ev, "content_block"), res);
    } else if (!strcmp(type, "content_block_delta")) {
        e = block_delta(p, json_object_get(ev, "delta"), res);
    } else if (!strcmp(type, "content_block_stop")) {
        block_stop(p);
    } else if (!strcmp(type, "message_delta")) {
        const char *s =
            json_string_value(json_object_get(json_object_get(ev, "delta"), "stop_reason"));
        if (s) snprintf(p->stop, sizeof p->stop, "%s", s);
        take_usage(p, json_object_get(ev, "usage"));
    } else if (!strcmp(type, "message_stop")) {
        p->stopped = true;
    } /* ping and event types added later are ignored */
    json_decref(ev);
    return e;
}

static gd_err an_parser_finish(prov_parser *p, prov_result *res)
{
    if (!p->stopped) return fail(res, "the provider's stream ended before it was complete");
    if (p->block == BLOCK_TOOL) return fail(res, "the provider's stream ended inside a tool call");
    const char *s = p->stop;
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s",
             !strcmp(s, "max_tokens")                  ? "max_tokens"
             : !strcmp(s, "tool_use") || p->ncalls > 0 ? "tool_use"
                                                       : "end_turn");
    res->input_tokens = p->in_tokens;
    res->output_tokens = p->out_tokens;
    return GD_OK;
}

const prov_dialect_ops dialect_anthropic = {
    .name = "anthropic",
    .build = an_build,
    .build_tools = an_build_tools,
    .url = an_url,
    .headers = an_headers,
    .parser_new = an_parser_new,
    .parser_event = an_parser_event,
    .parser_finish = an_parser_finish,
    .parser_free = an_parser_free,
    .error_body = prov_error_body_json,
};
