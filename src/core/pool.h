/* pool: a bounded pool of worker threads for work that blocks on the disk (file tools, history
 * reads): `threads` workers and a queue of at most `queue_max` jobs waiting. A job's result goes
 * back to its owner as a message (loop_post), never by running the owner's logic on the worker.
 * Threads start on demand, up to the bound, and stay. */
#ifndef GD_POOL_H
#define GD_POOL_H

#include <stddef.h>

#include "core/err.h"

typedef struct pool pool;
typedef void (*pool_fn)(void *arg);

/* NULL when out of memory. threads >= 1. */
pool *pool_new(const char *name, int threads, size_t queue_max);
/* Queues fn(arg) for a worker. GD_AGAIN when queue_max jobs already wait (the caller says
 * "busy" to whoever asked), GD_ENOMEM, GD_ESHUTDOWN once pool_quiesce has started, GD_EINVAL
 * once pool_free has. Thread-safe. */
gd_err pool_submit(pool *p, pool_fn fn, void *arg);
/* The first step of a stop: refuses new jobs (GD_ESHUTDOWN) and waits until the queued and
 * running ones are done, so that nothing a job points to (a suspended request) is freed
 * under it. */
void pool_quiesce(pool *p);
/* Runs every queued job, then joins the workers and frees the pool. */
void pool_free(pool *p);
/* Worker threads running now (for tests and /status). */
int pool_threads(pool *p);

#endif
