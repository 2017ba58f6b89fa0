/* The anthropic dialect: not written yet; requests fail with a clear message.
 */
#include <stdio.h>
#include <stdlib.h>

#include "providers/provider.h"

struct prov_parser {
  int unused;
};

static json_t *build(const provider_cfg *c, const char *system,
                     json_t *messages, json_t *tools) {
  return json_object();
}
static void url(const provider_cfg *c, char *u, size_t len) {
  snprintf(u, len, "%s/%s", c->base, c->path);
}
static struct curl_slist *headers(const provider_cfg *c, struct curl_slist *h) {
  return h;
}
static prov_parser *parser_new(const prov_sink *sink) {
  return calloc(1, sizeof(prov_parser));
}
static gd_err parser_event(prov_parser *p, const char *event, const char *data,
                           prov_result *res) {
  snprintf(res->error, sizeof res->error,
           "the anthropic provider is not supported yet");
  return GD_EINVAL;
}
static gd_err parser_finish(prov_parser *p, prov_result *res) {
  snprintf(res->error, sizeof res->error,
           "the anthropic provider is not supported yet");
  return GD_EINVAL;
}
static void parser_free(prov_parser *p) { free(p); }
static void error_body(const char *body, size_t len, prov_result *res) {
  snprintf(res->error, sizeof res->error, "%.*s", (int)(len > 300 ? 300 : len),
           body);
}

const prov_dialect_ops dialect_anthropic = {
    "anthropic",  build,         url,         headers,   parser_new,
    parser_event, parser_finish, parser_free, error_body};
