/* developer: the built-in "developer" extension, run in-process. Three tools, named the way the
 * real Goose names an extension's tools (`<extension>__<tool>`):
 *   developer__shell        runs `/bin/sh -c command` in the session's working directory, with a
 *                           timeout, an output cap per stream, and cancellation;
 *   developer__text_editor  view (with line ranges) / write / str_replace / insert / undo_edit;
 *   developer__list_files   a sorted, depth-limited listing of a directory tree.
 * Every call is synchronous and thread-safe: the agent runs it on a worker thread. The only shared
 * state is the text editor's undo history (per absolute path, bounded, guarded by a mutex). */
#ifndef GD_DEVELOPER_H
#define GD_DEVELOPER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* The developer extension's tools as a JSON array of {"name","description","input_schema"}
 * (names "developer__shell", "developer__text_editor", "developer__list_files"); caller owns it
 * (json_decref). NULL only when out of memory. */
json_t *developer_tools(void);
/* The extension's instructions for the system prompt (static string: do not free). */
const char *developer_instructions(void);

typedef struct {
    /* what the model sees: malloc'd, caller frees. Always valid UTF-8 without NUL bytes (other
     * bytes become U+FFFD); NULL only when out of memory. */
    char *text;
    /* the tool failed (bad arguments, non-zero exit is NOT an error for shell: report it in
     * text) */
    bool is_error;
} tool_output;

typedef struct {
    /* the session's working directory: relative paths resolve here, shell runs here. Borrowed
     * for the call; NULL: the server's own working directory. */
    const char *cwd;
    /* shell timeout (default 300000 when 0) */
    long timeout_ms;
    /* bytes of output kept per stream (default 64 KiB when 0); beyond: truncated with a note
     * (the first and the last half are kept) */
    size_t output_cap;
    /* when it becomes true, a running shell is killed (process group) and the call returns
     * promptly. Borrowed; may be NULL (no cancellation). */
    const atomic_bool *cancel;
    /* the environment of commands the shell runs (NULL-terminated "NAME=value" strings).
     * Borrowed; NULL: the server's own. */
    char *const *env;
} tool_ctx;

/* Runs one tool synchronously (called from a worker thread; must be thread-safe). Unknown tool
 * or bad arguments: GD_EINVAL with out->text explaining and out->is_error = true.
 * arguments is borrowed (may be NULL: treated as {}); out is overwritten (its previous text is
 * not freed) and out->text belongs to the caller afterwards, success or not.
 * Returns GD_OK when the tool did its job (for the shell: the command ran, whatever its exit
 * status; a timeout or a cancel still returns GD_OK, with is_error = true and the partial
 * output). Other failures: GD_ENOTFOUND (no such file or directory), GD_ETOOBIG (file over a
 * limit), GD_EIO (an OS call failed), GD_ENOMEM; always with out->is_error = true. */
gd_err developer_call(const char *name, json_t *arguments, const tool_ctx *ctx, tool_output *out);

#endif
