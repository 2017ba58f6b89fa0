/* transport: how an MCP client's JSON-RPC messages travel (stdio, streamable HTTP, legacy SSE).
 * The client (client.c) speaks the protocol; a transport only moves whole messages. Everything
 * runs on the host's loop; callbacks are never called from inside the op that caused them. */
#ifndef GD_MCP_TRANSPORT_H
#define GD_MCP_TRANSPORT_H

#include <jansson.h>

#include "core/err.h"
#include "extensions/extension.h"

#define MCP_LINE_MAX (4u << 20) /* bytes of one message: past it the server is cut off */

typedef struct mcp_transport mcp_transport;

typedef struct {
    /* One message from the server (request, notification or response), borrowed. */
    void (*message)(void *ud, json_t *msg);
    /* The transport is over: e says why (GD_EPROTO garbage or a message past MCP_LINE_MAX,
     * GD_EIO the process exited or the connection failed, GD_ENOTFOUND a streamable HTTP
     * session the server no longer knows: initialize again), why for the log and the model.
     * Nothing is called after it; the owner still calls close. */
    void (*closed)(void *ud, gd_err e, const char *why);
    /* NULL, or: the transport holds a request while the user signs in (+1), or no longer (-1):
     * the requests' timeouts stand still while any is held, and start again when none is. */
    void (*held)(void *ud, int delta);
    void *ud;
} mcp_transport_cb;

typedef struct {
    /* Sends msg (borrowed). Errors are reported through closed, later. */
    void (*send)(mcp_transport *t, json_t *msg);
    /* The protocol version agreed at initialize (streamable HTTP sends it as a header). */
    void (*set_protocol_version)(mcp_transport *t, const char *version);
    /* Stops and frees t without calling back: a process gets its stdin closed, a moment to exit,
     * then SIGTERM, then SIGKILL (the loop reaps it after t is gone); HTTP sends DELETE for its
     * session. */
    void (*close)(mcp_transport *t);
} mcp_transport_ops;

struct mcp_transport {
    const mcp_transport_ops *ops;
};

/* Each transport's constructor, for a checked config of its type (client.c picks one by the
 * config's type: stdio, streamable_http or sse). name tags the server's stderr in goosed's log.
 * NULL with a message in err. */
mcp_transport *mcp_stdio_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                             char *err, size_t errlen);
mcp_transport *mcp_http_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                            char *err, size_t errlen);
mcp_transport *mcp_sse_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                           char *err, size_t errlen);

/* A closed transport still runs something (+1) or no longer does (-1): a server process not
 * reaped yet, a DELETE in flight. mcp_servers_running / mcp_servers_wait count them. */
void mcp_linger(int delta);

/* Writes s (len bytes) into out as printable text: at most max input bytes, non-printable bytes
 * as \xNN, with "..." when cut. */
void mcp_escape(const char *s, size_t len, size_t max, char *out, size_t outlen);

#endif
