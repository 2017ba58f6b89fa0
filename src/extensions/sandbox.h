/* sandbox: what keeps goosed's secrets out of the tools' reach. Today: the child environment as
 * an allow-list, every capability dropped in a tool's process (a root goosed's tools cannot read
 * goosed's /proc/PID/environ or memory), and the directories the built-in file tools refuse
 * (goosed's own configuration and data). bubblewrap will go here later. */
#ifndef GD_SANDBOX_H
#define GD_SANDBOX_H

#include <stdbool.h>

#include "extensions/extension.h"

/* The environment for tools' child processes: the variables of goosed's environment on an
 * allow-list (PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TERM, TZ, TMPDIR) and
 * nothing else: no API keys, no GOOSE_*, no PWD. A new NULL-terminated array of "NAME=value"
 * strings the caller frees with sandbox_env_free; NULL when out of memory. */
char **sandbox_env_new(void);
/* A copy of env (NULL-terminated; NULL gives an empty environment) in one allocation the caller
 * frees with free(). NULL when out of memory. */
char **sandbox_env_dup(char *const *env);
/* Frees what sandbox_env_new returned (NULL is fine). */
void sandbox_env_free(char **env);

/* Whether a tool may read or write path, an absolute path without `.` or `..` components: false
 * when it is, or once its symbolic links are resolved (the real path of its longest existing
 * prefix) turns out to be, one of h->protected_dirs or inside one. Touches the disk: call it on
 * a worker. */
bool sandbox_path_allowed(const ext_host *h, const char *resolved_path);
/* The same for a path already free of symbolic links (a directory walk that does not follow
 * them), without resolving it again. */
bool sandbox_real_path_allowed(const ext_host *h, const char *real_path);

/* What a tool's child process needs to drop its privileges, read before fork (reading it
 * afterwards is not async-signal-safe). */
typedef struct {
    bool root;    /* euid 0: drop the bounding set and set no_new_privs */
    int cap_last; /* the highest capability number the kernel knows */
} sandbox_child;

/* Fills sc for sandbox_child_enter. */
void sandbox_child_prepare(sandbox_child *sc);
/* In a child after fork, before exec (async-signal-safe): drops every capability (bounding set,
 * ambient, effective, permitted, inheritable) and, as root, sets no_new_privs, so that exec
 * gives nothing back. Returns 0, or the errno of the step that failed (the child must then not
 * run the tool). */
int sandbox_child_enter(const sandbox_child *sc);

#endif
