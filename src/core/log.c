#include "core/log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/utf8.h"

#define LOG_MAX_RULES 16
#define LOG_NAME_MAX  32

struct log_rule {
    char module[LOG_NAME_MAX];
    log_level level;
};

static struct {
    log_level deflt;
    int nrules;
    struct log_rule rules[LOG_MAX_RULES];
    char spec[256];
} filter = {.deflt = LOG_INFO, .spec = "info"};

static log_format format = LOG_TEXT;
static _Thread_local const log_ctx *ctx;

void log_set_format(log_format f)
{
    format = f;
}

bool log_parse_format(const char *s, log_format *out)
{
    if (!strcmp(s, "text"))
        *out = LOG_TEXT;
    else if (!strcmp(s, "json"))
        *out = LOG_JSON;
    else
        return false;
    return true;
}

const log_ctx *log_ctx_set(const log_ctx *c)
{
    const log_ctx *prev = ctx;
    ctx = c;
    return prev;
}

const log_ctx *log_ctx_get(void)
{
    return ctx;
}

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", "trace"};

static bool parse_level(const char *s, size_t n, log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof *level_names; i++) {
        if (strlen(level_names[i]) == n && strncasecmp(s, level_names[i], n) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    if (n == 7 && strncasecmp(s, "warning", 7) == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

static bool is_self(const char *m)
{
    return !strcmp(m, "goose") || !strcmp(m, "goosed") || !strcmp(m, "goose_server");
}

gd_err log_configure(const char *spec, char *err, size_t errlen)
{
    log_level deflt = LOG_INFO;
    int n = 0;
    struct log_rule rules[LOG_MAX_RULES];
    const char *p = spec;
    if (strlen(spec) >= sizeof filter.spec) {
        snprintf(err, errlen, "log filter longer than %zu characters", sizeof filter.spec - 1);
        return GD_EINVAL;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        const char *eq = memchr(p, '=', len);
        if (len == 0) {
            /* empty item: tolerate "info," */
        } else if (!eq) {
            if (!parse_level(p, len, &deflt)) {
                snprintf(err, errlen,
                         "unknown log level \"%.*s\" (use error, warn, info, debug or trace)",
                         (int)len, p);
                return GD_EINVAL;
            }
        } else {
            size_t mlen = (size_t)(eq - p);
            log_level lv;
            if (mlen == 0 || mlen >= LOG_NAME_MAX) {
                snprintf(err, errlen, "bad module name in log filter item \"%.*s\"", (int)len, p);
                return GD_EINVAL;
            }
            if (!parse_level(eq + 1, len - mlen - 1, &lv)) {
                snprintf(err, errlen, "unknown log level \"%.*s\" for module \"%.*s\"",
                         (int)(len - mlen - 1), eq + 1, (int)mlen, p);
                return GD_EINVAL;
            }
            if (n == LOG_MAX_RULES) {
                snprintf(err, errlen, "more than %d module rules in log filter", LOG_MAX_RULES);
                return GD_EINVAL;
            }
            memcpy(rules[n].module, p, mlen);
            rules[n].module[mlen] = '\0';
            rules[n].level = lv;
            n++;
        }
        if (!end) break;
        p = end + 1;
    }
    /* A rule naming this whole program sets the default for all of its modules. */
    for (int i = 0; i < n; i++)
        if (is_self(rules[i].module)) deflt = rules[i].level;
    filter.deflt = deflt;
    memcpy(filter.rules, rules, sizeof rules);
    filter.nrules = n;
    snprintf(filter.spec, sizeof filter.spec, "%s", spec);
    return GD_OK;
}

const char *log_spec(void)
{
    return filter.spec;
}

bool log_enabled(log_level level, const char *module)
{
    log_level lv = filter.deflt;
    for (int i = 0; i < filter.nrules; i++)
        if (!strcmp(filter.rules[i].module, module)) lv = filter.rules[i].level;
    return level <= lv;
}

/* Appends s as the body of a JSON string (no quotes) to line[*n..cap), escaping what JSON
 * requires and writing bytes that are not UTF-8 as U+FFFD; stops quietly when full. */
static void json_escape(char *line, size_t *n, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *n;
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        char esc[8];
        const char *out = esc;
        size_t k = 0, adv = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, k = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2), k = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2), k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4), esc[4] = hex[c >> 4], esc[5] = hex[c & 15], k = 6;
        } else if (c < 0x80) {
            esc[0] = (char)c, k = 1;
        } else if ((adv = utf8_seq_len(p + i, len - i)) != 0) {
            out = s + i, k = adv;
        } else {
            memcpy(esc, "\xef\xbf\xbd", 3), k = 3, adv = 1; /* U+FFFD */
        }
        if (o + k >= cap) break;
        memcpy(line + o, out, k);
        o += k;
        i += adv;
    }
    *n = o;
}

static void json_member(char *line, size_t *n, size_t cap, const char *key, const char *v)
{
    if (!v || !*v) return;
    size_t klen = strlen(key);
    if (*n + klen + 6 >= cap) return;
    memcpy(line + *n, ",\"", 2);
    memcpy(line + *n + 2, key, klen);
    memcpy(line + *n + 2 + klen, "\":\"", 3);
    *n += klen + 5;
    json_escape(line, n, cap - 1, v);
    line[(*n)++] = '"';
}

/* One JSON object: {"time","level","target","message", then the context c} and a newline, into
 * line (size cap + 2 at least); returns its length. */
static size_t json_line(char *line, size_t cap, log_level level, const char *module,
                        const struct tm *tm, long ms, const char *msg, const log_ctx *c)
{
    size_t n = (size_t)snprintf(
        line, cap, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
        tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, ms,
        level_names[level]);
    json_member(line, &n, cap, "target", module);
    json_member(line, &n, cap, "message", msg);
    if (c) {
        json_member(line, &n, cap, "request_id", c->request_id);
        json_member(line, &n, cap, "session_id", c->session_id);
        json_member(line, &n, cap, "user", c->user);
        json_member(line, &n, cap, "trace_id", c->trace_id);
    }
    line[n++] = '}';
    line[n++] = '\n';
    return n;
}

static const char *const tags[] = {"OFF  ", "ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};

/* Appends s to line[*n..cap) so that it stays on its line and cannot drive a terminal: control
 * characters (C0 but the tab, DEL, C1) and bytes that are not UTF-8 are written as \xHH (a C1
 * character as its two bytes), the rest as it is; stops quietly when full. A message may carry
 * what a client, a provider or a tool said: it must not forge the next line. */
static void text_escape(char *line, size_t *n, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = *n, len = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        bool esc;
        size_t adv = utf8_next_shown(p + i, len - i, "\t", &esc);
        if (esc) {
            if (o + 4 * adv >= cap) break;
            for (size_t k = 0; k < adv; k++) {
                line[o++] = '\\', line[o++] = 'x';
                line[o++] = hex[p[i + k] >> 4], line[o++] = hex[p[i + k] & 15];
            }
        } else {
            if (o + adv >= cap) break;
            memcpy(line + o, p + i, adv);
            o += adv;
        }
        i += adv;
    }
    *n = o;
}

/* "TIME LEVEL module: message" and a newline into line (size cap); returns its length. */
static size_t text_line(char *line, size_t cap, log_level level, const char *module,
                        const struct tm *tm, long ms, const char *fmt, va_list ap)
{
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    int n = snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm->tm_year + 1900,
                     tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, ms,
                     tags[level], module);
    size_t len = n < 0 ? 0 : (size_t)n > cap - 2 ? cap - 2 : (size_t)n;
    text_escape(line, &len, cap - 1, msg);
    line[len++] = '\n';
    return len;
}

static size_t text_linef(char *line, size_t cap, log_level level, const char *module,
                         const struct tm *tm, long ms, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static size_t text_linef(char *line, size_t cap, log_level level, const char *module,
                         const struct tm *tm, long ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = text_line(line, cap, level, module, tm, ms, fmt, ap);
    va_end(ap);
    return n;
}

void log_write(log_level level, const char *module, const char *fmt, ...)
{
    char line[8192];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    va_list ap;
    va_start(ap, fmt);
    size_t len;
    if (format == LOG_JSON) {
        char msg[4096];
        vsnprintf(msg, sizeof msg, fmt, ap);
        len = json_line(line, sizeof line - 2, level, module, &tm, ts.tv_nsec / 1000000, msg, ctx);
    } else {
        len = text_line(line, 4096, level, module, &tm, ts.tv_nsec / 1000000, fmt, ap);
    }
    va_end(ap);
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* ---- the access log ---- */

typedef struct {
    log_access_rec r;
    struct timespec at;
} access_entry;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t idle; /* log_flush waits here */
    access_entry *ring;  /* LOG_ACCESS_QUEUE entries */
    size_t head, n;      /* the oldest queued, and how many */
    bool writing;        /* the writer holds entries it took out of the ring */
    bool asleep;         /* the writer waits for work: a push wakes it */
    bool started;
} A = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .work = PTHREAD_COND_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER};

/* One access line into line (size cap); returns its length. */
static size_t access_line(char *line, size_t cap, const access_entry *e)
{
    const log_access_rec *r = &e->r;
    struct tm tm;
    gmtime_r(&e->at.tv_sec, &tm);
    long ms = e->at.tv_nsec / 1000000;
    char msg[1024];
    if (r->aborted)
        snprintf(msg, sizeof msg, "%s \"%s %s\" %d %zu %.2fms rid=%s aborted=%d", r->client,
                 r->method, r->path, r->status, r->bytes, r->ms, r->rid, r->aborted);
    else
        snprintf(msg, sizeof msg, "%s \"%s %s\" %d %zu %.2fms rid=%s", r->client, r->method,
                 r->path, r->status, r->bytes, r->ms, r->rid);
    if (format == LOG_JSON) {
        log_ctx c = {.request_id = r->rid, .session_id = r->session_id, .user = r->user};
        memcpy(c.trace_id, r->trace_id, sizeof c.trace_id);
        return json_line(line, cap - 2, LOG_INFO, "access", &tm, ms, msg, &c);
    }
    return text_linef(line, cap, LOG_INFO, "access", &tm, ms, "%s", msg);
}

/* Writes entries [from, from + n) of the ring (mu not held: they are the writer's until it
 * gives them back), as few write(2)s as fit in a 64 KiB buffer each. */
static void write_entries(size_t from, size_t n)
{
    static char out[64 << 10];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char line[2048];
        size_t l = access_line(line, sizeof line, &A.ring[(from + i) % LOG_ACCESS_QUEUE]);
        if (len + l > sizeof out) {
            ssize_t w = write(STDERR_FILENO, out, len);
            (void)w;
            len = 0;
        }
        memcpy(out + len, line, l);
        len += l;
    }
    if (len) {
        ssize_t w = write(STDERR_FILENO, out, len);
        (void)w;
    }
}

/* Takes what is queued and writes it; called with mu held, returns with it held. */
static void drain_locked(void)
{
    while (A.n && !A.writing) {
        size_t from = A.head, n = A.n;
        A.writing = true;
        pthread_mutex_unlock(&A.mu);
        write_entries(from, n);
        pthread_mutex_lock(&A.mu);
        A.head = (A.head + n) % LOG_ACCESS_QUEUE;
        A.n -= n;
        A.writing = false;
        pthread_cond_broadcast(&A.idle); /* room in the ring; maybe empty */
    }
}

/* The writer wakes for the first line queued, then gathers lines for up to ACCESS_FLUSH_MS (or
 * until ACCESS_BATCH are waiting) and writes them together: one wake-up per batch, not one per
 * request. */
#define ACCESS_FLUSH_MS 100
#define ACCESS_BATCH    256

static void *access_writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&A.mu);
    for (;;) {
        while (!A.n || A.writing) { /* nothing queued, or a caller writing it (the ring full) */
            if (A.writing) {
                pthread_cond_wait(&A.idle, &A.mu);
                continue;
            }
            A.asleep = true;
            pthread_cond_wait(&A.work, &A.mu);
            A.asleep = false;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += ACCESS_FLUSH_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        A.asleep = true;
        while (A.n < ACCESS_BATCH && pthread_cond_timedwait(&A.work, &A.mu, &until) == 0) {
        }
        A.asleep = false;
        drain_locked();
    }
    return NULL;
}

static void access_at_exit(void)
{
    log_flush();
}

static void access_start_locked(void)
{
    A.started = true; /* tried once: without a thread, callers write their own lines */
    A.ring = malloc(LOG_ACCESS_QUEUE * sizeof *A.ring);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (A.ring && pthread_create(&th, &at, access_writer, NULL) == 0) {
        pthread_setname_np(th, "log");
        atexit(access_at_exit);
    } else {
        free(A.ring);
        A.ring = NULL;
    }
    pthread_attr_destroy(&at);
}

void log_access(const log_access_rec *r)
{
    if (!log_enabled(LOG_INFO, "access")) return;
    access_entry e = {.r = *r};
    clock_gettime(CLOCK_REALTIME, &e.at);
    pthread_mutex_lock(&A.mu);
    if (!A.started) access_start_locked();
    /* The writer is behind: this thread writes what is queued (in order), or waits for room. */
    while (A.ring && A.n == LOG_ACCESS_QUEUE) {
        if (A.writing)
            pthread_cond_wait(&A.idle, &A.mu);
        else
            drain_locked();
    }
    if (A.ring) {
        A.ring[(A.head + A.n++) % LOG_ACCESS_QUEUE] = e;
        if (A.asleep && (A.n == 1 || A.n == ACCESS_BATCH)) pthread_cond_signal(&A.work);
        pthread_mutex_unlock(&A.mu);
        return;
    }
    pthread_mutex_unlock(&A.mu);
    char line[2048]; /* no writer thread could be started: this line is written here */
    size_t l = access_line(line, sizeof line, &e);
    ssize_t w = write(STDERR_FILENO, line, l);
    (void)w;
}

void log_flush(void)
{
    pthread_mutex_lock(&A.mu);
    drain_locked();
    while (A.n || A.writing)
        pthread_cond_wait(&A.idle, &A.mu);
    pthread_mutex_unlock(&A.mu);
}

void log_limit_flush(log_limit *l, const char *mod, const char *what)
{
    if (l->dropped) log_info(mod, "(%lu more %s not logged)", l->dropped, what);
    l->lines = 0;
    l->dropped = 0;
}

bool log_limit_take(log_limit *l, uint64_t now_ms, unsigned burst, uint64_t window_ms,
                    const char *mod, const char *what)
{
    if (now_ms - l->win >= window_ms) {
        log_limit_flush(l, mod, what);
        l->win = now_ms;
    }
    if (l->lines >= burst) {
        l->dropped++;
        return false;
    }
    l->lines++;
    return true;
}
