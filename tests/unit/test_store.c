/* Unit tests for store (SQLite backend): sessions CRUD, persistence, a store that cannot open,
 * and concurrent writers through the group-commit writer. Each test gets a fresh temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ids.h"
#include "core/log.h"
#include "store/store.h"

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
    store *st = store_sqlite_open(dir);
    assert_non_null(st);
    assert_string_equal(st->ops->name, "sqlite");
    ok(st->ops->health(st));
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    char db[512];
    snprintf(db, sizeof db, "%s/sessions.db", dir);
    assert_int_equal(stat(db, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    store_close(st);
    store_close(NULL); /* harmless */
}

static void test_create_get(void **state)
{
    store *st = store_sqlite_open(dir);
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
    store *st = store_sqlite_open(dir);
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
    store *st = store_sqlite_open(dir);
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
    store *st = store_sqlite_open(dir);
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
    store_close(st);
}

/* regression: LIMIT -1 means "all" to SQLite and overflowed a one-slot page */
static void test_list_bad_bounds(void **state)
{
    store *st = store_sqlite_open(dir);
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
    store *st = store_sqlite_open("");
    assert_int_equal(st->ops->health(st), GD_ESTORE);
    assert_non_null(strstr(store_errmsg(), "no data directory"));
    store_close(st);
}

static void test_delete(void **state)
{
    store *st = store_sqlite_open(dir);
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
    store *st = store_sqlite_open(dir);
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
    store *st = store_sqlite_open(dir);
    store_session a, b, got;
    new_session(&a, "kept-a");
    new_session(&b, "kept-b");
    ok(st->ops->session_create(st, &a));
    ok(st->ops->session_create(st, &b));
    store_close(st);

    st = store_sqlite_open(dir);
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

    st = store_sqlite_open(dir);
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
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(bad, sizeof bad, "%s/sessions", file);

    store *st = store_sqlite_open(bad);
    assert_non_null(st); /* never NULL: it answers GD_ESTORE instead */
    assert_all_fail(st, "cannot create directory", bad);
    assert_non_null(strstr(store_errmsg(), "Not a directory"));
    store_close(st);

    /* Deeper: the file is a middle level. */
    snprintf(bad, sizeof bad, "%s/x/y", file);
    st = store_sqlite_open(bad);
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
    store *st = store_sqlite_open(file);
    assert_all_fail(st, "sessions.db", "sessions.db");
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
    snprintf(p, sizeof p, "%s/sessions.db", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("this is not an SQLite database, just some text long enough to have a header......\n"
          "..................................................................................\n",
          f);
    fclose(f);
    store *st = store_sqlite_open(dir);
    assert_all_fail(st, "sessions.db", "sessions.db");
    assert_non_null(strstr(store_errmsg(), "not a database"));
    store_close(st);
}

static void test_newer_schema(void **state)
{
    /* A database written by a newer goosed is refused, not migrated backwards. */
    store *st = store_sqlite_open(dir);
    ok(st->ops->health(st));
    store_close(st);
    char p[300];
    snprintf(p, sizeof p, "%s/sessions.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    st = store_sqlite_open(dir);
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
    /* A store that could not open retries (at most once a second) and recovers. */
    char file[300], sub[400];
    snprintf(file, sizeof file, "%s/later", root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(sub, sizeof sub, "%s/sessions", file);
    store *st = store_sqlite_open(sub);
    assert_int_equal(st->ops->health(st), GD_ESTORE);
    assert_int_equal(unlink(file), 0);
    /* Wait until the wall-clock second changes: the retry throttle counts whole seconds. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec ts = {0, 1000000000L - now.tv_nsec + 20 * 1000000L};
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec = 1;
        ts.tv_nsec -= 1000000000L;
    }
    nanosleep(&ts, NULL);
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
    store *st = store_sqlite_open(dir);
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
    st = store_sqlite_open(dir);
    ok(st->ops->session_list(st, 1, 0, &l, &n, &total));
    assert_int_equal(total, THREADS * PER_THREAD);
    free(l);
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
        T(test_reopen),
        T(test_parent_is_a_file),
        T(test_dir_is_a_file),
        T(test_not_a_database),
        T(test_newer_schema),
        T(test_errmsg_per_thread),
        T(test_recovers),
        T(test_concurrent_creates),
    };
    return cmocka_run_group_tests_name("store", tests, group_setup, NULL);
}
