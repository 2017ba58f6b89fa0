/* GET /api/config: the effective configuration. Secrets never appear here. */
#include "api/api.h"

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
    http_reply_json(r, 200, o);
}
