#include "core/content.h"

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
    buf_init(&b, 64u << 20);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *t = json_string_value(json_object_get(it, "text"));
        if (!t || strcmp(content_type(it), "text")) continue;
        if (b.len) buf_puts(&b, sep);
        buf_puts(&b, t);
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
