/* The HTTP server: goosed's own HTTP/1.1 engine (http/h1.c parses) on core/loop, with as many
 * loops (threads) as twice the cores, all watching the one listening socket (LOOP_EXCLUSIVE: a
 * new connection wakes one of them, which accepts it and keeps it for its life). At the end of
 * each round of events a loop sweeps its idle and lingering connections and frees those closed.
 *
 * A request's life on its connection's thread:
 *   head read     -> parsed (h1.c), request id, route match, early 404/405/413/415, CORS preflight
 *   body          -> appended to a capped buffer (past the cap: read and dropped, then 413)
 *   body complete -> JSON body parsed and checked, the route's handler called
 *   reply sent    -> one access-log line, the request freed (never inside a handler).
 * A handler may suspend (http_suspend); http_resume, from any thread, queues the request to its
 * thread and wakes it (a function posted to its loop, once per batch). A streamed reply (SSE) is
 * written in chunks as its function produces them; between them the connection holds no buffer.
 *
 * Memory: a connection is a small struct. Its read buffer (4 KiB, growing to the head limit) is
 * taken from its thread's free list when bytes arrive and given back once a request's head and
 * body have been read; the head is kept, compacted, with the request. Nothing else is held per
 * connection: an idle SSE watcher costs the struct, its request and what its handler keeps.
 *
 * Sockets are edge-triggered (LOOP_READ|LOOP_WRITE|LOOP_RDHUP|LOOP_EDGE, registered once): each
 * connection remembers whether it may be readable or writable, and reads or writes only while
 * it has something to do; a small reply is one read(), one writev() of head and body.
 *
 * What clients can hold is bounded here (with http/conns.c):
 *   - max_connections in total: a connection accepted over it is answered 503
 *     too_many_connections with Retry-After and Connection: close (the header deadline closes it
 *     if it never sends a request); past max_connections and a reserve, new connections are
 *     closed at once. The open-file limit is raised at start so that the bound is reachable.
 *   - max_connections_per_client open connections from one address: the same 503.
 *   - header_timeout: complete request headers within that many seconds of the accept (or of
 *     the first byte of a kept-alive connection's next request), and each piece of a body
 *     within that many seconds of the last; see conns.h. A kept-alive connection idle for
 *     IDLE_TIMEOUT_S is closed.
 *   - request line and headers: HEAD_MAX bytes (414 when the request line alone is longer, 431),
 *     answered once, then the connection closed.
 *
 * The strict edge (h1.c's parse, check_request, check_origin): routing works on the raw target;
 * bound to loopback, only loopback Host names or allowed_hosts are served (421 otherwise: DNS
 * rebinding); HTTP/1.1 needs one Host; header names are tokens and values hold no control
 * characters; only chunked transfer coding; one Content-Length, a number; POST/PUT/PATCH/DELETE
 * need application/json and no foreign Origin (CSRF); HTTP/2 (its preface included) is 505.
 * Every refusal is http_reply_error's JSON, once; those that leave the framing in doubt close the
 * connection after it.
 *
 * HTTPS: GnuTLS on the same loops (non-blocking handshake and records). An upgraded connection
 * over TLS (the WebSocket) gets one end of a socket pair; its thread relays the other end's
 * bytes to and from the TLS session. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/jtext.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "core/utf8.h"
#include "http/conns.h"
#include "http/h1.h"
#include "http/ws.h"
#include "http/origin.h"
#include "http/tls.h"

/* Connections accepted per wake-up of a thread (nginx's multi_accept off): when many clients
 * connect at once, taking all that are waiting let one thread keep a burst of 64 for their life
 * (59% of goosed's CPU on one of its four HTTP threads in one run of durable creates); one at a
 * time, each arrival wakes a thread that is waiting, so the burst spreads over the idle ones. */
#define ACCEPT_PER_WAKE   1
#define MAX_EXTRA_HEADERS 8
#define RID_MAX           128
#define RETRY_AFTER_S     "1" /* seconds, for every 503 and 429 that does not say otherwise */
#define IDLE_TIMEOUT_S    75u /* a kept-alive connection between requests */
#define LINGER_S          2u  /* reading what a client still sends after a closing answer */
#define LINGER_BYTES      (256u << 10)
/* the request line and headers: about 16 KB of headers are served, 431 beyond */
#define HEAD_MAX     16384u
#define RBUF_MIN     4096u
#define RBUF_FREE    32     /* read buffers of RBUF_MIN kept for reuse per thread */
#define STREAM_MAX   65536u /* a streamed reply's piece */
#define HEAD_OUT_MAX 16384u /* a reply's head */
#define FD_HEADROOM  256L   /* descriptors besides connections: store, logs, pipes, children */
/* bytes of a body over max_body_size read and dropped before the 413 (see begin) */
#define BODY_DRAIN_MAX(max)                                                                        \
    ((unsigned long long)(max)*4 > (16ull << 20) ? (unsigned long long)(max)*4 : (16ull << 20))
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct worker worker;
typedef struct hconn hconn;

/* A connection's place in a request (hconn.state). */
enum {
    ST_HANDSHAKE, /* TLS handshake */
    ST_HEAD,      /* reading a request's head (or idle between requests) */
    ST_BODY,      /* reading its body */
    ST_HANDLER,   /* its handler suspended */
    ST_SEND,      /* writing a whole reply */
    ST_STREAM,    /* writing a streamed reply */
    ST_UPGRADED,  /* the socket is the application's (or relayed to it) */
    ST_LINGER,    /* answered and shut for writing: reading what the client still sends */
};

/* An intrusive FIFO of connections sharing one timeout (so that it stays sorted). */
typedef struct {
    hconn *head, *tail;
    uint64_t ns;
} tlist;

struct worker {
    http_server *s;
    loop *l;            /* the thread's loop (NULL once stopped, under mu) */
    loop_fd *lw;        /* the listening socket, as this loop watches it */
    pthread_mutex_t mu; /* the resume queue, and l for enqueue */
    http_req *qhead, *qtail;
    bool woken; /* drain_queue is posted to the loop */
    tlist idle, linger;
    hconn *all;    /* every connection of this thread */
    hconn *graves; /* closed during this round of events, freed after it */
    h1_head h;     /* the head being parsed */
    char scratch[HEAD_OUT_MAX + STREAM_MAX + 64]; /* a reply's head, a streamed piece */
    char *freebufs[RBUF_FREE];
    int nfree;
    time_t date_at;
    char date[40];
};

struct stream_ctx {
    http_stream_fn fn;   /* copies into the server's buffer; or */
    http_piece_fn piece; /* hands over its own memory */
    void *cls;
    void (*free_cls)(void *);
};

/* A TLS connection's upgrade: the application's socket pair and what is in transit. */
typedef struct {
    loop_fd *lw; /* fd, watched */
    hconn *c;
    int fd, app_fd; /* ours, the application's */
    char *in;       /* from the client, not yet written to fd */
    size_t inlen, inoff;
    char *out; /* from the application, not yet sent through TLS */
    size_t outlen, outoff;
    bool readable, writable, app_eof, client_eof, bye;
} relay;

/* The credentials TLS connections are set up with, counted: a reload puts new ones in place for
 * the connections that come next, while those set up before keep theirs (GnuTLS reads a
 * session's credentials until the session is freed) until the last of them closes. */
typedef struct {
    gnutls_certificate_credentials_t xcred;
    bool verify_client; /* every client must show a certificate of tls_client_ca's CAs */
    atomic_int refs;
} tls_keys;

static void keys_unref(tls_keys *k)
{
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
    gnutls_certificate_free_credentials(k->xcred);
    free(k);
}

/* Asks the client of session for a certificate, and makes the handshake fail unless it shows
 * one that chains to the trusted CAs (tls_client_ca), valid now, and made for a TLS client
 * (its extended key usage, when it has one, names clientAuth: a server's certificate of the
 * same CA is not a client's): as nginx's `ssl_verify_client on` with OpenSSL's checks. */
static void tls_require_client(gnutls_session_t session)
{
    static gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
                                            (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};
    gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_cert2(session, &purpose, 1, 0);
}

/* Ends a connection's TLS session, and its hold on the credentials it was set up with. */
static void conn_tls_end(hconn *c);

struct hconn {
    loop_fd *lw; /* fd, watched (NULL once upgraded without TLS) */
    int fd;
    int state;
    worker *w;
    conn *cn;
    http_req *r; /* the request being read, handled or answered */
    char *rbuf;
    size_t rlen, rcap, scanned;
    bool readable, writable, hup;
    bool deadline; /* in conns' header (or body) deadline queue */
    bool close_after, closed;
    /* the pending output: a head (malloc'd copy or NULL) then a body pointer */
    char *ohead;
    size_t oheadlen, ooff;
    const char *obody;
    size_t obodylen;
    bool stream_end;  /* the last chunk has been queued */
    bool chunk_open;  /* a piece's chunk went without its closing CRLF (it leads the next) */
    size_t head_held; /* a pieces stream's head, in the scratch, waiting for its first piece */
    bool head_sent;   /* the reply's head is written or pending */
    size_t lingered;
    gnutls_session_t tls;
    tls_keys *keys; /* tls's credentials (a reference) */
    relay *rl;
    hconn *tprev, *tnext; /* in w->idle or w->linger */
    tlist *tl;
    uint64_t due;
    hconn *aprev, *anext; /* in w->all */
    char client[INET6_ADDRSTRLEN];
};

struct http_server {
    int listen_fd;
    int port;
    const config *cfg;
    const http_route *routes;
    size_t nroutes;
    void *app;
    http_gate_fn gate; /* who a request comes from (http.h), or NULL */
    conns *conns;
    long max_conns; /* max_connections, lowered when the open-file limit cannot hold it */
    worker *workers;
    unsigned nworkers;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when inflight drops to 0 while stopping */
    atomic_int inflight;
    bool loopback;          /* bound to a loopback address: Host is checked (DNS rebinding) */
    atomic_ulong errors;    /* error responses sent, for the operator */
    atomic_bool stopping;   /* new connections are refused */
    bool tls_on;            /* HTTPS (tls.h): the certificate and key below */
    pthread_mutex_t tls_mu; /* guards tls and keys, which a reload (http_tls_reload) replaces */
    tls_creds tls;
    tls_keys *keys; /* what a new connection is set up with */
    gnutls_priority_t prio;
    int reserve_fd;     /* a descriptor given up to shed a client when none is left (shed_one) */
    time_t shed_logged; /* when shedding was last logged (under mu) */
};

struct http_req {
    http_server *s;
    hconn *c;
    worker *w;
    char *blk; /* the head, copied: method, target and header fields NUL-terminated in it */
    const char *(*hdr)[2];
    size_t nhdr;
    const char *method;
    const char *path;  /* the raw target up to '?' or '#' */
    const char *query; /* after '?', or NULL */
    char *qbuf;        /* the query decoded (http_query), pairs in qkv */
    char *(*qkv)[2];
    size_t nq;
    bool qparsed;
    const char *qbad, *qbad_name; /* a decoded name or value that is no text: why, and its name */
    int minor;                    /* HTTP/1.minor */
    bool is_head, keep, expect;
    route_match m;
    buf body;
    json_t *json;
    uint64_t t0;
    int status; /* 0 until a reply is queued */
    size_t resp_len;
    bool too_big;               /* the body passed the cap: the rest is discarded, then 413 */
    unsigned long long dropped; /* bytes of body discarded since */
    bool chunked, framed;       /* framed: cl_left or chunked tell where the body ends */
    unsigned long long cl_left; /* bytes of a Content-Length body still to come */
    h1_chunked dec;
    http_handler cont; /* set while suspended: what runs when resumed */
    bool stream_wait;
    void (*on_done)(void *);
    void *on_done_arg;
    void *state;        /* http_state */
    const char *origin; /* the request's Origin when it is allowed, else NULL */
    bool origin_own;    /* the request's Origin is this server's own (origin.h) */
    char rid[RID_MAX + 1];
    int nhdrs;
    char *hdrs[MAX_EXTRA_HEADERS][2];
    /* the reply */
    const char *ctype;
    const char *rbody;
    size_t rbodylen;
    char *rbody_owned; /* freed with the request */
    struct stream_ctx *sc;
    http_upgrade_fn upgrade; /* http_reply_upgrade */
    void *upgrade_cls;
    atomic_bool upgrade_done; /* http_upgrade_close was called */
    /* the resume queue (under w->mu) */
    http_req *qnext;
    bool queued, zombie;
    _Alignas(max_align_t) unsigned char who[HTTP_WHO_BYTES]; /* the gate's (http_who) */
    trace_span *span; /* the request's server span (trace.h), NULL when tracing is off */
    log_ctx lctx;     /* what JSON log lines written while handling it carry */
};

static void conn_run(hconn *c);
static void conn_close(hconn *c);
static void req_finish(hconn *c, int aborted);

/* ---- helpers for handlers ---- */

void *http_app(http_req *r)
{
    return r->s->app;
}
const char *http_method(http_req *r)
{
    return r->method;
}
const char *http_path(http_req *r)
{
    return r->path;
}
const char *http_param(http_req *r, int i)
{
    return i < r->m.nparams ? r->m.params[i] : NULL;
}

static int hexdig(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes a query string piece in place: '+' is a space, %XX a byte (a broken escape is kept).
 * Returns the length decoded: past the first NUL when a %00 made one. */
static size_t unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '+')
            *o++ = ' ';
        else if (*p == '%' && (hi = hexdig(p[1])) >= 0 && (lo = hexdig(p[2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            p += 2;
        } else
            *o++ = *p;
    }
    *o = '\0';
    return (size_t)(o - s);
}

/* Why the n decoded bytes at s are not text a handler can take, or NULL. */
static const char *not_text(const char *s, size_t n)
{
    if (strlen(s) != n) return "a NUL byte (%00)";
    return utf8_valid(s, n) ? NULL : "bytes that are not UTF-8";
}

/* Splits the query string into decoded name/value pairs, once. */
static void parse_query(http_req *r)
{
    r->qparsed = true;
    if (!r->query || !*r->query) return;
    r->qbuf = strdup(r->query);
    if (!r->qbuf) return;
    size_t n = 1;
    for (const char *p = r->qbuf; *p; p++)
        n += *p == '&';
    r->qkv = calloc(n, sizeof *r->qkv);
    if (!r->qkv) return;
    char *save = NULL;
    for (char *tok = strtok_r(r->qbuf, "&", &save); tok; tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        if (eq) *eq++ = '\0';
        size_t nl = unescape(tok), vl = eq ? unescape(eq) : 0;
        const char *bad = not_text(tok, nl);
        if (!bad && eq) bad = not_text(eq, vl);
        if (bad && !r->qbad) {
            r->qbad = bad;
            r->qbad_name = tok;
        }
        r->qkv[r->nq][0] = tok;
        r->qkv[r->nq][1] = eq; /* "name" without '=' has no value */
        r->nq++;
    }
}

const char *http_query(http_req *r, const char *name)
{
    if (!r->qparsed) parse_query(r);
    for (size_t i = 0; i < r->nq; i++)
        if (!strcasecmp(r->qkv[i][0], name)) return r->qkv[i][1];
    return NULL;
}
const char *http_header(http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nhdr; i++)
        if (!strcasecmp(r->hdr[i][0], name)) return r->hdr[i][1];
    return NULL;
}
bool http_origin_listed(http_req *r)
{
    return r->origin != NULL;
}
bool http_origin_trusted(http_req *r)
{
    return r->origin != NULL || r->origin_own;
}
json_t *http_body(http_req *r)
{
    return r->json;
}
void *http_who(http_req *r)
{
    return r->who;
}
void http_set_log_who(http_req *r, const char *user, const char *session_id)
{
    r->lctx.user = user;
    r->lctx.session_id = session_id;
}

void *http_state(http_req *r, size_t size)
{
    if (!r->state) r->state = calloc(1, size);
    return r->state;
}

void http_suspend(http_req *r, http_handler cont)
{
    r->cont = cont;
}

static void drain_posted(void *ud);
static void conn_io(loop_fd *lw, int fd, unsigned events, void *ud);
static void relay_io(loop_fd *lw, int fd, unsigned events, void *ud);

/* Queues r to its thread (the resume queue), which then looks at what it waits for. */
static void enqueue(http_req *r)
{
    worker *w = r->w;
    pthread_mutex_lock(&w->mu);
    if (!r->queued) {
        r->queued = true;
        r->qnext = NULL;
        if (w->qtail)
            w->qtail->qnext = r;
        else
            w->qhead = r;
        w->qtail = r;
        if (!w->woken && w->l) {
            w->woken = loop_post(w->l, drain_posted, w) == GD_OK;
            if (!w->woken) log_error("http", "cannot wake a server thread: out of memory");
        }
    }
    pthread_mutex_unlock(&w->mu);
}

void http_resume(http_req *r)
{
    enqueue(r);
}

void http_add_header(http_req *r, const char *name, const char *value)
{
    if (r->nhdrs == MAX_EXTRA_HEADERS) {
        log_error("http", "too many response headers for %s %s; dropped %s", r->method, r->path,
                  name);
        return;
    }
    r->hdrs[r->nhdrs][0] = strdup(name);
    r->hdrs[r->nhdrs][1] = strdup(value);
    r->nhdrs++;
}

/* Records the reply; the connection writes it once the request's body has been read. */
static void queue(http_req *r, int status, const char *ctype, const char *body, size_t len,
                  char *owned)
{
    if (r->status) {
        log_error("http", "a second reply (%d) to %s %s dropped", status, r->method, r->path);
        free(owned);
        return;
    }
    r->status = status;
    r->ctype = ctype;
    r->rbody = body;
    r->rbodylen = len;
    r->rbody_owned = owned;
    r->resp_len = len;
}

void http_reply_static(http_req *r, int status, const char *ctype, const void *data, size_t len)
{
    queue(r, status, ctype, data, len, NULL);
}

void http_reply_text(http_req *r, int status, const char *ctype, const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    memcpy(copy, text, len);
    queue(r, status, ctype, copy, len, copy);
}

void http_reply_empty(http_req *r, int status)
{
    queue(r, status, NULL, NULL, 0, NULL);
}

bool http_peer_gone(http_req *r)
{
    if (!r->c || r->c->fd < 0) return true;
    char ch;
    ssize_t n = recv(r->c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void http_stream_wait(http_req *r)
{
    r->stream_wait = true;
}

/* A streamed reply's head (its body comes from sc, which the request now owns). */
static void reply_streamed(http_req *r, int status, const char *ctype, struct stream_ctx sc)
{
    struct stream_ctx *p = malloc(sizeof *p);
    if (!p) {
        if (sc.free_cls) sc.free_cls(sc.cls);
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    *p = sc;
    r->sc = p;
    http_add_header(r, "Cache-Control", "no-cache");
    http_add_header(r, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    queue(r, status, ctype, NULL, 0, NULL);
}

void http_reply_stream(http_req *r, int status, const char *ctype, http_stream_fn fn, void *cls,
                       void (*free_cls)(void *))
{
    reply_streamed(r, status, ctype, (struct stream_ctx){fn, NULL, cls, free_cls});
}

void http_reply_pieces(http_req *r, int status, const char *ctype, http_piece_fn fn, void *cls,
                       void (*free_cls)(void *))
{
    reply_streamed(r, status, ctype, (struct stream_ctx){NULL, fn, cls, free_cls});
}

void http_reply_json(http_req *r, int status, json_t *body)
{
    char *text = jtext(body, NULL);
    json_decref(body);
    if (!text) {
        http_reply_error(r, 500, "internal", "could not encode the response");
        return;
    }
    queue(r, status, "application/json; charset=utf-8", text, strlen(text), text);
}

void http_reply_json_text(http_req *r, int status, char *text, size_t len)
{
    queue(r, status, "application/json; charset=utf-8", text, len, text);
}

/* Copies in to out (outlen > 0), each byte that is not part of valid UTF-8 (and, with controls,
 * each control character) written as \xNN, so that a client's bytes (a path, an id) can go into
 * a JSON string or a log line. Truncates. */
static void utf8_clean(const char *in, char *out, size_t outlen, bool controls)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    while (*p) {
        size_t n = utf8_seq_len(p, SIZE_MAX);
        if (n == 0 || (controls && (*p < 0x20 || *p == 0x7F))) {
            if (o + 4 >= outlen) break;
            snprintf(out + o, outlen - o, "\\x%02X", *p);
            o += 4;
            p++;
            continue;
        }
        if (o + n >= outlen) break;
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
}

static bool has_header(const http_req *r, const char *name)
{
    for (int i = 0; i < r->nhdrs; i++)
        if (!strcasecmp(r->hdrs[i][0], name)) return true;
    return false;
}

void http_reply_error(http_req *r, int status, const char *code, const char *fmt, ...)
{
    char raw[1024], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    utf8_clean(raw, msg, sizeof msg, false);
    atomic_fetch_add(&r->s->errors, 1);
    /* "Try again later" answers say when. */
    if ((status == 503 || status == 429) && !has_header(r, "Retry-After"))
        http_add_header(r, "Retry-After", RETRY_AFTER_S);
    json_t *o = json_pack("{s:s, s:s}", "error", msg, "code", code);
    char *text = jtext(o, NULL);
    json_decref(o);
    if (!text) { /* out of memory: still answer */
        static const char fallback[] = "{\"error\":\"internal error\",\"code\":\"internal\"}";
        queue(r, status, "application/json; charset=utf-8", fallback, sizeof fallback - 1, NULL);
        return;
    }
    queue(r, status, "application/json; charset=utf-8", text, strlen(text), text);
    if (status >= 500)
        log_warn("http", "%s %s -> %d %s rid=%s", r->method, r->path, status, msg, r->rid);
}

/* ---- protocol upgrades ---- */

void http_reply_upgrade(http_req *r, http_upgrade_fn fn, void *cls)
{
    r->upgrade = fn;
    r->upgrade_cls = cls;
    queue(r, 101, NULL, NULL, 0, NULL);
}

/* The http_upgrade handed to the application is the request itself: its thread frees it once
 * this has been called. */
void http_upgrade_close(http_upgrade *up)
{
    http_req *r = (http_req *)up;
    atomic_store(&r->upgrade_done, true);
    enqueue(r);
}

bool http_stopping(http_req *r)
{
    return atomic_load(&r->s->stopping);
}

void http_on_done(http_req *r, void (*fn)(void *), void *arg)
{
    r->on_done = fn;
    r->on_done_arg = arg;
}
static bool valid_rid(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > RID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool is_json_type(const char *ct)
{
    if (!ct) return false;
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    if (n == 16 && !strncasecmp(ct, "application/json", 16)) return true;
    /* application/<anything>+json */
    return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

/* Answers 415 unless the request says its body is JSON. */
static bool check_json_type(http_req *r)
{
    const char *ct = http_header(r, "Content-Type");
    if (is_json_type(ct)) return true;
    http_reply_error(r, 415, "unsupported_media_type",
                     "Content-Type must be application/json (got %.80s)", ct ? ct : "none");
    return false;
}

struct framing {
    int content_length; /* how many Content-Length headers */
    const char *first_cl;
    bool cl_differ;
    int transfer_encodings; /* how many Transfer-Encoding headers */
    const char *te;         /* the (first) Transfer-Encoding value */
    int hosts;              /* how many Host headers */
    int origins;            /* how many Origin headers */
    int proxy_users;        /* how many of the trusted proxy's user header (trusted_proxy_header) */
};

static void count_framing(const http_req *r, struct framing *f)
{
    memset(f, 0, sizeof *f);
    const char *who = r->s->cfg->trusted_proxy_header;
    for (size_t i = 0; i < r->nhdr; i++) {
        const char *key = r->hdr[i][0], *value = r->hdr[i][1];
        if (!strcasecmp(key, "Host")) f->hosts++;
        if (!strcasecmp(key, "Origin")) f->origins++;
        if (who[0] && !strcasecmp(key, who)) f->proxy_users++;
        if (!strcasecmp(key, "Content-Length")) {
            if (f->content_length++ == 0)
                f->first_cl = value;
            else if (strcmp(f->first_cl, value) != 0)
                f->cl_differ = true;
        } else if (!strcasecmp(key, "Transfer-Encoding")) {
            if (!f->transfer_encodings++) f->te = value;
        }
    }
}

static bool state_changing(const char *method)
{
    return !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH") ||
           !strcmp(method, "DELETE");
}

/* Refuses a request with 400 and closes the connection after it: what follows its headers
 * cannot be trusted to be where the next request starts. */
static void refuse_framing(http_req *r, const char *what)
{
    http_add_header(r, "Connection", "close");
    http_reply_error(r, 400, "bad_request", "%s", what);
}

/* What the request line and headers must be, whatever the route (the strict edge). false once
 * it has answered. */
static bool check_request(http_req *r, const struct framing *f)
{
    http_server *s = r->s;
    if (f->hosts > 1 || f->origins > 1) { /* which one would a check trust? */
        refuse_framing(r,
                       f->hosts > 1 ? "more than one Host header" : "more than one Origin header");
        return false;
    }
    if (f->proxy_users > 1) {
        /* Which one names the user? A proxy that adds its own after the client's would make
         * the first, the client's, win. Refused from any address. */
        char msg[200];
        snprintf(msg, sizeof msg, "more than one %s header (trusted_proxy_header)",
                 s->cfg->trusted_proxy_header);
        refuse_framing(r, msg);
        return false;
    }
    const char *host = http_header(r, "Host");
    if (!host && r->minor >= 1) {
        refuse_framing(r, "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)");
        return false;
    }
    if (host && s->loopback && !origin_host_allowed(s->cfg, host)) {
        char h[120];
        utf8_clean(host, h, sizeof h, true);
        http_reply_error(r, 421, "misdirected_host",
                         "this server is bound to loopback and does not answer for host \"%s\" "
                         "(a page on another domain may be trying to reach it through DNS "
                         "rebinding); to allow it, add it to allowed_hosts in config.yaml "
                         "(env GOOSE_ALLOWED_HOSTS)",
                         h);
        return false;
    }
    return true;
}

/* How the body is framed (RFC 9112 section 6.3): r->cl_left or r->chunked set. Two lengths, or
 * a length and chunked framing, are how requests are smuggled past a proxy that reads them
 * differently: both refused, and codings not read here. false once it has answered. */
static bool check_framing(http_req *r, const struct framing *f)
{
    if (f->cl_differ || (f->content_length && f->transfer_encodings)) {
        refuse_framing(r, f->cl_differ ? "conflicting Content-Length headers"
                                       : "both Content-Length and Transfer-Encoding given");
        return false;
    }
    if (f->transfer_encodings > 1) { /* together "chunked, chunked": chunked applied twice */
        refuse_framing(r, "more than one Transfer-Encoding header");
        return false;
    }
    if (f->transfer_encodings) {
        if (strcasecmp(f->te, "chunked") != 0) {
            char te[100], msg[200];
            utf8_clean(f->te, te, sizeof te, true);
            snprintf(msg, sizeof msg, "Transfer-Encoding \"%s\" is not supported: only chunked",
                     te);
            refuse_framing(r, msg);
            return false;
        }
        r->chunked = true;
        r->framed = true;
        return true;
    }
    const char *cl = f->first_cl;
    if (!cl) {
        r->framed = true;
        return true;
    }
    size_t digits = strspn(cl, "0123456789");
    if (digits == 0 || cl[digits]) {
        refuse_framing(r, "Content-Length must be a whole number");
        return false;
    }
    errno = 0;
    unsigned long long n = strtoull(cl, NULL, 10);
    unsigned long long max = (unsigned long long)r->s->cfg->max_body_size;
    /* Over the limit but not absurd: read and drop the body, then answer 413. Answering at once
     * makes the server close a socket the client is still writing to, and the client then sees
     * a reset instead of the 413 (nginx's lingering close solves the same). */
    if (errno || n > BODY_DRAIN_MAX(max)) {
        http_add_header(r, "Connection", "close");
        http_reply_error(r, 413, "payload_too_large",
                         "request body is larger than the limit of %ld bytes",
                         r->s->cfg->max_body_size);
        return false;
    }
    r->cl_left = n;
    r->too_big = n > max;
    r->framed = true;
    return true;
}

/* Browsers send Origin (and Sec-Fetch-Site) with cross-site requests; a form or a fetch from
 * another site must not change anything here (CSRF). Clients that are no browser send neither. */
static bool check_origin(http_req *r)
{
    const char *origin = http_header(r, "Origin");
    const char *site = http_header(r, "Sec-Fetch-Site");
    bool listed = r->origin != NULL;
    if (origin && !listed && !r->origin_own) {
        char o[200];
        utf8_clean(origin, o, sizeof o, true);
        http_reply_error(r, 403, "forbidden_origin",
                         "requests from origin %s may not change anything here: it is neither "
                         "this server nor in cors_origins",
                         o);
        return false;
    }
    if (site && !strcasecmp(site, "cross-site") && !listed) {
        http_reply_error(r, 403, "forbidden_origin",
                         "a cross-site request (Sec-Fetch-Site: cross-site) from an origin not in "
                         "cors_origins may not change anything here");
        return false;
    }
    return true;
}

/* The first call: everything that can be decided from the request line and headers. */
static void begin(http_req *r, const struct framing *f)
{
    http_server *s = r->s;
    log_debug("http", "%s %s started rid=%s", r->method, r->path, r->rid);
    conn_refusal why = conns_refusal(r->c->cn);
    if (why != CONN_OK) {
        bool total = why == CONN_OVER_TOTAL;
        http_add_header(r, "Connection", "close");
        http_reply_error(r, 503, "too_many_connections",
                         "%s has its limit of %ld connections open (%s); try again later",
                         total ? "the server" : r->c->client,
                         total ? s->max_conns : s->cfg->max_connections_per_client,
                         total ? "max_connections" : "max_connections_per_client");
        return;
    }
    if (!check_request(r, f) || !check_framing(r, f)) return;
    router_match(s->routes, s->nroutes, r->method, r->path, &r->m);
    if (r->m.bad_segment) {
        char seg[200];
        utf8_clean(r->m.segment, seg, sizeof seg, true);
        http_add_header(r, "Connection", "close"); /* a malformed request: nothing more on it */
        http_reply_error(r, 400, "bad_request", "path segment %d (\"%s\") holds %s",
                         r->m.bad_segment, seg, r->m.why);
        return;
    }
    if (r->query && r->query[0] && !r->qparsed) parse_query(r);
    if (r->qbad) { /* what no handler would take as text: %00 (cut short in C) or not UTF-8 */
        char name[120];
        utf8_clean(r->qbad_name, name, sizeof name, true);
        http_reply_error(r, 400, "bad_request", "query parameter \"%s\" holds %s", name, r->qbad);
        return;
    }
    if (!strcmp(r->method, "OPTIONS") && r->m.path_known) {
        http_add_header(r, "Allow", r->m.allow);
        if (r->origin) {
            http_add_header(r, "Access-Control-Allow-Methods", r->m.allow);
            http_add_header(r, "Access-Control-Allow-Headers",
                            "Content-Type, Authorization, X-Secret-Key, X-Request-Id, "
                            "Last-Event-ID");
            http_add_header(r, "Access-Control-Max-Age", "600");
        }
        http_reply_empty(r, 204);
        return;
    }
    if (s->gate && !s->gate(r, &r->m, r->c->client)) return; /* 401/403/404 sent */
    if (!r->m.route) {
        if (r->m.path_known) {
            http_add_header(r, "Allow", r->m.allow);
            http_reply_error(r, 405, "method_not_allowed",
                             "method %s is not allowed on %s (allowed: %s)", r->method, r->path,
                             r->m.allow);
        } else {
            http_reply_error(r, 404, "not_found", "no such path: %s", r->path);
        }
        return;
    }
    if (r->m.bad_param) { /* an {id} that is no identifier names nothing */
        http_reply_error(r, 404, "not_found", "%s '%s' not found", r->m.noun,
                         r->m.params[r->m.bad_param - 1]);
        return;
    }
    if (state_changing(r->method)) {
        if (!check_origin(r)) return;
        /* Even with no body: a form posts without one, and a form cannot say application/json.
         * A DELETE or PATCH without a body is the exception (`DELETE /api/sessions/{id}`,
         * `PATCH /api/extensions/{id}/toggle` as the API is written): no form and no request a
         * page may send without asking first (CORS preflight, answered only for cors_origins)
         * has those methods. */
        bool bodiless = (!strcmp(r->method, "DELETE") || !strcmp(r->method, "PATCH")) &&
                        !r->chunked && r->cl_left == 0;
        if (!bodiless && !check_json_type(r)) return;
    }
    if (r->too_big) buf_free(&r->body);
    if (r->cl_left > 0 && (r->m.route->flags & ROUTE_BODY)) check_json_type(r);
}

/* Runs a handler (or a resumed continuation); it must reply or suspend. */
static void run_handler(http_req *r, http_handler fn)
{
    fn(r);
    if (!r->status && !r->cont) {
        log_error("http", "handler for %s %s gave no response", r->method, r->path);
        http_reply_error(r, 500, "internal", "internal error");
    }
}

/* The last call: the body is complete. */
static void dispatch(http_req *r)
{
    const http_route *rt = r->m.route;
    if ((rt->flags & ROUTE_BODY) && r->body.len > 0) {
        if (!check_json_type(r)) return;
        json_error_t jerr;
        r->json =
            json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!r->json) {
            if (json_error_code(&jerr) == json_error_invalid_utf8)
                http_reply_error(r, 400, "invalid_json",
                                 "request body is not valid UTF-8 (at byte %d)", jerr.position);
            else
                http_reply_error(r, 400, "invalid_json",
                                 "request body is not valid JSON: %s (line %d, column %d)",
                                 jtext_parse_error(&jerr), jerr.line, jerr.column);
            return;
        }
        if (!json_is_object(r->json)) {
            http_reply_error(r, 400, "invalid_json", "request body must be a JSON object");
            return;
        }
    }
    run_handler(r, rt->fn);
}

/* The request's log context and trace context become this thread's (log.h, trace.h). */
static void req_enter(http_req *r)
{
    log_ctx_set(&r->lctx);
    trace_set_current(trace_span_ctx(r->span));
}

/* src (NULL: "") into dst of size n, cut to fit. */
static void copy_str(char *dst, size_t n, const char *src)
{
    size_t l = src ? strnlen(src, n - 1) : 0;
    if (l) memcpy(dst, src, l);
    dst[l] = '\0';
}

/* The request's span: named for its route ("GET /status"), with its outcome. */
static void end_span(http_req *r, const char *path, int aborted)
{
    trace_span *sp = r->span;
    r->span = NULL;
    const char *route = r->m.route ? r->m.route->pattern : NULL;
    if (route) { /* "GET /status" (the span was started with the method as its name) */
        char name[96];
        size_t m = strlen(r->method), n = strnlen(route, sizeof name - m - 2);
        memcpy(name, r->method, m);
        name[m] = ' ';
        memcpy(name + m + 1, route, n);
        name[m + 1 + n] = '\0';
        trace_span_rename(sp, name);
    }
    trace_attr_str(sp, "http.request.method", r->method);
    if (route) trace_attr_str(sp, "http.route", route);
    trace_attr_str(sp, "url.path", path);
    trace_attr_int(sp, "http.response.status_code", r->status);
    trace_attr_str(sp, "goose.request_id", r->rid);
    if (r->lctx.session_id && r->lctx.session_id[0])
        trace_attr_str(sp, "goose.session_id", r->lctx.session_id);
    if (aborted) trace_attr_bool(sp, "goose.aborted", true);
    if (r->status >= 500 || !r->status) trace_set_status(sp, true, NULL);
    trace_span_end(sp);
}

/* Raises the soft open-file limit towards `want` (up to the hard limit); returns how many
 * descriptors the process may now have open (`want` when it cannot tell, or when unlimited). */
static long raise_nofile(long want, long *hard)
{
    struct rlimit rl;
    *hard = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
    *hard = rl.rlim_max == RLIM_INFINITY ? -1 : (long)rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want) {
        rlim_t to = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= (rlim_t)want ? (rlim_t)want
                                                                                : rl.rlim_max;
        struct rlimit nr = {to, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nr) == 0) rl.rlim_cur = to;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)want ? want : (long)rl.rlim_cur;
}

/* Connections held above max_connections: the refused ones, until they are answered. */
static long conn_reserve(long max)
{
    return max / 16 > 16 ? max / 16 : 16;
}

/* Sets s->max_conns to max_connections, or to what the open-file limit can hold (with a
 * warning naming both). Returns the limit of open connections, or -1 with err set. */
static long size_connections(http_server *s, char *err, size_t errlen)
{
    long max = s->cfg->max_connections;
    long want = max + conn_reserve(max) + FD_HEADROOM, hard;
    long have = raise_nofile(want, &hard);
    if (have < want) {
        long avail = have - FD_HEADROOM;
        long fit = avail - (avail / 17 > 16 ? avail / 17 : 16);
        if (fit < 16) {
            snprintf(err, errlen,
                     "the open-file limit is %ld (hard limit %ld): too low to serve even 16 "
                     "connections; raise it (ulimit -n, or LimitNOFILE= in a systemd unit)",
                     have, hard);
            return -1;
        }
        log_warn("http",
                 "max_connections is %ld, but the open-file limit is %ld (hard limit %ld): "
                 "serving at most %ld connections; raise the hard limit to %ld (ulimit -Hn, or "
                 "LimitNOFILE= in a systemd unit)",
                 max, have, hard, fit, want);
        max = fit;
    }
    s->max_conns = max;
    return max + conn_reserve(max);
}

/* Creates, binds and listens on host:port; returns the socket or -1 with err set. */
static int listen_on(const char *host, int port, int *family, char *err, size_t errlen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0) {
            *family = ai->ai_family;
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(saved));
    return fd;
}

/* The request's log and trace contexts become this thread's while fn runs (log.h, trace.h). */
#define WITH_REQ(r, ...)                                                                           \
    do {                                                                                           \
        const log_ctx *lc_ = log_ctx_get();                                                        \
        const trace_ctx *tc_ = trace_current();                                                    \
        req_enter(r);                                                                              \
        __VA_ARGS__;                                                                               \
        log_ctx_set(lc_);                                                                          \
        trace_set_current(tc_);                                                                    \
    } while (0)

/* ---- time, buffers, timeout lists (a connection's own thread only) ---- */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void tl_remove(hconn *c)
{
    tlist *l = c->tl;
    if (!l) return;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        l->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        l->tail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tl = NULL;
}

static void tl_add(tlist *l, hconn *c)
{
    tl_remove(c);
    c->due = mono_ns() + l->ns;
    c->tl = l;
    c->tprev = l->tail;
    c->tnext = NULL;
    if (l->tail)
        l->tail->tnext = c;
    else
        l->head = c;
    l->tail = c;
}

/* The connection's read buffer, taken from the thread's free list when it has none. */
static bool rbuf_ensure(hconn *c)
{
    if (c->rbuf) return true;
    worker *w = c->w;
    c->rbuf = w->nfree ? w->freebufs[--w->nfree] : malloc(RBUF_MIN);
    c->rcap = c->rbuf ? RBUF_MIN : 0;
    c->rlen = c->scanned = 0;
    return c->rbuf != NULL;
}

static void rbuf_put(hconn *c)
{
    if (!c->rbuf) return;
    worker *w = c->w;
    if (c->rcap == RBUF_MIN && w->nfree < RBUF_FREE)
        w->freebufs[w->nfree++] = c->rbuf;
    else
        free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = c->scanned = 0;
}

static void rbuf_consume(hconn *c, size_t n)
{
    memmove(c->rbuf, c->rbuf + n, c->rlen - n);
    c->rlen -= n;
    c->scanned = 0;
}

/* ---- socket I/O, plain or TLS ---- */

enum { IO_AGAIN = -1, IO_EOF = -2, IO_ERR = -3 };

static ssize_t io_read(hconn *c, char *dst, size_t n)
{
    if (c->tls) {
        ssize_t k = gnutls_record_recv(c->tls, dst, n);
        if (k > 0) return k;
        if (k == 0 || k == GNUTLS_E_PREMATURE_TERMINATION) return IO_EOF;
        if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) return IO_AGAIN;
        log_debug("http", "fd %d: TLS read: %s", c->fd, gnutls_strerror((int)k));
        return IO_ERR;
    }
    for (;;) {
        ssize_t k = read(c->fd, dst, n);
        if (k > 0) return k;
        if (k == 0) return IO_EOF;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERR;
    }
}

/* Reads, and keeps c->readable true only while more may be waiting. */
static ssize_t conn_read(hconn *c, char *dst, size_t n)
{
    ssize_t k = io_read(c, dst, n);
    if (k == IO_AGAIN)
        c->readable = false;
    else if (k > 0 && (size_t)k < n && !c->tls && !c->hup)
        c->readable = false; /* drained: the next byte raises a new edge */
    return k;
}

static ssize_t io_writev(hconn *c, const struct iovec *iov, int n)
{
    if (!c->tls) {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
        for (;;) {
            ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL);
            if (k >= 0) return k;
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERR;
        }
    }
    /* GnuTLS: after GNUTLS_E_AGAIN the same bytes are offered again (the caller keeps them) */
    ssize_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len) {
            ssize_t k = gnutls_record_send(c->tls, (const char *)iov[i].iov_base + off,
                                           iov[i].iov_len - off);
            if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) return total ? total : IO_AGAIN;
            if (k < 0) {
                log_debug("http", "fd %d: TLS write: %s", c->fd, gnutls_strerror((int)k));
                return IO_ERR;
            }
            off += (size_t)k;
            total += k;
        }
    }
    return total;
}

/* Writes the pending output (c->ohead, then c->obody). 1: all out; 0: the socket is full (the
 * rest is kept, copied when it was the thread's scratch); -1: the client is gone. */
static int flush_out(hconn *c, bool head_is_scratch)
{
    while (c->ooff < c->oheadlen + c->obodylen) {
        struct iovec iov[2];
        int n = 0;
        if (c->ooff < c->oheadlen)
            iov[n++] = (struct iovec){c->ohead + c->ooff, c->oheadlen - c->ooff};
        size_t boff = c->ooff > c->oheadlen ? c->ooff - c->oheadlen : 0;
        if (c->obodylen > boff)
            iov[n++] = (struct iovec){(void *)(c->obody + boff), c->obodylen - boff};
        ssize_t k = c->writable ? io_writev(c, iov, n) : IO_AGAIN;
        if (k == IO_AGAIN) {
            c->writable = false;
            if (head_is_scratch) { /* keep what is left of the head: the scratch is reused */
                size_t hl = c->ooff < c->oheadlen ? c->oheadlen - c->ooff : 0;
                char *copy = hl ? malloc(hl) : NULL;
                if (hl && !copy) return -1;
                if (hl) memcpy(copy, c->ohead + c->ooff, hl);
                c->obody += boff;
                c->obodylen -= boff;
                c->ohead = copy;
                c->oheadlen = hl;
                c->ooff = 0;
            }
            return 0;
        }
        if (k < 0) {
            if (head_is_scratch) c->ohead = NULL; /* not ours to free */
            return -1;
        }
        c->ooff += (size_t)k;
    }
    if (!head_is_scratch) free(c->ohead);
    c->ohead = NULL;
    c->obody = NULL;
    c->oheadlen = c->obodylen = c->ooff = 0;
    return 1;
}

/* ---- the reply's head ---- */

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

static const char *http_date(worker *w)
{
    time_t now = time(NULL);
    if (now != w->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->date_at = now;
    }
    return w->date;
}

/* Appends the strings (up to a NULL) to out at *n (cap bytes); false when they do not fit (then
 * *n is cap). */
static bool put(char *out, size_t cap, size_t *n, ...)
{
    va_list ap;
    va_start(ap, n);
    bool ok = true;
    for (const char *p; (p = va_arg(ap, const char *));) {
        size_t l = strlen(p);
        if (l > cap - *n) {
            *n = cap;
            ok = false;
            break;
        }
        memcpy(out + *n, p, l);
        *n += l;
    }
    va_end(ap);
    return ok;
}

static bool header_is(const http_req *r, const char *name, const char *value)
{
    for (int i = 0; i < r->nhdrs; i++)
        if (!strcasecmp(r->hdrs[i][0], name) && !strcasecmp(r->hdrs[i][1], value)) return true;
    return false;
}

/* Writes the reply's head into out; decides whether the connection closes after it. */
static size_t build_head(hconn *c, http_req *r, char *out)
{
    size_t n = 0, cap = HEAD_OUT_MAX;
    int st = r->status;
    bool stream = r->sc != NULL;
    if (header_is(r, "Connection", "close") || !r->keep || (stream && r->minor == 0) || !r->framed)
        c->close_after = true;
    char code[8];
    snprintf(code, sizeof code, "%d ", st < 100 || st > 999 ? 500 : st);
    put(out, cap, &n, "HTTP/1.1 ", code, http_reason(st), "\r\nDate: ", http_date(c->w), "\r\n",
        NULL);
    if (r->ctype) put(out, cap, &n, "Content-Type: ", r->ctype, "\r\n", NULL);
    put(out, cap, &n, "X-Request-Id: ", r->rid, "\r\n", NULL);
    if (r->origin)
        put(out, cap, &n, "Access-Control-Allow-Origin: ", r->origin,
            "\r\nAccess-Control-Expose-Headers: X-Request-Id, X-Total-Count, Location, "
            "Link\r\nVary: Origin\r\n",
            NULL);
    bool own_connection = false;
    for (int i = 0; i < r->nhdrs; i++) {
        if (!strcasecmp(r->hdrs[i][0], "Connection")) own_connection = true;
        put(out, cap, &n, r->hdrs[i][0], ": ", r->hdrs[i][1], "\r\n", NULL);
    }
    if (st == 101)
        put(out, cap, &n, "Connection: Upgrade\r\n", NULL);
    else if (stream) {
        if (r->minor >= 1) put(out, cap, &n, "Transfer-Encoding: chunked\r\n", NULL);
    } else if (st >= 200 && st != 204 && st != 304) {
        char len[24];
        snprintf(len, sizeof len, "%zu", r->rbodylen);
        put(out, cap, &n, "Content-Length: ", len, "\r\n", NULL);
    }
    if (st != 101 && !own_connection) {
        if (c->close_after)
            put(out, cap, &n, "Connection: close\r\n", NULL);
        else if (r->minor == 0)
            put(out, cap, &n, "Connection: keep-alive\r\n", NULL);
    }
    if (!put(out, cap, &n, "\r\n", NULL)) {
        log_error("http", "the reply head to %s %s is over %u bytes; sent as a 500", r->method,
                  r->path, HEAD_OUT_MAX);
        n = 0;
        put(out, cap, &n,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            NULL);
        c->close_after = true;
        r->upgrade = NULL;
        r->status = 500;
        r->rbodylen = 0;
        r->resp_len = 0;
    }
    return n;
}

/* ---- a request's start and end ---- */

/* Whether the comma-separated header value holds token (case-insensitively). */
static bool has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tl && !strncasecmp(p, token, tl)) return true;
        p += n;
    }
    return false;
}

/* A request from the parsed head (hlen bytes of c->rbuf, h): its head is copied, compacted, so
 * that the read buffer can go. NULL when out of memory. */
static http_req *req_new(hconn *c, const h1_head *h, size_t hlen)
{
    http_server *s = c->w->s;
    http_req *r = calloc(1, sizeof *r);
    size_t nh = h->nheaders;
    char *blk = r ? malloc(nh * sizeof *r->hdr + hlen + 1) : NULL;
    if (!blk) {
        free(r);
        return NULL;
    }
    r->s = s;
    r->c = c;
    r->w = c->w;
    r->blk = blk;
    r->hdr = (const char *(*)[2])blk;
    r->nhdr = nh;
    char *copy = blk + nh * sizeof *r->hdr;
    memcpy(copy, c->rbuf, hlen);
    copy[hlen] = '\0';
#define AT(p) (copy + ((p)-c->rbuf))
    char *m = AT(h->method);
    m[h->mlen] = '\0';
    r->method = m;
    char *t = AT(h->target);
    t[h->tlen] = '\0';
    char *q = strpbrk(t, "?#");
    if (q && *q == '?') {
        r->query = q + 1;
        char *hash = strchr(q + 1, '#');
        if (hash) *hash = '\0';
    }
    if (q) *q = '\0';
    r->path = t;
    for (size_t i = 0; i < nh; i++) {
        char *name = AT(h->headers[i].name), *value = AT(h->headers[i].value);
        name[h->headers[i].nlen] = '\0';
        value[h->headers[i].vlen] = '\0';
        r->hdr[i][0] = name;
        r->hdr[i][1] = value;
    }
#undef AT
    r->minor = h->minor;
    r->is_head = !strcmp(r->method, "HEAD");
    const char *cv = http_header(r, "Connection");
    r->keep = r->minor >= 1 ? !has_token(cv, "close") : has_token(cv, "keep-alive");
    const char *expect = http_header(r, "Expect");
    r->expect = r->minor >= 1 && expect && !strcasecmp(expect, "100-continue");
    r->t0 = clock_mono_ns();
    buf_init(&r->body, (size_t)s->cfg->max_body_size);
    const char *rid = http_header(r, "X-Request-Id");
    if (rid && valid_rid(rid))
        snprintf(r->rid, sizeof r->rid, "%s", rid);
    else
        ids_request_id(r->rid);
    r->lctx.request_id = r->rid;
    if (trace_enabled()) { /* the client's traceparent makes this request a child of its span */
        trace_ctx parent;
        if (trace_parse_traceparent(http_header(r, "traceparent"), &parent))
            trace_set_tracestate(&parent, http_header(r, "tracestate"));
        r->span = trace_span_start(r->method, TRACE_SERVER, &parent);
        if (r->span) trace_id_hex(trace_span_ctx(r->span), r->lctx.trace_id);
    }
    const char *origin = http_header(r, "Origin");
    r->origin = origin_listed(s->cfg, origin);
    r->origin_own = origin_is_own(s->cfg, s->port, s->tls_on, origin);
    atomic_fetch_add(&s->inflight, 1);
    return r;
}

/* A request for a head that could not be parsed: what it has, for the error and the log. */
static http_req *req_refused(hconn *c)
{
    http_server *s = c->w->s;
    http_req *r = calloc(1, sizeof *r);
    char *blk = r ? strdup("-") : NULL;
    if (!blk) {
        free(r);
        return NULL;
    }
    r->s = s;
    r->c = c;
    r->w = c->w;
    r->blk = blk;
    r->method = blk;
    r->path = blk;
    r->minor = 1;
    r->t0 = clock_mono_ns();
    ids_request_id(r->rid);
    r->lctx.request_id = r->rid;
    atomic_fetch_add(&s->inflight, 1);
    return r;
}

static void req_free(http_req *r)
{
    if (r->on_done) r->on_done(r->on_done_arg);
    if (r->sc) {
        if (r->sc->free_cls) r->sc->free_cls(r->sc->cls);
        free(r->sc);
    }
    trace_span_discard(r->span);
    buf_free(&r->body);
    json_decref(r->json);
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i][0]);
        free(r->hdrs[i][1]);
    }
    free(r->state);
    free(r->rbody_owned);
    free(r->qbuf);
    free(r->qkv);
    free(r->blk);
    worker *w = r->w;
    pthread_mutex_lock(&w->mu);
    bool queued = r->queued; /* a resume is on its way: the queue frees it */
    if (queued) r->zombie = true;
    pthread_mutex_unlock(&w->mu);
    if (!queued) free(r);
}

/* The request is finished with (aborted: 0, or why not completed, as the access log says):
 * metrics, span, access log, then freed. */
static void req_finish(hconn *c, int aborted)
{
    http_req *r = c->r;
    if (!r) return;
    c->r = NULL;
    http_server *s = r->s;
    uint64_t ns = clock_mono_ns() - r->t0;
    metrics_http_done(s->routes, r->m.route ? (long)(r->m.route - s->routes) : -1, r->method,
                      r->status, ns);
    bool logged = log_enabled(LOG_INFO, "access");
    char path[1024]; /* the client's bytes: one log line whatever they are */
    if (logged || r->span) utf8_clean(r->path, path, sizeof path, true);
    const log_ctx *lc = log_ctx_set(&r->lctx);
    if (r->span) end_span(r, path, aborted);
    if (logged) { /* copied here, written by the log's thread (core/log.h) */
        log_access_rec a;
        copy_str(a.client, sizeof a.client, c->client);
        copy_str(a.method, sizeof a.method, r->method);
        copy_str(a.path, sizeof a.path, path);
        a.status = r->status;
        a.bytes = r->resp_len;
        a.ms = (double)ns / 1e6;
        copy_str(a.rid, sizeof a.rid, r->rid);
        a.aborted = aborted;
        copy_str(a.session_id, sizeof a.session_id, r->lctx.session_id);
        copy_str(a.user, sizeof a.user, r->lctx.user);
        copy_str(a.trace_id, sizeof a.trace_id, r->lctx.trace_id);
        log_access(&a);
    }
    req_free(r);
    log_ctx_set(lc);
    if (atomic_fetch_sub(&s->inflight, 1) == 1 && atomic_load(&s->stopping)) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->mu);
    }
}

enum { ABORT_ERROR = 1, ABORT_CLIENT = 5 }; /* the access log's aborted= */

/* ---- the connection ---- */

/* Closes the connection now (its request, if any, aborted); freed after this round of events. */
static void conn_close(hconn *c)
{
    if (c->closed) return;
    worker *w = c->w;
    if (c->r) req_finish(c, ABORT_CLIENT);
    c->closed = true;
    tl_remove(c);
    if (c->deadline) conns_headers_done(w->s->conns, c->cn);
    conns_close(w->s->conns, c->cn); /* before the close: the sweeper may shut fd down till then */
    c->cn = NULL;
    metrics_gauge_add(MG_CONNECTIONS, -1);
    conn_tls_end(c);
    /* Out of the epoll set before the close: epoll watches the open file, not the descriptor, and a
     * child forked for a tool holds a copy of every descriptor until its exec -- the closed
     * connection's events would then still come, for a struct already freed. */
    loop_fd_del(c->lw);
    c->lw = NULL;
    if (c->rl) { /* its fds are upgrade_finish's (or workers_free's) to close */
        loop_fd_del(c->rl->lw);
        c->rl->lw = NULL;
    }
    close(c->fd);
    c->fd = -1;
    rbuf_put(c);
    if (c->ohead) free(c->ohead);
    c->ohead = NULL;
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        w->all = c->anext;
    if (c->anext) c->anext->aprev = c->aprev;
    c->anext = w->graves;
    w->graves = c;
}

/* The reply is out: the connection closes (reading first what the client still sends, so that
 * it gets the reply rather than a reset), or waits for the next request. */
static void request_done(hconn *c, int aborted)
{
    req_finish(c, aborted);
    c->head_sent = false;
    c->stream_end = false;
    c->chunk_open = false;
    c->head_held = 0;
    if (aborted) {
        conn_close(c);
        return;
    }
    if (c->close_after) {
        if (c->tls) gnutls_bye(c->tls, GNUTLS_SHUT_WR); /* best effort: non-blocking */
        shutdown(c->fd, SHUT_WR);
        c->state = ST_LINGER;
        c->lingered = 0;
        rbuf_put(c);
        tl_add(&c->w->linger, c);
        return;
    }
    c->state = ST_HEAD;
    if (!c->rlen) {
        rbuf_put(c);
        tl_add(&c->w->idle, c);
    }
}

static void send_continue(hconn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec iov = {(void *)cont, sizeof cont - 1};
    ssize_t k = io_writev(c, &iov, 1);
    if (k != (ssize_t)sizeof cont - 1) c->close_after = true; /* cannot happen on a fresh socket */
}

/* The body is in (or there is none): the handler runs unless the request was answered. */
static void body_done(hconn *c)
{
    http_req *r = c->r;
    http_server *s = c->w->s;
    if (c->deadline) {
        conns_headers_done(s->conns, c->cn);
        c->deadline = false;
    }
    if (!c->rlen) rbuf_put(c);
    if (!r->status)
        WITH_REQ(r, {
            if (r->too_big)
                http_reply_error(r, 413, "payload_too_large",
                                 "request body is larger than the limit of %ld bytes",
                                 s->cfg->max_body_size);
            else
                dispatch(r);
        });
    c->state = r->status ? ST_SEND : ST_HANDLER;
}

/* Answers a head that could not be parsed (rc, an H1_* error), once, then closes. */
static void refuse_head(hconn *c, long rc, const h1_head *h)
{
    http_req *r = req_refused(c);
    if (!r) {
        conn_close(c);
        return;
    }
    c->r = r;
    c->rlen = 0; /* nothing after it can be trusted */
    http_add_header(r, "Connection", "close");
    WITH_REQ(r, {
        if (rc == H1_TARGET_TOO_LONG)
            http_reply_error(r, 414, "uri_too_long", "the request line is longer than %u bytes",
                             HEAD_MAX);
        else if (rc == H1_HEAD_TOO_BIG)
            http_reply_error(r, 431, "headers_too_large",
                             "the request headers are larger than %u bytes (or more than %d "
                             "fields)",
                             HEAD_MAX, H1_MAX_HEADERS);
        else if (rc == H1_VERSION)
            http_reply_error(r, 505, "http_version_not_supported",
                             "only HTTP/1.1 and HTTP/1.0 are served here");
        else if (h->bad) {
            char name[64], clean[300];
            size_t n = h->badlen < sizeof name - 1 ? h->badlen : sizeof name - 1;
            memcpy(name, h->bad, n);
            name[n] = '\0';
            utf8_clean(name, clean, sizeof clean, true);
            http_reply_error(r, 400, "bad_request", "malformed header \"%s\": %s", clean, h->why);
        } else
            http_reply_error(r, 400, "bad_request", "malformed request: %s",
                             h->why ? h->why : "unparseable");
    });
    r->framed = true;
    c->close_after = true;
    c->state = ST_SEND;
}

/* The head is parsed (hlen bytes): the request starts. */
static void head_done(hconn *c, long hlen, const h1_head *h)
{
    http_server *s = c->w->s;
    if (c->deadline) {
        conns_headers_done(s->conns, c->cn);
        c->deadline = false;
    }
    http_req *r = req_new(c, h, (size_t)hlen);
    if (!r) {
        log_error("http", "out of memory for a request; closing its connection");
        conn_close(c);
        return;
    }
    rbuf_consume(c, (size_t)hlen);
    c->r = r;
    struct framing f;
    count_framing(r, &f);
    WITH_REQ(r, {
        log_debug("http", "%s %s started rid=%s", r->method, r->path, r->rid);
        begin(r, &f);
        if (!r->status && r->too_big && r->expect) {
            http_add_header(r, "Connection", "close");
            http_reply_error(r, 413, "payload_too_large",
                             "request body is larger than the limit of %ld bytes",
                             s->cfg->max_body_size);
        }
    });
    bool body = r->chunked || r->cl_left > 0;
    if (r->status && (!r->framed || header_is(r, "Connection", "close") || (body && r->expect))) {
        c->close_after = true; /* answered at once; the body, if any, is never read */
        c->state = ST_SEND;
        return;
    }
    if (body) {
        if (r->expect && !r->status) send_continue(c);
        c->state = ST_BODY;
        conns_body_wait(s->conns, c->cn); /* each piece of the body is due within the deadline */
        c->deadline = c->cn != NULL;
        return;
    }
    body_done(c);
}

static void conn_tls_end(hconn *c)
{
    if (c->tls) gnutls_deinit(c->tls);
    c->tls = NULL;
    keys_unref(c->keys);
    c->keys = NULL;
}

/* ---- the connection's steps: each returns true when it made progress ---- */

static bool step_handshake(hconn *c)
{
    int rc = gnutls_handshake(c->tls);
    if (rc == GNUTLS_E_SUCCESS) {
        c->state = ST_HEAD;
        c->readable = true;
        return true;
    }
    if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        if (gnutls_record_get_direction(c->tls) == 0)
            c->readable = false;
        else
            c->writable = false;
        return c->readable && c->writable;
    }
    if (!gnutls_error_is_fatal(rc)) return true;
    log_debug("http", "fd %d: TLS handshake with %s failed: %s", c->fd, c->client,
              gnutls_strerror(rc));
    /* The client is told why (a certificate required or refused, no common cipher...), as far
     * as the socket takes the alert now: the close follows either way. */
    if (rc != GNUTLS_E_UNEXPECTED_PACKET_LENGTH && rc != GNUTLS_E_PREMATURE_TERMINATION)
        gnutls_alert_send_appropriate(c->tls, rc);
    /* closed after reading what the client sent (plain HTTP, say): a close with unread bytes
     * would reset the connection */
    conn_tls_end(c);
    shutdown(c->fd, SHUT_WR);
    c->state = ST_LINGER;
    c->lingered = 0;
    tl_add(&c->w->linger, c);
    return true;
}

static bool step_head(hconn *c)
{
    worker *w = c->w;
    if (c->rlen > c->scanned) {
        long rc = h1_parse_head(c->rbuf, c->rlen, HEAD_MAX, c->scanned, &w->h);
        if (rc > 0) {
            head_done(c, rc, &w->h);
            return true;
        }
        if (rc < 0) {
            refuse_head(c, rc, &w->h);
            return true;
        }
        c->scanned = c->rlen;
        if (!c->deadline) { /* the head comes in pieces: its deadline runs */
            conns_body_wait(w->s->conns, c->cn);
            c->deadline = c->cn != NULL;
        }
    }
    if (!c->readable) return false;
    if (!rbuf_ensure(c)) {
        conn_close(c);
        return false;
    }
    if (c->rlen == c->rcap) {
        char *nb = realloc(c->rbuf, c->rcap * 2);
        if (!nb) {
            conn_close(c);
            return false;
        }
        c->rbuf = nb;
        c->rcap *= 2;
    }
    ssize_t k = conn_read(c, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (k > 0) {
        if (c->tl == &w->idle) tl_remove(c);
        c->rlen += (size_t)k;
        return true;
    }
    if (k == IO_AGAIN) {
        if (!c->rlen) rbuf_put(c);
        return false;
    }
    conn_close(c); /* the client went away (between requests, or in a head) */
    return false;
}

/* Takes n body bytes at data. false when past what is read and dropped. */
static bool body_piece(hconn *c, const char *data, size_t n)
{
    http_req *r = c->r;
    if (!n) return true;
    if (!r->status && !r->too_big && buf_append(&r->body, data, n) == GD_OK) return true;
    if (!r->too_big && !r->status) buf_free(&r->body);
    r->too_big = r->too_big || !r->status;
    r->dropped += n;
    return r->dropped <= BODY_DRAIN_MAX(r->s->cfg->max_body_size);
}

static bool step_body(hconn *c)
{
    http_req *r = c->r;
    if (c->rlen) {
        bool done, ok;
        if (r->chunked) {
            size_t data = 0, used = 0;
            int rc = h1_chunked_decode(&r->dec, c->rbuf, c->rlen, &data, &used);
            ok = body_piece(c, c->rbuf, data);
            rbuf_consume(c, used);
            if (rc < 0) {
                if (!r->status)
                    WITH_REQ(r, http_reply_error(r, 400, "bad_request",
                                                 "malformed chunked body (a chunk size that is "
                                                 "not hexadecimal, or a missing CRLF)"));
                c->close_after = true;
                c->rlen = 0;
                c->state = ST_SEND;
                return true;
            }
            done = rc == 1;
        } else {
            size_t n = c->rlen < r->cl_left ? c->rlen : (size_t)r->cl_left;
            ok = body_piece(c, c->rbuf, n);
            rbuf_consume(c, n);
            r->cl_left -= n;
            done = r->cl_left == 0;
        }
        if (!ok) {
            log_info("http", "%s %s: the body went on past %llu bytes dropped; closing", r->method,
                     r->path, r->dropped);
            if (r->status) { /* answered already (not a 413): nothing more to say */
                request_done(c, ABORT_ERROR);
                return false;
            }
            /* A chunked body (its size unknown at its head) past what is dropped: the 413 all
             * the same, then the lingering close (the client may still be writing). */
            http_add_header(r, "Connection", "close");
            WITH_REQ(r, http_reply_error(r, 413, "payload_too_large",
                                         "request body is larger than the limit of %ld bytes",
                                         r->s->cfg->max_body_size));
            c->close_after = true;
            c->rlen = 0;
            c->state = ST_SEND;
            return true;
        }
        if (done) {
            body_done(c);
            return true;
        }
    }
    if (!c->readable) return false;
    if (!rbuf_ensure(c)) {
        conn_close(c);
        return false;
    }
    ssize_t k = conn_read(c, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (k > 0) {
        c->rlen += (size_t)k;
        conns_body_wait(c->w->s->conns, c->cn); /* the next piece is due within the deadline */
        c->deadline = c->cn != NULL;
        return true;
    }
    if (k == IO_AGAIN) return false;
    conn_close(c);
    return false;
}

static void upgrade_now(hconn *c);

static bool step_send(hconn *c)
{
    http_req *r = c->r;
    bool scratch = false;
    if (!c->head_sent) {
        c->head_sent = true;
        size_t n = build_head(c, r, c->w->scratch);
        if (r->sc && r->sc->piece && !r->is_head && r->status != 500) {
            /* the head goes with the first piece: one write, one wake-up of the client */
            c->head_held = n;
            c->state = ST_STREAM;
            return true;
        }
        c->ohead = c->w->scratch;
        c->oheadlen = n;
        c->ooff = 0;
        bool nobody = r->is_head || r->sc || r->status == 101;
        c->obody = nobody ? NULL : r->rbody;
        c->obodylen = nobody ? 0 : r->rbodylen;
        scratch = true;
    }
    int rc = flush_out(c, scratch);
    if (rc < 0) {
        request_done(c, ABORT_CLIENT);
        return false;
    }
    if (rc == 0) return false;
    if (r->status == 101 && r->upgrade) {
        upgrade_now(c);
        return false;
    }
    if (r->sc && !r->is_head && r->status != 500) {
        c->state = ST_STREAM;
        return true;
    }
    request_done(c, 0);
    return true;
}

#define CHUNK_PRE 18 /* room before a streamed piece for its chunk size line */
/* Asking the stream for more in the same send: only while at least this much room is left. */
#define STREAM_MORE_MIN 256

/* Writes a streamed reply's next part: head (in the thread's scratch) then body (the stream's,
 * or NULL). true when all of it went; what the socket did not take waits for it to be writable. */
static bool stream_out(hconn *c, char *head, size_t headlen, const char *body, size_t bodylen)
{
    c->ohead = head;
    c->oheadlen = headlen;
    c->obody = body;
    c->obodylen = bodylen;
    c->ooff = 0;
    int rc = flush_out(c, true);
    if (rc < 0) {
        request_done(c, ABORT_CLIENT);
        return false;
    }
    return rc == 1;
}

/* A stream of pieces the function keeps (http_reply_pieces): each is written from where it
 * is, its chunk's size line (after the CRLF closing the chunk before) in the scratch buffer as the
 * head of one writev. What the socket does not take stays the function's until its next call. */
static bool step_pieces(hconn *c)
{
    http_req *r = c->r;
    const char *data = NULL;
    long m;
    WITH_REQ(r, m = r->sc->piece(r->sc->cls, &data));
    if (m == HTTP_STREAM_ABORT) {
        request_done(c, ABORT_ERROR);
        return false;
    }
    bool chunked = r->minor >= 1; /* HTTP/1.0: the bytes as they come, the end a close */
    char *sb = c->w->scratch;
    size_t at = c->head_held; /* the reply's head, still to go before the rest */
    c->head_held = 0;
    int hl = 0;
    if (m == HTTP_STREAM_END) {
        c->stream_end = true; /* once what is written here has gone */
        if (chunked)
            hl = snprintf(sb + at, CHUNK_PRE + 8, "%s0\r\n\r\n", c->chunk_open ? "\r\n" : "");
        data = NULL;
        m = 0;
    } else if (m <= 0 || !data) {
        r->stream_wait = true; /* the function said it waits (http_stream_wait) */
        if (!at) return true;
        data = NULL; /* the head goes now, alone */
        m = 0;
    } else {
        if (chunked)
            hl = snprintf(sb + at, CHUNK_PRE + 8, "%s%lx\r\n", c->chunk_open ? "\r\n" : "", m);
        c->chunk_open = chunked;
        r->resp_len += (size_t)m;
    }
    return stream_out(c, sb, at + (size_t)hl, data, (size_t)m);
}

static bool step_stream(hconn *c)
{
    http_req *r = c->r;
    if (c->oheadlen || c->obodylen) { /* what the socket did not take last time */
        int rc = flush_out(c, false);
        if (rc < 0) {
            request_done(c, ABORT_CLIENT);
            return false;
        }
        if (rc == 0) return false;
    }
    if (c->stream_end) {
        request_done(c, 0);
        return true;
    }
    if (r->stream_wait) {
        if (c->hup && http_peer_gone(r)) { /* nobody is listening any more */
            request_done(c, ABORT_CLIENT);
            return false;
        }
        return false;
    }
    if (r->sc->piece) return step_pieces(c);
    char *sb = c->w->scratch;
    const char *out;
    size_t len;
    if (r->minor < 1) { /* HTTP/1.0: the bytes as they come, the end a close */
        long n;
        WITH_REQ(r, n = r->sc->fn(r->sc->cls, sb, STREAM_MAX));
        if (n == HTTP_STREAM_END) {
            c->stream_end = true;
            request_done(c, 0);
            return true;
        }
        if (n == HTTP_STREAM_ABORT) {
            request_done(c, ABORT_ERROR);
            return false;
        }
        if (n <= 0 || (size_t)n > STREAM_MAX) {
            r->stream_wait = true; /* the function said it waits (http_stream_wait) */
            return true;
        }
        out = sb;
        len = (size_t)n;
        r->resp_len += (size_t)n;
    } else {
        /* Chunks one after the other in the scratch buffer: what is ready goes in one send, the
         * end too (a reply's last event and the last chunk are one write, and one wake-up of
         * the client). The stream function writes a piece CHUNK_PRE bytes on, leaving room for
         * its size line: the first piece's goes just before it, a later one's moves it up. */
        char *first = NULL, *end = sb, *limit = sb + CHUNK_PRE + STREAM_MAX + 2;
        for (;;) {
            size_t left = (size_t)(limit - end); /* 0 after a whole first piece */
            if (first && left < CHUNK_PRE + 2 + STREAM_MORE_MIN) break;
            size_t room = left - CHUNK_PRE - 2;
            long m;
            WITH_REQ(r, m = r->sc->fn(r->sc->cls, end + CHUNK_PRE, room));
            if (m == HTTP_STREAM_ABORT) {
                request_done(c, ABORT_ERROR);
                return false;
            }
            if (m == HTTP_STREAM_END) {
                if (!first) first = end;
                memcpy(end, "0\r\n\r\n", 5);
                end += 5;
                c->stream_end = true;
                break;
            }
            if (m <= 0 || (size_t)m > room) {
                r->stream_wait = true; /* the function said it waits (http_stream_wait) */
                break;
            }
            char pre[CHUNK_PRE];
            int pl = snprintf(pre, sizeof pre, "%lx\r\n", m);
            if (!first) {
                first = end + CHUNK_PRE - pl;
                memcpy(first, pre, (size_t)pl);
                end += CHUNK_PRE + m;
            } else {
                memmove(end + pl, end + CHUNK_PRE, (size_t)m);
                memcpy(end, pre, (size_t)pl);
                end += pl + m;
            }
            memcpy(end, "\r\n", 2);
            end += 2;
            r->resp_len += (size_t)m;
        }
        if (!first) return true; /* nothing yet: it waits */
        out = first;
        len = (size_t)(end - first);
    }
    return stream_out(c, (char *)out, len, NULL, 0);
}

static bool step_linger(hconn *c)
{
    char sink[4096];
    while (c->readable) {
        ssize_t k = conn_read(c, sink, sizeof sink);
        if (k == IO_AGAIN) return false;
        if (k < 0 || (c->lingered += (size_t)k) > LINGER_BYTES) {
            conn_close(c);
            return false;
        }
    }
    return false;
}

static void conn_run(hconn *c)
{
    for (;;) {
        if (c->closed) return;
        bool more;
        switch (c->state) {
        case ST_HANDSHAKE:
            more = step_handshake(c);
            break;
        case ST_HEAD:
            more = step_head(c);
            break;
        case ST_BODY:
            more = step_body(c);
            break;
        case ST_SEND:
            more = step_send(c);
            break;
        case ST_STREAM:
            more = step_stream(c);
            break;
        case ST_LINGER:
            more = step_linger(c);
            break;
        default:
            return; /* a handler suspended, or upgraded */
        }
        if (!more) return;
    }
}

/* ---- upgrades ---- */

/* Carries bytes between the client's TLS session and the application's socket. */
static void relay_run(hconn *c)
{
    relay *rl = c->rl;
    for (bool progress = true; progress;) {
        progress = false;
        /* client -> application */
        if (rl->inoff < rl->inlen) {
            if (rl->writable) {
                ssize_t k = send(rl->fd, rl->in + rl->inoff, rl->inlen - rl->inoff, MSG_NOSIGNAL);
                if (k > 0) {
                    rl->inoff += (size_t)k;
                    progress = true;
                } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    rl->writable = false;
                else if (k < 0 && errno != EINTR)
                    rl->inoff = rl->inlen; /* the application is gone: dropped */
            }
        } else if (!rl->client_eof && c->readable) {
            if (!rl->in && !(rl->in = malloc(RBUF_MIN))) return;
            ssize_t k = io_read(c, rl->in, RBUF_MIN);
            if (k > 0) {
                rl->inlen = (size_t)k;
                rl->inoff = 0;
                progress = true;
            } else if (k == IO_AGAIN)
                c->readable = false;
            else {
                rl->client_eof = true;
                shutdown(rl->fd, SHUT_WR);
                progress = true;
            }
        }
        /* application -> client */
        if (rl->outoff < rl->outlen) {
            if (c->writable) {
                ssize_t k =
                    gnutls_record_send(c->tls, rl->out + rl->outoff, rl->outlen - rl->outoff);
                if (k > 0) {
                    rl->outoff += (size_t)k;
                    progress = true;
                } else if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
                    c->writable = false;
                else
                    rl->outoff = rl->outlen; /* the client is gone: dropped */
            }
        } else if (!rl->app_eof && rl->readable) {
            if (!rl->out && !(rl->out = malloc(RBUF_MIN))) return;
            ssize_t k = recv(rl->fd, rl->out, RBUF_MIN, 0);
            if (k > 0) {
                rl->outlen = (size_t)k;
                rl->outoff = 0;
                progress = true;
            } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                rl->readable = false;
            else if (k == 0 || errno != EINTR) {
                rl->app_eof = true; /* the application shut its side: so does the client's */
                gnutls_bye(c->tls, GNUTLS_SHUT_WR);
                shutdown(c->fd, SHUT_WR);
                progress = true;
            }
        }
    }
}

/* The 101 is out: the socket (or, over TLS, one end of a socket pair) goes to the application. */
static void upgrade_now(hconn *c)
{
    http_req *r = c->r;
    worker *w = c->w;
    c->state = ST_UPGRADED;
    if (c->deadline) conns_headers_done(w->s->conns, c->cn);
    c->deadline = false;
    conns_retire(w->s->conns, c->cn);
    int fd = c->fd;
    if (!c->tls) {
        loop_fd_del(c->lw);
        c->lw = NULL;
    } else {
        int sv[2];
        relay *rl = calloc(1, sizeof *rl);
        if (!rl || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
            log_error("http", "cannot relay an upgraded TLS connection: %s",
                      rl ? strerror(errno) : "out of memory");
            free(rl);
            request_done(c, ABORT_ERROR);
            return;
        }
        rl->c = c;
        rl->fd = sv[0];
        rl->app_fd = sv[1];
        rl->readable = rl->writable = true;
        rl->lw = loop_fd_add(w->l, rl->fd, LOOP_READ | LOOP_WRITE | LOOP_RDHUP | LOOP_EDGE,
                             relay_io, rl);
        if (!rl->lw) {
            log_error("http", "cannot relay an upgraded TLS connection: %s", strerror(errno));
            close(sv[0]);
            close(sv[1]);
            free(rl);
            request_done(c, ABORT_ERROR);
            return;
        }
        c->rl = rl;
        fd = sv[1];
    }
    WITH_REQ(r,
             r->upgrade(r, r->upgrade_cls, fd, c->rbuf ? c->rbuf : "", c->rlen, (http_upgrade *)r));
    c->rlen = 0;
    rbuf_put(c);
    if (c->rl) relay_run(c);
}

/* http_upgrade_close reached the connection's thread: it ends. */
static void upgrade_finish(hconn *c)
{
    relay *rl = c->rl;
    if (rl) {
        relay_run(c);        /* what the application wrote last, best effort */
        loop_fd_del(rl->lw); /* as in conn_close */
        rl->lw = NULL;
        close(rl->fd);
        close(rl->app_fd);
        free(rl->in);
        free(rl->out);
        rl->in = rl->out = NULL;
        rl->inlen = rl->outlen = rl->inoff = rl->outoff = 0;
        gnutls_bye(c->tls, GNUTLS_SHUT_WR); /* rl itself is freed with c (an event may be due) */
    }
    req_finish(c, 0);
    conn_close(c);
}

/* ---- the threads ---- */

/* Runs what http_resume and http_upgrade_close queued, one at a time. */
static void drain_queue(worker *w)
{
    for (;;) {
        pthread_mutex_lock(&w->mu);
        http_req *r = w->qhead;
        if (!r) {
            w->woken = false;
            pthread_mutex_unlock(&w->mu);
            return;
        }
        w->qhead = r->qnext;
        if (!w->qhead) w->qtail = NULL;
        r->queued = false;
        bool zombie = r->zombie;
        pthread_mutex_unlock(&w->mu);
        if (zombie) {
            free(r);
            continue;
        }
        hconn *c = r->c;
        if (c->state == ST_UPGRADED) {
            if (atomic_load(&r->upgrade_done)) upgrade_finish(c);
        } else if (c->state == ST_HANDLER && r->cont) {
            http_handler k = r->cont;
            r->cont = NULL;
            WITH_REQ(r, run_handler(r, k));
            if (r->status) {
                c->state = ST_SEND;
                conn_run(c);
            }
        } else if (c->state == ST_STREAM && r->stream_wait) {
            r->stream_wait = false;
            conn_run(c);
        }
    }
}

/* Out of descriptors: the listening socket stays readable (its epoll would wake every thread at
 * once, for ever), so the waiting client is accepted on the descriptor kept in reserve and closed
 * at once. */
static void shed_one(http_server *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->reserve_fd >= 0) {
        close(s->reserve_fd);
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) close(fd);
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    time_t now = time(NULL);
    bool say = now != s->shed_logged;
    s->shed_logged = now;
    pthread_mutex_unlock(&s->mu);
    if (say)
        log_warn("http", "out of file descriptors: new connections are closed at once (raise the "
                         "open-file limit, or lower max_connections)");
}

static void accept_some(worker *w)
{
    http_server *s = w->s;
    for (int i = 0; i < ACCEPT_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                shed_one(s);
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("http", "accept: %s", strerror(errno));
            return;
        }
        if (atomic_load(&s->stopping) ||
            conns_open_total(s->conns) >= s->max_conns + conn_reserve(s->max_conns)) {
            close(fd);
            continue;
        }
        hconn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->w = w;
        c->state = ST_HEAD;
        c->readable = c->writable = true;
        const struct sockaddr *sa = (const struct sockaddr *)&ss;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->client,
                      sizeof c->client);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->client,
                      sizeof c->client);
        else
            snprintf(c->client, sizeof c->client, "-");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (s->tls_on) {
            pthread_mutex_lock(&s->tls_mu);
            c->keys = s->keys;
            atomic_fetch_add(&c->keys->refs, 1);
            pthread_mutex_unlock(&s->tls_mu);
            if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0 ||
                gnutls_priority_set(c->tls, s->prio) < 0 ||
                gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->keys->xcred) < 0) {
                log_error("http", "cannot set up a TLS session");
                conn_tls_end(c);
                free(c);
                close(fd);
                continue;
            }
            if (c->keys->verify_client) tls_require_client(c->tls);
            gnutls_transport_set_int(c->tls, fd);
            c->state = ST_HANDSHAKE;
        }
        c->cn = conns_open(s->conns, fd, sa);
        if (!c->cn) log_warn("http", "out of memory: a connection is served without its bounds");
        c->deadline = c->cn != NULL;
        metrics_gauge_add(MG_CONNECTIONS, 1);
        c->anext = w->all;
        if (w->all) w->all->aprev = c;
        w->all = c;
        c->lw = loop_fd_add(w->l, fd, LOOP_READ | LOOP_WRITE | LOOP_RDHUP | LOOP_EDGE, conn_io, c);
        if (!c->lw) {
            log_error("http", "cannot watch a connection: %s", strerror(errno));
            conn_close(c);
            continue;
        }
        conn_run(c);
    }
}

static void conn_event(hconn *c, unsigned ev)
{
    if (c->closed) return;
    if (ev & (LOOP_READ | LOOP_RDHUP | LOOP_HUP | LOOP_ERR)) c->readable = true;
    if (ev & (LOOP_WRITE | LOOP_HUP | LOOP_ERR)) c->writable = true;
    if (ev & (LOOP_RDHUP | LOOP_HUP | LOOP_ERR)) c->hup = true;
    if (c->state == ST_UPGRADED) {
        if (c->rl && !atomic_load(&c->r->upgrade_done)) relay_run(c);
        return;
    }
    conn_run(c);
}

static int next_timeout(worker *w)
{
    uint64_t due = UINT64_MAX;
    if (w->idle.head) due = w->idle.head->due;
    if (w->linger.head && w->linger.head->due < due) due = w->linger.head->due;
    if (due == UINT64_MAX) return -1;
    uint64_t now = mono_ns();
    if (due <= now) return 0;
    uint64_t ms = (due - now) / 1000000 + 10; /* the coarse clock lags by up to a tick */
    return ms > 60000 ? 60000 : (int)ms;
}

static void sweep_timeouts(worker *w)
{
    uint64_t now = mono_ns();
    hconn *c;
    while ((c = w->idle.head) && c->due <= now) {
        log_debug("http", "fd %d: idle for %u s; closing", c->fd, IDLE_TIMEOUT_S);
        conn_close(c);
    }
    while ((c = w->linger.head) && c->due <= now)
        conn_close(c);
}

static void free_graves(worker *w)
{
    while (w->graves) {
        hconn *c = w->graves;
        w->graves = c->anext;
        free(c->rl);
        free(c);
    }
}

/* The loop's callbacks: a connection's socket, a TLS upgrade's relay, the listening socket, the
 * resume queue, and the end of each round of events. */
static void conn_io(loop_fd *lw, int fd, unsigned events, void *ud)
{
    (void)lw, (void)fd;
    conn_event(ud, events);
}

static void relay_io(loop_fd *lw, int fd, unsigned events, void *ud)
{
    (void)lw, (void)fd;
    relay *rl = ud;
    if (events & (LOOP_READ | LOOP_RDHUP | LOOP_HUP | LOOP_ERR)) rl->readable = true;
    if (events & (LOOP_WRITE | LOOP_HUP | LOOP_ERR)) rl->writable = true;
    if (!rl->c->closed && !atomic_load(&rl->c->r->upgrade_done)) relay_run(rl->c);
}

static void listen_io(loop_fd *lw, int fd, unsigned events, void *ud)
{
    (void)lw, (void)fd, (void)events;
    accept_some(ud);
}

static void drain_posted(void *ud)
{
    drain_queue(ud);
}

static int worker_round(void *ud)
{
    worker *w = ud;
    sweep_timeouts(w);
    free_graves(w);
    return next_timeout(w);
}

/* On the worker's new loop: the listening socket watched (one of the loops woken per new
 * connection), and the round function. */
static int worker_init(loop *l, void *ud)
{
    worker *w = ud;
    w->l = l;
    w->lw = loop_fd_add(l, w->s->listen_fd, LOOP_READ | LOOP_EXCLUSIVE, listen_io, w);
    if (!w->lw) {
        w->l = NULL; /* loop_start frees it */
        return errno ? errno : ENOMEM;
    }
    loop_on_round(l, worker_round, w);
    return 0;
}

/* ---- start and stop ---- */

/* Stops the threads: each loop runs what was posted to it, then ends. */
static void workers_stop(http_server *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        worker *w = &s->workers[i];
        pthread_mutex_lock(&w->mu);
        loop *l = w->l;
        w->l = NULL; /* a resume from now on is only queued */
        pthread_mutex_unlock(&w->mu);
        loop_free(l);
    }
}

/* Frees what the threads held (after they stopped): their connections and buffers. Their loops
 * freed the watchers already. */
static void workers_free(http_server *s, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        worker *w = &s->workers[i];
        for (hconn *c = w->all; c; c = c->anext) {
            c->lw = NULL;
            if (c->rl) c->rl->lw = NULL;
        }
        while (w->all) {
            hconn *c = w->all;
            if (c->rl) {
                close(c->rl->fd);
                close(c->rl->app_fd);
                free(c->rl->in);
                free(c->rl->out);
            }
            conn_close(c);
        }
        free_graves(w);
        while (w->qhead) { /* only requests freed with a resume on its way can be left */
            http_req *r = w->qhead;
            w->qhead = r->qnext;
            if (r->zombie) free(r);
        }
        for (int k = 0; k < w->nfree; k++)
            free(w->freebufs[k]);
        pthread_mutex_destroy(&w->mu);
    }
    free(s->workers);
    s->workers = NULL;
}

/* The credentials for the pair in c (one reference), or NULL with err set. */
static tls_keys *keys_new(const tls_creds *c, char *err, size_t errlen)
{
    gnutls_datum_t cert = {(unsigned char *)c->cert_pem, (unsigned)strlen(c->cert_pem)};
    gnutls_datum_t key = {(unsigned char *)c->key_pem, (unsigned)strlen(c->key_pem)};
    tls_keys *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&k->refs, 1);
    int rc = gnutls_certificate_allocate_credentials(&k->xcred);
    if (rc >= 0)
        rc = gnutls_certificate_set_x509_key_mem(k->xcred, &cert, &key, GNUTLS_X509_FMT_PEM);
    const char *what = c->cert_path;
    if (rc >= 0 && c->client_ca_pem) {
        gnutls_datum_t ca = {(unsigned char *)c->client_ca_pem, (unsigned)strlen(c->client_ca_pem)};
        what = "tls_client_ca";
        rc = gnutls_certificate_set_x509_trust_mem(k->xcred, &ca, GNUTLS_X509_FMT_PEM);
        k->verify_client = rc > 0;
        if (rc == 0) rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot set up TLS with %s: %s", what, gnutls_strerror(rc));
        if (k->xcred) gnutls_certificate_free_credentials(k->xcred);
        free(k);
        return NULL;
    }
    return k;
}

static bool tls_setup(http_server *s, char *err, size_t errlen)
{
    const char *where = NULL;
    if (!(s->keys = keys_new(&s->tls, err, errlen))) return false;
    int rc = gnutls_priority_init(&s->prio, TLS_PRIORITIES, &where);
    if (rc < 0) {
        snprintf(err, errlen, "cannot set up TLS: %s", gnutls_strerror(rc));
        keys_unref(s->keys);
        s->keys = NULL;
        return false;
    }
    return true;
}

static void tls_teardown(http_server *s)
{
    if (s->prio) gnutls_priority_deinit(s->prio);
    keys_unref(s->keys); /* the last reference: every connection is closed */
    s->prio = NULL;
    s->keys = NULL;
    tls_creds_free(&s->tls);
}

gd_err http_tls_reload(http_server *s, const config *cfg, char *fingerprint, size_t fplen,
                       char *err, size_t errlen)
{
    if (!s->tls_on) {
        snprintf(err, errlen, "the server does not serve TLS");
        return GD_EINVAL;
    }
    tls_creds fresh;
    gd_err e = tls_load(cfg, &fresh, err, errlen);
    if (e) return e;
    tls_keys *k = keys_new(&fresh, err, errlen);
    if (!k) {
        tls_creds_free(&fresh);
        return GD_EINVAL;
    }
    pthread_mutex_lock(&s->tls_mu);
    tls_keys *old = s->keys;
    tls_creds was = s->tls;
    s->keys = k;
    s->tls = fresh;
    snprintf(fingerprint, fplen, "%s", fresh.fingerprint);
    pthread_mutex_unlock(&s->tls_mu);
    keys_unref(old); /* freed once the connections set up with it have closed */
    tls_creds_free(&was);
    return GD_OK;
}

/* Frees a server that failed to start (nothing running). */
static http_server *start_failed(http_server *s)
{
    if (s->reserve_fd >= 0) close(s->reserve_fd);
    if (s->conns) conns_free(s->conns);
    if (s->listen_fd >= 0) close(s->listen_fd);
    tls_teardown(s);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->tls_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

static bool workers_start(http_server *s, char *err, size_t errlen)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers rarely wait (they suspend); two threads per core absorb those that block briefly
     * (SQLite reads). */
    s->nworkers = (unsigned)(ncpu > 0 ? ncpu * 2 : 2);
    s->workers = calloc(s->nworkers, sizeof *s->workers);
    if (!s->workers) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        worker *w = &s->workers[i];
        w->s = s;
        w->idle.ns = (uint64_t)IDLE_TIMEOUT_S * 1000000000ull;
        w->linger.ns = (uint64_t)LINGER_S * 1000000000ull;
        pthread_mutex_init(&w->mu, NULL);
        char name[16];
        snprintf(name, sizeof name, "http-%u", i);
        if (!loop_start(name, worker_init, w)) { /* worker_init sets w->l */
            snprintf(err, errlen, "cannot start the HTTP server's threads: %s", strerror(errno));
            pthread_mutex_destroy(&w->mu);
            workers_stop(s, i);
            workers_free(s, i);
            return false;
        }
    }
    return true;
}

http_server *http_start(const config *cfg, const http_route *routes, size_t nroutes, void *app,
                        http_gate_fn gate, char *err, size_t errlen)
{
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->routes = routes;
    s->nroutes = nroutes;
    s->app = app;
    s->gate = gate;
    s->listen_fd = -1;
    s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->tls_mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    /* the certificate first: a bad file stops the start before anything is bound */
    if (tls_wanted(cfg)) {
        if (tls_load(cfg, &s->tls, err, errlen) != GD_OK) return start_failed(s);
        s->tls_on = true;
        if (!tls_setup(s, err, errlen)) return start_failed(s);
    }
    int family = AF_INET;
    s->listen_fd = listen_on(cfg->host, (int)cfg->port, &family, err, errlen);
    if (s->listen_fd < 0) return start_failed(s);
    int fl = fcntl(s->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(s->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "cannot make the listening socket non-blocking: %s", strerror(errno));
        return start_failed(s);
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET)
        s->loopback = (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        s->loopback =
            IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    if (size_connections(s, err, errlen) < 0) return start_failed(s);
    s->conns =
        conns_new(s->max_conns, cfg->max_connections_per_client, cfg->header_timeout, err, errlen);
    if (!s->conns) return start_failed(s);
    if (!workers_start(s, err, errlen)) return start_failed(s);
    return s;
}

int http_port(const http_server *s)
{
    return s->port;
}

const char *http_scheme(const http_server *s)
{
    return s->tls_on ? "https" : "http";
}

const char *http_tls_fingerprint(const http_server *s)
{
    return s->tls_on ? s->tls.fingerprint : NULL;
}

void http_refuse_new(http_server *s)
{
    atomic_store(&s->stopping, true);
}

bool http_stop(http_server *s, int timeout_ms)
{
    if (!s) return true;
    atomic_store(&s->stopping, true);
    /* the replies are over: a WebSocket still open (its client reads nothing, so the end of its
     * events has not reached it) is closed now, not waited for */
    ws_stop_all();
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (atomic_load(&s->inflight) > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &until) == ETIMEDOUT) break;
    int left = atomic_load(&s->inflight);
    pthread_mutex_unlock(&s->mu);
    if (left) {
        /* A handler, or an upgraded connection's loop, still holds its request: freeing the
         * server (and, after it, what those requests point to) would pull memory from under
         * them. The caller ends the process instead. */
        log_warn("server", "%d request(s) still running after %d ms", left, timeout_ms);
        return false;
    }
    workers_stop(s, s->nworkers);
    workers_free(s, s->nworkers);
    conns_free(s->conns); /* every connection is closed now */
    close(s->listen_fd);
    if (s->reserve_fd >= 0) close(s->reserve_fd);
    tls_teardown(s);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->tls_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return true;
}
