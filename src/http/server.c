/* The HTTP server: libmicrohttpd in epoll thread-pool mode. A request's life:
 *   first call   -> request id, route match, early 404/405/413/415, CORS preflight
 *   upload calls -> body appended to a capped buffer (413 at the cap)
 *   last call    -> JSON body parsed and checked, the route's handler called
 *   completed    -> one access-log line, the request freed (never inside a handler).
 *
 * What clients can hold is bounded here (with http/conns.c):
 *   - max_connections in total. libmicrohttpd's own limit is set a reserve above it: at its limit
 *     MHD stops accepting (new clients then wait in the listen backlog, unanswered), so the bound
 *     we answer is ours. A connection accepted over max_connections is marked in the
 *     connection-notify callback, and its request is answered 503 too_many_connections with
 *     Retry-After and Connection: close through http_reply_error; the header deadline closes it
 *     if it never sends one. The open-file limit is raised at start so that the bound is
 *     reachable.
 *   - max_connections_per_client open connections from one address: the same 503 (as nginx's
 *     limit_conn answers at request time).
 *   - header_timeout: complete request headers within that many seconds of the accept (or of
 *     the first byte of a kept-alive connection's next request), and each piece of a body
 *     within that many seconds of the last (a chunk size no client fills); see conns.h.
 *
 * The strict edge (check_request, check_origin): routing works on the raw target (on_uri, MHD's
 * URI log callback, sees it before MHD decodes it); bound to loopback, only loopback Host names
 * or allowed_hosts are served (421 otherwise: DNS rebinding); HTTP/1.1 needs one Host; header
 * names are tokens and values hold no control characters; only chunked transfer coding;
 * POST/PUT/PATCH/DELETE need application/json and no foreign Origin (CSRF). Those refusals close
 * the connection. MHD's own strict mode (MHD_OPTION_STRICT_FOR_CLIENT) is not used: in 0.9.75 it
 * refuses a missing Host or a folded first header with its HTML page written twice, where the
 * checks here answer once, in JSON. What MHD refuses before any callback of ours still gets its
 * HTML page (once, then a close) -- a request line or header it cannot parse, a target or headers
 * over its buffer (414, 431), HTTP/2.0 (505), a bad chunk size -- or, for a Content-Length that is
 * not a number, its page with the head written twice (0.9.75 has no hook to answer these). */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "core/utf8.h"
#include "http/conns.h"
#include "http/tls.h"

#define MAX_EXTRA_HEADERS 8
#define RID_MAX           128
#define RETRY_AFTER_S     "1" /* seconds, for every 503 and 429 that does not say otherwise */
#define IDLE_TIMEOUT_S    75u /* a kept-alive connection between requests */
/* libmicrohttpd's memory per connection: the request line and headers, then the response's head
 * (bodies pass through in pieces). 16 KiB instead of its 32: request headers up to about 15.9 KB
 * (a Cookie header about half that: 0.9.75 parses it into the pool), 431 beyond; an idle watcher
 * costs half as much, and each request clears half as much. Just under the limit 0.9.75 closes
 * without an answer (it cannot fit its 431), whatever the size chosen. */
#define CONN_POOL_BYTES 16384
#define FD_HEADROOM     256L /* descriptors besides connections: store, logs, pipes, children */
/* bytes of a body over max_body_size read and dropped before the 413 (see begin) */
#define BODY_DRAIN_MAX(max)                                                                        \
    ((unsigned long long)(max)*4 > (16ull << 20) ? (unsigned long long)(max)*4 : (16ull << 20))

struct http_server {
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    const config *cfg;
    const http_route *routes;
    size_t nroutes;
    void *app;
    conns *conns;
    long max_conns; /* max_connections, lowered when the open-file limit cannot hold it */
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when inflight drops to 0 */
    int inflight;
    bool loopback;        /* bound to a loopback address: Host is checked (DNS rebinding) */
    atomic_ulong errors;  /* error responses sent, for the operator */
    atomic_bool stopping; /* new connections are refused */
    bool tls_on;          /* HTTPS (tls.h): the certificate and key below */
    tls_creds tls;
};

struct http_req {
    http_server *s;   /* NULL until the first call of the access handler (see on_uri) */
    char *raw;        /* the request target as the client sent it (on_uri), or NULL */
    uintptr_t raw_at; /* where MHD had it: tells a NUL inside the target (on_uri) */
    struct MHD_Connection *conn;
    char method[16];
    char *path;
    route_match m;
    buf body;
    json_t *json;
    uint64_t t0;
    int status; /* 0 until a reply is queued */
    size_t resp_len;
    bool too_big;               /* the body passed the cap: the rest is discarded, then 413 */
    unsigned long long dropped; /* bytes of body discarded since */
    http_handler cont;          /* set while suspended: what runs when resumed */
    void (*on_done)(void *);
    void *on_done_arg;
    void *state;        /* http_state */
    const char *origin; /* the request's Origin when it is allowed, else NULL */
    bool origin_own;    /* the request's Origin is this server's own (origin_is_own) */
    char rid[RID_MAX + 1];
    char client[INET6_ADDRSTRLEN];
    int nhdrs;
    char *hdrs[MAX_EXTRA_HEADERS][2];
    http_upgrade_fn upgrade; /* http_reply_upgrade */
    void *upgrade_cls;
    struct MHD_UpgradeResponseHandle *urh; /* once upgraded: what http_upgrade_close ends */
    int tcp_fd;                            /* and the client's socket (TLS: not the app's) */
    conn *cn;         /* the connection's record in s->conns; NULL when it could not be made */
    auth_user user;   /* who sent it (auth_request) */
    trace_span *span; /* the request's server span (trace.h), NULL when tracing is off */
    log_ctx lctx;     /* what JSON log lines written while handling it carry */
};

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
const char *http_query(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}
const char *http_header(http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
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
const auth_user *http_user(http_req *r)
{
    return &r->user;
}

void *http_state(http_req *r, size_t size)
{
    if (!r->state) r->state = calloc(1, size);
    return r->state;
}

void http_suspend(http_req *r, http_handler cont)
{
    r->cont = cont;
    MHD_suspend_connection(r->conn);
}

void http_resume(http_req *r)
{
    MHD_resume_connection(r->conn);
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

/* Queues resp with the headers every response carries. Consumes resp. */
static void queue(http_req *r, int status, struct MHD_Response *resp, const char *ctype, size_t len)
{
    if (!resp) {
        log_error("http", "out of memory building a response for %s %s", r->method, r->path);
        r->status = 500;
        return;
    }
    if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, "X-Request-Id", r->rid);
    if (r->origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "X-Request-Id, X-Total-Count, Location, Link");
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    for (int i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i][0], r->hdrs[i][1]);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES) {
        log_error("http", "could not queue the %d response to %s %s", status, r->method, r->path);
        return;
    }
    r->status = status;
    r->resp_len = len;
}

void http_reply_static(http_req *r, int status, const char *ctype, const void *data, size_t len)
{
    queue(r, status, MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT),
          ctype, len);
}

void http_reply_text(http_req *r, int status, const char *ctype, const char *text, size_t len)
{
    queue(r, status, MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY),
          ctype, len);
}

void http_reply_empty(http_req *r, int status)
{
    queue(r, status, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), NULL, 0);
}

bool http_peer_gone(http_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void http_stream_wait(http_req *r)
{
    MHD_suspend_connection(r->conn);
}

struct stream_ctx {
    http_stream_fn fn;
    void *cls;
    void (*free_cls)(void *);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct stream_ctx *sc = cls;
    long n = sc->fn(sc->cls, out, max);
    return n == HTTP_STREAM_END ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream_ctx *sc = cls;
    if (sc->free_cls) sc->free_cls(sc->cls);
    free(sc);
}

void http_reply_stream(http_req *r, int status, const char *ctype, http_stream_fn fn, void *cls,
                       void (*free_cls)(void *))
{
    struct stream_ctx *sc = malloc(sizeof *sc);
    if (!sc) {
        if (free_cls) free_cls(cls);
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    *sc = (struct stream_ctx){fn, cls, free_cls};
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc, stream_free);
    if (!resp) {
        stream_free(sc);
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    queue(r, status, resp, ctype, 0);
}

void http_reply_json(http_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        http_reply_error(r, 500, "internal", "could not encode the response");
        return;
    }
    size_t len = strlen(text);
    queue(r, status, MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE),
          "application/json; charset=utf-8", len);
}

void http_reply_json_text(http_req *r, int status, char *text, size_t len)
{
    queue(r, status, MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE),
          "application/json; charset=utf-8", len);
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
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) { /* out of memory: still answer */
        static const char fallback[] = "{\"error\":\"internal error\",\"code\":\"internal\"}";
        queue(r, status,
              MHD_create_response_from_buffer(sizeof fallback - 1, (void *)fallback,
                                              MHD_RESPMEM_PERSISTENT),
              "application/json; charset=utf-8", sizeof fallback - 1);
        return;
    }
    size_t len = strlen(text);
    queue(r, status, MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE),
          "application/json; charset=utf-8", len);
    if (status >= 500)
        log_warn("http", "%s %s -> %d %s rid=%s", r->method, r->path, status, msg, r->rid);
}

/* ---- protocol upgrades ---- */

/* The http_upgrade handed to the application is the request itself: MHD frees it (on_completed)
 * only after http_upgrade_close. */
static void on_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                        size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    http_req *r = con_cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->urh = urh;
    r->tcp_fd = ci ? ci->connect_fd : -1;
    r->upgrade(r, r->upgrade_cls, (int)sock, extra, extra_len, (http_upgrade *)r);
}

void http_reply_upgrade(http_req *r, http_upgrade_fn fn, void *cls)
{
    r->upgrade = fn;
    r->upgrade_cls = cls;
    queue(r, 101, MHD_create_response_for_upgrade(on_upgraded, NULL), NULL, 0);
}

void http_upgrade_close(http_upgrade *up)
{
    http_req *r = (http_req *)up;
    struct MHD_UpgradeResponseHandle *urh = r->urh; /* r may be freed once the action is taken */
    /* With TLS the application has one end of a socket pair and MHD carries the bytes to the
     * client. libmicrohttpd 0.9.75 then closes the client's connection only when it sees the
     * end of both directions, and it does not look again once the application's end is shut
     * (as ws.c's lingering close does first): a client waiting for the server to close, as
     * RFC 6455 says it should, would wait for ever. Shutting the reading side of the client's
     * socket wakes MHD up, which reads that end, sends what it still holds, and closes. It is
     * done before the action: until then MHD cannot have closed (and reused) the descriptor. */
    if (r->s->tls_on && r->tcp_fd >= 0) shutdown(r->tcp_fd, SHUT_RD);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

bool http_stopping(http_req *r)
{
    return atomic_load(&r->s->stopping);
}

/* ---- request life ---- */

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

static const char *allowed_origin(const config *cfg, const char *origin)
{
    if (!origin) return NULL;
    for (int i = 0; i < cfg->ncors; i++)
        if (!strcmp(cfg->cors[i], "*") || !strcmp(cfg->cors[i], origin)) return origin;
    return NULL;
}

/* Whether name (a Host's name part, brackets kept for IPv6) names this machine's loopback:
 * localhost, 127.x.x.x or [::1]. */
static bool loopback_name(const char *name)
{
    struct in_addr a4;
    if (!strcasecmp(name, "localhost") || !strcmp(name, "[::1]")) return true;
    return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* Splits a Host value ("name", "name:port", "[v6]:port") into its name (into name) and port (0
 * when none). false when it is not of that shape. */
static bool host_split(const char *host, char *name, size_t namelen, long *port)
{
    const char *colon;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close) return false;
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] && !colon) return false;
    } else {
        colon = strchr(host, ':');
    }
    size_t n = colon ? (size_t)(colon - host) : strlen(host);
    if (n == 0 || n >= namelen) return false;
    memcpy(name, host, n);
    name[n] = '\0';
    *port = 0;
    if (colon) {
        char *end;
        errno = 0;
        const char *p = colon + 1;
        if (*p < '0' || *p > '9') return false;
        *port = strtol(p, &end, 10);
        if (errno || *end || *port < 1 || *port > 65535) return false;
    }
    return true;
}

/* Whether host (a Host header, or an origin's host[:port]) is listed in allowed_hosts, whole or
 * by its name alone; with star, "*" lists every host. */
static bool host_listed(const config *cfg, const char *host, const char *name, bool star)
{
    for (int i = 0; i < cfg->nallowed_hosts; i++)
        if ((star && !strcmp(cfg->allowed_hosts[i], "*")) ||
            !strcasecmp(cfg->allowed_hosts[i], host) || !strcasecmp(cfg->allowed_hosts[i], name))
            return true;
    return false;
}

/* Whether a server bound to loopback may answer a request for host: a page on a domain an
 * attacker rebinds to 127.0.0.1 sends its own domain as Host, and is refused. */
static bool host_allowed(const http_server *s, const char *host)
{
    char name[256];
    long port;
    if (!host_split(host, name, sizeof name, &port)) return false;
    return loopback_name(name) || host_listed(s->cfg, host, name, true);
}

/* Whether origin ("http://127.0.0.1:3000") is this server's own: a loopback name with this
 * server's port and scheme (https when it serves TLS), or a host named in allowed_hosts ("*"
 * names none here; a proxy in front may serve it either way). Comparing Origin with the request's
 * Host would not do: a rebound page sends its own domain as both. */
static bool origin_is_own(const http_server *s, const char *origin)
{
    if (!origin) return false;
    bool tls = !strncasecmp(origin, "https://", 8);
    if (!tls && strncasecmp(origin, "http://", 7)) return false;
    const char *host = origin + (tls ? 8 : 7);
    char name[256];
    long port;
    if (!host_split(host, name, sizeof name, &port)) return false;
    if (port == 0) port = tls ? 443 : 80;
    return (loopback_name(name) && port == s->port && tls == s->tls_on) ||
           host_listed(s->cfg, host, name, false);
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
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
    if (is_json_type(ct)) return true;
    http_reply_error(r, 415, "unsupported_media_type",
                     "Content-Type must be application/json (got %.80s)", ct ? ct : "none");
    return false;
}

/* Fills the request on the first call of the access handler. r comes from on_uri (or is NULL,
 * when on_uri ran out of memory). The path is the raw one, without its query string: the router
 * decodes it segment by segment. Returns NULL when out of memory (r freed). */
static http_req *req_init(http_server *s, http_req *r, struct MHD_Connection *c, const char *url,
                          const char *method)
{
    if (!r || !r->raw) {
        free(r);
        return NULL;
    }
    r->s = s;
    r->conn = c;
    r->t0 = clock_mono_ns();
    snprintf(r->method, sizeof r->method, "%s", method);
    (void)url; /* decoded by MHD: "%2F" and "%00" are lost there */
    r->path = strndup(r->raw, strcspn(r->raw, "?#"));
    if (!r->path) {
        free(r->raw);
        free(r);
        return NULL;
    }
    buf_init(&r->body, (size_t)s->cfg->max_body_size);
    const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && valid_rid(rid))
        snprintf(r->rid, sizeof r->rid, "%s", rid);
    else
        ids_request_id(r->rid);
    r->lctx.request_id = r->rid;
    if (trace_enabled()) { /* the client's traceparent makes this request a child of its span */
        trace_ctx parent;
        if (trace_parse_traceparent(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"),
                                    &parent))
            trace_set_tracestate(&parent,
                                 MHD_lookup_connection_value(c, MHD_HEADER_KIND, "tracestate"));
        r->span = trace_span_start(r->method, TRACE_SERVER, &parent);
        if (r->span) trace_id_hex(trace_span_ctx(r->span), r->lctx.trace_id);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                  sizeof r->client);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                  sizeof r->client);
    else
        snprintf(r->client, sizeof r->client, "-");
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    r->origin = allowed_origin(s->cfg, origin);
    r->origin_own = origin_is_own(s, origin);
    pthread_mutex_lock(&s->mu);
    s->inflight++;
    pthread_mutex_unlock(&s->mu);
    return r;
}

void http_on_done(http_req *r, void (*fn)(void *), void *arg)
{
    r->on_done = fn;
    r->on_done_arg = arg;
}

static void req_free(http_req *r)
{
    if (r->on_done) r->on_done(r->on_done_arg);
    trace_span_discard(r->span);
    buf_free(&r->body);
    json_decref(r->json);
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i][0]);
        free(r->hdrs[i][1]);
    }
    free(r->state);
    free(r->path);
    free(r->raw);
    free(r);
}

struct framing {
    int content_length; /* how many Content-Length headers */
    const char *first_cl;
    bool cl_differ;
    bool transfer_encoding;
    const char *te;  /* the (first) Transfer-Encoding value */
    int hosts;       /* how many Host headers */
    const char *bad; /* a header name or value no well-formed request has, or NULL */
    const char *bad_why;
};

/* A header name is a token (RFC 9110 section 5.1): no whitespace, no control characters, so
 * that "Content-Length : 5" is never a second, unknown header with the body read as the next
 * request. Values hold no control characters but tab. */
static const char *bad_header(const char *key, const char *value)
{
    if (!*key) return "an empty header name";
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (*p <= ' ' || *p == 0x7F || *p == ':' || *p == '"')
            return "whitespace or a control character in a header name";
    for (const unsigned char *p = (const unsigned char *)value; p && *p; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7F) return "a control character in a header value";
    return NULL;
}

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct framing *f = cls;
    const char *why = f->bad ? NULL : bad_header(key, value);
    if (why) {
        f->bad = key;
        f->bad_why = why;
    }
    if (!strcasecmp(key, MHD_HTTP_HEADER_HOST)) f->hosts++;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->content_length++ == 0)
            f->first_cl = value;
        else if (strcmp(f->first_cl, value) != 0)
            f->cl_differ = true;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        if (!f->transfer_encoding) f->te = value;
        f->transfer_encoding = true;
    }
    return MHD_YES;
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
static bool check_request(http_req *r, const char *version, const struct framing *f)
{
    http_server *s = r->s;
    char msg[300];
    /* a raw NUL in the target: MHD's copy ends at it, its parse of the line does not */
    size_t rawlen = strlen(r->raw);
    uintptr_t v = (uintptr_t)version;
    if (v > r->raw_at && v - r->raw_at - 1 > rawlen && v - r->raw_at < (1u << 20)) {
        refuse_framing(r, "the request target holds a NUL byte");
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)r->raw; *p; p++)
        if (*p <= ' ' || *p == 0x7F) {
            refuse_framing(r, "the request target holds a space or a control character (send "
                              "them percent-encoded)");
            return false;
        }
    if (f->bad) {
        snprintf(msg, sizeof msg, "malformed header \"%.60s\": %s", f->bad, f->bad_why);
        refuse_framing(r, msg);
        return false;
    }
    if (f->hosts > 1) {
        refuse_framing(r, "more than one Host header");
        return false;
    }
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!host && strcmp(version, MHD_HTTP_VERSION_1_0) != 0) {
        refuse_framing(r, "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)");
        return false;
    }
    if (host && s->loopback && !host_allowed(s, host)) {
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

/* Browsers send Origin (and Sec-Fetch-Site) with cross-site requests; a form or a fetch from
 * another site must not change anything here (CSRF). Clients that are no browser send neither. */
static bool check_origin(http_req *r)
{
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
    const char *site = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
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
static void begin(http_req *r, const char *version)
{
    http_server *s = r->s;
    log_debug("http", "%s %s started rid=%s", r->method, r->path, r->rid);
    conn_refusal why = conns_refusal(r->cn);
    if (why != CONN_OK) {
        bool total = why == CONN_OVER_TOTAL;
        http_add_header(r, "Connection", "close");
        http_reply_error(r, 503, "too_many_connections",
                         "%s has its limit of %ld connections open (%s); try again later",
                         total ? "the server" : r->client,
                         total ? s->max_conns : s->cfg->max_connections_per_client,
                         total ? "max_connections" : "max_connections_per_client");
        return;
    }
    struct framing f = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
    if (!check_request(r, version, &f)) return;
    router_match(s->routes, s->nroutes, r->method, r->path, &r->m);
    if (r->m.bad_segment) {
        char seg[200];
        utf8_clean(r->m.segment, seg, sizeof seg, true);
        http_reply_error(r, 400, "bad_request", "path segment %d (\"%s\") holds %s",
                         r->m.bad_segment, seg, r->m.why);
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
    if (!auth_request(r, &r->m, r->client, &r->user)) return; /* 401/403/404 sent */
    r->lctx.user = r->user.name[0] ? r->user.name : r->user.id;
    r->lctx.session_id = r->user.session;
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
    /* Two lengths, or a length and chunked framing, are how requests are smuggled past a proxy
     * that reads them differently (RFC 9112 section 6.3): refuse both, and codings we do not
     * read. */
    if (f.cl_differ || (f.content_length && f.transfer_encoding)) {
        refuse_framing(r, f.cl_differ ? "conflicting Content-Length headers"
                                      : "both Content-Length and Transfer-Encoding given");
        return;
    }
    if (f.transfer_encoding && strcasecmp(f.te, "chunked") != 0) {
        char te[100];
        utf8_clean(f.te, te, sizeof te, true);
        char msg[200];
        snprintf(msg, sizeof msg, "Transfer-Encoding \"%s\" is not supported: only chunked", te);
        refuse_framing(r, msg);
        return;
    }
    if (state_changing(r->method)) {
        if (!check_origin(r)) return;
        /* even with no body: a form posts without one, and a form cannot say application/json */
        if (!check_json_type(r)) return;
    }
    const char *cl = f.first_cl;
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        unsigned long long max = (unsigned long long)s->cfg->max_body_size;
        /* Over the limit but not absurd: read and drop the body, then answer 413. Answering
         * at once makes the server close a socket the client is still writing to, and the
         * client then sees a reset instead of the 413 (nginx's lingering close solves the same). */
        unsigned long long drain = BODY_DRAIN_MAX(max);
        if (*cl < '0' || *cl > '9') {
            refuse_framing(r, "Content-Length must be a whole number");
            return;
        } else if (!errno && !*end && n > max && n <= drain) {
            r->too_big = true;
            buf_free(&r->body);
        } else if (errno || *end || n > max) {
            http_reply_error(r, 413, "payload_too_large",
                             "request body is larger than the limit of %ld bytes",
                             s->cfg->max_body_size);
            return;
        }
        if (n > 0 && (r->m.route->flags & ROUTE_BODY)) check_json_type(r);
    }
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
                                 jerr.text, jerr.line, jerr.column);
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

static enum MHD_Result access_step(http_server *s, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    http_req *r = *con_cls;
    if (!r || !r->s) {
        *con_cls = NULL;
        r = req_init(s, r, c, url, method);
        if (!r) return MHD_NO; /* out of memory: MHD closes the connection */
        *con_cls = r;
        req_enter(r);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->cn = ci ? ci->socket_context : NULL;
        begin(r, version);
        /* a body to come is held to the header deadline between its pieces (a chunk size no
         * client will ever fill, a body that stops) */
        if (r->status)
            conns_headers_done(s->conns, r->cn);
        else
            conns_body_wait(s->conns, r->cn);
        return MHD_YES;
    }
    req_enter(r);
    if (*upload_size) {
        /* MHD takes no response in the middle of an upload: past the cap, the rest of the body
         * is read and dropped, and the 413 goes out when it ends. */
        if (!r->status && !r->too_big && buf_append(&r->body, upload, *upload_size) != GD_OK) {
            r->too_big = true;
            buf_free(&r->body);
        }
        r->dropped += r->too_big ? *upload_size : 0;
        *upload_size = 0;
        /* a chunked body never says its size: past the drain allowance it is not read on */
        if (r->dropped > BODY_DRAIN_MAX(s->cfg->max_body_size)) return MHD_NO;
        conns_body_wait(s->conns, r->cn);
        return MHD_YES;
    }
    conns_headers_done(s->conns, r->cn);
    if (r->status) return MHD_YES;
    if (r->cont) { /* resumed */
        http_handler cont = r->cont;
        r->cont = NULL;
        run_handler(r, cont);
        return MHD_YES;
    }
    if (r->too_big)
        http_reply_error(r, 413, "payload_too_large",
                         "request body is larger than the limit of %ld bytes",
                         s->cfg->max_body_size);
    else
        dispatch(r);
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    const log_ctx *lc = log_ctx_get();
    const trace_ctx *tc = trace_current();
    enum MHD_Result res = access_step(cls, c, url, method, version, upload, upload_size, con_cls);
    log_ctx_set(lc);
    trace_set_current(tc);
    return res;
}

/* src (NULL: "") into dst of size n, cut to fit. */
static void copy_str(char *dst, size_t n, const char *src)
{
    size_t l = src ? strnlen(src, n - 1) : 0;
    if (l) memcpy(dst, src, l);
    dst[l] = '\0';
}

/* The request's span: named for its route ("GET /status"), with its outcome. */
static void end_span(http_req *r, const char *path, enum MHD_RequestTerminationCode toe)
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
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) trace_attr_bool(sp, "goose.aborted", true);
    if (r->status >= 500 || !r->status) trace_set_status(sp, true, NULL);
    trace_span_end(sp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (!r->s) { /* on_uri ran, the access handler never did: MHD refused the request itself */
        char target[256]; /* the client's bytes: one log line whatever they are */
        utf8_clean(r->raw ? r->raw : "", target, sizeof target, true);
        log_info("access", "- \"%s\" refused by libmicrohttpd (a malformed request)", target);
        free(r->raw);
        free(r);
        return;
    }
    uint64_t ns = clock_mono_ns() - r->t0;
    double ms = (double)ns / 1e6;
    metrics_http_done(r->m.route, r->method, r->status, ns);
    bool logged = log_enabled(LOG_INFO, "access");
    char path[1024]; /* the client's bytes: one log line whatever they are */
    if (logged || r->span) utf8_clean(r->path, path, sizeof path, true);
    const log_ctx *lc = log_ctx_set(&r->lctx);
    if (r->span) end_span(r, path, toe);
    if (logged) { /* copied here, written by the log's thread (core/log.h) */
        log_access_rec a;
        copy_str(a.client, sizeof a.client, r->client);
        copy_str(a.method, sizeof a.method, r->method);
        copy_str(a.path, sizeof a.path, path);
        a.status = r->status;
        a.bytes = r->resp_len;
        a.ms = ms;
        copy_str(a.rid, sizeof a.rid, r->rid);
        a.aborted = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 0 : (int)toe;
        copy_str(a.session_id, sizeof a.session_id, r->lctx.session_id);
        copy_str(a.user, sizeof a.user, r->lctx.user);
        copy_str(a.trace_id, sizeof a.trace_id, r->lctx.trace_id);
        log_access(&a);
    }
    log_ctx_set(lc);
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->upgrade)
        conns_request_done(s->conns, r->cn); /* kept alive, or about to be closed */
    else
        conns_retire(s->conns, r->cn);
    req_free(r);
    pthread_mutex_lock(&s->mu);
    if (--s->inflight == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Called by MHD with the request target as the client sent it (before MHD decodes it, and
 * before the headers are read): the request starts here, and its raw target is kept for the
 * router. The return value is the access handler's first *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->raw = strdup(uri);
    r->raw_at = (uintptr_t)uri;
    return r;
}

/* During shutdown new connections are closed at once. (MHD_quiesce_daemon would stop accepting
 * too, but it races with the epoll workers in libmicrohttpd 0.9.75 and aborts the process.) */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    http_server *s = cls;
    return atomic_load(&s->stopping) ? MHD_NO : MHD_YES;
}

/* Every accepted connection is counted and bounded (conns.h) from here to its close. STARTED and
 * CLOSED run on the connection's own server thread; MHD calls CLOSED before it closes the
 * socket, which is what lets the header sweeper shut sockets down safely. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    metrics_gauge_add(MG_CONNECTIONS, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context =
            fd ? conns_open(s->conns, fd->connect_fd, ad ? ad->client_addr : NULL) : NULL;
        if (!*socket_context)
            log_warn("http", "out of memory: a connection is served without its bounds");
        return;
    }
    conns_close(s->conns, *socket_context);
    *socket_context = NULL;
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

/* Connections MHD may hold above max_connections: the refused ones, until they are answered. */
static long conn_reserve(long max)
{
    return max / 16 > 16 ? max / 16 : 16;
}

/* Sets s->max_conns to max_connections, or to what the open-file limit can hold (with a
 * warning naming both). Returns MHD's connection limit, or -1 with err set. */
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

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("http", "%s", msg);
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

http_server *http_start(const config *cfg, const http_route *routes, size_t nroutes, void *app,
                        char *err, size_t errlen)
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
    /* the certificate first: a bad file stops the start before anything is bound */
    if (tls_wanted(cfg)) {
        if (tls_load(cfg, &s->tls, err, errlen) != GD_OK) {
            free(s);
            return NULL;
        }
        s->tls_on = true;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->idle, NULL);
    int family = AF_INET;
    s->listen_fd = listen_on(cfg->host, (int)cfg->port, &family, err, errlen);
    if (s->listen_fd < 0) {
        tls_creds_free(&s->tls);
        free(s);
        return NULL;
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

    long mhd_limit = size_connections(s, err, errlen);
    s->conns = mhd_limit < 0 ? NULL
                             : conns_new(s->max_conns, cfg->max_connections_per_client,
                                         cfg->header_timeout, err, errlen);
    if (!s->conns) {
        close(s->listen_fd);
        tls_creds_free(&s->tls);
        free(s);
        return NULL;
    }

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers never wait on slow work (they suspend), so one thread per core is enough. */
    unsigned threads = (unsigned)(ncpu > 0 ? ncpu * 2 : 2);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG;
    if (family == AF_INET6) flags |= MHD_USE_IPv6;
    /* HTTPS: TLS 1.2 and 1.3 only. A client speaking plain HTTP to it fails the handshake and is
     * closed at once. An upgraded connection (the WebSocket) gets one end of a socket pair, MHD
     * carrying the bytes through TLS on the other. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls.key_pem},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls.cert_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->tls_on) flags |= MHD_USE_TLS;
    s->daemon = MHD_start_daemon(
        flags, 0, on_accept, s, on_access, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_POOL_BYTES, MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (size_t)1024,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)mhd_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        IDLE_TIMEOUT_S, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, s, MHD_OPTION_ARRAY, s->tls_on ? tls_opts : tls_opts + 3, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(err, errlen, "cannot start the HTTP%s server on %s:%d", s->tls_on ? "S" : "",
                 cfg->host, s->port);
        conns_free(s->conns);
        close(s->listen_fd);
        tls_creds_free(&s->tls);
        free(s);
        return NULL;
    }
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
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->mu);
    while (s->inflight > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &until) == ETIMEDOUT) break;
    int left = s->inflight;
    pthread_mutex_unlock(&s->mu);
    if (left) {
        /* A handler, or an upgraded connection's loop, still holds its request: freeing the
         * server (and, after it, what those requests point to) would pull memory from under
         * them. The caller ends the process instead. */
        log_warn("server", "%d request(s) still running after %d ms", left, timeout_ms);
        return false;
    }
    MHD_stop_daemon(s->daemon);
    conns_free(s->conns); /* every connection is closed now */
    close(s->listen_fd);
    tls_creds_free(&s->tls);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return true;
}
