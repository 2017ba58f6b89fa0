/* Who may reach this server: the Host and Origin policy of the strict edge (see origin.h). */
#include "http/origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Whether name (a Host's name part, brackets kept for IPv6) names this machine's loopback:
 * localhost, 127.x.x.x or [::1]. */
static bool loopback_name(const char *name)
{
    struct in_addr a4;
    if (!strcasecmp(name, "localhost") || !strcmp(name, "[::1]")) return true;
    return inet_pton(AF_INET, name, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* Splits a Host value ("name", "name:port", "[v6]:port") into its name (into name) and port (0
 * when none). false when it is not of that shape. */
static bool host_split(const char *host, char *name, size_t namelen, long *port)
{
    const char *colon;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close) return false;
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] && !colon) return false;
    } else {
        colon = strchr(host, ':');
    }
    size_t n = colon ? (size_t)(colon - host) : strlen(host);
    if (n == 0 || n >= namelen) return false;
    memcpy(name, host, n);
    name[n] = '\0';
    *port = 0;
    if (colon) {
        char *end;
        errno = 0;
        const char *p = colon + 1;
        if (*p < '0' || *p > '9') return false;
        *port = strtol(p, &end, 10);
        if (errno || *end || *port < 1 || *port > 65535) return false;
    }
    return true;
}

/* Whether host (a Host header, or an origin's host[:port]) is listed in allowed_hosts, whole or
 * by its name alone; with star, "*" lists every host. */
static bool host_listed(const config *cfg, const char *host, const char *name, bool star)
{
    for (int i = 0; i < cfg->nallowed_hosts; i++)
        if ((star && !strcmp(cfg->allowed_hosts[i], "*")) ||
            !strcasecmp(cfg->allowed_hosts[i], host) || !strcasecmp(cfg->allowed_hosts[i], name))
            return true;
    return false;
}

bool origin_host_allowed(const config *cfg, const char *host)
{
    char name[256];
    long port;
    if (!host_split(host, name, sizeof name, &port)) return false;
    return loopback_name(name) || host_listed(cfg, host, name, true);
}

const char *origin_listed(const config *cfg, const char *origin)
{
    if (!origin) return NULL;
    for (int i = 0; i < cfg->ncors; i++)
        if (!strcmp(cfg->cors[i], "*") || !strcmp(cfg->cors[i], origin)) return origin;
    return NULL;
}

bool origin_is_own(const config *cfg, int port, bool tls, const char *origin)
{
    if (!origin) return false;
    bool https = !strncasecmp(origin, "https://", 8);
    if (!https && strncasecmp(origin, "http://", 7)) return false;
    const char *host = origin + (https ? 8 : 7);
    char name[256];
    long p;
    if (!host_split(host, name, sizeof name, &p)) return false;
    if (p == 0) p = https ? 443 : 80;
    return (loopback_name(name) && p == port && https == tls) ||
           host_listed(cfg, host, name, false);
}
