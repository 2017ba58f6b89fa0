/* conns: connection counts and the header deadline (see conns.h).
 *
 * Every connection waiting for headers is in the `headers` queue and every idle kept-alive one in
 * the `idle` queue. Each queue's entries share one duration (header_timeout, the idle poll), so
 * appending keeps a queue sorted by due time: the sweeper only ever looks at the heads.
 *
 * Why shutdown() from the sweeper is safe: the server calls conns_close (which takes our lock and
 * removes the record) before it closes the socket, so a socket the sweeper finds in a queue is
 * still open and still that connection's. shutdown() (unlike close()) leaves the descriptor to the
 * server; it wakes the connection's epoll (the read side reports end of file), and the
 * connection's thread reads 0 bytes and closes it as it does when a client goes away.
 *
 * An idle kept-alive connection has no deadline; the kernel's count of bytes received on it
 * (TCP_INFO) tells the sweeper when the next request has started, within one idle poll. */
#include "http/conns.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

#define NBUCKETS     4096 /* per-address counts: a power of two */
#define IDLE_POLL_NS 1000000000ull

enum { Q_NONE = -1, Q_HEADERS = 0, Q_IDLE = 1, NQUEUES };

/* One client address and how many connections it has open. */
typedef struct addr_slot {
    struct addr_slot *next;
    unsigned char key[16];
    unsigned char len; /* 4 (IPv4 and IPv4-mapped IPv6), 16 (IPv6), 0 (anything else) */
    long n;
} addr_slot;

struct conn {
    conn *prev, *next;
    int queue; /* Q_* */
    int fd;
    uint64_t due_ns;  /* the header deadline, or the idle connection's next check */
    uint64_t rx_mark; /* bytes received when its last request finished */
    conn_refusal refusal;
    addr_slot *slot; /* NULL when it could not be allocated */
};

struct conns {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_t sweeper;
    bool stop;
    uint64_t sleep_until; /* when the sweeper wakes next (UINT64_MAX: when told); 0: awake */
    long max_total, max_per_client;
    uint64_t header_ns, idle_poll_ns;
    long total;
    struct {
        conn *head, *tail;
    } q[NQUEUES];
    addr_slot *buckets[NBUCKETS];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The address part of sa as a key; IPv4-mapped IPv6 addresses count as their IPv4 address. */
static unsigned char addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a->s6_addr + 12, 4);
            return 4;
        }
        memcpy(key, a->s6_addr, 16);
        return 16;
    }
    return 0;
}

static size_t addr_hash(const unsigned char *key, unsigned char len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (unsigned i = 0; i < len; i++)
        h = (h ^ key[i]) * 16777619u;
    return h & (NBUCKETS - 1);
}

/* The slot of key (created with n = 0 when absent); NULL when out of memory. Under mu. */
static addr_slot *slot_get(conns *cs, const unsigned char *key, unsigned char len, bool create)
{
    addr_slot **b = &cs->buckets[addr_hash(key, len)];
    for (addr_slot *s = *b; s; s = s->next)
        if (s->len == len && !memcmp(s->key, key, len)) return s;
    if (!create) return NULL;
    addr_slot *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    memcpy(s->key, key, len);
    s->len = len;
    s->next = *b;
    *b = s;
    return s;
}

static void slot_put(conns *cs, addr_slot *s)
{
    if (--s->n > 0) return;
    for (addr_slot **p = &cs->buckets[addr_hash(s->key, s->len)]; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            free(s);
            return;
        }
}

/* ---- the two queues (under mu) ---- */

static void unqueue(conns *cs, conn *c)
{
    if (c->queue == Q_NONE) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        cs->q[c->queue].head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        cs->q[c->queue].tail = c->prev;
    c->prev = c->next = NULL;
    c->queue = Q_NONE;
}

/* Appends c to queue q, due at `due`; wakes the sweeper when the queue was empty (its head is the
 * only new time the sweeper may have to wake up for). */
static void enqueue(conns *cs, conn *c, int q, uint64_t due)
{
    unqueue(cs, c);
    c->queue = q;
    c->due_ns = due;
    c->prev = cs->q[q].tail;
    if (cs->q[q].tail)
        cs->q[q].tail->next = c;
    else
        cs->q[q].head = c;
    cs->q[q].tail = c;
    /* The sweeper is told only when it would wake too late for c: a new connection's deadline
     * usually falls after the one the sweeper already sleeps until, and a request then costs no
     * thread wake-up. */
    if (due < cs->sleep_until) {
        cs->sleep_until = 0;
        pthread_cond_signal(&cs->wake);
    }
}

/* Bytes the kernel has received on fd so far; false when it cannot tell. */
static bool bytes_received(int fd, uint64_t *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
    if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return false; /* a kernel older than 4.1 */
    *out = ti.tcpi_bytes_received;
    return true;
}

static void *sweep(void *arg)
{
    conns *cs = arg;
    pthread_mutex_lock(&cs->mu);
    while (!cs->stop) {
        uint64_t now = now_ns();
        conn *c;
        while ((c = cs->q[Q_HEADERS].head) && c->due_ns <= now) {
            unqueue(cs, c);
            log_debug("http",
                      "closing connection (fd %d): no complete request headers within %llu s",
                      c->fd, (unsigned long long)(cs->header_ns / 1000000000ull));
            shutdown(c->fd, SHUT_RDWR);
        }
        while ((c = cs->q[Q_IDLE].head) && c->due_ns <= now) {
            uint64_t rx;
            if (bytes_received(c->fd, &rx) && rx > c->rx_mark)
                enqueue(cs, c, Q_HEADERS, now + cs->header_ns); /* the next request began */
            else
                enqueue(cs, c, Q_IDLE, now + cs->idle_poll_ns);
        }
        uint64_t next = UINT64_MAX;
        for (int q = 0; q < NQUEUES; q++)
            if (cs->q[q].head && cs->q[q].head->due_ns < next) next = cs->q[q].head->due_ns;
        cs->sleep_until = next;
        if (next == UINT64_MAX) {
            pthread_cond_wait(&cs->wake, &cs->mu);
        } else {
            struct timespec until = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
            pthread_cond_timedwait(&cs->wake, &cs->mu, &until);
        }
        cs->sleep_until = 0;
    }
    pthread_mutex_unlock(&cs->mu);
    return NULL;
}

conns *conns_new(long max_total, long max_per_client, long header_timeout_s, char *err,
                 size_t errlen)
{
    conns *cs = calloc(1, sizeof *cs);
    if (!cs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cs->max_total = max_total;
    cs->max_per_client = max_per_client;
    cs->header_ns = (uint64_t)header_timeout_s * 1000000000ull;
    /* An idle connection is polled every half header_timeout (at most every second), so a
     * kept-alive request's deadline falls between 1 and 1.5 header_timeouts after its first byte.
     */
    cs->idle_poll_ns = cs->header_ns / 2 < IDLE_POLL_NS ? cs->header_ns / 2 : IDLE_POLL_NS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cs->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&cs->mu, NULL);
    int rc = pthread_create(&cs->sweeper, NULL, sweep, cs);
    if (rc) {
        snprintf(err, errlen, "cannot start the connection sweeper thread: %s", strerror(rc));
        pthread_cond_destroy(&cs->wake);
        pthread_mutex_destroy(&cs->mu);
        free(cs);
        return NULL;
    }
    return cs;
}

void conns_free(conns *cs)
{
    if (!cs) return;
    pthread_mutex_lock(&cs->mu);
    cs->stop = true;
    pthread_cond_signal(&cs->wake);
    pthread_mutex_unlock(&cs->mu);
    pthread_join(cs->sweeper, NULL);
    for (size_t i = 0; i < NBUCKETS; i++)
        while (cs->buckets[i]) {
            addr_slot *s = cs->buckets[i];
            cs->buckets[i] = s->next;
            free(s);
        }
    pthread_cond_destroy(&cs->wake);
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

conn *conns_open(conns *cs, int fd, const struct sockaddr *sa)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->queue = Q_NONE;
    unsigned char key[16];
    unsigned char len = addr_key(sa, key);
    pthread_mutex_lock(&cs->mu);
    if (++cs->total > cs->max_total) c->refusal = CONN_OVER_TOTAL;
    c->slot = slot_get(cs, key, len, true);
    if (c->slot && ++c->slot->n > cs->max_per_client && c->refusal == CONN_OK)
        c->refusal = CONN_OVER_CLIENT;
    enqueue(cs, c, Q_HEADERS, now_ns() + cs->header_ns);
    pthread_mutex_unlock(&cs->mu);
    return c;
}

void conns_close(conns *cs, conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&cs->mu);
    unqueue(cs, c);
    cs->total--;
    if (c->slot) slot_put(cs, c->slot);
    pthread_mutex_unlock(&cs->mu);
    free(c);
}

void conns_headers_done(conns *cs, conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&cs->mu);
    unqueue(cs, c);
    pthread_mutex_unlock(&cs->mu);
}

void conns_body_wait(conns *cs, conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&cs->mu);
    enqueue(cs, c, Q_HEADERS, now_ns() + cs->header_ns);
    pthread_mutex_unlock(&cs->mu);
}

void conns_request_done(conns *cs, conn *c)
{
    if (!c) return;
    uint64_t rx = 0;
    bool known = bytes_received(c->fd, &rx);
    pthread_mutex_lock(&cs->mu);
    if (known) {
        c->rx_mark = rx;
        enqueue(cs, c, Q_IDLE, now_ns() + cs->idle_poll_ns);
    } else {
        unqueue(cs, c); /* cannot tell when the next request starts: the idle timeout applies */
    }
    pthread_mutex_unlock(&cs->mu);
}

void conns_retire(conns *cs, conn *c)
{
    conns_headers_done(cs, c);
}

conn_refusal conns_refusal(const conn *c)
{
    return c ? c->refusal : CONN_OK;
}

long conns_open_total(conns *cs)
{
    pthread_mutex_lock(&cs->mu);
    long n = cs->total;
    pthread_mutex_unlock(&cs->mu);
    return n;
}
