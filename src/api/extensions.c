/* Extensions: the configured set (config.yaml's `extensions:` map), listed with what the
 * sessions' instances are doing, added, toggled and removed (seed 001), and enabled or disabled
 * (seed 000). Secrets in a config (header values, envs values) are never shown. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "extensions/ext_config.h"

/* The config as shown: derived keys out, header and env values masked. A new object. */
static json_t *public_config(const json_t *c)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c, k, v)
    {
        if (!strcmp(k, "supported") || !strcmp(k, "invalid") || !strcmp(k, "refused")) continue;
        if ((!strcmp(k, "headers") || !strcmp(k, "envs")) && json_is_object(v)) {
            json_t *m = json_object();
            const char *hk;
            json_t *hv;
            json_object_foreach(v, hk, hv)
            {
                json_object_set_new(m, hk, json_string("***"));
            }
            json_object_set_new(out, k, m);
        } else {
            json_object_set(out, k, v);
        }
    }
    return out;
}

/* One list entry for name's checked config c. */
static json_t *entry_json(app *a, const char *name, const json_t *c)
{
    json_t *st = agent_extension_status(a->agent, name);
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
    json_decref(st);
    return e;
}

void api_extensions_list(http_req *r)
{
    app *a = http_app(r);
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(snap, k, v)
    {
        json_array_append_new(arr, entry_json(a, k, v));
    }
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
    case GD_ESTORE:
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: cannot save the extension: %s", err);
        return;
    default:
        http_reply_error(r, 500, "internal", "internal error: %s", gd_strerror(e));
        return;
    }
}

/* Answers 200 (or status) with the entry name now has. */
static void reply_entry(http_req *r, int status, const char *name)
{
    app *a = http_app(r);
    char key[EXT_KEY_MAX + 1], err[256];
    json_t *snap = ext_set_snapshot(a->exts, NULL);
    json_t *c = ext_name_key(name, key, sizeof key, err, sizeof err) == GD_OK
                    ? json_object_get(snap, key)
                    : NULL;
    if (c)
        http_reply_json(r, status, entry_json(a, key, c));
    else /* removed again in between */
        http_reply_error(r, 404, "not_found", "extension '%.100s' not found", name);
    json_decref(snap);
}

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
    char err[1024];
    gd_err e = ext_set_remove(a->exts, name, err, sizeof err);
    if (e) {
        ext_error(r, e, name, err);
        return;
    }
    http_reply_empty(r, 204);
}
