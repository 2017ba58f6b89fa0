/* router: matches a method and path against the route table. Patterns are literal segments
 * and `{name}` placeholders that match one non-empty segment.
 *
 * A placeholder named `{id}` holds an identifier (a lowercase UUID, core/ids.h) of one member of
 * the collection named by the segment before it: in `/api/sessions/{id}`, a session. A segment
 * that is not an identifier (not a UUID, not UTF-8) still selects the route, so that the answer
 * is 404 naming it rather than 405 or an unknown path, and no handler ever sees it: bad_param
 * says which parameter, and noun names the member ("session").
 *
 * The path given is the raw one, as the client sent it (no query string): it is split on '/'
 * first and each segment percent-decoded once, so that "%2F" never makes two segments. A path
 * with a segment that cannot be decoded, that holds a NUL (%00) or that is not UTF-8 once
 * decoded matches nothing; nor does a route whose placeholder would hold a '/' (%2F): for both,
 * bad_segment says which segment (1-based), segment holds its raw text and why the reason. */
#ifndef GD_ROUTER_H
#define GD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_MAX_PARAMS 4
#define ROUTE_PARAM_MAX  128

struct http_req;
typedef void (*http_handler)(struct http_req *r);

enum {
    ROUTE_BODY = 1,   /* the handler takes a JSON object body (Content-Type checked, body parsed) */
    ROUTE_PUBLIC = 2, /* answered without authentication (auth/auth.h) */
    ROUTE_ADMIN = 4,  /* only an admin may call it: 403 for other users */
    /* with ROUTE_PUBLIC: the user a trusted proxy names is still taken (auth/auth.h), so the
     * handler can tell them from anyone else; without one, anonymous */
    ROUTE_PROXY_WHO = 8,
};

typedef struct {
    const char *method; /* "GET", "POST", ...; a GET route also answers HEAD */
    const char *pattern;
    http_handler fn;
    unsigned flags;
} http_route;

typedef struct {
    const http_route *route; /* NULL when nothing matched the method */
    bool path_known;         /* some route has this path (so: 405, not 404) */
    char allow[96];          /* methods of this path, "GET, HEAD, POST, OPTIONS" */
    int nparams;
    char params[ROUTE_MAX_PARAMS][ROUTE_PARAM_MAX];
    int bad_param;    /* 0, or 1 + the index of an `{id}` parameter that is not an identifier */
    char noun[32];    /* with bad_param: what the identifier names, "session" */
    int bad_segment;  /* 0, or 1 + the index of a path segment refused (then: 400) */
    char segment[80]; /* with bad_segment: its raw text (truncated) */
    char why[48];     /* with bad_segment: what is wrong with it */
} route_match;

/* Fills m for method and path. The path has no query string. */
void router_match(const http_route *routes, size_t n, const char *method, const char *path,
                  route_match *m);

#endif
