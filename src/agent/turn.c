#include "agent/turn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/content.h"
#include "core/jtext.h"
#include "core/metrics.h"

turn *turn_new(const turn_fx *fx, void *owner, const char *text, long max_rounds,
               long context_limit)
{
    turn *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->fx = fx;
    t->owner = owner;
    t->max_rounds = max_rounds;
    t->context_limit = context_limit;
    t->user = json_pack("[{s:s}]", "type", "text");
    if (!t->user || json_object_set_new(json_array_get(t->user, 0), "text", json_string(text))) {
        json_decref(t->user);
        free(t);
        return NULL;
    }
    buf_init(&t->text, BUF_CAP_REPLY_TEXT);
    buf_init(&t->thinking, BUF_CAP_REPLY_TEXT);
    return t;
}

void turn_free(turn *t)
{
    if (!t) return;
    json_decref(t->history);
    json_decref(t->user);
    json_decref(t->content);
    json_decref(t->results);
    buf_free(&t->text);
    buf_free(&t->thinking);
    free(t->signature);
    free(t);
}

/* ---- endings ---- */

static void turn_end(turn *t, const char *event, json_t *data)
{
    t->state = TURN_DONE;
    t->fx->end(t, event, data);
}

static void turn_fail(turn *t, const char *code, const char *msg)
{
    snprintf(t->last.stop_reason, sizeof t->last.stop_reason, "error");
    turn_end(t, "error", json_pack("{s:s, s:s}", "error", msg, "code", code));
}

static void complete(turn *t, const char *why)
{
    if (t->gone) { /* cancelled because the session was deleted: say so */
        turn_fail(t, "session_gone", "the session was deleted during the reply");
        return;
    }
    char stop_reason[sizeof t->last.stop_reason];
    snprintf(stop_reason, sizeof stop_reason, "%s", why); /* why may be t->last.stop_reason */
    snprintf(t->last.stop_reason, sizeof t->last.stop_reason, "%s", stop_reason);
    turn_end(t, "message_complete",
             json_pack("{s:s, s:s?, s:{s:I, s:I}}", "stop_reason", stop_reason, "message_id",
                       t->reply_id[0] ? t->reply_id : NULL, "usage", "input_tokens",
                       (json_int_t)t->in_tok, "output_tokens", (json_int_t)t->out_tok));
}

/* A write that failed: the session was deleted meanwhile, a bound was reached, or the store
 * is down. */
static void store_failed(turn *t, gd_err e, const char *msg)
{
    switch (e) {
    case GD_ENOTFOUND:
        turn_fail(t, "session_gone", "the session was deleted during the reply");
        return;
    case GD_EBUSY:
        turn_fail(t, "busy", msg && *msg ? msg : "the store is busy");
        return;
    case GD_ENOMEM:
        turn_fail(t, "internal", "out of memory storing a message");
        return;
    default:
        turn_fail(t, "storage_unavailable", msg && *msg ? msg : "the store failed");
        return;
    }
}

/* ---- the history sent to the provider ---- */

/* Appends {role, content} (content borrowed) to history and counts its bytes in *bytes. */
static bool add_message(json_t *history, size_t *bytes, const char *role, json_t *content)
{
    json_t *m = json_pack("{s:s, s:O}", "role", role, "content", content);
    if (!m) return false;
    *bytes += jtext_size(m) + 1;
    return json_array_append_new(history, m) == 0;
}

static bool history_add(turn *t, const char *role, json_t *content)
{
    return add_message(t->history, &t->history_bytes, role, content);
}

json_t *turn_prepare_history(json_t *stored, size_t *bytes)
{
    json_t *h = json_array(), *m;
    size_t i, n = 2;
    if (!h) return NULL;
    json_array_foreach(stored, i, m)
    {
        if (!add_message(h, &n, json_string_value(json_object_get(m, "role")),
                         json_object_get(m, "content"))) {
            json_decref(h);
            return NULL;
        }
    }
    /* A tool call whose result was never stored (a crash the start-up repair did not see, or a
     * store failure in the last turn) still gets an answer: the providers refuse the
     * conversation otherwise. */
    json_t *fixed = content_answer_tool_calls(h);
    json_decref(h);
    if (fixed) *bytes = jtext_size(fixed);
    return fixed;
}

/* Whether the history fits the context limit; when not, ends the turn. Tokens are estimated at
 * four bytes each, as the providers' tokenizers average on English and code. */
static bool fits_context(turn *t)
{
    long tokens = (long)((t->history_bytes + t->overhead_bytes) / 4);
    if (tokens <= t->context_limit) return true;
    long fixed = (long)(t->overhead_bytes / 4);
    char msg[400];
    if (fixed * 2 > t->context_limit) /* a new session would not help: say what fills it */
        snprintf(msg, sizeof msg,
                 "the request is about %ld tokens, over the context limit of %ld (context_limit "
                 "in config.yaml, GOOSE_CONTEXT_LIMIT); the system prompt and the extensions' "
                 "tool definitions alone are about %ld: disable an extension with large tool "
                 "definitions, or raise the limit",
                 tokens, t->context_limit, fixed);
    else if (t->rounds > 0) /* tool results pushed it over: what ran is stored */
        snprintf(msg, sizeof msg,
                 "the tool results grew the conversation to about %ld tokens, over the context "
                 "limit of %ld (context_limit in config.yaml, GOOSE_CONTEXT_LIMIT): what ran is "
                 "stored, and the reply ends here; start a new session",
                 tokens, t->context_limit);
    else
        snprintf(msg, sizeof msg,
                 "the conversation is about %ld tokens, over the context limit of %ld "
                 "(context_limit in config.yaml, GOOSE_CONTEXT_LIMIT); nothing was stored; start "
                 "a new session",
                 tokens, t->context_limit);
    turn_fail(t, "context_too_long", msg);
    return false;
}

/* ---- rounds ---- */

static void round_over(turn *t);

static void start_round(turn *t)
{
    if (t->cancel) {
        t->state = TURN_STREAMING;
        prov_result r = {.stop_reason = "cancelled"};
        turn_step(t, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = &r});
        return;
    }
    if (t->rounds >= t->max_rounds) {
        complete(t, "max_turns");
        return;
    }
    if (t->rounds > 0 && !fits_context(t)) return;
    t->rounds++;
    json_decref(t->content);
    t->content = json_array();
    memset(&t->last, 0, sizeof t->last);
    t->state = TURN_STREAMING;
    if (!t->content || !t->fx->stream(t)) {
        prov_result r = {.stop_reason = "error", .error = "out of memory starting the request"};
        turn_step(t, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = &r});
    }
}

static void flush_text(turn *t)
{
    if (t->thinking.len) {
        json_t *it = json_pack("{s:s, s:s}", "type", "thinking", "thinking", t->thinking.data);
        if (t->signature) json_object_set_new(it, "signature", json_string(t->signature));
        free(t->signature); /* used: it must not attach to a later item */
        t->signature = NULL;
        json_array_append_new(t->content, it);
        buf_reset(&t->thinking);
    }
    if (t->text.len) {
        json_array_append_new(t->content,
                              json_pack("{s:s, s:s}", "type", "text", "text", t->text.data));
        buf_reset(&t->text);
    }
}

static size_t count_tool_requests(json_t *content)
{
    size_t i, n = 0;
    json_t *it;
    json_array_foreach(content, i, it) n += !strcmp(content_type(it), "tool_request");
    return n;
}

/* The provider's round is over and the user message is stored (or failed to be). */
static void round_over(turn *t)
{
    const prov_result *res = &t->last;
    if (t->user_err) {
        store_failed(t, t->user_err, t->user_msg);
        return;
    }
    if (!strcmp(res->stop_reason, "error") || !strcmp(res->stop_reason, "cancelled")) {
        /* Keep what arrived, but never a tool call that will not run. */
        json_t *kept = json_array(), *it;
        size_t i;
        json_array_foreach(t->content, i, it)
        {
            if (strcmp(content_type(it), "tool_request")) json_array_append(kept, it);
        }
        json_decref(t->content);
        t->content = kept;
        if (json_array_size(kept) == 0) {
            if (!strcmp(res->stop_reason, "error"))
                turn_fail(t, "provider_error", res->error);
            else
                complete(t, "cancelled");
            return;
        }
    }
    t->state = TURN_STORING_REPLY;
    t->fx->store(t, TURN_STORE_REPLY, "assistant", t->content, res->input_tokens,
                 res->output_tokens, t->reply_id);
}

/* ---- tools ---- */

/* Stores the round's results so far: the first time as a new message, then as that message's
 * new content. Each result is stored before its tool_result is published, so that a result a
 * client saw survives a crash (publish_stored, once stored). */
static void store_results(turn *t)
{
    t->state = TURN_STORING_RESULTS;
    t->results_sent = json_array_size(t->results);
    if (t->results_id[0])
        t->fx->update(t, TURN_STORE_RESULTS, t->results, t->results_id);
    else
        t->fx->store(t, TURN_STORE_RESULTS, "user", t->results, 0, 0, t->results_id);
}

/* Publishes the tool_result of each result just stored (those from t->results_published on). */
static void publish_stored(turn *t)
{
    for (; t->results_published < t->results_sent; t->results_published++) {
        json_t *item = json_array_get(t->results, t->results_published);
        json_t *content = json_object_get(item, "content");
        json_t *structured = json_object_get(item, "structured_content");
        char *text = content_text(content, "\n");
        json_t *ev = json_pack("{s:O, s:O, s:s, s:O, s:O}", "id", json_object_get(item, "id"),
                               "tool", json_object_get(item, "name"), "result", text ? text : "",
                               "content", content, "is_error", json_object_get(item, "is_error"));
        if (ev && structured) json_object_set(ev, "structured_content", structured);
        t->fx->publish(t, "tool_result", ev);
        free(text);
    }
}

/* Whether some results are not stored yet. */
static bool results_unstored(const turn *t)
{
    return json_array_size(t->results) > t->results_sent;
}

/* Adds the result of the tool request `req` (content and structured, which may be NULL,
 * consumed); it is published once stored. */
static void add_result(turn *t, json_t *req, json_t *content, json_t *structured, bool is_error)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *name = json_string_value(json_object_get(req, "name"));
    json_t *item = json_pack("{s:s, s:s, s:s, s:o, s:b}", "type", "tool_response", "id", id, "name",
                             name, "content", content, "is_error", is_error);
    if (item && structured) json_object_set(item, "structured_content", structured);
    json_decref(structured);
    json_array_append_new(t->results, item);
}

static void add_text_result(turn *t, json_t *req, const char *text)
{
    add_result(t, req, json_pack("[{s:s, s:s}]", "type", "text", "text", text), NULL, true);
}

/* The choices a tool_confirmation offers (the real Goose's). */
static json_t *choices(void)
{
    return json_pack("[s, s, s, s, s]", "allow_once", "always_allow", "deny_once", "always_deny",
                     "cancel");
}

/* Starts the call of req, or gives it an error result when it cannot start; true when a
 * TURN_EV_TOOL follows. */
static bool start_tool(turn *t, json_t *req)
{
    if (t->fx->call_tool(t, json_string_value(json_object_get(req, "name")),
                         json_object_get(req, "arguments")))
        return true;
    add_text_result(t, req, "out of memory starting the tool");
    return false;
}

/* Every result of the round is stored: the next round, or the end. */
static void results_done(turn *t)
{
    history_add(t, "user", t->results);
    if (t->cancel)
        complete(t, "cancelled");
    else
        start_round(t);
}

/* Starts the next tool request of the stored reply, or ends the round once none is left. A
 * call that cannot start gets an error result, so the model always sees one result per
 * request (the providers refuse a conversation without it). The results that came so far are
 * stored before the turn waits for anything (a tool, the user's answer) and at the end. */
static void run_next_tool(turn *t)
{
    t->state = TURN_RUNNING_TOOLS;
    for (;;) {
        json_t *req = json_array_get(t->content, t->next_tool);
        if (!req) {
            if (results_unstored(t))
                store_results(t);
            else
                results_done(t);
            return;
        }
        if (strcmp(content_type(req), "tool_request")) {
            t->next_tool++;
            continue;
        }
        if (t->cancel) {
            add_text_result(t, req, "cancelled by the user before it ran");
        } else if (json_is_true(json_object_get(req, "invalid_arguments"))) {
            add_text_result(t, req, "the tool call's arguments were not valid JSON");
        } else if (results_unstored(t)) {
            store_results(t); /* then back here (on_stored) */
            return;
        } else {
            turn_permission p = t->fx->permission ? t->fx->permission(t, req) : TURN_ALLOW;
            if (p == TURN_DENY) {
                add_text_result(t, req, "denied: the user does not allow this tool");
                metrics_tool_call(json_string_value(json_object_get(req, "name")), "denied", -1);
            } else if (p == TURN_ASK) {
                t->state = TURN_AWAITING_APPROVAL;
                t->fx->publish(t, "tool_confirmation",
                               json_pack("{s:O, s:O, s:O, s:o}", "id", json_object_get(req, "id"),
                                         "tool", json_object_get(req, "name"), "arguments",
                                         json_object_get(req, "arguments"), "choices", choices()));
                return; /* TURN_EV_ANSWER or TURN_EV_CANCEL follows */
            } else if (start_tool(t, req)) {
                return; /* TURN_EV_TOOL follows */
            }
        }
        t->next_tool++;
    }
}

/* ---- the transition function ---- */

static void on_history(turn *t, const turn_ev *ev)
{
    if (ev->err) {
        json_decref(ev->history);
        if (ev->err == GD_ENOTFOUND)
            turn_fail(t, "session_gone", "the session was deleted before the reply started");
        else
            turn_fail(t,
                      ev->err == GD_EBUSY    ? "busy"
                      : ev->err == GD_ENOMEM ? "internal"
                                             : "storage_unavailable",
                      ev->msg ? ev->msg : "cannot read the session's history");
        return;
    }
    if (t->cancel) {
        json_decref(ev->history);
        complete(t, "cancelled");
        return;
    }
    t->history = ev->history; /* prepared off the loop: turn_prepare_history */
    t->history_bytes = ev->history_bytes;
    history_add(t, "user", t->user);
    if (!fits_context(t)) return;
    /* The user message is stored while the first request is already on its way: the fsync is
     * off the first token's path, and the round's end waits for it. */
    t->user_pending = true;
    t->fx->store(t, TURN_STORE_USER, "user", t->user, 0, 0, t->user_id);
    start_round(t);
}

static void on_stored(turn *t, const turn_ev *ev)
{
    switch (ev->store) {
    case TURN_STORE_USER:
        t->user_pending = false;
        json_decref(t->user);
        t->user = NULL;
        if (ev->err) {
            t->user_err = ev->err;
            snprintf(t->user_msg, sizeof t->user_msg, "%s", ev->msg ? ev->msg : "");
            t->cancel = true;
            if (t->state == TURN_STREAMING && !t->round_over) t->fx->cancel_stream(t);
        }
        if (t->round_over) {
            t->round_over = false;
            round_over(t);
        }
        return;
    case TURN_STORE_REPLY:
        if (ev->err) {
            store_failed(t, ev->err, ev->msg);
            return;
        }
        history_add(t, "assistant", t->content);
        if (!strcmp(t->last.stop_reason, "error")) {
            turn_fail(t, "provider_error", t->last.error);
            return;
        }
        if (count_tool_requests(t->content) == 0) {
            complete(t, t->cancel ? "cancelled" : t->last.stop_reason);
            return;
        }
        /* The calls are announced now that they are stored and will run (each gets a result):
         * one cut by a cancel or a provider error while streaming was never shown. */
        json_t *it;
        size_t i;
        json_array_foreach(t->content, i, it)
        {
            if (strcmp(content_type(it), "tool_request")) continue;
            t->fx->publish(t, "tool_call",
                           json_pack("{s:O, s:O, s:O, s:s}", "id", json_object_get(it, "id"),
                                     "tool", json_object_get(it, "name"), "arguments",
                                     json_object_get(it, "arguments"), "status", "running"));
        }
        json_decref(t->results);
        t->results = json_array();
        t->results_sent = t->results_published = 0;
        t->results_id[0] = '\0';
        t->next_tool = 0;
        run_next_tool(t);
        return;
    case TURN_STORE_RESULTS:
        if (ev->err) {
            store_failed(t, ev->err, ev->msg);
            return;
        }
        publish_stored(t);
        run_next_tool(t);
        return;
    }
}

static void on_provider(turn *t, const turn_ev *ev)
{
    flush_text(t);
    t->last = *ev->res;
    t->in_tok += ev->res->input_tokens;
    t->out_tok += ev->res->output_tokens;
    if (t->truncated && strcmp(t->last.stop_reason, "error") &&
        strcmp(t->last.stop_reason, "cancelled")) {
        snprintf(t->last.stop_reason, sizeof t->last.stop_reason, "error");
        snprintf(t->last.error, sizeof t->last.error,
                 "the reply passed %u MiB of text, more than goosed keeps in one message",
                 BUF_CAP_REPLY_TEXT >> 20);
    }
    if (t->user_pending) {
        t->round_over = true; /* round_over runs once the user message is stored */
        return;
    }
    round_over(t);
}

void turn_begin(turn *t)
{
    t->state = TURN_LOADING;
    t->fx->load_history(t);
}

void turn_step(turn *t, const turn_ev *ev)
{
    if (ev->kind == TURN_EV_CANCEL) {
        if (ev->err == GD_EGONE) t->gone = true;
        if (t->cancel) return;
        t->cancel = true;
        if (t->state == TURN_STREAMING && !t->round_over) t->fx->cancel_stream(t);
        if (t->state == TURN_RUNNING_TOOLS) t->fx->cancel_tool(t);
        if (t->state == TURN_AWAITING_APPROVAL) run_next_tool(t); /* answers it: cancelled */
        return;
    }
    switch (t->state) {
    case TURN_LOADING:
        if (ev->kind == TURN_EV_HISTORY) on_history(t, ev);
        return;
    case TURN_STREAMING:
        if (ev->kind == TURN_EV_PROVIDER) on_provider(t, ev);
        if (ev->kind == TURN_EV_STORED) on_stored(t, ev);
        return;
    case TURN_STORING_REPLY:
    case TURN_STORING_RESULTS:
        if (ev->kind == TURN_EV_STORED) on_stored(t, ev);
        return;
    case TURN_RUNNING_TOOLS:
        if (ev->kind == TURN_EV_TOOL) {
            add_result(t, json_array_get(t->content, t->next_tool),
                       ev->content ? ev->content : json_array(), ev->structured, ev->is_error);
            t->next_tool++;
            run_next_tool(t);
        }
        return;
    case TURN_AWAITING_APPROVAL:
        if (ev->kind != TURN_EV_ANSWER) return;
        if (ev->answer == TURN_ALLOW) {
            t->state = TURN_RUNNING_TOOLS;
            if (start_tool(t, json_array_get(t->content, t->next_tool))) return;
        } else {
            json_t *req = json_array_get(t->content, t->next_tool);
            add_text_result(t, req, "denied by the user");
            metrics_tool_call(json_string_value(json_object_get(req, "name")), "denied", -1);
        }
        t->next_tool++;
        run_next_tool(t);
        return;
    case TURN_DONE:
        return;
    }
}

const char *turn_pending_confirmation(const turn *t)
{
    if (t->state != TURN_AWAITING_APPROVAL) return NULL;
    return json_string_value(json_object_get(json_array_get(t->content, t->next_tool), "id"));
}

/* ---- the provider's stream ---- */

/* Keeps a piece of the reply and streams it. From the first piece that cannot be kept (past the
 * cap, or out of memory) on, nothing more is kept or streamed, so that clients saw what is
 * stored; the reply then ends in an error (on_provider). */
static void keep_piece(turn *t, buf *b, const char *kind, const char *s, size_t n)
{
    if (t->truncated) return;
    if (buf_append(b, s, n) != GD_OK) {
        t->truncated = true;
        return;
    }
    t->fx->chunk(t, kind, s, n);
}

void turn_on_text(turn *t, const char *s, size_t n)
{
    if (t->thinking.len) flush_text(t);
    keep_piece(t, &t->text, "text", s, n);
}

void turn_on_thinking(turn *t, const char *s, size_t n)
{
    keep_piece(t, &t->thinking, "thinking", s, n);
}

void turn_on_signature(turn *t, const char *s)
{
    free(t->signature);
    t->signature = strdup(s);
}

/* Whether the reply so far has a call with this id. */
static bool has_call(json_t *content, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(content, i, it)
    {
        const char *cid = json_string_value(json_object_get(it, "id"));
        if (cid && !strcmp(cid, id) && !strcmp(content_type(it), "tool_request")) return true;
    }
    return false;
}

void turn_on_tool_call(turn *t, const char *id, const char *name, json_t *args)
{
    flush_text(t);
    /* Each call needs an id of its own: the next request answers every call by its id, and the
     * providers refuse a conversation with two calls of one id (or one without). A model that
     * repeats an id, or sends none, gets the first free "ID_2", "ID_3" ... ("call_2" ...). */
    char *alt = NULL;
    if (!id[0] || has_call(t->content, id)) {
        size_t n = strlen(id) + 16;
        alt = malloc(n);
        for (unsigned k = 2; alt; k++) {
            snprintf(alt, n, "%s_%u", id[0] ? id : "call", k);
            if (!has_call(t->content, alt)) break;
        }
        if (alt) id = alt; /* else out of memory: the next request will say what is wrong */
    }
    /* O takes a reference, o steals one: json_object() for missing arguments must be stolen. */
    json_t *it = json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_request", "id", id, "name", name,
                           "arguments", args ? json_incref(args) : json_object());
    if (!args) json_object_set_new(it, "invalid_arguments", json_true());
    /* A signature that came with no thinking text (Gemini puts it on the call) goes on the call. */
    if (t->signature) {
        json_object_set_new(it, "signature", json_string(t->signature));
        free(t->signature);
        t->signature = NULL;
    }
    json_array_append_new(t->content, it); /* announced once the reply is stored (on_stored) */
    free(alt);
}
