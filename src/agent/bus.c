#include "agent/bus.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

#define CHUNK_MERGE_MAX (64u << 10) /* a merged chunk's text stops growing here */
#define RING_BLOCK      64u         /* the ring's slots are allocated this many at a time */

struct bus_sub {
    bus *b;
    uint64_t cursor;
    bool armed;
    bool ping;
    void (*wake)(void *ud);
    void *ud;
    bus_sub *next;
};

struct slot {
    uint64_t seq;
    char *event;
    char *data;  /* JSON text; for a chunk, rendered from kind and text when stale */
    char *kind;  /* a chunk's "type" (text, thinking); NULL for other events */
    buf text;    /* a chunk's text, merged pieces included */
    bool stale;  /* data lags text */
    size_t size; /* what it holds: data's length and text's allocation (BUS_RING_BYTES) */
};

struct bus {
    pthread_mutex_t mu;
    uint64_t next_seq; /* starts at the creation time in microseconds */
    /* The ring of the last BUS_RING events, by sequence number modulo BUS_RING, in blocks of
     * RING_BLOCK slot pointers allocated when first used: a reply of a few dozen events costs
     * one block, not the whole ring's 8 KiB. */
    struct slot **ring[BUS_RING / RING_BLOCK];
    bus_sub *subs;
    bool closed;
    int held;          /* bus_hold depth: wake-ups wait for bus_release */
    bool wake_pending; /* something was published while held */
    size_t bytes;      /* the sizes of the slots in the ring */
    uint64_t oldest;   /* no slot older than this sequence number holds anything */
};

bus *bus_new(void)
{
    bus *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    pthread_mutex_init(&b->mu, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->next_seq = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    b->oldest = b->next_seq;
    return b;
}

/* The event names and chunk kinds the agent publishes: a slot points at these instead of a copy
 * (a streamed reply publishes an event per token, and the ring keeps them for replays). */
static const char *const known_names[] = {"message_chunk", "message_complete", "tool_call",
                                          "tool_result",   "tool_progress",    "tool_confirmation",
                                          "elicitation",   "notification",     "error",
                                          "text",          "thinking"};
#define NKNOWN (sizeof known_names / sizeof *known_names)

static bool name_known(const char *s)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (s == known_names[i]) return true;
    return false;
}

/* s as a slot keeps it: a known name itself, else a copy (NULL when out of memory). */
static char *name_dup(const char *s)
{
    for (size_t i = 0; i < NKNOWN; i++)
        if (!strcmp(s, known_names[i])) return (char *)known_names[i];
    return strdup(s);
}

static void name_free(char *s)
{
    if (s && !name_known(s)) free(s);
}

/* The slot at ring index i, NULL when none was ever taken there. */
static struct slot *ring_get(const bus *b, size_t i)
{
    struct slot **blk = b->ring[i / RING_BLOCK];
    return blk ? blk[i % RING_BLOCK] : NULL;
}

/* Where the slot at ring index i goes, its block allocated if needed; NULL when out of memory. */
static struct slot **ring_ref(bus *b, size_t i)
{
    struct slot ***blk = &b->ring[i / RING_BLOCK];
    if (!*blk && !(*blk = calloc(RING_BLOCK, sizeof **blk))) return NULL;
    return &(*blk)[i % RING_BLOCK];
}

void bus_free(bus *b)
{
    if (!b) return;
    for (size_t k = 0; k < BUS_RING / RING_BLOCK; k++) {
        if (!b->ring[k]) continue;
        for (size_t i = 0; i < RING_BLOCK; i++) {
            struct slot *e = b->ring[k][i];
            if (!e) continue;
            name_free(e->event);
            free(e->data);
            name_free(e->kind);
            buf_free(&e->text);
            free(e);
        }
        free(b->ring[k]);
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* sl's size counted anew in b->bytes, after a change to what it holds; under the lock. */
static void slot_resize(bus *b, struct slot *sl)
{
    b->bytes -= sl->size;
    sl->size = (sl->data ? strlen(sl->data) : 0) + sl->text.alloc;
    b->bytes += sl->size;
}

/* Empties sl: what it held is freed, and a reader reaching it meets a gap. Under the lock. */
static void slot_drop(bus *b, struct slot *sl)
{
    name_free(sl->event);
    free(sl->data);
    name_free(sl->kind);
    buf_free(&sl->text);
    sl->event = sl->data = sl->kind = NULL;
    sl->seq = 0;
    sl->stale = false;
    b->bytes -= sl->size;
    sl->size = 0;
}

/* Drops the oldest events while the ring holds more than BUS_RING_BYTES, the newest kept (a
 * server's or a model's flood of large events must not pin a session's memory). */
static void ring_trim(bus *b)
{
    if (b->next_seq - b->oldest > BUS_RING) b->oldest = b->next_seq - BUS_RING;
    while (b->bytes > BUS_RING_BYTES && b->oldest + 1 < b->next_seq) {
        struct slot *sl = ring_get(b, b->oldest % BUS_RING);
        if (sl && sl->seq == b->oldest) slot_drop(b, sl);
        b->oldest++;
    }
}

static void wake_armed(bus *b)
{
    if (b->held) {
        b->wake_pending = true;
        return;
    }
    for (bus_sub *s = b->subs; s; s = s->next) {
        if (s->armed) {
            s->armed = false;
            s->wake(s->ud);
        }
    }
}

/* Takes the next slot for event (its strings are consumed: name_dup's for event and kind); under
 * the lock. Out of memory, the event is dropped but still numbered, so that readers see a gap
 * (events_lost) rather than nothing: returns NULL then. */
static struct slot *take_slot(bus *b, char *event, char *data, char *kind)
{
    uint64_t seq = b->next_seq++;
    struct slot **ref = ring_ref(b, seq % BUS_RING);
    struct slot *e = ref ? *ref : NULL;
    if (e) {
        slot_drop(b, e); /* a merged chunk's allocation is not kept */
    } else if (ref) {
        e = *ref = calloc(1, sizeof *e);
    }
    if (!e || !event || (!data && !kind)) {
        /* seq 0: never a valid sequence number, a gap */
        name_free(event);
        free(data);
        name_free(kind);
        return NULL;
    }
    e->seq = seq;
    e->event = event;
    e->data = data;
    e->kind = kind;
    e->stale = false;
    slot_resize(b, e);
    return e;
}

uint64_t bus_publish(bus *b, const char *event, const char *data)
{
    char *e = name_dup(event), *d = strdup(data);
    pthread_mutex_lock(&b->mu);
    uint64_t seq = b->next_seq;
    take_slot(b, e, d, NULL);
    ring_trim(b);
    wake_armed(b);
    pthread_mutex_unlock(&b->mu);
    return seq;
}

/* Whether the newest event is a chunk of this event and kind that no subscriber has read yet,
 * so that more text can go into it. Under the lock. */
static bool mergeable(bus *b, const char *event, const char *kind, size_t n)
{
    if (b->next_seq == 0) return false;
    uint64_t last = b->next_seq - 1;
    const struct slot *e = ring_get(b, last % BUS_RING);
    if (!e || e->seq != last || !e->stale || !e->kind || strcmp(e->kind, kind) || !e->event ||
        strcmp(e->event, event) || e->text.len + n > CHUNK_MERGE_MAX)
        return false;
    for (bus_sub *s = b->subs; s; s = s->next)
        if (s->cursor > last) return false;
    return true;
}

uint64_t bus_publish_chunk(bus *b, const char *event, const char *kind, const char *text, size_t n)
{
    pthread_mutex_lock(&b->mu);
    uint64_t seq;
    struct slot *e;
    if (mergeable(b, event, kind, n)) {
        seq = b->next_seq - 1;
        e = ring_get(b, seq % BUS_RING);
    } else {
        seq = b->next_seq;
        e = take_slot(b, name_dup(event), NULL, name_dup(kind));
        if (e) buf_init(&e->text, n > CHUNK_MERGE_MAX ? n : CHUNK_MERGE_MAX);
    }
    if (e && buf_append(&e->text, text, n) != GD_OK)
        slot_drop(b, e); /* out of memory: subscribers reach a gap (events lost), as in take_slot */
    else if (e)
        e->stale = true;
    if (e) slot_resize(b, e);
    ring_trim(b);
    wake_armed(b); /* a subscriber that is armed has read everything: the event is new to it */
    pthread_mutex_unlock(&b->mu);
    return seq;
}

/* A chunk's data, rendered from its text when stale; under the lock. */
static const char *slot_data(bus *b, struct slot *sl)
{
    if (sl->stale) {
        /* {"type":kind,"text":text}, as jansson would write it, without a tree per chunk */
        buf out;
        buf_init(&out, BUF_CAP_SSE_OUT);
        const char *kind = sl->kind ? sl->kind : "";
        const buf *text = &sl->text;
        gd_err e = buf_puts(&out, "{\"type\":");
        if (!e) e = buf_json_string(&out, kind, strlen(kind));
        if (!e) e = buf_puts(&out, ",\"text\":");
        if (!e) e = buf_json_string(&out, text->data ? text->data : "", text->len);
        if (!e) e = buf_puts(&out, "}");
        char *d = e ? NULL : buf_detach_fit(&out); /* kept in the ring: no spare room */
        buf_free(&out);
        if (d) {
            free(sl->data);
            sl->data = d;
            sl->stale = false;
            /* Read now, so nothing merges into it any more: the rendered data is all we keep. */
            buf_free(&sl->text);
            slot_resize(b, sl);
        }
    }
    return sl->data ? sl->data : "{}";
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

/* What the reader takes of an event, under the bus lock: copies of it (bus_next, bus_poll), or its
 * SSE text appended to a buffer (bus_next_sse). */
typedef struct {
    uint64_t *seq;
    char **event, **data; /* copies */
    buf *sse;             /* or the SSE text */
    char *name;           /* and the event's name, BUS_NAME_MAX bytes */
    gd_err err;
} take;

static bus_read next(bus_sub *s, take *t, bool arming, void (*arm)(void *ud), void *ud);

bus_read bus_next(bus_sub *s, uint64_t *seq, char **event, char **data, void (*arm)(void *ud),
                  void *ud)
{
    take t = {.seq = seq, .event = event, .data = data};
    return next(s, &t, true, arm, ud);
}

bus_read bus_poll(bus_sub *s, uint64_t *seq, char **event, char **data)
{
    take t = {.seq = seq, .event = event, .data = data};
    return next(s, &t, false, NULL, NULL);
}

bus_read bus_next_sse(bus_sub *s, buf *out, char name[BUS_NAME_MAX], gd_err *e, bool arming,
                      void (*arm)(void *ud), void *ud)
{
    uint64_t seq;
    take t = {.seq = &seq, .sse = out, .name = name};
    bus_read r = next(s, &t, arming, arm, ud);
    *e = t.err;
    return r;
}

/* "id: SEQ\nevent: NAME\ndata: DATA\n\n" appended to out in one reservation: all or nothing. */
static gd_err sse_event(buf *out, uint64_t seq, const char *event, const char *data)
{
    char num[24];
    size_t nn = 0;
    do
        num[sizeof num - 1 - nn++] = (char)('0' + seq % 10);
    while ((seq /= 10) && nn < sizeof num);
    size_t el = strlen(event), dl = strlen(data);
    gd_err e = buf_reserve(out, 4 + nn + 8 + el + 7 + dl + 2);
    if (e) return e;
    buf_ignore(buf_append(out, "id: ", 4)); /* reserved above: these cannot fail */
    buf_ignore(buf_append(out, num + sizeof num - nn, nn));
    buf_ignore(buf_append(out, "\nevent: ", 8));
    buf_ignore(buf_append(out, event, el));
    buf_ignore(buf_append(out, "\ndata: ", 7));
    buf_ignore(buf_append(out, data, dl));
    buf_ignore(buf_append(out, "\n\n", 2));
    return GD_OK;
}

static bus_read next(bus_sub *s, take *t, bool arming, void (*arm)(void *ud), void *ud)
{
    bus *b = s->b;
    bus_read r;
    pthread_mutex_lock(&b->mu);
    if (s->cursor < b->next_seq) {
        struct slot *sl = ring_get(b, s->cursor % BUS_RING);
        if (!sl || sl->seq != s->cursor) {
            s->cursor = b->next_seq;
            r = BUS_GAP;
        } else {
            *t->seq = s->cursor++;
            if (t->sse) {
                t->err = sse_event(t->sse, *t->seq, sl->event, slot_data(s->b, sl));
                snprintf(t->name, BUS_NAME_MAX, "%s", sl->event);
            } else {
                *t->event = strdup(sl->event);
                *t->data = strdup(slot_data(s->b, sl));
            }
            r = BUS_EVENT;
        }
    } else if (b->closed) {
        r = BUS_CLOSED;
    } else if (s->ping) {
        s->ping = false;
        r = BUS_PING;
    } else {
        if (arming) {
            s->armed = true;
            if (arm) arm(ud);
        }
        r = BUS_NONE;
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

void bus_hold(bus *b)
{
    pthread_mutex_lock(&b->mu);
    b->held++;
    pthread_mutex_unlock(&b->mu);
}

void bus_release(bus *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->held > 0 && --b->held == 0 && b->wake_pending) {
        b->wake_pending = false;
        wake_armed(b);
    }
    pthread_mutex_unlock(&b->mu);
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
