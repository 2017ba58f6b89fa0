/* cli/chat: `goose session` alone: a chat with the agent of a running server in the terminal. A
 * prompt, the reply streamed as `goose run` shows it, tool confirmations asked; /exit, /quit or
 * end of input (Ctrl-D) leaves; Ctrl-C during a reply cancels the reply, at the prompt it only
 * says how to leave. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/chat.h"
#include "cli/client.h"
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
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        reply_interrupts_clear();
        fputs(PROMPT, say);
        fflush(say);
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            bool eof = feof(stdin);
            clearerr(stdin);
            if (!eof && (errno == EINTR || reply_interrupts())) {
                fputs("\n(Ctrl-C cancels a reply; /exit or Ctrl-D leaves)\n", say);
                continue;
            }
            fputc('\n', say);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        /* A line that ends with a backslash goes on on the next: a message of several lines. */
        while (n > 0 && line[n - 1] == '\\') {
            line[n - 1] = '\n';
            fputs(MORE, say);
            fflush(say);
            char *next = NULL;
            size_t ncap = 0;
            ssize_t m = getline(&next, &ncap, stdin);
            if (m < 0) { /* the end of input: what was typed goes */
                clearerr(stdin);
                free(next);
                line[--n] = '\0';
                break;
            }
            while (m > 0 && (next[m - 1] == '\n' || next[m - 1] == '\r'))
                next[--m] = '\0';
            char *joined = realloc(line, (size_t)n + (size_t)m + 1);
            if (!joined) {
                free(next);
                break;
            }
            memcpy(joined + n, next, (size_t)m + 1);
            line = joined;
            cap = (size_t)n + (size_t)m + 1;
            n += m;
            free(next);
        }
        char *text = line + strspn(line, " \t");
        if (!*text) continue;
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
    free(line);
    free(owned);
    return 0;
}
