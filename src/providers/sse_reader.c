/* text/event-stream framing (the WHATWG "event stream interpretation"): lines end in LF, CRLF
 * or CR; `event:` names the event, `data:` lines are joined with LF, a blank line dispatches,
 * lines starting with ':' are comments. Every line is capped. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/content.h"
#include "providers/provider.h"

struct sse_reader {
    buf line;
    buf event;
    buf data;
    buf id;      /* the last event ID buffer: the `id:` field seen last */
    buf last_id; /* the last event ID: id, as of the last dispatch */
    long retry_ms;
    bool have_data;
    bool last_cr; /* the previous byte was CR: a following LF belongs to it */
    sse_event_fn fn;
    void *ud;
};

sse_reader *sse_reader_new(size_t max_line, sse_event_fn fn, void *ud)
{
    sse_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    buf_init(&r->line, max_line);
    buf_init(&r->event, BUF_CAP_SSE_EVENT_NAME);
    buf_init(&r->data, max_line * BUF_CAP_SSE_DATA_LINES);
    buf_init(&r->id, BUF_CAP_SSE_EVENT_NAME);
    buf_init(&r->last_id, BUF_CAP_SSE_EVENT_NAME);
    r->retry_ms = -1;
    r->fn = fn;
    r->ud = ud;
    return r;
}

void sse_reader_free(sse_reader *r)
{
    if (!r) return;
    buf_free(&r->line);
    buf_free(&r->event);
    buf_free(&r->data);
    buf_free(&r->id);
    buf_free(&r->last_id);
    free(r);
}

static gd_err dispatch(sse_reader *r)
{
    gd_err e = GD_OK;
    buf_reset(&r->last_id);
    if (r->id.len && (e = buf_append(&r->last_id, r->id.data, r->id.len))) return e;
    if (r->have_data)
        e = r->fn(r->ud, r->event.len ? r->event.data : NULL, r->data.data ? r->data.data : "");
    buf_reset(&r->event);
    buf_reset(&r->data);
    r->have_data = false;
    return e;
}

static gd_err line_done(sse_reader *r)
{
    const char *l = r->line.data ? r->line.data : "";
    size_t n = r->line.len;
    gd_err e = GD_OK;
    if (n == 0) {
        e = dispatch(r);
    } else if (l[0] != ':') {
        const char *colon = memchr(l, ':', n);
        size_t flen = colon ? (size_t)(colon - l) : n;
        const char *val = colon ? colon + 1 : l + n;
        if (colon && *val == ' ') val++;
        size_t vlen = n - (size_t)(val - l);
        if (flen == 5 && !memcmp(l, "event", 5)) {
            buf_reset(&r->event);
            e = buf_append(&r->event, val, vlen);
        } else if (flen == 4 && !memcmp(l, "data", 4)) {
            if (r->have_data) e = buf_append(&r->data, "\n", 1);
            if (!e) e = buf_append(&r->data, val, vlen);
            r->have_data = true;
        } else if (flen == 2 && !memcmp(l, "id", 2)) {
            if (!memchr(val, '\0', vlen)) {
                buf_reset(&r->id);
                e = buf_append(&r->id, val, vlen);
            }
        } else if (flen == 5 && !memcmp(l, "retry", 5)) {
            long ms = 0;
            size_t i = 0;
            while (i < vlen && val[i] >= '0' && val[i] <= '9' && ms < 86400000)
                ms = ms * 10 + (val[i++] - '0');
            if (vlen && i == vlen) r->retry_ms = ms;
        } /* unknown fields are ignored */
    }
    buf_reset(&r->line);
    return e;
}

gd_err sse_reader_feed(sse_reader *r, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        gd_err e;
        if (c == '\n' && r->last_cr) {
            r->last_cr = false;
            continue;
        }
        r->last_cr = c == '\r';
        if (c == '\n' || c == '\r') {
            if ((e = line_done(r))) return e;
            continue;
        }
        /* Append runs of ordinary bytes at once. */
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        if ((e = buf_append(&r->line, data + i, j - i))) return e;
        i = j - 1;
    }
    return GD_OK;
}

gd_err sse_reader_end(sse_reader *r)
{
    gd_err e = GD_OK;
    if (r->line.len) e = line_done(r);
    if (!e) e = dispatch(r);
    return e;
}

const char *sse_reader_last_id(const sse_reader *r)
{
    return r->last_id.len ? r->last_id.data : "";
}

long sse_reader_retry_ms(const sse_reader *r)
{
    return r->retry_ms;
}

json_t *prov_parse_chunk(const char *data, prov_result *res)
{
    json_error_t jerr;
    json_t *j = json_loads(data, 0, &jerr);
    if (json_is_object(j)) {
        json_t *err = json_object_get(j, "error");
        if (!err || json_is_null(err)) return j;
        prov_stream_error(err, res);
        json_decref(j);
        return NULL;
    }
    if (j)
        snprintf(res->error, sizeof res->error,
                 "the provider sent a stream chunk that is not a JSON object");
    else
        snprintf(res->error, sizeof res->error,
                 "the provider sent a stream chunk that is not valid JSON: %s", jerr.text);
    json_decref(j);
    return NULL;
}

bool prov_scan_chunk(js_doc *d, const char *data, prov_result *res)
{
    char err[160];
    gd_err e = js_parse(d, data, strlen(data), err, sizeof err);
    if (e == GD_ENOMEM) {
        snprintf(res->error, sizeof res->error, "out of memory reading the provider's stream");
        return false;
    }
    if (e) {
        snprintf(res->error, sizeof res->error,
                 "the provider sent a stream chunk that is not valid JSON: %s", err);
        return false;
    }
    if (js_typeof(d, 0) != JS_OBJECT) {
        snprintf(res->error, sizeof res->error,
                 "the provider sent a stream chunk that is not a JSON object");
        return false;
    }
    js_type et = js_typeof(d, js_get(d, 0, "error"));
    if (et == JS_NONE || et == JS_NULL) return true;
    json_decref(prov_parse_chunk(data, res)); /* the provider's error, reported as it says */
    return false;
}

bool prov_transient_error(json_t *err)
{
    static const char *const transient[] = {
        "overloaded_error",   "api_error",         "rate_limit_error",
        "server_error",       "UNAVAILABLE",       "INTERNAL",
        "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "rate_limit_exceeded"};
    json_t *code = json_object_get(err, "code");
    if (json_is_integer(code)) {
        json_int_t c = json_integer_value(code);
        if (c == 429 || (c >= 500 && c <= 599)) return true;
    }
    const char *fields[] = {"type", "status", "code"};
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
        const char *v = json_string_value(json_object_get(err, fields[f]));
        for (size_t i = 0; v && i < sizeof transient / sizeof *transient; i++)
            if (!strcmp(v, transient[i])) return true;
    }
    return false;
}

void prov_error_body_json(const char *body, size_t len, prov_result *res)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    content_error_message(j, body, len, res->error, sizeof res->error);
    json_decref(j);
}

gd_err prov_stream_error(json_t *err, prov_result *res)
{
    const char *msg = json_string_value(json_object_get(err, "message"));
    snprintf(res->error, sizeof res->error, "%s",
             msg && *msg ? msg : "provider reported an error in the stream (without a message)");
    res->retryable = prov_transient_error(err);
    return GD_EINVAL;
}
