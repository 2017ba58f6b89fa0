/* Unit tests for core/netaddr: addresses parsed and compared, public or not, and the list of
 * what users' extensions may reach anyway (user_extension_hosts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <stdbool.h>
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

/* Whether x (host order) is inside one of the n networks of out. */
static bool v4_in(const net_v4 *out, int n, uint32_t x)
{
    for (int i = 0; i < n; i++)
        if (out[i].bits == 0 || (x >> (32 - out[i].bits)) == (out[i].net >> (32 - out[i].bits)))
            return true;
    return false;
}

static struct sockaddr_in v4(uint32_t x)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(x)};
    return sa;
}

/* Whether x is one of this host's IPv4 addresses (as net_addr_local says, read once). */
static bool host_addr(uint32_t x)
{
    static uint32_t mine[64];
    static int n = -1;
    if (n < 0) {
        struct ifaddrs *ifs;
        assert_int_equal(getifaddrs(&ifs), 0);
        n = 0;
        for (struct ifaddrs *f = ifs; f && n < 64; f = f->ifa_next)
            if (f->ifa_addr && f->ifa_addr->sa_family == AF_INET) {
                mine[n] = ntohl(((const struct sockaddr_in *)f->ifa_addr)->sin_addr.s_addr);
                assert_non_null(net_addr_local(f->ifa_addr));
                n++;
            }
        freeifaddrs(ifs);
    }
    for (int i = 0; i < n; i++)
        if (mine[i] == x) return true;
    return false;
}

/* What net_v4_unreachable gives, checked address by address against the rule it stands for:
 * kept out when in a private network or link-local, or one of this host's (less the
 * namespace's own 0/8 and 127/8), and not named by the list. */
static void check_unreachable(const char *list, uint32_t *probe, size_t nprobe)
{
    char err[256];
    net_allow *a = NULL;
    assert_int_equal(net_allow_parse(list, &a, err, sizeof err), GD_OK);
    net_v4 out[256];
    int n = net_v4_unreachable(a, out, 256);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) /* each a network: nothing set past its prefix */
        assert_true(out[i].bits == 32 || (out[i].net & (0xffffffffu >> out[i].bits)) == 0);
    uint32_t seed = 12345;
    for (size_t k = 0; k < nprobe + 100000; k++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t x = k < nprobe ? probe[k] : seed ^ (seed >> 15) << 7;
        struct sockaddr_in sa = v4(x);
        const struct sockaddr *s = (const struct sockaddr *)&sa;
        bool own = (x >> 24) == 0 || (x >> 24) == 127;
        const char *what = net_addr_internal(s);
        bool inner = what && (strstr(what, "private") || strstr(what, "link-local"));
        bool kept = !own && (inner || host_addr(x)) && !net_allow_addr(a, s);
        if (v4_in(out, n, x) != kept)
            fail_msg("%s: %u.%u.%u.%u: %s, expected %s", list, x >> 24, (x >> 16) & 255,
                     (x >> 8) & 255, x & 255, kept ? "reached" : "kept out",
                     kept ? "kept out" : "reached");
    }
    net_allow_free(a);
}

static void test_unreachable(void **state)
{
    (void)state;
    uint32_t probe[] = {0x0a000000u, 0x0affffffu, 0x0a140000u, 0x0a13ffffu, 0x0a14ffffu,
                        0x0a150000u, 0xa9fea9feu, 0xac100001u, 0xac1fffffu, 0xac200000u,
                        0xc0a80101u, 0x08080808u, 0x01010101u, 0xe0000001u, 0xffffffffu,
                        0x64400001u, 0x0a000205u, 0x7f000001u, 0x00000000u};
    size_t np = sizeof probe / sizeof *probe;
    check_unreachable("", probe, np);
    check_unreachable("10.20.0.0/16", probe, np);
    check_unreachable("mcp.internal, 10.0.2.5, 172.16.0.0/12, 192.168.1.0/24, fd00::/8", probe, np);
    check_unreachable("10.0.0.0/8, 169.254.169.254", probe, np);
    check_unreachable("0.0.0.0/1", probe, np); /* half of everything, private ones too */
    /* this host's own addresses, kept out unless named */
    struct ifaddrs *ifs;
    assert_int_equal(getifaddrs(&ifs), 0);
    for (struct ifaddrs *f = ifs; f; f = f->ifa_next)
        if (f->ifa_addr && f->ifa_addr->sa_family == AF_INET) {
            uint32_t x = ntohl(((const struct sockaddr_in *)f->ifa_addr)->sin_addr.s_addr);
            check_unreachable("", &x, 1);
        }
    freeifaddrs(ifs);
    /* "*": nothing kept out; NULL: as the empty list; too many for out: -1 */
    char err[256];
    net_allow *a = NULL;
    net_v4 out[64];
    assert_int_equal(net_allow_parse("*", &a, err, sizeof err), GD_OK);
    assert_int_equal(net_v4_unreachable(a, out, 64), 0);
    net_allow_free(a);
    assert_true(net_v4_unreachable(NULL, out, 64) >= 5);
    assert_int_equal(net_v4_unreachable(NULL, out, 3), -1);
    assert_int_equal(net_allow_parse("10.1.2.3, 172.20.1.1, 192.168.7.7", &a, err, sizeof err),
                     GD_OK);
    assert_int_equal(net_v4_unreachable(a, out, 20),
                     -1); /* each address splits its network 32 ways */
    net_allow_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_same), cmocka_unit_test(test_internal),
        cmocka_unit_test(test_allow_list),     cmocka_unit_test(test_local),
        cmocka_unit_test(test_url_host),       cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
