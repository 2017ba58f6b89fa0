/* api: the HTTP resources. One file per resource; the route table is in routes.c. */
#ifndef GD_API_H
#define GD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include "agent/agent.h"
#include "config/config.h"
#include "extensions/ext_config.h"
#include "http/http.h"
#include "store/store.h"

typedef struct {
    const config *cfg;
    store *st;
    agent *agent;
    ext_set *exts;       /* the configured extensions (config.yaml's `extensions:` map) */
    uint64_t started_ns; /* monotonic */
} app;

extern const http_route api_routes[];
extern const size_t api_nroutes;

/* Answers a failed store call: 404 naming the session, 503 with the store's reason (msg, or
 * store_errmsg() when NULL), else 500. */
void api_store_error(http_req *r, gd_err e, const char *session_id, const char *msg);
/* Whether the session exists; when not (or the store failed), the answer is sent. */
bool api_session_found(http_req *r, const char *session_id);

/* How a reply that agent_start could not start is reported, over HTTP or as a WebSocket error
 * frame: the HTTP status and error code it returns, and the message (in msg) from agent_start's
 * err. */
int api_start_failure(gd_err e, const char *session_id, const char *err, const char **code,
                      char *msg, size_t msglen);

/* A session as the API shows it (id, name, working_dir, times, counts), appended to b as JSON
 * text; GD_EINVAL (nothing appended) when its name or directory is not UTF-8, GD_ENOMEM. */
gd_err api_session_text(buf *b, const store_session *s);
/* The same as a new object (NULL when it cannot be made). */
json_t *api_session_json(const store_session *s);
/* Whether val (given as field) names a directory a session of r's caller may work in:
 * resolved into out (an absolute real path), and where config_session_dir_check lets the caller
 * work (allowed_roots; a user who is not an admin, their workspace). 0 when it does; else the
 * HTTP status (400) and err (PATH_MAX * 2 + 2560 bytes hold it) says why, naming field. */
int api_dir_check(http_req *r, const char *field, const char *val, char out[PATH_MAX], char *err,
                  size_t errlen);

/* What the large answers (an export, a history) hold in memory while their clients read them, in
 * all: clients that ask and never read must not make goosed hold gigabytes. *mine: what this
 * answer holds (0 at first; changed only by these calls). n more bytes that would pass
 * cfg->max_answer_memory are refused (false: answer api_answers_busy, 503 busy with Retry-After,
 * or cut a stream short), unless no other answer holds anything (one alone always goes). */
bool api_answer_hold(const config *cfg, size_t *mine, size_t n);
void api_answer_release(size_t *mine, size_t n);
void api_answers_busy(http_req *r);

void api_status(http_req *r);
void api_health(http_req *r);
void api_openapi(http_req *r);
void api_config_get(http_req *r);
void api_config_patch(http_req *r);
void api_session_create(http_req *r);
void api_session_list(http_req *r);
void api_session_get(http_req *r);
void api_session_delete(http_req *r);
void api_messages_list(http_req *r);
void api_oauth_callback(http_req *r);
void api_message_post(http_req *r);
void api_message_stream(http_req *r);
void api_session_events(http_req *r);
void api_session_cancel(http_req *r);
void api_tool_confirm(http_req *r);
void api_elicitation_answer(http_req *r);
void api_session_patch(http_req *r);
void api_session_extensions_get(http_req *r);
void api_session_extensions_add(http_req *r);
void api_session_extensions_remove(http_req *r);
/* The session settings a create body asks for ("execution_mode", "extensions"): 1 and *out (the
 * caller owns it), 0 when it asks for none, -1 when an error was answered. */
int api_session_settings_from_body(http_req *r, json_t *body, json_t **out);
void api_session_stream(http_req *r); /* the WebSocket, stream_ws.c */
void api_providers_list(http_req *r);
void api_providers_current(http_req *r);
void api_providers_clear(http_req *r);
void api_providers_set(http_req *r);
void api_extensions_list(http_req *r);
void api_extensions_add(http_req *r);
void api_extensions_toggle(http_req *r);
void api_extensions_enable(http_req *r);
void api_extensions_disable(http_req *r);
void api_extensions_delete(http_req *r);
/* A session's MCP resources and prompts (resources.c). */
void api_resources_list(http_req *r);
void api_resources_read(http_req *r);
void api_resource_templates_list(http_req *r);
void api_prompts_list(http_req *r);
void api_prompts_get(http_req *r);
/* Moving sessions between instances (transfer.c). */
void api_session_export(http_req *r);
void api_session_import(http_req *r);
void api_session_fork(http_req *r);

/* GET /metrics (metrics.c). */
void api_metrics(http_req *r);
/* Starts the metrics_listen server (GET /metrics without authentication) when configured;
 * NULL with err "" when it is not, NULL with err set when it cannot start. Stop it with
 * http_stop. */
http_server *api_metrics_listen(const config *cfg, void *app, char *err, size_t errlen);

#endif
