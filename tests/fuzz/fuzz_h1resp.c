/* Fuzzes providers/h1resp.c, the provider client's response parser: the input (after its first
 * byte) fed whole and in pieces of a size the first byte picks, then the end of the stream.
 * Checks what the client relies on: the same outcome and the same body however the bytes
 * arrive, consumption within the input, an error always naming what was wrong, and a body never
 * longer than the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/h1client.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

typedef struct {
    uint64_t sum; /* of the body bytes, position-weighted */
    size_t len;
} body_sum;

static int on_body(void *ud, const char *p, size_t n)
{
    body_sum *b = ud;
    for (size_t i = 0; i < n; i++)
        b->sum = b->sum * 31 + (unsigned char)p[i];
    b->len += n;
    return 0;
}

static void on_header(void *ud, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)ud;
    CHECK(nl > 0);
    if (vl) CHECK(v[0] != ' ' && v[vl - 1] != ' ');
    (void)n;
}

typedef struct {
    gd_err e;
    int state, status;
    size_t used;
    body_sum b;
} result;

static result run(const char *in, size_t len, size_t step, bool no_body)
{
    result res = {0};
    h1resp r = {0};
    h1resp_cb cb = {.ud = &res.b, .header = on_header, .body = on_body};
    h1resp_init(&r, &cb, no_body);
    size_t off = 0;
    while (off < len && !res.e && !h1resp_done(&r)) {
        size_t n = step && len - off > step ? step : len - off;
        size_t used = 0;
        res.e = h1resp_feed(&r, in + off, n, &used);
        CHECK(used <= n);
        off += used;
        if (used < n) {
            CHECK(res.e || h1resp_done(&r));
            break;
        }
    }
    if (!res.e && !h1resp_done(&r)) res.e = h1resp_eof(&r);
    if (res.e) CHECK(r.err[0] != '\0');
    res.state = r.state;
    res.status = r.status;
    res.used = off;
    h1resp_free(&r);
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)(data[0] & 0x7f) + 1;
    bool no_body = data[0] & 0x80;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    result whole = run(in, len, 0, no_body);
    result parts = run(in, len, step, no_body);
    result bytes = run(in, len, 1, no_body);
    CHECK(whole.b.len <= len);
    CHECK(whole.e == parts.e && whole.e == bytes.e);
    CHECK(whole.state == parts.state && whole.state == bytes.state);
    CHECK(whole.status == parts.status);
    CHECK(whole.b.len == parts.b.len && whole.b.sum == parts.b.sum);
    CHECK(whole.b.len == bytes.b.len && whole.b.sum == bytes.b.sum);
    if (!whole.e) CHECK(whole.used == parts.used && whole.used == bytes.used);
    return 0;
}
