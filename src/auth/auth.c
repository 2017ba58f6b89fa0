/* auth: the secret key, user tokens and the trusted proxy's header (see auth.h). */
#include "auth/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "http/http.h"

#define MAX_PROXIES      32
#define USERS_RECHECK_NS 1000000000ull /* how often "are there users now?" is asked, when none */
#define SESSION_SEGMENT  "/sessions/{id}"
#define RATE_SLOTS       1024         /* users counted at once by requests_per_minute */
#define SECRET_FILE      "secret_key" /* generate_secret's file, in data_dir */

static struct {
    const config *cfg;
    store *st;
    char secret[sizeof(((config *)0)->secret_key)]; /* the X-Secret-Key: given, read or made */
    int nproxies;
    struct sockaddr_storage proxies[MAX_PROXIES]; /* ss_family and the address only */
    atomic_bool users;        /* some user exists (once seen, kept until restart) */
    atomic_bool users_known;  /* the store has answered whether any does (once, since start) */
    atomic_ullong users_seen; /* when the store was last asked, monotonic ns */
} A;

/* ---- tokens and secrets ---- */

void auth_token_hash(const char *token, size_t len, unsigned char hash[STORE_TOKEN_HASH_LEN])
{
    crypto_generichash(hash, STORE_TOKEN_HASH_LEN, (const unsigned char *)token, len, NULL, 0);
}

void auth_token_new(char out[AUTH_TOKEN_LEN], unsigned char hash[STORE_TOKEN_HASH_LEN])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(out, "gd_", 3);
    sodium_bin2base64(out + 3, AUTH_TOKEN_LEN - 3, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    auth_token_hash(out, strlen(out), hash);
}

bool auth_secret_equal(const char *given, const char *expected)
{
    /* Both are hashed first, so that the comparison runs over 32 bytes whatever their lengths. */
    unsigned char a[32], b[32];
    crypto_generichash(a, sizeof a, (const unsigned char *)given, strlen(given), NULL, 0);
    crypto_generichash(b, sizeof b, (const unsigned char *)expected, strlen(expected), NULL, 0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

bool auth_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > STORE_USER_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7F) return false;
    return true;
}

/* ---- set-up ---- */

/* Whether every address host resolves to is a loopback one (false when it does not resolve). */
static bool host_is_loopback(const char *host)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    if (getaddrinfo(host, "0", &hints, &res) != 0) return false;
    bool all = res != NULL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (!net_addr_loopback(ai->ai_addr)) all = false;
    freeaddrinfo(res);
    return all;
}

static bool proxy_mode(void)
{
    return A.cfg && A.cfg->trusted_proxy_header[0] && A.nproxies > 0;
}

/* Whether users exist, asking the store at most once a second while none did. Once some did,
 * authentication stays on until restart (removing every user does not open the server). Until
 * the store has answered once, it is not known: authentication fails closed meanwhile (503),
 * rather than serving everyone as the local user on a server whose users it cannot read (a
 * goosed.db another program keeps locked at start, an unreadable disk). A store that answered
 * "none" and then fails is taken at its last answer. */
enum users_state { USERS_UNKNOWN, USERS_NONE, USERS_SOME };

/* Asks the store, and keeps its answer (none when it cannot say). */
static void users_ask(store *st)
{
    long n = 0;
    if (st->ops->user_count(st, &n) == GD_OK) {
        if (n > 0) atomic_store(&A.users, true);
        atomic_store(&A.users_known, true);
    }
}

static enum users_state users_state(void)
{
    if (atomic_load(&A.users)) return USERS_SOME;
    if (!A.st) return USERS_NONE;
    uint64_t now = clock_mono_ns(), last = atomic_load(&A.users_seen);
    if ((!last || now - last >= USERS_RECHECK_NS) &&
        atomic_compare_exchange_strong(&A.users_seen, &last, now))
        users_ask(A.st);
    return atomic_load(&A.users)         ? USERS_SOME
           : atomic_load(&A.users_known) ? USERS_NONE
                                         : USERS_UNKNOWN;
}

bool auth_enabled(void)
{
    return A.cfg && (A.secret[0] || proxy_mode() || users_state() != USERS_NONE);
}

/* Reads the secret key from path into A.secret: the file's content less its trailing white
 * space (a newline left by an editor or `echo`). */
static gd_err secret_read(const char *path, const char *what, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return errno == ENOENT ? GD_ENOTFOUND : GD_EIO;
    }
    char text[sizeof A.secret + 1];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof text && (got = read(fd, text + n, sizeof text - n)) != 0) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
            close(fd);
            sodium_memzero(text, sizeof text);
            return GD_EIO;
        }
        n += (size_t)got;
    }
    close(fd);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ' ||
                 text[n - 1] == '\t'))
        n--;
    gd_err rc = GD_OK;
    if (n == 0 || n >= sizeof A.secret || memchr(text, '\0', n)) {
        snprintf(err, errlen, "%s %s must hold one secret key of 1 to %zu bytes", what, path,
                 sizeof A.secret - 1);
        rc = GD_EINVAL;
    } else {
        memcpy(A.secret, text, n);
        A.secret[n] = '\0';
    }
    sodium_memzero(text, sizeof text);
    return rc;
}

/* The secret key: GOOSE_SERVER__SECRET_KEY, else the file secret_key_file names, else with
 * generate_secret the one made at the first start into data_dir/secret_key (mode 0600). Its
 * path is logged, never its value. */
static gd_err secret_setup(const config *cfg, char *err, size_t errlen)
{
    sodium_memzero(A.secret, sizeof A.secret);
    if (cfg->secret_key[0] && cfg->secret_key_file[0]) {
        snprintf(err, errlen,
                 "both GOOSE_SERVER__SECRET_KEY and GOOSE_SERVER__SECRET_KEY_FILE are set: give "
                 "one of them");
        return GD_EINVAL;
    }
    if (cfg->secret_key[0]) {
        snprintf(A.secret, sizeof A.secret, "%s", cfg->secret_key);
        return GD_OK;
    }
    if (cfg->secret_key_file[0])
        return secret_read(cfg->secret_key_file, "the secret key file (secret_key_file)", err,
                           errlen);
    if (!cfg->generate_secret) return GD_OK;
    char path[PATH_MAX + sizeof SECRET_FILE + 1];
    snprintf(path, sizeof path, "%s/%s", cfg->data_dir, SECRET_FILE);
    const char *what = "the generated secret key";
    gd_err rc = secret_read(path, what, err, errlen);
    if (rc != GD_ENOTFOUND) {
        if (rc == GD_OK)
            log_info("auth", "the secret key is the one generated at the first start, in %s", path);
        return rc;
    }
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    char key[64];
    sodium_bin2base64(key, sizeof key, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(key);
    bool ok = fd >= 0 && write(fd, key, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (!ok) {
        sodium_memzero(key, sizeof key);
        if (fd >= 0) unlink(path);
        snprintf(err, errlen, "cannot write %s %s: %s", what, path, strerror(e));
        return GD_EIO;
    }
    memcpy(A.secret, key, len + 1);
    sodium_memzero(key, sizeof key);
    log_warn("auth",
             "generated a secret key at the first start (generate_secret): clients send it as "
             "X-Secret-Key; read it with `cat %s` where this server runs",
             path);
    return GD_OK;
}

gd_err auth_setup(const config *cfg, store *st, char *err, size_t errlen)
{
    A.cfg = cfg;
    A.st = st;
    gd_err src = secret_setup(cfg, err, errlen);
    if (src != GD_OK) return src;
    A.nproxies = 0;
    atomic_store(&A.users, false);
    atomic_store(&A.users_known, false);
    atomic_store(&A.users_seen, 0);
    char list[sizeof cfg->trusted_proxies];
    snprintf(list, sizeof list, "%s", cfg->trusted_proxies);
    for (char *save = NULL, *tok = strtok_r(list, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (A.nproxies == MAX_PROXIES) {
            snprintf(err, errlen, "trusted_proxies: at most %d addresses", MAX_PROXIES);
            return GD_EINVAL;
        }
        if (!net_addr_parse(tok, &A.proxies[A.nproxies])) {
            snprintf(err, errlen,
                     "trusted_proxies: \"%.64s\" is not an IPv4 or IPv6 address (names and "
                     "networks are not accepted)",
                     tok);
            return GD_EINVAL;
        }
        A.nproxies++;
    }
    if (cfg->trusted_proxy_header[0] && !A.nproxies)
        log_warn("auth",
                 "trusted_proxy_header %s is set but trusted_proxies is empty: the header "
                 "is ignored from every address",
                 cfg->trusted_proxy_header);
    if (A.nproxies && !cfg->trusted_proxy_header[0])
        log_warn("auth", "trusted_proxies is set but trusted_proxy_header is not: no proxy is "
                         "trusted");
    if (st) users_ask(st);
    atomic_store(&A.users_seen, clock_mono_ns());
    bool on = auth_enabled(); /* on too while the store cannot say (users_state) */
    if (!on && !host_is_loopback(cfg->host)) {
        if (!cfg->insecure_no_auth) {
            snprintf(err, errlen,
                     "refusing to listen on %s with no authentication: anyone who can reach it "
                     "could run commands as this user. Set GOOSE_SERVER__SECRET_KEY, add a user "
                     "(goosed user add NAME), or set trusted_proxy_header and trusted_proxies; "
                     "or pass --insecure-no-auth (insecure_no_auth: true) to serve it open",
                     cfg->host);
            return GD_EINVAL;
        }
        log_warn("auth", "serving %s with NO authentication (--insecure-no-auth)", cfg->host);
    }
    if (on && !A.secret[0] && !proxy_mode() && users_state() == USERS_UNKNOWN)
        log_warn("auth", "cannot tell whether users exist (the store cannot be read): requests "
                         "are refused (503) until it can");
    else if (on)
        log_info("auth", "authentication on:%s%s%s", A.secret[0] ? " X-Secret-Key" : "",
                 atomic_load(&A.users) ? " user tokens" : "",
                 proxy_mode() ? " trusted proxy header" : "");
    return GD_OK;
}

/* ---- requests per minute ---- */

/* One user's count in the current minute (a fixed window), by user id. */
typedef struct {
    char id[UUID_STR_LEN + 1]; /* "" free; the local user is "-" */
    uint64_t window;           /* minute number, monotonic */
    long count;
} rate_slot;

static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER;
static rate_slot rate[RATE_SLOTS];

/* Counts a request of user id; 0 when within requests_per_minute, else the seconds until the
 * next minute starts. A slot of an older minute is reused; a full table of this minute's users
 * shares the first slot probed. */
static long rate_count(const char *id, long limit)
{
    uint64_t now = clock_mono_ns() / 1000000000ull, minute = now / 60;
    const char *key = id[0] ? id : "-";
    size_t h = 5381;
    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    pthread_mutex_lock(&rate_mu);
    rate_slot *slot = NULL, *reuse = NULL;
    for (size_t i = 0; i < RATE_SLOTS && !slot; i++) {
        rate_slot *s = &rate[(h + i) % RATE_SLOTS];
        if (!strcmp(s->id, key))
            slot = s;
        else if (!s->id[0] || s->window != minute) {
            if (!reuse) reuse = s;
            if (!s->id[0]) break; /* the key is not further on */
        }
    }
    if (!slot) {
        slot = reuse ? reuse : &rate[h % RATE_SLOTS];
        snprintf(slot->id, sizeof slot->id, "%s", key);
        slot->window = minute;
        slot->count = 0;
    }
    if (slot->window != minute) {
        slot->window = minute;
        slot->count = 0;
    }
    long wait = ++slot->count > limit ? (long)(60 - now % 60) : 0;
    pthread_mutex_unlock(&rate_mu);
    return wait;
}

bool auth_session_quota(struct http_req *r)
{
    const auth_user *u = http_user(r);
    long max = A.cfg ? A.cfg->max_sessions_per_user : 0;
    if (max <= 0 || !A.st) return true;
    long total = 0;
    gd_err e = A.st->ops->session_count(A.st, u->id, &total);
    if (e) {
        http_reply_error(r, 503, "storage_unavailable", "storage unavailable: %s", store_errmsg());
        return false;
    }
    if (total >= max) {
        http_add_header(r, "Retry-After", "60");
        http_reply_error(r, 429, "too_many_sessions",
                         "%s has %ld sessions, the limit (max_sessions_per_user); delete one "
                         "first",
                         u->name, total);
        return false;
    }
    return true;
}

/* ---- requests ---- */

static void local_user(auth_user *u)
{
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "local");
    u->admin = true;
}

static void from_store(auth_user *u, const store_user *su)
{
    memset(u, 0, sizeof *u);
    snprintf(u->id, sizeof u->id, "%s", su->id);
    snprintf(u->name, sizeof u->name, "%s", su->name);
    u->admin = su->admin;
}

/* Answers 401 with WWW-Authenticate and the ways accepted here. */
static void unauthorized(struct http_req *r, const char *why)
{
    char ways[256] = "";
    size_t o = 0;
    if (A.secret[0]) o += (size_t)snprintf(ways + o, sizeof ways - o, "X-Secret-Key");
    o += (size_t)snprintf(ways + o, sizeof ways - o, "%sAuthorization: Bearer <token>",
                          o ? ", or " : "");
    if (proxy_mode()) snprintf(ways + o, sizeof ways - o, ", or come through the trusted proxy");
    http_add_header(r, "WWW-Authenticate", "Bearer realm=\"goosed\"");
    http_reply_error(r, 401, "unauthorized", "%s: send %s", why, ways);
}

static bool peer_trusted(const char *peer)
{
    struct sockaddr_storage ss;
    if (!net_addr_parse(peer, &ss)) return false;
    for (int i = 0; i < A.nproxies; i++)
        if (net_addr_same(&ss, &A.proxies[i])) return true;
    return false;
}

/* The user a trusted proxy named, made on first use. false when answered. */
static bool proxy_user(struct http_req *r, const char *name, auth_user *user)
{
    if (!auth_name_valid(name)) {
        unauthorized(r, "the proxy's user name is not acceptable");
        return false;
    }
    store_user su;
    gd_err e = A.st->ops->user_get_by_name(A.st, name, &su);
    if (e == GD_ENOTFOUND) {
        memset(&su, 0, sizeof su);
        snprintf(su.name, sizeof su.name, "%s", name);
        e = A.st->ops->user_add(A.st, &su, NULL);
        if (e == GD_OK)
            log_info("auth", "user %s created on first use (trusted proxy)", su.name);
        else if (e == GD_ECONFLICT) /* made by a request beside this one */
            e = A.st->ops->user_get_by_name(A.st, name, &su);
    }
    if (e) {
        http_reply_error(r, 503, "storage_unavailable", "storage unavailable: %s", store_errmsg());
        return false;
    }
    from_store(user, &su);
    return true;
}

/* Who sent r, into user; false when answered (401, 503). */
static bool authenticate(struct http_req *r, const char *peer, auth_user *user)
{
    const char *hdr = A.cfg->trusted_proxy_header;
    const char *named = hdr[0] ? http_header(r, hdr) : NULL;
    bool on = auth_enabled();
    if (named && !(proxy_mode() && peer_trusted(peer))) {
        /* Names only: the header's, and the address it came from. */
        log_warn("auth", "ignored %s from %s: not a trusted proxy (trusted_proxies)", hdr, peer);
        named = NULL;
    }
    if (named && *named) return proxy_user(r, named, user);
    if (!on) {
        local_user(user);
        return true;
    }
    if (!A.secret[0] && users_state() == USERS_UNKNOWN) {
        /* No secret, and the store cannot say whether there are users whose tokens it would
         * ask for (users_state): nobody can be told apart from the local user. The store's
         * reason: health answers the last failed attempt's within the second after it. */
        A.st->ops->health(A.st);
        http_reply_error(r, 503, "storage_unavailable",
                         "storage unavailable: cannot tell whether this server has users (so "
                         "whether to ask for a token): %s",
                         store_errmsg());
        return false;
    }
    const char *key = http_header(r, "X-Secret-Key");
    if (key) {
        if (A.secret[0] && auth_secret_equal(key, A.secret)) {
            local_user(user);
            return true;
        }
        unauthorized(r, "the X-Secret-Key is wrong");
        return false;
    }
    const char *az = http_header(r, "Authorization");
    if (az && !strncasecmp(az, "Bearer ", 7)) {
        const char *tok = az + 7;
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            len--;
        unsigned char hash[STORE_TOKEN_HASH_LEN];
        auth_token_hash(tok, len, hash);
        store_user su;
        gd_err e = len ? A.st->ops->user_get_by_token_hash(A.st, hash, &su) : GD_ENOTFOUND;
        if (e == GD_OK) {
            from_store(user, &su);
            user->by_token = true;
            memcpy(user->token_hash, hash, sizeof hash);
            return true;
        }
        if (e == GD_ENOTFOUND) {
            unauthorized(r, "the bearer token is not valid");
            return false;
        }
        http_reply_error(r, 503, "storage_unavailable", "storage unavailable: %s", store_errmsg());
        return false;
    }
    unauthorized(r, "authentication required");
    return false;
}

/* Which parameter of the route is a session's id (-1: none). */
static int session_param(const http_route *rt)
{
    const char *at = strstr(rt->pattern, SESSION_SEGMENT);
    if (!at) return -1;
    int i = 0;
    for (const char *p = rt->pattern; p < at; p++)
        i += *p == '{';
    return i;
}

static bool auth_request(struct http_req *r, const route_match *m, const char *peer,
                         auth_user *user)
{
    if (m->route && (m->route->flags & ROUTE_PUBLIC)) {
        const char *hdr =
            A.cfg && (m->route->flags & ROUTE_PROXY_WHO) ? A.cfg->trusted_proxy_header : "";
        const char *named = hdr[0] ? http_header(r, hdr) : NULL;
        if (named && *named && proxy_mode() && peer_trusted(peer))
            return proxy_user(r, named, user); /* the browser's user, as the proxy names them */
        local_user(user);
        user->admin = false;
        snprintf(user->name, sizeof user->name, "anonymous");
        return true;
    }
    if (!A.cfg) { /* not set up (unit tests of the server alone) */
        local_user(user);
        return true;
    }
    if (!authenticate(r, peer, user)) return false;
    long wait =
        A.cfg->requests_per_minute > 0 ? rate_count(user->id, A.cfg->requests_per_minute) : 0;
    if (wait > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", wait);
        http_add_header(r, "Retry-After", ra);
        http_reply_error(r, 429, "rate_limited",
                         "%s has made more than %ld requests this minute (requests_per_minute); "
                         "try again in %ld s",
                         user->name, A.cfg->requests_per_minute, wait);
        return false;
    }
    if (!m->route || m->bad_param) return true; /* 404/405 follow */
    if ((m->route->flags & ROUTE_ADMIN) && !user->admin) {
        http_reply_error(r, 403, "forbidden", "%s %s needs an admin; %s is not one", http_method(r),
                         http_path(r), user->name);
        return false;
    }
    int p = session_param(m->route);
    if (p >= 0 && p < m->nparams && A.st) {
        /* Another user's session and a session that does not exist get the same answer, here,
         * before anything else about the request is looked at (api_store_error's 404). When the
         * store cannot say whose it is, nothing is done with it either: a handler that does not
         * read the store itself (a tool confirmation, an extension's resources) would act on
         * another user's session for whoever asked. */
        char owner[UUID_STR_LEN];
        gd_err e = A.st->ops->session_owner(A.st, m->params[p], owner);
        if (e == GD_ENOTFOUND || (e == GD_OK && strcmp(owner, user->id) != 0)) {
            http_reply_error(r, 404, "not_found", "session '%s' not found", m->params[p]);
            return false;
        }
        if (e == GD_ESTORE || e == GD_EBUSY) {
            http_reply_error(r, 503, "storage_unavailable", "storage unavailable: %s",
                             store_errmsg());
            return false;
        }
        if (e) {
            http_reply_error(r, 500, "internal", "internal error: %s", gd_strerror(e));
            return false;
        }
        snprintf(user->session, sizeof user->session, "%s", m->params[p]);
    }
    return true;
}

_Static_assert(sizeof(auth_user) <= HTTP_WHO_BYTES, "an auth_user must fit the request's who room");

bool auth_gate(struct http_req *r, const route_match *m, const char *peer)
{
    auth_user *user = http_who(r);
    if (!auth_request(r, m, peer, user)) return false;
    http_set_log_who(r, user->name[0] ? user->name : user->id, user->session);
    return true;
}

const auth_user *http_user(struct http_req *r)
{
    return http_who(r); /* zeroed when no gate ran: the local user's id "", not an admin */
}

bool auth_still_valid(const auth_user *u)
{
    if (!u->by_token) return true;
    store_user su;
    gd_err e = A.st->ops->user_get_by_token_hash(A.st, u->token_hash, &su);
    if (e == GD_OK) return !strcmp(su.id, u->id);
    return e != GD_ENOTFOUND;
}
