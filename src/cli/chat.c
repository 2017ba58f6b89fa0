/* cli/chat: `goose session` alone: a chat with the agent of a running server in the terminal. A
 * prompt, the reply streamed as `goose run` shows it, tool confirmations asked; /exit, /quit or
 * end of input (Ctrl-D) leaves; Ctrl-C during a reply cancels the reply, at the prompt it drops
 * the line typed and says how to leave. Lines are read through cli/lineedit (an editor and a
 * history on a terminal). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/chat.h"
#include "cli/client.h"
#include "cli/lineedit.h"
#include "cli/reply.h"

#define PROMPT "( O)> "
#define MORE   "   .. "

static const char help[] =
    "Type a message and press Enter to send it; end a line with \\ to go on\n"
    "on the next (a message of several lines). Commands:\n"
    "  /exit, /quit   leave (so does Ctrl-D)\n"
    "  /help          this help\n"
    "Ctrl-C during a reply cancels it; twice stops waiting for it.\n";

int chat_main(cl_client *cl, const char *sid, const char *name, bool json)
{
    char *owned = NULL;
    FILE *say = json ? stderr : stdout; /* what is not an event */
    if (!sid) {
        json_t *s = cl_session_create(cl, name);
        if (!s) return 1;
        sid = owned = strdup(cl_str(s, "id", ""));
        fprintf(say, "starting session %s in %s\n", sid, cl_str(s, "working_dir", "?"));
        json_decref(s);
        if (!owned) return 1;
    } else {
        char *esc = cl_escape(sid), *path = NULL;
        if (!esc || asprintf(&path, "/api/sessions/%s", esc) < 0) path = NULL;
        free(esc);
        json_t *s = path ? cl_call(cl, "GET", path, NULL, NULL) : NULL;
        free(path);
        if (!s) return 1;
        fprintf(say, "resuming session %s \"%s\" (%lld messages) in %s\n", sid,
                cl_str(s, "name", ""), json_integer_value(json_object_get(s, "message_count")),
                cl_str(s, "working_dir", "?"));
        json_decref(s);
    }
    fputs("Type a message and press Enter; /exit or Ctrl-D leaves, Ctrl-C cancels a reply.\n", say);
    reply_signals();
    reply_opts o = {.json = json, .confirm = REPLY_ASK, .chat = true};
    char hist[PATH_MAX];
    line_editor *le = le_open(say, le_history_path(hist, sizeof hist) ? hist : NULL);
    char *msg = NULL;
    for (; le;) {
        reply_interrupts_clear();
        bool intr;
        const char *line = le_read(le, PROMPT, &intr);
        if (!line && intr) {
            fputs("(Ctrl-C cancels a reply; /exit or Ctrl-D leaves)\n", say);
            continue;
        }
        if (!line) {
            fputc('\n', say);
            break;
        }
        free(msg);
        msg = strdup(line);
        /* A line that ends with a backslash goes on on the next: a message of several lines. */
        size_t n = msg ? strlen(msg) : 0;
        while (msg && n > 0 && msg[n - 1] == '\\') {
            msg[n - 1] = '\n';
            const char *next = le_read(le, MORE, &intr);
            if (!next) { /* the end of input: what was typed goes; Ctrl-C drops it */
                msg[n - 1] = '\0';
                if (intr) msg[0] = '\0';
                break;
            }
            size_t m = strlen(next);
            char *joined = realloc(msg, n + m + 1);
            if (!joined) break;
            memcpy(joined + n, next, m + 1);
            msg = joined;
            n += m;
        }
        if (!msg) break;
        char *text = msg + strspn(msg, " \t");
        if (!*text) continue;
        le_remember(le, msg);
        if (!strcmp(text, "/exit") || !strcmp(text, "/quit")) break;
        if (!strcmp(text, "/help") || !strcmp(text, "/?")) {
            fputs(help, say);
            continue;
        }
        if (text[0] == '/' && !strchr(text, ' ')) {
            fprintf(say, "unknown command %s (/help lists them)\n", text);
            continue;
        }
        char stop[32];
        reply_run(cl, sid, text, &o, stop);
    }
    free(msg);
    le_close(le);
    free(owned);
    return 0;
}
