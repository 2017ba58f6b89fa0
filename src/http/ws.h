/* ws: WebSocket connections (RFC 6455), framed by wslay, over connections upgraded by the HTTP
 * server. One core/loop, "ws-io", runs every WebSocket connection (it starts with the first and
 * stays); each connection is a wslay event context over a non-blocking socket. wslay answers pings,
 * reassembles fragmented messages and enforces masking (1002) and the message cap (1009); this
 * module adds the handshake, keep-alive pings, the close handshake with a lingering close, and
 * back-pressure: the application queues frames when woken and only while ws_room says there is
 * room.
 *
 * Threads: ws_wake may be called from any thread; every other ws_ function and every callback
 * runs on the loop's thread (open runs on the server thread doing the upgrade). */
#ifndef GD_WS_H
#define GD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/http.h"

#define WS_MAX_MESSAGE (1u << 20) /* a client message (all its fragments) over this: close 1009 */
#define WS_OUT_HIGH    (1u << 20) /* queued outgoing bytes above which ws_room says no */
#define WS_PING_S      30         /* a ping after this much silence */

/* Close codes used here (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_POLICY = 1008, /* policy violation: credentials no longer valid */
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

typedef struct ws_conn ws_conn;

typedef struct {
    /* On the server thread, during the upgrade (r is valid only during the call): returns the
     * connection's user data, or NULL to refuse it (the connection is closed with 1011). It may
     * call ws_wake(c) at once, from any thread. */
    void *(*open)(http_req *r, ws_conn *c);
    /* A complete message from the client; text messages are valid UTF-8 (wslay checks, 1007).
     * data is valid during the call only. */
    void (*on_message)(ws_conn *c, void *ud, bool text, const char *data, size_t len);
    /* Called once when the connection starts, after each ws_wake, and when the send queue has
     * drained after ws_room said no: queue what is ready, while ws_room allows. */
    void (*on_wake)(ws_conn *c, void *ud);
    /* The connection is gone (closed, failed, or the server stops): release ud. No callback
     * and no ws_wake may follow for c once this returns. */
    void (*on_close)(ws_conn *c, void *ud);
} ws_handler;

/* Checks r's opening handshake (RFC 6455 section 4.2.1): GET, `Upgrade: websocket`,
 * `Connection: upgrade`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`. When it is not
 * one, answers 400 naming what is wrong (426 with `Sec-WebSocket-Version: 13` for another
 * version) and returns false. */
bool ws_handshake_ok(http_req *r);
/* Accepts a checked handshake: 101 with Sec-WebSocket-Accept; once sent, h->open runs and the
 * connection joins the I/O thread. h must outlive the connection (a static table). While the
 * server is stopping the upgrade is refused with 503. */
void ws_accept(http_req *r, const ws_handler *h);

/* Schedules c's on_wake on the I/O thread. Thread-safe, cheap, never blocks on I/O (it may be
 * called under another module's lock, e.g. a bus's wake callback). */
void ws_wake(ws_conn *c);
/* Whether a frame may be queued now. false while the queue holds WS_OUT_HIGH bytes (on_wake
 * will be called again once it drains) or once the connection is closing. */
bool ws_room(ws_conn *c);
/* Queues a text frame (copied). GD_EINVAL once closing; GD_ENOMEM. */
gd_err ws_send_text(ws_conn *c, const char *text, size_t len);
/* Starts the close handshake with code and a short reason (truncated to 120 bytes). */
void ws_close(ws_conn *c, uint16_t code, const char *reason);

/* The server stops: every connection that is not closing already starts its close handshake
 * (1001), whose end is awaited a short while (a client that reads nothing is closed then), not
 * for as long as the stop waits for requests. Any thread. */
void ws_stop_all(void);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + the RFC's GUID)); out gets 29 bytes. */
void ws_accept_key(const char *key, char out[29]);

#endif
