/* cli/mcp: `goosed mcp`, a command-line MCP client on the same code as the extensions
 * (src/extensions/mcp): to check a server before adding it, and the client the official
 * conformance suite drives. It runs the extension on a loop of its own; the main thread waits
 * for the answer and prints it. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <semaphore.h>
#include <sodium.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/signin.h"
#include "config/config.h"
#include "config/secrets.h"
#include "core/log.h"
#include "extensions/ext_config.h"
#include "extensions/mcp/mcp.h"
#include "extensions/mcp/oauth.h"
#include "extensions/sandbox.h"

static const char usage[] =
    "usage: goosed mcp tools [--json] [--timeout S] TARGET\n"
    "       goosed mcp call [--json] [--timeout S] TARGET TOOL ['{json arguments}']\n"
    "       goosed mcp resources [--json] [--timeout S] TARGET\n"
    "       goosed mcp read [--json] [--timeout S] TARGET URI\n"
    "       goosed mcp prompts [--json] [--timeout S] TARGET\n"
    "       goosed mcp conformance URL\n"
    "\n"
    "An MCP client on the command line, to check a server before adding it as an extension.\n"
    "\n"
    "TARGET is one of:\n"
    "  -- COMMAND [ARGS...]   a server over stdio (with `call`, TOOL and its arguments come\n"
    "                         before the --: goosed mcp call TOOL '{}' -- COMMAND ...)\n"
    "  http://... https://... a streamable HTTP server\n"
    "  --sse URL              a server on the legacy HTTP+SSE transport\n"
    "\n"
    "  tools        prints each tool's name and description (--json: the tools/list array)\n"
    "  call         calls TOOL and prints its content: text as text, anything else as JSON\n"
    "               (--json: the whole result); exit status 1 when the tool reports an error\n"
    "  resources    prints each resource's URI, name and type (--json: the resources/list array)\n"
    "  read         reads URI and prints its text contents, anything else as JSON (--json: the\n"
    "               contents array)\n"
    "  prompts      prints each prompt's name and description (--json: the prompts/list array)\n"
    "  conformance  what the scenario named by MCP_CONFORMANCE_SCENARIO asks of a client\n"
    "  --timeout S  seconds a call may take (default 300; also bounds the start, at most 30)\n"
    "  --env NAME=VALUE  a variable for a stdio server (its config's envs); repeatable\n"
    "  --env-key NAME    passes NAME from goosed's environment or secrets.yaml (env_keys)\n"
    "A stdio server gets only a safe part of goosed's environment (PATH, HOME, LANG ...).\n"
    "A remote server that asks for a sign-in (OAuth) gets one: goosed prints the address to open\n"
    "in a browser, which comes back to a port of 127.0.0.1 (within 300 s). It registers itself\n"
    "as a client unless given one registered beforehand:\n"
    "  --client-id ID            the client's ID\n"
    "  --client-secret-env NAME  its secret, read from the environment variable NAME\n"
    "  --client-key FILE         or its private key (PEM: EC P-256, or RSA of 2048 bits or more):\n"
    "                            a JWT signed with it (ES256, RS256) authenticates it where the\n"
    "                            authorization server offers that (private_key_jwt)\n"
    "\n"
    "Exit status: 0 done, 1 the server or the tool failed, 2 a usage error.\n";

enum { M_TOOLS, M_CALL, M_CONFORMANCE, M_RESOURCES, M_READ, M_PROMPTS };

typedef struct {
    int mode;
    bool json;
    const char *tool;
    json_t *args;
    const char *scenario;
    loop *l;
    pool *workers; /* where the server is forked, as in goosed */
    ext_host host;
    extension *x;
    sem_t sem;
    int rc;
    char msg[2048];
    json_t *out;
    size_t next; /* conformance: the next tool to call */
    json_t *tools;
    json_t *envs, *env_keys; /* --env, --env-key */
    signin signin;           /* a remote server's OAuth sign-in comes back here */
    mcp_oauth_cfg oauth;
} cli;

static void finish(cli *c, int rc)
{
    c->rc = rc;
    sem_post(&c->sem);
}

/* ---- the host's answers to server requests ---- */

typedef struct {
    loop_timer *t;
    ext_reply_fn reply;
    void *rud;
    json_t *result;
} hreq;

static void hreq_fire(void *ud)
{
    hreq *h = ud;
    if (h->result)
        h->reply(h->rud, h->result, 0, NULL);
    else
        h->reply(h->rud, NULL, -32601, "Method not found");
    free(h);
}

/* Elicitation: accepted with the schema's defaults (what a non-interactive client can say). */
static void *host_request(void *ud, extension *x, const char *method, json_t *params,
                          ext_reply_fn reply, void *rud)
{
    cli *c = ud;
    hreq *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->reply = reply;
    h->rud = rud;
    const char *mode = json_string_value(json_object_get(params, "mode"));
    if (!strcmp(method, "elicitation/create") && (!mode || !strcmp(mode, "form"))) {
        json_t *content = json_object();
        const char *k;
        json_t *p;
        json_object_foreach(
            json_object_get(json_object_get(params, "requestedSchema"), "properties"), k, p)
        {
            json_t *d = json_object_get(p, "default");
            if (d) json_object_set(content, k, d);
        }
        h->result = json_pack("{s:s, s:o}", "action", "accept", "content", content);
    } else if (!strcmp(method, "elicitation/create")) {
        h->result = json_pack("{s:s}", "action", "decline");
    }
    if (!(h->t = loop_timer_add(c->l, 0, hreq_fire, h))) {
        json_decref(h->result);
        free(h);
        return NULL;
    }
    return h;
}

static void host_request_cancel(void *ud, void *handle)
{
    hreq *h = handle;
    loop_timer_cancel(h->t);
    json_decref(h->result);
    free(h);
}

/* ---- the run, on the loop ---- */

static void progress(void *ud, double p, double total, const char *message)
{
    if (total >= 0)
        fprintf(stderr, "progress: %g/%g%s%s\n", p, total, message ? " " : "",
                message ? message : "");
    else
        fprintf(stderr, "progress: %g%s%s\n", p, message ? " " : "", message ? message : "");
}

static json_t *result_json(const ext_result *res)
{
    json_t *o = json_pack("{s:O, s:b}", "content", res->content, "isError", res->is_error);
    if (o && res->structured) json_object_set(o, "structuredContent", res->structured);
    return o;
}

static void conformance_next(cli *c);

static void call_done(void *ud, ext_result *res)
{
    cli *c = ud;
    if (c->mode == M_CONFORMANCE) {
        json_decref(res->content);
        json_decref(res->structured);
        conformance_next(c);
        return;
    }
    c->out = result_json(res);
    json_decref(res->content);
    json_decref(res->structured);
    finish(c, c->out && !json_is_true(json_object_get(c->out, "isError")) ? 0 : 1);
}

/* Arguments from a schema: each property's default, else a value of its type. */
static json_t *schema_args(json_t *schema)
{
    json_t *args = json_object();
    const char *k;
    json_t *p;
    json_object_foreach(json_object_get(schema, "properties"), k, p)
    {
        json_t *d = json_object_get(p, "default");
        const char *type = json_string_value(json_object_get(p, "type"));
        json_t *v;
        if (d)
            v = json_incref(d);
        else if (!type || !strcmp(type, "string"))
            v = json_string("");
        else if (!strcmp(type, "number") || !strcmp(type, "integer"))
            v = json_integer(1);
        else if (!strcmp(type, "boolean"))
            v = json_false();
        else if (!strcmp(type, "array"))
            v = json_array();
        else
            v = json_object();
        json_object_set_new(args, k, v);
    }
    return args;
}

static void conformance_next(cli *c)
{
    if (c->next >= json_array_size(c->tools)) {
        finish(c, 0);
        return;
    }
    json_t *t = json_array_get(c->tools, c->next++);
    json_t *args = schema_args(json_object_get(t, "inputSchema"));
    ext_call_opts o = {.output_cap = SIZE_MAX, .progress = progress}; /* all of it */
    ext_call *call = c->x->ops->call(c->x, json_string_value(json_object_get(t, "name")), args, &o,
                                     call_done, c);
    json_decref(args);
    if (!call) {
        snprintf(c->msg, sizeof c->msg, "out of memory");
        finish(c, 1);
    }
}

/* The answer of resources, read or prompts. */
static void json_done(void *ud, json_t *result, gd_err e, const char *msg)
{
    cli *c = ud;
    if (e) snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : gd_strerror(e));
    c->out = result;
    finish(c, e ? 1 : 0);
}

static void started(void *ud, gd_err e, const char *why)
{
    cli *c = ud;
    if (e) {
        snprintf(c->msg, sizeof c->msg, "%s", why ? why : gd_strerror(e));
        finish(c, 1);
        return;
    }
    json_t *tools = c->x->ops->tools(c->x);
    if (c->mode == M_TOOLS) {
        c->out = json_deep_copy(tools);
        finish(c, 0);
        return;
    }
    if (c->mode == M_CONFORMANCE) {
        c->tools = json_deep_copy(tools);
        if (c->scenario && !strcmp(c->scenario, "initialize")) {
            finish(c, 0);
            return;
        }
        conformance_next(c);
        return;
    }
    if (c->mode == M_RESOURCES || c->mode == M_READ || c->mode == M_PROMPTS) {
        ext_call *q = c->mode == M_RESOURCES ? c->x->ops->resources(c->x, json_done, c)
                      : c->mode == M_READ    ? c->x->ops->read_resource(c->x, c->tool, json_done, c)
                                             : c->x->ops->prompts(c->x, json_done, c);
        if (!q) {
            snprintf(c->msg, sizeof c->msg, "out of memory");
            finish(c, 1);
        }
        return;
    }
    ext_call_opts o = {.output_cap = SIZE_MAX, .progress = progress}; /* all of it */
    if (!c->x->ops->call(c->x, c->tool, c->args, &o, call_done, c)) {
        snprintf(c->msg, sizeof c->msg, "out of memory");
        finish(c, 1);
    }
}

static void run(void *ud)
{
    cli *c = ud;
    c->x->ops->start(c->x, started, c);
}

/* Waits until the server process is reaped (it gets a moment after its stdin closes, then
 * SIGTERM, then SIGKILL), so that nothing is left unwatched when the loop goes. */
static void reaped(void *ud)
{
    cli *c = ud;
    if (mcp_servers_running() && loop_timer_add(c->l, 20, reaped, c)) return;
    sem_post(&c->sem);
}

static void stop(void *ud)
{
    cli *c = ud;
    c->x->ops->close(c->x);
    c->x = NULL;
    reaped(c);
}

/* ---- output ---- */

static void print_tools(json_t *tools, bool as_json)
{
    if (as_json) {
        char *s = json_dumps(tools, JSON_INDENT(2));
        if (s) puts(s);
        free(s);
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *d = json_string_value(json_object_get(t, "description"));
        char line[512];
        snprintf(line, sizeof line, "%s", d ? d : "");
        char *nl = strchr(line, '\n'); /* the first line of it */
        if (nl) *nl = '\0';
        printf("%s%s%s\n", json_string_value(json_object_get(t, "name")), line[0] ? "  " : "",
               line);
    }
}

static void print_result(json_t *res, bool as_json, FILE *f)
{
    if (as_json) {
        char *s = json_dumps(res, JSON_INDENT(2));
        if (s) fprintf(f, "%s\n", s);
        free(s);
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(res, "content"), i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        const char *text = json_string_value(json_object_get(item, "text"));
        if (type && !strcmp(type, "text") && text) {
            fprintf(f, "%s\n", text);
        } else {
            char *s = json_dumps(item, JSON_COMPACT);
            if (s) fprintf(f, "%s\n", s);
            free(s);
        }
    }
}

/* resources, read, prompts: one line per item, or the JSON. */
static void print_items(int mode, json_t *out, bool as_json)
{
    if (as_json) {
        char *s = json_dumps(out, JSON_INDENT(2));
        if (s) puts(s);
        free(s);
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(out, i, it)
    {
        const char *text = json_string_value(json_object_get(it, "text"));
        const char *mime = json_string_value(json_object_get(it, "mimeType"));
        const char *desc = json_string_value(json_object_get(it, "description"));
        if (mode == M_READ && text) {
            fputs(text, stdout);
            if (!text[0] || text[strlen(text) - 1] != '\n') putchar('\n');
        } else if (mode == M_READ) {
            char *s = json_dumps(it, JSON_COMPACT);
            if (s) puts(s);
            free(s);
        } else if (mode == M_RESOURCES) {
            printf("%s  %s%s%s%s\n", json_string_value(json_object_get(it, "uri")),
                   json_string_value(json_object_get(it, "name")), mime ? "  (" : "",
                   mime ? mime : "", mime ? ")" : "");
        } else {
            printf("%s%s%s\n", json_string_value(json_object_get(it, "name")), desc ? "  " : "",
                   desc ? desc : "");
        }
    }
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "goosed mcp: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

/* "mcp" from a command (its base name) or a URL (its host), for the log's tags. */
/* The checked config of the extension called name in config.yaml (found as goosed finds it:
 * --config is not taken here, GOOSE_CONFIG_DIR and HOME are), with env_keys resolved from
 * secrets.yaml; NULL with a message on stderr. */
static json_t *configured_extension(const char *name)
{
    static config cfg;
    cfg_action action;
    char err[1024];
    char *argv[] = {"goosed", NULL};
    if (config_load(&cfg, 1, argv, &action, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goosed mcp: %s\n", err);
        return NULL;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", cfg.config_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    if (dir[0] && secrets_load(dir, err, sizeof err) != GD_OK)
        fprintf(stderr, "goosed mcp: %s (ignored)\n", err);
    char key[EXT_KEY_MAX + 1];
    if (ext_name_key(name, key, sizeof key, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goosed mcp: %s\n", err);
        return NULL;
    }
    ext_set *set = ext_set_load(&cfg);
    json_t *snap = set ? ext_set_snapshot(set, NULL) : NULL;
    json_t *x = json_incref(json_object_get(snap, key));
    json_decref(snap);
    ext_set_free(set);
    const char *refused = json_string_value(json_object_get(x, "refused"));
    if (!x)
        fprintf(stderr, "goosed mcp: no extension '%s' in %s\n", key,
                cfg.config_file[0] ? cfg.config_file : "config.yaml (there is none)");
    else if (refused)
        fprintf(stderr, "goosed mcp: %s: %s\n", key, refused);
    else if (!ext_config_supported(x) ||
             !strcmp(json_string_value(json_object_get(x, "type")) ?: "", "builtin"))
        fprintf(stderr, "goosed mcp: %s is not an MCP server goosed can start\n", key);
    else
        return x;
    json_decref(x);
    return NULL;
}

static void target_name(const char *s, bool url, char *out, size_t n)
{
    const char *b = s;
    if (url) {
        const char *p = strstr(s, "://");
        b = p ? p + 3 : s;
    } else {
        const char *sl = strrchr(s, '/');
        if (sl) b = sl + 1;
    }
    size_t k = 0;
    for (; *b && k + 1 < n && k < 32; b++) {
        if (url && (*b == '/' || *b == ':')) break;
        char ch = *b;
        out[k++] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                           (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'
                       ? ch
                       : '_';
    }
    out[k] = '\0';
    if (!k) snprintf(out, n, "mcp");
}

static int mcp_main(cli *c, int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "tools"))
        c->mode = M_TOOLS;
    else if (!strcmp(sub, "call"))
        c->mode = M_CALL;
    else if (!strcmp(sub, "conformance"))
        c->mode = M_CONFORMANCE;
    else if (!strcmp(sub, "resources"))
        c->mode = M_RESOURCES;
    else if (!strcmp(sub, "read"))
        c->mode = M_READ;
    else if (!strcmp(sub, "prompts"))
        c->mode = M_PROMPTS;
    else
        return usage_error("unknown command '%s'", sub);

    double timeout = 0;
    const char *url = NULL;
    bool sse = false;
    int cmd_at = -1;
    const char *pos[3];
    int npos = 0;
    json_t *envs = c->envs, *env_keys = c->env_keys;
    const char *client_id = NULL, *secret_env = NULL, *key_file = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            cmd_at = i + 1;
            break;
        } else if (!strcmp(a, "--json")) {
            c->json = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--timeout")) {
            char *end;
            if (i + 1 >= argc) return usage_error("%s needs a number of seconds", a);
            timeout = strtod(argv[++i], &end);
            if (*end || timeout <= 0 || timeout > 86400)
                return usage_error("--timeout: '%s' is not a number of seconds", argv[i]);
        } else if (!strcmp(a, "--env")) {
            const char *eq = i + 1 < argc ? strchr(argv[i + 1], '=') : NULL;
            if (!eq || eq == argv[i + 1]) return usage_error("%s needs NAME=VALUE", a);
            char nm[256];
            snprintf(nm, sizeof nm, "%.*s", (int)(eq - argv[i + 1]), argv[i + 1]);
            json_object_set_new(envs, nm, json_string(eq + 1));
            i++;
        } else if (!strcmp(a, "--env-key")) {
            if (i + 1 >= argc || !argv[i + 1][0]) return usage_error("%s needs a NAME", a);
            json_array_append_new(env_keys, json_string(argv[++i]));
        } else if (!strcmp(a, "--client-id") || !strcmp(a, "--client-secret-env") ||
                   !strcmp(a, "--client-key")) {
            if (i + 1 >= argc || !argv[i + 1][0]) return usage_error("%s needs a value", a);
            const char **slot = a[9] == 'i' ? &client_id : a[9] == 's' ? &secret_env : &key_file;
            *slot = argv[++i];
        } else if (!strcmp(a, "--sse")) {
            if (i + 1 >= argc) return usage_error("%s needs a URL", a);
            url = argv[++i];
            sse = true;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (!url && !strncmp(a, "http://", 7)) {
            url = a;
        } else if (!url && !strncmp(a, "https://", 8)) {
            url = a;
        } else {
            if (npos == 3) return usage_error("unexpected argument '%s'", a);
            pos[npos++] = a;
        }
    }
    if (cmd_at >= 0 && cmd_at >= argc) return usage_error("%s", "-- must be followed by a command");
    const char *ext_name = NULL; /* the target is an extension of config.yaml */
    if (cmd_at < 0 && !url && npos && c->mode != M_CONFORMANCE) {
        ext_name = pos[0];
        memmove(pos, pos + 1, --npos * sizeof *pos);
    }
    if (cmd_at < 0 && !url && !ext_name)
        return usage_error("%s", "no server: give -- COMMAND [ARGS...], a URL, --sse URL or the "
                                 "name of an extension in config.yaml");
    if (cmd_at >= 0 && url) return usage_error("%s", "give either a command or a URL, not both");
    if ((secret_env || key_file) && !client_id)
        return usage_error("%s", "--client-secret-env and --client-key go with --client-id");
    if (client_id && (!url || sse || c->mode == M_CONFORMANCE))
        return usage_error("%s", "--client-id is for a streamable HTTP server's sign-in (a URL)");
    if (secret_env && key_file)
        return usage_error("%s", "give the client a secret or a key, not both");
    if (secret_env && !getenv(secret_env))
        return usage_error("--client-secret-env: %s is not set", secret_env);
    if ((c->mode == M_TOOLS || c->mode == M_RESOURCES || c->mode == M_PROMPTS) && npos)
        return usage_error("unexpected argument '%s'", pos[0]);
    if (c->mode == M_READ) {
        if (npos < 1) return usage_error("%s", "read: which URI?");
        if (npos > 1) return usage_error("unexpected argument '%s'", pos[1]);
        c->tool = pos[0];
    }
    if (c->mode == M_CONFORMANCE && npos) return usage_error("unexpected argument '%s'", pos[0]);
    if (c->mode == M_CALL) {
        if (npos < 1) return usage_error("%s", "call: which tool?");
        if (npos > 2) return usage_error("unexpected argument '%s'", pos[2]);
        c->tool = pos[0];
        json_error_t je;
        c->args = npos == 2 ? json_loads(pos[1], JSON_DECODE_ANY, &je) : json_object();
        if (!c->args) return usage_error("the arguments are not JSON: %s", je.text);
        if (!json_is_object(c->args)) {
            json_decref(c->args);
            return usage_error("%s", "the arguments must be a JSON object");
        }
    }
    char *client_key = NULL; /* the PEM text */
    if (key_file) {
        buf kb;
        if (!cl_read_file("goosed mcp: --client-key", key_file, 64u << 10, &kb)) return 2;
        client_key = kb.data;
    }
    c->scenario = getenv("MCP_CONFORMANCE_SCENARIO");

    const char *rl = getenv("RUST_LOG");
    char lerr[256];
    if (log_configure(rl && rl[0] ? rl : "error", lerr, sizeof lerr) != GD_OK)
        log_configure("error", lerr, sizeof lerr);

    json_t *cfg = NULL;
    if (ext_name && !(cfg = configured_extension(ext_name))) return 1;
    char name[EXT_NAME_MAX];
    if (!ext_name) target_name(url ? url : argv[cmd_at], url != NULL, name, sizeof name);
    if (!cfg)
        cfg = json_pack("{s:s, s:s, s:[], s:O, s:O, s:{}, s:[], s:f}", "name", name, "type",
                        url ? (sse ? "sse" : "streamable_http") : "stdio", "args", "envs", envs,
                        "env_keys", env_keys, "headers", "available_tools", "timeout",
                        timeout > 0 ? timeout : 300.0);
    if (!cfg) {
        fprintf(stderr, "goosed mcp: out of memory\n");
        return 1;
    }
    if (ext_name) {
        /* as configured */
    } else if (url) {
        json_object_set_new(cfg, "uri", json_string(url));
        /* the conformance suite's pre-registered client */
        json_t *ctx = c->mode == M_CONFORMANCE && getenv("MCP_CONFORMANCE_CONTEXT")
                          ? json_loads(getenv("MCP_CONFORMANCE_CONTEXT"), 0, NULL)
                          : NULL;
        const char *id = json_string_value(json_object_get(ctx, "client_id"));
        const char *secret = json_string_value(json_object_get(ctx, "client_secret"));
        const char *key = json_string_value(json_object_get(ctx, "private_key_pem"));
        json_t *oa = id ? json_pack("{s:s}", "client_id", id) : NULL;
        if (oa && secret) json_object_set_new(oa, "client_secret", json_string(secret));
        if (oa && key) json_object_set_new(oa, "private_key", json_string(key));
        if (oa) json_object_set_new(cfg, "oauth", oa);
        json_decref(ctx);
        if (client_id) { /* a client registered beforehand, given on the command line */
            json_t *given = json_pack("{s:s}", "client_id", client_id);
            if (given && secret_env)
                json_object_set_new(given, "client_secret", json_string(getenv(secret_env)));
            if (given && client_key)
                json_object_set_new(given, "private_key", json_string(client_key));
            if (given) json_object_set_new(cfg, "oauth", given);
        }
        if (client_key) {
            sodium_memzero(client_key, strlen(client_key));
            free(client_key);
            client_key = NULL;
        }
    } else {
        json_object_set_new(cfg, "cmd", json_string(argv[cmd_at]));
        json_t *args = json_object_get(cfg, "args");
        for (int i = cmd_at + 1; i < argc; i++)
            json_array_append_new(args, json_string(argv[i]));
    }

    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "/");
    char **env = sandbox_env_new();
    static const ext_host_ops ops = {.request = host_request,
                                     .request_cancel = host_request_cancel};
    ext_host_ops myops = ops;
    myops.ud = c;
    c->host = (ext_host){.env = env, .cwd = cwd, .ops = &myops};
    char err[1024];
    /* A remote server may ask for a sign-in (OAuth): the conformance suite's approves at once;
     * a real one through the user's browser, which comes back to a port of 127.0.0.1. */
    c->signin.fd = -1;
    const char *ct = json_string_value(json_object_get(cfg, "type"));
    if (ct && strcmp(ct, "stdio")) {
        c->oauth = (mcp_oauth_cfg){.client_name = "goosed"};
        if (c->mode == M_CONFORMANCE) {
            /* the suite's client ID metadata document (its example client names the same) */
            c->oauth.client_metadata_url = "https://conformance-test.local/client-metadata.json";
            c->oauth.redirect_uri = "http://localhost:3000/callback";
            c->oauth.consent = signin_fetch;
            c->host.oauth = &c->oauth;
        } else if (signin_listen(&c->signin, err, sizeof err) == GD_OK) {
            c->oauth.redirect_uri = c->signin.redirect_uri;
            c->oauth.consent = signin_browser;
            c->oauth.consent_ud = &c->signin;
            c->host.oauth = &c->oauth;
        }
    }
    sem_init(&c->sem, 0, 0);
    if (!env || !(c->l = loop_new("mcp-cli")) || !(c->workers = pool_new("mcp-cli", 1, 4))) {
        if (c->l) loop_free(c->l);
        fprintf(stderr, "goosed mcp: cannot start (out of memory or threads)\n");
        json_decref(cfg);
        json_decref(c->args);
        sandbox_env_free(env);
        return 1;
    }
    c->host.l = c->l;
    c->host.workers = c->workers;
    if (!(c->x = mcp_extension_new(cfg, &c->host, err, sizeof err))) {
        fprintf(stderr, "goosed mcp: %s\n", err);
        loop_free(c->l);
        pool_free(c->workers);
        json_decref(cfg);
        json_decref(c->args);
        sandbox_env_free(env);
        return 1;
    }
    json_decref(cfg);
    if (loop_post(c->l, run, c) != GD_OK) {
        fprintf(stderr, "goosed mcp: out of memory\n");
        return 1;
    }
    while (sem_wait(&c->sem) < 0 && errno == EINTR) {
    }
    if (loop_post(c->l, stop, c) == GD_OK)
        while (sem_wait(&c->sem) < 0 && errno == EINTR) {
        }
    loop_free(c->l);
    pool_free(c->workers);

    int rc = c->rc;
    if (c->mode == M_TOOLS && c->out) {
        print_tools(c->out, c->json);
    } else if (c->mode == M_CALL && c->out) {
        print_result(c->out, c->json, rc ? stderr : stdout);
    } else if ((c->mode == M_RESOURCES || c->mode == M_READ || c->mode == M_PROMPTS) && c->out) {
        print_items(c->mode, c->out, c->json);
    } else if (c->mode == M_CONFORMANCE && !rc) {
        printf("done: %zu tools called\n", c->next);
    }
    if (rc && c->msg[0]) fprintf(stderr, "goosed mcp: %s\n", c->msg);
    json_decref(c->out);
    json_decref(c->args);
    json_decref(c->tools);
    sandbox_env_free(env);
    sem_destroy(&c->sem);
    signin_close(&c->signin);
    return rc;
}

int cli_mcp(int argc, char **argv)
{
    /* goosed blocks SIGINT and SIGTERM for its own sigwait; a command-line client just dies of
     * them (its server follows: PR_SET_PDEATHSIG). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &stop, NULL);
    cli c = {.rc = 1, .envs = json_object(), .env_keys = json_array()};
    int rc = c.envs && c.env_keys ? mcp_main(&c, argc, argv) : 1;
    json_decref(c.envs);
    json_decref(c.env_keys);
    return rc;
}
