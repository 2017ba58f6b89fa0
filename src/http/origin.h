/* origin: who may reach this server -- the strict edge's policy, apart from the engine that
 * enforces it (server.c). Pure functions of the configuration and the listening address:
 *   - Host: a server bound to loopback answers only loopback names and allowed_hosts, so that a
 *     page on a domain an attacker rebinds to 127.0.0.1 (DNS rebinding) is refused;
 *   - Origin: listed in cors_origins (CORS answers), or this server's own (a state-changing request
 *     from any other origin is refused: CSRF). */
#ifndef GD_HTTP_ORIGIN_H
#define GD_HTTP_ORIGIN_H

#include <stdbool.h>

#include "config/config.h"

/* Whether a server bound to loopback may answer a request whose Host header is host ("name",
 * "name:port", "[v6]:port"): a loopback name (localhost, 127.x.x.x, [::1]) or one of
 * allowed_hosts, whole or by its name ("*" allows every host). */
bool origin_host_allowed(const config *cfg, const char *host);

/* origin itself when cors_origins lists it (or holds "*"), else NULL. NULL origin: NULL. */
const char *origin_listed(const config *cfg, const char *origin);

/* Whether origin ("http://127.0.0.1:3000") is this server's own: a loopback name with this
 * server's port and scheme (https when tls), or a host named in allowed_hosts ("*" names none
 * here). Comparing Origin with the request's Host would not do: a rebound page sends its own
 * domain as both. NULL origin: false. */
bool origin_is_own(const config *cfg, int port, bool tls, const char *origin);

#endif
