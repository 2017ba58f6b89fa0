/* log: levelled, module-tagged lines on stderr, filtered RUST_LOG-style ("info,store=debug").
 * The macros test the level before evaluating their arguments. Never log secrets. */
#ifndef GD_LOG_H
#define GD_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "core/err.h"

typedef enum { LOG_OFF = 0, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE } log_level;

/* Parses a filter: a comma list of `level` (the default) and `module=level` pairs. Module
 * names "goose", "goosed" and "goose_server" stand for every module of this program (the real
 * Goose's crate names, so `info,goose=debug` from its docs works). On error writes a message
 * into err and leaves the current filter as it was. Not thread-safe: call before serving. */
gd_err log_configure(const char *spec, char *err, size_t errlen);
bool log_enabled(log_level level, const char *module);
void log_write(log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *log_spec(void); /* the filter in force, as given */

/* The line format: LOG_TEXT (the default: "TIME LEVEL module: message") or LOG_JSON (one JSON
 * object per line: time, level, target, message, and the context below when known). Not
 * thread-safe: call before serving. */
typedef enum { LOG_TEXT, LOG_JSON } log_format;
void log_set_format(log_format f);
/* "text" or "json" into *out; false for anything else. */
bool log_parse_format(const char *s, log_format *out);

/* What this thread is working on, added to JSON lines: NULL or "" members are left out. The
 * struct is borrowed (it must stay valid while it is current): set it where a request or a
 * step of a turn is handled, put the previous one back after. user is a name or an id, never
 * a credential. */
typedef struct {
    const char *request_id;
    const char *session_id;
    const char *user;
    char trace_id[33]; /* 32 hex digits, or "" */
} log_ctx;
const log_ctx *log_ctx_set(const log_ctx *c); /* returns the previous one */
const log_ctx *log_ctx_get(void);

/* The access log: one line per request, as `CLIENT "METHOD PATH" STATUS BYTES MSms rid=RID`
 * (and ` aborted=N` when it did not complete), at level info of module "access". The request's
 * thread only copies the fields (path already cleaned to printable UTF-8, truncated to fit);
 * a log writer thread formats and writes them at most 100 ms later, many lines per write(2) and
 * one wake-up per batch, so that
 * neither the formatting nor the system call is on the request's path. Lines keep their order
 * and the time they were recorded at. When the writer falls behind by LOG_ACCESS_QUEUE lines,
 * the caller writes the queued lines itself (or waits for room), as nginx's buffered log does. */
#define LOG_ACCESS_QUEUE 4096
typedef struct {
    char client[64];
    char method[16];
    char path[320];
    int status;
    size_t bytes;
    double ms;
    char rid[129];
    int aborted; /* 0, or the termination code */
    /* JSON lines' context */
    char session_id[37];
    char user[65];
    char trace_id[33];
} log_access_rec;
/* Queues r (copied) when "access" is enabled at info; no effect otherwise. */
void log_access(const log_access_rec *r);
/* Writes every queued access line now; the writer stops at exit after the same. */
void log_flush(void);

/* A bound on the lines a peer makes goosed log (an MCP server's stderr or its log messages): at
 * most burst of them per window of window_ms; the rest are counted, and the count is logged (at
 * info, in module mod, as "(N more WHAT not logged)") when the next window starts or on
 * log_limit_flush. Zero it to start; the caller's thread only. */
typedef struct {
    uint64_t win; /* when the window began, ms */
    unsigned lines;
    unsigned long dropped;
} log_limit;
/* Whether one more line may be logged now (now_ms: a monotonic clock in ms). */
bool log_limit_take(log_limit *l, uint64_t now_ms, unsigned burst, uint64_t window_ms,
                    const char *mod, const char *what);
/* Logs the count of what was left out, if any, and starts over. */
void log_limit_flush(log_limit *l, const char *mod, const char *what);

#define LOG_AT(lvl, mod, ...)                                                                      \
    do {                                                                                           \
        if (log_enabled(lvl, mod)) log_write(lvl, mod, __VA_ARGS__);                               \
    } while (0)
#define log_error(mod, ...) LOG_AT(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  LOG_AT(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  LOG_AT(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) LOG_AT(LOG_DEBUG, mod, __VA_ARGS__)
#define log_trace(mod, ...) LOG_AT(LOG_TRACE, mod, __VA_ARGS__)

#endif
