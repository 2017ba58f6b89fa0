/* fuzz_loop: for harnesses whose code must run on a core/loop thread (timers, posts): one loop for
 * the process, and fuzz_on_loop(fn, arg), which runs fn(arg) there and waits for it. Header-only
 * (each harness is one program). */
#ifndef GD_FUZZ_LOOP_H
#define GD_FUZZ_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/loop.h"

static pthread_mutex_t fuzz_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fuzz_cv = PTHREAD_COND_INITIALIZER;
static loop *fuzz_l;

typedef struct {
    void (*fn)(void *);
    void *arg;
    bool ran;
} fuzz_job;

static void fuzz_run_job(void *ud)
{
    fuzz_job *j = ud;
    j->fn(j->arg);
    pthread_mutex_lock(&fuzz_mu);
    j->ran = true;
    pthread_cond_broadcast(&fuzz_cv);
    pthread_mutex_unlock(&fuzz_mu);
}

/* The loop, made on first use (never freed: it lives as long as the fuzzer). */
static loop *fuzz_loop(void)
{
    if (!fuzz_l && !(fuzz_l = loop_new("fuzz"))) abort();
    return fuzz_l;
}

/* Runs fn(arg) on the loop's thread and returns once it has. */
static void fuzz_on_loop(void (*fn)(void *), void *arg)
{
    fuzz_job j = {.fn = fn, .arg = arg};
    if (loop_post(fuzz_loop(), fuzz_run_job, &j) != GD_OK) abort();
    pthread_mutex_lock(&fuzz_mu);
    while (!j.ran)
        pthread_cond_wait(&fuzz_cv, &fuzz_mu);
    pthread_mutex_unlock(&fuzz_mu);
}

#endif
