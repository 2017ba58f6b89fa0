/* cli/reply: one reply of the agent streamed to the terminal, for `goose run` and the chat of
 * `goose session`: text as it arrives, tool calls and results marked, a spinner on stderr (when
 * it is a terminal) while nothing arrives, Ctrl-C cancelling the reply, tool confirmations
 * answered by asking the user or by policy. */
#ifndef GD_CLI_REPLY_H
#define GD_CLI_REPLY_H

#include <stdbool.h>

#include "cli/client.h"

/* What to do when the server asks to confirm a tool call. */
typedef enum {
    REPLY_ASK,     /* ask on the terminal; deny_once when there is none */
    REPLY_APPROVE, /* allow_once without asking (goose run --approve-all) */
    REPLY_DENY,    /* deny_once without asking */
} reply_confirm;

typedef struct {
    bool json;             /* each event as one JSON line on stdout instead of text */
    reply_confirm confirm; /* tool confirmations */
    bool chat;             /* a second Ctrl-C stops waiting for the reply (not the program) */
} reply_opts;

/* How a reply ended. */
typedef enum {
    REPLY_END_TURN = 0, /* message_complete with end_turn */
    REPLY_STOPPED,      /* message_complete with another stop reason (said on stderr) */
    REPLY_FAILED,       /* the request failed or the stream ended early (said on stderr) */
    REPLY_REFUSED,      /* the server refused the message with an error status: no reply began */
    REPLY_ABANDONED,    /* the user pressed Ctrl-C twice: no longer waited for */
} reply_end;

/* Installs the SIGINT handler the replies use (no SA_RESTART: a read in progress returns EINTR).
 * Call once before the first reply. */
void reply_signals(void);
/* Ctrl-C presses since the last reply_interrupts_clear. */
int reply_interrupts(void);
void reply_interrupts_clear(void);

/* Sends text as a user message to session sid and streams the reply as opts say. The stop
 * reason is copied into stop (at least 32 bytes; "" when none arrived). */
reply_end reply_run(cl_client *cl, const char *sid, const char *text, const reply_opts *opts,
                    char *stop);

/* Asks the user on the terminal (stdin, stderr) what to do with a tool call (tool's name and
 * arguments, borrowed); returns one of the API's five actions. Ctrl-C or end of input: "cancel". */
const char *reply_ask_confirmation(const char *tool, json_t *arguments);

/* Prints a tool call's marker line `─── shell(command: ls) ───` (extension prefix dropped) on f. */
void reply_print_tool_call(FILE *f, const char *tool, json_t *arguments);
/* Prints a tool result shortly (its first lines, indented) on f. */
void reply_print_tool_result(FILE *f, const char *text, bool is_error);

#endif
