/* Provider requests for every session on goosed's own HTTP/1.1 client (h1client.h), driven by a
 * core/loop (the agent's): a thousand replies in flight are a thousand small structs and
 * connections, not threads, and a token costs one read and the parsing of its bytes.
 *
 * A call is attempted, and retried on 429, 5xx and connection errors (exponential backoff with
 * jitter, or the provider's Retry-After) as long as nothing has reached the sink yet. A stall
 * longer than api_timeout ends the attempt. Everything here happens on the loop's thread: the
 * sink and done callbacks run there, so the agent that owns the loop needs no locks and no
 * hand-over for a token. */
#include <ctype.h>
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
#include "core/jtext.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "providers/h1client.h"
#include "providers/provider.h"

#define RETRY_BASE_MS 500
#define RETRY_MAX_MS  30000

struct prov_call {
    prov_client *cl;
    /* what the attempts need of the caller's provider_cfg (not a copy of its 2.5 KB: the key
     * went into hdrs) */
    const provider_def *def;
    char *url, *base, *model;
    long timeout_s, max_retries;
    const prov_dialect_ops *d;
    char *body; /* kept for a retry until output starts and the client has sent it all */
    size_t body_len;
    char *hdrs; /* "Name: value\r\n" lines */
    size_t hdrs_len;
    size_t key_off, key_len; /* where the API key is in hdrs (key_len 0: none) */
    h1req *req;
    prov_sink user; /* the caller's sink */
    prov_sink mine; /* forwards to user, noting that output started */
    prov_done done;
    void *ud;
    prov_parser *parser;
    sse_reader *sse;
    prov_result res;
    long status; /* the attempt's HTTP status, once its head came */
    bool output_started;
    bool stream_error; /* the parser rejected the stream */
    bool events_seen;  /* the answer brought an event */
    bool errbody_full; /* an error answer's body past what is kept: not read further */
    bool cancel;
    int attempt;
    loop_timer *timer; /* the next attempt (a retry), or the cancel taking effect */
    buf errbody;
    struct prov_call *prev, *next;
};

struct prov_client {
    loop *l;
    h1client *h1;
    prov_call *calls; /* started, waiting to retry, or being cancelled */
};

/* ---- the sink wrapper ---- */

/* Output started: the call is not retried any more (fail_or_retry), so its body is freed once
 * the client has sent all of it (it writes it from here, not from a copy). */
static void output_starts(prov_call *c)
{
    c->output_started = true;
    if (!c->body || !c->req || !h1req_body_sent(c->req)) return;
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

/* ---- the HTTP client's callbacks ---- */

static gd_err on_event(void *ud, const char *event, const char *data)
{
    prov_call *c = ud;
    c->events_seen = true;
    h1req_progress(c->req); /* bytes alone are not: a trickle or comments never end */
    return c->d->parser_event(c->parser, event, data, &c->res);
}

static void on_status(void *ud, int status)
{
    prov_call *c = ud;
    c->status = status;
}

static int on_body(void *ud, const char *ptr, size_t len)
{
    prov_call *c = ud;
    if (c->cancel) return 1; /* aborts the transfer */
    long status = c->status;
    if (status < 200 || status > 299) {
        /* Only the start is kept, to explain the error; its status is reported in any case, so
         * a piece lost to a lack of memory only shortens the explanation. */
        size_t room = BUF_CAP_PROVIDER_ERROR - c->errbody.len;
        buf_ignore(buf_append(&c->errbody, ptr, len < room ? len : room));
        if (len < room) return 0;
        c->errbody_full = true; /* enough to explain it: an endless body is not read on */
        return 1;
    }
    if (!c->events_seen) { /* the start, in case it is an error in JSON, not a stream */
        size_t room = BUF_CAP_PROVIDER_ERROR - c->errbody.len;
        buf_ignore(buf_append(&c->errbody, ptr, len < room ? len : room));
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
        return 1;
    }
    return 0;
}

static void on_header(void *ud, const char *name, size_t nlen, const char *val, size_t vlen)
{
    prov_call *c = ud;
    if (nlen == 11 && !strncasecmp(name, "retry-after", 11) && vlen && vlen < 32) {
        char v[32];
        memcpy(v, val, vlen);
        v[vlen] = '\0';
        c->res.retry_after_ms = prov_retry_ms(v);
    }
}

/* ---- attempts ---- */

static void attempt_cleanup(prov_call *c)
{
    if (c->req) {
        h1req_cancel(c->req); /* a half-read answer: its connection is closed */
        c->req = NULL;
    }
    if (c->parser) c->d->parser_free(c->parser);
    c->parser = NULL;
    sse_reader_free(c->sse);
    c->sse = NULL;
}

static void on_request_done(void *ud, h1_status st, const char *msg);

static bool attempt_start(prov_call *c)
{
    c->parser = c->d->parser_new(&c->mine);
    c->sse = sse_reader_new(BUF_CAP_SSE_LINE, on_event, c);
    if (!c->parser || !c->sse) {
        snprintf(c->res.error, sizeof c->res.error, "out of memory");
        return false;
    }
    buf_reset(&c->errbody);
    memset(&c->res, 0, sizeof c->res);
    c->status = 0;
    c->stream_error = false;
    c->attempt++;
    c->events_seen = c->errbody_full = false;
    h1req_cb cb = {.ud = c,
                   .status = on_status,
                   .header = on_header,
                   .body = on_body,
                   .done = on_request_done,
                   .progress_by_caller = true};
    char err[300];
    c->req = h1_post(c->cl->h1, c->url, c->hdrs, c->hdrs_len, c->body, c->body_len, c->timeout_s,
                     &cb, err, sizeof err);
    if (!c->req) {
        snprintf(c->res.error, sizeof c->res.error, "cannot start the provider request: %s", err);
        return false;
    }
    log_debug("provider", "%s attempt %d: POST %s", c->def->name, c->attempt, c->url);
    return true;
}

/* src into dst with every copy of the call's API key as "***": a provider may quote the key it
 * refused ("Incorrect API key provided: sk-..."), and its message goes to the client and the
 * log. */
static void unkeyed(const prov_call *c, const char *src, char *dst, size_t dstlen)
{
    const char *key = c->hdrs + c->key_off;
    size_t o = 0;
    while (*src && o + 1 < dstlen) {
        if (c->key_len && !strncmp(src, key, c->key_len)) {
            for (const char *m = "***"; *m && o + 1 < dstlen; m++)
                dst[o++] = *m;
            src += c->key_len;
        } else {
            dst[o++] = *src++;
        }
    }
    dst[o] = '\0';
}

static void call_free(prov_call *c)
{
    attempt_cleanup(c);
    if (c->timer) loop_timer_cancel(c->timer);
    if (c->hdrs) sodium_memzero(c->hdrs, c->hdrs_len); /* the API key */
    free(c->hdrs);
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
/* res.error without the API key, wherever the provider quoted it (in an error answer, or an
 * error event of a stream): what reaches the log, the client and the session. */
static void error_unkeyed(prov_call *c)
{
    char own[sizeof c->res.error];
    unkeyed(c, c->res.error, own, sizeof own);
    memcpy(c->res.error, own, sizeof own);
}

static void finish(prov_call *c)
{
    error_unkeyed(c);
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

const char *prov_safe_name(const char *s, char out[PROV_SAFE_NAME_LEN])
{
    if (!s) s = "";
    size_t n = strlen(s);
    bool ok = n > 0 && n < PROV_SAFE_NAME_LEN && (isalpha((unsigned char)s[0]) || s[0] == '_');
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-';
    if (ok) return memcpy(out, s, n + 1);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    size_t o = 0;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_')) out[o++] = '_';
    for (size_t i = 0; i < n && o < 55; i++)
        out[o++] = isalnum((unsigned char)s[i]) || s[i] == '-' ? s[i] : '_';
    snprintf(out + o, PROV_SAFE_NAME_LEN - o, "_%08x", (unsigned)h);
    return out;
}

long prov_retry_ms(const char *secs)
{
    char *end;
    double s = strtod(secs, &end);
    while (*end == ' ' || *end == 's') /* Gemini's retryDelay: "12s" */
        end++;
    if (end == secs || *end || !(s > 0) || s != s) return 0; /* not a positive number */
    return s * 1000 >= RETRY_MAX_MS ? RETRY_MAX_MS : (long)(s * 1000);
}

static void fail_or_retry(prov_call *c)
{
    error_unkeyed(c);
    if (c->res.retryable && !c->output_started && c->attempt <= c->max_retries && !c->cancel) {
        long wait = c->res.retry_after_ms;
        if (!wait) {
            long base = RETRY_BASE_MS << (c->attempt - 1 < 6 ? c->attempt - 1 : 6);
            wait = base / 2 + (long)randombytes_uniform((uint32_t)(base / 2 + 1));
        }
        if (wait > RETRY_MAX_MS || wait < 0) wait = RETRY_MAX_MS;
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

/* Whether an error answer refuses the request as longer than the model's context window, in
 * the words of the providers that say so: OpenAI and its family ("context_length_exceeded",
 * "maximum context length"), Anthropic ("prompt is too long"), Google ("exceeds the maximum
 * number of tokens"), and others' "context window" / "context length". */
static bool says_too_long(long status, const char *body, size_t len)
{
    static const char *const marks[] = {
        "context_length_exceeded", "maximum context length",
        "prompt is too long",      "exceeds the maximum number of tokens",
        "context window",          "context length"};
    if (status != 400 && status != 413 && status != 422) return false;
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (memmem(body, len, marks[i], strlen(marks[i]))) return true;
    return false;
}

static void on_request_done(void *ud, h1_status st, const char *msg)
{
    prov_call *c = ud;
    c->req = NULL; /* freed by the client */
    long status = c->status;
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
    if (st != H1_OK && !c->errbody_full) {
        if (status >= 200 && status <= 299)
            snprintf(c->res.error, sizeof c->res.error,
                     "the provider's stream ended before it was complete (%s)", msg);
        else
            snprintf(c->res.error, sizeof c->res.error, "cannot reach the provider at %s: %s",
                     c->base, msg);
        c->res.retryable = true;
        fail_or_retry(c);
        return;
    }
    if (status < 200 || status > 299) {
        c->d->error_body(c->errbody.data ? c->errbody.data : "", c->errbody.len, &c->res);
        c->res.too_long =
            says_too_long(status, c->errbody.data ? c->errbody.data : "", c->errbody.len);
        char own[sizeof c->res.error];
        unkeyed(c, c->res.error, own, sizeof own);
        snprintf(c->res.error, sizeof c->res.error, "%s returned HTTP %ld: %s", c->def->name,
                 status, own);
        c->res.retryable = status == 429 || status >= 500;
        fail_or_retry(c);
        return;
    }
    gd_err e = sse_reader_end(c->sse);
    if (!e) e = c->d->parser_finish(c->parser, &c->res);
    if (e && !c->events_seen && c->errbody.len && c->errbody.data[0] == '{') {
        /* 200 with an error in JSON instead of a stream: the provider's own words */
        prov_result r = {0};
        c->d->error_body(c->errbody.data, c->errbody.len, &r);
        if (r.error[0]) {
            snprintf(c->res.error, sizeof c->res.error, "%s returned HTTP %ld with an error: %s",
                     c->def->name, status, r.error);
            snprintf(c->res.stop_reason, sizeof c->res.stop_reason, "error");
            c->res.retryable = false;
            fail_or_retry(c);
            return;
        }
    }
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
    if (!cl || !(cl->h1 = h1client_new(l))) {
        free(cl);
        snprintf(err, errlen, "out of memory starting the provider client");
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
    h1client_free(cl->h1);
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
    char *text = e ? NULL : buf_detach_fit(&b); /* kept until sent */
    buf_free(&b);
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
    buf h;
    buf_init(&h, BUF_CAP_MESSAGE);
    gd_err he = buf_puts(&h, "Content-Type: application/json\r\nAccept: text/event-stream\r\n");
    if (!he) he = c->d->headers(cfg, &h);
    char tp[TRACESTATE_MAX + 16]; /* the provider span's context (trace.h), when traced */
    if (!he && trace_header_line(tp)) he = buf_printf(&h, "%s\r\n", tp);
    if (!he && trace_state_line(tp)) he = buf_printf(&h, "%s\r\n", tp);
    c->hdrs_len = h.len;
    size_t klen = strlen(cfg->key);
    const char *at = !he && klen >= 8 ? memmem(h.data, h.len, cfg->key, klen) : NULL;
    if (at) {
        c->key_off = (size_t)(at - h.data);
        c->key_len = klen;
    }
    c->hdrs = he ? NULL : buf_detach(&h);
    if (h.data) sodium_memzero(h.data, h.len);
    buf_free(&h);
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
    /* The first attempt starts now: the client only starts connecting here, and never calls
     * done inside h1_post. One that cannot start is reported on the next iteration, for the
     * same reason. */
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
    finish(c); /* closes the connection: the transfer stops now */
}

void prov_call_cancel(prov_call *c)
{
    if (c->cancel) return;
    c->cancel = true;
    /* Ends on the next iteration (not inside this call, which may come from a sink callback
     * running inside the HTTP client): a pending retry or first attempt is replaced. */
    if (c->timer) loop_timer_cancel(c->timer);
    c->timer = loop_timer_add(c->cl->l, 0, cancel_now, c);
    /* Out of memory: the write callback sees the flag and aborts the transfer. */
}
