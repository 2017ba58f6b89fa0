/* GET /api/config: the effective configuration. Secrets never appear here. PATCH changes the
 * settings seed B names (execution_mode, auto_save) and keeps them in config.yaml. */
#include "api/api.h"

#include <string.h>

#include "config/secrets.h"

void api_config_get(http_req *r)
{
    app *a = http_app(r);
    const config *c = a->cfg;
    char provider[128], model[256];
    agent_current(a->agent, provider, sizeof provider, model, sizeof model);
    json_t *origins = json_array();
    for (int i = 0; i < c->ncors; i++)
        json_array_append_new(origins, json_string(c->cors[i]));
    json_t *o = json_pack("{s:s?, s:s?, s:s, s:I, s:I, s:I, s:I, s:o, s:s, s:s?, s:s}", "provider",
                          provider[0] ? provider : NULL, "model", model[0] ? model : NULL, "host",
                          c->host, "port", (json_int_t)c->port, "api_timeout",
                          (json_int_t)c->api_timeout, "max_retries", (json_int_t)c->max_retries,
                          "max_body_size", (json_int_t)c->max_body_size, "cors_origins", origins,
                          "log_level", c->log_spec, "config_file",
                          c->config_file[0] ? c->config_file : NULL, "data_dir", c->data_dir);
    json_object_set_new(o, "execution_mode", json_string(exec_mode_name(agent_mode(a->agent))));
    json_object_set_new(o, "auto_save", json_true());
    http_reply_json(r, 200, o);
}

void api_config_patch(http_req *r)
{
    app *a = http_app(r);
    json_t *body = http_body(r);
    if (!json_is_object(body) || !json_object_size(body)) {
        http_reply_error(r, 400, "bad_request",
                         "a JSON object with at least one of execution_mode, auto_save is "
                         "required");
        return;
    }
    const char *k;
    json_t *v;
    int mode = -1;
    json_object_foreach(body, k, v)
    {
        if (!strcmp(k, "execution_mode")) {
            if ((mode = exec_mode_parse(json_string_value(v))) < 0) {
                http_reply_error(r, 400, "bad_request",
                                 "execution_mode: expected auto, approve, smart_approve "
                                 "(or smart_approval) or chat");
                return;
            }
        } else if (!strcmp(k, "auto_save")) {
            if (!json_is_true(v)) {
                http_reply_error(r, 400, "bad_request",
                                 json_is_false(v)
                                     ? "auto_save: goosed stores every message as soon as it is "
                                       "complete; it cannot be turned off"
                                     : "auto_save: a boolean is required");
                return;
            }
        } else {
            http_reply_error(r, 400, "bad_request",
                             "%.64s: unknown setting (PATCH takes execution_mode, auto_save)", k);
            return;
        }
    }
    if (mode >= 0) {
        const char *key = "GOOSE_MODE", *val = exec_mode_name((exec_mode)mode);
        char err[512];
        if (a->cfg->config_path[0] &&
            config_file_set(a->cfg->config_path, &key, &val, 1, err, sizeof err) != GD_OK) {
            http_reply_error(r, 503, "storage_unavailable", "cannot save the setting: %s", err);
            return;
        }
        agent_set_mode(a->agent, (exec_mode)mode);
    }
    api_config_get(r);
}
