/* Unit tests for http/h1: the request head parser and the chunked body decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

static h1_head h;

static long parse(const char *s)
{
    return h1_parse_head(s, strlen(s), 16384, 0, &h);
}

static void test_simple_request(void **state)
{
    (void)state;
    const char *s = "GET /status?x=1 HTTP/1.1\r\nHost: localhost\r\nX-A:  padded \t\r\n\r\nBODY";
    long n = parse(s);
    assert_int_equal(n, (long)(strstr(s, "BODY") - s));
    assert_int_equal(h.mlen, 3);
    assert_memory_equal(h.method, "GET", 3);
    assert_int_equal(h.tlen, strlen("/status?x=1"));
    assert_memory_equal(h.target, "/status?x=1", h.tlen);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nheaders, 2);
    assert_true(h1_name_is(&h.headers[0], "host"));
    assert_int_equal(h.headers[1].vlen, 6);
    assert_memory_equal(h.headers[1].value, "padded", 6);
}

static void test_bare_lf_and_leading_empty_lines(void **state)
{
    (void)state;
    const char *s = "\r\n\nGET / HTTP/1.0\nA: b\n\n";
    assert_int_equal(parse(s), (long)strlen(s));
    assert_int_equal(h.minor, 0);
    assert_int_equal(h.nheaders, 1);
}

static void test_incomplete_in_pieces(void **state)
{
    (void)state;
    const char *s = "POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    size_t full = strlen(s) - 2;
    size_t seen = 0;
    for (size_t len = 1; len < full; len++) {
        assert_int_equal(h1_parse_head(s, len, 16384, seen, &h), H1_MORE);
        seen = len;
    }
    assert_int_equal(h1_parse_head(s, full, 16384, seen, &h), (long)full);
    assert_int_equal(h1_parse_head(s, strlen(s), 16384, seen, &h), (long)full);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET /status HTTP/x\r\n\r\n",
        "GET /status HTTP/1.1\rHost: x\r\n\r\n",
        "GET /status HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET /status HTTP/1.1\r\nX A: 1\r\n\r\n",
        "GET /status HTTP/1.1\r\nContent-Length : 1\r\n\r\n",
        "GET /status HTTP/1.1\r\n Folded: 1\r\n\r\n",
        "GET /status HTTP/1.1\r\nX: a\001b\r\n\r\n",
        "GET /status HTTP/1.1\r\n: empty\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET /\x7f HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        long rc = parse(bad[i]);
        if (rc != H1_BAD) fprintf(stderr, "case %zu: %ld\n", i, rc);
        assert_int_equal(rc, H1_BAD);
        assert_non_null(h.why);
    }
    /* a NUL in the target is named as such */
    static const char nul[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    assert_int_equal(h1_parse_head(nul, sizeof nul - 1, 16384, 0, &h), H1_BAD);
    assert_non_null(strstr(h.why, "NUL"));
    /* a wrong request line is refused before the rest of the head arrives */
    assert_int_equal(parse("GET /a b HTTP/1.1\r\nHost: x\r\n"), H1_BAD);
}

static void test_versions(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n"), H1_VERSION);
    assert_int_equal(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), H1_VERSION);
    assert_int_equal(parse("GET / HTTP/0.9\r\n\r\n"), H1_BAD);
    assert_int_equal(parse("GET /\r\n\r\n"), H1_BAD);
}

static void test_limits(void **state)
{
    (void)state;
    size_t n = 20000;
    char *s = malloc(n + 64);
    assert_non_null(s);
    /* a target over the limit, its line not even ended */
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', n);
    assert_int_equal(h1_parse_head(s, n, 16384, 0, &h), H1_TARGET_TOO_LONG);
    /* headers over it */
    int k = snprintf(s, 64, "GET / HTTP/1.1\r\nX: ");
    memset(s + k, 'a', n - (size_t)k);
    assert_int_equal(h1_parse_head(s, n, 16384, 0, &h), H1_HEAD_TOO_BIG);
    /* 15 KB of header: served */
    size_t v = 15000;
    memset(s + k, 'a', v);
    memcpy(s + k + v, "\r\n\r\n", 4);
    assert_int_equal(h1_parse_head(s, (size_t)k + v + 4, 16384, 0, &h), (long)((size_t)k + v + 4));
    free(s);
    /* too many fields */
    char many[8192];
    size_t o = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= H1_MAX_HEADERS; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "X-%d: a\r\n", i);
    o += (size_t)snprintf(many + o, sizeof many - o, "\r\n");
    assert_int_equal(h1_parse_head(many, o, 16384, 0, &h), H1_HEAD_TOO_BIG);
}

/* Decodes s fed in pieces of `step` bytes; returns the data, or NULL when malformed. */
static char *dechunk(const char *s, size_t step, int *rc, size_t *rest)
{
    h1_chunked d = {0};
    size_t len = strlen(s);
    char *out = calloc(1, len + 1), *b = malloc(len + 1);
    size_t olen = 0, i = 0;
    *rc = 0;
    while (i < len && *rc == 0) {
        size_t n = len - i < step ? len - i : step;
        memcpy(b, s + i, n);
        size_t data, used;
        *rc = h1_chunked_decode(&d, b, n, &data, &used);
        if (*rc < 0) break;
        memcpy(out + olen, b, data);
        olen += data;
        i += used;
    }
    *rest = len - i;
    free(b);
    if (*rc < 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void test_chunked(void **state)
{
    (void)state;
    const char *body = "2\r\n{}\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET /";
    for (size_t step = 1; step <= strlen(body); step++) {
        int rc;
        size_t rest;
        char *o = dechunk(body, step, &rc, &rest);
        assert_non_null(o);
        assert_int_equal(rc, 1);
        assert_string_equal(o, "{}0123456789");
        assert_int_equal(rest, 5); /* "GET /": the next request */
        free(o);
    }
    const char *bad[] = {"zz\r\n{}\r\n0\r\n\r\n", "2\r\n{}XX0\r\n\r\n", "\r\n",
                         "1234567890123456\r\n", "2\r\n{}\r\n0\r\nX: a\001\r\n\r\n",
                         /* a bare LF anywhere in the framing */
                         "2\n{}\r\n0\r\n\r\n", "2\r\n{}\n0\r\n\r\n", "2\r\n{}\r\n0\n\r\n",
                         "2\r\n{}\r\n0\r\n\n", "2\r\n{}\r\n0\r\nX: a\n\r\n",
                         "2;ext\n{}\r\n0\r\n\r\n", "2 \n{}\r\n0\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc;
        size_t rest;
        char *o = dechunk(bad[i], 3, &rc, &rest);
        assert_null(o);
        assert_int_equal(rc, -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_request),
        cmocka_unit_test(test_bare_lf_and_leading_empty_lines),
        cmocka_unit_test(test_incomplete_in_pieces),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
