/* Unit tests for the turn's state machine (agent/turn.c, included): its effects are recorded by
 * a fake, and the test plays the store, the provider and the tools by stepping events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/turn.c"

/* What the turn asked for, in order, as short strings ("store:user", "stream", ...). */
typedef struct {
    char log[64][48];
    int n;
    json_t *last_data;
    char last_event[32];
    bool stream_ok;
    json_t *streamed_history; /* a copy of the history at each stream */
    turn_permission policy;   /* what f_permission answers (TURN_ALLOW by memset: 0) */
    json_t *confirmation;     /* the last tool_confirmation's data */
    json_t *summarized;       /* what the last request for a summary sent */
    json_t *compacted;        /* the last context_compacted event's data */
} rec;

/* Notes "what" or "what:arg". */
static void note(turn *t, const char *what, const char *arg)
{
    rec *r = t->owner;
    snprintf(r->log[r->n++], sizeof r->log[0], "%s%s%s", what, *arg ? ":" : "", arg);
}

static void f_load(turn *t)
{
    note(t, "load", "");
}
static void f_store(turn *t, turn_store_kind kind, const char *role, json_t *content, long in,
                    long out, char id[UUID_STR_LEN])
{
    static const char *names[] = {"user", "reply", "results"};
    note(t, "store", names[kind]);
    snprintf(id, UUID_STR_LEN, "id-%s", names[kind]);
}
static void f_update(turn *t, turn_store_kind kind, json_t *content, const char *id)
{
    static const char *names[] = {"user", "reply", "results"};
    note(t, "update", names[kind]);
    assert_string_equal(id, "id-results");
}
static bool f_stream(turn *t)
{
    rec *r = t->owner;
    note(t, "stream", "");
    json_decref(r->streamed_history);
    r->streamed_history = json_deep_copy(t->history);
    return r->stream_ok;
}
static bool f_summarize(turn *t, const char *system, json_t *messages)
{
    rec *r = t->owner;
    note(t, "summarize", "");
    assert_non_null(strstr(system, "summar"));
    json_decref(r->summarized);
    r->summarized = json_deep_copy(messages);
    return r->stream_ok;
}
static void f_save_summary(turn *t, const char *text, long count)
{
    char n[24];
    snprintf(n, sizeof n, "%ld", count);
    note(t, "save_summary", n);
    assert_string_equal(text, t->summary);
}
static void f_cancel_stream(turn *t)
{
    note(t, "cancel_stream", "");
}
static bool f_call_tool(turn *t, const char *name, json_t *args)
{
    note(t, "tool", name);
    return true;
}
static void f_cancel_tool(turn *t)
{
    note(t, "cancel_tool", "");
}
static turn_permission f_permission(turn *t, json_t *req)
{
    rec *r = t->owner;
    note(t, "permission", json_string_value(json_object_get(req, "name")));
    return r->policy;
}
#define PERMISSION_FX f_permission
static void f_chunk(turn *t, const char *kind, const char *s, size_t n)
{
    note(t, "chunk", kind);
}
static void f_publish(turn *t, const char *event, json_t *data)
{
    rec *r = t->owner;
    note(t, "publish", event);
    if (!strcmp(event, "tool_confirmation")) {
        json_decref(r->confirmation);
        r->confirmation = data;
        return;
    }
    if (!strcmp(event, "context_compacted")) {
        json_decref(r->compacted);
        r->compacted = data;
        return;
    }
    json_decref(data);
}
static void f_end(turn *t, const char *event, json_t *data)
{
    rec *r = t->owner;
    note(t, "end", event);
    json_decref(r->last_data);
    r->last_data = data;
    snprintf(r->last_event, sizeof r->last_event, "%s", event);
}

static const turn_fx fx = {.load_history = f_load,
                           .store = f_store,
                           .update = f_update,
                           .stream = f_stream,
                           .summarize = f_summarize,
                           .save_summary = f_save_summary,
                           .cancel_stream = f_cancel_stream,
                           .call_tool = f_call_tool,
                           .cancel_tool = f_cancel_tool,
                           .permission = PERMISSION_FX,
                           .chunk = f_chunk,
                           .publish = f_publish,
                           .end = f_end};

static turn *new_turn(rec *r)
{
    memset(r, 0, sizeof *r);
    r->stream_ok = true;
    turn *t = turn_new(&fx, r, "hello", 10, 100000);
    assert_non_null(t);
    turn_begin(t);
    return t;
}

static void done(turn *t, rec *r)
{
    turn_free(t);
    json_decref(r->last_data);
    json_decref(r->streamed_history);
    json_decref(r->confirmation);
    json_decref(r->summarized);
    json_decref(r->compacted);
}

/* The stored messages msgs (consumed) arrive, prepared as the agent's worker prepares them. */
static void history(turn *t, json_t *msgs)
{
    size_t bytes = 0;
    json_t *h = turn_prepare_history(msgs, 0, &bytes);
    json_decref(msgs);
    assert_non_null(h);
    turn_step(t, &(turn_ev){.kind = TURN_EV_HISTORY, .history = h, .history_bytes = bytes});
}
static void stored(turn *t, turn_store_kind k, gd_err e)
{
    turn_step(t, &(turn_ev){.kind = TURN_EV_STORED, .store = k, .err = e, .msg = "disk full"});
}
static void provider(turn *t, const char *stop)
{
    prov_result r = {0};
    snprintf(r.stop_reason, sizeof r.stop_reason, "%s", stop);
    r.input_tokens = 3;
    r.output_tokens = 4;
    turn_step(t, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = &r});
}
static void tool_done(turn *t, const char *text, bool is_error)
{
    turn_step(t, &(turn_ev){.kind = TURN_EV_TOOL,
                            .content = json_pack("[{s:s, s:s}]", "type", "text", "text", text),
                            .is_error = is_error});
}

/* A tool's result of n bytes of c. */
static void tool_done_of(turn *t, char c, size_t n)
{
    char *text = malloc(n + 1);
    memset(text, c, n);
    text[n] = '\0';
    tool_done(t, text, false);
    free(text);
}

/* The provider's tool call (args consumed: the turn only borrows them). */
static void tool_call(turn *t, const char *id, const char *name, json_t *args)
{
    turn_on_tool_call(t, id, name, args);
    json_decref(args);
}

/* A turn (max_rounds, context_limit) whose first round asked for n tools (c1 x__a, c2 x__b, ...),
 * stored: the first runs. */
static turn *turn_at_tools(rec *r, int n, long max_rounds, long context_limit)
{
    memset(r, 0, sizeof *r);
    r->stream_ok = true;
    turn *t = turn_new(&fx, r, "hello", max_rounds, context_limit);
    assert_non_null(t);
    turn_begin(t);
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    for (int i = 0; i < n; i++) {
        char id[8], name[8];
        snprintf(id, sizeof id, "c%d", i + 1);
        snprintf(name, sizeof name, "x__%c", 'a' + i);
        tool_call(t, id, name, json_object());
    }
    provider(t, "tool_use");
    stored(t, TURN_STORE_REPLY, GD_OK);
    return t;
}

static int count(rec *r, const char *what)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += !strcmp(r->log[i], what);
    return n;
}

static int find(rec *r, const char *what)
{
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->log[i], what)) return i;
    return -1;
}

/* A text reply: the user message is stored while the request streams; the reply is stored
 * only after both, and message_complete comes after that. */
static void test_text_reply(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    assert_int_equal(t->state, TURN_LOADING);
    assert_string_equal(r.log[0], "load");
    history(t, json_array());
    assert_int_equal(t->state, TURN_STREAMING);
    assert_true(find(&r, "store:user") >= 0 && find(&r, "stream") > find(&r, "store:user"));
    assert_int_equal(json_array_size(r.streamed_history), 1);
    turn_on_text(t, "Hi", 2);
    turn_on_text(t, " there", 6);
    provider(t, "end_turn");
    /* the user message is not stored yet: the round waits */
    assert_int_equal(find(&r, "store:reply"), -1);
    stored(t, TURN_STORE_USER, GD_OK);
    assert_int_equal(t->state, TURN_STORING_REPLY);
    assert_true(find(&r, "store:reply") >= 0);
    assert_int_equal(find(&r, "end:message_complete"), -1);
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_int_equal(t->state, TURN_DONE);
    assert_string_equal(r.last_event, "message_complete");
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")), "end_turn");
    assert_string_equal(json_string_value(json_object_get(r.last_data, "message_id")), "id-reply");
    json_t *c = json_array_get(t->content, 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "Hi there");
    done(t, &r);
}

/* A tool round: the reply with the call is stored, the tool runs, its result is stored, and the
 * next request carries both. */
static void test_tool_round(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    tool_call(t, "call_1", "developer__shell", json_pack("{s:s}", "command", "ls"));
    provider(t, "tool_use");
    assert_int_equal(t->state, TURN_STORING_REPLY);
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_int_equal(t->state, TURN_RUNNING_TOOLS);
    assert_true(find(&r, "tool:developer__shell") >= 0);
    tool_done(t, "a.txt", false);
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    assert_int_equal(find(&r, "publish:tool_result"), -1); /* not before it is stored */
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_true(find(&r, "publish:tool_result") >= 0);
    assert_int_equal(t->state, TURN_STREAMING);
    /* user, assistant (tool request), user (tool response) */
    assert_int_equal(json_array_size(r.streamed_history), 3);
    json_t *res =
        json_array_get(json_object_get(json_array_get(r.streamed_history, 2), "content"), 0);
    assert_string_equal(json_string_value(json_object_get(res, "type")), "tool_response");
    assert_string_equal(json_string_value(json_object_get(res, "id")), "call_1");
    turn_on_text(t, "done", 4);
    provider(t, "end_turn");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_string_equal(r.last_event, "message_complete");
    assert_int_equal(t->rounds, 2);
    done(t, &r);
}

/* Two tools: each result is stored (the second as the new content of the first's message)
 * before its tool_result is published, so a result a client saw survives a crash; the next
 * request waits for both. A failed store publishes nothing more and ends the turn. */
static void test_results_stored_as_they_come(void **state)
{
    rec r;
    turn *t = turn_at_tools(&r, 2, 10, 100000);
    tool_done(t, "one", false);
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    assert_int_equal(find(&r, "store:results"), r.n - 1);
    assert_int_equal(find(&r, "tool:x__b"), -1); /* the next waits for the store */
    stored(t, TURN_STORE_RESULTS, GD_OK);
    int first = find(&r, "publish:tool_result");
    assert_true(first >= 0 && find(&r, "tool:x__b") > first);
    tool_done(t, "two", false);
    assert_string_equal(r.log[r.n - 1], "update:results");
    assert_int_equal(json_array_size(t->results), 2);
    assert_int_equal(count(&r, "publish:tool_result"), 1);
    assert_int_equal(count(&r, "stream"), 1); /* only the first round's so far */
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_int_equal(count(&r, "publish:tool_result"), 2);
    assert_int_equal(t->state, TURN_STREAMING);
    assert_int_equal(
        json_array_size(json_object_get(json_array_get(r.streamed_history, 2), "content")), 2);
    done(t, &r);

    /* the second store fails: its tool_result is never published */
    t = turn_at_tools(&r, 2, 10, 100000);
    tool_done(t, "one", false);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    tool_done(t, "two", false);
    stored(t, TURN_STORE_RESULTS, GD_ESTORE);
    assert_int_equal(t->state, TURN_DONE);
    assert_string_equal(r.last_event, "error");
    assert_int_equal(count(&r, "publish:tool_result"), 1);
    done(t, &r);
}

/* Cancel during a tool: the tool is cancelled, its result stored, and the turn completes as
 * cancelled without another request. Every tool request gets a result. */
static void test_cancel_during_tool(void **state)
{
    rec r;
    turn *t = turn_at_tools(&r, 2, 10, 100000);
    turn_step(t, &(turn_ev){.kind = TURN_EV_CANCEL});
    assert_true(find(&r, "cancel_tool") >= 0);
    tool_done(t, "killed", true);
    /* the second never ran, but it has a result */
    assert_int_equal(find(&r, "tool:x__b"), -1);
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    assert_int_equal(json_array_size(t->results), 2);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")),
                        "cancelled");
    int streams = 0;
    for (int i = 0; i < r.n; i++)
        streams += !strcmp(r.log[i], "stream");
    assert_int_equal(streams, 1); /* no request after the cancel */
    done(t, &r);
}

/* The user message cannot be stored: the stream is cancelled and the turn ends with the
 * store's error, storing nothing else. */
static void test_user_store_fails(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_ESTORE);
    assert_true(find(&r, "cancel_stream") >= 0);
    provider(t, "cancelled");
    assert_string_equal(r.last_event, "error");
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")),
                        "storage_unavailable");
    assert_int_equal(find(&r, "store:reply"), -1);
    done(t, &r);
}

/* The session is deleted mid-reply: session_gone, not storage_unavailable. */
static void test_session_gone(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    turn_on_text(t, "x", 1);
    provider(t, "end_turn");
    stored(t, TURN_STORE_REPLY, GD_ENOTFOUND);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")), "session_gone");
    done(t, &r);
}

/* A provider error with nothing received: provider_error, nothing stored but the user message. */
static void test_provider_error(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    provider(t, "error");
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")), "provider_error");
    assert_int_equal(find(&r, "store:reply"), -1);
    done(t, &r);
}

/* A history over the context limit is refused before anything is stored or sent. */
static void test_context_limit(void **state)
{
    rec r;
    memset(&r, 0, sizeof r);
    turn *t = turn_new(&fx, &r, "hello", 10, 1000);
    turn_begin(t);
    json_t *big = json_array();
    char *text = malloc(8001);
    memset(text, 'a', 8000);
    text[8000] = '\0';
    json_array_append_new(big, json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content", "type",
                                         "text", "text", text));
    free(text);
    history(t, big);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")),
                        "context_too_long");
    assert_non_null(
        strstr(json_string_value(json_object_get(r.last_data, "error")), "start a new session"));
    assert_int_equal(find(&r, "store:user"), -1);
    assert_int_equal(find(&r, "stream"), -1);
    done(t, &r);

    /* a tool's result pushes it over in the next round: the turn ends saying what is stored */
    t = turn_at_tools(&r, 1, 10, 1000);
    tool_done_of(t, 'b', 5000);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")),
                        "context_too_long");
    assert_non_null(
        strstr(json_string_value(json_object_get(r.last_data, "error")), "what ran is stored"));
    assert_int_equal(t->rounds, 1);
    done(t, &r);

    /* the tools alone fill it: a new session would not help, and the message says what would */
    memset(&r, 0, sizeof r);
    t = turn_new(&fx, &r, "hello", 10, 1000);
    t->overhead_bytes = 3000 * 4;
    turn_begin(t);
    history(t, json_array());
    const char *msg = json_string_value(json_object_get(r.last_data, "error"));
    assert_non_null(strstr(msg, "tool definitions alone are about 3000"));
    assert_null(strstr(msg, "start a new session"));
    done(t, &r);
}

/* A stored message of n bytes of c. */
static json_t *filled(const char *role, char c, size_t n)
{
    char *text = malloc(n + 1);
    memset(text, c, n);
    text[n] = '\0';
    json_t *m =
        json_pack("{s:s, s:[{s:s, s:s}]}", "role", role, "content", "type", "text", "text", text);
    free(text);
    return m;
}

/* A turn (context_limit, compacting past half of it) after two stored messages of `each` bytes. */
static turn *turn_after_two(rec *r, long context_limit, size_t each)
{
    memset(r, 0, sizeof *r);
    r->stream_ok = true;
    turn *t = turn_new(&fx, r, "hello", 10, context_limit);
    t->compact_threshold = 0.5;
    turn_begin(t);
    json_t *msgs = json_pack("[o, o]", filled("user", 'q', each), filled("assistant", 'r', each));
    size_t bytes = 0;
    json_t *h = turn_prepare_history(msgs, 0, &bytes);
    json_decref(msgs);
    turn_step(
        t, &(turn_ev){.kind = TURN_EV_HISTORY, .history = h, .history_bytes = bytes, .stored = 2});
    return t;
}

/* Compaction before a later round: the tool's result pushes the conversation past the threshold;
 * what came before this reply is summarized (not this reply's own messages), the summary heads
 * the reply's first message in the next request, is saved for the 2 messages it stands for, and
 * the reply goes on. */
static void test_compaction_before_a_round(void **state)
{
    rec r;
    turn *t = turn_after_two(&r, 2000, 1200); /* under the threshold as it starts */
    assert_int_equal(find(&r, "summarize"), -1);
    assert_int_equal(t->state, TURN_STREAMING);
    stored(t, TURN_STORE_USER, GD_OK);
    tool_call(t, "c1", "x__a", json_object());
    provider(t, "tool_use");
    stored(t, TURN_STORE_REPLY, GD_OK);
    tool_done_of(t, 'b', 3000);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_int_equal(t->state, TURN_COMPACTING);
    assert_true(find(&r, "summarize") > find(&r, "store:results"));
    char *asked = jtext(r.summarized, NULL);
    assert_non_null(strstr(asked, "qqqq"));
    assert_non_null(strstr(asked, "rrrr"));
    assert_null(strstr(asked, "bbbb")); /* this reply's own messages stay whole */
    free(asked);
    turn_on_text(t, "SUMMARY", 7); /* kept, not shown */
    assert_int_equal(count(&r, "chunk:text"), 0);
    provider(t, "end_turn");
    assert_int_equal(t->state, TURN_STREAMING);
    assert_true(find(&r, "save_summary:2") >= 0);
    assert_true(find(&r, "publish:context_compacted") > find(&r, "save_summary:2"));
    assert_true(find(&r, "stream") < find(&r, "summarize")); /* the first round's only */
    assert_int_equal(json_integer_value(json_object_get(r.compacted, "summarized_messages")), 2);
    assert_true(json_integer_value(json_object_get(r.compacted, "tokens_after")) <
                json_integer_value(json_object_get(r.compacted, "tokens_before")));
    /* the request: hello (headed by the summary), the call, its result */
    assert_int_equal(json_array_size(r.streamed_history), 3);
    json_t *first = json_object_get(json_array_get(r.streamed_history, 0), "content");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_array_get(first, 0), "text")), "SUMMARY"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(first, 1), "text")),
                        "hello");
    char *sent = jtext(r.streamed_history, NULL);
    assert_null(strstr(sent, "qqqq"));
    free(sent);
    turn_on_text(t, "done", 4);
    provider(t, "end_turn");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_string_equal(r.last_event, "message_complete");
    assert_int_equal(count(&r, "summarize"), 1);
    done(t, &r);
}

/* A cancel while the summary is asked for stops that request and ends the reply, nothing
 * stored; a summary that fails while the conversation still fits lets the reply go on whole. */
static void test_compaction_cancel_and_failure(void **state)
{
    rec r;
    turn *t = turn_after_two(&r, 1000, 1200);
    assert_int_equal(t->state, TURN_COMPACTING);
    turn_step(t, &(turn_ev){.kind = TURN_EV_CANCEL});
    assert_true(find(&r, "cancel_stream") > find(&r, "summarize"));
    provider(t, "cancelled");
    assert_string_equal(r.last_event, "message_complete");
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")),
                        "cancelled");
    assert_int_equal(find(&r, "store:user"), -1);
    assert_int_equal(find(&r, "save_summary:2"), -1);
    done(t, &r);

    /* past the threshold, under the limit: the summary fails, the request goes out whole */
    t = turn_after_two(&r, 1000, 1000);
    assert_int_equal(t->state, TURN_COMPACTING);
    provider(t, "error");
    assert_int_equal(t->state, TURN_STREAMING);
    assert_int_equal(json_array_size(r.streamed_history), 3);
    assert_int_equal(find(&r, "publish:context_compacted"), -1);
    stored(t, TURN_STORE_USER, GD_OK);
    provider(t, "end_turn");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_string_equal(r.last_event, "message_complete");
    assert_int_equal(count(&r, "summarize"), 1);
    done(t, &r);
}

/* The provider refuses the request as over the model's window. */
static void refused(turn *t)
{
    prov_result r = {.stop_reason = "error", .http_status = 400, .too_long = true};
    snprintf(r.error, sizeof r.error, "prompt is too long");
    turn_step(t, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = &r});
}

/* A request refused as too long before anything of it came, under goosed's own threshold:
 * compacted and sent again, the round not counted twice; the user message stored meanwhile is
 * waited for. When the summary fails too, the reply ends saying so, once the user message is. */
static void test_compaction_after_a_refusal(void **state)
{
    rec r;
    turn *t = turn_after_two(&r, 100000, 1200);
    assert_int_equal(t->state, TURN_STREAMING);
    refused(t);
    assert_int_equal(t->state, TURN_COMPACTING);
    assert_int_equal(t->rounds, 0);
    stored(t, TURN_STORE_USER, GD_OK); /* while the summary is asked for */
    turn_on_text(t, "SUMMARY", 7);
    provider(t, "end_turn");
    assert_int_equal(count(&r, "stream"), 2);
    assert_int_equal(t->rounds, 1);
    assert_int_equal(json_array_size(r.streamed_history), 1);
    provider(t, "end_turn");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_string_equal(r.last_event, "message_complete");
    assert_int_equal(count(&r, "store:user"), 1);
    done(t, &r);

    t = turn_after_two(&r, 100000, 1200);
    refused(t);
    provider(t, "error"); /* the summary fails while the user message is still being stored */
    assert_int_equal(t->state, TURN_COMPACTING);
    assert_int_equal(find(&r, "end:error"), -1);
    stored(t, TURN_STORE_USER, GD_OK);
    assert_string_equal(r.last_event, "error");
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")),
                        "context_too_long");
    assert_non_null(strstr(json_string_value(json_object_get(r.last_data, "error")),
                           "refused the conversation"));
    assert_int_equal(count(&r, "stream"), 1); /* not sent again as it was */
    done(t, &r);
}

/* A request for a summary that is itself over the model's window is asked again with a quarter
 * of the transcript, down to a floor; then the summary is taken. */
static void test_compaction_request_too_long(void **state)
{
    rec r;
    turn *t = turn_after_two(&r, 100000, 3000); /* under the threshold: sent whole */
    refused(t);                                 /* the reply's request: too long for the model */
    assert_int_equal(t->state, TURN_COMPACTING);
    stored(t, TURN_STORE_USER, GD_OK);
    assert_int_equal(t->compact_budget, 200000); /* half the limit, in bytes */
    size_t first = jtext_size(r.summarized);
    for (size_t want = 50000; want >= 3125; want /= 4) {
        refused(t); /* the summary's request too: asked again with a quarter */
        assert_int_equal(t->state, TURN_COMPACTING);
        assert_int_equal(t->compact_budget, want);
    }
    assert_int_equal(count(&r, "summarize"), 4);
    assert_true(jtext_size(r.summarized) < first); /* the older of the two messages left out */
    refused(t); /* under the floor: no smaller request; the summary is not had */
    assert_int_equal(count(&r, "summarize"), 4);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")),
                        "context_too_long");
    done(t, &r);
}

/* max_turns: the rounds stop at the limit with stop_reason max_turns. */
static void test_max_turns(void **state)
{
    rec r;
    turn *t = turn_at_tools(&r, 1, 1, 100000);
    tool_done(t, "ok", false);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")),
                        "max_turns");
    done(t, &r);
}

/* Cancel while the history loads: nothing is stored or sent. */
static void test_cancel_while_loading(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    turn_step(t, &(turn_ev){.kind = TURN_EV_CANCEL});
    history(t, json_array());
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")),
                        "cancelled");
    assert_int_equal(find(&r, "store:user"), -1);
    done(t, &r);
}

/* A request that cannot start (out of memory) ends as a provider error, after the user
 * message is stored. */
static void test_stream_cannot_start(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    r.stream_ok = false;
    history(t, json_array());
    assert_int_equal(find(&r, "end:error"), -1);
    stored(t, TURN_STORE_USER, GD_OK);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "code")), "provider_error");
    done(t, &r);
}

/* A history whose last tool call was never answered (its results were not stored): the request
 * answers it, so the provider accepts the conversation. */
static void test_unanswered_call_in_history(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    json_t *h =
        json_pack("[{s:s, s:[{s:s, s:s}]}, {s:s, s:[{s:s, s:s, s:s, s:{}}]}]", "role", "user",
                  "content", "type", "text", "text", "run it", "role", "assistant", "content",
                  "type", "tool_request", "id", "c9", "name", "x__a", "arguments");
    history(t, h);
    assert_int_equal(t->state, TURN_STREAMING);
    json_t *sent = r.streamed_history;
    /* user, assistant (the call), an answer for it, then the new user message */
    json_t *answer = NULL, *m;
    size_t i;
    json_array_foreach(sent, i, m)
    {
        json_t *it = json_array_get(json_object_get(m, "content"), 0);
        if (!strcmp(json_string_value(json_object_get(it, "type")), "tool_response")) answer = it;
    }
    assert_non_null(answer);
    assert_string_equal(json_string_value(json_object_get(answer, "id")), "c9");
    assert_true(json_is_true(json_object_get(answer, "is_error")));
    json_t *last = json_array_get(
        json_object_get(json_array_get(sent, json_array_size(sent) - 1), "content"), 0);
    assert_string_equal(json_string_value(json_object_get(last, "text")), "hello");
    stored(t, TURN_STORE_USER, GD_OK);
    provider(t, "cancelled");
    done(t, &r);
}

/* A cancel in the middle of a round with text and a tool call: the text is stored, the call
 * (which will not run) is not, and the turn completes as cancelled. */
static void test_cancel_keeps_partial_text(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    turn_on_text(t, "half an ans", 11);
    tool_call(t, "c1", "x__a", json_object());
    turn_step(t, &(turn_ev){.kind = TURN_EV_CANCEL});
    assert_true(find(&r, "cancel_stream") >= 0);
    provider(t, "cancelled");
    assert_int_equal(t->state, TURN_STORING_REPLY);
    assert_int_equal(json_array_size(t->content), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(t->content, 0), "type")),
                        "text");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")),
                        "cancelled");
    assert_int_equal(find(&r, "tool:x__a"), -1);
    done(t, &r);
}

/* Two tool calls that must ask: the first is allowed and runs, the second denied and answered
 * "denied by the user" without running; both results are stored, and the turn goes on. */
static void test_approval_allow_and_deny(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    r.policy = TURN_ASK;
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    tool_call(t, "c1", "x__write", json_pack("{s:s}", "path", "a"));
    tool_call(t, "c2", "x__delete", json_object());
    provider(t, "tool_use");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_int_equal(t->state, TURN_AWAITING_APPROVAL);
    assert_string_equal(turn_pending_confirmation(t), "c1");
    assert_string_equal(json_string_value(json_object_get(r.confirmation, "tool")), "x__write");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.confirmation, "arguments"), "path")),
        "a");
    assert_int_equal(json_array_size(json_object_get(r.confirmation, "choices")), 5);
    assert_int_equal(find(&r, "tool:x__write"), -1); /* nothing runs before the answer */
    turn_step(t, &(turn_ev){.kind = TURN_EV_ANSWER, .answer = TURN_ALLOW});
    assert_int_equal(t->state, TURN_RUNNING_TOOLS);
    assert_true(find(&r, "tool:x__write") >= 0);
    tool_done(t, "written", false);
    /* its result is stored before the next question */
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_int_equal(t->state, TURN_AWAITING_APPROVAL);
    assert_string_equal(turn_pending_confirmation(t), "c2");
    turn_step(t, &(turn_ev){.kind = TURN_EV_ANSWER, .answer = TURN_DENY});
    assert_int_equal(find(&r, "tool:x__delete"), -1);
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    assert_true(find(&r, "update:results") >= 0);
    json_t *denied = json_array_get(t->results, 1);
    assert_true(json_is_true(json_object_get(denied, "is_error")));
    char *text = content_text(json_object_get(denied, "content"), "");
    assert_string_equal(text, "denied by the user");
    free(text);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_int_equal(t->state, TURN_STREAMING); /* the model sees both results */
    done(t, &r);
}

/* A cancel while a question waits answers every request (cancelled) and ends the turn. */
static void test_approval_cancelled(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    r.policy = TURN_ASK;
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    tool_call(t, "c1", "x__a", json_object());
    tool_call(t, "c2", "x__b", json_object());
    provider(t, "tool_use");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_int_equal(t->state, TURN_AWAITING_APPROVAL);
    turn_step(t, &(turn_ev){.kind = TURN_EV_CANCEL});
    assert_null(turn_pending_confirmation(t));
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    assert_int_equal(json_array_size(t->results), 2);
    assert_int_equal(find(&r, "tool:x__a"), -1);
    /* an answer arriving late changes nothing */
    turn_step(t, &(turn_ev){.kind = TURN_EV_ANSWER, .answer = TURN_ALLOW});
    assert_int_equal(find(&r, "tool:x__a"), -1);
    stored(t, TURN_STORE_RESULTS, GD_OK);
    assert_string_equal(json_string_value(json_object_get(r.last_data, "stop_reason")),
                        "cancelled");
    done(t, &r);
}

/* A policy that refuses: no question, a denial result, the tool never runs. */
static void test_policy_denies(void **state)
{
    rec r;
    turn *t = new_turn(&r);
    r.policy = TURN_DENY;
    history(t, json_array());
    stored(t, TURN_STORE_USER, GD_OK);
    tool_call(t, "c1", "x__a", json_object());
    provider(t, "tool_use");
    stored(t, TURN_STORE_REPLY, GD_OK);
    assert_int_equal(find(&r, "publish:tool_confirmation"), -1);
    assert_int_equal(find(&r, "tool:x__a"), -1);
    assert_int_equal(t->state, TURN_STORING_RESULTS);
    assert_true(json_is_true(json_object_get(json_array_get(t->results, 0), "is_error")));
    stored(t, TURN_STORE_RESULTS, GD_OK);
    done(t, &r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_reply),
        cmocka_unit_test(test_tool_round),
        cmocka_unit_test(test_results_stored_as_they_come),
        cmocka_unit_test(test_cancel_during_tool),
        cmocka_unit_test(test_user_store_fails),
        cmocka_unit_test(test_session_gone),
        cmocka_unit_test(test_provider_error),
        cmocka_unit_test(test_context_limit),
        cmocka_unit_test(test_max_turns),
        cmocka_unit_test(test_cancel_while_loading),
        cmocka_unit_test(test_stream_cannot_start),
        cmocka_unit_test(test_unanswered_call_in_history),
        cmocka_unit_test(test_cancel_keeps_partial_text),
        cmocka_unit_test(test_approval_allow_and_deny),
        cmocka_unit_test(test_approval_cancelled),
        cmocka_unit_test(test_policy_denies),
        cmocka_unit_test(test_compaction_before_a_round),
        cmocka_unit_test(test_compaction_cancel_and_failure),
        cmocka_unit_test(test_compaction_after_a_refusal),
        cmocka_unit_test(test_compaction_request_too_long),
    };
    return cmocka_run_group_tests_name("turn", tests, NULL, NULL);
}
