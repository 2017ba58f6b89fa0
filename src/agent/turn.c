#include "agent/turn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/content.h"
#include "core/jtext.h"
#include "core/metrics.h"
#include "core/utf8.h"

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
    free(t->summary);
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

json_t *turn_prepare_history(json_t *stored, size_t skip, size_t *bytes)
{
    json_t *h = json_array(), *m;
    size_t i, n = 2;
    if (!h) return NULL;
    json_array_foreach(stored, i, m)
    {
        if (i < skip) continue;
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

/* The request's size in tokens: the history with the prompt and the tools, estimated at four
 * bytes each, as the providers' tokenizers average on English and code. */
static long tokens_of(const turn *t)
{
    return (long)((t->history_bytes + t->overhead_bytes) / 4);
}

/* Whether the history fits the context limit; when not, ends the turn. */
static bool fits_context(turn *t)
{
    long tokens = tokens_of(t);
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

/* ---- compaction ---- */

/* What the provider is asked to write. */
static const char COMPACT_SYSTEM[] =
    "You summarize a conversation between a user and an AI agent that works with tools, so that "
    "the agent can carry on the work with your summary in place of the conversation, which it "
    "will no longer see. Keep what the agent needs: what the user asked for and wants (goals, "
    "preferences, constraints, decisions), what has been done (files read or changed, commands "
    "run and what they showed), where the work stands, the problems met and how they were "
    "solved, and what remains to be done. Keep exact file paths, names, identifiers, numbers, "
    "commands and error messages that matter. Invent nothing. Write the summary only, in the "
    "conversation's language, without a preamble.";
static const char COMPACT_ASK[] = "Summarize this conversation:\n\n<conversation>\n";
static const char COMPACT_ASK_END[] = "</conversation>";
/* How the summary is put before the rest of the conversation. */
static const char SUMMARY_HEAD[] = "[The earlier part of this conversation was summarized to fit "
                                   "the context window. The summary:]\n\n";
static const char SUMMARY_TAIL[] = "\n\n[End of the summary; the conversation goes on from here.]";

#define COMPACT_TEXT_MAX                                                                           \
    4000 /* bytes of one text in the transcript: a longer one loses its middle */
#define COMPACT_RESULT_MAX 2000 /* ... of one tool result, or one call's arguments */

/* Appends s (n bytes), its middle left out when over cap (cut on UTF-8 boundaries). */
static gd_err put_capped(buf *b, const char *s, size_t n, size_t cap)
{
    if (n <= cap) return buf_append(b, s, n);
    size_t head = utf8_prefix(s, n, cap / 2), from = utf8_suffix(s, n, cap / 2);
    gd_err e = buf_append(b, s, head);
    if (!e) e = buf_printf(b, " [... %zu bytes left out ...] ", from - head);
    if (!e) e = buf_append(b, s + from, n - from);
    return e;
}

/* One message of the conversation as the transcript shows it, from its item skip on. */
static gd_err put_message(buf *b, json_t *m, size_t skip)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *it;
    size_t i;
    gd_err e = buf_printf(b, "[%s]:", role ? role : "?");
    json_array_foreach(json_object_get(m, "content"), i, it)
    {
        if (e) break;
        if (i < skip) continue;
        const char *type = content_type(it);
        const char *name = json_string_value(json_object_get(it, "name"));
        if (!strcmp(type, "text")) {
            const char *x = json_string_value(json_object_get(it, "text"));
            e = buf_puts(b, "\n");
            if (!e && x) e = put_capped(b, x, strlen(x), COMPACT_TEXT_MAX);
        } else if (!strcmp(type, "tool_request")) {
            char *args = jtext(json_object_get(it, "arguments"), NULL);
            e = buf_printf(b, "\n(calls the tool %s with ", name ? name : "?");
            if (!e)
                e = put_capped(b, args ? args : "{}", args ? strlen(args) : 2, COMPACT_RESULT_MAX);
            if (!e) e = buf_puts(b, ")");
            free(args);
        } else if (!strcmp(type, "tool_response")) {
            char *x = content_text(json_object_get(it, "content"), "\n");
            e = buf_printf(b, "\n(the tool %s %s:\n", name ? name : "?",
                           json_is_true(json_object_get(it, "is_error")) ? "failed" : "answered");
            if (!e && x) e = put_capped(b, x, strlen(x), COMPACT_RESULT_MAX);
            if (!e) e = buf_puts(b, ")");
            free(x);
        } else if (strcmp(type, "thinking") && strcmp(type, "redacted_thinking")) {
            e = buf_printf(b, "\n(%s)", type);
        }
    }
    if (!e) e = buf_puts(b, "\n\n");
    return e;
}

/* The request for a summary: one user message with the conversation before this reply as a
 * transcript. Past the budget (half the context limit, in bytes at four a token), the first
 * message (the summary of before, if any) and the latest that fit are kept, and how many were
 * left out between is said. Its cost is bounded by the budget, not the history's length. */
static json_t *compact_request(turn *t)
{
    if (!t->compact_budget) t->compact_budget = (size_t)t->context_limit * 2;
    size_t budget = t->compact_budget, used = 0, n = t->own_from, first_kept = n;
    buf head, b;
    buf_init(&head, BUF_CAP_REPLY_TEXT);
    buf_init(&b, BUF_CAP_REPLY_TEXT);
    buf *parts = calloc(n, sizeof *parts);
    gd_err e = parts ? GD_OK : GD_ENOMEM;
    /* The summary of before (the first item of the first message) goes whole. */
    if (!e && t->summary)
        e = buf_printf(&head, "[summary of what came before]:\n%s\n\n", t->summary);
    if (!e) e = put_message(&head, json_array_get(t->history, 0), t->summary ? 1 : 0);
    used = head.len;
    for (size_t i = n; !e && i-- > 1;) { /* the latest first, until the budget is spent */
        buf_init(&parts[i], BUF_CAP_REPLY_TEXT);
        e = put_message(&parts[i], json_array_get(t->history, i), 0);
        if (e || used + parts[i].len > budget) break;
        used += parts[i].len;
        first_kept = i;
    }
    if (!e) e = buf_puts(&b, COMPACT_ASK);
    if (!e) e = buf_append(&b, head.data, head.len);
    if (!e && first_kept > 1)
        e = buf_printf(&b, "[... %zu messages left out here ...]\n\n", first_kept - 1);
    for (size_t i = first_kept; !e && i < n; i++)
        e = buf_append(&b, parts[i].data, parts[i].len);
    if (!e) e = buf_puts(&b, COMPACT_ASK_END);
    json_t *req = e ? NULL
                    : json_pack("[{s:s, s:[{s:s, s:s%}]}]", "role", "user", "content", "type",
                                "text", "text", b.data, b.len);
    for (size_t i = 0; parts && i < n; i++)
        buf_free(&parts[i]);
    free(parts);
    buf_free(&head);
    buf_free(&b);
    return req;
}

/* Whether compaction is on and something before this reply can go. */
static bool can_compact(const turn *t)
{
    return t->compact_threshold > 0 && t->compact_threshold < 1 && !t->compact_failed &&
           t->own_from > 0 && t->fx->summarize;
}

/* Whether the conversation is over the threshold and something before this reply can go. */
static bool wants_compaction(const turn *t)
{
    if (!can_compact(t)) return false;
    return (double)tokens_of(t) > t->compact_threshold * (double)t->context_limit;
}

/* history[0] with the summary's text at the head of its content (a new message: the content is
 * shared with what is stored, and never changed), or a message of its own before it when it is
 * not the user's; history_bytes follows. */
static bool put_summary(turn *t)
{
    json_t *first = json_array_get(t->history, 0);
    if (!t->summary || !first) return true;
    buf b;
    buf_init(&b, BUF_CAP_REPLY_TEXT);
    gd_err e = buf_puts(&b, SUMMARY_HEAD);
    if (!e) e = buf_puts(&b, t->summary);
    if (!e) e = buf_puts(&b, SUMMARY_TAIL);
    json_t *content = e ? NULL : json_pack("[{s:s, s:s%}]", "type", "text", "text", b.data, b.len);
    buf_free(&b);
    if (!content) return false;
    const char *role = json_string_value(json_object_get(first, "role"));
    bool user = role && !strcmp(role, "user");
    size_t was = user ? jtext_size(first) + 1 : 0;
    if (user) json_array_extend(content, json_object_get(first, "content"));
    json_t *m = json_pack("{s:s, s:o}", "role", "user", "content", content);
    if (!m) return false;
    size_t now = jtext_size(m) + 1;
    if ((user ? json_array_set_new(t->history, 0, m) : json_array_insert_new(t->history, 0, m)))
        return false;
    t->history_bytes = t->history_bytes - was + now;
    if (!user) t->own_from++;
    return true;
}

static void first_round(turn *t);
static void start_round(turn *t);

static void start_compaction(turn *t, bool in_round)
{
    t->state = TURN_COMPACTING;
    t->compact_in_round = in_round;
    t->compact_from_tokens = tokens_of(t);
    buf_reset(&t->text);
    json_t *req = compact_request(t);
    if (!req || !t->fx->summarize(t, COMPACT_SYSTEM, req)) {
        json_decref(req);
        prov_result r = {.stop_reason = "error", .error = "out of memory asking for a summary"};
        turn_step(t, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = &r});
        return;
    }
    json_decref(req);
}

static void after_compaction(turn *t)
{
    if (t->compact_in_round)
        start_round(t);
    else
        first_round(t);
}

/* No summary: the reply goes on as it is when it still fits, else it ends saying why. */
static void compaction_failed(turn *t, const char *why)
{
    t->compact_failed = true;
    long tokens = tokens_of(t);
    if (tokens <= t->context_limit && !t->compact_refused) {
        after_compaction(t);
        return;
    }
    char msg[600];
    if (t->compact_refused) /* the user message of the first round is stored by now */
        snprintf(msg, sizeof msg,
                 "the provider refused the conversation (about %ld tokens by goosed's estimate) as "
                 "over the model's context window, and it could not be summarized: %s; %s",
                 tokens, why,
                 t->rounds > 0 ? "what ran is stored, and the reply ends here"
                               : "your message is stored, the reply ends here");
    else
        snprintf(msg, sizeof msg,
                 "the conversation is about %ld tokens, over the context limit of %ld "
                 "(context_limit in config.yaml, GOOSE_CONTEXT_LIMIT), and it could not be "
                 "summarized: %s; %s",
                 tokens, t->context_limit, why,
                 t->compact_in_round ? "what ran is stored, and the reply ends here"
                                     : "nothing was stored");
    turn_fail(t, "context_too_long", msg);
}

/* The summary's request is over, and no store of the user message is in flight. */
static void summary_over(turn *t, const prov_result *res)
{
    t->in_tok += res->input_tokens;
    t->out_tok += res->output_tokens;
    if (t->user_err) { /* the user message of a request sent again could not be stored */
        store_failed(t, t->user_err, t->user_msg);
        return;
    }
    if (t->cancel || !strcmp(res->stop_reason, "cancelled")) {
        complete(t, "cancelled");
        return;
    }
    if (res->too_long && t->compact_budget > 4096) { /* the transcript is over the window too */
        t->compact_budget /= 4;
        start_compaction(t, t->compact_in_round);
        return;
    }
    if (!strcmp(res->stop_reason, "error") || t->truncated || t->text.len == 0) {
        char why[sizeof res->error];
        snprintf(why, sizeof why, "%s",
                 !strcmp(res->stop_reason, "error") ? res->error
                 : t->truncated                     ? "the summary was too long"
                                                    : "the provider's summary was empty");
        t->truncated = false;
        buf_reset(&t->text);
        compaction_failed(t, why);
        return;
    }
    /* This reply's own messages, the summary at the head of the first. */
    json_t *h = json_array(), *m;
    size_t i, bytes = 2;
    char *summary = strdup(t->text.data);
    buf_reset(&t->text);
    json_array_foreach(t->history, i, m)
    {
        if (i < t->own_from) continue;
        json_array_append(h, m);
        bytes += jtext_size(m) + 1;
    }
    if (!summary || json_array_size(h) != json_array_size(t->history) - t->own_from) {
        free(summary);
        json_decref(h);
        compaction_failed(t, "out of memory");
        return;
    }
    json_decref(t->history);
    t->history = h;
    t->history_bytes = bytes;
    t->own_from = 0;
    free(t->summary);
    t->summary = summary;
    if (!put_summary(t)) {
        turn_fail(t, "internal", "out of memory putting the summary in place");
        return;
    }
    t->fx->save_summary(t, t->summary, t->stored_before);
    t->fx->publish(
        t, "context_compacted",
        json_pack("{s:I, s:I, s:I, s:I}", "summarized_messages", (json_int_t)t->stored_before,
                  "tokens_before", (json_int_t)t->compact_from_tokens, "tokens_after",
                  (json_int_t)tokens_of(t), "context_limit", (json_int_t)t->context_limit));
    after_compaction(t);
}

/* The summary's request ended; after a refusal in the first round the user message may still
 * be on its way to the store: the turn waits for it, as a round's end does. */
static void on_summary(turn *t, const turn_ev *ev)
{
    if (t->user_pending) {
        t->last = *ev->res;
        t->round_over = true; /* summary_over runs once the user message is stored */
        return;
    }
    summary_over(t, ev->res);
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
    if (t->rounds > 0 && wants_compaction(t)) {
        start_compaction(t, true);
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
                      : ev->err == GD_EINVAL ? "provider_not_configured" /* the session's own */
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
    t->stored_before = ev->stored;
    t->own_from = json_array_size(t->history);
    if (ev->summary && !(t->summary = strdup(ev->summary))) {
        turn_fail(t, "internal", "out of memory reading the conversation's summary");
        return;
    }
    if (!history_add(t, "user", t->user) || !put_summary(t)) {
        turn_fail(t, "internal", "out of memory preparing the history");
        return;
    }
    if (wants_compaction(t)) {
        start_compaction(t, false);
        return;
    }
    first_round(t);
}

static void first_round(turn *t)
{
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
            if ((t->state == TURN_STREAMING && !t->round_over) || t->state == TURN_COMPACTING)
                t->fx->cancel_stream(t);
        }
        if (t->round_over) {
            t->round_over = false;
            if (t->state == TURN_COMPACTING)
                summary_over(t, &t->last);
            else
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
    /* Refused as over the model's window before anything of it came: compacted, sent again. */
    if (ev->res->too_long && can_compact(t) && !t->text.len && !t->thinking.len &&
        !json_array_size(t->content)) {
        t->rounds--;
        t->compact_refused = true;
        start_compaction(t, true);
        return;
    }
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
        if ((t->state == TURN_STREAMING && !t->round_over) || t->state == TURN_COMPACTING)
            t->fx->cancel_stream(t);
        if (t->state == TURN_RUNNING_TOOLS) t->fx->cancel_tool(t);
        if (t->state == TURN_AWAITING_APPROVAL) run_next_tool(t); /* answers it: cancelled */
        return;
    }
    switch (t->state) {
    case TURN_LOADING:
        if (ev->kind == TURN_EV_HISTORY) on_history(t, ev);
        return;
    case TURN_COMPACTING:
        if (ev->kind == TURN_EV_PROVIDER) on_summary(t, ev);
        if (ev->kind == TURN_EV_STORED) on_stored(t, ev); /* the user's, after a refusal */
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
    if (t->state == TURN_COMPACTING) { /* the summary: kept, not shown */
        if (!t->truncated && buf_append(&t->text, s, n) != GD_OK) t->truncated = true;
        return;
    }
    if (t->thinking.len) flush_text(t);
    keep_piece(t, &t->text, "text", s, n);
}

void turn_on_thinking(turn *t, const char *s, size_t n)
{
    if (t->state == TURN_COMPACTING) return;
    keep_piece(t, &t->thinking, "thinking", s, n);
}

void turn_on_signature(turn *t, const char *s)
{
    if (t->state == TURN_COMPACTING) return;
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
    if (t->state == TURN_COMPACTING) return; /* none was offered */
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
