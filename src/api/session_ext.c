/* A session's own settings: its execution mode (PATCH /api/sessions/{id}) and the extensions it
 * adds to, or removes from, the configured ones (GET/POST/DELETE /api/sessions/{id}/extensions;
 * also when the session is created). Kept in the store beside the session:
 *
 *   {"execution_mode": "approve",
 *    "extensions": {"add": {name: checked config}, "remove": [name]}}
 *
 * A change applies to the session's next reply. */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/user_settings.h"
#include "extensions/allowlist.h"

/* One read-modify-write of a session's settings at a time (they change rarely). */
static pthread_mutex_t settings_mu = PTHREAD_MUTEX_INITIALIZER;

/* The configured extension called key, or NULL (a new reference). */
static json_t *configured(app *a, const char *key)
{
    json_t *snap = a->exts ? ext_set_snapshot(a->exts, NULL) : NULL;
    json_t *cfg = json_incref(json_object_get(snap, key));
    json_decref(snap);
    return cfg;
}

/* settings.extensions, made when missing (borrowed from settings). */
static json_t *own_extensions(json_t *settings)
{
    json_t *x = json_object_get(settings, "extensions");
    if (!json_is_object(x)) {
        x = json_pack("{s:{}, s:[]}", "add", "remove");
        if (!x || json_object_set_new(settings, "extensions", x)) return NULL;
    }
    if (!json_is_object(json_object_get(x, "add"))) json_object_set_new(x, "add", json_object());
    if (!json_is_array(json_object_get(x, "remove")))
        json_object_set_new(x, "remove", json_array());
    return x;
}

static void unremove(json_t *own, const char *key)
{
    json_t *rm = json_object_get(own, "remove");
    for (size_t i = json_array_size(rm); i-- > 0;)
        if (!strcmp(json_string_value(json_array_get(rm, i)) ?: "", key)) json_array_remove(rm, i);
}

/* Applies one entry {"name", "config"?, "enabled"?} to settings: a config adds a session-only
 * extension (checked, and allowed by GOOSE_ALLOWLIST); a bare name enables a configured one for
 * this session; "enabled": false removes it. 0, or the HTTP status of the error (msg says why). */
/* The caller's own extensions (auth/user_settings.h; the session is theirs: auth_gate checked
 * it), or NULL: none, or user_extensions is off. A new reference. */
static json_t *users_own(http_req *r)
{
    app *a = http_app(r);
    const char *uid = http_user(r)->id;
    return uid[0] && a->cfg->user_extensions ? user_settings_extensions(uid, NULL) : NULL;
}

/* Whether the caller is a user who is not an admin (their configs are bounded: apply_entry). */
static bool restricted_caller(http_req *r)
{
    const auth_user *u = http_user(r);
    return u->id[0] && !u->admin;
}

static int apply_entry(http_req *r, json_t *settings, json_t *entry, char *msg, size_t len)
{
    app *a = http_app(r);
    bool restricted = restricted_caller(r);
    json_t *jn = json_object_get(entry, "name"), *jc = json_object_get(entry, "config");
    json_t *je = json_object_get(entry, "enabled");
    if (!json_is_object(entry) || !json_is_string(jn)) {
        snprintf(msg, len, "extensions: each entry needs a \"name\" (a string)");
        return 400;
    }
    if ((jc && !json_is_object(jc)) || (je && !json_is_boolean(je))) {
        snprintf(msg, len, "%s: %s", jc && !json_is_object(jc) ? "config" : "enabled",
                 jc && !json_is_object(jc) ? "must be an object" : "must be a boolean");
        return 400;
    }
    char key[EXT_KEY_MAX + 1];
    if (ext_name_key(json_string_value(jn), key, sizeof key, msg, len)) return 400;
    json_t *own = own_extensions(settings);
    if (!own) {
        snprintf(msg, len, "out of memory");
        return 500;
    }
    json_t *add = json_object_get(own, "add");
    json_t *users = users_own(r);
    json_t *ue = json_object_get(users, key); /* the caller's own extension of that name */
    json_t *theirs = json_incref(json_object_get(ue, "config"));
    bool theirs_on = theirs && json_is_true(json_object_get(ue, "enabled"));
    json_decref(users);
    if (json_is_false(je)) { /* off for this session */
        bool known = json_object_get(add, key) != NULL;
        json_object_del(add, key);
        json_t *cfg = configured(a, key);
        if (cfg || theirs) {
            unremove(own, key);
            json_array_append_new(json_object_get(own, "remove"), json_string(key));
        }
        json_decref(cfg);
        bool any = cfg || theirs;
        json_decref(theirs);
        if (!known && !any) {
            snprintf(msg, len, "extension '%s' is neither configured nor added to this session",
                     key);
            return 404;
        }
        return 0;
    }
    json_t *cfg = jc ? ext_config_check(key, jc, msg, len) : configured(a, key);
    bool from_theirs = !cfg && !jc && theirs;
    if (from_theirs) cfg = json_incref(theirs);
    json_decref(theirs);
    if (!cfg) {
        if (jc) return 400;
        snprintf(msg, len,
                 "extension '%s' is not configured: give its \"config\" to add it to this session",
                 key);
        return 404;
    }
    if (!ext_config_supported(cfg)) {
        snprintf(msg, len, "%s: type %s is not supported by goosed", key,
                 json_string_value(json_object_get(cfg, "type")) ?: "?");
        json_decref(cfg);
        return 400;
    }
    /* A user who is not an admin gives a config of their own under the rules of their own
     * extensions (api/extensions.c): nothing of the server's secrets, and the built-in developer
     * stays as the admin set it (its shell, say). */
    const char *type = json_string_value(json_object_get(cfg, "type"));
    if (jc && restricted && type && !strcmp(type, "builtin")) {
        snprintf(msg, len,
                 "%s: type builtin: the built-in developer extension is the admin's to configure",
                 key);
        json_decref(cfg);
        return 403;
    }
    if (jc && restricted && json_array_size(json_object_get(cfg, "env_keys"))) {
        snprintf(msg, len,
                 "%s: env_keys: an extension of your own cannot take the server's secrets; give "
                 "the values in envs",
                 key);
        json_decref(cfg);
        return 400;
    }
    if (allowlist_check(cfg, msg, len) != GD_OK) {
        json_decref(cfg);
        return 403;
    }
    unremove(own, key);
    json_t *conf = configured(a, key);
    bool plain = !jc && ((conf && json_is_true(json_object_get(conf, "enabled"))) || theirs_on);
    json_decref(conf);
    if (plain) { /* enabled in config.yaml already: not removing it is enough */
        json_object_del(add, key);
        json_decref(cfg);
        return 0;
    }
    /* A sealed value is goosed's own writing, opened for the session's owner only: one the
     * caller gives (in the config, or in their own extension's) could be another user's,
     * copied from the database, which goosed would open and send where the caller chose. */
    char field[320];
    if ((jc || from_theirs) && user_settings_sealed_field(cfg, field, sizeof field)) {
        snprintf(msg, len,
                 "%s: %.200s: a value beginning with \"" USER_SETTINGS_SEALED_MARK
                 "\" is sealed by goosed itself and is not taken from a client: give the value "
                 "itself",
                 key, field);
        json_decref(cfg);
        return 400;
    }
    /* a copy: the configured one belongs to the set's snapshot, which is never modified */
    json_t *mine = json_deep_copy(cfg);
    json_decref(cfg);
    if (!mine || json_object_set_new(mine, "enabled", json_true()) ||
        json_object_set_new(add, key, mine)) {
        snprintf(msg, len, "out of memory");
        return 500;
    }
    return 0;
}

static const char *code_of(int status)
{
    return status == 403 ? "forbidden" : status == 404 ? "not_found" : "bad_request";
}

int api_session_settings_from_body(http_req *r, json_t *body, json_t **out)
{
    *out = NULL;
    json_t *mode = json_object_get(body, "execution_mode");
    json_t *exts = json_object_get(body, "extensions");
    if (!mode && !exts) return 0;
    json_t *settings = json_object();
    char msg[512];
    int status = settings ? 0 : 500;
    if (!status && mode && !json_is_null(mode)) {
        if (exec_mode_parse(json_string_value(mode)) < 0) {
            snprintf(msg, sizeof msg,
                     "execution_mode: expected auto, approve, smart_approve (or smart_approval) "
                     "or chat");
            status = 400;
        } else {
            json_object_set_new(
                settings, "execution_mode",
                json_string(exec_mode_name(exec_mode_parse(json_string_value(mode)))));
        }
    }
    if (!status && exts && !json_is_array(exts)) {
        snprintf(msg, sizeof msg,
                 "extensions: must be a list of {\"name\", \"config\"?, "
                 "\"enabled\"?}");
        status = 400;
    }
    size_t i;
    json_t *e;
    json_array_foreach(exts, i, e)
    {
        if (status) break;
        status = apply_entry(r, settings, e, msg, sizeof msg);
    }
    if (status) {
        json_decref(settings);
        if (status == 500)
            http_reply_error(r, 500, "internal", "out of memory");
        else
            http_reply_error(r, status, code_of(status), "%s", msg);
        return -1;
    }
    *out = settings;
    return 1;
}

/* The session's effective extensions: [{name, type, source, enabled}]. */
static bool removed_here(json_t *own, const char *k)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(own, "remove"), i,
                       v) if (!strcmp(json_string_value(v) ?: "", k)) return true;
    return false;
}

/* The session's extensions as a reply runs them (agent.c ensure_registry): the configured ones,
 * as the caller's own choices turn them on or off; the caller's own ("source": "user"); those
 * the session added. */
static json_t *effective(http_req *r, json_t *settings)
{
    app *a = http_app(r);
    json_t *snap = a->exts ? ext_set_snapshot(a->exts, NULL) : NULL;
    json_t *users = users_own(r);
    json_t *own = json_object_get(settings, "extensions");
    json_t *add = json_object_get(own, "add");
    json_t *out = json_array();
    const char *k;
    json_t *cfg;
    json_object_foreach(snap, k, cfg)
    {
        if (json_object_get(add, k)) continue;
        json_t *ue = json_object_get(users, k);
        bool on = (ue && !json_object_get(ue, "config")
                       ? json_is_true(json_object_get(ue, "enabled"))
                       : json_is_true(json_object_get(cfg, "enabled"))) &&
                  ext_config_supported(cfg) && !json_object_get(cfg, "refused") &&
                  !removed_here(own, k);
        json_array_append_new(out, json_pack("{s:s, s:O, s:s, s:b}", "name", k, "type",
                                             json_object_get(cfg, "type"), "source", "config",
                                             "enabled", on));
    }
    json_t *ue;
    json_object_foreach(users, k, ue)
    {
        json_t *c = json_object_get(ue, "config");
        if (!c || json_object_get(add, k)) continue;
        bool on = json_is_true(json_object_get(ue, "enabled")) && !removed_here(own, k);
        json_array_append_new(out, json_pack("{s:s, s:O, s:s, s:b}", "name", k, "type",
                                             json_object_get(c, "type"), "source", "user",
                                             "enabled", on));
    }
    json_object_foreach(add, k, cfg) json_array_append_new(
        out, json_pack("{s:s, s:O, s:s, s:b}", "name", k, "type", json_object_get(cfg, "type"),
                       "source", "session", "enabled", 1));
    /* how the session's last reply found each (when one has started them in this goosed) */
    json_t *states = agent_session_ext_states(a->agent, http_param(r, 0));
    size_t i;
    json_t *e;
    json_array_foreach(out, i, e)
    {
        json_t *st = json_object_get(states, json_string_value(json_object_get(e, "name")));
        if (!json_is_true(json_object_get(e, "enabled")) || !st) continue;
        json_object_set(e, "status", json_object_get(st, "status"));
        if (json_object_get(st, "error")) json_object_set(e, "error", json_object_get(st, "error"));
    }
    json_decref(states);
    json_decref(snap);
    json_decref(users);
    return out;
}

static void reply_settings(http_req *r, json_t *settings)
{
    app *a = http_app(r);
    json_t *mode = json_object_get(settings, "execution_mode");
    json_t *prov = json_object_get(settings, "provider"),
           *model = json_object_get(settings, "model");
    /* what its replies use: its own provider and model, else the caller's (or the server's) */
    char name[128], cur_model[256];
    agent_current_for(a->agent, http_user(r)->id, name, sizeof name, cur_model, sizeof cur_model);
    const char *pn = json_is_string(prov) ? json_string_value(prov) : name;
    const provider_def *d = pn[0] ? provider_find(pn) : NULL;
    const char *mn = json_is_string(model)                      ? json_string_value(model)
                     : json_is_string(prov) && strcmp(pn, name) ? (d ? d->default_model : "")
                     : cur_model[0]                             ? cur_model
                     : d                                        ? d->default_model
                                                                : "";
    http_reply_json(r, 200,
                    json_pack("{s:O, s:s, s:O, s:O, s:s?, s:s?, s:o}", "execution_mode",
                              mode ? mode : json_null(), "effective_mode",
                              mode ? json_string_value(mode) : exec_mode_name(agent_mode(a->agent)),
                              "provider", prov ? prov : json_null(), "model",
                              model ? model : json_null(), "effective_provider", pn[0] ? pn : NULL,
                              "effective_model", mn[0] ? mn : NULL, "extensions",
                              effective(r, settings)));
}

/* Reads the settings (404 and false when the session does not exist). */
static bool read_settings(http_req *r, const char *sid, json_t **out)
{
    app *a = http_app(r);
    gd_err e = a->st->ops->session_settings_get(a->st, sid, out);
    if (e) api_store_error(r, e, sid, NULL);
    return !e;
}

/* Stores the settings, the headers, envs and oauth of the session's own extensions sealed under
 * the server key for the session's owner, the caller (as users' API keys and own extensions
 * are); the caller's copy keeps what it had. */
static bool write_settings(http_req *r, const char *sid, json_t *settings)
{
    app *a = http_app(r);
    json_t *kept = json_deep_copy(settings);
    char err[PATH_MAX + 512] = "";
    gd_err e =
        kept ? user_settings_seal_session(kept, http_user(r)->id, err, sizeof err) : GD_ENOMEM;
    if (e) {
        http_reply_error(r, 500, "internal", "%s", err[0] ? err : "out of memory");
        json_decref(kept);
        return false;
    }
    e = a->st->ops->session_settings_set(a->st, sid, kept);
    json_decref(kept);
    if (e) api_store_error(r, e, sid, NULL);
    return !e;
}

void api_session_extensions_get(http_req *r)
{
    json_t *settings;
    if (!read_settings(r, http_param(r, 0), &settings)) return;
    reply_settings(r, settings);
    json_decref(settings);
}

/* POST {"name", "config"?, "enabled"?} or a list of them. */
void api_session_extensions_add(http_req *r)
{
    const char *sid = http_param(r, 0);
    json_t *body = http_body(r);
    if (!body) { /* an empty body: no entry to add (json_pack below would fail on NULL) */
        http_reply_error(r, 400, "bad_request",
                         "the body must be an extension entry: {\"name\": ..., \"config\"?: "
                         "{...}, \"enabled\"?: true|false}");
        return;
    }
    json_t *list = json_is_array(body) ? json_incref(body) : json_pack("[O]", body);
    json_t *settings = NULL;
    pthread_mutex_lock(&settings_mu);
    if (!list) {
        http_reply_error(r, 500, "internal", "out of memory");
    } else if (read_settings(r, sid, &settings)) {
        char msg[512];
        int status = 0;
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            if ((status = apply_entry(r, settings, e, msg, sizeof msg))) break;
        }
        if (status)
            http_reply_error(r, status, code_of(status), "%s", msg);
        else if (write_settings(r, sid, settings))
            reply_settings(r, settings);
    }
    pthread_mutex_unlock(&settings_mu);
    json_decref(list);
    json_decref(settings);
}

void api_session_extensions_remove(http_req *r)
{
    const char *sid = http_param(r, 0);
    json_t *entry = json_pack("{s:s, s:b}", "name", http_param(r, 1), "enabled", 0);
    json_t *settings = NULL;
    pthread_mutex_lock(&settings_mu);
    if (entry && read_settings(r, sid, &settings)) {
        char msg[512];
        int status = apply_entry(r, settings, entry, msg, sizeof msg);
        if (status)
            http_reply_error(r, status, code_of(status), "%s", msg);
        else if (write_settings(r, sid, settings))
            http_reply_empty(r, 204);
    } else if (!entry) {
        http_reply_error(r, 500, "internal", "out of memory");
    }
    pthread_mutex_unlock(&settings_mu);
    json_decref(entry);
    json_decref(settings);
}

/* PATCH /api/sessions/{id} {"execution_mode": mode | null}. */
/* A model name as providers take them: 1..255 bytes of printable text. */
static bool model_ok(const char *m)
{
    size_t n = strlen(m);
    if (!n || n > 255) return false;
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        if (*p < 0x20 || *p == 0x7F) return false;
    return true;
}

/* PATCH /api/sessions/{id}: the session's own execution mode, provider and model (each a value,
 * or null for the user's or the server's again). A provider is checked as a reply would use
 * it (known, with a key, one the user may reach) before it is kept. */
void api_session_patch(http_req *r)
{
    const char *sid = http_param(r, 0);
    json_t *body = http_body(r);
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) if (strcmp(k, "execution_mode") && strcmp(k, "provider") &&
                                        strcmp(k, "model"))
    {
        http_reply_error(r, 400, "bad_request",
                         "%.64s: unknown setting (PATCH takes execution_mode, provider and model)",
                         k);
        return;
    }
    json_t *mode = json_object_get(body, "execution_mode");
    json_t *prov = json_object_get(body, "provider");
    json_t *model = json_object_get(body, "model");
    if (!mode && !prov && !model) {
        http_reply_error(r, 400, "bad_request",
                         "execution_mode, provider or model: one is required (a value, or null)");
        return;
    }
    int m = !mode || json_is_null(mode) ? -2 : exec_mode_parse(json_string_value(mode));
    if (m == -1) {
        http_reply_error(r, 400, "bad_request",
                         "execution_mode: expected auto, approve, smart_approve (or "
                         "smart_approval), chat, or null for the server's");
        return;
    }
    if (prov && !json_is_null(prov) && !json_is_string(prov)) {
        http_reply_error(r, 400, "bad_request", "provider: a provider's name, or null");
        return;
    }
    if (model && !json_is_null(model) &&
        (!json_is_string(model) || !model_ok(json_string_value(model)))) {
        http_reply_error(r, 400, "bad_request",
                         "model: a model's name (1 to 255 printable bytes), or null");
        return;
    }
    json_t *settings;
    pthread_mutex_lock(&settings_mu);
    if (read_settings(r, sid, &settings)) {
        if (mode && m == -2)
            json_object_del(settings, "execution_mode");
        else if (mode)
            json_object_set_new(settings, "execution_mode", json_string(exec_mode_name(m)));
        if (prov && json_is_null(prov))
            json_object_del(settings, "provider");
        else if (prov)
            json_object_set(settings, "provider", prov);
        if (model && json_is_null(model))
            json_object_del(settings, "model");
        else if (model)
            json_object_set(settings, "model", model);
        /* what a reply of this session would use now: refused here rather than at its start */
        const char *pn = json_string_value(json_object_get(settings, "provider"));
        const char *mn = json_string_value(json_object_get(settings, "model"));
        char why[512] = "";
        bool ok = true;
        if ((prov || model) && (pn || mn)) {
            provider_cfg pcfg;
            const auth_user *u = http_user(r);
            gd_err e = pn && !provider_find(pn)
                           ? (snprintf(why, sizeof why, "provider: unknown provider '%.64s'", pn),
                              GD_EINVAL)
                           : agent_provider_owned(((app *)http_app(r))->agent, u->id, u->admin, pn,
                                                  mn, &pcfg, why, sizeof why);
            sodium_memzero(&pcfg, sizeof pcfg);
            ok = !e;
        }
        if (!ok)
            http_reply_error(r, 400, "bad_request", "%s", why);
        else if (write_settings(r, sid, settings)) {
            if (prov || model) agent_session_provider_set(((app *)http_app(r))->agent, sid, pn, mn);
            reply_settings(r, settings);
        }
        json_decref(settings);
    }
    pthread_mutex_unlock(&settings_mu);
}
