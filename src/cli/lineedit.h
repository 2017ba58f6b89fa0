/* cli/lineedit: how the chat of `goose session` reads what the user types. On a terminal, a line
 * editor (libedit, emacs keys: arrows, Home/End, Ctrl-A/E/K/U/W, Ctrl-R searches back) with a
 * history of earlier messages that the up arrow recalls, kept between runs in a file of the
 * user's own (mode 0600); lines that start with a space stay out of it. Elsewhere (a pipe, a
 * file), plain lines, as they come. */
#ifndef GD_CLI_LINEEDIT_H
#define GD_CLI_LINEEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct line_editor line_editor;

/* A reader of stdin whose prompts go to out (stdout or stderr). path: the file the history is
 * read from and saved to (NULL: none kept). NULL when out of memory. */
line_editor *le_open(FILE *out, const char *path);
/* The next line typed after prompt, without its end of line (the editor's, valid until the next
 * call); NULL at the end of input, or with *interrupted set when Ctrl-C came (what was typed is
 * dropped). */
const char *le_read(line_editor *e, const char *prompt, bool *interrupted);
/* Adds a message to the history (each line of it an entry), and saves the history; one that
 * starts with a space, or repeats the last one, is not added. */
void le_remember(line_editor *e, const char *message);
void le_close(line_editor *e);
/* Where the chat keeps its history: $XDG_STATE_HOME/goose/chat_history, else
 * ~/.local/state/goose/chat_history, into out; false when neither variable is set. */
bool le_history_path(char *out, size_t outlen);

#endif
