#include "core/content.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

const char *content_type(json_t *item)
{
    const char *t = json_string_value(json_object_get(item, "type"));
    return t ? t : "";
}

bool content_blank(const char *s)
{
    for (; s && *s; s++)
        if (!strchr(" \t\r\n", *s)) return false;
    return true;
}

char *content_text(json_t *items, const char *sep)
{
    buf b;
    buf_init(&b, BUF_CAP_CONTENT);
    size_t i;
    json_t *it;
    gd_err e = GD_OK;
    json_array_foreach(items, i, it)
    {
        const char *t = json_string_value(json_object_get(it, "text"));
        if (!t || strcmp(content_type(it), "text")) continue;
        if (!e && b.len) e = buf_puts(&b, sep);
        if (!e) e = buf_puts(&b, t);
    }
    if (buf_mark_truncated(&b, e, "\n[truncated]")) {
        buf_free(&b);
        return NULL; /* out of memory */
    }
    return buf_detach(&b);
}

void content_error_message(json_t *root, const char *body, size_t len, char *out, size_t outlen)
{
    json_t *err = json_object_get(root, "error");
    const char *msg = json_is_string(err) ? json_string_value(err)
                                          : json_string_value(json_object_get(err, "message"));
    if (msg)
        snprintf(out, outlen, "%s", msg);
    else
        snprintf(out, outlen, "%.*s", (int)(len > 300 ? 300 : len), body);
}

/* Appends {"type":"text","text":s} to parts unless s is NULL or empty. */
static void add_text(json_t *parts, const char *s)
{
    if (s && *s) json_array_append_new(parts, json_pack("{s:s, s:s}", "type", "text", "text", s));
}

/* Appends a short text note standing for what could not be sent. */
static void __attribute__((format(printf, 2, 3))) add_note(json_t *parts, const char *fmt, ...)
{
    char note[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
    add_text(parts, note);
}

/* An image, or a note when the provider cannot take its mime type or it lacks its data. */
static void add_image(json_t *parts, const char *mime, const char *data, const char *what,
                      bool (*image_ok)(const char *mime))
{
    if (!mime || !*mime || !data || !*data)
        add_note(parts, "[%s without %s: left out]", what,
                 !data || !*data ? "data" : "a mime type");
    else if (!image_ok || !image_ok(mime))
        add_note(parts, "[%s of type %.100s: this provider cannot take it, left out]", what, mime);
    else
        json_array_append_new(
            parts, json_pack("{s:s, s:s, s:s}", "type", "image", "mimeType", mime, "data", data));
}

static void add_resource(json_t *parts, json_t *res, bool (*image_ok)(const char *mime))
{
    const char *uri = json_string_value(json_object_get(res, "uri"));
    const char *mime = json_string_value(json_object_get(res, "mimeType"));
    const char *text = json_string_value(json_object_get(res, "text"));
    const char *blob = json_string_value(json_object_get(res, "blob"));
    if (!uri) uri = "(no uri)";
    if (text) {
        buf b;
        buf_init(&b, BUF_CAP_CONTENT);
        if (buf_printf(&b, "resource %s:\n", uri) == GD_OK && buf_puts(&b, text) == GD_OK)
            add_text(parts, b.data);
        else
            add_note(parts, "[resource %.200s: too large, left out]", uri);
        buf_free(&b);
    } else if (blob && mime && !strncmp(mime, "image/", 6) && image_ok && image_ok(mime)) {
        add_image(parts, mime, blob, "an image resource", image_ok);
    } else {
        add_note(parts, "[resource %.300s (%.100s): %s, left out]", uri,
                 mime ? mime : "no mime type",
                 blob ? "binary content this provider cannot take" : "neither text nor blob");
    }
}

json_t *content_tool_parts(json_t *items, bool (*image_ok)(const char *mime))
{
    json_t *parts = json_array(), *it;
    size_t i;
    json_array_foreach(items, i, it)
    {
        const char *type = content_type(it);
        if (!strcmp(type, "text")) {
            json_t *t = json_object_get(it, "text");
            if (json_is_string(t))
                add_text(parts, json_string_value(t));
            else
                add_note(parts, "[a text item without text: left out]");
        } else if (!strcmp(type, "image")) {
            add_image(parts, json_string_value(json_object_get(it, "mimeType")),
                      json_string_value(json_object_get(it, "data")), "an image", image_ok);
        } else if (!strcmp(type, "resource") && json_is_object(json_object_get(it, "resource"))) {
            add_resource(parts, json_object_get(it, "resource"), image_ok);
        } else if (!strcmp(type, "resource_link") && json_is_string(json_object_get(it, "uri"))) {
            const char *name = json_string_value(json_object_get(it, "name"));
            add_note(parts, "[resource link %.300s%s%.200s%s]",
                     json_string_value(json_object_get(it, "uri")), name ? " (" : "",
                     name ? name : "", name ? ")" : "");
        } else if (!strcmp(type, "audio")) {
            /* none of the providers' tool results takes audio: the model is told what it was */
            const char *mime = json_string_value(json_object_get(it, "mimeType"));
            const char *data = json_string_value(json_object_get(it, "data"));
            add_note(parts,
                     "[audio (%.100s, about %zu bytes): this provider cannot take audio in "
                     "a tool result, left out]",
                     mime ? mime : "no mime type", data ? strlen(data) / 4 * 3 : 0);
        } else {
            add_note(parts, "[a tool result item of type \"%.60s\": not supported, left out]",
                     *type ? type : "(none)");
        }
    }
    return parts;
}

#define INTERRUPTED "the tool call did not finish: goosed stopped before its result was stored"

static bool is_role(json_t *m, const char *role)
{
    const char *r = json_string_value(json_object_get(m, "role"));
    return r && !strcmp(r, role);
}

/* The ids of the tool_request items of an assistant message, as an object id -> item. */
static json_t *requests_of(json_t *m)
{
    json_t *ids = json_object(), *it;
    size_t i;
    if (!is_role(m, "assistant")) return ids;
    json_array_foreach(json_object_get(m, "content"), i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        if (id && !strcmp(content_type(it), "tool_request")) json_object_set(ids, id, it);
    }
    return ids;
}

/* The is_error tool_response standing for the result of a call that never finished. */
static json_t *interrupted(const char *id, json_t *req)
{
    return json_pack("{s:s, s:s, s:O?, s:[{s:s, s:s}], s:b}", "type", "tool_response", "id", id,
                     "name", json_object_get(req, "name"), "content", "type", "text", "text",
                     INTERRUPTED, "is_error", 1);
}

json_t *content_answer_tool_calls(json_t *messages)
{
    json_t *out = json_array(), *m;
    json_t *open = json_object(); /* the calls of the previous message, id -> tool_request */
    size_t i;
    json_array_foreach(messages, i, m)
    {
        json_t *content = json_array(), *it;
        size_t j;
        bool user = !is_role(m, "assistant");
        /* answer what the previous message asked and this one does not */
        json_t *missing = json_copy(open);
        json_array_foreach(json_object_get(m, "content"), j, it)
        {
            const char *id = json_string_value(json_object_get(it, "id"));
            if (strcmp(content_type(it), "tool_response")) continue;
            if (user && id && json_object_get(missing, id)) json_object_del(missing, id);
        }
        if (!user && json_object_size(missing)) { /* an assistant right after: a user between */
            json_t *answers = json_array();
            const char *id;
            json_t *req;
            json_object_foreach(missing, id, req)
            {
                json_array_append_new(answers, interrupted(id, req));
            }
            json_array_append_new(out, json_pack("{s:s, s:o}", "role", "user", "content", answers));
            json_object_clear(missing);
        }
        const char *id;
        json_t *req;
        json_object_foreach(missing, id, req)
        {
            json_array_append_new(content, interrupted(id, req));
        }
        json_decref(missing);
        /* keep the rest, less the answers to no call, and a second call or answer of one id (a
         * message stored before ids were made unique: the providers refuse them) */
        json_t *kept = json_object();
        json_array_foreach(json_object_get(m, "content"), j, it)
        {
            const char *rid = json_string_value(json_object_get(it, "id"));
            const char *type = content_type(it);
            bool answer = !strcmp(type, "tool_response");
            if (answer && (!user || !rid || !json_object_get(open, rid))) continue;
            if (rid && (answer || !strcmp(type, "tool_request"))) {
                if (json_object_get(kept, rid)) continue;
                json_object_set_new(kept, rid, json_true());
            }
            json_array_append(content, it);
        }
        json_decref(kept);
        json_t *copy = json_copy(m);
        json_object_set_new(copy, "content", content);
        json_array_append_new(out, copy);
        json_decref(open);
        open = requests_of(m);
    }
    /* the conversation ends with unanswered calls */
    if (json_object_size(open)) {
        json_t *answers = json_array(), *req;
        const char *id;
        json_object_foreach(open, id, req)
        {
            json_array_append_new(answers, interrupted(id, req));
        }
        json_array_append_new(out, json_pack("{s:s, s:o}", "role", "user", "content", answers));
    }
    json_decref(open);
    return out;
}

/* The checks of content_message_check for one item i of a message of the given role. */
static bool item_check(json_t *it, size_t i, bool assistant, char *err, size_t errlen)
{
    if (!json_is_object(it)) {
        snprintf(err, errlen, "content[%zu]: must be an object", i);
        return false;
    }
    const char *type = content_type(it);
    const char *field = NULL, *want = NULL;
    if (!strcmp(type, "text")) {
        if (!json_is_string(json_object_get(it, "text"))) field = "text", want = "a string";
    } else if (!strcmp(type, "thinking") && assistant) {
        json_t *sig = json_object_get(it, "signature");
        if (!json_is_string(json_object_get(it, "thinking")))
            field = "thinking", want = "a string";
        else if (sig && !json_is_string(sig))
            field = "signature", want = "a string";
    } else if (!strcmp(type, "tool_request") && assistant) {
        if (!json_is_string(json_object_get(it, "id")))
            field = "id", want = "a string";
        else if (!json_is_string(json_object_get(it, "name")))
            field = "name", want = "a string";
        else if (!json_is_object(json_object_get(it, "arguments")))
            field = "arguments", want = "an object";
    } else if (!strcmp(type, "tool_response") && !assistant) {
        json_t *name = json_object_get(it, "name"), *ie = json_object_get(it, "is_error");
        if (!json_is_string(json_object_get(it, "id")))
            field = "id", want = "a string";
        else if (name && !json_is_string(name))
            field = "name", want = "a string";
        else if (!json_is_array(json_object_get(it, "content")))
            field = "content", want = "an array";
        else if (ie && !json_is_boolean(ie))
            field = "is_error", want = "a boolean";
    } else {
        bool known = !strcmp(type, "thinking") || !strcmp(type, "tool_request") ||
                     !strcmp(type, "tool_response");
        if (known)
            snprintf(err, errlen, "content[%zu].type: %s is not allowed in a%s message", i, type,
                     assistant ? "n assistant" : " user");
        else
            snprintf(err, errlen,
                     "content[%zu].type: \"%.60s\" is not one of text, thinking, tool_request, "
                     "tool_response",
                     i, type);
        return false;
    }
    if (field) {
        snprintf(err, errlen, "content[%zu].%s: must be %s (in a %s item)", i, field, want, type);
        return false;
    }
    return true;
}

bool content_message_check(json_t *m, char *err, size_t errlen)
{
    if (!json_is_object(m)) {
        snprintf(err, errlen, "must be an object {\"role\", \"content\"}");
        return false;
    }
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant"))) {
        snprintf(err, errlen, "role: must be \"user\" or \"assistant\"");
        return false;
    }
    json_t *content = json_object_get(m, "content");
    bool assistant = !strcmp(role, "assistant");
    /* A reply may be empty (the model said nothing): goosed stores it so, and takes it back. */
    if (!json_is_array(content) || (!assistant && !json_array_size(content))) {
        snprintf(err, errlen,
                 assistant ? "content: must be an array of content items"
                           : "content: must be a non-empty array of content items");
        return false;
    }
    size_t i;
    json_t *it, *ids = json_object(); /* the calls' (or answers') ids so far: id -> index */
    bool ok = true;
    json_array_foreach(content, i, it)
    {
        if (!(ok = item_check(it, i, assistant, err, errlen))) break;
        const char *type = content_type(it);
        if (strcmp(type, "tool_request") && strcmp(type, "tool_response")) continue;
        const char *id = json_string_value(json_object_get(it, "id"));
        json_t *first = json_object_get(ids, id);
        if (!id[0] || first) {
            if (!id[0])
                snprintf(err, errlen, "content[%zu].id: must not be empty (in a %s item)", i, type);
            else
                snprintf(err, errlen,
                         "content[%zu].id: \"%.60s\" is the id of content[%lld] too; each %s of "
                         "a message needs an id of its own",
                         i, id, json_integer_value(first), type);
            ok = false;
            break;
        }
        json_object_set_new(ids, id, json_integer((json_int_t)i));
    }
    json_decref(ids);
    return ok;
}
