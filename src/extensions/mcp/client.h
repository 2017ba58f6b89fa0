/* client: the JSON-RPC 2.0 side of an MCP client, on one transport (private to
 * src/extensions/mcp). It numbers requests, keeps a table of the pending ones, each with its own
 * timeout on the loop, matches responses by id, turns error objects into messages, sends
 * notifications, and answers the server's requests: `ping` and `roots/list` itself,
 * `elicitation/create` and `sampling/createMessage` through the host's ops, anything else with
 * -32601. Everything runs on the host's loop; no callback is called from inside the function
 * that caused it. */
#ifndef GD_MCP_CLIENT_H
#define GD_MCP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "extensions/extension.h"
#include "extensions/mcp/transport.h"

/* Codes of replies that did not come from the server. */
#define MCP_RPC_TIMEOUT -32000 /* the request's own timeout fired */

typedef struct mcp_rpc mcp_rpc;

/* A response: result (borrowed, NULL on error) or code and msg (the server's error object, or
 * MCP_RPC_TIMEOUT). Called once, on the loop; the callee may close the rpc. */
typedef void (*mcp_rpc_reply)(void *ud, json_t *result, int code, const char *msg);

typedef struct {
    /* A notification from the server; params borrowed (may be NULL). */
    void (*notify)(void *ud, const char *method, json_t *params);
    /* The transport is over (see mcp_transport_cb.closed). Pending requests are not answered:
     * the owner ends what waits on them and closes the rpc. */
    void (*closed)(void *ud, gd_err e, const char *why);
    /* NULL, or: the transport now holds requests while the user signs in (true), or no longer
     * (false); no request times out meanwhile. */
    void (*held)(void *ud, bool held);
    void *ud;
} mcp_rpc_cb;

/* Builds a transport; mcp_transport_new unless a test replaces it. */
typedef mcp_transport *(*mcp_transport_factory)(const json_t *cfg, const ext_host *host,
                                                const mcp_transport_cb *cb, char *err,
                                                size_t errlen);
extern mcp_transport_factory mcp_rpc_transport_new;

/* A client on a new transport for cfg (borrowed) on host (borrowed, outlives it); x is handed
 * to the host's request ops. NULL with a message in err. Free with mcp_rpc_close. */
mcp_rpc *mcp_rpc_new(const json_t *cfg, const ext_host *host, extension *x, const mcp_rpc_cb *cb,
                     char *err, size_t errlen);
/* Sends a request: params stolen (NULL: none); fn(ud, ...) once, later, unless forgotten.
 * timeout_ms 0: none. Returns the request's id (> 0), or 0 when out of memory (fn is then
 * never called). */
json_int_t mcp_rpc_request(mcp_rpc *r, const char *method, json_t *params, long timeout_ms,
                           mcp_rpc_reply fn, void *ud);
/* Drops a pending request without calling its fn (a late response is ignored). */
void mcp_rpc_forget(mcp_rpc *r, json_int_t id);
/* Sends a notification; params stolen (NULL: none). */
void mcp_rpc_notify(mcp_rpc *r, const char *method, json_t *params);
/* The protocol version agreed (passed to the transport). */
void mcp_rpc_set_version(mcp_rpc *r, const char *version);
/* Closes the transport and frees r without calling anything back; host requests still open are
 * dropped (request_cancel). Safe from inside any of r's callbacks. */
void mcp_rpc_close(mcp_rpc *r);

/* Whether the server's protocol version is one this client speaks. */
bool mcp_version_supported(const char *v);

/* "file://" + path, percent-encoded; caller frees. NULL when out of memory. */
char *mcp_file_uri(const char *path);

#endif
