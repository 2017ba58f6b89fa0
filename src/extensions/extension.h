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
#include "core/pool.h"

#define EXT_NAME_MAX 64 /* bytes of an extension's name; tool names are "<extension>__<tool>" */

/* Bounds shared by every session's extensions (the agent owns them). */
typedef struct {
    long max_processes;    /* tool child processes running at once */
    atomic_long processes; /* running now */
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
} ext_host;

/* One call's options. */
typedef struct {
    long timeout_ms;   /* 0: the extension's default */
    size_t output_cap; /* bytes of output kept (per stream for a shell); 0: the default */
} ext_call_opts;

typedef struct {
    json_t *content; /* array of content items; never NULL in a result handed to ext_done */
    bool is_error;   /* the tool failed: the model sees the content as an error */
} ext_result;

typedef struct extension extension;
typedef struct ext_call ext_call;

/* A call has ended (done, failed, timed out or cancelled). res->content now belongs to the
 * callee (json_decref it). The ext_call handle is freed right after this returns. */
typedef void (*ext_done)(void *ud, ext_result *res);

typedef struct {
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
    /* Cancels what still runs, without calling any done, and frees x. */
    void (*close)(extension *x);
} extension_ops;

struct extension {
    const extension_ops *ops;
    char name[EXT_NAME_MAX]; /* "developer" */
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

/* A result with one text item; NULL content when out of memory is replaced by an empty array.
 * For extensions building their results. */
ext_result ext_text_result(const char *text, bool is_error);

/* ---- built-in extensions ---- */

/* The developer extension (shell, text editor, file listing), with its own undo history. NULL
 * when out of memory. */
extension *developer_new(const ext_host *host);

#endif
