/* registry: the extensions enabled in one session (see extension.h). Tool names are
 * "<extension>__<tool>"; a call goes to the extension named by the part before the first "__". */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "extensions/extension.h"

#define LOG_MOD "extensions"

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
    ext_registry *r; /* NULL once the registry is freed: nothing more is called */
    size_t waiting;  /* extensions that have not answered yet */
    ext_started done;
    void *ud;
} reg_start;

struct ext_registry {
    const ext_host *host;
    extension **xs;
    size_t n, alloc;
    reg_call *pending; /* posted calls whose done has not run yet */
    reg_start *starts; /* registry_starts not over yet */
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
        s->done(s->ud, GD_OK, NULL);
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

void registry_start(ext_registry *r, ext_started done, void *ud)
{
    reg_start *s = calloc(1, sizeof *s);
    if (!s) {
        done(ud, GD_ENOMEM, "out of memory starting the extensions");
        return;
    }
    s->r = r;
    s->done = done;
    s->ud = ud;
    s->next = r->starts;
    r->starts = s;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->xs[i]->ops->start &&
            (!r->xs[i]->ops->state || r->xs[i]->ops->state(r->xs[i], NULL, 0) != EXT_RUNNING))
            n++;
    if (!n) {
        if (loop_post(r->host->l, start_none, s)) {
            start_unlink(s);
            free(s);
            done(ud, GD_ENOMEM, "out of memory starting the extensions");
        }
        return;
    }
    s->waiting = n + 1; /* held until every start is asked, so none can finish it early */
    for (size_t i = 0; i < r->n; i++)
        if (r->xs[i]->ops->start &&
            (!r->xs[i]->ops->state || r->xs[i]->ops->state(r->xs[i], NULL, 0) != EXT_RUNNING))
            r->xs[i]->ops->start(r->xs[i], start_one_done, s);
    s->waiting--; /* every start answers later (posted), so waiting > 0 here */
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

void registry_free(ext_registry *r)
{
    if (!r) return;
    for (reg_start *s = r->starts, *next; s; s = next) { /* freed when their last start answers */
        next = s->next;
        s->r = NULL;
    }
    r->starts = NULL;
    while (r->pending) { /* posted: freed when they run, without their done */
        reg_call *c = r->pending;
        reg_call_unlink(c);
        c->r = NULL;
    }
    for (size_t i = r->n; i-- > 0;)
        r->xs[i]->ops->close(r->xs[i]);
    free(r->xs);
    free(r);
}
