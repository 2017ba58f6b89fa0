/* loop: the one event loop of goosed (Redis's ae, h2o's evloop): epoll, an eventfd for
 * messages from other threads, timers, fd watchers and child processes, run by one thread.
 * The HTTP server's threads, the WebSocket I/O, the provider client, the agent and the tools'
 * child processes all live on loops; nothing else in goosed calls epoll_wait.
 *
 * Threads: loop_post may be called from any thread, loop_free from any but the loop's own. Every
 * other function must be called on the loop's own thread (from a callback, or from a posted
 * function); every callback runs there. A callback may add or remove any watcher or timer, its own
 * included. */
#ifndef GD_LOOP_H
#define GD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct loop loop;
typedef struct loop_fd loop_fd;
typedef struct loop_timer loop_timer;
typedef struct loop_child loop_child;

/* Events for loop_fd_add/loop_fd_mod (level-triggered unless LOOP_EDGE). */
enum { LOOP_READ = 1, LOOP_WRITE = 2 };
/* What a fd callback may see besides those: the peer hung up or the fd failed. Both are
 * reported whatever was asked for, and level-triggered too: a callback that sees them must stop
 * watching (loop_fd_del) or it is called again at once. A socket's half-close (the peer's FIN)
 * is not a LOOP_HUP: it shows as LOOP_READ, and read returns 0; and as LOOP_RDHUP too when that
 * was asked for. */
enum { LOOP_HUP = 4, LOOP_ERR = 8, LOOP_RDHUP = 16 };
/* How to watch, with the events of loop_fd_add (and loop_fd_mod, but for LOOP_EXCLUSIVE):
 *   LOOP_EDGE: edge-triggered. A callback is called when the fd becomes readable or writable
 *     (or hangs up), once; it reads or writes until EAGAIN before waiting for the next edge. A
 *     server's sockets are watched so, for READ and WRITE at once, and never modified.
 *   LOOP_EXCLUSIVE: for a fd watched by several loops (a listening socket), an event wakes one
 *     of them, not all (EPOLLEXCLUSIVE). Only with loop_fd_add. */
enum { LOOP_EDGE = 32, LOOP_EXCLUSIVE = 64 };

typedef void (*loop_fn)(void *ud);
typedef void (*loop_fd_fn)(loop_fd *w, int fd, unsigned events, void *ud);
/* status as from waitpid (WIFEXITED ...). */
typedef void (*loop_child_fn)(loop_child *c, pid_t pid, int status, void *ud);

/* A new loop and its thread, named for logs and /proc (at most 15 bytes, "agent", "ws-io").
 * NULL with errno when out of memory, fds or threads. */
loop *loop_new(const char *name);
/* The same, with init(l, ud) run first on the loop's thread (where it may add watchers, timers
 * and the round function) before loop_start returns. init answers 0, or an errno value: the
 * loop then stops and is freed, and loop_start answers NULL with that errno. */
loop *loop_start(const char *name, int (*init)(loop *l, void *ud), void *ud);
/* Stops the loop: the thread runs what was posted before this, then exits; joins it. Watchers
 * still registered are freed without their callbacks being called; their fds are not closed.
 * Not from the loop's own thread. */
void loop_free(loop *l);
/* Whether the caller runs on l's thread. */
bool loop_on_thread(const loop *l);

/* Runs fn(ud) on the loop's thread, soon and in the order posted. Thread-safe, never blocks on
 * I/O. GD_ENOMEM when out of memory; GD_EINVAL once loop_free has started (fn is then not run). */
gd_err loop_post(loop *l, loop_fn fn, void *ud);

/* Watches fd for events (LOOP_READ | LOOP_WRITE; 0 watches only hang-ups and errors). The loop
 * does not own fd: close it after loop_fd_del. NULL when out of memory or epoll refuses fd. */
loop_fd *loop_fd_add(loop *l, int fd, unsigned events, loop_fd_fn fn, void *ud);
gd_err loop_fd_mod(loop_fd *w, unsigned events);
/* Stops watching and frees w (at the end of the iteration: safe from any callback, w's own
 * included); its callback is not called again, even for events already collected in this
 * iteration. NULL is ignored. */
void loop_fd_del(loop_fd *w);

/* fn(ud) once, after ms milliseconds (monotonic clock); 0 runs it on the next iteration.
 * NULL when out of memory. The timer is freed after its callback returns. */
loop_timer *loop_timer_add(loop *l, uint64_t ms, loop_fn fn, void *ud);
/* Cancels a timer that has not fired yet and frees it. From the timer's own callback it does
 * nothing (the timer is freed when the callback returns); NULL is ignored. */
void loop_timer_cancel(loop_timer *t);

/* Calls fn once child pid has exited, with its wait status, and reaps it (a pidfd: no SIGCHLD
 * handler, and other children of goosed are not touched). NULL when out of memory or the
 * process is not a child of goosed. */
loop_child *loop_child_watch(loop *l, pid_t pid, loop_child_fn fn, void *ud);
/* Stops watching (the child is not killed; it is reaped later, when it exits, as long as the
 * loop runs). From c's own callback it does nothing. c belongs to the loop afterwards. */
void loop_child_forget(loop_child *c);

/* fn(ud) at the end of every iteration, after the events, the posts and the timers (one round
 * function per loop; NULL removes it): what a caller batches over a round of events, such as
 * freeing what its callbacks closed, or sweeping its own deadlines. fn answers in how many ms it
 * wants to be called again at the latest (-1: only after the next events), which bounds the
 * next wait; the first call comes at the end of the next iteration, which does not wait. */
void loop_on_round(loop *l, int (*fn)(void *ud), void *ud);

/* Milliseconds of the loop's clock (CLOCK_MONOTONIC), read once per iteration. */
uint64_t loop_now_ms(const loop *l);

#endif
