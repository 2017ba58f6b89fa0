/* cli/run: `goose run -t "text" [--session ID]`: one message to the agent of a running server,
 * the reply streamed to the terminal, the exit status from its stop reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/utf8.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/reply.h"

#define MAX_TEXT (16u << 20) /* the message read from a file or stdin */

static const char usage[] =
    "usage: goose run (-t TEXT | -i FILE) [--session ID] [--approve-all | --deny-all] [options]\n"
    "\n"
    "Sends one message to the agent of a running server and streams the reply: text as it\n"
    "arrives, each tool call as `─── shell(command: ls) ───` followed by the first lines of its\n"
    "result. A spinner turns on stderr (when it is a terminal) while nothing arrives. Ctrl-C\n"
    "cancels the reply (the server stops it; what arrives until then is shown); a second\n"
    "Ctrl-C stops waiting.\n"
    "\n"
    "  -t, --text TEXT         the message\n"
    "  -i, --instructions FILE the message is the content of FILE (- for stdin)\n"
    "  -s, --session ID        continue this session; without it a new session is made whose\n"
    "                          working directory is the current directory (its id is said on\n"
    "                          stderr: `goose run: session ID`)\n"
    "  -n, --name NAME         the new session's name\n"
    "  --approve-all           allow every tool call the server asks about\n"
    "  --deny-all              deny every tool call the server asks about\n"
    "  --json                  each event as one JSON line on stdout:\n"
    "                          {\"event\":\"message_chunk\",\"id\":\"…\",\"data\":{…}}; a new "
    "session\n"
    "                          is the first line, {\"event\":\"session\",\"data\":{the session}}\n"
    "\n"
    "Tool confirmations: the server's execution mode (GOOSE_MODE: auto, approve, smart_approve,\n"
    "chat) decides whether a tool call is asked about. When it asks, goose run asks you on the\n"
    "terminal (allow once, always allow, deny, always deny, cancel) when stdin is one; without a\n"
    "terminal the call is denied (the model is told), unless --approve-all.\n"
    "\n"
    "Exit status: 0 the reply ended normally (stop reason end_turn); 1 it did not (cancelled,\n"
    "error, max_turns, max_tokens, the connection lost) or the server refused the request (the\n"
    "reason on stderr); 2 a usage error.\n"
    "\n";

/* Reads all of path ("-": stdin) into a string the caller frees; NULL after a message. */
static char *read_text(const char *path)
{
    buf b;
    if (!cl_read_file("goose run", path, MAX_TEXT, &b)) return NULL;
    char *s = b.len ? buf_detach(&b) : strdup("");
    buf_free(&b);
    return s;
}

int cli_run(int argc, char **argv)
{
    const char *prog = "goose run";
    cl_common c = {0};
    const char *text = NULL, *file = NULL, *sid = NULL, *name = NULL;
    reply_opts o = {.confirm = REPLY_ASK};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cl_common_opt(&c, prog, argc, argv, &i);
        if (!r) r = cl_opt_value(prog, "--text", "-t", argc, argv, &i, &text);
        if (!r) r = cl_opt_value(prog, "--instructions", "-i", argc, argv, &i, &file);
        if (!r) r = cl_opt_value(prog, "--session", "-s", argc, argv, &i, &sid);
        if (!r) r = cl_opt_value(prog, "--name", "-n", argc, argv, &i, &name);
        if (!r && (!strcmp(a, "--approve-all") || !strcmp(a, "--deny-all"))) {
            reply_confirm want = !strcmp(a, "--approve-all") ? REPLY_APPROVE : REPLY_DENY;
            if (o.confirm != REPLY_ASK && o.confirm != want) {
                fprintf(stderr, "%s: --approve-all and --deny-all: give one of them\n", prog);
                return 2;
            }
            r = 1, o.confirm = want;
        }
        if (r < 0) return 2;
        if (!r) {
            fprintf(stderr, "%s: unknown argument \"%s\"\n\n%s%s", prog, a, usage, cl_common_help);
            return 2;
        }
    }
    if (c.help) {
        printf("%s%s", usage, cl_common_help);
        return 0;
    }
    if (!text == !file) {
        fprintf(stderr, "%s: give the message with -t TEXT or -i FILE (one of them)\n\n%s", prog,
                usage);
        return 2;
    }
    o.json = c.json;
    char *owned = NULL;
    if (file && !(text = owned = read_text(file))) return 1;
    if (!*text) {
        fprintf(stderr, "%s: the message is empty\n", prog);
        free(owned);
        return 2;
    }
    /* Checked before anything is made on the server: no empty session left behind. */
    if (!utf8_valid(text, strlen(text)) || (name && !utf8_valid(name, strlen(name)))) {
        fprintf(stderr, "%s: the %s is not valid UTF-8\n", prog,
                utf8_valid(text, strlen(text)) ? "session name" : "message");
        free(owned);
        return 2;
    }
    cl_client *cl = cl_open(&c, prog);
    if (!cl) {
        free(owned);
        return 1;
    }
    int rc = 1;
    char *made = NULL;
    if (!sid) {
        json_t *s = cl_session_create(cl, name);
        if (!s) goto out;
        sid = made = strdup(cl_str(s, "id", ""));
        if (c.json) {
            json_t *line = json_pack("{s:s, s:O}", "event", "session", "data", s);
            char *t = json_dumps(line, JSON_COMPACT);
            if (t) printf("%s\n", t);
            fflush(stdout);
            free(t);
            json_decref(line);
        } else {
            fprintf(stderr, "%s: session %s in %s\n", prog, sid, cl_str(s, "working_dir", "?"));
        }
        json_decref(s);
        if (!made) goto out;
    }
    reply_signals();
    char stop[32];
    reply_end end = reply_run(cl, sid, text, &o, stop);
    rc = end == REPLY_END_TURN ? 0 : 1;
    if (end == REPLY_REFUSED && made) { /* nothing of this run is left in the session made */
        char *esc = cl_escape(made), path[600];
        snprintf(path, sizeof path, "/api/sessions/%s", esc ? esc : "");
        free(esc);
        json_t *gone = cl_call(cl, "DELETE", path, NULL, NULL);
        if (gone)
            fprintf(stderr, "%s: session %s removed: the server refused its first message\n", prog,
                    made);
        json_decref(gone);
    }
out:
    free(made);
    free(owned);
    cl_close(cl);
    return rc;
}
