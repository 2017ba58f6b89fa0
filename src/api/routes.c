/* The route table: a route is one line. /api is canonical; seed 000's unprefixed paths are
 * aliases of the same handlers. */
#include "api/api.h"
#include "auth/auth.h"

#include <stdio.h>
#include <string.h>

const http_route api_routes[] = {
    {"GET", "/status", api_status, ROUTE_PUBLIC},
    /* an extension's OAuth sign-in comes back here from the user's browser (api/oauth.c) */
    {"GET", "/oauth/callback", api_oauth_callback, ROUTE_PUBLIC | ROUTE_PROXY_WHO},
    {"GET", "/api/health", api_health, 0},
    {"GET", "/openapi.json", api_openapi, 0},
    {"GET", "/metrics", api_metrics, ROUTE_ADMIN}, /* also on metrics_listen, without auth */
    {"GET", "/api/config", api_config_get, 0},
    {"PATCH", "/api/config", api_config_patch, ROUTE_BODY | ROUTE_ADMIN},
    {"GET", "/api/providers", api_providers_list, 0},
    {"POST", "/api/providers", api_providers_set, ROUTE_BODY}, /* a user's own; admin: scope */
    {"GET", "/api/providers/current", api_providers_current, 0},
    {"DELETE", "/api/providers/current", api_providers_clear, 0}, /* a user's own choice */
    {"GET", "/api/extensions", api_extensions_list, 0},
    /* the extension routes act on a user's own set when the caller is not an admin */
    {"POST", "/api/extensions", api_extensions_add, ROUTE_BODY},
    {"PATCH", "/api/extensions/{name}/toggle", api_extensions_toggle, ROUTE_BODY},
    {"DELETE", "/api/extensions/{name}", api_extensions_delete, 0},

    {"POST", "/api/sessions", api_session_create, ROUTE_BODY},
    {"POST", "/api/sessions/import", api_session_import, ROUTE_BODY},
    {"GET", "/api/sessions", api_session_list, 0},
    {"GET", "/api/sessions/{id}", api_session_get, 0},
    {"DELETE", "/api/sessions/{id}", api_session_delete, 0},
    {"PATCH", "/api/sessions/{id}", api_session_patch, ROUTE_BODY},
    {"GET", "/api/sessions/{id}/export", api_session_export, 0},
    {"POST", "/api/sessions/{id}/fork", api_session_fork, ROUTE_BODY},
    {"GET", "/api/sessions/{id}/extensions", api_session_extensions_get, 0},
    {"POST", "/api/sessions/{id}/extensions", api_session_extensions_add, ROUTE_BODY},
    {"DELETE", "/api/sessions/{id}/extensions/{name}", api_session_extensions_remove, 0},
    {"GET", "/api/sessions/{id}/messages", api_messages_list, 0},
    {"POST", "/api/sessions/{id}/messages", api_message_post, ROUTE_BODY},
    {"POST", "/api/sessions/{id}/messages/stream", api_message_stream, ROUTE_BODY},
    {"GET", "/api/sessions/{id}/events", api_session_events, 0},
    {"POST", "/api/sessions/{id}/cancel", api_session_cancel, 0},
    {"POST", "/api/sessions/{id}/tool_confirmations", api_tool_confirm, ROUTE_BODY},
    {"POST", "/api/sessions/{id}/elicitations", api_elicitation_answer, ROUTE_BODY},
    {"GET", "/api/sessions/{id}/stream", api_session_stream, 0}, /* WebSocket */
    {"GET", "/api/sessions/{id}/resources", api_resources_list, 0},
    {"GET", "/api/sessions/{id}/resources/read", api_resources_read, 0},
    {"GET", "/api/sessions/{id}/resources/templates", api_resource_templates_list, 0},
    {"GET", "/api/sessions/{id}/prompts", api_prompts_list, 0},
    {"POST", "/api/sessions/{id}/prompts/get", api_prompts_get, ROUTE_BODY},

    {"POST", "/sessions", api_session_create, ROUTE_BODY},
    {"GET", "/sessions", api_session_list, 0},
    {"GET", "/sessions/{id}", api_session_get, 0},
    {"DELETE", "/sessions/{id}", api_session_delete, 0},
    {"GET", "/sessions/{id}/messages", api_messages_list, 0},
    {"POST", "/sessions/{id}/messages", api_message_stream, ROUTE_BODY},
    {"GET", "/extensions", api_extensions_list, 0},
    {"POST", "/extensions/{name}/enable", api_extensions_enable, 0},
    {"POST", "/extensions/{name}/disable", api_extensions_disable, 0},
};
const size_t api_nroutes = sizeof api_routes / sizeof *api_routes;

void api_store_error(http_req *r, gd_err e, const char *session_id, const char *msg)
{
    switch (e) {
    case GD_ENOTFOUND:
        http_reply_error(r, 404, "not_found", "session '%s' not found",
                         session_id ? session_id : "");
        return;
    case GD_ESTORE:
    case GD_EBUSY: /* the write queue is full: the message says so; Retry-After comes with 503 */
        http_reply_error(r, 503, "storage_unavailable", "storage unavailable: %s",
                         msg ? msg : store_errmsg());
        return;
    default:
        http_reply_error(r, 500, "internal", "internal error: %s", gd_strerror(e));
        return;
    }
}

bool api_session_found(http_req *r, const char *session_id)
{
    const char *seen = http_user(r)->session; /* auth_gate read it */
    if (seen[0] && !strcmp(seen, session_id)) return true;
    app *a = http_app(r);
    store_session s;
    gd_err e = a->st->ops->session_get(a->st, session_id, &s);
    if (e) api_store_error(r, e, session_id, NULL);
    return !e;
}
