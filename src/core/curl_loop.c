/* libcurl's multi socket interface on a core/loop: one watcher per socket libcurl names, one
 * loop timer for libcurl's timer, and a done callback per transfer. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/curl_loop.h"
#include "core/log.h"

/* What CURLOPT_PRIVATE points to for a transfer on a curl_loop. */
typedef struct xfer {
    CURL *easy;
    curl_loop_done done;
    void *ud;
    struct xfer *prev, *next;
} xfer;

struct curl_loop {
    loop *l;
    CURLM *multi;
    loop_timer *timer; /* libcurl's one timer */
    xfer *xfers;
    char tag[32];
};

static void read_done(curl_loop *cl)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(cl->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        xfer *x = NULL;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        if (x) x->done(easy, result, x->ud);
    }
}

static void on_ready(loop_fd *w, int fd, unsigned events, void *ud)
{
    (void)w;
    curl_loop *cl = ud;
    int running;
    int mask = (events & LOOP_READ ? CURL_CSELECT_IN : 0) |
               (events & LOOP_WRITE ? CURL_CSELECT_OUT : 0) |
               (events & (LOOP_HUP | LOOP_ERR) ? CURL_CSELECT_ERR : 0);
    curl_multi_socket_action(cl->multi, fd, mask, &running);
    read_done(cl);
}

/* libcurl says which events a socket needs (CURLMOPT_SOCKETFUNCTION); socketp is the socket's
 * watcher once it has one. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    curl_loop *cl = userp;
    loop_fd *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) loop_fd_del(w);
        curl_multi_assign(cl->multi, fd, NULL);
        return 0;
    }
    unsigned ev = (what & CURL_POLL_IN ? LOOP_READ : 0u) | (what & CURL_POLL_OUT ? LOOP_WRITE : 0u);
    if (w) return loop_fd_mod(w, ev) == GD_OK ? 0 : -1;
    if (!(w = loop_fd_add(cl->l, fd, ev, on_ready, cl))) {
        log_error(cl->tag, "cannot watch a socket: %s", strerror(errno));
        return -1;
    }
    curl_multi_assign(cl->multi, fd, w);
    return 0;
}

static void on_curl_timer(void *ud)
{
    curl_loop *cl = ud;
    int running;
    cl->timer = NULL;
    curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    read_done(cl);
}

/* libcurl's single timer (CURLMOPT_TIMERFUNCTION): -1 deletes it. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    curl_loop *cl = userp;
    if (cl->timer) loop_timer_cancel(cl->timer);
    cl->timer = NULL;
    if (timeout_ms < 0) return 0;
    cl->timer = loop_timer_add(cl->l, (uint64_t)timeout_ms, on_curl_timer, cl);
    return cl->timer ? 0 : -1;
}

/* libcurl (and its TLS library) is loaded with the first curl_loop, so a server that has not
 * needed it yet stays small. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

curl_loop *curl_loop_new(loop *l, const char *tag, char *err, size_t errlen)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        snprintf(err, errlen,
                 "libcurl (libcurl.so.4) cannot be loaded or initialised; install libcurl4");
        return NULL;
    }
    curl_loop *cl = calloc(1, sizeof *cl);
    if (!cl || !(cl->multi = curl_multi_init())) {
        free(cl);
        snprintf(err, errlen, "out of memory starting an HTTP client");
        return NULL;
    }
    cl->l = l;
    snprintf(cl->tag, sizeof cl->tag, "%s", tag);
    if (curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl) != CURLM_OK ||
        curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl) != CURLM_OK ||
        /* Keep up to this many idle connections for the next requests (libcurl's default
         * shrinks the pool with the transfers in flight, so a burst would open, and pay TCP and
         * TLS handshakes for, most of its connections again). */
        curl_multi_setopt(cl->multi, CURLMOPT_MAXCONNECTS, 1024L) != CURLM_OK) {
        curl_multi_cleanup(cl->multi);
        free(cl);
        snprintf(err, errlen, "cannot configure libcurl's multi interface");
        return NULL;
    }
    return cl;
}

static void unlink_xfer(curl_loop *cl, xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else if (cl->xfers == x)
        cl->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
}

void curl_loop_free(curl_loop *cl)
{
    if (!cl) return;
    while (cl->xfers)
        curl_loop_remove(cl, cl->xfers->easy);
    if (cl->timer) loop_timer_cancel(cl->timer);
    curl_multi_cleanup(cl->multi); /* removes the sockets' watchers through on_socket */
    free(cl);
}

gd_err curl_loop_add(curl_loop *cl, CURL *easy, curl_loop_done done, void *ud)
{
    xfer *x = calloc(1, sizeof *x);
    if (!x) return GD_ENOMEM;
    *x = (xfer){.easy = easy, .done = done, .ud = ud, .next = cl->xfers};
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    if (curl_multi_add_handle(cl->multi, easy) != CURLM_OK) {
        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        free(x);
        return GD_ENOMEM;
    }
    if (cl->xfers) cl->xfers->prev = x;
    cl->xfers = x;
    return GD_OK;
}

void curl_loop_remove(curl_loop *cl, CURL *easy)
{
    xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (!x) return;
    curl_multi_remove_handle(cl->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    unlink_xfer(cl, x);
    free(x);
}
