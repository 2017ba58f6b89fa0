/* transport: picks an MCP transport by the config's type. */
#include "extensions/mcp/transport.h"

#include <stdio.h>
#include <string.h>

mcp_transport *mcp_transport_new(const json_t *cfg, const ext_host *host,
                                 const mcp_transport_cb *cb, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(cfg, "type"));
    const char *name = json_string_value(json_object_get(cfg, "name"));
    if (!type) type = "";
    if (!strcmp(type, "stdio")) return mcp_stdio_new(cfg, host, cb, err, errlen);
    if (!strcmp(type, "streamable_http")) return mcp_http_new(cfg, host, cb, err, errlen);
    if (!strcmp(type, "sse")) return mcp_sse_new(cfg, host, cb, err, errlen);
    snprintf(err, errlen, "%s: type '%s' is not an MCP transport (stdio, streamable_http, sse)",
             name ? name : "extension", type);
    return NULL;
}
