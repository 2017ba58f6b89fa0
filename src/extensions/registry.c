/* registry: the extensions enabled in one session (see extension.h). Tool names are
 * "<extension>__<tool>"; a call goes to the extension named by the part before the first "__". */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "extensions/extension.h"

#define TOOL_NAME_MAX 64 /* "<extension>__<tool>", as the providers take it */
#define LOG_MOD       "extensions"

/* A call that ends without reaching an extension (unknown tool or extension): its result is
 * posted to the loop, so done never runs inside registry_call. */
typedef struct reg_call {
    ext_call base; /* base.x is NULL: nothing to cancel */
    struct reg_call *prev, *next;
    ext_registry *r; /* NULL once the registry is freed: the call ends without its done */
    ext_done done;
    void *ud;
    ext_result res;
} reg_call;

/* A registry_start waiting for its extensions. */
typedef struct reg_start {
    struct reg_start *next;
    ext_registry *r;  /* NULL once the registry is freed: nothing more is called */
    size_t waiting;   /* extensions that have not answered yet */
    bool none;        /* nothing had to start: start_none is posted, and frees it */
    ext_started done; /* NULL once abandoned */
    void *ud;
} reg_start;

struct ext_registry {
    const ext_host *host;
    extension **xs;
    size_t n, alloc;
    reg_call *pending; /* posted calls whose done has not run yet */
    reg_start *starts; /* registry_starts not over yet */
    reg_req *reqs;     /* resource and prompt requests not over yet */
};

ext_result ext_text_result(const char *text, bool is_error)
{
    ext_result r = {.content = json_pack("[{s:s, s:s}]", "type", "text", "text", text ? text : ""),
                    .is_error = is_error};
    if (!r.content) r.content = json_array();
    return r;
}

ext_registry *registry_new(const ext_host *host)
{
    ext_registry *r = calloc(1, sizeof *r);
    if (r) r->host = host;
    return r;
}

static extension *find(ext_registry *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->n; i++)
        if (strlen(r->xs[i]->name) == len && !strncmp(r->xs[i]->name, name, len)) return r->xs[i];
    return NULL;
}

gd_err registry_add(ext_registry *r, extension *x)
{
    if (!x) return GD_ENOMEM;
    if (!x->name[0] || strstr(x->name, "__")) { /* tool names could not be split */
        x->ops->close(x);
        return GD_EINVAL;
    }
    if (find(r, x->name, strlen(x->name))) {
        x->ops->close(x);
        return GD_ECONFLICT;
    }
    if (r->n == r->alloc) {
        size_t na = r->alloc ? r->alloc * 2 : 4;
        extension **p = realloc(r->xs, na * sizeof *p);
        if (!p) {
            x->ops->close(x);
            return GD_ENOMEM;
        }
        r->xs = p;
        r->alloc = na;
    }
    r->xs[r->n++] = x;
    return GD_OK;
}

size_t registry_count(ext_registry *r)
{
    return r ? r->n : 0;
}

extension *registry_get(ext_registry *r, size_t i)
{
    return i < r->n ? r->xs[i] : NULL;
}

extension *registry_find(ext_registry *r, const char *name)
{
    return find(r, name, strlen(name));
}

unsigned registry_tools_gen(ext_registry *r)
{
    unsigned g = 0;
    for (size_t i = 0; i < r->n; i++)
        g += r->xs[i]->tools_gen;
    return g;
}

static void start_unlink(reg_start *s)
{
    if (!s->r) return;
    for (reg_start **pp = &s->r->starts; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
}

/* One extension of a registry_start has answered (on the loop, posted by the extension). */
static void start_one_done(void *ud, gd_err e, const char *why)
{
    reg_start *s = ud;
    if (e && s->r)
        log_warn(LOG_MOD, "an extension failed to start: %s", why ? why : gd_strerror(e));
    if (--s->waiting) return;
    if (s->r) {
        start_unlink(s);
        if (s->done) s->done(s->ud, GD_OK, NULL);
    }
    free(s);
}

/* Posted when nothing had to start: done still runs later, never inside registry_start. */
static void start_none(void *ud)
{
    reg_start *s = ud;
    s->waiting = 1;
    start_one_done(s, GD_OK, NULL);
}

static bool needs_start(extension *x)
{
    return x->ops->start && (!x->ops->state || x->ops->state(x, NULL, 0) != EXT_RUNNING);
}

bool registry_up(ext_registry *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (needs_start(r->xs[i])) return false;
    return true;
}

void registry_start_abandon(reg_start *s)
{
    s->done = NULL; /* freed by the last answer, which calls nothing, or by registry_free */
}

reg_start *registry_start(ext_registry *r, ext_started done, void *ud)
{
    reg_start *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->r = r;
    s->done = done;
    s->ud = ud;
    s->next = r->starts;
    r->starts = s;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += needs_start(r->xs[i]);
    if (!n) {
        s->none = true;
        if (loop_post(r->host->l, start_none, s)) {
            start_unlink(s);
            free(s);
            return NULL;
        }
        return s;
    }
    s->waiting = n + 1; /* held until every start is asked, so none can finish it early */
    for (size_t i = 0; i < r->n; i++)
        if (needs_start(r->xs[i])) r->xs[i]->ops->start(r->xs[i], start_one_done, s);
    s->waiting--; /* every start answers later (posted), so waiting > 0 here */
    return s;
}

json_t *registry_tools(ext_registry *r)
{
    json_t *out = json_array();
    if (!out) return NULL;
    for (size_t i = 0; i < r->n; i++) {
        extension *x = r->xs[i];
        json_t *tools = x->ops->tools(x);
        size_t j;
        json_t *t;
        json_array_foreach(tools, j, t)
        {
            const char *name = json_string_value(json_object_get(t, "name"));
            json_t *schema = json_object_get(t, "inputSchema");
            if (!name || !json_is_object(schema)) {
                log_warn(LOG_MOD, "%s: a tool without a name or an input schema is left out",
                         x->name);
                continue;
            }
            char *full = NULL;
            if (asprintf(&full, "%s__%s", x->name, name) < 0) full = NULL;
            if (full && strlen(full) > TOOL_NAME_MAX) {
                /* OpenAI and Gemini refuse a longer function name, and with it every request */
                log_warn(LOG_MOD, "%s: tool %s left out: its name passes %d characters", x->name,
                         full, TOOL_NAME_MAX);
                free(full);
                continue;
            }
            json_t *desc = json_object_get(t, "description");
            json_t *ann = json_object_get(t, "annotations");
            json_t *p = full ? json_pack("{s:s, s:s, s:O}", "name", full, "description",
                                         json_is_string(desc) ? json_string_value(desc) : "",
                                         "input_schema", schema)
                             : NULL;
            free(full);
            if (p && json_is_object(ann) && json_object_set(p, "annotations", ann)) {
                json_decref(p);
                p = NULL;
            }
            if (!p || json_array_append_new(out, p)) {
                json_decref(out);
                return NULL;
            }
        }
    }
    return out;
}

char *registry_instructions(ext_registry *r)
{
    buf b;
    buf_init(&b, BUF_CAP_INSTRUCTIONS);
    gd_err e = GD_OK;
    for (size_t i = 0; i < r->n && !e; i++) {
        const char *text = r->xs[i]->ops->instructions(r->xs[i]);
        if (!text || !text[0]) continue;
        e = buf_printf(&b, "## %s\n%s%s", r->xs[i]->name, text,
                       text[strlen(text) - 1] == '\n' ? "" : "\n");
        if (e == GD_ETOOBIG)
            log_warn(LOG_MOD, "the instructions of extension %s pass %u bytes in all: cut",
                     r->xs[i]->name, BUF_CAP_INSTRUCTIONS);
    }
    if (buf_mark_truncated(&b, e, "\n[the rest of the extensions' instructions was cut]\n")) {
        buf_free(&b);
        return NULL; /* out of memory */
    }
    char *s = b.data ? buf_detach(&b) : strdup("");
    buf_free(&b);
    return s;
}

/* Whether x lists a tool of that name. */
static bool has_tool(extension *x, const char *tool)
{
    json_t *tools = x->ops->tools(x);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && !strcmp(n, tool)) return true;
    }
    return false;
}

bool registry_read_only(ext_registry *r, const char *full_name, json_t *args)
{
    const char *sep = full_name ? strstr(full_name, "__") : NULL;
    extension *x = sep ? find(r, full_name, (size_t)(sep - full_name)) : NULL;
    if (!x || !has_tool(x, sep + 2)) return false;
    if (x->ops->read_only) return x->ops->read_only(x, sep + 2, args);
    json_t *tools = x->ops->tools(x);
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && !strcmp(n, sep + 2))
            return json_is_true(json_object_get(json_object_get(t, "annotations"), "readOnlyHint"));
    }
    return false;
}

/* "unknown tool 'X'; the tools are a__b, c__d" (a new string, NULL when out of memory). */
static char *unknown_message(ext_registry *r, const char *full_name)
{
    buf b;
    buf_init(&b, BUF_CAP_MESSAGE);
    gd_err e = buf_printf(&b, "unknown tool '%s'", full_name);
    const char *sep = "; the tools are ";
    for (size_t i = 0; i < r->n && !e; i++) {
        json_t *tools = r->xs[i]->ops->tools(r->xs[i]);
        size_t j;
        json_t *t;
        json_array_foreach(tools, j, t)
        {
            const char *n = json_string_value(json_object_get(t, "name"));
            if (!n) continue;
            if ((e = buf_printf(&b, "%s%s__%s", sep, r->xs[i]->name, n))) break;
            sep = ", ";
        }
    }
    if (!e && !strcmp(sep, "; the tools are ")) e = buf_puts(&b, "; no extension is enabled");
    e = buf_mark_truncated(&b, e, ", ..."); /* a long list, cut: still says what is wrong */
    char *s = e ? NULL : buf_detach(&b);
    buf_free(&b);
    return s;
}

static void reg_call_unlink(reg_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->r)
        c->r->pending = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void reg_call_run(void *arg)
{
    reg_call *c = arg;
    if (c->r) {
        reg_call_unlink(c);
        c->done(c->ud, &c->res); /* res.content now belongs to the callee */
    } else {
        json_decref(c->res.content);
    }
    free(c);
}

ext_call *registry_call(ext_registry *r, const char *full_name, json_t *args,
                        const ext_call_opts *o, ext_done done, void *ud)
{
    const char *sep = full_name ? strstr(full_name, "__") : NULL;
    extension *x = sep ? find(r, full_name, (size_t)(sep - full_name)) : NULL;
    if (x && has_tool(x, sep + 2)) return x->ops->call(x, sep + 2, args, o, done, ud);

    reg_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    char *msg = unknown_message(r, full_name ? full_name : "");
    if (!msg) {
        free(c);
        return NULL;
    }
    c->res = ext_text_result(msg, true);
    free(msg);
    c->r = r;
    c->done = done;
    c->ud = ud;
    if (loop_post(r->host->l, reg_call_run, c)) {
        json_decref(c->res.content);
        free(c);
        return NULL;
    }
    c->next = r->pending;
    if (c->next) c->next->prev = c;
    r->pending = c;
    return &c->base;
}

void registry_cancel(ext_call *c)
{
    if (c && c->x) c->x->ops->cancel(c);
    /* a registry call ends by itself, with is_error already */
}

static void reqs_free(ext_registry *r);

void registry_free(ext_registry *r)
{
    if (!r) return;
    reg_start *starts = r->starts;
    for (reg_start *s = starts; s; s = s->next)
        s->r = NULL;
    r->starts = NULL;
    while (r->pending) { /* posted: freed when they run, without their done */
        reg_call *c = r->pending;
        reg_call_unlink(c);
        c->r = NULL;
    }
    for (size_t i = r->n; i-- > 0;)
        r->xs[i]->ops->close(r->xs[i]);
    /* A closed extension never answers a start (its waiting answers are dropped): the starts
     * are freed here, but those start_none will free when it runs. */
    for (reg_start *s = starts, *next; s; s = next) {
        next = s->next;
        if (!s->none) free(s);
    }
    reqs_free(r); /* after the extensions: the platform's close cancels its own first */
    free(r->xs);
    free(r);
}

/* ---- resources and prompts across the extensions ---- */

typedef enum { Q_RESOURCES, Q_PROMPTS, Q_READ, Q_PROMPT, Q_TEMPLATES } q_kind;

typedef struct {
    reg_req *q;
    extension *x;
    ext_call *c; /* the extension's request while it runs */
    json_t *result;
    gd_err e;
    char msg[512];
} reg_sub;

struct reg_req {
    reg_req *prev, *next;
    ext_registry *r;
    q_kind kind;
    bool all;       /* no extension named: every one that serves it */
    bool cancelled; /* done is never called; freed once the subs have answered */
    char *arg;      /* the uri or the prompt's name */
    json_t *args;   /* the prompt's arguments */
    ext_json_done done;
    void *ud;
    reg_sub *subs;
    size_t nsubs, waiting;
    loop_timer *post; /* an answer known at once, on its way */
};

bool registry_serves(ext_registry *r, unsigned what)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (r->xs[i]->ops->serves && (r->xs[i]->ops->serves(r->xs[i]) & what)) return true;
    return false;
}

static void req_free(reg_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else if (q->r)
        q->r->reqs = q->next;
    if (q->next) q->next->prev = q->prev;
    for (size_t i = 0; i < q->nsubs; i++)
        json_decref(q->subs[i].result);
    free(q->subs);
    free(q->arg);
    json_decref(q->args);
    free(q);
}

static bool has_op(extension *x, q_kind k)
{
    switch (k) {
    case Q_RESOURCES:
        return x->ops->resources != NULL;
    case Q_PROMPTS:
        return x->ops->prompts != NULL;
    case Q_READ:
        return x->ops->read_resource != NULL;
    case Q_PROMPT:
        return x->ops->get_prompt != NULL;
    case Q_TEMPLATES:
        return x->ops->resource_templates != NULL;
    }
    return false;
}

/* The answer of a request whose subs have all answered: result (new) or the error in e, msg. */
static json_t *req_answer(reg_req *q, gd_err *e, char *msg, size_t msglen)
{
    *e = GD_OK;
    if (!q->all) {
        reg_sub *s = &q->subs[0];
        if (s->e) {
            *e = s->e;
            snprintf(msg, msglen, "%s", s->msg);
            return NULL;
        }
    }
    if (q->kind == Q_RESOURCES || q->kind == Q_PROMPTS || q->kind == Q_TEMPLATES) {
        json_t *out = json_array();
        for (size_t i = 0; out && i < q->nsubs; i++) {
            reg_sub *s = &q->subs[i];
            if (s->e) {
                if (s->e != GD_ENOTFOUND) log_warn(LOG_MOD, "left out of a listing: %s", s->msg);
                continue;
            }
            size_t j;
            json_t *it;
            json_array_foreach(s->result, j, it)
            {
                json_t *o = json_pack("{s:s}", "extension", s->x->name);
                if (o) json_object_update(o, it);
                if (!o || json_array_append_new(out, o)) {
                    json_decref(out);
                    out = NULL;
                    break;
                }
            }
        }
        if (!out) *e = GD_ENOMEM, snprintf(msg, msglen, "out of memory");
        return out;
    }
    for (size_t i = 0; i < q->nsubs; i++)
        if (!q->subs[i].e) return json_incref(q->subs[i].result);
    for (size_t i = 0; i < q->nsubs; i++) /* every one failed: the first real failure */
        if (q->subs[i].e != GD_ENOTFOUND) {
            *e = q->subs[i].e;
            snprintf(msg, msglen, "%s", q->subs[i].msg);
            return NULL;
        }
    *e = GD_ENOTFOUND;
    snprintf(msg, msglen, "no extension of this session has %s '%s'",
             q->kind == Q_READ ? "the resource" : "the prompt", q->arg);
    return NULL;
}

/* Every sub has answered: done is called (unless cancelled) and q freed. */
static void req_finish(reg_req *q)
{
    if (q->cancelled) {
        req_free(q);
        return;
    }
    gd_err e;
    char msg[512] = "";
    json_t *res = req_answer(q, &e, msg, sizeof msg);
    ext_json_done done = q->done;
    void *ud = q->ud;
    req_free(q);
    done(ud, res, e, e ? msg : NULL);
}

static void req_posted(void *ud)
{
    reg_req *q = ud;
    q->post = NULL;
    req_finish(q);
}

static void sub_end(reg_sub *s, json_t *result, gd_err e, const char *msg)
{
    s->c = NULL;
    s->result = result;
    s->e = e;
    if (e) snprintf(s->msg, sizeof s->msg, "%s", msg ? msg : gd_strerror(e));
    if (--s->q->waiting == 0) req_finish(s->q);
}

static void sub_done(void *ud, json_t *result, gd_err e, const char *msg)
{
    sub_end(ud, result, e, msg);
}

/* Asks s's extension (up by now). false when out of memory. */
static bool sub_issue(reg_sub *s)
{
    reg_req *q = s->q;
    extension *x = s->x;
    switch (q->kind) {
    case Q_RESOURCES:
        s->c = x->ops->resources(x, sub_done, s);
        break;
    case Q_PROMPTS:
        s->c = x->ops->prompts(x, sub_done, s);
        break;
    case Q_READ:
        s->c = x->ops->read_resource(x, q->arg, sub_done, s);
        break;
    case Q_PROMPT:
        s->c = x->ops->get_prompt(x, q->arg, q->args, sub_done, s);
        break;
    case Q_TEMPLATES:
        s->c = x->ops->resource_templates(x, sub_done, s);
        break;
    }
    return s->c != NULL;
}

static void sub_started(void *ud, gd_err e, const char *why)
{
    reg_sub *s = ud;
    if (e)
        sub_end(s, NULL, GD_EUNAVAIL, why);
    else if (s->q->cancelled)
        sub_end(s, NULL, GD_ECANCELLED, "cancelled");
    else if (!sub_issue(s))
        sub_end(s, NULL, GD_ENOMEM, "out of memory");
}

static reg_req *req_new(ext_registry *r, q_kind kind, const char *ext, const char *arg,
                        json_t *args, ext_json_done done, void *ud)
{
    reg_req *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->r = r;
    q->kind = kind;
    q->all = !ext;
    q->done = done;
    q->ud = ud;
    q->args = args ? json_incref(args) : NULL;
    q->subs = calloc(r->n ? r->n : 1, sizeof *q->subs);
    if (!q->subs || (arg && !(q->arg = strdup(arg)))) {
        json_decref(q->args);
        free(q->subs);
        free(q);
        return NULL;
    }
    q->next = r->reqs;
    if (q->next) q->next->prev = q;
    r->reqs = q;
    static const char *const what[] = {"resources", "prompts", "resources", "prompts",
                                       "resource templates"};
    if (ext) {
        extension *x = registry_find(r, ext);
        reg_sub *s = &q->subs[q->nsubs++];
        s->q = q;
        s->x = x;
        s->e = GD_ENOTFOUND;
        if (!x)
            snprintf(s->msg, sizeof s->msg, "no extension named '%s' in this session", ext);
        else if (!has_op(x, kind))
            snprintf(s->msg, sizeof s->msg, "extension '%s' has no %s", ext, what[kind]);
        else
            s->e = GD_OK;
        if (s->e) q->nsubs--; /* answered at once, below */
    } else {
        for (size_t i = 0; i < r->n; i++)
            if (has_op(r->xs[i], kind)) {
                reg_sub *s = &q->subs[q->nsubs++];
                s->q = q;
                s->x = r->xs[i];
            }
    }
    q->waiting = q->nsubs + 1; /* held until every sub is asked, so none can finish it early */
    for (size_t i = 0; i < q->nsubs; i++) {
        reg_sub *s = &q->subs[i];
        extension *x = s->x;
        if (x->ops->start && (!x->ops->state || x->ops->state(x, NULL, 0) != EXT_RUNNING))
            x->ops->start(x, sub_started, s); /* answers later, posted */
        else if (!sub_issue(s))
            sub_end(s, NULL, GD_ENOMEM, "out of memory");
    }
    if (ext && !q->nsubs) q->nsubs = 1; /* the error of the one named, kept in subs[0] */
    if (--q->waiting == 0 && !(q->post = loop_timer_add(r->host->l, 0, req_posted, q))) {
        req_free(q);
        return NULL;
    }
    return q;
}

reg_req *registry_list(ext_registry *r, int what, const char *ext, ext_json_done done, void *ud)
{
    return req_new(r,
                   what == REG_PROMPTS     ? Q_PROMPTS
                   : what == REG_TEMPLATES ? Q_TEMPLATES
                                           : Q_RESOURCES,
                   ext, NULL, NULL, done, ud);
}

reg_req *registry_read_resource(ext_registry *r, const char *ext, const char *uri,
                                ext_json_done done, void *ud)
{
    return req_new(r, Q_READ, ext, uri, NULL, done, ud);
}

reg_req *registry_get_prompt(ext_registry *r, const char *ext, const char *name, json_t *args,
                             ext_json_done done, void *ud)
{
    return req_new(r, Q_PROMPT, ext, name, args, done, ud);
}

void registry_req_cancel(reg_req *q)
{
    if (!q || q->cancelled) return;
    q->cancelled = true;
    if (q->post) { /* nothing runs: freed now */
        loop_timer_cancel(q->post);
        req_free(q);
        return;
    }
    for (size_t i = 0; i < q->nsubs; i++)
        if (q->subs[i].c) q->subs[i].x->ops->cancel(q->subs[i].c); /* their done follows */
}

typedef struct {
    ext_json_done done;
    void *ud;
} gone_msg;

static void gone_run(void *ud)
{
    gone_msg *g = ud;
    g->done(g->ud, NULL, GD_EGONE, "the session's extensions were closed meanwhile");
    free(g);
}

/* The extensions are closed: what they were asked will never answer. A request not cancelled
 * ends with GD_EGONE, posted. */
static void reqs_free(ext_registry *r)
{
    while (r->reqs) {
        reg_req *q = r->reqs;
        if (q->post) loop_timer_cancel(q->post);
        if (!q->cancelled) {
            gone_msg *g = malloc(sizeof *g);
            if (g) *g = (gone_msg){q->done, q->ud};
            if (!g || loop_post(r->host->l, gone_run, g)) {
                log_error(LOG_MOD, "out of memory ending a resource request");
                free(g);
            }
        }
        req_free(q);
    }
}
