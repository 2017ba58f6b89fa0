/* Unit tests for the developer extension behind extension.h (src/extensions/developer/), the
 * registry and the sandbox: every call goes through a real loop and a real worker pool, and the
 * test thread waits for its done on a condition variable. Each test runs in a fresh temporary
 * directory: base/work is the session's working directory, base/conf a protected directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "core/pool.h"
#include "extensions/extension.h"
#include "extensions/sandbox.h"

extern char **environ;

/* ---- fixtures ---- */

typedef struct {
    char base[PATH_MAX]; /* realpath of a fresh temporary directory */
    char dir[PATH_MAX];  /* base/work: the working directory */
    char conf[PATH_MAX]; /* base/conf: protected */
    const char *protected_dirs[2];
    loop *l;
    pool *p;
    ext_host host;
    extension *x;
    ext_call_opts opts;
} fx;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

/* Runs fn(arg) on the loop's thread and waits until it has returned. */
typedef struct {
    void (*fn)(void *);
    void *arg;
    bool ran;
} on_loop_req;

static void on_loop_run(void *ud)
{
    on_loop_req *q = ud;
    q->fn(q->arg);
    pthread_mutex_lock(&g_mu);
    q->ran = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void on_loop(loop *l, void (*fn)(void *), void *arg)
{
    on_loop_req q = {.fn = fn, .arg = arg};
    assert_int_equal(loop_post(l, on_loop_run, &q), GD_OK);
    pthread_mutex_lock(&g_mu);
    while (!q.ran)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void nothing(void *arg) {}

static void close_ext(void *arg)
{
    extension *x = arg;
    x->ops->close(x);
}

static int setup_with(void **state, int threads, size_t queue)
{
    fx *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/gd-devext-XXXXXX";
    if (!f || !mkdtemp(tmpl) || !realpath(tmpl, f->base)) return -1;
    snprintf(f->dir, sizeof f->dir, "%s/work", f->base);
    snprintf(f->conf, sizeof f->conf, "%s/conf", f->base);
    if (mkdir(f->dir, 0755) || mkdir(f->conf, 0755)) return -1;
    f->protected_dirs[0] = f->conf;
    f->l = loop_new("devext");
    f->p = pool_new("devext", threads, queue);
    if (!f->l || !f->p) return -1;
    f->host.l = f->l;
    f->host.workers = f->p;
    f->host.env = NULL; /* the developer builds the allow-list itself */
    f->host.protected_dirs = f->protected_dirs;
    snprintf(f->host.session_id, sizeof f->host.session_id, "test");
    f->host.cwd = f->dir;
    f->x = developer_new(&f->host, NULL);
    if (!f->x) return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 4, 256);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static void release_blocked(void);

static int teardown(void **state)
{
    fx *f = *state;
    release_blocked(); /* a failed assertion between block_pool and unblock_pool: fail, not hang */
    if (f->x) on_loop(f->l, close_ext, f->x);
    pool_free(f->p); /* jobs still running hand their results to the loop, which still runs */
    loop_free(f->l);
    nftw(f->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static uint64_t ms(void)
{
    return clock_mono_ns() / 1000000u;
}

/* ---- calling a tool and waiting for its end ---- */

typedef struct {
    fx *f;
    extension *x;     /* the extension called, or NULL: through r */
    ext_registry *r;  /* with a full tool name */
    const char *tool; /* unprefixed for x */
    json_t *args;
    ext_call_opts o;
    ext_call *c;
    bool in_call;   /* done must never run inside the op that started the call */
    bool reentered; /* ... and this says it did */
    bool started, done;
    char *text;
    bool is_error;
} req;

static void on_done(void *ud, ext_result *res)
{
    req *q = ud;
    if (q->in_call) q->reentered = true;
    assert_true(json_is_array(res->content));
    json_t *item = json_array_get(res->content, 0);
    const char *t = json_string_value(json_object_get(item, "text"));
    char *text = strdup(t ? t : "<no text item>");
    if (json_array_size(res->content) != 1 ||
        strcmp(json_string_value(json_object_get(item, "type")), "text"))
        q->reentered = true; /* flagged below: one text item expected */
    json_decref(res->content);
    pthread_mutex_lock(&g_mu);
    q->text = text;
    q->is_error = res->is_error;
    q->done = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void start_call(void *arg)
{
    req *q = arg;
    q->in_call = true;
    if (q->x)
        q->c = q->x->ops->call(q->x, q->tool, q->args, &q->o, on_done, q);
    else
        q->c = registry_call(q->r, q->tool, q->args, &q->o, on_done, q);
    q->in_call = false;
    assert_non_null(q->c);
    pthread_mutex_lock(&g_mu);
    q->started = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* Starts a call (takes args) without waiting for its end. */
static void begin(fx *f, req *q, extension *x, const char *tool, json_t *args)
{
    memset(q, 0, sizeof *q);
    q->f = f;
    q->x = x;
    q->tool = tool;
    q->args = args;
    q->o = f->opts;
    on_loop(f->l, start_call, q);
}

/* Waits for the end of a call begun; the text is the caller's to free. */
static void wait_end(req *q)
{
    pthread_mutex_lock(&g_mu);
    while (!q->done)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    assert_false(q->reentered);
    json_decref(q->args);
    q->args = NULL;
    json_t *s = json_string(q->text); /* jansson insists on valid UTF-8 */
    assert_non_null(s);
    json_decref(s);
}

typedef struct {
    char *text;
    bool is_error;
} out_t;

/* Calls a tool of extension x (takes args) and waits for its end. */
static out_t call_x(fx *f, extension *x, const char *tool, json_t *args)
{
    req q;
    begin(f, &q, x, tool, args);
    wait_end(&q);
    return (out_t){q.text, q.is_error};
}

/* Calls a tool with arguments given as JSON text (NULL: none). */
static out_t call(fx *f, const char *tool, const char *json)
{
    json_error_t je;
    json_t *args = json ? json_loads(json, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je) : NULL;
    if (json) assert_non_null(args);
    return call_x(f, f->x, tool, args);
}

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static out_t shell(fx *f, const char *command)
{
    int fds = open_fds();
    out_t o = call_x(f, f->x, "shell", json_pack("{s:s}", "command", command));
    /* No zombies: every child started has been reaped. No fd left open. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(open_fds(), fds);
    return o;
}

static out_t ed(fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_error_t je;
    json_t *args = json_vpack_ex(&je, 0, fmt, ap);
    va_end(ap);
    if (!args) fail_msg("json_pack: %s", je.text);
    return call_x(f, f->x, "text_editor", args);
}

static out_t list(fx *f, const char *json)
{
    return call(f, "list_files", json);
}

static void write_text(fx *f, const char *rel, const char *text)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", f->dir, rel);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* The file's content (static buffer; "<absent>" when it does not exist). */
static const char *read_text(fx *f, const char *rel)
{
    static char data[1 << 16];
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", f->dir, rel);
    FILE *fp = fopen(p, "r");
    if (!fp) return "<absent>";
    size_t n = fread(data, 1, sizeof data - 1, fp);
    fclose(fp);
    data[n] = '\0';
    return data;
}

static void mkdir_rel(fx *f, const char *rel)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", f->dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected to find \"%s\" in:\n%s", needle, hay);
}

static void assert_lacks(const char *hay, const char *needle)
{
    if (strstr(hay, needle)) fail_msg("did not expect \"%s\" in:\n%s", needle, hay);
}

/* True once process pid is gone or a zombie. Its pipes reached end of file before the tool
 * returned, so it is at most finishing its exit. */
static bool process_dead(pid_t pid)
{
    for (int i = 0; i < 100000; i++) {
        char p[64], st[512];
        snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
        FILE *fp = fopen(p, "r");
        if (!fp) return true;
        size_t n = fread(st, 1, sizeof st - 1, fp);
        fclose(fp);
        st[n] = '\0';
        const char *rp = strrchr(st, ')');
        if (!rp || rp[1] != ' ') return true;
        if (rp[2] == 'Z' || rp[2] == 'X' || rp[2] == 'x') return true;
        sched_yield();
    }
    return false;
}

/* Waits (at most 20 s, a bound for a broken build, not a timing) until process pid, not
 * necessarily a child of ours, has exited. */
static bool wait_gone(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return errno == ESRCH;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, 20000);
    while (r < 0 && errno == EINTR);
    close(fd);
    return r == 1;
}

/* Blocks a pool's workers until released: for calls that must wait in the queue. */
typedef struct {
    int started;
    bool release;
} blocker;

static void block_job(void *arg)
{
    blocker *b = arg;
    pthread_mutex_lock(&g_mu);
    b->started++;
    pthread_cond_broadcast(&g_cv);
    while (!b->release)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

/* Released by teardown if an assertion left it blocked; blockers are static for that reason (the
 * test's frame is gone by then). */
static blocker *g_blocked;

static void block_pool(pool *p, blocker *b, int threads)
{
    memset(b, 0, sizeof *b);
    g_blocked = b;
    for (int i = 0; i < threads; i++)
        assert_int_equal(pool_submit(p, block_job, b), GD_OK);
    pthread_mutex_lock(&g_mu);
    while (b->started < threads)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static void unblock_pool(blocker *b)
{
    pthread_mutex_lock(&g_mu);
    g_blocked = NULL;
    b->release = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void release_blocked(void)
{
    if (g_blocked) unblock_pool(g_blocked);
}

static void cancel_call(void *arg)
{
    req *q = arg;
    if (q->x)
        q->x->ops->cancel(q->c);
    else
        registry_cancel(q->c);
}

static void start_and_cancel(void *arg)
{
    start_call(arg);
    cancel_call(arg);
}

/* ---- the tool list and the registry ---- */

static void test_tools_schema(void **state)
{
    fx *f = *state;
    json_t *tools = f->x->ops->tools(f->x);
    assert_non_null(tools);
    assert_int_equal(json_array_size(tools), 3);
    const char *want[] = {"shell", "text_editor", "list_files"};
    const bool read_only[] = {false, false, true};
    for (size_t i = 0; i < 3; i++) {
        json_t *t = json_array_get(tools, i);
        assert_string_equal(json_string_value(json_object_get(t, "name")), want[i]);
        const char *desc = json_string_value(json_object_get(t, "description"));
        assert_true(strlen(desc) > 100);
        assert_lacks(desc, "%"); /* every format was filled in */
        json_t *s = json_object_get(t, "inputSchema");
        assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
        assert_true(json_is_object(json_object_get(s, "properties")));
        json_t *req_ = json_object_get(s, "required");
        assert_true(json_is_array(req_));
        size_t j;
        json_t *r;
        json_array_foreach(req_, j, r) /* every required name is a property */
            assert_non_null(
                json_object_get(json_object_get(s, "properties"), json_string_value(r)));
        json_t *ann = json_object_get(t, "annotations");
        assert_true(json_is_boolean(json_object_get(ann, "readOnlyHint")));
        assert_int_equal(json_is_true(json_object_get(ann, "readOnlyHint")), read_only[i]);
        if (!read_only[i]) assert_true(json_is_true(json_object_get(ann, "destructiveHint")));
    }
    json_t *cmd = json_object_get(
        json_object_get(json_object_get(json_array_get(tools, 1), "inputSchema"), "properties"),
        "command");
    assert_int_equal(json_array_size(json_object_get(cmd, "enum")), 5);
    /* The limits in the descriptions are the code's. */
    assert_contains(json_string_value(json_object_get(json_array_get(tools, 1), "description")),
                    "Files over 400 KB");
    assert_contains(json_string_value(json_object_get(json_array_get(tools, 2), "description")),
                    "At most 1000 entries");
    assert_lacks(json_string_value(json_object_get(json_array_get(tools, 0), "description")),
                 "300 seconds");
    assert_true(strlen(f->x->ops->instructions(f->x)) > 50);
    assert_string_equal(f->x->name, "developer");
}

typedef struct {
    fx *f;
    ext_registry *r;
    json_t *tools;
    char *instructions;
    gd_err dup;
} reg_ctx;

static void reg_setup(void *arg)
{
    reg_ctx *rc = arg;
    rc->r = registry_new(&rc->f->host);
    assert_non_null(rc->r);
    assert_int_equal(registry_add(rc->r, developer_new(&rc->f->host, NULL)), GD_OK);
    rc->dup = registry_add(rc->r, developer_new(&rc->f->host, NULL)); /* closed by the registry */
    rc->tools = registry_tools(rc->r);
    rc->instructions = registry_instructions(rc->r);
}

static void reg_free(void *arg)
{
    registry_free(arg);
}

static void test_registry(void **state)
{
    fx *f = *state;
    reg_ctx rc = {.f = f};
    on_loop(f->l, reg_setup, &rc);
    assert_int_equal(rc.dup, GD_ECONFLICT);
    assert_int_equal(json_array_size(rc.tools), 3);
    const char *want[] = {"developer__shell", "developer__text_editor", "developer__list_files"};
    for (size_t i = 0; i < 3; i++) {
        json_t *t = json_array_get(rc.tools, i);
        assert_string_equal(json_string_value(json_object_get(t, "name")), want[i]);
        assert_true(json_is_object(json_object_get(t, "input_schema")));
        assert_null(json_object_get(t, "inputSchema"));
        assert_true(json_is_object(json_object_get(t, "annotations")));
        assert_true(json_is_string(json_object_get(t, "description")));
    }
    json_decref(rc.tools);
    assert_true(!strncmp(rc.instructions, "## developer\nThe developer extension", 36));
    assert_int_equal(rc.instructions[strlen(rc.instructions) - 1], '\n');
    free(rc.instructions);

    /* A call through the registry reaches the extension. */
    req q;
    memset(&q, 0, sizeof q);
    q.f = f;
    q.r = rc.r;
    q.tool = "developer__shell";
    q.args = json_pack("{s:s}", "command", "echo via registry");
    on_loop(f->l, start_call, &q);
    wait_end(&q);
    assert_false(q.is_error);
    assert_contains(q.text, "stdout:\nvia registry\n");
    free(q.text);

    /* Unknown tools and extensions: an error naming what there is, never synchronously. */
    const char *unknown[] = {"developer__nope", "other__shell", "shell", "", "developer__"};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        memset(&q, 0, sizeof q);
        q.f = f;
        q.r = rc.r;
        q.tool = unknown[i];
        on_loop(f->l, start_call, &q);
        wait_end(&q);
        assert_true(q.is_error);
        assert_contains(q.text, "unknown tool");
        assert_contains(q.text, "developer__shell, developer__text_editor, developer__list_files");
        free(q.text);
    }

    /* Cancelling such a call is harmless; freeing the registry before its end drops the done. */
    memset(&q, 0, sizeof q);
    q.f = f;
    q.r = rc.r;
    q.tool = "nope__nope";
    on_loop(f->l, start_and_cancel, &q); /* a handle is valid until its done has returned */
    wait_end(&q);
    assert_true(q.is_error);
    free(q.text);
    on_loop(f->l, reg_free, rc.r);
}

static void start_and_free(void *arg)
{
    reg_ctx *rc = arg;
    req *q = calloc(1, sizeof *q);
    q->r = rc->r;
    q->tool = "nope__nope";
    q->c = registry_call(rc->r, q->tool, NULL, NULL, on_done, q);
    assert_non_null(q->c);
    registry_free(rc->r); /* before the posted end: its done never runs */
    free(q);
}

static void test_registry_free_pending(void **state)
{
    fx *f = *state;
    reg_ctx rc = {.f = f};
    on_loop(f->l, reg_setup, &rc);
    json_decref(rc.tools);
    free(rc.instructions);
    on_loop(f->l, start_and_free, &rc);
    on_loop(f->l, nothing, NULL); /* a turn after: the posted end ran, without its done */
}

static void test_bad_calls(void **state)
{
    fx *f = *state;
    out_t o = call(f, "nope", "{}");
    assert_true(o.is_error);
    assert_contains(o.text, "unknown tool");
    free(o.text);
    o = call(f, "shell", "[1]");
    assert_true(o.is_error);
    assert_contains(o.text, "JSON object");
    free(o.text);
    o = call(f, "text_editor", "\"x\"");
    assert_true(o.is_error);
    assert_contains(o.text, "JSON object");
    free(o.text);
}

/* ---- the shell ---- */

static void test_shell_status_and_streams(void **state)
{
    fx *f = *state;
    out_t o = shell(f, "echo out; echo err >&2; echo more; exit 3");
    assert_false(o.is_error); /* a non-zero exit is not a tool error */
    assert_string_equal(o.text, "exit status: 3\nstdout:\nout\nmore\nstderr:\nerr\n");
    free(o.text);

    o = shell(f, "true");
    assert_string_equal(o.text, "exit status: 0\nstdout: (empty)\nstderr: (empty)\n");
    free(o.text);

    o = shell(f, "printf 'no newline'");
    assert_contains(o.text, "stdout:\nno newline\nstderr:");
    free(o.text);

    /* Killed by a signal of its own. */
    o = shell(f, "kill -9 $$");
    assert_contains(o.text, "killed by signal 9");
    free(o.text);
    o = shell(f, "kill -TERM $$");
    assert_contains(o.text, "killed by signal 15");
    free(o.text);
}

static void test_shell_cwd_stdin_env(void **state)
{
    fx *f = *state;
    out_t o = shell(f, "pwd; echo hi > made.txt");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "stdout:\n%s\n", f->dir);
    assert_contains(o.text, want);
    free(o.text);
    assert_string_equal(read_text(f, "made.txt"), "hi\n");

    /* stdin is /dev/null: cat ends at once. */
    o = shell(f, "cat; echo done");
    assert_contains(o.text, "stdout:\ndone\n");
    free(o.text);

    /* Its own process group, led by its supervisor (the shell's parent), with SIGPIPE at its
     * default: `yes | head` ends. */
    o = shell(f, "cut -d' ' -f4,5 /proc/$$/stat; yes | head -n 2");
    int ppid = 0, pgid = 0;
    assert_int_equal(sscanf(o.text, "exit status: 0\nstdout:\n%d %d\n", &ppid, &pgid), 2);
    assert_int_equal(pgid, ppid);
    assert_true(pgid != getpgrp());
    assert_contains(o.text, "y\ny\nstderr: (empty)");
    free(o.text);

    /* Only the output pipes and /dev/null: no fd of the server is inherited, not even one
     * without close-on-exec (ls has 3 open: the directory it lists). */
    int leak = open("/dev/null", O_RDONLY);
    assert_true(leak > 3);
    o = shell(f, "ls /proc/self/fd | sort -n | tr '\\n' ' '");
    close(leak);
    assert_contains(o.text, "stdout:\n0 1 2 3 \n");
    free(o.text);

    /* A missing working directory is an error. */
    f->host.cwd = "/nonexistent/dir";
    o = shell(f, "true");
    assert_true(o.is_error);
    assert_contains(o.text, "/nonexistent/dir");
    free(o.text);
}

static void test_shell_bad_arguments(void **state)
{
    fx *f = *state;
    const char *bad[] = {"{}", "{\"command\": 5}", "{\"command\": \"\"}", "{\"cmd\": \"ls\"}",
                         "{\"command\": \"a\\u0000b\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out_t o = call(f, "shell", bad[i]);
        assert_true(o.is_error);
        assert_contains(o.text, "command");
        free(o.text);
    }
    out_t o = call(f, "shell", NULL);
    assert_true(o.is_error);
    free(o.text);
}

static void test_shell_timeout_kills_group(void **state)
{
    fx *f = *state;
    f->opts.timeout_ms = 300;
    uint64_t t0 = ms();
    out_t o = shell(f, "sleep 30 & echo $! > bg.pid; echo started; sleep 30");
    uint64_t took = ms() - t0;
    assert_true(o.is_error);
    assert_contains(o.text, "killed: timed out after 0.3 s\nstdout:\nstarted\n");
    free(o.text);
    assert_true(took >= 290 && took < 2500);
    pid_t bg = (pid_t)atoi(read_text(f, "bg.pid"));
    assert_true(bg > 0);
    assert_true(process_dead(bg));
}

static void test_shell_timeout_escalates_to_sigkill(void **state)
{
    fx *f = *state;
    f->opts.timeout_ms = 200;
    uint64_t t0 = ms();
    out_t o = shell(f, "trap '' TERM; sleep 30");
    uint64_t took = ms() - t0;
    assert_contains(o.text, "killed: timed out after 0.2 s");
    free(o.text);
    assert_true(took >= 1100 && took < 3000); /* 200 ms, then SIGTERM ignored, SIGKILL 1 s later */
}

static void test_shell_background_holding_output(void **state)
{
    fx *f = *state;
    /* The shell exits at once; a background child keeps stdout open: it gets SIGHUP after a short
     * grace, with a note. One started with nohup and its output redirected is left running; one
     * that ignores SIGHUP and keeps the pipe is left behind (the call still returns). */
    uint64_t t0 = ms();
    out_t o = shell(f, "sleep 30 & echo $! > held.pid; "
                       "nohup sleep 30 > /dev/null 2>&1 & echo $! > free.pid; "
                       "sh -c 'trap \"\" HUP; exec sleep 30' & echo $! > stubborn.pid; "
                       "echo bye");
    uint64_t took = ms() - t0;
    assert_true(took >= 400 && took < 2000);
    assert_false(o.is_error);
    assert_contains(o.text, "exit status: 0\nnote: processes the command left");
    assert_contains(o.text, "stdout:\nbye\n");
    free(o.text);
    assert_true(process_dead((pid_t)atoi(read_text(f, "held.pid"))));
    pid_t free_pid = (pid_t)atoi(read_text(f, "free.pid"));
    pid_t stubborn = (pid_t)atoi(read_text(f, "stubborn.pid"));
    assert_true(free_pid > 0 && stubborn > 0);
    assert_int_equal(kill(free_pid, 0), 0); /* still running */
    assert_int_equal(kill(stubborn, 0), 0);
    kill(free_pid, SIGKILL);
    kill(stubborn, SIGKILL);

    /* Output redirected away from the start: no waiting, no note. */
    t0 = ms();
    o = shell(f, "sleep 30 > /dev/null 2>&1 & echo $! > quiet.pid");
    assert_true(ms() - t0 < 200);
    assert_lacks(o.text, "note:");
    free(o.text);
    pid_t quiet = (pid_t)atoi(read_text(f, "quiet.pid"));
    assert_int_equal(kill(quiet, 0), 0);
    kill(quiet, SIGKILL);
}

/* Cancels q once the command has written to the fifo. */
typedef struct {
    fx *f;
    req *q;
    char fifo[PATH_MAX + 16];
} canceller;

static void *cancel_when_ready(void *arg)
{
    canceller *c = arg;
    int fd = open(c->fifo, O_RDONLY); /* blocks until the command opens it to write */
    char b[16];
    while (fd >= 0 && read(fd, b, sizeof b) > 0) {
    }
    if (fd >= 0) close(fd);
    pthread_mutex_lock(&g_mu);
    while (!c->q->started)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    on_loop(c->f->l, cancel_call, c->q);
    return NULL;
}

static void test_shell_cancel(void **state)
{
    fx *f = *state;
    canceller c = {.f = f};
    req q;
    c.q = &q;
    snprintf(c.fifo, sizeof c.fifo, "%s/ready", f->dir);
    assert_int_equal(mkfifo(c.fifo, 0600), 0);
    memset(&q, 0, sizeof q);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_when_ready, &c), 0);
    uint64_t t0 = ms();
    begin(f, &q, f->x, "shell",
          json_pack("{s:s}", "command",
                    "echo partial; echo $$ > sh.pid; sleep 100 & echo $! > bg.pid; "
                    "echo go > ready; sleep 100"));
    wait_end(&q);
    uint64_t took = ms() - t0;
    pthread_join(th, NULL);
    assert_true(q.is_error);
    assert_contains(q.text, "cancelled\nstdout:\npartial\n");
    free(q.text);
    assert_true(took < 1000);
    /* The shell and its background child are gone. */
    assert_true(process_dead((pid_t)atoi(read_text(f, "sh.pid"))));
    assert_true(process_dead((pid_t)atoi(read_text(f, "bg.pid"))));
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);

    /* Cancelled before it started (the pool is busy): the command does not run. */
    static blocker b;
    block_pool(f->p, &b, 4);
    begin(f, &q, f->x, "shell", json_pack("{s:s}", "command", "touch ran"));
    on_loop(f->l, cancel_call, &q);
    unblock_pool(&b);
    wait_end(&q);
    assert_true(q.is_error);
    assert_contains(q.text, "cancelled");
    free(q.text);
    assert_string_equal(read_text(f, "ran"), "<absent>");
}

static void test_shell_output_cap(void **state)
{
    fx *f = *state;
    f->opts.output_cap = 1000;
    /* seq 1 100000 prints 588895 bytes. */
    out_t o = shell(f, "seq 1 100000; head -c 300000 /dev/zero | tr '\\0' e >&2");
    assert_false(o.is_error);
    assert_true(strlen(o.text) < 2 * 1000 + 600);
    assert_true(!strncmp(o.text, "exit status: 0\nstdout:\n1\n2\n3\n", 29));
    assert_contains(o.text, "[... 587895 bytes of stdout omitted: the first 500 and last 500");
    assert_contains(o.text, "99999\n100000\nstderr:\neeee");
    assert_contains(o.text, "[... 299000 bytes of stderr omitted");
    free(o.text);

    /* A flood with the default cap ends quickly, and memory stays bounded (ASan would see). */
    f->opts.output_cap = 0;
    uint64_t t0 = ms();
    o = shell(f, "yes | head -c 30000000");
    assert_true(ms() - t0 < 3000);
    assert_true(strlen(o.text) < 2 * 65536 + 600);
    assert_contains(o.text, "[... 29934464 bytes of stdout omitted");
    free(o.text);

    /* Binary output comes back as valid UTF-8. */
    o = shell(f, "printf 'a\\377\\000b\\342\\202\\254'");
    assert_contains(o.text, "stdout:\na\xEF\xBF\xBD\xEF\xBF\xBD"
                            "b\xE2\x82\xAC\n");
    free(o.text);
}

/* ---- secrets out of reach ---- */

static void test_env_allow_list(void **state)
{
    fx *f = *state;
    setenv("FOO_API_KEY", "sk-secret-value", 1);
    setenv("GOOSE_PROVIDER__API_KEY", "sk-other", 1);
    setenv("LC_TESTING", "C", 1);
    setenv("PWD", "/somewhere", 1);
    char **env = sandbox_env_new();
    assert_non_null(env);
    bool path = false, lc = false;
    for (char **e = env; *e; e++) {
        assert_lacks(*e, "API_KEY");
        assert_true(strncmp(*e, "GOOSE_", 6) != 0);
        assert_true(strncmp(*e, "PWD=", 4) != 0);
        path |= !strncmp(*e, "PATH=", 5);
        lc |= !strcmp(*e, "LC_TESTING=C");
    }
    assert_true(path == (getenv("PATH") != NULL));
    assert_true(lc);
    sandbox_env_free(env);

    /* A developer made now (host->env NULL: the allow-list) shows none of it to a command. */
    extension *x = developer_new(&f->host, NULL);
    assert_non_null(x);
    out_t o = call_x(f, x, "shell", json_pack("{s:s}", "command", "env"));
    on_loop(f->l, close_ext, x);
    assert_false(o.is_error);
    assert_lacks(o.text, "FOO_API_KEY");
    assert_lacks(o.text, "sk-secret-value");
    assert_lacks(o.text, "GOOSE_");
    assert_lacks(o.text, "PWD=/somewhere");
    assert_contains(o.text, "LC_TESTING=C");
    free(o.text);
    unsetenv("FOO_API_KEY");
    unsetenv("GOOSE_PROVIDER__API_KEY");
    unsetenv("LC_TESTING");
}

static void test_privileges_dropped(void **state)
{
    fx *f = *state;
    /* As a server that made itself non-dumpable: its tools cannot read its environment, nor the
     * supervisor's (a copy of the server's memory), even as root. */
    assert_int_equal(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status; "
             "cat /proc/%d/environ > /dev/null && echo READ-SERVER; "
             "cat /proc/$PPID/environ > /dev/null && echo READ-SUPERVISOR; true",
             (int)getpid());
    out_t o = shell(f, cmd);
    assert_int_equal(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
    assert_false(o.is_error);
    assert_lacks(o.text, "READ-SERVER");
    assert_lacks(o.text, "READ-SUPERVISOR");
    const char *caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    if (geteuid() == 0) {
        for (size_t i = 0; i < 5; i++) {
            char want[64];
            snprintf(want, sizeof want, "%s:\t0000000000000000\n", caps[i]);
            assert_contains(o.text, want);
        }
        assert_contains(o.text, "NoNewPrivs:\t1\n");
    } else {
        assert_contains(o.text, "CapEff:\t0000000000000000\n");
    }
    free(o.text);
}

static void test_protected_dirs(void **state)
{
    fx *f = *state;
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/secrets.yaml", f->conf);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs("key: sk-secret\n", fp);
    fclose(fp);
    snprintf(p, sizeof p, "%s/link", f->dir);
    assert_int_equal(symlink(f->conf, p), 0);
    char dangling[PATH_MAX * 2];
    snprintf(dangling, sizeof dangling, "%s/new.yaml", f->conf);
    snprintf(p, sizeof p, "%s/dangling", f->dir);
    assert_int_equal(symlink(dangling, p), 0);

    const char *paths[] = {
        "../conf/secrets.yaml",       "link/secrets.yaml", "./sub/../../conf", "link", "dangling",
        "../work/link/./secrets.yaml"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        out_t o = ed(f, "{s:s, s:s}", "command", "view", "path", paths[i]);
        assert_true(o.is_error);
        assert_contains(o.text, "refused: ");
        assert_contains(o.text, " is inside goosed's own configuration or data directory");
        assert_lacks(o.text, "sk-secret");
        free(o.text);
        o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", paths[i], "file_text", "x");
        assert_true(o.is_error);
        assert_contains(o.text, "refused: ");
        free(o.text);
    }
    snprintf(p, sizeof p, "%s/secrets.yaml", f->conf);
    fp = fopen(p, "r");
    char b[64] = {0};
    assert_non_null(fgets(b, sizeof b, fp));
    fclose(fp);
    assert_string_equal(b, "key: sk-secret\n");   /* not overwritten */
    assert_int_equal(access(dangling, F_OK), -1); /* not created through the dangling link */

    out_t o = list(f, "{\"path\": \"link\"}");
    assert_true(o.is_error);
    assert_contains(o.text, "refused: ");
    free(o.text);
    o = list(f, "{\"path\": \"../conf\"}");
    assert_true(o.is_error);
    free(o.text);
    /* The parent is outside the working directory: refused. */
    o = list(f, "{\"path\": \"..\"}");
    assert_true(o.is_error);
    assert_contains(o.text, "is outside the session's working directory");
    assert_lacks(o.text, "secrets.yaml");
    free(o.text);
    /* The rest of the working directory is as before. */
    o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "ok.txt", "file_text", "fine");
    assert_false(o.is_error);
    free(o.text);
}

/* ---- the text editor ---- */

static void test_editor_write_view(void **state)
{
    fx *f = *state;
    out_t o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "sub/dir/a.txt", "file_text",
                 "one\ntwo\nthree\nfour\nfive");
    assert_false(o.is_error);
    assert_contains(o.text, "Created ");
    assert_contains(o.text, "5 lines");
    free(o.text);
    assert_string_equal(read_text(f, "sub/dir/a.txt"), "one\ntwo\nthree\nfour\nfive\n");

    o = ed(f, "{s:s, s:s}", "command", "view", "path", "sub/dir/a.txt");
    assert_contains(o.text,
                    "/sub/dir/a.txt (5 lines)\n1: one\n2: two\n3: three\n4: four\n5: five\n");
    free(o.text);

    o = ed(f, "{s:s, s:s, s:[i,i]}", "command", "view", "path", "sub/dir/a.txt", "view_range", 2,
           3);
    assert_contains(o.text, "(lines 2-3 of 5)\n2: two\n3: three\n[Showing lines 2-3 of 5. Use "
                            "view_range [4, 5] to see more.]");
    assert_lacks(o.text, "1: one");
    free(o.text);

    o = ed(f, "{s:s, s:s, s:[i,i]}", "command", "view", "path", "sub/dir/a.txt", "view_range", 4,
           -1);
    assert_contains(o.text, "\n4: four\n5: five\n");
    assert_lacks(o.text, "Showing");
    free(o.text);

    /* Absolute path, an end past the file, and a range given as strings. */
    char abs[PATH_MAX + 32];
    snprintf(abs, sizeof abs, "%s/sub/./dir/../dir/a.txt", f->dir);
    o = ed(f, "{s:s, s:s, s:[s,i]}", "command", "view", "path", abs, "view_range", "5", 99);
    assert_contains(o.text, "/sub/dir/a.txt (lines 5-5 of 5)\n5: five\n");
    free(o.text);

    /* Overwrite. */
    o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "sub/dir/a.txt", "file_text", "new\n");
    assert_contains(o.text, "Overwrote ");
    free(o.text);
    assert_string_equal(read_text(f, "sub/dir/a.txt"), "new\n");
}

static void test_editor_view_errors(void **state)
{
    fx *f = *state;
    write_text(f, "a.txt", "1\n2\n3\n");
    struct {
        const char *range;
        const char *msg;
    } bad[] = {{"[0, 2]", "start must be 1"}, {"[3, 2]", "must be -1 or at least"},
               {"[4, 5]", "past the end"},    {"[1]", "two integers"},
               {"\"1-2\"", "two integers"},   {"[1, \"x\"]", "two integers"},
               {"[1.5, 2]", "two integers"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char js[128];
        snprintf(js, sizeof js, "{\"command\":\"view\",\"path\":\"a.txt\",\"view_range\":%s}",
                 bad[i].range);
        out_t o = call(f, "text_editor", js);
        assert_true(o.is_error);
        assert_contains(o.text, bad[i].msg);
        free(o.text);
    }
    out_t o = ed(f, "{s:s, s:s}", "command", "view", "path", "missing.txt");
    assert_true(o.is_error);
    assert_contains(o.text, "does not exist");
    free(o.text);

    /* Binary. */
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/bin.dat", f->dir);
    FILE *fp = fopen(p, "wb");
    fwrite("ab\0cd", 1, 5, fp);
    fclose(fp);
    o = ed(f, "{s:s, s:s}", "command", "view", "path", "bin.dat");
    assert_true(o.is_error);
    assert_contains(o.text, "binary");
    free(o.text);

    /* Too large. */
    snprintf(p, sizeof p, "%s/big.txt", f->dir);
    fp = fopen(p, "w");
    for (int i = 0; i < 50000; i++)
        fputs("0123456789\n", fp);
    fclose(fp);
    o = ed(f, "{s:s, s:s}", "command", "view", "path", "big.txt");
    assert_true(o.is_error);
    assert_contains(o.text, "too large");
    assert_contains(o.text, "400 KB");
    free(o.text);

    /* Many lines: a view_range is needed. */
    snprintf(p, sizeof p, "%s/long.txt", f->dir);
    fp = fopen(p, "w");
    for (int i = 1; i <= 2500; i++)
        fprintf(fp, "line %d\n", i);
    fclose(fp);
    o = ed(f, "{s:s, s:s}", "command", "view", "path", "long.txt");
    assert_true(o.is_error);
    assert_contains(o.text, "2500 lines");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:[i,i]}", "command", "view", "path", "long.txt", "view_range", 2400,
           2401);
    assert_false(o.is_error);
    assert_contains(o.text, "2400: line 2400\n2401: line 2401\n[Showing lines 2400-2401 of "
                            "2500. Use view_range [2402, 2500]");
    free(o.text);

    /* Empty file. */
    write_text(f, "empty.txt", "");
    o = ed(f, "{s:s, s:s}", "command", "view", "path", "empty.txt");
    assert_false(o.is_error);
    assert_contains(o.text, "(empty file)");
    free(o.text);

    /* Invalid UTF-8 comes back replaced. */
    write_text(f, "latin1.txt", "caf\xE9\n");
    o = ed(f, "{s:s, s:s}", "command", "view", "path", "latin1.txt");
    assert_contains(o.text, "1: caf\xEF\xBF\xBD\n");
    free(o.text);
}

static void test_editor_view_directory(void **state)
{
    fx *f = *state;
    mkdir_rel(f, "d");
    mkdir_rel(f, "d/zsub");
    write_text(f, "d/b.txt", "x");
    write_text(f, "d/a.txt", "x");
    out_t o = ed(f, "{s:s, s:s}", "command", "view", "path", "d");
    assert_false(o.is_error);
    assert_contains(o.text, "is a directory with 3 entries:\nzsub/\na.txt\nb.txt\n");
    free(o.text);
}

static void test_editor_str_replace(void **state)
{
    fx *f = *state;
    write_text(f, "c.py", "def f():\n    return 1\n\ndef g():\n    return 1\n");
    /* Ambiguous: named how many times. */
    out_t o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "c.py", "old_str",
                 "return 1", "new_str", "return 2");
    assert_true(o.is_error);
    assert_contains(o.text, "occurs 2 times");
    free(o.text);
    /* Absent. */
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "c.py", "old_str",
           "return 3", "new_str", "x");
    assert_true(o.is_error);
    assert_contains(o.text, "No match");
    free(o.text);
    /* Unique. */
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "c.py", "old_str",
           "def g():\n    return 1", "new_str", "def g():\n    return 2\n    # done");
    assert_false(o.is_error);
    assert_contains(o.text, "Edited ");
    assert_contains(o.text, "4: def g():\n5:     return 2\n6:     # done\n");
    free(o.text);
    assert_string_equal(read_text(f, "c.py"),
                        "def f():\n    return 1\n\ndef g():\n    return 2\n    # done\n");
    /* new_str omitted: deletion. */
    o = ed(f, "{s:s, s:s, s:s}", "command", "str_replace", "path", "c.py", "old_str",
           "    # done\n");
    assert_false(o.is_error);
    free(o.text);
    assert_string_equal(read_text(f, "c.py"), "def f():\n    return 1\n\ndef g():\n    return 2\n");
    /* Overlapping occurrences are ambiguous too. */
    write_text(f, "aaa.txt", "aaa\n");
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "aaa.txt", "old_str", "aa",
           "new_str", "b");
    assert_true(o.is_error);
    assert_contains(o.text, "occurs 2 times");
    free(o.text);
    /* A CRLF file edited with LF text. */
    write_text(f, "win.txt", "a\r\nb\r\nc\r\n");
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "win.txt", "old_str",
           "a\nb", "new_str", "A\nB");
    assert_false(o.is_error);
    free(o.text);
    assert_string_equal(read_text(f, "win.txt"), "A\r\nB\r\nc\r\n");
    /* Errors: missing file, missing or empty old_str, wrong types. */
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "nope.txt", "old_str", "a",
           "new_str", "b");
    assert_true(o.is_error);
    assert_contains(o.text, "does not exist");
    free(o.text);
    o = ed(f, "{s:s, s:s}", "command", "str_replace", "path", "c.py");
    assert_true(o.is_error);
    assert_contains(o.text, "old_str");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:s}", "command", "str_replace", "path", "c.py", "old_str", "");
    assert_true(o.is_error);
    free(o.text);
    o = ed(f, "{s:s, s:s, s:s, s:i}", "command", "str_replace", "path", "c.py", "old_str", "f",
           "new_str", 3);
    assert_true(o.is_error);
    assert_contains(o.text, "new_str");
    free(o.text);
}

static void test_editor_insert(void **state)
{
    fx *f = *state;
    write_text(f, "i.txt", "a\nb\nc\n");
    out_t o = ed(f, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt", "insert_line", 0,
                 "new_str", "top");
    assert_false(o.is_error);
    assert_contains(o.text, "Inserted 1 line after line 0 of");
    assert_contains(o.text, "1: top\n2: a\n");
    free(o.text);
    assert_string_equal(read_text(f, "i.txt"), "top\na\nb\nc\n");
    o = ed(f, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt", "insert_line", 2,
           "new_str", "x\ny\n");
    assert_false(o.is_error);
    free(o.text);
    assert_string_equal(read_text(f, "i.txt"), "top\na\nx\ny\nb\nc\n");
    o = ed(f, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt", "insert_line", 6,
           "new_str", "end");
    free(o.text);
    assert_string_equal(read_text(f, "i.txt"), "top\na\nx\ny\nb\nc\nend\n");
    o = ed(f, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt", "insert_line", 99,
           "new_str", "z");
    assert_true(o.is_error);
    assert_contains(o.text, "out of range");
    assert_contains(o.text, "7 lines");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:s}", "command", "insert", "path", "i.txt", "new_str", "z");
    assert_true(o.is_error);
    assert_contains(o.text, "insert_line");
    free(o.text);
    /* A file without a final newline; -1 is the end. */
    write_text(f, "n.txt", "a\nb");
    o = ed(f, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "n.txt", "insert_line", -1,
           "new_str", "c");
    free(o.text);
    assert_string_equal(read_text(f, "n.txt"), "a\nb\nc\n");
    /* Into an empty file. */
    write_text(f, "e.txt", "");
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "insert", "path", "e.txt", "insert_line", "0",
           "new_str", "only");
    assert_false(o.is_error);
    free(o.text);
    assert_string_equal(read_text(f, "e.txt"), "only\n");
}

static void test_editor_undo_chain(void **state)
{
    fx *f = *state;
    out_t o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "u.txt");
    assert_true(o.is_error);
    assert_contains(o.text, "No edit history");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "u.txt", "file_text", "v1\n");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "u.txt", "old_str", "v1",
           "new_str", "v2");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "u.txt", "insert_line", 1,
           "new_str", "v3");
    free(o.text);
    o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "u.txt", "file_text", "v4\n");
    assert_false(o.is_error);
    free(o.text);
    assert_string_equal(read_text(f, "u.txt"), "v4\n");
    const char *expect[] = {"v2\nv3\n", "v2\n", "v1\n"};
    for (int i = 0; i < 3; i++) {
        o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "u.txt");
        assert_false(o.is_error);
        assert_contains(o.text, "Undid the last edit");
        free(o.text);
        assert_string_equal(read_text(f, "u.txt"), expect[i]);
    }
    /* The first write created the file: undoing it removes it. Then nothing is left. */
    char abs[PATH_MAX + 16];
    snprintf(abs, sizeof abs, "%s/u.txt", f->dir);
    o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", abs);
    assert_false(o.is_error);
    assert_contains(o.text, "removed");
    assert_contains(o.text, " 0 more undo steps");
    free(o.text);
    assert_string_equal(read_text(f, "u.txt"), "<absent>");
    o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "u.txt");
    assert_true(o.is_error);
    free(o.text);

    /* The history is bounded: 12 edits, 10 undos. */
    write_text(f, "b.txt", "0\n");
    for (int i = 1; i <= 12; i++) {
        char old[8], nw[8];
        snprintf(old, sizeof old, "%d", i - 1);
        snprintf(nw, sizeof nw, "%d", i);
        o = ed(f, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "b.txt", "old_str", old,
               "new_str", nw);
        assert_false(o.is_error);
        free(o.text);
    }
    for (int i = 11; i >= 2; i--) {
        o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "b.txt");
        assert_false(o.is_error);
        free(o.text);
        char want[8];
        snprintf(want, sizeof want, "%d\n", i);
        assert_string_equal(read_text(f, "b.txt"), want);
    }
    o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "b.txt");
    assert_true(o.is_error);
    free(o.text);
    assert_string_equal(read_text(f, "b.txt"), "2\n");
}

static void test_undo_per_instance(void **state)
{
    fx *f = *state;
    extension *other = developer_new(&f->host, NULL); /* another session's */
    assert_non_null(other);
    out_t o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "p.txt", "file_text", "mine\n");
    free(o.text);
    o = call_x(
        f, other, "text_editor",
        json_pack("{s:s, s:s, s:s}", "command", "write", "path", "q.txt", "file_text", "theirs\n"));
    free(o.text);
    /* Neither sees the other's edits. */
    o = call_x(f, other, "text_editor",
               json_pack("{s:s, s:s}", "command", "undo_edit", "path", "p.txt"));
    assert_true(o.is_error);
    assert_contains(o.text, "No edit history");
    free(o.text);
    o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "q.txt");
    assert_true(o.is_error);
    assert_contains(o.text, "No edit history");
    free(o.text);
    assert_string_equal(read_text(f, "p.txt"), "mine\n");
    /* Both edit one file: each undoes its own step only. */
    o = call_x(f, other, "text_editor",
               json_pack("{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "p.txt",
                         "old_str", "mine", "new_str", "ours"));
    assert_false(o.is_error);
    free(o.text);
    o = call_x(f, other, "text_editor",
               json_pack("{s:s, s:s}", "command", "undo_edit", "path", "p.txt"));
    assert_false(o.is_error);
    assert_contains(o.text, " 0 more undo steps");
    free(o.text);
    assert_string_equal(read_text(f, "p.txt"), "mine\n");
    o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "p.txt");
    assert_false(o.is_error);
    assert_contains(o.text, "removed");
    free(o.text);
    on_loop(f->l, close_ext, other);
    /* The closed instance's history is gone with it; ours is intact. */
    o = ed(f, "{s:s, s:s}", "command", "undo_edit", "path", "q.txt");
    assert_true(o.is_error);
    free(o.text);
}

static void test_editor_bad_arguments(void **state)
{
    fx *f = *state;
    const char *bad[] = {"{}",
                         "{\"path\": \"a\"}",
                         "{\"command\": \"view\"}",
                         "{\"command\": \"view\", \"path\": \"\"}",
                         "{\"command\": \"view\", \"path\": 3}",
                         "{\"command\": \"delete\", \"path\": \"a\"}",
                         "{\"command\": \"write\", \"path\": \"a\"}",
                         "{\"command\": \"write\", \"path\": \"a\", \"file_text\": 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out_t o = call(f, "text_editor", bad[i]);
        assert_true(o.is_error);
        free(o.text);
    }
    mkdir_rel(f, "adir");
    out_t o = ed(f, "{s:s, s:s, s:s}", "command", "write", "path", "adir", "file_text", "x");
    assert_true(o.is_error);
    assert_contains(o.text, "directory");
    free(o.text);
    assert_string_equal(read_text(f, "a"), "<absent>");
}

/* ---- several sessions at once ---- */

typedef struct {
    fx *f;
    extension *x;
    int id;
    bool ok;
} worker;

static void *edit_worker(void *arg)
{
    worker *w = arg;
    char path[32], text[64];
    snprintf(path, sizeof path, "w%d.txt", w->id);
    w->ok = true;
    for (int i = 0; i < 30 && w->ok; i++) {
        snprintf(text, sizeof text, "worker %d step %d\n", w->id, i);
        out_t o = call_x(
            w->f, w->x, "text_editor",
            json_pack("{s:s, s:s, s:s}", "command", "write", "path", path, "file_text", text));
        w->ok = !o.is_error;
        free(o.text);
        /* Everyone also edits one shared file, from two sessions: the edits serialise. */
        o = call_x(w->f, w->x, "text_editor",
                   json_pack("{s:s, s:s, s:i, s:s}", "command", "insert", "path", "shared.txt",
                             "insert_line", -1, "new_str", text));
        w->ok = w->ok && !o.is_error;
        free(o.text);
    }
    out_t o = call_x(w->f, w->x, "text_editor",
                     json_pack("{s:s, s:s}", "command", "undo_edit", "path", path));
    w->ok = w->ok && !o.is_error;
    free(o.text);
    return NULL;
}

static void *shell_worker(void *arg)
{
    worker *w = arg;
    char cmd[64], want[64];
    snprintf(cmd, sizeof cmd, "echo worker %d; echo oops %d >&2", w->id, w->id);
    snprintf(want, sizeof want, "stdout:\nworker %d\nstderr:\noops %d\n", w->id, w->id);
    w->ok = true;
    for (int i = 0; i < 10 && w->ok; i++) {
        out_t o = call_x(w->f, w->x, "shell", json_pack("{s:s}", "command", cmd));
        w->ok = !o.is_error && strstr(o.text, want) != NULL;
        free(o.text);
    }
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    fx *f = *state;
    extension *other = developer_new(&f->host, NULL);
    assert_non_null(other);
    write_text(f, "shared.txt", "");
    enum { N = 4 };
    pthread_t th[2 * N];
    worker w[2 * N];
    for (int i = 0; i < 2 * N; i++) {
        w[i] = (worker){.f = f, .x = i % 2 ? other : f->x, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, i < N ? edit_worker : shell_worker, &w[i]),
                         0);
    }
    for (int i = 0; i < 2 * N; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].ok);
    }
    on_loop(f->l, close_ext, other);
    for (int i = 0; i < N; i++) {
        char path[32], want[64];
        snprintf(path, sizeof path, "w%d.txt", i);
        snprintf(want, sizeof want, "worker %d step 28\n", i);
        assert_string_equal(read_text(f, path), want);
    }
    const char *shared = read_text(f, "shared.txt");
    size_t lines = 0;
    for (const char *p = shared; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, N * 30);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* every shell reaped */
}

static int threads_now(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static int setup_small_pool(void **state)
{
    return setup_with(state, 2, 64);
}

/* 50 shells at once on a pool of 2 workers: none holds a thread while it runs. */
static void test_many_shells_few_threads(void **state)
{
    fx *f = *state;
    enum { N = 50 };
    req *q = calloc(N, sizeof *q);
    assert_non_null(q);
    for (int i = 0; i < N; i++)
        begin(f, &q[i], f->x, "shell", json_pack("{s:s}", "command", "sleep 1; echo slept"));
    int max_threads = 0;
    pthread_mutex_lock(&g_mu);
    for (;;) {
        pthread_mutex_unlock(&g_mu);
        int t = threads_now();
        if (t > max_threads) max_threads = t;
        pthread_mutex_lock(&g_mu);
        /* counted under the lock, right before waiting: a completion signalled while the
         * threads were being counted is not lost */
        int done = 0;
        for (int i = 0; i < N; i++)
            done += q[i].done;
        if (done == N) break;
        pthread_cond_wait(&g_cv, &g_mu);
    }
    pthread_mutex_unlock(&g_mu);
    for (int i = 0; i < N; i++) {
        wait_end(&q[i]);
        assert_false(q[i].is_error);
        assert_string_equal(q[i].text, "exit status: 0\nstdout:\nslept\nstderr: (empty)\n");
        free(q[i].text);
    }
    free(q);
    assert_true(max_threads <= 1 + 2 + 1); /* this thread, the 2 workers, the loop */
    assert_int_equal(pool_threads(f->p), 2);
}

/* A full pool: the call ends at once with an error saying so. */
static int setup_tiny_pool(void **state)
{
    return setup_with(state, 1, 1);
}

static void test_pool_full(void **state)
{
    fx *f = *state;
    static blocker b;
    block_pool(f->p, &b, 1); /* the worker is busy; the queue (1) is empty */
    req queued, refused;
    begin(f, &queued, f->x, "list_files", NULL);
    begin(f, &refused, f->x, "text_editor",
          json_pack("{s:s, s:s}", "command", "view", "path", "."));
    wait_end(&refused);
    assert_true(refused.is_error);
    assert_string_equal(refused.text, "too many tool calls are running; try again");
    free(refused.text);
    unblock_pool(&b);
    wait_end(&queued);
    assert_false(queued.is_error);
    free(queued.text);
}

/* Closing the extension with calls running: no done, the command killed, nothing leaked. */
static void test_close_with_calls_running(void **state)
{
    fx *f = *state;
    char fifo[PATH_MAX + 16];
    snprintf(fifo, sizeof fifo, "%s/ready", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    req sh, job;
    begin(f, &sh, f->x, "shell",
          json_pack("{s:s}", "command",
                    "echo $$ > sh.pid; echo $PPID > sup.pid; echo go > ready; sleep 100"));
    int fd = open(fifo, O_RDONLY); /* the shell runs */
    char buf_[8];
    while (fd >= 0 && read(fd, buf_, sizeof buf_) > 0) {
    }
    close(fd);
    pid_t pid = (pid_t)atoi(read_text(f, "sh.pid"));
    assert_true(pid > 0);
    static blocker b;
    block_pool(f->p, &b, 4);
    begin(f, &job, f->x, "list_files", NULL); /* queued behind the blockers */
    on_loop(f->l, close_ext, f->x);
    f->x = NULL;
    pid_t sup = (pid_t)atoi(read_text(f, "sup.pid"));
    assert_true(wait_gone(pid));
    assert_true(wait_gone(sup)); /* exited: the loop reaps it, at the latest in loop_free */
    unblock_pool(&b);
    pool_free(f->p); /* the job runs, and its end is dropped */
    f->p = pool_new("devext", 1, 1);
    on_loop(f->l, nothing, NULL); /* a turn after: the job's posted end ran */
    assert_false(sh.done);
    assert_false(job.done);
    json_decref(sh.args);
    json_decref(job.args);
}

/* Started in a process of its own (the test binary with --pdeathsig-helper DIR): a server that
 * runs a shell and is then killed with SIGKILL. */
static int pdeathsig_helper(const char *dir)
{
    loop *l = loop_new("helper");
    pool *p = pool_new("helper", 1, 4);
    ext_host h = {.l = l, .workers = p};
    h.cwd = dir;
    extension *x = developer_new(&h, NULL);
    if (!l || !p || !x) return 1;
    req q;
    memset(&q, 0, sizeof q);
    q.x = x;
    q.tool = "shell";
    q.args = json_pack("{s:s}", "command",
                       "echo $$ > sh.pid; sleep 100 & echo $! > bg.pid; echo go > ready; "
                       "sleep 100");
    on_loop(l, start_call, &q);
    for (;;)
        pause(); /* until killed */
}

static void test_tools_die_with_server(void **state)
{
    fx *f = *state;
    char fifo[PATH_MAX + 16];
    snprintf(fifo, sizeof fifo, "%s/ready", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *argv[] = {self, "--pdeathsig-helper", f->dir, NULL};
    pid_t helper;
    assert_int_equal(posix_spawn(&helper, self, NULL, NULL, argv, environ), 0);
    int fd = open(fifo, O_RDONLY); /* the helper's command runs */
    char b[8];
    while (fd >= 0 && read(fd, b, sizeof b) > 0) {
    }
    close(fd);
    pid_t sh = (pid_t)atoi(read_text(f, "sh.pid")), bg = (pid_t)atoi(read_text(f, "bg.pid"));
    assert_true(sh > 0 && bg > 0);
    assert_int_equal(kill(sh, 0), 0);
    assert_int_equal(kill(helper, SIGKILL), 0);
    assert_int_equal(waitpid(helper, NULL, 0), helper);
    assert_true(wait_gone(sh));
    assert_true(wait_gone(bg));
}

/* ---- list_files ---- */

static void make_tree(fx *f)
{
    mkdir_rel(f, "src");
    mkdir_rel(f, "src/core");
    mkdir_rel(f, "src/core/deep");
    mkdir_rel(f, "src/core/deep/er");
    mkdir_rel(f, ".git");
    mkdir_rel(f, "node_modules");
    mkdir_rel(f, "src/node_modules");
    write_text(f, ".git/HEAD", "x");
    write_text(f, "node_modules/x.js", "x");
    write_text(f, "src/node_modules/y.js", "x");
    write_text(f, "README.md", "x");
    write_text(f, ".env", "x");
    write_text(f, "src/main.c", "x");
    write_text(f, "src/core/buf.c", "x");
    write_text(f, "src/core/buf.h", "x");
    write_text(f, "src/core/deep/a.c", "x");
    write_text(f, "src/core/deep/er/b.c", "x");
    char target[PATH_MAX + 8], link[PATH_MAX + 16];
    snprintf(target, sizeof target, "%s/src", f->dir);
    snprintf(link, sizeof link, "%s/src/loop", f->dir);
    assert_int_equal(symlink(target, link), 0); /* listed, not followed */
}

static void test_list_depth_and_skips(void **state)
{
    fx *f = *state;
    make_tree(f);
    out_t o = list(f, "{}");
    assert_false(o.is_error);
    char want[PATH_MAX + 512];
    snprintf(want, sizeof want,
             "%s/ (9 entries, depth 3)\n.env\nREADME.md\nsrc/\nsrc/core/\nsrc/core/buf.c\n"
             "src/core/buf.h\nsrc/core/deep/\nsrc/loop\nsrc/main.c\n",
             f->dir);
    assert_string_equal(o.text, want);
    free(o.text);
    o = list(f, "{\"max_depth\": 3}");
    assert_lacks(o.text, ".git");
    assert_lacks(o.text, "node_modules");
    assert_lacks(o.text, "deep/a.c");
    assert_lacks(o.text, "src/loop/");
    assert_contains(o.text, "\n.env\nREADME.md\nsrc/\nsrc/core/\nsrc/core/buf.c\nsrc/core/buf.h\n"
                            "src/core/deep/\nsrc/loop\nsrc/main.c\n");
    free(o.text);

    o = list(f, "{\"max_depth\": 1}");
    snprintf(want, sizeof want, "%s/ (3 entries, depth 1)\n.env\nREADME.md\nsrc/\n", f->dir);
    assert_string_equal(o.text, want);
    free(o.text);

    o = list(f, "{\"path\": \"src/core\", \"max_depth\": 10}");
    snprintf(want, sizeof want,
             "%s/src/core/ (6 entries, depth 10)\nbuf.c\nbuf.h\ndeep/\ndeep/a.c\ndeep/er/\n"
             "deep/er/b.c\n",
             f->dir);
    assert_string_equal(o.text, want);
    free(o.text);
}

static void test_list_pattern(void **state)
{
    fx *f = *state;
    make_tree(f);
    out_t o = list(f, "{\"pattern\": \"*.c\", \"max_depth\": 10}");
    assert_contains(o.text, "(4 entries, depth 10, pattern '*.c')\nsrc/core/buf.c\n"
                            "src/core/deep/a.c\nsrc/core/deep/er/b.c\nsrc/main.c\n");
    assert_lacks(o.text, "y.js");
    free(o.text);
    o = list(f, "{\"pattern\": \"src/core/*.h\", \"max_depth\": 10}");
    assert_contains(o.text, "(1 entry, depth 10, pattern 'src/core/*.h')\nsrc/core/buf.h\n");
    free(o.text);
    o = list(f, "{\"pattern\": \"*.zig\"}");
    assert_contains(o.text, "(no entries match the pattern)");
    free(o.text);
}

static void test_list_cap(void **state)
{
    fx *f = *state;
    mkdir_rel(f, "many");
    for (int i = 0; i < 1100; i++) {
        char n[32];
        snprintf(n, sizeof n, "many/f%04d", i);
        write_text(f, n, "");
    }
    out_t o = list(f, "{\"path\": \"many\"}");
    assert_contains(o.text, "(1000 entries, depth 3)\nf0000\nf0001\n");
    assert_contains(o.text, "\nf0999\n[listing cut at 1000 entries");
    assert_lacks(o.text, "f1000");
    free(o.text);

    /* Cancelled (before the walk: the pool is busy): stops while walking, says so. */
    static blocker b;
    block_pool(f->p, &b, 4);
    req q;
    begin(f, &q, f->x, "list_files", json_pack("{s:s, s:s}", "path", "many", "pattern", "nothing"));
    on_loop(f->l, cancel_call, &q);
    unblock_pool(&b);
    wait_end(&q);
    assert_true(q.is_error);
    assert_contains(q.text, "[cancelled");
    free(q.text);
}

static void test_list_errors(void **state)
{
    fx *f = *state;
    write_text(f, "file.txt", "x");
    out_t o = list(f, "{\"path\": \"file.txt\"}");
    assert_true(o.is_error);
    assert_contains(o.text, "not a directory");
    free(o.text);
    o = list(f, "{\"path\": \"nope\"}");
    assert_true(o.is_error);
    free(o.text);
    const char *bad[] = {"{\"max_depth\": 0}", "{\"max_depth\": \"x\"}", "{\"path\": 1}",
                         "{\"pattern\": []}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        o = list(f, bad[i]);
        assert_true(o.is_error);
        free(o.text);
    }
    /* An empty directory (regression: qsort of no entries). */
    mkdir_rel(f, "empty");
    o = list(f, "{\"path\": \"empty\"}");
    assert_contains(o.text, "(0 entries, depth 3)\n(empty directory)\n");
    free(o.text);
    /* No arguments at all: the working directory. */
    o = list(f, NULL);
    assert_contains(o.text, "\nfile.txt\n");
    free(o.text);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--pdeathsig-helper")) return pdeathsig_helper(argv[2]);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tools_schema),
        T(test_registry),
        T(test_registry_free_pending),
        T(test_bad_calls),
        T(test_shell_status_and_streams),
        T(test_shell_cwd_stdin_env),
        T(test_shell_bad_arguments),
        T(test_shell_timeout_kills_group),
        T(test_shell_timeout_escalates_to_sigkill),
        T(test_shell_background_holding_output),
        T(test_shell_cancel),
        T(test_shell_output_cap),
        T(test_env_allow_list),
        T(test_privileges_dropped),
        T(test_protected_dirs),
        T(test_editor_write_view),
        T(test_editor_view_errors),
        T(test_editor_view_directory),
        T(test_editor_str_replace),
        T(test_editor_insert),
        T(test_editor_undo_chain),
        T(test_undo_per_instance),
        T(test_editor_bad_arguments),
        T(test_concurrent_calls),
        cmocka_unit_test_setup_teardown(test_many_shells_few_threads, setup_small_pool, teardown),
        cmocka_unit_test_setup_teardown(test_pool_full, setup_tiny_pool, teardown),
        T(test_close_with_calls_running),
        T(test_tools_die_with_server),
        T(test_list_depth_and_skips),
        T(test_list_pattern),
        T(test_list_cap),
        T(test_list_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
