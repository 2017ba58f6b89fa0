/* developer: the built-in developer extension (extension.h): its tool table and its ops, which
 * start, cancel and close calls. A call's life is call.c's; the tools live beside it: shell.c,
 * editor.c, files.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

#define LOG_MOD "developer"

/* ---- the tool table ---- */

/* The descriptions and list_files' schema are formats: the limits come from dev.h, so they are
 * written in one place. The shell's time limit and output cap are set per call by the host. */
static const char SHELL_DESC[] =
    "Run a shell command with /bin/sh -c in the session's working directory and return its exit "
    "status, stdout and stderr (captured separately). Each call is a fresh shell: `cd`, variables "
    "and `source` do not persist between calls, so chain them (`cd sub && make`). stdin is "
    "/dev/null, so interactive prompts get end-of-file: pass flags such as `-y` instead. "
    "Limits: the command is killed (with everything it started) when it runs past its time "
    "limit; each of stdout and stderr keeps a bounded number of bytes (the first and last halves, "
    "with a note saying how much was left out in between), so avoid commands that print a lot - "
    "filter them (grep, head, tail) or redirect output to a file and read the parts you need. "
    "Prefer `rg` / `grep -rn` to search code and developer__list_files to explore directories. ";

/* What the shell's description says of where its commands run (build_tools picks by the
 * sandbox's settings). */
static const char SHELL_OPEN[] =
    "The call returns when the command ends; background processes that still hold its output "
    "then get SIGHUP, so start a long-running process as `nohup server > server.log 2>&1 &` to "
    "keep it running.";
static const char SHELL_SANDBOXED[] =
    "The command runs in a sandbox: it can write only inside the working directory, and "
    "everything it starts, background processes included, ends when it ends: start a server and "
    "use it in the same call (`./server & sleep 1; curl localhost:8080; kill %1`).";
static const char SHELL_NET_OWN[] =
    " It has a network of its own: it reaches the internet, but not the services that listen "
    "only on the machine's localhost (a local database or web server).";
/* A user who is not an admin: kept from the host and the private networks (sandbox.h). */
static const char SHELL_NET_USER[] =
    " It has a network of its own: it reaches the internet, but not the services of the "
    "machine it runs on (its localhost and its other addresses) nor those of private networks "
    "(10.x, 172.16-31.x, 192.168.x addresses).";
static const char SHELL_NET_NONE[] = " It has no network.";

static const char EDITOR_DESC_FMT[] =
    "View and edit text files. Paths are absolute or relative to the session's working directory. "
    "Commands:\n"
    "- view: show a file with line numbers (`N: text`), or list a directory. view_range [start, "
    "end] shows lines start to end, 1-based and inclusive; end -1 means to the end of the file. "
    "Files over %d KB and binary files are refused; files over %d lines need a view_range.\n"
    "- write: create or overwrite the file with file_text (parent directories are created; a "
    "final newline is added when missing). Use it for new files; prefer str_replace for edits.\n"
    "- str_replace: replace old_str with new_str (omit new_str to delete). old_str must match "
    "the file exactly, whitespace and indentation included, and occur exactly once: include "
    "enough surrounding lines to make it unique. View the file first.\n"
    "- insert: insert new_str as new lines after line insert_line (0 inserts at the top, -1 at "
    "the end).\n"
    "- undo_edit: restore the file as it was before the last write, str_replace or insert (up to "
    "%d steps per file).\n"
    "Edits are limited to files of %d MB.";

static const char LIST_DESC_FMT[] =
    "List the files and directories under a path (default: the working directory), recursively "
    "up to max_depth levels (default %d; 1 lists only the path's own entries). Output is sorted, "
    "one entry per line, relative to the path, directories ending in `/`. `.git` and "
    "`node_modules` are skipped; symbolic links are listed but not followed. pattern is a shell "
    "glob (`*`, `?`, `[...]`) matched against each entry's name, or against its relative path "
    "when the pattern contains `/` (`*` then also matches `/`, e.g. `src/*.c`). At most %d "
    "entries are shown, with a note when the listing is cut: narrow it with path, max_depth or "
    "pattern.";

static const char INSTRUCTIONS[] =
    "The developer extension lets you work on the user's machine, in the session's working "
    "directory.\n"
    "- developer__shell runs shell commands (builds, tests, git, searches with rg or grep). Each "
    "call is a fresh /bin/sh with no terminal and stdin closed; state such as `cd` does not "
    "persist between calls. Keep output small: filter it or redirect it to a file.\n"
    "- developer__text_editor views and edits files. View a file before editing it; make edits "
    "with str_replace (old_str must occur exactly once), create files with write, and undo a "
    "mistake with undo_edit.\n"
    "- developer__list_files shows the layout of a directory tree.\n"
    "Relative paths are resolved against the working directory.";

/* The input schemas, as JSON text (plain JSON Schema: type, properties, required, enum, items
 * and descriptions only, which every provider accepts). */
static const char SHELL_SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"command\": {\"type\": \"string\","
    "   \"description\": \"The command line, run as /bin/sh -c <command>.\"}},"
    " \"required\": [\"command\"]}";

static const char EDITOR_SCHEMA[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"command\": {\"type\": \"string\","
    "   \"enum\": [\"view\", \"write\", \"str_replace\", \"insert\", \"undo_edit\"],"
    "   \"description\": \"The operation to perform.\"},"
    "  \"path\": {\"type\": \"string\","
    "   \"description\": \"The file or directory: absolute, or relative to the working "
    "directory.\"},"
    "  \"file_text\": {\"type\": \"string\","
    "   \"description\": \"write: the complete new content of the file.\"},"
    "  \"old_str\": {\"type\": \"string\","
    "   \"description\": \"str_replace: the exact text to replace; it must occur exactly once in "
    "the file.\"},"
    "  \"new_str\": {\"type\": \"string\","
    "   \"description\": \"str_replace: the replacement (default empty). insert: the lines to "
    "insert.\"},"
    "  \"insert_line\": {\"type\": \"integer\","
    "   \"description\": \"insert: the line after which new_str goes (0 = at the top, -1 = at the "
    "end).\"},"
    "  \"view_range\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"},"
    "   \"description\": \"view: [start, end], 1-based and inclusive; end -1 = to the end of the "
    "file.\"}},"
    " \"required\": [\"command\", \"path\"]}";

static const char LIST_SCHEMA_FMT[] =
    "{\"type\": \"object\","
    " \"properties\": {"
    "  \"path\": {\"type\": \"string\","
    "   \"description\": \"The directory to list (default: the working directory).\"},"
    "  \"max_depth\": {\"type\": \"integer\","
    "   \"description\": \"How many levels to descend, at least 1 (default %d).\"},"
    "  \"pattern\": {\"type\": \"string\","
    "   \"description\": \"Show only entries matching this glob, e.g. `*.py` or `src/*test*`.\"}},"
    " \"required\": []}";

/* MCP's tool annotations: hints for approval policies and clients. */
static const char SHELL_ANN[] =
    "{\"title\": \"Shell\", \"readOnlyHint\": false, \"destructiveHint\": true,"
    " \"idempotentHint\": false, \"openWorldHint\": true}";
static const char EDITOR_ANN[] =
    "{\"title\": \"Text editor\", \"readOnlyHint\": false, \"destructiveHint\": true,"
    " \"idempotentHint\": false, \"openWorldHint\": false}";
static const char LIST_ANN[] =
    "{\"title\": \"List files\", \"readOnlyHint\": true, \"openWorldHint\": false}";

enum { TOOL_SHELL, TOOL_EDITOR, TOOL_LIST };

/* One tool as MCP lists it, from JSON texts; NULL when one does not parse (a typo above: the
 * unit test catches it) or out of memory. */
static json_t *tool_entry(const char *name, const char *desc, const char *schema, const char *ann)
{
    json_error_t je;
    json_t *s = json_loads(schema, 0, &je), *a = s ? json_loads(ann, 0, &je) : NULL;
    if (!s || !a) {
        log_error(LOG_MOD, "%s: bad schema or annotations: %s", name, je.text);
        json_decref(s);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:o, s:o}", "name", name, "description", desc, "inputSchema", s,
                     "annotations", a);
}

/* The tools; user: the description of a user's shell (who is not an admin). */
static json_t *build_tools(bool user)
{
    char editor_desc[sizeof EDITOR_DESC_FMT + 64], list_desc[sizeof LIST_DESC_FMT + 64],
        list_schema[sizeof LIST_SCHEMA_FMT + 64];
    snprintf(editor_desc, sizeof editor_desc, EDITOR_DESC_FMT, DEV_VIEW_MAX / 1024, DEV_VIEW_LINES,
             DEV_UNDO_STEPS, DEV_EDIT_MAX / (1024 * 1024));
    snprintf(list_desc, sizeof list_desc, LIST_DESC_FMT, DEV_LIST_DEPTH, DEV_LIST_MAX);
    snprintf(list_schema, sizeof list_schema, LIST_SCHEMA_FMT, DEV_LIST_DEPTH);
    const sandbox_cfg *sb = sandbox_current();
    bool boxed = sb && !sb->open;
    char shell_desc[sizeof SHELL_DESC + sizeof SHELL_OPEN + sizeof SHELL_SANDBOXED +
                    sizeof SHELL_NET_USER];
    snprintf(shell_desc, sizeof shell_desc, "%s%s%s", SHELL_DESC,
             boxed ? SHELL_SANDBOXED : SHELL_OPEN,
             !boxed                           ? ""
             : sb->net == SANDBOX_NET_OUTSIDE ? (user ? SHELL_NET_USER : SHELL_NET_OWN)
             : sb->net == SANDBOX_NET_NONE    ? SHELL_NET_NONE
                                              : "");
    json_t *tools = json_array();
    if (!tools ||
        json_array_append_new(tools, tool_entry("shell", shell_desc, SHELL_SCHEMA, SHELL_ANN)) ||
        json_array_append_new(tools,
                              tool_entry("text_editor", editor_desc, EDITOR_SCHEMA, EDITOR_ANN)) ||
        json_array_append_new(tools, tool_entry("list_files", list_desc, list_schema, LIST_ANN))) {
        json_decref(tools);
        return NULL;
    }
    return tools;
}

/* The tool list is the same for every instance (a session each), so it is built once and
 * shared: jansson's reference counts are atomic, and nothing changes it after it is built. It
 * lives as long as the process. */
static json_t *shared_tools[2]; /* an admin's, and a user's (their shell's network) */
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_tools_build(void)
{
    shared_tools[0] = build_tools(false);
    shared_tools[1] = build_tools(true);
}

static json_t *tools_ref(bool user)
{
    pthread_once(&shared_once, shared_tools_build);
    return shared_tools[user] ? json_incref(shared_tools[user]) : NULL;
}

/* ---- calls of the text editor and list_files (the shell has its own: shell.c) ---- */

/* A job's result back on the loop. */
static void job_done(void *arg)
{
    dev_call_end(arg);
}

/* On a worker: the text editor or list_files. */
static void job_run(void *arg)
{
    dev_call *c = arg;
    c->job(c, &c->out);
    if (loop_post(c->d->host.l, job_done, c))
        log_error(LOG_MOD, "a tool's result could not be handed back: the loop is shutting down");
}

/* ---- the extension's ops ---- */

static const char *dev_instructions(extension *x)
{
    return INSTRUCTIONS;
}

static json_t *dev_tools(extension *x)
{
    return ((developer *)x)->tools;
}

static ext_call *dev_call_start(extension *x, const char *tool, json_t *args,
                                const ext_call_opts *o, ext_done done, void *ud)
{
    developer *d = (developer *)x;
    dev_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base.x = x;
    c->d = d;
    c->done = done;
    c->ud = ud;
    atomic_init(&c->cancel, false);
    snprintf(c->cwd, sizeof c->cwd, "%s", d->orig->cwd);
    c->next = d->calls;
    if (c->next) c->next->prev = c;
    d->calls = c;
    d->refs++;

    if (args && json_is_null(args)) args = NULL;
    bool ok;
    if (args && !json_is_object(args)) {
        dev_fail(&c->out, GD_EINVAL, "developer__%s: the arguments must be a JSON object",
                 tool ? tool : "(no name)");
        ok = dev_call_post(c) == GD_OK;
    } else if (tool && !strcmp(tool, "shell")) {
        ok = dev_shell_start(c, args, o);
    } else if (tool && (!strcmp(tool, "text_editor") || !strcmp(tool, "list_files"))) {
        c->args = json_incref(args);
        c->job = !strcmp(tool, "list_files") ? dev_files_run : dev_editor_run;
        ok = dev_submit(c, job_run) == GD_OK;
    } else {
        dev_fail(&c->out, GD_EINVAL,
                 "unknown tool '%s': the developer extension has shell, text_editor and "
                 "list_files",
                 tool ? tool : "");
        ok = dev_call_post(c) == GD_OK;
    }
    if (!ok) {
        dev_call_free(c);
        return NULL;
    }
    return &c->base;
}

static void dev_cancel(ext_call *ec)
{
    dev_call *c = (dev_call *)ec;
    atomic_store(&c->cancel, true);
    if (c->sh) dev_shell_cancel(c);
}

static void dev_close(extension *x)
{
    developer *d = (developer *)x;
    d->closed = true;
    while (d->calls) {
        dev_call *c = d->calls;
        dev_call_unlink(c);
        c->orphan = true;
        atomic_store(&c->cancel, true);
        /* A running shell is killed now; a job, a start or a posted result still to come frees
         * its call when it arrives (the extension lives on until then, without the host). */
        if (c->sh && dev_shell_close(c)) dev_call_free(c);
    }
    dev_unref(d);
}

/* list_files and the text editor's view only read; the shell and the other edits may write. */
static bool dev_read_only(extension *x, const char *tool, json_t *args)
{
    (void)x;
    if (!strcmp(tool, "list_files")) return true;
    const char *cmd = json_string_value(json_object_get(args, "command"));
    return !strcmp(tool, "text_editor") && cmd && !strcmp(cmd, "view");
}

static const extension_ops OPS = {
    .read_only = dev_read_only,
    .instructions = dev_instructions,
    .tools = dev_tools,
    .call = dev_call_start,
    .cancel = dev_cancel,
    .close = dev_close,
};

/* The shared tools without the shell (a new array; NULL when out of memory). */
static json_t *tools_without_shell(json_t *all)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(all, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (out && (!n || strcmp(n, "shell")) && json_array_append(out, t)) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

extension *developer_new(const ext_host *host, const json_t *cfg)
{
    developer *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->base.ops = &OPS;
    snprintf(d->base.name, sizeof d->base.name, "developer");
    d->host = *host;
    d->orig = host;
    /* Copies: workers may still read them after close, when the host may be gone. */
    d->env = host->env ? sandbox_env_dup(host->env) : sandbox_env_new();
    d->protected_dirs = sandbox_env_dup((char *const *)host->protected_dirs);
    d->tools = tools_ref(host->cmd_reach != NULL);
    if (d->tools && json_is_false(json_object_get(cfg, "allow_shell"))) {
        json_t *some = tools_without_shell(d->tools);
        json_decref(d->tools);
        d->tools = some;
    }
    if (!d->env || !d->protected_dirs || !d->tools || pthread_mutex_init(&d->undo.mu, NULL)) {
        json_decref(d->tools);
        sandbox_env_free(d->env);
        sandbox_env_free(d->protected_dirs);
        free(d);
        return NULL;
    }
    d->host.env = d->env;
    d->host.protected_dirs = (const char *const *)d->protected_dirs;
    d->refs = 1;
    return &d->base;
}
