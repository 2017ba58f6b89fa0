/* user_settings: a user's own provider, keys and tool permissions (see user_settings.h). */
#include "auth/user_settings.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"

#define KEY_LEN       crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_LEN     crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN       crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_VERSION  1 /* the first byte of a sealed value: the format, for a later change */
#define SEALED_MAX    (1 + NONCE_LEN + 4096 + TAG_LEN)
#define SEAL_OVERHEAD (1 + NONCE_LEN + TAG_LEN)
#define EXT_TEXT_MAX  (STORE_ITEM_VALUE_MAX - SEAL_OVERHEAD) /* an extension's JSON, sealed */

/* Item names in the store. */
#define ITEM_PROVIDER "provider"
#define ITEM_MODEL    "model"
#define ITEM_KEY      "key:"   /* and the key's name (OPENAI_API_KEY): a sealed value */
#define ITEM_PERM     "perm:"  /* and the tool's name: "always_allow" or "never_allow" */
#define ITEM_EXT      "ext:"   /* and the extension's key: its entry as JSON text */
#define ITEM_GRANT    "oauth:" /* and the SHA-256 (hex) of an MCP server's URL: a sealed grant */

static struct {
    pthread_mutex_t mu; /* guards everything below */
    store *st;
    json_t *users;    /* id -> {"provider", "model", "keys": {name: base64}, "perms": {tool: int},
                         "exts": {key: entry} (never modified: a change replaces it), "exts_gen",
                         "grants": {item name: base64 of the sealed grant}} */
    unsigned ext_gen; /* bumped by every change of any user's extensions */
    bool loaded;
    unsigned char key[KEY_LEN];
    bool have_key;
    char key_why[300]; /* why there is no server key */
    char key_from[PATH_MAX + 32];
    char dir[PATH_MAX]; /* where server.key is made, on first need ("": GOOSE_SERVER_KEY) */
    json_t *legacy;     /* [[user id, extension key], ...]: extensions found kept as plain JSON
                         * text (before they were sealed), to seal once loaded */
    /* Another goosed on the same store changes users' settings too: the store's version of them
     * (user_items_version) as memory holds them, looked at every USERS_POLL_MS by a thread of
     * its own, which reads them again when it has moved. */
    long version;
    unsigned changes; /* this goosed's changes to memory: a reading they overtook is not kept */
    pthread_t poller;
    bool polling, stop;
    pthread_cond_t cv;
} U = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

#define USERS_POLL_MS 1000

/* ---- the server key ---- */

/* Decodes 32 bytes from 64 hex digits or base64 (either alphabet, padded or not). */
static bool key_decode(const char *s, unsigned char out[KEY_LEN])
{
    size_t n = strlen(s), got = 0;
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        n--;
    if (n == 2 * KEY_LEN && sodium_hex2bin(out, KEY_LEN, s, n, NULL, &got, NULL) == 0 &&
        got == KEY_LEN)
        return true;
    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        unsigned char tmp[KEY_LEN + 8];
        if (sodium_base642bin(tmp, sizeof tmp, s, n, NULL, &got, NULL, variants[i]) == 0 &&
            got == KEY_LEN) {
            memcpy(out, tmp, KEY_LEN);
            sodium_memzero(tmp, sizeof tmp);
            return true;
        }
        sodium_memzero(tmp, sizeof tmp);
    }
    return false;
}

/* Reads dir/server.key (exactly KEY_LEN bytes) or, when it does not exist and make, makes it
 * (under mu). */
static void key_file(const char *dir, bool make)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/" USER_SETTINGS_KEY_FILE, dir);
    snprintf(U.key_from, sizeof U.key_from, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && !make) {
        snprintf(U.key_why, sizeof U.key_why, "%s does not exist (no user has kept a key yet)",
                 path);
        return;
    }
    if (fd < 0 && errno == ENOENT) {
        unsigned char k[KEY_LEN];
        randombytes_buf(k, sizeof k);
        int w = fs_mkdirs(dir, 0700, NULL, 0) == 0
                    ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)
                    : -1;
        bool ok = w >= 0 && write(w, k, sizeof k) == (ssize_t)sizeof k && fsync(w) == 0;
        if (w >= 0 && close(w) != 0) ok = false;
        if (ok) {
            memcpy(U.key, k, KEY_LEN);
            U.have_key = true;
            log_info("auth",
                     "made a new server key in %s (it seals the users' API keys: keep "
                     "it with the data)",
                     path);
        } else {
            snprintf(U.key_why, sizeof U.key_why, "cannot make %s: %s", path, strerror(errno));
            if (w >= 0) unlink(path);
        }
        sodium_memzero(k, sizeof k);
        if (ok || w < 0 || errno != EEXIST) return;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); /* made beside us meanwhile */
    }
    if (fd < 0) {
        snprintf(U.key_why, sizeof U.key_why, "cannot read %s: %s", path, strerror(errno));
        return;
    }
    struct stat sb;
    unsigned char k[KEY_LEN + 1];
    ssize_t n = fstat(fd, &sb) == 0 ? read(fd, k, sizeof k) : -1;
    close(fd);
    if (n != (ssize_t)KEY_LEN) {
        snprintf(U.key_why, sizeof U.key_why,
                 "%s is not a server key (%d random bytes; it is %zd bytes long)", path, KEY_LEN,
                 n);
    } else {
        memcpy(U.key, k, KEY_LEN);
        U.have_key = true;
        if (sb.st_mode & 077)
            log_warn("auth", "%s can be read by other users (mode %03o): chmod 600 it", path,
                     (unsigned)(sb.st_mode & 0777));
    }
    sodium_memzero(k, sizeof k);
}

/* ---- sealing ---- */

/* The associated data: the key's owner and name, so a sealed value opens only where it was
 * put. */
static size_t seal_ad(const char *user_id, const char *name, unsigned char *ad, size_t adlen)
{
    int n = snprintf((char *)ad, adlen, "goosed user secret%c%s%c%s", 0, user_id, 0, name);
    return n < 0 || (size_t)n >= adlen ? 0 : (size_t)n;
}

size_t user_settings_seal(const char *user_id, const char *name, const char *plain, size_t len,
                          unsigned char *out, size_t outlen)
{
    unsigned char ad[UUID_STR_LEN + STORE_ITEM_NAME_MAX + 32];
    size_t adlen = seal_ad(user_id, name, ad, sizeof ad);
    if (!U.have_key && U.dir[0]) key_file(U.dir, true); /* the first key kept makes it */
    if (!U.have_key || !adlen || outlen < 1 + NONCE_LEN + len + TAG_LEN) return 0;
    out[0] = SEAL_VERSION;
    randombytes_buf(out + 1, NONCE_LEN);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 1 + NONCE_LEN, &clen,
                                               (const unsigned char *)plain, len, ad, adlen, NULL,
                                               out + 1, U.key);
    return 1 + NONCE_LEN + (size_t)clen;
}

int user_settings_open(const char *user_id, const char *name, const unsigned char *sealed,
                       size_t len, char *out, size_t outlen)
{
    unsigned char ad[UUID_STR_LEN + STORE_ITEM_NAME_MAX + 32];
    size_t adlen = seal_ad(user_id, name, ad, sizeof ad);
    if (!U.have_key || !adlen || len < 1 + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_VERSION ||
        outlen < len - 1 - NONCE_LEN - TAG_LEN + 1)
        return -1;
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)out, &plen, NULL,
                                                   sealed + 1 + NONCE_LEN, len - 1 - NONCE_LEN, ad,
                                                   adlen, sealed + 1, U.key) != 0)
        return -1;
    out[plen] = '\0';
    return 0;
}

/* ---- a session's own extensions: their headers and envs, sealed value by value ---- */

/* A value kept sealed for the user who owns the session (their id in the associated data, as
 * their own keys are), base64 after the prefix. An earlier goosed sealed them for no one in
 * particular (LEGACY_OWNER, with LEGACY_PREFIX): a value copied into another user's session
 * opened there. Those are sealed again for their session's owner at start (seal_sessions) and
 * whenever the session's settings are written; they are never opened as they are. */
#define SEALED_PREFIX "gdsealed:2:"
#define LEGACY_PREFIX "gdsealed:1:"
#define LEGACY_OWNER  "session extension"

static const char *const secret_fields[] = {"headers", "envs", "oauth"};

static bool has_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

/* The name a value is sealed under: the extension, the field and the entry, bound in; the
 * "session:" before them keeps it apart from the names of the user's own items (key:, ext:, ...),
 * sealed for the same user. An earlier goosed's (LEGACY_OWNER) had no "session:". */
static void field_name(char *out, size_t n, bool legacy, const char *ext, const char *field,
                       const char *k)
{
    snprintf(out, n, "%s%s/%s/%s", legacy ? "" : "session:", ext, field, k);
}

/* text (after its prefix) opened for owner/name: malloc'd, NULL when it does not open. */
static char *open_text(const char *owner, const char *name, const char *text)
{
    size_t n = strlen(text), len = 0;
    unsigned char *sealed = malloc(n + 1);
    char *plain = malloc(n + 1);
    bool ok = sealed && plain &&
              sodium_base642bin(sealed, n + 1, text, n, NULL, &len, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0 &&
              user_settings_open(owner, name, sealed, len, plain, n + 1) == 0;
    free(sealed);
    if (!ok && plain) {
        sodium_memzero(plain, n + 1);
        free(plain);
        plain = NULL;
    }
    return plain;
}

/* plain sealed for owner/name, as SEALED_PREFIX text: malloc'd, NULL (no server key, or out of
 * memory). */
static char *seal_text(const char *owner, const char *name, const char *plain)
{
    size_t len = strlen(plain), cap = len + SEAL_OVERHEAD;
    size_t b64cap = sodium_base64_ENCODED_LEN(cap, sodium_base64_VARIANT_ORIGINAL);
    unsigned char *sealed = malloc(cap);
    char *text = malloc(strlen(SEALED_PREFIX) + b64cap);
    size_t slen = sealed && text ? user_settings_seal(owner, name, plain, len, sealed, cap) : 0;
    if (slen) {
        memcpy(text, SEALED_PREFIX, strlen(SEALED_PREFIX));
        sodium_bin2base64(text + strlen(SEALED_PREFIX), b64cap, sealed, slen,
                          sodium_base64_VARIANT_ORIGINAL);
    } else {
        free(text);
        text = NULL;
    }
    free(sealed);
    return text;
}

bool user_settings_sealed_field(const json_t *cfg, char *field, size_t fieldlen)
{
    for (size_t f = 0; f < sizeof secret_fields / sizeof *secret_fields; f++) {
        json_t *o = json_object_get(cfg, secret_fields[f]), *v;
        const char *k;
        json_object_foreach(o, k, v)
        {
            const char *s = json_string_value(v);
            if (s && has_prefix(s, USER_SETTINGS_SEALED_MARK)) {
                snprintf(field, fieldlen, "%s.%s", secret_fields[f], k);
                return true;
            }
        }
    }
    return false;
}

/* As user_settings_seal_fields; *stale counts the earlier goosed's values that do not open
 * under this server key (left as they are). */
static gd_err seal_fields(json_t *cfg, const char *user_id, const char *ext, size_t *stale,
                          char *err, size_t errlen)
{
    for (size_t f = 0; f < sizeof secret_fields / sizeof *secret_fields; f++) {
        json_t *o = json_object_get(cfg, secret_fields[f]), *v;
        const char *k;
        json_object_foreach(o, k, v)
        {
            const char *value = json_string_value(v);
            if (!value || has_prefix(value, SEALED_PREFIX)) continue;
            char name[STORE_ITEM_NAME_MAX + 1];
            char *plain = NULL;
            if (has_prefix(value, LEGACY_PREFIX)) {
                field_name(name, sizeof name, true, ext, secret_fields[f], k);
                pthread_mutex_lock(&U.mu);
                plain = open_text(LEGACY_OWNER, name, value + strlen(LEGACY_PREFIX));
                pthread_mutex_unlock(&U.mu);
                if (!plain) {
                    if (stale) ++*stale;
                    continue;
                }
                value = plain;
            }
            field_name(name, sizeof name, false, ext, secret_fields[f], k);
            pthread_mutex_lock(&U.mu);
            char *text = seal_text(user_id, name, value);
            bool have_key = U.have_key;
            pthread_mutex_unlock(&U.mu);
            if (plain) sodium_memzero(plain, strlen(plain));
            free(plain);
            if (!text) {
                snprintf(err, errlen, "cannot seal %s.%s.%s: %s", ext, secret_fields[f], k,
                         have_key ? "out of memory" : U.key_why);
                return have_key ? GD_ENOMEM : GD_EIO;
            }
            json_object_set_new(o, k, json_string(text));
            free(text);
        }
    }
    return GD_OK;
}

gd_err user_settings_seal_fields(json_t *cfg, const char *user_id, const char *ext, char *err,
                                 size_t errlen)
{
    return seal_fields(cfg, user_id, ext, NULL, err, errlen);
}

/* As user_settings_seal_session, counting into *stale (seal_fields). */
static gd_err seal_session(json_t *settings, const char *user_id, size_t *stale, char *err,
                           size_t errlen)
{
    const char *key;
    json_t *cfg;
    json_object_foreach(json_object_get(json_object_get(settings, "extensions"), "add"), key, cfg)
    {
        gd_err e = seal_fields(cfg, user_id, key, stale, err, errlen);
        if (e) return e;
    }
    return GD_OK;
}

gd_err user_settings_seal_session(json_t *settings, const char *user_id, char *err, size_t errlen)
{
    return seal_session(settings, user_id, NULL, err, errlen);
}

json_t *user_settings_open_fields(json_t *cfg, const char *user_id, const char *ext, char *err,
                                  size_t errlen)
{
    json_t *out = json_deep_copy(cfg);
    for (size_t f = 0; out && f < sizeof secret_fields / sizeof *secret_fields; f++) {
        json_t *o = json_object_get(out, secret_fields[f]), *v;
        const char *k;
        json_object_foreach(o, k, v)
        {
            const char *text = json_string_value(v);
            if (!text || !has_prefix(text, USER_SETTINGS_SEALED_MARK)) continue;
            char *plain = NULL;
            if (has_prefix(text, SEALED_PREFIX)) {
                char name[STORE_ITEM_NAME_MAX + 1];
                field_name(name, sizeof name, false, ext, secret_fields[f], k);
                pthread_mutex_lock(&U.mu);
                plain = open_text(user_id, name, text + strlen(SEALED_PREFIX));
                pthread_mutex_unlock(&U.mu);
            }
            if (plain) {
                json_object_set_new(o, k, json_string(plain));
                sodium_memzero(plain, strlen(plain));
                free(plain);
                continue;
            }
            if (has_prefix(text, LEGACY_PREFIX))
                snprintf(err, errlen,
                         "cannot open %s.%s.%s: an earlier goosed sealed it, and it did not open "
                         "under this server key (%s) to be sealed again for its owner; add the "
                         "extension to the session again",
                         ext, secret_fields[f], k, U.key_from[0] ? U.key_from : "server.key");
            else
                snprintf(err, errlen,
                         "cannot open %s.%s.%s: it was sealed under another server key (%s "
                         "changed?) or for another user; add the extension to the session again",
                         ext, secret_fields[f], k, U.key_from[0] ? U.key_from : "server.key");
            json_decref(out);
            return NULL;
        }
    }
    if (!out) snprintf(err, errlen, "out of memory");
    return out;
}

/* ---- memory ---- */

/* The user's object (made when make), under mu. */
static json_t *user_locked(const char *user_id, bool make)
{
    if (!U.users && !(make && (U.users = json_object()))) return NULL;
    json_t *u = json_object_get(U.users, user_id);
    if (!u && make && (u = json_object())) {
        if (json_object_set_new(U.users, user_id, u)) return NULL;
    }
    return u;
}

/* Sets (entry a new reference; NULL removes) the user's extension key in memory, under mu: the
 * user's "exts" is replaced by a changed copy, so a reference handed out never changes. */
static void put_ext_locked(json_t *u, const char *key, json_t *entry)
{
    json_t *old = json_object_get(u, "exts");
    json_t *exts = old ? json_copy(old) : json_object();
    if (!exts) {
        json_decref(entry);
        return;
    }
    if (entry)
        json_object_set_new(exts, key, entry);
    else
        json_object_del(exts, key);
    if (json_object_size(exts)) {
        json_object_set_new(u, "exts", exts);
    } else {
        json_decref(exts);
        json_object_del(u, "exts");
    }
    json_object_set_new(u, "exts_gen", json_integer(++U.ext_gen ? U.ext_gen : ++U.ext_gen));
}

/* Sets what an item of the store means in memory, under mu. */
static void apply_item_locked(const char *user_id, const char *name, const unsigned char *v,
                              size_t len)
{
    json_t *u = user_locked(user_id, true);
    if (!u) return;
    if (!strcmp(name, ITEM_PROVIDER) || !strcmp(name, ITEM_MODEL)) {
        if (v)
            json_object_set_new(u, name, json_stringn((const char *)v, len));
        else
            json_object_del(u, name);
    } else if (!strncmp(name, ITEM_KEY, strlen(ITEM_KEY))) {
        json_t *keys = json_object_get(u, "keys");
        if (!v) {
            json_object_del(keys, name + strlen(ITEM_KEY));
            return;
        }
        if (!keys) json_object_set_new(u, "keys", keys = json_object());
        char b64[sodium_base64_ENCODED_LEN(SEALED_MAX, sodium_base64_VARIANT_ORIGINAL)];
        if (len <= SEALED_MAX) {
            sodium_bin2base64(b64, sizeof b64, v, len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(keys, name + strlen(ITEM_KEY), json_string(b64));
        }
    } else if (!strncmp(name, ITEM_GRANT, strlen(ITEM_GRANT))) {
        json_t *grants = json_object_get(u, "grants");
        if (!v) {
            json_object_del(grants, name);
            return;
        }
        if (!grants) json_object_set_new(u, "grants", grants = json_object());
        size_t blen = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(blen);
        if (b64) {
            sodium_bin2base64(b64, blen, v, len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(grants, name, json_string(b64));
        }
        free(b64);
    } else if (!strncmp(name, ITEM_PERM, strlen(ITEM_PERM))) {
        json_t *perms = json_object_get(u, "perms");
        if (!perms) json_object_set_new(u, "perms", perms = json_object());
        perm_rule r = len == 12 && !memcmp(v, "always_allow", 12)  ? PERM_ALWAYS_ALLOW
                      : len == 11 && !memcmp(v, "never_allow", 11) ? PERM_NEVER_ALLOW
                                                                   : PERM_NONE;
        if (r != PERM_NONE) json_object_set_new(perms, name + strlen(ITEM_PERM), json_integer(r));
    } else if (!strncmp(name, ITEM_EXT, strlen(ITEM_EXT))) {
        /* Sealed (its headers and envs are secrets) since it was kept so; JSON text before. */
        char *plain = NULL;
        if (v && len && v[0] == SEAL_VERSION) {
            plain = malloc(len);
            if (!plain || user_settings_open(user_id, name, v, len, plain, len) != 0) {
                log_error("auth",
                          "user %s: extension %s: cannot be opened (sealed under another server "
                          "key?): left out; the user can add it again",
                          user_id, name + strlen(ITEM_EXT));
                free(plain);
                return;
            }
            v = (const unsigned char *)plain;
            len = strlen(plain);
        }
        json_error_t je;
        json_t *entry = v && len ? json_loadb((const char *)v, len, 0, &je) : NULL;
        if (plain) sodium_memzero(plain, len);
        free(plain);
        if (v && len && !json_is_object(entry)) {
            log_error("auth", "user %s: extension %s: not kept as an object: left out", user_id,
                      name + strlen(ITEM_EXT));
            json_decref(entry);
            return;
        }
        if (!plain && entry && json_object_get(entry, "config")) {
            if (!U.legacy) U.legacy = json_array();
            json_array_append_new(U.legacy, json_pack("[s, s]", user_id, name + strlen(ITEM_EXT)));
        }
        put_ext_locked(u, name + strlen(ITEM_EXT), entry);
    }
}

/* Seals, once loaded, the users' extensions that an earlier goosed kept as plain JSON text (with
 * the tokens of their headers and envs): written again through user_settings_put_extension. */
static void seal_legacy(void)
{
    pthread_mutex_lock(&U.mu);
    json_t *todo = U.legacy;
    U.legacy = NULL;
    pthread_mutex_unlock(&U.mu);
    size_t i;
    json_t *it;
    json_array_foreach(todo, i, it)
    {
        const char *uid = json_string_value(json_array_get(it, 0));
        const char *key = json_string_value(json_array_get(it, 1));
        json_t *exts = user_settings_extensions(uid, NULL);
        char err[256];
        gd_err e =
            user_settings_put_extension(uid, key, json_object_get(exts, key), err, sizeof err);
        if (e)
            log_error("auth", "user %s: extension %s stays unsealed: %s", uid, key, err);
        else
            log_info("auth", "user %s: extension %s is now kept sealed", uid, key);
        json_decref(exts);
    }
    json_decref(todo);
}

/* Seals the sessions' own extensions that an earlier goosed kept in plain text, or sealed for no
 * one in particular, for the session's owner (the store lists them, from its migrations; writing
 * their settings takes them off the list). A session with a value of an earlier goosed that does
 * not open under this server key is left as it is, on the list: tried again at the next start
 * (the right key back, say), not lost. */
static void seal_sessions(store *st)
{
    json_t *ids = NULL, *it;
    if (st->ops->sessions_unsealed(st, &ids) != GD_OK) {
        log_error("auth", "cannot look for sessions whose extensions are kept unsealed: %s",
                  store_errmsg());
        return;
    }
    size_t i, sealed = 0;
    json_array_foreach(ids, i, it)
    {
        const char *sid = json_string_value(it);
        json_t *settings = NULL;
        char err[PATH_MAX + 512] = "", owner[UUID_STR_LEN];
        size_t stale = 0;
        gd_err e = st->ops->session_owner(st, sid, owner);
        if (!e) e = st->ops->session_settings_get(st, sid, &settings);
        if (e == GD_ENOTFOUND) continue; /* deleted meanwhile: its mark went with it */
        if (!e) e = seal_session(settings, owner, &stale, err, sizeof err);
        if (!e && stale) {
            log_error("auth",
                      "session %s: %zu value%s of its own extensions, sealed by an earlier "
                      "goosed, do not open under this server key (%s): the session is left as "
                      "it is until a start whose key opens them",
                      sid, stale, stale == 1 ? "" : "s", U.key_from[0] ? U.key_from : "none");
            json_decref(settings);
            continue;
        }
        if (!e) e = st->ops->session_settings_set(st, sid, settings);
        json_decref(settings);
        if (!e)
            sealed++;
        else if (e != GD_ENOTFOUND)
            log_error("auth", "session %s: its own extensions stay unsealed: %s", sid,
                      err[0] ? err : store_errmsg());
    }
    if (sealed)
        log_info("auth", "the own extensions of %zu session%s are now kept sealed", sealed,
                 sealed == 1 ? "" : "s");
    json_decref(ids);
}

/* Reads every user's items from the store, once it answers (under mu; until then, on each call:
 * the store itself paces its attempts to open, a second after a failed one). */
static void load_locked(void)
{
    if (U.loaded || !U.st) return;
    store_user_item *items = NULL;
    size_t n = 0;
    long v = 0;
    if (U.st->ops->user_items_version(U.st, &v) != GD_OK ||
        U.st->ops->user_items_list(U.st, &items, &n) != GD_OK) {
        log_error("auth", "cannot read the users' own settings (provider, keys, permissions): %s",
                  store_errmsg());
        return;
    }
    for (size_t i = 0; i < n; i++)
        apply_item_locked(items[i].user_id, items[i].name, items[i].value, items[i].len);
    store_user_items_free(items, n);
    U.version = v;
    U.loaded = true;
}

/* Under mu: memory as items (read at version v) say, in place of what it held. A user whose
 * extensions are the same keeps their object and generation: their sessions' extensions are
 * not started again for nothing. */
static void reload_locked(store_user_item *items, size_t n, long v)
{
    json_t *old = U.users, *legacy = U.legacy;
    U.users = json_object();
    U.legacy = NULL;
    for (size_t i = 0; U.users && i < n; i++)
        apply_item_locked(items[i].user_id, items[i].name, items[i].value, items[i].len);
    if (!U.users) { /* out of memory: the old stays, read again at the next look */
        U.users = old;
        U.legacy = legacy;
        return;
    }
    const char *id;
    json_t *u;
    json_object_foreach(U.users, id, u)
    {
        json_t *was = json_object_get(old, id);
        json_t *a = json_object_get(was, "exts"), *b = json_object_get(u, "exts");
        if ((!a && !b) || (a && b && json_equal(a, b))) {
            if (a) json_object_set(u, "exts", a);
            json_t *g = json_object_get(was, "exts_gen");
            if (g)
                json_object_set(u, "exts_gen", g);
            else
                json_object_del(u, "exts_gen");
        }
    }
    json_decref(old);
    json_decref(U.legacy); /* sealed at start, or by the goosed that wrote them */
    U.legacy = legacy;
    U.version = v;
}

/* The poller: every USERS_POLL_MS, the store's version of the users' settings; when it has
 * moved (another goosed changed them, or this one did), memory is read again, unless this
 * goosed changed memory meanwhile (then at the next look). */
static void *poll_users(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&U.mu);
    while (!U.stop) {
        struct timespec dl = clock_deadline(USERS_POLL_MS);
        while (!U.stop && pthread_cond_timedwait(&U.cv, &U.mu, &dl) == 0) {
        }
        if (U.stop || !U.loaded || !U.st) continue;
        store *st = U.st;
        long have = U.version;
        unsigned changes = U.changes;
        pthread_mutex_unlock(&U.mu);
        long v = have;
        store_user_item *items = NULL;
        size_t n = 0;
        bool got = st->ops->user_items_version(st, &v) == GD_OK && v != have &&
                   st->ops->user_items_list(st, &items, &n) == GD_OK;
        pthread_mutex_lock(&U.mu);
        if (got && !U.stop && U.st == st && U.changes == changes) reload_locked(items, n, v);
        if (got) store_user_items_free(items, n);
    }
    pthread_mutex_unlock(&U.mu);
    return NULL;
}

gd_err user_settings_ready(const char *user_id, char *err, size_t errlen)
{
    if (!user_id || !user_id[0]) return GD_OK;
    pthread_mutex_lock(&U.mu);
    load_locked();
    bool loaded = U.loaded || !U.st;
    pthread_mutex_unlock(&U.mu);
    if (loaded) return GD_OK;
    snprintf(err, errlen, "cannot read your own settings (provider, keys, tool permissions): %s",
             store_errmsg());
    return GD_ESTORE;
}

bool user_settings_known(const char *user_id)
{
    if (!user_id || !user_id[0]) return true;
    pthread_mutex_lock(&U.mu);
    bool known = U.loaded || !U.st;
    pthread_mutex_unlock(&U.mu);
    return known;
}

gd_err user_settings_init(const char *data_dir, store *st, char *err, size_t errlen)
{
    user_settings_free();
    pthread_mutex_lock(&U.mu);
    U.st = st;
    U.key_why[0] = '\0';
    const char *env = getenv("GOOSE_SERVER_KEY");
    gd_err e = GD_OK;
    if (env && *env) {
        snprintf(U.key_from, sizeof U.key_from, "GOOSE_SERVER_KEY");
        if (key_decode(env, U.key))
            U.have_key = true;
        else {
            snprintf(err, errlen,
                     "GOOSE_SERVER_KEY: not a server key (32 bytes as 64 hex digits or base64; "
                     "make one with: head -c32 /dev/urandom | base64)");
            e = GD_EINVAL;
        }
    } else {
        /* Made when the first user keeps a key: a server without users makes no file. */
        snprintf(U.dir, sizeof U.dir, "%s", data_dir);
        key_file(data_dir, false);
        if (!U.have_key && access(U.key_from, F_OK) == 0)
            log_error("auth", "%s: users cannot keep API keys of their own", U.key_why);
    }
    if (!e) load_locked();
    U.stop = false;
    U.polling = !e && st && pthread_create(&U.poller, NULL, poll_users, NULL) == 0;
    pthread_mutex_unlock(&U.mu);
    if (!e) seal_legacy();
    if (!e && st) seal_sessions(st);
    return e;
}

void user_settings_free(void)
{
    pthread_mutex_lock(&U.mu);
    bool polling = U.polling;
    U.polling = false;
    U.stop = true;
    pthread_cond_broadcast(&U.cv);
    pthread_mutex_unlock(&U.mu);
    if (polling) pthread_join(U.poller, NULL);
    pthread_mutex_lock(&U.mu);
    json_decref(U.users);
    U.users = NULL;
    U.loaded = false;
    U.ext_gen = 0;
    sodium_memzero(U.key, sizeof U.key);
    U.have_key = false;
    U.dir[0] = '\0';
    json_decref(U.legacy);
    U.legacy = NULL;
    pthread_mutex_unlock(&U.mu);
}

/* ---- provider and keys ---- */

bool user_settings_provider(const char *user_id, char *name, size_t namelen, char *model,
                            size_t modellen)
{
    if (!user_id || !user_id[0]) return false;
    pthread_mutex_lock(&U.mu);
    load_locked();
    json_t *u = user_locked(user_id, false);
    const char *p = json_string_value(json_object_get(u, ITEM_PROVIDER));
    const char *m = json_string_value(json_object_get(u, ITEM_MODEL));
    if (p) {
        snprintf(name, namelen, "%s", p);
        snprintf(model, modellen, "%s", m ? m : "");
    }
    pthread_mutex_unlock(&U.mu);
    return p != NULL;
}

bool user_settings_has_key(const char *user_id, const char *key_env)
{
    if (!user_id || !user_id[0] || !key_env) return false;
    pthread_mutex_lock(&U.mu);
    bool has = json_object_get(json_object_get(user_locked(user_id, false), "keys"), key_env);
    pthread_mutex_unlock(&U.mu);
    return has;
}

int user_settings_key(const char *user_id, const char *key_env, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    if (!user_id || !user_id[0] || !key_env) return 0;
    pthread_mutex_lock(&U.mu);
    const char *b64 = json_string_value(
        json_object_get(json_object_get(user_locked(user_id, false), "keys"), key_env));
    unsigned char sealed[SEALED_MAX];
    size_t len = 0;
    int rc = 0;
    if (b64) {
        char name[STORE_ITEM_NAME_MAX + 1];
        snprintf(name, sizeof name, ITEM_KEY "%s", key_env);
        rc = -1;
        if (!U.have_key)
            snprintf(err, errlen,
                     "cannot open your API key %s: the server has no usable key to open it (%s)",
                     key_env, U.key_why);
        else if (sodium_base642bin(sealed, sizeof sealed, b64, strlen(b64), NULL, &len, NULL,
                                   sodium_base64_VARIANT_ORIGINAL) != 0 ||
                 user_settings_open(user_id, name, sealed, len, out, outlen) != 0)
            snprintf(err, errlen,
                     "cannot decrypt your API key %s: it was sealed under another server key "
                     "(%s changed?); set it again with POST /api/providers",
                     key_env, U.key_from);
        else
            rc = 1;
    }
    pthread_mutex_unlock(&U.mu);
    sodium_memzero(sealed, sizeof sealed);
    return rc;
}

gd_err user_settings_set_provider(const char *user_id, const char *name, const char *model,
                                  const char *key_env, const char *api_key, char *err,
                                  size_t errlen)
{
    if (!U.st || !user_id[0]) {
        snprintf(err, errlen, "this user cannot keep settings of their own");
        return GD_EINVAL;
    }
    char item[STORE_ITEM_NAME_MAX + 1] = "";
    unsigned char sealed[SEALED_MAX];
    size_t slen = 0;
    if (api_key && key_env) {
        snprintf(item, sizeof item, ITEM_KEY "%s", key_env);
        pthread_mutex_lock(&U.mu);
        slen = user_settings_seal(user_id, item, api_key, strlen(api_key), sealed, sizeof sealed);
        pthread_mutex_unlock(&U.mu);
        if (!slen) {
            snprintf(err, errlen, "cannot seal the API key: %s",
                     U.have_key ? "it is too long" : U.key_why);
            return GD_EUNAVAIL;
        }
    }
    struct {
        const char *name;
        const void *v;
        size_t len;
    } w[] = {{item, sealed, slen},
             {ITEM_PROVIDER, name, strlen(name)},
             {ITEM_MODEL, model, strlen(model)}};
    for (size_t i = slen ? 0 : 1; i < sizeof w / sizeof *w; i++) {
        gd_err e = U.st->ops->user_item_set(U.st, user_id, w[i].name, w[i].v, w[i].len);
        if (e) {
            snprintf(err, errlen, "%s", e == GD_ENOTFOUND ? "no such user" : store_errmsg());
            return e;
        }
        pthread_mutex_lock(&U.mu);
        apply_item_locked(user_id, w[i].name, w[i].v, w[i].len);
        U.changes++;
        pthread_mutex_unlock(&U.mu);
    }
    return GD_OK;
}

gd_err user_settings_clear_provider(const char *user_id, char *err, size_t errlen)
{
    if (!U.st || !user_id[0]) {
        snprintf(err, errlen, "this user keeps no settings of their own");
        return GD_EINVAL;
    }
    gd_err e = user_settings_ready(user_id, err, errlen);
    if (e) return e;
    /* the items to remove: the choice, and a key: item for each key kept */
    json_t *names = json_pack("[ss]", ITEM_PROVIDER, ITEM_MODEL);
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    pthread_mutex_lock(&U.mu);
    const char *env;
    json_t *v;
    json_object_foreach(json_object_get(user_locked(user_id, false), "keys"), env, v)
        json_array_append_new(names, json_sprintf(ITEM_KEY "%s", env));
    pthread_mutex_unlock(&U.mu);
    size_t i;
    json_array_foreach(names, i, v)
    {
        const char *item = json_string_value(v);
        if (!item) {
            e = GD_ENOMEM;
            snprintf(err, errlen, "out of memory");
            break;
        }
        if ((e = U.st->ops->user_item_set(U.st, user_id, item, NULL, 0))) {
            snprintf(err, errlen, "%s", e == GD_ENOTFOUND ? "no such user" : store_errmsg());
            break;
        }
        pthread_mutex_lock(&U.mu);
        apply_item_locked(user_id, item, NULL, 0);
        U.changes++;
        pthread_mutex_unlock(&U.mu);
    }
    json_decref(names);
    return e;
}

/* ---- tool permissions ---- */

perm_rule user_settings_perm(const char *user_id, const char *tool)
{
    if (!user_id || !user_id[0]) return PERM_NONE;
    pthread_mutex_lock(&U.mu);
    json_t *r = json_object_get(json_object_get(user_locked(user_id, false), "perms"), tool);
    perm_rule out = r ? (perm_rule)json_integer_value(r) : PERM_NONE;
    pthread_mutex_unlock(&U.mu);
    return out;
}

gd_err user_settings_put_perm(const char *user_id, const char *tool, perm_rule rule)
{
    if (!user_id || !user_id[0]) return GD_EINVAL;
    pthread_mutex_lock(&U.mu);
    json_t *u = user_locked(user_id, true);
    json_t *perms = u ? json_object_get(u, "perms") : NULL;
    if (u && !perms) json_object_set_new(u, "perms", perms = json_object());
    gd_err e = GD_ENOMEM;
    if (perms)
        e = rule == PERM_NONE ? (json_object_del(perms, tool), GD_OK)
            : json_object_set_new(perms, tool, json_integer(rule)) ? GD_ENOMEM
                                                                   : GD_OK;
    U.changes++;
    pthread_mutex_unlock(&U.mu);
    return e;
}

gd_err user_settings_save_perm(const char *user_id, const char *tool, perm_rule r, char *err,
                               size_t errlen)
{
    const char *v = r == PERM_ALWAYS_ALLOW  ? "always_allow"
                    : r == PERM_NEVER_ALLOW ? "never_allow"
                                            : NULL;
    char item[STORE_ITEM_NAME_MAX + 1];
    int n = snprintf(item, sizeof item, ITEM_PERM "%s", tool);
    if (n < 0 || (size_t)n >= sizeof item) {
        snprintf(err, errlen, "the tool's name is too long to keep its permission");
        return GD_ETOOBIG;
    }
    gd_err e =
        U.st ? U.st->ops->user_item_set(U.st, user_id, item, v, v ? strlen(v) : 0) : GD_ESTORE;
    if (e) snprintf(err, errlen, "%s", U.st ? store_errmsg() : "no store");
    return e;
}

/* ---- extensions ---- */

/* One write of a user's extensions at a time: the store and memory change in the same order. */
static pthread_mutex_t ext_write_mu = PTHREAD_MUTEX_INITIALIZER;

json_t *user_settings_extensions(const char *user_id, unsigned *gen)
{
    if (gen) *gen = 0;
    if (!user_id || !user_id[0]) return NULL;
    pthread_mutex_lock(&U.mu);
    json_t *u = U.users ? json_object_get(U.users, user_id) : NULL;
    json_t *exts = u ? json_incref(json_object_get(u, "exts")) : NULL;
    if (exts && gen) *gen = (unsigned)json_integer_value(json_object_get(u, "exts_gen"));
    pthread_mutex_unlock(&U.mu);
    return exts;
}

gd_err user_settings_put_extension(const char *user_id, const char *key, const json_t *entry,
                                   char *err, size_t errlen)
{
    if (!U.st || !user_id || !user_id[0]) {
        snprintf(err, errlen, "this user cannot keep settings of their own");
        return GD_EINVAL;
    }
    char item[STORE_ITEM_NAME_MAX + 1];
    int n = snprintf(item, sizeof item, ITEM_EXT "%s", key);
    if (n < 0 || (size_t)n >= sizeof item) {
        snprintf(err, errlen, "the extension's name is too long");
        return GD_ETOOBIG;
    }
    char *text = entry ? json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (entry && !text) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    /* Kept sealed under the server key, as API keys are: its headers and envs hold secrets. */
    size_t tlen = text ? strlen(text) : 0, slen = 0;
    unsigned char *sealed = NULL;
    if (text && tlen > EXT_TEXT_MAX) {
        snprintf(err, errlen,
                 "the extension's config is too large to keep (at most %d bytes as JSON)",
                 (int)EXT_TEXT_MAX);
        sodium_memzero(text, tlen);
        free(text);
        return GD_ETOOBIG;
    }
    if (text &&
        (!(sealed = malloc(tlen + SEAL_OVERHEAD)) ||
         !(slen = user_settings_seal(user_id, item, text, tlen, sealed, tlen + SEAL_OVERHEAD)))) {
        snprintf(err, errlen, "cannot seal the extension's config: %s",
                 sealed ? U.key_why : "out of memory");
        sodium_memzero(text, tlen);
        free(text);
        free(sealed);
        return sealed ? GD_EIO : GD_ENOMEM;
    }
    pthread_mutex_lock(&ext_write_mu);
    gd_err e = U.st->ops->user_item_set(U.st, user_id, item, sealed, slen);
    if (e) {
        snprintf(err, errlen, "%s",
                 e == GD_ENOTFOUND ? "no such user"
                 : e == GD_ETOOBIG ? "the extension's config is too large to keep"
                                   : store_errmsg());
    } else {
        pthread_mutex_lock(&U.mu);
        json_t *u = user_locked(user_id, true);
        if (u) put_ext_locked(u, key, entry ? json_deep_copy(entry) : NULL);
        U.changes++;
        pthread_mutex_unlock(&U.mu);
    }
    pthread_mutex_unlock(&ext_write_mu);
    if (text) sodium_memzero(text, tlen);
    free(text);
    free(sealed);
    return e;
}

/* ---- the users' OAuth grants for their extensions' servers (agent/signin.h) ---- */

/* The item a grant for url is kept under: the URL's SHA-256, for a name of bounded length. */
static void grant_item(const char *url, char *out, size_t outlen)
{
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof h + 1];
    crypto_hash_sha256(h, (const unsigned char *)url, strlen(url));
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(out, outlen, ITEM_GRANT "%s", hex);
}

char *user_settings_grant(const char *user_id, const char *url)
{
    if (!user_id || !user_id[0]) return NULL;
    char item[STORE_ITEM_NAME_MAX + 1];
    grant_item(url, item, sizeof item);
    char *plain = NULL;
    pthread_mutex_lock(&U.mu);
    const char *b64 = json_string_value(
        json_object_get(json_object_get(user_locked(user_id, false), "grants"), item));
    unsigned char *sealed = b64 ? malloc(STORE_ITEM_VALUE_MAX) : NULL;
    size_t len = 0;
    if (sealed &&
        sodium_base642bin(sealed, STORE_ITEM_VALUE_MAX, b64, strlen(b64), NULL, &len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
        (plain = malloc(len)) && user_settings_open(user_id, item, sealed, len, plain, len) != 0) {
        log_warn("auth",
                 "user %s: an extension's sign-in cannot be opened (sealed under another "
                 "server key?): the user signs in again",
                 user_id);
        free(plain);
        plain = NULL;
    }
    pthread_mutex_unlock(&U.mu);
    free(sealed);
    return plain;
}

gd_err user_settings_put_grant(const char *user_id, const char *url, const char *grant, char *err,
                               size_t errlen)
{
    if (!U.st || !user_id || !user_id[0]) {
        snprintf(err, errlen, "this user cannot keep settings of their own");
        return GD_EINVAL;
    }
    char item[STORE_ITEM_NAME_MAX + 1];
    grant_item(url, item, sizeof item);
    unsigned char *sealed = malloc(STORE_ITEM_VALUE_MAX);
    if (!sealed) {
        snprintf(err, errlen, "out of memory");
        return GD_ENOMEM;
    }
    pthread_mutex_lock(&U.mu);
    size_t slen =
        user_settings_seal(user_id, item, grant, strlen(grant), sealed, STORE_ITEM_VALUE_MAX);
    pthread_mutex_unlock(&U.mu);
    gd_err e = GD_OK;
    if (!slen) {
        snprintf(err, errlen, "cannot seal it: %s", U.have_key ? "it is too long" : U.key_why);
        e = U.have_key ? GD_ETOOBIG : GD_EUNAVAIL;
    } else if ((e = U.st->ops->user_item_set(U.st, user_id, item, sealed, slen))) {
        snprintf(err, errlen, "%s", e == GD_ENOTFOUND ? "no such user" : store_errmsg());
    } else {
        pthread_mutex_lock(&U.mu);
        apply_item_locked(user_id, item, sealed, slen);
        U.changes++;
        pthread_mutex_unlock(&U.mu);
    }
    free(sealed);
    return e;
}

size_t user_settings_seal_value(const char *user_id, const char *name, const char *plain,
                                size_t len, unsigned char *out, size_t outlen)
{
    pthread_mutex_lock(&U.mu);
    size_t n = user_settings_seal(user_id, name, plain, len, out, outlen);
    pthread_mutex_unlock(&U.mu);
    return n;
}

int user_settings_open_value(const char *user_id, const char *name, const unsigned char *sealed,
                             size_t len, char *out, size_t outlen)
{
    pthread_mutex_lock(&U.mu);
    int rc = user_settings_open(user_id, name, sealed, len, out, outlen);
    pthread_mutex_unlock(&U.mu);
    return rc;
}
