/* mcp: extensions that are MCP servers (protocol revision 2025-11-25, negotiating down to
 * 2025-06-18 and 2025-03-26), over stdio, streamable HTTP or the legacy HTTP+SSE transport.
 * An mcp extension implements extension.h: start spawns or connects and initializes, tools are
 * the server's tools/list (paginated, refreshed on notifications/tools/list_changed), a call is
 * tools/call with the extension's timeout and notifications/cancelled on cancel. A server that
 * crashes gives the running call an error result and is started again on next use, with
 * backoff; one that writes garbage or floods its output is cut off with a logged reason. */
#ifndef GD_MCP_H
#define GD_MCP_H

#include <jansson.h>
#include <stdbool.h>

#include "extensions/extension.h"

#define MCP_PROTOCOL_LATEST "2025-11-25"

/* An extension for cfg (a config checked by ext_config_check, borrowed: what is needed is
 * copied) on host (borrowed, must outlive it). Nothing starts until extension_ops.start. env_keys
 * are resolved at start, from goosed's environment or secrets.yaml. NULL with a message in err
 * for a type that is not MCP, or when out of memory. */
extension *mcp_extension_new(const json_t *cfg, const ext_host *host, char *err, size_t errlen);

/* What closed MCP extensions still run on their loops: server processes not reaped yet (a closed
 * extension's server gets its stdin closed, then SIGTERM, then SIGKILL: a few seconds) and HTTP
 * DELETEs in flight. A program about to free its loop waits for 0 (the loop still running), so
 * that no child is left unwatched and no request unfreed. */
unsigned mcp_servers_running(void);
/* Waits up to ms for mcp_servers_running() to be 0; whether it is. */
bool mcp_servers_wait(long ms);

#endif
