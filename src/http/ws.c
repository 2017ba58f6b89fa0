/* WebSocket connections: the handshake, and one core/loop, "ws-io", for all of them.
 *
 * A connection's life on the loop:
 *   OPEN    wslay reads and writes; on_message / on_wake run; a close frame may be queued (by
 *           the application, or by wslay for a protocol error, 1002, or a message over the cap,
 *           1009), after which the peer's close is awaited for CLOSE_WAIT_MS
 *   LINGER  the close handshake is over (wslay wants neither to read nor to write): our side is
 *           shut down (FIN after the close frame), and what the peer still sends is read and
 *           dropped until it closes too or LINGER_MS pass, so that unread bytes never turn our
 *           close frame into a reset
 *   DEAD    reaped by a function posted to the loop: on_close, then the socket goes back to the
 *           HTTP server (http_upgrade_close), which closes it; the memory goes in a second post
 * Connections are never freed inside their own callbacks: they are marked DEAD and reaped at a
 * safe point.
 *
 * Each connection is a fd watcher of the loop and has one timer, armed for whichever comes
 * first: the end of the close handshake or of the lingering close, or the keep-alive check
 * (lazily: reading does not move the timer; when it fires early it is armed again for
 * last_rx + WS_PING_S).
 *
 * ws_wake posts to the loop; a per-connection atomic flag makes a burst of wakes post once. A
 * wake posted before on_close returned may run after the reap: the connection's memory is freed
 * by a later post, so that wake finds it DEAD and does nothing.
 *
 * The loop is created with the first connection and lives as long as the process: loop_free
 * cannot run on the loop's own thread, where the last connection ends, and an idle loop costs
 * one sleeping thread. (There is no ws init function to create it at start-up, and
 * adding one would mean a change in main.c for no gain.) */
#include "http/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/loop.h"

#define CLOSE_WAIT_MS 2000 /* after our close frame, how long the peer has to answer */
#define LINGER_MS     2000 /* after the close handshake, how long the peer has to close */
#define PING_MS       (WS_PING_S * 1000u)
#define RECV_BUDGET   (256u << 10)      /* bytes read from one connection per loop iteration */
#define OUT_LOW       (WS_OUT_HIGH / 4) /* a starved producer is woken below this */
#define FLUSH_ROUNDS  4                 /* producer wake-ups per connection per loop iteration */

typedef enum { WS_OPEN, WS_LINGER, WS_DEAD } ws_state;

struct ws_conn {
    int fd;
    http_upgrade *up;
    wslay_event_context_ptr ctx;
    const ws_handler *h;
    void *ud;  /* NULL: open refused the connection */
    char *pre; /* bytes the HTTP server had read past the handshake, served first */
    size_t npre, preoff;
    ws_state state;
    bool going_away; /* the server was stopping when the connection opened */
    bool closing;    /* a close frame was queued: no more messages */
    bool wblocked;   /* send said EAGAIN: wait for LOOP_WRITE */
    bool starved;    /* ws_room said no: on_wake again once the queue drains */
    bool ping_out;   /* a ping is unanswered */
    bool io_failed;  /* recv saw the peer close or reset the connection */
    size_t rbudget;
    uint64_t last_rx;  /* ms: when the peer last sent anything */
    uint64_t ping_at;  /* ms */
    uint64_t deadline; /* ms: the close handshake or the lingering close ends by then; 0: none */
    atomic_bool woken; /* a wake is posted and has not run yet (any thread) */
    loop_fd *w;        /* the socket's watcher (loop thread only, as everything below) */
    loop_timer *timer; /* the deadline or the keep-alive check */
    uint64_t timer_at; /* ms: when timer fires */
    ws_conn *dnext;    /* io.dead */
    ws_conn *oprev, *onext; /* io.open */
};

static struct {
    pthread_mutex_t mu; /* guards l's creation */
    loop *l;            /* "ws-io", created with the first connection; never freed */
    ws_conn *dead;      /* marked DEAD, not yet reaped (loop thread) */
    ws_conn *open;      /* watched by the loop, not yet reaped (loop thread) */
    bool reap_posted;   /* a reap is posted (loop thread) */
} io = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ms(void)
{
    return loop_now_ms(io.l);
}

/* ---- SHA-1 (only for Sec-WebSocket-Accept) ---- */

static uint32_t rol(uint32_t x, int k)
{
    return (x << k) | (x >> (32 - k));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999u;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1u;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDCu;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6u;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    size_t i = 0;
    for (; i + 64 <= len; i += 64)
        sha1_block(h, data + i);
    uint8_t tail[128] = {0};
    size_t rem = len - i, tl = rem + 9 <= 64 ? 64 : 128;
    memcpy(tail, data + i, rem);
    tail[rem] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int j = 0; j < 8; j++)
        tail[tl - 1 - (size_t)j] = (uint8_t)(bits >> (8 * j));
    sha1_block(h, tail);
    if (tl == 128) sha1_block(h, tail + 64);
    for (int j = 0; j < 5; j++) {
        out[4 * j] = (uint8_t)(h[j] >> 24);
        out[4 * j + 1] = (uint8_t)(h[j] >> 16);
        out[4 * j + 2] = (uint8_t)(h[j] >> 8);
        out[4 * j + 3] = (uint8_t)h[j];
    }
}

void ws_accept_key(const char *key, char out[29])
{
    char in[160];
    int n = snprintf(in, sizeof in, "%.100s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    uint8_t digest[20];
    sha1((const uint8_t *)in, (size_t)n, digest);
    sodium_bin2base64(out, 29, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
}

/* ---- the handshake ---- */

/* Whether a comma-separated header value lists tok (case-insensitive). */
static bool has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ","), l = len;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l == n && !strncasecmp(p, tok, n)) return true;
        p += len;
    }
    return false;
}

static bool valid_key(const char *key)
{
    unsigned char bin[32];
    size_t binlen = 0;
    const char *end = NULL;
    return strlen(key) == 24 &&
           sodium_base642bin(bin, sizeof bin, key, 24, NULL, &binlen, &end,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
           binlen == 16 && end == key + 24;
}

bool ws_handshake_ok(http_req *r)
{
    const char *v;
    if (strcmp(http_method(r), "GET")) {
        http_reply_error(r, 400, "bad_request", "a WebSocket handshake is a GET request, not %s",
                         http_method(r));
        return false;
    }
    v = http_header(r, "Upgrade");
    if (!v || !has_token(v, "websocket")) {
        http_reply_error(r, 400, "bad_request",
                         "this is a WebSocket endpoint: the request needs \"Upgrade: websocket\"");
        return false;
    }
    v = http_header(r, "Connection");
    if (!v || !has_token(v, "upgrade")) {
        http_reply_error(r, 400, "bad_request",
                         "a WebSocket handshake needs \"Connection: Upgrade\"");
        return false;
    }
    v = http_header(r, "Sec-WebSocket-Version");
    if (!v) {
        http_reply_error(r, 400, "bad_request",
                         "a WebSocket handshake needs \"Sec-WebSocket-Version: 13\"");
        return false;
    }
    if (strcmp(v, "13")) {
        http_add_header(r, "Sec-WebSocket-Version", "13");
        http_reply_error(r, 426, "upgrade_required",
                         "WebSocket version %.20s is not supported; use version 13", v);
        return false;
    }
    v = http_header(r, "Sec-WebSocket-Key");
    if (!v) {
        http_reply_error(r, 400, "bad_request", "a WebSocket handshake needs a Sec-WebSocket-Key");
        return false;
    }
    if (!valid_key(v)) {
        http_reply_error(r, 400, "bad_request",
                         "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)");
        return false;
    }
    /* A browser sends Origin with every WebSocket handshake, and the same-origin policy does
     * not apply to WebSockets: without this check any web page could drive a user's local
     * goosed (cross-site WebSocket hijacking). Origin == Host is no proof: a page on a domain
     * rebound to 127.0.0.1 sends its domain as both. */
    v = http_header(r, "Origin");
    if (v && !http_origin_trusted(r)) {
        http_reply_error(r, 403, "forbidden_origin",
                         "WebSocket connections from origin %.200s are not allowed: it is neither "
                         "this server nor in cors_origins",
                         v);
        return false;
    }
    return true;
}

/* ---- wslay callbacks (I/O thread) ---- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags, void *ud)
{
    ws_conn *c = ud;
    if (c->preoff < c->npre) {
        size_t n = c->npre - c->preoff < len ? c->npre - c->preoff : len;
        memcpy(out, c->pre + c->preoff, n);
        c->preoff += n;
        return (ssize_t)n;
    }
    if (c->rbudget == 0) { /* fair share used: the loop (level-triggered) brings us back */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > c->rbudget) len = c->rbudget;
    for (;;) {
        ssize_t n = recv(c->fd, out, len, 0);
        if (n > 0) {
            c->rbudget -= (size_t)n;
            c->last_rx = now_ms();
            c->ping_out = false;
            return n;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        else { /* the peer closed or reset the connection */
            c->io_failed = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    ws_conn *c = ud;
    for (;;) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->wblocked = true;
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
    ws_conn *c = ud;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME) return;
    if (c->closing || !c->ud) return; /* after our close frame, data is dropped */
    c->h->on_message(c, c->ud, arg->opcode == WSLAY_TEXT_FRAME, (const char *)arg->msg,
                     arg->msg_length);
}

/* ---- the application's side ---- */

bool ws_room(ws_conn *c)
{
    if (c->state != WS_OPEN || c->closing || !wslay_event_get_write_enabled(c->ctx)) return false;
    if (wslay_event_get_queued_msg_length(c->ctx) < WS_OUT_HIGH) return true;
    c->starved = true;
    return false;
}

gd_err ws_send_text(ws_conn *c, const char *text, size_t len)
{
    if (c->state != WS_OPEN || c->closing) return GD_EINVAL;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    int rv = wslay_event_queue_msg(c->ctx, &m);
    if (rv == WSLAY_ERR_NOMEM) return GD_ENOMEM;
    if (rv) { /* a close frame was queued (by wslay, for a protocol error) */
        c->closing = true;
        return GD_EINVAL;
    }
    return GD_OK;
}

void ws_close(ws_conn *c, uint16_t code, const char *reason)
{
    if (c->state != WS_OPEN || c->closing) return;
    c->closing = true;
    size_t n = reason ? strlen(reason) : 0;
    if (n > 120) n = 120;
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason, n);
}

static void conn_service(ws_conn *c, unsigned ev, bool wake);

/* The posted wake-up (loop thread). The flag is cleared first, so a wake during on_wake posts
 * again. */
static void wake_run(void *ud)
{
    ws_conn *c = ud;
    atomic_store(&c->woken, false);
    conn_service(c, 0, true);
}

void ws_wake(ws_conn *c)
{
    if (atomic_exchange(&c->woken, true)) return; /* one is posted already */
    if (loop_post(io.l, wake_run, c) != GD_OK) {
        atomic_store(&c->woken, false); /* out of memory: the next wake tries again */
        log_error("ws", "fd %d: cannot schedule a wake-up (out of memory)", c->fd);
    }
}

/* ---- the loop ---- */

static void reap_dead(void *ud);

static void conn_dead(ws_conn *c)
{
    if (c->state == WS_DEAD) return;
    c->state = WS_DEAD;
    c->dnext = io.dead;
    io.dead = c;
    if (io.reap_posted) return;
    if (loop_post(io.l, reap_dead, NULL) == GD_OK)
        io.reap_posted = true;
    else /* the next conn_dead, or the next connection's end, tries again */
        log_error("ws", "cannot schedule the reaping of a connection (out of memory)");
}

static void conn_timer(void *ud);

/* Arms c's one timer for the earliest of its deadline and its keep-alive check. */
static void conn_arm(ws_conn *c)
{
    uint64_t at;
    if (c->state == WS_DEAD) return;
    if (c->deadline)
        at = c->deadline;
    else if (c->state == WS_OPEN && !c->closing)
        at = (c->ping_out ? c->ping_at : c->last_rx) + PING_MS;
    else
        return;
    if (c->timer) {
        if (c->timer_at == at) return;
        loop_timer_cancel(c->timer);
    }
    uint64_t now = now_ms();
    c->timer = loop_timer_add(io.l, at > now ? at - now : 0, conn_timer, c);
    c->timer_at = at;
    if (!c->timer) {
        log_error("ws", "fd %d: cannot set a timer (out of memory); closing", c->fd);
        conn_dead(c);
    }
}

/* Sends what is queued and lets a starved producer queue more, a few rounds at most. */
static void conn_flush(ws_conn *c)
{
    for (int round = 0; c->state == WS_OPEN; round++) {
        if (!c->wblocked && wslay_event_want_write(c->ctx) && wslay_event_send(c->ctx) != 0) {
            conn_dead(c);
            return;
        }
        if (!c->starved || c->wblocked || c->closing ||
            wslay_event_get_queued_msg_length(c->ctx) >= OUT_LOW)
            return;
        if (round == FLUSH_ROUNDS) { /* others' turn: come back on a later iteration */
            ws_wake(c);
            return;
        }
        c->starved = false;
        c->h->on_wake(c, c->ud);
    }
}

/* Moves c along OPEN -> LINGER after the close handshake and watches the events it needs. */
/* Whether what waits to be sent has reached WS_OUT_HIGH: then nothing more is read until it
 * drains. A peer that sends pings (each queues a pong) or messages answered by frames, and reads
 * nothing, would otherwise grow the queue without end. */
static bool backlogged(ws_conn *c)
{
    return wslay_event_get_queued_msg_length(c->ctx) >= WS_OUT_HIGH;
}

static void conn_settle(ws_conn *c)
{
    uint64_t now = now_ms();
    if (c->state == WS_OPEN) {
        bool wr = wslay_event_want_read(c->ctx), ww = wslay_event_want_write(c->ctx);
        if (!wr && !ww) {
            log_debug("ws", "fd %d: close handshake done (sent %u, received %u)", c->fd,
                      wslay_event_get_status_code_sent(c->ctx),
                      wslay_event_get_status_code_received(c->ctx));
            shutdown(c->fd, SHUT_WR);
            c->state = WS_LINGER;
            c->deadline = now + LINGER_MS;
            conn_arm(c);
        } else if ((c->closing || !wr || wslay_event_get_close_sent(c->ctx)) && !c->deadline) {
            /* closing: by us, or by wslay (it stopped reading after a protocol error) */
            c->closing = true;
            c->deadline = now + CLOSE_WAIT_MS;
            conn_arm(c);
        }
    }
    if (c->state == WS_DEAD) return;
    unsigned want = 0;
    if (c->state == WS_LINGER || (wslay_event_want_read(c->ctx) && !backlogged(c)))
        want |= LOOP_READ;
    if (c->state == WS_OPEN && c->wblocked) want |= LOOP_WRITE;
    if (loop_fd_mod(c->w, want) != GD_OK) conn_dead(c);
}

/* After the close handshake: reads and drops until the peer closes. */
static void conn_linger(ws_conn *c)
{
    char sink[4096];
    for (size_t total = 0; total < RECV_BUDGET;) {
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        conn_dead(c); /* closed by the peer: done */
        return;
    }
}

/* wslay_event_recv failed. When the peer went away, so does the connection. Otherwise wslay
 * found a framing error below the message layer (a fragmented or oversized control frame, a
 * length not in its shortest form): it stopped reading and queued a close frame without a
 * status code. When that close is all that is queued (no frame half sent), 1002 is sent here in
 * its place; else wslay's goes out after what is queued. */
static void conn_recv_failed(ws_conn *c, int rv)
{
    if (rv != WSLAY_ERR_CALLBACK_FAILURE || c->io_failed) { /* out of memory, or gone */
        conn_dead(c);
        return;
    }
    log_debug("ws", "fd %d: framing error from the peer", c->fd);
    if (c->closing || wslay_event_get_queued_msg_count(c->ctx) != 1) return;
    static const uint8_t close1002[] = {0x88, 0x02, WS_CLOSE_PROTOCOL_ERROR >> 8,
                                        WS_CLOSE_PROTOCOL_ERROR & 0xff};
    c->closing = true;
    wslay_event_shutdown_write(c->ctx);
    if (send(c->fd, close1002, sizeof close1002, MSG_NOSIGNAL) != (ssize_t)sizeof close1002)
        conn_dead(c);
}

/* Handles the socket's events ev (LOOP_*) and, when wake, the application's wake-up. */
static void conn_service(ws_conn *c, unsigned ev, bool wake)
{
    if (c->state == WS_DEAD) return;
    if (ev & LOOP_ERR) {
        conn_dead(c);
        return;
    }
    if (c->state == WS_LINGER) {
        if (ev & (LOOP_READ | LOOP_HUP)) conn_linger(c);
        return;
    }
    if (ev & LOOP_WRITE) c->wblocked = false;
    if ((ev & (LOOP_READ | LOOP_HUP)) && !backlogged(c)) {
        if (!wslay_event_want_read(c->ctx)) {
            if (ev & LOOP_HUP) conn_dead(c);
        } else {
            c->rbudget = RECV_BUDGET;
            int rv = wslay_event_recv(c->ctx);
            if (rv != 0) conn_recv_failed(c, rv);
        }
        if (c->state == WS_DEAD) return;
    }
    if (wake && !c->closing && c->ud) c->h->on_wake(c, c->ud);
    conn_flush(c);
    conn_settle(c);
}

static void conn_io(loop_fd *w, int fd, unsigned events, void *ud)
{
    conn_service(ud, events, false);
}

/* The one timer: a deadline passed, or it is time to look at the keep-alive. */
static void conn_timer(void *ud)
{
    ws_conn *c = ud;
    c->timer = NULL;
    if (c->state == WS_DEAD) return;
    uint64_t now = now_ms();
    if (c->deadline) {
        if (now >= c->deadline) conn_dead(c);
        conn_arm(c);
        return;
    }
    if (c->state == WS_OPEN && !c->closing) {
        if (c->ping_out && now - c->ping_at >= PING_MS) {
            log_info("ws", "fd %d: no answer to a ping in %d s; closing", c->fd, WS_PING_S);
            conn_dead(c);
            return;
        }
        if (!c->ping_out && now - c->last_rx >= PING_MS) {
            struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
            if (wslay_event_queue_msg(c->ctx, &ping) == 0) {
                c->ping_out = true;
                c->ping_at = now;
                conn_flush(c);
                conn_settle(c);
            } else { /* out of memory: try again a bit later */
                c->last_rx = now - PING_MS + 1000;
            }
        }
    }
    conn_arm(c);
}

/* Posted by upgraded(): the connection joins the loop. */
static void conn_start(void *ud)
{
    ws_conn *c = ud;
    c->last_rx = now_ms();
    c->w = loop_fd_add(io.l, c->fd, LOOP_READ, conn_io, c);
    if (!c->w) {
        log_warn("ws", "cannot watch a WebSocket connection: %s", strerror(errno));
        conn_dead(c);
        return;
    }
    c->onext = io.open;
    if (io.open) io.open->oprev = c;
    io.open = c;
    conn_arm(c);
    if (!c->ud)
        ws_close(c, WS_CLOSE_INTERNAL, "the server could not start this stream");
    else if (c->going_away)
        ws_close(c, WS_CLOSE_GOING_AWAY, "the server is shutting down");
    /* wakes since open were held back by the flag, set in upgraded(): let them through */
    atomic_store(&c->woken, false);
    conn_service(c, LOOP_READ, true); /* bytes that came with the handshake, and the first pull */
}

/* Posted after the reap: every wake posted before on_close returned has run by now. */
static void conn_free(void *ud)
{
    free(ud);
}

static void conn_reap(ws_conn *c)
{
    if (c->w) { /* in io.open since conn_start */
        if (c->oprev)
            c->oprev->onext = c->onext;
        else
            io.open = c->onext;
        if (c->onext) c->onext->oprev = c->oprev;
    }
    loop_fd_del(c->w);
    loop_timer_cancel(c->timer);
    c->w = NULL;
    c->timer = NULL;
    if (c->ud) c->h->on_close(c, c->ud); /* after this no ws_wake comes for c */
    log_debug("ws", "fd %d: closed (sent %u, received %u)", c->fd,
              wslay_event_get_status_code_sent(c->ctx),
              wslay_event_get_status_code_received(c->ctx));
    wslay_event_context_free(c->ctx);
    c->ctx = NULL;
    free(c->pre);
    c->pre = NULL;
    http_upgrade_close(c->up);                  /* the HTTP server closes the socket */
    if (loop_post(io.l, conn_free, c) != GD_OK) /* leaked rather than used after free */
        log_error("ws", "fd %d: cannot schedule freeing a connection (out of memory)", c->fd);
}

static void reap_dead(void *ud)
{
    io.reap_posted = false;
    while (io.dead) {
        ws_conn *c = io.dead;
        io.dead = c->dnext;
        conn_reap(c);
    }
}

/* Posted by ws_stop_all: every connection not closing yet starts its close handshake. */
static void stop_all(void *ud)
{
    (void)ud;
    for (ws_conn *c = io.open; c; c = c->onext) {
        if (c->state != WS_OPEN || c->closing) continue;
        ws_close(c, WS_CLOSE_GOING_AWAY, "the server is shutting down");
        conn_flush(c);
        conn_settle(c);
    }
}

void ws_stop_all(void)
{
    pthread_mutex_lock(&io.mu);
    loop *l = io.l;
    pthread_mutex_unlock(&io.mu);
    if (l && loop_post(l, stop_all, NULL) != GD_OK)
        log_error("ws", "cannot close the WebSocket connections (out of memory)");
}

/* The loop, created on first use. NULL when it cannot be started. */
static loop *io_loop(void)
{
    pthread_mutex_lock(&io.mu);
    if (!io.l) {
        io.l = loop_new("ws-io");
        if (!io.l) log_error("ws", "cannot start the WebSocket I/O loop: %s", strerror(errno));
    }
    loop *l = io.l;
    pthread_mutex_unlock(&io.mu);
    return l;
}

/* The HTTP server's upgrade callback (a server thread): the socket is ours from here. */
static void upgraded(http_req *r, void *cls, int fd, const char *extra, size_t extra_len,
                     http_upgrade *up)
{
    const ws_handler *h = cls;
    ws_conn *c = calloc(1, sizeof *c);
    if (!c || !io_loop()) {
        free(c);
        http_upgrade_close(up);
        return;
    }
    c->fd = fd;
    c->up = up;
    c->h = h;
    atomic_init(&c->woken, true); /* no wake is posted until conn_start has run */
    if (extra_len) {
        c->pre = malloc(extra_len);
        if (c->pre) memcpy(c->pre, extra, extra_len);
        c->npre = c->pre ? extra_len : 0;
    }
    int fl = fcntl(fd, F_GETFL);
    int one = 1;
    struct wslay_event_callbacks cbs = {
        .recv_callback = on_recv, .send_callback = on_send, .on_msg_recv_callback = on_msg};
    if ((extra_len && !c->pre) || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        wslay_event_context_server_init(&c->ctx, &cbs, c) != 0) {
        log_error("ws", "cannot set up a WebSocket connection (out of memory?)");
        free(c->pre);
        free(c);
        http_upgrade_close(up);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* small frames, sent at once */
    wslay_event_config_set_max_recv_msg_length(c->ctx, WS_MAX_MESSAGE);
    c->ud = h->open(r, c);
    /* Checked after open subscribed to its events: a server that started stopping before this
     * point either closes those events later (and the stream sees it) or is seen here. */
    c->going_away = http_stopping(r);
    if (loop_post(io.l, conn_start, c) != GD_OK) {
        log_error("ws", "cannot hand a WebSocket connection to its loop (out of memory)");
        if (c->ud) h->on_close(c, c->ud);
        wslay_event_context_free(c->ctx);
        free(c->pre);
        free(c);
        http_upgrade_close(up);
    }
}

void ws_accept(http_req *r, const ws_handler *h)
{
    if (http_stopping(r)) {
        http_reply_error(r, 503, "shutting_down", "the server is shutting down");
        return;
    }
    char accept[29];
    ws_accept_key(http_header(r, "Sec-WebSocket-Key"), accept);
    http_add_header(r, "Upgrade", "websocket");
    http_add_header(r, "Sec-WebSocket-Accept", accept);
    http_reply_upgrade(r, upgraded, (void *)h);
}
