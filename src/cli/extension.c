/* cli/extension: `goose extension list|add|enable|disable|remove`: the extensions (MCP servers)
 * of a running server, through its API (which writes them back to config.yaml). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char usage[] =
    "usage: goose extension list [--session ID] [options]\n"
    "       goose extension add NAME [--timeout S] [--env K=V]... [--header K=V]... [--disabled]\n"
    "                           (--cmd COMMAND [ARGS...] | --uri URL | --sse URL | --builtin |\n"
    "                            --config JSON) [options]\n"
    "       goose extension enable NAME | disable NAME | remove NAME [options]\n"
    "\n"
    "The extensions (MCP servers) of a running server; changes are written to its config.yaml\n"
    "and apply to each session's next reply.\n"
    "  list            each extension: name, type, enabled, status, tools, command or URL\n"
    "  add NAME        adds (or replaces) an extension, one of:\n"
    "    --cmd COMMAND [ARGS...]  a stdio server; every argument after COMMAND is its argument,\n"
    "                             so give the other options before --cmd\n"
    "    --uri URL                a streamable HTTP server (--uri, the config's field: --url\n"
    "                             is the goosed server's, as for every command)\n"
    "    --sse URL                a server of the older HTTP+SSE transport\n"
    "    --builtin                a built-in one (developer)\n"
    "    --config JSON            the config object as the API takes it, e.g.\n"
    "                             "
    "'{\"type\":\"stdio\",\"cmd\":\"npx\",\"args\":[\"-y\",\"pkg\"]}'\n"
    "    --env K=V, --header K=V  a stdio server's environment, an HTTP server's headers\n"
    "    --timeout S              seconds a tool call may take (default 300)\n"
    "    --disabled               added but not enabled\n"
    "  enable NAME, disable NAME  turns it on or off\n"
    "  remove NAME     removes it (also: rm)\n"
    "  -s, --session ID  the same for one session only: list shows its extensions, where each\n"
    "                  comes from and how its last reply found it (running, failed,\n"
    "                  signing_in; - before one); add NAME with a config adds one to it\n"
    "                  alone; add NAME alone or enable NAME turns a configured one on there;\n"
    "                  disable NAME turns one off there; remove NAME takes it out of the\n"
    "                  session\n"
    "\n"
    "Exit status: 0 done, 1 a failure (the server's answer on stderr: a 403 names what the\n"
    "allowlist refused), 2 a usage error.\n"
    "\n";

/* --session ID: the commands act on that session's extensions only (set per invocation). */
static const char *session_id;

/* A common option or --session/-s: as cl_common_opt. */
static int ext_opt(cl_common *c, const char *prog, int argc, char **argv, int *i)
{
    int r = cl_common_opt(c, prog, argc, argv, i);
    if (!r) r = cl_opt_value(prog, "--session", "-s", argc, argv, i, &session_id);
    return r;
}

/* "/api/sessions/ID/extensions" + tail (the session of --session); the caller frees. */
static char *session_path(const char *tail)
{
    char *esc = cl_escape(session_id), *p = NULL;
    if (!esc || asprintf(&p, "/api/sessions/%s/extensions%s", esc, tail) < 0) p = NULL;
    free(esc);
    if (!p) fprintf(stderr, "goose extension: out of memory\n");
    return p;
}

/* list --session ID: the session's extensions, where each comes from, and how its last reply
 * found each ("-": not started in this goosed yet). */
static int cmd_list_session(cl_client *cl, const cl_common *c)
{
    char *path = session_path("");
    json_t *r = path ? cl_call(cl, "GET", path, NULL, NULL) : NULL;
    free(path);
    if (!r) return 1;
    if (c->json) {
        cl_print_json(r);
        json_decref(r);
        return 0;
    }
    printf("mode: %s%s\n", cl_str(r, "effective_mode", "?"),
           json_is_string(json_object_get(r, "execution_mode")) ? " (the session's own)" : "");
    json_t *list = json_object_get(r, "extensions");
    if (!json_array_size(list))
        printf("no extensions\n");
    else
        printf("%-20s  %-15s  %-7s  %-7s  %s\n", "NAME", "TYPE", "ENABLED", "SOURCE", "STATUS");
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        printf("%-20s  %-15s  %-7s  %-7s  %s\n", cl_str(x, "name", "?"), cl_str(x, "type", ""),
               json_is_true(json_object_get(x, "enabled")) ? "yes" : "no", cl_str(x, "source", ""),
               cl_str(x, "status", "-"));
    }
    json_decref(r);
    return 0;
}

/* add, enable, disable, remove with --session ID. cfg: add's config (NULL: none given). */
static int cmd_session_change(cl_client *cl, const cl_common *c, const char *cmd, const char *name,
                              json_t *cfg)
{
    bool rm = !strcmp(cmd, "remove") || !strcmp(cmd, "rm");
    char *esc = rm ? cl_escape(name) : NULL, *tail = NULL;
    if (rm && (!esc || asprintf(&tail, "/%s", esc) < 0)) tail = NULL;
    free(esc);
    char *path = rm ? (tail ? session_path(tail) : NULL) : session_path("");
    free(tail);
    json_t *body = json_pack("{s:s}", "name", name);
    if (!strcmp(cmd, "add") && cfg) json_object_set(body, "config", cfg);
    if (!strcmp(cmd, "enable") || !strcmp(cmd, "disable"))
        json_object_set_new(body, "enabled", json_boolean(!strcmp(cmd, "enable")));
    json_t *r =
        path ? cl_call_json(cl, rm ? "DELETE" : "POST", path, rm ? NULL : body, NULL) : NULL;
    free(path);
    json_decref(body);
    if (!r) return 1;
    const char *did = rm                        ? "removed"
                      : !strcmp(cmd, "disable") ? "turned off"
                      : cfg                     ? "added"
                                                : "turned on";
    if (c->json)
        cl_print_json(r);
    else
        printf("%s extension %s in session %s\n", did, name, session_id);
    json_decref(r);
    return 0;
}

static int cmd_list(cl_client *cl, const cl_common *c)
{
    json_t *r = cl_call(cl, "GET", "/api/extensions", NULL, NULL);
    if (!r) return 1;
    if (!cl_shape(cl, json_is_array(r) || json_is_array(json_object_get(r, "extensions")),
                  "a list of extensions")) {
        json_decref(r);
        return 1;
    }
    if (c->json) {
        cl_print_json(r);
        json_decref(r);
        return 0;
    }
    json_t *list = json_is_array(r) ? r : json_object_get(r, "extensions");
    if (!json_array_size(list))
        printf("no extensions\n");
    else
        printf("%-20s  %-15s  %-7s  %-12s  %5s  %s\n", "NAME", "TYPE", "ENABLED", "STATUS", "TOOLS",
               "COMMAND/URL");
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        json_t *cfg = json_object_get(x, "config");
        printf("%-20s  %-15s  %-7s  %-12s  %5zu  ", cl_str(x, "name", "?"), cl_str(x, "type", ""),
               json_is_true(json_object_get(x, "enabled")) ? "yes" : "no", cl_str(x, "status", ""),
               json_array_size(json_object_get(x, "tools")));
        const char *cmd = cl_str(cfg, "cmd", ""), *uri = cl_str(cfg, "uri", "");
        if (*cmd) {
            fputs(cmd, stdout);
            size_t k;
            json_t *a;
            json_array_foreach(json_object_get(cfg, "args"), k, a)
                printf(" %s", json_string_value(a) ? json_string_value(a) : "?");
        } else {
            fputs(uri, stdout);
        }
        fputc('\n', stdout);
    }
    json_decref(r);
    return 0;
}

/* Sets K=V of kv into the object member key of cfg; false (said) when kv has no '='. */
static bool put_pair(json_t *cfg, const char *key, const char *kv, const char *opt)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "goose extension: %s takes KEY=VALUE\n", opt);
        return false;
    }
    json_t *o = json_object_get(cfg, key);
    if (!o) json_object_set_new(cfg, key, o = json_object());
    char *k = strndup(kv, (size_t)(eq - kv));
    json_object_set_new(o, k, json_string(eq + 1));
    free(k);
    return true;
}

/* `add NAME ...` from argv[i] on; the config is built into *cfg. 0 ok, 2 usage (said). */
static int parse_add(cl_common *c, int argc, char **argv, int i, const char **name, json_t *cfg)
{
    const char *prog = "goose extension add";
    const char *kind = NULL;
    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = ext_opt(c, prog, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "--cmd")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --cmd needs a command\n", prog);
                return 2;
            }
            if (kind) goto twice;
            kind = a;
            json_object_set_new(cfg, "type", json_string("stdio"));
            json_object_set_new(cfg, "cmd", json_string(argv[++i]));
            json_t *args = json_array();
            while (++i < argc)
                json_array_append_new(args, json_string(argv[i]));
            json_object_set_new(cfg, "args", args);
            break;
        }
        if ((r = cl_opt_value(prog, "--uri", NULL, argc, argv, &i, &v)) ||
            (r = cl_opt_value(prog, "--sse", NULL, argc, argv, &i, &v))) {
            if (r < 0) return 2;
            if (kind) goto twice;
            kind = a;
            json_object_set_new(cfg, "type",
                                json_string(strncmp(a, "--sse", 5) ? "streamable_http" : "sse"));
            json_object_set_new(cfg, "uri", json_string(v));
            continue;
        }
        if (!strcmp(a, "--builtin")) {
            if (kind) goto twice;
            kind = a;
            json_object_set_new(cfg, "type", json_string("builtin"));
            continue;
        }
        if ((r = cl_opt_value(prog, "--config", NULL, argc, argv, &i, &v))) {
            if (r < 0) return 2;
            if (kind) goto twice;
            kind = a;
            json_error_t err;
            json_t *given = json_loads(v, 0, &err);
            if (!json_is_object(given)) {
                fprintf(stderr, "%s: --config takes a JSON object%s%s\n", prog, given ? "" : ": ",
                        given ? "" : err.text);
                json_decref(given);
                return 2;
            }
            json_object_update(cfg, given);
            json_decref(given);
            continue;
        }
        if ((r = cl_opt_value(prog, "--env", NULL, argc, argv, &i, &v))) {
            if (r < 0 || !put_pair(cfg, "envs", v, "--env")) return 2;
            continue;
        }
        if ((r = cl_opt_value(prog, "--header", NULL, argc, argv, &i, &v))) {
            if (r < 0 || !put_pair(cfg, "headers", v, "--header")) return 2;
            continue;
        }
        if ((r = cl_opt_value(prog, "--timeout", NULL, argc, argv, &i, &v))) {
            char *end;
            long t = r > 0 ? strtol(v, &end, 10) : 0;
            if (r < 0 || !*v || *end || t <= 0) {
                fprintf(stderr, "%s: --timeout takes a number of seconds\n", prog);
                return 2;
            }
            json_object_set_new(cfg, "timeout", json_integer(t));
            continue;
        }
        if (!strcmp(a, "--disabled")) {
            json_object_set_new(cfg, "enabled", json_false());
            continue;
        }
        if (a[0] == '-' || *name) {
            fprintf(stderr, "%s: unknown argument \"%s\"\n\n%s", prog, a, usage);
            return 2;
        }
        *name = a;
    }
    if (c->help) return 0;
    if (!*name) {
        fprintf(stderr, "%s: needs the extension's NAME\n\n%s", prog, usage);
        return 2;
    }
    if (!kind && !session_id) {
        fprintf(stderr,
                "%s: say what it is: --cmd COMMAND [ARGS...], --uri URL, --sse URL, "
                "--builtin or --config JSON (with --session ID, NAME alone turns on a configured "
                "one there)\n",
                prog);
        return 2;
    }
    return 0;
twice:
    fprintf(stderr, "%s: give one of --cmd, --uri, --sse, --builtin and --config\n", prog);
    return 2;
}

static int cmd_add(cl_client *cl, const cl_common *c, const char *name, json_t *cfg)
{
    json_t *body = json_pack("{s:s, s:O}", "name", name, "config", cfg);
    json_t *r = cl_call_json(cl, "POST", "/api/extensions", body, NULL);
    json_decref(body);
    if (!r) return 1;
    if (c->json)
        cl_print_json(r);
    else
        printf("added extension %s (%s, %s)\n", name, cl_str(r, "type", "?"),
               json_is_false(json_object_get(r, "enabled")) ? "disabled" : "enabled");
    json_decref(r);
    return 0;
}

/* enable, disable (seed 000's routes: they set, where the toggle flips) and remove. */
static int cmd_change(cl_client *cl, const cl_common *c, const char *cmd, const char *name)
{
    char *esc = cl_escape(name), *path = NULL;
    bool rm = !strcmp(cmd, "remove") || !strcmp(cmd, "rm");
    if (!esc || (rm ? asprintf(&path, "/api/extensions/%s", esc)
                    : asprintf(&path, "/extensions/%s/%s", esc, cmd)) < 0)
        path = NULL;
    free(esc);
    if (!path) {
        fprintf(stderr, "goose extension: out of memory\n");
        return 1;
    }
    json_t *r = cl_call(cl, rm ? "DELETE" : "POST", path, NULL, NULL);
    free(path);
    if (!r) return 1;
    if (c->json)
        cl_print_json(r);
    else
        printf("%s extension %s\n",
               rm                       ? "removed"
               : !strcmp(cmd, "enable") ? "enabled"
                                        : "disabled",
               name);
    json_decref(r);
    return 0;
}

int cli_extension(int argc, char **argv)
{
    const char *prog = "goose extension";
    cl_common c = {0};
    const char *cmd = NULL, *name = NULL;
    json_t *cfg = json_object();
    int rc = 2;
    int i = 1;
    session_id = NULL;
    for (; i < argc && !cmd; i++) {
        int r = ext_opt(&c, prog, argc, argv, &i);
        if (r < 0) goto out;
        if (r) continue;
        if (argv[i][0] == '-') {
            fprintf(stderr, "%s: unknown option \"%s\"\n\n%s%s", prog, argv[i], usage,
                    cl_common_help);
            goto out;
        }
        cmd = argv[i];
    }
    if (cmd && !strcmp(cmd, "add")) {
        if ((rc = parse_add(&c, argc, argv, i, &name, cfg))) goto out;
    } else {
        for (; i < argc; i++) {
            int r = ext_opt(&c, prog, argc, argv, &i);
            if (r < 0) goto out;
            if (r) continue;
            if (argv[i][0] == '-' || name) {
                fprintf(stderr, "%s: unknown argument \"%s\"\n\n%s", prog, argv[i], usage);
                goto out;
            }
            name = argv[i];
        }
    }
    if (c.help) {
        printf("%s%s", usage, cl_common_help);
        rc = 0;
        goto out;
    }
    static const char *const cmds[] = {"list", "add", "enable", "disable", "remove", "rm"};
    size_t k = 0, n = sizeof cmds / sizeof *cmds;
    while (cmd && k < n && strcmp(cmds[k], cmd))
        k++;
    if (!cmd || k == n) {
        if (cmd) fprintf(stderr, "%s: unknown command \"%s\"\n\n", prog, cmd);
        fputs(usage, stderr);
        goto out;
    }
    if (!strcmp(cmd, "list") ? name != NULL : !name) {
        fprintf(stderr, "%s %s: %s\n\n%s", prog, cmd,
                name ? "takes no argument" : "needs the extension's NAME", usage);
        goto out;
    }
    cl_client *cl = cl_open(&c, prog);
    rc = 1;
    if (!cl) goto out;
    if (session_id && !strcmp(cmd, "list"))
        rc = cmd_list_session(cl, &c);
    else if (session_id)
        rc = cmd_session_change(cl, &c, cmd, name, json_object_size(cfg) ? cfg : NULL);
    else if (!strcmp(cmd, "list"))
        rc = cmd_list(cl, &c);
    else if (!strcmp(cmd, "add"))
        rc = cmd_add(cl, &c, name, cfg);
    else
        rc = cmd_change(cl, &c, cmd, name);
    cl_close(cl);
out:
    json_decref(cfg);
    return rc;
}
