/* The streamable HTTP transport (MCP 2025-03-26 and later): every message is a POST to the uri,
 * answered by JSON, by an event stream, or by 202 for a notification or a response. After
 * initialization a GET stream carries what the server starts (405: it has none). A stream that
 * breaks before it brought the responses it owes is resumed with a GET carrying Last-Event-ID,
 * after the server's `retry:` time. 404 on a session: the session is over (closed with
 * GD_ENOTFOUND, the client initializes again). close() sends DELETE for the session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jtext.h"
#include "core/log.h"
#include "extensions/mcp/http_common.h"

#define RETRY_DEFAULT_MS 1000  /* before reconnecting a stream that named no retry: time */
#define RETRY_MAX_MS     30000 /* the longest wait between two attempts */
#define RETRY_MIN_MS     500   /* the shortest, whatever the server's retry: says (0 would spin) */
#define GET_FAILURES_MAX 3     /* attempts in a row that bring nothing before a stream is dropped */
#define AUTH_TRIES_MAX   3     /* authorizations for one message before its refusal stands */

typedef struct http_t http_t;

/* A GET waiting for its time: the standalone stream (want NULL) or a resumption. */
typedef struct resume {
    http_t *t;
    json_t *want;
    char last_id[256];
    int failures;
    loop_timer *timer;
    struct resume *prev, *next;
} resume;

/* A message the server refused for its authorization (401, 403 insufficient_scope), waiting
 * for a new token from a worker (oauth.h), then sent again. One renewal of a transport runs on a
 * worker at a time (running): the others wait on the loop for its outcome, so a server that
 * refuses many requests at once holds one thread, not one each (a sign-in may wait minutes). t
 * is NULL once the transport closed: the worker's answer then only frees it. */
typedef struct renewal {
    http_t *t;
    loop *l;
    mcp_oauth *o;
    char *body;
    json_t *want;
    int tries;
    long status;
    unsigned had;
    char www_auth[1024];
    gd_err e;
    char err[512];
    bool running; /* its worker job is out */
    struct renewal *prev, *next;
} renewal;

struct http_t {
    mcp_http_base b;
    renewal *renewals;
    char *session;
    char version[32];
    long retry_ms;      /* the last retry: time a stream gave */
    bool get_started;   /* the standalone GET was opened once */
    resume *resumes;    /* waiting GETs */
    loop_timer *finish; /* frees t after the DELETE */
};

static void start_get(http_t *t, json_t *want, const char *last_id, int failures);

static void resume_free(resume *s)
{
    http_t *t = s->t;
    if (s->prev)
        s->prev->next = s->next;
    else if (t->resumes == s)
        t->resumes = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->timer) loop_timer_cancel(s->timer);
    json_decref(s->want);
    free(s);
}

static void resume_now(void *ud)
{
    resume *s = ud;
    s->timer = NULL;
    http_t *t = s->t;
    json_t *want = json_incref(s->want);
    char last_id[sizeof s->last_id];
    snprintf(last_id, sizeof last_id, "%s", s->last_id);
    int failures = s->failures;
    resume_free(s);
    if (!t->b.failed) start_get(t, want, last_id, failures);
    json_decref(want);
}

/* A GET after ms: want (borrowed) the responses it should bring, NULL for the standalone
 * stream. */
static void schedule_get(http_t *t, json_t *want, const char *last_id, int failures, long ms)
{
    resume *s = calloc(1, sizeof *s);
    if (!s) {
        log_error("mcp", "%s: out of memory reconnecting a stream", t->b.uri);
        return;
    }
    s->t = t;
    s->want = json_incref(want);
    s->failures = failures;
    snprintf(s->last_id, sizeof s->last_id, "%s", last_id ? last_id : "");
    if (!(s->timer = loop_timer_add(t->b.l, (uint64_t)ms, resume_now, s))) {
        log_error("mcp", "%s: out of memory reconnecting a stream", t->b.uri);
        json_decref(s->want);
        free(s);
        return;
    }
    s->next = t->resumes;
    if (t->resumes) t->resumes->prev = s;
    t->resumes = s;
}

/* The headers every request of the session carries besides the config's; lines is filled. */
static void session_headers(http_t *t, const char **lines, size_t *n, char *ver, size_t verlen,
                            char *sid, size_t sidlen)
{
    if (t->version[0]) {
        snprintf(ver, verlen, "MCP-Protocol-Version: %s", t->version);
        lines[(*n)++] = ver;
    }
    if (t->session) {
        snprintf(sid, sidlen, "Mcp-Session-Id: %s", t->session);
        lines[(*n)++] = sid;
    }
    lines[*n] = NULL;
}

/* The session is over when the server answers 404 to a request that named it. */
static bool session_gone(http_t *t, mcp_req *r)
{
    if (r->status != 404 || !t->session) return false;
    mcp_http_fail(&t->b, GD_ENOTFOUND, "ended the MCP session (HTTP 404)");
    return true;
}

static long retry_of(http_t *t, mcp_req *r)
{
    long ms = r->rd ? sse_reader_retry_ms(r->rd) : -1;
    if (ms >= 0) t->retry_ms = ms;
    return t->retry_ms;
}

static void on_get_done(mcp_req *r, CURLcode code)
{
    http_t *t = r->ud;
    char why[512];
    mcp_req_error(r, code, why, sizeof why);
    int failures = r->kind; /* attempts in a row that brought nothing */
    bool main = !r->want;
    if (t->b.failed || session_gone(t, r)) {
        mcp_req_free(r);
        return;
    }
    if (r->stream_err) {
        mcp_http_fail(&t->b, r->stream_err == GD_ENOMEM ? GD_ENOMEM : GD_EPROTO, "%s", why);
        mcp_req_free(r);
        return;
    }
    if (main && r->status == 405) { /* the server offers no stream of its own */
        mcp_req_free(r);
        return;
    }
    bool ok = r->sse && r->status >= 200 && r->status <= 299;
    /* Progress: for the session's own stream, any event; for a stream resumed for answers, one
     * of those answers (events without them, such as pings, would resume it forever). */
    if (ok && (main ? r->got_event : json_array_size(r->want) < r->wanted))
        failures = 0;
    else
        failures++;
    long wait = retry_of(t, r);
    if (wait < RETRY_MIN_MS) wait = RETRY_MIN_MS;
    if (!ok) wait = wait << (failures < 5 ? failures : 5);
    if (wait > RETRY_MAX_MS) wait = RETRY_MAX_MS;
    if (!main && !json_array_size(r->want)) {
        mcp_req_free(r); /* it brought what it owed */
        return;
    }
    if (failures >= GET_FAILURES_MAX) {
        if (main)
            log_info("mcp", "%s: the server's event stream is dropped: %s", t->b.uri, why);
        else
            mcp_http_abandon(&t->b, r, why);
        mcp_req_free(r);
        return;
    }
    const char *last = r->rd ? sse_reader_last_id(r->rd) : "";
    char last_id[256];
    snprintf(last_id, sizeof last_id, "%s", last);
    json_t *want = json_incref(r->want);
    mcp_req_free(r);
    schedule_get(t, want, last_id[0] ? last_id : NULL, failures, wait);
    json_decref(want);
}

/* failures: attempts in a row that brought nothing (kept in the request's kind). */
static void start_get(http_t *t, json_t *want, const char *last_id, int failures)
{
    const char *lines[6] = {"Accept: text/event-stream"};
    size_t n = 1;
    char idl[300];
    if (last_id && *last_id) {
        snprintf(idl, sizeof idl, "Last-Event-ID: %s", last_id);
        lines[n++] = idl;
    }
    char ver[64], sid[300];
    session_headers(t, lines, &n, ver, sizeof ver, sid, sizeof sid);
    mcp_req *r = mcp_req_start(&t->b, "GET", t->b.uri, lines, NULL, 0, on_get_done, NULL, t);
    if (!r) {
        if (want) {
            mcp_req tmp = {.want = want};
            mcp_http_abandon(&t->b, &tmp, "out of memory resuming the MCP server's stream");
        }
        return;
    }
    r->kind = failures;
    r->want = want ? json_incref(want) : NULL;
    r->wanted = json_array_size(want);
}

static void post(http_t *t, char *body, json_t *want, int tries);

static void renewal_unlink(renewal *rn)
{
    http_t *t = rn->t;
    if (rn->prev)
        rn->prev->next = rn->next;
    else if (t->renewals == rn)
        t->renewals = rn->next;
    if (rn->next) rn->next->prev = rn->prev;
    rn->prev = rn->next = NULL;
    rn->t = NULL;
}

static void renewal_free(renewal *rn)
{
    mcp_oauth_unref(rn->o);
    free(rn->body);
    json_decref(rn->want);
    free(rn);
}

/* Sends rn's message again (the token renewed), or answers it with why; frees it. */
static void renewal_end(http_t *t, renewal *rn, const char *why)
{
    renewal_unlink(rn);
    if (t->b.cb.held) t->b.cb.held(t->b.cb.ud, -1);
    if (why) {
        mcp_req tmp = {.want = rn->want};
        mcp_http_abandon(&t->b, &tmp, why);
    } else {
        post(t, rn->body, rn->want, rn->tries);
        rn->body = NULL;
        rn->want = NULL;
    }
    renewal_free(rn);
}

/* On the loop: the token is renewed (send the message again) or cannot be; the messages that
 * waited for this renewal go again too, or are answered with the same reason. */
static void renewed(void *ud)
{
    renewal *rn = ud;
    http_t *t = rn->t;
    if (!t || t->b.failed) {
        if (t) renewal_unlink(rn);
        renewal_free(rn);
        return;
    }
    char why[600] = "";
    if (rn->e) {
        log_warn("mcp", "%s: not authorized: %s", t->b.uri, rn->err);
        snprintf(why, sizeof why, "the MCP server asks for authorization: %s", rn->err);
    }
    renewal_end(t, rn, why[0] ? why : NULL);
    while (t->renewals && !t->b.failed) /* none runs now: they waited for this one */
        renewal_end(t, t->renewals, why[0] ? why : NULL);
}

static void renew_work(void *ud)
{
    renewal *rn = ud;
    rn->e = mcp_oauth_renew(rn->o, rn->status, rn->www_auth, rn->had, rn->err, sizeof rn->err);
    if (loop_post(rn->l, renewed, rn) != GD_OK)
        log_error("mcp", "out of memory handing back an authorization");
}

/* r was refused for its authorization and OAuth may mend that: a worker gets a new token and
 * the message goes again (its body and the ids it waits for move to the renewal). */
static bool renew(http_t *t, mcp_req *r)
{
    char error[64] = "";
    if (!t->b.oauth || !r->body || r->kind >= AUTH_TRIES_MAX ||
        !(r->status == 401 ||
          (r->status == 403 &&
           mcp_oauth_challenge_param(r->www_auth, "error", error, sizeof error) &&
           !strcmp(error, "insufficient_scope"))))
        return false;
    renewal *rn = calloc(1, sizeof *rn);
    if (!rn) return false;
    rn->t = t;
    rn->l = t->b.l;
    rn->o = mcp_oauth_ref(t->b.oauth);
    rn->tries = r->kind + 1;
    rn->status = r->status;
    rn->had = r->token_gen;
    snprintf(rn->www_auth, sizeof rn->www_auth, "%s", r->www_auth);
    bool one_runs = false;
    for (renewal *o = t->renewals; o; o = o->next)
        one_runs |= o->running;
    if (!one_runs && pool_submit(t->b.workers, renew_work, rn) != GD_OK) {
        renewal_free(rn);
        return false;
    }
    rn->running = !one_runs; /* else it waits for the running one's outcome */
    rn->body = r->body;      /* the transfer is over: libcurl no longer reads it */
    r->body = NULL;
    rn->want = r->want;
    r->want = NULL;
    rn->next = t->renewals;
    if (t->renewals) t->renewals->prev = rn;
    t->renewals = rn;
    if (t->b.cb.held) t->b.cb.held(t->b.cb.ud, +1);
    return true;
}

static void on_post_done(mcp_req *r, CURLcode code)
{
    http_t *t = r->ud;
    char why[512];
    mcp_req_error(r, code, why, sizeof why);
    if (t->b.failed || session_gone(t, r)) {
        mcp_req_free(r);
        return;
    }
    if (code == CURLE_OK && !r->stream_err && renew(t, r)) {
        mcp_req_free(r);
        return;
    }
    if (r->session_bad && !t->session) {
        mcp_http_fail(&t->b, GD_EPROTO,
                      "sent an Mcp-Session-Id longer than 255 bytes or with characters other "
                      "than visible ASCII (MCP allows 0x21 to 0x7E)");
        mcp_req_free(r);
        return;
    }
    if (r->session[0] && !t->session && !(t->session = strdup(r->session))) {
        mcp_http_fail(&t->b, GD_ENOMEM, "out of memory keeping the MCP session");
        mcp_req_free(r);
        return;
    }
    if (r->stream_err) {
        mcp_http_fail(&t->b, r->stream_err == GD_ENOMEM ? GD_ENOMEM : GD_EPROTO, "%s", why);
    } else if (code != CURLE_OK && !r->status) {
        mcp_http_fail(&t->b, GD_EIO, "%s", why);
    } else if (r->sse && r->status >= 200 && r->status <= 299) {
        /* The stream ended, broken or not: what it still owes comes on a resumed stream. */
        const char *last = sse_reader_last_id(r->rd);
        if (json_array_size(r->want) && *last)
            schedule_get(t, r->want, last, 0, retry_of(t, r));
        else if (json_array_size(r->want))
            mcp_http_abandon(&t->b, r,
                             "the MCP server closed its stream before answering the request");
    } else if (code != CURLE_OK) {
        mcp_http_abandon(&t->b, r, why);
    } else if (r->status >= 200 && r->status <= 299) {
        if (r->raw.len && strcmp(r->ctype, "application/json")) {
            mcp_http_fail(&t->b, GD_EPROTO, "the MCP server answered with %s, not JSON",
                          r->ctype[0] ? r->ctype : "no content type");
        } else if (r->raw.len && mcp_http_parse(&t->b, r, r->raw.data, r->raw.len)) {
            mcp_http_fail(&t->b, GD_EPROTO, "%s", r->why);
        } else {
            mcp_http_abandon(&t->b, r, "the MCP server accepted the request without answering it");
        }
    } else if (json_array_size(r->want)) {
        mcp_http_abandon(&t->b, r, why);
    } else {
        log_warn("mcp", "%s: a message was refused: %s", t->b.uri, why);
    }
    mcp_req_free(r);
}

/* POSTs body (freed) with want (stolen: the ids of the responses it should bring, or NULL);
 * tries: how many times it was authorized again. */
static void post(http_t *t, char *body, json_t *want, int tries)
{
    if (mcp_http_too_many(&t->b)) {
        free(body);
        json_decref(want);
        return;
    }
    const char *lines[6] = {"Content-Type: application/json",
                            "Accept: application/json, text/event-stream"};
    size_t n = 2;
    char ver[64], sid[300];
    session_headers(t, lines, &n, ver, sizeof ver, sid, sizeof sid);
    mcp_req *r =
        mcp_req_start(&t->b, "POST", t->b.uri, lines, body,
                      (t->b.timeout_s + MCP_HTTP_CONNECT_S) * 1000L, on_post_done, NULL, t);
    free(body);
    if (!r) {
        json_decref(want);
        mcp_http_fail(&t->b, GD_ENOMEM, "out of memory sending a message");
        return;
    }
    r->want = want;
    r->kind = tries;
}

static void http_send(mcp_transport *tr, json_t *msg)
{
    http_t *t = (http_t *)tr;
    if (t->b.failed) return;
    char *body = jtext(msg, NULL);
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *want = id && method ? json_pack("[O]", id) : NULL;
    if (!body || (id && method && !want)) {
        free(body);
        mcp_http_fail(&t->b, GD_ENOMEM, "out of memory sending a message");
        return;
    }
    post(t, body, want, 0);
    /* Initialization is over: open the stream of what the server starts. */
    if (method && !strcmp(method, "notifications/initialized") && !t->get_started) {
        t->get_started = true;
        start_get(t, NULL, NULL, 0);
    }
}

static void http_set_version(mcp_transport *tr, const char *version)
{
    http_t *t = (http_t *)tr;
    snprintf(t->version, sizeof t->version, "%s", version ? version : "");
}

static void http_free(http_t *t)
{
    if (t->finish) loop_timer_cancel(t->finish);
    mcp_http_base_free(&t->b);
    free(t->session);
    free(t);
}

static void finish_now(void *ud)
{
    http_t *t = ud;
    t->finish = NULL;
    http_free(t);
    mcp_linger(-1); /* the DELETE is over */
}

static void on_delete_done(mcp_req *r, CURLcode code)
{
    http_t *t = r->ud;
    mcp_req_free(r);
    /* Freed on the next iteration: libcurl's loop is still on the stack. */
    if (!(t->finish = loop_timer_add(t->b.l, 0, finish_now, t)))
        log_error("mcp", "%s: out of memory freeing a closed transport", t->b.uri);
}

static void teardown(mcp_http_base *b)
{
    http_t *t = (http_t *)b;
    b->closing = true;
    b->failed = true;
    while (t->resumes)
        resume_free(t->resumes);
    while (t->renewals) { /* a running one is freed when its worker answers */
        renewal *rn = t->renewals;
        bool running = rn->running;
        renewal_unlink(rn);
        if (!running) renewal_free(rn);
    }
    while (b->reqs)
        mcp_req_free(b->reqs);
    if (b->tick) loop_timer_cancel(b->tick);
    b->tick = NULL;
    if (t->session) {
        const char *lines[4];
        size_t n = 0;
        char ver[64], sid[300];
        session_headers(t, lines, &n, ver, sizeof ver, sid, sizeof sid);
        mcp_req *r = mcp_req_start(b, "DELETE", b->uri, lines, NULL, MCP_HTTP_DELETE_MS,
                                   on_delete_done, NULL, t);
        if (r) {
            mcp_linger(1); /* until finish_now */
            return;
        }
    }
    http_free(t);
}

static void http_close(mcp_transport *tr)
{
    mcp_http_base_close((mcp_http_base *)tr);
}

static const mcp_transport_ops http_ops = {
    .send = http_send,
    .set_protocol_version = http_set_version,
    .close = http_close,
};

mcp_transport *mcp_http_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                            char *err, size_t errlen)
{
    http_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->b.t.ops = &http_ops;
    t->b.teardown = teardown;
    t->retry_ms = RETRY_DEFAULT_MS;
    if (mcp_http_base_init(&t->b, cfg, host, cb, err, errlen)) {
        http_free(t);
        return NULL;
    }
    return &t->b.t;
}
