/* ext_config: the configured extensions (config.yaml's `extensions:` map), their checks, and
 * writing changes back to config.yaml keeping every other line as it was.
 *
 * The set is an immutable jansson object name -> checked config, replaced as a whole on every
 * change (a shallow copy sharing the unchanged entries), so a snapshot is one reference taken
 * under the mutex. Write-back edits the text of config.yaml: only the entry that changed is
 * rendered again; every other entry, comment and key keeps its bytes. */
#include "extensions/ext_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "config/secrets.h"
#include "config/yamldoc.h"
#include "core/buf.h"
#include "core/log.h"
#include "extensions/allowlist.h"

#define MAX_LIST_ITEMS 1024       /* args, env_keys, available_tools; envs and headers */
#define MAX_STRING     (32 << 10) /* bytes of one cmd, arg, env value, header value, uri */
#define MAX_TIMEOUT_S  86400
#define YAML_MAX_DEPTH 32

/* ---- names ---- */

gd_err ext_name_key(const char *name, char *key, size_t keylen, char *err, size_t errlen)
{
    size_t n = 0;
    bool toolong = false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        char c;
        if (isalnum(*p) && *p < 0x80)
            c = (char)tolower(*p);
        else if (*p == '_' || *p == '-')
            c = (char)*p;
        else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            continue;
        else if ((*p & 0xC0) == 0x80)
            continue; /* a UTF-8 continuation byte: its character became one '_' already */
        else
            c = '_';
        if (n + 1 >= keylen || n >= EXT_KEY_MAX) {
            toolong = true;
            break;
        }
        key[n++] = c;
    }
    if (keylen) key[n < keylen ? n : keylen - 1] = '\0';
    if (toolong) {
        snprintf(err, errlen, "name: '%.80s' is longer than %d characters", name, EXT_KEY_MAX);
        return GD_EINVAL;
    }
    if (!n) {
        snprintf(err, errlen,
                 "name: '%.80s' has no letter, digit, '_' or '-': an extension needs a name", name);
        return GD_EINVAL;
    }
    if (strstr(key, "__")) {
        snprintf(err, errlen,
                 "name: '%.80s' holds \"__\", which separates an extension's name from its tools' "
                 "names",
                 name);
        return GD_EINVAL;
    }
    return GD_OK;
}

/* ---- checking one config ---- */

static const char *const known_types[] = {"builtin", "stdio", "streamable_http", "sse"};

bool ext_config_supported(const json_t *cfg)
{
    return !json_is_false(json_object_get(cfg, "supported"));
}

/* Whether s (of len bytes, from JSON) is free of NUL, and also of CR and LF when `line`. */
static bool clean_string(const json_t *v, bool line)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (strlen(s) != len) return false;
    return !line || !strpbrk(s, "\r\n");
}

static bool env_name_ok(const char *s)
{
    if (!*s || isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

static bool header_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
            strchr("()<>@,;:\\\"/[]?={}", *s))
            return false;
    return true;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return false;                                                                              \
    } while (0)

/* out[key] = a list of strings from cfg[key] (absent or null: []). */
static bool check_strings(const char *name, json_t *out, const json_t *cfg, const char *key,
                          bool line, bool envname, char *err, size_t errlen)
{
    json_t *v = json_object_get(cfg, key);
    json_t *arr = json_array();
    json_object_set_new(out, key, arr);
    if (!v || json_is_null(v)) return true;
    if (!json_is_array(v)) FAIL("%s: %s: must be a list of strings", name, key);
    if (json_array_size(v) > MAX_LIST_ITEMS)
        FAIL("%s: %s: more than %d items", name, key, MAX_LIST_ITEMS);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        if (!json_is_string(it)) FAIL("%s: %s[%zu]: must be a string", name, key, i);
        if (json_string_length(it) > MAX_STRING)
            FAIL("%s: %s[%zu]: longer than %d bytes", name, key, i, MAX_STRING);
        if (!clean_string(it, line))
            FAIL("%s: %s[%zu]: must not hold a NUL%s", name, key, i,
                 line ? " or a line break" : "");
        if (envname && !env_name_ok(json_string_value(it)))
            FAIL("%s: %s[%zu]: '%.60s' is not an environment variable name", name, key, i,
                 json_string_value(it));
        json_array_append(arr, it);
    }
    return true;
}

static char reserved_header[128]; /* ext_config_reserve_header */

void ext_config_reserve_header(const char *name)
{
    snprintf(reserved_header, sizeof reserved_header, "%s", name ? name : "");
}

/* out[key] = a map of names to strings from cfg[key] (absent or null: {}); numbers and
 * booleans (YAML's `PORT: 8080`) become strings. */
static bool check_map(const char *name, json_t *out, const json_t *cfg, const char *key,
                      bool headers, char *err, size_t errlen)
{
    json_t *v = json_object_get(cfg, key);
    json_t *obj = json_object();
    json_object_set_new(out, key, obj);
    if (!v || json_is_null(v)) return true;
    if (!json_is_object(v)) FAIL("%s: %s: must be a map of names to strings", name, key);
    if (json_object_size(v) > MAX_LIST_ITEMS)
        FAIL("%s: %s: more than %d items", name, key, MAX_LIST_ITEMS);
    const char *k;
    json_t *it;
    json_object_foreach((json_t *)v, k, it)
    {
        if (headers ? !header_name_ok(k) : !env_name_ok(k))
            FAIL("%s: %s: '%.60s' is not %s", name, key, k,
                 headers ? "an HTTP header name" : "an environment variable name");
        if (headers && reserved_header[0] && !strcasecmp(k, reserved_header))
            FAIL("%s: headers: %s is the header goosed takes its users' names from "
                 "(trusted_proxy_header): an extension must not send it",
                 name, k);
        json_t *sv;
        if (json_is_string(it)) {
            if (json_string_length(it) > MAX_STRING)
                FAIL("%s: %s.%s: longer than %d bytes", name, key, k, MAX_STRING);
            if (!clean_string(it, headers))
                FAIL("%s: %s.%s: must not hold a NUL%s", name, key, k,
                     headers ? " or a line break" : "");
            sv = json_incref(it);
        } else if (json_is_integer(it)) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(it));
            sv = json_string(tmp);
        } else if (json_is_boolean(it)) {
            sv = json_string(json_is_true(it) ? "true" : "false");
        } else {
            FAIL("%s: %s.%s: must be a string", name, key, k);
        }
        json_object_set_new(obj, k, sv);
    }
    return true;
}

/* out.oauth = cfg.oauth when given: a remote server's OAuth client registered beforehand
 * (extensions/mcp/oauth.h), its values strings (secrets: masked and sealed as headers are). */
static bool check_oauth(const char *name, json_t *out, const json_t *cfg, char *err, size_t errlen)
{
    static const char *const keys[] = {"client_id", "client_secret", "private_key", "scope"};
    json_t *v = json_object_get(cfg, "oauth");
    json_object_del(out, "oauth");
    if (!v || json_is_null(v)) return true;
    if (!json_is_object(v))
        FAIL("%s: oauth: must be a map (client_id, client_secret or private_key, scope)", name);
    const char *k;
    json_t *it;
    json_object_foreach((json_t *)v, k, it)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            known = known || !strcmp(k, keys[i]);
        if (!known)
            FAIL("%s: oauth: '%.60s' is not one of client_id, client_secret, private_key, scope",
                 name, k);
        if (!json_is_string(it) || !json_string_length(it))
            FAIL("%s: oauth.%s: must be a string", name, k);
        if (json_string_length(it) > MAX_STRING)
            FAIL("%s: oauth.%s: longer than %d bytes", name, k, MAX_STRING);
        if (!clean_string(it, strcmp(k, "private_key") != 0))
            FAIL("%s: oauth.%s: must not hold a NUL%s", name, k,
                 strcmp(k, "private_key") ? " or a line break" : "");
    }
    if (!json_object_get(v, "client_id") &&
        (json_object_get(v, "client_secret") || json_object_get(v, "private_key")))
        FAIL("%s: oauth: a client_secret or private_key goes with its client_id", name);
    if (json_object_get(v, "client_secret") && json_object_get(v, "private_key"))
        FAIL("%s: oauth: a client_secret or a private_key, not both", name);
    json_object_set_new(out, "oauth", json_deep_copy(v));
    return true;
}

/* out[key] = cfg[key] as a string (absent or null: ""). */
static bool check_string(const char *name, json_t *out, const json_t *cfg, const char *key,
                         bool line, char *err, size_t errlen)
{
    json_t *v = json_object_get(cfg, key);
    if (!v || json_is_null(v)) {
        json_object_set_new(out, key, json_string(""));
        return true;
    }
    if (!json_is_string(v)) FAIL("%s: %s: must be a string", name, key);
    if (json_string_length(v) > MAX_STRING)
        FAIL("%s: %s: longer than %d bytes", name, key, MAX_STRING);
    if (!clean_string(v, line))
        FAIL("%s: %s: must not hold a NUL%s", name, key, line ? " or a line break" : "");
    json_object_set(out, key, v);
    return true;
}

static bool check_all(const char *name, json_t *out, const json_t *cfg, char *err, size_t errlen)
{
    /* the user's other keys first, as they are (allow_shell, display_name, ...) */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)cfg, k, v)
    {
        if (strcmp(k, "supported") && strcmp(k, "invalid") && strcmp(k, "refused"))
            json_object_set(out, k, v);
    }
    json_object_set_new(out, "name", json_string(name));

    json_t *type = json_object_get(cfg, "type");
    if (!type || json_is_null(type)) {
        if (strcmp(name, "developer") != 0)
            FAIL("%s: type: required (builtin, stdio, streamable_http or sse)", name);
        type = json_string("builtin");
        json_object_set_new(out, "type", type);
    } else if (!json_is_string(type) || !json_string_length(type) || !clean_string(type, true)) {
        FAIL("%s: type: must be builtin, stdio, streamable_http or sse", name);
    }
    const char *t = json_string_value(json_object_get(out, "type"));
    bool known = false;
    for (size_t i = 0; i < sizeof known_types / sizeof *known_types; i++)
        known = known || !strcmp(t, known_types[i]);
    bool supported = known && (strcmp(t, "builtin") != 0 || !strcmp(name, "developer"));

    json_t *en = json_object_get(cfg, "enabled");
    if (en && !json_is_null(en) && !json_is_boolean(en))
        FAIL("%s: enabled: must be true or false", name);
    json_object_set_new(out, "enabled", json_boolean(!en || !json_is_false(en)));

    json_t *to = json_object_get(cfg, "timeout");
    if (to && !json_is_null(to) &&
        (!json_is_integer(to) || json_integer_value(to) < 1 ||
         json_integer_value(to) > MAX_TIMEOUT_S))
        FAIL("%s: timeout: must be a number of seconds 1..%d", name, MAX_TIMEOUT_S);
    json_object_set_new(out, "timeout",
                        to && !json_is_null(to) ? json_integer(json_integer_value(to))
                                                : json_integer(EXT_DEFAULT_TIMEOUT_S));

    json_t *bu = json_object_get(cfg, "bundled");
    if (bu && !json_is_null(bu) && !json_is_boolean(bu))
        FAIL("%s: bundled: must be true or false", name);
    json_object_set_new(out, "bundled", json_boolean(bu && json_is_true(bu)));

    json_t *dn = json_object_get(cfg, "display_name");
    if (dn && !json_is_null(dn) && !json_is_string(dn))
        FAIL("%s: display_name: must be a string", name);
    json_t *cn = json_object_get(cfg, "name");
    if (cn && !json_is_null(cn) && !json_is_string(cn)) FAIL("%s: name: must be a string", name);
    if (json_is_string(cn) && strcmp(json_string_value(cn), name) != 0 && (!dn || json_is_null(dn)))
        json_object_set(out, "display_name", cn);

    if (!check_string(name, out, cfg, "description", false, err, errlen) ||
        !check_string(name, out, cfg, "cmd", true, err, errlen) ||
        !check_string(name, out, cfg, "uri", true, err, errlen) ||
        !check_strings(name, out, cfg, "args", true, false, err, errlen) ||
        !check_strings(name, out, cfg, "env_keys", true, true, err, errlen) ||
        !check_strings(name, out, cfg, "available_tools", true, false, err, errlen) ||
        !check_map(name, out, cfg, "envs", false, err, errlen) ||
        !check_map(name, out, cfg, "headers", true, err, errlen) ||
        !check_oauth(name, out, cfg, err, errlen))
        return false;

    if (!strcmp(t, "stdio") && !json_string_length(json_object_get(out, "cmd")))
        FAIL("%s: cmd: a command is required for type stdio", name);
    if (!strcmp(t, "streamable_http") || !strcmp(t, "sse")) {
        const char *uri = json_string_value(json_object_get(out, "uri"));
        if (!*uri) FAIL("%s: uri: a URL is required for type %s", name, t);
        if (strncmp(uri, "http://", 7) != 0 && strncmp(uri, "https://", 8) != 0)
            FAIL("%s: uri: '%.80s' is not an http:// or https:// URL", name, uri);
        for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
            if (*p <= 0x20 || *p == 0x7f) FAIL("%s: uri: must not hold spaces or controls", name);
    }
    if (!strcmp(t, "builtin") && !strcmp(name, "developer")) {
        json_t *as = json_object_get(cfg, "allow_shell");
        if (as && !json_is_null(as) && !json_is_boolean(as))
            FAIL("%s: allow_shell: must be true or false", name);
    }
    if (!supported) json_object_set_new(out, "supported", json_false());
    return true;
}
#undef FAIL

json_t *ext_config_check(const char *name, const json_t *cfg, char *err, size_t errlen)
{
    char key[EXT_KEY_MAX + 1];
    if (ext_name_key(name, key, sizeof key, err, errlen) != GD_OK) return NULL;
    if (!json_is_object(cfg)) {
        snprintf(err, errlen, "%s: its configuration must be a mapping of keys to values", key);
        return NULL;
    }
    /* a copy, so that the result shares nothing with the caller's object */
    json_t *copy = json_deep_copy(cfg);
    json_t *out = json_object();
    if (!out || !copy) {
        json_decref(out);
        json_decref(copy);
        snprintf(err, errlen, "%s: out of memory", key);
        return NULL;
    }
    if (!check_all(key, out, copy, err, errlen)) {
        json_decref(out);
        out = NULL;
    }
    json_decref(copy);
    return out;
}

/* An entry of config.yaml that did not pass the check: kept as written, unsupported, with why. */
static json_t *invalid_entry(const char *key, const json_t *raw, const char *why)
{
    json_t *out = json_is_object(raw) ? json_deep_copy(raw) : json_object();
    if (!out) return NULL;
    json_object_set_new(out, "name", json_string(key));
    if (!json_is_string(json_object_get(out, "type")))
        json_object_set_new(out, "type", json_string("unknown"));
    if (!json_is_boolean(json_object_get(out, "enabled")))
        json_object_set_new(out, "enabled", json_false());
    json_object_set_new(out, "supported", json_false());
    json_object_set_new(out, "invalid", json_string(why));
    return out;
}

/* ---- YAML -> JSON ---- */

/* A plain scalar resolved as YAML 1.2's core schema does (what serde_yaml reads). */
static json_t *plain_scalar(const char *s, size_t len)
{
    if (!len || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return json_false();
    const char *d = s + (*s == '-' || *s == '+');
    if (*d >= '0' && *d <= '9') {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*end && !errno) return json_integer(v);
        double f = strtod(s, &end);
        if (!*end && (size_t)(end - s) == len) return json_real(f);
    }
    return json_stringn(s, len);
}

static json_t *yaml_to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > YAML_MAX_DEPTH) return json_null();
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) return plain_scalar(s, len);
        return json_stringn(s, len);
    }
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++)
            json_array_append_new(a,
                                  yaml_to_json(doc, yaml_document_get_node(doc, *it), depth + 1));
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) continue;
            json_object_setn_new(
                o, (const char *)k->data.scalar.value, k->data.scalar.length,
                yaml_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1));
        }
        return o;
    }
    case YAML_NO_NODE:
        break;
    }
    return json_null();
}

/* ---- the set ---- */

struct ext_set {
    pthread_mutex_t mu;  /* map and gen */
    pthread_mutex_t wmu; /* one change at a time (taken before mu, held across the file write) */
    json_t *map;         /* name -> checked config; never modified once published */
    unsigned gen;
    char path[PATH_MAX]; /* config.yaml that changes are written to */
};

static json_t *developer_default(void)
{
    char err[256];
    json_t *raw = json_pack("{s:b, s:s, s:s, s:s, s:i, s:b}", "enabled", 1, "type", "builtin",
                            "name", "developer", "display_name", "Developer", "timeout",
                            EXT_DEFAULT_TIMEOUT_S, "bundled", 1);
    json_t *c = ext_config_check("developer", raw, err, sizeof err);
    json_decref(raw);
    return c;
}

/* The allowlist's verdict on an enabled stdio entry read at start: refused ones are kept, marked.
 */
static json_t *mark_refused(json_t *c, const char *path)
{
    if (!json_is_true(json_object_get(c, "enabled")) || !ext_config_supported(c)) return c;
    char why[512];
    if (allowlist_check(c, why, sizeof why) == GD_OK) return c;
    log_warn("extensions", "%s: extension %s not started: %s", path,
             json_string_value(json_object_get(c, "name")), why);
    json_object_set_new(c, "refused", json_string(why));
    return c;
}

/* The entries of the `extensions:` map of path, into map; false when there is no map. */
static bool load_map(const char *path, json_t *map)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT) log_warn("extensions", "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    yaml_document_t doc;
    char why[512];
    bool have = false;
    if (!yamldoc_file(&doc, f, path, why, sizeof why)) {
        log_warn("extensions", "%s: extensions not read", why);
        fclose(f);
        return false;
    }
    yaml_node_t *ext = yamldoc_get(&doc, yaml_document_get_root_node(&doc), "extensions");
    if (ext && ext->type == YAML_MAPPING_NODE) {
        have = true;
        for (yaml_node_pair_t *p = ext->data.mapping.pairs.start; p < ext->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
            if (!kn || kn->type != YAML_SCALAR_NODE) {
                log_warn("extensions", "%s: an extension's name is not a string: skipped", path);
                continue;
            }
            const char *raw_name = (const char *)kn->data.scalar.value;
            char key[EXT_KEY_MAX + 1], err[512];
            if (ext_name_key(raw_name, key, sizeof key, err, sizeof err) != GD_OK) {
                log_warn("extensions", "%s:%zu: extensions: %s: skipped", path,
                         kn->start_mark.line + 1, err);
                continue;
            }
            if (json_object_get(map, key)) {
                log_warn("extensions", "%s:%zu: extensions: a second entry named %s: skipped", path,
                         kn->start_mark.line + 1, key);
                continue;
            }
            yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
            json_t *raw = yaml_to_json(&doc, vn, 0);
            json_t *c = ext_config_check(key, raw, err, sizeof err);
            if (!c) {
                log_warn("extensions", "%s:%zu: extensions: %s (kept, not started)", path,
                         vn ? vn->start_mark.line + 1 : 0, err);
                c = invalid_entry(key, raw, err);
            } else if (!ext_config_supported(c)) {
                log_info("extensions", "%s: extension %s of type %s is not supported: listed only",
                         path, key, json_string_value(json_object_get(c, "type")));
            } else {
                c = mark_refused(c, path);
            }
            json_decref(raw);
            if (c) json_object_set_new(map, key, c);
        }
    } else if (ext && !(ext->type == YAML_SCALAR_NODE &&
                        (ext->data.scalar.length == 0 ||
                         !strcmp((const char *)ext->data.scalar.value, "null") ||
                         !strcmp((const char *)ext->data.scalar.value, "~")))) {
        log_warn("extensions", "%s:%zu: extensions: expected a mapping of names to configs", path,
                 ext->start_mark.line + 1);
    }
    yaml_document_delete(&doc);
    fclose(f);
    return have;
}

ext_set *ext_set_load(const config *cfg)
{
    ext_set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->wmu, NULL);
    snprintf(s->path, sizeof s->path, "%s",
             cfg->config_file[0] ? cfg->config_file : cfg->config_path);
    s->map = json_object();
    if (!s->map) {
        ext_set_free(s);
        return NULL;
    }
    if (!cfg->config_file[0] || !load_map(cfg->config_file, s->map)) {
        json_t *dev = developer_default();
        if (!dev || json_object_set_new(s->map, "developer", dev) != 0) {
            ext_set_free(s);
            return NULL;
        }
    }
    size_t n = json_object_size(s->map);
    log_info("extensions", "%zu extension%s configured", n, n == 1 ? "" : "s");
    return s;
}

void ext_set_free(ext_set *s)
{
    if (!s) return;
    json_decref(s->map);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->wmu);
    free(s);
}

json_t *ext_set_snapshot(ext_set *s, unsigned *gen)
{
    pthread_mutex_lock(&s->mu);
    json_t *m = json_incref(s->map);
    if (gen) *gen = s->gen;
    pthread_mutex_unlock(&s->mu);
    return m;
}

/* ---- rendering YAML ---- */

/* Whether s can be written as a plain scalar that reads back as the same string. */
static bool plain_ok(const char *s)
{
    if (!*s) return false;
    if (!isalpha((unsigned char)*s) && *s != '_' && *s != '/') return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-./@+=", *p)) return false;
    static const char *const special[] = {"true", "false", "null", "yes", "no",
                                          "on",   "off",   "y",    "n"};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        if (!strcasecmp(s, special[i])) return false;
    return true;
}

static gd_err put_str(buf *b, const char *s)
{
    return plain_ok(s) ? buf_puts(b, s) : config_yaml_quote(b, s);
}

static gd_err put_scalar(buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return put_str(b, json_string_value(v));
    case JSON_INTEGER:
        return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return buf_printf(b, "%.17g", json_real_value(v));
    case JSON_TRUE:
        return buf_puts(b, "true");
    case JSON_FALSE:
        return buf_puts(b, "false");
    case JSON_NULL:
        return buf_puts(b, "null");
    default: {
        /* deeper structures: JSON, which YAML reads as flow style */
        char *j = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!j) return GD_ENOMEM;
        gd_err e = buf_puts(b, j);
        free(j);
        return e;
    }
    }
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

static bool all_scalars(const json_t *v)
{
    size_t i;
    const char *k;
    json_t *it;
    if (json_is_array(v)) {
        json_array_foreach(v, i, it) if (!is_scalar(it)) return false;
    } else {
        json_object_foreach((json_t *)v, k, it) if (!is_scalar(it)) return false;
    }
    return true;
}

/* `key: value` at indent, with a list or map of scalars in block style below. */
static gd_err put_field(buf *b, int indent, const char *key, const json_t *v)
{
    gd_err e = buf_printf(b, "%*s", indent, "");
    if (!e) e = put_str(b, key);
    if (!e) e = buf_puts(b, ":");
    bool empty =
        (json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v));
    if (empty) return e ? e : buf_puts(b, json_is_array(v) ? " []\n" : " {}\n");
    if (is_scalar(v) || !all_scalars(v)) {
        if (!e) e = buf_puts(b, " ");
        if (!e) e = put_scalar(b, v);
        return e ? e : buf_puts(b, "\n");
    }
    if (!e) e = buf_puts(b, "\n");
    size_t i;
    const char *k;
    json_t *it;
    if (json_is_array(v)) {
        json_array_foreach(v, i, it)
        {
            if (!e) e = buf_printf(b, "%*s- ", indent + 2, "");
            if (!e) e = put_scalar(b, it);
            if (!e) e = buf_puts(b, "\n");
        }
    } else {
        json_object_foreach((json_t *)v, k, it)
        {
            if (!e) e = put_field(b, indent + 2, k, it);
        }
    }
    return e;
}

/* Whether a normalized key is worth writing for this type (the type's own fields always; others
 * only when they say something). Derived keys never. */
static bool worth_writing(const char *type, const char *k, const json_t *v)
{
    if (!strcmp(k, "supported") || !strcmp(k, "invalid") || !strcmp(k, "refused")) return false;
    static const char *const stdio_keys[] = {"cmd", "args", NULL};
    static const char *const http_keys[] = {"uri", NULL};
    static const char *const optional[] = {
        "cmd",     "args",    "envs",        "env_keys",        "uri",
        "headers", "bundled", "description", "available_tools", NULL};
    const char *const *own = !strcmp(type, "stdio")                                     ? stdio_keys
                             : !strcmp(type, "streamable_http") || !strcmp(type, "sse") ? http_keys
                                                                                        : NULL;
    for (size_t i = 0; own && own[i]; i++)
        if (!strcmp(own[i], k)) return true;
    bool opt = false;
    for (size_t i = 0; optional[i]; i++)
        opt = opt || !strcmp(optional[i], k);
    if (!opt) return true;
    if (json_is_false(v)) return false;
    if (json_is_string(v)) return json_string_length(v) > 0;
    if (json_is_array(v)) return json_array_size(v) > 0;
    if (json_is_object(v)) return json_object_size(v) > 0;
    return true;
}

/* One entry of the map, `name:` at indent and its fields below. */
static gd_err render_entry(buf *b, int indent, const char *name, const json_t *c)
{
    gd_err e = buf_printf(b, "%*s", indent, "");
    if (!e) e = put_str(b, name);
    if (!e) e = buf_puts(b, ":\n");
    const char *type = json_string_value(json_object_get(c, "type"));
    if (!type) type = "";
    static const char *const first[] = {"enabled", "type", "name"};
    for (size_t i = 0; i < 3 && !e; i++) {
        json_t *v = json_object_get(c, first[i]);
        if (v) e = put_field(b, indent + 2, first[i], v);
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c, k, v)
    {
        if (e) break;
        if (!strcmp(k, "enabled") || !strcmp(k, "type") || !strcmp(k, "name")) continue;
        if (worth_writing(type, k, v)) e = put_field(b, indent + 2, k, v);
    }
    return e;
}

/* The whole map, as the block of `extensions:` ("extensions: {}" when empty). */
static gd_err render_block(buf *b, const json_t *map)
{
    if (!json_object_size(map)) return buf_puts(b, "extensions: {}\n");
    gd_err e = buf_puts(b, "extensions:\n");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)map, k, v)
    {
        if (!e) e = render_entry(b, 2, k, v);
    }
    return e;
}

/* ---- finding the block and its entries in config.yaml's text ---- */

typedef struct {
    const char *s; /* the line */
    size_t len;    /* with its newline */
    int indent;
    bool blank; /* only spaces, or a comment */
} line;

static line line_at(const char *p, const char *end)
{
    line l = {p, 0, 0, true};
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    l.len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    while (l.indent < (int)l.len && p[l.indent] == ' ')
        l.indent++;
    char c = l.indent < (int)l.len ? p[l.indent] : '\n';
    l.blank = c == '\n' || c == '\r' || c == '#';
    return l;
}

/* The key at the start of a line (after its indent), unquoted, into out; the position after
 * its ':' in *after. false when the line is not `key:`. */
static bool line_key(const line *l, char *out, size_t outlen, const char **after)
{
    const char *p = l->s + l->indent, *end = l->s + l->len;
    size_t n = 0;
    if (p < end && (*p == '"' || *p == '\'')) {
        char q = *p++;
        while (p < end && *p != q && *p != '\n') {
            if (q == '"' && *p == '\\' && p + 1 < end) p++;
            if (n + 1 < outlen) out[n++] = *p;
            p++;
        }
        if (p >= end || *p != q) return false;
        p++;
        while (p < end && *p == ' ')
            p++;
        if (p >= end || *p != ':') return false;
    } else {
        while (p < end && *p != '\n' &&
               !(*p == ':' && (p + 1 == end || p[1] == ' ' || p[1] == '\n' || p[1] == '\r'))) {
            if (*p == '#' && p > l->s && p[-1] == ' ') return false;
            if (n + 1 < outlen) out[n++] = *p;
            p++;
        }
        if (p >= end || *p != ':') return false;
        while (n && out[n - 1] == ' ')
            n--;
    }
    out[n] = '\0';
    *after = p + 1;
    return true;
}

/* Whether what follows a key's ':' is nothing (a comment at most): its value is on the next
 * lines. */
static bool value_below(const char *after, const char *end)
{
    while (after < end && *after == ' ')
        after++;
    return after == end || *after == '\n' || *after == '\r' || *after == '#';
}

typedef struct {
    const char *start, *end;   /* the entry: its key line to the end of its last content line */
    char key[EXT_KEY_MAX + 1]; /* normalized */
} entry_span;

#define MAX_ENTRIES 256

typedef struct {
    bool found;              /* a top-level `extensions:` key */
    bool below;              /* its value is on the following lines */
    const char *start, *end; /* its key line to the end of its last content line */
    int indent;              /* the entries' (0: none) */
    int n;
    entry_span e[MAX_ENTRIES];
} block;

static void find_block(const char *text, size_t len, block *bl)
{
    memset(bl, 0, sizeof *bl);
    const char *p = text, *end = text + len;
    while (p < end) {
        line l = line_at(p, end);
        char key[64];
        const char *after;
        if (!l.blank && l.indent == 0 && line_key(&l, key, sizeof key, &after) &&
            !strcmp(key, "extensions")) {
            bl->found = true;
            bl->below = value_below(after, end);
            bl->start = p;
            bl->end = p + l.len;
            break;
        }
        p += l.len;
    }
    if (!bl->found) return;
    /* the block goes on while lines are indented (or blank) */
    entry_span *cur = NULL;
    for (p = bl->end; p < end;) {
        line l = line_at(p, end);
        if (!l.blank && l.indent == 0) break;
        if (!l.blank) {
            bl->end = p + l.len;
            if (bl->below && !bl->indent) bl->indent = l.indent;
            if (bl->below && l.indent == bl->indent) {
                const char *after;
                char raw[512], err[256];
                cur = bl->n < MAX_ENTRIES ? &bl->e[bl->n++] : NULL;
                if (cur) {
                    cur->start = p;
                    /* a bad name matches no entry */
                    if (!line_key(&l, raw, sizeof raw, &after) ||
                        ext_name_key(raw, cur->key, sizeof cur->key, err, sizeof err) != GD_OK)
                        cur->key[0] = '\0';
                }
            }
            if (cur) cur->end = p + l.len;
        }
        p += l.len;
    }
}

static entry_span *find_entry(block *bl, const char *name)
{
    for (int i = 0; i < bl->n; i++)
        if (!strcmp(bl->e[i].key, name)) return &bl->e[i];
    return NULL;
}

typedef enum { EDIT_PUT, EDIT_ENABLE, EDIT_REMOVE } edit_kind;

struct edit_ctx {
    edit_kind kind;
    const char *name;
    const json_t *entry;  /* PUT, ENABLE: the new config */
    const json_t *newmap; /* the whole map after the change */
    bool enabled;
};

/* ENABLE's light touch: the `enabled: true|false` line of a block-style entry, value replaced.
 * false when the entry has no such line. */
static bool flip_line(const entry_span *es, bool enabled, const char *text, const char *textend,
                      buf *out, gd_err *e)
{
    const char *end = es->end;
    line first = line_at(es->start, end);
    const char *after;
    char key[128];
    if (!line_key(&first, key, sizeof key, &after) || !value_below(after, end)) return false;
    int child = -1;
    for (const char *p = es->start + first.len; p < end;) {
        line l = line_at(p, end);
        if (!l.blank && child < 0) child = l.indent;
        if (!l.blank && l.indent == child && line_key(&l, key, sizeof key, &after) &&
            !strcmp(key, "enabled")) {
            const char *v = after;
            while (v < end && *v == ' ')
                v++;
            size_t vl = strcspn(v, " \r\n#");
            if (!((vl == 4 && !strncmp(v, "true", 4)) || (vl == 5 && !strncmp(v, "false", 5))))
                return false;
            *e = buf_append(out, text, (size_t)(v - text));
            if (!*e) *e = buf_puts(out, enabled ? "true" : "false");
            if (!*e) *e = buf_append(out, v + vl, (size_t)(textend - (v + vl)));
            return true;
        }
        p += l.len;
    }
    return false;
}

/* config_file_edit's callback: the text with the change made. */
static gd_err edit_text(const char *old, size_t oldlen, buf *out, void *vctx, char *err,
                        size_t errlen)
{
    struct edit_ctx *c = vctx;
    block *bl = malloc(sizeof *bl);
    if (!bl) return GD_ENOMEM;
    find_block(old, oldlen, bl);
    gd_err e = GD_OK;
    const char *end = old + oldlen;
    entry_span *es = bl->found && bl->below && bl->n ? find_entry(bl, c->name) : NULL;
    bool per_entry = bl->found && bl->below && bl->n > 0 && json_object_size(c->newmap) > 0 &&
                     (es || c->kind == EDIT_PUT);
    if (per_entry) {
        if (c->kind == EDIT_ENABLE && flip_line(es, c->enabled, old, end, out, &e)) {
            /* done: the rest of the text follows the value in flip_line */
        } else if (es) {
            e = buf_append(out, old, (size_t)(es->start - old));
            if (!e && c->kind != EDIT_REMOVE) e = render_entry(out, bl->indent, c->name, c->entry);
            if (!e) e = buf_append(out, es->end, (size_t)(end - es->end));
        } else { /* a new entry, after the last */
            e = buf_append(out, old, (size_t)(bl->end - old));
            if (!e && bl->end > old && bl->end[-1] != '\n') e = buf_puts(out, "\n");
            if (!e) e = render_entry(out, bl->indent, c->name, c->entry);
            if (!e) e = buf_append(out, bl->end, (size_t)(end - bl->end));
        }
    } else if (bl->found) {
        /* no block-style entries to edit one by one (a flow map, null, or the last one
         * removed): the block is written again from the map, below its comments */
        e = buf_append(out, old, (size_t)(bl->start - old));
        if (!e) e = render_block(out, c->newmap);
        const char *rest = bl->start + line_at(bl->start, end).len;
        if (bl->below) {
            /* keep the comments that were below the key; drop the entries */
            for (const char *p = rest; p < bl->end;) {
                line l = line_at(p, end);
                if (l.blank && !e) e = buf_append(out, p, l.len);
                p += l.len;
            }
        }
        if (!e) e = buf_append(out, bl->end, (size_t)(end - bl->end));
    } else {
        e = buf_append(out, old, oldlen);
        if (!e && oldlen && old[oldlen - 1] != '\n') e = buf_puts(out, "\n");
        if (!e) e = render_block(out, c->newmap);
    }
    free(bl);
    (void)err;
    (void)errlen;
    return e;
}

/* Writes the change, then publishes newmap. Called with wmu held. */
static gd_err commit(ext_set *s, struct edit_ctx *c, json_t *newmap, char *err, size_t errlen)
{
    c->newmap = newmap;
    char why[1024];
    gd_err e = config_file_edit(s->path, edit_text, c, why, sizeof why);
    if (e) {
        snprintf(err, errlen, "%s", why);
        json_decref(newmap);
        return GD_ESTORE;
    }
    pthread_mutex_lock(&s->mu);
    json_t *old = s->map;
    s->map = newmap;
    s->gen++;
    pthread_mutex_unlock(&s->mu);
    json_decref(old);
    return GD_OK;
}

/* A copy of the map to change (the entries shared), or NULL. */
static json_t *map_copy(ext_set *s)
{
    pthread_mutex_lock(&s->mu);
    json_t *m = json_copy(s->map);
    pthread_mutex_unlock(&s->mu);
    return m;
}

gd_err ext_set_put(ext_set *s, const char *name, const json_t *cfg, char *err, size_t errlen)
{
    json_t *c = ext_config_check(name, cfg, err, errlen);
    if (!c) return GD_EINVAL;
    if (allowlist_check(c, err, errlen) != GD_OK) {
        json_decref(c);
        return GD_EDENIED;
    }
    const char *key = json_string_value(json_object_get(c, "name"));
    pthread_mutex_lock(&s->wmu);
    json_t *m = map_copy(s);
    gd_err e = GD_ENOMEM;
    if (m && !json_object_set(m, key, c)) {
        struct edit_ctx ec = {.kind = EDIT_PUT, .name = key, .entry = c};
        e = commit(s, &ec, m, err, errlen);
        m = NULL;
    } else {
        snprintf(err, errlen, "out of memory");
    }
    json_decref(m);
    pthread_mutex_unlock(&s->wmu);
    if (!e) log_info("extensions", "extension %s configured (%s)", key, s->path);
    json_decref(c);
    return e;
}

/* The entry named name (by key) in the current map, a new reference; NULL with GD_ENOTFOUND's
 * message. */
static json_t *get_entry(ext_set *s, const char *name, char *key, char *err, size_t errlen)
{
    char why[256];
    if (ext_name_key(name, key, EXT_KEY_MAX + 1, why, sizeof why) != GD_OK) {
        snprintf(err, errlen, "extension '%.80s' not found", name);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    json_t *c = json_incref(json_object_get(s->map, key));
    pthread_mutex_unlock(&s->mu);
    if (!c) snprintf(err, errlen, "extension '%.80s' not found", name);
    return c;
}

gd_err ext_set_enable(ext_set *s, const char *name, bool enabled, char *err, size_t errlen)
{
    char key[EXT_KEY_MAX + 1];
    pthread_mutex_lock(&s->wmu);
    json_t *old = get_entry(s, name, key, err, errlen);
    if (!old) {
        pthread_mutex_unlock(&s->wmu);
        return GD_ENOTFOUND;
    }
    json_t *c = json_copy(old);
    json_decref(old);
    gd_err e = GD_ENOMEM;
    if (c) {
        json_object_set_new(c, "enabled", json_boolean(enabled));
        json_object_del(c, "refused");
        e = GD_OK;
        if (enabled && ext_config_supported(c) && allowlist_check(c, err, errlen) != GD_OK)
            e = GD_EDENIED;
    }
    json_t *m = !e ? map_copy(s) : NULL;
    if (!e && m && !json_object_set(m, key, c)) {
        struct edit_ctx ec = {.kind = EDIT_ENABLE, .name = key, .entry = c, .enabled = enabled};
        e = commit(s, &ec, m, err, errlen);
    } else {
        if (!e) e = GD_ENOMEM;
        if (e == GD_ENOMEM) snprintf(err, errlen, "out of memory");
        json_decref(m);
    }
    pthread_mutex_unlock(&s->wmu);
    if (!e) log_info("extensions", "extension %s %s", key, enabled ? "enabled" : "disabled");
    json_decref(c);
    return e;
}

gd_err ext_set_remove(ext_set *s, const char *name, char *err, size_t errlen)
{
    char key[EXT_KEY_MAX + 1];
    pthread_mutex_lock(&s->wmu);
    json_t *old = get_entry(s, name, key, err, errlen);
    if (!old) {
        pthread_mutex_unlock(&s->wmu);
        return GD_ENOTFOUND;
    }
    json_decref(old);
    json_t *m = map_copy(s);
    gd_err e = GD_ENOMEM;
    if (m && !json_object_del(m, key)) {
        struct edit_ctx ec = {.kind = EDIT_REMOVE, .name = key};
        e = commit(s, &ec, m, err, errlen);
    } else {
        snprintf(err, errlen, "out of memory");
        json_decref(m);
    }
    pthread_mutex_unlock(&s->wmu);
    if (!e) log_info("extensions", "extension %s removed", key);
    return e;
}

/* ---- what is shown of a config ---- */

#define MASK "***"

/* uri with its password (user:PASSWORD@) and every query value as ***. A new string. */
static char *uri_masked(const char *uri)
{
    buf b;
    buf_init(&b, strlen(uri) * 2 + 64);
    const char *s = strstr(uri, "://");
    const char *auth = s ? s + 3 : uri;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    gd_err e;
    if (colon) {
        e = buf_append(&b, uri, (size_t)(colon + 1 - uri));
        if (!e) e = buf_puts(&b, MASK);
        if (!e) e = buf_append(&b, at, (size_t)(auth + alen - at));
    } else {
        e = buf_append(&b, uri, (size_t)(auth + alen - uri));
    }
    const char *p = auth + alen;
    const char *q = strchr(p, '?');
    if (!e) e = buf_append(&b, p, q ? (size_t)(q - p) : strlen(p));
    for (const char *r = q; !e && r && *r;) {
        if (*r != '?' && *r != '&') { /* the fragment */
            e = buf_puts(&b, r);
            break;
        }
        size_t n = strcspn(r + 1, "&#");
        const char *eq = memchr(r + 1, '=', n);
        e = buf_append(&b, r, eq ? (size_t)(eq + 1 - r) : n + 1);
        if (!e && eq) e = buf_puts(&b, MASK);
        r += 1 + n;
    }
    char *out = e ? NULL : buf_detach(&b);
    buf_free(&b);
    return out;
}

/* Whether an option's name (after its dashes) says it holds a secret. */
static bool secret_name(const char *name, size_t n)
{
    static const char *const words[] = {"key", "token", "secret", "password", "passwd", "auth"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t w = strlen(words[i]);
        for (size_t k = 0; k + w <= n; k++)
            if (!strncasecmp(name + k, words[i], w)) return true;
    }
    return false;
}

static json_t *args_masked(const json_t *args)
{
    json_t *out = json_array(), *a;
    size_t i;
    bool next_secret = false;
    json_array_foreach((json_t *)args, i, a)
    {
        const char *s = json_string_value(a);
        if (!s) {
            json_array_append_new(out, json_deep_copy(a));
            next_secret = false;
            continue;
        }
        if (next_secret && s[0] != '-') {
            json_array_append_new(out, json_string(MASK));
            next_secret = false;
            continue;
        }
        next_secret = false;
        const char *name = s;
        while (*name == '-')
            name++;
        const char *eq = strchr(name, '=');
        if (name != s && eq && secret_name(name, (size_t)(eq - name))) {
            char *m = NULL;
            if (asprintf(&m, "%.*s" MASK, (int)(eq + 1 - s), s) < 0) m = NULL;
            json_array_append_new(out, m ? json_string(m) : json_string(MASK));
            free(m);
            continue;
        }
        next_secret = name != s && !eq && secret_name(name, strlen(name));
        json_array_append_new(out, json_string(s));
    }
    return out;
}

json_t *ext_config_masked(const json_t *v)
{
    if (json_is_array(v)) {
        json_t *out = json_array(), *it;
        size_t i;
        json_array_foreach((json_t *)v, i, it) json_array_append_new(out, ext_config_masked(it));
        return out;
    }
    if (!json_is_object(v)) return json_deep_copy(v);
    json_t *out = json_object(), *it;
    const char *k;
    json_object_foreach((json_t *)v, k, it)
    {
        json_t *m;
        if ((!strcmp(k, "headers") || !strcmp(k, "envs") || !strcmp(k, "oauth")) &&
            json_is_object(it)) {
            m = json_object();
            const char *hk;
            json_t *hv;
            json_object_foreach(it, hk, hv) json_object_set_new(m, hk, json_string(MASK));
        } else if ((!strcmp(k, "uri") || !strcmp(k, "url")) && json_is_string(it)) {
            char *u = uri_masked(json_string_value(it));
            m = u ? json_string(u) : json_string(MASK);
            free(u);
        } else if (!strcmp(k, "args") && json_is_array(it)) {
            m = args_masked(it);
        } else {
            m = ext_config_masked(it);
        }
        json_object_set_new(out, k, m);
    }
    return out;
}
