/* Extensions: the configured set (config.yaml's `extensions:` map), listed with what the
 * sessions' instances are doing, added, toggled and removed (seed 001), and enabled or disabled
 * (seed 000). Secrets in a config (header values, envs values) are never shown.
 *
 * The same routes act on the set of the caller's own when the caller is a user (with an id) who
 * is not an admin (user_settings.h): their own extensions, applied to every session of theirs on
 * top of the admin's set, and their choice to turn one of the admin's off (or on) for
 * themselves. An admin, the X-Secret-Key and a server without authentication act on the
 * configured set, as ever. The admin's config bounds what a user may do: `user_extensions: false`
 * refuses it all (403); GOOSE_ALLOWLIST applies to a user's stdio extensions as to the admin's;
 * a user's extension takes no secret of the server (no env_keys), is not the built-in one, and
 * does not take the name of one of the admin's. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "auth/auth.h"
#include "auth/user_settings.h"
#include "extensions/allowlist.h"
#include "extensions/ext_config.h"

/* The config as shown: derived keys out, its secrets masked (ext_config_masked). A new object. */
static json_t *public_config(const json_t *c)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c, k, v)
    {
        if (!strcmp(k, "supported") || !strcmp(k, "invalid") || !strcmp(k, "refused")) continue;
        json_object_set(out, k, v);
    }
    json_t *shown = ext_config_masked(out);
    json_decref(out);
    return shown;
}

/* One list entry for name's checked config c; its status is agent_extension_status's for
 * status_key, source says whose it is ("config": the admin's; "user": the caller's own). */
static json_t *entry_json(app *a, const char *name, const json_t *c, const char *status_key,
                          const char *source)
{
    json_t *st = agent_extension_status(a->agent, status_key);
    const char *type = json_string_value(json_object_get(c, "type"));
    const char *desc = json_string_value(json_object_get(c, "description"));
    json_t *e = json_pack("{s:s, s:s, s:b, s:b, s:s}", "name", name, "type", type ? type : "",
                          "enabled", json_is_true(json_object_get(c, "enabled")), "supported",
                          ext_config_supported(c), "description", desc ? desc : "");
    const char *status = "stopped";
    json_t *tools = NULL, *error = NULL;
    if (json_is_object(st)) {
        if (json_is_string(json_object_get(st, "status")))
            status = json_string_value(json_object_get(st, "status"));
        tools = json_object_get(st, "tools");
        error = json_object_get(st, "error");
    }
    json_t *refused = json_object_get(c, "refused");
    json_t *invalid = json_object_get(c, "invalid");
    if (json_is_string(refused)) {
        status = "failed";
        error = refused;
        json_object_set(e, "refused", refused);
    } else if (json_is_string(invalid)) {
        error = invalid;
    } else if (!ext_config_supported(c) && !error) {
        json_object_set_new(e, "error",
                            json_sprintf("type %s is not supported by goosed%s", type ? type : "?",
                                         type && !strcmp(type, "builtin")
                                             ? " (its only builtin is developer)"
                                             : ""));
    }
    json_object_set_new(e, "status", json_string(status));
    if (json_is_string(error)) json_object_set(e, "error", error);
    json_object_set_new(e, "tools", json_is_array(tools) ? json_incref(tools) : json_array());
    json_t *dn = json_object_get(c, "display_name");
    if (json_is_string(dn)) json_object_set(e, "display_name", dn);
    json_object_set_new(e, "config", public_config(c));
    json_object_set_new(e, "source", json_string(source));
    json_decref(st);
    return e;
}

/* ---- a user's own set ---- */

/* The caller's id when the request acts on their own set (a user who is not an admin), else
 * NULL. */
static const char *own_user(http_req *r)
{
    const auth_user *u = http_user(r);
    return u->id[0] && !u->admin ? u->id : NULL;
}

/* The caller's own extensions (a new reference, NULL: none), or none when user_extensions is
 * off. */
static json_t *own_set(app *a, const char *uid)
{
    return a->cfg->user_extensions ? user_settings_extensions(uid, NULL) : NULL;
}

/* Whether the caller may change a set of their own; answers 403 when not. */
static bool own_allowed(http_req *r)
{
    const app *a = http_app(r);
    if (a->cfg->user_extensions) return true;
    http_reply_error(r, 403, "forbidden",
                     "extensions of your own are turned off on this server (user_extensions: "
                     "false): only an admin can add, change or remove extensions");
    return false;
}

/* The entry key has for the user uid: their own extension, or the admin's as their choice
 * leaves it (enabled, and "admin_enabled" when they chose). NULL when neither exists. */
static json_t *user_entry(app *a, const char *uid, const char *key, json_t *snap, json_t *mine)
{
    json_t *ue = json_object_get(mine, key);
    json_t *own = json_object_get(ue, "config");
    if (own) {
        char skey[UUID_STR_LEN + EXT_KEY_MAX + 2];
        snprintf(skey, sizeof skey, "%s/%s", uid, key);
        json_t *e = entry_json(a, key, own, skey, "user");
        json_object_set_new(e, "enabled",
                            json_boolean(json_is_true(json_object_get(ue, "enabled"))));
        return e;
    }
    json_t *c = json_object_get(snap, key);
    if (!c) return NULL;
    json_t *e = entry_json(a, key, c, key, "config");
    if (ue) {
        json_object_set_new(e, "admin_enabled",
                            json_boolean(json_is_true(json_object_get(c, "enabled"))));
        json_object_set_new(e, "enabled",
                            json_boolean(json_is_true(json_object_get(ue, "enabled"))));
    }
    return e;
}

void api_extensions_list(http_req *r)
{
    app *a = http_app(r);
    const char *uid = own_user(r);
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *mine = uid ? own_set(a, uid) : NULL;
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(snap, k, v)
    {
        if (!json_object_get(json_object_get(mine, k), "config")) /* theirs is listed below */
            json_array_append_new(arr, mine ? user_entry(a, uid, k, snap, mine)
                                            : entry_json(a, k, v, k, "config"));
    }
    json_object_foreach(mine, k, v)
    {
        if (json_object_get(v, "config"))
            json_array_append_new(arr, user_entry(a, uid, k, snap, mine));
    }
    json_decref(mine);
    json_decref(snap);
    http_reply_json(r, 200, json_pack("{s:o}", "extensions", arr));
}

/* Answers a failed ext_set call. */
static void ext_error(http_req *r, gd_err e, const char *name, const char *err)
{
    switch (e) {
    case GD_EINVAL:
        http_reply_error(r, 400, "bad_request", "%s", err);
        return;
    case GD_EDENIED:
        http_reply_error(r, 403, "forbidden", "%s", err);
        return;
    case GD_ENOTFOUND:
        http_reply_error(r, 404, "not_found", "extension '%.100s' not found", name);
        return;
    case GD_ETOOBIG:
        http_reply_error(r, 400, "bad_request", "%s", err);
        return;
    case GD_ESTORE:
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: cannot save the extension: %s", err);
        return;
    default:
        http_reply_error(r, 500, "internal", "internal error: %s", gd_strerror(e));
        return;
    }
}

/* Answers 200 (or status) with the entry name now has (for the caller, see own_user). */
static void reply_entry(http_req *r, int status, const char *name)
{
    app *a = http_app(r);
    const char *uid = own_user(r);
    char key[EXT_KEY_MAX + 1], err[256];
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *mine = uid ? own_set(a, uid) : NULL;
    json_t *e = NULL;
    if (ext_name_key(name, key, sizeof key, err, sizeof err) == GD_OK) {
        json_t *c = json_object_get(snap, key);
        e = uid ? user_entry(a, uid, key, snap, mine)
            : c ? entry_json(a, key, c, key, "config")
                : NULL;
    }
    if (e)
        http_reply_json(r, status, e);
    else /* removed again in between */
        http_reply_error(r, 404, "not_found", "extension '%.100s' not found", name);
    json_decref(mine);
    json_decref(snap);
}

/* Whether the checked config c may run for a user; answers 400/403 when not. */
static bool user_may_run(http_req *r, const char *key, const json_t *c)
{
    char why[1024];
    const char *type = json_string_value(json_object_get(c, "type"));
    if (!ext_config_supported(c)) {
        http_reply_error(r, 400, "bad_request", "%s: type %s is not supported by goosed", key,
                         type ? type : "?");
        return false;
    }
    if (json_is_string(json_object_get(c, "refused"))) {
        http_reply_error(r, 403, "forbidden", "%s",
                         json_string_value(json_object_get(c, "refused")));
        return false;
    }
    if (allowlist_check(c, why, sizeof why) != GD_OK) {
        http_reply_error(r, 403, "forbidden", "%s", why);
        return false;
    }
    return true;
}

/* Keeps entry (borrowed; NULL removes) as the user's for key; answers the error when it
 * fails. */
static bool user_put(http_req *r, const char *uid, const char *key, const json_t *entry)
{
    char err[512];
    gd_err e = user_settings_put_extension(uid, key, entry, err, sizeof err);
    if (e) ext_error(r, e, key, err);
    return !e;
}

/* POST /api/extensions by a user: {"name", "enabled"?} alone turns one of the admin's on or off
 * for them; with a config it adds or changes their own (the keys given change theirs, the
 * others stay, as for the admin's). */
static void user_add(http_req *r, const char *uid, const char *name, const json_t *cfg)
{
    app *a = http_app(r);
    if (!own_allowed(r)) return;
    char key[EXT_KEY_MAX + 1], err[1024];
    if (ext_name_key(name, key, sizeof key, err, sizeof err)) {
        ext_error(r, GD_EINVAL, name, err);
        return;
    }
    json_t *je = json_object_get(cfg, "enabled");
    if (je && !json_is_boolean(je)) {
        http_reply_error(r, 400, "bad_request", "enabled: must be true or false");
        return;
    }
    bool bare = true; /* only a name (and enabled) */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)cfg, k, v) if (strcmp(k, "name") && strcmp(k, "enabled")) bare =
        false;
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *mine = own_set(a, uid);
    json_t *ue = json_object_get(mine, key);
    json_t *theirs = json_object_get(ue, "config");
    json_t *admins = json_object_get(snap, key);
    json_t *checked = NULL, *entry = NULL, *merged = NULL;
    int status = ue ? 200 : 201;
    if (!theirs && admins && bare) { /* their choice for the admin's */
        bool want = !je || json_is_true(je);
        bool admin_on = json_is_true(json_object_get(admins, "enabled"));
        if (want && !admin_on && !user_may_run(r, key, admins)) goto out;
        if (want != admin_on) entry = json_pack("{s:b}", "enabled", want);
        if ((ue || entry) && !user_put(r, uid, key, entry)) goto out;
        status = 200;
    } else if (!theirs && admins) {
        http_reply_error(r, 403, "forbidden",
                         "extension '%s' is the admin's: give yours another name, or turn it "
                         "on or off for yourself with {\"name\": \"%s\", \"enabled\": "
                         "true|false}",
                         key, key);
        goto out;
    } else {
        json_t *t = json_object_get(cfg, "type");
        if (theirs && (!t || json_equal(t, json_object_get(theirs, "type")))) {
            merged = json_copy(theirs);
            if (merged && !je) json_object_set(merged, "enabled", json_object_get(ue, "enabled"));
        } else {
            merged = json_object();
        }
        if (!merged || json_object_update(merged, (json_t *)cfg)) {
            http_reply_error(r, 500, "internal", "out of memory");
            goto out;
        }
        if (!(checked = ext_config_check(name, merged, err, sizeof err))) {
            ext_error(r, GD_EINVAL, name, err);
            goto out;
        }
        const char *type = json_string_value(json_object_get(checked, "type"));
        if (type && !strcmp(type, "builtin")) {
            http_reply_error(r, 403, "forbidden",
                             "%s: type builtin: the built-in developer extension is the admin's "
                             "to configure",
                             key);
            goto out;
        }
        if (json_array_size(json_object_get(checked, "env_keys"))) {
            http_reply_error(r, 400, "bad_request",
                             "%s: env_keys: an extension of your own cannot take the server's "
                             "secrets; give the values in envs",
                             key);
            goto out;
        }
        bool on = json_is_true(json_object_get(checked, "enabled"));
        if (!user_may_run(r, key, checked) ||
            !(entry = json_pack("{s:b, s:O}", "enabled", on, "config", checked)) ||
            !user_put(r, uid, key, entry))
            goto out;
    }
    reply_entry(r, status, key);
out:
    json_decref(entry);
    json_decref(checked);
    json_decref(merged);
    json_decref(mine);
    json_decref(snap);
}

/* Turns name on or off for the user: their own, or their choice for the admin's. */
static void user_set_enabled(http_req *r, const char *uid, const char *name, int mode)
{
    app *a = http_app(r);
    if (!own_allowed(r)) return;
    char key[EXT_KEY_MAX + 1], err[256];
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *mine = own_set(a, uid);
    bool ok = ext_name_key(name, key, sizeof key, err, sizeof err) == GD_OK;
    json_t *ue = ok ? json_object_get(mine, key) : NULL;
    json_t *theirs = json_object_get(ue, "config");
    json_t *admins = ok ? json_object_get(snap, key) : NULL;
    json_t *entry = NULL;
    if (!theirs && !admins) {
        ext_error(r, GD_ENOTFOUND, name, "");
        goto out;
    }
    bool admin_on = json_is_true(json_object_get(admins, "enabled"));
    bool now = ue ? json_is_true(json_object_get(ue, "enabled")) : admin_on;
    bool want = mode < 0 ? !now : mode == 1;
    if (theirs) {
        json_t *c = json_copy(theirs);
        if (c) json_object_set_new(c, "enabled", json_boolean(want));
        entry = c ? json_pack("{s:b, s:o}", "enabled", want, "config", c) : NULL;
        if (!entry) {
            http_reply_error(r, 500, "internal", "out of memory");
            goto out;
        }
        if ((want && !now && !user_may_run(r, key, theirs)) || !user_put(r, uid, key, entry))
            goto out;
    } else {
        if (want && !admin_on && !user_may_run(r, key, admins)) goto out;
        if (want != admin_on) entry = json_pack("{s:b}", "enabled", want);
        if ((ue || entry) && !user_put(r, uid, key, entry)) goto out;
    }
    reply_entry(r, 200, key);
out:
    json_decref(entry);
    json_decref(mine);
    json_decref(snap);
}

/* Removes the user's own extension name, or their choice for the admin's. */
static void user_delete(http_req *r, const char *uid, const char *name)
{
    app *a = http_app(r);
    if (!own_allowed(r)) return;
    char key[EXT_KEY_MAX + 1], err[256];
    bool ok = ext_name_key(name, key, sizeof key, err, sizeof err) == GD_OK;
    json_t *mine = own_set(a, uid);
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    if (ok && json_object_get(mine, key)) {
        if (user_put(r, uid, key, NULL)) http_reply_empty(r, 204);
    } else if (ok && json_object_get(snap, key)) {
        http_reply_error(r, 403, "forbidden",
                         "extension '%s' is the admin's: a user cannot remove it; turn it off "
                         "for yourself with PATCH /api/extensions/%s/toggle {\"enabled\": false}",
                         key, key);
    } else {
        ext_error(r, GD_ENOTFOUND, name, "");
    }
    json_decref(snap);
    json_decref(mine);
}

/* ---- the routes ---- */

void api_extensions_add(http_req *r)
{
    app *a = http_app(r);
    json_t *body = http_body(r);
    json_t *jn = body ? json_object_get(body, "name") : NULL;
    if (!json_is_string(jn) || !json_string_length(jn)) {
        http_reply_error(r, 400, "bad_request", "name: the extension's name is required");
        return;
    }
    const char *name = json_string_value(jn);
    json_t *cfg = json_object_get(body, "config");
    json_t *own = NULL;
    if (!cfg || json_is_null(cfg)) {
        /* the real Goose's flat form {"name", "type", "cmd", ...}, or just a name */
        own = json_deep_copy(body);
        json_object_del(own, "config");
        cfg = own;
    } else if (!json_is_object(cfg)) {
        http_reply_error(r, 400, "bad_request", "config: must be an object");
        return;
    }
    const char *uid = own_user(r);
    if (uid) {
        user_add(r, uid, name, cfg);
        json_decref(own);
        return;
    }
    char key[EXT_KEY_MAX + 1], err[1024];
    gd_err e = ext_name_key(name, key, sizeof key, err, sizeof err);
    bool existed = false;
    if (!e) {
        /* an extension configured already, and the same type (or none given): the keys given
         * change its config, the others stay ({"allow_shell": true} on the developer) */
        json_t *snap = ext_set_snapshot(a->exts, NULL);
        json_t *old = json_object_get(snap, key);
        existed = old != NULL;
        json_t *t = json_object_get(cfg, "type");
        json_t *merged = NULL;
        if (old && (!t || json_equal(t, json_object_get(old, "type")))) {
            merged = json_copy(old);
            json_object_del(merged, "invalid");
            json_object_update(merged, cfg);
        }
        json_decref(snap);
        e = ext_set_put(a->exts, name, merged ? merged : cfg, err, sizeof err);
        json_decref(merged);
    }
    json_decref(own);
    if (e) {
        ext_error(r, e, name, err);
        return;
    }
    reply_entry(r, existed ? 200 : 201, key);
}

static void set_enabled(http_req *r, int mode /* 0 off, 1 on, -1 flip */)
{
    app *a = http_app(r);
    const char *name = http_param(r, 0);
    json_t *body = http_body(r);
    json_t *je = body ? json_object_get(body, "enabled") : NULL;
    if (mode < 0 && je) {
        if (!json_is_boolean(je)) {
            http_reply_error(r, 400, "bad_request", "enabled: must be true or false");
            return;
        }
        mode = json_is_true(je);
    }
    const char *uid = own_user(r);
    if (uid) {
        user_set_enabled(r, uid, name, mode);
        return;
    }
    char key[EXT_KEY_MAX + 1], err[1024];
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *c = ext_name_key(name, key, sizeof key, err, sizeof err) == GD_OK
                    ? json_object_get(snap, key)
                    : NULL;
    bool now = c && json_is_true(json_object_get(c, "enabled"));
    json_decref(snap);
    if (!c) {
        ext_error(r, GD_ENOTFOUND, name, "");
        return;
    }
    bool want = mode < 0 ? !now : mode == 1;
    gd_err e = ext_set_enable(a->exts, key, want, err, sizeof err);
    if (e) {
        ext_error(r, e, name, err);
        return;
    }
    reply_entry(r, 200, key);
}

void api_extensions_toggle(http_req *r)
{
    set_enabled(r, -1);
}

void api_extensions_enable(http_req *r)
{
    set_enabled(r, 1);
}

void api_extensions_disable(http_req *r)
{
    set_enabled(r, 0);
}

void api_extensions_delete(http_req *r)
{
    app *a = http_app(r);
    const char *name = http_param(r, 0);
    const char *uid = own_user(r);
    if (uid) {
        user_delete(r, uid, name);
        return;
    }
    char err[1024];
    gd_err e = ext_set_remove(a->exts, name, err, sizeof err);
    if (e) {
        ext_error(r, e, name, err);
        return;
    }
    http_reply_empty(r, 204);
}
