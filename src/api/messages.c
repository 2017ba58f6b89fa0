/* Messages: a user message starts a reply. The reply is watched on the session's bus, either
 * as Server-Sent Events (seed 000's event names) or, for a plain JSON request, by suspending
 * the request until the reply ends and answering the final assistant message (seed 001). */
#include <inttypes.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "api/api.h"
#include "auth/auth.h"
#include "core/buf.h"
#include "core/content.h"

typedef struct {
    http_req *r;
    app *a;
    bus *b;
    bus_sub *sub;
    buf out;
    size_t off;
    bool until_turn_end; /* a reply's stream ends with it; a watch does not */
    bool done;
    /* JSON mode */
    char session_id[UUID_STR_LEN];
    json_t *end; /* the message_complete or error event's data */
    bool is_error;
} watch;

static void w_wake(void *ud)
{
    watch *w = ud;
    http_resume(w->r);
}

static void w_arm_stream(void *ud)
{
    watch *w = ud;
    http_stream_wait(w->r);
}

static bool is_turn_end(const char *event)
{
    return !strcmp(event, "message_complete") || !strcmp(event, "error");
}

static void watch_free(void *cls)
{
    watch *w = cls;
    bus_unsubscribe(w->sub);
    if (w->b) agent_bus_release(w->a->agent, w->session_id);
    buf_free(&w->out);
    json_decref(w->end);
    free(w);
}

/* A watch of the session's bus; NULL with *e = GD_EBUSY when the session has as many watchers
 * as it may, GD_ENOMEM. Subscribe it with watch_from. */
static watch *watch_new(http_req *r, const char *session_id, bool until_turn_end, gd_err *e)
{
    app *a = http_app(r);
    watch *w = calloc(1, sizeof *w);
    if (!w) {
        *e = GD_ENOMEM;
        return NULL;
    }
    w->r = r;
    w->a = a;
    w->until_turn_end = until_turn_end;
    snprintf(w->session_id, sizeof w->session_id, "%s", session_id);
    buf_init(&w->out, BUF_CAP_SSE_OUT);
    if (!(w->b = agent_bus_get(a->agent, session_id, e))) {
        watch_free(w);
        return NULL;
    }
    return w;
}

static bool watch_from(watch *w, uint64_t from)
{
    return (w->sub = bus_subscribe(w->b, from, w_wake, w)) != NULL;
}

/* Answers a watch that could not be made. */
static void watch_refused(http_req *r, gd_err e, const char *sid)
{
    if (e == GD_ESHUTDOWN) {
        http_reply_error(r, 503, "shutting_down", "the server is shutting down");
        return;
    }
    if (e == GD_EBUSY) {
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 429, "too_many_watchers",
                         "session '%s' has as many watching clients as it may have "
                         "(max_watchers_per_session); close one or try again later",
                         sid);
        return;
    }
    http_reply_error(r, 500, "internal", "out of memory");
}

/* ---- SSE ---- */

/* An event that could not be added to w->out (larger than its cap, or out of memory) ends the
 * stream with an error event saying so; when even that does not fit, the stream just ends,
 * without the reply's end event. */
static void pull_failed(watch *w, gd_err e)
{
    w->done = true;
    buf_ignore(buf_printf(&w->out,
                          "event: error\ndata: {\"error\":\"an event could not be sent (%s); "
                          "reload the history\",\"code\":\"events_lost\"}\n\n",
                          e == GD_ETOOBIG ? "too large" : "out of memory"));
}

/* Appends the next event for this client to w->out. False when there is none now; with `arm`,
 * the subscriber is then armed and the connection suspended, and a publish resumes it. */
static bool pull_event(watch *w, bool arm)
{
    char ev[BUS_NAME_MAX];
    gd_err e;
    switch (bus_next_sse(w->sub, &w->out, ev, &e, arm, arm ? w_arm_stream : NULL, w)) {
    case BUS_NONE:
        return false;
    case BUS_EVENT:
        if (w->until_turn_end && is_turn_end(ev)) w->done = true;
        if (e) pull_failed(w, e);
        return true;
    case BUS_PING:
        if (http_peer_gone(w->r)) { /* the client left: its place is freed now */
            w->done = true;
            return true;
        }
        if (!auth_still_valid(http_user(w->r))) { /* checked again at each keep-alive */
            w->done = true;
            e = buf_puts(&w->out, "event: error\ndata: {\"error\":\"the token that opened this "
                                  "stream was replaced, or its user removed\",\"code\":"
                                  "\"unauthorized\"}\n\n");
            if (e) pull_failed(w, e);
            return true;
        }
        if ((e = buf_puts(&w->out, ": ping\n\n"))) pull_failed(w, e);
        return true;
    case BUS_GAP:
        e = buf_puts(&w->out, "event: error\ndata: {\"error\":\"this client fell too far behind "
                              "and missed events; reload the history\",\"code\":\"events_lost\"}"
                              "\n\n");
        if (e) pull_failed(w, e);
        /* A reply's own stream may have lost its end with them: it ends here, and the client
         * reloads the history, as the event says. */
        if (w->until_turn_end) w->done = true;
        return true;
    case BUS_CLOSED:
        w->done = true;
        return true;
    }
    return false;
}

static long sse_read(void *cls, char *dst, size_t max)
{
    watch *w = cls;
    for (;;) {
        if (w->off < w->out.len) {
            size_t n = w->out.len - w->off < max ? w->out.len - w->off : max;
            memcpy(dst, w->out.data + w->off, n);
            w->off += n;
            return (long)n;
        }
        buf_reset(&w->out);
        w->off = 0;
        if (w->done) return HTTP_STREAM_END;
        if (!pull_event(w, true)) {
            /* suspended until the next publish: a stream that waits (a reply between tokens, an
             * idle watcher) holds no buffer meanwhile */
            buf_free(&w->out);
            return 0;
        }
        /* Everything else ready, up to what fits this call: one send for many events, so that
         * a fast provider's stream does not cost a send (and an epoll round) per token. */
        while (!w->done && w->out.len < max && pull_event(w, false))
            ;
    }
}

static void reply_sse(http_req *r, watch *w)
{
    http_reply_stream(r, 200, "text/event-stream; charset=utf-8", sse_read, w, watch_free);
}

/* ---- JSON: wait for the end of the reply ---- */

static void json_cont(http_req *r);

static void w_arm_json(void *ud)
{
    watch *w = ud;
    http_suspend(w->r, json_cont);
}

/* The HTTP status of a reply that ended with an error event's code. */
static int end_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"storage_unavailable", 503},     {"busy", 503},
        {"provider_unavailable", 503},    {"session_gone", 410},
        {"context_too_long", 413},        {"internal", 500},
        {"provider_not_configured", 503}, {"forbidden", 403}, /* a working directory */
    };
    for (size_t i = 0; code && i < sizeof map / sizeof *map; i++)
        if (!strcmp(map[i].code, code)) return map[i].status;
    return 502; /* provider_error, and what a provider said */
}

static void json_answer(http_req *r, watch *w)
{
    if (w->is_error) {
        const char *code = json_string_value(json_object_get(w->end, "code"));
        const char *msg = json_string_value(json_object_get(w->end, "error"));
        int status = end_status(code);
        if (status == 503) http_add_header(r, "Retry-After", "5");
        http_reply_error(r, status, code ? code : "provider_error", "%s",
                         msg ? msg : "the reply failed");
        return;
    }
    const char *mid = json_string_value(json_object_get(w->end, "message_id"));
    json_t *found = NULL;
    if (mid) {
        gd_err e = w->a->st->ops->message_get(w->a->st, w->session_id, mid, &found);
        if (e) {
            api_store_error(r, e, w->session_id, NULL);
            return;
        }
    }
    json_t *content = found ? json_object_get(found, "content") : NULL;
    char *text = content_text(content, "");
    json_t *o = json_pack(
        "{s:s?, s:s, s:s, s:o, s:s?, s:O?, s:O?}", "id", mid, "role", "assistant", "content", text,
        "content_items", content ? json_incref(content) : json_array(), "created_at",
        found ? json_string_value(json_object_get(found, "created_at")) : NULL, "stop_reason",
        json_object_get(w->end, "stop_reason"), "usage", json_object_get(w->end, "usage"));
    free(text);
    json_decref(found);
    http_reply_json(r, 200, o);
}

static void json_cont(http_req *r)
{
    watch *w = *(watch **)http_state(r, sizeof(watch *)); /* set by start_reply */
    for (;;) {
        uint64_t seq;
        char *ev, *data;
        bus_read br = bus_next(w->sub, &seq, &ev, &data, w_arm_json, w);
        if (br == BUS_NONE) return; /* suspended again */
        if (br == BUS_CLOSED) {
            http_reply_error(r, 503, "shutting_down", "the server is shutting down");
            return;
        }
        if (br != BUS_EVENT) continue;
        if (is_turn_end(ev)) {
            w->end = json_loads(data, 0, NULL);
            w->is_error = !strcmp(ev, "error");
            free(ev);
            free(data);
            json_answer(r, w);
            return;
        }
        free(ev);
        free(data);
    }
}

/* ---- handlers ---- */

static bool wants_sse(http_req *r)
{
    const char *accept = http_header(r, "Accept");
    return accept && strstr(accept, "text/event-stream");
}

int api_start_failure(gd_err e, const char *session_id, const char *err, const char **code,
                      char *msg, size_t msglen)
{
    snprintf(msg, msglen, "%s", err);
    switch (e) {
    case GD_ENOTFOUND:
        *code = "not_found";
        snprintf(msg, msglen, "session '%s' not found", session_id);
        return 404;
    case GD_ECONFLICT:
        *code = "reply_running";
        return 409;
    case GD_EINVAL:
        *code = "provider_not_configured";
        return 503;
    case GD_EBUSY:
        *code = "busy";
        return 503;
    case GD_EQUOTA:
        *code = "too_many_replies";
        return 429;
    case GD_ESHUTDOWN:
        *code = "shutting_down";
        return 503;
    case GD_ESTORE:
        *code = "storage_unavailable";
        snprintf(msg, msglen, "storage unavailable: %s", err);
        return 503;
    default:
        *code = "internal";
        return 500;
    }
}

static void start_reply(http_req *r, bool sse)
{
    app *a = http_app(r);
    const char *sid = http_param(r, 0);
    json_t *body = http_body(r);
    json_t *content = body ? json_object_get(body, "content") : NULL;
    json_t *role = body ? json_object_get(body, "role") : NULL;
    if (!json_is_string(content) || !json_string_length(content)) {
        http_reply_error(r, 400, "bad_request", "content: a non-empty string is required");
        return;
    }
    if (role && (!json_is_string(role) || strcmp(json_string_value(role), "user"))) {
        http_reply_error(r, 400, "bad_request", "role: only \"user\" can be sent");
        return;
    }
    /* Checked first, so that a message to an unknown id makes no watch (nor its bus). */
    if (!api_session_found(r, sid)) return;
    gd_err e;
    watch *w = watch_new(r, sid, true, &e);
    if (!w) {
        watch_refused(r, e, sid);
        return;
    }
    uint64_t first;
    char err[512];
    e = agent_start(a->agent, sid, http_user(r)->id, http_user(r)->admin,
                    json_string_value(content), &first, err, sizeof err);
    if (e) {
        watch_free(w);
        const char *code;
        char msg[600];
        int status = api_start_failure(e, sid, err, &code, msg, sizeof msg);
        if (status == 503 || status == 429) http_add_header(r, "Retry-After", "5");
        http_reply_error(r, status, code, "%s", msg);
        return;
    }
    if (!watch_from(w, first)) {
        watch_free(w); /* the reply runs on; its events stay replayable */
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    if (sse) {
        reply_sse(r, w);
        return;
    }
    watch **slot = http_state(r, sizeof(watch *));
    if (!slot) {
        watch_free(w);
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    *slot = w;
    http_on_done(r, watch_free, w);
    json_cont(r);
}

void api_message_post(http_req *r)
{
    start_reply(r, wants_sse(r));
}

void api_message_stream(http_req *r)
{
    start_reply(r, true);
}

void api_session_events(http_req *r)
{
    const char *sid = http_param(r, 0);
    if (!api_session_found(r, sid)) return;
    uint64_t from = 0;
    const char *last = http_header(r, "Last-Event-ID");
    if (!last) last = http_query(r, "after");
    if (last) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(last, &end, 10);
        /* range-checked: 2^64 and over must not wrap to 0 and replay everything */
        if (*last < '0' || *last > '9' || *end || errno == ERANGE || v >= UINT64_MAX) {
            http_reply_error(r, 400, "bad_request",
                             "Last-Event-ID: must be an event id (a whole number below 2^64 - 1)");
            return;
        }
        from = (uint64_t)v + 1;
    }
    gd_err e;
    watch *w = watch_new(r, sid, false, &e);
    if (w && !watch_from(w, from)) {
        watch_free(w);
        w = NULL;
        e = GD_ENOMEM;
    }
    if (!w) {
        watch_refused(r, e, sid);
        return;
    }
    reply_sse(r, w);
}

void api_session_cancel(http_req *r)
{
    app *a = http_app(r);
    const char *sid = http_param(r, 0);
    gd_err e = agent_cancel(a->agent, sid);
    if (e == GD_ENOMEM) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    if (e != GD_OK) {
        if (!api_session_found(r, sid)) return;
        http_reply_error(r, 409, "no_reply_running", "no reply is running in session '%s'", sid);
        return;
    }
    http_reply_json(r, 202, json_pack("{s:b}", "cancelling", 1));
}

/* An answer's body: "id" (the event's) and "action", both strings; false (and a 400 sent) when
 * one is missing. event names the event, actions the choices, for the message. */
static bool answer_fields(http_req *r, const char *event, const char *actions, const char **id,
                          const char **action)
{
    json_t *body = http_body(r);
    json_t *jid = json_object_get(body, "id"), *jact = json_object_get(body, "action");
    if (!json_is_string(jid) || !json_string_length(jid)) {
        http_reply_error(r, 400, "bad_request", "id: a string is required (the id of the %s event)",
                         event);
        return false;
    }
    if (!json_is_string(jact)) {
        http_reply_error(r, 400, "bad_request", "action: a string is required (%s)", actions);
        return false;
    }
    *id = json_string_value(jid);
    *action = json_string_value(jact);
    return true;
}

/* What the agent said of an answer, as the HTTP answer. */
static void answer_reply(http_req *r, const char *sid, gd_err e, const char *err, const char *id,
                         const char *action)
{
    if (e == GD_EINVAL) {
        http_reply_error(r, 400, "bad_request", "%s", err);
    } else if (e == GD_ENOTFOUND) {
        if (!api_session_found(r, sid)) return;
        http_reply_error(r, 404, "not_found", "%s", err);
    } else if (e) {
        http_reply_error(r, 500, "internal", "%s", err);
    } else {
        http_reply_json(r, 200, json_pack("{s:s, s:s}", "id", id, "action", action));
    }
}

/* POST /api/sessions/{id}/tool_confirmations {"id", "action"}: the user's answer to a
 * tool_confirmation event. */
void api_tool_confirm(http_req *r)
{
    const char *sid = http_param(r, 0), *id, *action;
    if (!answer_fields(r, "tool_confirmation",
                       "allow_once, always_allow, deny_once, always_deny or cancel", &id, &action))
        return;
    char err[512];
    gd_err e = agent_confirm(((app *)http_app(r))->agent, sid, id, action, err, sizeof err);
    answer_reply(r, sid, e, err, id, action);
}

/* POST /api/sessions/{id}/elicitations {"id", "action", "content"?}: the user's answer to an
 * elicitation event (an extension's server asking for input). */
void api_elicitation_answer(http_req *r)
{
    const char *sid = http_param(r, 0), *id, *action;
    if (!answer_fields(r, "elicitation", "accept, decline or cancel", &id, &action)) return;
    char err[512];
    gd_err e = agent_elicitation_answer(((app *)http_app(r))->agent, sid, id, action,
                                        json_object_get(http_body(r), "content"), err, sizeof err);
    answer_reply(r, sid, e, err, id, action);
}
