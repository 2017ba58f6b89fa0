/* The WebSocket stream of a session (seed 001): GET /api/sessions/{id}/stream.
 *
 * Client -> server text frames: {"type":"message","content":"…"} starts a reply,
 * {"type":"cancel"} cancels the running one, {"type":"tool_confirmation","id","action"} answers a
 * tool_confirmation, {"type":"elicitation_response","id","action","content"} an elicitation.
 * Anything else gets an error frame, and the connection stays open. Server -> client: every event
 * of the session's replies from the moment the client connected (like GET …/events), as seed 001's
 * frames. A thin writer over the session's bus, like the SSE watch in messages.c: the bus wakes the
 * WebSocket I/O thread, which pulls events while the socket has room. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "api/api.h"
#include "auth/auth.h"
#include "core/log.h"
#include "core/jtext.h"
#include "http/ws.h"

typedef struct {
    app *a;
    ws_conn *c;
    bus *b;
    bus_sub *sub;
    char sid[ROUTE_PARAM_MAX];
    auth_user user; /* who opened it (auth_gate checked the session is theirs) */
} stream;

/* Whether the credentials that opened the stream still hold; when not, it is closed (1008). */
static bool still_theirs(stream *s)
{
    if (auth_still_valid(&s->user)) return true;
    ws_close(s->c, WS_CLOSE_POLICY,
             "the token that opened this connection was replaced, or its user removed");
    return false;
}

/* ---- server -> client ---- */

/* Bus event -> frame: the frame's type and the fields copied from the event's data. Events not
 * listed (e.g. ones added later) go out with their data as is and "type" set to their name. */
static const struct {
    const char *event;
    const char *type;
    const char *fields[5]; /* NULL-terminated */
} frames[] = {
    {"tool_call", "tool_use", {"id", "tool", "arguments"}},
    {"tool_result", "tool_result", {"id", "tool", "result", "is_error"}},
    {"message_complete", "message_complete", {"stop_reason", "usage", "message_id"}},
    {"error", "error", {"error", "code"}},
};

/* Queues a frame (consumed). */
static void send_json(ws_conn *c, json_t *frame)
{
    char *text = jtext(frame, NULL);
    json_decref(frame);
    if (!text) {
        log_error("ws", "could not encode a frame (out of memory)");
        return;
    }
    ws_send_text(c, text, strlen(text));
    free(text);
}

/* An error frame. Dropped when the client does not read what it is sent. */
static void send_error(ws_conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void send_error(ws_conn *c, const char *code, const char *fmt, ...)
{
    if (!ws_room(c)) return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", "error", "error", msg, "code", code);
    if (!o) /* msg was cut inside a UTF-8 sequence */
        o = json_pack("{s:s, s:s, s:s}", "type", "error", "error", "invalid request", "code", code);
    send_json(c, o);
}

/* Sends a bus event as its frame. data is the event's JSON text. */
static void send_event(ws_conn *c, const char *event, const char *data)
{
    json_t *d = json_loads(data, 0, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        return;
    }
    json_t *f;
    if (!strcmp(event, "message_chunk")) {
        const char *kind = json_string_value(json_object_get(d, "type"));
        json_t *text = json_object_get(d, "text");
        f = json_pack("{s:s, s:o}", "type",
                      kind && !strcmp(kind, "thinking") ? "thinking_delta" : "content_delta",
                      "delta", text ? json_incref(text) : json_string(""));
    } else {
        size_t i = 0, n = sizeof frames / sizeof *frames;
        while (i < n && strcmp(frames[i].event, event))
            i++;
        if (i == n) {
            f = json_deep_copy(d);
            json_object_set_new(f, "type", json_string(event));
        } else {
            f = json_pack("{s:s}", "type", frames[i].type);
            for (const char *const *k = frames[i].fields; *k; k++) {
                json_t *v = json_object_get(d, *k);
                if (v) json_object_set(f, *k, v);
            }
        }
    }
    json_decref(d);
    send_json(c, f);
}

/* Pulls the session's events while the socket has room (on the WebSocket I/O thread). */
static void s_pull(ws_conn *c, void *ud)
{
    stream *s = ud;
    while (ws_room(c)) {
        uint64_t seq;
        char *ev, *data;
        switch (bus_next(s->sub, &seq, &ev, &data, NULL, NULL)) {
        case BUS_EVENT:
            send_event(c, ev, data);
            free(ev);
            free(data);
            break;
        case BUS_PING: /* the WebSocket has its own pings; who it is for is checked again */
            if (!still_theirs(s)) return;
            break;
        case BUS_GAP:
            send_error(c, "events_lost",
                       "this client fell too far behind and missed events; reload the history");
            break;
        case BUS_CLOSED:
            ws_close(c, WS_CLOSE_GOING_AWAY, "the server is shutting down");
            return;
        case BUS_NONE: /* armed: the next event wakes us */
            return;
        }
    }
}

/* ---- client -> server ---- */

static void start_reply(stream *s, json_t *m)
{
    json_t *content = json_object_get(m, "content");
    json_t *role = json_object_get(m, "role");
    if (!json_is_string(content) || !json_string_length(content)) {
        send_error(s->c, "bad_request", "content: a non-empty string is required");
        return;
    }
    if (role && (!json_is_string(role) || strcmp(json_string_value(role), "user"))) {
        send_error(s->c, "bad_request", "role: only \"user\" can be sent");
        return;
    }
    uint64_t first;
    char err[512];
    gd_err e = agent_start(s->a->agent, s->sid, s->user.id, s->user.admin,
                           json_string_value(content), &first, err, sizeof err);
    if (e == GD_OK) return; /* its events arrive through the bus like every other reply's */
    const char *code;
    char msg[600];
    (void)api_start_failure(e, s->sid, err, &code, msg, sizeof msg);
    send_error(s->c, code, "%s", msg);
}

static void cancel_reply(stream *s, json_t *m)
{
    if (agent_cancel(s->a->agent, s->sid) != GD_OK)
        send_error(s->c, "no_reply_running", "no reply is running in this session");
}

/* {"type":"tool_confirmation","id","action"}: the answer to a tool_confirmation frame. */
static void confirm_tool(stream *s, json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *action = json_string_value(json_object_get(m, "action"));
    if (!id || !action) {
        send_error(s->c, "bad_request", "%s: a string is required", id ? "action" : "id");
        return;
    }
    char err[512];
    gd_err e = agent_confirm(s->a->agent, s->sid, id, action, err, sizeof err);
    if (e)
        send_error(s->c,
                   e == GD_EINVAL      ? "bad_request"
                   : e == GD_ENOTFOUND ? "not_found"
                                       : "internal",
                   "%s", err);
}

/* {"type":"elicitation_response","id","action","content"?}: the answer to an elicitation frame. */
static void answer_elicitation(stream *s, json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *action = json_string_value(json_object_get(m, "action"));
    if (!id || !action) {
        send_error(s->c, "bad_request", "%s: a string is required", id ? "action" : "id");
        return;
    }
    char err[512];
    gd_err e = agent_elicitation_answer(s->a->agent, s->sid, id, action,
                                        json_object_get(m, "content"), err, sizeof err);
    if (e)
        send_error(s->c,
                   e == GD_EINVAL      ? "bad_request"
                   : e == GD_ENOTFOUND ? "not_found"
                                       : "internal",
                   "%s", err);
}

/* What a client may send: {"type": …} -> its handler. */
static const struct {
    const char *type;
    void (*fn)(stream *s, json_t *m);
} client_frames[] = {
    {"message", start_reply},
    {"cancel", cancel_reply},
    {"tool_confirmation", confirm_tool},
    {"elicitation_response", answer_elicitation},
};

static void s_message(ws_conn *c, void *ud, bool text, const char *data, size_t len)
{
    stream *s = ud;
    if (!text) {
        send_error(c, "bad_request", "binary frames are not supported: send JSON text frames");
        return;
    }
    json_error_t jerr;
    json_t *m = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(m)) {
        if (m)
            send_error(c, "invalid_json", "a frame must be a JSON object");
        else
            send_error(c, "invalid_json", "the frame is not valid JSON: %s (column %d)",
                       jtext_parse_error(&jerr), jerr.column);
        json_decref(m);
        return;
    }
    if (!still_theirs(s)) {
        json_decref(m);
        return;
    }
    const char *type = json_string_value(json_object_get(m, "type"));
    size_t i = 0, n = sizeof client_frames / sizeof *client_frames;
    while (type && i < n && strcmp(client_frames[i].type, type))
        i++;
    if (type && i < n)
        client_frames[i].fn(s, m);
    else
        send_error(c, "bad_request",
                   "type: %s (expected \"message\", \"cancel\", \"tool_confirmation\" or "
                   "\"elicitation_response\")",
                   type ? "unknown frame type" : "a string is required");
    json_decref(m);
}

/* ---- the connection ---- */

static void s_wake(void *ud)
{
    stream *s = ud;
    ws_wake(s->c);
}

static void s_close(ws_conn *c, void *ud)
{
    stream *s = ud;
    bus_unsubscribe(s->sub);
    if (s->b) agent_bus_release(s->a->agent, s->sid);
    free(s);
}

static void *s_open(http_req *r, ws_conn *c)
{
    stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->a = http_app(r);
    s->c = c;
    snprintf(s->sid, sizeof s->sid, "%s", http_param(r, 0));
    s->user = *http_user(r);
    gd_err e;
    /* A session with all the watchers it may have: refused (1011) here only when the race
     * with another client was lost; api_session_stream answered 429 before the upgrade. */
    s->b = agent_bus_get(s->a->agent, s->sid, &e);
    s->sub = s->b ? bus_subscribe(s->b, 0, s_wake, s) : NULL;
    if (!s->sub) {
        s_close(c, s);
        return NULL;
    }
    return s;
}

static const ws_handler stream_handler = {
    .open = s_open, .on_message = s_message, .on_wake = s_pull, .on_close = s_close};

void api_session_stream(http_req *r)
{
    if (!ws_handshake_ok(r) || !api_session_found(r, http_param(r, 0))) return;
    app *a = http_app(r);
    if (agent_watchers_full(a->agent, http_param(r, 0))) {
        http_add_header(r, "Retry-After", "5");
        http_reply_error(r, 429, "too_many_watchers",
                         "session '%s' has as many watching clients as it may have "
                         "(max_watchers_per_session); close one or try again later",
                         http_param(r, 0));
        return;
    }
    ws_accept(r, &stream_handler);
}
