/* Fuzzes the JSON body decoding of every route that takes a body (api/routes.c, ROUTE_BODY): the
 * real handlers of src/api/ run on a request made here, with the body parsed exactly as
 * src/http/server.c's dispatch does (duplicates refused, an object only), against a real SQLite
 * store in a temporary directory, the configuration of a temporary home and a real agent whose
 * provider has no key (a message is refused before any request). The HTTP layer a handler calls
 * (http.h) is stubbed here, so nothing listens or reaches a network: what is fuzzed is each
 * handler's reading and checking of its body, and its answer. Checks: exactly one answer per
 * request, with a status, and an error answer never a 5xx for a body alone (only 503 from a store
 * stopped is allowed); whatever a handler keeps (state, stream, on_done) is freed.
 *
 * Input: byte 0 picks the route (among those with a body), byte 1 the path parameters (the
 * existing session and extension, or ones that do not exist), the rest is the body. */
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "api/api.h"
#include "auth/auth.h"
#include "core/log.h"
#include "extensions/ext_config.h"
#include "store/store.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "CHECK failed: %s (line %d)\n", #c, __LINE__);                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct http_req {
    const http_route *route;
    const char *params[ROUTE_MAX_PARAMS];
    int nparams;
    json_t *json;
    int status;
    int replies;
    void *state;
    http_handler cont;
    bool resumed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*done_fn)(void *);
    void *done_arg;
    void *stream_cls;
    void (*stream_free)(void *);
};

static app g_app;
static config g_cfg;
static auth_user g_user = {.id = "", .name = "fuzz", .admin = true};
static char g_session[UUID_STR_LEN];

/* ---- the HTTP layer handlers see (http.h), stubbed ---- */

void *http_app(http_req *r)
{
    (void)r;
    return &g_app;
}
const char *http_method(http_req *r)
{
    return r->route->method;
}
const char *http_path(http_req *r)
{
    return r->route->pattern;
}
const char *http_param(http_req *r, int i)
{
    return i >= 0 && i < r->nparams ? r->params[i] : NULL;
}
const char *http_query(http_req *r, const char *name)
{
    (void)r, (void)name;
    return NULL;
}
const char *http_header(http_req *r, const char *name)
{
    (void)r;
    return !strcasecmp(name, "Content-Type") ? "application/json" : NULL;
}
bool http_origin_listed(http_req *r)
{
    (void)r;
    return false;
}
bool http_origin_trusted(http_req *r)
{
    (void)r;
    return true;
}
json_t *http_body(http_req *r)
{
    return r->json;
}
void *http_state(http_req *r, size_t size)
{
    if (!r->state) r->state = calloc(1, size);
    return r->state;
}
void http_suspend(http_req *r, http_handler cont)
{
    pthread_mutex_lock(&r->mu);
    r->cont = cont;
    pthread_mutex_unlock(&r->mu);
}
void http_resume(http_req *r)
{
    pthread_mutex_lock(&r->mu);
    r->resumed = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
static void reply(http_req *r, int status)
{
    CHECK(status >= 100 && status < 600);
    r->replies++;
    r->status = status;
}
static void streamed(http_req *r, int status, void *cls, void (*free_cls)(void *cls))
{
    reply(r, status);
    r->stream_cls = cls;
    r->stream_free = free_cls;
}
void http_reply_stream(http_req *r, int status, const char *content_type, http_stream_fn fn,
                       void *cls, void (*free_cls)(void *cls))
{
    (void)content_type, (void)fn;
    streamed(r, status, cls, free_cls);
}
void http_reply_pieces(http_req *r, int status, const char *content_type, http_piece_fn fn,
                       void *cls, void (*free_cls)(void *cls))
{
    (void)content_type, (void)fn;
    streamed(r, status, cls, free_cls);
}
bool http_peer_gone(http_req *r)
{
    (void)r;
    return true;
}
void http_stream_wait(http_req *r)
{
    (void)r;
}
void http_on_done(http_req *r, void (*fn)(void *arg), void *arg)
{
    CHECK(!r->done_fn);
    r->done_fn = fn;
    r->done_arg = arg;
}
void http_reply_upgrade(http_req *r, http_upgrade_fn fn, void *cls)
{
    (void)fn, (void)cls;
    reply(r, 101);
}
void http_upgrade_close(http_upgrade *up)
{
    (void)up;
}
bool http_stopping(http_req *r)
{
    (void)r;
    return false;
}
void http_add_header(http_req *r, const char *name, const char *value)
{
    (void)r, (void)name, (void)value;
}
void http_reply_json(http_req *r, int status, json_t *body)
{
    CHECK(body);
    reply(r, status);
    json_decref(body);
}
void http_reply_text(http_req *r, int status, const char *content_type, const char *text,
                     size_t len)
{
    (void)content_type, (void)text, (void)len;
    reply(r, status);
}
void http_reply_json_text(http_req *r, int status, char *text, size_t len)
{
    CHECK(text);
    (void)len;
    free(text);
    reply(r, status);
}
void http_reply_static(http_req *r, int status, const char *content_type, const void *data,
                       size_t len)
{
    (void)content_type, (void)data, (void)len;
    reply(r, status);
}
void http_reply_empty(http_req *r, int status)
{
    reply(r, status);
}
void http_reply_error(http_req *r, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    CHECK(code && code[0]);
    /* A body alone never makes the server fail (503: the store, which the fuzzer may fill). */
    if (status >= 500 && status != 503) {
        fprintf(stderr, "%d %s: %s\n", status, code, msg);
        abort();
    }
    reply(r, status);
}
void *http_who(struct http_req *r)
{
    (void)r;
    return &g_user; /* what auth_gate would have kept there: an admin */
}
void http_set_log_who(struct http_req *r, const char *user, const char *session_id)
{
    (void)r, (void)user, (void)session_id;
}

/* ---- the harness ---- */

static const http_route *g_body_routes[64];
static size_t g_nbody;
static char g_home[] = "/tmp/goosed-fuzz-api-XXXXXX";

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* The temporary home goes at exit (the store may still have it open: unlinked files are fine). */
static void rm_home(void)
{
    nftw(g_home, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[256], *home = g_home;
    log_configure("off", err, sizeof err);
    if (!mkdtemp(home)) abort();
    atexit(rm_home);
    setenv("HOME", home, 1);
    unsetenv("GOOSE_CONFIG_DIR");
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("XDG_DATA_HOME");
    setenv("GOOSE_PROVIDER", "openai", 1);
    setenv("GOOSE_MODEL", "gpt-fuzz", 1);
    char *args[] = {"goosed", NULL};
    cfg_action act;
    if (config_load(&g_cfg, 1, args, &act, err, sizeof err)) {
        fprintf(stderr, "fuzz_api_body: config: %s\n", err);
        abort();
    }
    char data[512];
    snprintf(data, sizeof data, "%s/data", home);
    g_app.cfg = &g_cfg;
    g_app.st = store_sqlite_open(data, 1024);
    if (!g_app.st) abort();
    g_app.exts = ext_set_load(&g_cfg);
    g_app.agent = agent_new(&g_cfg, g_app.st);
    if (!g_app.agent) abort();
    agent_use_extensions(g_app.agent, g_app.exts);
    store_session s = {0};
    snprintf(s.name, sizeof s.name, "fuzz");
    snprintf(s.working_dir, sizeof s.working_dir, "%s", home);
    if (g_app.st->ops->session_create(g_app.st, &s)) abort();
    snprintf(g_session, sizeof g_session, "%s", s.id);
    for (size_t i = 0; i < api_nroutes && g_nbody < 64; i++)
        if (api_routes[i].flags & ROUTE_BODY) g_body_routes[g_nbody++] = &api_routes[i];
    return 0;
}

static void run(http_req *r, http_handler fn)
{
    fn(r);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        http_handler cont = r->replies ? NULL : r->cont;
        if (cont) {
            while (!r->resumed)
                pthread_cond_wait(&r->cv, &r->mu);
            r->resumed = false;
            r->cont = NULL;
        }
        pthread_mutex_unlock(&r->mu);
        if (!cont) break;
        cont(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || !g_nbody) return 0;
    http_req r = {.route = g_body_routes[data[0] % g_nbody]};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    static const char *const ids[] = {NULL, "00000000-0000-4000-8000-000000000000"};
    static const char *const names[] = {"developer", "no-such-extension"};
    const char *p = r.route->pattern;
    while ((p = strchr(p, '{')) && r.nparams < ROUTE_MAX_PARAMS) {
        bool id = !strncmp(p, "{id}", 4);
        const char *v = id ? ids[data[1] & 1] : names[(data[1] >> 1) & 1];
        r.params[r.nparams++] = v ? v : g_session;
        p++;
    }
    /* server.c's dispatch: an empty body is no body; otherwise a JSON object or a 400. */
    const char *body = (const char *)data + 2;
    size_t blen = size - 2;
    if (blen) {
        json_error_t jerr;
        r.json = json_loadb(body, blen, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!r.json || !json_is_object(r.json)) {
            json_decref(r.json);
            return 0;
        }
    }
    run(&r, r.route->fn);
    CHECK(r.replies == 1);
    if (r.stream_free) r.stream_free(r.stream_cls);
    if (r.done_fn) r.done_fn(r.done_arg);
    free(r.state);
    json_decref(r.json);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    return 0;
}
