/* Unit tests for src/extensions/developer/fsopen.c (included, to reach the fallback switch): every
 * open of the file tools stays beneath the session's working directory, with openat2 and with
 * the O_NOFOLLOW walk used where the kernel has none; what is opened is checked against goosed's
 * protected directories. Each test runs in a fresh temporary directory: base/work is the working
 * directory, base/out is outside it, base/work/conf is protected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>

#include "extensions/developer/fsopen.c"

typedef struct {
    char base[PATH_MAX], work[PATH_MAX], out[PATH_MAX], conf[PATH_MAX];
    const char *protected_dirs[2];
    developer d;
    dev_call c;
} fx;

static void path_of(char *out, const fx *f, const char *dir, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char tmpl[] = "/tmp/goosed-fsopen-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, f->base));
    path_of(f->work, f, f->base, "work");
    path_of(f->out, f, f->base, "out");
    path_of(f->conf, f, f->work, "conf");
    assert_int_equal(mkdir(f->work, 0700), 0);
    assert_int_equal(mkdir(f->out, 0700), 0);
    assert_int_equal(mkdir(f->conf, 0700), 0);
    f->protected_dirs[0] = f->conf;
    f->d.host.protected_dirs = f->protected_dirs;
    f->c.d = &f->d;
    snprintf(f->c.cwd, sizeof f->c.cwd, "%s", f->work);
    atomic_store(&g_no_openat2, false);
    *state = f;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    fx *f = *state;
    nftw(f->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Opens name (relative to the working directory) for writing, creating it: fd or -errno. */
static int open_write(fx *f, const char *name)
{
    char abs[PATH_MAX];
    path_of(abs, f, f->work, name);
    dev_fs fs;
    if (!dev_fs_open(&f->c, abs, &fs)) return -fs.err;
    int fd = dev_fs_openat(&fs, fs.rel, O_WRONLY | O_CREAT, 0600);
    dev_fs_close(&fs);
    return fd;
}

static void links(fx *f)
{
    char p[PATH_MAX];
    path_of(p, f, f->work, "sub");
    assert_int_equal(mkdir(p, 0700), 0);
    path_of(p, f, f->work, "out");
    assert_int_equal(symlink(f->out, p), 0); /* absolute, outside */
    path_of(p, f, f->work, "up");
    assert_int_equal(symlink("../out", p), 0); /* relative, outside */
    path_of(p, f, f->work, "abs");
    char sub[PATH_MAX];
    path_of(sub, f, f->work, "sub");
    assert_int_equal(symlink(sub, p), 0); /* absolute, back inside */
    path_of(p, f, f->work, "rel");
    assert_int_equal(symlink("sub", p), 0); /* relative, inside */
    path_of(p, f, f->work, "cfg");
    assert_int_equal(symlink("conf", p), 0); /* inside, into the protected directory */
}

static void test_openat2_beneath(void **state)
{
    fx *f = *state;
    links(f);
    int fd;
    assert_true((fd = open_write(f, "plain.txt")) >= 0);
    close(fd);
    assert_true((fd = open_write(f, "rel/a.txt")) >= 0);
    close(fd);
    assert_true((fd = open_write(f, "abs/b.txt")) >= 0); /* resolved here, opened beneath */
    close(fd);
    assert_int_equal(open_write(f, "out/x.txt"), -EXDEV);
    assert_int_equal(open_write(f, "up/x.txt"), -EXDEV);
    assert_int_equal(open_write(f, "cfg/x.txt"), -DEV_EPROTECTED);
    DIR *d = opendir(f->out);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 0); /* nothing was made outside */
}

static void test_walk_without_openat2(void **state)
{
    fx *f = *state;
    links(f);
    atomic_store(&g_no_openat2, true); /* as on a kernel without openat2 */
    int fd;
    assert_true((fd = open_write(f, "plain.txt")) >= 0);
    close(fd);
    assert_true((fd = open_write(f, "sub/a.txt")) >= 0);
    close(fd);
    /* No link is followed at all, inside or out. */
    assert_int_equal(open_write(f, "rel/a.txt"), -ENOTDIR);
    assert_int_equal(open_write(f, "out/x.txt"), -ENOTDIR);
    assert_int_equal(open_write(f, "up/x.txt"), -ENOTDIR);
    char dangling[PATH_MAX], target[PATH_MAX];
    path_of(dangling, f, f->work, "dangling");
    path_of(target, f, f->out, "new.txt");
    assert_int_equal(symlink(target, dangling), 0);
    assert_int_equal(open_write(f, "dangling"), -ELOOP);
    assert_int_equal(access(target, F_OK), -1);
    dev_out out = {0};
    dev_fs fs = {.path = "/x/dangling", .root_real = "/x"};
    dev_fs_fail(&out, "t", &fs, "write", ELOOP);
    assert_non_null(strstr(out.text, "no openat2"));
    free(out.text);
}

static void test_parent_mkdir_p(void **state)
{
    fx *f = *state;
    links(f);
    char abs[PATH_MAX];
    dev_fs fs;
    const char *base;
    path_of(abs, f, f->work, "rel/new/deeper/file.txt");
    assert_true(dev_fs_open(&f->c, abs, &fs));
    int pfd = dev_fs_parent(&fs, true, &base);
    assert_true(pfd >= 0);
    assert_string_equal(base, "file.txt");
    close(pfd);
    dev_fs_close(&fs);
    char made[PATH_MAX];
    path_of(made, f, f->work, "sub/new/deeper");
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    /* Through a link out: nothing is made outside. */
    path_of(abs, f, f->work, "up/made/here/file.txt");
    assert_true(dev_fs_open(&f->c, abs, &fs));
    assert_int_equal(dev_fs_parent(&fs, true, &base), -EXDEV);
    dev_fs_close(&fs);
    path_of(made, f, f->out, "made");
    assert_int_equal(stat(made, &st), -1);
}

static void test_outside_is_refused_at_open(void **state)
{
    fx *f = *state;
    char abs[PATH_MAX];
    dev_fs fs;
    path_of(abs, f, f->out, "x.txt");
    assert_false(dev_fs_open(&f->c, abs, &fs)); /* not under the working directory at all */
    assert_int_equal(fs.err, EXDEV);
    path_of(abs, f, f->work, ".");
    assert_true(dev_fs_open(&f->c, f->work, &fs));
    assert_string_equal(fs.rel, ".");
    dev_fs_close(&fs);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_openat2_beneath),
        T(test_walk_without_openat2),
        T(test_parent_mkdir_p),
        T(test_outside_is_refused_at_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
