#include "http/router.h"

#include <stdio.h>
#include <string.h>

#include "core/ids.h"

/* The member named by the collection segment that ends just before pattern position `brace`
 * ("/api/sessions/{id}" -> "session"), into m->noun. */
static void set_noun(const char *pattern, const char *brace, route_match *m)
{
    const char *end = brace;
    if (end > pattern && end[-1] == '/') end--;
    const char *start = end;
    while (start > pattern && start[-1] != '/')
        start--;
    size_t n = (size_t)(end - start);
    if (n > 1 && end[-1] == 's') n--;
    if (n == 0 || n >= sizeof m->noun) {
        snprintf(m->noun, sizeof m->noun, "item");
        return;
    }
    memcpy(m->noun, start, n);
    m->noun[n] = '\0';
}

/* Matches path against pattern; fills params. A trailing slash on the path is ignored. */
static bool match_pattern(const char *pat, const char *path, route_match *m)
{
    const char *pattern = pat;
    int np = 0;
    while (*pat && *path) {
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            size_t n = strcspn(path, "/");
            if (!close || n == 0 || n >= ROUTE_PARAM_MAX || np == ROUTE_MAX_PARAMS) return false;
            memcpy(m->params[np], path, n);
            m->params[np++][n] = '\0';
            if (!m->bad_param && close - pat == 3 && !strncmp(pat, "{id}", 4) &&
                !ids_is_uuid(m->params[np - 1])) {
                m->bad_param = np;
                set_noun(pattern, pat, m);
            }
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
            m->bad_param = tmp.bad_param;
            memcpy(m->noun, tmp.noun, sizeof tmp.noun);
        }
    }
    if (m->path_known) allow_add(m, "OPTIONS");
}
