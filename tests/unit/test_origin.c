/* Unit tests for http/origin: the Host policy of a server bound to loopback (DNS rebinding) and
 * which Origins are listed or this server's own (CORS, CSRF). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/origin.h"

static config cfg;

static int reset(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof cfg);
    return 0;
}

static void allow_host(const char *h)
{
    strcpy(cfg.allowed_hosts[cfg.nallowed_hosts++], h);
}

static void test_loopback_hosts_served(void **state)
{
    (void)state;
    assert_true(origin_host_allowed(&cfg, "localhost"));
    assert_true(origin_host_allowed(&cfg, "LOCALHOST:3000"));
    assert_true(origin_host_allowed(&cfg, "127.0.0.1:3000"));
    assert_true(origin_host_allowed(&cfg, "127.9.8.7"));
    assert_true(origin_host_allowed(&cfg, "[::1]:3000"));
    assert_true(origin_host_allowed(&cfg, "[::1]"));
}

static void test_rebound_and_malformed_hosts_refused(void **state)
{
    (void)state;
    assert_false(origin_host_allowed(&cfg, "attacker.example"));
    assert_false(origin_host_allowed(&cfg, "attacker.example:3000"));
    assert_false(origin_host_allowed(&cfg, "localhost.attacker.example"));
    assert_false(origin_host_allowed(&cfg, "128.0.0.1"));
    assert_false(origin_host_allowed(&cfg, "0.0.0.0"));
    assert_false(origin_host_allowed(&cfg, ""));
    assert_false(origin_host_allowed(&cfg, ":3000"));
    assert_false(origin_host_allowed(&cfg, "localhost:"));
    assert_false(origin_host_allowed(&cfg, "localhost:x"));
    assert_false(origin_host_allowed(&cfg, "localhost:0"));
    assert_false(origin_host_allowed(&cfg, "localhost:65536"));
    assert_false(origin_host_allowed(&cfg, "localhost:3000junk"));
    assert_false(origin_host_allowed(&cfg, "[::1"));
    assert_false(origin_host_allowed(&cfg, "[::1]junk"));
    assert_false(origin_host_allowed(&cfg, "[::2]:3000"));
}

static void test_allowed_hosts(void **state)
{
    (void)state;
    allow_host("goose.internal");
    allow_host("proxy.example:8443");
    assert_true(origin_host_allowed(&cfg, "goose.internal"));
    assert_true(origin_host_allowed(&cfg, "GOOSE.internal:9999"));
    assert_true(origin_host_allowed(&cfg, "proxy.example:8443"));
    assert_false(origin_host_allowed(&cfg, "proxy.example:8444"));
    assert_false(origin_host_allowed(&cfg, "other.example"));
    allow_host("*");
    assert_true(origin_host_allowed(&cfg, "other.example"));
}

static void test_cors_listing(void **state)
{
    (void)state;
    const char *o = "https://app.example";
    assert_null(origin_listed(&cfg, NULL));
    assert_null(origin_listed(&cfg, o));
    strcpy(cfg.cors[cfg.ncors++], "https://app.example");
    assert_ptr_equal(origin_listed(&cfg, o), o);
    assert_null(origin_listed(&cfg, "https://app.example.evil"));
    assert_null(origin_listed(&cfg, "http://app.example"));
    strcpy(cfg.cors[cfg.ncors++], "*");
    assert_ptr_equal(origin_listed(&cfg, "http://any.example"), "http://any.example");
}

static void test_own_origin(void **state)
{
    (void)state;
    assert_false(origin_is_own(&cfg, 3000, false, NULL));
    assert_true(origin_is_own(&cfg, 3000, false, "http://127.0.0.1:3000"));
    assert_true(origin_is_own(&cfg, 3000, false, "http://localhost:3000"));
    assert_true(origin_is_own(&cfg, 80, false, "http://localhost"));
    assert_true(origin_is_own(&cfg, 443, true, "https://localhost"));
    /* another port, another scheme, another host: not this server */
    assert_false(origin_is_own(&cfg, 3000, false, "http://127.0.0.1:3001"));
    assert_false(origin_is_own(&cfg, 3000, false, "https://127.0.0.1:3000"));
    assert_false(origin_is_own(&cfg, 3000, true, "http://127.0.0.1:3000"));
    assert_false(origin_is_own(&cfg, 3000, false, "http://attacker.example:3000"));
    assert_false(origin_is_own(&cfg, 3000, false, "ftp://127.0.0.1:3000"));
    assert_false(origin_is_own(&cfg, 3000, false, "null"));
    /* allowed_hosts names a proxy's host; "*" names none here */
    allow_host("*");
    assert_false(origin_is_own(&cfg, 3000, false, "https://attacker.example"));
    allow_host("goose.example.com");
    assert_true(origin_is_own(&cfg, 3000, false, "https://goose.example.com"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_loopback_hosts_served, reset),
        cmocka_unit_test_setup(test_rebound_and_malformed_hosts_refused, reset),
        cmocka_unit_test_setup(test_allowed_hosts, reset),
        cmocka_unit_test_setup(test_cors_listing, reset),
        cmocka_unit_test_setup(test_own_origin, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
