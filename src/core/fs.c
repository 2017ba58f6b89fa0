#include "core/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int fs_mkdirs(const char *dir, mode_t mode, char *failed, size_t failedlen)
{
    char p[PATH_MAX];
    if (!dir[0] || strlen(dir) >= sizeof p) {
        if (failed && failedlen) snprintf(failed, failedlen, "%s", dir);
        errno = dir[0] ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(p, dir, strlen(dir) + 1);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            int e = errno;
            if (failed && failedlen) snprintf(failed, failedlen, "%s", p);
            errno = e;
            return -1;
        }
        *s = c;
        if (!c) return 0;
    }
}

bool fs_inside(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl == 1 && dir[0] == '/') return true;
    return !strncmp(path, dir, dl) && (path[dl] == '\0' || path[dl] == '/');
}
