/* fsopen: how the file tools open what they read and write, confined to the session's working
 * directory at the moment of the open (see dev.h, dev_fs). The check of dev_path_ok alone
 * leaves a window: a symbolic link swapped between the check and an open by path leads out.
 * So every open goes through the working directory's descriptor with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS), where the kernel refuses any step that leaves it; an absolute link
 * that points back inside is resolved here first and opened again beneath the directory. Where
 * the kernel has no openat2 (ENOSYS), a walk of the components with O_NOFOLLOW does the same,
 * refusing every symbolic link. What was opened is checked once more against goosed's own
 * directories (they may lie inside the working directory). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

#define OPEN_RETRIES 8 /* EAGAIN from openat2: a rename raced the lookup; try again */

static atomic_bool g_no_openat2; /* the kernel said ENOSYS once */

static int sys_openat2(int dirfd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC),
                           .mode = (flags & O_CREAT) ? mode : 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    for (int i = 0;; i++) {
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        if (fd >= 0) return (int)fd;
        if (errno == EAGAIN && i < OPEN_RETRIES) continue;
        return -errno;
    }
}

/* The fallback: rel component by component from dirfd, never following a symbolic link
 * (ELOOP or ENOTDIR then) and never `..` (dev_resolve_path removed them). */
static int walk_open(int dirfd, const char *rel, int flags, mode_t mode)
{
    if (!strcmp(rel, ".")) return openat(dirfd, ".", flags | O_CLOEXEC, mode);
    char tmp[DEV_PATH_MAX];
    if (strlen(rel) >= sizeof tmp) return -ENAMETOOLONG;
    strcpy(tmp, rel);
    int cur = dirfd;
    char *s = tmp;
    for (;;) {
        char *slash = strchr(s, '/');
        if (slash) *slash = '\0';
        if (!strcmp(s, "..")) {
            if (cur != dirfd) close(cur);
            return -EXDEV;
        }
        int fd = slash ? openat(cur, s, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                       : openat(cur, s, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        int e = errno;
        if (cur != dirfd) close(cur);
        if (fd < 0) return -e;
        if (!slash) return fd;
        cur = fd;
        s = slash + 1;
    }
}

static int open_beneath(int dirfd, const char *rel, int flags, mode_t mode)
{
    if (!atomic_load(&g_no_openat2)) {
        int fd = sys_openat2(dirfd, rel, flags, mode);
        if (fd != -ENOSYS) return fd;
        atomic_store(&g_no_openat2, true);
    }
    return walk_open(dirfd, rel, flags, mode);
}

/* The real path of abs (absolute, lexically clean), for a path whose last components may not
 * exist yet: the real path of its longest existing prefix and the rest as given. */
static bool real_of(const char *abs, char *out, size_t n)
{
    char tmp[DEV_PATH_MAX];
    if (strlen(abs) >= sizeof tmp) return false;
    strcpy(tmp, abs);
    char real[PATH_MAX];
    for (size_t cut = strlen(tmp);;) {
        char c = tmp[cut];
        tmp[cut] = '\0';
        bool ok = realpath(cut ? tmp : "/", real) != NULL;
        int e = errno;
        tmp[cut] = c;
        if (ok) {
            int w = snprintf(out, n, "%s%s", strcmp(real, "/") ? real : "", tmp + cut);
            if (w < 0 || (size_t)w >= n) return false;
            if (!out[0]) snprintf(out, n, "/");
            return true;
        }
        if (e != ENOENT && e != ENOTDIR) return false;
        while (cut > 0 && tmp[cut - 1] != '/')
            cut--;
        if (cut == 0) return false;
        cut--; /* at the slash */
    }
}

/* rel of abs under root (both absolute, clean): "." for root itself; false when not under. */
static bool rel_under(const char *root, const char *abs, char *rel, size_t n)
{
    size_t rl = strcmp(root, "/") ? strlen(root) : 0;
    if (strncmp(abs, root, rl)) return false;
    const char *r = abs + rl;
    if (!r[0])
        r = ".";
    else if (r[0] == '/')
        r++;
    else
        return false;
    if (!r[0]) r = ".";
    return (size_t)snprintf(rel, n, "%s", r) < n;
}

bool dev_fs_open(dev_call *c, const char *path, dev_fs *fs)
{
    fs->host = &c->d->host;
    fs->path = path;
    fs->root = AT_FDCWD;
    fs->root_real[0] = '\0';
    if (c->cwd[0] != '/') { /* no working directory (the command-line client): not confined */
        snprintf(fs->rel, sizeof fs->rel, "%s", path);
        return true;
    }
    fs->root = open(c->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fs->root < 0) {
        fs->err = errno;
        return false;
    }
    if (!realpath(c->cwd, fs->root_real)) {
        fs->err = errno;
        dev_fs_close(fs);
        return false;
    }
    if (rel_under(c->cwd, path, fs->rel, sizeof fs->rel) ||
        rel_under(fs->root_real, path, fs->rel, sizeof fs->rel))
        return true;
    char real[DEV_PATH_MAX];
    if (real_of(path, real, sizeof real) && rel_under(fs->root_real, real, fs->rel, sizeof fs->rel))
        return true;
    fs->err = EXDEV;
    dev_fs_close(fs);
    return false;
}

void dev_fs_close(dev_fs *fs)
{
    if (fs->root >= 0) close(fs->root);
    fs->root = -1;
}

/* Whether what fd is open on lies outside goosed's own directories. */
static bool fd_allowed(const dev_fs *fs, int fd)
{
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(link, real, sizeof real - 1);
    if (l <= 0) return true; /* no /proc: dev_path_ok's check stands */
    real[l] = '\0';
    return sandbox_real_path_allowed(fs->host, real);
}

int dev_fs_openat(const dev_fs *fs, const char *rel, int flags, mode_t mode)
{
    if (fs->root == AT_FDCWD) {
        int fd = open(rel, flags | O_CLOEXEC, mode);
        return fd < 0 ? -errno : fd;
    }
    int fd = open_beneath(fs->root, rel, flags, mode);
    if (fd == -EXDEV && !atomic_load(&g_no_openat2)) {
        /* An absolute link (RESOLVE_BENEATH refuses them all): resolve the links here, and when
         * the result is inside, open that beneath the directory again (a link swapped meanwhile
         * still cannot lead out). */
        char abs[DEV_PATH_MAX * 2 + 2], real[DEV_PATH_MAX], rel2[DEV_PATH_MAX];
        int w = snprintf(abs, sizeof abs, "%s/%s", strcmp(fs->root_real, "/") ? fs->root_real : "",
                         rel);
        if (w > 0 && (size_t)w < sizeof abs && real_of(abs, real, sizeof real) &&
            rel_under(fs->root_real, real, rel2, sizeof rel2))
            fd = open_beneath(fs->root, rel2, flags, mode);
    }
    if (fd < 0) return fd;
    if (!fd_allowed(fs, fd)) {
        close(fd);
        return -DEV_EPROTECTED;
    }
    return fd;
}

/* The directory that holds prefix (a path relative to the root, or absolute when unconfined). */
static int open_dir_of(const dev_fs *fs, char *prefix, const char **name)
{
    char *s = strrchr(prefix, '/');
    *name = s ? s + 1 : prefix;
    if (!s) return dev_fs_openat(fs, fs->root == AT_FDCWD ? "/" : ".", O_PATH | O_DIRECTORY, 0);
    if (s == prefix) return dev_fs_openat(fs, "/", O_PATH | O_DIRECTORY, 0);
    *s = '\0';
    int fd = dev_fs_openat(fs, prefix, O_PATH | O_DIRECTORY, 0);
    *s = '/';
    return fd;
}

int dev_fs_parent(const dev_fs *fs, bool make, const char **base)
{
    char dir[DEV_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", fs->rel);
    const char *name;
    int fd = open_dir_of(fs, dir, &name);
    *base = fs->rel + (name - dir);
    if (fd != -ENOENT || !make) return fd;
    /* mkdir -p, one component at a time, each made in its parent opened beneath the root (a
     * link swapped in anywhere leads nowhere outside). */
    char *last = strrchr(dir, '/');
    if (!last) return fd;
    *last = '\0'; /* dir: the parent itself */
    for (size_t i = 0;; i++) {
        if (dir[i] != '/' && dir[i] != '\0') continue;
        char c = dir[i];
        dir[i] = '\0';
        int pfd = i ? open_dir_of(fs, dir, &name) : 0;
        if (pfd < 0) return pfd;
        if (i && name[0]) {
            int r = mkdirat(pfd, name, 0777) < 0 && errno != EEXIST ? -errno : 0;
            close(pfd);
            if (r) return r;
        } else if (i) {
            close(pfd);
        }
        dir[i] = c;
        if (!c) break;
    }
    *last = '/';
    return open_dir_of(fs, dir, &name);
}

gd_err dev_fs_fail(dev_out *out, const char *tool, const dev_fs *fs, const char *what, int e)
{
    char eb[128];
    if (e == EXDEV)
        return dev_fail(out, GD_EINVAL,
                        "refused: %s: %s leads outside the session's working directory %s "
                        "(through a symbolic link, resolved when it was opened); the file tools "
                        "work inside it only",
                        tool, fs->path, fs->root_real[0] ? fs->root_real : "?");
    if (e == DEV_EPROTECTED) return dev_refuse(out, fs->path);
    if ((e == ELOOP || e == ENOTDIR) && atomic_load(&g_no_openat2))
        return dev_fail(out, GD_EINVAL,
                        "%s: cannot %s '%s': this kernel has no openat2, so the file tools "
                        "follow no symbolic links (%s)",
                        tool, what, fs->path, dev_errstr(e, eb, sizeof eb));
    return dev_fail(out,
                    e == ENOENT   ? GD_ENOTFOUND
                    : e == ENOMEM ? GD_ENOMEM
                                  : GD_EIO,
                    "%s: cannot %s '%s': %s", tool, what, fs->path, dev_errstr(e, eb, sizeof eb));
}
