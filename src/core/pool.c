/* The worker pool: a FIFO of jobs under one mutex, and up to `threads` workers started when a
 * job is queued that no idle worker will take. A worker waits on a condition variable for a job
 * or for pool_free, which lets the workers empty the queue before they exit. */
#include "core/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

typedef struct job {
    pool_fn fn;
    void *arg;
    struct job *next;
} job;

struct pool {
    char name[16];
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* a job was queued, or pool_free began */
    job *head, *tail;
    size_t queued, queue_max;
    int max_threads, nthreads, idle;
    pthread_t *threads;
    int running;            /* jobs being run now */
    pthread_cond_t drained; /* running and queued reached 0, for pool_quiesce */
    bool closed;            /* pool_quiesce: new jobs are refused */
    bool stopping;
};

static void *worker_main(void *arg)
{
    pool *p = arg;
    sigset_t all; /* signals go to main's sigwait */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->idle--;
        }
        if (!p->head) break; /* stopping, and nothing is left */
        job *j = p->head;
        p->head = j->next;
        if (!p->head) p->tail = NULL;
        p->queued--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0 && !p->head) pthread_cond_broadcast(&p->drained);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

pool *pool_new(const char *name, int threads, size_t queue_max)
{
    if (threads < 1) threads = 1;
    pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    if (!p->threads || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->threads);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0 || pthread_cond_init(&p->drained, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p->threads);
        free(p);
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", name ? name : "pool");
    p->max_threads = threads;
    p->queue_max = queue_max;
    return p;
}

/* Starts one more worker, p->mu held. false when the system refuses a thread. */
static bool start_worker(pool *p)
{
    pthread_t th;
    int e = pthread_create(&th, NULL, worker_main, p);
    if (e) {
        log_warn("pool", "%s: cannot start a worker thread: %s", p->name, strerror(e));
        return false;
    }
    char tname[16];
    snprintf(tname, sizeof tname, "%.11s-%d", p->name, p->nthreads);
    pthread_setname_np(th, tname);
    p->threads[p->nthreads++] = th;
    return true;
}

gd_err pool_submit(pool *p, pool_fn fn, void *arg)
{
    job *j = malloc(sizeof *j);
    if (!j) return GD_ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stopping || p->closed || p->queued >= p->queue_max) {
        gd_err err = p->stopping ? GD_EINVAL : p->closed ? GD_ESHUTDOWN : GD_AGAIN;
        pthread_mutex_unlock(&p->mu);
        free(j);
        return err;
    }
    /* A worker for it: an idle one not already claimed by an earlier job, or a new one. */
    if ((size_t)p->idle <= p->queued && p->nthreads < p->max_threads && !start_worker(p) &&
        p->nthreads == 0) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return GD_ENOMEM; /* no thread at all to run it */
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return GD_OK;
}

int pool_threads(pool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void pool_quiesce(pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    while ((p->running || p->head) && p->nthreads > 0)
        pthread_cond_wait(&p->drained, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void pool_free(pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    int n = p->nthreads; /* no worker starts once stopping is set */
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
    /* the workers emptied the queue; with none at all, what is queued runs here */
    while (p->head) {
        job *j = p->head;
        p->head = j->next;
        j->fn(j->arg);
        free(j);
    }
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
