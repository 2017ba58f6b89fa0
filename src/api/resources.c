/* resources: a session's MCP resources and prompts over HTTP (GET /api/sessions/{id}/resources,
 * GET .../resources/read, GET .../resources/templates, GET .../prompts, POST .../prompts/get). The
 * session's extensions live on the agent's loop: the request is suspended, the question posted
 * there (agent_session_ext_request), and the registry's answer resumes it. A server that never
 * answers is bounded by its extension's timeout. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"

typedef enum { OP_RESOURCES, OP_READ, OP_PROMPTS, OP_PROMPT, OP_TEMPLATES } res_op;

typedef struct {
    http_req *r;
    res_op op;
    char session[64];
    char ext[EXT_NAME_MAX];
    bool has_ext;
    char *arg;    /* the uri or the prompt's name (owned) */
    json_t *args; /* the prompt's arguments */
    bool asked;   /* the session was found: errors are the registry's */
    gd_err e;
    char msg[PATH_MAX * 3]; /* a refusal names two directories */
    json_t *result;
} res_state;

static void res_free(void *ud)
{
    res_state *st = ud;
    free(st->arg);
    json_decref(st->args);
    json_decref(st->result);
}

/* The registry's answer (agent loop): the last thing done with st before the HTTP side has it. */
static void on_answer(void *ud, json_t *result, gd_err e, const char *msg)
{
    res_state *st = ud;
    st->result = result;
    st->e = e;
    if (e) snprintf(st->msg, sizeof st->msg, "%s", msg ? msg : gd_strerror(e));
    http_resume(st->r);
}

/* On the agent's loop, with the session's extensions. */
static void on_registry(ext_registry *reg, void *ud)
{
    res_state *st = ud;
    st->asked = true;
    const char *ext = st->has_ext ? st->ext : NULL;
    reg_req *q = NULL;
    if (reg) switch (st->op) {
        case OP_RESOURCES:
            q = registry_list(reg, REG_RESOURCES, ext, on_answer, st);
            break;
        case OP_PROMPTS:
            q = registry_list(reg, REG_PROMPTS, ext, on_answer, st);
            break;
        case OP_TEMPLATES:
            q = registry_list(reg, REG_TEMPLATES, ext, on_answer, st);
            break;
        case OP_READ:
            q = registry_read_resource(reg, ext, st->arg, on_answer, st);
            break;
        case OP_PROMPT:
            q = registry_get_prompt(reg, ext, st->arg, st->args, on_answer, st);
            break;
        }
    if (!q) on_answer(st, NULL, GD_ENOMEM, "out of memory");
}

static void answer(http_req *r)
{
    res_state *st = http_state(r, sizeof *st);
    if (!st->asked && st->e) { /* the session itself */
        if (st->e == GD_ESHUTDOWN)
            http_reply_error(r, 503, "shutting_down", "%s", st->msg);
        else if (st->e == GD_EDENIED) /* its working directory is not one its owner may use */
            http_reply_error(r, 403, "forbidden", "%s", st->msg);
        else
            api_store_error(r, st->e, st->session, st->msg);
        return;
    }
    switch (st->e) {
    case GD_OK:
        if (st->op == OP_READ) {
            http_reply_json(r, 200, json_pack("{s:O}", "contents", st->result));
        } else {
            http_reply_json(r, 200, st->result);
            st->result = NULL;
        }
        return;
    case GD_ENOTFOUND:
        http_reply_error(r, 404, "not_found", "%s", st->msg);
        return;
    case GD_EINVAL:
        http_reply_error(r, 400, "bad_request", "%s", st->msg);
        return;
    case GD_EPROTO:
    case GD_ETOOBIG:
        http_reply_error(r, 502, "extension_error", "%s", st->msg);
        return;
    case GD_ETIMEOUT:
        http_reply_error(r, 504, "extension_timeout", "%s", st->msg);
        return;
    case GD_EUNAVAIL:
        http_reply_error(r, 503, "extension_unavailable", "%s", st->msg);
        return;
    case GD_EGONE:
        http_reply_error(r, 503, "extension_unavailable",
                         "%s: the session's extensions changed; try again", st->msg);
        return;
    default:
        http_reply_error(r, 500, "internal", "%s", st->msg);
        return;
    }
}

/* Suspends r and asks the agent. Once asked, st belongs to the loop until it resumes r: nothing
 * here writes it after (the answer may come before agent_session_ext_request returns). */
static void ask(http_req *r, res_state *st)
{
    app *a = http_app(r);
    char msg[sizeof st->msg];
    http_suspend(r, answer);
    gd_err e = agent_session_ext_request(a->agent, st->session, http_user(r)->admin, on_registry,
                                         st, msg, sizeof msg);
    if (e) {
        st->e = e;
        memcpy(st->msg, msg, sizeof msg);
        http_resume(r);
    }
}

/* The request's state with the session id and the optional extension name; NULL when an error
 * was answered. */
static res_state *begin(http_req *r, res_op op, const char *ext)
{
    res_state *st = http_state(r, sizeof *st);
    if (!st) {
        http_reply_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    st->r = r;
    st->op = op;
    http_on_done(r, res_free, st);
    snprintf(st->session, sizeof st->session, "%s", http_param(r, 0));
    if (ext) {
        if (!ext[0] || strlen(ext) >= sizeof st->ext) {
            http_reply_error(r, 400, "bad_request", "extension: must be 1 to %d bytes",
                             EXT_NAME_MAX - 1);
            return NULL;
        }
        snprintf(st->ext, sizeof st->ext, "%s", ext);
        st->has_ext = true;
    }
    return st;
}

void api_resources_list(http_req *r)
{
    res_state *st = begin(r, OP_RESOURCES, http_query(r, "extension"));
    if (st) ask(r, st);
}

void api_resource_templates_list(http_req *r)
{
    res_state *st = begin(r, OP_TEMPLATES, http_query(r, "extension"));
    if (st) ask(r, st);
}

void api_resources_read(http_req *r)
{
    const char *uri = http_query(r, "uri");
    if (!uri || !uri[0]) {
        http_reply_error(r, 400, "bad_request", "uri: the query parameter is required");
        return;
    }
    res_state *st = begin(r, OP_READ, http_query(r, "extension"));
    if (!st) return;
    if (!(st->arg = strdup(uri))) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    ask(r, st);
}

void api_prompts_list(http_req *r)
{
    res_state *st = begin(r, OP_PROMPTS, http_query(r, "extension"));
    if (st) ask(r, st);
}

void api_prompts_get(http_req *r)
{
    json_t *body = http_body(r);
    json_t *ext = json_object_get(body, "extension");
    json_t *name = json_object_get(body, "name");
    json_t *args = json_object_get(body, "arguments");
    if (!json_is_string(name) || !json_string_length(name)) {
        http_reply_error(r, 400, "bad_request", "name: a non-empty string is required");
        return;
    }
    if (ext && !json_is_null(ext) && !json_is_string(ext)) {
        http_reply_error(r, 400, "bad_request", "extension: must be a string");
        return;
    }
    if (args && !json_is_null(args)) {
        const char *k;
        json_t *v;
        if (!json_is_object(args)) {
            http_reply_error(r, 400, "bad_request", "arguments: must be an object of strings");
            return;
        }
        json_object_foreach(args, k, v) if (!json_is_string(v))
        {
            http_reply_error(r, 400, "bad_request", "arguments.%s: must be a string", k);
            return;
        }
    }
    res_state *st = begin(r, OP_PROMPT, json_string_value(ext));
    if (!st) return;
    if (!(st->arg = strdup(json_string_value(name)))) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    if (json_is_object(args)) st->args = json_incref(args);
    ask(r, st);
}
