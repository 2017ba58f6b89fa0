/* auth: who a request comes from, decided once per request before its handler runs.
 *
 * Three ways, any of which turns authentication on for every route but the ROUTE_PUBLIC ones
 * (/status):
 *   - X-Secret-Key equal to GOOSE_SERVER__SECRET_KEY (the real goosed's scheme; compared in
 *     constant time): the local user, an admin;
 *   - Authorization: Bearer <token> of a user made with `goosed user add` (only a BLAKE2b hash of
 *     each token is stored);
 *   - trusted_proxy_header (e.g. X-Remote-User) set by a proxy whose address is listed in
 *     trusted_proxies: that user, made on first use. From any other address the header is
 *     ignored, and logged (the header's name and the address, never a credential).
 * With none configured, every request is the local user, an admin.
 *
 * Then: ROUTE_ADMIN routes answer 403 to a user who is not an admin, and a route on a session
 * (a `/sessions/{id}` path) answers 404 when the session belongs to another user, exactly as for
 * a session that does not exist. */
#ifndef GD_AUTH_H
#define GD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/err.h"
#include "http/router.h"
#include "store/store.h"

typedef struct {
    char id[UUID_STR_LEN]; /* "" for the local user */
    char name[STORE_USER_NAME_MAX + 1];
    bool admin;
    /* the session of the request's path that auth_gate found to be theirs, "" if none: the
     * handler need not read it again (api_session_found) */
    char session[UUID_STR_LEN];
    bool by_token; /* a bearer token said who: its hash, for auth_still_valid */
    unsigned char token_hash[STORE_TOKEN_HASH_LEN];
} auth_user;

struct http_req;

/* Sets authentication up for the server: the configuration (borrowed; must outlive the server)
 * and the store where users live. Returns GD_EINVAL with the reason in err when goosed must not
 * start: bound to an address other than loopback with no authentication configured (unless
 * insecure_no_auth), or a trusted_proxies entry that is not an address. */
gd_err auth_setup(const config *cfg, store *st, char *err, size_t errlen);

/* The gate of goosed's listeners (http.h's http_gate_fn, given to http_start): decides who sent
 * the request, kept in the request's http_who room as an auth_user, and names them for its log
 * lines. true: go on. false: the answer (401, 403, 404, 429, 503) has been sent. m is the route
 * match (m->route NULL when nothing matched); peer the client's address as text. */
bool auth_gate(struct http_req *r, const route_match *m, const char *peer);

/* Who sent the request (decided by auth_gate; the local user when authentication is off, or
 * for a server started without the gate). Owned by the request. */
const auth_user *http_user(struct http_req *r);

/* For a handler that makes a session: true when the caller may own one more
 * (max_sessions_per_user); otherwise false, answered 429 too_many_sessions (or 503). */
bool auth_session_quota(struct http_req *r);

/* For a connection that outlives its request (SSE, WebSocket): whether who u says still holds.
 * false once the bearer token that opened it was replaced (goosed user token) or its user
 * removed; then the connection must stop acting for them. A store that cannot be read answers
 * true: an outage does not cut every open stream. */
bool auth_still_valid(const auth_user *u);

/* Whether authentication is on now (a secret key, a trusted proxy, at least one user, or a
 * store that cannot say yet whether there are users: then requests get 503). */
bool auth_enabled(void);

/* A user token: "gd_" and 43 base64url characters (32 random bytes), and its NUL. */
#define AUTH_TOKEN_LEN 47
/* Writes a new random token into out and its hash (what the store keeps) into hash. */
void auth_token_new(char out[AUTH_TOKEN_LEN], unsigned char hash[STORE_TOKEN_HASH_LEN]);
/* The hash of a token as the store keeps it (BLAKE2b-256: tokens are random, so no slow hash). */
void auth_token_hash(const char *token, size_t len, unsigned char hash[STORE_TOKEN_HASH_LEN]);
/* Whether a user name is acceptable: 1 to STORE_USER_NAME_MAX bytes of printable ASCII, no
 * space. */
bool auth_name_valid(const char *name);
/* Constant-time comparison of a given secret with the expected one (the time taken depends on
 * neither the content nor the length of given). */
bool auth_secret_equal(const char *given, const char *expected);

#endif
