/* The metrics_listen server: GET /metrics alone, without authentication, on an address of its
 * own (its own file: the fuzz harnesses link api/ without the HTTP server). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "core/log.h"

static const http_route metrics_routes[] = {
    {"GET", "/metrics", api_metrics, ROUTE_PUBLIC},
};

/* Splits "host:port" or "[v6]:port" into host and port; false when it is neither. */
static bool split_listen(const char *v, char *host, size_t hostlen, long *port)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || !colon[1]) return false;
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (*h == '[') {
        if (hl < 3 || h[hl - 1] != ']') return false;
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return false; /* an IPv6 address needs its brackets */
    }
    if (hl >= hostlen) return false;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535) return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = p;
    return true;
}

http_server *api_metrics_listen(const config *cfg, void *app_, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!cfg->metrics || !cfg->metrics_listen[0]) return NULL;
    static config mc; /* the server keeps a pointer to it */
    mc = *cfg;
    if (!split_listen(cfg->metrics_listen, mc.host, sizeof mc.host, &mc.port)) {
        snprintf(err, errlen,
                 "metrics_listen: expected an address and port such as "
                 "127.0.0.1:9464, got \"%.100s\"",
                 cfg->metrics_listen);
        return NULL;
    }
    /* plain HTTP, a few connections: a scraper or two */
    mc.tls_cert[0] = mc.tls_key[0] = '\0';
    mc.tls_self_signed = false;
    mc.max_connections = 64;
    mc.max_connections_per_client = 16;
    mc.ncors = 0;
    http_server *s = http_start(&mc, metrics_routes, sizeof metrics_routes / sizeof *metrics_routes,
                                app_, auth_gate, err, errlen);
    if (s) {
        const char *lb = strchr(mc.host, ':') ? "[" : "", *rb = *lb ? "]" : "";
        log_write(LOG_INFO, "server",
                  "metrics served without authentication on http://%s%s%s:%d/metrics", lb, mc.host,
                  rb, http_port(s));
    } else {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "metrics_listen: %s", why);
    }
    return s;
}
