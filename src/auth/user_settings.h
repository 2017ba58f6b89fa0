/* user_settings: what each user (auth.h) chooses for themselves: their provider and model, their
 * API keys, their "always" answers to tool confirmations, and their own extensions. The server's
 * own settings (config.yaml, secrets.yaml, permission.yaml) are the admin's and the defaults; a
 * user's own come first and fall back to them.
 *
 * Kept in the store as a user's items (store.h user_item_set), and in memory: every lookup
 * reads memory (no store read on a reply's path); a change is written to the store, then to
 * memory. API keys are sealed before they reach the store, with XChaCha20-Poly1305 under the
 * server key (a random nonce per write; the user's id and the key's name as associated data,
 * so a sealed key moved to another user or name does not open). The server key is 32 bytes:
 * GOOSE_SERVER_KEY (64 hex digits, or base64), else the file server.key in the data directory
 * (0600), made when the first user keeps a key (a server without users makes none). Plaintext
 * keys never reach the store, the log, or an answer.
 *
 * The local user (id "": no authentication, or X-Secret-Key) has no settings of their own.
 * Thread-safe. */
#ifndef GD_USER_SETTINGS_H
#define GD_USER_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/permissions.h"
#include "core/err.h"
#include "store/store.h"

#define USER_SETTINGS_KEY_FILE "server.key"

/* Reads the server key (server.key in data_dir is made on first need) and loads every user's
 * settings from st (borrowed; it must outlive every call here). GD_EINVAL with the reason in err
 * when GOOSE_SERVER_KEY is set but is not 32 bytes in hex or base64: goosed must not start. A
 * server.key that cannot be read or made is logged; sealing and opening keys then fail with that
 * reason. A store that cannot be read now is logged and read again when a provider is next
 * resolved. */
gd_err user_settings_init(const char *data_dir, store *st, char *err, size_t errlen);
/* Forgets everything (memory only) and wipes the server key. */
void user_settings_free(void);

/* GD_OK when the users' settings are read (or user_id is the local user's: "", who keeps none);
 * else reads them now and, when the store still cannot be read, GD_ESTORE with err saying so. A
 * turn asks this first: run with the server's provider and without the user's tool permissions
 * ("never allow"), it would send their conversation where they did not choose and run what they
 * forbade. Reads the store, on the calling thread, only until the settings have been read once
 * since start (until then the store was failing: an attempt to open waits at most 0.25 s for a
 * lock, a read of an open store up to 5 s). Never on the agent's loop: see user_settings_known. */
gd_err user_settings_ready(const char *user_id, char *err, size_t errlen);
/* Whether user_settings_ready would answer GD_OK without reading the store: the settings are
 * read (or user_id is the local user's, or there is no store). Never reads the store: for the
 * agent's loop, which serves every session and must not wait for it. */
bool user_settings_known(const char *user_id);

/* The user's own provider and model, copied out; false when they chose none (then the
 * server's apply). May read the store (HTTP threads only) when it could not be read before. */
bool user_settings_provider(const char *user_id, char *name, size_t namelen, char *model,
                            size_t modellen);
/* The user's own API key key_env (e.g. OPENAI_API_KEY), opened into out: 1. 0: they have none.
 * -1: they have one that cannot be opened (the server key changed, or is unusable): why in
 * err, never the key. */
int user_settings_key(const char *user_id, const char *key_env, char *out, size_t outlen, char *err,
                      size_t errlen);
/* Whether the user has their own key key_env (not opened). */
bool user_settings_has_key(const char *user_id, const char *key_env);
/* Makes name/model the user's provider; api_key (NULL: keep theirs) is sealed and kept as
 * key_env. Blocks on the store. GD_ESTORE, GD_EUNAVAIL (no server key), GD_ENOTFOUND (no such
 * user), with a message in err. */
gd_err user_settings_set_provider(const char *user_id, const char *name, const char *model,
                                  const char *key_env, const char *api_key, char *err,
                                  size_t errlen);
/* Forgets the user's own provider, model and every API key they kept: the server's apply to
 * them again. Blocks on the store; nothing to forget is not an error. GD_ESTORE, GD_ENOTFOUND (no
 * such user), GD_EINVAL (the local user, who keeps none), with a message in err. */
gd_err user_settings_clear_provider(const char *user_id, char *err, size_t errlen);

/* The user's own rule for a tool (PERM_NONE: none; the server's then apply). Memory only. */
perm_rule user_settings_perm(const char *user_id, const char *tool);
/* Sets it in memory at once (PERM_NONE removes it). GD_ENOMEM. */
gd_err user_settings_put_perm(const char *user_id, const char *tool, perm_rule rule);
/* Writes the user's rule r for tool (as put in memory before) to the store (blocks: call it off
 * any event loop). GD_ESTORE with a message in err. */
gd_err user_settings_save_perm(const char *user_id, const char *tool, perm_rule r, char *err,
                               size_t errlen);

/* The user's own extensions: a new reference (the caller decrefs it) to an object
 * key -> entry, where an entry is {"enabled": bool} (their choice for the admin's extension key)
 * or {"enabled": bool, "config": checked config} (their own, ext_config.h); NULL when they have
 * none. The object is never modified (a change replaces it), so it may be read on any thread.
 * *gen (when not NULL) gets a number that changes with each change of theirs (0: none). Memory
 * only: cheap enough for every reply. */
json_t *user_settings_extensions(const char *user_id, unsigned *gen);
/* Sets the user's entry for extension key to entry (borrowed, copied; NULL removes it): written
 * to the store (blocks: call it off any event loop), then to memory. GD_EINVAL (the local user),
 * GD_ENOTFOUND (no such user), GD_ETOOBIG, GD_ESTORE, with a message in err. */
gd_err user_settings_put_extension(const char *user_id, const char *key, const json_t *entry,
                                   char *err, size_t errlen);

/* What every sealed value of a session's own extensions starts with ("gdsealed:2:..." now,
 * "gdsealed:1:..." from an earlier goosed). goosed writes such values itself: a client that
 * sends one is refused (user_settings_sealed_field), or it could hand goosed a value sealed for
 * someone else to open and send where the client chooses. */
#define USER_SETTINGS_SEALED_MARK "gdsealed:"

/* Whether a value of cfg's "headers", "envs" or "oauth" starts with USER_SETTINGS_SEALED_MARK;
 * the first such field ("headers.Authorization") into field when so. */
bool user_settings_sealed_field(const json_t *cfg, char *field, size_t fieldlen);
/* A session's own extension config (cfg, the extension ext's, in a session of user_id's): each
 * value of its "headers", "envs" and "oauth" sealed in place under the server key (made when
 * there is none yet) for user_id (their id in the associated data, as their own keys are), as
 * text "gdsealed:2:...". Values sealed so already are left; an earlier goosed's
 * ("gdsealed:1:...", for no one in particular) are opened and sealed for user_id, or left when
 * they do not open under this server key. GD_EIO when there is no server key to seal with, err
 * saying why. */
gd_err user_settings_seal_fields(json_t *cfg, const char *user_id, const char *ext, char *err,
                                 size_t errlen);
/* A copy of cfg with those values opened for user_id; NULL with err when one does not open
 * (another server key, another user, an earlier goosed's value not sealed again) or out of
 * memory. Values that are not sealed are taken as they are. */
json_t *user_settings_open_fields(json_t *cfg, const char *user_id, const char *ext, char *err,
                                  size_t errlen);
/* A session's own settings (as the store keeps them), the session user_id's: the config of each
 * extension they add sealed as user_settings_seal_fields does. */
gd_err user_settings_seal_session(json_t *settings, const char *user_id, char *err, size_t errlen);

/* The OAuth grant user_id keeps for the MCP server at url (extensions/mcp/oauth.h's text,
 * agent/signin.h), opened from memory: malloc'd, NULL when none (or it does not open: the user
 * then signs in again). The local user keeps none. */
char *user_settings_grant(const char *user_id, const char *url);
/* Keeps grant sealed for user_id and url (the store, then memory): another goosed on the store
 * and the next start find it. Blocks on the store: never on a loop. GD_EINVAL (the local user),
 * GD_ETOOBIG, GD_EUNAVAIL (no server key), a store's error, with err saying why. */
gd_err user_settings_put_grant(const char *user_id, const char *url, const char *grant, char *err,
                               size_t errlen);

/* Seals plain (len bytes) for user_id/name into out (at most outlen bytes), making server.key
 * when there is none yet (user_settings_set_provider calls it under the module's lock; tests
 * call it directly); the length written, 0 when it does not fit or there is no server key. */
size_t user_settings_seal(const char *user_id, const char *name, const char *plain, size_t len,
                          unsigned char *out, size_t outlen);
/* The same two under the module's lock, for callers outside it (the server key may be made
 * meanwhile). */
size_t user_settings_seal_value(const char *user_id, const char *name, const char *plain,
                                size_t len, unsigned char *out, size_t outlen);
int user_settings_open_value(const char *user_id, const char *name, const unsigned char *sealed,
                             size_t len, char *out, size_t outlen);
/* Opens what user_settings_seal made into out (NUL-terminated); -1 when it does not open. */
int user_settings_open(const char *user_id, const char *name, const unsigned char *sealed,
                       size_t len, char *out, size_t outlen);

#endif
