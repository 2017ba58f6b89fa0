/* cli/session: `goose session` (the sessions of a running server, and the chat) and what `goose
 * run` shares with it. */
#ifndef GD_CLI_SESSION_H
#define GD_CLI_SESSION_H

#include <jansson.h>
#include <stdbool.h>

#include "cli/client.h"

/* Makes a new session whose working directory is the current directory, named name (NULL: the
 * server's default). Answers the server's Session (the caller decrefs), NULL after a message. */
json_t *session_create(cl_client *cl, const char *name);

/* The interactive chat in session sid (NULL: a new one named name). json: the events as JSON
 * lines. Returns the exit status: 0 when the user left with /exit or end of input, 1 a failure. */
int chat_main(cl_client *cl, const char *sid, const char *name, bool json);

#endif
