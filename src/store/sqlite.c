/* The SQLite store. One file of its own, goosed.db, marked with STORE_SQLITE_APP_ID; WAL mode;
 * forward-only migrations.
 *
 * Writes go through one writer thread that commits every write queued meanwhile in a single
 * transaction (group commit). Each write runs in its own SAVEPOINT, so one failing write does
 * not undo the others. The queue is bounded (queue_max). Reads use a pool of read-only
 * connections, which WAL lets run beside the writer.
 *
 * Durability is pipelined: the writer commits with synchronous=NORMAL (the WAL is appended to,
 * not synced) and hands the batch to the syncer thread, which makes it durable with one
 * fdatasync of the WAL file and only then answers the batch's writes; meanwhile the writer
 * already runs the next batch. One fdatasync covers every batch committed before it. This is
 * safe because WAL frames are checksummed in a chain: after a crash SQLite keeps the longest
 * valid prefix of the WAL, so a batch lost with the page cache takes every later one with it,
 * and none of those had been answered. Checkpoints sync the WAL before copying it into the
 * database (synchronous=NORMAL does that). Without WAL (a file system that refuses it), the
 * writer keeps synchronous=FULL and every COMMIT syncs itself. Readers may see a committed
 * write shortly before it is durable and answered; no caller acts on a write before its answer.
 *
 * A store that cannot be opened (no such directory, read-only, corrupt, locked by another
 * program) is not fatal: every call answers GD_ESTORE with the reason, and tries again a second
 * after a failed attempt. Opening is done by one caller at a time, without holding the store's
 * mutex; others answer GD_ESTORE ("the store is opening") meanwhile.
 *
 * The real Goose keeps its sessions.db in the same directory with a schema of its own. goosed
 * before goosed.db used that name too: such a file (goosed's tables, a schema version this
 * goosed knows) is moved to goosed.db once; any other sessions.db is opened only read-only
 * (immutable when it has no WAL, so not even a -shm is made beside it) and left untouched. */
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fs.h"
#include "core/ids.h"
#include "core/jtext.h"
#include "core/log.h"
#include "core/metrics.h"

#define READERS_MAX 64
#define LEGACY_FILE "sessions.db" /* the real Goose's name, which goosed once used too */

enum stmt_id {
    ST_SESSION_GET,
    ST_SESSION_LIST,
    ST_SESSION_COUNT,
    ST_SESSION_INSERT,
    ST_SESSION_DELETE,
    ST_MESSAGES_LIST,
    ST_MESSAGE_INSERT,
    ST_SESSION_BUMP,
    ST_MESSAGE_GET,
    ST_UNFINISHED,
    ST_UNSEALED,
    ST_MESSAGE_UPDATE,
    ST_SESSION_TOUCH,
    ST_SETTINGS_GET,
    ST_SETTINGS_SET,
    ST_SESSION_LIST_OWNED,
    ST_SESSION_COUNT_OWNED,
    ST_SESSION_PAGE,
    ST_MESSAGES_PAGE,
    ST_MESSAGES_NEXT,
    ST_SESSION_PAGE_OWNED,
    ST_USER_INSERT,
    ST_USER_BY_HASH,
    ST_USER_BY_NAME,
    ST_USER_LIST,
    ST_USER_DELETE,
    ST_USER_SET_TOKEN,
    ST_USER_COUNT,
    ST_ITEM_SET,
    ST_ITEM_DELETE,
    ST_ITEM_LIST,
    ST_ITEMS_VERSION,
    ST_IMPORT_MESSAGE,
    ST_IMPORT_FINISH,
    ST_TX_BEGIN,
    ST_TX_SAVEPOINT,
    ST_TX_ROLLBACK_TO,
    ST_TX_RELEASE,
    ST_TX_COMMIT,
    ST_TX_ROLLBACK,
    ST_READ_BEGIN,
    ST_READ_END,
    ST_SUMMARY_GET,
    ST_SUMMARY_SET,
    ST__N
};

#define SESSION_COLS                                                                               \
    "id, name, working_dir, created_us, updated_us, message_count, input_tokens, output_tokens, "  \
    "user_id"

static const char *const stmt_sql[ST__N] = {
    [ST_SESSION_GET] = "SELECT " SESSION_COLS " FROM sessions WHERE id = ?1",
    [ST_SESSION_LIST] = "SELECT " SESSION_COLS
                        " FROM sessions ORDER BY created_us DESC, id DESC LIMIT ?1 OFFSET ?2",
    /* The counts are kept by triggers (migration 5): reading one is a lookup, not a scan. */
    [ST_SESSION_COUNT] = "SELECT coalesce(sum(n), 0) FROM session_counts",
    [ST_SESSION_INSERT] =
        "INSERT INTO sessions(" SESSION_COLS ") VALUES (?1, ?2, ?3, ?4, ?4, 0, 0, 0, ?5)",
    [ST_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [ST_MESSAGES_LIST] = "SELECT id, role, content, created_us FROM messages WHERE session_id = ?1 "
                         "ORDER BY seq",
    /* The next seq as a scalar subquery of VALUES (one seek on the (session_id, seq) index):
     * INSERT ... SELECT from the table it writes made SQLite copy the row through a temporary
     * table first, which halved an append's speed. */
    [ST_MESSAGE_INSERT] =
        "INSERT INTO messages(id, session_id, seq, role, content, created_us, input_tokens, "
        "output_tokens) VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages "
        "WHERE session_id = ?2), ?3, ?4, ?5, ?6, ?7)",
    [ST_SESSION_BUMP] = "UPDATE sessions SET message_count = message_count + 1, updated_us = ?2, "
                        "input_tokens = input_tokens + ?3, output_tokens = output_tokens + ?4, "
                        "open_round = ?5 WHERE id = ?1",
    [ST_MESSAGE_GET] = "SELECT id, role, content, created_us FROM messages WHERE session_id = ?1 "
                       "AND id = ?2",
    /* Only the sessions whose last message left a round of tools open (open_round, kept by
     * opens_round; migration 6's partial index), whatever the store holds; they drive (CROSS
     * JOIN keeps them the outer loop), and each one's last message is two searches of the
     * UNIQUE (session_id, seq) index. */
    [ST_UNFINISHED] =
        "SELECT s.id, lastmsg.id, lastmsg.role, lastmsg.content, lastmsg.created_us, pmsg.id, "
        "pmsg.role, pmsg.content, pmsg.created_us FROM sessions AS s CROSS JOIN messages AS "
        "lastmsg "
        "LEFT JOIN messages AS pmsg ON lastmsg.role = 'user' AND pmsg.session_id = s.id AND "
        "pmsg.seq = (SELECT max(qmsg.seq) FROM messages AS qmsg WHERE qmsg.session_id = s.id AND "
        "qmsg.seq < lastmsg.seq) "
        "WHERE s.open_round = 1 AND lastmsg.session_id = s.id AND lastmsg.seq = "
        "(SELECT prev.seq FROM messages AS prev WHERE prev.session_id = s.id "
        "ORDER BY prev.seq DESC LIMIT 1)",
    [ST_UNSEALED] = "SELECT id FROM sessions_unsealed",
    [ST_MESSAGE_UPDATE] = "UPDATE messages SET content = ?3 WHERE session_id = ?1 AND id = ?2",
    [ST_SESSION_TOUCH] = "UPDATE sessions SET updated_us = max(updated_us, ?2) WHERE id = ?1",
    [ST_SETTINGS_GET] = "SELECT settings FROM sessions WHERE id = ?1",
    [ST_SETTINGS_SET] = "UPDATE sessions SET settings = ?2 WHERE id = ?1",
    [ST_SESSION_LIST_OWNED] = "SELECT " SESSION_COLS " FROM sessions WHERE user_id = ?3 ORDER BY "
                              "created_us DESC, id DESC LIMIT ?1 OFFSET ?2",
    [ST_SESSION_COUNT_OWNED] = "SELECT coalesce(sum(n), 0) FROM session_counts WHERE user_id = ?1",
    [ST_MESSAGES_PAGE] = "SELECT id, role, content, created_us, seq FROM messages WHERE "
                         "session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    /* The seq of a page's last message (?3: the page's size less one) and of the one after it,
     * if any: the next page's cursor before the page is read, from the index alone. */
    [ST_MESSAGES_NEXT] = "SELECT seq FROM messages WHERE session_id = ?1 AND seq > ?2 ORDER BY seq "
                         "LIMIT 2 OFFSET ?3",
    /* A page after the cursor (?2, ?3): a seek in the index of migration 5, whatever the depth. */
    [ST_SESSION_PAGE] = "SELECT " SESSION_COLS " FROM sessions WHERE (created_us, id) < (?2, ?3) "
                        "ORDER BY created_us DESC, id DESC LIMIT ?1",
    [ST_SESSION_PAGE_OWNED] = "SELECT " SESSION_COLS " FROM sessions WHERE user_id = ?4 AND "
                              "(created_us, id) < (?2, ?3) ORDER BY created_us DESC, id DESC "
                              "LIMIT ?1",
#define USER_COLS "id, name, admin, token_hash IS NOT NULL, created_us"
    [ST_USER_INSERT] =
        "INSERT INTO users(id, name, admin, token_hash, created_us) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_USER_BY_HASH] = "SELECT " USER_COLS " FROM users WHERE token_hash = ?1",
    [ST_USER_BY_NAME] = "SELECT " USER_COLS " FROM users WHERE name = ?1",
    [ST_USER_LIST] = "SELECT " USER_COLS " FROM users ORDER BY name",
    [ST_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
    [ST_USER_SET_TOKEN] = "UPDATE users SET token_hash = ?2 WHERE name = ?1",
    [ST_USER_COUNT] = "SELECT count(*) FROM users",
#undef USER_COLS
    [ST_ITEM_SET] =
        "INSERT INTO user_items(user_id, name, value, updated_us) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(user_id, name) DO UPDATE SET value = excluded.value, "
        "updated_us = excluded.updated_us",
    [ST_ITEM_DELETE] = "DELETE FROM user_items WHERE user_id = ?1 AND name = ?2",
    [ST_ITEM_LIST] = "SELECT user_id, name, value FROM user_items ORDER BY user_id, name",
    [ST_ITEMS_VERSION] = "SELECT v FROM user_items_version",
    [ST_IMPORT_MESSAGE] = "INSERT INTO messages(id, session_id, seq, role, content, created_us, "
                          "input_tokens, output_tokens) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
    [ST_IMPORT_FINISH] =
        "UPDATE sessions SET settings = ?2, message_count = ?3, input_tokens = ?4, "
        "output_tokens = ?5, open_round = ?6 WHERE id = ?1",
    /* The writer's transaction control, prepared once like the rest: as text, SQLite parsed
     * them again for every write (more than half of a create's instructions). */
    [ST_TX_BEGIN] = "BEGIN IMMEDIATE",
    [ST_TX_SAVEPOINT] = "SAVEPOINT op",
    [ST_TX_ROLLBACK_TO] = "ROLLBACK TO op",
    [ST_TX_RELEASE] = "RELEASE op",
    [ST_TX_COMMIT] = "COMMIT",
    [ST_TX_ROLLBACK] = "ROLLBACK",
    /* A reader's transaction (deferred: it takes its snapshot at its first read), prepared once
     * too: as text it cost a history read of a few messages a third of its time. */
    [ST_READ_BEGIN] = "BEGIN",
    [ST_READ_END] = "COMMIT",
    [ST_SUMMARY_GET] = "SELECT summary, summary_count FROM sessions WHERE id = ?1",
    [ST_SUMMARY_SET] = "UPDATE sessions SET summary = ?2, summary_count = ?3 WHERE id = ?1",
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
    /* 2: a session's own settings (execution mode, extensions added or removed), as JSON */
    "ALTER TABLE sessions ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';",
    /* 3: users (only a hash of each token), and the owner of each session ("" the local user,
     * which owns every session made before) */
    "CREATE TABLE users ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  admin INTEGER NOT NULL DEFAULT 0,"
    "  token_hash BLOB UNIQUE,"
    "  created_us INTEGER NOT NULL);"
    "ALTER TABLE sessions ADD COLUMN user_id TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX sessions_by_user ON sessions(user_id, created_us DESC);",
    /* 4: a user's own settings by name (provider choice, API keys sealed under the server key,
     * "always" answers to tool confirmations); they go with the user */
    "CREATE TABLE user_items ("
    "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  value BLOB NOT NULL,"
    "  updated_us INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, name)) WITHOUT ROWID;",
    /* 5: pages by cursor (the order made total by the id, and its index) and the number of
     * each user's sessions kept as they come and go, instead of counted per request */
    "DROP INDEX sessions_by_created;"
    "CREATE INDEX sessions_by_created ON sessions(created_us DESC, id DESC);"
    "DROP INDEX sessions_by_user;"
    "CREATE INDEX sessions_by_user ON sessions(user_id, created_us DESC, id DESC);"
    "CREATE TABLE session_counts (user_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO session_counts SELECT user_id, count(*) FROM sessions GROUP BY user_id;"
    "CREATE TRIGGER sessions_counted AFTER INSERT ON sessions BEGIN"
    "  INSERT INTO session_counts(user_id, n) VALUES (NEW.user_id, 1)"
    "    ON CONFLICT(user_id) DO UPDATE SET n = n + 1;"
    "END;"
    "CREATE TRIGGER sessions_uncounted AFTER DELETE ON sessions BEGIN"
    "  UPDATE session_counts SET n = n - 1 WHERE user_id = OLD.user_id;"
    "END;",
    /* 6: whether a session's last message is a round of tools a crash may have cut (the
     * assistant's tool requests, or the results of them), kept with each append; the start-up
     * repair reads only those sessions, through the partial index, instead of every session's
     * last message. The sessions already there are looked at once, here. */
    "ALTER TABLE sessions ADD COLUMN open_round INTEGER NOT NULL DEFAULT 0;"
    "UPDATE sessions SET open_round = 1 WHERE EXISTS (SELECT 1 FROM messages AS m WHERE "
    "m.session_id = sessions.id AND m.seq = (SELECT max(p.seq) FROM messages AS p WHERE "
    "p.session_id = sessions.id) AND ((m.role = 'assistant' AND instr(m.content, "
    "'\"tool_request\"') > 0) OR (m.role = 'user' AND instr(m.content, '\"tool_response\"') > "
    "0)));"
    "CREATE INDEX sessions_open ON sessions(id) WHERE open_round = 1;",
    /* 7: migration 5's two indexes ascending. SQLite reads them backwards for the newest first
     * just as well (the same plans, no sort); but a new session, the newest, went in at the
     * left end of a descending index, where a full leaf is split in half, and one at the right
     * end of an ascending one fills its leaf and starts the next: the indexes were twice their
     * size, and a batch of creates wrote about twice the pages. */
    "DROP INDEX sessions_by_created;"
    "CREATE INDEX sessions_by_created ON sessions(created_us, id);"
    "DROP INDEX sessions_by_user;"
    "CREATE INDEX sessions_by_user ON sessions(user_id, created_us, id);",
    /* 8: a compacted conversation: the summary that stands, for the agent, in place of the
     * session's first summary_count messages (which stay, for the user and the API) */
    "ALTER TABLE sessions ADD COLUMN summary TEXT;"
    "ALTER TABLE sessions ADD COLUMN summary_count INTEGER NOT NULL DEFAULT 0;",
    /* 9: the sessions whose own extensions an earlier goosed kept with their headers and envs
     * in plain text (their settings name extensions added), looked at once here; the start
     * seals them (sessions_unsealed), and a session leaves the list when its settings are next
     * written (all written since are sealed) or when it is deleted */
    "CREATE TABLE sessions_unsealed (id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE "
    "CASCADE) WITHOUT ROWID;"
    "INSERT INTO sessions_unsealed SELECT id FROM sessions WHERE instr(settings, '\"add\"') > 0;"
    "CREATE TRIGGER sessions_sealed AFTER UPDATE OF settings ON sessions BEGIN"
    "  DELETE FROM sessions_unsealed WHERE id = NEW.id;"
    "END;",
    /* 10: a number that every change of a user's own settings moves on (their removal too, by
     * the cascade), so that every goosed on this file sees that another changed them */
    "CREATE TABLE user_items_version (v INTEGER NOT NULL);"
    "INSERT INTO user_items_version VALUES (0);"
    "CREATE TRIGGER user_items_added AFTER INSERT ON user_items BEGIN"
    "  UPDATE user_items_version SET v = v + 1;"
    "END;"
    "CREATE TRIGGER user_items_changed AFTER UPDATE ON user_items BEGIN"
    "  UPDATE user_items_version SET v = v + 1;"
    "END;"
    "CREATE TRIGGER user_items_removed AFTER DELETE ON user_items BEGIN"
    "  UPDATE user_items_version SET v = v + 1;"
    "END;",
    /* 11: the sessions whose settings name extensions added, listed again for the start to seal
     * (sessions_unsealed): an earlier goosed sealed their values for no user in particular (one
     * copied into another user's session opened there), and kept those given at the session's
     * creation in plain text; each is sealed again for the session's owner */
    "INSERT OR IGNORE INTO sessions_unsealed SELECT id FROM sessions"
    "  WHERE instr(settings, '\"add\"') > 0;",
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
    /* The session a write is for (appends), or that it deletes (deletes jumps ahead of the
     * queued writes for their session); NULL for others. */
    const char *session_id;
    bool deletes;
    const store_session *made; /* a session it creates: its owner is remembered once durable */
    uint64_t gen;              /* owners_gen when made was queued */
    uint64_t batch_t0;         /* the first op of a batch: when the writer began it (metrics) */
    uint64_t commit_by;        /* 0: commit as soon as the syncer is free; else clock_mono_ns()
                                * by which it must be committed (message_append_async within_ms) */
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

#define HEALTH_WRITE_S 60 /* how long a failed write makes /api/health answer 503 */

struct sqlite_store;
/* err (a write refused as read-only) with the files of the store goosed may not write named:
 * SQLite makes goosed.db-wal and -shm with goosed.db's mode, so a goosed.db once read-only leaves
 * them so after it is writable again, and only they still refuse. */
static void readonly_why(struct sqlite_store *ss, char err[256]);

typedef struct sqlite_store {
    store base;
    char dir[PATH_MAX];
    char path[PATH_MAX];   /* dir/goosed.db */
    char legacy[PATH_MAX]; /* dir/sessions.db */
    size_t queue_max;
    pthread_mutex_t mu;    /* guards everything below */
    pthread_cond_t work;   /* the writer waits here for writes */
    pthread_cond_t done;   /* writers' callers wait here for their results */
    pthread_cond_t opened; /* close waits here for an opening under way to end */
    bool open;
    bool opening; /* one caller is opening the store, without holding mu */
    bool stopping;
    uint64_t last_try; /* clock_mono_ns() at the end of the last failed attempt to open; 0: none */
    char open_err[PATH_MAX + 512];
    pthread_t writer;
    pthread_t syncer;
    pthread_cond_t committed;           /* the syncer waits here for committed batches */
    write_op *unsynced, *unsynced_tail; /* committed, not yet known to be durable */
    size_t nunsynced;
    bool writer_gone; /* the writer has stopped: the syncer stops once unsynced is empty */
    bool syncing;     /* the syncer is in an fdatasync */
    bool wal;         /* journal_mode is WAL: the syncer makes commits durable */
    int wal_fd;       /* goosed.db-wal while wal; else -1 */
    conn *wconn;
    write_op *head, *tail;
    size_t nqueued;         /* writes in head..tail */
    uint64_t batches;       /* transactions the writer ran, one per batch */
    uint64_t writes;        /* writes in them */
    size_t last_batch;      /* writes in the last one */
    time_t write_failed_at; /* when the last batch failed to be stored (disk full), or 0 */
    char write_err[256];    /* why, for /api/health */
    conn *idle;             /* idle read connections */
    int nidle;
    /* Who owns which session, remembered: a session's owner never changes, and every request
     * about a session asks it first (auth). A slot per hash of the id, the last one asked for
     * or made winning it; a delete forgets its session once durable and moves owners_gen on,
     * so that a read begun before it cannot put the session back. */
    pthread_mutex_t owners_mu;
    struct owner_slot *owners; /* OWNERS slots */
    uint64_t owners_gen;
} sqlite_store;

#define OWNERS 4096 /* a power of two: 4096 × 74 bytes */

struct owner_slot {
    char id[UUID_STR_LEN]; /* "" empty */
    char owner[UUID_STR_LEN];
};

static struct owner_slot *owner_slot_of(sqlite_store *ss, const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &ss->owners[h & (OWNERS - 1)];
}

/* Remembers id's owner, unless a delete happened since gen was read. */
static void owner_remember(sqlite_store *ss, const char *id, const char *owner, uint64_t gen)
{
    if (!ss->owners || strlen(id) >= UUID_STR_LEN || strlen(owner) >= UUID_STR_LEN) return;
    pthread_mutex_lock(&ss->owners_mu);
    if (gen == ss->owners_gen) {
        struct owner_slot *o = owner_slot_of(ss, id);
        memcpy(o->id, id, strlen(id) + 1);
        memcpy(o->owner, owner, strlen(owner) + 1);
    }
    pthread_mutex_unlock(&ss->owners_mu);
}

static uint64_t owners_gen(sqlite_store *ss)
{
    pthread_mutex_lock(&ss->owners_mu);
    uint64_t gen = ss->owners_gen;
    pthread_mutex_unlock(&ss->owners_mu);
    return gen;
}

static void owner_forget(sqlite_store *ss, const char *id)
{
    if (!ss->owners) return;
    pthread_mutex_lock(&ss->owners_mu);
    ss->owners_gen++;
    struct owner_slot *o = owner_slot_of(ss, id);
    if (!strcmp(o->id, id)) o->id[0] = '\0';
    pthread_mutex_unlock(&ss->owners_mu);
}

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

/* How long a statement waits for a lock another connection holds (a checkpoint, another
 * goosed's write, a backup) before it fails with "database is locked". */
#define BUSY_MS 5000
/* While the store is being opened: an open attempt runs on the thread of the call that needed
 * the store (an HTTP thread, or start-up), and the next one a second after it failed; a file
 * another program keeps locked fails it after this, instead of holding that thread for BUSY_MS
 * each time (at start-up, once per step that reads the store: about 20 s before listening). */
#define OPEN_BUSY_MS 250

/* Opens name (a path, or a file: URI) with flags; NULL with err set on failure. */
static conn *conn_open_raw(const char *name, int flags, char *err, size_t errlen)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int rc = sqlite3_open_v2(name, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", name,
                 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        conn_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, BUSY_MS);
    return c;
}

#define READER_MMAP "268435456" /* 256 MiB */

/* A read connection to path (query_only). Its reads map the file (up to READER_MMAP bytes of
 * it) instead of copying every page out of the kernel with pread: a long history read costs
 * about 40% less CPU. The mapped pages are the page cache's, counted in RSS as file pages. NULL
 * with err set on failure. */
static void readonly_why(struct sqlite_store *ss, char err[256])
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    char names[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        char p[PATH_MAX + 8];
        snprintf(p, sizeof p, "%s%s", ss->path, sfx[i]);
        if (access(p, F_OK) == 0 && access(p, W_OK) != 0) {
            int w = snprintf(names + used, sizeof names - used, "%sgoosed.db%s", used ? ", " : "",
                             sfx[i]);
            if (w > 0 && (size_t)w < sizeof names - used) used += (size_t)w;
        }
    }
    if (!used) return;
    size_t n = strlen(err);
    snprintf(err + n, 256 - n, " (goosed may not write %s in %s)", names, ss->dir);
}

static conn *reader_open(const char *path, char *err, size_t errlen)
{
    conn *c = conn_open_raw(path, SQLITE_OPEN_READWRITE, err, errlen);
    char *msg = NULL;
    if (c && sqlite3_exec(c->db, "PRAGMA query_only=ON; PRAGMA mmap_size=" READER_MMAP ";", NULL,
                          NULL, &msg) != SQLITE_OK) {
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

/* The single integer sql answers; -1 with err set when it fails, 0 for NULL or no row. */
static long long query_int(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    long long v = 0;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        v = -1;
    }
    sqlite3_finalize(s);
    return v;
}

enum db_kind {
    DB_EMPTY,      /* no tables yet (a new file) */
    DB_OURS,       /* goosed's tables and schema_version */
    DB_FOREIGN,    /* an SQLite database of someone else's */
    DB_UNREADABLE, /* not an SQLite database, or it cannot be read */
};

/* What db holds, by reading only: its application_id, its tables (goosed's and no others), the
 * columns of sessions and messages, and schema_version (into *version, for DB_OURS). why says
 * what decided, for DB_FOREIGN and DB_UNREADABLE. */
static enum db_kind db_kind(sqlite3 *db, int *version, char *why, size_t whylen)
{
    *version = 0;
    long long app = query_int(db, "PRAGMA application_id", why, whylen);
    if (app < 0) return DB_UNREADABLE;
    if (app != 0 && app != STORE_SQLITE_APP_ID) {
        snprintf(why, whylen, "its application_id is 0x%08llx, not goosed's 0x%08x", app,
                 STORE_SQLITE_APP_ID);
        return DB_FOREIGN;
    }
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                           "LIKE 'sqlite\\_%' ESCAPE '\\'",
                           -1, &s, NULL) != SQLITE_OK) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(db));
        return DB_UNREADABLE;
    }
    bool sv = false, sessions = false, messages = false;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        if (!strcmp(name, "schema_version"))
            sv = true;
        else if (!strcmp(name, "sessions"))
            sessions = true;
        else if (!strcmp(name, "messages"))
            messages = true;
        else if (!strcmp(name, "users"))
            continue; /* schema version 3 on */
        else if (!strcmp(name, "user_items"))
            continue; /* schema version 4 on */
        else if (!strcmp(name, "session_counts"))
            continue; /* schema version 5 on */
        else if (!strcmp(name, "sessions_unsealed"))
            continue; /* schema version 9 on */
        else if (!strcmp(name, "user_items_version"))
            continue; /* schema version 10 on */
        else {
            snprintf(why, whylen, "it has a table '%.64s' goosed does not make", name);
            sqlite3_finalize(s);
            return DB_FOREIGN;
        }
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        snprintf(why, whylen, "%s", sqlite3_errmsg(db));
        return DB_UNREADABLE;
    }
    long long v = sv ? query_int(db, "SELECT max(version) FROM schema_version", why, whylen) : 0;
    if (v < 0) return DB_UNREADABLE;
    if (!sessions && !messages && v == 0) return DB_EMPTY; /* schema_version alone: a fresh file */
    if (!sessions || !messages || !sv || v < 1) {
        snprintf(why, whylen, "it lacks goosed's tables (sessions, messages, schema_version)");
        return DB_FOREIGN;
    }
    long long cols = query_int(db,
                               "SELECT (SELECT count(*) FROM pragma_table_info('sessions') WHERE "
                               "name IN ('id', 'working_dir', 'created_us', 'updated_us', "
                               "'message_count')) + (SELECT count(*) FROM "
                               "pragma_table_info('messages') WHERE name IN ('id', 'session_id', "
                               "'seq', 'role', 'content', 'created_us'))",
                               why, whylen);
    if (cols < 0) return DB_UNREADABLE;
    if (cols != 11) {
        snprintf(why, whylen, "its sessions and messages tables are not goosed's (no created_us)");
        return DB_FOREIGN;
    }
    *version = v > INT_MAX ? INT_MAX : (int)v;
    return DB_OURS;
}

/* The schema version of db (0: a new file, whose schema_version the first migration makes), or
 * -1 with err set. */
static long long schema_version(sqlite3 *db, char *err, size_t errlen)
{
    long long have = query_int(
        db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        err, errlen);
    return have > 0 ? query_int(db, "SELECT max(version) FROM schema_version", err, errlen) : have;
}

/* Brings db's schema up to date: every migration it lacks, in one transaction (one sync; all or
 * none, the version read again inside it, so that two goosed opening one file at once do not
 * both migrate it). A file already up to date takes no write lock. */
static gd_err migrate(sqlite3 *db, char *err, size_t errlen)
{
    long long v = schema_version(db, err, errlen);
    if (v < 0) return GD_ESTORE;
    if (v < NMIGRATIONS) {
        if (exec_err(db, "BEGIN IMMEDIATE", err, errlen)) return GD_ESTORE;
        long long from = v = schema_version(db, err, errlen);
        bool failed = v < 0;
        for (; !failed && v < NMIGRATIONS; v++)
            failed = exec_err(db, migrations[v], err, errlen) != GD_OK;
        if (!failed && from < NMIGRATIONS) {
            char bump[256];
            snprintf(bump, sizeof bump,
                     "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
                     "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d);"
                     "PRAGMA application_id = %d;",
                     NMIGRATIONS, STORE_SQLITE_APP_ID);
            failed = exec_err(db, bump, err, errlen) || exec_err(db, "COMMIT", err, errlen);
        } else if (!failed) {
            failed = exec_err(db, "COMMIT", err, errlen); /* another goosed did it meanwhile */
        }
        if (failed) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return GD_ESTORE;
        }
        if (from < NMIGRATIONS)
            log_info("store", "migrated %s from schema version %lld to %d",
                     sqlite3_db_filename(db, "main"), from, NMIGRATIONS);
    }
    if (v > NMIGRATIONS) {
        snprintf(err, errlen,
                 "the database schema is version %lld, newer than this goosed knows (%d)", v,
                 NMIGRATIONS);
        return GD_ESTORE;
    }
    long long app = query_int(db, "PRAGMA application_id", err, errlen);
    if (app < 0) return GD_ESTORE;
    if (app != STORE_SQLITE_APP_ID) {
        char mark[64];
        snprintf(mark, sizeof mark, "PRAGMA application_id = %d", STORE_SQLITE_APP_ID);
        if (exec_err(db, mark, err, errlen)) return GD_ESTORE;
    }
    return GD_OK;
}

/* ---- opening ---- */

/* A file: URI for path with the query q, every byte but [A-Za-z0-9/._~-] percent-encoded. */
static void file_uri(const char *path, const char *q, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = (size_t)snprintf(out, len, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && o + 4 < len; p++) {
        if (isalnum(*p) || strchr("/._~-", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    snprintf(out + o, len - o, "?%s", q);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Makes a durable record of a rename in dir. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

/* An older goosed kept its database in sessions.db, the real Goose's name. If goosed.db does
 * not exist and sessions.db is goosed's (told by reading it read-only), moves it there (its WAL
 * checkpointed into it first). Anything else named sessions.db is left as it is. GD_ESTORE,
 * with err set, only when goosed's old database is there but cannot be moved now. */
static gd_err adopt_legacy(sqlite_store *ss, char *err, size_t errlen)
{
    struct stat old, cur;
    if (stat(ss->legacy, &old) != 0) return GD_OK;
    if (stat(ss->path, &cur) == 0) {
        if (cur.st_dev == old.st_dev && cur.st_ino == old.st_ino) {
            /* a move cut short between link() and unlink(): finish it */
            if (unlink(ss->legacy) == 0)
                log_info("store", "removed %s, a second name of %s left by an interrupted move",
                         ss->legacy, ss->path);
        }
        return GD_OK;
    }

    /* Tell whose it is without writing anything beside it: with no WAL, open it immutable (no
     * locks, no -shm); with one, as a plain reader, which reads the WAL too. */
    char wal[PATH_MAX + 8], shm[PATH_MAX + 8], uri[3 * PATH_MAX + 64], why[256];
    snprintf(wal, sizeof wal, "%s-wal", ss->legacy);
    snprintf(shm, sizeof shm, "%s-shm", ss->legacy);
    file_uri(ss->legacy, exists(wal) ? "mode=ro" : "mode=ro&immutable=1", uri, sizeof uri);
    conn *c = conn_open_raw(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, why, sizeof why);
    int version = 0;
    enum db_kind k = c ? db_kind(c->db, &version, why, sizeof why) : DB_UNREADABLE;
    conn_close(c);
    if (k != DB_OURS || version > NMIGRATIONS) {
        if (k == DB_OURS)
            snprintf(why, sizeof why, "its schema is version %d, newer than this goosed knows",
                     version);
        else if (k == DB_EMPTY)
            snprintf(why, sizeof why, "it has no tables");
        log_info("store", "%s is not goosed's (%s): left untouched", ss->legacy, why);
        return GD_OK;
    }

    /* It is goosed's: checkpoint its WAL and leave WAL mode, so the one file holds it all. That
     * needs it to be unused; again under the write lock, in case it changed meanwhile. */
    c = conn_open_raw(ss->legacy, SQLITE_OPEN_READWRITE, err, errlen);
    if (!c) return GD_ESTORE;
    gd_err e = GD_ESTORE;
    if (exec_err(c->db, "BEGIN IMMEDIATE", why, sizeof why)) {
        snprintf(err, errlen, "cannot move goosed's old database %s to %s: %s", ss->legacy,
                 ss->path, why);
        goto out;
    }
    k = db_kind(c->db, &version, why, sizeof why);
    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    if (k != DB_OURS || version > NMIGRATIONS) {
        e = GD_OK;
        goto out;
    }
    sqlite3_stmt *s = NULL;
    const char *mode = NULL;
    if (!exec_err(c->db, "PRAGMA wal_checkpoint(TRUNCATE)", why, sizeof why) &&
        sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=DELETE", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(s, 0);
    bool left_wal = mode && !strcmp(mode, "delete");
    if (!mode) snprintf(why, sizeof why, "%s", sqlite3_errmsg(c->db));
    sqlite3_finalize(s);
    if (!left_wal) {
        snprintf(err, errlen,
                 "cannot move goosed's old database %s to %s: %s (is another goosed using it?)",
                 ss->legacy, ss->path, mode ? "it stays in WAL mode" : why);
        goto out;
    }
    conn_close(c);
    c = NULL;
    /* link + unlink rather than rename, so a goosed.db made meanwhile is never replaced. */
    if (link(ss->legacy, ss->path) == 0) {
        unlink(ss->legacy);
    } else if (errno == EEXIST) {
        e = GD_OK;
        goto out;
    } else if (rename(ss->legacy, ss->path) != 0) { /* a file system without hard links */
        snprintf(err, errlen, "cannot move goosed's old database %s to %s: %s", ss->legacy,
                 ss->path, strerror(errno));
        goto out;
    }
    unlink(shm); /* a stale index; the WAL itself is gone with WAL mode */
    sync_dir(ss->dir);
    log_info("store",
             "moved goosed's database from %s to %s: sessions.db is the real Goose's name, and "
             "goosed now keeps a file of its own",
             ss->legacy, ss->path);
    e = GD_OK;
out:
    conn_close(c);
    return e;
}

/* mkdir -p dir, each missing level 0700. */
static gd_err make_dirs(const char *dir, char *err, size_t errlen)
{
    char failed[PATH_MAX];
    if (!dir[0]) {
        snprintf(err, errlen, "no data directory given");
        return GD_ESTORE;
    }
    if (fs_mkdirs(dir, 0700, failed, sizeof failed) == 0) return GD_OK;
    snprintf(err, errlen, "cannot create directory %s: %s", failed, strerror(errno));
    return GD_ESTORE;
}

/* The writer's connection to goosed.db, migrated and ready; NULL with err set. Slow (disk I/O,
 * maybe a busy wait on a lock): called without holding mu. */
static conn *writer_open(sqlite_store *ss, char *err, size_t errlen)
{
    if (ss->wal_fd >= 0) close(ss->wal_fd); /* an earlier attempt's */
    ss->wal_fd = -1;
    ss->wal = false;
    if (make_dirs(ss->dir, err, errlen) || adopt_legacy(ss, err, errlen)) return NULL;
    conn *c = conn_open_raw(ss->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errlen);
    if (!c) return NULL;
    sqlite3_busy_timeout(c->db, OPEN_BUSY_MS); /* BUSY_MS once open */
    /* Look before writing anything: a file that is not goosed's is left as it is. Closing the
     * last connection checkpoints the WAL into the database: with a WAL another program left
     * beside goosed.db (SQLite cannot tell it is not this file's), that close would write the
     * other database over goosed's. So no checkpoint on close until the look says ours. */
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    char why[256];
    int version;
    switch (db_kind(c->db, &version, why, sizeof why)) {
    case DB_EMPTY:
    case DB_OURS:
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
        break;
    case DB_FOREIGN: {
        char wal[PATH_MAX + 8];
        snprintf(wal, sizeof wal, "%s-wal", ss->path);
        snprintf(err, errlen, "%s is not goosed's database (%s): move it away%s%s%s", ss->path, why,
                 access(wal, F_OK) == 0 ? ", or first " : "", access(wal, F_OK) == 0 ? wal : "",
                 access(wal, F_OK) == 0 ? " beside it, which may be another database's log" : "");
        goto fail;
    }
    case DB_UNREADABLE:
        snprintf(err, errlen, "cannot read %s: %s", ss->path, why);
        goto fail;
    }
    /* secure_delete: what is deleted or replaced (a session deleted, a secret sealed in place
     * of its plain text) is overwritten with zeros, rather than left readable in the file's free
     * space (FAST left it in pages that went to the free list). */
    if (exec_err(c->db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
                 "PRAGMA secure_delete=ON;",
                 why, sizeof why)) {
        snprintf(err, errlen, "cannot set up %s: %s", ss->path, why);
        goto fail;
    }
    if (migrate(c->db, why, sizeof why)) {
        snprintf(err, errlen, "cannot prepare %s: %s", ss->path, why);
        goto fail;
    }
    /* In WAL mode the syncer makes each commit durable (see the top of this file). */
    sqlite3_stmt *q;
    ss->wal = false;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &q, NULL) == SQLITE_OK) {
        ss->wal = sqlite3_step(q) == SQLITE_ROW &&
                  !strcmp((const char *)sqlite3_column_text(q, 0), "wal");
        sqlite3_finalize(q);
    }
    if (ss->wal) {
        /* The migrations made the WAL; it stays (the same file, reused from its start after a
         * checkpoint) as long as this connection is open. */
        char wal[PATH_MAX + 8];
        snprintf(wal, sizeof wal, "%s-wal", ss->path);
        ss->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
        if (ss->wal_fd < 0) {
            log_warn("store", "cannot open %s: %s", wal, strerror(errno));
            ss->wal = false;
        } else if (exec_err(c->db, "PRAGMA synchronous=NORMAL;", why, sizeof why)) {
            close(ss->wal_fd);
            ss->wal_fd = -1;
            ss->wal = false;
        } else {
            sync_dir(ss->dir); /* the WAL's name, once */
        }
    }
    if (!ss->wal)
        log_warn("store", "%s: every commit syncs itself (no WAL to sync apart: slower)", ss->path);
    sqlite3_busy_timeout(c->db, BUSY_MS);
    return c;
fail:
    conn_close(c);
    return NULL;
}

/* ---- the writer ---- */

/* Runs one of the writer's transaction statements: SQLITE_DONE, or the error with err set. */
static int tx(conn *c, enum stmt_id id, char *err, size_t errlen)
{
    sqlite3_stmt *s = stmt(c, id);
    int rc = s ? sqlite3_step(s) : SQLITE_ERROR;
    if (rc != SQLITE_DONE && err) snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
    if (s) sqlite3_reset(s);
    return rc;
}

/* Marks every write from op on that has not failed yet as failed with err. */
static void fail_writes(write_op *op, const char *err)
{
    for (; op; op = op->next)
        if (op->result == GD_OK) {
            op->result = GD_ESTORE;
            snprintf(op->err, sizeof op->err, "%s", err);
        }
}

/* Runs the writes of ops in the open transaction, each in a savepoint of its own (one that
 * fails is rolled back alone); when began is false (BEGIN failed) they fail with err. */
static void run_ops(conn *c, write_op *ops, bool began, const char *err)
{
    for (write_op *op = ops; op; op = op->next) {
        op->err[0] = '\0';
        if (!began) {
            op->result = GD_ESTORE;
            snprintf(op->err, sizeof op->err, "%s", err);
            continue;
        }
        tx(c, ST_TX_SAVEPOINT, NULL, 0);
        op->result = op->fn(c, op->arg, op->err, sizeof op->err);
        if (op->result) tx(c, ST_TX_ROLLBACK_TO, NULL, 0);
        tx(c, ST_TX_RELEASE, NULL, 0);
    }
}

/* The most writes one transaction takes before it is committed even while a sync runs. */
#define BATCH_MAX 4096

/* The writer: runs every queued write at once in the open transaction (BEGIN when none is
 * open), and commits that transaction as one batch when the syncer is free (or the batch is
 * BATCH_MAX writes, or the store is stopping), handing it to the syncer; a batch of writes that
 * may all wait (within_ms) is committed when the first of them must be, or sooner with a write
 * that cannot wait: a burst of such writes shares a few commits instead of taking one each. While a
 * sync runs, the writes that arrive meanwhile are run and wait in the open transaction: they would
 * wait for that sync anyway, and one commit then writes the pages they share once for them all (a
 * commit costs per page touched, not per write). */
static void *writer_main(void *arg)
{
    sqlite_store *ss = arg;
    conn *c = NULL; /* ss->wconn, set (under mu) once both threads started */
    write_op *open = NULL, *open_tail = NULL; /* run, not yet committed */
    size_t open_n = 0;
    bool open_urgent = false;      /* a write in it cannot wait */
    uint64_t open_by = UINT64_MAX; /* else: when the first of its writes must be committed */
    bool began = false;
    char err[256] = "";
    uint64_t t0 = 0;
    pthread_mutex_lock(&ss->mu);
    for (;;) {
        /* An open batch is committed as soon as the syncer is free, unless every write in it
         * may wait (within_ms): then when the first of them must be, or when a write that
         * cannot wait joins it, whichever comes first. */
        while (!ss->head && !ss->stopping) {
            if (open && !ss->syncing) {
                if (open_urgent || open_n >= BATCH_MAX) break;
                uint64_t now = clock_mono_ns();
                if (now >= open_by) break;
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until); /* the condition's clock */
                uint64_t ns = (uint64_t)until.tv_nsec + (open_by - now);
                until.tv_sec += (time_t)(ns / 1000000000u);
                until.tv_nsec = (long)(ns % 1000000000u);
                pthread_cond_timedwait(&ss->work, &ss->mu, &until);
            } else {
                pthread_cond_wait(&ss->work, &ss->mu);
            }
        }
        bool commit_now = open && (ss->stopping || open_n >= BATCH_MAX ||
                                   (!ss->syncing && (open_urgent || clock_mono_ns() >= open_by)));
        if (ss->head && !commit_now) {
            write_op *ops = ss->head, *last = ss->tail;
            size_t n = ss->nqueued;
            c = ss->wconn;
            ss->head = ss->tail = NULL;
            ss->nqueued = 0;
            metrics_gauge_set(MG_STORE_QUEUE, 0);
            pthread_mutex_unlock(&ss->mu);
            if (!open) {
                t0 = clock_mono_ns();
                began = tx(c, ST_TX_BEGIN, err, sizeof err) == SQLITE_DONE;
            }
            run_ops(c, ops, began, err);
            for (write_op *op = ops; op; op = op->next) {
                if (!op->commit_by)
                    open_urgent = true;
                else if (op->commit_by < open_by)
                    open_by = op->commit_by;
                if (op == last) break;
            }
            if (open_tail)
                open_tail->next = ops;
            else
                open = ops;
            open_tail = last;
            open_n += n;
            pthread_mutex_lock(&ss->mu);
            continue; /* more may have come meanwhile; the sync may have ended */
        }
        if (!open) break; /* stopping, and nothing left to write */
        pthread_mutex_unlock(&ss->mu);
        if (began && tx(c, ST_TX_COMMIT, err, sizeof err) != SQLITE_DONE) {
            tx(c, ST_TX_ROLLBACK, NULL, 0);
            log_error("store", "commit of %zu write(s) failed: %s", open_n, err);
            fail_writes(open, err);
        }
        log_trace("store", "committed %zu write(s)", open_n);
        open->batch_t0 = t0; /* the syncer observes BEGIN to durable */
        pthread_mutex_lock(&ss->mu);
        ss->batches++;
        ss->writes += open_n;
        ss->last_batch = open_n;
        if (ss->unsynced_tail)
            ss->unsynced_tail->next = open;
        else
            ss->unsynced = open;
        ss->unsynced_tail = open_tail;
        ss->nunsynced += open_n;
        open = open_tail = NULL;
        open_n = 0;
        open_urgent = false;
        open_by = UINT64_MAX;
        began = false;
        pthread_cond_signal(&ss->committed);
    }
    ss->writer_gone = true;
    pthread_cond_signal(&ss->committed);
    pthread_mutex_unlock(&ss->mu);
    return NULL;
}

/* How the syncer makes the WAL durable (a unit test holds a sync open with its own). */
static int (*sync_wal)(int fd) = fdatasync;

/* The syncer: makes every batch committed so far durable with one fdatasync of the WAL, then
 * answers their writes. */
static void *syncer_main(void *arg)
{
    sqlite_store *ss = arg;
    pthread_mutex_lock(&ss->mu);
    for (;;) {
        while (!ss->unsynced && !ss->writer_gone)
            pthread_cond_wait(&ss->committed, &ss->mu);
        if (!ss->unsynced) break; /* the writer stopped, and everything is answered */
        write_op *batch = ss->unsynced;
        ss->unsynced = ss->unsynced_tail = NULL;
        ss->nunsynced = 0;
        ss->syncing = true; /* the writer holds its next batch open meanwhile */
        int fd = ss->wal ? ss->wal_fd : -1;
        pthread_mutex_unlock(&ss->mu);
        if (fd >= 0 && sync_wal(fd) != 0) {
            char err[256];
            snprintf(err, sizeof err, "cannot make the write durable: fdatasync of %s-wal: %s",
                     ss->path, strerror(errno));
            log_error("store", "%s", err);
            for (write_op *op = batch; op; op = op->next)
                if (op->result == GD_OK) {
                    op->result = GD_ESTORE;
                    snprintf(op->err, sizeof op->err, "%s", err);
                }
        }
        uint64_t now = clock_mono_ns();
        for (write_op *op = batch; op; op = op->next)
            if (op->batch_t0) metrics_store_commit(now - op->batch_t0);
        write_op *async = NULL;
        pthread_mutex_lock(&ss->mu);
        ss->syncing = false;
        pthread_cond_signal(&ss->work); /* the writer may commit what it holds */
        /* what /api/health reports: whether the last batch could be stored */
        ss->write_failed_at = 0;
        for (write_op *op = batch; op; op = op->next)
            if (op->result == GD_ESTORE && strstr(op->err, "readonly")) readonly_why(ss, op->err);
        for (write_op *op = batch; op; op = op->next)
            if (op->result == GD_ESTORE) {
                ss->write_failed_at = time(NULL);
                snprintf(ss->write_err, sizeof ss->write_err, "%s",
                         op->err[0] ? op->err : gd_strerror(op->result));
                break;
            }
        for (write_op *op = batch, *next; op; op = next) {
            next = op->next; /* op belongs to its caller once done is set */
            if (op->made && op->result == GD_OK)
                owner_remember(ss, op->made->id, op->made->user_id, op->gen);
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

/* Opens the store if it is not open yet (by one caller at a time, the next attempt a second
 * after a failed one ended; the others answer GD_ESTORE meanwhile). The I/O runs without holding
 * mu. */
static gd_err ensure_open(sqlite_store *ss)
{
    pthread_mutex_lock(&ss->mu);
    const char *why = NULL;
    uint64_t now = clock_mono_ns();
    if (ss->open)
        why = "";
    else if (ss->stopping)
        why = "the store is closing";
    else if (ss->opening)
        why = "the store is opening (another call is opening it now)";
    else if (ss->last_try && now - ss->last_try < 1000000000u)
        why = ss->open_err;
    if (why) {
        if (why[0]) store_set_errmsg("%s", why);
        pthread_mutex_unlock(&ss->mu);
        return why[0] ? GD_ESTORE : GD_OK;
    }
    ss->opening = true;
    pthread_mutex_unlock(&ss->mu);

    char err[sizeof ss->open_err];
    conn *w = writer_open(ss, err, sizeof err);
    /* The writer waits for work under mu, and work is queued only once open is set. */
    if (w && pthread_create(&ss->syncer, NULL, syncer_main, ss) != 0) {
        snprintf(err, sizeof err, "cannot start the store's syncer thread");
        conn_close(w);
        w = NULL;
    } else if (w && pthread_create(&ss->writer, NULL, writer_main, ss) != 0) {
        snprintf(err, sizeof err, "cannot start the store's writer thread");
        pthread_mutex_lock(&ss->mu);
        ss->writer_gone = true;
        pthread_cond_signal(&ss->committed);
        pthread_mutex_unlock(&ss->mu);
        pthread_join(ss->syncer, NULL);
        ss->writer_gone = false;
        conn_close(w);
        w = NULL;
    }

    pthread_mutex_lock(&ss->mu);
    ss->opening = false;
    if (w) {
        ss->wconn = w;
        ss->open = true;
    } else {
        snprintf(ss->open_err, sizeof ss->open_err, "%s", err);
        ss->last_try = clock_mono_ns(); /* a second from now, not from its start */
    }
    pthread_cond_broadcast(&ss->opened);
    pthread_mutex_unlock(&ss->mu);
    if (!w) {
        log_error("store", "%s", err);
        store_set_errmsg("%s", err);
        return GD_ESTORE;
    }
    log_info("store", "sessions stored in %s", ss->path);
    return GD_OK;
}

/* Appends op to the writer's queue and wakes the writer: GD_EBUSY when the queue is full,
 * GD_ESTORE when the store is closing (store_errmsg() set). A delete goes before the first
 * queued write for its session, so those find the session gone. Caller holds mu. */
static gd_err enqueue_locked(sqlite_store *ss, write_op *op)
{
    if (ss->stopping || !ss->open) {
        store_set_errmsg("the store is closing");
        return GD_ESTORE;
    }
    if (ss->nqueued >= ss->queue_max) {
        store_set_errmsg("the store's write queue is full (%zu writes waiting)", ss->nqueued);
        return GD_EBUSY;
    }
    write_op **at = ss->tail ? &ss->tail->next : &ss->head;
    if (op->deletes && op->session_id)
        for (at = &ss->head; *at; at = &(*at)->next)
            if ((*at)->session_id && !strcmp((*at)->session_id, op->session_id)) break;
    op->next = *at;
    *at = op;
    if (!op->next) ss->tail = op;
    ss->nqueued++;
    metrics_gauge_set(MG_STORE_QUEUE, (long)ss->nqueued);
    pthread_cond_signal(&ss->work);
    return GD_OK;
}

/* Queues a write and waits until it is durable (or failed). */
static gd_err submit(sqlite_store *ss, write_op *op)
{
    gd_err e = ensure_open(ss);
    if (e) return e;
    pthread_mutex_lock(&ss->mu);
    op->done = false;
    e = enqueue_locked(ss, op);
    while (!e && !op->done)
        pthread_cond_wait(&ss->done, &ss->mu);
    pthread_mutex_unlock(&ss->mu);
    if (e) return e;
    if (op->result) store_set_errmsg("%s", op->err[0] ? op->err : gd_strerror(op->result));
    return op->result;
}

/* Queues a heap-allocated op with on_done set; the writer calls it and frees op. If the store
 * is down or its queue full, calls it at once, in the caller. */
static void submit_async(sqlite_store *ss, write_op *op)
{
    gd_err e = ensure_open(ss);
    if (!e) {
        pthread_mutex_lock(&ss->mu);
        e = enqueue_locked(ss, op);
        pthread_mutex_unlock(&ss->mu);
    }
    if (e) {
        op->on_done(op->ud, e, store_errmsg());
        if (op->free_arg) op->free_arg(op->free_ptr);
        free(op);
    }
}

/* ---- readers ---- */

static conn *reader_get(sqlite_store *ss)
{
    if (ensure_open(ss)) return NULL;
    pthread_mutex_lock(&ss->mu);
    conn *c = ss->idle;
    if (c) {
        ss->idle = c->next;
        ss->nidle--;
    }
    pthread_mutex_unlock(&ss->mu);
    if (c) return c;
    char err[PATH_MAX + 256];
    c = reader_open(ss->path, err, sizeof err);
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

/* When a read last found the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB), 0: never. One store
 * per process; /api/health answers with it from then on. */
static _Atomic long long damaged_at;

#define DAMAGED_HOW                                                                                \
    "it will not mend by itself: stop goosed and restore goosed.db from a backup (or recover "     \
    "what "                                                                                        \
    "it holds with sqlite3's .recover)"

static gd_err read_failed(conn *c)
{
    int rc = sqlite3_errcode(c->db);
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
        atomic_store(&damaged_at, (long long)time(NULL));
        store_set_errmsg("the store is damaged (%s); " DAMAGED_HOW, sqlite3_errmsg(c->db));
    } else {
        store_set_errmsg("%s", sqlite3_errmsg(c->db));
    }
    return GD_ESTORE;
}

static void row_to_session(sqlite3_stmt *s, store_session *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(out->working_dir, sizeof out->working_dir, "%s",
             (const char *)sqlite3_column_text(s, 2));
    out->created_us = sqlite3_column_int64(s, 3);
    out->created_at = (time_t)(out->created_us / 1000000);
    out->updated_at = (time_t)(sqlite3_column_int64(s, 4) / 1000000);
    out->message_count = (long)sqlite3_column_int64(s, 5);
    out->input_tokens = (long)sqlite3_column_int64(s, 6);
    out->output_tokens = (long)sqlite3_column_int64(s, 7);
    snprintf(out->user_id, sizeof out->user_id, "%s", (const char *)sqlite3_column_text(s, 8));
}

/* A message as messages_list gives it, from the columns id, role, content, created_us of s
 * starting at col. A new object the caller owns; NULL when out of memory. */
static json_t *row_to_message(sqlite3_stmt *s, int col)
{
    char when[RFC3339_LEN];
    clock_rfc3339((time_t)(sqlite3_column_int64(s, col + 3) / 1000000), when);
    json_t *content = json_loads((const char *)sqlite3_column_text(s, col + 2), 0, NULL);
    return json_pack("{s:s, s:s, s:o, s:s}", "id", sqlite3_column_text(s, col), "role",
                     sqlite3_column_text(s, col + 1), "content", content ? content : json_array(),
                     "created_at", when);
}

/* ---- operations ---- */

static gd_err sq_health(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, ST_SESSION_COUNT); /* a read of the store, and a cheap one */
    gd_err e = !s ? GD_ESTORE : sqlite3_step(s) == SQLITE_ROW ? GD_OK : read_failed(c);
    if (s) stmt_done(s);
    reader_put(ss, c);
    /* Reads working is not enough: a full disk fails every write. Until a later write is
     * stored (or HEALTH_WRITE_S pass with none tried), the last failure is the answer. */
    long long dmg = atomic_load(&damaged_at);
    if (!e && dmg) {
        store_set_errmsg("the store was found damaged %lld s ago; " DAMAGED_HOW,
                         (long long)time(NULL) - dmg);
        return GD_ESTORE;
    }
    pthread_mutex_lock(&ss->mu);
    time_t at = ss->write_failed_at;
    if (!e && at && time(NULL) - at < HEALTH_WRITE_S) {
        store_set_errmsg("the last write failed %lld s ago: %s", (long long)(time(NULL) - at),
                         ss->write_err);
        e = GD_ESTORE;
    }
    pthread_mutex_unlock(&ss->mu);
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

static gd_err settings_row(conn *c, const char *id, json_t **out)
{
    sqlite3_stmt *s = stmt(c, ST_SETTINGS_GET);
    if (!s) return GD_ESTORE;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    gd_err e;
    if (rc == SQLITE_ROW) {
        json_t *o = json_loads((const char *)sqlite3_column_text(s, 0), 0, NULL);
        *out = json_is_object(o) ? o : json_object();
        if (o && !json_is_object(o)) json_decref(o);
        e = *out ? GD_OK : GD_ENOMEM;
    } else {
        e = rc == SQLITE_DONE ? GD_ENOTFOUND : read_failed(c);
    }
    stmt_done(s);
    return e;
}

static gd_err sq_session_owner(store *st, const char *id, char owner[UUID_STR_LEN])
{
    sqlite_store *ss = (sqlite_store *)st;
    uint64_t gen = 0;
    if (ss->owners) {
        pthread_mutex_lock(&ss->owners_mu);
        struct owner_slot *o = owner_slot_of(ss, id);
        bool hit = o->id[0] && !strcmp(o->id, id);
        if (hit) memcpy(owner, o->owner, UUID_STR_LEN);
        gen = ss->owners_gen;
        pthread_mutex_unlock(&ss->owners_mu);
        if (hit) return GD_OK;
    }
    store_session s;
    gd_err e = sq_session_get(st, id, &s);
    if (e) return e;
    memcpy(owner, s.user_id, UUID_STR_LEN);
    owner_remember(ss, id, s.user_id, gen);
    return GD_OK;
}

/* The session's summary (migration 8) into *sum, within the caller's read. */
static gd_err summary_row(conn *c, const char *id, store_summary *sum)
{
    *sum = (store_summary){0};
    sqlite3_stmt *s = stmt(c, ST_SUMMARY_GET);
    if (!s) return GD_ESTORE;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    gd_err e;
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        long long n = sqlite3_column_int64(s, 1);
        e = GD_OK;
        if (t && n > 0) {
            if ((sum->text = strdup(t)))
                sum->count = n > LONG_MAX ? LONG_MAX : (long)n;
            else
                e = GD_ENOMEM;
        }
    } else {
        e = rc == SQLITE_DONE ? GD_ENOTFOUND : read_failed(c);
    }
    stmt_done(s);
    return e;
}

struct summary_op {
    write_op op;
    char session_id[UUID_STR_LEN];
    char *text;
    long count;
};

static gd_err w_summary_set(conn *c, void *arg, char *err, size_t errlen)
{
    struct summary_op *u = arg;
    sqlite3_stmt *s = stmt(c, ST_SUMMARY_SET);
    if (!s) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(s, 1, u->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, u->text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, u->count);
    int rc = sqlite3_step(s);
    stmt_done(s);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    if (sqlite3_changes(c->db) == 0) {
        snprintf(err, errlen, "session '%s' not found", u->session_id);
        return GD_ENOTFOUND;
    }
    return GD_OK;
}

static void sq_session_summary_set_async(store *st, const char *id, const char *text, long count,
                                         store_done done, void *ud)
{
    struct summary_op *u = calloc(1, sizeof *u);
    char *copy = strdup(text);
    if (!u || !copy) {
        free(u);
        free(copy);
        done(ud, GD_ENOMEM, "out of memory");
        return;
    }
    snprintf(u->session_id, sizeof u->session_id, "%s", id);
    u->text = copy;
    u->count = count;
    u->op.fn = w_summary_set;
    u->op.arg = u;
    u->op.session_id = u->session_id;
    u->op.on_done = done;
    u->op.ud = ud;
    u->op.free_arg = free;
    u->op.free_ptr = copy;
    submit_async((sqlite_store *)st, &u->op);
}

static gd_err sq_session_settings_get(store *st, const char *id, json_t **out)
{
    sqlite_store *ss = (sqlite_store *)st;
    *out = NULL;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    gd_err e = settings_row(c, id, out);
    reader_put(ss, c);
    return e;
}

typedef struct {
    const char *id;
    const char *text;
} settings_arg;

static gd_err w_settings_set(conn *c, void *arg, char *err, size_t errlen)
{
    settings_arg *a = arg;
    sqlite3_stmt *st = stmt(c, ST_SETTINGS_SET);
    if (!st) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    return sqlite3_changes(c->db) ? GD_OK : GD_ENOTFOUND;
}

static gd_err sq_session_settings_set(store *st, const char *id, json_t *settings)
{
    char *text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) return GD_ENOMEM;
    settings_arg a = {id, text};
    write_op op = {.fn = w_settings_set, .arg = &a, .session_id = id};
    gd_err e = submit((sqlite_store *)st, &op);
    free(text);
    return e;
}

/* At most max rows of s (bound) as sessions into *out and *n (freed by the caller with free());
 * *more says whether s had a row beyond them. GD_ENOMEM, or the read's error (nothing kept then).
 */
static gd_err collect_sessions(conn *c, sqlite3_stmt *s, size_t max, store_session **out, size_t *n,
                               bool *more)
{
    store_session *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    *more = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (cnt == max) {
            *more = true;
            rc = SQLITE_DONE;
            break;
        }
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : (max < 16 ? max : 16);
            store_session *grown = realloc(arr, ncap * sizeof *arr);
            if (!grown) {
                free(arr);
                store_set_errmsg("out of memory");
                return GD_ENOMEM;
            }
            arr = grown;
            cap = ncap;
        }
        row_to_session(s, &arr[cnt++]);
    }
    if (rc != SQLITE_DONE) {
        free(arr);
        return read_failed(c);
    }
    *out = arr;
    *n = cnt;
    return GD_OK;
}

/* session_list, of every session (owner NULL) or of one owner's. */
static gd_err session_list(store *st, const char *owner, long limit, long offset,
                           store_session **out, size_t *n, long *total)
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
    sqlite3_stmt *cs = NULL, *ls = NULL;
    /* One read transaction, so the count and the page agree. */
    if (tx(c, ST_READ_BEGIN, NULL, 0) != SQLITE_DONE) {
        e = read_failed(c);
        goto out;
    }
    if (!(cs = stmt(c, owner ? ST_SESSION_COUNT_OWNED : ST_SESSION_COUNT)) ||
        !(ls = stmt(c, owner ? ST_SESSION_LIST_OWNED : ST_SESSION_LIST)))
        goto out;
    if (owner) {
        sqlite3_bind_text(cs, 1, owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(ls, 3, owner, -1, SQLITE_STATIC);
    }
    if (sqlite3_step(cs) != SQLITE_ROW) {
        e = read_failed(c);
        goto out;
    }
    *total = (long)sqlite3_column_int64(cs, 0);
    sqlite3_bind_int64(ls, 1, limit);
    sqlite3_bind_int64(ls, 2, offset);
    bool more;
    e = collect_sessions(c, ls, (size_t)limit, out, n, &more);
out:
    if (cs) stmt_done(cs);
    if (ls) stmt_done(ls);
    tx(c, ST_READ_END, NULL, 0);
    reader_put(ss, c);
    return e;
}

/* A cursor is "<created_us>_<id>" of the last session of a page. */
static bool cursor_parse(const char *c, long long *us, char id[UUID_STR_LEN])
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)c[0])) return false;
    long long v = strtoll(c, &end, 10);
    if (errno || *end != '_' || !ids_is_uuid(end + 1)) return false;
    *us = v;
    snprintf(id, UUID_STR_LEN, "%s", end + 1);
    return true;
}

static gd_err sq_session_page(store *st, const char *owner, long limit, const char *after,
                              store_session **out, size_t *n, char next[STORE_CURSOR_LEN])
{
    sqlite_store *ss = (sqlite_store *)st;
    *out = NULL;
    *n = 0;
    next[0] = '\0';
    long long us = LLONG_MAX;
    char id[UUID_STR_LEN] = "g"; /* after every id: ids are lowercase hex and dashes */
    if (limit <= 0 || limit > 100000) {
        store_set_errmsg("limit must be from 1 to 100000");
        return GD_EINVAL;
    }
    if (after && after[0] && !cursor_parse(after, &us, id)) {
        store_set_errmsg("not a cursor of this server (pass next_cursor as it came)");
        return GD_EINVAL;
    }
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    gd_err e = GD_ESTORE;
    sqlite3_stmt *ps = stmt(c, owner ? ST_SESSION_PAGE_OWNED : ST_SESSION_PAGE);
    if (!ps) goto out;
    /* one more than the page: whether there is a next one */
    sqlite3_bind_int64(ps, 1, limit + 1);
    sqlite3_bind_int64(ps, 2, us);
    sqlite3_bind_text(ps, 3, id, -1, SQLITE_STATIC);
    if (owner) sqlite3_bind_text(ps, 4, owner, -1, SQLITE_STATIC);
    bool more;
    e = collect_sessions(c, ps, (size_t)limit, out, n, &more);
    if (!e && more)
        snprintf(next, STORE_CURSOR_LEN, "%lld_%s", (*out)[*n - 1].created_us, (*out)[*n - 1].id);
out:
    if (ps) stmt_done(ps);
    reader_put(ss, c);
    return e;
}

/* The one integer statement id answers (arg, when not NULL, bound to ?1) into *n. */
static gd_err read_count(sqlite_store *ss, enum stmt_id id, const char *arg, long *n)
{
    *n = 0;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, id);
    gd_err e = GD_ESTORE;
    if (s) {
        if (arg) sqlite3_bind_text(s, 1, arg, -1, SQLITE_STATIC);
        if (sqlite3_step(s) == SQLITE_ROW) {
            *n = (long)sqlite3_column_int64(s, 0);
            e = GD_OK;
        } else {
            e = read_failed(c);
        }
        stmt_done(s);
    }
    reader_put(ss, c);
    return e;
}

static gd_err sq_session_count(store *st, const char *owner, long *n)
{
    return read_count((sqlite_store *)st, owner ? ST_SESSION_COUNT_OWNED : ST_SESSION_COUNT, owner,
                      n);
}

static gd_err sq_session_list(store *st, long limit, long offset, store_session **out, size_t *n,
                              long *total)
{
    return session_list(st, NULL, limit, offset, out, n, total);
}

static gd_err sq_session_list_owned(store *st, const char *user_id, long limit, long offset,
                                    store_session **out, size_t *n, long *total)
{
    return session_list(st, user_id ? user_id : "", limit, offset, out, n, total);
}

/* Every row of s (bound, on c) as a JSON array in *out, made by row(s); GD_ENOMEM, or the read's
 * error. */
static gd_err collect_rows(conn *c, sqlite3_stmt *s, json_t *(*row)(sqlite3_stmt *s), json_t **out)
{
    json_t *arr = json_array();
    int rc = SQLITE_NOMEM;
    while (arr && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (json_array_append_new(arr, row(s))) break;
    }
    if (rc == SQLITE_DONE) {
        *out = arr;
        return GD_OK;
    }
    json_decref(arr);
    if (rc != SQLITE_ROW && rc != SQLITE_NOMEM) return read_failed(c);
    store_set_errmsg("out of memory");
    return GD_ENOMEM;
}

static json_t *message_row(sqlite3_stmt *s)
{
    return row_to_message(s, 0);
}

/* A row of ST_UNFINISHED: the session's id, then its last message. */
static json_t *unfinished_row(sqlite3_stmt *s)
{
    json_t *m = row_to_message(s, 1);
    json_t *row = m ? json_pack("{s:s, s:o}", "session_id", (const char *)sqlite3_column_text(s, 0),
                                "message", m)
                    : NULL;
    if (row && sqlite3_column_type(s, 5) != SQLITE_NULL) {
        json_t *p = row_to_message(s, 5);
        if (!p || json_object_set_new(row, "previous", p)) {
            json_decref(row);
            return NULL;
        }
    }
    return row;
}

/* Opens a read transaction on c (the session and its messages as of one moment), finds the
 * session (GD_ENOTFOUND when it is not there) and binds its id to list's ?1. *gs and *ms are
 * set as far as they were prepared; history_end releases them whatever happened. */
static gd_err history_begin(conn *c, const char *session_id, enum stmt_id list, sqlite3_stmt **gs,
                            sqlite3_stmt **ms)
{
    if (tx(c, ST_READ_BEGIN, NULL, 0) != SQLITE_DONE) return read_failed(c);
    if (!(*gs = stmt(c, ST_SESSION_GET)) || !(*ms = stmt(c, list))) return GD_ESTORE;
    sqlite3_bind_text(*gs, 1, session_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(*gs);
    if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? GD_ENOTFOUND : read_failed(c);
    sqlite3_bind_text(*ms, 1, session_id, -1, SQLITE_STATIC);
    return GD_OK;
}

static void history_end(conn *c, sqlite3_stmt *gs, sqlite3_stmt *ms)
{
    if (gs) stmt_done(gs);
    if (ms) stmt_done(ms);
    tx(c, ST_READ_END, NULL, 0);
}

static gd_err sq_session_read(store *st, const char *id, store_session *out, json_t **settings,
                              store_summary *summary, json_t **messages)
{
    sqlite_store *ss = (sqlite_store *)st;
    if (settings) *settings = NULL;
    if (summary) *summary = (store_summary){0};
    *messages = NULL;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *gs = NULL, *ms = NULL;
    gd_err e = history_begin(c, id, ST_MESSAGES_LIST, &gs, &ms);
    if (!e) row_to_session(gs, out);
    if (!e && settings) e = settings_row(c, id, settings);
    if (!e && summary) e = summary_row(c, id, summary);
    if (!e) e = collect_rows(c, ms, message_row, messages);
    history_end(c, gs, ms);
    reader_put(ss, c);
    if (e && settings) {
        json_decref(*settings);
        *settings = NULL;
    }
    if (e && summary) {
        free(summary->text);
        *summary = (store_summary){0};
    }
    return e;
}

static gd_err sq_messages_list(store *st, const char *session_id, json_t **out)
{
    store_session s;
    return sq_session_read(st, session_id, &s, NULL, NULL, out);
}

/* The created_at of a history's messages: clock_rfc3339, the date part kept from the last row
 * (a history's messages mostly share their day) and the time of day written by hand. */
typedef struct {
    long long day; /* the day of date[], in days since the epoch; LLONG_MIN: none yet */
    char date[12]; /* "2026-03-04T" and the NUL; "" when that day is out of RFC 3339's range */
} history_clock;

static void history_when(history_clock *hc, long long t, char out[RFC3339_LEN])
{
    long long day = t / 86400, sec = t % 86400;
    if (sec < 0) {
        sec += 86400;
        day--;
    }
    if (day != hc->day) {
        char whole[RFC3339_LEN];
        clock_rfc3339((time_t)(day * 86400), whole);
        /* clock_rfc3339 gives the epoch for a year it cannot write: the whole time is then the
         * epoch, not that date with this time of day. */
        bool clamped = day != 0 && strcmp(whole, "1970-01-01T00:00:00Z") == 0;
        memcpy(hc->date, whole, 11);
        hc->date[clamped ? 0 : 11] = '\0';
        hc->day = day;
    }
    if (!hc->date[0] || (time_t)t != t) {
        clock_rfc3339((time_t)t, out);
        return;
    }
    memcpy(out, hc->date, 11);
    int h = (int)(sec / 3600), m = (int)(sec / 60 % 60), sc = (int)(sec % 60);
    out[11] = (char)('0' + h / 10);
    out[12] = (char)('0' + h % 10);
    out[13] = ':';
    out[14] = (char)('0' + m / 10);
    out[15] = (char)('0' + m % 10);
    out[16] = ':';
    out[17] = (char)('0' + sc / 10);
    out[18] = (char)('0' + sc % 10);
    out[19] = 'Z';
    out[20] = '\0';
}

/* Whether the n bytes at s go into a JSON string as they are: no quote, backslash or control
 * character (what buf_json_string escapes). Eight bytes at a time: a byte below 0x20 is one that
 * borrows when 0x20 is taken from it while its top bit was clear, a quote or a backslash one that
 * the XOR with it turns to zero (exact for the word as a whole, which is all that is asked). */
static bool json_plain(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, tops = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        if ((((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & tops) return false;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') return false;
    }
    return true;
}

static char *put(char *p, const void *data, size_t n)
{
    memcpy(p, data, n);
    return p + n;
}

/* One message of ST_MESSAGES_PAGE as JSON text (after a comma unless first): the shape of
 * row_to_message, its content copied as stored. The store wrote every content as jansson's
 * compact text of an array (message append and import both check it), so the frame is checked,
 * not the whole text parsed again: a content that is not "[...]" (a file edited by hand) is
 * given as [] as row_to_message does. An id and a role with nothing to escape (those goosed
 * writes) go in with the rest at once, in one reservation. */
static gd_err message_text(sqlite3_stmt *s, history_clock *hc, buf *out, bool first)
{
    char when[RFC3339_LEN];
    history_when(hc, sqlite3_column_int64(s, 3) / 1000000, when);
    const char *content = (const char *)sqlite3_column_text(s, 2);
    size_t clen = content ? (size_t)sqlite3_column_bytes(s, 2) : 0;
    if (clen < 2 || content[0] != '[' || content[clen - 1] != ']' || memchr(content, 0, clen)) {
        content = "[]";
        clen = 2;
    }
    const char *id = (const char *)sqlite3_column_text(s, 0);
    size_t idlen = id ? (size_t)sqlite3_column_bytes(s, 0) : 0;
    const char *role = (const char *)sqlite3_column_text(s, 1);
    size_t rolelen = role ? (size_t)sqlite3_column_bytes(s, 1) : 0;
    if (!id) id = "";
    if (!role) role = "";
    static const char lead[] = ",{\"id\":\"", mid[] = "\",\"role\":\"",
                      body[] = "\",\"content\":", tail[] = ",\"created_at\":\"";
    size_t whenlen = RFC3339_LEN - 1;
    if (json_plain(id, idlen) && json_plain(role, rolelen)) {
        size_t need = sizeof lead - 1 + idlen + sizeof mid - 1 + rolelen + sizeof body - 1 + clen +
                      sizeof tail - 1 + whenlen + 2;
        gd_err e = buf_reserve(out, need);
        if (e) return e;
        char *p = out->data + out->len;
        p = first ? put(p, lead + 1, sizeof lead - 2) : put(p, lead, sizeof lead - 1);
        p = put(p, id, idlen);
        p = put(p, mid, sizeof mid - 1);
        p = put(p, role, rolelen);
        p = put(p, body, sizeof body - 1);
        p = put(p, content, clen);
        p = put(p, tail, sizeof tail - 1);
        p = put(p, when, whenlen);
        p = put(p, "\"}", 2);
        *p = '\0';
        out->len = (size_t)(p - out->data);
        return GD_OK;
    }
    gd_err e = buf_puts(out, first ? "{\"id\":" : ",{\"id\":");
    if (!e) e = buf_json_string(out, id, idlen);
    if (!e) e = buf_puts(out, ",\"role\":");
    if (!e) e = buf_json_string(out, role, rolelen);
    if (!e) e = buf_append(out, body + 1, sizeof body - 2);
    if (!e) e = buf_append(out, content, clen);
    if (!e) e = buf_append(out, tail, sizeof tail - 1);
    if (!e) e = buf_append(out, when, whenlen);
    if (!e) e = buf_append(out, "\"}", 2);
    return e;
}

/* How many messages of a history are written before the rest are sized after them. */
#define HISTORY_SAMPLE 64

/* The cursor of the page of limit messages after from, into next ("" when that page is the
 * last): the seq of its last message when another follows it. */
static gd_err page_next(conn *c, const char *session_id, long long from, long limit,
                        char next[STORE_CURSOR_LEN])
{
    sqlite3_stmt *s = stmt(c, ST_MESSAGES_NEXT);
    if (!s) return GD_ESTORE;
    sqlite3_bind_text(s, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, from);
    sqlite3_bind_int64(s, 3, limit - 1);
    long long last = 0;
    int rc = sqlite3_step(s), rows = 0;
    for (; rc == SQLITE_ROW && rows < 2; rc = sqlite3_step(s))
        if (rows++ == 0) last = sqlite3_column_int64(s, 0);
    gd_err e = rc == SQLITE_ROW || rc == SQLITE_DONE ? GD_OK : read_failed(c);
    stmt_done(s);
    if (!e && rows == 2) snprintf(next, STORE_CURSOR_LEN, "%lld", last);
    return e;
}

/* Hands the whole pieces at the start of out to p->fn; out keeps the rest, in a new buffer with
 * room for the next piece and the message that will cross its end. *handed: set once
 * anything has gone. */
static gd_err pieces_hand(buf *out, const store_pieces *p, bool *handed)
{
    size_t cut = out->len - out->len % p->size, rest = out->len - cut;
    buf nb;
    buf_init(&nb, out->cap);
    gd_err e = buf_reserve(&nb, p->size + p->size / 4);
    if (!e && rest) e = buf_append(&nb, out->data + cut, rest);
    if (e) {
        buf_free(&nb);
        return e;
    }
    out->data[cut] = '\0';
    char *text = buf_detach(out); /* never NULL: out holds a piece */
    buf_free(out);
    *out = nb;
    *handed = true;
    return p->fn(p->ud, text, cut);
}

static gd_err sq_messages_text(store *st, const char *session_id, long limit, const char *after,
                               buf *out, char next[STORE_CURSOR_LEN], const store_pieces *pieces)
{
    sqlite_store *ss = (sqlite_store *)st;
    next[0] = '\0';
    long long from = 0;
    if (after && after[0]) {
        char *end;
        errno = 0;
        from = isdigit((unsigned char)after[0]) ? strtoll(after, &end, 10) : -1;
        if (from < 0 || errno || *end) {
            store_set_errmsg("not a cursor of this server (pass next_cursor as it came)");
            return GD_EINVAL;
        }
    }
    if (limit < 0) {
        store_set_errmsg("limit must not be negative");
        return GD_EINVAL;
    }
    if (pieces && (!pieces->size || !pieces->fn)) {
        store_set_errmsg("pieces of no size, or no one to take them");
        return GD_EINVAL;
    }
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    size_t mark = out->len;
    bool handed = false;
    sqlite3_stmt *gs = NULL, *ms = NULL;
    history_clock hc = {.day = LLONG_MIN};
    int rc = SQLITE_DONE;
    gd_err e = history_begin(c, session_id, ST_MESSAGES_PAGE, &gs, &ms);
    if (!e && limit) e = page_next(c, session_id, from, limit, next);
    if (e) goto out;
    sqlite3_bind_int64(ms, 2, from);
    sqlite3_bind_int64(ms, 3, limit ? limit : -1);
    long long rows = sqlite3_column_int64(gs, 5); /* the session's message_count */
    if (limit && limit < rows) rows = limit;
    /* Whole: the rest sized after the first rows. In pieces: room for one and a message. */
    if (pieces)
        buf_ignore(buf_reserve(out, pieces->size + pieces->size / 4)); /* a hint, as below */
    e = buf_puts(out, "[");
    size_t start = out->len;
    long n = 0;
    while (!e && (rc = sqlite3_step(ms)) == SQLITE_ROW) {
        if (n == HISTORY_SAMPLE && rows > n && !pieces) /* 1/8 more than the first rows say */
            /* only a hint: past the cap or short of memory, the appends grow it as they need */
            buf_ignore(
                buf_reserve(out, (out->len - start) / (size_t)n * (size_t)(rows - n) / 8 * 9));
        e = message_text(ms, &hc, out, n++ == 0);
        if (!e && pieces && out->len >= pieces->size) e = pieces_hand(out, pieces, &handed);
    }
    if (!e) e = buf_puts(out, "]");
    if (!e && pieces && out->len >= pieces->size && rc == SQLITE_DONE)
        e = pieces_hand(out, pieces, &handed);
    if (!e && rc != SQLITE_ROW && rc != SQLITE_DONE) {
        e = read_failed(c);
    } else if (e == GD_ENOMEM || e == GD_ETOOBIG) {
        store_set_errmsg("%s", e == GD_ENOMEM ? "out of memory" : "the text is past its cap");
    }
out:
    if (e) {
        out->len = handed ? 0 : mark;
        if (out->data) out->data[out->len] = '\0';
        next[0] = '\0';
    }
    history_end(c, gs, ms);
    reader_put(ss, c);
    return e;
}

static gd_err sq_message_get(store *st, const char *session_id, const char *message_id,
                             json_t **out)
{
    sqlite_store *ss = (sqlite_store *)st;
    *out = NULL;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    gd_err e = GD_ESTORE;
    sqlite3_stmt *s = stmt(c, ST_MESSAGE_GET);
    if (s) {
        sqlite3_bind_text(s, 1, session_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, message_id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            e = (*out = row_to_message(s, 0)) ? GD_OK : GD_ENOMEM;
            if (e) store_set_errmsg("out of memory");
        } else if (rc == SQLITE_DONE) {
            store_set_errmsg("no message '%s' in session '%s'", message_id, session_id);
            e = GD_ENOTFOUND;
        } else {
            e = read_failed(c);
        }
        stmt_done(s);
    }
    reader_put(ss, c);
    return e;
}

/* Every row of statement which (it takes no parameters), each made into JSON by row, into a new
 * array *out. */
static gd_err all_rows(store *st, enum stmt_id which, json_t *(*row)(sqlite3_stmt *s), json_t **out)
{
    sqlite_store *ss = (sqlite_store *)st;
    *out = NULL;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, which);
    gd_err e = s ? collect_rows(c, s, row, out) : GD_ESTORE;
    if (s) stmt_done(s);
    reader_put(ss, c);
    return e;
}

static gd_err sq_sessions_unfinished(store *st, json_t **out)
{
    return all_rows(st, ST_UNFINISHED, unfinished_row, out);
}

static json_t *id_row(sqlite3_stmt *s)
{
    return json_string((const char *)sqlite3_column_text(s, 0));
}

static gd_err sq_sessions_unsealed(store *st, json_t **out)
{
    return all_rows(st, ST_UNSEALED, id_row, out);
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
    sqlite3_bind_text(st, 5, s->user_id, -1, SQLITE_STATIC);
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
    write_op op = {
        .fn = w_session_insert, .arg = &a, .made = s, .gen = owners_gen((sqlite_store *)st)};
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
    io->op.made = s;
    io->op.gen = owners_gen((sqlite_store *)st);
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

/* Whether a message, once last, leaves its session's round of tools open (open_round): the
 * assistant's tool requests, or the results of them (migration 6 asks the same of the sessions
 * it finds). The content is jansson's compact text: "tool_request" with its quotes is a key or
 * a value, never inside a string (its quotes would be escaped). */
static int opens_round(const char *role, const char *content)
{
    return (!strcmp(role, "assistant") && strstr(content, "\"tool_request\"")) ||
           (!strcmp(role, "user") && strstr(content, "\"tool_response\""));
}

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
    sqlite3_bind_int(bump, 5, opens_round(a->role, a->content));
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
                                    json_t *content, long in_tok, long out_tok, unsigned within_ms,
                                    char id_out[UUID_STR_LEN], store_done done, void *ud)
{
    struct append_op *a = calloc(1, sizeof *a);
    char *text = jtext(content, NULL);
    if (!a || !text) {
        free(a);
        free(text);
        done(ud, GD_ENOMEM, "out of memory");
        return;
    }
    snprintf(a->session_id, sizeof a->session_id, "%s", session_id);
    snprintf(a->role, sizeof a->role, "%s", role);
    ids_uuid7(id_out);
    a->id = id_out;
    a->content = text;
    a->created_us = now_us();
    a->in_tok = in_tok;
    a->out_tok = out_tok;
    a->op.fn = w_message_append;
    a->op.arg = a;
    a->op.session_id = a->session_id;
    a->op.commit_by = within_ms ? clock_mono_ns() + (uint64_t)within_ms * 1000000u : 0;
    a->op.on_done = done;
    a->op.ud = ud;
    a->op.free_arg = free; /* the content string */
    a->op.free_ptr = text;
    submit_async((sqlite_store *)st, &a->op);
}

struct update_op {
    write_op op;
    char session_id[UUID_STR_LEN];
    char id[UUID_STR_LEN];
    char *content;
    int64_t at_us;
};

static gd_err w_message_update(conn *c, void *arg, char *err, size_t errlen)
{
    struct update_op *u = arg;
    sqlite3_stmt *up = stmt(c, ST_MESSAGE_UPDATE), *touch = stmt(c, ST_SESSION_TOUCH);
    if (!up || !touch) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(up, 1, u->session_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(up, 2, u->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(up, 3, u->content, -1, SQLITE_STATIC);
    int rc = sqlite3_step(up);
    stmt_done(up);
    if (rc == SQLITE_DONE && sqlite3_changes(c->db) == 0) {
        snprintf(err, errlen, "message '%s' of session '%s' not found", u->id, u->session_id);
        return GD_ENOTFOUND;
    }
    if (rc == SQLITE_DONE) {
        sqlite3_bind_text(touch, 1, u->session_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(touch, 2, u->at_us);
        rc = sqlite3_step(touch);
    }
    stmt_done(touch);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    return GD_OK;
}

static void sq_message_update_async(store *st, const char *session_id, const char *message_id,
                                    json_t *content, store_done done, void *ud)
{
    struct update_op *u = calloc(1, sizeof *u);
    char *text = jtext(content, NULL);
    if (!u || !text) {
        free(u);
        free(text);
        done(ud, GD_ENOMEM, "out of memory");
        return;
    }
    snprintf(u->session_id, sizeof u->session_id, "%s", session_id);
    snprintf(u->id, sizeof u->id, "%s", message_id);
    u->content = text;
    u->at_us = now_us();
    u->op.fn = w_message_update;
    u->op.arg = u;
    u->op.session_id = u->session_id;
    u->op.on_done = done;
    u->op.ud = ud;
    u->op.free_arg = free; /* the content string */
    u->op.free_ptr = text;
    submit_async((sqlite_store *)st, &u->op);
}

/* A session_import: the session's row, its messages serialised beforehand, then its totals. */
struct import_arg {
    struct insert_arg ins;
    const char *settings; /* JSON text */
    size_t n;
    const char **roles;
    char **contents;
    int64_t *times; /* each message's created_us */
};

static gd_err w_session_import(conn *c, void *arg, char *err, size_t errlen)
{
    struct import_arg *a = arg;
    gd_err e = w_session_insert(c, &a->ins, err, errlen);
    if (e) return e;
    for (size_t i = 0; i < a->n; i++) {
        sqlite3_stmt *st = stmt(c, ST_IMPORT_MESSAGE);
        if (!st) {
            snprintf(err, errlen, "%s", store_errmsg());
            return GD_ESTORE;
        }
        char id[UUID_STR_LEN];
        ids_uuid7(id);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->ins.s->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)i + 1);
        sqlite3_bind_text(st, 4, a->roles[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, a->contents[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, a->times[i]);
        int rc = sqlite3_step(st);
        stmt_done(st);
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
            return GD_ESTORE;
        }
    }
    sqlite3_stmt *st = stmt(c, ST_IMPORT_FINISH);
    if (!st) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(st, 1, a->ins.s->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->settings, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)a->n);
    sqlite3_bind_int64(st, 4, a->ins.s->input_tokens);
    sqlite3_bind_int64(st, 5, a->ins.s->output_tokens);
    sqlite3_bind_int(st, 6, a->n ? opens_round(a->roles[a->n - 1], a->contents[a->n - 1]) : 0);
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    return GD_OK;
}

static gd_err sq_session_import(store *st, store_session *s, json_t *settings, json_t *messages)
{
    size_t n = json_array_size(messages);
    struct import_arg a = {.ins = {.s = s, .created_us = now_us()}, .n = n};
    char *set = settings ? json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    a.settings = set;
    a.roles = calloc(n ? n : 1, sizeof *a.roles);
    a.contents = calloc(n ? n : 1, sizeof *a.contents);
    a.times = calloc(n ? n : 1, sizeof *a.times);
    gd_err e = set && a.roles && a.contents && a.times ? GD_OK : GD_ENOMEM;
    for (size_t i = 0; !e && i < n; i++) {
        json_t *m = json_array_get(messages, i);
        json_t *at = json_object_get(m, "created_us");
        a.times[i] = json_is_integer(at) ? (int64_t)json_integer_value(at) : a.ins.created_us;
        a.roles[i] = json_string_value(json_object_get(m, "role"));
        a.contents[i] = jtext(json_object_get(m, "content"), NULL);
        if (!a.roles[i] || !a.contents[i]) e = a.roles[i] ? GD_ENOMEM : GD_EINVAL;
    }
    if (e) {
        store_set_errmsg("%s", e == GD_EINVAL ? "a message without a role" : "out of memory");
    } else {
        s->created_at = s->updated_at = (time_t)(a.ins.created_us / 1000000);
        s->message_count = (long)n;
        write_op op = {.fn = w_session_import, .arg = &a};
        e = submit((sqlite_store *)st, &op);
    }
    for (size_t i = 0; a.contents && i < n; i++)
        free(a.contents[i]);
    free(a.contents);
    free(a.roles);
    free(a.times);
    free(set);
    return e;
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
    write_op op = {.fn = w_session_delete, .arg = (void *)id, .session_id = id, .deletes = true};
    gd_err e = submit((sqlite_store *)st, &op);
    owner_forget((sqlite_store *)st, id);
    return e;
}

/* ---- users ---- */

static void row_to_user(sqlite3_stmt *s, store_user *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(s, 1));
    out->admin = sqlite3_column_int(s, 2) != 0;
    out->has_token = sqlite3_column_int(s, 3) != 0;
    out->created_at = (time_t)(sqlite3_column_int64(s, 4) / 1000000);
}

/* One user by the statement id with its single parameter: text (name) or a hash. */
static gd_err user_get(store *st, enum stmt_id id, const char *name, const unsigned char *hash,
                       store_user *out)
{
    sqlite_store *ss = (sqlite_store *)st;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, id);
    gd_err e = GD_ESTORE;
    if (s) {
        if (hash)
            sqlite3_bind_blob(s, 1, hash, STORE_TOKEN_HASH_LEN, SQLITE_STATIC);
        else
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            row_to_user(s, out);
            e = GD_OK;
        } else {
            e = rc == SQLITE_DONE ? GD_ENOTFOUND : read_failed(c);
        }
        stmt_done(s);
    }
    reader_put(ss, c);
    return e;
}

static gd_err sq_user_get_by_token_hash(store *st, const unsigned char hash[STORE_TOKEN_HASH_LEN],
                                        store_user *out)
{
    return user_get(st, ST_USER_BY_HASH, NULL, hash, out);
}

static gd_err sq_user_get_by_name(store *st, const char *name, store_user *out)
{
    return user_get(st, ST_USER_BY_NAME, name, NULL, out);
}

/* When the store cannot be read, none for certain only if there is no database to hold any:
 * neither goosed.db nor a sessions.db an older goosed may have left (authentication fails closed
 * on anything else: src/auth/auth.c). */
static gd_err sq_user_count(store *st, long *n)
{
    sqlite_store *ss = (sqlite_store *)st;
    gd_err e = read_count(ss, ST_USER_COUNT, NULL, n);
    if (e != GD_ESTORE) return e;
    struct stat sb;
    int err = errno;
    bool none = stat(ss->path, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR) &&
                stat(ss->legacy, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR);
    errno = err;
    if (!none) return e;
    *n = 0;
    return GD_OK;
}

/* Every row of statement which (it has no parameters) into a new array of size-byte elements,
 * each filled by row from its row (zeroed first; GD_ENOMEM when it cannot be). On an error the
 * elements made so far go with drop (NULL: they hold nothing to free) and the array too. */
static gd_err list_rows(sqlite_store *ss, enum stmt_id which, size_t size,
                        gd_err (*row)(sqlite3_stmt *s, void *elem),
                        void (*drop)(void *arr, size_t n), void **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    conn *c = reader_get(ss);
    if (!c) return GD_ESTORE;
    sqlite3_stmt *s = stmt(c, which);
    gd_err e = GD_ESTORE;
    char *arr = NULL;
    size_t cnt = 0, cap = 0;
    if (s) {
        int rc;
        e = GD_OK;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (cnt == cap) {
                size_t grown_cap = cap ? cap * 2 : 16;
                char *grown = realloc(arr, grown_cap * size);
                if (!grown) {
                    e = GD_ENOMEM;
                    break;
                }
                arr = grown;
                cap = grown_cap;
            }
            memset(arr + cnt * size, 0, size);
            if ((e = row(s, arr + cnt * size))) break;
            cnt++;
        }
        if (e == GD_ENOMEM)
            store_set_errmsg("out of memory");
        else if (!e && rc != SQLITE_DONE)
            e = read_failed(c);
        stmt_done(s);
    }
    reader_put(ss, c);
    if (e) {
        if (drop && arr)
            drop(arr, cnt);
        else
            free(arr);
        return e;
    }
    *out = arr;
    *n = cnt;
    return GD_OK;
}

static gd_err user_row(sqlite3_stmt *s, void *elem)
{
    row_to_user(s, elem);
    return GD_OK;
}

static gd_err sq_user_list(store *st, store_user **out, size_t *n)
{
    return list_rows((sqlite_store *)st, ST_USER_LIST, sizeof **out, user_row, NULL, (void **)out,
                     n);
}

/* A write to users: which statement, and its parameters. */
struct user_write {
    enum stmt_id id;
    const store_user *u;       /* ST_USER_INSERT */
    const char *name;          /* ST_USER_DELETE, ST_USER_SET_TOKEN */
    const unsigned char *hash; /* ST_USER_INSERT (or NULL), ST_USER_SET_TOKEN */
    int64_t created_us;
};

static gd_err w_user(conn *c, void *arg, char *err, size_t errlen)
{
    const struct user_write *w = arg;
    sqlite3_stmt *st = stmt(c, w->id);
    if (!st) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    if (w->id == ST_USER_INSERT) {
        sqlite3_bind_text(st, 1, w->u->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, w->u->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, w->u->admin ? 1 : 0);
        if (w->hash) sqlite3_bind_blob(st, 4, w->hash, STORE_TOKEN_HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, w->created_us);
    } else {
        sqlite3_bind_text(st, 1, w->name, -1, SQLITE_STATIC);
        if (w->hash) sqlite3_bind_blob(st, 2, w->hash, STORE_TOKEN_HASH_LEN, SQLITE_STATIC);
    }
    int rc = sqlite3_step(st);
    stmt_done(st);
    if (rc == SQLITE_CONSTRAINT) {
        snprintf(err, errlen, "a user named '%s' exists already", w->u ? w->u->name : w->name);
        return GD_ECONFLICT;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    if (w->id != ST_USER_INSERT && !sqlite3_changes(c->db)) {
        snprintf(err, errlen, "no user named '%s'", w->name);
        return GD_ENOTFOUND;
    }
    return GD_OK;
}

static gd_err sq_user_add(store *st, store_user *u, const unsigned char *token_hash)
{
    ids_uuid4(u->id);
    struct user_write w = {
        .id = ST_USER_INSERT, .u = u, .hash = token_hash, .created_us = now_us()};
    u->created_at = (time_t)(w.created_us / 1000000);
    u->has_token = token_hash != NULL;
    write_op op = {.fn = w_user, .arg = &w};
    return submit((sqlite_store *)st, &op);
}

static gd_err sq_user_remove(store *st, const char *name)
{
    struct user_write w = {.id = ST_USER_DELETE, .name = name};
    write_op op = {.fn = w_user, .arg = &w};
    return submit((sqlite_store *)st, &op);
}

static gd_err sq_user_set_token(store *st, const char *name,
                                const unsigned char hash[STORE_TOKEN_HASH_LEN])
{
    struct user_write w = {.id = ST_USER_SET_TOKEN, .name = name, .hash = hash};
    write_op op = {.fn = w_user, .arg = &w};
    return submit((sqlite_store *)st, &op);
}

/* ---- a user's own settings ---- */

struct item_write {
    const char *user_id, *name;
    const void *value; /* NULL: delete */
    size_t len;
};

static gd_err w_item(conn *c, void *arg, char *err, size_t errlen)
{
    const struct item_write *w = arg;
    sqlite3_stmt *st = stmt(c, w->value ? ST_ITEM_SET : ST_ITEM_DELETE);
    if (!st) {
        snprintf(err, errlen, "%s", store_errmsg());
        return GD_ESTORE;
    }
    sqlite3_bind_text(st, 1, w->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, w->name, -1, SQLITE_STATIC);
    if (w->value) {
        sqlite3_bind_blob(st, 3, w->value, (int)w->len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now_us());
    }
    int rc = sqlite3_step(st);
    stmt_done(st);
    if ((rc & 0xff) == SQLITE_CONSTRAINT) { /* the foreign key: the user is gone */
        snprintf(err, errlen, "no such user");
        return GD_ENOTFOUND;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(c->db));
        return GD_ESTORE;
    }
    return GD_OK;
}

static gd_err sq_user_item_set(store *st, const char *user_id, const char *name, const void *value,
                               size_t len)
{
    if (len > STORE_ITEM_VALUE_MAX || strlen(name) > STORE_ITEM_NAME_MAX) {
        store_set_errmsg("a user's setting is too large");
        return GD_ETOOBIG;
    }
    struct item_write w = {.user_id = user_id, .name = name, .value = value, .len = len};
    write_op op = {.fn = w_item, .arg = &w};
    return submit((sqlite_store *)st, &op);
}

static gd_err item_row(sqlite3_stmt *s, void *elem)
{
    store_user_item *it = elem;
    snprintf(it->user_id, sizeof it->user_id, "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(it->name, sizeof it->name, "%s", (const char *)sqlite3_column_text(s, 1));
    int len = sqlite3_column_bytes(s, 2);
    const void *v = sqlite3_column_blob(s, 2);
    if (!(it->value = malloc((size_t)len + 1))) return GD_ENOMEM;
    if (len) memcpy(it->value, v, (size_t)len);
    it->value[len] = 0;
    it->len = (size_t)len;
    return GD_OK;
}

static void items_drop(void *arr, size_t n)
{
    store_user_items_free(arr, n);
}

static gd_err sq_user_items_version(store *st, long *v)
{
    return read_count((sqlite_store *)st, ST_ITEMS_VERSION, NULL, v);
}

static gd_err sq_user_items_list(store *st, store_user_item **out, size_t *n)
{
    return list_rows((sqlite_store *)st, ST_ITEM_LIST, sizeof **out, item_row, items_drop,
                     (void **)out, n);
}

static void sq_close(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    pthread_mutex_lock(&ss->mu);
    ss->stopping = true;
    while (ss->opening)
        pthread_cond_wait(&ss->opened, &ss->mu);
    bool was_open = ss->open;
    pthread_cond_signal(&ss->work);
    pthread_mutex_unlock(&ss->mu);
    if (was_open) {
        pthread_join(ss->writer, NULL); /* it drains the queue first */
        pthread_join(ss->syncer, NULL); /* and this one answers what the writer committed */
        if (ss->batches)
            log_info("store", "closed after %llu write(s) in %llu transaction(s) (%.1f a batch)",
                     (unsigned long long)ss->writes, (unsigned long long)ss->batches,
                     (double)ss->writes / (double)ss->batches);
    }
    if (ss->wal_fd >= 0) close(ss->wal_fd);
    for (conn *c = ss->idle, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    conn_close(ss->wconn); /* the last connection: SQLite checkpoints and removes the WAL */
    pthread_cond_destroy(&ss->work);
    pthread_cond_destroy(&ss->committed);
    pthread_cond_destroy(&ss->done);
    pthread_cond_destroy(&ss->opened);
    pthread_mutex_destroy(&ss->mu);
    pthread_mutex_destroy(&ss->owners_mu);
    free(ss->owners);
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
    .session_read = sq_session_read,
    .session_owner = sq_session_owner,
    .message_append_async = sq_message_append_async,
    .message_update_async = sq_message_update_async,
    .session_summary_set_async = sq_session_summary_set_async,
    .message_get = sq_message_get,
    .sessions_unfinished = sq_sessions_unfinished,
    .sessions_unsealed = sq_sessions_unsealed,
    .session_settings_get = sq_session_settings_get,
    .session_settings_set = sq_session_settings_set,
    .session_import = sq_session_import,
    .session_list_owned = sq_session_list_owned,
    .session_page = sq_session_page,
    .messages_text = sq_messages_text,
    .session_count = sq_session_count,
    .user_add = sq_user_add,
    .user_get_by_token_hash = sq_user_get_by_token_hash,
    .user_get_by_name = sq_user_get_by_name,
    .user_list = sq_user_list,
    .user_remove = sq_user_remove,
    .user_set_token = sq_user_set_token,
    .user_count = sq_user_count,
    .user_item_set = sq_user_item_set,
    .user_items_list = sq_user_items_list,
    .user_items_version = sq_user_items_version,
};

store *store_sqlite_open(const char *dir, size_t queue_max)
{
    sqlite_store *ss = calloc(1, sizeof *ss);
    if (!ss) return NULL;
    ss->base.ops = &sqlite_ops;
    snprintf(ss->dir, sizeof ss->dir, "%s", dir);
    snprintf(ss->path, sizeof ss->path, "%s/" STORE_SQLITE_FILE, dir);
    snprintf(ss->legacy, sizeof ss->legacy, "%s/" LEGACY_FILE, dir);
    ss->queue_max = queue_max ? queue_max : STORE_QUEUE_MAX_DEFAULT;
    pthread_mutex_init(&ss->mu, NULL);
    pthread_mutex_init(&ss->owners_mu, NULL);
    ss->owners = calloc(OWNERS, sizeof *ss->owners); /* NULL: nothing is remembered */
    pthread_cond_init(&ss->work, NULL);
    pthread_cond_init(&ss->committed, NULL);
    pthread_cond_init(&ss->done, NULL);
    ss->wal_fd = -1;
    pthread_cond_init(&ss->opened, NULL);
    ensure_open(ss); /* failure is logged; calls retry */
    return &ss->base;
}
