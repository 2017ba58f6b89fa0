/* store: where sessions and messages live. The interface every backend implements (SQLite now,
 * PostgreSQL later); it knows nothing of HTTP. All functions are thread-safe. A write returns
 * only once it is durable (committed and synced). On GD_ESTORE, store_errmsg() says why.
 *
 * Writes wait in a bounded queue for the store's writer: a write that finds the queue full
 * fails at once with GD_EBUSY ("the store's write queue is full (N writes waiting)"), the
 * asynchronous ones through done, called in the caller. A session deleted while writes for it
 * are queued is deleted before them: they answer GD_ENOTFOUND. */
#ifndef GD_STORE_H
#define GD_STORE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"
#include "core/buf.h"
#include "core/ids.h"

#define STORE_NAME_MAX   1024 /* bytes: 256 characters of up to 4 bytes */
#define STORE_CURSOR_LEN 64   /* a page cursor (session_page), with its NUL */

typedef struct {
    char id[UUID_STR_LEN];
    char name[STORE_NAME_MAX + 1];
    char working_dir[PATH_MAX];
    time_t created_at;
    time_t updated_at;
    long long created_us; /* created_at in microseconds: the store's order */
    long message_count;
    long input_tokens;
    long output_tokens;
    char user_id[UUID_STR_LEN]; /* the owner's store_user id; "" for the local user */
} store_session;

#define STORE_USER_NAME_MAX  64 /* bytes */
#define STORE_TOKEN_HASH_LEN 32 /* a BLAKE2b-256 hash of a user's token */

/* A user of a server with authentication (auth/auth.h). Tokens are never stored: only a hash. */
typedef struct {
    char id[UUID_STR_LEN];
    char name[STORE_USER_NAME_MAX + 1];
    bool admin;
    bool has_token; /* users made by a trusted proxy have none */
    time_t created_at;
} store_user;

/* One of a user's own settings (auth/user_settings.h): an opaque value under a name. */
#define STORE_ITEM_NAME_MAX  256   /* bytes */
#define STORE_ITEM_VALUE_MAX 16384 /* bytes */
typedef struct {
    char user_id[UUID_STR_LEN];
    char name[STORE_ITEM_NAME_MAX + 1];
    unsigned char *value; /* len bytes and a NUL after them */
    size_t len;
} store_user_item;

/* Frees an array of n items from user_items_list (NULL is fine). */
static inline void store_user_items_free(store_user_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i].value);
    free(items);
}

/* A compacted conversation (agent/turn.c): the summary that stands, for the agent, in place of
 * the session's first count messages (which stay, for the user and the API); text NULL and
 * count 0 when there is none. */
typedef struct {
    char *text;
    long count;
} store_summary;

typedef struct store store;

/* Takes a piece of messages_text's text: len bytes at text, malloc'd (a NUL after them), the
 * receiver's to free whatever it returns. GD_OK to go on; any error stops the read. Runs on
 * the reading thread: it must be quick (queue the piece, wake whoever sends it). */
typedef gd_err (*store_piece_fn)(void *ud, char *text, size_t len);
typedef struct {
    size_t size; /* bytes in a piece (> 0): the pieces handed over are multiples of it */
    store_piece_fn fn;
    void *ud;
} store_pieces;

/* Called when an asynchronous write is durable or has failed; errmsg is NULL on success. It
 * runs on the store's writer thread (or at once, in the caller, when the store is down), so it
 * must be quick: hand the result over and wake whoever waits. */
typedef void (*store_done)(void *ud, gd_err e, const char *errmsg);

typedef struct {
    const char *name;
    void (*close)(store *st);
    /* GD_OK when the store answers; otherwise GD_ESTORE and store_errmsg(). */
    gd_err (*health)(store *st);
    /* Stores s, setting its created_at and updated_at. */
    gd_err (*session_create)(store *st, store_session *s);
    /* The same without waiting: done(ud, …) is called once s is durable. s must stay valid
     * until then. */
    void (*session_create_async)(store *st, store_session *s, store_done done, void *ud);
    gd_err (*session_get)(store *st, const char *id, store_session *out);
    /* Newest first. *out is an array of *n sessions the caller frees with free(). */
    gd_err (*session_list)(store *st, long limit, long offset, store_session **out, size_t *n,
                           long *total);
    gd_err (*session_delete)(store *st, const char *id);
    /* Appends a message (role, content items) to a session: gives it an id (written into
     * id_out, which must stay valid until done), the next sequence number and the time, adds
     * its tokens to the session's totals and bumps message_count and updated_at. content is
     * serialised before this returns. done as for session_create_async; GD_ENOTFOUND when
     * the session is gone.
     *
     * within_ms 0: committed as soon as the store can (a write someone waits for). Otherwise
     * the write may wait up to within_ms for other writes to share its commit and its sync
     * (one fdatasync for many), unless a write that cannot wait commits it sooner: for a write
     * nothing waits on yet (a turn's user message, stored while its first request already
     * runs). */
    void (*message_append_async)(store *st, const char *session_id, const char *role,
                                 json_t *content, long input_tokens, long output_tokens,
                                 unsigned within_ms, char id_out[UUID_STR_LEN], store_done done,
                                 void *ud);
    /* Replaces the content of the session's message message_id (a turn's tool results, stored
     * as each tool ends): the message keeps its id, place and time; the session's updated_at
     * is bumped. content is serialised before this returns; committed as soon as the store
     * can. done as for session_create_async; GD_ENOTFOUND when the session or the message is
     * gone. */
    void (*message_update_async)(store *st, const char *session_id, const char *message_id,
                                 json_t *content, store_done done, void *ud);
    /* Replaces the session's summary (text copied; see store_summary): session_read gives it
     * from then on. GD_ENOTFOUND through done when the session is gone. */
    void (*session_summary_set_async)(store *st, const char *id, const char *text, long count,
                                      store_done done, void *ud);
    /* The session's messages, oldest first, as a new JSON array the caller owns: each one
     * {"id", "role", "content": [items], "created_at": RFC 3339}. GD_ENOTFOUND (and *out
     * NULL) when the session does not exist. */
    gd_err (*messages_list)(store *st, const char *session_id, json_t **out);
    /* The same as JSON text appended to out, a page at a time: at most limit messages (0: all)
     * after the cursor after (NULL or "": from the first); next as for session_page, set
     * before any piece is handed over. Each message's content is copied as stored, not parsed
     * into a tree and written again: the store wrote it as an array, so only its frame "[...]"
     * is checked; one that is not framed so (a file edited by hand) is given as []. GD_EINVAL
     * for a cursor this store did not make. One read transaction for the whole text.
     *
     * pieces NULL: the whole text is left in out. Otherwise the text is handed over while it
     * is read: whenever out holds pieces->size bytes or more (what the caller had in it
     * included), the longest run of whole pieces at its start goes to pieces->fn, and out keeps
     * the rest (less than a piece: the caller appends its own end and hands that over itself).
     * A piece's boundary may fall anywhere, inside a message too. pieces->fn's error stops the
     * read and is returned (the receiver is gone, or holds too much).
     *
     * On any error, out is left as it was when nothing was handed over yet; once something
     * was, out is emptied (the answer is cut short: the caller must say so). */
    gd_err (*messages_text)(store *st, const char *session_id, long limit, const char *after,
                            buf *out, char next[STORE_CURSOR_LEN], const store_pieces *pieces);
    /* One message of a session, as a new JSON object the caller owns, of the same shape as an
     * element of messages_list. GD_ENOTFOUND (and *out NULL) when the session or the message
     * does not exist. */
    gd_err (*message_get)(store *st, const char *session_id, const char *message_id, json_t **out);
    /* For repair after a crash: a new JSON array the caller owns, in no particular order, of
     * {"session_id", "message", "previous"?} for every session whose last message may leave a
     * tool call unanswered: the assistant's, holding a tool request; or a user's holding tool
     * responses (the results of a round cut short), with "previous" the message before it.
     * "message" and "previous" are as in messages_list. One indexed lookup per session: cheap
     * with many sessions. The caller decides what to repair. */
    gd_err (*sessions_unfinished)(store *st, json_t **out);
    /* The ids (a new JSON array of strings) of the sessions whose own settings an earlier
     * goosed wrote, naming extensions added, before it sealed their headers and envs for the
     * session's owner. A session leaves the list when its settings are next written, or when it
     * is deleted. */
    gd_err (*sessions_unsealed)(store *st, json_t **out);
    /* The id of the user who owns the session ("" the local user) into owner. A session's
     * owner never changes: it is remembered after the first time, and forgotten when the
     * session is deleted through this store (GD_ENOTFOUND from then on). */
    gd_err (*session_owner)(store *st, const char *id, char owner[UUID_STR_LEN]);
    /* A session as of one moment, in one read transaction: its row into out, its settings as
     * session_settings_get gives them (settings NULL: not read), its summary (summary NULL: not
     * read; its text the caller frees) and its messages as messages_list gives them. What a
     * turn starts from and an export writes; one transaction instead of four also means they
     * agree. GD_ENOTFOUND when the session does not exist; on any error nothing is left for
     * the caller to free. */
    gd_err (*session_read)(store *st, const char *id, store_session *out, json_t **settings,
                           store_summary *summary, json_t **messages);
    /* The session's own settings, a JSON object ({} when none: "execution_mode", "extensions"
     * ...) the caller owns. GD_ENOTFOUND when the session does not exist. */
    gd_err (*session_settings_get)(store *st, const char *id, json_t **out);
    /* Replaces them (settings borrowed), durably. GD_ENOTFOUND when the session is gone. */
    gd_err (*session_settings_set)(store *st, const char *id, json_t *settings);

    /* Stores a new session s with its messages in one transaction: all of it or nothing (for
     * imports and forks). s's id, name, working_dir, user_id, input_tokens and output_tokens
     * are read; created_at and updated_at are set here, message_count to the number of
     * messages. settings (borrowed; NULL: none) are its own settings as session_settings_set
     * takes them. messages (borrowed) is a JSON array of {"role", "content": [items],
     * "created_us"?} in order, checked by the caller; each gets a new id, the next sequence
     * number, and its created_us (microseconds since the epoch) or else the time of the import.
     * GD_ECONFLICT when the id is taken. Waits until durable. */
    gd_err (*session_import)(store *st, store_session *s, json_t *settings, json_t *messages);

    /* --- users and ownership --- */
    /* As session_list, only the sessions whose user_id is user_id ("" the local user's). */
    gd_err (*session_list_owned)(store *st, const char *user_id, long limit, long offset,
                                 store_session **out, size_t *n, long *total);
    /* Paging by cursor, newest first, with the same cost at any depth: at most limit sessions
     * of user_id's (NULL: everyone's) that come after the cursor after (NULL or "": from the
     * newest). next receives the cursor of the following page, "" when there is none. A
     * cursor is opaque text from next; GD_EINVAL (store_errmsg() saying so) for any other. *out
     * as for session_list. */
    gd_err (*session_page)(store *st, const char *user_id, long limit, const char *after,
                           store_session **out, size_t *n, char next[STORE_CURSOR_LEN]);
    /* How many sessions user_id has (NULL: everyone): kept up to date by the store, not
     * counted on each call. */
    gd_err (*session_count)(store *st, const char *user_id, long *n);
    /* Stores a new user u (name and admin read; id and created_at set here) with the token
     * hash (NULL: a user with no token). GD_ECONFLICT when the name is taken. */
    gd_err (*user_add)(store *st, store_user *u, const unsigned char *token_hash);
    /* The user whose token hashes to hash; GD_ENOTFOUND when none. */
    gd_err (*user_get_by_token_hash)(store *st, const unsigned char hash[STORE_TOKEN_HASH_LEN],
                                     store_user *out);
    gd_err (*user_get_by_name)(store *st, const char *name, store_user *out);
    /* Every user, by name. *out is an array of *n users the caller frees with free(). */
    gd_err (*user_list)(store *st, store_user **out, size_t *n);
    /* Removes the user (their sessions stay, reachable by no one). GD_ENOTFOUND when none. */
    gd_err (*user_remove)(store *st, const char *name);
    /* Replaces the user's token hash (the old token stops working). GD_ENOTFOUND when none. */
    gd_err (*user_set_token)(store *st, const char *name,
                             const unsigned char hash[STORE_TOKEN_HASH_LEN]);
    /* How many users there are. 0 also when the store cannot be opened but holds no database
     * at all (none can exist); an error when it cannot tell. */
    gd_err (*user_count)(store *st, long *n);

    /* --- a user's own settings (auth/user_settings.c), opaque values by name: secrets arrive
     * sealed already, so the store never holds a plaintext key. They go with the user. --- */
    /* Sets the item name of user_id to len bytes of value (NULL: removes it), durably.
     * GD_ENOTFOUND when the user does not exist; GD_ETOOBIG past STORE_ITEM_NAME_MAX or
     * STORE_ITEM_VALUE_MAX. */
    gd_err (*user_item_set)(store *st, const char *user_id, const char *name, const void *value,
                            size_t len);
    /* Every user's items, by user and name. *out is an array of *n the caller frees with
     * store_user_items_free(). */
    gd_err (*user_items_list)(store *st, store_user_item **out, size_t *n);
    /* A number that moves on with every change of any user's items, through any goosed on this
     * store: read it before user_items_list, and read the items again when it has moved. */
    gd_err (*user_items_version)(store *st, long *v);
} store_ops;

struct store {
    const store_ops *ops;
};

/* The file of the SQLite store in its directory, and the SQLite application_id that marks it
 * as goosed's ("gsd1" in ASCII). The real Goose keeps its own sessions.db in the same
 * directory, with another schema: goosed never writes to it. */
#define STORE_SQLITE_FILE   "goosed.db"
#define STORE_SQLITE_APP_ID 0x67736431
/* Default bound of the write queue (store_sqlite_open's queue_max 0). */
#define STORE_QUEUE_MAX_DEFAULT 100000
/* How long a write that nothing waits on yet may wait to share a commit (message_append_async). */
#define STORE_WITHIN_MS 5

/* Opens (or will keep trying to open) the SQLite store STORE_SQLITE_FILE in dir, with at most
 * queue_max writes waiting for the writer (0: STORE_QUEUE_MAX_DEFAULT). Never NULL unless out
 * of memory: a store that cannot be opened now answers GD_ESTORE and retries on later calls.
 * A sessions.db in dir that an older goosed wrote (goosed's tables, a schema version it
 * knows) is moved to STORE_SQLITE_FILE once, when that does not exist yet; any other
 * sessions.db is only ever read, to tell. The caller frees the store with store_close(). */
store *store_sqlite_open(const char *dir, size_t queue_max);

/* Why the calling thread's last store call failed. */
const char *store_errmsg(void);
/* For backends: sets the calling thread's message. */
void store_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void store_close(store *st)
{
    if (st) st->ops->close(st);
}

#endif
