/* The event loop: one thread per loop running
 *
 *   epoll_wait (timeout: the earliest timer, or the round function's) -> the fd events collected,
 * in the order epoll gave them -> the functions posted from other threads, in the order posted ->
 * the timers due, in deadline order -> the round function, if any (loop_on_round) -> the fd
 * watchers deleted during this iteration are freed
 *
 * Level-triggered unless a watcher asks for edges (LOOP_EDGE: the HTTP server's sockets). The
 * posted functions sit in a mutex-protected FIFO; posting to an empty FIFO writes the eventfd,
 * which wakes epoll_wait. Timers are a binary min-heap ordered by (deadline, creation number), so
 * equal deadlines fire in the order they were added, and each timer knows its place in the heap, so
 * cancelling one is O(log n). Child processes are watched through a pidfd, itself a fd watcher of
 * the loop.
 *
 * A fd watcher deleted inside a callback may still have an event in the batch being dispatched:
 * it is marked dead (and removed from epoll at once), skipped by the dispatch, and freed at the
 * end of the iteration. */
#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define MAX_EVENTS 128 /* epoll events taken per iteration */

struct loop_fd {
    loop *l;
    int fd;
    unsigned events;
    loop_fd_fn fn;
    void *ud;
    bool dead;
    loop_fd *prev, *next; /* l->fds (alive), or l->graveyard through next (dead) */
};

struct loop_timer {
    loop *l;
    uint64_t deadline; /* ms of the monotonic clock */
    uint64_t seq;      /* creation number: equal deadlines fire in the order added */
    size_t idx;        /* place in l->heap; SIZE_MAX once out of it (firing) */
    loop_fn fn;
    void *ud;
};

struct loop_child {
    loop *l;
    pid_t pid;
    int pidfd;
    loop_fd *w;
    loop_child_fn fn; /* NULL once forgotten: reaped silently */
    void *ud;
    loop_child *prev, *next; /* l->children */
};

typedef struct post {
    loop_fn fn;
    void *ud;
    struct post *next;
} post;

struct loop {
    char name[16];
    pthread_t thread;
    int epfd, evfd;

    pthread_mutex_t mu; /* guards the posts and stopping */
    post *head, *tail;
    bool stopping;

    /* the loop's thread only */
    uint64_t now;
    loop_fd *fds, *graveyard;
    loop_timer **heap;
    size_t nheap, capheap;
    uint64_t timer_seq;
    loop_timer *firing;       /* the timer whose callback runs */
    loop_child *children;     /* watched or forgotten, not yet reaped */
    loop_child *child_firing; /* the child whose callback runs */
    int (*round)(void *ud);   /* loop_on_round */
    void *round_ud;
    int round_ms; /* what round last answered: -1, or ms until it wants to run again */

    /* loop_start: the init function's answer, under mu */
    int (*init)(loop *l, void *ud);
    void *init_ud;
    int init_rc;
    bool init_done;
    pthread_cond_t init_cv;
};

static _Thread_local loop *current; /* the loop whose thread this is */

static uint64_t mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

uint64_t loop_now_ms(const loop *l)
{
    return l->now;
}

bool loop_on_thread(const loop *l)
{
    return l && current == l;
}

/* ---- posts ---- */

gd_err loop_post(loop *l, loop_fn fn, void *ud)
{
    post *p = malloc(sizeof *p);
    if (!p) return GD_ENOMEM;
    p->fn = fn;
    p->ud = ud;
    p->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        pthread_mutex_unlock(&l->mu);
        free(p);
        return GD_EINVAL;
    }
    bool was_empty = !l->head;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    if (was_empty) { /* under the lock: loop_free cannot close evfd meanwhile */
        uint64_t one = 1;
        if (write(l->evfd, &one, sizeof one) < 0) { /* counter full: the loop is awake anyway */
        }
    }
    pthread_mutex_unlock(&l->mu);
    return GD_OK;
}

/* Runs what was posted so far. true when loop_free has started: everything it must run ran. */
static bool run_posts(loop *l)
{
    pthread_mutex_lock(&l->mu);
    post *p = l->head;
    l->head = l->tail = NULL;
    bool stop = l->stopping;
    pthread_mutex_unlock(&l->mu);
    while (p) {
        post *next = p->next;
        p->fn(p->ud);
        free(p);
        p = next;
    }
    return stop;
}

/* ---- fd watchers ---- */

static uint32_t to_epoll(unsigned events)
{
    return (events & LOOP_READ ? EPOLLIN : 0) | (events & LOOP_WRITE ? EPOLLOUT : 0) |
           (events & LOOP_RDHUP ? EPOLLRDHUP : 0) | (events & LOOP_EDGE ? EPOLLET : 0) |
           (events & LOOP_EXCLUSIVE ? EPOLLEXCLUSIVE : 0);
}

static unsigned from_epoll(uint32_t ev)
{
    return (ev & EPOLLIN ? LOOP_READ : 0) | (ev & EPOLLOUT ? LOOP_WRITE : 0) |
           (ev & EPOLLHUP ? LOOP_HUP : 0) | (ev & EPOLLERR ? LOOP_ERR : 0) |
           (ev & EPOLLRDHUP ? LOOP_RDHUP : 0);
}

loop_fd *loop_fd_add(loop *l, int fd, unsigned events, loop_fd_fn fn, void *ud)
{
    loop_fd *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->l = l;
    w->fd = fd;
    w->events = events;
    w->fn = fn;
    w->ud = ud;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int e = errno;
        free(w);
        errno = e;
        return NULL;
    }
    w->next = l->fds;
    if (l->fds) l->fds->prev = w;
    l->fds = w;
    return w;
}

gd_err loop_fd_mod(loop_fd *w, unsigned events)
{
    if (w->dead || ((events | w->events) & LOOP_EXCLUSIVE)) return GD_EINVAL;
    if (events == w->events) return GD_OK;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(w->l->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0) return GD_EIO;
    w->events = events;
    return GD_OK;
}

void loop_fd_del(loop_fd *w)
{
    if (!w || w->dead) return;
    loop *l = w->l;
    /* fails harmlessly when the fd was already closed (epoll dropped it then) */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->dead = true;
    if (w->prev) w->prev->next = w->next;
    if (w->next) w->next->prev = w->prev;
    if (l->fds == w) l->fds = w->next;
    w->prev = NULL;
    w->next = l->graveyard;
    l->graveyard = w;
}

static void free_graveyard(loop *l)
{
    while (l->graveyard) {
        loop_fd *w = l->graveyard;
        l->graveyard = w->next;
        free(w);
    }
}

/* ---- timers: a binary min-heap on (deadline, seq) ---- */

static bool timer_before(const loop_timer *a, const loop_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(loop *l, size_t i, loop_timer *t)
{
    l->heap[i] = t;
    t->idx = i;
}

static void heap_up(loop *l, size_t i)
{
    loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, l->heap[parent])) break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void heap_down(loop *l, size_t i)
{
    loop_timer *t = l->heap[i];
    for (;;) {
        size_t kid = 2 * i + 1;
        if (kid >= l->nheap) break;
        if (kid + 1 < l->nheap && timer_before(l->heap[kid + 1], l->heap[kid])) kid++;
        if (!timer_before(l->heap[kid], t)) break;
        heap_set(l, i, l->heap[kid]);
        i = kid;
    }
    heap_set(l, i, t);
}

static void heap_remove(loop *l, loop_timer *t)
{
    size_t i = t->idx;
    t->idx = SIZE_MAX;
    loop_timer *last = l->heap[--l->nheap];
    if (last == t) return;
    heap_set(l, i, last);
    if (i > 0 && timer_before(last, l->heap[(i - 1) / 2]))
        heap_up(l, i);
    else
        heap_down(l, i);
}

loop_timer *loop_timer_add(loop *l, uint64_t ms, loop_fn fn, void *ud)
{
    if (l->nheap == l->capheap) {
        size_t cap = l->capheap ? 2 * l->capheap : 16;
        loop_timer **heap = realloc(l->heap, cap * sizeof *heap);
        if (!heap) return NULL;
        l->heap = heap;
        l->capheap = cap;
    }
    loop_timer *t = malloc(sizeof *t);
    if (!t) return NULL;
    /* From the clock now, not the iteration's cached time: a timer never fires early. */
    uint64_t now = mono_ms();
    t->l = l;
    t->deadline = ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
    t->seq = l->timer_seq++;
    t->fn = fn;
    t->ud = ud;
    l->heap[l->nheap] = t;
    t->idx = l->nheap++;
    heap_up(l, t->idx);
    return t;
}

void loop_timer_cancel(loop_timer *t)
{
    if (!t) return;
    loop *l = t->l;
    if (t == l->firing) return; /* its own callback: freed when that returns */
    heap_remove(l, t);
    free(t);
}

/* Fires the timers due by now that were added before this iteration began (seq < limit), so a
 * timer of 0 ms added by a timer runs on the next iteration, not in an endless round. */
static void run_timers(loop *l, uint64_t limit)
{
    while (l->nheap) {
        loop_timer *t = l->heap[0];
        if (t->deadline > l->now || t->seq >= limit) break;
        heap_remove(l, t);
        l->firing = t;
        t->fn(t->ud);
        l->firing = NULL;
        free(t);
    }
}

/* epoll_wait's timeout: until the earliest timer or what the round function asked for, -1 with
 * neither. */
static int next_timeout(loop *l)
{
    int ms = -1;
    if (l->nheap) {
        uint64_t now = mono_ms(), at = l->heap[0]->deadline;
        ms = at <= now ? 0 : at - now > 86400000u ? 86400000 : (int)(at - now);
    }
    if (l->round && l->round_ms >= 0 && (ms < 0 || l->round_ms < ms)) ms = l->round_ms;
    return ms;
}

void loop_on_round(loop *l, int (*fn)(void *ud), void *ud)
{
    l->round = fn;
    l->round_ud = ud;
    l->round_ms = 0; /* the next iteration does not wait for events: fn runs at its end */
}

/* ---- child processes ---- */

static void child_unlink(loop_child *c)
{
    loop *l = c->l;
    if (c->prev) c->prev->next = c->next;
    if (c->next) c->next->prev = c->prev;
    if (l->children == c) l->children = c->next;
}

static void child_exited(loop_fd *w, int fd, unsigned events, void *ud)
{
    loop_child *c = ud;
    loop *l = c->l;
    int status = 0;
    pid_t r;
    do
        r = waitpid(c->pid, &status, 0); /* the pidfd is readable: it has exited, no wait */
    while (r < 0 && errno == EINTR);
    if (r != c->pid) { /* reaped elsewhere, against this module's contract */
        log_warn("loop", "child %d was reaped by someone else: %s", (int)c->pid,
                 r < 0 ? strerror(errno) : "waitpid returned another pid");
        status = 255 << 8; /* reported as exit code 255 */
    }
    loop_fd_del(c->w);
    close(c->pidfd);
    child_unlink(c);
    if (c->fn) {
        l->child_firing = c;
        c->fn(c, c->pid, status, c->ud);
        l->child_firing = NULL;
    }
    free(c);
}

loop_child *loop_child_watch(loop *l, pid_t pid, loop_child_fn fn, void *ud)
{
    /* Not a child (or already reaped): nothing to wait for. WNOWAIT leaves a zombie as it is. */
    siginfo_t si;
    if (pid <= 0 || waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
        if (pid <= 0) errno = EINVAL;
        return NULL;
    }
    loop_child *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->l = l;
    c->pid = pid;
    c->fn = fn;
    c->ud = ud;
    /* pidfd_open: no libc wrapper before glibc 2.36. PIDFD_NONBLOCK is not needed: the pidfd is
     * only polled. The fd is close-on-exec by definition (pidfd_open sets O_CLOEXEC). */
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (c->pidfd < 0) {
        int e = errno;
        free(c);
        errno = e;
        return NULL;
    }
    c->w = loop_fd_add(l, c->pidfd, LOOP_READ, child_exited, c);
    if (!c->w) {
        int e = errno;
        close(c->pidfd);
        free(c);
        errno = e;
        return NULL;
    }
    c->next = l->children;
    if (l->children) l->children->prev = c;
    l->children = c;
    return c;
}

void loop_child_forget(loop_child *c)
{
    if (!c || c == c->l->child_firing) return; /* from its own callback: already reaped */
    c->fn = NULL;                              /* reaped when it exits, without a call */
}

/* ---- the thread ---- */

static void *loop_main(void *arg)
{
    loop *l = arg;
    current = l;
    /* Signals go to the thread that waits for them (main's sigwait), never to a loop. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), l->name);

    if (l->init) {
        int rc = l->init(l, l->init_ud);
        pthread_mutex_lock(&l->mu);
        l->init_rc = rc;
        l->init_done = true;
        pthread_cond_signal(&l->init_cv);
        pthread_mutex_unlock(&l->mu);
        if (rc) {
            free_graveyard(l);
            return NULL; /* loop_start joins and frees */
        }
    }

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        uint64_t limit = l->timer_seq;
        int n = epoll_wait(l->epfd, evs, MAX_EVENTS, next_timeout(l));
        if (n < 0) {
            if (errno != EINTR) log_error("loop", "%s: epoll_wait: %s", l->name, strerror(errno));
            n = 0;
        }
        l->now = mono_ms();
        for (int i = 0; i < n; i++) {
            loop_fd *w = evs[i].data.ptr;
            if (!w) { /* the eventfd: the posts are run below anyway */
                uint64_t v;
                if (read(l->evfd, &v, sizeof v) < 0) { /* EAGAIN: already read */
                }
                continue;
            }
            if (w->dead) continue; /* deleted by an earlier callback of this batch */
            w->fn(w, w->fd, from_epoll(evs[i].events), w->ud);
        }
        if (run_posts(l)) break;
        run_timers(l, limit);
        if (l->round) l->round_ms = l->round(l->round_ud);
        free_graveyard(l);
    }
    free_graveyard(l);
    return NULL;
}

/* What is left once the thread is gone, freed without callbacks. */
static void loop_destroy(loop *l)
{
    while (l->children) {
        loop_child *c = l->children;
        l->children = c->next;
        /* a child that has exited already is reaped; one still running is left to the process */
        waitpid(c->pid, NULL, WNOHANG);
        close(c->pidfd);
        free(c);
    }
    while (l->fds) {
        loop_fd *w = l->fds;
        l->fds = w->next;
        free(w);
    }
    for (size_t i = 0; i < l->nheap; i++)
        free(l->heap[i]);
    free(l->heap);
    /* nothing is posted once stopping is set, and the thread ran all that was before */
    close(l->epfd);
    close(l->evfd);
    pthread_cond_destroy(&l->init_cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

loop *loop_start(const char *name, int (*init)(loop *l, void *ud), void *ud)
{
    loop *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    snprintf(l->name, sizeof l->name, "%s", name ? name : "loop");
    l->init = init;
    l->init_ud = ud;
    l->round_ms = -1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int e = 0;
    if (l->epfd < 0 || l->evfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0)
        e = errno;
    else if (pthread_mutex_init(&l->mu, NULL) != 0)
        e = ENOMEM;
    else if (pthread_cond_init(&l->init_cv, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        e = ENOMEM;
    }
    if (!e) {
        l->now = mono_ms();
        e = pthread_create(&l->thread, NULL, loop_main, l);
        if (e) {
            pthread_cond_destroy(&l->init_cv);
            pthread_mutex_destroy(&l->mu);
        }
    }
    if (e) {
        if (l->epfd >= 0) close(l->epfd);
        if (l->evfd >= 0) close(l->evfd);
        free(l);
        errno = e;
        return NULL;
    }
    if (init) {
        pthread_mutex_lock(&l->mu);
        while (!l->init_done)
            pthread_cond_wait(&l->init_cv, &l->mu);
        e = l->init_rc;
        pthread_mutex_unlock(&l->mu);
        if (e) {
            pthread_join(l->thread, NULL);
            loop_destroy(l);
            errno = e;
            return NULL;
        }
    }
    return l;
}

loop *loop_new(const char *name)
{
    return loop_start(name, NULL, NULL);
}

void loop_free(loop *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    uint64_t one = 1;
    if (write(l->evfd, &one, sizeof one) < 0) { /* counter full: the loop is awake anyway */
    }
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    loop_destroy(l);
}
