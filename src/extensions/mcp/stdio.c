/* stdio: the MCP stdio transport. The server is a child process in its own process group, tied
 * to goosed's life (PR_SET_PDEATHSIG), with every capability dropped (sandbox_child_enter), the
 * sandbox's environment plus the extension's envs and env_keys, and only its three pipes open.
 * Messages are newline-delimited JSON on its stdin and stdout; its stderr goes to goosed's log,
 * tagged "mcp:<name>" and rate-limited. The loop watches the pipes and the exit, so a server
 * holds no thread. A line past MCP_LINE_MAX, or one that is not JSON-RPC, cuts the server off.
 *
 * The child side (fork to exec) follows the developer shell's supervisor (shell.c): only
 * async-signal-safe calls, failures sent back over a close-on-exec pipe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/secrets.h"
#include "core/buf.h"
#include "core/jtext.h"
#include "core/log.h"
#include "core/pool.h"
#include "extensions/mcp/client.h"
#include "extensions/mcp/transport.h"
#include "extensions/sandbox.h"

#define LOG_MOD "mcp"

#define STDIO_TX_CAP      (16u << 20) /* bytes queued for the server's stdin */
#define STDIO_READ_CHUNK  (64u << 10)
#define STDIO_READS_TURN  16    /* reads per wake-up, so a flood leaves the loop room */
#define STDIO_DRAIN_READS 128   /* reads after the exit, for what it wrote before */
#define STDIO_ERR_LINE    2048  /* bytes of one stderr line logged */
#define STDIO_ERR_BURST   200   /* stderr lines logged per window ... */
#define STDIO_ERR_WINDOW  10000 /* ... of this many milliseconds; the rest is counted */
#define STDIO_GRACE_MS    2000  /* after closing stdin, and after SIGTERM */
#define STDIO_EOF_WAIT_MS 2000  /* stdout closed, the process still runs */

typedef struct stdio_t stdio_t;

/* Watches the child's exit; outlives the transport to reap it. */
typedef struct {
    loop *l;
    pid_t pid;
    loop_child *ch;
    loop_timer *t;
    int stage; /* 0 running, 1 stdin closed, 2 SIGTERM sent, 3 SIGKILL sent */
    stdio_t *owner;
    bool exited;
    int status;
    ext_limits *lim; /* the process counts against max_tool_processes until reaped */
    char cgroup[SANDBOX_CGROUP_MAX]; /* "" or the cgroup bounding its processes (goosed as root) */
} reaper;

struct stdio_t {
    mcp_transport base;
    mcp_transport_cb cb;
    loop *l;
    char name[EXT_NAME_MAX];
    int in, out, err;
    loop_fd *win, *wout, *werr;
    buf rx, tx, erx;
    size_t tx_off;
    reaper *rp;
    char *chunk;
    loop_timer *eof_timer, *fail_timer;
    bool failed;
    gd_err fe;
    char fwhy[256];
    int depth;
    bool closing;
    log_limit err_limit; /* stderr lines logged */
    void *job;           /* spawn_job while the process starts (spawned() clears it) */
    ext_limits *lim;     /* a reserved process slot, until the reaper takes it over */
};

/* Gives back a slot of max_tool_processes. */
static void release_slot(ext_limits **lim)
{
    if (*lim) atomic_fetch_sub(&(*lim)->processes, 1);
    *lim = NULL;
}

static void stdio_free(stdio_t *t);

/* ---- failing (reported later, on the loop) ---- */

static void deliver_fail(void *ud)
{
    stdio_t *t = ud;
    t->fail_timer = NULL;
    t->depth++;
    t->cb.closed(t->cb.ud, t->fe, t->fwhy);
    t->depth--;
    if (t->closing) stdio_free(t);
}

static void unwatch_io(stdio_t *t)
{
    loop_fd_del(t->wout);
    loop_fd_del(t->werr);
    loop_fd_del(t->win);
    t->wout = t->werr = t->win = NULL;
}

static void fail(stdio_t *t, gd_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(stdio_t *t, gd_err e, const char *fmt, ...)
{
    if (t->failed) return;
    t->failed = true;
    t->fe = e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->fwhy, sizeof t->fwhy, fmt, ap);
    va_end(ap);
    unwatch_io(t);
    if (t->eof_timer) loop_timer_cancel(t->eof_timer);
    t->eof_timer = NULL;
    if (!(t->fail_timer = loop_timer_add(t->l, 0, deliver_fail, t)))
        log_error(LOG_MOD, "%s: no memory to report that the server stopped", t->name);
}

static void exit_reason(int status, char *out, size_t n)
{
    if (WIFEXITED(status))
        snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, n, "was killed by signal %d (SIG%s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(out, n, "exited");
}

/* ---- stdout: newline-delimited JSON-RPC ---- */

static bool is_jsonrpc(json_t *m)
{
    if (json_is_array(m)) {
        if (!json_array_size(m)) return false;
        size_t i;
        json_t *e;
        json_array_foreach(m, i, e) if (!is_jsonrpc(e)) return false;
        return true;
    }
    const char *v = json_string_value(json_object_get(m, "jsonrpc"));
    return json_is_object(m) && v && !strcmp(v, "2.0");
}

/* One whole line (without its newline). false once the transport stops. */
static bool on_line(stdio_t *t, const char *p, size_t n)
{
    while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (!n) return true;
    json_t *m = json_loadb(p, n, 0, NULL);
    if (!m || !is_jsonrpc(m)) {
        char esc[400];
        mcp_escape(p, n, 80, esc, sizeof esc);
        json_decref(m);
        fail(t, GD_EPROTO, "wrote something that is not JSON-RPC: %s", esc);
        return false;
    }
    t->depth++;
    t->cb.message(t->cb.ud, m);
    t->depth--;
    json_decref(m);
    return !t->closing && !t->failed;
}

/* Feeds bytes read from stdout. false once the transport stops. */
static bool feed(stdio_t *t, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (t->rx.len + take > MCP_LINE_MAX) {
            fail(t, GD_EPROTO, "wrote a line of more than %u bytes", MCP_LINE_MAX);
            return false;
        }
        if (!nl) {
            if (buf_append(&t->rx, p, take) != GD_OK) {
                fail(t, GD_ENOMEM, "out of memory for a line of its output");
                return false;
            }
            return true;
        }
        bool ok;
        if (t->rx.len) {
            if (buf_append(&t->rx, p, take) != GD_OK) {
                fail(t, GD_ENOMEM, "out of memory for a line of its output");
                return false;
            }
            ok = on_line(t, t->rx.data, t->rx.len);
            if (!t->closing) buf_reset(&t->rx);
        } else {
            ok = on_line(t, p, take);
        }
        if (!ok) return false;
        p += take + 1;
        n -= take + 1;
    }
    return true;
}

static void eof_wait_over(void *ud)
{
    stdio_t *t = ud;
    t->eof_timer = NULL;
    fail(t, GD_EIO, "closed its stdout");
}

/* Reads stdout: a bounded amount, or (drain) everything there is. */
static void read_out(stdio_t *t, bool drain)
{
    for (int i = 0; i < (drain ? STDIO_DRAIN_READS : STDIO_READS_TURN); i++) {
        ssize_t r = read(t->out, t->chunk, STDIO_READ_CHUNK);
        if (r > 0) {
            if (!feed(t, t->chunk, (size_t)r)) return;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        /* end of file (or an error): the process is exiting */
        loop_fd_del(t->wout);
        t->wout = NULL;
        if (t->rp->exited) {
            char why[128];
            exit_reason(t->rp->status, why, sizeof why);
            fail(t, GD_EIO, "%s", why);
        } else if (!t->eof_timer && !t->failed) {
            t->eof_timer = loop_timer_add(t->l, STDIO_EOF_WAIT_MS, eof_wait_over, t);
        }
        return;
    }
}

static void on_out(loop_fd *w, int fd, unsigned events, void *ud)
{
    stdio_t *t = ud;
    t->depth++;
    read_out(t, false);
    t->depth--;
    if (t->closing) stdio_free(t);
}

/* ---- stderr: to the log, rate-limited ---- */

static void err_line(stdio_t *t, const char *p, size_t n)
{
    if (!log_limit_take(&t->err_limit, loop_now_ms(t->l), STDIO_ERR_BURST, STDIO_ERR_WINDOW,
                        t->name, "lines of stderr"))
        return;
    char esc[STDIO_ERR_LINE + 8];
    while (n && (p[n - 1] == '\r'))
        n--;
    mcp_escape(p, n, STDIO_ERR_LINE / 4, esc, sizeof esc);
    log_info(t->name, "%s", esc);
}

static void on_err(loop_fd *w, int fd, unsigned events, void *ud)
{
    stdio_t *t = ud;
    for (int i = 0; i < STDIO_READS_TURN; i++) {
        ssize_t r = read(fd, t->chunk, STDIO_READ_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) {
            if (t->erx.len) err_line(t, t->erx.data, t->erx.len);
            buf_reset(&t->erx);
            loop_fd_del(t->werr);
            t->werr = NULL;
            return;
        }
        const char *p = t->chunk;
        size_t n = (size_t)r;
        while (n) {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) : n;
            size_t room = STDIO_ERR_LINE - t->erx.len;
            /* past the line's cap the rest of the line is dropped */
            buf_ignore(buf_append(&t->erx, p, take < room ? take : room));
            if (nl) {
                err_line(t, t->erx.data, t->erx.len);
                buf_reset(&t->erx);
                take++;
            }
            p += take;
            n -= take;
        }
    }
}

/* ---- stdin ---- */

static void flush_tx(stdio_t *t);

static void on_in(loop_fd *w, int fd, unsigned events, void *ud)
{
    stdio_t *t = ud;
    if (events & (LOOP_ERR | LOOP_HUP) && !(events & LOOP_WRITE)) {
        fail(t, GD_EIO, "closed its stdin");
        return;
    }
    flush_tx(t);
}

static void flush_tx(stdio_t *t)
{
    if (t->in < 0) return; /* still starting: spawned() flushes */
    while (t->tx_off < t->tx.len) {
        ssize_t w = write(t->in, t->tx.data + t->tx_off, t->tx.len - t->tx_off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (w < 0) {
            char eb[128];
            fail(t, GD_EIO, "stopped reading its stdin (%s)",
                 strerror_r(errno, eb, sizeof eb) ? "write failed" : eb);
            return;
        }
        t->tx_off += (size_t)w;
    }
    if (t->tx_off == t->tx.len) {
        buf_reset(&t->tx);
        t->tx_off = 0;
        if (t->win) {
            loop_fd_del(t->win);
            t->win = NULL;
        }
    } else if (!t->win) {
        if (!(t->win = loop_fd_add(t->l, t->in, LOOP_WRITE, on_in, t)))
            fail(t, GD_ENOMEM, "out of memory to watch its stdin");
    }
}

static void stdio_send(mcp_transport *base, json_t *msg)
{
    stdio_t *t = (stdio_t *)base;
    if (t->failed) return;
    char *s = jtext(msg, NULL);
    if (!s) {
        fail(t, GD_ENOMEM, "out of memory for a message");
        return;
    }
    size_t n = strlen(s);
    if (t->tx_off > (1u << 20)) { /* compact what was written */
        memmove(t->tx.data, t->tx.data + t->tx_off, t->tx.len - t->tx_off);
        t->tx.len -= t->tx_off;
        t->tx_off = 0;
    }
    gd_err e = buf_append(&t->tx, s, n);
    if (!e) e = buf_append(&t->tx, "\n", 1);
    free(s);
    if (e) {
        fail(t, e, "does not read its stdin: more than %u bytes wait for it", STDIO_TX_CAP);
        return;
    }
    flush_tx(t);
}

static void stdio_set_version(mcp_transport *t, const char *v) {}

/* ---- the process ---- */

static void reaper_free(reaper *rp)
{
    if (rp->t) loop_timer_cancel(rp->t);
    sandbox_cgroup_remove(rp->cgroup); /* the server has exited: what it left goes too */
    release_slot(&rp->lim);
    free(rp);
    mcp_linger(-1);
}

static void on_exit_(loop_child *c, pid_t pid, int status, void *ud)
{
    reaper *rp = ud;
    rp->ch = NULL; /* freed after this returns */
    rp->exited = true;
    rp->status = status;
    stdio_t *t = rp->owner;
    if (!t) {
        reaper_free(rp);
        return;
    }
    if (t->failed) return;
    t->depth++;
    if (t->wout) read_out(t, true); /* what it wrote before it went */
    t->depth--;
    if (t->closing) {
        stdio_free(t);
        return;
    }
    char why[128];
    exit_reason(status, why, sizeof why);
    fail(t, GD_EIO, "%s", why);
}

static void reaper_step(void *ud)
{
    reaper *rp = ud;
    rp->t = NULL;
    if (rp->exited) return;
    int sig = rp->stage == 1 ? SIGTERM : SIGKILL;
    rp->stage++;
    if (killpg(rp->pid, sig) < 0 && errno != ESRCH)
        log_warn(LOG_MOD, "killpg %d: %s", (int)rp->pid, strerror(errno));
    if (sig == SIGTERM) rp->t = loop_timer_add(rp->l, STDIO_GRACE_MS, reaper_step, rp);
}

static void stdio_free(stdio_t *t)
{
    log_limit_flush(&t->err_limit, t->name, "lines of stderr");
    unwatch_io(t);
    if (t->eof_timer) loop_timer_cancel(t->eof_timer);
    if (t->fail_timer) loop_timer_cancel(t->fail_timer);
    if (t->in >= 0) close(t->in); /* end of file on its stdin: the polite way to stop */
    if (t->out >= 0) close(t->out);
    if (t->err >= 0) close(t->err);
    release_slot(&t->lim); /* the process never ran */
    reaper *rp = t->rp;
    if (rp) {
        rp->owner = NULL;
        if (rp->exited) {
            reaper_free(rp);
        } else {
            rp->stage = 1;
            rp->t = loop_timer_add(rp->l, STDIO_GRACE_MS, reaper_step, rp);
            if (!rp->t) killpg(rp->pid, SIGKILL);
        }
    }
    buf_free(&t->rx);
    buf_free(&t->tx);
    buf_free(&t->erx);
    free(t->chunk);
    free(t);
}

static void stdio_close(mcp_transport *base)
{
    stdio_t *t = (stdio_t *)base;
    if (t->depth > 0 || t->job) { /* in a callback, or starting on a worker */
        t->closing = true;        /* freed when the callback returns */
        t->cb.message = NULL;
        return;
    }
    stdio_free(t);
}

static const mcp_transport_ops stdio_ops = {
    .send = stdio_send,
    .set_protocol_version = stdio_set_version,
    .close = stdio_close,
};

/* ---- spawning ---- */

enum { ST_FDS = 1, ST_CGROUP, ST_SETPGID, ST_PDEATHSIG, ST_NET, ST_PRIVS, ST_CHDIR, ST_EXEC };

typedef struct {
    int stage, err;
} child_err;

static const char *stage_what(int s)
{
    switch (s) {
    case ST_FDS:
        return "setting up its file descriptors";
    case ST_CGROUP:
        return "joining the cgroup that limits its processes";
    case ST_SETPGID:
        return "creating its process group";
    case ST_PDEATHSIG:
        return "tying it to goosed's life";
    case ST_NET:
        return "starting its network";
    case ST_PRIVS:
        return "dropping its privileges";
    case ST_CHDIR:
        return "entering the working directory";
    default:
        return "executing it";
    }
}

__attribute__((noreturn)) static void child_fail(int fd, int stage, int err)
{
    child_err ce = {stage, err};
    ssize_t w = write(fd, &ce, sizeof ce);
    (void)w;
    _exit(127);
}

typedef struct {
    const char *path;
    char *const *argv;
    char *const *env;
    const char *cwd;
    sandbox_child sb;
    int max_fd;
} spawn_req;

/* In the child: fds = stdin, stdout, stderr ends and the error pipe. */
__attribute__((noreturn)) static void child_run(const spawn_req *r, pid_t parent, const int fds[4])
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int hi[4];
    for (int i = 0; i < 4; i++)
        if ((hi[i] = fcntl(fds[i], F_DUPFD, 10)) < 0) child_fail(fds[3], ST_FDS, errno);
    for (int i = 0; i < 4; i++)
        if (dup2(hi[i], i) < 0) child_fail(hi[3], ST_FDS, errno);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 4u, ~0U, 0) != 0)
#endif
        for (int fd = 4; fd < r->max_fd; fd++)
            close(fd);
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0) child_fail(3, ST_FDS, errno);
    /* The server's network, outside its cgroup and before the privileges go (shell.c says why) */
    int ne = sandbox_child_net(&r->sb, NULL);
    if (ne) child_fail(3, ST_NET, ne);
    /* Before it can fork: the server and all it starts are inside the cgroup's limit. */
    int ce = sandbox_child_cgroup_enter(&r->sb);
    if (ce) child_fail(3, ST_CGROUP, ce);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    if (setpgid(0, 0) < 0) child_fail(3, ST_SETPGID, errno);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(3, ST_PDEATHSIG, errno);
    if (getppid() != parent) _exit(127);
    int e = sandbox_child_enter(&r->sb);
    if (e) child_fail(3, ST_PRIVS, e);
    if (r->cwd && chdir(r->cwd) < 0) child_fail(3, ST_CHDIR, errno);
    e = sandbox_child_limits(&r->sb);
    if (e) child_fail(3, ST_PRIVS, e);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(r->path, r->argv, r->env);
    child_fail(3, ST_EXEC, errno);
}

/* The executable for cmd: as given when it holds a '/', else looked up in PATH (the child's,
 * else goosed's). */
static bool find_exec(const char *cmd, char *const *env, char *out, size_t n)
{
    if (strchr(cmd, '/')) {
        snprintf(out, n, "%s", cmd);
        return access(out, X_OK) == 0;
    }
    const char *path = NULL;
    for (char *const *e = env; e && *e; e++)
        if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
    if (!path) path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *c = strchr(path, ':');
        size_t len = c ? (size_t)(c - path) : strlen(path);
        if (len) {
            snprintf(out, n, "%.*s/%s", (int)len, path, cmd);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0) return true;
        }
        path += len + (c ? 1 : 0);
    }
    return false;
}

/* Appends or replaces name=value in env (a growing array of malloc'd strings). */
static bool env_set(char ***env, size_t *n, const char *name, const char *value)
{
    size_t nl = strlen(name);
    char *s = malloc(nl + strlen(value) + 2);
    if (!s) return false;
    sprintf(s, "%s=%s", name, value);
    for (size_t i = 0; i < *n; i++)
        if (!strncmp((*env)[i], name, nl) && (*env)[i][nl] == '=') {
            free((*env)[i]);
            (*env)[i] = s;
            return true;
        }
    char **ne = realloc(*env, (*n + 2) * sizeof *ne);
    if (!ne) {
        free(s);
        return false;
    }
    *env = ne;
    ne[(*n)++] = s;
    ne[*n] = NULL;
    return true;
}

static void env_free(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

static char **build_env(const json_t *cfg, const ext_host *host, const char *name)
{
    char **env = calloc(1, sizeof *env);
    size_t n = 0;
    if (!env) return NULL;
    for (char *const *e = host->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char nm[256];
        snprintf(nm, sizeof nm, "%.*s", (int)(eq - *e), *e);
        if (!env_set(&env, &n, nm, eq + 1)) goto oom;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(cfg, "envs"), k, v)
    {
        char num[64];
        const char *val = json_string_value(v);
        if (!val && json_is_number(v)) {
            snprintf(num, sizeof num, "%g", json_number_value(v));
            val = num;
        }
        if (!val && json_is_boolean(v)) val = json_is_true(v) ? "true" : "false";
        if (val && !env_set(&env, &n, k, val)) goto oom;
    }
    size_t i;
    json_array_foreach(json_object_get(cfg, "env_keys"), i, v)
    {
        const char *key = json_string_value(v);
        if (!key) continue;
        const char *val = getenv(key);
        char sec[8192];
        if (!val && secrets_get(key, sec, sizeof sec) > 0) val = sec;
        if (!val) {
            log_warn(LOG_MOD,
                     "%s: env_keys: %s is set neither in goosed's environment nor in "
                     "secrets.yaml; the server runs without it",
                     name, key);
            continue;
        }
        bool ok = env_set(&env, &n, key, val);
        if (val == sec) memset(sec, 0, sizeof sec);
        if (!ok) goto oom;
    }
    return env;
oom:
    env_free(env);
    return NULL;
}

/* The spawn, on a worker (fork of a large process takes a while) or inline: t->job is filled
 * with the process and its pipes, or with why it did not start. */
typedef struct {
    char path[PATH_MAX];
    char cmd[256];
    char **argv, **env;
    char **bargv; /* the same under bubblewrap, or NULL: run open */
    char *cwd;
    pid_t pid;
    int in, out, err;
    char cgroup[SANDBOX_CGROUP_MAX]; /* "" or the cgroup it runs in (goosed as root) */
    const net_allow *reach;          /* a user's server: its network's reach (sandbox.h) */
    char why[512];
} spawn_job;

static void job_free(spawn_job *j)
{
    if (!j) return;
    env_free(j->argv);
    env_free(j->env);
    sandbox_argv_free(j->bargv);
    free(j->cwd);
    free(j);
}

static void spawn_run(spawn_job *j)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1}, pfail[2] = {-1, -1};
    char eb[128];
    if (!sandbox_cgroup_make(j->cgroup, sizeof j->cgroup, j->why, sizeof j->why)) goto out;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0 ||
        pipe2(pfail, O_CLOEXEC) < 0) {
        snprintf(j->why, sizeof j->why, "cannot create pipes: %s",
                 strerror_r(errno, eb, sizeof eb) ? "error" : eb);
        goto out;
    }
    spawn_req r = {.path = j->bargv ? j->bargv[0] : j->path,
                   .argv = j->bargv ? j->bargv : j->argv,
                   .env = j->env,
                   .cwd = j->cwd,
                   .max_fd = 1 << 16};
    sandbox_child_prepare(&r.sb, sandbox_current());
    sandbox_child_reach(&r.sb, j->reach);
    sandbox_child_cgroup(&r.sb, j->cgroup);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (1u << 20))
        r.max_fd = (int)rl.rlim_cur;
    const int fds[4] = {pin[0], pout[1], perr[1], pfail[1]};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) child_run(&r, parent, fds);
    int fe = errno;
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    close(pfail[1]);
    pin[0] = pout[1] = perr[1] = pfail[1] = -1;
    if (pid < 0) {
        snprintf(j->why, sizeof j->why, "cannot start '%s': fork: %s", j->cmd,
                 strerror_r(fe, eb, sizeof eb) ? "error" : eb);
        goto out;
    }
    child_err ce;
    size_t got = 0;
    while (got < sizeof ce) { /* end of file once it executes */
        ssize_t k = read(pfail[0], (char *)&ce + got, sizeof ce - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    if (got == sizeof ce) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        snprintf(j->why, sizeof j->why, "cannot start '%s'%s%s: %s (while %s)", j->cmd,
                 ce.stage == ST_CHDIR ? " in " : "", ce.stage == ST_CHDIR ? j->cwd : "",
                 strerror_r(ce.err, eb, sizeof eb) ? "error" : eb, stage_what(ce.stage));
        goto out;
    }
    j->pid = pid;
    j->in = pin[1];
    j->out = pout[0];
    j->err = perr[0];
    pin[1] = pout[0] = perr[0] = -1;
    fcntl(j->in, F_SETFL, O_NONBLOCK);
    fcntl(j->out, F_SETFL, O_NONBLOCK);
    fcntl(j->err, F_SETFL, O_NONBLOCK);
out:
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0) close(pin[i]);
        if (pout[i] >= 0) close(pout[i]);
        if (perr[i] >= 0) close(perr[i]);
        if (pfail[i] >= 0) close(pfail[i]);
    }
    if (j->pid <= 0) sandbox_cgroup_remove(j->cgroup); /* it did not start */
}

static void on_exit_(loop_child *c, pid_t pid, int status, void *ud);

/* On the loop: the process runs (watched from now on) or did not start (reported later). */
static void spawned(void *ud)
{
    stdio_t *t = ud;
    spawn_job *j = t->job;
    t->job = NULL;
    reaper *rp = j->pid > 0 ? calloc(1, sizeof *rp) : NULL;
    if (rp) {
        rp->l = t->l;
        rp->pid = j->pid;
        rp->owner = t;
        memcpy(rp->cgroup, j->cgroup, sizeof rp->cgroup); /* removed with the reaper */
        j->cgroup[0] = '\0';
        rp->ch = loop_child_watch(t->l, j->pid, on_exit_, rp);
    }
    if (j->pid > 0 && (!rp || !rp->ch)) {
        killpg(j->pid, SIGKILL);
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (rp) memcpy(j->cgroup, rp->cgroup, sizeof j->cgroup);
        sandbox_cgroup_remove(j->cgroup);
        free(rp);
        rp = NULL;
        close(j->in);
        close(j->out);
        close(j->err);
        j->pid = 0;
        snprintf(j->why, sizeof j->why, "out of memory to watch the server");
    }
    if (rp) {
        mcp_linger(1); /* until reaper_free */
        rp->lim = t->lim;
        t->lim = NULL;
        t->rp = rp;
        t->in = j->in;
        t->out = j->out;
        t->err = j->err;
    }
    if (t->closing) { /* closed while it started */
        job_free(j);
        stdio_free(t);
        return;
    }
    if (!rp) {
        fail(t, GD_EIO, "%s", j->why);
        job_free(j);
        return;
    }
    log_debug(LOG_MOD, "%s: started %s (pid %d)", t->name, j->path, (int)j->pid);
    job_free(j);
    t->wout = loop_fd_add(t->l, t->out, LOOP_READ, on_out, t);
    t->werr = loop_fd_add(t->l, t->err, LOOP_READ, on_err, t);
    if (!t->wout || !t->werr) {
        fail(t, GD_ENOMEM, "out of memory to watch its output");
        return;
    }
    flush_tx(t); /* what was sent while it started */
}

static void spawn_work(void *arg)
{
    stdio_t *t = arg;
    spawn_run(t->job);
    if (loop_post(t->l, spawned, t) != GD_OK) {
        /* The loop is gone (shutting down): nothing will watch the server. */
        spawn_job *j = t->job;
        log_error(LOG_MOD, "%s: the loop refused the started server; killing it", t->name);
        if (j->pid > 0) {
            killpg(j->pid, SIGKILL);
            while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR) {
            }
            close(j->in);
            close(j->out);
            close(j->err);
        }
    }
}

static char **argv_new(const char *cmd, json_t *args)
{
    size_t na = json_array_size(args);
    char **argv = calloc(na + 2, sizeof *argv);
    if (!argv || !(argv[0] = strdup(cmd))) {
        free(argv);
        return NULL;
    }
    for (size_t i = 0; i < na; i++) {
        const char *a = json_string_value(json_array_get(args, i));
        if (!(argv[i + 1] = strdup(a ? a : ""))) {
            env_free(argv);
            return NULL;
        }
    }
    return argv;
}

mcp_transport *mcp_stdio_new(const json_t *cfg, const ext_host *host, const mcp_transport_cb *cb,
                             char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(cfg, "name"));
    const char *cmd = json_string_value(json_object_get(cfg, "cmd"));
    if (!name) name = "mcp";
    if (!cmd || !cmd[0]) {
        snprintf(err, errlen, "%s: cmd: a command is required for type stdio", name);
        return NULL;
    }
    stdio_t *t = calloc(1, sizeof *t);
    spawn_job *j = calloc(1, sizeof *j);
    if (!t || !j || !(t->chunk = malloc(STDIO_READ_CHUNK)) ||
        !(j->env = build_env(cfg, host, name)) ||
        !(j->argv = argv_new(cmd, json_object_get(cfg, "args"))) ||
        (host->cwd && host->cwd[0] && !(j->cwd = strdup(host->cwd)))) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto fail;
    }
    snprintf(j->cmd, sizeof j->cmd, "%s", cmd);
    j->reach = host->confined ? host->reach : NULL;
    if (!find_exec(cmd, j->env, j->path, sizeof j->path)) {
        snprintf(err, errlen, "%s: cannot start '%s': %s", name, cmd,
                 strchr(cmd, '/') ? "no such executable file" : "not found in PATH");
        goto fail;
    }
    const sandbox_cfg *sb = sandbox_current();
    if (sb && !sb->open) {
        char why[512], rcwd[PATH_MAX];
        free(j->argv[0]); /* bwrap runs the executable found, not a name looked up again */
        if (!(j->argv[0] = strdup(j->path))) {
            snprintf(err, errlen, "%s: out of memory", name);
            goto fail;
        }
        if (!sb->ready) {
            snprintf(err, errlen,
                     "%s: refused: tools run only in a sandbox, and %s (set `sandbox: off` in "
                     "goosed's config to run them without one)",
                     name, sb->why);
            goto fail;
        }
        if (!realpath(j->cwd ? j->cwd : ".", rcwd)) {
            snprintf(err, errlen, "%s: the working directory '%s' is not accessible: %s", name,
                     j->cwd ? j->cwd : ".", strerror(errno));
            goto fail;
        }
        if (!(j->bargv =
                  sandbox_argv_new(sb, host, SANDBOX_SERVER, rcwd, j->argv, why, sizeof why))) {
            snprintf(err, errlen, "%s: refused: %s", name, why);
            goto fail;
        }
    }
    t->base.ops = &stdio_ops;
    t->cb = *cb;
    t->l = host->l;
    snprintf(t->name, sizeof t->name, "mcp:%s", name);
    t->in = t->out = t->err = -1;
    buf_init(&t->rx, MCP_LINE_MAX + 1);
    buf_init(&t->tx, STDIO_TX_CAP);
    buf_init(&t->erx, STDIO_ERR_LINE + 1);
    t->err_limit.win = loop_now_ms(host->l);
    t->job = j;
    ext_limits *lim = host->limits;
    if (lim && atomic_fetch_add(&lim->processes, 1) >= lim->max_processes) {
        atomic_fetch_sub(&lim->processes, 1);
        snprintf(err, errlen,
                 "%s: %ld tool processes run already, the most goosed runs at once "
                 "(max_tool_processes)",
                 name, lim->max_processes);
        buf_free(&t->rx);
        buf_free(&t->tx);
        buf_free(&t->erx);
        goto fail;
    }
    t->lim = lim;
    if (host->workers && pool_submit(host->workers, spawn_work, t) == GD_OK)
        return &t->base; /* spawned() takes over on the loop */
    spawn_run(j);
    if (j->pid <= 0) {
        snprintf(err, errlen, "%s: %s", name, j->why);
        buf_free(&t->rx);
        buf_free(&t->tx);
        buf_free(&t->erx);
        goto fail;
    }
    spawned(t);
    return &t->base;
fail:
    if (t) {
        release_slot(&t->lim);
        free(t->chunk);
    }
    free(t);
    job_free(j);
    return NULL;
}
