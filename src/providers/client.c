/* Provider requests for every session, driven by one thread on one libcurl multi handle: a
 * thousand replies in flight are a thousand small structs and easy handles, not threads. The
 * thread waits in epoll and hands libcurl only the sockets that are ready
 * (curl_multi_socket_action), so the cost of a token does not grow with the number of replies
 * in flight, as it would with curl_multi_perform and curl_multi_poll, which visit every one.
 *
 * A call is attempted, and retried on 429, 5xx and connection errors (exponential backoff with
 * jitter, or the provider's Retry-After) as long as nothing has reached the sink yet. A stall
 * longer than api_timeout ends the attempt (CURLOPT_LOW_SPEED_*). Everything about a call
 * happens on the loop thread; other threads only queue calls and set cancel flags. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "providers/provider.h"

#define SSE_LINE_CAP  (8u << 20)
#define ERR_BODY_CAP  (64u << 10)
#define RETRY_BASE_MS 500
#define RETRY_MAX_MS  30000

struct prov_call {
    provider_cfg cfg;
    const prov_dialect_ops *d;
    char *body;
    struct curl_slist *hdrs;
    CURL *easy;
    prov_sink user; /* the caller's sink */
    prov_sink mine; /* forwards to user, noting that output started */
    prov_done done;
    void *ud;
    prov_parser *parser;
    sse_reader *sse;
    prov_result res;
    bool output_started;
    bool stream_error; /* the parser rejected the stream */
    int attempt;
    uint64_t retry_at; /* monotonic ns; 0 when not waiting */
    buf errbody;
    atomic_bool cancel;
    char errbuf[CURL_ERROR_SIZE];
    struct prov_call *next;
};

static struct {
    pthread_t thread;
    bool running;
    CURLM *multi;
    int epfd; /* the sockets libcurl wants watched, and evfd */
    int evfd; /* wakes the loop: a call queued or cancelled, or stop */
    pthread_mutex_t mu;
    prov_call *incoming; /* guarded by mu */
    bool stopping;       /* guarded by mu */
    /* loop thread only */
    prov_call *calls;  /* started or waiting to retry */
    bool tend;         /* tend_calls is due: woken, or a retry was scheduled */
    long curl_timeout; /* libcurl's timer: ms from curl_timer_at, -1 when none */
    uint64_t curl_timer_at;
} cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .evfd = -1, .curl_timeout = -1};

static void wake_loop(void)
{
    uint64_t one = 1;
    if (write(cl.evfd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_error("provider", "cannot wake the provider loop: %s", strerror(errno));
}

/* ---- the sink wrapper ---- */

static void w_text(void *ud, const char *s, size_t n)
{
    prov_call *c = ud;
    c->output_started = true;
    c->user.text(c->user.ud, s, n);
}
static void w_thinking(void *ud, const char *s, size_t n)
{
    prov_call *c = ud;
    c->output_started = true;
    if (c->user.thinking) c->user.thinking(c->user.ud, s, n);
}
static void w_signature(void *ud, const char *s)
{
    prov_call *c = ud;
    if (c->user.signature) c->user.signature(c->user.ud, s);
}
static void w_tool_call(void *ud, const char *id, const char *name, json_t *args)
{
    prov_call *c = ud;
    c->output_started = true;
    c->user.tool_call(c->user.ud, id, name, args);
}

/* ---- curl callbacks ---- */

static gd_err on_event(void *ud, const char *event, const char *data)
{
    prov_call *c = ud;
    return c->d->parser_event(c->parser, event, data, &c->res);
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    prov_call *c = ud;
    size_t len = size * n;
    if (atomic_load(&c->cancel)) return 0; /* aborts the transfer */
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        size_t room = ERR_BODY_CAP - c->errbody.len;
        buf_append(&c->errbody, ptr, len < room ? len : room);
        return len;
    }
    if (c->user.burst) c->user.burst(c->user.ud, true);
    gd_err e = sse_reader_feed(c->sse, ptr, len);
    if (c->user.burst) c->user.burst(c->user.ud, false);
    if (e) {
        if (e == GD_ETOOBIG)
            snprintf(c->res.error, sizeof c->res.error, "the provider sent a line over %u bytes",
                     SSE_LINE_CAP);
        c->stream_error = true;
        return 0;
    }
    return len;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
    prov_call *c = ud;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(ptr, "retry-after:", 12)) {
        double secs = atof(ptr + 12);
        if (secs > 0) c->res.retry_after_ms = (long)(secs * 1000);
    }
    return len;
}

/* ---- attempts ---- */

static void attempt_cleanup(prov_call *c)
{
    if (c->easy) {
        curl_multi_remove_handle(cl.multi, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    if (c->parser) c->d->parser_free(c->parser);
    c->parser = NULL;
    sse_reader_free(c->sse);
    c->sse = NULL;
}

static bool attempt_start(prov_call *c)
{
    char url[1400];
    c->d->url(&c->cfg, url, sizeof url);
    c->parser = c->d->parser_new(&c->mine);
    c->sse = sse_reader_new(SSE_LINE_CAP, on_event, c);
    c->easy = curl_easy_init();
    if (!c->parser || !c->sse || !c->easy) {
        snprintf(c->res.error, sizeof c->res.error, "out of memory");
        return false;
    }
    buf_reset(&c->errbody);
    memset(&c->res, 0, sizeof c->res);
    c->stream_error = false;
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, c->cfg.timeout_s);
    /* A stall: less than 1 byte/s for api_timeout seconds. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->cfg.timeout_s);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    c->errbuf[0] = '\0';
    c->attempt++;
    if (curl_multi_add_handle(cl.multi, e) != CURLM_OK) {
        snprintf(c->res.error, sizeof c->res.error, "cannot start the provider request");
        return false;
    }
    log_debug("provider", "%s attempt %d: POST %s", c->cfg.def->name, c->attempt, url);
    return true;
}

static void call_free(prov_call *c)
{
    attempt_cleanup(c);
    curl_slist_free_all(c->hdrs);
    free(c->body);
    buf_free(&c->errbody);
    free(c);
}

/* Removes c from the loop's list, reports, frees. */
static void finish(prov_call *c)
{
    for (prov_call **pp = &cl.calls; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    attempt_cleanup(c);
    if (atomic_load(&c->cancel)) {
        snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "cancelled");
        c->res.error[0] = '\0';
    }
    c->done(c->ud, &c->res);
    call_free(c);
}

static void fail_or_retry(prov_call *c)
{
    if (c->res.retryable && !c->output_started && c->attempt <= c->cfg.max_retries &&
        !atomic_load(&c->cancel)) {
        long wait = c->res.retry_after_ms;
        if (!wait) {
            long base = RETRY_BASE_MS << (c->attempt - 1 < 6 ? c->attempt - 1 : 6);
            wait = base / 2 + (long)randombytes_uniform((uint32_t)(base / 2 + 1));
        }
        if (wait > RETRY_MAX_MS) wait = RETRY_MAX_MS;
        log_info("provider", "%s: %s; retrying in %ld ms (attempt %d of %ld)", c->cfg.def->name,
                 c->res.error, wait, c->attempt + 1, c->cfg.max_retries + 1);
        attempt_cleanup(c);
        c->retry_at = clock_mono_ns() + (uint64_t)wait * 1000000u;
        cl.tend = true; /* so that the loop times the retry */
        return;
    }
    snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
    finish(c);
}

static void on_transfer_done(prov_call *c, CURLcode code)
{
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    c->res.http_status = status;
    if (atomic_load(&c->cancel)) {
        finish(c);
        return;
    }
    if (c->stream_error) {
        /* The parser rejected the stream. A transient error the provider reported in it
         * (overloaded, ...) is retried like a 5xx if nothing reached the client yet; a broken
         * stream is not. */
        if (c->res.retryable) {
            fail_or_retry(c);
            return;
        }
        snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
        finish(c);
        return;
    }
    if (code != CURLE_OK) {
        const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(code);
        if (status >= 200 && status <= 299)
            snprintf(c->res.error, sizeof c->res.error,
                     "the provider's stream ended before it was complete (%s)", why);
        else
            snprintf(c->res.error, sizeof c->res.error, "cannot reach the provider at %s: %s",
                     c->cfg.base, why);
        c->res.retryable = true;
        fail_or_retry(c);
        return;
    }
    if (status < 200 || status > 299) {
        c->d->error_body(c->errbody.data ? c->errbody.data : "", c->errbody.len, &c->res);
        char msg[sizeof c->res.error];
        snprintf(msg, sizeof msg, "%s", c->res.error);
        snprintf(c->res.error, sizeof c->res.error, "%s returned HTTP %ld: %s", c->cfg.def->name,
                 status, msg);
        c->res.retryable = status == 429 || status >= 500;
        fail_or_retry(c);
        return;
    }
    gd_err e = sse_reader_end(c->sse);
    if (!e) e = c->d->parser_finish(c->parser, &c->res);
    if (e) {
        snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
        c->res.retryable = !c->output_started;
        fail_or_retry(c);
        return;
    }
    finish(c);
}

/* ---- the loop ---- */

/* libcurl says which events a socket needs (CURLMOPT_SOCKETFUNCTION). */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy, (void)userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(cl.epfd, EPOLL_CTL_DEL, fd, NULL); /* fails harmlessly if closed already */
        return 0;
    }
    struct epoll_event ev = {.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                                       (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
                             .data.fd = fd};
    /* socketp: set by curl_multi_assign below once the socket is in the epoll set */
    if (epoll_ctl(cl.epfd, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) {
        log_error("provider", "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    if (!socketp) curl_multi_assign(cl.multi, fd, &cl); /* any non-NULL mark */
    return 0;
}

/* libcurl's single timer (CURLMOPT_TIMERFUNCTION): -1 deletes it. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi, (void)userp;
    cl.curl_timeout = timeout_ms;
    cl.curl_timer_at = clock_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    return 0;
}

static void read_done(void)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(cl.multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        prov_call *c;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
        on_transfer_done(c, result);
    }
}

/* New calls, cancels, due retries, stop: walks every call, so it runs only when woken for one
 * of these, or when a retry is due. Returns the ms until the next retry, -1 when none waits. */
static long tend_calls(bool stopping)
{
    pthread_mutex_lock(&cl.mu);
    prov_call *in = cl.incoming;
    cl.incoming = NULL;
    pthread_mutex_unlock(&cl.mu);
    while (in) {
        prov_call *c = in;
        in = in->next;
        c->next = cl.calls;
        cl.calls = c;
        if (!attempt_start(c)) {
            snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
            finish(c);
        }
    }
    uint64_t now = clock_mono_ns();
    long timeout_ms = -1;
    for (prov_call *c = cl.calls, *next; c; c = next) {
        next = c->next;
        if (stopping) atomic_store(&c->cancel, true);
        if (atomic_load(&c->cancel) && (c->retry_at || !c->easy)) {
            finish(c);
        } else if (c->retry_at && c->retry_at <= now) {
            c->retry_at = 0;
            if (!attempt_start(c)) {
                snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
                finish(c);
            }
        } else if (c->retry_at) {
            long ms = (long)((c->retry_at - now) / 1000000u) + 1;
            if (timeout_ms < 0 || ms < timeout_ms) timeout_ms = ms;
        } else if (atomic_load(&c->cancel)) {
            finish(c); /* removes the easy handle: the transfer stops now */
        }
    }
    return timeout_ms;
}

static void *loop_main(void *arg)
{
    (void)arg;
    uint64_t tend_at = 0; /* monotonic ns of the next due retry, 0 when none */
    cl.tend = true;
    struct epoll_event evs[64];
    int running;
    for (;;) {
        pthread_mutex_lock(&cl.mu);
        bool stopping = cl.stopping;
        pthread_mutex_unlock(&cl.mu);
        uint64_t now = clock_mono_ns();
        if (cl.tend || stopping || (tend_at && tend_at <= now)) {
            cl.tend = false;
            long ms = tend_calls(stopping);
            tend_at = ms >= 0 ? clock_mono_ns() + (uint64_t)ms * 1000000u : 0;
            now = clock_mono_ns();
        }
        if (stopping && !cl.calls) break;
        long wait = 1000; /* only a bound: the loop has nothing to do on its own */
        if (tend_at) {
            long t = tend_at > now ? (long)((tend_at - now) / 1000000u) + 1 : 0;
            if (t < wait) wait = t;
        }
        if (cl.curl_timeout >= 0) {
            long t =
                cl.curl_timer_at > now ? (long)((cl.curl_timer_at - now + 999999u) / 1000000u) : 0;
            if (t < wait) wait = t;
        }
        int n = epoll_wait(cl.epfd, evs, (int)(sizeof evs / sizeof *evs), (int)wait);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == cl.evfd) {
                uint64_t v;
                if (read(cl.evfd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_error("provider", "eventfd: %s", strerror(errno));
                cl.tend = true;
                continue;
            }
            int mask = (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                       (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                       (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(cl.multi, evs[i].data.fd, mask, &running);
        }
        if (cl.curl_timeout >= 0 && cl.curl_timer_at <= clock_mono_ns()) {
            cl.curl_timeout = -1;
            curl_multi_socket_action(cl.multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        read_done();
    }
    return NULL;
}

/* The loop (and libcurl with its TLS library) starts with the first provider request, so a
 * server that has not replied yet stays small. */
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static void close_loop_fds(void)
{
    if (cl.epfd >= 0) close(cl.epfd);
    if (cl.evfd >= 0) close(cl.evfd);
    cl.epfd = cl.evfd = -1;
}

static void start_loop(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(cl.multi = curl_multi_init()))
        return;
    cl.epfd = epoll_create1(EPOLL_CLOEXEC);
    cl.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = cl.evfd};
    if (cl.epfd < 0 || cl.evfd < 0 || epoll_ctl(cl.epfd, EPOLL_CTL_ADD, cl.evfd, &ev) < 0 ||
        curl_multi_setopt(cl.multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(cl.multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        /* Keep up to this many idle connections to providers for the next requests (libcurl's
         * default shrinks the pool with the transfers in flight, so a burst of replies would
         * open, and pay TCP and TLS handshakes for, most of its connections again). */
        curl_multi_setopt(cl.multi, CURLMOPT_MAXCONNECTS, 1024L) != CURLM_OK ||
        pthread_create(&cl.thread, NULL, loop_main, NULL) != 0) {
        log_error("provider", "cannot start the provider loop: %s", strerror(errno));
        close_loop_fds();
        curl_multi_cleanup(cl.multi);
        cl.multi = NULL;
        return;
    }
    cl.running = true;
}

static void start_loop_never(void) {}

void prov_client_stop(void)
{
    pthread_once(&start_once, start_loop_never); /* a request after this does not start it */
    if (!cl.running) return;
    pthread_mutex_lock(&cl.mu);
    cl.stopping = true;
    pthread_mutex_unlock(&cl.mu);
    wake_loop();
    pthread_join(cl.thread, NULL);
    curl_multi_cleanup(cl.multi);
    close_loop_fds();
    curl_global_cleanup();
    cl.running = false;
}

prov_call *prov_call_start(const provider_cfg *cfg, const char *system, json_t *messages,
                           json_t *tools, const prov_sink *sink, prov_done done, void *ud)
{
    pthread_once(&start_once, start_loop);
    if (!cl.running) return NULL;
    prov_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = *cfg;
    c->d = dialect_of(cfg->def);
    json_t *body = c->d->build(cfg, system, messages, tools);
    c->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Accept: text/event-stream");
    c->hdrs = c->d->headers(cfg, c->hdrs);
    if (!c->body || !c->hdrs) {
        call_free(c);
        return NULL;
    }
    buf_init(&c->errbody, ERR_BODY_CAP);
    c->user = *sink;
    c->mine = (prov_sink){.ud = c,
                          .text = w_text,
                          .thinking = w_thinking,
                          .signature = w_signature,
                          .tool_call = w_tool_call};
    c->done = done;
    c->ud = ud;
    pthread_mutex_lock(&cl.mu);
    c->next = cl.incoming;
    cl.incoming = c;
    pthread_mutex_unlock(&cl.mu);
    wake_loop();
    return c;
}

void prov_call_cancel(prov_call *c)
{
    atomic_store(&c->cancel, true);
    wake_loop();
}
