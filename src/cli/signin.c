/* The command line's side of an MCP server's OAuth sign-in (signin.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "cli/signin.h"
#include "core/urlenc.h"

gd_err signin_listen(signin *s, char *err, size_t errlen)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 8) ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen)) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1 for the sign-in: %s", strerror(errno));
        signin_close(s);
        return GD_EIO;
    }
    snprintf(s->redirect_uri, sizeof s->redirect_uri, "http://127.0.0.1:%u/callback",
             (unsigned)ntohs(a.sin_port));
    return GD_OK;
}

void signin_close(signin *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
}

bool signin_query_param(const char *url, const char *name, char *out, size_t outlen)
{
    const char *q = strchr(url, '?');
    size_t n = strlen(name);
    for (const char *p = q ? q + 1 : ""; *p;) {
        size_t len = strcspn(p, "&# ");
        if (len > n && !strncmp(p, name, n) && p[n] == '=')
            return url_decode(p + n + 1, len - n - 1, out, outlen) >= 0;
        p += len;
        if (*p != '&') break;
        p++;
    }
    return false;
}

/* The code from a redirect to redirect_uri carrying state, or the error it names. */
static gd_err code_of(const char *where, const char *state, char **code, char **iss, char *err,
                      size_t errlen)
{
    char got[256], c[4096], e[128], is[2048];
    *iss = NULL;
    if (signin_query_param(where, "error", e, sizeof e)) {
        for (char *p = e; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
        snprintf(err, errlen, "the sign-in was refused: %s", e);
        return GD_EDENIED;
    }
    if (!signin_query_param(where, "state", got, sizeof got) || strcmp(got, state)) {
        snprintf(err, errlen, "the sign-in came back without this sign-in's state");
        return GD_EDENIED;
    }
    if (!signin_query_param(where, "code", c, sizeof c) || !c[0]) {
        snprintf(err, errlen, "the sign-in came back without a code");
        return GD_EDENIED;
    }
    *code = strdup(c);
    sodium_memzero(c, sizeof c);
    if (signin_query_param(where, "iss", is, sizeof is) && !(*iss = strdup(is))) {
        free(*code);
        *code = NULL;
    }
    if (!*code) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    return GD_OK;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    char *loc = ud;
    size_t len = size * n;
    if (len > 9 && !strncasecmp(p, "location:", 9)) {
        const char *v = p + 9;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = (size_t)(p + len - v);
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < 8192) {
            memcpy(loc, v, vlen);
            loc[vlen] = '\0';
        }
    }
    return len;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

gd_err signin_fetch(void *ud, const char *label, const char *url, const char *state,
                    const char *redirect_uri, char **code, char **iss, char *err, size_t errlen)
{
    (void)ud;
    (void)label;
    (void)redirect_uri;
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    char loc[8192] = "";
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, loc);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 15L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode c = curl_easy_perform(e);
    curl_easy_cleanup(e);
    if (c != CURLE_OK) {
        snprintf(err, errlen, "the authorization endpoint: %s", curl_easy_strerror(c));
        return GD_EIO;
    }
    if (!loc[0]) {
        snprintf(err, errlen, "the authorization endpoint sent no redirect");
        return GD_EDENIED;
    }
    gd_err r = code_of(loc, state, code, iss, err, errlen);
    sodium_memzero(loc, sizeof loc);
    return r;
}

static const char page_ok[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n"
    "Cache-Control: no-store\r\n\r\n<!doctype html><title>goosed</title><p>Signed in. You can "
    "close this page.</p>\n";
static const char page_bad[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n"
    "Cache-Control: no-store\r\n\r\n<!doctype html><title>goosed</title><p>This is not the "
    "sign-in goosed waits for.</p>\n";

gd_err signin_browser(void *ud, const char *label, const char *url, const char *state,
                      const char *redirect_uri, char **code, char **iss, char *err, size_t errlen)
{
    signin *s = ud;
    (void)redirect_uri;
    fprintf(stderr,
            "The MCP server %s asks you to sign in. Open this address in a browser:\n\n  %s\n\n",
            label, url);
    time_t until = time(NULL) + SIGNIN_WAIT_S;
    for (;;) {
        int left = (int)(until - time(NULL));
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left * 1000) == 0) {
            snprintf(err, errlen, "no sign-in came back within %d s", SIGNIN_WAIT_S);
            return GD_ETIMEOUT;
        }
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char req[8192];
        ssize_t n = recv(c, req, sizeof req - 1, 0);
        req[n > 0 ? n : 0] = '\0';
        char *eol = strpbrk(req, "\r\n");
        if (eol) *eol = '\0';
        char got[256];
        bool ours = !strncmp(req, "GET /callback?", 14) &&
                    signin_query_param(req + 4, "state", got, sizeof got) && !strcmp(got, state);
        gd_err e = ours ? code_of(req + 4, state, code, iss, err, errlen) : GD_EDENIED;
        ssize_t w = send(c, e ? page_bad : page_ok, e ? sizeof page_bad - 1 : sizeof page_ok - 1,
                         MSG_NOSIGNAL);
        (void)w;
        close(c);
        sodium_memzero(req, sizeof req);
        if (ours) return e;
        /* a stray request (a favicon, another page, another state): keep waiting for this one */
    }
}
