/* allowlist: GOOSE_ALLOWLIST, which stdio extensions may run. The variable names a URL
 * (http, https: fetched with libcurl, cached, refreshed every ALLOWLIST_REFRESH_S) or a file
 * (read again when it changes), holding YAML in the real Goose's format:
 *
 *   extensions:
 *     - id: slack
 *       command: uvx mcp_slack
 *
 * A stdio extension is allowed when its command and arguments, joined with spaces, are a listed
 * command, compared the way the real Goose compares them: `.exe`/`.cmd`/`.bat` and npx's `-y`
 * ignored, a `package@version` compared as `package`. Anything more (extra arguments) is refused.
 * Unset: everything is allowed. An empty list allows everything too, as in the real Goose. A list
 * that cannot be fetched, read or parsed refuses every stdio extension.
 * GOOSE_ALLOWLIST_WARNING=true logs a refusal instead; GOOSE_ALLOWLIST_BYPASS=true (the real
 * Goose's) turns the check off. Other extension types are always allowed. Thread-safe; a check
 * never waits for the network. */
#ifndef GD_ALLOWLIST_H
#define GD_ALLOWLIST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define ALLOWLIST_REFRESH_S     600
#define ALLOWLIST_FETCH_TIMEOUT 10         /* seconds for one fetch of the URL */
#define ALLOWLIST_MAX_BYTES     (1u << 20) /* the list's size cap */

/* Reads the environment; for a URL, fetches the list once now (at most
 * ALLOWLIST_FETCH_TIMEOUT seconds) and starts the thread that refreshes it. Call once before
 * serving; allowlist_check calls it itself (without the thread) when it was not. */
void allowlist_start(void);
/* Stops the refreshing thread and frees the list. */
void allowlist_stop(void);

/* Whether the checked extension config (borrowed, see ext_config.h) may run: GD_OK, or
 * GD_EDENIED with why in why (not listed, adds arguments to a listed command, or the allowlist
 * is unavailable and why). */
gd_err allowlist_check(const json_t *checked_cfg, char *why, size_t len);

/* For tests: whether the command line cmdline (cmd and args joined) is allowed by the list of
 * n commands; GD_EDENIED with why. */
gd_err allowlist_match(const char *cmdline, const char *const *commands, size_t n, char *why,
                       size_t len);

#endif
