/* Liveness (/status, the real goosed's probe), readiness (/api/health) and the OpenAPI document. */
#include <string.h>

#include "api/api.h"
#include "core/clock.h"

extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;

void api_status(http_req *r)
{
    http_reply_static(r, 200, "text/plain; charset=utf-8", "ok", 2);
}

void api_health(http_req *r)
{
    app *a = http_app(r);
    gd_err e = a->st->ops->health(a->st);
    json_int_t up = (json_int_t)((clock_mono_ns() - a->started_ns) / 1000000000u);
    http_reply_json(r, e ? 503 : 200,
                    json_pack("{s:s, s:s, s:I, s:s}", "status", e ? "unavailable" : "ok", "version",
                              GOOSED_VERSION, "uptime_s", up, "store", e ? store_errmsg() : "ok"));
}

void api_openapi(http_req *r)
{
    http_reply_static(r, 200, "application/json; charset=utf-8", openapi_json, openapi_json_len);
}
