/* signin: the command line's side of an MCP server's OAuth sign-in (extensions/mcp/oauth.h):
 * the user opens the authorization URL in a browser, which comes back to a listener on
 * 127.0.0.1; or, for the conformance suite, whose authorization server approves at once, the
 * URL is fetched and its redirect read. */
#ifndef GD_CLI_SIGNIN_H
#define GD_CLI_SIGNIN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define SIGNIN_WAIT_S 300 /* how long the browser's return is waited for */

typedef struct {
    int fd; /* the listener on 127.0.0.1, -1 when none */
    char redirect_uri[64];
} signin;

/* Listens on an unused port of 127.0.0.1: GD_EIO with err set when it cannot. */
gd_err signin_listen(signin *s, char *err, size_t errlen);
void signin_close(signin *s);

/* mcp_oauth_consent_fn, ud a signin: prints url for the user on stderr and waits for the
 * browser's return to the listener (SIGNIN_WAIT_S). */
gd_err signin_browser(void *ud, const char *label, const char *url, const char *state,
                      const char *redirect_uri, char **code, char **iss, char *err, size_t errlen);

/* mcp_oauth_consent_fn, ud unused: fetches url and reads the code from the redirect it answers
 * with (an authorization server that approves without asking: the conformance suite's). */
gd_err signin_fetch(void *ud, const char *label, const char *url, const char *state,
                    const char *redirect_uri, char **code, char **iss, char *err, size_t errlen);

/* The value of the query parameter name of url, percent-decoded, into out: false when absent or
 * too long. */
bool signin_query_param(const char *url, const char *name, char *out, size_t outlen);

#endif
