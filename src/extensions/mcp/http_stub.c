/* http_stub: placeholders until the streamable HTTP and SSE transports land (http.c, sse.c
 * replace this file). */
#include <stdio.h>

#include "extensions/mcp/transport.h"

mcp_transport *mcp_http_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                            char *err, size_t errlen)
{
    snprintf(err, errlen, "streamable_http/sse: not built yet");
    return NULL;
}

mcp_transport *mcp_sse_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                           char *err, size_t errlen)
{
    snprintf(err, errlen, "streamable_http/sse: not built yet");
    return NULL;
}
