/* transport: picks an MCP transport by the config's type. */
#include "extensions/mcp/transport.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "extensions/mcp/mcp.h"

/* What closed transports still run: server processes not reaped, DELETEs in flight. */
static pthread_mutex_t linger_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t linger_cv = PTHREAD_COND_INITIALIZER;
static unsigned lingering;

void mcp_linger(int delta)
{
    pthread_mutex_lock(&linger_mu);
    lingering = (unsigned)((int)lingering + delta);
    if (!lingering) pthread_cond_broadcast(&linger_cv);
    pthread_mutex_unlock(&linger_mu);
}

unsigned mcp_servers_running(void)
{
    pthread_mutex_lock(&linger_mu);
    unsigned n = lingering;
    pthread_mutex_unlock(&linger_mu);
    return n;
}

bool mcp_servers_wait(long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&linger_mu);
    while (lingering && pthread_cond_timedwait(&linger_cv, &linger_mu, &until) == 0) {
    }
    bool done = !lingering;
    pthread_mutex_unlock(&linger_mu);
    return done;
}

mcp_transport *mcp_transport_new(const json_t *cfg, const ext_host *host,
                                 const mcp_transport_cb *cb, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(cfg, "type"));
    const char *name = json_string_value(json_object_get(cfg, "name"));
    if (!type) type = "";
    if (!strcmp(type, "stdio")) return mcp_stdio_new(cfg, host, cb, err, errlen);
    if (!strcmp(type, "streamable_http")) return mcp_http_new(cfg, host, cb, err, errlen);
    if (!strcmp(type, "sse")) return mcp_sse_new(cfg, host, cb, err, errlen);
    snprintf(err, errlen, "%s: type '%s' is not an MCP transport (stdio, streamable_http, sse)",
             name ? name : "extension", type);
    return NULL;
}
