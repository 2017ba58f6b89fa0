/* bench/history_read: how fast SQLite alone reads a session's messages, for comparing goosed's
 * GET /api/sessions/{id}/messages with.
 *
 *   history_read [-s SECONDS] [-l LIMIT] [-a AFTER] [-t THREADS] DB SESSION_ID
 *
 * Reads the rows goosed serves, with the statement goosed's store uses for them (prepared once):
 *   SELECT id, role, content, created_us, seq FROM messages
 *   WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3
 * with ?2 = AFTER (default 0: from the first message) and ?3 = LIMIT + 1 as the store asks for one
 * more row to know whether a next page follows (LIMIT 0, the default: every row, ?3 = -1). Each
 * read steps over every row and touches each column: the text of id, role and content (their
 * bytes summed, and the content's last byte read, so the text is really fetched), created_us and
 * seq as integers. No JSON is parsed or written: this is the rate SQLite alone gives. THREADS
 * readers (default 1), each on its own read-only connection, read over and over for SECONDS
 * (default 3). Prints one line:
 *   reads_s=R rows_s=W rows=N bytes=B p50_ms=P p99_ms=Q max_ms=M reads=K seconds=T
 * (rows and bytes of one read; latency of each read). Exit 0 on success, 1 when the database
 * cannot be read or the session has no rows, 2 on usage errors. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *db_path, *session_id;
static long limit;
static long long after;
static double seconds = 3;
static double t_end;

struct reader {
    pthread_t th;
    double *lat; /* ms per read */
    size_t nlat, cap;
    long rows;
    long long bytes;
    unsigned sink;
    bool failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v3(db,
                           "SELECT id, role, content, created_us, seq FROM messages WHERE "
                           "session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                           -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "history_read: %s: %s\n", db_path, db ? sqlite3_errmsg(db) : "no memory");
        r->failed = true;
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_bind_text(st, 1, session_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, limit ? limit + 1 : -1);
    do {
        double t0 = now_s();
        long rows = 0;
        long long bytes = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            for (int col = 0; col < 3; col++) {
                const unsigned char *text = sqlite3_column_text(st, col);
                int n = sqlite3_column_bytes(st, col);
                bytes += n;
                if (text && n > 0) r->sink += text[n - 1];
            }
            r->sink +=
                (unsigned)sqlite3_column_int64(st, 3) + (unsigned)sqlite3_column_int64(st, 4);
            rows++;
        }
        sqlite3_reset(st);
        double t1 = now_s();
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "history_read: %s: %s\n", db_path, sqlite3_errmsg(db));
            r->failed = true;
            break;
        }
        if (r->nlat == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 1024;
            r->lat = realloc(r->lat, r->cap * sizeof *r->lat);
            if (!r->lat) abort();
        }
        r->lat[r->nlat++] = (t1 - t0) * 1e3;
        r->rows = rows;
        r->bytes = bytes;
    } while (now_s() < t_end);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = 1, opt;
    while ((opt = getopt(argc, argv, "s:l:a:t:")) != -1) {
        if (opt == 's')
            seconds = atof(optarg);
        else if (opt == 'l')
            limit = atol(optarg);
        else if (opt == 'a')
            after = atoll(optarg);
        else if (opt == 't')
            threads = atoi(optarg);
        else
            break;
    }
    if (optind != argc - 2 || seconds <= 0 || limit < 0 || after < 0 || threads < 1 ||
        threads > 256) {
        fprintf(stderr, "usage: history_read [-s SECONDS] [-l LIMIT (0: all)] [-a AFTER_SEQ] "
                        "[-t THREADS 1..256] DB SESSION_ID\n");
        return 2;
    }
    db_path = argv[optind];
    session_id = argv[optind + 1];
    struct reader *rs = calloc((size_t)threads, sizeof *rs);
    if (!rs) return 1;
    double t0 = now_s();
    t_end = t0 + seconds;
    for (int i = 0; i < threads; i++)
        pthread_create(&rs[i].th, NULL, read_loop, &rs[i]);
    size_t total = 0;
    bool failed = false;
    for (int i = 0; i < threads; i++) {
        pthread_join(rs[i].th, NULL);
        total += rs[i].nlat;
        failed |= rs[i].failed;
    }
    double t = now_s() - t0;
    if (failed) return 1;
    if (!total || !rs[0].rows) {
        fprintf(stderr, "history_read: session %s has no messages after %lld in %s\n", session_id,
                after, db_path);
        return 1;
    }
    double *all = malloc(total * sizeof *all);
    if (!all) return 1;
    size_t k = 0;
    unsigned sink = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, rs[i].lat, rs[i].nlat * sizeof *all);
        k += rs[i].nlat;
        sink += rs[i].sink;
        free(rs[i].lat);
    }
    qsort(all, total, sizeof *all, by_value);
    double p50 = all[(size_t)(0.50 * (double)(total - 1) + 0.5)];
    double p99 = all[(size_t)(0.99 * (double)(total - 1) + 0.5)];
    printf("reads_s=%.1f rows_s=%.0f rows=%ld bytes=%lld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
           "reads=%zu seconds=%.2f sink=%u\n",
           (double)total / t, (double)total * (double)rs[0].rows / t, rs[0].rows, rs[0].bytes, p50,
           p99, all[total - 1], total, t, sink & 1);
    free(all);
    free(rs);
    return 0;
}
