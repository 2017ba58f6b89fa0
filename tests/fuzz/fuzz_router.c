/* Fuzzes router_match (src/http/router.c) over the real route table (api/routes.c): the first
 * byte picks the method, the rest is the path as the server hands it over (any bytes up to a
 * NUL). Checks what handlers rely on: a matched route has the method asked for (GET for HEAD),
 * every parameter is a NUL-terminated, non-empty segment without '/' (or bad_segment is set: a
 * 400 before any handler), an `{id}` parameter not flagged bad_param is a UUID, and a known path
 * lists its methods in Allow. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/ids.h"
#include "http/router.h"

static const char *const methods[] = {"GET", "HEAD",    "POST",  "PATCH", "DELETE",
                                      "PUT", "OPTIONS", "TRACE", "get",   ""};

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *method = methods[data[0] % (sizeof methods / sizeof *methods)];
    char *path = malloc(size);
    if (!path) return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';

    route_match m;
    router_match(api_routes, api_nroutes, method, path, &m);

    CHECK(m.nparams >= 0 && m.nparams <= ROUTE_MAX_PARAMS);
    CHECK(memchr(m.allow, '\0', sizeof m.allow));
    CHECK(memchr(m.noun, '\0', sizeof m.noun));
    if (m.route) {
        CHECK(m.path_known);
        const char *want = strcmp(method, "HEAD") ? method : "GET";
        CHECK(!strcmp(m.route->method, want));
        CHECK(strstr(m.allow, want));
        const char *p = m.route->pattern;
        for (int i = 0; i < m.nparams; i++) {
            CHECK(memchr(m.params[i], '\0', ROUTE_PARAM_MAX));
            CHECK(m.params[i][0] != '\0');
            /* an encoded '/' (%2F) decodes into a parameter only flagged: the server answers
             * 400 naming the segment, and no handler sees it */
            if (strchr(m.params[i], '/')) CHECK(m.bad_segment && m.why[0] && m.segment[0]);
            p = strchr(p, '{');
            CHECK(p);
            bool is_id = !strncmp(p, "{id}", 4);
            /* bad_param names the first {id} that is not one */
            if (is_id && (m.bad_param == 0 || m.bad_param > i + 1)) CHECK(ids_is_uuid(m.params[i]));
            if (m.bad_param == i + 1) CHECK(is_id && !ids_is_uuid(m.params[i]));
            p++;
        }
        CHECK(!strchr(p, '{')); /* every placeholder was filled */
        if (m.bad_param) {
            CHECK(m.bad_param >= 1 && m.bad_param <= m.nparams);
            CHECK(m.noun[0]);
        }
    } else if (m.path_known) {
        CHECK(m.allow[0]);
    }
    free(path);
    return 0;
}
