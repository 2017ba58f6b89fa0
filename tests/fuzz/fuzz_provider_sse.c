/* Fuzzes a provider's streamed answer: src/providers/sse_reader.c's framing and each dialect's
 * parser_event / parser_finish (openai.c, anthropic.c, google.c), then its error_body on the same
 * bytes. Input: byte 0 picks the dialect, byte 1 the size of the pieces the stream is fed in
 * (1..256: events split at every place), the rest is the stream. Checks that every string reaching
 * the sink is as long as it says, tool calls come with an id, a name and an object or NULL
 * (unparseable arguments), and the result's strings stay terminated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "providers/provider.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

typedef struct {
    const prov_dialect_ops *d;
    prov_parser *p;
    prov_result res;
    size_t bytes; /* everything delivered, touched byte by byte (ASan sees a bad length) */
    unsigned sum;
} ctx;

static void touch(ctx *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        c->sum += (unsigned char)s[i];
    c->bytes += n;
}

static void on_text(void *ud, const char *s, size_t n)
{
    touch(ud, s, n);
}

static void on_signature(void *ud, const char *s)
{
    CHECK(s);
    touch(ud, s, strlen(s));
}

static void on_tool(void *ud, const char *id, const char *name, json_t *args)
{
    CHECK(id && name);
    CHECK(!args || json_is_object(args)); /* NULL: arguments that were not an object */
    touch(ud, id, strlen(id));
    touch(ud, name, strlen(name));
    if (args) free(json_dumps(args, JSON_COMPACT));
}

static void on_burst(void *ud, bool begin) {}

static gd_err on_event(void *ud, const char *event, const char *data)
{
    ctx *c = ud;
    CHECK(data);
    return c->d->parser_event(c->p, event, data, &c->res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    static const prov_dialect_ops *const dialects[] = {&dialect_openai, &dialect_anthropic,
                                                       &dialect_google};
    ctx c = {.d = dialects[data[0] % 3]};
    size_t piece = (size_t)data[1] + 1;
    const char *s = (const char *)data + 2;
    size_t n = size - 2;

    prov_sink sink = {.ud = &c,
                      .text = on_text,
                      .thinking = on_text,
                      .signature = on_signature,
                      .tool_call = on_tool,
                      .burst = on_burst};
    c.p = c.d->parser_new(&sink);
    sse_reader *rd = sse_reader_new(BUF_CAP_SSE_LINE, on_event, &c);
    CHECK(c.p && rd);
    gd_err e = GD_OK;
    for (size_t off = 0; off < n && !e; off += piece)
        e = sse_reader_feed(rd, s + off, n - off < piece ? n - off : piece);
    if (!e) e = sse_reader_end(rd);
    if (!e) e = c.d->parser_finish(c.p, &c.res);
    const char *last = sse_reader_last_id(rd);
    CHECK(last && memchr(last, '\0', 4096));
    CHECK(memchr(c.res.error, '\0', sizeof c.res.error));
    CHECK(memchr(c.res.stop_reason, '\0', sizeof c.res.stop_reason));
    if (e == GD_EINVAL) CHECK(c.res.error[0]);
    sse_reader_free(rd);
    c.d->parser_free(c.p);

    prov_result eres = {0};
    c.d->error_body(s, n, &eres);
    CHECK(memchr(eres.error, '\0', sizeof eres.error));
    return 0;
}
