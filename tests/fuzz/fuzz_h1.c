/* Fuzzes http/h1.c: the request head parser, fed the input whole and in two pieces (the second
 * call told what the first saw), and the chunked decoder over the bytes after the head, in pieces
 * of a size the first byte picks. Checks what the server relies on: the same answer however the
 * bytes arrive, a head length within the input and the limit, every pointer inside the input,
 * and decoded data never longer than what was consumed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

#define MAX 4096

static h1_head h1, h2;

static void inside(const char *p, size_t n, const char *buf, size_t len)
{
    CHECK(p >= buf && p + n <= buf + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t step = (size_t)data[0] % 64 + 1;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    long whole = h1_parse_head(buf, len, MAX, 0, &h1);
    size_t cut = (size_t)data[0] * 7 % len;
    long first = h1_parse_head(buf, cut, MAX, 0, &h2);
    if (first == H1_MORE) {
        long again = h1_parse_head(buf, len, MAX, cut, &h2);
        CHECK(again == whole);
    }
    if (whole > 0) {
        CHECK((size_t)whole <= len && (size_t)whole <= MAX);
        inside(h1.method, h1.mlen, buf, (size_t)whole);
        inside(h1.target, h1.tlen, buf, (size_t)whole);
        CHECK(h1.nheaders <= H1_MAX_HEADERS);
        for (size_t i = 0; i < h1.nheaders; i++) {
            inside(h1.headers[i].name, h1.headers[i].nlen, buf, (size_t)whole);
            inside(h1.headers[i].value, h1.headers[i].vlen, buf, (size_t)whole);
            CHECK(h1.headers[i].nlen > 0);
        }
    } else {
        CHECK(whole == H1_MORE || whole == H1_BAD || whole == H1_TARGET_TOO_LONG ||
              whole == H1_HEAD_TOO_BIG || whole == H1_VERSION);
        if (whole == H1_BAD) CHECK(h1.why != NULL);
    }

    /* the chunked decoder over the rest (or all) of the input */
    size_t off = whole > 0 ? (size_t)whole : 0;
    char *copy = malloc(len - off + 1);
    if (!copy) return 0;
    h1_chunked d = {0};
    size_t i = off;
    int rc = 0;
    while (i < len && rc == 0) {
        size_t n = len - i < step ? len - i : step;
        memcpy(copy, buf + i, n);
        size_t out = 0, used = 0;
        rc = h1_chunked_decode(&d, copy, n, &out, &used);
        if (rc < 0) break;
        CHECK(used <= n && out <= used);
        CHECK(rc == 1 || used == n);
        i += used;
    }
    free(copy);
    return 0;
}
