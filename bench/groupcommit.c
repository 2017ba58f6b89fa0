/* bench/groupcommit: the ideal durable-write rate of a file system, for comparing the store with.
 *
 *   groupcommit [-t THREADS] [-s SECONDS] [-b BYTES] DIR
 *
 * THREADS writers (default 32, as many as the benchmark's HTTP connections) each append a record
 * of BYTES (default 300, about a session's row) and wait until it is durable, then write the next.
 * One leader thread takes every record waiting, appends them with one pwrite and makes them
 * durable with one fdatasync (group commit: what a store's writer can do at best, with no parsing,
 * no index and no page format), then answers those writers. The file is DIR/groupcommit.tmp,
 * written full first and then overwritten from its start as a ring, as a WAL is reused (a file
 * that grows would also make every fdatasync write its size), and removed afterwards. Prints one
 * line: records_s=R syncs_s=S mean_batch=B seconds=T Exit 0 on success, 1 when the file cannot be
 * written or synced, 2 on usage errors. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;   /* the leader waits for records */
static pthread_cond_t synced = PTHREAD_COND_INITIALIZER; /* writers wait for their batch */
static char *pending;                                    /* records not yet written */
static size_t npending, pending_cap, record_bytes;
static uint64_t batch_open = 1; /* the batch new records join */
static uint64_t batch_done;     /* every batch up to this one is durable */
static bool stop, failed;
static uint64_t records, syncs;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer(void *arg)
{
    (void)arg;
    char rec[4096];
    memset(rec, 'r', sizeof rec);
    pthread_mutex_lock(&mu);
    while (!stop && !failed) {
        if (npending + record_bytes > pending_cap) {
            pending_cap = (npending + record_bytes) * 2;
            pending = realloc(pending, pending_cap);
            if (!pending) abort();
        }
        memcpy(pending + npending, rec, record_bytes);
        npending += record_bytes;
        uint64_t mine = batch_open;
        pthread_cond_signal(&work);
        while (batch_done < mine && !failed)
            pthread_cond_wait(&synced, &mu);
        records++;
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

#define RING_BYTES (64 << 20)

static void *leader(void *arg)
{
    int fd = *(int *)arg;
    off_t off = 0;
    char *buf = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!npending && !stop)
            pthread_cond_wait(&work, &mu);
        if (!npending) break;
        uint64_t batch = batch_open++;
        if (cap < npending) {
            cap = npending;
            buf = realloc(buf, cap);
            if (!buf) abort();
        }
        size_t n = npending;
        memcpy(buf, pending, n);
        npending = 0;
        pthread_mutex_unlock(&mu);
        if (off + (off_t)n > RING_BYTES) off = 0;
        bool ok = pwrite(fd, buf, n, off) == (ssize_t)n && fdatasync(fd) == 0;
        off += (off_t)n;
        pthread_mutex_lock(&mu);
        if (!ok) {
            fprintf(stderr, "groupcommit: cannot write or sync: %s\n", strerror(errno));
            failed = true;
        }
        syncs++;
        batch_done = batch;
        pthread_cond_broadcast(&synced);
        if (failed) break;
    }
    pthread_mutex_unlock(&mu);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 32;
    double seconds = 5;
    record_bytes = 300;
    int opt;
    while ((opt = getopt(argc, argv, "t:s:b:")) != -1) {
        if (opt == 't')
            threads = atoi(optarg);
        else if (opt == 's')
            seconds = atof(optarg);
        else if (opt == 'b')
            record_bytes = (size_t)atol(optarg);
        else
            break;
    }
    if (optind != argc - 1 || threads < 1 || threads > 4096 || seconds <= 0 || record_bytes < 1 ||
        record_bytes > 4096) {
        fprintf(stderr,
                "usage: groupcommit [-t THREADS 1..4096] [-s SECONDS] [-b BYTES 1..4096] DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/groupcommit.tmp", argv[optind]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "groupcommit: %s: %s\n", path, strerror(errno));
        return 1;
    }
    static char zeros[1 << 20];
    for (int i = 0; i < RING_BYTES / (int)sizeof zeros; i++)
        if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros) {
            fprintf(stderr, "groupcommit: %s: %s\n", path, strerror(errno));
            return 1;
        }
    if (fsync(fd) != 0) {
        fprintf(stderr, "groupcommit: %s: %s\n", path, strerror(errno));
        return 1;
    }
    pthread_t lt, *wt = calloc((size_t)threads, sizeof *wt);
    if (!wt) return 1;
    pthread_create(&lt, NULL, leader, &fd);
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&wt[i], NULL, writer, NULL);
    struct timespec nap = {.tv_sec = (time_t)seconds,
                           .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&nap, NULL); /* the measurement's length, not a synchronisation */
    pthread_mutex_lock(&mu);
    stop = true;
    uint64_t r = records, s = syncs;
    double t = now_s() - t0;
    pthread_cond_broadcast(&work);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < threads; i++)
        pthread_join(wt[i], NULL);
    pthread_join(lt, NULL);
    close(fd);
    unlink(path);
    free(wt);
    free(pending);
    if (failed) return 1;
    printf("records_s=%.0f syncs_s=%.0f mean_batch=%.1f seconds=%.2f\n", (double)r / t,
           (double)s / t, s ? (double)r / (double)s : 0.0, t);
    return 0;
}
