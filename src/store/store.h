/* store: where sessions and messages live. The interface every backend implements (SQLite now,
 * PostgreSQL later); it knows nothing of HTTP. All functions are thread-safe. A write returns
 * only once it is durable (committed and synced). On GD_ESTORE, store_errmsg() says why. */
#ifndef GD_STORE_H
#define GD_STORE_H

#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <time.h>

#include "core/err.h"
#include "core/ids.h"

#define STORE_NAME_MAX 1024 /* bytes: 256 characters of up to 4 bytes */

typedef struct {
    char id[UUID_STR_LEN];
    char name[STORE_NAME_MAX + 1];
    char working_dir[PATH_MAX];
    time_t created_at;
    time_t updated_at;
    long message_count;
    long input_tokens;
    long output_tokens;
} store_session;

typedef struct store store;

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
     * the session is gone. */
    void (*message_append_async)(store *st, const char *session_id, const char *role,
                                 json_t *content, long input_tokens, long output_tokens,
                                 char id_out[UUID_STR_LEN], store_done done, void *ud);
    /* The session's messages, oldest first, as a new JSON array the caller owns. */
    gd_err (*messages_list)(store *st, const char *session_id, json_t **out);
} store_ops;

struct store {
    const store_ops *ops;
};

/* Opens (or will keep trying to open) the SQLite store in dir. Never NULL unless out of
 * memory: a store that cannot be opened now answers GD_ESTORE and retries on later calls. */
store *store_sqlite_open(const char *dir);

/* Why the calling thread's last store call failed. */
const char *store_errmsg(void);
/* For backends: sets the calling thread's message. */
void store_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void store_close(store *st)
{
    if (st) st->ops->close(st);
}

#endif
