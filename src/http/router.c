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

/* Checks every segment of the raw path once: percent-encoding well formed, no NUL, valid UTF-8
 * once decoded. false with m->bad_segment and m->why set. */
static bool check_segments(const char *path, route_match *m)
{
    int i = 0;
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
        p += rn;
    }
    return true;
}

/* Matches the raw path against pattern segment by segment, each path segment percent-decoded
 * once; fills params with the decoded values. A trailing slash on the path is ignored. */
static bool match_pattern(const char *pat, const char *path, route_match *m)
{
    const char *pattern = pat;
    int np = 0, seg = 0;
    while (*pat) {
        if (*pat != '/' || *path != '/') return false;
        pat++;
        path++;
        seg++;
        size_t pn = strcspn(pat, "/"), rn = strcspn(path, "/");
        char dec[ROUTE_PARAM_MAX];
        long dn = decode_segment(path, rn, dec, sizeof dec);
        if (*pat == '{') {
            const char *close = memchr(pat, '}', pn);
            if (!close || rn == 0 || dn <= 0 || np == ROUTE_MAX_PARAMS) return false;
            memcpy(m->params[np++], dec, (size_t)dn + 1);
            if (!m->bad_segment && memchr(dec, '/', (size_t)dn)) {
                m->bad_segment = seg; /* %2F: one segment must stay one */
                snprintf(m->why, sizeof m->why, "an encoded '/' (%%2F)");
                snprintf(m->segment, sizeof m->segment, "%.*s",
                         (int)(rn < sizeof m->segment ? rn : sizeof m->segment - 1), path);
            }
            if (!m->bad_param && close - pat == 3 && !strncmp(pat, "{id}", 4) &&
                !ids_is_uuid(m->params[np - 1])) {
                m->bad_param = np;
                set_noun(pattern, pat, m);
            }
        } else if (dn < 0 || (size_t)dn != pn || memcmp(dec, pat, pn) != 0) {
            return false;
        }
        pat += pn;
        path += rn;
    }
    if (*path && strcmp(path, "/") != 0) return false;
    m->nparams = np;
    return true;
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
    memset(m, 0, sizeof *m);
    if (!check_segments(path, m)) return;
    route_match tmp;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < n; i++) {
        memset(&tmp, 0, sizeof tmp);
        if (!match_pattern(routes[i].pattern, path, &tmp)) continue;
        m->path_known = true;
        allow_add(m, routes[i].method);
        if (!strcmp(routes[i].method, "GET")) allow_add(m, "HEAD");
        if (!m->route && !strcmp(routes[i].method, want)) {
            m->route = &routes[i];
            m->nparams = tmp.nparams;
            memcpy(m->params, tmp.params, sizeof tmp.params);
            m->bad_param = tmp.bad_param;
            memcpy(m->noun, tmp.noun, sizeof tmp.noun);
            m->bad_segment = tmp.bad_segment;
            memcpy(m->why, tmp.why, sizeof tmp.why);
            memcpy(m->segment, tmp.segment, sizeof tmp.segment);
        }
    }
    if (m->path_known) allow_add(m, "OPTIONS");
}
