/* platform: the built-in extension the real Goose offers next to the configured ones, for what
 * belongs to the session's extensions as a whole. Its tools, list_resources and read_resource,
 * read the MCP resources of the other extensions of the same registry (registry_list,
 * registry_read_resource); they are offered only while one of them serves resources, so a
 * session without any sends the model exactly the tools it would send without this extension.
 * The real Goose has no tools for prompts: prompts are for the user (the API), not the model. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "extensions/extension.h"

#define LOG_MOD "extensions"

typedef struct p_call p_call;

typedef struct {
    extension base;
    const ext_host *host;
    ext_registry *r;
    json_t *tools; /* what is offered when some extension serves resources */
    json_t *none;  /* an empty array: what is offered otherwise */
    p_call *calls;
} platform;

struct p_call {
    ext_call base;
    p_call *prev, *next;
    bool read; /* read_resource, else list_resources */
    reg_req *q;
    loop_timer *post; /* a result known without the registry, on its way */
    ext_result res;
    ext_done done;
    void *ud;
};

static const char list_desc[] =
    "List the resources of an extension, or of every extension.\n\n"
    "Resources are data extensions share to give context, such as files, database schemas or "
    "application-specific information. This lists the resources of the extension named, for "
    "the user to browse; with no extension named, it lists those of every extension.";
static const char read_desc[] =
    "Read a resource from an extension.\n\n"
    "Resources are data extensions share to give context, such as files, database schemas or "
    "application-specific information. This finds the resource URI in the extension named and "
    "reads its content; with no extension named, it looks for the resource in every extension.";

static json_t *make_tools(void)
{
    return json_pack(
        "[{s:s, s:s, s:{s:s, s:{s:{s:s, s:s}}}, s:{s:s, s:b, s:b, s:b, s:b}},"
        " {s:s, s:s, s:{s:s, s:[s], s:{s:{s:s, s:s}, s:{s:s, s:s}}}, s:{s:s, s:b, s:b, s:b, s:b}}]",
        "name", "list_resources", "description", list_desc, "inputSchema", "type", "object",
        "properties", "extension_name", "type", "string", "description", "Optional extension name",
        "annotations", "title", "List resources", "readOnlyHint", 1, "destructiveHint", 0,
        "idempotentHint", 0, "openWorldHint", 0,
        /* read_resource */
        "name", "read_resource", "description", read_desc, "inputSchema", "type", "object",
        "required", "uri", "properties", "uri", "type", "string", "description", "Resource URI",
        "extension_name", "type", "string", "description", "Optional extension name", "annotations",
        "title", "Read a resource", "readOnlyHint", 1, "destructiveHint", 0, "idempotentHint", 0,
        "openWorldHint", 0);
}

/* Every session's platform offers the same tools: made once, shared by reference (never
 * changed once made). */
static pthread_once_t tools_once = PTHREAD_ONCE_INIT;
static json_t *tools_made, *none_made;

static void make_shared_tools(void)
{
    tools_made = make_tools();
    none_made = json_array();
}

/* The tools (none: false) or the empty list (none: true) every platform offers: a reference. */
static json_t *shared_tools(bool none)
{
    pthread_once(&tools_once, make_shared_tools);
    json_t *t = none ? none_made : tools_made;
    return t ? json_incref(t) : NULL;
}

static json_t *p_tools(extension *base)
{
    platform *p = (platform *)base;
    return registry_serves(p->r, EXT_SERVES_RESOURCES) ? p->tools : p->none;
}

static const char *p_instructions(extension *base)
{
    (void)base;
    return NULL;
}

static void call_unlink(platform *p, p_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        p->calls = c->next;
    if (c->next) c->next->prev = c->prev;
}

/* Ends c with res (its content now the callee's) and frees c. */
static void call_end(p_call *c, ext_result *res)
{
    platform *p = (platform *)c->base.x;
    call_unlink(p, c);
    ext_done done = c->done;
    void *ud = c->ud;
    free(c);
    done(ud, res);
}

static void call_posted(void *ud)
{
    p_call *c = ud;
    c->post = NULL;
    ext_result res = c->res;
    call_end(c, &res);
}

/* Ends c later with res (posted); false when out of memory. */
static bool call_post(p_call *c, ext_result res)
{
    platform *p = (platform *)c->base.x;
    c->res = res;
    if (!(c->post = loop_timer_add(p->host->l, 0, call_posted, c))) {
        json_decref(res.content);
        return false;
    }
    return true;
}

/* The registry's answer: a listing as JSON text, the contents read as resource items. */
static void on_answer(void *ud, json_t *result, gd_err e, const char *msg)
{
    p_call *c = ud;
    c->q = NULL;
    ext_result res;
    if (e) {
        res = ext_text_result(msg ? msg : gd_strerror(e), true);
    } else if (!c->read) {
        char *s = json_dumps(result, JSON_INDENT(2));
        res = ext_text_result(s ? s : "[]", false);
        free(s);
    } else {
        res = (ext_result){.content = json_array()};
        size_t i;
        json_t *it;
        json_array_foreach(result, i, it)
        {
            json_t *item = json_pack("{s:s, s:O}", "type", "resource", "resource", it);
            if (item && res.content) json_array_append_new(res.content, item);
        }
        if (!res.content) res = ext_text_result("out of memory", true);
        if (!json_array_size(res.content)) {
            json_decref(res.content);
            res = ext_text_result("the resource is empty", false);
        }
    }
    json_decref(result);
    call_end(c, &res);
}

static ext_call *p_call_tool(extension *base, const char *tool, json_t *args,
                             const ext_call_opts *o, ext_done done, void *ud)
{
    (void)o;
    platform *p = (platform *)base;
    p_call *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->base.x = base;
    c->done = done;
    c->ud = ud;
    c->next = p->calls;
    if (c->next) c->next->prev = c;
    p->calls = c;
    json_t *en = json_object_get(args, "extension_name");
    const char *ext = json_string_value(en);
    const char *uri = json_string_value(json_object_get(args, "uri"));
    char msg[256] = "";
    if (en && !json_is_null(en) && !json_is_string(en))
        snprintf(msg, sizeof msg, "%s: extension_name must be a string", tool);
    else if (ext && !ext[0])
        ext = NULL;
    if (msg[0]) {
    } else if (!strcmp(tool, "list_resources")) {
        c->q = registry_list(p->r, REG_RESOURCES, ext, on_answer, c);
    } else if (!strcmp(tool, "read_resource")) {
        c->read = true;
        if (!uri || !uri[0])
            snprintf(msg, sizeof msg, "read_resource: the argument uri (a string) is required");
        else
            c->q = registry_read_resource(p->r, ext, uri, on_answer, c);
    } else {
        snprintf(msg, sizeof msg,
                 "platform has no tool named '%s'; its tools: list_resources, read_resource", tool);
    }
    if (c->q || (msg[0] && call_post(c, ext_text_result(msg, true)))) return &c->base;
    call_unlink(p, c);
    free(c);
    return NULL;
}

static void p_cancel(ext_call *base)
{
    p_call *c = (p_call *)base;
    if (!c->q) return; /* ends by itself already */
    registry_req_cancel(c->q);
    c->q = NULL;
    if (!call_post(c, ext_text_result("cancelled", true)))
        log_error(LOG_MOD, "out of memory ending a cancelled platform call");
}

static void p_close(extension *base)
{
    platform *p = (platform *)base;
    while (p->calls) {
        p_call *c = p->calls;
        p->calls = c->next;
        if (c->q) registry_req_cancel(c->q);
        if (c->post) {
            loop_timer_cancel(c->post);
            json_decref(c->res.content);
        }
        free(c);
    }
    json_decref(p->tools);
    json_decref(p->none);
    free(p);
}

static const extension_ops platform_ops = {
    .instructions = p_instructions,
    .tools = p_tools,
    .call = p_call_tool,
    .cancel = p_cancel,
    .close = p_close,
};

extension *platform_new(const ext_host *host, ext_registry *r)
{
    platform *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->base.ops = &platform_ops;
    snprintf(p->base.name, sizeof p->base.name, "platform");
    p->host = host;
    p->r = r;
    if (!(p->tools = shared_tools(false)) || !(p->none = shared_tools(true))) {
        json_decref(p->tools);
        free(p);
        return NULL;
    }
    return &p->base;
}
