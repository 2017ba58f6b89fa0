/* bus: a session's event stream. Events get a per-session sequence number and stay in a ring
 * so that a client reconnecting with Last-Event-ID gets what it missed. Subscribers hold a
 * cursor; one with nothing to read is "armed" and woken by the next publish. */
#ifndef GD_BUS_H
#define GD_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define BUS_RING 1024 /* events kept per session for replay */
/* ... and at most this many bytes of them: past it, the oldest go (a reader that had not read
 * them meets a gap, events_lost), the newest is always kept. */
#define BUS_RING_BYTES (8u << 20)

typedef struct bus bus;
typedef struct bus_sub bus_sub;

/* A new bus. Its sequence numbers start at the current time in microseconds, so a session's
 * event ids keep increasing across replies and restarts without any stored state. */
bus *bus_new(void);
void bus_free(bus *b); /* no subscribers may remain */

/* Publishes an event; data is JSON text. Returns its sequence number. Thread-safe. */
uint64_t bus_publish(bus *b, const char *event, const char *data);
/* Publishes a piece of streamed text as event with data {"type": kind, "text": text} (text: n
 * bytes of UTF-8). When the newest event is a chunk of the same event and kind that no
 * subscriber has read yet, the text is added to it instead (up to 64 KiB): a client that falls
 * behind a fast stream gets bigger chunks rather than losing events, and nothing it already
 * saw changes. Returns the event's sequence number. Thread-safe. */
uint64_t bus_publish_chunk(bus *b, const char *event, const char *kind, const char *text, size_t n);
/* The sequence number the next event will get. */
uint64_t bus_next_seq(bus *b);

/* A subscriber reading from sequence number `from` on. wake(ud) is called (under the bus lock,
 * so it must only wake, e.g. resume a connection) when an armed subscriber has news. */
bus_sub *bus_subscribe(bus *b, uint64_t from, void (*wake)(void *ud), void *ud);
void bus_unsubscribe(bus_sub *s);

typedef enum {
    BUS_EVENT,  /* *seq, *event, *data are set; the caller frees event and data */
    BUS_NONE,   /* nothing now: arm(ud) was called under the lock and the subscriber is armed */
    BUS_PING,   /* a keep-alive is due */
    BUS_GAP,    /* the cursor fell out of the ring: events were lost */
    BUS_CLOSED, /* the bus is closed (shutdown) and everything was read */
} bus_read;

bus_read bus_next(bus_sub *s, uint64_t *seq, char **event, char **data, void (*arm)(void *ud),
                  void *ud);

/* bus_next without arming: BUS_NONE just means nothing now, and no wake-up will follow. For a
 * reader that already holds something to send and only wants to add what else is ready. */
bus_read bus_poll(bus_sub *s, uint64_t *seq, char **event, char **data);

/* bus_next (arming) or bus_poll (not) for an SSE writer: an event is appended to out as
 * "id: SEQ\nevent: NAME\ndata: DATA\n\n" under the bus lock, without copying it first, and its
 * name (cut to BUS_NAME_MAX - 1 bytes) goes to name. *e is the append's result: on an error
 * nothing was appended (the event is read all the same). */
#define BUS_NAME_MAX 48
bus_read bus_next_sse(bus_sub *s, buf *out, char name[BUS_NAME_MAX], gd_err *e, bool arming,
                      void (*arm)(void *ud), void *ud);

/* Between bus_hold and bus_release, publishing wakes nobody; bus_release wakes the armed
 * subscribers once if anything was published. For a producer that publishes a burst (all the
 * events in one read from the provider): one wake-up per burst instead of one per event. */
void bus_hold(bus *b);
void bus_release(bus *b);

/* Closes the bus: subscribers read what is left, then BUS_CLOSED. */
void bus_close(bus *b);

/* Marks every subscriber of b as owing a keep-alive and wakes the armed ones. */
void bus_ping(bus *b);

#endif
