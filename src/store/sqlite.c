/* The SQLite store. One file, WAL mode, forward-only migrations.
 *
 * Writes go through one writer thread that commits every write queued meanwhile in a single
 * transaction (group commit): with synchronous=FULL each COMMIT is an fsync, so batching is
 * what lets many concurrent durable writes share one. Each write runs in its own SAVEPOINT, so
 * one failing write does not undo the others. Reads use a pool of read-only connections, which
 * WAL lets run beside the writer.
 *
 * A store that cannot be opened (no such directory, read-only, corrupt) is not fatal: every
 * call answers GD_ESTORE with the reason, and tries again at most once a second. */
#include "store/store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/clock.h"
#include "core/log.h"

#define READERS_MAX 64

enum stmt_id {
    ST_SESSION_GET,
    ST_SESSION_LIST,
    ST_SESSION_COUNT,
    ST_SESSION_INSERT,
    ST_SESSION_DELETE,
    ST_MESSAGES_LIST,
    ST_MESSAGE_INSERT,
    ST_SESSION_BUMP,
    ST__N
};

#define SESSION_COLS                                                                               \
    "id, name, working_dir, created_us, updated_us, message_count, input_tokens, output_tokens"

static const char *const stmt_sql[ST__N] = {
    [ST_SESSION_GET] = "SELECT " SESSION_COLS " FROM sessions WHERE id = ?1",
    [ST_SESSION_LIST] = "SELECT " SESSION_COLS
                        " FROM sessions ORDER BY created_us DESC, rowid DESC LIMIT ?1 OFFSET ?2",
    [ST_SESSION_COUNT] = "SELECT count(*) FROM sessions",
    [ST_SESSION_INSERT] =
        "INSERT INTO sessions(" SESSION_COLS ") VALUES (?1, ?2, ?3, ?4, ?4, 0, 0, 0)",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [ST_MESSAGES_LIST] = "SELECT id, role, content, created_us FROM messages WHERE session_id = ?1 "
                         "ORDER BY seq",
    [ST_MESSAGE_INSERT] =
        "INSERT INTO messages(id, session_id, seq, role, content, created_us, input_tokens, "
        "output_tokens) SELECT ?1, ?2, COALESCE(MAX(seq), 0) + 1, ?3, ?4, ?5, ?6, ?7 FROM messages "
        "WHERE session_id = ?2",
    [ST_SESSION_BUMP] = "UPDATE sessions SET message_count = message_count + 1, updated_us = ?2, "
                        "input_tokens = input_tokens + ?3, output_tokens = output_tokens + ?4 "
                        "WHERE id = ?1",
};

/* Forward-only: a released entry is never edited; new schema changes are appended. */
static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE sessions ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  working_dir TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  updated_us INTEGER NOT NULL,"
    "  message_count INTEGER NOT NULL DEFAULT 0,"
    "  input_tokens INTEGER NOT NULL DEFAULT 0,"
    "  output_tokens INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX sessions_by_created ON sessions(created_us DESC);"
    "CREATE TABLE messages ("
    "  id TEXT PRIMARY KEY,"
    "  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  role TEXT NOT NULL,"
    "  content TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  input_tokens INTEGER NOT NULL DEFAULT 0,"
    "  output_tokens INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (session_id, seq));",
};
#define NMIGRATIONS ((int)(sizeof migrations / sizeof *migrations))

typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST__N];
    struct conn *next;
} conn;

typedef struct write_op {
    gd_err (*fn)(conn *c, void *arg, char *err, size_t errlen);
    void *arg;
    gd_err result;
    bool done;
    char err[256];
    struct write_op *next;
    /* Asynchronous writes: called instead of waking a waiter; the op is then freed, and
     * free_arg(free_ptr) called when set. */
    store_done on_done;
    void *ud;
    void (*free_arg)(void *);
    void *free_ptr;
} write_op;

typedef struct {
    store base;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    pthread_mutex_t mu;  /* guards everything below */
    pthread_cond_t work; /* the writer waits here for writes */
    pthread_cond_t done; /* writers' callers wait here for their results */
    bool open;
    bool stopping;
    time_t last_try;
    char open_err[PATH_MAX + 512];
    pthread_t writer;
    conn *wconn;
    write_op *head, *tail;
    conn *idle; /* idle read connections */
    int nidle;
} sqlite_store;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- connections ---- */

static void conn_close(conn *c)
{
    if (!c) return;
    for (int i = 0; i < ST__N; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

static conn *conn_open(const char *path, bool writer, char *err, size_t errlen)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        conn_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 5000);
    const char *pragmas =
        writer ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
               : "PRAGMA query_only=ON;";
    char *msg = NULL;
    if (sqlite3_exec(c->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up %s: %s", path, msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        conn_close(c);
        return NULL;
    }
    return c;
}

/* A prepared statement of c, reset and ready for binding. NULL with err set on failure. */
static sqlite3_stmt *stmt(conn *c, enum stmt_id id)
{
    if (!c->st[id] && sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &c->st[id], NULL) != SQLITE_OK) {
        store_set_errmsg("%s", sqlite3_errmsg(c->db));
        return NULL;
    }
    return c->st[id];
}

static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* ---- schema ---- */

static int exec_err(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return rc;
}

static gd_err migrate(sqlite3 *db, char *err, size_t errlen)
{
    if (exec_err(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", err,
                 errlen))
        return GD_ESTORE;
    sqlite3_stmt *s;
    int version = 0;
    if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &s, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return GD_ESTORE;
    }
    if (sqlite3_step(s) == SQLITE_ROW) version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (version > NMIGRATIONS) {
        snprintf(err, errlen,
                 "the database schema is version %d, newer than this goosed knows (%d)", version,
                 NMIGRATIONS);
        return GD_ESTORE;
    }
    for (int v = version; v < NMIGRATIONS; v++) {
        char bump[96];
        snprintf(bump, sizeof bump,
                 "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d);", v + 1);
        if (exec_err(db, "BEGIN IMMEDIATE", err, errlen)) return GD_ESTORE;
        if (exec_err(db, migrations[v], err, errlen) || exec_err(db, bump, err, errlen) ||
            exec_err(db, "COMMIT", err, errlen)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return GD_ESTORE;
        }
        log_info("store", "migrated %s to schema version %d", sqlite3_db_filename(db, "main"),
                 v + 1);
    }
    return GD_OK;
}

/* ---- the writer ---- */

static void run_batch(sqlite_store *ss, write_op *batch)
{
    sqlite3 *db = ss->wconn->db;
    char err[256];
    int n = 0;
    if (exec_err(db, "BEGIN IMMEDIATE", err, sizeof err)) {
        for (write_op *op = batch; op; op = op->next) {
            op->result = GD_ESTORE;
            snprintf(op->err, sizeof op->err, "%s", err);
        }
        return;
    }
    for (write_op *op = batch; op; op = op->next, n++) {
        sqlite3_exec(db, "SAVEPOINT op", NULL, NULL, NULL);
        op->err[0] = '\0';
        op->result = op->fn(ss->wconn, op->arg, op->err, sizeof op->err);
        if (op->result) sqlite3_exec(db, "ROLLBACK TO op", NULL, NULL, NULL);
        sqlite3_exec(db, "RELEASE op", NULL, NULL, NULL);
    }
    if (exec_err(db, "COMMIT", err, sizeof err)) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        log_error("store", "commit of %d write(s) failed: %s", n, err);
        for (write_op *op = batch; op; op = op->next) {
            if (op->result == GD_OK) {
                op->result = GD_ESTORE;
                snprintf(op->err, sizeof op->err, "%s", err);
            }
        }
    }
    log_trace("store", "committed %d write(s)", n);
}

static void *writer_main(void *arg)
{
    sqlite_store *ss = arg;
    pthread_mutex_lock(&ss->mu);
    for (;;) {
        while (!ss->head && !ss->stopping)
            pthread_cond_wait(&ss->work, &ss->mu);
        if (!ss->head) break; /* stopping, and nothing left to write */
        write_op *batch = ss->head;
        ss->head = ss->tail = NULL;
        pthread_mutex_unlock(&ss->mu);
        run_batch(ss, batch);
        write_op *async = NULL;
        pthread_mutex_lock(&ss->mu);
        for (write_op *op = batch, *next; op; op = next) {
            next = op->next; /* op belongs to its caller once done is set */
            if (op->on_done) {
                op->next = async;
                async = op;
            } else {
                op->done = true;
            }
        }
        pthread_cond_broadcast(&ss->done);
        pthread_mutex_unlock(&ss->mu);
        for (write_op *op = async, *next; op; op = next) {
            next = op->next;
            op->on_done(op->ud, op->result,
                        op->result ? (op->err[0] ? op->err : gd_strerror(op->result)) : NULL);
            if (op->free_arg) op->free_arg(op->free_ptr);
            free(op);
        }
        pthread_mutex_lock(&ss->mu);
    }
    pthread_mutex_unlock(&ss->mu);
    return NULL;
}

/* Opens the store if it is not open yet (at most one attempt a second). Caller holds mu. */
static gd_err ensure_open_locked(sqlite_store *ss)
{
    if (ss->open) return GD_OK;
    if (ss->stopping) {
        store_set_errmsg("the store is closing");
        return GD_ESTORE;
    }
    time_t now = time(NULL);
    if (ss->last_try && now - ss->last_try < 1) {
        store_set_errmsg("%s", ss->open_err);
        return GD_ESTORE;
    }
    ss->last_try = now;

    char err[PATH_MAX + 256];
    /* mkdir -p, each missing level 0700 */
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", ss->dir);
    if (!tmp[0]) {
        snprintf(ss->open_err, sizeof ss->open_err, "no data directory given");
        goto fail;
    }
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
                snprintf(ss->open_err, sizeof ss->open_err, "cannot create directory %s: %s", tmp,
                         strerror(errno));
                goto fail;
            }
            *p = c;
            if (!c) break;
        }
    }
    conn *w = conn_open(ss->path, true, err, sizeof err);
    if (!w) {
        snprintf(ss->open_err, sizeof ss->open_err, "%s", err);
        goto fail;
    }
    if (migrate(w->db, err, sizeof err)) {
        snprintf(ss->open_err, sizeof ss->open_err, "cannot prepare %s: %.256s", ss->path, err);
        conn_close(w);
        goto fail;
    }
    if (pthread_create(&ss->writer, NULL, writer_main, ss) != 0) {
        snprintf(ss->open_err, sizeof ss->open_err, "cannot start the store's writer thread");
        conn_close(w);
        goto fail;
    }
    ss->wconn = w;
    ss->open = true;
    log_info("store", "sessions stored in %s", ss->path);
    return GD_OK;
fail:
    log_error("store", "%s", ss->open_err);
    store_set_errmsg("%s", ss->open_err);
    return GD_ESTORE;
}

static gd_err ensure_open(sqlite_store *ss)
{
    pthread_mutex_lock(&ss->mu);
    gd_err e = ensure_open_locked(ss);
    pthread_mutex_unlock(&ss->mu);
    return e;
}

/* Appends op to the writer's queue and wakes the writer. Caller holds mu. */
static void enqueue_locked(sqlite_store *ss, write_op *op)
{
    op->next = NULL;
    if (ss->tail)
        ss->tail->next = op;
    else
        ss->head = op;
    ss->tail = op;
    pthread_cond_signal(&ss->work);
}

/* Queues a write and waits until it is durable (or failed). */
static gd_err submit(sqlite_store *ss, write_op *op)
{
    pthread_mutex_lock(&ss->mu);
    gd_err e = ensure_open_locked(ss);
    if (e) {
        pthread_mutex_unlock(&ss->mu);
        return e;
    }
    op->done = false;
    enqueue_locked(ss, op);
    while (!op->done)
        pthread_cond_wait(&ss->done, &ss->mu);
    pthread_mutex_unlock(&ss->mu);
    if (op->result) store_set_errmsg("%s", op->err[0] ? op->err : gd_strerror(op->result));
    return op->result;
}

/* Queues a heap-allocated op with on_done set; the writer calls it and frees op. If the store
 * is down, calls it at once. */
static void submit_async(sqlite_store *ss, write_op *op)
{
    pthread_mutex_lock(&ss->mu);
    gd_err e = ensure_open_locked(ss);
    if (!e) enqueue_locked(ss, op);
    pthread_mutex_unlock(&ss->mu);
    if (e) {
        op->on_done(op->ud, e, store_errmsg());
        if (op->free_arg) op->free_arg(op->free_ptr);
        free(op);
    }
}

/* ---- readers ---- */

static conn *reader_get(sqlite_store *ss)
{
    pthread_mutex_lock(&ss->mu);
    gd_err e = ensure_open_locked(ss);
    conn *c = NULL;
    if (!e && ss->idle) {
        c = ss->idle;
        ss->idle = c->next;
        ss->nidle--;
    }
    pthread_mutex_unlock(&ss->mu);
    if (e || c) return c;
    char err[PATH_MAX + 256];
    c = conn_open(ss->path, false, err, sizeof err);
    if (!c) store_set_errmsg("%s", err);
    return c;
}

static void reader_put(sqlite_store *ss, conn *c)
{
    pthread_mutex_lock(&ss->mu);
    if (ss->nidle < READERS_MAX && !ss->stopping) {
        c->next = ss->idle;
        ss->idle = c;
        ss->nidle++;
        c = NULL;
    }
    pthread_mutex_unlock(&ss->mu);
    conn_close(c);
}

static gd_err read_failed(conn *c)
{
    store_set_errmsg("%s", sqlite3_errmsg(c->db));
    return GD_ESTORE;
}

static void row_to_session(sqlite3_stmt *s, store_session *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(out->working_dir, sizeof out->working_dir, "%s",
             (const char *)sqlite3_column_text(s, 2));
    out->created_at = (time_t)(sqlite3_column_int64(s, 3) / 1000000);
    out->updated_at = (time_t)(sqlite3_column_int64(s, 4) / 1000000);
    out->message_count = (long)sqlite3_column_int64(s, 5);
    out->input_tokens = (long)sqlite3_column_int64(s, 6);
    out->output_tokens = (long)sqlite3_column_int64(s, 7);
}

/* ---- operations ---- */

static gd_err sq_health(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, ST_SESSION_COUNT);
    gd_err e = !s ? GD_ESTORE : sqlite3_step(s) == SQLITE_ROW ? GD_OK : read_failed(c);
    if (s) stmt_done(s);
    reader_put(ss, c);
    return e;
}

static gd_err sq_session_get(store *st, const char *id, store_session *out)
{
    sqlite_store *ss = (sqlite_store *)st;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, ST_SESSION_GET);
    gd_err e = GD_ESTORE;
    if (s) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            row_to_session(s, out);
            e = GD_OK;
        } else {
            e = rc == SQLITE_DONE ? GD_ENOTFOUND : read_failed(c);
        }
        stmt_done(s);
    }
    reader_put(ss, c);
    return e;
}

static gd_err sq_session_list(store *st, long limit, long offset, store_session **out, size_t *n,
                              long *total)
{
    sqlite_store *ss = (sqlite_store *)st;
    *out = NULL;
    *n = 0;
    if (limit <= 0 || offset < 0) {
        store_set_errmsg("limit must be positive and offset not negative");
        return GD_EINVAL;
    }
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    gd_err e = GD_ESTORE;
    store_session *arr = NULL;
    size_t cnt = 0;
    sqlite3_stmt *cs = NULL, *ls = NULL;
    /* One read transaction, so the count and the page agree. */
    if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        e = read_failed(c);
        goto out;
    }
    if (!(cs = stmt(c, ST_SESSION_COUNT)) || !(ls = stmt(c, ST_SESSION_LIST))) goto out;
    if (sqlite3_step(cs) != SQLITE_ROW) {
        e = read_failed(c);
        goto out;
    }
    *total = (long)sqlite3_column_int64(cs, 0);
    sqlite3_bind_int64(ls, 1, limit);
    sqlite3_bind_int64(ls, 2, offset);
    int rc;
    size_t cap = 0;
    while ((rc = sqlite3_step(ls)) == SQLITE_ROW && cnt < (size_t)limit) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            store_session *grown = realloc(arr, cap * sizeof *arr);
            if (!grown) {
                store_set_errmsg("out of memory");
                goto out;
            }
            arr = grown;
        }
        row_to_session(ls, &arr[cnt++]);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        e = read_failed(c);
        goto out;
    }
    *out = arr;
    *n = cnt;
    arr = NULL;
    e = GD_OK;
out:
    if (cs) stmt_done(cs);
    if (ls) stmt_done(ls);
    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    free(arr);
    reader_put(ss, c);
    return e;
}

static gd_err sq_messages_list(store *st, const char *session_id, json_t **out)
{
    sqlite_store *ss = (sqlite_store *)st;
    *out = NULL;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    gd_err e = GD_ESTORE;
    sqlite3_stmt *gs = NULL, *ms = NULL;
    json_t *arr = json_array();
    if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        e = read_failed(c);
        goto out;
    }
    if (!(gs = stmt(c, ST_SESSION_GET)) || !(ms = stmt(c, ST_MESSAGES_LIST))) goto out;
    sqlite3_bind_text(gs, 1, session_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(gs);
    if (rc != SQLITE_ROW) {
        e = rc == SQLITE_DONE ? GD_ENOTFOUND : read_failed(c);
        goto out;
    }
    sqlite3_bind_text(ms, 1, session_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(ms)) == SQLITE_ROW) {
        char when[RFC3339_LEN];
        clock_rfc3339((time_t)(sqlite3_column_int64(ms, 3) / 1000000), when);
        json_t *content = json_loads((const char *)sqlite3_column_text(ms, 2), 0, NULL);
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:o, s:s}", "id", sqlite3_column_text(ms, 0),
                                        "role", sqlite3_column_text(ms, 1), "content",
                                        content ? content : json_array(), "created_at", when));
    }
    if (rc != SQLITE_DONE) {
        e = read_failed(c);
        goto out;
    }
    *out = arr;
    arr = NULL;
    e = GD_OK;
out:
    if (gs) stmt_done(gs);
    if (ms) stmt_done(ms);
    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    json_decref(arr);
    reader_put(ss, c);
    return e;
}

struct insert_arg {
    const store_session *s;
    int64_t created_us;
};

static gd_err w_session_insert(conn *c, void *arg, char *err, size_t errlen)
{
    const struct insert_arg *a = arg;
    const store_session *s = a->s;
    sqlite3_stmt *st = stmt(c, ST_SESSION_INSERT);
    if (!st) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->working_dir, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, a->created_us);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc == SQLITE_DONE) return GD_OK;
    snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
    return rc == SQLITE_CONSTRAINT ? GD_ECONFLICT : GD_ESTORE;
}

static gd_err sq_session_create(store *st, store_session *s)
{
    struct insert_arg a = {.s = s, .created_us = now_us()};
    s->created_at = s->updated_at = (time_t)(a.created_us / 1000000);
    write_op op = {.fn = w_session_insert, .arg = &a};
    return submit((sqlite_store *)st, &op);
}

struct insert_op {
    write_op op;
    struct insert_arg a;
};

static void sq_session_create_async(store *st, store_session *s, store_done done, void *ud)
{
    struct insert_op *io = calloc(1, sizeof *io);
    if (!io) {
        done(ud, GD_ENOMEM, "out of memory");
        return;
    }
    io->a.s = s;
    io->a.created_us = now_us();
    s->created_at = s->updated_at = (time_t)(io->a.created_us / 1000000);
    io->op.fn = w_session_insert;
    io->op.arg = &io->a;
    io->op.on_done = done;
    io->op.ud = ud;
    submit_async((sqlite_store *)st, &io->op);
}

struct append_op {
    write_op op;
    char session_id[UUID_STR_LEN];
    char role[16];
    char *content;
    int64_t created_us;
    long in_tok, out_tok;
    char *id;
};

static gd_err w_message_append(conn *c, void *arg, char *err, size_t errlen)
{
    struct append_op *a = arg;
    sqlite3_stmt *bump = stmt(c, ST_SESSION_BUMP), *ins = stmt(c, ST_MESSAGE_INSERT);
    if (!bump || !ins) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(bump, 1, a->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(bump, 2, a->created_us);
    sqlite3_bind_int64(bump, 3, a->in_tok);
    sqlite3_bind_int64(bump, 4, a->out_tok);
    int rc = sqlite3_step(bump);
    stmt_done(bump);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    if (sqlite3_changes(c->db) == 0) {
        snprintf(err, errlen, "session '%s' not found", a->session_id);
        return GD_ENOTFOUND;
    }
    sqlite3_bind_text(ins, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, a->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 3, a->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, a->content, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 5, a->created_us);
    sqlite3_bind_int64(ins, 6, a->in_tok);
    sqlite3_bind_int64(ins, 7, a->out_tok);
    rc = sqlite3_step(ins);
    stmt_done(ins);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    return GD_OK;
}

static void sq_message_append_async(store *st, const char *session_id, const char *role,
                                    json_t *content, long in_tok, long out_tok,
                                    char id_out[UUID_STR_LEN], store_done done, void *ud)
{
    struct append_op *a = calloc(1, sizeof *a);
    char *text = json_dumps(content, JSON_COMPACT);
    if (!a || !text) {
        free(a);
        free(text);
        done(ud, GD_ENOMEM, "out of memory");
        return;
    }
    snprintf(a->session_id, sizeof a->session_id, "%s", session_id);
    snprintf(a->role, sizeof a->role, "%s", role);
    ids_uuid4(id_out);
    a->id = id_out;
    a->content = text;
    a->created_us = now_us();
    a->in_tok = in_tok;
    a->out_tok = out_tok;
    a->op.fn = w_message_append;
    a->op.arg = a;
    a->op.on_done = done;
    a->op.ud = ud;
    a->op.free_arg = free; /* the content string */
    a->op.free_ptr = text;
    submit_async((sqlite_store *)st, &a->op);
}

static gd_err w_session_delete(conn *c, void *arg, char *err, size_t errlen)
{
    sqlite3_stmt *st = stmt(c, ST_SESSION_DELETE);
    if (!st) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    return sqlite3_changes(c->db) ? GD_OK : GD_ENOTFOUND;
}

static gd_err sq_session_delete(store *st, const char *id)
{
    write_op op = {.fn = w_session_delete, .arg = (void *)id};
    return submit((sqlite_store *)st, &op);
}

static void sq_close(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    pthread_mutex_lock(&ss->mu);
    ss->stopping = true;
    bool was_open = ss->open;
    pthread_cond_signal(&ss->work);
    pthread_mutex_unlock(&ss->mu);
    if (was_open) pthread_join(ss->writer, NULL); /* it drains the queue first */
    for (conn *c = ss->idle, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    conn_close(ss->wconn); /* the last connection: SQLite checkpoints and removes the WAL */
    pthread_cond_destroy(&ss->work);
    pthread_cond_destroy(&ss->done);
    pthread_mutex_destroy(&ss->mu);
    free(ss);
}

static const store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .health = sq_health,
    .session_create = sq_session_create,
    .session_create_async = sq_session_create_async,
    .session_get = sq_session_get,
    .session_list = sq_session_list,
    .session_delete = sq_session_delete,
    .messages_list = sq_messages_list,
    .message_append_async = sq_message_append_async,
};

store *store_sqlite_open(const char *dir)
{
    sqlite_store *ss = calloc(1, sizeof *ss);
    if (!ss) return NULL;
    ss->base.ops = &sqlite_ops;
    snprintf(ss->dir, sizeof ss->dir, "%s", dir);
    snprintf(ss->path, sizeof ss->path, "%s/sessions.db", dir);
    pthread_mutex_init(&ss->mu, NULL);
    pthread_cond_init(&ss->work, NULL);
    pthread_cond_init(&ss->done, NULL);
    ensure_open(ss); /* failure is logged; calls retry */
    return &ss->base;
}
