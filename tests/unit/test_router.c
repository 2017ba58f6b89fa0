/* Unit tests for http/router: matching a method and path against a route table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/router.h"

/* Distinct handlers so a test can tell which route matched. */
static void h_status(struct http_req *r)
{
    (void)r;
}
static void h_list(struct http_req *r)
{
    (void)r;
}
static void h_create(struct http_req *r)
{
    (void)r;
}
static void h_get(struct http_req *r)
{
    (void)r;
}
static void h_delete(struct http_req *r)
{
    (void)r;
}
static void h_messages(struct http_req *r)
{
    (void)r;
}
static void h_insights(struct http_req *r)
{
    (void)r;
}
static void h_two(struct http_req *r)
{
    (void)r;
}

static const http_route routes[] = {
    {"GET", "/status", h_status, 0},
    {"POST", "/api/sessions", h_create, ROUTE_BODY},
    {"GET", "/api/sessions", h_list, 0},
    {"GET", "/api/sessions/insights", h_insights, 0}, /* a literal before the {id} route wins */
    {"GET", "/api/sessions/{id}", h_get, 0},
    {"DELETE", "/api/sessions/{id}", h_delete, 0},
    {"GET", "/api/sessions/{id}/messages", h_messages, 0},
    {"PUT", "/a/{x}/b/{y}", h_two, 0},
};
#define NROUTES (sizeof routes / sizeof *routes)

static route_match m;

static const http_route *match(const char *method, const char *path)
{
    memset(&m, 0x5a, sizeof m); /* router_match must clear everything */
    router_match(routes, NROUTES, method, path, &m);
    return m.route;
}

static void test_literal(void **state)
{
    assert_non_null(match("GET", "/status"));
    assert_ptr_equal(m.route->fn, h_status);
    assert_true(m.path_known);
    assert_int_equal(m.nparams, 0);
    assert_string_equal(m.allow, "GET, HEAD, OPTIONS");

    assert_non_null(match("POST", "/api/sessions"));
    assert_ptr_equal(m.route->fn, h_create);
    assert_int_equal(m.route->flags, ROUTE_BODY);
    assert_non_null(match("GET", "/api/sessions"));
    assert_ptr_equal(m.route->fn, h_list);
    assert_int_equal(m.route->flags, 0);
    assert_string_equal(m.allow, "POST, GET, HEAD, OPTIONS");
}

static void test_param(void **state)
{
    assert_non_null(match("GET", "/api/sessions/abc-123"));
    assert_ptr_equal(m.route->fn, h_get);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0], "abc-123");
    assert_string_equal(m.allow, "GET, HEAD, DELETE, OPTIONS");

    assert_non_null(match("DELETE", "/api/sessions/xyz"));
    assert_ptr_equal(m.route->fn, h_delete);
    assert_string_equal(m.params[0], "xyz");

    assert_non_null(match("GET", "/api/sessions/s1/messages"));
    assert_ptr_equal(m.route->fn, h_messages);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0], "s1");
    assert_string_equal(m.allow, "GET, HEAD, OPTIONS");

    assert_non_null(match("PUT", "/a/one/b/two"));
    assert_ptr_equal(m.route->fn, h_two);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0], "one");
    assert_string_equal(m.params[1], "two");
}

static void test_literal_before_param(void **state)
{
    assert_non_null(match("GET", "/api/sessions/insights"));
    assert_ptr_equal(m.route->fn, h_insights);
    assert_int_equal(m.nparams, 0);
    /* The {id} route also matches this path, so its DELETE is allowed too. */
    assert_string_equal(m.allow, "GET, HEAD, DELETE, OPTIONS");
    assert_non_null(match("DELETE", "/api/sessions/insights"));
    assert_ptr_equal(m.route->fn, h_delete);
    assert_string_equal(m.params[0], "insights");
}

static void test_trailing_slash(void **state)
{
    assert_non_null(match("GET", "/status/"));
    assert_ptr_equal(m.route->fn, h_status);
    assert_non_null(match("GET", "/api/sessions/"));
    assert_ptr_equal(m.route->fn, h_list);
    assert_non_null(match("GET", "/api/sessions/abc/"));
    assert_ptr_equal(m.route->fn, h_get);
    assert_string_equal(m.params[0], "abc");
    assert_non_null(match("GET", "/api/sessions/abc/messages/"));
    assert_ptr_equal(m.route->fn, h_messages);
    /* Only one. */
    assert_null(match("GET", "/status//"));
    assert_false(m.path_known);
}

static void test_head(void **state)
{
    assert_non_null(match("HEAD", "/status"));
    assert_ptr_equal(m.route->fn, h_status);
    assert_non_null(match("HEAD", "/api/sessions/abc"));
    assert_ptr_equal(m.route->fn, h_get);
    assert_string_equal(m.params[0], "abc");
    /* HEAD is answered only by GET routes. */
    assert_null(match("HEAD", "/a/x/b/y"));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "PUT, OPTIONS");
}

static void test_method_not_allowed(void **state)
{
    assert_null(match("POST", "/status"));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "GET, HEAD, OPTIONS");

    assert_null(match("PUT", "/api/sessions/abc"));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "GET, HEAD, DELETE, OPTIONS");
    assert_int_equal(m.nparams, 0);

    assert_null(match("DELETE", "/api/sessions"));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "POST, GET, HEAD, OPTIONS");

    /* OPTIONS itself has no route: the caller answers it from allow. */
    assert_null(match("OPTIONS", "/api/sessions/abc/messages"));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "GET, HEAD, OPTIONS");

    /* Methods are case-sensitive. */
    assert_null(match("get", "/status"));
    assert_true(m.path_known);
}

static void test_not_found(void **state)
{
    static const char *const paths[] = {
        "/",
        "",
        "/nope",
        "/statusx",
        "/stat",
        "/Status",
        "/status/extra",
        "/api/sessions//messages", /* empty {id} segment */
        "/api/sessions/abc/messages/more",
        "/api/sessions/abc/def",
        "/api/sessions/abc//",
        "/api/sessions//",
        "//api/sessions",
        "/a//b/y",
        "/a/x/b/",
        "/a/x/b",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        if (match("GET", paths[i]) || m.path_known) fail_msg("\"%s\" matched", paths[i]);
        if (match("PUT", paths[i]) || m.path_known) fail_msg("PUT \"%s\" matched", paths[i]);
        assert_int_equal(m.nparams, 0);
        assert_string_equal(m.allow, "");
    }
}

static void test_segment_length(void **state)
{
    char path[64 + ROUTE_PARAM_MAX * 2];
    char seg[ROUTE_PARAM_MAX + 2];

    /* The longest segment that fits: ROUTE_PARAM_MAX - 1 characters. */
    memset(seg, 'a', ROUTE_PARAM_MAX - 1);
    seg[ROUTE_PARAM_MAX - 1] = '\0';
    snprintf(path, sizeof path, "/api/sessions/%s", seg);
    assert_non_null(match("GET", path));
    assert_string_equal(m.params[0], seg);

    /* One more is not matched at all (and never overflows params). */
    memset(seg, 'b', ROUTE_PARAM_MAX);
    seg[ROUTE_PARAM_MAX] = '\0';
    snprintf(path, sizeof path, "/api/sessions/%s", seg);
    assert_null(match("GET", path));
    assert_false(m.path_known);
    snprintf(path, sizeof path, "/api/sessions/%s/messages", seg);
    assert_null(match("GET", path));
    assert_false(m.path_known);

    /* A very long path of any shape is fine. */
    char big[8192];
    memset(big, '/', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(match("GET", big));
    memset(big, 'x', sizeof big - 1);
    big[0] = '/';
    assert_null(match("GET", big));
}

static void test_too_many_params(void **state)
{
    static const http_route many[] = {
        {"GET", "/{a}/{b}/{c}/{d}", h_get, 0},
        {"GET", "/{a}/{b}/{c}/{d}/{e}", h_two, 0},
    };
    router_match(many, 2, "GET", "/1/2/3/4", &m);
    assert_non_null(m.route);
    assert_int_equal(m.nparams, ROUTE_MAX_PARAMS);
    assert_string_equal(m.params[3], "4");
    /* A pattern with more placeholders than ROUTE_MAX_PARAMS never matches. */
    router_match(many, 2, "GET", "/1/2/3/4/5", &m);
    assert_null(m.route);
    assert_false(m.path_known);
}

#define UUID "0b7c4f0e-9a55-4a53-b1d9-1c1f1b6f0b9a"

static void test_id_param(void **state)
{
    /* An identifier: the route, no bad parameter. */
    assert_non_null(match("GET", "/api/sessions/" UUID));
    assert_ptr_equal(m.route->fn, h_get);
    assert_int_equal(m.bad_param, 0);
    assert_string_equal(m.params[0], UUID);
    assert_non_null(match("GET", "/api/sessions/" UUID "/messages/"));
    assert_ptr_equal(m.route->fn, h_messages);
    assert_int_equal(m.bad_param, 0);

    /* Not an identifier: the route is still selected (404 naming it, not 405 or unknown path),
     * with bad_param and the noun of the collection. */
    static const char *const bad[] = {
        "abc",
        "%61bc",                                /* decoded once: "abc" */
        "0B7C4F0E-9A55-4A53-B1D9-1C1F1B6F0B9A", /* identifiers are lowercase */
        "0b7c4f0e-9a55-4a53-b1d9-1c1f1b6f0b9",  /* one short */
        "0b7c4f0e-9a55-4a53-b1d9-1c1f1b6f0b9aa",
        "0b7c4f0e+9a55-4a53-b1d9-1c1f1b6f0b9a",
        "0b7c4f0e-9a55-4a53-b1d9-1c1f1b6f0b9\xc3\xa9",
    };
    char path[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "/api/sessions/%s/messages", bad[i]);
        if (!match("GET", path)) fail_msg("\"%s\" selected no route", path);
        assert_ptr_equal(m.route->fn, h_messages);
        assert_int_equal(m.bad_param, 1);
        if (i != 1) assert_string_equal(m.params[0], bad[i]);
        assert_string_equal(m.noun, "session");
    }
    /* Only {id} placeholders are checked. */
    assert_non_null(match("PUT", "/a/one/b/two"));
    assert_int_equal(m.bad_param, 0);
    /* A method without a route is 405 whatever the id. */
    assert_null(match("PUT", "/api/sessions/abc"));
    assert_true(m.path_known);
    assert_int_equal(m.bad_param, 0);

    /* The noun is the collection's segment, singular; the second {id} is named by its own. */
    static const http_route nested[] = {
        {"GET", "/{id}", h_get, 0},
        {"GET", "/users/{id}/keys/{id}", h_two, 0},
    };
    router_match(nested, 2, "GET", "/users/" UUID "/keys/k1", &m);
    assert_ptr_equal(m.route->fn, h_two);
    assert_int_equal(m.bad_param, 2);
    assert_string_equal(m.noun, "key");
    router_match(nested, 2, "GET", "/x", &m);
    assert_int_equal(m.bad_param, 1);
    assert_string_equal(m.noun, "item");
}

/* The path is the raw one: split on '/', then each segment decoded once; what cannot be a
 * segment is refused (bad_segment), whatever the route. */
static void test_raw_segments(void **state)
{
    assert_non_null(match("GET", "/api/%73essions/" UUID));
    assert_ptr_equal(m.route->fn, h_get);
    assert_string_equal(m.params[0], UUID);
    assert_int_equal(m.bad_segment, 0);

    static const struct {
        const char *path;
        int seg;
        const char *why;
    } refused[] = {
        {"/api/sessions/" UUID "%00junk", 3, "NUL"},
        {"/api/sessions/%00", 3, "NUL"},
        {"/api/sessions/%FF%FE", 3, "UTF-8"},
        {"/api/sessions/\xff", 3, "UTF-8"},
        {"/api/sessions/%C0%AF", 3, "UTF-8"},    /* an overlong '/' */
        {"/api/sessions/%ED%A0%80", 3, "UTF-8"}, /* a surrogate */
        {"/api/sessions/%4", 3, "hexadecimal"},
        {"/api/sessions/%zz/messages", 3, "hexadecimal"},
        {"/api%00/sessions", 1, "NUL"},
        {"/api/sessions/a%2Fb", 3, "%2F"}, /* one segment stays one */
        {"/api/sessions/a%2fb/messages", 3, "%2F"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        match("GET", refused[i].path);
        if (m.bad_segment != refused[i].seg)
            fail_msg("%s: bad_segment %d, want %d", refused[i].path, m.bad_segment, refused[i].seg);
        if (!strstr(m.why, refused[i].why))
            fail_msg("%s: why \"%s\" lacks %s", refused[i].path, m.why, refused[i].why);
    }
    /* DELETE /api/sessions/ID%00junk names no session: it never reaches the handler as ID. */
    match("DELETE", "/api/sessions/" UUID "%00junk");
    assert_int_equal(m.bad_segment, 3);
    assert_null(m.route);
    /* %2F in a literal segment matches nothing. */
    assert_null(match("GET", "/api%2Fsessions"));
    assert_false(m.path_known);
}

static void test_empty_table(void **state)
{
    router_match(routes, 0, "GET", "/status", &m);
    assert_null(m.route);
    assert_false(m.path_known);
    assert_string_equal(m.allow, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_param),
        cmocka_unit_test(test_literal_before_param),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_segment_length),
        cmocka_unit_test(test_too_many_params),
        cmocka_unit_test(test_id_param),
        cmocka_unit_test(test_raw_segments),
        cmocka_unit_test(test_empty_table),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
