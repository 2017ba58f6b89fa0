/* The OpenAI Chat Completions dialect, spoken by OpenAI and the compatible family (Ollama,
 * OpenRouter, Groq, DeepSeek, ...). Streamed: `data: {chat.completion.chunk}` events, then
 * `data: [DONE]`; tool calls arrive as deltas keyed by index, their arguments split across
 * chunks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/content.h"
#include "providers/provider.h"

/* ---- request ---- */

/* The image types the Chat Completions API takes in an image_url part. */
static bool image_ok(const char *mime)
{
    static const char *const ok[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(mime, ok[i])) return true;
    return false;
}

/* The `tool` message answering one tool_response item, appended to out: its text (an image
 * replaced by a note saying it follows); its images appended to images as image_url parts with
 * a data: URL, after a text part naming the call. */
static void tool_message(json_t *item, json_t *out, json_t *images)
{
    json_t *parts = content_tool_parts(json_object_get(item, "content"), image_ok), *p;
    const char *id = json_string_value(json_object_get(item, "id"));
    buf text;
    buf_init(&text, BUF_CAP_CONTENT);
    gd_err e = GD_OK; /* the first failed append to text */
    size_t i, nimages = 0;
    json_array_foreach(parts, i, p)
    {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (strcmp(content_type(p), "image")) {
            if (!e && text.len) e = buf_puts(&text, "\n");
            if (!e) e = buf_puts(&text, t);
            continue;
        }
        if (nimages++ == 0) {
            char head[300];
            snprintf(head, sizeof head,
                     "The images returned by the tool call %.200s:", id ? id : "");
            json_array_append_new(images, json_pack("{s:s, s:s}", "type", "text", "text", head));
        }
        buf url;
        buf_init(&url, BUF_CAP_CONTENT);
        gd_err ue =
            buf_printf(&url, "data:%s;base64,", json_string_value(json_object_get(p, "mimeType")));
        if (!ue) ue = buf_puts(&url, json_string_value(json_object_get(p, "data")));
        if (!ue)
            json_array_append_new(images, json_pack("{s:s, s:{s:s}}", "type", "image_url",
                                                    "image_url", "url", url.data));
        buf_free(&url);
        if (!e && text.len) e = buf_puts(&text, "\n");
        if (!e)
            e = buf_puts(&text, ue ? "[an image: too large to send, left out]"
                                   : "[an image: it follows in the next user message]");
    }
    const char *s =
        buf_mark_truncated(&text, e, "\n[the rest of this tool result was cut: too long]")
            ? "[this tool result was left out: out of memory]"
        : text.data ? text.data
                    : "";
    char sid[PROV_SAFE_NAME_LEN];
    json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                                         prov_safe_name(id, sid), "content", s));
    buf_free(&text);
    json_decref(parts);
}

static json_t *convert_message(json_t *msg, json_t *out)
{
    const char *role = json_string_value(json_object_get(msg, "role"));
    json_t *content = json_object_get(msg, "content");
    size_t i;
    json_t *it;
    if (role && !strcmp(role, "assistant")) {
        char *text = content_text(content, "\n");
        json_t *calls = json_array();
        json_array_foreach(content, i, it)
        {
            if (strcmp(content_type(it), "tool_request")) continue;
            char *args = json_object_get(it, "arguments")
                             ? json_dumps(json_object_get(it, "arguments"), JSON_COMPACT)
                             : NULL;
            char id[PROV_SAFE_NAME_LEN], name[PROV_SAFE_NAME_LEN];
            json_array_append_new(
                calls,
                json_pack("{s:s, s:s, s:{s:s, s:s}}", "id",
                          prov_safe_name(json_string_value(json_object_get(it, "id")), id), "type",
                          "function", "function", "name",
                          prov_safe_name(json_string_value(json_object_get(it, "name")), name),
                          "arguments", args ? args : "{}"));
            free(args);
        }
        /* content may be null only beside tool_calls: a reply with neither (empty, or thinking
         * only) has nothing to send and is left out, as the API refuses it (400). */
        if (*text || json_array_size(calls)) {
            json_t *m = json_pack("{s:s}", "role", "assistant");
            json_object_set_new(m, "content", *text ? json_string(text) : json_null());
            if (json_array_size(calls)) json_object_set(m, "tool_calls", calls);
            json_array_append_new(out, m);
        }
        json_decref(calls);
        free(text);
        return out;
    }
    /* user: tool results first (they must follow the assistant's tool calls), then text */
    json_t *images = json_array();
    json_array_foreach(content, i, it)
    {
        if (strcmp(content_type(it), "tool_response")) continue;
        tool_message(it, out, images);
    }
    /* A tool message takes only text: the images of all the results of this turn follow in one
     * user message, after the last tool message (any other role there ends the tool answers). */
    if (json_array_size(images))
        json_array_append_new(out, json_pack("{s:s, s:o}", "role", "user", "content", images));
    else
        json_decref(images);
    char *text = content_text(content, "\n");
    if (*text) json_array_append_new(out, json_pack("{s:s, s:s}", "role", "user", "content", text));
    free(text);
    return out;
}

static json_t *oa_build_tools(json_t *tools)
{
    if (!json_array_size(tools)) return NULL;
    json_t *ts = json_array(), *t;
    size_t i;
    json_array_foreach(tools, i, t)
    {
        json_array_append_new(ts, json_pack("{s:s, s:{s:O, s:O, s:O}}", "type", "function",
                                            "function", "name", json_object_get(t, "name"),
                                            "description", json_object_get(t, "description"),
                                            "parameters", json_object_get(t, "input_schema")));
    }
    return ts;
}

static json_t *oa_build(const provider_cfg *c, const char *system, json_t *messages, json_t *tools)
{
    json_t *msgs = json_array();
    if (system && *system)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", system));
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) convert_message(m, msgs);
    json_t *body = json_pack("{s:s, s:o, s:b, s:{s:b}}", "model", c->model, "messages", msgs,
                             "stream", 1, "stream_options", "include_usage", 1);
    json_t *ts = oa_build_tools(tools);
    if (ts) json_object_set_new(body, "tools", ts);
    return body;
}

static bool is_azure(const provider_cfg *c)
{
    return !strcmp(c->def->name, "azure_openai");
}

/* Azure OpenAI addresses a deployment (AZURE_OPENAI_DEPLOYMENT_NAME, default: the model) with an
 * api-version (AZURE_OPENAI_API_VERSION), and takes the key in an api-key header. */
static void oa_url(const provider_cfg *c, char *url, size_t len)
{
    if (is_azure(c)) {
        const char *dep = getenv("AZURE_OPENAI_DEPLOYMENT_NAME");
        const char *ver = getenv("AZURE_OPENAI_API_VERSION");
        snprintf(url, len, "%s/%s/%s/chat/completions?api-version=%s", c->base, c->path,
                 dep && *dep ? dep : c->model, ver && *ver ? ver : "2024-10-21");
        return;
    }
    snprintf(url, len, "%s/%s", c->base, c->path);
}

static gd_err oa_headers(const provider_cfg *c, buf *h)
{
    if (!c->key[0]) return GD_OK;
    return buf_printf(h, is_azure(c) ? "api-key: %s\r\n" : "Authorization: Bearer %s\r\n", c->key);
}

/* ---- stream ---- */

struct prov_parser {
    prov_sink sink;
    js_doc doc;      /* the current chunk, read without a tree (jscan) */
    buf scratch;     /* a string of it with escapes, decoded */
    bool done;       /* [DONE] seen */
    char finish[32]; /* finish_reason, "" until seen */
    long in_tokens, out_tokens;
    int ncalls; /* calls[0 .. ncalls): grown as the stream names them (most replies: none) */
    struct oa_call {
        char *id;
        char *name;
        buf args;
    } * calls;
};

static prov_parser *oa_parser_new(const prov_sink *sink)
{
    prov_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->sink = *sink;
    js_init(&p->doc);
    buf_init(&p->scratch, BUF_CAP_SSE_LINE * BUF_CAP_SSE_DATA_LINES); /* an event's data, at most */
    return p;
}

static void oa_parser_free(prov_parser *p)
{
    if (!p) return;
    for (int i = 0; i < p->ncalls; i++) {
        free(p->calls[i].id);
        free(p->calls[i].name);
        buf_free(&p->calls[i].args);
    }
    free(p->calls);
    js_free(&p->doc);
    buf_free(&p->scratch);
    free(p);
}

static gd_err fail(prov_result *res, const char *msg)
{
    snprintf(res->error, sizeof res->error, "%s", msg);
    return GD_EINVAL;
}

/* String member key of object o into a new C string (*out; untouched when absent or already
 * set). false when out of memory. */
/* Takes the string member key of o into *out, once (the first chunk that has it); NULL, or why
 * it cannot be taken. */
static const char *take_string(prov_parser *p, int o, const char *key, char **out)
{
    const char *s;
    size_t n;
    if (*out || !js_string(&p->doc, js_get(&p->doc, o, key), &p->scratch, &s, &n)) return NULL;
    if (n > PROV_MAX_TOOL_ID) return "provider sent a tool call whose id or name passes 256 bytes";
    return (*out = strndup(s, n)) ? NULL : "out of memory reading a tool call";
}

static gd_err tool_delta(prov_parser *p, int tc, prov_result *res)
{
    js_doc *d = &p->doc;
    long long idx = 0;
    (void)js_int(d, js_get(d, tc, "index"), &idx); /* absent: 0, as a missing index always was */
    if (idx < 0 || idx >= PROV_MAX_TOOL_CALLS)
        return fail(res, "provider sent a tool call index out of range");
    if (p->ncalls <= idx) {
        struct oa_call *more = realloc(p->calls, (size_t)(idx + 1) * sizeof *more);
        if (!more) return fail(res, "out of memory reading a tool call");
        p->calls = more;
        while (p->ncalls <= idx) {
            p->calls[p->ncalls] = (struct oa_call){0};
            buf_init(&p->calls[p->ncalls++].args, BUF_CAP_TOOL_ARGS);
        }
    }
    int fn = js_get(d, tc, "function");
    const char *why = take_string(p, tc, "id", &p->calls[idx].id);
    if (!why) why = take_string(p, fn, "name", &p->calls[idx].name);
    if (why) return fail(res, why);
    const char *args;
    size_t n;
    if (js_string(d, js_get(d, fn, "arguments"), &p->scratch, &args, &n) &&
        buf_append(&p->calls[idx].args, args, n) != GD_OK)
        return fail(res, "tool call arguments larger than 4 MiB"); /* BUF_CAP_TOOL_ARGS */
    return GD_OK;
}

/* A non-empty string member key of object o, handed to emit. */
static void emit_text(prov_parser *p, int o, const char *key,
                      void (*emit)(void *ud, const char *s, size_t n))
{
    const char *s;
    size_t n;
    if (emit && js_string(&p->doc, js_get(&p->doc, o, key), &p->scratch, &s, &n) && n)
        emit(p->sink.ud, s, n);
}

/* One chunk, read with jscan: the stream brings one per token, and a tree of jansson nodes for
 * each cost more than everything else goosed does with it. */
static gd_err oa_parser_event(prov_parser *p, const char *event, const char *data, prov_result *res)
{
    (void)event;
    if (!strcmp(data, "[DONE]")) {
        p->done = true;
        return GD_OK;
    }
    js_doc *d = &p->doc;
    if (!prov_scan_chunk(d, data, res)) return GD_EINVAL;
    int usage = js_get(d, 0, "usage");
    if (js_typeof(d, usage) == JS_OBJECT) {
        long long v = 0;
        p->in_tokens = js_int(d, js_get(d, usage, "prompt_tokens"), &v) ? prov_tokens(v) : 0;
        v = 0;
        p->out_tokens = js_int(d, js_get(d, usage, "completion_tokens"), &v) ? prov_tokens(v) : 0;
    }
    int choice = js_at(d, js_get(d, 0, "choices"), 0);
    if (js_typeof(d, choice) != JS_OBJECT) return GD_OK;
    int delta = js_get(d, choice, "delta");
    emit_text(p, delta, "reasoning_content", p->sink.thinking);
    emit_text(p, delta, "content", p->sink.text);
    int calls = js_get(d, delta, "tool_calls");
    for (size_t i = 0, n = js_size(d, calls); js_typeof(d, calls) == JS_ARRAY && i < n; i++) {
        gd_err e = tool_delta(p, js_at(d, calls, i), res);
        if (e) return e;
    }
    const char *f;
    size_t n;
    if (js_string(d, js_get(d, choice, "finish_reason"), &p->scratch, &f, &n))
        snprintf(p->finish, sizeof p->finish, "%.*s", (int)n, f);
    return GD_OK;
}

static gd_err oa_parser_finish(prov_parser *p, prov_result *res)
{
    if (!p->done && !p->finish[0])
        return fail(res, "the provider's stream ended before it was complete");
    for (int i = 0; i < p->ncalls; i++) {
        if (!p->calls[i].name) return fail(res, "provider sent a tool call without a name");
        char gen[32];
        if (!p->calls[i].id) snprintf(gen, sizeof gen, "call_%d", i);
        const char *raw = p->calls[i].args.len ? p->calls[i].args.data : "{}";
        json_t *args = json_loads(raw, 0, NULL);
        /* Unparseable arguments are handed on as NULL: the agent answers the model with an error.
         */
        p->sink.tool_call(p->sink.ud, p->calls[i].id ? p->calls[i].id : gen, p->calls[i].name,
                          json_is_object(args) ? args : NULL);
        json_decref(args);
    }
    const char *f = p->finish;
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s",
             !strcmp(f, "length")                        ? "max_tokens"
             : !strcmp(f, "tool_calls") || p->ncalls > 0 ? "tool_use"
                                                         : "end_turn");
    res->input_tokens = p->in_tokens;
    res->output_tokens = p->out_tokens;
    return GD_OK;
}

const prov_dialect_ops dialect_openai = {
    .name = "openai",
    .build = oa_build,
    .build_tools = oa_build_tools,
    .url = oa_url,
    .headers = oa_headers,
    .parser_new = oa_parser_new,
    .parser_event = oa_parser_event,
    .parser_finish = oa_parser_finish,
    .parser_free = oa_parser_free,
    .error_body = prov_error_body_json,
};
