/* h1resp: the parser of one HTTP/1.1 response for the provider client: the status line and
 * headers (at most H1_HEAD_MAX bytes), then the body by chunked decoding, by Content-Length or
 * until the connection closes, handed on piece by piece as it comes. No I/O; every malformed
 * input is an error naming what was wrong. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "providers/h1client.h"

void h1resp_init(h1resp *r, const h1resp_cb *cb, bool no_body)
{
    buf_free(&r->line);
    memset(r, 0, sizeof *r);
    r->cb = *cb;
    r->no_body = no_body;
    r->keep_alive = true;
    buf_init(&r->line, H1_HEAD_MAX);
}

void h1resp_free(h1resp *r)
{
    buf_free(&r->line);
}

static gd_err fail(h1resp *r, gd_err e, const char *msg)
{
    snprintf(r->err, sizeof r->err, "%s", msg);
    r->state = H1R_ERROR;
    return e;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static gd_err status_line(h1resp *r, const char *s, size_t n)
{
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (n < 12 || memcmp(s, "HTTP/1.", 7) || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
        s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (n > 12 && s[12] != ' '))
        return fail(r, GD_EINVAL, "a malformed status line");
    r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (s[7] == '0') r->keep_alive = false;
    r->state = H1R_HEADERS;
    return GD_OK;
}

static bool token_is(const char *v, size_t n, const char *tok)
{
    /* a comma list containing tok */
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t st = i;
        while (i < n && v[i] != ',')
            i++;
        size_t en = i;
        while (en > st && (v[en - 1] == ' ' || v[en - 1] == '\t'))
            en--;
        if (en - st == tl && !strncasecmp(v + st, tok, tl)) return true;
    }
    return false;
}

static gd_err header_line(h1resp *r, const char *s, size_t n)
{
    if (s[0] == ' ' || s[0] == '\t') return fail(r, GD_EINVAL, "a folded header line");
    size_t nl = 0;
    while (nl < n && is_tchar((unsigned char)s[nl]))
        nl++;
    if (!nl || nl >= n || s[nl] != ':') return fail(r, GD_EINVAL, "a malformed header line");
    const char *v = s + nl + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    for (size_t i = 0; i < vl; i++)
        if (((unsigned char)v[i] < ' ' && v[i] != '\t') || v[i] == 0x7f)
            return fail(r, GD_EINVAL, "a control character in a header");
    bool final = r->status >= 200;
    if (final && nl == 14 && !strncasecmp(s, "content-length", 14)) {
        uint64_t len = 0;
        if (!vl || vl > 18) return fail(r, GD_EINVAL, "a bad Content-Length");
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9') return fail(r, GD_EINVAL, "a bad Content-Length");
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        if (r->has_len && len != r->left)
            return fail(r, GD_EINVAL, "two different Content-Length headers");
        r->has_len = true;
        r->left = len;
    } else if (final && nl == 17 && !strncasecmp(s, "transfer-encoding", 17)) {
        /* only chunked: no Accept-Encoding or TE is sent, so nothing else may come */
        size_t en = vl;
        const char *last = v;
        for (size_t i = 0; i < vl; i++)
            if (v[i] == ',') last = v + i + 1;
        while (last < v + en && (*last == ' ' || *last == '\t'))
            last++;
        if ((size_t)(v + en - last) != 7 || strncasecmp(last, "chunked", 7) || r->chunked)
            return fail(r, GD_EINVAL, "a Transfer-Encoding other than chunked");
        if (last != v) return fail(r, GD_EINVAL, "a Transfer-Encoding other than chunked");
        r->chunked = true;
    } else if (nl == 10 && !strncasecmp(s, "connection", 10)) {
        if (token_is(v, vl, "close")) r->keep_alive = false;
    }
    if (final && r->cb.header) r->cb.header(r->cb.ud, s, nl, v, vl);
    return GD_OK;
}

static gd_err head_end(h1resp *r)
{
    if (r->status < 200) {
        if (r->status == 101) return fail(r, GD_EINVAL, "a protocol switch (101) nobody asked for");
        r->state = H1R_STATUS; /* an interim answer (100 Continue): the real one follows */
        return GD_OK;
    }
    buf_free(&r->line);
    if (r->no_body || r->status == 204 || r->status == 304) {
        r->state = H1R_DONE;
        return GD_OK;
    }
    if (r->chunked) {
        if (r->has_len) r->keep_alive = false; /* a length too: not reused (RFC 9112 6.3) */
        r->has_len = false;                    /* chunked wins */
        r->state = H1R_CHUNK_SIZE;
        r->line_len = r->digits = 0;
        r->ext = false;
        r->left = 0;
    } else if (r->has_len) {
        r->state = r->left ? H1R_BODY_LEN : H1R_DONE;
    } else {
        r->state = H1R_BODY_CLOSE;
        r->keep_alive = false;
    }
    return GD_OK;
}

static gd_err body(h1resp *r, const char *p, size_t n)
{
    if (n && r->cb.body && r->cb.body(r->cb.ud, p, n))
        return fail(r, GD_ECANCELLED, "stopped by the receiver");
    return GD_OK;
}

static int hexv(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

gd_err h1resp_feed(h1resp *r, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    gd_err e = GD_OK;
    while (i < n && !e) {
        switch (r->state) {
        case H1R_STATUS:
        case H1R_HEADERS: {
            const char *nlp = memchr(p + i, '\n', n - i);
            size_t take = nlp ? (size_t)(nlp - (p + i)) + 1 : n - i;
            if (r->head_len + take > H1_HEAD_MAX) {
                e = fail(r, GD_ETOOBIG, "a status line and headers over 64 KiB");
                break;
            }
            r->head_len += take;
            if (!nlp) {
                if (buf_append(&r->line, p + i, take)) e = fail(r, GD_ENOMEM, "out of memory");
                i += take;
                break;
            }
            const char *s = p + i;
            size_t sl = take - 1;
            if (r->line.len) {
                if (buf_append(&r->line, p + i, take - 1)) {
                    e = fail(r, GD_ENOMEM, "out of memory");
                    break;
                }
                s = r->line.data;
                sl = r->line.len;
            }
            i += take;
            if (sl && s[sl - 1] == '\r') sl--;
            if (memchr(s, '\0', sl)) {
                e = fail(r, GD_EINVAL, "a NUL byte in the head");
            } else if (r->state == H1R_STATUS) {
                if (!sl && r->head_len <= 2) {
                    r->head_len = 0; /* a stray empty line before the status line */
                } else {
                    e = status_line(r, s, sl);
                }
            } else if (!sl) {
                e = head_end(r);
            } else {
                e = header_line(r, s, sl);
            }
            if (r->line.data) buf_reset(&r->line);
            break;
        }
        case H1R_BODY_LEN: {
            size_t take = n - i < r->left ? n - i : (size_t)r->left;
            r->left -= take;
            if (!r->left) r->state = H1R_DONE;
            e = body(r, p + i, take);
            i += take;
            break;
        }
        case H1R_BODY_CLOSE:
            e = body(r, p + i, n - i);
            i = n;
            break;
        case H1R_CHUNK_SIZE: {
            char ch = p[i++];
            if (++r->line_len > 4096) {
                e = fail(r, GD_EINVAL, "a chunk-size line over 4 KiB");
            } else if (!r->ext && hexv(ch) >= 0) {
                if (++r->digits > 15) e = fail(r, GD_EINVAL, "a chunk size too large");
                r->left = r->left * 16 + (uint64_t)hexv(ch);
            } else if (ch == '\n') {
                if (!r->digits) {
                    e = fail(r, GD_EINVAL, "a chunk without its size");
                } else {
                    r->state = r->left ? H1R_CHUNK_DATA : H1R_TRAILERS;
                    r->line_len = 0;
                }
            } else if (ch == '\r' || r->ext) {
                /* the line's end, or an extension (ignored) */
            } else if (r->digits && (ch == ';' || ch == ' ' || ch == '\t')) {
                r->ext = true;
            } else {
                e = fail(r, GD_EINVAL, "a bad chunk size");
            }
            break;
        }
        case H1R_CHUNK_DATA: {
            size_t take = n - i < r->left ? n - i : (size_t)r->left;
            r->left -= take;
            if (!r->left) {
                r->state = H1R_CHUNK_CRLF;
                r->line_len = 0;
            }
            e = body(r, p + i, take);
            i += take;
            break;
        }
        case H1R_CHUNK_CRLF: {
            char ch = p[i++];
            if (ch == '\r' && !r->line_len) {
                r->line_len = 1;
            } else if (ch == '\n') {
                r->state = H1R_CHUNK_SIZE;
                r->line_len = r->digits = 0;
                r->ext = false;
            } else {
                e = fail(r, GD_EINVAL, "a chunk not followed by its line end");
            }
            break;
        }
        case H1R_TRAILERS: {
            char ch = p[i++];
            if (++r->head_len > H1_HEAD_MAX) {
                e = fail(r, GD_ETOOBIG, "trailers over 64 KiB");
            } else if (ch == '\n') {
                if (!r->line_len) r->state = H1R_DONE;
                r->line_len = 0;
            } else if (ch != '\r') {
                r->line_len++;
            }
            break;
        }
        case H1R_DONE:
            *used = i;
            return GD_OK;
        default:
            *used = i;
            return r->err[0] ? GD_EINVAL : GD_EINVAL;
        }
    }
    *used = i;
    return e;
}

gd_err h1resp_eof(h1resp *r)
{
    switch (r->state) {
    case H1R_DONE:
        return GD_OK;
    case H1R_BODY_CLOSE:
        r->state = H1R_DONE;
        return GD_OK;
    case H1R_STATUS:
        return fail(r, GD_EINVAL,
                    r->head_len ? "the connection closed inside the status line"
                                : "the connection closed before any answer");
    case H1R_HEADERS:
        return fail(r, GD_EINVAL, "the connection closed inside the headers");
    case H1R_ERROR:
        return GD_EINVAL;
    default:
        return fail(r, GD_EINVAL, "the connection closed before the body was complete");
    }
}
