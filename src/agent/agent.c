#include "agent/agent.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/content.h"
#include "core/log.h"
#include "config/secrets.h"
#include "extensions/developer.h"

#define TEXT_CAP (16u << 20)

typedef struct turn turn;

/* A session the agent knows about: its bus, and its running turn if any. */
typedef struct sess {
    char id[UUID_STR_LEN];
    bus *b;
    int refs; /* bus users, plus one for a running turn */
    turn *running;
    time_t idle_since; /* refs reached 0: the bus is kept a while for clients that reconnect */
    struct sess *next;
} sess;

struct agent {
    const config *cfg;
    store *st;
    pthread_mutex_t mu;  /* guards sessions, and each sess's refs and running */
    pthread_cond_t idle; /* signalled when a turn ends */
    sess *sessions;
    int nturns;
    bool stopping;
    pthread_mutex_t pmu; /* guards provider and model */
    char provider[128];
    char model[256];
    char **tool_env;  /* the shell's environment: ours without the providers' API keys */
    pthread_t ticker; /* keep-alive pings every KEEPALIVE_S */
    pthread_cond_t tick;
};

#define KEEPALIVE_S 15
#define BUS_IDLE_S  300 /* how long a session's events stay replayable after its last use */

struct turn {
    agent *a;
    sess *se;
    char *cwd; /* the session's working directory */
    provider_cfg pcfg;
    char *system;
    json_t *history; /* [{role, content}] sent to the provider */
    json_t *tools;
    atomic_bool cancel;
    pthread_mutex_t mu; /* guards call, user_state and deferred */
    prov_call *call;
    /* The user's message is stored while the first provider request is already on its way (the
     * fsync is off the first token's path); the first round's end waits for it. */
    enum { USER_PENDING, USER_STORED, USER_FAILED } user_state;
    bool deferred;         /* the first round ended before the user message was stored */
    const char *user_code; /* why it could not be stored: the error's code and message */
    char user_err[256];
    /* the assistant message being received (provider thread only) */
    json_t *content;
    buf text;
    buf thinking;
    char *signature;
    int ntool_calls;
    /* tool results being stored */
    json_t *results;
    int rounds;
    long in_tok, out_tok; /* the whole turn */
    prov_result last;
    char msg_id[UUID_STR_LEN];       /* id of the last user or tool-result message stored */
    char assistant_id[UUID_STR_LEN]; /* id of the last assistant message stored, "" if none */
};

/* ---- sessions and buses ---- */

static sess *sess_get_locked(agent *a, const char *id)
{
    for (sess *s = a->sessions; s; s = s->next)
        if (!strcmp(s->id, id)) return s;
    sess *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->b = bus_new();
    if (!s->b) {
        free(s);
        return NULL;
    }
    snprintf(s->id, sizeof s->id, "%s", id);
    s->next = a->sessions;
    a->sessions = s;
    return s;
}

static void sess_release_locked(agent *a, sess *s)
{
    if (--s->refs == 0 && !s->running) s->idle_since = time(NULL);
}

/* Frees the buses nobody has used for BUS_IDLE_S (all idle ones when `all`). */
static void evict_idle_locked(agent *a, bool all)
{
    time_t now = time(NULL);
    for (sess **pp = &a->sessions; *pp;) {
        sess *s = *pp;
        if (s->refs == 0 && !s->running && (all || now - s->idle_since >= BUS_IDLE_S)) {
            *pp = s->next;
            bus_free(s->b);
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

bus *agent_bus_get(agent *a, const char *session_id)
{
    pthread_mutex_lock(&a->mu);
    sess *s = sess_get_locked(a, session_id);
    if (s) s->refs++;
    pthread_mutex_unlock(&a->mu);
    return s ? s->b : NULL;
}

void agent_bus_release(agent *a, bus *b)
{
    pthread_mutex_lock(&a->mu);
    for (sess *s = a->sessions; s; s = s->next) {
        if (s->b == b) {
            sess_release_locked(a, s);
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- events ---- */

/* Publishes event with a JSON object (consumed). */
static void publish(turn *t, const char *event, json_t *data)
{
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (text) bus_publish(t->se->b, event, text);
    free(text);
}

/* Ends the turn with its last event (consumed). The session stops being busy and the event is
 * published in one step under the agent's lock, so a client that reacts to the event by sending
 * the next message is never refused, and the next reply's events come after this one. */
static void turn_end(turn *t, const char *event, json_t *data)
{
    agent *a = t->a;
    log_info("agent", "session %s: reply ended (%s, %d round(s), %ld in / %ld out tokens)",
             t->se->id, t->last.stop_reason[0] ? t->last.stop_reason : "error", t->rounds,
             t->in_tok, t->out_tok);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    pthread_mutex_lock(&a->mu);
    t->se->running = NULL;
    if (text) bus_publish(t->se->b, event, text);
    free(text);
    sess_release_locked(a, t->se);
    a->nturns--;
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->mu);
    json_decref(t->history);
    json_decref(t->tools);
    json_decref(t->content);
    json_decref(t->results);
    buf_free(&t->text);
    buf_free(&t->thinking);
    free(t->signature);
    free(t->system);
    free(t->cwd);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void turn_fail(turn *t, const char *code, const char *msg)
{
    snprintf(t->last.stop_reason, sizeof t->last.stop_reason, "error");
    turn_end(t, "error", json_pack("{s:s, s:s}", "error", msg, "code", code));
}

static void turn_complete(turn *t, const char *why)
{
    char stop_reason[sizeof t->last.stop_reason];
    snprintf(stop_reason, sizeof stop_reason, "%s", why); /* why may be t->last.stop_reason */
    snprintf(t->last.stop_reason, sizeof t->last.stop_reason, "%s", stop_reason);
    turn_end(t, "message_complete",
             json_pack("{s:s, s:s?, s:{s:I, s:I}}", "stop_reason", stop_reason, "message_id",
                       t->assistant_id[0] ? t->assistant_id : NULL, "usage", "input_tokens",
                       (json_int_t)t->in_tok, "output_tokens", (json_int_t)t->out_tok));
}

/* ---- provider stream (provider thread) ---- */

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

static void on_text(void *ud, const char *s, size_t n)
{
    turn *t = ud;
    if (t->thinking.len) flush_text(t);
    buf_append(&t->text, s, n);
    bus_publish_chunk(t->se->b, "message_chunk", "text", s, n);
}

static void on_thinking(void *ud, const char *s, size_t n)
{
    turn *t = ud;
    buf_append(&t->thinking, s, n);
    bus_publish_chunk(t->se->b, "message_chunk", "thinking", s, n);
}

static void on_signature(void *ud, const char *s)
{
    turn *t = ud;
    free(t->signature);
    t->signature = strdup(s);
}

static void on_tool_call(void *ud, const char *id, const char *name, json_t *args)
{
    turn *t = ud;
    flush_text(t);
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
    json_array_append_new(t->content, it);
    t->ntool_calls++;
    publish(t, "tool_call",
            json_pack("{s:s, s:s, s:o, s:s}", "id", id, "tool", name, "arguments",
                      args ? json_incref(args) : json_object(), "status", "running"));
}

static void on_burst(void *ud, bool begin)
{
    turn *t = ud;
    if (begin)
        bus_hold(t->se->b);
    else
        bus_release(t->se->b);
}

static void start_round(turn *t);
static void *run_tools(void *arg);
static void on_provider_done(void *ud, const prov_result *res);

static void on_results_stored(void *ud, gd_err e, const char *msg)
{
    turn *t = ud;
    if (e) {
        turn_fail(t, "storage_unavailable", msg);
        return;
    }
    json_array_append_new(t->history,
                          json_pack("{s:s, s:O}", "role", "user", "content", t->results));
    json_decref(t->results);
    t->results = NULL;
    if (atomic_load(&t->cancel))
        turn_complete(t, "cancelled");
    else
        start_round(t);
}

static void on_assistant_stored(void *ud, gd_err e, const char *msg)
{
    turn *t = ud;
    if (e) {
        turn_fail(t, "storage_unavailable", msg);
        return;
    }
    json_array_append_new(t->history,
                          json_pack("{s:s, s:O}", "role", "assistant", "content", t->content));
    if (!strcmp(t->last.stop_reason, "error")) {
        turn_fail(t, "provider_error", t->last.error);
        return;
    }
    if (t->ntool_calls == 0) {
        turn_complete(t, atomic_load(&t->cancel) ? "cancelled" : t->last.stop_reason);
        return;
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, run_tools, t) != 0)
        turn_fail(t, "internal", "cannot start a thread for the tool calls");
    pthread_attr_destroy(&attr);
}

/* A provider round is over and the user message is stored (or failed to be): keep what the
 * round produced. */
static void round_finished(turn *t)
{
    const prov_result *res = &t->last;
    if (t->user_state == USER_FAILED) {
        turn_fail(t, t->user_code, t->user_err);
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
        t->ntool_calls = 0;
        if (json_array_size(kept) == 0) {
            if (!strcmp(res->stop_reason, "error"))
                turn_fail(t, "provider_error", res->error);
            else
                turn_complete(t, "cancelled");
            return;
        }
    }
    t->a->st->ops->message_append_async(t->a->st, t->se->id, "assistant", t->content,
                                        res->input_tokens, res->output_tokens, t->assistant_id,
                                        on_assistant_stored, t);
}

static void on_provider_done(void *ud, const prov_result *res)
{
    turn *t = ud;
    flush_text(t);
    t->last = *res;
    t->in_tok += res->input_tokens;
    t->out_tok += res->output_tokens;
    pthread_mutex_lock(&t->mu);
    t->call = NULL;
    bool wait = t->user_state == USER_PENDING;
    t->deferred = wait;
    pthread_mutex_unlock(&t->mu);
    if (!wait) round_finished(t);
}

static void start_round(turn *t)
{
    if (atomic_load(&t->cancel)) {
        /* Through on_provider_done, which waits for the user message of the first round. */
        prov_result r = {.stop_reason = "cancelled"};
        on_provider_done(t, &r);
        return;
    }
    if (t->rounds >= t->a->cfg->max_turns) {
        turn_complete(t, "max_turns");
        return;
    }
    t->rounds++;
    json_decref(t->content);
    t->content = json_array();
    t->ntool_calls = 0;
    memset(&t->last, 0, sizeof t->last);
    prov_sink sink = {.ud = t,
                      .text = on_text,
                      .thinking = on_thinking,
                      .signature = on_signature,
                      .tool_call = on_tool_call,
                      .burst = on_burst};
    pthread_mutex_lock(&t->mu);
    t->call =
        prov_call_start(&t->pcfg, t->system, t->history, t->tools, &sink, on_provider_done, t);
    bool ok = t->call != NULL;
    pthread_mutex_unlock(&t->mu);
    if (!ok) {
        prov_result r = {.stop_reason = "error", .error = "out of memory starting the request"};
        on_provider_done(t, &r);
    }
}

/* ---- tools (a worker thread) ---- */

static void *run_tools(void *arg)
{
    turn *t = arg;
    json_t *results = json_array(), *it;
    size_t i;
    json_array_foreach(t->content, i, it)
    {
        if (strcmp(content_type(it), "tool_request")) continue;
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *name = json_string_value(json_object_get(it, "name"));
        if (!id || !name) continue; /* we built these items ourselves: never happens */
        tool_output out = {0};
        if (atomic_load(&t->cancel)) {
            out.text = strdup("cancelled by the user before it ran");
            out.is_error = true;
        } else if (json_is_true(json_object_get(it, "invalid_arguments"))) {
            out.text = strdup("the tool call's arguments were not valid JSON");
            out.is_error = true;
        } else if (!strncmp(name, "developer__", 11)) {
            tool_ctx ctx = {.cwd = t->cwd, .cancel = &t->cancel, .env = t->a->tool_env};
            developer_call(name, json_object_get(it, "arguments"), &ctx, &out);
        } else {
            char msg[300];
            snprintf(msg, sizeof msg, "no such tool: %s", name);
            out.text = strdup(msg);
            out.is_error = true;
        }
        const char *text = out.text ? out.text : "";
        publish(t, "tool_result",
                json_pack("{s:s, s:s, s:s, s:b}", "id", id, "tool", name, "result", text,
                          "is_error", out.is_error));
        json_array_append_new(results,
                              json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}], s:b}", "type",
                                        "tool_response", "id", id, "name", name, "content", "type",
                                        "text", "text", text, "is_error", out.is_error));
        free(out.text);
    }
    t->results = results;
    t->a->st->ops->message_append_async(t->a->st, t->se->id, "user", results, 0, 0, t->msg_id,
                                        on_results_stored, t);
    return NULL;
}

/* ---- starting ---- */

void agent_current(agent *a, char *name, size_t namelen, char *model, size_t modellen)
{
    pthread_mutex_lock(&a->pmu);
    snprintf(name, namelen, "%s", a->provider);
    snprintf(model, modellen, "%s", a->model);
    pthread_mutex_unlock(&a->pmu);
}

void agent_set_current(agent *a, const char *name, const char *model)
{
    pthread_mutex_lock(&a->pmu);
    snprintf(a->provider, sizeof a->provider, "%s", name);
    snprintf(a->model, sizeof a->model, "%s", model);
    pthread_mutex_unlock(&a->pmu);
}

int agent_provider_key(const provider_def *def, char *out, size_t outlen)
{
    if (!def->key_env) return 0;
    const char *env = getenv(def->key_env);
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return 1;
    }
    return secrets_get(def->key_env, out, outlen);
}

/* Anthropic's extended thinking, off unless CLAUDE_THINKING_ENABLED is set (to anything but
 * "", "0" or "false"); CLAUDE_THINKING_BUDGET tokens (default 16000, at least 1024 as the API
 * requires). */
static gd_err thinking_budget(provider_cfg *out, char *err, size_t errlen)
{
    const char *on = getenv("CLAUDE_THINKING_ENABLED");
    if (!on || !*on || !strcmp(on, "0") || !strcasecmp(on, "false")) return GD_OK;
    const char *b = getenv("CLAUDE_THINKING_BUDGET");
    out->thinking_budget = 16000;
    if (b && *b) {
        char *end;
        long v = strtol(b, &end, 10);
        if (*end || v < 1024 || v > 1000000) {
            snprintf(err, errlen,
                     "CLAUDE_THINKING_BUDGET: %.40s is not a number of tokens from 1024 to "
                     "1000000",
                     b);
            return GD_EINVAL;
        }
        out->thinking_budget = v;
    }
    return GD_OK;
}

gd_err agent_provider(agent *a, provider_cfg *out, char *err, size_t errlen)
{
    const config *cfg = a->cfg;
    char name[128], model[256];
    agent_current(a, name, sizeof name, model, sizeof model);
    memset(out, 0, sizeof *out);
    if (!name[0]) {
        snprintf(err, errlen,
                 "no provider configured: set GOOSE_PROVIDER (openai, anthropic, google, ollama, "
                 "...) and its API key, e.g. GOOSE_PROVIDER=openai OPENAI_API_KEY=sk-..., or "
                 "POST /api/providers {\"name\": \"openai\", \"api_key\": \"sk-...\"}");
        return GD_EINVAL;
    }
    const provider_def *def = provider_find(name);
    if (!def) {
        buf names;
        buf_init(&names, 1024);
        for (size_t i = 0; i < provider_ndefs; i++)
            buf_printf(&names, "%s%s", i ? ", " : "", provider_defs[i].name);
        snprintf(err, errlen, "unknown provider '%s' (known: %s)", name, names.data);
        buf_free(&names);
        return GD_EINVAL;
    }
    out->def = def;
    const char *host = getenv(def->host_env);
    snprintf(out->base, sizeof out->base, "%s", host && *host ? host : def->default_host);
    size_t n = strlen(out->base);
    while (n && out->base[n - 1] == '/')
        out->base[--n] = '\0';
    const char *path = def->path_env ? getenv(def->path_env) : NULL;
    snprintf(out->path, sizeof out->path, "%s", path && *path ? path : def->default_path);
    while (out->path[0] == '/')
        memmove(out->path, out->path + 1, strlen(out->path));
    if (def->key_env && !agent_provider_key(def, out->key, sizeof out->key)) {
        snprintf(err, errlen, "provider %s needs an API key: set %s, or POST /api/providers",
                 def->name, def->key_env);
        return GD_EINVAL;
    }
    snprintf(out->model, sizeof out->model, "%s", model[0] ? model : def->default_model);
    out->timeout_s = cfg->api_timeout;
    out->max_retries = cfg->max_retries;
    if (!strcmp(def->name, "anthropic")) return thinking_budget(out, err, errlen);
    return GD_OK;
}

static char *system_prompt(const char *cwd)
{
    char date[RFC3339_LEN];
    clock_rfc3339(time(NULL), date);
    buf b;
    buf_init(&b, 1u << 20);
    buf_printf(&b,
               "You are goose, a general-purpose AI agent. You help the user by reasoning and by "
               "calling the tools you are given; prefer doing over describing.\n\n"
               "The current date and time is %s.\nThe working directory is %s.\n\n"
               "# Extensions\n\n## developer\n%s\n",
               date, cwd, developer_instructions());
    return buf_detach(&b);
}

/* On the store's thread, while the first round may still be running. */
static void on_user_stored(void *ud, gd_err e, const char *msg)
{
    turn *t = ud;
    pthread_mutex_lock(&t->mu);
    t->user_state = e ? USER_FAILED : USER_STORED;
    if (e) {
        t->user_code = e == GD_ENOTFOUND ? "not_found" : "storage_unavailable";
        snprintf(t->user_err, sizeof t->user_err, "%s", msg);
        atomic_store(&t->cancel, true);
        if (t->call) prov_call_cancel(t->call);
    }
    bool resume = t->deferred;
    pthread_mutex_unlock(&t->mu);
    if (resume) round_finished(t);
}

gd_err agent_start(agent *a, const char *session_id, const char *text, uint64_t *first_seq,
                   char *err, size_t errlen)
{
    store_session s;
    gd_err e = a->st->ops->session_get(a->st, session_id, &s);
    if (e) {
        snprintf(err, errlen, "%s", e == GD_ENOTFOUND ? "no such session" : store_errmsg());
        return e;
    }
    turn *t = calloc(1, sizeof *t);
    if (!t || !(t->cwd = strdup(s.working_dir))) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    if ((e = agent_provider(a, &t->pcfg, err, errlen))) {
        free(t->cwd);
        free(t);
        return e;
    }
    json_t *msgs;
    if ((e = a->st->ops->messages_list(a->st, session_id, &msgs))) {
        snprintf(err, errlen, "%s", store_errmsg());
        free(t->cwd);
        free(t);
        return e;
    }
    pthread_mutex_lock(&a->mu);
    sess *se = a->stopping ? NULL : sess_get_locked(a, session_id);
    if (!se || se->running) {
        pthread_mutex_unlock(&a->mu);
        snprintf(err, errlen, "%s",
                 se ? "a reply is already running in this session" : "shutting down");
        json_decref(msgs);
        free(t->cwd);
        free(t);
        return se ? GD_ECONFLICT : GD_ESTORE;
    }
    se->running = t;
    se->refs++;
    a->nturns++;
    *first_seq = bus_next_seq(se->b);
    pthread_mutex_unlock(&a->mu);

    t->a = a;
    t->se = se;
    pthread_mutex_init(&t->mu, NULL);
    buf_init(&t->text, TEXT_CAP);
    buf_init(&t->thinking, TEXT_CAP);
    t->system = system_prompt(t->cwd);
    t->tools = developer_tools();
    t->history = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_array_append_new(t->history,
                              json_pack("{s:O, s:O}", "role", json_object_get(m, "role"), "content",
                                        json_object_get(m, "content")));
    }
    json_decref(msgs);
    json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text", text);
    json_array_append_new(t->history, json_pack("{s:s, s:O}", "role", "user", "content", content));
    log_info("agent", "session %s: reply started with %s/%s", session_id, t->pcfg.def->name,
             t->pcfg.model);
    a->st->ops->message_append_async(a->st, session_id, "user", content, 0, 0, t->msg_id,
                                     on_user_stored, t);
    json_decref(content);
    start_round(t);
    return GD_OK;
}

gd_err agent_cancel(agent *a, const char *session_id)
{
    gd_err e = GD_ENOTFOUND;
    pthread_mutex_lock(&a->mu);
    for (sess *s = a->sessions; s; s = s->next) {
        if (!strcmp(s->id, session_id) && s->running) {
            turn *t = s->running;
            atomic_store(&t->cancel, true);
            pthread_mutex_lock(&t->mu);
            if (t->call) prov_call_cancel(t->call);
            pthread_mutex_unlock(&t->mu);
            e = GD_OK;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return e;
}

/* Every KEEPALIVE_S seconds, a `: ping` comment for every watching client, so proxies and
 * clients see the connection is alive, and a client that went away is noticed. */
static void *ticker_main(void *arg)
{
    agent *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += KEEPALIVE_S;
        pthread_cond_timedwait(&a->tick, &a->mu, &until);
        if (a->stopping) break;
        evict_idle_locked(a, false);
        for (sess *s = a->sessions; s; s = s->next)
            bus_ping(s->b);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* The server's environment without the providers' API keys (OPENAI_API_KEY, ...), for the
 * commands the model runs: a prompt injected through a file the model reads must not be able to
 * make it print them. NULL when out of memory (the tools then get the whole environment). */
static char **tool_environment(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        bool secret = false;
        for (size_t p = 0; p < provider_ndefs && !secret; p++) {
            const char *key = provider_defs[p].key_env;
            secret = key && strlen(key) == len && !strncmp(environ[i], key, len);
        }
        if (!secret) env[k++] = environ[i];
    }
    return env;
}

agent *agent_new(const config *cfg, store *st)
{
    agent *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    a->st = st;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->idle, NULL);
    pthread_cond_init(&a->tick, NULL);
    pthread_mutex_init(&a->pmu, NULL);
    snprintf(a->provider, sizeof a->provider, "%s", cfg->provider);
    snprintf(a->model, sizeof a->model, "%s", cfg->model);
    a->tool_env = tool_environment();
    if (pthread_create(&a->ticker, NULL, ticker_main, a) != 0) {
        free(a->tool_env);
        free(a);
        return NULL;
    }
    return a;
}

static void cancel_all_locked(agent *a)
{
    for (sess *s = a->sessions; s; s = s->next) {
        if (s->running) {
            atomic_store(&s->running->cancel, true);
            pthread_mutex_lock(&s->running->mu);
            if (s->running->call) prov_call_cancel(s->running->call);
            pthread_mutex_unlock(&s->running->mu);
        }
    }
}

void agent_shutdown(agent *a, int grace_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->tick);
    while (a->nturns > 0)
        if (pthread_cond_timedwait(&a->idle, &a->mu, &until) != 0) break;
    if (a->nturns > 0) {
        log_warn("agent", "%d reply(ies) still running after %d ms: cancelling them", a->nturns,
                 grace_ms);
        cancel_all_locked(a);
        while (a->nturns > 0)
            pthread_cond_wait(&a->idle, &a->mu);
    }
    for (sess *s = a->sessions; s; s = s->next)
        bus_close(s->b);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->ticker, NULL);
}

void agent_free(agent *a)
{
    if (!a) return;
    free(a->tool_env);
    pthread_cond_destroy(&a->tick);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->mu);
    /* The HTTP server is stopped before this, so no session has bus users left. */
    while (a->sessions) {
        sess *s = a->sessions;
        a->sessions = s->next;
        bus_free(s->b);
        free(s);
    }
    free(a);
}
