#include "agent/bus.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bus_sub {
    bus *b;
    uint64_t cursor;
    bool armed;
    bool ping;
    void (*wake)(void *ud);
    void *ud;
    bus_sub *next;
};

struct bus {
    pthread_mutex_t mu;
    uint64_t next_seq; /* starts at the creation time in microseconds */
    struct {
        uint64_t seq;
        char *event;
        char *data;
    } ring[BUS_RING];
    bus_sub *subs;
    bool closed;
};

bus *bus_new(void)
{
    bus *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->next_seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    return b;
}

void bus_free(bus *b)
{
    if (!b) return;
    for (int i = 0; i < BUS_RING; i++) {
        free(b->ring[i].event);
        free(b->ring[i].data);
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void wake_armed(bus *b)
{
    for (bus_sub *s = b->subs; s; s = s->next) {
        if (s->armed) {
            s->armed = false;
            s->wake(s->ud);
        }
    }
}

uint64_t bus_publish(bus *b, const char *event, const char *data)
{
    char *e = strdup(event), *d = strdup(data);
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->next_seq++;
    size_t slot = seq % BUS_RING;
    free(b->ring[slot].event);
    free(b->ring[slot].data);
    b->ring[slot].seq = seq;
    b->ring[slot].event = e;
    b->ring[slot].data = d;
    wake_armed(b);
    pthread_mutex_unlock(&b->mu);
    return seq;
}

uint64_t bus_next_seq(bus *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->next_seq;
    pthread_mutex_unlock(&b->mu);
    return n;
}

bus_sub *bus_subscribe(bus *b, uint64_t from, void (*wake)(void *ud), void *ud)
{
    bus_sub *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->b = b;
    s->wake = wake;
    s->ud = ud;
    pthread_mutex_lock(&b->mu);
    s->cursor = from ? from : b->next_seq;
    if (s->cursor > b->next_seq) s->cursor = b->next_seq;
    s->next = b->subs;
    b->subs = s;
    pthread_mutex_unlock(&b->mu);
    return s;
}

void bus_unsubscribe(bus_sub *s)
{
    if (!s) return;
    bus *b = s->b;
    pthread_mutex_lock(&b->mu);
    for (bus_sub **pp = &b->subs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    free(s);
}

bus_read bus_next(bus_sub *s, uint64_t *seq, char **event, char **data, void (*arm)(void *ud),
                  void *ud)
{
    bus *b = s->b;
    bus_read r;
    pthread_mutex_lock(&b->mu);
    if (s->cursor < b->next_seq) {
        size_t slot = s->cursor % BUS_RING;
        if (b->ring[slot].seq != s->cursor) {
            s->cursor = b->next_seq;
            r = BUS_GAP;
        } else {
            *seq = s->cursor++;
            *event = strdup(b->ring[slot].event);
            *data = strdup(b->ring[slot].data);
            r = BUS_EVENT;
        }
    } else if (b->closed) {
        r = BUS_CLOSED;
    } else if (s->ping) {
        s->ping = false;
        r = BUS_PING;
    } else {
        s->armed = true;
        if (arm) arm(ud);
        r = BUS_NONE;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

void bus_close(bus *b)
{
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    wake_armed(b);
    pthread_mutex_unlock(&b->mu);
}

void bus_ping(bus *b)
{
    pthread_mutex_lock(&b->mu);
    for (bus_sub *s = b->subs; s; s = s->next)
        s->ping = true;
    wake_armed(b);
    pthread_mutex_unlock(&b->mu);
}
