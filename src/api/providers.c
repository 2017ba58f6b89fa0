/* Providers (seed 001): which LLM providers exist, which is current, and setting one up. The
 * server's choice (the default) goes to config.yaml and its API key to secrets.yaml (0600); a
 * user's own (a user with an id: a token, or the trusted proxy's header) goes to the store, the
 * key sealed under the server key (auth/user_settings.h). Keys are never echoed or logged. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/user_settings.h"
#include "config/secrets.h"

#define API_KEY_MAX 4096 /* bytes: real keys are under 200; a cap keeps secrets.yaml small */

/* Whether v holds a control character or a line break (C0, DEL, C1 with U+0085, U+2028,
 * U+2029): no key or model name has one, and they are what a line of a file or a header ends at. */
static bool has_control(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7F) return true;
        if (c == 0xC2 && i + 1 < n && (unsigned char)v[i + 1] <= 0x9F) return true;
        if (c == 0xE2 && i + 2 < n && (unsigned char)v[i + 1] == 0x80 &&
            ((unsigned char)v[i + 2] == 0xA8 || (unsigned char)v[i + 2] == 0xA9))
            return true;
    }
    return false;
}

/* Whether v is a key as providers make them: printable ASCII, no space (it goes in a header). */
static bool key_chars(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7F) return false;
    return true;
}

/* Whether the caller (user_id) has a key for d: their own, or the server's. */
static bool has_key(const char *user_id, const provider_def *d)
{
    char key[8];
    return !d->key_env || user_settings_has_key(user_id, d->key_env) ||
           agent_provider_key(d, key, sizeof key);
}

static json_t *provider_json(const char *user_id, const provider_def *d, const char *current)
{
    bool configured = has_key(user_id, d);
    json_t *keys = json_array();
    if (d->key_env) json_array_append_new(keys, json_string(d->key_env));
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:b}", "name", d->name, "description",
                     d->description, "default_model", d->default_model, "required_keys", keys,
                     "configured", configured, "current", !strcmp(current, d->name));
}

void api_providers_list(http_req *r)
{
    app *a = http_app(r);
    const char *uid = http_user(r)->id;
    char name[128], model[256];
    agent_current_for(a->agent, uid, name, sizeof name, model, sizeof model);
    json_t *arr = json_array();
    for (size_t i = 0; i < provider_ndefs; i++)
        json_array_append_new(arr, provider_json(uid, &provider_defs[i], name));
    http_reply_json(r, 200, arr);
}

void api_providers_current(http_req *r)
{
    app *a = http_app(r);
    char name[128], model[256];
    agent_current_for(a->agent, http_user(r)->id, name, sizeof name, model, sizeof model);
    const provider_def *d = name[0] ? provider_find(name) : NULL;
    if (!model[0] && d) snprintf(model, sizeof model, "%s", d->default_model);
    http_reply_json(
        r, 200,
        json_pack("{s:s?, s:s?}", "name", name[0] ? name : NULL, "model", model[0] ? model : NULL));
}

/* DELETE /api/providers/current: a user forgets their own provider, model and keys; the
 * server's apply to them again (the answer says which). */
void api_providers_clear(http_req *r)
{
    const auth_user *u = http_user(r);
    if (!u->id[0]) {
        http_reply_error(r, 400, "bad_request",
                         "the local user has no provider of their own to forget: POST "
                         "/api/providers sets the server's");
        return;
    }
    char err[512];
    gd_err e = user_settings_clear_provider(u->id, err, sizeof err);
    if (e) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: cannot forget your provider choice: %s", err);
        return;
    }
    api_providers_current(r);
}

void api_providers_set(http_req *r)
{
    app *a = http_app(r);
    json_t *body = http_body(r);
    json_t *jn = body ? json_object_get(body, "name") : NULL;
    json_t *jk = body ? json_object_get(body, "api_key") : NULL;
    json_t *jm = body ? json_object_get(body, "model") : NULL;
    json_t *js = body ? json_object_get(body, "scope") : NULL;
    const auth_user *u = http_user(r);
    const char *scope = json_string_value(js);
    if (js && (!scope || (strcmp(scope, "user") && strcmp(scope, "default")))) {
        http_reply_error(r, 400, "bad_request", "scope: \"user\" or \"default\"");
        return;
    }
    /* The local user (no authentication, X-Secret-Key) sets the server's choice, as ever; a
     * user sets their own, and an admin the server's with scope "default". */
    bool own = u->id[0] && (!scope || !strcmp(scope, "user"));
    if (!u->id[0] && scope && !strcmp(scope, "user")) {
        http_reply_error(r, 400, "bad_request",
                         "scope: the local user has no settings of their own (use \"default\")");
        return;
    }
    if (!own && !u->admin) {
        http_reply_error(r, 403, "forbidden",
                         "POST /api/providers with scope \"default\" sets the server's provider "
                         "and needs an admin; %s is not one",
                         u->name);
        return;
    }
    if (!json_is_string(jn)) {
        http_reply_error(r, 400, "bad_request",
                         "name: a provider name is required (see GET /api/providers)");
        return;
    }
    const provider_def *d = provider_find(json_string_value(jn));
    if (!d) {
        http_reply_error(r, 400, "bad_request",
                         "name: unknown provider '%.100s' (see GET /api/providers)",
                         json_string_value(jn));
        return;
    }
    char why[400];
    if (own && !u->admin && !agent_provider_open(a->agent, d, why, sizeof why)) {
        http_reply_error(r, 403, "forbidden", "%s", why);
        return;
    }
    if (jk && (!json_is_string(jk) || !json_string_length(jk))) {
        http_reply_error(r, 400, "bad_request", "api_key: must be a non-empty string");
        return;
    }
    if (jk && json_string_length(jk) > API_KEY_MAX) {
        http_reply_error(r, 400, "bad_request", "api_key: must be at most %d bytes (got %zu)",
                         API_KEY_MAX, json_string_length(jk));
        return;
    }
    if (jk && !key_chars(json_string_value(jk), json_string_length(jk))) {
        http_reply_error(r, 400, "bad_request",
                         "api_key: must be printable ASCII, without spaces or control characters "
                         "(a newline, a NUL)");
        return;
    }
    if (jm && (!json_is_string(jm) || !json_string_length(jm) || json_string_length(jm) > 255)) {
        http_reply_error(r, 400, "bad_request", "model: must be a string of 1 to 255 characters");
        return;
    }
    if (jm && has_control(json_string_value(jm), json_string_length(jm))) {
        http_reply_error(r, 400, "bad_request",
                         "model: must not hold control characters (a newline, a NUL)");
        return;
    }
    if (!jk && !has_key(own ? u->id : "", d)) {
        http_reply_error(r, 400, "bad_request", "api_key: provider %s needs an API key (%s)",
                         d->name, d->key_env);
        return;
    }
    char err[512];
    if (own) {
        const char *model = jm ? json_string_value(jm) : d->default_model;
        gd_err e = user_settings_set_provider(u->id, d->name, model, d->key_env,
                                              jk ? json_string_value(jk) : NULL, err, sizeof err);
        if (e) {
            http_reply_error(r, 503, "storage_unavailable",
                             "storage unavailable: cannot save your provider choice: %s", err);
            return;
        }
        http_reply_json(
            r, 200, json_pack("{s:s, s:s, s:b}", "name", d->name, "model", model, "configured", 1));
        return;
    }
    if (d->key_env && jk &&
        secrets_set(d->key_env, json_string_value(jk), err, sizeof err) != GD_OK) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: cannot save the API key: %s", err);
        return;
    }
    const char *model = jm ? json_string_value(jm) : d->default_model;
    const char *keys[] = {"GOOSE_PROVIDER", "GOOSE_MODEL"};
    const char *vals[] = {d->name, model};
    if (config_file_set(a->cfg->config_path, keys, vals, 2, err, sizeof err) != GD_OK) {
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: cannot save the provider choice: %s", err);
        return;
    }
    agent_set_current(a->agent, d->name, model);
    http_reply_json(r, 200,
                    json_pack("{s:s, s:s, s:b}", "name", d->name, "model", model, "configured", 1));
}
