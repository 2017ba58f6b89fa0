/* The MCP HTTP transports' pure parts: resolving the legacy endpoint against the uri (same
 * origin only), the event stream's last event ID and retry: time, and the config's checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "extensions/mcp/http_common.c"

static void resolves(const char *base, const char *ref, const char *want)
{
    char out[256];
    assert_int_equal(mcp_url_resolve(base, ref, out, sizeof out), GD_OK);
    assert_string_equal(out, want);
}

static void test_url_resolve(void **state)
{
    (void)state;
    resolves("http://h:1/sse", "/message?sessionId=a", "http://h:1/message?sessionId=a");
    resolves("http://h:1/a/sse", "message?x=1", "http://h:1/a/message?x=1");
    resolves("http://h:1", "message", "http://h:1/message");
    resolves("http://h:1/sse?k=v", "?sessionId=b", "http://h:1/sse?sessionId=b");
    resolves("https://H:1/sse", "https://h:1/m",
             "https://H:1/m"); /* the origin as the uri spells it */
    resolves("http://h:1/sse", "httP://h:1/m", "http://h:1/m");
    resolves("http://h:1/sse", "//h:1/m", "http://h:1/m");
    char out[64];
    /* Another origin would receive the config's headers (a bearer token): refused. */
    assert_int_equal(mcp_url_resolve("http://h:1/sse", "http://evil:1/m", out, sizeof out),
                     GD_EINVAL);
    assert_int_equal(mcp_url_resolve("http://h:1/sse", "http://h:2/m", out, sizeof out), GD_EINVAL);
    assert_int_equal(mcp_url_resolve("http://h:1/sse", "//evil/m", out, sizeof out), GD_EINVAL);
    assert_int_equal(mcp_url_resolve("http://h:1/sse", "file:///etc/passwd", out, sizeof out),
                     GD_OK); /* a relative path named "file:..." on the same origin */
    assert_string_equal(out, "http://h:1/file:///etc/passwd");
    assert_int_equal(mcp_url_resolve("ftp://h/sse", "/m", out, sizeof out), GD_EINVAL);
    char tiny[8];
    assert_int_equal(mcp_url_resolve("http://h:1/sse", "/message", tiny, sizeof tiny), GD_EINVAL);
}

static int events;
static gd_err count(void *ud, const char *event, const char *data)
{
    (void)ud;
    (void)event;
    (void)data;
    events++;
    return GD_OK;
}

static void test_sse_id_retry(void **state)
{
    (void)state;
    sse_reader *r = sse_reader_new(1024, count, NULL);
    assert_non_null(r);
    assert_string_equal(sse_reader_last_id(r), "");
    assert_int_equal(sse_reader_retry_ms(r), -1);
    const char *s = "id: event-2\nretry: 500\ndata: \n\nid: event-3\ndata: {}\n";
    assert_int_equal(sse_reader_feed(r, s, strlen(s)), GD_OK);
    /* The second event is not complete: the last event ID is still the first's. */
    assert_string_equal(sse_reader_last_id(r), "event-2");
    assert_int_equal(sse_reader_retry_ms(r), 500);
    assert_int_equal(sse_reader_feed(r, "\nretry: x1\n", 11), GD_OK);
    assert_string_equal(sse_reader_last_id(r), "event-3");
    assert_int_equal(sse_reader_retry_ms(r), 500); /* not a number: ignored */
    assert_int_equal(events, 2);
    sse_reader_free(r);
}

static void test_config(void **state)
{
    (void)state;
    loop *l = loop_new("t-mcp-http");
    assert_non_null(l);
    ext_host host = {.l = l};
    mcp_transport_cb cb = {0};
    char err[256];
    const char *bad[] = {
        "{\"uri\": \"file:///x\"}",
        "{}",
        "{\"uri\": \"http://h/mcp\", \"headers\": {\"Authorization\": 3}}",
        "{\"uri\": \"http://h/mcp\", \"headers\": {\"X\": \"a\\r\\nInjected: 1\"}}",
        "{\"uri\": \"http://h/mcp\", \"headers\": {\"Bad Name\": \"v\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *cfg = json_loads(bad[i], 0, NULL);
        assert_non_null(cfg);
        err[0] = '\0';
        assert_null(mcp_http_new(cfg, &host, &cb, err, sizeof err));
        assert_true(strlen(err) > 0);
        assert_null(mcp_sse_new(cfg, &host, &cb, err, sizeof err));
        json_decref(cfg);
    }
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_resolve),
        cmocka_unit_test(test_sse_id_retry),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
