#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "core/ids.h"
#include "core/utf8.h"

/* The member named by the collection segment that ends just before pattern position `brace`
 * ("/api/sessions/{id}" -> "session"), into m->noun. */
static void set_noun(const char *pattern, const char *brace, route_match *m)
{
    const char *end = brace;
    if (end > pattern && end[-1] == '/') end--;
    const char *start = end;
    while (start > pattern && start[-1] != '/')
        start--;
    size_t n = (size_t)(end - start);
    if (n > 1 && end[-1] == 's') n--;
    if (n == 0 || n >= sizeof m->noun) {
        snprintf(m->noun, sizeof m->noun, "item");
        return;
    }
    memcpy(m->noun, start, n);
    m->noun[n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes the raw segment in[0..n) into out (NUL-terminated). Returns the decoded
 * length, or -1 when it does not fit in outlen or a '%' is not followed by two hex digits. */
static long decode_segment(const char *in, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= outlen) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

/* The path split once into its segments, each percent-decoded once (dn -1: it did not decode or
 * is too long to be a parameter, so only a pattern longer than any of ours could match it). */
#define MAX_SEGS 16
typedef struct {
    int n;         /* segments, a trailing empty one (the path's last '/') left out */
    bool too_many; /* more than MAX_SEGS: no route matches */
    struct {
        const char *raw;
        size_t rawlen;
        long dn;
        char dec[ROUTE_PARAM_MAX];
    } s[MAX_SEGS];
} path_segs;

/* Checks every segment of the raw path once (percent-encoding well formed, no NUL, valid UTF-8
 * once decoded; false with m->bad_segment and m->why set) and keeps each decoded in ps. */
static bool split_segments(const char *path, route_match *m, path_segs *ps)
{
    int i = 0;
    ps->n = 0;
    ps->too_many = *path != '/'; /* no pattern matches a path that does not start with '/' */
    for (const char *p = path; *p;) {
        p += *p == '/';
        size_t rn = strcspn(p, "/");
        i++;
        /* ids and names are short: decode what fits, check the bytes of what does not */
        char seg[1024];
        long n = decode_segment(p, rn < sizeof seg / 3 ? rn : sizeof seg / 3, seg, sizeof seg);
        const char *why = NULL;
        if (n < 0 && rn < sizeof seg / 3)
            why = "a '%' not followed by two hexadecimal digits";
        else if (n >= 0 && memchr(seg, '\0', (size_t)n))
            why = "a NUL byte (%00)";
        else if (n >= 0)
            for (size_t k = 0; k < (size_t)n;) {
                size_t l = utf8_seq_len((const unsigned char *)seg + k, (size_t)n - k);
                if (!l) {
                    why = "bytes that are not UTF-8";
                    break;
                }
                k += l;
            }
        if (why) {
            m->bad_segment = i;
            snprintf(m->why, sizeof m->why, "%s", why);
            snprintf(m->segment, sizeof m->segment, "%.*s",
                     (int)(rn < sizeof m->segment ? rn : sizeof m->segment - 1), p);
            return false;
        }
        bool last_empty = rn == 0 && !p[rn] && i > 1; /* "/api/sessions/": the final '/' */
        if (!last_empty) {
            if (ps->n == MAX_SEGS) {
                ps->too_many = true;
            } else {
                int k = ps->n++;
                ps->s[k].raw = p;
                ps->s[k].rawlen = rn;
                ps->s[k].dn = n >= 0 && (size_t)n < ROUTE_PARAM_MAX && rn < sizeof seg / 3 ? n : -1;
                if (ps->s[k].dn >= 0) memcpy(ps->s[k].dec, seg, (size_t)n + 1);
            }
        }
        p += rn;
    }
    return true;
}

/* Whether pattern matches the path's segments: literal segments equal, placeholders non-empty.
 * Nothing is copied: a walk over the pattern's bytes. */
static bool matches(const char *pat, const path_segs *ps)
{
    int k = 0, np = 0;
    while (*pat) {
        if (*pat != '/' || k == ps->n) return false;
        pat++;
        size_t pn = strcspn(pat, "/");
        long dn = ps->s[k].dn;
        if (*pat == '{') {
            if (dn <= 0 || ps->s[k].rawlen == 0 || np++ == ROUTE_MAX_PARAMS) return false;
        } else if (dn < 0 || (size_t)dn != pn || memcmp(ps->s[k].dec, pat, pn) != 0) {
            return false;
        }
        pat += pn;
        k++;
    }
    return k == ps->n;
}

/* Fills m's parameters from the path for the route whose pattern matched. */
static void fill_params(const char *pattern, const path_segs *ps, route_match *m)
{
    int np = 0, k = 0;
    for (const char *pat = pattern; *pat; k++) {
        pat++;
        size_t pn = strcspn(pat, "/");
        if (*pat == '{') {
            const char *dec = ps->s[k].dec;
            size_t dn = (size_t)ps->s[k].dn;
            memcpy(m->params[np++], dec, dn + 1);
            if (!m->bad_segment && memchr(dec, '/', dn)) {
                m->bad_segment = k + 1; /* %2F: one segment must stay one */
                snprintf(m->why, sizeof m->why, "an encoded '/' (%%2F)");
                size_t rn = ps->s[k].rawlen;
                snprintf(m->segment, sizeof m->segment, "%.*s",
                         (int)(rn < sizeof m->segment ? rn : sizeof m->segment - 1), ps->s[k].raw);
            }
            const char *close = memchr(pat, '}', pn);
            if (!m->bad_param && close && close - pat == 3 && !strncmp(pat, "{id}", 4) &&
                !ids_is_uuid(m->params[np - 1])) {
                m->bad_param = np;
                set_noun(pattern, pat, m);
            }
        }
        pat += pn;
    }
    m->nparams = np;
}

static void allow_add(route_match *m, const char *method)
{
    if (strstr(m->allow, method)) return;
    size_t len = strlen(m->allow);
    snprintf(m->allow + len, sizeof m->allow - len, "%s%s", len ? ", " : "", method);
}

void router_match(const http_route *routes, size_t n, const char *method, const char *path,
                  route_match *m)
{
    m->route = NULL;
    m->path_known = false;
    m->allow[0] = '\0';
    m->nparams = 0;
    m->bad_param = 0;
    m->noun[0] = '\0';
    m->bad_segment = 0;
    m->segment[0] = '\0';
    m->why[0] = '\0';
    path_segs ps;
    if (!split_segments(path, m, &ps) || ps.too_many) return;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < n; i++) {
        if (!matches(routes[i].pattern, &ps)) continue;
        m->path_known = true;
        allow_add(m, routes[i].method);
        if (!strcmp(routes[i].method, "GET")) allow_add(m, "HEAD");
        if (!m->route && !strcmp(routes[i].method, want)) {
            m->route = &routes[i];
            fill_params(routes[i].pattern, &ps, m);
        }
    }
    if (m->path_known) allow_add(m, "OPTIONS");
}
