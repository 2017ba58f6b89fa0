/* signin: the sign-ins goosed's remote extensions ask their users for (MCP's OAuth:
 * extensions/mcp/oauth.h), on the server's side. An extension's authorization waits on a worker
 * (signin_wait) while its user is shown the address to visit; the authorization server sends the
 * user's browser back to goosed's own GET /oauth/callback, whose state names the sign-in that
 * waits for it (signin_deliver). The state is the only credential of that return (a browser
 * carries no goosed token on a redirect): 128 random bits, used once, for SIGNIN_WAIT_S.
 *
 * The grants an authorization brings (the client registered, the tokens) are kept per user and
 * MCP server, so that every session of the user shares one sign-in (signin_grant_get/put): a
 * user with an id keeps them sealed in the store with their settings (auth/user_settings.h: a
 * restart and the other goosed on the store find them); the local user (no id) sealed in the
 * file "signins" of the data directory (signins_load).
 *
 * Thread-safe. */
#ifndef GD_SIGNIN_H
#define GD_SIGNIN_H

#include <stddef.h>

#include "core/err.h"

#define SIGNIN_WAIT_S    300 /* how long a sign-in waits for the browser's return */
#define SIGNIN_STATE_MAX 64  /* bytes of a state, with its NUL */
#define SIGNIN_WORKERS   16  /* threads for the extensions' authorizations (each may wait) */
#define SIGNIN_PER_USER  4   /* sign-ins one user may leave waiting (the threads are shared) */

typedef struct signins signins;

signins *signins_new(void);
/* Reads the local user's grants kept in data_dir (their file, sealed under the server key:
 * auth/user_settings.h, which must be set up first), and keeps them there from now on. On the
 * main thread, once, before serving. */
void signins_load(signins *s, const char *data_dir);
/* Once nothing waits any more (signins_shutdown, then the workers joined). */
void signins_free(signins *s);
/* The server stops: every wait ends (GD_ESHUTDOWN) and no new one starts. */
void signins_shutdown(signins *s);

/* Announces a sign-in for state, for its owner user_id ("" the local user): from now on a
 * return with this state is taken. GD_ESHUTDOWN, GD_ENOMEM, GD_ECANCELLED (cancelled before it
 * was announced: signin_cancel), GD_ECONFLICT (a state used twice),
 * GD_EBUSY (SIGNIN_PER_USER of the user's wait already: one user cannot hold every thread). */
gd_err signin_add(signins *s, const char *state, const char *user_id);
/* Waits (at most SIGNIN_WAIT_S) for the return of state, then forgets it: GD_OK with *code
 * (malloc'd: the caller wipes and frees it) and *iss (the issuer the redirect named, RFC 9207;
 * malloc'd, or NULL), else GD_EDENIED (the user or the authorization
 * server refused), GD_ETIMEOUT, GD_ECANCELLED, GD_ESHUTDOWN, with err saying so. */
gd_err signin_wait(signins *s, const char *state, char **code, char **iss, char *err,
                   size_t errlen);
/* The browser came back with state and either code or error (the authorization server's,
 * printable ASCII kept). user_id: who the browser is, when known (a trusted proxy names them),
 * else NULL. GD_OK when a sign-in waited for it; GD_ENOTFOUND when none does (an unknown or
 * used state), GD_EDENIED when it is another user's (a link passed on: RFC 9700 §4.7); nothing
 * is changed then. */
gd_err signin_deliver(signins *s, const char *state, const char *code, const char *iss,
                      const char *error, const char *user_id);
/* Ends the wait for state with e and why (declined, the extension closed). When none waits and e
 * is GD_ECANCELLED, a signin_add of that state within SIGNIN_WAIT_S is refused instead (its
 * owner went away just before it was announced). */
void signin_cancel(signins *s, const char *state, gd_err e, const char *why);

/* The grant last kept for user_id and the server at url (malloc'd text the caller wipes, or
 * NULL). Reads memory only. */
char *signin_grant_get(signins *s, const char *user_id, const char *url);
/* Keeps grant for user_id and url (replacing the one before): for a user with an id, writes
 * the store, for the local user their file (a worker's call); in memory alone when that fails
 * (logged). */
void signin_grant_put(signins *s, const char *user_id, const char *url, const char *grant);

#endif
