/* Fuzzes an MCP server's answer over HTTP as src/extensions/mcp/http_common.c reads it: its
 * header lines (on_header: Content-Type, Mcp-Session-Id), then its body fed in pieces to on_body:
 * an event stream (sse_reader, on_event, `message` events parsed as JSON-RPC messages or batches
 * and queued with the ids the request waits for; the legacy transport's `endpoint` event resolved
 * with mcp_url_resolve against the server's URL, which must keep its origin) or a JSON body
 * (mcp_http_parse, as on_done does), then what is queued is delivered on the loop. Byte 0: bit 0
 * an error status instead of 200, bit 1 the request waits for ids 1 and 2; byte 1: the piece
 * size; then header lines up to a blank line, then the body. Content-Type decides the body's kind,
 * as with a real server. http_common.c is included; no libcurl is loaded (the status is set as
 * curl would report it). */
#include <stdint.h>

#include "extensions/mcp/http_common.c"
#include "fuzz_loop.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

#define BASE_URL "http://127.0.0.1:8080/mcp/sse"

static int messages, ends;

static void on_message(void *ud, json_t *msg)
{
    CHECK(json_is_object(msg));
    messages++;
}

static void on_closed(void *ud, gd_err e, const char *why)
{
    CHECK(why);
    ends++;
}

static void teardown(mcp_http_base *b) {}

static gd_err on_endpoint(mcp_req *r, const char *event, const char *data)
{
    if (strcmp(event, "endpoint")) return GD_OK;
    char url[2048];
    if (mcp_url_resolve(BASE_URL, data, url, sizeof url) == GD_OK) {
        CHECK(!strncmp(url, "http://127.0.0.1:8080", 21));
        CHECK(url[21] == '\0' || url[21] == '/' || url[21] == '?' || url[21] == '#');
        CHECK(!strpbrk(url, "\r\n"));
    }
    return GD_OK;
}

typedef struct {
    const uint8_t *data;
    size_t size;
} input;

static void run(void *arg)
{
    const input *in = arg;
    const uint8_t *d = in->data;
    size_t n = in->size;
    mcp_http_base b = {.l = fuzz_loop(), .teardown = teardown};
    b.cb = (mcp_transport_cb){.message = on_message, .closed = on_closed};
    b.uri = strdup(BASE_URL);
    b.inbox = json_array();
    b.headers = json_object();
    mcp_req *r = calloc(1, sizeof *r);
    CHECK(b.uri && b.inbox && b.headers && r);
    r->b = &b;
    r->event = on_endpoint;
    if (d[0] & 2) r->want = json_pack("[i, i]", 1, 2);
    size_t piece = (size_t)d[1] + 1;
    d += 2;
    n -= 2;

    /* the header lines, each with its line end, as libcurl hands them over */
    while (n) {
        const uint8_t *nl = memchr(d, '\n', n);
        size_t len = nl ? (size_t)(nl - d) + 1 : n;
        char line[1024];
        size_t keep = len < sizeof line ? len : sizeof line - 1;
        memcpy(line, d, keep);
        CHECK(on_header(line, 1, keep, r) == keep);
        CHECK(memchr(r->ctype, '\0', sizeof r->ctype) &&
              memchr(r->session, '\0', sizeof r->session));
        d += len;
        n -= len;
        if (len <= 2 && (line[0] == '\n' || line[0] == '\r')) break; /* the blank line */
    }

    /* on_body's first call, with the status curl would report */
    r->status = in->data[0] & 1 ? 500 : 200;
    bool ok = r->status == 200;
    if (ok && !strcmp(r->ctype, "text/event-stream")) {
        r->sse = true;
        CHECK((r->rd = sse_reader_new(MCP_LINE_MAX, on_event, r)));
    }
    buf_init(&r->raw, ok ? MCP_LINE_MAX : MCP_HTTP_ERRBODY_MAX);
    bool cut = false;
    for (size_t off = 0; off < n && !cut; off += piece) {
        size_t len = n - off < piece ? n - off : piece;
        char *copy = malloc(len); /* an exact copy: ASan sees a read past the piece */
        CHECK(copy);
        memcpy(copy, d + off, len);
        size_t took = on_body(copy, 1, len, r);
        free(copy);
        if (took != len) {
            CHECK(took == 0 && r->stream_err && r->why[0]);
            cut = true;
        }
    }
    if (!cut && r->sse) {
        /* nothing: as the transport does at the stream's end, an event not ended by a blank
         * line is dropped (the event stream format says so) */
    } else if (!cut && ok && r->raw.len) {
        if (mcp_http_parse(&b, r, r->raw.data, r->raw.len) != GD_OK) CHECK(r->why[0]);
    } else if (!ok) {
        char why[512];
        r->easy = NULL;
        mcp_req_error(r, CURLE_OK, why, sizeof why);
        CHECK(why[0]);
    }
    mcp_http_abandon(&b, r, "the stream ended");
    /* What was queued, delivered now as the loop timer would; the timer itself is cancelled
     * first (deliver forgets it: it expects to be that timer, and b is gone once run returns). */
    if (b.tick) loop_timer_cancel(b.tick);
    b.tick = NULL;
    deliver(&b);
    mcp_req_free(r);
    json_decref(b.inbox);
    json_decref(b.headers);
    free(b.uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        char err[64];
        log_configure("off", err, sizeof err);
        init = true;
    }
    if (size < 2) return 0;
    input in = {data, size};
    fuzz_on_loop(run, &in);
    return 0;
}
