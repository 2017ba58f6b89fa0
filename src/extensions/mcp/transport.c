/* transport: what every MCP transport shares: a peer's bytes made printable for the log
 * (mcp_escape), and the count of closed transports that still run something (mcp_linger), for
 * shutdown to wait on. */
#include "extensions/mcp/transport.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
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
    struct timespec until = clock_deadline(ms);
    pthread_mutex_lock(&linger_mu);
    while (lingering && pthread_cond_timedwait(&linger_cv, &linger_mu, &until) == 0) {
    }
    bool done = !lingering;
    pthread_mutex_unlock(&linger_mu);
    return done;
}

void mcp_escape(const char *s, size_t len, size_t max, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen) return;
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        int k;
        if (c == '\\')
            k = snprintf(tmp, sizeof tmp, "\\\\");
        else if (c >= 0x20 && c < 0x7f)
            k = snprintf(tmp, sizeof tmp, "%c", c);
        else if (c == '\n')
            k = snprintf(tmp, sizeof tmp, "\\n");
        else
            k = snprintf(tmp, sizeof tmp, "\\x%02x", c);
        if (o + (size_t)k + 4 >= outlen) break;
        memcpy(out + o, tmp, (size_t)k);
        o += (size_t)k;
    }
    if (len > max && o + 3 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}
