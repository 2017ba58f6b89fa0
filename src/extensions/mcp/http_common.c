/* What the MCP transports over HTTP share: config, requests on a curl_loop, responses read as
 * JSON or as an event stream, and the delivery of messages and of the end to the client. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <sodium.h>

#include "core/log.h"
#include "core/netaddr.h"
#include "core/trace.h"
#include "extensions/mcp/http_common.h"

/* ---- delivery ---- */

static void deliver(void *ud)
{
    mcp_http_base *b = ud;
    b->tick = NULL;
    b->depth++;
    while (!b->closing && !b->ended && json_array_size(b->inbox)) {
        json_t *m = json_incref(json_array_get(b->inbox, 0));
        json_array_remove(b->inbox, 0);
        b->cb.message(b->cb.ud, m);
        json_decref(m);
    }
    if (!b->closing && b->failed && !b->ended) {
        b->ended = true;
        b->cb.closed(b->cb.ud, b->end_err, b->end_why);
    }
    b->depth--;
    if (b->closing && !b->depth) b->teardown(b);
}

static void schedule(mcp_http_base *b)
{
    if (b->tick || b->closing) return;
    if (!(b->tick = loop_timer_add(b->l, 0, deliver, b)))
        log_error("mcp", "%s: out of memory handing over a message", b->uri);
}

void mcp_http_fail(mcp_http_base *b, gd_err e, const char *fmt, ...)
{
    if (b->failed) return;
    b->failed = true;
    b->end_err = e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->end_why, sizeof b->end_why, fmt, ap);
    va_end(ap);
    log_debug("mcp", "%s: transport ends: %s", b->uri, b->end_why);
    schedule(b);
}

void mcp_http_queue(mcp_http_base *b, mcp_req *r, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    if (r && r->want && id && !json_object_get(msg, "method")) {
        for (size_t i = 0; i < json_array_size(r->want); i++)
            if (json_equal(json_array_get(r->want, i), id)) {
                json_array_remove(r->want, i);
                break;
            }
    }
    if (b->ended) { /* what comes after the end goes nowhere */
        json_decref(msg);
        return;
    }
    if (json_array_append_new(b->inbox, msg)) { /* which took msg all the same */
        log_error("mcp", "%s: out of memory queueing a message", b->uri);
        return;
    }
    schedule(b);
}

gd_err mcp_http_parse(mcp_http_base *b, mcp_req *r, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (json_is_object(j)) {
        mcp_http_queue(b, r, j);
        return GD_OK;
    }
    bool batch = json_is_array(j) && json_array_size(j);
    for (size_t i = 0; batch && i < json_array_size(j); i++)
        batch = json_is_object(json_array_get(j, i));
    if (batch) {
        for (size_t i = 0; i < json_array_size(j); i++)
            mcp_http_queue(b, r, json_incref(json_array_get(j, i)));
        json_decref(j);
        return GD_OK;
    }
    if (r) {
        if (j)
            snprintf(r->why, sizeof r->why,
                     "the MCP server sent something that is not a JSON-RPC message");
        else
            snprintf(r->why, sizeof r->why, "the MCP server sent invalid JSON: %s", jerr.text);
    }
    json_decref(j);
    return GD_EPROTO;
}

void mcp_http_abandon(mcp_http_base *b, mcp_req *r, const char *why)
{
    for (size_t i = 0; r->want && i < json_array_size(r->want); i++) {
        json_t *m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                              json_array_get(r->want, i), "error", "code", -32000, "message", why);
        if (m) mcp_http_queue(b, NULL, m);
    }
    if (r->want) json_array_clear(r->want);
}

/* ---- config ---- */

gd_err mcp_http_base_init(mcp_http_base *b, const json_t *cfg, const ext_host *host,
                          const mcp_transport_cb *cb, char *err, size_t errlen)
{
    const char *uri = json_string_value(json_object_get(cfg, "uri"));
    if (!uri || (strncasecmp(uri, "http://", 7) && strncasecmp(uri, "https://", 8))) {
        snprintf(err, errlen, "uri: an http:// or https:// URL is required");
        return GD_EINVAL;
    }
    json_t *h = json_object_get(cfg, "headers");
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v)
    {
        const char *s = json_string_value(v);
        if (!s || strpbrk(s, "\r\n") || !*k || strpbrk(k, "\r\n: ")) {
            snprintf(err, errlen, "headers: %s: a header needs a name and a one-line string value",
                     k);
            return GD_EINVAL;
        }
    }
    b->l = host->l;
    b->cb = *cb;
    b->timeout_s = (long)json_integer_value(json_object_get(cfg, "timeout"));
    if (b->timeout_s <= 0) b->timeout_s = 300;
    b->uri = strdup(uri);
    b->headers = json_is_object(h) ? json_deep_copy(h) : json_object();
    b->inbox = json_array();
    if (!b->uri || !b->headers || !b->inbox) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    char name[256];
    b->reach =
        host->reach && !(net_url_host(uri, name, sizeof name) && net_allow_host(host->reach, name))
            ? host->reach
            : NULL;
    b->workers = host->workers;
    json_t *oa = json_object_get(cfg, "oauth");
    if (oa && !json_is_object(oa)) {
        snprintf(err, errlen,
                 "oauth: an object (client_id, client_secret, private_key, scope) is required");
        return GD_EINVAL;
    }
    static const char *const oauth_keys[] = {"client_id", "client_secret", "private_key", "scope"};
    for (size_t i = 0; i < sizeof oauth_keys / sizeof *oauth_keys; i++) {
        json_t *x = json_object_get(oa, oauth_keys[i]);
        if (x && !json_is_string(x)) {
            snprintf(err, errlen, "oauth: %s: a string is required", oauth_keys[i]);
            return GD_EINVAL;
        }
    }
    bool own_auth = false;
    json_object_foreach(b->headers, k, v) own_auth |= !strcasecmp(k, "authorization");
    if (host->oauth && host->workers && !own_auth) {
        mcp_oauth_cfg oc = *host->oauth;
        oc.client_id = json_string_value(json_object_get(oa, "client_id"));
        oc.client_secret = json_string_value(json_object_get(oa, "client_secret"));
        oc.client_key = json_string_value(json_object_get(oa, "private_key"));
        oc.scope = json_string_value(json_object_get(oa, "scope"));
        oc.reach = b->reach;
        oc.label = json_string_value(json_object_get(cfg, "name"));
        if (oc.workers) b->workers = oc.workers; /* a flow may wait minutes for the user */
        if (!(b->oauth = mcp_oauth_new(uri, &oc))) {
            snprintf(err, errlen, "out of memory");
            return GD_ENOMEM;
        }
    }
    char why[200];
    if (!(b->curl = curl_loop_new(b->l, "mcp", why, sizeof why))) {
        snprintf(err, errlen, "%s", why);
        return GD_EUNAVAIL;
    }
    return GD_OK;
}

void mcp_http_base_free(mcp_http_base *b)
{
    while (b->reqs)
        mcp_req_free(b->reqs);
    if (b->tick) loop_timer_cancel(b->tick);
    b->tick = NULL;
    curl_loop_free(b->curl);
    b->curl = NULL;
    json_decref(b->inbox);
    json_decref(b->headers);
    mcp_oauth_abort(b->oauth); /* a sign-in waiting for the user ends */
    mcp_oauth_unref(b->oauth);
    b->oauth = NULL;
    free(b->uri);
}

void mcp_http_base_close(mcp_http_base *b)
{
    if (b->depth) {
        b->closing = true;
        return;
    }
    b->teardown(b);
}

/* ---- requests ---- */

static gd_err on_event(void *ud, const char *event, const char *data)
{
    mcp_req *r = ud;
    r->got_event = true;
    if (!event || !strcmp(event, "message")) {
        size_t len = strlen(data);
        if (!len) return GD_OK; /* a priming event: an id and a retry time */
        if (len > MCP_LINE_MAX) {
            snprintf(r->why, sizeof r->why, "the MCP server sent a message over %u bytes",
                     MCP_LINE_MAX);
            return GD_EPROTO;
        }
        return mcp_http_parse(r->b, r, data, len);
    }
    return r->event ? r->event(r, event, data) : GD_OK;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    mcp_req *r = ud;
    size_t len = size * n;
    if (!r->status) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
        bool ok = r->status >= 200 && r->status <= 299;
        if (ok && !strcmp(r->ctype, "text/event-stream")) {
            r->sse = true;
            if (!(r->rd = sse_reader_new(MCP_LINE_MAX, on_event, r))) {
                r->stream_err = GD_ENOMEM;
                snprintf(r->why, sizeof r->why, "out of memory reading the MCP server's stream");
                return 0;
            }
        }
        buf_init(&r->raw, ok ? MCP_LINE_MAX : MCP_HTTP_ERRBODY_MAX);
    }
    if (r->sse) {
        gd_err e = sse_reader_feed(r->rd, p, len);
        if (e) {
            if (e == GD_ETOOBIG)
                snprintf(r->why, sizeof r->why,
                         "the MCP server sent an event stream line over %u bytes", MCP_LINE_MAX);
            r->stream_err = e == GD_ENOMEM ? e : GD_EPROTO;
            return 0;
        }
        return len;
    }
    size_t room = r->raw.cap > r->raw.len ? r->raw.cap - r->raw.len : 0;
    if (len > room) {
        if (r->status >= 200 && r->status <= 299) {
            snprintf(r->why, sizeof r->why, "the MCP server sent a message over %u bytes",
                     MCP_LINE_MAX);
            r->stream_err = GD_EPROTO;
            return 0;
        }
        len = room; /* an error's body: only its start is kept */
    }
    if (len && buf_append(&r->raw, p, len)) {
        r->stream_err = GD_ENOMEM;
        snprintf(r->why, sizeof r->why, "out of memory reading the MCP server's answer");
        return 0;
    }
    return size * n;
}

/* Copies a header's value (after "name:"), trimmed, into out (cut to fit); returns its whole
 * length. */
static size_t header_value(const char *p, size_t len, size_t skip, char *out, size_t outlen)
{
    const char *v = p + skip, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    size_t n = (size_t)(end - v), whole = n;
    if (n >= outlen) n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return whole;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    mcp_req *r = ud;
    size_t len = size * n;
    if (len > 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after a 100 Continue) */
        r->ctype[0] = '\0';
        r->session[0] = '\0';
        r->session_bad = false;
        r->www_auth[0] = '\0';
    } else if (len > 13 && !strncasecmp(p, "content-type:", 13)) {
        header_value(p, len, 13, r->ctype, sizeof r->ctype);
        char *semi = strchr(r->ctype, ';');
        if (semi) *semi = '\0';
        for (char *c = r->ctype; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        for (size_t i = strlen(r->ctype); i && r->ctype[i - 1] == ' '; i--)
            r->ctype[i - 1] = '\0';
    } else if (len > 17 && !strncasecmp(p, "www-authenticate:", 17)) {
        char v[sizeof r->www_auth];
        header_value(p, len, 17, v, sizeof v);
        if (!r->www_auth[0] || !strncasecmp(v, "bearer", 6)) /* the Bearer challenge first */
            snprintf(r->www_auth, sizeof r->www_auth, "%s", v);
    } else if (len > 15 && !strncasecmp(p, "mcp-session-id:", 15)) {
        size_t whole = header_value(p, len, 15, r->session, sizeof r->session);
        r->session_bad = whole >= sizeof r->session;
        for (const char *c = r->session; *c; c++)
            if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) r->session_bad = true;
    }
    return len;
}

curl_socket_t mcp_http_socket(const net_allow *reach, const char *uri, curlsocktype purpose,
                              struct curl_sockaddr *a, const char **refused)
{
    const struct sockaddr *sa = &a->addr; /* a->addrlen bytes: the whole address */
    const char *what = purpose != CURLSOCKTYPE_IPCXN ? "not an address"
                       : net_addr_internal(sa)       ?: net_addr_local(sa);
    if (what && !net_allow_addr(reach, sa)) {
        char text[64];
        net_addr_text(sa, text, sizeof text);
        log_warn("mcp",
                 "%s: not connecting to %s, %s: a user's extension may reach only public "
                 "addresses and user_extension_hosts",
                 uri, text, what);
        *refused = what;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* CURLOPT_OPENSOCKETFUNCTION under a reach (mcp_http_base): the socket for an address the
 * reach allows, else none (libcurl then tries the host's next address, or fails). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    mcp_req *r = ud;
    return mcp_http_socket(r->b->reach, r->b->uri, purpose, a, &r->refused);
}

static void on_done(CURL *easy, CURLcode code, void *ud)
{
    mcp_req *r = ud;
    curl_loop_remove(r->b->curl, easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (code != CURLE_OK && !r->status && r->b->reach &&
        !r->refused) /* what the user is not told */
        log_warn("mcp", "%s: %s", r->b->uri, r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
    r->done(r, code);
}

mcp_req *mcp_req_start(mcp_http_base *b, const char *method, const char *url,
                       const char *const *extra, const char *body, long total_ms, mcp_req_done done,
                       mcp_req_event event, void *ud)
{
    mcp_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->b = b;
    r->done = done;
    r->event = event;
    r->ud = ud;
    buf_init(&r->raw, MCP_HTTP_ERRBODY_MAX);
    bool ok = (r->easy = curl_easy_init()) != NULL;
    for (size_t i = 0; ok && extra && extra[i]; i++)
        ok = (r->hdrs = curl_slist_append(r->hdrs, extra[i])) != NULL;
    char tp[TRACESTATE_MAX + 16]; /* the tool call's trace context (trace.h), when traced */
    if (ok && trace_header_line(tp)) ok = (r->hdrs = curl_slist_append(r->hdrs, tp)) != NULL;
    if (ok && trace_state_line(tp)) ok = (r->hdrs = curl_slist_append(r->hdrs, tp)) != NULL;
    /* No "Expect: 100-continue" round trip before a large POST. */
    if (ok) ok = (r->hdrs = curl_slist_append(r->hdrs, "Expect:")) != NULL;
    const char *k;
    json_t *v;
    json_object_foreach(b->headers, k, v)
    {
        char line[8192];
        if (!ok) break;
        if ((size_t)snprintf(line, sizeof line, "%s: %s", k, json_string_value(v)) >= sizeof line)
            continue;
        ok = (r->hdrs = curl_slist_append(r->hdrs, line)) != NULL;
        sodium_memzero(line, sizeof line); /* it may hold a token */
    }
    if (ok && b->oauth) {
        char line[8300] = "Authorization: Bearer ";
        size_t at = strlen(line);
        r->token_gen = mcp_oauth_token(b->oauth, line + at, sizeof line - at);
        if (line[at]) ok = (r->hdrs = curl_slist_append(r->hdrs, line)) != NULL;
        sodium_memzero(line, sizeof line);
    }
    if (ok && body) ok = (r->body = strdup(body)) != NULL;
    if (!ok) {
        log_error("mcp", "%s: out of memory starting a request", b->uri);
        free(r->body);
        curl_slist_free_all(r->hdrs);
        if (r->easy) curl_easy_cleanup(r->easy);
        free(r);
        return NULL;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)MCP_HTTP_CONNECT_S);
    if (total_ms > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (b->reach) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
        curl_easy_setopt(e, CURLOPT_PROXY, ""); /* the address checked is the one reached */
    }
    if (curl_loop_add(b->curl, e, on_done, r) != GD_OK) {
        log_error("mcp", "%s: libcurl refused a request", b->uri);
        curl_slist_free_all(r->hdrs);
        curl_easy_cleanup(e);
        free(r->body);
        free(r);
        return NULL;
    }
    r->next = b->reqs;
    if (b->reqs) b->reqs->prev = r;
    b->reqs = r;
    b->nreqs++;
    log_debug("mcp", "%s %s", method, url);
    return r;
}

bool mcp_http_too_many(mcp_http_base *b)
{
    if (b->nreqs < MCP_HTTP_REQS_MAX) return false;
    mcp_http_fail(b, GD_EPROTO,
                  "the MCP server leaves more than %d of goosed's requests to it unanswered at "
                  "once",
                  MCP_HTTP_REQS_MAX);
    return true;
}

void mcp_req_free(mcp_req *r)
{
    if (!r) return;
    mcp_http_base *b = r->b;
    if (r->prev)
        r->prev->next = r->next;
    else if (b->reqs == r)
        b->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    b->nreqs--;
    if (r->easy) {
        curl_loop_remove(b->curl, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    free(r->body);
    sse_reader_free(r->rd);
    buf_free(&r->raw);
    json_decref(r->want);
    free(r);
}

void mcp_req_error(const mcp_req *r, CURLcode code, char *out, size_t outlen)
{
    if (r->stream_err) {
        snprintf(out, outlen, "%s", r->why);
    } else if (code != CURLE_OK && !r->status && r->b->reach) {
        /* One answer whatever happened (refused here, not resolved, not answering): the user
         * learns nothing of the names and addresses inside; the log says which. */
        snprintf(out, outlen,
                 "cannot reach the MCP server at %s: a user's extension may connect only to "
                 "public addresses that answer (an admin may allow others in "
                 "user_extension_hosts; the server's log says more)",
                 r->b->uri);
    } else if (code != CURLE_OK && !r->status) {
        snprintf(out, outlen, "cannot reach the MCP server at %s: %s", r->b->uri,
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
    } else if (code != CURLE_OK) {
        snprintf(out, outlen, "the MCP server's answer was cut: %s",
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
    } else {
        char body[200];
        size_t n = 0;
        for (size_t i = 0; i < r->raw.len && n < sizeof body - 1; i++) {
            unsigned char c = (unsigned char)r->raw.data[i];
            body[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
        body[n] = '\0';
        snprintf(out, outlen, "the MCP server answered HTTP %ld%s%s", r->status, n ? ": " : "",
                 body);
    }
}

/* ---- URLs ---- */

/* Length of url's scheme and authority ("https://host:port"), 0 when not http(s). */
static size_t origin_len(const char *url)
{
    size_t s;
    if (!strncasecmp(url, "http://", 7))
        s = 7;
    else if (!strncasecmp(url, "https://", 8))
        s = 8;
    else
        return 0;
    return s + strcspn(url + s, "/?#");
}

gd_err mcp_url_resolve(const char *base, const char *ref, char *out, size_t outlen)
{
    size_t ol = origin_len(base);
    if (!ol) return GD_EINVAL;
    for (const char *c = ref; *c; c++) /* a line break, a space: not one URL (found by fuzzing) */
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) return GD_EINVAL;
    int n;
    if (!strncmp(ref, "//", 2)) {
        size_t sl = (size_t)(strchr(base, ':') - base) + 1; /* "http:" */
        size_t rl = 2 + strcspn(ref + 2, "/?#");
        if (ol - sl != rl || strncasecmp(base + sl, ref, rl)) return GD_EINVAL;
        n = snprintf(out, outlen, "%.*s%s", (int)sl, base, ref);
    } else if (origin_len(ref)) {
        if (origin_len(ref) != ol || strncasecmp(base, ref, ol)) return GD_EINVAL;
        /* the origin as the server's URL spells it ("httP://" is the same, but not written) */
        n = snprintf(out, outlen, "%.*s%s", (int)ol, base, ref + ol);
    } else if (ref[0] == '/') {
        n = snprintf(out, outlen, "%.*s%s", (int)ol, base, ref);
    } else {
        size_t pl = ol + strcspn(base + ol, "?#"); /* origin and path */
        if (ref[0] != '?' && ref[0] != '#') {
            while (pl > ol && base[pl - 1] != '/')
                pl--;
            if (pl == ol) {
                n = snprintf(out, outlen, "%.*s/%s", (int)ol, base, ref);
                return n < 0 || (size_t)n >= outlen ? GD_EINVAL : GD_OK;
            }
        }
        n = snprintf(out, outlen, "%.*s%s", (int)pl, base, ref);
    }
    return n < 0 || (size_t)n >= outlen ? GD_EINVAL : GD_OK;
}
