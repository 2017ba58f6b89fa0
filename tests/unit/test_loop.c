/* Unit tests for core/loop. Includes the .c to look at the loop's private state (its children).
 * Callbacks run on the loop's thread, where cmocka cannot fail a test: they record what they
 * saw, and the test thread asserts after a latch says they ran. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "core/loop.c"

/* ---- a counter threads can wait on ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
} latch;

static void latch_init(latch *x)
{
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->n = 0;
}

static void latch_destroy(latch *x)
{
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
}

static void latch_add(latch *x)
{
    pthread_mutex_lock(&x->mu);
    x->n++;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static void latch_wait(latch *x, int n)
{
    pthread_mutex_lock(&x->mu);
    while (x->n < n)
        pthread_cond_wait(&x->cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
}

/* Runs fn(ud) on l's thread and waits for it. */
typedef struct {
    loop_fn fn;
    void *ud;
    latch done;
} call;

static void call_run(void *ud)
{
    call *c = ud;
    c->fn(c->ud);
    latch_add(&c->done);
}

static void run_on(loop *l, loop_fn fn, void *ud)
{
    call c = {.fn = fn, .ud = ud};
    latch_init(&c.done);
    assert_int_equal(loop_post(l, call_run, &c), GD_OK);
    latch_wait(&c.done, 1);
    latch_destroy(&c.done);
}

/* ---- posts ---- */

#define POSTERS 4
#define PER     2000

typedef struct {
    int last[POSTERS]; /* the last number seen from each poster */
    int count;
    int out_of_order;
    bool on_thread;
    loop *l;
} post_log;

typedef struct {
    post_log *log;
    int poster, seq;
} post_msg;

static post_msg msgs[POSTERS][PER];

static void on_post(void *ud)
{
    post_msg *m = ud;
    post_log *g = m->log;
    if (m->seq != g->last[m->poster] + 1) g->out_of_order++;
    g->last[m->poster] = m->seq;
    g->count++;
    if (!loop_on_thread(g->l)) g->on_thread = false;
}

typedef struct {
    loop *l;
    int poster;
} poster_arg;

static void *poster_main(void *arg)
{
    poster_arg *a = arg;
    for (int i = 0; i < PER; i++) {
        while (loop_post(a->l, on_post, &msgs[a->poster][i]) != GD_OK)
            ;
    }
    return NULL;
}

static void nothing(void *ud) {}

static void test_posts_in_order(void **state)
{
    loop *l = loop_new("t-posts");
    assert_non_null(l);
    assert_false(loop_on_thread(l));
    post_log g = {.on_thread = true, .l = l};
    for (int p = 0; p < POSTERS; p++) {
        g.last[p] = -1;
        for (int i = 0; i < PER; i++)
            msgs[p][i] = (post_msg){&g, p, i};
    }
    pthread_t th[POSTERS];
    poster_arg args[POSTERS];
    for (int p = 0; p < POSTERS; p++) {
        args[p] = (poster_arg){l, p};
        assert_int_equal(pthread_create(&th[p], NULL, poster_main, &args[p]), 0);
    }
    for (int p = 0; p < POSTERS; p++)
        pthread_join(th[p], NULL);
    run_on(l, nothing, NULL); /* posted after all of theirs: runs after them */
    assert_int_equal(g.count, POSTERS * PER);
    assert_int_equal(g.out_of_order, 0);
    for (int p = 0; p < POSTERS; p++)
        assert_int_equal(g.last[p], PER - 1);
    assert_true(g.on_thread);
    loop_free(l);
}

static void check_on_thread(void *ud)
{
    void **a = ud;
    *(bool *)a[1] = loop_on_thread(a[0]);
}

static void test_on_thread(void **state)
{
    loop *a = loop_new("t-a"), *b = loop_new("t-b");
    assert_non_null(a);
    assert_non_null(b);
    bool on = false;
    void *args[2] = {a, &on};
    run_on(a, check_on_thread, args);
    assert_true(on);
    args[0] = b; /* a's thread is not b's */
    run_on(a, check_on_thread, args);
    assert_false(on);
    assert_false(loop_on_thread(a));
    assert_false(loop_on_thread(b));
    loop_free(a);
    loop_free(b);
}

/* The loop thread is named. */
static void read_name(void *ud)
{
    pthread_getname_np(pthread_self(), ud, 16);
}

static void test_thread_name(void **state)
{
    loop *l = loop_new("a-name-longer-than-15");
    assert_non_null(l);
    char name[16] = "";
    run_on(l, read_name, name);
    assert_string_equal(name, "a-name-longer-t");
    loop_free(l);
}

/* ---- loop_free ---- */

typedef struct {
    int fd; /* the blocker reads one byte from it */
    int ran;
    gd_err late; /* loop_post from the last pending function */
    loop *l;
} free_state;

static void blocker(void *ud)
{
    free_state *s = ud;
    char c;
    while (read(s->fd, &c, 1) < 0 && errno == EINTR)
        ;
}

static void counted(void *ud)
{
    ((free_state *)ud)->ran++;
}

static void post_late(void *ud)
{
    free_state *s = ud;
    s->late = loop_post(s->l, counted, s);
}

static void *release_when_stopping(void *arg)
{
    free_state *s = arg;
    for (;;) { /* waits for loop_free to have begun: the posts below are pending then */
        pthread_mutex_lock(&s->l->mu);
        bool stopping = s->l->stopping;
        pthread_mutex_unlock(&s->l->mu);
        if (stopping) break;
        sched_yield();
    }
    return NULL;
}

static void *free_main(void *l)
{
    loop_free(l);
    return NULL;
}

static void test_free_runs_pending_posts(void **state)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    loop *l = loop_new("t-free");
    assert_non_null(l);
    free_state s = {.fd = p[0], .l = l, .late = GD_OK};
    assert_int_equal(loop_post(l, blocker, &s), GD_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(loop_post(l, counted, &s), GD_OK);
    assert_int_equal(loop_post(l, post_late, &s), GD_OK);
    /* A helper releases the blocker once loop_free has started, so all of the above are still
     * queued when it does. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_when_stopping, &s), 0);
    /* loop_free blocks in join until the blocker returns: release from another thread. */
    pthread_t freer;
    assert_int_equal(pthread_create(&freer, NULL, free_main, l), 0);
    pthread_join(th, NULL);
    assert_int_equal(write(p[1], "x", 1), 1);
    pthread_join(freer, NULL);
    assert_int_equal(s.ran, 100);
    assert_int_equal(s.late, GD_EINVAL);
    close(p[0]);
    close(p[1]);
}

/* ---- timers ---- */

typedef struct {
    loop *l;
    int order[16];
    int n;
    loop_timer *victim;
    latch done;
} timer_state;

typedef struct {
    timer_state *s;
    int id;
} timer_arg;

static timer_arg targs[16];

static void on_timer(void *ud)
{
    timer_arg *a = ud;
    a->s->order[a->s->n++] = a->id;
}

static void on_last_timer(void *ud)
{
    on_timer(ud);
    latch_add(&((timer_arg *)ud)->s->done);
}

static void set_timers(void *ud)
{
    timer_state *s = ud;
    for (int i = 0; i < 16; i++)
        targs[i] = (timer_arg){s, i};
    /* ids in the order expected: deadline, then the order added */
    assert_non_null(loop_timer_add(s->l, 40, on_last_timer, &targs[5]));
    assert_non_null(loop_timer_add(s->l, 10, on_timer, &targs[2]));
    assert_non_null(loop_timer_add(s->l, 0, on_timer, &targs[0]));
    loop_timer *c = loop_timer_add(s->l, 15, on_timer, &targs[9]);
    assert_non_null(loop_timer_add(s->l, 20, on_timer, &targs[4]));
    assert_non_null(loop_timer_add(s->l, 10, on_timer, &targs[3]));
    assert_non_null(loop_timer_add(s->l, 0, on_timer, &targs[1]));
    loop_timer_cancel(c);
}

static void test_timers_in_order(void **state)
{
    loop *l = loop_new("t-timers");
    assert_non_null(l);
    timer_state s = {.l = l};
    latch_init(&s.done);
    run_on(l, set_timers, &s);
    latch_wait(&s.done, 1);
    assert_int_equal(s.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(s.order[i], i);
    loop_free(l);
    latch_destroy(&s.done);
}

/* Thousands of timers, half of them cancelled: the heap keeps its order. */
#define MANY 5000

typedef struct {
    loop *l;
    loop_timer *t[MANY];
    uint64_t deadline[MANY];
    bool cancelled[MANY], fired[MANY];
    uint64_t last;
    int bad, left;
    latch done;
} many_state;

typedef struct {
    many_state *s;
    int i;
} many_arg;

static many_arg margs[MANY];

static void on_many(void *ud)
{
    many_arg *a = ud;
    many_state *s = a->s;
    if (s->cancelled[a->i] || s->fired[a->i] || s->deadline[a->i] < s->last) s->bad++;
    s->fired[a->i] = true;
    s->last = s->deadline[a->i];
    if (--s->left == 0) latch_add(&s->done);
}

static void set_many(void *ud)
{
    many_state *s = ud;
    srand(7);
    for (int i = 0; i < MANY; i++) {
        margs[i] = (many_arg){s, i};
        uint64_t ms = (uint64_t)(rand() % 50);
        s->t[i] = loop_timer_add(s->l, ms, on_many, &margs[i]);
        s->deadline[i] = s->t[i]->deadline;
    }
    s->left = MANY;
    for (int i = 0; i < MANY; i++) {
        if (rand() % 2) {
            loop_timer_cancel(s->t[i]);
            s->cancelled[i] = true;
            s->left--;
        }
    }
}

static void test_many_timers(void **state)
{
    loop *l = loop_new("t-many");
    assert_non_null(l);
    many_state *s = calloc(1, sizeof *s);
    s->l = l;
    latch_init(&s->done);
    run_on(l, set_many, s);
    latch_wait(&s->done, 1);
    assert_int_equal(s->bad, 0);
    for (int i = 0; i < MANY; i++)
        assert_int_equal(s->fired[i], !s->cancelled[i]);
    assert_int_equal(l->nheap, 0);
    loop_free(l);
    latch_destroy(&s->done);
    free(s);
}

/* A timer's callback cancels another timer due in the same iteration, and itself. */
typedef struct {
    loop *l;
    loop_timer *a, *b;
    int a_ran, b_ran, c_ran;
    latch done;
} cancel_state;

static void cancel_b(void *ud)
{
    cancel_state *s = ud;
    s->a_ran++;
    loop_timer_cancel(s->b);
    loop_timer_cancel(s->a); /* its own: a no-op, freed after it returns */
}

static void b_fired(void *ud)
{
    ((cancel_state *)ud)->b_ran++;
}

static void c_fired(void *ud)
{
    cancel_state *s = ud;
    s->c_ran++;
    latch_add(&s->done);
}

static void zero_then_done(void *ud)
{
    cancel_state *s = ud;
    /* a 0 ms timer added by a timer runs on a later iteration */
    loop_timer_add(s->l, 0, c_fired, s);
}

static void set_cancel(void *ud)
{
    cancel_state *s = ud;
    s->a = loop_timer_add(s->l, 0, cancel_b, s);
    s->b = loop_timer_add(s->l, 0, b_fired, s);
    loop_timer_add(s->l, 5, zero_then_done, s);
}

static void test_timer_cancels_another(void **state)
{
    loop *l = loop_new("t-cancel");
    assert_non_null(l);
    cancel_state s = {.l = l};
    latch_init(&s.done);
    run_on(l, set_cancel, &s);
    latch_wait(&s.done, 1);
    assert_int_equal(s.a_ran, 1);
    assert_int_equal(s.b_ran, 0);
    assert_int_equal(s.c_ran, 1);
    loop_free(l);
    latch_destroy(&s.done);
}

/* Timers still set are freed by loop_free without running (ASan checks the freeing). */
static void never(void *ud)
{
    (*(int *)ud)++;
}

static void set_far(void *ud)
{
    void **a = ud;
    loop_timer_add(a[0], 60000, never, a[1]);
}

static void test_free_with_timers(void **state)
{
    loop *l = loop_new("t-far");
    assert_non_null(l);
    int ran = 0;
    void *args[2] = {l, &ran};
    run_on(l, set_far, args);
    loop_free(l);
    assert_int_equal(ran, 0);
}

/* ---- fd watchers ---- */

typedef struct {
    loop *l;
    int rfd, wfd;
    loop_fd *w;
    char got[16];
    size_t ngot;
    int hups, calls;
    latch ev;
} pipe_state;

static void on_pipe(loop_fd *w, int fd, unsigned events, void *ud)
{
    pipe_state *s = ud;
    s->calls++;
    if (events & LOOP_READ) {
        ssize_t n = read(fd, s->got + s->ngot, sizeof s->got - s->ngot);
        if (n > 0) s->ngot += (size_t)n;
        if (n > 0) latch_add(&s->ev);
    }
    if (events & LOOP_HUP) {
        s->hups++;
        loop_fd_del(w);
        latch_add(&s->ev);
    }
}

static void add_pipe(void *ud)
{
    pipe_state *s = ud;
    s->w = loop_fd_add(s->l, s->rfd, LOOP_READ, on_pipe, s);
}

static void test_fd_pipe(void **state)
{
    loop *l = loop_new("t-pipe");
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    pipe_state s = {.l = l, .rfd = p[0], .wfd = p[1]};
    latch_init(&s.ev);
    run_on(l, add_pipe, &s);
    assert_non_null(s.w);
    assert_int_equal(write(p[1], "hi", 2), 2);
    latch_wait(&s.ev, 1);
    assert_int_equal(s.ngot, 2);
    assert_memory_equal(s.got, "hi", 2);
    close(p[1]); /* hang-up */
    latch_wait(&s.ev, 2);
    assert_int_equal(s.hups, 1);
    loop_free(l);
    close(p[0]);
    latch_destroy(&s.ev);
}

/* Two watchers with events in the same batch: the first callback deletes the other watcher,
 * whose callback must then not run (and whose memory must stay valid until the batch ends). */
typedef struct {
    loop *l;
    int fds[2][2];
    loop_fd *w[2];
    int calls[2];
    latch done;
} batch_state;

static void batch_done(void *ud)
{
    latch_add(&((batch_state *)ud)->done);
}

static void on_batch(loop_fd *w, int fd, unsigned events, void *ud)
{
    batch_state *s = ud;
    int me = w == s->w[0] ? 0 : 1;
    s->calls[me]++;
    char c;
    if (read(fd, &c, 1) < 0) { /* drained by level-triggered epoll: not expected */
    }
    loop_fd_del(s->w[1 - me]);
    loop_fd_del(w);
    loop_post(s->l, batch_done, s); /* runs after this batch's fd events */
}

static void add_batch(void *ud)
{
    batch_state *s = ud;
    for (int i = 0; i < 2; i++)
        s->w[i] = loop_fd_add(s->l, s->fds[i][0], LOOP_READ, on_batch, s);
}

static void test_fd_del_in_batch(void **state)
{
    loop *l = loop_new("t-batch");
    assert_non_null(l);
    batch_state s = {.l = l};
    latch_init(&s.done);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe2(s.fds[i], O_CLOEXEC | O_NONBLOCK), 0);
        assert_int_equal(write(s.fds[i][1], "x", 1), 1); /* readable before being watched */
    }
    /* both are readable when the next epoll_wait runs: their events come in one batch */
    run_on(l, add_batch, &s);
    latch_wait(&s.done, 1);
    assert_int_equal(s.calls[0] + s.calls[1], 1);
    loop_free(l);
    for (int i = 0; i < 2; i++) {
        close(s.fds[i][0]);
        close(s.fds[i][1]);
    }
    latch_destroy(&s.done);
}

/* LOOP_WRITE and loop_fd_mod. */
typedef struct {
    loop *l;
    int fd;
    loop_fd *w;
    int writes;
    latch ev;
} wr_state;

static void on_writable(loop_fd *w, int fd, unsigned events, void *ud)
{
    wr_state *s = ud;
    if (events & LOOP_WRITE) {
        s->writes++;
        loop_fd_mod(w, 0); /* level-triggered: stop asking */
        latch_add(&s->ev);
    }
}

static void add_writable(void *ud)
{
    wr_state *s = ud;
    s->w = loop_fd_add(s->l, s->fd, LOOP_WRITE, on_writable, s);
}

static void rearm(void *ud)
{
    wr_state *s = ud;
    loop_fd_mod(s->w, LOOP_WRITE);
}

static void del_writable(void *ud)
{
    loop_fd_del(((wr_state *)ud)->w);
}

static void test_fd_write_mod(void **state)
{
    loop *l = loop_new("t-write");
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    wr_state s = {.l = l, .fd = p[1]};
    latch_init(&s.ev);
    run_on(l, add_writable, &s);
    latch_wait(&s.ev, 1);
    run_on(l, rearm, &s);
    latch_wait(&s.ev, 2);
    run_on(l, del_writable, &s);
    assert_int_equal(s.writes, 2);
    loop_free(l);
    close(p[0]);
    close(p[1]);
    latch_destroy(&s.ev);
}

/* LOOP_EDGE and LOOP_RDHUP: one call per edge, even with bytes left unread; the peer's
 * half-close reported as LOOP_RDHUP. */
typedef struct {
    loop *l;
    int fd;
    loop_fd *w;
    int calls, rdhups;
    char got[8];
    int ngot;
    latch ev;
} edge_state;

static void on_edge(loop_fd *w, int fd, unsigned events, void *ud)
{
    (void)w;
    edge_state *s = ud;
    s->calls++;
    if (events & LOOP_RDHUP) s->rdhups++;
    char c;
    if ((events & LOOP_READ) && s->ngot < (int)sizeof s->got && read(fd, &c, 1) == 1)
        s->got[s->ngot++] = c; /* one byte only: the rest stays unread */
    latch_add(&s->ev);
}

static void add_edge(void *ud)
{
    edge_state *s = ud;
    s->w = loop_fd_add(s->l, s->fd, LOOP_READ | LOOP_RDHUP | LOOP_EDGE, on_edge, s);
}

static void del_edge_watcher(void *ud)
{
    loop_fd_del(((edge_state *)ud)->w);
}

static void test_fd_edge(void **state)
{
    loop *l = loop_new("t-edge");
    assert_non_null(l);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    edge_state s = {.l = l, .fd = sv[0]};
    latch_init(&s.ev);
    run_on(l, add_edge, &s);
    assert_non_null(s.w);
    assert_int_equal(write(sv[1], "ab", 2), 2);
    latch_wait(&s.ev, 1);
    /* Two more rounds of the loop: level-triggered, the byte left would call again each time. */
    run_on(l, nothing, NULL);
    run_on(l, nothing, NULL);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.ngot, 1);
    assert_int_equal(write(sv[1], "c", 1), 1); /* a new edge */
    latch_wait(&s.ev, 2);
    assert_int_equal(s.calls, 2);
    assert_memory_equal(s.got, "ab", 2);
    assert_int_equal(s.rdhups, 0);
    assert_int_equal(shutdown(sv[1], SHUT_WR), 0); /* the peer's half-close */
    latch_wait(&s.ev, 3);
    assert_int_equal(s.rdhups, 1);
    run_on(l, del_edge_watcher, &s);
    loop_free(l);
    close(sv[0]);
    close(sv[1]);
    latch_destroy(&s.ev);
}

/* LOOP_EXCLUSIVE: added, but not modified (epoll refuses it). */
typedef struct {
    loop *l;
    int fd;
    loop_fd *w;
    gd_err mod;
} excl_state;

static void add_exclusive(void *ud)
{
    excl_state *s = ud;
    s->w = loop_fd_add(s->l, s->fd, LOOP_READ | LOOP_EXCLUSIVE, on_edge, NULL);
    if (s->w) s->mod = loop_fd_mod(s->w, LOOP_READ | LOOP_WRITE);
    loop_fd_del(s->w);
}

static void test_fd_exclusive(void **state)
{
    loop *l = loop_new("t-excl");
    assert_non_null(l);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    excl_state s = {.l = l, .fd = p[0], .mod = GD_OK};
    run_on(l, add_exclusive, &s);
    assert_non_null(s.w);
    assert_int_equal(s.mod, GD_EINVAL);
    loop_free(l);
    close(p[0]);
    close(p[1]);
}

/* ---- loop_start and the round function ---- */

typedef struct {
    int rc;         /* what init answers */
    bool on_thread; /* init ran on the loop's own thread */
    int rounds;     /* round calls */
    int want;       /* rounds to count before the latch */
    latch done;
} start_state;

static int on_round(void *ud)
{
    start_state *s = ud;
    if (++s->rounds == s->want) latch_add(&s->done);
    return s->rounds < s->want ? 1 : -1; /* no events come: only its own deadline calls it */
}

static int start_init(loop *l, void *ud)
{
    start_state *s = ud;
    s->on_thread = loop_on_thread(l);
    if (!s->rc) loop_on_round(l, on_round, s);
    return s->rc;
}

static void test_start_and_rounds(void **state)
{
    start_state s = {.want = 5};
    latch_init(&s.done);
    loop *l = loop_start("t-start", start_init, &s);
    assert_non_null(l);
    assert_true(s.on_thread);
    /* Nothing is posted and no fd is watched: the round function's 1 ms is all that wakes it. */
    latch_wait(&s.done, 1);
    loop_free(l);
    assert_true(s.rounds >= s.want);
    latch_destroy(&s.done);
}

static void test_start_init_fails(void **state)
{
    start_state s = {.rc = EMFILE};
    errno = 0;
    assert_null(loop_start("t-fail", start_init, &s));
    assert_int_equal(errno, EMFILE);
    assert_true(s.on_thread);
}

/* ---- child processes ---- */

typedef struct {
    loop *l;
    pid_t pid;
    loop_child *c;
    int status, calls;
    pid_t seen;
    latch done;
} child_state;

static void on_child(loop_child *c, pid_t pid, int status, void *ud)
{
    child_state *s = ud;
    s->calls++;
    s->seen = pid;
    s->status = status;
    loop_child_forget(c); /* from its own callback: harmless */
    latch_add(&s->done);
}

static void watch_child(void *ud)
{
    child_state *s = ud;
    s->c = loop_child_watch(s->l, s->pid, on_child, s);
}

static void test_child_exit_status(void **state)
{
    loop *l = loop_new("t-child");
    assert_non_null(l);
    child_state s = {.l = l};
    latch_init(&s.done);
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) _exit(7);
    run_on(l, watch_child, &s);
    assert_non_null(s.c);
    latch_wait(&s.done, 1);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.seen, s.pid);
    assert_true(WIFEXITED(s.status));
    assert_int_equal(WEXITSTATUS(s.status), 7);
    assert_int_equal(waitpid(s.pid, NULL, WNOHANG), -1); /* reaped */
    assert_int_equal(errno, ECHILD);
    loop_free(l);
    latch_destroy(&s.done);
}

static void test_child_killed(void **state)
{
    loop *l = loop_new("t-killed");
    assert_non_null(l);
    child_state s = {.l = l};
    latch_init(&s.done);
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) {
        for (;;)
            pause();
    }
    run_on(l, watch_child, &s);
    assert_non_null(s.c);
    assert_int_equal(kill(s.pid, SIGKILL), 0);
    latch_wait(&s.done, 1);
    assert_int_equal(s.calls, 1);
    assert_true(WIFSIGNALED(s.status));
    assert_int_equal(WTERMSIG(s.status), SIGKILL);
    loop_free(l);
    latch_destroy(&s.done);
}

static void test_child_not_ours(void **state)
{
    loop *l = loop_new("t-notours");
    assert_non_null(l);
    child_state s = {.l = l, .pid = 1}; /* init is nobody's child here */
    run_on(l, watch_child, &s);
    assert_null(s.c);
    loop_free(l);
}

/* A forgotten child is still reaped when it exits, with no call. */
static void forget_child(void *ud)
{
    child_state *s = ud;
    loop_child_forget(s->c);
}

static void check_reaped(void *ud)
{
    child_state *s = ud;
    s->status = waitpid(s->pid, NULL, WNOHANG) == -1 && errno == ECHILD && !s->l->children;
}

static void post_check_reaped(void *ud)
{
    child_state *s = ud;
    /* posted from the loop: runs on the next iteration, whose epoll_wait begins after the
     * child had exited, so its pidfd event comes first */
    loop_post(s->l, check_reaped, s);
}

static void test_child_forget(void **state)
{
    loop *l = loop_new("t-forget");
    assert_non_null(l);
    child_state s = {.l = l};
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(p[0]);
    int pidfd = (int)syscall(SYS_pidfd_open, s.pid, 0);
    assert_true(pidfd >= 0);
    run_on(l, watch_child, &s);
    assert_non_null(s.c);
    run_on(l, forget_child, &s);
    close(p[1]); /* the child exits */
    struct pollfd pfd = {pidfd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, -1), 1);
    run_on(l, post_check_reaped, &s);
    run_on(l, nothing, NULL); /* after check_reaped */
    assert_int_equal(s.status, 1);
    assert_int_equal(s.calls, 0);
    close(pidfd);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_in_order),
        cmocka_unit_test(test_on_thread),
        cmocka_unit_test(test_thread_name),
        cmocka_unit_test(test_free_runs_pending_posts),
        cmocka_unit_test(test_timers_in_order),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_timer_cancels_another),
        cmocka_unit_test(test_free_with_timers),
        cmocka_unit_test(test_fd_pipe),
        cmocka_unit_test(test_fd_del_in_batch),
        cmocka_unit_test(test_fd_write_mod),
        cmocka_unit_test(test_fd_edge),
        cmocka_unit_test(test_fd_exclusive),
        cmocka_unit_test(test_start_and_rounds),
        cmocka_unit_test(test_start_init_fails),
        cmocka_unit_test(test_child_exit_status),
        cmocka_unit_test(test_child_killed),
        cmocka_unit_test(test_child_not_ours),
        cmocka_unit_test(test_child_forget),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
