/* secrets: API keys set through the API, kept in secrets.yaml (mode 0600) beside config.yaml.
 * Values never appear in logs or responses. Thread-safe. */
#ifndef GD_SECRETS_H
#define GD_SECRETS_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Loads dir/secrets.yaml (a missing file is fine). On a broken file returns GD_EINVAL with a
 * message naming it; the secrets then start empty. */
gd_err secrets_load(const char *dir, char *err, size_t errlen);
/* Copies the secret `name` into out; 0 when absent. Environment variables take precedence and
 * are not consulted here. */
int secrets_get(const char *name, char *out, size_t outlen);
/* Sets name = value and rewrites the file atomically (temporary file, fsync, rename), 0600. */
gd_err secrets_set(const char *name, const char *value, char *err, size_t errlen);
/* Rewrites (or adds) top-level `key: "value"` lines of dir/config.yaml, keeping everything else
 * (comments included). Atomic like secrets_set. */
gd_err config_file_set(const char *path, const char *const *keys, const char *const *values, int n,
                       char *err, size_t errlen);

/* Writes data to path atomically (a temporary file beside it, fsync, rename) with mode, making
 * its directory (0700) when missing. GD_EIO with a message naming the file. */
gd_err config_write_atomic(const char *path, const char *data, size_t len, unsigned mode, char *err,
                           size_t errlen);
/* Rewrites config.yaml at path, taking turns with config_file_set: reads it ("" when missing),
 * has edit render the new text from the old into out, and writes that atomically like
 * secrets_set (0600). An error from edit (its message in err, or gd_strerror's) leaves the file
 * as it was; GD_EIO when it cannot be written (message in err). */
typedef gd_err (*config_file_edit_fn)(const char *old, size_t oldlen, buf *out, void *ctx,
                                      char *err, size_t errlen);
gd_err config_file_edit(const char *path, config_file_edit_fn edit, void *ctx, char *err,
                        size_t errlen);
/* Appends s to b as a YAML double-quoted scalar that reads back as s: control characters, line
 * breaks (U+0085, U+2028, U+2029) and what YAML does not allow in a document escaped. */
gd_err config_yaml_quote(buf *b, const char *s) BUF_MUST_CHECK;

#endif
