/* Unit tests for store (SQLite backend): sessions CRUD, persistence, a store that cannot open,
 * concurrent writers through the group-commit writer, batches and their savepoints, the
 * asynchronous paths, the bounded queue, messages, crash repair, and living beside the real
 * Goose's sessions.db, imports in one transaction. Each test gets a fresh temp dir. The .c is
 * included, so a test can hold the writer busy (a gate op) and read its counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ids.h"
#include "core/log.h"
#include "store/sqlite.c"
#include "file_in_the_way.h"

static char root[64];
static char dir[256]; /* root/a/b/sessions: none of the levels below root exist yet */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    char err[128];
    log_configure("off", err, sizeof err); /* the failure tests log errors on purpose */
    return ids_init();
}

static int setup(void **state)
{
    snprintf(root, sizeof root, "/tmp/test_store_XXXXXX");
    if (!mkdtemp(root)) return -1;
    snprintf(dir, sizeof dir, "%s/a/b/sessions", root);
    return 0;
}

static int teardown(void **state)
{
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void new_session(store_session *s, const char *name)
{
    memset(s, 0, sizeof *s);
    ids_uuid4(s->id);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->working_dir, sizeof s->working_dir, "/home/user/%s", name);
}

static void ok(gd_err e)
{
    if (e != GD_OK) fail_msg("store call failed: %s: %s", gd_strerror(e), store_errmsg());
}

static void test_open_creates_dirs(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    assert_non_null(st);
    assert_string_equal(st->ops->name, "sqlite");
    ok(st->ops->health(st));
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    char db[512];
    snprintf(db, sizeof db, "%s/goosed.db", dir);
    assert_int_equal(stat(db, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    snprintf(db, sizeof db, "%s/sessions.db", dir);
    assert_int_equal(stat(db, &sb), -1); /* the real Goose's name: never made */
    assert_int_equal(((sqlite_store *)st)->queue_max, STORE_QUEUE_MAX_DEFAULT);
    store_close(st);
    store_close(NULL); /* harmless */
}

static void test_create_get(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, got;
    new_session(&s, "first");
    time_t before = time(NULL);
    ok(st->ops->session_create(st, &s));
    time_t after = time(NULL);
    assert_true(s.created_at >= before && s.created_at <= after);
    assert_int_equal(s.updated_at, s.created_at);

    memset(&got, 0x5a, sizeof got);
    ok(st->ops->session_get(st, s.id, &got));
    assert_string_equal(got.id, s.id);
    assert_string_equal(got.name, "first");
    assert_string_equal(got.working_dir, "/home/user/first");
    assert_int_equal(got.created_at, s.created_at);
    assert_int_equal(got.updated_at, s.created_at);
    assert_int_equal(got.message_count, 0);
    assert_int_equal(got.input_tokens, 0);
    assert_int_equal(got.output_tokens, 0);

    char other[UUID_STR_LEN];
    ids_uuid4(other);
    assert_int_equal(st->ops->session_get(st, other, &got), GD_ENOTFOUND);
    assert_int_equal(st->ops->session_get(st, "", &got), GD_ENOTFOUND);
    assert_int_equal(st->ops->session_get(st, "' OR 1=1 --", &got), GD_ENOTFOUND);
    store_close(st);
}

static void test_names_roundtrip(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, got;
    new_session(&s, "");
    ok(st->ops->session_create(st, &s));
    ok(st->ops->session_get(st, s.id, &got));
    assert_string_equal(got.name, "");

    /* The longest name: 256 four-byte characters. */
    new_session(&s, "");
    for (int i = 0; i < 256; i++)
        memcpy(s.name + 4 * i, "\xF0\x9F\xA6\xA2", 4); /* U+1F9A2 SWAN */
    s.name[STORE_NAME_MAX] = '\0';
    snprintf(s.working_dir, sizeof s.working_dir, "/tmp/it's \"quoted\"; DROP TABLE sessions");
    ok(st->ops->session_create(st, &s));
    ok(st->ops->session_get(st, s.id, &got));
    assert_string_equal(got.name, s.name);
    assert_int_equal(strlen(got.name), STORE_NAME_MAX);
    assert_string_equal(got.working_dir, s.working_dir);
    store_close(st);
}

static void test_duplicate_id(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, t, got;
    new_session(&s, "one");
    ok(st->ops->session_create(st, &s));
    new_session(&t, "two");
    memcpy(t.id, s.id, sizeof t.id);
    assert_int_equal(st->ops->session_create(st, &t), GD_ECONFLICT);
    assert_non_null(strstr(store_errmsg(), "UNIQUE"));
    /* The first is untouched and the store still takes writes. */
    ok(st->ops->session_get(st, s.id, &got));
    assert_string_equal(got.name, "one");
    new_session(&t, "three");
    ok(st->ops->session_create(st, &t));
    store_close(st);
}

static void free_list(store_session *l)
{
    free(l);
}

static void test_list(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session *l = (store_session *)1;
    size_t n = 99;
    long total = -1;

    ok(st->ops->session_list(st, 10, 0, &l, &n, &total));
    assert_int_equal(n, 0);
    assert_int_equal(total, 0);
    free_list(l);

    enum { N = 5 };
    store_session s[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        new_session(&s[i], name);
        ok(st->ops->session_create(st, &s[i]));
    }

    /* Newest first. */
    ok(st->ops->session_list(st, 100, 0, &l, &n, &total));
    assert_int_equal(n, N);
    assert_int_equal(total, N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(l[i].id, s[N - 1 - i].id);
        assert_string_equal(l[i].name, s[N - 1 - i].name);
        assert_string_equal(l[i].working_dir, s[N - 1 - i].working_dir);
    }
    free_list(l);

    /* Pages. */
    ok(st->ops->session_list(st, 2, 0, &l, &n, &total));
    assert_int_equal(n, 2);
    assert_int_equal(total, N);
    assert_string_equal(l[0].id, s[4].id);
    assert_string_equal(l[1].id, s[3].id);
    free_list(l);
    ok(st->ops->session_list(st, 2, 2, &l, &n, &total));
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, s[2].id);
    assert_string_equal(l[1].id, s[1].id);
    free_list(l);
    ok(st->ops->session_list(st, 2, 4, &l, &n, &total));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].id, s[0].id);
    free_list(l);
    ok(st->ops->session_list(st, 2, 5, &l, &n, &total));
    assert_int_equal(n, 0);
    assert_int_equal(total, N);
    free_list(l);
    ok(st->ops->session_list(st, 1000, 1000000, &l, &n, &total));
    assert_int_equal(n, 0);
    assert_int_equal(total, N);
    free_list(l);
    ok(st->ops->session_list(st, 1, 0, &l, &n, &total));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].id, s[4].id);
    free_list(l);

    /* By cursor: the same order, pages of 2, the last one saying there is no next. */
    char next[STORE_CURSOR_LEN];
    const char *after = "";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        char cur[STORE_CURSOR_LEN];
        snprintf(cur, sizeof cur, "%s", after);
        ok(st->ops->session_page(st, page % 2 ? NULL : "", 2, cur, &l, &n, next));
        assert_int_equal(n, page < 2 ? 2 : 1);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(l[i].id, s[N - 1 - seen++].id);
        free_list(l);
        assert_int_equal(next[0] != '\0', page < 2);
        after = next;
    }
    assert_int_equal(seen, N);
    assert_int_equal(st->ops->session_page(st, NULL, 2, "nonsense", &l, &n, next), GD_EINVAL);
    assert_int_equal(st->ops->session_page(st, NULL, 0, "", &l, &n, next), GD_EINVAL);
    long cnt = -1;
    ok(st->ops->session_count(st, NULL, &cnt));
    assert_int_equal(cnt, N);
    ok(st->ops->session_count(st, "", &cnt));
    assert_int_equal(cnt, N);
    ok(st->ops->session_count(st, "someone-else", &cnt));
    assert_int_equal(cnt, 0);
    ok(st->ops->session_delete(st, s[2].id));
    ok(st->ops->session_count(st, "", &cnt));
    assert_int_equal(cnt, N - 1);
    store_close(st);
}

/* regression: LIMIT -1 means "all" to SQLite and overflowed a one-slot page */
static void test_list_bad_bounds(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s[3], *l = NULL;
    size_t n;
    long total;
    for (int i = 0; i < 3; i++) {
        new_session(&s[i], "x");
        ok(st->ops->session_create(st, &s[i]));
    }
    assert_int_equal(st->ops->session_list(st, -1, 0, &l, &n, &total), GD_EINVAL);
    assert_int_equal(st->ops->session_list(st, 0, 0, &l, &n, &total), GD_EINVAL);
    assert_int_equal(st->ops->session_list(st, 2, -1, &l, &n, &total), GD_EINVAL);
    ok(st->ops->session_list(st, 1000, 0, &l, &n, &total));
    assert_int_equal(n, 3);
    free(l);
    store_close(st);
}

/* regression: an empty directory name read past the end of the string */
static void test_empty_dir(void **state)
{
    store *st = store_sqlite_open("", 0);
    assert_int_equal(st->ops->health(st), GD_ESTORE);
    assert_non_null(strstr(store_errmsg(), "no data directory"));
    store_close(st);
}

static void test_delete(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session a, b, got;
    new_session(&a, "a");
    new_session(&b, "b");
    ok(st->ops->session_create(st, &a));
    ok(st->ops->session_create(st, &b));

    ok(st->ops->session_delete(st, a.id));
    assert_int_equal(st->ops->session_get(st, a.id, &got), GD_ENOTFOUND);
    assert_int_equal(st->ops->session_delete(st, a.id), GD_ENOTFOUND);
    json_t *msgs = (json_t *)1;
    assert_int_equal(st->ops->messages_list(st, a.id, &msgs), GD_ENOTFOUND);
    assert_null(msgs);

    ok(st->ops->session_get(st, b.id, &got)); /* the other one stays */
    store_session *l;
    size_t n;
    long total;
    ok(st->ops->session_list(st, 10, 0, &l, &n, &total));
    assert_int_equal(n, 1);
    assert_int_equal(total, 1);
    assert_string_equal(l[0].id, b.id);
    free(l);

    char never[UUID_STR_LEN];
    ids_uuid4(never);
    assert_int_equal(st->ops->session_delete(st, never), GD_ENOTFOUND);
    store_close(st);
}

static void test_messages_list(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s;
    new_session(&s, "m");
    ok(st->ops->session_create(st, &s));
    json_t *msgs = NULL;
    ok(st->ops->messages_list(st, s.id, &msgs));
    assert_non_null(msgs);
    assert_true(json_is_array(msgs));
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(msgs);

    char unknown[UUID_STR_LEN];
    ids_uuid4(unknown);
    msgs = (json_t *)1;
    assert_int_equal(st->ops->messages_list(st, unknown, &msgs), GD_ENOTFOUND);
    assert_null(msgs);
    store_close(st);
}

static void test_reopen(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session a, b, got;
    new_session(&a, "kept-a");
    new_session(&b, "kept-b");
    ok(st->ops->session_create(st, &a));
    ok(st->ops->session_create(st, &b));
    store_close(st);

    st = store_sqlite_open(dir, 0);
    ok(st->ops->health(st));
    ok(st->ops->session_get(st, a.id, &got));
    assert_string_equal(got.name, "kept-a");
    assert_int_equal(got.created_at, a.created_at);
    store_session *l;
    size_t n;
    long total;
    ok(st->ops->session_list(st, 10, 0, &l, &n, &total));
    assert_int_equal(total, 2);
    assert_string_equal(l[0].id, b.id);
    assert_string_equal(l[1].id, a.id);
    free(l);
    /* And it takes writes after reopening (the schema is not migrated twice). */
    ok(st->ops->session_delete(st, a.id));
    store_close(st);

    st = store_sqlite_open(dir, 0);
    assert_int_equal(st->ops->session_get(st, a.id, &got), GD_ENOTFOUND);
    ok(st->ops->session_get(st, b.id, &got));
    store_close(st);
}

static void assert_estore(gd_err e, const char *what, const char *needle)
{
    if (e != GD_ESTORE) fail_msg("%s: expected GD_ESTORE, got %s", what, gd_strerror(e));
    const char *m = store_errmsg();
    if (!strstr(m, needle))
        fail_msg("%s: store_errmsg() is \"%s\", expected it to mention \"%s\"", what, m, needle);
}

/* Every operation on st fails with GD_ESTORE and a message containing needle1 (the first
 * calls) or needle2 (the later ones, answered from the remembered open error). */
static void assert_all_fail(store *st, const char *needle1, const char *needle2)
{
    store_session s, got;
    new_session(&s, "x");
    store_session *l = (store_session *)1;
    size_t n = 7;
    long total = 0;
    json_t *msgs = (json_t *)1;
    assert_estore(st->ops->health(st), "health", needle1);
    assert_estore(st->ops->session_create(st, &s), "session_create", needle1);
    assert_estore(st->ops->session_get(st, s.id, &got), "session_get", needle2);
    assert_estore(st->ops->session_list(st, 10, 0, &l, &n, &total), "session_list", needle2);
    assert_estore(st->ops->session_delete(st, s.id), "session_delete", needle1);
    assert_estore(st->ops->messages_list(st, s.id, &msgs), "messages_list", needle2);
    /* Failed calls leave no output behind. */
    assert_null(l);
    assert_int_equal(n, 0);
    assert_null(msgs);
}

static void test_parent_is_a_file(void **state)
{
    char file[300], bad[400];
    snprintf(file, sizeof file, "%s/plainfile", root);
    dir_under_file(root, "plainfile", bad, sizeof bad);

    store *st = store_sqlite_open(bad, 0);
    assert_non_null(st); /* never NULL: it answers GD_ESTORE instead */
    assert_all_fail(st, "cannot create directory", bad);
    assert_non_null(strstr(store_errmsg(), "Not a directory"));
    store_close(st);

    /* Deeper: the file is a middle level. */
    snprintf(bad, sizeof bad, "%s/x/y", file);
    st = store_sqlite_open(bad, 0);
    assert_all_fail(st, "Not a directory", "Not a directory");
    store_close(st);
}

static void test_dir_is_a_file(void **state)
{
    /* The directory itself is a regular file: mkdir says EEXIST, opening the db fails. */
    char file[300];
    snprintf(file, sizeof file, "%s/notadir", root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    store *st = store_sqlite_open(file, 0);
    assert_all_fail(st, "goosed.db", "goosed.db");
    store_close(st);
}

static void test_not_a_database(void **state)
{
    char p[300];
    snprintf(p, sizeof p, "%s/a", root);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/a/b", root);
    mkdir(p, 0700);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/goosed.db", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("this is not an SQLite database, just some text long enough to have a header......\n"
          "..................................................................................\n",
          f);
    fclose(f);
    store *st = store_sqlite_open(dir, 0);
    assert_all_fail(st, "goosed.db", "goosed.db");
    assert_non_null(strstr(store_errmsg(), "not a database"));
    store_close(st);
}

static void test_newer_schema(void **state)
{
    /* A database written by a newer goosed is refused, not migrated backwards. */
    store *st = store_sqlite_open(dir, 0);
    ok(st->ops->health(st));
    store_close(st);
    char p[300];
    snprintf(p, sizeof p, "%s/goosed.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    st = store_sqlite_open(dir, 0);
    assert_all_fail(st, "newer than this goosed knows", "schema is version 99");
    store_close(st);
}

static void *errmsg_thread(void *arg)
{
    /* store_errmsg is per thread: a thread that made no failing call has no message. */
    return (void *)(intptr_t)(strcmp(store_errmsg(), "unknown storage error") == 0);
}

static void test_errmsg_per_thread(void **state)
{
    store_set_errmsg("main thread's %s", "message");
    pthread_t t;
    void *r;
    assert_int_equal(pthread_create(&t, NULL, errmsg_thread, NULL), 0);
    pthread_join(t, &r);
    assert_true((intptr_t)r);
    assert_string_equal(store_errmsg(), "main thread's message");
}

static void test_recovers(void **state)
{
    /* A store that could not open retries (a second after the failed attempt) and recovers. */
    char file[300], sub[400];
    snprintf(file, sizeof file, "%s/later", root);
    dir_under_file(root, "later", sub, sizeof sub);
    store *st = store_sqlite_open(sub, 0);
    assert_int_equal(st->ops->health(st), GD_ESTORE);
    assert_int_equal(unlink(file), 0);
    /* Within a second of the failed attempt, no other: the same reason at once. */
    assert_int_equal(st->ops->health(st), GD_ESTORE);
    assert_non_null(strstr(store_errmsg(), "Not a directory"));
    /* A second later (the throttle's clock moved back by it), the next call opens it. */
    sqlite_store *ss = (sqlite_store *)st;
    pthread_mutex_lock(&ss->mu);
    ss->last_try -= 1000000000u;
    pthread_mutex_unlock(&ss->mu);
    ok(st->ops->health(st));
    store_session s, got;
    new_session(&s, "after recovery");
    ok(st->ops->session_create(st, &s));
    ok(st->ops->session_get(st, s.id, &got));
    store_close(st);
}

enum { THREADS = 8, PER_THREAD = 50 };

struct worker {
    store *st;
    store_session s[PER_THREAD];
    int failures;
    char firsterr[256];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%p-%d", (void *)w, i);
        new_session(&w->s[i], name);
        gd_err e = w->st->ops->session_create(w->st, &w->s[i]);
        if (e) {
            if (!w->failures++)
                snprintf(w->firsterr, sizeof w->firsterr, "%s: %s", gd_strerror(e), store_errmsg());
        }
        /* Mix in reads, so readers run beside the writer. */
        if (i % 10 == 0) {
            store_session got;
            if (w->st->ops->session_get(w->st, w->s[i].id, &got) != GD_OK && !w->failures++)
                snprintf(w->firsterr, sizeof w->firsterr, "get: %s", store_errmsg());
        }
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const store_session *)a)->id, ((const store_session *)b)->id);
}

static void test_concurrent_creates(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    static struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].st = st;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++)
        if (w[i].failures)
            fail_msg("thread %d: %d failures, first: %s", i, w[i].failures, w[i].firsterr);

    store_session *l;
    size_t n;
    long total;
    ok(st->ops->session_list(st, 1000, 0, &l, &n, &total));
    assert_int_equal(total, THREADS * PER_THREAD);
    assert_int_equal(n, THREADS * PER_THREAD);
    /* Newest first holds across threads. */
    for (size_t i = 1; i < n; i++)
        assert_true(l[i - 1].created_at >= l[i].created_at);
    /* Every id created is listed exactly once. */
    static store_session want[THREADS * PER_THREAD];
    for (int i = 0; i < THREADS; i++)
        memcpy(&want[i * PER_THREAD], w[i].s, sizeof w[i].s);
    qsort(want, THREADS * PER_THREAD, sizeof *want, cmp_id);
    qsort(l, n, sizeof *l, cmp_id);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(l[i].id, want[i].id);
        assert_string_equal(l[i].name, want[i].name);
    }
    free(l);
    store_close(st);

    /* All durable: a fresh open sees them. */
    st = store_sqlite_open(dir, 0);
    ok(st->ops->session_list(st, 1, 0, &l, &n, &total));
    assert_int_equal(total, THREADS * PER_THREAD);
    free(l);
    store_close(st);
}

/* ---- helpers for the writer's queue ---- */

/* An asynchronous write's outcome: how often done was called, with what. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    gd_err e;
    char msg[512];
} waiter;

static void waiter_init(waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->e = (gd_err)-1;
}

static void on_done(void *ud, gd_err e, const char *msg)
{
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->calls++;
    w->e = e;
    snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "(null)");
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits until done was called; returns its code. */
static gd_err wait_done(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->calls)
        pthread_cond_wait(&w->cv, &w->mu);
    gd_err e = w->e;
    pthread_mutex_unlock(&w->mu);
    return e;
}

static int calls(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->calls;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* A write that holds the writer until opened: writes queued meanwhile wait, then make one
 * batch. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, release;
    waiter done;
} gate;

static gd_err w_gate(conn *c, void *arg, char *err, size_t errlen)
{
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->running = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->release)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return GD_OK;
}

/* Queues the gate and returns once the writer runs it. */
static void gate_close(store *st, gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    waiter_init(&g->done);
    write_op *op = calloc(1, sizeof *op);
    op->fn = w_gate;
    op->arg = g;
    op->on_done = on_done;
    op->ud = &g->done;
    submit_async((sqlite_store *)st, op);
    pthread_mutex_lock(&g->mu);
    while (!g->running)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->release = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    assert_int_equal(wait_done(&g->done), GD_OK);
}

static size_t queued(store *st)
{
    sqlite_store *ss = (sqlite_store *)st;
    pthread_mutex_lock(&ss->mu);
    size_t n = ss->nqueued;
    pthread_mutex_unlock(&ss->mu);
    return n;
}

static void batches(store *st, uint64_t *n, size_t *last)
{
    sqlite_store *ss = (sqlite_store *)st;
    pthread_mutex_lock(&ss->mu);
    *n = ss->batches;
    *last = ss->last_batch;
    pthread_mutex_unlock(&ss->mu);
}

static json_t *text_content(const char *text)
{
    return json_pack("[{s:s, s:s}]", "type", "text", "text", text);
}

/* Appends a message and waits until it is durable; its code. */
static gd_err append(store *st, const char *sid, const char *role, json_t *content, long in,
                     long out, char id[UUID_STR_LEN])
{
    waiter w;
    waiter_init(&w);
    st->ops->message_append_async(st, sid, role, content, in, out, 0, id, on_done, &w);
    json_decref(content);
    return wait_done(&w);
}

/* Replaces a message's content and waits until it is durable; its code. */
static gd_err update(store *st, const char *sid, const char *id, json_t *content)
{
    waiter w;
    waiter_init(&w);
    st->ops->message_update_async(st, sid, id, content, on_done, &w);
    json_decref(content);
    return wait_done(&w);
}

/* A round's results, stored as they come: the message keeps its id and place; another session's
 * message, or one that is not there, is not found. */
static void test_message_update(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, other;
    new_session(&s, "update");
    new_session(&other, "other");
    ok(st->ops->session_create(st, &s));
    ok(st->ops->session_create(st, &other));
    char a[UUID_STR_LEN], b[UUID_STR_LEN], c[UUID_STR_LEN];
    ok(append(st, s.id, "assistant", text_content("asks"), 0, 0, a));
    ok(append(st, s.id, "user", text_content("one"), 0, 0, b));
    ok(append(st, s.id, "assistant", text_content("after"), 0, 0, c));
    ok(update(st, s.id, b,
              json_pack("[{s:s, s:s}, {s:s, s:s}]", "type", "text", "text", "one", "type", "text",
                        "text", "two")));
    json_t *msgs;
    ok(st->ops->messages_list(st, s.id, &msgs));
    assert_int_equal(json_array_size(msgs), 3);
    json_t *m = json_array_get(msgs, 1);
    assert_string_equal(json_string_value(json_object_get(m, "id")), b);
    assert_int_equal(json_array_size(json_object_get(m, "content")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 2), "id")), c);
    json_decref(msgs);
    store_session got;
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, 3);
    assert_int_equal(update(st, other.id, b, text_content("x")), GD_ENOTFOUND);
    assert_int_equal(update(st, s.id, "no-such-message", text_content("x")), GD_ENOTFOUND);
    store_close(st);
}

/* ---- batches ---- */

/* A write that may wait (within_ms) waits for a write that cannot and shares its commit; alone,
 * it is committed when its time is up. */
static void test_write_that_may_wait(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s;
    new_session(&s, "lazy");
    ok(st->ops->session_create(st, &s));
    uint64_t n0, n1;
    size_t last;
    batches(st, &n0, &last);

    /* 60 s to wait: only the second write can commit it */
    waiter lazy, now;
    waiter_init(&lazy);
    waiter_init(&now);
    char id1[UUID_STR_LEN], id2[UUID_STR_LEN];
    json_t *c1 = text_content("may wait"), *c2 = text_content("cannot wait");
    st->ops->message_append_async(st, s.id, "user", c1, 0, 0, 60000, id1, on_done, &lazy);
    st->ops->message_append_async(st, s.id, "assistant", c2, 0, 0, 0, id2, on_done, &now);
    json_decref(c1);
    json_decref(c2);
    assert_int_equal(wait_done(&now), GD_OK);
    assert_int_equal(wait_done(&lazy), GD_OK);
    batches(st, &n1, &last);
    assert_int_equal(n1 - n0, 1); /* one commit for both */
    assert_int_equal(last, 2);
    json_t *msgs;
    ok(st->ops->messages_list(st, s.id, &msgs));
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "id")), id1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "id")), id2);
    json_decref(msgs);

    /* alone, with 20 ms to wait: committed all the same */
    waiter alone;
    waiter_init(&alone);
    char id3[UUID_STR_LEN];
    json_t *c3 = text_content("alone");
    st->ops->message_append_async(st, s.id, "user", c3, 0, 0, 20, id3, on_done, &alone);
    json_decref(c3);
    assert_int_equal(wait_done(&alone), GD_OK);
    batches(st, &n0, &last);
    assert_int_equal(n0 - n1, 1);
    assert_int_equal(last, 1);
    store_close(st);
}

static void test_batched_commit(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, made[5];
    new_session(&s, "batched");
    ok(st->ops->session_create(st, &s));

    gate g;
    gate_close(st, &g);
    uint64_t before, after;
    size_t last;
    batches(st, &before, &last);
    enum { N = 20 };
    waiter w[N + 5];
    char ids[N][UUID_STR_LEN];
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        waiter_init(&w[i]);
        json_t *c = text_content(text);
        st->ops->message_append_async(st, s.id, i % 2 ? "assistant" : "user", c, 1, 2, 0, ids[i],
                                      on_done, &w[i]);
        json_decref(c);
    }
    for (int i = 0; i < 5; i++) {
        new_session(&made[i], "queued");
        waiter_init(&w[N + i]);
        st->ops->session_create_async(st, &made[i], on_done, &w[N + i]);
    }
    assert_int_equal(queued(st), N + 5);
    for (int i = 0; i < N + 5; i++)
        assert_int_equal(calls(&w[i]), 0); /* none is durable before the writer runs */
    gate_open(&g);
    for (int i = 0; i < N + 5; i++)
        assert_int_equal(wait_done(&w[i]), GD_OK);
    batches(st, &after, &last);
    /* The gate's transaction, then one for everything queued behind it. */
    assert_int_equal(after - before, 2);
    assert_int_equal(last, N + 5);
    assert_int_equal(queued(st), 0);

    json_t *msgs;
    ok(st->ops->messages_list(st, s.id, &msgs));
    assert_int_equal(json_array_size(msgs), N);
    for (int i = 0; i < N; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, i), "id")),
                            ids[i]);
    json_decref(msgs);
    store_session got;
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, N);
    assert_int_equal(got.input_tokens, N);
    assert_int_equal(got.output_tokens, 2 * N);
    for (int i = 0; i < 5; i++)
        ok(st->ops->session_get(st, made[i].id, &got));
    store_close(st);
    for (int i = 0; i < N + 5; i++)
        assert_int_equal(calls(&w[i]), 1);
}

/* A sync of the WAL held until the test releases it. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool in, release;
} held = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};

static int held_sync(int fd)
{
    pthread_mutex_lock(&held.mu);
    held.in = true;
    pthread_cond_broadcast(&held.cv);
    while (!held.release)
        pthread_cond_wait(&held.cv, &held.mu);
    pthread_mutex_unlock(&held.mu);
    return fdatasync(fd);
}

/* Writes that arrive while a sync runs are run at once but committed together, as one
 * transaction, once the syncer is free; none is answered before its own batch is durable. */
static void test_writes_wait_in_one_batch_during_a_sync(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s;
    new_session(&s, "during a sync");
    ok(st->ops->session_create(st, &s));
    held.in = held.release = false;
    sync_wal = held_sync;

    waiter first;
    waiter_init(&first);
    json_t *c = text_content("first");
    char id[UUID_STR_LEN];
    st->ops->message_append_async(st, s.id, "user", c, 0, 0, 0, id, on_done, &first);
    json_decref(c);
    pthread_mutex_lock(&held.mu);
    while (!held.in) /* the first write's batch is being synced */
        pthread_cond_wait(&held.cv, &held.mu);
    pthread_mutex_unlock(&held.mu);
    uint64_t before;
    size_t last;
    batches(st, &before, &last);
    assert_int_equal(last, 1);

    enum { N = 10 };
    waiter w[N];
    char ids[N][UUID_STR_LEN];
    for (int i = 0; i < N; i++) {
        waiter_init(&w[i]);
        json_t *m = text_content("meanwhile");
        st->ops->message_append_async(st, s.id, "assistant", m, 1, 1, 0, ids[i], on_done, &w[i]);
        json_decref(m);
    }
    while (queued(st)) /* the writer takes them into its open transaction */
        sched_yield();
    uint64_t during;
    batches(st, &during, &last);
    assert_int_equal(during, before); /* none committed while the sync runs */
    assert_int_equal(calls(&first), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(calls(&w[i]), 0);

    pthread_mutex_lock(&held.mu);
    held.release = true;
    pthread_cond_broadcast(&held.cv);
    pthread_mutex_unlock(&held.mu);
    assert_int_equal(wait_done(&first), GD_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(wait_done(&w[i]), GD_OK);
    uint64_t after;
    batches(st, &after, &last);
    assert_int_equal(after, before + 1);
    assert_int_equal(last, N); /* the ten in one transaction */
    sync_wal = fdatasync;
    store_session got;
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, N + 1);
    store_close(st);
}

/* Inserts a session, then fails: its savepoint must undo the insert, and only it. */
static store_session partial_session;
static gd_err w_partial(conn *c, void *arg, char *err, size_t errlen)
{
    struct insert_arg a = {.s = &partial_session, .created_us = now_us()};
    gd_err e = w_session_insert(c, &a, err, errlen);
    if (e) return e;
    snprintf(err, errlen, "injected failure after a successful insert");
    return GD_ESTORE;
}

static void test_savepoint_rollback(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session a, gone, c, got;
    new_session(&a, "kept");
    new_session(&gone, "deleted");
    ok(st->ops->session_create(st, &a));
    ok(st->ops->session_create(st, &gone));
    ok(st->ops->session_delete(st, gone.id));
    new_session(&partial_session, "never");
    new_session(&c, "created in the batch");

    gate g;
    gate_close(st, &g);
    waiter w[5];
    char ids[5][UUID_STR_LEN];
    for (int i = 0; i < 5; i++)
        waiter_init(&w[i]);
    json_t *one = text_content("one"), *lost = text_content("lost"), *two = text_content("two");
    st->ops->message_append_async(st, a.id, "user", one, 1, 0, 0, ids[0], on_done, &w[0]);
    st->ops->message_append_async(st, gone.id, "user", lost, 1, 0, 0, ids[1], on_done, &w[1]);
    write_op *op = calloc(1, sizeof *op);
    op->fn = w_partial;
    op->on_done = on_done;
    op->ud = &w[2];
    submit_async((sqlite_store *)st, op);
    st->ops->message_append_async(st, a.id, "assistant", two, 0, 1, 0, ids[3], on_done, &w[3]);
    st->ops->session_create_async(st, &c, on_done, &w[4]);
    json_decref(one);
    json_decref(lost);
    json_decref(two);
    gate_open(&g);

    assert_int_equal(wait_done(&w[0]), GD_OK);
    assert_int_equal(wait_done(&w[1]), GD_ENOTFOUND);
    assert_non_null(strstr(w[1].msg, gone.id));
    assert_int_equal(wait_done(&w[2]), GD_ESTORE);
    assert_string_equal(w[2].msg, "injected failure after a successful insert");
    assert_int_equal(wait_done(&w[3]), GD_OK);
    assert_int_equal(wait_done(&w[4]), GD_OK);
    uint64_t n;
    size_t last;
    batches(st, &n, &last);
    assert_int_equal(last, 5); /* all five in one transaction */

    assert_int_equal(st->ops->session_get(st, partial_session.id, &got), GD_ENOTFOUND);
    assert_int_equal(st->ops->session_get(st, gone.id, &got), GD_ENOTFOUND);
    ok(st->ops->session_get(st, c.id, &got));
    ok(st->ops->session_get(st, a.id, &got));
    assert_int_equal(got.message_count, 2);
    assert_int_equal(got.input_tokens, 1);
    assert_int_equal(got.output_tokens, 1);
    json_t *msgs;
    ok(st->ops->messages_list(st, a.id, &msgs));
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "id")), ids[0]);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "id")), ids[3]);
    json_decref(msgs);
    store_close(st);
}

/* ---- the asynchronous paths ---- */

static void test_async_paths(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, dup, got;
    waiter w[4];
    for (int i = 0; i < 4; i++)
        waiter_init(&w[i]);
    new_session(&s, "async");
    st->ops->session_create_async(st, &s, on_done, &w[0]);
    assert_int_equal(wait_done(&w[0]), GD_OK);
    assert_string_equal(w[0].msg, "(null)"); /* no message on success */
    assert_true(s.created_at > 0 && s.updated_at == s.created_at);
    ok(st->ops->session_get(st, s.id, &got));

    new_session(&dup, "dup");
    memcpy(dup.id, s.id, sizeof dup.id);
    st->ops->session_create_async(st, &dup, on_done, &w[1]);
    assert_int_equal(wait_done(&w[1]), GD_ECONFLICT);
    assert_non_null(strstr(w[1].msg, "UNIQUE"));

    char id[UUID_STR_LEN], never[UUID_STR_LEN];
    ids_uuid4(never);
    json_t *c = text_content("hello");
    st->ops->message_append_async(st, never, "user", c, 0, 0, 0, id, on_done, &w[2]);
    assert_int_equal(wait_done(&w[2]), GD_ENOTFOUND);
    assert_non_null(strstr(w[2].msg, never));
    st->ops->message_append_async(st, s.id, "user", c, 0, 0, 0, id, on_done, &w[3]);
    json_decref(c); /* serialised before the call returns */
    assert_int_equal(wait_done(&w[3]), GD_OK);
    assert_int_equal(strlen(id), UUID_STR_LEN - 1);
    store_close(st);
    for (int i = 0; i < 4; i++)
        assert_int_equal(calls(&w[i]), 1);

    /* A store that is down answers at once, in the caller. */
    char bad[400];
    dir_under_file(root, "plainfile", bad, sizeof bad);
    st = store_sqlite_open(bad, 0);
    for (int i = 0; i < 2; i++)
        waiter_init(&w[i]);
    new_session(&s, "down");
    st->ops->session_create_async(st, &s, on_done, &w[0]);
    assert_int_equal(calls(&w[0]), 1);
    assert_int_equal(w[0].e, GD_ESTORE);
    assert_non_null(strstr(w[0].msg, "Not a directory"));
    c = text_content("x");
    st->ops->message_append_async(st, s.id, "user", c, 0, 0, 0, id, on_done, &w[1]);
    json_decref(c);
    assert_int_equal(calls(&w[1]), 1);
    assert_int_equal(w[1].e, GD_ESTORE);
    store_close(st);
    assert_int_equal(calls(&w[0]), 1);
    assert_int_equal(calls(&w[1]), 1);
}

/* ---- the queue's bound ---- */

static void test_queue_bound(void **state)
{
    store *st = store_sqlite_open(dir, 3);
    store_session s, t, got;
    new_session(&s, "bounded");
    ok(st->ops->session_create(st, &s));

    gate g;
    gate_close(st, &g);
    waiter w[5];
    char ids[5][UUID_STR_LEN];
    json_t *c = text_content("q");
    for (int i = 0; i < 5; i++) {
        waiter_init(&w[i]);
        st->ops->message_append_async(st, s.id, "user", c, 0, 0, 0, ids[i], on_done, &w[i]);
    }
    assert_int_equal(queued(st), 3);
    for (int i = 3; i < 5; i++) { /* beyond the bound: refused at once, in the caller */
        assert_int_equal(calls(&w[i]), 1);
        assert_int_equal(w[i].e, GD_EBUSY);
        assert_string_equal(w[i].msg, "the store's write queue is full (3 writes waiting)");
    }
    new_session(&t, "refused");
    assert_int_equal(st->ops->session_create(st, &t), GD_EBUSY);
    assert_string_equal(store_errmsg(), "the store's write queue is full (3 writes waiting)");
    assert_int_equal(st->ops->session_delete(st, s.id), GD_EBUSY);
    gate_open(&g);
    for (int i = 0; i < 3; i++)
        assert_int_equal(wait_done(&w[i]), GD_OK);

    /* Drained: writes are taken again. */
    ok(st->ops->session_create(st, &t));
    assert_int_equal(append(st, s.id, "user", json_incref(c), 0, 0, ids[4]), GD_OK);
    json_decref(c);
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, 4);
    store_close(st);
    for (int i = 0; i < 5; i++)
        assert_int_equal(calls(&w[i]), 1);
}

/* ---- a delete while writes for its session are queued ---- */

struct deleter {
    store *st;
    const char *id;
    gd_err e;
};

static void *delete_main(void *arg)
{
    struct deleter *d = arg;
    d->e = d->st->ops->session_delete(d->st, d->id);
    return NULL;
}

static void test_delete_while_queued(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session a, b, got;
    new_session(&a, "deleted while queued");
    new_session(&b, "kept");
    ok(st->ops->session_create(st, &a));
    ok(st->ops->session_create(st, &b));
    char ida[UUID_STR_LEN];
    assert_int_equal(append(st, a.id, "user", text_content("before"), 0, 0, ida), GD_OK);

    gate g;
    gate_close(st, &g);
    waiter w[3];
    char ids[3][UUID_STR_LEN];
    json_t *c = text_content("queued");
    waiter_init(&w[0]);
    st->ops->message_append_async(st, a.id, "assistant", c, 0, 0, 0, ids[0], on_done, &w[0]);
    waiter_init(&w[1]);
    st->ops->message_append_async(st, b.id, "assistant", c, 0, 0, 0, ids[1], on_done, &w[1]);
    struct deleter d = {.st = st, .id = a.id, .e = (gd_err)-1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, delete_main, &d), 0);
    while (queued(st) < 3) /* the delete is queued (its caller waits) */
        sched_yield();
    waiter_init(&w[2]);
    st->ops->message_append_async(st, a.id, "user", c, 0, 0, 0, ids[2], on_done, &w[2]);
    json_decref(c);
    gate_open(&g);
    pthread_join(t, NULL);

    assert_int_equal(d.e, GD_OK);
    assert_int_equal(wait_done(&w[0]), GD_ENOTFOUND); /* queued before the delete came */
    assert_non_null(strstr(w[0].msg, a.id));
    assert_int_equal(wait_done(&w[1]), GD_OK); /* another session's write is untouched */
    assert_int_equal(wait_done(&w[2]), GD_ENOTFOUND);
    assert_int_equal(st->ops->session_get(st, a.id, &got), GD_ENOTFOUND);
    ok(st->ops->session_get(st, b.id, &got));
    assert_int_equal(got.message_count, 1);
    store_close(st);
}

/* ---- messages ---- */

static void test_messages_roundtrip(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, got;
    new_session(&s, "history");
    ok(st->ops->session_create(st, &s));
    json_t *contents[4] = {
        text_content("first, with \"quotes\", a \\ and a swan \xF0\x9F\xA6\xA2"),
        json_pack("[{s:s, s:s}, {s:s, s:s, s:{s:s, s:{s:s}}}]", "type", "text", "text",
                  "let me look", "type", "toolRequest", "id", "call-1", "toolCall", "name",
                  "developer__shell", "arguments", "command", "ls -la"),
        json_pack("[{s:s, s:s, s:{s:s, s:[{s:s, s:s}]}}]", "type", "toolResponse", "id", "call-1",
                  "toolResult", "status", "success", "value", "type", "text", "text", "total 0\n"),
        json_array(),
    };
    const char *roles[4] = {"user", "assistant", "user", "assistant"};
    char ids[4][UUID_STR_LEN];
    time_t before = time(NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(append(st, s.id, roles[i], json_incref(contents[i]), 10 * i, i, ids[i]),
                         GD_OK);

    json_t *msgs;
    ok(st->ops->messages_list(st, s.id, &msgs));
    assert_int_equal(json_array_size(msgs), 4);
    for (int i = 0; i < 4; i++) {
        json_t *m = json_array_get(msgs, i);
        assert_int_equal(json_object_size(m), 4);
        assert_string_equal(json_string_value(json_object_get(m, "id")), ids[i]);
        assert_string_equal(json_string_value(json_object_get(m, "role")), roles[i]);
        assert_true(json_equal(json_object_get(m, "content"), contents[i]));
        const char *when = json_string_value(json_object_get(m, "created_at"));
        assert_non_null(when);
        assert_int_equal(strlen(when), RFC3339_LEN - 1);

        /* message_get: the same object */
        json_t *one = (json_t *)1;
        ok(st->ops->message_get(st, s.id, ids[i], &one));
        assert_true(json_equal(one, m));
        json_decref(one);
    }
    json_decref(msgs);
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, 4);
    assert_int_equal(got.input_tokens, 60);
    assert_int_equal(got.output_tokens, 6);
    assert_true(got.updated_at >= before && got.updated_at >= got.created_at);

    /* Survives a reopen. */
    store_close(st);
    st = store_sqlite_open(dir, 0);
    ok(st->ops->messages_list(st, s.id, &msgs));
    assert_int_equal(json_array_size(msgs), 4);
    for (int i = 0; i < 4; i++)
        assert_true(json_equal(json_object_get(json_array_get(msgs, i), "content"), contents[i]));
    json_decref(msgs);
    for (int i = 0; i < 4; i++)
        json_decref(contents[i]);
    store_close(st);
}

/* messages_text as a jansson-parsed array, checked against messages_list (the tree form). */
static void text_matches_list(store *st, const char *sid, long limit)
{
    json_t *want;
    ok(st->ops->messages_list(st, sid, &want));
    json_t *got = json_array();
    char cursor[STORE_CURSOR_LEN] = "";
    for (int pages = 0;; pages++) {
        assert_true(pages <= 1000);
        buf b;
        buf_init(&b, BUF_CAP_HISTORY);
        char next[STORE_CURSOR_LEN];
        ok(st->ops->messages_text(st, sid, limit, cursor, &b, next, NULL));
        json_error_t err;
        json_t *page = json_loadb(b.data, b.len, 0, &err);
        if (!page) fail_msg("messages_text gave no JSON (%s): %.200s", err.text, b.data);
        assert_true(json_is_array(page));
        json_array_extend(got, page);
        json_decref(page);
        buf_free(&b);
        if (!next[0]) break;
        assert_true(limit > 0);
        snprintf(cursor, sizeof cursor, "%s", next);
    }
    assert_int_equal(json_array_size(got), json_array_size(want));
    for (size_t i = 0; i < json_array_size(want); i++) {
        if (json_equal(json_array_get(got, i), json_array_get(want, i))) continue;
        char *a = json_dumps(json_array_get(got, i), JSON_COMPACT);
        char *w = json_dumps(json_array_get(want, i), JSON_COMPACT);
        fail_msg("message %zu: messages_text %s\nmessages_list %s", i, a, w);
    }
    json_decref(got);
    json_decref(want);
}

/* messages_text: the same messages as messages_list, whole or by pages, whatever their content
 * and time (days apart, before the epoch, past year 9999); a content that is not a stored array
 * (the file edited by hand) given as []. */
static void test_messages_text(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s;
    new_session(&s, "text");
    ok(st->ops->session_create(st, &s));
    enum { N = 150 };
    for (int i = 0; i < N; i++) {
        char text[160];
        snprintf(text, sizeof text,
                 "message %d: \"quoted\", a \\, a tab\t, a line\n, \xC3\xA9t\xC3\xA9", i);
        json_t *c = i % 7 == 3 ? json_array() : text_content(text);
        char id[UUID_STR_LEN];
        assert_int_equal(append(st, s.id, i % 2 ? "assistant" : "user", c, 0, 0, id), GD_OK);
    }
    text_matches_list(st, s.id, 0);
    text_matches_list(st, s.id, 40);
    text_matches_list(st, s.id, 1);

    char db[512];
    snprintf(db, sizeof db, "%s/goosed.db", dir);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            raw,
            "UPDATE messages SET created_us = seq * 7 * 3600 * 1000000 + 999999;"
            "UPDATE messages SET created_us = -1500000 WHERE seq = 5;"
            "UPDATE messages SET created_us = 400000000000 * 1000000 WHERE seq = 6;"
            "UPDATE messages SET created_us = -70000000000 * 1000000 WHERE seq = 7;"
            "UPDATE messages SET content = 'not json' WHERE seq = 8;"
            "UPDATE messages SET content = '' WHERE seq = 9;"
            "UPDATE messages SET content = '\"a string\"' WHERE seq = 10;"
            "UPDATE messages SET content = ' [1,2' WHERE seq = 11;"
            "UPDATE messages SET role = 'a \"role\"' || char(9) WHERE seq = 12;"
            "UPDATE messages SET id = 'an \\ id' || char(10) WHERE seq = 13;"
            /* what needs escaping in the second word of eight bytes, in the tail after
             * whole words, after bytes past 0x7F; and none next to the bytes either side
             * of it (a space, DEL) */
            "UPDATE messages SET id = 'abcdefgh\"ijklmnop' WHERE seq = 14;"
            "UPDATE messages SET role = 'assistant' || char(31) WHERE seq = 15;"
            "UPDATE messages SET id = '\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\\' WHERE seq = 16;"
            "UPDATE messages SET id = 'abcdefg ' || char(127) || '!#[]{}~' WHERE seq = 17;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(raw);
    text_matches_list(st, s.id, 0);
    text_matches_list(st, s.id, 40);

    buf b;
    buf_init(&b, BUF_CAP_HISTORY);
    char next[STORE_CURSOR_LEN];
    assert_int_equal(st->ops->messages_text(st, s.id, 0, "x1", &b, next, NULL), GD_EINVAL);
    assert_int_equal(b.len, 0);
    char other[UUID_STR_LEN];
    ids_uuid4(other);
    assert_int_equal(st->ops->messages_text(st, other, 0, NULL, &b, next, NULL), GD_ENOTFOUND);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    store_close(st);
}

/* What a messages_text read in pieces handed over: the pieces joined, their count, and the
 * cursor as it was when the first came. stop_after: the receiver refuses the piece after that
 * many (0: never). */
typedef struct {
    buf all;
    size_t size, count, stop_after;
    const char *next; /* the caller's next[], looked at when the first piece comes */
    char next_at_first[STORE_CURSOR_LEN];
} pieces_seen;

static gd_err take_piece(void *ud, char *text, size_t len)
{
    pieces_seen *ps = ud;
    if (ps->stop_after && ps->count == ps->stop_after) {
        free(text);
        return GD_ECANCELLED;
    }
    assert_true(len > 0);
    assert_int_equal(len % ps->size, 0); /* whole pieces only */
    assert_int_equal(strlen(text), len); /* a NUL after them, none inside */
    if (!ps->count++) snprintf(ps->next_at_first, sizeof ps->next_at_first, "%s", ps->next);
    ok(buf_append(&ps->all, text, len));
    free(text);
    return GD_OK;
}

/* The same read whole and in pieces of size (after a prefix the caller put in out): the
 * pieces and out's rest joined are the whole text, byte for byte; next is known at the first
 * piece. Returns how many times pieces came. */
static size_t pieces_match_whole(store *st, const char *sid, long limit, const char *after,
                                 size_t size)
{
    buf whole, out;
    buf_init(&whole, BUF_CAP_HISTORY);
    buf_init(&out, BUF_CAP_HISTORY);
    char next_whole[STORE_CURSOR_LEN], next[STORE_CURSOR_LEN];
    ok(buf_puts(&whole, "{\"messages\":"));
    ok(buf_puts(&out, "{\"messages\":"));
    ok(st->ops->messages_text(st, sid, limit, after, &whole, next_whole, NULL));
    pieces_seen ps = {.size = size, .next = next};
    buf_init(&ps.all, BUF_CAP_HISTORY);
    store_pieces p = {size, take_piece, &ps};
    ok(st->ops->messages_text(st, sid, limit, after, &out, next, &p));
    assert_true(out.len < size);
    assert_int_equal(ps.all.len, whole.len / size * size); /* every whole piece handed over */
    ok(buf_append(&ps.all, out.data, out.len));
    assert_int_equal(ps.all.len, whole.len);
    assert_memory_equal(ps.all.data, whole.data, whole.len);
    assert_string_equal(next, next_whole);
    if (ps.count) assert_string_equal(ps.next_at_first, next_whole);
    buf_free(&ps.all);
    buf_free(&out);
    buf_free(&whole);
    return ps.count;
}

/* messages_text in pieces: many messages of every size (one larger than several pieces), read
 * whole and by pages in pieces of 1 byte to more than the whole: the same bytes in the same
 * order, each boundary wherever it falls (inside messages); a receiver that refuses a piece
 * stops the read with its error and out is emptied. */
static void test_messages_text_pieces(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s;
    new_session(&s, "pieces");
    ok(st->ops->session_create(st, &s));
    enum { N = 400 };
    static char text[70000];
    for (int i = 0; i < N; i++) {
        size_t len = i == 200 ? sizeof text - 1 : (size_t)(i * 37 % 1500);
        for (size_t k = 0; k < len; k++)
            text[k] = k % 61 == 60 ? '\n' : k % 13 == 12 ? '"' : (char)('a' + (i + k) % 26);
        text[len] = '\0';
        char id[UUID_STR_LEN];
        assert_int_equal(
            append(st, s.id, i % 2 ? "assistant" : "user", text_content(text), 0, 0, id), GD_OK);
    }
    static const size_t sizes[] = {1, 7, 1000, 4096, 65536, 1u << 24};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t n = pieces_match_whole(st, s.id, 0, NULL, sizes[k]);
        if (sizes[k] == 65536) assert_true(n >= 4);       /* a history of several pieces */
        if (sizes[k] == 1u << 24) assert_int_equal(n, 0); /* all of it left in out */
        pieces_match_whole(st, s.id, 150, NULL, sizes[k]);
        pieces_match_whole(st, s.id, 150, "150", sizes[k]); /* the page of the big one */
        pieces_match_whole(st, s.id, 150, "300", sizes[k]); /* the last page */
    }

    /* the receiver says stop at its third piece */
    buf out;
    buf_init(&out, BUF_CAP_HISTORY);
    char next[STORE_CURSOR_LEN];
    pieces_seen ps = {.size = 4096, .next = next, .stop_after = 2};
    buf_init(&ps.all, BUF_CAP_HISTORY);
    store_pieces p = {4096, take_piece, &ps};
    assert_int_equal(st->ops->messages_text(st, s.id, 0, NULL, &out, next, &p), GD_ECANCELLED);
    assert_int_equal(ps.count, 2);
    assert_int_equal(out.len, 0);
    /* errors before anything is read leave out as it was */
    ok(buf_puts(&out, "kept"));
    assert_int_equal(st->ops->messages_text(st, s.id, 0, "x1", &out, next, &p), GD_EINVAL);
    char other[UUID_STR_LEN];
    ids_uuid4(other);
    assert_int_equal(st->ops->messages_text(st, other, 0, NULL, &out, next, &p), GD_ENOTFOUND);
    assert_string_equal(out.data, "kept");
    buf_free(&out);
    buf_free(&ps.all);
    store_close(st);
}

/* session_read: the row, the settings and the messages of one moment, in one call. */
static void test_session_read(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, got;
    new_session(&s, "read");
    json_t *msgs =
        json_pack("[{s:s, s:o}, {s:s, s:o}]", "role", "user", "content", text_content("one"),
                  "role", "assistant", "content", text_content("two"));
    json_t *settings = json_pack("{s:s}", "execution_mode", "approve");
    ok(st->ops->session_import(st, &s, settings, msgs));
    char id[UUID_STR_LEN];
    assert_int_equal(append(st, s.id, "user", text_content("three"), 0, 0, id), GD_OK);

    json_t *set = NULL, *list = NULL;
    ok(st->ops->session_read(st, s.id, &got, &set, NULL, &list));
    assert_string_equal(got.id, s.id);
    assert_string_equal(got.name, "read");
    assert_int_equal(got.message_count, 3);
    assert_true(json_equal(set, settings));
    assert_int_equal(json_array_size(list), 3);
    const char *texts[] = {"one", "two", "three"};
    for (size_t i = 0; i < 3; i++) {
        json_t *it = json_array_get(json_object_get(json_array_get(list, i), "content"), 0);
        assert_string_equal(json_string_value(json_object_get(it, "text")), texts[i]);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "id")), id);
    json_decref(set);
    json_decref(list);

    /* settings not asked for: only the row and the messages */
    ok(st->ops->session_read(st, s.id, &got, NULL, NULL, &list));
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);

    /* a session that is not there: GD_ENOTFOUND, nothing to free */
    char unknown[UUID_STR_LEN];
    ids_uuid4(unknown);
    set = list = (json_t *)1;
    assert_int_equal(st->ops->session_read(st, unknown, &got, &set, NULL, &list), GD_ENOTFOUND);
    assert_null(set);
    assert_null(list);
    json_decref(settings);
    json_decref(msgs);
    store_close(st);
}

/* session_owner: the owner of a session made here, of one made by another handle on the same
 * database (read, then remembered), none once deleted, the same answer asked again. */
static void test_session_owner(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store *other = store_sqlite_open(dir, 0);
    store_session a, b;
    new_session(&a, "mine");
    snprintf(a.user_id, sizeof a.user_id, "user-a");
    ok(st->ops->session_create(st, &a));
    new_session(&b, "theirs");
    snprintf(b.user_id, sizeof b.user_id, "user-b");
    ok(other->ops->session_create(other, &b));

    char owner[UUID_STR_LEN];
    for (int i = 0; i < 2; i++) { /* the first time and the remembered one agree */
        ok(st->ops->session_owner(st, a.id, owner));
        assert_string_equal(owner, "user-a");
        ok(st->ops->session_owner(st, b.id, owner));
        assert_string_equal(owner, "user-b");
    }
    ok(st->ops->session_delete(st, a.id));
    assert_int_equal(st->ops->session_owner(st, a.id, owner), GD_ENOTFOUND);
    ok(st->ops->session_owner(st, b.id, owner));
    assert_string_equal(owner, "user-b");

    char unknown[UUID_STR_LEN];
    ids_uuid4(unknown);
    assert_int_equal(st->ops->session_owner(st, unknown, owner), GD_ENOTFOUND);
    assert_int_equal(st->ops->session_owner(st, "not-an-id", owner), GD_ENOTFOUND);
    store_close(other);
    store_close(st);
}

/* session_import: a session and its messages in one transaction, all of it or nothing. */
static void test_session_import(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session s, got;
    new_session(&s, "imported");
    s.input_tokens = 7;
    s.output_tokens = 3;
    json_t *msgs = json_pack("[{s:s, s:o}, {s:s, s:o}, {s:s, s:o}]", "role", "user", "content",
                             text_content("one"), "role", "assistant", "content",
                             text_content("two"), "role", "user", "content", text_content("three"));
    json_t *settings = json_pack("{s:s}", "execution_mode", "chat");
    ok(st->ops->session_import(st, &s, settings, msgs));
    assert_int_equal(s.message_count, 3);
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, 3);
    assert_int_equal(got.input_tokens, 7);
    assert_int_equal(got.output_tokens, 3);
    json_t *list, *set;
    ok(st->ops->messages_list(st, s.id, &list));
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_array_get(list, i), *want = json_array_get(msgs, i);
        assert_true(json_equal(json_object_get(m, "role"), json_object_get(want, "role")));
        assert_true(json_equal(json_object_get(m, "content"), json_object_get(want, "content")));
    }
    json_decref(list);
    ok(st->ops->session_settings_get(st, s.id, &set));
    assert_true(json_equal(set, settings));
    json_decref(set);
    /* a message appended later takes the next place */
    char id[UUID_STR_LEN];
    assert_int_equal(append(st, s.id, "assistant", text_content("four"), 0, 0, id), GD_OK);
    ok(st->ops->messages_list(st, s.id, &list));
    assert_int_equal(json_array_size(list), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 3), "id")), id);
    json_decref(list);

    /* the same id again: a conflict, and the first one is untouched */
    assert_int_equal(st->ops->session_import(st, &s, NULL, msgs), GD_ECONFLICT);
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, 4);

    /* a failure at the third message leaves nothing: not the session, not the first two */
    char db[512];
    snprintf(db, sizeof db, "%s/goosed.db", dir);
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw,
                                  "CREATE TRIGGER refuse_third BEFORE INSERT ON messages "
                                  "WHEN NEW.seq = 3 BEGIN SELECT RAISE(ABORT, 'refused'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);
    store_session t;
    new_session(&t, "half");
    assert_int_equal(st->ops->session_import(st, &t, NULL, msgs), GD_ESTORE);
    assert_non_null(strstr(store_errmsg(), "refused"));
    assert_int_equal(st->ops->session_get(st, t.id, &got), GD_ENOTFOUND);
    list = NULL;
    assert_int_equal(st->ops->messages_list(st, t.id, &list), GD_ENOTFOUND);
    sqlite3 *check;
    assert_int_equal(sqlite3_open(db, &check), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(check,
                                        "SELECT count(*) FROM messages WHERE session_id = ?1", -1,
                                        &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(q, 1, t.id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 0);
    sqlite3_finalize(q);
    sqlite3_close(check);

    /* no messages at all is a session of none */
    store_session e;
    new_session(&e, "empty");
    json_t *none = json_array();
    ok(st->ops->session_import(st, &e, NULL, none));
    ok(st->ops->session_get(st, e.id, &got));
    assert_int_equal(got.message_count, 0);
    json_decref(none);
    json_decref(settings);
    json_decref(msgs);
    store_close(st);
}

static void test_message_get_absent(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    store_session a, b;
    new_session(&a, "a");
    new_session(&b, "b");
    ok(st->ops->session_create(st, &a));
    ok(st->ops->session_create(st, &b));
    char id[UUID_STR_LEN], never[UUID_STR_LEN];
    assert_int_equal(append(st, a.id, "user", text_content("in a"), 0, 0, id), GD_OK);
    ids_uuid4(never);
    json_t *m = (json_t *)1;
    assert_int_equal(st->ops->message_get(st, a.id, never, &m), GD_ENOTFOUND);
    assert_null(m);
    assert_non_null(strstr(store_errmsg(), never));
    m = (json_t *)1;
    assert_int_equal(st->ops->message_get(st, b.id, id, &m), GD_ENOTFOUND); /* another's */
    assert_null(m);
    m = (json_t *)1;
    assert_int_equal(st->ops->message_get(st, never, id, &m), GD_ENOTFOUND);
    assert_null(m);
    ok(st->ops->message_get(st, a.id, id, &m));
    json_decref(m);
    ok(st->ops->session_delete(st, a.id));
    assert_int_equal(st->ops->message_get(st, a.id, id, &m), GD_ENOTFOUND);
    store_close(st);
}

/* ---- crash repair ---- */

static json_t *find_unfinished(json_t *arr, const char *sid)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "session_id")), sid))
            return json_object_get(e, "message");
    }
    return NULL;
}

static void test_sessions_unfinished(void **state)
{
    store *st = store_sqlite_open(dir, 0);
    json_t *arr = NULL;
    ok(st->ops->sessions_unfinished(st, &arr));
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);

    /* u: a user's text, a: the assistant's text, A: its tool request, r: a tool response.
     * Empty; user last; a text reply last; a tool request last (twice); the results of a round
     * last; a user's text after a tool request; a text mentioning "tool_request"; a round of
     * tools closed by the reply after it. */
    const char *shapes[9] = {"", "u", "ua", "uA", "uaA", "uAr", "uAu", "uaq", "uAra"};
    store_session s[9];
    char id[UUID_STR_LEN];
    for (int i = 0; i < 9; i++) {
        new_session(&s[i], shapes[i]);
        ok(st->ops->session_create(st, &s[i]));
        for (const char *r = shapes[i]; *r; r++) {
            char text[32];
            snprintf(text, sizeof text, "%s #%d", shapes[i], (int)(r - shapes[i]));
            json_t *c = *r == 'A'   ? json_pack("[{s:s, s:s, s:s}]", "type", "tool_request", "id",
                                                "c1", "name", "x__a")
                        : *r == 'r' ? json_pack("[{s:s, s:s, s:[]}]", "type", "tool_response", "id",
                                                "c1", "content")
                        : *r == 'q' ? text_content("\"tool_request\"")
                                    : text_content(text);
            assert_int_equal(
                append(st, s[i].id, *r == 'a' || *r == 'A' ? "assistant" : "user", c, 0, 0, id),
                GD_OK);
        }
    }
    /* Imported (or forked) with a tool request last, and with a closed round. */
    store_session imp[2];
    for (int i = 0; i < 2; i++) {
        new_session(&imp[i], i ? "imported, closed" : "imported, open");
        json_t *last =
            i ? text_content("done")
              : json_pack("[{s:s, s:s, s:s}]", "type", "tool_request", "id", "c9", "name", "x__a");
        json_t *msgs = json_pack("[{s:s, s:o}, {s:s, s:o}]", "role", "user", "content",
                                 text_content("go"), "role", "assistant", "content", last);
        assert_non_null(msgs);
        ok(st->ops->session_import(st, &imp[i], NULL, msgs));
        json_decref(msgs);
    }
    ok(st->ops->sessions_unfinished(st, &arr));
    assert_int_equal(json_array_size(arr), 4);
    assert_non_null(find_unfinished(arr, imp[0].id));
    assert_null(find_unfinished(arr, imp[1].id));
    for (int i = 3; i <= 5; i++) {
        json_t *m = find_unfinished(arr, s[i].id), *msgs;
        assert_non_null(m);
        ok(st->ops->messages_list(st, s[i].id, &msgs));
        size_t n = json_array_size(msgs);
        assert_true(json_equal(m, json_array_get(msgs, n - 1)));
        json_t *row = NULL, *e;
        size_t k;
        json_array_foreach(arr, k, e) if (json_object_get(e, "message") == m) row = e;
        if (i == 5) /* the round's results last: the reply before them comes along */
            assert_true(json_equal(json_object_get(row, "previous"), json_array_get(msgs, n - 2)));
        else
            assert_null(json_object_get(row, "previous"));
        json_decref(msgs);
    }
    json_decref(arr);
    store_close(st);
}

/* What migrations 9 and 10 made, undone: the start of the SQL that writes a file as a goosed of
 * an earlier schema left it. */
#define UNDO_9_10                                                                                  \
    "DROP TRIGGER user_items_added; DROP TRIGGER user_items_changed; DROP TRIGGER "                \
    "user_items_removed; DROP TABLE user_items_version; DROP TRIGGER sessions_sealed; DROP TABLE " \
    "sessions_unsealed; "

/* A store file made by the store (the current schema), closed, and the SQLite connection to it
 * a test rewrites it through (as an older goosed, or another program, would have left it);
 * path: the file's. */
static sqlite3 *db_made(char path[PATH_MAX])
{
    store *st = store_sqlite_open(dir, 0);
    snprintf(path, PATH_MAX, "%s", ((sqlite_store *)st)->path);
    store_close(st);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Column col of the first row sql gives on db, as an integer. */
static int64_t sql_int(sqlite3 *db, const char *sql, int col)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, col);
    sqlite3_finalize(q);
    return v;
}

/* With 10k sessions: one indexed lookup per session, never a scan of messages. The time is
 * printed, not asserted. */
static void test_sessions_unfinished_many(void **state)
{
    /* The sessions are written as a goosed of schema 5 left them (no open_round), and found by
     * migration 6 when the store opens them. */
    char path[PATH_MAX];
    sqlite3 *db = db_made(path);
    enum { S = 10000, PER = 4 };
    assert_int_equal(
        sqlite3_exec(db,
                     UNDO_9_10
                     "DROP INDEX sessions_open; ALTER TABLE sessions DROP COLUMN "
                     "open_round; ALTER TABLE sessions DROP COLUMN summary; ALTER TABLE sessions "
                     "DROP COLUMN summary_count; UPDATE schema_version SET version = 5",
                     NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *is, *im;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO sessions(id, name, working_dir, created_us, "
                                        "updated_us) VALUES (?1, 'many', '/tmp', ?2, ?2)",
                                        -1, &is, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO messages(id, session_id, seq, role, content, "
                                        "created_us) VALUES (?1, ?2, ?3, ?4, ?6, ?5)",
                                        -1, &im, NULL),
                     SQLITE_OK);
    int want = 0;
    for (int i = 0; i < S; i++) {
        char sid[32], mid[48];
        snprintf(sid, sizeof sid, "session-%05d", i);
        sqlite3_bind_text(is, 1, sid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(is, 2, 1000000LL * i);
        assert_int_equal(sqlite3_step(is), SQLITE_DONE);
        sqlite3_reset(is);
        /* every third session ends with the assistant's message */
        bool unfinished = i % 3 == 0;
        want += unfinished;
        for (int k = 1; k <= PER; k++) {
            snprintf(mid, sizeof mid, "%s-m%d", sid, k);
            sqlite3_bind_text(im, 1, mid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(im, 2, sid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(im, 3, k);
            bool assistant = (k % 2 == 0) == unfinished;
            sqlite3_bind_text(im, 4, assistant ? "assistant" : "user", -1, SQLITE_STATIC);
            sqlite3_bind_text(im, 6,
                              assistant ? "[{\"type\":\"tool_request\",\"id\":\"c\"}]" : "[]", -1,
                              SQLITE_STATIC);
            sqlite3_bind_int64(im, 5, 1000000LL * i + k);
            assert_int_equal(sqlite3_step(im), SQLITE_DONE);
            sqlite3_reset(im);
        }
    }
    sqlite3_finalize(is);
    sqlite3_finalize(im);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store *st = store_sqlite_open(dir, 0); /* migration 6 */
    ok(st->ops->health(st));
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);

    /* The plan: only the sessions of the partial index, messages only searched through an
     * index. */
    sqlite3_stmt *plan;
    char sql[1024];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", stmt_sql[ST_UNFINISHED]);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &plan, NULL), SQLITE_OK);
    int searches = 0, open = 0;
    while (sqlite3_step(plan) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(plan, 3);
        if (strstr(detail, "sessions_open")) open++;
        if (strstr(detail, "lastmsg") || strstr(detail, "prev") || strstr(detail, "pmsg") ||
            strstr(detail, "qmsg")) {
            if (strncmp(detail, "SEARCH", 6) || !strstr(detail, "INDEX"))
                fail_msg("messages is not searched through an index: %s", detail);
            searches++;
        }
    }
    sqlite3_finalize(plan);
    sqlite3_close(db);
    assert_int_equal(searches, 4);
    assert_int_equal(open, 1);

    struct timespec t0, t1;
    json_t *arr;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok(st->ops->sessions_unfinished(st, &arr));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(json_array_size(arr), want);
    json_t *m = find_unfinished(arr, "session-00003");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "session-00003-m4");
    assert_null(find_unfinished(arr, "session-00001"));
    printf("# sessions_unfinished: %d sessions of %d messages, %zu unfinished, %.1f ms\n", S, PER,
           json_array_size(arr), (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    json_decref(arr);
    store_close(st);
}

/* Migration 7: the session indexes of a schema-6 store (descending) rebuilt ascending; the
 * lists and pages still read them newest first without a sort, in the same order (ties on
 * created_us broken by the id); and sessions made in time order keep them packed, where the
 * descending ones ended about twice the size of the id's own index. */
static int64_t pages_of(sqlite3 *db, const char *name)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM dbstat WHERE name = '%s'", name);
    return sql_int(db, sql, 0);
}

static void insert_sessions(sqlite3 *db, int from, int to)
{
    sqlite3_stmt *is;
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO sessions(id, name, working_dir, created_us, "
                                        "updated_us, user_id) VALUES (?1, 'idx', '/tmp', ?2, ?2, "
                                        "?3)",
                                        -1, &is, NULL),
                     SQLITE_OK);
    for (int i = from; i < to; i++) {
        /* In time order, as ids_uuid7 makes them; but every third shares its predecessor's time
         * and has the smaller id of the two (as two ids of one millisecond may): the newer of
         * them by the id is the one made first. */
        int num = i % 3 == 1 ? i + 1 : i % 3 == 2 ? i - 1 : i;
        char sid[48];
        snprintf(sid, sizeof sid, "%08x-0000-7000-8000-%012x", (unsigned)num, (unsigned)num);
        sqlite3_bind_text(is, 1, sid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(is, 2, 1000LL * (i - (i % 3 == 2)));
        sqlite3_bind_text(is, 3, num % 2 ? "u1" : "u2", -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(is), SQLITE_DONE);
        sqlite3_reset(is);
    }
    sqlite3_finalize(is);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
}

static void test_session_indexes_ascending(void **state)
{
    char path[PATH_MAX];
    sqlite3 *db = db_made(path);
    enum { BEFORE = 900, AFTER = 9000 }; /* each a multiple of 3: no tie is split */
    assert_int_equal(
        sqlite3_exec(
            db,
            UNDO_9_10
            "DROP INDEX sessions_by_created; DROP INDEX sessions_by_user; "
            "CREATE INDEX sessions_by_created ON sessions(created_us DESC, "
            "id DESC); CREATE INDEX sessions_by_user ON sessions(user_id, "
            "created_us DESC, id DESC); ALTER TABLE sessions DROP COLUMN summary; ALTER TABLE "
            "sessions DROP COLUMN summary_count; UPDATE schema_version SET version = 6",
            NULL, NULL, NULL),
        SQLITE_OK);
    insert_sessions(db, 0, BEFORE);
    sqlite3_close(db);

    store *st = store_sqlite_open(dir, 0); /* migration 7 */
    ok(st->ops->health(st));
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sql_int(db,
                             "SELECT count(*) FROM sqlite_schema WHERE name IN "
                             "('sessions_by_created', 'sessions_by_user') AND sql NOT LIKE "
                             "'%DESC%'",
                             0),
                     2);
    sqlite3_stmt *q;

    /* Each list and page statement: through its index, never a sort of its own. */
    const enum stmt_id lists[] = {ST_SESSION_LIST, ST_SESSION_LIST_OWNED, ST_SESSION_PAGE,
                                  ST_SESSION_PAGE_OWNED};
    for (size_t k = 0; k < sizeof lists / sizeof *lists; k++) {
        char sql[1024];
        snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", stmt_sql[lists[k]]);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
        int indexed = 0;
        while (sqlite3_step(q) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(q, 3);
            if (strstr(detail, "TEMP B-TREE")) fail_msg("%s sorts: %s", stmt_sql[lists[k]], detail);
            indexed += strstr(detail, "INDEX sessions_by_") != NULL;
        }
        sqlite3_finalize(q);
        if (indexed != 1) fail_msg("%s does not read a session index", stmt_sql[lists[k]]);
    }

    /* Sessions made after it, as goosed makes them: the index stays packed. */
    insert_sessions(db, BEFORE, BEFORE + AFTER);
    int64_t by_id = pages_of(db, "sqlite_autoindex_sessions_1");
    int64_t by_created = pages_of(db, "sessions_by_created");
    int64_t by_user = pages_of(db, "sessions_by_user");
    sqlite3_close(db);
    printf("# session indexes, pages: id %lld, created %lld, user %lld\n", (long long)by_id,
           (long long)by_created, (long long)by_user);
    assert_true(by_created * 10 <= by_id * 14);
    assert_true(by_user * 10 <= by_id * 14);

    /* Newest first, ties by the id, every page by cursor; and one user's alone. */
    for (int owned = 0; owned < 2; owned++) {
        char next[STORE_CURSOR_LEN] = "", cur[STORE_CURSOR_LEN];
        int at = BEFORE + AFTER - 1, seen = 0;
        do {
            store_session *l;
            size_t n;
            snprintf(cur, sizeof cur, "%s", next);
            ok(st->ops->session_page(st, owned ? "u1" : NULL, 97, cur, &l, &n, next));
            for (size_t i = 0; i < n; i++, at--) {
                if (owned && at % 2 == 0) at--;
                char want[48];
                snprintf(want, sizeof want, "%08x-0000-7000-8000-%012x", (unsigned)at,
                         (unsigned)at);
                assert_string_equal(l[i].id, want);
                seen++;
            }
            free_list(l);
        } while (next[0]);
        assert_int_equal(seen, owned ? (BEFORE + AFTER) / 2 : BEFORE + AFTER);
    }
    store_session *l;
    size_t n;
    long total;
    ok(st->ops->session_list(st, 3, BEFORE + AFTER - 3, &l, &n, &total));
    assert_int_equal(n, 3);
    assert_int_equal(total, BEFORE + AFTER);
    assert_string_equal(l[2].id, "00000000-0000-7000-8000-000000000000");
    free_list(l);
    store_close(st);
}

/* Migration 9 lists the sessions whose settings name extensions added (an earlier goosed kept
 * their headers and envs in plain text); a session leaves the list when its settings are written
 * again, or when it is deleted. */
static void test_sessions_unsealed(void **state)
{
    char path[PATH_MAX];
    sqlite3 *db = db_made(path);
    assert_int_equal(
        sqlite3_exec(
            db,
            UNDO_9_10
            "UPDATE schema_version SET version = 8; "
            "INSERT INTO sessions(id, name, working_dir, created_us, updated_us, settings) VALUES "
            "('s-plain', 'a', '/tmp', 1, 1, '{\"extensions\":{\"add\":{\"x\":{\"type\":"
            "\"stdio\",\"envs\":{\"K\":\"v\"}}}}}'), "
            "('s-gone', 'b', '/tmp', 2, 2, '{\"extensions\":{\"add\":{}}}'), "
            "('s-none', 'c', '/tmp', 3, 3, '{\"execution_mode\":\"auto\"}'), "
            "('s-empty', 'd', '/tmp', 4, 4, '{}')",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    store *st = store_sqlite_open(dir, 0); /* migration 9 */
    json_t *ids;
    ok(st->ops->sessions_unsealed(st, &ids));
    assert_int_equal(json_array_size(ids), 2);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "s-gone");
    assert_string_equal(json_string_value(json_array_get(ids, 1)), "s-plain");
    json_decref(ids);
    ok(st->ops->session_delete(st, "s-gone"));
    json_t *settings = json_pack("{s:s}", "execution_mode", "chat");
    ok(st->ops->session_settings_set(st, "s-plain", settings));
    json_decref(settings);
    ok(st->ops->sessions_unsealed(st, &ids));
    assert_int_equal(json_array_size(ids), 0);
    json_decref(ids);
    store_close(st);
    st = store_sqlite_open(dir, 0); /* not migrated again: the list stays empty */
    ok(st->ops->sessions_unsealed(st, &ids));
    assert_int_equal(json_array_size(ids), 0);
    json_decref(ids);
    store_close(st);
}

/* The migrations a file lacks run as one transaction: one that fails leaves the file as it was
 * (its version and the earlier ones' changes too), and the open says which statement failed. */
static void test_migrations_all_or_none(void **state)
{
    char path[PATH_MAX];
    sqlite3 *db = db_made(path);
    /* schema 5, lacking an index migration 7 drops (6 runs, 7 fails) */
    assert_int_equal(
        sqlite3_exec(db,
                     UNDO_9_10
                     "DROP INDEX sessions_open; ALTER TABLE sessions DROP COLUMN "
                     "open_round; ALTER TABLE sessions DROP COLUMN summary; ALTER TABLE sessions "
                     "DROP COLUMN summary_count; UPDATE schema_version SET version = 5; DROP INDEX "
                     "sessions_by_created",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    store *st = store_sqlite_open(dir, 0);
    assert_estore(st->ops->health(st), "health", "no such index: sessions_by_created");
    store_close(st);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sql_int(db, "SELECT version FROM schema_version", 0), 5);
    /* migration 6's column went with the rest */
    assert_int_equal(
        sql_int(db, "SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'open_round'",
                0),
        0);
    /* the index back: all of them, once */
    assert_int_equal(sqlite3_exec(db, "CREATE INDEX sessions_by_created ON sessions(created_us)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    st = store_sqlite_open(dir, 0);
    ok(st->ops->health(st));
    store_close(st);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sql_int(db, "SELECT version FROM schema_version", 0), NMIGRATIONS);
    sqlite3_close(db);
}

/* ---- opening ---- */

static void test_opening_is_not_waited_for(void **state)
{
    /* While one caller opens the store (without holding its mutex), others answer at once. */
    char bad[400];
    dir_under_file(root, "plainfile", bad, sizeof bad);
    store *st = store_sqlite_open(bad, 0);
    sqlite_store *ss = (sqlite_store *)st;
    pthread_mutex_lock(&ss->mu);
    ss->opening = true;
    ss->last_try = 0;
    pthread_mutex_unlock(&ss->mu);
    assert_estore(st->ops->health(st), "health", "the store is opening");
    store_session s;
    new_session(&s, "x");
    assert_estore(st->ops->session_create(st, &s), "session_create", "the store is opening");
    waiter w;
    waiter_init(&w);
    st->ops->session_create_async(st, &s, on_done, &w);
    assert_int_equal(calls(&w), 1);
    assert_int_equal(w.e, GD_ESTORE);
    pthread_mutex_lock(&ss->mu);
    ss->opening = false;
    pthread_cond_broadcast(&ss->opened);
    pthread_mutex_unlock(&ss->mu);
    store_close(st);
}

/* ---- living beside the real Goose ---- */

/* The shape of the real Goose's own sessions.db (schema version 11): other tables, other
 * columns. */
static const char real_goose_sql[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT "
    "CURRENT_TIMESTAMP);"
    "WITH RECURSIVE v(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM v WHERE n < 11) "
    "INSERT INTO schema_version(version) SELECT n FROM v;"
    "CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT DEFAULT '', description TEXT, "
    "working_dir TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at "
    "TIMESTAMP DEFAULT CURRENT_TIMESTAMP, thread_id TEXT);"
    "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, "
    "role TEXT NOT NULL, content_json TEXT NOT NULL, created_timestamp INTEGER NOT NULL, "
    "message_id TEXT);"
    "CREATE TABLE threads (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT 'New Chat');"
    "CREATE TABLE thread_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, thread_id TEXT NOT "
    "NULL, role TEXT NOT NULL, content_json TEXT NOT NULL);"
    "INSERT INTO sessions(id, working_dir) VALUES ('20250101_1', '/home/me');"
    "INSERT INTO messages(session_id, role, content_json, created_timestamp) VALUES "
    "('20250101_1', 'user', '[]', 1735689600);";

static void make_dirs_for_test(void)
{
    char err[256];
    assert_int_equal(make_dirs(dir, err, sizeof err), GD_OK);
}

static void exec_file(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", path, msg);
    sqlite3_close(db);
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *b = malloc(*n ? *n : 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* Whether path followed by suffix exists. */
static bool file_exists(const char *path, const char *suffix)
{
    char p[600];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    struct stat sb;
    return stat(p, &sb) == 0;
}

static long long app_id_of(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char err[128];
    long long v = query_int(db, "PRAGMA application_id", err, sizeof err);
    sqlite3_close(db);
    return v;
}

/* Byte for byte the same, and nothing made beside it. */
static void assert_untouched(const char *path, const char *was, size_t n)
{
    size_t m;
    char *now = slurp(path, &m);
    assert_int_equal(m, n);
    assert_memory_equal(now, was, n);
    free(now);
    assert_false(file_exists(path, "-wal"));
    assert_false(file_exists(path, "-shm"));
    assert_false(file_exists(path, "-journal"));
}

static void test_beside_real_goose(void **state)
{
    make_dirs_for_test();
    char real[300];
    snprintf(real, sizeof real, "%s/sessions.db", dir);
    exec_file(real, real_goose_sql);
    size_t n;
    char *was = slurp(real, &n);

    store *st = store_sqlite_open(dir, 0);
    ok(st->ops->health(st));
    store_session s, got;
    new_session(&s, "mine");
    ok(st->ops->session_create(st, &s));
    char id[UUID_STR_LEN];
    assert_int_equal(append(st, s.id, "user", text_content("hi"), 0, 0, id), GD_OK);
    store_close(st);
    st = store_sqlite_open(dir, 0);
    ok(st->ops->session_get(st, s.id, &got));
    assert_int_equal(got.message_count, 1);
    store_close(st);

    char mine[300];
    snprintf(mine, sizeof mine, "%s/goosed.db", dir);
    assert_int_equal(app_id_of(mine), STORE_SQLITE_APP_ID);
    assert_untouched(real, was, n);
    free(was);
}

static void test_beside_other_sessions_db(void **state)
{
    /* A newer goosed's database, an empty SQLite file, and junk: all left as they are. */
    static const char *const cases[] = {
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version "
        "VALUES (99);"
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, name TEXT NOT NULL, working_dir TEXT NOT "
        "NULL, created_us INTEGER NOT NULL, updated_us INTEGER NOT NULL, message_count INTEGER "
        "NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT "
        "NULL DEFAULT 0);"
        "CREATE TABLE messages (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, seq INTEGER NOT "
        "NULL, role TEXT NOT NULL, content TEXT NOT NULL, created_us INTEGER NOT NULL);",
        "PRAGMA user_version = 7;",
        "PRAGMA application_id = 1234; CREATE TABLE sessions (id TEXT);", NULL, /* junk */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        teardown(state);
        setup(state);
        make_dirs_for_test();
        char real[300];
        snprintf(real, sizeof real, "%s/sessions.db", dir);
        if (cases[i]) {
            exec_file(real, cases[i]);
        } else {
            FILE *f = fopen(real, "w");
            for (int k = 0; k < 4096; k++)
                fputc((k * 7919) & 0xff, f);
            fclose(f);
        }
        size_t n;
        char *was = slurp(real, &n);
        store *st = store_sqlite_open(dir, 0);
        ok(st->ops->health(st));
        store_session s;
        new_session(&s, "mine");
        ok(st->ops->session_create(st, &s));
        store_close(st);
        assert_untouched(real, was, n);
        free(was);
    }
}

/* Makes dir/sessions.db as an older goosed left it: goosed's schema, no application_id, and
 * (after a kill -9) the last session still in its WAL. Returns that session's id. */
static void make_old_goosed_db(store_session *kept, store_session *in_wal)
{
    store *st = store_sqlite_open(dir, 0);
    new_session(kept, "from the old file");
    ok(st->ops->session_create(st, kept));
    char id[UUID_STR_LEN];
    assert_int_equal(append(st, kept->id, "user", text_content("old message"), 3, 0, id), GD_OK);
    store_close(st);
    char from[300], to[300];
    snprintf(from, sizeof from, "%s/goosed.db", dir);
    snprintf(to, sizeof to, "%s/sessions.db", dir);
    assert_int_equal(rename(from, to), 0);
    exec_file(to, "PRAGMA application_id = 0");
    /* One more session, left in the WAL as a crash leaves it. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(to, &db), SQLITE_OK);
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL), SQLITE_OK);
    new_session(in_wal, "only in the wal");
    char sql[512];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL; INSERT INTO sessions(id, name, working_dir, created_us, "
             "updated_us) VALUES ('%s', 'only in the wal', '/tmp', 1, 1);",
             in_wal->id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_true(file_exists(to, "-wal"));
}

static void test_old_goosed_db_moved(void **state)
{
    store_session kept, in_wal, got;
    make_old_goosed_db(&kept, &in_wal);
    store *st = store_sqlite_open(dir, 0);
    ok(st->ops->health(st));
    ok(st->ops->session_get(st, kept.id, &got));
    assert_string_equal(got.name, "from the old file");
    assert_int_equal(got.message_count, 1);
    assert_int_equal(got.input_tokens, 3);
    ok(st->ops->session_get(st, in_wal.id, &got));
    json_t *msgs;
    ok(st->ops->messages_list(st, kept.id, &msgs));
    assert_int_equal(json_array_size(msgs), 1);
    json_decref(msgs);
    store_session s;
    new_session(&s, "new");
    ok(st->ops->session_create(st, &s));
    /* the counts of migration 5 start from the sessions already there */
    long cnt = -1;
    ok(st->ops->session_count(st, NULL, &cnt));
    assert_int_equal(cnt, 3);
    store_close(st);

    char p[300];
    snprintf(p, sizeof p, "%s/sessions.db", dir);
    assert_false(file_exists(p, ""));
    assert_false(file_exists(p, "-wal"));
    assert_false(file_exists(p, "-shm"));
    snprintf(p, sizeof p, "%s/goosed.db", dir);
    assert_int_equal(app_id_of(p), STORE_SQLITE_APP_ID);

    /* Once: the next start opens goosed.db and finds no sessions.db. */
    st = store_sqlite_open(dir, 0);
    ok(st->ops->session_get(st, s.id, &got));
    store_close(st);
}

static void test_old_goosed_db_in_use(void **state)
{
    /* Another process still has goosed's old file open: it is not moved, the store stays down
     * and says why, and nothing is lost. */
    store_session kept, in_wal, got;
    make_old_goosed_db(&kept, &in_wal);
    char old[300];
    snprintf(old, sizeof old, "%s/sessions.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM sessions", NULL, NULL, NULL),
                     SQLITE_OK);
    store *st = store_sqlite_open(dir, 0);
    assert_estore(st->ops->health(st), "health", "is another goosed using it?");
    store_close(st);
    assert_true(file_exists(old, ""));
    assert_false(file_exists(dir, "/goosed.db"));
    sqlite3_close(db);

    st = store_sqlite_open(dir, 0);
    ok(st->ops->session_get(st, kept.id, &got));
    ok(st->ops->session_get(st, in_wal.id, &got));
    store_close(st);
    assert_false(file_exists(old, ""));
}

static void test_interrupted_move_finished(void **state)
{
    /* A move cut short after link(): both names for one file. The second one goes. */
    store *st = store_sqlite_open(dir, 0);
    store_session s, got;
    new_session(&s, "linked");
    ok(st->ops->session_create(st, &s));
    store_close(st);
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/goosed.db", dir);
    snprintf(b, sizeof b, "%s/sessions.db", dir);
    assert_int_equal(link(a, b), 0);
    st = store_sqlite_open(dir, 0);
    ok(st->ops->session_get(st, s.id, &got));
    store_close(st);
    assert_false(file_exists(b, ""));
}

static void test_foreign_goosed_db(void **state)
{
    /* A goosed.db that is not goosed's is refused, and not written to. */
    make_dirs_for_test();
    char p[300];
    snprintf(p, sizeof p, "%s/goosed.db", dir);
    exec_file(p, real_goose_sql);
    exec_file(p, "PRAGMA journal_mode=DELETE");
    size_t n;
    char *was = slurp(p, &n);
    store *st = store_sqlite_open(dir, 0);
    assert_estore(st->ops->health(st), "health", "is not goosed's database");
    assert_non_null(strstr(store_errmsg(), "thread"));
    store_close(st);
    assert_untouched(p, was, n);
    free(was);

    exec_file(p, "DROP TABLE threads; DROP TABLE thread_messages; DROP TABLE messages; DROP "
                 "TABLE sessions; DROP TABLE schema_version; PRAGMA application_id = 42;");
    st = store_sqlite_open(dir, 0);
    assert_estore(st->ops->health(st), "health", "application_id is 0x0000002a");
    store_close(st);
}

/* An optional argument runs only the tests whose names match it ("test_list*"). */
int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_dirs),
        T(test_create_get),
        T(test_names_roundtrip),
        T(test_duplicate_id),
        T(test_list),
        T(test_list_bad_bounds),
        T(test_empty_dir),
        T(test_delete),
        T(test_messages_list),
        T(test_session_read),
        T(test_session_owner),
        T(test_reopen),
        T(test_parent_is_a_file),
        T(test_dir_is_a_file),
        T(test_not_a_database),
        T(test_newer_schema),
        T(test_errmsg_per_thread),
        T(test_recovers),
        T(test_concurrent_creates),
        T(test_batched_commit),
        T(test_write_that_may_wait),
        T(test_writes_wait_in_one_batch_during_a_sync),
        T(test_savepoint_rollback),
        T(test_async_paths),
        T(test_queue_bound),
        T(test_delete_while_queued),
        T(test_messages_roundtrip),
        T(test_messages_text),
        T(test_messages_text_pieces),
        T(test_session_import),
        T(test_message_get_absent),
        T(test_sessions_unfinished),
        T(test_message_update),
        T(test_sessions_unfinished_many),
        T(test_sessions_unsealed),
        T(test_session_indexes_ascending),
        T(test_migrations_all_or_none),
        T(test_opening_is_not_waited_for),
        T(test_beside_real_goose),
        T(test_beside_other_sessions_db),
        T(test_old_goosed_db_moved),
        T(test_old_goosed_db_in_use),
        T(test_interrupted_move_finished),
        T(test_foreign_goosed_db),
    };
    return cmocka_run_group_tests_name("store", tests, group_setup, NULL);
}
