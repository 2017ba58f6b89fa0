/* h1client: goosed's own asynchronous HTTP/1.1 client for the provider requests, on a core/loop
 * (the agent's). One request at a time per connection; connections kept alive per (scheme,
 * host, port, proxy) and reused most recent first; names resolved on a worker thread; TLS with
 * GnuTLS (system trust, SSL_CERT_FILE / CURL_CA_BUNDLE, SNI, the host name verified, ALPN
 * http/1.1); http_proxy / https_proxy / no_proxy from the environment (CONNECT for https).
 *
 * Parts, one file each: h1url.c (URLs, proxies from the environment, no_proxy), h1resp.c (the
 * response parser, no I/O), h1client.c (connections, the pool, TLS, timeouts). Everything but
 * the parsers runs on the client's loop thread only. */
#ifndef GD_H1CLIENT_H
#define GD_H1CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"

/* ---- h1url.c ---- */

#define H1_HOST_MAX 256

/* A parsed absolute URL. host has no brackets (an IPv6 literal is "::1"); target is the path
 * with its query ("/" when empty). */
typedef struct {
    bool tls;               /* https */
    char host[H1_HOST_MAX]; /* lower-case for names */
    unsigned short port;    /* the scheme's default when absent */
    bool ipv6;              /* host is an IPv6 literal (bracketed in Host and CONNECT) */
    char *target;           /* malloc'd: path and query */
    char *userinfo;         /* malloc'd "user:password" (percent-decoded), or NULL */
} h1_url;

/* Parses "http[s]://[user:pass@]host[:port][/path][?query]" (no fragment is sent). GD_EINVAL
 * with err naming what is wrong; on success free with h1_url_clear. */
gd_err h1_url_parse(const char *s, h1_url *u, char *err, size_t errlen);
void h1_url_clear(h1_url *u);

/* Whether host (port) is excluded from proxying by list, a no_proxy value: comma or space
 * separated host names, each matching the host itself or any name under it (a leading dot is
 * allowed), IP literals matched exactly, "*" matching everything; an entry may end in :port. */
bool h1_no_proxy_match(const char *list, const char *host, unsigned short port);

/* The proxy URL the environment names for a request to u (https_proxy/HTTPS_PROXY for https,
 * http_proxy for http, none when no_proxy/NO_PROXY excludes the host), or NULL. Borrowed from
 * the environment. */
const char *h1_proxy_for(const h1_url *u);

/* ---- h1resp.c ---- */

#define H1_HEAD_MAX (64 * 1024) /* status line and headers */

typedef struct {
    void *ud;
    /* One header of the final response (not of a 1xx), name and value trimmed, not
     * NUL-terminated. */
    void (*header)(void *ud, const char *name, size_t nlen, const char *val, size_t vlen);
    /* A piece of the body, as it comes. Non-zero stops the parser (h1resp_feed returns
     * GD_ECANCELLED). */
    int (*body)(void *ud, const char *p, size_t n);
} h1resp_cb;

enum {
    H1R_STATUS,
    H1R_HEADERS,
    H1R_BODY_LEN,
    H1R_BODY_CLOSE,
    H1R_CHUNK_SIZE,
    H1R_CHUNK_DATA,
    H1R_CHUNK_CRLF,
    H1R_TRAILERS,
    H1R_DONE,
    H1R_ERROR
};

/* The response parser of one response: status line, headers, then the body by chunked
 * decoding, by Content-Length or until the connection closes. No allocation but the line being
 * read of the head (freed once the head is done). */
typedef struct {
    h1resp_cb cb;
    int state;
    int status;
    bool no_body;    /* a CONNECT's answer, or a HEAD's: nothing after the head */
    bool keep_alive; /* the connection may carry another request after this response */
    bool chunked, has_len;
    uint64_t left;   /* body or chunk bytes still to come */
    size_t head_len; /* bytes of the head read so far */
    int line_len;    /* the chunk-size or trailer line so far */
    int digits;      /* of the chunk size */
    bool ext;        /* in a chunk extension */
    buf line;        /* the head's line being read */
    char err[160];
} h1resp;

/* Starts a response; no_body for the answer to a CONNECT. */
void h1resp_init(h1resp *r, const h1resp_cb *cb, bool no_body);
/* Feeds n bytes; *used is how many were consumed (fewer than n only once the response is done:
 * the rest is not part of it). GD_EINVAL with r->err naming what was malformed, GD_ETOOBIG when
 * the head passed H1_HEAD_MAX, GD_ECANCELLED when cb.body asked to stop, GD_ENOMEM. */
gd_err h1resp_feed(h1resp *r, const char *p, size_t n, size_t *used);
/* The connection closed: GD_OK when that completes the response (a body until close), else
 * GD_EINVAL with r->err. */
gd_err h1resp_eof(h1resp *r);
static inline bool h1resp_done(const h1resp *r)
{
    return r->state == H1R_DONE;
}
void h1resp_free(h1resp *r);

/* ---- h1client.c ---- */

typedef struct h1client h1client;
typedef struct h1req h1req;

/* How a request ended. */
typedef enum {
    H1_OK,
    H1_ECONNECT, /* resolving, connecting, the proxy or TLS failed: nothing was answered */
    H1_ETIMEOUT, /* connecting took longer than the timeout */
    H1_ESTALL,   /* no byte for the timeout */
    H1_EIO,      /* the connection broke or closed during the response */
    H1_EPROTO,   /* a malformed response */
    H1_EABORT,   /* the body callback asked to stop */
} h1_status;

typedef struct {
    void *ud;
    /* The response's status, once its head is complete (before its first body piece). */
    void (*status)(void *ud, int status);
    /* Headers and body as h1resp_cb (body non-zero: the request ends with H1_EABORT). */
    void (*header)(void *ud, const char *name, size_t nlen, const char *val, size_t vlen);
    int (*body)(void *ud, const char *p, size_t n);
    /* Once, at the end; msg says what failed and where (host:port), "" for H1_OK. The request
     * is freed before this call: the caller drops its handle. Never called from inside
     * h1_post or h1req_cancel. */
    void (*done)(void *ud, h1_status st, const char *msg);
    /* Once the head has come, the body's bytes are not progress: the caller says what is
     * (h1req_progress), and timeout_s bounds the time between two. A peer that trickles bytes,
     * or keep-alive comments, forever, is then cut off. */
    bool progress_by_caller;
} h1req_cb;

/* A client on l (borrowed). NULL when out of memory. Loop thread. */
h1client *h1client_new(loop *l);
/* Closes every connection; requests still running end without their done. */
void h1client_free(h1client *c);

/* Starts POST url with hdrs (each "Name: value\r\n", hlen bytes, copied) and the body (borrowed
 * until h1req_body_sent says it went, or the request ends). timeout_s bounds connecting and any
 * silence of the peer. Host, Content-Length (and Proxy-Authorization through a proxy) are
 * added. NULL with err set when the URL is bad or out of memory (cb.done is then not called). */
h1req *h1_post(h1client *c, const char *url, const char *hdrs, size_t hlen, const char *body,
               size_t blen, long timeout_s, const h1req_cb *cb, char *err, size_t errlen);
/* Whether the whole body was written (the caller may free it). */
bool h1req_body_sent(const h1req *r);
/* The answer made progress (progress_by_caller): its stall timeout starts again. */
void h1req_progress(h1req *r);
/* Stops and frees a running request without calling done; its connection is closed. */
void h1req_cancel(h1req *r);

#endif
