/* permissions: the user's "always" answers to tool confirmations, kept per tool in
 * permission.yaml beside config.yaml, in the real Goose's format:
 *
 *   user:
 *     always_allow: [developer__shell]
 *     ask_before: []
 *     never_allow: [everything__delete]
 *
 * Thread-safe: lookups read memory; a change is kept in memory at once and written (atomically)
 * by the caller's thread, so call permissions_set off any event loop. */
#ifndef GD_PERMISSIONS_H
#define GD_PERMISSIONS_H

#include <stddef.h>

#include "core/err.h"

typedef enum { PERM_NONE, PERM_ALWAYS_ALLOW, PERM_NEVER_ALLOW, PERM_ASK_BEFORE } perm_rule;

/* Loads dir/permission.yaml (a missing file is fine). A broken file: GD_EINVAL with a message
 * naming it; the rules then start empty. */
gd_err permissions_load(const char *dir, char *err, size_t errlen);
/* The rule for a tool's full name ("developer__shell"). */
perm_rule permissions_get(const char *tool);
/* Sets tool's rule (PERM_NONE removes it) in memory, at once. GD_ETOOBIG past 4096 rules,
 * GD_ENOMEM. */
gd_err permissions_put(const char *tool, perm_rule rule);
/* Rewrites the file from memory (blocks on the disk). GD_EIO with a message. */
gd_err permissions_save(char *err, size_t errlen);
/* Both. */
gd_err permissions_set(const char *tool, perm_rule rule, char *err, size_t errlen);
/* Forgets every rule (tests, and before a reload). */
void permissions_reset(void);

#endif
