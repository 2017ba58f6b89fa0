#include "http/router.h"

#include <stdio.h>
#include <string.h>

/* Matches path against pattern; fills params. A trailing slash on the path is ignored. */
static bool match_pattern(const char *pat, const char *path, route_match *m)
{
    int np = 0;
    while (*pat && *path) {
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            size_t n = strcspn(path, "/");
            if (!close || n == 0 || n >= ROUTE_PARAM_MAX || np == ROUTE_MAX_PARAMS) return false;
            memcpy(m->params[np], path, n);
            m->params[np++][n] = '\0';
            pat = close + 1;
            path += n;
        } else if (*pat++ != *path++) {
            return false;
        }
    }
    if (*pat || (*path && strcmp(path, "/") != 0)) return false;
    m->nparams = np;
    return true;
}

static void allow_add(route_match *m, const char *method)
{
    if (strstr(m->allow, method)) return;
    size_t len = strlen(m->allow);
    snprintf(m->allow + len, sizeof m->allow - len, "%s%s", len ? ", " : "", method);
}

void router_match(const http_route *routes, size_t n, const char *method, const char *path,
                  route_match *m)
{
    memset(m, 0, sizeof *m);
    route_match tmp;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < n; i++) {
        memset(&tmp, 0, sizeof tmp);
        if (!match_pattern(routes[i].pattern, path, &tmp)) continue;
        m->path_known = true;
        allow_add(m, routes[i].method);
        if (!strcmp(routes[i].method, "GET")) allow_add(m, "HEAD");
        if (!m->route && !strcmp(routes[i].method, want)) {
            m->route = &routes[i];
            m->nparams = tmp.nparams;
            memcpy(m->params, tmp.params, sizeof tmp.params);
        }
    }
    if (m->path_known) allow_add(m, "OPTIONS");
}
