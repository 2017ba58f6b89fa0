/* Unit tests for core/netaddr: addresses parsed and compared, public or not, and the list of
 * what users' extensions may reach anyway (user_extension_hosts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>

#include "core/netaddr.h"

static void test_parse_and_same(void **state)
{
    (void)state;
    struct sockaddr_storage a, b;
    assert_true(net_addr_parse("127.0.0.2", &a));
    assert_true(net_addr_parse("::ffff:127.0.0.2", &b)); /* as a dual-stack socket reports it */
    assert_true(net_addr_same(&a, &b));
    assert_true(net_addr_parse("::1", &b));
    assert_false(net_addr_same(&a, &b));
    assert_false(net_addr_parse("proxy.example", &a));
    assert_false(net_addr_parse("10.0.0.0/8", &a));
    assert_false(net_addr_parse("[::1]", &a));
}

/* The category of an address given as text (NULL: public). */
static const char *internal(const char *text)
{
    struct sockaddr_storage ss;
    assert_true(net_addr_parse(text, &ss));
    return net_addr_internal((const struct sockaddr *)&ss);
}

static void test_internal(void **state)
{
    (void)state;
    static const char *const inside[] = {
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.255",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2001:db8::1",
        "2001::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "100::1",
        "4000::1",
    };
    for (size_t i = 0; i < sizeof inside / sizeof *inside; i++) {
        const char *what = internal(inside[i]);
        if (!what) fail_msg("%s was taken for a public address", inside[i]);
    }
    static const char *const outside[] = {
        "1.1.1.1",      "8.8.8.8",        "9.255.255.255",    "11.0.0.1",        "100.63.255.255",
        "100.128.0.1",  "169.253.1.1",    "172.15.255.255",   "172.32.0.1",      "192.167.1.1",
        "192.169.0.1",  "198.17.0.1",     "198.20.0.1",       "223.255.255.255", "2606:4700::1111",
        "2a00:1450::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
    };
    for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
        const char *what = internal(outside[i]);
        if (what) fail_msg("%s was taken for %s", outside[i], what);
    }
    assert_string_equal(internal("127.0.0.1"), "an address of this host");
    assert_string_equal(internal("169.254.169.254"), "a link-local address");
    assert_string_equal(internal("10.0.0.1"), "an address of a private network");
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_non_null(net_addr_internal(&other));
}

static bool allows_addr(const net_allow *a, const char *text)
{
    struct sockaddr_storage ss;
    assert_true(net_addr_parse(text, &ss));
    return net_allow_addr(a, (const struct sockaddr *)&ss);
}

static void test_allow_list(void **state)
{
    (void)state;
    net_allow *a;
    char err[200];
    assert_int_equal(net_allow_parse(" mcp.internal , 10.1.0.0/16,127.0.0.1, fd00::/8,[::1], "
                                     "Example.COM.",
                                     &a, err, sizeof err),
                     GD_OK);
    assert_false(net_allow_any(a));
    assert_true(net_allow_host(a, "mcp.internal"));
    assert_true(net_allow_host(a, "MCP.Internal."));
    assert_true(net_allow_host(a, "example.com"));
    assert_false(net_allow_host(a, "evil.mcp.internal"));
    assert_false(net_allow_host(a, "mcp.internal.evil"));
    assert_true(net_allow_host(a, "10.1.200.3"));
    assert_false(net_allow_host(a, "10.2.0.1"));
    assert_true(net_allow_host(a, "[::1]"));
    assert_true(net_allow_host(a, "::1"));
    assert_true(allows_addr(a, "10.1.0.0"));
    assert_true(allows_addr(a, "10.1.255.255"));
    assert_false(allows_addr(a, "10.0.255.255"));
    assert_true(allows_addr(a, "::ffff:10.1.2.3")); /* the IPv4 network, seen over IPv6 */
    assert_true(allows_addr(a, "127.0.0.1"));
    assert_false(allows_addr(a, "127.0.0.2"));
    assert_true(allows_addr(a, "fd12::1"));
    assert_false(allows_addr(a, "fc00::1"));
    assert_false(allows_addr(a, "169.254.169.254"));
    net_allow_free(a);

    assert_int_equal(net_allow_parse("", &a, err, sizeof err), GD_OK);
    assert_false(net_allow_host(a, "localhost"));
    assert_false(allows_addr(a, "127.0.0.1"));
    net_allow_free(a);

    assert_int_equal(net_allow_parse("*", &a, err, sizeof err), GD_OK);
    assert_true(net_allow_any(a));
    assert_true(allows_addr(a, "127.0.0.1"));
    assert_true(net_allow_host(a, "anything.example"));
    net_allow_free(a);

    /* a /12 keeps only its first 12 bits; ::ffff:a.b.c.d/104 is the IPv4 /8 */
    assert_int_equal(net_allow_parse("172.16.0.0/12,::ffff:192.0.0.0/104", &a, err, sizeof err),
                     GD_OK);
    assert_true(allows_addr(a, "172.31.1.1"));
    assert_false(allows_addr(a, "172.32.0.1"));
    assert_true(allows_addr(a, "192.255.0.1"));
    net_allow_free(a);
    assert_null(net_allow_host(NULL, "x") ? (void *)1 : NULL);

    static const char *const bad[] = {"10.0.0.0/33",
                                      "::/129",
                                      "10.0.0.0/",
                                      "/8",
                                      "a b",
                                      "http://x",
                                      "x:80",
                                      "[::1",
                                      "[host]",
                                      "1.2.3.4/-1",
                                      "::ffff:1.2.3.4/95",
                                      "host/8",
                                      "caf\xc3\xa9.example",
                                      ".",
                                      "-",
                                      ".."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        a = (net_allow *)1;
        err[0] = '\0';
        if (net_allow_parse(bad[i], &a, err, sizeof err) != GD_EINVAL)
            fail_msg("\"%s\" was taken as an item", bad[i]);
        assert_null(a);
        assert_non_null(strstr(err, "is not a host name"));
    }
}

/* The machine's own addresses are this host's, whatever their range. */
static void test_local(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_true(net_addr_parse("127.0.0.1", &ss));
    assert_non_null(net_addr_local((const struct sockaddr *)&ss));
    assert_true(net_addr_parse("::ffff:127.0.0.1", &ss));
    assert_non_null(net_addr_local((const struct sockaddr *)&ss));
    assert_true(net_addr_parse("192.0.2.77", &ss)); /* documentation: no machine has it */
    assert_null(net_addr_local((const struct sockaddr *)&ss));
    struct ifaddrs *ifs, *i;
    assert_int_equal(getifaddrs(&ifs), 0);
    for (i = ifs; i; i = i->ifa_next) /* every address of every interface */
        if (i->ifa_addr &&
            (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
            assert_non_null(net_addr_local(i->ifa_addr));
    freeifaddrs(ifs);
}

/* The host of a URL, only when no parser can read it otherwise. */
static void test_url_host(void **state)
{
    (void)state;
    char h[64];
    assert_true(net_url_host("http://mcp.internal:8080/mcp?x=1", h, sizeof h));
    assert_string_equal(h, "mcp.internal");
    assert_true(net_url_host("https://[::1]:9/", h, sizeof h));
    assert_string_equal(h, "[::1]");
    assert_true(net_url_host("http://10.0.0.1", h, sizeof h));
    assert_string_equal(h, "10.0.0.1");
    static const char *const odd[] = {"http://allowed@127.0.0.1/",
                                      "http://127.0.0.1\\@allowed/",
                                      "http://%31%32%37.0.0.1/",
                                      "http://host:80x/",
                                      "http://host:/",
                                      "http:///path",
                                      "no-scheme",
                                      "http://[::1/"};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++)
        if (net_url_host(odd[i], h, sizeof h)) fail_msg("%s gave the host %s", odd[i], h);
    assert_false(net_url_host("http://a-rather-long-host-name.example/", h, 8)); /* no room */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_same), cmocka_unit_test(test_internal),
        cmocka_unit_test(test_allow_list),     cmocka_unit_test(test_local),
        cmocka_unit_test(test_url_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
