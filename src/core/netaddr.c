/* IP addresses: parsing, comparing, public or not, and the list of what may be reached anyway. */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/netaddr.h"

/* An address as it is compared: IPv4-mapped IPv6 addresses become IPv4. */
static void normalize(const struct sockaddr *sa, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (sa->sa_family == AF_INET) {
        memcpy(ss, sa, sizeof(struct sockaddr_in));
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
            in4->sin_family = AF_INET;
            memcpy(&in4->sin_addr, &a->s6_addr[12], 4);
        } else {
            memcpy(ss, sa, sizeof(struct sockaddr_in6));
        }
    } else {
        ss->ss_family = sa->sa_family;
    }
}

bool net_addr_parse(const char *s, struct sockaddr_storage *ss)
{
    struct sockaddr_storage raw;
    memset(&raw, 0, sizeof raw);
    struct sockaddr_in *in4 = (struct sockaddr_in *)&raw;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&raw;
    if (inet_pton(AF_INET, s, &in4->sin_addr) == 1)
        raw.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1)
        raw.ss_family = AF_INET6;
    else
        return false;
    normalize((const struct sockaddr *)&raw, ss);
    return true;
}

bool net_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

bool net_addr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static const char *const THIS_HOST = "an address of this host";
static const char *const PRIVATE = "an address of a private network";
static const char *const LINK_LOCAL = "a link-local address";
static const char *const RESERVED = "a reserved address";
static const char *const MULTICAST = "a multicast address";

/* IANA's special-purpose IPv4 registry, less what is globally reachable. */
static const struct {
    uint32_t net;
    int bits;
    const char *const *what;
} V4_INTERNAL[] = {
    {0x00000000u, 8, &THIS_HOST},   /* 0.0.0.0/8: "this network", 0.0.0.0 reaches this host */
    {0x7f000000u, 8, &THIS_HOST},   /* 127.0.0.0/8 */
    {0x0a000000u, 8, &PRIVATE},     /* 10.0.0.0/8 */
    {0x64400000u, 10, &PRIVATE},    /* 100.64.0.0/10: carrier-grade NAT */
    {0xa9fe0000u, 16, &LINK_LOCAL}, /* 169.254.0.0/16: cloud metadata services live here */
    {0xac100000u, 12, &PRIVATE},    /* 172.16.0.0/12 */
    {0xc0000000u, 24, &RESERVED},   /* 192.0.0.0/24: protocol assignments */
    {0xc0000200u, 24, &RESERVED},   /* 192.0.2.0/24: documentation */
    {0xc0586300u, 24, &RESERVED},   /* 192.88.99.0/24: 6to4 relays */
    {0xc0a80000u, 16, &PRIVATE},    /* 192.168.0.0/16 */
    {0xc6120000u, 15, &RESERVED},   /* 198.18.0.0/15: benchmarking */
    {0xc6336400u, 24, &RESERVED},   /* 198.51.100.0/24: documentation */
    {0xcb007100u, 24, &RESERVED},   /* 203.0.113.0/24: documentation */
    {0xe0000000u, 4, &MULTICAST},   /* 224.0.0.0/4 */
    {0xf0000000u, 4, &RESERVED},    /* 240.0.0.0/4, 255.255.255.255 */
};
#define V4_INTERNAL_N (sizeof V4_INTERNAL / sizeof *V4_INTERNAL)

/* Whether x is inside the network net/bits. */
static bool v4_inside(uint32_t x, uint32_t net, int bits)
{
    return bits == 0 || (x >> (32 - bits)) == (net >> (32 - bits));
}

static const char *v4_internal(uint32_t x)
{
    for (size_t i = 0; i < V4_INTERNAL_N; i++)
        if (v4_inside(x, V4_INTERNAL[i].net, V4_INTERNAL[i].bits)) return *V4_INTERNAL[i].what;
    return NULL;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *v6_internal(const unsigned char *a)
{
    static const unsigned char zero[16];
    if (!memcmp(a, zero, 15)) return a[15] <= 1 ? THIS_HOST : RESERVED; /* ::, ::1, ::2.. */
    if (!memcmp(a, zero, 10) && a[10] == 0xff && a[11] == 0xff) return v4_internal(be32(a + 12));
    if (!memcmp(a, zero, 12)) return RESERVED; /* ::a.b.c.d, IPv4-compatible: deprecated */
    /* 64:ff9b::/96, the well-known NAT64 prefix: the IPv4 address inside it */
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (!memcmp(a, nat64, 12)) return v4_internal(be32(a + 12));
    if (a[0] == 0 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0 && a[5] == 1)
        return PRIVATE; /* 64:ff9b:1::/48: local-use NAT64 */
    if (a[0] == 0x20 && a[1] == 0x02) return v4_internal(be32(a + 2)); /* 2002::/16: 6to4 */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return RESERVED; /* doc */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) return RESERVED;       /* Teredo */
    if ((a[0] & 0xfe) == 0xfc) return PRIVATE;                    /* fc00::/7 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return LINK_LOCAL; /* fe80::/10 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return PRIVATE;    /* fec0::/10: site-local */
    if (a[0] == 0xff) return MULTICAST;
    if ((a[0] & 0xe0) != 0x20) return RESERVED; /* outside 2000::/3, the global unicast space */
    return NULL;
}

const char *net_addr_internal(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_internal(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return v6_internal(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return "an address of another family than IPv4 and IPv6";
}

const char *net_addr_local(const struct sockaddr *sa)
{
    struct sockaddr_storage want;
    normalize(sa, &want);
    if (want.ss_family != AF_INET && want.ss_family != AF_INET6) return NULL;
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs)) return NULL;
    bool mine = false;
    for (struct ifaddrs *i = ifs; i && !mine; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        struct sockaddr_storage have;
        normalize(i->ifa_addr, &have);
        mine = (have.ss_family == AF_INET || have.ss_family == AF_INET6) &&
               net_addr_same(&have, &want);
    }
    freeifaddrs(ifs);
    return mine ? THIS_HOST : NULL;
}

void net_addr_text(const struct sockaddr *sa, char *out, size_t outlen)
{
    const void *p =
        sa->sa_family == AF_INET    ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
        : sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                    : NULL;
    if (!p || !inet_ntop(sa->sa_family, p, out, (socklen_t)outlen)) snprintf(out, outlen, "?");
}

bool net_url_host(const char *uri, char *out, size_t outlen)
{
    const char *p = strstr(uri, "://");
    if (!p) return false;
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *port = NULL;
    size_t hn;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close) return false;
        hn = (size_t)(close - p) + 1;
        if (hn < n) port = p + hn;
    } else {
        const char *colon = memchr(p, ':', n);
        hn = colon ? (size_t)(colon - p) : n;
        port = colon;
    }
    if (port) {
        if (*port != ':' || port + 1 == p + n) return false;
        for (const char *c = port + 1; c < p + n; c++)
            if (*c < '0' || *c > '9') return false;
    }
    if (!hn || hn >= outlen) return false;
    for (size_t i = 0; i < hn; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!(isalnum(c) || c == '.' || c == '-' || c == '_' || c == '[' || c == ']' || c == ':'))
            return false;
    }
    memcpy(out, p, hn);
    out[hn] = '\0';
    return true;
}

/* ---- the list ---- */

typedef struct {
    char *name;                 /* a host name, or NULL for a network */
    struct sockaddr_storage ss; /* the network's address */
    int bits;                   /* its prefix length */
} allow_item;

struct net_allow {
    bool any;
    size_t n;
    allow_item items[];
};

static bool name_valid(const char *s, size_t n)
{
    if (!n || n > 253) return false;
    bool alnum = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool an = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!an && c != '.' && c != '-' && c != '_') return false;
        alnum |= an;
    }
    return alnum; /* not ".", "-", ".." */
}

/* One item (n bytes at s, trimmed) into it: GD_EINVAL when it is none of the forms. */
static gd_err parse_item(const char *s, size_t n, allow_item *it)
{
    char tmp[300];
    if (n >= sizeof tmp) return GD_EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *addr = tmp;
    size_t an = n;
    if (addr[0] == '[') { /* [::1] as a URL writes it */
        char *close = strchr(addr, ']');
        if (!close || close[1]) return GD_EINVAL;
        *close = '\0';
        addr++;
        an = strlen(addr);
    }
    char *slash = strchr(addr, '/');
    int bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end || b < 0 || b > 128) return GD_EINVAL;
        bits = (int)b;
    }
    struct in6_addr raw6;
    if (net_addr_parse(addr, &it->ss)) {
        int max = it->ss.ss_family == AF_INET ? 32 : 128;
        /* a mapped network (::ffff:10.0.0.0/104) is the IPv4 one */
        if (bits >= 0 && it->ss.ss_family == AF_INET && inet_pton(AF_INET6, addr, &raw6) == 1)
            bits -= 96;
        if (bits > max || (slash && bits < 0)) return GD_EINVAL;
        it->bits = bits < 0 ? max : bits;
        it->name = NULL;
        return GD_OK;
    }
    if (slash || addr != tmp || !name_valid(addr, an)) return GD_EINVAL;
    size_t len = an;
    if (len > 1 && addr[len - 1] == '.') len--; /* example.com. is example.com */
    if (!(it->name = strndup(addr, len))) return GD_ENOMEM;
    return GD_OK;
}

gd_err net_allow_parse(const char *list, net_allow **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    net_allow *a = calloc(1, sizeof *a + cap * sizeof(allow_item));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        const char *s = p;
        size_t k = n;
        while (k && (*s == ' ' || *s == '\t'))
            s++, k--;
        while (k && (s[k - 1] == ' ' || s[k - 1] == '\t'))
            k--;
        if (k == 1 && *s == '*') {
            a->any = true;
        } else if (k) {
            gd_err e = parse_item(s, k, &a->items[a->n]);
            if (e) {
                if (e == GD_ENOMEM)
                    snprintf(err, errlen, "out of memory");
                else
                    snprintf(err, errlen,
                             "\"%.*s\" is not a host name, an address or a network such as "
                             "10.0.0.0/8",
                             (int)(k > 80 ? 80 : k), s);
                net_allow_free(a);
                return e;
            }
            a->n++;
        }
        p += n;
        if (*p == ',') p++;
    }
    *out = a;
    return GD_OK;
}

void net_allow_free(net_allow *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++)
        free(a->items[i].name);
    free(a);
}

bool net_allow_any(const net_allow *a)
{
    return a && a->any;
}

static bool in_net(const allow_item *it, const struct sockaddr_storage *ss)
{
    if (it->name || it->ss.ss_family != ss->ss_family) return false;
    const unsigned char *x, *y;
    if (ss->ss_family == AF_INET) {
        x = (const unsigned char *)&((const struct sockaddr_in *)&it->ss)->sin_addr;
        y = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else {
        x = ((const struct sockaddr_in6 *)&it->ss)->sin6_addr.s6_addr;
        y = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    }
    int bits = it->bits, i = 0;
    for (; bits >= 8; bits -= 8, i++)
        if (x[i] != y[i]) return false;
    if (bits) {
        unsigned char mask = (unsigned char)(0xff << (8 - bits));
        if ((x[i] & mask) != (y[i] & mask)) return false;
    }
    return true;
}

bool net_allow_addr(const net_allow *a, const struct sockaddr *sa)
{
    if (!a) return false;
    if (a->any) return true;
    struct sockaddr_storage ss;
    normalize(sa, &ss);
    for (size_t i = 0; i < a->n; i++)
        if (in_net(&a->items[i], &ss)) return true;
    return false;
}

bool net_allow_host(const net_allow *a, const char *host)
{
    if (!a) return false;
    if (a->any) return true;
    char tmp[300];
    size_t n = strlen(host);
    if (n >= sizeof tmp) return false;
    memcpy(tmp, host, n + 1);
    if (tmp[0] == '[' && n > 1 && tmp[n - 1] == ']') {
        memmove(tmp, tmp + 1, n - 2);
        tmp[n - 2] = '\0';
        n -= 2;
    }
    struct sockaddr_storage ss;
    if (net_addr_parse(tmp, &ss)) return net_allow_addr(a, (const struct sockaddr *)&ss);
    if (n > 1 && tmp[n - 1] == '.') tmp[--n] = '\0';
    for (size_t i = 0; i < a->n; i++)
        if (a->items[i].name && !strcasecmp(a->items[i].name, tmp)) return true;
    return false;
}

/* ---- what a user's command may not reach ---- */

/* Appends b to out less every IPv4 network of a from item i on: a network inside b splits b in
 * halves, each looked at again; one that holds b removes it. The count, or -1 past max. */
static int carve(const net_allow *a, size_t i, net_v4 b, net_v4 *out, int n, int max)
{
    for (; n >= 0 && i < a->n; i++) {
        const allow_item *it = &a->items[i];
        if (it->name || it->ss.ss_family != AF_INET) continue;
        uint32_t x = ntohl(((const struct sockaddr_in *)&it->ss)->sin_addr.s_addr);
        if (it->bits <= b.bits) {
            if (v4_inside(b.net, x, it->bits)) return n; /* all of b may be reached */
        } else if (v4_inside(x, b.net, b.bits)) {        /* a part of b may */
            net_v4 lo = {b.net, b.bits + 1}, hi = {b.net | (1u << (31 - b.bits)), b.bits + 1};
            n = carve(a, i, lo, out, n, max);
            return n < 0 ? n : carve(a, i, hi, out, n, max);
        }
    }
    if (n < 0 || n == max) return -1;
    out[n] = b;
    return n + 1;
}

int net_v4_unreachable(const net_allow *a, net_v4 *out, int max)
{
    static const net_allow none = {0};
    if (!a) a = &none;
    if (a->any) return 0;
    int n = 0;
    for (size_t i = 0; n >= 0 && i < V4_INTERNAL_N; i++)
        if (*V4_INTERNAL[i].what == PRIVATE || *V4_INTERNAL[i].what == LINK_LOCAL)
            n = carve(a, 0, (net_v4){V4_INTERNAL[i].net, V4_INTERNAL[i].bits}, out, n, max);
    struct ifaddrs *ifs;
    if (n < 0 || getifaddrs(&ifs)) return n;
    for (struct ifaddrs *f = ifs; f && n >= 0; f = f->ifa_next) {
        if (!f->ifa_addr || f->ifa_addr->sa_family != AF_INET) continue;
        uint32_t x = ntohl(((const struct sockaddr_in *)f->ifa_addr)->sin_addr.s_addr);
        const char *what = v4_internal(x);
        bool seen = what == PRIVATE || what == LINK_LOCAL || what == THIS_HOST; /* above, or own */
        for (int k = 0; k < n && !seen; k++)
            seen = out[k].bits == 32 && out[k].net == x;
        if (!seen) n = carve(a, 0, (net_v4){x, 32}, out, n, max);
    }
    freeifaddrs(ifs);
    return n;
}
