/* sandbox: the tools' environment, privileges and forbidden directories (see sandbox.h). */
#include "extensions/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

#define SB_PATH_MAX  4096
#define SB_LINKS_MAX 40 /* symbolic links followed in one path, as the kernel's ELOOP */

/* ---- the environment ---- */

static const char *const ENV_ALLOWED[] = {"PATH", "HOME",     "USER", "LOGNAME", "SHELL",
                                          "LANG", "LANGUAGE", "TERM", "TZ",      "TMPDIR"};

static bool env_allowed(const char *entry)
{
    const char *eq = strchr(entry, '=');
    if (!eq || eq == entry) return false;
    size_t n = (size_t)(eq - entry);
    if (n > 3 && !strncmp(entry, "LC_", 3)) return true;
    for (size_t i = 0; i < sizeof ENV_ALLOWED / sizeof *ENV_ALLOWED; i++)
        if (strlen(ENV_ALLOWED[i]) == n && !strncmp(entry, ENV_ALLOWED[i], n)) return true;
    return false;
}

/* A copy of the entries of env for which keep() is true (all when keep is NULL), in one
 * allocation: the pointer array, then the strings. */
static char **env_copy(char *const *env, bool (*keep)(const char *))
{
    size_t n = 0, bytes = 0;
    for (size_t i = 0; env && env[i]; i++)
        if (!keep || keep(env[i])) {
            n++;
            bytes += strlen(env[i]) + 1;
        }
    char **out = malloc((n + 1) * sizeof *out + bytes);
    if (!out) return NULL;
    char *p = (char *)(out + n + 1);
    size_t j = 0;
    for (size_t i = 0; env && env[i]; i++)
        if (!keep || keep(env[i])) {
            size_t l = strlen(env[i]) + 1;
            memcpy(p, env[i], l);
            out[j++] = p;
            p += l;
        }
    out[j] = NULL;
    return out;
}

char **sandbox_env_new(void)
{
    return env_copy(environ, env_allowed);
}

char **sandbox_env_dup(char *const *env)
{
    return env_copy(env, NULL);
}

void sandbox_env_free(char **env)
{
    free(env);
}

/* ---- protected directories ---- */

/* path (absolute) with every symbolic link resolved, as far as the path exists: the real path
 * of its longest existing prefix, then the rest as written. `.` and `..` are resolved too, after
 * the links before them, as the kernel does. false when the path is too long or has too many
 * links. */
static bool resolve_real(const char *path, char *out, size_t n)
{
    char rest[SB_PATH_MAX * 2], tmp[SB_PATH_MAX * 2];
    if (path[0] != '/' || strlen(path) >= sizeof rest || n < 2) return false;
    strcpy(rest, path);
    size_t len = 0; /* out[0..len) is the resolved part, "" standing for "/" */
    int links = 0;
    bool missing = false; /* past the existing prefix: the rest is taken as written */
    const char *p = rest;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 1 && p[0] == '.') {
            p += cl;
            continue;
        }
        if (cl == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0) len--;
            p += cl;
            continue;
        }
        if (len + 1 + cl + 1 > n) return false;
        size_t at = len;
        out[len++] = '/';
        memcpy(out + len, p, cl);
        len += cl;
        out[len] = '\0';
        p += cl;
        if (missing) continue;
        struct stat st;
        if (lstat(out, &st) < 0) {
            missing = true;
            continue;
        }
        if (!S_ISLNK(st.st_mode)) continue;
        if (++links > SB_LINKS_MAX) return false;
        char target[SB_PATH_MAX];
        ssize_t tl = readlink(out, target, sizeof target - 1);
        if (tl <= 0) return false;
        target[tl] = '\0';
        int w = snprintf(tmp, sizeof tmp, "%s/%s", target, p);
        if (w < 0 || (size_t)w >= sizeof tmp) return false;
        memcpy(rest, tmp, (size_t)w + 1);
        p = rest;
        len = target[0] == '/' ? 0 : at; /* an absolute target starts again from the root */
    }
    if (len == 0) out[len++] = '/';
    out[len] = '\0';
    return true;
}

/* Whether path is dir or inside it (both absolute; dir without a trailing slash, "/" holds
 * everything). */
static bool inside(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl == 1 && dir[0] == '/') return true;
    return !strncmp(path, dir, dl) && (path[dl] == '\0' || path[dl] == '/');
}

bool sandbox_real_path_allowed(const ext_host *h, const char *real_path)
{
    if (!h || !h->protected_dirs) return true;
    for (const char *const *d = h->protected_dirs; *d; d++) {
        if (!(*d)[0]) continue;
        if (inside(real_path, *d)) return false;
        char real_dir[SB_PATH_MAX];
        if ((*d)[0] == '/' && resolve_real(*d, real_dir, sizeof real_dir) &&
            inside(real_path, real_dir))
            return false;
    }
    return true;
}

bool sandbox_path_allowed(const ext_host *h, const char *resolved_path)
{
    if (!h || !h->protected_dirs || !h->protected_dirs[0]) return true;
    char real[SB_PATH_MAX];
    if (!resolve_real(resolved_path, real, sizeof real)) return false; /* fail closed */
    return sandbox_real_path_allowed(h, resolved_path) && sandbox_real_path_allowed(h, real);
}

/* ---- privileges of a child process ---- */

void sandbox_child_prepare(sandbox_child *sc)
{
    sc->root = geteuid() == 0;
    sc->cap_last = 63; /* unknown: try them all (the kernel says EINVAL past its last) */
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char b[16];
        ssize_t r = read(fd, b, sizeof b - 1);
        close(fd);
        if (r > 0) {
            b[r] = '\0';
            int v = atoi(b);
            if (v > 0 && v < 64) sc->cap_last = v;
        }
    }
}

int sandbox_child_enter(const sandbox_child *sc)
{
    if (sc->root)
        for (int c = 0; c <= sc->cap_last; c++)
            if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0UL, 0UL, 0UL) < 0 && errno != EINVAL)
                return errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 && errno != EINVAL)
        return errno;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0) return errno;
    if (sc->root && prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0) return errno;
    return 0;
}
