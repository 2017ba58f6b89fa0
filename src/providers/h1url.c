/* h1url: absolute URLs for the provider client, and the proxy the environment names for one
 * (http_proxy, https_proxy, no_proxy, as libcurl reads them). No I/O. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "providers/h1client.h"

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

/* A percent-decoded copy of s[0..n); NULL when out of memory. */
static char *pct_decode(const char *s, size_t n)
{
    char *o = malloc(n + 1), *w = o;
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            *w++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *w++ = s[i];
        }
    }
    *w = '\0';
    return o;
}

void h1_url_clear(h1_url *u)
{
    free(u->target);
    free(u->userinfo);
    u->target = u->userinfo = NULL;
}

gd_err h1_url_parse(const char *s, h1_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (!strncasecmp(s, "http://", 7)) {
        p = s + 7;
    } else if (!strncasecmp(s, "https://", 8)) {
        u->tls = true;
        p = s + 8;
    } else {
        snprintf(err, errlen, "the URL '%.200s' is neither http:// nor https://", s);
        return GD_EINVAL;
    }
    u->port = u->tls ? 443 : 80;
    size_t alen = strcspn(p, "/?#");
    const char *auth = p, *rest = p + alen;
    const char *at = NULL;
    for (const char *q = auth; q < rest; q++)
        if (*q == '@') at = q;
    if (at) {
        if (!(u->userinfo = pct_decode(auth, (size_t)(at - auth)))) goto nomem;
        auth = at + 1;
    }
    const char *hend;
    const char *portp = NULL;
    if (*auth == '[') {
        const char *close = memchr(auth, ']', (size_t)(rest - auth));
        if (!close) {
            snprintf(err, errlen, "the URL '%.200s' has an unclosed '[' in its host", s);
            goto bad;
        }
        u->ipv6 = true;
        hend = close + 1;
        if (hend < rest) {
            if (*hend != ':') {
                snprintf(err, errlen, "the URL '%.200s' has junk after its IPv6 address", s);
                goto bad;
            }
            portp = hend + 1;
        }
        auth++;
        hend = close;
    } else {
        const char *colon = memchr(auth, ':', (size_t)(rest - auth));
        hend = colon ? colon : rest;
        if (colon) portp = colon + 1;
    }
    size_t hlen = (size_t)(hend - auth);
    if (!hlen || hlen >= sizeof u->host) {
        snprintf(err, errlen, "the URL '%.200s' has %s host", s, hlen ? "too long a" : "no");
        goto bad;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)auth[i];
        if (ch <= ' ' || ch >= 0x7f || strchr("/\\@[]", ch) || (!u->ipv6 && ch == ':')) {
            snprintf(err, errlen, "the URL '%.200s' has a bad character in its host", s);
            goto bad;
        }
        u->host[i] = (char)tolower(ch);
    }
    if (u->ipv6 && !strchr(u->host, ':')) {
        snprintf(err, errlen, "the URL '%.200s' has a bad IPv6 address", s);
        goto bad;
    }
    if (portp && portp < rest) {
        long port = 0;
        for (const char *q = portp; q < rest; q++) {
            if (*q < '0' || *q > '9' || port > 65535) {
                port = -1;
                break;
            }
            port = port * 10 + (*q - '0');
        }
        if (port <= 0 || port > 65535) {
            snprintf(err, errlen, "the URL '%.200s' has a bad port", s);
            goto bad;
        }
        u->port = (unsigned short)port;
    }
    /* The target: path and query, up to a fragment; no space or control character. */
    size_t tlen = strcspn(rest, "#");
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)rest[i] <= ' ' || rest[i] == 0x7f) {
            snprintf(err, errlen, "the URL '%.200s' has a space or control character", s);
            goto bad;
        }
    bool slash = tlen && rest[0] == '/';
    if (!(u->target = malloc(tlen + 2))) goto nomem;
    if (!slash) u->target[0] = '/';
    memcpy(u->target + !slash, rest, tlen);
    u->target[tlen + !slash] = '\0';
    return GD_OK;
nomem:
    snprintf(err, errlen, "out of memory");
    h1_url_clear(u);
    return GD_ENOMEM;
bad:
    h1_url_clear(u);
    return GD_EINVAL;
}

/* Whether one no_proxy entry e[0..n) matches host:port. */
static bool entry_match(const char *e, size_t n, const char *host, unsigned short port)
{
    if (n == 1 && e[0] == '*') return true;
    /* [v6]:port, v4:port, name:port; a bare IPv6 literal has several colons */
    if (n && e[0] == '[') {
        const char *close = memchr(e, ']', n);
        if (!close) return false;
        if ((size_t)(close + 1 - e) < n) {
            if (close[1] != ':' || atoi(close + 2) != port) return false;
        }
        e++;
        n = (size_t)(close - e);
    } else {
        const char *colon = memchr(e, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - e))) {
            char pb[8];
            size_t pl = n - (size_t)(colon + 1 - e);
            if (pl >= sizeof pb) return false;
            memcpy(pb, colon + 1, pl);
            pb[pl] = '\0';
            if (atoi(pb) != port) return false;
            n = (size_t)(colon - e);
        }
    }
    if (n && e[0] == '.') {
        e++;
        n--;
    }
    if (!n) return false;
    size_t hl = strlen(host);
    if (hl == n) return !strncasecmp(host, e, n);
    /* a name under the entry: "api.example.com" for "example.com" */
    return hl > n && host[hl - n - 1] == '.' && !strncasecmp(host + hl - n, e, n);
}

bool h1_no_proxy_match(const char *list, const char *host, unsigned short port)
{
    if (!list) return false;
    const char *p = list;
    while (*p) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n && entry_match(p, n, host, port)) return true;
        p += n;
    }
    return false;
}

static const char *env2(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (!v || !*v) v = b ? getenv(b) : NULL;
    return v && *v ? v : NULL;
}

const char *h1_proxy_for(const h1_url *u)
{
    /* libcurl reads only the lower-case http_proxy (HTTP_PROXY may come from a CGI request). */
    const char *proxy = u->tls ? env2("https_proxy", "HTTPS_PROXY") : env2("http_proxy", NULL);
    if (!proxy) return NULL;
    if (h1_no_proxy_match(env2("no_proxy", "NO_PROXY"), u->host, u->port)) return NULL;
    return proxy;
}
