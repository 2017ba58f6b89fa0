/* ext_config: the extensions a user configured, in the format the real Goose writes to
 * config.yaml's `extensions:` map, so an existing Goose config works as it is:
 *
 *   extensions:
 *     developer: {enabled: true, type: builtin, name: developer, timeout: 300, bundled: true}
 *     everything:
 *       enabled: true
 *       type: stdio            # builtin | stdio | streamable_http | sse
 *       name: everything
 *       cmd: npx
 *       args: [-y, "@modelcontextprotocol/server-everything"]
 *       envs: {LOG_LEVEL: debug}
 *       env_keys: [GITHUB_TOKEN]   # values from the environment or secrets.yaml
 *       timeout: 300
 *       description: ...
 *       uri: http://...        # streamable_http, sse
 *       headers: {Authorization: "Bearer ..."}
 *       available_tools: []    # empty: all
 *
 * One extension's configuration is a normalized JSON object (ext_config_check makes it): every
 * key above present with its type ("args" [], "envs" {}, "env_keys" [], "headers" {},
 * "available_tools" [], "timeout" 300, "enabled" true ...), plus whatever other keys the user
 * wrote (kept, e.g. the developer extension's "allow_shell"). Once checked it is never
 * modified, so threads may share it (jansson's reference counts are atomic).
 *
 * An entry whose type goosed does not know (or a builtin other than "developer") is kept and
 * listed as unsupported; it never stops goosed. */
#ifndef GD_EXT_CONFIG_H
#define GD_EXT_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "core/err.h"

#define EXT_DEFAULT_TIMEOUT_S 300
#define EXT_KEY_MAX                                                                                \
    63 /* bytes of a name (its key), after normalizing: extension.h's EXT_NAME_MAX less the NUL */

/* The key of an extension named name, as the real Goose makes it (name_to_key): ASCII letters,
 * digits, '_' and '-' kept, whitespace dropped, anything else '_', lower-cased ("GitHub Tools"
 * -> "githubtools"). GD_EINVAL with a message when that is empty, longer than EXT_KEY_MAX or
 * holds "__" (it separates an extension's name from its tools' names). */
gd_err ext_name_key(const char *name, char *key, size_t keylen, char *err, size_t errlen);

/* The header goosed takes a user's name from when a trusted proxy sends it (trusted_proxy_header;
 * "" or NULL: none). No extension may send it: an extension's requests come from goosed's own
 * address, which may be a trusted one, so pointed at goosed itself it could name any user, an
 * admin too. Set before any config is checked. */
void ext_config_reserve_header(const char *name);

/* Checks and normalizes one extension's config (borrowed) named name: a new object (see above)
 * with "name" set to name's key (ext_name_key; a "name" the config held that differs becomes its
 * "display_name"), or NULL with GD_EINVAL and a message naming the bad key in err
 * (e.g. "everything: cmd: a string is required for type stdio"). An unknown type is not an
 * error: the object gets "supported": false. */
json_t *ext_config_check(const char *name, const json_t *cfg, char *err, size_t errlen);

/* Whether goosed can run this (checked) config: builtin developer, stdio, streamable_http, sse. */
bool ext_config_supported(const json_t *cfg);

/* A copy of an extension's config as it is shown (GET /api/extensions) and exported: the values
 * of headers, envs and oauth as ***, and the secrets a URI or an argument can hold: a URI's
 * password and its query's values, an argument --NAME=VALUE or the one after --NAME where NAME
 * says key, token, secret, password or auth (case aside). Nested objects and arrays alike. A
 * new reference (NULL when out of memory). */
json_t *ext_config_masked(const json_t *cfg);

/* ---- the set of configured extensions (process-wide, thread-safe) ---- */

typedef struct ext_set ext_set;

/* Reads the `extensions:` map of cfg->config_file (none, or no map: the developer extension
 * alone, enabled). Bad entries are logged and kept as unsupported, never fatal. NULL when out
 * of memory. */
ext_set *ext_set_load(const config *cfg);
void ext_set_free(ext_set *s);
/* The configured extensions now: a new reference to an immutable object name -> checked
 * config; *gen (if not NULL) gets a number that changes with every change. */
json_t *ext_set_snapshot(ext_set *s, unsigned *gen);
/* Adds or replaces name's config (borrowed; checked here), then writes config.yaml's
 * `extensions:` map back keeping every comment and every other key. GD_EINVAL (bad config,
 * message in err), GD_EDENIED (refused by the allowlist, why in err), GD_ESTORE (the file could
 * not be written: nothing changed). */
gd_err ext_set_put(ext_set *s, const char *name, const json_t *cfg, char *err, size_t errlen);
/* Sets name's `enabled`. GD_ENOTFOUND, GD_EDENIED (enabling a stdio extension the allowlist
 * refuses), GD_ESTORE as above. */
gd_err ext_set_enable(ext_set *s, const char *name, bool enabled, char *err, size_t errlen);
/* Removes name. GD_ENOTFOUND, GD_ESTORE as above. */
gd_err ext_set_remove(ext_set *s, const char *name, char *err, size_t errlen);

/* Keys a snapshot's entry may hold beyond the config, never written to config.yaml:
 * "supported": false (see above); "invalid": why config.yaml's entry was not usable (kept as
 * written, unsupported); "refused": why the allowlist refused it at start (it is not started). */

#endif
