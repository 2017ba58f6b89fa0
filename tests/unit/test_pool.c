/* Unit tests for core/pool. Includes the .c to see when pool_free has begun. Jobs run on the
 * workers, where cmocka cannot fail a test: they record, the test thread asserts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>

#include "core/pool.c"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running, max_running, ran, met;
    bool open; /* the gate the blocking jobs wait at */
    pthread_barrier_t *barrier;
    pool *p;
    gd_err late;
} state;

static void state_init(state *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void state_destroy(state *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void open_gate(state *s)
{
    pthread_mutex_lock(&s->mu);
    s->open = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void wait_running(state *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->running < n)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* Counts itself running, waits at the gate, counts itself done. */
static void gated(void *arg)
{
    state *s = arg;
    pthread_mutex_lock(&s->mu);
    s->running++;
    if (s->running > s->max_running) s->max_running = s->running;
    pthread_cond_broadcast(&s->cv);
    while (!s->open)
        pthread_cond_wait(&s->cv, &s->mu);
    s->running--;
    s->ran++;
    pthread_mutex_unlock(&s->mu);
}

/* The first three meet the test thread at a barrier: three run at once. */
static void at_barrier(void *arg)
{
    state *s = arg;
    pthread_mutex_lock(&s->mu);
    bool meet = s->barrier && s->met++ < 3;
    s->running++;
    if (s->running > s->max_running) s->max_running = s->running;
    pthread_mutex_unlock(&s->mu);
    if (meet) pthread_barrier_wait(s->barrier);
    pthread_mutex_lock(&s->mu);
    while (!s->open)
        pthread_cond_wait(&s->cv, &s->mu);
    s->running--;
    s->ran++;
    pthread_mutex_unlock(&s->mu);
}

static void test_thread_bound(void **state_)
{
    state s;
    state_init(&s);
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 4);
    s.barrier = &b;
    pool *p = pool_new("t-bound", 3, 100);
    assert_non_null(p);
    assert_int_equal(pool_threads(p), 0); /* started on demand */
    assert_int_equal(pool_submit(p, at_barrier, &s), GD_OK);
    assert_int_equal(pool_threads(p), 1);
    for (int i = 1; i < 10; i++)
        assert_int_equal(pool_submit(p, at_barrier, &s), GD_OK);
    pthread_barrier_wait(&b); /* three jobs run at once */
    assert_int_equal(pool_threads(p), 3);
    open_gate(&s);
    pool_free(p);
    assert_int_equal(s.ran, 10);
    assert_int_equal(s.max_running, 3);
    pthread_barrier_destroy(&b);
    state_destroy(&s);
}

static void test_queue_full(void **state_)
{
    state s;
    state_init(&s);
    pool *p = pool_new("t-full", 1, 2);
    assert_non_null(p);
    assert_int_equal(pool_submit(p, gated, &s), GD_OK);
    wait_running(&s, 1); /* taken off the queue by the one worker */
    assert_int_equal(pool_submit(p, gated, &s), GD_OK);
    assert_int_equal(pool_submit(p, gated, &s), GD_OK);
    assert_int_equal(pool_submit(p, gated, &s), GD_AGAIN);
    assert_int_equal(pool_threads(p), 1);
    open_gate(&s);
    pool_free(p);
    assert_int_equal(s.ran, 3);
    state_destroy(&s);
}

static void add_one(void *arg)
{
    state *s = arg;
    pthread_mutex_lock(&s->mu);
    s->ran++;
    pthread_mutex_unlock(&s->mu);
}

/* Waits at the gate, then submits once more: pool_free has begun by then. */
static void submit_late(void *arg)
{
    state *s = arg;
    gated(s);
    s->late = pool_submit(s->p, add_one, s);
}

static void *free_main(void *arg)
{
    pool_free(arg);
    return NULL;
}

static void test_free_drains(void **state_)
{
    state s;
    state_init(&s);
    pool *p = pool_new("t-drain", 2, 1000);
    assert_non_null(p);
    s.p = p;
    s.late = GD_OK;
    assert_int_equal(pool_submit(p, submit_late, &s), GD_OK);
    for (int i = 0; i < 500; i++)
        assert_int_equal(pool_submit(p, add_one, &s), GD_OK);
    pthread_t freer;
    assert_int_equal(pthread_create(&freer, NULL, free_main, p), 0);
    for (;;) { /* until pool_free has begun */
        pthread_mutex_lock(&p->mu);
        bool stopping = p->stopping;
        pthread_mutex_unlock(&p->mu);
        if (stopping) break;
        sched_yield();
    }
    open_gate(&s);
    pthread_join(freer, NULL);
    assert_int_equal(s.ran, 501); /* every job, the gated one included */
    assert_int_equal(s.late, GD_EINVAL);
    state_destroy(&s);
}

static void *quiesce_main(void *arg)
{
    pool_quiesce(arg);
    return NULL;
}

/* pool_quiesce refuses new jobs at once, and returns only once the running and queued ones are
 * done; the pool still works for pool_free afterwards. */
static void test_quiesce(void **state_)
{
    state s;
    state_init(&s);
    pool *p = pool_new("t-quiesce", 2, 100);
    assert_non_null(p);
    for (int i = 0; i < 5; i++)
        assert_int_equal(pool_submit(p, gated, &s), GD_OK);
    wait_running(&s, 2);
    pthread_t q;
    assert_int_equal(pthread_create(&q, NULL, quiesce_main, p), 0);
    for (;;) { /* until the pool is closed */
        pthread_mutex_lock(&p->mu);
        bool closed = p->closed;
        pthread_mutex_unlock(&p->mu);
        if (closed) break;
        sched_yield();
    }
    assert_int_equal(pool_submit(p, gated, &s), GD_ESHUTDOWN);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.ran, 0); /* quiesce is still waiting: nothing finished */
    pthread_mutex_unlock(&s.mu);
    open_gate(&s);
    pthread_join(q, NULL);
    assert_int_equal(s.ran, 5);
    pool_free(p);
    state_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_bound),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_free_drains),
        cmocka_unit_test(test_quiesce),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
