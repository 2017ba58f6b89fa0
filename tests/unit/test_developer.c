/* Unit tests for extensions/developer: the shell, text editor and list_files tools, each in a
 * fresh temporary directory. */
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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "extensions/developer.h"

/* ---- fixtures and helpers ---- */

typedef struct {
    char dir[PATH_MAX]; /* realpath of a fresh temporary directory */
    tool_ctx ctx;
    atomic_bool cancel;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/gd-dev-XXXXXX";
    if (!f || !mkdtemp(tmpl) || !realpath(tmpl, f->dir)) return -1;
    atomic_init(&f->cancel, false);
    f->ctx.cwd = f->dir;
    f->ctx.cancel = &f->cancel;
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static uint64_t ms(void)
{
    return clock_mono_ns() / 1000000u;
}

/* Calls a tool with arguments given as JSON text; the result text is valid JSON-able UTF-8. */
static gd_err call(fx *f, const char *tool, const char *json, tool_output *out)
{
    json_error_t je;
    json_t *args = json ? json_loads(json, JSON_ALLOW_NUL, &je) : NULL;
    if (json) assert_non_null(args);
    gd_err e = developer_call(tool, args, &f->ctx, out);
    json_decref(args);
    assert_non_null(out->text);
    json_t *s = json_string(out->text); /* jansson insists on valid UTF-8 */
    assert_non_null(s);
    json_decref(s);
    return e;
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

static gd_err shell(fx *f, const char *command, tool_output *out)
{
    int fds = open_fds();
    json_t *args = json_pack("{s:s}", "command", command);
    gd_err e = developer_call("developer__shell", args, &f->ctx, out);
    json_decref(args);
    assert_non_null(out->text);
    json_t *s = json_string(out->text);
    assert_non_null(s);
    json_decref(s);
    /* No zombies: every child we started has been reaped. No fd left open. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(open_fds(), fds);
    return e;
}

static gd_err editor(fx *f, json_t *args, tool_output *out) /* takes args */
{
    gd_err e = developer_call("developer__text_editor", args, &f->ctx, out);
    json_decref(args);
    assert_non_null(out->text);
    json_t *s = json_string(out->text);
    assert_non_null(s);
    json_decref(s);
    return e;
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

/* True once process pid is gone or a zombie (killed, waiting for init to reap it). Its pipes
 * reached end of file before the tool returned, so it is at most finishing its exit. */
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

/* ---- the tool list ---- */

static void test_tools_schema(void **state)
{
    (void)state;
    json_t *tools = developer_tools();
    assert_non_null(tools);
    assert_int_equal(json_array_size(tools), 3);
    const char *want[] = {"developer__shell", "developer__text_editor", "developer__list_files"};
    for (size_t i = 0; i < 3; i++) {
        json_t *t = json_array_get(tools, i);
        assert_string_equal(json_string_value(json_object_get(t, "name")), want[i]);
        assert_true(strlen(json_string_value(json_object_get(t, "description"))) > 100);
        json_t *s = json_object_get(t, "input_schema");
        assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
        assert_true(json_is_object(json_object_get(s, "properties")));
        json_t *req = json_object_get(s, "required");
        assert_true(json_is_array(req));
        size_t j;
        json_t *r;
        json_array_foreach(req, j, r) /* every required name is a property */
            assert_non_null(
                json_object_get(json_object_get(s, "properties"), json_string_value(r)));
    }
    json_t *cmd = json_object_get(
        json_object_get(json_object_get(json_array_get(tools, 1), "input_schema"), "properties"),
        "command");
    assert_int_equal(json_array_size(json_object_get(cmd, "enum")), 5);
    json_decref(tools);
    assert_true(strlen(developer_instructions()) > 50);
}

static void test_bad_calls(void **state)
{
    fx *f = *state;
    tool_output out;
    assert_int_equal(call(f, "developer__nope", "{}", &out), GD_EINVAL);
    assert_true(out.is_error);
    assert_contains(out.text, "unknown tool");
    free(out.text);
    assert_int_equal(call(f, "developer__shell", "[1]", &out), GD_EINVAL);
    assert_true(out.is_error);
    assert_contains(out.text, "JSON object");
    free(out.text);
    assert_int_equal(developer_call(NULL, NULL, &f->ctx, &out), GD_EINVAL);
    assert_true(out.is_error);
    free(out.text);
}

/* ---- developer__shell ---- */

static void test_shell_status_and_streams(void **state)
{
    fx *f = *state;
    tool_output out;
    assert_int_equal(shell(f, "echo out; echo err >&2; echo more; exit 3", &out), GD_OK);
    assert_false(out.is_error); /* a non-zero exit is not a tool error */
    assert_string_equal(out.text, "exit status: 3\nstdout:\nout\nmore\nstderr:\nerr\n");
    free(out.text);

    assert_int_equal(shell(f, "true", &out), GD_OK);
    assert_string_equal(out.text, "exit status: 0\nstdout: (empty)\nstderr: (empty)\n");
    free(out.text);

    assert_int_equal(shell(f, "printf 'no newline'", &out), GD_OK);
    assert_contains(out.text, "stdout:\nno newline\nstderr:");
    free(out.text);

    /* Killed by a signal of its own. */
    assert_int_equal(shell(f, "kill -9 $$", &out), GD_OK);
    assert_contains(out.text, "killed by signal 9");
    free(out.text);
}

static void test_shell_cwd_stdin_env(void **state)
{
    fx *f = *state;
    tool_output out;
    assert_int_equal(shell(f, "pwd; echo hi > made.txt", &out), GD_OK);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "stdout:\n%s\n", f->dir);
    assert_contains(out.text, want);
    free(out.text);
    assert_string_equal(read_text(f, "made.txt"), "hi\n");

    /* stdin is /dev/null: cat ends at once. */
    assert_int_equal(shell(f, "cat; echo done", &out), GD_OK);
    assert_contains(out.text, "stdout:\ndone\n");
    free(out.text);

    /* Its own process group, with SIGPIPE at its default: `yes | head` ends. */
    assert_int_equal(shell(f, "cut -d' ' -f5 /proc/$$/stat; echo $$; yes | head -n 2", &out),
                     GD_OK);
    int pgid = 0, pid = 0;
    assert_int_equal(sscanf(out.text, "exit status: 0\nstdout:\n%d\n%d\n", &pgid, &pid), 2);
    assert_int_equal(pgid, pid);
    assert_contains(out.text, "y\ny\nstderr: (empty)");
    free(out.text);

    /* A missing working directory is an error. */
    f->ctx.cwd = "/nonexistent/dir";
    assert_int_equal(shell(f, "true", &out), GD_ENOTFOUND);
    assert_true(out.is_error);
    assert_contains(out.text, "/nonexistent/dir");
    free(out.text);
}

static void test_shell_bad_arguments(void **state)
{
    fx *f = *state;
    tool_output out;
    const char *bad[] = {"{}", "{\"command\": 5}", "{\"command\": \"\"}", "{\"cmd\": \"ls\"}",
                         "{\"command\": \"a\\u0000b\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(call(f, "developer__shell", bad[i], &out), GD_EINVAL);
        assert_true(out.is_error);
        assert_contains(out.text, "command");
        free(out.text);
    }
    assert_int_equal(call(f, "developer__shell", NULL, &out), GD_EINVAL);
    free(out.text);
}

static void test_shell_timeout_kills_group(void **state)
{
    fx *f = *state;
    tool_output out;
    f->ctx.timeout_ms = 300;
    uint64_t t0 = ms();
    assert_int_equal(shell(f, "sleep 30 & echo $! > bg.pid; echo started; sleep 30", &out), GD_OK);
    uint64_t took = ms() - t0;
    assert_true(out.is_error);
    assert_contains(out.text, "killed: timed out after 0.3 s\nstdout:\nstarted\n");
    free(out.text);
    assert_true(took >= 290 && took < 2500);
    pid_t bg = (pid_t)atoi(read_text(f, "bg.pid"));
    assert_true(bg > 0);
    assert_true(process_dead(bg));
}

static void test_shell_timeout_escalates_to_sigkill(void **state)
{
    fx *f = *state;
    tool_output out;
    f->ctx.timeout_ms = 200;
    uint64_t t0 = ms();
    assert_int_equal(shell(f, "trap '' TERM; sleep 30", &out), GD_OK);
    uint64_t took = ms() - t0;
    assert_contains(out.text, "killed: timed out after 0.2 s");
    free(out.text);
    assert_true(took >= 1100 && took < 3000); /* 200 ms, then SIGTERM ignored, SIGKILL 1 s later */
}

static void test_shell_background_holding_output(void **state)
{
    fx *f = *state;
    tool_output out;
    /* The shell exits at once; a background child keeps stdout open: it gets SIGHUP after a short
     * grace, with a note. One started with nohup and its output redirected is left running; one
     * that ignores SIGHUP and keeps the pipe is left behind (the call still returns). */
    uint64_t t0 = ms();
    assert_int_equal(shell(f,
                           "sleep 30 & echo $! > held.pid; "
                           "nohup sleep 30 > /dev/null 2>&1 & echo $! > free.pid; "
                           "sh -c 'trap \"\" HUP; exec sleep 30' & echo $! > stubborn.pid; "
                           "echo bye",
                           &out),
                     GD_OK);
    uint64_t took = ms() - t0;
    assert_true(took >= 400 && took < 2000);
    assert_false(out.is_error);
    assert_contains(out.text, "exit status: 0\nnote: processes the command left");
    assert_contains(out.text, "stdout:\nbye\n");
    free(out.text);
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
    assert_int_equal(shell(f, "sleep 30 > /dev/null 2>&1 & echo $! > quiet.pid", &out), GD_OK);
    assert_true(ms() - t0 < 200);
    assert_lacks(out.text, "note:");
    free(out.text);
    pid_t quiet = (pid_t)atoi(read_text(f, "quiet.pid"));
    assert_int_equal(kill(quiet, 0), 0);
    kill(quiet, SIGKILL);
}

typedef struct {
    fx *f;
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
    atomic_store(&c->f->cancel, true);
    return NULL;
}

static void test_shell_cancel(void **state)
{
    fx *f = *state;
    tool_output out;
    canceller c = {.f = f};
    snprintf(c.fifo, sizeof c.fifo, "%s/ready", f->dir);
    assert_int_equal(mkfifo(c.fifo, 0600), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_when_ready, &c), 0);
    uint64_t t0 = ms();
    assert_int_equal(shell(f, "echo partial; echo go > ready; sleep 30 & sleep 30", &out), GD_OK);
    uint64_t took = ms() - t0;
    pthread_join(th, NULL);
    assert_true(out.is_error);
    assert_contains(out.text, "cancelled\nstdout:\npartial\n");
    free(out.text);
    assert_true(took < 1000);

    /* Already cancelled: the command does not run. */
    assert_int_equal(shell(f, "touch ran", &out), GD_OK);
    assert_true(out.is_error);
    assert_contains(out.text, "cancelled");
    free(out.text);
    assert_string_equal(read_text(f, "ran"), "<absent>");
}

static void test_shell_output_cap(void **state)
{
    fx *f = *state;
    tool_output out;
    f->ctx.output_cap = 1000;
    /* seq 1 100000 prints 588895 bytes. */
    assert_int_equal(shell(f, "seq 1 100000; head -c 300000 /dev/zero | tr '\\0' e >&2", &out),
                     GD_OK);
    assert_false(out.is_error);
    assert_true(strlen(out.text) < 2 * 1000 + 600);
    assert_true(!strncmp(out.text, "exit status: 0\nstdout:\n1\n2\n3\n", 29));
    assert_contains(out.text, "[... 587895 bytes of stdout omitted: the first 500 and last 500");
    assert_contains(out.text, "99999\n100000\nstderr:\neeee");
    assert_contains(out.text, "[... 299000 bytes of stderr omitted");
    free(out.text);

    /* A flood with the default cap ends quickly, and memory stays bounded (ASan would see). */
    f->ctx.output_cap = 0;
    uint64_t t0 = ms();
    assert_int_equal(shell(f, "yes | head -c 30000000", &out), GD_OK);
    assert_true(ms() - t0 < 3000);
    assert_true(strlen(out.text) < 2 * 65536 + 600);
    assert_contains(out.text, "[... 29934464 bytes of stdout omitted");
    free(out.text);

    /* Binary output comes back as valid UTF-8. */
    assert_int_equal(shell(f, "printf 'a\\377\\000b\\342\\202\\254'", &out), GD_OK);
    assert_contains(out.text, "stdout:\na\xEF\xBF\xBD\xEF\xBF\xBD"
                              "b\xE2\x82\xAC\n");
    free(out.text);
}

/* ---- developer__text_editor ---- */

static gd_err ed(fx *f, tool_output *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_error_t je;
    json_t *args = json_vpack_ex(&je, 0, fmt, ap);
    va_end(ap);
    if (!args) fail_msg("json_pack: %s", je.text);
    return editor(f, args, out);
}

static void test_editor_write_view(void **state)
{
    fx *f = *state;
    tool_output out;
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s}", "command", "write", "path", "sub/dir/a.txt",
                        "file_text", "one\ntwo\nthree\nfour\nfive"),
                     GD_OK);
    assert_false(out.is_error);
    assert_contains(out.text, "Created ");
    assert_contains(out.text, "5 lines");
    free(out.text);
    assert_string_equal(read_text(f, "sub/dir/a.txt"), "one\ntwo\nthree\nfour\nfive\n");

    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "sub/dir/a.txt"), GD_OK);
    assert_contains(out.text,
                    "/sub/dir/a.txt (5 lines)\n1: one\n2: two\n3: three\n4: four\n5: five\n");
    free(out.text);

    assert_int_equal(ed(f, &out, "{s:s, s:s, s:[i,i]}", "command", "view", "path", "sub/dir/a.txt",
                        "view_range", 2, 3),
                     GD_OK);
    assert_contains(out.text, "(lines 2-3 of 5)\n2: two\n3: three\n[Showing lines 2-3 of 5. Use "
                              "view_range [4, 5] to see more.]");
    assert_lacks(out.text, "1: one");
    free(out.text);

    assert_int_equal(ed(f, &out, "{s:s, s:s, s:[i,i]}", "command", "view", "path", "sub/dir/a.txt",
                        "view_range", 4, -1),
                     GD_OK);
    assert_contains(out.text, "\n4: four\n5: five\n");
    assert_lacks(out.text, "Showing");
    free(out.text);

    /* Absolute path, an end past the file, and a range given as strings. */
    char abs[PATH_MAX + 32];
    snprintf(abs, sizeof abs, "%s/sub/./dir/../dir/a.txt", f->dir);
    assert_int_equal(
        ed(f, &out, "{s:s, s:s, s:[s,i]}", "command", "view", "path", abs, "view_range", "5", 99),
        GD_OK);
    assert_contains(out.text, "/sub/dir/a.txt (lines 5-5 of 5)\n5: five\n");
    free(out.text);

    /* Overwrite. */
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s}", "command", "write", "path", "sub/dir/a.txt",
                        "file_text", "new\n"),
                     GD_OK);
    assert_contains(out.text, "Overwrote ");
    free(out.text);
    assert_string_equal(read_text(f, "sub/dir/a.txt"), "new\n");
}

static void test_editor_view_errors(void **state)
{
    fx *f = *state;
    tool_output out;
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
        assert_int_equal(call(f, "developer__text_editor", js, &out), GD_EINVAL);
        assert_true(out.is_error);
        assert_contains(out.text, bad[i].msg);
        free(out.text);
    }
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "missing.txt"),
                     GD_ENOTFOUND);
    assert_true(out.is_error);
    assert_contains(out.text, "does not exist");
    free(out.text);

    /* Binary. */
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/bin.dat", f->dir);
    FILE *fp = fopen(p, "wb");
    fwrite("ab\0cd", 1, 5, fp);
    fclose(fp);
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "bin.dat"), GD_EINVAL);
    assert_contains(out.text, "binary");
    free(out.text);

    /* Too large. */
    snprintf(p, sizeof p, "%s/big.txt", f->dir);
    fp = fopen(p, "w");
    for (int i = 0; i < 50000; i++)
        fputs("0123456789\n", fp);
    fclose(fp);
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "big.txt"), GD_ETOOBIG);
    assert_contains(out.text, "too large");
    assert_contains(out.text, "400 KB");
    free(out.text);

    /* Many lines: a view_range is needed. */
    snprintf(p, sizeof p, "%s/long.txt", f->dir);
    fp = fopen(p, "w");
    for (int i = 1; i <= 2500; i++)
        fprintf(fp, "line %d\n", i);
    fclose(fp);
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "long.txt"), GD_EINVAL);
    assert_contains(out.text, "2500 lines");
    free(out.text);
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:[i,i]}", "command", "view", "path", "long.txt",
                        "view_range", 2400, 2401),
                     GD_OK);
    assert_contains(out.text, "2400: line 2400\n2401: line 2401\n[Showing lines 2400-2401 of "
                              "2500. Use view_range [2402, 2500]");
    free(out.text);

    /* Empty file. */
    write_text(f, "empty.txt", "");
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "empty.txt"), GD_OK);
    assert_contains(out.text, "(empty file)");
    free(out.text);

    /* Invalid UTF-8 comes back replaced. */
    write_text(f, "latin1.txt", "caf\xE9\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "latin1.txt"), GD_OK);
    assert_contains(out.text, "1: caf\xEF\xBF\xBD\n");
    free(out.text);
}

static void test_editor_view_directory(void **state)
{
    fx *f = *state;
    tool_output out;
    mkdir_rel(f, "d");
    mkdir_rel(f, "d/zsub");
    write_text(f, "d/b.txt", "x");
    write_text(f, "d/a.txt", "x");
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "view", "path", "d"), GD_OK);
    assert_false(out.is_error);
    assert_contains(out.text, "is a directory with 3 entries:\nzsub/\na.txt\nb.txt\n");
    free(out.text);
}

static void test_editor_str_replace(void **state)
{
    fx *f = *state;
    tool_output out;
    write_text(f, "c.py", "def f():\n    return 1\n\ndef g():\n    return 1\n");
    /* Ambiguous: named how many times. */
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "c.py",
                        "old_str", "return 1", "new_str", "return 2"),
                     GD_EINVAL);
    assert_true(out.is_error);
    assert_contains(out.text, "occurs 2 times");
    free(out.text);
    /* Absent. */
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "c.py",
                        "old_str", "return 3", "new_str", "x"),
                     GD_EINVAL);
    assert_contains(out.text, "No match");
    free(out.text);
    /* Unique. */
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "c.py",
                        "old_str", "def g():\n    return 1", "new_str",
                        "def g():\n    return 2\n    # done"),
                     GD_OK);
    assert_false(out.is_error);
    assert_contains(out.text, "Edited ");
    assert_contains(out.text, "4: def g():\n5:     return 2\n6:     # done\n");
    free(out.text);
    assert_string_equal(read_text(f, "c.py"),
                        "def f():\n    return 1\n\ndef g():\n    return 2\n    # done\n");
    /* new_str omitted: deletion. */
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s}", "command", "str_replace", "path", "c.py",
                        "old_str", "    # done\n"),
                     GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "c.py"), "def f():\n    return 1\n\ndef g():\n    return 2\n");
    /* Overlapping occurrences are ambiguous too. */
    write_text(f, "aaa.txt", "aaa\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path",
                        "aaa.txt", "old_str", "aa", "new_str", "b"),
                     GD_EINVAL);
    assert_contains(out.text, "occurs 2 times");
    free(out.text);
    /* A CRLF file edited with LF text. */
    write_text(f, "win.txt", "a\r\nb\r\nc\r\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path",
                        "win.txt", "old_str", "a\nb", "new_str", "A\nB"),
                     GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "win.txt"), "A\r\nB\r\nc\r\n");
    /* Errors: missing file, missing or empty old_str, wrong types. */
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path",
                        "nope.txt", "old_str", "a", "new_str", "b"),
                     GD_ENOTFOUND);
    assert_contains(out.text, "does not exist");
    free(out.text);
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "str_replace", "path", "c.py"),
                     GD_EINVAL);
    assert_contains(out.text, "old_str");
    free(out.text);
    assert_int_equal(
        ed(f, &out, "{s:s, s:s, s:s}", "command", "str_replace", "path", "c.py", "old_str", ""),
        GD_EINVAL);
    free(out.text);
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:i}", "command", "str_replace", "path", "c.py",
                        "old_str", "f", "new_str", 3),
                     GD_EINVAL);
    assert_contains(out.text, "new_str");
    free(out.text);
}

static void test_editor_insert(void **state)
{
    fx *f = *state;
    tool_output out;
    write_text(f, "i.txt", "a\nb\nc\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt",
                        "insert_line", 0, "new_str", "top"),
                     GD_OK);
    assert_contains(out.text, "Inserted 1 line after line 0 of");
    assert_contains(out.text, "1: top\n2: a\n");
    free(out.text);
    assert_string_equal(read_text(f, "i.txt"), "top\na\nb\nc\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt",
                        "insert_line", 2, "new_str", "x\ny\n"),
                     GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "i.txt"), "top\na\nx\ny\nb\nc\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt",
                        "insert_line", 6, "new_str", "end"),
                     GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "i.txt"), "top\na\nx\ny\nb\nc\nend\n");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "i.txt",
                        "insert_line", 99, "new_str", "z"),
                     GD_EINVAL);
    assert_contains(out.text, "out of range");
    assert_contains(out.text, "7 lines");
    free(out.text);
    assert_int_equal(
        ed(f, &out, "{s:s, s:s, s:s}", "command", "insert", "path", "i.txt", "new_str", "z"),
        GD_EINVAL);
    assert_contains(out.text, "insert_line");
    free(out.text);
    /* A file without a final newline; -1 is the end. */
    write_text(f, "n.txt", "a\nb");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "n.txt",
                        "insert_line", -1, "new_str", "c"),
                     GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "n.txt"), "a\nb\nc\n");
    /* Into an empty file. */
    write_text(f, "e.txt", "");
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "insert", "path", "e.txt",
                        "insert_line", "0", "new_str", "only"),
                     GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "e.txt"), "only\n");
}

static void test_editor_undo_chain(void **state)
{
    fx *f = *state;
    tool_output out;
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "undo_edit", "path", "u.txt"), GD_EINVAL);
    assert_contains(out.text, "No edit history");
    free(out.text);
    assert_int_equal(
        ed(f, &out, "{s:s, s:s, s:s}", "command", "write", "path", "u.txt", "file_text", "v1\n"),
        GD_OK);
    free(out.text);
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path", "u.txt",
                        "old_str", "v1", "new_str", "v2"),
                     GD_OK);
    free(out.text);
    assert_int_equal(ed(f, &out, "{s:s, s:s, s:i, s:s}", "command", "insert", "path", "u.txt",
                        "insert_line", 1, "new_str", "v3"),
                     GD_OK);
    free(out.text);
    assert_int_equal(
        ed(f, &out, "{s:s, s:s, s:s}", "command", "write", "path", "u.txt", "file_text", "v4\n"),
        GD_OK);
    free(out.text);
    assert_string_equal(read_text(f, "u.txt"), "v4\n");
    const char *expect[] = {"v2\nv3\n", "v2\n", "v1\n"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "undo_edit", "path", "u.txt"), GD_OK);
        assert_false(out.is_error);
        assert_contains(out.text, "Undid the last edit");
        free(out.text);
        assert_string_equal(read_text(f, "u.txt"), expect[i]);
    }
    /* The first write created the file: undoing it removes it. Then nothing is left. */
    char abs[PATH_MAX + 16];
    snprintf(abs, sizeof abs, "%s/u.txt", f->dir);
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "undo_edit", "path", abs), GD_OK);
    assert_contains(out.text, "removed");
    assert_contains(out.text, " 0 more undo steps");
    free(out.text);
    assert_string_equal(read_text(f, "u.txt"), "<absent>");
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "undo_edit", "path", "u.txt"), GD_EINVAL);
    free(out.text);

    /* The history is bounded: 12 edits, 10 undos. */
    write_text(f, "b.txt", "0\n");
    for (int i = 1; i <= 12; i++) {
        char o[8], n[8];
        snprintf(o, sizeof o, "%d", i - 1);
        snprintf(n, sizeof n, "%d", i);
        assert_int_equal(ed(f, &out, "{s:s, s:s, s:s, s:s}", "command", "str_replace", "path",
                            "b.txt", "old_str", o, "new_str", n),
                         GD_OK);
        free(out.text);
    }
    for (int i = 11; i >= 2; i--) {
        assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "undo_edit", "path", "b.txt"), GD_OK);
        free(out.text);
        char want[8];
        snprintf(want, sizeof want, "%d\n", i);
        assert_string_equal(read_text(f, "b.txt"), want);
    }
    assert_int_equal(ed(f, &out, "{s:s, s:s}", "command", "undo_edit", "path", "b.txt"), GD_EINVAL);
    free(out.text);
    assert_string_equal(read_text(f, "b.txt"), "2\n");
}

static void test_editor_bad_arguments(void **state)
{
    fx *f = *state;
    tool_output out;
    const char *bad[] = {"{}",
                         "{\"path\": \"a\"}",
                         "{\"command\": \"view\"}",
                         "{\"command\": \"view\", \"path\": \"\"}",
                         "{\"command\": \"view\", \"path\": 3}",
                         "{\"command\": \"delete\", \"path\": \"a\"}",
                         "{\"command\": \"write\", \"path\": \"a\"}",
                         "{\"command\": \"write\", \"path\": \"a\", \"file_text\": 1}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(call(f, "developer__text_editor", bad[i], &out), GD_EINVAL);
        assert_true(out.is_error);
        free(out.text);
    }
    mkdir_rel(f, "adir");
    assert_int_equal(
        ed(f, &out, "{s:s, s:s, s:s}", "command", "write", "path", "adir", "file_text", "x"),
        GD_EINVAL);
    assert_contains(out.text, "directory");
    free(out.text);
    assert_string_equal(read_text(f, "a"), "<absent>");
}

/* ---- several sessions at once ---- */

typedef struct {
    fx *f;
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
        tool_output out;
        snprintf(text, sizeof text, "worker %d step %d\n", w->id, i);
        json_t *a =
            json_pack("{s:s, s:s, s:s}", "command", "write", "path", path, "file_text", text);
        w->ok = developer_call("developer__text_editor", a, &w->f->ctx, &out) == GD_OK;
        json_decref(a);
        free(out.text);
        /* Everyone also edits one shared file: the edits serialise, none is lost. */
        a = json_pack("{s:s, s:s, s:i, s:s}", "command", "insert", "path", "shared.txt",
                      "insert_line", -1, "new_str", text);
        w->ok = w->ok && developer_call("developer__text_editor", a, &w->f->ctx, &out) == GD_OK;
        json_decref(a);
        free(out.text);
    }
    tool_output out;
    json_t *a = json_pack("{s:s, s:s}", "command", "undo_edit", "path", path);
    w->ok = w->ok && developer_call("developer__text_editor", a, &w->f->ctx, &out) == GD_OK;
    json_decref(a);
    free(out.text);
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
        tool_output out;
        json_t *a = json_pack("{s:s}", "command", cmd);
        w->ok = developer_call("developer__shell", a, &w->f->ctx, &out) == GD_OK &&
                strstr(out.text, want) != NULL;
        json_decref(a);
        free(out.text);
    }
    return NULL;
}

static void test_concurrent_calls(void **state)
{
    fx *f = *state;
    write_text(f, "shared.txt", "");
    enum { N = 4 };
    pthread_t th[2 * N];
    worker w[2 * N];
    for (int i = 0; i < 2 * N; i++) {
        w[i] = (worker){.f = f, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, i < N ? edit_worker : shell_worker, &w[i]),
                         0);
    }
    for (int i = 0; i < 2 * N; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].ok);
    }
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

/* ---- developer__list_files ---- */

static gd_err list(fx *f, tool_output *out, const char *json)
{
    return call(f, "developer__list_files", json, out);
}

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
    tool_output out;
    make_tree(f);
    assert_int_equal(list(f, &out, "{}"), GD_OK);
    assert_false(out.is_error);
    char want[PATH_MAX + 512];
    snprintf(want, sizeof want,
             "%s/ (9 entries, depth 3)\n.env\nREADME.md\nsrc/\nsrc/core/\nsrc/core/buf.c\n"
             "src/core/buf.h\nsrc/core/deep/\nsrc/loop\nsrc/main.c\n",
             f->dir);
    assert_string_equal(out.text, want);
    free(out.text);
    assert_int_equal(list(f, &out, "{\"max_depth\": 3}"), GD_OK);
    assert_lacks(out.text, ".git");
    assert_lacks(out.text, "node_modules");
    assert_lacks(out.text, "deep/a.c");
    assert_lacks(out.text, "src/loop/");
    assert_contains(out.text, "\n.env\nREADME.md\nsrc/\nsrc/core/\nsrc/core/buf.c\nsrc/core/buf.h\n"
                              "src/core/deep/\nsrc/loop\nsrc/main.c\n");
    free(out.text);

    assert_int_equal(list(f, &out, "{\"max_depth\": 1}"), GD_OK);
    snprintf(want, sizeof want, "%s/ (3 entries, depth 1)\n.env\nREADME.md\nsrc/\n", f->dir);
    assert_string_equal(out.text, want);
    free(out.text);

    assert_int_equal(list(f, &out, "{\"path\": \"src/core\", \"max_depth\": 10}"), GD_OK);
    snprintf(want, sizeof want,
             "%s/src/core/ (6 entries, depth 10)\nbuf.c\nbuf.h\ndeep/\ndeep/a.c\ndeep/er/\n"
             "deep/er/b.c\n",
             f->dir);
    assert_string_equal(out.text, want);
    free(out.text);
}

static void test_list_pattern(void **state)
{
    fx *f = *state;
    tool_output out;
    make_tree(f);
    assert_int_equal(list(f, &out, "{\"pattern\": \"*.c\", \"max_depth\": 10}"), GD_OK);
    assert_contains(out.text, "(4 entries, depth 10, pattern '*.c')\nsrc/core/buf.c\n"
                              "src/core/deep/a.c\nsrc/core/deep/er/b.c\nsrc/main.c\n");
    assert_lacks(out.text, "y.js");
    free(out.text);
    assert_int_equal(list(f, &out, "{\"pattern\": \"src/core/*.h\", \"max_depth\": 10}"), GD_OK);
    assert_contains(out.text, "(1 entry, depth 10, pattern 'src/core/*.h')\nsrc/core/buf.h\n");
    free(out.text);
    assert_int_equal(list(f, &out, "{\"pattern\": \"*.zig\"}"), GD_OK);
    assert_contains(out.text, "(no entries match the pattern)");
    free(out.text);
}

static void test_list_cap(void **state)
{
    fx *f = *state;
    tool_output out;
    mkdir_rel(f, "many");
    for (int i = 0; i < 1100; i++) {
        char n[32];
        snprintf(n, sizeof n, "many/f%04d", i);
        write_text(f, n, "");
    }
    assert_int_equal(list(f, &out, "{\"path\": \"many\"}"), GD_OK);
    assert_contains(out.text, "(1000 entries, depth 3)\nf0000\nf0001\n");
    assert_contains(out.text, "\nf0999\n[listing cut at 1000 entries");
    assert_lacks(out.text, "f1000");
    free(out.text);

    /* Cancelled while walking: stops, says so. */
    atomic_store(&f->cancel, true);
    assert_int_equal(list(f, &out, "{\"path\": \"many\", \"pattern\": \"nothing\"}"), GD_OK);
    assert_true(out.is_error);
    assert_contains(out.text, "[cancelled");
    free(out.text);
}

static void test_list_errors(void **state)
{
    fx *f = *state;
    tool_output out;
    write_text(f, "file.txt", "x");
    assert_int_equal(list(f, &out, "{\"path\": \"file.txt\"}"), GD_EINVAL);
    assert_true(out.is_error);
    assert_contains(out.text, "not a directory");
    free(out.text);
    assert_int_equal(list(f, &out, "{\"path\": \"nope\"}"), GD_ENOTFOUND);
    free(out.text);
    const char *bad[] = {"{\"max_depth\": 0}", "{\"max_depth\": \"x\"}", "{\"path\": 1}",
                         "{\"pattern\": []}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(list(f, &out, bad[i]), GD_EINVAL);
        assert_true(out.is_error);
        free(out.text);
    }
    /* An empty directory (regression: qsort of no entries). */
    mkdir_rel(f, "empty");
    assert_int_equal(list(f, &out, "{\"path\": \"empty\"}"), GD_OK);
    assert_contains(out.text, "(0 entries, depth 3)\n(empty directory)\n");
    free(out.text);
    /* No arguments at all: the working directory. */
    assert_int_equal(list(f, &out, NULL), GD_OK);
    assert_contains(out.text, "\nfile.txt\n");
    free(out.text);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tools_schema),
        T(test_bad_calls),
        T(test_shell_status_and_streams),
        T(test_shell_cwd_stdin_env),
        T(test_shell_bad_arguments),
        T(test_shell_timeout_kills_group),
        T(test_shell_timeout_escalates_to_sigkill),
        T(test_shell_background_holding_output),
        T(test_shell_cancel),
        T(test_shell_output_cap),
        T(test_editor_write_view),
        T(test_editor_view_errors),
        T(test_editor_view_directory),
        T(test_editor_str_replace),
        T(test_editor_insert),
        T(test_editor_undo_chain),
        T(test_editor_bad_arguments),
        T(test_concurrent_calls),
        T(test_list_depth_and_skips),
        T(test_list_pattern),
        T(test_list_cap),
        T(test_list_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
