/* Unit tests for the parts of MCP's OAuth client that read what a server says
 * (extensions/mcp/oauth.c: the WWW-Authenticate challenge, the resource its metadata names) and
 * for core/urlenc (form values). The flow itself is tested against the MCP conformance suite's
 * authorization servers and the MCP SDK's (tests/conformance, tests/api/mcp_oauth.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "core/urlenc.h"
#include "extensions/mcp/oauth.h"

static void test_challenge(void **state)
{
    (void)state;
    char v[256];
    const char *h = "Bearer error=\"insufficient_scope\", scope=\"mcp:basic mcp:write\", "
                    "resource_metadata=\"https://a.example/.well-known/oauth-protected-resource\"";
    assert_true(mcp_oauth_challenge_param(h, "scope", v, sizeof v));
    assert_string_equal(v, "mcp:basic mcp:write");
    assert_true(mcp_oauth_challenge_param(h, "ERROR", v, sizeof v)); /* names are not cased */
    assert_string_equal(v, "insufficient_scope");
    assert_true(mcp_oauth_challenge_param(h, "resource_metadata", v, sizeof v));
    assert_string_equal(v, "https://a.example/.well-known/oauth-protected-resource");
    assert_false(mcp_oauth_challenge_param(h, "realm", v, sizeof v));
    /* tokens unquoted, a quoted backslash escape, the scheme in any case */
    assert_true(
        mcp_oauth_challenge_param("bearer realm=mcp,scope=\"a\\\"b\"", "scope", v, sizeof v));
    assert_string_equal(v, "a\"b");
    assert_true(mcp_oauth_challenge_param("Bearer realm=mcp,scope=x", "realm", v, sizeof v));
    assert_string_equal(v, "mcp");
    /* another scheme, a scheme whose name only begins with Bearer, a value too long */
    assert_false(mcp_oauth_challenge_param("Basic realm=\"x\"", "realm", v, sizeof v));
    assert_false(mcp_oauth_challenge_param("Bearerx scope=a", "scope", v, sizeof v));
    assert_false(mcp_oauth_challenge_param("Bearer scope=\"abcdef\"", "scope", v, 4));
    /* another scheme's challenge after ours ends the parameters */
    assert_false(mcp_oauth_challenge_param("Bearer realm=a, Basic realm=b", "x", v, sizeof v));
    assert_false(mcp_oauth_challenge_param("", "scope", v, sizeof v));
    assert_false(mcp_oauth_challenge_param("Bearer scope=\"unterminated", "x", v, sizeof v));
}

static void test_resource(void **state)
{
    (void)state;
    assert_true(mcp_oauth_resource_matches("https://a.example/mcp", "https://a.example/mcp"));
    assert_true(mcp_oauth_resource_matches("https://a.example/mcp/", "https://a.example/mcp"));
    assert_true(mcp_oauth_resource_matches("https://a.example", "https://a.example/mcp"));
    assert_true(mcp_oauth_resource_matches("https://A.Example:443/", "https://a.example/mcp/x"));
    assert_true(mcp_oauth_resource_matches("http://a.example:80/mcp", "http://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://evil.example/mcp", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("http://a.example/mcp", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://a.example:8443/mcp", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://a.example/mc", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://a.example/mcp/x", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://x@a.example/mcp", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("ftp://a.example/mcp", "ftp://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://a.example.evil/", "https://a.example/mcp"));
    /* what would reach a terminal or a browser as something else */
    assert_false(mcp_oauth_resource_matches("https://a.example/\x1b[2J", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://a.example/\xc2\x9b", "https://a.example/mcp"));
    assert_false(mcp_oauth_resource_matches("https://a.example\\@b/", "https://a.example/mcp"));
}

static void test_urlenc(void **state)
{
    (void)state;
    buf b;
    buf_init(&b, 1024);
    assert_int_equal(url_encode(&b, "a b&c=d/é~._-Z9"), GD_OK);
    assert_string_equal(b.data, "a%20b%26c%3Dd%2F%C3%A9~._-Z9");
    char out[64];
    assert_int_equal(url_decode(b.data, b.len, out, sizeof out), (long)strlen("a b&c=d/é~._-Z9"));
    assert_string_equal(out, "a b&c=d/é~._-Z9");
    buf_free(&b);
    assert_int_equal(url_decode("a+b%2b", 6, out, sizeof out), 4);
    assert_string_equal(out, "a b+");
    assert_int_equal(url_decode("%4", 2, out, sizeof out), -1);
    assert_int_equal(url_decode("%zz", 3, out, sizeof out), -1);
    assert_int_equal(url_decode("a%00b", 5, out, sizeof out), -1); /* no NUL inside a value */
    assert_int_equal(url_decode("abcd", 4, out, 4), -1);           /* does not fit */
    assert_int_equal(url_decode("abc", 3, out, 4), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_challenge),
        cmocka_unit_test(test_resource),
        cmocka_unit_test(test_urlenc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
