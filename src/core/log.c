#include "core/log.h"

#include <stdint.h>

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

/* One JSON object: {"time","level","target","message", then the thread's context}. */
static void write_json(log_level level, const char *module, const struct tm *tm, long ms,
                       const char *msg)
{
    char line[8192];
    size_t cap = sizeof line - 2; /* room for "}\n" */
    size_t n = (size_t)snprintf(
        line, sizeof line, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
        tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, ms,
        level_names[level]);
    json_member(line, &n, cap, "target", module);
    json_member(line, &n, cap, "message", msg);
    if (ctx) {
        json_member(line, &n, cap, "request_id", ctx->request_id);
        json_member(line, &n, cap, "session_id", ctx->session_id);
        json_member(line, &n, cap, "user", ctx->user);
        json_member(line, &n, cap, "trace_id", ctx->trace_id);
    }
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_write(log_level level, const char *module, const char *fmt, ...)
{
    static const char *const tags[] = {"OFF  ", "ERROR", "WARN ", "INFO ", "DEBUG", "TRACE"};
    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (format == LOG_JSON) {
        char msg[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        write_json(level, module, &tm, ts.tv_nsec / 1000000, msg);
        return;
    }
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    /* One write(2) per line keeps lines from different threads whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
