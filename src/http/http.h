/* http: the HTTP/1.1 server (its own, on core/loop threads) and the request API handlers use.
 * http knows nothing of sessions: handlers come from the route table given to http_start. */
#ifndef GD_HTTP_H
#define GD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/err.h"
#include "http/router.h"

typedef struct http_server http_server;
typedef struct http_req http_req;

/* Who a request comes from, decided once its head is read and before its handler runs: the gate
 * given to http_start (goosed's listeners use auth/auth.h's auth_gate; http knows nothing of
 * users). true: go on; false: the gate has answered (401, 403, 404, 429, 503...). m is the route
 * match (m->route NULL when nothing matched); peer the client's address as text. The gate keeps
 * what it decided in http_who(r) and names it for the logs with http_set_log_who. */
typedef bool (*http_gate_fn)(http_req *r, const route_match *m, const char *peer);

/* Starts serving routes on cfg->host:cfg->port. `app` is handed to handlers (http_app); gate
 * (NULL: none, every request goes on) runs before them. Returns NULL with a message in err when
 * the address cannot be bound. */
http_server *http_start(const config *cfg, const http_route *routes, size_t nroutes, void *app,
                        http_gate_fn gate, char *err, size_t errlen);
int http_port(const http_server *s);
/* "https" when the server serves TLS (tls_cert and tls_key, or tls_self_signed), else "http". */
const char *http_scheme(const http_server *s);
/* The SHA-256 fingerprint of the certificate served ("AB:CD:...", owned by the server, valid
 * until the next http_tls_reload), or NULL when the server speaks plain HTTP. */
const char *http_tls_fingerprint(const http_server *s);
/* Reads the certificate and key again, as at the start (tls_cert and tls_key, or the stored
 * self-signed pair), and serves them to the connections that come next; those already open keep
 * the pair they began with. GD_OK with the new certificate's fingerprint in fingerprint; else
 * the error (err names the file and the problem) and the pair served stays as it was. Not
 * thread-safe against itself or http_tls_fingerprint: one thread (the main one) calls both. */
gd_err http_tls_reload(http_server *s, const config *cfg, char *fingerprint, size_t fplen,
                       char *err, size_t errlen);
/* Graceful stop: stop accepting, wait up to timeout_ms for requests in flight (upgraded
 * connections included), then close all and free the server. false, with nothing freed, when
 * some are still in flight then: the caller must not free what they use (end the process). */
bool http_stop(http_server *s, int timeout_ms);

/* --- for handlers --- */
void *http_app(http_req *r);
const char *http_method(http_req *r);
const char *http_path(http_req *r);
const char *http_param(http_req *r, int i);             /* i-th {placeholder} of the route */
const char *http_query(http_req *r, const char *name);  /* NULL when absent */
const char *http_header(http_req *r, const char *name); /* NULL when absent */
/* Whether the request's Origin header names an origin of the cors_origins list (or it is "*"). */
bool http_origin_listed(http_req *r);
/* Whether the request's Origin is listed (above) or this server's own: a loopback origin with
 * this server's port, or a host of allowed_hosts. */
bool http_origin_trusted(http_req *r);
/* The request's room for what its gate decided: HTTP_WHO_BYTES bytes, zeroed when the request
 * starts, aligned for any type, owned by the request. */
#define HTTP_WHO_BYTES 256
void *http_who(http_req *r);
/* Names the request's user and session (either NULL) in its log lines, access-log line and
 * trace: strings that live as long as the request (in http_who's room, or static). */
void http_set_log_who(http_req *r, const char *user, const char *session_id);
/* The request's JSON object body, or NULL when the body was empty. Owned by the request. */
json_t *http_body(http_req *r);

/* Per-request state for a handler that suspends: `size` zeroed bytes, allocated on the first
 * call and returned again on later ones; freed with the request. NULL when out of memory. */
void *http_state(http_req *r, size_t size);
/* Suspends the request: the handler returns without replying, and `cont` runs on a server
 * thread once http_resume(r) is called. Call it before starting the work that will resume. */
void http_suspend(http_req *r, http_handler cont);
/* Wakes a suspended request. Thread-safe; may be called before the handler has returned. */
void http_resume(http_req *r);

/* A streamed response body: fn fills buf with up to max bytes and returns how many; 0 means
 * "nothing now" and fn must have called http_stream_wait(r) (a later http_resume(r) calls it
 * again); HTTP_STREAM_END ends the response. Runs on a server thread. free_cls(cls) is called
 * once the response is done with (the connection closed or finished). */
#define HTTP_STREAM_END ((long)-1)
/* From a stream function: the response cannot be completed (its head has gone): the connection
 * is closed without the end of the body (no last chunk), so the client sees it cut short. */
#define HTTP_STREAM_ABORT ((long)-2)
typedef long (*http_stream_fn)(void *cls, char *buf, size_t max);
void http_reply_stream(http_req *r, int status, const char *content_type, http_stream_fn fn,
                       void *cls, void (*free_cls)(void *cls));
/* A streamed response body whose pieces stay the caller's, written from where they are (no copy):
 * fn sets *data to the next piece and returns its length, valid until fn's next call (or the
 * end: free_cls); 0 means "nothing now" as for http_stream_fn, HTTP_STREAM_END and
 * HTTP_STREAM_ABORT as there. */
typedef long (*http_piece_fn)(void *cls, const char **data);
void http_reply_pieces(http_req *r, int status, const char *content_type, http_piece_fn fn,
                       void *cls, void (*free_cls)(void *cls));
/* From inside a stream function: whether the client has closed its side of the connection (a
 * peek at the socket, without reading). A suspended stream learns it no other way until a write
 * fails. */
bool http_peer_gone(http_req *r);
/* From inside a stream function: suspend until http_resume(r). */
void http_stream_wait(http_req *r);
/* Calls fn(arg) when the request is finished with (after its response, or when the client
 * went away). One per request. */
void http_on_done(http_req *r, void (*fn)(void *arg), void *arg);
/* Stops accepting new connections (the first step of a graceful stop). */
void http_refuse_new(http_server *s);

/* Protocol upgrades (WebSocket). http_reply_upgrade answers 101 Switching Protocols with the
 * headers added by http_add_header (Upgrade, Sec-WebSocket-Accept; Connection is added). Once the
 * 101 has been sent, fn(r, cls, fd, extra, extra_len, up) runs on a server thread: r is still
 * valid during the call only; extra holds bytes the client sent after its request (valid during
 * the call only). From then on the socket is the caller's: it must never close fd, but call
 * http_upgrade_close(up) exactly once, from any thread, when done with it (the server then
 * closes fd and frees the request). The request counts as in flight until then, so http_stop
 * waits for upgraded connections (up to its timeout). fn is not called when the client went
 * away before the 101 was sent. */
typedef struct http_upgrade http_upgrade;
typedef void (*http_upgrade_fn)(http_req *r, void *cls, int fd, const char *extra, size_t extra_len,
                                http_upgrade *up);
void http_reply_upgrade(http_req *r, http_upgrade_fn fn, void *cls);
void http_upgrade_close(http_upgrade *up);
/* True once the server has started stopping (http_refuse_new or http_stop). */
bool http_stopping(http_req *r);

/* The reason phrase of status (RFC 9110 section 15): "Not Found"; "Unknown" for a status it
 * does not know. A static string. */
const char *http_reason(int status);

/* Adds a response header; call before a reply function. Copies both strings. */
void http_add_header(http_req *r, const char *name, const char *value);
/* Replies. Exactly one per request. http_reply_json takes ownership of body. */
void http_reply_json(http_req *r, int status, json_t *body);
void http_reply_text(http_req *r, int status, const char *content_type, const char *text,
                     size_t len);
/* JSON already written as text (len bytes, malloc'd): taken over and freed by the server. */
void http_reply_json_text(http_req *r, int status, char *text, size_t len);
void http_reply_static(http_req *r, int status, const char *content_type, const void *data,
                       size_t len);
void http_reply_empty(http_req *r, int status);
/* The one way errors leave the server: `{"error": message, "code": code}` with status. */
void http_reply_error(http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
