/* h1client: the provider requests' HTTP/1.1 client on a core/loop (see h1client.h).
 *
 * A request owns a connection from its start to its end. A connection is made (the name
 * resolved on a worker of the client's small pool, each address tried in turn, a CONNECT tunnel
 * through a proxy, the TLS handshake) or taken from the idle ones of the same key (scheme, host,
 * port, proxy), most recent first. After a complete response that leaves it reusable it goes
 * back to the idle list, where it is watched for the peer's close and closed after IDLE_MS; at
 * most IDLE_MAX are kept. A request written on a reused connection that dies before any byte
 * of its answer is retried once on a new connection (the peer closed it meanwhile).
 *
 * One timer per running request: the connect timeout until the request is written, then the
 * stall (no byte for timeout_s); it is re-armed lazily from the time of the last byte, not on
 * every read. Reads go into one buffer of the client and are handed on at once: a connection
 * holds no receive buffer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "core/log.h"
#include "core/pool.h"
#include "providers/h1client.h"

#define IDLE_MS   118000 /* an idle connection is closed after this */
#define IDLE_MAX  1024   /* idle connections kept, in all */
#define RBUF_SIZE 16384
#define MSG_MAX   400

enum {
    C_RESOLVING,
    C_CONNECTING,
    C_PROXY_WRITE,
    C_PROXY_READ,
    C_HANDSHAKE,
    C_WRITE,
    C_READ,
    C_IDLE,
};

typedef struct h1conn h1conn;
typedef struct rjob rjob;

struct h1req {
    h1client *cl;
    h1conn *conn;
    h1req_cb cb;
    char *head; /* the request line and headers */
    size_t head_len, head_off;
    const char *body;
    size_t body_len, body_off;
    bool body_sent;
    bool retried;
    bool status_told;
    long timeout_s;
    char *connect_head; /* the CONNECT request, through a proxy for https */
    /* where the connection goes (the proxy, when there is one) and what it is for */
    char dest_host[H1_HOST_MAX];
    unsigned short dest_port;
    bool dest_proxy;
    char origin_host[H1_HOST_MAX];
    unsigned short origin_port;
    bool tls;
    char *key;
};

struct h1conn {
    h1client *cl;
    h1conn *prev, *next; /* the idle list */
    char *key;
    int fd;
    loop_fd *w;
    unsigned events;
    gnutls_session_t tls;
    int state;
    bool reused;
    bool answered; /* a byte of the current answer came */
    struct addrinfo *ai, *ai_cur;
    rjob *job;
    h1req *req;
    h1resp resp;
    loop_timer *timer;
    uint64_t start_ms, last_ms, idle_since;
    h1_status fail_st; /* a failure reported on the next iteration */
    char *fail_msg;
};

struct rjob {
    h1client *cl; /* NULL once the client is gone */
    h1conn *conn; /* NULL once the connection is gone */
    loop *l;
    rjob *prev, *next;
    char host[H1_HOST_MAX];
    char port[8];
    struct addrinfo *res;
    int rc;
};

struct h1client {
    loop *l;
    pool *resolver;
    rjob *jobs;
    h1conn *idle_head, *idle_tail;
    size_t nidle, nconns;
    loop_timer *sweep;
    gnutls_certificate_credentials_t cred;
    bool cred_failed;
    char cred_err[300];
    char rbuf[RBUF_SIZE];
};

static void conn_io(loop_fd *w, int fd, unsigned events, void *ud);
static void req_fail(h1conn *k, h1_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_connect_next(h1conn *k);

/* ---- connections ---- */

static void conn_close(h1conn *k)
{
    h1client *cl = k->cl;
    if (k->timer) loop_timer_cancel(k->timer);
    if (k->job) k->job->conn = NULL;
    loop_fd_del(k->w);
    if (k->tls) gnutls_deinit(k->tls);
    if (k->fd >= 0) close(k->fd);
    if (k->ai) freeaddrinfo(k->ai);
    h1resp_free(&k->resp);
    free(k->fail_msg);
    free(k->key);
    free(k);
    cl->nconns--;
}

static void idle_unlink(h1conn *k)
{
    h1client *cl = k->cl;
    if (k->prev)
        k->prev->next = k->next;
    else
        cl->idle_head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        cl->idle_tail = k->prev;
    k->prev = k->next = NULL;
    cl->nidle--;
}

static void sweep_idle(void *ud);

static void arm_sweep(h1client *cl)
{
    if (cl->sweep || !cl->idle_tail) return;
    uint64_t now = loop_now_ms(cl->l), due = cl->idle_tail->idle_since + IDLE_MS;
    cl->sweep = loop_timer_add(cl->l, due > now ? due - now : 0, sweep_idle, cl);
}

static void sweep_idle(void *ud)
{
    h1client *cl = ud;
    cl->sweep = NULL;
    uint64_t now = loop_now_ms(cl->l);
    while (cl->idle_tail && cl->idle_tail->idle_since + IDLE_MS <= now) {
        h1conn *k = cl->idle_tail;
        idle_unlink(k);
        conn_close(k);
    }
    arm_sweep(cl);
}

static gd_err conn_watch(h1conn *k, unsigned events)
{
    if (k->w && k->events == events) return GD_OK;
    k->events = events;
    if (k->w) return loop_fd_mod(k->w, events);
    k->w = loop_fd_add(k->cl->l, k->fd, events, conn_io, k);
    return k->w ? GD_OK : GD_ENOMEM;
}

/* Keeps k for a later request, or closes it. */
static void conn_release(h1conn *k)
{
    h1client *cl = k->cl;
    if (k->timer) loop_timer_cancel(k->timer);
    k->timer = NULL;
    k->req = NULL;
    k->answered = false;
    if (!k->resp.keep_alive || conn_watch(k, LOOP_READ)) {
        conn_close(k);
        return;
    }
    h1resp_free(&k->resp);
    k->state = C_IDLE;
    k->idle_since = loop_now_ms(cl->l);
    k->next = cl->idle_head;
    if (cl->idle_head) cl->idle_head->prev = k;
    cl->idle_head = k;
    if (!cl->idle_tail) cl->idle_tail = k;
    cl->nidle++;
    while (cl->nidle > IDLE_MAX) {
        h1conn *old = cl->idle_tail;
        idle_unlink(old);
        conn_close(old);
    }
    arm_sweep(cl);
}

/* ---- requests ---- */

static void req_free(h1req *r)
{
    if (r->head) sodium_memzero(r->head, r->head_len); /* it holds the API key */
    free(r->head);
    free(r->connect_head);
    free(r->key);
    free(r);
}

/* k's request, no longer attached to k (NULL when it had none). */
static h1req *detach(h1conn *k)
{
    h1req *r = k->req;
    k->req = NULL;
    if (r) r->conn = NULL;
    return r;
}

/* Ends r (detached from its connection) with st: frees it and tells its owner. */
static void req_end(h1req *r, h1_status st, const char *msg)
{
    h1req_cb cb = r->cb;
    req_free(r);
    cb.done(cb.ud, st, msg);
}

static void timer_fn(void *ud);

static void arm_timer(h1conn *k, uint64_t ms)
{
    if (k->timer) loop_timer_cancel(k->timer);
    k->timer = loop_timer_add(k->cl->l, ms, timer_fn, k);
}

static bool connecting(const h1conn *k)
{
    return k->state < C_WRITE;
}

static void timer_fn(void *ud)
{
    h1conn *k = ud;
    k->timer = NULL;
    h1req *r = k->req;
    if (!r) return;
    uint64_t now = loop_now_ms(k->cl->l), lim = (uint64_t)r->timeout_s * 1000;
    if (k->fail_msg) {
        char *m = k->fail_msg;
        k->fail_msg = NULL;
        h1_status st = k->fail_st;
        detach(k);
        conn_close(k);
        req_end(r, st, m);
        free(m);
        return;
    }
    uint64_t from = connecting(k) ? k->start_ms : k->last_ms;
    if (now - from < lim) {
        arm_timer(k, from + lim - now);
        return;
    }
    if (connecting(k))
        req_fail(k, H1_ETIMEOUT, "timed out connecting to %s:%u after %ld s", r->dest_host,
                 r->dest_port, r->timeout_s);
    else
        req_fail(k, H1_ESTALL, "no data from %s:%u for %ld s", r->origin_host, r->origin_port,
                 r->timeout_s);
}

void h1req_progress(h1req *r)
{
    if (r && r->conn) r->conn->last_ms = loop_now_ms(r->cl->l);
}

/* A new connection for r (not from the idle list). */
static bool req_connect(h1req *r, bool in_post);

/* Ends k's request with st and closes k, unless the request may be retried on a new
 * connection (k was reused and died before answering). */
static void req_fail(h1conn *k, h1_status st, const char *fmt, ...)
{
    h1req *r = k->req;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bool retry = r && k->reused && !r->retried && st == H1_EIO && !k->answered;
    detach(k);
    conn_close(k);
    if (retry) {
        log_debug("provider", "a kept connection to %s:%u closed: retrying on a new one",
                  r->dest_host, r->dest_port);
        r->retried = true;
        req_connect(r, false);
        return;
    }
    if (r) req_end(r, st, msg);
}

/* Reports a failure on the next iteration (from h1_post, which never calls done). */
static void fail_later(h1conn *k, h1_status st, const char *msg)
{
    free(k->fail_msg);
    k->fail_msg = strdup(msg ? msg : "out of memory");
    k->fail_st = st;
    if (k->w) loop_fd_del(k->w);
    k->w = NULL;
    arm_timer(k, 0);
    if (!k->fail_msg || !k->timer) {
        /* out of memory: the connect timeout is all that is left */
        free(k->fail_msg);
        k->fail_msg = NULL;
        arm_timer(k, (uint64_t)k->req->timeout_s * 1000);
    }
}

static void resolved(void *ud);

static void resolve_job(void *arg)
{
    rjob *j = arg;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    j->rc = getaddrinfo(j->host, j->port, &hints, &j->res);
    if (loop_post(j->l, resolved, j) != GD_OK) {
        if (j->res) freeaddrinfo(j->res);
        free(j); /* the loop is gone: so are the client and its job list */
    }
}

static void resolved(void *ud)
{
    rjob *j = ud;
    h1client *cl = j->cl;
    h1conn *k = j->conn;
    if (cl) {
        if (j->prev)
            j->prev->next = j->next;
        else
            cl->jobs = j->next;
        if (j->next) j->next->prev = j->prev;
    }
    if (!k) {
        if (j->res) freeaddrinfo(j->res);
        free(j);
        return;
    }
    k->job = NULL;
    if (j->rc) {
        const char *why = gai_strerror(j->rc);
        h1req *r = k->req;
        free(j);
        req_fail(k, H1_ECONNECT, "cannot resolve %s: %s", r->dest_host, why);
        return;
    }
    k->ai = j->res;
    k->ai_cur = NULL;
    free(j);
    conn_connect_next(k);
}

static void connect_done(h1conn *k);

/* Tries the next address of k->ai (the first when ai_cur is NULL). */
static void conn_connect_next(h1conn *k)
{
    h1req *r = k->req;
    int last_err = ECONNREFUSED;
    if (k->w) loop_fd_del(k->w);
    k->w = NULL;
    if (k->fd >= 0) close(k->fd);
    k->fd = -1;
    for (;;) {
        k->ai_cur = k->ai_cur ? k->ai_cur->ai_next : k->ai;
        if (!k->ai_cur) break;
        struct addrinfo *a = k->ai_cur;
        int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            k->fd = fd;
            k->state = C_CONNECTING;
            if (conn_watch(k, LOOP_WRITE)) fail_later(k, H1_ECONNECT, "out of memory");
            return;
        }
        last_err = errno;
        close(fd);
    }
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "cannot connect to %s:%u: %s", r->dest_host, r->dest_port,
             strerror(last_err));
    fail_later(k, H1_ECONNECT, msg);
}

/* ---- TLS ---- */

static int load_cred(h1client *cl)
{
    if (cl->cred) return 0;
    if (cl->cred_failed) return -1;
    int e = gnutls_certificate_allocate_credentials(&cl->cred);
    if (e < 0) {
        snprintf(cl->cred_err, sizeof cl->cred_err, "cannot set up TLS: %s", gnutls_strerror(e));
        cl->cred = NULL;
        cl->cred_failed = true;
        return -1;
    }
    const char *file = getenv("SSL_CERT_FILE");
    if (!file || !*file) file = getenv("CURL_CA_BUNDLE");
    if (file && *file) {
        e = gnutls_certificate_set_x509_trust_file(cl->cred, file, GNUTLS_X509_FMT_PEM);
        if (e <= 0) {
            snprintf(cl->cred_err, sizeof cl->cred_err, "cannot read CA certificates from %s: %s",
                     file, e < 0 ? gnutls_strerror(e) : "none found");
            gnutls_certificate_free_credentials(cl->cred);
            cl->cred = NULL;
            cl->cred_failed = true;
            return -1;
        }
    }
    e = gnutls_certificate_set_x509_system_trust(cl->cred);
    if (e < 0 && !(file && *file))
        log_warn("provider", "the system's CA certificates cannot be read: %s", gnutls_strerror(e));
    return 0;
}

static void tls_step(h1conn *k);

static void tls_start(h1conn *k)
{
    h1req *r = k->req;
    h1client *cl = k->cl;
    if (load_cred(cl)) {
        req_fail(k, H1_ECONNECT, "%s", cl->cred_err);
        return;
    }
    int e = gnutls_init(&k->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
    if (e >= 0) e = gnutls_set_default_priority(k->tls);
    if (e >= 0) e = gnutls_credentials_set(k->tls, GNUTLS_CRD_CERTIFICATE, cl->cred);
    struct in6_addr a6;
    bool literal = inet_pton(AF_INET, r->origin_host, &a6) == 1 ||
                   inet_pton(AF_INET6, r->origin_host, &a6) == 1;
    if (e >= 0 && !literal)
        e = gnutls_server_name_set(k->tls, GNUTLS_NAME_DNS, r->origin_host, strlen(r->origin_host));
    gnutls_datum_t alpn = {.data = (unsigned char *)"http/1.1", .size = 8};
    if (e >= 0) e = gnutls_alpn_set_protocols(k->tls, &alpn, 1, 0);
    if (e < 0) {
        req_fail(k, H1_ECONNECT, "cannot start TLS with %s:%u: %s", r->origin_host, r->origin_port,
                 gnutls_strerror(e));
        return;
    }
    gnutls_session_set_verify_cert(k->tls, r->origin_host, 0);
    gnutls_transport_set_int(k->tls, k->fd);
    k->state = C_HANDSHAKE;
    tls_step(k);
}

static void start_write(h1conn *k);

static void tls_step(h1conn *k)
{
    h1req *r = k->req;
    int e = gnutls_handshake(k->tls);
    if (e == GNUTLS_E_AGAIN || e == GNUTLS_E_INTERRUPTED) {
        if (conn_watch(k, gnutls_record_get_direction(k->tls) ? LOOP_WRITE : LOOP_READ))
            req_fail(k, H1_ECONNECT, "out of memory");
        return;
    }
    if (e < 0) {
        if (e == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t why = {0};
            unsigned st = gnutls_session_get_verify_cert_status(k->tls);
            gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &why, 0);
            req_fail(k, H1_ECONNECT, "the TLS certificate of %s:%u is not trusted: %s",
                     r->origin_host, r->origin_port, why.data ? (char *)why.data : "?");
            gnutls_free(why.data);
            return;
        }
        req_fail(k, H1_ECONNECT, "TLS with %s:%u failed: %s", r->origin_host, r->origin_port,
                 gnutls_strerror(e));
        return;
    }
    start_write(k);
}

/* ---- writing and reading ---- */

static void start_write(h1conn *k)
{
    k->state = C_WRITE;
    k->last_ms = loop_now_ms(k->cl->l);
    if (conn_watch(k, LOOP_WRITE)) req_fail(k, H1_EIO, "out of memory");
}

/* Writes what is left of the head and body. 1 when all went, 0 to wait, -1 on error (errno,
 * or a GnuTLS error in *tls_err). */
static int write_some(h1conn *k, int *tls_err)
{
    h1req *r = k->req;
    for (;;) {
        const char *p;
        size_t n;
        bool in_head = r->head_off < r->head_len;
        if (in_head) {
            p = r->head + r->head_off;
            n = r->head_len - r->head_off;
        } else if (r->body_off < r->body_len) {
            p = r->body + r->body_off;
            n = r->body_len - r->body_off;
        } else {
            r->body_sent = true;
            return 1;
        }
        ssize_t w;
        if (k->tls) {
            w = gnutls_record_send(k->tls, p, n);
            if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) return 0;
            if (w < 0) {
                *tls_err = (int)w;
                return -1;
            }
        } else {
            struct iovec iov[2] = {{(void *)p, n}, {0, 0}};
            int niov = 1;
            if (in_head && r->body_len) {
                iov[1].iov_base = (void *)r->body;
                iov[1].iov_len = r->body_len;
                niov = 2;
            }
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)niov};
            w = sendmsg(k->fd, &mh, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
            if (w < 0) return -1;
        }
        size_t done = (size_t)w;
        if (in_head) {
            size_t hl = r->head_len - r->head_off;
            if (done <= hl) {
                r->head_off += done;
                continue;
            }
            r->head_off = r->head_len;
            done -= hl;
        }
        r->body_off += done;
        k->last_ms = loop_now_ms(k->cl->l);
    }
}

static void resp_header(void *ud, const char *n, size_t nl, const char *v, size_t vl)
{
    h1conn *k = ud;
    if (k->req && k->req->cb.header) k->req->cb.header(k->req->cb.ud, n, nl, v, vl);
}

static void tell_status(h1conn *k)
{
    h1req *r = k->req;
    if (r && !r->status_told && k->resp.state > H1R_HEADERS) {
        r->status_told = true;
        if (r->cb.status) r->cb.status(r->cb.ud, k->resp.status);
    }
}

static int resp_body(void *ud, const char *p, size_t n)
{
    h1conn *k = ud;
    tell_status(k);
    return k->req->cb.body ? k->req->cb.body(k->req->cb.ud, p, n) : 0;
}

static void start_read(h1conn *k, bool connect_answer)
{
    h1resp_cb cb = {.ud = k,
                    .header = connect_answer ? NULL : resp_header,
                    .body = connect_answer ? NULL : resp_body};
    h1resp_init(&k->resp, &cb, connect_answer);
    k->state = connect_answer ? C_PROXY_READ : C_READ;
    if (conn_watch(k, LOOP_READ)) req_fail(k, H1_EIO, "out of memory");
}

/* Bytes came (n > 0) or the end (n == 0): feeds the parser, ends the request when the answer
 * is complete or broken. false when k is gone. */
static bool got(h1conn *k, const char *p, size_t n)
{
    h1req *r = k->req;
    if (!(r && r->cb.progress_by_caller && k->state == C_READ && k->resp.state > H1R_HEADERS))
        k->last_ms = loop_now_ms(k->cl->l);
    gd_err e;
    size_t used = 0;
    if (n && k->state == C_READ) k->answered = true;
    if (n)
        e = h1resp_feed(&k->resp, p, n, &used);
    else
        e = h1resp_eof(&k->resp);
    if (k->state == C_PROXY_READ) {
        if (e) {
            req_fail(k, H1_ECONNECT, "the proxy %s:%u sent %s", r->dest_host, r->dest_port,
                     k->resp.err);
            return false;
        }
        if (!h1resp_done(&k->resp)) return true;
        if (k->resp.status != 200) {
            req_fail(k, H1_ECONNECT, "the proxy %s:%u refused the tunnel to %s:%u: HTTP %d",
                     r->dest_host, r->dest_port, r->origin_host, r->origin_port, k->resp.status);
            return false;
        }
        if (used < n) {
            req_fail(k, H1_ECONNECT, "the proxy %s:%u sent data before the TLS handshake",
                     r->dest_host, r->dest_port);
            return false;
        }
        h1resp_free(&k->resp);
        tls_start(k);
        return false;
    }
    if (e == GD_ECANCELLED) {
        req_fail(k, H1_EABORT, "stopped");
        return false;
    }
    if (e) {
        if (n == 0 || e == GD_EIO)
            req_fail(k, H1_EIO, "%s:%u: %s", r->origin_host, r->origin_port, k->resp.err);
        else
            req_fail(k, H1_EPROTO, "%s:%u sent %s", r->origin_host, r->origin_port, k->resp.err);
        return false;
    }
    if (!h1resp_done(&k->resp)) return true;
    tell_status(k);
    if (used < n) k->resp.keep_alive = false; /* bytes nobody asked for */
    r = detach(k);
    if (!r) return false;
    conn_release(k);
    req_end(r, H1_OK, "");
    return false;
}

static void conn_readable(h1conn *k)
{
    h1client *cl = k->cl;
    h1req *r = k->req;
    for (;;) {
        ssize_t n;
        if (k->tls) {
            n = gnutls_record_recv(k->tls, cl->rbuf, sizeof cl->rbuf);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) return;
            if (n == GNUTLS_E_PREMATURE_TERMINATION) n = 0;
            if (n < 0) {
                req_fail(k, H1_EIO, "reading from %s:%u: %s", r->origin_host, r->origin_port,
                         gnutls_strerror((int)n));
                return;
            }
        } else {
            n = recv(k->fd, cl->rbuf, sizeof cl->rbuf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (n < 0) {
                req_fail(k, H1_EIO, "reading from %s:%u: %s", r->dest_host, r->dest_port,
                         strerror(errno));
                return;
            }
        }
        if (!got(k, cl->rbuf, (size_t)n)) return;
        if (n == 0) return;
        /* what GnuTLS holds already decrypted is not seen by epoll */
        if (!k->tls || !gnutls_record_check_pending(k->tls)) return;
    }
}

static void connect_done(h1conn *k)
{
    h1req *r = k->req;
    if (k->ai) freeaddrinfo(k->ai);
    k->ai = k->ai_cur = NULL;
    if (r->connect_head) {
        r->head_off = 0;
        k->state = C_PROXY_WRITE;
        if (conn_watch(k, LOOP_WRITE)) req_fail(k, H1_ECONNECT, "out of memory");
        return;
    }
    if (r->tls)
        tls_start(k);
    else
        start_write(k);
}

static void conn_io(loop_fd *w, int fd, unsigned events, void *ud)
{
    (void)w;
    h1conn *k = ud;
    h1req *r = k->req;
    switch (k->state) {
    case C_IDLE:
        /* the peer closed it, or sent what nobody asked for */
        idle_unlink(k);
        conn_close(k);
        return;
    case C_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (!err && (events & (LOOP_ERR | LOOP_HUP))) err = ECONNREFUSED;
        if (err) {
            if (k->ai_cur && k->ai_cur->ai_next) {
                conn_connect_next(k);
                return;
            }
            req_fail(k, H1_ECONNECT, "cannot connect to %s:%u: %s", r->dest_host, r->dest_port,
                     strerror(err));
            return;
        }
        connect_done(k);
        return;
    }
    case C_PROXY_WRITE: {
        size_t n = strlen(r->connect_head);
        while (r->head_off < n) {
            ssize_t wr = send(fd, r->connect_head + r->head_off, n - r->head_off, MSG_NOSIGNAL);
            if (wr < 0 && (errno == EAGAIN || errno == EINTR)) return;
            if (wr < 0) {
                req_fail(k, H1_ECONNECT, "writing to the proxy %s:%u: %s", r->dest_host,
                         r->dest_port, strerror(errno));
                return;
            }
            r->head_off += (size_t)wr;
        }
        r->head_off = 0;
        start_read(k, true);
        return;
    }
    case C_PROXY_READ: {
        ssize_t n = recv(fd, k->cl->rbuf, sizeof k->cl->rbuf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n < 0) {
            req_fail(k, H1_ECONNECT, "reading from the proxy %s:%u: %s", r->dest_host, r->dest_port,
                     strerror(errno));
            return;
        }
        got(k, k->cl->rbuf, (size_t)n);
        return;
    }
    case C_HANDSHAKE:
        tls_step(k);
        return;
    case C_WRITE: {
        int tls_err = 0;
        int rc = write_some(k, &tls_err);
        if (rc < 0) {
            req_fail(k, H1_EIO, "writing to %s:%u: %s", r->dest_host, r->dest_port,
                     tls_err ? gnutls_strerror(tls_err) : strerror(errno));
            return;
        }
        if (rc > 0) start_read(k, false);
        return;
    }
    case C_READ:
        conn_readable(k);
        return;
    default:
        return;
    }
}

/* ---- starting ---- */

static h1conn *conn_new(h1client *cl, h1req *r)
{
    h1conn *k = calloc(1, sizeof *k);
    if (!k || !(k->key = strdup(r->key))) {
        free(k);
        return NULL;
    }
    k->cl = cl;
    k->fd = -1;
    k->req = r;
    r->conn = k;
    k->start_ms = k->last_ms = loop_now_ms(cl->l);
    cl->nconns++;
    return k;
}

/* false when out of memory: r is then ended (from h1_post: freed, without done). */
static bool req_connect(h1req *r, bool in_post)
{
    h1client *cl = r->cl;
    r->head_off = r->body_off = 0;
    r->status_told = false;
    h1conn *k = conn_new(cl, r);
    if (!k) {
        if (in_post)
            req_free(r);
        else
            req_end(r, H1_ECONNECT, "out of memory");
        return false;
    }
    arm_timer(k, (uint64_t)r->timeout_s * 1000);
    char port[8];
    snprintf(port, sizeof port, "%u", r->dest_port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    if (getaddrinfo(r->dest_host, port, &hints, &k->ai) == 0) {
        k->ai_cur = NULL;
        conn_connect_next(k);
        return true;
    }
    k->ai = NULL;
    k->state = C_RESOLVING;
    rjob *j = calloc(1, sizeof *j);
    if (!cl->resolver) cl->resolver = pool_new("resolve", 2, 4096);
    if (!j || !cl->resolver) {
        free(j);
        fail_later(k, H1_ECONNECT, "out of memory resolving a name");
        return true;
    }
    j->cl = cl;
    j->conn = k;
    j->l = cl->l;
    snprintf(j->host, sizeof j->host, "%s", r->dest_host);
    snprintf(j->port, sizeof j->port, "%s", port);
    if (pool_submit(cl->resolver, resolve_job, j) != GD_OK) {
        free(j);
        fail_later(k, H1_ECONNECT, "cannot resolve the name now (too many waiting)");
        return true;
    }
    k->job = j;
    j->next = cl->jobs;
    if (cl->jobs) cl->jobs->prev = j;
    cl->jobs = j;
    return true;
}

static bool default_port(const h1_url *u)
{
    return u->port == (u->tls ? 443 : 80);
}

/* "host[:port]" as Host and CONNECT write it. */
static void authority(const h1_url *u, bool always_port, char *out, size_t len)
{
    const char *l = u->ipv6 ? "[" : "", *rb = u->ipv6 ? "]" : "";
    if (always_port || !default_port(u))
        snprintf(out, len, "%s%s%s:%u", l, u->host, rb, u->port);
    else
        snprintf(out, len, "%s%s%s", l, u->host, rb);
}

/* "Proxy-Authorization: Basic ...\r\n" for a proxy URL's user:password, or "". */
static gd_err proxy_auth(const h1_url *p, buf *b)
{
    if (!p->userinfo) return GD_OK;
    size_t n = strlen(p->userinfo);
    size_t bl = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *enc = malloc(bl);
    if (!enc) return GD_ENOMEM;
    sodium_bin2base64(enc, bl, (const unsigned char *)p->userinfo, n,
                      sodium_base64_VARIANT_ORIGINAL);
    gd_err e = buf_printf(b, "Proxy-Authorization: Basic %s\r\n", enc);
    sodium_memzero(enc, bl);
    free(enc);
    return e;
}

h1req *h1_post(h1client *cl, const char *url, const char *hdrs, size_t hlen, const char *body,
               size_t blen, long timeout_s, const h1req_cb *cb, char *err, size_t errlen)
{
    h1_url u, pu = {0};
    if (h1_url_parse(url, &u, err, errlen)) return NULL;
    const char *proxy = h1_proxy_for(&u);
    bool have_proxy = false;
    if (proxy) {
        char tmp[2048];
        if (!strstr(proxy, "://"))
            snprintf(tmp, sizeof tmp, "http://%s", proxy);
        else
            snprintf(tmp, sizeof tmp, "%s", proxy);
        char perr[300]; /* not shown: it quotes the URL, and its password */
        if (h1_url_parse(tmp, &pu, perr, sizeof perr) || pu.tls) {
            snprintf(err, errlen, "the proxy in %s is not usable: %s",
                     u.tls ? "https_proxy" : "http_proxy",
                     pu.tls ? "only http:// proxies are supported" : "not a valid URL");
            h1_url_clear(&pu);
            h1_url_clear(&u);
            return NULL;
        }
        have_proxy = true;
    }
    h1req *r = calloc(1, sizeof *r);
    buf h, ch;
    buf_init(&h, (size_t)-1);
    buf_init(&ch, (size_t)-1);
    char auth[H1_HOST_MAX + 16];
    authority(&u, false, auth, sizeof auth);
    gd_err e = r ? GD_OK : GD_ENOMEM;
    if (!e && have_proxy && !u.tls)
        e = buf_printf(&h, "POST http://%s%s HTTP/1.1\r\n", auth, u.target);
    else if (!e)
        e = buf_printf(&h, "POST %s HTTP/1.1\r\n", u.target);
    if (!e) e = buf_printf(&h, "Host: %s\r\n", auth);
    if (!e && have_proxy && !u.tls) e = proxy_auth(&pu, &h);
    if (!e && hlen) e = buf_append(&h, hdrs, hlen);
    if (!e) e = buf_printf(&h, "Content-Length: %zu\r\n\r\n", blen);
    if (!e && have_proxy && u.tls) {
        char ca[H1_HOST_MAX + 16];
        authority(&u, true, ca, sizeof ca);
        e = buf_printf(&ch, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", ca, ca);
        if (!e) e = proxy_auth(&pu, &ch);
        if (!e) e = buf_puts(&ch, "\r\n");
    }
    char key[2 * H1_HOST_MAX + 32];
    snprintf(key, sizeof key, "%c%s:%u>%s:%u", u.tls ? 's' : 'p', u.host, u.port,
             have_proxy ? pu.host : "", have_proxy ? pu.port : 0);
    if (!e && r) {
        r->cl = cl;
        r->cb = *cb;
        r->head_len = h.len;
        r->head = buf_detach(&h);
        r->connect_head = ch.len ? buf_detach(&ch) : NULL;
        r->key = strdup(key);
        r->body = body;
        r->body_len = blen;
        r->timeout_s = timeout_s > 0 ? timeout_s : 600;
        r->tls = u.tls;
        snprintf(r->origin_host, sizeof r->origin_host, "%s", u.host);
        r->origin_port = u.port;
        const h1_url *d = have_proxy ? &pu : &u;
        snprintf(r->dest_host, sizeof r->dest_host, "%s", d->host);
        r->dest_port = d->port;
        r->dest_proxy = have_proxy;
        if (!r->head || !r->key || (ch.len && !r->connect_head)) e = GD_ENOMEM;
    }
    buf_free(&h);
    buf_free(&ch);
    h1_url_clear(&u);
    h1_url_clear(&pu);
    if (e) {
        if (r) req_free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* an idle connection of the same key, most recent first */
    for (h1conn *k = cl->idle_head; k; k = k->next) {
        if (strcmp(k->key, r->key)) continue;
        idle_unlink(k);
        k->reused = true;
        k->req = r;
        r->conn = k;
        k->start_ms = k->last_ms = loop_now_ms(cl->l);
        arm_timer(k, (uint64_t)r->timeout_s * 1000);
        k->state = C_WRITE;
        if (conn_watch(k, LOOP_WRITE)) fail_later(k, H1_EIO, "out of memory");
        return r;
    }
    if (!req_connect(r, true)) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return r;
}

bool h1req_body_sent(const h1req *r)
{
    return r->body_sent;
}

void h1req_cancel(h1req *r)
{
    h1conn *k = r->conn;
    if (k) {
        k->req = NULL;
        conn_close(k);
    }
    req_free(r);
}

h1client *h1client_new(loop *l)
{
    h1client *cl = calloc(1, sizeof *cl);
    if (cl) cl->l = l;
    return cl;
}

void h1client_free(h1client *cl)
{
    if (!cl) return;
    if (cl->sweep) loop_timer_cancel(cl->sweep);
    while (cl->idle_head) {
        h1conn *k = cl->idle_head;
        idle_unlink(k);
        conn_close(k);
    }
    for (rjob *j = cl->jobs; j; j = j->next) {
        j->cl = NULL;
        if (j->conn) j->conn->job = NULL;
    }
    cl->jobs = NULL;
    if (cl->resolver) pool_free(cl->resolver);
    if (cl->cred) gnutls_certificate_free_credentials(cl->cred);
    free(cl);
}
