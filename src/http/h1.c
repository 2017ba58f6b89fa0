/* h1: the HTTP/1.1 request head and chunked body decoder (see h1.h). */
#include "http/h1.h"

#include <string.h>
#include <strings.h>

/* tchar of RFC 9110 section 5.6.2 */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static long bad(h1_head *h, const char *why, const char *name, size_t nlen)
{
    h->why = why;
    h->bad = name;
    h->badlen = nlen;
    return H1_BAD;
}

/* The end of the line starting at p (the LF), or NULL. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* Where the head's empty line ends (just past its LF), searching from `from`; NULL if absent. */
static const char *find_end(const char *start, const char *end, const char *from)
{
    if (from < start) from = start;
    /* the empty line may end a line that started before `from` */
    const char *p = from - start >= 2 ? from - 2 : start;
    while (p < end) {
        const char *nl = line_end(p, end);
        if (!nl) return NULL;
        if (nl + 1 < end && nl[1] == '\n') return nl + 2;
        if (nl + 2 < end && nl[1] == '\r' && nl[2] == '\n') return nl + 3;
        if (nl + 1 >= end || (nl + 2 >= end && nl[1] == '\r')) return NULL;
        p = nl + 1;
    }
    return NULL;
}

static long parse_request_line(const char *p, const char *e, h1_head *h)
{
    if (memchr(p, '\r', (size_t)(e - p)))
        return bad(h, "a CR without LF in the request line", NULL, 0);
    const char *sp1 = memchr(p, ' ', (size_t)(e - p));
    if (!sp1 || sp1 == p) return bad(h, "a malformed request line", NULL, 0);
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q)) return bad(h, "a malformed request method", NULL, 0);
    const char *sp2 = e;
    while (sp2 > sp1 && sp2[-1] != ' ')
        sp2--;
    if (sp2 == sp1 + 1) /* one space only: no version (HTTP/0.9) or no target */
        return bad(h, "a malformed request line (no HTTP version)", NULL, 0);
    h->method = p;
    h->mlen = (size_t)(sp1 - p);
    h->target = sp1 + 1;
    h->tlen = (size_t)(sp2 - 1 - h->target);
    if (h->tlen == 0) return bad(h, "an empty request target", NULL, 0);
    for (size_t i = 0; i < h->tlen; i++) {
        unsigned char c = (unsigned char)h->target[i];
        if (c == 0) return bad(h, "the request target holds a NUL byte", NULL, 0);
        if (c <= ' ' || c == 0x7F)
            return bad(h,
                       "the request target holds a space or a control character (send them "
                       "percent-encoded)",
                       NULL, 0);
    }
    const char *v = sp2;
    size_t vlen = (size_t)(e - v);
    if (vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return bad(h, "a malformed HTTP version", NULL, 0);
    if (v[5] != '1') return v[5] == '0' ? bad(h, "HTTP/0.x is not served", NULL, 0) : H1_VERSION;
    h->minor = v[7] - '0';
    return 0;
}

static long parse_header(const char *p, const char *e, h1_head *h)
{
    if (*p == ' ' || *p == '\t')
        return bad(h, "a header line starting with whitespace (obsolete line folding)", NULL, 0);
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (!colon) return bad(h, "a header line without a colon", NULL, 0);
    if (colon == p) return bad(h, "an empty header name", NULL, 0);
    for (const char *q = p; q < colon; q++)
        if (!is_tchar((unsigned char)*q))
            return bad(h, "whitespace or a control character in a header name", p,
                       (size_t)(colon - p));
    const char *v = colon + 1, *ve = e;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    for (const char *q = v; q < ve; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < ' ' && c != '\t') || c == 0x7F)
            return bad(h, "a control character in a header value", p, (size_t)(colon - p));
    }
    if (h->nheaders == H1_MAX_HEADERS) return H1_HEAD_TOO_BIG;
    h1_header *hd = &h->headers[h->nheaders++];
    hd->name = p;
    hd->nlen = (size_t)(colon - p);
    hd->value = v;
    hd->vlen = (size_t)(ve - v);
    return 0;
}

long h1_parse_head(const char *buf, size_t len, size_t max, size_t from, h1_head *h)
{
    const char *end = buf + len, *start = buf;
    h->nheaders = 0;
    h->why = NULL;
    h->bad = NULL;
    h->badlen = 0;
    /* empty lines before the request line (after a body, some clients send one) */
    while (start < end &&
           (*start == '\n' || (*start == '\r' && start + 1 < end && start[1] == '\n')))
        start += *start == '\n' ? 1 : 2;
    if (start == end) return len > max ? H1_HEAD_TOO_BIG : H1_MORE;
    const char *first = line_end(start, end);
    const char *hend = first ? find_end(first, end, buf + from) : NULL;
    if (!hend || (size_t)(hend - buf) > max) {
        if (!first || (size_t)(first - buf) > max) return len > max ? H1_TARGET_TOO_LONG : H1_MORE;
        if (len > max || hend) return H1_HEAD_TOO_BIG;
        /* a request line that is already wrong need not wait for the rest of the head */
        const char *le = first > start && first[-1] == '\r' ? first - 1 : first;
        long rc = parse_request_line(start, le, h);
        return rc < 0 ? rc : H1_MORE;
    }
    const char *le = first > start && first[-1] == '\r' ? first - 1 : first;
    long rc = parse_request_line(start, le, h);
    if (rc < 0) return rc;
    const char *p = first + 1;
    for (;;) {
        const char *nl = line_end(p, end); /* there is one: the head's end is known */
        const char *e = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (e == p) break; /* the empty line */
        if (memchr(p, '\r', (size_t)(e - p))) {
            const char *colon = memchr(p, ':', (size_t)(e - p));
            return bad(h, "a control character in a header value", p,
                       colon ? (size_t)(colon - p) : 0);
        }
        rc = parse_header(p, e, h);
        if (rc < 0) return rc;
        p = nl + 1;
    }
    return (long)(hend - buf);
}

bool h1_name_is(const h1_header *hd, const char *name)
{
    return strlen(name) == hd->nlen && !strncasecmp(hd->name, name, hd->nlen);
}

/* ---- chunked ---- */

enum {
    C_SIZE,
    C_SIZE_WS,
    C_EXT,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER,
    C_TLINE,
    C_TLF,
    C_END_LF,
    C_DONE
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The size line ended: data follows, or (size 0) the trailer section. */
static void size_done(h1_chunked *d)
{
    d->linelen = 0;
    d->digits = 0;
    d->state = d->left ? C_DATA : C_TRAILER;
}

int h1_chunked_decode(h1_chunked *d, char *buf, size_t len, size_t *out, size_t *used)
{
    size_t i = 0, o = 0;
    while (i < len) {
        if (d->state == C_DATA) {
            size_t n = len - i;
            if (n > d->left) n = (size_t)d->left;
            memmove(buf + o, buf + i, n);
            o += n;
            i += n;
            d->left -= n;
            if (!d->left) d->state = C_DATA_CR;
            continue;
        }
        unsigned char c = (unsigned char)buf[i++];
        switch (d->state) {
        case C_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (++d->digits > 15) return -1;
                d->left = d->left * 16 + (uint64_t)v;
                break;
            }
            if (!d->digits) return -1;
            if (c == ' ' || c == '\t')
                d->state = C_SIZE_WS;
            else if (c == ';')
                d->state = C_EXT;
            else if (c == '\r')
                d->state = C_SIZE_LF;
            else
                return -1;
            break;
        }
        case C_SIZE_WS:
            if (c == ';')
                d->state = C_EXT;
            else if (c == '\r')
                d->state = C_SIZE_LF;
            else if (c != ' ' && c != '\t')
                return -1;
            break;
        case C_EXT:
            if (c == '\r')
                d->state = C_SIZE_LF;
            else if ((c < ' ' && c != '\t') || c == 0x7F)
                return -1;
            break;
        case C_SIZE_LF:
            if (c != '\n') return -1;
            size_done(d);
            break;
        case C_DATA_CR:
            if (c != '\r') return -1;
            d->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (c != '\n') return -1;
            d->state = C_SIZE;
            break;
        case C_TRAILER: /* the start of a trailer line, or the final empty line */
            if (c == '\n') return -1;
            d->state = c == '\r' ? C_END_LF : C_TLINE;
            break;
        case C_END_LF:
            if (c != '\n') return -1;
            d->state = C_DONE;
            *out = o;
            *used = i;
            return 1;
        case C_TLINE:
            if (c == '\r')
                d->state = C_TLF;
            else if ((c < ' ' && c != '\t') || c == 0x7F)
                return -1;
            break;
        case C_TLF:
            if (c != '\n') return -1;
            d->state = C_TRAILER;
            break;
        default:
            return -1;
        }
        if (d->state == C_SIZE || d->state == C_SIZE_WS || d->state == C_EXT ||
            d->state == C_SIZE_LF) {
            if (++d->linelen > H1_CHUNK_LINE_MAX) return -1;
        } else if (d->state == C_TLINE || d->state == C_TLF || d->state == C_TRAILER ||
                   d->state == C_END_LF) {
            if (++d->trailers > H1_TRAILERS_MAX) return -1;
        }
    }
    *out = o;
    *used = i;
    return 0;
}
