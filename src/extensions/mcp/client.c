/* client: JSON-RPC 2.0 over an MCP transport (see client.h). */
#include "extensions/mcp/client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define LOG_MOD "mcp"

#define MCP_HOST_REQUESTS_MAX 16 /* elicitations and samplings of one server waiting at once */

/* The transport for a checked config, by its type. */
static mcp_transport *mcp_transport_new(const json_t *cfg, const ext_host *host,
                                        const mcp_transport_cb *cb, char *err, size_t errlen)
{
    const char *type = json_string_value(json_object_get(cfg, "type"));
    const char *name = json_string_value(json_object_get(cfg, "name"));
    if (!type) type = "";
    if (!strcmp(type, "stdio")) return mcp_stdio_new(cfg, host, cb, err, errlen);
    if (!strcmp(type, "streamable_http")) return mcp_http_new(cfg, host, cb, err, errlen);
    if (!strcmp(type, "sse")) return mcp_sse_new(cfg, host, cb, err, errlen);
    snprintf(err, errlen, "%s: type '%s' is not an MCP transport (stdio, streamable_http, sse)",
             name ? name : "extension", type);
    return NULL;
}

mcp_transport_factory mcp_rpc_transport_new = mcp_transport_new;

typedef struct pending {
    struct pending *next;
    mcp_rpc *r;
    json_int_t id;
    char method[48];
    long timeout_ms;
    loop_timer *timer;
    mcp_rpc_reply fn;
    void *ud;
} pending;

/* A request from the server waiting for the host's answer. */
typedef struct hostreq {
    struct hostreq *next;
    mcp_rpc *r; /* NULL once the rpc is gone: the answer is then dropped */
    json_t *id;
    void *handle;
    bool in_request, answered;
} hostreq;

struct mcp_rpc {
    const ext_host *host;
    extension *x;
    mcp_rpc_cb cb;
    mcp_transport *t;
    json_int_t next_id;
    pending *pend;
    hostreq *reqs;
    int held;         /* requests the transport holds while the user signs in */
    int depth;        /* inside a transport callback */
    bool dead;        /* closed while inside one: freed when it returns */
    loop_timer *reap; /* the deferred close */
};

bool mcp_version_supported(const char *v)
{
    static const char *const ok[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
    if (!v) return false;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(v, ok[i])) return true;
    return false;
}

char *mcp_file_uri(const char *path)
{
    size_t n = strlen(path);
    char *u = malloc(7 + 3 * n + 1);
    if (!u) return NULL;
    char *p = u + sprintf(u, "file://");
    for (const unsigned char *s = (const unsigned char *)path; *s; s++) {
        if (isalnum(*s) || strchr("/-._~", *s))
            *p++ = (char)*s;
        else
            p += sprintf(p, "%%%02X", *s);
    }
    *p = '\0';
    return u;
}

/* ---- sending ---- */

static void send_msg(mcp_rpc *r, json_t *msg)
{
    if (msg && !r->dead) r->t->ops->send(r->t, msg);
    json_decref(msg);
}

static void send_result(mcp_rpc *r, json_t *id, json_t *result)
{
    json_t *m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result",
                          result ? result : json_object());
    send_msg(r, m);
}

static void send_error(mcp_rpc *r, json_t *id, int code, const char *msg)
{
    json_t *m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                          code, "message", msg ? msg : "error");
    send_msg(r, m);
}

static void pending_unlink(mcp_rpc *r, pending *p)
{
    for (pending **pp = &r->pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static void pending_free(pending *p)
{
    if (p->timer) loop_timer_cancel(p->timer);
    free(p);
}

static void on_timeout(void *ud)
{
    pending *p = ud;
    mcp_rpc *r = p->r;
    p->timer = NULL; /* freed when this returns */
    pending_unlink(r, p);
    char msg[128];
    snprintf(msg, sizeof msg, "timed out after %g s", (double)p->timeout_ms / 1000.0);
    mcp_rpc_reply fn = p->fn;
    void *ud2 = p->ud;
    free(p);
    fn(ud2, NULL, MCP_RPC_TIMEOUT, msg);
}

json_int_t mcp_rpc_request(mcp_rpc *r, const char *method, json_t *params, long timeout_ms,
                           mcp_rpc_reply fn, void *ud)
{
    pending *p = calloc(1, sizeof *p);
    json_int_t id = ++r->next_id;
    json_t *m = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", id, "method", method);
    if (!p || !m || (params && json_object_set_new(m, "params", params))) {
        if (!m) json_decref(params);
        free(p);
        json_decref(m);
        return 0;
    }
    p->r = r;
    p->id = id;
    snprintf(p->method, sizeof p->method, "%s", method);
    p->fn = fn;
    p->ud = ud;
    p->timeout_ms = timeout_ms;
    if (timeout_ms > 0 && !r->held &&
        !(p->timer = loop_timer_add(r->host->l, (uint64_t)timeout_ms, on_timeout, p))) {
        free(p);
        json_decref(m);
        return 0;
    }
    p->next = r->pend;
    r->pend = p;
    send_msg(r, m);
    return id;
}

void mcp_rpc_forget(mcp_rpc *r, json_int_t id)
{
    for (pending *p = r->pend; p; p = p->next)
        if (p->id == id) {
            pending_unlink(r, p);
            pending_free(p);
            return;
        }
}

void mcp_rpc_notify(mcp_rpc *r, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (m && params)
        json_object_set_new(m, "params", params);
    else
        json_decref(params);
    send_msg(r, m);
}

void mcp_rpc_set_version(mcp_rpc *r, const char *version)
{
    if (!r->dead && r->t->ops->set_protocol_version) r->t->ops->set_protocol_version(r->t, version);
}

/* ---- the server's requests ---- */

static void hostreq_unlink(mcp_rpc *r, hostreq *h)
{
    for (hostreq **pp = &r->reqs; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            return;
        }
}

static void host_reply(void *rud, json_t *result, int code, const char *msg)
{
    hostreq *h = rud;
    h->answered = true;
    if (h->r) {
        if (result)
            send_result(h->r, h->id, result);
        else
            send_error(h->r, h->id, code ? code : -1, msg ? msg : "declined");
        hostreq_unlink(h->r, h);
    } else {
        json_decref(result);
    }
    if (!h->in_request) {
        json_decref(h->id);
        free(h);
    }
}

static void on_request(mcp_rpc *r, const char *method, json_t *id, json_t *params)
{
    if (!strcmp(method, "ping")) {
        send_result(r, id, NULL);
        return;
    }
    if (!strcmp(method, "roots/list")) {
        const char *cwd = r->host->cwd && r->host->cwd[0] ? r->host->cwd : "/";
        char *uri = mcp_file_uri(cwd);
        const char *base = strrchr(cwd, '/');
        base = base && base[1] ? base + 1 : cwd;
        json_t *res =
            json_pack("{s:[{s:s, s:s}]}", "roots", "uri", uri ? uri : "file:///", "name", base);
        free(uri);
        if (res)
            send_result(r, id, res);
        else
            send_error(r, id, -32603, "out of memory");
        return;
    }
    bool hostly =
        !strcmp(method, "elicitation/create") || !strcmp(method, "sampling/createMessage");
    if (!hostly || !r->host->ops || !r->host->ops->request) {
        send_error(r, id, -32601, "Method not found");
        return;
    }
    unsigned open = 0;
    for (hostreq *o = r->reqs; o; o = o->next)
        open++;
    if (open >= MCP_HOST_REQUESTS_MAX) {
        send_error(r, id, -32000, "too many requests waiting for an answer");
        return;
    }
    hostreq *h = calloc(1, sizeof *h);
    if (!h) {
        send_error(r, id, -32603, "out of memory");
        return;
    }
    h->r = r;
    h->id = json_incref(id);
    h->next = r->reqs;
    r->reqs = h;
    h->in_request = true;
    const ext_host_ops *ops = r->host->ops;
    h->handle = ops->request(ops->ud, r->x, method, params, host_reply, h);
    h->in_request = false;
    if (h->answered) { /* against the contract, but harmless */
        json_decref(h->id);
        free(h);
    }
}

static void on_cancelled(mcp_rpc *r, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    for (hostreq *h = r->reqs; h; h = h->next)
        if (rid && json_equal(rid, h->id)) {
            hostreq_unlink(r, h);
            if (h->handle) {
                r->host->ops->request_cancel(r->host->ops->ud, h->handle);
                json_decref(h->id);
                free(h);
            } else {
                h->r = NULL; /* its answer is on its way: dropped */
            }
            return;
        }
}

/* ---- receiving ---- */

static void on_response(mcp_rpc *r, json_t *msg)
{
    json_t *jid = json_object_get(msg, "id");
    if (!json_is_integer(jid)) {
        log_debug(LOG_MOD, "%s: a response to no request of ours", r->x->name);
        return;
    }
    json_int_t id = json_integer_value(jid);
    pending *p = r->pend;
    while (p && p->id != id)
        p = p->next;
    if (!p) {
        log_debug(LOG_MOD, "%s: a response to request %lld, not pending", r->x->name,
                  (long long)id);
        return;
    }
    pending_unlink(r, p);
    mcp_rpc_reply fn = p->fn;
    void *ud = p->ud;
    pending_free(p);
    json_t *err = json_object_get(msg, "error");
    if (err) {
        json_t *jc = json_object_get(err, "code");
        const char *m = json_string_value(json_object_get(err, "message"));
        int code = json_is_integer(jc) ? (int)json_integer_value(jc) : -32603;
        if (!code) code = -32603;
        fn(ud, NULL, code, m ? m : "the server answered with an error and no message");
        return;
    }
    json_t *res = json_object_get(msg, "result");
    if (!res) {
        fn(ud, NULL, -32603, "the server answered with neither a result nor an error");
        return;
    }
    fn(ud, res, 0, NULL);
}

static void on_one(mcp_rpc *r, json_t *msg)
{
    if (!json_is_object(msg)) return;
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    if (!method) {
        on_response(r, msg);
    } else if (id && !json_is_null(id)) {
        on_request(r, method, id, params);
    } else if (!strcmp(method, "notifications/cancelled")) {
        on_cancelled(r, params);
    } else if (r->cb.notify) {
        r->cb.notify(r->cb.ud, method, params);
    }
}

static void rpc_free(mcp_rpc *r);

static void t_message(void *ud, json_t *msg)
{
    mcp_rpc *r = ud;
    if (r->dead) return;
    r->depth++;
    if (json_is_array(msg)) {
        size_t i;
        json_t *m;
        json_array_foreach(msg, i, m)
        {
            if (r->dead) break;
            on_one(r, m);
        }
    } else {
        on_one(r, msg);
    }
    r->depth--;
}

static void t_closed(void *ud, gd_err e, const char *why)
{
    mcp_rpc *r = ud;
    if (r->dead) return;
    r->depth++;
    if (r->cb.closed) r->cb.closed(r->cb.ud, e, why);
    r->depth--;
}

/* While the user signs in, no request times out: each one's timer starts again, whole, once the
 * sign-in is over (the user's reading and typing is not the server's slowness). */
static void t_held(void *ud, int delta)
{
    mcp_rpc *r = ud;
    if (r->dead) return;
    bool was = r->held > 0;
    r->held += delta;
    for (pending *p = r->pend; p; p = p->next) {
        if (r->held && p->timer) {
            loop_timer_cancel(p->timer);
            p->timer = NULL;
        } else if (!r->held && !p->timer && p->timeout_ms > 0) {
            p->timer = loop_timer_add(r->host->l, (uint64_t)p->timeout_ms, on_timeout, p);
        }
    }
    if (was != (r->held > 0) && r->cb.held) r->cb.held(r->cb.ud, r->held > 0);
}

mcp_rpc *mcp_rpc_new(const json_t *cfg, const ext_host *host, extension *x, const mcp_rpc_cb *cb,
                     char *err, size_t errlen)
{
    mcp_rpc *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->host = host;
    r->x = x;
    r->cb = *cb;
    mcp_transport_cb tcb = {.message = t_message, .closed = t_closed, .held = t_held, .ud = r};
    if (!(r->t = mcp_rpc_transport_new(cfg, host, &tcb, err, errlen))) {
        free(r);
        return NULL;
    }
    return r;
}

static void rpc_free(mcp_rpc *r)
{
    if (r->t) r->t->ops->close(r->t);
    r->t = NULL;
    while (r->pend) {
        pending *p = r->pend;
        r->pend = p->next;
        pending_free(p);
    }
    while (r->reqs) {
        hostreq *h = r->reqs;
        r->reqs = h->next;
        if (h->handle) {
            r->host->ops->request_cancel(r->host->ops->ud, h->handle);
            json_decref(h->id);
            free(h);
        } else {
            h->r = NULL; /* its answer is on its way: dropped then */
        }
    }
    free(r);
}

static void reap(void *ud)
{
    mcp_rpc *r = ud;
    r->reap = NULL;
    rpc_free(r);
}

void mcp_rpc_close(mcp_rpc *r)
{
    if (!r) return;
    if (r->depth == 0) {
        rpc_free(r);
        return;
    }
    /* Inside a transport callback: the transport may still be walking its buffer. Stop
     * listening now, free on the next turn of the loop. */
    r->dead = true;
    while (r->pend) {
        pending *p = r->pend;
        r->pend = p->next;
        pending_free(p);
    }
    if (!(r->reap = loop_timer_add(r->host->l, 0, reap, r))) {
        log_error(LOG_MOD, "%s: no memory to close the transport later; leaking it", r->x->name);
    }
}
