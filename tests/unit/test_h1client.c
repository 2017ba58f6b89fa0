/* Unit tests for the provider client's parsers (providers/h1url.c, providers/h1resp.c): URLs,
 * no_proxy matching, and the response parser fed whole and split at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/h1client.h"

/* ---- URLs ---- */

static void test_url_parse(void **state)
{
    (void)state;
    h1_url u;
    char err[300];
    assert_int_equal(
        h1_url_parse("https://api.openai.com/v1/chat/completions", &u, err, sizeof err), GD_OK);
    assert_true(u.tls);
    assert_string_equal(u.host, "api.openai.com");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.target, "/v1/chat/completions");
    assert_null(u.userinfo);
    h1_url_clear(&u);

    assert_int_equal(h1_url_parse("http://Example.COM:8080", &u, err, sizeof err), GD_OK);
    assert_false(u.tls);
    assert_string_equal(u.host, "example.com");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.target, "/");
    h1_url_clear(&u);

    assert_int_equal(h1_url_parse("https://x.openai.azure.com/openai/deployments/d/chat/"
                                  "completions?api-version=2024-10-21#frag",
                                  &u, err, sizeof err),
                     GD_OK);
    assert_string_equal(u.target, "/openai/deployments/d/chat/completions?api-version=2024-10-21");
    h1_url_clear(&u);

    assert_int_equal(h1_url_parse("http://[::1]:11434/api?x=1", &u, err, sizeof err), GD_OK);
    assert_true(u.ipv6);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 11434);
    assert_string_equal(u.target, "/api?x=1");
    h1_url_clear(&u);

    assert_int_equal(h1_url_parse("http://127.0.0.1?q", &u, err, sizeof err), GD_OK);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 80);
    assert_string_equal(u.target, "/?q");
    h1_url_clear(&u);

    assert_int_equal(h1_url_parse("http://us%3Aer:p%40ss@proxy:3128", &u, err, sizeof err), GD_OK);
    assert_string_equal(u.userinfo, "us:er:p@ss");
    assert_string_equal(u.host, "proxy");
    assert_int_equal(u.port, 3128);
    h1_url_clear(&u);

    static const char *bad[] = {
        "ftp://x/",       "x.com/v1",        "http://",       "http:///path",
        "http://h:0/",    "http://h:65536/", "http://h:12a/", "http://[::1/",
        "http://[::1]x/", "http://[abc]/",   "http://h o/",   "http://h/a b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        gd_err e = h1_url_parse(bad[i], &u, err, sizeof err);
        if (e != GD_EINVAL) fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
        assert_null(u.target);
    }
}

static void test_no_proxy(void **state)
{
    (void)state;
    assert_false(h1_no_proxy_match(NULL, "a.com", 80));
    assert_false(h1_no_proxy_match("", "a.com", 80));
    assert_true(h1_no_proxy_match("*", "anything", 443));
    assert_true(h1_no_proxy_match("localhost,127.0.0.1", "127.0.0.1", 80));
    assert_true(h1_no_proxy_match("localhost, example.com", "example.com", 80));
    assert_true(h1_no_proxy_match("example.com", "api.example.com", 80));
    assert_true(h1_no_proxy_match(".example.com", "api.example.com", 80));
    assert_true(h1_no_proxy_match(".example.com", "example.com", 80));
    assert_false(h1_no_proxy_match("example.com", "badexample.com", 80));
    assert_false(h1_no_proxy_match("example.com", "example.com.evil", 80));
    assert_true(h1_no_proxy_match("EXAMPLE.com", "example.com", 80));
    assert_true(h1_no_proxy_match("example.com:8080", "example.com", 8080));
    assert_false(h1_no_proxy_match("example.com:8080", "example.com", 80));
    assert_true(h1_no_proxy_match("::1", "::1", 80));
    assert_true(h1_no_proxy_match("[::1]:80", "::1", 80));
    assert_false(h1_no_proxy_match("[::1]:81", "::1", 80));
    assert_false(h1_no_proxy_match("10.0.0.1", "10.0.0.10", 80));
    assert_false(h1_no_proxy_match("*.", "a.com", 80));
}

/* ---- the response parser ---- */

typedef struct {
    char body[8192];
    size_t blen;
    char retry_after[64];
    int nheaders;
    int stop_after; /* body pieces before asking to stop; 0: never */
    int pieces;
} sink;

static void on_header(void *ud, const char *n, size_t nl, const char *v, size_t vl)
{
    sink *s = ud;
    s->nheaders++;
    if (nl == 11 && !strncasecmp(n, "retry-after", 11) && vl < sizeof s->retry_after) {
        memcpy(s->retry_after, v, vl);
        s->retry_after[vl] = '\0';
    }
}

static int on_body(void *ud, const char *p, size_t n)
{
    sink *s = ud;
    assert_true(s->blen + n <= sizeof s->body);
    memcpy(s->body + s->blen, p, n);
    s->blen += n;
    return s->stop_after && ++s->pieces >= s->stop_after;
}

typedef struct {
    gd_err e; /* of the feeding, or of the end */
    bool done;
    size_t used;
    int status;
    bool keep_alive;
} outcome;

/* Feeds in (len bytes) in pieces of step bytes (0: whole), then the end when eof. */
static outcome run(const char *in, size_t len, size_t step, bool eof, bool no_body, sink *s)
{
    memset(s, 0, sizeof *s);
    h1resp r = {0};
    h1resp_cb cb = {.ud = s, .header = on_header, .body = on_body};
    h1resp_init(&r, &cb, no_body);
    outcome o = {0};
    size_t off = 0;
    while (off < len && !o.e && !h1resp_done(&r)) {
        size_t n = step && len - off > step ? step : len - off;
        size_t used = 0;
        o.e = h1resp_feed(&r, in + off, n, &used);
        assert_true(used <= n);
        off += used;
        if (used < n) break;
    }
    if (!o.e && eof && !h1resp_done(&r)) o.e = h1resp_eof(&r);
    if (o.e) assert_true(r.err[0] != '\0');
    o.done = h1resp_done(&r);
    o.used = off;
    o.status = r.status;
    o.keep_alive = r.keep_alive;
    h1resp_free(&r);
    return o;
}

static void expect_body(const char *in, bool eof, int status, const char *want, bool keep)
{
    size_t len = strlen(in);
    sink s;
    for (size_t step = 0; step <= len; step++) {
        outcome o = run(in, len, step, eof, false, &s);
        if (o.e) fail_msg("step %zu: error", step);
        assert_true(o.done);
        assert_int_equal(o.status, status);
        assert_int_equal(s.blen, strlen(want));
        assert_memory_equal(s.body, want, s.blen);
        assert_int_equal(o.keep_alive, keep);
    }
}

static void test_resp_lengths(void **state)
{
    (void)state;
    expect_body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, "hello", true);
    expect_body("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, 200, "", true);
    expect_body("HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", true);
    expect_body("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", false, 200, "hi", true);
    /* HTTP/1.0 and Connection: close: not reused */
    expect_body("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false, 200, "hi", false);
    expect_body("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nhi",
                false, 200, "hi", false);
    /* no length: until the close */
    expect_body("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n", true, 200,
                "data: x\n\n", false);
    /* a 100 Continue first */
    expect_body("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n"
                "Content-Length: 3\r\n\r\nslo",
                false, 429, "slo", true);
    sink s;
    const char *in = "HTTP/1.1 429 Too Many\r\nRetry-After:  7 \r\nContent-Length: 0\r\n\r\n";
    outcome o = run(in, strlen(in), 0, false, false, &s);
    assert_true(o.done);
    assert_string_equal(s.retry_after, "7");
    assert_int_equal(s.nheaders, 2);
    /* bytes after a complete response are not consumed */
    in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA";
    o = run(in, strlen(in), 0, false, false, &s);
    assert_true(o.done);
    assert_int_equal(o.used, strlen(in) - 5);
    /* a CONNECT's answer has no body */
    in = "HTTP/1.1 200 Connection established\r\n\r\n";
    o = run(in, strlen(in), 0, false, true, &s);
    assert_true(o.done);
    assert_int_equal(o.used, strlen(in));
    /* closed before the length was complete */
    in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
    o = run(in, strlen(in), 0, true, false, &s);
    assert_int_equal(o.e, GD_EINVAL);
    in = "HTTP/1.1 200 OK\r\nContent-";
    o = run(in, strlen(in), 0, true, false, &s);
    assert_int_equal(o.e, GD_EINVAL);
    o = run("", 0, 0, true, false, &s);
    assert_int_equal(o.e, GD_EINVAL);
}

static void test_resp_chunked(void **state)
{
    (void)state;
    const char *in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
    expect_body(in, false, 200, "hello 0123456789", true);
    in = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\nabc\n0\n\n";
    expect_body(in, false, 200, "abc", true);
    /* a length too: chunked frames it, and the connection is not reused (RFC 9112 6.3) */
    in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n"
         "2\r\nok\r\n0\r\n\r\n";
    expect_body(in, false, 200, "ok", false);
    in = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
         "2\r\nok\r\n0\r\n\r\n";
    expect_body(in, false, 200, "ok", false);
    /* the end of the stream inside a chunk */
    sink s;
    in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
    outcome o = run(in, strlen(in), 0, true, false, &s);
    assert_int_equal(o.e, GD_EINVAL);
    assert_int_equal(s.blen, 3);
    /* the receiver stops */
    in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n";
    memset(&s, 0, sizeof s);
    h1resp r = {0};
    s.stop_after = 1;
    h1resp_cb cb = {.ud = &s, .body = on_body};
    h1resp_init(&r, &cb, false);
    size_t used;
    assert_int_equal(h1resp_feed(&r, in, strlen(in), &used), GD_ECANCELLED);
    h1resp_free(&r);
}

static void expect_bad(const char *in, gd_err want)
{
    size_t len = strlen(in);
    sink s;
    for (size_t step = 0; step <= len; step++) {
        outcome o = run(in, len, step, true, false, &s);
        if (o.e != want) fail_msg("step %zu: %d instead of %d for %s", step, o.e, want, in);
    }
}

static void test_resp_bad(void **state)
{
    (void)state;
    const char *te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    char in[512];
    static const char *chunks[] = {
        "x\r\n", "\r\n", "-1\r\n", ";a\r\n", "1000000000000000\r\n", "2\r\nabX\r\n", "1 x\r\n"};
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        snprintf(in, sizeof in, "%s%s", te, chunks[i]);
        /* "1 x" is a size and an extension: it ends in the middle of its chunk */
        expect_bad(in, GD_EINVAL);
    }
    expect_bad("HTTP/2 200 OK\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 20 OK\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 200OK\r\n\r\n", GD_EINVAL);
    expect_bad("garbage\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", GD_EINVAL);
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", GD_EINVAL);
    expect_bad("HTTP/1.1 101 Switching\r\n\r\n", GD_EINVAL);

    /* a head over 64 KiB, whole and in pieces */
    size_t big = H1_HEAD_MAX + 100;
    char *h = malloc(big + 1);
    assert_non_null(h);
    memcpy(h, "HTTP/1.1 200 OK\r\nX-Big: ", 24);
    memset(h + 24, 'a', big - 24);
    h[big] = '\0';
    sink s;
    for (size_t step = 0; step < 5000; step += 997) {
        outcome o = run(h, big, step, true, false, &s);
        assert_int_equal(o.e, GD_ETOOBIG);
    }
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),    cmocka_unit_test(test_no_proxy),
        cmocka_unit_test(test_resp_lengths), cmocka_unit_test(test_resp_chunked),
        cmocka_unit_test(test_resp_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
