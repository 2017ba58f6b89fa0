/* Provider requests for every session on one libcurl multi handle, driven by a core/loop (the
 * agent's): a thousand replies in flight are a thousand small structs and easy handles, not
 * threads. The loop watches the sockets libcurl names and hands it only the ready ones
 * (curl_multi_socket_action), so the cost of a token does not grow with the number of replies
 * in flight, as it would with curl_multi_perform and curl_multi_poll, which visit every one.
 *
 * A call is attempted, and retried on 429, 5xx and connection errors (exponential backoff with
 * jitter, or the provider's Retry-After) as long as nothing has reached the sink yet. A stall
 * longer than api_timeout ends the attempt (CURLOPT_LOW_SPEED_*). Everything here happens on
 * the loop's thread: the sink and done callbacks run there, so the agent that owns the loop
 * needs no locks and no hand-over for a token. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/curl_loop.h"
#include "core/jtext.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "providers/provider.h"

#define RETRY_BASE_MS 500
#define RETRY_MAX_MS  30000
/* libcurl's receive buffer per transfer (its default is 16 KiB): a provider's stream comes in
 * small events, and a reply held open for a minute keeps it all that time. */
#define RECV_BUFFER 4096L

struct prov_call {
    prov_client *cl;
    /* what the attempts need of the caller's provider_cfg (not a copy of its 2.5 KB: the key
     * went into hdrs) */
    const provider_def *def;
    char *url, *base, *model;
    long timeout_s, max_retries;
    const prov_dialect_ops *d;
    char *body; /* kept for a retry until output starts and libcurl has sent it all */
    size_t body_len;
    struct curl_slist *hdrs;
    CURL *easy;
    prov_sink user; /* the caller's sink */
    prov_sink mine; /* forwards to user, noting that output started */
    prov_done done;
    void *ud;
    prov_parser *parser;
    sse_reader *sse;
    prov_result res;
    long status; /* the attempt's HTTP status, once its body comes (on_body) */
    bool output_started;
    bool stream_error; /* the parser rejected the stream */
    bool cancel;
    int attempt;
    loop_timer *timer; /* the next attempt (a retry), or the cancel taking effect */
    buf errbody;
    char errbuf[CURL_ERROR_SIZE];
    struct prov_call *prev, *next;
};

/* Easy handles kept for the next attempts: a reset handle keeps its allocations (its receive
 * buffer, its state), so a reply does not pay libcurl's set-up and tear-down of a new one. */
#define IDLE_EASY_MAX 32

struct prov_client {
    loop *l;
    curl_loop *curl;
    prov_call *calls; /* started, waiting to retry, or being cancelled */
    CURL *idle[IDLE_EASY_MAX];
    int nidle;
};

/* An easy handle with libcurl's defaults: a kept one, reset, or a new one. NULL when out of
 * memory. */
static CURL *easy_get(prov_client *cl)
{
    if (!cl->nidle) return curl_easy_init();
    CURL *e = cl->idle[--cl->nidle];
    curl_easy_reset(e);
    return e;
}

/* Keeps e (removed from the multi handle) for a later attempt, or cleans it up. */
static void easy_put(prov_client *cl, CURL *e)
{
    if (cl->nidle < IDLE_EASY_MAX)
        cl->idle[cl->nidle++] = e;
    else
        curl_easy_cleanup(e);
}

/* ---- the sink wrapper ---- */

/* Output started: the call is not retried any more (fail_or_retry), so its body is freed once
 * libcurl has sent all of it (it reads CURLOPT_POSTFIELDS in place). */
static void output_starts(prov_call *c)
{
    c->output_started = true;
    if (!c->body || !c->easy) return;
    curl_off_t sent = -1;
    if (curl_easy_getinfo(c->easy, CURLINFO_SIZE_UPLOAD_T, &sent) != CURLE_OK ||
        sent != (curl_off_t)c->body_len)
        return;
    free(c->body);
    c->body = NULL;
}

static void w_text(void *ud, const char *s, size_t n)
{
    prov_call *c = ud;
    if (!c->output_started) output_starts(c);
    c->user.text(c->user.ud, s, n);
}
static void w_thinking(void *ud, const char *s, size_t n)
{
    prov_call *c = ud;
    if (!c->output_started) output_starts(c);
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
    if (!c->output_started) output_starts(c);
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
    if (c->cancel) return 0; /* aborts the transfer */
    long status = c->status; /* the response's, read once (no redirect is followed) */
    if (!status) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    c->status = status;
    if (status < 200 || status > 299) {
        /* Only the start is kept, to explain the error; its status is reported in any case, so
         * a piece lost to a lack of memory only shortens the explanation. */
        size_t room = BUF_CAP_PROVIDER_ERROR - c->errbody.len;
        buf_ignore(buf_append(&c->errbody, ptr, len < room ? len : room));
        return len;
    }
    if (c->user.burst) c->user.burst(c->user.ud, true);
    gd_err e = sse_reader_feed(c->sse, ptr, len);
    if (c->user.burst) c->user.burst(c->user.ud, false);
    if (e) {
        if (e == GD_ETOOBIG)
            snprintf(c->res.error, sizeof c->res.error,
                     "the provider sent a stream line over %u bytes, an event over %u bytes or an "
                     "event name over %u bytes",
                     BUF_CAP_SSE_LINE, BUF_CAP_SSE_LINE * BUF_CAP_SSE_DATA_LINES,
                     BUF_CAP_SSE_EVENT_NAME);
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
        curl_loop_remove(c->cl->curl, c->easy);
        easy_put(c->cl, c->easy);
        c->easy = NULL;
    }
    if (c->parser) c->d->parser_free(c->parser);
    c->parser = NULL;
    sse_reader_free(c->sse);
    c->sse = NULL;
}

static void on_transfer_done(prov_call *c, CURLcode code);

static void on_transfer_end(CURL *easy, CURLcode code, void *ud)
{
    (void)easy;
    on_transfer_done(ud, code);
}

static bool attempt_start(prov_call *c)
{
    c->parser = c->d->parser_new(&c->mine);
    c->sse = sse_reader_new(BUF_CAP_SSE_LINE, on_event, c);
    c->easy = easy_get(c->cl);
    if (!c->parser || !c->sse || !c->easy) {
        snprintf(c->res.error, sizeof c->res.error, "out of memory");
        return false;
    }
    buf_reset(&c->errbody);
    memset(&c->res, 0, sizeof c->res);
    c->status = 0;
    c->stream_error = false;
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, c->timeout_s);
    /* A stall: less than 1 byte/s for api_timeout seconds. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->timeout_s);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    c->errbuf[0] = '\0';
    c->attempt++;
    if (curl_loop_add(c->cl->curl, e, on_transfer_end, c) != GD_OK) {
        snprintf(c->res.error, sizeof c->res.error, "cannot start the provider request");
        return false;
    }
    log_debug("provider", "%s attempt %d: POST %s", c->def->name, c->attempt, c->url);
    return true;
}

static void call_free(prov_call *c)
{
    attempt_cleanup(c);
    if (c->timer) loop_timer_cancel(c->timer);
    curl_slist_free_all(c->hdrs);
    free(c->body);
    free(c->url);
    free(c->base);
    free(c->model);
    buf_free(&c->errbody);
    free(c);
}

static void unlink_call(prov_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->cl->calls == c)
        c->cl->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Removes c from the client's list, reports, frees. */
static void finish(prov_call *c)
{
    unlink_call(c);
    attempt_cleanup(c);
    if (c->cancel) {
        snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "cancelled");
        c->res.error[0] = '\0';
    }
    metrics_provider_call(c->def->name, c->model, c->res.input_tokens, c->res.output_tokens,
                          !strcmp(c->res.stop_reason, "error"));
    c->done(c->ud, &c->res);
    call_free(c);
}

static void retry_now(void *ud)
{
    prov_call *c = ud;
    c->timer = NULL;
    if (c->cancel || !attempt_start(c)) {
        if (!c->cancel) snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
        finish(c);
    }
}

/* The first attempt could not start (prov_call_start): reported on the next iteration. */
static void fail_now(void *ud)
{
    prov_call *c = ud;
    c->timer = NULL;
    if (!c->cancel) snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
    finish(c);
}

static void fail_or_retry(prov_call *c)
{
    if (c->res.retryable && !c->output_started && c->attempt <= c->max_retries && !c->cancel) {
        long wait = c->res.retry_after_ms;
        if (!wait) {
            long base = RETRY_BASE_MS << (c->attempt - 1 < 6 ? c->attempt - 1 : 6);
            wait = base / 2 + (long)randombytes_uniform((uint32_t)(base / 2 + 1));
        }
        if (wait > RETRY_MAX_MS) wait = RETRY_MAX_MS;
        log_info("provider", "%s: %s; retrying in %ld ms (attempt %d of %ld)", c->def->name,
                 c->res.error, wait, c->attempt + 1, c->max_retries + 1);
        attempt_cleanup(c);
        metrics_provider_retry(c->def->name, c->model);
        c->timer = loop_timer_add(c->cl->l, (uint64_t)wait, retry_now, c);
        if (c->timer) return;
        snprintf(c->res.error, sizeof c->res.error, "out of memory scheduling a retry");
    }
    snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
    finish(c);
}

static void on_transfer_done(prov_call *c, CURLcode code)
{
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    c->res.http_status = status;
    if (c->cancel) {
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
                     c->base, why);
        c->res.retryable = true;
        fail_or_retry(c);
        return;
    }
    if (status < 200 || status > 299) {
        c->d->error_body(c->errbody.data ? c->errbody.data : "", c->errbody.len, &c->res);
        char msg[sizeof c->res.error];
        snprintf(msg, sizeof msg, "%s", c->res.error);
        snprintf(c->res.error, sizeof c->res.error, "%s returned HTTP %ld: %s", c->def->name,
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

prov_client *prov_client_new(loop *l, char *err, size_t errlen)
{
    prov_client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        snprintf(err, errlen, "out of memory starting the provider client");
        return NULL;
    }
    char why[200];
    if (!(cl->curl = curl_loop_new(l, "provider", why, sizeof why))) {
        free(cl);
        snprintf(err, errlen, "the provider client is unavailable: %s", why);
        return NULL;
    }
    cl->l = l;
    return cl;
}

void prov_client_free(prov_client *cl)
{
    if (!cl) return;
    while (cl->calls) {
        prov_call *c = cl->calls;
        unlink_call(c);
        call_free(c);
    }
    while (cl->nidle)
        curl_easy_cleanup(cl->idle[--cl->nidle]);
    curl_loop_free(cl->curl);
    free(cl);
}

void prov_tools_text_clear(prov_tools_text *tt)
{
    json_decref(tt->tools);
    free(tt->text);
    *tt = (prov_tools_text){0};
}

char *prov_body_text(const prov_dialect_ops *d, const provider_cfg *cfg, const char *system,
                     json_t *messages, json_t *tools, prov_tools_text *tt)
{
    prov_tools_text mine = {0};
    if (!tt) tt = &mine;
    if (tools && (tt->d != d || tt->tools != tools)) {
        prov_tools_text_clear(tt);
        json_t *t = d->build_tools(tools);
        if (t) {
            tt->text = jtext(t, &tt->len);
            json_decref(t);
            if (!tt->text) return NULL;
        }
        tt->d = d;
        tt->tools = json_incref(tools);
    }
    json_t *body = d->build(cfg, system, messages, NULL);
    buf b;
    buf_init(&b, (size_t)-1);
    gd_err e = body ? buf_reserve(&b, 4096 + (tt->text ? tt->len : 0)) : GD_ENOMEM;
    if (!e) e = jtext_append(&b, body);
    json_decref(body);
    if (!e && tools && tt->text && b.len >= 2) {
        bool empty = b.len == 2; /* "{}": no comma before the tools */
        b.len--;                 /* the closing brace: the tools go before it */
        e = buf_puts(&b, empty ? "\"tools\":" : ",\"tools\":");
        if (!e) e = buf_append(&b, tt->text, tt->len);
        if (!e) e = buf_append(&b, "}", 1);
    }
    size_t n = b.len;
    char *text = e ? NULL : buf_detach(&b);
    buf_free(&b);
    char *fit = text ? realloc(text, n + 1) : NULL; /* kept until sent: no slack */
    if (fit) text = fit;
    prov_tools_text_clear(&mine);
    return text;
}

prov_call *prov_call_start(prov_client *cl, const provider_cfg *cfg, const char *system,
                           json_t *messages, json_t *tools, prov_tools_text *tt,
                           const prov_sink *sink, prov_done done, void *ud)
{
    prov_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cl = cl;
    c->def = cfg->def;
    c->timeout_s = cfg->timeout_s;
    c->max_retries = cfg->max_retries;
    c->d = dialect_of(cfg->def);
    char url[sizeof cfg->base + sizeof cfg->path + sizeof cfg->model + 64];
    c->d->url(cfg, url, sizeof url);
    c->url = strdup(url);
    c->base = strdup(cfg->base);
    c->model = strdup(cfg->model);
    c->body = prov_body_text(c->d, cfg, system, messages, tools, tt);
    c->body_len = c->body ? strlen(c->body) : 0;
    c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Accept: text/event-stream");
    c->hdrs = c->d->headers(cfg, c->hdrs);
    char tp[TRACESTATE_MAX + 16]; /* the provider span's context (trace.h), when traced */
    if (c->hdrs && trace_header_line(tp)) c->hdrs = curl_slist_append(c->hdrs, tp);
    if (c->hdrs && trace_state_line(tp)) c->hdrs = curl_slist_append(c->hdrs, tp);
    buf_init(&c->errbody, BUF_CAP_PROVIDER_ERROR);
    c->user = *sink;
    c->mine = (prov_sink){.ud = c,
                          .text = w_text,
                          .thinking = w_thinking,
                          .signature = w_signature,
                          .tool_call = w_tool_call};
    c->done = done;
    c->ud = ud;
    if (!c->body || !c->hdrs || !c->url || !c->base || !c->model) {
        call_free(c);
        return NULL;
    }
    /* The first attempt starts now: libcurl only notes the transfer here (its timer runs it on
     * the next iteration), so done never runs inside this call. One that cannot start is
     * reported on the next iteration, for the same reason. */
    if (!attempt_start(c) && !(c->timer = loop_timer_add(cl->l, 0, fail_now, c))) {
        call_free(c);
        return NULL;
    }
    c->next = cl->calls;
    if (cl->calls) cl->calls->prev = c;
    cl->calls = c;
    return c;
}

static void cancel_now(void *ud)
{
    prov_call *c = ud;
    c->timer = NULL;
    finish(c); /* removes the easy handle: the transfer stops now */
}

void prov_call_cancel(prov_call *c)
{
    if (c->cancel) return;
    c->cancel = true;
    /* Ends on the next iteration (not inside this call, which may come from a sink callback
     * running inside libcurl): a pending retry or first attempt is replaced. */
    if (c->timer) loop_timer_cancel(c->timer);
    c->timer = loop_timer_add(c->cl->l, 0, cancel_now, c);
    /* Out of memory: the write callback sees the flag and aborts the transfer. */
}
