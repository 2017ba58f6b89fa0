/* log: levelled, module-tagged lines on stderr, filtered RUST_LOG-style ("info,store=debug").
 * The macros test the level before evaluating their arguments. Never log secrets. */
#ifndef GD_LOG_H
#define GD_LOG_H

#include <stdbool.h>
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
