/* The Google Gemini dialect (generateContent). Streamed with `alt=sse`: each `data:` event is a
 * whole GenerateContentResponse (candidates[0].content.parts, then finishReason on the last one,
 * usageMetadata with running totals); there is no terminator. Function calls arrive whole, in
 * one chunk, and carry no id: goosed makes one. Thought signatures (on a functionCall part, or on
 * a text part) go to sink.signature before the part itself, and go back on a functionCall: its
 * own "signature" when the tool_request item has one, else, on the first call of a message, the
 * signature of the thinking item before it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/ids.h"
#include "core/jtext.h"
#include "core/content.h"
#include "providers/provider.h"

#define SCHEMA_DEPTH 24
#define SCHEMA_NODES 5000
/* Google's documented stand-in for a function call whose thought signature was lost (history
 * from another provider, a compacted turn): Gemini 3 refuses such a call without one. */
#define SKIP_SIGNATURE "skip_thought_signature_validator"

/* ---- request ---- */

/* Schema cleaning state: the root (for $ref), the $refs being inlined (a cycle stops there),
 * and a node budget (a schema that unfolds too far is cut). */
typedef struct {
    json_t *root;
    json_t *active;
    int budget;
} schema_ctx;

static json_t *schema(json_t *s, schema_ctx *cx, int depth);

/* "#/$defs/X" or "#/definitions/X" in root, or NULL. Borrowed. */
static json_t *resolve_ref(json_t *root, const char *ref)
{
    if (!strncmp(ref, "#/$defs/", 8))
        return json_object_get(json_object_get(root, "$defs"), ref + 8);
    if (!strncmp(ref, "#/definitions/", 14))
        return json_object_get(json_object_get(root, "definitions"), ref + 14);
    return NULL;
}

/* Whether a format is one Gemini takes for this type (it refuses the others). */
static bool format_ok(const char *type, const char *fmt)
{
    if (!type) return false;
    if (!strcmp(type, "string")) return !strcmp(fmt, "enum") || !strcmp(fmt, "date-time");
    if (!strcmp(type, "number")) return !strcmp(fmt, "float") || !strcmp(fmt, "double");
    if (!strcmp(type, "integer")) return !strcmp(fmt, "int32") || !strcmp(fmt, "int64");
    return false;
}

/* Copies src's keys that dst lacks into dst (inlining a one-branch anyOf/allOf, a $ref). */
static void merge_missing(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        if (!json_object_get(dst, k)) json_object_set(dst, k, v);
    }
    json_decref(src);
}

/* Sanitised list of subschemas, nulls noted in *nullable. New reference. */
static json_t *branches(json_t *list, schema_ctx *cx, int depth, bool *nullable)
{
    json_t *out = json_array(), *b;
    size_t i;
    json_array_foreach(list, i, b)
    {
        const char *t = json_string_value(json_object_get(b, "type"));
        if (t && !strcmp(t, "null") && json_object_size(b) == 1)
            *nullable = true;
        else
            json_array_append_new(out, schema(b, cx, depth + 1));
    }
    return out;
}

/* Gemini's Schema is a subset of OpenAPI 3.0's, and it refuses unknown keys ($schema,
 * additionalProperties, $ref, ...). This keeps what it takes: type, format, description,
 * nullable, enum, items, properties, required, anyOf, minItems, maxItems, minimum, maximum,
 * default; a type list with "null" becomes nullable, $ref is inlined from $defs, const becomes a
 * one-value enum, a one-branch anyOf/oneOf/allOf is inlined. New reference. */
static json_t *schema(json_t *s, schema_ctx *cx, int depth)
{
    json_t *out = json_object();
    if (!json_is_object(s) || depth > SCHEMA_DEPTH || --cx->budget < 0) return out;
    bool nullable = json_is_true(json_object_get(s, "nullable"));
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    json_t *target = ref && !json_object_get(cx->active, ref) ? resolve_ref(cx->root, ref) : NULL;

    /* type */
    json_t *t = json_object_get(s, "type");
    const char *type = json_string_value(t);
    if (json_is_array(t)) {
        size_t i;
        json_t *x;
        type = NULL;
        json_array_foreach(t, i, x)
        {
            const char *v = json_string_value(x);
            if (v && !strcmp(v, "null"))
                nullable = true;
            else if (v && !type)
                type = v;
        }
    } else if (type && !strcmp(type, "null")) {
        type = NULL;
        nullable = true;
    }
    if (type) json_object_set_new(out, "type", json_string(type));

    const char *fmt = json_string_value(json_object_get(s, "format"));
    if (fmt && format_ok(type, fmt)) json_object_set_new(out, "format", json_string(fmt));
    json_t *desc = json_object_get(s, "description");
    if (!json_is_string(desc)) desc = json_object_get(s, "title");
    if (json_is_string(desc)) json_object_set(out, "description", desc);

    /* enum (strings only: Gemini's enum is a list of strings), const */
    json_t *en = json_object_get(s, "enum");
    if (json_is_array(en)) {
        json_t *vals = json_array(), *x;
        bool ok = true;
        size_t i;
        json_array_foreach(en, i, x)
        {
            if (json_is_null(x))
                nullable = true;
            else if (json_is_string(x))
                json_array_append(vals, x);
            else
                ok = false;
        }
        if (ok && json_array_size(vals)) json_object_set(out, "enum", vals);
        json_decref(vals);
    } else if (json_is_string(json_object_get(s, "const"))) {
        json_object_set_new(out, "enum", json_pack("[O]", json_object_get(s, "const")));
    }

    /* object */
    json_t *props = json_object_get(s, "properties");
    if (json_is_object(props) && json_object_size(props)) {
        json_t *p = json_object(), *v;
        const char *k;
        json_object_foreach(props, k, v) json_object_set_new(p, k, schema(v, cx, depth + 1));
        json_object_set_new(out, "properties", p);
        json_t *req = json_array(), *x;
        size_t i;
        json_array_foreach(json_object_get(s, "required"), i, x)
        {
            if (json_is_string(x) && json_object_get(p, json_string_value(x)))
                json_array_append(req, x);
        }
        if (json_array_size(req)) json_object_set(out, "required", req);
        json_decref(req);
    }

    /* array: one schema for every item (tuples are not supported) */
    json_t *items = json_object_get(s, "items");
    if (json_is_object(items)) json_object_set_new(out, "items", schema(items, cx, depth + 1));

    static const char *const numeric[] = {"minItems", "maxItems", "minimum", "maximum"};
    for (size_t i = 0; i < sizeof numeric / sizeof *numeric; i++) {
        json_t *v = json_object_get(s, numeric[i]);
        if (json_is_number(v)) json_object_set(out, numeric[i], v);
    }
    if (json_object_get(s, "default") && !json_is_null(json_object_get(s, "default")))
        json_object_set(out, "default", json_object_get(s, "default"));

    /* unions */
    json_t *any = json_object_get(s, "anyOf");
    if (!json_is_array(any)) any = json_object_get(s, "oneOf");
    if (json_is_array(any)) {
        json_t *bs = branches(any, cx, depth, &nullable);
        if (json_array_size(bs) == 1)
            merge_missing(out, json_incref(json_array_get(bs, 0)));
        else if (json_array_size(bs) > 1)
            json_object_set(out, "anyOf", bs);
        json_decref(bs);
    }
    json_t *all = json_object_get(s, "allOf");
    if (json_is_array(all) && json_array_size(all) == 1)
        merge_missing(out, schema(json_array_get(all, 0), cx, depth + 1));
    if (target) {
        json_object_set_new(cx->active, ref, json_true());
        merge_missing(out, schema(target, cx, depth + 1));
        json_object_del(cx->active, ref);
    }

    if (nullable) json_object_set_new(out, "nullable", json_true());
    return out;
}

/* Gemini 1.x and 2.x do not check thought signatures; later models refuse a function call
 * without one. */
static bool wants_signatures(const char *model)
{
    return !strstr(model, "gemini-1") && !strstr(model, "gemini-2") && !strstr(model, "gemma");
}

/* The image types Gemini takes as inline data. */
static bool image_ok(const char *mime)
{
    static const char *const ok[] = {"image/png", "image/jpeg", "image/webp", "image/heic",
                                     "image/heif"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(mime, ok[i])) return true;
    return false;
}

/* The parts of one goosed message. names maps tool call ids to names (for a tool response that
 * lacks its name). New reference; may be empty. */
static json_t *convert_parts(const provider_cfg *c, json_t *content, bool model, json_t *names)
{
    json_t *parts = json_array(), *images = json_array(), *texts = json_array(), *it;
    const char *sig = NULL; /* the last thinking item's signature */
    bool first_call = true;
    size_t i;
    json_array_foreach(content, i, it)
    {
        const char *type = content_type(it);
        if (!strcmp(type, "text")) {
            const char *t = json_string_value(json_object_get(it, "text"));
            if (!content_blank(t))
                json_array_append_new(model ? parts : texts, json_pack("{s:s}", "text", t));
        } else if (!strcmp(type, "thinking") && model) {
            const char *s = json_string_value(json_object_get(it, "signature"));
            if (s && *s) sig = s;
        } else if (!strcmp(type, "tool_request") && model) {
            const char *name = json_string_value(json_object_get(it, "name"));
            const char *id = json_string_value(json_object_get(it, "id"));
            json_t *args = json_object_get(it, "arguments");
            if (!name) continue;
            if (id) json_object_set_new(names, id, json_string(name));
            char sname[PROV_SAFE_NAME_LEN];
            json_t *part =
                json_pack("{s:{s:s, s:o}}", "functionCall", "name", prov_safe_name(name, sname),
                          "args", json_is_object(args) ? json_incref(args) : json_object());
            /* The call's own signature if the agent kept one on it; else the first call of
             * the message takes the signature of the thinking before it. */
            const char *own = json_string_value(json_object_get(it, "signature"));
            if (own && *own)
                json_object_set_new(part, "thoughtSignature", json_string(own));
            else if (first_call && (sig || wants_signatures(c->model)))
                json_object_set_new(part, "thoughtSignature",
                                    json_string(sig ? sig : SKIP_SIGNATURE));
            first_call = false;
            json_array_append_new(parts, part);
        } else if (!strcmp(type, "tool_response") && !model) {
            const char *name = json_string_value(json_object_get(it, "name"));
            const char *id = json_string_value(json_object_get(it, "id"));
            if (!name && id) name = json_string_value(json_object_get(names, id));
            if (!name) continue;
            json_t *results = content_tool_parts(json_object_get(it, "content"), image_ok), *r;
            size_t j;
            buf text;
            buf_init(&text, BUF_CAP_CONTENT);
            gd_err e = GD_OK; /* the first failed append to text */
            json_array_foreach(results, j, r)
            {
                const char *t = json_string_value(json_object_get(r, "text"));
                if (!strcmp(content_type(r), "image")) {
                    json_array_append_new(images,
                                          json_pack("{s:{s:O, s:O}}", "inlineData", "mimeType",
                                                    json_object_get(r, "mimeType"), "data",
                                                    json_object_get(r, "data")));
                    t = "[an image: it follows after the function responses]";
                }
                if (!e && text.len) e = buf_puts(&text, "\n");
                if (!e) e = buf_puts(&text, t);
            }
            const char *s =
                buf_mark_truncated(&text, e, "\n[the rest of this tool result was cut: too long]")
                    ? "[this tool result was left out: out of memory]"
                : text.data ? text.data
                            : "";
            char sname[PROV_SAFE_NAME_LEN];
            json_array_append_new(parts,
                                  json_pack("{s:{s:s, s:{s:s}}}", "functionResponse", "name",
                                            prov_safe_name(name, sname), "response", "content", s));
            buf_free(&text);
            json_decref(results);
        }
    }
    /* A user message: the function responses first, then their images, then the text. */
    json_array_extend(parts, images);
    json_array_extend(parts, texts);
    json_decref(images);
    json_decref(texts);
    return parts;
}

static json_t *gm_build_tools(json_t *tools)
{
    if (!json_array_size(tools)) return NULL;
    json_t *decls = json_array(), *t;
    size_t i;
    json_array_foreach(tools, i, t)
    {
        json_t *d = json_pack("{s:O}", "name", json_object_get(t, "name"));
        if (!d) continue;
        if (json_is_string(json_object_get(t, "description")))
            json_object_set(d, "description", json_object_get(t, "description"));
        json_t *in = json_object_get(t, "input_schema");
        schema_ctx x = {.root = in, .active = json_object(), .budget = SCHEMA_NODES};
        json_t *params = schema(in, &x, 0);
        json_decref(x.active);
        /* Gemini refuses an OBJECT without properties: a tool without arguments has none. */
        if (json_object_get(params, "properties")) json_object_set(d, "parameters", params);
        json_decref(params);
        json_array_append_new(decls, d);
    }
    return json_pack("[{s:o}]", "functionDeclarations", decls);
}

static json_t *gm_build(const provider_cfg *c, const char *system, json_t *messages, json_t *tools)
{
    json_t *contents = json_array(), *names = json_object(), *m;
    size_t i;
    json_array_foreach(messages, i, m)
    {
        const char *r = json_string_value(json_object_get(m, "role"));
        const char *role = r && !strcmp(r, "assistant") ? "model" : "user";
        json_t *parts =
            convert_parts(c, json_object_get(m, "content"), !strcmp(role, "model"), names);
        json_t *last = json_array_get(contents, json_array_size(contents) - 1);
        if (!json_array_size(parts)) {
            json_decref(parts);
        } else if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
            json_array_extend(json_object_get(last, "parts"), parts);
            json_decref(parts);
        } else {
            json_array_append_new(contents, json_pack("{s:s, s:o}", "role", role, "parts", parts));
        }
    }
    json_decref(names);
    json_t *body = json_object();
    if (system && *system)
        json_object_set_new(body, "systemInstruction",
                            json_pack("{s:[{s:s}]}", "parts", "text", system));
    json_object_set_new(body, "contents", contents);
    json_t *ts = gm_build_tools(tools);
    if (ts) json_object_set_new(body, "tools", ts);
    return body;
}

static void gm_url(const provider_cfg *c, char *url, size_t len)
{
    const char *model = c->model;
    if (!strncmp(model, "models/", 7)) model += 7;
    snprintf(url, len, "%s/%s/%s:streamGenerateContent?alt=sse", c->base, c->path, model);
}

static gd_err gm_headers(const provider_cfg *c, buf *h)
{
    return c->key[0] ? buf_printf(h, "x-goog-api-key: %s\r\n", c->key) : GD_OK;
}

/* ---- stream ---- */

struct prov_parser {
    prov_sink sink;
    char finish[32]; /* finishReason, "" until seen */
    bool output;     /* some text or thinking arrived */
    int ncalls;
    long in_tokens, out_tokens;
};

static prov_parser *gm_parser_new(const prov_sink *sink)
{
    prov_parser *p = calloc(1, sizeof *p);
    if (p) p->sink = *sink;
    return p;
}

static void gm_parser_free(prov_parser *p)
{
    free(p);
}

static gd_err fail(prov_result *res, const char *msg)
{
    snprintf(res->error, sizeof res->error, "%s", msg);
    return GD_EINVAL;
}

static gd_err part(prov_parser *p, json_t *pt, prov_result *res)
{
    const char *sig = json_string_value(json_object_get(pt, "thoughtSignature"));
    if (sig && *sig && p->sink.signature) p->sink.signature(p->sink.ud, sig);
    json_t *fc = json_object_get(pt, "functionCall");
    if (fc) {
        const char *name = json_string_value(json_object_get(fc, "name"));
        if (!name || !*name) return fail(res, "provider sent a function call without a name");
        if (strlen(name) > PROV_MAX_TOOL_ID)
            return fail(res, "provider sent a function call whose name passes 256 bytes");
        if (p->ncalls >= PROV_MAX_TOOL_CALLS)
            return fail(res, "provider sent more than 64 tool calls in one reply");
        json_t *args = json_object_get(fc, "args");
        if (args && jtext_size(args) > BUF_CAP_TOOL_ARGS) /* as the streamed dialects cap them */
            return fail(res, "tool call arguments larger than 4 MiB"); /* BUF_CAP_TOOL_ARGS */
        json_t *owned = args ? NULL : json_object();
        /* Gemini has no call ids (or, on Vertex, sometimes one): make a unique one. */
        char id[8 + REQUEST_ID_LEN];
        const char *given = json_string_value(json_object_get(fc, "id"));
        if (given && *given) {
            snprintf(id, sizeof id, "%s", given);
        } else {
            char rnd[REQUEST_ID_LEN];
            ids_request_id(rnd);
            snprintf(id, sizeof id, "call_%s", rnd);
        }
        /* Arguments that are not an object are handed on as NULL, as a broken call. */
        p->sink.tool_call(p->sink.ud, id, name, owned ? owned : json_is_object(args) ? args : NULL);
        json_decref(owned);
        p->ncalls++;
        return GD_OK;
    }
    const char *text = json_string_value(json_object_get(pt, "text"));
    if (text && *text) {
        p->output = true;
        if (!json_is_true(json_object_get(pt, "thought")))
            p->sink.text(p->sink.ud, text, strlen(text));
        else if (p->sink.thinking)
            p->sink.thinking(p->sink.ud, text, strlen(text));
    }
    return GD_OK;
}

static gd_err gm_parser_event(prov_parser *p, const char *event, const char *data, prov_result *res)
{
    json_t *chunk = prov_parse_chunk(data, res);
    if (!chunk) return GD_EINVAL;
    gd_err e = GD_OK;
    const char *blocked =
        json_string_value(json_object_get(json_object_get(chunk, "promptFeedback"), "blockReason"));
    if (blocked) {
        snprintf(res->error, sizeof res->error, "the provider refused the prompt (blockReason %s)",
                 blocked);
        e = GD_EINVAL;
        goto out;
    }
    json_t *usage = json_object_get(chunk, "usageMetadata");
    if (json_is_object(usage)) { /* running totals: the last one counts */
        p->in_tokens = prov_tokens(json_integer_value(json_object_get(usage, "promptTokenCount")));
        p->out_tokens = prov_tokens(
            prov_tokens(json_integer_value(json_object_get(usage, "candidatesTokenCount"))) +
            prov_tokens(json_integer_value(json_object_get(usage, "thoughtsTokenCount"))));
    }
    json_t *cand = json_array_get(json_object_get(chunk, "candidates"), 0);
    size_t i;
    json_t *pt;
    json_array_foreach(json_object_get(json_object_get(cand, "content"), "parts"), i, pt)
    {
        if ((e = part(p, pt, res))) goto out;
    }
    const char *f = json_string_value(json_object_get(cand, "finishReason"));
    if (f && *f) snprintf(p->finish, sizeof p->finish, "%s", f);
out:
    json_decref(chunk);
    return e;
}

static gd_err gm_parser_finish(prov_parser *p, prov_result *res)
{
    const char *f = p->finish;
    if (!f[0]) return fail(res, "the provider's stream ended before it was complete");
    bool normal = !strcmp(f, "STOP") || !strcmp(f, "MAX_TOKENS");
    if (!normal && !p->output && !p->ncalls) { /* SAFETY, MALFORMED_FUNCTION_CALL, ... */
        snprintf(res->error, sizeof res->error,
                 "the provider ended the reply without an answer (finishReason %s)", f);
        return GD_EINVAL;
    }
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s",
             !strcmp(f, "MAX_TOKENS") ? "max_tokens"
             : p->ncalls > 0          ? "tool_use"
                                      : "end_turn");
    res->input_tokens = p->in_tokens;
    res->output_tokens = p->out_tokens;
    return GD_OK;
}

/* {"error": {"code", "message", "status", "details"}}, or that in a one-element array (the
 * non-SSE stream form). A RetryInfo detail's retryDelay ("30s") stands in for Retry-After. */
static void gm_error_body(const char *body, size_t len, prov_result *res)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *err = json_object_get(json_is_array(j) ? json_array_get(j, 0) : j, "error");
    content_error_message(json_is_array(j) ? json_array_get(j, 0) : j, body, len, res->error,
                          sizeof res->error);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(err, "details"), i, d)
    {
        const char *type = json_string_value(json_object_get(d, "@type"));
        const char *delay = json_string_value(json_object_get(d, "retryDelay"));
        if (type && strstr(type, "RetryInfo") && delay && !res->retry_after_ms)
            res->retry_after_ms = prov_retry_ms(delay);
    }
    json_decref(j);
}

const prov_dialect_ops dialect_google = {
    .name = "google",
    .build = gm_build,
    .build_tools = gm_build_tools,
    .url = gm_url,
    .headers = gm_headers,
    .parser_new = gm_parser_new,
    .parser_event = gm_parser_event,
    .parser_finish = gm_parser_finish,
    .parser_free = gm_parser_free,
    .error_body = gm_error_body,
};
