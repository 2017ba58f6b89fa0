/* extension: the one interface between the agent and the tools it can call (lwan's module
 * vtable, nginx's module contexts). The built-in developer extension implements it, and so will
 * every MCP transport (stdio, streamable HTTP, legacy SSE). The agent asks a session's registry
 * for tools and calls through it; it knows no tool by name.
 *
 * Tool results are MCP content items, kept typed all the way to the provider:
 *   {"type":"text","text":s}
 *   {"type":"image","data":base64,"mimeType":s}
 *   {"type":"resource","resource":{"uri":s,"mimeType":s?,"text":s}|{"uri":s,"mimeType":s?,"blob":base64}}
 *
 * Threads: an extension belongs to one loop (its host's). Every op is called on that loop's
 * thread, and every ext_done runs there too, never from inside the op that started the call
 * (completions are posted), so a caller's state is never re-entered. Blocking work (disk) goes
 * to the host's worker pool; a child process is watched by the loop (its pipes and its exit), so
 * a running tool holds no thread. */
#ifndef GD_EXTENSION_H
#define GD_EXTENSION_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/netaddr.h"
#include "core/pool.h"

#define EXT_NAME_MAX 64 /* bytes of an extension's name; tool names are "<extension>__<tool>" */

typedef struct extension extension;
typedef struct ext_call ext_call;

/* ---- what a host serves for its extensions (MCP's server-initiated requests) ---- */

/* The answer to a host request: result (stolen; NULL on error, then code and msg say why, as
 * JSON-RPC errors: -32601 unsupported, -1 declined ...). Called exactly once, on the loop. */
typedef void (*ext_reply_fn)(void *rud, json_t *result, int code, const char *msg);

typedef struct {
    /* A request an extension's server made: method "elicitation/create" or
     * "sampling/createMessage"; params borrowed. reply(rud, ...) once, later (never from inside
     * this call). Returns a handle for cancel, NULL when refused at once (reply was then posted
     * already). NULL function: every request is answered -32601. */
    void *(*request)(void *ud, extension *x, const char *method, json_t *params, ext_reply_fn reply,
                     void *rud);
    /* The extension went away before the answer: drop the request without calling reply. */
    void (*request_cancel)(void *ud, void *handle);
    void *ud;
} ext_host_ops;

/* Bounds shared by every session's extensions (the agent owns them). */
typedef struct {
    long max_processes;    /* tool child processes running at once */
    atomic_long processes; /* running now */
    /* MCP servers starting at once (spawned, not yet through initialize and tools/list): the
     * others wait their turn, so that a hundred sessions starting together do not all miss
     * their start timeout on a few CPUs. Loop thread only (every session's extensions share the
     * agent's loop). 0: no bound. */
    int max_starting;
    int starting;
    void *start_queue; /* the extensions waiting, oldest first (mcp/extension.c's) */
} ext_limits;

/* What every extension of a session shares: where it runs and what it may see. Borrowed by the
 * extensions, so it must outlive them. */
typedef struct {
    loop *l;          /* ops and completions run on this loop's thread */
    pool *workers;    /* for work that blocks on the disk */
    char *const *env; /* the environment of child processes: an allow-list, no secrets */
    /* directories the built-in tools refuse to read or write (goosed's config and data
     * directories), NULL-terminated; absolute, without a trailing slash */
    const char *const *protected_dirs;
    ext_limits *limits; /* NULL: unbounded */
    char session_id[40];
    const char *cwd; /* the session's working directory (read when a call starts) */
    /* cwd is a real path that must still be one when a command or server starts (a user who is
     * not an admin: it was checked to be theirs as the reply started; a link swapped in since,
     * by another session of theirs, must not take them elsewhere). */
    bool cwd_exact;
    const ext_host_ops *ops; /* NULL: the host serves no requests */
    long tool_timeout_ms;    /* built-in tools' default timeout (0: their own); an MCP
                              * extension's is its config's `timeout` */
    /* NULL: remote extensions may connect to any address. Else only to public addresses and
     * to what this list (core/netaddr.h) names: the host of a user who is not an admin. */
    const net_allow *reach;
    /* NULL: shell commands reach what tool_network gives. Else they run for a user who is not
     * an admin: with a network of their own, only public addresses and what this list names by
     * address or network (sandbox_child_reach). A stdio server is held to reach when confined. */
    const net_allow *cmd_reach;
    /* A user who is not an admin added the extension: a stdio server's executable and absolute
     * path arguments must lie in the system's directories or the session's working directory
     * (nothing else of the machine is mounted for it), and it gets no shared npm cache: its
     * npx and npm run with the user's own, npm_cache (made on first use; NULL: none, npx
     * fetches into the sandbox's empty home at each start). */
    bool confined;
    const char *npm_cache;
    /* NULL: a remote server that asks for OAuth (401) is refused as before. Else how its user
     * signs in (extensions/mcp/oauth.h: the consent, the redirect URI and the client's name;
     * the transport adds the server's URL, the config's oauth client and the reach). */
    const struct mcp_oauth_cfg *oauth;
} ext_host;

/* A tool's progress (MCP notifications/progress): total < 0 when unknown, message may be NULL.
 * Runs on the loop while the call runs. */
typedef void (*ext_progress_fn)(void *ud, double progress, double total, const char *message);

/* One call's options. */
typedef struct {
    long timeout_ms;          /* 0: the extension's default */
    size_t output_cap;        /* bytes of output kept (per stream for a shell); 0: the default */
    ext_progress_fn progress; /* NULL: progress is dropped; called with the call's ud */
} ext_call_opts;

typedef struct {
    json_t *content;    /* array of content items; never NULL in a result handed to ext_done */
    bool is_error;      /* the tool failed: the model sees the content as an error */
    json_t *structured; /* MCP structuredContent, or NULL; owned like content */
} ext_result;

/* A call has ended (done, failed, timed out or cancelled). res->content now belongs to the
 * callee (json_decref it). The ext_call handle is freed right after this returns. */
typedef void (*ext_done)(void *ud, ext_result *res);

/* An extension's start has ended: GD_OK and tools() is current, or the error and why (for the
 * model and the extension list). Called once, later, on the loop. */
typedef void (*ext_started)(void *ud, gd_err e, const char *why);

typedef enum { EXT_STOPPED, EXT_STARTING, EXT_RUNNING, EXT_FAILED } ext_state;

/* A resource or prompt request has ended: result (now the callee's: json_decref it), or NULL
 * with e and msg saying why: GD_ENOTFOUND (no such resource or prompt, or the extension has
 * none), GD_EPROTO (the server answered with an error, or with a malformed result),
 * GD_ETIMEOUT, GD_EUNAVAIL (the extension is not running), GD_ETOOBIG (past a bound),
 * GD_ECANCELLED, GD_EGONE (the session's extensions were closed meanwhile), GD_ENOMEM. Called
 * exactly once, later, on the loop's thread. */
typedef void (*ext_json_done)(void *ud, json_t *result, gd_err e, const char *msg);

/* What an extension serves besides tools (extension_ops.serves). */
enum { EXT_SERVES_RESOURCES = 1, EXT_SERVES_PROMPTS = 2 };

typedef struct {
    /* Brings the extension up if it is not (spawns and initializes a server, connects), then
     * done(ud, ...) once, later; again after a crash (with backoff: a start within the backoff
     * fails at once with the last reason). Several starts may wait together. NULL: always up. */
    void (*start)(extension *x, ext_started done, void *ud);
    /* Its state, and for EXT_FAILED why (copied into why). NULL: always EXT_RUNNING. */
    ext_state (*state)(extension *x, char *why, size_t whylen);
    /* Whether calling tool with args (borrowed, may be NULL) only reads: smart_approve runs it
     * without asking. NULL: the tool's readOnlyHint annotation says. */
    bool (*read_only)(extension *x, const char *tool, json_t *args);
    /* Text for the system prompt, or NULL. Owned by the extension. */
    const char *(*instructions)(extension *x);
    /* The tools as MCP lists them: an array of {"name" (without the extension's prefix),
     * "description", "inputSchema", "annotations": {"readOnlyHint", "destructiveHint", ...}}.
     * Borrowed: valid until the next call to tools or close. */
    json_t *(*tools)(extension *x);
    /* Starts tool (unprefixed) with args (borrowed; may be NULL, meaning {}). done(ud, ...) is
     * called exactly once, later, on the loop's thread: unknown tools and bad arguments are
     * results with is_error, not failures. NULL (and done is never called) only when out of
     * memory. */
    ext_call *(*call)(extension *x, const char *tool, json_t *args, const ext_call_opts *o,
                      ext_done done, void *ud);
    /* Asks a running call to stop (a child process is killed with its process group); done
     * follows soon with is_error and what output there was. */
    void (*cancel)(ext_call *c);
    /* Cancels what still runs and drops waiting starts, without calling any done, stops what
     * it spawned (a server process: stdin closed, then SIGTERM, then SIGKILL) and frees x. */
    void (*close)(extension *x);

    /* ---- optional: resources and prompts (NULL: the extension has none) ---- */

    /* EXT_SERVES_* bits: what the extension served at its last start (an MCP server's
     * capabilities); 0 before a start. NULL: nothing. */
    unsigned (*serves)(extension *x);
    /* Every resource (every page, within bounds): done gets an array of {"uri", "name",
     * "description"?, "mimeType"?}. Like call: done exactly once, later; cancel ends it with
     * GD_ECANCELLED; NULL only when out of memory. */
    ext_call *(*resources)(extension *x, ext_json_done done, void *ud);
    /* Reads uri (borrowed): done gets the array of contents, each {"uri", "mimeType"?, "text"}
     * or {"uri", "mimeType"?, "blob"} (a "resource" content item's "resource"). */
    ext_call *(*read_resource)(extension *x, const char *uri, ext_json_done done, void *ud);
    /* Every prompt: done gets an array of {"name", "description"?, "arguments"?}. */
    ext_call *(*prompts)(extension *x, ext_json_done done, void *ud);
    /* Every resource template (MCP resources/templates/list): done gets an array of
     * {"uriTemplate", "name", "description"?, "mimeType"?, "title"?}. */
    ext_call *(*resource_templates)(extension *x, ext_json_done done, void *ud);
    /* The prompt name with args (borrowed, string values; may be NULL): done gets
     * {"description"?, "messages": [{"role", "content"}]}. */
    ext_call *(*get_prompt)(extension *x, const char *name, json_t *args, ext_json_done done,
                            void *ud);
} extension_ops;

struct extension {
    const extension_ops *ops;
    char name[EXT_NAME_MAX]; /* "developer" */
    unsigned tools_gen;      /* bumped whenever tools() changes (list_changed, a restart) */
};

/* Every extension's call struct starts with this, so the registry can cancel any call. */
struct ext_call {
    extension *x;
};

/* ---- the registry: the extensions enabled in one session ---- */

typedef struct ext_registry ext_registry;

/* An empty registry on host (borrowed). NULL when out of memory. */
ext_registry *registry_new(const ext_host *host);
/* Adds x (the registry owns it from now on, also on failure). GD_ECONFLICT when an extension
 * of that name is there already, GD_ENOMEM. */
gd_err registry_add(ext_registry *r, extension *x);
/* Starts every extension that is not up (extension_ops.start), then done(ud, GD_OK, NULL) once,
 * later, on the loop, when all have answered: one that failed offers no tools (its state says
 * why). Freeing r drops a waiting done. Returns the start, for registry_start_abandon; NULL
 * when out of memory: done is then never called. */
typedef struct reg_start reg_start;
reg_start *registry_start(ext_registry *r, ext_started done, void *ud);
/* The caller no longer waits (a cancelled turn): done is never called; the extensions go on
 * starting, for whoever asks next. */
void registry_start_abandon(reg_start *s);
/* Whether every extension is up already (registry_start would have nothing to start). */
bool registry_up(ext_registry *r);
/* Sum of the extensions' tools_gen: when it changes, registry_tools must be asked again. */
unsigned registry_tools_gen(ext_registry *r);
/* Whether the call of full_name with args only reads (extension_ops.read_only, else the tool's
 * readOnlyHint); false for an unknown tool. */
bool registry_read_only(ext_registry *r, const char *full_name, json_t *args);
/* The extensions, in the order added: registry_get(r, i) for i < registry_count(r). */
size_t registry_count(ext_registry *r);
extension *registry_get(ext_registry *r, size_t i);
/* The extension called name, or NULL. */
extension *registry_find(ext_registry *r, const char *name);
/* Every tool of every extension in the providers' shape: a new array of {"name":
 * "<extension>__<tool>", "description", "input_schema", "annotations"?}. Caller owns it. */
json_t *registry_tools(ext_registry *r);
/* The extensions' instructions as system-prompt sections ("## <name>\n<text>\n"), a new string
 * the caller frees. */
char *registry_instructions(ext_registry *r);
/* Calls a tool by its full name. An unknown extension or tool still ends through done (posted),
 * with is_error and a message naming what is known. NULL only when out of memory. */
ext_call *registry_call(ext_registry *r, const char *full_name, json_t *args,
                        const ext_call_opts *o, ext_done done, void *ud);
/* Cancels a call started by registry_call (valid until its done has returned). */
void registry_cancel(ext_call *c);
/* Closes every extension (running calls are cancelled without their done) and frees r. */
void registry_free(ext_registry *r);

/* ---- resources and prompts across a session's extensions (the platform tools, the API) ---- */

typedef struct reg_req reg_req;
enum { REG_RESOURCES, REG_PROMPTS, REG_TEMPLATES };

/* Lists what (REG_RESOURCES, REG_PROMPTS or REG_TEMPLATES: resource templates) of the extension
 * called ext (NULL: of every
 * extension that serves them; one that fails is then left out, with a log line). Extensions
 * that are not up are started first. done gets an array of the items, each with "extension"
 * (its extension's name) first. ext unknown or serving none: GD_ENOTFOUND. done exactly once,
 * later, on the loop, unless the request is cancelled; when r is freed first, with GD_EGONE
 * (posted). NULL only when out of memory. */
reg_req *registry_list(ext_registry *r, int what, const char *ext, ext_json_done done, void *ud);
/* Reads uri from ext (NULL: from the first extension, in order, that has it): done gets the
 * contents array (see extension_ops.read_resource). Strings borrowed. */
reg_req *registry_read_resource(ext_registry *r, const char *ext, const char *uri,
                                ext_json_done done, void *ud);
/* Gets the prompt name of ext with args (borrowed, may be NULL). */
reg_req *registry_get_prompt(ext_registry *r, const char *ext, const char *name, json_t *args,
                             ext_json_done done, void *ud);
/* Drops q: its done is never called (what it asked of extensions is cancelled). */
void registry_req_cancel(reg_req *q);
/* Whether some extension of r (other than the platform one) serves what (EXT_SERVES_*). */
bool registry_serves(ext_registry *r, unsigned what);

/* A result with one text item; NULL content when out of memory is replaced by an empty array.
 * For extensions building their results. */
ext_result ext_text_result(const char *text, bool is_error);

/* ---- built-in extensions ---- */

/* The developer extension (shell, text editor, file listing), with its own undo history. cfg
 * (borrowed, may be NULL) is its config object: "allow_shell": false offers no shell tool. NULL
 * when out of memory. */
extension *developer_new(const ext_host *host, const json_t *cfg);

/* The platform extension, as the real Goose offers: list_resources and read_resource over the
 * other extensions of r (borrowed: r owns it once added, so it lives as long). Its tools are
 * offered only while some extension of r serves resources. NULL when out of memory. */
extension *platform_new(const ext_host *host, ext_registry *r);

#endif
