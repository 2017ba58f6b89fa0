/* turn: one reply, as an explicit state machine with one transition function. The agent's loop
 * thread owns every turn: the store, the provider client and the extensions report to it as
 * events (turn_step), and the turn acts on the world only through its effects (turn_fx), which
 * the agent implements and unit tests replace.
 *
 *   LOADING ──history──► STREAMING ──provider done──► STORING_REPLY ──stored──┬─► DONE
 *   (the user message is stored while the first     (no tool calls, error,    │
 *    request streams; the round's end waits for it)  cancelled, max_turns)    ▼
 *                    ▲                                                 RUNNING_TOOLS ◄─┐
 *                    └──── all stored ◄── STORING_RESULTS ◄─► each tool done   │ answer
 *                                                     (a tool that must ask) AWAITING_APPROVAL
 *
 * Every message is stored before the event that completes it is published; a round's tool
 * results form one message, stored anew as each tool ends, before its tool_result.
 *
 * Compaction: when the conversation passes compact_threshold of the context limit, as the reply
 * starts or before a later round, and something said before this reply can go, the turn first
 * asks the provider to summarize it (COMPACTING, no tools), then goes on with the summary in its
 * place at the head of this reply's first message. The summary is stored with the session (the
 * messages it stands for stay, for the user and the API) and taken up by the replies after. A
 * request the provider refuses as over the model's window (before anything of it streamed) is
 * compacted in the same way and sent again: the estimate of four bytes a token can be low. */
#ifndef GD_TURN_H
#define GD_TURN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/ids.h"
#include "providers/provider.h"

typedef enum {
    TURN_LOADING,           /* the history is being read (off the loop, on a worker) */
    TURN_COMPACTING,        /* the provider summarizes the conversation before this reply */
    TURN_STREAMING,         /* a provider request runs (the first one beside the user message) */
    TURN_STORING_REPLY,     /* the assistant message is being stored */
    TURN_RUNNING_TOOLS,     /* its tool calls run, one after the other */
    TURN_AWAITING_APPROVAL, /* a tool_confirmation is published: waiting for the user's answer */
    TURN_STORING_RESULTS,   /* their results are being stored */
    TURN_DONE,              /* the last event is published; the agent frees the turn */
} turn_state;

/* Which write a store completion is for. */
typedef enum { TURN_STORE_USER, TURN_STORE_REPLY, TURN_STORE_RESULTS } turn_store_kind;

typedef enum {
    TURN_EV_HISTORY,  /* history (owned by the event, stolen by the turn) or err */
    TURN_EV_STORED,   /* kind, err, msg */
    TURN_EV_PROVIDER, /* res */
    TURN_EV_TOOL,     /* content (stolen), is_error */
    TURN_EV_CANCEL,   /* the user asked to stop */
    TURN_EV_ANSWER,   /* the user answered the pending tool_confirmation: allow or deny */
} turn_ev_kind;

/* What the policy says about a tool call, and what a user's answer comes to. */
typedef enum { TURN_ALLOW, TURN_DENY, TURN_ASK } turn_permission;

typedef struct {
    turn_ev_kind kind;
    gd_err err;
    const char *msg; /* why err, for the user */
    json_t *history; /* TURN_EV_HISTORY: from turn_prepare_history */
    size_t history_bytes;
    const char *summary; /* TURN_EV_HISTORY: what stands for the first summarized messages */
    long stored;         /* TURN_EV_HISTORY: the session's stored messages, summarized included */
    turn_store_kind store;
    const prov_result *res;
    json_t *content;    /* TURN_EV_TOOL: MCP content items (stolen) */
    json_t *structured; /* TURN_EV_TOOL: MCP structuredContent (stolen), or NULL */
    bool is_error;
    turn_permission answer; /* TURN_EV_ANSWER: TURN_ALLOW or TURN_DENY */
} turn_ev;

typedef struct turn turn;

/* What a turn does to the world. Each starter reports back later through turn_step, never from
 * inside the call. */
typedef struct {
    void (*load_history)(turn *t);
    /* Appends a message; id_out gets its id (it must stay valid until the completion). */
    void (*store)(turn *t, turn_store_kind kind, const char *role, json_t *content, long in_tok,
                  long out_tok, char id_out[UUID_STR_LEN]);
    /* Replaces the content of the message id (one store made): the round's results so far.
     * Completes as a TURN_EV_STORED of kind, as store does. */
    void (*update)(turn *t, turn_store_kind kind, json_t *content, const char *id);
    /* Starts a provider request with t->history; false when it cannot start (out of memory). */
    bool (*stream)(turn *t);
    /* Starts a provider request of messages under the system prompt system, with no tools, for
     * a summary: its text comes through turn_on_text, its end as TURN_EV_PROVIDER, as stream's;
     * cancel_stream stops it. false when it cannot start. */
    bool (*summarize)(turn *t, const char *system, json_t *messages);
    /* Stores text as the summary of the session's first count messages (not waited for: a
     * summary that is lost is made again when needed). */
    void (*save_summary)(turn *t, const char *text, long count);
    void (*cancel_stream)(turn *t);
    /* Starts a tool call; false when it cannot start (out of memory). */
    bool (*call_tool)(turn *t, const char *name, json_t *args);
    void (*cancel_tool)(turn *t);
    /* Whether the tool request req (a tool_request item, borrowed) may run, must be refused, or
     * needs the user's answer (the turn then publishes a tool_confirmation and waits). */
    turn_permission (*permission)(turn *t, json_t *req);
    /* Publishes a piece of streamed text (kind "text" or "thinking") as a message_chunk. */
    void (*chunk)(turn *t, const char *kind, const char *s, size_t n);
    /* Publishes an event (data consumed). */
    void (*publish)(turn *t, const char *event, json_t *data);
    /* The turn is over: publishes its last event (data consumed); the agent frees t after
     * turn_step returns. */
    void (*end)(turn *t, const char *event, json_t *data);
} turn_fx;

struct turn {
    const turn_fx *fx;
    void *owner; /* the agent's per-turn data */
    turn_state state;
    long max_rounds;
    long context_limit;       /* tokens, estimated as bytes / 4 */
    double compact_threshold; /* share of context_limit past which it compacts; 0: never */
    size_t overhead_bytes;    /* sent with every request besides the history: prompt, tools */
    json_t *history;          /* [{role, content}] as sent to the provider */
    size_t history_bytes;     /* its size as JSON */
    size_t own_from;          /* history[own_from] is this reply's first message (its user's) */
    long stored_before;       /* the session's messages stored before this reply */
    char *summary;            /* what stands for the messages before history[0], or NULL */
    bool compact_failed;      /* a summary was asked for and not had: not asked again */
    bool compact_in_round;    /* the compaction runs before a later round (else before the first) */
    bool compact_refused;     /* ... because the provider refused the request as too long */
    long compact_from_tokens; /* the request's size (tokens_of) when it began */
    size_t compact_budget;    /* bytes of transcript asked for; 0: half the context limit's */
    json_t *user;             /* the user's content items, until stored */
    bool cancel;
    bool gone; /* the session was deleted: the turn ends with session_gone */
    /* the first round's user message: stored while the request streams */
    bool user_pending;
    bool round_over; /* the provider finished while user_pending */
    gd_err user_err;
    char user_msg[256];
    /* the assistant message being received */
    json_t *content;
    buf text;
    buf thinking;
    char *signature;
    bool truncated; /* text or thinking passed its cap: the stored reply would lack it */
    /* the tool calls of the stored reply, run one after the other */
    size_t next_tool;
    json_t *results;          /* their results so far: one message, stored as they come */
    size_t results_sent;      /* how many of them the last store (or update) held */
    size_t results_published; /* how many have had their tool_result published */
    int rounds;
    long in_tok, out_tok;
    prov_result last;
    char user_id[UUID_STR_LEN];
    char reply_id[UUID_STR_LEN];   /* the last assistant message stored, "" if none */
    char results_id[UUID_STR_LEN]; /* the last tool results stored */
};

/* The history a turn starts from, made from the stored messages (borrowed) from index skip on
 * (the first skip are summarized), off the agent's loop, since a long one takes a while:
 * [{role, content}], with an is_error answer for every tool call whose result was never
 * stored; *bytes gets its size as JSON. NULL when out of memory. */
json_t *turn_prepare_history(json_t *stored, size_t skip, size_t *bytes);
/* A turn for the user's text (copied). NULL when out of memory. */
turn *turn_new(const turn_fx *fx, void *owner, const char *text, long max_rounds,
               long context_limit);
void turn_free(turn *t);
/* The id of the tool request waiting for an answer (TURN_AWAITING_APPROVAL), else NULL. */
const char *turn_pending_confirmation(const turn *t);
/* Starts it: TURN_LOADING. */
void turn_begin(turn *t);
/* The one transition function. */
void turn_step(turn *t, const turn_ev *ev);

/* The provider's stream, while TURN_STREAMING (the sink's callbacks). */
void turn_on_text(turn *t, const char *s, size_t n);
void turn_on_thinking(turn *t, const char *s, size_t n);
void turn_on_signature(turn *t, const char *s);
void turn_on_tool_call(turn *t, const char *id, const char *name, json_t *args);

#endif
