/* http_common: what the two MCP transports over HTTP share (streamable HTTP in http.c, the
 * legacy HTTP+SSE transport in sse.c): the config (uri, headers, timeout), the requests on a
 * curl_loop with their response read as JSON or as an event stream, and the hand-over of
 * messages and of the end to the client.
 *
 * The client is never called from inside libcurl nor from inside one of its own calls into the
 * transport: messages and the end are queued and delivered from a loop timer. close() from
 * inside a delivered callback is safe (the transport is freed when the delivery returns). */
#ifndef GD_MCP_HTTP_COMMON_H
#define GD_MCP_HTTP_COMMON_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/curl_loop.h"
#include "extensions/mcp/oauth.h"
#include "extensions/mcp/transport.h"
#include "providers/provider.h"

#define MCP_HTTP_CONNECT_S   10   /* seconds to connect to the server */
#define MCP_HTTP_DELETE_MS   2000 /* close: how long the DELETE of a session may take */
#define MCP_HTTP_ERRBODY_MAX 512u /* bytes of a failed response's body kept for the message */

typedef struct mcp_http_base mcp_http_base;
typedef struct mcp_req mcp_req;

/* A request has ended: code from libcurl, the rest in r (status, content type, stream error). The
 * callee frees r (mcp_req_free) or keeps it. Called on the loop, never from inside libcurl. */
typedef void (*mcp_req_done)(mcp_req *r, CURLcode code);
/* One event of an event-stream response other than a message (a message is queued by the
 * base): the legacy transport's `endpoint`. GD_EPROTO (with r->why set) cuts the stream. */
typedef gd_err (*mcp_req_event)(mcp_req *r, const char *event, const char *data);

struct mcp_req {
    mcp_http_base *b;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    long status;
    char ctype[64];    /* the response's media type, lowercased, without parameters */
    char session[256]; /* the response's Mcp-Session-Id, "" when none */
    bool session_bad;  /* it was longer than that, or held more than visible ASCII (MCP) */
    bool sse;          /* the response is an event stream */
    bool got_event;    /* at least one event arrived */
    sse_reader *rd;
    buf raw;           /* a body that is not an event stream */
    gd_err stream_err; /* the body was cut: why says why */
    json_t *want;      /* ids of requests whose responses this stream should bring, or NULL */
    size_t wanted;     /* how many of them it began with (the transport's) */
    mcp_req_done done;
    mcp_req_event event; /* NULL: events other than messages are ignored */
    void *ud;            /* the transport's */
    int kind;            /* the transport's */
    char why[256];
    char errbuf[CURL_ERROR_SIZE];
    const char *refused; /* what the address it would have connected to is (ext_host's reach) */
    char www_auth[1024]; /* the answer's WWW-Authenticate (its Bearer challenge), "" when none */
    unsigned token_gen;  /* the generation of the OAuth token it carried (oauth.h) */
    mcp_req *prev, *next;
};

struct mcp_http_base {
    mcp_transport t; /* first: a mcp_transport * is a mcp_http_base * */
    loop *l;
    curl_loop *curl;
    mcp_transport_cb cb;
    char *uri;
    json_t *headers; /* the config's headers: name -> value (secrets: never logged) */
    /* ext_host's reach, NULL when it names the uri's host: only the addresses it allows are
     * connected to, and no proxy is used */
    const net_allow *reach;
    long timeout_s; /* a POST's bound: the config's timeout */
    /* OAuth (oauth.h) when the host offers it and the config sets no Authorization header: its
     * token goes with every request. NULL: none. */
    mcp_oauth *oauth;
    pool *workers;    /* where an authorization runs: the OAuth config's, else the host's */
    json_t *inbox;    /* messages waiting for delivery */
    loop_timer *tick; /* delivers the inbox */
    bool failed;      /* the end is queued or delivered: nothing more is sent */
    bool ended;       /* closed was delivered */
    gd_err end_err;
    char end_why[512];
    int depth;    /* deliveries on the stack */
    bool closing; /* close was called from inside a delivery */
    mcp_req *reqs;
    int nreqs;                          /* in reqs */
    void (*teardown)(mcp_http_base *b); /* the transport's close, at a safe point */
};

/* goosed's requests to one server open at once (each a connection): a server that sends
 * requests and never takes the answers' POSTs (202) must not hold every descriptor of goosed.
 * Past it the transport fails, saying so (mcp_http_too_many). */
#define MCP_HTTP_REQS_MAX 128
/* Whether b has MCP_HTTP_REQS_MAX requests open already: then the transport is failed. */
bool mcp_http_too_many(mcp_http_base *b);

/* Fills b from cfg ("uri", "headers", "timeout"): GD_EINVAL with a message in err for a missing
 * or non-http(s) uri, or a header that is not a string or holds a line break; GD_ENOMEM,
 * GD_EUNAVAIL (libcurl). b is zeroed by the caller; mcp_http_base_free undoes a partial init. */
gd_err mcp_http_base_init(mcp_http_base *b, const json_t *cfg, const ext_host *host,
                          const mcp_transport_cb *cb, char *err, size_t errlen);
/* Frees what init made and every request still running (without their done). Not b itself. */
void mcp_http_base_free(mcp_http_base *b);
/* The owner's close: runs b->teardown now, or when the delivery on the stack returns. */
void mcp_http_base_close(mcp_http_base *b);
/* Queues the end (the first one counts) for delivery after the messages already queued. */
void mcp_http_fail(mcp_http_base *b, gd_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queues one message (stolen) for delivery; a response's id is taken out of r->want (r may be
 * NULL). */
void mcp_http_queue(mcp_http_base *b, mcp_req *r, json_t *msg);
/* Parses text as one JSON-RPC message or a batch and queues it. GD_EPROTO with r->why set when it
 * is not JSON or not a message. */
gd_err mcp_http_parse(mcp_http_base *b, mcp_req *r, const char *text, size_t len);
/* Queues a JSON-RPC error response (code -32000, message why) for each id still in r->want: a
 * request the server will not answer any more. */
void mcp_http_abandon(mcp_http_base *b, mcp_req *r, const char *why);

/* A request of method ("GET", "POST", "DELETE") to url with the config's headers, then extra (a
 * NULL-terminated list of "Name: value", copied), body (copied, may be NULL); started on b's
 * curl_loop. done is called once, later. total_ms bounds the whole transfer (0: unbounded). NULL
 * when out of memory (why in b's log). */
mcp_req *mcp_req_start(mcp_http_base *b, const char *method, const char *url,
                       const char *const *extra, const char *body, long total_ms, mcp_req_done done,
                       mcp_req_event event, void *ud);
/* Stops r if it runs and frees it. */
void mcp_req_free(mcp_req *r);
/* Why r failed, for the log and the model: the curl error, or HTTP status and the body's start. */
void mcp_req_error(const mcp_req *r, CURLcode code, char *out, size_t outlen);

/* The socket for a connection libcurl opens (CURLOPT_OPENSOCKETFUNCTION) under reach: an
 * address reach does not allow gets none (*refused says what it is, and why is logged). */
curl_socket_t mcp_http_socket(const net_allow *reach, const char *uri, curlsocktype purpose,
                              struct curl_sockaddr *a, const char **refused);

/* Resolves ref (an absolute URL, an absolute path or a relative path) against base into out.
 * GD_EINVAL when it is another origin (scheme, host and port) than base's, holds a space or a
 * control character (two `data:` lines joined with a line break), or does not fit. */
gd_err mcp_url_resolve(const char *base, const char *ref, char *out, size_t outlen);

#endif
