/* oauth: an MCP client's authorization with OAuth 2.1, as MCP's authorization specification asks
 * of a client (2025-06-18 and later, with 2025-03-26's fallbacks): the protected resource's
 * metadata (RFC 9728, named by the server's WWW-Authenticate or at its well-known places), the
 * authorization server's (RFC 8414, or OpenID Connect discovery), a client registered
 * dynamically (RFC 7591), given by the config, or named by a client ID metadata document, PKCE
 * with S256, the resource indicator (RFC 8707) in every request, refresh tokens, and a new
 * authorization asking for more scope when the server answers 403 insufficient_scope.
 *
 * Every call blocks on the network (each request bounded, MCP_OAUTH_HTTP_S): run it on a
 * worker thread, never on a loop. An object is shared by a transport's requests and is
 * thread-safe; one flow runs at a time. Tokens, codes, verifiers and secrets are never logged
 * nor put in a message. */
#ifndef GD_MCP_OAUTH_H
#define GD_MCP_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/netaddr.h"

#define MCP_OAUTH_HTTP_S   15u          /* seconds one request to a server may take */
#define MCP_OAUTH_BODY_MAX (256u << 10) /* bytes of an answer read */

typedef struct mcp_oauth mcp_oauth;

/* The user's consent: url is the authorization request to visit, for what label names (the
 * extension, for the user); the authorization server sends the browser back to redirect_uri with
 * a code and state. Returns GD_OK with *code (malloc'd) once the redirect with this state came
 * back, and *iss (malloc'd, or NULL when the redirect named none: RFC 9207), else an error
 * with err set (shown to the user). */
typedef gd_err (*mcp_oauth_consent_fn)(void *ud, const char *label, const char *url,
                                       const char *state, const char *redirect_uri, char **code,
                                       char **iss, char *err, size_t errlen);

typedef struct mcp_oauth_cfg {
    const char *client_name;   /* registered as the client's name */
    const char *redirect_uri;  /* where the authorization server sends the browser back */
    const char *client_id;     /* a client registered beforehand, or NULL */
    const char *client_secret; /* its secret, or NULL (a public client) */
    /* or its private key (PKCS #8 PEM, EC P-256): it authenticates with a JWT signed with it
     * (private_key_jwt, RFC 7523, ES256) where the authorization server offers that */
    const char *client_key;
    const char *client_metadata_url; /* a client ID metadata document naming this client, or NULL */
    const char *scope;               /* asked when neither the server nor its metadata names one */
    /* NULL: any address. Else the servers' addresses are held to it as the extension's are
     * (core/netaddr.h): metadata URLs come from the MCP server, which may be hostile. */
    const net_allow *reach;
    const char *label; /* who asks, as the user knows it (NULL: the server's URL) */
    mcp_oauth_consent_fn consent;
    /* NULL, or ends the consent waiting for state soon, with an error (mcp_oauth_abort). */
    void (*consent_abort)(void *ud, const char *state);
    /* NULL, or grants kept outside the object (a user's sessions share them, a restart keeps
     * them): grant_load answers the grant last saved for the server (malloc'd text
     * mcp_oauth_export made) or NULL; grant_save keeps a new one. Both may run on any thread
     * the object's calls run on; load also in mcp_oauth_new. */
    char *(*grant_load)(void *ud, const char *server);
    void (*grant_save)(void *ud, const char *server, const char *grant);
    void *consent_ud; /* every hook's ud */
    /* NULL, or keeps consent_ud alive as long as the object (+1 in mcp_oauth_new, -1 at its
     * end, which may come on a worker after the owner has gone) */
    void (*hold)(void *ud, int delta);
    /* NULL, or where the transport runs the flows, which may wait minutes for the user (else
     * the host's workers) */
    struct pool *workers;
} mcp_oauth_cfg;

/* For the MCP server at server_url (copied, with cfg's strings). NULL when out of memory. */
mcp_oauth *mcp_oauth_new(const char *server_url, const mcp_oauth_cfg *cfg);
mcp_oauth *mcp_oauth_ref(mcp_oauth *o);
/* Its owner is gone: a consent waiting now is ended (consent_abort), later flows fail at once. */
void mcp_oauth_abort(mcp_oauth *o);
void mcp_oauth_unref(mcp_oauth *o);

/* The access token to send now into out ("" when none, or when it does not fit); returns its
 * generation, which names it to mcp_oauth_renew. */
unsigned mcp_oauth_token(mcp_oauth *o, char *out, size_t outlen);

/* The server refused a request that carried the token of generation had: status 401, or 403 with
 * error="insufficient_scope"; www_auth is its WWW-Authenticate header ("" when none). Gets a new
 * token: one another request already got, a refreshed one, or a new authorization (asking for
 * the scope the server names). GD_OK: the new token is current (mcp_oauth_token). Else GD_EDENIED
 * (refused: by the user, the authorization server, or a rule of the specification), GD_EIO (a
 * server could not be reached or answered nonsense), GD_ENOMEM, with err saying what and where. */
gd_err mcp_oauth_renew(mcp_oauth *o, long status, const char *www_auth, unsigned had, char *err,
                       size_t errlen);

/* The grant (the client registered, the tokens, where they are used and renewed) as JSON text
 * to keep sealed (malloc'd; NULL when there is no token, or out of memory); mcp_oauth_import
 * takes it back (false when it is not such a text: nothing changes). The caller wipes it. */
char *mcp_oauth_export(mcp_oauth *o);
bool mcp_oauth_import(mcp_oauth *o, const char *grant);

/* A parameter of a WWW-Authenticate challenge for the Bearer scheme (RFC 6750 §3) into out:
 * false when absent (or when it does not fit). Exposed for the unit tests. */
bool mcp_oauth_challenge_param(const char *www_auth, const char *name, char *out, size_t outlen);

/* RFC 8707/9728: resource names the server at server_url (same origin, and server_url's path
 * within resource's). Exposed for the unit tests. */
bool mcp_oauth_resource_matches(const char *resource, const char *server_url);

#endif
