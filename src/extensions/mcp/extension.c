/* extension: an MCP server as an extension (extension.h): the lifecycle (initialize, the version
 * agreed, notifications/initialized), the tools (tools/list page by page, again on
 * notifications/tools/list_changed), calls (tools/call with a timeout, progress, cancellation)
 * and what happens when the server goes away (every running call ends with an error, the state
 * says why, the next start tries again after a backoff). Every completion is posted through a
 * zero-delay loop timer, so no callback runs inside the op that caused it and close can drop
 * what is still queued. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jtext.h"
#include "core/log.h"
#include "core/utf8.h"
#include "extensions/ext_config.h"
#include "extensions/mcp/client.h"
#include "extensions/mcp/mcp.h"

#define LOG_MOD              "mcp"
#define MCP_LIST_PAGES_MAX   100   /* pages of tools/list followed */
#define MCP_START_TIMEOUT_MS 30000 /* the most a start waits for initialize */
#define MCP_BACKOFF_MAX_MS   60000
#define MCP_TOOLS_MAX        1000        /* tools kept of one server */
#define MCP_LOG_BURST        200         /* notifications/message lines logged per window ... */
#define MCP_LOG_WINDOW       10000       /* ... of this many ms; the rest are counted */
#define MCP_TOOLS_BYTES      (16u << 20) /* bytes of their JSON */
#define MCP_STABLE_MS        60000       /* a server up this long starts its backoff afresh */
#define MCP_RENEWALS_MAX     3           /* new sessions after a 404 in a minute, then a failure */
#define MCP_ITEMS_MAX        1000        /* resources or prompts kept of one listing */
/* Entries of one listing looked at, kept or not (a name taken already, a schema refused): a server
 * sending pages of hundreds of thousands would hold the loop, which every session's extensions
 * share, for minutes. */
#define MCP_LIST_SEEN_MAX 10000
#define MCP_OUTPUT_CAP    (64u << 10) /* a tool result's texts kept, when the caller sets none */
#define MCP_LIST_WARNS    8           /* entries left out that are logged one by one per listing */
#define MCP_ITEMS_BYTES   (4u << 20)  /* bytes of their JSON */
#define MCP_READ_BYTES    (16u << 20) /* bytes of a resource read or a prompt got */

/* What a call asks: a tool, or (answered through ext_json_done) a resource or prompt request. */
typedef enum { K_TOOL, K_RESOURCES, K_READ, K_PROMPTS, K_PROMPT, K_TEMPLATES } call_kind;
static const char *const kind_method[] = {"tools/call",     "resources/list",
                                          "resources/read", "prompts/list",
                                          "prompts/get",    "resources/templates/list"};
/* A listing's kinds, and the result's array of each */
#define LISTING(k) ((k) == K_RESOURCES || (k) == K_PROMPTS || (k) == K_TEMPLATES)
#define LIST_KEY(k)                                                                                \
    ((k) == K_RESOURCES ? "resources" : (k) == K_PROMPTS ? "prompts" : "resourceTemplates")

typedef struct mcp_ext mcp_ext;

typedef struct waiter {
    struct waiter *next;
    ext_started done;
    void *ud;
} waiter;

/* A start's answer on its way. */
typedef struct spost {
    struct spost *next;
    mcp_ext *x;
    loop_timer *t;
    ext_started done;
    void *ud;
    gd_err e;
    char why[512];
} spost;

typedef struct mcp_call {
    ext_call base;
    struct mcp_call *next;
    json_int_t id;  /* the pending tools/call, 0 when none */
    char tool[129]; /* a tool name: at most 128 bytes */
    char token[32];
    long timeout_ms;
    ext_progress_fn progress;
    ext_done done;
    void *ud;
    bool finished;
    ext_result res;
    loop_timer *post;
    json_t *args; /* kept to send the call again once, in a new MCP session */
    bool retried; /* sent again already */
    bool waiting; /* for the new session to be initialized */
    /* resource and prompt requests (kind != K_TOOL): args holds the request's params */
    call_kind kind;
    ext_json_done jdone;
    gd_err jerr;      /* why it failed (the message is res.content's text) */
    json_t *acc;      /* a listing's items so far */
    size_t acc_bytes; /* their size as JSON */
    int pages;
    size_t seen;       /* entries looked at (MCP_LIST_SEEN_MAX) */
    size_t output_cap; /* a tool call's: bytes of its texts kept */
} mcp_call;

struct mcp_ext {
    extension base;
    json_t *cfg;
    const ext_host *host;
    mcp_rpc *rpc;
    ext_state st;
    char why[512];
    json_t *tools;
    char *instructions;
    unsigned serves;     /* EXT_SERVES_* from the capabilities of the last initialize */
    log_limit msg_limit; /* notifications/message lines logged */
    /* tools/list under way */
    json_t *acc;
    json_int_t list_id;
    int pages;
    size_t acc_bytes; /* of the tools in acc */
    size_t acc_seen;  /* tools looked at (MCP_LIST_SEEN_MAX) */
    int acc_warned;   /* tools left out and logged (MCP_LIST_WARNS) */
    bool acc_full;    /* a bound is reached: the rest is not looked at */
    bool relist;
    waiter *waiters;
    spost *posts;
    mcp_call *calls;
    unsigned failures;
    uint64_t retry_at, up_at;
    uint64_t renew_win; /* when the minute of the last new sessions after a 404 began */
    int renewals;       /* new sessions after a 404 in that minute */
    long timeout_ms;
    unsigned long long seq;
    bool holds_slot;           /* one of ext_limits.max_starting, while it starts */
    bool queued;               /* waits for one */
    struct mcp_ext *gate_next; /* in ext_limits.start_queue */
};

/* ---- starts ---- */

static void spost_run(void *ud)
{
    spost *p = ud;
    mcp_ext *x = p->x;
    for (spost **pp = &x->posts; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    ext_started done = p->done;
    void *dud = p->ud;
    gd_err e = p->e;
    char why[sizeof p->why];
    memcpy(why, p->why, sizeof why);
    free(p);
    done(dud, e, e ? why : NULL);
}

static void post_started(mcp_ext *x, ext_started done, void *ud, gd_err e, const char *why)
{
    spost *p = calloc(1, sizeof *p);
    if (!p) {
        log_error(LOG_MOD, "%s: out of memory to answer a start", x->base.name);
        return;
    }
    p->x = x;
    p->done = done;
    p->ud = ud;
    p->e = e;
    snprintf(p->why, sizeof p->why, "%s", why ? why : "");
    if (!(p->t = loop_timer_add(x->host->l, 0, spost_run, p))) {
        log_error(LOG_MOD, "%s: out of memory to answer a start", x->base.name);
        free(p);
        return;
    }
    p->next = x->posts;
    x->posts = p;
}

static void answer_waiters(mcp_ext *x, gd_err e, const char *why)
{
    waiter *w = x->waiters;
    x->waiters = NULL;
    while (w) {
        waiter *n = w->next;
        post_started(x, w->done, w->ud, e, why);
        free(w);
        w = n;
    }
}

static long backoff_ms(unsigned failures)
{
    long ms = 1000;
    for (unsigned i = 1; i < failures && ms < MCP_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms > MCP_BACKOFF_MAX_MS ? MCP_BACKOFF_MAX_MS : ms;
}

/* ---- the start gate: at most ext_limits.max_starting servers start at once ---- */

static void begin(mcp_ext *x);

static void gate_unqueue(mcp_ext *x)
{
    ext_limits *lim = x->host->limits;
    for (mcp_ext **pp = (mcp_ext **)&lim->start_queue; *pp; pp = &(*pp)->gate_next)
        if (*pp == x) {
            *pp = x->gate_next;
            break;
        }
    x->gate_next = NULL;
    x->queued = false;
}

/* x's start is over (up, failed or closed): its slot goes to the oldest waiting. */
static void gate_release(mcp_ext *x)
{
    if (!x->holds_slot) return;
    x->holds_slot = false;
    ext_limits *lim = x->host->limits;
    lim->starting--;
    mcp_ext *next = lim->start_queue;
    if (next) {
        gate_unqueue(next);
        begin(next);
    }
}

/* The server's transport waits for its user to sign in (minutes, maybe): its start gives up its
 * slot, so that other servers (other users' too) start meanwhile. */
static void on_held(void *ud, bool held)
{
    mcp_ext *x = ud;
    if (held && x->holds_slot) {
        log_debug(LOG_MOD, "%s: waits for a sign-in: another server may start meanwhile",
                  x->base.name);
        gate_release(x);
    }
}

/* Whether x may start now; if not, it waits in the queue (still EXT_STARTING). */
static bool gate_enter(mcp_ext *x)
{
    ext_limits *lim = x->host->limits;
    if (!lim || lim->max_starting <= 0 || x->holds_slot) return true;
    if (lim->starting >= lim->max_starting) {
        if (!x->queued) {
            mcp_ext **pp = (mcp_ext **)&lim->start_queue;
            while (*pp)
                pp = &(*pp)->gate_next;
            *pp = x;
            x->queued = true;
            log_debug(LOG_MOD, "%s: waits to start (%d servers are starting)", x->base.name,
                      lim->starting);
        }
        return false;
    }
    lim->starting++;
    x->holds_slot = true;
    return true;
}

/* The server is gone or never came up: why (already prefixed with the name) is kept for state
 * and the next starts within the backoff. */
static void went_down(mcp_ext *x, const char *why)
{
    uint64_t now = loop_now_ms(x->host->l);
    if (x->st == EXT_RUNNING && now - x->up_at >= MCP_STABLE_MS) x->failures = 0;
    x->failures++;
    x->retry_at = now + (uint64_t)backoff_ms(x->failures);
    snprintf(x->why, sizeof x->why, "%s", why);
    x->st = EXT_FAILED;
    mcp_rpc_close(x->rpc);
    x->rpc = NULL;
    json_decref(x->acc);
    x->acc = NULL;
    x->list_id = 0;
    x->relist = false;
    log_warn(LOG_MOD, "%s", why);
    gate_release(x);
}

static void call_finish(mcp_call *c, json_t *content, bool is_error, json_t *structured);
static void call_fail(mcp_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void start_failed(mcp_ext *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void start_failed(mcp_ext *x, const char *fmt, ...)
{
    char why[512];
    int k = snprintf(why, sizeof why, "%s: ", x->base.name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + k, sizeof why - (size_t)k, fmt, ap);
    va_end(ap);
    went_down(x, why);
    answer_waiters(x, GD_EUNAVAIL, x->why);
}

/* ---- tools/list ---- */

static bool tool_allowed(mcp_ext *x, const char *name)
{
    json_t *av = json_object_get(x->cfg, "available_tools");
    if (!json_array_size(av)) return true;
    size_t i;
    json_t *v;
    json_array_foreach(av, i, v)
    {
        const char *s = json_string_value(v);
        if (s && !strcmp(s, name)) return true;
    }
    return false;
}

static json_t *find_tool(json_t *tools, const char *name);

/* Adds the valid tools of one page to acc (name, description, inputSchema, annotations). The
 * providers take a tool name of letters, digits, _ and - only (OpenAI, Anthropic; Gemini adds . and
 * :): a name with anything else (MCP allows a dot) is offered with each such byte as _, and
 * called by its own name (mcp_name). A name taken already, or a schema that is not of an object
 * (the providers refuse it, and with it every request), leaves the tool out. */
static void take_page(mcp_ext *x, json_t *acc, json_t *list)
{
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t)
    {
        if (!x->acc_full && ++x->acc_seen > MCP_LIST_SEEN_MAX) {
            log_warn(LOG_MOD, "%s: tools/list: more than %d tools offered; the rest is ignored",
                     x->base.name, MCP_LIST_SEEN_MAX);
            x->acc_full = true;
        }
        if (x->acc_full) break;
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name || !name[0] || strlen(name) > 128) continue;
        if (!tool_allowed(x, name)) continue;
        char offered[129];
        size_t n = strlen(name);
        for (size_t k = 0; k <= n; k++)
            offered[k] =
                k == n || isalnum((unsigned char)name[k]) || name[k] == '_' || name[k] == '-'
                    ? name[k]
                    : '_';
        json_t *schema = json_object_get(t, "inputSchema");
        json_t *type = json_object_get(schema, "type");
        if ((schema && !json_is_object(schema)) ||
            (type && (!json_is_string(type) || strcmp(json_string_value(type), "object")))) {
            if (x->acc_warned++ < MCP_LIST_WARNS)
                log_warn(LOG_MOD,
                         "%s: tools/list: tool %s left out: its inputSchema is not an object's",
                         x->base.name, offered);
            continue;
        }
        if (find_tool(acc, offered)) {
            if (x->acc_warned++ < MCP_LIST_WARNS)
                log_warn(LOG_MOD, "%s: tools/list: a second tool named %s left out", x->base.name,
                         offered);
            continue;
        }
        const char *desc = json_string_value(json_object_get(t, "description"));
        json_t *sch = schema ? json_incref(schema) : json_pack("{s:s}", "type", "object");
        json_t *o = json_pack("{s:s, s:s, s:o}", "name", offered, "description", desc ? desc : "",
                              "inputSchema", sch);
        if (!o) continue;
        if (strcmp(offered, name) && json_object_set_new(o, "mcp_name", json_string(name))) {
            json_decref(o);
            continue;
        }
        json_t *ann = json_object_get(t, "annotations");
        if (json_is_object(ann)) json_object_set(o, "annotations", ann);
        json_t *title = json_object_get(t, "title");
        if (json_is_string(title)) json_object_set(o, "title", title);
        size_t size = jtext_size(o);
        if (json_array_size(acc) >= MCP_TOOLS_MAX || x->acc_bytes + size > MCP_TOOLS_BYTES) {
            if (!x->acc_full)
                log_warn(LOG_MOD,
                         "%s: tools/list: more than %d tools or %u bytes of them; the "
                         "rest is ignored",
                         x->base.name, MCP_TOOLS_MAX, MCP_TOOLS_BYTES);
            x->acc_full = true;
            json_decref(o);
            break;
        }
        x->acc_bytes += size;
        json_array_append_new(acc, o);
    }
}

static void list_page(mcp_ext *x, const char *cursor);

static void listed(mcp_ext *x)
{
    json_decref(x->tools);
    x->tools = x->acc;
    x->acc = NULL;
    x->list_id = 0;
    x->base.tools_gen++;
    if (x->st == EXT_STARTING) {
        x->st = EXT_RUNNING;
        x->up_at = loop_now_ms(x->host->l);
        x->why[0] = '\0';
        log_info(LOG_MOD, "%s: running, %zu tools", x->base.name, json_array_size(x->tools));
        gate_release(x);
        answer_waiters(x, GD_OK, NULL);
    }
    if (x->relist) {
        x->relist = false;
        list_page(x, NULL);
    }
}

static void on_list(void *ud, json_t *result, int code, const char *msg)
{
    mcp_ext *x = ud;
    x->list_id = 0;
    if (!result) {
        if (x->st == EXT_STARTING) {
            start_failed(x, "tools/list failed: %s (%d)", msg, code);
        } else {
            log_warn(LOG_MOD, "%s: tools/list failed: %s (%d); keeping the tools listed before",
                     x->base.name, msg, code);
            json_decref(x->acc);
            x->acc = NULL;
        }
        return;
    }
    take_page(x, x->acc, json_object_get(result, "tools"));
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next && next[0] && !x->acc_full && ++x->pages < MCP_LIST_PAGES_MAX) {
        list_page(x, next);
        return;
    }
    if (next && next[0] && !x->acc_full)
        log_warn(LOG_MOD, "%s: tools/list: more than %d pages; the rest is ignored", x->base.name,
                 MCP_LIST_PAGES_MAX);
    listed(x);
}

static void list_page(mcp_ext *x, const char *cursor)
{
    if (!cursor) {
        json_decref(x->acc);
        x->acc = json_array();
        x->pages = 0;
        x->acc_bytes = 0;
        x->acc_seen = 0;
        x->acc_warned = 0;
        x->acc_full = false;
    }
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    long to = x->timeout_ms < MCP_START_TIMEOUT_MS ? x->timeout_ms : MCP_START_TIMEOUT_MS;
    if (!x->acc || !params ||
        !(x->list_id = mcp_rpc_request(x->rpc, "tools/list", params, to, on_list, x))) {
        if (x->st == EXT_STARTING) start_failed(x, "out of memory while listing its tools");
        json_decref(x->acc);
        x->acc = NULL;
    }
}

/* ---- initialize ---- */

static void on_init(void *ud, json_t *result, int code, const char *msg)
{
    mcp_ext *x = ud;
    if (!result) {
        if (code == MCP_RPC_TIMEOUT)
            start_failed(x, "did not answer initialize: %s", msg);
        else
            start_failed(x, "initialize failed: %s (%d)", msg, code);
        return;
    }
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    if (!mcp_version_supported(v)) {
        start_failed(x,
                     "the server speaks MCP protocol version %s%s%s; goosed speaks %s (and "
                     "2025-06-18, 2025-03-26)",
                     v ? "\"" : "", v ? v : "(none given)", v ? "\"" : "", MCP_PROTOCOL_LATEST);
        return;
    }
    json_t *caps = json_object_get(result, "capabilities");
    x->serves = (json_is_object(json_object_get(caps, "resources")) ? EXT_SERVES_RESOURCES : 0) |
                (json_is_object(json_object_get(caps, "prompts")) ? EXT_SERVES_PROMPTS : 0);
    const char *ins = json_string_value(json_object_get(result, "instructions"));
    free(x->instructions);
    x->instructions = ins && ins[0] ? strdup(ins) : NULL;
    json_t *si = json_object_get(result, "serverInfo");
    const char *sn = json_string_value(json_object_get(si, "name"));
    const char *sv = json_string_value(json_object_get(si, "version"));
    log_info(LOG_MOD, "%s: initialized %s%s%s, protocol %s", x->base.name,
             sn ? sn : "(unnamed server)", sv ? " " : "", sv ? sv : "", v);
    mcp_rpc_set_version(x->rpc, v);
    mcp_rpc_notify(x->rpc, "notifications/initialized", NULL);
    list_page(x, NULL);
}

static void on_notify(void *ud, const char *method, json_t *params);
static void on_closed(void *ud, gd_err e, const char *why);

static void begin(mcp_ext *x)
{
    char err[512];
    x->st = EXT_STARTING;
    if (!gate_enter(x)) return; /* gate_release begins it later */
    mcp_rpc_cb cb = {.notify = on_notify, .closed = on_closed, .held = on_held, .ud = x};
    if (!(x->rpc = mcp_rpc_new(x->cfg, x->host, &x->base, &cb, err, sizeof err))) {
        /* err names the extension already */
        went_down(x, err);
        answer_waiters(x, GD_EUNAVAIL, x->why);
        return;
    }
    bool host_serves = x->host->ops && x->host->ops->request;
    json_t *caps = json_pack("{s:{s:b}}", "roots", "listChanged", 0);
    if (caps && host_serves) {
        json_object_set_new(caps, "elicitation", json_pack("{s:{}, s:{}}", "form", "url"));
        json_object_set_new(caps, "sampling", json_object());
    }
    json_t *params = json_pack("{s:s, s:o, s:{s:s, s:s}}", "protocolVersion", MCP_PROTOCOL_LATEST,
                               "capabilities", caps ? caps : json_object(), "clientInfo", "name",
                               "goosed", "version", GOOSED_VERSION);
    long to = x->timeout_ms < MCP_START_TIMEOUT_MS ? x->timeout_ms : MCP_START_TIMEOUT_MS;
    if (!params || !mcp_rpc_request(x->rpc, "initialize", params, to, on_init, x))
        start_failed(x, "out of memory while initializing");
}

static void x_start(extension *base, ext_started done, void *ud)
{
    mcp_ext *x = (mcp_ext *)base;
    if (x->st == EXT_RUNNING) {
        post_started(x, done, ud, GD_OK, NULL);
        return;
    }
    if (x->st == EXT_FAILED && loop_now_ms(x->host->l) < x->retry_at) {
        post_started(x, done, ud, GD_EUNAVAIL, x->why);
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w) {
        post_started(x, done, ud, GD_ENOMEM, "out of memory");
        return;
    }
    w->done = done;
    w->ud = ud;
    w->next = x->waiters;
    x->waiters = w;
    if (x->st != EXT_STARTING) begin(x);
}

/* ---- from the server ---- */

static void on_notify(void *ud, const char *method, json_t *params)
{
    mcp_ext *x = ud;
    if (!strcmp(method, "notifications/progress")) {
        const char *tok = json_string_value(json_object_get(params, "progressToken"));
        for (mcp_call *c = x->calls; tok && c; c = c->next)
            if (!c->finished && !strcmp(c->token, tok)) {
                json_t *jt = json_object_get(params, "total");
                if (c->progress)
                    c->progress(c->ud, json_number_value(json_object_get(params, "progress")),
                                json_is_number(jt) ? json_number_value(jt) : -1,
                                json_string_value(json_object_get(params, "message")));
                return;
            }
    } else if (!strcmp(method, "notifications/tools/list_changed")) {
        if (x->st != EXT_RUNNING) return;
        if (x->list_id)
            x->relist = true;
        else
            list_page(x, NULL);
    } else if (!strcmp(method, "notifications/message")) {
        json_t *data = json_object_get(params, "data");
        char *s = json_is_string(data) ? NULL : json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *txt = json_is_string(data) ? json_string_value(data) : s;
        char esc[1024];
        if (log_limit_take(&x->msg_limit, loop_now_ms(x->host->l), MCP_LOG_BURST, MCP_LOG_WINDOW,
                           LOG_MOD, "server log messages")) {
            mcp_escape(txt ? txt : "", txt ? strlen(txt) : 0, 200, esc, sizeof esc);
            log_info(LOG_MOD, "%s: server log: %s", x->base.name, esc);
        }
        free(s);
    }
}

static bool call_send(mcp_ext *x, mcp_call *c);

/* The new MCP session after an expired one is up (or failed): the calls it interrupted are
 * sent again, or fail. */
static void resend_waiting(void *ud, gd_err e, const char *why)
{
    mcp_ext *x = ud;
    for (mcp_call *c = x->calls; c; c = c->next) {
        if (!c->waiting) continue;
        c->waiting = false;
        if (e)
            call_fail(c, "%s__%s failed: %s", x->base.name, c->tool, why ? why : "");
        else if (!call_send(x, c))
            call_fail(c, "%s__%s: out of memory sending the call again", x->base.name, c->tool);
    }
}

static void on_closed(void *ud, gd_err e, const char *why_in)
{
    mcp_ext *x = ud;
    /* why: what the server did ("exited with status 3"), made a whole clause unless the transport
     * gave one already ("the MCP server answered HTTP 403 ..."). */
    char why[600];
    snprintf(why, sizeof why, "%s%s", strncmp(why_in, "the ", 4) ? "the server " : "", why_in);
    uint64_t now = loop_now_ms(x->host->l);
    if (e == GD_ENOTFOUND && now - x->renew_win >= MCP_STABLE_MS) {
        x->renew_win = now;
        x->renewals = 0;
    }
    if (e == GD_ENOTFOUND && x->st == EXT_RUNNING && ++x->renewals <= MCP_RENEWALS_MAX) {
        /* The server forgot our session (streamable HTTP's 404): a new one is initialized at
         * once (no backoff: nothing crashed), and each interrupted call is sent again, once. More
         * than MCP_RENEWALS_MAX in a minute is a failure like a crash (below): backed off, or a
         * server that forgets every session would be initialized again without end. */
        log_info(LOG_MOD, "%s: %s: initializing a new session", x->base.name, why);
        for (mcp_call *c = x->calls; c; c = c->next) {
            if (c->finished || c->waiting) continue;
            if (c->retried) {
                call_fail(c, "%s__%s failed: %s twice", x->base.name, c->tool, why);
                continue;
            }
            c->retried = c->waiting = true;
            c->id = 0;
        }
        mcp_rpc_close(x->rpc);
        x->rpc = NULL;
        waiter *w = calloc(1, sizeof *w);
        if (w) {
            w->done = resend_waiting;
            w->ud = x;
            w->next = x->waiters;
            x->waiters = w;
        }
        begin(x);
        if (!w) resend_waiting(x, GD_ENOMEM, "out of memory");
        return;
    }
    if (x->st == EXT_STARTING) {
        start_failed(x, "%s", why);
        return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", x->base.name, why);
    for (mcp_call *c = x->calls; c; c = c->next)
        if (!c->finished) call_fail(c, "%s__%s failed: %s", x->base.name, c->tool, msg);
    went_down(x, msg);
}

/* ---- calls ---- */

static void call_post(void *ud)
{
    mcp_call *c = ud;
    mcp_ext *x = (mcp_ext *)c->base.x;
    c->post = NULL;
    for (mcp_call **pp = &x->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    ext_result res = c->res;
    ext_done done = c->done;
    void *dud = c->ud;
    json_decref(c->args);
    json_decref(c->acc);
    if (c->kind != K_TOOL) {
        ext_json_done jdone = c->jdone;
        gd_err e = c->jerr;
        free(c);
        json_decref(res.structured);
        if (!e) {
            jdone(dud, res.content, GD_OK, NULL);
            return;
        }
        const char *msg =
            json_string_value(json_object_get(json_array_get(res.content, 0), "text"));
        jdone(dud, NULL, e, msg ? msg : gd_strerror(e));
        json_decref(res.content);
        return;
    }
    free(c);
    done(dud, &res);
}

static void call_finish(mcp_call *c, json_t *content, bool is_error, json_t *structured)
{
    mcp_ext *x = (mcp_ext *)c->base.x;
    if (c->id && x->rpc) mcp_rpc_forget(x->rpc, c->id);
    c->id = 0;
    c->waiting = false;
    c->finished = true;
    c->res.content = content ? content : json_array();
    if (!c->res.content) c->res = ext_text_result("", true);
    c->res.is_error = is_error;
    c->res.structured = structured;
    if (!(c->post = loop_timer_add(x->host->l, 0, call_post, c)))
        log_error(LOG_MOD, "%s: out of memory to end a call of %s", x->base.name, c->tool);
}

static void call_vfail(mcp_call *c, gd_err e, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    ext_result r = ext_text_result(msg, true);
    c->jerr = e;
    call_finish(c, r.content, true, NULL);
}

static void call_fail(mcp_call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_vfail(c, GD_EUNAVAIL, fmt, ap);
    va_end(ap);
}

static void call_fail_e(mcp_call *c, gd_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_fail_e(mcp_call *c, gd_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_vfail(c, e, fmt, ap);
    va_end(ap);
}

static void send_cancelled(mcp_ext *x, json_int_t id, const char *reason)
{
    if (x->rpc && id)
        mcp_rpc_notify(x->rpc, "notifications/cancelled",
                       json_pack("{s:I, s:s}", "requestId", id, "reason", reason));
}

static void on_json(mcp_call *c, json_t *result, int code, const char *msg);

/* The texts of a tool's result kept within cap bytes in all, as the shell's output is: a text
 * over what is left loses its middle (cut on UTF-8 boundaries), with a note saying how much;
 * the texts after it are left out. */
static void cap_texts(json_t *content, size_t cap)
{
    size_t i, left = cap;
    json_t *it;
    json_array_foreach(content, i, it)
    {
        json_t *holder = it;
        const char *type = json_string_value(json_object_get(it, "type"));
        if (type && !strcmp(type, "resource")) holder = json_object_get(it, "resource");
        json_t *tv = json_object_get(holder, "text");
        if (!json_is_string(tv)) continue;
        const char *t = json_string_value(tv);
        size_t n = json_string_length(tv);
        if (n <= left) {
            left -= n;
            continue;
        }
        size_t head = utf8_prefix(t, n, left / 2), from = utf8_suffix(t, n, left / 2);
        char *cut = NULL;
        if (asprintf(
                &cut,
                "%.*s\n[... %zu bytes of the tool's output omitted: the first %zu and last %zu "
                "bytes are shown ...]\n%s",
                (int)head, t, from - head, head, n - from, t + from) >= 0)
            json_object_set_new(holder, "text", json_string(cut));
        free(cut);
        left = 0;
    }
}

static void on_call(void *ud, json_t *result, int code, const char *msg)
{
    mcp_call *c = ud;
    mcp_ext *x = (mcp_ext *)c->base.x;
    json_int_t id = c->id;
    if (c->kind != K_TOOL) {
        on_json(c, result, code, msg);
        return;
    }
    c->id = 0;
    if (!result) {
        if (code == MCP_RPC_TIMEOUT) {
            send_cancelled(x, id, msg);
            call_fail(c, "%s__%s: %s", x->base.name, c->tool, msg);
        } else {
            call_fail(c, "%s__%s: the server answered with an error: %s (%d)", x->base.name,
                      c->tool, msg, code);
        }
        return;
    }
    json_t *content = json_object_get(result, "content");
    json_t *sc = json_object_get(result, "structuredContent");
    bool is_error = json_is_true(json_object_get(result, "isError"));
    if (!json_is_array(content)) {
        if (sc) { /* structured only: the model sees it as text */
            char *s = json_dumps(sc, JSON_COMPACT | JSON_ENCODE_ANY);
            ext_result r = ext_text_result(s ? s : "", is_error);
            free(s);
            cap_texts(r.content, c->output_cap);
            call_finish(c, r.content, is_error, json_incref(sc));
            return;
        }
        call_fail(c, "%s__%s: the server's result has no content array", x->base.name, c->tool);
        return;
    }
    cap_texts(content, c->output_cap);
    call_finish(c, json_incref(content), is_error, sc ? json_incref(sc) : NULL);
}

static json_t *find_tool(json_t *tools, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        if (!strcmp(json_string_value(json_object_get(t, "name")), name)) return t;
    }
    return NULL;
}

static ext_call *x_call(extension *base, const char *tool, json_t *args, const ext_call_opts *o,
                        ext_done done, void *ud)
{
    mcp_ext *x = (mcp_ext *)base;
    mcp_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base.x = base;
    c->done = done;
    c->ud = ud;
    c->progress = o ? o->progress : NULL;
    c->output_cap = o && o->output_cap ? o->output_cap : MCP_OUTPUT_CAP;
    snprintf(c->tool, sizeof c->tool, "%s", tool);
    snprintf(c->token, sizeof c->token, "goosed-%llu", ++x->seq);
    c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : x->timeout_ms;
    c->next = x->calls;
    x->calls = c;
    if (x->st != EXT_RUNNING) {
        call_fail(c, "%s__%s: the extension is not running%s%s", x->base.name, tool,
                  x->st == EXT_FAILED ? ": " : "", x->st == EXT_FAILED ? x->why : "");
        return &c->base;
    }
    json_t *found = find_tool(x->tools, tool);
    if (!found) {
        char names[1024] = "";
        size_t i, k = 0;
        json_t *t;
        json_array_foreach(x->tools, i, t)
        {
            int w = snprintf(names + k, sizeof names - k, "%s%s", k ? ", " : "",
                             json_string_value(json_object_get(t, "name")));
            if (w < 0 || (size_t)w >= sizeof names - k) break;
            k += (size_t)w;
        }
        call_fail(c, "%s has no tool named '%s'; its tools: %s", x->base.name, tool,
                  k ? names : "(none)");
        return &c->base;
    }
    if (args && !json_is_object(args)) {
        call_fail(c, "%s__%s: the arguments must be a JSON object", x->base.name, tool);
        return &c->base;
    }
    const char *own = json_string_value(json_object_get(found, "mcp_name"));
    if (own) snprintf(c->tool, sizeof c->tool, "%s", own); /* the server's own name */
    c->args = args ? json_incref(args) : json_object();
    if (!c->args || !call_send(x, c)) {
        x->calls = c->next;
        json_decref(c->args);
        free(c);
        return NULL;
    }
    return &c->base;
}

/* Sends c's tools/call (or its resource or prompt request); false when out of memory. */
static bool call_send(mcp_ext *x, mcp_call *c)
{
    if (c->kind != K_TOOL)
        return (c->id = mcp_rpc_request(x->rpc, kind_method[c->kind], json_deep_copy(c->args),
                                        c->timeout_ms, on_call, c));
    json_t *params = json_pack("{s:s, s:O, s:{s:s}}", "name", c->tool, "arguments", c->args,
                               "_meta", "progressToken", c->token);
    return params &&
           (c->id = mcp_rpc_request(x->rpc, "tools/call", params, c->timeout_ms, on_call, c));
}

static void x_cancel(ext_call *base)
{
    mcp_call *c = (mcp_call *)base;
    mcp_ext *x = (mcp_ext *)base->x;
    if (c->finished) return;
    json_int_t id = c->id;
    if (x->rpc && id) mcp_rpc_forget(x->rpc, id);
    c->id = 0;
    send_cancelled(x, id, "cancelled");
    call_fail_e(c, GD_ECANCELLED, "%s__%s: cancelled", x->base.name, c->tool);
}

/* ---- resources and prompts ---- */

/* Copies the string members keys of item into a new object; NULL when a required one (the
 * first `required` keys) is missing. */
static json_t *pick(json_t *item, const char *const *keys, size_t nkeys, size_t required)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < nkeys; i++) {
        json_t *v = json_object_get(item, keys[i]);
        if (json_is_string(v))
            json_object_set(o, keys[i], v);
        else if (i < required) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* Adds a listing page's valid items to c->acc; false when a bound was passed. */
static bool take_items(mcp_ext *x, mcp_call *c, json_t *list)
{
    static const char *const rkeys[] = {"uri", "name", "description", "mimeType", "title"};
    static const char *const pkeys[] = {"name", "description", "title"};
    static const char *const tkeys[] = {"uriTemplate", "name", "description", "mimeType", "title"};
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
    {
        if (++c->seen > MCP_LIST_SEEN_MAX) {
            log_warn(LOG_MOD, "%s: %s: more than %d items offered; the rest is ignored",
                     x->base.name, kind_method[c->kind], MCP_LIST_SEEN_MAX);
            return false;
        }
        json_t *o = c->kind == K_RESOURCES   ? pick(it, rkeys, 5, 2)
                    : c->kind == K_TEMPLATES ? pick(it, tkeys, 5, 2)
                                             : pick(it, pkeys, 3, 1);
        if (!o) continue;
        json_t *args = json_object_get(it, "arguments");
        if (c->kind == K_PROMPTS && json_is_array(args)) json_object_set(o, "arguments", args);
        size_t size = jtext_size(o);
        if (json_array_size(c->acc) >= MCP_ITEMS_MAX || c->acc_bytes + size > MCP_ITEMS_BYTES) {
            log_warn(LOG_MOD, "%s: %s: more than %d items or %u bytes of them; the rest is ignored",
                     x->base.name, kind_method[c->kind], MCP_ITEMS_MAX, MCP_ITEMS_BYTES);
            json_decref(o);
            return false;
        }
        c->acc_bytes += size;
        json_array_append_new(c->acc, o);
    }
    return true;
}

/* Whether an error answer means "no such resource or prompt": MCP's -32002, or the invalid
 * params the TypeScript SDK answers with "... not found". */
static bool not_found(int code, const char *msg)
{
    return code == -32002 || (code == -32602 && msg && strstr(msg, "not found"));
}

/* Whether s is base64 (RFC 4648: its alphabet, padded to a multiple of 4). */
static bool base64_text(const char *s)
{
    size_t n = strlen(s), pad = 0;
    while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
        pad++;
    if (n % 4) return false;
    for (size_t i = 0; i < n - pad; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/') return false;
    return true;
}

static void on_json(mcp_call *c, json_t *result, int code, const char *msg)
{
    mcp_ext *x = (mcp_ext *)c->base.x;
    json_int_t id = c->id;
    c->id = 0;
    const char *m = kind_method[c->kind];
    if (!result) {
        if (code == MCP_RPC_TIMEOUT) {
            send_cancelled(x, id, msg);
            call_fail_e(c, GD_ETIMEOUT, "%s: %s: %s", x->base.name, m, msg);
        } else {
            call_fail_e(c,
                        not_found(code, msg)                    ? GD_ENOTFOUND
                        : c->kind == K_PROMPT && code == -32602 ? GD_EINVAL
                                                                : GD_EPROTO,
                        "%s: %s: the server answered with an error: %s (%d)", x->base.name, m, msg,
                        code);
        }
        return;
    }
    if (LISTING(c->kind)) {
        json_t *list = json_object_get(result, LIST_KEY(c->kind));
        if (!json_is_array(list)) {
            call_fail_e(c, GD_EPROTO, "%s: %s: the server's result has no %s array", x->base.name,
                        m, LIST_KEY(c->kind));
            return;
        }
        bool room = take_items(x, c, list);
        const char *next = json_string_value(json_object_get(result, "nextCursor"));
        if (room && next && next[0] && ++c->pages < MCP_LIST_PAGES_MAX) {
            json_object_set_new(c->args, "cursor", json_string(next));
            if (!call_send(x, c))
                call_fail_e(c, GD_ENOMEM, "%s: %s: out of memory", x->base.name, m);
            return;
        }
        if (room && next && next[0])
            log_warn(LOG_MOD, "%s: %s: more than %d pages; the rest is ignored", x->base.name, m,
                     MCP_LIST_PAGES_MAX);
        json_t *acc = c->acc;
        c->acc = NULL;
        call_finish(c, acc, false, NULL);
        return;
    }
    size_t size = jtext_size(result);
    if (size > MCP_READ_BYTES) {
        call_fail_e(c, GD_ETOOBIG, "%s: %s: the answer has %zu bytes, more than the %u kept",
                    x->base.name, m, size, MCP_READ_BYTES);
        return;
    }
    if (c->kind == K_READ) {
        json_t *contents = json_object_get(result, "contents");
        json_t *out = json_array();
        size_t i;
        json_t *it;
        json_array_foreach(contents, i, it)
        {
            static const char *const keys[] = {"uri", "mimeType", "text", "blob"};
            const char *blob = json_string_value(json_object_get(it, "blob"));
            if (blob && !base64_text(blob)) {
                json_decref(out);
                call_fail_e(c, GD_EPROTO, "%s: %s: the server's contents[%zu].blob is not base64",
                            x->base.name, m, i);
                return;
            }
            json_t *o = pick(it, keys, 4, 1);
            if (o && (json_object_get(o, "text") || json_object_get(o, "blob")))
                json_array_append_new(out, o);
            else
                json_decref(o);
        }
        if (!json_is_array(contents)) {
            json_decref(out);
            call_fail_e(c, GD_EPROTO, "%s: %s: the server's result has no contents array",
                        x->base.name, m);
            return;
        }
        call_finish(c, out, false, NULL);
        return;
    }
    json_t *msgs = json_object_get(result, "messages");
    if (!json_is_array(msgs)) {
        call_fail_e(c, GD_EPROTO, "%s: %s: the server's result has no messages array", x->base.name,
                    m);
        return;
    }
    size_t i;
    json_t *pm;
    json_array_foreach(msgs, i, pm)
    {
        const char *role = json_string_value(json_object_get(pm, "role"));
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant")) ||
            !json_is_string(json_object_get(json_object_get(pm, "content"), "type"))) {
            call_fail_e(c, GD_EPROTO,
                        "%s: %s: the server's messages[%zu] is not a prompt message (a role user "
                        "or assistant, and a content with a type)",
                        x->base.name, m, i);
            return;
        }
    }
    json_t *out = json_pack("{s:O}", "messages", msgs);
    json_t *desc = json_object_get(result, "description");
    if (out && json_is_string(desc)) json_object_set(out, "description", desc);
    call_finish(c, out, false, NULL);
}

/* Starts a resource or prompt request; params stolen. */
static ext_call *json_request(mcp_ext *x, call_kind kind, json_t *params, ext_json_done done,
                              void *ud)
{
    mcp_call *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(params);
        return NULL;
    }
    c->base.x = &x->base;
    c->kind = kind;
    c->jdone = done;
    c->ud = ud;
    c->args = params;
    snprintf(c->tool, sizeof c->tool, "%s", kind_method[kind]);
    c->timeout_ms = x->timeout_ms;
    c->next = x->calls;
    x->calls = c;
    unsigned need = kind == K_RESOURCES || kind == K_READ || kind == K_TEMPLATES
                        ? EXT_SERVES_RESOURCES
                        : EXT_SERVES_PROMPTS;
    if (x->st != EXT_RUNNING) {
        call_fail(c, "%s: the extension is not running%s%s", x->base.name,
                  x->st == EXT_FAILED ? ": " : "", x->st == EXT_FAILED ? x->why : "");
    } else if (!(x->serves & need)) {
        call_fail_e(c, GD_ENOTFOUND, "%s has no %s", x->base.name,
                    need == EXT_SERVES_RESOURCES ? "resources" : "prompts");
    } else if (!params || (LISTING(kind) && !(c->acc = json_array())) || !call_send(x, c)) {
        x->calls = c->next;
        json_decref(c->args);
        json_decref(c->acc);
        free(c);
        return NULL;
    }
    return &c->base;
}

static unsigned x_serves(extension *base)
{
    return ((mcp_ext *)base)->serves;
}

static ext_call *x_resources(extension *base, ext_json_done done, void *ud)
{
    return json_request((mcp_ext *)base, K_RESOURCES, json_object(), done, ud);
}

static ext_call *x_read_resource(extension *base, const char *uri, ext_json_done done, void *ud)
{
    return json_request((mcp_ext *)base, K_READ, json_pack("{s:s}", "uri", uri), done, ud);
}

static ext_call *x_resource_templates(extension *base, ext_json_done done, void *ud)
{
    return json_request((mcp_ext *)base, K_TEMPLATES, json_object(), done, ud);
}

static ext_call *x_prompts(extension *base, ext_json_done done, void *ud)
{
    return json_request((mcp_ext *)base, K_PROMPTS, json_object(), done, ud);
}

static ext_call *x_get_prompt(extension *base, const char *name, json_t *args, ext_json_done done,
                              void *ud)
{
    json_t *p = json_pack("{s:s}", "name", name);
    if (p && json_is_object(args)) json_object_set(p, "arguments", args);
    return json_request((mcp_ext *)base, K_PROMPT, p, done, ud);
}

/* ---- the rest ---- */

static ext_state x_state(extension *base, char *why, size_t whylen)
{
    mcp_ext *x = (mcp_ext *)base;
    if (why && whylen) snprintf(why, whylen, "%s", x->st == EXT_FAILED ? x->why : "");
    return x->st;
}

static const char *x_instructions(extension *base)
{
    return ((mcp_ext *)base)->instructions;
}

static json_t *x_tools(extension *base)
{
    return ((mcp_ext *)base)->tools;
}

static void x_close(extension *base)
{
    mcp_ext *x = (mcp_ext *)base;
    if (x->queued) gate_unqueue(x);
    gate_release(x); /* the next waiting server starts */
    while (x->calls) {
        mcp_call *c = x->calls;
        x->calls = c->next;
        if (!c->finished) send_cancelled(x, c->id, "the extension was closed");
        if (c->post) loop_timer_cancel(c->post);
        if (c->finished) {
            json_decref(c->res.content);
            json_decref(c->res.structured);
        }
        json_decref(c->args);
        json_decref(c->acc);
        free(c);
    }
    mcp_rpc_close(x->rpc);
    while (x->posts) {
        spost *p = x->posts;
        x->posts = p->next;
        loop_timer_cancel(p->t);
        free(p);
    }
    while (x->waiters) {
        waiter *w = x->waiters;
        x->waiters = w->next;
        free(w);
    }
    log_limit_flush(&x->msg_limit, LOG_MOD, "server log messages");
    json_decref(x->acc);
    json_decref(x->tools);
    json_decref(x->cfg);
    free(x->instructions);
    free(x);
}

static const extension_ops mcp_ops = {
    .start = x_start,
    .state = x_state,
    .instructions = x_instructions,
    .tools = x_tools,
    .call = x_call,
    .cancel = x_cancel,
    .close = x_close,
    .serves = x_serves,
    .resources = x_resources,
    .read_resource = x_read_resource,
    .prompts = x_prompts,
    .resource_templates = x_resource_templates,
    .get_prompt = x_get_prompt,
};

extension *mcp_extension_new(const json_t *cfg, const ext_host *host, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(cfg, "type"));
    const char *name = json_string_value(json_object_get(cfg, "name"));
    if (!name || !name[0]) name = "mcp";
    if (!type ||
        (strcmp(type, "stdio") && strcmp(type, "streamable_http") && strcmp(type, "sse"))) {
        snprintf(err, errlen, "%s: type '%s' is not an MCP extension (stdio, streamable_http, sse)",
                 name, type ? type : "");
        return NULL;
    }
    mcp_ext *x = calloc(1, sizeof *x);
    if (!x || !(x->tools = json_array())) {
        free(x);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    x->base.ops = &mcp_ops;
    snprintf(x->base.name, sizeof x->base.name, "%s", name);
    x->cfg = json_incref((json_t *)cfg);
    x->host = host;
    x->st = EXT_STOPPED;
    json_t *to = json_object_get(cfg, "timeout");
    double s = json_is_number(to) ? json_number_value(to) : EXT_DEFAULT_TIMEOUT_S;
    if (s <= 0) s = EXT_DEFAULT_TIMEOUT_S;
    if (s > 86400) s = 86400;
    x->timeout_ms = (long)(s * 1000);
    return &x->base;
}
