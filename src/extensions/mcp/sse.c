/* The legacy HTTP+SSE transport (MCP 2024-11-05): a GET of the uri opens an event stream whose
 * first `endpoint` event names the URL (relative to the uri, on the same origin) that messages
 * are POSTed to; every message from the server, responses included, arrives on the stream as a
 * `message` event. Messages sent before the endpoint is known wait for it. There is no
 * resumption: the stream's end is the transport's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jtext.h"
#include "core/log.h"
#include "extensions/mcp/http_common.h"

typedef struct {
    mcp_http_base b;
    char *endpoint;    /* NULL until the server named it */
    json_t *pending;   /* messages waiting for the endpoint */
    loop_timer *flush; /* posts them, outside libcurl's callbacks */
} sse_t;

static void post(sse_t *t, json_t *msg);

static void on_post_done(mcp_req *r, CURLcode code)
{
    sse_t *t = r->ud;
    char why[512];
    mcp_req_error(r, code, why, sizeof why);
    if (t->b.failed) {
        /* the end is on its way */
    } else if (r->status == 404) {
        mcp_http_fail(&t->b, GD_ENOTFOUND, "ended the MCP session (HTTP 404)");
    } else if (code != CURLE_OK && !r->status) {
        mcp_http_fail(&t->b, GD_EIO, "%s", why);
    } else if (code != CURLE_OK || r->status < 200 || r->status > 299) {
        if (json_array_size(r->want))
            mcp_http_abandon(&t->b, r, why);
        else
            log_warn("mcp", "%s: a message was refused: %s", t->b.uri, why);
    } /* else accepted: the answer comes on the stream */
    mcp_req_free(r);
}

static void flush_now(void *ud)
{
    sse_t *t = ud;
    t->flush = NULL;
    for (size_t i = 0; !t->b.failed && i < json_array_size(t->pending); i++)
        post(t, json_array_get(t->pending, i));
    json_array_clear(t->pending);
}

static gd_err on_event(mcp_req *r, const char *event, const char *data)
{
    sse_t *t = r->ud;
    if (strcmp(event, "endpoint") || t->endpoint) return GD_OK;
    char url[2048];
    if (mcp_url_resolve(t->b.uri, data, url, sizeof url)) {
        snprintf(r->why, sizeof r->why,
                 "the MCP server named an endpoint that is not on the origin of %s", t->b.uri);
        return GD_EPROTO;
    }
    if (!(t->endpoint = strdup(url))) {
        snprintf(r->why, sizeof r->why, "out of memory");
        return GD_ENOMEM;
    }
    log_debug("mcp", "%s: messages go to %s", t->b.uri, url);
    /* Not from inside libcurl's callback: on the next iteration. */
    if (json_array_size(t->pending) && !(t->flush = loop_timer_add(t->b.l, 0, flush_now, t))) {
        snprintf(r->why, sizeof r->why, "out of memory");
        return GD_ENOMEM;
    }
    return GD_OK;
}

static void on_stream_done(mcp_req *r, CURLcode code)
{
    sse_t *t = r->ud;
    char why[512];
    mcp_req_error(r, code, why, sizeof why);
    if (r->stream_err)
        mcp_http_fail(&t->b, r->stream_err == GD_ENOMEM ? GD_ENOMEM : GD_EPROTO, "%s", why);
    else if (r->status == 404)
        mcp_http_fail(&t->b, GD_ENOTFOUND, "ended the MCP session (HTTP 404)");
    else if ((code != CURLE_OK && !r->status) || r->status < 200 || r->status > 299)
        mcp_http_fail(&t->b, GD_EIO, "%s", why);
    else if (!r->sse)
        mcp_http_fail(&t->b, GD_EPROTO, "the MCP server at %s did not answer with an event stream",
                      t->b.uri);
    else
        mcp_http_fail(&t->b, GD_EIO, "the MCP server closed its event stream");
    mcp_req_free(r);
}

static void post(sse_t *t, json_t *msg)
{
    if (mcp_http_too_many(&t->b)) return;
    char *body = jtext(msg, NULL);
    static const char *const lines[] = {"Content-Type: application/json", NULL};
    mcp_req *r =
        body ? mcp_req_start(&t->b, "POST", t->endpoint, lines, body,
                             (t->b.timeout_s + MCP_HTTP_CONNECT_S) * 1000L, on_post_done, NULL, t)
             : NULL;
    free(body);
    json_t *id = json_object_get(msg, "id");
    if (r && id && json_object_get(msg, "method") && !(r->want = json_pack("[O]", id))) {
        mcp_req_free(r);
        r = NULL;
    }
    if (!r) mcp_http_fail(&t->b, GD_ENOMEM, "out of memory sending a message");
}

static void sse_send(mcp_transport *tr, json_t *msg)
{
    sse_t *t = (sse_t *)tr;
    if (t->b.failed) return;
    if (t->endpoint)
        post(t, msg);
    else if (json_array_append(t->pending, msg)) /* posted once the endpoint is known */
        mcp_http_fail(&t->b, GD_ENOMEM, "out of memory sending a message");
}

static void sse_set_version(mcp_transport *tr, const char *version)
{
    (void)tr;
    (void)version; /* the 2024-11-05 transport sends no version header */
}

static void sse_free(sse_t *t)
{
    if (t->flush) loop_timer_cancel(t->flush);
    mcp_http_base_free(&t->b);
    json_decref(t->pending);
    free(t->endpoint);
    free(t);
}

static void teardown(mcp_http_base *b)
{
    sse_free((sse_t *)b);
}

static void sse_close(mcp_transport *tr)
{
    mcp_http_base_close((mcp_http_base *)tr);
}

static const mcp_transport_ops sse_ops = {
    .send = sse_send,
    .set_protocol_version = sse_set_version,
    .close = sse_close,
};

mcp_transport *mcp_sse_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                           char *err, size_t errlen)
{
    sse_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    err[0] = '\0';
    t->b.t.ops = &sse_ops;
    t->b.teardown = teardown;
    static const char *const lines[] = {"Accept: text/event-stream", NULL};
    if (mcp_http_base_init(&t->b, cfg, host, cb, err, errlen) || !(t->pending = json_array()) ||
        !mcp_req_start(&t->b, "GET", t->b.uri, lines, NULL, 0, on_stream_done, on_event, t)) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        sse_free(t);
        return NULL;
    }
    return &t->b.t;
}
