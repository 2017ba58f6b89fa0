/* The MCP client (src/extensions/mcp): JSON-RPC matching, the lifecycle and version
 * negotiation, tools/list pages, calls, cancellation, timeouts, progress, server requests and a
 * crash, over a fake transport the test drives message by message. Everything runs on a real
 * loop; the test thread waits for what the client sends. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "extensions/mcp/client.h"
#include "extensions/mcp/mcp.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* ---- the fake transport ---- */

typedef struct {
    mcp_transport base;
    mcp_transport_cb cb;
} fake_t;

static struct {
    fake_t *t;        /* the live one (loop thread) */
    json_t *sent;     /* every message the client sent, in order (under mu) */
    size_t seen;      /* test thread: how many were looked at */
    int made, closed; /* transports made and closed */
    char version[32];
} F;

static void fake_send(mcp_transport *t, json_t *msg)
{
    pthread_mutex_lock(&mu);
    json_array_append_new(F.sent, json_deep_copy(msg));
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void fake_version(mcp_transport *t, const char *v)
{
    snprintf(F.version, sizeof F.version, "%s", v);
}

static void fake_close(mcp_transport *t)
{
    if (F.t == (fake_t *)t) F.t = NULL;
    F.closed++;
    free(t);
}

static const mcp_transport_ops fake_ops = {fake_send, fake_version, fake_close};

static mcp_transport *fake_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                               char *err, size_t errlen)
{
    fake_t *t = calloc(1, sizeof *t);
    t->base.ops = &fake_ops;
    t->cb = *cb;
    F.t = t;
    F.made++;
    return &t->base;
}

/* ---- running things on the loop ---- */

typedef struct {
    void (*fn)(void *);
    void *arg;
    bool ran;
} req;

static void run_req(void *ud)
{
    req *q = ud;
    q->fn(q->arg);
    pthread_mutex_lock(&mu);
    q->ran = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static loop *L;
static ext_host H;
static extension *X;

static void on_loop(void (*fn)(void *), void *arg)
{
    req q = {.fn = fn, .arg = arg};
    assert_int_equal(loop_post(L, run_req, &q), GD_OK);
    pthread_mutex_lock(&mu);
    while (!q.ran)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

/* Waits for the next message the client sends (after those already seen); returns a copy. */
static json_t *next_sent(void)
{
    pthread_mutex_lock(&mu);
    while (json_array_size(F.sent) <= F.seen)
        pthread_cond_wait(&cv, &mu);
    json_t *m = json_incref(json_array_get(F.sent, F.seen++));
    pthread_mutex_unlock(&mu);
    return m;
}

/* The next message, which must be method; returns its id (0 for a notification). */
static json_int_t expect(const char *method, json_t **params)
{
    json_t *m = next_sent();
    const char *got = json_string_value(json_object_get(m, "method"));
    if (!got || strcmp(got, method)) fail_msg("expected %s, got %s", method, json_dumps(m, 0));
    json_int_t id = json_integer_value(json_object_get(m, "id"));
    if (params) *params = json_incref(json_object_get(m, "params"));
    json_decref(m);
    return id;
}

static void do_inject(void *arg)
{
    if (F.t) F.t->cb.message(F.t->cb.ud, arg);
}

static void inject(const char *fmt, ...)
{
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    if (!m) fail_msg("bad test JSON: %s: %s", je.text, text);
    on_loop(do_inject, m);
    json_decref(m);
}

typedef struct {
    gd_err e;
    const char *why;
} crash_args;

static void do_crash(void *arg)
{
    crash_args *a = arg;
    if (F.t) F.t->cb.closed(F.t->cb.ud, a->e, a->why);
}

/* ---- waiting for answers ---- */

typedef struct {
    bool done;
    gd_err e;
    char why[512];
} started_t;

static void on_started(void *ud, gd_err e, const char *why)
{
    started_t *s = ud;
    pthread_mutex_lock(&mu);
    s->done = true;
    s->e = e;
    snprintf(s->why, sizeof s->why, "%s", why ? why : "");
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void do_start(void *arg)
{
    X->ops->start(X, on_started, arg);
}

static void wait_flag(bool *b)
{
    pthread_mutex_lock(&mu);
    while (!*b)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

typedef struct {
    const char *tool;
    json_t *args;
    long timeout_ms;
    ext_call *c;
    bool done;
    ext_result res;
    int progress;
    double last;
} call_t;

static void on_done(void *ud, ext_result *res)
{
    call_t *c = ud;
    pthread_mutex_lock(&mu);
    c->res = *res;
    c->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_progress(void *ud, double p, double total, const char *msg)
{
    call_t *c = ud;
    c->progress++;
    c->last = p;
}

static void do_call(void *arg)
{
    call_t *c = arg;
    ext_call_opts o = {.timeout_ms = c->timeout_ms, .progress = on_progress};
    c->c = X->ops->call(X, c->tool, c->args, &o, on_done, c);
}

static void do_cancel(void *arg)
{
    call_t *c = arg;
    X->ops->cancel(c->c);
}

static char *result_text(call_t *c)
{
    return json_string_value(json_object_get(json_array_get(c->res.content, 0), "text"))
               ? (char *)json_string_value(
                     json_object_get(json_array_get(c->res.content, 0), "text"))
               : "";
}

/* ---- fixtures ---- */

static json_t *CFG;

static void do_new(void *arg)
{
    char err[256];
    X = mcp_extension_new(CFG, &H, err, sizeof err);
    assert_non_null(X);
}

static void do_close(void *arg)
{
    if (X) X->ops->close(X);
    X = NULL;
}

static int setup(void **state)
{
    mcp_rpc_transport_new = fake_new;
    memset(&F, 0, sizeof F);
    F.sent = json_array();
    L = loop_new("mcp-test");
    H = (ext_host){.l = L, .cwd = "/tmp/a dir"};
    CFG = json_pack("{s:s, s:s, s:s, s:[], s:i}", "name", "fake", "type", "stdio", "cmd", "x",
                    "available_tools", "timeout", 300);
    on_loop(do_new, NULL);
    return 0;
}

static int teardown(void **state)
{
    on_loop(do_close, NULL);
    loop_free(L);
    json_decref(F.sent);
    json_decref(CFG);
    return 0;
}

/* Starts X against the fake: initialize answered with version, one page of tools. */
static void start_ok(const char *version, const char *tools)
{
    started_t s = {0};
    on_loop(do_start, &s);
    json_t *p;
    json_int_t id = expect("initialize", &p);
    assert_string_equal(json_string_value(json_object_get(p, "protocolVersion")), "2025-11-25");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "clientInfo"), "name")), "goosed");
    assert_non_null(json_object_get(json_object_get(p, "capabilities"), "roots"));
    assert_null(json_object_get(json_object_get(p, "capabilities"), "sampling")); /* no ops */
    json_decref(p);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"%s\","
           "\"capabilities\":{},\"serverInfo\":{\"name\":\"f\",\"version\":\"1\"},"
           "\"instructions\":\"be nice\"}}",
           (long long)id, version);
    expect("notifications/initialized", NULL);
    id = expect("tools/list", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":%s}}", (long long)id, tools);
    wait_flag(&s.done);
    assert_int_equal(s.e, GD_OK);
}

#define TOOLS1 "[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\"}}]"

/* ---- tests ---- */

static void test_versions(void **state)
{
    assert_true(mcp_version_supported("2025-11-25"));
    assert_true(mcp_version_supported("2025-06-18"));
    assert_true(mcp_version_supported("2025-03-26"));
    assert_false(mcp_version_supported("2024-11-05"));
    assert_false(mcp_version_supported(NULL));
    start_ok("2025-06-18", TOOLS1);
    assert_string_equal(F.version, "2025-06-18");
    assert_string_equal(X->ops->instructions(X), "be nice");
}

static void test_version_refused(void **state)
{
    started_t s = {0};
    on_loop(do_start, &s);
    json_int_t id = expect("initialize", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2024-11-05\"}}",
           (long long)id);
    wait_flag(&s.done);
    assert_int_not_equal(s.e, GD_OK);
    assert_non_null(strstr(s.why, "\"2024-11-05\""));
    assert_non_null(strstr(s.why, "2025-11-25"));
    char why[512];
    assert_int_equal(X->ops->state(X, why, sizeof why), EXT_FAILED);
    assert_string_equal(why, s.why);
    /* within the backoff: at once, with the same reason, no new transport */
    started_t s2 = {0};
    on_loop(do_start, &s2);
    wait_flag(&s2.done);
    assert_string_equal(s2.why, s.why);
    assert_int_equal(F.made, 1);
    assert_int_equal(F.closed, 1);
}

static void test_pages(void **state)
{
    json_object_set_new(CFG, "available_tools", json_pack("[s, s]", "a", "c"));
    on_loop(do_close, NULL);
    on_loop(do_new, NULL);
    started_t s = {0};
    on_loop(do_start, &s);
    json_int_t id = expect("initialize", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-11-25\"}}",
           (long long)id);
    expect("notifications/initialized", NULL);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        json_t *p;
        id = expect("tools/list", &p);
        const char *cur = json_string_value(json_object_get(p, "cursor"));
        if (i == 0)
            assert_null(cur);
        else
            assert_int_equal(atoi(cur), i);
        json_decref(p);
        if (i < 2)
            inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"%s\","
                   "\"annotations\":{\"readOnlyHint\":true}}],\"nextCursor\":\"%d\"}}",
                   (long long)id, names[i], i + 1);
        else
            inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"%s\"}]}}",
                   (long long)id, names[i]);
    }
    wait_flag(&s.done);
    assert_int_equal(s.e, GD_OK);
    json_t *tools = X->ops->tools(X); /* read after the start: nothing else runs */
    assert_int_equal(json_array_size(tools), 2);
    json_t *a = json_array_get(tools, 0);
    assert_string_equal(json_string_value(json_object_get(a, "name")), "a");
    assert_true(json_is_true(json_object_get(json_object_get(a, "annotations"), "readOnlyHint")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a, "inputSchema"), "type")), "object");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")), "c");
}

static void test_page_cap(void **state)
{
    started_t s = {0};
    on_loop(do_start, &s);
    json_int_t id = expect("initialize", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-11-25\"}}",
           (long long)id);
    expect("notifications/initialized", NULL);
    for (int i = 0; i < 100; i++) {
        id = expect("tools/list", NULL);
        inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"t%d\"}],"
               "\"nextCursor\":\"more\"}}",
               (long long)id, i);
    }
    wait_flag(&s.done);
    assert_int_equal(s.e, GD_OK);
    assert_int_equal(json_array_size(X->ops->tools(X)), 100);
}

static void test_matching(void **state)
{
    start_ok("2025-11-25", TOOLS1);
    call_t a = {.tool = "echo"}, b = {.tool = "echo"}, c = {.tool = "echo"};
    a.args = json_pack("{s:s}", "text", "A");
    on_loop(do_call, &a);
    json_t *p;
    json_int_t ida = expect("tools/call", &p);
    assert_string_equal(json_string_value(json_object_get(p, "name")), "echo");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "arguments"), "text")),
                        "A");
    const char *tok =
        json_string_value(json_object_get(json_object_get(p, "_meta"), "progressToken"));
    assert_non_null(tok);
    char token[64];
    snprintf(token, sizeof token, "%s", tok);
    json_decref(p);
    on_loop(do_call, &b);
    json_int_t idb = expect("tools/call", NULL);
    on_loop(do_call, &c);
    json_int_t idc = expect("tools/call", NULL);
    assert_int_not_equal(ida, idb);
    /* a response to no request is ignored; progress goes to its call */
    inject("{\"jsonrpc\":\"2.0\",\"id\":999,\"result\":{}}");
    inject("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
           "{\"progressToken\":\"%s\",\"progress\":0.5,\"total\":1}}",
           token);
    /* out of order: b, then c with an error object, then a with structured content */
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[{\"type\":\"text\","
           "\"text\":\"B\"}]}}",
           (long long)idb);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32602,\"message\":\"bad "
           "args\"}}",
           (long long)idc);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[{\"type\":\"text\","
           "\"text\":\"A\"},{\"type\":\"image\",\"data\":\"AA==\",\"mimeType\":\"image/png\"}],"
           "\"isError\":true,\"structuredContent\":{\"v\":1}}}",
           (long long)ida);
    wait_flag(&a.done);
    wait_flag(&b.done);
    wait_flag(&c.done);
    assert_string_equal(result_text(&b), "B");
    assert_false(b.res.is_error);
    assert_true(c.res.is_error);
    assert_non_null(strstr(result_text(&c), "bad args (-32602)"));
    assert_string_equal(result_text(&a), "A");
    assert_true(a.res.is_error);
    assert_int_equal(json_array_size(a.res.content), 2);
    assert_int_equal(json_integer_value(json_object_get(a.res.structured, "v")), 1);
    assert_int_equal(a.progress, 1);
    assert_true(a.last == 0.5);
    assert_int_equal(b.progress, 0);
    call_t *all[] = {&a, &b, &c};
    for (int i = 0; i < 3; i++) {
        json_decref(all[i]->res.content);
        json_decref(all[i]->res.structured);
    }
    json_decref(a.args);
}

static void test_cancel_and_timeout(void **state)
{
    start_ok("2025-11-25", TOOLS1);
    call_t a = {.tool = "echo"};
    on_loop(do_call, &a);
    json_int_t id = expect("tools/call", NULL);
    on_loop(do_cancel, &a);
    json_t *p;
    expect("notifications/cancelled", &p);
    assert_int_equal(json_integer_value(json_object_get(p, "requestId")), id);
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "cancelled");
    json_decref(p);
    wait_flag(&a.done);
    assert_true(a.res.is_error);
    assert_string_equal(result_text(&a), "fake__echo: cancelled");
    json_decref(a.res.content);
    /* a late answer is ignored */
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"content\":[]}}", (long long)id);

    call_t t = {.tool = "echo", .timeout_ms = 20};
    on_loop(do_call, &t);
    id = expect("tools/call", NULL);
    expect("notifications/cancelled", &p);
    assert_int_equal(json_integer_value(json_object_get(p, "requestId")), id);
    assert_string_equal(json_string_value(json_object_get(p, "reason")), "timed out after 0.02 s");
    json_decref(p);
    wait_flag(&t.done);
    assert_true(t.res.is_error);
    assert_string_equal(result_text(&t), "fake__echo: timed out after 0.02 s");
    json_decref(t.res.content);

    call_t u = {.tool = "nope"};
    on_loop(do_call, &u);
    wait_flag(&u.done);
    assert_true(u.res.is_error);
    assert_string_equal(result_text(&u), "fake has no tool named 'nope'; its tools: echo");
    json_decref(u.res.content);
}

typedef struct {
    unsigned gen;
} gen_t;

static void read_gen(void *arg)
{
    ((gen_t *)arg)->gen = X->tools_gen;
}

static void test_list_changed(void **state)
{
    start_ok("2025-11-25", TOOLS1);
    gen_t g0, g1;
    on_loop(read_gen, &g0);
    inject("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
    json_int_t id = expect("tools/list", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[{\"name\":\"x\"},"
           "{\"name\":\"y\"}]}}",
           (long long)id);
    /* the new list is in place once a ping sent after it is answered */
    inject("{\"jsonrpc\":\"2.0\",\"id\":\"p1\",\"method\":\"ping\"}");
    json_t *m = next_sent();
    assert_string_equal(json_string_value(json_object_get(m, "id")), "p1");
    assert_true(json_is_object(json_object_get(m, "result")));
    json_decref(m);
    on_loop(read_gen, &g1);
    assert_int_equal(g1.gen, g0.gen + 1);
    assert_int_equal(json_array_size(X->ops->tools(X)), 2);
}

static void test_server_requests(void **state)
{
    start_ok("2025-11-25", TOOLS1);
    inject("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}");
    json_t *m = next_sent();
    assert_int_equal(json_integer_value(json_object_get(m, "id")), 7);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "error"), "code")),
                     -32601);
    json_decref(m);
    inject("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"roots/list\"}");
    m = next_sent();
    json_t *root = json_array_get(json_object_get(json_object_get(m, "result"), "roots"), 0);
    assert_string_equal(json_string_value(json_object_get(root, "uri")), "file:///tmp/a%20dir");
    json_decref(m);
    inject("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"what/ever\"}");
    m = next_sent();
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "error"), "message")),
                        "Method not found");
    json_decref(m);
}

static void test_crash(void **state)
{
    start_ok("2025-11-25", TOOLS1);
    call_t a = {.tool = "echo"};
    on_loop(do_call, &a);
    expect("tools/call", NULL);
    crash_args ca = {GD_EIO, "exited with status 3"};
    on_loop(do_crash, &ca);
    wait_flag(&a.done);
    assert_true(a.res.is_error);
    assert_string_equal(result_text(&a),
                        "fake__echo failed: fake: the server exited with status 3");
    json_decref(a.res.content);
    char why[512];
    assert_int_equal(X->ops->state(X, why, sizeof why), EXT_FAILED);
    assert_string_equal(why, "fake: the server exited with status 3");
    started_t s = {0};
    on_loop(do_start, &s);
    wait_flag(&s.done);
    assert_int_equal(s.e, GD_EUNAVAIL);
    assert_string_equal(s.why, why);
    assert_int_equal(F.made, 1); /* within the backoff: no new server */
}

/* ---- resources and prompts ---- */

typedef struct {
    bool done;
    json_t *result;
    gd_err e;
    char msg[512];
    int which; /* 0 resources, 1 read, 2 prompts */
    const char *uri;
} jreq_t;

static void on_json_done(void *ud, json_t *result, gd_err e, const char *msg)
{
    jreq_t *q = ud;
    pthread_mutex_lock(&mu);
    q->result = result;
    q->e = e;
    snprintf(q->msg, sizeof q->msg, "%s", msg ? msg : "");
    q->done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void do_jreq(void *arg)
{
    jreq_t *q = arg;
    ext_call *c = q->which == 0   ? X->ops->resources(X, on_json_done, q)
                  : q->which == 1 ? X->ops->read_resource(X, q->uri, on_json_done, q)
                                  : X->ops->prompts(X, on_json_done, q);
    assert_non_null(c);
}

static void test_resources(void **state)
{
    started_t s = {0};
    on_loop(do_start, &s);
    json_int_t id = expect("initialize", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-11-25\","
           "\"capabilities\":{\"tools\":{},\"resources\":{}}}}",
           (long long)id);
    expect("notifications/initialized", NULL);
    id = expect("tools/list", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":%s}}", (long long)id, TOOLS1);
    wait_flag(&s.done);
    assert_int_equal(X->ops->serves(X), EXT_SERVES_RESOURCES);

    /* two pages; an item without a uri is left out */
    jreq_t l = {.which = 0};
    on_loop(do_jreq, &l);
    json_t *p;
    id = expect("resources/list", &p);
    assert_null(json_object_get(p, "cursor"));
    json_decref(p);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"resources\":[{\"uri\":\"f://a\","
           "\"name\":\"a\",\"mimeType\":\"text/plain\"},{\"name\":\"no "
           "uri\"}],\"nextCursor\":\"c2\"}}",
           (long long)id);
    id = expect("resources/list", &p);
    assert_string_equal(json_string_value(json_object_get(p, "cursor")), "c2");
    json_decref(p);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"resources\":[{\"uri\":\"f://b\","
           "\"name\":\"b\"}]}}",
           (long long)id);
    wait_flag(&l.done);
    assert_int_equal(l.e, GD_OK);
    assert_int_equal(json_array_size(l.result), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l.result, 1), "uri")),
                        "f://b");
    json_decref(l.result);

    /* a read: the contents; an unknown resource: not found; a server error: the protocol */
    jreq_t r = {.which = 1, .uri = "f://a"};
    on_loop(do_jreq, &r);
    id = expect("resources/read", &p);
    assert_string_equal(json_string_value(json_object_get(p, "uri")), "f://a");
    json_decref(p);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"contents\":[{\"uri\":\"f://a\","
           "\"text\":\"hello\"}]}}",
           (long long)id);
    wait_flag(&r.done);
    assert_int_equal(r.e, GD_OK);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.result, 0), "text")),
                        "hello");
    json_decref(r.result);
    jreq_t nf = {.which = 1, .uri = "f://zz"};
    on_loop(do_jreq, &nf);
    id = expect("resources/read", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32002,\"message\":\"nope\"}}",
           (long long)id);
    wait_flag(&nf.done);
    assert_int_equal(nf.e, GD_ENOTFOUND);
    assert_null(nf.result);
    jreq_t bad = {.which = 1, .uri = "f://b"};
    on_loop(do_jreq, &bad);
    id = expect("resources/read", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32603,\"message\":\"fire\"}}",
           (long long)id);
    wait_flag(&bad.done);
    assert_int_equal(bad.e, GD_EPROTO);
    assert_non_null(strstr(bad.msg, "fire"));

    /* no prompts capability: refused without asking the server */
    jreq_t pr = {.which = 2};
    on_loop(do_jreq, &pr);
    wait_flag(&pr.done);
    assert_int_equal(pr.e, GD_ENOTFOUND);
    assert_non_null(strstr(pr.msg, "no prompts"));
}

static void test_escape_and_uri(void **state)
{
    char out[64];
    mcp_escape("a\x01\\b\nc", 6, 80, out, sizeof out);
    assert_string_equal(out, "a\\x01\\\\b\\nc");
    mcp_escape("abcdef", 6, 3, out, sizeof out);
    assert_string_equal(out, "abc...");
    char *u = mcp_file_uri("/a b/é");
    assert_string_equal(u, "file:///a%20b/%C3%A9");
    free(u);
}

/* With ext_limits.max_starting = 1, a second server waits until the first is up, then starts;
 * one closed while it waits never starts. */
static extension *Y, *Z;
static started_t YS, ZS;
static void do_gate_setup(void *arg)
{
    char err[256];
    Y = mcp_extension_new(CFG, &H, err, sizeof err);
    Z = mcp_extension_new(CFG, &H, err, sizeof err);
    assert_non_null(Y);
    assert_non_null(Z);
    Y->ops->start(Y, on_started, &YS);
    Z->ops->start(Z, on_started, &ZS);
}
static void do_gate_close(void *arg)
{
    if (arg == Z) Z->ops->close(Z), Z = NULL;
    if (arg == Y) Y->ops->close(Y), Y = NULL;
}

static void test_start_gate(void **state)
{
    ext_limits lim = {.max_starting = 1};
    H.limits = &lim;
    start_ok("2025-11-25", TOOLS1); /* X alone: through the gate and out */
    assert_int_equal(lim.starting, 0);
    assert_int_equal(F.made, 1);
    on_loop(do_gate_setup, NULL); /* Y starts, Z waits */
    json_int_t id = expect("initialize", NULL);
    assert_int_equal(F.made, 2);
    assert_int_equal(lim.starting, 1);
    assert_non_null(lim.start_queue);
    char why[64];
    assert_int_equal(Z->ops->state(Z, why, sizeof why), EXT_STARTING);
    on_loop(do_gate_close, Z); /* closed while it waits: it never starts */
    assert_null(lim.start_queue);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"2025-11-25\","
           "\"capabilities\":{}}}",
           (long long)id);
    expect("notifications/initialized", NULL);
    id = expect("tools/list", NULL);
    inject("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"tools\":[]}}", (long long)id);
    wait_flag(&YS.done);
    assert_int_equal(YS.e, GD_OK);
    assert_int_equal(lim.starting, 0);
    assert_int_equal(F.made, 2); /* Z never made a transport */
    assert_false(ZS.done);       /* and its waiter was dropped with it */
    on_loop(do_gate_close, Y);
    H.limits = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_matching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_gate, setup, teardown),
        cmocka_unit_test(test_escape_and_uri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
