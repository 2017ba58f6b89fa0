/* cli/chat: the interactive chat of `goose session` with the agent of a running server. */
#ifndef GD_CLI_CHAT_H
#define GD_CLI_CHAT_H

#include <stdbool.h>

#include "cli/client.h"

/* The interactive chat in session sid (NULL: a new one named name). json: the events as JSON
 * lines. Returns the exit status: 0 when the user left with /exit or end of input, 1 a failure. */
int chat_main(cl_client *cl, const char *sid, const char *name, bool json);

#endif
