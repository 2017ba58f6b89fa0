/* Fuzzes the WebSocket frame reader: what a client sends after its handshake, read by
 * src/http/ws.c and wslay over a real socket pair on ws.c's own I/O loop (framing, masking,
 * lengths up to 2^63, fragments, control frames, the close handshake, the message cap). Byte 0
 * says how many of the following bytes arrive together with the handshake (served from ws.c's
 * `pre` buffer) rather than on the socket. Each complete message is echoed back (the send path),
 * a text message must be valid UTF-8 per ws.h, and the connection must end (on_close, then
 * http_upgrade_close) within seconds of the client hanging up. ws.c is included; the few
 * functions of the HTTP server it calls are stubbed here. */
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "http/ws.c"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

/* ---- the HTTP server's side, stubbed ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int upgrades_closed, jobs_run;

const char *http_header(http_req *r, const char *name)
{
    return NULL;
}
const char *http_method(http_req *r)
{
    return "GET";
}
bool http_origin_listed(http_req *r)
{
    return false;
}
bool http_origin_trusted(http_req *r)
{
    return true;
}
void http_add_header(http_req *r, const char *name, const char *value) {}
void http_reply_error(http_req *r, int status, const char *code, const char *fmt, ...) {}
void http_reply_upgrade(http_req *r, http_upgrade_fn fn, void *cls) {}
bool http_stopping(http_req *r)
{
    return false;
}
void http_upgrade_close(http_upgrade *up)
{
    close((int)(intptr_t)up);
    pthread_mutex_lock(&mu);
    upgrades_closed++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* ---- the application ---- */

static int opened, closed_;

static bool utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (k == 9 || i + k >= n + (k ? 0 : 1)) return false;
        unsigned cp = k == 0 ? c : k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c & 0x07;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static void *h_open(http_req *r, ws_conn *c)
{
    opened++;
    return &opened;
}

static bool strict_utf8;

static void h_message(ws_conn *c, void *ud, bool text, const char *data, size_t len)
{
    CHECK(len <= WS_MAX_MESSAGE);
    if (text && strict_utf8) CHECK(utf8_ok((const unsigned char *)data, len));
    if (ws_room(c)) ws_send_text(c, "ok", 2);
}

static void h_wake(ws_conn *c, void *ud) {}

static void h_close(ws_conn *c, void *ud)
{
    closed_++;
}

static const ws_handler handler = {h_open, h_message, h_wake, h_close};

static void job(void *ud)
{
    pthread_mutex_lock(&mu);
    jobs_run++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        char err[64];
        log_configure("off", err, sizeof err);
        /* ws.h promises valid UTF-8 in text messages; GOOSED_FUZZ_WS_UTF8=1 holds it to that */
        strict_utf8 = getenv("GOOSED_FUZZ_WS_UTF8") && !strcmp(getenv("GOOSED_FUZZ_WS_UTF8"), "1");
        init = true;
    }
    if (size < 1) return 0;
    if (size > (64u << 10)) size = 64u << 10;
    size_t npre = (size - 1) * data[0] / 255;
    const char *pre = (const char *)data + 1, *rest = pre + npre;
    size_t nrest = size - 1 - npre;

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    CHECK(write(sv[1], rest, nrest) == (ssize_t)nrest || nrest == 0);
    shutdown(sv[1], SHUT_WR);

    pthread_mutex_lock(&mu);
    int want_closed = upgrades_closed + 1, want_jobs = jobs_run + 1;
    pthread_mutex_unlock(&mu);
    upgraded(NULL, (void *)&handler, sv[0], pre, npre, (http_upgrade *)(intptr_t)sv[0]);
    /* conn_start was posted first: once this job has run, what arrived has been read */
    CHECK(loop_post(io.l, job, NULL) == GD_OK);
    pthread_mutex_lock(&mu);
    while (jobs_run < want_jobs)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    close(sv[1]); /* the client hangs up: the connection must end */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    pthread_mutex_lock(&mu);
    while (upgrades_closed < want_closed)
        if (pthread_cond_timedwait(&cv, &mu, &dl) != 0) {
            fprintf(stderr, "fuzz_ws: the connection did not end 5 s after the client left\n");
            abort();
        }
    pthread_mutex_unlock(&mu);
    return 0;
}
