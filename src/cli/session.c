/* cli/session: `goose session list|show|rm|export|import` against a running server, and `goose
 * session` alone (or `resume ID`), the interactive chat of chat.c. */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/utf8.h"
#include "cli/chat.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/reply.h"

#define MAX_IMPORT (256u << 20) /* a file given to import */
#define NAME_COLS  28           /* a name's column in the list */

static const char usage[] =
    "usage: goose session [--session ID | --resume | -n NAME] [options]   an interactive chat\n"
    "       goose session resume ID [options]      the chat, in an existing session\n"
    "       goose session list [--limit N] [--after CURSOR] [options]\n"
    "       goose session show ID [options]\n"
    "       goose session rm ID [options]\n"
    "       goose session export ID [-o FILE] [options]\n"
    "       goose session import FILE [--working-directory DIR] [options]\n"
    "       goose session fork ID [--at MESSAGE_ID] [-n NAME] [options]\n"
    "\n"
    "The sessions of a running server.\n"
    "  (no command)  a chat in the terminal: a new session in the current directory, or the one\n"
    "                of --session ID (-s), or the newest one with --resume (-r); -n NAME names a\n"
    "                new one. Type a message and Enter; the reply streams as in `goose run`.\n"
    "                When the server asks to confirm a tool call you answer: y allow once,\n"
    "                a always allow, n deny, d always deny, c cancel the reply. Ctrl-C during a\n"
    "                reply cancels it (twice: stop waiting); /exit, /quit or Ctrl-D leaves.\n"
    "  list          the sessions, newest first: id, last update, messages, name, directory\n"
    "                (--limit N, default 100); when there are more, says so and how to see\n"
    "                the next page (--after CURSOR; --json then gives {\"sessions\", "
    "\"next_cursor\"})\n"
    "  show ID       the session and its conversation (--json: {\"session\":…,\"messages\":[…]})\n"
    "  rm ID         deletes the session and its messages (also: remove, delete)\n"
    "  export ID     the session with all its messages as one JSON document, on stdout or into\n"
    "                -o FILE (made with mode 0600)\n"
    "  import FILE   a new session from an export (goosed's, or the real Goose's JSON session\n"
    "                export, or an older Goose's .jsonl session file); FILE - reads stdin;\n"
    "                --working-directory DIR puts it there\n"
    "  fork ID       a new session with a copy of the conversation, up to and including the\n"
    "                message --at MESSAGE_ID (its id in `show --json`; default: all of it);\n"
    "                -n NAME names it\n"
    "\n"
    "Exit status: 0 done, 1 a failure (the server's answer on stderr), 2 a usage error.\n"
    "\n";

/* "/api/sessions/ID" + tail; NULL when out of memory (said). The caller frees. */
static char *session_path(cl_client *cl, const char *id, const char *tail)
{
    char *esc = cl_escape(id);
    char *p = NULL;
    if (!esc || asprintf(&p, "/api/sessions/%s%s", esc, tail) < 0) p = NULL;
    free(esc);
    if (!p) fprintf(stderr, "%s: out of memory\n", cl_prog(cl));
    return p;
}

static long num(json_t *o, const char *key)
{
    return (long)json_integer_value(json_object_get(o, key));
}

/* Writes at most cols bytes of s (cut on a character boundary, "…" when cut), padded to cols
 * columns when pad. */
static void put_cell(const char *s, size_t cols, bool pad)
{
    size_t len = strlen(s), n = len;
    if (len > cols) n = utf8_prefix(s, len, cols - 1);
    cl_put_text(stdout, s, n);
    size_t shown = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) shown++;
    if (n < len) fputs("…", stdout), shown++;
    if (pad)
        for (; shown < cols; shown++)
            fputc(' ', stdout);
}

/* label, then s (from the server: its controls shown as \xHH, never run by the terminal), then a
 * newline. */
static void put_line(const char *label, const char *s)
{
    fputs(label, stdout);
    cl_puts_text(stdout, s);
    fputc('\n', stdout);
}

static int cmd_list(cl_client *cl, const cl_common *c, const char *limit, const char *after)
{
    /* by cursor: a page costs the same at any depth, and the answer says whether more follow */
    char *esc = cl_escape(after ? after : "");
    char *path = NULL;
    if (!esc || asprintf(&path, "/api/sessions?limit=%s&cursor=%s", limit ? limit : "100", esc) < 0)
        path = NULL;
    free(esc);
    json_t *page = path ? cl_call(cl, "GET", path, NULL, NULL) : NULL;
    free(path);
    if (!page) return 1;
    json_t *list = json_object_get(page, "sessions");
    if (!cl_shape(cl, json_is_array(list), "a page of sessions")) {
        json_decref(page);
        return 1;
    }
    const char *next = cl_str(page, "next_cursor", NULL);
    if (c->json) {
        cl_print_json(after ? page : list); /* the array, as before, unless paging on */
        json_decref(page);
        return 0;
    }
    if (!json_array_size(list)) {
        printf("no sessions\n");
        json_decref(page);
        return 0;
    }
    printf("%-36s  %-20s  %8s  %-*s  %s\n", "ID", "UPDATED", "MESSAGES", NAME_COLS, "NAME",
           "DIRECTORY");
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s)
    {
        printf("%-36s  %-20s  %8ld  ", cl_str(s, "id", "?"), cl_str(s, "updated_at", ""),
               num(s, "message_count"));
        put_cell(cl_str(s, "name", ""), NAME_COLS, true);
        put_line("  ", cl_str(s, "working_dir", ""));
    }
    if (next)
        fprintf(stderr, "%s: more sessions follow: goose session list --limit %s --after %s\n",
                cl_prog(cl), limit ? limit : "100", next);
    json_decref(page);
    return 0;
}

/* Prints one stored message's items: text as is (but for its control characters, as run shows
 * them), tool requests and responses as run shows them. */
static void print_message(json_t *m)
{
    const char *role = cl_str(m, "role", "?");
    json_t *content = json_object_get(m, "content");
    bool only_results = json_array_size(content) > 0;
    size_t i;
    json_t *it;
    json_array_foreach(content, i, it) if (strcmp(cl_str(it, "type", ""), "tool_response"))
        only_results = false;
    if (!only_results) {
        fputs("\n── ", stdout);
        cl_puts_text(stdout, role);
        fputs(" · ", stdout);
        cl_puts_text(stdout, cl_str(m, "created_at", ""));
        fputs(" ──\n", stdout);
    }
    if (json_is_string(content)) {
        put_line("", json_string_value(content));
        return;
    }
    json_array_foreach(content, i, it)
    {
        const char *type = cl_str(it, "type", "");
        if (!strcmp(type, "text")) {
            const char *t = cl_str(it, "text", "");
            size_t n = strlen(t);
            cl_put_text(stdout, t, n);
            if (!n || t[n - 1] != '\n') fputc('\n', stdout);
        } else if (!strcmp(type, "tool_request")) {
            reply_print_tool_call(stdout, cl_str(it, "name", "?"),
                                  json_object_get(it, "arguments"));
        } else if (!strcmp(type, "tool_response")) {
            /* Its text items, joined. */
            buf b;
            buf_init(&b, 1u << 20);
            size_t k;
            json_t *p;
            json_array_foreach(json_object_get(it, "content"), k, p)
            {
                const char *t = cl_str(p, "text", NULL);
                /* A result over the cap is shown by its start: only the first lines are. */
                if (t) buf_ignore(buf_puts(&b, t));
            }
            reply_print_tool_result(stdout, b.data ? b.data : "",
                                    json_is_true(json_object_get(it, "is_error")));
            buf_free(&b);
        } else if (!strcmp(type, "thinking")) {
            /* not shown, as in the chat */
        } else {
            fputc('[', stdout);
            cl_puts_text(stdout, type);
            fputs("]\n", stdout);
        }
    }
}

static int cmd_show(cl_client *cl, const cl_common *c, const char *id)
{
    char *p1 = session_path(cl, id, ""), *p2 = session_path(cl, id, "/messages");
    json_t *s = p1 ? cl_call(cl, "GET", p1, NULL, NULL) : NULL;
    json_t *msgs = s && p2 ? cl_call(cl, "GET", p2, NULL, NULL) : NULL;
    free(p1);
    free(p2);
    int rc = 1;
    if (!msgs || !cl_shape(cl,
                           json_is_object(s) && json_is_string(json_object_get(s, "id")) &&
                               json_is_array(msgs),
                           "a session and its messages"))
        goto out;
    rc = 0;
    if (c->json) {
        json_t *o = json_pack("{s:O, s:O}", "session", s, "messages", msgs);
        cl_print_json(o);
        json_decref(o);
        goto out;
    }
    put_line("session    ", cl_str(s, "id", "?"));
    put_line("name       ", cl_str(s, "name", ""));
    put_line("directory  ", cl_str(s, "working_dir", ""));
    put_line("created    ", cl_str(s, "created_at", ""));
    put_line("updated    ", cl_str(s, "updated_at", ""));
    printf("messages   %ld\n", num(s, "message_count"));
    printf("tokens     %ld in, %ld out\n", num(s, "input_tokens"), num(s, "output_tokens"));
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) print_message(m);
out:
    json_decref(s);
    json_decref(msgs);
    return rc;
}

static int cmd_rm(cl_client *cl, const cl_common *c, const char *id)
{
    char *p = session_path(cl, id, "");
    json_t *r = p ? cl_call(cl, "DELETE", p, NULL, NULL) : NULL;
    free(p);
    if (!r) return 1;
    if (c->json)
        cl_print_json(r);
    else
        printf("removed session %s\n", id);
    json_decref(r);
    return 0;
}

static int cmd_export(cl_client *cl, const char *id, const char *out)
{
    char *p = session_path(cl, id, "/export");
    json_t *doc = p ? cl_call(cl, "GET", p, NULL, NULL) : NULL;
    free(p);
    if (!doc) return 1;
    int rc = 0;
    if (!out || !strcmp(out, "-")) {
        cl_print_json(doc);
    } else {
        /* Mode 0600: a conversation is private. */
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0 && fchmod(fd, 0600) != 0) { /* a file that was there keeps its mode else */
            close(fd);
            fd = -1;
        }
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!f) {
            fprintf(stderr, "%s: cannot write %s: %m\n", cl_prog(cl), out);
            if (fd >= 0) close(fd);
            rc = 1;
        } else {
            int bad = json_dumpf(doc, f, JSON_INDENT(2)) || fputc('\n', f) == EOF;
            bad |= fclose(f) != 0;
            if (bad) {
                fprintf(stderr, "%s: cannot write %s: %m\n", cl_prog(cl), out);
                rc = 1;
            } else {
                fprintf(stderr, "exported session %s (%zu messages) to %s\n", id,
                        json_array_size(json_object_get(doc, "messages")), out);
            }
        }
    }
    json_decref(doc);
    return rc;
}

static int cmd_fork(cl_client *cl, const cl_common *c, const char *id, const char *at,
                    const char *name)
{
    char *p = session_path(cl, id, "/fork");
    json_t *body = json_object();
    if (at) json_object_set_new(body, "message_id", json_string(at));
    if (name) json_object_set_new(body, "name", json_string(name));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    json_t *r = p && text ? cl_call(cl, "POST", p, text, NULL) : NULL;
    if (p && !text) fprintf(stderr, "%s: out of memory\n", cl_prog(cl));
    free(p);
    free(text);
    if (!r) return 1;
    if (c->json)
        cl_print_json(r);
    else {
        fputs("forked session ", stdout);
        cl_puts_text(stdout, cl_str(r, "id", "?"));
        fputs(" \"", stdout);
        cl_puts_text(stdout, cl_str(r, "name", ""));
        printf("\" (%ld messages) from %s\n", num(r, "message_count"), id);
    }
    json_decref(r);
    return 0;
}

/* The older Goose's session file (`.jsonl`): its first line the session's metadata
 * ({"working_dir", "description", ...}), each line after one message in Goose's own format. As
 * the document of Goose's JSON export ({"description", "working_dir", "conversation": [...]}),
 * which goosed imports; NULL (said on stderr) when text is not such a file. */
static char *goose_jsonl(const char *prog, const char *file, const char *text)
{
    json_t *doc = json_object(), *conv = json_array();
    json_object_set_new(doc, "conversation", conv);
    size_t line = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        line++;
        if (n && strspn(p, " \t\r") < n) {
            json_error_t je;
            json_t *v = json_loadb(p, n, 0, &je);
            if (!json_is_object(v)) {
                fprintf(stderr, "%s: %s: line %zu is not a JSON object (%s)\n", prog, file, line,
                        v ? "another value" : je.text);
                json_decref(v);
                json_decref(doc);
                return NULL;
            }
            if (line == 1 && !json_object_get(v, "role")) { /* the metadata */
                json_t *wd = json_object_get(v, "working_dir");
                json_t *desc = json_object_get(v, "description");
                if (json_is_string(wd)) json_object_set(doc, "working_dir", wd);
                if (json_is_string(desc)) json_object_set(doc, "description", desc);
                json_decref(v);
            } else {
                json_array_append_new(conv, v);
            }
        }
        p += n;
        if (*p) p++;
    }
    char *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!out) fprintf(stderr, "%s: out of memory\n", prog);
    return out;
}

static int cmd_import(cl_client *cl, const cl_common *c, const char *file, const char *wd)
{
    buf b;
    if (!cl_read_file(cl_prog(cl), file, MAX_IMPORT, &b)) return 1;
    if (!b.len) {
        fprintf(stderr, "%s: cannot read %s: it is empty\n", cl_prog(cl), file);
        buf_free(&b);
        return 1;
    }
    /* A NUL byte ends the text a JSON reader and the request see: refused, so that nothing after
     * it is dropped without a word. */
    const char *nul = memchr(b.data, '\0', b.len);
    if (nul) {
        size_t line = 1;
        for (const char *q = b.data; q < nul; q++)
            line += *q == '\n';
        fprintf(stderr,
                "%s: %s: line %zu holds a NUL byte (byte %zu of the file): not a session "
                "export goose can import\n",
                cl_prog(cl), file, line, (size_t)(nul - b.data) + 1);
        buf_free(&b);
        return 1;
    }
    /* JSON Lines (the older Goose's session files): taken as the document of its JSON export */
    json_t *probe = json_loadb(b.data, b.len, JSON_DISABLE_EOF_CHECK, NULL);
    size_t n = strlen(file);
    bool lines = n > 6 && !strcmp(file + n - 6, ".jsonl");
    if (!lines && json_is_object(probe)) { /* one object, then more text: several lines */
        json_error_t je;
        json_t *whole = json_loadb(b.data, b.len, 0, &je);
        lines = !whole;
        json_decref(whole);
    }
    json_decref(probe);
    if (lines) {
        char *doc = goose_jsonl(cl_prog(cl), file, b.data);
        buf_free(&b);
        if (!doc) return 1;
        buf_init(&b, MAX_IMPORT);
        gd_err e = buf_puts(&b, doc);
        free(doc);
        if (e) {
            fprintf(stderr, "%s: %s is larger than an import takes\n", cl_prog(cl), file);
            buf_free(&b);
            return 1;
        }
    }
    char *path = NULL, *esc = wd ? cl_escape(wd) : NULL;
    if (wd && esc) {
        if (asprintf(&path, "/api/sessions/import?working_directory=%s", esc) < 0) path = NULL;
    } else if (!wd) {
        path = strdup("/api/sessions/import");
    }
    free(esc);
    json_t *r = path ? cl_call(cl, "POST", path, b.data, NULL) : NULL;
    free(path);
    buf_free(&b);
    if (!r) return 1;
    if (c->json) {
        cl_print_json(r);
    } else {
        fputs("imported session ", stdout);
        cl_puts_text(stdout, cl_str(r, "id", "?"));
        fputs(" \"", stdout);
        cl_puts_text(stdout, cl_str(r, "name", ""));
        printf("\" (%ld messages", num(r, "message_count"));
        if (num(r, "items_left_out")) printf("; %ld items left out", num(r, "items_left_out"));
        put_line(") in ", cl_str(r, "working_dir", ""));
    }
    json_decref(r);
    return 0;
}

int cli_session(int argc, char **argv)
{
    const char *prog = "goose session";
    cl_common c = {0};
    const char *pos[3] = {0};
    int npos = 0;
    const char *sid = NULL, *name = NULL, *out = NULL, *limit = NULL, *wd = NULL, *after = NULL,
               *at = NULL;
    bool resume = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cl_common_opt(&c, prog, argc, argv, &i);
        if (!r) r = cl_opt_value(prog, "--session", "-s", argc, argv, &i, &sid);
        if (!r) r = cl_opt_value(prog, "--name", "-n", argc, argv, &i, &name);
        if (!r) r = cl_opt_value(prog, "--output", "-o", argc, argv, &i, &out);
        if (!r) r = cl_opt_value(prog, "--limit", NULL, argc, argv, &i, &limit);
        if (!r) r = cl_opt_value(prog, "--after", NULL, argc, argv, &i, &after);
        if (!r) r = cl_opt_value(prog, "--at", NULL, argc, argv, &i, &at);
        if (!r) r = cl_opt_value(prog, "--working-directory", NULL, argc, argv, &i, &wd);
        if (!r && (!strcmp(a, "--resume") || !strcmp(a, "-r"))) r = 1, resume = true;
        if (r < 0) return 2;
        if (r) continue;
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option \"%s\"\n\n%s%s", prog, a, usage, cl_common_help);
            return 2;
        }
        if (npos == 3) {
            fprintf(stderr, "%s: too many arguments\n\n%s", prog, usage);
            return 2;
        }
        pos[npos++] = a;
    }
    if (c.help) {
        printf("%s%s", usage, cl_common_help);
        return 0;
    }
    static const struct {
        const char *name;
        int args; /* positional arguments it takes */
    } cmds[] = {{"list", 0},   {"show", 1},   {"rm", 1},     {"remove", 1}, {"delete", 1},
                {"export", 1}, {"import", 1}, {"resume", 1}, {"fork", 1}};
    const char *cmd = npos ? pos[0] : NULL;
    if (cmd) {
        size_t k = 0, n = sizeof cmds / sizeof *cmds;
        while (k < n && strcmp(cmds[k].name, cmd))
            k++;
        if (k == n) {
            fprintf(stderr, "%s: unknown command \"%s\"\n\n%s", prog, cmd, usage);
            return 2;
        }
        if (npos - 1 != cmds[k].args) {
            fprintf(stderr, "%s %s: %s\n\n%s", prog, cmd,
                    cmds[k].args ? "needs one argument" : "takes no argument", usage);
            return 2;
        }
    }
    if (limit && (strspn(limit, "0123456789") != strlen(limit) || !*limit || strlen(limit) > 6)) {
        fprintf(stderr, "%s: --limit takes a number\n", prog);
        return 2;
    }
    if (at && (!cmd || strcmp(cmd, "fork"))) {
        fprintf(stderr, "%s: --at is for fork\n", prog);
        return 2;
    }
    if ((sid || resume) && cmd && strcmp(cmd, "resume")) {
        fprintf(stderr, "%s: --session and --resume are for the chat\n", prog);
        return 2;
    }
    cl_client *cl = cl_open(&c, prog);
    if (!cl) return 1;
    int rc;
    if (!cmd || !strcmp(cmd, "resume")) {
        if (cmd) sid = pos[1];
        char *newest = NULL;
        if (resume && !sid) {
            json_t *list = cl_call(cl, "GET", "/api/sessions?limit=1", NULL, NULL);
            if (!list) {
                cl_close(cl);
                return 1;
            }
            const char *id = cl_str(json_array_get(list, 0), "id", NULL);
            if (!id)
                fprintf(stderr, "%s: there is no session to resume\n", prog);
            else
                sid = newest = strdup(id);
            json_decref(list);
            if (!sid) {
                cl_close(cl);
                return 1;
            }
        }
        rc = chat_main(cl, sid, name, c.json);
        free(newest);
    } else if (!strcmp(cmd, "list")) {
        rc = cmd_list(cl, &c, limit, after);
    } else if (!strcmp(cmd, "show")) {
        rc = cmd_show(cl, &c, pos[1]);
    } else if (!strcmp(cmd, "export")) {
        rc = cmd_export(cl, pos[1], out);
    } else if (!strcmp(cmd, "import")) {
        rc = cmd_import(cl, &c, pos[1], wd);
    } else if (!strcmp(cmd, "fork")) {
        rc = cmd_fork(cl, &c, pos[1], at, name);
    } else {
        rc = cmd_rm(cl, &c, pos[1]);
    }
    cl_close(cl);
    return rc;
}
