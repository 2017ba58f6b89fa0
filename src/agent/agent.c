/* agent: the owner of every turn. One loop thread ("agent") runs every turn's state machine
 * (turn.c), the provider client (its sockets and timers) and the extensions' I/O (tool child
 * processes); the store's writer, the worker pool and the HTTP threads only post messages to
 * it. HTTP threads touch a session's bus and its counters under `mu`, never a turn.
 *
 * History is read on a worker of the pool, never on an HTTP or WebSocket thread, nor on the
 * loop. */
#include "agent/agent.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "agent/signin.h"
#include "agent/turn.h"
#include "auth/user_settings.h"
#include "config/permissions.h"
#include "config/secrets.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/jtext.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/netaddr.h"
#include "core/pool.h"
#include "core/trace.h"
#include "core/utf8.h"
#include "extensions/extension.h"
#include "extensions/mcp/mcp.h"
#include "extensions/mcp/oauth.h"
#include "extensions/sandbox.h"

#define KEEPALIVE_MS      (15 * 1000)
#define BUS_IDLE_S        300  /* how long a session's events stay replayable after its last use */
#define MCP_CLOSE_WAIT_MS 6000 /* at exit, for closed MCP servers to be reaped */

typedef struct a_turn a_turn;
typedef struct agent_req agent_req;
typedef struct signin_who signin_who;

/* A sign-in an extension of the session waits for (signin.h), shown to the user as a URL
 * elicitation: its id there and its state. Loop thread. */
typedef struct signin_req {
    struct signin_req *next;
    char id[32];
    char state[SIGNIN_STATE_MAX];
} signin_req;

/* A session the agent knows about. `mu` guards b, refs, watchers, running and idle_since; the
 * fields below the line belong to the loop thread. */
#define TOOLS_SHARED 8 /* distinct tools lists kept for sessions to share */

typedef struct sess {
    char id[UUID_STR_LEN];
    bus *b;
    int refs;          /* bus users, plus one for a running turn, plus pending cancels */
    int watchers;      /* clients watching (SSE, WebSocket, a JSON request waiting) */
    bool running;      /* a turn is reserved or runs */
    bool deleted;      /* the session was deleted: its bus is closed once no reply runs */
    unsigned turn_seq; /* bumped by each agent_start: which turn a cancel was meant for */
    time_t idle_since;
    char user_id[UUID_STR_LEN]; /* the owner ("" the local user), set when first known */
    json_t *open_reqs; /* ids of the extensions\' requests waiting for the user: id -> kind */
    /* its extensions as its last reply found them: name -> {"status", "error"?} (a new object
     * each time, never changed in place); "signing_in" while one waits for its user */
    json_t *ext_states;
    struct sess *next;  /* every session, for the walks (keep-alive, eviction, stop) */
    struct sess *hnext; /* the next in its hash bucket, for lookups by id */
    /* ---- loop thread ---- */
    a_turn *turn;
    bool cancel_early; /* a cancel came before the turn reached the loop (prepare_job) */
    bool cancel_gone;  /* and its client had gone */
    ext_registry *reg;
    json_t *tools;      /* reg's tools in the providers' shape, made again when they change */
    unsigned tools_gen; /* registry_tools_gen when they were made */
    size_t tools_bytes; /* their size as JSON, for the context estimate */
    uint64_t noted;     /* note_ext_status's digest of what it noted last (0: nothing yet) */
    unsigned reg_gen;   /* the configured set's generation reg was made from */
    char *reg_key;      /* and the session's own extension settings, as JSON */
    unsigned user_gen;  /* and the owner's own extensions' generation (user_settings.h) */
    json_t *user_added; /* the owner's own extensions reg holds: name -> true (NULL: none) */
    json_t *sess_added; /* the session's own (settings' "add") reg holds: name -> true, or NULL */
    char *cwd;          /* the working directory the extensions were made for */
    char *npm_cache;    /* the owner's own npm cache (uhost.npm_cache), when not an admin */
    ext_host host;      /* the configured extensions' (config.yaml's) */
    ext_host uhost;     /* the owner's own and the session's: host, with the owner's reach */
    bool reg_admin;     /* the owner was an admin when reg was made (uhost reaches anything) */
    /* The session's own provider and model (PATCH /api/sessions/{id}) as its last reply read
     * them or a PATCH since set them ("": none): what serves an extension's sampling request
     * between replies. Under a->mu. */
    char own_provider[64], own_model[256];
    ext_host_ops host_ops; /* ud: this session */
    struct agent *a;
    agent_req *reqs;  /* the extensions\' requests (elicitation, sampling) not answered yet */
    unsigned req_seq; /* for their ids */
    /* The sign-ins its remote extensions ask for (MCP OAuth): the consent's ud (held by each
     * extension's OAuth client too, which may outlive the session), and those shown now. */
    signin_who *who;
    mcp_oauth_cfg oauth;
    signin_req *signins;
} sess;

struct agent {
    const config *cfg;
    store *st;
    loop *l;
    pool *workers;
    /* The extensions' sign-ins: the waits and grants, and the threads that wait (apart from the
     * tools': a sign-in waits minutes for its user). redirect_uri: "" when none is offered. */
    signins *signins;
    pool *signin_workers;
    char redirect_uri[1100];
    char **tool_env;
    net_allow *reach; /* user_extension_hosts; NULL when it is "*" (anything) */
    char cfg_dir[PATH_MAX];
    const char *protected_dirs[3];
    ext_limits limits;
    pthread_mutex_t mu;  /* guards sessions, nturns, stopping */
    pthread_cond_t idle; /* signalled when a turn ends */
    sess *sessions;
    sess **buckets; /* by id hash; nbuckets a power of two, grown with the sessions */
    size_t nbuckets, nsessions;
    long nturns;
    struct user_turns *uturns; /* replies running per user (users with an id only) */
    size_t nuturns, caputurns;
    bool stopping;
    _Atomic int mode;    /* exec_mode of sessions without their own */
    pthread_mutex_t pmu; /* guards provider and model */
    char provider[128];
    char model[256];
    ext_set *exts;       /* the configured extensions (borrowed); NULL: the developer alone */
    pthread_mutex_t smu; /* guards ext_status */
    json_t *ext_status;  /* name -> {status, error?, tools}: what sessions' instances did last */
    pthread_mutex_t cmu; /* guards the shared provider settings' counts and cfg_last */
    struct shared_cfg *cfg_last; /* the last resolved (cfg_share), for the next turn to share */
    /* ---- loop thread ---- */
    prov_client *pc;
    loop_timer *ticker;
    /* Sessions whose extensions offer the same tools share one list (shared_tools), and the
     * provider client's text of it (tools_text_slot). */
    struct {
        json_t *list; /* registry_tools's answer */
        size_t bytes; /* its size as JSON */
        size_t n;     /* what it was made from: each extension's name and tools list */
        char (*names)[EXT_NAME_MAX];
        json_t **src; /* (references: a list is never changed, so never reused) */
        uint64_t used;
    } shared[TOOLS_SHARED];
    struct {
        prov_tools_text tt;
        uint64_t used;
    } texts[TOOLS_SHARED];
    uint64_t clock;
};

/* ---- tools shared between sessions (loop thread) ---- */

static void shared_entry_clear(agent *a, int i)
{
    json_decref(a->shared[i].list);
    for (size_t k = 0; k < a->shared[i].n; k++)
        json_decref(a->shared[i].src[k]);
    free(a->shared[i].src);
    free(a->shared[i].names);
    memset(&a->shared[i], 0, sizeof a->shared[i]);
}

static void shared_tools_free(agent *a)
{
    for (int i = 0; i < TOOLS_SHARED; i++) {
        shared_entry_clear(a, i);
        prov_tools_text_clear(&a->texts[i].tt);
    }
}

/* reg's tools in the providers' shape (registry_tools), and their size as JSON in *bytes: the
 * same list as another session's whose extensions offer the same tools (by name and list). A
 * new reference; NULL when out of memory. */
static json_t *shared_tools(agent *a, ext_registry *reg, size_t *bytes)
{
    size_t n = registry_count(reg);
    int victim = 0;
    for (int i = 0; i < TOOLS_SHARED; i++) {
        if (a->shared[i].used < a->shared[victim].used) victim = i;
        if (!a->shared[i].list || a->shared[i].n != n) continue;
        size_t k = 0;
        for (; k < n; k++) {
            extension *x = registry_get(reg, k);
            if (strcmp(a->shared[i].names[k], x->name) || a->shared[i].src[k] != x->ops->tools(x))
                break;
        }
        if (k < n) continue;
        a->shared[i].used = ++a->clock;
        *bytes = a->shared[i].bytes;
        return json_incref(a->shared[i].list);
    }
    json_t *list = registry_tools(reg);
    if (!list) return NULL;
    *bytes = jtext_size(list);
    shared_entry_clear(a, victim);
    a->shared[victim].src = n ? calloc(n, sizeof *a->shared[victim].src) : NULL;
    a->shared[victim].names = n ? calloc(n, sizeof *a->shared[victim].names) : NULL;
    if (n && (!a->shared[victim].src || !a->shared[victim].names)) {
        shared_entry_clear(a, victim);
        return list; /* not shared, but right */
    }
    for (size_t k = 0; k < n; k++) {
        extension *x = registry_get(reg, k);
        snprintf(a->shared[victim].names[k], EXT_NAME_MAX, "%s", x->name);
        a->shared[victim].src[k] = json_incref(x->ops->tools(x));
    }
    a->shared[victim].n = n;
    a->shared[victim].list = json_incref(list);
    a->shared[victim].bytes = *bytes;
    a->shared[victim].used = ++a->clock;
    return list;
}

/* Where the provider client keeps its text of tools in dialect d's shape: the slot that holds
 * it already, or the least recently used one (prov_body_text writes it there). */
static prov_tools_text *tools_text_slot(agent *a, json_t *tools, const prov_dialect_ops *d)
{
    int victim = 0;
    for (int i = 0; i < TOOLS_SHARED; i++) {
        if (a->texts[i].tt.tools == tools && a->texts[i].tt.d == d) {
            a->texts[i].used = ++a->clock;
            return &a->texts[i].tt;
        }
        if (a->texts[i].used < a->texts[victim].used) victim = i;
    }
    a->texts[victim].used = ++a->clock;
    return &a->texts[victim].tt;
}

/* How many replies a user runs. */
struct user_turns {
    char id[UUID_STR_LEN];
    long n;
};

/* The user's count, made when make (NULL: out of memory, or none); under mu. */
static struct user_turns *uturns_locked(agent *a, const char *id, bool make)
{
    for (size_t i = 0; i < a->nuturns; i++)
        if (!strcmp(a->uturns[i].id, id)) return &a->uturns[i];
    if (!make) return NULL;
    if (a->nuturns == a->caputurns) {
        size_t cap = a->caputurns ? 2 * a->caputurns : 16;
        struct user_turns *p = realloc(a->uturns, cap * sizeof *p);
        if (!p) return NULL;
        a->uturns = p;
        a->caputurns = cap;
    }
    struct user_turns *u = &a->uturns[a->nuturns++];
    snprintf(u->id, sizeof u->id, "%s", id);
    u->n = 0;
    return u;
}

/* One reply of the user fewer (under mu); the count goes when it reaches 0. */
static void uturns_end_locked(agent *a, const char *id)
{
    struct user_turns *u = id[0] ? uturns_locked(a, id, false) : NULL;
    if (u && --u->n <= 0) *u = a->uturns[--a->nuturns];
}

/* A store completion on its way to the loop. */
typedef struct {
    a_turn *at;
    turn_store_kind kind;
    gd_err err;
    char msg[256];
} stored_msg;

/* The agent's side of a turn: everything the effects need. */
struct a_turn {
    agent *a;
    sess *se;
    turn *t;
    const provider_cfg *pcfg; /* shared (cfg_share): most turns resolve the same settings */
    char *system;
    json_t *tools;
    prov_call *call;
    ext_call *tool;
    uint64_t tool_t0;     /* when the running tool call started (metrics) */
    char *cwd;            /* the session's working directory */
    char *dir_refused;    /* why its tools may not run there (work_dir_refusal), or NULL */
    reg_start *starting;  /* the session's extensions being started for it, or NULL */
    bool admin;           /* the owner is an admin: their own extensions may reach anything */
    exec_mode mode;       /* this turn's */
    json_t *settings;     /* the session's own settings, read when the turn was asked for */
    stored_msg stored[3]; /* one slot per turn_store_kind: at most one write of each runs */
    /* what a worker reads for it (prepare_job), before the loop sees it */
    char sid[UUID_STR_LEN]; /* the session's id, for the worker */
    json_t *history;
    size_t history_bytes;
    char *summary;       /* what stands for the session's first summarized messages, or NULL */
    long nstored;        /* the session's stored messages, summarized included */
    gd_err read_err;     /* the session, its settings or its history could not be read */
    bool history_wanted; /* the turn asked for it (fx_load_history): begin() hands it over */
    char read_msg[256];
    /* observability (core/trace.h, core/log.h): the turn's span and those of its provider
     * request and tool call running; the context of its log lines */
    trace_span *span, *pspan, *tspan;
    log_ctx lctx;
    char rid[129];
    char user[UUID_STR_LEN + 64];
};

/* ---- sessions and buses (any thread, under mu) ---- */

static size_t id_hash(const char *id)
{
    size_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static sess *sess_find_locked(agent *a, const char *id)
{
    if (!a->nbuckets) return NULL;
    for (sess *s = a->buckets[id_hash(id) & (a->nbuckets - 1)]; s; s = s->hnext)
        if (!strcmp(s->id, id)) return s;
    return NULL;
}

/* Doubles the buckets once there are as many sessions; false when out of memory (lookups then
 * get slower, nothing else). */
static bool rehash_locked(agent *a)
{
    size_t n = a->nbuckets ? a->nbuckets * 2 : 256;
    sess **b = calloc(n, sizeof *b);
    if (!b) return false;
    for (sess *s = a->sessions; s; s = s->next) {
        size_t i = id_hash(s->id) & (n - 1);
        s->hnext = b[i];
        b[i] = s;
    }
    free(a->buckets);
    a->buckets = b;
    a->nbuckets = n;
    return true;
}

static sess *sess_get_locked(agent *a, const char *id)
{
    sess *s = sess_find_locked(a, id);
    if (s) return s;
    if (a->nsessions >= a->nbuckets && !rehash_locked(a) && !a->nbuckets) return NULL;
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->b = bus_new();
    if (!s->b || !(s->open_reqs = json_object())) {
        bus_free(s->b);
        free(s);
        return NULL;
    }
    s->a = a;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->next = a->sessions;
    a->sessions = s;
    size_t i = id_hash(id) & (a->nbuckets - 1);
    s->hnext = a->buckets[i];
    a->buckets[i] = s;
    a->nsessions++;
    return s;
}

/* Takes s out of the hash (the caller unlinks it from the list). */
static void sess_unhash_locked(agent *a, sess *s)
{
    for (sess **pp = &a->buckets[id_hash(s->id) & (a->nbuckets - 1)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    a->nsessions--;
}

/* Under a->mu: the session's own provider and model, as its settings have them now. */
static void own_choice_set_locked(sess *se, const char *provider, const char *model)
{
    snprintf(se->own_provider, sizeof se->own_provider, "%s", provider ? provider : "");
    snprintf(se->own_model, sizeof se->own_model, "%s", model ? model : "");
}

static void sess_release_locked(sess *s)
{
    if (--s->refs == 0 && !s->running) s->idle_since = time(NULL);
}

bus *agent_bus_get(agent *a, const char *session_id, gd_err *e)
{
    pthread_mutex_lock(&a->mu);
    sess *s = sess_get_locked(a, session_id);
    *e = !s ? GD_ENOMEM : s->watchers >= a->cfg->max_watchers_per_session ? GD_EBUSY : GD_OK;
    if (*e == GD_OK) {
        s->refs++;
        s->watchers++;
        metrics_gauge_add(MG_WATCHERS, 1);
        /* Once stopping, a bus with no reply running is closed, a new one too: its watcher
         * reads what is left and ends (a WebSocket closes with 1001) instead of holding the
         * stop up. A running reply's bus is closed when the reply has ended. */
        if (a->stopping && !s->running) bus_close(s->b);
    }
    pthread_mutex_unlock(&a->mu);
    return *e == GD_OK ? s->b : NULL;
}

bool agent_watchers_full(agent *a, const char *session_id)
{
    pthread_mutex_lock(&a->mu);
    sess *s = sess_find_locked(a, session_id);
    bool full = s && s->watchers >= a->cfg->max_watchers_per_session;
    pthread_mutex_unlock(&a->mu);
    return full;
}

void agent_bus_release(agent *a, const char *session_id)
{
    pthread_mutex_lock(&a->mu);
    sess *s = sess_find_locked(a, session_id);
    if (s) {
        s->watchers--;
        metrics_gauge_add(MG_WATCHERS, -1);
        sess_release_locked(s);
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- the effects of a turn (loop thread) ---- */

/* ---- provider settings shared by turns (any thread) ---- */

/* A turn's provider settings (2.6 KB, the key included), counted: the turns that resolved the
 * same settings hold one copy, not one each. */
typedef struct shared_cfg {
    provider_cfg cfg;
    int refs;
} shared_cfg;

static bool cfg_same(const provider_cfg *x, const provider_cfg *y)
{
    return x->def == y->def && !strcmp(x->base, y->base) && !strcmp(x->path, y->path) &&
           !strcmp(x->key, y->key) && !strcmp(x->model, y->model) && x->timeout_s == y->timeout_s &&
           x->max_retries == y->max_retries && x->thinking_budget == y->thinking_budget;
}

static void cfg_unref_locked(shared_cfg *s)
{
    if (!s || --s->refs) return;
    sodium_memzero(&s->cfg, sizeof s->cfg);
    free(s);
}

/* c's settings as shared ones (a reference the caller drops with cfg_unref); NULL when out of
 * memory. */
static const provider_cfg *cfg_share(agent *a, const provider_cfg *c)
{
    pthread_mutex_lock(&a->cmu);
    shared_cfg *s = a->cfg_last;
    if (s && cfg_same(&s->cfg, c)) {
        s->refs++;
    } else if ((s = malloc(sizeof *s))) {
        s->cfg = *c;
        s->refs = 2; /* cfg_last's and the caller's */
        cfg_unref_locked(a->cfg_last);
        a->cfg_last = s;
    }
    pthread_mutex_unlock(&a->cmu);
    return s ? &s->cfg : NULL;
}

static void cfg_unref(agent *a, const provider_cfg *c)
{
    if (!c) return;
    pthread_mutex_lock(&a->cmu);
    cfg_unref_locked((shared_cfg *)(void *)((char *)c - offsetof(shared_cfg, cfg)));
    pthread_mutex_unlock(&a->cmu);
}

static void a_turn_free(a_turn *at)
{
    cfg_unref(at->a, at->pcfg);
    trace_span_discard(at->pspan);
    trace_span_discard(at->tspan);
    trace_span_discard(at->span);
    turn_free(at->t);
    json_decref(at->tools);
    json_decref(at->history);
    json_decref(at->settings);
    free(at->summary);
    free(at->system);
    free(at->cwd);
    free(at->dir_refused);
    free(at);
}

/* Steps the turn, and frees it once it is over (the outermost step: turn.c may step itself). */
static void step(a_turn *at, const turn_ev *ev)
{
    const log_ctx *lc = log_ctx_set(&at->lctx);
    turn_step(at->t, ev);
    if (at->t->state == TURN_DONE) a_turn_free(at);
    log_ctx_set(lc);
}

static void post_or_log(agent *a, loop_fn fn, void *ud)
{
    if (loop_post(a->l, fn, ud) != GD_OK)
        log_error("agent", "cannot hand a completion to the agent loop (out of memory)");
}

static void history_loaded(void *ud)
{
    a_turn *at = ud;
    json_t *h = at->history;
    at->history = NULL;
    step(at, &(turn_ev){.kind = TURN_EV_HISTORY,
                        .err = at->history ? GD_OK : at->read_err,
                        .msg = at->read_msg,
                        .history = h,
                        .history_bytes = at->history_bytes,
                        .summary = at->summary,
                        .stored = at->nstored});
}

/* The turn is LOADING: its history was read with the session (prepare_job), before the turn
 * reached the loop. It is handed over by begin() as soon as turn_begin returns (not from inside
 * turn_step), not a loop iteration later: under a burst of replies one iteration is many
 * milliseconds of everyone's first token. */
static void fx_load_history(turn *t)
{
    ((a_turn *)t->owner)->history_wanted = true;
}

/* Begins the turn and hands it its history; frees it when that ended it. */
static void begin(a_turn *at)
{
    turn_begin(at->t);
    if (at->history_wanted) {
        at->history_wanted = false;
        history_loaded(at); /* steps: frees at when the turn is over */
        return;
    }
    if (at->t->state == TURN_DONE) a_turn_free(at);
}

static void stored_on_loop(void *ud)
{
    stored_msg *m = ud;
    step(m->at, &(turn_ev){.kind = TURN_EV_STORED, .store = m->kind, .err = m->err, .msg = m->msg});
}

/* On the store's writer thread (or in the caller when the store is down): hand over. */
static void on_store_done(void *ud, gd_err e, const char *msg)
{
    stored_msg *m = ud;
    m->err = e;
    snprintf(m->msg, sizeof m->msg, "%s", msg ? msg : "");
    post_or_log(m->at->a, stored_on_loop, m);
}

static void fx_store(turn *t, turn_store_kind kind, const char *role, json_t *content, long in_tok,
                     long out_tok, char id_out[UUID_STR_LEN])
{
    a_turn *at = t->owner;
    stored_msg *m = &at->stored[kind];
    m->at = at;
    m->kind = kind;
    at->a->st->ops->message_append_async(at->a->st, at->se->id, role, content, in_tok, out_tok,
                                         kind == TURN_STORE_USER ? STORE_WITHIN_MS : 0, id_out,
                                         on_store_done, m);
}

static void fx_update(turn *t, turn_store_kind kind, json_t *content, const char *id)
{
    a_turn *at = t->owner;
    stored_msg *m = &at->stored[kind];
    m->at = at;
    m->kind = kind;
    at->a->st->ops->message_update_async(at->a->st, at->se->id, id, content, on_store_done, m);
}

static void s_text(void *ud, const char *s, size_t n)
{
    turn_on_text(((a_turn *)ud)->t, s, n);
}
static void s_thinking(void *ud, const char *s, size_t n)
{
    turn_on_thinking(((a_turn *)ud)->t, s, n);
}
static void s_signature(void *ud, const char *s)
{
    turn_on_signature(((a_turn *)ud)->t, s);
}
static void s_tool_call(void *ud, const char *id, const char *name, json_t *args)
{
    turn_on_tool_call(((a_turn *)ud)->t, id, name, args);
}
static void s_burst(void *ud, bool begin)
{
    a_turn *at = ud;
    if (begin)
        bus_hold(at->se->b);
    else
        bus_release(at->se->b);
}

static void on_provider_done(void *ud, const prov_result *res)
{
    a_turn *at = ud;
    at->call = NULL;
    trace_span *sp = at->pspan;
    at->pspan = NULL;
    trace_attr_int(sp, "gen_ai.usage.input_tokens", res->input_tokens);
    trace_attr_int(sp, "gen_ai.usage.output_tokens", res->output_tokens);
    trace_attr_str(sp, "gen_ai.response.finish_reasons", res->stop_reason);
    if (res->http_status) trace_attr_int(sp, "http.response.status_code", res->http_status);
    if (!strcmp(res->stop_reason, "error")) /* not the provider's message: it may quote a key */
        trace_set_status(sp, true, "the provider request failed");
    trace_span_end(sp);
    step(at, &(turn_ev){.kind = TURN_EV_PROVIDER, .res = res});
}

/* Starts a provider request of the turn's, in a span of its own (purpose: an attribute, or
 * NULL); tools NULL: none offered. */
static bool start_call(a_turn *at, const char *system, json_t *messages, json_t *tools,
                       const char *purpose)
{
    prov_sink sink = {.ud = at,
                      .text = s_text,
                      .thinking = s_thinking,
                      .signature = s_signature,
                      .tool_call = s_tool_call,
                      .burst = s_burst};
    char name[96];
    snprintf(name, sizeof name, "chat %s", at->pcfg->model);
    at->pspan = trace_span_start(name, TRACE_CLIENT, trace_span_ctx(at->span));
    trace_attr_str(at->pspan, "gen_ai.operation.name", "chat");
    trace_attr_str(at->pspan, "gen_ai.system", at->pcfg->def->name);
    trace_attr_str(at->pspan, "gen_ai.request.model", at->pcfg->model);
    if (purpose) trace_attr_str(at->pspan, "goose.request.purpose", purpose);
    const trace_ctx *prev = trace_set_current(trace_span_ctx(at->pspan)); /* its traceparent */
    at->call =
        prov_call_start(at->a->pc, at->pcfg, system, messages, tools,
                        tools ? tools_text_slot(at->a, tools, dialect_of(at->pcfg->def)) : NULL,
                        &sink, on_provider_done, at);
    trace_set_current(prev);
    if (!at->call) {
        trace_span_discard(at->pspan);
        at->pspan = NULL;
    }
    return at->call != NULL;
}

static bool fx_stream(turn *t)
{
    a_turn *at = t->owner;
    return start_call(at, at->system, t->history, at->tools, NULL);
}

static bool fx_summarize(turn *t, const char *system, json_t *messages)
{
    return start_call(t->owner, system, messages, NULL, "compaction");
}

static void summary_saved(void *ud, gd_err e, const char *msg)
{
    char *sid = ud;
    if (e && e != GD_ENOTFOUND) /* a session deleted meanwhile has nothing to keep */
        log_warn("agent",
                 "session %s: the conversation's summary was not stored (it is made "
                 "again when needed): %s",
                 sid, msg ? msg : gd_strerror(e));
    free(sid);
}

static void fx_save_summary(turn *t, const char *text, long count)
{
    a_turn *at = t->owner;
    char *sid = strdup(at->se->id);
    if (!sid) return;
    at->a->st->ops->session_summary_set_async(at->a->st, at->se->id, text, count, summary_saved,
                                              sid);
}

static void fx_cancel_stream(turn *t)
{
    a_turn *at = t->owner;
    if (at->call) prov_call_cancel(at->call);
}

static void on_tool_done(void *ud, ext_result *res)
{
    a_turn *at = ud;
    at->tool = NULL;
    uint64_t ns = clock_mono_ns() - at->tool_t0; /* an error at the timeout is the timeout */
    metrics_tool_call(json_string_value(json_object_get(
                          json_array_get(at->t->content, at->t->next_tool), "name")),
                      at->t->cancel                                               ? "cancelled"
                      : !res->is_error                                            ? "ok"
                      : ns / 1000000 >= (uint64_t)at->a->cfg->tool_timeout * 1000 ? "timeout"
                                                                                  : "error",
                      (int64_t)ns);
    trace_span *sp = at->tspan;
    at->tspan = NULL;
    trace_attr_str(sp, "goose.tool.outcome",
                   at->t->cancel   ? "cancelled"
                   : res->is_error ? "error"
                                   : "ok");
    if (res->is_error) trace_set_status(sp, true, "the tool call failed");
    trace_span_end(sp);
    step(at, &(turn_ev){.kind = TURN_EV_TOOL,
                        .content = res->content,
                        .structured = res->structured,
                        .is_error = res->is_error});
}

static void fx_publish(turn *t, const char *event, json_t *data);

/* Bytes of a progress notification's message kept (then cut, with an ellipsis). */
#define PROGRESS_MESSAGE_MAX 1024

/* An extension's progress notification for the running call: a tool_progress event. */
static void on_tool_progress(void *ud, double progress, double total, const char *message)
{
    a_turn *at = ud;
    json_t *req = json_array_get(at->t->content, at->t->next_tool);
    json_t *ev = json_pack("{s:O?, s:O?, s:f}", "id", json_object_get(req, "id"), "tool",
                           json_object_get(req, "name"), "progress", progress);
    if (!ev) return;
    if (total >= 0) json_object_set_new(ev, "total", json_real(total));
    if (message) { /* a line of status, not a channel for the server's data */
        size_t len = strlen(message), n = utf8_prefix(message, len, PROGRESS_MESSAGE_MAX);
        char *cut = NULL;
        if (n < len && asprintf(&cut, "%.*s…", (int)n, message) < 0) cut = NULL;
        json_object_set_new(ev, "message", cut ? json_string(cut) : json_stringn(message, n));
        free(cut);
    }
    fx_publish(at->t, "tool_progress", ev);
}

static bool fx_call_tool(turn *t, const char *name, json_t *args)
{
    a_turn *at = t->owner;
    const config *cfg = at->a->cfg;
    ext_call_opts o = {.output_cap = (size_t)cfg->tool_output_cap, .progress = on_tool_progress};
    at->tool_t0 = clock_mono_ns();
    char sname[96];
    snprintf(sname, sizeof sname, "execute_tool %s", name);
    at->tspan = trace_span_start(sname, TRACE_INTERNAL, trace_span_ctx(at->span));
    if (at->tspan) {
        const char *sep = strstr(name, "__");
        char ext[64];
        snprintf(ext, sizeof ext, "%.*s", sep ? (int)(sep - name) : 0, name);
        trace_attr_str(at->tspan, "gen_ai.operation.name", "execute_tool");
        trace_attr_str(at->tspan, "gen_ai.tool.name", name);
        if (sep) trace_attr_str(at->tspan, "goose.extension", ext);
        trace_attr_str(at->tspan, "goose.tool", sep ? sep + 2 : name);
    }
    const trace_ctx *prev = trace_set_current(trace_span_ctx(at->tspan)); /* MCP over HTTP */
    at->tool = registry_call(at->se->reg, name, args, &o, on_tool_done, at);
    trace_set_current(prev);
    if (!at->tool) {
        trace_span_discard(at->tspan);
        at->tspan = NULL;
    }
    return at->tool != NULL;
}

static void fx_cancel_tool(turn *t)
{
    a_turn *at = t->owner;
    if (at->tool) registry_cancel(at->tool);
}

perm_rule agent_permission(const char *user_id, const char *tool)
{
    perm_rule r = user_settings_perm(user_id, tool);
    return r != PERM_NONE ? r : permissions_get(tool);
}

/* The user's standing answer for the tool, else the turn's mode, says whether it runs. */
static turn_permission fx_permission(turn *t, json_t *req)
{
    a_turn *at = t->owner;
    const char *name = json_string_value(json_object_get(req, "name"));
    if (at->mode == MODE_CHAT || !name) return TURN_DENY; /* no tool was offered */
    switch (agent_permission(at->se->user_id, name)) {
    case PERM_ALWAYS_ALLOW:
        return TURN_ALLOW;
    case PERM_NEVER_ALLOW:
        return TURN_DENY;
    case PERM_ASK_BEFORE:
        return TURN_ASK;
    case PERM_NONE:
        break;
    }
    switch (at->mode) {
    case MODE_AUTO:
        return TURN_ALLOW;
    case MODE_SMART_APPROVE:
        return registry_read_only(at->se->reg, name, json_object_get(req, "arguments")) ? TURN_ALLOW
                                                                                        : TURN_ASK;
    default:
        return TURN_ASK;
    }
}

/* Forgets the turn's tool_confirmation (under mu). */
static void drop_tool_question_locked(sess *se)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(se->open_reqs, tmp, k, v)
    {
        if (!strcmp(json_string_value(v) ?: "", "tool")) json_object_del(se->open_reqs, k);
    }
}

/* Notes which tool_confirmation waits, or none (under mu: HTTP threads check answers against
 * it). */
static void set_pending(a_turn *at, const char *id)
{
    pthread_mutex_lock(&at->a->mu);
    drop_tool_question_locked(at->se);
    if (id) json_object_set_new(at->se->open_reqs, id, json_string("tool"));
    pthread_mutex_unlock(&at->a->mu);
}

static void fx_publish(turn *t, const char *event, json_t *data)
{
    a_turn *at = t->owner;
    if (!strcmp(event, "tool_confirmation"))
        set_pending(at, json_string_value(json_object_get(data, "id")));
    char *text = jtext(data, NULL);
    json_decref(data);
    if (text) bus_publish(at->se->b, event, text);
    free(text);
}

static void fx_chunk(turn *t, const char *kind, const char *s, size_t n)
{
    a_turn *at = t->owner;
    bus_publish_chunk(at->se->b, "message_chunk", kind, s, n);
}

/* The session stops being busy and the last event is published in one step under the lock, so
 * a client that reacts to the event by sending the next message is never refused, and the
 * next reply's events come after this one. */
static void fx_end(turn *t, const char *event, json_t *data)
{
    a_turn *at = t->owner;
    agent *a = at->a;
    log_info("agent", "session %s: reply ended (%s, %d round(s), %ld in / %ld out tokens)",
             at->se->id, t->last.stop_reason[0] ? t->last.stop_reason : "error", t->rounds,
             t->in_tok, t->out_tok);
    if (at->span) {
        trace_span *sp = at->span;
        at->span = NULL;
        trace_attr_str(sp, "goose.stop_reason",
                       t->last.stop_reason[0] ? t->last.stop_reason : "error");
        trace_attr_int(sp, "goose.rounds", t->rounds);
        trace_attr_int(sp, "gen_ai.usage.input_tokens", t->in_tok);
        trace_attr_int(sp, "gen_ai.usage.output_tokens", t->out_tok);
        if (!strcmp(event, "error")) {
            trace_attr_str(sp, "error.type", json_string_value(json_object_get(data, "code")));
            trace_set_status(sp, true, "the reply ended with an error");
        }
        trace_span_end(sp);
    }
    char *text = jtext(data, NULL);
    json_decref(data);
    at->se->turn = NULL;
    pthread_mutex_lock(&a->mu);
    at->se->running = false;
    drop_tool_question_locked(at->se);
    metrics_gauge_add(MG_REPLIES, -1); /* before the end event: whoever sees it sees the count */
    if (text) bus_publish(at->se->b, event, text);
    if (at->se->deleted) bus_close(at->se->b); /* its watchers read the end, then end too */
    sess_release_locked(at->se);
    a->nturns--;
    uturns_end_locked(a, at->se->user_id);
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->mu);
    free(text);
}

static const turn_fx agent_fx = {
    .load_history = fx_load_history,
    .store = fx_store,
    .update = fx_update,
    .stream = fx_stream,
    .summarize = fx_summarize,
    .save_summary = fx_save_summary,
    .cancel_stream = fx_cancel_stream,
    .call_tool = fx_call_tool,
    .cancel_tool = fx_cancel_tool,
    .permission = fx_permission,
    .chunk = fx_chunk,
    .publish = fx_publish,
    .end = fx_end,
};

/* ---- starting (loop thread) ---- */

static char *system_prompt(const char *cwd, ext_registry *reg)
{
    char date[RFC3339_LEN];
    clock_rfc3339(time(NULL), date);
    char *ext = registry_instructions(reg);
    if (!ext) return NULL; /* out of memory */
    buf b;
    buf_init(&b, BUF_CAP_SYSTEM_PROMPT);
    /* in pieces: the instructions can be kilobytes, which printf would scan twice */
    gd_err e = buf_reserve(&b, 400 + strlen(cwd) + strlen(ext));
    if (!e)
        e = buf_puts(&b, "You are goose, a general-purpose AI agent. You help the user by "
                         "reasoning and by calling the tools you are given; prefer doing over "
                         "describing.\n\nThe current date and time is ");
    if (!e) e = buf_puts(&b, date);
    if (!e) e = buf_puts(&b, ".\nThe working directory is ");
    if (!e) e = buf_puts(&b, cwd);
    if (!e) e = buf_puts(&b, ".\n\n# Extensions\n\n");
    if (!e) e = buf_puts(&b, ext);
    free(ext);
    if (e) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach_fit(&b); /* kept for the reply's life: no spare room */
}

/* ---- the extensions' requests: elicitation and sampling (loop thread) ----
 *
 * An MCP server may ask the user for input (elicitation/create: an `elicitation` event, answered
 * through POST /api/sessions/{id}/elicitations or a WebSocket frame, the schema's defaults filled
 * in) or ask the session's model for a completion (sampling/createMessage: approved like a tool
 * call named `<extension>__sampling`, then served by the session's provider). */

struct agent_req {
    agent_req *next;
    sess *se;
    char id[48];
    bool sampling;
    char ext[EXT_NAME_MAX];
    json_t *params;
    ext_reply_fn reply; /* NULL once the extension gave up on it */
    void *rud;
    prov_call *call; /* the sampling request to the provider */
    buf text;
    char model[256];
};

static void req_unlink(agent_req *r)
{
    for (agent_req **pp = &r->se->reqs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    pthread_mutex_lock(&r->se->a->mu);
    json_object_del(r->se->open_reqs, r->id);
    pthread_mutex_unlock(&r->se->a->mu);
}

/* Answers r (result stolen, or an error) and frees it. */
static void req_answer(agent_req *r, json_t *result, int code, const char *msg)
{
    req_unlink(r);
    if (r->reply)
        r->reply(r->rud, result, code, msg);
    else
        json_decref(result);
    json_decref(r->params);
    buf_free(&r->text);
    free(r);
}

static agent_req *req_find(sess *se, const char *id)
{
    for (agent_req *r = se->reqs; r; r = r->next)
        if (!strcmp(r->id, id)) return r;
    return NULL;
}

static void sampling_text(void *ud, const char *s, size_t n)
{
    agent_req *r = ud;
    buf_ignore(buf_append(&r->text, s, n)); /* past the cap the rest is dropped */
}

static void sampling_done(void *ud, const prov_result *res)
{
    agent_req *r = ud;
    r->call = NULL;
    if (!strcmp(res->stop_reason, "error") || !strcmp(res->stop_reason, "cancelled")) {
        req_answer(r, NULL, -1, res->error[0] ? res->error : "the sampling request failed");
        return;
    }
    json_t *out =
        json_pack("{s:s, s:{s:s, s:s#}, s:s, s:s}", "role", "assistant", "content", "type", "text",
                  "text", r->text.data ? r->text.data : "", r->text.len, "model", r->model,
                  "stopReason", !strcmp(res->stop_reason, "max_tokens") ? "maxTokens" : "endTurn");
    req_answer(r, out, out ? 0 : -32603, out ? NULL : "out of memory");
}

/* MCP sampling messages -> the history the dialects take: [{role, content: [items]}]. */
static json_t *sampling_history(json_t *msgs)
{
    json_t *h = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *c = json_object_get(m, "content");
        json_t *items = json_is_array(c) ? json_incref(c) : c ? json_pack("[O]", c) : NULL;
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant")) || !items) {
            json_decref(items);
            json_decref(h);
            return NULL;
        }
        json_array_append_new(h, json_pack("{s:s, s:o}", "role", role, "content", items));
    }
    return h;
}

static void sampling_start(agent_req *r)
{
    agent *a = r->se->a;
    provider_cfg pcfg;
    char err[512];
    json_t *h = sampling_history(json_object_get(r->params, "messages"));
    if (!h || !json_array_size(h)) {
        json_decref(h);
        req_answer(r, NULL, -32602,
                   "messages: a list of {role: user or assistant, content} is required");
        return;
    }
    sess *se = r->se;
    char oprov[sizeof se->own_provider], omodel[sizeof se->own_model];
    pthread_mutex_lock(&a->mu); /* a PATCH of the session sets them on its own thread */
    memcpy(oprov, se->own_provider, sizeof oprov);
    memcpy(omodel, se->own_model, sizeof omodel);
    pthread_mutex_unlock(&a->mu);
    if (se->turn) {
        pcfg = *se->turn->pcfg;
    } else if (agent_provider_owned(a, se->user_id, se->reg_admin, oprov[0] ? oprov : NULL,
                                    omodel[0] ? omodel : NULL, &pcfg, err, sizeof err) ||
               (!a->pc && !(a->pc = prov_client_new(a->l, err, sizeof err)))) {
        sodium_memzero(&pcfg, sizeof pcfg);
        json_decref(h);
        req_answer(r, NULL, -1, err);
        return;
    }
    snprintf(r->model, sizeof r->model, "%s", pcfg.model);
    buf_init(&r->text, BUF_CAP_REPLY_TEXT);
    prov_sink sink = {.ud = r, .text = sampling_text};
    json_t *none = json_array();
    const char *sys = json_string_value(json_object_get(r->params, "systemPrompt"));
    r->call =
        none ? prov_call_start(a->pc, &pcfg, sys ? sys : "", h, none, NULL, &sink, sampling_done, r)
             : NULL;
    json_decref(none);
    json_decref(h);
    log_info("agent", "session %s: %s asked the model for a completion (sampling)", r->se->id,
             r->ext);
    if (!r->call) req_answer(r, NULL, -32603, "out of memory");
}

/* Publishes an event on the session's bus (data consumed). */
static void publish(sess *se, const char *event, json_t *data)
{
    char *text = jtext(data, NULL);
    json_decref(data);
    if (text) bus_publish(se->b, event, text);
    free(text);
}

/* A sampling request is approved like a tool call named <extension>__sampling. */
static void sampling_permit(agent_req *r, exec_mode mode)
{
    /* Outside a turn (a turn read them before it began): the user's "never allow" and provider
     * are not known while the store could not be read since start, and this loop does not wait
     * for the store. */
    if (!user_settings_known(r->se->user_id)) {
        req_answer(r, NULL, -1,
                   "cannot read the user's own settings (provider, tool permissions): storage "
                   "unavailable; try again");
        return;
    }
    char tool[EXT_NAME_MAX + 16];
    snprintf(tool, sizeof tool, "%s__sampling", r->ext);
    perm_rule rule = agent_permission(r->se->user_id, tool);
    if (rule == PERM_NEVER_ALLOW || (mode == MODE_CHAT && rule != PERM_ALWAYS_ALLOW)) {
        req_answer(r, NULL, -1, "the user does not allow this server to use the model");
        return;
    }
    if (rule == PERM_ALWAYS_ALLOW || (mode == MODE_AUTO && rule != PERM_ASK_BEFORE)) {
        sampling_start(r);
        return;
    }
    publish(r->se, "tool_confirmation",
            json_pack("{s:s, s:s, s:O, s:[sssss]}", "id", r->id, "tool", tool, "arguments",
                      r->params, "choices", "allow_once", "always_allow", "deny_once",
                      "always_deny", "cancel"));
}

/* Whether u is a URL a user may be shown to open: http or https, printable, bounded. */
static bool url_ok(const char *u)
{
    if (!u || (strncasecmp(u, "https://", 8) && strncasecmp(u, "http://", 7))) return false;
    size_t n = strlen(u);
    if (n > 2048) return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++)
        if (*p <= 0x20 || *p == 0x7F) return false;
    return true;
}

static void *host_request(void *ud, extension *x, const char *method, json_t *params,
                          ext_reply_fn reply, void *rud)
{
    sess *se = ud;
    bool sampling = !strcmp(method, "sampling/createMessage");
    const char *emode = json_string_value(json_object_get(params, "mode"));
    bool url_mode = !sampling && emode && !strcmp(emode, "url");
    if (!sampling && emode && strcmp(emode, "form") && !url_mode) {
        reply(rud, NULL, -32602, "elicitation mode: form or url are supported");
        return NULL;
    }
    /* A URL the user is asked to open: shown to them, never opened by goosed; only an http(s)
     * address of printable text (not javascript:, file:, or one that hides a line break). */
    const char *url = json_string_value(json_object_get(params, "url"));
    if (url_mode && !url_ok(url)) {
        reply(rud, NULL, -32602,
              "url: an http:// or https:// address of at most 2048 printable bytes");
        return NULL;
    }
    agent_req *r = calloc(1, sizeof *r);
    if (!r) {
        reply(rud, NULL, -32603, "out of memory");
        return NULL;
    }
    r->se = se;
    r->sampling = sampling;
    r->params = json_incref(params);
    r->reply = reply;
    r->rud = rud;
    snprintf(r->ext, sizeof r->ext, "%s", x->name);
    snprintf(r->id, sizeof r->id, "%s-%u", sampling ? "sampling" : "elicitation", ++se->req_seq);
    r->next = se->reqs;
    se->reqs = r;
    pthread_mutex_lock(&se->a->mu);
    json_object_set_new(se->open_reqs, r->id, json_string(sampling ? "sampling" : "elicitation"));
    pthread_mutex_unlock(&se->a->mu);
    char id[48];
    snprintf(id, sizeof id, "%s", r->id);
    if (sampling) {
        sampling_permit(r, se->turn ? se->turn->mode : agent_mode(se->a));
        return req_find(se, id); /* NULL: answered already */
    }
    if (url_mode)
        publish(se, "elicitation",
                json_pack("{s:s, s:s, s:s, s:O?, s:s, s:O?}", "id", r->id, "extension", r->ext,
                          "mode", "url", "message", json_object_get(params, "message"), "url", url,
                          "elicitation_id", json_object_get(params, "elicitationId")));
    else
        publish(se, "elicitation",
                json_pack("{s:s, s:s, s:O?, s:O?}", "id", r->id, "extension", r->ext, "message",
                          json_object_get(params, "message"), "requested_schema",
                          json_object_get(params, "requestedSchema")));
    log_info("agent", "session %s: %s asks the user for input (%s)", se->id, r->ext, r->id);
    return r;
}

static void host_request_cancel(void *ud, void *handle)
{
    (void)ud;
    agent_req *r = handle;
    r->reply = NULL; /* the extension gave up: nobody is answered */
    if (r->call)
        prov_call_cancel(r->call); /* sampling_done frees it */
    else
        req_answer(r, NULL, 0, NULL);
}

/* ---- the extensions' sign-ins (MCP OAuth; signin.h) ----
 *
 * A remote extension whose server asks for authorization signs in on a worker of
 * signin_workers (extensions/mcp/oauth.c); its consent (here) shows the user the address as a
 * URL elicitation of the session (`elicitation` event, mode "url", answered "decline" or
 * "cancel" to give up) and waits for the browser's return to GET /oauth/callback. The grants
 * are shared by the owner's sessions (signin_grant_*). */

struct signin_who {
    atomic_int refs;
    agent *a;
    char session_id[UUID_STR_LEN];
    char user_id[UUID_STR_LEN];
};

static void who_hold(void *ud, int delta)
{
    signin_who *w = ud;
    if (atomic_fetch_add(&w->refs, delta) + delta == 0) free(w);
}

typedef struct {
    agent *a;
    bool over; /* the wait has ended: the question goes */
    char session_id[UUID_STR_LEN];
    char state[SIGNIN_STATE_MAX];
    char label[EXT_NAME_MAX];
    char *url;
} signin_msg;

static void signin_req_drop(sess *se, signin_req *q)
{
    for (signin_req **pp = &se->signins; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    pthread_mutex_lock(&se->a->mu);
    json_object_del(se->open_reqs, q->id);
    pthread_mutex_unlock(&se->a->mu);
    free(q);
}

static void signin_on_loop(void *ud)
{
    signin_msg *m = ud;
    agent *a = m->a;
    pthread_mutex_lock(&a->mu);
    sess *se = sess_find_locked(a, m->session_id); /* freed on this thread only */
    pthread_mutex_unlock(&a->mu);
    signin_req *q = se ? se->signins : NULL;
    while (q && strcmp(q->state, m->state))
        q = q->next;
    if (m->over) {
        if (q) signin_req_drop(se, q);
    } else if (!se || !se->reg || !(q = calloc(1, sizeof *q))) {
        signin_cancel(a->signins, m->state, se && se->reg ? GD_ENOMEM : GD_ECANCELLED,
                      !se        ? "the session is gone"
                      : !se->reg ? "the session's extensions were closed"
                                 : "out of memory");
    } else {
        snprintf(q->id, sizeof q->id, "signin-%u", ++se->req_seq);
        snprintf(q->state, sizeof q->state, "%s", m->state);
        q->next = se->signins;
        se->signins = q;
        pthread_mutex_lock(&a->mu);
        json_object_set_new(se->open_reqs, q->id, json_string("signin"));
        json_t *states = se->ext_states ? json_copy(se->ext_states) : json_object();
        if (states) { /* a new object: a reference handed out never changes */
            json_object_set_new(states, m->label, json_pack("{s:s}", "status", "signing_in"));
            json_decref(se->ext_states);
            se->ext_states = states;
        }
        pthread_mutex_unlock(&a->mu);
        se->noted = 0; /* the next reply notes the states again, whatever they are */
        char msg[EXT_NAME_MAX + 200];
        snprintf(msg, sizeof msg,
                 "%s asks you to sign in: open the address to authorize goosed (within %d "
                 "minutes)",
                 m->label, SIGNIN_WAIT_S / 60);
        publish(se, "elicitation",
                json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", q->id, "extension", m->label, "mode",
                          "url", "message", msg, "url", m->url));
        log_info("agent", "session %s: %s asks the user to sign in (%s)", se->id, m->label, q->id);
    }
    free(m->url);
    free(m);
}

static gd_err signin_post(signin_who *w, bool over, const char *label, const char *url,
                          const char *state)
{
    signin_msg *m = calloc(1, sizeof *m);
    if (!m || (url && !(m->url = strdup(url)))) {
        free(m);
        return GD_ENOMEM;
    }
    m->a = w->a;
    m->over = over;
    snprintf(m->session_id, sizeof m->session_id, "%s", w->session_id);
    snprintf(m->state, sizeof m->state, "%s", state);
    snprintf(m->label, sizeof m->label, "%s", label ? label : "");
    gd_err e = loop_post(w->a->l, signin_on_loop, m);
    if (e) {
        free(m->url);
        free(m);
    }
    return e;
}

/* mcp_oauth_consent_fn, on a sign-in worker */
static gd_err session_consent(void *ud, const char *label, const char *url, const char *state,
                              const char *redirect_uri, char **code, char **iss, char *err,
                              size_t errlen)
{
    (void)redirect_uri;
    signin_who *w = ud;
    gd_err e = signin_add(w->a->signins, state, w->user_id);
    if (!e && (e = signin_post(w, false, label, url, state)))
        signin_cancel(w->a->signins, state, e, "out of memory");
    if (e == GD_ESHUTDOWN || e == GD_ECANCELLED) {
        snprintf(err, errlen, "%s",
                 e == GD_ESHUTDOWN ? "the server is stopping" : "the extension was closed");
        return e;
    }
    if (e == GD_EBUSY) {
        snprintf(err, errlen,
                 "%d sign-ins wait for you already: finish or decline one of them first",
                 SIGNIN_PER_USER);
        return e;
    }
    if (e == GD_ENOMEM || e == GD_ECONFLICT || e == GD_EINVAL) {
        snprintf(err, errlen, "cannot wait for the sign-in (%s)", gd_strerror(e));
        return e;
    }
    e = signin_wait(w->a->signins, state, code, iss, err, errlen);
    if (signin_post(w, true, label, NULL, state))
        log_warn("agent", "out of memory taking a sign-in's question away");
    return e;
}

static void session_consent_abort(void *ud, const char *state)
{
    signin_who *w = ud;
    signin_cancel(w->a->signins, state, GD_ECANCELLED, "the extension was closed");
}

static char *session_grant_load(void *ud, const char *server)
{
    signin_who *w = ud;
    return signin_grant_get(w->a->signins, w->user_id, server);
}

static void session_grant_save(void *ud, const char *server, const char *grant)
{
    signin_who *w = ud;
    signin_grant_put(w->a->signins, w->user_id, server, grant);
}

/* The session's OAuth settings for its extensions' hosts: NULL when goosed offers no sign-in
 * (no address for the browser to come back to) or out of memory. */
static const mcp_oauth_cfg *session_oauth(agent *a, sess *se)
{
    const config *c = a->cfg;
    const char *h = c->host;
    bool loopback = !strcmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1");
    /* made once, at the first registry after the server listens (the port is known then) */
    if (!a->redirect_uri[0] && c->public_url[0])
        snprintf(a->redirect_uri, sizeof a->redirect_uri, "%s/oauth/callback", c->public_url);
    else if (!a->redirect_uri[0] && loopback && c->port > 0)
        snprintf(a->redirect_uri, sizeof a->redirect_uri, "%s://%s%s%s:%ld/oauth/callback",
                 c->tls_cert[0] || c->tls_self_signed ? "https" : "http", strchr(h, ':') ? "[" : "",
                 h, strchr(h, ':') ? "]" : "", c->port);
    if (!a->redirect_uri[0]) return NULL;
    if (!se->who) {
        if (!(se->who = calloc(1, sizeof *se->who))) return NULL;
        atomic_init(&se->who->refs, 1);
        se->who->a = a;
        snprintf(se->who->session_id, sizeof se->who->session_id, "%s", se->id);
        snprintf(se->who->user_id, sizeof se->who->user_id, "%s", se->user_id);
    }
    se->oauth = (mcp_oauth_cfg){.client_name = "goosed",
                                .redirect_uri = a->redirect_uri,
                                .consent = session_consent,
                                .consent_abort = session_consent_abort,
                                .grant_load = session_grant_load,
                                .grant_save = session_grant_save,
                                .consent_ud = se->who,
                                .hold = who_hold,
                                .workers = a->signin_workers};
    return &se->oauth;
}

/* Fills what the user left out of content with the schema's defaults. */
static void apply_defaults(json_t *content, json_t *schema)
{
    const char *k;
    json_t *prop;
    json_object_foreach(json_object_get(schema, "properties"), k, prop)
    {
        json_t *def = json_object_get(prop, "default");
        if (def && !json_object_get(content, k)) json_object_set(content, k, def);
    }
}

/* Adds the extension for cfg (checked) to se's registry; one that cannot be made is logged and
 * left out (the model then simply does not get its tools). */
static void add_extension(sess *se, const ext_host *host, json_t *cfg)
{
    const char *name = json_string_value(json_object_get(cfg, "name"));
    const char *type = json_string_value(json_object_get(cfg, "type"));
    char err[512] = "out of memory";
    extension *x = NULL;
    if (type && !strcmp(type, "builtin"))
        x = developer_new(host, cfg); /* the one builtin goosed has (ext_config_supported) */
    else
        x = mcp_extension_new(cfg, host, err, sizeof err);
    gd_err e = x ? registry_add(se->reg, x) : GD_ENOMEM;
    if (e)
        log_warn("agent", "session %s: extension %s left out: %s", se->id, name ? name : "?",
                 x ? gd_strerror(e) : err);
}

/* The platform extension, last (registry_free closes it first): its tools reach the others'
 * resources, offered only when one serves some. */
static void add_platform(sess *se)
{
    gd_err e = registry_add(se->reg, platform_new(&se->host, se->reg));
    if (e)
        log_warn("agent", "session %s: the platform extension left out: %s", se->id,
                 gd_strerror(e));
}

/* Whether the session's own settings remove the configured extension name. */
static bool removed(json_t *own, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(own, "remove"), i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), name)) return true;
    return false;
}

/* Whether cfg, a session's own extension named name, is the configured one of that name (the
 * admin's, turned on for the session), whatever its "enabled" says: it then reaches what the
 * admin's do. */
static bool configured_one(json_t *snap, const char *name, json_t *cfg)
{
    json_t *mine = json_object_get(snap, name);
    if (!mine) return false;
    json_t *x = json_copy(mine), *y = json_copy(cfg);
    if (x) json_object_del(x, "enabled");
    if (y) json_object_del(y, "enabled");
    bool same = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

/* Adds the owner's own extensions (user_settings.h) that are on and that the session neither
 * removed nor replaced, noting them in se->user_added. */
static void add_user_extensions(sess *se, json_t *mine, json_t *own)
{
    const char *name;
    json_t *ue;
    json_object_foreach(mine, name, ue)
    {
        json_t *cfg = json_object_get(ue, "config");
        if (!cfg || !json_is_true(json_object_get(ue, "enabled")) || removed(own, name) ||
            json_object_get(json_object_get(own, "add"), name))
            continue;
        if (!se->user_added) se->user_added = json_object();
        json_object_set_new(se->user_added, name, json_true());
        add_extension(se, &se->uhost, cfg);
    }
}

/* Whether the tools of a session of user_id (an admin or not) may run in its working directory
 * dir, as it resolves now: a user who is not an admin works only in their workspace and inside
 * allowed_roots (config_session_dir_check). A session made before that rule (or while they were
 * an admin, or before allowed_roots changed) elsewhere gets no tools there: neither the shell nor
 * the editor nor a stdio server would be kept from goosed's HOME or another user's project.
 * NULL when they may; else why (the caller frees it), or NULL with *oom set. */
static char *work_dir_refusal(agent *a, const char *user_id, bool admin, const char *dir, bool *oom)
{
    *oom = false;
    if (!config_user_confined(user_id, admin)) return NULL;
    char real[PATH_MAX], err[PATH_MAX * 2 + 2560];
    const char *d =
        realpath(dir, real) ? real : dir; /* a link put in its place since is followed */
    if (!config_session_dir_check(a->cfg, user_id, admin, "the session's working directory", d, err,
                                  sizeof err))
        return NULL;
    char *msg = NULL;
    if (asprintf(&msg,
                 "%s; its tools do not run there. Go on in a session of your workspace (a new "
                 "one, or this one exported and imported with \"working_directory\"), or ask an "
                 "admin to add the directory to allowed_roots",
                 err) < 0) {
        *oom = true;
        return NULL;
    }
    return msg;
}

/* The session's extensions: the configured ones that are enabled, supported and allowed, as the
 * owner's own choices change them (their own extensions, the admin's they turned off or on),
 * minus those the session removed, plus those it added. Made again when the configuration, the
 * owner's extensions or the session's settings changed since (processes of the old set are
 * stopped). The owner's are read from memory, and only when user_extensions is on. */
static bool ensure_registry(agent *a, sess *se, json_t *settings, const char *cwd, bool admin)
{
    unsigned gen = 0, ugen = 0;
    json_t *snap = a->exts ? ext_set_snapshot(a->exts, &gen) : NULL;
    json_t *own = json_object_get(settings, "extensions");
    json_t *mine = se->user_id[0] && a->cfg->user_extensions
                       ? user_settings_extensions(se->user_id, &ugen)
                       : NULL;
    char *key = own ? json_dumps(own, JSON_COMPACT | JSON_SORT_KEYS) : strdup("");
    if (!key || (a->exts && !snap)) {
        free(key);
        json_decref(snap);
        json_decref(mine);
        return false;
    }
    if (se->reg && se->reg_gen == gen && se->user_gen == ugen && se->reg_admin == admin &&
        se->reg_key && !strcmp(se->reg_key, key)) {
        free(key);
        json_decref(snap);
        json_decref(mine);
        return true;
    }
    registry_free(se->reg);
    se->reg = NULL;
    json_decref(se->tools);
    se->tools = NULL;
    free(se->reg_key);
    se->reg_key = key;
    se->reg_gen = gen;
    se->user_gen = ugen;
    se->reg_admin = admin;
    json_decref(se->user_added);
    se->user_added = NULL;
    json_decref(se->sess_added);
    se->sess_added = NULL;
    se->host_ops =
        (ext_host_ops){.request = host_request, .request_cancel = host_request_cancel, .ud = se};
    se->host = (ext_host){.l = a->l,
                          .workers = a->workers,
                          .env = a->tool_env,
                          .protected_dirs = a->protected_dirs,
                          .limits = &a->limits,
                          .ops = &se->host_ops,
                          .tool_timeout_ms = a->cfg->tool_timeout * 1000,
                          .oauth = session_oauth(a, se)};
    snprintf(se->host.session_id, sizeof se->host.session_id, "%s", se->id);
    free(se->cwd);
    if (!(se->cwd = strdup(cwd)) || !(se->reg = registry_new(&se->host))) {
        json_decref(snap);
        json_decref(mine);
        return false;
    }
    se->host.cwd = se->cwd;
    se->host.cwd_exact = !admin; /* checked as theirs when the reply starts: no link since */
    /* The commands the model runs for a user who is not an admin: kept from the private
     * networks and the host, as their remote extensions are. */
    se->host.cmd_reach = admin ? NULL : a->reach;
    /* What a user who is not an admin adds (their own, their session's) reaches only public
     * addresses and user_extension_hosts: not what trusts goosed for where it stands. */
    se->uhost = se->host;
    se->uhost.reach = admin ? NULL : a->reach;
    se->uhost.confined = !admin;
    /* Their npx servers' packages, kept for them alone (a shared cache could be planted). */
    free(se->npm_cache);
    se->npm_cache = NULL;
    if (!admin && se->user_id[0] && a->cfg->data_dir[0] &&
        asprintf(&se->npm_cache, "%s/npm/%s", a->cfg->data_dir, se->user_id) < 0)
        se->npm_cache = NULL;
    se->uhost.npm_cache = se->npm_cache;
    if (!snap) { /* no configured set: the developer extension alone */
        json_t *dev = json_pack("{s:s, s:s}", "name", "developer", "type", "builtin");
        if (dev) add_extension(se, &se->host, dev);
        json_decref(dev);
        add_user_extensions(se, mine, own);
        json_decref(mine);
        add_platform(se);
        return true;
    }
    const char *name;
    json_t *cfg;
    json_object_foreach(snap, name, cfg)
    {
        json_t *ue = json_object_get(mine, name); /* the owner's choice for it, if any */
        bool on =
            ue ? !json_object_get(ue, "config") && json_is_true(json_object_get(ue, "enabled"))
               : json_is_true(json_object_get(cfg, "enabled"));
        if (!on || !ext_config_supported(cfg) || json_object_get(cfg, "refused") ||
            removed(own, name) || json_object_get(json_object_get(own, "add"), name))
            continue;
        add_extension(se, &se->host, cfg);
    }
    add_user_extensions(se, mine, own);
    json_object_foreach(json_object_get(own, "add"), name, cfg)
    {
        if (!se->sess_added) se->sess_added = json_object();
        json_object_set_new(se->sess_added, name, json_true());
        char why[PATH_MAX + 512];
        json_t *opened =
            user_settings_open_fields(cfg, se->user_id, name, why, sizeof why); /* sealed */
        if (!opened) {
            log_error("agent", "session %s: extension %s left out: %s", se->id, name, why);
            continue;
        }
        add_extension(se, configured_one(snap, name, opened) ? &se->host : &se->uhost, opened);
        json_decref(opened);
    }
    json_decref(snap);
    json_decref(mine);
    add_platform(se);
    return true;
}

/* Ends a turn that could not begin (its state machine never ran). */
static void fail_early(a_turn *at, const char *code, const char *msg)
{
    at->t->state = TURN_DONE;
    snprintf(at->t->last.stop_reason, sizeof at->t->last.stop_reason, "error");
    agent_fx.end(at->t, "error", json_pack("{s:s, s:s}", "error", msg, "code", code));
    a_turn_free(at);
}

/* Notes what the session's extensions did, for GET /api/extensions (loop thread). Only when
 * something changed since this session's last note: a turn of a session whose extensions stay
 * as they were costs no copy of their tools. */
/* An extension's state, and why when it failed (into why). */
static ext_state ext_state_of(extension *x, char *why, size_t whylen)
{
    why[0] = '\0';
    return x->ops->state ? x->ops->state(x, why, whylen) : EXT_RUNNING;
}

static void note_ext_status(agent *a, sess *se)
{
    ext_registry *reg = se->reg;
    size_t n = registry_count(reg);
    char why[512];
    uint64_t digest = 14695981039346656037u; /* FNV-1a over each one's state and tools */
    for (size_t i = 0; i < n; i++) {
        extension *x = registry_get(reg, i);
        ext_state st = ext_state_of(x, why, sizeof why);
        /* Each reply that goes on without an extension tells the session's watchers why (a
         * `notification` event): the session's list shows no state, a user's own is theirs. */
        if (st == EXT_FAILED)
            publish(se, "notification",
                    json_pack("{s:s, s:s, s:s}", "level", "error", "extension", x->name, "message",
                              why));
        uint64_t v[3] = {(uint64_t)(uintptr_t)x, (uint64_t)st, x->tools_gen};
        for (int k = 0; k < 3; k++)
            digest = (digest ^ v[k]) * 1099511628211u;
        for (const char *p = why; *p; p++)
            digest = (digest ^ (unsigned char)*p) * 1099511628211u;
    }
    digest |= 1;                     /* never 0 */
    if (digest == se->noted) return; /* the usual turn: nothing changed, nothing to note */
    se->noted = digest;
    static const char *const names[] = {"stopped", "starting", "running", "failed"};
    json_t *states = json_object(); /* the session's own view (agent_session_ext_states) */
    for (size_t i = 0; states && i < n; i++) {
        extension *x = registry_get(reg, i);
        ext_state st = ext_state_of(x, why, sizeof why);
        json_t *o = json_pack("{s:s}", "status", names[st]);
        if (o && st == EXT_FAILED) json_object_set_new(o, "error", json_string(why));
        if (o) json_object_set_new(states, x->name, o);
    }
    if (states) {
        pthread_mutex_lock(&a->mu);
        json_decref(se->ext_states);
        se->ext_states = states;
        pthread_mutex_unlock(&a->mu);
    }
    for (size_t i = 0; i < n; i++) {
        extension *x = registry_get(reg, i);
        ext_state st = ext_state_of(x, why, sizeof why);
        /* a session's own extension is that session's business: noted under its name it would
         * show as the configured one of that name to every user */
        if (json_object_get(se->sess_added, x->name)) continue;
        /* a user's own extension is noted under their id (agent_extension_status) */
        char uname[UUID_STR_LEN + EXT_NAME_MAX + 1];
        const char *sname = x->name;
        if (json_object_get(se->user_added, x->name)) {
            snprintf(uname, sizeof uname, "%s/%s", se->user_id, x->name);
            sname = uname;
        }
        json_t *o = json_pack("{s:s}", "status", names[st]);
        if (!o) continue;
        if (st == EXT_FAILED) json_object_set_new(o, "error", json_string(why));
        pthread_mutex_lock(&a->smu);
        json_t *old = json_object_get(a->ext_status, sname);
        /* An extension's tools are replaced when they change, never changed in place: holding
         * a reference is as good as a copy. */
        json_t *tools = st == EXT_RUNNING ? json_incref(x->ops->tools(x))
                                          : json_incref(json_object_get(old, "tools"));
        json_object_set_new(o, "tools", tools ? tools : json_array());
        json_object_set_new(a->ext_status, sname, o);
        pthread_mutex_unlock(&a->smu);
    }
}

/* The session's extensions are up (or failed: they then offer no tools): the turn begins. */
static void registry_started_in(a_turn *at);

static void registry_started(void *ud, gd_err e, const char *why)
{
    (void)e;
    (void)why;
    ((a_turn *)ud)->starting = NULL;
    const log_ctx *lc = log_ctx_set(&((a_turn *)ud)->lctx);
    registry_started_in(ud);
    log_ctx_set(lc);
}

/* A cancel (or the session's deletion, or shutdown) while the session's extensions start (a
 * server slow to answer initialize, npx fetching a package): the turn stops waiting for them and
 * begins at once, to end as cancelled as soon as its history is in. Steps the cancel first. */
static void cancel_turn(a_turn *at, bool gone)
{
    reg_start *s = at->starting;
    if (!s) {
        step(at, &(turn_ev){.kind = TURN_EV_CANCEL, .err = gone ? GD_EGONE : GD_OK});
        return;
    }
    at->starting = NULL;
    registry_start_abandon(s);
    turn_step(at->t, &(turn_ev){.kind = TURN_EV_CANCEL, .err = gone ? GD_EGONE : GD_OK});
    const log_ctx *lc = log_ctx_set(&at->lctx);
    begin(at);
    log_ctx_set(lc);
}

static void registry_started_in(a_turn *at)
{
    agent *a = at->a;
    sess *se = at->se;
    note_ext_status(a, se);
    unsigned gen = registry_tools_gen(se->reg);
    if (!se->tools || se->tools_gen != gen) {
        json_decref(se->tools);
        if ((se->tools = shared_tools(a, se->reg, &se->tools_bytes))) se->tools_gen = gen;
    }
    bool chat = at->mode == MODE_CHAT; /* no tools offered */
    if (!se->tools || !(at->tools = chat ? json_array() : json_incref(se->tools)) ||
        !(at->system = system_prompt(at->cwd, se->reg))) {
        fail_early(at, "internal", "out of memory starting the reply");
        return;
    }
    at->t->overhead_bytes = strlen(at->system) + (chat ? 0 : se->tools_bytes);
    log_info("agent", "session %s: reply started with %s/%s (%s)", se->id, at->pcfg->def->name,
             at->pcfg->model, exec_mode_name(at->mode));
    begin(at);
}

static void turn_start_in(a_turn *at);

static void turn_start_on_loop(void *ud)
{
    const log_ctx *lc = log_ctx_set(&((a_turn *)ud)->lctx);
    turn_start_in(ud);
    log_ctx_set(lc);
}

static void turn_start_in(a_turn *at)
{
    agent *a = at->a;
    at->se->turn = at;
    bool cancelled = at->se->cancel_early, gone = at->se->cancel_gone; /* cancel_on_loop's */
    at->se->cancel_early = at->se->cancel_gone = false;
    if (cancelled) /* the turn only notes it: it ends as cancelled once its history is in */
        turn_step(at->t, &(turn_ev){.kind = TURN_EV_CANCEL, .err = gone ? GD_EGONE : GD_OK});
    if (at->dir_refused) { /* no tools where the owner may not work: no reply at all */
        fail_early(at, "forbidden", at->dir_refused);
        return;
    }
    if (at->read_err) { /* the turn ends at once, as its LOADING state says for the error */
        begin(at);
        return;
    }
    char err[512];
    if (!a->pc && !(a->pc = prov_client_new(a->l, err, sizeof err))) {
        fail_early(at, "provider_unavailable", err);
        return;
    }
    int own = exec_mode_parse(json_string_value(json_object_get(at->settings, "execution_mode")));
    at->mode = own >= 0 ? (exec_mode)own : agent_mode(a);
    const char *oprov = json_string_value(json_object_get(at->settings, "provider"));
    const char *omodel = json_string_value(json_object_get(at->settings, "model"));
    pthread_mutex_lock(&a->mu);
    own_choice_set_locked(at->se, oprov, omodel);
    pthread_mutex_unlock(&a->mu);
    if (!ensure_registry(a, at->se, at->settings, at->cwd, at->admin)) {
        fail_early(at, "internal", "out of memory starting the extensions");
        return;
    }
    if (registry_up(at->se->reg)) /* the usual case: no loop turn spent waiting for nothing */
        registry_started(at, GD_OK, NULL);
    else if (!(at->starting = registry_start(at->se->reg, registry_started, at))) /* MCP first */
        fail_early(at, "internal", "out of memory starting the extensions");
}

/* ---- a session's extensions for the API (resources, prompts) ---- */

typedef struct {
    agent *a;
    sess *se;
    json_t *settings;
    char *cwd;
    bool admin;
    void (*fn)(ext_registry *r, void *ud);
    void *ud;
} ext_req_msg;

static void ext_request_on_loop(void *ud)
{
    ext_req_msg *m = ud;
    sess *se = m->se;
    /* a running turn keeps the registry it began with; otherwise it is made as a turn would */
    bool ok = se->turn ? se->reg != NULL : ensure_registry(m->a, se, m->settings, m->cwd, m->admin);
    m->fn(ok ? se->reg : NULL, m->ud);
    pthread_mutex_lock(&m->a->mu);
    sess_release_locked(se);
    pthread_mutex_unlock(&m->a->mu);
    json_decref(m->settings);
    free(m->cwd);
    free(m);
}

gd_err agent_session_ext_request(agent *a, const char *session_id, bool admin,
                                 void (*fn)(ext_registry *r, void *ud), void *ud, char *err,
                                 size_t errlen)
{
    store_session s;
    ext_req_msg *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    gd_err e = a->st->ops->session_get(a->st, session_id, &s);
    if (!e) e = a->st->ops->session_settings_get(a->st, session_id, &m->settings);
    if (e) {
        snprintf(err, errlen, "%s", e == GD_ENOTFOUND ? "no such session" : store_errmsg());
        json_decref(m->settings);
        free(m);
        return e;
    }
    bool oom = false;
    char *refused = work_dir_refusal(a, s.user_id, admin, s.working_dir, &oom);
    if (refused || oom) { /* its extensions would start there */
        snprintf(err, errlen, "%s", refused ? refused : "out of memory");
        free(refused);
        json_decref(m->settings);
        free(m);
        return refused ? GD_EDENIED : GD_ENOMEM;
    }
    *m = (ext_req_msg){.a = a,
                       .settings = m->settings,
                       .cwd = strdup(s.working_dir),
                       .admin = admin,
                       .fn = fn,
                       .ud = ud};
    pthread_mutex_lock(&a->mu);
    sess *se = a->stopping || !m->cwd ? NULL : sess_get_locked(a, session_id);
    if (a->stopping)
        e = GD_ESHUTDOWN, snprintf(err, errlen, "the server is shutting down");
    else if (!se)
        e = GD_ENOMEM, snprintf(err, errlen, "out of memory");
    if (!e) {
        if (!se->user_id[0]) /* an owner never changes: written once, read by the loop */
            snprintf(se->user_id, sizeof se->user_id, "%s", s.user_id);
        se->refs++; /* the session stays until fn has run */
        m->se = se;
        if ((e = loop_post(a->l, ext_request_on_loop, m)) != GD_OK) {
            sess_release_locked(se);
            snprintf(err, errlen, "out of memory");
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (e) {
        json_decref(m->settings);
        free(m->cwd);
        free(m);
    }
    return e;
}

/* ---- configured extensions ---- */

void agent_use_extensions(agent *a, ext_set *s)
{
    a->exts = s;
}

json_t *agent_session_ext_states(agent *a, const char *session_id)
{
    pthread_mutex_lock(&a->mu);
    sess *se = sess_find_locked(a, session_id);
    json_t *o = se ? json_incref(se->ext_states) : NULL;
    pthread_mutex_unlock(&a->mu);
    return o;
}

json_t *agent_extension_status(agent *a, const char *name)
{
    pthread_mutex_lock(&a->smu);
    json_t *o = json_incref(json_object_get(a->ext_status, name));
    pthread_mutex_unlock(&a->smu);
    return o;
}

/* ---- the provider ---- */

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

void agent_session_provider_set(agent *a, const char *session_id, const char *provider,
                                const char *model)
{
    pthread_mutex_lock(&a->mu);
    sess *se = sess_find_locked(a, session_id); /* none in memory: a reply reads the store */
    if (se) own_choice_set_locked(se, provider, model);
    pthread_mutex_unlock(&a->mu);
}

long agent_tool_processes(agent *a)
{
    return atomic_load(&a->limits.processes);
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

/* Whether url's host ("http://localhost:11434") is this machine or a private network (a URL
 * whose host cannot be read plainly counts as such). */
static bool url_local(const char *url)
{
    char host[256];
    if (!net_url_host(url, host, sizeof host)) return true;
    size_t n = strlen(host);
    if (host[0] == '[' && n > 2) { /* [::1] */
        memmove(host, host + 1, n - 2);
        host[n -= 2] = '\0';
    }
    if (n && host[n - 1] == '.') host[--n] = '\0';
    if (!strcasecmp(host, "localhost") || (n > 10 && !strcasecmp(host + n - 10, ".localhost")))
        return true;
    struct sockaddr_storage ss;
    return net_addr_parse(host, &ss) && net_addr_internal((const struct sockaddr *)&ss);
}

bool agent_provider_open(agent *a, const provider_def *def, char *why, size_t whylen)
{
    char name[128], model[256];
    agent_current(a, name, sizeof name, model, sizeof model);
    const char *host = getenv(def->host_env);
    if (!strcmp(name, def->name) || (host && *host) || !url_local(def->default_host)) return true;
    snprintf(why, whylen,
             "provider %s: its built-in address %s is on this server's machine, where only an "
             "admin may point goosed (an admin can set %s, or make %s the server's provider)",
             def->name, def->default_host, def->host_env, def->name);
    return false;
}

void agent_current_for(agent *a, const char *user_id, char *name, size_t namelen, char *model,
                       size_t modellen)
{
    if (!user_settings_provider(user_id, name, namelen, model, modellen))
        agent_current(a, name, namelen, model, modellen);
}

gd_err agent_provider(agent *a, provider_cfg *out, char *err, size_t errlen)
{
    return agent_provider_for(a, "", out, err, errlen);
}

gd_err agent_provider_for(agent *a, const char *user_id, provider_cfg *out, char *err,
                          size_t errlen)
{
    return agent_provider_chosen(a, user_id, NULL, NULL, out, err, errlen);
}

gd_err agent_provider_owned(agent *a, const char *user_id, bool admin, const char *want,
                            const char *want_model, provider_cfg *out, char *err, size_t errlen)
{
    gd_err e = agent_provider_chosen(a, user_id, want, want_model, out, err, errlen);
    if (!e && !admin && user_id[0] && !agent_provider_open(a, out->def, err, errlen)) {
        sodium_memzero(out, sizeof *out);
        e = GD_EINVAL;
    }
    return e;
}

gd_err agent_provider_chosen(agent *a, const char *user_id, const char *want,
                             const char *want_model, provider_cfg *out, char *err, size_t errlen)
{
    const config *cfg = a->cfg;
    char name[128], model[256];
    memset(out, 0, sizeof *out);
    gd_err ready = user_settings_ready(user_id, err, errlen);
    if (ready) return ready;
    agent_current_for(a, user_id, name, sizeof name, model, sizeof model);
    if (want && strcmp(want, name)) { /* another provider: its own default model, unless given */
        snprintf(name, sizeof name, "%s", want);
        model[0] = '\0';
    }
    if (want_model) snprintf(model, sizeof model, "%s", want_model);
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
        buf_init(&names, BUF_CAP_MESSAGE);
        gd_err e = GD_OK;
        for (size_t i = 0; i < provider_ndefs && !e; i++)
            e = buf_printf(&names, "%s%s", i ? ", " : "", provider_defs[i].name);
        snprintf(err, errlen, "unknown provider '%s' (known: %s)", name,
                 e || !names.data ? "see the documentation" : names.data);
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
    /* The user's own key first (an error when it does not open), then the server's. */
    int own = user_settings_key(user_id, def->key_env, out->key, sizeof out->key, err, errlen);
    if (own < 0) {
        sodium_memzero(out->key, sizeof out->key);
        return GD_EINVAL;
    }
    if (def->key_env && !own && !agent_provider_key(def, out->key, sizeof out->key)) {
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

/* ---- starting, cancelling (HTTP threads) ---- */

/* Whether the session chose a provider or a model of its own. */
static bool session_has_provider(agent *a, const char *session_id)
{
    json_t *settings = NULL;
    bool has = a->st->ops->session_settings_get(a->st, session_id, &settings) == GD_OK &&
               (json_object_get(settings, "provider") || json_object_get(settings, "model"));
    json_decref(settings);
    return has;
}

/* The session's own provider or model (PATCH /api/sessions/{id}), when it has one, in place of
 * the user's or the server's the turn was started with: nonzero with why in msg when it cannot
 * be used (no key, or a local provider a user may not reach). */
static gd_err session_provider(a_turn *at, char *msg, size_t msglen)
{
    const char *name = json_string_value(json_object_get(at->settings, "provider"));
    const char *model = json_string_value(json_object_get(at->settings, "model"));
    if (!name && !model) return GD_OK;
    const char *uid = at->se->user_id;
    provider_cfg pcfg;
    gd_err e = agent_provider_owned(at->a, uid, at->admin, name, model, &pcfg, msg, msglen);
    const provider_cfg *shared = e ? NULL : cfg_share(at->a, &pcfg);
    sodium_memzero(&pcfg, sizeof pcfg);
    if (e) return e;
    if (!shared) {
        snprintf(msg, msglen, "out of memory");
        return GD_ENOMEM;
    }
    cfg_unref(at->a, at->pcfg);
    at->pcfg = shared;
    return GD_OK;
}

/* On a worker: reads what the turn needs from the store (the session's working directory, its
 * own settings and its history), then hands the turn to the loop. Nothing of the store is read
 * on the HTTP thread, and the loop gets the turn ready to begin. */
static void prepare_job(void *arg)
{
    a_turn *at = arg;
    agent *a = at->a;
    store_session s;
    json_t *stored = NULL;
    store_summary sum;
    gd_err e = a->st->ops->session_read(a->st, at->sid, &s, &at->settings, &sum, &stored);
    at->summary = sum.text;
    long summarized = sum.count;
    if (!e && !(at->cwd = strdup(s.working_dir))) e = GD_ENOMEM;
    bool oom = false;
    if (!e && (at->dir_refused = work_dir_refusal(a, s.user_id, at->admin, s.working_dir, &oom))) {
        json_decref(stored); /* the turn ends at once, saying why (turn_start_in) */
        free(at->summary);
        at->summary = NULL;
        post_or_log(a, turn_start_on_loop, at);
        return;
    }
    if (oom) e = GD_ENOMEM;
    at->nstored = stored ? (long)json_array_size(stored) : 0;
    if (!e && summarized > at->nstored) { /* not this history's (a file edited by hand) */
        free(at->summary);
        at->summary = NULL;
        summarized = 0;
    }
    if (!e && !(at->history = turn_prepare_history(stored, (size_t)summarized, &at->history_bytes)))
        e = GD_ENOMEM;
    json_decref(stored);
    if (e) {
        at->read_err = e;
        snprintf(at->read_msg, sizeof at->read_msg, "%s",
                 e == GD_ENOMEM ? "out of memory preparing the history" : store_errmsg());
    } else if ((e = session_provider(at, at->read_msg, sizeof at->read_msg)) || !at->pcfg) {
        /* (no pcfg: it chose none after all; read_msg says why there is no other) */
        json_decref(at->history); /* the turn ends at once, saying why (read_msg) */
        at->history = NULL;
        at->read_err = e == GD_ENOMEM ? GD_ENOMEM : GD_EINVAL;
    }
    post_or_log(a, turn_start_on_loop, at);
}

gd_err agent_start(agent *a, const char *session_id, const char *user_id, bool admin,
                   const char *text, uint64_t *first_seq, char *err, size_t errlen)
{
    if (!ids_is_uuid(session_id)) {
        snprintf(err, errlen, "no such session");
        return GD_ENOTFOUND;
    }
    a_turn *at = calloc(1, sizeof *at);
    if (!at) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    gd_err e;
    provider_cfg pcfg;
    e = agent_provider_owned(a, user_id, admin, NULL, NULL, &pcfg, err, errlen);
    if (!e && !(at->pcfg = cfg_share(a, &pcfg)))
        e = GD_ENOMEM, snprintf(err, errlen, "out of memory");
    sodium_memzero(&pcfg, sizeof pcfg);
    /* Without a provider of the user's or the server's, a session that chose its own still
     * replies: looked up only on this path (a small row), resolved with the history. */
    if (e == GD_EINVAL && session_has_provider(a, session_id)) {
        e = GD_OK;
        snprintf(at->read_msg, sizeof at->read_msg, "%s", err); /* if it chose none after all */
    }
    if (e) {
        free(at);
        return e;
    }
    at->a = a;
    at->admin = admin;
    snprintf(at->sid, sizeof at->sid, "%s", session_id);
    /* the request that asked for it: its id, user and span are the turn's context */
    const log_ctx *lc = log_ctx_get();
    snprintf(at->rid, sizeof at->rid, "%s", lc && lc->request_id ? lc->request_id : "");
    snprintf(at->user, sizeof at->user, "%s", lc && lc->user && lc->user[0] ? lc->user : user_id);
    at->lctx = (log_ctx){.request_id = at->rid, .session_id = at->sid, .user = at->user};
    if ((at->span = trace_span_start("invoke_agent goose", TRACE_INTERNAL, trace_current()))) {
        trace_id_hex(trace_span_ctx(at->span), at->lctx.trace_id);
        trace_attr_str(at->span, "gen_ai.operation.name", "invoke_agent");
        trace_attr_str(at->span, "gen_ai.agent.name", "goose");
        trace_attr_str(at->span, "gen_ai.conversation.id", session_id);
        trace_attr_str(at->span, "goose.session_id", session_id);
        if (at->pcfg) { /* else the session's own, known with its history */
            trace_attr_str(at->span, "gen_ai.system", at->pcfg->def->name);
            trace_attr_str(at->span, "gen_ai.request.model", at->pcfg->model);
        }
    }
    if (!(at->t = turn_new(&agent_fx, at, text, a->cfg->max_turns, a->cfg->context_limit))) {
        trace_span_discard(at->span);
        cfg_unref(a, at->pcfg);
        free(at);
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    at->t->compact_threshold = a->cfg->auto_compact_threshold;
    pthread_mutex_lock(&a->mu);
    sess *se = a->stopping ? NULL : sess_get_locked(a, session_id);
    if (a->stopping)
        e = GD_ESHUTDOWN, snprintf(err, errlen, "the server is shutting down");
    else if (!se)
        e = GD_ENOMEM, snprintf(err, errlen, "out of memory");
    else if (se->running)
        e = GD_ECONFLICT, snprintf(err, errlen, "a reply is already running in this session");
    else if (a->nturns >= a->cfg->max_replies)
        e = GD_EBUSY, snprintf(err, errlen,
                               "%ld replies are running, the most this server runs at once "
                               "(max_replies); try again shortly",
                               a->nturns);
    struct user_turns *ut = NULL;
    if (!e && user_id[0]) {
        ut = uturns_locked(a, user_id, true);
        if (!ut)
            e = GD_ENOMEM, snprintf(err, errlen, "out of memory");
        else if (a->cfg->max_replies_per_user > 0 && ut->n >= a->cfg->max_replies_per_user)
            e = GD_EQUOTA, snprintf(err, errlen,
                                    "you have %ld replies running, the most one user runs at "
                                    "once (max_replies_per_user); try again once one ends",
                                    ut->n);
        if (ut && !ut->n && e) *ut = a->uturns[--a->nuturns]; /* made for nothing */
    }
    if (e) {
        pthread_mutex_unlock(&a->mu);
        a_turn_free(at);
        return e;
    }
    se->running = true;
    se->turn_seq++;
    se->refs++;
    a->nturns++;
    metrics_gauge_add(MG_REPLIES, 1);
    if (ut) ut->n++;
    if (!se->user_id[0]) snprintf(se->user_id, sizeof se->user_id, "%s", user_id);
    at->se = se;
    *first_seq = bus_next_seq(se->b);
    pthread_mutex_unlock(&a->mu);
    /* The session, its settings and its history are read on a worker, which then hands the
     * turn to the loop (prepare_job). */
    if ((e = pool_submit(a->workers, prepare_job, at)) == GD_OK) return GD_OK;
    if (e == GD_AGAIN)
        e = GD_EBUSY,
        snprintf(err, errlen, "too many tool calls and history reads are waiting; try again");
    else
        snprintf(err, errlen, "cannot read the session's history now");
    pthread_mutex_lock(&a->mu);
    se->running = false;
    sess_release_locked(se);
    a->nturns--;
    metrics_gauge_add(MG_REPLIES, -1);
    uturns_end_locked(a, user_id);
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->mu);
    a_turn_free(at);
    return e;
}

typedef struct {
    agent *a;
    sess *se;
    bool gone;
    unsigned turn_seq; /* the turn it was meant for */
} cancel_msg;

static void cancel_on_loop(void *ud)
{
    cancel_msg *m = ud;
    a_turn *at = m->se->turn;
    if (at) {
        if (turn_pending_confirmation(at->t)) set_pending(at, NULL);
        cancel_turn(at, m->gone);
    }
    pthread_mutex_lock(&m->a->mu);
    if (!at && m->se->running && m->se->turn_seq == m->turn_seq) {
        /* its turn is still being read on a worker: turn_start_on_loop cancels it */
        m->se->cancel_early = true;
        m->se->cancel_gone |= m->gone;
    }
    sess_release_locked(m->se);
    pthread_mutex_unlock(&m->a->mu);
    free(m);
}

static gd_err cancel(agent *a, const char *session_id, bool gone)
{
    cancel_msg *m = malloc(sizeof *m);
    if (!m) return GD_ENOMEM;
    pthread_mutex_lock(&a->mu);
    sess *se = sess_find_locked(a, session_id);
    gd_err e = se && se->running ? GD_OK : GD_ENOTFOUND;
    if (e == GD_OK) {
        se->refs++; /* the session stays until the cancel has run */
        *m = (cancel_msg){a, se, gone, se->turn_seq};
        if ((e = loop_post(a->l, cancel_on_loop, m)) != GD_OK) sess_release_locked(se);
    }
    /* The reply's question goes with the cancel's answer: an answer to it after this is refused
     * (404), not taken and then ignored because the loop ran the cancel first. One posted
     * before is run before the cancel. */
    if (e == GD_OK) drop_tool_question_locked(se);
    pthread_mutex_unlock(&a->mu);
    if (e) free(m);
    return e;
}

/* ---- tool confirmations ---- */

int exec_mode_parse(const char *s)
{
    static const char *const names[] = {"auto", "approve", "smart_approve", "chat"};
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, names[i])) return i;
    return s && !strcmp(s, "smart_approval") ? MODE_SMART_APPROVE : -1;
}

const char *exec_mode_name(exec_mode m)
{
    static const char *const names[] = {"auto", "approve", "smart_approve", "chat"};
    return (unsigned)m < 4 ? names[m] : "auto";
}

exec_mode agent_mode(agent *a)
{
    return (exec_mode)atomic_load(&a->mode);
}

void agent_set_mode(agent *a, exec_mode m)
{
    atomic_store(&a->mode, (int)m);
}

typedef enum { ACT_ALLOW_ONCE, ACT_ALWAYS_ALLOW, ACT_DENY_ONCE, ACT_ALWAYS_DENY, ACT_CANCEL } act;

/* What every answer posted to the loop starts with. */
typedef struct {
    agent *a;
    sess *se; /* held (refs) until the answer has run */
    char id[128];
} answer_hdr;

typedef struct {
    answer_hdr h;
    act action;
} confirm_msg;

/* Takes the question `id` of the session if it waits as one of kinds (a second answer then gets
 * 404), holds the session and posts fn(m) to the loop; fn ends with answer_done. GD_ENOTFOUND (err
 * names the question: what), GD_ENOMEM; m is then not posted (the caller frees it). */
static gd_err post_answer(agent *a, const char *session_id, const char *id,
                          const char *const *kinds, const char *what, loop_fn fn, answer_hdr *m,
                          char *err, size_t errlen)
{
    pthread_mutex_lock(&a->mu);
    sess *se = sess_find_locked(a, session_id);
    const char *kind = se ? json_string_value(json_object_get(se->open_reqs, id)) : NULL;
    gd_err e = GD_ENOTFOUND;
    for (int i = 0; kind && kinds[i]; i++)
        if (!strcmp(kind, kinds[i])) e = GD_OK;
    if (e == GD_OK) {
        char was[16];
        snprintf(was, sizeof was, "%s", kind);
        json_object_set_new(se->open_reqs, id, json_string("answered"));
        se->refs++;
        *m = (answer_hdr){.a = a, .se = se};
        snprintf(m->id, sizeof m->id, "%s", id);
        if ((e = loop_post(a->l, fn, m)) != GD_OK) {
            sess_release_locked(se);
            json_object_set_new(se->open_reqs, id, json_string(was));
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (e == GD_ENOTFOUND)
        snprintf(err, errlen, "no %s '%.100s' is waiting in session '%s'", what, id, session_id);
    else if (e)
        snprintf(err, errlen, "out of memory");
    return e;
}

/* An answer has run on the loop: its question is gone, the session is let go. */
static void answer_done(answer_hdr *m)
{
    pthread_mutex_lock(&m->a->mu);
    if (!strcmp(json_string_value(json_object_get(m->se->open_reqs, m->id)) ?: "", "answered"))
        json_object_del(m->se->open_reqs, m->id);
    sess_release_locked(m->se);
    pthread_mutex_unlock(&m->a->mu);
}

/* Writes permission.yaml on a worker: the loop never waits for the disk. */
static void save_permissions(void *ud)
{
    (void)ud;
    char err[512];
    if (permissions_save(err, sizeof err) != GD_OK)
        log_error("agent", "the answer \"always\" holds until goosed stops, but %s", err);
}

/* A user's "always" answer on its way to the store. */
typedef struct {
    char user_id[UUID_STR_LEN];
    perm_rule rule;
    char tool[];
} perm_save;

/* Writes a user's answer to the store on a worker. */
static void save_user_permission(void *ud)
{
    perm_save *p = ud;
    char err[512];
    if (user_settings_save_perm(p->user_id, p->tool, p->rule, err, sizeof err) != GD_OK)
        log_error("agent",
                  "the answer \"always\" for %s holds in this goosed's memory only (until it "
                  "stops, or reads the users' settings again), as it cannot "
                  "be kept: %s",
                  p->tool, err);
    free(p);
}

/* Keeps an "always" answer for tool: the session owner's own when they are a user (in the
 * store), else the server's (permission.yaml), written on a worker. */
static void remember(agent *a, sess *se, const char *tool, act action)
{
    if (action != ACT_ALWAYS_ALLOW && action != ACT_ALWAYS_DENY) return;
    perm_rule rule = action == ACT_ALWAYS_ALLOW ? PERM_ALWAYS_ALLOW : PERM_NEVER_ALLOW;
    if (se->user_id[0]) {
        size_t n = strlen(tool);
        perm_save *p = malloc(sizeof *p + n + 1);
        if (!p || user_settings_put_perm(se->user_id, tool, rule) != GD_OK) {
            free(p);
            log_error("agent", "cannot keep the answer \"always\" for %s (out of memory)", tool);
            return;
        }
        snprintf(p->user_id, sizeof p->user_id, "%s", se->user_id);
        p->rule = rule;
        memcpy(p->tool, tool, n + 1);
        if (pool_submit(a->workers, save_user_permission, p) != GD_OK) {
            free(p);
            log_error("agent",
                      "cannot keep the answer \"always\" for %s now (the workers are "
                      "busy): it holds in this goosed's memory only",
                      tool);
        }
        return;
    }
    if (permissions_put(tool, rule) == GD_OK &&
        pool_submit(a->workers, save_permissions, NULL) != GD_OK)
        log_error("agent", "cannot write permission.yaml now (the workers are busy)");
}

/* The answer to an extension's sampling request waiting for approval. */
static void confirm_sampling(confirm_msg *m, agent_req *r)
{
    char tool[EXT_NAME_MAX + 16];
    snprintf(tool, sizeof tool, "%s__sampling", r->ext);
    remember(m->h.a, m->h.se, tool, m->action);
    if (m->action == ACT_ALLOW_ONCE || m->action == ACT_ALWAYS_ALLOW)
        sampling_start(r);
    else
        req_answer(r, NULL, -1,
                   m->action == ACT_CANCEL ? "cancelled by the user" : "declined by the user");
}

static void confirm_on_loop(void *ud)
{
    confirm_msg *m = ud;
    a_turn *at = m->h.se->turn;
    agent_req *r = req_find(m->h.se, m->h.id);
    const char *id = at ? turn_pending_confirmation(at->t) : NULL;
    if (r && r->sampling && !r->call) {
        confirm_sampling(m, r);
    } else if (id && !strcmp(id, m->h.id)) { /* else answered or cancelled meanwhile */
        const char *tool = json_string_value(
            json_object_get(json_array_get(at->t->content, at->t->next_tool), "name"));
        if (tool) remember(m->h.a, m->h.se, tool, m->action);
        if (m->action == ACT_CANCEL)
            step(at, &(turn_ev){.kind = TURN_EV_CANCEL});
        else
            step(at, &(turn_ev){.kind = TURN_EV_ANSWER,
                                .answer = m->action <= ACT_ALWAYS_ALLOW ? TURN_ALLOW : TURN_DENY});
    }
    answer_done(&m->h);
    free(m);
}

gd_err agent_confirm(agent *a, const char *session_id, const char *id, const char *action,
                     char *err, size_t errlen)
{
    static const struct {
        const char *name;
        act a;
    } acts[] = {{"allow_once", ACT_ALLOW_ONCE},   {"always_allow", ACT_ALWAYS_ALLOW},
                {"deny_once", ACT_DENY_ONCE},     {"deny", ACT_DENY_ONCE},
                {"always_deny", ACT_ALWAYS_DENY}, {"cancel", ACT_CANCEL}};
    size_t i = 0, n = sizeof acts / sizeof *acts;
    while (action && i < n && strcmp(acts[i].name, action))
        i++;
    if (!action || i == n) {
        snprintf(err, errlen,
                 "action: expected allow_once, always_allow, deny_once, deny, always_deny or "
                 "cancel");
        return GD_EINVAL;
    }
    confirm_msg *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    m->action = acts[i].a;
    static const char *const kinds[] = {"tool", "sampling", NULL};
    gd_err e = post_answer(a, session_id, id, kinds, "tool confirmation", confirm_on_loop, &m->h,
                           err, errlen);
    if (e) free(m);
    return e;
}

typedef struct {
    answer_hdr h;
    char action[16];
    json_t *content;
} elicit_msg;

static void elicit_on_loop(void *ud)
{
    elicit_msg *m = ud;
    agent_req *r = req_find(m->h.se, m->h.id);
    signin_req *q = m->h.se->signins;
    while (q && strcmp(q->id, m->h.id))
        q = q->next;
    if (q) { /* a sign-in: "accept" only says the user went to the page */
        log_info("agent", "session %s: the user answered %s: %s", m->h.se->id, m->h.id, m->action);
        if (strcmp(m->action, "accept"))
            signin_cancel(m->h.se->a->signins, q->state, GD_EDENIED,
                          "the user declined to sign in");
        signin_req_drop(m->h.se, q);
    } else if (r && !r->sampling) {
        json_t *res = json_pack("{s:s}", "action", m->action);
        const char *mode = json_string_value(json_object_get(r->params, "mode"));
        bool url_mode = mode && !strcmp(mode, "url"); /* its accept carries no content */
        if (res && !strcmp(m->action, "accept") && !url_mode) {
            json_t *c = m->content ? json_deep_copy(m->content) : json_object();
            if (c) apply_defaults(c, json_object_get(r->params, "requestedSchema"));
            json_object_set_new(res, "content", c ? c : json_object());
        }
        log_info("agent", "session %s: the user answered %s: %s", m->h.se->id, m->h.id, m->action);
        req_answer(r, res, res ? 0 : -32603, res ? NULL : "out of memory");
    }
    answer_done(&m->h);
    json_decref(m->content);
    free(m);
}

gd_err agent_elicitation_answer(agent *a, const char *session_id, const char *id,
                                const char *action, json_t *content, char *err, size_t errlen)
{
    if (!action ||
        (strcmp(action, "accept") && strcmp(action, "decline") && strcmp(action, "cancel"))) {
        snprintf(err, errlen, "action: expected accept, decline or cancel");
        return GD_EINVAL;
    }
    if (content && !json_is_object(content)) {
        snprintf(err, errlen, "content: must be an object (the answers, by field)");
        return GD_EINVAL;
    }
    elicit_msg *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    snprintf(m->action, sizeof m->action, "%s", action);
    m->content = json_incref(content);
    static const char *const kinds[] = {"elicitation", "signin", NULL};
    gd_err e =
        post_answer(a, session_id, id, kinds, "elicitation", elicit_on_loop, &m->h, err, errlen);
    if (e) {
        json_decref(m->content);
        free(m);
    }
    return e;
}

gd_err agent_cancel(agent *a, const char *session_id)
{
    return cancel(a, session_id, false);
}

void agent_session_deleted(agent *a, const char *session_id)
{
    /* Its watchers are told and their streams end: at once when no reply runs, else when the
     * reply has ended (with session_gone). */
    pthread_mutex_lock(&a->mu);
    sess *se = sess_find_locked(a, session_id);
    if (se) {
        se->deleted = true;
        if (!se->running) {
            bus_publish(se->b, "error",
                        "{\"error\":\"the session was deleted\",\"code\":\"session_gone\"}");
            bus_close(se->b);
        }
    }
    pthread_mutex_unlock(&a->mu);
    (void)cancel(a, session_id, true);
}

/* ---- keep-alive and eviction (loop thread) ---- */

static void sess_free(sess *s)
{
    json_decref(s->tools);
    registry_free(s->reg); /* drops the extensions' open requests (request_cancel) */
    free(s->reg_key);
    json_decref(s->user_added);
    json_decref(s->sess_added);
    free(s->cwd);
    free(s->npm_cache);
    json_decref(s->open_reqs);
    json_decref(s->ext_states);
    while (s->signins) {
        signin_req *q = s->signins;
        s->signins = q->next;
        free(q);
    }
    if (s->who) who_hold(s->who, -1);
    bus_free(s->b);
    free(s);
}

/* Frees the sessions nobody has used for BUS_IDLE_S (all idle ones when `all`). */
static void evict_idle(agent *a, bool all)
{
    time_t now = time(NULL);
    sess *gone = NULL;
    pthread_mutex_lock(&a->mu);
    for (sess **pp = &a->sessions; *pp;) {
        sess *s = *pp;
        if (s->refs == 0 && !s->running && (all || now - s->idle_since >= BUS_IDLE_S)) {
            *pp = s->next;
            sess_unhash_locked(a, s);
            s->next = gone;
            gone = s;
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&a->mu);
    while (gone) { /* outside the lock: closing extensions may wait for their processes */
        sess *s = gone;
        gone = s->next;
        sess_free(s);
    }
}

/* Every KEEPALIVE_MS, a `: ping` comment for every watching client, so proxies and clients see
 * the connection is alive, and a client that went away is noticed. */
static void tick(void *ud)
{
    agent *a = ud;
    evict_idle(a, false);
    pthread_mutex_lock(&a->mu);
    for (sess *s = a->sessions; s; s = s->next)
        bus_ping(s->b);
    pthread_mutex_unlock(&a->mu);
    a->ticker = loop_timer_add(a->l, KEEPALIVE_MS, tick, a);
}

/* ---- crash repair ---- */

/* After a crash (kill -9, power loss) during a tool call, a session's last message is the
 * assistant's tool request with no result, or the round's results so far without the ones of
 * the calls that had not ended: the providers refuse such a conversation (every tool call must
 * be answered). Each such call gets a stored result saying the turn was interrupted. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    gd_err e;
    char msg[256];
} waiter;

static void repair_done(void *ud, gd_err e, const char *msg)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->e = e;
    snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
    /* Signalled under the lock: once it is released the waiter may return, and w is gone. */
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Whether content (an array of items) holds a tool_response for the call id. */
static bool answered(json_t *content, const char *id)
{
    size_t i;
    json_t *it;
    json_array_foreach(content, i, it)
    {
        if (!strcmp(json_string_value(json_object_get(it, "type")) ?: "", "tool_response") &&
            !strcmp(json_string_value(json_object_get(it, "id")) ?: "", id))
            return true;
    }
    return false;
}

/* Repairs one session: msg its last message, prev the one before it when msg is a user's
 * holding tool responses (NULL otherwise). */
static gd_err repair_one(agent *a, const char *sid, json_t *msg, json_t *prev)
{
    bool partial = prev != NULL;
    json_t *content = json_object_get(partial ? prev : msg, "content");
    json_t *have = json_object_get(msg, "content");
    if (partial && strcmp(json_string_value(json_object_get(prev, "role")) ?: "", "assistant"))
        return GD_OK; /* results after something else than a reply: nothing to answer */
    json_t *results = partial ? json_deep_copy(have) : json_array(), *it;
    size_t i, before = json_array_size(results);
    json_array_foreach(content, i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "type")) ?: "", "tool_request")) continue;
        if (partial && answered(have, json_string_value(json_object_get(it, "id")) ?: "")) continue;
        json_array_append_new(
            results,
            json_pack("{s:s, s:s?, s:s?, s:[{s:s, s:s}], s:b}", "type", "tool_response", "id",
                      json_string_value(json_object_get(it, "id")), "name",
                      json_string_value(json_object_get(it, "name")), "content", "type", "text",
                      "text",
                      "interrupted: goosed stopped before this tool call finished (the server "
                      "was restarted); it may or may not have taken effect",
                      "is_error", 1));
    }
    if (json_array_size(results) == before) {
        json_decref(results);
        return GD_OK;
    }
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char id[UUID_STR_LEN];
    if (partial)
        a->st->ops->message_update_async(a->st, sid, json_string_value(json_object_get(msg, "id")),
                                         results, repair_done, &w);
    else
        a->st->ops->message_append_async(a->st, sid, "user", results, 0, 0, 0, id, repair_done, &w);
    json_decref(results);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.e == GD_OK)
        log_warn("agent",
                 "session %s: a reply was interrupted during a tool call; its results "
                 "now say so",
                 sid);
    if (w.e)
        log_warn("agent", "session %s: cannot store the interrupted tool results: %s", sid, w.msg);
    return w.e;
}

void agent_repair(agent *a)
{
    json_t *list = NULL, *it;
    if (a->st->ops->sessions_unfinished(a->st, &list) != GD_OK) {
        log_warn("agent", "cannot look for replies interrupted by a crash: %s", store_errmsg());
        return;
    }
    size_t i;
    json_array_foreach(list, i, it)
    {
        const char *sid = json_string_value(json_object_get(it, "session_id"));
        json_t *msg = json_object_get(it, "message");
        json_t *prev = json_object_get(it, "previous");
        if (sid && json_is_array(json_object_get(msg, "content")) &&
            (!prev || json_is_array(json_object_get(prev, "content"))))
            repair_one(a, sid, msg, prev); /* logs a failure */
    }
    json_decref(list);
}

/* ---- life cycle ---- */

static void start_ticker(void *ud)
{
    agent *a = ud;
    a->ticker = loop_timer_add(a->l, KEEPALIVE_MS, tick, a);
}

agent *agent_new(const config *cfg, store *st)
{
    agent *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    a->st = st;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->idle, NULL);
    pthread_mutex_init(&a->pmu, NULL);
    pthread_mutex_init(&a->smu, NULL);
    pthread_mutex_init(&a->cmu, NULL);
    a->ext_status = json_object();
    snprintf(a->provider, sizeof a->provider, "%s", cfg->provider);
    snprintf(a->model, sizeof a->model, "%s", cfg->model);
    int mode = exec_mode_parse(cfg->mode);
    atomic_store(&a->mode, mode < 0 ? MODE_AUTO : mode);
    /* The built-in tools refuse goosed's own configuration (secrets.yaml) and data. */
    snprintf(a->cfg_dir, sizeof a->cfg_dir, "%s", cfg->config_path);
    char *slash = strrchr(a->cfg_dir, '/');
    if (slash) *slash = '\0';
    int n = 0;
    if (a->cfg_dir[0]) a->protected_dirs[n++] = a->cfg_dir;
    if (cfg->data_dir[0]) a->protected_dirs[n++] = cfg->data_dir;
    a->protected_dirs[n] = NULL;
    a->limits.max_processes = cfg->max_tool_processes;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    a->limits.max_starting = (int)(cpus > 1 ? 2 * cpus : 2); /* MCP servers starting at once */
    char why[300];
    bool reach_ok = net_allow_parse(cfg->user_extension_hosts, &a->reach, why, sizeof why) == GD_OK;
    if (!reach_ok) /* config_load checked it: only memory can be short */
        log_error("agent", "user_extension_hosts: %s", why);
    if (net_allow_any(a->reach)) {
        net_allow_free(a->reach);
        a->reach = NULL;
    }
    a->tool_env = sandbox_env_new();
    a->workers = pool_new("tools", (int)cfg->tool_workers, 4096);
    a->signins = signins_new();
    a->signin_workers = pool_new("signin", SIGNIN_WORKERS, 1024);
    a->l = loop_new("agent");
    if (!reach_ok || !a->tool_env || !a->workers || !a->signins || !a->signin_workers || !a->l ||
        loop_post(a->l, start_ticker, a) != GD_OK) {
        net_allow_free(a->reach);
        if (a->l) loop_free(a->l);
        if (a->workers) pool_free(a->workers);
        if (a->signin_workers) pool_free(a->signin_workers);
        signins_free(a->signins);
        sandbox_env_free(a->tool_env);
        free(a);
        return NULL;
    }
    return a;
}

static void cancel_all(void *ud)
{
    agent *a = ud;
    pthread_mutex_lock(&a->mu);
    size_t n = 0, k = 0;
    for (sess *s = a->sessions; s; s = s->next)
        n += s->turn != NULL;
    a_turn **turns = calloc(n ? n : 1, sizeof *turns);
    for (sess *s = a->sessions; s && turns; s = s->next) {
        if (s->turn)
            turns[k++] = s->turn;
        else if (s->running)
            s->cancel_early = true; /* still read on a worker (prepare_job) */
    }
    pthread_mutex_unlock(&a->mu);
    /* Outside the lock: a turn that ends takes it. Nothing else frees turns meanwhile, since
     * only this thread does. */
    for (size_t i = 0; i < k; i++)
        cancel_turn(turns[i], false);
    free(turns);
}

typedef struct {
    agent *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} teardown_msg;

static void teardown(void *ud)
{
    teardown_msg *m = ud;
    agent *a = m->a;
    if (a->ticker) loop_timer_cancel(a->ticker);
    a->ticker = NULL;
    /* The sessions stay (HTTP threads are gone by now); their registries are freed without mu:
     * closing an extension answers its open requests, which takes mu. */
    for (sess *s = a->sessions; s; s = s->next) {
        registry_free(s->reg);
        s->reg = NULL;
        json_decref(s->tools);
        s->tools = NULL;
    }
    shared_tools_free(a);
    prov_client_free(a->pc);
    a->pc = NULL;
    pthread_mutex_lock(&m->mu);
    m->done = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

bool agent_shutdown(agent *a, int grace_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (long)(grace_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    /* A sign-in waiting for its user ends now: the reply that waits for it goes on without the
     * extension, and ends within the grace. */
    signins_shutdown(a->signins);
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    while (a->nturns > 0)
        if (pthread_cond_timedwait(&a->idle, &a->mu, &until) != 0) break;
    if (a->nturns > 0) {
        log_warn("agent", "%ld reply(ies) still running after %d ms: cancelling them", a->nturns,
                 grace_ms);
        if (loop_post(a->l, cancel_all, a) != GD_OK)
            log_error("agent", "cannot cancel the running replies (out of memory)");
        /* A cancelled turn ends as soon as its provider request and tool are stopped; one
         * that does not within another grace waits for something that will not come (a
         * completion lost to a lack of memory, a wedged store). */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += grace_ms / 1000 + 1;
        while (a->nturns > 0)
            if (pthread_cond_timedwait(&a->idle, &a->mu, &until) != 0) break;
    }
    bool ended = a->nturns == 0;
    if (!ended) log_error("agent", "%ld reply(ies) did not end after being cancelled", a->nturns);
    for (sess *s = a->sessions; s; s = s->next)
        bus_close(s->b);
    pthread_mutex_unlock(&a->mu);
    /* Nothing a worker runs may outlive the requests it answers (a suspended history read). */
    if (ended) pool_quiesce(a->workers);
    return ended;
}

pool *agent_pool(agent *a)
{
    return a->workers;
}

signins *agent_signins(agent *a)
{
    return a->signins;
}

void agent_free(agent *a)
{
    if (!a) return;
    /* Extensions and the provider client live on the loop: they are closed there first; then the
     * workers finish their jobs, whose completions still reach the running loop; then the loop
     * ends. */
    teardown_msg m = {.a = a, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (loop_post(a->l, teardown, &m) == GD_OK) {
        pthread_mutex_lock(&m.mu);
        while (!m.done)
            pthread_cond_wait(&m.cv, &m.mu);
        pthread_mutex_unlock(&m.mu);
    } else {
        log_error("agent", "cannot post the teardown (out of memory)");
    }
    /* The closed MCP servers get a moment to exit, then SIGTERM, then SIGKILL, all watched by
     * the loop: it runs until they are reaped (a DELETE to an HTTP server ends too). */
    if (!mcp_servers_wait(MCP_CLOSE_WAIT_MS))
        log_warn("agent", "%u MCP server(s) still not reaped at exit", mcp_servers_running());
    pool_free(a->workers);
    pool_free(a->signin_workers); /* their last completions reach the loop still running */
    loop_free(a->l);
    signins_free(a->signins);
    sandbox_env_free(a->tool_env);
    net_allow_free(a->reach);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->pmu);
    pthread_mutex_destroy(&a->smu);
    cfg_unref_locked(a->cfg_last);
    pthread_mutex_destroy(&a->cmu);
    json_decref(a->ext_status);
    /* The HTTP server is stopped before this, so no session has bus users left. */
    while (a->sessions) {
        sess *s = a->sessions;
        a->sessions = s->next;
        sess_free(s);
    }
    free(a->buckets);
    free(a->uturns);
    free(a);
}
