/* An MCP client's OAuth 2.1 authorization (oauth.h): discovery, registration, PKCE, the code's
 * exchange, refresh and step-up, over blocking libcurl requests on the caller's thread. */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <sodium.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/urlenc.h"
#include "extensions/mcp/http_common.h"
#include "extensions/mcp/oauth.h"

#define URL_MAX      2048u
#define TOKEN_MAX    8192u /* an access or refresh token */
#define SCOPE_MAX    1024u
#define AUTH_METHODS 3

struct mcp_oauth {
    atomic_int refs;
    pthread_mutex_t flow; /* one flow at a time; held across the network */
    pthread_mutex_t mu;   /* the token, read by the transport's loop */
    char *server;         /* the MCP server's URL, as configured */
    char *client_name, *redirect_uri, *cfg_client_id, *cfg_client_secret, *metadata_url, *cfg_scope;
    char *cfg_client_key; /* PEM: private_key_jwt */
    const net_allow *reach;
    char *label;
    mcp_oauth_consent_fn consent;
    void (*consent_abort)(void *ud, const char *state);
    char *(*grant_load)(void *ud, const char *server);
    void (*grant_save)(void *ud, const char *server, const char *grant);
    void *consent_ud;
    void (*hold)(void *ud, int delta);
    bool aborted;     /* mu's: the owner is gone */
    char waiting[32]; /* mu's: the state of the consent waited for now, or "" */
    /* what the flow learnt; flow's lock */
    char issuer[URL_MAX];          /* the authorization server these belong to */
    char client_id[URL_MAX];       /* registered (or configured, or the metadata document's URL) */
    char client_secret[512];       /* "" for a public client */
    char auth_method[32];          /* client_secret_basic, client_secret_post or none */
    char client_redirect[URL_MAX]; /* the redirect URI the client was chosen for */
    char as_issuer[URL_MAX];       /* the issuer its metadata names: a signed JWT's audience */
    char token_endpoint[URL_MAX];
    char resource[URL_MAX]; /* the resource indicator sent */
    char scope[SCOPE_MAX];  /* the scope last asked for */
    char refresh[TOKEN_MAX];
    char token[TOKEN_MAX]; /* mu's, with its generation */
    unsigned gen;
};

static bool adopt_saved(mcp_oauth *o);
static void b64url(const unsigned char *in, size_t len, char *out, size_t outlen);
static const char *key_alg(const char *pem_text, gnutls_privkey_t *pk);

/* ---- small parts ---- */

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static void wipe_free(char *s)
{
    if (!s) return;
    sodium_memzero(s, strlen(s));
    free(s);
}

mcp_oauth *mcp_oauth_new(const char *server_url, const mcp_oauth_cfg *cfg)
{
    mcp_oauth *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    atomic_init(&o->refs, 1);
    pthread_mutex_init(&o->flow, NULL);
    pthread_mutex_init(&o->mu, NULL);
    o->server = strdup(server_url);
    o->client_name = strdup(cfg->client_name ? cfg->client_name : "goosed");
    o->redirect_uri = dup_or_null(cfg->redirect_uri);
    o->cfg_client_id = dup_or_null(cfg->client_id);
    o->cfg_client_secret = dup_or_null(cfg->client_secret);
    o->cfg_client_key = dup_or_null(cfg->client_key);
    o->metadata_url = dup_or_null(cfg->client_metadata_url);
    o->cfg_scope = dup_or_null(cfg->scope);
    o->reach = cfg->reach;
    o->label = strdup(cfg->label ? cfg->label : server_url);
    o->consent = cfg->consent;
    o->consent_abort = cfg->consent_abort;
    o->grant_load = cfg->grant_load;
    o->grant_save = cfg->grant_save;
    o->consent_ud = cfg->consent_ud;
    if ((o->hold = cfg->hold)) o->hold(o->consent_ud, +1);
    if (!o->server || !o->client_name || !o->redirect_uri || !o->label ||
        (cfg->client_id && *cfg->client_id && !o->cfg_client_id) ||
        (cfg->client_secret && *cfg->client_secret && !o->cfg_client_secret) ||
        (cfg->client_key && *cfg->client_key && !o->cfg_client_key)) {
        mcp_oauth_unref(o);
        return NULL;
    }
    char *g = o->grant_load ? o->grant_load(o->consent_ud, o->server) : NULL;
    if (g) {
        mcp_oauth_import(o, g);
        wipe_free(g);
    }
    return o;
}

void mcp_oauth_abort(mcp_oauth *o)
{
    if (!o) return;
    char state[sizeof o->waiting];
    pthread_mutex_lock(&o->mu);
    o->aborted = true;
    snprintf(state, sizeof state, "%s", o->waiting);
    pthread_mutex_unlock(&o->mu);
    if (state[0] && o->consent_abort) o->consent_abort(o->consent_ud, state);
}

mcp_oauth *mcp_oauth_ref(mcp_oauth *o)
{
    atomic_fetch_add(&o->refs, 1);
    return o;
}

void mcp_oauth_unref(mcp_oauth *o)
{
    if (!o || atomic_fetch_sub(&o->refs, 1) != 1) return;
    free(o->server);
    free(o->client_name);
    free(o->redirect_uri);
    free(o->cfg_client_id);
    wipe_free(o->cfg_client_secret);
    wipe_free(o->cfg_client_key);
    free(o->metadata_url);
    free(o->cfg_scope);
    free(o->label);
    if (o->hold) o->hold(o->consent_ud, -1);
    pthread_mutex_destroy(&o->flow);
    pthread_mutex_destroy(&o->mu);
    sodium_memzero(o, sizeof *o);
    free(o);
}

unsigned mcp_oauth_token(mcp_oauth *o, char *out, size_t outlen)
{
    pthread_mutex_lock(&o->mu);
    bool fits = strlen(o->token) < outlen;
    snprintf(out, outlen, "%s", fits ? o->token : "");
    unsigned gen = o->gen;
    pthread_mutex_unlock(&o->mu);
    return gen;
}

static void set_token(mcp_oauth *o, const char *t)
{
    pthread_mutex_lock(&o->mu);
    snprintf(o->token, sizeof o->token, "%s", t);
    o->gen++;
    pthread_mutex_unlock(&o->mu);
}

/* err for the user: printf-like, with the server's own words kept to printable ASCII. */
static gd_err fail(gd_err e, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static gd_err fail(gd_err e, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = '?';
    return e;
}

/* ---- WWW-Authenticate (RFC 6750 §3, RFC 9110 §11.6.1) ---- */

bool mcp_oauth_challenge_param(const char *www_auth, const char *name, char *out, size_t outlen)
{
    const char *p = www_auth;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) || (p[6] && p[6] != ' ' && p[6] != '\t')) return false;
    p += 6;
    size_t nlen = strlen(name);
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) return false;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ' && *p != ',')
            p++;
        size_t klen = (size_t)(p - k);
        while (*p == ' ')
            p++;
        if (*p != '=') return false; /* another scheme's challenge begins: not ours */
        p++;
        while (*p == ' ')
            p++;
        char val[URL_MAX];
        size_t n = 0;
        bool cut = false;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1]) p++;
                if (n + 1 < sizeof val)
                    val[n++] = *p;
                else
                    cut = true;
            }
            if (*p == '"') p++;
        } else {
            for (; *p && *p != ',' && *p != ' ' && *p != '\t'; p++)
                if (n + 1 < sizeof val)
                    val[n++] = *p;
                else
                    cut = true;
        }
        val[n] = '\0';
        if (klen == nlen && !strncasecmp(k, name, nlen)) {
            if (cut || n >= outlen) return false;
            memcpy(out, val, n + 1);
            return true;
        }
    }
}

/* ---- URLs ---- */

/* scheme://host[:port] of url into origin (lowercased, without the scheme's default port), and
 * its path (without query, fragment or trailing slashes) into path ("" for "/"); false when url
 * is not a plain http(s) URL (user info, a backslash, a control character or a space). */
static bool url_split(const char *url, char *origin, size_t olen, char *path, size_t plen)
{
    size_t sl = !strncasecmp(url, "https://", 8) ? 8 : !strncasecmp(url, "http://", 7) ? 7 : 0;
    if (!sl) return false;
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == '\\') return false;
    const char *host = url + sl;
    size_t hl = strcspn(host, "/?#");
    if (!hl || memchr(host, '@', hl) || sl + hl >= olen) return false;
    const char *p = host + hl;
    size_t pl = *p == '/' ? strcspn(p, "?#") : 0;
    while (pl && p[pl - 1] == '/')
        pl--;
    if (pl >= plen) return false;
    size_t n = 0;
    for (size_t i = 0; i < sl; i++)
        origin[n++] = (char)tolower((unsigned char)url[i]);
    for (size_t i = 0; i < hl; i++)
        origin[n++] = (char)tolower((unsigned char)host[i]);
    origin[n] = '\0';
    const char *dflt = sl == 8 ? ":443" : ":80";
    if (n > strlen(dflt) && !strcmp(origin + n - strlen(dflt), dflt))
        origin[n - strlen(dflt)] = '\0';
    memcpy(path, p, pl);
    path[pl] = '\0';
    return true;
}

bool mcp_oauth_resource_matches(const char *resource, const char *server_url)
{
    char ro[URL_MAX], rp[URL_MAX], so[URL_MAX], sp[URL_MAX];
    if (!url_split(resource, ro, sizeof ro, rp, sizeof rp) ||
        !url_split(server_url, so, sizeof so, sp, sizeof sp) || strcmp(ro, so))
        return false;
    size_t n = strlen(rp);
    return !strncmp(sp, rp, n) && (sp[n] == '\0' || sp[n] == '/');
}

/* ---- HTTP ---- */

typedef struct {
    mcp_oauth *o;
    buf body;
    long status;
    const char *refused;
} answer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    answer *a = ud;
    return buf_append(&a->body, p, size * n) ? 0 : size * n;
}

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *sa)
{
    answer *a = ud;
    return mcp_http_socket(a->o->reach, a->o->server, purpose, sa, &a->refused);
}

/* One request: GET (form NULL) or POST of form (application/x-www-form-urlencoded) or json;
 * basic: "id:secret" for HTTP Basic, or NULL. The answer's body in a->body (its caller frees
 * it). GD_EIO with err set when nothing came back. */
static gd_err fetch(mcp_oauth *o, const char *url, const char *form, const char *json,
                    const char *basic, answer *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->o = o;
    buf_init(&a->body, MCP_OAUTH_BODY_MAX);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    if (!e) return fail(GD_ENOMEM, err, errlen, "out of memory");
    char ebuf[CURL_ERROR_SIZE] = "";
    bool ok = (h = curl_slist_append(h, "Accept: application/json")) != NULL;
    if (ok && json) ok = (h = curl_slist_append(h, "Content-Type: application/json")) != NULL;
    if (ok && form)
        ok = (h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded")) != NULL;
    if (!ok) {
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return fail(GD_ENOMEM, err, errlen, "out of memory");
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (form || json) curl_easy_setopt(e, CURLOPT_POSTFIELDS, form ? form : json);
    if (basic) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERPWD, basic);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)MCP_OAUTH_HTTP_S);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (o->reach) {
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, a);
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    }
    CURLcode c = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    log_debug("mcp", "oauth: %s %s: %ld", form || json ? "POST" : "GET", url, a->status);
    if (c == CURLE_OK) return GD_OK;
    buf_free(&a->body);
    if (a->refused)
        return fail(GD_EDENIED, err, errlen,
                    "%s is %s: a user's extension may reach only public addresses", url,
                    a->refused);
    return fail(GD_EIO, err, errlen, "%s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(c));
}

/* A 200 answer's JSON object, or NULL. */
static json_t *json_answer(answer *a)
{
    json_t *j = a->status == 200
                    ? json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, NULL)
                    : NULL;
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : NULL;
}

/* GETs the first of urls (NULL-terminated) that answers 200 with a JSON object. NULL with err
 * set when a request failed, NULL with err "" when none has such metadata. */
static json_t *first_metadata(mcp_oauth *o, const char *const *urls, char *err, size_t errlen)
{
    err[0] = '\0';
    for (size_t i = 0; urls[i]; i++) {
        answer a;
        if (fetch(o, urls[i], NULL, NULL, NULL, &a, err, errlen)) return NULL;
        json_t *j = json_answer(&a);
        buf_free(&a.body);
        if (j) return j;
    }
    return NULL;
}

/* ---- the flow's steps ---- */

typedef struct {
    char as[URL_MAX]; /* the authorization server's issuer URL */
    char resource[URL_MAX];
    char scopes[SCOPE_MAX]; /* the resource's scopes_supported, space-separated */
    bool prm;               /* the resource published its metadata */
} resource_info;

/* RFC 9728: the resource's metadata, at the URL its challenge names, else at the well-known
 * places for its path and for its root; without any, 2025-03-26: the server's origin is the
 * authorization server. */
static gd_err discover_resource(mcp_oauth *o, const char *www_auth, resource_info *ri, char *err,
                                size_t errlen)
{
    char origin[URL_MAX], path[URL_MAX], named[URL_MAX], u1[URL_MAX * 2], u2[URL_MAX * 2];
    if (!url_split(o->server, origin, sizeof origin, path, sizeof path))
        return fail(GD_EINVAL, err, errlen, "%s is not an http(s) URL", o->server);
    const char *urls[3] = {NULL, NULL, NULL};
    if (mcp_oauth_challenge_param(www_auth, "resource_metadata", named, sizeof named)) {
        urls[0] = named;
    } else {
        snprintf(u1, sizeof u1, "%s/.well-known/oauth-protected-resource%s", origin, path);
        snprintf(u2, sizeof u2, "%s/.well-known/oauth-protected-resource", origin);
        urls[0] = u1;
        urls[1] = path[0] ? u2 : NULL;
    }
    json_t *m = first_metadata(o, urls, err, errlen);
    if (!m && err[0]) return GD_EIO;
    memset(ri, 0, sizeof *ri);
    if (!m && strncasecmp(www_auth, "bearer", 6))
        return fail(GD_EDENIED, err, errlen,
                    "the server refused the request and names no way to authorize (no Bearer "
                    "challenge, no protected resource metadata)");
    if (!m) {
        snprintf(ri->as, sizeof ri->as, "%s", origin);
        snprintf(ri->resource, sizeof ri->resource, "%s", o->server);
        return GD_OK;
    }
    ri->prm = true;
    const char *res = jstr(m, "resource");
    const char *as =
        json_string_value(json_array_get(json_object_get(m, "authorization_servers"), 0));
    gd_err e = GD_OK;
    if (!res || !mcp_oauth_resource_matches(res, o->server)) {
        e = fail(GD_EDENIED, err, errlen,
                 "the server's protected resource metadata names %s%.512s, not %s: no "
                 "authorization for another resource",
                 res ? "the resource " : "no resource", res ? res : "", o->server);
    } else if (!as || (strncasecmp(as, "https://", 8) && strncasecmp(as, "http://", 7)) ||
               strlen(as) >= sizeof ri->as) {
        e = fail(GD_EPROTO, err, errlen,
                 "the server's protected resource metadata names no authorization server");
    } else {
        snprintf(ri->as, sizeof ri->as, "%s", as);
        snprintf(ri->resource, sizeof ri->resource, "%s", res);
        json_t *s;
        size_t i;
        json_array_foreach(json_object_get(m, "scopes_supported"), i, s)
        {
            const char *v = json_string_value(s);
            size_t at = strlen(ri->scopes);
            if (v && *v && !strpbrk(v, " \"\\") &&
                (size_t)snprintf(ri->scopes + at, sizeof ri->scopes - at, "%s%s", at ? " " : "",
                                 v) >= sizeof ri->scopes - at)
                ri->scopes[at] = '\0';
        }
    }
    json_decref(m);
    return e;
}

typedef struct {
    char issuer[URL_MAX]; /* as its metadata names it (else the identifier it was found by) */
    char authorize[URL_MAX], token[URL_MAX], registration[URL_MAX];
    bool cimd;              /* client_id_metadata_document_supported */
    bool s256;              /* PKCE with S256 (code_challenge_methods_supported) */
    bool code, cc;          /* the authorization code and client credentials grants */
    bool basic, post, none; /* token_endpoint_auth_methods_supported (basic alone when absent) */
    bool jwt;               /* and private_key_jwt */
    bool es256, rs256;      /* token_endpoint_auth_signing_alg_values_supported (any when absent) */
    bool iss_param;         /* authorization_response_iss_parameter_supported (RFC 9207) */
} server_info;

/* RFC 8414 §3.1 and OpenID Connect discovery, in MCP's order; without metadata (2025-03-26 only)
 * the default endpoints at the server's root. */
static gd_err discover_server(mcp_oauth *o, const resource_info *ri, server_info *si, char *err,
                              size_t errlen)
{
    char origin[URL_MAX], path[URL_MAX], u[3][URL_MAX * 2];
    if (!url_split(ri->as, origin, sizeof origin, path, sizeof path))
        return fail(GD_EPROTO, err, errlen, "the authorization server %s is not an http(s) URL",
                    ri->as);
    const char *urls[4] = {u[0], u[1], NULL, NULL};
    if (path[0]) {
        snprintf(u[0], sizeof u[0], "%s/.well-known/oauth-authorization-server%s", origin, path);
        snprintf(u[1], sizeof u[1], "%s/.well-known/openid-configuration%s", origin, path);
        snprintf(u[2], sizeof u[2], "%s%s/.well-known/openid-configuration", origin, path);
        urls[2] = u[2];
    } else {
        snprintf(u[0], sizeof u[0], "%s/.well-known/oauth-authorization-server", origin);
        snprintf(u[1], sizeof u[1], "%s/.well-known/openid-configuration", origin);
    }
    json_t *m = first_metadata(o, urls, err, errlen);
    if (!m && err[0]) return GD_EIO;
    memset(si, 0, sizeof *si);
    if (!m) {
        if (ri->prm)
            return fail(GD_EPROTO, err, errlen,
                        "the authorization server %s publishes no metadata (RFC 8414)", ri->as);
        snprintf(si->issuer, sizeof si->issuer, "%s", ri->as);
        snprintf(si->authorize, sizeof si->authorize, "%s/authorize", origin);
        snprintf(si->token, sizeof si->token, "%s/token", origin);
        snprintf(si->registration, sizeof si->registration, "%s/register", origin);
        si->basic = si->post = si->none = si->s256 = si->code = true;
        return GD_OK;
    }
    /* RFC 8414 §3.3 (and OpenID Connect discovery §4.3): the metadata names the issuer it was
     * asked for, else it may be another server's, planted to collect codes and secrets. Held to
     * the same origin (scheme, host, port): a server with a path (a tenant) often names its
     * origin alone, as the MCP conformance suite's does. */
    const char *iss = jstr(m, "issuer");
    char io[URL_MAX], ip[URL_MAX];
    if (!iss || !url_split(iss, io, sizeof io, ip, sizeof ip) || strcmp(io, origin)) {
        fail(GD_EDENIED, err, errlen,
             "the authorization server's metadata names the issuer %.200s, not %s",
             iss ? iss : "(none)", ri->as);
        json_decref(m);
        return GD_EDENIED;
    }
    const char *az = jstr(m, "authorization_endpoint"), *tk = jstr(m, "token_endpoint"),
               *rg = jstr(m, "registration_endpoint");
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(m, "code_challenge_methods_supported"), i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), "S256")) si->s256 = true;
    }
    json_t *grants = json_object_get(m, "grant_types_supported");
    json_array_foreach(grants, i, v)
    {
        const char *g = json_string_value(v);
        si->code |= g && !strcmp(g, "authorization_code");
        si->cc |= g && !strcmp(g, "client_credentials");
    }
    if (!json_is_array(grants)) si->code = true; /* RFC 8414's default, with implicit */
    json_t *methods = json_object_get(m, "token_endpoint_auth_methods_supported");
    json_array_foreach(methods, i, v)
    {
        const char *s = json_string_value(v);
        if (!s) continue;
        si->basic |= !strcmp(s, "client_secret_basic");
        si->post |= !strcmp(s, "client_secret_post");
        si->none |= !strcmp(s, "none");
        si->jwt |= !strcmp(s, "private_key_jwt");
    }
    if (!json_is_array(methods)) si->basic = true; /* RFC 8414's default */
    json_t *algs = json_object_get(m, "token_endpoint_auth_signing_alg_values_supported");
    si->es256 = si->rs256 = !json_is_array(algs);
    json_array_foreach(algs, i, v)
    {
        const char *a = json_string_value(v);
        si->es256 |= a && !strcmp(a, "ES256");
        si->rs256 |= a && !strcmp(a, "RS256");
    }
    si->cimd = json_is_true(json_object_get(m, "client_id_metadata_document_supported"));
    si->iss_param =
        json_is_true(json_object_get(m, "authorization_response_iss_parameter_supported"));
    gd_err e = GD_OK;
    /* The authorization endpoint is shown to the user to open: a plain http(s) URL only (no
     * control characters for a terminal, no other scheme for a browser). */
    char eo[URL_MAX], ep[URL_MAX];
    /* RFC 8414 §2: no authorization endpoint where no grant uses one (a machine's server) */
    if (!az && !si->code) az = "";
    if ((!*az && si->code) || !tk || strlen(az) >= sizeof si->authorize ||
        strlen(tk) >= sizeof si->token || (rg && strlen(rg) >= sizeof si->registration) ||
        (*az && !url_split(az, eo, sizeof eo, ep, sizeof ep)) ||
        !url_split(tk, eo, sizeof eo, ep, sizeof ep) ||
        (rg && !url_split(rg, eo, sizeof eo, ep, sizeof ep)))
        e = fail(GD_EPROTO, err, errlen,
                 "the authorization server %s names no authorization or token endpoint (as "
                 "http(s) URLs)",
                 ri->as);
    if (!e) {
        snprintf(si->issuer, sizeof si->issuer, "%.*s", (int)sizeof si->issuer - 1, iss);
        snprintf(si->authorize, sizeof si->authorize, "%s", az);
        snprintf(si->token, sizeof si->token, "%s", tk);
        snprintf(si->registration, sizeof si->registration, "%s", rg ? rg : "");
    }
    json_decref(m);
    return e;
}

/* The error an authorization server answered with: "invalid_client (its description)". */
static void server_error(answer *a, char *out, size_t outlen)
{
    json_t *j = json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, NULL);
    const char *e = jstr(j, "error"), *d = jstr(j, "error_description");
    if (e)
        snprintf(out, outlen, "HTTP %ld, %.64s%s%.200s%s", a->status, e, d ? " (" : "", d ? d : "",
                 d ? ")" : "");
    else
        snprintf(out, outlen, "HTTP %ld", a->status);
    json_decref(j);
}

/* A client for this authorization server: the configured one, a client ID metadata document, a
 * registration kept from before, or a new one (RFC 7591). */
static gd_err client_for(mcp_oauth *o, const resource_info *ri, const server_info *si, char *err,
                         size_t errlen)
{
    /* kept (a grant from before may be): the same server and redirect URI; a configured client
     * is taken from the config each time (its secret may have changed since) */
    if (!strcmp(o->issuer, ri->as) && o->client_id[0] &&
        !strcmp(o->client_redirect, o->redirect_uri) && !o->cfg_client_id)
        return GD_OK;
    o->client_id[0] = o->client_secret[0] = '\0';
    snprintf(o->issuer, sizeof o->issuer, "%s", ri->as);
    snprintf(o->client_redirect, sizeof o->client_redirect, "%s", o->redirect_uri);
    const char *method = si->basic  ? "client_secret_basic"
                         : si->post ? "client_secret_post"
                                    : "none";
    if (o->cfg_client_id) {
        snprintf(o->client_id, sizeof o->client_id, "%s", o->cfg_client_id);
        snprintf(o->client_secret, sizeof o->client_secret, "%s",
                 o->cfg_client_secret ? o->cfg_client_secret : "");
        const char *alg = o->cfg_client_key ? key_alg(o->cfg_client_key, NULL) : NULL;
        bool jwt = alg && si->jwt && (!strcmp(alg, "ES256") ? si->es256 : si->rs256);
        if (o->cfg_client_key && !jwt && !o->client_secret[0])
            return fail(GD_EDENIED, err, errlen,
                        "the authorization server %s does not take a JWT signed with the "
                        "client's key (%s): private_key_jwt with %s",
                        ri->as, alg ? alg : "not an EC P-256 or RSA key in PEM",
                        alg ? alg : "ES256 or RS256");
        snprintf(o->auth_method, sizeof o->auth_method, "%s",
                 jwt                   ? "private_key_jwt"
                 : o->client_secret[0] ? method
                                       : "none");
        return GD_OK;
    }
    if (si->cimd && o->metadata_url) {
        snprintf(o->client_id, sizeof o->client_id, "%s", o->metadata_url);
        snprintf(o->auth_method, sizeof o->auth_method, "none");
        return GD_OK;
    }
    if (!si->registration[0])
        return fail(GD_EDENIED, err, errlen,
                    "the authorization server %s takes no registrations: give the extension an "
                    "oauth client_id registered there",
                    ri->as);
    json_t *req =
        json_pack("{s:s, s:[s], s:[s,s], s:[s], s:s}", "client_name", o->client_name,
                  "redirect_uris", o->redirect_uri, "grant_types", "authorization_code",
                  "refresh_token", "response_types", "code", "token_endpoint_auth_method", method);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) return fail(GD_ENOMEM, err, errlen, "out of memory");
    answer a;
    gd_err e = fetch(o, si->registration, NULL, body, NULL, &a, err, errlen);
    free(body);
    if (e) return e;
    json_t *j = a.status == 200 || a.status == 201
                    ? json_loadb(a.body.data ? a.body.data : "", a.body.len, 0, NULL)
                    : NULL;
    const char *id = jstr(j, "client_id"), *secret = jstr(j, "client_secret"),
               *m = jstr(j, "token_endpoint_auth_method");
    if (!id || strlen(id) >= sizeof o->client_id ||
        (secret && strlen(secret) >= sizeof o->client_secret)) {
        char why[300];
        server_error(&a, why, sizeof why);
        e = fail(GD_EDENIED, err, errlen,
                 "the authorization server %s refused to register goosed as a client: %s", ri->as,
                 why);
    } else {
        snprintf(o->client_id, sizeof o->client_id, "%s", id);
        snprintf(o->client_secret, sizeof o->client_secret, "%s", secret ? secret : "");
        if (!secret)
            method = "none";
        else if (m && (!strcmp(m, "client_secret_basic") || !strcmp(m, "client_secret_post")))
            method = m;
        else if (!strcmp(method, "none"))
            method = "client_secret_post";
        snprintf(o->auth_method, sizeof o->auth_method, "%s", method);
        log_info("mcp", "%s: registered as a client of %s", o->server, ri->as);
    }
    json_decref(j);
    buf_free(&a.body);
    return e;
}

/* Appends &name=value (form-encoded) to b. */
static bool form_add(buf *b, const char *name, const char *value)
{
    return !buf_printf(b, "%s%s=", b->len ? "&" : "", name) && !url_encode(b, value);
}

/* The JWS algorithm of a private key in PEM: "ES256" (EC P-256), "RS256" (RSA of 2048 bits or
 * more), or NULL (another, or not a key). The key, imported, into *pk when pk is not NULL. */
static const char *key_alg(const char *pem_text, gnutls_privkey_t *pk)
{
    gnutls_privkey_t k = NULL;
    gnutls_datum_t pem = {(unsigned char *)pem_text, (unsigned)strlen(pem_text)};
    unsigned bits = 0;
    const char *alg = NULL;
    if (gnutls_privkey_init(&k) >= 0 &&
        gnutls_privkey_import_x509_raw(k, &pem, GNUTLS_X509_FMT_PEM, NULL, 0) >= 0) {
        int a = gnutls_privkey_get_pk_algorithm(k, &bits);
        alg = a == GNUTLS_PK_ECDSA && bits == 256  ? "ES256"
              : a == GNUTLS_PK_RSA && bits >= 2048 ? "RS256"
                                                   : NULL;
    }
    if (alg && pk) {
        *pk = k;
        k = NULL;
    }
    if (k) gnutls_privkey_deinit(k);
    return alg;
}

/* RFC 7523 §2.2: the client's authentication as a JWT signed with its key (ES256: ECDSA with
 * P-256 and SHA-256, the signature as r and s of 32 bytes each; RS256: RSASSA-PKCS1-v1_5 with
 * SHA-256), for the authorization server (aud: its issuer), short-lived and used once (exp,
 * jti). */
static gd_err client_assertion(mcp_oauth *o, char **out, char *err, size_t errlen)
{
    *out = NULL;
    gnutls_privkey_t pk = NULL;
    const char *alg = o->cfg_client_key ? key_alg(o->cfg_client_key, &pk) : NULL;
    if (!alg)
        return fail(GD_EDENIED, err, errlen,
                    "the client's private key is not an EC P-256 or RSA (2048 bits or more) key "
                    "in PEM");
    unsigned char jti[16];
    char jtis[32];
    randombytes_buf(jti, sizeof jti);
    b64url(jti, sizeof jti, jtis, sizeof jtis);
    long now = (long)time(NULL);
    json_t *hdr = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "iss", o->client_id, "sub",
                               o->client_id, "aud", o->as_issuer[0] ? o->as_issuer : o->issuer,
                               "iat", (json_int_t)now, "exp", (json_int_t)now + 300, "jti", jtis);
    char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    char *c = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
    json_decref(hdr);
    json_decref(claims);
    size_t hl =
        h ? sodium_base64_ENCODED_LEN(strlen(h), sodium_base64_VARIANT_URLSAFE_NO_PADDING) : 0;
    size_t cl =
        c ? sodium_base64_ENCODED_LEN(strlen(c), sodium_base64_VARIANT_URLSAFE_NO_PADDING) : 0;
    size_t cap = hl + cl + 2 + 2048; /* and the signature: 86 characters, or up to 1366 (RSA) */
    char *jwt = h && c ? malloc(cap) : NULL;
    gd_err e = jwt ? GD_OK : fail(GD_ENOMEM, err, errlen, "out of memory");
    if (!e) {
        sodium_bin2base64(jwt, hl, (const unsigned char *)h, strlen(h),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t at = strlen(jwt);
        jwt[at++] = '.';
        sodium_bin2base64(jwt + at, cl, (const unsigned char *)c, strlen(c),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    free(h);
    free(c);
    bool ec = !strcmp(alg, "ES256");
    gnutls_datum_t sig = {0}, r = {0}, s = {0};
    if (!e) {
        gnutls_datum_t in = {(unsigned char *)jwt, (unsigned)strlen(jwt)};
        if (gnutls_privkey_sign_data2(pk, ec ? GNUTLS_SIGN_ECDSA_SHA256 : GNUTLS_SIGN_RSA_SHA256, 0,
                                      &in, &sig) < 0 ||
            (ec && gnutls_decode_rs_value(&sig, &r, &s) < 0) || (!ec && sig.size > 1024))
            e = fail(GD_EDENIED, err, errlen, "signing the client's assertion failed");
    }
    unsigned char raw[1024] = {0};
    size_t rawlen = ec ? 64 : sig.size;
    /* ES256: the DER integers r and s, each as 32 bytes (DER adds a 0 byte when the top bit
     * is set, and drops leading zeros) */
    for (int k = 0; !e && ec && k < 2; k++) {
        gnutls_datum_t *d = k ? &s : &r;
        unsigned n = d->size, skip = 0;
        while (n - skip > 32 && d->data[skip] == 0)
            skip++;
        if (n - skip > 32)
            e = fail(GD_EDENIED, err, errlen, "signing the client's assertion failed");
        else
            memcpy(raw + 32 * k + (32 - (n - skip)), d->data + skip, n - skip);
    }
    if (!e && !ec) memcpy(raw, sig.data, rawlen); /* RS256: the signature as it is */
    if (!e) {
        size_t at = strlen(jwt);
        jwt[at++] = '.';
        b64url(raw, rawlen, jwt + at, cap - at);
        *out = jwt;
        jwt = NULL;
    }
    gnutls_free(sig.data);
    gnutls_free(r.data);
    gnutls_free(s.data);
    if (pk) gnutls_privkey_deinit(pk);
    free(jwt);
    return e;
}

/* POSTs the grant in b to the token endpoint with the client's authentication; on success the
 * new token (and refresh token) are kept. */
static gd_err token_request(mcp_oauth *o, buf *b, char *err, size_t errlen)
{
    buf basic;
    buf_init(&basic, 8192);
    const char *user = NULL;
    bool ok = true;
    char *assertion = NULL;
    if (!strcmp(o->auth_method, "private_key_jwt")) {
        gd_err je = client_assertion(o, &assertion, err, errlen);
        if (je) {
            buf_free(&basic);
            return je;
        }
        ok = form_add(b, "client_id", o->client_id) &&
             form_add(b, "client_assertion_type",
                      "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") &&
             form_add(b, "client_assertion", assertion);
        wipe_free(assertion);
    } else if (!strcmp(o->auth_method, "client_secret_basic")) {
        /* RFC 6749 §2.3.1: each form-encoded before they are joined */
        ok = !url_encode(&basic, o->client_id) && !buf_puts(&basic, ":") &&
             !url_encode(&basic, o->client_secret);
        user = basic.data;
    } else {
        ok = form_add(b, "client_id", o->client_id);
        if (ok && !strcmp(o->auth_method, "client_secret_post"))
            ok = form_add(b, "client_secret", o->client_secret);
    }
    gd_err e = ok ? GD_OK : fail(GD_ENOMEM, err, errlen, "out of memory");
    answer a;
    if (!e) e = fetch(o, o->token_endpoint, b->data, NULL, user, &a, err, errlen);
    if (basic.data) sodium_memzero(basic.data, basic.len);
    buf_free(&basic);
    if (e) return e;
    json_t *j = json_answer(&a);
    const char *at = jstr(j, "access_token"), *tt = jstr(j, "token_type"),
               *rt = jstr(j, "refresh_token");
    if (!at || strlen(at) >= TOKEN_MAX || strpbrk(at, "\r\n") || (tt && strcasecmp(tt, "Bearer"))) {
        char why[300];
        server_error(&a, why, sizeof why);
        e = fail(GD_EDENIED, err, errlen, "the authorization server refused the token request: %s",
                 j ? "no bearer access token in the answer" : why);
    } else {
        set_token(o, at);
        if (rt && strlen(rt) < sizeof o->refresh)
            snprintf(o->refresh, sizeof o->refresh, "%s", rt);
        else if (rt)
            o->refresh[0] = '\0';
    }
    if (a.body.data) sodium_memzero(a.body.data, a.body.len);
    json_decref(j);
    buf_free(&a.body);
    return e;
}

static gd_err refresh(mcp_oauth *o, char *err, size_t errlen)
{
    buf b;
    buf_init(&b, 16384);
    gd_err e = form_add(&b, "grant_type", "refresh_token") &&
                       form_add(&b, "refresh_token", o->refresh) &&
                       form_add(&b, "resource", o->resource)
                   ? token_request(o, &b, err, errlen)
                   : fail(GD_ENOMEM, err, errlen, "out of memory");
    if (b.data) sodium_memzero(b.data, b.len);
    buf_free(&b);
    return e;
}

static void b64url(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    sodium_bin2base64(out, outlen, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Adds the words of add to the space-separated set in s. */
static void scope_union(char *s, size_t slen, const char *add)
{
    char word[SCOPE_MAX];
    for (const char *p = add; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (!n || n >= sizeof word) break;
        memcpy(word, p, n);
        word[n] = '\0';
        p += n;
        bool have = false;
        for (const char *q = s; *q && !have;) {
            size_t m = strcspn(q, " ");
            have = m == n && !strncmp(q, word, n);
            q += m;
            while (*q == ' ')
                q++;
        }
        size_t at = strlen(s);
        if (!have && (size_t)snprintf(s + at, slen - at, "%s%s", at ? " " : "", word) >= slen - at)
            s[at] = '\0';
    }
}

/* A machine's own authorization (OAuth 2.1 §4.2, MCP's SEP-1046): the client's credentials, no
 * user, for a server whose authorization server offers no other grant. */
static gd_err client_credentials(mcp_oauth *o, const char *scope, char *err, size_t errlen)
{
    buf b;
    buf_init(&b, 16384);
    gd_err e = form_add(&b, "grant_type", "client_credentials") &&
                       form_add(&b, "resource", o->resource) &&
                       (!*scope || form_add(&b, "scope", scope))
                   ? token_request(o, &b, err, errlen)
                   : fail(GD_ENOMEM, err, errlen, "out of memory");
    buf_free(&b);
    if (!e) {
        snprintf(o->scope, sizeof o->scope, "%s", scope);
        log_info("mcp", "%s: authorized as the client %s", o->server, o->client_id);
    }
    return e;
}

/* A new authorization: consent through the browser, then the code's exchange (PKCE). */
static gd_err authorize(mcp_oauth *o, const server_info *si, const char *scope, char *err,
                        size_t errlen)
{
    if (!si->authorize[0])
        return fail(GD_EDENIED, err, errlen,
                    "the authorization server %s offers neither the authorization code grant nor "
                    "client credentials goosed holds",
                    o->issuer);
    if (!si->s256)
        return fail(GD_EDENIED, err, errlen,
                    "the authorization server %s does not offer PKCE with S256, which MCP requires",
                    o->issuer);
    if (!o->consent)
        return fail(GD_EDENIED, err, errlen,
                    "the server asks for a sign-in, which this client "
                    "cannot offer");
    unsigned char raw[32], st[16], digest[crypto_hash_sha256_BYTES];
    char verifier[64], challenge[64], state[32];
    randombytes_buf(raw, sizeof raw);
    randombytes_buf(st, sizeof st);
    b64url(raw, sizeof raw, verifier, sizeof verifier); /* 43 characters (RFC 7636 §4.1) */
    crypto_hash_sha256(digest, (const unsigned char *)verifier, strlen(verifier));
    b64url(digest, sizeof digest, challenge, sizeof challenge);
    b64url(st, sizeof st, state, sizeof state);
    buf q;
    buf_init(&q, 16384);
    bool ok = form_add(&q, "response_type", "code") && form_add(&q, "client_id", o->client_id) &&
              form_add(&q, "redirect_uri", o->redirect_uri) && form_add(&q, "state", state) &&
              form_add(&q, "code_challenge", challenge) &&
              form_add(&q, "code_challenge_method", "S256") &&
              form_add(&q, "resource", o->resource) && (!*scope || form_add(&q, "scope", scope));
    char *url = NULL;
    if (ok &&
        asprintf(&url, "%s%c%s", si->authorize, strchr(si->authorize, '?') ? '&' : '?', q.data) < 0)
        url = NULL;
    buf_free(&q);
    if (!url) return fail(GD_ENOMEM, err, errlen, "out of memory");
    char *code = NULL, *iss = NULL;
    pthread_mutex_lock(&o->mu);
    bool gone = o->aborted;
    if (!gone) snprintf(o->waiting, sizeof o->waiting, "%s", state);
    pthread_mutex_unlock(&o->mu);
    gd_err e = gone ? fail(GD_ECANCELLED, err, errlen, "the extension was closed")
                    : o->consent(o->consent_ud, o->label, url, state, o->redirect_uri, &code, &iss,
                                 err, errlen);
    pthread_mutex_lock(&o->mu);
    o->waiting[0] = '\0';
    pthread_mutex_unlock(&o->mu);
    free(url);
    /* RFC 9207: the redirect names the issuer it came from (one redirect URI serves every
     * server): another's is a mix-up, and none where this server says it names one */
    if (!e && (iss ? strcmp(iss, si->issuer) != 0 : si->iss_param))
        e = fail(GD_EDENIED, err, errlen,
                 "the authorization response names the issuer %.200s, not %.200s",
                 iss ? iss : "(none)", si->issuer);
    free(iss);
    if (e) {
        wipe_free(code);
        return e;
    }
    buf b;
    buf_init(&b, 16384);
    e = form_add(&b, "grant_type", "authorization_code") && form_add(&b, "code", code) &&
                form_add(&b, "redirect_uri", o->redirect_uri) &&
                form_add(&b, "code_verifier", verifier) && form_add(&b, "resource", o->resource)
            ? token_request(o, &b, err, errlen)
            : fail(GD_ENOMEM, err, errlen, "out of memory");
    if (b.data) sodium_memzero(b.data, b.len);
    buf_free(&b);
    wipe_free(code);
    sodium_memzero(verifier, sizeof verifier);
    if (!e) {
        snprintf(o->scope, sizeof o->scope, "%s", scope);
        log_info("mcp", "%s: authorized%s%s", o->server, *scope ? " for " : "", scope);
    }
    return e;
}

gd_err mcp_oauth_renew(mcp_oauth *o, long status, const char *www_auth, unsigned had, char *err,
                       size_t errlen)
{
    err[0] = '\0';
    pthread_mutex_lock(&o->flow);
    pthread_mutex_lock(&o->mu);
    unsigned now = o->gen;
    bool gone = o->aborted;
    pthread_mutex_unlock(&o->mu);
    gd_err e = GD_OK;
    bool step_up = status == 403;
    if (gone) {
        e = fail(GD_ECANCELLED, err, errlen, "the extension was closed");
        goto done;
    }
    if (now != had) goto done;                 /* another request renewed it meanwhile */
    if (!step_up && adopt_saved(o)) goto done; /* another session of the user's renewed it */
    if (!step_up && o->refresh[0]) {
        char why[512];
        if (!refresh(o, why, sizeof why)) goto done;
        log_info("mcp", "%s: the refresh token was refused (%s): authorizing again", o->server,
                 why);
        o->refresh[0] = '\0';
    }
    resource_info ri;
    server_info si;
    if ((e = discover_resource(o, www_auth, &ri, err, errlen)) ||
        (e = discover_server(o, &ri, &si, err, errlen)) ||
        (e = client_for(o, &ri, &si, err, errlen)))
        goto done;
    snprintf(o->as_issuer, sizeof o->as_issuer, "%s", si.issuer);
    snprintf(o->token_endpoint, sizeof o->token_endpoint, "%s", si.token);
    snprintf(o->resource, sizeof o->resource, "%s", ri.resource);
    char scope[SCOPE_MAX] = "", named[SCOPE_MAX];
    if (mcp_oauth_challenge_param(www_auth, "scope", named, sizeof named))
        snprintf(scope, sizeof scope, "%s", named);
    else if (ri.scopes[0])
        snprintf(scope, sizeof scope, "%s", ri.scopes);
    else if (o->cfg_scope)
        snprintf(scope, sizeof scope, "%s", o->cfg_scope);
    if (step_up) scope_union(scope, sizeof scope, o->scope); /* keep what was granted */
    if (!si.code && si.cc && (o->client_secret[0] || !strcmp(o->auth_method, "private_key_jwt")))
        e = client_credentials(o, scope, err, errlen);
    else
        e = authorize(o, &si, scope, err, errlen);
done:
    pthread_mutex_lock(&o->mu);
    bool renewed = o->gen != now;
    pthread_mutex_unlock(&o->mu);
    if (!e && renewed && o->grant_save) {
        char *g = mcp_oauth_export(o);
        if (g) o->grant_save(o->consent_ud, o->server, g);
        wipe_free(g);
    }
    pthread_mutex_unlock(&o->flow);
    return e;
}

/* ---- the grant, kept outside ---- */

/* The fields of a grant: the flow's state that outlives a flow. */
#define GRANT_FIELDS(X)                                                                            \
    X(issuer)                                                                                      \
    X(client_id)                                                                                   \
    X(client_secret)                                                                               \
    X(auth_method) X(client_redirect) X(as_issuer) X(token_endpoint) X(resource) X(scope) X(refresh)

char *mcp_oauth_export(mcp_oauth *o)
{
    char token[TOKEN_MAX];
    mcp_oauth_token(o, token, sizeof token);
    if (!token[0]) return NULL;
    json_t *j = json_pack("{s:i, s:s, s:s}", "v", 1, "server", o->server, "token", token);
#define PUT(f)                                                                                     \
    if (j && json_object_set_new(j, #f, json_string(o->f))) j = (json_decref(j), NULL);
    GRANT_FIELDS(PUT)
#undef PUT
    /* a configured client's secret stays in the config: it is not copied into each grant */
    if (j && o->cfg_client_id) json_object_set_new(j, "client_secret", json_string(""));
    sodium_memzero(token, sizeof token);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

bool mcp_oauth_import(mcp_oauth *o, const char *grant)
{
    json_t *j = json_loads(grant, 0, NULL);
    const char *token = jstr(j, "token");
    bool ok = json_integer_value(json_object_get(j, "v")) == 1 && token &&
              strlen(token) < TOKEN_MAX && !strpbrk(token, "\r\n") &&
              !strcmp(jstr(j, "server") ? jstr(j, "server") : "", o->server);
#define CHECK(f)                                                                                   \
    ok = ok && json_is_string(json_object_get(j, #f)) &&                                           \
         strlen(json_string_value(json_object_get(j, #f))) < sizeof o->f;
    GRANT_FIELDS(CHECK)
#undef CHECK
    if (ok) {
#define TAKE(f) snprintf(o->f, sizeof o->f, "%s", json_string_value(json_object_get(j, #f)));
        GRANT_FIELDS(TAKE)
#undef TAKE
        if (o->cfg_client_id) { /* the client as configured now, not as it was saved */
            const char *m = o->auth_method;
            bool fits = o->cfg_client_key ? !strcmp(m, "private_key_jwt")
                        : o->cfg_client_secret
                            ? !strcmp(m, "client_secret_basic") || !strcmp(m, "client_secret_post")
                            : !strcmp(m, "none");
            if (strcmp(o->client_id, o->cfg_client_id) || !fits)
                o->client_id[0] = o->auth_method[0] = '\0'; /* chosen again at the next flow */
            snprintf(o->client_secret, sizeof o->client_secret, "%s",
                     o->cfg_client_secret ? o->cfg_client_secret : "");
        }
        set_token(o, token);
    }
    json_decref(j);
    return ok;
}

/* The grant saved outside, when its token is not the one just refused: taken (true). */
static bool adopt_saved(mcp_oauth *o)
{
    char *g = o->grant_load ? o->grant_load(o->consent_ud, o->server) : NULL;
    if (!g) return false;
    json_t *j = json_loads(g, 0, NULL);
    const char *t = jstr(j, "token");
    char mine[TOKEN_MAX];
    mcp_oauth_token(o, mine, sizeof mine);
    bool other = t && strcmp(t, mine) && mcp_oauth_import(o, g);
    sodium_memzero(mine, sizeof mine);
    json_decref(j);
    wipe_free(g);
    return other;
}
