/* GET /metrics: the Prometheus text format (core/metrics.h). On the main listener it is an admin
 * route (the secret key, an admin's token, or no authentication at all on a loopback-only
 * server); with metrics_listen it is also served, without authentication, on an address of its
 * own, meant for loopback or a private network. `metrics: false` answers 404 on both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/log.h"
#include "core/metrics.h"
#include "extensions/mcp/mcp.h"

void api_metrics(http_req *r)
{
    app *a = http_app(r);
    if (!a->cfg->metrics) {
        http_reply_error(r, 404, "not_found", "no such path: /metrics (metrics are off)");
        return;
    }
    /* read here, not counted at each start and stop: the transport keeps the number */
    metrics_gauge_set(MG_EXT_PROCESSES, (long)mcp_servers_running());
    metrics_gauge_set(MG_TOOL_PROCESSES, agent_tool_processes(a->agent));
    buf b;
    buf_init(&b, BUF_CAP_METRICS);
    gd_err e = metrics_render(&b);
    if (e)
        http_reply_error(r, 500, "internal", "cannot render the metrics: %s", gd_strerror(e));
    else
        http_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data ? b.data : "",
                        b.len);
    buf_free(&b);
}
