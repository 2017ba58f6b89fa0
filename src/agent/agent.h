/* agent: replies. One loop thread owns every turn (turn.h has its states); the store, the
 * provider client and the extensions report to it. Every step publishes events on the
 * session's bus; every message is stored before the event that completes it. */
#ifndef GD_AGENT_H
#define GD_AGENT_H

#include <stdint.h>

#include "agent/bus.h"
#include "agent/signin.h"
#include "config/permissions.h"
#include "config/config.h"
#include "extensions/ext_config.h"
#include "extensions/extension.h"
#include "core/pool.h"
#include "providers/provider.h"
#include "store/store.h"

typedef struct agent agent;

/* Execution modes: whether tools run, ask first, or are not offered. */
typedef enum { MODE_AUTO, MODE_APPROVE, MODE_SMART_APPROVE, MODE_CHAT } exec_mode;
/* "auto", "approve", "smart_approve" (also seed B's "smart_approval"), "chat"; -1 otherwise. */
int exec_mode_parse(const char *s);
const char *exec_mode_name(exec_mode m);

agent *agent_new(const config *cfg, store *st);
/* Before serving: every session whose reply was interrupted by a crash during a tool call gets
 * a stored result for each unanswered tool request, so the next message works against the
 * providers' rules. */
void agent_repair(agent *a);
/* Graceful stop: lets running replies finish for up to grace_ms, then cancels the rest, waits
 * for them, closes every bus (watching clients see their stream end) and lets the workers
 * finish what they run (new jobs are refused). false when a reply did not end even after its
 * cancel: the agent must then not be freed. */
bool agent_shutdown(agent *a, int grace_ms);
/* The workers for blocking reads and tools (the bounded pool of tool_workers threads), for
 * handlers that must not read a long history on an HTTP thread. */
pool *agent_pool(agent *a);
/* The extensions' sign-ins (signin.h): GET /oauth/callback delivers the browser's return. */
signins *agent_signins(agent *a);
/* The configured extensions sessions start from (borrowed: it must outlive the agent). Changes
 * to the set apply to each session's next turn. Call before serving. */
void agent_use_extensions(agent *a, ext_set *s);
/* What the sessions' instances of the configured extension name are doing: a new object
 * {"status": "running" | "starting" | "failed" | "stopped", "error": why (failed only),
 * "tools": [{"name", "description", "inputSchema", "annotations"?}]} (the tools of its last
 * successful start). NULL when no session has used it since goosed started. A user's own
 * extension (user_settings.h) is noted as "USER_ID/name". Thread-safe. */
json_t *agent_extension_status(agent *a, const char *name);
/* The session's extensions as its last reply in this goosed found them: {name: {"status":
 * "running" | "failed" | "starting" | "stopped" | "signing_in", "error"?}} (a reference the
 * caller drops; never changed), or NULL when no reply has started them here yet. */
json_t *agent_session_ext_states(agent *a, const char *session_id);
/* Runs fn(r, ud) on the agent's loop with the session's extensions (made as its next turn
 * would make them, or those of the turn running there), for requests that are no turn's
 * (resources, prompts). r is NULL when out of memory; it is valid during fn only, but requests
 * started on it (registry_list ...) end by themselves, with GD_EGONE if it is freed first.
 * GD_ENOTFOUND (no such session), GD_ESTORE, GD_ESHUTDOWN, GD_ENOMEM, GD_EDENIED (a user who
 * is not an admin and a working directory outside where they may work: config.h) with the
 * message in err: fn is then never called. */
gd_err agent_session_ext_request(agent *a, const char *session_id, bool admin,
                                 void (*fn)(ext_registry *r, void *ud), void *ud, char *err,
                                 size_t errlen);
/* Frees the agent; agent_shutdown first, and no bus users left. */
void agent_free(agent *a);

/* The session's bus for a client that watches it, created on first use; release it with
 * agent_bus_release. NULL with *e = GD_EBUSY when max_watchers_per_session clients watch it
 * already, GD_ENOMEM. */
bus *agent_bus_get(agent *a, const char *session_id, gd_err *e);
void agent_bus_release(agent *a, const char *session_id);
/* Whether the session has max_watchers_per_session watchers already (a hint: it may change). */
bool agent_watchers_full(agent *a, const char *session_id);

/* Starts a reply to text in a session of user_id ("" for the local user): the caller has
 * checked that the session is theirs (auth_gate: another user's session is 404). Its
 * provider is user_id's choice, else the server's. *first_seq is the sequence number of the
 * turn's first event; the turn's events end with `message_complete` or `error` (a session that
 * is gone meanwhile: `error` session_gone; one whose working directory its owner, a user who is
 * not an admin, may not use (config_session_dir_check): `error` forbidden, with
 * nothing stored and no tool started). Errors (message in err): GD_ENOTFOUND not a session
 * id; GD_ECONFLICT a reply is already running; GD_EINVAL no usable provider; GD_EBUSY
 * max_replies run already, or too many reads wait for the workers; GD_EQUOTA the user runs
 * max_replies_per_user already; GD_ESHUTDOWN the server is stopping; GD_ENOMEM. Reads nothing
 * of the store: the session, its settings and its history are read on a worker. admin: the
 * caller (the owner) is an admin, so their own extensions and the session's may connect to any
 * address; otherwise only to public ones and user_extension_hosts (core/netaddr.h). */
gd_err agent_start(agent *a, const char *session_id, const char *user_id, bool admin,
                   const char *text, uint64_t *first_seq, char *err, size_t errlen);
/* Stops the running reply (provider request and tools). GD_ENOTFOUND when none runs. */
gd_err agent_cancel(agent *a, const char *session_id);
/* The session was deleted: a reply running there stops, ending with session_gone. */
void agent_session_deleted(agent *a, const char *session_id);
/* The mode of the replies that start from now on in sessions without their own. */
exec_mode agent_mode(agent *a);
void agent_set_mode(agent *a, exec_mode m);
/* Answers the tool_confirmation `id` pending in the session: action is allow_once, always_allow,
 * deny_once (or deny), always_deny or cancel; "always" answers are kept for the session's owner
 * (a user's in the store, the local user's in permission.yaml).
 * GD_EINVAL (an unknown action), GD_ENOTFOUND (no such question is waiting), GD_ENOMEM; the
 * message in err. */
gd_err agent_confirm(agent *a, const char *session_id, const char *id, const char *action,
                     char *err, size_t errlen);
/* Answers the elicitation `id` an extension's server asked in the session: action accept (content:
 * the answers by field, borrowed; the schema's defaults fill the rest), decline or cancel.
 * GD_EINVAL (bad action or content), GD_ENOTFOUND (no such question waits), GD_ENOMEM. */
gd_err agent_elicitation_answer(agent *a, const char *session_id, const char *id,
                                const char *action, json_t *content, char *err, size_t errlen);
/* Resolves the current provider (name, model, key from the environment or secrets.yaml);
 * GD_EINVAL with a message saying how to configure one. */
gd_err agent_provider(agent *a, provider_cfg *out, char *err, size_t errlen);
/* The same for a user (user_id "": the local user, as agent_provider): their own provider,
 * model and key (user_settings.h) where they set them, else the server's. GD_EINVAL too when
 * their own key cannot be opened (the server key changed): the reason in err. */
gd_err agent_provider_for(agent *a, const char *user_id, provider_cfg *out, char *err,
                          size_t errlen);
/* The same with a provider (NULL: theirs) and a model (NULL: that provider's, theirs when it is
 * their provider) chosen for one session. */
gd_err agent_provider_chosen(agent *a, const char *user_id, const char *want,
                             const char *want_model, provider_cfg *out, char *err, size_t errlen);
/* What a reply or a sampling request of a session owned by user_id uses: as
 * agent_provider_chosen (want and want_model NULL: the user's, else the server's), and for a user
 * who is not an admin GD_EINVAL when it is a provider they may not reach (agent_provider_open):
 * one chosen before an admin changed the server's, say. Every path that picks a session's
 * provider goes through it. */
gd_err agent_provider_owned(agent *a, const char *user_id, bool admin, const char *want,
                            const char *want_model, provider_cfg *out, char *err, size_t errlen);
/* The user's provider and model, or the server's when they chose none. */
void agent_current_for(agent *a, const char *user_id, char *name, size_t namelen, char *model,
                       size_t modellen);
/* The standing answer for a tool: the user's own, else the server's (permission.yaml). */
perm_rule agent_permission(const char *user_id, const char *tool);
/* The current provider and model ("" when none). */
void agent_current(agent *a, char *name, size_t namelen, char *model, size_t modellen);
/* Makes name/model current for the replies that start from now on. */
void agent_set_current(agent *a, const char *name, const char *model);
/* Whether a user who is not an admin may choose def for themselves: it is the server's provider,
 * an admin set its host (def->host_env), or its built-in host is not on this machine. A
 * built-in local default (ollama's http://localhost:11434, custom's ...) would let any user make
 * goosed post to a service of its own host. When false, why says so (for the user). */
bool agent_provider_open(agent *a, const provider_def *def, char *why, size_t whylen);
/* The API key of def from the environment or secrets.yaml; 0 when there is none. */
int agent_provider_key(const provider_def *def, char *out, size_t outlen);

/* A session's own provider and model (NULL: none) were changed: what its extensions' sampling
 * requests between replies use from now on (a reply reads them as it starts). */
void agent_session_provider_set(agent *a, const char *session_id, const char *provider,
                                const char *model);

/* The tool processes running now (shell commands, sessions' stdio servers): what
 * max_tool_processes bounds. */
long agent_tool_processes(agent *a);

#endif
