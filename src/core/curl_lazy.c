/* libcurl, loaded when the first request that needs it comes (dlopen), not at start-up: the MCP
 * HTTP transports (core/curl_loop), the allowlist URL, OTLP export and the goose CLI. The
 * provider requests use goosed's own client (src/providers/h1client.c). libcurl brings its TLS,
 * HTTP/2, SSH, LDAP and Kerberos libraries, and loading them costs a server that has not used
 * them about 3 MB of resident memory. These are the libcurl functions goosed uses, forwarding to
 * the library once loaded; without it they fail the way libcurl reports failure
 * (CURLE_FAILED_INIT, NULL), and the caller reports that error. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include "core/log.h"

#define HIDDEN __attribute__((visibility("hidden")))

static struct {
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;

static void load(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        log_error("curl", "cannot load libcurl: %s", dlerror());
        return;
    }
    static const struct {
        const char *name;
        size_t off;
    } syms[] = {
#define S(f, n) {n, offsetof(__typeof__(fn), f)}
        S(global_init, "curl_global_init"),
        S(global_cleanup, "curl_global_cleanup"),
        S(multi_init, "curl_multi_init"),
        S(multi_cleanup, "curl_multi_cleanup"),
        S(multi_add_handle, "curl_multi_add_handle"),
        S(multi_remove_handle, "curl_multi_remove_handle"),
        S(multi_socket_action, "curl_multi_socket_action"),
        S(multi_assign, "curl_multi_assign"),
        S(multi_setopt, "curl_multi_setopt"),
        S(multi_info_read, "curl_multi_info_read"),
        S(easy_init, "curl_easy_init"),
        S(easy_cleanup, "curl_easy_cleanup"),
        S(easy_setopt, "curl_easy_setopt"),
        S(easy_perform, "curl_easy_perform"),
        S(easy_getinfo, "curl_easy_getinfo"),
        S(easy_strerror, "curl_easy_strerror"),
        S(slist_append, "curl_slist_append"),
        S(slist_free_all, "curl_slist_free_all"),
#undef S
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *p = dlsym(h, syms[i].name);
        if (!p) {
            log_error("curl", "libcurl lacks %s", syms[i].name);
            return;
        }
        *(void **)((char *)&fn + syms[i].off) = p;
    }
    loaded = 1;
}

static int ready(void)
{
    pthread_once(&once, load);
    return loaded;
}

HIDDEN CURLcode curl_global_init(long flags)
{
    return ready() ? fn.global_init(flags) : CURLE_FAILED_INIT;
}
HIDDEN void curl_global_cleanup(void)
{
    if (ready()) fn.global_cleanup();
}
HIDDEN CURLM *curl_multi_init(void)
{
    return ready() ? fn.multi_init() : NULL;
}
HIDDEN CURLMcode curl_multi_cleanup(CURLM *m)
{
    return ready() ? fn.multi_cleanup(m) : CURLM_INTERNAL_ERROR;
}
HIDDEN CURLMcode curl_multi_add_handle(CURLM *m, CURL *e)
{
    return ready() ? fn.multi_add_handle(m, e) : CURLM_INTERNAL_ERROR;
}
HIDDEN CURLMcode curl_multi_remove_handle(CURLM *m, CURL *e)
{
    return ready() ? fn.multi_remove_handle(m, e) : CURLM_INTERNAL_ERROR;
}
HIDDEN CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t s, int mask, int *running)
{
    return ready() ? fn.multi_socket_action(m, s, mask, running) : CURLM_INTERNAL_ERROR;
}
HIDDEN CURLMcode curl_multi_assign(CURLM *m, curl_socket_t s, void *p)
{
    return ready() ? fn.multi_assign(m, s, p) : CURLM_INTERNAL_ERROR;
}
/* curl_multi_setopt's argument type comes from the option number, as for curl_easy_setopt. */
HIDDEN CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    if (!ready()) return CURLM_INTERNAL_ERROR;
    va_list ap;
    va_start(ap, opt);
    CURLMcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = fn.multi_setopt(m, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = fn.multi_setopt(m, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = fn.multi_setopt(m, opt, va_arg(ap, void (*)(void)));
    else
        rc = fn.multi_setopt(m, opt, va_arg(ap, curl_off_t));
    va_end(ap);
    return rc;
}
HIDDEN CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    return ready() ? fn.multi_info_read(m, left) : NULL;
}
HIDDEN CURL *curl_easy_init(void)
{
    return ready() ? fn.easy_init() : NULL;
}
HIDDEN void curl_easy_cleanup(CURL *e)
{
    if (ready()) fn.easy_cleanup(e);
}
HIDDEN CURLcode curl_easy_perform(CURL *e)
{
    return ready() ? fn.easy_perform(e) : CURLE_FAILED_INIT;
}
HIDDEN const char *curl_easy_strerror(CURLcode c)
{
    return ready() ? fn.easy_strerror(c) : "libcurl is not available";
}
HIDDEN struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
    return ready() ? fn.slist_append(l, s) : NULL;
}
HIDDEN void curl_slist_free_all(struct curl_slist *l)
{
    if (ready()) fn.slist_free_all(l);
}

/* curl_easy_setopt takes one argument whose type the option number says (libcurl's documented
 * ranges): long, object pointer, function pointer or curl_off_t. */
HIDDEN CURLcode curl_easy_setopt(CURL *e, CURLoption opt, ...)
{
    if (!ready()) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, opt);
    CURLcode rc;
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        rc = fn.easy_setopt(e, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        rc = fn.easy_setopt(e, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        rc = fn.easy_setopt(e, opt, va_arg(ap, void (*)(void)));
    else if (opt < CURLOPTTYPE_BLOB)
        rc = fn.easy_setopt(e, opt, va_arg(ap, curl_off_t));
    else
        rc = fn.easy_setopt(e, opt, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

/* curl_easy_getinfo always takes a pointer to where the answer goes. */
HIDDEN CURLcode curl_easy_getinfo(CURL *e, CURLINFO info, ...)
{
    if (!ready()) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    CURLcode rc = fn.easy_getinfo(e, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}
