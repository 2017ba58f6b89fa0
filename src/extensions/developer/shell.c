/* shell: the developer extension's shell tool.
 *
 * The command runs as `/bin/sh -c command` under a small supervisor process, forked on a pool
 * worker (fork of a large process takes a while); the loop then watches the two output pipes and
 * the supervisor's exit, and enforces the timeout with a timer, so a running command holds no
 * thread. The supervisor leads the command's process group and dies with goosed: it asks the
 * kernel for SIGHUP when its parent goes (PR_SET_PDEATHSIG), and then kills the whole group,
 * so no tool process outlives goosed, even after `kill -9`. It holds a copy of goosed's memory,
 * so it is not dumpable (no core, no ptrace, no /proc/PID/environ for the tools) and keeps no fd
 * of goosed's. Between fork and exec only async-signal-safe calls are made.
 *
 * Unless `sandbox: off`, the shell runs under bubblewrap (sandbox_argv_new): its own PID
 * namespace, so that whatever the command leaves behind (`setsid`, `nohup`, `&`) dies with it,
 * the working directory the only place it can write, and the limits of sandbox_child_limits. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

#define LOG_MOD "developer"

/* One captured stream: the first head_cap bytes in head, the last tail_cap bytes past them in a
 * ring, and the total count. Memory never exceeds head_cap + tail_cap. */
typedef struct {
    int fd; /* -1 once at end of file */
    buf head;
    size_t head_cap;
    char *tail; /* allocated when the head is full */
    size_t tail_cap, tail_pos, tail_len;
    uint64_t total;
} capture;

static void capture_init(capture *c, int fd, size_t cap)
{
    c->fd = fd;
    c->head_cap = cap / 2;
    c->tail_cap = cap - c->head_cap;
    buf_init(&c->head, c->head_cap);
    c->tail = NULL;
    c->tail_pos = c->tail_len = 0;
    c->total = 0;
}

static void capture_free(capture *c)
{
    buf_free(&c->head);
    free(c->tail);
    c->tail = NULL;
}

static void capture_feed(capture *c, const char *p, size_t n)
{
    c->total += n;
    size_t room = c->head_cap - c->head.len;
    size_t take = n < room ? n : room;
    if (take && buf_append(&c->head, p, take) != GD_OK) take = 0; /* out of memory: dropped */
    p += take;
    n -= take;
    if (!n || !c->tail_cap) return;
    if (!c->tail && !(c->tail = malloc(c->tail_cap))) return;
    if (n >= c->tail_cap) {
        memcpy(c->tail, p + n - c->tail_cap, c->tail_cap);
        c->tail_pos = 0;
        c->tail_len = c->tail_cap;
        return;
    }
    size_t first = c->tail_cap - c->tail_pos;
    if (first > n) first = n;
    memcpy(c->tail + c->tail_pos, p, first);
    memcpy(c->tail, p + first, n - first);
    c->tail_pos = (c->tail_pos + n) % c->tail_cap;
    c->tail_len = c->tail_len + n > c->tail_cap ? c->tail_cap : c->tail_len + n;
}

/* Reads what is available (a bounded amount, so that other calls on the loop get their turn
 * even when the command floods us). true at end of file or on an error. */
static bool capture_read(capture *c, char *chunk)
{
    for (int i = 0; i < DEV_READS_PER_TURN; i++) {
        ssize_t r = read(c->fd, chunk, DEV_READ_CHUNK);
        if (r > 0) {
            capture_feed(c, chunk, (size_t)r);
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
        return true; /* end of file, or an error we cannot do anything about */
    }
    return false;
}

static gd_err capture_render(buf *b, const char *label, const capture *c)
{
    uint64_t kept = c->head.len + c->tail_len;
    gd_err e;
    if (c->total == 0) return buf_printf(b, "%s: (empty)\n", label);
    if ((e = buf_printf(b, "%s:\n", label))) return e;
    if (c->head.len && (e = buf_append(b, c->head.data, c->head.len))) return e;
    if (c->total > kept &&
        (e = buf_printf(b,
                        "%s[... %llu bytes of %s omitted: the first %zu and last %zu bytes are "
                        "shown ...]\n",
                        c->head.len && c->head.data[c->head.len - 1] != '\n' ? "\n" : "",
                        (unsigned long long)(c->total - kept), label, c->head.len, c->tail_len)))
        return e;
    if (c->tail_len) {
        size_t start = c->tail_len < c->tail_cap ? 0 : c->tail_pos;
        size_t first = c->tail_cap - start;
        if (first > c->tail_len) first = c->tail_len;
        if ((e = buf_append(b, c->tail + start, first))) return e;
        if ((e = buf_append(b, c->tail, c->tail_len - first))) return e;
    }
    if (b->len && b->data[b->len - 1] != '\n') return buf_puts(b, "\n");
    return GD_OK;
}

/* ---- the supervisor (in the child: async-signal-safe calls only) ---- */

/* What the child needs, prepared before fork. */
typedef struct {
    const char *path; /* /bin/sh, or bwrap */
    char *const *argv;
    char *const *env;
    const char *cwd;
    sandbox_child sb;
    int max_fd; /* for closing goosed's fds when close_range is missing */
} spawn_req;

/* Where the child failed, sent back on the error pipe (fd 3 in the child). */
enum {
    STAGE_FDS = 1,
    STAGE_CGROUP,
    STAGE_SETPGID,
    STAGE_PDEATHSIG,
    STAGE_PRIVS,
    STAGE_NET,
    STAGE_FORK,
    STAGE_CHDIR,
    STAGE_EXEC
};
typedef struct {
    int stage, err;
} spawn_err;

static const char *stage_what(int stage)
{
    switch (stage) {
    case STAGE_FDS:
        return "setting up its file descriptors";
    case STAGE_CGROUP:
        return "joining the cgroup that limits its processes";
    case STAGE_SETPGID:
        return "creating its process group";
    case STAGE_PDEATHSIG:
        return "tying it to goosed's life";
    case STAGE_PRIVS:
        return "dropping its privileges";
    case STAGE_NET:
        return "starting its network";
    case STAGE_FORK:
        return "forking the shell";
    case STAGE_CHDIR:
        return "entering the working directory";
    default:
        return "executing it";
    }
}

__attribute__((noreturn)) static void child_fail(int fd, int stage, int err)
{
    spawn_err se = {stage, err};
    ssize_t w = write(fd, &se, sizeof se);
    (void)w;
    _exit(127);
}

/* Closes every fd from lo up. */
static void close_from(int lo, int max_fd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0) == 0) return;
#endif
    for (int fd = lo; fd < max_fd; fd++)
        close(fd);
}

/* Dies as the shell died: by the same signal (not dumpable, so without a core), or with exit
 * status 128 + sig if that signal does not kill. */
__attribute__((noreturn)) static void die_like(int sig)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(sig, &dfl, NULL);
    kill(getpid(), sig);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    _exit(128 + sig);
}

/* In the supervisor, once the shell (or bwrap) is gone: SIGKILLs the processes it adopted as a
 * subreaper (from /proc/self/task/PID/children) and reaps them. A sandbox's namespace init dies
 * with everything in its namespace. keep (slirp4netns, or 0) is left alone: it ends by itself
 * once bwrap is gone, and dies with this process, and its end (the network device it closes is
 * unregistered, which waits for the kernel's RCU grace periods) takes tens of milliseconds the
 * command's result need not wait for. Async-signal-safe. */
static void kill_adopted(pid_t keep)
{
    char path[64] = "/proc/self/task/", num[16];
    int n = 0;
    for (unsigned v = (unsigned)getpid(); v; v /= 10)
        num[n++] = (char)('0' + v % 10);
    size_t l = strlen(path);
    while (n)
        path[l++] = num[--n];
    memcpy(path + l, "/children", sizeof "/children");
    for (int round = 0; round < 8; round++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        char b[1024];
        ssize_t r = read(fd, b, sizeof b - 1);
        close(fd);
        if (r <= 0) return;
        b[r] = '\0';
        pid_t killed[sizeof b / 2];
        int nkilled = 0;
        for (char *p = b; *p;) {
            long pid = 0;
            while (*p >= '0' && *p <= '9')
                pid = pid * 10 + (*p++ - '0');
            if (pid > 0 && pid != keep && kill((pid_t)pid, SIGKILL) == 0)
                killed[nkilled++] = (pid_t)pid;
            while (*p && (*p < '0' || *p > '9'))
                p++;
        }
        for (int i = 0; i < nkilled; i++)
            while (waitpid(killed[i], NULL, 0) < 0 && errno == EINTR) {
            }
        if (!nkilled) return;
    }
}

/* The supervisor: fds = /dev/null, the stdout and stderr pipes' write ends, the error pipe. */
__attribute__((noreturn)) static void supervise(const spawn_req *r, pid_t parent, const int fds[4])
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* goosed's handlers must never run here */

    /* fds to 0..3 (through copies above them, so that none is overwritten before it is moved),
     * then nothing else of goosed's: its sockets and other calls' pipes must not be held. */
    int hi[4];
    for (int i = 0; i < 4; i++)
        if ((hi[i] = fcntl(fds[i], F_DUPFD, 10)) < 0) child_fail(fds[3], STAGE_FDS, errno);
    for (int i = 0; i < 4; i++)
        if (dup2(hi[i], i) < 0) child_fail(hi[3], STAGE_FDS, errno);
    close_from(4, r->max_fd);
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0) child_fail(3, STAGE_FDS, errno);
    /* The command's network, outside the cgroup (slirp4netns is not the command's: it would
     * count against its limit, and its end, which waits for its network device's removal, can
     * outlast the cgroup's) and before the privileges go (slirp4netns needs them as root). */
    pid_t net = 0;
    int ne = sandbox_child_net(&r->sb, &net);
    if (ne) child_fail(3, STAGE_NET, ne);
    /* Before anything else forks: the shell and all it starts are inside the cgroup's limit. */
    int ce = sandbox_child_cgroup_enter(&r->sb);
    if (ce) child_fail(3, STAGE_CGROUP, ce);

    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGCHLD, &dfl, NULL); /* not ignored: the shell must be waited for */
    sigaction(SIGHUP, &dfl, NULL);
    if (setpgid(0, 0) < 0) child_fail(3, STAGE_SETPGID, errno);
    if (prctl(PR_SET_PDEATHSIG, SIGHUP) < 0) child_fail(3, STAGE_PDEATHSIG, errno);
    if (getppid() != parent) _exit(127); /* goosed died already: start nothing */
    prctl(PR_SET_DUMPABLE, 0);           /* a copy of goosed's memory: keep it out of reach */
    int e = sandbox_child_enter(&r->sb);
    if (e) child_fail(3, STAGE_PRIVS, e);

    /* Under bubblewrap, orphans become ours, not init's: the namespace's init, when bwrap itself
     * was killed (a cancel just after the start) before that init asked to die with it, is
     * then killed by kill_adopted. (Without the sandbox, `nohup cmd &` is left to live.) */
    if (r->sb.bwrap) prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL);
    pid_t sh = fork();
    if (sh < 0) child_fail(3, STAGE_FORK, errno);
    if (sh == 0) {
        for (int s = 1; s < NSIG; s++)
            if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir(r->cwd) < 0) child_fail(3, STAGE_CHDIR, errno);
        int le = sandbox_child_limits(&r->sb);
        if (le) child_fail(3, STAGE_PRIVS, le);
        execve(r->path, r->argv, r->env);
        child_fail(3, STAGE_EXEC, errno);
    }
    /* The output pipes stay with the shell only: they reach end of file once it and whatever
     * it left behind are gone. */
    sandbox_child_net_close(&r->sb);
    close(0);
    close(1);
    close(2);
    close(3);

    sigset_t wait;
    sigemptyset(&wait);
    sigaddset(&wait, SIGCHLD);
    sigaddset(&wait, SIGHUP);
    for (;;) {
        siginfo_t si;
        int s = sigwaitinfo(&wait, &si);
        if (s == SIGCHLD) {
            int st;
            pid_t p = waitpid(sh, &st, WNOHANG);
            if (p == sh && r->sb.bwrap) kill_adopted(net);
            if (p == sh && WIFEXITED(st)) _exit(WEXITSTATUS(st));
            if (p == sh && WIFSIGNALED(st)) die_like(WTERMSIG(st));
            if (p < 0 && errno == ECHILD) _exit(127);
            while (waitpid(-1, NULL, WNOHANG) > 0) { /* adopted orphans that ended */
            }
        } else if (s == SIGHUP && getppid() != parent) {
            /* goosed is gone (a SIGHUP sent to the group by goosed itself leaves the parent as it
             * is): take the whole group, this process included, with it. */
            kill(0, SIGKILL);
            _exit(128 + SIGKILL);
        }
    }
}

/* ---- the call ---- */

/* Why the command was stopped: timeout and cancel send SIGTERM, then SIGKILL after a grace;
 * leftover (the shell exited, its background children still hold the pipes) sends SIGHUP. */
enum stop_reason { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL, STOP_LEFTOVER };

struct dev_shell {
    ext_limits *limits; /* counts this process while set */
    /* the request, read by the worker */
    char *command;
    long timeout_ms;
    size_t cap;
    /* the worker's answer: the supervisor (leader of the command's process group) and the read
     * ends of the pipes; pid 0 when it did not start (the reason in the call's out) */
    pid_t pid;
    int fd_out, fd_err;
    char cgroup[SANDBOX_CGROUP_MAX]; /* "" or the cgroup the command runs in (goosed as root) */
    /* on the loop, once started */
    bool running;
    capture co, ce; /* fd -1 once at end of file */
    loop_fd *wo, *we;
    loop_child *child;
    loop_timer *timer;
    uint64_t timer_at;
    char *chunk;
    bool exited;
    int status;
    enum stop_reason reason;
    uint64_t deadline, exit_at, term_at, kill_at;
};

static void kill_group(dev_shell *sh, int sig)
{
    /* The process group outlives its leader while a member is left; ESRCH once it is empty. */
    if (killpg(sh->pid, sig) < 0 && errno != ESRCH)
        log_warn(LOG_MOD, "killpg %d: %s", (int)sh->pid, strerror(errno));
}

static void dev_shell_free(dev_shell *sh)
{
    if (!sh) return;
    if (sh->limits) atomic_fetch_sub(&sh->limits->processes, 1);
    sandbox_cgroup_remove(sh->cgroup); /* kills what is left in it */
    capture_free(&sh->co);
    capture_free(&sh->ce);
    free(sh->chunk);
    free(sh->command);
    free(sh);
}

/* c->release of a shell call: what is left of its state when the call is freed. */
static void shell_release(dev_call *c)
{
    dev_shell_free(c->sh);
    c->sh = NULL;
}

/* Stops watching: the timer, the pipes (closed). */
static void unwatch(dev_shell *sh)
{
    if (sh->timer) loop_timer_cancel(sh->timer);
    sh->timer = NULL;
    if (sh->wo) loop_fd_del(sh->wo);
    if (sh->we) loop_fd_del(sh->we);
    sh->wo = sh->we = NULL;
    if (sh->co.fd >= 0) close(sh->co.fd);
    if (sh->ce.fd >= 0) close(sh->ce.fd);
    sh->co.fd = sh->ce.fd = -1;
}

/* Runs on a worker: checks the working directory, forks the supervisor, waits until the shell
 * is executing (or failed to), and posts the answer to the loop. */
static void shell_spawned(void *arg);

static void shell_spawn(void *arg)
{
    dev_call *c = arg;
    dev_shell *sh = c->sh;
    char eb[128];
    const char *cwd = c->cwd[0] ? c->cwd : ".";
    char abscwd[DEV_PATH_MAX];
    const sandbox_cfg *sb = sandbox_current();
    bool bwrap = sb && !sb->open;
    char **bargv = NULL;
    char why[512];
    struct stat st;
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pr[2] = {-1, -1}, nul = -1;
    if (atomic_load(&c->cancel)) {
        dev_fail(&c->out, GD_ECANCELLED, "cancelled: the command was not started");
    } else if (bwrap && !sb->ready) {
        dev_fail(&c->out, GD_EUNAVAIL,
                 "developer__shell: refused: tools run only in a sandbox, and %s (set `sandbox: "
                 "off` in goosed's config to run them without one)",
                 sb->why);
    } else if (stat(cwd, &st) < 0) {
        dev_fail(&c->out, GD_ENOTFOUND,
                 "developer__shell: the working directory '%s' is not accessible: %s", cwd,
                 dev_errstr(errno, eb, sizeof eb));
    } else if (!S_ISDIR(st.st_mode)) {
        dev_fail(&c->out, GD_ENOTFOUND,
                 "developer__shell: the working directory '%s' is not a directory", cwd);
    } else if (bwrap && !realpath(cwd, abscwd)) {
        dev_fail(&c->out, GD_ENOTFOUND,
                 "developer__shell: the working directory '%s' is not accessible: %s", cwd,
                 dev_errstr(errno, eb, sizeof eb));
    } else if (bwrap &&
               !(bargv = sandbox_argv_new(sb, &c->d->host, SANDBOX_SHELL, abscwd,
                                          (char *const[]){"/bin/sh", "-c", sh->command, NULL}, why,
                                          sizeof why))) {
        dev_fail(&c->out, GD_EINVAL, "developer__shell: refused: %s", why);
    } else if (!sandbox_cgroup_make(sh->cgroup, sizeof sh->cgroup, why, sizeof why)) {
        dev_fail(&c->out, GD_EIO, "developer__shell: refused: %s", why);
    } else if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 || pipe2(pr, O_CLOEXEC) < 0 ||
               (nul = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        dev_fail(&c->out, GD_EIO, "developer__shell: cannot create pipes: %s",
                 dev_errstr(errno, eb, sizeof eb));
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0) close(po[i]);
            if (pe[i] >= 0) close(pe[i]);
            if (pr[i] >= 0) close(pr[i]);
        }
    } else {
        fcntl(po[0], F_SETFL, O_NONBLOCK);
        fcntl(pe[0], F_SETFL, O_NONBLOCK);
        char *argv[] = {"sh", "-c", sh->command, NULL};
        spawn_req r = {.path = bargv ? bargv[0] : "/bin/sh",
                       .argv = bargv ? bargv : argv,
                       .env = c->d->env,
                       .cwd = cwd,
                       .max_fd = 1 << 16};
        sandbox_child_prepare(&r.sb, sb);
        sandbox_child_reach(&r.sb, c->d->host.cmd_reach);
        sandbox_child_cgroup(&r.sb, sh->cgroup);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (1u << 20))
            r.max_fd = (int)rl.rlim_cur;
        const int fds[4] = {nul, po[1], pe[1], pr[1]};
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid == 0) supervise(&r, parent, fds);
        int fe = errno;
        close(po[1]);
        close(pe[1]);
        close(pr[1]);
        close(nul);
        spawn_err se;
        size_t got = 0;
        while (pid > 0 && got < sizeof se) { /* end of file once the shell is executing */
            ssize_t n = read(pr[0], (char *)&se + got, sizeof se - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        close(pr[0]);
        if (pid < 0 || got == sizeof se) {
            if (pid > 0)
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
                }
            close(po[0]);
            close(pe[0]);
            if (pid < 0)
                dev_fail(&c->out, GD_EIO, "developer__shell: cannot start %s in '%s': %s", r.path,
                         cwd, dev_errstr(fe, eb, sizeof eb));
            else
                dev_fail(&c->out, GD_EIO,
                         "developer__shell: cannot start %s in '%s': %s (while %s)", r.path, cwd,
                         dev_errstr(se.err, eb, sizeof eb), stage_what(se.stage));
        } else {
            sh->pid = pid;
            sh->fd_out = po[0];
            sh->fd_err = pe[0];
        }
    }
    sandbox_argv_free(bargv);
    if (loop_post(c->d->host.l, shell_spawned, c)) {
        /* The loop is gone (shutting down): nothing will watch the command. */
        log_error(LOG_MOD, "shell: the loop refused the started command; killing it");
        if (sh->pid > 0) {
            killpg(sh->pid, SIGKILL);
            while (waitpid(sh->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            close(sh->fd_out);
            close(sh->fd_err);
        }
        sandbox_cgroup_remove(sh->cgroup);
    }
}

/* ---- on the loop ---- */

static void shell_eval(dev_call *c);

static void on_timer(void *ud)
{
    dev_call *c = ud;
    c->sh->timer = NULL; /* freed after this returns */
    shell_eval(c);
}

/* (Re)arms the one timer for `at` (UINT64_MAX: none). */
static void arm(dev_call *c, uint64_t at)
{
    dev_shell *sh = c->sh;
    loop *l = c->d->host.l;
    if (sh->timer && sh->timer_at == at) return;
    if (sh->timer) loop_timer_cancel(sh->timer);
    sh->timer = NULL;
    if (at == UINT64_MAX) return;
    uint64_t now = loop_now_ms(l);
    sh->timer = loop_timer_add(l, at > now ? at - now : 0, on_timer, c);
    sh->timer_at = at;
    if (!sh->timer) log_error(LOG_MOD, "shell %d: no memory for a timer", (int)sh->pid);
}

static void on_pipe(loop_fd *w, int fd, unsigned events, void *ud)
{
    dev_call *c = ud;
    dev_shell *sh = c->sh;
    bool out = w == sh->wo;
    capture *cap = out ? &sh->co : &sh->ce;
    if (capture_read(cap, sh->chunk)) {
        loop_fd_del(w);
        close(fd);
        cap->fd = -1;
        if (out)
            sh->wo = NULL;
        else
            sh->we = NULL;
    }
    shell_eval(c);
}

static void on_child_exit(loop_child *ch, pid_t pid, int status, void *ud)
{
    dev_call *c = ud;
    dev_shell *sh = c->sh;
    sh->child = NULL; /* reaped; freed after this returns */
    sh->exited = true;
    sh->status = status;
    sh->exit_at = loop_now_ms(c->d->host.l);
    shell_eval(c);
}

static void noop_exit(loop_child *ch, pid_t pid, int status, void *ud) {}

/* The command is over: the result, from what was captured. */
static void shell_finish(dev_call *c)
{
    dev_shell *sh = c->sh;
    unwatch(sh);
    buf b;
    buf_init(&b, DEV_TEXT_CAP);
    bool is_error = false;
    int status = sh->status;
    gd_err e;
    if (sh->reason == STOP_TIMEOUT) {
        e = buf_printf(&b, "killed: timed out after %g s\n", (double)sh->timeout_ms / 1000.0);
        is_error = true;
    } else if (sh->reason == STOP_CANCEL) {
        e = buf_puts(&b, "cancelled\n");
        is_error = true;
    } else if (WIFEXITED(status)) {
        e = buf_printf(&b, "exit status: %d\n", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        e = buf_printf(&b, "killed by signal %d%s\n", WTERMSIG(status),
                       WCOREDUMP(status) ? " (core dumped)" : "");
    } else {
        e = buf_puts(&b, "exit status: unknown\n");
    }
    if (!e && sh->reason == STOP_LEFTOVER)
        e = buf_puts(&b, "note: processes the command left in the background still held its "
                         "output; they were sent SIGHUP and anything more they print is lost. To "
                         "keep a process running, start it with `nohup cmd > cmd.log 2>&1 &`\n");
    if (!e) e = capture_render(&b, "stdout", &sh->co);
    if (!e) e = capture_render(&b, "stderr", &sh->ce);
    log_debug(LOG_MOD, "shell %d done", (int)sh->pid);
    dev_shell_free(sh);
    c->sh = NULL;
    dev_finish(&c->out, &b, e, is_error, GD_OK);
    dev_call_end(c);
}

/* After every event: what to stop, whether it is over, and when to look again. */
static void shell_eval(dev_call *c)
{
    dev_shell *sh = c->sh;
    uint64_t now = loop_now_ms(c->d->host.l);
    bool pipes_open = sh->co.fd >= 0 || sh->ce.fd >= 0;
    if (sh->exited && !pipes_open) {
        shell_finish(c);
        return;
    }
    if (sh->reason == STOP_NONE || sh->reason == STOP_LEFTOVER) {
        enum stop_reason r = STOP_NONE;
        if (atomic_load(&c->cancel))
            r = STOP_CANCEL;
        else if (!sh->exited && now >= sh->deadline)
            r = STOP_TIMEOUT;
        if (r != STOP_NONE) {
            sh->reason = r;
            kill_group(sh, SIGTERM);
            sh->term_at = now;
        } else if (sh->reason == STOP_NONE && sh->exited && now >= sh->exit_at + DEV_DRAIN_MS) {
            /* The shell is gone but something it started in the background still holds the
             * output: hang up on it as a closed terminal would (nohup survives), wait a little
             * more, then stop reading. */
            sh->reason = STOP_LEFTOVER;
            kill_group(sh, SIGHUP);
            sh->term_at = now;
        }
    }
    if (sh->reason == STOP_LEFTOVER && now >= sh->term_at + DEV_DRAIN_MS) {
        shell_finish(c);
        return;
    }
    if ((sh->reason == STOP_TIMEOUT || sh->reason == STOP_CANCEL) && !sh->kill_at &&
        now >= sh->term_at + DEV_KILL_GRACE_MS) {
        kill_group(sh, SIGKILL);
        sh->kill_at = now;
    }
    /* Killed, and still not at end of file: something outside the group holds the pipes. Give
     * up on them (once the supervisor is gone). */
    if (sh->kill_at && sh->exited && now >= sh->kill_at + DEV_DRAIN_MS) {
        shell_finish(c);
        return;
    }
    uint64_t at = UINT64_MAX;
    if (sh->reason == STOP_NONE)
        at = sh->exited ? sh->exit_at + DEV_DRAIN_MS : sh->deadline;
    else if (sh->reason == STOP_LEFTOVER)
        at = sh->term_at + DEV_DRAIN_MS;
    else if (!sh->kill_at)
        at = sh->term_at + DEV_KILL_GRACE_MS;
    else if (sh->exited)
        at = sh->kill_at + DEV_DRAIN_MS;
    arm(c, at); /* UINT64_MAX: the supervisor's exit wakes us */
}

/* A start that cannot be watched: the group is killed, the supervisor reaped. */
static void shell_abort(dev_call *c, const char *why)
{
    dev_shell *sh = c->sh;
    kill_group(sh, SIGKILL);
    unwatch(sh);
    if (sh->child) {
        loop_child_forget(sh->child);
    } else {
        while (waitpid(sh->pid, NULL, 0) < 0 && errno == EINTR) { /* SIGKILLed: at once */
        }
    }
    dev_shell_free(sh);
    c->sh = NULL;
    dev_fail(&c->out, GD_ENOMEM, "developer__shell: %s", why);
    dev_call_end(c);
}

static void shell_spawned(void *arg)
{
    dev_call *c = arg;
    dev_shell *sh = c->sh;
    loop *l = c->d->host.l;
    if (sh->pid <= 0) { /* did not start: the reason is in c->out */
        dev_shell_free(sh);
        c->sh = NULL;
        dev_call_end(c);
        return;
    }
    if (c->orphan) { /* closed meanwhile */
        kill_group(sh, SIGKILL);
        close(sh->fd_out);
        close(sh->fd_err);
        loop_child *ch = loop_child_watch(l, sh->pid, noop_exit, NULL);
        if (ch)
            loop_child_forget(ch); /* reaped when it exits */
        else
            while (waitpid(sh->pid, NULL, 0) < 0 && errno == EINTR) {
            }
        dev_shell_free(sh);
        c->sh = NULL;
        dev_call_end(c);
        return;
    }
    sh->running = true;
    sh->deadline = loop_now_ms(l) + (uint64_t)sh->timeout_ms;
    capture_init(&sh->co, sh->fd_out, sh->cap);
    capture_init(&sh->ce, sh->fd_err, sh->cap);
    sh->chunk = malloc(DEV_READ_CHUNK);
    sh->wo = loop_fd_add(l, sh->fd_out, LOOP_READ, on_pipe, c);
    sh->we = loop_fd_add(l, sh->fd_err, LOOP_READ, on_pipe, c);
    sh->child = loop_child_watch(l, sh->pid, on_child_exit, c);
    if (!sh->chunk || !sh->wo || !sh->we || !sh->child) {
        shell_abort(c, "out of memory while starting the command");
        return;
    }
    shell_eval(c); /* a cancel that came while it started */
}

bool dev_shell_start(dev_call *c, json_t *args, const ext_call_opts *o)
{
    json_t *jc = json_object_get(args, "command");
    const char *command = json_string_value(jc);
    if (!jc)
        dev_fail(&c->out, GD_EINVAL, "developer__shell needs a \"command\" argument (a string)");
    else if (!command)
        dev_fail(&c->out, GD_EINVAL, "developer__shell: \"command\" must be a string");
    else if (!command[0])
        dev_fail(&c->out, GD_EINVAL, "developer__shell: \"command\" is empty");
    else if (strlen(command) != json_string_length(jc))
        dev_fail(&c->out, GD_EINVAL, "developer__shell: \"command\" contains a NUL character");
    if (c->out.text) return dev_call_post(c) == GD_OK;

    ext_limits *lim = c->d->host.limits;
    if (lim && atomic_fetch_add(&lim->processes, 1) >= lim->max_processes) {
        atomic_fetch_sub(&lim->processes, 1);
        dev_fail(&c->out, GD_EBUSY,
                 "developer__shell: %ld tool processes are running, the most goosed runs at once "
                 "(max_tool_processes); try again when one has finished",
                 lim->max_processes);
        return dev_call_post(c) == GD_OK;
    }
    dev_shell *sh = calloc(1, sizeof *sh);
    if (!sh || !(sh->command = strdup(command))) {
        if (lim) atomic_fetch_sub(&lim->processes, 1);
        free(sh);
        return false;
    }
    sh->limits = lim; /* counted until dev_shell_free */
    sh->fd_out = sh->fd_err = sh->co.fd = sh->ce.fd = -1;
    sh->timeout_ms = o && o->timeout_ms > 0           ? o->timeout_ms
                     : c->d->host.tool_timeout_ms > 0 ? c->d->host.tool_timeout_ms
                                                      : DEV_TIMEOUT_MS;
    sh->cap = o && o->output_cap > 0 ? o->output_cap : DEV_OUTPUT_CAP;
    if (sh->cap > DEV_TEXT_CAP / 2 - 4096) sh->cap = DEV_TEXT_CAP / 2 - 4096;
    c->sh = sh;
    c->release = shell_release;
    return dev_submit(c, shell_spawn) == GD_OK;
}

void dev_shell_cancel(dev_call *c)
{
    /* Before it runs, the worker and shell_spawned look at c->cancel. */
    if (c->sh && c->sh->running) arm(c, loop_now_ms(c->d->host.l));
}

bool dev_shell_close(dev_call *c)
{
    dev_shell *sh = c->sh;
    if (!sh->running) return false; /* being started: shell_spawned cleans up */
    kill_group(sh, SIGKILL);
    unwatch(sh);
    if (sh->child) loop_child_forget(sh->child); /* reaped when it exits */
    dev_shell_free(sh);
    c->sh = NULL;
    return true;
}
