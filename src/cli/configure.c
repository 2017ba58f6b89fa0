/* cli/configure: `goose configure list|get|set|unset`: goosed's effective configuration, where
 * each setting came from (a flag, the environment, config.yaml, secrets.yaml or the default),
 * and changes to config.yaml (secrets.yaml for the providers' API keys). A secret's value is
 * never printed: only whether it is set and its length. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "cli/cli.h"
#include "config/config.h"
#include "config/secrets.h"
#include "config/yamldoc.h"
#include "core/buf.h"
#include "core/log.h"
#include "providers/provider.h"

#define API_KEY_MAX 4096 /* bytes: as POST /api/providers takes them (api/providers.c) */
#define VALUE_COL   40   /* the value column's width in the listing (longer values overflow) */

static const char usage[] =
    "usage: goose configure COMMAND [ARGS]\n"
    "\n"
    "goosed's configuration: every setting's effective value and where it came from.\n"
    "\n"
    "Commands:\n"
    "  list [--json] [goosed's options]     every setting, its value and its source\n"
    "  get KEY [--json] [goosed's options]  one setting's effective value\n"
    "  set KEY VALUE [--config FILE]        writes KEY to config.yaml (a provider's API key\n"
    "                                       to secrets.yaml, mode 0600)\n"
    "  unset KEY [--config FILE]            removes KEY from config.yaml (or secrets.yaml)\n"
    "\n"
    "KEY is config.yaml's key or the environment variable, as `goose configure list` shows\n"
    "them (GOOSE_PORT, api_timeout or GOOSE_API_TIMEOUT, OPENAI_API_KEY).\n"
    "Sources: flag, env, file (config.yaml), secrets (secrets.yaml), default.\n"
    "Secrets (API keys, GOOSE_SERVER__SECRET_KEY, GOOSE_SERVER_KEY) are never printed, by any\n"
    "command: only whether they are set, and their length.\n"
    "\n"
    "Exit status: 0 done, 1 a failure or a value refused, 2 a usage error or an unknown key.\n";

static const char usage_list[] =
    "usage: goose configure list [--json] [--config FILE] [goosed's options]\n"
    "\n"
    "Prints every setting goosed would use if started with the same environment and options\n"
    "(goose server --help lists them: --port 4000 shows port from `flag`): its config.yaml key,\n"
    "value, source (flag, env, file, secrets, default) and environment variable. Secrets are\n"
    "masked. --json prints an array of {key, env, value, source, secret}.\n";

static const char usage_get[] =
    "usage: goose configure get KEY [--json] [--config FILE] [goosed's options]\n"
    "\n"
    "Prints KEY's effective value (a list joined with commas); --json prints its\n"
    "{key, env, value, source, secret}. A secret is masked: \"(set, N chars)\" or \"(not set)\";\n"
    "its value is in the environment, config.yaml or secrets.yaml, never printed here.\n";

static const char usage_set[] =
    "usage: goose configure set KEY VALUE [--config FILE]\n"
    "\n"
    "Writes `KEY: VALUE` to config.yaml (the file's other lines and comments are kept; the\n"
    "file is replaced atomically), after checking VALUE as goosed would. A provider's API key\n"
    "(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) goes to secrets.yaml beside it (mode 0600).\n"
    "A list is given with commas: goose configure set cors_origins "
    "https://a.example,https://b.example\n"
    "An environment variable still takes precedence over the file (a note says so).\n";

static const char usage_unset[] =
    "usage: goose configure unset KEY [--config FILE]\n"
    "\n"
    "Removes KEY from config.yaml (a provider's API key from secrets.yaml), keeping the file's\n"
    "other lines and comments; the setting is then the default (or the environment's).\n";

/* ---- the rows: the table's settings, the providers' API keys, the server key ---- */

typedef struct {
    const char *key, *env;
    const char *source;
    cfg_type type;
    bool secret;
    char *text;       /* a setting's value (malloc'd); NULL for a secret */
    char masked[160]; /* a secret: "(set, 51 chars)", "(not set)" */
    bool set;         /* a secret: it has a value */
} row;

typedef struct {
    row *v;
    size_t n;
    config *cfg;
    char secrets_path[PATH_MAX]; /* "" when config.yaml's place is unknown */
} rows;

static void rows_free(rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].text);
    free(r->v);
    free(r->cfg);
}

static void mask(row *w, size_t len)
{
    w->set = len > 0;
    if (len)
        snprintf(w->masked, sizeof w->masked, "(set, %zu chars)", len);
    else
        snprintf(w->masked, sizeof w->masked, "(not set)");
}

/* The directory of path, into dir. */
static void dir_of(const char *path, char *dir, size_t dirlen)
{
    snprintf(dir, dirlen, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    else if (slash)
        slash[1] = '\0';
    else
        snprintf(dir, dirlen, ".");
}

/* Whether a config_load message is about the command line (exit 2) rather than a value of the
 * environment or config.yaml (exit 1). */
static bool usage_error(const char *msg)
{
    return strstr(msg, "(see --help)") || !strncmp(msg, "option \"", 8) || !strncmp(msg, "--", 2);
}

/* Loads the configuration as goosed would with argv's options, and the rows. Returns the exit
 * status on failure (message on stderr), 0 on success. */
static row *find_row(rows *r, const char *name);

/* Whether name is a provider's address variable (OPENAI_HOST, OPENAI_BASE_PATH, ...): read from
 * the environment only. */
static bool provider_address(const char *name)
{
    for (size_t p = 0; p < provider_ndefs; p++)
        if ((provider_defs[p].host_env && !strcmp(provider_defs[p].host_env, name)) ||
            (provider_defs[p].path_env && !strcmp(provider_defs[p].path_env, name)))
            return true;
    return false;
}

/* Whether name is a provider's address, which goosed reads from its environment only (said). */
static bool env_only(const char *name)
{
    if (!provider_address(name)) return false;
    fprintf(stderr,
            "goose configure: %s is read from the environment only (set it where goosed starts: "
            "its service's environment, or export it)\n",
            name);
    return true;
}

static int load_rows(rows *r, int argc, char **argv)
{
    memset(r, 0, sizeof *r);
    r->cfg = calloc(1, sizeof *r->cfg);
    size_t cap = config_nkeys() + 3 * provider_ndefs + 1;
    r->v = calloc(cap, sizeof *r->v);
    if (!r->cfg || !r->v) {
        fprintf(stderr, "goose configure: out of memory\n");
        return 1;
    }
    cfg_action action;
    char err[1024];
    if (config_load(r->cfg, argc, argv, &action, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goose configure: %s\n", err);
        return usage_error(err) ? 2 : 1;
    }
    if (r->cfg->config_path[0]) {
        char dir[PATH_MAX];
        dir_of(r->cfg->config_path, dir, sizeof dir);
        snprintf(r->secrets_path, sizeof r->secrets_path, "%s/secrets.yaml", dir);
        if (secrets_load(dir, err, sizeof err) != GD_OK)
            fprintf(stderr, "goose configure: warning: %s (goosed ignores it too)\n", err);
    }

    for (size_t i = 0; i < config_nkeys(); i++) {
        config_key k = config_key_at(i);
        row *w = &r->v[r->n++];
        *w = (row){.key = k.key,
                   .env = k.env,
                   .source = config_source_name(config_source(r->cfg, i)),
                   .type = k.type,
                   .secret = k.secret};
        buf b;
        buf_init(&b, BUF_CAP_CONFIG_FILE);
        gd_err e = config_value(r->cfg, i, &b);
        if (e) {
            buf_free(&b);
            fprintf(stderr, "goose configure: %s: %s\n", k.key, gd_strerror(e));
            return 1;
        }
        if (k.secret) {
            mask(w, b.len);
            if (b.data) explicit_bzero(b.data, b.len);
            buf_free(&b);
        } else {
            w->text = b.data ? buf_detach(&b) : strdup("");
            buf_free(&b);
            if (!w->text) {
                fprintf(stderr, "goose configure: out of memory\n");
                return 1;
            }
        }
    }

    /* The providers' API keys: the environment, else secrets.yaml (as agent_provider_key). */
    for (size_t p = 0; p < provider_ndefs; p++) {
        const char *name = provider_defs[p].key_env;
        bool seen = !name;
        for (size_t j = 0; j < r->n && !seen; j++)
            seen = !strcmp(r->v[j].env, name);
        if (seen) continue;
        row *w = &r->v[r->n++];
        *w = (row){.key = name, .env = name, .source = "default", .secret = true};
        const char *env = getenv(name);
        char val[API_KEY_MAX + 1];
        if (env && *env) {
            w->source = "env";
            mask(w, strlen(env));
        } else if (secrets_get(name, val, sizeof val)) {
            w->source = "secrets";
            mask(w, strlen(val));
            explicit_bzero(val, sizeof val);
        } else {
            mask(w, 0);
        }
    }

    /* The providers' addresses (agent_provider_for): the environment only, else the built-in. */
    for (size_t p = 0; p < provider_ndefs; p++) {
        const char *vars[2] = {provider_defs[p].host_env, provider_defs[p].path_env};
        const char *defs[2] = {provider_defs[p].default_host, provider_defs[p].default_path};
        for (int k = 0; k < 2; k++) {
            if (!vars[k] || find_row(r, vars[k])) continue;
            const char *env = getenv(vars[k]);
            row *h = &r->v[r->n++];
            *h = (row){.key = vars[k],
                       .env = vars[k],
                       .source = env && *env ? "env" : "default",
                       .text = strdup(env && *env ? env
                                      : defs[k]   ? defs[k]
                                                  : "")};
            if (!h->text) {
                fprintf(stderr, "goose configure: out of memory\n");
                return 1;
            }
        }
    }

    /* The server key (auth/user_settings.c): the environment, else server.key in the data
     * directory, made when the first user keeps an API key. */
    row *w = &r->v[r->n++];
    *w = (row){
        .key = "GOOSE_SERVER_KEY", .env = "GOOSE_SERVER_KEY", .source = "default", .secret = true};
    const char *sk = getenv("GOOSE_SERVER_KEY");
    char kf[PATH_MAX + 16];
    snprintf(kf, sizeof kf, "%s/server.key", r->cfg->data_dir);
    if (sk && *sk) {
        w->source = "env";
        mask(w, strlen(sk));
    } else if (access(kf, F_OK) == 0) {
        w->set = true;
        snprintf(w->masked, sizeof w->masked, "(set: server.key)");
    } else {
        snprintf(w->masked, sizeof w->masked, "(not set)");
    }
    return 0;
}

/* The row named name (its config.yaml key or its variable), or NULL. */
static row *find_row(rows *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].key, name) || !strcmp(r->v[i].env, name)) return &r->v[i];
    return NULL;
}

/* An unknown key's message, with the key it may have meant. Exit status 2. */
static int unknown_key(const char *cmd, const char *name)
{
    const char *hint = NULL;
    char prefixed[256];
    snprintf(prefixed, sizeof prefixed, "GOOSE_%s", name);
    for (size_t i = 0; i < config_nkeys() && !hint; i++) {
        config_key k = config_key_at(i);
        if (!strcasecmp(k.key, name) || !strcasecmp(k.env, name) || !strcasecmp(k.env, prefixed))
            hint = k.key;
    }
    for (size_t p = 0; p < provider_ndefs && !hint; p++)
        if (provider_defs[p].key_env && !strcasecmp(provider_defs[p].key_env, name))
            hint = provider_defs[p].key_env;
    if (!hint && !strcasecmp(name, "GOOSE_SERVER_KEY")) hint = "GOOSE_SERVER_KEY";
    if (hint)
        fprintf(stderr, "goose configure %s: unknown key \"%.100s\": did you mean %s?\n", cmd, name,
                hint);
    else
        fprintf(stderr,
                "goose configure %s: unknown key \"%.100s\" (goose configure list shows every "
                "key)\n",
                cmd, name);
    return 2;
}

/* A row's value as JSON: typed for a setting, the mask (or null) for a secret. */
static json_t *row_value_json(const row *w)
{
    if (w->secret) return w->set ? json_string(w->masked) : json_null();
    switch (w->type) {
    case CFG_T_INT:
        return json_integer(strtoll(w->text, NULL, 10));
    case CFG_T_BOOL:
        return json_boolean(!strcmp(w->text, "true"));
    case CFG_T_LIST: {
        json_t *a = json_array();
        for (const char *p = w->text; *p;) {
            size_t n = strcspn(p, ",");
            json_t *s = json_stringn(p, n);
            json_array_append_new(a, s ? s : json_string("(not UTF-8)"));
            p += n;
            if (*p) p++;
        }
        return a;
    }
    case CFG_T_STRING:
        break;
    }
    json_t *s = json_string(w->text);
    return s ? s : json_string("(not UTF-8)");
}

static json_t *row_json(const row *w)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:b}", "key", w->key, "env", w->env, "value",
                     row_value_json(w), "source", w->source, "secret", w->secret);
}

static int print_json(json_t *j)
{
    if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
        json_decref(j);
        fprintf(stderr, "goose configure: out of memory\n");
        return 1;
    }
    json_decref(j);
    putchar('\n');
    return 0;
}

/* s for a terminal: control characters (an escape sequence in an environment variable) as '?'. */
static void put_clean(const char *s, int width)
{
    int n = 0;
    for (; *s; s++, n++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    for (; n < width; n++)
        putchar(' ');
}

static const char *shown(const row *w)
{
    return w->secret ? w->masked : w->text[0] ? w->text : "\"\"";
}

/* Takes --json out of argv (in place); returns whether it was there. */
static bool take_flag(int *argc, char **argv, const char *flag)
{
    bool found = false;
    int o = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], flag))
            found = true;
        else
            argv[o++] = argv[i];
    }
    *argc = o;
    return found;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
    return false;
}

static int cmd_list(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(usage_list, stdout);
        return 0;
    }
    bool json = take_flag(&argc, argv, "--json");
    rows r;
    int rc = load_rows(&r, argc, argv);
    if (rc) {
        rows_free(&r);
        return rc;
    }
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < r.n; i++)
            json_array_append_new(a, row_json(&r.v[i]));
        rc = print_json(a);
        rows_free(&r);
        return rc;
    }
    const config *c = r.cfg;
    struct stat st;
    if (c->config_path[0])
        printf("config file:   %s%s\n", c->config_path,
               c->config_file[0] ? "" : " (not found: no setting comes from a file)");
    else
        printf("config file:   (none: HOME is not set)\n");
    if (r.secrets_path[0])
        printf("secrets file:  %s%s\n", r.secrets_path,
               stat(r.secrets_path, &st) == 0 ? "" : " (not found)");
    printf("data directory: %s\n\n", c->data_dir);

    int kw = 3, vw = 5;
    for (size_t i = 0; i < r.n; i++) {
        int kl = (int)strlen(r.v[i].key), vl = (int)strlen(shown(&r.v[i]));
        if (kl > kw) kw = kl;
        if (vl > vw) vw = vl;
    }
    if (vw > VALUE_COL) vw = VALUE_COL;
    printf("%-*s  %-*s  %-8s  %s\n", kw, "KEY", vw, "VALUE", "SOURCE", "ENVIRONMENT");
    for (size_t i = 0; i < r.n; i++) {
        const row *w = &r.v[i];
        printf("%-*s  ", kw, w->key);
        put_clean(shown(w), vw);
        printf("  %-8s  %s\n", w->source, w->env);
    }
    rows_free(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_get(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(usage_get, stdout);
        return 0;
    }
    bool json = take_flag(&argc, argv, "--json");
    if (argc < 2 || !strncmp(argv[1], "--", 2)) {
        fputs(usage_get, stderr);
        return 2;
    }
    const char *name = argv[1];
    argv[1] = argv[0]; /* the options after KEY are goosed's */
    rows r;
    int rc = load_rows(&r, argc - 1, argv + 1);
    const row *w = rc ? NULL : find_row(&r, name);
    if (!rc && !w) rc = unknown_key("get", name);
    if (!rc && json) rc = print_json(row_json(w));
    if (!rc && !json) {
        put_clean(w->secret ? w->masked : w->text, 0);
        putchar('\n');
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    rows_free(&r);
    return rc;
}

/* ---- set and unset: config.yaml (or secrets.yaml) edited line by line ---- */

struct line_edit {
    const char *key;
    const char *value; /* NULL: remove the entry */
    bool plain;        /* written as is (a number, true or false), else double-quoted */
    bool found;
};

/* Whether the line [p, end) is key's top-level entry: `key:` (or "key": or 'key':) at column 0,
 * then a blank or the end of the line. *after: where its value starts. */
static bool is_entry(const char *p, const char *end, const char *key, const char **after)
{
    size_t kl = strlen(key);
    char q = p < end && (*p == '"' || *p == '\'') ? *p : 0;
    const char *k = p + (q ? 1 : 0);
    if ((size_t)(end - k) < kl + 1 || strncmp(k, key, kl)) return false;
    const char *s = k + kl;
    if (q && (s >= end || *s++ != q)) return false;
    if (s >= end || *s++ != ':') return false;
    if (s < end && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return false;
    *after = s;
    return true;
}

/* A line that continues the entry above it: indented, or a list item at column 0. */
static bool continues(const char *p, const char *end)
{
    if (p >= end) return false;
    if (*p == ' ' || *p == '\t') return true;
    return *p == '-' && (p + 1 == end || p[1] == ' ' || p[1] == '\n' || p[1] == '\r');
}

/* Where the `  # comment` after an entry's value begins (its blanks included), or NULL. A quote
 * opening the value hides a '#' inside it. */
static const char *trailing_comment(const char *v, const char *end)
{
    const char *s = v;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    if (s < end && (*s == '"' || *s == '\'')) {
        char q = *s++;
        for (; s < end && *s != q; s++)
            if (q == '"' && *s == '\\' && s + 1 < end) s++;
        if (s < end) s++;
    }
    for (; s < end && *s != '\n' && *s != '\r'; s++) {
        if (*s == '#' && s > v && (s[-1] == ' ' || s[-1] == '\t')) {
            const char *c = s;
            while (c > v && (c[-1] == ' ' || c[-1] == '\t'))
                c--;
            return c;
        }
    }
    return NULL;
}

static gd_err put_entry(buf *out, const struct line_edit *c, const char *comment,
                        const char *comment_end)
{
    gd_err e = buf_printf(out, "%s: ", c->key);
    if (!e) e = c->plain ? buf_puts(out, c->value) : config_yaml_quote(out, c->value);
    if (!e && comment) e = buf_append(out, comment, (size_t)(comment_end - comment));
    return e ? e : buf_puts(out, "\n");
}

/* Whether text, read as goosed reads it (the first YAML document), has the change: key's value is
 * c->value, or key is gone. Else why says what is wrong. */
static bool has_change(const char *text, size_t len, const struct line_edit *c, char *why,
                       size_t whylen)
{
    yaml_document_t doc;
    if (!yamldoc_text(&doc, text, len, why, whylen)) return false;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const char *found = NULL;
    bool ok = true;
    if (root && root->type == YAML_MAPPING_NODE) {
        yaml_node_t *v = yamldoc_get(&doc, root, c->key);
        if (v) found = v->type == YAML_SCALAR_NODE ? (char *)v->data.scalar.value : "";
    } else if (root && !(root->type == YAML_SCALAR_NODE && !root->data.scalar.length)) {
        ok = false;
    }
    if (!ok)
        snprintf(why, whylen, "its top level is not a mapping");
    else if (c->value && (!found || strcmp(found, c->value)))
        snprintf(why, whylen, "%s would not read as the value given", c->key);
    else if (!c->value && found)
        snprintf(why, whylen, "%s would still be there", c->key);
    ok = ok && (c->value ? found && !strcmp(found, c->value) : !found);
    yaml_document_delete(&doc);
    return ok;
}

/* config_file_edit's callback: key's entry (with its continuation lines) replaced by `key: value`
 * (its trailing comment kept), or removed; a second entry of the key dropped; a new entry
 * appended. GD_ENOTFOUND when there was nothing to remove (the file is then not written). */
static gd_err edit_entry(const char *old, size_t oldlen, buf *out, void *vctx, char *err,
                         size_t errlen)
{
    struct line_edit *c = vctx;
    const char *p = old, *end = old + oldlen;
    gd_err e = GD_OK;
    while (p < end && !e) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        const char *after;
        if (!is_entry(p, next, c->key, &after)) {
            e = buf_append(out, p, (size_t)(next - p));
            if (!e && !nl) e = buf_puts(out, "\n");
            p = next;
            continue;
        }
        if (c->value && !c->found) {
            const char *eol = nl ? nl : end;
            if (eol > p && eol[-1] == '\r') eol--;
            const char *comment = trailing_comment(after, eol);
            e = put_entry(out, c, comment, eol);
        }
        c->found = true;
        for (p = next; continues(p, end);) {
            nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        }
    }
    if (!e && c->value && !c->found) e = put_entry(out, c, NULL, NULL);
    if (!e && !c->value && !c->found) {
        snprintf(err, errlen, "not set");
        return GD_ENOTFOUND;
    }
    char why[256];
    if (!e && !has_change(out->data ? out->data : "", out->len, c, why, sizeof why)) {
        snprintf(err, errlen,
                 "the change would leave the file unreadable (%s): edit it by hand (is it a "
                 "flow mapping, { ... }?)",
                 why);
        return GD_EINVAL;
    }
    return e;
}

/* A provider's API key variable, or NULL. */
static const char *provider_key(const char *name)
{
    for (size_t p = 0; p < provider_ndefs; p++)
        if (provider_defs[p].key_env && !strcmp(provider_defs[p].key_env, name))
            return provider_defs[p].key_env;
    return NULL;
}

/* set's and unset's arguments: KEY [VALUE] [--config FILE]. Returns 0, or 2 (said on stderr). */
static int edit_args(int argc, char **argv, int npos, const char **pos, const char **config_flag,
                     const char *use)
{
    int n = 0;
    *config_flag = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "goose configure: option \"--config\" needs a value\n");
                return 2;
            }
            *config_flag = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            *config_flag = a + 9;
        } else if (!strncmp(a, "--", 2) && n < npos) {
            fprintf(stderr, "goose configure: unknown option \"%.60s\"\n\n%s", a, use);
            return 2;
        } else if (n < npos) {
            pos[n++] = a;
        } else {
            fprintf(stderr, "goose configure: unexpected argument \"%.60s\"\n\n%s", a, use);
            return 2;
        }
    }
    if (n < npos) {
        fputs(use, stderr);
        return 2;
    }
    return 0;
}

/* Where config.yaml is (config_locate), and the directory holding it. */
static int locate(config *c, const char *config_flag, char *dir, size_t dirlen)
{
    char err[512];
    if (config_locate(c, config_flag, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goose configure: %s\n", err);
        return 1;
    }
    if (!c->config_path[0]) {
        fprintf(stderr, "goose configure: no config.yaml location: set HOME, XDG_CONFIG_HOME or "
                        "GOOSE_CONFIG_DIR, or give --config FILE\n");
        return 1;
    }
    dir_of(c->config_path, dir, dirlen);
    return 0;
}

/* The note after a change that the environment hides. */
static void env_note(const char *env)
{
    const char *v = getenv(env);
    if (v)
        fprintf(stderr,
                "note: %s is set in the environment, which takes precedence over the file\n", env);
}

static int cmd_set(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(usage_set, stdout);
        return 0;
    }
    const char *pos[2], *config_flag;
    int rc = edit_args(argc, argv, 2, pos, &config_flag, usage_set);
    if (rc) return rc;
    const char *name = pos[0], *value = pos[1];
    int i = config_key_find(name);
    const char *pk = i < 0 ? provider_key(name) : NULL;
    if (i < 0 && !pk && env_only(name)) return 2;
    if (i < 0 && !pk && !strcmp(name, "GOOSE_SERVER_KEY")) {
        fprintf(stderr, "goose configure set: GOOSE_SERVER_KEY is read from the environment only "
                        "(else goosed keeps server.key in its data directory)\n");
        return 2;
    }
    if (i < 0 && !pk) return unknown_key("set", name);

    char err[1024], dir[PATH_MAX];
    static config c;
    if ((rc = locate(&c, config_flag, dir, sizeof dir))) return rc;
    if (pk) {
        size_t len = strlen(value);
        bool ctl = false;
        for (const char *s = value; *s && !ctl; s++)
            ctl = (unsigned char)*s < 0x20;
        if (!len || len > API_KEY_MAX || ctl) {
            fprintf(stderr,
                    "goose configure set: %s: expected an API key of 1..%d bytes without control "
                    "characters\n",
                    pk, API_KEY_MAX);
            return 1;
        }
        if (secrets_load(dir, err, sizeof err) != GD_OK) {
            fprintf(stderr, "goose configure set: %s (fix or remove it first)\n", err);
            return 1;
        }
        if (secrets_set(pk, value, err, sizeof err) != GD_OK) {
            fprintf(stderr, "goose configure set: %s\n", err);
            return 1;
        }
        printf("%s: (set, %zu chars) in %s/secrets.yaml\n", pk, len, dir);
        env_note(pk);
        return 0;
    }

    config_key k = config_key_at((size_t)i);
    if (config_check((size_t)i, value, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goose configure set: %s\n", err);
        return 1;
    }
    struct line_edit ed = {
        .key = k.key, .value = value, .plain = k.type == CFG_T_INT || k.type == CFG_T_BOOL};
    if (config_file_edit(c.config_path, edit_entry, &ed, err, sizeof err) != GD_OK) {
        fprintf(stderr, "goose configure set: %s: %s\n", c.config_path, err);
        return 1;
    }
    if (k.secret)
        printf("%s: (set, %zu chars) in %s\n", k.key, strlen(value), c.config_path);
    else
        printf("%s: %s in %s\n", k.key, value, c.config_path);
    env_note(k.env);
    return 0;
}

static int cmd_unset(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        fputs(usage_unset, stdout);
        return 0;
    }
    const char *pos[1], *config_flag;
    int rc = edit_args(argc, argv, 1, pos, &config_flag, usage_unset);
    if (rc) return rc;
    const char *name = pos[0];
    int i = config_key_find(name);
    const char *pk = i < 0 ? provider_key(name) : NULL;
    if (i < 0 && !pk && env_only(name)) return 2;
    if (i < 0 && !pk && !strcmp(name, "GOOSE_SERVER_KEY")) {
        fprintf(stderr, "goose configure unset: GOOSE_SERVER_KEY is read from the environment "
                        "only: unset it there\n");
        return 2;
    }
    if (i < 0 && !pk) return unknown_key("unset", name);

    char err[1024], dir[PATH_MAX], path[PATH_MAX + 16];
    static config c;
    if ((rc = locate(&c, config_flag, dir, sizeof dir))) return rc;
    const char *key = pk ? pk : config_key_at((size_t)i).key;
    const char *env = pk ? pk : config_key_at((size_t)i).env;
    if (pk)
        snprintf(path, sizeof path, "%s/secrets.yaml", dir);
    else
        snprintf(path, sizeof path, "%s", c.config_path);
    struct line_edit ed = {.key = key};
    gd_err e = access(path, F_OK) == 0 ? config_file_edit(path, edit_entry, &ed, err, sizeof err)
                                       : GD_ENOTFOUND;
    if (e == GD_ENOTFOUND) {
        printf("%s was not set in %s\n", key, path);
    } else if (e) {
        fprintf(stderr, "goose configure unset: %s: %s\n", path, err);
        return 1;
    } else {
        printf("%s removed from %s\n", key, path);
    }
    env_note(env);
    return 0;
}

int cli_configure(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (!sub) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    /* Quiet unless something is wrong: secrets_set's "stored secret" line is for the server's
     * log. A RUST_LOG the configuration names applies again in config_load. */
    char lerr[128];
    log_configure("warn", lerr, sizeof lerr);
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } subs[] = {{"list", cmd_list}, {"get", cmd_get}, {"set", cmd_set}, {"unset", cmd_unset}};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(sub, subs[i].name)) return subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "goose configure: unknown command \"%.60s\"\n\n%s", sub, usage);
    return 2;
}
